/* Service channels (PROTOCOL.md §5.1). */
#include "chan.h"

#include "frame.h"
#include "msg.h"

size_t gv_chan_max(unsigned chan) {
  switch (chan) {
  case GV_CHAN_LINK:
  case GV_CHAN_GOSSIP: return GV_MSG_MAX;
  default: return GV_FRAME_MAX_PAYLOAD - GV_CHAN_HDR;
  }
}

const char *gv_chan_name(unsigned chan) {
  switch (chan) {
#define XX(name, num, text)                                                    \
  case num: return text;
    GV_CHAN_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

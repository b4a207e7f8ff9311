/* Service channels on an open link (PROTOCOL.md §5.1).
 *
 * Every plaintext of a non-FINAL frame on an open link starts with one byte,
 * the channel, followed by that service's message. The link core
 * (node/lcore.h) reads the byte and hands the rest to the service that owns
 * the channel; a channel nobody serves is counted and ignored, so a newer
 * node can add a service without breaking older ones.
 */
#ifndef GV_CHAN_H
#define GV_CHAN_H

#include <stddef.h>
#include <stdint.h>

#define GV_CHAN_MAP(XX)                                                        \
  XX(LINK, 0, "link")       /* HELLO, PING, PONG, GOODBYE */                   \
  XX(GOSSIP, 1, "gossip")   /* gossip messages, IHAVE, IWANT */                \
  XX(RELAY, 2, "relay")     /* agent messages (docs/RELAY.md) */               \
  XX(TORRENT, 3, "torrent") /* torrent signalling (docs/TORRENT.md) */

typedef enum gv_chan {
#define XX(name, num, text) GV_CHAN_##name = num,
  GV_CHAN_MAP(XX)
#undef XX
      GV__CHAN_COUNT /* channels this version serves; 4..255 are reserved */
} gv_chan;

/* Bytes of channel header before a service's message. */
#define GV_CHAN_HDR 1

/* Largest message a channel carries (the plaintext less the header): link
 * and gossip messages keep their JSON limit (GV_MSG_MAX); relay and torrent
 * messages may use the whole frame. */
size_t gv_chan_max(unsigned chan);

/* "link", "gossip", ...; "unknown" for a reserved number. */
const char *gv_chan_name(unsigned chan);

#endif

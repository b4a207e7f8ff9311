/* libFuzzer target: the torrent tunnel's wire format (PROTOCOL.md §5.3,
 * proto/torwire.h).
 *
 * Input: one channel-3 message (the channel byte taken off).
 *
 * Checked: every return is 0 or a GV_E* code with a non-empty reason; what
 * decodes obeys the limits of the header, points into the input, and
 * re-encodes to exactly the input bytes (gv_tw_size agreeing); the encoder
 * refuses a buffer one byte short.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "torwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fz_out[GV_TW_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_tw_msg m;
  gv_why why = {{0}};
  size_t len = 0;
  int rc;

  rc = gv_tw_decode(data, size, &m, &why);
  if (rc < 0) {
    FZ_CHECK(rc <= -1001 && rc >= -1100);
    FZ_CHECK(why.text[0] != '\0');
    return 0;
  }
  FZ_CHECK(rc == 0);
  FZ_CHECK(gv_tw_kind_name(m.kind) != NULL);
  FZ_CHECK(m.sid != 0);
  switch (m.kind) {
  case GV_TW_OPEN:
    FZ_CHECK(size == GV_TW_OPEN_LEN && m.hops <= GV_TW_HOPS_MAX);
    FZ_CHECK(m.dst == data + 6 && m.src == data + 6 + GV_ID_BYTES);
    FZ_CHECK(m.ih == data + 6 + 2 * GV_ID_BYTES);
    break;
  case GV_TW_DATA:
    FZ_CHECK(m.len >= 1 && m.len <= GV_TW_DATA_MAX);
    FZ_CHECK(m.data == data + GV_TW_DATA_HDR);
    break;
  case GV_TW_CREDIT: FZ_CHECK(m.n >= 1 && m.n <= GV_TW_CREDIT_MAX); break;
  case GV_TW_CLOSE: FZ_CHECK(gv_tw_close_name(m.reason) != NULL); break;
  }
  FZ_CHECK(gv_tw_size(&m) == size);
  FZ_CHECK(gv_tw_encode(&m, fz_out, size - 1, &len, &why) == GV_ETOOBIG);
  rc = gv_tw_encode(&m, fz_out, sizeof fz_out, &len, &why);
  FZ_CHECK(rc == 0);
  FZ_CHECK(len == size && memcmp(fz_out, data, size) == 0);
  return 0;
}

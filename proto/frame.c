#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* A buffer larger than this is released when the next, smaller frame
 * arrives, not after each large frame: freeing after every frame made glibc
 * return the memory to the kernel and fault it in again per message (0.7x
 * raw throughput at 1 MiB). An idle link holds at most one large buffer
 * until its next small frame. 64 KiB of payload plus overhead fit. */
#define KEEP_CAP (64u * 1024u + 64u)
/* The first buffer for a split body; it then doubles as bytes arrive. */
#define MIN_CAP 256u

void gv_frame_dec_init(gv_frame_dec *d, size_t max) {
  memset(d, 0, sizeof(*d));
  d->max = max;
}

void gv_frame_dec_free(gv_frame_dec *d) {
  free(d->buf);
  memset(d, 0, sizeof(*d));
}

int gv_frame_dec_idle(const gv_frame_dec *d) {
  return d->hdr_have == 0 ||
         (d->hdr_have == GV_FRAME_HDR && d->len != 0 && d->have == d->len);
}

void gv_frame_put_hdr(uint8_t hdr[GV_FRAME_HDR], uint32_t len) {
  hdr[0] = (uint8_t)(len >> 24);
  hdr[1] = (uint8_t)(len >> 16);
  hdr[2] = (uint8_t)(len >> 8);
  hdr[3] = (uint8_t)len;
}

size_t gv_frame_dec_partial(const gv_frame_dec *d) {
  return gv_frame_dec_idle(d) ? 0 : d->hdr_have + d->have;
}

/* Makes room for need body bytes (need <= d->len). The buffer doubles, so
 * a frame costs O(log len) reallocations and its memory follows the bytes
 * that actually arrived, never the length a peer announced. */
static int grow(gv_frame_dec *d, size_t need) {
  size_t cap = d->cap > 0 ? d->cap : MIN_CAP;
  uint8_t *p;

  if (d->cap >= need)
    return 0;
  while (cap < need)
    cap *= 2;
  if (cap > d->len)
    cap = d->len;
  if ((p = realloc(d->buf, cap)) == NULL)
    return GV_ENOMEM;
  d->buf = p;
  d->cap = cap;
  return 0;
}

static void reset(gv_frame_dec *d) {
  d->hdr_have = 0;
  d->len = 0;
  d->have = 0;
}

int gv_frame_dec_feed(gv_frame_dec *d, const uint8_t *in, size_t len,
                      size_t *used, const uint8_t **frame, size_t *frame_len) {
  size_t off = 0;

  *used = 0;
  if (d->hdr_have == GV_FRAME_HDR && d->have == d->len)
    reset(d); /* the previous call delivered a frame */

  while (d->hdr_have < GV_FRAME_HDR && off < len)
    d->hdr[d->hdr_have++] = in[off++];
  if (d->hdr_have < GV_FRAME_HDR) {
    *used = off;
    return 0;
  }
  if (d->have == 0 && d->len == 0) {
    uint32_t n = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
                 (uint32_t)d->hdr[2] << 8 | d->hdr[3];
    if (n == 0)
      return GV_EFRAME;
    if (n > d->max)
      return GV_ETOOBIG;
    d->len = n;
    if (d->cap > KEEP_CAP && n <= KEEP_CAP) {
      free(d->buf); /* the large frame is over; shrink */
      d->buf = NULL;
      d->cap = 0;
    }
    /* Whole body already in the input: hand it out without copying. */
    if (len - off >= n) {
      *frame = in + off;
      *frame_len = n;
      *used = off + n;
      d->have = n;
      return 1;
    }
  }
  {
    size_t take = d->len - d->have;
    if (take > len - off)
      take = len - off;
    if (take > 0) {
      if (grow(d, d->have + take) < 0)
        return GV_ENOMEM;
      memcpy(d->buf + d->have, in + off, take);
    }
    d->have += take;
    off += take;
  }
  *used = off;
  if (d->have < d->len)
    return 0;
  *frame = d->buf;
  *frame_len = d->len;
  return 1;
}

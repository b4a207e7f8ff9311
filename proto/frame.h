/* Length-prefixed framing (PROTOCOL.md §3): u32 big-endian length, then that
 * many bytes. Works on buffers only; the caller owns the socket.
 *
 * Lifetime: a gv_frame_dec is embedded by its owner, initialised with
 * gv_frame_dec_init() and released with gv_frame_dec_free(). A frame pointer
 * it returns stays valid until the next call on the same decoder.
 */
#ifndef GV_FRAME_H
#define GV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define GV_FRAME_HDR 4
#define GV_FRAME_HS_MAX 256u                 /* body limit during handshake */
/* Plaintext limit: 1 MiB of service payload plus 64 KiB for the channel
 * byte and a service's own header (a relay message carries 1 MiB). */
#define GV_FRAME_MAX_PAYLOAD (1024u * 1024u + 65536u)

typedef struct gv_frame_dec {
  size_t max; /* largest accepted body; may be changed between frames */
  uint8_t hdr[GV_FRAME_HDR];
  size_t hdr_have; /* header bytes collected for the current frame */
  size_t len;      /* body length of the current frame, once known */
  size_t have;     /* body bytes collected in buf */
  uint8_t *buf;    /* owned; holds a body split across reads */
  size_t cap;      /* <= the largest len since the last small frame */
} gv_frame_dec;

void gv_frame_dec_init(gv_frame_dec *d, size_t max);
void gv_frame_dec_free(gv_frame_dec *d);

/* Consumes bytes of in[0..len) up to the end of at most one frame and stores
 * the count in *used. Returns 1 when a frame is complete (*frame, *frame_len
 * set), 0 when all of the input was consumed without completing one, or a
 * negative error: GV_ETOOBIG for a length over d->max (detected from the
 * prefix alone, before any allocation), GV_EFRAME for a zero length,
 * GV_ENOMEM. After an error the decoder is unusable. */
int gv_frame_dec_feed(gv_frame_dec *d, const uint8_t *in, size_t len,
                      size_t *used, const uint8_t **frame, size_t *frame_len);

/* True between frames (nothing partial buffered). */
int gv_frame_dec_idle(const gv_frame_dec *d);

/* Bytes of an incomplete frame held (prefix and body so far), 0 between
 * frames. The body buffer grows with these bytes, doubling, up to the
 * announced length: a length prefix alone allocates nothing. */
size_t gv_frame_dec_partial(const gv_frame_dec *d);

/* Writes the 4-byte prefix for a body of len bytes. */
void gv_frame_put_hdr(uint8_t hdr[GV_FRAME_HDR], uint32_t len);

#endif

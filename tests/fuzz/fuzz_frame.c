/* libFuzzer target: the frame decoder (PROTOCOL.md §3, proto/frame.h).
 *
 * Input layout:
 *   byte 0     low nibble: k, the number of chunk-size bytes that follow;
 *              high nibble: sw, frames decoded under GV_FRAME_HS_MAX by the
 *              link-like decoder before it switches to the link's limit
 *   bytes 1..k chunk sizes, used cyclically: 0 = one empty feed, then 1 byte;
 *              255 = everything left; else b + 1 bytes (k == 0: one chunk)
 *   the rest   the byte stream
 *
 * The stream goes, chunk by chunk, through three decoders (max 4096, max
 * GV_FRAME_HS_MAX, and HS_MAX switching to the link's post-handshake limit),
 * each checked against a straightforward reference parse: same frames, same
 * error at the same frame, same idle state, and the feed contract (used <=
 * len, progress, everything consumed on 0, stop after an error). The frames
 * decoded are then re-encoded with gv_frame_put_hdr(): that must reproduce
 * the input stream, and decoding it from one buffer must give them back.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"

/* The link's limit after the handshake: 1 MiB plaintext + secretstream tag. */
#define FZ_LINK_MAX                                                            \
  (GV_FRAME_MAX_PAYLOAD + crypto_secretstream_xchacha20poly1305_ABYTES)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One frame, as a span of the stream. */
typedef struct fz_span {
  size_t off, len;
} fz_span;

/* Per-frame limit: frames [0, sw) get max0, later ones max1. */
typedef struct fz_limits {
  size_t max0, max1, sw;
} fz_limits;

static size_t fz_max_for(const fz_limits *lim, size_t frame) {
  return frame < lim->sw ? lim->max0 : lim->max1;
}

/* What the reference parse expects of a stream. */
typedef struct fz_expect {
  fz_span *frames;
  size_t n;
  int err;    /* 0, GV_EFRAME or GV_ETOOBIG (at frame n) */
  size_t end; /* stream offset after the last complete frame */
} fz_expect;

/* Reference: frames are read left to right; the limit is applied as soon as
 * the 4 length bytes are known. frames must hold size / 5 + 1 entries. */
static void fz_reference(const uint8_t *s, size_t size, const fz_limits *lim,
                         fz_expect *e) {
  size_t off = 0;

  e->n = 0;
  e->err = 0;
  for (;;) {
    uint32_t len;

    e->end = off;
    if (size - off < GV_FRAME_HDR)
      return;
    len = (uint32_t)s[off] << 24 | (uint32_t)s[off + 1] << 16 |
          (uint32_t)s[off + 2] << 8 | s[off + 3];
    if (len == 0) {
      e->err = GV_EFRAME;
      return;
    }
    if (len > fz_max_for(lim, e->n)) {
      e->err = GV_ETOOBIG;
      return;
    }
    if (size - off - GV_FRAME_HDR < len)
      return;
    e->frames[e->n].off = off + GV_FRAME_HDR;
    e->frames[e->n].len = len;
    e->n++;
    off += GV_FRAME_HDR + len;
  }
}

/* Cycles through the chunk-size bytes. */
typedef struct fz_chunker {
  const uint8_t *sizes;
  size_t n, next;
} fz_chunker;

/* Next chunk length, at most left; 0 asks for one empty feed. */
static size_t fz_next_chunk(fz_chunker *c, size_t left) {
  uint8_t b;

  if (c->n == 0)
    return left;
  b = c->sizes[c->next++ % c->n];
  if (b == 0)
    return 0;
  if (b == 255 || (size_t)b + 1 > left)
    return left;
  return (size_t)b + 1;
}

/* Feeds s through a decoder in chunks and checks it against e. Frames are
 * appended, re-encoded, to *enc (capacity size) when enc is non-NULL. */
static void fz_run_decoder(const uint8_t *s, size_t size, const fz_limits *lim,
                           const fz_expect *e, fz_chunker ch, uint8_t *enc,
                           size_t *enc_len) {
  gv_frame_dec d;
  size_t pos = 0, n = 0;
  int err = 0;

  gv_frame_dec_init(&d, fz_max_for(lim, 0));
  FZ_CHECK(gv_frame_dec_idle(&d));
  while (pos < size && err == 0) {
    size_t chunk = fz_next_chunk(&ch, size - pos), left;
    const uint8_t *p = s + pos;

    if (chunk == 0) {
      /* An empty read changes nothing and completes nothing. */
      const uint8_t *fr = NULL;
      size_t used = 99, fl = 0;
      int idle = gv_frame_dec_idle(&d);
      FZ_CHECK(gv_frame_dec_feed(&d, p, 0, &used, &fr, &fl) == 0);
      FZ_CHECK(used == 0);
      FZ_CHECK(gv_frame_dec_idle(&d) == idle);
      chunk = 1;
    }
    left = chunk;
    while (left > 0) {
      const uint8_t *fr = NULL;
      size_t used = SIZE_MAX, fl = 0;
      int rc = gv_frame_dec_feed(&d, p, left, &used, &fr, &fl);

      FZ_CHECK(rc == 0 || rc == 1 || rc == GV_EFRAME || rc == GV_ETOOBIG);
      if (rc < 0) {
        err = rc;
        break;
      }
      FZ_CHECK(used <= left);
      if (rc == 0) {
        FZ_CHECK(used == left);
      } else {
        size_t max = fz_max_for(lim, n);
        FZ_CHECK(used > 0);
        FZ_CHECK(fl > 0 && fl <= max && fr != NULL);
        FZ_CHECK(n < e->n);
        FZ_CHECK(fl == e->frames[n].len);
        FZ_CHECK(memcmp(fr, s + e->frames[n].off, fl) == 0);
        /* The frame ends exactly where this call stopped consuming. */
        FZ_CHECK((size_t)(p + used - s) == e->frames[n].off + fl);
        FZ_CHECK(gv_frame_dec_idle(&d));
        if (enc != NULL) {
          gv_frame_put_hdr(enc + *enc_len, (uint32_t)fl);
          memcpy(enc + *enc_len + GV_FRAME_HDR, fr, fl);
          *enc_len += GV_FRAME_HDR + fl;
        }
        n++;
        d.max = fz_max_for(lim, n); /* allowed between frames */
      }
      p += used;
      left -= used;
    }
    pos += chunk;
  }
  FZ_CHECK(n == e->n);
  FZ_CHECK(err == e->err);
  if (err == 0)
    FZ_CHECK(gv_frame_dec_idle(&d) == (e->end == size));
  gv_frame_dec_free(&d);
}

/* Decodes enc[0..len) from one buffer; it must give back frames of e. */
static void fz_check_reencoded(const uint8_t *s, const uint8_t *enc, size_t len,
                               const fz_expect *e) {
  gv_frame_dec d;
  size_t off = 0, n = 0;

  gv_frame_dec_init(&d, 4096);
  while (off < len) {
    const uint8_t *fr = NULL;
    size_t used = 0, fl = 0;
    int rc = gv_frame_dec_feed(&d, enc + off, len - off, &used, &fr, &fl);

    FZ_CHECK(rc == 1);
    FZ_CHECK(used == GV_FRAME_HDR + fl);
    FZ_CHECK(n < e->n && fl == e->frames[n].len);
    FZ_CHECK(memcmp(fr, s + e->frames[n].off, fl) == 0);
    off += used;
    n++;
  }
  FZ_CHECK(n == e->n);
  FZ_CHECK(gv_frame_dec_idle(&d));
  gv_frame_dec_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_chunker ch = {0};
  const uint8_t *s;
  size_t k, slen;
  fz_limits lims[3];
  fz_expect exp[3];
  uint8_t *enc;
  size_t enc_len = 0;

  if (size < 1)
    return 0;
  k = data[0] & 0x0f;
  if (size < 1 + k)
    return 0;
  ch.sizes = data + 1;
  ch.n = k;
  s = data + 1 + k;
  slen = size - 1 - k;

  lims[0] = (fz_limits){4096, 4096, 0};
  lims[1] = (fz_limits){GV_FRAME_HS_MAX, GV_FRAME_HS_MAX, 0};
  lims[2] = (fz_limits){GV_FRAME_HS_MAX, FZ_LINK_MAX, (size_t)(data[0] >> 4)};
  enc = malloc(slen + 1);
  FZ_CHECK(enc != NULL);
  for (int i = 0; i < 3; i++) {
    exp[i].frames = malloc((slen / 5 + 1) * sizeof(fz_span));
    FZ_CHECK(exp[i].frames != NULL);
    fz_reference(s, slen, &lims[i], &exp[i]);
    fz_run_decoder(s, slen, &lims[i], &exp[i], ch, i == 0 ? enc : NULL,
                   &enc_len);
  }

  /* gv_frame_put_hdr() must reproduce the prefixes that were decoded. */
  FZ_CHECK(enc_len == exp[0].end);
  FZ_CHECK(memcmp(enc, s, enc_len) == 0);
  fz_check_reencoded(s, enc, enc_len, &exp[0]);

  for (int i = 0; i < 3; i++)
    free(exp[i].frames);
  free(enc);
  return 0;
}

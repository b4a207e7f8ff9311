/* libFuzzer target: the handshake and the encrypted link driven by attacker
 * bytes (PROTOCOL.md §3-5, proto/link.h).
 *
 * libsodium's randombytes is replaced by a deterministic generator that is
 * reset to the same state at the start of every input, so ephemeral keys
 * and stream headers are a function of the input alone: runs reproduce, and
 * a seed can hold a complete, valid conversation with a fuzzed link.
 * Identities are fixed: the initiator is alice (seed 32 x 0x01), the
 * responder bob (32 x 0x02).
 *
 * Byte 0: bits 0-1 the mode, bit 2 the initiator pins an id, bit 3 with
 * bit 2 the pin is wrong (alice's id), bits 4-7 the read size (fz_chunks[]).
 * Modes:
 *   0  a responder link (bob) is fed the remaining bytes, as if an attacker
 *      had dialed in;
 *   1  an initiator link (alice) is created, its M1 dropped, and the
 *      remaining bytes fed as the responder's replies;
 *   2, 3  a genuine conversation between the two links, with the remaining
 *      bytes [pos_hi pos_lo xor flags payload...] choosing one byte of the
 *      whole transcript (both directions, in delivery order) to XOR with
 *      xor, or (flags bit 0) where to cut the connection. Flags bit 1: close
 *      without a GOODBYE text; bit 2: each side also sends a 5000-byte
 *      message, bit 3: a 70000-byte one. The payload, split in half, is what
 *      each side sends first once open.
 * In modes 0 and 1 a delivered message starting with 'S' is sent back, 'C'
 * closes the link, 'E' makes the callback fail.
 *
 * Checked in mode 2: an unchanged transcript gives a complete conversation
 * (both open, right peer ids, every message delivered intact, both FINALs,
 * clean EOF); a changed or cut one never does; at no point does a side
 * accept a wrong peer id or deliver a message other than the one sent; a
 * wrong pin fails with GV_EPEERID. In all modes: errors are GV_E* codes and
 * leave the link failed and refusing further use; output is whole frames.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "link.h"

#define FZ_LINK_FRAME_MAX                                                      \
  (GV_FRAME_MAX_PAYLOAD + crypto_secretstream_xchacha20poly1305_ABYTES)
#define FZ_SEALED(n)                                                           \
  (GV_FRAME_HDR + crypto_secretstream_xchacha20poly1305_ABYTES + (n))

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- deterministic randombytes (splitmix64) ---- */

static uint64_t fz_rng;

static void fz_rng_reset(void) { fz_rng = 0x6772617065766e65ULL; }

static uint64_t fz_rng_next(void) {
  uint64_t z = (fz_rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static const char *fz_rng_name(void) { return "grapevine-fuzz"; }

static uint32_t fz_rng_random(void) { return (uint32_t)(fz_rng_next() >> 32); }

static void fz_rng_buf(void *const buf, const size_t n) {
  uint8_t *p = buf;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = fz_rng_next();
    size_t k = n - i < 8 ? n - i : 8;
    memcpy(p + i, &v, k);
  }
}

static randombytes_implementation fz_rng_impl = {
    .implementation_name = fz_rng_name,
    .random = fz_rng_random,
    .buf = fz_rng_buf,
};

static gv_identity fz_alice, fz_bob;

/* Mode 2's large messages: over the link's first 4 KiB output buffer, and
 * over the 64 KiB that frame.c and link.c keep between frames. */
#define FZ_BIG_SMALL 5000u
#define FZ_BIG_LARGE 70000u
static uint8_t fz_big[FZ_BIG_LARGE + 1];
static uint8_t fz_huge[GV_FRAME_MAX_PAYLOAD + 1]; /* one byte too many */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  uint8_t seed[32];

  (void)argc;
  (void)argv;
  /* Must precede sodium_init(). */
  FZ_CHECK(randombytes_set_implementation(&fz_rng_impl) == 0);
  FZ_CHECK(sodium_init() >= 0);
  memset(seed, 0x01, sizeof(seed));
  FZ_CHECK(gv_id_from_seed(&fz_alice, seed) == 0);
  memset(seed, 0x02, sizeof(seed));
  FZ_CHECK(gv_id_from_seed(&fz_bob, seed) == 0);
  for (size_t i = 0; i < sizeof(fz_big); i++)
    fz_big[i] = (uint8_t)(i * 31 + (i >> 8));
  return 0;
}

/* Read sizes selected by bits 4-7 of byte 0; 0 is "everything at once". */
static const size_t fz_chunks[16] = {0,  1,  2,  3,  4,   5,   7,   13,
                                     24, 36, 40, 64, 100, 148, 200, 256};

/* An error from the link: a GV_E* code, or the callback's own (GV_EINVAL). */
static void fz_check_err(int rc) {
  FZ_CHECK(rc <= -(GV__ERR_FIRST + 1) &&
           rc >= -(GV__ERR_FIRST + GV__ERR_COUNT));
  FZ_CHECK(rc != GV_ENOMEM);
}

/* Takes all pending output; it must be whole, well-formed frames. */
static void fz_drain(gv_link *l) {
  const uint8_t *out;
  size_t n = gv_link_out(l, &out), off = 0;
  gv_frame_dec d;

  gv_frame_dec_init(&d, FZ_LINK_FRAME_MAX);
  while (off < n) {
    const uint8_t *fr;
    size_t used, fl;
    FZ_CHECK(gv_frame_dec_feed(&d, out + off, n - off, &used, &fr, &fl) == 1);
    off += used;
  }
  FZ_CHECK(gv_frame_dec_idle(&d));
  gv_frame_dec_free(&d);
  gv_link_out_consume(l, n);
  FZ_CHECK(gv_link_out(l, &out) == 0);
}

/* ---- modes 0 and 1: a link fed attacker bytes ---- */

typedef struct fz_victim {
  gv_link *link;
  size_t n_msgs;
} fz_victim;

static int fz_victim_cb(void *ctx, const uint8_t *msg, size_t len) {
  fz_victim *v = ctx;
  int rc;

  FZ_CHECK(len >= 1 && len <= GV_FRAME_MAX_PAYLOAD);
  FZ_CHECK(gv_link_peer_id(v->link) != NULL);
  v->n_msgs++;
  switch (msg[0]) {
  case 'S':
    rc = gv_link_send(v->link, msg, len);
    FZ_CHECK(rc == 0 || rc == GV_ESTATE);
    return 0;
  case 'C':
    rc = gv_link_close(v->link, msg + 1, len - 1);
    FZ_CHECK(rc == 0 || rc == GV_ESTATE);
    return 0;
  case 'E': return GV_EINVAL;
  default: return 0;
  }
}

static void fz_attack(gv_link *l, const uint8_t *p, size_t n, size_t chunk) {
  fz_victim v = {l, 0};
  int rc;

  while (n > 0) {
    size_t k = chunk == 0 || chunk > n ? n : chunk;

    rc = gv_link_recv(l, p, k, fz_victim_cb, &v);
    if (rc < 0) {
      fz_check_err(rc);
      FZ_CHECK(gv_link_failed(l));
      FZ_CHECK(gv_link_peer_id(l) == NULL);
      FZ_CHECK(gv_link_recv(l, p, k, fz_victim_cb, &v) == GV_ESTATE);
      FZ_CHECK(gv_link_send(l, (const uint8_t *)"x", 1) == GV_ESTATE);
      FZ_CHECK(gv_link_close(l, NULL, 0) == GV_ESTATE);
      return;
    }
    FZ_CHECK(!gv_link_failed(l));
    fz_drain(l);
    p += k;
    n -= k;
  }
  /* The input ended: that is the transport's EOF. */
  rc = gv_link_eof(l);
  FZ_CHECK(rc == 0 || rc == GV_ETRUNCATED);
  FZ_CHECK(rc != 0 || gv_link_peer_closed(l));
  if (gv_link_peer_id(l) == NULL) {
    FZ_CHECK(v.n_msgs == 0);
    FZ_CHECK(gv_link_send(l, (const uint8_t *)"x", 1) == GV_ESTATE);
  } else {
    rc = gv_link_send(l, (const uint8_t *)"x", 1);
    FZ_CHECK(rc == 0 || rc == GV_ESTATE);
    rc = gv_link_close(l, (const uint8_t *)"bye", 3);
    FZ_CHECK(rc == 0 || rc == GV_ESTATE);
    FZ_CHECK(gv_link_close(l, NULL, 0) == GV_ESTATE);
    fz_drain(l);
  }
}

static void fz_mode_responder(const uint8_t *p, size_t n, size_t chunk) {
  gv_link *r;
  const uint8_t *out;

  FZ_CHECK(gv_link_new(&r, &fz_bob, GV_HS_RESPONDER, NULL) == 0);
  FZ_CHECK(gv_link_out(r, &out) == 0); /* a responder waits for M1 */
  FZ_CHECK(gv_link_peer_id(r) == NULL);
  fz_attack(r, p, n, chunk);
  gv_link_free(r);
}

static void fz_mode_initiator(const uint8_t *p, size_t n, size_t chunk,
                              const uint8_t *pin) {
  static const uint8_t m1_hdr[8] = {0, 0, 0, GV_HS_M1_LEN, 'G', 'V', 'H', 2};
  gv_link *i;
  const uint8_t *out;

  FZ_CHECK(gv_link_new(&i, &fz_alice, GV_HS_INITIATOR, pin) == 0);
  FZ_CHECK(gv_link_out(i, &out) == GV_FRAME_HDR + GV_HS_M1_LEN);
  FZ_CHECK(memcmp(out, m1_hdr, sizeof(m1_hdr)) == 0);
  gv_link_out_consume(i, GV_FRAME_HDR + GV_HS_M1_LEN);
  fz_attack(i, p, n, chunk);
  gv_link_free(i);
}

/* ---- mode 2: a genuine conversation with one byte changed ---- */

/* One side and the messages it must receive, in order. */
typedef struct fz_side {
  gv_link *link;
  const uint8_t *want[3];
  size_t want_len[3], n_want, n_got;
  int err; /* the first error of gv_link_recv(), or 0 */
} fz_side;

static int fz_side_cb(void *ctx, const uint8_t *msg, size_t len) {
  fz_side *s = ctx;

  /* Whatever was changed on the wire, nothing but the original arrives. */
  FZ_CHECK(s->n_got < s->n_want);
  FZ_CHECK(len == s->want_len[s->n_got]);
  FZ_CHECK(memcmp(msg, s->want[s->n_got], len) == 0);
  s->n_got++;
  return 0;
}

/* The connection: what to change, and how far delivery got. */
typedef struct fz_wire {
  size_t pos;   /* transcript index of the byte to change or cut at */
  uint8_t flip; /* XORed into the byte; 0: leave it */
  int truncate; /* cut the connection at pos instead */
  size_t chunk; /* read size, 0: all pending */
  size_t sent;  /* bytes taken from both sides so far */
  int hit;      /* the transcript was changed or cut */
  int down;     /* cut, or a side failed: nothing more moves */
} fz_wire;

/* Moves one read's worth from `from` to `to`; returns the bytes taken. */
static size_t fz_step(fz_wire *w, fz_side *from, fz_side *to) {
  static uint8_t buf[16384];
  const uint8_t *out;
  size_t n, deliver;
  int rc;

  if (w->down)
    return 0;
  n = gv_link_out(from->link, &out);
  if (w->chunk != 0 && n > w->chunk)
    n = w->chunk;
  if (n > sizeof(buf))
    n = sizeof(buf);
  if (n == 0)
    return 0;
  memcpy(buf, out, n);
  gv_link_out_consume(from->link, n);
  deliver = n;
  if (w->pos >= w->sent && w->pos < w->sent + n) {
    if (w->truncate) {
      deliver = w->pos - w->sent;
      w->hit = 1;
      w->down = 1;
    } else if (w->flip != 0) {
      buf[w->pos - w->sent] ^= w->flip;
      w->hit = 1;
    }
  }
  w->sent += n;
  if (deliver == 0)
    return n;
  rc = gv_link_recv(to->link, buf, deliver, fz_side_cb, to);
  if (rc < 0) {
    fz_check_err(rc);
    FZ_CHECK(gv_link_failed(to->link));
    to->err = rc;
    w->down = 1; /* the failed side closes the connection */
  }
  return n;
}

static void fz_pump(fz_wire *w, fz_side *ini, fz_side *res) {
  while (fz_step(w, ini, res) + fz_step(w, res, ini) > 0)
    ;
}

/* A side that opened knows its real peer. */
static void fz_check_peer(const fz_side *s, const gv_identity *peer) {
  const uint8_t *id = gv_link_peer_id(s->link);
  FZ_CHECK(id == NULL || memcmp(id, peer->pk, GV_ID_BYTES) == 0);
}

/* Queues what a side expects to receive next. */
static void fz_expect(fz_side *s, const uint8_t *msg, size_t len) {
  FZ_CHECK(s->n_want < sizeof(s->want) / sizeof(s->want[0]));
  s->want[s->n_want] = msg;
  s->want_len[s->n_want++] = len;
}

/* The limits of gv_link_send() and gv_link_close() on an open link. */
static void fz_check_send_limits(gv_link *l) {
  FZ_CHECK(gv_link_send(l, fz_huge, 0) == GV_EINVAL);
  FZ_CHECK(gv_link_send(l, fz_huge, sizeof(fz_huge)) == GV_ETOOBIG);
  FZ_CHECK(gv_link_close(l, fz_huge, sizeof(fz_huge)) == GV_ETOOBIG);
  FZ_CHECK(gv_link_peer_id(l) != NULL && !gv_link_failed(l));
}

static void fz_mode_genuine(const uint8_t *p, size_t n, size_t chunk,
                            const uint8_t *pin, int wrong_pin) {
  static const uint8_t def_a[] = "hello bob", def_b[] = "hello alice";
  static const uint8_t bye_i[] = "bye from alice", bye_r[] = "bye from bob";
  const size_t bye_i_len = sizeof(bye_i) - 1, bye_r_len = sizeof(bye_r) - 1;
  uint8_t hdr[4] = {0};
  fz_wire w = {0};
  fz_side ini = {0}, res = {0};
  const uint8_t *a = def_a, *b = def_b;
  size_t a_len = sizeof(def_a) - 1, b_len = sizeof(def_b) - 1, big, total, v;
  int empty_close, complete;

  memcpy(hdr, p, n < sizeof(hdr) ? n : sizeof(hdr)); /* short: zero-padded */
  if (n > 4) {
    size_t rest = n - 4, half = rest / 2;
    if (half > 0) {
      a = p + 4;
      a_len = half;
    }
    if (rest - half > 0) {
      b = p + 4 + half;
      b_len = rest - half;
    }
  }
  empty_close = (hdr[3] & 2) != 0;
  big = hdr[3] & 8 ? FZ_BIG_LARGE : hdr[3] & 4 ? FZ_BIG_SMALL : 0;
  fz_expect(&res, a, a_len);
  fz_expect(&ini, b, b_len);
  if (big > 0) {
    fz_expect(&res, fz_big, big);
    fz_expect(&ini, fz_big + 1, big);
  }
  if (!empty_close) {
    fz_expect(&res, bye_i, bye_i_len);
    fz_expect(&ini, bye_r, bye_r_len);
  }

  /* The whole transcript's length; pos == total changes nothing. */
  total =
      3 * GV_FRAME_HDR + GV_HS_M1_LEN + GV_HS_M2_LEN + GV_HS_M3_LEN +
      2 * (GV_FRAME_HDR + crypto_secretstream_xchacha20poly1305_HEADERBYTES) +
      FZ_SEALED(a_len) + FZ_SEALED(b_len) + (big > 0 ? 2 * FZ_SEALED(big) : 0) +
      (empty_close ? 2 * FZ_SEALED(0)
                   : FZ_SEALED(bye_i_len) + FZ_SEALED(bye_r_len));
  v = (size_t)hdr[0] << 8 | hdr[1];
  w.pos = total < 65536 ? v % (total + 1) : v * (total + 1) / 65536;
  w.flip = hdr[2];
  w.truncate = hdr[3] & 1;
  w.chunk = chunk;

  FZ_CHECK(gv_link_new(&ini.link, &fz_alice, GV_HS_INITIATOR, pin) == 0);
  FZ_CHECK(gv_link_new(&res.link, &fz_bob, GV_HS_RESPONDER, NULL) == 0);

  /* Handshake. */
  fz_pump(&w, &ini, &res);
  fz_check_peer(&ini, &fz_bob);
  fz_check_peer(&res, &fz_alice);
  if (wrong_pin) {
    FZ_CHECK(gv_link_peer_id(ini.link) == NULL);
    FZ_CHECK(gv_link_peer_id(res.link) == NULL);
    FZ_CHECK(w.hit || ini.err == GV_EPEERID);
  }

  /* A message each way; a large one queued behind a half-sent first one
   * (the output buffer compacts and grows); then both close at once. */
  if (gv_link_peer_id(ini.link) != NULL) {
    fz_check_send_limits(ini.link);
    FZ_CHECK(gv_link_send(ini.link, a, a_len) == 0);
  }
  if (gv_link_peer_id(res.link) != NULL) {
    fz_check_send_limits(res.link);
    FZ_CHECK(gv_link_send(res.link, b, b_len) == 0);
  }
  fz_step(&w, &ini, &res);
  if (gv_link_peer_id(ini.link) != NULL) {
    if (big > 0)
      FZ_CHECK(gv_link_send(ini.link, fz_big, big) == 0);
    FZ_CHECK(gv_link_close(ini.link, empty_close ? NULL : bye_i,
                           empty_close ? 0 : bye_i_len) == 0);
  }
  if (gv_link_peer_id(res.link) != NULL) {
    if (big > 0)
      FZ_CHECK(gv_link_send(res.link, fz_big + 1, big) == 0);
    FZ_CHECK(gv_link_close(res.link, empty_close ? NULL : bye_r,
                           empty_close ? 0 : bye_r_len) == 0);
  }
  fz_pump(&w, &ini, &res);
  fz_check_peer(&ini, &fz_bob);
  fz_check_peer(&res, &fz_alice);

  complete = !gv_link_failed(ini.link) && !gv_link_failed(res.link) &&
             gv_link_peer_id(ini.link) != NULL &&
             gv_link_peer_id(res.link) != NULL && ini.n_got == ini.n_want &&
             res.n_got == res.n_want && gv_link_eof(ini.link) == 0 &&
             gv_link_eof(res.link) == 0;
  if (!w.hit && !wrong_pin) {
    FZ_CHECK(complete);
    FZ_CHECK(w.sent == total);
  } else {
    FZ_CHECK(!complete);
  }
  gv_link_free(ini.link);
  gv_link_free(res.link);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *pin = NULL;
  size_t chunk;
  int wrong_pin;

  if (size < 1)
    return 0;
  fz_rng_reset();
  chunk = fz_chunks[data[0] >> 4];
  wrong_pin = (data[0] & 0x0c) == 0x0c;
  if (data[0] & 0x04)
    pin = wrong_pin ? fz_alice.pk : fz_bob.pk;
  switch (data[0] & 3) {
  case 0: fz_mode_responder(data + 1, size - 1, chunk); break;
  case 1: fz_mode_initiator(data + 1, size - 1, chunk, pin); break;
  default: fz_mode_genuine(data + 1, size - 1, chunk, pin, wrong_pin); break;
  }
  return 0;
}

/* bench_proto: what proto/ costs beside raw libsodium doing the same
 * cryptographic work, measured in the same run (see tests/bench/README.md).
 *
 *   build/bench/bench_proto [--json] [--help]
 *   BENCH_SECONDS=1 (per measurement)  BENCH_ROUNDS=3 (median taken)
 *   BENCH_READ_BYTES=65536 (bytes per gv_link_recv call; 0 = all at once)
 *
 * Figures, each "ours" against its "raw libsodium" anchor:
 *
 *   1. messages validated/s: gv_msg_decode + gv_msg_clear of one signed
 *      PEER_ANNOUNCEMENT, signature check included, against
 *      crypto_generichash(body) + crypto_sign_verify_detached over
 *      "grapevine/1 msg" || id on the same bytes. The duplicate path
 *      (policy.seen says yes, so decode stops before the signature) is an
 *      extra line without an anchor.
 *   2. handshakes/s: two gv_link objects, created, pumped in memory until both
 *      are open and both stream headers are delivered, then freed, against
 *      the raw primitive calls of the same handshake (counted at
 *      raw_handshake()).
 *   3. link MB/s: an open link pair, gv_link_send of one message, its bytes
 *      moved into the peer's gv_link_recv in reads of at most 64 KiB (the
 *      read buffer of node/conn.c; BENCH_READ_BYTES), whose callback touches
 *      the data, against crypto_secretstream_xchacha20poly1305 push + pull
 *      (+ the same touch) of the same sizes. 64 KiB and 1 KiB messages, and
 *      512 KiB (GV_MSG_MAX, the largest message) as an extra line. Each
 *      measurement stops at 512 MiB or at the time limit, whichever first.
 *
 * Method: CLOCK_MONOTONIC; every measurement is bounded by time and by an
 * operation count; each benchmark is warmed up once; then the rounds run
 * round-major (every figure's ours and raw in round 1, then round 2, ...),
 * alternating which of the pair goes first, so that a burst of noise on a
 * shared machine lands in one sample of many figures rather than in all
 * samples of one. Each figure is the median over the rounds.
 *
 * ratio = ours / raw, both as rates (ops/s or MB/s): 0.87 means proto/
 * reaches 87% of raw libsodium's rate for the same crypto work.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "bench.h"
#include "identity.h"
#include "link.h"
#include "msg.h"

#define T0_MS 1767225600000LL /* 2026-01-01T00:00:00Z, as in PROTOCOL.md §7 */
#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define LINK_TOTAL_BYTES (512ull * 1024 * 1024) /* per measurement, at most */
#define BATCH_TARGET_S 0.002 /* clock read about every 2 ms */

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_proto: %s failed: %d (%s)\n", what, rc,
          rc < 0 ? gv_strerror(rc) : "unexpected result");
  exit(1);
}

/* ---- timing ---------------------------------------------------------- */

/* Performs n operations; aborts the program on any unexpected result. */
typedef void (*work_fn)(void *ctx, uint64_t n);

typedef struct bench {
  work_fn fn; /* NULL: no anchor */
  void *ctx;
  uint64_t max_ops; /* count bound of one measurement */
  uint64_t batch;   /* operations between clock reads, set by warm_up() */
} bench;

static void warm_up(bench *b, double seconds) {
  uint64_t done = 0;
  double t0 = bench_now_s(), t, per;

  do {
    b->fn(b->ctx, 1);
    done++;
    t = bench_now_s();
  } while (t - t0 < seconds && done < b->max_ops);
  per = (t - t0) / (double)done;
  b->batch = per > 0 ? (uint64_t)(BATCH_TARGET_S / per) : 1000;
  if (b->batch < 1)
    b->batch = 1;
}

/* Runs b for about `seconds` (or max_ops) and returns operations per second. */
static double measure(const bench *b, double seconds) {
  uint64_t done = 0;
  double t0 = bench_now_s(), t;

  do {
    uint64_t n = b->batch;
    if (n > b->max_ops - done)
      n = b->max_ops - done;
    b->fn(b->ctx, n);
    done += n;
    t = bench_now_s();
  } while (t - t0 < seconds && done < b->max_ops);
  return (double)done / (t - t0);
}

/* (max - min) / median, in percent. */
static double spread_pct(const double *v, int n) {
  double lo = v[0], hi = v[0], med = bench_median(v, n);
  for (int i = 1; i < n; i++) {
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  return med > 0 ? 100.0 * (hi - lo) / med : 0;
}

/* ---- figure 1: message validation ------------------------------------ */

typedef struct msg_ctx {
  char *wire; /* the sealed envelope, as received */
  size_t wire_len;
  gv_msg_policy pol;
  int expect; /* 0, or GV_EDUP for the duplicate path */
  /* the same bytes, for the anchor */
  const uint8_t *body;
  size_t body_len;
  uint8_t sig[GV_SIG_BYTES];
  uint8_t origin[GV_ID_BYTES];
  gv_msg sealed;
} msg_ctx;

static int seen_never(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]) {
  (void)ctx;
  (void)id;
  return 0;
}

static int seen_always(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]) {
  (void)ctx;
  (void)id;
  return 1;
}

static void work_decode(void *vctx, uint64_t n) {
  const msg_ctx *c = vctx;

  for (uint64_t i = 0; i < n; i++) {
    gv_msg m;
    gv_why why;
    int rc =
        gv_msg_decode(&m, (const uint8_t *)c->wire, c->wire_len, &c->pol, &why);
    if (rc != c->expect) {
      fprintf(stderr, "bench_proto: decode: %s\n", why.text);
      die("gv_msg_decode", rc);
    }
    gv_msg_clear(&m);
  }
}

static void work_decode_raw(void *vctx, uint64_t n) {
  static const char prefix[] = "grapevine/1 msg";
  const msg_ctx *c = vctx;
  uint8_t tbs[sizeof(prefix) - 1 + GV_MSG_ID_BYTES];

  memcpy(tbs, prefix, sizeof(prefix) - 1);
  for (uint64_t i = 0; i < n; i++) {
    crypto_generichash(tbs + sizeof(prefix) - 1, GV_MSG_ID_BYTES, c->body,
                       c->body_len, NULL, 0);
    if (crypto_sign_verify_detached(c->sig, tbs, sizeof(tbs), c->origin) != 0)
      die("crypto_sign_verify_detached", 1);
  }
}

/* A realistic announcement: broadcasting, two addresses, five repositories,
 * as received one hop from its origin. */
static void msg_setup(msg_ctx *c, const gv_identity *origin) {
  static const char *addrs[] = {"203.0.113.7:7411", "[2001:db8:4::17]:7411"};
  static const char *repos[] = {
      "github.com/grapevine-net/grapevine", "github.com/libuv/libuv",
      "gitlab.com/acme/widgets-core", "codeberg.org/ops/infra-tools",
      "git.example.org:team/monorepo"};
  gv_msg *m = &c->sealed;
  char packed[sizeof(repos) / sizeof(repos[0]) * (GV_REPO_MAX + 1)], *w;
  gv_msg chk;
  gv_why why;
  int rc;

  memset(c, 0, sizeof(*c));
  m->type = GV_MSG_PEER_ANNOUNCEMENT;
  m->ttl = GV_TTL_ANNOUNCE - 1;
  m->hops = 1;
  m->seq = 4242;
  m->ts = T0_MS;
  m->u.peer.broadcasting = true;
  m->u.peer.bootstrap = false;
  for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
    if ((rc = gv_addr_parse(&m->u.peer.addrs[m->u.peer.n_addrs++], addrs[i],
                            strlen(addrs[i]))) < 0)
      die("gv_addr_parse", rc);
  w = packed;
  for (size_t i = 0; i < sizeof(repos) / sizeof(repos[0]); i++) {
    w += snprintf(w, GV_REPO_MAX + 1, "%s", repos[i]) + 1;
    m->u.peer.n_repos++;
  }
  m->u.peer.repos = packed;
  if ((rc = gv_msg_seal(m, origin, &c->wire, &c->wire_len)) < 0)
    die("gv_msg_seal", rc);
  c->body = (const uint8_t *)m->body;
  c->body_len = m->body_len;
  memcpy(c->sig, m->sig, sizeof(c->sig));
  memcpy(c->origin, origin->pk, sizeof(c->origin));
  c->pol.now_ms = T0_MS;
  c->pol.seen = seen_never;

  /* Sanity: it validates, to the same id. */
  rc =
      gv_msg_decode(&chk, (const uint8_t *)c->wire, c->wire_len, &c->pol, &why);
  if (rc != 0 || memcmp(chk.id, m->id, GV_MSG_ID_BYTES) != 0 ||
      chk.u.peer.n_repos != 5 || chk.u.peer.n_addrs != 2) {
    fprintf(stderr, "bench_proto: %s\n", rc ? why.text : "id mismatch");
    die("decoding the sealed announcement", rc);
  }
  gv_msg_clear(&chk);
}

/* ---- figure 2: handshakes -------------------------------------------- */

typedef struct hs_ctx {
  gv_identity ini, res;
} hs_ctx;

/* Bytes handed to one gv_link_recv() call, as one socket read would:
 * node/conn.c reads into a 64 KiB buffer. 0: everything at once. */
static size_t read_size = 64 * 1024;

/* Moves all pending output of `from` into `to`, in reads of read_size;
 * returns the byte count. */
static size_t pump(gv_link *from, gv_link *to, gv_link_msg_cb cb, void *ctx) {
  const uint8_t *p;
  size_t n = gv_link_out(from, &p), off = 0;
  int rc;

  while (off < n) {
    size_t take = read_size == 0 || read_size > n - off ? n - off : read_size;
    if ((rc = gv_link_recv(to, p + off, take, cb, ctx)) < 0)
      die("gv_link_recv", rc);
    off += take;
  }
  gv_link_out_consume(from, n);
  return n;
}

/* Creates a linked pair and runs the handshake to the end: both sides open
 * and both stream headers delivered (so both init_pull calls ran). */
static void link_pair(const hs_ctx *c, gv_link **ini, gv_link **res) {
  int rc, steps = 0;

  if ((rc = gv_link_new(ini, &c->ini, GV_HS_INITIATOR, c->res.pk)) < 0)
    die("gv_link_new(initiator)", rc);
  if ((rc = gv_link_new(res, &c->res, GV_HS_RESPONDER, NULL)) < 0)
    die("gv_link_new(responder)", rc);
  /* M1; M2; M3 + I's header; R's header */
  while (pump(*ini, *res, NULL, NULL) + pump(*res, *ini, NULL, NULL) > 0)
    if (++steps > 8)
      die("handshake (did not settle)", 0);
  if (gv_link_peer_id(*ini) == NULL || gv_link_peer_id(*res) == NULL ||
      memcmp(gv_link_peer_id(*ini), c->res.pk, GV_ID_BYTES) != 0 ||
      memcmp(gv_link_peer_id(*res), c->ini.pk, GV_ID_BYTES) != 0)
    die("handshake (peer ids)", 0);
}

static void work_handshake(void *vctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    gv_link *a, *b;
    link_pair(vctx, &a, &b);
    gv_link_free(a);
    gv_link_free(b);
  }
}

/* BLAKE2b-256(parts...) through one buffer: the raw way to hash a
 * concatenation. key may be NULL. */
static void h256(uint8_t out[32], const uint8_t *key, const void *a,
                 size_t alen, const void *b, size_t blen) {
  uint8_t buf[256];
  memcpy(buf, a, alen);
  memcpy(buf + alen, b, blen);
  crypto_generichash(out, 32, buf, alen + blen, key, key ? 32 : 0);
}

/* The handshake of PROTOCOL.md §4.2 as bare libsodium calls, both sides in
 * sequence, no framing, no state machine, no wiping. Counted from
 * proto/handshake.c and proto/link.c, the primitive calls per handshake are:
 *
 *   crypto_kx_keypair                         2  (gv_hs_new, each side)
 *   crypto_kx_server/client_session_keys   1 + 1 (read_m1 / read_m2)
 *   crypto_sign_detached                      2  (sig_R, sig_I)
 *   crypto_sign_verify_detached               2
 *   xchacha20poly1305_ietf encrypt/decrypt 2 + 2 (96-byte plaintexts)
 *   crypto_generichash, BLAKE2b-256          14  (7 per side: h2, hk_R, h3,
 *                                                 hk_I, h4, 2 stream keys;
 *                                                 4 of the 7 keyed)
 *   secretstream init_push / init_pull     2 + 2 (link.c, step 8)
 *
 * Every call's result is checked, and the two sides must agree on both
 * stream keys. */
static void raw_handshake(const hs_ctx *c) {
  static const uint8_t magic[4] = {'G', 'V', 'H', 0x01};
  static const char prologue[] = "grapevine/1 handshake";
  static const char lab_r[] = "grapevine/1 responder sig";
  static const char lab_i[] = "grapevine/1 initiator sig";
  static const uint8_t zero_nonce[24];
  const uint8_t *id_r = c->res.pk, *id_i = c->ini.pk;
  uint8_t ei_pk[32], ei_sk[32], er_pk[32], er_sk[32];
  uint8_t r_kir[32], r_kri[32], i_kir[32], i_kri[32];
  uint8_t m1[36], t[256], h2[32], h3[32], h4[32], hk[32], pt[96], c2[112],
      c3[112];
  uint8_t ri_r[32], ir_r[32], ri_i[32], ir_i[32]; /* stream keys per side */
  uint8_t hdr_i[24], hdr_r[24];
  crypto_secretstream_xchacha20poly1305_state push_i, push_r, pull_i, pull_r;
  unsigned long long len;
  size_t n;

  /* both sides: ephemerals */
  crypto_kx_keypair(ei_pk, ei_sk);
  crypto_kx_keypair(er_pk, er_sk);
  memcpy(m1, magic, 4);
  memcpy(m1 + 4, ei_pk, 32);

  /* R: M1 in, M2 out */
  if (crypto_kx_server_session_keys(r_kir, r_kri, er_pk, er_sk, ei_pk) != 0)
    die("raw server_session_keys", 1);
  memcpy(t, prologue, 21);
  memcpy(t + 21, m1, 36);
  h256(h2, NULL, t, 57, er_pk, 32);     /* H1 h2 */
  h256(hk, r_kri, "hs r2i", 6, h2, 32); /* H2 hk_R */
  memcpy(t, lab_r, 25);
  memcpy(t + 25, h2, 32);
  memcpy(t + 57, id_r, 32);
  memcpy(pt, id_r, 32);
  crypto_sign_detached(pt + 32, NULL, t, 89, c->res.sk);
  crypto_aead_xchacha20poly1305_ietf_encrypt(c2, &len, pt, 96, h2, 32, NULL,
                                             zero_nonce, hk);
  h256(h3, NULL, h2, 32, c2, 112); /* H3 h3 */

  /* I: M2 in, M3 out */
  if (crypto_kx_client_session_keys(i_kri, i_kir, ei_pk, ei_sk, er_pk) != 0)
    die("raw client_session_keys", 1);
  memcpy(t, prologue, 21);
  memcpy(t + 21, m1, 36);
  h256(h2, NULL, t, 57, er_pk, 32);     /* H4 h2 */
  h256(hk, i_kri, "hs r2i", 6, h2, 32); /* H5 hk_R */
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &len, NULL, c2, 112, h2,
                                                 32, zero_nonce, hk) != 0 ||
      len != 96 || memcmp(pt, id_r, 32) != 0)
    die("raw decrypt c2", 1);
  memcpy(t, lab_r, 25);
  memcpy(t + 25, h2, 32);
  memcpy(t + 57, id_r, 32);
  if (crypto_sign_verify_detached(pt + 32, t, 89, id_r) != 0)
    die("raw verify sig_R", 1);
  h256(h3, NULL, h2, 32, c2, 112);      /* H6 h3 */
  h256(hk, i_kir, "hs i2r", 6, h3, 32); /* H7 hk_I */
  memcpy(t, lab_i, 25);
  memcpy(t + 25, h3, 32);
  memcpy(t + 57, id_r, 32);
  memcpy(t + 89, id_i, 32);
  memcpy(pt, id_i, 32);
  crypto_sign_detached(pt + 32, NULL, t, 121, c->ini.sk);
  crypto_aead_xchacha20poly1305_ietf_encrypt(c3, &len, pt, 96, h3, 32, NULL,
                                             zero_nonce, hk);
  memcpy(t, h3, 32);
  memcpy(t + 32, c3, 112);
  memcpy(t + 144, id_r, 32);
  h256(h4, NULL, t, 176, id_i, 32);            /* H8 h4 */
  h256(ir_i, i_kir, "stream i2r", 10, h4, 32); /* H9 */
  h256(ri_i, i_kri, "stream r2i", 10, h4, 32); /* H10 */

  /* R: M3 in */
  h256(hk, r_kir, "hs i2r", 6, h3, 32); /* H11 hk_I */
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &len, NULL, c3, 112, h3,
                                                 32, zero_nonce, hk) != 0 ||
      len != 96 || memcmp(pt, id_i, 32) != 0)
    die("raw decrypt c3", 1);
  memcpy(t, lab_i, 25);
  memcpy(t + 25, h3, 32);
  memcpy(t + 57, id_r, 32);
  memcpy(t + 89, id_i, 32);
  if (crypto_sign_verify_detached(pt + 32, t, 121, id_i) != 0)
    die("raw verify sig_I", 1);
  memcpy(t, h3, 32);
  memcpy(t + 32, c3, 112);
  memcpy(t + 144, id_r, 32);
  h256(h4, NULL, t, 176, id_i, 32);            /* H12 h4 */
  h256(ir_r, r_kir, "stream i2r", 10, h4, 32); /* H13 */
  h256(ri_r, r_kri, "stream r2i", 10, h4, 32); /* H14 */

  /* step 8: both streams, both directions */
  crypto_secretstream_xchacha20poly1305_init_push(&push_i, hdr_i, ir_i);
  crypto_secretstream_xchacha20poly1305_init_push(&push_r, hdr_r, ri_r);
  if (crypto_secretstream_xchacha20poly1305_init_pull(&pull_r, hdr_i, ir_r) !=
          0 ||
      crypto_secretstream_xchacha20poly1305_init_pull(&pull_i, hdr_r, ri_i) !=
          0)
    die("raw init_pull", 1);
  n = sizeof(ir_i);
  if (memcmp(ir_i, ir_r, n) != 0 || memcmp(ri_i, ri_r, n) != 0)
    die("raw handshake (keys disagree)", 1);
}

static void work_handshake_raw(void *vctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    raw_handshake(vctx);
}

/* ---- figure 3: link throughput --------------------------------------- */

typedef struct link_ctx {
  size_t size; /* plaintext bytes per message */
  uint8_t *msg;
  /* ours */
  gv_link *tx, *rx;
  uint64_t got, sink;
  /* raw */
  crypto_secretstream_xchacha20poly1305_state push, pull;
  uint8_t *ct, *pt;
} link_ctx;

/* What a consumer does at least: reads every cache line of the message. */
static uint64_t touch(const uint8_t *p, size_t len) {
  uint64_t s = p[len - 1];
  for (size_t i = 0; i < len; i += 64)
    s += p[i];
  return s;
}

static int touch_cb(void *vctx, const uint8_t *msg, size_t len) {
  link_ctx *c = vctx;
  c->sink += touch(msg, len);
  c->got += len;
  return 0;
}

static void work_link(void *vctx, uint64_t n) {
  link_ctx *c = vctx;
  uint64_t want = c->got + n * c->size;
  int rc;

  for (uint64_t i = 0; i < n; i++) {
    if ((rc = gv_link_send(c->tx, c->msg, c->size)) < 0)
      die("gv_link_send", rc);
    pump(c->tx, c->rx, touch_cb, c);
  }
  if (c->got != want)
    die("link (bytes delivered)", 0);
}

static void work_link_raw(void *vctx, uint64_t n) {
  link_ctx *c = vctx;
  const size_t ab = crypto_secretstream_xchacha20poly1305_ABYTES;
  unsigned long long mlen;
  unsigned char tag;

  for (uint64_t i = 0; i < n; i++) {
    crypto_secretstream_xchacha20poly1305_push(
        &c->push, c->ct, NULL, c->msg, c->size, NULL, 0,
        crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    if (crypto_secretstream_xchacha20poly1305_pull(
            &c->pull, c->pt, &mlen, &tag, c->ct, c->size + ab, NULL, 0) != 0 ||
        mlen != c->size)
      die("raw secretstream pull", 1);
    c->sink += touch(c->pt, (size_t)mlen);
  }
}

static void link_setup(link_ctx *c, const hs_ctx *ids, size_t size) {
  uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
  uint8_t hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];

  memset(c, 0, sizeof(*c));
  c->size = size;
  c->msg = malloc(size);
  c->ct = malloc(size + crypto_secretstream_xchacha20poly1305_ABYTES);
  c->pt = malloc(size);
  if (c->msg == NULL || c->ct == NULL || c->pt == NULL)
    die("malloc", GV_ENOMEM);
  /* JSON-ish printable payload, like the messages a link carries */
  for (size_t i = 0; i < size; i++)
    c->msg[i] = (uint8_t)(0x20 + (i * 7919u) % 95);
  link_pair(ids, &c->tx, &c->rx);
  crypto_secretstream_xchacha20poly1305_keygen(key);
  crypto_secretstream_xchacha20poly1305_init_push(&c->push, hdr, key);
  if (crypto_secretstream_xchacha20poly1305_init_pull(&c->pull, hdr, key) != 0)
    die("raw init_pull", 1);
  sodium_memzero(key, sizeof(key));
}

static void link_teardown(link_ctx *c) {
  gv_link_free(c->tx);
  gv_link_free(c->rx);
  free(c->msg);
  free(c->ct);
  free(c->pt);
}

/* ---- figures, rounds, report ----------------------------------------- */

typedef struct figure {
  const char *label; /* table */
  const char *key;   /* JSON */
  const char *unit;
  double scale; /* figure = ops/s * scale */
  int decimals;
  bench ours, raw;
  double o[MAX_ROUNDS], r[MAX_ROUNDS];
  double o_med, r_med;
} figure;

/* ours and raw share ctx; raw may be NULL (no anchor). */
static void set_figure(figure *f, const char *label, const char *key,
                       const char *unit, double scale, int decimals,
                       work_fn ours, work_fn raw, void *ctx, uint64_t max_ops) {
  f->label = label;
  f->key = key;
  f->unit = unit;
  f->scale = scale;
  f->decimals = decimals;
  f->ours = (bench){ours, ctx, max_ops, 1};
  f->raw = (bench){raw, raw != NULL ? ctx : NULL, max_ops, 1};
}

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: bench_proto [--json] [--help]\n"
      "\n"
      "Benchmarks proto/ beside raw libsodium doing the same crypto work:\n"
      "messages validated/s (and duplicates rejected/s), handshakes/s,\n"
      "and encrypted-link MB/s for 64 KiB, 1 KiB and 512 KiB messages.\n"
      "ratio = ours / raw as rates: 0.87 = proto/ reaches 87%% of raw\n"
      "libsodium's rate (1.00 = no overhead).\n"
      "\n"
      "  --json   print one JSON object instead of the table\n"
      "  --help   this text\n"
      "\n"
      "environment:\n"
      "  BENCH_SECONDS  seconds per measurement (default 1)\n"
      "  BENCH_ROUNDS   rounds, the median is reported (default 3, max "
      "%d)\n"
      "  BENCH_READ_BYTES  bytes per gv_link_recv() call, like one socket\n"
      "                 read (default 65536, node/conn.c's buffer; 0 = all\n"
      "                 pending bytes at once)\n",
      MAX_ROUNDS);
}

static void cpu_model(char *out, size_t cap) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[256];

  snprintf(out, cap, "unknown CPU");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
      colon += 1 + (colon[1] == ' ');
      colon[strcspn(colon, "\n")] = '\0';
      snprintf(out, cap, "%s", colon);
      break;
    }
  }
  fclose(f);
}

static double round_to(double v, int decimals) {
  double p = pow(10, decimals);
  return round(v * p) / p;
}

static void print_json(const figure *f, int nf, int rounds, double seconds,
                       long nproc, const char *cpu, const msg_ctx *mc) {
  cJSON *root = cJSON_CreateObject(), *mach, *arr;
  char *s;

  cJSON_AddStringToObject(root, "benchmark", "grapevine proto");
  cJSON_AddNumberToObject(root, "rounds", rounds);
  cJSON_AddNumberToObject(root, "seconds_per_measurement", seconds);
  cJSON_AddStringToObject(root, "statistic", "median");
  cJSON_AddStringToObject(root, "ratio",
                          "ours / raw libsodium, both as rates; 1.0 = no "
                          "overhead");
  mach = cJSON_AddObjectToObject(root, "machine");
  cJSON_AddNumberToObject(mach, "nproc", (double)nproc);
  cJSON_AddStringToObject(mach, "cpu", cpu);
  cJSON_AddStringToObject(mach, "libsodium", sodium_version_string());
  cJSON_AddStringToObject(mach, "cjson", cJSON_Version());
  cJSON_AddNumberToObject(root, "announcement_bytes", (double)mc->wire_len);
  cJSON_AddNumberToObject(root, "announcement_body_bytes",
                          (double)mc->body_len);
  cJSON_AddNumberToObject(root, "link_read_bytes", (double)read_size);
  arr = cJSON_AddArrayToObject(root, "figures");
  for (int i = 0; i < nf; i++) {
    cJSON *o = cJSON_CreateObject(), *ro = cJSON_CreateArray(),
          *rr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "name", f[i].key);
    cJSON_AddStringToObject(o, "unit", f[i].unit);
    cJSON_AddNumberToObject(o, "ours", round_to(f[i].o_med, f[i].decimals));
    for (int r = 0; r < rounds; r++)
      cJSON_AddItemToArray(
          ro, cJSON_CreateNumber(round_to(f[i].o[r], f[i].decimals)));
    if (f[i].raw.fn != NULL) {
      cJSON_AddNumberToObject(o, "raw", round_to(f[i].r_med, f[i].decimals));
      cJSON_AddNumberToObject(o, "ratio", round_to(f[i].o_med / f[i].r_med, 3));
      for (int r = 0; r < rounds; r++)
        cJSON_AddItemToArray(
            rr, cJSON_CreateNumber(round_to(f[i].r[r], f[i].decimals)));
    } else {
      cJSON_AddNullToObject(o, "raw");
      cJSON_AddNullToObject(o, "ratio");
    }
    cJSON_AddItemToObject(o, "ours_rounds", ro);
    cJSON_AddItemToObject(o, "raw_rounds", rr);
  }
  s = cJSON_Print(root);
  if (s == NULL)
    die("cJSON_Print", GV_ENOMEM);
  printf("%s\n", s);
  free(s);
  cJSON_Delete(root);
}

static void print_table(const figure *f, int nf, int rounds, double seconds,
                        long nproc, const char *cpu, const msg_ctx *mc) {
  printf("grapevine proto benchmark (median of %d round%s, %.1f s each)\n",
         rounds, rounds == 1 ? "" : "s", seconds);
  printf("machine: %ld CPU%s online (%s), libsodium %s, cJSON %s\n", nproc,
         nproc == 1 ? "" : "s", cpu, sodium_version_string(), cJSON_Version());
  printf("message: signed PEER_ANNOUNCEMENT, %zu bytes (body %zu), "
         "2 addrs, 5 repos\n",
         mc->wire_len, mc->body_len);
  if (read_size > 0)
    printf("link: bytes delivered in reads of at most %zu bytes\n\n",
           read_size);
  else
    printf("link: all pending bytes delivered in one gv_link_recv call\n\n");
  printf("%-30s %14s %16s %7s   %s\n", "figure", "ours", "raw libsodium",
         "ratio", "spread ours/raw");
  for (int i = 0; i < nf; i++) {
    char o[32], r[32];
    snprintf(o, sizeof(o), "%.*f", f[i].decimals, f[i].o_med);
    if (f[i].raw.fn != NULL) {
      snprintf(r, sizeof(r), "%.*f", f[i].decimals, f[i].r_med);
      printf("%-30s %14s %16s %7.2f   %4.1f%% / %4.1f%%\n", f[i].label, o, r,
             f[i].o_med / f[i].r_med, spread_pct(f[i].o, rounds),
             spread_pct(f[i].r, rounds));
    } else {
      printf("%-30s %14s %16s %7s   %4.1f%%\n", f[i].label, o, "(no anchor)",
             "", spread_pct(f[i].o, rounds));
    }
  }
  printf("\nratio = ours / raw, both as rates: 0.87 would mean proto/ reaches "
         "87%% of\nraw libsodium's rate for the same crypto work (1.00 = no "
         "overhead).\nspread = (max - min) / median over the rounds. "
         "MB = 10^6 bytes of plaintext.\n");
}

int main(int argc, char **argv) {
  bool json = false;
  double seconds, warm;
  int rounds, nf;
  long nproc;
  char cpu[128];
  uint8_t seed[32];
  gv_identity alice, bob;
  static msg_ctx mc, mc_dup;
  hs_ctx hc;
  link_ctx l64, l1, l512;
  figure f[6];

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "bench_proto: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  seconds = bench_env("BENCH_SECONDS", 1.0, 0.01, 600);
  rounds = (int)bench_env("BENCH_ROUNDS", 3, 1, MAX_ROUNDS);
  read_size =
      (size_t)bench_env("BENCH_READ_BYTES", (double)read_size, 0, 1 << 30);
  warm = seconds / 4 < 0.25 ? seconds / 4 : 0.25;
  if (sodium_init() < 0)
    die("sodium_init", GV_ENOMEM);
  nproc = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_model(cpu, sizeof(cpu));

  memset(seed, 1, sizeof(seed));
  if (gv_id_from_seed(&alice, seed) < 0)
    die("gv_id_from_seed", 1);
  memset(seed, 2, sizeof(seed));
  if (gv_id_from_seed(&bob, seed) < 0)
    die("gv_id_from_seed", 1);

  msg_setup(&mc, &alice);
  mc_dup = mc; /* shares the wire bytes; only the policy differs */
  mc_dup.pol.seen = seen_always;
  mc_dup.expect = GV_EDUP;
  hc.ini = alice;
  hc.res = bob;
  link_setup(&l64, &hc, 64 * 1024);
  link_setup(&l1, &hc, 1024);
  link_setup(&l512, &hc, GV_MSG_MAX);

  memset(f, 0, sizeof(f));
  set_figure(&f[0], "messages validated/s", "messages_validated_per_s", "1/s",
             1, 0, work_decode, work_decode_raw, &mc, 10000000);
  set_figure(&f[1], "  duplicates rejected/s", "duplicates_rejected_per_s",
             "1/s", 1, 0, work_decode, NULL, &mc_dup, 10000000);
  set_figure(&f[2], "handshakes/s", "handshakes_per_s", "1/s", 1, 0,
             work_handshake, work_handshake_raw, &hc, 1000000);
  set_figure(&f[3], "link MB/s (64 KiB messages)", "link_mb_per_s_64k", "MB/s",
             65536 / 1e6, 1, work_link, work_link_raw, &l64,
             LINK_TOTAL_BYTES / 65536);
  set_figure(&f[4], "link MB/s (1 KiB messages)", "link_mb_per_s_1k", "MB/s",
             1024 / 1e6, 1, work_link, work_link_raw, &l1,
             LINK_TOTAL_BYTES / 1024);
  set_figure(&f[5], "link MB/s (512 KiB messages)", "link_mb_per_s_512k",
             "MB/s", GV_MSG_MAX / 1e6, 1, work_link, work_link_raw, &l512,
             LINK_TOTAL_BYTES / GV_MSG_MAX);
  nf = (int)(sizeof(f) / sizeof(f[0]));

  if (isatty(STDERR_FILENO))
    fprintf(stderr, "bench_proto: about %.0f s (%d rounds of %.1f s)...\n",
            (double)nf * 2 * (rounds * seconds + warm), rounds, seconds);
  for (int i = 0; i < nf; i++) {
    warm_up(&f[i].ours, warm);
    if (f[i].raw.fn != NULL)
      warm_up(&f[i].raw, warm);
  }
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < nf; i++) {
      bool raw_first = (r + i) % 2 == 1;
      if (raw_first && f[i].raw.fn != NULL)
        f[i].r[r] = measure(&f[i].raw, seconds) * f[i].scale;
      f[i].o[r] = measure(&f[i].ours, seconds) * f[i].scale;
      if (!raw_first && f[i].raw.fn != NULL)
        f[i].r[r] = measure(&f[i].raw, seconds) * f[i].scale;
    }
  }
  for (int i = 0; i < nf; i++) {
    f[i].o_med = bench_median(f[i].o, rounds);
    f[i].r_med = f[i].raw.fn != NULL ? bench_median(f[i].r, rounds) : 0;
  }

  if (json)
    print_json(f, nf, rounds, seconds, nproc, cpu, &mc);
  else
    print_table(f, nf, rounds, seconds, nproc, cpu, &mc);

  link_teardown(&l64);
  link_teardown(&l1);
  link_teardown(&l512);
  free(mc.wire);
  gv_msg_clear(&mc.sealed);
  gv_id_wipe(&alice);
  gv_id_wipe(&bob);
  return 0;
}

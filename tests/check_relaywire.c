/* The relay's wire format (RELAY.md §4.2, §5.1, §6; proto/relaywire.h). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "relaywire.h"
#include "testutil.h"

/* Alice (seed 0x01) and Bob (0x02) share team 1; Carol (0x03) is in team 2
 * only. */
static gv_identity alice, bob, carol;
static gv_rw_team team1, team2;
static gv_rw_boxkey k_ab, k_ba, k_ac, k_cb;

static void setup(void) {
  uint8_t T[GV_RW_KEY_BYTES];

  ck_assert_int_ge(sodium_init(), 0);
  tu_identity(&alice, 0x01);
  tu_identity(&bob, 0x02);
  tu_identity(&carol, 0x03);
  memset(T, 0x11, sizeof(T));
  gv_rw_team_keys(T, &team1);
  memset(T, 0x22, sizeof(T));
  gv_rw_team_keys(T, &team2);
  ck_assert_int_eq(gv_rw_peer_key(&alice, bob.pk, &k_ab, NULL), 0);
  ck_assert_int_eq(gv_rw_peer_key(&bob, alice.pk, &k_ba, NULL), 0);
  ck_assert_int_eq(gv_rw_peer_key(&alice, carol.pk, &k_ac, NULL), 0);
  ck_assert_int_eq(gv_rw_peer_key(&carol, bob.pk, &k_cb, NULL), 0);
}

static void teardown(void) {
  gv_rw_team_keys_wipe(&team1);
  gv_rw_team_keys_wipe(&team2);
}

static gv_rw_str str(const char *s) {
  gv_rw_str r = {s, strlen(s)};
  return r;
}

/* A route header from src to dst with id filled with b. */
static gv_rw_route hdr(const gv_identity *src, const gv_identity *dst,
                       uint8_t b) {
  gv_rw_route r;
  memset(&r, 0, sizeof(r));
  memcpy(r.src, src->pk, GV_ID_BYTES);
  memcpy(r.dst, dst->pk, GV_ID_BYTES);
  memset(r.id, b, GV_RW_ID_BYTES);
  return r;
}

/* Encodes m into a fresh buffer; *len its size. */
static uint8_t *encode(const gv_rw_body *m, size_t *len) {
  size_t n = gv_rw_body_size(m);
  uint8_t *b = malloc(n + 1);
  gv_why why = {{0}};

  ck_assert_msg(gv_rw_body_encode(m, b, n, len, &why) == 0, "%s", why.text);
  ck_assert_uint_eq(*len, n);
  return b;
}

/* One DATA body the tests share. */
static gv_rw_body sample_data(void) {
  static const uint8_t payload[] = "hello, Bob";
  gv_rw_body m;

  memset(&m, 0, sizeof(m));
  m.kind = GV_RW_DATA;
  m.u.data.ttl_ms = 604800000u;
  m.u.data.seq = 0x0102030405060708ull;
  m.u.data.from = str("web:Alice");
  m.u.data.to = str("api:Bob");
  m.u.data.thread = str("review #7");
  m.u.data.payload = payload;
  m.u.data.payload_len = sizeof(payload) - 1;
  return m;
}

static const uint8_t NONCE[GV_RW_NONCE_BYTES] = {
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

/* Seals kind || body from alice to bob in team1 as a full ROUTE packet. */
static uint8_t *route_packet(const gv_rw_boxkey *k, const gv_rw_team *team,
                             const gv_rw_route *h, unsigned kind,
                             const uint8_t *body, size_t body_len,
                             size_t *len) {
  size_t sl = gv_rw_sealed_size(body_len);
  uint8_t *p = malloc(gv_rw_route_size(sl));
  gv_rw_route r = *h;
  gv_why why = {{0}};

  ck_assert_msg(gv_rw_seal(k, team, NONCE, h, kind, body, body_len,
                           p + GV_RW_ROUTE_HDR, sl, &why) == 0,
                "%s", why.text);
  r.sealed = p + GV_RW_ROUTE_HDR; /* in place: nothing is copied */
  r.sealed_len = sl;
  ck_assert_int_eq(gv_rw_route_encode(&r, p, gv_rw_route_size(sl), len, NULL),
                   0);
  return p;
}

/* Decodes a ROUTE packet and opens it as `self` would: with the key shared
 * with the src the packet names, against the given teams. */
static int open_packet(const uint8_t *p, size_t len, const gv_identity *self,
                       const gv_rw_team *teams, size_t n, gv_rw_opened *o,
                       uint8_t **buf, gv_why *why) {
  gv_rw_boxkey k;
  gv_rw_hop h;
  int rc = gv_rw_hop_decode(p, len, &h, why);

  *buf = NULL;
  memset(o, 0, sizeof(*o));
  if (rc < 0)
    return rc;
  ck_assert_uint_eq(h.kind, GV_RW_ROUTE);
  if ((rc = gv_rw_peer_key(self, h.u.route.src, &k, why)) < 0)
    return rc;
  *buf = malloc(h.u.route.sealed_len);
  rc = gv_rw_open(&k, &h.u.route, teams, n, *buf, h.u.route.sealed_len, o, why);
  gv_rw_peer_key_wipe(&k);
  return rc;
}

/* ---- hop packets ---- */

START_TEST(test_route_roundtrip) {
  uint8_t sealed[GV_RW_SEAL_OVERHEAD + 5], out[200];
  gv_rw_route r = hdr(&alice, &bob, 0xab);
  gv_rw_hop h;
  size_t len;

  memset(sealed, 0x5a, sizeof(sealed));
  r.hops = 2;
  r.sealed = sealed;
  r.sealed_len = sizeof(sealed);
  ck_assert_int_eq(gv_rw_route_encode(&r, out, sizeof(out), &len, NULL), 0);
  ck_assert_uint_eq(len, GV_RW_ROUTE_HDR + sizeof(sealed));
  ck_assert_uint_eq(out[0], 0x01);
  ck_assert_mem_eq(out + 1, bob.pk, 32);    /* dst first */
  ck_assert_mem_eq(out + 33, alice.pk, 32); /* then src */
  ck_assert_uint_eq(out[65], 2);
  ck_assert_int_eq(gv_rw_hop_decode(out, len, &h, NULL), 0);
  ck_assert_uint_eq(h.kind, GV_RW_ROUTE);
  ck_assert_mem_eq(h.u.route.dst, bob.pk, 32);
  ck_assert_mem_eq(h.u.route.src, alice.pk, 32);
  ck_assert_mem_eq(h.u.route.id, r.id, 16);
  ck_assert_uint_eq(h.u.route.hops, 2);
  ck_assert_ptr_eq(h.u.route.sealed, out + GV_RW_ROUTE_HDR);
  ck_assert_uint_eq(h.u.route.sealed_len, sizeof(sealed));
  ck_assert_int_eq(gv_rw_route_encode(&r, out, len - 1, &len, NULL),
                   GV_ETOOBIG);
}
END_TEST

START_TEST(test_route_rejects) {
  uint8_t *p = calloc(1, GV_RW_ROUTE_HDR + GV_RW_SEALED_MAX + 1);
  gv_rw_route r = hdr(&alice, &bob, 1);
  gv_rw_hop h;
  gv_why why = {{0}};
  size_t len;

  r.sealed = p + GV_RW_ROUTE_HDR;
  r.sealed_len = GV_RW_SEAL_OVERHEAD;
  ck_assert_int_eq(gv_rw_route_encode(&r, p, 200, &len, NULL), 0);
  /* A truncation at every byte. */
  for (size_t n = 0; n < len; n++) {
    int rc = gv_rw_hop_decode(p, n, &h, &why);
    ck_assert_int_eq(rc, n == 0 ? GV_ETYPE : GV_EFRAME);
    ck_assert_str_ne(why.text, "");
  }
  ck_assert_int_eq(gv_rw_hop_decode(p, len, &h, NULL), 0);
  /* hops 2 passes, 3 is dropped. */
  p[65] = 2;
  ck_assert_int_eq(gv_rw_hop_decode(p, len, &h, NULL), 0);
  p[65] = 3;
  ck_assert_int_eq(gv_rw_hop_decode(p, len, &h, &why), GV_ERANGE);
  p[65] = 0;
  /* The sealed limit, and one past it; the largest ROUTE fits channel 2. */
  ck_assert_uint_le(gv_rw_route_size(GV_RW_SEALED_MAX),
                    gv_chan_max(GV_CHAN_RELAY));
  ck_assert_int_eq(
      gv_rw_hop_decode(p, GV_RW_ROUTE_HDR + GV_RW_SEALED_MAX, &h, NULL), 0);
  ck_assert_int_eq(
      gv_rw_hop_decode(p, GV_RW_ROUTE_HDR + GV_RW_SEALED_MAX + 1, &h, &why),
      GV_ETOOBIG);
  r.sealed_len = GV_RW_SEALED_MAX + 1;
  ck_assert_int_eq(
      gv_rw_route_encode(&r, p, GV_RW_SEALED_MAX + 200, &len, NULL),
      GV_ETOOBIG);
  r.sealed_len = GV_RW_SEAL_OVERHEAD;
  r.hops = 3;
  ck_assert_int_eq(gv_rw_route_encode(&r, p, 200, &len, NULL), GV_ERANGE);
  /* Unknown hop kinds. */
  for (unsigned k = 0; k < 256; k++) {
    p[0] = (uint8_t)k;
    if (k != GV_RW_ROUTE && k != GV_RW_CREDIT)
      ck_assert_int_eq(gv_rw_hop_decode(p, 100, &h, NULL), GV_ETYPE);
  }
  free(p);
}
END_TEST

START_TEST(test_credit) {
  uint8_t b[GV_RW_CREDIT_LEN + 1];
  gv_rw_hop h;

  gv_rw_credit_encode(0x00400000u, b);
  ck_assert_uint_eq(b[0], 0x02);
  ck_assert_uint_eq(b[1], 0x00);
  ck_assert_uint_eq(b[2], 0x40);
  ck_assert_uint_eq(b[4], 0x00);
  ck_assert_int_eq(gv_rw_hop_decode(b, GV_RW_CREDIT_LEN, &h, NULL), 0);
  ck_assert_uint_eq(h.kind, GV_RW_CREDIT);
  ck_assert_uint_eq(h.u.window, 4u * 1024 * 1024);
  for (size_t n = 1; n <= sizeof(b); n++)
    if (n != GV_RW_CREDIT_LEN)
      ck_assert_int_eq(gv_rw_hop_decode(b, n, &h, NULL), GV_EFRAME);
}
END_TEST

/* ---- team keys and tokens ---- */

START_TEST(test_team_keys) {
  uint8_t T[32], want[32];

  memset(T, 0x11, sizeof(T));
  crypto_generichash(want, 32, (const uint8_t *)"grapevine/2 team id", 19, T,
                     32);
  ck_assert_mem_eq(team1.team_id, want, 32);
  crypto_generichash(want, 32, (const uint8_t *)"grapevine/2 team auth", 21, T,
                     32);
  ck_assert_mem_eq(team1.auth, want, 32);
  crypto_generichash(want, 32, (const uint8_t *)"grapevine/2 team dir", 20, T,
                     32);
  ck_assert_mem_eq(team1.dir, want, 32);
  ck_assert_mem_ne(team1.team_id, team2.team_id, 32);
  ck_assert_mem_ne(team1.auth, team1.dir, 32);
}
END_TEST

START_TEST(test_token_roundtrip) {
  uint8_t T[32], T2[32], inv[32];
  char tok[GV_RW_TOKEN_LEN + 1];
  gv_why why = {{0}};

  for (int i = 0; i < 32; i++)
    T[i] = (uint8_t)(i * 37 + 250); /* bytes that use '-' and '_' */
  gv_rw_token_encode(T, alice.pk, tok);
  ck_assert_uint_eq(strlen(tok), GV_RW_TOKEN_LEN);
  ck_assert(strncmp(tok, "gvteam1.", 8) == 0);
  ck_assert_ptr_null(strpbrk(tok + 8, "+/="));
  ck_assert_msg(gv_rw_token_decode(tok, strlen(tok), T2, inv, &why) == 0, "%s",
                why.text);
  ck_assert_mem_eq(T2, T, 32);
  ck_assert_mem_eq(inv, alice.pk, 32);
}
END_TEST

START_TEST(test_token_bad) {
  uint8_t T[32], out[32], inv[32], zero[32] = {0};
  char tok[GV_RW_TOKEN_LEN + 1], bad[GV_RW_TOKEN_LEN + 8];
  gv_why why = {{0}};

  memset(T, 0x42, sizeof(T));
  gv_rw_token_encode(T, alice.pk, tok);
  /* Every truncation, and a character too many. */
  for (size_t n = 0; n < GV_RW_TOKEN_LEN; n++) {
    ck_assert_int_eq(gv_rw_token_decode(tok, n, out, inv, &why), GV_EFIELD);
    ck_assert_str_ne(why.text, "");
  }
  snprintf(bad, sizeof(bad), "%sA", tok);
  ck_assert_int_eq(gv_rw_token_decode(bad, strlen(bad), out, inv, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "characters"));
  /* Another prefix or version. */
  memcpy(bad, tok, sizeof(tok));
  bad[6] = '2';
  ck_assert_int_eq(gv_rw_token_decode(bad, GV_RW_TOKEN_LEN, out, inv, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "gvteam1."));
  /* Characters of standard base64, padding, space, NUL. */
  const char subst[] = {'+', '/', '=', ' ', '\0', '.', '\xb7', '\xad'};
  for (size_t i = 0; i < sizeof(subst); i++) {
    memcpy(bad, tok, sizeof(tok));
    bad[40] = subst[i];
    ck_assert_int_eq(gv_rw_token_decode(bad, GV_RW_TOKEN_LEN, out, inv, &why),
                     GV_EFIELD);
    ck_assert_ptr_nonnull(strstr(why.text, "base64url"));
  }
  /* A non-canonical last digit: 64 bytes leave 4 spare bits in it. */
  memcpy(bad, tok, sizeof(tok));
  bad[GV_RW_TOKEN_LEN - 1] = bad[GV_RW_TOKEN_LEN - 1] == 'B' ? 'C' : 'B';
  ck_assert_int_eq(gv_rw_token_decode(bad, GV_RW_TOKEN_LEN, out, inv, &why),
                   GV_EFIELD);
  /* An inviter that is no valid node id. */
  gv_rw_token_encode(T, zero, bad);
  ck_assert_int_eq(gv_rw_token_decode(bad, GV_RW_TOKEN_LEN, out, inv, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "inviter"));
}
END_TEST

/* ---- peer keys ---- */

START_TEST(test_peer_key) {
  uint8_t bad[32];
  gv_rw_boxkey k;
  gv_why why = {{0}};

  ck_assert_mem_eq(k_ab.k, k_ba.k, 32); /* both ends agree */
  ck_assert_mem_ne(k_ab.k, k_ac.k, 32);
  memset(bad, 0, sizeof(bad)); /* the identity point: small order */
  ck_assert_int_eq(gv_rw_peer_key(&alice, bad, &k, &why), GV_EFIELD);
  ck_assert_str_ne(why.text, "");
  memset(bad, 0xff, sizeof(bad)); /* not a point */
  ck_assert_int_eq(gv_rw_peer_key(&alice, bad, &k, &why), GV_EFIELD);
  gv_rw_peer_key_wipe(&k);
}
END_TEST

/* ---- bodies ---- */

/* Every kind: encode, decode, same fields, same bytes again. */
START_TEST(test_body_roundtrip) {
  uint8_t ids[3 * 32];
  gv_rw_dir_entry list[2] = {{str("web"), str("Alice"), 1},
                             {str("api"), str("Bob-2.x_y"), 0}};
  gv_rw_body ms[10], d;
  size_t n = 0, len, len2, off = 0;
  gv_rw_dir_entry e;
  gv_rw_dir_node blocks[3] = {{ids, 0x0102030405060708ull, 2, list, NULL, 0},
                              {ids + 32, 1, 0, NULL, NULL, 0},
                              {ids + 64, 7, 1, list + 1, NULL, 0}},
                 blk, seen[3];
  size_t boff = 0;

  memset(ms, 0, sizeof(ms));
  memset(ids, 0xcd, sizeof(ids));
  ms[n++] = sample_data();
  ms[n++].kind = GV_RW_STORED;
  ms[n++].kind = GV_RW_DELIVERED;
  ms[n++].kind = GV_RW_READ;
  ms[n].kind = GV_RW_FAILED;
  ms[n++].u.reason = GV_RW_FAIL_TOO_LARGE;
  ms[n].kind = GV_RW_BUSY;
  ms[n++].u.retry_after_ms = 0x01020304;
  ms[n++].kind = GV_RW_JOIN;
  ms[n].kind = GV_RW_MEMBERS;
  ms[n].u.members.n = 3;
  ms[n++].u.members.ids = ids;
  ms[n].kind = GV_RW_DIR;
  ms[n].u.dir.n_nodes = 3;
  ms[n++].u.dir.nodes = blocks;
  ms[n].kind = GV_RW_GONE;
  ms[n].u.gone.seq = 42;
  ms[n].u.gone.from = str("web:Alice");
  ms[n++].u.gone.to = str("api:Bob");
  for (size_t i = 0; i < n; i++) {
    uint8_t *b = encode(&ms[i], &len), *b2;
    gv_why why = {{0}};
    ck_assert_msg(gv_rw_body_decode(ms[i].kind, b, len, &d, &why) == 0,
                  "%s: %s", gv_rw_kind_name(ms[i].kind), why.text);
    ck_assert_uint_eq(d.kind, ms[i].kind);
    switch (d.kind) {
    case GV_RW_DATA:
      ck_assert_uint_eq(d.u.data.ttl_ms, 604800000u);
      ck_assert(d.u.data.seq == 0x0102030405060708ull);
      ck_assert_uint_eq(d.u.data.from.len, 9);
      ck_assert_mem_eq(d.u.data.from.s, "web:Alice", 9);
      ck_assert_mem_eq(d.u.data.to.s, "api:Bob", 7);
      ck_assert_mem_eq(d.u.data.thread.s, "review #7", 9);
      ck_assert_uint_eq(d.u.data.payload_len, 10);
      ck_assert_mem_eq(d.u.data.payload, "hello, Bob", 10);
      ck_assert_uint_eq(b[0], 0x24); /* 604800000 = 0x240c8400 */
      break;
    case GV_RW_FAILED: ck_assert_uint_eq(d.u.reason, 3); break;
    case GV_RW_BUSY: ck_assert_uint_eq(d.u.retry_after_ms, 0x01020304); break;
    case GV_RW_GONE:
      ck_assert(d.u.gone.seq == 42);
      ck_assert_mem_eq(d.u.gone.from.s, "web:Alice", 9);
      ck_assert_mem_eq(d.u.gone.to.s, "api:Bob", 7);
      ck_assert_uint_eq(len, 8 + 10 + 8);
      break;
    case GV_RW_MEMBERS:
      ck_assert_uint_eq(d.u.members.n, 3);
      ck_assert_mem_eq(d.u.members.ids, ids, sizeof(ids));
      break;
    case GV_RW_DIR:
      ck_assert_uint_eq(d.u.dir.n_nodes, 3);
      for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(gv_rw_dir_node_next(&d.u.dir, &boff, &blk), 1);
        ck_assert_mem_eq(blk.node, blocks[k].node, 32);
        ck_assert(blk.ver == blocks[k].ver);
        ck_assert_uint_eq(blk.n, blocks[k].n);
        off = 0;
        for (int j = 0; j < blk.n; j++) {
          const gv_rw_dir_entry *want = &blocks[k].list[j];
          ck_assert_int_eq(gv_rw_dir_next(&blk, &off, &e), 1);
          ck_assert_uint_eq(e.project.len, want->project.len);
          ck_assert_mem_eq(e.project.s, want->project.s, e.project.len);
          ck_assert_mem_eq(e.name.s, want->name.s, e.name.len);
          ck_assert_uint_eq(e.online, want->online);
        }
        ck_assert_int_eq(gv_rw_dir_next(&blk, &off, &e), 0);
        seen[k] = blocks[k]; /* re-encode what was decoded */
      }
      ck_assert_int_eq(gv_rw_dir_node_next(&d.u.dir, &boff, &blk), 0);
      d.u.dir.nodes = seen;
      break;
    default: ck_assert_uint_eq(len, 0); break;
    }
    b2 = encode(&d, &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(b2, b, len);
    free(b);
    free(b2);
  }
}
END_TEST

/* A truncation at every byte, and a byte too many, of every kind with a
 * body; an empty kind with a byte. */
START_TEST(test_body_truncations) {
  uint8_t ids[2 * 32] = {0};
  gv_rw_dir_entry list[1] = {{str("p"), str("n"), 0}};
  gv_rw_body ms[5], d;
  size_t len;

  memset(ms, 0, sizeof(ms));
  ms[0] = sample_data();
  ms[1].kind = GV_RW_FAILED;
  ms[1].u.reason = 1;
  ms[2].kind = GV_RW_BUSY;
  ms[3].kind = GV_RW_MEMBERS;
  ms[3].u.members.n = 2;
  ms[3].u.members.ids = ids;
  gv_rw_dir_node blocks[1] = {{ids, 3, 1, list, NULL, 0}};
  ms[4].kind = GV_RW_DIR;
  ms[4].u.dir.n_nodes = 1;
  ms[4].u.dir.nodes = blocks;
  for (size_t i = 0; i < 5; i++) {
    uint8_t *b = encode(&ms[i], &len), *big = malloc(len + 1);
    gv_why why = {{0}};
    for (size_t n = 0; n < len; n++) {
      ck_assert_int_eq(gv_rw_body_decode(ms[i].kind, b, n, &d, &why),
                       GV_EFRAME);
      ck_assert_str_ne(why.text, "");
    }
    memcpy(big, b, len);
    big[len] = 0;
    ck_assert_int_eq(gv_rw_body_decode(ms[i].kind, big, len + 1, &d, &why),
                     GV_EFRAME);
    ck_assert_ptr_nonnull(strstr(why.text, "after the body"));
    free(b);
    free(big);
  }
  const unsigned empty[] = {GV_RW_STORED, GV_RW_DELIVERED, GV_RW_READ,
                            GV_RW_JOIN};
  for (size_t i = 0; i < 4; i++) {
    ck_assert_int_eq(gv_rw_body_decode(empty[i], ids, 0, &d, NULL), 0);
    ck_assert_int_eq(gv_rw_body_decode(empty[i], ids, 1, &d, NULL), GV_EFRAME);
  }
  for (unsigned k = 0; k < 256; k++)
    if (gv_rw_kind_name(k) == NULL)
      ck_assert_int_eq(gv_rw_body_decode(k, ids, 0, &d, NULL), GV_ETYPE);
}
END_TEST

START_TEST(test_names) {
  char p64[65], p65[66], long_ok[130], long_bad[131];
  const char *good[] = {"a:b", "A.b_c-9:x", "web:Alice", "..:--"};
  const char *bad[] = {"",     "a",   ":a",  "a:",    "a:b:c",      "a b:c",
                       "a:b ", "*:b", "a:*", "a/b:c", "a:\xc3\xa9", "a\n:b"};

  memset(p64, 'x', 64);
  p64[64] = '\0';
  memset(p65, 'x', 65);
  p65[65] = '\0';
  ck_assert_int_eq(gv_rw_name_check(p64, 64), 0);
  ck_assert_int_eq(gv_rw_name_check(p65, 65), GV_EFIELD);
  ck_assert_int_eq(gv_rw_name_check("", 0), GV_EFIELD);
  ck_assert_int_eq(gv_rw_name_check("a:b", 3), GV_EFIELD);
  snprintf(long_ok, sizeof(long_ok), "%s:%s", p64, p64);
  snprintf(long_bad, sizeof(long_bad), "%s:%s", p65, p64);
  ck_assert_int_eq(gv_rw_agent_check(long_ok, 129), 0);
  ck_assert_int_eq(gv_rw_agent_check(long_bad, 130), GV_EFIELD);
  for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
    ck_assert_int_eq(gv_rw_agent_check(good[i], strlen(good[i])), 0);
  /* Every bad name is refused by the encoder and, on the wire, by the
   * decoder, as from, as to, and (split) in a DIR entry. */
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    gv_rw_body m = sample_data(), d;
    uint8_t buf[512];
    size_t len, at;
    gv_why why = {{0}};
    ck_assert_int_eq(gv_rw_agent_check(bad[i], strlen(bad[i])), GV_EFIELD);
    m.u.data.to = str(bad[i]);
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                     GV_EFIELD);
    ck_assert_uint_eq(gv_rw_body_size(&m), SIZE_MAX);
    /* Put the bad name on the wire by hand: "to" follows 4+8+1+9. */
    m = sample_data();
    m.u.data.to = str("a:b");
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL), 0);
    at = 4 + 8 + 1 + 9;
    ck_assert_uint_eq(buf[at], 3);
    memmove(buf + at + 1 + strlen(bad[i]), buf + at + 4, len - at - 4);
    buf[at] = (uint8_t)strlen(bad[i]);
    memcpy(buf + at + 1, bad[i], strlen(bad[i]));
    len = len - 3 + strlen(bad[i]);
    ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why),
                     GV_EFIELD);
    ck_assert_ptr_nonnull(strstr(why.text, "'to'"));
  }
  /* A DIR part with ':' or out of length. */
  {
    gv_rw_dir_entry e[1] = {{str("a:b"), str("n"), 1}};
    uint8_t node[32] = {9};
    gv_rw_dir_node blk = {node, 1, 1, e, NULL, 0};
    gv_rw_body m, d;
    uint8_t buf[300];
    size_t len;
    gv_why why = {{0}};
    memset(&m, 0, sizeof(m));
    m.kind = GV_RW_DIR;
    m.u.dir.n_nodes = 1;
    m.u.dir.nodes = &blk;
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                     GV_EFIELD);
    e[0].project = str(p65);
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                     GV_EFIELD);
    e[0].project = str("p");
    e[0].name = str("");
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                     GV_EFIELD);
    /* On the wire: 1 node, its id, version 1, 1 entry: "p", "", online. */
    uint8_t wire[2 + 32 + 10 + 4] = {0, 1};
    wire[2 + 32 + 7] = 1;
    wire[2 + 32 + 9] = 1;
    memcpy(wire + 2 + 32 + 10, (const uint8_t[]){1, 'p', 0, 1}, 4);
    ck_assert_int_eq(gv_rw_body_decode(GV_RW_DIR, wire, sizeof(wire), &d, &why),
                     GV_EFIELD);
    ck_assert_ptr_nonnull(strstr(why.text, "name"));
  }
}
END_TEST

START_TEST(test_data_fields) {
  char t64[65], t65[66];
  gv_rw_body m = sample_data(), d;
  uint8_t buf[400], *big;
  size_t len;
  gv_why why = {{0}};

  memset(t64, '~', 64);
  t64[64] = '\0';
  memset(t65, ' ', 65);
  t65[65] = '\0';
  m.u.data.thread = str(t64);
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL), 0);
  m.u.data.thread = str("");
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL), 0);
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, NULL), 0);
  ck_assert_uint_eq(d.u.data.thread.len, 0);
  m.u.data.thread = str(t65);
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                   GV_EFIELD);
  m.u.data.thread = str("tab\there");
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                   GV_EFIELD);
  m.u.data.thread = str("\x7f");
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                   GV_EFIELD);
  /* ttl_ms, seq: on the wire too (ttl_ms is bytes 0..3, seq 4..11). */
  m = sample_data();
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL), 0);
  memset(buf, 0, 4);
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why),
                   GV_ERANGE);
  ck_assert_ptr_nonnull(strstr(why.text, "ttl_ms"));
  buf[0] = 0x9a; /* 0x9a7ec801 = 30 days + 1 ms */
  buf[1] = 0x7e;
  buf[2] = 0xc8;
  buf[3] = 0x01;
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why),
                   GV_ERANGE);
  buf[3] = 0x00;
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why), 0);
  ck_assert_uint_eq(d.u.data.ttl_ms, GV_RW_TTL_MAX_MS);
  memset(buf + 4, 0, 8);
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why),
                   GV_ERANGE);
  ck_assert_ptr_nonnull(strstr(why.text, "seq"));
  m.u.data.ttl_ms = GV_RW_TTL_MAX_MS + 1;
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL),
                   GV_ERANGE);
  m.u.data.ttl_ms = 1;
  m.u.data.seq = 0;
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL),
                   GV_ERANGE);

  /* The payload: 1 MiB passes, and sealed it still fits a ROUTE; one byte
   * more is refused by both sides, the decoder before it looks for the
   * bytes. */
  m = sample_data();
  big = calloc(1, 2 * GV_RW_PAYLOAD_MAX + 400);
  m.u.data.payload = big;
  m.u.data.payload_len = GV_RW_PAYLOAD_MAX;
  ck_assert_int_eq(gv_rw_body_encode(&m, big + GV_RW_PAYLOAD_MAX,
                                     GV_RW_PAYLOAD_MAX + 400, &len, NULL),
                   0);
  ck_assert_uint_le(gv_rw_sealed_size(len), GV_RW_SEALED_MAX);
  ck_assert_int_eq(
      gv_rw_body_decode(GV_RW_DATA, big + GV_RW_PAYLOAD_MAX, len, &d, NULL), 0);
  ck_assert_uint_eq(d.u.data.payload_len, GV_RW_PAYLOAD_MAX);
  m.u.data.payload_len = GV_RW_PAYLOAD_MAX + 1;
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, &why),
                   GV_ETOOBIG);
  m = sample_data();
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, sizeof(buf), &len, NULL), 0);
  /* The payload length sits 4 bytes before the 10 payload bytes. */
  buf[len - 14] = 0x00;
  buf[len - 13] = 0x10;
  buf[len - 12] = 0x00;
  buf[len - 11] = 0x01;
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_DATA, buf, len, &d, &why),
                   GV_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(why.text, "payload"));
  free(big);
  /* A short output buffer. */
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, 10, &len, NULL), GV_ETOOBIG);
}
END_TEST

START_TEST(test_limits) {
  uint8_t *ids = calloc(GV_RW_MEMBERS_MAX + 1, 32), *buf;
  gv_rw_dir_entry *list = calloc(GV_RW_DIR_MAX + 1, sizeof(*list));
  gv_rw_body m, d;
  size_t len, cap = 1 << 20;
  gv_why why = {{0}};

  buf = malloc(cap);
  memset(&m, 0, sizeof(m));
  m.kind = GV_RW_MEMBERS;
  m.u.members.ids = ids;
  m.u.members.n = GV_RW_MEMBERS_MAX;
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, cap, &len, NULL), 0);
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_MEMBERS, buf, len, &d, NULL), 0);
  m.u.members.n = GV_RW_MEMBERS_MAX + 1;
  ck_assert_int_eq(gv_rw_body_encode(&m, buf, cap, &len, NULL), GV_ELIMIT);
  buf[0] = 0x04; /* n = 1025 */
  buf[1] = 0x01;
  ck_assert_int_eq(gv_rw_body_decode(GV_RW_MEMBERS, buf, 2, &d, &why),
                   GV_ELIMIT);
  ck_assert_ptr_nonnull(strstr(why.text, "1025"));

  for (size_t i = 0; i <= GV_RW_DIR_MAX; i++) {
    list[i].project = str("proj");
    list[i].name = str("agent");
    list[i].online = (uint8_t)(i & 1);
  }
  /* DIR: 4096 entries in all, split over two blocks; 4097 is over; 1025
   * blocks are over; version 0 and online 2 are out of range. */
  {
    gv_rw_dir_node blocks[2] = {{ids, 5, GV_RW_DIR_MAX - 1, list, NULL, 0},
                                {ids + 32, 6, 1, list, NULL, 0}};
    uint8_t bad[2 + 32 + 10 + 7] = {0, 1};
    memset(&m, 0, sizeof(m));
    m.kind = GV_RW_DIR;
    m.u.dir.n_nodes = 2;
    m.u.dir.nodes = blocks;
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, cap, &len, NULL), 0);
    ck_assert_int_eq(gv_rw_body_decode(GV_RW_DIR, buf, len, &d, NULL), 0);
    ck_assert_uint_eq(d.u.dir.n_nodes, 2);
    blocks[1].n = 2;
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, cap, &len, NULL), GV_ELIMIT);
    blocks[1].n = 1;
    blocks[1].list = NULL; /* as decoded: raw, not list */
    ck_assert_int_eq(gv_rw_body_encode(&m, buf, cap, &len, NULL), GV_EINVAL);
    buf[0] = 0x04; /* 1025 nodes */
    buf[1] = 0x01;
    ck_assert_int_eq(gv_rw_body_decode(GV_RW_DIR, buf, 2, &d, &why), GV_ELIMIT);
    /* One block: version 0, then online 2. */
    bad[2 + 32 + 9] = 1;
    memcpy(bad + 2 + 32 + 10, (const uint8_t[]){1, 'p', 1, 'n', 1}, 5);
    ck_assert_int_eq(
        gv_rw_body_decode(GV_RW_DIR, bad, sizeof(bad) - 2, &d, &why),
        GV_ERANGE);
    ck_assert_ptr_nonnull(strstr(why.text, "version 0"));
    bad[2 + 32 + 7] = 1;
    bad[sizeof(bad) - 3] = 2;
    ck_assert_int_eq(
        gv_rw_body_decode(GV_RW_DIR, bad, sizeof(bad) - 2, &d, &why),
        GV_ERANGE);
    ck_assert_ptr_nonnull(strstr(why.text, "online"));
  }
  for (unsigned r = 0; r < 256; r++) {
    uint8_t b = (uint8_t)r;
    ck_assert_int_eq(gv_rw_body_decode(GV_RW_FAILED, &b, 1, &d, NULL),
                     r >= 1 && r <= 4 ? 0 : GV_ERANGE);
  }
  free(ids);
  free(list);
  free(buf);
}
END_TEST

/* ---- sealing ---- */

/* Every kind sealed by alice for bob opens at bob with the same body. */
START_TEST(test_seal_roundtrip_every_kind) {
  const unsigned kinds[] = {GV_RW_DATA, GV_RW_STORED,  GV_RW_DELIVERED,
                            GV_RW_READ, GV_RW_FAILED,  GV_RW_BUSY,
                            GV_RW_JOIN, GV_RW_MEMBERS, GV_RW_DIR};
  uint8_t body[64];

  for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
    gv_rw_route h = hdr(&alice, &bob, gv_rw_kind_is_control(kinds[i]) ? 0 : 9);
    gv_rw_team teams[2] = {team2, team1};
    gv_rw_opened o;
    uint8_t *p, *buf;
    size_t len, blen = i * 3;
    gv_why why = {{0}};

    memset(body, (int)i, blen);
    p = route_packet(&k_ab, &team1, &h, kinds[i], body, blen, &len);
    ck_assert_uint_eq(len, GV_RW_ROUTE_HDR + GV_RW_SEAL_OVERHEAD + blen);
    ck_assert_msg(open_packet(p, len, &bob, teams, 2, &o, &buf, &why) == 0,
                  "%s", why.text);
    ck_assert_uint_eq(o.kind, kinds[i]);
    ck_assert_ptr_eq(o.team, &teams[1]);
    ck_assert_uint_eq(o.body_len, blen);
    if (blen > 0)
      ck_assert_mem_eq(o.body, body, blen);
    free(p);
    free(buf);
  }
}
END_TEST

/* Any bit flipped in the sealed part: does not open. In the outer id (which
 * only the team proof covers): not in team. In src: does not open. */
START_TEST(test_seal_flips) {
  gv_rw_body m = sample_data();
  gv_rw_route h = hdr(&alice, &bob, 5);
  gv_rw_opened o;
  uint8_t *body, *p, *buf;
  size_t blen, len;
  gv_why why = {{0}};

  body = encode(&m, &blen);
  p = route_packet(&k_ab, &team1, &h, GV_RW_DATA, body, blen, &len);
  for (size_t i = GV_RW_ROUTE_HDR; i < len; i++)
    for (int bit = 0; bit < 8; bit++) {
      p[i] ^= (uint8_t)(1u << bit);
      ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                       GV_EDECRYPT);
      ck_assert_ptr_null(o.team);
      free(buf);
      p[i] ^= (uint8_t)(1u << bit);
    }
  ck_assert_ptr_nonnull(strstr(why.text, "does not open"));
  p[66] ^= 1; /* first byte of the outer id */
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EBADSIG);
  free(buf);
  p[66] ^= 1;
  /* src: a key with another node (or none, if no point). */
  for (int bit = 0; bit < 8; bit++) {
    int rc;
    p[40] ^= (uint8_t)(1u << bit);
    rc = open_packet(p, len, &bob, &team1, 1, &o, &buf, &why);
    ck_assert_msg(rc == GV_EDECRYPT || rc == GV_EFIELD, "%s", why.text);
    free(buf);
    p[40] ^= (uint8_t)(1u << bit);
  }
  p[65] = 1; /* hops: outside both, as a relay changes it */
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why), 0);
  free(buf);
  free(body);
  free(p);
}
END_TEST

START_TEST(test_not_in_team) {
  gv_rw_route h = hdr(&carol, &bob, 5);
  gv_rw_team forged = team2;
  gv_rw_opened o;
  uint8_t *p, *buf;
  size_t len;
  gv_why why = {{0}};

  /* Carol seals in her own team: bob (team 1 only) cannot place it. */
  p = route_packet(&k_cb, &team2, &h, GV_RW_STORED, NULL, 0, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EBADSIG);
  ck_assert_ptr_nonnull(strstr(why.text, "not in team"));
  ck_assert_ptr_null(o.team);
  free(buf);
  /* Bob in both teams accepts it as team 2's. */
  gv_rw_team both[2] = {team1, team2};
  ck_assert_int_eq(open_packet(p, len, &bob, both, 2, &o, &buf, NULL), 0);
  ck_assert_ptr_eq(o.team, &both[1]);
  free(buf);
  free(p);
  /* Carol knows team 1's id but not its K_auth. */
  memcpy(forged.team_id, team1.team_id, 32);
  p = route_packet(&k_cb, &forged, &h, GV_RW_STORED, NULL, 0, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EBADSIG);
  free(buf);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 0, &o, &buf, &why),
                   GV_EBADSIG);
  free(buf);
  free(p);
}
END_TEST

/* Sealed by alice for carol: bob cannot open it, whatever dst says. */
START_TEST(test_other_dst) {
  gv_rw_route h = hdr(&alice, &carol, 5);
  gv_rw_opened o;
  uint8_t *p, *buf;
  size_t len;
  gv_why why = {{0}};

  p = route_packet(&k_ac, &team1, &h, GV_RW_READ, NULL, 0, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EDECRYPT);
  free(buf);
  memcpy(p + 1, bob.pk, 32); /* a relay redirects it to bob */
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EDECRYPT);
  free(buf);
  free(p);
}
END_TEST

/* Inner packets alice's node could seal but ours must refuse: a wrong
 * version, an unknown kind, an id that does not fit the kind. Built by hand
 * with the right box and team proof. */
static uint8_t *handmade(uint8_t v, uint8_t kind, const gv_rw_route *h,
                         size_t *len) {
  crypto_generichash_state st;
  uint8_t inner[GV_RW_INNER_HDR], *p;
  gv_rw_route r = *h;

  inner[0] = v;
  inner[1] = kind;
  memcpy(inner + 2, team1.team_id, 8);
  crypto_generichash_init(&st, team1.auth, 32, 32);
  crypto_generichash_update(&st, (const uint8_t *)"grapevine/2 relay", 17);
  crypto_generichash_update(&st, h->src, 32);
  crypto_generichash_update(&st, h->dst, 32);
  crypto_generichash_update(&st, h->id, 16);
  crypto_generichash_update(&st, &kind, 1);
  crypto_generichash_final(&st, inner + 10, 32);
  p = malloc(GV_RW_ROUTE_HDR + GV_RW_SEAL_OVERHEAD);
  memcpy(p + GV_RW_ROUTE_HDR, NONCE, 24);
  crypto_box_easy_afternm(p + GV_RW_ROUTE_HDR + 24, inner, sizeof(inner), NONCE,
                          k_ab.k);
  r.sealed = p + GV_RW_ROUTE_HDR;
  r.sealed_len = GV_RW_SEAL_OVERHEAD;
  ck_assert_int_eq(gv_rw_route_encode(&r, p, GV_RW_ROUTE_HDR + 82, len, NULL),
                   0);
  return p;
}

START_TEST(test_inner_rejects) {
  gv_rw_route h = hdr(&alice, &bob, 5), h0 = hdr(&alice, &bob, 0);
  gv_rw_opened o;
  uint8_t *p, *buf, out[200];
  size_t len;
  gv_why why = {{0}};

  p = handmade(1, GV_RW_STORED, &h, &len); /* the control: it opens */
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, NULL), 0);
  free(buf);
  free(p);
  p = handmade(2, GV_RW_STORED, &h, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EVERSION);
  free(buf);
  free(p);
  p = handmade(1, 0x17, &h, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_ETYPE);
  ck_assert_ptr_null(o.team);
  free(buf);
  free(p);
  p = handmade(1, GV_RW_STORED, &h0, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EFIELD);
  free(buf);
  free(p);
  p = handmade(1, GV_RW_JOIN, &h, &len);
  ck_assert_int_eq(open_packet(p, len, &bob, &team1, 1, &o, &buf, &why),
                   GV_EFIELD);
  free(buf);
  free(p);
  /* The sealing side refuses the same. */
  ck_assert_int_eq(gv_rw_seal(&k_ab, &team1, NONCE, &h, 0x17, NULL, 0, out,
                              sizeof(out), NULL),
                   GV_ETYPE);
  ck_assert_int_eq(gv_rw_seal(&k_ab, &team1, NONCE, &h, GV_RW_JOIN, NULL, 0,
                              out, sizeof(out), NULL),
                   GV_EFIELD);
  ck_assert_int_eq(gv_rw_seal(&k_ab, &team1, NONCE, &h0, GV_RW_DATA, NULL, 0,
                              out, sizeof(out), NULL),
                   GV_EFIELD);
  ck_assert_int_eq(gv_rw_seal(&k_ab, &team1, NONCE, &h, GV_RW_STORED, NULL, 0,
                              out, GV_RW_SEAL_OVERHEAD - 1, NULL),
                   GV_ETOOBIG);
  ck_assert_int_eq(gv_rw_seal(&k_ab, &team1, NONCE, &h, GV_RW_DATA, out,
                              GV_RW_BODY_MAX + 1, out, sizeof(out), NULL),
                   GV_ETOOBIG);
  /* A short buffer for the opened packet. */
  p = handmade(1, GV_RW_STORED, &h, &len);
  h.sealed = p + GV_RW_ROUTE_HDR;
  h.sealed_len = len - GV_RW_ROUTE_HDR;
  ck_assert_int_eq(
      gv_rw_open(&k_ba, &h, &team1, 1, out, GV_RW_INNER_HDR - 1, &o, NULL),
      GV_ETOOBIG);
  ck_assert_int_eq(
      gv_rw_open(&k_ba, &h, &team1, 1, out, GV_RW_INNER_HDR, &o, NULL), 0);
  free(p);
}
END_TEST

/* ---- ids ---- */

START_TEST(test_ids) {
  uint8_t id[16], id2[16], want[16], rnd[16] = {0}, in[32 + 32 + 1 + 9 + 1 + 3];
  gv_why why = {{0}};

  ck_assert_int_eq(gv_rw_id_random(id, rnd), GV_EINVAL);
  rnd[15] = 1;
  ck_assert_int_eq(gv_rw_id_random(id, rnd), 0);
  ck_assert_mem_eq(id, rnd, 16);

  /* The key form, against the formula of §5.1. */
  memcpy(in, alice.pk, 32);
  memcpy(in + 32, team1.team_id, 32);
  in[64] = 9;
  memcpy(in + 65, "web:Alice", 9);
  in[74] = 3;
  memcpy(in + 75, "k-1", 3);
  crypto_generichash(want, 16, in, sizeof(in), NULL, 0);
  ck_assert_int_eq(gv_rw_id_from_key(id, alice.pk, team1.team_id, "web:Alice",
                                     9, "k-1", 3, NULL),
                   0);
  ck_assert_mem_eq(id, want, 16);
  /* The length prefixes keep (sender, key) pairs apart. */
  ck_assert_int_eq(
      gv_rw_id_from_key(id, alice.pk, team1.team_id, "a:bc", 4, "d", 1, NULL),
      0);
  ck_assert_int_eq(
      gv_rw_id_from_key(id2, alice.pk, team1.team_id, "a:b", 3, "cd", 2, NULL),
      0);
  ck_assert_mem_ne(id, id2, 16);
  ck_assert_int_eq(
      gv_rw_id_from_key(id2, bob.pk, team1.team_id, "a:bc", 4, "d", 1, NULL),
      0);
  ck_assert_mem_ne(id, id2, 16);
  ck_assert_int_eq(
      gv_rw_id_from_key(id2, alice.pk, team2.team_id, "a:bc", 4, "d", 1, NULL),
      0);
  ck_assert_mem_ne(id, id2, 16);
  ck_assert_int_eq(
      gv_rw_id_from_key(id, alice.pk, team1.team_id, "a:b", 3, "", 0, &why),
      GV_EFIELD);
  ck_assert_int_eq(
      gv_rw_id_from_key(id, alice.pk, team1.team_id, "a:b", 3, "x\n", 2, &why),
      GV_EFIELD);
  ck_assert_int_eq(
      gv_rw_id_from_key(id, alice.pk, team1.team_id, "a:b", 3,
                        "0123456789012345678901234567890123456789012345678901"
                        "234567890123456789",
                        65, &why),
      GV_EFIELD);
  ck_assert_int_eq(
      gv_rw_id_from_key(id, alice.pk, team1.team_id, "ab", 2, "k", 1, &why),
      GV_EFIELD);

  /* Fan-out: BLAKE2b-128(id || u32 n), distinct per n, n from 1. */
  uint8_t fin[20];
  memcpy(fin, want, 16);
  fin[16] = 0;
  fin[17] = 0;
  fin[18] = 1;
  fin[19] = 2;
  crypto_generichash(id2, 16, fin, sizeof(fin), NULL, 0);
  ck_assert_int_eq(gv_rw_id_fanout(id, want, 258), 0);
  ck_assert_mem_eq(id, id2, 16);
  ck_assert_int_eq(gv_rw_id_fanout(id2, want, 1), 0);
  ck_assert_mem_ne(id, id2, 16);
  ck_assert_int_eq(gv_rw_id_fanout(id2, want, 0), GV_EINVAL);
}
END_TEST

static Suite *relaywire_suite(void) {
  Suite *s = suite_create("relaywire");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_route_roundtrip);
  tcase_add_test(tc, test_route_rejects);
  tcase_add_test(tc, test_credit);
  tcase_add_test(tc, test_team_keys);
  tcase_add_test(tc, test_token_roundtrip);
  tcase_add_test(tc, test_token_bad);
  tcase_add_test(tc, test_peer_key);
  tcase_add_test(tc, test_body_roundtrip);
  tcase_add_test(tc, test_body_truncations);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_data_fields);
  tcase_add_test(tc, test_limits);
  tcase_add_test(tc, test_seal_roundtrip_every_kind);
  tcase_add_test(tc, test_seal_flips);
  tcase_add_test(tc, test_not_in_team);
  tcase_add_test(tc, test_other_dst);
  tcase_add_test(tc, test_inner_rejects);
  tcase_add_test(tc, test_ids);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(relaywire_suite()); }

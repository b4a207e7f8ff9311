/* Messages: every type round-trips; every validation failure on its own
 * (PROTOCOL.md §6). */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "msg.h"
#include "testutil.h"

static gv_identity alice, bob;
static gv_msg_policy pol;

static void setup(void) {
  tu_identity(&alice, 1);
  tu_identity(&bob, 2);
  memset(&pol, 0, sizeof(pol));
  pol.now_ms = T0_MS;
}

/* Signs an arbitrary body text as `id` would and wraps it in an envelope,
 * so that validators behind the signature can be reached. */
static char *sign_raw(const gv_identity *id, const char *body, int ttl,
                      int hops) {
  uint8_t mid[32], tbs[15 + 32], sig[64];
  char hex[129];
  cJSON *o = cJSON_CreateObject();
  char *out;

  crypto_generichash(mid, 32, (const uint8_t *)body, strlen(body), NULL, 0);
  memcpy(tbs, "grapevine/1 msg", 15);
  memcpy(tbs + 15, mid, 32);
  crypto_sign_detached(sig, NULL, tbs, sizeof(tbs), id->sk);
  sodium_bin2hex(hex, sizeof(hex), sig, 64);
  cJSON_AddNumberToObject(o, "v", 1);
  cJSON_AddNumberToObject(o, "ttl", ttl);
  cJSON_AddNumberToObject(o, "hops", hops);
  cJSON_AddStringToObject(o, "body", body);
  cJSON_AddStringToObject(o, "sig", hex);
  out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return out;
}

/* A body of `type` from alice with `extra` members appended. */
static char *body_of(const char *type, long long ts, const char *extra) {
  char hex[65], *b = malloc(8192);
  gv_id_to_hex(alice.pk, hex);
  snprintf(b, 8192,
           "{\"v\":1,\"type\":\"%s\",\"origin\":\"%s\",\"seq\":5,"
           "\"ts\":%lld%s%s}",
           type, hex, ts, *extra ? "," : "", extra);
  return b;
}

static const char *ANN_OK =
    "\"broadcasting\":true,\"bootstrap\":false,"
    "\"addrs\":[\"198.51.100.7:7411\"],\"repos\":[\"demo/a\"]";

/* Decodes text; returns the error and leaves the reason in why. */
static int decode(const char *text, gv_msg *m, gv_why *why) {
  why->text[0] = '\0';
  return gv_msg_decode(m, (const uint8_t *)text, strlen(text), &pol, why);
}

/* Expects body `extra` of `type` (signed properly) to fail with err and a
 * reason containing `needle`. */
static void expect_body(const char *type, long long ts, const char *extra,
                        int ttl, int err, const char *needle) {
  char *body = body_of(type, ts, extra);
  char *env = sign_raw(&alice, body, ttl, 0);
  gv_msg m;
  gv_why why;
  int rc = decode(env, &m, &why);

  ck_assert_msg(rc == err, "%s: got %s (%s), want %s", extra, gv_err_name(rc),
                why.text, gv_err_name(err));
  if (needle != NULL)
    ck_assert_msg(strstr(why.text, needle) != NULL, "reason '%s' lacks '%s'",
                  why.text, needle);
  gv_msg_clear(&m);
  free(env);
  free(body);
}

static void seal_announce(gv_msg *m, bool broadcasting) {
  memset(m, 0, sizeof(*m));
  m->type = GV_MSG_PEER_ANNOUNCEMENT;
  m->ttl = GV_TTL_ANNOUNCE;
  m->seq = 1;
  m->ts = T0_MS;
  m->u.peer.broadcasting = broadcasting;
  if (broadcasting) {
    m->u.peer.n_addrs = 2;
    ck_assert_int_eq(
        gv_addr_parse(&m->u.peer.addrs[0], "198.51.100.7:7411", 17), 0);
    ck_assert_int_eq(
        gv_addr_parse(&m->u.peer.addrs[1], "[2001:db8::1]:7411", 18), 0);
  }
  m->u.peer.n_repos = 2;
  m->u.peer.repos = "demo/hello\0linux@v6.1";
}

/* ---- round trips ---- */

/* Repository names live packed behind the body, unescaped, one allocation
 * with it: a gv_msg stays small, and re-sealing a decoded message (whose
 * names live in the body it replaces) keeps them. */
START_TEST(test_repos_packed_with_body) {
  char *body =
      body_of("PEER_UPDATE", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,"
              "\"addrs\":[],\"repos\":[\"a\\/b\",\"\\u0063@1\",\"z\"]");
  char *env = sign_raw(&alice, body, 3, 0), *out, names[] = "x/1\0y/2";
  gv_msg d, m;
  gv_why why;
  size_t len;

  /* Inline: addresses and up to 4 relay ids (304 bytes), still less than
   * the union's largest member (IHAVE's ids), so no gv_msg grows. */
  ck_assert_uint_le(sizeof(gv_peer_state), 320);
  ck_assert_uint_le(sizeof(gv_peer_state), sizeof(((gv_msg *)0)->u.ids));
  ck_assert_int_eq(decode(env, &d, &why), 0);
  ck_assert_uint_eq(d.u.peer.n_repos, 3);
  ck_assert_ptr_eq(d.u.peer.repos, d.body + d.body_len + 1);
  ck_assert_mem_eq(d.u.peer.repos, "a/b\0c@1\0z", 10);
  /* Re-seal the decoded message: the names move behind the new body. */
  d.seq = 6;
  ck_assert_int_eq(gv_msg_seal(&d, &alice, &out, &len), 0);
  ck_assert_ptr_eq(d.u.peer.repos, d.body + d.body_len + 1);
  ck_assert_mem_eq(d.u.peer.repos, "a/b\0c@1\0z", 10);
  ck_assert_ptr_nonnull(strstr(d.body, "\"repos\":[\"a/b\",\"c@1\",\"z\"]"));
  free(out);
  gv_msg_clear(&d);
  /* Sealing copies borrowed names: the caller's buffer is not kept. */
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_PEER_ANNOUNCEMENT;
  m.ttl = 1;
  m.seq = 1;
  m.ts = T0_MS;
  m.u.peer.repos = names;
  m.u.peer.n_repos = 2;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  memset(names, '#', sizeof(names));
  ck_assert_ptr_eq(m.u.peer.repos, m.body + m.body_len + 1);
  ck_assert_mem_eq(m.u.peer.repos, "x/1\0y/2", 8);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_mem_eq(d.u.peer.repos, "x/1\0y/2", 8);
  gv_msg_clear(&d);
  gv_msg_clear(&m);
  free(out);
  free(env);
  free(body);
}
END_TEST

START_TEST(test_roundtrip_announcement) {
  gv_msg m, d;
  gv_why why;
  char *out;
  size_t len;
  char a0[GV_ADDR_TEXT_MAX];

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_int_eq(d.type, GV_MSG_PEER_ANNOUNCEMENT);
  ck_assert_mem_eq(d.origin, alice.pk, 32);
  ck_assert_mem_eq(d.id, m.id, 32);
  ck_assert_uint_eq(d.ttl, 32);
  ck_assert_uint_eq(d.seq, 1);
  ck_assert_int_eq(d.ts, T0_MS);
  ck_assert(d.u.peer.broadcasting && !d.u.peer.bootstrap);
  ck_assert_uint_eq(d.u.peer.n_addrs, 2);
  gv_addr_format(&d.u.peer.addrs[1], a0);
  ck_assert_str_eq(a0, "[2001:db8::1]:7411");
  ck_assert_uint_eq(d.u.peer.n_repos, 2);
  ck_assert_str_eq(d.u.peer.repos, "demo/hello");
  ck_assert_str_eq(d.u.peer.repos + 11, "linux@v6.1");
  ck_assert_uint_eq(d.body_len, m.body_len);
  ck_assert_str_eq(d.body, m.body);
  gv_msg_clear(&d);
  gv_msg_clear(&m);
  free(out);
}
END_TEST

/* Forwarding changes only the hop fields; the id and signature hold. */
START_TEST(test_forward_keeps_id) {
  gv_msg m, d, f;
  gv_why why;
  char *out, *fwd;
  size_t len;

  seal_announce(&m, false);
  m.type = GV_MSG_PEER_UPDATE;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  d.ttl--;
  d.hops++;
  ck_assert_int_eq(gv_msg_encode_gossip(&d, &fwd, &len), 0);
  ck_assert_int_eq(decode(fwd, &f, &why), 0);
  ck_assert_mem_eq(f.id, m.id, 32);
  ck_assert_uint_eq(f.ttl, 31);
  ck_assert_uint_eq(f.hops, 1);
  ck_assert_int_eq(f.type, GV_MSG_PEER_UPDATE);
  gv_msg_clear(&m);
  gv_msg_clear(&d);
  gv_msg_clear(&f);
  free(out);
  free(fwd);
}
END_TEST

START_TEST(test_roundtrip_request_heartbeat) {
  gv_msg m = {0}, d;
  gv_why why;
  char *out;
  size_t len;

  m.type = GV_MSG_PEER_REQUEST;
  m.ttl = GV_TTL_REQUEST;
  m.seq = 2;
  m.ts = T0_MS;
  strcpy(m.u.request.repo, "demo/hello");
  m.u.request.max = 8;
  ck_assert_int_eq(gv_msg_seal(&m, &bob, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_int_eq(d.type, GV_MSG_PEER_REQUEST);
  ck_assert_str_eq(d.u.request.repo, "demo/hello");
  ck_assert_uint_eq(d.u.request.max, 8);
  ck_assert_mem_eq(d.origin, bob.pk, 32);
  gv_msg_clear(&d);
  gv_msg_clear(&m);
  free(out);

  m.type = GV_MSG_HEARTBEAT;
  m.ttl = GV_TTL_HEARTBEAT;
  m.seq = GV_INT_MAX; /* the largest integer survives exactly */
  m.ts = T0_MS;
  ck_assert_int_eq(gv_msg_seal(&m, &bob, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_int_eq(d.type, GV_MSG_HEARTBEAT);
  ck_assert_uint_eq(d.seq, GV_INT_MAX);
  gv_msg_clear(&d);
  gv_msg_clear(&m);
  free(out);
}
END_TEST

START_TEST(test_roundtrip_response) {
  gv_msg rec, resp = {0}, d;
  gv_why why;
  char *out, *rec_out;
  size_t len;

  seal_announce(&rec, true);
  ck_assert_int_eq(gv_msg_seal(&rec, &alice, &rec_out, &len), 0);
  resp.type = GV_MSG_PEER_LIST_RESPONSE;
  resp.ttl = GV_TTL_RESPONSE;
  resp.seq = 9;
  resp.ts = T0_MS;
  memcpy(resp.u.response.to, alice.pk, 32);
  memset(resp.u.response.request, 0xab, 32);
  resp.u.response.n_peers = 1;
  resp.u.response.peers = &rec;
  ck_assert_int_eq(gv_msg_seal(&resp, &bob, &out, &len), 0);
  resp.u.response.peers = NULL; /* rec is ours, not resp's */
  resp.u.response.n_peers = 0;
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_int_eq(d.type, GV_MSG_PEER_LIST_RESPONSE);
  ck_assert_mem_eq(d.origin, bob.pk, 32);
  ck_assert_uint_eq(d.u.response.n_peers, 1);
  ck_assert_mem_eq(d.u.response.peers[0].origin, alice.pk, 32);
  ck_assert_mem_eq(d.u.response.peers[0].id, rec.id, 32);
  ck_assert_uint_eq(d.u.response.peers[0].u.peer.n_addrs, 2);
  gv_msg_clear(&d);
  gv_msg_clear(&resp);
  gv_msg_clear(&rec);
  free(out);
  free(rec_out);
}
END_TEST

START_TEST(test_roundtrip_link_types) {
  gv_msg m, d;
  gv_why why;
  char *out;
  size_t len;

  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_HELLO;
  m.ts = T0_MS;
  strcpy(m.u.hello.agent, "grapevine/0.1.0");
  m.u.hello.seq = 12;
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_int_eq(d.type, GV_MSG_HELLO);
  ck_assert_str_eq(d.u.hello.agent, "grapevine/0.1.0");
  ck_assert_uint_eq(d.u.hello.seq, 12);
  ck_assert_int_eq(d.ts, T0_MS);
  gv_msg_clear(&d);
  free(out);

  for (int t = GV_MSG_PING; t <= GV_MSG_PONG; t++) {
    memset(&m, 0, sizeof(m));
    m.type = (gv_msg_type)t;
    m.u.nonce = GV_INT_MAX;
    ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
    ck_assert_int_eq(decode(out, &d, &why), 0);
    ck_assert_int_eq(d.type, t);
    ck_assert_uint_eq(d.u.nonce, GV_INT_MAX);
    gv_msg_clear(&d);
    free(out);
  }
  for (int t = GV_MSG_IHAVE; t <= GV_MSG_IWANT; t++) {
    memset(&m, 0, sizeof(m));
    m.type = (gv_msg_type)t;
    m.u.ids.n = GV_MAX_IDS;
    for (int i = 0; i < GV_MAX_IDS; i++)
      memset(m.u.ids.ids[i], i, 32);
    ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
    ck_assert_int_eq(decode(out, &d, &why), 0);
    ck_assert_int_eq(d.type, t);
    ck_assert_uint_eq(d.u.ids.n, GV_MAX_IDS);
    ck_assert_mem_eq(d.u.ids.ids[63], m.u.ids.ids[63], 32);
    gv_msg_clear(&d);
    free(out);
  }
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_GOODBYE;
  strcpy(m.u.reason, "shutdown");
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_str_eq(d.u.reason, "shutdown");
  gv_msg_clear(&d);
  free(out);
}
END_TEST

/* ---- the sealing side refuses what validation would reject ---- */

START_TEST(test_seal_refuses_invalid) {
  gv_msg m;
  char *out;
  size_t len;

  seal_announce(&m, true);
  m.u.peer.broadcasting = false; /* addresses on a silent node */
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, true);
  m.ttl = 33;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, true);
  m.seq = 0;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, true); /* relays on a broadcasting node */
  m.u.peer.n_relays = 1;
  memcpy(m.u.peer.relays[0], bob.pk, GV_ID_BYTES);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, false); /* the origin as its own relay */
  m.u.peer.n_relays = 1;
  memcpy(m.u.peer.relays[0], alice.pk, GV_ID_BYTES);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, false); /* one relay twice */
  m.u.peer.n_relays = 2;
  memcpy(m.u.peer.relays[0], bob.pk, GV_ID_BYTES);
  memcpy(m.u.peer.relays[1], bob.pk, GV_ID_BYTES);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  seal_announce(&m, false); /* over the limit */
  m.u.peer.n_relays = GV_MAX_RELAYS + 1;
  for (int i = 0; i < GV_MAX_RELAYS + 1; i++)
    memset(m.u.peer.relays[i], 0x10 + i, GV_ID_BYTES);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
  m.type = GV_MSG_PING;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
}
END_TEST

/* A silent record names its relays by id (§6.5); a record without relays
 * has no `relays` member at all, as before the member existed. */
START_TEST(test_roundtrip_relays) {
  gv_msg m, d;
  gv_why why;
  char *out;
  size_t len;

  seal_announce(&m, false);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_ptr_null(strstr(m.body, "relays"));
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_uint_eq(d.u.peer.n_relays, 0);
  gv_msg_clear(&d);
  free(out);
  gv_msg_clear(&m);

  seal_announce(&m, false);
  m.u.peer.n_relays = GV_MAX_RELAYS;
  memcpy(m.u.peer.relays[0], bob.pk, GV_ID_BYTES);
  for (int i = 1; i < GV_MAX_RELAYS; i++)
    memset(m.u.peer.relays[i], 0xa0 + i, GV_ID_BYTES);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_ptr_nonnull(strstr(m.body, "\"relays\":[\""));
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_uint_eq(d.u.peer.n_relays, GV_MAX_RELAYS);
  ck_assert_mem_eq(d.u.peer.relays, m.u.peer.relays,
                   GV_MAX_RELAYS * GV_ID_BYTES);
  ck_assert(!d.u.peer.broadcasting);
  ck_assert_uint_eq(d.u.peer.n_addrs, 0);
  gv_msg_clear(&d);
  free(out);
  gv_msg_clear(&m);
}
END_TEST

/* `tport` (§6.5): a broadcasting record names its torrent port; a record
 * without one has no member and encodes as before; sealing refuses a
 * silent record with a port. */
START_TEST(test_roundtrip_tport) {
  gv_msg m, d;
  gv_why why;
  char *out;
  size_t len;

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_ptr_null(strstr(m.body, "tport"));
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_uint_eq(d.u.peer.tport, 0);
  gv_msg_clear(&d);
  free(out);
  gv_msg_clear(&m);

  seal_announce(&m, true);
  m.u.peer.tport = 65535;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  ck_assert_ptr_nonnull(strstr(m.body, "\"tport\":65535"));
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_uint_eq(d.u.peer.tport, 65535);
  gv_msg_clear(&d);
  free(out);
  gv_msg_clear(&m);

  seal_announce(&m, false);
  m.u.peer.tport = 6881;
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), GV_EINVAL);
  gv_msg_clear(&m);
}
END_TEST

START_TEST(test_tport_refused) {
  const char *bcast = "\"broadcasting\":true,\"bootstrap\":false,"
                      "\"addrs\":[\"198.51.100.7:7411\"],\"repos\":[]";
  char extra[512];

  snprintf(extra, sizeof(extra), "%s,\"tport\":1", bcast);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, 0, NULL);
  expect_body("PEER_UPDATE", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,\"addrs\":[],"
              "\"repos\":[],\"tport\":6881",
              32, GV_EFIELD, "silent node names a torrent port");
  snprintf(extra, sizeof(extra), "%s,\"tport\":0", bcast);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_ERANGE, "tport");
  snprintf(extra, sizeof(extra), "%s,\"tport\":65536", bcast);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_ERANGE, "tport");
  snprintf(extra, sizeof(extra), "%s,\"tport\":\"6881\"", bcast);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD, "tport");
  snprintf(extra, sizeof(extra), "%s,\"tport\":6881.5", bcast);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD, "tport");
}
END_TEST

/* ---- envelope and syntax failures ---- */

START_TEST(test_malformed_json) {
  gv_msg m;
  gv_why why;
  ck_assert_int_eq(decode("{\"v\":1,", &m, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "byte"));
  ck_assert_int_eq(decode("[1,2]", &m, &why), GV_EJSON);
  ck_assert_int_eq(decode("", &m, &why), GV_EJSON);
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":1} x", &m, &why), GV_EJSON);
  ck_assert_int_eq(
      gv_msg_decode(&m, (const uint8_t *)"{\"v\":1}\0x", 9, &pol, &why),
      GV_EJSON);
}
END_TEST

START_TEST(test_too_big) {
  size_t n = GV_MSG_MAX + 1;
  char *big = malloc(n);
  gv_msg m;
  gv_why why;

  memset(big, ' ', n);
  ck_assert_int_eq(gv_msg_decode(&m, (const uint8_t *)big, n, &pol, &why),
                   GV_ETOOBIG);
  free(big);
}
END_TEST

START_TEST(test_bad_version) {
  gv_msg m;
  gv_why why;
  char *body = body_of("HEARTBEAT", T0_MS, "");
  char *env;

  ck_assert_int_eq(decode("{\"v\":2,\"type\":\"PING\",\"nonce\":1}", &m, &why),
                   GV_EVERSION);
  ck_assert_int_eq(decode("{\"type\":\"PING\",\"nonce\":1}", &m, &why),
                   GV_EFIELD);
  body[5] = '3'; /* {"v":3,... */
  env = sign_raw(&alice, body, 2, 0);
  ck_assert_int_eq(decode(env, &m, &why), GV_EVERSION);
  ck_assert_ptr_nonnull(strstr(why.text, "body"));
  free(env);
  free(body);
}
END_TEST

START_TEST(test_unknown_and_misplaced_type) {
  gv_msg m;
  gv_why why;
  char *body, *env;

  ck_assert_int_eq(decode("{\"v\":1,\"type\":\"GOSSIP\"}", &m, &why), GV_ETYPE);
  ck_assert_ptr_nonnull(strstr(why.text, "GOSSIP"));
  /* Relay messages live on their own channel, not in this table. */
  ck_assert_int_eq(decode("{\"v\":1,\"type\":\"ROUTE\"}", &m, &why), GV_ETYPE);
  /* A gossip type sent unsigned as a link message. */
  ck_assert_int_eq(decode("{\"v\":1,\"type\":\"HEARTBEAT\"}", &m, &why),
                   GV_ETYPE);
  /* A link type inside a signed body. */
  body = body_of("PING", T0_MS, "\"nonce\":1");
  env = sign_raw(&alice, body, 0, 0);
  ck_assert_int_eq(decode(env, &m, &why), GV_ETYPE);
  free(env);
  free(body);
}
END_TEST

START_TEST(test_bad_signature) {
  gv_msg m;
  gv_why why;
  char *out;
  size_t len;
  char *p;

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  gv_msg_clear(&m);
  /* Flip one hex digit of the signature. */
  p = strstr(out, "\"sig\":\"") + 7;
  *p = *p == '0' ? '1' : '0';
  ck_assert_int_eq(decode(out, &m, &why), GV_EBADSIG);
  free(out);

  /* A body signed by bob claiming alice as origin. */
  {
    char *body = body_of("HEARTBEAT", T0_MS, "");
    char *env = sign_raw(&bob, body, 2, 0);
    ck_assert_int_eq(decode(env, &m, &why), GV_EBADSIG);
    free(env);
    free(body);
  }
}
END_TEST

/* One byte of the body changed after signing: the id and signature break. */
START_TEST(test_tampered_body) {
  gv_msg m;
  gv_why why;
  char *out, *p;
  size_t len;

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  gv_msg_clear(&m);
  p = strstr(out, "demo/hello");
  p[0] = 'D';
  ck_assert_int_eq(decode(out, &m, &why), GV_EBADSIG);
  free(out);
}
END_TEST

START_TEST(test_missing_fields) {
  gv_msg m;
  gv_why why;
  const char *cases[] = {
      "{\"v\":1,\"ttl\":1,\"hops\":0,\"body\":\"{}\"}",           /* sig */
      "{\"v\":1,\"hops\":0,\"body\":\"{}\",\"sig\":\"00\"}",      /* ttl */
      "{\"v\":1,\"ttl\":1,\"body\":\"{}\",\"sig\":\"00\"}",       /* hops */
      "{\"v\":1,\"ttl\":1,\"hops\":0,\"body\":5,\"sig\":\"00\"}", /* type */
      "{\"v\":1,\"type\":\"PING\"}",                              /* nonce */
      "{\"v\":1,\"type\":\"HELLO\",\"ts\":1,\"seq\":0}",          /* agent */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    ck_assert_msg(decode(cases[i], &m, &why) == GV_EFIELD, "case %zu: %s", i,
                  why.text);
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":true,\"addrs\":[],\"repos\":[]", 32, GV_EFIELD,
              "bootstrap");
  expect_body("PEER_REQUEST", T0_MS, "\"max\":4", 16, GV_EFIELD, "repo");
  expect_body("PEER_LIST_RESPONSE", T0_MS, "\"peers\":[]", 16, GV_EFIELD, "to");
}
END_TEST

START_TEST(test_malformed_fields) {
  gv_msg m;
  gv_why why;

  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":1.5}", &m, &why), GV_EFIELD);
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":\"1\"}", &m, &why),
      GV_EFIELD);
  ck_assert_int_eq(decode("{\"v\":1,\"type\":\"PING\",\"nonce\":-1}", &m, &why),
                   GV_ERANGE);
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":1e300}", &m, &why),
      GV_ERANGE);
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"IHAVE\",\"ids\":[\"zz\"]}", &m, &why),
      GV_EFIELD);
  ck_assert_int_eq(decode("{\"v\":1,\"type\":\"IHAVE\",\"ids\":[]}", &m, &why),
                   GV_EFIELD);
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":1,\"bootstrap\":false,\"addrs\":[],"
              "\"repos\":[]",
              32, GV_EFIELD, "boolean");
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":true,\"bootstrap\":false,"
              "\"addrs\":[\"example.org:80\"],\"repos\":[]",
              32, GV_EFIELD, "addrs[0]");
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":true,\"bootstrap\":false,"
              "\"addrs\":[\"1.2.3.4:0\"],\"repos\":[]",
              32, GV_EFIELD, "addrs[0]");
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,\"addrs\":[],"
              "\"repos\":[\"has space\"]",
              32, GV_EFIELD, "repository name");
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,\"addrs\":[],"
              "\"repos\":[\"a\",\"a\"]",
              32, GV_EFIELD, "twice");
  expect_body("PEER_REQUEST", T0_MS, "\"repo\":\"a\",\"max\":33", 16, GV_ERANGE,
              "max");
  expect_body("PEER_REQUEST", T0_MS, "\"repo\":\"a\",\"max\":0", 16, GV_ERANGE,
              "max");
}
END_TEST

/* Oversize single fields: a 65-byte repository name, a 65-byte agent. */
START_TEST(test_oversize_fields) {
  char extra[512], name[GV_REPO_MAX + 2];
  char hello[256];
  gv_msg m;
  gv_why why;

  memset(name, 'r', GV_REPO_MAX + 1);
  name[GV_REPO_MAX + 1] = '\0';
  snprintf(extra, sizeof(extra), "\"repo\":\"%s\",\"max\":1", name);
  expect_body("PEER_REQUEST", T0_MS, extra, 16, GV_EFIELD, "repository");
  name[GV_REPO_MAX] = '\0'; /* exactly the limit is fine */
  snprintf(extra, sizeof(extra), "\"repo\":\"%s\",\"max\":1", name);
  expect_body("PEER_REQUEST", T0_MS, extra, 16, 0, NULL);
  memset(name, 'a', GV_AGENT_MAX + 1);
  name[GV_AGENT_MAX + 1] = '\0';
  snprintf(hello, sizeof(hello),
           "{\"v\":1,\"type\":\"HELLO\",\"agent\":\"%s\",\"ts\":1,\"seq\":0}",
           name);
  ck_assert_int_eq(decode(hello, &m, &why), GV_EFIELD);
}
END_TEST

START_TEST(test_ttl_per_type) {
  struct {
    const char *type, *extra;
    int max;
  } t[] = {
      {"PEER_ANNOUNCEMENT", ANN_OK, 32},
      {"PEER_UPDATE", ANN_OK, 32},
      {"PEER_REQUEST", "\"repo\":\"a\",\"max\":1", 16},
      {"HEARTBEAT", "", 2},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    expect_body(t[i].type, T0_MS, t[i].extra, t[i].max, 0, NULL);
    expect_body(t[i].type, T0_MS, t[i].extra, t[i].max + 1, GV_ETTL, t[i].type);
  }
}
END_TEST

START_TEST(test_hops_range) {
  char *body = body_of("HEARTBEAT", T0_MS, "");
  char *env = sign_raw(&alice, body, 1, GV_HOPS_MAX + 1);
  gv_msg m;
  gv_why why;
  ck_assert_int_eq(decode(env, &m, &why), GV_ERANGE);
  free(env);
  free(body);
}
END_TEST

START_TEST(test_clock_window) {
  expect_body("HEARTBEAT", T0_MS + GV_CLOCK_SKEW_MS, "", 2, 0, NULL);
  expect_body("HEARTBEAT", T0_MS + GV_CLOCK_SKEW_MS + 1, "", 2, GV_EFUTURE,
              "ahead");
  expect_body("HEARTBEAT", T0_MS - GV_MSG_MAX_AGE_MS, "", 2, 0, NULL);
  expect_body("HEARTBEAT", T0_MS - GV_MSG_MAX_AGE_MS - 1, "", 2, GV_ESTALE,
              "old");
}
END_TEST

START_TEST(test_limits) {
  char extra[8192];
  int off;

  off = snprintf(extra, sizeof(extra),
                 "\"broadcasting\":true,\"bootstrap\":false,\"addrs\":[");
  for (int i = 0; i <= GV_MAX_ADDRS; i++)
    off += snprintf(extra + off, sizeof(extra) - (size_t)off,
                    "%s\"10.0.0.%d:1\"", i ? "," : "", i + 1);
  snprintf(extra + off, sizeof(extra) - (size_t)off, "],\"repos\":[]");
  expect_body("PEER_ANNOUNCEMENT", T0_MS, extra, 32, GV_ELIMIT, "addrs");

  off = snprintf(extra, sizeof(extra),
                 "\"broadcasting\":false,\"bootstrap\":false,\"addrs\":[],"
                 "\"repos\":[");
  for (int i = 0; i <= GV_MAX_REPOS; i++)
    off += snprintf(extra + off, sizeof(extra) - (size_t)off, "%s\"r%d\"",
                    i ? "," : "", i);
  snprintf(extra + off, sizeof(extra) - (size_t)off, "]");
  expect_body("PEER_ANNOUNCEMENT", T0_MS, extra, 32, GV_ELIMIT, "repos");
}
END_TEST

/* The IP-sharing rule, at the validator: a silent node with an address is
 * invalid even when its own key signed it. */
START_TEST(test_silent_address) {
  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,"
              "\"addrs\":[\"198.51.100.7:7411\"],\"repos\":[]",
              32, GV_ESILENTADDR, "not broadcasting");
  expect_body("PEER_UPDATE", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,"
              "\"addrs\":[\"198.51.100.7:7411\"],\"repos\":[]",
              32, GV_ESILENTADDR, NULL);
}
END_TEST

/* `relays` (§6.5): each way it can be wrong is refused on its own, with
 * its reason. */
START_TEST(test_relays_refused) {
  char alice_hex[65], bob_hex[65], upper[65], extra[2048];
  const char *silent = "\"broadcasting\":false,\"bootstrap\":false,"
                       "\"addrs\":[],\"repos\":[]";
  int off;

  gv_id_to_hex(alice.pk, alice_hex);
  gv_id_to_hex(bob.pk, bob_hex);
  for (int i = 0; i < 65; i++)
    upper[i] = (char)(bob_hex[i] >= 'a' && bob_hex[i] <= 'f' ? bob_hex[i] - 32
                                                             : bob_hex[i]);
  /* the valid case, so that each refusal below is for its own reason */
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%s\"]", silent, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, 0, NULL);
  snprintf(extra, sizeof(extra),
           "\"broadcasting\":true,\"bootstrap\":false,"
           "\"addrs\":[\"198.51.100.7:7411\"],\"repos\":[],"
           "\"relays\":[\"%s\"]",
           bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "broadcasting node names relays");
  snprintf(extra, sizeof(extra), "%s,\"relays\":\"%s\"", silent, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD, "not an array");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[]", silent);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD, "empty");
  snprintf(extra, sizeof(extra), "%s,\"relays\":null", silent);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD, "not an array");
  off = snprintf(extra, sizeof(extra), "%s,\"relays\":[", silent);
  for (int i = 0; i <= GV_MAX_RELAYS; i++) {
    char hex[65];
    uint8_t id[GV_ID_BYTES];
    memset(id, 0x30 + i, sizeof(id));
    gv_id_to_hex(id, hex);
    off += snprintf(extra + off, sizeof(extra) - (size_t)off, "%s\"%s\"",
                    i ? "," : "", hex);
  }
  snprintf(extra + off, sizeof(extra) - (size_t)off, "]");
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_ELIMIT, "relays");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[7]", silent);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[0] is not a node id");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%.63s\"]", silent, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[0] is not a node id");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%s0\"]", silent, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[0] is not a node id");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%.63sg\"]", silent, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[0] is not a node id");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%s\"]", silent, upper);
  ck_assert_str_ne(upper, bob_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[0] is not a node id (64 lower-case hex digits)");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%s\",\"%s\"]", silent,
           bob_hex, alice_hex);
  expect_body("PEER_UPDATE", T0_MS, extra, 32, GV_EFIELD,
              "relays[1] is the origin itself");
  snprintf(extra, sizeof(extra), "%s,\"relays\":[\"%s\",\"%s\"]", silent,
           bob_hex, bob_hex);
  expect_body("PEER_ANNOUNCEMENT", T0_MS, extra, 32, GV_EFIELD,
              "relays[1] repeats relays[0]");
}
END_TEST

/* ...and inside a response: a record leaking a silent node's address
 * poisons the whole response. */
START_TEST(test_response_with_leaking_record) {
  char *rec = body_of("PEER_ANNOUNCEMENT", T0_MS - 3600000,
                      "\"broadcasting\":false,\"bootstrap\":false,"
                      "\"addrs\":[\"198.51.100.9:1\"],\"repos\":[\"a\"]");
  char *rec_env = sign_raw(&alice, rec, 0, 0);
  cJSON *renv = cJSON_Parse(rec_env);
  cJSON *peers = cJSON_CreateArray(), *e = cJSON_CreateObject();
  char hex[65], *peers_txt, extra[16384];

  cJSON_AddStringToObject(e, "body", rec);
  cJSON_AddStringToObject(e, "sig",
                          cJSON_GetObjectItem(renv, "sig")->valuestring);
  cJSON_AddItemToArray(peers, e);
  peers_txt = cJSON_PrintUnformatted(peers);
  gv_id_to_hex(bob.pk, hex);
  snprintf(extra, sizeof(extra),
           "\"to\":\"%s\",\"request\":\"%s\","
           "\"peers\":%s",
           hex, hex, peers_txt);
  expect_body("PEER_LIST_RESPONSE", T0_MS, extra, 16, GV_ESILENTADDR,
              "peers[0]");
  cJSON_Delete(renv);
  cJSON_Delete(peers);
  free(peers_txt);
  free(rec_env);
  free(rec);
}
END_TEST

/* Records in a response are exempt from staleness, not from the signature;
 * and only announcements and updates may be records. */
START_TEST(test_response_records) {
  gv_msg rec, resp = {0}, d;
  gv_why why;
  char *out, *rec_out;
  size_t len;

  seal_announce(&rec, true);
  rec.ts = T0_MS - 7200000; /* two hours old: fine for a record */
  ck_assert_int_eq(gv_msg_seal(&rec, &alice, &rec_out, &len), 0);
  resp.type = GV_MSG_PEER_LIST_RESPONSE;
  resp.seq = 1;
  resp.ts = T0_MS;
  resp.u.response.n_peers = 1;
  resp.u.response.peers = &rec;
  ck_assert_int_eq(gv_msg_seal(&resp, &bob, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  gv_msg_clear(&d);
  free(out);

  /* Forged record signature. */
  rec.sig[0] ^= 1;
  ck_assert_int_eq(gv_msg_seal(&resp, &bob, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), GV_EBADSIG);
  ck_assert_ptr_nonnull(strstr(why.text, "peers[0]"));
  gv_msg_clear(&d);
  free(out);
  rec.sig[0] ^= 1;

  /* A heartbeat is not a record: the encoder refuses to embed one... */
  rec.type = GV_MSG_HEARTBEAT;
  rec.ttl = 2;
  free(rec_out);
  ck_assert_int_eq(gv_msg_seal(&rec, &alice, &rec_out, &len), 0);
  ck_assert_int_eq(gv_msg_seal(&resp, &bob, &out, &len), GV_EINVAL);
  /* ...and the decoder rejects one built by hand. */
  {
    char hex[65], extra[4096];
    cJSON *e = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    char sig[129], *txt;
    sodium_bin2hex(sig, sizeof(sig), rec.sig, 64);
    cJSON_AddStringToObject(e, "body", rec.body);
    cJSON_AddStringToObject(e, "sig", sig);
    cJSON_AddItemToArray(arr, e);
    txt = cJSON_PrintUnformatted(arr);
    gv_id_to_hex(bob.pk, hex);
    snprintf(extra, sizeof(extra),
             "\"to\":\"%s\",\"request\":\"%s\",\"peers\":%s", hex, hex, txt);
    expect_body("PEER_LIST_RESPONSE", T0_MS, extra, 16, GV_ETYPE, "record");
    free(txt);
    cJSON_Delete(arr);
  }

  resp.u.response.peers = NULL;
  resp.u.response.n_peers = 0;
  gv_msg_clear(&resp);
  gv_msg_clear(&rec);
  free(rec_out);
}
END_TEST

/* HELLO may carry the sender's own signed record. */
START_TEST(test_hello_record) {
  gv_msg rec, h = {0}, d;
  gv_why why;
  char *out, *rec_out, *p;
  size_t len;

  seal_announce(&rec, true);
  ck_assert_int_eq(gv_msg_seal(&rec, &alice, &rec_out, &len), 0);
  h.type = GV_MSG_HELLO;
  h.ts = T0_MS;
  h.u.hello.seq = rec.seq;
  strcpy(h.u.hello.agent, "grapevine/test");
  h.u.hello.record = &rec;
  ck_assert_int_eq(gv_msg_encode_link(&h, &out, &len), 0);
  ck_assert_int_eq(decode(out, &d, &why), 0);
  ck_assert_ptr_nonnull(d.u.hello.record);
  ck_assert_mem_eq(d.u.hello.record->origin, alice.pk, 32);
  ck_assert_mem_eq(d.u.hello.record->id, rec.id, 32);
  ck_assert_uint_eq(d.u.hello.record->u.peer.n_addrs, 2);
  gv_msg_clear(&d);
  {
    /* Into storage the caller lends: the same record, nothing allocated
     * for it, and clearing leaves the storage to its owner (ASan). */
    gv_msg_policy lend = pol;
    gv_msg store;
    memset(&store, 0xee, sizeof(store));
    lend.record = &store;
    ck_assert_int_eq(gv_msg_decode(&d, (const uint8_t *)out, len, &lend, &why),
                     0);
    ck_assert_ptr_eq(d.u.hello.record, &store);
    ck_assert_mem_eq(store.id, rec.id, 32);
    ck_assert_uint_eq(store.u.peer.n_addrs, 2);
    gv_msg_clear(&d);
    ck_assert_ptr_null(store.body);
  }
  /* A forged record fails the whole HELLO. */
  p = strstr(out, "\"sig\":\"") + 7;
  *p = *p == 'a' ? 'b' : 'a';
  ck_assert_int_eq(decode(out, &d, &why), GV_EBADSIG);
  ck_assert_ptr_nonnull(strstr(why.text, "record"));
  gv_msg_clear(&d);
  free(out);
  gv_msg_clear(&rec);
  free(rec_out);
}
END_TEST

START_TEST(test_non_printable_body) {
  gv_msg m;
  gv_why why;
  char *body = body_of("HEARTBEAT", T0_MS, "\"x\":\"caf\xc3\xa9\"");
  char *env = sign_raw(&alice, body, 2, 0);
  ck_assert_int_eq(decode(env, &m, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "printable"));
  free(env);
  free(body);
}
END_TEST

static int seen_all(void *ctx, const uint8_t id[32]) {
  (*(int *)ctx)++;
  (void)id;
  return 1;
}

/* The dedup probe runs before the signature: a forged duplicate is GV_EDUP,
 * not a signature check. */
START_TEST(test_dedup_probe) {
  gv_msg m;
  gv_why why;
  char *out;
  size_t len;
  int calls = 0;

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  gv_msg_clear(&m);
  pol.seen = seen_all;
  pol.seen_ctx = &calls;
  ck_assert_int_eq(decode(out, &m, &why), GV_EDUP);
  ck_assert_int_eq(calls, 1);
  free(out);
}
END_TEST

/* Unknown members are ignored (room for extension). */
START_TEST(test_unknown_members_ignored) {
  gv_msg m;
  gv_why why;
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":3,\"x\":[1]}", &m, &why), 0);
  ck_assert_uint_eq(m.u.nonce, 3);
  gv_msg_clear(&m);
}
END_TEST

START_TEST(test_addr_parse) {
  gv_addr a;
  char out[GV_ADDR_TEXT_MAX];
  const char *good[] = {"1.2.3.4:1", "255.255.255.255:65535", "[::1]:80",
                        "[2001:db8::ff]:7411"};
  const char *bad[] = {"1.2.3.4",  "1.2.3.4:",   "1.2.3.4:65536", "1.2.3:80",
                       "[::1]80",  "::1:80",     "1.2.3.4:08",    "host:80",
                       "[::1]:-1", " 1.2.3.4:80"};

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    ck_assert_int_eq(gv_addr_parse(&a, good[i], strlen(good[i])), 0);
    gv_addr_format(&a, out);
    ck_assert_str_eq(out, good[i]);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(gv_addr_parse(&a, bad[i], strlen(bad[i])) == GV_EFIELD,
                  "accepted '%s'", bad[i]);
}
END_TEST

/* Found by fuzzing: \u0000 ended cJSON strings early, so junk could ride
 * behind a signed body or a name. */
START_TEST(test_nul_escapes_refused) {
  gv_msg m, d;
  gv_why why;
  char *out, *tampered, *p;
  size_t len;

  seal_announce(&m, true);
  ck_assert_int_eq(gv_msg_seal(&m, &alice, &out, &len), 0);
  gv_msg_clear(&m);
  /* ..."repos":[...]}\u0000junk" as the body string's end */
  p = strstr(out, "]}\",\"sig\"");
  ck_assert_ptr_nonnull(p);
  tampered = malloc(len + 32);
  memcpy(tampered, out, (size_t)(p - out) + 2);
  strcpy(tampered + (p - out) + 2, "\\u0000junk");
  strcat(tampered, p + 2);
  ck_assert_int_eq(decode(tampered, &d, &why), GV_EJSON);
  gv_msg_clear(&d);
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"HELLO\",\"agent\":\"ok\\u0000x\","
             "\"ts\":1,\"seq\":0}",
             &d, &why),
      GV_EJSON);
  /* An escaped backslash followed by u0000 is just text. */
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"HELLO\",\"agent\":\"a\\\\u0000\","
             "\"ts\":1,\"seq\":0}",
             &d, &why),
      0);
  ck_assert_str_eq(d.u.hello.agent, "a\\u0000");
  gv_msg_clear(&d);
  free(tampered);
  free(out);
}
END_TEST

/* Found by fuzzing (fuzz_ctl): a raw NUL byte right after a backslash was
 * skipped as if escaped, so the strict layer let it through. */
START_TEST(test_raw_nul_after_backslash_refused) {
  static const char bad[] = "{\"a\":\"x\\\0\\\0y\"}";
  static const char good[] = "{\"a\":\"x\\\\y\"}";
  cJSON *o;
  gv_why why;

  ck_assert_int_eq(gv_json_parse_strict(&o, bad, sizeof(bad) - 1, &why),
                   GV_EJSON);
  ck_assert_ptr_null(o);
  ck_assert_ptr_nonnull(strstr(why.text, "NUL byte at 8"));
  ck_assert_int_eq(gv_json_parse_strict(&o, good, sizeof(good) - 1, &why), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(o, "a")->valuestring, "x\\y");
  cJSON_Delete(o);
}
END_TEST

/* Found by fuzzing: with two "addrs", a first-wins parser saw none and a
 * last-wins parser one: duplicates are refused outright. */
START_TEST(test_duplicate_members_refused) {
  char big[4096];
  int off;
  gv_msg m;
  gv_why why;

  expect_body("PEER_ANNOUNCEMENT", T0_MS,
              "\"broadcasting\":false,\"bootstrap\":false,\"addrs\":[],"
              "\"repos\":[],\"addrs\":[\"192.0.2.9:1\"]",
              32, GV_EFIELD, "appears twice");
  ck_assert_int_eq(
      decode("{\"v\":1,\"type\":\"PING\",\"nonce\":1,\"nonce\":2}", &m, &why),
      GV_EFIELD);
  off = snprintf(big, sizeof(big), "{\"v\":1,\"type\":\"PING\",\"nonce\":1");
  for (int i = 0; i < 70; i++)
    off += snprintf(big + off, sizeof(big) - (size_t)off, ",\"x%d\":0", i);
  snprintf(big + off, sizeof(big) - (size_t)off, "}");
  ck_assert_int_eq(decode(big, &m, &why), GV_ELIMIT);
}
END_TEST

/* The envelopes are written directly (msg.c); their bytes must be what
 * cJSON_PrintUnformatted prints for the same tree, escapes included. */
static void expect_cjson(cJSON *o, const char *got, size_t len) {
  char *want = cJSON_PrintUnformatted(o);
  ck_assert_ptr_nonnull(want);
  ck_assert_uint_eq(len, strlen(got));
  ck_assert_str_eq(got, want);
  free(want);
  cJSON_Delete(o);
}

/* A HELLO with agent, seq and a record of body and sig (0xa5 bytes)
 * encodes as cJSON prints it. */
static void expect_hello_as_cjson(const char *agent, uint64_t seq,
                                  const char *body) {
  gv_msg m, rec;
  char hex[129], digits[24], *out;
  size_t len;
  cJSON *o, *r;

  memset(&m, 0, sizeof(m));
  memset(&rec, 0, sizeof(rec));
  m.type = GV_MSG_HELLO;
  m.ts = T0_MS;
  snprintf(m.u.hello.agent, sizeof(m.u.hello.agent), "%s", agent);
  m.u.hello.seq = seq;
  rec.type = GV_MSG_PEER_UPDATE;
  rec.body = (char *)body;
  memset(rec.sig, 0xa5, sizeof(rec.sig));
  m.u.hello.record = &rec;
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  o = cJSON_CreateObject();
  cJSON_AddRawToObject(o, "v", "1");
  cJSON_AddStringToObject(o, "type", "HELLO");
  cJSON_AddStringToObject(o, "agent", agent);
  cJSON_AddRawToObject(o, "ts", "1767225600000");
  snprintf(digits, sizeof(digits), "%llu", (unsigned long long)seq);
  cJSON_AddRawToObject(o, "seq", digits);
  r = cJSON_AddObjectToObject(o, "record");
  cJSON_AddStringToObject(r, "body", body);
  gv_hex_encode(hex, rec.sig, 64);
  cJSON_AddStringToObject(r, "sig", hex);
  expect_cjson(o, out, len);
  free(out);
}

START_TEST(test_envelope_bytes_as_cjson) {
  static char body[300], reason[GV_REASON_MAX + 1];
  char hex[129], *out;
  gv_msg m;
  size_t len, k = 0;
  cJSON *o, *arr;

  /* Every byte value but NUL: quotes, backslashes, control characters
   * (short and \u00xx escapes), and bytes past ASCII left as they are. */
  for (int c = 255; c >= 1; c--)
    body[k++] = (char)c;
  body[k] = '\0';
  for (size_t i = 0; i < GV_REASON_MAX; i++)
    reason[i] = "\"\\\x01\x1f\n\tx"[i % 7];
  reason[GV_REASON_MAX] = '\0';

  expect_hello_as_cjson("agent \"q\" \\ \x7f", GV_INT_MAX, body);

  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_GOODBYE;
  strcpy(m.u.reason, reason);
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  o = cJSON_CreateObject();
  cJSON_AddRawToObject(o, "v", "1");
  cJSON_AddStringToObject(o, "type", "GOODBYE");
  cJSON_AddStringToObject(o, "reason", reason);
  expect_cjson(o, out, len);
  free(out);

  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_IWANT;
  m.u.ids.n = 2;
  memset(m.u.ids.ids[0], 0x0f, 32);
  memset(m.u.ids.ids[1], 0xf0, 32);
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  o = cJSON_CreateObject();
  cJSON_AddRawToObject(o, "v", "1");
  cJSON_AddStringToObject(o, "type", "IWANT");
  arr = cJSON_AddArrayToObject(o, "ids");
  for (int i = 0; i < 2; i++) {
    gv_hex_encode(hex, m.u.ids.ids[i], 32);
    cJSON_AddItemToArray(arr, cJSON_CreateString(hex));
  }
  expect_cjson(o, out, len);
  free(out);

  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_HEARTBEAT;
  m.ttl = 7;
  m.hops = GV_HOPS_MAX;
  m.body = body;
  memset(m.sig, 0x3c, sizeof(m.sig));
  ck_assert_int_eq(gv_msg_encode_gossip(&m, &out, &len), 0);
  o = cJSON_CreateObject();
  cJSON_AddRawToObject(o, "v", "1");
  cJSON_AddRawToObject(o, "ttl", "7");
  snprintf(hex, sizeof(hex), "%u", (unsigned)GV_HOPS_MAX);
  cJSON_AddRawToObject(o, "hops", hex);
  cJSON_AddStringToObject(o, "body", body);
  gv_hex_encode(hex, m.sig, 64);
  cJSON_AddStringToObject(o, "sig", hex);
  expect_cjson(o, out, len);
  free(out);
}
END_TEST

/* The _in encoders write into the caller's block when the encoder's worst
 * case fits and move to a malloc'd one when it does not (a block of size
 * 0 is none): the same bytes either way, and a failed encode frees only
 * what it allocated (ASan checks the free of a stack block). */
START_TEST(test_encode_in_lent_buffer) {
  static const size_t caps[] = {0, 1, 64, 700, 2048, 8192};
  char body[600], stack[8192], *want, *out;
  size_t want_len, len;
  gv_msg h, rec, g;

  for (size_t i = 0; i < sizeof(body) - 1; i++)
    body[i] = "ab\"c\n"[i % 5];
  body[sizeof(body) - 1] = '\0';
  memset(&rec, 0, sizeof(rec));
  rec.type = GV_MSG_PEER_UPDATE;
  rec.body = body;
  memset(&h, 0, sizeof(h));
  h.type = GV_MSG_HELLO;
  h.ts = T0_MS;
  strcpy(h.u.hello.agent, "agent");
  h.u.hello.record = &rec;
  memset(&g, 0, sizeof(g));
  g.type = GV_MSG_HEARTBEAT;
  g.ttl = 1;
  g.body = body;

  for (int k = 0; k < 2; k++) {
    int rc = k == 0 ? gv_msg_encode_link(&h, &want, &want_len)
                    : gv_msg_encode_gossip(&g, &want, &want_len);
    ck_assert_int_eq(rc, 0);
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
      memset(stack, 0x55, sizeof(stack));
      rc = k == 0 ? gv_msg_encode_link_in(&h, stack, caps[c], &out, &len)
                  : gv_msg_encode_gossip_in(&g, stack, caps[c], &out, &len);
      ck_assert_int_eq(rc, 0);
      ck_assert_uint_eq(len, want_len);
      ck_assert_mem_eq(out, want, len + 1); /* and the NUL */
      if (out == stack)
        ck_assert_uint_lt(len, caps[c]);
      else
        free(out);
      /* A block past the encoder's first reserve is used as it is. */
      if (caps[c] == sizeof(stack))
        ck_assert_ptr_eq(out, stack);
      if (caps[c] < want_len)
        ck_assert_ptr_ne(out, stack);
    }
    free(want);
  }

  /* Refused after writing began, in the block or past it. */
  rec.type = GV_MSG_HEARTBEAT;
  for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
    ck_assert_int_eq(gv_msg_encode_link_in(&h, stack, caps[c], &out, &len),
                     GV_EINVAL);
}
END_TEST

/* Too big to send: refused, in a lent block or not. */
START_TEST(test_encode_too_big) {
  char *body = malloc(GV_MSG_MAX + 1), stack[8192], *out;
  size_t len;
  gv_msg g;

  memset(body, 'x', GV_MSG_MAX);
  body[GV_MSG_MAX] = '\0';
  memset(&g, 0, sizeof(g));
  g.type = GV_MSG_HEARTBEAT;
  g.body = body;
  ck_assert_int_eq(gv_msg_encode_gossip(&g, &out, &len), GV_ETOOBIG);
  ck_assert_int_eq(
      gv_msg_encode_gossip_in(&g, stack, sizeof(stack), &out, &len),
      GV_ETOOBIG);
  free(body);
}
END_TEST

/* The escape loop goes a word at a time (msg.c w_str()): one or two
 * bytes to escape at every place of strings of every length up to ten
 * words, each encoded as cJSON prints it. */
START_TEST(test_escape_every_place) {
  static const char special[] = {'"',  '\\', 0x01,       0x1f,
                                 '\n', 0x7f, (char)0x80, (char)0xff};
  char body[80];

  for (size_t n = 1; n < sizeof(body); n++)
    for (size_t at = 0; at < n; at++)
      for (size_t c = 0; c < sizeof(special); c++)
        for (size_t two = 0; two < 2; two++) {
          memset(body, 'a', n);
          body[n] = '\0';
          body[at] = special[c];
          if (two && at + 1 < n)
            body[at + 1] = special[(c + 1) % sizeof(special)];
          expect_hello_as_cjson("a", 0, body);
        }
}
END_TEST

/* gv_hex_decode takes what sodium_hex2bin took at our call sites: exactly
 * 2n digits of either case, nothing else. */
START_TEST(test_hex_decode) {
  uint8_t out[4], want[4] = {0x01, 0xab, 0xcd, 0xef};
  char bad[9];
  ck_assert_int_eq(gv_hex_decode(out, 4, "01abCDeF", 8), 0);
  ck_assert_mem_eq(out, want, 4);
  ck_assert_int_eq(gv_hex_decode(out, 4, "01abCDe", 7), GV_EFIELD);
  ck_assert_int_eq(gv_hex_decode(out, 3, "01abCDeF", 8), GV_EFIELD);
  for (int c = 0; c < 256; c++) {
    bool digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                 (c >= 'A' && c <= 'F');
    for (int at = 0; at < 8; at++) {
      memcpy(bad, "01abcdef", 9);
      bad[at] = (char)c;
      ck_assert_int_eq(gv_hex_decode(out, 4, bad, 8) == 0, digit);
    }
  }
  /* A signature's length (decoded sixteen digits at a time where it can):
   * every byte value at every place, and every byte's two digits. */
  {
    uint8_t sig[64], got[64];
    char text[129];
    for (int k = 0; k < 64; k++)
      sig[k] = (uint8_t)(k * 37 + 11);
    for (int b = 0; b < 256; b++) {
      sig[b % 64] = (uint8_t)b;
      gv_hex_encode(text, sig, 64);
      ck_assert_int_eq(gv_hex_decode(got, 64, text, 128), 0);
      ck_assert_mem_eq(got, sig, 64);
      for (int at = 0; at < 128; at++) /* upper case decodes the same */
        if (text[at] >= 'a')
          text[at] = (char)(text[at] - 'a' + 'A');
      ck_assert_int_eq(gv_hex_decode(got, 64, text, 128), 0);
      ck_assert_mem_eq(got, sig, 64);
    }
    for (int c = 0; c < 256; c++) {
      bool digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                   (c >= 'A' && c <= 'F');
      for (int at = 0; at < 128; at++) {
        gv_hex_encode(text, sig, 64);
        text[at] = (char)c;
        ck_assert_int_eq(gv_hex_decode(got, 64, text, 128) == 0, digit);
      }
    }
  }
}
END_TEST

static Suite *msg_suite(void) {
  Suite *s = suite_create("msg");
  TCase *rt = tcase_create("roundtrip");
  TCase *bad = tcase_create("validation");

  tcase_add_checked_fixture(rt, setup, NULL);
  tcase_add_test(rt, test_roundtrip_announcement);
  tcase_add_test(rt, test_forward_keeps_id);
  tcase_add_test(rt, test_roundtrip_request_heartbeat);
  tcase_add_test(rt, test_roundtrip_response);
  tcase_add_test(rt, test_roundtrip_link_types);
  tcase_add_test(rt, test_hello_record);
  tcase_add_test(rt, test_seal_refuses_invalid);
  tcase_add_test(rt, test_roundtrip_relays);
  tcase_add_test(rt, test_roundtrip_tport);
  tcase_add_test(rt, test_tport_refused);
  tcase_add_test(rt, test_addr_parse);
  tcase_add_test(rt, test_repos_packed_with_body);
  tcase_add_test(rt, test_envelope_bytes_as_cjson);
  tcase_add_test(rt, test_escape_every_place);
  tcase_add_test(rt, test_encode_in_lent_buffer);
  tcase_add_test(rt, test_hex_decode);
  suite_add_tcase(s, rt);

  tcase_add_checked_fixture(bad, setup, NULL);
  tcase_add_test(bad, test_malformed_json);
  tcase_add_test(bad, test_too_big);
  tcase_add_test(bad, test_encode_too_big);
  tcase_add_test(bad, test_bad_version);
  tcase_add_test(bad, test_unknown_and_misplaced_type);
  tcase_add_test(bad, test_bad_signature);
  tcase_add_test(bad, test_tampered_body);
  tcase_add_test(bad, test_missing_fields);
  tcase_add_test(bad, test_malformed_fields);
  tcase_add_test(bad, test_oversize_fields);
  tcase_add_test(bad, test_ttl_per_type);
  tcase_add_test(bad, test_hops_range);
  tcase_add_test(bad, test_clock_window);
  tcase_add_test(bad, test_limits);
  tcase_add_test(bad, test_silent_address);
  tcase_add_test(bad, test_relays_refused);
  tcase_add_test(bad, test_response_with_leaking_record);
  tcase_add_test(bad, test_response_records);
  tcase_add_test(bad, test_non_printable_body);
  tcase_add_test(bad, test_dedup_probe);
  tcase_add_test(bad, test_unknown_members_ignored);
  tcase_add_test(bad, test_nul_escapes_refused);
  tcase_add_test(bad, test_raw_nul_after_backslash_refused);
  tcase_add_test(bad, test_duplicate_members_refused);
  suite_add_tcase(s, bad);
  return s;
}

int main(void) { return tu_run(msg_suite()); }

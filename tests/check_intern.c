/* The pool of shared strings, against a brute-force model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "intern.h"
#include "json.h"
#include "rng.h"
#include "testutil.h"

static const uint8_t KEY[GV_INTERN_KEY_BYTES] = "0123456789abcdef";

/* Equal contents share one copy, NUL-terminated, until the last drop. */
START_TEST(test_shared) {
  gv_intern *p;
  const char *a, *b, *c;

  ck_assert_int_eq(gv_intern_new(&p, KEY), 0);
  a = gv_intern_get(p, "{\"seq\":1}xyz", 9);
  b = gv_intern_get(p, "{\"seq\":1}", 9);
  c = gv_intern_get(p, "{\"seq\":2}", 9);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_eq(a, b);
  ck_assert_ptr_ne(a, c);
  ck_assert_str_eq(a, "{\"seq\":1}");
  ck_assert_str_eq(c, "{\"seq\":2}");
  ck_assert_uint_eq(gv_intern_count(p), 2);
  gv_intern_drop(p, a);
  ck_assert_uint_eq(gv_intern_count(p), 2); /* b still holds it */
  ck_assert_str_eq(b, "{\"seq\":1}");
  gv_intern_drop(p, b);
  ck_assert_uint_eq(gv_intern_count(p), 1);
  gv_intern_drop(p, NULL);
  /* A prefix, embedded NULs and the empty string are distinct. */
  a = gv_intern_get(p, "{\"seq\":2", 8);
  b = gv_intern_get(p, "a\0b", 3);
  ck_assert_ptr_ne(b, gv_intern_get(p, "a\0c", 3));
  ck_assert_ptr_ne(a, c);
  ck_assert_int_eq(memcmp(b, "a\0b", 4), 0);
  ck_assert_str_eq(gv_intern_get(p, "", 0), "");
  ck_assert_uint_eq(gv_intern_count(p), 5);
  gv_intern_free(p); /* frees what is still held */
}
END_TEST

/* Random gets and drops, checked against counts kept by hand: every live
 * string is found again (same pointer), every dropped one gone. */
START_TEST(test_against_model) {
  enum { STRS = 400, STEPS = 20000 };
  static char text[STRS][24];
  static const char *ptr[STRS];
  static unsigned refs[STRS];
  gv_intern *p;
  gv_rng r;

  gv_rng_seed(&r, (uint64_t)_i + 1);
  ck_assert_int_eq(gv_intern_new(&p, KEY), 0);
  memset(refs, 0, sizeof(refs));
  for (int k = 0; k < STRS; k++)
    snprintf(text[k], sizeof(text[k]), "record-%d", k);
  for (int s = 0; s < STEPS; s++) {
    int k = (int)gv_rng_below(&r, STRS);
    if (refs[k] > 0 && gv_rng_below(&r, 2) == 0) {
      gv_intern_drop(p, ptr[k]);
      refs[k]--;
    } else {
      const char *q = gv_intern_get(p, text[k], strlen(text[k]));
      ck_assert_ptr_nonnull(q);
      ck_assert_str_eq(q, text[k]);
      if (refs[k] > 0)
        ck_assert_ptr_eq(q, ptr[k]);
      ptr[k] = q;
      refs[k]++;
    }
    if (s % 97 == 0) {
      size_t n = 0;
      for (int j = 0; j < STRS; j++)
        n += refs[j] > 0;
      ck_assert_uint_eq(gv_intern_count(p), n);
    }
  }
  for (int k = 0; k < STRS; k++)
    while (refs[k] > 0) {
      gv_intern_drop(p, ptr[k]);
      refs[k]--;
    }
  ck_assert_uint_eq(gv_intern_count(p), 0);
  gv_intern_free(p);
}
END_TEST

/* ---- decoded bodies ---- */

#define NOW 1700000000000LL

static gv_identity alice;

/* The pool's memo, with its hits counted. */
static gv_intern *pool;
static int hits, verified;

static int count_find(void *ctx, const char *body, size_t len, gv_msg *m) {
  int rc = gv_intern_memo(ctx)->find(ctx, body, len, m);
  hits += rc > 0;
  verified += rc == 2;
  return rc;
}

static void count_put(void *ctx, gv_msg *m, bool sig_checked) {
  gv_intern_memo(ctx)->put(ctx, m, sig_checked);
}

static gv_msg_memo counted;

static void memo_setup(void) {
  tu_identity(&alice, 7);
  ck_assert_int_eq(gv_intern_new(&pool, KEY), 0);
  counted.find = count_find;
  counted.put = count_put;
  counted.drop = gv_intern_memo(pool)->drop;
  counted.ctx = pool;
  hits = verified = 0;
}

static void memo_teardown(void) { gv_intern_free(pool); }

static int seen_all(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]) {
  (void)ctx;
  (void)id;
  return 1;
}

/* Decodes buf without and with the memo under the same policy: the same
 * code, reason and message, member by member. Returns the code. */
static int same(const char *buf, int64_t now, bool stub,
                int (*seen)(void *, const uint8_t *)) {
  gv_msg_policy pol = {.now_ms = now, .trust_sigs = stub, .seen = seen};
  gv_msg a, b, ra, rb;
  gv_why wa, wb;
  int rc;

  wa.text[0] = wb.text[0] = '\0';
  pol.record = &ra;
  rc = gv_msg_decode(&a, (const uint8_t *)buf, strlen(buf), &pol, &wa);
  pol.record = &rb;
  pol.memo = &counted;
  ck_assert_int_eq(
      gv_msg_decode(&b, (const uint8_t *)buf, strlen(buf), &pol, &wb), rc);
  ck_assert_str_eq(wa.text, wb.text);
  if (rc == 0 && a.type == GV_MSG_HELLO) {
    ck_assert_int_eq(b.type, GV_MSG_HELLO);
    ck_assert_str_eq(a.u.hello.agent, b.u.hello.agent);
    ck_assert_int_eq(a.ts, b.ts);
    ck_assert_uint_eq(a.u.hello.seq, b.u.hello.seq);
    ck_assert_int_eq(a.u.hello.record == NULL, b.u.hello.record == NULL);
  }
  if (rc == 0 && (a.type != GV_MSG_HELLO || a.u.hello.record != NULL)) {
    const gv_msg *x = &a, *y = &b;
    if (a.type == GV_MSG_HELLO) {
      x = a.u.hello.record;
      y = b.u.hello.record;
    }
    ck_assert_int_eq(x->type, y->type);
    ck_assert_uint_eq(x->ttl, y->ttl);
    ck_assert_uint_eq(x->hops, y->hops);
    ck_assert_mem_eq(x->id, y->id, GV_MSG_ID_BYTES);
    ck_assert_mem_eq(x->origin, y->origin, GV_ID_BYTES);
    ck_assert_mem_eq(x->sig, y->sig, GV_SIG_BYTES);
    ck_assert_uint_eq(x->seq, y->seq);
    ck_assert_int_eq(x->ts, y->ts);
    ck_assert_uint_eq(x->body_len, y->body_len);
    ck_assert_str_eq(x->body, y->body);
    if (x->type == GV_MSG_PEER_ANNOUNCEMENT || x->type == GV_MSG_PEER_UPDATE) {
      const gv_peer_state *p = &x->u.peer, *q = &y->u.peer;
      const char *r = p->repos, *t = q->repos;
      ck_assert_int_eq(p->broadcasting, q->broadcasting);
      ck_assert_int_eq(p->bootstrap, q->bootstrap);
      ck_assert_uint_eq(p->tport, q->tport);
      ck_assert_uint_eq(p->n_addrs, q->n_addrs);
      ck_assert_mem_eq(p->addrs, q->addrs, p->n_addrs * sizeof(gv_addr));
      ck_assert_uint_eq(p->n_relays, q->n_relays);
      if (p->n_relays > 0)
        ck_assert_mem_eq(p->relays, q->relays, p->n_relays * GV_ID_BYTES);
      ck_assert_uint_eq(p->n_repos, q->n_repos);
      /* The names live behind the message's own body, or in the kept form
       * the memo lent, after the addresses and relays. */
      if (y->body != y->kept)
        ck_assert_ptr_eq(q->repos, y->body + y->body_len + 1);
      else
        ck_assert_ptr_eq(q->repos, y->kept + gv_kept_tail_at(y->body_len) +
                                       q->n_addrs * sizeof(gv_addr) +
                                       q->n_relays * GV_ID_BYTES);
      for (int i = 0; i < p->n_repos;
           i++, r += strlen(r) + 1, t += strlen(t) + 1)
        ck_assert_str_eq(r, t);
    }
    if (x->type == GV_MSG_PEER_REQUEST) {
      ck_assert_str_eq(x->u.request.repo, y->u.request.repo);
      ck_assert_uint_eq(x->u.request.max, y->u.request.max);
    }
    /* Decoding with the memo lends the kept form (the engine keeps that
     * very string): byte for byte what the message decoded without the
     * memo makes, and the message's body is in it. */
    ck_assert_ptr_null(x->kept);
    if (x->type != GV_MSG_PEER_LIST_RESPONSE) { /* never kept */
      ck_assert_ptr_nonnull(y->kept);
      size_t n;
      char *k = gv_kept_new(x, &n);
      ck_assert_ptr_nonnull(k);
      ck_assert_mem_eq(y->kept, k, n);
      free(k);
    }
  }
  gv_msg_clear(&a);
  gv_msg_clear(&b);
  return rc;
}

/* A sealed gossip message of type t (an announcement with an address,
 * two repositories and, when silent, a relay), as sent. */
static char *sealed(gv_msg_type t, uint64_t seq, bool silent, bool stub,
                    gv_msg *m) {
  char *out;
  size_t len;

  memset(m, 0, sizeof(*m));
  m->type = t;
  m->seq = seq;
  m->ts = NOW;
  m->ttl = gv_msg_max_ttl(t);
  if (t == GV_MSG_PEER_ANNOUNCEMENT || t == GV_MSG_PEER_UPDATE) {
    m->u.peer.broadcasting = !silent;
    if (silent) {
      m->u.peer.n_relays = 1;
      memset(m->u.peer.relays[0], 0x42, GV_ID_BYTES);
    } else {
      ck_assert_int_eq(gv_addr_parse(&m->u.peer.addrs[0], "10.0.0.1:7411", 13),
                       0);
      m->u.peer.n_addrs = 1;
      m->u.peer.bootstrap = true;
      m->u.peer.tport = 6881;
    }
    m->u.peer.repos = "demo/a\0linux@v6.1\0";
    m->u.peer.n_repos = 2;
  } else if (t == GV_MSG_PEER_REQUEST) {
    strcpy(m->u.request.repo, "demo/a");
    m->u.request.max = 5;
  }
  ck_assert_int_eq(gv_msg_seal_opt(m, &alice, stub, &out, &len), 0);
  return out;
}

/* A HELLO carrying rec. */
static char *hello(const gv_msg *rec, int64_t ts) {
  gv_msg h;
  char *out;
  size_t len;

  memset(&h, 0, sizeof(h));
  h.type = GV_MSG_HELLO;
  h.ts = ts;
  strcpy(h.u.hello.agent, "grapevine/test");
  h.u.hello.record = (gv_msg *)rec;
  ck_assert_int_eq(gv_msg_encode_link(&h, &out, &len), 0);
  return out;
}

/* Every gossip type that is kept decodes to the same message from the
 * memo as from its bytes, real signatures or not; a response is never
 * kept (its records are judged by the receiver's clock). */
START_TEST(test_memo_same) {
  static const gv_msg_type types[] = {GV_MSG_PEER_ANNOUNCEMENT,
                                      GV_MSG_PEER_UPDATE, GV_MSG_PEER_REQUEST,
                                      GV_MSG_HEARTBEAT};
  bool stub = _i == 1;
  size_t kept = 0;

  for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
    for (int silent = 0; silent < 2; silent++) {
      gv_msg m;
      char *env =
          sealed(types[k], 10 + 2 * k + (size_t)silent, silent, stub, &m);
      int h = hits;
      ck_assert_int_eq(same(env, NOW, stub, NULL), 0); /* decoded, kept */
      ck_assert_int_eq(hits, h);
      ck_assert_uint_eq(gv_intern_memo_count(pool), ++kept);
      ck_assert_int_eq(same(env, NOW, stub, NULL), 0); /* from the memo */
      ck_assert_int_eq(hits, h + 1);
      gv_msg_clear(&m);
      free(env);
    }
  /* A signature verified once is not verified again for these bytes. */
  ck_assert_int_eq(verified, stub ? 0 : (int)kept);
  {
    gv_msg req, rec, resp;
    char *r1 = sealed(GV_MSG_PEER_REQUEST, 30, false, stub, &req);
    char *r2 = sealed(GV_MSG_PEER_ANNOUNCEMENT, 31, false, stub, &rec);
    char *env;
    size_t len;

    memset(&resp, 0, sizeof(resp));
    resp.type = GV_MSG_PEER_LIST_RESPONSE;
    resp.seq = 32;
    resp.ts = NOW;
    resp.ttl = GV_TTL_RESPONSE;
    memcpy(resp.u.response.to, alice.pk, GV_ID_BYTES);
    memcpy(resp.u.response.request, req.id, GV_MSG_ID_BYTES);
    resp.u.response.n_peers = 1;
    resp.u.response.peers = &rec;
    ck_assert_int_eq(gv_msg_seal_opt(&resp, &alice, stub, &env, &len), 0);
    resp.u.response.peers = NULL; /* rec is cleared on its own */
    resp.u.response.n_peers = 0;
    ck_assert_int_eq(same(env, NOW, stub, NULL), 0);
    ck_assert_int_eq(same(env, NOW, stub, NULL), 0);
    /* Its record is kept (and found the second time); it is not. */
    ck_assert_uint_eq(gv_intern_memo_count(pool), kept + 1);
    gv_msg_clear(&req);
    gv_msg_clear(&rec);
    gv_msg_clear(&resp);
    free(r1);
    free(r2);
    free(env);
  }
}
END_TEST

/* What depends on the receiver or the envelope is still checked on a hit:
 * the clock window, dedup, ttl, the signature, an embedded record's type. */
START_TEST(test_memo_receiver) {
  gv_msg m, hb;
  char *env = sealed(GV_MSG_PEER_ANNOUNCEMENT, 3, false, false, &m);
  char *hbe = sealed(GV_MSG_HEARTBEAT, 4, false, false, &hb);
  char *h, *p;

  ck_assert_int_eq(same(env, NOW, false, NULL), 0);
  ck_assert_uint_eq(gv_intern_memo_count(pool), 1);
  hits = 0;
  /* Too far in the future for a receiver whose clock is behind; too old
   * for one whose clock is ahead. */
  ck_assert_int_eq(same(env, NOW - GV_CLOCK_SKEW_MS - 1, false, NULL),
                   GV_EFUTURE);
  ck_assert_int_eq(same(env, NOW + GV_MSG_MAX_AGE_MS + 1, false, NULL),
                   GV_ESTALE);
  ck_assert_int_eq(hits, 2);
  /* Seen before: a duplicate, memo or not. */
  ck_assert_int_eq(same(env, NOW, false, seen_all), GV_EDUP);
  /* A ttl over the type's limit, in the envelope only. */
  p = strstr(env, "\"ttl\":32");
  ck_assert_ptr_nonnull(p);
  memcpy(p, "\"ttl\":99", 8);
  ck_assert_int_eq(same(env, NOW, false, NULL), GV_ETTL);
  memcpy(p, "\"ttl\":32", 8);
  /* The same body under another signature is verified, and fails. */
  p = strstr(env, "\"sig\":\"") + 7;
  *p = *p == 'a' ? 'b' : 'a';
  verified = 0;
  ck_assert_int_eq(same(env, NOW, false, NULL), GV_EBADSIG);
  ck_assert_int_eq(verified, 0);
  /* In a HELLO: the record found in the memo; a heartbeat's body found
   * there is still no record. */
  h = hello(&m, NOW);
  ck_assert_int_eq(same(h, NOW, false, NULL), 0);
  free(h);
  ck_assert_int_eq(same(hbe, NOW, false, NULL), 0);
  hb.type = GV_MSG_PEER_ANNOUNCEMENT; /* encode_link takes only records */
  h = hello(&hb, NOW);
  hits = 0;
  ck_assert_int_eq(same(h, NOW, false, NULL), GV_ETYPE);
  ck_assert_int_eq(hits, 1);
  free(h);
  hb.type = GV_MSG_HEARTBEAT;
  gv_msg_clear(&m);
  gv_msg_clear(&hb);
  free(env);
  free(hbe);
}
END_TEST

/* A body that fails its own checks is never kept, and fails again for
 * every receiver the same way. */
START_TEST(test_memo_failures) {
  static const char *bad[] = {
      /* not JSON inside */
      "{\"v\":1,\"ttl\":2,\"hops\":0,\"body\":\"{\\\"v\\\":1,\","
      "\"sig\":\"%s\"}",
      /* a silent node with an address */
      "{\"v\":1,\"ttl\":2,\"hops\":0,\"body\":\"{\\\"v\\\":1,\\\"type\\\":"
      "\\\"PEER_ANNOUNCEMENT\\\",\\\"origin\\\":\\\"%s\\\",\\\"seq\\\":1,"
      "\\\"ts\\\":1700000000000,\\\"broadcasting\\\":false,\\\"bootstrap\\\":"
      "false,\\\"addrs\\\":[\\\"10.0.0.1:1\\\"],\\\"repos\\\":[]}\","
      "\"sig\":\"%s\"}",
  };
  char sig[2 * GV_SIG_BYTES + 1], origin[GV_ID_HEX_LEN + 1], buf[1024];

  memset(sig, '0', 2 * GV_SIG_BYTES);
  sig[2 * GV_SIG_BYTES] = '\0';
  gv_id_to_hex(alice.pk, origin);
  snprintf(buf, sizeof(buf), bad[0], sig);
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(same(buf, NOW, true, NULL), GV_EJSON);
  snprintf(buf, sizeof(buf), bad[1], origin, sig);
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(same(buf, NOW, true, NULL), GV_ESILENTADDR);
  ck_assert_uint_eq(gv_intern_memo_count(pool), 0);
  ck_assert_int_eq(hits, 0);
}
END_TEST

/* At most max bodies, the oldest forgotten first; a forgotten body is
 * decoded again, to the same message. */
START_TEST(test_memo_bound) {
  gv_msg m[3];
  char *env[3];

  gv_intern_memo_max(pool, 2);
  for (int k = 0; k < 3; k++) {
    env[k] = sealed(GV_MSG_HEARTBEAT, (uint64_t)k + 1, false, true, &m[k]);
    ck_assert_int_eq(same(env[k], NOW, true, NULL), 0);
  }
  ck_assert_uint_eq(gv_intern_memo_count(pool), 2);
  hits = 0;
  ck_assert_int_eq(same(env[2], NOW, true, NULL), 0);
  ck_assert_int_eq(same(env[1], NOW, true, NULL), 0);
  ck_assert_int_eq(hits, 2);
  ck_assert_int_eq(same(env[0], NOW, true, NULL), 0); /* forgotten */
  ck_assert_int_eq(hits, 2);
  ck_assert_uint_eq(gv_intern_memo_count(pool), 2); /* 1 went instead */
  gv_intern_memo_max(pool, 1);
  ck_assert_uint_eq(gv_intern_memo_count(pool), 1);
  ck_assert_int_eq(same(env[0], NOW, true, NULL), 0);
  ck_assert_int_eq(hits, 3);
  for (int k = 0; k < 3; k++) {
    gv_msg_clear(&m[k]);
    free(env[k]);
  }
}
END_TEST

static int decode(gv_msg *m, const char *env, bool stub) {
  gv_msg_policy pol = {.now_ms = NOW, .trust_sigs = stub, .memo = &counted};
  gv_why why;
  return gv_msg_decode(m, (const uint8_t *)env, strlen(env), &pol, &why);
}

/* The kept form is one string of the pool's, shared by the memo, every
 * message that borrows it and whoever keeps it (the engine), each with a
 * reference of its own; the last one given back frees it. */
START_TEST(test_memo_kept) {
  gv_msg m, a, b, c, other;
  char *env = sealed(GV_MSG_PEER_ANNOUNCEMENT, 5, false, true, &m);
  char *env2 = sealed(GV_MSG_HEARTBEAT, 6, false, true, &other);
  const char *held;
  char *p;

  ck_assert_int_eq(decode(&a, env, true), 0); /* decoded, kept, lent */
  ck_assert_int_eq(decode(&b, env, true), 0); /* from the memo */
  ck_assert_ptr_nonnull(a.kept);
  ck_assert_ptr_eq(b.kept, a.kept);
  ck_assert_ptr_eq(b.body, b.kept);
  ck_assert_ptr_ne(a.body, a.kept); /* decoded: its own copy */
  ck_assert_uint_eq(gv_intern_count(pool), 1);
  held = gv_intern_ref(pool, a.kept); /* as the engine keeps it */
  ck_assert_ptr_eq(held, a.kept);
  gv_msg_clear(&a);
  gv_msg_clear(&b);
  /* The same body under another signature: decoded from the memo, but
   * not lent (the engine must keep that signature). */
  p = strstr(env, "\"sig\":\"") + 7;
  *p = *p == 'a' ? 'b' : 'a';
  ck_assert_int_eq(decode(&c, env, true), 0);
  ck_assert_ptr_null(c.kept);
  ck_assert_ptr_ne(c.body, held);
  ck_assert_mem_ne(c.sig, held + c.body_len + 1, GV_SIG_BYTES);
  gv_msg_clear(&c);
  /* Forgotten by the memo, held by its keeper alone: then freed. */
  gv_intern_memo_max(pool, 1);
  ck_assert_int_eq(decode(&c, env2, true), 0);
  gv_msg_clear(&c);
  ck_assert_uint_eq(gv_intern_memo_count(pool), 1);
  ck_assert_uint_eq(gv_intern_count(pool), 2);
  gv_intern_drop(pool, held);
  ck_assert_uint_eq(gv_intern_count(pool), 1);
  gv_msg_clear(&m);
  gv_msg_clear(&other);
  free(env);
  free(env2);
}
END_TEST

/* Replaces the first `from` in text by `to` (into out). */
static void edit(char *out, size_t cap, const char *text, const char *from,
                 const char *to) {
  const char *p = strstr(text, from);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_lt(strlen(text) + strlen(to), cap);
  snprintf(out, cap, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
}

/* Envelopes in our encoders' form are read without a tree; every
 * variation of it goes to the tree, and the result is the same either
 * way, failures and reasons included. */
START_TEST(test_memo_envelopes) {
  static const struct {
    const char *from, *to;
    int rc; /* of the gossip envelope (0: decodes) */
  } gossip[] = {
      {"{\"v\":1,", "{\"v\":1 ,", 0},   /* white space */
      {"{\"v\":1,", "{\"v\":1.0,", 0},  /* a fraction */
      {"\"ttl\":32", "\"ttl\":032", 0}, /* a leading zero */
      {"\"ttl\":32", "\"ttl\":3e1", 0}, /* an exponent */
      {"\"ttl\":32", "\"ttl\":300", GV_ERANGE},
      {"\"hops\":0", "\"hops\":33", GV_ERANGE},
      {"\"hops\":0", "\"hops\":1234567890123456", GV_ERANGE},
      {"{\"v\":1,", "{\"v\":2,", GV_EVERSION},
      {"{\"v\":1,", "{\"v\":1,\"x\":1,", 0},               /* a member more */
      {"{\"v\":1,\"ttl\":32,", "{\"ttl\":32,\"v\":1,", 0}, /* order */
      {"{\"v\":1,", "{\"v\":1,\"v\":1,", GV_EFIELD},       /* twice */
      {"\\\"type\\\"", "\\\"t\\u0079pe\\\"", 0}, /* \u: the same body */
      {"\"}", "\"} ", 0},                        /* trailing */
      {"\"}", "\"}x", GV_EJSON},
  };
  gv_msg m;
  char *env = sealed(GV_MSG_PEER_ANNOUNCEMENT, 9, false, false, &m);
  char *h = hello(&m, NOW), buf[4096], str[64];
  gv_json_tok t[2] = {{.kind = GV_JSON_UINT}, {.kind = GV_JSON_STR}};
  static const char *const keys[] = {"a", "b"};
  size_t used;

  /* The scanner itself: its form only. */
#define SCAN(text, cap)                                                        \
  gv_json_scan(text, strlen(text), keys, t, 2, str, cap, &used)
  ck_assert(SCAN("{\"a\":7,\"b\":\"x\\\"y\"}", sizeof(str)));
  ck_assert_uint_eq(t[0].num, 7);
  ck_assert_str_eq(t[1].s, "x\"y");
  ck_assert_uint_eq(used, 4);
  ck_assert(SCAN("{\"a\":0,\"b\":\"\"}", sizeof(str)));
  ck_assert(!SCAN("{\"a\":7,\"b\":\"x\\/y\"}", sizeof(str)));
  ck_assert(!SCAN("{\"a\":-7,\"b\":\"x\"}", sizeof(str)));
  ck_assert(!SCAN("{\"a\":07,\"b\":\"x\"}", sizeof(str)));
  ck_assert(!SCAN("{\"a\":7,\"b\":\"x\"}", 1)); /* no room */
  ck_assert(!SCAN("{\"a\":7,\"b\":\"\x7f\"}", sizeof(str)));
  ck_assert(!SCAN("{\"a\":7,\"b\":\"x\"", sizeof(str)));
  ck_assert(!SCAN("{\"a\":7}", sizeof(str)));
#undef SCAN
  /* Strings go a block or a word at a time: one escape (or a byte that
   * ends the form) at every place of every length up to five blocks,
   * against the rule byte by byte. */
  {
    static const char *const marks[] = {"\\\"", "\\\\", "\\/",     "\x7f",
                                        "\x80", "\x1f", "\\\"\\\\"};
    char text[128], val[96], want[96], out[96], big[160];
    for (size_t n = 0; n < 80; n++)
      for (size_t at = 0; at <= n; at++)
        for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
          size_t wn = 0, len;
          bool ok = true;
          memset(val, 'a', n);
          val[n] = '\0';
          len = (size_t)snprintf(text, sizeof(text), "%.*s%s%s", (int)at, val,
                                 marks[k], val + at);
          snprintf(big, sizeof(big), "{\"a\":7,\"b\":\"%s\"}", text);
          for (size_t i = 0; i < len && ok; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '\\' && (text[i + 1] == '"' || text[i + 1] == '\\'))
              want[wn++] = text[++i];
            else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
              want[wn++] = (char)c;
            else
              ok = false;
          }
          ck_assert_msg(gv_json_scan(big, strlen(big), keys, t, 2, out,
                                     sizeof(out), &used) == ok,
                        "%s", big);
          if (ok) {
            ck_assert_uint_eq(t[1].len, wn);
            ck_assert_mem_eq(t[1].s, want, wn);
          }
        }
  }

  hits = 0;
  ck_assert_int_eq(same(env, NOW, false, NULL), 0);
  ck_assert_int_eq(same(h, NOW, false, NULL), 0);
  ck_assert_int_eq(hits, 1); /* the HELLO's record */
  for (size_t k = 0; k < sizeof(gossip) / sizeof(gossip[0]); k++) {
    edit(buf, sizeof(buf), env, gossip[k].from, gossip[k].to);
    ck_assert_msg(same(buf, NOW, false, NULL) == gossip[k].rc, "%s",
                  gossip[k].to);
  }
  /* HELLOs: each field's form and limits. */
  edit(buf, sizeof(buf), h, "\"agent\":\"grapevine/test\"",
       "\"agent\":\"0123456789012345678901234567890123456789012345678901"
       "234567890123\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), 0); /* 64 bytes */
  edit(buf, sizeof(buf), h, "\"agent\":\"grapevine/test\"",
       "\"agent\":\"0123456789012345678901234567890123456789012345678901"
       "2345678901234\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_EFIELD); /* 65 */
  edit(buf, sizeof(buf), h, "\"agent\":\"grapevine/test\"", "\"agent\":\"\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_EFIELD);
  edit(buf, sizeof(buf), h, "\"type\":\"HELLO\"", "\"type\":\"PING\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_EFIELD); /* no nonce */
  edit(buf, sizeof(buf), h, "\"type\":\"HELLO\"", "\"type\":\"HELL\\\\O\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_ETYPE);
  edit(buf, sizeof(buf), h, ",\"sig\":", ",\"sig\" :");
  ck_assert_int_eq(same(buf, NOW, false, NULL), 0);
  edit(buf, sizeof(buf), h, "\"record\":{", "\"record\":[{");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_EJSON);
  edit(buf, sizeof(buf), h, "\"record\":{\"body\"", "\"record\":{\"bod\"");
  ck_assert_int_eq(same(buf, NOW, false, NULL), GV_EFIELD);
  snprintf(buf, sizeof(buf), "%.*s}", (int)(strstr(h, ",\"record\"") - h), h);
  ck_assert_int_eq(same(buf, NOW, false, NULL), 0); /* without a record */
  gv_msg_clear(&m);
  free(env);
  free(h);
}
END_TEST

static Suite *intern_suite(void) {
  Suite *s = suite_create("intern");
  TCase *tc = tcase_create("core");
  TCase *memo = tcase_create("memo");
  tcase_add_test(tc, test_shared);
  tcase_add_loop_test(tc, test_against_model, 0, 4);
  suite_add_tcase(s, tc);
  tcase_add_checked_fixture(memo, memo_setup, memo_teardown);
  tcase_add_loop_test(memo, test_memo_same, 0, 2);
  tcase_add_test(memo, test_memo_receiver);
  tcase_add_test(memo, test_memo_failures);
  tcase_add_test(memo, test_memo_bound);
  tcase_add_test(memo, test_memo_kept);
  tcase_add_test(memo, test_memo_envelopes);
  suite_add_tcase(s, memo);
  return s;
}

int main(void) { return tu_run(intern_suite()); }

/* Unit tests of the tracker: the sans-I/O cores under an injected clock
 * (registry: expiry at 1 h, renewal, per-address limits, sampling; replay
 * window; token buckets; request parsing and signatures), the SQLite store,
 * the fair share of the connection cap, and the client's signing against
 * the worked example of docs/TRACKER.md §2.4. */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../node/trkclient.h"
#include "../tracker/bucket.h"
#include "../tracker/fair.h"
#include "../tracker/map.h"
#include "../tracker/registry.h"
#include "../tracker/replay.h"
#include "../tracker/req.h"
#include "../tracker/store.h"
#include "testutil.h"

#define HOUR GV_TRK_TTL_MS
#define MIN 60000LL

static const uint8_t KEY16[16] = {7};

static void rng_for(gv_trk_rng *r, uint8_t b) {
  uint8_t seed[GV_TRK_RNG_SEED_BYTES];
  memset(seed, b, sizeof(seed));
  gv_trk_rng_init(r, seed);
}

/* A registration of id number n from ip:port holding repos (a
 * comma-separated list, may be ""). */
static void mkrec(gv_trk_rec *rec, unsigned n, const char *ip, uint16_t port,
                  const char *repos) {
  char text[80];
  const char *p = repos;

  memset(rec, 0, sizeof(*rec));
  memset(rec->id, 0xA0, GV_ID_BYTES);
  memcpy(rec->id, &n, sizeof(n));
  snprintf(text, sizeof(text), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
  ck_assert_int_eq(gv_addr_parse(&rec->addr, text, strlen(text)), 0);
  while (*p) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    memcpy(rec->repos[rec->n_repos], p, len);
    rec->repos[rec->n_repos++][len] = '\0';
    p += len + (c != NULL);
  }
  strcpy(rec->caps[rec->n_caps++], "relay");
  rec->ts = T0_MS;
}

static gv_trk_reg *mkreg(unsigned k, unsigned max_verifying) {
  gv_trk_reg_cfg cfg = {k, max_verifying, GV_TRK_TTL_MS, 0, NULL, NULL};
  gv_trk_reg *r;
  ck_assert_int_eq(gv_trk_reg_new(&r, &cfg, KEY16), 0);
  return r;
}

static void assert_ok(const gv_trk_reg *r) {
  gv_why why = {""};
  int rc = gv__trk_reg_check(r, &why);
  ck_assert_msg(rc == 0, "invariant: %s", why.text);
}

/* begin + commit at now; returns begin's result. */
static int list_at(gv_trk_reg *r, const gv_trk_rec *rec, int64_t now) {
  int rc = gv_trk_reg_begin(r, rec, now, NULL);
  ck_assert_int_ge(rc, 0);
  ck_assert_int_eq(gv_trk_reg_commit(r, rec, now + HOUR, now), 0);
  assert_ok(r);
  return rc;
}

/* ---- map ---- */

typedef struct kv {
  uint32_t k;
} kv;

static int kv_match(const void *item, const void *key, size_t len) {
  return len == 4 && memcmp(&((const kv *)item)->k, key, 4) == 0;
}

START_TEST(test_map_model) {
  gv_trk_map m;
  kv items[300];
  int in[300] = {0};
  gv_trk_rng rng;

  rng_for(&rng, 1);
  gv_trk_map_init(&m, KEY16, kv_match);
  for (uint32_t i = 0; i < 300; i++)
    items[i].k = i;
  for (int op = 0; op < 20000; op++) {
    uint32_t k = gv_trk_rng_uniform(&rng, 300);
    void *got = gv_trk_map_get(&m, &k, 4);
    ck_assert_ptr_eq(got, in[k] ? &items[k] : NULL);
    if (gv_trk_rng_uniform(&rng, 2) == 0 && !in[k]) {
      ck_assert_int_eq(gv_trk_map_put(&m, &k, 4, &items[k]), 0);
      in[k] = 1;
    } else if (in[k]) {
      ck_assert_ptr_eq(gv_trk_map_del(&m, &k, 4), &items[k]);
      in[k] = 0;
    }
  }
  {
    size_t pos = 0, n = 0, want = 0;
    while (gv_trk_map_next(&m, &pos) != NULL)
      n++;
    for (int i = 0; i < 300; i++)
      want += (size_t)in[i];
    ck_assert_uint_eq(n, want);
    ck_assert_uint_eq(m.count, want);
  }
  gv_trk_map_free(&m);
}
END_TEST

/* ---- rng ---- */

START_TEST(test_rng) {
  gv_trk_rng a, b;
  int hist[10] = {0};

  rng_for(&a, 3);
  rng_for(&b, 3);
  for (int i = 0; i < 1000; i++)
    ck_assert_uint_eq(gv_trk_rng_uniform(&a, 1000003),
                      gv_trk_rng_uniform(&b, 1000003));
  for (int i = 0; i < 100; i++)
    ck_assert_uint_eq(gv_trk_rng_uniform(&a, 1), 0);
  for (int i = 0; i < 20000; i++)
    hist[gv_trk_rng_uniform(&a, 10)]++;
  for (int i = 0; i < 10; i++)
    ck_assert_msg(hist[i] > 1700 && hist[i] < 2300, "bucket %d: %d", i,
                  hist[i]);
  gv_trk_rng_wipe(&a);
  gv_trk_rng_wipe(&b);
}
END_TEST

/* ---- registry ---- */

START_TEST(test_reg_register_and_list) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec rec;
  gv_trk_reg_stats st;
  gv_trk_rng rng;
  const gv_trk_entry *out[4];
  const char *json;
  size_t len;
  char *text, hex[GV_ID_HEX_LEN + 1];

  rng_for(&rng, 1);
  mkrec(&rec, 1, "198.51.100.7", 7411, "demo/hello,linux@v6.1");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  /* VERIFYING is invisible. */
  ck_assert_ptr_null(gv_trk_reg_find(r, rec.id));
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 4, NULL, out), 0);
  gv_trk_reg_get_stats(r, &st);
  ck_assert_uint_eq(st.listed, 0);
  ck_assert_uint_eq(st.verifying, 1);
  ck_assert_uint_eq(st.ips, 1);
  assert_ok(r);

  ck_assert_int_eq(gv_trk_reg_commit(r, &rec, T0_MS + HOUR, T0_MS + 10), 0);
  assert_ok(r);
  ck_assert_ptr_nonnull(gv_trk_reg_find(r, rec.id));
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 4, NULL, out), 1);
  ck_assert_int_eq(gv_trk_entry_expires(out[0]), T0_MS + HOUR);
  ck_assert_int_eq(gv_trk_entry_registered(out[0]), T0_MS + 10);
  gv_trk_reg_get_stats(r, &st);
  ck_assert_uint_eq(st.listed, 1);
  ck_assert_uint_eq(st.verifying, 0);
  ck_assert_uint_eq(st.repos, 2);

  json = gv_trk_entry_json(out[0], &len);
  text = strndup(json, len);
  gv_id_to_hex(rec.id, hex);
  ck_assert_ptr_nonnull(strstr(text, hex));
  ck_assert_ptr_nonnull(strstr(text, "\"addr\":\"198.51.100.7:7411\""));
  ck_assert_ptr_nonnull(
      strstr(text, "\"repos\":[\"demo/hello\",\"linux@v6.1\"]"));
  ck_assert_ptr_nonnull(strstr(text, "\"caps\":[\"relay\"]"));
  ck_assert_ptr_nonnull(strstr(text, "\"expires\":1767229200000"));
  free(text);
  gv_trk_reg_free(r);
}
END_TEST

static int expired_n;
static uint8_t expired_id[GV_ID_BYTES];
static void on_expired(void *ctx, const uint8_t id[GV_ID_BYTES]) {
  (void)ctx;
  expired_n++;
  memcpy(expired_id, id, GV_ID_BYTES);
}

START_TEST(test_reg_expiry_one_hour) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec a, b;

  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  mkrec(&b, 2, "10.0.0.2", 1000, "x");
  list_at(r, &a, T0_MS);
  list_at(r, &b, T0_MS + 5 * MIN);
  ck_assert_int_eq(gv_trk_reg_next_expiry(r), T0_MS + HOUR);
  expired_n = 0;
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR - 1, on_expired, NULL),
                    0);
  ck_assert_ptr_nonnull(gv_trk_reg_find(r, a.id));
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR, on_expired, NULL), 1);
  ck_assert_int_eq(expired_n, 1);
  ck_assert_mem_eq(expired_id, a.id, GV_ID_BYTES);
  ck_assert_ptr_null(gv_trk_reg_find(r, a.id));
  ck_assert_ptr_nonnull(gv_trk_reg_find(r, b.id));
  assert_ok(r);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR + 5 * MIN, NULL, NULL),
                    1);
  ck_assert_int_eq(gv_trk_reg_next_expiry(r), INT64_MAX);
  assert_ok(r);
  /* An expired id may register again: it starts from scratch. */
  ck_assert_int_eq(list_at(r, &a, T0_MS + 2 * HOUR), 0);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_renewal_extends) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec a, a2;
  gv_trk_rng rng;
  const gv_trk_entry *out[4];
  const char names[2][GV_REPO_MAX + 1] = {"old", "new"};

  rng_for(&rng, 2);
  mkrec(&a, 1, "10.0.0.1", 1000, "old");
  list_at(r, &a, T0_MS);
  /* Renew after 20 minutes, with a new port and repositories. */
  mkrec(&a2, 1, "10.0.0.1", 2000, "new");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a2, T0_MS + 20 * MIN, NULL), 1);
  ck_assert_ptr_nonnull(gv_trk_reg_find(r, a.id)); /* still listed */
  assert_ok(r);
  ck_assert_int_eq(
      gv_trk_reg_commit(r, &a2, T0_MS + 20 * MIN + HOUR, T0_MS + 20 * MIN), 0);
  assert_ok(r);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR, NULL, NULL), 0);
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, names, 1, 4, out), 0);
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, names + 1, 1, 4, out), 1);
  ck_assert_uint_eq(gv_trk_entry_addr(out[0])->port, 2000);
  ck_assert_int_eq(gv_trk_entry_registered(out[0]), T0_MS);
  ck_assert_uint_eq(
      gv_trk_reg_expire(r, T0_MS + 20 * MIN + HOUR - 1, NULL, NULL), 0);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + 20 * MIN + HOUR, NULL, NULL),
                    1);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_renewal_pending_is_not_expired) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec a;

  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  list_at(r, &a, T0_MS);
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS + HOUR - 1000, NULL), 1);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR + 5000, NULL, NULL), 0);
  ck_assert_ptr_nonnull(gv_trk_reg_find(r, a.id));
  assert_ok(r);
  /* The store failed: the old listing stays, and expires as it would. */
  ck_assert_int_eq(gv_trk_reg_abort(r, a.id, 1), 0);
  assert_ok(r);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR + 5000, NULL, NULL), 1);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_renewal_failed_dialback_delists) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec a;
  gv_trk_reg_stats st;

  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  list_at(r, &a, T0_MS);
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS + 20 * MIN, NULL), 1);
  ck_assert_int_eq(gv_trk_reg_abort(r, a.id, 0), 1);
  ck_assert_ptr_null(gv_trk_reg_find(r, a.id));
  gv_trk_reg_get_stats(r, &st);
  ck_assert_uint_eq(st.listed + st.verifying + st.ips + st.repos, 0);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_per_ip_limit) {
  gv_trk_reg *r = mkreg(3, 64);
  gv_trk_rec rec;
  gv_why why = {""};

  for (unsigned i = 0; i < 3; i++) {
    mkrec(&rec, i, "203.0.113.5", (uint16_t)(1000 + i), "");
    ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  }
  mkrec(&rec, 3, "203.0.113.5", 1003, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, &why), GV_ELIMIT);
  ck_assert_ptr_nonnull(strstr(why.text, "3 ids"));
  /* Another address is not affected. */
  mkrec(&rec, 4, "203.0.113.6", 1000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  /* A failed verification frees its slot. */
  mkrec(&rec, 0, "203.0.113.5", 1000, "");
  ck_assert_int_eq(gv_trk_reg_abort(r, rec.id, 0), 0);
  mkrec(&rec, 3, "203.0.113.5", 1003, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  assert_ok(r);

  /* IPv6 counts by /64. */
  for (unsigned i = 0; i < 3; i++) {
    char ip[40];
    snprintf(ip, sizeof(ip), "2001:db8::%u", i + 1);
    mkrec(&rec, 100 + i, ip, 1000, "");
    ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  }
  mkrec(&rec, 103, "2001:db8::ffff:1", 1000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), GV_ELIMIT);
  mkrec(&rec, 103, "2001:db8:0:1::1", 1000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_renewal_from_new_address) {
  gv_trk_reg *r = mkreg(1, 64);
  gv_trk_rec a, b, a3, c;

  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  mkrec(&b, 2, "10.0.0.2", 1000, "x");
  list_at(r, &a, T0_MS);
  list_at(r, &b, T0_MS);
  /* 10.0.0.2 is full: a cannot move there. */
  mkrec(&a3, 1, "10.0.0.2", 1000, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a3, T0_MS + MIN, NULL), GV_ELIMIT);
  assert_ok(r);
  /* It can move to 10.0.0.3; until it settles, both addresses count. */
  mkrec(&a3, 1, "10.0.0.3", 1000, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a3, T0_MS + MIN, NULL), 1);
  mkrec(&c, 3, "10.0.0.1", 1000, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &c, T0_MS + MIN, NULL), GV_ELIMIT);
  assert_ok(r);
  /* Committing with another address than begun is refused. */
  ck_assert_int_eq(gv_trk_reg_commit(r, &a, T0_MS + HOUR, T0_MS + MIN),
                   GV_ESTATE);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a3, T0_MS + MIN + HOUR, T0_MS + MIN),
                   0);
  assert_ok(r);
  ck_assert_str_eq(gv_trk_entry_addr(gv_trk_reg_find(r, a.id))->ip[3] == 3
                       ? "moved"
                       : "stayed",
                   "moved");
  ck_assert_int_eq(gv_trk_reg_begin(r, &c, T0_MS + MIN, NULL), 0);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_busy_overload_unregister) {
  gv_trk_reg *r = mkreg(8, 2);
  gv_trk_rec a, b, c;

  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  mkrec(&b, 2, "10.0.0.1", 1001, "x");
  mkrec(&c, 3, "10.0.0.1", 1002, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), GV_EBUSY);
  ck_assert_int_eq(gv_trk_reg_begin(r, &b, T0_MS, NULL), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &c, T0_MS, NULL), -EAGAIN);
  ck_assert_int_eq(gv_trk_reg_unregister(r, a.id), GV_EBUSY);
  ck_assert_int_eq(gv_trk_reg_unregister(r, c.id), -ENOENT);
  ck_assert_int_eq(gv_trk_reg_abort(r, c.id, 0), GV_ESTATE);
  ck_assert_int_eq(gv_trk_reg_commit(r, &c, T0_MS + HOUR, T0_MS), GV_ESTATE);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a, T0_MS + HOUR, T0_MS), 0);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a, T0_MS + HOUR, T0_MS), GV_ESTATE);
  ck_assert_int_eq(gv_trk_reg_abort(r, a.id, 0), GV_ESTATE);
  ck_assert_int_eq(gv_trk_reg_unregister(r, a.id), 0);
  ck_assert_ptr_null(gv_trk_reg_find(r, a.id));
  ck_assert_int_eq(gv_trk_reg_unregister(r, a.id), -ENOENT);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_load) {
  gv_trk_reg *r = mkreg(1, 4);
  gv_trk_rec rec;
  int64_t exp[5] = {T0_MS + 50 * MIN, T0_MS + 10 * MIN, T0_MS + 30 * MIN,
                    T0_MS + 10 * MIN, T0_MS + 5 * MIN};

  mkrec(&rec, 99, "10.0.0.1", 1000, "x");
  ck_assert_int_eq(gv_trk_reg_load(r, &rec, T0_MS - HOUR, T0_MS, T0_MS),
                   GV_ESTALE);
  /* Out of order and over the per-address limit: all loaded. */
  for (unsigned i = 0; i < 5; i++) {
    mkrec(&rec, i, "10.0.0.1", (uint16_t)(1000 + i), "x,y");
    ck_assert_int_eq(gv_trk_reg_load(r, &rec, T0_MS - MIN, exp[i], T0_MS), 0);
    assert_ok(r);
  }
  ck_assert_int_eq(gv_trk_reg_load(r, &rec, T0_MS, T0_MS + HOUR, T0_MS),
                   -EEXIST);
  ck_assert_int_eq(gv_trk_reg_next_expiry(r), T0_MS + 5 * MIN);
  mkrec(&rec, 50, "10.0.0.1", 2000, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), GV_ELIMIT);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + 10 * MIN, NULL, NULL), 3);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + HOUR, NULL, NULL), 2);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_sample) {
  gv_trk_reg *r = mkreg(64, 64);
  gv_trk_rec rec;
  gv_trk_rng rng;
  const gv_trk_entry *out[GV_TRK_MAX_RESULTS];
  int hist[10] = {0};
  uint8_t ex[GV_ID_BYTES];

  rng_for(&rng, 4);
  for (unsigned i = 0; i < 10; i++) {
    mkrec(&rec, i, "10.0.0.1", (uint16_t)(1000 + i), "x");
    list_at(r, &rec, T0_MS);
  }
  memcpy(ex, rec.id, GV_ID_BYTES); /* id 9 */
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 32, NULL, out), 10);
  for (int i = 0; i < 10; i++)
    for (int j = 0; j < i; j++)
      ck_assert_ptr_ne(out[i], out[j]);
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 3, NULL, out), 3);
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 32, ex, out), 9);
  for (int t = 0; t < 2000; t++) {
    size_t n = gv_trk_reg_sample(r, &rng, 9, ex, out);
    ck_assert_uint_eq(n, 9);
    for (size_t i = 0; i < n; i++)
      ck_assert_mem_ne(gv_trk_entry_id(out[i]), ex, GV_ID_BYTES);
  }
  ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 0, NULL, out), 0);
  /* Uniform: each of 10 entries about 1/10 of single draws. */
  for (int t = 0; t < 20000; t++) {
    unsigned n;
    ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 1, NULL, out), 1);
    memcpy(&n, gv_trk_entry_id(out[0]), sizeof(n));
    hist[n]++;
  }
  for (int i = 0; i < 10; i++)
    ck_assert_msg(hist[i] > 1700 && hist[i] < 2300, "entry %d: %d", i, hist[i]);
  gv_trk_reg_free(r);
}
END_TEST

/* The generation moves with every change a read could show, and only
 * then (the HTTP front shares a listing answer while it stays put). */
START_TEST(test_reg_generation) {
  gv_trk_reg *r = mkreg(8, 16);
  gv_trk_rec a, b, a2;
  gv_trk_rng rng;
  const gv_trk_entry *out[4];
  uint64_t g;

  rng_for(&rng, 3);
  mkrec(&a, 1, "10.0.0.1", 1000, "x");
  mkrec(&b, 2, "10.0.0.2", 1000, "x");
  g = gv_trk_reg_generation(r);
  /* Verifying is not listed: no change. */
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), 0);
  ck_assert_uint_eq(gv_trk_reg_generation(r), g);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a, T0_MS + HOUR, T0_MS), 0);
  ck_assert_uint_ne(gv_trk_reg_generation(r), g);
  g = gv_trk_reg_generation(r);
  /* Reads and a failed verification of a newcomer change nothing. */
  gv_trk_reg_sample(r, &rng, 4, NULL, out);
  ck_assert_int_eq(gv_trk_reg_begin(r, &b, T0_MS, NULL), 0);
  ck_assert_int_eq(gv_trk_reg_abort(r, b.id, 0), 0);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + 1, NULL, NULL), 0);
  ck_assert_uint_eq(gv_trk_reg_generation(r), g);
  /* A renewal changes the entry's JSON. */
  mkrec(&a2, 1, "10.0.0.1", 2000, "x");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a2, T0_MS + MIN, NULL), 1);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a2, T0_MS + MIN + HOUR, T0_MS + MIN),
                   0);
  ck_assert_uint_ne(gv_trk_reg_generation(r), g);
  g = gv_trk_reg_generation(r);
  ck_assert_int_eq(gv_trk_reg_unregister(r, a.id), 0);
  ck_assert_uint_ne(gv_trk_reg_generation(r), g);
  g = gv_trk_reg_generation(r);
  list_at(r, &b, T0_MS + MIN);
  ck_assert_uint_ne(gv_trk_reg_generation(r), g);
  g = gv_trk_reg_generation(r);
  ck_assert_uint_eq(gv_trk_reg_expire(r, T0_MS + MIN + HOUR, NULL, NULL), 1);
  ck_assert_uint_ne(gv_trk_reg_generation(r), g);
  gv_trk_reg_free(r);
}
END_TEST

START_TEST(test_reg_discover) {
  gv_trk_reg *r = mkreg(64, 64);
  gv_trk_rec rec;
  gv_trk_rng rng;
  const gv_trk_entry *out[GV_TRK_MAX_RESULTS];
  const char *repos[6] = {"a", "a,b", "b", "c", "a,b,c", ""};
  char q[4][GV_REPO_MAX + 1] = {"a", "b", "a", "zz"};

  rng_for(&rng, 5);
  for (unsigned i = 0; i < 6; i++) {
    mkrec(&rec, i, "10.0.0.1", (uint16_t)(1000 + i), repos[i]);
    list_at(r, &rec, T0_MS);
  }
  /* "a": entries 0, 1, 4. */
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, q, 1, 32, out), 3);
  /* "a" or "b" (and "a" again): 0, 1, 2, 4, each once. */
  for (int t = 0; t < 200; t++) {
    size_t n = gv_trk_reg_discover(r, &rng, q, 3, 32, out);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
      unsigned id;
      memcpy(&id, gv_trk_entry_id(out[i]), sizeof(id));
      ck_assert(id == 0 || id == 1 || id == 2 || id == 4);
      for (size_t j = 0; j < i; j++)
        ck_assert_ptr_ne(out[i], out[j]);
    }
    /* Bounded: at most 2, distinct, even though pairs repeat entries. */
    n = gv_trk_reg_discover(r, &rng, q, 3, 2, out);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_ne(out[0], out[1]);
  }
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, q + 3, 1, 32, out), 0);
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, q, 1, 0, out), 0);
  /* Unregistering takes an entry out of every index. */
  mkrec(&rec, 4, "10.0.0.1", 1004, "a,b,c");
  ck_assert_int_eq(gv_trk_reg_unregister(r, rec.id), 0);
  ck_assert_uint_eq(gv_trk_reg_discover(r, &rng, q, 1, 32, out), 2);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

/* A take_back hook for the tests: refuses the ids listed in no[] (in
 * flight), takes every other one back and remembers it. */
typedef struct take_log {
  unsigned no[16];
  size_t n_no;
  unsigned took[16];
  size_t n_took, asked;
} take_log;

static int take_back_hook(void *ctx, const uint8_t id[GV_ID_BYTES],
                          const gv_addr *addr) {
  take_log *l = ctx;
  unsigned n;

  (void)addr;
  memcpy(&n, id, sizeof(n));
  l->asked++;
  for (size_t i = 0; i < l->n_no; i++)
    if (l->no[i] == n)
      return 0;
  ck_assert_uint_lt(l->n_took, 16);
  l->took[l->n_took++] = n;
  return 1;
}

/* The global pool (issue 12, item 3): 8 addresses with 2 each fill a
 * pool of 16; a newcomer from a ninth address is taken in,
 * and the newest queued verification of an address at the heaviest count
 * goes; a newcomer at the heaviest count is refused; so is anyone when
 * every verification at the heaviest count is in flight. */
START_TEST(test_reg_pool_fair) {
  take_log log = {{0}, 0, {0}, 0, 0};
  gv_trk_reg_cfg cfg = {8, 16, GV_TRK_TTL_MS, 3, take_back_hook, &log};
  gv_trk_reg *r;
  gv_trk_rec rec;
  gv_addr a;
  gv_why why = {""};
  char ip[32];
  unsigned taken;

  ck_assert_int_eq(gv_trk_reg_new(&r, &cfg, KEY16), 0);
  for (unsigned i = 0; i < 16; i++) {
    snprintf(ip, sizeof(ip), "10.9.0.%u", 1 + i / 2);
    mkrec(&rec, 100 + i, ip, 7000, "");
    ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  }
  assert_ok(r);
  /* A genuine node from a fresh address: accepted, one black hole gone. */
  mkrec(&rec, 1, "10.9.1.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, &why), 0);
  assert_ok(r);
  ck_assert_uint_eq(log.n_took, 1);
  taken = log.took[0];
  /* The newest of its address's two: an odd number (100 + 2k + 1). */
  ck_assert_uint_eq((taken - 100) % 2, 1);
  mkrec(&rec, taken, "10.9.0.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_verifying_addr(r, rec.id, &a), GV_ESTATE);
  ck_assert_int_eq(
      gv_trk_reg_verifying_addr(
          r, (mkrec(&rec, taken - 1, "10.9.0.1", 7000, ""), rec.id), &a),
      0);
  ck_assert_uint_eq(gv_trk_reg_taken_back(r), 1);
  {
    gv_trk_reg_stats st;
    gv_trk_reg_get_stats(r, &st);
    ck_assert_uint_eq(st.verifying, 16);
  }
  /* A newcomer from an address at the heaviest count (2, under its own
   * cap of 3): 503, nothing taken. */
  snprintf(ip, sizeof(ip), "10.9.0.%u", taken == 115 ? 1u : 8u);
  mkrec(&rec, 3, ip, 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, &why), -EAGAIN);
  ck_assert_uint_eq(log.n_took, 1);
  /* The address that lost one (now at 1), and the fresh one again: in. */
  snprintf(ip, sizeof(ip), "10.9.0.%u", 1 + (taken - 100) / 2);
  mkrec(&rec, 4, ip, 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  mkrec(&rec, 2, "10.9.1.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  ck_assert_uint_eq(log.n_took, 3);
  assert_ok(r);
  gv_trk_reg_free(r);

  /* Every verification in flight: nothing to take back, 503 as before.
   * The registry learns it lazily: each is asked once, and the hook's
   * refusal takes it off its queue for good. */
  memset(&log, 0, sizeof(log));
  ck_assert_int_eq(gv_trk_reg_new(&r, &cfg, KEY16), 0);
  for (unsigned i = 0; i < 16; i++) {
    snprintf(ip, sizeof(ip), "10.9.0.%u", 1 + i / 2);
    mkrec(&rec, 100 + i, ip, 7000, "");
    ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
    log.no[log.n_no++] = 100 + i;
  }
  mkrec(&rec, 1, "10.9.1.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, &why), -EAGAIN);
  ck_assert_uint_eq(log.asked, 16);
  assert_ok(r);
  /* Now known to be in flight: not asked again. */
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), -EAGAIN);
  ck_assert_uint_eq(log.asked, 16);
  ck_assert_uint_eq(gv_trk_reg_taken_back(r), 0);
  /* One settles: room again, without taking anything back. */
  mkrec(&rec, 100, "10.9.0.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_abort(r, rec.id, 0), 0);
  mkrec(&rec, 1, "10.9.1.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, T0_MS, NULL), 0);
  ck_assert_uint_eq(log.n_took, 0);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

/* Random operations against a model of every id's state. */
enum { M_ABSENT, M_VERIFYING, M_LISTED, M_RENEWING };

START_TEST(test_reg_model) {
  enum { IDS = 40, IPS = 5, K = 3, MAXV = 8 };
  static const char *ips[IPS] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
                                 "2001:db8::1", "2001:db8::2"};
  static const char *repos[4] = {"", "a", "a,b", "c"};
  gv_trk_reg *r = mkreg(K, MAXV);
  int state[IDS] = {0}, ip_of[IDS], pend_ip[IDS], verifying = 0;
  int begun[IDS] = {0}; /* the step of the begin pending, for "newest" */
  int64_t expires[IDS], now = T0_MS;
  gv_trk_rng rng;
  gv_trk_rec rec;
  const gv_trk_entry *out[GV_TRK_MAX_RESULTS];

  rng_for(&rng, 6);
  for (int step = 0; step < 4000; step++) {
    int id = (int)gv_trk_rng_uniform(&rng, IDS);
    int ip = (int)gv_trk_rng_uniform(&rng, IPS), rc;
    int group = ip >= 3 ? 3 : ip; /* the two IPv6 addresses share a /64 */
    int held = 0, want;

    for (int i = 0; i < IDS; i++) {
      int g = (ip_of[i] >= 3 ? 3 : ip_of[i]);
      int pg = (pend_ip[i] >= 3 ? 3 : pend_ip[i]);
      if (state[i] != M_ABSENT && g == group)
        held++;
      if (state[i] == M_RENEWING && pg != g && pg == group)
        held++;
    }
    switch (gv_trk_rng_uniform(&rng, 6)) {
    case 0:
    case 1: /* begin */
    {
      /* Verifications charged to each group; a full pool takes the newest
       * of a heaviest group's, if heavier than this one's. */
      int per[4] = {0}, heaviest = 0, taken = -1;
      for (int i = 0; i < IDS; i++)
        if (state[i] == M_VERIFYING || state[i] == M_RENEWING)
          per[pend_ip[i] >= 3 ? 3 : pend_ip[i]]++;
      for (int g = 0; g < 4; g++)
        heaviest = per[g] > heaviest ? per[g] : heaviest;
      mkrec(&rec, (unsigned)id, ips[ip], (uint16_t)(1000 + id), repos[id % 4]);
      rc = gv_trk_reg_begin(r, &rec, now, NULL);
      if (state[id] == M_VERIFYING || state[id] == M_RENEWING)
        want = GV_EBUSY;
      else if ((state[id] == M_ABSENT ||
                (ip_of[id] >= 3 ? 3 : ip_of[id]) != group) &&
               held >= K)
        want = GV_ELIMIT;
      else if (verifying >= MAXV && heaviest <= per[group])
        want = -EAGAIN;
      else
        want = state[id] == M_LISTED;
      ck_assert_int_eq(rc, want);
      if (rc >= 0 && verifying >= MAXV) {
        gv_addr a;
        for (int i = 0; i < IDS; i++)
          if (i != id && (state[i] == M_VERIFYING || state[i] == M_RENEWING) &&
              gv_trk_reg_verifying_addr(
                  r, (mkrec(&rec, (unsigned)i, ips[0], 1, ""), rec.id), &a) ==
                  GV_ESTATE) {
            ck_assert_int_eq(taken, -1);
            taken = i;
          }
        ck_assert_int_ge(taken, 0);
        int tg = pend_ip[taken] >= 3 ? 3 : pend_ip[taken];
        ck_assert_int_eq(per[tg], heaviest);
        for (int i = 0; i < IDS; i++)
          if ((state[i] == M_VERIFYING || state[i] == M_RENEWING) &&
              (pend_ip[i] >= 3 ? 3 : pend_ip[i]) == tg)
            ck_assert_int_le(begun[i], begun[taken]);
        state[taken] = state[taken] == M_RENEWING ? M_LISTED : M_ABSENT;
        verifying--;
      }
      if (rc >= 0) {
        begun[id] = step;
        if (state[id] == M_ABSENT)
          ip_of[id] = ip;
        pend_ip[id] = ip;
        state[id] = rc == 0 ? M_VERIFYING : M_RENEWING;
        verifying++;
      }
      break;
    }
    case 2: /* commit */
      if (state[id] != M_VERIFYING && state[id] != M_RENEWING)
        break;
      mkrec(&rec, (unsigned)id, ips[pend_ip[id]], (uint16_t)(1000 + id),
            repos[(id + step) % 4]);
      ck_assert_int_eq(gv_trk_reg_commit(r, &rec, now + HOUR, now), 0);
      ip_of[id] = pend_ip[id];
      state[id] = M_LISTED;
      expires[id] = now + HOUR;
      verifying--;
      break;
    case 3: /* abort */ {
      int keep = (int)gv_trk_rng_uniform(&rng, 2);
      rc = gv_trk_reg_abort(
          r, (mkrec(&rec, (unsigned)id, ips[0], 1, ""), rec.id), keep);
      if (state[id] != M_VERIFYING && state[id] != M_RENEWING) {
        ck_assert_int_eq(rc, GV_ESTATE);
        break;
      }
      ck_assert_int_eq(rc, state[id] == M_RENEWING && !keep);
      state[id] = state[id] == M_RENEWING && keep ? M_LISTED : M_ABSENT;
      verifying--;
      break;
    }
    case 4: /* unregister */
      mkrec(&rec, (unsigned)id, ips[0], 1, "");
      rc = gv_trk_reg_unregister(r, rec.id);
      ck_assert_int_eq(rc, state[id] == M_ABSENT   ? -ENOENT
                           : state[id] == M_LISTED ? 0
                                                   : GV_EBUSY);
      if (rc == 0)
        state[id] = M_ABSENT;
      break;
    case 5: /* time passes */ {
      size_t n = 0;
      now += (int64_t)gv_trk_rng_uniform(&rng, 20 * 60) * 1000;
      for (int i = 0; i < IDS; i++)
        if (state[i] == M_LISTED && expires[i] <= now) {
          state[i] = M_ABSENT;
          n++;
        }
      ck_assert_uint_eq(gv_trk_reg_expire(r, now, NULL, NULL), n);
      break;
    }
    }
    assert_ok(r);
    {
      size_t visible = 0;
      for (int i = 0; i < IDS; i++) {
        mkrec(&rec, (unsigned)i, ips[0], 1, "");
        int vis = state[i] == M_LISTED || state[i] == M_RENEWING;
        visible += (size_t)vis;
        ck_assert_int_eq(gv_trk_reg_find(r, rec.id) != NULL, vis);
      }
      ck_assert_uint_eq(gv_trk_reg_sample(r, &rng, 256, NULL, out), visible);
    }
  }
  gv_trk_reg_free(r);
}
END_TEST

/* At most max_verifying_per_ip verifications charged to one address at
 * once (-EBUSY past it); another address is not affected, and a settled
 * verification frees its place. */
START_TEST(test_reg_verifying_per_ip) {
  gv_trk_reg_cfg cfg = {8, 1024, GV_TRK_TTL_MS, 2, NULL, NULL};
  gv_trk_reg *r;
  gv_trk_rec a, b, c, d;
  gv_why why = {""};

  ck_assert_int_eq(gv_trk_reg_new(&r, &cfg, KEY16), 0);
  mkrec(&a, 1, "10.0.0.1", 7000, "");
  mkrec(&b, 2, "10.0.0.1", 7001, "");
  mkrec(&c, 3, "10.0.0.1", 7002, "");
  mkrec(&d, 4, "10.0.0.2", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &b, T0_MS, NULL), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &c, T0_MS, &why), -EBUSY);
  ck_assert_ptr_nonnull(strstr(why.text, "being verified"));
  ck_assert_int_eq(gv_trk_reg_begin(r, &d, T0_MS, NULL), 0);
  assert_ok(r);
  ck_assert_int_eq(gv_trk_reg_commit(r, &a, T0_MS + HOUR, T0_MS), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &c, T0_MS, NULL), 0);
  assert_ok(r);
  /* A renewal is a verification too. */
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), -EBUSY);
  ck_assert_int_eq(gv_trk_reg_abort(r, b.id, 0), 0);
  ck_assert_int_eq(gv_trk_reg_begin(r, &a, T0_MS, NULL), 1);
  assert_ok(r);
  ck_assert_int_eq(gv_trk_reg_abort(r, a.id, 1), 0);
  ck_assert_int_eq(gv_trk_reg_abort(r, c.id, 0), 0);
  ck_assert_int_eq(gv_trk_reg_abort(r, d.id, 0), 0);
  assert_ok(r);
  gv_trk_reg_free(r);
}
END_TEST

/* ---- replay ---- */

/* The replay cache's key for an address. */
static void src_of(gv_trk_ipkey *k, const char *ip) {
  gv_addr a;
  char text[64];

  snprintf(text, sizeof(text), strchr(ip, ':') ? "[%s]:1" : "%s:1", ip);
  ck_assert_int_eq(gv_addr_parse(&a, text, strlen(text)), 0);
  gv_trk_ipkey_of(k, &a);
}

/* nonce number n, for tests that need many. */
static void nonce_of(uint8_t nonce[GV_TRK_NONCE_BYTES], unsigned n) {
  memset(nonce, 0x55, GV_TRK_NONCE_BYTES);
  memcpy(nonce, &n, sizeof(n));
}

START_TEST(test_replay_window) {
  gv_trk_replay *rp;
  uint8_t id[GV_ID_BYTES] = {1}, nonce[GV_TRK_NONCE_BYTES] = {0};
  int64_t now = T0_MS + MIN;
  gv_why why = {""};
  gv_trk_ipkey src;

  src_of(&src, "10.0.0.1");
  ck_assert_int_eq(gv_trk_replay_new(&rp, 1024, T0_MS, KEY16), 0);
  /* Inside the window but signed before the tracker started. */
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, id, nonce, T0_MS - 1, T0_MS + 5000, &why),
      GV_ESTALE);
  ck_assert_ptr_nonnull(strstr(why.text, "before this tracker started"));
  nonce[0] = 1;
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, nonce, now, now, NULL), 0);
  nonce[0] = 2;
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, id, nonce, now + GV_TRK_SKEW_MS, now, NULL),
      0);
  nonce[0] = 3;
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, nonce,
                                       now + GV_TRK_SKEW_MS + 1, now, &why),
                   GV_EFUTURE);
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, id, nonce, now - GV_TRK_SKEW_MS, now, NULL),
      0);
  nonce[0] = 4;
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, nonce,
                                       now - GV_TRK_SKEW_MS - 1, now, NULL),
                   GV_ESTALE);
  gv_trk_replay_free(rp);
}
END_TEST

START_TEST(test_replay_nonce) {
  gv_trk_replay *rp;
  uint8_t a[GV_ID_BYTES] = {1}, b[GV_ID_BYTES] = {2};
  uint8_t n1[GV_TRK_NONCE_BYTES] = {9};
  int64_t now = T0_MS;
  gv_trk_ipkey src;

  src_of(&src, "10.0.0.1");
  ck_assert_int_eq(gv_trk_replay_new(&rp, 3, T0_MS, KEY16), 0);
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, a, n1, now, now, NULL), 0);
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, a, n1, now, now + 1000, NULL),
                   GV_EDUP);
  /* The same nonce from another id is another pair. */
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, b, n1, now, now + 1000, NULL),
                   0);
  n1[1] = 1;
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, a, n1, now, now + 1000, NULL),
                   0);
  ck_assert_uint_eq(gv_trk_replay_count(rp), 3);
  /* Full, and this source is the only one: it is refused rather than
   * anything forgotten. */
  n1[1] = 2;
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, a, n1, now, now + 1000, NULL),
                   -EAGAIN);
  /* Remembered for as long as its ts can stay in the window: the replay
   * at ts + skew is a replay, a moment later it is stale. */
  n1[1] = 0;
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now, now + GV_TRK_SKEW_MS, NULL),
      GV_EDUP);
  ck_assert_uint_eq(gv_trk_replay_count(rp), 3);
  /* Then forgotten, at once: the pairs are kept by ts, not by arrival. */
  ck_assert_uint_eq(gv_trk_replay_prune(rp, now + GV_TRK_SKEW_MS + 1), 3);
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now, now + GV_TRK_SKEW_MS + 1, NULL),
      GV_ESTALE);
  /* An old ts, accepted late, ages out first. */
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now + 40000, now + 41000, NULL), 0);
  n1[1] = 1;
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now + 12000, now + 41000, NULL), 0);
  ck_assert_uint_eq(gv_trk_replay_prune(rp, now + 42001), 1);
  ck_assert_uint_eq(gv_trk_replay_count(rp), 1);
  n1[1] = 0;
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now + 40000, now + 42001, NULL),
      GV_EDUP);
  ck_assert_uint_eq(gv_trk_replay_prune(rp, now + 70000), 0);
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &src, a, n1, now + 70001, now + 70001, NULL), 0);
  gv_trk_replay_free(rp);
}
END_TEST

/* Peek applies the rules and records nothing: a request refused after
 * its peek (404, 403, ...) costs no room. */
START_TEST(test_replay_peek_records_nothing) {
  gv_trk_replay *rp;
  uint8_t id[GV_ID_BYTES] = {1}, nonce[GV_TRK_NONCE_BYTES] = {3};
  gv_trk_ipkey src;
  int64_t now = T0_MS;

  src_of(&src, "10.0.0.1");
  ck_assert_int_eq(gv_trk_replay_new(&rp, 2, T0_MS, KEY16), 0);
  for (unsigned i = 0; i < 1000; i++) {
    nonce_of(nonce, i);
    ck_assert_int_eq(gv_trk_replay_peek(rp, id, nonce, now, now, NULL), 0);
  }
  ck_assert_uint_eq(gv_trk_replay_count(rp), 0);
  ck_assert_uint_eq(gv_trk_replay_count_of(rp, &src), 0);
  /* Peek still refuses what the window refuses. */
  ck_assert_int_eq(
      gv_trk_replay_peek(rp, id, nonce, now + GV_TRK_SKEW_MS + 1, now, NULL),
      GV_EFUTURE);
  /* Once recorded, a peek of the same pair is a replay; a second record of
   * it (two identical requests racing past their peeks) is refused. */
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, nonce, now, now, NULL), 0);
  ck_assert_int_eq(gv_trk_replay_peek(rp, id, nonce, now, now, NULL), GV_EDUP);
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, nonce, now, now, NULL),
                   GV_EDUP);
  ck_assert_uint_eq(gv_trk_replay_count(rp), 1);
  gv_trk_replay_free(rp);
}
END_TEST

/* A flood from one address fills the cache; another address still gets
 * in, at the flooder's expense (its oldest pair goes first), and the
 * flooder, now the heaviest, is refused. */
START_TEST(test_replay_eviction) {
  gv_trk_replay *rp;
  uint8_t id[GV_ID_BYTES] = {1}, good[GV_ID_BYTES] = {2};
  uint8_t nonce[GV_TRK_NONCE_BYTES];
  gv_trk_ipkey bad, ok6, ok6b;
  int64_t now = T0_MS;
  gv_why why = {""};

  src_of(&bad, "10.0.0.66");
  src_of(&ok6, "2001:db8::1");
  src_of(&ok6b, "2001:db8::2"); /* the same /64 */
  ck_assert_int_eq(gv_trk_replay_new(&rp, 100, T0_MS, KEY16), 0);
  for (unsigned i = 0; i < 100; i++) {
    nonce_of(nonce, i);
    ck_assert_int_eq(
        gv_trk_replay_check(rp, &bad, id, nonce, now, now + i, NULL), 0);
  }
  ck_assert_uint_eq(gv_trk_replay_count(rp), 100);
  nonce_of(nonce, 100);
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &bad, id, nonce, now, now + 100, &why), -EAGAIN);
  ck_assert_ptr_nonnull(strstr(why.text, "retry later"));
  nonce_of(nonce, 7);
  ck_assert_int_eq(
      gv_trk_replay_check(rp, &ok6, good, nonce, now, now + 100, NULL), 0);
  ck_assert_uint_eq(gv_trk_replay_evictions(rp), 1);
  ck_assert_uint_eq(gv_trk_replay_count(rp), 100);
  ck_assert_uint_eq(gv_trk_replay_count_of(rp, &bad), 99);
  ck_assert_uint_eq(gv_trk_replay_count_of(rp, &ok6b), 1);
  /* The flooder's oldest pair was the one forgotten, yet it is still a
   * replay (its id's floor), as are its newer ones and the good one; the
   * flooder's id signing anew is not. */
  nonce_of(nonce, 0);
  ck_assert_int_eq(gv_trk_replay_peek(rp, id, nonce, now, now + 100, &why),
                   GV_EDUP);
  ck_assert_ptr_nonnull(strstr(why.text, "forgotten to make room"));
  ck_assert_int_eq(gv_trk_replay_peek(rp, id, nonce, now + 1, now + 100, NULL),
                   0);
  nonce_of(nonce, 1);
  ck_assert_int_eq(gv_trk_replay_peek(rp, id, nonce, now, now + 100, NULL),
                   GV_EDUP);
  nonce_of(nonce, 7);
  ck_assert_int_eq(gv_trk_replay_peek(rp, good, nonce, now, now + 100, NULL),
                   GV_EDUP);
  /* Expiry frees sources as well as pairs. */
  ck_assert_uint_eq(gv_trk_replay_prune(rp, now + GV_TRK_SKEW_MS + 1), 100);
  ck_assert_uint_eq(gv_trk_replay_count_of(rp, &bad), 0);
  ck_assert_uint_eq(gv_trk_replay_count_of(rp, &ok6), 0);
  gv_trk_replay_free(rp);
}
END_TEST

/* Many flooding addresses share a full cache; a newcomer takes room from
 * the heaviest until it is as heavy as they are: its share, cap / sources,
 * is never refused, and no source ends up heavier than the rest by more
 * than one. Memory stays at cap pairs. */
START_TEST(test_replay_share) {
  enum { CAP = 120, FLOODERS = 30 };
  gv_trk_replay *rp;
  uint8_t id[GV_ID_BYTES] = {1};
  uint8_t nonce[GV_TRK_NONCE_BYTES];
  gv_trk_ipkey src, me;
  char ip[32];
  int64_t now = T0_MS;
  unsigned n = 0, mine = 0;
  int rc;

  ck_assert_int_eq(gv_trk_replay_new(&rp, CAP, T0_MS, KEY16), 0);
  /* 30 addresses, round robin, until every one of them is refused. */
  for (unsigned round = 0; round < 10; round++)
    for (unsigned a = 0; a < FLOODERS; a++) {
      snprintf(ip, sizeof(ip), "10.1.0.%u", a + 1);
      src_of(&src, ip);
      id[1] = (uint8_t)a; /* an id per address */
      nonce_of(nonce, n++);
      rc = gv_trk_replay_check(rp, &src, id, nonce, now, now, NULL);
      ck_assert(rc == 0 || rc == -EAGAIN);
      ck_assert_uint_le(gv_trk_replay_count(rp), CAP);
    }
  ck_assert_uint_eq(gv_trk_replay_count(rp), CAP);
  for (unsigned a = 0; a < FLOODERS; a++) {
    snprintf(ip, sizeof(ip), "10.1.0.%u", a + 1);
    src_of(&src, ip);
    ck_assert_uint_eq(gv_trk_replay_count_of(rp, &src), CAP / FLOODERS);
  }
  /* A newcomer: in until it holds what the heaviest holds. */
  src_of(&me, "192.0.2.1");
  id[1] = 0xff;
  for (unsigned i = 0; i < CAP; i++) {
    nonce_of(nonce, n++);
    if (gv_trk_replay_check(rp, &me, id, nonce, now, now, NULL) < 0)
      break;
    mine++;
  }
  ck_assert_uint_ge(mine, CAP / (FLOODERS + 1));
  ck_assert_uint_le(mine, CAP / FLOODERS);
  ck_assert_uint_eq(gv_trk_replay_count(rp), CAP);
  ck_assert_uint_eq(gv_trk_replay_evictions(rp), mine);
  gv_trk_replay_free(rp);
}
END_TEST

/* Every request in seen[0..n) is refused as a replay, from a fresh
 * address (a check that refuses records nothing). */
typedef struct seen_req {
  uint8_t id, nonce;
  int64_t ts;
} seen_req;

static void all_refused(gv_trk_replay *rp, const seen_req *seen, size_t n,
                        int64_t now) {
  gv_trk_ipkey f;

  src_of(&f, "10.9.9.9");
  for (size_t i = 0; i < n; i++) {
    uint8_t id[GV_ID_BYTES] = {seen[i].id};
    uint8_t nonce[GV_TRK_NONCE_BYTES] = {seen[i].nonce};
    ck_assert_int_eq(
        gv_trk_replay_check(rp, &f, id, nonce, seen[i].ts, now, NULL), GV_EDUP);
  }
}

/* Review of issue 12 (the driver /tmp/rp.c): with the cache full, a
 * newcomer evicts the heaviest source's oldest pair while its ts is still
 * in the window; a replay of that request, from any address, must still
 * be refused. The floors that remember evicted pairs are bounded by the
 * cap too: when none is free, the first to expire is folded into one
 * global floor, and no newcomer is refused. */
START_TEST(test_replay_evicted_not_replayable) {
  gv_trk_replay *rp;
  uint8_t id7[GV_ID_BYTES] = {7}, id9[GV_ID_BYTES] = {9};
  uint8_t n1[GV_TRK_NONCE_BYTES] = {1}, n2[GV_TRK_NONCE_BYTES] = {2},
          n3[GV_TRK_NONCE_BYTES] = {3}, n4[GV_TRK_NONCE_BYTES] = {4};
  seen_req seen[16];
  size_t n = 0;
  gv_trk_ipkey A, B, C, src;
  int64_t now = T0_MS + 1000;
  gv_why why = {""};
  char ip[32];

  src_of(&A, "10.0.0.1");
  src_of(&B, "10.0.0.2");
  src_of(&C, "10.0.0.3");
  ck_assert_int_eq(gv_trk_replay_new(&rp, 2, T0_MS, KEY16), 0);
  ck_assert_int_eq(gv_trk_replay_check(rp, &A, id7, n1, now, now, NULL), 0);
  seen[n++] = (seen_req){7, 1, now};
  ck_assert_int_eq(gv_trk_replay_check(rp, &A, id7, n2, now, now, NULL), 0);
  seen[n++] = (seen_req){7, 2, now};
  ck_assert_int_eq(gv_trk_replay_check(rp, &B, id7, n1, now, now + 1, NULL),
                   GV_EDUP);
  /* B is lighter than A: A's oldest pair (id7, n1) makes room. */
  ck_assert_int_eq(gv_trk_replay_check(rp, &B, id9, n3, now, now + 2, NULL), 0);
  seen[n++] = (seen_req){9, 3, now};
  ck_assert_uint_eq(gv_trk_replay_evictions(rp), 1);
  /* The replay of the evicted request, 3 ms later from a third address:
   * accepted before the floors. */
  ck_assert_int_eq(gv_trk_replay_check(rp, &C, id7, n1, now, now + 3, &why),
                   GV_EDUP);
  ck_assert_ptr_nonnull(strstr(why.text, "forgotten to make room"));
  /* id7 signing anew is served (its ts is above the floor). */
  ck_assert_int_eq(gv_trk_replay_check(rp, &C, id7, n4, now + 4, now + 4, NULL),
                   0);
  seen[n++] = (seen_req){7, 4, now + 4};
  ck_assert_uint_eq(gv_trk_replay_evictions(rp), 2);
  all_refused(rp, seen, n, now + 5);
  /* Newcomers with ids of their own, each evicting a pair: the two
   * floors fill, and the first to expire is folded into the global floor
   * each time; no newcomer is refused (issue 12, item 1), and nothing
   * accepted ever becomes replayable on the way. */
  for (unsigned i = 0; i < 6; i++) {
    uint8_t id[GV_ID_BYTES] = {(uint8_t)(20 + i)};
    snprintf(ip, sizeof(ip), "10.0.1.%u", i + 1);
    src_of(&src, ip);
    int64_t ts = now + 10 + i; /* each signs at its own now */
    ck_assert_int_eq(gv_trk_replay_check(rp, &src, id, n1, ts, ts, &why), 0);
    seen[n++] = (seen_req){(uint8_t)(20 + i), 1, ts};
    ck_assert_uint_eq(gv_trk_replay_count(rp), 2);
    ck_assert_uint_eq(gv_trk_replay_evictions(rp), 3 + i);
    all_refused(rp, seen, n, ts);
  }
  /* The global floor refuses any id's request signed at or before a
   * folded floor's ts; a genuine client signs at its now, above it. */
  src_of(&src, "10.0.3.1");
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, (uint8_t[GV_ID_BYTES]){30}, n1,
                                       now, now + 15, &why),
                   GV_EDUP);
  ck_assert_ptr_nonnull(strstr(why.text, "forgotten to make room"));
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, (uint8_t[GV_ID_BYTES]){30}, n1,
                                       now + 16, now + 16, NULL),
                   0);
  /* The floors live as long as their pairs would have, no longer: once
   * every ts so far is stale, id9's nonce n1 is taken again. */
  ck_assert_uint_eq(gv_trk_replay_prune(rp, now + 16 + GV_TRK_SKEW_MS + 1), 2);
  src_of(&src, "10.0.2.1");
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, id9, n1,
                                       now + 16 + GV_TRK_SKEW_MS + 1,
                                       now + 16 + GV_TRK_SKEW_MS + 1, NULL),
                   0);
  gv_trk_replay_free(rp);
}
END_TEST

/* A register the replay cache refuses takes no one's verification back
 * (issue 12, second review): a pool of 2 full of two genuine nodes, a
 * cache of 1 held by the attacker's source; four registers from that
 * source are refused (-EAGAIN) without begin (nothing taken back, the
 * nonce unrecorded); a lighter source's register takes one back and
 * records its nonce, so the same bytes sent again are a replay and take
 * nothing more. Before, begin ran first and each refusal cost a genuine
 * node its verification. */
START_TEST(test_replay_register_refusal_costs_nothing) {
  take_log log = {{0}, 0, {0}, 0, 0};
  gv_trk_reg_cfg cfg = {8, 2, GV_TRK_TTL_MS, 0, take_back_hook, &log};
  gv_trk_reg *r;
  gv_trk_replay *rp;
  gv_trk_rec rec;
  gv_trk_ipkey src;
  gv_addr a;
  gv_why why = {""}, nwhy = {""};
  uint8_t n0[GV_TRK_NONCE_BYTES] = {0}, n1[GV_TRK_NONCE_BYTES] = {1};
  int64_t now = T0_MS + 1000;
  int nrc;

  ck_assert_int_eq(gv_trk_reg_new(&r, &cfg, KEY16), 0);
  ck_assert_int_eq(gv_trk_replay_new(&rp, 1, T0_MS, KEY16), 0);
  mkrec(&rec, 10, "10.0.0.1", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, now, NULL), 0);
  mkrec(&rec, 11, "10.0.0.2", 7000, "");
  ck_assert_int_eq(gv_trk_reg_begin(r, &rec, now, NULL), 0);
  mkrec(&rec, 98, "10.9.9.9", 7000, "");
  gv_trk_ipkey_of(&src, &rec.addr);
  ck_assert_int_eq(gv_trk_replay_check(rp, &src, rec.id, n0, now, now, NULL),
                   0);
  for (unsigned i = 0; i < 4; i++) {
    mkrec(&rec, 99, "10.9.9.9", 7000, "");
    ck_assert_int_eq(
        gv_trk_replay_register(rp, r, &rec, n1, now, now, &nrc, &why, &nwhy),
        0);
    ck_assert_int_eq(nrc, -EAGAIN);
    ck_assert_ptr_nonnull(strstr(nwhy.text, "too many signed requests"));
    ck_assert_int_eq(gv_trk_reg_verifying_addr(r, rec.id, &a), GV_ESTATE);
  }
  ck_assert_uint_eq(log.asked, 0);
  ck_assert_uint_eq(gv_trk_reg_taken_back(r), 0);
  for (unsigned i = 0; i < 2; i++) {
    mkrec(&rec, 10 + i, i ? "10.0.0.2" : "10.0.0.1", 7000, "");
    ck_assert_int_eq(gv_trk_reg_verifying_addr(r, rec.id, &a), 0);
  }
  /* From a lighter source: admitted, begin takes one back (10.0.0.1 and
   * 10.0.0.2 hold one each, the newcomer none), the nonce is recorded
   * (evicting the attacker's pair); the same bytes again are a replay,
   * refused before begin: nothing more taken, the newcomer kept. */
  mkrec(&rec, 50, "10.0.1.1", 7000, "");
  ck_assert_int_eq(
      gv_trk_replay_register(rp, r, &rec, n1, now, now, &nrc, &why, &nwhy), 0);
  ck_assert_int_eq(nrc, 0);
  ck_assert_uint_eq(log.n_took, 1);
  ck_assert_uint_eq(gv_trk_replay_evictions(rp), 1);
  ck_assert_int_eq(
      gv_trk_replay_register(rp, r, &rec, n1, now, now + 1, &nrc, &why, &nwhy),
      0);
  ck_assert_int_eq(nrc, GV_EDUP);
  ck_assert_uint_eq(log.n_took, 1);
  ck_assert_int_eq(gv_trk_reg_verifying_addr(r, rec.id, &a), 0);
  assert_ok(r);
  gv_trk_replay_free(rp);
  gv_trk_reg_free(r);
}
END_TEST

/* ---- buckets ---- */

START_TEST(test_buckets) {
  gv_trk_buckets *b;
  gv_trk_ipkey k1, k2, k3;
  gv_addr a;
  int64_t retry = 0, now = T0_MS;

  gv_addr_parse(&a, "10.0.0.1:1", 10);
  gv_trk_ipkey_of(&k1, &a);
  gv_addr_parse(&a, "10.0.0.2:1", 10);
  gv_trk_ipkey_of(&k2, &a);
  gv_addr_parse(&a, "10.0.0.3:1", 10);
  gv_trk_ipkey_of(&k3, &a);
  ck_assert_int_eq(gv_trk_buckets_new(&b, 2, 4, 2, KEY16), 0);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(gv_trk_buckets_take(b, &k1, now, &retry), 0);
  ck_assert_int_eq(gv_trk_buckets_take(b, &k1, now, &retry), GV_EBUSY);
  ck_assert_int_eq(retry, 500);
  ck_assert_int_eq(gv_trk_buckets_take(b, &k1, now + 499, &retry), GV_EBUSY);
  ck_assert_int_eq(retry, 1);
  ck_assert_int_eq(gv_trk_buckets_take(b, &k1, now + 500, &retry), 0);
  ck_assert_int_eq(gv_trk_buckets_take(b, &k2, now + 500, &retry), 0);
  /* Capacity 2: a third client evicts the least recently used (k1). */
  ck_assert_int_eq(gv_trk_buckets_take(b, &k3, now + 500, &retry), 0);
  ck_assert_uint_eq(gv_trk_buckets_count(b), 2);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(gv_trk_buckets_take(b, &k1, now + 500, &retry), 0);
  /* Refilled buckets carry no information and are swept. */
  ck_assert_uint_eq(gv_trk_buckets_sweep(b, now + 600), 0);
  ck_assert_uint_eq(gv_trk_buckets_sweep(b, now + 10000), 2);
  ck_assert_uint_eq(gv_trk_buckets_count(b), 0);
  gv_trk_buckets_free(b);
}
END_TEST

/* ---- request parsing and signatures ---- */

static const char VEC_BODY[] =
    "{\"id\":\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5"
    "c\",\"port\":7411,\"repos\":[\"demo/hello\"],\"caps\":[\"relay\"],\"ts\":"
    "1767225600000,\"nonce\":\"000102030405060708090a0b0c0d0e0f\"}";
static const char VEC_SIG[] =
    "43e7bcdccde3e72b9149d53016fc981945e14854ad7a2e3587ddaca419e2b9c7f8165d4c0"
    "c08d4e59c52b51a9df72d49d90e9383e5b814441fe5cdcef35f2607";

START_TEST(test_req_vector) {
  gv_identity alice;
  gv_trk_signed s;
  gv_trk_rec rec;
  char sig[2 * GV_SIG_BYTES + 1];
  const uint8_t *body = (const uint8_t *)VEC_BODY;
  size_t len = strlen(VEC_BODY);
  uint8_t msg[GV_TRK_SIGNED_MAX];
  size_t mlen;

  tu_identity(&alice, 0x01);
  ck_assert_uint_eq(len, 187);
  ck_assert_int_eq(gv_trk_req_register(body, len, &s, &rec, NULL), 0);
  ck_assert_mem_eq(s.id, alice.pk, GV_ID_BYTES);
  ck_assert_mem_eq(rec.id, alice.pk, GV_ID_BYTES);
  ck_assert_int_eq(s.ts, T0_MS);
  ck_assert_uint_eq(s.nonce[15], 0x0f);
  ck_assert_uint_eq(rec.addr.port, 7411);
  ck_assert_uint_eq(rec.n_repos, 1);
  ck_assert_str_eq(rec.repos[0], "demo/hello");
  ck_assert_uint_eq(rec.n_caps, 1);
  ck_assert_str_eq(rec.caps[0], "relay");

  ck_assert_int_eq(gv_trk_req_signed_string("POST", GV_TRK_PATH_REGISTER, body,
                                            len, msg, &mlen),
                   0);
  ck_assert_uint_eq(mlen, 81);
  gv_trkc_sign(&alice, "POST", GV_TRK_PATH_REGISTER, body, len, sig);
  ck_assert_str_eq(sig, VEC_SIG);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                     VEC_SIG, s.id, NULL),
                   0);
  /* Upper-case hex is the same signature. */
  {
    char up[sizeof(VEC_SIG)];
    for (size_t i = 0; i < sizeof(VEC_SIG); i++)
      up[i] = (char)toupper((unsigned char)VEC_SIG[i]);
    ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                       up, s.id, NULL),
                     0);
  }
  ck_assert_int_eq(gv_trk_req_verify("DELETE", GV_TRK_PATH_REGISTER, body, len,
                                     VEC_SIG, s.id, NULL),
                   GV_EBADSIG);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_UNREGISTER, body, len,
                                     VEC_SIG, s.id, NULL),
                   GV_EBADSIG);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body,
                                     len - 1, VEC_SIG, s.id, NULL),
                   GV_EBADSIG);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                     NULL, s.id, NULL),
                   GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                     "abcd", s.id, NULL),
                   GV_EFIELD);
  {
    char bad[sizeof(VEC_SIG)];
    memcpy(bad, VEC_SIG, sizeof(bad));
    bad[5] = 'g';
    ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                       bad, s.id, NULL),
                     GV_EFIELD);
    bad[5] = VEC_SIG[5] == '0' ? '1' : '0';
    ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, body, len,
                                       bad, s.id, NULL),
                     GV_EBADSIG);
  }
  gv_id_wipe(&alice);
}
END_TEST

#define ID64 "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
#define N32 "000102030405060708090a0b0c0d0e0f"

static int parse_reg(const char *body) {
  gv_trk_signed s;
  gv_trk_rec rec;
  gv_why why = {""};
  int rc =
      gv_trk_req_register((const uint8_t *)body, strlen(body), &s, &rec, &why);
  ck_assert(rc == 0 || why.text[0] != '\0');
  return rc;
}

START_TEST(test_req_bad_bodies) {
  static const struct {
    const char *body;
    int want;
  } cases[] = {
      {"", GV_EJSON},
      {"{", GV_EJSON},
      {"[]", GV_EJSON},
      {"\"x\"", GV_EJSON},
      {"{\"id\":\"" ID64 "\"} x", GV_EJSON},
      {"{}", GV_EFIELD},
      {"{\"id\":7,\"port\":1,\"repos\":[],\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"abc\",\"port\":1,\"repos\":[],\"ts\":1,\"nonce\":\"" N32
       "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64
       "\",\"port\":\"1\",\"repos\":[],\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":0,\"repos\":[],\"ts\":1,\"nonce\":\"" N32
       "\"}",
       GV_ERANGE},
      {"{\"id\":\"" ID64
       "\",\"port\":65536,\"repos\":[],\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_ERANGE},
      {"{\"id\":\"" ID64
       "\",\"port\":1.5,\"repos\":[],\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64
       "\",\"port\":1,\"repos\":\"a\",\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[1],\"ts\":1,\"nonce\":\"" N32
       "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[\"a b\"],\"ts\":1,\"nonce\":"
       "\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[\"a\",\"a\"],\"ts\":1,"
       "\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[],\"caps\":[\"Relay\"],"
       "\"ts\":1,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[],\"caps\":{},\"ts\":1,"
       "\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[],\"ts\":-1,\"nonce\":\"" N32
       "\"}",
       GV_ERANGE},
      {"{\"id\":\"" ID64
       "\",\"port\":1,\"repos\":[],\"ts\":1e300,\"nonce\":\"" N32 "\"}",
       GV_ERANGE},
      {"{\"id\":\"" ID64
       "\",\"port\":1,\"repos\":[],\"ts\":true,\"nonce\":\"" N32 "\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64
       "\",\"port\":1,\"repos\":[],\"ts\":1,\"nonce\":\"00\"}",
       GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[],\"ts\":1}", GV_EFIELD},
      {"{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[\"a\\u0000b\"],\"ts\":1,"
       "\"nonce\":\"" N32 "\"}",
       GV_EJSON}, /* as PROTOCOL.md §6.2: one strict JSON for all */
      /* Valid: caps optional, unknown members ignored, spaces around. */
      {" {\"id\":\"" ID64 "\",\"port\":1,\"repos\":[],\"ts\":1,\"nonce\":\"" N32
       "\",\"addr\":\"6.6.6.6:1\"}\n",
       0},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rc = parse_reg(cases[i].body);
    ck_assert_msg(rc == cases[i].want, "case %zu: got %s, want %s", i,
                  gv_err_name(rc), gv_err_name(cases[i].want));
  }
}
END_TEST

/* Builds a body with n repos of the given name length. */
static char *body_with_repos(int n, size_t name_len) {
  size_t cap = 256 + (size_t)n * (name_len + 8);
  char *b = malloc(cap);
  size_t at =
      (size_t)snprintf(b, cap, "{\"id\":\"" ID64 "\",\"port\":1,\"repos\":[");
  for (int i = 0; i < n; i++) {
    at += (size_t)snprintf(b + at, cap - at, "%s\"%0*d", i ? "," : "",
                           (int)name_len, i);
    b[at++] = '"';
    b[at] = '\0';
  }
  snprintf(b + at, cap - at, "],\"ts\":1,\"nonce\":\"" N32 "\"}");
  return b;
}

START_TEST(test_req_limits) {
  char *b;
  uint8_t *big;
  gv_trk_signed s;
  gv_trk_rec rec;

  b = body_with_repos(GV_MAX_REPOS, GV_REPO_MAX);
  ck_assert_int_eq(parse_reg(b), 0);
  free(b);
  b = body_with_repos(GV_MAX_REPOS + 1, 4);
  ck_assert_int_eq(parse_reg(b), GV_ELIMIT);
  free(b);
  b = body_with_repos(1, GV_REPO_MAX + 1);
  ck_assert_int_eq(parse_reg(b), GV_EFIELD);
  free(b);
  big = malloc(GV_TRK_BODY_MAX + 1);
  memset(big, ' ', GV_TRK_BODY_MAX + 1);
  ck_assert_int_eq(
      gv_trk_req_register(big, GV_TRK_BODY_MAX + 1, &s, &rec, NULL),
      GV_ETOOBIG);
  big[10] = '\0';
  ck_assert_int_eq(gv_trk_req_register(big, 20, &s, &rec, NULL), GV_EJSON);
  free(big);
  {
    const char *u = "{\"id\":\"" ID64 "\",\"ts\":5,\"nonce\":\"" N32 "\"}";
    ck_assert_int_eq(
        gv_trk_req_unregister((const uint8_t *)u, strlen(u), &s, NULL), 0);
    ck_assert_int_eq(s.ts, 5);
  }
}
END_TEST

START_TEST(test_req_query) {
  char names[GV_TRK_MAX_QUERY_REPOS][GV_REPO_MAX + 1];
  char q[2048];
  size_t n = 99;
  unsigned max;

  ck_assert_int_eq(gv_trk_req_repos("a,linux@v6.1", names, &n, NULL), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(names[1], "linux@v6.1");
  ck_assert_int_eq(gv_trk_req_repos(NULL, names, &n, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_repos("", names, &n, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_repos("a,,b", names, &n, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_repos("a,", names, &n, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_repos("a b", names, &n, NULL), GV_EFIELD);
  ck_assert_uint_eq(n, 0);
  q[0] = '\0';
  for (int i = 0; i < GV_TRK_MAX_QUERY_REPOS; i++)
    snprintf(q + strlen(q), sizeof(q) - strlen(q), "%sr%d", i ? "," : "", i);
  ck_assert_int_eq(gv_trk_req_repos(q, names, &n, NULL), 0);
  ck_assert_uint_eq(n, GV_TRK_MAX_QUERY_REPOS);
  strcat(q, ",extra");
  ck_assert_int_eq(gv_trk_req_repos(q, names, &n, NULL), GV_ELIMIT);
  memset(q, 'x', GV_REPO_MAX + 1);
  q[GV_REPO_MAX + 1] = '\0';
  ck_assert_int_eq(gv_trk_req_repos(q, names, &n, NULL), GV_EFIELD);
  q[GV_REPO_MAX] = '\0';
  ck_assert_int_eq(gv_trk_req_repos(q, names, &n, NULL), 0);

  ck_assert_int_eq(gv_trk_req_max(NULL, 32, &max, NULL), 0);
  ck_assert_uint_eq(max, 32);
  ck_assert_int_eq(gv_trk_req_max("7", 32, &max, NULL), 0);
  ck_assert_uint_eq(max, 7);
  ck_assert_int_eq(gv_trk_req_max("256", 32, &max, NULL), 0);
  ck_assert_int_eq(gv_trk_req_max("257", 32, &max, NULL), GV_ERANGE);
  ck_assert_int_eq(gv_trk_req_max("0", 32, &max, NULL), GV_ERANGE);
  ck_assert_int_eq(gv_trk_req_max("", 32, &max, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_max("-1", 32, &max, NULL), GV_EFIELD);
  ck_assert_int_eq(gv_trk_req_max("99999999999", 32, &max, NULL), GV_EFIELD);
}
END_TEST

/* The head's fields: NUL bytes and repeated single fields are refused. */
START_TEST(test_req_head_fields) {
  gv_trk_head h = {0};
  gv_why why = {""};

  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER, "Host", 4, "x", 1, &why),
      0);
  ck_assert_int_eq(gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER,
                                         "Content-Length", 14, "2", 1, &why),
                   0);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER, "Accept", 6, "a", 1, &why),
      0);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER, "Accept", 6, "b", 1, &why),
      0);
  ck_assert_int_eq(gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER,
                                         "content-length", 14, "2", 1, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "Content-Length"));
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_HEADER, "HOST", 4, "y", 1, &why),
      GV_EFIELD);
  /* A query key named like a header is its own field. */
  ck_assert_int_eq(gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "repos", 5,
                                         "a\0zzz", 5, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "NUL"));
  memset(&h, 0, sizeof(h));
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "repos", 5, "a", 1, &why),
      0);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "max", 3, NULL, 0, &why),
      0);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "Host", 4, "x", 1, &why),
      0);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "repos", 5, "b", 1, &why),
      GV_EFIELD);
  ck_assert_int_eq(
      gv_trk_req_head_field(&h, GV_TRK_FIELD_QUERY, "x\0y", 3, "v", 1, &why),
      GV_EFIELD);
}
END_TEST

START_TEST(test_client_body_round_trip) {
  gv_identity bob;
  const char *repos[] = {"demo/hello", "linux@v6.1"}, *caps[] = {"relay"};
  gv_trkc_reg reg = {7411, 2, repos, 1, caps};
  gv_trk_signed s;
  gv_trk_rec rec;
  char *body, sig[2 * GV_SIG_BYTES + 1];
  size_t len;

  tu_identity(&bob, 0x02);
  ck_assert_int_eq(gv_trkc_register_body(&bob, &reg, T0_MS, &body, &len), 0);
  ck_assert_int_eq(
      gv_trk_req_register((const uint8_t *)body, len, &s, &rec, NULL), 0);
  ck_assert_mem_eq(s.id, bob.pk, GV_ID_BYTES);
  ck_assert_int_eq(s.ts, T0_MS);
  ck_assert_uint_eq(rec.n_repos, 2);
  ck_assert_uint_eq(rec.addr.port, 7411);
  gv_trkc_sign(&bob, "POST", GV_TRK_PATH_REGISTER, (const uint8_t *)body, len,
               sig);
  ck_assert_int_eq(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER,
                                     (const uint8_t *)body, len, sig, s.id,
                                     NULL),
                   0);
  free(body);
  /* The client refuses what the tracker would. */
  reg.port = 0;
  ck_assert_int_eq(gv_trkc_register_body(&bob, &reg, T0_MS, &body, &len),
                   GV_EFIELD);
  reg.port = 1;
  repos[1] = "demo/hello";
  ck_assert_int_eq(gv_trkc_register_body(&bob, &reg, T0_MS, &body, &len),
                   GV_EFIELD);
  gv_id_wipe(&bob);
}
END_TEST

/* ---- store ---- */

static char db_dir[64];

static void store_setup(void) {
  strcpy(db_dir, "/tmp/gv-check-trk-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(db_dir));
}

static void store_teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", db_dir);
  ck_assert_int_eq(system(cmd), 0);
}

static const gv_log quiet = {.level = GV_LOG_ERROR};

typedef struct loaded {
  size_t n;
  gv_trk_row rows[8];
} loaded;

static int on_row(void *ctx, const gv_trk_row *row) {
  loaded *l = ctx;
  if (l->n == 8)
    return GV_ELIMIT;
  l->rows[l->n++] = *row;
  return 0;
}

static int acks;
static void on_ack(void *ctx, int status) {
  (void)ctx;
  ck_assert_int_eq(status, 0);
  acks++;
}

START_TEST(test_store_round_trip) {
  char path[128];
  gv_trk_store *s, *s2;
  gv_trk_row row;
  gv_trk_store_stats st;
  gv_why why = {""};
  loaded *l = calloc(1, sizeof(*l));
  size_t n_loaded, skipped;
  gv_log lg = quiet;

  lg.out = stderr;
  snprintf(path, sizeof(path), "%s/t.db", db_dir);
  ck_assert_int_eq(gv_trk_store_open(&s, path, &lg, &why), 0);
  /* A second tracker on the same file is refused. */
  ck_assert_int_eq(gv_trk_store_open(&s2, path, &lg, &why), -EBUSY);
  ck_assert_ptr_nonnull(strstr(why.text, "in use by another"));
  ck_assert_int_eq(gv_trk_store_start(s), 0);
  acks = 0;
  for (unsigned i = 0; i < 4; i++) {
    memset(&row, 0, sizeof(row));
    mkrec(&row.rec, i, i == 3 ? "2001:db8::7" : "10.0.0.1",
          (uint16_t)(1000 + i), i == 0 ? "" : "demo/hello,linux@v6.1");
    row.registered_ms = T0_MS;
    row.expires_ms = T0_MS + (i == 2 ? MIN : HOUR);
    ck_assert_int_eq(gv_trk_store_put(s, &row, on_ack, NULL), 0);
  }
  /* An upsert keeps registered_ms and changes the rest. */
  row.registered_ms = T0_MS + 99;
  row.expires_ms = T0_MS + 2 * HOUR;
  row.rec.addr.port = 4242;
  ck_assert_int_eq(gv_trk_store_put(s, &row, on_ack, NULL), 0);
  mkrec(&row.rec, 1, "10.0.0.1", 1001, "");
  ck_assert_int_eq(gv_trk_store_del(s, row.rec.id, on_ack, NULL), 0);
  gv_trk_store_sync(s);
  ck_assert_int_eq(acks, 6);
  gv_trk_store_get_stats(s, &st);
  ck_assert_uint_ge(st.commits, 1);
  ck_assert_uint_eq(st.errors, 0);
  ck_assert_int_eq(st.ok, 1);
  gv_trk_store_close(s);

  /* Reopen later: row 2 expired and is deleted; 0 and 3 come back. */
  ck_assert_int_eq(gv_trk_store_open(&s, path, &lg, &why), 0);
  ck_assert_int_eq(gv_trk_store_load(s, T0_MS + 2 * MIN, on_row, l, &n_loaded,
                                     &skipped, &why),
                   0);
  ck_assert_uint_eq(n_loaded, 2);
  ck_assert_uint_eq(skipped, 0);
  ck_assert_uint_eq(l->rows[0].rec.n_repos, 0);
  ck_assert_uint_eq(l->rows[0].rec.n_caps, 1);
  ck_assert_str_eq(l->rows[0].rec.caps[0], "relay");
  ck_assert_int_eq(l->rows[1].expires_ms, T0_MS + 2 * HOUR);
  ck_assert_int_eq(l->rows[1].registered_ms, T0_MS);
  ck_assert_uint_eq(l->rows[1].rec.addr.port, 4242);
  ck_assert_uint_eq(l->rows[1].rec.addr.family, 6);
  ck_assert_uint_eq(l->rows[1].rec.n_repos, 2);
  ck_assert_str_eq(l->rows[1].rec.repos[1], "linux@v6.1");
  gv_trk_store_close(s);
  free(l);
}
END_TEST

START_TEST(test_store_bad_rows_and_files) {
  char path[128];
  gv_trk_store *s;
  sqlite3 *db;
  gv_why why = {""};
  loaded *l = calloc(1, sizeof(*l));
  size_t n_loaded, skipped;
  gv_log lg = {.level = GV_LOG_ERROR, .out = stderr};

  snprintf(path, sizeof(path), "%s/t.db", db_dir);
  ck_assert_int_eq(gv_trk_store_open(&s, path, &lg, &why), 0);
  gv_trk_store_close(s);
  /* Rows written by hand, as the benchmark does: one good, three bad. */
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  ck_assert_int_eq(
      sqlite3_exec(db,
                   "INSERT INTO registration VALUES"
                   " ('" ID64 "', '127.0.0.1:9', '[\"a\"]', '[]', 1, 1,"
                   " 9000000000000),"
                   " ('zz', '127.0.0.1:9', '[]', '[]', 1, 1, 9000000000000),"
                   " ('" ID64 "0', 'nowhere', '[]', '[]', 1, 1, 9000000000000),"
                   " ('8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801"
                   "b40f6f5d', '127.0.0.1:9', '[\"a\",\"a\"]', '[]', 1, 1,"
                   " 9000000000000)",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  ck_assert_int_eq(gv_trk_store_open(&s, path, &lg, &why), 0);
  ck_assert_int_eq(
      gv_trk_store_load(s, T0_MS, on_row, l, &n_loaded, &skipped, &why), 0);
  ck_assert_uint_eq(n_loaded, 1);
  ck_assert_uint_eq(skipped, 3);
  gv_trk_store_close(s);

  /* A newer schema is refused. */
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  ck_assert_int_eq(
      sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  ck_assert_int_eq(gv_trk_store_open(&s, path, &lg, &why), GV_EVERSION);
  ck_assert_ptr_nonnull(strstr(why.text, "schema version 2"));
  /* A directory that does not exist. */
  ck_assert_int_lt(gv_trk_store_open(&s, "/nonexistent/dir/t.db", &lg, &why),
                   0);
  ck_assert_ptr_nonnull(strstr(why.text, "/nonexistent/dir/t.db"));
  free(l);
}
END_TEST

/* ---- the fair share of the connection cap ---- */

/* A connection as http.c embeds it; busy: being answered (not evictable). */
typedef struct tconn {
  gv_trk_fair_conn fc;
  int busy;
} tconn;

static int tconn_evictable(const gv_trk_fair_conn *fc, void *ctx) {
  (void)ctx;
  return !((const tconn *)fc)->busy;
}

static gv_trk_fair *fair_new(size_t cap) {
  gv_trk_fair *f;
  ck_assert_int_eq(gv_trk_fair_new(&f, cap, KEY16, tconn_evictable, NULL), 0);
  return f;
}

/* Adds c from ip; returns the victim (NULL within the cap). */
static tconn *fair_add(gv_trk_fair *f, tconn *c, const char *ip) {
  gv_trk_fair_conn *v = (gv_trk_fair_conn *)1;
  gv_trk_ipkey k;

  src_of(&k, ip);
  ck_assert_int_eq(gv_trk_fair_add(f, &c->fc, &k, &v), 0);
  return (tconn *)v;
}

static size_t open_of(gv_trk_fair *f, const char *ip) {
  gv_trk_ipkey k;
  src_of(&k, ip);
  return gv_trk_fair_open_of(f, &k);
}

START_TEST(test_fair_within_cap) {
  gv_trk_fair *f = fair_new(4);
  tconn c[4] = {0};

  for (int i = 0; i < 4; i++)
    ck_assert_ptr_null(fair_add(f, &c[i], "10.0.0.1"));
  ck_assert_uint_eq(gv_trk_fair_open(f), 4);
  ck_assert_uint_eq(open_of(f, "10.0.0.1"), 4);
  ck_assert_uint_eq(open_of(f, "10.0.0.2"), 0);
  gv_trk_fair_free(f);
}
END_TEST

/* Past the cap, a newcomer from the heaviest source is the one refused;
 * from a lighter source, the heaviest's oldest waiting connection goes. */
START_TEST(test_fair_refuse_or_evict) {
  gv_trk_fair *f = fair_new(4);
  tconn a[4] = {0}, b = {0}, c = {0}, d = {0};

  for (int i = 0; i < 3; i++)
    ck_assert_ptr_null(fair_add(f, &a[i], "10.0.0.1"));
  ck_assert_ptr_null(fair_add(f, &b, "10.0.0.2"));
  /* A fourth from the heaviest: refused, and it stops counting. */
  ck_assert_ptr_eq(fair_add(f, &a[3], "10.0.0.1"), &a[3]);
  ck_assert(a[3].fc.shut);
  ck_assert_uint_eq(gv_trk_fair_open(f), 4);
  ck_assert_uint_eq(open_of(f, "10.0.0.1"), 3);
  /* From a newcomer source: the heaviest's oldest one that is waiting
   * (a[0] is being answered, so a[1]). */
  a[0].busy = 1;
  ck_assert_ptr_eq(fair_add(f, &c, "10.0.0.3"), &a[1]);
  ck_assert(!c.fc.shut);
  ck_assert_uint_eq(open_of(f, "10.0.0.1"), 2);
  ck_assert_uint_eq(open_of(f, "10.0.0.3"), 1);
  ck_assert_uint_eq(gv_trk_fair_open(f), 4);
  /* 2, 1, 1 and a newcomer at 1 < 2: a[2] (a[0] busy, a[1] shut). */
  ck_assert_ptr_eq(fair_add(f, &d, "10.0.0.4"), &a[2]);
  /* Now every source holds 1: a newcomer of any source is refused. */
  {
    tconn e = {0};
    ck_assert_ptr_eq(fair_add(f, &e, "10.0.0.2"), &e);
    gv_trk_fair_remove(f, &e.fc);
  }
  ck_assert_uint_eq(gv_trk_fair_open(f), 4);
  gv_trk_fair_free(f);
}
END_TEST

/* When the heaviest source has nothing evictable, the newcomer goes. */
START_TEST(test_fair_none_evictable) {
  gv_trk_fair *f = fair_new(2);
  tconn a[2] = {{.busy = 1}, {.busy = 1}}, b = {0};

  ck_assert_ptr_null(fair_add(f, &a[0], "10.0.0.1"));
  ck_assert_ptr_null(fair_add(f, &a[1], "10.0.0.1"));
  ck_assert_ptr_eq(fair_add(f, &b, "10.0.0.2"), &b);
  ck_assert_uint_eq(open_of(f, "10.0.0.1"), 2);
  gv_trk_fair_free(f);
}
END_TEST

/* When the heaviest source has nothing evictable, the next heaviest that
 * holds more than the newcomer's source pays; one holding no more does
 * not, and then the newcomer goes. */
START_TEST(test_fair_next_heaviest) {
  gv_trk_fair *f = fair_new(6);
  tconn a[3] = {{.busy = 1}, {.busy = 1}, {.busy = 1}}, b[2] = {0}, c = {0};
  tconn d = {0}, e = {0};

  for (int i = 0; i < 3; i++)
    ck_assert_ptr_null(fair_add(f, &a[i], "10.0.0.1"));
  for (int i = 0; i < 2; i++)
    ck_assert_ptr_null(fair_add(f, &b[i], "10.0.0.2"));
  ck_assert_ptr_null(fair_add(f, &c, "10.0.0.3"));
  /* 3 (all busy), 2, 1 and a newcomer at 1: b's oldest. */
  ck_assert_ptr_eq(fair_add(f, &d, "10.0.0.4"), &b[0]);
  ck_assert_uint_eq(open_of(f, "10.0.0.1"), 3);
  ck_assert_uint_eq(open_of(f, "10.0.0.2"), 1);
  ck_assert_uint_eq(open_of(f, "10.0.0.4"), 1);
  /* 3 (all busy), then only sources at 1, like the newcomer: refused. */
  ck_assert_ptr_eq(fair_add(f, &e, "10.0.0.5"), &e);
  ck_assert_uint_eq(open_of(f, "10.0.0.2"), 1);
  ck_assert_uint_eq(open_of(f, "10.0.0.3"), 1);
  ck_assert_uint_eq(gv_trk_fair_open(f), 6);
  gv_trk_fair_free(f);
}
END_TEST

static void count_each(gv_trk_fair_conn *fc, void *ctx) {
  (void)fc;
  (*(size_t *)ctx)++;
}

/* Shut is idempotent and remove does not count a shut one twice; a source
 * whose last connection is removed is forgotten; each sees shut ones. */
START_TEST(test_fair_shut_remove) {
  gv_trk_fair *f = fair_new(8);
  tconn a[3] = {0};
  size_t n = 0;

  for (int i = 0; i < 3; i++)
    ck_assert_ptr_null(fair_add(f, &a[i], "2001:db8::1"));
  /* The same /64. */
  ck_assert_uint_eq(open_of(f, "2001:db8::ffff"), 3);
  gv_trk_fair_shut(f, &a[1].fc);
  gv_trk_fair_shut(f, &a[1].fc);
  ck_assert_uint_eq(gv_trk_fair_open(f), 2);
  gv_trk_fair_each(f, count_each, &n);
  ck_assert_uint_eq(n, 3);
  gv_trk_fair_remove(f, &a[1].fc);
  ck_assert_ptr_null(a[1].fc.src);
  gv_trk_fair_remove(f, &a[1].fc); /* not in the table: nothing */
  ck_assert_uint_eq(gv_trk_fair_open(f), 2);
  gv_trk_fair_remove(f, &a[0].fc);
  gv_trk_fair_remove(f, &a[2].fc);
  ck_assert_uint_eq(gv_trk_fair_open(f), 0);
  ck_assert_uint_eq(open_of(f, "2001:db8::1"), 0);
  n = 0;
  gv_trk_fair_each(f, count_each, &n);
  ck_assert_uint_eq(n, 0);
  gv_trk_fair_free(f);
}
END_TEST

/* A flood of 2,000 connections from 50 sources, each victim closed as
 * the adapter would: the cap holds, and a source holding one connection
 * is never chosen. */
START_TEST(test_fair_flood) {
  enum { CAP = 64, N = 2000, SRCS = 50 };
  gv_trk_fair *f = fair_new(CAP);
  tconn *c = calloc(N, sizeof(*c)), good = {0};
  char ip[32];

  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_null(fair_add(f, &good, "192.0.2.1"));
  for (int i = 0; i < N; i++) {
    tconn *v;
    snprintf(ip, sizeof(ip), "10.0.1.%d", i % SRCS);
    v = fair_add(f, &c[i], ip);
    ck_assert_ptr_ne(v, &good);
    if (v != NULL)
      gv_trk_fair_remove(f, &v->fc);
    ck_assert_uint_le(gv_trk_fair_open(f), CAP);
  }
  ck_assert_uint_eq(open_of(f, "192.0.2.1"), 1);
  ck_assert_uint_eq(gv_trk_fair_open(f), CAP);
  gv_trk_fair_free(f);
  free(c);
}
END_TEST

static Suite *tracker_suite(void) {
  Suite *s = suite_create("tracker");
  TCase *tc;

  tc = tcase_create("core");
  tcase_add_test(tc, test_map_model);
  tcase_add_test(tc, test_rng);
  suite_add_tcase(s, tc);

  tc = tcase_create("registry");
  tcase_add_test(tc, test_reg_register_and_list);
  tcase_add_test(tc, test_reg_expiry_one_hour);
  tcase_add_test(tc, test_reg_renewal_extends);
  tcase_add_test(tc, test_reg_renewal_pending_is_not_expired);
  tcase_add_test(tc, test_reg_renewal_failed_dialback_delists);
  tcase_add_test(tc, test_reg_per_ip_limit);
  tcase_add_test(tc, test_reg_renewal_from_new_address);
  tcase_add_test(tc, test_reg_busy_overload_unregister);
  tcase_add_test(tc, test_reg_load);
  tcase_add_test(tc, test_reg_sample);
  tcase_add_test(tc, test_reg_generation);
  tcase_add_test(tc, test_reg_discover);
  tcase_add_test(tc, test_reg_model);
  tcase_add_test(tc, test_reg_pool_fair);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);

  tc = tcase_create("limits");
  tcase_add_test(tc, test_replay_window);
  tcase_add_test(tc, test_replay_nonce);
  tcase_add_test(tc, test_replay_peek_records_nothing);
  tcase_add_test(tc, test_replay_eviction);
  tcase_add_test(tc, test_replay_share);
  tcase_add_test(tc, test_replay_evicted_not_replayable);
  tcase_add_test(tc, test_replay_register_refusal_costs_nothing);
  tcase_add_test(tc, test_reg_verifying_per_ip);
  tcase_add_test(tc, test_buckets);
  tcase_add_test(tc, test_fair_within_cap);
  tcase_add_test(tc, test_fair_refuse_or_evict);
  tcase_add_test(tc, test_fair_none_evictable);
  tcase_add_test(tc, test_fair_next_heaviest);
  tcase_add_test(tc, test_fair_shut_remove);
  tcase_add_test(tc, test_fair_flood);
  suite_add_tcase(s, tc);

  tc = tcase_create("requests");
  tcase_add_test(tc, test_req_vector);
  tcase_add_test(tc, test_req_bad_bodies);
  tcase_add_test(tc, test_req_limits);
  tcase_add_test(tc, test_req_query);
  tcase_add_test(tc, test_req_head_fields);
  tcase_add_test(tc, test_client_body_round_trip);
  suite_add_tcase(s, tc);

  tc = tcase_create("store");
  tcase_add_checked_fixture(tc, store_setup, store_teardown);
  tcase_add_test(tc, test_store_round_trip);
  tcase_add_test(tc, test_store_bad_rows_and_files);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  if (sodium_init() < 0)
    return 1;
  return tu_run(tracker_suite());
}

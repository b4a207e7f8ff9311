/* libFuzzer target: what clients send the tracker (tracker/req.h), and the
 * registry, replay and bucket cores that act on it.
 *
 * The first byte picks the mode; the rest is the input:
 *   0  a register body          gv_trk_req_register
 *   1  an unregister body       gv_trk_req_unregister
 *   2  a register body, then    parsed, signed by a fixed key and verified
 *      through the registry     (must pass; one changed byte must not),
 *                               then begun, committed, sampled, discovered,
 *                               renewed and unregistered, with the
 *                               registry's invariants checked at each step
 *   3  a query string           gv_trk_req_repos and gv_trk_req_max
 *   4  a program of registry    3 bytes per operation (begin, commit, abort,
 *      operations               unregister, expire, sample, discover) over
 *                               16 ids and 4 addresses, against a clock the
 *                               input advances; invariants after each
 *   5  a program of replay and  nonce checks and bucket takes against a
 *      bucket calls             clock the input advances
 *   6  a signature header       gv_trk_req_verify over a fixed body
 *   7  a request head: fields    gv_trk_req_head_field, field by field
 *      (kind, key len, key, val  until one is refused; a key or value
 *      len, val)...              holding a NUL must be
 *
 * Checked: the return is 0 or a negative code with a reason; a parsed
 * request obeys every limit of docs/TRACKER.md §2.1 and a failed parse
 * leaves no partial result; the cores never break an invariant or crash.
 */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tracker/bucket.h"
#include "../../tracker/registry.h"
#include "../../tracker/replay.h"
#include "../../tracker/req.h"
#include "fuzz.h"

#define FZ_NOW_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

static const uint8_t KEY16[16] = {1, 2, 3};
static gv_identity alice;

static int all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return 0;
  return 1;
}

static void check_rc(int rc, const gv_why *why) {
  FZ_CHECK(rc <= 0);
  if (rc < 0)
    FZ_CHECK(why->text[0] != '\0' &&
             memchr(why->text, '\0', sizeof(why->text)) != NULL);
}

/* Every limit of §2.1 on a parsed registration. */
static void check_rec(const gv_trk_signed *s, const gv_trk_rec *rec) {
  FZ_CHECK(memcmp(s->id, rec->id, GV_ID_BYTES) == 0);
  FZ_CHECK(s->ts >= 0 && (uint64_t)s->ts <= GV_INT_MAX && rec->ts == s->ts);
  FZ_CHECK(rec->addr.port >= 1);
  FZ_CHECK(rec->addr.family == 0);
  FZ_CHECK(rec->n_repos <= GV_MAX_REPOS && rec->n_caps <= GV_TRK_MAX_CAPS);
  for (int i = 0; i < rec->n_repos; i++) {
    FZ_CHECK(gv_repo_name_check(rec->repos[i], strlen(rec->repos[i])) == 0);
    for (int j = 0; j < i; j++)
      FZ_CHECK(strcmp(rec->repos[i], rec->repos[j]) != 0);
  }
  for (int i = 0; i < rec->n_caps; i++) {
    FZ_CHECK(gv_trk_cap_name_check(rec->caps[i], strlen(rec->caps[i])) == 0);
    for (int j = 0; j < i; j++)
      FZ_CHECK(strcmp(rec->caps[i], rec->caps[j]) != 0);
  }
}

static void reg_ok(const gv_trk_reg *r) {
  gv_why why = {""};
  int rc = gv__trk_reg_check(r, &why);
  if (rc != 0)
    fprintf(stderr, "invariant: %s\n", why.text);
  FZ_CHECK(rc == 0);
}

/* k ids per address, maxv verifying, of which maxv_ip per address. */
static gv_trk_reg *new_reg(unsigned k, unsigned maxv, unsigned maxv_ip) {
  gv_trk_reg_cfg cfg = {k, maxv, GV_TRK_TTL_MS, maxv_ip, NULL, NULL};
  gv_trk_reg *r;
  FZ_CHECK(gv_trk_reg_new(&r, &cfg, KEY16) == 0);
  return r;
}

static void rng_seed(gv_trk_rng *rng, const uint8_t *data, size_t len) {
  uint8_t seed[GV_TRK_RNG_SEED_BYTES];
  crypto_generichash(seed, sizeof(seed), data, len, NULL, 0);
  gv_trk_rng_init(rng, seed);
}

static void fuzz_register(const uint8_t *data, size_t len) {
  gv_trk_signed s;
  gv_trk_rec rec;
  gv_why why = {""};
  int rc = gv_trk_req_register(data, len, &s, &rec, &why);

  check_rc(rc, &why);
  if (rc == 0)
    check_rec(&s, &rec);
  else
    FZ_CHECK(all_zero(&s, sizeof(s)) && all_zero(&rec, sizeof(rec)));
}

static void fuzz_unregister(const uint8_t *data, size_t len) {
  gv_trk_signed s;
  gv_why why = {""};
  int rc = gv_trk_req_unregister(data, len, &s, &why);

  check_rc(rc, &why);
  if (rc == 0)
    FZ_CHECK(s.ts >= 0 && (uint64_t)s.ts <= GV_INT_MAX);
  else
    FZ_CHECK(all_zero(&s, sizeof(s)));
}

/* A parsed registration taken through signing and the registry. */
static void fuzz_signed_flow(const uint8_t *data, size_t len) {
  gv_trk_signed s;
  gv_trk_rec rec;
  gv_why why = {""};
  uint8_t msg[GV_TRK_SIGNED_MAX], sig[crypto_sign_BYTES];
  char sig_hex[2 * crypto_sign_BYTES + 1];
  const gv_trk_entry *out[GV_TRK_MAX_RESULTS];
  size_t mlen, n;
  gv_trk_reg *r;
  gv_trk_rng rng;
  int64_t now = FZ_NOW_MS;

  if (gv_trk_req_register(data, len, &s, &rec, &why) < 0)
    return;
  check_rec(&s, &rec);
  /* The signature of §2.2 by alice verifies for alice, over these bytes
   * only. */
  FZ_CHECK(gv_trk_req_signed_string("POST", GV_TRK_PATH_REGISTER, data, len,
                                    msg, &mlen) == 0);
  crypto_sign_detached(sig, NULL, msg, mlen, alice.sk);
  sodium_bin2hex(sig_hex, sizeof(sig_hex), sig, sizeof(sig));
  FZ_CHECK(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, data, len, sig_hex,
                             alice.pk, NULL) == 0);
  if (len > 0) {
    uint8_t *copy = malloc(len);
    memcpy(copy, data, len);
    copy[len / 2] ^= 0x01;
    FZ_CHECK(gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, copy, len, sig_hex,
                               alice.pk, NULL) == GV_EBADSIG);
    free(copy);
  }

  rng_seed(&rng, data, len);
  r = new_reg(2, 4, 0);
  rec.addr.family = 4;
  rec.addr.ip[0] = 10;
  FZ_CHECK(gv_trk_reg_begin(r, &rec, now, NULL) == 0);
  reg_ok(r);
  FZ_CHECK(gv_trk_reg_commit(r, &rec, now + GV_TRK_TTL_MS, now) == 0);
  reg_ok(r);
  FZ_CHECK(gv_trk_reg_sample(r, &rng, 32, NULL, out) == 1);
  FZ_CHECK(gv_trk_reg_sample(r, &rng, 32, rec.id, out) == 0);
  {
    size_t jlen;
    const char *json = gv_trk_entry_json(gv_trk_reg_find(r, rec.id), &jlen);
    FZ_CHECK(json != NULL && jlen > 2 && json[0] == '{');
  }
  n = gv_trk_reg_discover(r, &rng, (const char(*)[GV_REPO_MAX + 1]) rec.repos,
                          rec.n_repos, 8, out);
  FZ_CHECK(n == (rec.n_repos > 0));
  /* Renew with the repositories reversed, from another address. */
  for (int i = 0; i < rec.n_repos / 2; i++) {
    char t[GV_REPO_MAX + 1];
    memcpy(t, rec.repos[i], sizeof(t));
    memcpy(rec.repos[i], rec.repos[rec.n_repos - 1 - i], sizeof(t));
    memcpy(rec.repos[rec.n_repos - 1 - i], t, sizeof(t));
  }
  rec.addr.ip[3] = 1;
  FZ_CHECK(gv_trk_reg_begin(r, &rec, now + 1000, NULL) == 1);
  reg_ok(r);
  FZ_CHECK(gv_trk_reg_commit(r, &rec, now + 1000 + GV_TRK_TTL_MS, now + 1000) ==
           0);
  reg_ok(r);
  FZ_CHECK(gv_trk_reg_unregister(r, rec.id) == 0);
  reg_ok(r);
  gv_trk_reg_free(r);
}

static void fuzz_query(const uint8_t *data, size_t len) {
  char *q = malloc(len + 1), names[GV_TRK_MAX_QUERY_REPOS][GV_REPO_MAX + 1];
  gv_why why = {""};
  unsigned max = 0;
  size_t n = 99;
  int rc;

  memcpy(q, data, len);
  q[len] = '\0';
  rc = gv_trk_req_repos(q, names, &n, &why);
  check_rc(rc, &why);
  if (rc == 0) {
    FZ_CHECK(n >= 1 && n <= GV_TRK_MAX_QUERY_REPOS);
    for (size_t i = 0; i < n; i++)
      FZ_CHECK(gv_repo_name_check(names[i], strlen(names[i])) == 0);
  } else {
    FZ_CHECK(n == 0);
  }
  why.text[0] = '\0';
  rc = gv_trk_req_max(q, 32, &max, &why);
  check_rc(rc, &why);
  FZ_CHECK(rc < 0 || (max >= 1 && max <= GV_TRK_MAX_RESULTS));
  free(q);
}

/* Registry programs: 3 bytes per operation. */
static void fuzz_registry(const uint8_t *data, size_t len) {
  static const char *const repo_sets[4] = {"", "a", "a,b", "c"};
  gv_trk_reg *r = new_reg(3, 6, 2);
  gv_trk_rng rng;
  int64_t now = FZ_NOW_MS;
  const gv_trk_entry *out[GV_TRK_MAX_RESULTS];
  const char q[3][GV_REPO_MAX + 1] = {"a", "b", "c"};

  rng_seed(&rng, data, len);
  for (size_t at = 0; at + 3 <= len && at < 3 * 2000; at += 3) {
    uint8_t op = data[at] % 8, idn = data[at + 1] % 16, arg = data[at + 2];
    gv_trk_rec rec;
    const char *p;
    int rc;

    memset(&rec, 0, sizeof(rec));
    memset(rec.id, 0xB0, GV_ID_BYTES);
    rec.id[0] = idn;
    rec.addr.family = (arg & 0x40) ? 6 : 4;
    rec.addr.ip[0] = 10;
    rec.addr.ip[rec.addr.family == 4 ? 3 : 7] = arg & 3;
    rec.addr.port = (uint16_t)(1000 + arg);
    for (p = repo_sets[(arg >> 2) & 3]; *p; p++)
      if (*p != ',') {
        rec.repos[rec.n_repos][0] = *p;
        rec.repos[rec.n_repos++][1] = '\0';
      }
    switch (op) {
    case 0:
    case 1:
      rc = gv_trk_reg_begin(r, &rec, now, NULL);
      FZ_CHECK(rc == 0 || rc == 1 || rc == GV_EBUSY || rc == GV_ELIMIT ||
               rc == -EAGAIN || rc == -EBUSY);
      break;
    case 2:
      rc = gv_trk_reg_commit(r, &rec, now + GV_TRK_TTL_MS, now);
      FZ_CHECK(rc == 0 || rc == GV_ESTATE);
      break;
    case 3:
      rc = gv_trk_reg_abort(r, rec.id, arg & 1);
      FZ_CHECK(rc == 0 || rc == 1 || rc == GV_ESTATE);
      break;
    case 4:
      rc = gv_trk_reg_unregister(r, rec.id);
      FZ_CHECK(rc == 0 || rc == -ENOENT || rc == GV_EBUSY);
      break;
    case 5:
      now += (int64_t)arg * 60000;
      gv_trk_reg_expire(r, now, NULL, NULL);
      FZ_CHECK(gv_trk_reg_next_expiry(r) > now);
      break;
    case 6: {
      gv_trk_reg_stats st;
      size_t n = gv_trk_reg_sample(r, &rng, arg, rec.id, out);
      gv_trk_reg_get_stats(r, &st);
      FZ_CHECK(n <= arg && n <= st.listed);
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
          FZ_CHECK(out[i] != out[j]);
      break;
    }
    case 7: {
      size_t n = gv_trk_reg_discover(r, &rng, q, 1 + arg % 3, arg >> 2, out);
      FZ_CHECK(n <= (size_t)(arg >> 2));
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
          FZ_CHECK(out[i] != out[j]);
      break;
    }
    }
    reg_ok(r);
  }
  gv_trk_reg_free(r);
}

/* Replay and bucket programs: 4 bytes per call. */
static void fuzz_limits(const uint8_t *data, size_t len) {
  gv_trk_replay *rp;
  gv_trk_buckets *b;
  int64_t now = FZ_NOW_MS;

  FZ_CHECK(gv_trk_replay_new(&rp, 8, FZ_NOW_MS, KEY16) == 0);
  FZ_CHECK(gv_trk_buckets_new(&b, 1 + data[0] % 5, 1 + data[0] % 3, 4, KEY16) ==
           0);
  for (size_t at = 1; at + 4 <= len && at < 4 * 2000; at += 4) {
    uint8_t id[GV_ID_BYTES] = {0}, nonce[GV_TRK_NONCE_BYTES] = {0};
    int64_t ts = now + ((int64_t)(int8_t)data[at + 1]) * 1000, retry = 0;
    gv_trk_ipkey key;
    gv_addr a = {.family = 4};
    int rc;

    now += (int64_t)(data[at] & 0x3f) * 250;
    id[0] = data[at + 2] & 3;
    nonce[0] = data[at + 3];
    a.ip[3] = data[at + 2] >> 5;
    gv_trk_ipkey_of(&key, &a);
    /* A peek records nothing: the check that follows decides alike. */
    rc = gv_trk_replay_peek(rp, id, nonce, ts, now, NULL);
    FZ_CHECK(rc == 0 || rc == GV_EDUP || rc == GV_ESTALE || rc == GV_EFUTURE);
    rc = gv_trk_replay_check(rp, &key, id, nonce, ts, now, NULL);
    FZ_CHECK(rc == 0 || rc == GV_EDUP || rc == GV_ESTALE || rc == GV_EFUTURE ||
             rc == -EAGAIN);
    if (rc == 0) {
      FZ_CHECK(ts >= now - GV_TRK_SKEW_MS && ts <= now + GV_TRK_SKEW_MS);
      /* Replaying at once is always caught. */
      FZ_CHECK(gv_trk_replay_check(rp, &key, id, nonce, ts, now, NULL) ==
               GV_EDUP);
    }
    FZ_CHECK(gv_trk_replay_count(rp) <= 8);
    rc = gv_trk_buckets_take(b, &key, now, &retry);
    FZ_CHECK(rc == 0 || (rc == GV_EBUSY && retry >= 1 && retry <= 1000));
    FZ_CHECK(gv_trk_buckets_count(b) <= 4);
    if (data[at + 3] == 0xff)
      gv_trk_buckets_sweep(b, now);
  }
  gv_trk_replay_free(rp);
  gv_trk_buckets_free(b);
}

static void fuzz_verify(const uint8_t *data, size_t len) {
  static const char body[] = "{\"x\":1}";
  char *hex = malloc(len + 1);
  gv_why why = {""};
  int rc;

  memcpy(hex, data, len);
  hex[len] = '\0';
  rc = gv_trk_req_verify("POST", GV_TRK_PATH_REGISTER, (const uint8_t *)body,
                         sizeof(body) - 1, hex, alice.pk, &why);
  check_rc(rc, &why);
  FZ_CHECK(rc == GV_EFIELD || rc == GV_EBADSIG);
  free(hex);
}

/* Mode 7: the fields of one request head. */
static void fuzz_head(const uint8_t *d, size_t n) {
  gv_trk_head h = {0};
  gv_why why = {""};

  while (n >= 3) {
    gv_trk_field_kind kind =
        d[0] & 1 ? GV_TRK_FIELD_QUERY : GV_TRK_FIELD_HEADER;
    size_t klen = d[1], vlen;
    const char *key = (const char *)d + 2, *val;
    int rc;

    if (n < 3 + klen)
      return;
    vlen = d[2 + klen];
    val = (const char *)d + 3 + klen;
    if (n < 3 + klen + vlen)
      return;
    rc = gv_trk_req_head_field(&h, kind, key, klen, val, vlen, &why);
    check_rc(rc, &why);
    if (memchr(key, '\0', klen) != NULL || memchr(val, '\0', vlen) != NULL)
      FZ_CHECK(rc == GV_EFIELD);
    if (rc < 0)
      return;
    d += 3 + klen + vlen;
    n -= 3 + klen + vlen;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;

  if (!ready) {
    uint8_t seed[32];
    FZ_CHECK(sodium_init() >= 0);
    memset(seed, 0x01, sizeof(seed));
    FZ_CHECK(gv_id_from_seed(&alice, seed) == 0);
    ready = 1;
  }
  if (size < 1)
    return 0;
  switch (data[0] % 8) {
  case 0: fuzz_register(data + 1, size - 1); break;
  case 1: fuzz_unregister(data + 1, size - 1); break;
  case 2: fuzz_signed_flow(data + 1, size - 1); break;
  case 3: fuzz_query(data + 1, size - 1); break;
  case 4: fuzz_registry(data + 1, size - 1); break;
  case 5:
    if (size >= 2)
      fuzz_limits(data + 1, size - 1);
    break;
  case 6: fuzz_verify(data + 1, size - 1); break;
  case 7: fuzz_head(data + 1, size - 1); break;
  }
  return 0;
}

#include "req.h"

#include "json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

/* Parses exactly body[0..len) as one JSON object, with the strict rules
 * every parser of untrusted JSON here shares (proto/json.h): no NUL or
 * \u0000, no trailing bytes, no repeated member names. */
static int parse_object(const uint8_t *body, size_t len, cJSON **out,
                        gv_why *why) {
  size_t at;
  cJSON *v;
  int rc;

  *out = NULL;
  if (len > GV_TRK_BODY_MAX)
    return gv_fail(why, GV_ETOOBIG, "body of %zu bytes exceeds %u", len,
                   GV_TRK_BODY_MAX);
  if (len == 0)
    return gv_fail(why, GV_EJSON, "empty body");
  if ((v = gv_json_parse_exact((const char *)body, len, &at)) == NULL)
    return gv_fail(why, GV_EJSON, "malformed JSON near byte %zu", at);
  if (!cJSON_IsObject(v)) {
    cJSON_Delete(v);
    return gv_fail(why, GV_EJSON, "the body is not a JSON object");
  }
  if ((rc = gv_json_check_members(v, why)) < 0) {
    cJSON_Delete(v);
    return rc;
  }
  *out = v;
  return 0;
}

int gv_trk_cap_name_check(const char *name, size_t len) {
  if (len == 0 || len > GV_TRK_CAP_MAX)
    return GV_EFIELD;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return GV_EFIELD;
  }
  return 0;
}

/* An array of distinct names, each checked by check and copied into
 * out[i] (of width w bytes). */
static int get_names(const cJSON *obj, const char *key, int required, int max,
                     size_t w, char *out, uint8_t *n,
                     int (*check)(const char *, size_t), gv_why *why) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key), *it;
  int i = 0, count;

  *n = 0;
  if (arr == NULL) {
    if (required)
      return gv_fail(why, GV_EFIELD, "missing field '%s'", key);
    return 0;
  }
  if (!cJSON_IsArray(arr))
    return gv_fail(why, GV_EFIELD, "field '%s' is not an array", key);
  count = cJSON_GetArraySize(arr);
  if (count > max)
    return gv_fail(why, GV_ELIMIT, "field '%s' has %d entries, limit %d", key,
                   count, max);
  cJSON_ArrayForEach(it, arr) {
    size_t len;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
      return gv_fail(why, GV_EFIELD, "%s[%d] is not a string", key, i);
    len = strlen(it->valuestring);
    if (check(it->valuestring, len) < 0)
      return gv_fail(why, GV_EFIELD, "%s[%d] is not a valid name", key, i);
    for (int j = 0; j < i; j++)
      if (strcmp(out + (size_t)j * w, it->valuestring) == 0)
        return gv_fail(why, GV_EFIELD, "%s[%d] repeats %s[%d]", key, i, key, j);
    memcpy(out + (size_t)i * w, it->valuestring, len + 1);
    i++;
  }
  *n = (uint8_t)i;
  return 0;
}

static int get_signed(const cJSON *o, gv_trk_signed *s, gv_why *why) {
  uint64_t ts;
  int rc;

  if ((rc = gv_json_hex(o, "id", s->id, GV_ID_BYTES, why)) < 0 ||
      (rc = gv_json_uint(o, "ts", 0, GV_INT_MAX, &ts, why)) < 0 ||
      (rc = gv_json_hex(o, "nonce", s->nonce, GV_TRK_NONCE_BYTES, why)) < 0)
    return rc;
  s->ts = (int64_t)ts;
  return 0;
}

int gv_trk_req_register(const uint8_t *body, size_t len, gv_trk_signed *s,
                        gv_trk_rec *rec, gv_why *why) {
  cJSON *o;
  uint64_t port;
  int rc;

  memset(s, 0, sizeof(*s));
  memset(rec, 0, sizeof(*rec));
  if ((rc = parse_object(body, len, &o, why)) < 0)
    return rc;
  if ((rc = get_signed(o, s, why)) < 0 ||
      (rc = gv_json_uint(o, "port", 1, 65535, &port, why)) < 0 ||
      (rc = get_names(o, "repos", 1, GV_MAX_REPOS, GV_REPO_MAX + 1,
                      &rec->repos[0][0], &rec->n_repos, gv_repo_name_check,
                      why)) < 0 ||
      (rc = get_names(o, "caps", 0, GV_TRK_MAX_CAPS, GV_TRK_CAP_MAX + 1,
                      &rec->caps[0][0], &rec->n_caps, gv_trk_cap_name_check,
                      why)) < 0)
    goto out;
  memcpy(rec->id, s->id, GV_ID_BYTES);
  rec->ts = s->ts;
  rec->addr.port = (uint16_t)port;
out:
  cJSON_Delete(o);
  if (rc < 0) {
    memset(s, 0, sizeof(*s));
    memset(rec, 0, sizeof(*rec));
  }
  return rc;
}

int gv_trk_req_unregister(const uint8_t *body, size_t len, gv_trk_signed *s,
                          gv_why *why) {
  cJSON *o;
  int rc;

  memset(s, 0, sizeof(*s));
  if ((rc = parse_object(body, len, &o, why)) < 0)
    return rc;
  rc = get_signed(o, s, why);
  cJSON_Delete(o);
  if (rc < 0)
    memset(s, 0, sizeof(*s));
  return rc;
}

int gv_trk_req_signed_string(const char *method, const char *path,
                             const uint8_t *body, size_t len,
                             uint8_t out[GV_TRK_SIGNED_MAX], size_t *out_len) {
  size_t lm = strlen(method), lp = strlen(path), n = 0;
  const size_t ll = sizeof(GV_TRK_SIG_LABEL) - 1;

  *out_len = 0;
  if (ll + lm + 1 + lp + 1 + crypto_generichash_BYTES > GV_TRK_SIGNED_MAX)
    return GV_EINVAL;
  memcpy(out, GV_TRK_SIG_LABEL, ll);
  n += ll;
  memcpy(out + n, method, lm);
  n += lm;
  out[n++] = ' ';
  memcpy(out + n, path, lp);
  n += lp;
  out[n++] = '\n';
  crypto_generichash(out + n, crypto_generichash_BYTES, body, len, NULL, 0);
  n += crypto_generichash_BYTES;
  *out_len = n;
  return 0;
}

int gv_trk_req_verify(const char *method, const char *path, const uint8_t *body,
                      size_t len, const char *sig_hex,
                      const uint8_t id[GV_ID_BYTES], gv_why *why) {
  uint8_t sig[crypto_sign_BYTES], msg[GV_TRK_SIGNED_MAX];
  size_t got = 0, mlen, hlen;
  const char *end = NULL;

  if (sig_hex == NULL)
    return gv_fail(why, GV_EFIELD, "missing header " GV_TRK_SIG_HEADER);
  hlen = strlen(sig_hex);
  if (hlen != GV_TRK_SIG_HEX_LEN ||
      sodium_hex2bin(sig, sizeof(sig), sig_hex, hlen, NULL, &got, &end) != 0 ||
      got != sizeof(sig) || end != sig_hex + hlen)
    return gv_fail(why, GV_EFIELD, GV_TRK_SIG_HEADER " is not %d hex digits",
                   GV_TRK_SIG_HEX_LEN);
  if (gv_trk_req_signed_string(method, path, body, len, msg, &mlen) < 0)
    return gv_fail(why, GV_EINVAL, "method or path too long");
  if (crypto_sign_verify_detached(sig, msg, mlen, id) != 0)
    return gv_fail(why, GV_EBADSIG, "the signature does not verify for id");
  return 0;
}

int gv_trk_req_repos(const char *q,
                     char names[GV_TRK_MAX_QUERY_REPOS][GV_REPO_MAX + 1],
                     size_t *n, gv_why *why) {
  const char *p = q;
  size_t k = 0;

  *n = 0;
  if (q == NULL || *q == '\0')
    return gv_fail(why, GV_EFIELD, "missing query parameter 'repos'");
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (k == GV_TRK_MAX_QUERY_REPOS)
      return gv_fail(why, GV_ELIMIT, "more than %d repositories in 'repos'",
                     GV_TRK_MAX_QUERY_REPOS);
    if (gv_repo_name_check(p, len) < 0)
      return gv_fail(why, GV_EFIELD,
                     "'repos' entry %zu is not a repository name "
                     "(1..%d of A-Za-z0-9._-/:@+)",
                     k + 1, GV_REPO_MAX);
    memcpy(names[k], p, len);
    names[k++][len] = '\0';
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  *n = k;
  return 0;
}

int gv_trk_req_max(const char *q, unsigned def, unsigned *out, gv_why *why) {
  unsigned long v = 0;

  *out = def;
  if (q == NULL)
    return 0;
  if (*q == '\0' || strlen(q) > 9)
    return gv_fail(why, GV_EFIELD, "'max' is not a number");
  for (const char *p = q; *p; p++) {
    if (*p < '0' || *p > '9')
      return gv_fail(why, GV_EFIELD, "'max' is not a number");
    v = v * 10 + (unsigned long)(*p - '0');
  }
  if (v < 1 || v > GV_TRK_MAX_RESULTS)
    return gv_fail(why, GV_ERANGE, "'max' must be 1..%d", GV_TRK_MAX_RESULTS);
  *out = (unsigned)v;
  return 0;
}

/* The headers that must appear at most once (RFC 9110 §5.3, §8.6, §7.2),
 * then the query keys, by bit. */
static const char *const single_headers[] = {"Content-Length",
                                             "Transfer-Encoding", "Host",
                                             "Content-Type", GV_TRK_SIG_HEADER};
static const char *const single_queries[] = {"repos", "max"};

int gv_trk_req_head_field(gv_trk_head *h, gv_trk_field_kind kind,
                          const char *key, size_t key_len, const char *val,
                          size_t val_len, gv_why *why) {
  const char *what = kind == GV_TRK_FIELD_HEADER ? "header" : "query parameter";
  const char *const *names =
      kind == GV_TRK_FIELD_HEADER ? single_headers : single_queries;
  size_t n = kind == GV_TRK_FIELD_HEADER
                 ? sizeof(single_headers) / sizeof(single_headers[0])
                 : sizeof(single_queries) / sizeof(single_queries[0]);
  unsigned base = kind == GV_TRK_FIELD_HEADER
                      ? 0
                      : sizeof(single_headers) / sizeof(single_headers[0]);

  if (key == NULL || strnlen(key, key_len) != key_len)
    return gv_fail(why, GV_EFIELD, "a %s name holds a NUL byte", what);
  if (val != NULL && strnlen(val, val_len) != val_len)
    return gv_fail(why, GV_EFIELD, "a %s value holds a NUL byte", what);
  for (size_t i = 0; i < n; i++) {
    unsigned bit = 1u << (base + i);
    int same = kind == GV_TRK_FIELD_HEADER ? strcasecmp(key, names[i]) == 0
                                           : strcmp(key, names[i]) == 0;
    if (!same)
      continue;
    if (h->seen & bit)
      return gv_fail(why, GV_EFIELD, "%s '%s' given more than once", what,
                     names[i]);
    h->seen |= bit;
    break;
  }
  return 0;
}

#include "trkclient.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SIG_LABEL "grapevine/1 tracker " /* docs/TRACKER.md §2.2 */
#define SIG_HEADER "X-Grapevine-Sig: "
#define PATH_REGISTER "/api/bootstrap/register"
#define PATH_UNREGISTER "/api/bootstrap/unregister"
#define PATH_PEERS "/api/bootstrap/peers"
#define PATH_DISCOVER "/api/bootstrap/discover"
#define MAX_PEERS 256
#define MAX_QUERY_REPOS 16
#define NONCE_BYTES 16

struct gv_trkc {
  CURL *curl;
  char *base;
  long timeout_ms;
  long connect_ms;
};

/* The response body, bounded. */
typedef struct resp_buf {
  char *data;
  size_t len, cap;
  int overflow;
} resp_buf;

static void set_reason(gv_trkc_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(gv_trkc_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
  va_end(ap);
}

int gv_trkc_new(gv_trkc **out, const char *base_url, const gv_trkc_opts *opts) {
  gv_trkc *c;
  size_t len = strlen(base_url);

  *out = NULL;
  if (strncmp(base_url, "http://", 7) != 0 &&
      strncmp(base_url, "https://", 8) != 0)
    return GV_EINVAL;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return GV_ENOMEM;
  while (len > 0 && base_url[len - 1] == '/')
    len--;
  c->base = strndup(base_url, len);
  c->curl = curl_easy_init();
  if (c->base == NULL || c->curl == NULL) {
    gv_trkc_free(c);
    return GV_ENOMEM;
  }
  c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 15000;
  c->connect_ms =
      opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
  *out = c;
  return 0;
}

void gv_trkc_free(gv_trkc *c) {
  if (c == NULL)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  free(c->base);
  free(c);
}

/* ---- signing ---- */

void gv_trkc_sign(const gv_identity *id, const char *method, const char *path,
                  const uint8_t *body, size_t len,
                  char sig_hex[2 * GV_SIG_BYTES + 1]) {
  size_t ll = strlen(SIG_LABEL), lm = strlen(method), lp = strlen(path);
  size_t n = ll + lm + 1 + lp + 1 + crypto_generichash_BYTES;
  uint8_t *msg = malloc(n), sig[crypto_sign_BYTES];
  uint8_t *p = msg;

  if (msg == NULL) {
    sig_hex[0] = '\0';
    return;
  }
  memcpy(p, SIG_LABEL, ll);
  p += ll;
  memcpy(p, method, lm);
  p += lm;
  *p++ = ' ';
  memcpy(p, path, lp);
  p += lp;
  *p++ = '\n';
  crypto_generichash(p, crypto_generichash_BYTES, body, len, NULL, 0);
  crypto_sign_detached(sig, NULL, msg, n, id->sk);
  sodium_bin2hex(sig_hex, 2 * GV_SIG_BYTES + 1, sig, sizeof(sig));
  free(msg);
}

/* ---- request bodies ---- */

static int cap_name_check(const char *s, size_t len) {
  if (len == 0 || len > GV_TRKC_CAP_MAX)
    return GV_EFIELD;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '.' || s[i] == '_' || s[i] == '-'))
      return GV_EFIELD;
  return 0;
}

/* Adds a JSON array of n distinct valid names. */
static int add_names(cJSON *o, const char *key, const char *const *names,
                     size_t n, size_t max, int (*check)(const char *, size_t)) {
  cJSON *arr;

  if (n > max || (n > 0 && names == NULL))
    return GV_EFIELD;
  if ((arr = cJSON_AddArrayToObject(o, key)) == NULL)
    return GV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (names[i] == NULL || check(names[i], strlen(names[i])) < 0)
      return GV_EFIELD;
    for (size_t j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0)
        return GV_EFIELD;
    if (!cJSON_AddItemToArray(arr, cJSON_CreateString(names[i])))
      return GV_ENOMEM;
  }
  return 0;
}

/* id, ts and a fresh nonce: the members of every signed body. */
static int add_signed(cJSON *o, const gv_identity *id, int64_t now_ms) {
  char hex[GV_ID_HEX_LEN + 1], nonce_hex[2 * NONCE_BYTES + 1];
  uint8_t nonce[NONCE_BYTES];

  gv_id_to_hex(id->pk, hex);
  randombytes_buf(nonce, sizeof(nonce));
  sodium_bin2hex(nonce_hex, sizeof(nonce_hex), nonce, sizeof(nonce));
  if (cJSON_AddStringToObject(o, "id", hex) == NULL ||
      cJSON_AddNumberToObject(o, "ts", (double)now_ms) == NULL ||
      cJSON_AddStringToObject(o, "nonce", nonce_hex) == NULL)
    return GV_ENOMEM;
  return 0;
}

static int print_body(cJSON *o, char **out, size_t *len) {
  if ((*out = cJSON_PrintUnformatted(o)) == NULL)
    return GV_ENOMEM;
  *len = strlen(*out);
  return 0;
}

int gv_trkc_register_body(const gv_identity *id, const gv_trkc_reg *reg,
                          int64_t now_ms, char **out, size_t *len) {
  cJSON *o = cJSON_CreateObject();
  int rc = GV_ENOMEM;

  *out = NULL;
  *len = 0;
  if (o == NULL)
    return rc;
  if (reg->port == 0) {
    rc = GV_EFIELD;
    goto out;
  }
  if ((rc = add_signed(o, id, now_ms)) < 0)
    goto out;
  rc = GV_ENOMEM;
  if (cJSON_AddNumberToObject(o, "port", reg->port) == NULL)
    goto out;
  if ((rc = add_names(o, "repos", reg->repos, reg->n_repos, GV_MAX_REPOS,
                      gv_repo_name_check)) < 0 ||
      (rc = add_names(o, "caps", reg->caps, reg->n_caps, GV_TRKC_MAX_CAPS,
                      cap_name_check)) < 0)
    goto out;
  rc = print_body(o, out, len);
out:
  cJSON_Delete(o);
  return rc;
}

/* ---- transport ---- */

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  resp_buf *b = ud;
  size_t add = size * n;

  if (add > GV_TRKC_RESPONSE_MAX - b->len) {
    b->overflow = 1;
    return 0; /* aborts the transfer */
  }
  if (b->len + add + 1 > b->cap) {
    size_t ncap = b->cap ? b->cap : 4096;
    char *nd;
    while (ncap < b->len + add + 1)
      ncap *= 2;
    if ((nd = realloc(b->data, ncap)) == NULL)
      return 0;
    b->data = nd;
    b->cap = ncap;
  }
  memcpy(b->data + b->len, p, add);
  b->len += add;
  b->data[b->len] = '\0';
  return add;
}

static int curl_err(CURLcode cc, const resp_buf *b) {
  switch (cc) {
  case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
  case CURLE_WRITE_ERROR: return b->overflow ? GV_ETOOBIG : GV_ENOMEM;
  default: return -EIO;
  }
}

/* The tracker's error codes (docs/TRACKER.md §4). */
static int map_error(long http, const char *code) {
  static const struct {
    const char *code;
    int err;
  } map[] = {
      {"malformed_json", GV_EJSON},
      {"bad_field", GV_EFIELD},
      {"too_many", GV_ELIMIT},
      {"bad_query", GV_EFIELD},
      {"missing_signature", GV_EBADSIG},
      {"bad_signature", GV_EBADSIG},
      {"ip_limit", GV_ELIMIT},
      {"not_found", -ENOENT},
      {"not_registered", -ENOENT},
      {"method_not_allowed", GV_EINVAL},
      {"stale", GV_ESTALE},
      {"future", GV_EFUTURE},
      {"replay", GV_EDUP},
      {"busy", GV_EBUSY},
      {"body_too_large", GV_ETOOBIG},
      {"dialback_failed", GV_EHANDSHAKE},
      {"rate_limited", -EAGAIN},
      {"overloaded", -EAGAIN},
      {"store_error", -EAGAIN},
      {"shutting_down", -EAGAIN},
  };

  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (strcmp(code, map[i].code) == 0)
      return map[i].err;
  return http >= 500 ? -EAGAIN : -EPROTO;
}

static void copy_str(char *dst, size_t cap, const cJSON *o, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  snprintf(dst, cap, "%s", cJSON_IsString(it) ? it->valuestring : "");
}

/* Performs one request; on 2xx hands the parsed JSON object to *json. */
static int request(gv_trkc *c, const char *method, const char *path,
                   const char *body, size_t body_len, const char *sig,
                   gv_trkc_result *res, cJSON **json) {
  char *url = NULL, errbuf[CURL_ERROR_SIZE] = "";
  char sig_header[sizeof(SIG_HEADER) + 2 * GV_SIG_BYTES];
  struct curl_slist *hdrs = NULL, *h;
  resp_buf b = {0};
  curl_off_t retry = 0;
  cJSON *o = NULL;
  CURLcode cc;
  int rc;

  *json = NULL;
  memset(res, 0, sizeof(*res));
  if (asprintf(&url, "%s%s", c->base, path) < 0) {
    url = NULL;
    rc = GV_ENOMEM;
    goto out;
  }
  /* "Expect:" turns off the 100-continue round trip. */
  if ((h = curl_slist_append(hdrs, "Expect:")) == NULL) {
    rc = GV_ENOMEM;
    goto out;
  }
  hdrs = h;
  if (body != NULL) {
    if ((h = curl_slist_append(hdrs, "Content-Type: application/json")) ==
        NULL) {
      rc = GV_ENOMEM;
      goto out;
    }
    hdrs = h;
  }
  if (sig != NULL) {
    snprintf(sig_header, sizeof(sig_header), SIG_HEADER "%s", sig);
    if ((h = curl_slist_append(hdrs, sig_header)) == NULL) {
      rc = GV_ENOMEM;
      goto out;
    }
    hdrs = h;
  }
  curl_easy_reset(c->curl); /* keeps the connection cache */
  curl_easy_setopt(c->curl, CURLOPT_URL, url);
  curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
  curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
  curl_easy_setopt(c->curl, CURLOPT_USERAGENT, GV_AGENT);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
  if (body != NULL) {
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)body_len);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
  } else {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  }

  cc = curl_easy_perform(c->curl);
  if (cc != CURLE_OK) {
    rc = curl_err(cc, &b);
    set_reason(res, "%s %s: %s", method, url,
               b.overflow  ? "response too large"
               : errbuf[0] ? errbuf
                           : curl_easy_strerror(cc));
    goto out;
  }
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->http);
  if (curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK &&
      retry > 0)
    res->retry_after_s = (long)retry;
  o = b.len ? cJSON_ParseWithLength(b.data, b.len) : NULL;
  if (!cJSON_IsObject(o)) {
    /* A proxy's or server's own error page: a 5xx is worth a retry. */
    rc = res->http >= 500 ? -EAGAIN : -EPROTO;
    set_reason(res, "%s %s: HTTP %ld without a JSON object", method, url,
               res->http);
    goto out;
  }
  if (res->http >= 200 && res->http < 300) {
    *json = o;
    o = NULL;
    rc = 0;
    goto out;
  }
  copy_str(res->error, sizeof(res->error), o, "error");
  copy_str(res->reason, sizeof(res->reason), o, "reason");
  rc = map_error(res->http, res->error);
out:
  cJSON_Delete(o);
  curl_slist_free_all(hdrs);
  free(b.data);
  free(url);
  return rc;
}

/* ---- responses ---- */

/* Copies a JSON array of at most max valid names into one block owned by
 * *vec. */
static int take_names(const cJSON *arr, size_t max,
                      int (*check)(const char *, size_t), char ***vec,
                      size_t *n) {
  const cJSON *it;
  size_t count, bytes = 0, i = 0;
  char *p;

  *vec = NULL;
  *n = 0;
  if (arr == NULL)
    return 0;
  if (!cJSON_IsArray(arr) || (count = (size_t)cJSON_GetArraySize(arr)) > max)
    return -EPROTO;
  cJSON_ArrayForEach(it, arr) {
    if (!cJSON_IsString(it) ||
        check(it->valuestring, strlen(it->valuestring)) < 0)
      return -EPROTO;
    bytes += strlen(it->valuestring) + 1;
  }
  if ((*vec = malloc(count * sizeof(char *) + bytes + 1)) == NULL)
    return GV_ENOMEM;
  p = (char *)(*vec + count);
  cJSON_ArrayForEach(it, arr) {
    size_t len = strlen(it->valuestring);
    memcpy(p, it->valuestring, len + 1);
    (*vec)[i++] = p;
    p += len + 1;
  }
  *n = count;
  return 0;
}

static int get_ms(const cJSON *o, const char *key, int64_t *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

  if (!cJSON_IsNumber(it) || it->valuedouble < 0 ||
      it->valuedouble > (double)GV_INT_MAX ||
      it->valuedouble != (double)(int64_t)it->valuedouble)
    return -EPROTO;
  *out = (int64_t)it->valuedouble;
  return 0;
}

static int parse_peer(const cJSON *it, gv_trkc_peer *p) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
  const cJSON *addr = cJSON_GetObjectItemCaseSensitive(it, "addr");
  int rc;

  memset(p, 0, sizeof(*p));
  if (!cJSON_IsString(id) ||
      gv_id_from_hex(p->id, id->valuestring, strlen(id->valuestring)) < 0 ||
      !cJSON_IsString(addr) ||
      gv_addr_parse(&p->addr, addr->valuestring, strlen(addr->valuestring)) <
          0 ||
      get_ms(it, "expires", &p->expires_ms) < 0)
    return -EPROTO;
  if ((rc = take_names(cJSON_GetObjectItemCaseSensitive(it, "repos"),
                       GV_MAX_REPOS, gv_repo_name_check, &p->repos,
                       &p->n_repos)) < 0)
    return rc;
  if ((rc = take_names(cJSON_GetObjectItemCaseSensitive(it, "caps"),
                       GV_TRKC_MAX_CAPS, cap_name_check, &p->caps,
                       &p->n_caps)) < 0) {
    free(p->repos);
    p->repos = NULL;
    return rc;
  }
  return 0;
}

static int parse_peers(const cJSON *o, gv_trkc_peers *out,
                       gv_trkc_result *res) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "peers"), *it;
  const cJSON *total = cJSON_GetObjectItemCaseSensitive(o, "total");
  size_t n;

  memset(out, 0, sizeof(*out));
  if (!cJSON_IsArray(arr)) {
    set_reason(res, "response without a 'peers' array");
    return -EPROTO;
  }
  n = (size_t)cJSON_GetArraySize(arr);
  if (n > MAX_PEERS)
    n = MAX_PEERS;
  if (n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
    return GV_ENOMEM;
  cJSON_ArrayForEach(it, arr) {
    int rc;
    if (out->n == n)
      break;
    rc = parse_peer(it, &out->v[out->n]);
    if (rc == GV_ENOMEM) {
      gv_trkc_peers_free(out);
      return rc;
    }
    if (rc < 0)
      out->skipped++;
    else
      out->n++;
  }
  if (cJSON_IsNumber(total) && total->valuedouble >= 0)
    out->total = (size_t)total->valuedouble;
  return 0;
}

void gv_trkc_peers_free(gv_trkc_peers *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->v[i].repos);
    free(p->v[i].caps);
  }
  free(p->v);
  memset(p, 0, sizeof(*p));
}

/* ---- calls ---- */

int gv_trkc_register(gv_trkc *c, const gv_identity *id, const gv_trkc_reg *reg,
                     int64_t now_ms, gv_trkc_result *res,
                     gv_trkc_peers *peers) {
  char *body = NULL, sig[2 * GV_SIG_BYTES + 1];
  const cJSON *addr, *rid, *renewed;
  uint8_t got[GV_ID_BYTES];
  cJSON *o = NULL;
  size_t len;
  int rc;

  if (peers != NULL)
    memset(peers, 0, sizeof(*peers));
  memset(res, 0, sizeof(*res));
  if ((rc = gv_trkc_register_body(id, reg, now_ms, &body, &len)) < 0) {
    set_reason(res, "bad registration: %s", gv_strerror(rc));
    return rc;
  }
  gv_trkc_sign(id, "POST", PATH_REGISTER, (const uint8_t *)body, len, sig);
  if ((rc = request(c, "POST", PATH_REGISTER, body, len, sig, res, &o)) < 0)
    goto out;
  addr = cJSON_GetObjectItemCaseSensitive(o, "addr");
  rid = cJSON_GetObjectItemCaseSensitive(o, "id");
  renewed = cJSON_GetObjectItemCaseSensitive(o, "renewed");
  /* 202: accepted, the dial-back runs in the background; no expiry or
   * peers yet (docs/TRACKER.md §3.4). */
  res->verifying = res->http == 202;
  if (!cJSON_IsString(addr) || !cJSON_IsString(rid) ||
      gv_addr_parse(&res->addr, addr->valuestring, strlen(addr->valuestring)) <
          0 ||
      gv_id_from_hex(got, rid->valuestring, strlen(rid->valuestring)) < 0 ||
      sodium_memcmp(got, id->pk, GV_ID_BYTES) != 0 ||
      (!res->verifying && get_ms(o, "expires", &res->expires_ms) < 0)) {
    set_reason(res, "register: malformed answer");
    rc = -EPROTO;
    goto out;
  }
  res->renewed = cJSON_IsTrue(renewed);
  if (peers != NULL && !res->verifying)
    rc = parse_peers(o, peers, res);
out:
  cJSON_Delete(o);
  free(body);
  return rc;
}

int gv_trkc_unregister(gv_trkc *c, const gv_identity *id, int64_t now_ms,
                       gv_trkc_result *res) {
  cJSON *o = cJSON_CreateObject(), *ans = NULL;
  char *body = NULL, sig[2 * GV_SIG_BYTES + 1];
  size_t len;
  int rc;

  memset(res, 0, sizeof(*res));
  if (o == NULL || (rc = add_signed(o, id, now_ms)) < 0 ||
      (rc = print_body(o, &body, &len)) < 0) {
    cJSON_Delete(o);
    return GV_ENOMEM;
  }
  gv_trkc_sign(id, "DELETE", PATH_UNREGISTER, (const uint8_t *)body, len, sig);
  rc = request(c, "DELETE", PATH_UNREGISTER, body, len, sig, res, &ans);
  cJSON_Delete(ans);
  cJSON_Delete(o);
  free(body);
  return rc;
}

int gv_trkc_peers_get(gv_trkc *c, unsigned max, gv_trkc_result *res,
                      gv_trkc_peers *out) {
  char path[64];
  cJSON *o;
  int rc;

  memset(out, 0, sizeof(*out));
  if (max > 0)
    snprintf(path, sizeof(path), PATH_PEERS "?max=%u", max);
  else
    snprintf(path, sizeof(path), PATH_PEERS);
  if ((rc = request(c, "GET", path, NULL, 0, NULL, res, &o)) < 0)
    return rc;
  rc = parse_peers(o, out, res);
  cJSON_Delete(o);
  return rc;
}

int gv_trkc_discover(gv_trkc *c, const char *const *repos, size_t n,
                     unsigned max, gv_trkc_result *res, gv_trkc_peers *out) {
  /* Names are 1..64 bytes of a URL-safe set (escaped anyway). */
  char path[sizeof(PATH_DISCOVER) + 32 + MAX_QUERY_REPOS * 3 * GV_REPO_MAX +
            MAX_QUERY_REPOS];
  size_t at;
  cJSON *o;
  int rc;

  memset(out, 0, sizeof(*out));
  memset(res, 0, sizeof(*res));
  if (n == 0 || n > MAX_QUERY_REPOS) {
    set_reason(res, "discover takes 1..%d repositories", MAX_QUERY_REPOS);
    return GV_EFIELD;
  }
  at = (size_t)snprintf(path, sizeof(path), PATH_DISCOVER "?repos=");
  for (size_t i = 0; i < n; i++) {
    char *esc;
    if (repos[i] == NULL ||
        gv_repo_name_check(repos[i], strlen(repos[i])) < 0) {
      set_reason(res, "bad repository name");
      return GV_EFIELD;
    }
    if ((esc = curl_easy_escape(c->curl, repos[i], 0)) == NULL)
      return GV_ENOMEM;
    at += (size_t)snprintf(path + at, sizeof(path) - at, "%s%s", i ? "," : "",
                           esc);
    curl_free(esc);
  }
  if (max > 0)
    snprintf(path + at, sizeof(path) - at, "&max=%u", max);
  if ((rc = request(c, "GET", path, NULL, 0, NULL, res, &o)) < 0)
    return rc;
  rc = parse_peers(o, out, res);
  cJSON_Delete(o);
  return rc;
}

/* The HTTP front of the tracker. Request life (libmicrohttpd 0.9.75's
 * two-phase handler; a response is never queued on the first call, which
 * would make 0.9.75 close keep-alive connections):
 *
 *   call 1 (headers)  route, method, client address, token bucket,
 *                     Content-Length -> maybe an early error, kept
 *   call 2..n (body)  accumulate up to GV_TRK_BODY_MAX (413 at once past it)
 *   last call         answer: reads are served at once from the registry;
 *                     register/unregister are validated here (the nonce
 *                     recorded last, docs/TRACKER.md §2.3), then the
 *                     connection is suspended while the dial-back (main
 *                     loop) and the commit (writer thread) run, and resumed
 *                     with the answer prepared, which the next call queues;
 *                     or, when the dialer is busy, a register is answered
 *                     202 at once and verified in the background.
 *
 * Every connection owns a random generator for sampling, seeded when it
 * first draws.
 *
 * Connections: deadlines and the fair share of the cap. Every connection
 * is in the table (struct gv_trk_conns) from NOTIFY_STARTED to
 * NOTIFY_CLOSED; libmicrohttpd closes the socket only after CLOSED, so a
 * descriptor in the table is never one reused by another connection. Its
 * deadline, on the monotonic clock, is set when it enters a phase and is
 * never moved by the bytes that arrive:
 *
 *   accepted, or previous answer done   the head is due header_timeout later
 *   head complete (handler call 1)      the body is due body_timeout later
 *   last call (answering, suspended)    none: libmicrohttpd's idle timeout
 *
 * gv_trk_http_reap() shuts down (SHUT_RDWR) the sockets past their
 * deadline; libmicrohttpd then reads the end of the stream and closes them.
 * At most cfg.max_conns connections stay open: libmicrohttpd's own limit
 * is HEADROOM higher, so that a newcomer is always accepted and the choice
 * is ours: tracker/fair.h picks the connection to close (the newcomer,
 * or the heaviest address's oldest one still waiting for a head or a
 * body), and this file shuts it down.
 */
#include "http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fair.h"
#include "map.h"
#include "req.h"
#include "sockaddr.h"

enum method { M_GET, M_HEAD, M_POST, M_DELETE, M_OTHER };

typedef struct conn_ctx conn_ctx;
typedef struct gv_trk_conns gv_trk_conns;

/* A register or unregister being carried out. A register's verification
 * runs either for its request (r set: the connection is suspended and
 * gets the outcome; the request owns p) or in the background (r NULL: the
 * client was answered 202 at once; the chain of callbacks owns p and
 * frees it at its end). */
typedef struct pending {
  gv_trk_ctx *t;
  struct req *r;
  gv_trk_rec rec;
  int renewal;
  int64_t expires_ms;
} pending;

typedef struct req req;
struct req {
  gv_trk_ctx *t;
  conn_ctx *cc;
  struct MHD_Connection *conn;
  gv_trk_route route;
  enum method method;
  const char *method_text;
  gv_addr client; /* port 0 */
  /* A decision taken before the body. */
  unsigned early;
  const char *early_code;
  char early_reason[160];
  long retry_after;
  /* The body. */
  uint8_t *body;
  size_t len, cap, discarded;
  /* An answer prepared while suspended. */
  int async;
  int ready;
  unsigned status;
  char *resp;
  size_t resp_len;
  pending *p;
  uint64_t t0;
};

/* A connection's phase, in the low bits of conn_ctx.due. */
enum { DUE_NONE, DUE_HEAD, DUE_BODY };

struct conn_ctx {
  gv_trk_rng rng; /* seeded on first use (conn_rng) */
  int seeded;
  gv_addr tcp; /* the TCP source address, port 0 */
  int fd;
  /* Written by the connection's thread, read by the reaper: the deadline
   * in monotonic ms << 2 | DUE_*, or 0 for none. */
  atomic_uint_fast64_t due;
  /* Under the table's lock; shut: shut down by the tracker, not yet
   * closed. */
  gv_trk_fair_conn fc;
  /* The connection's thread: an answer went out before the body was read
   * (the connection then closes; see drain_unread). */
  int unread;
  /* The connection's thread: the request's URI decoded a %00 (on_unescape);
   * read and cleared as the request starts. */
  int nul_uri;
  req r;
};

struct gv_trk_conns {
  /* Each connection's generator is seeded with BLAKE2b(seed_key, seeds++):
   * as unpredictable as a fresh randombytes_buf(), without its system
   * call on every connection. */
  uint8_t seed_key[crypto_generichash_KEYBYTES];
  atomic_uint_fast64_t seeds;
  uv_mutex_t lock;
  gv_trk_fair *fair; /* at most cfg.max_conns open */
  /* The shared `peers` answer (see do_peers), under its own lock, taken
   * inside the registry's read lock. */
  uv_mutex_t peers_lock;
  struct MHD_Response *peers; /* NULL: none */
  unsigned peers_max, peers_uses;
  uint64_t peers_gen, peers_born_ms;
};

/* A `peers` answer is shared by at most this many requests, within this
 * many ms, for as long as the registry's generation stays put. */
#define PEERS_SHARE_USES 16
#define PEERS_SHARE_MS 100

/* Each connection's libmicrohttpd memory pool, which holds the head as
 * read, its parsed fields and the answer's head. The default, 32 KiB, costs
 * a 16 KiB read buffer that libmicrohttpd zeroes as it shrinks it after
 * every head (4% of the CPU with a new connection per request); a head of
 * a few KiB still fits in 8 KiB (a larger one is answered 431). */
#define CONN_MEMORY (8 * 1024)

/* libmicrohttpd's limit above ours: newcomers to choose against. */
#define HEADROOM(cap) ((cap) / 8 + 16)

/* ---- a growable output buffer ---- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

/* Makes room for n more bytes and a NUL. */
static void sb_reserve(sbuf *b, size_t n) {
  size_t ncap = b->cap ? b->cap : 1024;
  char *np;

  if (b->oom || b->len + n + 1 <= b->cap)
    return;
  while (ncap < b->len + n + 1)
    ncap *= 2;
  if ((np = realloc(b->p, ncap)) == NULL) {
    b->oom = 1;
    return;
  }
  b->p = np;
  b->cap = ncap;
}

static void sb_add(sbuf *b, const char *s, size_t n) {
  sb_reserve(b, n);
  if (b->oom)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    b->oom = 1;
    return;
  }
  sb_add(b, tmp, (size_t)n);
}

/* "peers":[...],"count":n from the sampled entries. */
static void sb_peers(sbuf *b, const gv_trk_entry *const *v, size_t n) {
  size_t total = 32;

  for (size_t i = 0; i < n; i++) {
    size_t len;
    gv_trk_entry_json(v[i], &len);
    total += len + 1;
  }
  sb_reserve(b, total);
  sb_printf(b, "\"count\":%zu,\"peers\":[", n);
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *json = gv_trk_entry_json(v[i], &len);
    if (i)
      sb_add(b, ",", 1);
    sb_add(b, json, len);
  }
  sb_add(b, "]}", 2);
}

/* ---- addresses ---- */

static void addr_of_in6(gv_addr *a, const struct in6_addr *in6) {
  memset(a, 0, sizeof(*a));
  if (IN6_IS_ADDR_V4MAPPED(in6)) {
    a->family = 4;
    memcpy(a->ip, in6->s6_addr + 12, 4);
  } else {
    a->family = 6;
    memcpy(a->ip, in6->s6_addr, 16);
  }
}

static void addr_of_in4(gv_addr *a, const struct in_addr *in) {
  memset(a, 0, sizeof(*a));
  a->family = 4;
  memcpy(a->ip, in, 4);
}

/* The last address of X-Forwarded-For: the one our proxy appended. */
static int addr_of_forwarded(gv_addr *a, const char *xff) {
  const char *last = strrchr(xff, ',');
  char text[INET6_ADDRSTRLEN + 1];
  struct in_addr v4;
  struct in6_addr v6;
  size_t len;

  last = last ? last + 1 : xff;
  while (*last == ' ' || *last == '\t')
    last++;
  len = strcspn(last, " \t");
  if (len == 0 || len >= sizeof(text))
    return GV_EINVAL;
  memcpy(text, last, len);
  text[len] = '\0';
  if (inet_pton(AF_INET, text, &v4) == 1)
    addr_of_in4(a, &v4);
  else if (inet_pton(AF_INET6, text, &v6) == 1)
    addr_of_in6(a, &v6);
  else
    return GV_EINVAL;
  return 0;
}

/* ---- the connection table ---- */

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

/* Enters a phase: its deadline is timeout_s from now (none for DUE_NONE). */
static void set_due(conn_ctx *cc, unsigned phase, unsigned timeout_s) {
  uint64_t due = 0;

  if (phase != DUE_NONE)
    due = (mono_ms() + (uint64_t)timeout_s * 1000) << 2 | phase;
  atomic_store_explicit(&cc->due, due, memory_order_relaxed);
}

static conn_ctx *conn_of(const gv_trk_fair_conn *fc) {
  return (conn_ctx *)((char *)fc - offsetof(conn_ctx, fc));
}

/* A connection may be closed for a newcomer while it waits for its head
 * or its body, not while it is being answered. */
static int conn_evictable(const gv_trk_fair_conn *fc, void *ctx) {
  (void)ctx;
  return atomic_load_explicit(&conn_of(fc)->due, memory_order_relaxed) != 0;
}

static void conns_free(gv_trk_conns *tab) {
  if (tab == NULL)
    return;
  sodium_memzero(tab->seed_key, sizeof(tab->seed_key));
  gv_trk_fair_free(tab->fair);
  if (tab->peers != NULL)
    MHD_destroy_response(tab->peers);
  uv_mutex_destroy(&tab->peers_lock);
  uv_mutex_destroy(&tab->lock);
  free(tab);
}

static int conns_new(gv_trk_conns **out, size_t cap) {
  gv_trk_conns *tab = calloc(1, sizeof(*tab));
  uint8_t key[GV_TRK_MAP_KEY_BYTES];
  int rc;

  *out = NULL;
  if (tab == NULL)
    return GV_ENOMEM;
  if (uv_mutex_init(&tab->lock) != 0) {
    free(tab);
    return GV_ENOMEM;
  }
  if (uv_mutex_init(&tab->peers_lock) != 0) {
    uv_mutex_destroy(&tab->lock);
    free(tab);
    return GV_ENOMEM;
  }
  randombytes_buf(key, sizeof(key));
  rc = gv_trk_fair_new(&tab->fair, cap, key, conn_evictable, NULL);
  sodium_memzero(key, sizeof(key));
  if (rc < 0) {
    conns_free(tab);
    return rc;
  }
  randombytes_buf(tab->seed_key, sizeof(tab->seed_key));
  *out = tab;
  return 0;
}

/* A fresh seed for a connection's generator. */
static void conn_seed(gv_trk_conns *tab, uint8_t seed[GV_TRK_RNG_SEED_BYTES]) {
  uint64_t n = atomic_fetch_add_explicit(&tab->seeds, 1, memory_order_relaxed);
  uint8_t in[8];

  for (int i = 0; i < 8; i++)
    in[i] = (uint8_t)(n >> (8 * i));
  crypto_generichash(seed, GV_TRK_RNG_SEED_BYTES, in, sizeof(in), tab->seed_key,
                     sizeof(tab->seed_key));
}

/* The connection's generator, seeded on first use: most connections
 * never draw (a shared peers answer, a health check, an error). */
static gv_trk_rng *conn_rng(gv_trk_ctx *t, conn_ctx *cc) {
  if (!cc->seeded) {
    uint8_t seed[GV_TRK_RNG_SEED_BYTES];
    conn_seed(t->conns, seed);
    gv_trk_rng_init(&cc->rng, seed);
    sodium_memzero(seed, sizeof(seed));
    cc->seeded = 1;
  }
  return &cc->rng;
}

/* Under the lock: shuts cc down, and it stops counting. */
static void conn_shut(gv_trk_conns *tab, conn_ctx *cc) {
  shutdown(cc->fd, SHUT_RDWR);
  gv_trk_fair_shut(tab->fair, &cc->fc);
}

/* A new connection: into the table, then the cap is enforced. 0, or
 * GV_ENOMEM (cc is then not in the table; the caller shuts it down). */
static int conns_add(gv_trk_ctx *t, conn_ctx *cc) {
  gv_trk_conns *tab = t->conns;
  gv_trk_fair_conn *victim;
  gv_trk_ipkey key;
  int rc;

  gv_trk_ipkey_of(&key, &cc->tcp);
  uv_mutex_lock(&tab->lock);
  rc = gv_trk_fair_add(tab->fair, &cc->fc, &key, &victim);
  if (rc == 0 && victim != NULL) {
    shutdown(conn_of(victim)->fd, SHUT_RDWR);
    gv_trk_count(&t->metrics.closed[GV_TRK_CLOSE_FAIR_SHARE]);
  }
  uv_mutex_unlock(&tab->lock);
  return rc;
}

/* The connection is closing: out of the table. */
static void conns_remove(gv_trk_conns *tab, conn_ctx *cc) {
  if (cc->fc.src == NULL)
    return;
  uv_mutex_lock(&tab->lock);
  gv_trk_fair_remove(tab->fair, &cc->fc);
  uv_mutex_unlock(&tab->lock);
}

typedef struct reap_ctx {
  gv_trk_ctx *t;
  uint64_t now;
} reap_ctx;

/* Under the lock: shuts c down if it is past its deadline. */
static void reap_one(gv_trk_fair_conn *fc, void *ctx) {
  reap_ctx *rc = ctx;
  conn_ctx *c = conn_of(fc);
  uint64_t due = atomic_load_explicit(&c->due, memory_order_relaxed);

  if (fc->shut || due == 0 || (due >> 2) > rc->now)
    return;
  conn_shut(rc->t->conns, c);
  gv_trk_count(&rc->t->metrics.closed[(due & 3) == DUE_HEAD
                                          ? GV_TRK_CLOSE_HEAD_DEADLINE
                                          : GV_TRK_CLOSE_BODY_DEADLINE]);
}

void gv_trk_http_reap(gv_trk_ctx *t) {
  gv_trk_conns *tab = t->conns;
  reap_ctx rc = {t, mono_ms()};

  if (tab == NULL)
    return;
  uv_mutex_lock(&tab->lock);
  gv_trk_fair_each(tab->fair, reap_one, &rc);
  uv_mutex_unlock(&tab->lock);
}

/* ---- answers ---- */

static const char *allow_of(gv_trk_route r) {
  switch (r) {
  case GV_TRK_ROUTE_REGISTER: return "POST";
  case GV_TRK_ROUTE_UNREGISTER: return "DELETE";
  default: return "GET, HEAD";
  }
}

/* A response with body (malloc'd, taken over), or NULL (body freed). */
static struct MHD_Response *response_of(const char *ctype, char *body,
                                        size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

  if (resp == NULL) {
    free(body);
    return NULL;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  return resp;
}

/* Queues resp (the caller keeps its reference), counts and logs it. */
static enum MHD_Result queue(req *r, unsigned status,
                             struct MHD_Response *resp) {
  gv_trk_ctx *t = r->t;
  enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);

  gv_trk_metrics_request(&t->metrics, r->route, status);
  if (gv_log_on(&t->log, GV_LOG_DEBUG)) {
    char addr[INET6_ADDRSTRLEN];
    inet_ntop(r->client.family == 4 ? AF_INET : AF_INET6, r->client.ip, addr,
              sizeof(addr));
    gv_logf(&t->log, GV_LOG_DEBUG, "http %s %s %u client=%s us=%llu",
            r->method_text, gv_trk_route_name(r->route), status, addr,
            (unsigned long long)((uv_hrtime() - r->t0) / 1000));
  }
  return ret;
}

/* Queues status with body (malloc'd, taken over; NULL for none). */
static enum MHD_Result respond(req *r, unsigned status, const char *ctype,
                               char *body, size_t len) {
  struct MHD_Response *resp = response_of(ctype, body, len);
  enum MHD_Result ret;

  if (resp == NULL)
    return MHD_NO;
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow_of(r->route));
  if (r->retry_after > 0) {
    char s[24];
    snprintf(s, sizeof(s), "%ld", r->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, s);
  }
  ret = queue(r, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* {"error": code, "reason": reason} as a malloc'd string. */
static char *error_json(const char *code, const char *reason, size_t *len) {
  cJSON *o = cJSON_CreateObject();
  char *s = NULL;

  if (o != NULL && cJSON_AddStringToObject(o, "error", code) != NULL &&
      cJSON_AddStringToObject(o, "reason", reason) != NULL)
    s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  *len = s ? strlen(s) : 0;
  return s;
}

static enum MHD_Result respond_error(req *r, unsigned status, const char *code,
                                     const char *reason) {
  size_t len;
  char *s = error_json(code, reason, &len);

  if (s == NULL)
    return MHD_NO;
  return respond(r, status, "application/json", s, len);
}

static enum MHD_Result respond_sbuf(req *r, sbuf *b) {
  if (b->oom) {
    free(b->p);
    return MHD_NO;
  }
  return respond(r, MHD_HTTP_OK, "application/json", b->p, b->len);
}

/* Keeps an error to send after the body (or at once for 413). */
static void set_early(req *r, unsigned status, const char *code,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_early(req *r, unsigned status, const char *code,
                      const char *fmt, ...) {
  va_list ap;

  r->early = status;
  r->early_code = code;
  va_start(ap, fmt);
  vsnprintf(r->early_reason, sizeof(r->early_reason), fmt, ap);
  va_end(ap);
}

static enum MHD_Result respond_early(req *r) {
  return respond_error(r, r->early, r->early_code, r->early_reason);
}

/* From another thread: prepares the answer and resumes the connection,
 * whose next handler call queues it. */
static void finish(req *r, unsigned status, char *body, size_t len) {
  r->status = status;
  r->resp = body;
  r->resp_len = len;
  r->ready = 1;
  MHD_resume_connection(r->conn);
}

static void finish_error(req *r, unsigned status, const char *code,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish_error(req *r, unsigned status, const char *code,
                         const char *fmt, ...) {
  char reason[GV_ADDR_TEXT_MAX + 160], *body;
  size_t len = 0;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  body = error_json(code, reason, &len);
  finish(r, status, body, len);
}

/* The status and code for a failed parse or check (docs/TRACKER.md §4). */
static enum MHD_Result respond_rc(req *r, int rc, const gv_why *why) {
  switch (rc) {
  case GV_ETOOBIG:
    return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                         why->text);
  case GV_EJSON: return respond_error(r, 400, "malformed_json", why->text);
  case GV_ELIMIT: return respond_error(r, 400, "too_many", why->text);
  default: return respond_error(r, 400, "bad_field", why->text);
  }
}

/* ---- reads ---- */

static const char *query(req *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Under the registry's read lock: the shared `peers` answer for max, if
 * it may serve one more request; it then returns with peers_lock held, and
 * the caller queues it and unlocks. NULL: none, and not locked. */
static struct MHD_Response *peers_shared(gv_trk_conns *tab, unsigned max,
                                         uint64_t gen, uint64_t now) {
  struct MHD_Response *resp = NULL;

  uv_mutex_lock(&tab->peers_lock);
  if (tab->peers != NULL && tab->peers_max == max && tab->peers_gen == gen &&
      tab->peers_uses < PEERS_SHARE_USES &&
      now - tab->peers_born_ms < PEERS_SHARE_MS) {
    tab->peers_uses++;
    /* MHD counts a response's references, and queueing is the only way
     * to take one: the lock keeps it alive until the caller has. */
    resp = tab->peers;
  }
  if (resp == NULL)
    uv_mutex_unlock(&tab->peers_lock);
  return resp;
}

/* GET peers: a random sample of the listing. Under a burst of requests an
 * answer is shared: drawn with the connection's generator, then served to
 * at most PEERS_SHARE_USES requests within PEERS_SHARE_MS, and never past
 * a change of the listing (the registry's generation). Each answer is
 * still a uniform sample that no client chose; requests close together
 * may get the same one. At a node's pace (one call per node every
 * 20 minutes) nearly every answer is drawn afresh. */
static enum MHD_Result do_peers(req *r) {
  gv_trk_ctx *t = r->t;
  gv_trk_conns *tab = t->conns;
  const gv_trk_entry *v[GV_TRK_MAX_RESULTS];
  struct MHD_Response *resp;
  enum MHD_Result ret;
  gv_trk_reg_stats st;
  gv_why why = {""};
  sbuf b = {0};
  unsigned max;
  uint64_t gen, now = mono_ms();
  size_t n;

  if (gv_trk_req_max(query(r, "max"), t->cfg.max_results, &max, &why) < 0)
    return respond_error(r, 400, "bad_query", why.text);
  if (max > t->cfg.max_results)
    max = t->cfg.max_results;
  uv_rwlock_rdlock(&t->reg_lock);
  gen = gv_trk_reg_generation(t->reg);
  if ((resp = peers_shared(tab, max, gen, now)) != NULL) {
    uv_rwlock_rdunlock(&t->reg_lock);
    ret = queue(r, MHD_HTTP_OK, resp);
    uv_mutex_unlock(&tab->peers_lock);
    return ret;
  }
  n = gv_trk_reg_sample(t->reg, conn_rng(t, r->cc), max, NULL, v);
  gv_trk_reg_get_stats(t->reg, &st);
  sb_printf(&b, "{\"total\":%zu,", st.listed);
  sb_peers(&b, v, n);
  uv_rwlock_rdunlock(&t->reg_lock);
  if (b.oom) {
    free(b.p);
    return MHD_NO;
  }
  if ((resp = response_of("application/json", b.p, b.len)) == NULL)
    return MHD_NO;
  ret = queue(r, MHD_HTTP_OK, resp);
  uv_mutex_lock(&tab->peers_lock);
  if (tab->peers != NULL)
    MHD_destroy_response(tab->peers); /* queued ones keep their reference */
  tab->peers = resp;
  tab->peers_max = max;
  tab->peers_gen = gen;
  tab->peers_uses = 1;
  tab->peers_born_ms = now;
  uv_mutex_unlock(&tab->peers_lock);
  return ret;
}

static enum MHD_Result do_discover(req *r) {
  gv_trk_ctx *t = r->t;
  const gv_trk_entry *v[GV_TRK_MAX_RESULTS];
  char names[GV_TRK_MAX_QUERY_REPOS][GV_REPO_MAX + 1];
  gv_why why = {""};
  sbuf b = {0};
  unsigned max;
  size_t n, k;

  if (gv_trk_req_repos(query(r, "repos"), names, &k, &why) < 0 ||
      gv_trk_req_max(query(r, "max"), t->cfg.max_results, &max, &why) < 0)
    return respond_error(r, 400, "bad_query", why.text);
  if (max > t->cfg.max_results)
    max = t->cfg.max_results;
  uv_rwlock_rdlock(&t->reg_lock);
  n = gv_trk_reg_discover(t->reg, conn_rng(t, r->cc),
                          (const char(*)[GV_REPO_MAX + 1]) names, k, max, v);
  sb_add(&b, "{", 1);
  sb_peers(&b, v, n);
  uv_rwlock_rdunlock(&t->reg_lock);
  return respond_sbuf(r, &b);
}

static void gauges(gv_trk_ctx *t, gv_trk_gauges *g, gv_trk_reg_stats *st,
                   gv_trk_store_stats *ss) {
  uv_rwlock_rdlock(&t->reg_lock);
  gv_trk_reg_get_stats(t->reg, st);
  g->taken_back = gv_trk_reg_taken_back(t->reg);
  uv_rwlock_rdunlock(&t->reg_lock);
  gv_trk_store_get_stats(t->store, ss);
  g->listed = st->listed;
  g->verifying = st->verifying;
  g->dialing = gv_trk_dialer_active(t->dialer);
  uv_mutex_lock(&t->replay_lock);
  g->replay_pairs = gv_trk_replay_count(t->replay);
  g->replay_evictions = gv_trk_replay_evictions(t->replay);
  uv_mutex_unlock(&t->replay_lock);
  g->replay_cap = t->cfg.replay_cap;
  g->store_commits = ss->commits;
  g->store_errors = ss->errors;
  g->uptime_s = (gv_trk_now(t) - t->start_ms) / 1000;
}

static enum MHD_Result do_health(req *r) {
  gv_trk_ctx *t = r->t;
  gv_trk_reg_stats st;
  gv_trk_store_stats ss;
  gv_trk_gauges g;
  cJSON *o = cJSON_CreateObject(), *store;
  char *s = NULL;

  gauges(t, &g, &st, &ss);
  if (o != NULL &&
      cJSON_AddStringToObject(o, "status", ss.ok ? "ok" : "degraded") &&
      cJSON_AddStringToObject(o, "version", GV_TRK_VERSION) &&
      cJSON_AddNumberToObject(o, "uptime_s", (double)g.uptime_s) &&
      cJSON_AddNumberToObject(o, "listed", (double)st.listed) &&
      cJSON_AddNumberToObject(o, "verifying", (double)st.verifying) &&
      cJSON_AddNumberToObject(o, "ips", (double)st.ips) &&
      cJSON_AddNumberToObject(o, "repos", (double)st.repos) &&
      cJSON_AddNumberToObject(o, "dialing", (double)g.dialing) &&
      (store = cJSON_AddObjectToObject(o, "store")) != NULL &&
      cJSON_AddStringToObject(store, "path", gv_trk_store_path(t->store)) &&
      cJSON_AddStringToObject(store, "journal", "wal") &&
      cJSON_AddBoolToObject(store, "ok", ss.ok) &&
      cJSON_AddNumberToObject(store, "queue", (double)ss.queue) &&
      cJSON_AddNumberToObject(store, "commits", (double)ss.commits) &&
      cJSON_AddNumberToObject(store, "errors", (double)ss.errors) &&
      cJSON_AddStringToObject(store, "last_error", ss.last_error))
    s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (s == NULL)
    return MHD_NO;
  return respond(r, MHD_HTTP_OK, "application/json", s, strlen(s));
}

static enum MHD_Result do_metrics(req *r) {
  gv_trk_ctx *t = r->t;
  gv_trk_reg_stats st;
  gv_trk_store_stats ss;
  gv_trk_gauges g;
  char *s;
  size_t len;

  gauges(t, &g, &st, &ss);
  if (gv_trk_metrics_render(&t->metrics, &g, &s, &len) < 0)
    return MHD_NO;
  return respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", s,
                 len);
}

/* ---- signed requests ---- */

/* The answer to a refusal by the replay rules. */
static enum MHD_Result respond_replay(req *r, int rc, const gv_why *why) {
  gv_trk_count(&r->t->metrics.replays);
  if (rc == -EAGAIN || rc == GV_ENOMEM)
    return respond_error(r, 503, "overloaded", why->text);
  return respond_error(r, 409,
                       rc == GV_EDUP      ? "replay"
                       : rc == GV_EFUTURE ? "future"
                                          : "stale",
                       why->text);
}

/* Signature, then the replay rules without recording the nonce (a
 * request refused later must not take room in the cache). 0, or an
 * answer was queued. */
static int check_signed(req *r, const gv_trk_signed *s, enum MHD_Result *ret) {
  gv_trk_ctx *t = r->t;
  const char *sig =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, GV_TRK_SIG_HEADER);
  const char *path = r->route == GV_TRK_ROUTE_REGISTER ? GV_TRK_PATH_REGISTER
                                                       : GV_TRK_PATH_UNREGISTER;
  gv_why why = {""};
  int rc;

  rc = gv_trk_req_verify(r->method_text, path, r->body, r->len, sig, s->id,
                         &why);
  if (rc < 0) {
    *ret = respond_error(
        r, 401, rc == GV_EBADSIG ? "bad_signature" : "missing_signature",
        why.text);
    return rc;
  }
  uv_mutex_lock(&t->replay_lock);
  rc = gv_trk_replay_peek(t->replay, s->id, s->nonce, s->ts, gv_trk_now(t),
                          &why);
  uv_mutex_unlock(&t->replay_lock);
  if (rc < 0)
    *ret = respond_replay(r, rc, &why);
  return rc;
}

/* Records the nonce of a request that passed every other check, charged
 * to its source; the caller holds reg_lock (lock order: reg_lock, then
 * replay_lock), so that the registry change and the nonce are one step,
 * and undoes its change if this fails (GV_EDUP: the same request won a
 * race; -EAGAIN: this source is the heaviest in a full cache). */
static int commit_nonce(req *r, const gv_trk_signed *s, gv_why *why) {
  gv_trk_ctx *t = r->t;
  gv_trk_ipkey src;
  int rc;

  gv_trk_ipkey_of(&src, &r->client);
  uv_mutex_lock(&t->replay_lock);
  rc = gv_trk_replay_check(t->replay, &src, s->id, s->nonce, s->ts,
                           gv_trk_now(t), why);
  uv_mutex_unlock(&t->replay_lock);
  return rc;
}

static void begin_async(req *r) {
  r->async = 1;
  atomic_fetch_add(&r->t->async_reqs, 1);
  MHD_suspend_connection(r->conn);
}

/* The end of a verification: answers its request, or, in the background,
 * frees p (nobody is waiting; the outcome is only logged). */
static void verify_end(pending *p, unsigned status, char *body, size_t len) {
  if (p->r != NULL) {
    finish(p->r, status, body, len);
    return;
  }
  free(body);
  free(p);
}

static void verify_fail(pending *p, unsigned status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verify_fail(pending *p, unsigned status, const char *code,
                        const char *fmt, ...) {
  char reason[GV_ADDR_TEXT_MAX + 160], *body;
  size_t len = 0;
  va_list ap;

  if (p->r == NULL) {
    free(p);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  body = error_json(code, reason, &len);
  finish(p->r, status, body, len);
}

/* Writer thread: the registration is committed; list it and answer. */
static void on_stored(void *ctx, int status) {
  pending *p = ctx;
  gv_trk_ctx *t = p->t;
  const gv_trk_entry *v[GV_TRK_MAX_RESULTS];
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX], sid[GV_ID_SHORT_LEN + 1];
  sbuf b = {0};
  int64_t now, expires;
  size_t n = 0;
  int rc;

  gv_addr_format(&p->rec.addr, addr);
  gv_id_to_short(p->rec.id, sid);
  if (status < 0) {
    uv_rwlock_wrlock(&t->reg_lock);
    gv_trk_reg_abort(t->reg, p->rec.id, 1);
    uv_rwlock_wrunlock(&t->reg_lock);
    gv_logf(&t->log, GV_LOG_WARN, "store failed id=%s: %s", sid,
            gv_strerror(status));
    verify_fail(p, 503, "store_error", "the registration could not be stored");
    return;
  }
  uv_rwlock_wrlock(&t->reg_lock);
  now = gv_trk_now(t);
  expires = p->expires_ms > now ? p->expires_ms : now + GV_TRK_TTL_MS;
  rc = gv_trk_reg_commit(t->reg, &p->rec, expires, now);
  if (rc < 0) {
    gv_trk_reg_abort(t->reg, p->rec.id, 1);
    uv_rwlock_wrunlock(&t->reg_lock);
    /* A new id is then not stored either; a renewal keeps its old listing
     * and its row holds the newer, verified content. */
    if (!p->renewal)
      gv_trk_store_del(t->store, p->rec.id, NULL, NULL);
    verify_fail(p, 503, "overloaded", "out of memory");
    return;
  }
  gv_id_to_hex(p->rec.id, hex);
  if (p->r != NULL) {
    sb_printf(&b,
              "{\"status\":\"listed\",\"renewed\":%s,\"id\":\"%s\",\"addr\":"
              "\"%s\",\"expires\":%lld,",
              p->renewal ? "true" : "false", hex, addr, (long long)expires);
    n = gv_trk_reg_sample(t->reg, conn_rng(t, p->r->cc), t->cfg.max_results,
                          p->rec.id, v);
    sb_peers(&b, v, n);
  }
  uv_rwlock_wrunlock(&t->reg_lock);
  gv_trk_count(p->renewal ? &t->metrics.registered_renewed
                          : &t->metrics.registered_new);
  gv_logf(&t->log, GV_LOG_INFO,
          "registered id=%s addr=%s repos=%u caps=%u renewed=%d%s", sid, addr,
          p->rec.n_repos, p->rec.n_caps, p->renewal,
          p->r == NULL ? " (verified in the background)" : "");
  if (b.oom) {
    free(b.p);
    verify_fail(p, 503, "overloaded", "out of memory");
    return;
  }
  verify_end(p, MHD_HTTP_OK, b.p, b.len);
}

/* Loop thread: the dial-back is settled. */
static void on_dialed(void *ctx, int status) {
  pending *p = ctx;
  gv_trk_ctx *t = p->t;
  char addr[GV_ADDR_TEXT_MAX], sid[GV_ID_SHORT_LEN + 1];
  gv_trk_row row;
  int rc;

  gv_trk_count(&t->metrics.dial[gv_trk_dial_result_of(status)]);
  gv_addr_format(&p->rec.addr, addr);
  gv_id_to_short(p->rec.id, sid);
  if (status == UV_ECANCELED) {
    uv_rwlock_wrlock(&t->reg_lock);
    gv_trk_reg_abort(t->reg, p->rec.id, 1);
    uv_rwlock_wrunlock(&t->reg_lock);
    verify_fail(p, 503, "shutting_down", "the tracker is shutting down");
    return;
  }
  if (status < 0) {
    uv_rwlock_wrlock(&t->reg_lock);
    rc = gv_trk_reg_abort(t->reg, p->rec.id, 0);
    uv_rwlock_wrunlock(&t->reg_lock);
    if (rc == 1)
      gv_trk_store_del(t->store, p->rec.id, NULL, NULL);
    gv_logf(&t->log, GV_LOG_INFO, "dial-back failed id=%s addr=%s: %s%s", sid,
            addr, gv_strerror(status), rc == 1 ? " (delisted)" : "");
    verify_fail(p, 422, "dialback_failed", "dial-back to %s failed: %s", addr,
                gv_strerror(status));
    return;
  }
  memset(&row, 0, sizeof(row));
  row.rec = p->rec;
  row.registered_ms = gv_trk_now(t);
  row.expires_ms = p->expires_ms = row.registered_ms + GV_TRK_TTL_MS;
  if ((rc = gv_trk_store_put(t->store, &row, on_stored, p)) < 0) {
    uv_rwlock_wrlock(&t->reg_lock);
    gv_trk_reg_abort(t->reg, p->rec.id, 1);
    uv_rwlock_wrunlock(&t->reg_lock);
    verify_fail(p, 503, "shutting_down", "the tracker is shutting down");
  }
}

int gv_trk_http_take_back(void *ctx, const uint8_t id[GV_ID_BYTES],
                          const gv_addr *addr) {
  gv_trk_ctx *t = ctx;
  void *p = NULL;

  assert(t->taken_back == NULL); /* one per begin: it needs one slot */
  if (gv_trk_dialer_cancel(t->dialer, addr, id, &p) < 0)
    return 0;
  t->taken_back = p;
  return 1;
}

/* The register whose dial-back a full pool took back for another
 * address's (gv_trk_http_take_back): answered 503 if it still waits, else
 * only logged. Called without locks. */
static void taken_back(gv_trk_ctx *t, pending *p) {
  char addr[GV_ADDR_TEXT_MAX], sid[GV_ID_SHORT_LEN + 1];

  gv_addr_format(&p->rec.addr, addr);
  gv_id_to_short(p->rec.id, sid);
  gv_logf(&t->log, GV_LOG_INFO,
          "verification taken back id=%s addr=%s: the pool is full and this "
          "address holds the most",
          sid, addr);
  verify_fail(p, 503, "overloaded",
              "the verification pool is full and %s has the most "
              "registrations being verified; register again later",
              addr);
}

/* 202: {"status":"verifying","id":...,"addr":...}, for a registration
 * whose dial-back runs in the background (or already runs). */
static enum MHD_Result respond_verifying(req *r, const uint8_t id[GV_ID_BYTES],
                                         const gv_addr *a) {
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX];
  sbuf b = {0};

  gv_id_to_hex(id, hex);
  gv_addr_format(a, addr);
  sb_printf(&b,
            "{\"status\":\"verifying\",\"id\":\"%s\",\"addr\":\"%s\","
            "\"reason\":\"the dial-back runs in the background; the node is "
            "listed once it passes\"}",
            hex, addr);
  if (b.oom) {
    free(b.p);
    return MHD_NO;
  }
  return respond(r, MHD_HTTP_ACCEPTED, "application/json", b.p, b.len);
}

/* Register (docs/TRACKER.md §3.4): the signature and replay rules, then
 * the registry; the nonce is admitted before the registry changes and
 * recorded after, in one step under reg_lock and replay_lock
 * (gv_trk_replay_register), so a request the cache refuses changes
 * nothing.
 * When the dialer has a free slot the request waits for its dial-back
 * (200 listed, or 422); otherwise it is answered 202 at once and the
 * dial-back runs in the background, so no one's black holes can hold a
 * genuine node past its client's timeout. A repeated register of an id
 * being verified is answered 202 with the address under test if it is the
 * same, 409 verifying_other_address if not. */
static enum MHD_Result do_register(req *r) {
  gv_trk_ctx *t = r->t;
  gv_trk_signed s;
  gv_why why = {""}, nwhy = {""};
  enum MHD_Result ret;
  gv_addr inflight;
  char abuf[GV_ADDR_TEXT_MAX];
  pending *p, *victim;
  int rc, nrc;

  if (atomic_load(&t->stopping))
    return respond_error(r, 503, "shutting_down",
                         "the tracker is shutting down");
  if ((p = r->p = calloc(1, sizeof(*p))) == NULL)
    return MHD_NO;
  p->t = t;
  if ((rc = gv_trk_req_register(r->body, r->len, &s, &p->rec, &why)) < 0)
    return respond_rc(r, rc, &why);
  if (check_signed(r, &s, &ret) < 0)
    return ret;
  /* The address is the request's source, never anything in the body. */
  p->rec.addr.family = r->client.family;
  memcpy(p->rec.addr.ip, r->client.ip, sizeof(p->rec.addr.ip));
  /* The nonce is admitted before begin, so that a request the cache
   * refuses takes no one's verification back, and recorded after it. */
  uv_rwlock_wrlock(&t->reg_lock);
  uv_mutex_lock(&t->replay_lock);
  rc = gv_trk_replay_register(t->replay, t->reg, &p->rec, s.nonce, s.ts,
                              gv_trk_now(t), &nrc, &why, &nwhy);
  uv_mutex_unlock(&t->replay_lock);
  if (nrc == 0 && rc == GV_EBUSY) {
    /* Already being verified: only the first request's address is tested
     * (begin said so under this lock, so the address is there). */
    int vrc = gv_trk_reg_verifying_addr(t->reg, p->rec.id, &inflight);
    assert(vrc == 0);
    (void)vrc;
  }
  victim = t->taken_back;
  t->taken_back = NULL;
  uv_rwlock_wrunlock(&t->reg_lock);
  if (victim != NULL)
    taken_back(t, victim);
  if (nrc < 0)
    return respond_replay(r, nrc, &nwhy);
  switch (rc) {
  case GV_ELIMIT: return respond_error(r, 403, "ip_limit", why.text);
  case GV_EBUSY: /* being verified: the first request's address */
    if (gv_addr_equal(&inflight, &p->rec.addr))
      return respond_verifying(r, p->rec.id, &inflight);
    gv_addr_format(&inflight, abuf);
    snprintf(why.text, sizeof(why.text),
             "a registration of this id from %s is being verified; register "
             "again once it settles",
             abuf);
    return respond_error(r, MHD_HTTP_CONFLICT, "verifying_other_address",
                         why.text);
  case -EBUSY:
    r->retry_after = (long)((t->cfg.dial_timeout_ms + 999) / 1000);
    return respond_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "verifying_limit",
                         why.text);
  case -EAGAIN:
  case GV_ENOMEM: return respond_error(r, 503, "overloaded", why.text);
  default: break;
  }
  p->renewal = rc == 1;
  if (gv_trk_dialer_free_slots(t->dialer) == 0) {
    /* Busy dialer: in the background, the request answered now. p is the
     * callbacks' from here on and may be freed at any time: the answer is
     * made from copies. */
    uint8_t id[GV_ID_BYTES];
    gv_addr addr = p->rec.addr;
    memcpy(id, p->rec.id, GV_ID_BYTES);
    r->p = NULL;
    if ((rc = gv_trk_dial(t->dialer, &p->rec.addr, p->rec.id, on_dialed, p)) <
        0) {
      uv_rwlock_wrlock(&t->reg_lock);
      gv_trk_reg_abort(t->reg, p->rec.id, 1);
      uv_rwlock_wrunlock(&t->reg_lock);
      r->p = p; /* freed with the request */
      return respond_error(r, 503,
                           rc == GV_ESTATE ? "shutting_down" : "overloaded",
                           rc == GV_ESTATE ? "the tracker is shutting down"
                                           : "too many dial-backs queued");
    }
    return respond_verifying(r, id, &addr);
  }
  p->r = r;
  /* Suspend first: the dial-back may finish before gv_trk_dial returns. */
  begin_async(r);
  if ((rc = gv_trk_dial(t->dialer, &p->rec.addr, p->rec.id, on_dialed, p)) <
      0) {
    uv_rwlock_wrlock(&t->reg_lock);
    gv_trk_reg_abort(t->reg, p->rec.id, 1);
    uv_rwlock_wrunlock(&t->reg_lock);
    finish_error(r, 503, rc == GV_ESTATE ? "shutting_down" : "overloaded", "%s",
                 rc == GV_ESTATE ? "the tracker is shutting down"
                                 : "too many dial-backs queued");
  }
  return MHD_YES;
}

/* Writer thread: the delete is committed. */
static void on_deleted(void *ctx, int status) {
  req *r = ctx;
  gv_trk_ctx *t = r->t;
  char hex[GV_ID_HEX_LEN + 1];
  sbuf b = {0};

  if (status < 0) {
    finish_error(r, 503, "store_error", "the removal could not be stored");
    return;
  }
  gv_id_to_hex(r->p->rec.id, hex);
  gv_trk_count(&t->metrics.unregistered);
  gv_logf(&t->log, GV_LOG_INFO, "unregistered id=%.12s", hex);
  sb_printf(&b, "{\"status\":\"unregistered\",\"id\":\"%s\"}", hex);
  if (b.oom) {
    free(b.p);
    finish_error(r, 503, "overloaded", "out of memory");
    return;
  }
  finish(r, MHD_HTTP_OK, b.p, b.len);
}

static enum MHD_Result do_unregister(req *r) {
  gv_trk_ctx *t = r->t;
  gv_trk_signed s;
  gv_why why = {""};
  enum MHD_Result ret;
  int rc, nrc = 0;

  if (atomic_load(&t->stopping))
    return respond_error(r, 503, "shutting_down",
                         "the tracker is shutting down");
  if ((r->p = calloc(1, sizeof(*r->p))) == NULL)
    return MHD_NO;
  if ((rc = gv_trk_req_unregister(r->body, r->len, &s, &why)) < 0)
    return respond_rc(r, rc, &why);
  if (check_signed(r, &s, &ret) < 0)
    return ret;
  memcpy(r->p->rec.id, s.id, GV_ID_BYTES);
  /* The nonce is recorded only for an unregister that happens. */
  uv_rwlock_wrlock(&t->reg_lock);
  rc = gv_trk_reg_may_unregister(t->reg, s.id);
  if (rc == 0 && (nrc = commit_nonce(r, &s, &why)) == 0)
    gv_trk_reg_unregister(t->reg, s.id);
  uv_rwlock_wrunlock(&t->reg_lock);
  if (nrc < 0)
    return respond_replay(r, nrc, &why);
  if (rc == -ENOENT)
    return respond_error(r, 404, "not_registered", "this id is not registered");
  if (rc < 0)
    return respond_error(r, 409, "busy",
                         "a registration for this id is being verified");
  /* Gone from the listing; answered once the row is deleted. */
  begin_async(r);
  if (gv_trk_store_del(t->store, s.id, on_deleted, r) < 0)
    finish_error(r, 503, "shutting_down", "the tracker is shutting down");
  return MHD_YES;
}

/* ---- the handler ---- */

static gv_trk_route route_of(const char *url) {
  static const struct {
    const char *path;
    gv_trk_route route;
  } routes[] = {
      {GV_TRK_PATH_PEERS, GV_TRK_ROUTE_PEERS},
      {GV_TRK_PATH_DISCOVER, GV_TRK_ROUTE_DISCOVER},
      {GV_TRK_PATH_REGISTER, GV_TRK_ROUTE_REGISTER},
      {GV_TRK_PATH_UNREGISTER, GV_TRK_ROUTE_UNREGISTER},
      {"/health", GV_TRK_ROUTE_HEALTH},
      {"/metrics", GV_TRK_ROUTE_METRICS},
  };

  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
    if (strcmp(url, routes[i].path) == 0)
      return routes[i].route;
  return GV_TRK_ROUTE_OTHER;
}

static enum method method_of(const char *m) {
  if (strcmp(m, MHD_HTTP_METHOD_GET) == 0)
    return M_GET;
  if (strcmp(m, MHD_HTTP_METHOD_HEAD) == 0)
    return M_HEAD;
  if (strcmp(m, MHD_HTTP_METHOD_POST) == 0)
    return M_POST;
  if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0)
    return M_DELETE;
  return M_OTHER;
}

static int method_allowed(gv_trk_route route, enum method m) {
  switch (route) {
  case GV_TRK_ROUTE_REGISTER: return m == M_POST;
  case GV_TRK_ROUTE_UNREGISTER: return m == M_DELETE;
  default: return m == M_GET || m == M_HEAD;
  }
}

/* Copies what a client sent into a reason: printable ASCII, truncated. */
static void printable(char *out, size_t cap, const char *in) {
  size_t i = 0;

  for (; in[i] != '\0' && i + 1 < cap; i++)
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
  out[i] = '\0';
}

/* One field of the head for gv_trk_req_head_field; stops the listing at
 * the first refused one. */
typedef struct head_check {
  gv_trk_head head;
  gv_trk_field_kind kind;
  int rc;
  gv_why why;
} head_check;

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind,
                                const char *key, size_t key_len,
                                const char *val, size_t val_len) {
  head_check *hc = cls;

  (void)kind;
  hc->rc = gv_trk_req_head_field(&hc->head, hc->kind, key, key_len, val,
                                 val_len, &hc->why);
  return hc->rc < 0 ? MHD_NO : MHD_YES;
}

/* libmicrohttpd's own decoding of the path and of each query key and
 * value, except that a %00 is noted: its handler would see the path cut
 * short at the NUL ("/health%00.json" served as /health). */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  size_t n = MHD_http_unescape(s);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

  (void)cls;
  if (strlen(s) != n && ci != NULL && ci->socket_context != NULL)
    ((conn_ctx *)ci->socket_context)->nul_uri = 1;
  return n;
}

/* The whole head, strictly: 0, or an early 400 was set. A %00 the URI
 * decoded (nul_uri) is a query's, refused by name below, or the path's. */
static int check_head(req *r) {
  head_check hc = {.kind = GV_TRK_FIELD_HEADER};

  MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, on_field, &hc);
  if (hc.rc < 0) {
    set_early(r, 400, "bad_header", "%s", hc.why.text);
    return hc.rc;
  }
  hc.kind = GV_TRK_FIELD_QUERY;
  MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, on_field, &hc);
  if (hc.rc < 0) {
    set_early(r, 400, "bad_query", "%s", hc.why.text);
    return hc.rc;
  }
  if (r->cc->nul_uri) {
    set_early(r, 400, "bad_path", "the path holds a NUL byte (%%00)");
    return GV_EFIELD;
  }
  return 0;
}

/* Call 1: everything that can be decided from the headers. */
static void on_headers(req *r, const char *url) {
  gv_trk_ctx *t = r->t;
  const char *cl;

  r->client = r->cc->tcp;
  if (t->cfg.trust_proxy) {
    const char *xff = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  "X-Forwarded-For");
    gv_addr a;
    if (xff != NULL && addr_of_forwarded(&a, xff) == 0)
      r->client = a;
  }
  if (t->buckets != NULL) {
    gv_trk_ipkey key;
    int64_t retry_ms = 0;
    int rc;
    gv_trk_ipkey_of(&key, &r->client);
    uv_mutex_lock(&t->bucket_lock);
    rc = gv_trk_buckets_take(t->buckets, &key, gv_trk_now(t), &retry_ms);
    uv_mutex_unlock(&t->bucket_lock);
    if (rc < 0) {
      gv_trk_count(&t->metrics.ratelimited);
      r->retry_after = (long)((retry_ms + 999) / 1000);
      set_early(r, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                "more than %u requests per second", t->cfg.rate);
      return;
    }
  }
  if (check_head(r) < 0)
    return;
  if (r->route == GV_TRK_ROUTE_OTHER) {
    char path[101];
    printable(path, sizeof(path), url);
    set_early(r, MHD_HTTP_NOT_FOUND, "not_found", "no such path: %s", path);
    return;
  }
  if (!method_allowed(r->route, r->method)) {
    char m[21];
    printable(m, sizeof(m), r->method_text);
    set_early(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
              "%s is not allowed here; use %s", m, allow_of(r->route));
    return;
  }
  cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                   MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl != NULL && strtoull(cl, NULL, 10) > GV_TRK_BODY_MAX)
    set_early(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
              "body over %u bytes", GV_TRK_BODY_MAX);
}

/* An early error with a body still to come is sent once the body has
 * been read and dropped, so that the connection stays usable and the
 * client reads the answer (closing with unread bytes would reset it).
 * Past DISCARD_MAX bytes, the answer goes at once and the connection
 * closes. */
#define DISCARD_MAX (4 * GV_TRK_BODY_MAX)

/* An announced body too large even to drop: answered at the first call,
 * the one exception to the two-phase rule, since this connection is to
 * close anyway (a client sending "Expect: 100-continue" then never sends
 * the body). */
static int hopeless(req *r) {
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  return r->early != 0 && cl != NULL && strtoull(cl, NULL, 10) > DISCARD_MAX;
}

/* Calls 2..n: a piece of the body. */
static enum MHD_Result on_body(req *r, const char *data, size_t n) {
  int wanted =
      r->route == GV_TRK_ROUTE_REGISTER || r->route == GV_TRK_ROUTE_UNREGISTER;

  if (!r->early && wanted && n > GV_TRK_BODY_MAX - r->len)
    set_early(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
              "body over %u bytes", GV_TRK_BODY_MAX);
  if (r->early || !wanted) {
    r->discarded += n;
    if (r->discarded <= DISCARD_MAX)
      return MHD_YES;
    if (!r->early)
      set_early(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                "body over %u bytes", GV_TRK_BODY_MAX);
    r->cc->unread = 1;
    return respond_early(r);
  }
  if (r->len + n > r->cap) {
    size_t ncap = r->cap ? r->cap : 1024;
    uint8_t *nb;
    while (ncap < r->len + n)
      ncap *= 2;
    if ((nb = realloc(r->body, ncap)) == NULL)
      return MHD_NO;
    r->body = nb;
    r->cap = ncap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
  gv_trk_ctx *t = cls;
  req *r = *req_cls;

  (void)version;
  if (r == NULL) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_ctx *cc = ci ? ci->socket_context : NULL;
    if (cc == NULL)
      return MHD_NO;
    r = &cc->r;
    memset(r, 0, sizeof(*r));
    r->t = t;
    r->cc = cc;
    r->conn = conn;
    r->t0 = uv_hrtime();
    r->route = route_of(url);
    r->method = method_of(method);
    r->method_text = method;
    set_due(cc, DUE_BODY, t->cfg.body_timeout_s);
    on_headers(r, url);
    cc->nul_uri = 0;
    *req_cls = r;
    if (hopeless(r)) {
      set_due(cc, DUE_NONE, 0);
      cc->unread = 1;
      return respond_early(r);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    *upload_size = 0;
    return on_body(r, upload, n);
  }
  set_due(r->cc, DUE_NONE, 0); /* the request is whole: answering */
  if (r->ready) {
    char *body = r->resp;
    r->resp = NULL;
    r->ready = 0;
    return respond(r, r->status, "application/json", body, r->resp_len);
  }
  if (r->early)
    return respond_early(r);
  switch (r->route) {
  case GV_TRK_ROUTE_PEERS: return do_peers(r);
  case GV_TRK_ROUTE_DISCOVER: return do_discover(r);
  case GV_TRK_ROUTE_HEALTH: return do_health(r);
  case GV_TRK_ROUTE_METRICS: return do_metrics(r);
  case GV_TRK_ROUTE_REGISTER: return do_register(r);
  case GV_TRK_ROUTE_UNREGISTER: return do_unregister(r);
  default: return MHD_NO; /* on_headers answered every other route */
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  gv_trk_ctx *t = cls;
  req *r = *req_cls;

  (void)conn;
  (void)toe;
  if (r == NULL)
    return;
  free(r->body);
  free(r->resp);
  free(r->p);
  r->body = NULL;
  r->resp = NULL;
  r->p = NULL;
  if (r->async)
    atomic_fetch_sub(&t->async_reqs, 1);
  r->async = 0;
  /* A keep-alive connection's next head is due from now. */
  set_due(r->cc, DUE_HEAD, t->cfg.header_timeout_s);
  *req_cls = NULL;
}

/* A connection closing with a body unread: libmicrohttpd (MHD_USE_TURBO)
 * closes without shutting down first, and closing with unread bytes makes
 * the kernel reset the connection, which can destroy the answer before
 * the client reads it. So: FIN after the answer, and the bytes already
 * here read and dropped (at most DISCARD_MAX). */
static void drain_unread(int fd) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;

  shutdown(fd, SHUT_WR);
  while (total < DISCARD_MAX &&
         (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
    total += (size_t)n;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  gv_trk_ctx *t = cls;
  conn_ctx *cc;

  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fi == NULL || (cc = calloc(1, sizeof(*cc))) == NULL)
      return; /* no context: the handler refuses the request */
    gv_addr_from_sockaddr(&cc->tcp, ci ? ci->client_addr : NULL);
    cc->tcp.port = 0; /* a source port means nothing to the registry */
    cc->fd = fi->connect_fd;
    set_due(cc, DUE_HEAD, t->cfg.header_timeout_s);
    if (conns_add(t, cc) < 0)
      shutdown(cc->fd, SHUT_RDWR);
    *socket_context = cc;
    return;
  }
  if ((cc = *socket_context) != NULL) {
    conns_remove(t->conns, cc);
    if (cc->unread)
      drain_unread(cc->fd);
    if (cc->seeded)
      gv_trk_rng_wipe(&cc->rng);
    free(cc);
    *socket_context = NULL;
  }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  gv_trk_ctx *t = cls;
  char line[256];
  size_t n;

  vsnprintf(line, sizeof(line), fmt, ap);
  n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  gv_logf(&t->log, GV_LOG_WARN, "http: %s", line);
}

int gv_trk_http_start(gv_trk_ctx *t, gv_why *why) {
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
  int rc;

  if ((rc = conns_new(&t->conns, t->cfg.max_conns)) < 0)
    return gv_fail(why, rc, "cannot start the HTTP server: %s",
                   gv_strerror(rc));
  t->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, t,
      /* First, so that every message of MHD's goes to our log. */
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, t, MHD_OPTION_LISTEN_SOCKET,
      t->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)t->cfg.threads,
      MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(t->cfg.max_conns + HEADROOM(t->cfg.max_conns)),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)t->cfg.max_conns_per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)t->cfg.conn_timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, t,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, t,
      MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, t, MHD_OPTION_END);
  if (t->mhd == NULL) {
    conns_free(t->conns);
    t->conns = NULL;
    return gv_fail(why, GV_EINVAL, "cannot start the HTTP server on %s",
                   t->listen_text);
  }
  return 0;
}

void gv_trk_http_quiesce(gv_trk_ctx *t) {
  if (t->mhd != NULL)
    MHD_quiesce_daemon(t->mhd);
}

void gv_trk_http_stop(gv_trk_ctx *t) {
  if (t->mhd != NULL)
    MHD_stop_daemon(t->mhd); /* every connection's CLOSED comes first */
  t->mhd = NULL;
  conns_free(t->conns);
  t->conns = NULL;
}

/* The node's client of the bootstrap tracker (docs/TRACKER.md): register,
 * renew, unregister, and fetch peers or the holders of repositories, over
 * HTTP with libcurl.
 *
 * Calls block (each is bounded by the timeouts in gv_trkc_opts); the daemon
 * runs them on a worker thread. Responses are bounded (GV_TRKC_RESPONSE_MAX)
 * and validated: a peer entry that does not validate is skipped.
 *
 * Lifetime: gv_trkc_new() allocates a client holding one libcurl handle,
 * reused across calls (keep-alive); gv_trkc_free() frees it. A client is
 * used by one thread at a time. The process must call
 * curl_global_init(CURL_GLOBAL_DEFAULT) before creating clients on several
 * threads. Identities passed in are borrowed for the call only.
 *
 * Errors: 0 when the tracker answered 2xx (for register, 202 means
 * accepted and still verifying: res->verifying). Otherwise, with res->reason
 * saying why (and res->http, res->error set when the tracker answered):
 *   -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EIO   transport failures
 *   GV_ETOOBIG    the response exceeded GV_TRKC_RESPONSE_MAX
 *   -EPROTO       the response is not what docs/TRACKER.md §3 says
 *   GV_EFIELD     a bad argument (checked before sending), or 400
 *                 bad_field / bad_query; GV_EJSON 400 malformed_json
 *   GV_EBADSIG    401;   GV_ELIMIT 400 too_many or 403 ip_limit
 *   -ENOENT       404 (not_found, not_registered);  GV_ETOOBIG 413
 *   GV_EDUP       409 replay; GV_ESTALE / GV_EFUTURE 409 clock; GV_EBUSY
 *                 409 busy
 *   GV_EHANDSHAKE 422: the tracker's dial-back did not reach this node
 *   -EAGAIN       429 or any 5xx: retry after res->retry_after_s (0:
 *                 unknown)
 */
#ifndef GV_TRKCLIENT_H
#define GV_TRKCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "identity.h"
#include "msg.h"

#define GV_TRKC_RESPONSE_MAX (1024u * 1024u)
#define GV_TRKC_MAX_CAPS 16
#define GV_TRKC_CAP_MAX 32

typedef struct gv_trkc gv_trkc;

typedef struct gv_trkc_opts {
  long timeout_ms;         /* whole request; 0: 15000 (above a dial-back) */
  long connect_timeout_ms; /* 0: 5000 */
} gv_trkc_opts;

/* One bootstrap node as the tracker lists it. */
typedef struct gv_trkc_peer {
  uint8_t id[GV_ID_BYTES];
  gv_addr addr;
  int64_t expires_ms;
  size_t n_repos, n_caps;
  char **repos; /* owned by the list */
  char **caps;
} gv_trkc_peer;

typedef struct gv_trkc_peers {
  size_t n;
  gv_trkc_peer *v;
  size_t total;   /* peers: how many the tracker lists; else 0 */
  size_t skipped; /* entries that did not validate */
} gv_trkc_peers;

/* What a registration announces. */
typedef struct gv_trkc_reg {
  uint16_t port; /* the port this node accepts links on */
  size_t n_repos;
  const char *const *repos;
  size_t n_caps;
  const char *const *caps;
} gv_trkc_reg;

/* The outcome of a call, success or not. */
typedef struct gv_trkc_result {
  long http;          /* HTTP status, 0 if there was no answer */
  char error[32];     /* the tracker's error code, "" on success */
  char reason[192];   /* the tracker's reason, or a local one */
  long retry_after_s; /* from Retry-After, else 0 */
  /* register only: */
  int renewed;
  int verifying;      /* 202: listed only once the tracker's dial-back passes */
  gv_addr addr;       /* the address the tracker lists (or will) */
  int64_t expires_ms; /* 0 while verifying */
} gv_trkc_result;

/* base_url: "http://host:port" (a trailing slash is ignored). opts may be
 * NULL. 0, GV_ENOMEM or GV_EINVAL. */
int gv_trkc_new(gv_trkc **out, const char *base_url, const gv_trkc_opts *opts);
void gv_trkc_free(gv_trkc *c);

/* Registers (or renews) id, signed at now_ms. On success res has the
 * address and expiry, and peers (may be NULL) a sample of other bootstrap
 * nodes (free with gv_trkc_peers_free()); or, when the tracker answered
 * 202, res->verifying set, the address, and no expiry or peers: the
 * caller registers again soon to learn the outcome. */
int gv_trkc_register(gv_trkc *c, const gv_identity *id, const gv_trkc_reg *reg,
                     int64_t now_ms, gv_trkc_result *res, gv_trkc_peers *peers);

int gv_trkc_unregister(gv_trkc *c, const gv_identity *id, int64_t now_ms,
                       gv_trkc_result *res);

/* GET /api/bootstrap/peers; max 0 means the tracker's default. */
int gv_trkc_peers_get(gv_trkc *c, unsigned max, gv_trkc_result *res,
                      gv_trkc_peers *out);

/* GET /api/bootstrap/discover for 1..16 repository names. */
int gv_trkc_discover(gv_trkc *c, const char *const *repos, size_t n,
                     unsigned max, gv_trkc_result *res, gv_trkc_peers *out);

void gv_trkc_peers_free(gv_trkc_peers *p);

/* The X-Grapevine-Sig value for a request (docs/TRACKER.md §2.2). */
void gv_trkc_sign(const gv_identity *id, const char *method, const char *path,
                  const uint8_t *body, size_t len,
                  char sig_hex[2 * GV_SIG_BYTES + 1]);

/* A register body, as gv_trkc_register() sends it; *out is malloc'd. For
 * tools and tests. 0, GV_EFIELD (bad repos, caps or port), GV_ENOMEM. */
int gv_trkc_register_body(const gv_identity *id, const gv_trkc_reg *reg,
                          int64_t now_ms, char **out, size_t *len);

#endif

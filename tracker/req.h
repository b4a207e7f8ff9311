/* Parsing and validation of what clients send the tracker (docs/TRACKER.md
 * §2-§3): signed bodies, their signature, and the query strings of the
 * read endpoints. Sans-I/O and pure: buffers in, values or a GV_E* code
 * with a reason out; no clock (replay rules are replay.h's).
 *
 * Every parser accepts arbitrary bytes (this is what fuzz_tracker drives);
 * on failure the outputs hold no partial result a caller could mistake for
 * a valid one.
 */
#ifndef GV_TRK_REQ_H
#define GV_TRK_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"
#include "replay.h"

#define GV_TRK_BODY_MAX 65536u
#define GV_TRK_SIG_HEADER "X-Grapevine-Sig"
#define GV_TRK_SIG_HEX_LEN 128
#define GV_TRK_SIG_LABEL "grapevine/1 tracker "
#define GV_TRK_PATH_REGISTER "/api/bootstrap/register"
#define GV_TRK_PATH_UNREGISTER "/api/bootstrap/unregister"
#define GV_TRK_PATH_PEERS "/api/bootstrap/peers"
#define GV_TRK_PATH_DISCOVER "/api/bootstrap/discover"
/* The signed string's length bound: label, method, path, hash. */
#define GV_TRK_SIGNED_MAX 256

/* The members every signed body has. */
typedef struct gv_trk_signed {
  uint8_t id[GV_ID_BYTES];
  int64_t ts;
  uint8_t nonce[GV_TRK_NONCE_BYTES];
} gv_trk_signed;

/* A register body: fills s and rec (id, ts, addr.port, repos, caps; the
 * address family and ip are left zero for the caller). Returns 0, or
 * GV_ETOOBIG (over GV_TRK_BODY_MAX), GV_EJSON (not one JSON object),
 * GV_EFIELD (missing, wrong type, bad name, duplicate), GV_ERANGE,
 * GV_ELIMIT (too many repos or caps). */
int gv_trk_req_register(const uint8_t *body, size_t len, gv_trk_signed *s,
                        gv_trk_rec *rec, gv_why *why);

/* An unregister body: id, ts, nonce. Errors as above. */
int gv_trk_req_unregister(const uint8_t *body, size_t len, gv_trk_signed *s,
                          gv_why *why);

/* The signed string of §2.2 for method, path and body: writes it to out and
 * its length to *out_len. GV_EINVAL if method or path is too long. */
int gv_trk_req_signed_string(const char *method, const char *path,
                             const uint8_t *body, size_t len,
                             uint8_t out[GV_TRK_SIGNED_MAX], size_t *out_len);

/* Verifies the X-Grapevine-Sig header value sig_hex (NULL when absent) over
 * method, path and body for id. Returns 0, GV_EFIELD when the header is
 * missing or not 128 hex digits, GV_EBADSIG when it does not verify. */
int gv_trk_req_verify(const char *method, const char *path, const uint8_t *body,
                      size_t len, const char *sig_hex,
                      const uint8_t id[GV_ID_BYTES], gv_why *why);

/* The `repos` query value "a,b,...": 1..GV_TRK_MAX_QUERY_REPOS valid
 * repository names into names[], their count in *n. q NULL or empty,
 * an empty or bad name: GV_EFIELD; too many: GV_ELIMIT. */
int gv_trk_req_repos(const char *q,
                     char names[GV_TRK_MAX_QUERY_REPOS][GV_REPO_MAX + 1],
                     size_t *n, gv_why *why);

/* The `max` query value: NULL means def; otherwise a decimal integer in
 * 1..GV_TRK_MAX_RESULTS (GV_EFIELD / GV_ERANGE). */
int gv_trk_req_max(const char *q, unsigned def, unsigned *out, gv_why *why);

/* The fields of a request head, checked one at a time as the HTTP layer
 * lists them, so that no field is read leniently later: a header that
 * must be single (Content-Length, Transfer-Encoding, Host, Content-Type,
 * X-Grapevine-Sig) or a query parameter (`repos`, `max`) given twice, or
 * any key or value holding a NUL byte (a decoded `%00`, which would
 * truncate it), is refused. Zero-initialise one gv_trk_head per request.
 * Returns 0, or GV_EFIELD with the reason. */
typedef enum gv_trk_field_kind {
  GV_TRK_FIELD_HEADER,
  GV_TRK_FIELD_QUERY
} gv_trk_field_kind;

typedef struct gv_trk_head {
  unsigned seen; /* one bit per single header and per query key */
} gv_trk_head;

int gv_trk_req_head_field(gv_trk_head *h, gv_trk_field_kind kind,
                          const char *key, size_t key_len, const char *val,
                          size_t val_len, gv_why *why);

/* Checks a capability name: 1..GV_TRK_CAP_MAX of a-z 0-9 . _ -. */
int gv_trk_cap_name_check(const char *name, size_t len);

#endif

/* The tracker's registry of bootstrap nodes: the sans-I/O core.
 *
 * It decides who may register, when a registration expires, how many ids an
 * address may hold, and which entries a reader gets; it never touches a
 * socket, file or clock: every call that depends on time takes `now` (ms
 * since the epoch, never decreasing across calls), and sampling takes a
 * gv_trk_rng. The adapters (http.c, dialback.c, store.c) run the dial-back
 * and the SQLite commit between gv_trk_reg_begin() and gv_trk_reg_commit().
 *
 *   (absent) --begin--> VERIFYING --commit--> LISTED --expire/unregister-->
 *   (absent);  VERIFYING --abort--> (absent);
 *   LISTED --begin--> RENEWING --commit--> LISTED (new data, new expiry);
 *   RENEWING --abort(keep)--> LISTED;  RENEWING --abort(delist)--> (absent)
 *
 * Only LISTED and RENEWING entries are visible to readers. See
 * docs/TRACKER.md §6.2 for the invariants, which gv__trk_reg_check() tests.
 *
 * Lifetime: gv_trk_reg_new() allocates, gv_trk_reg_free() frees everything.
 * Entry pointers returned by the readers stay valid until the next call that
 * changes the registry. Not thread-safe: the daemon holds a read-write lock
 * (readers: sample, discover, stats, entry accessors; writers: the rest).
 */
#ifndef GV_TRK_REGISTRY_H
#define GV_TRK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"
#include "identity.h"
#include "msg.h"
#include "rng.h"

#define GV_TRK_TTL_MS 3600000LL /* a registration lasts 1 h unless renewed */
#define GV_TRK_MAX_CAPS 16
#define GV_TRK_CAP_MAX 32      /* bytes in a capability name */
#define GV_TRK_MAX_RESULTS 256 /* hard cap on entries in one answer */
#define GV_TRK_MAX_QUERY_REPOS 16

/* What limits count by: the IPv4 address, or the /64 of an IPv6 one. */
typedef struct gv_trk_ipkey {
  uint8_t b[9]; /* family (4 or 6), then 4 or 8 address bytes, zero padded */
} gv_trk_ipkey;

void gv_trk_ipkey_of(gv_trk_ipkey *k, const gv_addr *a);

/* The content of one registration, as a signed register request gives it
 * (the address being the request's source address with the body's port). */
typedef struct gv_trk_rec {
  uint8_t id[GV_ID_BYTES];
  gv_addr addr;
  int64_t ts; /* of the signed request */
  uint8_t n_repos;
  uint8_t n_caps;
  char repos[GV_MAX_REPOS][GV_REPO_MAX + 1];
  char caps[GV_TRK_MAX_CAPS][GV_TRK_CAP_MAX + 1];
} gv_trk_rec;

typedef struct gv_trk_reg_cfg {
  unsigned max_per_ip;    /* ids per address, VERIFYING ones included; >= 1 */
  unsigned max_verifying; /* VERIFYING + RENEWING at once; >= 1 */
  int64_t ttl_ms;         /* GV_TRK_TTL_MS in the daemon */
  /* VERIFYING + RENEWING charged to one address at once; 0 = no limit */
  unsigned max_verifying_per_ip;
  /* Asked, by gv_trk_reg_begin() with a full pool, to take back the
   * verification of id from addr: nonzero when it was still queued and
   * now never runs nor reports (the registry then drops it); 0 when it is
   * in flight (the registry then never asks again for it). Called under
   * the registry's lock; must not call the registry. NULL: every
   * verification not marked in flight can be taken back. */
  int (*take_back)(void *ctx, const uint8_t id[GV_ID_BYTES],
                   const gv_addr *addr);
  void *take_back_ctx;
} gv_trk_reg_cfg;

typedef struct gv_trk_reg gv_trk_reg;
typedef struct gv_trk_entry gv_trk_entry;

typedef struct gv_trk_reg_stats {
  size_t listed;    /* LISTED + RENEWING */
  size_t verifying; /* VERIFYING + RENEWING */
  size_t ips;       /* addresses holding at least one id */
  size_t repos;     /* distinct repository names listed */
} gv_trk_reg_stats;

/* hash_key: 16 random bytes for the SipHash of the internal tables. */
int gv_trk_reg_new(gv_trk_reg **out, const gv_trk_reg_cfg *cfg,
                   const uint8_t hash_key[16]);
void gv_trk_reg_free(gv_trk_reg *r);

/* Starts a registration (absent -> VERIFYING, returns 0) or a renewal
 * (LISTED -> RENEWING, returns 1) for rec->id from rec->addr; it is queued
 * (may be taken back) until it settles, or until a full pool's
 * cfg.take_back says its dial-back is in flight: entries leave the queue
 * lazily, the registry is never told when a dial-back starts. Fails, with a
 * reason in why, with GV_EBUSY if the id is already VERIFYING or RENEWING,
 * GV_ELIMIT if rec's address already holds max_per_ip ids, -EBUSY if rec's
 * address already has max_verifying_per_ip of them, GV_ENOMEM. When
 * max_verifying are being verified (the pool is full), the heaviest address
 * with a queued verification, if it has more than rec's address, loses its
 * newest queued one (cfg.take_back; then as gv_trk_reg_abort(id, keep 1)) to
 * make room; otherwise -EAGAIN. Nothing else changes on failure (a verification
 * may have been taken back before a GV_ENOMEM). rec is not kept. */
int gv_trk_reg_begin(gv_trk_reg *r, const gv_trk_rec *rec, int64_t now,
                     gv_why *why);

/* Verifications taken back for newcomers since gv_trk_reg_new(). */
uint64_t gv_trk_reg_taken_back(const gv_trk_reg *r);

/* The dial-back of rec (the same content given to begin) succeeded and its
 * row is committed: the entry becomes LISTED with rec's content, expiring
 * at expires_ms (> now). Returns 0, GV_ESTATE if rec->id is not VERIFYING
 * or RENEWING from rec's address, GV_ENOMEM (then nothing changed). */
int gv_trk_reg_commit(gv_trk_reg *r, const gv_trk_rec *rec, int64_t expires_ms,
                      int64_t now);

/* The verification of id failed. VERIFYING -> absent; RENEWING -> LISTED as
 * before if keep is nonzero, else absent. Returns 1 when a visible entry was
 * removed (its row must be deleted), 0 otherwise, GV_ESTATE if id is not
 * being verified. */
int gv_trk_reg_abort(gv_trk_reg *r, const uint8_t id[GV_ID_BYTES], int keep);

/* LISTED -> absent. 0, -ENOENT if id is not registered, GV_EBUSY while it
 * is VERIFYING or RENEWING. */
int gv_trk_reg_unregister(gv_trk_reg *r, const uint8_t id[GV_ID_BYTES]);

/* What gv_trk_reg_unregister() would return, changing nothing. A reader
 * (takes the lock as a writer when the unregister must follow). */
int gv_trk_reg_may_unregister(const gv_trk_reg *r,
                              const uint8_t id[GV_ID_BYTES]);

/* Restores a stored registration at start-up: absent -> LISTED. The
 * per-address limit is not applied (the limit may have been lowered).
 * GV_ESTALE if expires_ms <= now, -EEXIST for a duplicate id, GV_ENOMEM. */
int gv_trk_reg_load(gv_trk_reg *r, const gv_trk_rec *rec, int64_t registered_ms,
                    int64_t expires_ms, int64_t now);

/* Removes every LISTED entry with expires <= now, calling cb (if not NULL)
 * with its id first. RENEWING entries wait for their renewal to settle.
 * Returns how many were removed. */
size_t gv_trk_reg_expire(gv_trk_reg *r, int64_t now,
                         void (*cb)(void *ctx, const uint8_t id[GV_ID_BYTES]),
                         void *ctx);

/* The earliest expiry among LISTED entries, or INT64_MAX if none. */
int64_t gv_trk_reg_next_expiry(const gv_trk_reg *r);

/* A uniform random sample without repetition of at most max visible
 * entries (max <= GV_TRK_MAX_RESULTS), leaving out the entry of exclude
 * (may be NULL), in random order. Writes them to out[] and returns how
 * many. */
size_t gv_trk_reg_sample(const gv_trk_reg *r, gv_trk_rng *rng, size_t max,
                         const uint8_t *exclude, const gv_trk_entry **out);

/* A random sample of at most max visible entries holding at least one of
 * names[0..n) (each 1..GV_REPO_MAX bytes, NUL-terminated, duplicates
 * allowed), without repetition, drawn uniformly over (entry, requested
 * name) pairs. Returns how many were written to out[]. */
size_t gv_trk_reg_discover(const gv_trk_reg *r, gv_trk_rng *rng,
                           const char (*names)[GV_REPO_MAX + 1], size_t n,
                           size_t max, const gv_trk_entry **out);

/* The entry's PEER object (docs/TRACKER.md §3.3), rendered once by cJSON;
 * not NUL-terminated in general. */
const char *gv_trk_entry_json(const gv_trk_entry *e, size_t *len);
const uint8_t *gv_trk_entry_id(const gv_trk_entry *e);
const gv_addr *gv_trk_entry_addr(const gv_trk_entry *e);
int64_t gv_trk_entry_expires(const gv_trk_entry *e);
int64_t gv_trk_entry_registered(const gv_trk_entry *e);

/* The address (with port) whose dial-back runs for id: 0 and *out set if
 * id is VERIFYING or RENEWING, else GV_ESTATE. A reader. */
int gv_trk_reg_verifying_addr(const gv_trk_reg *r,
                              const uint8_t id[GV_ID_BYTES], gv_addr *out);

/* The visible entry with this id, or NULL. */
const gv_trk_entry *gv_trk_reg_find(const gv_trk_reg *r,
                                    const uint8_t id[GV_ID_BYTES]);

void gv_trk_reg_get_stats(const gv_trk_reg *r, gv_trk_reg_stats *st);

/* A number that changes whenever what a read (sample, discover, stats,
 * an entry's JSON) could show changes: a registration listed, renewed,
 * unlisted or expired. Equal generations: the same listing. */
uint64_t gv_trk_reg_generation(const gv_trk_reg *r);

/* Checks every invariant of docs/TRACKER.md §6.2 (O(n)); 0 or GV_ESTATE
 * with the first violation in why. For tests. */
int gv__trk_reg_check(const gv_trk_reg *r, gv_why *why);

#endif

/* A silent node's entry guards (docs/NODE.md "Privacy"): the small,
 * persistent set of broadcasting nodes it dials, so that over time only
 * they learn its address, and not whoever else runs broadcasting nodes.
 *
 *   gv_guards_init -> { gv_guards_restore (at start) }
 *     -> gv_guards_update(table view, now) on every maintenance round:
 *          drop  a guard unreachable or gone from the table for
 *                down_ms, or past its lifetime;
 *          fill  up to count, score-weighted among the eligible
 *     -> gv_guards_failed / gv_guards_reached as dials end.
 *
 * Eligible: broadcasting with an address (the caller passes only such
 * nodes), a score at or above the median of those passed, and in the table
 * for min_age_ms, or marked bootstrap (the operator's nodes, eligible at
 * once: a first start has nothing else). A guard is never replaced because
 * a newcomer appeared or dialed in: only the three reasons above.
 *
 * Pure: no clock, no I/O; times are the caller's monotonic milliseconds,
 * randomness comes from the caller's gv_rng, so a run is reproducible.
 * Lifetime: embedded; the set is a fixed array (update only borrows
 * scratch memory), so pointers into it stay valid for the struct's life
 * (entries move when one is dropped).
 */
#ifndef GV_GUARD_H
#define GV_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"
#include "rng.h"

#define GV_GUARDS_MAX 16

typedef struct gv_guard_cfg {
  unsigned count;                   /* G, 1..GV_GUARDS_MAX */
  int64_t min_age_ms;               /* 1 h in the table before eligible */
  int64_t down_ms;                  /* 1 h of failed dials: replaced */
  int64_t life_min_ms, life_max_ms; /* lifetime drawn in [30, 60] days */
} gv_guard_cfg;

typedef struct gv_guard {
  uint8_t id[GV_ID_BYTES];
  int64_t chosen_at, expires_at;
  int64_t down_since; /* first failed dial since last reached; 0: none */
} gv_guard;

/* A broadcasting node with an address, as the table shows it. */
typedef struct gv_guard_cand {
  const uint8_t *id;
  bool bootstrap;
  int64_t first_seen; /* when it entered the table */
  double score;       /* 0..100 */
} gv_guard_cand;

typedef struct gv_guards {
  gv_guard_cfg cfg;
  gv_guard set[GV_GUARDS_MAX];
  size_t n;
} gv_guards;

/* Fills cfg with the defaults above and count. */
void gv_guard_cfg_default(gv_guard_cfg *cfg, unsigned count);
/* An empty set; GV_EINVAL for a count outside 1..GV_GUARDS_MAX or a
 * lifetime range that is empty or negative. */
int gv_guards_init(gv_guards *g, const gv_guard_cfg *cfg);

/* Marks a guard gone from the table (not among cands) down, as a failed
 * dial would; drops guards down for down_ms or expired, then picks new ones
 * among the eligible cands, score-weighted, until the set holds cfg.count or
 * none is left. cands is read during the call only. Returns true if the set
 * changed (then persist it). */
bool gv_guards_update(gv_guards *g, const gv_guard_cand *cands, size_t n,
                      gv_rng *rng, int64_t now);

/* The guard of that id, or NULL. */
gv_guard *gv_guards_find(gv_guards *g, const uint8_t *id);
bool gv_guards_has(const gv_guards *g, const uint8_t *id);
/* A dial to a guard failed: its down time starts (if not already).
 * Returns true if that changed the set's state. */
bool gv_guards_failed(gv_guards *g, const uint8_t *id, int64_t now);
/* A link to a guard came up: it is no longer down. Returns true if it
 * was. */
bool gv_guards_reached(gv_guards *g, const uint8_t *id);
/* Puts back a guard saved before a restart (times already on the
 * caller's clock). A guard that was down is given a fresh down_ms from
 * now: the node's own downtime is no evidence against it. Returns
 * GV_ELIMIT when the set is full, GV_EINVAL for an id already held. */
int gv_guards_restore(gv_guards *g, const gv_guard *saved, int64_t now);

/* ---- the saved form (docs/STORAGE.md, the "guards" setting) ----
 * One guard per line: "<64 hex id> <chosen_at> <expires_at> <down_since>",
 * decimal milliseconds on the wall clock, down_since 0 while reachable. */
#define GV_GUARD_LINE_MAX 160

/* Writes g's line, with its newline, into buf (cap >= GV_GUARD_LINE_MAX);
 * returns its length. */
size_t gv_guard_format(const gv_guard *g, char *buf, size_t cap);
/* Parses one line (len bytes, no newline). 0, or GV_EFIELD with a reason
 * for anything but exactly that form with chosen_at < expires_at. */
int gv_guard_parse(gv_guard *g, const char *line, size_t len, gv_why *why);

#endif

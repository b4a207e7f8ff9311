/* Replay protection for signed tracker requests (docs/TRACKER.md §2.3):
 * a clock window, a floor at the process start, and a cache of the
 * (id, nonce) pairs accepted in the last GV_TRK_NONCE_KEEP_MS. Sans-I/O:
 * `now` comes in as an argument and never decreases.
 *
 * The cache is a ring in acceptance order (every pair is kept for the same
 * time, so the oldest is always at the head) plus a hash table over it. It
 * holds at most `cap` pairs; when full, new pairs are refused (-EAGAIN)
 * rather than any pair forgotten early.
 *
 * Lifetime: gv_trk_replay_new() allocates, gv_trk_replay_free() frees. Not
 * thread-safe.
 */
#ifndef GV_TRK_REPLAY_H
#define GV_TRK_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"

#define GV_TRK_NONCE_BYTES 16
#define GV_TRK_SKEW_MS 30000LL       /* accepted |ts - now| */
#define GV_TRK_NONCE_KEEP_MS 60000LL /* 2 x skew: outlives every window */
#define GV_TRK_NONCE_CAP 262144

typedef struct gv_trk_replay gv_trk_replay;

/* start_ms: the process start; requests signed before it are refused. */
int gv_trk_replay_new(gv_trk_replay **out, size_t cap, int64_t start_ms,
                      const uint8_t hash_key[16]);
void gv_trk_replay_free(gv_trk_replay *rp);

/* Applies the rules to a request of id with ts and nonce, at now, and
 * records the pair if it passes. Returns 0, or with a reason in why:
 * GV_EFUTURE (ts > now + skew), GV_ESTALE (ts < now - skew, or before the
 * start), GV_EDUP (pair already accepted), -EAGAIN (cache full),
 * GV_ENOMEM. */
int gv_trk_replay_check(gv_trk_replay *rp, const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why);

/* Forgets the pairs whose time is up; returns how many. */
size_t gv_trk_replay_prune(gv_trk_replay *rp, int64_t now);

size_t gv_trk_replay_count(const gv_trk_replay *rp);

#endif

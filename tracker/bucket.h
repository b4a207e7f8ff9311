/* Per-client token buckets (docs/TRACKER.md §4), sans-I/O: `now` comes in
 * as an argument and never decreases.
 *
 * Each client key has a bucket of `burst` tokens refilled at `rate` tokens
 * per second; a request takes one. At most `cap` buckets are kept; beyond
 * that the least recently used one is evicted (its client starts again with
 * a full bucket), so memory stays bounded whatever the number of clients.
 *
 * Lifetime: gv_trk_buckets_new() allocates, gv_trk_buckets_free() frees.
 * Not thread-safe.
 */
#ifndef GV_TRK_BUCKET_H
#define GV_TRK_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define GV_TRK_BUCKETS_CAP 65536

typedef struct gv_trk_buckets gv_trk_buckets;

/* rate >= 1 tokens/s, burst >= 1, cap >= 1. */
int gv_trk_buckets_new(gv_trk_buckets **out, unsigned rate, unsigned burst,
                       size_t cap, const uint8_t hash_key[16]);
void gv_trk_buckets_free(gv_trk_buckets *b);

/* Takes a token from key's bucket. Returns 0, or GV_EBUSY when it is empty
 * with *retry_ms set to the time until a token is there (>= 1), or
 * GV_ENOMEM. */
int gv_trk_buckets_take(gv_trk_buckets *b, const gv_trk_ipkey *key, int64_t now,
                        int64_t *retry_ms);

/* Drops buckets that have refilled completely (they hold no information),
 * oldest first; returns how many. */
size_t gv_trk_buckets_sweep(gv_trk_buckets *b, int64_t now);

size_t gv_trk_buckets_count(const gv_trk_buckets *b);

#endif

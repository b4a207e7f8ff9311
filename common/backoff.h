/* Jittered exponential retry backoff, the one rule for every retry (the
 * node's tracker jobs, and the engine's redials):
 *
 *   delay(n) = jitter(min(base * 2^(n-1), max)),  n = consecutive failures
 *   jitter(ms) = ms/2 + uniform[0, ms]            (that is, ms +- 50%)
 *
 * Pure: randomness comes from the caller's gv_rng, so a simulator replays.
 */
#ifndef GV_BACKOFF_H
#define GV_BACKOFF_H

#include <stdint.h>

#include "rng.h"

/* ms +- 50%, uniformly: ms/2 + [0, ms]. ms >= 0. */
static inline int64_t gv_jitter_ms(gv_rng *r, int64_t ms) {
  return ms / 2 + (int64_t)gv_rng_below(r, (uint64_t)ms + 1);
}

/* The delay before the next try after `failures` consecutive failures
 * (1 for the first): base doubled per further failure, capped at max,
 * then jittered. 0 < base <= max. */
static inline int64_t gv_backoff_ms(gv_rng *r, int64_t base, int64_t max,
                                    unsigned failures) {
  int64_t ms = base;
  for (unsigned i = 1; i < failures && ms < max; i++)
    ms *= 2;
  return gv_jitter_ms(r, ms < max ? ms : max);
}

#endif

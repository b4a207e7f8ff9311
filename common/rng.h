/* A small, fast, seedable PRNG (xoshiro256**, seeded by splitmix64) for the
 * pure cores: the caller owns the state, so runs are reproducible. Not for
 * cryptography. */
#ifndef GV_RNG_H
#define GV_RNG_H

#include <stdint.h>

typedef struct gv_rng {
  uint64_t s[4];
} gv_rng;

static inline uint64_t gv__splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline void gv_rng_seed(gv_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = gv__splitmix64(&seed);
}

static inline uint64_t gv_rng_next(gv_rng *r) {
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-32 here). */
static inline uint64_t gv_rng_below(gv_rng *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)gv_rng_next(r) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double gv_rng_unit(gv_rng *r) {
  return (double)(gv_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif

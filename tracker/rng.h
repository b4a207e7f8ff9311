/* A deterministic random generator for the tracker's cores: the ChaCha20
 * keystream (crypto_stream_chacha20) of a 32-byte seed the caller supplies,
 * so that tests replay exactly and the daemon seeds from randombytes_buf().
 *
 * Lifetime: a plain value; gv_trk_rng_wipe() wipes the seed. Not
 * thread-safe: one generator per thread or per connection.
 */
#ifndef GV_TRK_RNG_H
#define GV_TRK_RNG_H

#include <stddef.h>
#include <stdint.h>

#define GV_TRK_RNG_SEED_BYTES 32

typedef struct gv_trk_rng {
  uint8_t key[GV_TRK_RNG_SEED_BYTES];
  uint64_t block; /* next keystream nonce */
  size_t used;    /* bytes of buf consumed */
  uint8_t buf[256];
} gv_trk_rng;

void gv_trk_rng_init(gv_trk_rng *r, const uint8_t seed[GV_TRK_RNG_SEED_BYTES]);

/* A uniform integer in [0, bound); bound must be at least 1. */
uint32_t gv_trk_rng_uniform(gv_trk_rng *r, uint32_t bound);

void gv_trk_rng_wipe(gv_trk_rng *r);

#endif

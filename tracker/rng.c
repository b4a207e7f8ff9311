#include "rng.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

static void refill(gv_trk_rng *r) {
  uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};

  memcpy(nonce, &r->block, sizeof(r->block));
  r->block++;
  crypto_stream_chacha20(r->buf, sizeof(r->buf), nonce, r->key);
  r->used = 0;
}

void gv_trk_rng_init(gv_trk_rng *r, const uint8_t seed[GV_TRK_RNG_SEED_BYTES]) {
  memcpy(r->key, seed, sizeof(r->key));
  r->block = 0;
  refill(r);
}

/* Fills out[0..len) with keystream bytes, each used once. */
static void take(gv_trk_rng *r, void *out, size_t len) {
  uint8_t *o = out;

  while (len > 0) {
    size_t take;
    if (r->used == sizeof(r->buf))
      refill(r);
    take = sizeof(r->buf) - r->used;
    if (take > len)
      take = len;
    memcpy(o, r->buf + r->used, take);
    sodium_memzero(r->buf + r->used, take);
    r->used += take;
    o += take;
    len -= take;
  }
}

uint32_t gv_trk_rng_uniform(gv_trk_rng *r, uint32_t bound) {
  /* Rejection below 2^32 mod bound makes every residue equally likely. */
  uint32_t min, x;

  assert(bound >= 1);
  min = (uint32_t)(-bound) % bound;
  do
    take(r, &x, sizeof(x));
  while (x < min);
  return x % bound;
}

void gv_trk_rng_wipe(gv_trk_rng *r) { sodium_memzero(r, sizeof(*r)); }

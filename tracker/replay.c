#include "replay.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

#define PAIR_BYTES (GV_ID_BYTES + GV_TRK_NONCE_BYTES)

typedef struct pair {
  uint8_t key[PAIR_BYTES]; /* id || nonce */
  int64_t until;           /* forgotten once now >= until */
} pair;

struct gv_trk_replay {
  pair *ring;
  size_t cap, head, n;
  gv_trk_map map;
  int64_t start_ms;
  int64_t last_now;
};

static int pair_match(const void *item, const void *key, size_t len) {
  return len == PAIR_BYTES && memcmp(((const pair *)item)->key, key, len) == 0;
}

int gv_trk_replay_new(gv_trk_replay **out, size_t cap, int64_t start_ms,
                      const uint8_t hash_key[16]) {
  gv_trk_replay *rp;

  *out = NULL;
  if (cap == 0)
    return GV_EINVAL;
  if ((rp = calloc(1, sizeof(*rp))) == NULL)
    return GV_ENOMEM;
  /* calloc'd pages stay unbacked until the ring reaches them. */
  if ((rp->ring = calloc(cap, sizeof(*rp->ring))) == NULL) {
    free(rp);
    return GV_ENOMEM;
  }
  rp->cap = cap;
  rp->start_ms = start_ms;
  rp->last_now = start_ms;
  gv_trk_map_init(&rp->map, hash_key, pair_match);
  *out = rp;
  return 0;
}

void gv_trk_replay_free(gv_trk_replay *rp) {
  if (rp == NULL)
    return;
  gv_trk_map_free(&rp->map);
  free(rp->ring);
  free(rp);
}

size_t gv_trk_replay_prune(gv_trk_replay *rp, int64_t now) {
  size_t n = 0;

  assert(now >= rp->last_now);
  rp->last_now = now;
  while (rp->n > 0 && rp->ring[rp->head].until <= now) {
    pair *p = &rp->ring[rp->head];
    gv_trk_map_del(&rp->map, p->key, PAIR_BYTES);
    rp->head = (rp->head + 1) % rp->cap;
    rp->n--;
    n++;
  }
  return n;
}

int gv_trk_replay_check(gv_trk_replay *rp, const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why) {
  uint8_t key[PAIR_BYTES];
  pair *p;

  gv_trk_replay_prune(rp, now);
  if (ts > now + GV_TRK_SKEW_MS)
    return gv_fail(why, GV_EFUTURE,
                   "ts is %lld ms ahead of the tracker's clock (limit %lld)",
                   (long long)(ts - now), GV_TRK_SKEW_MS);
  if (ts < now - GV_TRK_SKEW_MS)
    return gv_fail(why, GV_ESTALE,
                   "ts is %lld ms behind the tracker's clock (limit %lld)",
                   (long long)(now - ts), GV_TRK_SKEW_MS);
  if (ts < rp->start_ms)
    return gv_fail(why, GV_ESTALE, "signed before this tracker started");
  memcpy(key, id, GV_ID_BYTES);
  memcpy(key + GV_ID_BYTES, nonce, GV_TRK_NONCE_BYTES);
  if (gv_trk_map_get(&rp->map, key, PAIR_BYTES) != NULL)
    return gv_fail(why, GV_EDUP, "this nonce was already used");
  if (rp->n == rp->cap)
    return gv_fail(why, -EAGAIN, "too many signed requests; retry later");
  p = &rp->ring[(rp->head + rp->n) % rp->cap];
  memcpy(p->key, key, PAIR_BYTES);
  p->until = now + GV_TRK_NONCE_KEEP_MS;
  if (gv_trk_map_put(&rp->map, p->key, PAIR_BYTES, p) < 0)
    return gv_fail(why, GV_ENOMEM, "out of memory");
  rp->n++;
  return 0;
}

size_t gv_trk_replay_count(const gv_trk_replay *rp) { return rp->n; }

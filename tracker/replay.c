#include "replay.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

#define PAIR_BYTES (GV_ID_BYTES + GV_TRK_NONCE_BYTES)

typedef struct source source;

/* One recorded pair; on two lists, both oldest first: every pair's, and
 * its source's. Every pair is kept for the same time, so acceptance order
 * is expiry order. */
typedef struct pair {
  uint8_t key[PAIR_BYTES]; /* id || nonce */
  int64_t until;           /* forgotten once now >= until */
  source *src;
  struct pair *older, *newer;     /* all pairs; `newer` links the free list */
  struct pair *s_older, *s_newer; /* the source's pairs */
} pair;

/* A source holding n >= 1 pairs, on the list by_count[n]. */
struct source {
  gv_trk_ipkey key;
  size_t n;
  pair *oldest, *newest;
  source *prev, *next; /* by_count[n] */
};

struct gv_trk_replay {
  pair *slab;       /* cap pairs, calloc'd: pages stay unbacked until used */
  size_t cap, used; /* slab[0..used) have been handed out at least once */
  pair *free;       /* pairs forgotten, for reuse */
  size_t n;         /* pairs recorded */
  pair *oldest, *newest;
  source **by_count; /* [0..cap]: the sources holding exactly k pairs */
  size_t max_n;      /* the heaviest source's n; 0 when empty */
  gv_trk_map map;    /* key -> pair */
  gv_trk_map srcs;   /* ipkey -> source */
  uint64_t evictions;
  int64_t start_ms;
  int64_t last_now;
};

static int pair_match(const void *item, const void *key, size_t len) {
  return len == PAIR_BYTES && memcmp(((const pair *)item)->key, key, len) == 0;
}

static int source_match(const void *item, const void *key, size_t len) {
  return len == sizeof(((const source *)item)->key.b) &&
         memcmp(((const source *)item)->key.b, key, len) == 0;
}

int gv_trk_replay_new(gv_trk_replay **out, size_t cap, int64_t start_ms,
                      const uint8_t hash_key[16]) {
  gv_trk_replay *rp;
  uint8_t skey[16];

  *out = NULL;
  if (cap == 0)
    return GV_EINVAL;
  if ((rp = calloc(1, sizeof(*rp))) == NULL)
    return GV_ENOMEM;
  if ((rp->slab = calloc(cap, sizeof(*rp->slab))) == NULL ||
      (rp->by_count = calloc(cap + 1, sizeof(*rp->by_count))) == NULL) {
    free(rp->slab);
    free(rp);
    return GV_ENOMEM;
  }
  rp->cap = cap;
  rp->start_ms = start_ms;
  rp->last_now = start_ms;
  gv_trk_map_init(&rp->map, hash_key, pair_match);
  /* A second key for the second table, derived, not reused. */
  crypto_generichash(skey, sizeof(skey), (const uint8_t *)"src", 3, hash_key,
                     16);
  gv_trk_map_init(&rp->srcs, skey, source_match);
  *out = rp;
  return 0;
}

void gv_trk_replay_free(gv_trk_replay *rp) {
  size_t pos = 0;
  void *it;

  if (rp == NULL)
    return;
  while ((it = gv_trk_map_next(&rp->srcs, &pos)) != NULL)
    free(it);
  gv_trk_map_free(&rp->srcs);
  gv_trk_map_free(&rp->map);
  free(rp->by_count);
  free(rp->slab);
  free(rp);
}

/* ---- sources, bucketed by how many pairs they hold ---- */

static void bucket_unlink(gv_trk_replay *rp, source *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    rp->by_count[s->n] = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void bucket_link(gv_trk_replay *rp, source *s) {
  s->prev = NULL;
  s->next = rp->by_count[s->n];
  if (s->next)
    s->next->prev = s;
  rp->by_count[s->n] = s;
  if (s->n > rp->max_n)
    rp->max_n = s->n;
}

/* ---- pairs ---- */

/* Forgets p: off both lists and the table, its source lighter by one (and
 * gone at zero), p back on the free list. */
static void pair_forget(gv_trk_replay *rp, pair *p) {
  source *s = p->src;

  gv_trk_map_del(&rp->map, p->key, PAIR_BYTES);
  if (p->older)
    p->older->newer = p->newer;
  else
    rp->oldest = p->newer;
  if (p->newer)
    p->newer->older = p->older;
  else
    rp->newest = p->older;
  if (p->s_older)
    p->s_older->s_newer = p->s_newer;
  else
    s->oldest = p->s_newer;
  if (p->s_newer)
    p->s_newer->s_older = p->s_older;
  else
    s->newest = p->s_older;
  bucket_unlink(rp, s);
  if (--s->n == 0) {
    gv_trk_map_del(&rp->srcs, s->key.b, sizeof(s->key.b));
    free(s);
  } else {
    bucket_link(rp, s);
  }
  /* One source went down by one: the maximum falls by at most one. */
  if (rp->max_n > 0 && rp->by_count[rp->max_n] == NULL)
    rp->max_n--;
  assert(rp->max_n == 0 || rp->by_count[rp->max_n] != NULL);
  p->src = NULL;
  p->newer = rp->free;
  rp->free = p;
  rp->n--;
}

static pair *pair_alloc(gv_trk_replay *rp) {
  pair *p = rp->free;

  if (p != NULL) {
    rp->free = p->newer;
    return p;
  }
  assert(rp->used < rp->cap);
  return &rp->slab[rp->used++];
}

size_t gv_trk_replay_prune(gv_trk_replay *rp, int64_t now) {
  size_t n = 0;

  assert(now >= rp->last_now);
  rp->last_now = now;
  while (rp->oldest != NULL && rp->oldest->until <= now) {
    pair_forget(rp, rp->oldest);
    n++;
  }
  return n;
}

int gv_trk_replay_peek(gv_trk_replay *rp, const uint8_t id[GV_ID_BYTES],
                       const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                       int64_t now, gv_why *why) {
  uint8_t key[PAIR_BYTES];

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
  return 0;
}

int gv_trk_replay_check(gv_trk_replay *rp, const gv_trk_ipkey *src,
                        const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why) {
  source *s;
  pair *p;
  int rc;

  if ((rc = gv_trk_replay_peek(rp, id, nonce, ts, now, why)) < 0)
    return rc;
  s = gv_trk_map_get(&rp->srcs, src->b, sizeof(src->b));
  if (rp->n == rp->cap) {
    /* Full: the heaviest source pays, unless it is this one (or ties). */
    source *h = rp->by_count[rp->max_n];
    if (h == NULL || h == s || h->n <= (s ? s->n : 0))
      return gv_fail(why, -EAGAIN,
                     "too many signed requests from this address; retry "
                     "later");
    pair_forget(rp, h->oldest);
    rp->evictions++;
  }
  if (s == NULL) {
    if ((s = calloc(1, sizeof(*s))) == NULL)
      return gv_fail(why, GV_ENOMEM, "out of memory");
    s->key = *src;
    if (gv_trk_map_put(&rp->srcs, s->key.b, sizeof(s->key.b), s) < 0) {
      free(s);
      return gv_fail(why, GV_ENOMEM, "out of memory");
    }
  } else {
    bucket_unlink(rp, s);
  }
  p = pair_alloc(rp);
  memset(p, 0, sizeof(*p));
  memcpy(p->key, id, GV_ID_BYTES);
  memcpy(p->key + GV_ID_BYTES, nonce, GV_TRK_NONCE_BYTES);
  p->until = now + GV_TRK_NONCE_KEEP_MS;
  p->src = s;
  s->n++;
  bucket_link(rp, s);
  if (gv_trk_map_put(&rp->map, p->key, PAIR_BYTES, p) < 0) {
    /* Undo: p is on no list yet. */
    bucket_unlink(rp, s);
    s->n--;
    if (s->n == 0) {
      gv_trk_map_del(&rp->srcs, s->key.b, sizeof(s->key.b));
      free(s);
    } else {
      bucket_link(rp, s);
    }
    if (rp->max_n > 0 && rp->by_count[rp->max_n] == NULL)
      rp->max_n--;
    p->newer = rp->free;
    rp->free = p;
    return gv_fail(why, GV_ENOMEM, "out of memory");
  }
  p->older = rp->newest;
  if (rp->newest)
    rp->newest->newer = p;
  else
    rp->oldest = p;
  rp->newest = p;
  p->s_older = s->newest;
  if (s->newest)
    s->newest->s_newer = p;
  else
    s->oldest = p;
  s->newest = p;
  rp->n++;
  return 0;
}

size_t gv_trk_replay_count(const gv_trk_replay *rp) { return rp->n; }

size_t gv_trk_replay_count_of(const gv_trk_replay *rp,
                              const gv_trk_ipkey *src) {
  const source *s = gv_trk_map_get(&rp->srcs, src->b, sizeof(src->b));
  return s ? s->n : 0;
}

uint64_t gv_trk_replay_evictions(const gv_trk_replay *rp) {
  return rp->evictions;
}

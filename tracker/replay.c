#include "replay.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

#define PAIR_BYTES (GV_ID_BYTES + GV_TRK_NONCE_BYTES)

typedef struct source source;

/* What an expiry heap orders: a pair or a floor, forgotten once
 * now >= until. until = ts + GV_TRK_SKEW_MS + 1: the first moment a
 * request signed at ts is refused as stale, so nothing is kept longer than
 * it guards anything. */
typedef struct timed {
  int64_t until;
  size_t hpos; /* its heap's a[hpos] == this */
} timed;

/* A min-heap by until of at most cap items: the pairs, or the floors. */
typedef struct theap {
  timed **a;
  size_t n;
} theap;

/* One recorded pair, on its source's list, oldest first. */
typedef struct pair {
  timed t;                 /* first: the pairs' heap holds &pair.t */
  uint8_t key[PAIR_BYTES]; /* id || nonce */
  int64_t ts;
  source *src;
  struct pair *s_older, *s_newer; /* the source's pairs; s_newer links the
                                     free list */
} pair;

/* What is left of an id's evicted pairs: its requests with ts <= ts are
 * refused (GV_EDUP). One per id, the largest evicted ts; it lives exactly
 * as long as the evicted pairs would have. */
typedef struct floor_ {
  timed t; /* first: the floors' heap holds &floor_.t */
  uint8_t id[GV_ID_BYTES];
  int64_t ts;
  struct floor_ *next_free;
} floor_;

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
  floor_ *fslab;    /* cap floors, likewise */
  size_t fused, nf; /* handed out at least once; live */
  floor_ *ffree;
  theap ph, fh; /* the pairs (n of them), the floors (nf) */
  /* The global floor: every request with ts <= gfloor_ts is refused (the
   * folded floors'; INT64_MIN: none). It needs no expiry: once
   * gfloor_ts < now - GV_TRK_SKEW_MS, the window refuses those ts anyway. */
  int64_t gfloor_ts;
  source **by_count; /* [0..cap]: the sources holding exactly k pairs */
  size_t max_n;      /* the heaviest source's n; 0 when empty */
  gv_trk_map map;    /* key -> pair */
  gv_trk_map srcs;   /* ipkey -> source */
  gv_trk_map floors; /* id -> floor_ */
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

static int floor_match(const void *item, const void *key, size_t len) {
  return len == GV_ID_BYTES &&
         memcmp(((const floor_ *)item)->id, key, len) == 0;
}

int gv_trk_replay_new(gv_trk_replay **out, size_t cap, int64_t start_ms,
                      const uint8_t hash_key[16]) {
  gv_trk_replay *rp;
  uint8_t skey[16], fkey[16];

  *out = NULL;
  if (cap == 0 || cap > SIZE_MAX / 2 / sizeof(timed *))
    return GV_EINVAL;
  if ((rp = calloc(1, sizeof(*rp))) == NULL)
    return GV_ENOMEM;
  if ((rp->slab = calloc(cap, sizeof(*rp->slab))) == NULL ||
      (rp->fslab = calloc(cap, sizeof(*rp->fslab))) == NULL ||
      (rp->ph.a = calloc(cap, sizeof(*rp->ph.a))) == NULL ||
      (rp->fh.a = calloc(cap, sizeof(*rp->fh.a))) == NULL ||
      (rp->by_count = calloc(cap + 1, sizeof(*rp->by_count))) == NULL) {
    free(rp->fh.a);
    free(rp->ph.a);
    free(rp->fslab);
    free(rp->slab);
    free(rp);
    return GV_ENOMEM;
  }
  rp->cap = cap;
  rp->start_ms = start_ms;
  rp->last_now = start_ms;
  rp->gfloor_ts = INT64_MIN;
  gv_trk_map_init(&rp->map, hash_key, pair_match);
  /* Keys for the other tables, derived, not reused. */
  crypto_generichash(skey, sizeof(skey), (const uint8_t *)"src", 3, hash_key,
                     16);
  gv_trk_map_init(&rp->srcs, skey, source_match);
  crypto_generichash(fkey, sizeof(fkey), (const uint8_t *)"floor", 5, hash_key,
                     16);
  gv_trk_map_init(&rp->floors, fkey, floor_match);
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
  gv_trk_map_free(&rp->floors);
  gv_trk_map_free(&rp->map);
  free(rp->by_count);
  free(rp->fh.a);
  free(rp->ph.a);
  free(rp->fslab);
  free(rp->slab);
  free(rp);
}

/* ---- the expiry heaps ---- */

static void heap_set(theap *h, size_t i, timed *x) {
  h->a[i] = x;
  x->hpos = i;
}

static void heap_up(theap *h, size_t i) {
  timed *x = h->a[i];

  while (i > 0 && h->a[(i - 1) / 2]->until > x->until) {
    heap_set(h, i, h->a[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(h, i, x);
}

static void heap_down(theap *h, size_t i) {
  timed *x = h->a[i];

  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && h->a[c + 1]->until < h->a[c]->until)
      c++;
    if (h->a[c]->until >= x->until)
      break;
    heap_set(h, i, h->a[c]);
    i = c;
  }
  heap_set(h, i, x);
}

/* The caller keeps h->n < cap. */
static void heap_push(theap *h, timed *x) {
  heap_set(h, h->n++, x);
  heap_up(h, x->hpos);
}

static void heap_remove(theap *h, timed *x) {
  size_t i = x->hpos;
  timed *last = h->a[--h->n];

  assert(h->a[i] == x);
  if (last == x)
    return;
  heap_set(h, i, last);
  heap_up(h, i);
  heap_down(h, last->hpos);
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

/* s holds one pair fewer: rebucketed, or gone (freed) at zero. */
static void source_dec(gv_trk_replay *rp, source *s) {
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
}

/* ---- pairs and floors ---- */

/* Forgets p: off its source's list, the heap and the table, its source
 * lighter by one, p back on the free list. */
static void pair_forget(gv_trk_replay *rp, pair *p) {
  source *s = p->src;

  gv_trk_map_del(&rp->map, p->key, PAIR_BYTES);
  heap_remove(&rp->ph, &p->t);
  if (p->s_older)
    p->s_older->s_newer = p->s_newer;
  else
    s->oldest = p->s_newer;
  if (p->s_newer)
    p->s_newer->s_older = p->s_older;
  else
    s->newest = p->s_older;
  source_dec(rp, s);
  p->src = NULL;
  p->s_newer = rp->free;
  rp->free = p;
  rp->n--;
}

static pair *pair_alloc(gv_trk_replay *rp) {
  pair *p = rp->free;

  if (p != NULL) {
    rp->free = p->s_newer;
    return p;
  }
  assert(rp->used < rp->cap);
  return &rp->slab[rp->used++];
}

static void floor_forget(gv_trk_replay *rp, floor_ *f) {
  gv_trk_map_del(&rp->floors, f->id, GV_ID_BYTES);
  heap_remove(&rp->fh, &f->t);
  f->next_free = rp->ffree;
  rp->ffree = f;
  rp->nf--;
}

/* Before p is evicted: its id's floor rises to p's ts (made if need be),
 * so that p's request stays refused for as long as p would have been
 * kept. When every floor is live, the one that expires first (the lowest
 * ts: until is ts + skew + 1) is folded into the global floor to make
 * room. 0, or GV_ENOMEM (then the new floor is not made; a fold stays). */
static int floor_raise(gv_trk_replay *rp, const pair *p) {
  floor_ *f = gv_trk_map_get(&rp->floors, p->key, GV_ID_BYTES);

  if (f != NULL) {
    if (p->ts > f->ts) {
      f->ts = p->ts;
      f->t.until = p->t.until;
      heap_down(&rp->fh, f->t.hpos);
    }
    return 0;
  }
  if (rp->nf == rp->cap) {
    floor_ *first = (floor_ *)rp->fh.a[0];
    if (first->ts > rp->gfloor_ts)
      rp->gfloor_ts = first->ts;
    floor_forget(rp, first);
  }
  if ((f = rp->ffree) != NULL)
    rp->ffree = f->next_free;
  else
    f = &rp->fslab[rp->fused++];
  memset(f, 0, sizeof(*f));
  f->t.until = p->t.until;
  f->ts = p->ts;
  memcpy(f->id, p->key, GV_ID_BYTES);
  if (gv_trk_map_put(&rp->floors, f->id, GV_ID_BYTES, f) < 0) {
    f->next_free = rp->ffree;
    rp->ffree = f;
    return GV_ENOMEM;
  }
  heap_push(&rp->fh, &f->t);
  rp->nf++;
  return 0;
}

size_t gv_trk_replay_prune(gv_trk_replay *rp, int64_t now) {
  size_t n = 0;

  assert(now >= rp->last_now);
  rp->last_now = now;
  while (rp->ph.n > 0 && rp->ph.a[0]->until <= now) {
    pair_forget(rp, (pair *)rp->ph.a[0]);
    n++;
  }
  while (rp->fh.n > 0 && rp->fh.a[0]->until <= now)
    floor_forget(rp, (floor_ *)rp->fh.a[0]);
  return n;
}

int gv_trk_replay_peek(gv_trk_replay *rp, const uint8_t id[GV_ID_BYTES],
                       const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                       int64_t now, gv_why *why) {
  uint8_t key[PAIR_BYTES];
  const floor_ *f;

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
  f = gv_trk_map_get(&rp->floors, id, GV_ID_BYTES);
  if (f != NULL && ts <= f->ts)
    return gv_fail(why, GV_EDUP,
                   "a request of this id signed at or before this ts was "
                   "forgotten to make room; sign a new one");
  if (ts <= rp->gfloor_ts)
    return gv_fail(why, GV_EDUP,
                   "requests signed at or before this ts were forgotten to "
                   "make room; sign a new one");
  memcpy(key, id, GV_ID_BYTES);
  memcpy(key + GV_ID_BYTES, nonce, GV_TRK_NONCE_BYTES);
  if (gv_trk_map_get(&rp->map, key, PAIR_BYTES) != NULL)
    return gv_fail(why, GV_EDUP, "this nonce was already used");
  return 0;
}

int gv_trk_replay_admit(gv_trk_replay *rp, const gv_trk_ipkey *src,
                        const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why) {
  const source *s, *h;
  int rc;

  if ((rc = gv_trk_replay_peek(rp, id, nonce, ts, now, why)) < 0)
    return rc;
  if (rp->n < rp->cap)
    return 0;
  /* Full: the heaviest source pays, unless it is this one (or ties). */
  s = gv_trk_map_get(&rp->srcs, src->b, sizeof(src->b));
  h = rp->by_count[rp->max_n];
  if (h == NULL || h == s || h->n <= (s ? s->n : 0))
    return gv_fail(why, -EAGAIN,
                   "too many signed requests from this address; retry later");
  return 0;
}

int gv_trk_replay_record(gv_trk_replay *rp, const gv_trk_ipkey *src,
                         const uint8_t id[GV_ID_BYTES],
                         const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                         gv_why *why) {
  source *s = gv_trk_map_get(&rp->srcs, src->b, sizeof(src->b));
  pair *p;
  int rc;

  if (rp->n == rp->cap) {
    /* admit found the heaviest source heavier than src. */
    source *h = rp->by_count[rp->max_n];
    assert(h != NULL && h != s);
    if ((rc = floor_raise(rp, h->oldest)) < 0)
      return gv_fail(why, rc, "out of memory");
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
  s->n++;
  bucket_link(rp, s);
  p = pair_alloc(rp);
  memset(p, 0, sizeof(*p));
  memcpy(p->key, id, GV_ID_BYTES);
  memcpy(p->key + GV_ID_BYTES, nonce, GV_TRK_NONCE_BYTES);
  p->ts = ts;
  p->t.until = ts + GV_TRK_SKEW_MS + 1; /* > now: peek refused older ts */
  p->src = s;
  if (gv_trk_map_put(&rp->map, p->key, PAIR_BYTES, p) < 0) {
    /* Undo: p is on no list yet. */
    source_dec(rp, s);
    p->s_newer = rp->free;
    rp->free = p;
    return gv_fail(why, GV_ENOMEM, "out of memory");
  }
  heap_push(&rp->ph, &p->t);
  p->s_older = s->newest;
  if (s->newest)
    s->newest->s_newer = p;
  else
    s->oldest = p;
  s->newest = p;
  rp->n++;
  return 0;
}

int gv_trk_replay_check(gv_trk_replay *rp, const gv_trk_ipkey *src,
                        const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why) {
  int rc = gv_trk_replay_admit(rp, src, id, nonce, ts, now, why);

  return rc < 0 ? rc : gv_trk_replay_record(rp, src, id, nonce, ts, why);
}

int gv_trk_replay_register(gv_trk_replay *rp, gv_trk_reg *reg,
                           const gv_trk_rec *rec,
                           const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                           int64_t now, int *nrc, gv_why *why, gv_why *nwhy) {
  gv_trk_ipkey src;
  int rc;

  gv_trk_ipkey_of(&src, &rec->addr);
  *nrc = gv_trk_replay_admit(rp, &src, rec->id, nonce, ts, now, nwhy);
  if (*nrc < 0)
    return 0; /* nothing begun, nothing taken back */
  rc = gv_trk_reg_begin(reg, rec, now, why);
  if (rc < 0 && rc != GV_EBUSY)
    return rc; /* refused: the nonce stays unrecorded */
  *nrc = gv_trk_replay_record(rp, &src, rec->id, nonce, ts, nwhy);
  if (*nrc < 0) {
    if (rc >= 0) {
      int arc = gv_trk_reg_abort(reg, rec->id, 1);
      assert(arc == 0); /* keep 1: nothing visible removed */
      (void)arc;
    }
    return 0;
  }
  return rc;
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

/* The fair share of the connection cap; see fair.h. */
#include "fair.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "map.h"

/* Sources tried for a victim past the heaviest before the newcomer is
 * refused: keeps an add O(1) in the number of sources. */
#define FAIR_TRIES 8

/* One source's connections, in accept order. */
struct gv_trk_fair_src {
  gv_trk_ipkey key;
  size_t open; /* not shut */
  gv_trk_fair_conn *first, *last;
  gv_trk_fair_src *prev, *next; /* at[open] */
};

/* Sources are bucketed by open count: at[k] lists those holding exactly k
 * (0 <= k <= cap + 1, the newcomer counted). The non-empty counts form a
 * list, below[k] and above[k], between the bottom 0 (always in it) and the
 * top sentinel top = cap + 2; below[top] is the heaviest count. Counts move
 * by one, so every update is O(1). */
struct gv_trk_fair {
  gv_trk_map srcs; /* of gv_trk_fair_src, by key */
  size_t open;     /* not shut */
  size_t cap;
  gv_trk_fair_src **at;  /* [cap + 3] */
  size_t *below, *above; /* [cap + 3]; valid for counts in the list */
  size_t top;
  gv_trk_fair_evictable evictable;
  void *ctx;
};

static int src_match(const void *item, const void *key, size_t len) {
  return len == sizeof(gv_trk_ipkey) &&
         memcmp(((const gv_trk_fair_src *)item)->key.b, key, len) == 0;
}

int gv_trk_fair_new(gv_trk_fair **out, size_t cap, const uint8_t key[16],
                    gv_trk_fair_evictable evictable, void *ctx) {
  gv_trk_fair *f;

  *out = NULL;
  if (cap == 0 || cap > SIZE_MAX / sizeof(size_t) - 3 || evictable == NULL)
    return GV_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return GV_ENOMEM;
  if ((f->at = calloc(cap + 3, sizeof(*f->at))) == NULL ||
      (f->below = calloc(cap + 3, sizeof(*f->below))) == NULL ||
      (f->above = calloc(cap + 3, sizeof(*f->above))) == NULL) {
    free(f->at);
    free(f->below);
    free(f);
    return GV_ENOMEM;
  }
  f->top = cap + 2;
  f->above[0] = f->top;
  f->below[f->top] = 0;
  gv_trk_map_init(&f->srcs, key, src_match);
  f->cap = cap;
  f->evictable = evictable;
  f->ctx = ctx;
  *out = f;
  return 0;
}

void gv_trk_fair_free(gv_trk_fair *f) {
  size_t pos = 0;
  void *it;

  if (f == NULL)
    return;
  while ((it = gv_trk_map_next(&f->srcs, &pos)) != NULL)
    free(it);
  gv_trk_map_free(&f->srcs);
  free(f->at);
  free(f->below);
  free(f->above);
  free(f);
}

/* ---- sources, bucketed by open count ---- */

static void src_unlink(gv_trk_fair *f, gv_trk_fair_src *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    f->at[s->open] = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void src_link(gv_trk_fair *f, gv_trk_fair_src *s) {
  s->prev = NULL;
  s->next = f->at[s->open];
  if (s->next != NULL)
    s->next->prev = s;
  f->at[s->open] = s;
}

/* Count k, empty until now, enters the list between lo and hi. */
static void level_insert(gv_trk_fair *f, size_t k, size_t lo, size_t hi) {
  f->below[k] = lo;
  f->above[k] = hi;
  f->above[lo] = k;
  f->below[hi] = k;
}

/* s->open becomes s->open + 1 (up 1) or s->open - 1 (up 0). */
static void src_move(gv_trk_fair *f, gv_trk_fair_src *s, int up) {
  size_t k = s->open, j = up ? k + 1 : k - 1;

  if (f->at[j] == NULL && j != 0) {
    if (up)
      level_insert(f, j, k, f->above[k]);
    else
      level_insert(f, j, f->below[k], k);
  }
  src_unlink(f, s);
  s->open = j;
  src_link(f, s);
  if (f->at[k] == NULL && k != 0) {
    f->above[f->below[k]] = f->above[k];
    f->below[f->above[k]] = f->below[k];
  }
}

void gv_trk_fair_shut(gv_trk_fair *f, gv_trk_fair_conn *c) {
  if (c->src == NULL || c->shut)
    return;
  c->shut = 1;
  src_move(f, c->src, 0);
  f->open--;
}

/* Past the cap: the connection to close for the newcomer c. The sources
 * holding more than c's, heaviest first, at most FAIR_TRIES of them: the
 * first one's oldest evictable connection, else c. */
static gv_trk_fair_conn *victim_for(gv_trk_fair *f, gv_trk_fair_conn *c) {
  size_t mine = c->src->open, tries = 0;

  for (size_t k = f->below[f->top]; k > mine; k = f->below[k])
    for (gv_trk_fair_src *s = f->at[k]; s != NULL; s = s->next) {
      if (tries++ == FAIR_TRIES)
        return c;
      for (gv_trk_fair_conn *v = s->first; v != NULL; v = v->next)
        if (!v->shut && f->evictable(v, f->ctx))
          return v;
    }
  return c;
}

int gv_trk_fair_add(gv_trk_fair *f, gv_trk_fair_conn *c,
                    const gv_trk_ipkey *src, gv_trk_fair_conn **victim) {
  gv_trk_fair_src *s = gv_trk_map_get(&f->srcs, src->b, sizeof(src->b));
  int rc;

  *victim = NULL;
  if (s == NULL) {
    if ((s = calloc(1, sizeof(*s))) == NULL)
      return GV_ENOMEM;
    s->key = *src;
    if ((rc = gv_trk_map_put(&f->srcs, s->key.b, sizeof(s->key.b), s)) < 0) {
      free(s);
      return rc;
    }
    src_link(f, s);
  }
  c->src = s;
  c->shut = 0;
  c->next = NULL;
  c->prev = s->last;
  if (s->last != NULL)
    s->last->next = c;
  else
    s->first = c;
  s->last = c;
  src_move(f, s, 1);
  f->open++;
  if (f->open > f->cap) {
    *victim = victim_for(f, c);
    gv_trk_fair_shut(f, *victim);
  }
  return 0;
}

void gv_trk_fair_remove(gv_trk_fair *f, gv_trk_fair_conn *c) {
  gv_trk_fair_src *s = c->src;

  if (s == NULL)
    return;
  gv_trk_fair_shut(f, c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->first = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  else
    s->last = c->prev;
  if (s->first == NULL) {
    src_unlink(f, s); /* at 0: every connection is shut */
    gv_trk_map_del(&f->srcs, s->key.b, sizeof(s->key.b));
    free(s);
  }
  memset(c, 0, sizeof(*c));
}

size_t gv_trk_fair_open(const gv_trk_fair *f) { return f->open; }

size_t gv_trk_fair_open_of(const gv_trk_fair *f, const gv_trk_ipkey *src) {
  const gv_trk_fair_src *s = gv_trk_map_get(&f->srcs, src->b, sizeof(src->b));

  return s != NULL ? s->open : 0;
}

void gv_trk_fair_each(gv_trk_fair *f,
                      void (*fn)(gv_trk_fair_conn *c, void *ctx), void *ctx) {
  gv_trk_fair_src *s;
  size_t pos = 0;

  while ((s = gv_trk_map_next(&f->srcs, &pos)) != NULL)
    for (gv_trk_fair_conn *c = s->first; c != NULL; c = c->next)
      fn(c, ctx);
}

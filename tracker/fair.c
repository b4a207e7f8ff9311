/* The fair share of the connection cap; see fair.h. */
#include "fair.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "map.h"

/* One source's connections, in accept order. */
struct gv_trk_fair_src {
  gv_trk_ipkey key;
  size_t open; /* not shut */
  gv_trk_fair_conn *first, *last;
};

struct gv_trk_fair {
  gv_trk_map srcs; /* of gv_trk_fair_src, by key */
  size_t open;     /* not shut */
  size_t cap;
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
  if (cap == 0 || evictable == NULL)
    return GV_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return GV_ENOMEM;
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
  free(f);
}

void gv_trk_fair_shut(gv_trk_fair *f, gv_trk_fair_conn *c) {
  if (c->src == NULL || c->shut)
    return;
  c->shut = 1;
  c->src->open--;
  f->open--;
}

/* Past the cap: the connection to close for the newcomer c. */
static gv_trk_fair_conn *victim_for(gv_trk_fair *f, gv_trk_fair_conn *c) {
  gv_trk_fair_src *heavy = NULL, *s;
  size_t pos = 0;

  while ((s = gv_trk_map_next(&f->srcs, &pos)) != NULL)
    if (heavy == NULL || s->open > heavy->open)
      heavy = s;
  if (heavy == NULL || c->src->open >= heavy->open)
    return c;
  for (gv_trk_fair_conn *v = heavy->first; v != NULL; v = v->next)
    if (!v->shut && f->evictable(v, f->ctx))
      return v;
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
  s->open++;
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

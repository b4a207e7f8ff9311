#include "bucket.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

#define MILLI 1000 /* levels are in thousandths of a token */

typedef struct bucket {
  gv_trk_ipkey key;
  int64_t level; /* milli-tokens at `last` */
  int64_t last;
  struct bucket *prev, *next; /* least recently used first */
} bucket;

struct gv_trk_buckets {
  int64_t rate; /* tokens/s, that is milli-tokens/ms */
  int64_t full; /* burst in milli-tokens */
  size_t cap;
  gv_trk_map map;
  bucket *head, *tail;
  int64_t last_now;
};

static int bucket_match(const void *item, const void *key, size_t len) {
  return len == sizeof(gv_trk_ipkey) &&
         memcmp(((const bucket *)item)->key.b, key, len) == 0;
}

int gv_trk_buckets_new(gv_trk_buckets **out, unsigned rate, unsigned burst,
                       size_t cap, const uint8_t hash_key[16]) {
  gv_trk_buckets *b;

  *out = NULL;
  if (rate < 1 || burst < 1 || cap < 1)
    return GV_EINVAL;
  if ((b = calloc(1, sizeof(*b))) == NULL)
    return GV_ENOMEM;
  b->rate = rate;
  b->full = (int64_t)burst * MILLI;
  b->cap = cap;
  b->last_now = INT64_MIN;
  gv_trk_map_init(&b->map, hash_key, bucket_match);
  *out = b;
  return 0;
}

void gv_trk_buckets_free(gv_trk_buckets *b) {
  size_t pos = 0;
  void *it;

  if (b == NULL)
    return;
  while ((it = gv_trk_map_next(&b->map, &pos)) != NULL)
    free(it);
  gv_trk_map_free(&b->map);
  free(b);
}

static void unlink_bucket(gv_trk_buckets *b, bucket *k) {
  if (k->prev)
    k->prev->next = k->next;
  else
    b->head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  else
    b->tail = k->prev;
  k->prev = k->next = NULL;
}

static void append(gv_trk_buckets *b, bucket *k) {
  k->prev = b->tail;
  k->next = NULL;
  if (b->tail)
    b->tail->next = k;
  else
    b->head = k;
  b->tail = k;
}

static void drop(gv_trk_buckets *b, bucket *k) {
  unlink_bucket(b, k);
  gv_trk_map_del(&b->map, k->key.b, sizeof(k->key.b));
  free(k);
}

/* The level at now, capped at full. */
static int64_t level_at(const gv_trk_buckets *b, const bucket *k, int64_t now) {
  int64_t dt = now - k->last;

  if (dt >= (b->full - k->level) / b->rate + 1)
    return b->full;
  return k->level + dt * b->rate;
}

static void clock_at(gv_trk_buckets *b, int64_t now) {
  assert(now >= b->last_now);
  b->last_now = now;
}

int gv_trk_buckets_take(gv_trk_buckets *b, const gv_trk_ipkey *key, int64_t now,
                        int64_t *retry_ms) {
  bucket *k = gv_trk_map_get(&b->map, key->b, sizeof(key->b));

  clock_at(b, now);
  if (k == NULL) {
    if (b->map.count >= b->cap)
      drop(b, b->head);
    if ((k = calloc(1, sizeof(*k))) == NULL)
      return GV_ENOMEM;
    k->key = *key;
    k->level = b->full;
    k->last = now;
    if (gv_trk_map_put(&b->map, k->key.b, sizeof(k->key.b), k) < 0) {
      free(k);
      return GV_ENOMEM;
    }
  } else {
    k->level = level_at(b, k, now);
    k->last = now;
    unlink_bucket(b, k);
  }
  append(b, k);
  if (k->level < MILLI) {
    *retry_ms = (MILLI - k->level + b->rate - 1) / b->rate;
    return GV_EBUSY;
  }
  k->level -= MILLI;
  return 0;
}

size_t gv_trk_buckets_sweep(gv_trk_buckets *b, int64_t now) {
  size_t n = 0;

  clock_at(b, now);
  while (b->head != NULL && level_at(b, b->head, now) >= b->full) {
    drop(b, b->head);
    n++;
  }
  return n;
}

size_t gv_trk_buckets_count(const gv_trk_buckets *b) { return b->map.count; }

#include "map.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define MIN_CAP 16

static uint64_t hash_of(const gv_trk_map *m, const void *key, size_t len) {
  uint8_t out[crypto_shorthash_BYTES];
  uint64_t h;

  crypto_shorthash(out, key, len, m->key);
  memcpy(&h, out, sizeof(h));
  return h;
}

void gv_trk_map_init(gv_trk_map *m, const uint8_t key[GV_TRK_MAP_KEY_BYTES],
                     gv_trk_map_eq eq) {
  memset(m, 0, sizeof(*m));
  memcpy(m->key, key, GV_TRK_MAP_KEY_BYTES);
  m->eq = eq;
}

void gv_trk_map_free(gv_trk_map *m) {
  free(m->slots);
  sodium_memzero(m->key, sizeof(m->key));
  memset(m, 0, sizeof(*m));
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const gv_trk_map *m, uint64_t h, const void *key,
                   size_t len) {
  size_t mask = m->cap - 1, i = (size_t)h & mask;

  while (m->slots[i].item != NULL &&
         !(m->slots[i].hash == h && m->eq(m->slots[i].item, key, len)))
    i = (i + 1) & mask;
  return i;
}

void *gv_trk_map_get(const gv_trk_map *m, const void *key, size_t len) {
  if (m->count == 0)
    return NULL;
  return m->slots[find(m, hash_of(m, key, len), key, len)].item;
}

/* Load factor at most 1/2 keeps probe runs short. */
static int grow(gv_trk_map *m) {
  size_t ncap = m->cap ? m->cap * 2 : MIN_CAP, mask = ncap - 1;
  gv_trk_map_slot *ns = calloc(ncap, sizeof(*ns));

  if (ns == NULL)
    return GV_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    size_t j;
    if (m->slots[i].item == NULL)
      continue;
    j = (size_t)m->slots[i].hash & mask;
    while (ns[j].item != NULL)
      j = (j + 1) & mask;
    ns[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int gv_trk_map_put(gv_trk_map *m, const void *key, size_t len, void *item) {
  uint64_t h = hash_of(m, key, len);
  size_t i;
  int rc;

  if ((m->count + 1) * 2 > m->cap && (rc = grow(m)) < 0)
    return rc;
  i = find(m, h, key, len);
  m->slots[i].hash = h;
  m->slots[i].item = item;
  m->count++;
  return 0;
}

void *gv_trk_map_del(gv_trk_map *m, const void *key, size_t len) {
  size_t mask, i, j;
  void *item;

  if (m->count == 0)
    return NULL;
  mask = m->cap - 1;
  i = find(m, hash_of(m, key, len), key, len);
  if ((item = m->slots[i].item) == NULL)
    return NULL;
  /* Backward shift: move later members of the probe run into the hole
   * unless their home slot lies cyclically in (i, j]. */
  for (j = (i + 1) & mask; m->slots[j].item != NULL; j = (j + 1) & mask) {
    size_t home = (size_t)m->slots[j].hash & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].item = NULL;
  m->slots[i].hash = 0;
  m->count--;
  return item;
}

void *gv_trk_map_next(const gv_trk_map *m, size_t *pos) {
  while (*pos < m->cap) {
    void *item = m->slots[(*pos)++].item;
    if (item != NULL)
      return item;
  }
  return NULL;
}

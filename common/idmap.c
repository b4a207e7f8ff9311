#include "idmap.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static size_t hash(const gv_idmap *m, const uint8_t id[32]) {
  uint8_t out[crypto_shorthash_siphash24_BYTES];
  uint64_t h;
  crypto_shorthash_siphash24(out, id, 32, m->key);
  memcpy(&h, out, sizeof(h));
  return (size_t)h;
}

void gv_idmap_init(gv_idmap *m, const uint8_t key[GV_IDMAP_KEY_BYTES]) {
  memset(m, 0, sizeof(*m));
  memcpy(m->key, key, GV_IDMAP_KEY_BYTES);
}

void gv_idmap_free(gv_idmap *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->len = 0;
}

static gv_idmap_slot *find(const gv_idmap *m, const uint8_t key[32]) {
  size_t mask = m->cap - 1;

  if (m->cap == 0)
    return NULL;
  for (size_t i = hash(m, key) & mask;; i = (i + 1) & mask) {
    gv_idmap_slot *s = &m->slots[i];
    if (s->val == NULL)
      return NULL;
    if (memcmp(s->key, key, 32) == 0)
      return s;
  }
}

void *gv_idmap_get(const gv_idmap *m, const uint8_t key[32]) {
  gv_idmap_slot *s = find(m, key);
  return s != NULL ? s->val : NULL;
}

static int grow(gv_idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 8;
  gv_idmap_slot *old = m->slots, *slots = calloc(cap, sizeof(*slots));
  size_t old_cap = m->cap;

  if (slots == NULL)
    return GV_ENOMEM;
  m->slots = slots;
  m->cap = cap;
  m->len = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].val != NULL)
      gv_idmap_put(m, old[i].key, old[i].val); /* cannot fail: room */
  free(old);
  return 0;
}

int gv_idmap_put(gv_idmap *m, const uint8_t key[32], void *val) {
  gv_idmap_slot *s = find(m, key);
  size_t mask;

  if (s != NULL) {
    s->val = val;
    return 0;
  }
  /* Keep the load factor at or below 3/4. */
  if ((m->len + 1) * 4 > m->cap * 3 && grow(m) < 0)
    return GV_ENOMEM;
  mask = m->cap - 1;
  for (size_t i = hash(m, key) & mask;; i = (i + 1) & mask) {
    if (m->slots[i].val == NULL) {
      memcpy(m->slots[i].key, key, 32);
      m->slots[i].val = val;
      m->len++;
      return 0;
    }
  }
}

void *gv_idmap_del(gv_idmap *m, const uint8_t key[32]) {
  gv_idmap_slot *s = find(m, key);
  size_t mask = m->cap - 1, i, j;
  void *val;

  if (s == NULL)
    return NULL;
  val = s->val;
  i = (size_t)(s - m->slots);
  /* Backward-shift: move later members of the probe run into the hole. */
  for (j = (i + 1) & mask; m->slots[j].val != NULL; j = (j + 1) & mask) {
    size_t home = hash(m, m->slots[j].key) & mask;
    /* Move j into i unless its home lies cyclically in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && home <= i && home > j)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].val = NULL;
  m->len--;
  return val;
}

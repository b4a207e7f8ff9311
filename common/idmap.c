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
  uint32_t cap = m->cap ? m->cap * 2 : 8;
  gv_idmap_slot *old = m->slots, *slots;
  uint32_t old_cap = m->cap;

  if (old_cap >= GV_IDMAP_CAP_MAX ||
      (slots = calloc(cap, sizeof(*slots))) == NULL)
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
  if ((uint64_t)(m->len + 1) * 4 > (uint64_t)m->cap * 3 && grow(m) < 0)
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

/* ---- gv_idtab ---- */

static uint64_t tab_hash(const gv_idtab *t, const uint8_t id[32]) {
  uint8_t out[crypto_shorthash_siphash24_BYTES];
  uint64_t h;
  crypto_shorthash_siphash24(out, id, 32, t->key);
  memcpy(&h, out, sizeof(h));
  return h;
}

static const uint8_t *tab_id(const gv_idtab *t, const void *val) {
  return (const uint8_t *)val + t->off;
}

void gv_idtab_init(gv_idtab *t, const uint8_t key[GV_IDMAP_KEY_BYTES],
                   size_t off) {
  memset(t, 0, sizeof(*t));
  memcpy(t->key, key, GV_IDMAP_KEY_BYTES);
  t->off = off;
}

void gv_idtab_free(gv_idtab *t) {
  free(t->slots);
  t->slots = NULL;
  t->cap = t->len = 0;
}

static gv_idtab_slot *tab_find(const gv_idtab *t, const uint8_t id[32],
                               uint64_t h) {
  size_t mask = t->cap - 1;

  if (t->cap == 0)
    return NULL;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    gv_idtab_slot *s = &t->slots[i];
    if (s->val == NULL)
      return NULL;
    if (s->hash == h && memcmp(tab_id(t, s->val), id, 32) == 0)
      return s;
  }
}

void *gv_idtab_get(const gv_idtab *t, const uint8_t id[32]) {
  gv_idtab_slot *s;

  if (t->cap == 0)
    return NULL;
  s = tab_find(t, id, tab_hash(t, id));
  return s != NULL ? s->val : NULL;
}

/* Places slot s (a member's) in the first empty slot of its probe run. */
static void tab_place(gv_idtab *t, gv_idtab_slot s) {
  size_t mask = t->cap - 1, i = (size_t)s.hash & mask;
  while (t->slots[i].val != NULL)
    i = (i + 1) & mask;
  t->slots[i] = s;
}

static int tab_grow(gv_idtab *t) {
  uint32_t old_cap = t->cap, cap = old_cap ? old_cap * 2 : 8;
  gv_idtab_slot *old = t->slots, *slots;

  if (old_cap >= GV_IDMAP_CAP_MAX ||
      (slots = calloc(cap, sizeof(*slots))) == NULL)
    return GV_ENOMEM;
  t->slots = slots;
  t->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].val != NULL)
      tab_place(t, old[i]);
  free(old);
  return 0;
}

int gv_idtab_put(gv_idtab *t, void *val) {
  const uint8_t *id = tab_id(t, val);
  uint64_t h = tab_hash(t, id);
  gv_idtab_slot *s = tab_find(t, id, h);

  if (s != NULL) {
    s->val = val;
    return 0;
  }
  /* Keep the load factor at or below 3/4. */
  if ((uint64_t)(t->len + 1) * 4 > (uint64_t)t->cap * 3 && tab_grow(t) < 0)
    return GV_ENOMEM;
  tab_place(t, (gv_idtab_slot){val, h});
  t->len++;
  return 0;
}

void *gv_idtab_del(gv_idtab *t, const uint8_t id[32]) {
  gv_idtab_slot *s;
  size_t mask = t->cap - 1, i, j;
  void *val;

  if (t->cap == 0 || (s = tab_find(t, id, tab_hash(t, id))) == NULL)
    return NULL;
  val = s->val;
  i = (size_t)(s - t->slots);
  /* Backward-shift: move later members of the probe run into the hole. */
  for (j = (i + 1) & mask; t->slots[j].val != NULL; j = (j + 1) & mask) {
    size_t home = (size_t)t->slots[j].hash & mask;
    /* Move j into i unless its home lies cyclically in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && home <= i && home > j)) {
      t->slots[i] = t->slots[j];
      i = j;
    }
  }
  t->slots[i].val = NULL;
  t->len--;
  return val;
}

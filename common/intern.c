/* common/intern.h: shared, reference-counted strings. */
#include "intern.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

typedef struct item {
  uint64_t hash;
  uint32_t refs, len;
  char s[]; /* len bytes, then a NUL */
} item;

struct gv_intern {
  uint8_t key[GV_INTERN_KEY_BYTES];
  item **slots; /* NULL: empty */
  size_t cap;   /* a power of two, or 0 before the first string */
  size_t len;
};

static uint64_t hash(const gv_intern *p, const char *s, size_t len) {
  uint8_t out[crypto_shorthash_siphash24_BYTES];
  uint64_t h;
  crypto_shorthash_siphash24(out, (const unsigned char *)s, len, p->key);
  memcpy(&h, out, sizeof(h));
  return h;
}

static item *item_of(const char *s) {
  return (item *)(void *)(s - offsetof(item, s));
}

int gv_intern_new(gv_intern **out, const uint8_t key[GV_INTERN_KEY_BYTES]) {
  gv_intern *p = calloc(1, sizeof(*p));

  *out = p;
  if (p == NULL)
    return GV_ENOMEM;
  memcpy(p->key, key, GV_INTERN_KEY_BYTES);
  return 0;
}

void gv_intern_free(gv_intern *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->cap; i++)
    free(p->slots[i]);
  free(p->slots);
  free(p);
}

size_t gv_intern_count(const gv_intern *p) { return p->len; }

/* Places it in the first empty slot of its probe run. */
static void place(gv_intern *p, item *it) {
  size_t mask = p->cap - 1, i = (size_t)it->hash & mask;
  while (p->slots[i] != NULL)
    i = (i + 1) & mask;
  p->slots[i] = it;
}

static int grow(gv_intern *p) {
  size_t old_cap = p->cap, cap = old_cap ? old_cap * 2 : 64;
  item **old = p->slots;

  if ((p->slots = calloc(cap, sizeof(*p->slots))) == NULL) {
    p->slots = old;
    return GV_ENOMEM;
  }
  p->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i] != NULL)
      place(p, old[i]);
  free(old);
  return 0;
}

const char *gv_intern_get(gv_intern *p, const char *s, size_t len) {
  uint64_t h = hash(p, s, len);
  item *it;

  if (len > UINT32_MAX)
    return NULL;
  for (size_t mask = p->cap - 1, i = (size_t)h & mask; p->cap > 0;
       i = (i + 1) & mask) {
    it = p->slots[i];
    if (it == NULL)
      break;
    if (it->hash == h && it->len == len && memcmp(it->s, s, len) == 0 &&
        it->refs < UINT32_MAX) {
      it->refs++;
      return it->s;
    }
  }
  /* Keep the load factor at or below 3/4. */
  if ((p->len + 1) * 4 > p->cap * 3 && grow(p) < 0)
    return NULL;
  if ((it = malloc(sizeof(*it) + len + 1)) == NULL)
    return NULL;
  it->hash = h;
  it->refs = 1;
  it->len = (uint32_t)len;
  memcpy(it->s, s, len);
  it->s[len] = '\0';
  place(p, it);
  p->len++;
  return it->s;
}

void gv_intern_drop(gv_intern *p, const char *s) {
  item *it;
  size_t mask = p->cap - 1, i, j;

  if (s == NULL)
    return;
  it = item_of(s);
  if (--it->refs > 0)
    return;
  for (i = (size_t)it->hash & mask; p->slots[i] != it; i = (i + 1) & mask)
    ;
  /* Backward-shift: move later members of the probe run into the hole. */
  for (j = (i + 1) & mask; p->slots[j] != NULL; j = (j + 1) & mask) {
    size_t home = (size_t)p->slots[j]->hash & mask;
    /* Move j into i unless its home lies cyclically in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && home <= i && home > j)) {
      p->slots[i] = p->slots[j];
      i = j;
    }
  }
  p->slots[i] = NULL;
  p->len--;
  free(it);
}

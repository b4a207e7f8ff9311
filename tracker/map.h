/* A hash table of borrowed items, keyed by bytes the items embed: open
 * addressing, linear probing, backward-shift deletion, SipHash
 * (crypto_shorthash) with a caller-chosen random key so that keys picked by
 * a client cannot collide on purpose. Sans-I/O.
 *
 * Lifetime: a gv_trk_map is embedded by its owner, set up with
 * gv_trk_map_init() and released with gv_trk_map_free(), which frees the
 * table but never the items. The map stores item pointers; an item must
 * stay put while it is in the map. Not thread-safe.
 */
#ifndef GV_TRK_MAP_H
#define GV_TRK_MAP_H

#include <stddef.h>
#include <stdint.h>

#define GV_TRK_MAP_KEY_BYTES 16

/* Nonzero when item's key is key[0..len). */
typedef int (*gv_trk_map_eq)(const void *item, const void *key, size_t len);

typedef struct gv_trk_map_slot {
  uint64_t hash;
  void *item; /* NULL: empty */
} gv_trk_map_slot;

typedef struct gv_trk_map {
  gv_trk_map_slot *slots;
  size_t cap; /* 0 or a power of two */
  size_t count;
  gv_trk_map_eq eq;
  uint8_t key[GV_TRK_MAP_KEY_BYTES];
} gv_trk_map;

void gv_trk_map_init(gv_trk_map *m, const uint8_t key[GV_TRK_MAP_KEY_BYTES],
                     gv_trk_map_eq eq);
void gv_trk_map_free(gv_trk_map *m);

/* The item with this key, or NULL. */
void *gv_trk_map_get(const gv_trk_map *m, const void *key, size_t len);

/* Adds item under key; the key must not be present. 0 or GV_ENOMEM. */
int gv_trk_map_put(gv_trk_map *m, const void *key, size_t len, void *item);

/* Removes and returns the item with this key, or NULL. */
void *gv_trk_map_del(gv_trk_map *m, const void *key, size_t len);

/* Iteration: start with *pos = 0; returns the next item or NULL at the end.
 * The map must not change during an iteration. */
void *gv_trk_map_next(const gv_trk_map *m, size_t *pos);

#endif

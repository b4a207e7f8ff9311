/* A hash map from 32-byte ids (node ids, message ids) to pointers. Open
 * addressing with linear probing and backward-shift deletion. Ids come
 * from the network and a peer can grind them (a node id is any public key
 * it likes), so slots are chosen by SipHash-2-4 under a secret per-map key:
 * nobody can aim ids at one probe run. Pure: no I/O, no global state.
 *
 * Lifetime: the map owns its slot array, not the values. Keys are copied.
 * gv_idmap_free() releases the slots; values are the caller's.
 */
#ifndef GV_IDMAP_H
#define GV_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/* The most slots a map grows to (32-bit counts): a put past 3/4 of it
 * fails with GV_ENOMEM. */
#define GV_IDMAP_CAP_MAX (1u << 31)

typedef struct gv_idmap_slot {
  uint8_t key[32];
  void *val; /* NULL marks an empty slot */
} gv_idmap_slot;

typedef struct gv_idmap {
  uint8_t key[16]; /* SipHash key: secret and random in a node */
  gv_idmap_slot *slots;
  uint32_t cap; /* a power of two, or 0 before the first insert */
  uint32_t len;
} gv_idmap;

#define GV_IDMAP_KEY_BYTES 16

/* key: GV_IDMAP_KEY_BYTES of secret randomness (a node draws it from
 * libsodium; the simulator from its seed). */
void gv_idmap_init(gv_idmap *m, const uint8_t key[GV_IDMAP_KEY_BYTES]);
void gv_idmap_free(gv_idmap *m);

void *gv_idmap_get(const gv_idmap *m, const uint8_t key[32]);

/* Inserts or replaces; val must not be NULL. Returns 0 or GV_ENOMEM. */
int gv_idmap_put(gv_idmap *m, const uint8_t key[32], void *val);

/* Removes key; returns its value, or NULL if absent. */
void *gv_idmap_del(gv_idmap *m, const uint8_t key[32]);

/* ---- gv_idtab: the same, for objects that hold their own id ----
 *
 * A map from 32-byte ids to objects that hold their id at a fixed offset
 * (a table entry, a dedup item): a slot keeps the object and its hash, 16
 * bytes instead of gv_idmap's 40, and no key is copied. The same keyed
 * hash, probing and deletion. The simulator holds several per node.
 *
 * Lifetime: the map owns its slot array, not the objects; an object must
 * stay in place, its id unchanged, while the map holds it.
 */
typedef struct gv_idtab_slot {
  void *val; /* NULL marks an empty slot */
  uint64_t hash;
} gv_idtab_slot;

typedef struct gv_idtab {
  uint8_t key[GV_IDMAP_KEY_BYTES]; /* SipHash key, as gv_idmap's */
  gv_idtab_slot *slots;
  uint32_t cap; /* a power of two, or 0 before the first insert */
  uint32_t len;
  uint32_t off; /* of the id in each object */
} gv_idtab;

/* off: where each object holds its id (offsetof). */
void gv_idtab_init(gv_idtab *t, const uint8_t key[GV_IDMAP_KEY_BYTES],
                   size_t off);
void gv_idtab_free(gv_idtab *t);

void *gv_idtab_get(const gv_idtab *t, const uint8_t id[32]);

/* Inserts val under the id it holds, or replaces the object holding an
 * equal id; val must not be NULL. Returns 0 or GV_ENOMEM. */
int gv_idtab_put(gv_idtab *t, void *val);

/* Removes id; returns its object, or NULL if absent. */
void *gv_idtab_del(gv_idtab *t, const uint8_t id[32]);

#endif

/* A pool of shared, reference-counted strings: equal contents share one
 * NUL-terminated copy. The simulator gives one pool to all its engines,
 * so a record that a thousand engines hold (the broadcast, a node's record
 * in its neighbours' tables) is stored once. Open addressing with linear
 * probing and backward-shift deletion; slots chosen by XXH3 under a seed
 * from the pool's key. Pure: no I/O, no global state, not thread-safe.
 *
 * Lifetime: gv_intern_new() allocates; every gv_intern_get() takes a
 * reference that gv_intern_drop() gives back, and the last drop frees the
 * string. gv_intern_free() frees the pool and any string still held, so
 * it must outlive every user of its strings.
 */
#ifndef GV_INTERN_H
#define GV_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define GV_INTERN_KEY_BYTES 16

typedef struct gv_intern gv_intern;

/* key: GV_INTERN_KEY_BYTES of secret randomness (the simulator draws it
 * from its seed). Returns 0 or GV_ENOMEM. */
int gv_intern_new(gv_intern **out, const uint8_t key[GV_INTERN_KEY_BYTES]);
void gv_intern_free(gv_intern *p);

/* The pool's copy of s[0..len) (s may hold NULs), with a NUL after it,
 * holding one more reference; NULL only when out of memory. The copy must
 * not be written. It is aligned as malloc's blocks are, so it may be read
 * as any object whose bytes s held. */
const char *gv_intern_get(gv_intern *p, const char *s, size_t len);
/* One more reference to s, a string gv_intern_get() returned: s, or,
 * when s's count is at its limit, a second copy of it (as gv_intern_get()
 * makes); NULL only when out of memory. */
const char *gv_intern_ref(gv_intern *p, const char *s);
/* Gives back one reference to a string gv_intern_get() returned; NULL is
 * ignored. */
void gv_intern_drop(gv_intern *p, const char *s);

/* Distinct strings held. */
size_t gv_intern_count(const gv_intern *p);

/* ---- decoded bodies (SIMULATOR ONLY) ----
 *
 * The pool also remembers signed bodies that passed their own checks, by
 * message id, with what they decoded to (gv_msg_memo, proto/msg.h), so that
 * a body that a thousand engines receive (a broadcast, a node's record in
 * the HELLO of each of its links) is parsed and validated once. At most
 * `max` bodies are kept (GV_INTERN_MEMO_MAX unless set), the oldest put
 * forgotten first: forgetting costs a decode, never changes a result. A
 * body is kept in its kept form (gv_kept_new()) among the pool's strings,
 * where the engines that keep the same record find it: decoding lends it
 * to the message (gv_msg.kept), and the engine takes that string as it
 * is, without building, hashing or comparing its own. The
 * engine and the link core use it when the simulator hands it to them
 * (gv_engine_cfg.bodies, gv_lcore_cfg.memo); a node never does. */
#define GV_INTERN_MEMO_MAX 131072

/* The callbacks for gv_msg_policy.memo, valid as long as the pool. */
const gv_msg_memo *gv_intern_memo(gv_intern *p);
/* Bounds the bodies kept (at least 1), forgetting the oldest beyond it. */
void gv_intern_memo_max(gv_intern *p, size_t max);
/* Bodies kept. */
size_t gv_intern_memo_count(const gv_intern *p);

#endif

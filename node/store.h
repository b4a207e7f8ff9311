/* The node's durable state in SQLite (WAL, synchronous=FULL): the cached
 * peer table and small settings (this node's repositories and broadcast
 * choice). It runs on gv_db (node/db.h, docs/STORAGE.md): one connection,
 * one writer thread, group commit.
 *
 * Writes are write-behind: gv_store_put_peer()/gv_store_del_peer() only
 * queue in memory (cheap, on the caller's thread); gv_store_flush() hands
 * everything queued to the writer as one job and blocks until its
 * transaction has committed. The daemon flushes once a second and at
 * shutdown, so a peer-table change is durable within a second. A setting
 * (gv_store_set) is its own job and is durable when the call returns,
 * because the user was told it is done. Reads (gv_store_get,
 * gv_store_load_peers) run on the caller's thread while the writer is
 * paused between transactions (gv_db_lock), and see committed data.
 *
 * "Durable" is gv_db's guarantee: the COMMIT returned with the WAL
 * fsync()ed, so the change survives kill -9 and a power loss.
 *
 * Lifetime: gv_store_open() returns a handle that gv_store_close() flushes
 * and frees (it owns its gv_db, which has no loop). Not thread-safe: one
 * thread uses a store.
 */
#ifndef GV_STORE_H
#define GV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"

typedef struct gv_store gv_store;

/* Opens or creates the database at path (WAL mode, schema created or
 * checked). An unreadable, corrupt or foreign file is refused with a
 * reason. */
int gv_store_open(gv_store **out, const char *path, gv_why *why);

/* Flushes what is queued, then closes. NULL is a no-op. */
void gv_store_close(gv_store *s);

/* Queues the upsert of one peer: its id, the origin's signed record
 * exactly (body bytes and 64-byte signature) and when it was last seen.
 * Later puts of the same id replace earlier ones in the queue. */
int gv_store_put_peer(gv_store *s, const uint8_t id[GV_ID_BYTES],
                      const char *body, size_t body_len, const uint8_t sig[64],
                      int64_t last_seen);

/* Queues the deletion of one peer. */
int gv_store_del_peer(gv_store *s, const uint8_t id[GV_ID_BYTES]);

/* Number of queued, uncommitted changes. */
size_t gv_store_pending(const gv_store *s);

/* Commits every queued change in one transaction. */
int gv_store_flush(gv_store *s, gv_why *why);

/* Calls cb for every stored peer (any order); cb's pointers are valid only
 * during the call. A non-zero return from cb stops the walk and is
 * returned. */
typedef int (*gv_store_peer_cb)(void *ctx, const uint8_t id[GV_ID_BYTES],
                                const char *body, size_t body_len,
                                const uint8_t sig[64], int64_t last_seen);
int gv_store_load_peers(gv_store *s, gv_store_peer_cb cb, void *ctx);

/* Settings: small text values by key, written and committed at once.
 * gv_store_get returns -ENOENT if the key is absent; out is NUL-terminated
 * and truncated to cap. */
int gv_store_set(gv_store *s, const char *key, const char *value);
int gv_store_get(gv_store *s, const char *key, char *out, size_t cap);

#endif

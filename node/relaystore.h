/* gv_rstore: the relay's rows (node/relay.h, gv_rrow) on disk, in their own
 * SQLite file (the daemon's <data-dir>/relay.db) through their own gv_db
 * (node/db.h): one writer thread, WAL, synchronous=FULL, group commit.
 * docs/STORAGE.md ("The relay's store") has the schema.
 *
 * Durability: gv_rstore_persist() commits a job's rows all or none; its
 * done(ctx, job, status) runs on the loop after the COMMIT that holds them
 * returned (status 0: they survive kill -9 and a power loss), in the order
 * the jobs were persisted. That is gv_db's contract, which the relay core
 * (gv_relay_committed) relies on to acknowledge anything.
 *
 * Threads: every call on the loop's thread.
 *
 * Lifetime: gv_rstore_open() returns a store that gv_rstore_close() ends.
 * Close commits what is queued and calls every pending done (from inside
 * gv_rstore_close); the loop must then run once more so that gv_db frees
 * its handle (libuv's rule).
 */
#ifndef GV_RELAYSTORE_H
#define GV_RELAYSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "relay.h"

typedef struct gv_rstore gv_rstore;

/* Opens or creates the relay's database at path and starts its writer.
 * loop may be NULL for a store that is only loaded (then persist fails with
 * GV_EINVAL). A file that is not a relay database, or whose schema version
 * is not this build's, is refused (GV_EINVAL, GV_EVERSION) and left as it
 * was: never migrated. Every reason in why starts with the path. */
int gv_rstore_open(gv_rstore **out, uv_loop_t *loop, const char *path,
                   gv_why *why);

/* Commits what is queued (each done is called, from here), then closes.
 * NULL is a no-op. Not from inside gv_rstore_load's callback. */
void gv_rstore_close(gv_rstore *s);

/* Calls cb for every stored row, in the order gv_relay_load() accepts:
 *   1. AGENT rows, then MEMBER rows, each in the order first written;
 *   2. each MSG row, in the order inserted, with its current state in
 *      msg.state/msg.reason, followed at once by its trace as STATE rows in
 *      the order they were written;
 *   3. CURSOR rows, in the order each cursor was first written.
 * A row's pointers (the body) are borrowed for the call only; a MSG with
 * no body has body NULL and body_len 0. Reads the committed rows, holding
 * gv_db_lock (a start-up read: writes wait meanwhile). cb must not close
 * the store. A stored row that does not fit its gv_rrow (wrong size or
 * value, which only another writer can leave) stops the load with
 * GV_EINVAL and a reason: the relay must not start on a half-read store. */
int gv_rstore_load(gv_rstore *s, void (*cb)(void *ctx, const gv_rrow *row),
                   void *ctx, gv_why *why);

/* Commits rows[0..n) as one job, all or none, then calls
 * done(ctx, job, status) on the loop after COMMIT, jobs in the order
 * persisted (status 0: durable; < 0: nothing of the job committed, e.g.
 * GV_EINVAL for a constraint: a MSG whose (id, inbound) is stored already,
 * or a STATE for a message that is not). The rows are copied: the caller's
 * buffers may go at once.
 * Returns 0, or at once (done is then never called): GV_EBUSY when gv_db's
 * queue is full (retry once a done has run), GV_EINVAL for n == 0 or a row
 * that is malformed (unknown type, state or reason; a string without its
 * NUL; body NULL with body_len > 0), GV_ETOOBIG for a body over
 * GV_RW_PAYLOAD_MAX or a job over gv_db's byte bound, GV_ESTATE while
 * closing, GV_ENOMEM. */
int gv_rstore_persist(gv_rstore *s, uint64_t job, const gv_rrow *rows, size_t n,
                      void (*done)(void *ctx, uint64_t job, int status),
                      void *ctx);

/* Internal, for tests and benchmarks: gv_rstore_open with gv_db's queue
 * bounded to queue_max jobs (0: GV_DB_QUEUE_MAX). */
int gv__rstore_open(gv_rstore **out, uv_loop_t *loop, const char *path,
                    size_t queue_max, gv_why *why);

#endif

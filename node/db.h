/* gv_db: the node's durable-commit layer. One SQLite connection in WAL
 * mode with synchronous=FULL, one writer thread, group commit, and a
 * completion callback on the libuv loop after COMMIT. docs/STORAGE.md has
 * the thread model and the measured figures.
 *
 * A job is a function run on the writer thread with the sqlite3 handle
 * (gv_db_submit), or SQL statements with bound values, copied at submission
 * (gv_db_exec). The writer takes every job queued while its previous
 * transaction ran and commits them in one transaction (BEGIN IMMEDIATE ...
 * COMMIT), each job inside its own SAVEPOINT, so that a failing job is
 * rolled back alone and the others still commit.
 *
 * The contract of a completion callback, done(ctx, status):
 *   - it runs on the loop's thread, from the loop (or from gv_db_close),
 *     never from inside the submitting call;
 *   - status 0: the job's writes are durable. The COMMIT that holds them
 *     has returned, with synchronous=FULL: the WAL was fsync()ed, so they
 *     survive kill -9 of the process and a power loss (to the extent the
 *     disk honours fsync). Only then may anything be acknowledged upstream;
 *   - status < 0 (a GV_E* or -errno code, see gv_db_status): nothing of the
 *     job was committed;
 *   - callbacks run in submission order, each exactly once.
 * When a function that takes a callback returns an error, the callback is
 * never called (libuv's rule).
 *
 * The queue is bounded: at most queue_max jobs (default GV_DB_QUEUE_MAX)
 * and queue_bytes bytes of copied statements and values (default
 * GV_DB_QUEUE_BYTES) may be outstanding, from submission until their
 * transaction has ended (the room is given back just before the callbacks
 * run, so a callback may submit again). A submission beyond
 * either bound fails at once with GV_EBUSY; nothing is ever dropped.
 *
 * Threads: gv_db_submit, gv_db_exec and gv_db_close are called on the
 * loop's thread. gv_db_call and gv_db_lock may be called on any thread but
 * the writer's. While outstanding jobs wait for their callback, the db
 * keeps the loop alive; when none does, it does not (uv_run returns).
 *
 * Reads: never through the writer. gv_db_lock() waits until the writer is
 * between transactions, pauses it, and lends the handle to the calling
 * thread until gv_db_unlock(); a start-up read (a table loaded into
 * memory) is done that way, on the caller's thread. Reads see committed
 * data only. Holding the lock stalls every write: keep it short.
 *
 * Lifetime: gv_db_open() returns a db that the caller ends with
 * gv_db_close(). Close commits everything queued, calls every pending
 * callback (on the calling thread, which is the loop's), joins the writer
 * and closes the connection; with a loop, the struct itself is freed by
 * the close callback of its uv_async_t, so the loop must run once more
 * after gv_db_close (as for any libuv handle). A submission made after
 * close began (from a callback run by close) fails with GV_ESTATE.
 * gv_db_exec copies sql and values: the caller's buffers may go at once.
 * gv_db_submit's arg is the caller's and must stay valid until done runs.
 */
#ifndef GV_DB_H
#define GV_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

#define GV_DB_QUEUE_MAX 4096                  /* outstanding jobs */
#define GV_DB_QUEUE_BYTES (64u * 1024 * 1024) /* outstanding copied bytes */

typedef struct gv_db gv_db;

/* Called on the loop thread after the job's transaction ended; see the
 * contract above. */
typedef void (*gv_db_done_cb)(void *ctx, int status);

/* A job's work, run on the writer thread inside the group transaction
 * (inside the job's savepoint). Returns 0 or a negative code; on error it
 * may fill why (never NULL). It must not BEGIN, COMMIT or ROLLBACK, and
 * must reset every statement it steps. */
typedef int (*gv_db_fn)(void *arg, sqlite3 *h, gv_why *why);

/* Runs on the caller's thread in gv_db_open, after the connection is open
 * and before the file is changed in any way (no switch to WAL yet) and
 * before the writer starts: check or create a schema there. */
typedef int (*gv_db_init_fn)(void *ctx, sqlite3 *h, gv_why *why);

typedef struct gv_db_opts {
  size_t queue_max;   /* 0: GV_DB_QUEUE_MAX */
  size_t queue_bytes; /* 0: GV_DB_QUEUE_BYTES */
  gv_db_init_fn init; /* optional */
  void *init_ctx;
} gv_db_opts;

/* A path GV_DB_DIRFD_PREFIX "<fd>/<name>" opens name inside the open
 * directory fd (which must stay open while the db is), not by the
 * directory's path: see db.c. */
#define GV_DB_DIRFD_PREFIX "/proc/self/fd/"

/* Opens or creates the file at path and starts the writer. loop may be
 * NULL for a db used only synchronously (gv_db_call, gv_db_lock): then
 * gv_db_submit and gv_db_exec fail with GV_EINVAL. opts may be NULL
 * (defaults). Every reason in why starts with the path. */
int gv_db_open(gv_db **out, uv_loop_t *loop, const char *path,
               const gv_db_opts *opts, gv_why *why);

/* See Lifetime above. NULL is a no-op. Must not be called while this
 * thread holds gv_db_lock. */
void gv_db_close(gv_db *db);

/* Queues fn(arg) for the next group; done (may be NULL) gets the status.
 * Returns 0, GV_EBUSY (queue full), GV_ESTATE (closing), GV_EINVAL or
 * GV_ENOMEM. */
int gv_db_submit(gv_db *db, gv_db_fn fn, void *arg, gv_db_done_cb done,
                 void *ctx);

/* One bound value: build them with the macros below. TEXT and BLOB point at
 * len bytes (TEXT needs no NUL). */
typedef enum { GV_DB_T_NULL, GV_DB_T_INT, GV_DB_T_TEXT, GV_DB_T_BLOB } gv_db_t;
typedef struct gv_db_val {
  gv_db_t type;
  int64_t i;
  const void *p;
  size_t len;
} gv_db_val;
#define GV_DB_NULL ((gv_db_val){GV_DB_T_NULL, 0, NULL, 0})
#define GV_DB_INT(x) ((gv_db_val){GV_DB_T_INT, (x), NULL, 0})
#define GV_DB_TEXT(s, n) ((gv_db_val){GV_DB_T_TEXT, 0, (s), (n)})
#define GV_DB_BLOB(b, n) ((gv_db_val){GV_DB_T_BLOB, 0, (b), (n)})

/* One statement: sql binds vals[0..n_vals) to ?1..?n. */
typedef struct gv_db_stmt {
  const char *sql;
  const gv_db_val *vals;
  size_t n_vals;
} gv_db_stmt;

/* Queues stmts[0..n) as one job: all of them commit, or none does. Copies
 * everything. Same returns as gv_db_submit, plus GV_ETOOBIG for one job
 * larger than the byte bound. */
int gv_db_exec(gv_db *db, const gv_db_stmt *stmts, size_t n, gv_db_done_cb done,
               void *ctx);

/* Runs fn(arg) in the next group like gv_db_submit and blocks the calling
 * thread until that group's COMMIT returned; returns the job's status (0:
 * durable, as for a callback) and, on error, a reason in why (may be
 * NULL). No callback. GV_ESTATE if called on the writer thread or while
 * this thread holds gv_db_lock. */
int gv_db_call(gv_db *db, gv_db_fn fn, void *arg, gv_why *why);

/* Exclusive use of the handle on this thread (see Reads above); returns
 * NULL once close began. Every gv_db_lock that returned a handle is
 * followed by one gv_db_unlock on the same thread. */
sqlite3 *gv_db_lock(gv_db *db);
void gv_db_unlock(gv_db *db);

/* Counters since open; any thread. */
typedef struct gv_db_stats {
  uint64_t commits; /* group transactions committed */
  uint64_t jobs;    /* jobs finished, committed or not */
  uint64_t failed;  /* jobs finished with status < 0 */
  size_t queued;    /* outstanding jobs now */
} gv_db_stats;
void gv_db_get_stats(gv_db *db, gv_db_stats *out);

/* A file's schema, for gv_db_init_schema(). */
typedef struct gv_db_schema {
  int32_t app_id;      /* PRAGMA application_id */
  int version;         /* PRAGMA user_version */
  const char *sql;     /* creates it in an empty file */
  const char *name;    /* "Grapevine", "Grapevine relay": for reasons */
  const char *pragmas; /* run first on the connection (may be NULL) */
} gv_db_schema;

/* For a gv_db init hook: runs s->pragmas, then, in one write transaction
 * (so that two processes opening a new file cannot both create it), checks
 * that the file holds schema s, or is empty and creates it. A foreign file
 * (another application id) is GV_EINVAL, another version GV_EVERSION, each
 * with a reason; either is left as it was, never migrated. */
int gv_db_init_schema(sqlite3 *h, const gv_db_schema *s, gv_why *why);

/* The GV_E* or -errno code for SQLite result code rc on handle h (NULL
 * allowed): NOMEM GV_ENOMEM, BUSY/LOCKED -EBUSY, FULL -ENOSPC,
 * READONLY/PERM -EACCES, NOTADB GV_EINVAL, TOOBIG GV_ETOOBIG, CONSTRAINT
 * GV_EINVAL, CANTOPEN/IOERR the system's errno, else -EIO. */
int gv_db_status(sqlite3 *h, int rc);

#endif

/* The tracker's durable store: SQLite in WAL mode (synchronous=FULL), one
 * table (docs/TRACKER.md §5.2), and a writer thread that commits queued
 * writes in groups and calls back only after the commit.
 *
 *   gv_trk_store_open -> gv_trk_store_load (start-up, caller's thread)
 *   -> gv_trk_store_start (writer thread) -> put/del ... -> close
 *
 * Lifetime: gv_trk_store_open() allocates; gv_trk_store_close() commits
 * everything queued, stops the writer, closes the database and frees. The
 * database file is locked (flock) while open, so two trackers never share
 * it. put/del/sync/stats are thread-safe; open, load, start and close are
 * called from one thread.
 */
#ifndef GV_TRK_STORE_H
#define GV_TRK_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "registry.h"

typedef struct gv_trk_store gv_trk_store;

/* One row: a registration and its times. */
typedef struct gv_trk_row {
  gv_trk_rec rec;
  int64_t registered_ms;
  int64_t expires_ms;
} gv_trk_row;

/* Called on the writer thread after the write's transaction committed
 * (status 0) or failed (-EIO; the reason is in the stats). It may queue
 * more writes, and must not call sync or close. */
typedef void (*gv_trk_store_cb)(void *ctx, int status);

typedef struct gv_trk_store_stats {
  uint64_t commits; /* transactions committed */
  uint64_t errors;  /* writes that failed */
  size_t queue;     /* writes waiting */
  int ok;           /* the last transaction committed */
  char last_error[160];
} gv_trk_store_stats;

/* Opens (creating if needed) the database at path, sets WAL mode and the
 * schema, and locks the file. Fails with a one-line reason in why: cannot
 * open or not writable (-EACCES / -EIO), used by another tracker (-EBUSY),
 * a schema from a newer version (GV_EVERSION). lg is borrowed (warnings
 * about skipped rows). */
int gv_trk_store_open(gv_trk_store **out, const char *path, gv_log *lg,
                      gv_why *why);

/* Start-up: deletes the rows expired at now, then calls row() for every
 * other row in expiry order. A row that does not validate is logged and
 * skipped; so is one row() refuses (returns < 0). Counts go to *loaded and
 * *skipped. Before gv_trk_store_start(). */
int gv_trk_store_load(gv_trk_store *s, int64_t now,
                      int (*row)(void *ctx, const gv_trk_row *row), void *ctx,
                      size_t *loaded, size_t *skipped, gv_why *why);

/* Starts the writer thread. 0 or a negative error. */
int gv_trk_store_start(gv_trk_store *s);

/* Queues an upsert of row (copied; registered_ms is kept for an existing
 * id) or a delete of id; cb (may be NULL) runs once it is settled. Returns
 * 0, GV_ESTATE once closing, GV_ENOMEM; cb is never called on failure. */
int gv_trk_store_put(gv_trk_store *s, const gv_trk_row *row, gv_trk_store_cb cb,
                     void *ctx);
int gv_trk_store_del(gv_trk_store *s, const uint8_t id[GV_ID_BYTES],
                     gv_trk_store_cb cb, void *ctx);

/* Blocks until every write queued before the call has settled and its
 * callback returned. */
void gv_trk_store_sync(gv_trk_store *s);

void gv_trk_store_get_stats(gv_trk_store *s, gv_trk_store_stats *st);
const char *gv_trk_store_path(const gv_trk_store *s);

/* NULL is ignored. */
void gv_trk_store_close(gv_trk_store *s);

#endif

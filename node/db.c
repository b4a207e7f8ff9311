/* gv_db: group commit on a writer thread, callbacks on the loop (db.h).
 *
 * A job's life, each step named with the function that performs it:
 *
 *   gv_db_submit/exec/call      writer: run_group          on_async/deliver
 *   QUEUED (q_head..q_tail) ---> RUNNING (one group) -----> DONE (d_head..)
 *     pending++                   BEGIN, per job            --> done(ctx, st)
 *                                 SAVEPOINT..RELEASE,           pending--
 *                                 COMMIT                        free
 *                                     |
 *                                     +--> sync job (gv_db_call): finished,
 *                                          the blocked caller wakes, frees
 *
 * Locking: mu guards the queue, the done list, the counters and the
 * writer's flags; the sqlite3 handle is used by the writer while it runs a
 * group and by a gv_db_lock holder while the writer is paused, never by
 * both (busy and locked are never both set).
 */
#include "db.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GV_DB_BUSY_MS 5000
#define GV_DB_WAL_LIMIT (4 * 1024 * 1024) /* WAL file kept after a reset */
#define GV_DB_CACHE 16 /* prepared statements kept for gv_db_exec */

typedef struct job {
  struct job *next;
  gv_db_fn fn;
  void *arg;
  gv_db_done_cb done;
  void *ctx;
  size_t bytes; /* counted against queue_bytes */
  int status;
  /* gv_db_call: the caller waits on db->settled for finished. */
  bool sync, finished;
  gv_why why;
  /* gv_db_exec: the copied statements (arg points at the job). */
  size_t n_stmts;
  gv_db_stmt *stmts;
} job;

typedef struct cached {
  char *sql;
  sqlite3_stmt *st;
} cached;

struct gv_db {
  sqlite3 *h;
  sqlite3_stmt *begin, *commit, *rollback, *save, *release, *undo;
  cached cache[GV_DB_CACHE]; /* writer thread only */
  size_t cache_next;
  uv_loop_t *loop;
  uv_async_t async;
  size_t outstanding; /* loop thread: async jobs not yet called back */
  size_t queue_max, queue_bytes;
  uv_thread_t writer;
  bool started;
  /* Guarded by mu: */
  uv_mutex_t mu;
  uv_cond_t work;    /* jobs queued, unlocked, or stopping */
  uv_cond_t settled; /* a group ended, or the lock was released */
  job *q_head, *q_tail, *d_head, *d_tail;
  size_t pending, pending_bytes;
  bool stopping, busy, locked;
  uv_thread_t lock_owner;
  gv_db_stats stats;
};

int gv_db_status(sqlite3 *h, int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM: return GV_ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return -EBUSY;
  case SQLITE_FULL: return -ENOSPC;
  case SQLITE_READONLY:
  case SQLITE_PERM: return -EACCES;
  case SQLITE_NOTADB: return GV_EINVAL;
  case SQLITE_TOOBIG: return GV_ETOOBIG;
  case SQLITE_CONSTRAINT: return GV_EINVAL;
  case SQLITE_CANTOPEN:
  case SQLITE_IOERR: {
    int err = h != NULL ? sqlite3_system_errno(h) : 0;
    return err > 0 ? -err : -EIO;
  }
  default: return -EIO;
  }
}

static int sql_fail(gv_db *db, int rc, gv_why *why, const char *what) {
  return gv_fail(why, gv_db_status(db->h, rc), "%s: %s", what,
                 sqlite3_errmsg(db->h));
}

/* Steps a statement that returns no rows, then resets it. */
static int run(gv_db *db, sqlite3_stmt *st, gv_why *why, const char *what) {
  int rc = sqlite3_step(st), err = 0;

  if (rc != SQLITE_DONE)
    err = sql_fail(db, rc, why, what);
  sqlite3_reset(st);
  return err;
}

/* ---- open and close ---- */

static int set_modes(gv_db *db, gv_why *why) {
  sqlite3_stmt *st = NULL;
  const unsigned char *mode = NULL;
  char sql[128];
  int err = 0, rc;

  rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    mode = sqlite3_column_text(st, 0);
  if (mode == NULL)
    err = sql_fail(db, rc, why, "journal_mode");
  else if (strcmp((const char *)mode, "wal") != 0)
    err = gv_fail(why, -EIO, "cannot switch to WAL mode (journal_mode %s)",
                  (const char *)mode);
  sqlite3_finalize(st);
  if (err < 0)
    return err;
  snprintf(sql, sizeof(sql),
           "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = %d",
           GV_DB_WAL_LIMIT);
  if ((rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL)) != SQLITE_OK)
    return sql_fail(db, rc, why, "connection settings");
  return 0;
}

static int prepare_all(gv_db *db, gv_why *why) {
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&db->begin, "BEGIN IMMEDIATE"},  {&db->commit, "COMMIT"},
      {&db->rollback, "ROLLBACK"},      {&db->save, "SAVEPOINT gv_job"},
      {&db->release, "RELEASE gv_job"}, {&db->undo, "ROLLBACK TO gv_job"},
  };

  for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
    int rc = sqlite3_prepare_v3(db->h, stmts[i].sql, -1,
                                SQLITE_PREPARE_PERSISTENT, stmts[i].st, NULL);
    if (rc != SQLITE_OK)
      return sql_fail(db, rc, why, "prepare");
  }
  return 0;
}

static void close_handle(gv_db *db) {
  sqlite3_finalize(db->begin);
  sqlite3_finalize(db->commit);
  sqlite3_finalize(db->rollback);
  sqlite3_finalize(db->save);
  sqlite3_finalize(db->release);
  sqlite3_finalize(db->undo);
  for (size_t i = 0; i < GV_DB_CACHE; i++) {
    sqlite3_finalize(db->cache[i].st);
    free(db->cache[i].sql);
  }
  sqlite3_close(db->h); /* the last connection checkpoints the WAL */
  db->h = NULL;
}

static void free_db(gv_db *db) {
  uv_mutex_destroy(&db->mu);
  uv_cond_destroy(&db->work);
  uv_cond_destroy(&db->settled);
  free(db);
}

static void on_closed(uv_handle_t *h) { free_db(h->data); }

static void writer(void *arg);
static void on_async(uv_async_t *a);

/* ---- paths through an open directory ----
 * GV_DB_DIRFD_PREFIX "<fd>/name" reaches the directory fd refers to by
 * its inode, whatever was renamed or swapped along its path since it was
 * opened and checked. SQLite's default VFS would resolve that link to a
 * path string (and, with SQLITE_OPEN_NOFOLLOW, refuse it as a link), so
 * such a path goes through a copy of the default VFS that keeps the name
 * as given: the kernel follows the directory fd alone, and the -wal,
 * -shm and -journal files, named after the database, are reached the
 * same way. Registered once per process (SQLite's VFS list is global). */
#define DIRFD_VFS "gv-dirfd"

static sqlite3_vfs dirfd_vfs;
static uv_once_t dirfd_once = UV_ONCE_INIT;
static int dirfd_rc = SQLITE_ERROR;

static int dirfd_full_pathname(sqlite3_vfs *vfs, const char *name, int cap,
                               char *out) {
  size_t len = strlen(name);

  (void)vfs;
  if (cap < 0 || len >= (size_t)cap)
    return SQLITE_CANTOPEN;
  memcpy(out, name, len + 1);
  return SQLITE_OK;
}

static void dirfd_register(void) {
  sqlite3_vfs *base = sqlite3_vfs_find(NULL);

  if (base == NULL)
    return;
  dirfd_vfs = *base;
  dirfd_vfs.pNext = NULL;
  dirfd_vfs.zName = DIRFD_VFS;
  dirfd_vfs.xFullPathname = dirfd_full_pathname;
  dirfd_rc = sqlite3_vfs_register(&dirfd_vfs, 0);
}

int gv_db_open(gv_db **out, uv_loop_t *loop, const char *path,
               const gv_db_opts *opts, gv_why *why) {
  const char *vfs = NULL;
  gv_db *db = NULL;
  gv_why inner = {{0}};
  int rc;

  *out = NULL;
  if (path == NULL)
    return gv_fail(why, GV_EINVAL, "no database path");
  if ((db = calloc(1, sizeof(*db))) == NULL)
    return gv_fail(why, GV_ENOMEM, "%s: out of memory", path);
  db->loop = loop;
  db->queue_max = opts && opts->queue_max ? opts->queue_max : GV_DB_QUEUE_MAX;
  db->queue_bytes =
      opts && opts->queue_bytes ? opts->queue_bytes : GV_DB_QUEUE_BYTES;
  if (uv_mutex_init(&db->mu) < 0) {
    free(db);
    return gv_fail(why, GV_ENOMEM, "%s: out of memory", path);
  }
  uv_cond_init(&db->work);
  uv_cond_init(&db->settled);
  if (strncmp(path, GV_DB_DIRFD_PREFIX, strlen(GV_DB_DIRFD_PREFIX)) == 0) {
    uv_once(&dirfd_once, dirfd_register);
    if (dirfd_rc != SQLITE_OK) {
      rc = gv_fail(&inner, GV_ENOMEM, "cannot register the %s VFS", DIRFD_VFS);
      goto out;
    }
    vfs = DIRFD_VFS;
  }
  /* NOFOLLOW: a symbolic link planted at path (or at its -wal or -journal)
   * is refused, never written through (docs/NODE.md). */
  rc = sqlite3_open_v2(
      path, &db->h,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, vfs);
  if (rc != SQLITE_OK) {
    rc = db->h == NULL ? gv_fail(&inner, GV_ENOMEM, "out of memory")
                       : sql_fail(db, rc, &inner, "open");
    goto out;
  }
  if (sqlite3_db_readonly(db->h, "main") == 1) {
    rc = gv_fail(&inner, -EACCES, "database is not writable");
    goto out;
  }
  sqlite3_busy_timeout(db->h, GV_DB_BUSY_MS);
  if (opts != NULL && opts->init != NULL &&
      (rc = opts->init(opts->init_ctx, db->h, &inner)) < 0)
    goto out;
  if ((rc = set_modes(db, &inner)) < 0 || (rc = prepare_all(db, &inner)) < 0)
    goto out;
  if (loop != NULL) {
    if ((rc = uv_async_init(loop, &db->async, on_async)) < 0) {
      rc = gv_fail(&inner, rc, "async: %s", uv_strerror(rc));
      goto out;
    }
    db->async.data = db;
    uv_unref((uv_handle_t *)&db->async); /* ref'd while jobs are out */
  }
  if ((rc = uv_thread_create(&db->writer, writer, db)) < 0) {
    rc = gv_fail(&inner, rc, "writer thread: %s", uv_strerror(rc));
    goto out;
  }
  db->started = true;
  *out = db;
  db = NULL;
out:
  if (db != NULL) {
    close_handle(db);
    if (loop != NULL && uv_is_active((uv_handle_t *)&db->async))
      uv_close((uv_handle_t *)&db->async, on_closed);
    else
      free_db(db);
  }
  if (rc < 0)
    gv_fail(why, rc, "%s: %s", path, inner.text);
  return rc;
}

/* ---- the writer ---- */

/* The statement for sql, prepared once and kept (writer thread). */
static int cached_stmt(gv_db *db, const char *sql, sqlite3_stmt **out,
                       gv_why *why) {
  cached *c;
  char *copy;
  int rc;

  for (size_t i = 0; i < GV_DB_CACHE; i++)
    if (db->cache[i].sql != NULL && strcmp(db->cache[i].sql, sql) == 0) {
      *out = db->cache[i].st;
      return 0;
    }
  if ((copy = strdup(sql)) == NULL)
    return gv_fail(why, GV_ENOMEM, "out of memory");
  c = &db->cache[db->cache_next];
  db->cache_next = (db->cache_next + 1) % GV_DB_CACHE;
  sqlite3_finalize(c->st);
  free(c->sql);
  c->sql = copy;
  rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st,
                          NULL);
  if (rc != SQLITE_OK) {
    int err = sql_fail(db, rc, why, "prepare");
    sqlite3_finalize(c->st);
    free(c->sql);
    c->st = NULL;
    c->sql = NULL;
    return err;
  }
  *out = c->st;
  return 0;
}

static int bind_val(sqlite3_stmt *st, int i, const gv_db_val *v) {
  switch (v->type) {
  case GV_DB_T_NULL: return sqlite3_bind_null(st, i);
  case GV_DB_T_INT: return sqlite3_bind_int64(st, i, v->i);
  case GV_DB_T_TEXT:
    return sqlite3_bind_text64(st, i, v->p, v->len, SQLITE_STATIC, SQLITE_UTF8);
  case GV_DB_T_BLOB: return sqlite3_bind_blob64(st, i, v->p, v->len, NULL);
  }
  return SQLITE_MISUSE;
}

/* gv_db_exec's work: the job's copied statements, through the cache. */
static int run_exec(gv_db *db, job *j, gv_why *why) {
  for (size_t i = 0; i < j->n_stmts; i++) {
    const gv_db_stmt *s = &j->stmts[i];
    sqlite3_stmt *st = NULL;
    int rc = cached_stmt(db, s->sql, &st, why);

    if (rc < 0)
      return rc;
    for (size_t k = 0; k < s->n_vals && rc == SQLITE_OK; k++)
      rc = bind_val(st, (int)k + 1, &s->vals[k]);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(st);
      while (rc == SQLITE_ROW) /* a statement may return rows: ignored */
        rc = sqlite3_step(st);
    }
    rc = rc == SQLITE_DONE ? 0 : sql_fail(db, rc, why, "statement");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Runs one job inside its savepoint. Returns its status; *lost is set when
 * SQLite rolled back the whole transaction. */
static int run_job(gv_db *db, job *j, bool *lost) {
  int rc = run(db, db->save, &j->why, "savepoint");

  if (rc < 0)
    return rc;
  rc = j->fn != NULL ? j->fn(j->arg, db->h, &j->why) : run_exec(db, j, &j->why);
  if (rc == 0)
    return run(db, db->release, &j->why, "release");
  if (sqlite3_get_autocommit(db->h)) { /* SQLite ended the transaction */
    *lost = true;
    return rc;
  }
  run(db, db->undo, NULL, "rollback to");
  run(db, db->release, NULL, "release");
  return rc;
}

/* Commits the group g (a list). Every job gets its status; the return is
 * the number of COMMITs that succeeded. */
static unsigned run_group(gv_db *db, job *g) {
  job *first = g; /* the first job of the open transaction */
  unsigned commits = 0;
  gv_why why = {{0}};
  int rc;

  while (first != NULL) {
    job *j, *stop = NULL;
    bool lost = false;

    if ((rc = run(db, db->begin, &why, "begin")) < 0) {
      for (j = first; j != NULL; j = j->next) {
        j->status = rc;
        j->why = why;
      }
      return commits;
    }
    for (j = first; j != NULL && !lost; j = j->next)
      j->status = run_job(db, j, &lost);
    if (lost) {
      /* The jobs before the failure were rolled back with it: fail them
       * too, and go on with the rest in a new transaction. */
      for (stop = first; stop->next != j; stop = stop->next)
        ;
      for (job *k = first; k != stop; k = k->next)
        if (k->status == 0) {
          k->status = stop->status;
          k->why = stop->why;
        }
      first = j;
      continue;
    }
    if ((rc = run(db, db->commit, &why, "commit")) < 0) {
      if (!sqlite3_get_autocommit(db->h))
        run(db, db->rollback, NULL, "rollback");
      for (j = first; j != NULL; j = j->next)
        if (j->status == 0) {
          j->status = rc;
          j->why = why;
        }
    } else {
      commits++;
    }
    first = NULL;
  }
  return commits;
}

static void writer(void *arg) {
  gv_db *db = arg;

  uv_mutex_lock(&db->mu);
  for (;;) {
    job *g, *next;
    uint64_t failed = 0, n = 0;
    unsigned commits;
    bool wake = false;

    while ((db->q_head == NULL || db->locked) && !db->stopping)
      uv_cond_wait(&db->work, &db->mu);
    if (db->q_head == NULL)
      break;
    assert(!db->locked && "gv_db_close while locked");
    g = db->q_head;
    db->q_head = db->q_tail = NULL;
    db->busy = true;
    uv_mutex_unlock(&db->mu);

    commits = run_group(db, g);

    uv_mutex_lock(&db->mu);
    db->busy = false;
    for (job *j = g; j != NULL; j = next) {
      next = j->next;
      j->next = NULL;
      n++;
      failed += j->status < 0;
      if (j->sync) {
        j->finished = true;
        continue;
      }
      if (db->d_tail != NULL)
        db->d_tail->next = j;
      else
        db->d_head = j;
      db->d_tail = j;
      wake = true;
    }
    db->stats.commits += commits;
    db->stats.jobs += n;
    db->stats.failed += failed;
    uv_cond_broadcast(&db->settled);
    if (wake)
      uv_async_send(&db->async);
  }
  uv_mutex_unlock(&db->mu);
}

/* ---- the loop's side ---- */

/* Calls back every finished job, in order. Loop thread. */
static void deliver(gv_db *db) {
  job *list, *next;
  size_t n = 0, bytes = 0;

  uv_mutex_lock(&db->mu);
  list = db->d_head;
  db->d_head = db->d_tail = NULL;
  for (job *j = list; j != NULL; j = j->next) {
    n++;
    bytes += j->bytes;
  }
  db->pending -= n; /* room for submissions made from the callbacks */
  db->pending_bytes -= bytes;
  uv_mutex_unlock(&db->mu);
  for (job *j = list; j != NULL; j = next) {
    next = j->next;
    if (j->done != NULL)
      j->done(j->ctx, j->status);
    free(j);
  }
  assert(db->outstanding >= n);
  db->outstanding -= n;
  if (n > 0 && db->outstanding == 0 && db->loop != NULL)
    uv_unref((uv_handle_t *)&db->async);
}

static void on_async(uv_async_t *a) { deliver(a->data); }

/* Appends j, within the bounds. */
static int enqueue(gv_db *db, job *j) {
  int rc = 0;

  uv_mutex_lock(&db->mu);
  if (db->stopping)
    rc = GV_ESTATE;
  else if (db->pending >= db->queue_max ||
           j->bytes > db->queue_bytes - db->pending_bytes)
    rc = GV_EBUSY;
  if (rc == 0) {
    db->pending++;
    db->pending_bytes += j->bytes;
    if (db->q_tail != NULL)
      db->q_tail->next = j;
    else
      db->q_head = j;
    db->q_tail = j;
    uv_cond_signal(&db->work);
  }
  uv_mutex_unlock(&db->mu);
  return rc;
}

/* Queues an async job (loop thread). Frees j on error. */
static int submit_job(gv_db *db, job *j) {
  int rc = enqueue(db, j);

  if (rc < 0) {
    free(j);
    return rc;
  }
  if (db->outstanding++ == 0)
    uv_ref((uv_handle_t *)&db->async);
  return 0;
}

int gv_db_submit(gv_db *db, gv_db_fn fn, void *arg, gv_db_done_cb done,
                 void *ctx) {
  job *j;

  if (db == NULL || fn == NULL || db->loop == NULL)
    return GV_EINVAL;
  if ((j = calloc(1, sizeof(*j))) == NULL)
    return GV_ENOMEM;
  j->fn = fn;
  j->arg = arg;
  j->done = done;
  j->ctx = ctx;
  return submit_job(db, j);
}

int gv_db_exec(gv_db *db, const gv_db_stmt *stmts, size_t n, gv_db_done_cb done,
               void *ctx) {
  size_t bytes = sizeof(job) + n * sizeof(gv_db_stmt);
  job *j;
  char *p;

  if (db == NULL || db->loop == NULL || stmts == NULL || n == 0)
    return GV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (stmts[i].sql == NULL || (stmts[i].n_vals > 0 && stmts[i].vals == NULL))
      return GV_EINVAL;
    bytes += strlen(stmts[i].sql) + 1 + stmts[i].n_vals * sizeof(gv_db_val);
    for (size_t k = 0; k < stmts[i].n_vals; k++) {
      const gv_db_val *v = &stmts[i].vals[k];
      if ((v->type == GV_DB_T_TEXT || v->type == GV_DB_T_BLOB) &&
          v->p == NULL && v->len > 0)
        return GV_EINVAL;
      if (v->type == GV_DB_T_TEXT || v->type == GV_DB_T_BLOB)
        bytes += v->len;
    }
  }
  if (bytes > db->queue_bytes)
    return GV_ETOOBIG;
  if ((j = calloc(1, bytes)) == NULL)
    return GV_ENOMEM;
  /* One allocation: the job, the statements, their values, then the text
   * of sql and of the values (gv_db_val is aligned after gv_db_stmt). */
  j->stmts = (gv_db_stmt *)(j + 1);
  j->n_stmts = n;
  p = (char *)(j->stmts + n);
  for (size_t i = 0; i < n; i++) {
    gv_db_val *vals = (gv_db_val *)p;
    p += stmts[i].n_vals * sizeof(gv_db_val);
    if (stmts[i].n_vals > 0)
      memcpy(vals, stmts[i].vals, stmts[i].n_vals * sizeof(gv_db_val));
    j->stmts[i].vals = vals;
    j->stmts[i].n_vals = stmts[i].n_vals;
  }
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(stmts[i].sql) + 1;
    memcpy(p, stmts[i].sql, len);
    j->stmts[i].sql = p;
    p += len;
    for (size_t k = 0; k < stmts[i].n_vals; k++) {
      gv_db_val *v = (gv_db_val *)&j->stmts[i].vals[k];
      if (v->type != GV_DB_T_TEXT && v->type != GV_DB_T_BLOB)
        continue;
      if (v->len > 0)
        memcpy(p, v->p, v->len);
      v->p = p;
      p += v->len;
    }
  }
  j->bytes = bytes;
  j->done = done;
  j->ctx = ctx;
  return submit_job(db, j);
}

/* The calling thread is the writer, or holds the lock. */
static bool would_deadlock(gv_db *db) {
  uv_thread_t self = uv_thread_self();
  bool bad;

  uv_mutex_lock(&db->mu);
  bad = (db->started && uv_thread_equal(&self, &db->writer)) ||
        (db->locked && uv_thread_equal(&self, &db->lock_owner));
  uv_mutex_unlock(&db->mu);
  return bad;
}

int gv_db_call(gv_db *db, gv_db_fn fn, void *arg, gv_why *why) {
  job j;
  int rc;

  if (db == NULL || fn == NULL)
    return gv_fail(why, GV_EINVAL, "no database or no job");
  if (would_deadlock(db))
    return gv_fail(why, GV_ESTATE, "gv_db_call from the writer or the lock");
  memset(&j, 0, sizeof(j));
  j.fn = fn;
  j.arg = arg;
  j.sync = true;
  if ((rc = enqueue(db, &j)) < 0)
    return gv_fail(why, rc, "%s",
                   rc == GV_EBUSY ? "write queue full" : "database closing");
  uv_mutex_lock(&db->mu);
  while (!j.finished)
    uv_cond_wait(&db->settled, &db->mu);
  db->pending--;
  uv_mutex_unlock(&db->mu);
  if (j.status < 0)
    gv_fail(why, j.status, "%s", j.why.text);
  return j.status;
}

sqlite3 *gv_db_lock(gv_db *db) {
  sqlite3 *h = NULL;

  if (would_deadlock(db))
    return NULL;
  uv_mutex_lock(&db->mu);
  while (db->locked && !db->stopping)
    uv_cond_wait(&db->settled, &db->mu);
  if (!db->stopping) {
    db->locked = true;
    db->lock_owner = uv_thread_self();
    while (db->busy)
      uv_cond_wait(&db->settled, &db->mu);
    h = db->h;
  }
  uv_mutex_unlock(&db->mu);
  return h;
}

void gv_db_unlock(gv_db *db) {
  uv_mutex_lock(&db->mu);
  assert(db->locked);
  db->locked = false;
  uv_cond_signal(&db->work);
  uv_cond_broadcast(&db->settled);
  uv_mutex_unlock(&db->mu);
}

void gv_db_get_stats(gv_db *db, gv_db_stats *out) {
  uv_mutex_lock(&db->mu);
  *out = db->stats;
  out->queued = db->pending;
  uv_mutex_unlock(&db->mu);
}

void gv_db_close(gv_db *db) {
  if (db == NULL)
    return;
  uv_mutex_lock(&db->mu);
  assert(!db->locked && "gv_db_close while locked");
  db->stopping = true;
  uv_cond_broadcast(&db->work);
  uv_cond_broadcast(&db->settled);
  uv_mutex_unlock(&db->mu);
  uv_thread_join(&db->writer); /* it drains the queue first */
  if (db->loop != NULL)
    deliver(db);
  assert(db->d_head == NULL && db->q_head == NULL);
  close_handle(db);
  if (db->loop != NULL)
    uv_close((uv_handle_t *)&db->async, on_closed);
  else
    free_db(db);
}

/* ---- schemas ---- */

static int schema_fail(sqlite3 *h, const gv_db_schema *s, int rc, gv_why *why,
                       const char *what) {
  int err = gv_db_status(h, rc);

  if ((rc & 0xff) == SQLITE_NOTADB)
    return gv_fail(why, err, "not a %s database: %s", s->name,
                   sqlite3_errmsg(h));
  if (((rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_IOERR) &&
      err != -EIO) /* SQLite's text omits the system's reason */
    return gv_fail(why, err, "%s: %s (%s)", what, sqlite3_errmsg(h),
                   strerror(-err));
  return gv_fail(why, err, "%s: %s", what, sqlite3_errmsg(h));
}

static int schema_exec(sqlite3 *h, const gv_db_schema *s, const char *sql,
                       gv_why *why, const char *what) {
  int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : schema_fail(h, s, rc, why, what);
}

/* One integer from a one-row query (a pragma, a count). */
static int schema_int(sqlite3 *h, const gv_db_schema *s, const char *sql,
                      int64_t *out, gv_why *why) {
  sqlite3_stmt *st = NULL;
  int err = 0;
  int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);

  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else
    err = schema_fail(h, s, rc, why, sql);
  sqlite3_finalize(st);
  return err;
}

/* Inside BEGIN IMMEDIATE: the file is ours at our version, or empty and
 * then made ours. Anything else is refused (the caller rolls back). */
static int check_or_create(sqlite3 *h, const gv_db_schema *s, gv_why *why) {
  int64_t app = 0, version = 0, objs = 0; /* objs: tables, indexes, ... */
  char stamp[96];                         /* pragmas take no parameters */
  int rc;

  if ((rc = schema_int(h, s, "PRAGMA application_id", &app, why)) < 0 ||
      (rc = schema_int(h, s, "PRAGMA user_version", &version, why)) < 0 ||
      (rc = schema_int(h, s, "SELECT count(*) FROM sqlite_schema", &objs,
                       why)) < 0)
    return rc;
  if (app == 0 && version == 0 && objs == 0) {
    snprintf(stamp, sizeof(stamp),
             "PRAGMA application_id = %d; PRAGMA user_version = %d",
             (int)s->app_id, s->version);
    if ((rc = schema_exec(h, s, s->sql, why, "create schema")) < 0)
      return rc;
    return schema_exec(h, s, stamp, why, "set schema version");
  }
  if (app != s->app_id)
    return gv_fail(why, GV_EINVAL,
                   "not a %s database (application_id %#llx, %lld schema "
                   "objects)",
                   s->name, (unsigned long long)(uint32_t)app, (long long)objs);
  if (version > s->version)
    return gv_fail(why, GV_EVERSION,
                   "%s schema version %lld is newer than this Grapevine's "
                   "(%d); refused, not migrated",
                   s->name, (long long)version, s->version);
  if (version != s->version)
    return gv_fail(why, GV_EVERSION,
                   "%s schema version %lld, this Grapevine reads version %d "
                   "only; refused, not migrated",
                   s->name, (long long)version, s->version);
  return 0;
}

int gv_db_init_schema(sqlite3 *h, const gv_db_schema *s, gv_why *why) {
  int rc;

  if ((s->pragmas != NULL &&
       (rc = schema_exec(h, s, s->pragmas, why, "pragmas")) < 0) ||
      (rc = schema_exec(h, s, "BEGIN IMMEDIATE", why, "begin")) < 0)
    return rc;
  if ((rc = check_or_create(h, s, why)) == 0)
    rc = schema_exec(h, s, "COMMIT", why, "commit schema");
  if (rc < 0 && !sqlite3_get_autocommit(h))
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

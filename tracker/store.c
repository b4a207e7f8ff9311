#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <uv.h>

#include "req.h"

#define SCHEMA_VERSION 1
#define BATCH_MAX 512 /* writes per transaction */

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS registration ("
                             " id TEXT PRIMARY KEY NOT NULL,"
                             " addr TEXT NOT NULL,"
                             " repos TEXT NOT NULL,"
                             " caps TEXT NOT NULL,"
                             " ts INTEGER NOT NULL,"
                             " registered_ms INTEGER NOT NULL,"
                             " expires_ms INTEGER NOT NULL"
                             ") WITHOUT ROWID";

enum { OP_PUT, OP_DEL };

typedef struct op {
  struct op *next;
  int kind;
  gv_trk_row row; /* OP_PUT; OP_DEL uses row.rec.id */
  gv_trk_store_cb cb;
  void *ctx;
  int status;
} op;

struct gv_trk_store {
  sqlite3 *db;
  sqlite3_stmt *put, *del, *begin, *commit, *rollback;
  int lock_fd;
  char *path;
  gv_log *lg;
  uv_thread_t thread;
  int started;
  /* Guarded by mu: */
  uv_mutex_t mu;
  uv_cond_t work; /* writes queued, or stopping */
  uv_cond_t idle; /* settled advanced */
  op *head, *tail;
  size_t queued;
  uint64_t enqueued, settled; /* sequence numbers of writes */
  int stopping;
  gv_trk_store_stats stats;
};

static int sql_fail(gv_trk_store *s, gv_why *why, int err, const char *what) {
  return gv_fail(why, err, "database %s: %s: %s", s->path, what,
                 sqlite3_errmsg(s->db));
}

static int exec_sql(gv_trk_store *s, const char *sql, const char *what,
                    gv_why *why) {
  if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return sql_fail(s, why, -EIO, what);
  return 0;
}

/* One integer from a one-row query, e.g. a pragma. */
static int query_int(gv_trk_store *s, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  int rc = -EIO;

  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = 0;
  }
  sqlite3_finalize(st);
  return rc;
}

static int set_wal(gv_trk_store *s, gv_why *why) {
  sqlite3_stmt *st;
  const unsigned char *mode;
  int ok = 0;

  if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) !=
      SQLITE_OK)
    return sql_fail(s, why, -EIO, "journal mode");
  if (sqlite3_step(st) == SQLITE_ROW &&
      (mode = sqlite3_column_text(st, 0)) != NULL)
    ok = strcmp((const char *)mode, "wal") == 0;
  sqlite3_finalize(st);
  if (!ok)
    return gv_fail(why, -EIO, "database %s: cannot switch to WAL mode",
                   s->path);
  return 0;
}

static int prepare(gv_trk_store *s, gv_why *why) {
  static const struct {
    size_t off;
    const char *sql;
  } stmts[] = {
      {offsetof(gv_trk_store, put),
       "INSERT INTO registration"
       " (id, addr, repos, caps, ts, registered_ms, expires_ms)"
       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
       " ON CONFLICT(id) DO UPDATE SET addr = excluded.addr,"
       " repos = excluded.repos, caps = excluded.caps, ts = excluded.ts,"
       " expires_ms = excluded.expires_ms"},
      {offsetof(gv_trk_store, del), "DELETE FROM registration WHERE id = ?1"},
      {offsetof(gv_trk_store, begin), "BEGIN IMMEDIATE"},
      {offsetof(gv_trk_store, commit), "COMMIT"},
      {offsetof(gv_trk_store, rollback), "ROLLBACK"},
  };

  for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
    sqlite3_stmt **st = (sqlite3_stmt **)((char *)s + stmts[i].off);
    if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                           st, NULL) != SQLITE_OK)
      return sql_fail(s, why, -EIO, "prepare");
  }
  return 0;
}

/* Locks the file against a second tracker; SQLite's own POSIX locks are
 * per process and would let one in. */
static int lock_file(gv_trk_store *s, gv_why *why) {
  s->lock_fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (s->lock_fd < 0)
    return gv_fail(why, -errno, "database %s: %s", s->path, strerror(errno));
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    if (err == EWOULDBLOCK)
      return gv_fail(why, -EBUSY,
                     "database %s is in use by another grapevine-tracker",
                     s->path);
    return gv_fail(why, -err, "database %s: lock: %s", s->path, strerror(err));
  }
  return 0;
}

static int init_schema(gv_trk_store *s, gv_why *why) {
  int64_t version = 0;
  int rc;

  if (query_int(s, "PRAGMA user_version", &version) < 0)
    return sql_fail(s, why, -EIO, "read schema version");
  if (version > SCHEMA_VERSION)
    return gv_fail(why, GV_EVERSION,
                   "database %s has schema version %lld; this tracker knows "
                   "%d",
                   s->path, (long long)version, SCHEMA_VERSION);
  if ((rc = exec_sql(s, SCHEMA, "create schema", why)) < 0)
    return rc;
  if (version == 0)
    return exec_sql(s, "PRAGMA user_version = 1", "set schema version", why);
  return 0;
}

static void close_db(gv_trk_store *s) {
  sqlite3_finalize(s->put);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->begin);
  sqlite3_finalize(s->commit);
  sqlite3_finalize(s->rollback);
  sqlite3_close(s->db); /* checkpoints the WAL */
  if (s->lock_fd >= 0)
    close(s->lock_fd);
}

static void free_store(gv_trk_store *s) {
  close_db(s);
  uv_mutex_destroy(&s->mu);
  uv_cond_destroy(&s->work);
  uv_cond_destroy(&s->idle);
  free(s->path);
  free(s);
}

int gv_trk_store_open(gv_trk_store **out, const char *path, gv_log *lg,
                      gv_why *why) {
  gv_trk_store *s = calloc(1, sizeof(*s));
  int rc;

  *out = NULL;
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    return gv_fail(why, GV_ENOMEM, "out of memory");
  }
  s->lock_fd = -1;
  s->lg = lg;
  s->stats.ok = 1;
  uv_mutex_init(&s->mu);
  uv_cond_init(&s->work);
  uv_cond_init(&s->idle);
  if (sqlite3_open_v2(path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    rc = sql_fail(s, why, -EACCES, "cannot open");
    goto fail;
  }
  if (sqlite3_db_readonly(s->db, "main") == 1) {
    rc = gv_fail(why, -EACCES, "database %s is not writable", path);
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 5000);
  if ((rc = lock_file(s, why)) < 0 || (rc = set_wal(s, why)) < 0 ||
      (rc = exec_sql(s, "PRAGMA synchronous = FULL", "synchronous", why)) < 0 ||
      (rc = init_schema(s, why)) < 0 || (rc = prepare(s, why)) < 0)
    goto fail;
  *out = s;
  return 0;
fail:
  free_store(s);
  return rc;
}

/* ---- rows <-> columns ---- */

static char *names_json(const char *names, size_t w, size_t n) {
  cJSON *arr = cJSON_CreateArray();
  char *s = NULL;
  int ok = arr != NULL;

  for (size_t i = 0; ok && i < n; i++)
    ok = cJSON_AddItemToArray(arr, cJSON_CreateString(names + i * w));
  if (ok)
    s = cJSON_PrintUnformatted(arr);
  cJSON_Delete(arr);
  return s;
}

/* Parses a JSON array of at most max distinct valid names. */
static int parse_names(const char *text, size_t max, size_t w, char *out,
                       uint8_t *n, int (*check)(const char *, size_t)) {
  cJSON *arr = text ? cJSON_Parse(text) : NULL, *it;
  size_t i = 0;
  int rc = 0;

  *n = 0;
  if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) > max) {
    cJSON_Delete(arr);
    return GV_EFIELD;
  }
  cJSON_ArrayForEach(it, arr) {
    size_t len;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        check(it->valuestring, len = strlen(it->valuestring)) < 0) {
      rc = GV_EFIELD;
      break;
    }
    for (size_t j = 0; j < i && rc == 0; j++)
      if (strcmp(out + j * w, it->valuestring) == 0)
        rc = GV_EFIELD;
    if (rc < 0)
      break;
    memcpy(out + i * w, it->valuestring, len + 1);
    i++;
  }
  cJSON_Delete(arr);
  if (rc == 0)
    *n = (uint8_t)i;
  return rc;
}

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

/* Reads and validates the current row of the load query. */
static int read_row(sqlite3_stmt *st, gv_trk_row *row, const char **what) {
  const char *id = col_text(st, 0), *addr = col_text(st, 1);

  memset(row, 0, sizeof(*row));
  *what = "id";
  if (id == NULL || gv_id_from_hex(row->rec.id, id, strlen(id)) < 0)
    return GV_EFIELD;
  *what = "addr";
  if (addr == NULL || gv_addr_parse(&row->rec.addr, addr, strlen(addr)) < 0)
    return GV_EFIELD;
  *what = "repos";
  if (parse_names(col_text(st, 2), GV_MAX_REPOS, GV_REPO_MAX + 1,
                  &row->rec.repos[0][0], &row->rec.n_repos,
                  gv_repo_name_check) < 0)
    return GV_EFIELD;
  *what = "caps";
  if (parse_names(col_text(st, 3), GV_TRK_MAX_CAPS, GV_TRK_CAP_MAX + 1,
                  &row->rec.caps[0][0], &row->rec.n_caps,
                  gv_trk_cap_name_check) < 0)
    return GV_EFIELD;
  row->rec.ts = sqlite3_column_int64(st, 4);
  row->registered_ms = sqlite3_column_int64(st, 5);
  row->expires_ms = sqlite3_column_int64(st, 6);
  return 0;
}

int gv_trk_store_load(gv_trk_store *s, int64_t now,
                      int (*row)(void *ctx, const gv_trk_row *row), void *ctx,
                      size_t *loaded, size_t *skipped, gv_why *why) {
  sqlite3_stmt *st = NULL;
  gv_trk_row *r = malloc(sizeof(*r));
  int rc = 0, step;

  *loaded = *skipped = 0;
  if (r == NULL)
    return gv_fail(why, GV_ENOMEM, "out of memory");
  if (sqlite3_prepare_v2(s->db,
                         "DELETE FROM registration WHERE expires_ms <= ?1", -1,
                         &st, NULL) != SQLITE_OK ||
      sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_DONE) {
    rc = sql_fail(s, why, -EIO, "delete expired rows");
    goto out;
  }
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(s->db,
                         "SELECT id, addr, repos, caps, ts, registered_ms,"
                         " expires_ms FROM registration ORDER BY expires_ms",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = sql_fail(s, why, -EIO, "load");
    goto out;
  }
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *what, *id = col_text(st, 0);
    int err = read_row(st, r, &what);
    if (err < 0 || (err = row(ctx, r)) < 0) {
      gv_logf(s->lg, GV_LOG_WARN, "store: skipping row id=%.64s: %s%s",
              id ? id : "(null)", err == GV_EFIELD ? "bad " : "",
              err == GV_EFIELD ? what : gv_strerror(err));
      ++*skipped;
      continue;
    }
    ++*loaded;
  }
  if (step != SQLITE_DONE)
    rc = sql_fail(s, why, -EIO, "load");
out:
  sqlite3_finalize(st);
  free(r);
  return rc;
}

/* ---- the writer ---- */

static int step_reset(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static int apply(gv_trk_store *s, const op *o) {
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX];
  const gv_trk_rec *rec = &o->row.rec;
  char *repos = NULL, *caps = NULL;
  int rc = -EIO;

  gv_id_to_hex(rec->id, hex);
  if (o->kind == OP_DEL) {
    if (sqlite3_bind_text(s->del, 1, hex, -1, SQLITE_TRANSIENT) != SQLITE_OK)
      return -EIO;
    return step_reset(s->del);
  }
  gv_addr_format(&rec->addr, addr);
  repos = names_json(&rec->repos[0][0], GV_REPO_MAX + 1, rec->n_repos);
  caps = names_json(&rec->caps[0][0], GV_TRK_CAP_MAX + 1, rec->n_caps);
  if (repos != NULL && caps != NULL &&
      sqlite3_bind_text(s->put, 1, hex, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
      sqlite3_bind_text(s->put, 2, addr, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
      sqlite3_bind_text(s->put, 3, repos, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
      sqlite3_bind_text(s->put, 4, caps, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
      sqlite3_bind_int64(s->put, 5, rec->ts) == SQLITE_OK &&
      sqlite3_bind_int64(s->put, 6, o->row.registered_ms) == SQLITE_OK &&
      sqlite3_bind_int64(s->put, 7, o->row.expires_ms) == SQLITE_OK)
    rc = step_reset(s->put);
  else
    sqlite3_clear_bindings(s->put);
  free(repos);
  free(caps);
  return rc;
}

/* Runs v[0..n) in one transaction. 0 or -EIO (rolled back). */
static int txn(gv_trk_store *s, op **v, size_t n) {
  if (step_reset(s->begin) < 0)
    return -EIO;
  for (size_t i = 0; i < n; i++)
    if (apply(s, v[i]) < 0)
      goto fail;
  if (step_reset(s->commit) == 0)
    return 0;
fail:
  step_reset(s->rollback);
  return -EIO;
}

static void writer(void *arg) {
  gv_trk_store *s = arg;
  op *v[BATCH_MAX];

  uv_mutex_lock(&s->mu);
  for (;;) {
    size_t n = 0, failed = 0, commits = 0;
    char err[sizeof(s->stats.last_error)] = "";
    int rc;

    while (s->head == NULL && !s->stopping)
      uv_cond_wait(&s->work, &s->mu);
    if (s->head == NULL)
      break;
    while (s->head != NULL && n < BATCH_MAX) {
      v[n++] = s->head;
      s->head = s->head->next;
    }
    if (s->head == NULL)
      s->tail = NULL;
    s->queued -= n;
    uv_mutex_unlock(&s->mu);

    /* Group commit; on failure, each write alone, so that one bad write
     * cannot fail the others. */
    rc = txn(s, v, n);
    commits += rc == 0;
    for (size_t i = 0; i < n; i++) {
      v[i]->status = rc;
      if (rc < 0 && n > 1) {
        v[i]->status = txn(s, &v[i], 1);
        commits += v[i]->status == 0;
      }
      if (v[i]->status < 0) {
        failed++;
        snprintf(err, sizeof(err), "%s", sqlite3_errmsg(s->db));
      }
    }
    if (failed)
      gv_logf(s->lg, GV_LOG_ERROR, "store: %zu of %zu writes failed: %s",
              failed, n, err);
    for (size_t i = 0; i < n; i++) {
      if (v[i]->cb != NULL)
        v[i]->cb(v[i]->ctx, v[i]->status);
      free(v[i]);
    }

    uv_mutex_lock(&s->mu);
    s->stats.commits += commits;
    s->stats.errors += failed;
    s->stats.ok = failed == 0;
    if (failed)
      memcpy(s->stats.last_error, err, sizeof(err));
    s->settled += n;
    uv_cond_broadcast(&s->idle);
  }
  uv_mutex_unlock(&s->mu);
}

int gv_trk_store_start(gv_trk_store *s) {
  int rc = uv_thread_create(&s->thread, writer, s);
  if (rc == 0)
    s->started = 1;
  return rc;
}

static int enqueue(gv_trk_store *s, op *o) {
  uv_mutex_lock(&s->mu);
  if (s->stopping) {
    uv_mutex_unlock(&s->mu);
    free(o);
    return GV_ESTATE;
  }
  if (s->tail)
    s->tail->next = o;
  else
    s->head = o;
  s->tail = o;
  s->queued++;
  s->enqueued++;
  uv_cond_signal(&s->work);
  uv_mutex_unlock(&s->mu);
  return 0;
}

int gv_trk_store_put(gv_trk_store *s, const gv_trk_row *row, gv_trk_store_cb cb,
                     void *ctx) {
  op *o = calloc(1, sizeof(*o));

  if (o == NULL)
    return GV_ENOMEM;
  o->kind = OP_PUT;
  o->row = *row;
  o->cb = cb;
  o->ctx = ctx;
  return enqueue(s, o);
}

int gv_trk_store_del(gv_trk_store *s, const uint8_t id[GV_ID_BYTES],
                     gv_trk_store_cb cb, void *ctx) {
  op *o = calloc(1, sizeof(*o));

  if (o == NULL)
    return GV_ENOMEM;
  o->kind = OP_DEL;
  memcpy(o->row.rec.id, id, GV_ID_BYTES);
  o->cb = cb;
  o->ctx = ctx;
  return enqueue(s, o);
}

void gv_trk_store_sync(gv_trk_store *s) {
  uv_mutex_lock(&s->mu);
  for (uint64_t target = s->enqueued; s->started && s->settled < target;)
    uv_cond_wait(&s->idle, &s->mu);
  uv_mutex_unlock(&s->mu);
}

void gv_trk_store_get_stats(gv_trk_store *s, gv_trk_store_stats *st) {
  uv_mutex_lock(&s->mu);
  *st = s->stats;
  st->queue = s->queued;
  uv_mutex_unlock(&s->mu);
}

const char *gv_trk_store_path(const gv_trk_store *s) { return s->path; }

void gv_trk_store_close(gv_trk_store *s) {
  op *o;

  if (s == NULL)
    return;
  uv_mutex_lock(&s->mu);
  s->stopping = 1;
  uv_cond_signal(&s->work);
  uv_mutex_unlock(&s->mu);
  if (s->started)
    uv_thread_join(&s->thread);
  /* Never started: what was queued is dropped unacknowledged. */
  while ((o = s->head) != NULL) {
    s->head = o->next;
    free(o);
  }
  free_store(s);
}

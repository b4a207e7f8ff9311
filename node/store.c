/* The node's durable state: one SQLite database in WAL mode with
 * synchronous=NORMAL, so a committed transaction survives a crash or kill -9
 * of the process (not necessarily a power cut).
 *
 * Schema (application_id GV_STORE_APP_ID, user_version 1):
 *   peers(id BLOB 32 bytes PRIMARY KEY, body TEXT, sig BLOB 64 bytes,
 *         last_seen INTEGER) WITHOUT ROWID
 *   settings(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID
 * A database with another application_id, or tables but no application_id,
 * is "not a Grapevine database" (GV_EINVAL); a newer user_version is
 * GV_EVERSION. Neither is modified. SQLite errors are mapped to -errno
 * (-EIO when nothing more specific fits) or GV_ENOMEM.
 *
 * The write-behind queue: a dense array of changes, one per peer id, and an
 * id -> index map, so a later put or del of the same id replaces the queued
 * change in O(1):
 *
 *            put/del                       gv_store_flush: BEGIN IMMEDIATE,
 *   EMPTY ------------> PENDING ---------> every change, COMMIT -> EMPTY
 *                        |   ^
 *                        +---+  put/del (replace or append);
 *                               flush fails: ROLLBACK, queue kept as it was
 *
 * Bounds: at most GV_STORE_QUEUE_MAX changes and GV_STORE_QUEUE_BYTES of
 * queued bodies. A put or del that would cross either bound flushes first
 * (an auto-flush); if that flush fails, the put or del fails with its error
 * and the queue is left as it was.
 *
 * gv_store_load_peers() and gv_store_close() flush first. While
 * gv_store_load_peers() runs its callback, every other call on the store
 * except gv_store_pending() fails with GV_ESTATE.
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "msg.h"

#define GV_STORE_APP_ID 0x4756534e           /* "GVSN": Grapevine node store */
#define GV_STORE_SCHEMA 1                    /* user_version */
#define GV_STORE_WAL_LIMIT (4 * 1024 * 1024) /* WAL file kept after a reset */
#define GV_STORE_BUSY_MS 5000
#define GV_STORE_QUEUE_MAX 65536                 /* queued changes */
#define GV_STORE_QUEUE_BYTES (32u * 1024 * 1024) /* queued body bytes */
#define GV_STORE_QUEUE_KEEP 1024     /* slots kept allocated after a flush */
#define GV_STORE_BODY_MAX GV_MSG_MAX /* a record fits in a message */
#define GV_STORE_KEY_MAX 256         /* setting key, bytes */
#define GV_STORE_VALUE_MAX (64u * 1024)

static const char SCHEMA_SQL[] =
    "CREATE TABLE peers ("
    " id BLOB PRIMARY KEY NOT NULL"
    "  CHECK (typeof(id) = 'blob' AND length(id) = 32),"
    " body TEXT NOT NULL,"
    " sig BLOB NOT NULL CHECK (typeof(sig) = 'blob' AND length(sig) = 64),"
    " last_seen INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL"
    ") WITHOUT ROWID;";

typedef struct change {
  uint8_t id[GV_ID_BYTES];
  bool del;   /* a deletion; otherwise an upsert of the fields below */
  char *body; /* owned, body_len bytes + NUL */
  size_t body_len;
  uint8_t sig[GV_SIG_BYTES];
  int64_t last_seen;
} change;

struct gv_store {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *put, *del, *load, *set, *get;
  /* The queue: q[0..len) in arrival order; index maps an id to its
   * position + 1 (a map value may not be NULL). */
  change *q;
  size_t len, cap;
  size_t bytes; /* sum of the queued bodies' lengths */
  gv_idmap index;
  bool walking; /* inside gv_store_load_peers()'s callback */
};

static void check_queue(const gv_store *s) {
  assert(s->len <= GV_STORE_QUEUE_MAX);
  assert(s->bytes <= GV_STORE_QUEUE_BYTES);
  assert(s->index.len == s->len);
  (void)s;
}

/* ---- SQLite errors ---- */

/* The -errno (or GV_E*) for SQLite result code rc. */
static int map_rc(sqlite3 *db, int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM: return GV_ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return -EBUSY;
  case SQLITE_FULL: return -ENOSPC;
  case SQLITE_READONLY:
  case SQLITE_PERM: return -EACCES;
  case SQLITE_NOTADB: return GV_EINVAL;
  case SQLITE_TOOBIG: return GV_ETOOBIG;
  case SQLITE_CANTOPEN:
  case SQLITE_IOERR: {
    int err = db != NULL ? sqlite3_system_errno(db) : 0;
    return err > 0 ? -err : -EIO;
  }
  default: return -EIO;
  }
}

/* Maps rc and writes "what: SQLite's message" into why. Call before
 * anything else touches the connection's error state. */
static int sql_fail(gv_store *s, int rc, gv_why *why, const char *what) {
  int err = map_rc(s->db, rc);

  if ((rc & 0xff) == SQLITE_NOTADB)
    return gv_fail(why, err, "not a Grapevine database: %s",
                   sqlite3_errmsg(s->db));
  if (((rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_IOERR) &&
      err != -EIO) /* SQLite's text omits the system's reason */
    return gv_fail(why, err, "%s: %s (%s)", what, sqlite3_errmsg(s->db),
                   strerror(-err));
  return gv_fail(why, err, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int run(gv_store *s, sqlite3_stmt *st, gv_why *why, const char *what) {
  int rc = sqlite3_step(st), err = 0;

  if (rc != SQLITE_DONE)
    err = sql_fail(s, rc, why, what);
  sqlite3_reset(st);
  return err;
}

static int exec(gv_store *s, const char *sql, gv_why *why, const char *what) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sql_fail(s, rc, why, what);
}

/* One integer from a one-row query (a pragma, a count). */
static int query_int(gv_store *s, const char *sql, int64_t *out, gv_why *why) {
  sqlite3_stmt *st = NULL;
  int err = 0;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else
    err = sql_fail(s, rc, why, sql);
  sqlite3_finalize(st);
  return err;
}

/* ---- open and close ---- */

/* Inside BEGIN IMMEDIATE: checks that the database is ours, or empty and
 * then made ours. A foreign database is left as it was (the caller rolls
 * back). */
static int check_or_create(gv_store *s, gv_why *why) {
  int64_t app = 0, version = 0, objs = 0; /* objs: tables, indexes, ... */
  int rc;

  if ((rc = query_int(s, "PRAGMA application_id", &app, why)) < 0 ||
      (rc = query_int(s, "PRAGMA user_version", &version, why)) < 0 ||
      (rc = query_int(s, "SELECT count(*) FROM sqlite_schema", &objs, why)) < 0)
    return rc;
  if (app == 0 && version == 0 && objs == 0) {
    char stamp[96]; /* pragmas take no parameters */
    snprintf(stamp, sizeof(stamp),
             "PRAGMA application_id = %d; PRAGMA user_version = %d",
             GV_STORE_APP_ID, GV_STORE_SCHEMA);
    if ((rc = exec(s, SCHEMA_SQL, why, "create schema")) < 0)
      return rc;
    return exec(s, stamp, why, "set schema version");
  }
  if (app != GV_STORE_APP_ID)
    return gv_fail(why, GV_EINVAL,
                   "not a Grapevine database (application_id %#llx, %lld "
                   "schema objects)",
                   (unsigned long long)(uint32_t)app, (long long)objs);
  if (version > GV_STORE_SCHEMA)
    return gv_fail(why, GV_EVERSION,
                   "schema version %lld is newer than this Grapevine's (%d)",
                   (long long)version, GV_STORE_SCHEMA);
  if (version != GV_STORE_SCHEMA)
    return gv_fail(why, GV_EVERSION, "unknown schema version %lld",
                   (long long)version);
  return 0;
}

/* Checks or creates the schema in one write transaction, so that two
 * processes opening a new file at once cannot both create it. */
static int init_schema(gv_store *s, gv_why *why) {
  int rc = exec(s, "BEGIN IMMEDIATE", why, "begin");

  if (rc < 0)
    return rc;
  if ((rc = check_or_create(s, why)) == 0)
    rc = exec(s, "COMMIT", why, "commit schema");
  if (rc < 0)
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* WAL (persistent in the file), then this connection's settings. */
static int set_modes(gv_store *s, gv_why *why) {
  sqlite3_stmt *st = NULL;
  const unsigned char *mode = NULL;
  char sql[96];
  int err = 0;
  int rc =
      sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);

  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    mode = sqlite3_column_text(st, 0);
  if (mode == NULL)
    err = sql_fail(s, rc, why, "journal_mode");
  else if (strcmp((const char *)mode, "wal") != 0)
    err = gv_fail(why, -EIO, "cannot switch to WAL mode (journal_mode %s)",
                  (const char *)mode);
  sqlite3_finalize(st);
  if (err < 0)
    return err;
  snprintf(sql, sizeof(sql),
           "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = %d",
           GV_STORE_WAL_LIMIT);
  return exec(s, sql, why, "connection settings");
}

static int prepare_all(gv_store *s, gv_why *why) {
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&s->begin, "BEGIN IMMEDIATE"},
      {&s->commit, "COMMIT"},
      {&s->rollback, "ROLLBACK"},
      {&s->put, "INSERT INTO peers (id, body, sig, last_seen)"
                " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET"
                " body = excluded.body, sig = excluded.sig,"
                " last_seen = excluded.last_seen"},
      {&s->del, "DELETE FROM peers WHERE id = ?1"},
      {&s->load, "SELECT id, body, sig, last_seen FROM peers"},
      {&s->set, "INSERT INTO settings (key, value) VALUES (?1, ?2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value"},
      {&s->get, "SELECT value FROM settings WHERE key = ?1"},
  };

  for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
    int rc = sqlite3_prepare_v3(s->db, stmts[i].sql, -1,
                                SQLITE_PREPARE_PERSISTENT, stmts[i].st, NULL);
    if (rc != SQLITE_OK)
      return sql_fail(s, rc, why, "prepare");
  }
  return 0;
}

static void queue_clear(gv_store *s) {
  for (size_t i = 0; i < s->len; i++)
    free(s->q[i].body);
  s->len = 0;
  s->bytes = 0;
  gv_idmap_free(&s->index);
}

/* Frees everything without flushing; s may be half-opened or NULL. */
static void destroy(gv_store *s) {
  if (s == NULL)
    return;
  sqlite3_finalize(s->begin);
  sqlite3_finalize(s->commit);
  sqlite3_finalize(s->rollback);
  sqlite3_finalize(s->put);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->load);
  sqlite3_finalize(s->set);
  sqlite3_finalize(s->get);
  sqlite3_close(s->db); /* the last connection checkpoints the WAL */
  queue_clear(s);
  free(s->q);
  free(s);
}

/* Every reason in why starts with the path. */
int gv_store_open(gv_store **out, const char *path, gv_why *why) {
  gv_store *s = NULL;
  gv_why inner = {{0}};
  int rc;

  *out = NULL;
  if (path == NULL)
    return gv_fail(why, GV_EINVAL, "no database path");
  if ((s = calloc(1, sizeof(*s))) == NULL) {
    rc = gv_fail(&inner, GV_ENOMEM, "out of memory");
    goto out;
  }
  {
    uint8_t key[GV_IDMAP_KEY_BYTES];
    randombytes_buf(key, sizeof(key)); /* ids come from the network */
    gv_idmap_init(&s->index, key);
  }
  rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                       NULL);
  if (rc != SQLITE_OK) {
    rc = s->db == NULL ? gv_fail(&inner, GV_ENOMEM, "out of memory")
                       : sql_fail(s, rc, &inner, "open");
    goto out;
  }
  if (sqlite3_db_readonly(s->db, "main") == 1) {
    rc = gv_fail(&inner, -EACCES, "database is not writable");
    goto out;
  }
  sqlite3_busy_timeout(s->db, GV_STORE_BUSY_MS);
  if ((rc = init_schema(s, &inner)) < 0 || (rc = set_modes(s, &inner)) < 0 ||
      (rc = prepare_all(s, &inner)) < 0)
    goto out;
  *out = s;
  s = NULL;
out:
  destroy(s);
  if (rc < 0)
    gv_fail(why, rc, "%s: %s", path, inner.text);
  return rc;
}

void gv_store_close(gv_store *s) {
  if (s == NULL)
    return;
  assert(!s->walking && "gv_store_close inside gv_store_load_peers");
  gv_store_flush(s, NULL); /* on failure the queue is lost: nobody to tell */
  destroy(s);
}

/* ---- the queue ---- */

size_t gv_store_pending(const gv_store *s) { return s->len; }

/* Applies one queued change inside the flush transaction. */
static int apply(gv_store *s, const change *c, gv_why *why) {
  sqlite3_stmt *st = c->del ? s->del : s->put;
  int rc = sqlite3_bind_blob(st, 1, c->id, GV_ID_BYTES, SQLITE_STATIC);

  if (!c->del) {
    if (rc == SQLITE_OK)
      rc = sqlite3_bind_text(st, 2, c->body, (int)c->body_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
      rc = sqlite3_bind_blob(st, 3, c->sig, GV_SIG_BYTES, SQLITE_STATIC);
    if (rc == SQLITE_OK)
      rc = sqlite3_bind_int64(st, 4, c->last_seen);
  }
  if (rc != SQLITE_OK)
    return sql_fail(s, rc, why, "bind");
  return run(s, st, why, c->del ? "delete peer" : "write peer");
}

int gv_store_flush(gv_store *s, gv_why *why) {
  int rc;

  if (s->walking)
    return gv_fail(why, GV_ESTATE, "flush inside gv_store_load_peers");
  check_queue(s);
  if (s->len == 0)
    return 0;
  if ((rc = run(s, s->begin, why, "begin")) < 0)
    return rc;
  for (size_t i = 0; i < s->len && rc == 0; i++)
    rc = apply(s, &s->q[i], why);
  if (rc == 0)
    rc = run(s, s->commit, why, "commit");
  if (rc < 0) {
    /* COMMIT may fail and leave the transaction open, or SQLite may have
     * rolled back already (a full disk): roll back only what is open. */
    if (!sqlite3_get_autocommit(s->db))
      run(s, s->rollback, NULL, "rollback");
    return rc;
  }
  queue_clear(s);
  if (s->cap > GV_STORE_QUEUE_KEEP) { /* after a burst, give memory back */
    free(s->q);
    s->q = NULL;
    s->cap = 0;
  }
  return 0;
}

/* The queued change for id, fresh (a deletion, no body) or replacing the one
 * queued before, after an auto-flush if adding body_len bytes (or a change)
 * would cross a bound. On error nothing queued has changed. */
static int queue_slot(gv_store *s, const uint8_t id[GV_ID_BYTES],
                      size_t body_len, change **out) {
  size_t at = (size_t)(uintptr_t)gv_idmap_get(&s->index, id);
  size_t old_len = at != 0 ? s->q[at - 1].body_len : 0;
  int rc;

  check_queue(s);
  if ((at == 0 && s->len == GV_STORE_QUEUE_MAX) ||
      s->bytes - old_len + body_len > GV_STORE_QUEUE_BYTES) {
    if ((rc = gv_store_flush(s, NULL)) < 0)
      return rc;
    at = 0;
  }
  if (at == 0) {
    if (s->len == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 64;
      change *q = realloc(s->q, cap * sizeof(*q));
      if (q == NULL)
        return GV_ENOMEM;
      s->q = q;
      s->cap = cap;
    }
    if (gv_idmap_put(&s->index, id, (void *)(uintptr_t)(s->len + 1)) < 0)
      return GV_ENOMEM;
    at = ++s->len;
    memset(&s->q[at - 1], 0, sizeof(change));
    memcpy(s->q[at - 1].id, id, GV_ID_BYTES);
    s->q[at - 1].del = true;
  }
  *out = &s->q[at - 1];
  s->bytes -= (*out)->body_len;
  free((*out)->body);
  (*out)->body = NULL;
  (*out)->body_len = 0;
  return 0;
}

int gv_store_put_peer(gv_store *s, const uint8_t id[GV_ID_BYTES],
                      const char *body, size_t body_len, const uint8_t sig[64],
                      int64_t last_seen) {
  char *copy;
  change *c;
  int rc;

  if (id == NULL || body == NULL || sig == NULL)
    return GV_EINVAL;
  if (body_len > GV_STORE_BODY_MAX)
    return GV_ETOOBIG;
  if (s->walking)
    return GV_ESTATE;
  if ((copy = malloc(body_len + 1)) == NULL)
    return GV_ENOMEM;
  memcpy(copy, body, body_len);
  copy[body_len] = '\0';
  if ((rc = queue_slot(s, id, body_len, &c)) < 0) {
    free(copy);
    return rc;
  }
  c->del = false;
  c->body = copy;
  c->body_len = body_len;
  memcpy(c->sig, sig, GV_SIG_BYTES);
  c->last_seen = last_seen;
  s->bytes += body_len;
  return 0;
}

int gv_store_del_peer(gv_store *s, const uint8_t id[GV_ID_BYTES]) {
  change *c;
  int rc;

  if (id == NULL)
    return GV_EINVAL;
  if (s->walking)
    return GV_ESTATE;
  if ((rc = queue_slot(s, id, 0, &c)) < 0)
    return rc;
  c->del = true;
  return 0;
}

/* ---- reading ---- */

/* Rows another writer left malformed (wrong sizes or types) are skipped:
 * the callback is promised a 32-byte id and a 64-byte signature. */
int gv_store_load_peers(gv_store *s, gv_store_peer_cb cb, void *ctx) {
  int rc, step;

  if (cb == NULL)
    return GV_EINVAL;
  if (s->walking)
    return GV_ESTATE;
  if ((rc = gv_store_flush(s, NULL)) < 0)
    return rc;
  s->walking = true;
  while ((step = sqlite3_step(s->load)) == SQLITE_ROW) {
    sqlite3_stmt *st = s->load;
    const uint8_t *id, *sig;
    const char *body;

    /* Types first: the accessors below may convert. */
    if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
        sqlite3_column_type(st, 1) != SQLITE_TEXT ||
        sqlite3_column_type(st, 2) != SQLITE_BLOB ||
        sqlite3_column_type(st, 3) != SQLITE_INTEGER)
      continue;
    id = sqlite3_column_blob(st, 0);
    body = (const char *)sqlite3_column_text(st, 1);
    sig = sqlite3_column_blob(st, 2);
    if (id == NULL || sqlite3_column_bytes(st, 0) != GV_ID_BYTES ||
        body == NULL || sig == NULL ||
        sqlite3_column_bytes(st, 2) != GV_SIG_BYTES)
      continue;
    rc = cb(ctx, id, body, (size_t)sqlite3_column_bytes(st, 1), sig,
            sqlite3_column_int64(st, 3));
    if (rc != 0)
      break;
  }
  if (rc == 0 && step != SQLITE_DONE)
    rc = map_rc(s->db, step);
  sqlite3_reset(s->load);
  s->walking = false;
  return rc;
}

int gv_store_set(gv_store *s, const char *key, const char *value) {
  size_t key_len, value_len;
  int rc;

  if (key == NULL || value == NULL)
    return GV_EINVAL;
  if ((key_len = strlen(key)) > GV_STORE_KEY_MAX ||
      (value_len = strlen(value)) > GV_STORE_VALUE_MAX)
    return GV_ETOOBIG;
  if (s->walking)
    return GV_ESTATE;
  /* Outside a transaction (flush never leaves one open), the statement
   * commits on its own. */
  if ((rc = sqlite3_bind_text(s->set, 1, key, (int)key_len, SQLITE_STATIC)) !=
          SQLITE_OK ||
      (rc = sqlite3_bind_text(s->set, 2, value, (int)value_len,
                              SQLITE_STATIC)) != SQLITE_OK)
    return map_rc(s->db, rc);
  rc = sqlite3_step(s->set);
  sqlite3_reset(s->set);
  sqlite3_clear_bindings(s->set);
  return rc == SQLITE_DONE ? 0 : map_rc(s->db, rc);
}

/* Returns 0 (out holds the value, truncated to cap - 1 bytes), -ENOENT, or
 * an error (cap 0: GV_EINVAL). */
int gv_store_get(gv_store *s, const char *key, char *out, size_t cap) {
  size_t key_len;
  int rc, step;

  if (key == NULL || out == NULL || cap == 0)
    return GV_EINVAL;
  if ((key_len = strlen(key)) > GV_STORE_KEY_MAX)
    return -ENOENT; /* set() never stored it */
  if (s->walking)
    return GV_ESTATE;
  if ((rc = sqlite3_bind_text(s->get, 1, key, (int)key_len, SQLITE_STATIC)) !=
      SQLITE_OK)
    return map_rc(s->db, rc);
  step = sqlite3_step(s->get);
  if (step == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(s->get, 0);
    int len = sqlite3_column_bytes(s->get, 0);
    size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;

    if (v == NULL) {
      rc = GV_ENOMEM; /* NOT NULL column: only a failed conversion */
    } else {
      memcpy(out, v, n);
      out[n] = '\0';
      rc = 0;
    }
  } else {
    rc = step == SQLITE_DONE ? -ENOENT : map_rc(s->db, step);
  }
  sqlite3_reset(s->get);
  sqlite3_clear_bindings(s->get);
  return rc;
}

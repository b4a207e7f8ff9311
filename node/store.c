/* The node's durable state, on gv_db (node/db.h): one SQLite connection
 * in WAL mode with synchronous=FULL and one writer thread. A committed
 * flush or setting survives kill -9 of the process and a power cut (to the
 * extent the disk honours fsync).
 *
 * Schema (application_id GV_STORE_APP_ID, user_version 1):
 *   peers(id BLOB 32 bytes PRIMARY KEY, body TEXT, sig BLOB 64 bytes,
 *         last_seen INTEGER) WITHOUT ROWID
 *   settings(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID
 * A database with another application_id, or tables but no application_id,
 * is "not a Grapevine database" (GV_EINVAL); a newer user_version is
 * GV_EVERSION. Neither is modified: the check runs as gv_db's init, before
 * the switch to WAL. SQLite errors are mapped by gv_db_status().
 *
 * The write-behind queue lives on the caller's thread: a dense array of
 * changes, one per peer id, and an id -> index map, so a later put or del
 * of the same id replaces the queued change in O(1):
 *
 *            put/del                    gv_store_flush: one gv_db_call job
 *   EMPTY ------------> PENDING ------> (every change, in the writer's next
 *                        |   ^           group commit) -> EMPTY
 *                        +---+  put/del (replace or append);
 *                               flush fails: job rolled back, queue kept
 *
 * Bounds: at most GV_STORE_QUEUE_MAX changes and GV_STORE_QUEUE_BYTES of
 * queued bodies. A put or del that would cross either bound flushes first
 * (an auto-flush); if that flush fails, the put or del fails with its error
 * and the queue is left as it was.
 *
 * Writes (flush, set) go through gv_db_call: the caller blocks until the
 * group holding them has committed. Reads (get, load) hold gv_db_lock and
 * run on the caller's thread. This store's gv_db has no loop: it is used
 * only synchronously.
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

#include "db.h"
#include "idmap.h"
#include "msg.h"

#define GV_STORE_APP_ID 0x4756534e /* "GVSN": Grapevine node store */
#define GV_STORE_SCHEMA 1          /* user_version */
#define GV_STORE_QUEUE_MAX 65536   /* queued changes */
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
  gv_db *db;
  sqlite3_stmt *put, *del, *load, *set, *get;
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

/* Maps rc and writes "what: SQLite's message" into why. Call before
 * anything else touches the connection's error state. */
static int sql_fail(sqlite3 *h, int rc, gv_why *why, const char *what) {
  int err = gv_db_status(h, rc);

  if ((rc & 0xff) == SQLITE_NOTADB)
    return gv_fail(why, err, "not a Grapevine database: %s", sqlite3_errmsg(h));
  if (((rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_IOERR) &&
      err != -EIO) /* SQLite's text omits the system's reason */
    return gv_fail(why, err, "%s: %s (%s)", what, sqlite3_errmsg(h),
                   strerror(-err));
  return gv_fail(why, err, "%s: %s", what, sqlite3_errmsg(h));
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int run(sqlite3 *h, sqlite3_stmt *st, gv_why *why, const char *what) {
  int rc = sqlite3_step(st), err = 0;

  if (rc != SQLITE_DONE)
    err = sql_fail(h, rc, why, what);
  sqlite3_reset(st);
  return err;
}

/* gv_db's init: the schema checked or made (db.h). */
static int init_schema(void *ctx, sqlite3 *h, gv_why *why) {
  static const gv_db_schema schema = {GV_STORE_APP_ID, GV_STORE_SCHEMA,
                                      SCHEMA_SQL, "Grapevine", NULL};
  (void)ctx;
  return gv_db_init_schema(h, &schema, why);
}

/* On the caller's thread, under gv_db_lock. */
static int prepare_all(gv_store *s, sqlite3 *h, gv_why *why) {
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
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
    int rc = sqlite3_prepare_v3(h, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                stmts[i].st, NULL);
    if (rc != SQLITE_OK)
      return sql_fail(h, rc, why, "prepare");
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
  /* The statements go before the connection, which gv_db_close closes
   * (and the last connection checkpoints the WAL). */
  sqlite3_finalize(s->put);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->load);
  sqlite3_finalize(s->set);
  sqlite3_finalize(s->get);
  gv_db_close(s->db);
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
  {
    gv_db_opts opts = {.init = init_schema};
    sqlite3 *h;

    if ((rc = gv_db_open(&s->db, NULL, path, &opts, why)) < 0)
      goto out; /* why already names the path */
    if ((h = gv_db_lock(s->db)) == NULL) {
      rc = gv_fail(&inner, GV_ESTATE, "database closing");
      goto out;
    }
    rc = prepare_all(s, h, &inner);
    gv_db_unlock(s->db);
    if (rc < 0)
      goto out;
  }
  *out = s;
  s = NULL;
out:
  destroy(s);
  if (rc < 0 && inner.text[0] != '\0')
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
static int apply(gv_store *s, sqlite3 *h, const change *c, gv_why *why) {
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
    return sql_fail(h, rc, why, "bind");
  return run(h, st, why, c->del ? "delete peer" : "write peer");
}

/* gv_store_flush's job, on the writer thread inside the group commit. */
static int flush_job(void *arg, sqlite3 *h, gv_why *why) {
  gv_store *s = arg;
  int rc = 0;

  for (size_t i = 0; i < s->len && rc == 0; i++)
    rc = apply(s, h, &s->q[i], why);
  return rc;
}

int gv_store_flush(gv_store *s, gv_why *why) {
  int rc;

  if (s->walking)
    return gv_fail(why, GV_ESTATE, "flush inside gv_store_load_peers");
  check_queue(s);
  if (s->len == 0)
    return 0;
  if ((rc = gv_db_call(s->db, flush_job, s, why)) < 0)
    return rc;
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
  sqlite3 *h;
  int rc, step;

  if (cb == NULL)
    return GV_EINVAL;
  if (s->walking)
    return GV_ESTATE;
  if ((rc = gv_store_flush(s, NULL)) < 0)
    return rc;
  if ((h = gv_db_lock(s->db)) == NULL)
    return GV_ESTATE;
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
    rc = gv_db_status(h, step);
  sqlite3_reset(s->load);
  s->walking = false;
  gv_db_unlock(s->db);
  return rc;
}

typedef struct set_arg {
  gv_store *s;
  const char *key, *value;
  size_t key_len, value_len;
} set_arg;

/* gv_store_set's job, on the writer thread inside the group commit. */
static int set_job(void *arg, sqlite3 *h, gv_why *why) {
  set_arg *a = arg;
  sqlite3_stmt *st = a->s->set;
  int rc;

  if ((rc = sqlite3_bind_text(st, 1, a->key, (int)a->key_len, SQLITE_STATIC)) !=
          SQLITE_OK ||
      (rc = sqlite3_bind_text(st, 2, a->value, (int)a->value_len,
                              SQLITE_STATIC)) != SQLITE_OK)
    rc = sql_fail(h, rc, why, "bind");
  else
    rc = run(h, st, why, "write setting");
  sqlite3_clear_bindings(st);
  return rc;
}

int gv_store_set(gv_store *s, const char *key, const char *value) {
  set_arg a = {s, key, value, 0, 0};

  if (key == NULL || value == NULL)
    return GV_EINVAL;
  if ((a.key_len = strlen(key)) > GV_STORE_KEY_MAX ||
      (a.value_len = strlen(value)) > GV_STORE_VALUE_MAX)
    return GV_ETOOBIG;
  if (s->walking)
    return GV_ESTATE;
  /* Its own job: committed (durably) whatever the peer queue holds. */
  return gv_db_call(s->db, set_job, &a, NULL);
}

/* Returns 0 (out holds the value, truncated to cap - 1 bytes), -ENOENT, or
 * an error (cap 0: GV_EINVAL). */
int gv_store_get(gv_store *s, const char *key, char *out, size_t cap) {
  size_t key_len;
  sqlite3 *h;
  int rc, step;

  if (key == NULL || out == NULL || cap == 0)
    return GV_EINVAL;
  if ((key_len = strlen(key)) > GV_STORE_KEY_MAX)
    return -ENOENT; /* set() never stored it */
  if (s->walking || (h = gv_db_lock(s->db)) == NULL)
    return GV_ESTATE;
  if ((rc = sqlite3_bind_text(s->get, 1, key, (int)key_len, SQLITE_STATIC)) !=
      SQLITE_OK) {
    gv_db_unlock(s->db);
    return gv_db_status(h, rc);
  }
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
    rc = step == SQLITE_DONE ? -ENOENT : gv_db_status(h, step);
  }
  sqlite3_reset(s->get);
  sqlite3_clear_bindings(s->get);
  gv_db_unlock(s->db);
  return rc;
}

/* The relay's store (relaystore.h): gv_rrow rows as SQL on their own gv_db.
 *
 * Schema (application_id GV_RSTORE_APP_ID, user_version GV_RSTORE_SCHEMA),
 * every table keyed by an INTEGER PRIMARY KEY n that gives the write order:
 *
 *   agents  (n, team_id, project, name)          UNIQUE (team_id, project,
 *                                                name): insert or ignore
 *   members (n, team_id, node)                   UNIQUE: insert or ignore
 *   msgs    (n = the row's key, id, inbound, team_id, src, dst,
 *            from_agent, to_agent, thread, seq, created_ms, deadline_ms,
 *            state, reason)                      (the core keeps (id,
 *                                                inbound) unique; no
 *                                                index on random ids)
 *   bodies  (msg -> msgs.n, body)                apart, so that a state
 *                                                change rewrites a small row
 *   trace   (n, msg -> msgs.n, state, reason, at_ms, hop)   index on msg
 *   cursors (n, to_agent, src, from_agent, seq)  UNIQUE (to_agent, src,
 *                                                from_agent): upsert
 *
 * One gv_rrow is one or two statements of the job (gv_db_exec copies them):
 *
 *   AGENT, MEMBER  INSERT ... ON CONFLICT DO NOTHING
 *   MSG            INSERT (a duplicate key fails the job), then
 *                  its body (msg = last_insert_rowid()) unless it has none
 *   STATE          INSERT INTO trace (msg = the key: a foreign key, so the
 *                  job fails if the message is not stored), then UPDATE
 *                  msgs SET state, reason WHERE n = key
 *   CURSOR         INSERT ... ON CONFLICT DO UPDATE SET seq
 *   DROP           DELETE its trace and body, then the message (nothing stored:
 *                  nothing deleted, not an error)
 *
 * A new n is above every n in its table (SQLite's rowid is max + 1), so a
 * number freed by a DROP never puts a later row before an earlier one.
 * The ten statements fit gv_db's cache of prepared statements.
 *
 * The schema is checked or created in gv_db's init hook, before the file is
 * changed in any way; a foreign file or another version is refused, never
 * migrated.
 */
#include "relaystore.h"

#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define GV_RSTORE_APP_ID 0x4756524c /* "GVRL": Grapevine relay store */
#define GV_RSTORE_SCHEMA 2          /* user_version (2: bodies apart) */
#define GV_RSTORE_BODY_MAX GV_RW_PAYLOAD_MAX
#define GV_RSTORE_VALS_MAX 15 /* values of the widest row (MSG and body) */

#define STR_(x) #x
#define STR(x) STR_(x)
#define BLOB_OF(col, n)                                                        \
  " CHECK (typeof(" col ") = 'blob' AND length(" col ") = " STR(n) ")"
#define TEXT_OF(col, n)                                                        \
  " CHECK (typeof(" col ") = 'text' AND length(CAST(" col                      \
  " AS BLOB)) <= " STR(n) ")"

/* One column a line reads better than what the formatter makes of it. */
/* clang-format off */
static const char SCHEMA_SQL[] =
    "CREATE TABLE agents ("
    " n INTEGER PRIMARY KEY,"
    " team_id BLOB NOT NULL" BLOB_OF("team_id", 32) ","
    " project TEXT NOT NULL" TEXT_OF("project", 64) ","
    " name TEXT NOT NULL" TEXT_OF("name", 64) ","
    " UNIQUE (team_id, project, name));"
    "CREATE TABLE members ("
    " n INTEGER PRIMARY KEY,"
    " team_id BLOB NOT NULL" BLOB_OF("team_id", 32) ","
    " node BLOB NOT NULL" BLOB_OF("node", 32) ","
    " UNIQUE (team_id, node));"
    "CREATE TABLE msgs ("
    " n INTEGER PRIMARY KEY,"
    " id BLOB NOT NULL" BLOB_OF("id", 16) ","
    " inbound INTEGER NOT NULL CHECK (inbound IN (0, 1)),"
    " team_id BLOB NOT NULL" BLOB_OF("team_id", 32) ","
    " src BLOB NOT NULL" BLOB_OF("src", 32) ","
    " dst BLOB NOT NULL" BLOB_OF("dst", 32) ","
    " from_agent TEXT NOT NULL" TEXT_OF("from_agent", 129) ","
    " to_agent TEXT NOT NULL" TEXT_OF("to_agent", 129) ","
    " thread TEXT NOT NULL" TEXT_OF("thread", 64) ","
    " seq INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " deadline_ms INTEGER NOT NULL,"
    " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
    " reason INTEGER NOT NULL CHECK (reason BETWEEN 0 AND 5));"
    /* Bodies apart, so that a state change rewrites a small row. */
    "CREATE TABLE bodies ("
    " msg INTEGER PRIMARY KEY REFERENCES msgs (n),"
    " body BLOB NOT NULL CHECK (typeof(body) = 'blob'"
    "  AND length(body) <= 1048576));"
    "CREATE TABLE trace ("
    " n INTEGER PRIMARY KEY,"
    " msg INTEGER NOT NULL REFERENCES msgs (n),"
    " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
    " reason INTEGER NOT NULL CHECK (reason BETWEEN 0 AND 5),"
    " at_ms INTEGER NOT NULL,"
    " hop BLOB CHECK (hop IS NULL OR (typeof(hop) = 'blob'"
    "  AND length(hop) = 32)));"
    "CREATE INDEX trace_by_msg ON trace (msg);"
    "CREATE TABLE cursors ("
    " n INTEGER PRIMARY KEY,"
    " to_agent TEXT NOT NULL" TEXT_OF("to_agent", 129) ","
    " src BLOB NOT NULL" BLOB_OF("src", 32) ","
    " from_agent TEXT NOT NULL" TEXT_OF("from_agent", 129) ","
    " seq INTEGER NOT NULL,"
    " UNIQUE (to_agent, src, from_agent));";
/* clang-format on */

_Static_assert(GV_RW_ID_BYTES == 16 && GV_RW_KEY_BYTES == 32 &&
                   GV_ID_BYTES == 32 && GV_RW_AGENT_MAX == 129 &&
                   GV_RW_THREAD_MAX == 64 && GV_RADDR_PART_MAX == 64 &&
                   GV_RSTORE_BODY_MAX == 1048576 && GV_RSTATE_FAILED == 5 &&
                   GV_RFAIL_NOT_IN_TEAM == 5,
               "SCHEMA_SQL's CHECKs spell these sizes out");

static const char SQL_AGENT[] =
    "INSERT INTO agents (team_id, project, name) VALUES (?1, ?2, ?3)"
    " ON CONFLICT DO NOTHING";
static const char SQL_MEMBER[] =
    "INSERT INTO members (team_id, node) VALUES (?1, ?2)"
    " ON CONFLICT DO NOTHING";
static const char SQL_MSG[] =
    "INSERT INTO msgs (id, inbound, team_id, src, dst, from_agent, to_agent,"
    " thread, seq, created_ms, deadline_ms, state, reason, n)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
/* Right after SQL_MSG, in the same job: its body. */
static const char SQL_BODY[] =
    "INSERT INTO bodies (msg, body) VALUES (last_insert_rowid(), ?1)";
/* Both take ?1 the message's key, ?2 state, ?3 reason; the trace ?4 at_ms
 * and ?5 hop. (A trace of a message not stored fails its foreign key.) */
static const char SQL_TRACE[] =
    "INSERT INTO trace (msg, state, reason, at_ms, hop)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_STATE[] =
    "UPDATE msgs SET state = ?2, reason = ?3 WHERE n = ?1";
static const char SQL_CURSOR[] =
    "INSERT INTO cursors (to_agent, src, from_agent, seq)"
    " VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (to_agent, src, from_agent) DO UPDATE SET seq = excluded.seq";
/* Everything of the messages a day past their deadline (wall clock ms). */
static const char SQL_PRUNE[] =
    "BEGIN IMMEDIATE;"
    "CREATE TEMP TABLE IF NOT EXISTS dead (n INTEGER PRIMARY KEY);"
    "DELETE FROM temp.dead;"
    "INSERT INTO temp.dead SELECT n FROM msgs WHERE deadline_ms <"
    " CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 86400000;"
    "DELETE FROM trace WHERE msg IN temp.dead;"
    "DELETE FROM bodies WHERE msg IN temp.dead;"
    "DELETE FROM msgs WHERE n IN temp.dead;"
    "COMMIT;";
static const char SQL_DROP_TRACE[] = "DELETE FROM trace WHERE msg = ?1";
static const char SQL_DROP_BODY[] = "DELETE FROM bodies WHERE msg = ?1";
static const char SQL_DROP_MSG[] = "DELETE FROM msgs WHERE n = ?1";

struct gv_rstore {
  gv_db *db;
  char *path; /* for reasons */
};

/* One persisted job's callback, between gv_db_exec and its done. */
typedef struct ticket {
  uint64_t job;
  void (*done)(void *ctx, uint64_t job, int status);
  void *ctx;
} ticket;

/* ---- SQLite errors ---- */

static int sql_fail(sqlite3 *h, int rc, gv_why *why, const char *what) {
  int err = gv_db_status(h, rc);

  if ((rc & 0xff) == SQLITE_NOTADB)
    return gv_fail(why, err, "not a Grapevine relay database: %s",
                   sqlite3_errmsg(h));
  return gv_fail(why, err, "%s: %s", what, sqlite3_errmsg(h));
}

/* gv_db's init: the schema checked or made. 32 MiB of page cache keeps a
 * burst's pages read once; foreign keys catch a trace or body whose
 * message is not stored. */
static int init_schema(void *ctx, sqlite3 *h, gv_why *why) {
  static const gv_db_schema schema = {
      GV_RSTORE_APP_ID, GV_RSTORE_SCHEMA, SCHEMA_SQL, "Grapevine relay",
      "PRAGMA cache_size = -32768; PRAGMA foreign_keys = ON"};
  (void)ctx;
  return gv_db_init_schema(h, &schema, why);
}

int gv__rstore_open(gv_rstore **out, uv_loop_t *loop, const char *path,
                    size_t queue_max, gv_why *why) {
  gv_db_opts opts = {.queue_max = queue_max, .init = init_schema};
  gv_rstore *s;
  int rc;

  *out = NULL;
  if (path == NULL)
    return gv_fail(why, GV_EINVAL, "no relay database path");
  if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    return gv_fail(why, GV_ENOMEM, "%s: out of memory", path);
  }
  if ((rc = gv_db_open(&s->db, loop, path, &opts, why)) < 0) {
    free(s->path);
    free(s);
    return rc; /* why names the path */
  }
  *out = s;
  return 0;
}

int gv_rstore_open(gv_rstore **out, uv_loop_t *loop, const char *path,
                   gv_why *why) {
  return gv__rstore_open(out, loop, path, 0, why);
}

void gv_rstore_close(gv_rstore *s) {
  if (s == NULL)
    return;
  gv_db_close(s->db); /* commits the queue and calls every done */
  free(s->path);
  free(s);
}

/* ---- persist ---- */

static void on_done(void *arg, int status) {
  ticket t = *(ticket *)arg;

  free(arg);
  if (t.done != NULL)
    t.done(t.ctx, t.job, status);
}

/* The length of the NUL-terminated s in a char[cap], or -1 without NUL. */
static ptrdiff_t text_len(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  return n < cap ? (ptrdiff_t)n : -1;
}

static bool state_ok(gv_rstate st, gv_rfail why) {
  return (unsigned)st <= GV_RSTATE_FAILED &&
         (unsigned)why <= GV_RFAIL_NOT_IN_TEAM;
}

/* Appends row's statements to st[*n_st..] with their values at v[..]
 * (at most 3 statements and GV_RSTORE_VALS_MAX values). The values point
 * into row. GV_EINVAL or GV_ETOOBIG for a malformed row. */
static int row_stmts(const gv_rrow *row, gv_db_stmt *st, size_t *n_st,
                     gv_db_val *v) {
  size_t k = *n_st;

  switch (row->type) {
  case GV_RROW_AGENT: {
    const gv_ragent_row *a = &row->u.agent;
    ptrdiff_t p = text_len(a->agent.project, sizeof(a->agent.project));
    ptrdiff_t m = text_len(a->agent.name, sizeof(a->agent.name));
    if (p < 0 || m < 0)
      return GV_EINVAL;
    v[0] = GV_DB_BLOB(a->team_id, GV_RW_KEY_BYTES);
    v[1] = GV_DB_TEXT(a->agent.project, (size_t)p);
    v[2] = GV_DB_TEXT(a->agent.name, (size_t)m);
    st[k++] = (gv_db_stmt){SQL_AGENT, v, 3};
    break;
  }
  case GV_RROW_MEMBER:
    v[0] = GV_DB_BLOB(row->u.member.team_id, GV_RW_KEY_BYTES);
    v[1] = GV_DB_BLOB(row->u.member.node, GV_ID_BYTES);
    st[k++] = (gv_db_stmt){SQL_MEMBER, v, 2};
    break;
  case GV_RROW_MSG: {
    const gv_rmsg_row *m = &row->u.msg;
    ptrdiff_t f = text_len(m->from, sizeof(m->from));
    ptrdiff_t t = text_len(m->to, sizeof(m->to));
    ptrdiff_t th = text_len(m->thread, sizeof(m->thread));
    if (f < 0 || t < 0 || th < 0 || !state_ok(m->state, m->reason) ||
        (m->body == NULL && m->body_len > 0))
      return GV_EINVAL;
    if (m->body_len > GV_RSTORE_BODY_MAX)
      return GV_ETOOBIG;
    if (m->key == 0 || m->key > INT64_MAX)
      return GV_EINVAL;
    v[0] = GV_DB_BLOB(m->id, GV_RW_ID_BYTES);
    v[1] = GV_DB_INT(m->inbound);
    v[2] = GV_DB_BLOB(m->team_id, GV_RW_KEY_BYTES);
    v[3] = GV_DB_BLOB(m->src, GV_ID_BYTES);
    v[4] = GV_DB_BLOB(m->dst, GV_ID_BYTES);
    v[5] = GV_DB_TEXT(m->from, (size_t)f);
    v[6] = GV_DB_TEXT(m->to, (size_t)t);
    v[7] = GV_DB_TEXT(m->thread, (size_t)th);
    v[8] = GV_DB_INT((int64_t)m->seq); /* read back as uint64_t */
    v[9] = GV_DB_INT(m->created_ms);
    v[10] = GV_DB_INT(m->deadline_ms);
    v[11] = GV_DB_INT(m->state);
    v[12] = GV_DB_INT(m->reason);
    v[13] = GV_DB_INT((int64_t)m->key);
    st[k++] = (gv_db_stmt){SQL_MSG, v, 14};
    if (m->body != NULL) {
      v[14] = GV_DB_BLOB(m->body, m->body_len);
      st[k++] = (gv_db_stmt){SQL_BODY, v + 14, 1};
    }
    break;
  }
  case GV_RROW_STATE: {
    const gv_rstate_row *s = &row->u.state;
    if (!state_ok(s->state, s->reason) || s->key == 0 || s->key > INT64_MAX)
      return GV_EINVAL;
    v[0] = GV_DB_INT((int64_t)s->key);
    v[1] = GV_DB_INT(s->state);
    v[2] = GV_DB_INT(s->reason);
    v[3] = GV_DB_INT(s->at_ms);
    v[4] = s->has_hop ? GV_DB_BLOB(s->hop, GV_ID_BYTES) : GV_DB_NULL;
    st[k++] = (gv_db_stmt){SQL_TRACE, v, 5};
    st[k++] = (gv_db_stmt){SQL_STATE, v, 3};
    break;
  }
  case GV_RROW_CURSOR: {
    const gv_rcursor_row *c = &row->u.cursor;
    ptrdiff_t t = text_len(c->to, sizeof(c->to));
    ptrdiff_t f = text_len(c->from, sizeof(c->from));
    if (t < 0 || f < 0)
      return GV_EINVAL;
    v[0] = GV_DB_TEXT(c->to, (size_t)t);
    v[1] = GV_DB_BLOB(c->src, GV_ID_BYTES);
    v[2] = GV_DB_TEXT(c->from, (size_t)f);
    v[3] = GV_DB_INT((int64_t)c->seq);
    st[k++] = (gv_db_stmt){SQL_CURSOR, v, 4};
    break;
  }
  case GV_RROW_DROP:
    if (row->u.drop.key == 0 || row->u.drop.key > INT64_MAX)
      return GV_EINVAL;
    v[0] = GV_DB_INT((int64_t)row->u.drop.key);
    st[k++] = (gv_db_stmt){SQL_DROP_TRACE, v, 1};
    st[k++] = (gv_db_stmt){SQL_DROP_BODY, v, 1};
    st[k++] = (gv_db_stmt){SQL_DROP_MSG, v, 1};
    break;
  default: return GV_EINVAL;
  }
  *n_st = k;
  return 0;
}

int gv_rstore_persist(gv_rstore *s, uint64_t job, const gv_rrow *rows, size_t n,
                      void (*done)(void *ctx, uint64_t job, int status),
                      void *ctx) {
  gv_db_stmt *st = NULL;
  gv_db_val *vals = NULL;
  ticket *t = NULL;
  size_t n_st = 0;
  int rc = 0;

  if (s == NULL || rows == NULL || n == 0)
    return GV_EINVAL;
  if (n > SIZE_MAX / (GV_RSTORE_VALS_MAX * sizeof(gv_db_val)))
    return GV_ENOMEM;
  if ((st = malloc(3 * n * sizeof(*st))) == NULL ||
      (vals = malloc(GV_RSTORE_VALS_MAX * n * sizeof(*vals))) == NULL ||
      (t = malloc(sizeof(*t))) == NULL) {
    rc = GV_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = row_stmts(&rows[i], st, &n_st, vals + i * GV_RSTORE_VALS_MAX);
  if (rc < 0)
    goto out;
  *t = (ticket){job, done, ctx};
  /* Copies every statement and value; on success t is on_done's. */
  if ((rc = gv_db_exec(s->db, st, n_st, on_done, t)) == 0)
    t = NULL;
out:
  free(t);
  free(vals);
  free(st);
  return rc;
}

/* ---- load ---- */

/* One gv_rstore_load: the handle it holds, the caller's callback, and
 * where it is, for reasons. */
typedef struct loader {
  sqlite3 *h;
  void (*cb)(void *ctx, const gv_rrow *row);
  void *ctx;
  sqlite3_stmt *trace; /* a message's trace, by msgs.n */
  const char *table;
  int64_t n; /* the row being read */
  gv_why *why;
} loader;

static int bad(loader *l, const char *col) {
  return gv_fail(l->why, GV_EINVAL, "%s row %lld: malformed %s", l->table,
                 (long long)l->n, col);
}

/* Copies a BLOB of exactly len bytes. */
static int get_blob(loader *l, sqlite3_stmt *st, int i, void *out, size_t len,
                    const char *col) {
  const void *p;

  if (sqlite3_column_type(st, i) != SQLITE_BLOB ||
      (size_t)sqlite3_column_bytes(st, i) != len ||
      (p = sqlite3_column_blob(st, i)) == NULL)
    return bad(l, col);
  memcpy(out, p, len);
  return 0;
}

/* Copies a TEXT of fewer than cap bytes (no NUL inside) and its NUL. */
static int get_text(loader *l, sqlite3_stmt *st, int i, char *out, size_t cap,
                    const char *col) {
  const unsigned char *p;
  size_t len;

  if (sqlite3_column_type(st, i) != SQLITE_TEXT ||
      (p = sqlite3_column_text(st, i)) == NULL ||
      (len = (size_t)sqlite3_column_bytes(st, i)) >= cap ||
      strlen((const char *)p) != len)
    return bad(l, col);
  memcpy(out, p, len + 1);
  return 0;
}

static int get_int(loader *l, sqlite3_stmt *st, int i, int64_t lo, int64_t hi,
                   int64_t *out, const char *col) {
  if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
    return bad(l, col);
  *out = sqlite3_column_int64(st, i);
  return *out >= lo && *out <= hi ? 0 : bad(l, col);
}

/* Runs sql (its column 0 is n) to its end, calling each(l, st) per row. */
typedef int (*row_fn)(loader *l, sqlite3_stmt *st);

static int walk(loader *l, const char *table, const char *sql, row_fn each) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(l->h, sql, -1, &st, NULL), step = SQLITE_DONE;

  l->table = table;
  if (rc != SQLITE_OK)
    return sql_fail(l->h, rc, l->why, "prepare load");
  rc = 0;
  while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
    l->n = sqlite3_column_int64(st, 0);
    rc = each(l, st);
  }
  if (rc == 0 && step != SQLITE_DONE)
    rc = sql_fail(l->h, step, l->why, "load");
  sqlite3_finalize(st);
  return rc;
}

static int each_agent(loader *l, sqlite3_stmt *st) {
  gv_rrow row;
  gv_ragent_row *a = &row.u.agent;
  int rc;

  memset(&row, 0, sizeof(row));
  row.type = GV_RROW_AGENT;
  if ((rc = get_blob(l, st, 1, a->team_id, GV_RW_KEY_BYTES, "team_id")) < 0 ||
      (rc = get_text(l, st, 2, a->agent.project, sizeof(a->agent.project),
                     "project")) < 0 ||
      (rc = get_text(l, st, 3, a->agent.name, sizeof(a->agent.name), "name")) <
          0)
    return rc;
  l->cb(l->ctx, &row);
  return 0;
}

static int each_member(loader *l, sqlite3_stmt *st) {
  gv_rrow row;
  int rc;

  memset(&row, 0, sizeof(row));
  row.type = GV_RROW_MEMBER;
  if ((rc = get_blob(l, st, 1, row.u.member.team_id, GV_RW_KEY_BYTES,
                     "team_id")) < 0 ||
      (rc = get_blob(l, st, 2, row.u.member.node, GV_ID_BYTES, "node")) < 0)
    return rc;
  l->cb(l->ctx, &row);
  return 0;
}

static int each_cursor(loader *l, sqlite3_stmt *st) {
  gv_rrow row;
  gv_rcursor_row *c = &row.u.cursor;
  int64_t seq;
  int rc;

  memset(&row, 0, sizeof(row));
  row.type = GV_RROW_CURSOR;
  if ((rc = get_text(l, st, 1, c->to, sizeof(c->to), "to_agent")) < 0 ||
      (rc = get_blob(l, st, 2, c->src, GV_ID_BYTES, "src")) < 0 ||
      (rc = get_text(l, st, 3, c->from, sizeof(c->from), "from_agent")) < 0 ||
      (rc = get_int(l, st, 4, INT64_MIN, INT64_MAX, &seq, "seq")) < 0)
    return rc;
  c->seq = (uint64_t)seq;
  l->cb(l->ctx, &row);
  return 0;
}

/* A message's trace: STATE rows for the message in msg (its id and
 * direction), oldest first. */
static int emit_trace(loader *l, int64_t msg_n, const gv_rmsg_row *msg) {
  sqlite3_stmt *tr = l->trace;
  const char *table = l->table;
  int64_t msg_row = l->n;
  int rc = 0, step;

  l->table = "trace";
  sqlite3_bind_int64(tr, 1, msg_n);
  while (rc == 0 && (step = sqlite3_step(tr)) == SQLITE_ROW) {
    gv_rrow row;
    gv_rstate_row *s = &row.u.state;
    int64_t state, reason;

    memset(&row, 0, sizeof(row));
    row.type = GV_RROW_STATE;
    l->n = sqlite3_column_int64(tr, 0);
    s->key = msg->key;
    memcpy(s->id, msg->id, GV_RW_ID_BYTES);
    s->inbound = msg->inbound;
    if ((rc = get_int(l, tr, 1, 0, GV_RSTATE_FAILED, &state, "state")) < 0 ||
        (rc = get_int(l, tr, 2, 0, GV_RFAIL_NOT_IN_TEAM, &reason, "reason")) <
            0 ||
        (rc = get_int(l, tr, 3, INT64_MIN, INT64_MAX, &s->at_ms, "at_ms")) < 0)
      break;
    s->state = (gv_rstate)state;
    s->reason = (gv_rfail)reason;
    if (sqlite3_column_type(tr, 4) != SQLITE_NULL) {
      if ((rc = get_blob(l, tr, 4, s->hop, GV_ID_BYTES, "hop")) < 0)
        break;
      s->has_hop = true;
    }
    l->cb(l->ctx, &row);
  }
  if (rc == 0 && step != SQLITE_DONE)
    rc = sql_fail(l->h, step, l->why, "load trace");
  sqlite3_reset(tr);
  l->table = table;
  l->n = msg_row;
  return rc;
}

/* A MSG row, then its trace. */
static int each_msg(loader *l, sqlite3_stmt *st) {
  gv_rrow row;
  gv_rmsg_row *m = &row.u.msg;
  int64_t inbound, seq, state, reason;
  int rc;

  memset(&row, 0, sizeof(row));
  row.type = GV_RROW_MSG;
  if ((rc = get_blob(l, st, 1, m->id, GV_RW_ID_BYTES, "id")) < 0 ||
      (rc = get_int(l, st, 2, 0, 1, &inbound, "inbound")) < 0 ||
      (rc = get_blob(l, st, 3, m->team_id, GV_RW_KEY_BYTES, "team_id")) < 0 ||
      (rc = get_blob(l, st, 4, m->src, GV_ID_BYTES, "src")) < 0 ||
      (rc = get_blob(l, st, 5, m->dst, GV_ID_BYTES, "dst")) < 0 ||
      (rc = get_text(l, st, 6, m->from, sizeof(m->from), "from_agent")) < 0 ||
      (rc = get_text(l, st, 7, m->to, sizeof(m->to), "to_agent")) < 0 ||
      (rc = get_text(l, st, 8, m->thread, sizeof(m->thread), "thread")) < 0 ||
      (rc = get_int(l, st, 9, INT64_MIN, INT64_MAX, &seq, "seq")) < 0 ||
      (rc = get_int(l, st, 10, INT64_MIN, INT64_MAX, &m->created_ms,
                    "created_ms")) < 0 ||
      (rc = get_int(l, st, 11, INT64_MIN, INT64_MAX, &m->deadline_ms,
                    "deadline_ms")) < 0 ||
      (rc = get_int(l, st, 12, 0, GV_RSTATE_FAILED, &state, "state")) < 0 ||
      (rc = get_int(l, st, 13, 0, GV_RFAIL_NOT_IN_TEAM, &reason, "reason")) < 0)
    return rc;
  m->key = (uint64_t)l->n;
  m->inbound = inbound != 0;
  m->seq = (uint64_t)seq;
  m->state = (gv_rstate)state;
  m->reason = (gv_rfail)reason;
  switch (sqlite3_column_type(st, 14)) {
  case SQLITE_NULL: break;
  case SQLITE_BLOB:
    m->body_len = (size_t)sqlite3_column_bytes(st, 14);
    m->body = sqlite3_column_blob(st, 14); /* NULL when empty */
    if (m->body_len > GV_RSTORE_BODY_MAX || (m->body == NULL && m->body_len))
      return bad(l, "body");
    break;
  default: return bad(l, "body");
  }
  l->cb(l->ctx, &row);
  return emit_trace(l, l->n, m);
}

int gv_rstore_load(gv_rstore *s, void (*cb)(void *ctx, const gv_rrow *row),
                   void *ctx, gv_why *why) {
  gv_why inner = {{0}};
  loader l = {NULL, cb, ctx, NULL, "", 0, &inner};
  int rc;

  if (s == NULL || cb == NULL)
    return gv_fail(why, GV_EINVAL, "no relay store or no callback");
  if ((l.h = gv_db_lock(s->db)) == NULL)
    return gv_fail(why, GV_ESTATE, "%s: relay store closing", s->path);
  /* Rows a day past their deadline go first: the core would drop them at
   * its first sweep, and a message forgotten from memory long ago has no
   * other way out (docs/RELAY.md §5.8). */
  if ((rc = sqlite3_exec(l.h, SQL_PRUNE, NULL, NULL, NULL)) != SQLITE_OK) {
    rc = sql_fail(l.h, rc, &inner, "prune");
    sqlite3_exec(l.h, "ROLLBACK", NULL, NULL, NULL);
    goto out;
  }
  if ((rc = sqlite3_prepare_v2(l.h,
                               "SELECT n, state, reason, at_ms, hop FROM trace"
                               " WHERE msg = ?1 ORDER BY n",
                               -1, &l.trace, NULL)) != SQLITE_OK) {
    rc = sql_fail(l.h, rc, &inner, "prepare load");
    goto out;
  }
  if ((rc = walk(&l, "agents",
                 "SELECT n, team_id, project, name FROM agents ORDER BY n",
                 each_agent)) < 0 ||
      (rc = walk(&l, "members",
                 "SELECT n, team_id, node FROM members ORDER BY n",
                 each_member)) < 0 ||
      (rc = walk(&l, "msgs",
                 "SELECT n, id, inbound, team_id, src, dst, from_agent,"
                 " to_agent, thread, seq, created_ms, deadline_ms, state,"
                 " reason, (SELECT body FROM bodies WHERE msg = msgs.n)"
                 " FROM msgs ORDER BY n",
                 each_msg)) < 0)
    goto out;
  rc = walk(&l, "cursors",
            "SELECT n, to_agent, src, from_agent, seq FROM cursors ORDER BY n",
            each_cursor);
out:
  sqlite3_finalize(l.trace);
  gv_db_unlock(s->db);
  if (rc < 0)
    gv_fail(why, rc, "%s: %s", s->path, inner.text);
  return rc;
}

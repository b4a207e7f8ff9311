/* The durable-commit layer (node/db.h): callbacks after COMMIT and in
 * order, group commit, the queue's bound, failing jobs, close, and
 * acknowledged writes surviving kill -9. Real files in a temp dir. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "testutil.h"

#define INSERT "INSERT INTO t (k, v) VALUES (?1, ?2)"

static char dir[] = "/tmp/gv-check-db-XXXXXX";
static char path[256];
static uv_loop_t loop;

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/t.db", dir);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char file[300];

  ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle freed */
  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
    unlink(file);
  }
  ck_assert_int_eq(rmdir(dir), 0);
  strcpy(dir, "/tmp/gv-check-db-XXXXXX");
}

/* init: a table whose v must be non-negative. */
static int make_table(void *ctx, sqlite3 *h, gv_why *why) {
  (void)ctx;
  if (sqlite3_exec(h,
                   "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY,"
                   " v BLOB NOT NULL CHECK (length(v) > 0))",
                   NULL, NULL, NULL) != SQLITE_OK)
    return gv_fail(why, -EIO, "%s", sqlite3_errmsg(h));
  return 0;
}

static gv_db *open_db(uv_loop_t *lp, size_t queue_max, size_t queue_bytes) {
  gv_db_opts opts = {queue_max, queue_bytes, make_table, NULL};
  gv_why why = {{0}};
  gv_db *db;
  int rc = gv_db_open(&db, lp, path, &opts, &why);

  ck_assert_msg(rc == 0, "open: %d %s", rc, why.text);
  return db;
}

/* Closes and lets the loop free the handle. */
static void close_db(gv_db *db) {
  gv_db_close(db);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}

/* ---- a second, raw connection ---- */

static int64_t raw_int(const char *sql) {
  sqlite3 *h;
  sqlite3_stmt *st;
  int64_t v;

  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

static int64_t count_key(int64_t k) {
  char sql[96];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM t WHERE k = %lld",
           (long long)k);
  return raw_int(sql);
}

/* ---- callbacks ---- */

typedef struct rec {
  int calls;
  int status[1000];
  int order[1000]; /* key of the n-th callback */
  int visible;     /* rows another connection saw during the callback */
  gv_db *resubmit; /* submit again from the callback, store the result */
  int resubmit_rc;
} rec;

typedef struct ticket {
  rec *r;
  int key;
} ticket;

static void on_done(void *ctx, int status) {
  ticket *t = ctx;
  rec *r = t->r;

  ck_assert_int_lt(r->calls, 1000);
  r->status[r->calls] = status;
  r->order[r->calls] = t->key;
  r->calls++;
}

static int insert(gv_db *db, ticket *t, int key, const void *v, size_t len,
                  rec *r) {
  gv_db_val vals[2] = {GV_DB_INT(key), GV_DB_BLOB(v, len)};
  gv_db_stmt st = {INSERT, vals, 2};

  t->r = r;
  t->key = key;
  return gv_db_exec(db, &st, 1, on_done, t);
}

/* Looks at the file from another connection while being called back. */
static void on_done_look(void *ctx, int status) {
  ticket *t = ctx;
  on_done(ctx, status);
  t->r->visible = (int)count_key(t->key);
}

/* ---- tests ---- */

START_TEST(test_commit_then_callback) {
  gv_db *db = open_db(&loop, 0, 0);
  gv_db_val vals[2] = {GV_DB_INT(7), GV_DB_TEXT("seven", 5)};
  gv_db_stmt st = {INSERT, vals, 2};
  gv_db_stats stats;
  rec r = {0};
  ticket t = {&r, 7};
  char sql[sizeof(INSERT)];

  /* The statement and values are copied: the caller's buffer may change. */
  memcpy(sql, INSERT, sizeof(sql));
  st.sql = sql;
  ck_assert_int_eq(gv_db_exec(db, &st, 1, on_done_look, &t), 0);
  memset(sql, 'x', sizeof(sql) - 1);
  ck_assert_int_eq(r.calls, 0); /* never from inside the submitting call */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status[0], 0);
  ck_assert_int_eq(r.visible, 1); /* committed before the callback */
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t WHERE v = 'seven'"), 1);
  gv_db_get_stats(db, &stats);
  ck_assert_uint_eq(stats.commits, 1);
  ck_assert_uint_eq(stats.jobs, 1);
  ck_assert_uint_eq(stats.failed, 0);
  ck_assert_uint_eq(stats.queued, 0);
  ck_assert_int_eq(raw_int("SELECT journal_mode = 'wal' FROM"
                           " pragma_journal_mode"),
                   1);
  close_db(db);
}
END_TEST

/* Held in gv_db_lock, the writer waits: every job submitted meanwhile goes
 * into one transaction, and the callbacks come in submission order. */
START_TEST(test_group_commit_and_order) {
  gv_db *db = open_db(&loop, 0, 0);
  static ticket t[500];
  gv_db_stats stats;
  rec r = {0};

  ck_assert_ptr_nonnull(gv_db_lock(db));
  for (int i = 0; i < 500; i++)
    ck_assert_int_eq(insert(db, &t[i], i, "v", 1, &r), 0);
  gv_db_get_stats(db, &stats);
  ck_assert_uint_eq(stats.queued, 500);
  ck_assert_uint_eq(stats.jobs, 0);
  gv_db_unlock(db);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 500);
  for (int i = 0; i < 500; i++) {
    ck_assert_int_eq(r.order[i], i);
    ck_assert_int_eq(r.status[i], 0);
  }
  gv_db_get_stats(db, &stats);
  ck_assert_uint_eq(stats.commits, 1);
  ck_assert_uint_eq(stats.jobs, 500);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t"), 500);

  /* Without the lock: still in order, in at most as many commits. */
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(insert(db, &t[i], 1000 + i, "v", 1, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 800);
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(r.order[500 + i], 1000 + i);
  gv_db_get_stats(db, &stats);
  ck_assert_uint_le(stats.commits, 301);
  close_db(db);
}
END_TEST

START_TEST(test_busy_at_cap) {
  gv_db *db = open_db(&loop, 8, 4096);
  static char big[5000];
  ticket t[10];
  rec r = {0};

  memset(big, 'b', sizeof(big));
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(insert(db, &t[i], i, "v", 1, &r), 0);
  /* Outstanding until called back, even once committed. */
  ck_assert_int_eq(insert(db, &t[8], 8, "v", 1, &r), GV_EBUSY);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 8); /* never for the refused one */
  ck_assert_int_eq(count_key(8), 0);
  ck_assert_int_eq(insert(db, &t[8], 8, "v", 1, &r), 0);

  /* The byte bound: one job above it is too big; two that fit one at a
   * time do not fit together. */
  ck_assert_int_eq(insert(db, &t[9], 9, big, sizeof(big), &r), GV_ETOOBIG);
  ck_assert_int_eq(insert(db, &t[9], 9, big, 2500, &r), 0);
  ck_assert_int_eq(insert(db, &t[7], 10, big, 2500, &r), GV_EBUSY);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 10);
  ck_assert_int_eq(insert(db, &t[7], 10, big, 2500, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 11);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t"), 11);
  close_db(db);
}
END_TEST

/* A job function: inserts its key, then fails on purpose. */
static int insert_then_fail(void *arg, sqlite3 *h, gv_why *why) {
  char sql[64];
  snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, 'x')", *(int *)arg);
  if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
    return gv_fail(why, -EIO, "%s", sqlite3_errmsg(h));
  return gv_fail(why, GV_ESTATE, "changed my mind");
}

START_TEST(test_failing_jobs_alone) {
  gv_db *db = open_db(&loop, 0, 0);
  ticket t[6];
  rec r = {0};
  int k = 40;
  gv_db_val v1[2] = {GV_DB_INT(50), GV_DB_TEXT("a", 1)};
  gv_db_val v2[2] = {GV_DB_INT(51), GV_DB_TEXT("", 0)}; /* CHECK fails */
  gv_db_stmt two[2] = {{INSERT, v1, 2}, {INSERT, v2, 2}};
  gv_db_stats stats;

  ck_assert_ptr_nonnull(gv_db_lock(db)); /* all in one group */
  ck_assert_int_eq(insert(db, &t[0], 1, "a", 1, &r), 0);
  ck_assert_int_eq(insert(db, &t[1], 1, "b", 1, &r), 0); /* duplicate key */
  ck_assert_int_eq(insert(db, &t[2], 2, "", 0, &r), 0);  /* CHECK */
  t[3].r = &r;
  t[3].key = 40;
  ck_assert_int_eq(gv_db_submit(db, insert_then_fail, &k, on_done, &t[3]), 0);
  t[4].r = &r;
  t[4].key = 50;
  ck_assert_int_eq(gv_db_exec(db, two, 2, on_done, &t[4]), 0); /* atomic */
  ck_assert_int_eq(insert(db, &t[5], 3, "c", 1, &r), 0);
  gv_db_unlock(db);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(r.calls, 6);
  ck_assert_int_eq(r.status[0], 0);
  ck_assert_int_eq(r.status[1], GV_EINVAL);
  ck_assert_int_eq(r.status[2], GV_EINVAL);
  ck_assert_int_eq(r.status[3], GV_ESTATE);
  ck_assert_int_eq(r.status[4], GV_EINVAL);
  ck_assert_int_eq(r.status[5], 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t"), 2); /* keys 1 and 3 */
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t WHERE k = 1 AND v = x'61'"),
                   1);
  ck_assert_int_eq(count_key(3), 1);
  ck_assert_int_eq(count_key(40), 0); /* the failed job's insert undone */
  ck_assert_int_eq(count_key(50), 0); /* one statement of two failed */
  gv_db_get_stats(db, &stats);
  ck_assert_uint_eq(stats.failed, 4);
  ck_assert_uint_eq(stats.commits, 1);

  /* And it keeps working. */
  ck_assert_int_eq(insert(db, &t[0], 4, "d", 1, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.status[6], 0);
  ck_assert_int_eq(count_key(4), 1);
  close_db(db);
}
END_TEST

/* A statement SQLite cannot prepare fails its job; bad arguments are
 * refused at submission (and never called back); the layer works after. */
START_TEST(test_bad_sql_and_arguments) {
  gv_db *db = open_db(&loop, 0, 0);
  gv_db_stmt bad = {"INSERT INTO nope VALUES (1)", NULL, 0};
  gv_db_val null_blob = {GV_DB_T_BLOB, 0, NULL, 3};
  gv_db_stmt bad_val = {INSERT, &null_blob, 1};
  ticket t[3];
  rec r = {0};

  t[0].r = &r;
  t[0].key = 0;
  ck_assert_int_eq(gv_db_exec(db, &bad, 1, on_done, &t[0]), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_lt(r.status[0], 0);

  ck_assert_int_eq(gv_db_exec(db, NULL, 1, on_done, &t[0]), GV_EINVAL);
  ck_assert_int_eq(gv_db_exec(db, &bad, 0, on_done, &t[0]), GV_EINVAL);
  ck_assert_int_eq(gv_db_exec(db, &bad_val, 1, on_done, &t[0]), GV_EINVAL);
  ck_assert_int_eq(gv_db_submit(db, NULL, NULL, on_done, &t[0]), GV_EINVAL);
  ck_assert_int_eq(insert(db, &t[1], 1, "a", 1, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.calls, 2);
  ck_assert_int_eq(r.status[1], 0);
  close_db(db);
}
END_TEST

/* Another connection holds the write lock past the busy timeout: BEGIN
 * fails, every job of the group gets -EBUSY, and after the other lets go
 * the layer commits again. */
START_TEST(test_locked_elsewhere) {
  gv_db *db = open_db(&loop, 0, 0);
  sqlite3 *other;
  ticket t[2];
  rec r = {0};

  ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(insert(db, &t[0], 1, "a", 1, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0); /* ~5 s busy wait */
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status[0], -EBUSY);
  ck_assert_int_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  ck_assert_int_eq(insert(db, &t[1], 1, "a", 1, &r), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(r.status[1], 0);
  ck_assert_int_eq(count_key(1), 1);
  close_db(db);
}
END_TEST

static void on_done_resubmit(void *ctx, int status) {
  ticket *t = ctx;
  static ticket again;
  on_done(ctx, status);
  t->r->resubmit_rc = insert(t->r->resubmit, &again, 999, "z", 1, t->r);
}

START_TEST(test_close_flushes) {
  gv_db *db = open_db(&loop, 0, 0);
  static ticket t[200];
  rec r = {0};

  for (int i = 0; i < 200; i++)
    ck_assert_int_eq(insert(db, &t[i], i, "v", 1, &r), 0);
  r.resubmit = db;
  t[199].r = &r;
  ck_assert_int_eq(
      gv_db_exec(
          db,
          &(gv_db_stmt){INSERT,
                        (gv_db_val[]){GV_DB_INT(500), GV_DB_TEXT("w", 1)}, 2},
          1, on_done_resubmit, &t[199]),
      0);
  gv_db_close(db); /* the loop never ran */
  ck_assert_int_eq(r.calls, 201);
  for (int i = 0; i < 201; i++)
    ck_assert_int_eq(r.status[i], 0);
  ck_assert_int_eq(r.resubmit_rc, GV_ESTATE);         /* closing: refused */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0); /* frees the handle */
  ck_assert_int_eq(raw_int("SELECT count(*) FROM t"), 201);
  ck_assert_int_eq(count_key(999), 0);
  gv_db_close(NULL);
}
END_TEST

static int insert_key(void *arg, sqlite3 *h, gv_why *why) {
  char sql[64];
  snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, 'x')", *(int *)arg);
  if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
    return gv_fail(why, -EIO, "%s", sqlite3_errmsg(h));
  return 0;
}

static int call_from_writer(void *arg, sqlite3 *h, gv_why *why) {
  gv_db *db = arg;
  int k = 77;
  (void)h;
  ck_assert_ptr_null(gv_db_lock(db));
  return gv_db_call(db, insert_key, &k, why);
}

START_TEST(test_call_and_lock) {
  gv_db *db = open_db(NULL, 0, 0); /* synchronous use only */
  gv_why why = {{0}};
  sqlite3 *h;
  int k = 5;

  ck_assert_int_eq(gv_db_call(db, insert_key, &k, &why), 0);
  ck_assert_int_eq(count_key(5), 1); /* committed when it returned */
  ck_assert_int_eq(gv_db_call(db, insert_key, &k, &why), -EIO); /* its own */
  ck_assert_ptr_nonnull(strstr(why.text, "UNIQUE"));
  k = 6;
  ck_assert_int_eq(gv_db_call(db, insert_then_fail, &k, &why), GV_ESTATE);
  ck_assert_str_eq(why.text, "changed my mind");
  ck_assert_int_eq(count_key(6), 0); /* rolled back */
  ck_assert_int_eq(gv_db_call(db, call_from_writer, db, &why), GV_ESTATE);
  ck_assert_int_eq(count_key(77), 0);
  ck_assert_int_eq(gv_db_submit(db, insert_key, &k, NULL, NULL), GV_EINVAL);

  h = gv_db_lock(db);
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(gv_db_call(db, insert_key, &k, &why), GV_ESTATE);
  ck_assert_ptr_null(gv_db_lock(db));
  ck_assert_int_eq(sqlite3_exec(h, "SELECT * FROM t", NULL, NULL, NULL),
                   SQLITE_OK);
  gv_db_unlock(db);
  gv_db_close(db); /* no loop: freed at once */
}
END_TEST

START_TEST(test_open_refusals) {
  gv_db *db = (gv_db *)1;
  gv_why why = {{0}};
  char sub[300];

  snprintf(sub, sizeof(sub), "%s/missing/t.db", dir);
  ck_assert_int_lt(gv_db_open(&db, &loop, sub, NULL, &why), 0);
  ck_assert_ptr_null(db);
  ck_assert_ptr_nonnull(strstr(why.text, sub));
  ck_assert_int_eq(gv_db_open(&db, &loop, NULL, NULL, &why), GV_EINVAL);
  /* An init that refuses: nothing is started, the file is not WAL. */
  {
    gv_db_opts opts = {0, 0, insert_then_fail, NULL};
    int k = 1;
    opts.init_ctx = &k;
    ck_assert_int_lt(gv_db_open(&db, &loop, path, &opts, &why), 0);
    ck_assert_ptr_null(db);
  }
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}
END_TEST

/* ---- kill -9 ---- */

#define KILL_TOTAL 200000
#define KILL_WINDOW 64 /* writes in flight in the child */

typedef struct child {
  gv_db *db;
  int fd, next;
  char row[1024];
} child;

static void child_submit(child *c);

/* Each write carries its own ticket so the acknowledgement names its key. */
typedef struct kticket {
  child *c;
  int key;
} kticket;

static void kill_done(void *ctx, int status) {
  kticket *t = ctx;
  char line[32];
  int n;

  if (status != 0)
    _exit(4);
  n = snprintf(line, sizeof(line), "%d\n", t->key);
  if (write(t->c->fd, line, (size_t)n) != n)
    _exit(5);
  child_submit(t->c);
  free(t);
}

static void child_submit(child *c) {
  kticket *t;
  gv_db_val vals[2];
  gv_db_stmt st = {INSERT, vals, 2};

  if (c->next >= KILL_TOTAL)
    return;
  if ((t = malloc(sizeof(*t))) == NULL)
    _exit(3);
  t->c = c;
  t->key = c->next++;
  memset(c->row, 'a' + t->key % 26, sizeof(c->row));
  vals[0] = GV_DB_INT(t->key);
  vals[1] = GV_DB_BLOB(c->row, sizeof(c->row));
  if (gv_db_exec(c->db, &st, 1, kill_done, t) < 0)
    _exit(3);
}

static void child_run(int fd) {
  static child c;
  uv_loop_t lp;

  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
    _exit(6); /* never outlive a failed test */
  if (uv_loop_init(&lp) < 0)
    _exit(2);
  c.db = open_db(&lp, 0, 0);
  c.fd = fd;
  for (int i = 0; i < KILL_WINDOW; i++)
    child_submit(&c);
  uv_run(&lp, UV_RUN_DEFAULT);
  _exit(7); /* never reached before the kill */
}

/* Reads acknowledged keys from fd into acked; returns how many lines
 * arrived. Stops at want (if > 0) or at EOF; every read is bounded by a
 * 10 s poll. */
static int read_acks(int fd, unsigned char *acked, int want, char *part,
                     size_t *plen) {
  char buf[4096];
  int lines = 0;

  while (want <= 0 || lines < want) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    if ((n = read(fd, buf, sizeof(buf))) <= 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        ck_assert_uint_lt(*plen, 15);
        part[(*plen)++] = buf[i];
        continue;
      }
      part[*plen] = '\0';
      int key = atoi(part);
      ck_assert(key >= 0 && key < KILL_TOTAL);
      acked[key] = 1;
      *plen = 0;
      lines++;
    }
  }
  return lines;
}

START_TEST(test_kill9_keeps_acknowledged) {
  static unsigned char acked[KILL_TOTAL];
  char part[16];
  size_t plen = 0;
  int fds[2], status, got, missing = 0, total = 0;
  pid_t pid;
  sqlite3 *h;
  sqlite3_stmt *st;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_run(fds[1]);
  }
  close(fds[1]);
  got = read_acks(fds[0], acked, 2000, part, &plen);
  ck_assert_int_ge(got, 2000); /* the child is alive and writing */
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  read_acks(fds[0], acked, 0, part, &plen); /* acks written before death */
  close(fds[0]);

  /* Every acknowledged row is in the file, whole. */
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(h,
                                      "SELECT count(*) FROM t WHERE k = ?1"
                                      " AND length(v) = 1024",
                                      -1, &st, NULL),
                   SQLITE_OK);
  for (int k = 0; k < KILL_TOTAL; k++) {
    if (!acked[k])
      continue;
    total++;
    sqlite3_bind_int(st, 1, k);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    missing += sqlite3_column_int(st, 0) != 1;
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  ck_assert_int_ge(total, 2000);
  ck_assert_msg(missing == 0, "%d of %d acknowledged rows lost", missing,
                total);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM pragma_integrity_check"
                           " WHERE integrity_check != 'ok'"),
                   0);
}
END_TEST

static Suite *db_suite(void) {
  Suite *s = suite_create("db");
  TCase *tc = tcase_create("db");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_commit_then_callback);
  tcase_add_test(tc, test_group_commit_and_order);
  tcase_add_test(tc, test_busy_at_cap);
  tcase_add_test(tc, test_failing_jobs_alone);
  tcase_add_test(tc, test_bad_sql_and_arguments);
  tcase_add_test(tc, test_locked_elsewhere);
  tcase_add_test(tc, test_close_flushes);
  tcase_add_test(tc, test_call_and_lock);
  tcase_add_test(tc, test_open_refusals);
  tcase_add_test(tc, test_kill9_keeps_acknowledged);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(db_suite()); }

/* The node's durable store (node/store.h): real files in a temp dir,
 * durability across kill -9, refusal of foreign files, the queue's bounds. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

/* Mirrors store.c: the queue's bounds. */
#define QUEUE_MAX 65536
#define QUEUE_BYTES (32u * 1024 * 1024)

static char dir[] = "/tmp/gv-check-store-XXXXXX";
static char path[256];

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/node.db", dir);
}

static void teardown(void) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char file[300];

  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
    unlink(file);
  }
  ck_assert_int_eq(rmdir(dir), 0);
  strcpy(dir, "/tmp/gv-check-store-XXXXXX");
}

/* ---- a deterministic peer n ---- */

typedef struct peer {
  uint8_t id[GV_ID_BYTES];
  char body[96];
  size_t body_len;
  uint8_t sig[64];
  int64_t last_seen;
} peer;

static void make_peer(peer *p, uint32_t n, uint32_t version) {
  memset(p->id, 0, sizeof(p->id));
  memcpy(p->id, &n, sizeof(n));
  p->id[31] = 0xa5;
  p->body_len = (size_t)snprintf(p->body, sizeof(p->body),
                                 "{\"peer\":%u,\"version\":%u}", n, version);
  for (int i = 0; i < 64; i++)
    p->sig[i] = (uint8_t)(n * 7 + version * 13 + (uint32_t)i);
  p->last_seen = T0_MS + n * 1000LL + version;
}

static void put(gv_store *s, const peer *p) {
  ck_assert_int_eq(
      gv_store_put_peer(s, p->id, p->body, p->body_len, p->sig, p->last_seen),
      0);
}

static gv_store *open_ok(void) {
  gv_store *s;
  gv_why why = {{0}};
  int rc = gv_store_open(&s, path, &why);
  ck_assert_msg(rc == 0, "open: %d %s", rc, why.text);
  return s;
}

/* ---- a loader that checks rows against their expected peers ---- */

typedef struct seen {
  size_t rows;
  size_t n;             /* peers 0..n-1 are tracked below */
  uint32_t *version;    /* expected version of peer i; 0: must be absent */
  unsigned char *found; /* peer i was loaded */
  int stop_after;       /* > 0: return 7 after this many rows */
} seen;

static int check_row(void *ctx, const uint8_t id[GV_ID_BYTES], const char *body,
                     size_t body_len, const uint8_t sig[64],
                     int64_t last_seen) {
  seen *sn = ctx;
  uint32_t n;
  peer p;

  memcpy(&n, id, sizeof(n));
  sn->rows++;
  if (sn->n != 0) {
    ck_assert_uint_lt(n, sn->n);
    ck_assert_msg(sn->version[n] != 0, "peer %u should be absent", n);
    ck_assert_msg(!sn->found[n], "peer %u loaded twice", n);
    sn->found[n] = 1;
    make_peer(&p, n, sn->version[n]);
    ck_assert_mem_eq(id, p.id, GV_ID_BYTES);
    ck_assert_uint_eq(body_len, p.body_len);
    ck_assert_mem_eq(body, p.body, body_len);
    ck_assert_int_eq(body[body_len], '\0');
    ck_assert_mem_eq(sig, p.sig, 64);
    ck_assert_int_eq(last_seen, p.last_seen);
  }
  return sn->stop_after > 0 && (int)sn->rows == sn->stop_after ? 7 : 0;
}

static void seen_init(seen *sn, size_t n) {
  memset(sn, 0, sizeof(*sn));
  sn->n = n;
  sn->version = calloc(n ? n : 1, sizeof(*sn->version));
  sn->found = calloc(n ? n : 1, 1);
  ck_assert_ptr_nonnull(sn->version);
  ck_assert_ptr_nonnull(sn->found);
}

/* Loads everything and checks that exactly the expected peers came. */
static void seen_check(seen *sn, gv_store *s) {
  size_t want = 0;

  ck_assert_int_eq(gv_store_load_peers(s, check_row, sn), 0);
  for (size_t i = 0; i < sn->n; i++) {
    ck_assert_msg(sn->found[i] == (sn->version[i] != 0),
                  "peer %zu: found %d, expected version %u", i, sn->found[i],
                  sn->version[i]);
    want += sn->version[i] != 0;
  }
  ck_assert_uint_eq(sn->rows, want);
  free(sn->version);
  free(sn->found);
}

static size_t count_rows(gv_store *s) {
  seen sn;
  memset(&sn, 0, sizeof(sn));
  ck_assert_int_eq(gv_store_load_peers(s, check_row, &sn), 0);
  return sn.rows;
}

/* ---- a second, raw connection to the same file ---- */

static sqlite3 *raw_open(void) {
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  int64_t v;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void raw_integrity_ok(void) {
  sqlite3 *db = raw_open();
  sqlite3_stmt *st;
  ck_assert_int_eq(
      sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
      SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* ---- tests ---- */

START_TEST(test_roundtrip) {
  gv_store *s = open_ok();
  sqlite3 *db;
  seen sn;
  peer p;

  for (uint32_t i = 0; i < 5; i++) {
    make_peer(&p, i, 1);
    put(s, &p);
  }
  ck_assert_uint_eq(gv_store_pending(s), 5);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0);
  ck_assert_uint_eq(gv_store_pending(s), 0);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0); /* nothing queued */
  gv_store_close(s);

  s = open_ok();
  seen_init(&sn, 5);
  for (uint32_t i = 0; i < 5; i++)
    sn.version[i] = 1;
  seen_check(&sn, s);
  gv_store_close(s);

  /* The file is what the header says. */
  db = raw_open();
  ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 1);
  ck_assert_int_eq(raw_int(db, "PRAGMA application_id"), 0x4756534e);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 5);
  sqlite3_close(db);
  raw_integrity_ok();
}
END_TEST

START_TEST(test_wal_and_visibility) {
  gv_store *s = open_ok();
  sqlite3 *db = raw_open();
  sqlite3_stmt *st;
  peer p;

  ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);

  /* Queued changes are invisible to others until flushed. */
  make_peer(&p, 1, 1);
  put(s, &p);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 0);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 1);
  sqlite3_close(db);
  gv_store_close(s);
}
END_TEST

START_TEST(test_replace_semantics) {
  gv_store *s = open_ok();
  peer p;
  seen sn;

  /* put, put newer: one queued change, one row with the newest. */
  make_peer(&p, 0, 1);
  put(s, &p);
  make_peer(&p, 0, 2);
  put(s, &p);
  ck_assert_uint_eq(gv_store_pending(s), 1);

  /* put then del: absent. */
  make_peer(&p, 1, 1);
  put(s, &p);
  ck_assert_int_eq(gv_store_del_peer(s, p.id), 0);
  ck_assert_uint_eq(gv_store_pending(s), 2);

  /* del then put: present. */
  make_peer(&p, 2, 3);
  ck_assert_int_eq(gv_store_del_peer(s, p.id), 0);
  put(s, &p);
  ck_assert_uint_eq(gv_store_pending(s), 3);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0);

  seen_init(&sn, 3);
  sn.version[0] = 2;
  sn.version[2] = 3;
  seen_check(&sn, s);

  /* Against committed rows: replace, delete, put after delete. */
  make_peer(&p, 0, 4);
  put(s, &p);
  make_peer(&p, 2, 3);
  ck_assert_int_eq(gv_store_del_peer(s, p.id), 0);
  make_peer(&p, 1, 5);
  ck_assert_int_eq(gv_store_del_peer(s, p.id), 0);
  put(s, &p);
  ck_assert_uint_eq(gv_store_pending(s), 3);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0);
  gv_store_close(s);

  s = open_ok();
  seen_init(&sn, 3);
  sn.version[0] = 4;
  sn.version[1] = 5;
  seen_check(&sn, s);
  gv_store_close(s);
}
END_TEST

START_TEST(test_close_flushes) {
  gv_store *s = open_ok();
  peer p;
  seen sn;

  for (uint32_t i = 0; i < 10; i++) {
    make_peer(&p, i, 1);
    put(s, &p);
    ck_assert_uint_eq(gv_store_pending(s), i + 1);
  }
  make_peer(&p, 3, 1);
  ck_assert_int_eq(gv_store_del_peer(s, p.id), 0);
  ck_assert_uint_eq(gv_store_pending(s), 10);
  gv_store_close(s); /* no flush: close does it */
  gv_store_close(NULL);

  s = open_ok();
  ck_assert_uint_eq(gv_store_pending(s), 0);
  seen_init(&sn, 10);
  for (uint32_t i = 0; i < 10; i++)
    sn.version[i] = i == 3 ? 0 : 1;
  seen_check(&sn, s);
  gv_store_close(s);
}
END_TEST

START_TEST(test_load_sees_queue_and_stops) {
  gv_store *s = open_ok();
  peer p;
  seen sn;

  for (uint32_t i = 0; i < 4; i++) {
    make_peer(&p, i, 1);
    put(s, &p);
  }
  /* Loading flushes first, so queued peers are included. */
  memset(&sn, 0, sizeof(sn));
  sn.stop_after = 2;
  ck_assert_int_eq(gv_store_load_peers(s, check_row, &sn), 7);
  ck_assert_uint_eq(sn.rows, 2);
  ck_assert_uint_eq(gv_store_pending(s), 0);
  ck_assert_uint_eq(count_rows(s), 4);
  ck_assert_int_eq(gv_store_load_peers(s, NULL, NULL), GV_EINVAL);
  gv_store_close(s);
}
END_TEST

/* A callback that tries to use the store during the walk. */
static int reenter(void *ctx, const uint8_t id[GV_ID_BYTES], const char *body,
                   size_t body_len, const uint8_t sig[64], int64_t last_seen) {
  gv_store *s = ctx;
  char v[8];
  ck_assert_int_eq(gv_store_put_peer(s, id, body, body_len, sig, last_seen),
                   GV_ESTATE);
  ck_assert_int_eq(gv_store_del_peer(s, id), GV_ESTATE);
  ck_assert_int_eq(gv_store_flush(s, NULL), GV_ESTATE);
  ck_assert_int_eq(gv_store_set(s, "k", "v"), GV_ESTATE);
  ck_assert_int_eq(gv_store_get(s, "k", v, sizeof(v)), GV_ESTATE);
  ck_assert_int_eq(gv_store_load_peers(s, reenter, s), GV_ESTATE);
  ck_assert_uint_eq(gv_store_pending(s), 0);
  return 0;
}

START_TEST(test_reentry_refused) {
  gv_store *s = open_ok();
  peer p;

  make_peer(&p, 1, 1);
  put(s, &p);
  ck_assert_int_eq(gv_store_load_peers(s, reenter, s), 0);
  put(s, &p); /* usable again after the walk */
  gv_store_close(s);
}
END_TEST

START_TEST(test_bad_rows_skipped) {
  gv_store *s = open_ok();
  sqlite3 *db;
  peer p;
  seen sn;

  make_peer(&p, 0, 1);
  put(s, &p);
  ck_assert_int_eq(gv_store_flush(s, NULL), 0);
  /* Another writer, bypassing the table's CHECKs, leaves malformed rows. */
  db = raw_open();
  raw_exec(db, "PRAGMA ignore_check_constraints = ON;"
               "INSERT INTO peers VALUES (zeroblob(31), 'b', zeroblob(64), 1);"
               "INSERT INTO peers VALUES (zeroblob(33), 'b', zeroblob(64), 1);"
               "INSERT INTO peers VALUES (randomblob(32), 'b', zeroblob(63),"
               " 1);"
               "INSERT INTO peers VALUES (randomblob(32), 'b', 'x', 1);"
               "INSERT INTO peers VALUES (randomblob(32), x'00', zeroblob(64),"
               " 1);"
               "INSERT INTO peers VALUES (randomblob(32), 'b', zeroblob(64),"
               " 'soon');"
               "INSERT INTO peers VALUES ('0123456789abcdef0123456789abcdef',"
               " 'b', zeroblob(64), 1);");
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 8);
  sqlite3_close(db);

  seen_init(&sn, 1);
  sn.version[0] = 1;
  seen_check(&sn, s);
  gv_store_close(s);
}
END_TEST

START_TEST(test_checks_refuse_bad_rows) {
  gv_store *s = open_ok();
  sqlite3 *db = raw_open();
  char *err = NULL;

  /* Without the bypass, the schema itself refuses a short id. */
  ck_assert_int_eq(sqlite3_exec(db,
                                "INSERT INTO peers VALUES (zeroblob(31), 'b',"
                                " zeroblob(64), 1)",
                                NULL, NULL, &err),
                   SQLITE_CONSTRAINT);
  sqlite3_free(err);
  sqlite3_close(db);
  gv_store_close(s);
}
END_TEST

START_TEST(test_flush_failure_keeps_queue) {
  gv_store *s = open_ok();
  sqlite3 *db = raw_open();
  gv_why why = {{0}};
  peer a, b;
  int rc;

  /* A trigger that refuses one row makes the whole flush fail. */
  raw_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON peers"
               " WHEN NEW.last_seen < 0 BEGIN SELECT RAISE(ABORT, 'boom');"
               " END");
  make_peer(&a, 1, 1);
  make_peer(&b, 2, 1);
  b.last_seen = -1;
  put(s, &a);
  put(s, &b);
  rc = gv_store_flush(s, &why);
  ck_assert_int_lt(rc, 0);
  ck_assert_ptr_nonnull(strstr(why.text, "boom"));
  ck_assert_uint_eq(gv_store_pending(s), 2);
  /* Nothing of the transaction was committed. */
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 0);
  ck_assert_int_eq(gv_store_flush(s, NULL), rc);

  raw_exec(db, "DROP TRIGGER refuse");
  ck_assert_int_eq(gv_store_flush(s, &why), 0);
  ck_assert_uint_eq(gv_store_pending(s), 0);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 2);
  sqlite3_close(db);
  gv_store_close(s);
}
END_TEST

/* Child of the kill tests: never returns. Reports on fd. */
static void child_write(int fd, int batches, int extra) {
  gv_store *s;
  gv_why why;
  peer p;
  char line[32];

  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
    _exit(6); /* never outlive a failed test */
  if (gv_store_open(&s, path, &why) < 0)
    _exit(2);
  for (int b = 0; batches < 0 || b < batches; b++) {
    for (uint32_t i = 0; i < 100; i++) {
      make_peer(&p, (uint32_t)b * 100 + i, 1);
      if (gv_store_put_peer(s, p.id, p.body, p.body_len, p.sig, p.last_seen) <
          0)
        _exit(3);
    }
    if (gv_store_flush(s, &why) < 0)
      _exit(4);
    int n = snprintf(line, sizeof(line), "flushed %d\n", b + 1);
    if (write(fd, line, (size_t)n) != n)
      _exit(5);
  }
  for (uint32_t i = 0; i < (uint32_t)extra; i++) {
    make_peer(&p, 1000000 + i, 1);
    if (gv_store_put_peer(s, p.id, p.body, p.body_len, p.sig, p.last_seen) < 0)
      _exit(3);
  }
  if (write(fd, "queued\n", 7) != 7)
    _exit(5);
  for (;;)
    pause();
}

/* Reads from fd until `want` occurrences of "\n" have arrived. */
static void wait_lines(int fd, int want) {
  char buf[256];
  int lines = 0;

  while (lines < want) {
    ssize_t n = read(fd, buf, sizeof(buf));
    ck_assert_msg(n > 0, "child ended early");
    for (ssize_t i = 0; i < n; i++)
      lines += buf[i] == '\n';
  }
}

static void kill_child(pid_t pid) {
  int status;
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

START_TEST(test_kill9_after_flush) {
  int fds[2];
  pid_t pid;
  gv_store *s;
  seen sn;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_write(fds[1], 10, 500); /* 1000 flushed, 500 only queued */
  }
  close(fds[1]);
  wait_lines(fds[0], 11);
  kill_child(pid);
  close(fds[0]);

  raw_integrity_ok();
  s = open_ok();
  seen_init(&sn, 1000);
  for (uint32_t i = 0; i < 1000; i++)
    sn.version[i] = 1;
  seen_check(&sn, s); /* the 500 unflushed are absent */
  gv_store_close(s);
  raw_integrity_ok();
}
END_TEST

START_TEST(test_kill9_mid_flush) {
  int fds[2];
  pid_t pid;
  gv_store *s;
  size_t rows;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_write(fds[1], -1, 0); /* flushes batches of 100 until killed */
  }
  close(fds[1]);
  wait_lines(fds[0], 20);
  kill_child(pid); /* most likely inside a flush */
  close(fds[0]);

  raw_integrity_ok();
  s = open_ok();
  rows = count_rows(s);
  ck_assert_uint_ge(rows, 2000);
  ck_assert_uint_eq(rows % 100, 0); /* whole transactions only */
  gv_store_close(s);
}
END_TEST

/* A setting is durable when gv_store_set returns: the child says so on
 * the pipe right after the call, the parent kills it at once. */
START_TEST(test_kill9_after_set) {
  int fds[2];
  pid_t pid;
  gv_store *s;
  char out[32];

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    gv_why why;
    close(fds[0]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
      _exit(6);
    if (gv_store_open(&s, path, &why) < 0)
      _exit(2);
    for (int i = 0; i < 20; i++) {
      snprintf(out, sizeof(out), "value %d", i);
      if (gv_store_set(s, "k", out) < 0 || write(fds[1], "\n", 1) != 1)
        _exit(3);
    }
    for (;;)
      pause();
  }
  close(fds[1]);
  wait_lines(fds[0], 5);
  kill_child(pid);
  close(fds[0]);

  raw_integrity_ok();
  s = open_ok();
  ck_assert_int_eq(gv_store_get(s, "k", out, sizeof(out)), 0);
  ck_assert_int_ge(atoi(out + 6), 4); /* at least the fifth set */
  gv_store_close(s);
}
END_TEST

START_TEST(test_settings) {
  gv_store *s = open_ok();
  sqlite3 *db;
  char out[64], big[70 * 1024];
  peer p;

  ck_assert_int_eq(gv_store_get(s, "repos", out, sizeof(out)), -ENOENT);
  ck_assert_int_eq(gv_store_set(s, "repos", "[\"a\",\"b\"]"), 0);
  ck_assert_int_eq(gv_store_get(s, "repos", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "[\"a\",\"b\"]");
  ck_assert_int_eq(gv_store_set(s, "repos", "[]"), 0);
  ck_assert_int_eq(gv_store_get(s, "repos", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "[]");
  ck_assert_int_eq(gv_store_set(s, "empty", ""), 0);
  ck_assert_int_eq(gv_store_get(s, "empty", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "");

  /* Truncation: NUL-terminated within cap. */
  ck_assert_int_eq(gv_store_set(s, "broadcast", "true"), 0);
  memset(out, 'x', sizeof(out));
  ck_assert_int_eq(gv_store_get(s, "broadcast", out, 3), 0);
  ck_assert_str_eq(out, "tr");
  ck_assert_int_eq(out[3], 'x');
  ck_assert_int_eq(gv_store_get(s, "broadcast", out, 1), 0);
  ck_assert_str_eq(out, "");
  ck_assert_int_eq(gv_store_get(s, "broadcast", out, 0), GV_EINVAL);
  ck_assert_int_eq(gv_store_get(s, "broadcast", out, 5), 0);
  ck_assert_str_eq(out, "true");

  /* Bounds and arguments. */
  memset(big, 'v', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(gv_store_set(s, "big", big), GV_ETOOBIG);
  ck_assert_int_eq(gv_store_set(s, big + sizeof(big) - 300, "v"), GV_ETOOBIG);
  ck_assert_int_eq(gv_store_set(s, NULL, "v"), GV_EINVAL);
  ck_assert_int_eq(gv_store_set(s, "k", NULL), GV_EINVAL);

  /* Committed at once, whatever the peer queue holds. */
  make_peer(&p, 1, 1);
  put(s, &p);
  ck_assert_int_eq(gv_store_set(s, "listen", "0.0.0.0:7000"), 0);
  ck_assert_uint_eq(gv_store_pending(s), 1);
  db = raw_open();
  ck_assert_int_eq(
      raw_int(db, "SELECT count(*) FROM settings WHERE key = 'listen'"), 1);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM peers"), 0);
  sqlite3_close(db);
  gv_store_close(s);

  s = open_ok();
  ck_assert_int_eq(gv_store_get(s, "listen", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "0.0.0.0:7000");
  ck_assert_int_eq(gv_store_get(s, "repos", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "[]");
  ck_assert_int_eq(gv_store_get(s, "nope", out, sizeof(out)), -ENOENT);
  gv_store_close(s);
}
END_TEST

START_TEST(test_put_arguments) {
  gv_store *s = open_ok();
  static char body[512 * 1024 + 1];
  uint8_t id[GV_ID_BYTES] = {1}, sig[64] = {2};

  ck_assert_int_eq(gv_store_put_peer(s, id, NULL, 0, sig, 1), GV_EINVAL);
  ck_assert_int_eq(gv_store_put_peer(s, NULL, "b", 1, sig, 1), GV_EINVAL);
  ck_assert_int_eq(gv_store_put_peer(s, id, "b", 1, NULL, 1), GV_EINVAL);
  ck_assert_int_eq(gv_store_del_peer(s, NULL), GV_EINVAL);
  ck_assert_int_eq(gv_store_put_peer(s, id, body, sizeof(body), sig, 1),
                   GV_ETOOBIG);
  ck_assert_int_eq(gv_store_put_peer(s, id, body, sizeof(body) - 1, sig, 1), 0);
  ck_assert_uint_eq(gv_store_pending(s), 1);
  gv_store_close(s);
}
END_TEST

static void write_file(const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static void assert_file_is(const void *data, size_t len) {
  static unsigned char buf[8192];
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(read(fd, buf, sizeof(buf)), (ssize_t)len);
  ck_assert_mem_eq(buf, data, len);
  close(fd);
}

START_TEST(test_refuses_garbage) {
  static unsigned char junk[4096];
  gv_store *s = (gv_store *)1;
  gv_why why = {{0}};
  int rc;

  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (unsigned char)(i * 131 + 7);
  write_file(junk, sizeof(junk));
  rc = gv_store_open(&s, path, &why);
  ck_assert_int_eq(rc, GV_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(why.text, "not a Grapevine database"));
  ck_assert_ptr_nonnull(strstr(why.text, path));
  assert_file_is(junk, sizeof(junk)); /* untouched */

  /* A text file, and one that begins like SQLite but is not. */
  write_file("hello, world\n", 13);
  ck_assert_int_eq(gv_store_open(&s, path, &why), GV_EINVAL);
  memcpy(junk, "SQLite format 3", 16);
  write_file(junk, sizeof(junk));
  ck_assert_int_lt(gv_store_open(&s, path, &why), 0);
  ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_refuses_foreign_db) {
  sqlite3 *db = raw_open();
  gv_store *s;
  gv_why why = {{0}};
  char wal[300];
  struct stat st;

  raw_exec(db, "CREATE TABLE people (name TEXT)");
  sqlite3_close(db);
  ck_assert_int_eq(gv_store_open(&s, path, &why), GV_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(why.text, "not a Grapevine database"));
  /* Left as it was: no Grapevine tables, no switch to WAL. */
  snprintf(wal, sizeof(wal), "%s-wal", path);
  ck_assert_int_ne(stat(wal, &st), 0);
  db = raw_open();
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
  ck_assert_int_eq(raw_int(db, "PRAGMA application_id"), 0);
  /* Another application's id on an empty database: refused too. */
  raw_exec(db, "DROP TABLE people; PRAGMA application_id = 42");
  sqlite3_close(db);
  ck_assert_int_eq(gv_store_open(&s, path, &why), GV_EINVAL);
  ck_assert_ptr_nonnull(strstr(why.text, "0x2a"));
}
END_TEST

START_TEST(test_refuses_newer_schema) {
  gv_store *s = open_ok();
  sqlite3 *db;
  gv_why why = {{0}};

  gv_store_close(s);
  db = raw_open();
  raw_exec(db, "PRAGMA user_version = 2");
  sqlite3_close(db);
  ck_assert_int_eq(gv_store_open(&s, path, &why), GV_EVERSION);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(why.text, "version 2"));
  ck_assert_ptr_nonnull(strstr(why.text, "newer"));
}
END_TEST

START_TEST(test_refuses_unopenable) {
  gv_store *s;
  gv_why why = {{0}};
  char sub[300];

  /* A directory. */
  ck_assert_int_lt(gv_store_open(&s, dir, &why), 0);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(why.text, dir));
  /* A missing directory. */
  snprintf(sub, sizeof(sub), "%s/missing/node.db", dir);
  ck_assert_int_lt(gv_store_open(&s, sub, &why), 0);
  ck_assert_ptr_null(s);
  /* A read-only file (root can write anyway: then it opens). */
  s = open_ok();
  gv_store_close(s);
  ck_assert_int_eq(chmod(path, 0400), 0);
  if (geteuid() != 0) {
    ck_assert_int_eq(gv_store_open(&s, path, &why), -EACCES);
    ck_assert_ptr_nonnull(strstr(why.text, "not writable"));
  }
  chmod(path, 0600);
}
END_TEST

START_TEST(test_auto_flush_count) {
  gv_store *s = open_ok();
  uint8_t id[GV_ID_BYTES] = {0}, sig[64] = {0};
  const uint32_t total = QUEUE_MAX + 10;

  for (uint32_t i = 0; i < total; i++) {
    memcpy(id, &i, sizeof(i));
    ck_assert_int_eq(gv_store_put_peer(s, id, "{}", 2, sig, i), 0);
    ck_assert_uint_le(gv_store_pending(s), QUEUE_MAX);
  }
  ck_assert_uint_eq(gv_store_pending(s), 10);
  /* Replacing a queued id at the bound does not flush. */
  ck_assert_int_eq(gv_store_del_peer(s, id), 0);
  ck_assert_uint_eq(gv_store_pending(s), 10);
  gv_store_close(s);

  s = open_ok();
  ck_assert_uint_eq(count_rows(s), total - 1);
  gv_store_close(s);
}
END_TEST

START_TEST(test_auto_flush_bytes) {
  gv_store *s = open_ok();
  uint8_t id[GV_ID_BYTES] = {0}, sig[64] = {0};
  const size_t len = 256 * 1024, fit = QUEUE_BYTES / len;
  char *body = malloc(len);

  ck_assert_ptr_nonnull(body);
  memset(body, 'b', len);
  for (uint32_t i = 0; i < fit + 5; i++) {
    memcpy(id, &i, sizeof(i));
    ck_assert_int_eq(gv_store_put_peer(s, id, body, len, sig, i), 0);
    ck_assert_uint_le(gv_store_pending(s) * len, QUEUE_BYTES);
  }
  ck_assert_uint_eq(gv_store_pending(s), 5);
  free(body);
  gv_store_close(s);

  s = open_ok();
  ck_assert_uint_eq(count_rows(s), fit + 5);
  gv_store_close(s);
}
END_TEST

START_TEST(test_two_stores_one_file) {
  gv_store *a = open_ok(), *b = open_ok();
  char out[16];
  peer p;

  make_peer(&p, 1, 1);
  put(a, &p);
  ck_assert_int_eq(gv_store_flush(a, NULL), 0);
  ck_assert_uint_eq(count_rows(b), 1);
  ck_assert_int_eq(gv_store_set(b, "k", "v"), 0);
  ck_assert_int_eq(gv_store_get(a, "k", out, sizeof(out)), 0);
  gv_store_close(a);
  gv_store_close(b);
}
END_TEST

static Suite *store_suite(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_roundtrip);
  tcase_add_test(tc, test_wal_and_visibility);
  tcase_add_test(tc, test_replace_semantics);
  tcase_add_test(tc, test_close_flushes);
  tcase_add_test(tc, test_load_sees_queue_and_stops);
  tcase_add_test(tc, test_reentry_refused);
  tcase_add_test(tc, test_bad_rows_skipped);
  tcase_add_test(tc, test_checks_refuse_bad_rows);
  tcase_add_test(tc, test_flush_failure_keeps_queue);
  tcase_add_test(tc, test_kill9_after_flush);
  tcase_add_test(tc, test_kill9_mid_flush);
  tcase_add_test(tc, test_settings);
  tcase_add_test(tc, test_kill9_after_set);
  tcase_add_test(tc, test_put_arguments);
  tcase_add_test(tc, test_refuses_garbage);
  tcase_add_test(tc, test_refuses_foreign_db);
  tcase_add_test(tc, test_refuses_newer_schema);
  tcase_add_test(tc, test_refuses_unopenable);
  tcase_add_test(tc, test_auto_flush_count);
  tcase_add_test(tc, test_auto_flush_bytes);
  tcase_add_test(tc, test_two_stores_one_file);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(store_suite()); }

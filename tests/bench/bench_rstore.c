/* bench_rstore: the relay's messages made durable through gv_rstore_persist
 * (group commit on gv_db), beside raw SQLite doing one INSERT per
 * transaction, measured in the same run on the same file system with the
 * same settings (WAL, synchronous=FULL).
 *
 *   build/bench/bench_rstore
 *   BENCH_SECONDS=2 (per measurement)
 *   BENCH_ROUNDS=3 (median taken)
 *   BENCH_INFLIGHT=256 (jobs outstanding at once)
 *   BENCH_DIR=/tmp (where the database files go: pick the disk to measure)
 *
 * Ours: each job is one MSG row (an outbox message: 16-byte id, three
 * 32-byte keys, names, seq, stamps) with a 1 KiB body, as the relay core
 * persists an accepted send; every done() submits the next job until the
 * time is up, then the rest drain. msgs/s counts done() with status 0 (each
 * one durable).
 * The anchor: a raw sqlite3 connection, autocommit, one prepared INSERT of
 * a 16-byte id and the 1 KiB body per row (one transaction and one fsync
 * per row), for the same time.
 *
 * Method: CLOCK_MONOTONIC; every measurement starts from a fresh file and
 * excludes open and close; ours and the anchor alternate which goes first;
 * each figure is the median over the rounds. ratio = ours / anchor. Slow is
 * printed, never a failure.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "relaystore.h"

#define BODY_LEN 1024
#define MAX_INFLIGHT 4096

static char dir[4096], path[4200];
static uint8_t body[BODY_LEN];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_rstore: %s: %s\n", what, detail);
  exit(1);
}

/* ---- ours ---- */

typedef struct run {
  gv_rstore *s;
  double deadline, last;
  uint64_t next, acked;
  gv_rrow row;
} run;

static void on_done(void *ctx, uint64_t job, int status);

static void submit(run *r) {
  static uint64_t keys; /* the core's row numbers: unique in the file */
  gv_rmsg_row *m = &r->row.u.msg;
  int rc;

  m->key = ++keys;
  memcpy(m->id, &r->next, sizeof(r->next)); /* unique per message */
  m->seq = r->next + 1;
  rc = gv_rstore_persist(r->s, r->next, &r->row, 1, on_done, r);
  if (rc < 0)
    die("gv_rstore_persist", gv_strerror(rc));
  r->next++;
}

static void on_done(void *ctx, uint64_t job, int status) {
  run *r = ctx;

  (void)job;
  if (status != 0)
    die("persist", gv_strerror(status));
  r->acked++;
  r->last = bench_now_s();
  if (r->last < r->deadline)
    submit(r);
}

/* Returns durable messages per second. */
static double run_ours(double seconds, int inflight) {
  uv_loop_t loop;
  gv_why why;
  run r;
  double t0;

  memset(&r, 0, sizeof(r));
  r.row.type = GV_RROW_MSG;
  memset(r.row.u.msg.team_id, 0x11, GV_RW_KEY_BYTES);
  memset(r.row.u.msg.src, 0x22, GV_ID_BYTES);
  memset(r.row.u.msg.dst, 0x33, GV_ID_BYTES);
  strcpy(r.row.u.msg.from, "bench:alice");
  strcpy(r.row.u.msg.to, "bench:bob");
  r.row.u.msg.created_ms = 1767225600000LL;
  r.row.u.msg.deadline_ms = r.row.u.msg.created_ms + 7LL * 86400000;
  r.row.u.msg.body = body;
  r.row.u.msg.body_len = BODY_LEN;

  bench_remove_db(path);
  if (uv_loop_init(&loop) < 0)
    die("uv_loop_init", "failed");
  if (gv_rstore_open(&r.s, &loop, path, &why) < 0)
    die("gv_rstore_open", why.text);
  t0 = bench_now_s();
  r.deadline = t0 + seconds;
  for (int i = 0; i < inflight; i++)
    submit(&r);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once every done ran */
  gv_rstore_close(r.s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return (double)r.acked / (r.last - t0);
}

/* ---- the anchor ---- */

static void raw_exec(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    die(sql, sqlite3_errmsg(db));
}

static double run_raw(double seconds) {
  sqlite3 *db;
  sqlite3_stmt *st;
  double t0, t1;
  uint64_t n = 0;
  uint8_t id[16] = {0};

  bench_remove_db(path);
  if (sqlite3_open(path, &db) != SQLITE_OK)
    die("sqlite3_open", sqlite3_errmsg(db));
  raw_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL");
  raw_exec(db, "CREATE TABLE t (n INTEGER PRIMARY KEY, id BLOB UNIQUE,"
               " body BLOB)");
  if (sqlite3_prepare_v2(db, "INSERT INTO t (id, body) VALUES (?1, ?2)", -1,
                         &st, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(db));
  t0 = t1 = bench_now_s();
  while (t1 < t0 + seconds) {
    memcpy(id, &n, sizeof(n));
    n++;
    sqlite3_bind_blob(st, 1, id, sizeof(id), SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, body, BODY_LEN, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
      die("insert", sqlite3_errmsg(db));
    sqlite3_reset(st);
    t1 = bench_now_s();
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return (double)n / (t1 - t0);
}

int main(int argc, char **argv) {
  double seconds = bench_env("BENCH_SECONDS", 2, 0.05, 600);
  int rounds = (int)bench_env("BENCH_ROUNDS", 3, 1, BENCH_MAX_ROUNDS);
  int inflight = (int)bench_env("BENCH_INFLIGHT", 256, 1, MAX_INFLIGHT);
  const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
  double ours[BENCH_MAX_ROUNDS], raw[BENCH_MAX_ROUNDS];

  if (argc > 1) {
    fprintf(stderr,
            "usage: %s (settings in BENCH_SECONDS, BENCH_ROUNDS, "
            "BENCH_INFLIGHT, BENCH_DIR; see the source's header)\n",
            argv[0]);
    return 2;
  }
  for (size_t i = 0; i < BODY_LEN; i++)
    body[i] = (uint8_t)(i * 7 + 3);
  snprintf(dir, sizeof(dir), "%s/gv-bench-rstore-XXXXXX", base);
  if (mkdtemp(dir) == NULL)
    die("mkdtemp", dir);
  snprintf(path, sizeof(path), "%s/relay.db", dir);

  run_ours(seconds / 4, inflight); /* warm-up */
  for (int r = 0; r < rounds; r++) {
    if (r % 2 == 0) {
      ours[r] = run_ours(seconds, inflight);
      raw[r] = run_raw(seconds);
    } else {
      raw[r] = run_raw(seconds);
      ours[r] = run_ours(seconds, inflight);
    }
  }
  bench_remove_db(path);
  rmdir(dir);

  double mo = bench_median(ours, rounds), mr = bench_median(raw, rounds);
  printf("bench_rstore: MSG rows with %d-byte bodies, WAL, synchronous=FULL, "
         "%.2f s per measurement, %d rounds, in %s\n",
         BODY_LEN, seconds, rounds, base);
  printf("%-36s %14s %16s %7s\n", "figure", "gv_rstore", "raw 1 INSERT/txn",
         "ratio");
  printf("%-21s %4d in flight %12.0f/s %14.0f/s %7.2f\n", "messages durable/s",
         inflight, mo, mr, mo / mr);
  return 0;
}

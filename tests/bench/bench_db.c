/* bench_db: what group commit through node/db.c buys, beside raw SQLite
 * doing one INSERT per transaction, measured in the same run on the same
 * file system with the same settings (WAL, synchronous=FULL).
 *
 *   build/bench/bench_db
 *   BENCH_SECONDS=2 (per measurement; CI sets 0.3)
 *   BENCH_ROUNDS=3 (median taken)
 *   BENCH_INFLIGHT=256 (writes outstanding at once in the group figure)
 *   BENCH_DIR=/tmp (where the database files go: pick the disk to measure)
 *
 * Figures, each row 1 KiB (an 8-byte key and a 1024-byte blob):
 *
 *   1. group commit, BENCH_INFLIGHT in flight: gv_db_exec() of one INSERT
 *      per job; every completion callback submits the next write until the
 *      time is up, then the rest drain. rows/s counts callbacks with status
 *      0 (each one durable), commits/s counts the writer's transactions.
 *   2. one in flight: the same with one write outstanding (each callback
 *      submits the next), which is the layer's latency per commit.
 *   The anchor of both: a raw sqlite3 connection, autocommit, one prepared
 *   INSERT stepped per row (one transaction, one fsync per row), for the
 *   same time. Its rows/s equals its commits/s.
 *
 * Method: CLOCK_MONOTONIC (uv_hrtime); every measurement starts from a
 * fresh database file and excludes open and close; ours and the anchor
 * alternate which goes first; each figure is the median over the rounds.
 * ratio = ours / anchor, both as rates. Slow is printed, never a failure.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "db.h"

#define ROW_LEN 1024
#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define MAX_INFLIGHT 4096
#define INSERT "INSERT INTO t (k, v) VALUES (?1, ?2)"

static char dir[4096], path[4200];
static char row[ROW_LEN];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_db: %s: %s\n", what, detail);
  exit(1);
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)";

static int make_table(void *ctx, sqlite3 *h, gv_why *why) {
  (void)ctx;
  if (sqlite3_exec(h, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
    return gv_fail(why, -EIO, "%s", sqlite3_errmsg(h));
  return 0;
}

/* ---- ours ---- */

typedef struct run {
  gv_db *db;
  double deadline, last;
  int64_t next_key;
  uint64_t acked;
} run;

static void on_done(void *ctx, int status);

static void submit(run *r) {
  gv_db_val vals[2] = {GV_DB_INT(r->next_key), GV_DB_BLOB(row, ROW_LEN)};
  gv_db_stmt st = {INSERT, vals, 2};
  int rc = gv_db_exec(r->db, &st, 1, on_done, r);

  if (rc < 0)
    die("gv_db_exec", gv_strerror(rc));
  r->next_key++;
}

static void on_done(void *ctx, int status) {
  run *r = ctx;

  if (status != 0)
    die("write", gv_strerror(status));
  r->acked++;
  r->last = bench_now_s();
  if (r->last < r->deadline)
    submit(r);
}

/* Returns rows/s; *commits_s gets the writer's transactions per second. */
static double run_ours(double seconds, int inflight, double *commits_s) {
  gv_db_opts opts = {0, 0, make_table, NULL};
  uv_loop_t loop;
  gv_why why;
  gv_db_stats st;
  run r = {0};
  double t0;

  bench_remove_db(path);
  if (uv_loop_init(&loop) < 0)
    die("uv_loop_init", "failed");
  if (gv_db_open(&r.db, &loop, path, &opts, &why) < 0)
    die("gv_db_open", why.text);
  t0 = bench_now_s();
  r.deadline = t0 + seconds;
  for (int i = 0; i < inflight; i++)
    submit(&r);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once every callback ran */
  gv_db_get_stats(r.db, &st);
  gv_db_close(r.db);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  *commits_s = (double)st.commits / (r.last - t0);
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
  int64_t n = 0;

  bench_remove_db(path);
  if (sqlite3_open(path, &db) != SQLITE_OK)
    die("sqlite3_open", sqlite3_errmsg(db));
  raw_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL");
  raw_exec(db, SCHEMA);
  if (sqlite3_prepare_v2(db, INSERT, -1, &st, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(db));
  t0 = t1 = bench_now_s();
  while (t1 < t0 + seconds) {
    sqlite3_bind_int64(st, 1, n++);
    sqlite3_bind_blob(st, 2, row, ROW_LEN, SQLITE_STATIC);
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
  int rounds = (int)bench_env("BENCH_ROUNDS", 3, 1, MAX_ROUNDS);
  int inflight = (int)bench_env("BENCH_INFLIGHT", 256, 1, MAX_INFLIGHT);
  const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
  double group[MAX_ROUNDS], commits[MAX_ROUNDS], one[MAX_ROUNDS],
      raw[MAX_ROUNDS], unused;

  if (argc > 1) {
    fprintf(stderr,
            "usage: %s (settings in BENCH_SECONDS, BENCH_ROUNDS, "
            "BENCH_INFLIGHT, BENCH_DIR; see the source's header)\n",
            argv[0]);
    return 2;
  }
  for (size_t i = 0; i < ROW_LEN; i++)
    row[i] = (char)(' ' + i % 95);
  snprintf(dir, sizeof(dir), "%s/gv-bench-db-XXXXXX", base);
  if (mkdtemp(dir) == NULL)
    die("mkdtemp", dir);
  snprintf(path, sizeof(path), "%s/bench.db", dir);

  run_ours(seconds / 4, inflight, &unused); /* warm-up */
  for (int r = 0; r < rounds; r++) {
    if (r % 2 == 0) {
      group[r] = run_ours(seconds, inflight, &commits[r]);
      one[r] = run_ours(seconds, 1, &unused);
      raw[r] = run_raw(seconds);
    } else {
      raw[r] = run_raw(seconds);
      one[r] = run_ours(seconds, 1, &unused);
      group[r] = run_ours(seconds, inflight, &commits[r]);
    }
  }
  bench_remove_db(path);
  rmdir(dir);

  double mg = bench_median(group, rounds), mc = bench_median(commits, rounds),
         mo = bench_median(one, rounds), mr = bench_median(raw, rounds);
  printf("bench_db: rows of %d bytes, WAL, synchronous=FULL, %.2f s per "
         "measurement, %d rounds, in %s\n",
         ROW_LEN + 8, seconds, rounds, base);
  printf("%-40s %12s %16s %7s\n", "figure", "gv_db", "raw 1 INSERT/txn",
         "ratio");
  printf("%-25s %4d in flight %10.0f/s %14.0f/s %7.2f\n", "rows committed/s",
         inflight, mg, mr, mg / mr);
  printf("%-25s %4d in flight %10.0f/s %14.0f/s %7.2f\n",
         "transactions committed/s", inflight, mc, mr, mc / mr);
  printf("%-25s %4d in flight %10.0f/s %14.0f/s %7.2f\n", "rows committed/s", 1,
         mo, mr, mo / mr);
  printf("rows per transaction (group commit): %.1f\n", mg / mc);
  return 0;
}

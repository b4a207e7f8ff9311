/* bench_store: what node/store.c costs beside a bare SQLite insert loop
 * doing the same writes, measured in the same run.
 *
 *   build/bench/bench_store
 *   BENCH_PEERS=20000 (rows per measurement, at most 50000 so that the
 *   puts stay below the queue's 32 MiB bound and never auto-flush)
 *   BENCH_ROUNDS=5 (median taken)
 *   BENCH_DIR=/tmp (where the database files go: pick the disk to measure)
 *
 * Figures:
 *
 *   1. peers committed/s: gv_store_put_peer() of BENCH_PEERS new peers
 *      (605-byte bodies, like a PEER_ANNOUNCEMENT) then one
 *      gv_store_flush(), against the anchor: a raw sqlite3 connection with
 *      the same pragmas (WAL, synchronous=NORMAL) on a file of the same
 *      schema (made by gv_store_open), BEGIN IMMEDIATE, one prepared INSERT
 *      stepped per row, COMMIT.
 *   2. puts queued/s: gv_store_put_peer() alone (the event loop's cost),
 *      no anchor.
 *
 * Method: CLOCK_MONOTONIC; every measurement starts from a fresh database
 * file and excludes open and close; the rows are generated beforehand;
 * ours and the anchor alternate which goes first; each figure is the median
 * over the rounds. ratio = ours / anchor, both as rates: 0.90 means the
 * store commits at 90% of the bare loop's rate.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "store.h"

#define BODY_LEN 605
#define MAX_ROUNDS BENCH_MAX_ROUNDS

typedef struct row {
  uint8_t id[GV_ID_BYTES];
  char body[BODY_LEN];
  uint8_t sig[64];
  int64_t last_seen;
} row;

static char dir[4096], path[4200];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_store: %s: %s\n", what, detail);
  exit(1);
}

/* A fresh database with the store's schema, opened by the store. */
static gv_store *fresh_store(void) {
  gv_store *s;
  gv_why why;

  bench_remove_db(path);
  if (gv_store_open(&s, path, &why) < 0)
    die("gv_store_open", why.text);
  return s;
}

static void make_rows(row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    row *r = &rows[i];
    for (size_t j = 0; j < GV_ID_BYTES; j++)
      r->id[j] = (uint8_t)((i * 2654435761u) >> (j % 4 * 8)) ^ (uint8_t)j;
    memcpy(r->id, &i, sizeof(i)); /* unique */
    for (size_t j = 0; j < BODY_LEN; j++)
      r->body[j] = (char)(' ' + (i + j * 7) % 95);
    for (size_t j = 0; j < 64; j++)
      r->sig[j] = (uint8_t)(i * 31 + j);
    r->last_seen = 1767225600000LL + (int64_t)i;
  }
}

/* Ours: puts then one flush. Returns seconds; *put_s gets the puts alone. */
static double run_ours(const row *rows, size_t n, double *put_s) {
  gv_store *s = fresh_store();
  gv_why why;
  double t0, t1, t2;
  int rc;

  t0 = bench_now_s();
  for (size_t i = 0; i < n; i++)
    if ((rc = gv_store_put_peer(s, rows[i].id, rows[i].body, BODY_LEN,
                                rows[i].sig, rows[i].last_seen)) < 0)
      die("gv_store_put_peer", gv_strerror(rc));
  t1 = bench_now_s();
  if (gv_store_flush(s, &why) < 0)
    die("gv_store_flush", why.text);
  t2 = bench_now_s();
  gv_store_close(s);
  *put_s = t1 - t0;
  return t2 - t0;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    die(sql, sqlite3_errmsg(db));
}

/* The anchor: the bare loop on a file of the same schema. */
static double run_raw(const row *rows, size_t n) {
  sqlite3 *db;
  sqlite3_stmt *st;
  double t0, t1;

  gv_store_close(fresh_store());
  if (sqlite3_open(path, &db) != SQLITE_OK)
    die("sqlite3_open", sqlite3_errmsg(db));
  raw_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
  if (sqlite3_prepare_v2(db, "INSERT INTO peers VALUES (?1, ?2, ?3, ?4)", -1,
                         &st, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(db));
  t0 = bench_now_s();
  raw_exec(db, "BEGIN IMMEDIATE");
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_blob(st, 1, rows[i].id, GV_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rows[i].body, BODY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, rows[i].sig, 64, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, rows[i].last_seen);
    if (sqlite3_step(st) != SQLITE_DONE)
      die("insert", sqlite3_errmsg(db));
    sqlite3_reset(st);
  }
  raw_exec(db, "COMMIT");
  t1 = bench_now_s();
  sqlite3_finalize(st);
  sqlite3_close(db);
  return t1 - t0;
}

int main(int argc, char **argv) {
  size_t n = (size_t)bench_env("BENCH_PEERS", 20000, 100, 50000);
  int rounds = (int)bench_env("BENCH_ROUNDS", 5, 1, MAX_ROUNDS);
  const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
  double ours[MAX_ROUNDS], raw[MAX_ROUNDS], queued[MAX_ROUNDS], put_s;
  row *rows = malloc(n * sizeof(*rows));

  if (argc > 1) {
    fprintf(stderr,
            "usage: %s (settings in BENCH_PEERS, BENCH_ROUNDS, "
            "BENCH_DIR; see the source's header)\n",
            argv[0]);
    return 2;
  }
  if (rows == NULL)
    die("malloc", "out of memory");
  snprintf(dir, sizeof(dir), "%s/gv-bench-store-XXXXXX", base);
  if (mkdtemp(dir) == NULL)
    die("mkdtemp", dir);
  snprintf(path, sizeof(path), "%s/bench.db", dir);
  make_rows(rows, n);

  run_ours(rows, n, &put_s); /* warm-up */
  run_raw(rows, n);
  for (int r = 0; r < rounds; r++) {
    if (r % 2 == 0) {
      ours[r] = (double)n / run_ours(rows, n, &put_s);
      raw[r] = (double)n / run_raw(rows, n);
    } else {
      raw[r] = (double)n / run_raw(rows, n);
      ours[r] = (double)n / run_ours(rows, n, &put_s);
    }
    queued[r] = (double)n / put_s;
  }
  bench_remove_db(path);
  rmdir(dir);
  free(rows);

  double mo = bench_median(ours, rounds), mr = bench_median(raw, rounds);
  printf("bench_store: %zu peers of %d bytes per measurement, %d rounds, "
         "in %s\n",
         n, BODY_LEN, rounds, base);
  printf("%-22s %14s %14s %7s\n", "figure", "ours", "raw sqlite3", "ratio");
  printf("%-22s %12.0f/s %12.0f/s %7.2f\n", "peers committed", mo, mr, mo / mr);
  printf("%-22s %12.0f/s %14s %7s\n", "puts queued",
         bench_median(queued, rounds), "-", "-");
  return 0;
}

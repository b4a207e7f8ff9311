/* What the C benchmarks share: a monotonic clock, the median of rounds,
 * a checked number from the environment, and removing a SQLite database
 * with its side files. Header-only: each benchmark is one program. */
#ifndef GV_BENCH_H
#define GV_BENCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_ROUNDS 64

static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of v[0..n), n <= BENCH_MAX_ROUNDS; v is left as it was. */
static inline double bench_median(const double *v, int n) {
  double s[BENCH_MAX_ROUNDS];
  memcpy(s, v, (size_t)n * sizeof(*s));
  qsort(s, (size_t)n, sizeof(*s), bench_cmp_double);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The number in environment variable name, def if unset or empty; a value
 * that is not a number in lo..hi ends the program with exit status 2. */
static inline double bench_env(const char *name, double def, double lo,
                               double hi) {
  const char *s = getenv(name);
  char *end;
  double v;

  if (s == NULL || *s == '\0')
    return def;
  v = strtod(s, &end);
  if (*end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "%s: %s=%s: want a number in %g..%g\n",
            program_invocation_short_name, name, s, lo, hi);
    exit(2);
  }
  return v;
}

/* Removes the database at path and its -wal, -shm and -journal files. */
static inline void bench_remove_db(const char *path) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char file[4300];

  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
    unlink(file);
  }
}

#endif

/* The one logger of the node and the tracker: one line per event on a
 * stream (stderr in the daemons),
 *
 *   2026-01-01T00:00:00.123Z grapevine[1234] info: link 3 up with 1a2b3c4d
 *
 * with repeated lines rate-limited: each call site (keyed by its format
 * string) may write GV_LOG_BURST lines per GV_LOG_WINDOW_MS; what is over
 * is counted, and the count is reported ("suppressed N line(s) like: ...")
 * with the site's next line after the window, or by gv_log_flush().
 *
 * Lifetime: a gv_log is a value the caller owns; the stream and the name
 * are borrowed. A gv_log set up with gv_log_init() rate-limits and must be
 * released with gv_log_done(); a plain initialiser {level, out} logs
 * without a limit (tests). Thread-safe: one lock around the limiter, one
 * stdio call per line.
 */
#ifndef GV_LOG_H
#define GV_LOG_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

typedef enum gv_log_level {
  GV_LOG_ERROR,
  GV_LOG_WARN,
  GV_LOG_INFO,
  GV_LOG_DEBUG
} gv_log_level;

#define GV_LOG_BURST 20
#define GV_LOG_WINDOW_MS 10000
/* Call sites tracked at once: a site is looked for in GV_LOG_PROBE slots
 * from its hash, and takes the free one or the least recently used there.
 * The daemons have far fewer sites than slots, so two sites that hash
 * alike do not reset each other's budget. */
#define GV_LOG_SITES 256
#define GV_LOG_PROBE 16

typedef struct gv_log_site {
  const char *fmt; /* NULL: free */
  int64_t window_start;
  int64_t last;        /* the site's last line, written or not */
  unsigned lines;      /* written in this window */
  unsigned suppressed; /* not written since the last report */
} gv_log_site;

typedef struct gv_log {
  gv_log_level level;
  FILE *out;        /* NULL: log nothing */
  const char *name; /* "grapevine"; NULL: no name field */
  /* The limiter, live only after gv_log_init(). */
  int limited;
  unsigned burst;
  int64_t window_ms;
  int64_t (*now_ms)(void); /* monotonic ms; replaceable by tests */
  pthread_mutex_t mu;
  gv_log_site sites[GV_LOG_SITES];
} gv_log;

/* Sets up a rate-limited logger writing to out. */
void gv_log_init(gv_log *lg, FILE *out, gv_log_level level, const char *name);

/* Reports every pending suppressed count, then releases the limiter. */
void gv_log_done(gv_log *lg);

/* Writes "suppressed N line(s) like: FMT" for each site with a count. */
void gv_log_flush(gv_log *lg);

/* Parses "error", "warn", "info" or "debug". 0 or GV_EINVAL. */
int gv_log_level_parse(const char *s, gv_log_level *out);
const char *gv_log_level_name(gv_log_level level);

/* Logs one line if level is enabled and the site is within its budget;
 * newlines in the message become spaces. */
void gv_logf(gv_log *lg, gv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int gv_log_on(const gv_log *lg, gv_log_level level) {
  return lg->out != NULL && level <= lg->level;
}

#endif

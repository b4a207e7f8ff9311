/* Leveled logging for the tracker: one line per event on a stream
 * (stderr in the daemon), "2026-01-01T00:00:00.123Z info message".
 *
 * Lifetime: a gv_trk_log is a plain value the caller owns; the stream is
 * borrowed. Thread-safe: each line is written with a single stdio call.
 */
#ifndef GV_TRK_LOG_H
#define GV_TRK_LOG_H

#include <stdio.h>

typedef enum gv_trk_level {
  GV_TRK_LOG_ERROR,
  GV_TRK_LOG_WARN,
  GV_TRK_LOG_INFO,
  GV_TRK_LOG_DEBUG
} gv_trk_level;

typedef struct gv_trk_log {
  gv_trk_level level;
  FILE *out;
} gv_trk_log;

/* Parses "error", "warn", "info" or "debug". 0 or GV_EINVAL. */
int gv_trk_level_parse(const char *s, gv_trk_level *out);

/* Logs one line if level is enabled; a trailing newline is added. */
void gv_trk_logf(const gv_trk_log *lg, gv_trk_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int gv_trk_log_on(const gv_trk_log *lg, gv_trk_level level) {
  return level <= lg->level;
}

#endif

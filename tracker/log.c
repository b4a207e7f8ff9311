#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "err.h"

static const char *const names[] = {"error", "warn", "info", "debug"};

int gv_trk_level_parse(const char *s, gv_trk_level *out) {
  for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (gv_trk_level)i;
      return 0;
    }
  return GV_EINVAL;
}

void gv_trk_logf(const gv_trk_log *lg, gv_trk_level level, const char *fmt,
                 ...) {
  char line[1024];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  int n;

  if (!gv_trk_log_on(lg, level))
    return;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  /* Keep one event on one line whatever the message holds. */
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(lg->out, "%s\n", line);
  fflush(lg->out);
}

#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static const char *const names[] = {"error", "warn", "info", "debug"};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gv_log_init(gv_log *lg, FILE *out, gv_log_level level, const char *name) {
  memset(lg, 0, sizeof(*lg));
  lg->level = level;
  lg->out = out;
  lg->name = name;
  lg->burst = GV_LOG_BURST;
  lg->window_ms = GV_LOG_WINDOW_MS;
  lg->now_ms = mono_ms;
  pthread_mutex_init(&lg->mu, NULL);
  lg->limited = 1;
}

int gv_log_level_parse(const char *s, gv_log_level *out) {
  for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (gv_log_level)i;
      return 0;
    }
  return GV_EINVAL;
}

const char *gv_log_level_name(gv_log_level level) {
  return (unsigned)level < sizeof(names) / sizeof(names[0]) ? names[level]
                                                            : "?";
}

/* Writes one line: stamp, name[pid], level, then the message. */
static void emit(const gv_log *lg, gv_log_level level, const char *fmt,
                 va_list ap) {
  char line[1024];
  struct timespec ts;
  struct tm tm;
  int n;

  clock_gettime(CLOCK_REALTIME, &ts); /* a stamp for humans, not a timer */
  gmtime_r(&ts.tv_sec, &tm);
  n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  if (lg->name != NULL)
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s[%d] ", lg->name,
                  (int)getpid());
  n += snprintf(line + n, sizeof(line) - (size_t)n,
                "%s: ", gv_log_level_name(level));
  vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  /* Keep one event on one line whatever the message holds. */
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(lg->out, "%s\n", line);
  fflush(lg->out);
}

static void emitf(const gv_log *lg, gv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emitf(const gv_log *lg, gv_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(lg, level, fmt, ap);
  va_end(ap);
}

static void report(const gv_log *lg, gv_log_site *s) {
  if (s->suppressed > 0)
    emitf(lg, GV_LOG_WARN, "suppressed %u line(s) like: %s", s->suppressed,
          s->fmt);
  s->suppressed = 0;
}

/* The site's slot: the first of GV_LOG_PROBE slots from the hash of the
 * format string's address that holds it, else a free one, else the least
 * recently used, whose count is reported before it is taken over. */
static gv_log_site *site_of(gv_log *lg, const char *fmt, int64_t now) {
  uintptr_t h = (uintptr_t)fmt;
  gv_log_site *s, *lru = NULL;

  h ^= h >> 17;
  h *= 0x9e3779b97f4a7c15u;
  h >>= 32;
  for (unsigned k = 0; k < GV_LOG_PROBE; k++) {
    s = &lg->sites[(h + k) % GV_LOG_SITES];
    if (s->fmt == fmt)
      return s;
    if (s->fmt == NULL) {
      lru = s;
      break;
    }
    if (lru == NULL || s->last < lru->last)
      lru = s;
  }
  if (lru->fmt != NULL)
    report(lg, lru);
  lru->fmt = fmt;
  lru->lines = 0;
  lru->window_start = now;
  return lru;
}

void gv_logf(gv_log *lg, gv_log_level level, const char *fmt, ...) {
  va_list ap;
  int write = 1;

  if (!gv_log_on(lg, level))
    return;
  if (lg->limited) {
    int64_t now = lg->now_ms();
    gv_log_site *s;

    pthread_mutex_lock(&lg->mu);
    s = site_of(lg, fmt, now);
    s->last = now;
    if (now - s->window_start >= lg->window_ms) {
      report(lg, s);
      s->window_start = now;
      s->lines = 0;
    }
    if (s->lines < lg->burst)
      s->lines++;
    else {
      s->suppressed++;
      write = 0;
    }
    pthread_mutex_unlock(&lg->mu);
  }
  if (write) {
    va_start(ap, fmt);
    emit(lg, level, fmt, ap);
    va_end(ap);
  }
}

void gv_log_flush(gv_log *lg) {
  if (!lg->limited || lg->out == NULL)
    return;
  pthread_mutex_lock(&lg->mu);
  for (size_t i = 0; i < GV_LOG_SITES; i++)
    if (lg->sites[i].fmt != NULL)
      report(lg, &lg->sites[i]);
  pthread_mutex_unlock(&lg->mu);
}

void gv_log_done(gv_log *lg) {
  if (!lg->limited)
    return;
  gv_log_flush(lg);
  pthread_mutex_destroy(&lg->mu);
  lg->limited = 0;
}

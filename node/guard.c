/* Entry guards for silent nodes: see guard.h for the contract and
 * docs/NODE.md "Privacy" for why.
 *
 * Guard life:  eligible cand -> chosen (update: score-weighted draw,
 *              lifetime drawn) -> { reached | failed: down_since set }
 *              -> dropped (update) when gone from the table, down for
 *              down_ms, or expired -> its slot refilled by the same draw.
 */
#include "guard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "oom.h"

#define DAY_MS (24LL * 3600000)

void gv_guard_cfg_default(gv_guard_cfg *cfg, unsigned count) {
  cfg->count = count;
  cfg->min_age_ms = 3600000;
  cfg->down_ms = 3600000;
  cfg->life_min_ms = 30 * DAY_MS;
  cfg->life_max_ms = 60 * DAY_MS;
}

int gv_guards_init(gv_guards *g, const gv_guard_cfg *cfg) {
  memset(g, 0, sizeof(*g));
  if (cfg->count == 0 || cfg->count > GV_GUARDS_MAX || cfg->min_age_ms < 0 ||
      cfg->down_ms < 0 || cfg->life_min_ms <= 0 ||
      cfg->life_max_ms < cfg->life_min_ms)
    return GV_EINVAL;
  g->cfg = *cfg;
  return 0;
}

gv_guard *gv_guards_find(gv_guards *g, const uint8_t *id) {
  for (size_t i = 0; i < g->n; i++)
    if (memcmp(g->set[i].id, id, GV_ID_BYTES) == 0)
      return &g->set[i];
  return NULL;
}

bool gv_guards_has(const gv_guards *g, const uint8_t *id) {
  return gv_guards_find((gv_guards *)g, id) != NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median score of cands (the mean of the two middle ones for an even
 * count). */
static double median_score(const gv_guard_cand *cands, size_t n) {
  double *v, m;

  if (n == 0)
    return 0;
  v = gv__xmalloc(n * sizeof(*v));
  for (size_t i = 0; i < n; i++)
    v[i] = cands[i].score;
  qsort(v, n, sizeof(*v), cmp_double);
  m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  free(v);
  return m;
}

static bool eligible(const gv_guard_cfg *cfg, const gv_guard_cand *c,
                     double median, int64_t now) {
  return c->score >= median &&
         (c->bootstrap || now - c->first_seen >= cfg->min_age_ms);
}

static bool in_cands(const uint8_t *id, const gv_guard_cand *cands, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(cands[i].id, id, GV_ID_BYTES) == 0)
      return true;
  return false;
}

static bool must_go(const gv_guards *g, const gv_guard *gd, int64_t now) {
  return now >= gd->expires_at ||
         (gd->down_since > 0 && now - gd->down_since >= g->cfg.down_ms);
}

/* Adds one guard drawn among the eligible cands not already held, with
 * probability proportional to score (+1, so a zero score still counts).
 * Returns false when none is left. */
static bool pick_one(gv_guards *g, const gv_guard_cand *cands, size_t n,
                     double median, gv_rng *rng, int64_t now) {
  double total = 0, x;
  size_t last = SIZE_MAX;
  gv_guard *gd;

  for (size_t i = 0; i < n; i++)
    if (eligible(&g->cfg, &cands[i], median, now) &&
        !gv_guards_has(g, cands[i].id))
      total += cands[i].score + 1;
  if (total <= 0)
    return false;
  x = gv_rng_unit(rng) * total;
  for (size_t i = 0; i < n; i++) {
    if (!eligible(&g->cfg, &cands[i], median, now) ||
        gv_guards_has(g, cands[i].id))
      continue;
    last = i;
    if ((x -= cands[i].score + 1) < 0)
      break;
  }
  gd = &g->set[g->n++];
  memset(gd, 0, sizeof(*gd));
  memcpy(gd->id, cands[last].id, GV_ID_BYTES);
  gd->chosen_at = now;
  gd->expires_at =
      now + g->cfg.life_min_ms +
      (int64_t)gv_rng_below(
          rng, (uint64_t)(g->cfg.life_max_ms - g->cfg.life_min_ms) + 1);
  return true;
}

bool gv_guards_update(gv_guards *g, const gv_guard_cand *cands, size_t n,
                      gv_rng *rng, int64_t now) {
  bool changed = false;
  double median;

  /* Gone from the table (expired, evicted, silent now) counts as down:
   * the guard goes only after down_ms, so a table flood or a missed
   * re-announce cannot rotate it out at once. */
  for (size_t i = 0; i < g->n; i++)
    if (!in_cands(g->set[i].id, cands, n))
      changed |= gv_guards_failed(g, g->set[i].id, now);
  for (size_t i = 0; i < g->n;)
    if (must_go(g, &g->set[i], now)) {
      /* Keep the order of the rest: it is the order of preference. */
      memmove(&g->set[i], &g->set[i + 1], (g->n - i - 1) * sizeof(gv_guard));
      g->n--;
      changed = true;
    } else {
      i++;
    }
  if (g->n >= g->cfg.count)
    return changed;
  median = median_score(cands, n);
  while (g->n < g->cfg.count && pick_one(g, cands, n, median, rng, now))
    changed = true;
  return changed;
}

bool gv_guards_failed(gv_guards *g, const uint8_t *id, int64_t now) {
  gv_guard *gd = gv_guards_find(g, id);

  if (gd == NULL || gd->down_since > 0)
    return false;
  gd->down_since = now > 0 ? now : 1; /* 0 means "not down" */
  return true;
}

bool gv_guards_reached(gv_guards *g, const uint8_t *id) {
  gv_guard *gd = gv_guards_find(g, id);

  if (gd == NULL || gd->down_since == 0)
    return false;
  gd->down_since = 0;
  return true;
}

int gv_guards_restore(gv_guards *g, const gv_guard *saved, int64_t now) {
  gv_guard *gd;

  if (gv_guards_has(g, saved->id))
    return GV_EINVAL;
  if (g->n >= g->cfg.count)
    return GV_ELIMIT;
  gd = &g->set[g->n++];
  *gd = *saved;
  if (gd->down_since != 0)
    gd->down_since = now > 0 ? now : 1;
  return 0;
}

size_t gv_guard_format(const gv_guard *g, char *buf, size_t cap) {
  char hex[GV_ID_HEX_LEN + 1];
  int n;

  gv_id_to_hex(g->id, hex);
  n = snprintf(buf, cap, "%s %" PRId64 " %" PRId64 " %" PRId64 "\n", hex,
               g->chosen_at, g->expires_at, g->down_since);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A decimal int64 at *p (no sign but '-', no blanks), ending at end or a
 * space; advances *p past it and one space. */
static int parse_i64(const char **p, const char *end, int64_t *out) {
  char tmp[24], *stop;
  size_t k = 0;
  long long v;

  while (*p + k < end && (*p)[k] != ' ' && k < sizeof(tmp) - 1) {
    tmp[k] = (*p)[k];
    k++;
  }
  if (k == 0 || (*p + k < end && (*p)[k] != ' '))
    return -1;
  tmp[k] = '\0';
  if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
    return -1;
  errno = 0;
  v = strtoll(tmp, &stop, 10);
  if (errno != 0 || *stop != '\0')
    return -1;
  *out = v;
  *p += k + (*p + k < end);
  return 0;
}

int gv_guard_parse(gv_guard *g, const char *line, size_t len, gv_why *why) {
  const char *p = line + GV_ID_HEX_LEN + 1, *end = line + len;

  memset(g, 0, sizeof(*g));
  if (len < GV_ID_HEX_LEN + 1 || len >= GV_GUARD_LINE_MAX ||
      line[GV_ID_HEX_LEN] != ' ' ||
      gv_id_from_hex(g->id, line, GV_ID_HEX_LEN) < 0)
    return gv_fail(why, GV_EFIELD, "a guard line starts with a 64-hex id");
  if (parse_i64(&p, end, &g->chosen_at) < 0 ||
      parse_i64(&p, end, &g->expires_at) < 0 ||
      parse_i64(&p, end, &g->down_since) < 0 || p != end ||
      line[len - 1] == ' ')
    return gv_fail(why, GV_EFIELD,
                   "a guard line is: id chosen_at expires_at down_since");
  if (g->chosen_at >= g->expires_at || g->down_since < 0)
    return gv_fail(why, GV_EFIELD, "a guard's times are out of order");
  return 0;
}

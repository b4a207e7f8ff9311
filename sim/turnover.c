/* grapevine-sim --scenario turnover: see turnover.h for the model.
 *
 * Run:  form (5 s) -> warm-up (60 s: every node announces once)
 *       -> the equilibrium start (down nodes killed)
 *       -> every virtual second: measure the broadcast whose window ends,
 *          sample the tables, churn (kill / restart), re-announce, start
 *          the next broadcast
 *       -> report per broadcast and per sample; CSV and plots with --out.
 */
#include "turnover.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oom.h"
#include "simout.h"

#define FORM_MS 5000
#define TICK_MS 1000 /* churn and announces happen on this grid */
#define WARM_MS 60000
/* node/daemon.c: the first announcement 1 s after the first link, then
 * every 30 min (ANNOUNCE_DELAY_MS, REANNOUNCE_MS). */
#define ANNOUNCE_DELAY_MS 1000
#define REANNOUNCE_MS (30 * 60000LL)

typedef struct bcast {
  int64_t t; /* ms since the start of the churn */
  uint32_t origin, eligible;
  double reliability, p99;
  unsigned ldh;
} bcast;

typedef struct sample {
  int64_t t;
  uint32_t live, live_b, observed;
  double fresh_mean, fresh_p10, stale_mean, table_mean;
} sample;

typedef struct idx_key {
  uint64_t k; /* the id's first 8 bytes */
  uint32_t i;
} idx_key;

typedef struct turn {
  const gv_turnover_opts *to;
  gv_sim *s;
  gv_rng rng;
  uint32_t n;
  int64_t *next_change, *changed_at, *announce_at;
  bool *first_announce; /* restarted: announce 1 s after the first link */
  idx_key *ids;         /* sorted by k: a table entry's node */
  uint32_t *obs;
  uint32_t n_obs;
  double *buf; /* n_obs freshness values, or N latencies */
  bcast *bc;
  size_t n_bc, cap_bc;
  sample *sm;
  size_t n_sm, cap_sm;
  uint64_t leaves, returns; /* during the run */
  uint32_t down_at_start;
  /* the broadcast in flight */
  bool in_flight;
  int64_t bc_at;
  uint32_t bc_origin;
} turn;

/* Progress lines on stderr: about ten per run, on the tick grid. */
static int64_t report_ms(int64_t duration_ms) {
  int64_t step = duration_ms / 10 / TICK_MS * TICK_MS;
  return step > TICK_MS ? step : TICK_MS;
}

/* ---- sessions ---- */

/* U in (0, 1]: safe under log and negative powers. */
static double unit_open(gv_rng *r) { return 1.0 - gv_rng_unit(r); }

static double exp_ms(gv_rng *r, double mean) {
  return -mean * log(unit_open(r));
}

static double normal(gv_rng *r) {
  return sqrt(-2 * log(unit_open(r))) * cos(2 * M_PI * gv_rng_unit(r));
}

/* Gamma(a, 1) for a >= 1 (Marsaglia and Tsang, 2000). */
static double gamma_draw(gv_rng *r, double a) {
  double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
  for (;;) {
    double x = normal(r), v = 1 + c * x;
    if (v <= 0)
      continue;
    v = v * v * v;
    if (log(unit_open(r)) < 0.5 * x * x + d - d * v + d * log(v))
      return d * v;
  }
}

/* The distribution's scale for the asked mean: Weibull lambda, or the
 * Pareto minimum x_m. */
static double scale(const gv_turnover_opts *to) {
  double k = to->shape, m = to->session_mean_ms;
  return to->dist == GV_SESSION_WEIBULL ? m / tgamma(1 + 1 / k)
                                        : m * (k - 1) / k;
}

static double session_ms(const gv_turnover_opts *to, gv_rng *r) {
  double k = to->shape, sc = scale(to);
  return to->dist == GV_SESSION_WEIBULL ? sc * pow(-log(unit_open(r)), 1 / k)
                                        : sc * pow(unit_open(r), -1 / k);
}

/* What remains of the session an up node is in at a random moment: a
 * fraction U of a length-biased session (density x f(x) / mean). For
 * Weibull, (L/lambda)^k is Gamma(1 + 1/k); for Pareto, L is Pareto with
 * shape alpha - 1. */
static double residual_ms(const gv_turnover_opts *to, gv_rng *r) {
  double k = to->shape, sc = scale(to), len;
  len = to->dist == GV_SESSION_WEIBULL
            ? sc * pow(gamma_draw(r, 1 + 1 / k), 1 / k)
            : sc * pow(unit_open(r), -1 / (k - 1));
  return gv_rng_unit(r) * len;
}

/* Whole ticks, at least one, and never past INT64_MAX / 4. */
static int64_t after(int64_t t, double ms) {
  double ticks = ceil(ms / TICK_MS);
  if (ticks < 1)
    ticks = 1;
  if (ticks > 1e12)
    return INT64_MAX / 4;
  return t + (int64_t)ticks * TICK_MS;
}

/* ---- tables ---- */

static uint64_t key_of(const uint8_t *id) {
  uint64_t k;
  memcpy(&k, id, sizeof(k));
  return k;
}

static int cmp_key(const void *a, const void *b) {
  const idx_key *x = a, *y = b;
  return (x->k > y->k) - (x->k < y->k);
}

/* The node an id names, or UINT32_MAX if none. */
static uint32_t node_of(const turn *t, const uint8_t *id) {
  size_t lo = 0, hi = t->n;
  uint64_t k = key_of(id);
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (t->ids[mid].k < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (; lo < t->n && t->ids[lo].k == k; lo++)
    if (memcmp(t->s->nodes[t->ids[lo].i].id.pk, id, GV_ID_BYTES) == 0)
      return t->ids[lo].i;
  return UINT32_MAX;
}

static void sample_tables(turn *t, int64_t at) {
  gv_sim *s = t->s;
  sample m = {.t = at};
  double stale = 0, size = 0, sum = 0;

  for (uint32_t i = 0; i < t->n; i++)
    if (!s->nodes[i].dead) {
      m.live++;
      m.live_b += !s->nodes[i].silent;
    }
  for (uint32_t k = 0; k < t->n_obs; k++) {
    uint32_t o = t->obs[k], known = 0, others;
    const gv_sim_node *on = &s->nodes[o];
    const gv_peer_entry *p;
    if (on->dead)
      continue;
    for (size_t e = 0; (p = gv_engine_table_at(on->e, e)) != NULL; e++) {
      uint32_t j = node_of(t, p->id);
      size++;
      if (j == UINT32_MAX)
        continue;
      if (s->nodes[j].dead)
        stale++;
      else if (!s->nodes[j].silent && j != o)
        known++;
    }
    others = m.live_b - !on->silent;
    t->buf[m.observed++] = others ? (double)known / others : 1;
  }
  qsort(t->buf, m.observed, sizeof(double), gv_sim_cmp_double);
  for (uint32_t k = 0; k < m.observed; k++)
    sum += t->buf[k];
  if (m.observed > 0) {
    m.fresh_mean = sum / m.observed;
    m.fresh_p10 = gv_sim_pct(t->buf, m.observed, 0.10);
    m.stale_mean = stale / m.observed;
    m.table_mean = size / m.observed;
  }
  if (t->n_sm == t->cap_sm) {
    t->cap_sm = t->cap_sm ? 2 * t->cap_sm : 64;
    t->sm = realloc(t->sm, t->cap_sm * sizeof(*t->sm));
    if (t->sm == NULL) {
      fprintf(stderr, "grapevine-sim: out of memory\n");
      exit(1);
    }
  }
  t->sm[t->n_sm++] = m;
}

/* ---- broadcasts ---- */

/* A random live node with a link (one that just came back and has none
 * has nobody to tell); false if there is none. */
static bool pick_origin(turn *t, uint32_t *out) {
  uint32_t start = (uint32_t)gv_rng_below(&t->rng, t->n);
  for (uint32_t k = 0; k < t->n; k++) {
    uint32_t i = (start + k) % t->n;
    const gv_sim_node *n = &t->s->nodes[i];
    if (!n->dead && gv_engine_link_count(n->e) > 0) {
      *out = i;
      return true;
    }
  }
  return false;
}

static void start_bcast(turn *t, int64_t t0) {
  gv_sim *s = t->s;
  uint8_t id[GV_MSG_ID_BYTES];
  uint32_t o;

  if (!pick_origin(t, &o))
    return;
  gv_engine_announce(s->nodes[o].e, id, s->now);
  gv_sim_track(s, id);
  s->nodes[o].delivered_at = s->now;
  s->nodes[o].hops = 0;
  gv_sim_drain(s, o);
  t->in_flight = true;
  t->bc_at = s->now - t0;
  t->bc_origin = o;
}

/* The broadcast in flight, over the nodes up since before it began. */
static void end_bcast(turn *t, int64_t t0) {
  gv_sim *s = t->s;
  bcast b = {.t = t->bc_at, .origin = t->bc_origin};
  uint32_t got = 0;
  size_t n_lat = 0;

  if (!t->in_flight)
    return;
  t->in_flight = false;
  for (uint32_t i = 0; i < t->n; i++) {
    const gv_sim_node *n = &s->nodes[i];
    if (n->dead || t->changed_at[i] > t0 + t->bc_at)
      continue;
    b.eligible++;
    if (n->delivered_at < 0)
      continue;
    got++;
    if (n->hops > b.ldh)
      b.ldh = n->hops;
    if (n->hops > 0)
      t->buf[n_lat++] = (double)(n->delivered_at - s->tracked_at);
  }
  qsort(t->buf, n_lat, sizeof(double), gv_sim_cmp_double);
  b.p99 = gv_sim_pct(t->buf, n_lat, 0.99);
  b.reliability = b.eligible ? (double)got / b.eligible : 0;
  if (t->n_bc == t->cap_bc) {
    t->cap_bc = t->cap_bc ? 2 * t->cap_bc : 64;
    t->bc = realloc(t->bc, t->cap_bc * sizeof(*t->bc));
    if (t->bc == NULL) {
      fprintf(stderr, "grapevine-sim: out of memory\n");
      exit(1);
    }
  }
  t->bc[t->n_bc++] = b;
}

/* ---- churn ---- */

static void churn(turn *t, int64_t now) {
  gv_sim *s = t->s;
  const gv_turnover_opts *to = t->to;

  for (uint32_t i = 0; i < t->n; i++) {
    gv_sim_node *n = &s->nodes[i];
    if (t->next_change[i] <= now) {
      t->changed_at[i] = now;
      if (n->dead) {
        gv_sim_restart(s, i, s->cfg.candidates);
        gv_sim_drain(s, i);
        t->returns++;
        t->next_change[i] = after(now, session_ms(to, &t->rng));
        t->announce_at[i] = INT64_MAX;
        t->first_announce[i] = true;
      } else {
        gv_sim_kill(s, i);
        t->leaves++;
        t->next_change[i] = after(now, exp_ms(&t->rng, to->downtime_mean_ms));
      }
    }
    if (n->dead)
      continue;
    if (t->first_announce[i] && gv_engine_link_count(n->e) > 0) {
      t->first_announce[i] = false;
      t->announce_at[i] = now + ANNOUNCE_DELAY_MS;
    }
    if (t->announce_at[i] <= now) {
      gv_engine_announce(n->e, NULL, s->now);
      gv_sim_drain(s, i);
      t->announce_at[i] += REANNOUNCE_MS;
    }
  }
}

/* ---- output ---- */

static const char *dist_name(gv_session_dist d) {
  return d == GV_SESSION_WEIBULL ? "weibull" : "pareto";
}

static void write_csv(const turn *t) {
  const char *dir = t->to->out;
  size_t cap = 256 + (t->n_bc + t->n_sm) * 128, off;
  char *buf = gv__xmalloc(cap);

  mkdir(dir, 0755);
  off = (size_t)snprintf(buf, cap,
                         "t_s,origin,eligible,reliability,ldh,"
                         "p99_ms\n");
  for (size_t k = 0; k < t->n_bc; k++) {
    const bcast *b = &t->bc[k];
    off += (size_t)snprintf(buf + off, cap - off, "%lld,%u,%u,%.6f,%u,%.0f\n",
                            (long long)(b->t / 1000), b->origin, b->eligible,
                            b->reliability, b->ldh, b->p99);
  }
  gv_sim_write_file(dir, "broadcasts.csv", buf);
  off = (size_t)snprintf(buf, cap,
                         "t_s,live,freshness_mean,freshness_p10,"
                         "stale_mean,table_mean\n");
  for (size_t k = 0; k < t->n_sm; k++) {
    const sample *m = &t->sm[k];
    off +=
        (size_t)snprintf(buf + off, cap - off, "%lld,%u,%.6f,%.6f,%.3f,%.3f\n",
                         (long long)(m->t / 1000), m->live, m->fresh_mean,
                         m->fresh_p10, m->stale_mean, m->table_mean);
  }
  gv_sim_write_file(dir, "tables.csv", buf);
  free(buf);
  gv_sim_write_file(
      dir, "turnover_reliability.gp",
      "set terminal svg size 800,400\nset output 'turnover_reliability.svg'\n"
      "set datafile separator ','\nset key off\nset grid\n"
      "set xlabel 'simulated seconds'\nset ylabel 'reliability (nodes up "
      "for the whole window)'\nset yrange [0:1.02]\n"
      "plot 'broadcasts.csv' every ::1 using 1:4 with linespoints pt 7 ps "
      "0.4\n");
  gv_sim_plot(dir, "turnover_reliability");
  gv_sim_write_file(
      dir, "turnover_tables.gp",
      "set terminal svg size 800,400\nset output 'turnover_tables.svg'\n"
      "set datafile separator ','\nset key bottom right\nset grid\n"
      "set xlabel 'simulated seconds'\nset ylabel 'freshness'\n"
      "set yrange [0:1.02]\nset y2label 'stale entries per node'\n"
      "set y2tics\nset ytics nomirror\nset y2range [0:*]\n"
      "plot 'tables.csv' every ::1 using 1:3 with lines lw 2 title "
      "'freshness mean', '' every ::1 using 1:4 with lines lw 2 title "
      "'freshness p10', '' every ::1 using 1:5 axes x1y2 with lines lw 2 "
      "title 'stale entries (right)'\n");
  gv_sim_plot(dir, "turnover_tables");
}

static double r4(double x) { return round(x * 10000) / 10000; }

static void report(const turn *t, const gv_sim_cfg *cfg, double wall) {
  const gv_turnover_opts *to = t->to;
  const gv_sim *s = t->s;
  cJSON *j = cJSON_CreateObject(), *o;
  double *v = gv__xmalloc((t->n_bc + t->n_sm + 1) * sizeof(double));
  double sum = 0, full = 0, fsum = 0, lsum = 0, ssum = 0;
  unsigned ldh = 0;
  char *txt;

  cJSON_AddStringToObject(j, "scenario", "turnover");
  cJSON_AddNumberToObject(j, "nodes", cfg->nodes);
  cJSON_AddNumberToObject(j, "seed", (double)cfg->seed);
  cJSON_AddNumberToObject(j, "silent_frac", cfg->silent_frac);
  cJSON_AddBoolToObject(j, "stub_sigs", cfg->stub_sigs);
  cJSON_AddStringToObject(j, "session_dist", dist_name(to->dist));
  cJSON_AddNumberToObject(j, "session_shape", to->shape);
  cJSON_AddNumberToObject(j, "session_mean_s", to->session_mean_ms / 1000);
  cJSON_AddNumberToObject(j, "downtime_mean_s", to->downtime_mean_ms / 1000);
  cJSON_AddNumberToObject(j, "duration_min", (double)to->duration_ms / 60000.0);
  cJSON_AddNumberToObject(j, "bcast_every_s",
                          (double)to->bcast_every_ms / 1000.0);
  cJSON_AddNumberToObject(j, "sample_every_s",
                          (double)to->sample_every_ms / 1000.0);
  cJSON_AddNumberToObject(j, "observers", t->n_obs);
  cJSON_AddNumberToObject(j, "down_at_start", t->down_at_start);
  cJSON_AddNumberToObject(j, "leaves", (double)t->leaves);
  cJSON_AddNumberToObject(j, "returns", (double)t->returns);

  o = cJSON_AddObjectToObject(j, "broadcasts");
  for (size_t k = 0; k < t->n_bc; k++) {
    v[k] = t->bc[k].reliability;
    sum += v[k];
    full += v[k] == 1;
    if (t->bc[k].ldh > ldh)
      ldh = t->bc[k].ldh;
  }
  qsort(v, t->n_bc, sizeof(double), gv_sim_cmp_double);
  cJSON_AddNumberToObject(o, "count", (double)t->n_bc);
  cJSON_AddNumberToObject(o, "reliability_mean",
                          r4(t->n_bc ? sum / t->n_bc : 0));
  cJSON_AddNumberToObject(o, "reliability_min", r4(t->n_bc ? v[0] : 0));
  cJSON_AddNumberToObject(o, "reliability_p10",
                          r4(gv_sim_pct(v, t->n_bc, 0.10)));
  cJSON_AddNumberToObject(o, "complete", r4(t->n_bc ? full / t->n_bc : 0));
  cJSON_AddNumberToObject(o, "ldh_max", ldh);
  for (size_t k = 0; k < t->n_bc; k++)
    v[k] = t->bc[k].p99;
  qsort(v, t->n_bc, sizeof(double), gv_sim_cmp_double);
  cJSON_AddNumberToObject(o, "p99_ms_median", gv_sim_pct(v, t->n_bc, 0.5));
  cJSON_AddNumberToObject(o, "p99_ms_max", t->n_bc ? v[t->n_bc - 1] : 0);

  o = cJSON_AddObjectToObject(j, "tables");
  for (size_t k = 0; k < t->n_sm; k++) {
    fsum += t->sm[k].fresh_mean;
    lsum += (double)t->sm[k].live / t->n;
    ssum += t->sm[k].stale_mean;
  }
  cJSON_AddNumberToObject(o, "samples", (double)t->n_sm);
  cJSON_AddNumberToObject(o, "live_share_mean",
                          r4(t->n_sm ? lsum / t->n_sm : 0));
  cJSON_AddNumberToObject(o, "freshness_mean",
                          r4(t->n_sm ? fsum / t->n_sm : 0));
  cJSON_AddNumberToObject(o, "stale_mean", r4(t->n_sm ? ssum / t->n_sm : 0));
  if (t->n_sm > 0) {
    const sample *m = &t->sm[t->n_sm - 1];
    cJSON_AddNumberToObject(o, "end_live", m->live);
    cJSON_AddNumberToObject(o, "end_freshness_mean", r4(m->fresh_mean));
    cJSON_AddNumberToObject(o, "end_freshness_p10", r4(m->fresh_p10));
    cJSON_AddNumberToObject(o, "end_stale_mean", r4(m->stale_mean));
    cJSON_AddNumberToObject(o, "end_table_mean", r4(m->table_mean));
  }
  cJSON_AddNumberToObject(j, "ip_leaks", (double)s->ip_leaks);
  cJSON_AddNumberToObject(j, "links_made", s->n_links);
  cJSON_AddNumberToObject(j, "frames", (double)s->frames);
  cJSON_AddNumberToObject(j, "events", (double)s->events);
  if (to->timing)
    cJSON_AddNumberToObject(j, "wall_s", round(wall * 1000) / 1000);
  txt = to->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  free(v);
  cJSON_Delete(j);
}

/* ---- the run ---- */

int gv_turnover_run(const gv_sim_cfg *base, const gv_turnover_opts *to) {
  gv_sim_cfg cfg = *base;
  gv_engine_cfg ec;
  turn t;
  struct timespec ts0, ts1;
  int64_t t0, end;
  double p_up;
  int rc = 0;
  bool any = false;

  memset(&t, 0, sizeof(t));
  t.to = to;
  t.n = cfg.nodes;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  /* The engines' real intervals. */
  gv_engine_cfg_default(&ec);
  cfg.heartbeat_ms = ec.heartbeat_ms;
  cfg.shuffle_ms = ec.shuffle_ms;
  if (gv_sim_new(&t.s, &cfg) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  /* Its own stream, apart from the network's. */
  gv_rng_seed(&t.rng, cfg.seed ^ 0x7475726e6f766572ULL); /* "turnover" */
  t.n_obs = to->observers < t.n ? to->observers : t.n;
  t.next_change = calloc(t.n, sizeof(int64_t));
  t.changed_at = calloc(t.n, sizeof(int64_t));
  t.announce_at = calloc(t.n, sizeof(int64_t));
  t.first_announce = calloc(t.n, sizeof(bool));
  t.ids = calloc(t.n, sizeof(idx_key));
  t.obs = calloc(t.n_obs, sizeof(uint32_t));
  t.buf = calloc(t.n + 1, sizeof(double));
  if (t.next_change == NULL || t.changed_at == NULL || t.announce_at == NULL ||
      t.first_announce == NULL || t.ids == NULL || t.obs == NULL ||
      t.buf == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    rc = 1;
    goto out;
  }
  for (uint32_t i = 0; i < t.n; i++) {
    bool silent = gv_rng_unit(&t.s->rng) < cfg.silent_frac;
    if (i == t.n - 1 && !any)
      silent = false; /* someone must accept links */
    any |= !silent;
    gv_sim_add_node(t.s, silent);
    t.ids[i] = (idx_key){key_of(t.s->nodes[i].id.pk), i};
  }
  qsort(t.ids, t.n, sizeof(idx_key), cmp_key);
  /* Observers: spread evenly over the nodes, the same for every seed. */
  for (uint32_t k = 0; k < t.n_obs; k++)
    t.obs[k] = (uint32_t)((uint64_t)k * t.n / t.n_obs);
  for (uint32_t i = 0; i < t.n; i++)
    gv_sim_seed_candidates(t.s, i, cfg.candidates);
  gv_sim_run_until(t.s, t.s->now + FORM_MS);
  /* Warm-up: each node announces once, as the daemon does after its first
   * link, spread over WARM_MS; the tables fill as in a network that has
   * run for a while. */
  for (uint32_t i = 0; i < t.n; i++)
    t.announce_at[i] =
        t.s->now + TICK_MS * (int64_t)gv_rng_below(&t.rng, WARM_MS / TICK_MS);
  for (int64_t now = t.s->now, w_end = now + WARM_MS; now < w_end;
       now += TICK_MS) {
    gv_sim_run_until(t.s, now);
    for (uint32_t i = 0; i < t.n; i++)
      if (t.announce_at[i] <= now) {
        gv_engine_announce(t.s->nodes[i].e, NULL, now);
        gv_sim_drain(t.s, i);
        t.announce_at[i] = INT64_MAX;
      }
  }
  gv_sim_run_until(t.s, t.s->now + TICK_MS);
  if (!gv_sim_checked(t.s, t.to->argc, t.to->argv)) {
    rc = 3;
    goto out;
  }
  t0 = t.s->now;
  end = t0 + to->duration_ms;
  /* Churn equilibrium: up with probability S / (S + D). */
  p_up = to->session_mean_ms / (to->session_mean_ms + to->downtime_mean_ms);
  for (uint32_t i = 0; i < t.n; i++) {
    if (gv_rng_unit(&t.rng) < p_up) {
      t.next_change[i] = after(t0, residual_ms(to, &t.rng));
      t.announce_at[i] = t0 + (int64_t)gv_rng_below(&t.rng, REANNOUNCE_MS);
    } else {
      gv_sim_kill(t.s, i);
      t.down_at_start++;
      t.next_change[i] = after(t0, exp_ms(&t.rng, to->downtime_mean_ms));
      t.announce_at[i] = INT64_MAX;
    }
    t.changed_at[i] = t0;
  }
  for (int64_t now = t0; now <= end; now += TICK_MS) {
    gv_sim_run_until(t.s, now);
    if ((now - t0) % to->bcast_every_ms == 0)
      end_bcast(&t, t0);
    if ((now - t0) % to->sample_every_ms == 0)
      sample_tables(&t, now - t0);
    if ((now - t0) % report_ms(to->duration_ms) == 0)
      fprintf(stderr,
              "grapevine-sim: turnover +%lld s of %lld: %zu broadcasts, "
              "%llu leaves, %llu events\n",
              (long long)((now - t0) / 1000),
              (long long)(to->duration_ms / 1000), t.n_bc,
              (unsigned long long)t.leaves, (unsigned long long)t.s->events);
    if (now == end)
      break;
    churn(&t, now);
    if ((now - t0) % to->bcast_every_ms == 0 && now + to->bcast_every_ms <= end)
      start_bcast(&t, t0);
  }
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  if (!gv_sim_checked(t.s, t.to->argc, t.to->argv)) {
    rc = 3;
    goto out;
  }
  report(&t, &cfg,
         (double)(ts1.tv_sec - ts0.tv_sec) +
             (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9);
  if (to->out != NULL)
    write_csv(&t);
out:
  free(t.next_change);
  free(t.changed_at);
  free(t.announce_at);
  free(t.first_announce);
  free(t.ids);
  free(t.obs);
  free(t.buf);
  free(t.bc);
  free(t.sm);
  gv_sim_free(t.s);
  return rc;
}

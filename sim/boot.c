/* grapevine-sim --scenario cold-boot, and the upload cap's report: see
 * boot.h for the model.
 *
 * Run:  add every node at t = 0, each with the B bootstrap nodes as its
 *       only candidates
 *       -> every 250 ms: sample links, tables and the bootstrap nodes'
 *          load; at 5, 10, 30 s a broadcast; 20 s after each, its
 *          reliability
 *       -> report when the network formed and what each broadcast reached.
 */
#include "boot.h"
#include "simout.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SAMPLE_MS 250
#define STEP_MS 50 /* announcements are checked this often */
/* As the daemon (node/daemon.c): a node announces its record this long
 * after its first link came up, to gather more links first. */
#define ANNOUNCE_DELAY_MS 1000
#define HORIZON_MS 20000 /* a broadcast's reliability is read this late */
#define N_BCAST 3

static const int64_t bcast_at[N_BCAST] = {5000, 10000, 30000};

typedef struct sample {
  int64_t t; /* ms since the boot */
  double linked, at_target, mean_links, mean_table;
  uint32_t boot_links_max;
  double boot_links_mean;
  uint64_t refused, evicted; /* at the bootstrap nodes, so far */
  double reached[N_BCAST];   /* share of nodes that delivered it so far */
} sample;

typedef struct bcast {
  uint8_t id[GV_MSG_ID_BYTES];
  uint32_t origin;
  int64_t *got;    /* per node: delivery time (virtual ms), -1: not yet */
  uint32_t n_got;  /* nodes that delivered it, origin included */
  int64_t full_ms; /* from sending until every node had it; -1: never */
  double reliability, p50, p90, p99, max; /* at HORIZON_MS */
} bcast;

typedef struct boot {
  gv_sim *s;
  uint32_t n;
  uint32_t *waiting;    /* nodes that have not announced yet */
  int64_t *announce_at; /* per node; INT64_MAX: no link yet */
  uint32_t n_waiting;
  int sent;
  bcast b[N_BCAST];
  sample *sm;
  size_t n_sm;
} boot;

static void on_deliver(void *ctx, uint32_t i, const uint8_t *id) {
  boot *bt = ctx;
  for (int k = 0; k < bt->sent; k++) {
    bcast *b = &bt->b[k];
    if (b->got[i] < 0 && memcmp(id, b->id, GV_MSG_ID_BYTES) == 0) {
      b->got[i] = bt->s->now;
      b->n_got++;
    }
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The p-th percentile of v[0..n) (sorted), nearest rank; 0 if empty. */
static double pct(const int64_t *v, size_t n, double p) {
  size_t k;
  if (n == 0)
    return 0;
  k = (size_t)ceil(p * (double)n) - 1;
  return (double)v[k < n ? k : n - 1];
}

/* Reliability and latency of broadcast k, HORIZON_MS after it was sent. */
static void read_bcast(boot *bt, int k, int64_t *lat) {
  bcast *b = &bt->b[k];
  int64_t sent = bt->s->now - HORIZON_MS;
  size_t m = 0;

  for (uint32_t i = 0; i < bt->n; i++)
    if (b->got[i] >= 0 && i != b->origin)
      lat[m++] = b->got[i] - sent;
  qsort(lat, m, sizeof(*lat), cmp_i64);
  b->reliability = (double)b->n_got / bt->n;
  b->p50 = pct(lat, m, 0.50);
  b->p90 = pct(lat, m, 0.90);
  b->p99 = pct(lat, m, 0.99);
  b->max = m ? (double)lat[m - 1] : 0;
}

static void take_sample(boot *bt, int64_t t, unsigned nb, unsigned target) {
  gv_sim *s = bt->s;
  sample *x = &bt->sm[bt->n_sm++];
  uint64_t links = 0, table = 0, boot_links = 0;
  uint32_t linked = 0, at_target = 0;

  memset(x, 0, sizeof(*x));
  x->t = t;
  for (uint32_t i = 0; i < bt->n; i++) {
    size_t l = gv_engine_link_count(s->nodes[i].e);
    links += l;
    table += gv_engine_table_size(s->nodes[i].e);
    linked += l >= 1;
    at_target += l >= target;
    if (i < nb) {
      const gv_lcore_stats *st = gv_lcore_stats_get(s->nodes[i].lc);
      boot_links += l;
      if (l > x->boot_links_max)
        x->boot_links_max = (uint32_t)l;
      x->refused += st->closed[GV_CLOSE_FULL];
      x->evicted += st->closed[GV_CLOSE_EVICTED];
    }
  }
  x->linked = (double)linked / bt->n;
  x->at_target = (double)at_target / bt->n;
  x->mean_links = (double)links / bt->n;
  x->mean_table = (double)table / bt->n;
  x->boot_links_mean = (double)boot_links / nb;
  for (int k = 0; k < bt->sent; k++)
    x->reached[k] = (double)bt->b[k].n_got / bt->n;
}

/* Each node announces ANNOUNCE_DELAY_MS after its link core first opened a
 * link (as the daemon's on_link_up arms its timer). */
static void announce_due(boot *bt) {
  gv_sim *s = bt->s;
  uint32_t kept = 0;

  for (uint32_t k = 0; k < bt->n_waiting; k++) {
    uint32_t i = bt->waiting[k];
    if (bt->announce_at[i] == INT64_MAX &&
        gv_lcore_stats_get(s->nodes[i].lc)->opened > 0)
      bt->announce_at[i] = s->now + ANNOUNCE_DELAY_MS;
    if (bt->announce_at[i] <= s->now) {
      gv_engine_announce(s->nodes[i].e, NULL, s->now);
      gv_sim_drain(s, i);
    } else
      bt->waiting[kept++] = i;
  }
  bt->n_waiting = kept;
}

/* The first sample time (ms) at which every node had a link (what 0), 99%
 * of them the link target (1), or all of them (2); -1 if none. */
static int64_t first(const boot *bt, int what) {
  for (size_t k = 0; k < bt->n_sm; k++) {
    const sample *x = &bt->sm[k];
    if ((what == 0 && x->linked >= 1) || (what == 1 && x->at_target >= 0.99) ||
        (what == 2 && x->at_target >= 1))
      return x->t;
  }
  return -1;
}

static double r4(double v) { return round(v * 10000) / 10000; }

static void write_boot_csv(const boot *bt, const char *dir) {
  char path[4096];
  FILE *f;

  mkdir(dir, 0755);
  snprintf(path, sizeof(path), "%s/cold_boot.csv", dir);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "t_s,linked,at_target,mean_links,mean_table,boot_links_max,"
             "boot_links_mean,boot_refused,boot_evicted,reached_5s,"
             "reached_10s,reached_30s\n");
  for (size_t k = 0; k < bt->n_sm; k++) {
    const sample *x = &bt->sm[k];
    fprintf(f, "%.2f,%.4f,%.4f,%.3f,%.2f,%u,%.2f,%llu,%llu,%.4f,%.4f,%.4f\n",
            (double)x->t / 1000, x->linked, x->at_target, x->mean_links,
            x->mean_table, x->boot_links_max, x->boot_links_mean,
            (unsigned long long)x->refused, (unsigned long long)x->evicted,
            x->reached[0], x->reached[1], x->reached[2]);
  }
  fclose(f);
  snprintf(path, sizeof(path), "%s/cold_boot.gp", dir);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f,
          "set terminal svg size 800,700\nset output 'cold_boot.svg'\n"
          "set datafile separator ','\nset multiplot layout 2,1\n"
          "set grid\nset key right bottom\nset xlabel 'seconds since every "
          "node started'\nset ylabel 'share of nodes'\nset yrange [0:1.02]\n"
          "plot 'cold_boot.csv' every ::1 using 1:2 with lines lw 2 title "
          "'>= 1 link', '' every ::1 using 1:3 with lines lw 2 title 'at the "
          "link target', '' every ::1 using 1:10 with lines title 'reached: "
          "broadcast at 5 s', '' every ::1 using 1:11 with lines title "
          "'... at 10 s', '' every ::1 using 1:12 with lines title '... at "
          "30 s'\nset autoscale y\nset key right center\nset ylabel 'bootstrap "
          "nodes'\nset y2label 'inbound links refused or evicted (all)'\n"
          "set y2tics\nplot 'cold_boot.csv' every ::1 using 1:6 with lines "
          "lw 2 title 'links, busiest', '' every ::1 using 1:7 with lines "
          "title 'links, mean', '' every ::1 using 1:8 axes x1y2 with lines "
          "title 'refused (full)', '' every ::1 using 1:9 axes x1y2 with "
          "lines title 'evicted'\nunset multiplot\n");
  fclose(f);
  gv_sim_plot(dir, "cold_boot");
}

static cJSON *boot_json(const gv_sim_cfg *cfg, const gv_boot_opts *bo,
                        const boot *bt) {
  static const int64_t at_ms[] = {1000, 2000, 5000, 10000, 30000};
  cJSON *j = cJSON_CreateObject(), *o, *a;
  uint32_t peak = 0;
  const sample *last = &bt->sm[bt->n_sm - 1];

  cJSON_AddStringToObject(j, "scenario", "cold-boot");
  cJSON_AddNumberToObject(j, "nodes", cfg->nodes);
  cJSON_AddNumberToObject(j, "seed", (double)cfg->seed);
  cJSON_AddNumberToObject(j, "bootstraps", bo->bootstraps);
  cJSON_AddNumberToObject(j, "silent_frac", cfg->silent_frac);
  cJSON_AddNumberToObject(j, "active_target", cfg->active_target);
  cJSON_AddNumberToObject(j, "duration_s", (double)bo->duration_ms / 1000);
  o = cJSON_AddObjectToObject(j, "formed_ms");
  cJSON_AddNumberToObject(o, "every_node_linked", (double)first(bt, 0));
  cJSON_AddNumberToObject(o, "at_target_99pct", (double)first(bt, 1));
  cJSON_AddNumberToObject(o, "at_target_all", (double)first(bt, 2));
  a = cJSON_AddArrayToObject(j, "over_time");
  for (size_t k = 0; k < bt->n_sm; k++) {
    const sample *x = &bt->sm[k];
    bool pick = k + 1 == bt->n_sm;
    for (size_t m = 0; m < sizeof(at_ms) / sizeof(at_ms[0]); m++)
      pick |= x->t == at_ms[m];
    if (x->boot_links_max > peak)
      peak = x->boot_links_max;
    if (!pick)
      continue;
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "t_s", (double)x->t / 1000);
    cJSON_AddNumberToObject(o, "linked", r4(x->linked));
    cJSON_AddNumberToObject(o, "at_target", r4(x->at_target));
    cJSON_AddNumberToObject(o, "mean_links", r4(x->mean_links));
    cJSON_AddNumberToObject(o, "mean_table", round(x->mean_table * 100) / 100);
    cJSON_AddNumberToObject(o, "boot_links_max", x->boot_links_max);
    cJSON_AddNumberToObject(o, "boot_refused", (double)x->refused);
    cJSON_AddItemToArray(a, o);
  }
  o = cJSON_AddObjectToObject(j, "bootstrap_load");
  cJSON_AddNumberToObject(o, "peak_links", peak);
  cJSON_AddNumberToObject(o, "refused", (double)last->refused);
  cJSON_AddNumberToObject(o, "refused_per_bootstrap",
                          round((double)last->refused / bo->bootstraps));
  cJSON_AddNumberToObject(o, "evicted", (double)last->evicted);
  a = cJSON_AddArrayToObject(j, "broadcasts");
  for (int k = 0; k < bt->sent; k++) {
    const bcast *b = &bt->b[k];
    cJSON *lat;
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "t_s", (double)bcast_at[k] / 1000);
    cJSON_AddNumberToObject(o, "origin", b->origin);
    cJSON_AddNumberToObject(o, "reliability", r4(b->reliability));
    lat = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(lat, "p50", b->p50);
    cJSON_AddNumberToObject(lat, "p90", b->p90);
    cJSON_AddNumberToObject(lat, "p99", b->p99);
    cJSON_AddNumberToObject(lat, "max", b->max);
    cJSON_AddNumberToObject(o, "everyone_ms", (double)b->full_ms);
    cJSON_AddItemToArray(a, o);
  }
  cJSON_AddNumberToObject(j, "links", bt->s->n_links);
  cJSON_AddNumberToObject(j, "frames", (double)bt->s->frames);
  cJSON_AddNumberToObject(j, "ip_leaks", (double)bt->s->ip_leaks);
  cJSON_AddNumberToObject(j, "events", (double)bt->s->events);
  if (cfg->upload_kbps > 0)
    gv_bw_keys(bt->s, j);
  return j;
}

int gv_boot_run(const gv_sim_cfg *cfg, const gv_boot_opts *bo) {
  gv_sim *s = NULL;
  gv_rng rng;
  boot bt;
  int64_t t0, *lat = NULL;
  unsigned nb = bo->bootstraps;
  int rc = 0;
  struct timespec ts0, ts1;
  cJSON *j;
  char *txt;

  memset(&bt, 0, sizeof(bt));
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  if (gv_sim_new(&s, cfg) < 0)
    goto oom;
  bt.s = s;
  bt.n = cfg->nodes;
  bt.sm = calloc((size_t)(bo->duration_ms / SAMPLE_MS) + 1, sizeof(sample));
  lat = calloc(cfg->nodes, sizeof(int64_t));
  bt.waiting = calloc(cfg->nodes, sizeof(uint32_t));
  bt.announce_at = calloc(cfg->nodes, sizeof(int64_t));
  if (bt.sm == NULL || lat == NULL || bt.waiting == NULL ||
      bt.announce_at == NULL)
    goto oom;
  for (uint32_t i = 0; i < cfg->nodes; i++) {
    bt.waiting[i] = i;
    bt.announce_at[i] = INT64_MAX;
  }
  bt.n_waiting = cfg->nodes;
  for (int k = 0; k < N_BCAST; k++) {
    if ((bt.b[k].got = malloc(cfg->nodes * sizeof(int64_t))) == NULL)
      goto oom;
    for (uint32_t i = 0; i < cfg->nodes; i++)
      bt.b[k].got[i] = -1;
    bt.b[k].full_ms = -1;
  }
  s->deliver_fn = on_deliver;
  s->deliver_ctx = &bt;
  /* Its own stream, apart from the network's. */
  gv_rng_seed(&rng, cfg->seed ^ 0x636f6c64626f6f74ULL); /* "coldboot" */

  /* Everyone at once: the bootstrap nodes first, then the rest. */
  for (uint32_t i = 0; i < cfg->nodes; i++) {
    bool silent = i >= nb && gv_rng_unit(&rng) < cfg->silent_frac;
    gv_sim_add_node(s, silent);
    if (i < nb) {
      gv_addr ad;
      gv_sim_node_addr(i, &ad);
      gv_engine_set_broadcast(s->nodes[i].e, true, true, &ad, 1, s->now);
      gv_sim_drain(s, i);
    }
  }
  /* The tracker's answer: the bootstrap nodes, to everyone. */
  for (uint32_t i = 0; i < cfg->nodes; i++) {
    for (uint32_t k = 0; k < nb; k++) {
      gv_addr ad;
      if (k == i)
        continue;
      gv_sim_node_addr(k, &ad);
      gv_engine_add_candidate(s->nodes[i].e, s->nodes[k].id.pk, &ad, false,
                              s->now);
    }
    gv_sim_drain(s, i);
  }
  t0 = s->now;
  for (int64_t t = 0; t <= bo->duration_ms; t += SAMPLE_MS) {
    for (int64_t u = t - SAMPLE_MS + STEP_MS; t > 0 && u <= t; u += STEP_MS) {
      gv_sim_run_until(s, t0 + u);
      announce_due(&bt);
    }
    for (int k = 0; k < bt.sent; k++) {
      bcast *b = &bt.b[k];
      if (b->full_ms < 0 && b->n_got == bt.n)
        b->full_ms = t - bcast_at[k];
      if (t == bcast_at[k] + HORIZON_MS)
        read_bcast(&bt, k, lat);
    }
    if (bt.sent < N_BCAST && t == bcast_at[bt.sent]) {
      bcast *b = &bt.b[bt.sent];
      b->origin = nb + (uint32_t)gv_rng_below(&rng, cfg->nodes - nb);
      gv_engine_announce(s->nodes[b->origin].e, b->id, s->now);
      b->got[b->origin] = s->now;
      b->n_got = 1;
      bt.sent++;
      gv_sim_drain(s, b->origin);
    }
    take_sample(&bt, t, nb, cfg->active_target);
    if ((t == bcast_at[0] || t + SAMPLE_MS > bo->duration_ms) &&
        !gv_sim_checked(s, bo->argc, bo->argv)) {
      rc = 3;
      goto out;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  j = boot_json(cfg, bo, &bt);
  if (bo->timing)
    cJSON_AddNumberToObject(j, "wall_s",
                            round(((double)(ts1.tv_sec - ts0.tv_sec) +
                                   (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9) *
                                  1000) /
                                1000);
  if (bo->out != NULL)
    write_boot_csv(&bt, bo->out);
  txt = bo->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  goto out;
oom:
  fprintf(stderr, "grapevine-sim: out of memory\n");
  rc = 1;
out:
  for (int k = 0; k < N_BCAST; k++)
    free(bt.b[k].got);
  free(bt.sm);
  free(bt.waiting);
  free(bt.announce_at);
  free(lat);
  gv_sim_free(s);
  return rc;
}

/* ---- the upload cap ---- */

void gv_bw_fill(gv_bw_row *r, const gv_sim *s) {
  r->cap_kbps = s->cfg.upload_kbps;
  r->frames = s->up_frames;
  r->wait_mean_ms =
      s->up_frames ? (double)s->up_wait_us / (double)s->up_frames / 1000 : 0;
  r->wait_max_ms = (double)s->up_wait_max_us / 1000;
}

void gv_bw_keys(const gv_sim *s, cJSON *j) {
  gv_bw_row r;
  cJSON *w;

  gv_bw_fill(&r, s);
  cJSON_AddNumberToObject(j, "upload_cap_kbps", r.cap_kbps);
  w = cJSON_AddObjectToObject(j, "uplink_wait_ms");
  cJSON_AddNumberToObject(w, "frames", (double)r.frames);
  cJSON_AddNumberToObject(w, "mean", round(r.wait_mean_ms * 1000) / 1000);
  cJSON_AddNumberToObject(w, "max", round(r.wait_max_ms * 1000) / 1000);
}

static void write_bw_csv(const gv_bw_row *rows, size_t n, const char *dir) {
  char path[4096];
  FILE *f;

  mkdir(dir, 0755);
  snprintf(path, sizeof(path), "%s/bandwidth.csv", dir);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "cap_kbps,reliability,rmr,p50_ms,p90_ms,p99_ms,max_ms,frames,"
             "wait_mean_ms,wait_max_ms,added_p50_ms\n");
  for (size_t k = 0; k < n; k++)
    fprintf(f, "%u,%.5f,%.4f,%.0f,%.0f,%.0f,%.0f,%llu,%.3f,%.3f,%.0f\n",
            rows[k].cap_kbps, rows[k].reliability, rows[k].rmr, rows[k].p50,
            rows[k].p90, rows[k].p99, rows[k].max,
            (unsigned long long)rows[k].frames, rows[k].wait_mean_ms,
            rows[k].wait_max_ms, rows[k].p50 - rows[0].p50);
  fclose(f);
  snprintf(path, sizeof(path), "%s/bandwidth.gp", dir);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f,
          "set terminal svg size 640,400\nset output 'bandwidth.svg'\n"
          "set datafile separator ','\nset grid\nset key left top\n"
          "set xlabel 'upload cap per node (kB/s; 0: none)'\n"
          "set ylabel 'delivery latency (ms)'\nset logscale y\n"
          "plot 'bandwidth.csv' every ::1 using 0:4:xtic(1) with linespoints "
          "lw 2 title 'p50', '' every ::1 using 0:5 with linespoints lw 2 "
          "title 'p90', '' every ::1 using 0:6 with linespoints lw 2 title "
          "'p99'\n");
  fclose(f);
  gv_sim_plot(dir, "bandwidth");
}

int gv_bw_report(const gv_sim_cfg *cfg, const gv_bw_row *rows, size_t n,
                 const char *out, bool json) {
  cJSON *j = cJSON_CreateObject(), *a;
  char *txt;

  cJSON_AddStringToObject(j, "scenario", "bandwidth");
  cJSON_AddNumberToObject(j, "nodes", cfg->nodes);
  cJSON_AddNumberToObject(j, "seed", (double)cfg->seed);
  a = cJSON_AddArrayToObject(j, "points");
  for (size_t k = 0; k < n; k++) {
    cJSON *o = cJSON_CreateObject(), *lat, *w;
    cJSON_AddNumberToObject(o, "upload_cap_kbps", rows[k].cap_kbps);
    cJSON_AddNumberToObject(o, "reliability", rows[k].reliability);
    cJSON_AddNumberToObject(o, "rmr", r4(rows[k].rmr));
    lat = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(lat, "p50", rows[k].p50);
    cJSON_AddNumberToObject(lat, "p90", rows[k].p90);
    cJSON_AddNumberToObject(lat, "p99", rows[k].p99);
    cJSON_AddNumberToObject(lat, "max", rows[k].max);
    cJSON_AddNumberToObject(o, "added_p50_ms", rows[k].p50 - rows[0].p50);
    w = cJSON_AddObjectToObject(o, "uplink_wait_ms");
    cJSON_AddNumberToObject(w, "frames", (double)rows[k].frames);
    cJSON_AddNumberToObject(w, "mean",
                            round(rows[k].wait_mean_ms * 1000) / 1000);
    cJSON_AddNumberToObject(w, "max", round(rows[k].wait_max_ms * 1000) / 1000);
    cJSON_AddItemToArray(a, o);
  }
  if (out != NULL)
    write_bw_csv(rows, n, out);
  txt = json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  return 0;
}

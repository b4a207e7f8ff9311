/* grapevine-sim --scenario harvest: see harvest.h for the model.
 *
 * Run:  form (honest broadcasting + half the attackers + silent nodes)
 *       -> every virtual minute: churn honest nodes, join attackers on
 *          schedule, re-announce, sample the observed fraction
 *       -> report the fraction at 1 h and at the end.
 */
#include "harvest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define FORM_MS 5000
#define SESSION_MEAN_MS (2 * HOUR_MS) /* honest broadcasting nodes */
#define DOWN_MEAN_MS (30 * MIN_MS)
/* Re-announcements keep table entries alive (2 h expiry; 1 h for
 * bootstrap nodes). The daemon sends one every 30 min; here the others
 * wait 90 min, which halves the run time and changes no link. */
#define REANNOUNCE_BOOT_MS (30 * MIN_MS)
#define REANNOUNCE_MS (90 * MIN_MS)
#define SAMPLE_MS (10 * MIN_MS)
#define MAX_SAMPLES 1024
#define BOOT_MIN 5 /* bootstrap nodes: 5% of the broadcasting, at least */

typedef struct hrun {
  double a;
  bool guards;
  double at_1h, at_end; /* observed fractions */
  uint32_t broadcasting, attackers, silent;
  uint64_t churns, events, frames, links;
  size_t n_samples;
  double samples[MAX_SAMPLES]; /* every SAMPLE_MS from 0 */
  bool ok;
} hrun;

static double exp_ms(gv_rng *r, double mean) {
  return -mean * log(1 - gv_rng_unit(r));
}

static double observed_frac(const gv_sim *s) {
  uint32_t silent = 0, seen = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    if (s->nodes[i].silent) {
      silent++;
      seen += s->nodes[i].observed;
    }
  return silent ? (double)seen / silent : 0;
}

/* The attacker's nodes call themselves bootstrap nodes in their records:
 * it costs nothing, and only the operator's naming may exempt a node from
 * the guards' minimum age. */
static void claim_bootstrap(gv_sim *s, uint32_t i) {
  gv_addr ad;
  gv_sim_node_addr(i, &ad);
  gv_engine_set_broadcast(s->nodes[i].e, true, true, &ad, 1, s->now);
  gv_sim_drain(s, i);
}

static void announce(gv_sim *s, uint32_t i) {
  gv_engine_announce(s->nodes[i].e, NULL, s->now);
  gv_sim_drain(s, i);
}

static int run_one(const gv_sim_cfg *base, const gv_harvest_opts *ho, double a,
                   bool guards, hrun *h) {
  gv_sim_cfg cfg = *base;
  gv_sim *s;
  gv_rng rng;
  uint32_t n_b, n_att, n_att0, n_join, n_boot, cap;
  int64_t *next_change = NULL, *join_at = NULL, *announce_at = NULL, t0, end;
  uint32_t joined = 0;
  int rc = 0;

  memset(h, 0, sizeof(*h));
  h->a = a;
  h->guards = guards;
  cfg.guards = guards;
  cfg.stub_sigs = true;
  cfg.heartbeat_ms = 0;
  n_b = cfg.nodes - (uint32_t)lround(cfg.silent_frac * cfg.nodes);
  if (n_b < 2)
    n_b = 2;
  n_att = (uint32_t)lround(a * n_b);
  n_att0 = n_att / 2;
  n_join = n_att - n_att0;
  if (gv_sim_new(&s, &cfg) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  /* Its own stream, apart from the network's, so a change here leaves the
   * formation alone. */
  gv_rng_seed(&rng, cfg.seed ^ 0x68617276657374ULL); /* "harvest" */
  cap = cfg.nodes + n_join;
  next_change = calloc(cap, sizeof(int64_t));
  announce_at = calloc(cap, sizeof(int64_t));
  join_at = calloc(n_join + 1, sizeof(int64_t));
  if (next_change == NULL || announce_at == NULL || join_at == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    rc = 1;
    goto out;
  }
  /* Broadcasting first (the honest ones, then the attacker's first half),
   * then the silent nodes. */
  for (uint32_t i = 0; i < cfg.nodes - n_join; i++) {
    uint32_t k = gv_sim_add_node(s, i >= n_b - n_join);
    s->nodes[k].attacker = i >= n_b - n_att && i < n_b - n_join;
    if (s->nodes[k].attacker)
      claim_bootstrap(s, k);
  }
  /* The operator's bootstrap nodes (they never leave); every silent node is
   * configured with them (as with --peer), besides the random seeds. */
  n_boot = n_b / 20 > BOOT_MIN ? n_b / 20 : BOOT_MIN;
  for (uint32_t i = 0; i < n_boot && i < n_b - n_att; i++) {
    gv_addr ad;
    gv_sim_node_addr(i, &ad);
    gv_engine_set_broadcast(s->nodes[i].e, true, true, &ad, 1, s->now);
    gv_sim_drain(s, i);
  }
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    gv_sim_seed_candidates(s, i, cfg.candidates);
    for (uint32_t k = 0; s->nodes[i].silent && k < n_boot; k++) {
      gv_addr ad;
      gv_sim_node_addr(k, &ad);
      gv_engine_add_candidate(s->nodes[i].e, s->nodes[k].id.pk, &ad, true,
                              s->now);
    }
    gv_sim_drain(s, i);
  }
  gv_sim_run_until(s, s->now + FORM_MS);
  t0 = s->now;
  end = t0 + ho->duration_ms;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    next_change[i] = s->nodes[i].silent || s->nodes[i].attacker || i < n_boot
                         ? INT64_MAX
                         : t0 + (int64_t)exp_ms(&rng, SESSION_MEAN_MS);
    announce_at[i] = t0 + (int64_t)gv_rng_below(&rng, REANNOUNCE_MS);
  }
  for (uint32_t k = 0; k < n_join; k++)
    join_at[k] = t0 + (int64_t)gv_rng_below(&rng, (uint64_t)ho->duration_ms);
  /* Joins in time order (a few dozen: insertion sort). */
  for (uint32_t k = 1; k < n_join; k++)
    for (uint32_t m = k; m > 0 && join_at[m] < join_at[m - 1]; m--) {
      int64_t t = join_at[m];
      join_at[m] = join_at[m - 1];
      join_at[m - 1] = t;
    }
  join_at[n_join] = INT64_MAX;
  for (int64_t t = t0; t <= end; t += MIN_MS) {
    gv_sim_run_until(s, t);
    if ((t - t0) % SAMPLE_MS == 0 && h->n_samples < MAX_SAMPLES)
      h->samples[h->n_samples++] = observed_frac(s);
    if (t - t0 == HOUR_MS)
      h->at_1h = observed_frac(s);
    if (t == end)
      break;
    while (join_at[joined] <= t) {
      uint32_t k = gv_sim_add_node(s, false);
      s->nodes[k].attacker = true;
      s->nodes[k].joined = true;
      claim_bootstrap(s, k);
      gv_sim_seed_candidates(s, k, cfg.candidates);
      next_change[k] = INT64_MAX;
      announce_at[k] = t + MIN_MS;
      joined++;
    }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
      if (next_change[i] <= t) {
        h->churns++;
        if (s->nodes[i].dead) {
          gv_sim_restart(s, i, cfg.candidates);
          gv_sim_drain(s, i);
          next_change[i] = t + (int64_t)exp_ms(&rng, SESSION_MEAN_MS);
          announce_at[i] = t + MIN_MS;
        } else {
          gv_sim_kill(s, i);
          next_change[i] = t + MIN_MS + (int64_t)exp_ms(&rng, DOWN_MEAN_MS);
        }
      }
      if (!s->nodes[i].silent && !s->nodes[i].dead && announce_at[i] <= t) {
        announce(s, i);
        announce_at[i] =
            t + (i < n_boot || s->nodes[i].attacker ? REANNOUNCE_BOOT_MS
                                                    : REANNOUNCE_MS);
      }
    }
  }
  h->at_end = observed_frac(s);
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    h->broadcasting += !s->nodes[i].silent;
    h->attackers += s->nodes[i].attacker;
    h->silent += s->nodes[i].silent;
  }
  h->events = s->events;
  h->frames = s->frames;
  h->links = s->n_links;
  h->ok = gv_sim_check(s) && s->ip_leaks == 0;
  if (!h->ok) {
    fprintf(stderr, "grapevine-sim: INVARIANT VIOLATED: %s\n",
            s->ip_leaks > 0 ? "a silent node's address was sent"
                            : s->violation);
    rc = 3;
  }
out:
  free(next_change);
  free(announce_at);
  free(join_at);
  gv_sim_free(s);
  return rc;
}

static void write_csv(const gv_harvest_opts *ho, const hrun *runs, size_t n) {
  char path[4096];
  FILE *f;

  mkdir(ho->out, 0755);
  snprintf(path, sizeof(path), "%s/harvest.csv", ho->out);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "hours,attackers,guards,observed\n");
  for (size_t r = 0; r < n; r++)
    for (size_t k = 0; k < runs[r].n_samples; k++)
      fprintf(f, "%.3f,%.2f,%s,%.4f\n",
              (double)(k * SAMPLE_MS) / (double)HOUR_MS, runs[r].a,
              runs[r].guards ? "on" : "off", runs[r].samples[k]);
  fclose(f);
  snprintf(path, sizeof(path), "%s/harvest.gp", ho->out);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "set terminal svg size 800,500\nset output 'harvest.svg'\n"
             "set datafile separator ','\nset key left top\n"
             "set xlabel 'hours'\nset ylabel 'silent nodes observed'\n"
             "set yrange [0:1]\nplot ");
  for (size_t r = 0; r < n; r++)
    fprintf(f,
            "%s'harvest.csv' every ::%zu::%zu using 1:4 with lines "
            "title 'A=%.0f%%%% guards %s'",
            r ? ", " : "", 1 + r * runs[0].n_samples,
            (r + 1) * runs[0].n_samples, runs[r].a * 100,
            runs[r].guards ? "on" : "off");
  fprintf(f, "\n");
  fclose(f);
  snprintf(path, sizeof(path),
           "command -v gnuplot >/dev/null && cd '%s' && gnuplot harvest.gp",
           ho->out);
  if (system(path) != 0)
    fprintf(stderr,
            "grapevine-sim: gnuplot not found or failed; %s/harvest.gp "
            "and its CSV are written\n",
            ho->out);
}

int gv_harvest_run(const gv_sim_cfg *cfg, const gv_harvest_opts *ho) {
  static const double sweep[] = {0.01, 0.05, 0.20};
  hrun *runs = calloc(8, sizeof(hrun));
  size_t n = 0;
  int rc = 0;
  struct timespec ts0, ts1;
  cJSON *j, *rows;
  char *txt;

  if (runs == NULL)
    return 1;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  for (size_t ai = 0; ai < 3 && rc == 0; ai++) {
    double a = ho->attackers >= 0 ? ho->attackers : sweep[ai];
    for (int g = 0; g <= 1 && rc == 0; g++)
      if (ho->guards < 0 || ho->guards == g)
        rc = run_one(cfg, ho, a, g == 1, &runs[n++]);
    if (ho->attackers >= 0)
      break;
  }
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  if (rc != 0) {
    fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
            (unsigned long long)cfg->seed);
    for (int i = 0; i < ho->argc; i++)
      fprintf(stderr, " %s", ho->argv[i]);
    fprintf(stderr, "\n");
    free(runs);
    return rc;
  }
  j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "scenario", "harvest");
  cJSON_AddNumberToObject(j, "nodes", cfg->nodes);
  cJSON_AddNumberToObject(j, "seed", (double)cfg->seed);
  cJSON_AddNumberToObject(j, "silent_frac", cfg->silent_frac);
  cJSON_AddNumberToObject(j, "duration_h",
                          (double)ho->duration_ms / (double)HOUR_MS);
  rows = cJSON_AddArrayToObject(j, "rows");
  for (size_t r = 0; r < n; r++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "attackers", runs[r].a);
    cJSON_AddStringToObject(o, "guards", runs[r].guards ? "on" : "off");
    cJSON_AddNumberToObject(o, "attacker_nodes", runs[r].attackers);
    cJSON_AddNumberToObject(o, "broadcasting", runs[r].broadcasting);
    cJSON_AddNumberToObject(o, "silent", runs[r].silent);
    cJSON_AddNumberToObject(o, "observed_1h",
                            round(runs[r].at_1h * 10000) / 10000);
    cJSON_AddNumberToObject(o, "observed_end",
                            round(runs[r].at_end * 10000) / 10000);
    cJSON_AddNumberToObject(o, "churns", (double)runs[r].churns);
    cJSON_AddNumberToObject(o, "events", (double)runs[r].events);
    cJSON_AddNumberToObject(o, "frames", (double)runs[r].frames);
    cJSON_AddNumberToObject(o, "links_made", (double)runs[r].links);
    cJSON_AddItemToArray(rows, o);
  }
  if (ho->timing)
    cJSON_AddNumberToObject(j, "wall_s",
                            round(((double)(ts1.tv_sec - ts0.tv_sec) +
                                   (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9) *
                                  1000) /
                                1000);
  if (ho->out != NULL)
    write_csv(ho, runs, n);
  txt = ho->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  free(runs);
  return 0;
}

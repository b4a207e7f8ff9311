/* grapevine-sim: the real gossip engine, N copies, over a virtual network
 * and clock, deterministically from a seed. See docs/EXPERIMENTS.md. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attack.h"
#include "boot.h"
#include "harvest.h"
#include "net.h"
#include "relaysim.h"
#include "simout.h"
#include "steady.h"
#include "turnover.h"

#define FORM_MS 5000     /* formation before anything is measured */
#define HORIZON_MS 20000 /* how long a broadcast is followed */
#define SWEEP_SEEDS 3    /* networks (and origins) per sweep point */
#define SWEEP_POINTS 8   /* failed fractions 0, 0.1, ..., 0.7 */
#define JOBS_MAX 64      /* --jobs */
/* The scenarios that run through plain gv_sim_run_until(), with no
 * per-frame hook, and so may take --threads above 1. */
#define THREADED_SCENARIOS                                                     \
  "single, failures, loss, churn, partition, tracker-down, silent-majority, "  \
  "join and flood"

typedef struct opts {
  gv_sim_cfg cfg;
  const char *scenario;
  const char *out;
  double fail_frac;
  double churn_frac;
  gv_relaysim_opts relay;
  gv_harvest_opts harvest;
  gv_attack_opts attack;
  gv_boot_opts boot;
  gv_turnover_opts turnover;
  gv_steady_opts steady;
  const char *duration; /* --duration, read once the scenario is known */
  unsigned jobs;        /* sweep: points run at once, each a process */
  bool json, timing;
  int argc;
  char **argv;
} opts;

typedef struct result {
  uint32_t live, delivered, receivers;
  uint64_t payload, frames, bytes;
  double reliability, rmr;
  unsigned ldh;
  double p50, p90, p99, max;
  double *lat; /* sorted delivery latencies, ms */
  size_t n_lat;
} result;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(const opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const opts *o, const char *fmt, ...) {
  va_list ap;
  (void)o;
  va_start(ap, fmt);
  fputs("grapevine-sim: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- phases ---- */

static void print_repro(const opts *o) {
  fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
          (unsigned long long)o->cfg.seed);
  for (int i = 0; i < o->argc; i++)
    fprintf(stderr, " %s", o->argv[i]);
  fprintf(stderr, "\n");
}

/* Invariants are checked after formation and at the end; the dedup and
 * IP-leak invariants on every frame. A violation stops the run. */
static void die_violated(const gv_sim *s, const opts *o) {
  fprintf(stderr, "grapevine-sim: INVARIANT VIOLATED at +%lld ms: %s\n",
          (long long)(s->now - GV_SIM_T0),
          s->ip_leaks > 0 ? "a silent node's address was sent" : s->violation);
  print_repro(o);
  exit(3);
}

static bool invariants_hold(gv_sim *s) {
  return gv_sim_check(s) && s->ip_leaks == 0;
}

static void check_or_die(gv_sim *s, const opts *o) {
  if (!invariants_hold(s))
    die_violated(s, o);
}

static void form(gv_sim *s, const opts *o, double silent_frac, unsigned cands) {
  uint32_t n = o->cfg.nodes;
  bool any = false, *silent = calloc(n, sizeof(bool));

  if (silent == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    exit(1);
  }

  /* All the draws first, then the nodes: the same sequence as drawing one
   * and adding it in turn, since adding a node (and its drain) draws
   * nothing from s->rng. */
  for (uint32_t i = 0; i < n; i++) {
    silent[i] = gv_rng_unit(&s->rng) < silent_frac;
    if (i == n - 1 && !any)
      silent[i] = false; /* someone must accept links */
    any |= !silent[i];
  }
  gv_sim_add_nodes(s, n, silent);
  free(silent);
  if (n >= 100000)
    progress(o, "created %u nodes", n);
  gv_sim_seed_all(s, cands);
  gv_sim_run_until(s, s->now + FORM_MS);
  progress(o, "formed: %u nodes, %u links, %llu events", n, s->n_links,
           (unsigned long long)s->events);
  check_or_die(s, o);
}

static uint64_t sum_payload(const gv_sim *s) {
  uint64_t t = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    t += gv_engine_stats_get(s->nodes[i].e)->payload_out;
  return t;
}

static uint32_t pick_live(gv_sim *s) {
  for (;;) {
    uint32_t i = (uint32_t)gv_rng_below(&s->rng, s->n_nodes);
    if (!s->nodes[i].dead)
      return i;
  }
}

/* Crashes `frac` of the nodes other than `keep`, nobody noticing. */
static void crash_fraction(gv_sim *s, double frac, uint32_t keep) {
  uint32_t want = (uint32_t)(frac * s->n_nodes), done = 0;
  while (done < want) {
    uint32_t i = (uint32_t)gv_rng_below(&s->rng, s->n_nodes);
    if (i == keep || s->nodes[i].dead)
      continue;
    gv_sim_crash(s, i);
    done++;
  }
}

static uint32_t broadcast(gv_sim *s, uint32_t origin) {
  uint8_t id[GV_MSG_ID_BYTES];
  gv_engine_announce(s->nodes[origin].e, id, s->now);
  gv_sim_track(s, id);
  s->nodes[origin].delivered_at = s->now;
  s->nodes[origin].hops = 0;
  gv_sim_drain(s, origin);
  return origin;
}

static void measure(gv_sim *s, uint64_t payload0, uint64_t frames0,
                    uint64_t bytes0, result *r) {
  memset(r, 0, sizeof(*r));
  r->lat = malloc((s->n_nodes + 1) * sizeof(double));
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    gv_sim_node *n = &s->nodes[i];
    if (n->delivered_at >= 0) {
      r->receivers++;
      if (n->hops > r->ldh)
        r->ldh = n->hops;
      if (n->hops > 0)
        r->lat[r->n_lat++] = (double)(n->delivered_at - s->tracked_at);
    }
    if (n->dead || n->flooder) /* hostile nodes are not owed delivery */
      continue;
    r->live++;
    r->delivered += n->delivered_at >= 0;
  }
  qsort(r->lat, r->n_lat, sizeof(double), gv_sim_cmp_double);
  r->payload = sum_payload(s) - payload0;
  r->frames = s->frames - frames0;
  r->bytes = s->frame_bytes - bytes0;
  r->reliability = r->live ? (double)r->delivered / r->live : 0;
  r->rmr = r->receivers > 1
               ? (double)r->payload / (double)(r->receivers - 1) - 1.0
               : 0;
  r->p50 = gv_sim_pct(r->lat, r->n_lat, 0.50);
  r->p90 = gv_sim_pct(r->lat, r->n_lat, 0.90);
  r->p99 = gv_sim_pct(r->lat, r->n_lat, 0.99);
  r->max = r->n_lat ? r->lat[r->n_lat - 1] : 0;
}

/* ---- output ---- */

static cJSON *report(const opts *o, const gv_sim *s, const result *r,
                     double wall) {
  cJSON *j = cJSON_CreateObject(), *lat;

  cJSON_AddNumberToObject(j, "nodes", o->cfg.nodes);
  cJSON_AddNumberToObject(j, "seed", (double)o->cfg.seed);
  cJSON_AddStringToObject(j, "scenario", o->scenario);
  cJSON_AddNumberToObject(j, "fanout", o->cfg.fanout);
  cJSON_AddNumberToObject(j, "fanout_announced", o->cfg.fanout_announced);
  cJSON_AddNumberToObject(j, "ttl", o->cfg.ttl);
  cJSON_AddBoolToObject(j, "repair", o->cfg.repair);
  cJSON_AddBoolToObject(j, "stub_sigs", o->cfg.stub_sigs);
  cJSON_AddNumberToObject(j, "fail_frac", o->fail_frac);
  cJSON_AddNumberToObject(j, "loss", o->cfg.loss);
  cJSON_AddNumberToObject(j, "silent_frac", o->cfg.silent_frac);
  cJSON_AddNumberToObject(j, "live", r->live);
  cJSON_AddNumberToObject(j, "delivered", r->delivered);
  cJSON_AddNumberToObject(j, "reliability", r->reliability);
  cJSON_AddNumberToObject(j, "rmr", round(r->rmr * 10000) / 10000);
  cJSON_AddNumberToObject(j, "ldh", r->ldh);
  lat = cJSON_AddObjectToObject(j, "latency_ms");
  cJSON_AddNumberToObject(lat, "p50", r->p50);
  cJSON_AddNumberToObject(lat, "p90", r->p90);
  cJSON_AddNumberToObject(lat, "p99", r->p99);
  cJSON_AddNumberToObject(lat, "max", r->max);
  cJSON_AddNumberToObject(j, "payload_msgs", (double)r->payload);
  cJSON_AddNumberToObject(j, "msgs_per_node",
                          round((double)r->frames / s->n_nodes * 100) / 100);
  cJSON_AddNumberToObject(j, "bytes_per_node",
                          round((double)r->bytes / s->n_nodes));
  cJSON_AddNumberToObject(j, "links", s->n_links);
  {
    /* Why links closed, over the whole run (the link core's counters). */
    uint64_t closed[GV__CLOSE_COUNT] = {0};
    cJSON *c = cJSON_AddObjectToObject(j, "links_closed");
    for (uint32_t i = 0; i < s->n_nodes; i++)
      for (int k = 0; k < GV__CLOSE_COUNT; k++)
        closed[k] += gv_lcore_stats_get(s->nodes[i].lc)->closed[k];
    for (int k = 0; k < GV__CLOSE_COUNT; k++)
      if (closed[k] > 0)
        cJSON_AddNumberToObject(c, gv_close_label((gv_close)k),
                                (double)closed[k]);
  }
  cJSON_AddNumberToObject(j, "ip_leaks", (double)s->ip_leaks);
  cJSON_AddNumberToObject(j, "events", (double)s->events);
  if (o->cfg.threads > 1)
    cJSON_AddNumberToObject(j, "threads", o->cfg.threads);
  if (o->timing) {
    cJSON_AddNumberToObject(j, "wall_s", round(wall * 1000) / 1000);
    cJSON_AddNumberToObject(j, "events_per_s", round((double)s->events / wall));
    if (o->cfg.threads > 1) {
      cJSON_AddNumberToObject(j, "windows", (double)s->windows);
      cJSON_AddNumberToObject(j, "barriers", (double)s->barriers);
      cJSON *busy = cJSON_AddArrayToObject(j, "lane_busy_s");
      cJSON *cpu = cJSON_AddArrayToObject(j, "lane_cpu_s");
      for (unsigned u = 0; u < s->threads; u++) {
        cJSON_AddItemToArray(
            busy, cJSON_CreateNumber(round(s->lanes[u]->busy_s * 1000) / 1000));
        cJSON_AddItemToArray(
            cpu, cJSON_CreateNumber(round(s->lanes[u]->cpu_s * 1000) / 1000));
      }
    }
  }
  return j;
}

/* Frames node i sent since the broadcast began. */
static uint64_t sent_since(const gv_sim *s, uint32_t i, const uint64_t *sent0) {
  const gv_engine_stats *st = gv_engine_stats_get(s->nodes[i].e);
  uint64_t m = 0;
  for (int t = 0; t < GV__MSG_COUNT; t++)
    m += st->msgs_out[t];
  return m - sent0[i];
}

/* Writes "HEADER\nvalue,count" for every non-zero count. */
static void write_hist(const opts *o, const char *name, const char *header,
                       const uint32_t *hist, uint32_t max, char *buf,
                       size_t cap) {
  size_t off = (size_t)snprintf(buf, cap, "%s\n", header);
  for (uint32_t k = 0; k <= max && off < cap; k++)
    if (hist[k])
      off += (size_t)snprintf(buf + off, cap - off, "%u,%u\n", k, hist[k]);
  gv_sim_write_file(o->out, name, buf);
}

/* latency CDF, messages per node, in-degree distribution */
static void write_series(const opts *o, const gv_sim *s, const result *r,
                         const uint64_t *sent0) {
  size_t cap = 64 + r->n_lat * 32 + ((size_t)1 << 20);
  char *buf = malloc(cap);
  size_t off = 0;
  uint32_t maxd = 0, maxm = 0, *hist;

  mkdir(o->out, 0755);
  off = (size_t)snprintf(buf, cap, "latency_ms,cdf\n");
  for (size_t i = 0; i < r->n_lat && off < cap - 64; i++)
    if (i + 1 == r->n_lat || r->lat[i + 1] != r->lat[i])
      off += (size_t)snprintf(buf + off, cap - off, "%.0f,%.6f\n", r->lat[i],
                              (double)(i + 1) / r->n_lat);
  gv_sim_write_file(o->out, "latency_cdf.csv", buf);
  gv_sim_write_file(
      o->out, "latency_cdf.gp",
      "set terminal svg size 640,400\nset output 'latency_cdf.svg'\n"
      "set datafile separator ','\nset key off\n"
      "set xlabel 'delivery latency (ms)'\nset ylabel 'fraction of "
      "receivers'\nset grid\nplot 'latency_cdf.csv' every ::1 using "
      "1:2 with steps lw 2\n");
  gv_sim_plot(o->out, "latency_cdf");

  for (uint32_t i = 0; i < s->n_nodes; i++) {
    uint64_t m = sent_since(s, i, sent0);
    if (m > maxm)
      maxm = (uint32_t)m;
    if (s->nodes[i].indegree > maxd)
      maxd = s->nodes[i].indegree;
  }
  hist = calloc((size_t)(maxm > maxd ? maxm : maxd) + 1, sizeof(uint32_t));
  for (uint32_t i = 0; i < s->n_nodes; i++)
    hist[sent_since(s, i, sent0)]++;
  write_hist(o, "msgs_per_node.csv", "messages_sent,nodes", hist, maxm, buf,
             cap);
  gv_sim_write_file(
      o->out, "msgs_per_node.gp",
      "set terminal svg size 640,400\nset output "
      "'msgs_per_node.svg'\nset datafile separator ','\nset key off\n"
      "set xlabel 'messages sent during the broadcast'\nset ylabel "
      "'nodes'\nset style fill solid\nset grid\nplot "
      "'msgs_per_node.csv' every ::1 using 1:2 with boxes\n");
  gv_sim_plot(o->out, "msgs_per_node");

  memset(hist, 0, ((size_t)(maxm > maxd ? maxm : maxd) + 1) * sizeof(uint32_t));
  for (uint32_t i = 0; i < s->n_nodes; i++)
    hist[s->nodes[i].indegree]++;
  write_hist(o, "indegree.csv", "in_degree,nodes", hist, maxd, buf, cap);
  gv_sim_write_file(
      o->out, "indegree.gp",
      "set terminal svg size 640,400\nset output 'indegree.svg'\n"
      "set datafile separator ','\nset key off\nset xlabel 'inbound "
      "links'\nset ylabel 'nodes'\nset style fill solid\nset grid\n"
      "plot 'indegree.csv' every ::1 using 1:2 with boxes\n");
  gv_sim_plot(o->out, "indegree");
  free(hist);
  free(buf);
}

/* ---- scenarios ---- */

typedef struct extra {
  cJSON *j; /* scenario-specific keys */
} extra;

/* Forms the network of scenario o (the tracker-down one from 3 tracker
 * answers a node). */
static void form_for(gv_sim *s, const opts *o) {
  form(s, o, o->cfg.silent_frac,
       strcmp(o->scenario, "tracker-down") == 0 ? 3 : o->cfg.candidates);
}

/* Runs one scenario on the formed network s; fills r and adds keys to
 * x->j. */
static void follow(const opts *o, gv_sim *s, result *r, extra *x,
                   uint64_t **sent0) {
  const char *sc = o->scenario;
  uint64_t p0, f0, b0;
  uint32_t origin;
  double silent = o->cfg.silent_frac;

  if (strcmp(sc, "join") == 0) {
    /* Everyone announces (staggered), then a newcomer joins: how long until
     * its table lists every other live node? */
    for (uint32_t i = 0; i < s->n_nodes; i++) {
      gv_sim_run_until(s, s->now + 2);
      gv_engine_announce(s->nodes[i].e, NULL, s->now);
      gv_sim_drain(s, i);
    }
    gv_sim_run_until(s, s->now + 10000);
    uint32_t nw = gv_sim_add_node(s, true);
    int64_t t_join = s->now, done = -1;
    gv_sim_seed_candidates(s, nw, o->cfg.candidates);
    while (s->now < t_join + 60000) {
      gv_sim_run_until(s, s->now + 50);
      if (gv_engine_table_size(s->nodes[nw].e) >= s->n_nodes - 1) {
        done = s->now - t_join;
        break;
      }
    }
    cJSON_AddNumberToObject(x->j, "join_ms", (double)done);
    cJSON_AddNumberToObject(x->j, "join_table",
                            (double)gv_engine_table_size(s->nodes[nw].e));
  }

  origin = pick_live(s);
  if (o->fail_frac > 0)
    crash_fraction(s, o->fail_frac, origin);
  if (strcmp(sc, "partition") == 0) {
    for (uint32_t i = 0; i < s->n_nodes; i++)
      s->nodes[i].side = (uint8_t)(gv_rng_below(&s->rng, 2));
    s->nodes[origin].side = 0;
    gv_sim_partition(s);
    gv_sim_run_until(s, s->now + 3000); /* each side settles */
  }
  *sent0 = calloc(s->n_nodes, sizeof(uint64_t));
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const gv_engine_stats *st = gv_engine_stats_get(s->nodes[i].e);
    for (int t = 0; t < GV__MSG_COUNT; t++)
      (*sent0)[i] += st->msgs_out[t];
  }
  p0 = sum_payload(s);
  f0 = s->frames;
  b0 = s->frame_bytes;
  broadcast(s, origin);

  if (strcmp(sc, "churn") == 0) {
    /* Over the first 2 s: churn_frac/2 of the nodes crash, as many join. */
    uint32_t events = (uint32_t)(o->churn_frac / 2 * s->n_nodes);
    for (uint32_t k = 0; k < events; k++) {
      gv_sim_run_until(s, s->now + 2000 / (events ? events : 1));
      gv_sim_crash(s, pick_live(s));
      uint32_t j = gv_sim_add_node(s, gv_rng_unit(&s->rng) < silent);
      s->nodes[j].joined = true;
      gv_sim_seed_candidates(s, j, o->cfg.candidates);
    }
  } else if (strcmp(sc, "partition") == 0) {
    gv_sim_run_until(s, s->now + 10000);
    measure(s, p0, f0, b0, r);
    cJSON_AddNumberToObject(x->j, "reliability_before_heal", r->reliability);
    free(r->lat);
    gv_sim_heal(s);
    progress(o, "partition healed at +10 s");
  } else if (strcmp(sc, "flood") == 0) {
    /* 2% of nodes turn hostile and send junk every 20 ms. */
    uint32_t nf = s->n_nodes / 50 ? s->n_nodes / 50 : 1;
    for (uint32_t k = 0; k < nf; k++)
      s->nodes[pick_live(s)].flooder = true;
    for (int64_t t = 0; t < 5000; t += 20) {
      for (uint32_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].flooder && !s->nodes[i].dead)
          gv_sim_flood_once(s, i);
      gv_sim_run_until(s, s->now + 20);
    }
  }
  gv_sim_run_until(s, s->now + HORIZON_MS +
                          (strcmp(sc, "partition") == 0 ? 40000 : 0));
  measure(s, p0, f0, b0, r);
  if (strcmp(sc, "flood") == 0) {
    uint64_t bans = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++)
      bans += gv_lcore_stats_get(s->nodes[i].lc)->bans;
    cJSON_AddNumberToObject(x->j, "bans", (double)bans);
  }
}

/* ---- the sweep: one formed network, a child process a point ---- */

/* A point's outcome, as a child hands it to its parent. */
typedef struct sweep_res {
  double reliability, rmr;
} sweep_res;

/* A child running one point. */
typedef struct sweep_child {
  pid_t pid;
  int fd; /* the read end of its pipe */
  sweep_res *res;
} sweep_child;

/* Waits for whichever of the running children ends first, reads its
 * result and takes it off kids. 0, or the status for the process to exit
 * with: the child's own exit code (3: it found an invariant violated and
 * said so), 1 for a signal or a missing result, said on stderr if loud. */
static int sweep_reap(sweep_child *kids, unsigned *running, bool loud) {
  sweep_child kid;
  unsigned i = 0;
  int st, rc = 0;
  pid_t pid;
  ssize_t n;

  while ((pid = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
    ;
  if (pid < 0) { /* none to wait for (cannot happen): end them all */
    if (loud)
      fprintf(stderr, "grapevine-sim: waiting for a sweep point: %s\n",
              strerror(errno));
    for (; *running > 0; --*running) {
      kill(kids[*running - 1].pid, SIGKILL);
      waitpid(kids[*running - 1].pid, &st, 0);
      close(kids[*running - 1].fd);
    }
    return 1;
  }
  while (i + 1 < *running && kids[i].pid != pid)
    i++;
  kid = kids[i];
  kids[i] = kids[--*running];
  do
    n = read(kid.fd, kid.res, sizeof(*kid.res));
  while (n < 0 && errno == EINTR);
  close(kid.fd);
  if (WIFSIGNALED(st)) {
    rc = 1;
    if (loud)
      fprintf(stderr, "grapevine-sim: a sweep point died of signal %d\n",
              WTERMSIG(st));
  } else if (WEXITSTATUS(st) != 0) {
    rc = WEXITSTATUS(st);
  } else if (n != (ssize_t)sizeof(*kid.res)) {
    rc = 1;
    if (loud)
      fprintf(stderr, "grapevine-sim: a sweep point gave no result\n");
  }
  return rc;
}

/* Runs o (its failed fraction) on a copy of the formed network s, in a
 * child process: the parent's s stays as formed for the next point. */
static int sweep_fork(const opts *o, gv_sim *s, sweep_res *res,
                      sweep_child *kid) {
  int fds[2];

  if (pipe(fds) != 0) {
    fprintf(stderr, "grapevine-sim: pipe: %s\n", strerror(errno));
    return 1;
  }
  fflush(NULL); /* nothing buffered is written twice */
  if ((kid->pid = fork()) < 0) {
    fprintf(stderr, "grapevine-sim: fork: %s\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return 1;
  }
  if (kid->pid == 0) {
    result r;
    extra x = {cJSON_CreateObject()};
    uint64_t *sent0 = NULL;
    sweep_res out;
    close(fds[0]);
    s->cfg.progress_s = 0; /* J children at once: the parent's lines say it */
    follow(o, s, &r, &x, &sent0);
    if (!invariants_hold(s)) {
      progress(o,
               "the sweep point is --scenario failures --seed %llu "
               "--fail-frac %.1f%s",
               (unsigned long long)o->cfg.seed, o->fail_frac,
               o->cfg.repair ? "" : " --no-repair");
      die_violated(s, o); /* exit 3 */
    }
    out.reliability = r.reliability;
    out.rmr = r.rmr;
    /* 16 bytes: one write, never short. Then out without freeing: the
     * process's memory goes with it, the parent's copy is untouched. */
    _exit(write(fds[1], &out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 1);
  }
  close(fds[1]);
  kid->fd = fds[0];
  kid->res = res;
  return 0;
}

/* Reliability against the failed fraction, ours beside plain push. */
static int sweep(const opts *o) {
  char csv[4096];
  size_t off =
      (size_t)snprintf(csv, sizeof(csv), "fail_frac,grapevine,plain_push\n");
  cJSON *arr = cJSON_CreateArray();
  sweep_res res[SWEEP_POINTS][2][SWEEP_SEEDS];
  sweep_child *kids = calloc(o->jobs, sizeof(*kids));
  unsigned running = 0;
  int rc = 0;

  if (kids == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  signal(SIGCHLD, SIG_DFL); /* an ignored SIGCHLD (inherited) reaps them */
  /* Each point is the mean over SWEEP_SEEDS seeds (each a different
   * network and origin): one origin whose first targets all crashed would
   * otherwise decide a whole point. A network is formed once and every
   * failed fraction runs on a forked copy of it, o->jobs at a time: the
   * same runs as forming it anew for each, in a fraction of the time. */
  for (int repair = 1; repair >= 0 && rc == 0; repair--)
    for (int k = 0; k < SWEEP_SEEDS && rc == 0; k++) {
      opts oo = *o;
      gv_sim *s;
      oo.cfg.repair = repair;
      oo.cfg.seed = o->cfg.seed + (uint64_t)k;
      oo.scenario = "failures";
      if (gv_sim_new(&s, &oo.cfg) < 0) {
        fprintf(stderr, "grapevine-sim: out of memory\n");
        rc = 1;
        break;
      }
      form_for(s, &oo);
      for (int f = 0; f < SWEEP_POINTS && rc == 0; f++) {
        if (running == o->jobs)
          rc = sweep_reap(kids, &running, true);
        oo.fail_frac = f / 10.0;
        if (rc == 0 &&
            (rc = sweep_fork(&oo, s, &res[f][repair][k], &kids[running])) == 0)
          running++;
      }
      for (unsigned i = 0; rc != 0 && i < running; i++)
        kill(kids[i].pid, SIGKILL); /* the sweep has failed: stop the rest */
      while (running > 0) {
        int r = sweep_reap(kids, &running, rc == 0);
        if (rc == 0)
          rc = r;
      }
      progress(o, "sweep: %s, network %d of %d done",
               repair ? "grapevine" : "plain push", k + 1, SWEEP_SEEDS);
      gv_sim_free(s);
    }
  free(kids);
  if (rc != 0) {
    cJSON_Delete(arr);
    return rc;
  }
  for (int f = 0; f < SWEEP_POINTS; f++) {
    double rel[2];
    for (int repair = 1; repair >= 0; repair--) {
      double sum_rel = 0, sum_rmr = 0;
      for (int k = 0; k < SWEEP_SEEDS; k++) {
        sum_rel += res[f][repair][k].reliability;
        sum_rmr += res[f][repair][k].rmr;
      }
      rel[repair] = sum_rel / SWEEP_SEEDS;
      cJSON *e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "fail_frac", f / 10.0);
      cJSON_AddBoolToObject(e, "repair", repair);
      cJSON_AddNumberToObject(e, "reliability", rel[repair]);
      cJSON_AddNumberToObject(e, "rmr",
                              round(sum_rmr / SWEEP_SEEDS * 10000) / 10000);
      cJSON_AddItemToArray(arr, e);
      progress(o, "sweep fail %.1f %s: mean reliability %.5f over %d seeds",
               f / 10.0, repair ? "grapevine" : "plain push", rel[repair],
               SWEEP_SEEDS);
    }
    off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%.1f,%.6f,%.6f\n",
                            f / 10.0, rel[1], rel[0]);
  }
  if (o->out != NULL) {
    mkdir(o->out, 0755);
    gv_sim_write_file(o->out, "reliability.csv", csv);
    gv_sim_write_file(
        o->out, "reliability.gp",
        "set terminal svg size 640,400\nset output "
        "'reliability.svg'\nset datafile separator ','\n"
        "set xlabel 'fraction of nodes crashed'\nset ylabel "
        "'reliability (live nodes reached)'\nset yrange [0:1.02]\n"
        "set grid\nset key bottom left\nplot 'reliability.csv' every "
        "::1 using 1:2 with linespoints lw 2 title 'grapevine "
        "(repair)', '' every ::1 using 1:3 with linespoints lw 2 "
        "title 'plain push'\n");
    gv_sim_plot(o->out, "reliability");
  }
  {
    cJSON *j = cJSON_CreateObject();
    char *txt;
    cJSON_AddNumberToObject(j, "nodes", o->cfg.nodes);
    cJSON_AddNumberToObject(j, "seed", (double)o->cfg.seed);
    cJSON_AddStringToObject(j, "scenario", "sweep");
    cJSON_AddItemToObject(j, "points", arr);
    txt = o->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
    puts(txt);
    free(txt);
    cJSON_Delete(j);
  }
  return 0;
}

/* The single scenario at each upload cap: none, then 1000 down to 16 kB/s
 * (or none and --upload-cap's alone). */
static int bandwidth(const opts *o) {
  static const uint32_t caps[] = {0, 1000, 256, 64, 16};
  gv_bw_row rows[sizeof(caps) / sizeof(caps[0])];
  size_t n = 0;

  for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
    opts oo = *o;
    gv_sim *s;
    result r;
    extra x;
    uint64_t *sent0 = NULL;
    if (o->cfg.upload_kbps > 0 && k > 1)
      break;
    oo.cfg.upload_kbps =
        k == 0 || o->cfg.upload_kbps == 0 ? caps[k] : o->cfg.upload_kbps;
    oo.scenario = "single";
    if (gv_sim_new(&s, &oo.cfg) < 0) {
      fprintf(stderr, "grapevine-sim: out of memory\n");
      return 1;
    }
    x.j = cJSON_CreateObject();
    form_for(s, &oo);
    follow(&oo, s, &r, &x, &sent0);
    check_or_die(s, &oo);
    gv_bw_fill(&rows[n], s);
    rows[n].reliability = r.reliability;
    rows[n].rmr = r.rmr;
    rows[n].p50 = r.p50;
    rows[n].p90 = r.p90;
    rows[n].p99 = r.p99;
    rows[n].max = r.max;
    progress(o, "upload cap %u kB/s: reliability %.5f, p50 %.0f ms",
             oo.cfg.upload_kbps, r.reliability, r.p50);
    n++;
    free(r.lat);
    free(sent0);
    cJSON_Delete(x.j);
    gv_sim_free(s);
  }
  return gv_bw_report(&o->cfg, rows, n, o->out, o->json);
}

/* ---- command line ---- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: grapevine-sim --nodes N [options]\n\n"
          "Runs N copies of the real gossip engine over a virtual network and "
          "clock,\ndeterministically from a seed, and reports how a broadcast "
          "spread.\n\n"
          "  --nodes N            network size (required)\n"
          "  --fanout K           eager push targets (3)\n"
          "  --fanout-announced K ...once a neighbour announced the message\n"
          "                       (fanout - 1)\n"
          "  --ttl T              initial ttl of announcements (32)\n"
          "  --seed S             seed of everything random (1)\n"
          "  --fail-frac F        crash this fraction after formation, before "
          "the\n"
          "                       broadcast, unannounced (0)\n"
          "  --loss P             drop this fraction of frames (0)\n"
          "  --silent-frac F      fraction of non-broadcasting nodes (0)\n"
          "  --latency-ms MIN:MAX one-way link latency (10:100)\n"
          "  --scenario NAME      single, failures, loss, churn, partition,\n"
          "                       tracker-down, silent-majority, join, flood, "
          "sweep,\n"
          "                       relay (agents message each other through "
          "the relay\n"
          "                       cores while nodes crash; --nodes defaults "
          "to 200,\n"
          "                       --silent-frac to 0.8), harvest (attackers "
          "collect\n"
          "                       silent nodes' addresses; --nodes 200, "
          "--silent-frac 0.5),\n"
          "                       eclipse, sybil, spam, forged (attacks; "
          "--nodes 1000,\n"
          "                       forged 300 with real signatures),\n"
          "                       cold-boot (every node starts at once from "
          "the tracker's\n"
          "                       bootstrap nodes), bandwidth (single at "
          "upload caps\n"
          "                       none, 1000, 256, 64, 16 kB/s),\n"
          "                       turnover (churn over time, broadcasts "
          "throughout;\n"
          "                       --nodes 500), steady (background traffic "
          "at the\n"
          "                       daemon's intervals; --nodes 1000, "
          "--silent-frac 0.5)\n"
          "  --rate R             relay: messages per agent per second (0.5);\n"
          "                       spam: announcements, forged: forged records "
          "per\n"
          "                       attacker per second (10, 20)\n"
          "  --crash-rate C       relay: node crashes per second, network-wide "
          "(0.5)\n"
          "  --duration-s D       relay: seconds of sends and crashes (60);\n"
          "                       attacks: seconds of attack (eclipse 120, "
          "else 60);\n"
          "                       cold-boot: seconds followed (60, >= 50)\n"
          "  --drain-s D          relay: then at most this long without "
          "(900)\n"
          "  --attackers A        harvest: the attacker's share of the "
          "broadcasting\n"
          "                       nodes (default: the table for 0.01, 0.05, "
          "0.2);\n"
          "                       attacks: a share (< 1) of --nodes or a "
          "count\n"
          "                       (eclipse 0.1, sybil 5, spam 0.01, forged "
          "0.02)\n"
          "  --sybils N           sybil: fresh ids the attackers announce "
          "(5000)\n"
          "  --guards on|off      harvest: silent nodes keep entry guards "
          "(both)\n"
          "  --duration D         simulated time, a number with s, m or h; a "
          "bare number\n"
          "                       is hours for harvest (24), minutes for "
          "turnover (30)\n"
          "                       and steady (10)\n"
          "  --bootstraps B       cold-boot: bootstrap nodes the tracker "
          "lists (16)\n"
          "  --upload-cap KBPS    per-node upload cap, kB/s (none); "
          "bandwidth: sweep\n"
          "                       none and this cap only\n"
          "  --session-dist D     turnover: weibull or pareto session lengths "
          "(weibull)\n"
          "  --session-shape K    turnover: Weibull k (0.6) or Pareto alpha "
          "(1.5, > 1)\n"
          "  --session-mean S     turnover: mean session, seconds (600)\n"
          "  --downtime-mean S    turnover: mean downtime, seconds, "
          "exponential (300)\n"
          "  --bcast-every S      turnover: a broadcast every S seconds (10)\n"
          "  --sample-every S     turnover: tables sampled every S seconds "
          "(30)\n"
          "  --observers K        turnover: nodes whose tables are sampled "
          "(200)\n"
          "  --churn-frac F       churn: nodes replaced during the broadcast "
          "(0.1)\n"
          "  --active K           links a node aims for (5)\n"
          "  --no-repair          plain push: no lazy push, no pulls\n"
          "  --stub-sigs          SIMULATOR ONLY: sign and verify nothing\n"
          "  --threads T          run on T threads, 1..64 (1): deterministic "
          "for the\n"
          "                       same seed and T, another sample than 1's; "
          "the\n"
          "                       scenarios " THREADED_SCENARIOS " only\n"
          "  --jobs J             sweep: run J points at once, each a process "
          "forked\n"
          "                       from the formed network (1); the same "
          "output for\n"
          "                       any J, and each needs up to the "
          "network's memory\n"
          "  --out DIR            write CSV series and gnuplot SVG plots\n"
          "  --json               one JSON object on stdout\n"
          "  --progress S         a progress line on stderr every S s of a "
          "run (5);\n"
          "                       0: none\n"
          "  --no-timing          leave out wall-clock keys (byte-identical "
          "output)\n\n"
          "Progress goes to stderr: each phase, and a line every 5 s "
          "(--progress) while\na run goes on.\n"
          "Exit status: 0 ok, 2 usage, 3 an invariant was violated (the seed "
          "and the\ncommand that reproduces it are printed).\n");
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return errno == 0 && *end == '\0' && *out >= lo && *out <= hi ? 0 : -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  *out = strtoull(s, &end, 10);
  return errno == 0 && *end == '\0' && *s != '-' && *out >= lo && *out <= hi
             ? 0
             : -1;
}

/* --duration D: a number, then s, m or h; without a unit, the scenario's
 * (hours for harvest, minutes for turnover and steady). Harvest keeps whole
 * hours. */
static int parse_duration(opts *o) {
  const char *sc = o->scenario, *d = o->duration;
  bool harvest = strcmp(sc, "harvest") == 0;
  int64_t *dst = harvest                       ? &o->harvest.duration_ms
                 : strcmp(sc, "turnover") == 0 ? &o->turnover.duration_ms
                 : strcmp(sc, "steady") == 0   ? &o->steady.duration_ms
                                               : NULL;
  double unit = harvest ? 3600000 : 60000, v, lo = harvest ? 3600000 : 60000,
         hi = harvest ? 168 * 3600000.0 : 24 * 3600000.0;
  char num[64], *end;
  size_t len;

  if (d == NULL)
    return 0;
  len = strlen(d);
  if (dst == NULL) {
    fprintf(stderr, "grapevine-sim: --duration applies to harvest, turnover "
                    "and steady (relay: --duration-s)\n");
    return -1;
  }
  if (len > 0 && len < sizeof(num) && strchr("smh", d[len - 1]) != NULL) {
    unit = d[len - 1] == 's' ? 1000 : d[len - 1] == 'm' ? 60000 : 3600000;
    len--;
  }
  if (len == 0 || len >= sizeof(num))
    goto bad;
  memcpy(num, d, len);
  num[len] = '\0';
  errno = 0;
  v = strtod(num, &end) * unit;
  if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi) ||
      (harvest && fmod(v, 3600000) != 0))
    goto bad;
  *dst = (int64_t)v;
  return 0;
bad:
  fprintf(stderr, "grapevine-sim: %s (got '%s')\n",
          harvest ? "--duration takes 1..168 (whole hours)"
                  : "--duration takes 1m..24h (a bare number is minutes)",
          d);
  return -1;
}

/* Turnover's shape by distribution; its windows fit the run. */
static int check_turnover(opts *o) {
  gv_turnover_opts *t = &o->turnover;
  const char *bad = NULL;

  if (strcmp(o->scenario, "turnover") != 0)
    return 0;
  if (t->shape < 0)
    t->shape = t->dist == GV_SESSION_WEIBULL ? 0.6 : 1.5;
  else if (t->dist == GV_SESSION_PARETO && t->shape <= 1)
    bad = "--session-shape must be above 1 for pareto (the mean is "
          "infinite otherwise)";
  if (bad == NULL && (t->bcast_every_ms > t->duration_ms ||
                      t->sample_every_ms > t->duration_ms))
    bad = "--bcast-every and --sample-every must fit in --duration";
  if (bad != NULL) {
    fprintf(stderr, "grapevine-sim: %s\n", bad);
    return -1;
  }
  return 0;
}

static int parse_args(int argc, char **argv, opts *o) {
  static const struct option lo[] = {
      {"nodes", required_argument, NULL, 'n'},
      {"fanout", required_argument, NULL, 'f'},
      {"fanout-announced", required_argument, NULL, 'A'},
      {"ttl", required_argument, NULL, 't'},
      {"seed", required_argument, NULL, 's'},
      {"fail-frac", required_argument, NULL, 'F'},
      {"loss", required_argument, NULL, 'l'},
      {"silent-frac", required_argument, NULL, 'S'},
      {"latency-ms", required_argument, NULL, 'L'},
      {"scenario", required_argument, NULL, 'c'},
      {"churn-frac", required_argument, NULL, 'C'},
      {"active", required_argument, NULL, 'a'},
      {"no-repair", no_argument, NULL, 'R'},
      {"stub-sigs", no_argument, NULL, 'X'},
      {"out", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, 'j'},
      {"no-timing", no_argument, NULL, 'T'},
      {"rate", required_argument, NULL, 'r'},
      {"crash-rate", required_argument, NULL, 'K'},
      {"duration-s", required_argument, NULL, 'D'},
      {"drain-s", required_argument, NULL, 'd'},
      {"attackers", required_argument, NULL, 'y'},
      {"guards", required_argument, NULL, 'g'},
      {"duration", required_argument, NULL, 'u'},
      {"sybils", required_argument, NULL, 'Y'},
      {"bootstraps", required_argument, NULL, 'B'},
      {"upload-cap", required_argument, NULL, 'U'},
      {"session-dist", required_argument, NULL, 1001},
      {"session-shape", required_argument, NULL, 1002},
      {"session-mean", required_argument, NULL, 1003},
      {"downtime-mean", required_argument, NULL, 1004},
      {"bcast-every", required_argument, NULL, 1005},
      {"sample-every", required_argument, NULL, 1006},
      {"observers", required_argument, NULL, 1007},
      {"threads", required_argument, NULL, 1008},
      {"jobs", required_argument, NULL, 1009},
      {"progress", required_argument, NULL, 1010},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static const char *scenarios[] = {
      "single",       "failures",        "loss",      "churn",    "partition",
      "tracker-down", "silent-majority", "join",      "flood",    "sweep",
      "relay",        "harvest",         "eclipse",   "sybil",    "spam",
      "forged",       "cold-boot",       "bandwidth", "turnover", "steady"};
  uint64_t v;
  int opt, ok = 0;

  memset(o, 0, sizeof(*o));
  o->cfg.fanout = 3;
  o->cfg.fanout_announced = 0; /* default: fanout - 1 */
  o->cfg.ttl = 32;
  o->cfg.seed = 1;
  o->cfg.lat_min = 10;
  o->cfg.lat_max = 100;
  o->cfg.repair = true;
  o->cfg.active_target = 5;
  o->cfg.candidates = 8;
  o->cfg.shuffle_ms = 60000;
  o->cfg.threads = 1;
  o->cfg.progress_s = 5;
  o->jobs = 1;
  o->scenario = "single";
  o->churn_frac = 0.1;
  o->relay.rate = 0.5;
  o->relay.crash_rate = 0.5;
  o->relay.duration_ms = 60000;
  o->relay.drain_ms = 900000;
  o->timing = true;
  o->harvest.attackers = -1;
  o->harvest.guards = -1;
  o->harvest.duration_ms = 24 * 3600000LL;
  o->attack.attackers = -1;
  o->attack.rate = -1;
  o->boot.bootstraps = 16;
  o->turnover.dist = GV_SESSION_WEIBULL;
  o->turnover.shape = -1; /* by distribution */
  o->turnover.session_mean_ms = 600000;
  o->turnover.downtime_mean_ms = 300000;
  o->turnover.duration_ms = 30 * 60000LL;
  o->turnover.bcast_every_ms = 10000;
  o->turnover.sample_every_ms = 30000;
  o->turnover.observers = 200;
  o->steady.duration_ms = 10 * 60000LL;
  o->fail_frac = -1;
  o->cfg.loss = -1;
  o->cfg.silent_frac = -1;
  while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    const char *bad = NULL;
    double d;
    switch (opt) {
    case 'n':
      if (parse_u64(optarg, 2, 4000000, &v) < 0)
        bad = "--nodes takes 2..4000000";
      o->cfg.nodes = (uint32_t)v;
      break;
    case 'f':
      if (parse_u64(optarg, 1, 16, &v) < 0)
        bad = "--fanout takes 1..16";
      o->cfg.fanout = (unsigned)v;
      break;
    case 'A':
      if (parse_u64(optarg, 1, 16, &v) < 0)
        bad = "--fanout-announced takes 1..16";
      o->cfg.fanout_announced = (unsigned)v;
      break;
    case 't':
      if (parse_u64(optarg, 1, GV_TTL_ANNOUNCE, &v) < 0)
        bad = "--ttl takes 1..32";
      o->cfg.ttl = (unsigned)v;
      break;
    case 's':
      if (parse_u64(optarg, 0, UINT64_MAX, &v) < 0)
        bad = "--seed takes a non-negative integer";
      o->cfg.seed = v;
      break;
    case 'F':
      if (parse_double(optarg, 0, 0.95, &o->fail_frac) < 0)
        bad = "--fail-frac takes 0..0.95";
      break;
    case 'l':
      if (parse_double(optarg, 0, 0.9, &o->cfg.loss) < 0)
        bad = "--loss takes 0..0.9";
      break;
    case 'S':
      if (parse_double(optarg, 0, 0.99, &o->cfg.silent_frac) < 0)
        bad = "--silent-frac takes 0..0.99";
      break;
    case 'L':
      if (sscanf(optarg, "%d:%d", &o->cfg.lat_min, &o->cfg.lat_max) != 2 ||
          o->cfg.lat_min < 1 || o->cfg.lat_max < o->cfg.lat_min ||
          o->cfg.lat_max > 10000)
        bad = "--latency-ms takes MIN:MAX, 1 <= MIN <= MAX <= 10000";
      break;
    case 'c': o->scenario = optarg; break;
    case 'C':
      if (parse_double(optarg, 0, 0.9, &d) < 0)
        bad = "--churn-frac takes 0..0.9";
      o->churn_frac = d;
      break;
    case 'a':
      if (parse_u64(optarg, 1, 32, &v) < 0)
        bad = "--active takes 1..32";
      o->cfg.active_target = (unsigned)v;
      break;
    case 'R': o->cfg.repair = false; break;
    case 'X': o->cfg.stub_sigs = true; break;
    case 'o': o->out = optarg; break;
    case 'j': o->json = true; break;
    case 'T': o->timing = false; break;
    case 'r':
      if (parse_double(optarg, 0.001, 1000, &o->relay.rate) < 0)
        bad = "--rate takes 0.001..1000";
      o->attack.rate = o->relay.rate;
      break;
    case 'K':
      if (parse_double(optarg, 0, 1000, &o->relay.crash_rate) < 0)
        bad = "--crash-rate takes 0..1000";
      break;
    case 'D':
      if (parse_u64(optarg, 1, 86400, &v) < 0)
        bad = "--duration-s takes 1..86400";
      o->relay.duration_ms = (int64_t)v * 1000;
      o->attack.duration_ms = o->relay.duration_ms;
      break;
    case 'd':
      if (parse_u64(optarg, 1, 86400, &v) < 0)
        bad = "--drain-s takes 1..86400";
      o->relay.drain_ms = (int64_t)v * 1000;
      break;
    case 'y':
      /* harvest takes a share up to 0.9; the attacks a count too */
      if (parse_double(optarg, 0, 1000000, &o->harvest.attackers) < 0)
        bad = "--attackers takes 0..0.9 (harvest) or a count up to 1000000";
      o->attack.attackers = o->harvest.attackers;
      break;
    case 'Y':
      if (parse_u64(optarg, 1, 1000000, &v) < 0)
        bad = "--sybils takes 1..1000000";
      o->attack.sybils = (uint32_t)v;
      break;
    case 'g':
      if (strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0)
        o->harvest.guards = strcmp(optarg, "on") == 0;
      else
        bad = "--guards takes on or off";
      break;
    case 'u': o->duration = optarg; break;
    case 1001:
      if (strcmp(optarg, "weibull") == 0 || strcmp(optarg, "pareto") == 0)
        o->turnover.dist = strcmp(optarg, "weibull") == 0 ? GV_SESSION_WEIBULL
                                                          : GV_SESSION_PARETO;
      else
        bad = "--session-dist takes weibull or pareto";
      break;
    case 1002:
      if (parse_double(optarg, 0.1, 10, &o->turnover.shape) < 0)
        bad = "--session-shape takes 0.1..10";
      break;
    case 1003:
      if (parse_double(optarg, 1, 86400, &d) < 0)
        bad = "--session-mean takes 1..86400 (seconds)";
      o->turnover.session_mean_ms = d * 1000;
      break;
    case 1004:
      if (parse_double(optarg, 1, 86400, &d) < 0)
        bad = "--downtime-mean takes 1..86400 (seconds)";
      o->turnover.downtime_mean_ms = d * 1000;
      break;
    case 1005:
      if (parse_u64(optarg, 1, 3600, &v) < 0)
        bad = "--bcast-every takes 1..3600 (whole seconds)";
      o->turnover.bcast_every_ms = (int64_t)v * 1000;
      break;
    case 1006:
      if (parse_u64(optarg, 1, 3600, &v) < 0)
        bad = "--sample-every takes 1..3600 (whole seconds)";
      o->turnover.sample_every_ms = (int64_t)v * 1000;
      break;
    case 1007:
      if (parse_u64(optarg, 1, 100000, &v) < 0)
        bad = "--observers takes 1..100000";
      o->turnover.observers = (uint32_t)v;
      break;
    case 1008:
      if (parse_u64(optarg, 1, GV_SIM_THREADS_MAX, &v) < 0)
        bad = "--threads takes 1..64";
      o->cfg.threads = (unsigned)v;
      break;
    case 1009:
      if (parse_u64(optarg, 1, JOBS_MAX, &v) < 0)
        bad = "--jobs takes 1..64";
      o->jobs = (unsigned)v;
      break;
    case 1010:
      if (parse_double(optarg, 0, 3600, &o->cfg.progress_s) < 0)
        bad = "--progress takes 0..3600 (seconds; 0: no progress lines)";
      break;
    case 'B':
      if (parse_u64(optarg, 1, 1024, &v) < 0)
        bad = "--bootstraps takes 1..1024";
      o->boot.bootstraps = (unsigned)v;
      break;
    case 'U':
      if (parse_u64(optarg, 1, 10000000, &v) < 0)
        bad = "--upload-cap takes 1..10000000 (kB/s)";
      o->cfg.upload_kbps = (uint32_t)v;
      break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); return -1;
    }
    if (bad != NULL) {
      fprintf(stderr, "grapevine-sim: %s (got '%s')\n", bad, optarg);
      return -1;
    }
  }
  if (o->cfg.nodes == 0 && o->scenario != NULL &&
      strcmp(o->scenario, "relay") == 0)
    o->cfg.nodes = 200;
  if (o->cfg.nodes == 0 && o->scenario != NULL &&
      strcmp(o->scenario, "harvest") == 0)
    o->cfg.nodes = 200;
  if (o->cfg.nodes == 0 && o->scenario != NULL &&
      gv_attack_kind_from_name(o->scenario) >= 0)
    o->cfg.nodes = gv_attack_default_nodes(
        (gv_attack_kind)gv_attack_kind_from_name(o->scenario));
  if (o->cfg.nodes == 0 && o->scenario != NULL &&
      strcmp(o->scenario, "turnover") == 0)
    o->cfg.nodes = 500;
  if (o->cfg.nodes == 0 && o->scenario != NULL &&
      strcmp(o->scenario, "steady") == 0)
    o->cfg.nodes = 1000;
  if (optind != argc || o->cfg.nodes == 0) {
    fprintf(stderr, "grapevine-sim: %s\n",
            o->cfg.nodes == 0 ? "--nodes N is required"
                              : "unexpected argument");
    usage(stderr);
    return -1;
  }
  for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
    ok |= strcmp(o->scenario, scenarios[i]) == 0;
  if (!ok) {
    fprintf(stderr, "grapevine-sim: unknown scenario '%s'\n", o->scenario);
    return -1;
  }
  if (strcmp(o->scenario, "cold-boot") == 0 &&
      (o->boot.bootstraps >= o->cfg.nodes || o->relay.duration_ms < 50000)) {
    fprintf(stderr, "grapevine-sim: cold-boot needs --bootstraps below "
                    "--nodes and --duration-s 50 or more\n");
    return -1;
  }
  if (strcmp(o->scenario, "join") == 0 && o->cfg.nodes > 1000) {
    fprintf(stderr, "grapevine-sim: the join scenario fills every table: "
                    "use --nodes 1000 or fewer\n");
    return -1;
  }
  if (strcmp(o->scenario, "harvest") == 0 && o->harvest.attackers > 0.9) {
    fprintf(stderr, "grapevine-sim: --attackers takes 0..0.9 for harvest\n");
    return -1;
  }
  if (parse_duration(o) < 0 || check_turnover(o) < 0)
    return -1;
  if (o->jobs > 1 && strcmp(o->scenario, "sweep") != 0) {
    fprintf(stderr, "grapevine-sim: --jobs applies to the sweep scenario\n");
    return -1;
  }
  if (o->cfg.threads > 1) {
    static const char *threaded[] = {
        "single",       "failures",        "loss", "churn", "partition",
        "tracker-down", "silent-majority", "join", "flood"};
    bool fits = false;
    for (size_t i = 0; i < sizeof(threaded) / sizeof(threaded[0]); i++)
      fits |= strcmp(o->scenario, threaded[i]) == 0;
    if (!fits) {
      fprintf(stderr,
              "grapevine-sim: --threads above 1 takes the scenarios "
              "%s; '%s' %s\n",
              THREADED_SCENARIOS, o->scenario,
              strcmp(o->scenario, "sweep") == 0
                  ? "runs its points in processes of their own: --jobs J"
                  : "watches every frame or event from one thread");
      return -1;
    }
  }
  /* Scenario defaults, unless given. */
  if (o->fail_frac < 0)
    o->fail_frac = strcmp(o->scenario, "failures") == 0 ? 0.3 : 0;
  if (o->cfg.loss < 0)
    o->cfg.loss = strcmp(o->scenario, "loss") == 0 ? 0.05 : 0;
  if (o->cfg.silent_frac < 0)
    o->cfg.silent_frac = strcmp(o->scenario, "silent-majority") == 0 ||
                                 strcmp(o->scenario, "relay") == 0
                             ? 0.8
                         : strcmp(o->scenario, "harvest") == 0 ||
                                 strcmp(o->scenario, "steady") == 0
                             ? 0.5
                             : 0;
  if (strcmp(o->scenario, "partition") == 0)
    o->cfg.shuffle_ms = 2000;
  if (o->cfg.fanout_announced == 0)
    o->cfg.fanout_announced = o->cfg.fanout > 1 ? o->cfg.fanout - 1 : 1;
  o->argc = argc;
  o->argv = argv;
  o->relay.out = o->out;
  o->relay.json = o->json;
  o->relay.timing = o->timing;
  o->relay.argc = argc;
  o->relay.argv = argv;
  o->harvest.out = o->out;
  o->harvest.json = o->json;
  o->harvest.timing = o->timing;
  o->harvest.argc = argc;
  o->harvest.argv = argv;
  if (gv_attack_kind_from_name(o->scenario) >= 0) {
    const char *why;
    o->attack.kind = (gv_attack_kind)gv_attack_kind_from_name(o->scenario);
    o->attack.out = o->out;
    o->attack.json = o->json;
    o->attack.timing = o->timing;
    o->attack.argc = argc;
    o->attack.argv = argv;
    if ((why = gv_attack_check(&o->cfg, &o->attack)) != NULL) {
      fprintf(stderr, "grapevine-sim: %s\n", why);
      return -1;
    }
  }
  o->boot.duration_ms = o->relay.duration_ms;
  o->boot.out = o->out;
  o->boot.json = o->json;
  o->boot.timing = o->timing;
  o->boot.argc = argc;
  o->boot.argv = argv;
  o->turnover.out = o->out;
  o->turnover.json = o->json;
  o->turnover.timing = o->timing;
  o->turnover.argc = argc;
  o->turnover.argv = argv;
  o->steady.out = o->out;
  o->steady.json = o->json;
  o->steady.timing = o->timing;
  o->steady.argc = argc;
  o->steady.argv = argv;
  return 0;
}

/* glibc's heap on transparent huge pages (THP is "madvise" here): at
 * 300k nodes, with a 2.6 GB heap, the tunable glibc.malloc.hugetlb=1
 * (glibc 2.35) took about 7% of the CPU time (user and system) and 5-10%
 * of the wall time away: fewer TLB misses (docs/SIMULATOR.md, "Fewer
 * trips through malloc"). A tunable is read at start-up only, so the program
 * runs itself again, once, with it added to GLIBC_TUNABLES; not when
 * GLIBC_TUNABLES names it already (glibc.malloc.hugetlb=0 turns it
 * off), nor under a tool that preloads itself (valgrind, heaptrack: the
 * new image would run without it), nor with a sanitizer's malloc. If the
 * exec fails, this one runs on as it is.
 *
 * With it, glibc.malloc.top_pad=64 MiB: the arenas of the lanes' threads
 * (--threads) grow their 64 MiB heaps a few pages at a time, and a page
 * faults in huge only if its whole 2 MiB lies inside the mapping; with the
 * padding a new heap is mapped whole at once, and the lane advises it
 * (net.c, lane_thp). The main arena only asks the kernel for more in
 * bigger steps; untouched pages cost nothing. */
/* Whether malloc's heap is on huge pages: GLIBC_TUNABLES, as this process
 * started, sets glibc.malloc.hugetlb=1 (thp_reexec, or the user). */
static bool huge_pages(void) {
  const char *t = getenv("GLIBC_TUNABLES");
  return t != NULL && strstr(t, "glibc.malloc.hugetlb=1") != NULL;
}

static void thp_reexec(char **argv) {
#ifndef __SANITIZE_ADDRESS__
  static const char tun[] =
      "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=67108864";
  const char *old = getenv("GLIBC_TUNABLES"), *pre = getenv("LD_PRELOAD");
  const char *base0 = strrchr(argv[0], '/'), *base;
  char self[4096], *val;
  ssize_t n;

  /* Once (GV_SIM_TUNED marks the second run: a loader that drops
   * GLIBC_TUNABLES cannot make it loop), not for a setuid run, and only
   * when /proc/self/exe is this program, not a loader that was asked to
   * run it (ld.so build/grapevine-sim ...). The program's own path is
   * run, so that the process keeps its name. */
  if (getenv("GV_SIM_TUNED") != NULL || getauxval(AT_SECURE) != 0 ||
      (old != NULL && strstr(old, "glibc.malloc.hugetlb") != NULL) ||
      (pre != NULL && *pre != '\0'))
    return;
  if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
    return;
  self[n] = '\0';
  base = strrchr(self, '/');
  if (strcmp(base ? base + 1 : self, base0 ? base0 + 1 : argv[0]) != 0)
    return;
  if ((val = malloc((old ? strlen(old) + 1 : 0) + sizeof(tun))) == NULL)
    return;
  sprintf(val, "%s%s%s", old ? old : "", old && *old ? ":" : "", tun);
  if (setenv("GLIBC_TUNABLES", val, 1) == 0 &&
      setenv("GV_SIM_TUNED", "1", 1) == 0)
    execv(self, argv);
  /* The exec failed: run on as it is. */
  if (old != NULL)
    setenv("GLIBC_TUNABLES", old, 1);
  else
    unsetenv("GLIBC_TUNABLES");
  unsetenv("GV_SIM_TUNED");
  free(val);
#else
  (void)argv;
#endif
}

int main(int argc, char **argv) {
  opts o;
  gv_sim *s;
  result r;
  extra x;
  uint64_t *sent0 = NULL;
  double t0;
  cJSON *j;
  char *txt;

  thp_reexec(argv);
  if (parse_args(argc, argv, &o) < 0)
    return 2;
  o.cfg.huge_pages = huge_pages();
  if (strcmp(o.scenario, "sweep") == 0)
    return sweep(&o);
  if (strcmp(o.scenario, "relay") == 0) {
    if (o.cfg.stub_sigs) {
      fprintf(stderr, "grapevine-sim: the relay seals with the nodes' "
                      "keys: --stub-sigs does not apply\n");
      return 2;
    }
    return gv_relaysim_run(&o.cfg, &o.relay);
  }
  if (strcmp(o.scenario, "harvest") == 0)
    return gv_harvest_run(&o.cfg, &o.harvest);
  if (gv_attack_kind_from_name(o.scenario) >= 0)
    return gv_attack_run(&o.cfg, &o.attack);
  if (strcmp(o.scenario, "cold-boot") == 0)
    return gv_boot_run(&o.cfg, &o.boot);
  if (strcmp(o.scenario, "bandwidth") == 0)
    return bandwidth(&o);
  if (strcmp(o.scenario, "turnover") == 0)
    return gv_turnover_run(&o.cfg, &o.turnover);
  if (strcmp(o.scenario, "steady") == 0)
    return gv_steady_run(&o.cfg, &o.steady);
  t0 = now_s();
  if (gv_sim_new(&s, &o.cfg) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  x.j = cJSON_CreateObject();
  form_for(s, &o);
  follow(&o, s, &r, &x, &sent0);
  gv_sim_count_indegree(s);
  check_or_die(s, &o);
  j = report(&o, s, &r, now_s() - t0);
  if (o.cfg.upload_kbps > 0)
    gv_bw_keys(s, j);
  for (cJSON *it = x.j->child; it != NULL;) {
    cJSON *next = it->next;
    cJSON_AddItemToObject(j, it->string, cJSON_DetachItemViaPointer(x.j, it));
    it = next;
  }
  if (o.out != NULL)
    write_series(&o, s, &r, sent0);
  txt = o.json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  cJSON_Delete(x.j);
  free(r.lat);
  free(sent0);
  /* The kernel takes the whole heap back at exit: freeing every node
   * block by block (glibc consolidating its bins) was 7% of a 100k run's
   * CPU. A sanitizer build frees them, so that its leak check sees every
   * block. */
#ifdef __SANITIZE_ADDRESS__
  gv_sim_free(s);
#endif
  return 0;
}

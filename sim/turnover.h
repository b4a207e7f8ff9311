/* grapevine-sim --scenario turnover: churn over time. See docs/SIMULATOR.md
 * and docs/EXPERIMENTS.md ("Churn over time").
 *
 * The network: --nodes N (500), --silent-frac (0). Every node alternates
 * sessions and downtimes for --duration (30 min): sessions heavy-tailed
 * (Weibull with shape k, or Pareto with shape alpha, scaled to the mean
 * --session-mean), downtimes exponential (--downtime-mean). After formation
 * (5 s) every node announces once, at a random moment of a 60 s warm-up, as
 * the daemon does after its first link: the tables hold what a network that
 * has run for a while holds (up to the 1024-entry cap). The churn starts
 * in churn equilibrium: a node is up with probability S/(S+D), and an up
 * node's first session is the residual of a length-biased draw (what an
 * observer arriving at a random time sees). Leaving is gv_sim_kill() (the
 * OS closes the node's TCP connections as the laptop shuts down; its peers
 * see the links go); returning is gv_sim_restart() (same identity and
 * address, an empty table, `candidates` tracker answers). Engines run at
 * their real intervals (heartbeat, shuffle; gv_engine_cfg_default) and each
 * node re-announces as the daemon does (1 s after its first link, then
 * every 30 min, node/daemon.c).
 *
 * Broadcasts: every --bcast-every (10 s) a random live node with a link
 * announces; its reliability counts the nodes live for the whole window
 * (until the next broadcast). Tables: every --sample-every (30 s), on a
 * fixed set of --observers (200) nodes, freshness (the share of live
 * broadcasting nodes an observer's table names) and stale entries (entries
 * naming nodes that are down).
 */
#ifndef GV_SIM_TURNOVER_H
#define GV_SIM_TURNOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef enum gv_session_dist {
  GV_SESSION_WEIBULL,
  GV_SESSION_PARETO,
} gv_session_dist;

typedef struct gv_turnover_opts {
  gv_session_dist dist;    /* weibull */
  double shape;            /* Weibull k (0.6) or Pareto alpha (1.5) */
  double session_mean_ms;  /* 600 s */
  double downtime_mean_ms; /* 300 s */
  int64_t duration_ms;     /* 30 min */
  int64_t bcast_every_ms;  /* 10 s */
  int64_t sample_every_ms; /* 30 s */
  uint32_t observers;      /* 200 */
  const char *out;         /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_turnover_opts;

/* Runs the scenario and prints its report on stdout. Returns the exit
 * status: 0, 1 when out of memory, or 3 when an invariant failed. */
int gv_turnover_run(const gv_sim_cfg *cfg, const gv_turnover_opts *to);

#endif

/* grapevine-sim --scenario steady: what a node costs in the background. See
 * docs/SIMULATOR.md and docs/EXPERIMENTS.md ("Steady traffic").
 *
 * The network: --nodes N, --silent-frac (0.5), no churn, no broadcast of
 * the experimenter's. Every node runs at the daemon's real intervals:
 * engine heartbeats and shuffles (gv_engine_cfg_default), link PINGs
 * (gv_lcore_cfg_default), and its announcement every 30 min (node/daemon.c),
 * each node at its own phase, as in a network that has run for a while.
 * After formation (5 s) and a warm-up (60 s) the frames are counted for
 * --duration (10 min): messages and bytes, sent and received, per node per
 * second, by message type and by role (broadcasting, silent); and the
 * process CPU time per simulated node-second (left out with --no-timing).
 */
#ifndef GV_SIM_STEADY_H
#define GV_SIM_STEADY_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef struct gv_steady_opts {
  int64_t duration_ms; /* 10 min */
  const char *out;     /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_steady_opts;

/* Runs the scenario and prints its report on stdout. Returns the exit
 * status: 0, 1 when out of memory, or 3 when an invariant failed. */
int gv_steady_run(const gv_sim_cfg *cfg, const gv_steady_opts *so);

#endif

/* grapevine-sim --scenario harvest: how many silent nodes' addresses an
 * attacker who runs a share of the broadcasting nodes collects, with and
 * without entry guards (node/guard.h). See docs/EXPERIMENTS.md.
 *
 * The network: --nodes N (200), of which --silent-frac (0.5) are silent and
 * never leave. Of the broadcasting nodes, a share A are the attacker's: half of
 * them are there from the start, the other half join at times uniform over
 * the run; they never leave and behave well (so they score well). Honest
 * broadcasting nodes churn: sessions and downtimes exponential, with means
 * of 2 h and 30 min, except the operator's bootstrap nodes (5% of the
 * broadcasting, at least 5), which stay and which every silent node has
 * as operator-named seeds (--peer) besides its random (tracker) seeds. The
 * attacker's nodes claim to be bootstrap nodes in their records (and so
 * re-announce as often as those, within the shorter bootstrap expiry). Bootstrap nodes re-announce
 * every 30 min (as the daemon does), the others every 90 min (within the
 * 2 h expiry, at a third of the cost); heartbeats are off and signatures
 * stubbed (both only cost time here). A silent node is observed when
 * a dial of its reaches a live attacker's node: the TCP connection alone shows
 * its address.
 */
#ifndef GV_SIM_HARVEST_H
#define GV_SIM_HARVEST_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef struct gv_harvest_opts {
  double attackers;    /* A; < 0: the table over 0.01, 0.05, 0.2 */
  int guards;          /* 1 on, 0 off, -1 both */
  int64_t duration_ms; /* 24 h */
  const char *out;     /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_harvest_opts;

/* Runs the scenario (one row, or the table) and prints its report on
 * stdout. Returns the exit status: 0, or 3 when an engine's invariants
 * failed. */
int gv_harvest_run(const gv_sim_cfg *cfg, const gv_harvest_opts *ho);

#endif

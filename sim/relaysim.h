/* grapevine-sim --scenario relay: the real relay core (node/relay.c) on
 * every simulated node, as the link core's channel-2 service, with a
 * simulated store, agents, and crashes. See docs/SIMULATOR.md. */
#ifndef GV_SIM_RELAYSIM_H
#define GV_SIM_RELAYSIM_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef struct gv_relaysim_opts {
  double rate;         /* messages an agent sends per virtual second */
  double crash_rate;   /* node crashes per virtual second, network-wide */
  int64_t duration_ms; /* agents send and nodes crash this long */
  int64_t drain_ms;    /* then at most this long with neither */
  const char *out;     /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_relaysim_opts;

/* Runs the scenario and prints its report on stdout. Returns the exit
 * status: 0, or 3 when an invariant was violated (lost, duplicated or
 * reordered messages, an address leaked, a core's own check). */
int gv_relaysim_run(const gv_sim_cfg *cfg, const gv_relaysim_opts *ro);

#endif

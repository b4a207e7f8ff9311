/* grapevine-sim --scenario cold-boot, and the upload cap's report
 * (--upload-cap, --scenario bandwidth). See docs/EXPERIMENTS.md.
 *
 * Cold boot: every node starts at the same moment (t = 0) and knows only
 * what the tracker answers: the tracker lists bootstrap nodes only, so
 * every node is given the same --bootstraps B (16) nodes as its
 * candidates (a bootstrap node, the other B - 1). Nodes 0..B-1 are the
 * bootstrap nodes (broadcasting, bootstrap in their records); of the
 * others, --silent-frac (0) are silent. The run is followed for
 * --duration-s (60) seconds, sampled every 250 ms; at t = 5, 10 and 30 s a
 * random non-bootstrap node broadcasts its announcement, and each
 * broadcast's reliability is read 20 s after it was sent.
 *
 * Bandwidth: the upload cap is the virtual network's (net.h, cfg
 * upload_kbps); --scenario bandwidth runs the single scenario at each cap
 * of a sweep (main.c) and reports here.
 */
#ifndef GV_SIM_BOOT_H
#define GV_SIM_BOOT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef struct gv_boot_opts {
  unsigned bootstraps; /* B */
  int64_t duration_ms; /* how long the boot is followed (>= 50 s) */
  const char *out;     /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_boot_opts;

/* Runs the cold boot and prints its report on stdout. Returns the exit
 * status: 0, 1 out of memory, or 3 when an invariant failed. */
int gv_boot_run(const gv_sim_cfg *cfg, const gv_boot_opts *bo);

/* One point of the bandwidth sweep: the single scenario at one cap. */
typedef struct gv_bw_row {
  uint32_t cap_kbps; /* 0: none */
  double reliability, rmr;
  double p50, p90, p99, max;        /* delivery latency, ms */
  uint64_t frames;                  /* frames that went through the uplinks */
  double wait_mean_ms, wait_max_ms; /* their wait for the uplink */
} gv_bw_row;

/* Fills the cap's figures of r from s after a run (cap, frames, waits). */
void gv_bw_fill(gv_bw_row *r, const gv_sim *s);
/* Adds the cap's keys (upload_cap_kbps, uplink_wait_ms) to a scenario's
 * JSON; called only when a cap is set, so output without one is as
 * before. */
void gv_bw_keys(const gv_sim *s, cJSON *j);
/* Prints the sweep's report (and writes bandwidth.csv and its plot when
 * out is not NULL). Returns 0. */
int gv_bw_report(const gv_sim_cfg *cfg, const gv_bw_row *rows, size_t n,
                 const char *out, bool json);

#endif

/* Output helpers the scenarios share (moved out of main.c): percentiles of
 * a sorted sample, and files and gnuplot plots under --out. */
#ifndef GV_SIM_SIMOUT_H
#define GV_SIM_SIMOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"

/* qsort comparator for doubles, ascending. */
int gv_sim_cmp_double(const void *a, const void *b);
/* The p-quantile (0 < p <= 1) of v[0..n), sorted ascending; 0 if n is 0. */
double gv_sim_pct(const double *v, size_t n, double p);
/* Writes text to dir/name; -1 (and a message on stderr) on failure. */
int gv_sim_write_file(const char *dir, const char *name, const char *text);
/* Runs gnuplot on dir/name.gp where gnuplot exists; says so on stderr
 * when it does not (the .gp file and its CSV stay). */
void gv_sim_plot(const char *dir, const char *name);

/* Whether every live engine's invariants hold and no silent address was
 * sent (gv_sim_check); when not, says which at what time and prints the
 * command line that reproduces the run (argv[0..argc)) on stderr. */
bool gv_sim_checked(gv_sim *s, int argc, char **argv);

#endif

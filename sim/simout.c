/* Output helpers the scenarios share. See simout.h. */
#include "simout.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gv_sim_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double gv_sim_pct(const double *v, size_t n, double p) {
  size_t k;
  if (n == 0)
    return 0;
  k = (size_t)ceil(p * (double)n) - 1;
  return v[k < n ? k : n - 1];
}

int gv_sim_write_file(const char *dir, const char *name, const char *text) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return -1;
  }
  fputs(text, f);
  fclose(f);
  return 0;
}

void gv_sim_plot(const char *dir, const char *name) {
  char cmd[8400];
  snprintf(cmd, sizeof(cmd),
           "command -v gnuplot >/dev/null && cd '%s' && gnuplot %s.gp", dir,
           name);
  if (system(cmd) != 0)
    fprintf(stderr,
            "grapevine-sim: gnuplot not found or failed; %s/%s.gp "
            "and its CSV are written\n",
            dir, name);
}

bool gv_sim_checked(gv_sim *s, int argc, char **argv) {
  if (gv_sim_check(s) && s->ip_leaks == 0)
    return true;
  fprintf(stderr, "grapevine-sim: INVARIANT VIOLATED at +%lld ms: %s\n",
          (long long)(s->now - GV_SIM_T0),
          s->ip_leaks > 0 ? "a silent node's address was sent" : s->violation);
  fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
          (unsigned long long)s->cfg.seed);
  for (int i = 0; i < argc; i++)
    fprintf(stderr, " %s", argv[i]);
  fprintf(stderr, "\n");
  return false;
}

/* Output helpers the scenarios share: files in the --out directory and
 * their gnuplot figures. */
#ifndef GV_SIM_OUT_H
#define GV_SIM_OUT_H

/* Writes text to dir/name; 0, or -1 after saying why on stderr. */
int gv_sim_write_file(const char *dir, const char *name, const char *text);
/* Runs gnuplot on dir/name.gp (which writes dir/name.svg); where gnuplot
 * is missing or fails, says so on stderr and leaves the .gp and CSV. */
void gv_sim_plot(const char *dir, const char *name);

#endif

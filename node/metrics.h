/* The node's Prometheus endpoint: GET /metrics over HTTP (libmicrohttpd,
 * its own thread), serving the text the daemon last published. The daemon
 * renders on its loop and publishes; the server only copies under a lock,
 * so the loop never waits on a scrape.
 *
 * Lifetime: gv_metrics_start() starts the server; gv_metrics_stop() stops
 * it and frees everything.
 */
#ifndef GV_METRICS_H
#define GV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"

typedef struct gv_metrics gv_metrics;

/* Listens on addr (port 0: any free port). GV_EINVAL and a reason if it
 * cannot (address in use, and so on). */
int gv_metrics_start(gv_metrics **out, const gv_addr *addr, gv_why *why);

/* The port actually bound. */
uint16_t gv_metrics_port(const gv_metrics *m);

/* Replaces the text served (a copy is taken). */
void gv_metrics_publish(gv_metrics *m, const char *text, size_t len);

void gv_metrics_stop(gv_metrics *m);

#endif

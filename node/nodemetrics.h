/* The node's metrics text: the Prometheus exposition of the gossip
 * engine's counters and peer table, the link core's links, churn and
 * link scores, and the relay's messages, queues and latencies (docs/NODE.md
 * lists the series). Pure rendering: the daemon publishes the text through
 * node/metrics.c.
 */
#ifndef GV_NODEMETRICS_H
#define GV_NODEMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "lcore.h"
#include "relay.h"

/* Renders into *out (malloc'd, NUL-terminated, the caller frees) and
 * *len; relay may be NULL (no relay series). 0 or GV_ENOMEM. */
int gv_nodemetrics_render(const gv_engine *e, const gv_lcore *lc,
                          const gv_relay *relay, int64_t uptime_s, char **out,
                          size_t *len);

#endif

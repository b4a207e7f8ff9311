/* The tracker's counters and their Prometheus text rendering
 * (docs/TRACKER.md §3.6). Counters are C11 atomics, bumped from any
 * thread with relaxed ordering; the rendering reads them without locks.
 *
 * Lifetime: a gv_trk_metrics is a plain value embedded by its owner and
 * zero-initialised.
 */
#ifndef GV_TRK_METRICS_H
#define GV_TRK_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gv_trk_route {
  GV_TRK_ROUTE_REGISTER,
  GV_TRK_ROUTE_UNREGISTER,
  GV_TRK_ROUTE_PEERS,
  GV_TRK_ROUTE_DISCOVER,
  GV_TRK_ROUTE_HEALTH,
  GV_TRK_ROUTE_METRICS,
  GV_TRK_ROUTE_OTHER,
  GV_TRK_ROUTE_COUNT
} gv_trk_route;

typedef enum gv_trk_dial_result {
  GV_TRK_DIAL_OK,
  GV_TRK_DIAL_REFUSED,
  GV_TRK_DIAL_TIMEOUT,
  GV_TRK_DIAL_UNREACHABLE,
  GV_TRK_DIAL_PEER_ID,
  GV_TRK_DIAL_HANDSHAKE,
  GV_TRK_DIAL_ERROR,
  GV_TRK_DIAL_CANCELLED,
  GV_TRK_DIAL_COUNT
} gv_trk_dial_result;

/* Why the tracker closed a connection itself (tracker/http.c). */
typedef enum gv_trk_close_reason {
  GV_TRK_CLOSE_HEAD_DEADLINE, /* the head was not complete in time */
  GV_TRK_CLOSE_BODY_DEADLINE, /* the body was not complete in time */
  GV_TRK_CLOSE_FAIR_SHARE,    /* the cap was reached and its address held
                                 the most connections */
  GV_TRK_CLOSE_COUNT
} gv_trk_close_reason;

/* The HTTP statuses the tracker sends, plus one slot for any other. */
#define GV_TRK_STATUS_COUNT 12

typedef struct gv_trk_metrics {
  atomic_uint_fast64_t requests[GV_TRK_ROUTE_COUNT][GV_TRK_STATUS_COUNT];
  atomic_uint_fast64_t registered_new, registered_renewed;
  atomic_uint_fast64_t unregistered, expired;
  atomic_uint_fast64_t dial[GV_TRK_DIAL_COUNT];
  atomic_uint_fast64_t ratelimited, replays;
  atomic_uint_fast64_t closed[GV_TRK_CLOSE_COUNT];
} gv_trk_metrics;

/* Gauges the owner reads under its own locks when rendering. */
typedef struct gv_trk_gauges {
  size_t listed, verifying, dialing;
  size_t replay_pairs, replay_cap; /* the replay cache's fill, and its cap */
  uint64_t replay_evictions;       /* pairs forgotten early for room */
  uint64_t taken_back; /* verifications taken back for a newcomer's */
  uint64_t store_commits, store_errors;
  int64_t uptime_s;
} gv_trk_gauges;

const char *gv_trk_route_name(gv_trk_route r);

/* Classifies a dial-back status (0, GV_E*, UV_E*). */
gv_trk_dial_result gv_trk_dial_result_of(int status);

void gv_trk_metrics_request(gv_trk_metrics *m, gv_trk_route r, unsigned status);

static inline void gv_trk_count(atomic_uint_fast64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The exposition text; *out is malloc'd, *len its length. 0 or
 * GV_ENOMEM. */
int gv_trk_metrics_render(const gv_trk_metrics *m, const gv_trk_gauges *g,
                          char **out, size_t *len);

#endif

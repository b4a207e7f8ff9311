/* The node's tracker jobs: asking the tracker for bootstrap peers, and for
 * a bootstrap node, (re-)registering and unregistering, each on a libuv
 * worker thread (node/trkclient.c is blocking HTTP), one at a time. A
 * renew timer sets the cadence: a bootstrap registers every 20 min
 * against the 1 h expiry; another node asks for peers at start and again
 * only while it has no link. After a failure it retries sooner, with the
 * common jittered backoff (2 s doubling to 5 min). Peers found go to
 * cbs.found; the job's end to cbs.done.
 *
 * Lifetime: gv_trkjobs_new() on a loop, with a tracker client it borrows;
 * gv_trkjobs_close() closes its timer, and gv_trkjobs_free() frees it after
 * the loop has run the close and no job is busy. Identity, logger and
 * client are borrowed.
 */
#ifndef GV_TRKJOBS_H
#define GV_TRKJOBS_H

#include <stdbool.h>
#include <uv.h>

#include "identity.h"
#include "log.h"
#include "msg.h"
#include "trkclient.h"

typedef struct gv_trkjobs gv_trkjobs;

typedef struct gv_trkjobs_cbs {
  /* Bootstrap peers from an answer; pointers last for the call. */
  void (*found)(void *ctx, const gv_trkc_peers *peers);
  /* How many links are up (a non-bootstrap asks again only at 0). */
  size_t (*link_count)(void *ctx);
  /* A job ended (the owner may drain, or finish shutting down). */
  void (*done)(void *ctx);
} gv_trkjobs_cbs;

/* What the node is: a bootstrap registers (port, repos); others ask. */
typedef struct gv_trkjobs_role {
  bool bootstrap; /* registers, with port and repos */
  uint16_t port;
  const char (*repos)[GV_REPO_MAX + 1];
  size_t n_repos;
} gv_trkjobs_role;

int gv_trkjobs_new(gv_trkjobs **out, uv_loop_t *loop, gv_trkc *trk,
                   const gv_identity *self, gv_log *log,
                   const gv_trkjobs_cbs *cbs, void *ctx);

/* Sets the role (copied; repos are read when a job starts). */
void gv_trkjobs_set_role(gv_trkjobs *t, const gv_trkjobs_role *role);

/* Starts the renew timer: the first job now, then every repeat_ms. */
void gv_trkjobs_start(gv_trkjobs *t, uint64_t repeat_ms);

/* Unregisters if registered (broadcast off, or shutdown). */
void gv_trkjobs_unregister(gv_trkjobs *t);

/* Shutdown: no new jobs; a job running still ends in cbs.done. */
void gv_trkjobs_stop(gv_trkjobs *t);

/* Stops waiting for a running job (its result is dropped). */
void gv_trkjobs_abandon(gv_trkjobs *t);

bool gv_trkjobs_busy(const gv_trkjobs *t);
bool gv_trkjobs_registered(const gv_trkjobs *t);

void gv_trkjobs_close(gv_trkjobs *t);
void gv_trkjobs_free(gv_trkjobs *t);

#endif

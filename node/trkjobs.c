#include "trkjobs.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "cli.h"

#define RENEW_MS (20 * 60 * 1000)
/* After a 202 (the tracker verifies in the background): register again
 * this soon, to learn whether the dial-back passed; a listed node is then
 * renewed (200), one that was not listed is registered afresh. */
#define VERIFY_RECHECK_MS 30000
#define TRACKER_RETRY_MS 30000
#define TRACKER_BACKOFF_BASE_MS 2000
#define TRACKER_BACKOFF_MAX_MS 300000

typedef enum trk_job { TRK_PEERS, TRK_REGISTER, TRK_UNREGISTER } trk_job;

struct gv_trkjobs {
  uv_loop_t *loop;
  gv_trkc *trk;
  const gv_identity *self;
  gv_log *log;
  gv_trkjobs_cbs cbs;
  void *ctx;
  uv_timer_t renew;
  gv_rng rng; /* retry jitter */
  bool bootstrap, stopping;
  uint16_t port;
  const char (*repos)[GV_REPO_MAX + 1];
  size_t n_repos;
  /* The job: set on the loop, read by the worker, then back on the loop. */
  uv_work_t work;
  bool busy, asked, registered;
  unsigned failures; /* consecutive; sets the retry backoff */
  trk_job job;
  char job_repos[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t job_n_repos;
  int rc;
  gv_trkc_result res;
  gv_trkc_peers peers;
};

int gv_trkjobs_new(gv_trkjobs **out, uv_loop_t *loop, gv_trkc *trk,
                   const gv_identity *self, gv_log *log,
                   const gv_trkjobs_cbs *cbs, void *ctx) {
  gv_trkjobs *t = calloc(1, sizeof(*t));
  uint64_t seed;

  *out = NULL;
  if (t == NULL)
    return GV_ENOMEM;
  t->loop = loop;
  t->trk = trk;
  t->self = self;
  t->log = log;
  t->cbs = *cbs;
  t->ctx = ctx;
  randombytes_buf(&seed, sizeof(seed));
  gv_rng_seed(&t->rng, seed);
  uv_timer_init(loop, &t->renew);
  t->renew.data = t;
  *out = t;
  return 0;
}

void gv_trkjobs_set_role(gv_trkjobs *t, const gv_trkjobs_role *role) {
  t->bootstrap = role->bootstrap;
  t->port = role->port;
  t->repos = role->repos;
  t->n_repos = role->n_repos;
}

static void run(uv_work_t *w) {
  gv_trkjobs *t = w->data;
  const char *repos[GV_MAX_REPOS];
  gv_trkc_reg reg;

  memset(&t->res, 0, sizeof(t->res));
  memset(&t->peers, 0, sizeof(t->peers));
  switch (t->job) {
  case TRK_PEERS:
    t->rc = gv_trkc_peers_get(t->trk, 16, &t->res, &t->peers);
    break;
  case TRK_REGISTER:
    memset(&reg, 0, sizeof(reg));
    for (size_t i = 0; i < t->job_n_repos; i++)
      repos[i] = t->job_repos[i];
    reg.port = t->port;
    reg.n_repos = t->job_n_repos;
    reg.repos = repos;
    t->rc = gv_trkc_register(t->trk, t->self, &reg, gv_cli_now_ms(), &t->res,
                             &t->peers);
    break;
  case TRK_UNREGISTER:
    t->rc = gv_trkc_unregister(t->trk, t->self, gv_cli_now_ms(), &t->res);
    break;
  }
}

static void on_renew(uv_timer_t *timer);

static void done(uv_work_t *w, int status) {
  gv_trkjobs *t = w->data;
  trk_job job = t->job;
  int rc = status < 0 ? status : t->rc;

  t->busy = false;
  if (rc < 0)
    gv_logf(t->log, GV_LOG_WARN, "tracker: %s: %s",
            job == TRK_PEERS      ? "peers"
            : job == TRK_REGISTER ? "register"
                                  : "unregister",
            t->res.reason[0] ? t->res.reason : gv_strerror(rc));
  if (rc == 0 && t->peers.n > 0)
    t->cbs.found(t->ctx, &t->peers);
  if (rc == 0 && job == TRK_REGISTER && t->res.verifying)
    gv_logf(t->log, GV_LOG_INFO,
            "tracker: registered (verifying): listed once its dial-back "
            "passes; checking again in %d s",
            VERIFY_RECHECK_MS / 1000);
  else if (rc == 0 && job != TRK_UNREGISTER)
    gv_logf(t->log, GV_LOG_INFO, "tracker: %s; %zu bootstrap node(s)",
            job == TRK_PEERS ? "asked for peers" : "registered", t->peers.n);
  gv_trkc_peers_free(&t->peers);
  if (job == TRK_REGISTER && rc == 0)
    t->registered = true;
  if (job == TRK_PEERS && rc == 0)
    t->asked = true;
  if (job != TRK_UNREGISTER && !t->stopping) {
    /* After a failure, try again soon: a tracker that starts after the
     * node, or restarts, is found again. After a success, the cadence. */
    uint64_t cadence = t->bootstrap ? RENEW_MS : TRACKER_RETRY_MS;
    uint64_t ms = cadence;
    if (rc < 0)
      ms = (uint64_t)gv_backoff_ms(&t->rng, TRACKER_BACKOFF_BASE_MS,
                                   TRACKER_BACKOFF_MAX_MS, ++t->failures);
    else
      t->failures = 0;
    if (rc == 0 && job == TRK_REGISTER && t->res.verifying)
      ms = VERIFY_RECHECK_MS;
    uv_timer_start(&t->renew, on_renew, ms, cadence);
  }
  if (job == TRK_UNREGISTER || t->stopping)
    t->registered = false;
  /* A tracker that is down changes nothing: cached peers and seeds carry
   * on, and the renew timer tries again later. */
  t->cbs.done(t->ctx);
}

static void start_job(gv_trkjobs *t, trk_job job) {
  if (t->trk == NULL || t->busy)
    return;
  t->busy = true;
  t->job = job;
  t->job_n_repos = t->n_repos;
  for (size_t i = 0; i < t->n_repos; i++)
    memcpy(t->job_repos[i], t->repos[i], sizeof(t->job_repos[i]));
  t->work.data = t;
  if (uv_queue_work(t->loop, &t->work, run, done) < 0)
    t->busy = false;
}

static void on_renew(uv_timer_t *timer) {
  gv_trkjobs *t = timer->data;
  if (t->stopping)
    return;
  if (t->bootstrap)
    start_job(t, TRK_REGISTER);
  else if (!t->asked || t->cbs.link_count(t->ctx) == 0)
    start_job(t, TRK_PEERS);
}

void gv_trkjobs_start(gv_trkjobs *t, uint64_t repeat_ms) {
  uv_timer_start(&t->renew, on_renew, 0, repeat_ms);
}

void gv_trkjobs_unregister(gv_trkjobs *t) {
  if (t->registered)
    start_job(t, TRK_UNREGISTER);
}

void gv_trkjobs_stop(gv_trkjobs *t) { t->stopping = true; }
void gv_trkjobs_abandon(gv_trkjobs *t) { t->busy = false; }
bool gv_trkjobs_busy(const gv_trkjobs *t) { return t->busy; }
bool gv_trkjobs_registered(const gv_trkjobs *t) { return t->registered; }

void gv_trkjobs_close(gv_trkjobs *t) {
  if (!uv_is_closing((uv_handle_t *)&t->renew))
    uv_close((uv_handle_t *)&t->renew, NULL);
}

void gv_trkjobs_free(gv_trkjobs *t) { free(t); }

#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

static const unsigned statuses[GV_TRK_STATUS_COUNT - 1] = {
    200, 400, 401, 403, 404, 405, 409, 413, 422, 429, 503};

static const char *const route_names[GV_TRK_ROUTE_COUNT] = {
    "register", "unregister", "peers", "discover",
    "health",   "metrics",    "other"};

static const char *const dial_names[GV_TRK_DIAL_COUNT] = {
    "ok",      "refused",   "timeout", "unreachable",
    "peer_id", "handshake", "error",   "cancelled"};

static const char *const close_names[GV_TRK_CLOSE_COUNT] = {
    "head_deadline", "body_deadline", "fair_share"};

const char *gv_trk_route_name(gv_trk_route r) { return route_names[r]; }

gv_trk_dial_result gv_trk_dial_result_of(int status) {
  switch (status) {
  case 0: return GV_TRK_DIAL_OK;
  case -ECONNREFUSED: return GV_TRK_DIAL_REFUSED;
  case -ETIMEDOUT: return GV_TRK_DIAL_TIMEOUT;
  case -EHOSTUNREACH:
  case -ENETUNREACH:
  case -EADDRNOTAVAIL:
  case -ECONNRESET: return GV_TRK_DIAL_UNREACHABLE;
  case GV_EPEERID: return GV_TRK_DIAL_PEER_ID;
  case GV_EHANDSHAKE:
  case GV_EDECRYPT:
  case GV_EBADSIG:
  case GV_EVERSION:
  case GV_ETRUNCATED:
  case GV_EFRAME:
  case GV_ETOOBIG: return GV_TRK_DIAL_HANDSHAKE;
  case -ECANCELED: return GV_TRK_DIAL_CANCELLED;
  default: return GV_TRK_DIAL_ERROR;
  }
}

void gv_trk_metrics_request(gv_trk_metrics *m, gv_trk_route r,
                            unsigned status) {
  size_t i = 0;

  while (i < GV_TRK_STATUS_COUNT - 1 && statuses[i] != status)
    i++;
  gv_trk_count(&m->requests[r][i]);
}

static uint64_t get(const atomic_uint_fast64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

static void header(FILE *f, const char *name, const char *type,
                   const char *help) {
  fprintf(f, "# HELP grapevine_tracker_%s %s\n# TYPE grapevine_tracker_%s %s\n",
          name, help, name, type);
}

int gv_trk_metrics_render(const gv_trk_metrics *m, const gv_trk_gauges *g,
                          char **out, size_t *len) {
  FILE *f = open_memstream(out, len);

  if (f == NULL)
    return GV_ENOMEM;
  header(f, "requests_total", "counter", "HTTP requests by route and status.");
  for (int r = 0; r < GV_TRK_ROUTE_COUNT; r++)
    for (int s = 0; s < GV_TRK_STATUS_COUNT; s++) {
      uint64_t v = get(&m->requests[r][s]);
      if (v == 0)
        continue;
      if (s < GV_TRK_STATUS_COUNT - 1)
        fprintf(f,
                "grapevine_tracker_requests_total{route=\"%s\",code=\"%u\"} "
                "%llu\n",
                route_names[r], statuses[s], (unsigned long long)v);
      else
        fprintf(f,
                "grapevine_tracker_requests_total{route=\"%s\",code="
                "\"other\"} %llu\n",
                route_names[r], (unsigned long long)v);
    }
  header(f, "registrations", "gauge", "Bootstrap nodes listed.");
  fprintf(f, "grapevine_tracker_registrations %zu\n", g->listed);
  header(f, "verifying", "gauge",
         "Registrations waiting for or in a dial-back.");
  fprintf(f, "grapevine_tracker_verifying %zu\n", g->verifying);
  header(f, "dialing", "gauge", "Dial-backs queued or in flight.");
  fprintf(f, "grapevine_tracker_dialing %zu\n", g->dialing);
  header(f, "registrations_total", "counter",
         "Registrations listed, new or renewed.");
  fprintf(f, "grapevine_tracker_registrations_total{kind=\"new\"} %llu\n",
          (unsigned long long)get(&m->registered_new));
  fprintf(f, "grapevine_tracker_registrations_total{kind=\"renewed\"} %llu\n",
          (unsigned long long)get(&m->registered_renewed));
  header(f, "unregistrations_total", "counter", "Registrations removed.");
  fprintf(f, "grapevine_tracker_unregistrations_total %llu\n",
          (unsigned long long)get(&m->unregistered));
  header(f, "expiries_total", "counter", "Registrations expired.");
  fprintf(f, "grapevine_tracker_expiries_total %llu\n",
          (unsigned long long)get(&m->expired));
  header(f, "dialbacks_total", "counter", "Dial-backs by result.");
  for (int d = 0; d < GV_TRK_DIAL_COUNT; d++)
    fprintf(f, "grapevine_tracker_dialbacks_total{result=\"%s\"} %llu\n",
            dial_names[d], (unsigned long long)get(&m->dial[d]));
  header(f, "ratelimit_rejections_total", "counter",
         "Requests refused with 429.");
  fprintf(f, "grapevine_tracker_ratelimit_rejections_total %llu\n",
          (unsigned long long)get(&m->ratelimited));
  header(f, "replay_rejections_total", "counter",
         "Signed requests refused by the replay rules.");
  fprintf(f, "grapevine_tracker_replay_rejections_total %llu\n",
          (unsigned long long)get(&m->replays));
  header(f, "replay_cache_pairs", "gauge",
         "Signed requests remembered for replay protection.");
  fprintf(f, "grapevine_tracker_replay_cache_pairs %zu\n", g->replay_pairs);
  header(f, "replay_cache_capacity", "gauge",
         "Signed requests the replay cache can remember (--replay-cap).");
  fprintf(f, "grapevine_tracker_replay_cache_capacity %zu\n", g->replay_cap);
  header(f, "replay_cache_evictions_total", "counter",
         "Remembered requests forgotten early to make room for another "
         "source's.");
  fprintf(f, "grapevine_tracker_replay_cache_evictions_total %llu\n",
          (unsigned long long)g->replay_evictions);
  header(f, "verifications_taken_back_total", "counter",
         "Queued verifications dropped from the heaviest address when the "
         "pool was full, to make room for another address's.");
  fprintf(f, "grapevine_tracker_verifications_taken_back_total %llu\n",
          (unsigned long long)g->taken_back);
  header(f, "connections_closed_total", "counter",
         "Connections the tracker closed itself, by reason.");
  for (int c = 0; c < GV_TRK_CLOSE_COUNT; c++)
    fprintf(f,
            "grapevine_tracker_connections_closed_total{reason=\"%s\"} %llu\n",
            close_names[c], (unsigned long long)get(&m->closed[c]));
  header(f, "store_commits_total", "counter", "SQLite transactions committed.");
  fprintf(f, "grapevine_tracker_store_commits_total %llu\n",
          (unsigned long long)g->store_commits);
  header(f, "store_errors_total", "counter", "SQLite writes that failed.");
  fprintf(f, "grapevine_tracker_store_errors_total %llu\n",
          (unsigned long long)g->store_errors);
  header(f, "uptime_seconds", "gauge", "Seconds since start.");
  fprintf(f, "grapevine_tracker_uptime_seconds %lld\n", (long long)g->uptime_s);
  if (fclose(f) != 0) {
    free(*out);
    *out = NULL;
    return GV_ENOMEM;
  }
  return 0;
}

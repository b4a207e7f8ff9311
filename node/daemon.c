/* grapevine node: the daemon. It turns engine actions into I/O and I/O into
 * engine events (docs/NODE.md); the engine decides everything about gossip.
 *
 *   start -> RUNNING --SIGINT/SIGTERM--> STOPPING (unregister, GOODBYE on
 *   every link, flush) --all links closed or 3 s--> closed handles -> exit 0
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "backoff.h"
#include "cli.h"
#include "config.h"
#include "conn.h"
#include "ctl.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "sockaddr.h"
#include "store.h"
#include "trkclient.h"

#define HANDSHAKE_MS 10000
#define IDLE_MS 90000
#define MAX_PENDING_HS 64
#define STOP_GRACE_MS 3000
#define RENEW_MS (20 * 60 * 1000)
#define TRACKER_RETRY_MS 30000
#define TRACKER_BACKOFF_BASE_MS 2000
#define TRACKER_BACKOFF_MAX_MS 300000
#define ANNOUNCE_DELAY_MS 1000         /* after the first link: gather more */
#define REANNOUNCE_MS (30 * 60 * 1000) /* well within the 2 h expiry */

typedef struct gv_node gv_node;

typedef struct nlink {
  gv_node *node;
  gv_linkid id;
  gv_conn *conn;
  bool dialed, open, has_pin;
  uint8_t pin[GV_ID_BYTES];
  gv_addr addr; /* dialed address; never recorded for inbound links */
} nlink;

typedef struct ctl_client {
  uv_pipe_t pipe;
  uv_timer_t wait;
  gv_node *node;
  char *buf;
  size_t len;
  bool waiting; /* a request command awaiting responses */
  uint8_t req_id[GV_MSG_ID_BYTES];
  char repo[GV_REPO_MAX + 1];
  cJSON *found; /* object: id hex -> peer */
  int handles;  /* uv handles not yet closed */
  bool closing;
  struct ctl_client *next;
} ctl_client;

typedef enum trk_job { TRK_PEERS, TRK_REGISTER, TRK_UNREGISTER } trk_job;

struct gv_node {
  gv_config cfg;
  char dir[4096];
  uv_loop_t *loop;
  gv_identity id;
  char idhex[GV_ID_HEX_LEN + 1];
  gv_engine *engine;
  gv_store *store;
  gv_metrics *metrics;
  gv_trkc *trk;
  int lock_fd;
  uv_tcp_t listener;
  bool listening;
  uv_timer_t wake, second, renew, grace, announce;
  uv_signal_t sigint, sigterm;
  uv_pipe_t ctl;
  nlink **links;
  size_t n_links, cap_links;
  gv_linkid next_id;
  size_t pending_hs;
  ctl_client *clients;
  int64_t last_now, started;
  bool stopping, finalized, broadcasting;
  char repos[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t n_repos;
  uv_work_t trk_work;
  bool trk_busy, trk_asked, registered;
  unsigned trk_failures; /* consecutive; sets the retry backoff */
  trk_job trk_job;
  int trk_rc;
  gv_trkc_result trk_res;
  gv_trkc_peers trk_peers;
  uint64_t delivered, reports;
  gv_log log;
  gv_rng rng; /* retry jitter */
};

/* The engine's clock: wall-clock ms, never allowed to go backwards. */
static int64_t now_ms(gv_node *n) {
  int64_t t = gv_cli_now_ms();
  if (t > n->last_now)
    n->last_now = t;
  return n->last_now;
}

/* ---- links ---- */

static void drain(gv_node *n);
static void maybe_finalize(gv_node *n);

static nlink *link_add(gv_node *n, bool dialed) {
  nlink *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  if (n->n_links == n->cap_links) {
    size_t cap = n->cap_links ? n->cap_links * 2 : 16;
    nlink **p = realloc(n->links, cap * sizeof(*p));
    if (p == NULL) {
      free(l);
      return NULL;
    }
    n->links = p;
    n->cap_links = cap;
  }
  l->node = n;
  l->dialed = dialed;
  if (++n->next_id == 0)
    n->next_id = 1;
  l->id = n->next_id;
  n->links[n->n_links++] = l;
  n->pending_hs++;
  return l;
}

static nlink *link_find(gv_node *n, gv_linkid id) {
  for (size_t i = 0; i < n->n_links; i++)
    if (n->links[i]->id == id)
      return n->links[i];
  return NULL;
}

static void link_remove(gv_node *n, nlink *l) {
  for (size_t i = 0; i < n->n_links; i++)
    if (n->links[i] == l) {
      n->links[i] = n->links[--n->n_links];
      break;
    }
  free(l);
}

/* This node's record floods the network once it has links to carry it,
 * and again every 30 min so that no node lets it expire. */
static void on_announce(uv_timer_t *t) {
  gv_node *n = t->data;
  if (n->stopping)
    return;
  gv_engine_announce(n->engine, NULL, now_ms(n));
  drain(n);
}

static void on_conn_open(gv_conn *c) {
  nlink *l = gv_conn_data(c);
  gv_node *n = l->node;
  char shrt[GV_ID_SHORT_LEN + 1];

  l->open = true;
  n->pending_hs--;
  gv_id_to_short(gv_conn_peer_id(c), shrt);
  gv_logf(&n->log, GV_LOG_INFO, "link %u up with %s (%s)", l->id, shrt,
          l->dialed ? "dialed" : "inbound");
  gv_engine_link_up(n->engine, l->id, gv_conn_peer_id(c), l->dialed, now_ms(n));
  if (!uv_is_active((uv_handle_t *)&n->announce))
    uv_timer_start(&n->announce, on_announce, ANNOUNCE_DELAY_MS, REANNOUNCE_MS);
  drain(n);
}

static void on_conn_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  nlink *l = gv_conn_data(c);
  gv_engine_recv(l->node->engine, l->id, msg, len, now_ms(l->node));
  drain(l->node);
}

static void on_conn_close(gv_conn *c, int status) {
  nlink *l = gv_conn_data(c);
  gv_node *n = l->node;

  if (l->open) {
    gv_logf(&n->log, status == 0 ? GV_LOG_INFO : GV_LOG_WARN,
            "link %u closed: %s", l->id,
            status == 0 ? "goodbye" : gv_strerror(status));
    gv_engine_link_down(n->engine, l->id, now_ms(n));
  } else {
    n->pending_hs--;
    gv_logf(&n->log, GV_LOG_DEBUG, "connection %u failed: %s", l->id,
            gv_strerror(status));
    if (l->dialed)
      gv_engine_dial_failed(n->engine, l->has_pin ? l->pin : NULL, &l->addr,
                            now_ms(n));
  }
  link_remove(n, l);
  drain(n);
  maybe_finalize(n);
}

static const gv_conn_cbs conn_cbs = {on_conn_open, on_conn_msg, on_conn_close};

static void dial(gv_node *n, const uint8_t *peer, const gv_addr *addr) {
  static const uint8_t zero[GV_ID_BYTES];
  bool pinned = memcmp(peer, zero, GV_ID_BYTES) != 0;
  struct sockaddr_storage ss;
  nlink *l;
  gv_conn *c;
  int rc;

  if (n->stopping || (l = link_add(n, true)) == NULL) {
    gv_engine_dial_failed(n->engine, pinned ? peer : NULL, addr, now_ms(n));
    return;
  }
  l->has_pin = pinned;
  memcpy(l->pin, peer, GV_ID_BYTES);
  l->addr = *addr;
  if (gv_conn_new(&c, n->loop, &n->id, GV_HS_INITIATOR, pinned ? peer : NULL,
                  &conn_cbs, l) < 0) {
    n->pending_hs--;
    link_remove(n, l);
    gv_engine_dial_failed(n->engine, pinned ? peer : NULL, addr, now_ms(n));
    return;
  }
  l->conn = c;
  gv_conn_set_timeouts(c, HANDSHAKE_MS, IDLE_MS);
  gv_addr_to_sockaddr(addr, &ss, NULL);
  if ((rc = gv_conn_dial(c, (struct sockaddr *)&ss)) < 0) {
    /* on_close never comes: fail the dial here. */
    n->pending_hs--;
    gv_logf(&n->log, GV_LOG_DEBUG, "connection %u failed: %s", l->id,
            gv_strerror(rc));
    link_remove(n, l);
    gv_engine_dial_failed(n->engine, pinned ? peer : NULL, addr, now_ms(n));
  }
}

/* ---- control clients waiting for request results ---- */

static cJSON *peer_json(const gv_peer_entry *p) {
  cJSON *o = cJSON_CreateObject(), *a;
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX];
  const char *r = p->repos;

  gv_id_to_hex(p->id, hex);
  cJSON_AddStringToObject(o, "id", hex);
  a = cJSON_AddArrayToObject(o, "addresses");
  for (int i = 0; i < p->n_addrs; i++) {
    gv_addr_format(&p->addrs[i], addr);
    cJSON_AddItemToArray(a, cJSON_CreateString(addr));
  }
  cJSON_AddBoolToObject(o, "broadcasting", p->broadcasting);
  cJSON_AddBoolToObject(o, "bootstrap", p->bootstrap);
  a = cJSON_AddArrayToObject(o, "repositories");
  for (int i = 0; i < p->n_repos; i++, r += strlen(r) + 1)
    cJSON_AddItemToArray(a, cJSON_CreateString(r));
  cJSON_AddNumberToObject(o, "availability", round(p->availability));
  cJSON_AddNumberToObject(o, "performance", round(p->performance));
  cJSON_AddNumberToObject(o, "last_seen", (double)p->last_seen);
  cJSON_AddBoolToObject(o, "connected", p->connected);
  return o;
}

static void on_report(gv_node *n, const gv_action *a) {
  n->reports++;
  for (ctl_client *c = n->clients; c != NULL; c = c->next) {
    if (!c->waiting || memcmp(c->req_id, a->msg_id, GV_MSG_ID_BYTES) != 0)
      continue;
    for (size_t i = 0; i < a->response->u.response.n_peers; i++) {
      const gv_msg *rec = &a->response->u.response.peers[i];
      const gv_peer_entry *p = gv_engine_table_get(n->engine, rec->origin);
      char hex[GV_ID_HEX_LEN + 1];
      gv_id_to_hex(rec->origin, hex);
      if (p != NULL && cJSON_GetObjectItem(c->found, hex) == NULL &&
          gv_peer_entry_has_repo(p, c->repo))
        cJSON_AddItemToObject(c->found, hex, peer_json(p));
    }
  }
}

/* ---- engine actions ---- */

static void on_wake(uv_timer_t *t) {
  gv_node *n = t->data;
  gv_engine_tick(n->engine, now_ms(n));
  drain(n);
}

static void drain(gv_node *n) {
  gv_action a;

  while (gv_engine_next(n->engine, &a)) {
    nlink *l;
    switch (a.type) {
    case GV_ACT_SEND:
      if ((l = link_find(n, a.link)) != NULL && l->conn != NULL) {
        int rc = gv_conn_send(l->conn, a.buf->data, a.buf->len);
        if (rc < 0)
          gv_logf(&n->log, GV_LOG_WARN, "link %u: send: %s", l->id,
                  gv_strerror(rc));
      }
      gv_buf_unref(a.buf);
      break;
    case GV_ACT_DIAL: {
      char text[GV_ADDR_TEXT_MAX];
      gv_addr_format(&a.addr, text);
      gv_logf(&n->log, GV_LOG_DEBUG, "dialing %s", text);
      dial(n, a.peer, &a.addr);
      break;
    }
    case GV_ACT_CLOSE:
      if ((l = link_find(n, a.link)) != NULL) {
        gv_logf(&n->log, GV_LOG_INFO, "closing link %u: %s", l->id,
                gv_strerror(a.reason));
        gv_conn_close(l->conn, NULL, 0);
      }
      break;
    case GV_ACT_WAKE: {
      int64_t now = now_ms(n);
      gv_logf(&n->log, GV_LOG_DEBUG, "engine wakes in %lld ms",
              (long long)(a.at - now));
      if (!n->stopping)
        uv_timer_start(&n->wake, on_wake,
                       a.at > now ? (uint64_t)(a.at - now) : 0, 0);
      break;
    }
    case GV_ACT_PERSIST:
      if (a.entry != NULL)
        gv_store_put_peer(n->store, a.peer, a.entry->body, a.entry->body_len,
                          a.entry->sig, a.entry->last_seen);
      else
        gv_store_del_peer(n->store, a.peer);
      break;
    case GV_ACT_DELIVER: n->delivered++; break;
    case GV_ACT_REPORT: on_report(n, &a); break;
    default: break;
    }
  }
}

/* ---- inbound links ---- */

static void on_refused_closed(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *server, int status) {
  gv_node *n = server->data;
  gv_conn *c;
  nlink *l;

  if (status < 0)
    return;
  /* Over the handshake cap (or stopping): accept and close at once, so the
   * backlog cannot pin the node. */
  if (n->stopping || n->pending_hs >= MAX_PENDING_HS ||
      (l = link_add(n, false)) == NULL) {
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t != NULL) {
      uv_tcp_init(n->loop, t);
      if (uv_accept(server, (uv_stream_t *)t) == 0)
        gv_logf(&n->log, GV_LOG_DEBUG,
                "refused a connection: %zu handshakes running", n->pending_hs);
      uv_close((uv_handle_t *)t, on_refused_closed);
    }
    return;
  }
  if (gv_conn_new(&c, n->loop, &n->id, GV_HS_RESPONDER, NULL, &conn_cbs, l) <
      0) {
    n->pending_hs--;
    link_remove(n, l);
    return;
  }
  l->conn = c;
  gv_conn_set_timeouts(c, HANDSHAKE_MS, IDLE_MS);
  if (uv_accept(server, gv_conn_stream(c)) < 0) {
    gv_conn_abort(c, GV_ESTATE);
  } else if (gv_conn_start(c) < 0) {
    n->pending_hs--; /* on_close never comes */
    link_remove(n, l);
  }
}

static int start_listening(gv_node *n, gv_why *why) {
  struct sockaddr_storage ss;
  char text[GV_ADDR_TEXT_MAX];
  int rc;

  if (n->listening)
    return 0;
  gv_addr_format(&n->cfg.listen, text);
  gv_addr_to_sockaddr(&n->cfg.listen, &ss, NULL);
  uv_tcp_init(n->loop, &n->listener);
  n->listener.data = n;
  if ((rc = uv_tcp_bind(&n->listener, (struct sockaddr *)&ss, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&n->listener, 128, on_connection)) < 0) {
    uv_close((uv_handle_t *)&n->listener, NULL);
    return gv_fail(why, rc, "cannot listen on %s: %s", text, uv_strerror(rc));
  }
  n->listening = true;
  gv_logf(&n->log, GV_LOG_INFO, "listening on %s (broadcasting)", text);
  return 0;
}

static void stop_listening(gv_node *n) {
  if (n->listening) {
    uv_close((uv_handle_t *)&n->listener, NULL);
    n->listening = false;
  }
}

/* ---- the tracker, on a worker thread ---- */

static void trk_run(uv_work_t *w) {
  gv_node *n = w->data;
  const char *repos[GV_MAX_REPOS];
  gv_trkc_reg reg;

  memset(&n->trk_res, 0, sizeof(n->trk_res));
  memset(&n->trk_peers, 0, sizeof(n->trk_peers));
  switch (n->trk_job) {
  case TRK_PEERS:
    n->trk_rc = gv_trkc_peers_get(n->trk, 16, &n->trk_res, &n->trk_peers);
    break;
  case TRK_REGISTER:
    memset(&reg, 0, sizeof(reg));
    for (size_t i = 0; i < n->n_repos; i++)
      repos[i] = n->repos[i];
    reg.port = n->cfg.listen.port;
    reg.n_repos = n->n_repos;
    reg.repos = repos;
    n->trk_rc = gv_trkc_register(n->trk, &n->id, &reg, gv_cli_now_ms(),
                                 &n->trk_res, &n->trk_peers);
    break;
  case TRK_UNREGISTER:
    n->trk_rc =
        gv_trkc_unregister(n->trk, &n->id, gv_cli_now_ms(), &n->trk_res);
    break;
  }
}

static void trk_start(gv_node *n, trk_job job);
static void on_renew(uv_timer_t *t);

static void trk_done(uv_work_t *w, int status) {
  gv_node *n = w->data;
  trk_job job = n->trk_job;
  int rc = status < 0 ? status : n->trk_rc;

  n->trk_busy = false;
  if (rc < 0)
    gv_logf(&n->log, GV_LOG_WARN, "tracker: %s: %s",
            job == TRK_PEERS      ? "peers"
            : job == TRK_REGISTER ? "register"
                                  : "unregister",
            n->trk_res.reason[0] ? n->trk_res.reason : gv_strerror(rc));
  for (size_t i = 0; rc == 0 && i < n->trk_peers.n; i++)
    gv_engine_add_candidate(n->engine, n->trk_peers.v[i].id,
                            &n->trk_peers.v[i].addr, now_ms(n));
  if (rc == 0 && job != TRK_UNREGISTER)
    gv_logf(&n->log, GV_LOG_INFO, "tracker: %s; %zu bootstrap node(s)",
            job == TRK_PEERS ? "asked for peers" : "registered",
            n->trk_peers.n);
  gv_trkc_peers_free(&n->trk_peers);
  if (job == TRK_REGISTER && rc == 0)
    n->registered = true;
  if (job == TRK_PEERS && rc == 0)
    n->trk_asked = true;
  if (job != TRK_UNREGISTER && !n->stopping) {
    /* After a failure, try again soon (2 s doubling to 5 min, jittered):
     * a tracker that starts after the node, or restarts, is found again.
     * After a success, the normal cadence. */
    uint64_t cadence =
        n->cfg.bootstrap && n->broadcasting ? RENEW_MS : TRACKER_RETRY_MS;
    uint64_t ms = cadence;
    if (rc < 0) {
      ms = (uint64_t)gv_backoff_ms(&n->rng, TRACKER_BACKOFF_BASE_MS,
                                   TRACKER_BACKOFF_MAX_MS, ++n->trk_failures);
    } else {
      n->trk_failures = 0;
    }
    uv_timer_start(&n->renew, on_renew, ms, cadence);
  }
  if (job == TRK_UNREGISTER || n->stopping) {
    n->registered = false;
    maybe_finalize(n);
  }
  /* A tracker that is down changes nothing: cached peers and seeds carry
   * on, and the renew timer tries again later. */
  drain(n);
}

static void trk_start(gv_node *n, trk_job job) {
  if (n->trk == NULL || n->trk_busy)
    return;
  n->trk_busy = true;
  n->trk_job = job;
  n->trk_work.data = n;
  if (uv_queue_work(n->loop, &n->trk_work, trk_run, trk_done) < 0)
    n->trk_busy = false;
}

/* Bootstrap nodes (re-)register every 20 min against the 1 h expiry; a
 * registration answer also lists other bootstraps. Other nodes ask for
 * peers at start, and again only while they have no link at all. */
static void on_renew(uv_timer_t *t) {
  gv_node *n = t->data;
  if (n->stopping)
    return;
  if (n->cfg.bootstrap && n->broadcasting)
    trk_start(n, TRK_REGISTER);
  else if (!n->trk_asked || gv_engine_link_count(n->engine) == 0)
    trk_start(n, TRK_PEERS);
}

/* ---- the control socket ---- */

static void write_line(ctl_client *c, cJSON *o);
static void client_close(ctl_client *c);

static void on_write_done(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void write_line(ctl_client *c, cJSON *o) {
  char *txt = cJSON_PrintUnformatted(o);
  size_t len;
  uv_write_t *req;
  uv_buf_t buf;

  cJSON_Delete(o);
  if (txt == NULL)
    return;
  len = strlen(txt);
  req = malloc(sizeof(*req) + len + 1);
  if (req != NULL) {
    memcpy((char *)(req + 1), txt, len);
    ((char *)(req + 1))[len] = '\n';
    buf = uv_buf_init((char *)(req + 1), (unsigned)len + 1);
    if (uv_write(req, (uv_stream_t *)&c->pipe, &buf, 1, on_write_done) < 0)
      free(req);
  }
  free(txt);
}

static cJSON *error_json(int rc, const char *reason) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 0);
  cJSON_AddStringToObject(o, "error", gv_err_name(rc));
  cJSON_AddStringToObject(o, "reason", reason);
  return o;
}

static cJSON *repos_json(gv_node *n) {
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; i < n->n_repos; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(n->repos[i]));
  return a;
}

static cJSON *status_json(gv_node *n) {
  cJSON *o = cJSON_CreateObject();
  char addr[GV_ADDR_TEXT_MAX], shrt[GV_ID_SHORT_LEN + 1];

  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddStringToObject(o, "id", n->idhex);
  gv_id_to_short(n->id.pk, shrt);
  cJSON_AddStringToObject(o, "short", shrt);
  cJSON_AddNumberToObject(o, "uptime_s",
                          (double)((now_ms(n) - n->started) / 1000));
  cJSON_AddNumberToObject(o, "links", (double)gv_engine_link_count(n->engine));
  cJSON_AddNumberToObject(o, "handshaking", (double)n->pending_hs);
  cJSON_AddNumberToObject(o, "table", (double)gv_engine_table_size(n->engine));
  cJSON_AddBoolToObject(o, "broadcasting", n->broadcasting);
  cJSON_AddBoolToObject(o, "bootstrap", n->cfg.bootstrap && n->broadcasting);
  if (n->cfg.has_listen) {
    gv_addr_format(&n->cfg.listen, addr);
    cJSON_AddStringToObject(o, "listen", addr);
  } else {
    cJSON_AddNullToObject(o, "listen");
  }
  cJSON_AddItemToObject(o, "repos", repos_json(n));
  cJSON_AddStringToObject(o, "data_dir", n->dir);
  cJSON_AddBoolToObject(o, "tracker_registered", n->registered);
  return o;
}

static void save_repos(gv_node *n) {
  char buf[GV_MAX_REPOS * (GV_REPO_MAX + 1) + 1] = "";
  size_t off = 0;
  for (size_t i = 0; i < n->n_repos; i++)
    off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s\n", n->repos[i]);
  gv_store_set(n->store, "repos", buf);
}

static void on_wait_done(uv_timer_t *t) {
  ctl_client *c = t->data;
  gv_node *n = c->node;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "peers");

  /* Add what this node already knows, then answer. */
  for (size_t i = 0;; i++) {
    const gv_peer_entry *p = gv_engine_table_at(n->engine, i);
    char hex[GV_ID_HEX_LEN + 1];
    if (p == NULL)
      break;
    gv_id_to_hex(p->id, hex);
    if (gv_peer_entry_has_repo(p, c->repo) &&
        cJSON_GetObjectItem(c->found, hex) == NULL)
      cJSON_AddItemToObject(c->found, hex, peer_json(p));
  }
  for (cJSON *it = c->found->child; it != NULL;) {
    cJSON *next = it->next;
    cJSON_AddItemToArray(arr, cJSON_DetachItemViaPointer(c->found, it));
    it = next;
  }
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddStringToObject(o, "repo", c->repo);
  cJSON_Delete(c->found);
  c->found = NULL;
  c->waiting = false;
  write_line(c, o);
}

static void handle_line(ctl_client *c, const char *line, size_t len) {
  gv_node *n = c->node;
  gv_ctl_req req;
  gv_why why = {""};
  cJSON *o;
  int rc;

  if (c->waiting)
    return; /* one request at a time per connection */
  if ((rc = gv_ctl_parse(&req, line, len, &why)) < 0) {
    write_line(c, error_json(rc, why.text));
    return;
  }
  switch (req.cmd) {
  case GV_CTL_STATUS: write_line(c, status_json(n)); return;
  case GV_CTL_PEERS: {
    cJSON *arr;
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    arr = cJSON_AddArrayToObject(o, "peers");
    for (size_t i = 0;; i++) {
      const gv_peer_entry *p = gv_engine_table_at(n->engine, i);
      if (p == NULL)
        break;
      cJSON_AddItemToArray(arr, peer_json(p));
    }
    write_line(c, o);
    return;
  }
  case GV_CTL_REQUEST:
    rc = gv_engine_request(n->engine, req.repo, req.max, c->req_id, now_ms(n));
    if (rc < 0) {
      write_line(c, error_json(rc, "the request could not be sent"));
      return;
    }
    snprintf(c->repo, sizeof(c->repo), "%s", req.repo);
    c->found = cJSON_CreateObject();
    c->waiting = true;
    uv_timer_start(&c->wait, on_wait_done, req.wait_ms, 0);
    drain(n);
    return;
  case GV_CTL_REPO_ADD:
  case GV_CTL_REPO_RM: {
    size_t i;
    for (i = 0; i < n->n_repos && strcmp(n->repos[i], req.repo) != 0; i++)
      ;
    if (req.cmd == GV_CTL_REPO_ADD && i == n->n_repos) {
      if (n->n_repos == GV_MAX_REPOS) {
        write_line(c, error_json(GV_ELIMIT, "this node holds the maximum "
                                            "number of repositories"));
        return;
      }
      memcpy(n->repos[n->n_repos++], req.repo, sizeof(req.repo));
    } else if (req.cmd == GV_CTL_REPO_RM && i < n->n_repos) {
      memcpy(n->repos[i], n->repos[--n->n_repos], sizeof(n->repos[i]));
    }
    gv_engine_set_repos(n->engine, n->repos, n->n_repos, now_ms(n));
    save_repos(n);
    drain(n);
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddItemToObject(o, "repos", repos_json(n));
    write_line(c, o);
    return;
  }
  case GV_CTL_BROADCAST:
    if (req.on && !n->cfg.has_listen) {
      write_line(c, error_json(GV_EINVAL, "broadcast needs the node started "
                                          "with --listen ADDR:PORT"));
      return;
    }
    if (req.on && (rc = start_listening(n, &why)) < 0) {
      write_line(c, error_json(rc, why.text));
      return;
    }
    if (!req.on)
      stop_listening(n);
    n->broadcasting = req.on;
    gv_engine_set_broadcast(n->engine, req.on, req.on && n->cfg.bootstrap,
                            &n->cfg.listen, req.on ? 1 : 0, now_ms(n));
    gv_store_set(n->store, "broadcast", req.on ? "on" : "off");
    if (!req.on && n->registered)
      trk_start(n, TRK_UNREGISTER);
    drain(n);
    gv_logf(&n->log, GV_LOG_INFO, "broadcast %s", req.on ? "on" : "off");
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddBoolToObject(o, "broadcasting", n->broadcasting);
    write_line(c, o);
    return;
  }
}

static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char slab[64 * 1024];
  (void)h;
  (void)hint;
  *buf = uv_buf_init(slab, sizeof(slab)); /* copied out in on_client_read */
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  ctl_client *c = s->data;
  char *nl;

  if (nread < 0) {
    client_close(c);
    return;
  }
  if (c->len + (size_t)nread > GV_CTL_LINE_MAX + 1) {
    write_line(c, error_json(GV_ETOOBIG, "request line too long"));
    client_close(c);
    return;
  }
  char *p = realloc(c->buf, c->len + (size_t)nread + 1);
  if (p == NULL) {
    client_close(c);
    return;
  }
  c->buf = p;
  memcpy(c->buf + c->len, b->base, (size_t)nread);
  c->len += (size_t)nread;
  while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
    size_t line = (size_t)(nl - c->buf);
    handle_line(c, c->buf, line);
    memmove(c->buf, nl + 1, c->len - line - 1);
    c->len -= line + 1;
  }
}

static void on_client_closed(uv_handle_t *h) {
  ctl_client *c = h->data;
  if (--c->handles > 0)
    return;
  free(c->buf);
  cJSON_Delete(c->found);
  free(c);
}

static void client_close(ctl_client *c) {
  gv_node *n = c->node;
  if (c->closing)
    return;
  c->closing = true;
  c->waiting = false;
  for (ctl_client **pp = &n->clients; *pp != NULL; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  uv_close((uv_handle_t *)&c->pipe, on_client_closed);
  uv_close((uv_handle_t *)&c->wait, on_client_closed);
}

static void on_ctl_connection(uv_stream_t *server, int status) {
  gv_node *n = server->data;
  ctl_client *c;

  if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
    return;
  c->node = n;
  uv_pipe_init(n->loop, &c->pipe, 0);
  uv_timer_init(n->loop, &c->wait);
  c->pipe.data = c->wait.data = c;
  c->handles = 2;
  c->next = n->clients;
  n->clients = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, on_client_alloc, on_client_read) <
          0)
    client_close(c);
}

/* ---- metrics ---- */

static void publish_metrics(gv_node *n) {
  const gv_engine_stats *st = gv_engine_stats_get(n->engine);
  size_t cap = 16384, off = 0, connected = 0, total = 0;
  char *buf = malloc(cap);

  if (buf == NULL)
    return;
  for (size_t i = 0;; i++, total++) {
    const gv_peer_entry *p = gv_engine_table_at(n->engine, i);
    if (p == NULL)
      break;
    connected += p->connected;
  }
#define OUT(...)                                                               \
  off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, __VA_ARGS__)
  OUT("# HELP grapevine_links Links up.\n# TYPE grapevine_links gauge\n"
      "grapevine_links %zu\n",
      gv_engine_link_count(n->engine));
  OUT("# HELP grapevine_peers Peer table entries by state.\n"
      "# TYPE grapevine_peers gauge\ngrapevine_peers{state=\"connected\"} "
      "%zu\ngrapevine_peers{state=\"known\"} %zu\n",
      connected, total - connected);
  OUT("# HELP grapevine_messages_in_total Messages received by type.\n"
      "# TYPE grapevine_messages_in_total counter\n");
  for (int t = 1; t < GV__MSG_COUNT; t++)
    if (st->msgs_in[t])
      OUT("grapevine_messages_in_total{type=\"%s\"} %llu\n",
          gv_msg_type_name((gv_msg_type)t), (unsigned long long)st->msgs_in[t]);
  OUT("# HELP grapevine_messages_out_total Messages sent by type.\n"
      "# TYPE grapevine_messages_out_total counter\n");
  for (int t = 1; t < GV__MSG_COUNT; t++)
    if (st->msgs_out[t])
      OUT("grapevine_messages_out_total{type=\"%s\"} %llu\n",
          gv_msg_type_name((gv_msg_type)t),
          (unsigned long long)st->msgs_out[t]);
  OUT("# TYPE grapevine_dedup_hits_total counter\n"
      "grapevine_dedup_hits_total %llu\n"
      "# TYPE grapevine_repair_pulls_total counter\n"
      "grapevine_repair_pulls_total %llu\n"
      "# TYPE grapevine_bans_total counter\ngrapevine_bans_total %llu\n"
      "# TYPE grapevine_rejected_total counter\n"
      "grapevine_rejected_total %llu\n"
      "# TYPE grapevine_bytes_in_total counter\n"
      "grapevine_bytes_in_total %llu\n"
      "# TYPE grapevine_bytes_out_total counter\n"
      "grapevine_bytes_out_total %llu\n"
      "# TYPE grapevine_uptime_seconds gauge\n"
      "grapevine_uptime_seconds %lld\n",
      (unsigned long long)st->dedup_hits, (unsigned long long)st->pulls_sent,
      (unsigned long long)st->bans, (unsigned long long)st->rejected,
      (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
      (long long)((now_ms(n) - n->started) / 1000));
#undef OUT
  gv_metrics_publish(n->metrics, buf, off < cap ? off : cap - 1);
  free(buf);
}

/* Once a second: commit the store's queue, publish metrics. */
static void on_second(uv_timer_t *t) {
  gv_node *n = t->data;
  gv_why why = {""};

  if (gv_store_pending(n->store) > 0 && gv_store_flush(n->store, &why) < 0)
    gv_logf(&n->log, GV_LOG_ERROR, "store: %s", why.text);
  if (n->metrics != NULL)
    publish_metrics(n);
}

/* ---- shutdown ---- */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  close_handle(h);
}

static void maybe_finalize(gv_node *n) {
  gv_why why = {""};

  if (!n->stopping || n->finalized || n->n_links > 0 || n->trk_busy)
    return;
  n->finalized = true;
  if (gv_store_flush(n->store, &why) < 0)
    gv_logf(&n->log, GV_LOG_ERROR, "store: %s", why.text);
  close_handle((uv_handle_t *)&n->wake);
  close_handle((uv_handle_t *)&n->second);
  close_handle((uv_handle_t *)&n->renew);
  close_handle((uv_handle_t *)&n->grace);
  close_handle((uv_handle_t *)&n->announce);
  close_handle((uv_handle_t *)&n->sigint);
  close_handle((uv_handle_t *)&n->sigterm);
  gv_logf(&n->log, GV_LOG_INFO, "stopped");
}

static void on_grace(uv_timer_t *t) {
  gv_node *n = t->data;
  /* Links that did not close in time are cut. */
  for (size_t i = 0; i < n->n_links; i++)
    gv_conn_abort(n->links[i]->conn, GV_ESTATE);
  n->trk_busy = false; /* an unregister still running is abandoned */
  maybe_finalize(n);
}

static void stop(gv_node *n) {
  gv_msg bye;
  char *out = NULL;
  size_t len = 0;

  n->stopping = true;
  gv_logf(&n->log, GV_LOG_INFO, "stopping: goodbye to %zu link(s)", n->n_links);
  stop_listening(n);
  close_handle((uv_handle_t *)&n->ctl);
  while (n->clients != NULL)
    client_close(n->clients);
  uv_timer_stop(&n->wake);
  memset(&bye, 0, sizeof(bye));
  bye.type = GV_MSG_GOODBYE;
  snprintf(bye.u.reason, sizeof(bye.u.reason), "shutdown");
  gv_msg_encode_link(&bye, &out, &len);
  for (size_t i = 0; i < n->n_links; i++) {
    nlink *l = n->links[i];
    if (l->open)
      gv_conn_close(l->conn, (const uint8_t *)out, len);
    else
      gv_conn_abort(l->conn, GV_ESTATE);
  }
  free(out);
  if (n->registered)
    trk_start(n, TRK_UNREGISTER);
  uv_timer_start(&n->grace, on_grace, STOP_GRACE_MS, 0);
  maybe_finalize(n);
}

static void on_signal(uv_signal_t *s, int signum) {
  gv_node *n = s->data;
  if (n->stopping) {
    gv_logf(&n->log, GV_LOG_WARN, "second signal: exiting now");
    _exit(1);
  }
  gv_logf(&n->log, GV_LOG_INFO, "%s received",
          signum == SIGINT ? "SIGINT" : "SIGTERM");
  stop(n);
}

/* ---- start-up ---- */

static int take_lock(gv_node *n, gv_why *why) {
  char path[4200], pid[32];
  ssize_t got;

  snprintf(path, sizeof(path), "%s/lock", n->dir);
  n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (n->lock_fd < 0)
    return gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    got = pread(n->lock_fd, pid, sizeof(pid) - 1, 0);
    pid[got > 0 ? got : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(n->lock_fd);
    return gv_fail(why, GV_EBUSY,
                   "another grapevine node is running on %s (pid %s)", n->dir,
                   pid[0] ? pid : "?");
  }
  if (ftruncate(n->lock_fd, 0) == 0) {
    int k = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (pwrite(n->lock_fd, pid, (size_t)k, 0) < 0)
      return gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  }
  return 0;
}

static int restore_peer(void *ctx, const uint8_t id[GV_ID_BYTES],
                        const char *body, size_t body_len,
                        const uint8_t sig[64], int64_t last_seen) {
  gv_node *n = ctx;
  (void)id;
  if (gv_engine_restore(n->engine, body, body_len, sig, last_seen, now_ms(n)) <
      0)
    gv_logf(&n->log, GV_LOG_DEBUG,
            "store: a cached record no longer validates");
  return 0;
}

static void load_settings(gv_node *n) {
  char buf[GV_MAX_REPOS * (GV_REPO_MAX + 1) + 1];

  if (n->cfg.n_repos == 0 &&
      gv_store_get(n->store, "repos", buf, sizeof(buf)) == 0) {
    for (char *s = strtok(buf, "\n"); s != NULL && n->n_repos < GV_MAX_REPOS;
         s = strtok(NULL, "\n"))
      if (gv_repo_name_check(s, strlen(s)) == 0)
        snprintf(n->repos[n->n_repos++], GV_REPO_MAX + 1, "%s", s);
  }
  if (n->broadcasting &&
      gv_store_get(n->store, "broadcast", buf, sizeof(buf)) == 0 &&
      strcmp(buf, "off") == 0) {
    gv_logf(&n->log, GV_LOG_WARN,
            "broadcast was switched off with 'grapevine "
            "broadcast off'; staying silent. Run 'grapevine "
            "broadcast on' to share this node's address again");
    n->broadcasting = false;
  }
}

static void on_seed_resolved(uv_getaddrinfo_t *req, int status,
                             struct addrinfo *res) {
  gv_node *n = req->data;
  for (struct addrinfo *ai = res; status == 0 && ai != NULL; ai = ai->ai_next) {
    gv_addr a;
    if (gv_addr_from_sockaddr(&a, ai->ai_addr) < 0)
      continue;
    gv_engine_add_candidate(n->engine, NULL, &a, now_ms(n));
  }
  if (status < 0)
    gv_logf(&n->log, GV_LOG_WARN, "peer: cannot resolve: %s",
            uv_strerror(status));
  uv_freeaddrinfo(res);
  free(req);
  drain(n);
}

static void resolve_seeds(gv_node *n) {
  for (size_t i = 0; i < n->cfg.n_peers; i++) {
    char host[GV_CONFIG_PEER_MAX], *colon;
    uv_getaddrinfo_t *req;
    struct addrinfo hints;

    snprintf(host, sizeof(host), "%s", n->cfg.peers[i]);
    colon = strrchr(host, ':');
    if (colon == NULL || (req = malloc(sizeof(*req))) == NULL)
      continue;
    *colon = '\0';
    if (host[0] == '[') { /* [ipv6]:port */
      memmove(host, host + 1, strlen(host));
      host[strcspn(host, "]")] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    req->data = n;
    if (uv_getaddrinfo(n->loop, req, on_seed_resolved, host, colon + 1,
                       &hints) < 0)
      free(req);
  }
}

static int start(gv_node *n, gv_why *why) {
  gv_engine_cfg ec;
  char path[4200];
  int created, rc;

  if ((rc = gv_cli_mkdirs(n->dir)) < 0)
    return gv_fail(why, rc, "%s: %s", n->dir, gv_strerror(rc));
  if ((rc = take_lock(n, why)) < 0)
    return rc;
  snprintf(path, sizeof(path), "%s/node.key", n->dir);
  if ((rc = gv_id_load_or_create(&n->id, path, &created, why)) < 0)
    return rc;
  gv_id_to_hex(n->id.pk, n->idhex);
  gv_logf(&n->log, GV_LOG_INFO, "node %s%s, data in %s", n->idhex,
          created ? " (new identity)" : "", n->dir);
  snprintf(path, sizeof(path), "%s/node.db", n->dir);
  if ((rc = gv_store_open(&n->store, path, why)) < 0)
    return rc;
  for (size_t i = 0; i < n->cfg.n_repos; i++)
    memcpy(n->repos[i], n->cfg.repos[i], sizeof(n->repos[i]));
  n->n_repos = n->cfg.n_repos;
  n->broadcasting = n->cfg.broadcast;
  load_settings(n);

  gv_engine_cfg_default(&ec);
  randombytes_buf(&ec.seed, sizeof(ec.seed));
  ec.broadcasting = n->broadcasting;
  ec.bootstrap = n->broadcasting && n->cfg.bootstrap;
  if (n->broadcasting) {
    ec.addrs[0] = n->cfg.listen;
    ec.n_addrs = 1;
  }
  ec.repos = (const char(*)[GV_REPO_MAX + 1]) n->repos;
  ec.n_repos = n->n_repos;
  n->started = now_ms(n);
  if ((rc = gv_engine_new(&n->engine, &ec, &n->id, n->started)) < 0)
    return gv_fail(why, rc, "engine: %s", gv_strerror(rc));
  rc = gv_store_load_peers(n->store, restore_peer, n);
  gv_logf(&n->log, GV_LOG_INFO, "restored %zu cached peer(s)",
          gv_engine_table_size(n->engine));
  if (rc < 0)
    return gv_fail(why, rc, "store: cannot read cached peers");

  if (n->broadcasting && (rc = start_listening(n, why)) < 0)
    return rc;
  snprintf(path, sizeof(path), "%s/control.sock", n->dir);
  unlink(path); /* stale from a crash: we hold the lock */
  uv_pipe_init(n->loop, &n->ctl, 0);
  n->ctl.data = n;
  if ((rc = uv_pipe_bind(&n->ctl, path)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&n->ctl, 16, on_ctl_connection)) < 0)
    return gv_fail(why, rc, "control socket %s: %s", path, uv_strerror(rc));
  chmod(path, 0600);
  if (n->cfg.has_metrics &&
      (rc = gv_metrics_start(&n->metrics, &n->cfg.metrics, why)) < 0)
    return rc;
  if (n->cfg.tracker[0] && gv_trkc_new(&n->trk, n->cfg.tracker, NULL) < 0)
    return gv_fail(why, GV_EINVAL, "tracker: bad URL %s", n->cfg.tracker);

  uv_timer_init(n->loop, &n->wake);
  uv_timer_init(n->loop, &n->second);
  uv_timer_init(n->loop, &n->renew);
  uv_timer_init(n->loop, &n->grace);
  uv_timer_init(n->loop, &n->announce);
  n->wake.data = n->second.data = n->renew.data = n->grace.data = n;
  n->announce.data = n;
  uv_timer_start(&n->second, on_second, 1000, 1000);
  uv_timer_start(&n->renew, on_renew, 0,
                 n->cfg.bootstrap ? RENEW_MS : TRACKER_RETRY_MS);
  uv_signal_init(n->loop, &n->sigint);
  uv_signal_init(n->loop, &n->sigterm);
  n->sigint.data = n->sigterm.data = n;
  uv_signal_start(&n->sigint, on_signal, SIGINT);
  uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  resolve_seeds(n);
  gv_engine_tick(n->engine, now_ms(n));
  drain(n);
  return 0;
}

/* ---- the command ---- */

static void node_usage(FILE *f) {
  fprintf(f, "usage: grapevine node [--config FILE] [--data-dir DIR] "
             "[--broadcast]\n"
             "                      [--bootstrap] [--listen ADDR:PORT] "
             "[--repo NAME]...\n"
             "                      [--peer HOST:PORT]... [--tracker URL]\n"
             "                      [--metrics ADDR:PORT] [--log-level L]\n\n"
             "Runs this machine's Grapevine node in the foreground (systemd "
             "runs it as a\nservice). Silent by default: it only dials out and "
             "its address is never\nshared. See docs/NODE.md.\n\n"
             "  --config FILE      read keys from FILE first (flags override "
             "it)\n"
             "  --data-dir DIR     identity, database and control socket\n"
             "  --broadcast        accept links; share the --listen address\n"
             "  --bootstrap        also register at the tracker (implies "
             "--broadcast)\n"
             "  --listen ADDR:PORT where to listen; the address others are "
             "told\n"
             "  --repo NAME        a repository this node holds (repeatable)\n"
             "  --peer HOST:PORT   a static seed to dial (repeatable)\n"
             "  --tracker URL      the bootstrap tracker, http://HOST:PORT\n"
             "  --metrics ADDR:PORT serve Prometheus metrics (loopback "
             "advised)\n"
             "  --log-level L      error, warn, info (default) or debug\n");
}

int gv_cmd_node(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"data-dir", required_argument, NULL, 'd'},
      {"broadcast", no_argument, NULL, 'b'},
      {"bootstrap", no_argument, NULL, 'B'},
      {"listen", required_argument, NULL, 'l'},
      {"repo", required_argument, NULL, 'r'},
      {"peer", required_argument, NULL, 'p'},
      {"tracker", required_argument, NULL, 't'},
      {"metrics", required_argument, NULL, 'm'},
      {"log-level", required_argument, NULL, 'L'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static const char *const keys[128] = {
      ['d'] = "data-dir", ['b'] = "broadcast", ['B'] = "bootstrap",
      ['l'] = "listen",   ['r'] = "repo",      ['p'] = "peer",
      ['t'] = "tracker",  ['m'] = "metrics",   ['L'] = "log-level",
  };
  gv_node *n = calloc(1, sizeof(*n));
  gv_why why = {""};
  uv_loop_t loop;
  int opt, rc;

  if (n == NULL)
    return 1;
  gv_config_default(&n->cfg);
  /* --config first, so that flags override the file. */
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (opt == 'h') {
      node_usage(stdout);
      free(n);
      return 0;
    }
    if (opt == '?') {
      node_usage(stderr);
      free(n);
      return 2;
    }
    if (opt == 'c' && gv_config_load_file(&n->cfg, optarg, &why) < 0) {
      fprintf(stderr, "grapevine node: %s\n", why.text);
      free(n);
      return 2;
    }
  }
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    const char *v = opt == 'b' || opt == 'B' ? "true" : optarg;
    if (opt == 'c' || opt >= 128 || keys[opt] == NULL)
      continue;
    if (gv_config_set(&n->cfg, keys[opt], v, &why) < 0) {
      fprintf(stderr, "grapevine node: %s\n", why.text);
      free(n);
      return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "grapevine node: unexpected argument '%s'\n", argv[optind]);
    free(n);
    return 2;
  }
  if (gv_config_validate(&n->cfg, &why) < 0) {
    fprintf(stderr, "grapevine node: %s\n", why.text);
    free(n);
    return 2;
  }
  if (gv_cli_data_dir(n->cfg.data_dir[0] ? n->cfg.data_dir : NULL, n->dir,
                      sizeof(n->dir)) < 0) {
    fprintf(stderr, "grapevine node: cannot tell the data directory; pass "
                    "--data-dir DIR\n");
    free(n);
    return 2;
  }
  gv_log_init(&n->log, stderr, n->cfg.log_level, "grapevine");
  {
    uint64_t seed;
    randombytes_buf(&seed, sizeof(seed));
    gv_rng_seed(&n->rng, seed);
  }
  signal(SIGPIPE, SIG_IGN);
  umask(077);
  if (n->cfg.tracker[0])
    curl_global_init(CURL_GLOBAL_DEFAULT); /* only a tracker needs it */
  uv_loop_init(&loop);
  n->loop = &loop;
  n->lock_fd = -1;
  rc = start(n, &why);
  if (rc < 0) {
    fprintf(stderr, "grapevine node: %s\n", why.text);
    n->stopping = true;
    if (n->engine != NULL) {
      n->finalized = true;
      uv_walk(&loop, close_any, NULL);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  gv_metrics_stop(n->metrics);
  gv_trkc_free(n->trk);
  gv_store_close(n->store);
  gv_engine_free(n->engine);
  gv_id_wipe(&n->id);
  if (n->lock_fd >= 0)
    close(n->lock_fd);
  if (n->cfg.tracker[0])
    curl_global_cleanup();
  gv_log_done(&n->log);
  free(n->links);
  free(n);
  return rc < 0 ? 1 : 0;
}

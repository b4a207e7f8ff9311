/* grapevine node: the daemon, wiring only. It owns the node's state and
 * connects the pieces, each in its own file: the link core (lcore.c) owns
 * every link's rules and hands each channel to its service; the gossip
 * engine (engine.c), the gossip service, decides everything about gossip;
 * the link table (links.c) carries the bytes;
 * the control socket (ctlsrv.c), the tracker jobs (trkjobs.c), the metrics
 * text (nodemetrics.c, served by metrics.c), the store (store.c) and the
 * logger (common/log.c) each do one job; the torrent service (torsvc.c)
 * owns the libtorrent session. The cores' actions become calls
 * on those pieces in drain(); their callbacks become core events here. One
 * timer serves both cores, armed at the earlier of their expiries.
 *
 *   start -> RUNNING --SIGINT/SIGTERM--> STOPPING (unregister, GOODBYE on
 *   every link, flush) --all links closed or 3 s--> closed handles -> exit 0
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agentsrv.h"
#include "cli.h"
#include "config.h"
#include "ctlsrv.h"
#include "db.h"
#include "engine.h"
#include "fsutil.h"
#include "lcore.h"
#include "links.h"
#include "log.h"
#include "metrics.h"
#include "nodemetrics.h"
#include "relay.h"
#include "relaystore.h"
#include "sockaddr.h"
#include "store.h"
#include "team.h"
#include "torsvc.h"
#include "trkclient.h"
#include "trkjobs.h"
#include "tun.h"
#include "tunio.h"

#define STOP_GRACE_MS 3000
#define RENEW_MS (20 * 60 * 1000)
#define TRACKER_RETRY_MS 30000
#define ANNOUNCE_DELAY_MS 1000         /* after the first link: gather more */
#define REANNOUNCE_MS (30 * 60 * 1000) /* well within the 2 h expiry */
#define TUNNEL_DIAL_HOLDOFF_MS 5000    /* between dials of a peer for tunnels */
#define TUNNEL_KEEP_MS                                                         \
  60000 /* a peer dialed for tunnels, after its last use                       \
         */

/* A peer this node dialed to carry tunnels (docs/TORRENT.md, "The
 * connection matrix"): its link is held (gv_tun_expect) from when it comes
 * up until TUNNEL_KEEP_MS after a fetch last asked for it. */
typedef struct tpeer {
  uint8_t id[GV_ID_BYTES];
  int64_t dialed_at, used_at;
} tpeer;

typedef struct gv_node {
  gv_config cfg;
  char dir[4096];
  uv_loop_t *loop;
  gv_identity id;
  char idhex[GV_ID_HEX_LEN + 1];
  gv_log log;
  gv_engine *engine;
  gv_lcore *lc;
  gv_service gossip; /* the engine, as the link core's gossip service */
  gv_relay *relay;   /* the relay core, the service of channel 2 */
  gv_rstore *rstore; /* its rows (relay.db) */
  gv_agentsrv *asrv; /* its agents (relay.sock) */
  uint8_t rnd_key[crypto_stream_chacha20_ietf_KEYBYTES]; /* relay_random */
  uint64_t rnd_ctr;
  gv_store *store;
  gv_metrics *metrics;
  gv_trkc *trk;
  gv_links *links;
  gv_ctlsrv *ctl;
  gv_trkjobs *jobs;
  gv_torsvc *tor; /* the torrent session and what was shared or fetched */
  gv_tun *tun;    /* the tunnel core, the service of channel 3 */
  gv_tunio *tio;  /* its local sockets */
  tpeer tpeers[GV_TUN_EXPECT_MAX];
  size_t n_tpeers;
  int lock_fd;
  int dir_fd; /* the checked data directory, open while its dbs are */
  uv_timer_t wake, second, grace, announce;
  uv_signal_t sigint, sigterm;
  int64_t last_now, started, wake_at;
  int64_t silence_at; /* broadcast off: stop accepting then (0: not due) */
  bool stopping, finalized, broadcasting;
  char repos[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t n_repos;
} gv_node;

/* The cores' clock: monotonic ms. The wall clock reaches them only as an
 * offset, for message timestamps, so stepping it freezes no timer. */
static int64_t now_ms(gv_node *n) {
  int64_t t = (int64_t)(uv_hrtime() / 1000000u);
  if (t > n->last_now)
    n->last_now = t;
  if (n->engine != NULL) {
    int64_t offset = gv_cli_now_ms() - n->last_now;
    gv_engine_set_wall(n->engine, offset);
    if (n->lc != NULL)
      gv_lcore_set_wall(n->lc, offset);
    if (n->relay != NULL)
      gv_relay_set_wall(n->relay, offset);
  }
  return n->last_now;
}

static void drain(gv_node *n);
static void maybe_finalize(gv_node *n);
static void save_guards(gv_node *n);

/* What the tracker jobs register: follows broadcast on/off and repos. */
static void set_trk_role(gv_node *n) {
  gv_trkjobs_role role = {
      n->cfg.bootstrap && n->broadcasting, n->cfg.listen.port,
      (const char(*)[GV_REPO_MAX + 1]) n->repos, n->n_repos};
  gv_trkjobs_set_role(n->jobs, &role);
}

/* The record's repositories: the user's, then the torrent service's names
 * (bt:<v1>, bt2:<v2>, a share's --repo), each once. */
static void publish_repos(gv_node *n) {
  char all[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t k = n->n_repos;

  memcpy(all, n->repos, k * sizeof(all[0]));
  if (n->tor != NULL)
    k = gv_torsvc_names(n->tor, all, k, GV_MAX_REPOS);
  gv_engine_set_repos(n->engine, all, k < GV_MAX_REPOS ? k : GV_MAX_REPOS,
                      now_ms(n));
}

/* ---- links -> link core ---- */

/* This node's record floods the network once it has links to carry it,
 * and again every 30 min so that no node lets it expire. */
static void on_announce(uv_timer_t *t) {
  gv_node *n = t->data;
  if (n->stopping)
    return;
  gv_engine_announce(n->engine, NULL, now_ms(n));
  drain(n);
}

static void on_link_up(void *ctx, gv_linkid id, const uint8_t *peer,
                       bool dialed, const gv_addr *addr) {
  gv_node *n = ctx;
  gv_lcore_open(n->lc, id, peer, dialed, addr, now_ms(n));
  if (!uv_is_active((uv_handle_t *)&n->announce))
    uv_timer_start(&n->announce, on_announce, ANNOUNCE_DELAY_MS, REANNOUNCE_MS);
  drain(n);
}

static void on_link_msg(void *ctx, gv_linkid id, const uint8_t *msg,
                        size_t len) {
  gv_node *n = ctx;
  gv_lcore_recv(n->lc, id, msg, len, now_ms(n));
  drain(n);
}

static void on_link_down(void *ctx, const gv_links_down *ev) {
  gv_node *n = ctx;
  /* After the handshake the link core tells the engine how a dial ended
   * (the service's dial_ended); before it, the dial failed here. */
  if (ev->was_open)
    gv_lcore_closed(n->lc, ev->id, ev->status == 0, now_ms(n));
  else if (ev->dialed) {
    gv_engine_dial_failed(n->engine, ev->pin, ev->addr, now_ms(n));
    gv_relay_dial_failed(n->relay, ev->pin, now_ms(n));
  }
  if (n->tun != NULL && ev->dialed && ev->pin != NULL) /* parked OPENs */
    gv_tun_dial_failed(n->tun, ev->pin);
  if (n->tio != NULL)
    gv_tunio_link_down(n->tio, ev->id);
  drain(n);
  maybe_finalize(n);
}

static const gv_links_cbs links_cbs = {on_link_up, on_link_msg, on_link_down};

/* ---- the cores' actions ---- */

static void on_wake(uv_timer_t *t) {
  gv_node *n = t->data;
  int64_t now = now_ms(n);
  n->wake_at = INT64_MAX;
  gv_lcore_tick(n->lc, now);
  gv_engine_tick(n->engine, now);
  gv_relay_tick(n->relay, now);
  /* broadcast off: the inbound links had GV_UPTAKE_WAIT_MS to confirm the
   * update (the engine let go of them at the same time). */
  if (n->silence_at > 0 && now >= n->silence_at) {
    n->silence_at = 0;
    gv_lcore_set_accepting(n->lc, false, now);
  }
  drain(n);
}

/* FINAL's plaintext: a GOODBYE saying why, on the link channel. NULL if
 * it cannot be encoded (out of memory): the FINAL goes out empty. */
static gv_buf *goodbye(gv_close why) {
  gv_msg bye;
  memset(&bye, 0, sizeof(bye));
  bye.type = GV_MSG_GOODBYE;
  snprintf(bye.u.reason, sizeof(bye.u.reason), "%s", gv_close_label(why));
  return gv_chan_msg(GV_CHAN_LINK, &bye);
}

static void close_link(gv_node *n, gv_linkid link, gv_close why) {
  gv_buf *b = goodbye(why);
  gv_links_close(n->links, link, gv_close_label(why), b ? b->data : NULL,
                 b ? b->len : 0);
  gv_buf_unref(b);
}

#define SEQ_KEY "seq_ceiling"

/* Stores the engine's new seq ceiling, committed (fsync'd) when it
 * returns: the messages after the action carry seqs up to it. */
static int reserve_seq(gv_node *n, uint64_t ceiling) {
  char v[24];
  snprintf(v, sizeof(v), "%llu", (unsigned long long)ceiling);
  return gv_store_set(n->store, SEQ_KEY, v);
}

/* The ceiling the last run reserved (0: none stored). A value that is not
 * a number in 1..2^53-1 is refused: starting lower could reuse numbers. */
static int load_seq_floor(gv_node *n, uint64_t *floor, gv_why *why) {
  char buf[32], *end;
  unsigned long long v;
  int rc;

  *floor = 0;
  /* Only "never stored" means a floor of 0: after any other error a
   * floor of 0 could send a sequence number again. */
  rc = gv_store_get(n->store, SEQ_KEY, buf, sizeof(buf));
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    return gv_fail(why, rc,
                   "store: cannot read the stored %s (%s); not starting, "
                   "as sequence numbers could go back",
                   SEQ_KEY, gv_strerror(rc));
  errno = 0;
  v = strtoull(buf, &end, 10);
  if (errno != 0 || end == buf || *end != '\0' || buf[0] == '-' || v == 0 ||
      v > GV_SEQ_MAX)
    return gv_fail(why, GV_ERANGE,
                   "store: the stored %s '%.24s' is not a sequence number",
                   SEQ_KEY, buf);
  *floor = v;
  return 0;
}

static void run_action(gv_node *n, const gv_action *a) {
  switch (a->type) {
  case GV_ACT_SEQ_RESERVE:
    /* Nothing after this action may go out unless the ceiling is durable:
     * a node that cannot store it stops, as if killed (PROTOCOL.md §6.2). */
    if (reserve_seq(n, a->seq) < 0) {
      gv_logf(&n->log, GV_LOG_ERROR,
              "store: cannot save the sequence ceiling; exiting so that no "
              "sequence number is ever reused");
      _exit(1);
    }
    break;
  case GV_ACT_SEND: {
    int rc = gv_links_send(n->links, a->link, a->buf->data, a->buf->len);
    if (rc == GV_EBUSY) {
      /* The peer does not read: its queue is full. */
      gv_logf(&n->log, GV_LOG_WARN, "link %u: send queue full", a->link);
      gv_lcore_send_failed(n->lc, a->link, now_ms(n));
    } else if (rc < 0 && rc != -ENOENT && rc != GV_ESTATE) {
      /* -ENOENT: the link is gone; GV_ESTATE: it is closing */
      gv_logf(&n->log, GV_LOG_WARN, "link %u: send: %s", a->link,
              gv_strerror(rc));
    }
    gv_buf_unref(a->buf);
    break;
  }
  case GV_ACT_DIAL: {
    char text[GV_ADDR_TEXT_MAX];
    gv_addr_format(&a->addr, text);
    gv_logf(&n->log, GV_LOG_DEBUG, "dialing %s", text);
    if (gv_links_dial(n->links, a->peer, &a->addr) < 0) {
      static const uint8_t zero[GV_ID_BYTES];
      bool pinned = memcmp(a->peer, zero, GV_ID_BYTES) != 0;
      gv_engine_dial_failed(n->engine, pinned ? a->peer : NULL, &a->addr,
                            now_ms(n));
    }
    break;
  }
  case GV_ACT_CLOSE: close_link(n, a->link, (gv_close)a->reason); break;
  case GV_ACT_RELEASE:
    gv_lcore_release(n->lc, a->link, GV_HOLD_GOSSIP, now_ms(n));
    break;
  case GV_ACT_REJECT:
    gv_logf(&n->log, GV_LOG_DEBUG, "link %u: rejected a message: %s", a->link,
            a->why);
    break;
  case GV_ACT_PERSIST:
    if (a->entry != NULL)
      gv_store_put_peer(n->store, a->peer, a->entry->body, a->entry->body_len,
                        gv_peer_entry_sig(a->entry), a->at);
    else
      gv_store_del_peer(n->store, a->peer);
    /* A silent peer's newer record may name this node as its relay (or
     * no longer): the relay decides again whether it holds its link. */
    if (n->relay != NULL)
      gv_relay_record(n->relay, a->peer, now_ms(n));
    break;
  case GV_ACT_REPORT:
    if (n->ctl != NULL)
      gv_ctlsrv_report(n->ctl, a);
    gv_torsvc_report(n->tor, a);
    break;
  case GV_ACT_GUARDS: save_guards(n); break;
  default: break;
  }
}

/* ---- the relay's actions ---- */

static void on_rstore_done(void *ctx, uint64_t job, int status) {
  gv_node *n = ctx;
  gv_relay_committed(n->relay, job, status, now_ms(n));
  drain(n);
}

static void run_relay_action(gv_node *n, gv_ract *a) {
  int rc;

  switch (a->type) {
  case GV_RACT_SEND:
    if (a->forwarded && n->log.level >= GV_LOG_DEBUG) {
      /* The relay's frame log: all a relaying node learns of a packet. */
      char dst[GV_ID_HEX_LEN + 1], id[2 * GV_RW_ID_BYTES + 1];
      gv_id_to_hex(a->peer, dst);
      sodium_bin2hex(id, sizeof(id), a->id, GV_RW_ID_BYTES);
      gv_logf(&n->log, GV_LOG_DEBUG,
              "relay: forwarded %zu bytes of message %s to %s", a->len - 1, id,
              dst);
    }
    rc = gv_links_send(n->links, a->link, a->data, a->len);
    if (rc == GV_EBUSY)
      gv_lcore_send_failed(n->lc, a->link, now_ms(n));
    break;
  case GV_RACT_DIAL:
    if (gv_links_dial(n->links, a->peer, &a->addr) < 0)
      gv_relay_dial_failed(n->relay, a->peer, now_ms(n));
    break;
  case GV_RACT_HOLD:
    gv_lcore_hold(n->lc, a->link, GV_HOLD_RELAY, now_ms(n));
    break;
  case GV_RACT_RELEASE:
    gv_lcore_release(n->lc, a->link, GV_HOLD_RELAY, now_ms(n));
    break;
  case GV_RACT_PERSIST:
    /* A store that cannot take the job (its queue is full, or it closed)
     * fails it now: the core answers BUSY, or the agent an error, and
     * nothing is lost. */
    rc = n->rstore == NULL ? GV_ESTATE
                           : gv_rstore_persist(n->rstore, a->job, a->rows,
                                               a->n_rows, on_rstore_done, n);
    if (rc < 0)
      gv_relay_committed(n->relay, a->job, rc, now_ms(n));
    break;
  case GV_RACT_LINE:
    if (n->asrv != NULL) {
      gv_agentsrv_write(n->asrv, a->conn, a->data, a->len);
      a->data = NULL; /* the socket owns it */
    }
    break;
  case GV_RACT_HANGUP:
    if (n->asrv != NULL)
      gv_agentsrv_hangup(n->asrv, a->conn);
    break;
  case GV_RACT_RELAYS:
    if ((rc = gv_engine_set_relays(n->engine, a->relays, a->n_relays,
                                   now_ms(n))) < 0)
      gv_logf(&n->log, GV_LOG_WARN, "relays: %s", gv_strerror(rc));
    break;
  default: break;
  }
  free(a->data);
}

/* ---- the tunnel core's actions ---- */

static void run_tun_action(gv_node *n, gv_tact *a) {
  switch (a->type) {
  case GV_TACT_SEND:
    if (gv_links_send(n->links, a->link, a->data, a->len) == GV_EBUSY)
      gv_lcore_send_failed(n->lc, a->link, now_ms(n));
    break;
  case GV_TACT_HOLD:
    gv_lcore_hold(n->lc, a->link, GV_HOLD_TORRENT, now_ms(n));
    break;
  case GV_TACT_RELEASE:
    gv_lcore_release(n->lc, a->link, GV_HOLD_TORRENT, now_ms(n));
    break;
  case GV_TACT_DIAL: { /* a relayed OPEN waits for this link */
    char hex[GV_ID_HEX_LEN + 1];
    gv_id_to_hex(a->peer, hex);
    gv_logf(&n->log, GV_LOG_DEBUG, "tunnel: dialing %.16s to relay a stream",
            hex);
    if (gv_links_dial(n->links, a->peer, &a->addr) < 0)
      gv_tun_dial_failed(n->tun, a->peer);
    break;
  }
  default: gv_tunio_run(n->tio, a); break; /* the local sockets' */
  }
  free(a->data);
}

/* ---- agents (relay.sock) -> relay core ---- */

static void on_agent_open(void *ctx, gv_rconn conn) {
  gv_node *n = ctx;
  gv_relay_conn_open(n->relay, conn, now_ms(n));
  drain(n);
}

static void on_agent_line(void *ctx, gv_rconn conn, const char *line,
                          size_t len) {
  gv_node *n = ctx;
  gv_relay_conn_line(n->relay, conn, line, len, now_ms(n));
  drain(n);
}

static void on_agent_closed(void *ctx, gv_rconn conn) {
  gv_node *n = ctx;
  gv_relay_conn_closed(n->relay, conn, now_ms(n));
  drain(n);
}

static const gv_agentsrv_cbs agent_cbs = {on_agent_open, on_agent_line,
                                          on_agent_closed};

/* Carries out the cores' actions until all are quiet (one core's action
 * may be another's event), then arms the one timer. */
static void drain(gv_node *n) {
  gv_action a;
  gv_ract ra;
  gv_tact ta;
  bool more = true;
  int64_t at, lc_at, now;

  while (more) {
    more = false;
    while (gv_engine_next(n->engine, &a)) {
      run_action(n, &a);
      more = true;
    }
    while (gv_lcore_next(n->lc, &a)) {
      run_action(n, &a);
      more = true;
    }
    while (n->relay != NULL && gv_relay_next(n->relay, &ra)) {
      run_relay_action(n, &ra);
      more = true;
    }
    while (n->tun != NULL && gv_tun_next(n->tun, &ta)) {
      run_tun_action(n, &ta);
      more = true;
    }
  }
  if (n->stopping)
    return;
  at = gv_engine_expiry(n->engine);
  lc_at = gv_lcore_expiry(n->lc);
  if (lc_at < at)
    at = lc_at;
  lc_at = gv_relay_expiry(n->relay);
  if (lc_at < at)
    at = lc_at;
  if (at == n->wake_at || at == INT64_MAX)
    return;
  n->wake_at = at;
  /* Counted from the loop's own (cached, same monotonic) clock, so the
   * timer never fires before at. */
  now = (int64_t)uv_now(n->loop);
  uv_timer_start(&n->wake, on_wake, at > now ? (uint64_t)(at - now) : 0, 0);
}

/* ---- tracker jobs -> engine ---- */

static void on_trk_found(void *ctx, const gv_trkc_peers *peers) {
  gv_node *n = ctx;
  for (size_t i = 0; i < peers->n; i++)
    gv_engine_add_candidate(n->engine, peers->v[i].id, &peers->v[i].addr, false,
                            now_ms(n));
}

static size_t on_trk_link_count(void *ctx) {
  gv_node *n = ctx;
  return gv_lcore_count(n->lc);
}

static void on_trk_done(void *ctx) {
  gv_node *n = ctx;
  maybe_finalize(n);
  drain(n);
}

static const gv_trkjobs_cbs trk_cbs = {on_trk_found, on_trk_link_count,
                                       on_trk_done};

/* ---- control commands ---- */

static cJSON *repos_json(gv_node *n) {
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; i < n->n_repos; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(n->repos[i]));
  return a;
}

/* The guard set for status --json: id, wall-clock times (ms), whether it
 * is down and whether a link to it is up. Empty while broadcasting or with
 * guards off. */
static cJSON *guards_json(gv_node *n) {
  cJSON *a = cJSON_CreateArray();
  size_t k;
  const gv_guard *g = gv_engine_guards(n->engine, &k);

  for (size_t i = 0; i < k; i++) {
    cJSON *o = cJSON_CreateObject();
    const gv_peer_entry *p = gv_engine_table_get(n->engine, g[i].id);
    char hex[GV_ID_HEX_LEN + 1];
    gv_id_to_hex(g[i].id, hex);
    cJSON_AddStringToObject(o, "id", hex);
    cJSON_AddNumberToObject(o, "chosen_at",
                            (double)gv_engine_wall(n->engine, g[i].chosen_at));
    cJSON_AddNumberToObject(o, "expires_at",
                            (double)gv_engine_wall(n->engine, g[i].expires_at));
    if (g[i].down_since != 0)
      cJSON_AddNumberToObject(
          o, "down_since", (double)gv_engine_wall(n->engine, g[i].down_since));
    else
      cJSON_AddNullToObject(o, "down_since");
    cJSON_AddBoolToObject(o, "linked", p != NULL && p->connected);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

static cJSON *on_ctl_status(void *ctx) {
  gv_node *n = ctx;
  cJSON *o = cJSON_CreateObject();
  char addr[GV_ADDR_TEXT_MAX], shrt[GV_ID_SHORT_LEN + 1];

  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddStringToObject(o, "id", n->idhex);
  gv_id_to_short(n->id.pk, shrt);
  cJSON_AddStringToObject(o, "short", shrt);
  cJSON_AddNumberToObject(o, "uptime_s",
                          (double)((now_ms(n) - n->started) / 1000));
  cJSON_AddNumberToObject(o, "links", (double)gv_lcore_count(n->lc));
  cJSON_AddNumberToObject(o, "handshaking",
                          (double)gv_links_handshaking(n->links));
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
  cJSON_AddNumberToObject(o, "torrent_port",
                          n->tor != NULL ? gv_torsvc_port(n->tor) : 0);
  cJSON_AddStringToObject(o, "data_dir", n->dir);
  cJSON_AddBoolToObject(o, "tracker_registered",
                        gv_trkjobs_registered(n->jobs));
  cJSON_AddItemToObject(o, "guards", guards_json(n));
  return o;
}

static void save_repos(gv_node *n) {
  char buf[GV_MAX_REPOS * (GV_REPO_MAX + 1) + 1] = "";
  size_t off = 0;
  for (size_t i = 0; i < n->n_repos; i++)
    off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s\n", n->repos[i]);
  gv_store_set(n->store, "repos", buf);
}

static void tor_listen(gv_node *n);

static cJSON *on_ctl_command(void *ctx, const gv_ctl_req *req) {
  gv_node *n = ctx;
  gv_why why = {""};
  cJSON *o;
  int rc;

  if (req->cmd == GV_CTL_REPO_ADD || req->cmd == GV_CTL_REPO_RM) {
    size_t i;
    for (i = 0; i < n->n_repos && strcmp(n->repos[i], req->repo) != 0; i++)
      ;
    if (req->cmd == GV_CTL_REPO_ADD && i == n->n_repos) {
      char tor[GV_MAX_REPOS][GV_REPO_MAX + 1];
      size_t m =
          n->tor != NULL ? gv_torsvc_names(n->tor, tor, 0, GV_MAX_REPOS) : 0;
      if (n->n_repos + m >= GV_MAX_REPOS)
        return gv_ctlsrv_error(GV_ELIMIT, "this node holds the maximum "
                                          "number of repositories (with "
                                          "its shared torrents' names)");
      memcpy(n->repos[n->n_repos++], req->repo, sizeof(req->repo));
    } else if (req->cmd == GV_CTL_REPO_RM && i < n->n_repos) {
      memcpy(n->repos[i], n->repos[--n->n_repos], sizeof(n->repos[i]));
    }
    publish_repos(n);
    set_trk_role(n);
    save_repos(n);
    drain(n);
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddItemToObject(o, "repos", repos_json(n));
    return o;
  }
  /* GV_CTL_BROADCAST */
  if (req->on && !n->cfg.has_listen)
    return gv_ctlsrv_error(GV_EINVAL, "broadcast needs the node started "
                                      "with --listen ADDR:PORT");
  if (req->on && (rc = gv_links_listen(n->links, &n->cfg.listen, &why)) < 0)
    return gv_ctlsrv_error(rc, why.text);
  if (!req->on)
    gv_links_unlisten(n->links);
  n->broadcasting = req->on;
  tor_listen(n);
  gv_tun_set_relay(n->tun, req->on);
  set_trk_role(n);
  gv_engine_set_broadcast(n->engine, req->on, req->on && n->cfg.bootstrap,
                          &n->cfg.listen, req->on ? 1 : 0, now_ms(n));
  gv_store_set(n->store, "broadcast", req->on ? "on" : "off");
  if (!req->on)
    gv_trkjobs_unregister(n->jobs);
  /* Going silent, inbound links stay while they may confirm the update
   * (the engine releases each one that does); those left end as
   * not_accepting after GV_UPTAKE_WAIT_MS (on_wake). The listener is
   * closed already, so no new one comes in meanwhile. */
  if (req->on) {
    n->silence_at = 0;
    gv_lcore_set_accepting(n->lc, true, now_ms(n));
  } else {
    n->silence_at = now_ms(n) + GV_UPTAKE_WAIT_MS;
  }
  drain(n);
  gv_logf(&n->log, GV_LOG_INFO, "broadcast %s", req->on ? "on" : "off");
  o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddBoolToObject(o, "broadcasting", n->broadcasting);
  return o;
}

static cJSON *on_ctl_torrent(void *ctx, const gv_ctl_req *req, uint64_t token) {
  gv_node *n = ctx;
  cJSON *o;

  if (n->tor == NULL)
    return gv_ctlsrv_error(GV_ESTATE, "the torrent service is not running");
  o = gv_torsvc_command(n->tor, req, token);
  drain(n);
  return o;
}

static void on_ctl_changed(void *ctx) { drain(ctx); }
static int64_t on_ctl_now(void *ctx) { return now_ms(ctx); }

static const gv_ctlsrv_cbs ctl_cbs = {on_ctl_status, on_ctl_command,
                                      on_ctl_changed, on_ctl_now};

/* ---- tunnels (docs/TORRENT.md, "The connection matrix") ---- */

/* A READY link to peer, or 0. */
static gv_linkid ready_link(gv_node *n, const uint8_t *peer) {
  gv_link_info li;
  for (size_t i = 0; gv_lcore_info(n->lc, i, &li); i++)
    if (li.ready && memcmp(li.peer, peer, GV_ID_BYTES) == 0)
      return li.id;
  return 0;
}

/* The entry of a peer dialed for tunnels, made if make (NULL when there
 * is none, or no room). */
static tpeer *tpeer_get(gv_node *n, const uint8_t *id, bool make) {
  for (size_t i = 0; i < n->n_tpeers; i++)
    if (memcmp(n->tpeers[i].id, id, GV_ID_BYTES) == 0)
      return &n->tpeers[i];
  if (!make || n->n_tpeers == GV_TUN_EXPECT_MAX ||
      gv_tun_expect(n->tun, id, true) < 0)
    return NULL;
  tpeer *p = &n->tpeers[n->n_tpeers++];
  memcpy(p->id, id, GV_ID_BYTES);
  p->dialed_at = INT64_MIN / 2;
  return p;
}

/* Dials peer at addr to carry tunnels; its link is held when it comes
 * up. At most one dial per TUNNEL_DIAL_HOLDOFF_MS. */
static void tunnel_dial(gv_node *n, const uint8_t *peer, const gv_addr *addr,
                        int64_t now) {
  tpeer *p = tpeer_get(n, peer, true);
  char hex[GV_ID_HEX_LEN + 1];

  if (p == NULL || now - p->dialed_at < TUNNEL_DIAL_HOLDOFF_MS)
    return;
  p->dialed_at = p->used_at = now;
  gv_id_to_hex(peer, hex);
  gv_logf(&n->log, GV_LOG_DEBUG, "tunnel: dialing %.16s", hex);
  gv_links_dial(n->links, peer, addr); /* a failure: the next scan retries */
}

/* Peers dialed for tunnels and not asked for since TUNNEL_KEEP_MS are let
 * go: their links close once no stream and no other service holds them. */
static void tunnel_expire(gv_node *n) {
  int64_t now = now_ms(n);
  for (size_t i = 0; i < n->n_tpeers;) {
    if (now - n->tpeers[i].used_at < TUNNEL_KEEP_MS) {
      i++;
      continue;
    }
    gv_tun_expect(n->tun, n->tpeers[i].id, false);
    n->tpeers[i] = n->tpeers[--n->n_tpeers];
  }
  drain(n);
}

/* How this node reaches dst for tunnels (docs/TORRENT.md, "The connection
 * matrix"), as a fetcher and as a relay: a READY link to dst; else, dst
 * broadcasting, dial its first address; else a READY link to one of its
 * relays; else dial the first of its relays that broadcasts with an
 * address; else none. Calls neither the tunnel core nor gv_links. */
static void tunnel_route(gv_node *n, const uint8_t *dst, gv_tun_route *r) {
  const gv_peer_entry *e = gv_engine_table_get(n->engine, dst);
  uint8_t relays[GV_MAX_RELAYS][GV_ID_BYTES];
  size_t nr;

  memset(r, 0, sizeof *r);
  if ((r->link = ready_link(n, dst)) != 0) {
    r->kind = GV_TUN_ROUTE_LINK;
    return;
  }
  if (e == NULL)
    return;
  if (e->broadcasting) {
    if (e->n_addrs > 0) {
      r->kind = GV_TUN_ROUTE_DIAL;
      memcpy(r->peer, dst, GV_ID_BYTES);
      r->addr = gv_peer_entry_addrs(e)[0];
    }
    return;
  }
  nr = e->n_relays; /* e is the engine's: copy before the next call */
  memcpy(relays, gv_peer_entry_relays(e), nr * GV_ID_BYTES);
  for (size_t i = 0; i < nr; i++)
    if ((r->link = ready_link(n, relays[i])) != 0) {
      r->kind = GV_TUN_ROUTE_LINK;
      return;
    }
  for (size_t i = 0; i < nr; i++) {
    const gv_peer_entry *p = gv_engine_table_get(n->engine, relays[i]);
    if (p != NULL && p->broadcasting && p->n_addrs > 0) {
      r->kind = GV_TUN_ROUTE_DIAL;
      memcpy(r->peer, relays[i], GV_ID_BYTES);
      r->addr = gv_peer_entry_addrs(p)[0];
      return;
    }
  }
}

/* The tunnel core's route callback: a relayed OPEN for a node this node
 * has no link to. */
static void on_tun_route(void *ctx, const uint8_t dst[GV_ID_BYTES],
                         gv_tun_route *out) {
  tunnel_route(ctx, dst, out);
}

/* A READY link of a silent node to a broadcasting node (one of its guards,
 * or a seed before it has them: the only nodes it dials), or 0. */
static gv_linkid guard_link(gv_node *n) {
  gv_link_info li;
  for (size_t i = 0; gv_lcore_info(n->lc, i, &li); i++) {
    const gv_peer_entry *e;
    if (li.ready && (e = gv_engine_table_get(n->engine, li.peer)) != NULL &&
        e->broadcasting)
      return li.id;
  }
  return 0;
}

/* The peer of link id, if it is ours (NULL otherwise), into out. */
static const uint8_t *link_peer(gv_node *n, gv_linkid id, uint8_t *out) {
  gv_link_info li;
  for (size_t i = 0; gv_lcore_info(n->lc, i, &li); i++)
    if (li.id == id) {
      memcpy(out, li.peer, GV_ID_BYTES);
      return out;
    }
  return NULL;
}

/* torsvc's tunnel callback: the link the streams to holder go over, and
 * the local port libtorrent is to connect to (0: none yet). The route is
 * tunnel_route's. A broadcasting node dials where it says (its address is
 * public anyway) and answers 0 until that link is up. A silent node never
 * dials for tunnels: without a link to the holder or to one of its
 * relays, it opens the stream through any of its links to a broadcasting
 * node, which routes it on (and dials if it must). */
static uint16_t on_tor_tunnel(void *ctx, const uint8_t holder[GV_ID_BYTES],
                              const uint8_t ih[20]) {
  gv_node *n = ctx;
  uint8_t peer[GV_ID_BYTES];
  gv_tun_route r;
  gv_linkid via = 0;
  int64_t now = now_ms(n);
  gv_why why = {""};
  uint16_t port = 0;
  tpeer *p;

  tunnel_route(n, holder, &r);
  if (r.kind == GV_TUN_ROUTE_LINK)
    via = r.link;
  else if (n->broadcasting) {
    if (r.kind == GV_TUN_ROUTE_DIAL)
      tunnel_dial(n, r.peer, &r.addr, now);
    return 0;
  } else if (r.kind == GV_TUN_ROUTE_NONE &&
             gv_engine_table_get(n->engine, holder) == NULL)
    return 0; /* nothing known of it: no relay could route it either */
  else if ((via = guard_link(n)) == 0)
    return 0;
  if (link_peer(n, via, peer) != NULL && (p = tpeer_get(n, peer, false)))
    p->used_at = now;
  if (gv_tunio_listen(n->tio, holder, via, ih, &port, &why) < 0) {
    gv_logf(&n->log, GV_LOG_WARN, "tunnel: %s", why.text);
    return 0;
  }
  return port;
}

/* An OPEN for this node: it serves the torrents it has metadata for. */
static bool on_tun_accept(void *ctx, const uint8_t ih[GV_TW_IH_BYTES],
                          const uint8_t src[GV_ID_BYTES]) {
  (void)src;
  return gv_torsvc_serves(((gv_node *)ctx)->tor, ih);
}

static void on_tio_changed(void *ctx) { drain(ctx); }

/* The tunnel core on channel 3, relaying while this node broadcasts, and
 * its local sockets, whose CONNECTs reach our libtorrent on 127.0.0.1 (it
 * listens there always, at the same port whatever else it listens on). */
static int start_tunnels(gv_node *n, gv_why *why) {
  static const gv_tunio_cbs tio_cbs = {on_tio_changed};
  struct sockaddr_in tor;
  gv_tun_cfg cfg;
  int rc;

  gv_tun_cfg_default(&cfg);
  memcpy(cfg.self, n->id.pk, GV_ID_BYTES);
  cfg.relay = n->broadcasting;
  cfg.accept = on_tun_accept;
  cfg.route = on_tun_route;
  cfg.ctx = n;
  uv_ip4_addr("127.0.0.1", gv_torsvc_port(n->tor), &tor);
  if ((rc = gv_tun_new(&n->tun, &cfg)) < 0 ||
      (rc = gv_tunio_new(&n->tio, n->loop, &n->log, n->tun,
                         (const struct sockaddr *)&tor, &tio_cbs, n)) < 0)
    return gv_fail(why, rc, "tunnels: %s", gv_strerror(rc));
  gv_lcore_set_service(n->lc, GV_CHAN_TORRENT, gv_tun_service(n->tun));
  return 0;
}

/* ---- once a second ---- */

/* Commit the store's queue, publish metrics. */
static void on_second(uv_timer_t *t) {
  gv_node *n = t->data;
  gv_why why = {""};
  char *text;
  size_t len;

  if (gv_store_pending(n->store) > 0 && gv_store_flush(n->store, &why) < 0)
    gv_logf(&n->log, GV_LOG_ERROR, "store: %s", why.text);
  tunnel_expire(n);
  if (n->metrics != NULL &&
      gv_nodemetrics_render(n->engine, n->lc, n->relay,
                            (now_ms(n) - n->started) / 1000, &text,
                            &len) == 0) {
    gv_metrics_publish(n->metrics, text, len);
    free(text);
  }
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

  if (!n->stopping || n->finalized || gv_links_count(n->links) > 0 ||
      gv_trkjobs_busy(n->jobs))
    return;
  n->finalized = true;
  /* Only now: every link's end has reached the tunnel core, whose SHUTs
   * for the local sockets went through tunio. */
  gv_tunio_close(n->tio);
  n->tio = NULL;
  if (gv_store_flush(n->store, &why) < 0)
    gv_logf(&n->log, GV_LOG_ERROR, "store: %s", why.text);
  gv_agentsrv_close(n->asrv);
  n->asrv = NULL;
  if (n->rstore != NULL) {
    gv_rstore *rs = n->rstore;
    n->rstore = NULL; /* what the commits below persist fails: stopping */
    gv_rstore_close(rs);
  }
  close_handle((uv_handle_t *)&n->wake);
  close_handle((uv_handle_t *)&n->second);
  gv_trkjobs_close(n->jobs);
  close_handle((uv_handle_t *)&n->grace);
  close_handle((uv_handle_t *)&n->announce);
  close_handle((uv_handle_t *)&n->sigint);
  close_handle((uv_handle_t *)&n->sigterm);
  gv_logf(&n->log, GV_LOG_INFO, "stopped");
}

static void on_grace(uv_timer_t *t) {
  gv_node *n = t->data;
  /* Links that did not close in time are cut. */
  gv_links_abort_all(n->links);
  gv_trkjobs_abandon(n->jobs); /* an unregister still running */
  maybe_finalize(n);
}

static void stop(gv_node *n) {
  gv_action a;
  gv_buf *b;

  n->stopping = true;
  gv_logf(&n->log, GV_LOG_INFO, "stopping: goodbye to %zu link(s)",
          gv_links_count(n->links));
  /* Before the control socket closes: it answers the shares it cancels. */
  gv_torsvc_stop(n->tor); /* saves every torrent's resume data */
  n->tor = NULL;
  gv_ctlsrv_stop(n->ctl);
  n->ctl = NULL;
  uv_timer_stop(&n->wake);
  /* Counted as SHUTDOWN; the link table sends the FINALs itself below. */
  gv_lcore_close_all(n->lc, GV_CLOSE_SHUTDOWN, now_ms(n));
  while (gv_lcore_next(n->lc, &a))
    gv_buf_unref(a.buf); /* CLOSEs: gv_links_goodbye() does them */
  b = goodbye(GV_CLOSE_SHUTDOWN);
  gv_links_goodbye(n->links, b ? b->data : NULL, b ? b->len : 0);
  gv_buf_unref(b);
  gv_trkjobs_stop(n->jobs);
  gv_trkjobs_unregister(n->jobs);
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

/* Takes dir/lock (dirfd: the checked data directory) and writes our pid in
 * it. The file is opened without following a symbolic link and checked like
 * everything in the directory; only once its lock is ours is it written,
 * through that fd alone. */
static int take_lock(gv_node *n, int dirfd, gv_why *why) {
  char pid[32];
  ssize_t got;
  int k;

  n->lock_fd = gv_cli_open_owned(dirfd, n->dir, "lock", O_RDWR | O_CREAT, why);
  if (n->lock_fd < 0)
    return n->lock_fd;
  if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    got = pread(n->lock_fd, pid, sizeof(pid) - 1, 0);
    pid[got > 0 ? got : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(n->lock_fd);
    n->lock_fd = -1;
    return gv_fail(why, GV_EBUSY,
                   "another grapevine node is running on %s (pid %s)", n->dir,
                   pid[0] ? pid : "?");
  }
  k = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  errno = EIO; /* what a short write, which sets none, reports */
  if (pwrite(n->lock_fd, pid, (size_t)k, 0) != k ||
      ftruncate(n->lock_fd, k) != 0)
    return gv_fail(why, -errno, "%s/lock: %s", n->dir, strerror(errno));
  return 0;
}

/* The data directory and what it holds, before anything is written: the
 * directory (created 0700 if missing) and every entry in it must be ours
 * and writable by nobody else (docs/NODE.md). Then the lock and the key.
 * The directory stays open (n->dir_fd): the databases are opened through
 * it (db_path), so a parent swapped after the check cannot redirect them. */
static int open_data_dir(gv_node *n, int *created, gv_why *why) {
  int rc, dfd = gv_cli_open_dir(n->dir, true, why);

  if (dfd < 0)
    return dfd;
  n->dir_fd = dfd;
  if ((rc = gv_cli_check_entries(dfd, n->dir, why)) == 0 &&
      (rc = take_lock(n, dfd, why)) == 0)
    rc = gv_cli_load_key(&n->id, dfd, n->dir, "node.key", true, created, why);
  return rc;
}

/* The path that opens name inside the checked data directory (db.h). */
static void db_path(const gv_node *n, const char *name, char *out, size_t cap) {
  snprintf(out, cap, GV_DB_DIRFD_PREFIX "%d/%s", n->dir_fd, name);
}

/* A database's error names it by db_path(); the user knows it as
 * DIR/name. Returns rc. */
static int db_failed(const gv_node *n, const char *name, int rc, gv_why *why) {
  char fdpath[64];
  size_t k;

  db_path(n, name, fdpath, sizeof(fdpath));
  k = strlen(fdpath);
  if (strncmp(why->text, fdpath, k) == 0) {
    char rest[sizeof(why->text)];
    snprintf(rest, sizeof(rest), "%s", why->text + k);
    /* A long directory truncates the reason, which still leads with it. */
    if (snprintf(why->text, sizeof(why->text), "%s/%s%s", n->dir, name, rest) <
        0)
      why->text[0] = '\0';
  }
  return rc;
}

/* ---- entry guards (docs/NODE.md "Privacy") ---- */

/* The "guards" setting: the set in force, one gv_guard_format() line each,
 * times on the wall clock; written whole when the set changes. */
static void save_guards(gv_node *n) {
  char buf[GV_GUARDS_MAX * GV_GUARD_LINE_MAX + 1] = "";
  size_t k, off = 0;
  const gv_guard *g = gv_engine_guards(n->engine, &k);

  for (size_t i = 0; i < k; i++) {
    gv_guard w = g[i];
    w.chosen_at = gv_engine_wall(n->engine, w.chosen_at);
    w.expires_at = gv_engine_wall(n->engine, w.expires_at);
    if (w.down_since != 0)
      w.down_since = gv_engine_wall(n->engine, w.down_since);
    off += gv_guard_format(&w, buf + off, sizeof(buf) - off);
  }
  if (gv_store_set(n->store, "guards", buf) < 0)
    gv_logf(&n->log, GV_LOG_WARN, "store: cannot save the guard set");
}

/* Puts the saved guard set back into the engine (after the peer table). */
static void restore_guards(gv_node *n) {
  char buf[GV_GUARDS_MAX * GV_GUARD_LINE_MAX + 1], *save = NULL;
  size_t restored = 0;
  gv_why why = {""};

  if (gv_store_get(n->store, "guards", buf, sizeof(buf)) < 0)
    return;
  for (char *line = strtok_r(buf, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    gv_guard g;
    if (gv_guard_parse(&g, line, strlen(line), &why) < 0)
      gv_logf(&n->log, GV_LOG_WARN, "store: a saved guard is refused: %s",
              why.text);
    else if (gv_engine_restore_guard(n->engine, &g, now_ms(n)) == 0)
      restored++;
  }
  if (restored > 0)
    gv_logf(&n->log, GV_LOG_INFO, "restored %zu guard(s)", restored);
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
    gv_engine_add_candidate(n->engine, NULL, &a, true, now_ms(n));
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

/* ---- the relay ---- */

/* The relay's randomness (nonces, ids, session tokens): a ChaCha20 stream
 * under a key drawn once, a fresh block counter per call, so a message
 * costs no getrandom(2) call. */
static void relay_random(void *ctx, uint8_t *buf, size_t len) {
  gv_node *n = ctx;
  uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};

  memcpy(nonce, &n->rnd_ctr, sizeof(n->rnd_ctr));
  n->rnd_ctr++;
  crypto_stream_chacha20_ietf(buf, len, nonce, n->rnd_key);
}

/* What the peer table says of a node, for the relay's routes. */
static bool relay_route(void *ctx, const uint8_t id[GV_ID_BYTES],
                        gv_rroute *out) {
  gv_node *n = ctx;
  const gv_peer_entry *p = gv_engine_table_get(n->engine, id);

  memset(out, 0, sizeof(*out));
  if (p == NULL)
    return false;
  out->known = true;
  out->broadcasting = p->broadcasting && p->n_addrs > 0;
  if (out->broadcasting)
    out->addr = gv_peer_entry_addrs(p)[0];
  out->n_relays =
      p->n_relays < GV_RELAY_RELAYS_MAX ? p->n_relays : GV_RELAY_RELAYS_MAX;
  if (out->n_relays > 0)
    memcpy(out->relays, gv_peer_entry_relays(p), out->n_relays * GV_ID_BYTES);
  return true;
}

static void relay_load_row(void *ctx, const gv_rrow *row) {
  gv_relay_load(((gv_node *)ctx)->relay, row);
}

/* Every team file of the data directory into the relay (again after
 * `grapevine team create|join`: adding a team twice changes nothing). */
static int load_teams(gv_node *n, size_t *count, gv_why *why) {
  gv_team_ent *t;
  size_t k;
  int rc;

  if ((rc = gv_team_list(n->dir, &t, &k, why)) < 0)
    return rc;
  for (size_t i = 0; i < k && rc == 0; i++) {
    bool mine = memcmp(t[i].inviter, n->id.pk, GV_ID_BYTES) == 0;
    if ((rc = gv_relay_team_add(n->relay, t[i].T, mine ? NULL : t[i].inviter,
                                now_ms(n))) < 0)
      gv_fail(why, rc, "%s: this node is in %d teams already", t[i].file,
              GV_RELAY_TEAMS_MAX);
  }
  gv_team_list_free(t, k);
  *count = k;
  return rc;
}

static cJSON *on_team_reload(void *ctx) {
  gv_node *n = ctx;
  gv_why why = {""};
  size_t k = 0;
  cJSON *o;
  int rc = load_teams(n, &k, &why);

  drain(n);
  if (rc < 0)
    return gv_ctlsrv_error(rc, why.text);
  o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddNumberToObject(o, "teams", (double)k);
  return o;
}

/* The relay core, its teams, its rows from relay.db, and relay.sock. */
static int start_relay(gv_node *n, gv_why *why) {
  gv_relay_cfg rc_cfg;
  char path[4200];
  size_t k;
  int rc;

  randombytes_buf(n->rnd_key, sizeof(n->rnd_key));
  gv_relay_cfg_default(&rc_cfg);
  rc_cfg.silent = !n->broadcasting;
  rc_cfg.random = relay_random;
  rc_cfg.route = relay_route;
  rc_cfg.ctx = n;
  if ((rc = gv_relay_new(&n->relay, &rc_cfg, &n->id, now_ms(n))) < 0)
    return gv_fail(why, rc, "relay: %s", gv_strerror(rc));
  now_ms(n); /* the wall-clock offset */
  if ((rc = load_teams(n, &k, why)) < 0)
    return rc;
  db_path(n, "relay.db", path, sizeof(path));
  if ((rc = gv_rstore_open(&n->rstore, n->loop, path, why)) < 0 ||
      (rc = gv_rstore_load(n->rstore, relay_load_row, n, why)) < 0)
    return db_failed(n, "relay.db", rc, why);
  gv_relay_loaded(n->relay, now_ms(n));
  gv_lcore_set_service(n->lc, GV_CHAN_RELAY, gv_relay_service(n->relay));
  snprintf(path, sizeof(path), "%s/relay.sock", n->dir);
  if ((rc = gv_agentsrv_start(&n->asrv, n->loop, path, &agent_cbs, n, NULL,
                              why)) < 0)
    return rc;
  gv_logf(&n->log, GV_LOG_INFO, "relay: %zu team(s), agents on %s", k, path);
  if (k == 0)
    gv_logf(&n->log, GV_LOG_INFO,
            "relay: in no team yet; agents can register once you run "
            "'grapevine team create' or 'grapevine team join TOKEN'");
  return 0;
}

/* ---- the torrent service ---- */

static void on_tor_names(void *ctx) {
  gv_node *n = ctx;
  publish_repos(n);
  drain(n);
}

static size_t on_tor_user_repos(void *ctx) { return ((gv_node *)ctx)->n_repos; }

static void on_tor_answer(void *ctx, uint64_t token, cJSON *answer) {
  gv_node *n = ctx;
  if (n->ctl != NULL)
    gv_ctlsrv_answer(n->ctl, token, answer);
  else
    cJSON_Delete(answer);
}

static void on_tor_untunnel(void *ctx, const uint8_t ih[20]) {
  gv_tunio_unlisten(((gv_node *)ctx)->tio, NULL, ih);
}

static const gv_torsvc_cbs tor_cbs = {
    on_tor_names, on_tor_user_repos, on_tor_answer,  on_ctl_changed,
    on_ctl_now,   on_tor_tunnel,     on_tor_untunnel};

/* libtorrent's addresses: 127.0.0.1 always (the tunnels' CONNECT target
 * and local fetches), and the --listen IP only while broadcasting, so a
 * silent node's address never answers for a torrent (issue 11). The port
 * stays; the record names it. If the IP cannot be bound, the record names
 * no port (fetchers reach us through tunnels) and the log says why. */
static void tor_listen(gv_node *n) {
  char ips[96] = "127.0.0.1", ip[64] = "";
  gv_why why = {""};
  uint16_t port;

  if (n->tor == NULL)
    return;
  if (n->broadcasting && n->cfg.has_listen) {
    char text[GV_ADDR_TEXT_MAX], *colon;
    gv_addr_format(&n->cfg.listen, text);
    colon = strrchr(text, ':');
    if (colon != NULL)
      *colon = '\0';
    snprintf(ip, sizeof(ip), "%s",
             text[0] == '[' ? text + 1 : text); /* [v6]:port */
    ip[strcspn(ip, "]")] = '\0';
    if (strcmp(ip, "0.0.0.0") == 0) /* covers 127.0.0.1 */
      snprintf(ips, sizeof(ips), "%s", ip);
    else if (strcmp(ip, "127.0.0.1") != 0)
      snprintf(ips, sizeof(ips), "127.0.0.1,%s", ip);
  }
  port = gv_torsvc_port(n->tor);
  if (gv_torsvc_listen(n->tor, ips, &why) < 0) {
    gv_logf(&n->log, GV_LOG_WARN, "%s; the record names no torrent port",
            why.text);
    port = 0;
  }
  gv_engine_set_tport(n->engine, port, now_ms(n));
}

/* What writes cut short by a kill -9 left in dir (fsutil.h): files a
 * minute old at least, so that a command writing a team file while the
 * node starts keeps its own. */
#define TMP_SWEEP_AGE_S 60

static void sweep_tmp(gv_node *n, const char *dir) {
  gv_why why;
  int k = gv_sweep_atomic_tmp(dir, TMP_SWEEP_AGE_S, &why);

  if (k > 0)
    gv_logf(&n->log, GV_LOG_INFO,
            "removed %d temporary file%s of interrupted writes in %s", k,
            k == 1 ? "" : "s", dir);
  else if (k < 0)
    gv_logf(&n->log, GV_LOG_WARN, "temporary files: %s", why.text);
}

/* The torrent session (on 127.0.0.1, and on the --listen IP while
 * broadcasting: tor_listen), its state in DATA_DIR/torrents; a
 * broadcasting record names its port. */
static int start_torrent(gv_node *n, gv_why *why) {
  char dir[4200];
  int rc;

  snprintf(dir, sizeof(dir), "%s/torrents", n->dir);
  if ((rc = gv_torsvc_new(&n->tor, n->loop, n->engine, &n->log, &n->cfg,
                          "127.0.0.1", dir, &tor_cbs, n, why)) < 0)
    return rc;
  sweep_tmp(n, dir); /* the list and .torrent copies */
  snprintf(dir, sizeof(dir), "%s/torrents/state", n->dir);
  sweep_tmp(n, dir); /* resume files */
  tor_listen(n);
  publish_repos(n); /* the shares listed from the last run */
  drain(n);
  return start_tunnels(n, why);
}

static int start(gv_node *n, gv_why *why) {
  gv_engine_cfg ec;
  gv_lcore_cfg lcfg;
  char path[4200];
  int created, rc;

  if ((rc = open_data_dir(n, &created, why)) < 0)
    return rc;
  gv_id_to_hex(n->id.pk, n->idhex);
  gv_logf(&n->log, GV_LOG_INFO, "node %s%s, data in %s", n->idhex,
          created ? " (new identity)" : "", n->dir);
  sweep_tmp(n, n->dir); /* team files */
  db_path(n, "node.db", path, sizeof(path));
  if ((rc = gv_store_open(&n->store, path, why)) < 0)
    return db_failed(n, "node.db", rc, why);
  for (size_t i = 0; i < n->cfg.n_repos; i++)
    memcpy(n->repos[i], n->cfg.repos[i], sizeof(n->repos[i]));
  n->n_repos = n->cfg.n_repos;
  n->broadcasting = n->cfg.broadcast;
  load_settings(n);

  gv_engine_cfg_default(&ec);
  randombytes_buf(&ec.seed, sizeof(ec.seed));
  n->started = now_ms(n);
  ec.wall_offset = gv_cli_now_ms() - n->started; /* for the first record */
  ec.broadcasting = n->broadcasting;
  ec.bootstrap = n->broadcasting && n->cfg.bootstrap;
  if (n->broadcasting) {
    ec.addrs[0] = n->cfg.listen;
    ec.n_addrs = 1;
  }
  ec.repos = (const char(*)[GV_REPO_MAX + 1]) n->repos;
  ec.n_repos = n->n_repos;
  if ((rc = load_seq_floor(n, &ec.seq_floor, why)) < 0)
    return rc;
  ec.guards = n->cfg.guards;
  ec.guard_count = n->cfg.guard_count;
  ec.guard_min_age_ms = n->cfg.guard_min_age_ms;
  ec.guard_down_ms = n->cfg.guard_down_ms;
  ec.guard_life_min_ms = n->cfg.guard_life_min_ms;
  ec.guard_life_max_ms = n->cfg.guard_life_max_ms;
  if ((rc = gv_engine_new(&n->engine, &ec, &n->id, n->started)) < 0)
    return gv_fail(why, rc, "engine: %s",
                   rc == GV_ERANGE ? "this identity has used up its "
                                     "sequence numbers (2^53-1)"
                                   : gv_strerror(rc));
  {
    /* The first record's ceiling, stored before any link can carry it. */
    gv_action a;
    while (gv_engine_next(n->engine, &a))
      if (a.type == GV_ACT_SEQ_RESERVE && (rc = reserve_seq(n, a.seq)) < 0)
        return gv_fail(why, rc, "store: cannot save the sequence ceiling");
  }
  gv_lcore_cfg_default(&lcfg);
  randombytes_buf(&lcfg.seed, sizeof(lcfg.seed));
  lcfg.accepting = n->broadcasting;
  /* Gossip dials up to active_max; the relay may add its routes. */
  lcfg.outbound_max = ec.active_max + GV_RELAY_RELAYS_MAX;
  if ((rc = gv_lcore_new(&n->lc, &lcfg, n->id.pk, n->started)) < 0)
    return gv_fail(why, rc, "link core: %s", gv_strerror(rc));
  gv_engine_service(n->engine, &n->gossip);
  gv_lcore_set_service(n->lc, GV_CHAN_GOSSIP, &n->gossip);
  now_ms(n); /* the wall-clock offset, before any record is restored */
  rc = gv_store_load_peers(n->store, restore_peer, n);
  gv_logf(&n->log, GV_LOG_INFO, "restored %zu cached peer(s)",
          gv_engine_table_size(n->engine));
  if (rc < 0)
    return gv_fail(why, rc, "store: cannot read cached peers");
  restore_guards(n);
  if ((rc = gv_links_new(&n->links, n->loop, &n->id, &n->log, &links_cbs, n)) <
      0)
    return gv_fail(why, rc, "links: %s", gv_strerror(rc));
  {
    gv_buf *b = goodbye(GV_CLOSE_GOODBYE); /* the answer to a peer's FINAL */
    if (b != NULL)
      gv_links_set_final(n->links, b->data, b->len);
    gv_buf_unref(b);
  }
  if (n->cfg.tracker[0] && gv_trkc_new(&n->trk, n->cfg.tracker, NULL) < 0)
    return gv_fail(why, GV_EINVAL, "tracker: bad URL %s", n->cfg.tracker);
  if ((rc = gv_trkjobs_new(&n->jobs, n->loop, n->trk, &n->id, &n->log, &trk_cbs,
                           n)) < 0)
    return gv_fail(why, rc, "tracker jobs: %s", gv_strerror(rc));
  set_trk_role(n);

  if (n->broadcasting &&
      (rc = gv_links_listen(n->links, &n->cfg.listen, why)) < 0)
    return rc;
  if ((rc = start_relay(n, why)) < 0)
    return rc;
  snprintf(path, sizeof(path), "%s/control.sock", n->dir);
  if ((rc = gv_ctlsrv_start(&n->ctl, n->loop, path, n->engine, n->lc, &ctl_cbs,
                            n, why)) < 0)
    return rc;
  gv_ctlsrv_set_team_reload(n->ctl, on_team_reload);
  gv_ctlsrv_set_torrent(n->ctl, on_ctl_torrent);
  if (n->cfg.has_metrics &&
      (rc = gv_metrics_start(&n->metrics, &n->cfg.metrics, why)) < 0)
    return rc;

  uv_timer_init(n->loop, &n->wake);
  uv_timer_init(n->loop, &n->second);
  uv_timer_init(n->loop, &n->grace);
  uv_timer_init(n->loop, &n->announce);
  n->wake.data = n->second.data = n->grace.data = n;
  n->announce.data = n;
  uv_timer_start(&n->second, on_second, 1000, 1000);
  /* After the timers: re-adding the listed torrents drains the engine. */
  if ((rc = start_torrent(n, why)) < 0)
    return rc;
  gv_trkjobs_start(n->jobs, n->cfg.bootstrap ? RENEW_MS : TRACKER_RETRY_MS);
  uv_signal_init(n->loop, &n->sigint);
  uv_signal_init(n->loop, &n->sigterm);
  n->sigint.data = n->sigterm.data = n;
  uv_signal_start(&n->sigint, on_signal, SIGINT);
  uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  resolve_seeds(n);
  n->wake_at = INT64_MAX;
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
             "  --log-level L      error, warn, info (default) or debug\n"
             "  --guards on|off    a silent node dials only its entry guards "
             "(on)\n"
             "  --guard-count G    how many (default: 5, the links it aims "
             "for)\n"
             "  --guard-min-age S  seconds a node is known before it may be "
             "one (3600)\n\n"
             "The torrent session (docs/TORRENT.md; it listens on the "
             "--listen IP, else\n127.0.0.1, and a broadcasting record names "
             "its port):\n"
             "  --torrent-port P          TCP port, 0 (default): any free "
             "one\n"
             "  --torrent-upload-rate B   bytes/s for the session, 0 "
             "(default): unlimited\n"
             "  --torrent-download-rate B bytes/s, 0 (default): unlimited\n"
             "  --torrent-encryption E    forced (default), enabled or "
             "disabled\n"
             "  --torrent-dht, --torrent-lsd, --torrent-upnp, "
             "--torrent-natpmp,\n"
             "  --torrent-utp, --torrent-pex true|false\n"
             "                            privacy switches, all false by "
             "default: public DHT,\n"
             "                            local discovery, router port "
             "mapping, uTP, peer\n"
             "                            exchange (which would pass "
             "addresses on)\n");
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
      {"guards", required_argument, NULL, 'G'},
      {"guard-count", required_argument, NULL, 'N'},
      {"guard-min-age", required_argument, NULL, 'A'},
      {"torrent-port", required_argument, NULL, 'P'},
      {"torrent-upload-rate", required_argument, NULL, 'U'},
      {"torrent-download-rate", required_argument, NULL, 'D'},
      {"torrent-encryption", required_argument, NULL, 'E'},
      {"torrent-dht", required_argument, NULL, '1'},
      {"torrent-lsd", required_argument, NULL, '2'},
      {"torrent-upnp", required_argument, NULL, '3'},
      {"torrent-natpmp", required_argument, NULL, '4'},
      {"torrent-utp", required_argument, NULL, '5'},
      {"torrent-pex", required_argument, NULL, '6'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static const char *const keys[128] = {
      ['d'] = "data-dir",
      ['b'] = "broadcast",
      ['B'] = "bootstrap",
      ['l'] = "listen",
      ['r'] = "repo",
      ['p'] = "peer",
      ['t'] = "tracker",
      ['m'] = "metrics",
      ['L'] = "log-level",
      ['G'] = "guards",
      ['N'] = "guard-count",
      ['A'] = "guard-min-age",
      ['P'] = "torrent-port",
      ['U'] = "torrent-upload-rate",
      ['D'] = "torrent-download-rate",
      ['E'] = "torrent-encryption",
      ['1'] = "torrent-dht",
      ['2'] = "torrent-lsd",
      ['3'] = "torrent-upnp",
      ['4'] = "torrent-natpmp",
      ['5'] = "torrent-utp",
      ['6'] = "torrent-pex",
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
  signal(SIGPIPE, SIG_IGN);
  umask(077);
  if (n->cfg.tracker[0])
    curl_global_init(CURL_GLOBAL_DEFAULT); /* only a tracker needs it */
  uv_loop_init(&loop);
  n->loop = &loop;
  n->lock_fd = -1;
  n->dir_fd = -1;
  rc = start(n, &why);
  if (rc < 0) {
    fprintf(stderr, "grapevine node: %s\n", why.text);
    n->stopping = true;
    gv_ctlsrv_stop(n->ctl);
    n->ctl = NULL;
    gv_torsvc_stop(n->tor);
    n->tor = NULL;
    gv_tunio_close(n->tio);
    n->tio = NULL;
    gv_agentsrv_close(n->asrv);
    n->asrv = NULL;
    if (n->rstore != NULL) {
      gv_rstore_close(n->rstore);
      n->rstore = NULL;
    }
    if (n->engine != NULL) {
      n->finalized = true;
      uv_walk(&loop, close_any, NULL);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  gv_metrics_stop(n->metrics);
  gv_trkjobs_free(n->jobs);
  gv_links_free(n->links);
  gv_trkc_free(n->trk);
  gv_store_close(n->store);
  gv_lcore_free(n->lc);
  gv_relay_free(n->relay);
  gv_tun_free(n->tun);
  gv_engine_free(n->engine);
  gv_id_wipe(&n->id);
  sodium_memzero(n->rnd_key, sizeof(n->rnd_key));
  if (n->lock_fd >= 0)
    close(n->lock_fd);
  if (n->dir_fd >= 0)
    close(n->dir_fd);
  if (n->cfg.tracker[0])
    curl_global_cleanup();
  gv_log_done(&n->log);
  free(n);
  return rc < 0 ? 1 : 0;
}

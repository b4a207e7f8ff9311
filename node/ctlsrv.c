#include "ctlsrv.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

struct gv_ctlsrv {
  uv_loop_t *loop;
  uv_pipe_t pipe;
  gv_engine *engine;
  const gv_lcore *lc;
  gv_ctlsrv_cbs cbs;
  void *ctx;
  cJSON *(*team_reload)(void *ctx); /* NULL: answer NOTIMPL */
  gv_ctlsrv_torrent_fn torrent;     /* NULL: answer NOTIMPL */
  uint64_t next_token;              /* for deferred answers */
  struct ctl_client *clients;
  int n_clients; /* in clients: at most GV_CTLSRV_CLIENTS_MAX */
};

typedef struct ctl_client {
  uv_pipe_t pipe;
  uv_timer_t wait;
  uv_timer_t idle;     /* GV_CTLSRV_IDLE_MS without a request: close */
  uint64_t idle_since; /* uv_now() when idle was last armed */
  gv_ctlsrv *srv;
  char *buf;
  size_t len;
  bool waiting;  /* a request or broadcast command awaiting its answer */
  bool deferred; /* waiting for gv_ctlsrv_answer() with token */
  uint64_t token;
  uint8_t req_id[GV_MSG_ID_BYTES];
  char repo[GV_REPO_MAX + 1];
  cJSON *found;  /* request: object: id hex -> peer */
  cJSON *answer; /* broadcast: the answer, awaiting the uptake */
  uint64_t wait_from, wait_until; /* broadcast: uv_now() bounds */
  uint64_t record_seq;            /* broadcast: the record it waits on */
  bool record_on; /* broadcast: the state it asked for (req.on) */
  int handles;    /* uv handles not yet closed */
  bool closing;
  struct ctl_client *next;
} ctl_client;

static void write_line(ctl_client *c, cJSON *o);
static void client_close(ctl_client *c);
static void idle_arm(ctl_client *c);

/* The link core's view of the link to p, or null: its scores are per
 * link (PROTOCOL.md §5.2). */
static cJSON *link_json(const gv_ctlsrv *s, const gv_peer_entry *p,
                        int64_t now) {
  gv_link_info li;
  for (size_t i = 0; gv_lcore_info(s->lc, i, &li); i++) {
    cJSON *o;
    if (memcmp(li.peer, p->id, GV_ID_BYTES) != 0)
      continue;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "direction", li.dialed ? "out" : "in");
    cJSON_AddNumberToObject(o, "up_s",
                            li.ready ? (double)((now - li.up_at) / 1000) : 0);
    cJSON_AddNumberToObject(o, "rtt_ms", round(li.rtt_ms * 10) / 10);
    cJSON_AddNumberToObject(o, "availability", round(li.availability));
    cJSON_AddNumberToObject(o, "performance", round(li.performance));
    cJSON_AddNumberToObject(o, "penalty", round(li.penalty * 10) / 10);
    cJSON_AddNumberToObject(o, "score", round(li.score));
    return o;
  }
  return cJSON_CreateNull();
}

static cJSON *peer_json(const gv_ctlsrv *s, const gv_peer_entry *p) {
  cJSON *o = cJSON_CreateObject(), *a;
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX];
  const char *r = p->repos;
  int64_t now = s->cbs.now(s->ctx);

  gv_id_to_hex(p->id, hex);
  cJSON_AddStringToObject(o, "id", hex);
  a = cJSON_AddArrayToObject(o, "addresses");
  for (int i = 0; i < p->n_addrs; i++) {
    gv_addr_format(&gv_peer_entry_addrs(p)[i], addr);
    cJSON_AddItemToArray(a, cJSON_CreateString(addr));
  }
  cJSON_AddBoolToObject(o, "broadcasting", p->broadcasting);
  cJSON_AddBoolToObject(o, "bootstrap", p->bootstrap);
  if (p->tport != 0) /* a broadcasting node's torrent port */
    cJSON_AddNumberToObject(o, "tport", p->tport);
  a = cJSON_AddArrayToObject(o, "repositories");
  for (int i = 0; i < p->n_repos; i++, r += strlen(r) + 1)
    cJSON_AddItemToArray(a, cJSON_CreateString(r));
  if (p->n_relays > 0) { /* a silent node's relays: ids, never addresses */
    a = cJSON_AddArrayToObject(o, "relays");
    for (int i = 0; i < p->n_relays; i++) {
      gv_id_to_hex(gv_peer_entry_relays(p)[i], hex);
      cJSON_AddItemToArray(a, cJSON_CreateString(hex));
    }
  }
  cJSON_AddNumberToObject(o, "availability", round(p->availability));
  cJSON_AddNumberToObject(o, "performance", round(p->performance));
  cJSON_AddNumberToObject(o, "last_seen",
                          (double)gv_engine_wall(s->engine, p->last_seen));
  cJSON_AddBoolToObject(o, "connected", p->connected);
  cJSON_AddItemToObject(o, "link", link_json(s, p, now));
  return o;
}

void gv_ctlsrv_report(gv_ctlsrv *s, const gv_action *a) {
  for (ctl_client *c = s->clients; c != NULL; c = c->next) {
    if (!c->waiting || c->found == NULL ||
        memcmp(c->req_id, a->msg_id, GV_MSG_ID_BYTES) != 0)
      continue;
    for (size_t i = 0; i < a->response->u.response.n_peers; i++) {
      const gv_msg *rec = &a->response->u.response.peers[i];
      const gv_peer_entry *p = gv_engine_table_get(s->engine, rec->origin);
      char hex[GV_ID_HEX_LEN + 1];
      gv_id_to_hex(rec->origin, hex);
      if (p != NULL && cJSON_GetObjectItem(c->found, hex) == NULL &&
          gv_peer_entry_has_repo(p, c->repo))
        cJSON_AddItemToObject(c->found, hex, peer_json(s, p));
    }
  }
}

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

cJSON *gv_ctlsrv_error(int rc, const char *reason) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 0);
  cJSON_AddStringToObject(o, "error", gv_err_name(rc));
  cJSON_AddStringToObject(o, "reason", reason);
  return o;
}

static void on_wait_done(uv_timer_t *t) {
  ctl_client *c = t->data;
  gv_ctlsrv *s = c->srv;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "peers");

  /* Add what this node already knows, then answer. */
  for (size_t i = 0;; i++) {
    const gv_peer_entry *p = gv_engine_table_at(s->engine, i);
    char hex[GV_ID_HEX_LEN + 1];
    if (p == NULL)
      break;
    gv_id_to_hex(p->id, hex);
    if (gv_peer_entry_has_repo(p, c->repo) &&
        cJSON_GetObjectItem(c->found, hex) == NULL)
      cJSON_AddItemToObject(c->found, hex, peer_json(s, p));
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
  idle_arm(c);
}

/* Answers a waiting broadcast once every neighbour its record went out to
 * has confirmed it, or at the deadline; polled every UPTAKE_POLL_MS. If a
 * newer record went out meanwhile, the engine's uptake is that one's: with
 * the awaited broadcast state (a re-announce, a repo change) the wait
 * follows it; with the other state (a later `broadcast` from another
 * client) the answer says "superseded" with the state now in force, so the
 * caller is never told a state stands that no longer does. */
#define UPTAKE_POLL_MS 50

static bool uptake_answer(ctl_client *c) {
  gv_ctlsrv *s = c->srv;
  uint64_t now = uv_now(s->loop), seq = gv_engine_record_seq(s->engine);
  bool on = gv_engine_broadcasting(s->engine), superseded = false;
  size_t confirmed, links;
  cJSON *u;

  switch (gv_ctl_uptake_step_of(c->record_seq, c->record_on, seq, on)) {
  case GV_CTL_UPTAKE_KEEP: break;
  case GV_CTL_UPTAKE_FOLLOW: c->record_seq = seq; break;
  case GV_CTL_UPTAKE_SUPERSEDED: superseded = true; break;
  }
  gv_engine_uptake(s->engine, &confirmed, &links);
  if (!superseded && confirmed < links && now < c->wait_until)
    return false;
  u = cJSON_AddObjectToObject(c->answer, "uptake");
  if (superseded) {
    cJSON_AddBoolToObject(u, "superseded", 1);
    cJSON_AddBoolToObject(u, "broadcasting", on);
  } else {
    cJSON_AddNumberToObject(u, "neighbours", (double)links);
    cJSON_AddNumberToObject(u, "confirmed", (double)confirmed);
  }
  cJSON_AddNumberToObject(u, "waited_ms", (double)(now - c->wait_from));
  cJSON_AddNumberToObject(u, "wait_ms", (double)(c->wait_until - c->wait_from));
  write_line(c, c->answer);
  c->answer = NULL;
  return true;
}

static void on_uptake_poll(uv_timer_t *t) {
  ctl_client *c = t->data;
  if (!uptake_answer(c))
    return;
  uv_timer_stop(&c->wait);
  c->waiting = false;
  idle_arm(c);
}

static void handle_line(ctl_client *c, const char *line, size_t len) {
  gv_ctlsrv *s = c->srv;
  gv_ctl_req req;
  gv_why why = {""};
  cJSON *o;
  int rc;

  if (c->waiting)
    return; /* one request at a time per connection */
  uv_timer_stop(&c->idle);
  if ((rc = gv_ctl_parse(&req, line, len, &why)) < 0) {
    write_line(c, gv_ctlsrv_error(rc, why.text));
    return;
  }
  switch (req.cmd) {
  case GV_CTL_STATUS: write_line(c, s->cbs.status(s->ctx)); return;
  case GV_CTL_PEERS: {
    cJSON *arr;
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    arr = cJSON_AddArrayToObject(o, "peers");
    for (size_t i = 0;; i++) {
      const gv_peer_entry *p = gv_engine_table_at(s->engine, i);
      if (p == NULL)
        break;
      cJSON_AddItemToArray(arr, peer_json(s, p));
    }
    write_line(c, o);
    return;
  }
  case GV_CTL_REQUEST:
    rc = gv_engine_request(s->engine, req.repo, req.max, c->req_id,
                           s->cbs.now(s->ctx));
    if (rc < 0) {
      write_line(c, gv_ctlsrv_error(rc, "the request could not be sent"));
      return;
    }
    snprintf(c->repo, sizeof(c->repo), "%s", req.repo);
    c->found = cJSON_CreateObject();
    c->waiting = true; /* not idle: on_wait_done arms idle again */
    uv_timer_start(&c->wait, on_wait_done, req.wait_ms, 0);
    s->cbs.changed(s->ctx);
    return;
  case GV_CTL_REPO_ADD:
  case GV_CTL_REPO_RM: write_line(c, s->cbs.command(s->ctx, &req)); return;
  case GV_CTL_BROADCAST:
    o = s->cbs.command(s->ctx, &req);
    if (req.wait_ms == 0 || !cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
      write_line(c, o);
      return;
    }
    c->answer = o;
    c->record_seq = gv_engine_record_seq(s->engine);
    c->record_on = req.on;
    c->wait_from = uv_now(s->loop);
    c->wait_until = c->wait_from + req.wait_ms;
    if (!uptake_answer(c)) { /* not idle: on_uptake_poll arms idle again */
      c->waiting = true;
      uv_timer_start(&c->wait, on_uptake_poll, UPTAKE_POLL_MS, UPTAKE_POLL_MS);
    }
    return;
  case GV_CTL_SHARE:
  case GV_CTL_FETCH:
  case GV_CTL_TORRENT:
  case GV_CTL_TORRENTS:
  case GV_CTL_UNSHARE:
    if (s->torrent == NULL) {
      write_line(c, gv_ctlsrv_error(GV_ENOTIMPL, "this node has no torrent "
                                                 "service"));
      return;
    }
    c->token = ++s->next_token;
    if ((o = s->torrent(s->ctx, &req, c->token)) != NULL) {
      write_line(c, o);
      return;
    }
    c->waiting = c->deferred = true; /* not idle: the answer arms it */
    return;
  case GV_CTL_TEAM_RELOAD:
    write_line(c, s->team_reload != NULL
                      ? s->team_reload(s->ctx)
                      : gv_ctlsrv_error(GV_ENOTIMPL,
                                        "this node does not load teams while "
                                        "running; restart it"));
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
    write_line(c, gv_ctlsrv_error(GV_ETOOBIG, "request line too long"));
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
    if (c->closing)
      return;
    if (!c->waiting)
      idle_arm(c);
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
  cJSON_Delete(c->answer);
  free(c);
}

static void client_close(ctl_client *c) {
  gv_ctlsrv *s = c->srv;
  if (c->closing)
    return;
  c->closing = true;
  c->waiting = false;
  for (ctl_client **pp = &s->clients; *pp != NULL; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  uv_close((uv_handle_t *)&c->pipe, on_client_closed);
  uv_close((uv_handle_t *)&c->wait, on_client_closed);
  uv_close((uv_handle_t *)&c->idle, on_client_closed);
  s->n_clients--;
}

/* Writes o's line now if the socket takes it, then closes c: for a refusal
 * that must not wait behind the loop. */
static void refuse(ctl_client *c, int rc, const char *reason) {
  cJSON *o = gv_ctlsrv_error(rc, reason);
  char *txt = cJSON_PrintUnformatted(o);

  cJSON_Delete(o);
  if (txt != NULL) {
    size_t len = strlen(txt);
    char *line = realloc(txt, len + 2);
    if (line != NULL) {
      uv_buf_t buf;
      txt = line;
      txt[len] = '\n';
      buf = uv_buf_init(txt, (unsigned)len + 1);
      (void)uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
    }
    free(txt);
  }
  client_close(c);
}

static void on_idle(uv_timer_t *t) {
  refuse(t->data, -ETIMEDOUT, "no request within the idle timeout");
}

static void idle_arm(ctl_client *c) {
  c->idle_since = uv_now(c->srv->loop);
  uv_timer_start(&c->idle, on_idle, GV_CTLSRV_IDLE_MS, 0);
}

/* The client idle longest (no request in flight), or NULL. */
static ctl_client *idlest(const gv_ctlsrv *s) {
  ctl_client *best = NULL;

  for (ctl_client *c = s->clients; c != NULL; c = c->next)
    if (!c->waiting && (best == NULL || c->idle_since <= best->idle_since))
      best = c;
  return best;
}

static void on_ctl_connection(uv_stream_t *server, int status) {
  gv_ctlsrv *s = server->data;
  ctl_client *c, *old;
  gv_why why = {""};
  uv_os_fd_t fd;

  if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
    return;
  c->srv = s;
  uv_pipe_init(s->loop, &c->pipe, 0);
  uv_timer_init(s->loop, &c->wait);
  uv_timer_init(s->loop, &c->idle);
  c->pipe.data = c->wait.data = c->idle.data = c;
  c->handles = 3;
  if (s->n_clients >= GV_CTLSRV_CLIENTS_MAX && (old = idlest(s)) != NULL)
    refuse(old, GV_EBUSY,
           "too many control clients: closing the one idle longest");
  c->next = s->clients;
  s->clients = c;
  s->n_clients++;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
    client_close(c);
    return;
  }
  /* Only this node's user, or root, may talk to it (SO_PEERCRED). */
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
      gv_cli_check_client(fd, &why) < 0) {
    refuse(c, -EACCES, why.text[0] ? why.text : "cannot tell who connected");
    return;
  }
  if (s->n_clients > GV_CTLSRV_CLIENTS_MAX) {
    refuse(c, GV_EBUSY, "too many control clients, each with a request");
    return;
  }
  idle_arm(c);
  if (uv_read_start((uv_stream_t *)&c->pipe, on_client_alloc, on_client_read) <
      0)
    client_close(c);
}

static void on_srv_closed(uv_handle_t *h) { free(h->data); }

int gv_ctlsrv_start(gv_ctlsrv **out, uv_loop_t *loop, const char *path,
                    gv_engine *engine, const gv_lcore *lc,
                    const gv_ctlsrv_cbs *cbs, void *ctx, gv_why *why) {
  gv_ctlsrv *s = calloc(1, sizeof(*s));
  int rc;

  *out = NULL;
  if (s == NULL)
    return gv_fail(why, GV_ENOMEM, "control socket: out of memory");
  s->loop = loop;
  s->engine = engine;
  s->lc = lc;
  s->cbs = *cbs;
  s->ctx = ctx;
  /* A stale one from a crash (the caller holds the node's lock), if it is
   * ours: one planted by another user is refused, not replaced. */
  if ((rc = gv_cli_check_stale_sock(path, why)) < 0) {
    free(s);
    return rc;
  }
  unlink(path);
  uv_pipe_init(loop, &s->pipe, 0);
  s->pipe.data = s;
  if ((rc = uv_pipe_bind(&s->pipe, path)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&s->pipe, 16, on_ctl_connection)) < 0) {
    uv_close((uv_handle_t *)&s->pipe, on_srv_closed);
    return gv_fail(why, rc, "control socket %s: %s", path, uv_strerror(rc));
  }
  chmod(path, 0600);
  *out = s;
  return 0;
}

void gv_ctlsrv_set_team_reload(gv_ctlsrv *s, cJSON *(*team_reload)(void *ctx)) {
  s->team_reload = team_reload;
}

void gv_ctlsrv_set_torrent(gv_ctlsrv *s, gv_ctlsrv_torrent_fn fn) {
  s->torrent = fn;
}

void gv_ctlsrv_answer(gv_ctlsrv *s, uint64_t token, cJSON *answer) {
  for (ctl_client *c = s != NULL ? s->clients : NULL; c != NULL; c = c->next)
    if (c->deferred && c->token == token) {
      c->deferred = c->waiting = false;
      write_line(c, answer);
      idle_arm(c);
      return;
    }
  cJSON_Delete(answer);
}

void gv_ctlsrv_stop(gv_ctlsrv *s) {
  if (s == NULL)
    return;
  while (s->clients != NULL)
    client_close(s->clients);
  uv_close((uv_handle_t *)&s->pipe, on_srv_closed);
}

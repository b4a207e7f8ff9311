/* The tunnel lab: see tunlab.h. */
#include "tunlab.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"

#define CHUNK (64u * 1024u)
#define INFLIGHT 4 /* a peer's writes under way at once */

struct tl_msg {
  tl_msg *next;
  int link, to;  /* the link it travels, the node it goes to */
  uint8_t *data; /* the whole plaintext, channel byte first */
  size_t len;
};

static void fail(tl_lab *lab, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(tl_lab *lab, const char *fmt, ...) {
  va_list ap;
  if (lab->err[0] != '\0')
    return; /* the first failure is the one that tells */
  va_start(ap, fmt);
  vsnprintf(lab->err, sizeof(lab->err), fmt, ap);
  va_end(ap);
}

static void *must(void *p) {
  if (p == NULL) {
    fprintf(stderr, "tunlab: out of memory\n");
    abort();
  }
  return p;
}

/* ---- the pseudo-random streams ----
 *
 * Byte pos of stream seed is tab[pos % TAB], tab being TAB pseudo-random
 * bytes drawn from seed. A byte out of place is caught; a byte lost or
 * repeated shifts everything after it (caught, unless the shift is a
 * multiple of TAB, which no message or read size of ours is: TAB is odd)
 * and changes the count. Cheap (memcpy, memcmp) so that the benchmark
 * measures the sockets, not the check. */

#define TAB ((1u << 20) + 13u)

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint8_t *table(uint64_t seed) {
  uint8_t *t = must(malloc(TAB));
  for (size_t i = 0; i < TAB; i++)
    t[i] = (uint8_t)(mix(seed + (i >> 3) * 0x9e3779b97f4a7c15ull) >>
                     (8 * (i & 7)));
  return t;
}

/* The runs of stream tab at off..off+n, as pieces of tab. */
static size_t run_at(size_t off, size_t n, size_t *at) {
  *at = off % TAB;
  return n < TAB - *at ? n : TAB - *at;
}

static void fill(const uint8_t *tab, size_t off, uint8_t *b, size_t n) {
  for (size_t i = 0, at, k; i < n; i += k) {
    k = run_at(off + i, n - i, &at);
    memcpy(b + i, tab + at, k);
  }
}

static bool match(const uint8_t *tab, size_t off, const uint8_t *b, size_t n) {
  for (size_t i = 0, at, k; i < n; i += k) {
    k = run_at(off + i, n - i, &at);
    if (memcmp(b + i, tab + at, k) != 0)
      return false;
  }
  return true;
}

/* ---- links and nodes ---- */

static void on_idle(uv_idle_t *h);

/* The up link that node me calls id, or -1. */
static int link_of(const tl_lab *lab, int me, gv_linkid id) {
  for (int k = 0; k < lab->n_links; k++) {
    const tl_link *l = &lab->links[k];
    if (l->up && ((l->a == me && l->la == id) || (l->b == me && l->lb == id)))
      return k;
  }
  return -1;
}

static void send_on(tl_lab *lab, tl_node *from, gv_tact *a) {
  int me = (int)(from - lab->nodes), k = link_of(lab, me, a->link);
  tl_msg *m;

  if (k < 0) {
    fail(lab, "node %d: SEND on link %u, which is not up", me,
         (unsigned)a->link);
    return;
  }
  m = must(calloc(1, sizeof(*m)));
  m->link = k;
  m->to = lab->links[k].a == me ? lab->links[k].b : lab->links[k].a;
  m->data = a->data;
  m->len = a->len;
  a->data = NULL;
  if (lab->tail != NULL)
    lab->tail->next = m;
  else
    lab->head = m;
  lab->tail = m;
  lab->n_msgs++;
  lab->queued += m->len;
  if (lab->queued > lab->queued_max)
    lab->queued_max = lab->queued;
  uv_idle_start(&lab->idle, on_idle);
}

/* HOLD and RELEASE: each link's hold by each end, as the link core keeps
 * it (a HOLD of a held link, or a RELEASE of a free one, is a failure). */
static void hold(tl_node *n, gv_linkid id, bool on) {
  tl_lab *lab = n->lab;
  int me = (int)(n - lab->nodes), k = link_of(lab, me, id);
  bool *held;

  if (k < 0) {
    fail(lab, "node %d: %s of link %u, which is not up", me,
         on ? "HOLD" : "RELEASE", (unsigned)id);
    return;
  }
  held = lab->links[k].a == me ? &lab->links[k].held_a : &lab->links[k].held_b;
  if (*held == on)
    fail(lab, "node %d: %s of link %u twice", me, on ? "HOLD" : "RELEASE",
         (unsigned)id);
  *held = on;
}

/* The daemon's drain(): every action, until the core is quiet. */
static void drain(tl_node *n) {
  tl_lab *lab = n->lab;
  gv_why why = {""};
  gv_tact a;

  while (gv_tun_next(n->core, &a)) {
    switch (a.type) {
    case GV_TACT_SEND: send_on(lab, n, &a); break;
    case GV_TACT_HOLD:
    case GV_TACT_RELEASE: hold(n, a.link, a.type == GV_TACT_HOLD); break;
    default: gv_tunio_run(n->io, &a); break;
    }
    free(a.data);
  }
  if (gv_tun_check(n->core, &why) < 0)
    fail(lab, "gv_tun_check: %s", why.text);
}

static void on_changed(void *ctx) { drain(ctx); }

static const gv_tunio_cbs tunio_cbs = {on_changed};

static bool on_accept(void *ctx, const uint8_t ih[GV_TW_IH_BYTES],
                      const uint8_t src[GV_ID_BYTES]) {
  tl_node *n = ctx;
  (void)ih;
  (void)src;
  return n->serve;
}

static void on_idle(uv_idle_t *h) {
  tl_lab *lab = h->data;
  gv_why why = {""};
  size_t n = lab->n_msgs;
  tl_msg *m;

  /* What is sent during these deliveries waits for the next turn. */
  while (n-- > 0 && (m = lab->head) != NULL) {
    tl_link *l = &lab->links[m->link];
    lab->head = m->next;
    if (lab->head == NULL)
      lab->tail = NULL;
    lab->n_msgs--;
    lab->queued -= m->len;
    if (l->up) {
      tl_node *to = &lab->nodes[m->to];
      if (m->len < 1 || m->data[0] != GV_CHAN_TORRENT)
        fail(lab, "node %d: a message not on channel 3", m->to);
      else if (gv_tun_recv(to->core, m->to == l->a ? l->la : l->lb, m->data + 1,
                           m->len - 1, &why) < 0)
        fail(lab, "node %d: gv_tun_recv: %s", m->to, why.text);
      drain(to);
    }
    free(m->data);
    free(m);
  }
  if (lab->head == NULL)
    uv_idle_stop(h);
}

int tl_node_add(tl_lab *lab, uint16_t tor_port, bool relay) {
  int i = lab->n_nodes++;
  tl_node *n = &lab->nodes[i];
  gv_tun_cfg cfg;
  struct sockaddr_in tor;

  if (i >= TL_NODES_MAX)
    abort();
  uv_ip4_addr("127.0.0.1", tor_port, &tor);
  n->lab = lab;
  n->serve = true;
  memset(n->id, 'A' + i, sizeof(n->id));
  gv_tun_cfg_default(&cfg);
  memcpy(cfg.self, n->id, sizeof(n->id));
  cfg.relay = relay;
  cfg.accept = on_accept;
  cfg.ctx = n;
  if (gv_tun_new(&n->core, &cfg) < 0 ||
      gv_tunio_new(&n->io, lab->loop, &lab->log, n->core,
                   (const struct sockaddr *)&tor, &tunio_cbs, n) < 0)
    must(NULL);
  return i;
}

int tl_link_up(tl_lab *lab, int a, int b) {
  int k = lab->n_links++;
  tl_link *l = &lab->links[k];

  if (k >= TL_LINKS_MAX)
    abort();
  l->a = a;
  l->b = b;
  l->la = (gv_linkid)(100 + k);
  l->lb = (gv_linkid)(200 + k);
  l->up = true;
  l->held_a = gv_tun_link_up(lab->nodes[a].core, l->la, lab->nodes[b].id, true);
  l->held_b =
      gv_tun_link_up(lab->nodes[b].core, l->lb, lab->nodes[a].id, false);
  drain(&lab->nodes[a]);
  drain(&lab->nodes[b]);
  return k;
}

void tl_link_down(tl_lab *lab, int k) {
  tl_link *l = &lab->links[k];

  l->up = false;                 /* on_idle drops what it still carries */
  l->held_a = l->held_b = false; /* a closed link holds nothing */
  gv_tun_link_down(lab->nodes[l->a].core, l->la);
  gv_tunio_link_down(lab->nodes[l->a].io, l->la);
  gv_tun_link_down(lab->nodes[l->b].core, l->lb);
  gv_tunio_link_down(lab->nodes[l->b].io, l->lb);
  drain(&lab->nodes[l->a]);
  drain(&lab->nodes[l->b]);
}

/* ---- peers ---- */

static void on_peer_closed(uv_handle_t *h) {
  tl_peer *p = h->data;
  p->closed = true;
}

static void peer_free(tl_peer *p) {
  if (p == NULL)
    return;
  free(p->tx_tab);
  free(p->rx_tab);
  free(p);
}

static void on_extra_closed(uv_handle_t *h) { peer_free(h->data); }

static void peer_end(tl_peer *p, int status) {
  if (p->ended)
    return;
  p->ended = true;
  p->status = status;
  uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
}

static void pump(tl_peer *p);

static void on_peer_written(uv_write_t *req, int status) {
  tl_peer *p = req->data;
  free(req);
  p->inflight--;
  if (status == 0)
    pump(p);
}

/* Keeps INFLIGHT writes of CHUNK bytes under way until all are queued. */
static void pump(tl_peer *p) {
  while (!p->ended && p->inflight < INFLIGHT && p->queued < p->tx_total) {
    size_t n =
        p->tx_total - p->queued < CHUNK ? p->tx_total - p->queued : CHUNK;
    uv_write_t *req = must(malloc(sizeof(*req) + n));
    uint8_t *b = (uint8_t *)(req + 1);
    uv_buf_t buf = uv_buf_init((char *)b, (unsigned)n);

    fill(p->tx_tab, p->queued, b, n);
    req->data = p;
    if (uv_write(req, (uv_stream_t *)&p->tcp, &buf, 1, on_peer_written) < 0) {
      free(req);
      peer_end(p, UV_EPIPE);
      return;
    }
    p->queued += n;
    p->inflight++;
  }
}

static void on_peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  buf->base = must(malloc(CHUNK));
  buf->len = CHUNK;
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tl_peer *p = s->data;

  if (n > 0 && !p->ended) {
    if (p->recvd + (size_t)n > p->rx_total ||
        !match(p->rx_tab, p->recvd, (const uint8_t *)buf->base, (size_t)n)) {
      p->bad = true;
      peer_end(p, UV_EPROTO);
    } else if ((p->recvd += (size_t)n) == p->rx_total) {
      p->t_done = uv_hrtime();
    }
  } else if (n < 0) {
    peer_end(p, n == UV_EOF ? 0 : (int)n);
  }
  free(buf->base);
}

static tl_peer *peer_new(tl_lab *lab, bool server, const tl_flow *f) {
  tl_peer *p = must(calloc(1, sizeof(*p)));

  p->lab = lab;
  p->tx_tab = table(server ? f->seed : ~f->seed);
  p->rx_tab = table(server ? ~f->seed : f->seed);
  p->tx_total = server ? f->down : f->up;
  p->rx_total = server ? f->up : f->down;
  uv_tcp_init(lab->loop, &p->tcp);
  p->tcp.data = p;
  return p;
}

static void peer_start(tl_peer *p) {
  p->connected = true;
  if (p->rx_total == 0)
    p->t_done = uv_hrtime();
  if (uv_read_start((uv_stream_t *)&p->tcp, on_peer_alloc, on_peer_read) < 0)
    peer_end(p, UV_EPIPE);
  pump(p);
}

static void on_srv_connection(uv_stream_t *server, int status) {
  tl_pair *pr = server->data;
  tl_peer *p;

  if (status < 0)
    return;
  p = peer_new(pr->lab, true, &pr->flow);
  if (uv_accept(server, (uv_stream_t *)&p->tcp) < 0 || pr->srv != NULL) {
    /* One client per pair: a second is closed (and counted) at once. */
    pr->accepted++;
    p->ended = true;
    uv_close((uv_handle_t *)&p->tcp, on_extra_closed);
    return;
  }
  pr->accepted++;
  pr->srv = p;
  peer_start(p);
}

tl_pair *tl_pair_new(tl_lab *lab, const tl_flow *flow) {
  tl_pair *p = must(calloc(1, sizeof(*p)));
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  int len = sizeof(ss);

  if (lab->n_pairs >= TL_PAIRS_MAX)
    abort();
  lab->pairs[lab->n_pairs++] = p;
  p->lab = lab;
  p->flow = *flow;
  uv_tcp_init(lab->loop, &p->server);
  p->server.data = p;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  if (uv_tcp_bind(&p->server, (const struct sockaddr *)&sin, 0) < 0 ||
      uv_listen((uv_stream_t *)&p->server, 16, on_srv_connection) < 0 ||
      uv_tcp_getsockname(&p->server, (struct sockaddr *)&ss, &len) < 0)
    abort();
  p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return p;
}

static void on_cli_connect(uv_connect_t *req, int status) {
  tl_peer *p = req->data;
  if (status < 0)
    peer_end(p, status);
  else if (!p->ended)
    peer_start(p);
}

void tl_pair_connect(tl_pair *pr, uint16_t port) {
  struct sockaddr_in sin;
  tl_peer *p = pr->cli = peer_new(pr->lab, false, &pr->flow);

  p->t0 = uv_hrtime();
  p->connect.data = p;
  uv_ip4_addr("127.0.0.1", port, &sin);
  if (uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&sin,
                     on_cli_connect) < 0)
    peer_end(p, UV_ECONNREFUSED);
}

bool tl_pair_done(const tl_pair *p) {
  return p->cli != NULL && p->srv != NULL && p->cli->ended && p->srv->ended &&
         p->cli->recvd == p->cli->rx_total && p->srv->recvd == p->srv->rx_total;
}

/* ---- running ---- */

static void on_check(uv_check_t *h) {
  tl_lab *lab = h->data;

  /* A client that read everything, whose server read everything too,
   * leaves: the tunnel carries no half-close, so it waits for both. */
  for (int i = 0; i < lab->n_pairs; i++) {
    tl_pair *p = lab->pairs[i];
    if (p->cli != NULL && p->srv != NULL && !p->cli->ended &&
        p->cli->recvd == p->cli->rx_total && p->srv->recvd == p->srv->rx_total)
      peer_end(p->cli, 0);
  }
  if (lab->goal != NULL && lab->goal(lab->goal_ctx)) {
    lab->met = true;
    uv_stop(lab->loop);
  }
}

static void on_deadline(uv_timer_t *t) { uv_stop(t->loop); }

bool tl_run(tl_lab *lab, bool (*goal)(void *ctx), void *ctx,
            unsigned timeout_ms) {
  lab->goal = goal;
  lab->goal_ctx = ctx;
  lab->met = goal(ctx);
  if (!lab->met) {
    uv_timer_start(&lab->deadline, on_deadline, timeout_ms, 0);
    uv_run(lab->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&lab->deadline);
  }
  lab->goal = NULL;
  return lab->met;
}

bool tl_quiet(void *ctx) {
  tl_lab *lab = ctx;
  for (int i = 0; i < lab->n_nodes; i++) {
    gv_tunio_stats st;
    gv_tunio_stats_get(lab->nodes[i].io, &st);
    if (gv_tun_streams(lab->nodes[i].core) > 0 || st.sockets > 0)
      return false;
  }
  return true;
}

uint16_t tl_free_port(void) {
  struct sockaddr_in sin = {.sin_family = AF_INET};
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
    abort();
  close(fd);
  return ntohs(sin.sin_port);
}

tl_lab *tl_lab_new(uv_loop_t *loop) {
  tl_lab *lab = must(calloc(1, sizeof(*lab)));

  /* As the node does (daemon.c): a write to a socket the peer closed is
   * an EPIPE for libuv to report, not a signal that kills the process. */
  signal(SIGPIPE, SIG_IGN);
  lab->loop = loop;
  lab->log.level = GV_LOG_WARN;
  lab->log.out = stderr;
  uv_idle_init(loop, &lab->idle);
  uv_check_init(loop, &lab->check);
  uv_timer_init(loop, &lab->deadline);
  lab->idle.data = lab->check.data = lab->deadline.data = lab;
  uv_check_start(&lab->check, on_check);
  return lab;
}

static void close_peer(tl_peer *p) {
  if (p != NULL && !p->ended) {
    p->ended = true;
    uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
  }
}

void tl_lab_free(tl_lab *lab) {
  tl_msg *m;

  for (int i = 0; i < lab->n_nodes; i++)
    gv_tunio_close(lab->nodes[i].io);
  for (int i = 0; i < lab->n_pairs; i++) {
    close_peer(lab->pairs[i]->srv);
    close_peer(lab->pairs[i]->cli);
    uv_close((uv_handle_t *)&lab->pairs[i]->server, NULL);
  }
  uv_close((uv_handle_t *)&lab->idle, NULL);
  uv_close((uv_handle_t *)&lab->check, NULL);
  uv_close((uv_handle_t *)&lab->deadline, NULL);
  uv_run(lab->loop, UV_RUN_DEFAULT); /* until every handle is closed */
  while ((m = lab->head) != NULL) {
    lab->head = m->next;
    free(m->data);
    free(m);
  }
  for (int i = 0; i < lab->n_pairs; i++) {
    peer_free(lab->pairs[i]->srv);
    peer_free(lab->pairs[i]->cli);
    free(lab->pairs[i]);
  }
  for (int i = 0; i < lab->n_nodes; i++)
    gv_tun_free(lab->nodes[i].core);
  free(lab);
}

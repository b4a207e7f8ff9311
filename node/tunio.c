/* gv_tunio: see tunio.h.
 *
 * Every handle (a listener's or a socket's uv_tcp_t) lives in a struct of
 * its own that is freed only by its close callback, so a pointer taken in a
 * callback stays valid through whatever changed() does during it.
 *
 * Sockets the core knows ("live") are found by handle in a hash table of
 * SLOTS slots (open addressing, linear probing, backward-shift deletion);
 * SLOTS is twice the socket cap, so a probe run stays short and a free slot
 * always exists. Every socket not yet closed, live or not, is on one list
 * for gv_tunio_close(). Listeners sit in an array, found by (dst, ih).
 */
#include "tunio.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS (2u * GV_TUNIO_SOCKETS_MAX) /* a power of two */
#define BACKLOG 64

typedef enum sock_state {
  SOCK_CONNECTING, /* CONNECT: uv_tcp_connect under way */
  SOCK_OPEN,       /* reading unless paused */
  SOCK_SHUTTING,   /* SHUT: uv_shutdown after the pending writes */
  SOCK_CLOSING,    /* uv_close called */
} sock_state;

typedef struct tsock {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_shutdown_t shut;
  gv_tunio *io;
  gv_tun_local local; /* 0 until the core named it */
  sock_state state;
  bool live;   /* in the table: the core knows it */
  bool paused; /* PAUSE seen, no RESUME since */
  struct tsock *prev, *next;
} tsock;

typedef struct tlisten {
  uv_tcp_t tcp;
  gv_tunio *io;
  uint8_t dst[GV_ID_BYTES];
  uint8_t ih[GV_TW_IH_BYTES];
  gv_linkid via;
  uint16_t port;
} tlisten;

typedef struct twrite {
  uv_write_t req;
  tsock *s;
  uint8_t *data;
  size_t len;
} twrite;

struct gv_tunio {
  uv_loop_t *loop;
  gv_log *log;
  gv_tun *core;
  struct sockaddr_storage tor; /* where CONNECT connects */
  gv_tunio_cbs cbs;
  void *ctx;
  bool closing;
  unsigned handles; /* handles whose close callback has not run */
  tlisten *lv[GV_TUNIO_LISTENERS_MAX];
  size_t n_listen;
  tsock *socks;        /* every socket not yet closed */
  size_t n_socks;      /* on that list */
  tsock *slots[SLOTS]; /* live sockets by handle */
  gv_tunio_stats st;
  uint8_t rbuf[GV_TUNIO_READ_BUF]; /* every read lands here */
};

/* ---- the table of live sockets ---- */

static size_t slot_of(gv_tun_local local) {
  /* Fibonacci hashing: handles are the core's counter, spread by the
   * multiply; the top bits pick the slot. */
  return (size_t)((local * 0x9e3779b97f4a7c15ull) >> 40) & (SLOTS - 1);
}

static tsock *table_get(const gv_tunio *io, gv_tun_local local) {
  for (size_t i = slot_of(local);; i = (i + 1) & (SLOTS - 1)) {
    tsock *s = io->slots[i];
    if (s == NULL || s->local == local)
      return s;
  }
}

static void table_put(gv_tunio *io, tsock *s) {
  size_t i = slot_of(s->local);
  while (io->slots[i] != NULL)
    i = (i + 1) & (SLOTS - 1);
  io->slots[i] = s;
  s->live = true;
}

/* Removes s and shifts back the entries of its probe run behind it. */
static void table_del(gv_tunio *io, tsock *s) {
  size_t i = slot_of(s->local), j;

  while (io->slots[i] != s)
    i = (i + 1) & (SLOTS - 1);
  io->slots[i] = NULL;
  s->live = false;
  for (j = (i + 1) & (SLOTS - 1); io->slots[j] != NULL;
       j = (j + 1) & (SLOTS - 1)) {
    size_t home = slot_of(io->slots[j]->local);
    /* Entry j may move to hole i unless its home lies in (i, j]. */
    if (((j - home) & (SLOTS - 1)) >= ((j - i) & (SLOTS - 1))) {
      io->slots[i] = io->slots[j];
      io->slots[j] = NULL;
      i = j;
    }
  }
}

/* ---- handles ---- */

static void maybe_free(gv_tunio *io) {
  if (io->closing && io->handles == 0)
    free(io);
}

static void on_sock_closed(uv_handle_t *h) {
  tsock *s = h->data;
  gv_tunio *io = s->io;

  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    io->socks = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  io->n_socks--;
  io->handles--;
  free(s);
  maybe_free(io);
}

static void sock_close(tsock *s) {
  if (s->state == SOCK_CLOSING)
    return;
  s->state = SOCK_CLOSING;
  uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
}

static tsock *sock_new(gv_tunio *io) {
  tsock *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return NULL;
  if (uv_tcp_init(io->loop, &s->tcp) < 0) {
    free(s);
    return NULL;
  }
  s->io = io;
  s->tcp.data = s;
  s->next = io->socks;
  if (io->socks != NULL)
    io->socks->prev = s;
  io->socks = s;
  io->n_socks++;
  io->handles++;
  return s;
}

/* The socket broke (status < 0) or hit EOF (0): the core hears it once, if
 * it still knows the socket, and the socket closes. */
static void sock_end(tsock *s, int status) {
  gv_tunio *io = s->io;

  if (status < 0)
    io->st.errors++;
  if (s->live) {
    table_del(io, s);
    gv_tun_local_closed(io->core, s->local, status);
  }
  sock_close(s);
}

static void changed(gv_tunio *io) {
  if (!io->closing)
    io->cbs.changed(io->ctx);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tsock *s = h->data;
  (void)hint;
  /* libuv calls on_read right after on_alloc: one buffer serves all. */
  *buf = uv_buf_init((char *)s->io->rbuf, sizeof(s->io->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  tsock *s = st->data;
  gv_tunio *io = s->io;
  int rc;

  if (n == 0 || io->closing || !s->live)
    return;
  if (n < 0) {
    sock_end(s, n == UV_EOF ? 0 : (int)n);
  } else {
    io->st.bytes_read += (uint64_t)n;
    rc = gv_tun_local_read(io->core, s->local, (const uint8_t *)buf->base,
                           (size_t)n);
    if (rc < 0) /* refused: more held than GV_TUN_HELD_MAX */
      sock_end(s, rc);
  }
  changed(io);
}

/* Starts reading an open socket unless the core paused it. */
static int sock_read(tsock *s) {
  if (s->paused || s->state != SOCK_OPEN)
    return 0;
  return uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

/* ---- fetcher side: listeners ---- */

static void on_listener_closed(uv_handle_t *h) {
  tlisten *l = h->data;
  gv_tunio *io = l->io;

  io->handles--;
  free(l);
  maybe_free(io);
}

/* Takes listener i out of the array and closes it. */
static void listener_close(gv_tunio *io, size_t i) {
  tlisten *l = io->lv[i];

  io->lv[i] = io->lv[--io->n_listen];
  io->st.listeners--;
  uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

static void on_connection(uv_stream_t *server, int status) {
  tlisten *l = server->data;
  gv_tunio *io = l->io;
  gv_why why = {""};
  bool over = io->n_socks >= GV_TUNIO_SOCKETS_MAX;
  tsock *s;
  int rc;

  /* Without an accept libuv stops listening until the next one: a failed
   * allocation stalls this listener rather than spinning. */
  if (status < 0 || io->closing || (s = sock_new(io)) == NULL)
    return;
  if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
    sock_close(s);
    return;
  }
  if (over) {
    io->st.refused++;
    gv_logf(io->log, GV_LOG_WARN,
            "tunnel: %u local sockets open; refusing a connection",
            GV_TUNIO_SOCKETS_MAX);
    sock_close(s);
    return;
  }
  if ((rc = gv_tun_open(io->core, l->via, l->dst, l->ih, &s->local, &why)) <
      0) {
    io->st.refused++;
    gv_logf(io->log, GV_LOG_DEBUG, "tunnel: no stream over link %u: %s",
            (unsigned)l->via, why.text[0] ? why.text : gv_strerror(rc));
    sock_close(s);
    return;
  }
  io->st.accepted++;
  s->state = SOCK_OPEN;
  table_put(io, s);
  uv_tcp_nodelay(&s->tcp, 1);
  if ((rc = sock_read(s)) < 0)
    sock_end(s, rc);
  changed(io);
}

static tlisten *listener_find(const gv_tunio *io,
                              const uint8_t dst[GV_ID_BYTES],
                              const uint8_t ih[GV_TW_IH_BYTES], size_t *at) {
  for (size_t i = 0; i < io->n_listen; i++) {
    tlisten *l = io->lv[i];
    if (memcmp(l->dst, dst, GV_ID_BYTES) == 0 &&
        memcmp(l->ih, ih, GV_TW_IH_BYTES) == 0) {
      *at = i;
      return l;
    }
  }
  return NULL;
}

int gv_tunio_listen(gv_tunio *io, const uint8_t dst[GV_ID_BYTES], gv_linkid via,
                    const uint8_t ih[GV_TW_IH_BYTES], uint16_t *port,
                    gv_why *why) {
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  int len = sizeof(ss), rc;
  tlisten *l;
  size_t at;

  if (io->closing)
    return gv_fail(why, GV_ESTATE, "tunnel: closing; no new listener");
  if ((l = listener_find(io, dst, ih, &at)) != NULL) {
    l->via = via;
    *port = l->port;
    return 0;
  }
  if (io->n_listen >= GV_TUNIO_LISTENERS_MAX)
    return gv_fail(why, GV_ELIMIT, "tunnel: %u local listeners already",
                   GV_TUNIO_LISTENERS_MAX);
  if ((l = calloc(1, sizeof(*l))) == NULL)
    return gv_fail(why, GV_ENOMEM, "tunnel: out of memory");
  if ((rc = uv_tcp_init(io->loop, &l->tcp)) < 0) {
    free(l);
    return gv_fail(why, rc, "tunnel: %s", uv_strerror(rc));
  }
  l->io = io;
  l->tcp.data = l;
  memcpy(l->dst, dst, GV_ID_BYTES);
  memcpy(l->ih, ih, GV_TW_IH_BYTES);
  l->via = via;
  io->handles++;
  io->lv[io->n_listen++] = l;
  io->st.listeners++;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  if ((rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&sin, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, on_connection)) < 0 ||
      (rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len)) < 0) {
    listener_close(io, io->n_listen - 1);
    return gv_fail(why, rc, "tunnel: local listener: %s", uv_strerror(rc));
  }
  l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *port = l->port;
  return 0;
}

void gv_tunio_unlisten(gv_tunio *io, const uint8_t dst[GV_ID_BYTES],
                       const uint8_t ih[GV_TW_IH_BYTES]) {
  for (size_t i = 0; io != NULL && !io->closing && i < io->n_listen;) {
    const tlisten *l = io->lv[i];
    if ((dst == NULL || memcmp(l->dst, dst, GV_ID_BYTES) == 0) &&
        memcmp(l->ih, ih, GV_TW_IH_BYTES) == 0)
      listener_close(io, i); /* the last one moves to i */
    else
      i++;
  }
}

void gv_tunio_link_down(gv_tunio *io, gv_linkid via) {
  size_t i = 0;

  if (io->closing)
    return;
  while (i < io->n_listen) {
    if (io->lv[i]->via == via)
      listener_close(io, i); /* the last one moved to i: look again */
    else
      i++;
  }
}

/* ---- seeder side: CONNECT ---- */

static void on_connect(uv_connect_t *req, int status) {
  tsock *s = req->data;
  gv_tunio *io = s->io;
  int rc;

  /* Closed meanwhile (SHUT, or gv_tunio_close): the core is not told. */
  if (io->closing || !s->live)
    return;
  if (status < 0) {
    io->st.connect_failed++;
    table_del(io, s);
    gv_logf(io->log, GV_LOG_DEBUG, "tunnel: connecting to libtorrent: %s",
            uv_strerror(status));
    gv_tun_local_connected(io->core, s->local, status);
    sock_close(s);
  } else {
    io->st.connected++;
    s->state = SOCK_OPEN;
    uv_tcp_nodelay(&s->tcp, 1);
    gv_tun_local_connected(io->core, s->local, 0);
    if ((rc = sock_read(s)) < 0)
      sock_end(s, rc);
  }
  changed(io);
}

static void run_connect(gv_tunio *io, gv_tun_local local) {
  tsock *s;
  int rc;

  if (io->n_socks >= GV_TUNIO_SOCKETS_MAX) {
    io->st.connect_failed++;
    gv_tun_local_connected(io->core, local, GV_ELIMIT);
    return;
  }
  if ((s = sock_new(io)) == NULL) {
    io->st.connect_failed++;
    gv_tun_local_connected(io->core, local, GV_ENOMEM);
    return;
  }
  s->local = local;
  s->state = SOCK_CONNECTING;
  s->connect.data = s;
  table_put(io, s);
  if ((rc = uv_tcp_connect(&s->connect, &s->tcp,
                           (const struct sockaddr *)&io->tor, on_connect)) <
      0) {
    io->st.connect_failed++;
    table_del(io, s);
    gv_tun_local_connected(io->core, local, rc);
    sock_close(s);
  }
}

/* ---- writing and closing ---- */

static void on_written(uv_write_t *req, int status) {
  twrite *w = (twrite *)req;
  tsock *s = w->s;
  gv_tunio *io = s->io;
  size_t len = w->len;

  free(w->data);
  free(w);
  if (io->closing || status == UV_ECANCELED)
    return;
  if (status == 0)
    io->st.bytes_written += len;
  if (!s->live)
    return; /* SHUT: the core no longer counts its bytes */
  if (status < 0)
    sock_end(s, status);
  else
    gv_tun_local_written(io->core, s->local, len);
  changed(io);
}

/* Queues a->data on s (written after the connect if one is under way:
 * libuv keeps the order). */
static void run_write(tsock *s, gv_tact *a) {
  twrite *w = malloc(sizeof(*w));
  uv_buf_t buf;
  int rc;

  if (w == NULL) {
    sock_end(s, GV_ENOMEM);
    return;
  }
  w->s = s;
  w->data = a->data;
  w->len = a->len;
  a->data = NULL;
  buf = uv_buf_init((char *)w->data, (unsigned)w->len);
  if ((rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_written)) <
      0) {
    free(w->data);
    free(w);
    sock_end(s, rc);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status; /* written or not, the socket is done */
  sock_close(req->data);
}

/* SHUT: the core is done with s. A connect under way is cancelled; an open
 * socket stops reading and closes once its pending writes are out. */
static void run_shut(gv_tunio *io, tsock *s) {
  table_del(io, s);
  if (s->state != SOCK_OPEN) {
    sock_close(s);
    return;
  }
  uv_read_stop((uv_stream_t *)&s->tcp);
  s->state = SOCK_SHUTTING;
  s->shut.data = s;
  if (uv_shutdown(&s->shut, (uv_stream_t *)&s->tcp, on_shutdown) < 0)
    sock_close(s);
}

void gv_tunio_run(gv_tunio *io, gv_tact *a) {
  tsock *s;
  int rc;

  if (io == NULL || io->closing)
    return;
  if (a->type == GV_TACT_CONNECT) {
    run_connect(io, a->local);
    return;
  }
  if (a->type != GV_TACT_WRITE && a->type != GV_TACT_PAUSE &&
      a->type != GV_TACT_RESUME && a->type != GV_TACT_SHUT)
    return; /* SEND, HOLD, RELEASE: the owner's */
  if (a->local == 0 || (s = table_get(io, a->local)) == NULL)
    return; /* its end was reported: the core will forget it */
  switch (a->type) {
  case GV_TACT_WRITE: run_write(s, a); break;
  case GV_TACT_PAUSE:
    s->paused = true;
    if (s->state == SOCK_OPEN)
      uv_read_stop((uv_stream_t *)&s->tcp);
    break;
  case GV_TACT_RESUME:
    if (!s->paused)
      break; /* reading already: uv_read_start would refuse */
    s->paused = false;
    if ((rc = sock_read(s)) < 0)
      sock_end(s, rc);
    break;
  default: run_shut(io, s); break;
  }
}

/* ---- the object ---- */

int gv_tunio_new(gv_tunio **out, uv_loop_t *loop, gv_log *log, gv_tun *core,
                 const struct sockaddr *tor, const gv_tunio_cbs *cbs,
                 void *ctx) {
  gv_tunio *io = calloc(1, sizeof(*io));

  *out = NULL;
  if (io == NULL)
    return GV_ENOMEM;
  io->loop = loop;
  io->log = log;
  io->core = core;
  memcpy(&io->tor, tor,
         tor->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                    : sizeof(struct sockaddr_in));
  io->cbs = *cbs;
  io->ctx = ctx;
  *out = io;
  return 0;
}

void gv_tunio_stats_get(const gv_tunio *io, gv_tunio_stats *st) {
  *st = io->st;
  st->sockets = io->n_socks;
}

void gv_tunio_close(gv_tunio *io) {
  if (io == NULL || io->closing)
    return;
  while (io->n_listen > 0)
    listener_close(io, io->n_listen - 1);
  io->closing = true;
  for (tsock *s = io->socks; s != NULL; s = s->next) {
    if (s->live)
      table_del(io, s);
    sock_close(s);
  }
  maybe_free(io);
}

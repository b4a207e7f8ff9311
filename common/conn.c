#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF (64u * 1024u)

struct gv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* handshake deadline, idle check, or close wait */
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  gv_link *link;
  gv_conn_cbs cbs;
  void *data;
  int opened;       /* on_open was called */
  int closing;      /* gv_conn_close() was called */
  int shut_done;    /* our FINAL and everything before it is written */
  int finished;     /* handles are closing; nothing more is delivered */
  int handles_open; /* uv handles not yet closed */
  int silent;       /* a start or dial failed: on_close is not called */
  int status;
  uint64_t handshake_ms, idle_ms, last_rx;
  uint8_t rbuf[READ_BUF];
};

typedef struct write_req {
  uv_write_t req;
  gv_conn *conn;
  uint8_t data[];
} write_req;

static void finish(gv_conn *c, int status);
static void on_watch(uv_timer_t *t);
static void arm_watch(gv_conn *c);

static void on_handle_closed(uv_handle_t *h) {
  gv_conn *c = h->data;

  if (--c->handles_open > 0)
    return;
  if (!c->silent)
    c->cbs.on_close(c, c->status);
  gv_link_free(c->link);
  free(c);
}

static void finish(gv_conn *c, int status) {
  if (c->finished)
    return;
  c->finished = 1;
  c->status = status;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  gv_conn *c = w->conn;

  free(w);
  if (status < 0 && status != UV_ECANCELED)
    finish(c, status);
}

/* Writes whatever the link has queued. */
static void flush(gv_conn *c) {
  const uint8_t *p;
  size_t n = gv_link_out(c->link, &p);
  write_req *w;
  uv_buf_t buf;
  int rc;

  if (n == 0 || c->finished)
    return;
  w = malloc(sizeof(*w) + n);
  if (w == NULL) {
    finish(c, GV_ENOMEM);
    return;
  }
  memcpy(w->data, p, n);
  gv_link_out_consume(c->link, n);
  w->conn = c;
  buf = uv_buf_init((char *)w->data, (unsigned)n);
  rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(w);
    finish(c, rc);
  }
}

/* on_open precedes every message, also when the handshake's last frame and
 * the first messages arrive in one read. */
static void check_open(gv_conn *c) {
  if (!c->opened && !c->finished && gv_link_peer_id(c->link) != NULL) {
    c->opened = 1;
    uv_timer_stop(&c->timer);
    if (c->idle_ms > 0)
      uv_timer_start(&c->timer, on_watch, c->idle_ms, 0);
    c->cbs.on_open(c);
  }
}

static int on_link_msg(void *ctx, const uint8_t *msg, size_t len) {
  gv_conn *c = ctx;
  check_open(c);
  if (!c->finished)
    c->cbs.on_msg(c, msg, len);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  gv_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  gv_conn *c = s->data;
  int rc;

  c->last_rx = uv_now(s->loop);
  if (nread == UV_EOF) {
    rc = gv_link_eof(c->link);
    finish(c, rc < 0 || c->opened ? rc : GV_EHANDSHAKE);
    return;
  }
  if (nread < 0) {
    finish(c, (int)nread);
    return;
  }
  rc = gv_link_recv(c->link, (const uint8_t *)buf->base, (size_t)nread,
                    on_link_msg, c);
  if (rc < 0) {
    finish(c, rc);
    return;
  }
  check_open(c);
  flush(c);
  /* Both sides sent FINAL and ours is out: the conversation is over. */
  if (c->shut_done && gv_link_peer_closed(c->link))
    finish(c, 0);
}

int gv_conn_new(gv_conn **out, uv_loop_t *loop, const gv_identity *self,
                gv_hs_role role, const uint8_t *pin, const gv_conn_cbs *cbs,
                void *data) {
  gv_conn *c = calloc(1, sizeof(*c));
  int rc;

  *out = NULL;
  if (c == NULL)
    return GV_ENOMEM;
  if ((rc = gv_link_new(&c->link, self, role, pin)) < 0) {
    free(c);
    return rc;
  }
  c->cbs = *cbs;
  c->data = data;
  if ((rc = uv_tcp_init(loop, &c->tcp)) < 0) {
    gv_link_free(c->link);
    free(c);
    return rc;
  }
  uv_timer_init(loop, &c->timer); /* cannot fail */
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  *out = c;
  return 0;
}

uv_stream_t *gv_conn_stream(gv_conn *c) { return (uv_stream_t *)&c->tcp; }

/* Starts reading; on failure the conn is finished (on_close follows). */
static int start(gv_conn *c) {
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (!uv_is_active((uv_handle_t *)&c->timer))
    arm_watch(c);
  if (rc < 0) {
    finish(c, rc);
    return rc;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  flush(c);
  return 0;
}

/* libuv's rule: an error returned here means on_close is never called. */
static int fail_silently(gv_conn *c, int rc) {
  c->silent = 1;
  finish(c, rc);
  return rc;
}

int gv_conn_start(gv_conn *c) {
  int rc;

  if ((rc = start(c)) < 0)
    c->silent = 1; /* finish() ran; its handles are still closing */
  return rc;
}

static void on_connect(uv_connect_t *req, int status) {
  gv_conn *c = req->data;

  if (c->finished)
    return;
  if (status < 0) {
    finish(c, status);
    return;
  }
  start(c); /* gv_conn_dial() succeeded: a failure here reaches on_close */
}

int gv_conn_dial(gv_conn *c, const struct sockaddr *addr) {
  int rc;

  c->connect.data = c;
  arm_watch(c); /* the deadline covers the TCP connect too */
  rc = uv_tcp_connect(&c->connect, &c->tcp, addr, on_connect);
  return rc < 0 ? fail_silently(c, rc) : 0;
}

int gv_conn_send(gv_conn *c, const uint8_t *msg, size_t len) {
  int rc;

  if (c->finished)
    return GV_ESTATE;
  rc = gv_link_send(c->link, msg, len);
  if (rc == 0)
    flush(c);
  return rc;
}

static void on_close_wait(uv_timer_t *t) {
  gv_conn *c = t->data;
  finish(c, gv_link_peer_closed(c->link) ? 0 : GV_ETRUNCATED);
}

/* Runs once every write queued before the shutdown has completed. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  gv_conn *c = req->data;

  if (c->finished)
    return;
  c->shut_done = 1;
  if (status < 0)
    finish(c, status);
  else if (gv_link_peer_closed(c->link))
    finish(c, 0);
}

void gv_conn_close(gv_conn *c, const uint8_t *msg, size_t len) {
  int rc;

  if (c->finished || c->closing)
    return;
  c->closing = 1;
  rc = gv_link_close(c->link, msg, len);
  if (rc < 0) {
    finish(c, rc);
    return;
  }
  flush(c);
  c->shutdown.data = c;
  rc = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
  if (rc < 0) {
    finish(c, rc);
    return;
  }
  uv_timer_start(&c->timer, on_close_wait, GV_CONN_CLOSE_WAIT_MS, 0);
}

void gv_conn_abort(gv_conn *c, int status) { finish(c, status); }

/* The one timer: the handshake deadline, then the idle check. */
static void on_watch(uv_timer_t *t) {
  gv_conn *c = t->data;
  uint64_t now = uv_now(t->loop);

  if (c->closing || c->finished)
    return;
  if (!c->opened) {
    finish(c, -ETIMEDOUT);
    return;
  }
  if (c->idle_ms > 0) {
    if (now - c->last_rx >= c->idle_ms)
      finish(c, -ETIMEDOUT);
    else
      uv_timer_start(&c->timer, on_watch, c->idle_ms - (now - c->last_rx), 0);
  }
}

void gv_conn_set_timeouts(gv_conn *c, uint64_t handshake_ms, uint64_t idle_ms) {
  c->handshake_ms = handshake_ms;
  c->idle_ms = idle_ms;
}

static void arm_watch(gv_conn *c) {
  c->last_rx = uv_now(c->tcp.loop);
  if (c->handshake_ms > 0)
    uv_timer_start(&c->timer, on_watch, c->handshake_ms, 0);
}

const uint8_t *gv_conn_peer_id(const gv_conn *c) {
  return gv_link_peer_id(c->link);
}

void *gv_conn_data(const gv_conn *c) { return c->data; }

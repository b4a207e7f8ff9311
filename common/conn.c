#include "conn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF (64u * 1024u)

struct gv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* first-byte or handshake deadline, a frame's
                       deadline once open, or the close wait */
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
  int got_byte;     /* the peer has sent at least one byte */
  int frame_timed;  /* the timer runs for the frame now arriving */
  uint64_t msgs;    /* messages delivered: a new one ends a frame */
  uint64_t timed_msgs;
  int status;
  gv_conn_timeouts to;
  uint64_t armed_at; /* when the deadlines started: dial or start */
  uint8_t *final;    /* our answer to the peer's FINAL (NULL: empty) */
  size_t final_len;
  uint8_t rbuf[READ_BUF];
};

typedef struct write_req {
  uv_write_t req;
  gv_conn *conn;
  uint8_t data[];
} write_req;

static void finish(gv_conn *c, int status);
static void arm_watch(gv_conn *c);

static void on_handle_closed(uv_handle_t *h) {
  gv_conn *c = h->data;

  if (--c->handles_open > 0)
    return;
  if (!c->silent)
    c->cbs.on_close(c, c->status);
  gv_link_free(c->link);
  free(c->final);
  free(c);
}

/* The peer ended with its FINAL (nothing partial after it): a transport
 * error that follows is its leaving, not a failure. */
static int peer_said_goodbye(const gv_conn *c) {
  return gv_link_eof(c->link) == 0;
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
    finish(c, peer_said_goodbye(c) ? 0 : status);
}

/* Writes whatever the link has queued: straight from the link's buffer
 * as far as the socket takes it at once (nothing else is queued ahead),
 * and a copy of the rest behind a uv_write. */
static void flush(gv_conn *c) {
  const uint8_t *p;
  size_t n = gv_link_out(c->link, &p);
  write_req *w;
  uv_buf_t buf;
  int rc;

  if (n == 0 || c->finished)
    return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
    buf = uv_buf_init((char *)p, (unsigned)n);
    rc = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
      finish(c, peer_said_goodbye(c) ? 0 : rc);
      return;
    }
    if (rc > 0) {
      gv_link_out_consume(c->link, (size_t)rc);
      if ((n = gv_link_out(c->link, &p)) == 0)
        return;
    }
  }
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
    c->cbs.on_open(c);
  }
}

/* PROTOCOL.md §5.2, the peer's FINAL: send nothing more but our own FINAL,
 * and close the TCP connection once it is written (on_shutdown). */
static void answer_final(gv_conn *c) {
  if (gv_link_peer_closed(c->link) && !c->closing && !c->finished)
    gv_conn_close(c, c->final, c->final_len);
}

static int on_link_msg(void *ctx, const uint8_t *msg, size_t len) {
  gv_conn *c = ctx;
  check_open(c);
  answer_final(c); /* before the FINAL's plaintext reaches the owner */
  c->msgs++;
  if (!c->finished)
    c->cbs.on_msg(c, msg, len);
  return 0;
}

static void on_frame_late(uv_timer_t *t) {
  gv_conn *c = t->data;
  if (c->frame_timed && !c->closing)
    finish(c, -ETIMEDOUT);
}

/* After a read on an open conn: a frame that has started arriving runs
 * against frame_ms from its start; a whole one stops the clock. */
static void time_frame(gv_conn *c) {
  bool partial;
  if (c->to.frame_ms == 0 || !c->opened || c->closing || c->finished)
    return;
  partial = gv_link_rx_partial(c->link) > 0;
  if (partial && (!c->frame_timed || c->msgs != c->timed_msgs)) {
    c->frame_timed = 1;
    c->timed_msgs = c->msgs;
    uv_timer_start(&c->timer, on_frame_late, c->to.frame_ms, 0);
  } else if (!partial && c->frame_timed) {
    c->frame_timed = 0;
    uv_timer_stop(&c->timer);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  gv_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  gv_conn *c = s->data;
  int rc;

  if (nread == UV_EOF) {
    rc = gv_link_eof(c->link);
    /* The peer is done; our FINAL may still be on its way: on_shutdown or
     * the close wait ends the conn. */
    if (rc == 0 && c->closing && !c->shut_done) {
      uv_read_stop(s);
      return;
    }
    finish(c, rc < 0 || c->opened ? rc : GV_EHANDSHAKE);
    return;
  }
  if (nread < 0) {
    finish(c, peer_said_goodbye(c) ? 0 : (int)nread);
    return;
  }
  if (nread > 0 && !c->got_byte) {
    c->got_byte = 1;
    if (!c->opened && !c->closing)
      arm_watch(c); /* the first-byte deadline is met */
  }
  rc = gv_link_recv(c->link, (const uint8_t *)buf->base, (size_t)nread,
                    on_link_msg, c);
  if (rc < 0) {
    finish(c, rc);
    return;
  }
  check_open(c);
  answer_final(c); /* a FINAL with an empty plaintext reaches no on_msg */
  time_frame(c);
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
  c->to.close_wait_ms = GV_CONN_CLOSE_WAIT_MS;
  c->handles_open = 2;
  *out = c;
  return 0;
}

uv_stream_t *gv_conn_stream(gv_conn *c) { return (uv_stream_t *)&c->tcp; }

/* Starts reading; on failure the conn is finished (on_close follows). */
static int start(gv_conn *c) {
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (!uv_is_active((uv_handle_t *)&c->timer)) {
    c->armed_at = uv_now(c->tcp.loop);
    arm_watch(c);
  }
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
  c->armed_at = uv_now(c->tcp.loop);
  arm_watch(c); /* the deadlines cover the TCP connect too */
  rc = uv_tcp_connect(&c->connect, &c->tcp, addr, on_connect);
  return rc < 0 ? fail_silently(c, rc) : 0;
}

int gv_conn_send(gv_conn *c, const uint8_t *msg, size_t len) {
  int rc;

  if (c->finished)
    return GV_ESTATE;
  /* What libuv still holds counts against the link's send limit: a peer
   * that does not read cannot make us buffer without bound. */
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + len >
      GV_LINK_OUT_MAX)
    return GV_EBUSY;
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
    finish(c, peer_said_goodbye(c) ? 0 : status);
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
  uv_timer_start(&c->timer, on_close_wait, c->to.close_wait_ms, 0);
}

void gv_conn_abort(gv_conn *c, int status) { finish(c, status); }

/* A deadline before the handshake is done ran out. */
static void on_watch(uv_timer_t *t) {
  gv_conn *c = t->data;
  if (!c->closing && !c->opened)
    finish(c, -ETIMEDOUT);
}

void gv_conn_set_timeouts(gv_conn *c, const gv_conn_timeouts *to) {
  c->to = *to;
  if (c->to.close_wait_ms == 0)
    c->to.close_wait_ms = GV_CONN_CLOSE_WAIT_MS;
}

int gv_conn_set_final(gv_conn *c, const uint8_t *msg, size_t len) {
  uint8_t *p = NULL;

  if (len > 0) {
    if ((p = malloc(len)) == NULL)
      return GV_ENOMEM;
    memcpy(p, msg, len);
  }
  free(c->final);
  c->final = p;
  c->final_len = len;
  return 0;
}

/* (Re)arms the timer at the earlier of the deadlines still pending, both
 * counted from armed_at; none pending stops it. */
static void arm_watch(gv_conn *c) {
  uint64_t due = 0, now = uv_now(c->tcp.loop), spent = now - c->armed_at;

  if (c->to.handshake_ms > 0)
    due = c->to.handshake_ms;
  if (c->to.first_byte_ms > 0 && !c->got_byte &&
      (due == 0 || c->to.first_byte_ms < due))
    due = c->to.first_byte_ms;
  if (due == 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_watch, due > spent ? due - spent : 0, 0);
}

const uint8_t *gv_conn_peer_id(const gv_conn *c) {
  return gv_link_peer_id(c->link);
}

void *gv_conn_data(const gv_conn *c) { return c->data; }

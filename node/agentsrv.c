/* The agent socket server: see agentsrv.h.
 *
 * A connection's life:
 *
 *   accept --on_connection--> OPEN --gv_agentsrv_hangup / EOF / TOOBIG-->
 *   HUNG UP (not reading; uv_shutdown after the queued writes)
 *   OPEN or HUNG UP --conn_close (error, over max_queued, shutdown done,
 *   gv_agentsrv_close)--> CLOSING --on_conn_closed--> gone (on_closed)
 *
 * A client over the cap is accepted into the same struct with id 0: it is
 * never in the id table and the owner never hears of it.
 *
 * Ids index a table of a power of two slots, at least twice the cap: a new
 * id is the next counter value whose slot (id & mask) is free, so lookup is
 * one probe and an id is never reused while its connection holds the slot.
 */
#include "agentsrv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "relayreq.h"

#define READ_SLAB (64 * 1024)
#define REFUSING_MAX 64 /* refused clients still being told LIMIT */

typedef struct aconn {
  uv_pipe_t pipe;
  uv_shutdown_t shut;
  gv_agentsrv *srv;
  gv_rconn id; /* 0: refused at the cap */
  char *buf;   /* the unfinished line, at most GV_RREQ_LINE_MAX */
  size_t len, cap;
  size_t queued; /* bytes handed to uv_write and not yet done */
  bool hungup;   /* reading stopped; closes after its writes */
  bool closing;  /* uv_close called */
  struct aconn *prev, *next;
} aconn;

typedef struct wreq {
  uv_write_t req;
  aconn *c;
  uint8_t *data;
  size_t len;
} wreq;

struct gv_agentsrv {
  uv_loop_t *loop;
  uv_pipe_t pipe;
  char *path;
  gv_agentsrv_cbs cbs;
  void *ctx;
  unsigned max_conns;
  size_t max_queued;
  aconn **slots; /* by id & mask */
  uint32_t mask;
  gv_rconn next_id;
  aconn *conns; /* every connection not yet closed, refused ones too */
  unsigned refusing;
  unsigned live; /* handles not yet closed: the listener and conns */
  bool closing;
  gv_agentsrv_stats st;
  char slab[READ_SLAB]; /* each read lands here, then is split */
};

static void conn_close(aconn *c);

static void maybe_free(gv_agentsrv *s) {
  if (!s->closing || s->live > 0)
    return;
  free(s->slots);
  free(s->path);
  free(s);
}

static void on_conn_closed(uv_handle_t *h) {
  aconn *c = h->data;
  gv_agentsrv *s = c->srv;

  if (c->id != 0) {
    s->slots[c->id & s->mask] = NULL;
    s->st.conns--;
    if (!s->closing)
      s->cbs.on_closed(s->ctx, c->id);
  } else {
    s->refusing--;
  }
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  free(c->buf);
  free(c);
  s->live--;
  maybe_free(s);
}

static void conn_close(aconn *c) {
  if (c->closing)
    return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  conn_close(req->data);
}

/* OPEN -> HUNG UP: stop reading; close once the queue is written. */
static void conn_hangup(aconn *c) {
  if (c->closing || c->hungup)
    return;
  c->hungup = true;
  uv_read_stop((uv_stream_t *)&c->pipe);
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
    conn_close(c);
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  aconn *c = w->c;

  c->queued -= w->len;
  free(w->data);
  free(w);
  if (status < 0 && status != UV_ECANCELED) {
    c->srv->st.write_errors++;
    conn_close(c);
  }
}

/* Queues data (owned) on c, whatever c's state short of closing. */
static int conn_write(aconn *c, uint8_t *data, size_t len) {
  gv_agentsrv *s = c->srv;
  uv_buf_t buf;
  wreq *w;
  int rc;

  if (len > s->max_queued - c->queued) {
    free(data);
    s->st.closed_slow++;
    conn_close(c);
    return GV_EBUSY;
  }
  if ((w = malloc(sizeof(*w))) == NULL) {
    free(data);
    conn_close(c);
    return GV_ENOMEM;
  }
  w->c = c;
  w->data = data;
  w->len = len;
  buf = uv_buf_init((char *)data, (unsigned)len);
  if ((rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written)) <
      0) {
    free(data);
    free(w);
    s->st.write_errors++;
    conn_close(c);
    return rc;
  }
  c->queued += len;
  return 0;
}

/* Writes an error line (encoded here) and hangs up. */
static void conn_refuse(aconn *c, int err, const char *reason) {
  char *line = gv_rreq_enc_error(NULL, err, reason);
  if (line == NULL || conn_write(c, (uint8_t *)line, strlen(line)) < 0) {
    conn_close(c);
    return;
  }
  conn_hangup(c);
}

static aconn *lookup(const gv_agentsrv *s, gv_rconn id) {
  aconn *c;
  if (id == 0 || (c = s->slots[id & s->mask]) == NULL || c->id != id)
    return NULL;
  return c;
}

int gv_agentsrv_write(gv_agentsrv *s, gv_rconn conn, uint8_t *data,
                      size_t len) {
  aconn *c = lookup(s, conn);
  int rc;

  if (c == NULL || c->closing || c->hungup) {
    free(data);
    return GV_ESTATE;
  }
  if ((rc = conn_write(c, data, len)) == 0)
    s->st.lines_out++;
  return rc;
}

void gv_agentsrv_hangup(gv_agentsrv *s, gv_rconn conn) {
  aconn *c = lookup(s, conn);
  if (c != NULL)
    conn_hangup(c);
}

void gv_agentsrv_stats_get(const gv_agentsrv *s, gv_agentsrv_stats *st) {
  *st = s->st;
}

static void dispatch(aconn *c, const char *line, size_t len) {
  gv_agentsrv *s = c->srv;
  s->st.lines_in++;
  s->cbs.on_line(s->ctx, c->id, line, len);
}

/* Appends to the unfinished line; the caller checked the bound. */
static int append(aconn *c, const char *p, size_t n) {
  if (c->len + n > c->cap) {
    size_t cap = c->cap ? c->cap : READ_SLAB;
    char *b;
    while (cap < c->len + n)
      cap *= 2;
    if (cap > GV_RREQ_LINE_MAX)
      cap = GV_RREQ_LINE_MAX;
    if ((b = realloc(c->buf, cap)) == NULL)
      return GV_ENOMEM;
    c->buf = b;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, p, n);
  c->len += n;
  return 0;
}

/* Splits p[0..n) into lines, continuing the unfinished one. Whole lines
 * inside the read are handed over from the read buffer without a copy. */
static void feed(aconn *c, const char *p, size_t n) {
  gv_agentsrv *s = c->srv;

  while (n > 0 && !c->closing && !c->hungup) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl != NULL ? (size_t)(nl - p) : n;

    if (c->len + take > GV_RREQ_LINE_MAX) {
      s->st.toobig++;
      conn_refuse(c, GV_ETOOBIG,
                  "request line longer than 2097152 bytes; closing");
      return;
    }
    if (nl == NULL) {
      if (append(c, p, n) < 0)
        conn_close(c);
      return;
    }
    if (c->len == 0) {
      dispatch(c, p, take);
    } else {
      if (append(c, p, take) < 0) {
        conn_close(c);
        return;
      }
      dispatch(c, c->buf, c->len);
      c->len = 0;
      if (c->cap > READ_SLAB) { /* give a long line's memory back */
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
      }
    }
    p += take + 1;
    n -= take + 1;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  aconn *c = h->data;
  (void)hint;
  /* libuv calls on_read right after on_alloc: one slab serves all. */
  *buf = uv_buf_init(c->srv->slab, READ_SLAB);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  aconn *c = st->data;

  if (n == UV_EOF) /* the answers already queued still go out */
    conn_hangup(c);
  else if (n < 0)
    conn_close(c);
  else if (n > 0)
    feed(c, buf->base, (size_t)n);
}

static gv_rconn alloc_id(gv_agentsrv *s) {
  /* Terminates: fewer than half the slots are taken (cap <= slots / 2). */
  for (;;) {
    gv_rconn id = ++s->next_id;
    if (id != 0 && s->slots[id & s->mask] == NULL)
      return id;
  }
}

static void on_connection(uv_stream_t *server, int status) {
  gv_agentsrv *s = server->data;
  gv_why why = {""};
  uv_os_fd_t fd;
  aconn *c;

  /* Without an accept libuv stops listening until the next one: a failed
   * allocation stalls new clients rather than spinning. */
  if (status < 0 || s->closing || (c = calloc(1, sizeof(*c))) == NULL)
    return;
  c->srv = s;
  uv_pipe_init(s->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
  s->live++;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
    c->id = 0;
    s->refusing++; /* undone by on_conn_closed for id 0 */
    conn_close(c);
    return;
  }
  /* Only this node's user, or root, may talk to it (SO_PEERCRED). */
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
      gv_cli_check_client(fd, &why) < 0) {
    s->st.refused++;
    if (s->refusing++ >= REFUSING_MAX)
      conn_close(c);
    else
      conn_refuse(c, -EACCES,
                  why.text[0] ? why.text : "cannot tell who connected");
    return;
  }
  if (s->st.conns >= s->max_conns) {
    s->st.refused++;
    if (s->refusing++ >= REFUSING_MAX)
      conn_close(c);
    else
      conn_refuse(c, GV_ELIMIT, "too many connections to this node's relay");
    return;
  }
  c->id = alloc_id(s);
  s->slots[c->id & s->mask] = c;
  s->st.conns++;
  s->st.accepted++;
  s->cbs.on_open(s->ctx, c->id);
  if (!c->closing && !c->hungup &&
      uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
    conn_close(c);
}

/* Whether a live server answers on path. 0: nobody (stale file or none),
 * GV_EBUSY: someone does, else -errno with a reason. */
static int probe(const char *path, gv_why *why) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct stat sb;
  int fd, rc = 0;

  if (lstat(path, &sb) != 0)
    return errno == ENOENT ? 0
                           : gv_fail(why, -errno, "relay socket %s: %s", path,
                                     strerror(errno));
  if (!S_ISSOCK(sb.st_mode))
    return gv_fail(why, -EEXIST,
                   "relay socket %s: a file that is not a socket is in the "
                   "way; not replacing it",
                   path);
  /* A socket planted by another user is refused, not replaced. */
  if ((rc = gv_cli_check_owned(path, &sb, S_IFSOCK, geteuid(), false, why)) < 0)
    return rc;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return gv_fail(why, -errno, "relay socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
    rc = gv_fail(why, GV_EBUSY,
                 "relay socket %s is in use: another node is running on "
                 "this data directory",
                 path);
  else if (errno != ECONNREFUSED)
    rc = gv_fail(why, -errno, "relay socket %s: %s", path, strerror(errno));
  else if (unlink(path) != 0 && errno != ENOENT) /* stale: a dead node's */
    rc = gv_fail(why, -errno,
                 "relay socket %s: cannot remove the stale "
                 "file: %s",
                 path, strerror(errno));
  close(fd);
  return rc;
}

static void on_listener_closed(uv_handle_t *h) {
  gv_agentsrv *s = h->data;
  s->live--;
  maybe_free(s);
}

int gv_agentsrv_start(gv_agentsrv **out, uv_loop_t *loop, const char *path,
                      const gv_agentsrv_cbs *cbs, void *ctx,
                      const gv_agentsrv_opts *opts, gv_why *why) {
  struct sockaddr_un sa;
  gv_agentsrv *s;
  uint32_t n_slots = 2;
  mode_t old;
  int rc;

  *out = NULL;
  if (strlen(path) >= sizeof(sa.sun_path))
    return gv_fail(why, -ENAMETOOLONG,
                   "relay socket %s: a socket path holds at most %zu bytes",
                   path, sizeof(sa.sun_path) - 1);
  if ((rc = probe(path, why)) < 0)
    return rc;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return gv_fail(why, GV_ENOMEM, "relay socket: out of memory");
  s->loop = loop;
  s->cbs = *cbs;
  s->ctx = ctx;
  s->max_conns = opts != NULL && opts->max_conns != 0 ? opts->max_conns
                                                      : GV_AGENTSRV_MAX_CONNS;
  s->max_queued = opts != NULL && opts->max_queued != 0
                      ? opts->max_queued
                      : GV_AGENTSRV_MAX_QUEUED;
  if (s->max_queued > UINT32_MAX) /* a libuv buffer's length is unsigned */
    s->max_queued = UINT32_MAX;
  while (n_slots < 2 * (uint64_t)s->max_conns && n_slots < (1u << 30))
    n_slots *= 2;
  s->mask = n_slots - 1;
  if (s->max_conns > n_slots / 2 ||
      (s->slots = calloc(n_slots, sizeof(*s->slots))) == NULL ||
      (s->path = strdup(path)) == NULL) {
    free(s->slots);
    free(s);
    return gv_fail(why, GV_ENOMEM, "relay socket: out of memory");
  }
  uv_pipe_init(loop, &s->pipe, 0);
  s->pipe.data = s;
  s->live = 1;
  /* The umask makes the socket 0600 from its first moment. */
  old = umask(0177);
  rc = uv_pipe_bind(&s->pipe, path);
  umask(old);
  if (rc == 0 &&
      (rc = uv_listen((uv_stream_t *)&s->pipe, 4096, on_connection)) < 0)
    unlink(path); /* ours: bound a moment ago */
  if (rc < 0) {
    gv_fail(why, rc, "relay socket %s: %s", path, uv_strerror(rc));
    s->closing = true;
    uv_close((uv_handle_t *)&s->pipe, on_listener_closed);
    return rc;
  }
  *out = s;
  return 0;
}

void gv_agentsrv_close(gv_agentsrv *s) {
  if (s == NULL || s->closing)
    return;
  s->closing = true;
  for (aconn *c = s->conns; c != NULL; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&s->pipe, on_listener_closed);
  unlink(s->path);
}

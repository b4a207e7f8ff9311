/* An agent's client of relay.sock on a libuv loop (node/aclient.h). */
#include "aclient.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "relayaddr.h"
#include "relayreq.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define READ_CHUNK 65536
#define WHY_MAX 320

typedef enum ac_state { AC_DOWN, AC_CONNECTING, AC_GREETING, AC_UP } ac_state;

/* One connection attempt; outlives the client until its pipe is closed. */
typedef struct ac_conn {
  uv_pipe_t pipe;
  uv_connect_t req;
  gv_aclient *c; /* NULL once detached */
} ac_conn;

typedef struct pending {
  uint64_t n; /* the request's number: "req":"a<n>" */
  gv_aclient_answer_fn fn;
  void *arg;
} pending;

struct gv_aclient {
  uv_loop_t *loop;
  uv_timer_t timer; /* the backoff; its close frees the client */
  ac_conn *conn;    /* the attempt under way, NULL while DOWN */
  ac_state st;
  gv_aclient_cbs cbs;
  void *ctx;
  char *sock;
  char as[GV_RADDR_TEXT_MAX + 1];
  char node[GV_ID_HEX_LEN + 1];
  char session[2 * GV_RREQ_SESSION_BYTES + 1];
  char why[WHY_MAX]; /* the last reason told with on_state(false) */
  uint64_t backoff_ms;
  uint64_t next_req;
  pending *pend;
  size_t n_pend, cap_pend;
  char *buf; /* received, not yet taken */
  size_t len, cap;
  bool closing;
};

static void retry(uv_timer_t *t);

static void conn_closed(uv_handle_t *h) { free(h->data); }

static void timer_closed(uv_handle_t *h) {
  gv_aclient *c = h->data;
  free(c->pend);
  free(c->buf);
  free(c->sock);
  free(c);
}

/* Answers every waiting request with NULL, oldest first. A callback may
 * call gv_aclient_call (refused: not UP) or gv_aclient_close. */
static void fail_pending(gv_aclient *c) {
  while (c->n_pend > 0) {
    pending p = c->pend[0];
    memmove(c->pend, c->pend + 1, (c->n_pend - 1) * sizeof(*c->pend));
    c->n_pend--;
    p.fn(p.arg, NULL);
  }
}

static void tell(gv_aclient *c, bool up, const char *why) {
  if (c->cbs.on_state != NULL && !c->closing)
    c->cbs.on_state(c->ctx, up, why);
}

/* Ends the current attempt: closes it, fails what waits, tells the owner
 * (once per reason while not UP) and schedules the next attempt. */
static void drop(gv_aclient *c, const char *why) {
  bool was_up = c->st == AC_UP;

  if (c->conn != NULL) {
    c->conn->c = NULL;
    uv_close((uv_handle_t *)&c->conn->pipe, conn_closed);
    c->conn = NULL;
  }
  c->st = AC_DOWN;
  c->len = 0;
  fail_pending(c);
  if (was_up || strcmp(c->why, why) != 0) {
    snprintf(c->why, sizeof(c->why), "%s", why);
    tell(c, false, why);
  }
  if (c->closing)
    return;
  uv_timer_start(&c->timer, retry, c->backoff_ms, 0);
  c->backoff_ms *= 2;
  if (c->backoff_ms > BACKOFF_MAX_MS)
    c->backoff_ms = BACKOFF_MAX_MS;
}

static void written(uv_write_t *w, int status) {
  (void)status; /* a broken connection shows on the read side */
  free(w);
}

int gv_aclient_write_json(uv_stream_t *s, cJSON *o, uv_write_cb cb,
                          void *data) {
  char *txt = cJSON_PrintUnformatted(o);
  size_t len;
  uv_write_t *w;
  uv_buf_t b;
  int rc;

  cJSON_Delete(o);
  if (txt == NULL)
    return UV_ENOMEM;
  len = strlen(txt);
  if ((w = malloc(sizeof(*w) + len + 1)) == NULL) {
    free(txt);
    return UV_ENOMEM;
  }
  memcpy(w + 1, txt, len);
  ((char *)(w + 1))[len] = '\n';
  free(txt);
  w->data = data;
  b = uv_buf_init((char *)(w + 1), (unsigned)len + 1);
  if ((rc = uv_write(w, s, &b, 1, cb)) < 0)
    free(w);
  return rc;
}

static int write_line(gv_aclient *c, cJSON *o) {
  return gv_aclient_write_json((uv_stream_t *)&c->conn->pipe, o, written, NULL);
}

const char *gv_aclient_str(const cJSON *o, const char *key) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
  return s != NULL ? s : "";
}

static void on_hello(gv_aclient *c, const cJSON *a) {
  char why[WHY_MAX];

  if (!cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"))) {
    snprintf(why, sizeof(why), "the node refused %s: %s: %s", c->as,
             gv_aclient_str(a, "error"), gv_aclient_str(a, "reason"));
    drop(c, why);
    return;
  }
  snprintf(c->node, sizeof(c->node), "%s", gv_aclient_str(a, "node"));
  snprintf(c->session, sizeof(c->session), "%s", gv_aclient_str(a, "session"));
  c->st = AC_UP;
  c->backoff_ms = BACKOFF_MIN_MS;
  c->why[0] = '\0';
  tell(c, true, NULL);
}

static void on_answer(gv_aclient *c, const cJSON *a) {
  const char *req = gv_aclient_str(a, "req");
  char *end;
  uint64_t n;

  if (req[0] != 'a')
    return; /* not ours: ignored */
  n = strtoull(req + 1, &end, 10);
  for (size_t i = 0; *end == '\0' && i < c->n_pend; i++)
    if (c->pend[i].n == n) {
      pending p = c->pend[i];
      memmove(c->pend + i, c->pend + i + 1,
              (c->n_pend - i - 1) * sizeof(*c->pend));
      c->n_pend--;
      p.fn(p.arg, a);
      return;
    }
}

/* Takes the complete lines of the buffer while the attempt lasts. */
static void take_lines(gv_aclient *c, ac_conn *k) {
  char *nl;

  while (c->conn == k && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
    size_t n = (size_t)(nl - c->buf);
    cJSON *o = cJSON_ParseWithLength(c->buf, n);

    c->len -= n + 1;
    memmove(c->buf, nl + 1, c->len);
    if (!cJSON_IsObject(o)) {
      cJSON_Delete(o);
      drop(c, "the node sent a line that is not one JSON object");
      return;
    }
    if (c->st == AC_GREETING)
      on_hello(c, o);
    else if (cJSON_GetObjectItem(o, "event") != NULL) {
      if (c->cbs.on_event != NULL && !c->closing)
        c->cbs.on_event(c->ctx, o);
    } else
      on_answer(c, o);
    cJSON_Delete(o);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  ac_conn *k = h->data;
  gv_aclient *c = k->c;
  char *p;

  (void)hint;
  *b = uv_buf_init(NULL, 0); /* UV_ENOBUFS */
  if (c == NULL)
    return;
  if (c->cap - c->len < READ_CHUNK) {
    if (c->cap > GV_RREQ_ANSWER_MAX ||
        (p = realloc(c->buf, c->cap + READ_CHUNK)) == NULL)
      return; /* a line past the limit */
    c->buf = p;
    c->cap += READ_CHUNK;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  ac_conn *k = s->data;
  gv_aclient *c = k->c;
  char why[WHY_MAX];

  (void)b;
  if (c == NULL || n == 0)
    return;
  if (n < 0) {
    if (n == UV_EOF)
      snprintf(why, sizeof(why), "the node closed the connection");
    else if (n == UV_ENOBUFS)
      snprintf(why, sizeof(why), "the node sent a line longer than %d bytes",
               GV_RREQ_ANSWER_MAX);
    else
      snprintf(why, sizeof(why), "%s: %s", c->sock, uv_strerror((int)n));
    drop(c, why);
    return;
  }
  c->len += (size_t)n;
  take_lines(c, k);
}

static void on_connect(uv_connect_t *req, int status) {
  ac_conn *k = req->data;
  gv_aclient *c = k->c;
  char why[WHY_MAX];
  gv_why refusal = {""};
  cJSON *o;
  int rc;

  if (c == NULL)
    return; /* detached: its pipe is being closed */
  if (status == UV_ENOENT || status == UV_ECONNREFUSED) {
    snprintf(why, sizeof(why), "no node is running: nothing answers on %s",
             c->sock);
    drop(c, why);
    return;
  }
  if (status < 0) {
    snprintf(why, sizeof(why), "%s: %s", c->sock, uv_strerror(status));
    drop(c, why);
    return;
  }
  /* Before a byte is sent: the socket and the server must be the node's
   * user's, the owner of its directory (docs/NODE.md). */
  if (gv_cli_check_node(&k->pipe, c->sock, &refusal) < 0) {
    snprintf(why, sizeof(why), "%s",
             refusal.text[0] ? refusal.text : "cannot check the node's socket");
    drop(c, why);
    return;
  }
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "hello");
  cJSON_AddStringToObject(o, "as", c->as);
  if (c->session[0] != '\0')
    cJSON_AddStringToObject(o, "resume", c->session);
  c->st = AC_GREETING;
  if ((rc = write_line(c, o)) < 0 ||
      (rc = uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read)) < 0) {
    snprintf(why, sizeof(why), "%s: %s", c->sock, uv_strerror(rc));
    drop(c, why);
  }
}

static void connect_now(gv_aclient *c) {
  ac_conn *k = calloc(1, sizeof(*k));
  char why[WHY_MAX];
  int rc;

  if (k == NULL || (rc = uv_pipe_init(c->loop, &k->pipe, 0)) < 0) {
    free(k);
    snprintf(why, sizeof(why), "out of memory");
    drop(c, why);
    return;
  }
  k->c = c;
  k->pipe.data = k->req.data = k;
  c->conn = k;
  c->st = AC_CONNECTING;
  uv_pipe_connect(&k->req, &k->pipe, c->sock, on_connect);
}

static void retry(uv_timer_t *t) { connect_now(t->data); }

int gv_aclient_start(gv_aclient **out, uv_loop_t *loop, const char *sock_path,
                     const char *as, const gv_aclient_cbs *cbs, void *ctx) {
  gv_aclient *c = calloc(1, sizeof(*c));

  if (c == NULL || (c->sock = strdup(sock_path)) == NULL) {
    free(c);
    return GV_ENOMEM;
  }
  if (strlen(as) >= sizeof(c->as)) {
    free(c->sock);
    free(c);
    return GV_EINVAL;
  }
  memcpy(c->as, as, strlen(as) + 1);
  c->loop = loop;
  c->cbs = *cbs;
  c->ctx = ctx;
  c->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  connect_now(c);
  *out = c;
  return 0;
}

int gv_aclient_call(gv_aclient *c, cJSON *req, gv_aclient_answer_fn fn,
                    void *arg) {
  char id[24];

  if (c->st != AC_UP || c->closing) {
    cJSON_Delete(req);
    return GV_ESTATE;
  }
  if (c->n_pend == c->cap_pend) {
    size_t cap = c->cap_pend ? 2 * c->cap_pend : 16;
    pending *p = realloc(c->pend, cap * sizeof(*p));
    if (p == NULL) {
      cJSON_Delete(req);
      return GV_ENOMEM;
    }
    c->pend = p;
    c->cap_pend = cap;
  }
  snprintf(id, sizeof(id), "a%llu", (unsigned long long)++c->next_req);
  cJSON_DeleteItemFromObject(req, "req");
  cJSON_AddStringToObject(req, "req", id);
  if (write_line(c, req) < 0)
    return GV_ESTATE; /* the read side sees the broken connection */
  c->pend[c->n_pend++] = (pending){c->next_req, fn, arg};
  return 0;
}

bool gv_aclient_up(const gv_aclient *c) { return c->st == AC_UP; }

const char *gv_aclient_as(const gv_aclient *c) { return c->as; }

const char *gv_aclient_node(const gv_aclient *c) {
  return c->st == AC_UP ? c->node : "";
}

void gv_aclient_close(gv_aclient *c) {
  if (c == NULL || c->closing)
    return;
  c->closing = true;
  uv_timer_stop(&c->timer);
  drop(c, "closed");
  uv_close((uv_handle_t *)&c->timer, timer_closed);
}

int gv_aclient_name(const char *flag, const char *fallback, char *out,
                    size_t cap, gv_why *why) {
  gv_raddr_name n;
  char cwd[PATH_MAX];
  const char *env = getenv("GRAPEVINE_AS");

  if (flag != NULL)
    snprintf(out, cap, "%s", flag);
  else if (env != NULL && *env)
    snprintf(out, cap, "%s", env);
  else if (getcwd(cwd, sizeof(cwd)) != NULL)
    snprintf(out, cap, "%s:%s", basename(cwd), fallback);
  else
    snprintf(out, cap, "%s:%s", fallback, fallback);
  if (gv_raddr_name_parse(&n, out, strlen(out), why) < 0)
    return GV_EFIELD;
  return 0;
}

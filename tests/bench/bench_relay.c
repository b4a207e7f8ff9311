/* bench_relay: 1 KiB durable messages, one producer -> one consumer, over
 * three systems measured in the same run (issue 9, "Benchmark"):
 *   mosquitto, persistence on, QoS 1 both ways (libmosquitto clients);
 *   nats-server JetStream, file store, publish with a reply subject (the
 *     server answers once the message is stored) and a push consumer with
 *     explicit acks (a minimal client of the NATS text protocol, below);
 *   ours: agent A on one grapevine node sends over relay.sock to agent B on
 *     another node (docs/RELAY.md §7); B is pushed `message` events and
 *     acks them.
 * tests/bench/bench_relay.sh starts the servers and nodes and runs this.
 *
 * Each system runs two phases: throughput (a window of requests waiting for
 * their "stored" acknowledgement, unpaced) and latency (paced at a fixed
 * rate). "Stored" is the mosquitto PUBACK, the JetStream publish ack, and
 * our `stored` state event; "delivered" is the consumer's receipt. Times
 * are taken in this process on CLOCK_MONOTONIC from the write of the
 * request. Never fails for being slow: a phase that runs past its time
 * limit reports what it reached.
 *
 *   bench_relay (--mqtt HOST:PORT | --mqtt-na REASON)
 *               (--nats HOST:PORT | --nats-na REASON)
 *               (--ours SOCK_A SOCK_B TO | --ours-na REASON)
 * A system given a REASON instead of an address prints
 * "not available (REASON)"; TO is B's full address project:name@NODE.
 *
 * Environment: RELAY_BENCH_COUNT (throughput messages, 20000),
 * RELAY_BENCH_WINDOW (256), RELAY_BENCH_RATE (msg/s, 10000),
 * RELAY_BENCH_LAT_SECONDS (length of the paced phase, 2),
 * RELAY_BENCH_PHASE_SECONDS (time limit of each phase, 6). Each setup
 * exchange is bounded by SETUP_S, so a default run ends within 60 s. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bench.h"

#define PAYLOAD 1024
#define SEQ_DIGITS 15          /* the payload starts with the sequence number */
#define LINE_MAX_IN (4u << 20) /* bound of one buffered input */
#define OUT_MAX (64u << 20)    /* bound of one output buffer */
#define SETUP_S 5.0            /* bound of each setup exchange */

/* ---- what a run records ---- */

typedef struct figs {
  bool ok;
  char why[256];     /* when !ok: the reason, shown instead of figures */
  double tput_store; /* msg/s, phase 1 */
  double tput_deliv;
  int tp_n, tp_stored, tp_deliv; /* asked, reached */
  double p50, p99, d50, d99;     /* ms at the paced rate */
  double a50, a99;               /* ours only: accepted -> stored, ms */
  int lat_n, lat_stored, lat_deliv;
} figs;

/* One phase: messages base..base+n, their times (0 = not yet). */
typedef struct run {
  int base, n, window;
  double rate; /* 0: unpaced */
  double t0, deadline;
  double *t_send, *t_acc, *t_store, *t_recv; /* indexed by seq - base */
  int sent, stored, recvd, dup;
  char err[200]; /* a system's refusal ends the phase */
} run;

static int n_tp, win, lat_s_i;
static double rate, lat_s, phase_s;

static void failf(figs *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->why, sizeof(f->why), fmt, ap);
  va_end(ap);
  f->ok = false;
}

static void run_errf(run *r, const char *fmt, ...) {
  va_list ap;
  if (r->err[0])
    return;
  va_start(ap, fmt);
  vsnprintf(r->err, sizeof(r->err), fmt, ap);
  va_end(ap);
}

/* The payload of message seq: its number, a space, then filler. */
static void payload_of(int seq, char *p) {
  snprintf(p, SEQ_DIGITS + 2, "%0*d ", SEQ_DIGITS, seq);
  memset(p + SEQ_DIGITS + 1, 'x', PAYLOAD - SEQ_DIGITS - 1);
}

/* The sequence number a payload carries, -1 if none. */
static int seq_of(const char *p, size_t len) {
  int v = 0;
  if (len < SEQ_DIGITS + 1 || p[SEQ_DIGITS] != ' ')
    return -1;
  for (int i = 0; i < SEQ_DIGITS; i++) {
    if (p[i] < '0' || p[i] > '9' || v > 100000000)
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

static void mark(run *r, double *t, int seq, int *count) {
  int i = seq - r->base;
  if (i < 0 || i >= r->n)
    return; /* an earlier phase's straggler */
  if (t[i] != 0) {
    r->dup++;
    return;
  }
  t[i] = bench_now_s();
  (*count)++;
}

/* ---- percentiles and the phase loop ---- */

static double pct(double *v, int n, double p) {
  if (n == 0)
    return -1;
  qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

/* p50 and p99 of to - from over the messages that reached both, in ms. */
static void lat(const run *r, const double *from, const double *to, double *p50,
                double *p99) {
  double *v = malloc(sizeof(*v) * (size_t)(r->n ? r->n : 1));
  int k = 0;
  if (v == NULL)
    exit(1);
  for (int i = 0; i < r->n; i++)
    if (from[i] != 0 && to[i] != 0)
      v[k++] = (to[i] - from[i]) * 1e3;
  *p50 = pct(v, k, 0.50);
  *p99 = pct(v, k, 0.99);
  free(v);
}

/* What each system provides to the phase loop. */
typedef struct sys_ops {
  /* Writes (or queues) message seq; 0, or -1 with r->err set. */
  int (*send)(void *ctx, run *r, int seq);
  /* Waits at most timeout_s for I/O and handles what arrived; 0 or -1. */
  int (*pump)(void *ctx, run *r, double timeout_s);
} sys_ops;

static void run_init(run *r, int base, int n, int window, double pace) {
  memset(r, 0, sizeof(*r));
  r->base = base, r->n = n, r->window = window, r->rate = pace;
  r->t_send = calloc((size_t)n, sizeof(double));
  r->t_acc = calloc((size_t)n, sizeof(double));
  r->t_store = calloc((size_t)n, sizeof(double));
  r->t_recv = calloc((size_t)n, sizeof(double));
  if (!r->t_send || !r->t_acc || !r->t_store || !r->t_recv)
    exit(1);
}

static void run_free(run *r) {
  free(r->t_send), free(r->t_acc), free(r->t_store), free(r->t_recv);
}

/* Sends r->n messages within the window (and at r->rate if set) until every
 * one is stored and received, or the deadline. Returns 0, or -1 on a
 * system's error (r->err). */
static int run_phase(const sys_ops *ops, void *ctx, run *r) {
  r->t0 = bench_now_s();
  r->deadline = r->t0 + phase_s;
  for (;;) {
    double now = bench_now_s(), wait = 0.05;
    if ((r->stored >= r->n && r->recvd >= r->n) || now >= r->deadline)
      return 0;
    while (r->sent < r->n && r->sent - r->stored < r->window) {
      if (r->rate > 0 && r->sent >= (now - r->t0) * r->rate) {
        wait = r->t0 + (r->sent + 1) / r->rate - now;
        break;
      }
      r->t_send[r->sent] = bench_now_s();
      if (ops->send(ctx, r, r->base + r->sent) < 0)
        return -1;
      r->sent++;
      now = bench_now_s();
    }
    if (ops->pump(ctx, r, wait > 0 ? wait : 0) < 0 || r->err[0])
      return -1;
  }
}

/* Runs both phases of one system into f. */
static void measure(const sys_ops *ops, void *ctx, figs *f, bool accepted) {
  run r;
  double el;

  run_init(&r, 0, n_tp, win, 0);
  if (run_phase(ops, ctx, &r) < 0) {
    failf(f, "throughput phase: %s", r.err);
    run_free(&r);
    return;
  }
  el = 0;
  for (int i = 0; i < r.n; i++)
    el = r.t_store[i] > el ? r.t_store[i] : el;
  f->tp_n = r.n, f->tp_stored = r.stored;
  f->tput_store = el > r.t0 ? r.stored / (el - r.t0) : 0;
  el = 0;
  for (int i = 0; i < r.n; i++)
    el = r.t_recv[i] > el ? r.t_recv[i] : el;
  f->tp_deliv = r.recvd;
  f->tput_deliv = el > r.t0 ? r.recvd / (el - r.t0) : 0;
  run_free(&r);

  run_init(&r, n_tp, lat_s_i, 1 << 30, rate);
  if (run_phase(ops, ctx, &r) < 0) {
    failf(f, "latency phase: %s", r.err);
    run_free(&r);
    return;
  }
  f->lat_n = r.n, f->lat_stored = r.stored, f->lat_deliv = r.recvd;
  lat(&r, r.t_send, r.t_store, &f->p50, &f->p99);
  lat(&r, r.t_send, r.t_recv, &f->d50, &f->d99);
  f->a50 = f->a99 = -1;
  if (accepted)
    lat(&r, r.t_acc, r.t_store, &f->a50, &f->a99);
  run_free(&r);
  f->ok = true;
}

/* ---- a non-blocking byte connection with bounded buffers ---- */

typedef struct bconn {
  int fd;
  char *in;
  size_t in_len, in_cap;
  char *out;
  size_t out_off, out_len, out_cap;
} bconn;

static int bc_connect(bconn *c, const char *hostport, const char *unix_path,
                      char *why, size_t whylen) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  if (unix_path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(unix_path) >= sizeof(sa.sun_path)) {
      snprintf(why, whylen, "%s: path too long", unix_path);
      return -1;
    }
    strcpy(sa.sun_path, unix_path);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
      goto fail;
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    const char *colon = strrchr(hostport, ':');
    int one = 1;
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
      snprintf(why, whylen, "%s: want HOST:PORT", hostport);
      return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
      snprintf(why, whylen, "%s: not an IPv4 address", host);
      return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
      goto fail;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  c->in_cap = 1 << 16;
  c->in = malloc(c->in_cap);
  if (c->in == NULL)
    exit(1);
  return 0;
fail:
  snprintf(why, whylen, "connect %s: %s", unix_path ? unix_path : hostport,
           strerror(errno));
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  return -1;
}

static void bc_close(bconn *c) {
  if (c->fd >= 0)
    close(c->fd);
  free(c->in), free(c->out);
  memset(c, 0, sizeof(*c));
  c->fd = -1;
}

/* Appends len bytes to the output; -1 past OUT_MAX. */
static int bc_put(bconn *c, const void *p, size_t len) {
  if (c->out_off > 0 && c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1 << 16;
    if (c->out_off > 0) {
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off, c->out_off = 0;
    }
    while (cap < c->out_len + len)
      cap *= 2;
    if (cap > OUT_MAX)
      return -1;
    if (cap > c->out_cap) {
      char *n = realloc(c->out, cap);
      if (n == NULL)
        exit(1);
      c->out = n, c->out_cap = cap;
    }
  }
  memcpy(c->out + c->out_len, p, len);
  c->out_len += len;
  return 0;
}

/* Writes what it can; -1 on a closed or broken connection. */
static int bc_flush(bconn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    c->out_off += (size_t)w;
  }
  return 0;
}

/* Reads what is there; 1 if bytes came, 0 if none, -1 on EOF, error or a
 * buffer past LINE_MAX_IN. */
static int bc_fill(bconn *c) {
  int got = 0;
  for (;;) {
    if (c->in_len == c->in_cap) {
      if (c->in_cap >= LINE_MAX_IN)
        return -1;
      char *n = realloc(c->in, c->in_cap * 2);
      if (n == NULL)
        exit(1);
      c->in = n, c->in_cap *= 2;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r == 0)
      return -1;
    if (r < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? got : -1;
    c->in_len += (size_t)r;
    got = 1;
  }
}

static void bc_consume(bconn *c, size_t n) {
  memmove(c->in, c->in + n, c->in_len - n);
  c->in_len -= n;
}

/* Polls conns for at most timeout_s; for each readable one calls on_read;
 * flushes every output. Returns 0, or -1 when a connection broke. */
static int bc_pump(bconn **cs, int n, double timeout_s,
                   int (*on_read)(void *ctx, bconn *c), void *ctx) {
  struct pollfd pf[4];
  struct timespec ts = {(time_t)timeout_s,
                        (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
  for (int i = 0; i < n; i++) {
    if (bc_flush(cs[i]) < 0)
      return -1;
    pf[i].fd = cs[i]->fd;
    pf[i].events =
        (short)(POLLIN | (cs[i]->out_off < cs[i]->out_len ? POLLOUT : 0));
  }
  if (ppoll(pf, (nfds_t)n, &ts, NULL) < 0)
    return errno == EINTR ? 0 : -1;
  for (int i = 0; i < n; i++) {
    if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
      if (bc_fill(cs[i]) < 0 || on_read(ctx, cs[i]) < 0)
        return -1;
    if (bc_flush(cs[i]) < 0)
      return -1;
  }
  return 0;
}

/* ---- mosquitto (libmosquitto, MQTT 3.1.1, QoS 1) ---- */

#define MQTT_TOPIC "bench/relay"

typedef struct mq {
  struct mosquitto *pub, *sub;
  int mid_seq[65536]; /* a publish's message id -> its seq */
  bool connected[2], subscribed;
  run *r;
} mq;

static void mq_on_connect(struct mosquitto *m, void *obj, int rc) {
  mq *q = obj;
  if (rc == 0)
    q->connected[m == q->sub] = true;
}

static void mq_on_subscribe(struct mosquitto *m, void *obj, int mid, int n,
                            const int *granted) {
  (void)m, (void)mid;
  ((mq *)obj)->subscribed = n == 1 && granted[0] == 1;
}

static void mq_on_publish(struct mosquitto *m, void *obj, int mid) {
  mq *q = obj;
  (void)m;
  if (q->r)
    mark(q->r, q->r->t_store, q->mid_seq[mid & 0xffff], &q->r->stored);
}

static void mq_on_message(struct mosquitto *m, void *obj,
                          const struct mosquitto_message *msg) {
  mq *q = obj;
  int seq = seq_of(msg->payload, (size_t)msg->payloadlen);
  (void)m;
  if (q->r && seq >= 0)
    mark(q->r, q->r->t_recv, seq, &q->r->recvd);
}

static int mq_send(void *ctx, run *r, int seq) {
  mq *q = ctx;
  char p[PAYLOAD];
  int mid, rc;
  payload_of(seq, p);
  rc = mosquitto_publish(q->pub, &mid, MQTT_TOPIC, PAYLOAD, p, 1, false);
  if (rc != MOSQ_ERR_SUCCESS) {
    run_errf(r, "mosquitto_publish: %s", mosquitto_strerror(rc));
    return -1;
  }
  q->mid_seq[mid & 0xffff] = seq;
  return 0;
}

static int mq_pump(void *ctx, run *r, double timeout_s) {
  mq *q = ctx;
  struct mosquitto *ms[2] = {q->pub, q->sub};
  struct pollfd pf[2];
  struct timespec ts = {(time_t)timeout_s,
                        (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
  int rc;
  q->r = r;
  for (int i = 0; i < 2; i++) {
    pf[i].fd = mosquitto_socket(ms[i]);
    pf[i].events =
        (short)(POLLIN | (mosquitto_want_write(ms[i]) ? POLLOUT : 0));
  }
  if (ppoll(pf, 2, &ts, NULL) < 0 && errno != EINTR)
    return -1;
  for (int i = 0; i < 2; i++) {
    if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
        (rc = mosquitto_loop_read(ms[i], 1)) != MOSQ_ERR_SUCCESS)
      goto err;
    if (mosquitto_want_write(ms[i]) &&
        (rc = mosquitto_loop_write(ms[i], 1)) != MOSQ_ERR_SUCCESS)
      goto err;
    if ((rc = mosquitto_loop_misc(ms[i])) != MOSQ_ERR_SUCCESS)
      goto err;
  }
  return 0;
err:
  run_errf(r, "libmosquitto: %s", mosquitto_strerror(rc));
  return -1;
}

static const sys_ops mq_ops = {mq_send, mq_pump};

static void bench_mqtt(const char *hostport, figs *f) {
  mq *q = calloc(1, sizeof(*q));
  char host[64];
  const char *colon = strrchr(hostport, ':');
  double end;
  int rc;

  if (q == NULL)
    exit(1);
  if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
    failf(f, "%s: want HOST:PORT", hostport);
    goto out;
  }
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  /* The subscriber keeps its session (clean_session false): what the broker
   * holds for it is held durably, like an agent's inbox. */
  q->pub = mosquitto_new("gv-bench-pub", true, q);
  q->sub = mosquitto_new("gv-bench-sub", false, q);
  if (!q->pub || !q->sub) {
    failf(f, "mosquitto_new failed");
    goto out;
  }
  for (int i = 0; i < 2; i++) {
    struct mosquitto *m = i ? q->sub : q->pub;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, win);
    mosquitto_connect_callback_set(m, mq_on_connect);
    mosquitto_publish_callback_set(m, mq_on_publish);
    mosquitto_message_callback_set(m, mq_on_message);
    mosquitto_subscribe_callback_set(m, mq_on_subscribe);
    if ((rc = mosquitto_connect(m, host, atoi(colon + 1), 60)) !=
        MOSQ_ERR_SUCCESS) {
      failf(f, "connect %s: %s", hostport, mosquitto_strerror(rc));
      goto out;
    }
  }
  end = bench_now_s() + SETUP_S;
  while (!(q->connected[0] && q->connected[1]) && bench_now_s() < end)
    for (int i = 0; i < 2; i++)
      mosquitto_loop(i ? q->sub : q->pub, 10, 1);
  if (!(q->connected[0] && q->connected[1])) {
    failf(f, "no CONNACK from %s", hostport);
    goto out;
  }
  mosquitto_subscribe(q->sub, NULL, MQTT_TOPIC, 1);
  while (!q->subscribed && bench_now_s() < end)
    mosquitto_loop(q->sub, 10, 1);
  if (!q->subscribed) {
    failf(f, "no SUBACK with QoS 1 from %s", hostport);
    goto out;
  }
  measure(&mq_ops, q, f, false);
out:
  if (q->pub)
    mosquitto_disconnect(q->pub), mosquitto_destroy(q->pub);
  if (q->sub)
    mosquitto_disconnect(q->sub), mosquitto_destroy(q->sub);
  free(q);
}

/* ---- nats-server JetStream: a minimal client of the text protocol ---- */

#define NATS_CTL_MAX 4096       /* one control line */
#define NATS_PAYLOAD_MAX 65536u /* what this client accepts in a MSG */
#define NATS_STREAM "GVBENCH"
#define NATS_SUBJ "gvbench.in"
#define NATS_DELIVER "gvbench.dlv"
#define NATS_ACKS "_INBOX.gvbench.ack."
#define NATS_API "_INBOX.gvbench.api"

typedef struct nats {
  bconn pub, sub;
  run *r;
  char api_reply[1024]; /* the last API answer, NUL-terminated */
  bool api_got;
} nats;

/* Handles one MSG arriving on c: subscription sid (1: API answers on
 * either connection; 2: publish acks on pub, deliveries on sub, which keep
 * the subject they were published on), reply subject or "", payload. */
static int nats_msg(nats *n, bconn *c, const char *subj, const char *sid,
                    const char *reply, const char *p, size_t len) {
  if (strcmp(sid, "1") == 0) {
    snprintf(n->api_reply, sizeof(n->api_reply), "%.*s", (int)len, p);
    n->api_got = true;
    return 0;
  }
  if (n->r == NULL || strcmp(sid, "2") != 0)
    return 0;
  if (c == &n->pub) {
    /* A publish ack: {"stream":..,"seq":N} or {"error":{...}}. */
    if (memmem(p, len, "\"error\"", 7) != NULL ||
        strncmp(subj, NATS_ACKS, strlen(NATS_ACKS)) != 0) {
      run_errf(n->r, "JetStream refused a publish: %.*s", (int)len, p);
      return -1;
    }
    mark(n->r, n->r->t_store, atoi(subj + strlen(NATS_ACKS)), &n->r->stored);
    return 0;
  }
  int seq = seq_of(p, len);
  char ack[600];
  if (seq >= 0)
    mark(n->r, n->r->t_recv, seq, &n->r->recvd);
  if (*reply == '\0' || strlen(reply) > 512)
    return 0;
  snprintf(ack, sizeof(ack), "PUB %s 0\r\n\r\n", reply);
  return bc_put(c, ack, strlen(ack));
}

/* Parses every complete protocol line on c. -1 on -ERR or a bad frame. */
static int nats_read(void *ctx, bconn *c) {
  nats *n = ctx;
  size_t off = 0;
  for (;;) {
    char *buf = c->in + off, *eol;
    size_t avail = c->in_len - off;
    eol = memmem(buf, avail < NATS_CTL_MAX ? avail : NATS_CTL_MAX, "\r\n", 2);
    if (eol == NULL) {
      if (avail >= NATS_CTL_MAX)
        goto bad;
      break;
    }
    size_t ll = (size_t)(eol - buf);
    char line[NATS_CTL_MAX];
    memcpy(line, buf, ll);
    line[ll] = '\0';
    if (strncmp(line, "MSG ", 4) == 0) {
      char *tok[5], *save = NULL;
      int k = 0;
      for (char *t = strtok_r(line + 4, " ", &save); t && k < 5;
           t = strtok_r(NULL, " ", &save))
        tok[k++] = t;
      if (k != 3 && k != 4)
        goto bad;
      char *end;
      unsigned long len = strtoul(tok[k - 1], &end, 10);
      if (*end != '\0' || len > NATS_PAYLOAD_MAX)
        goto bad;
      if (avail < ll + 2 + len + 2)
        break; /* the payload is still coming */
      if (memcmp(buf + ll + 2 + len, "\r\n", 2) != 0)
        goto bad;
      if (nats_msg(n, c, tok[0], tok[1], k == 4 ? tok[2] : "", buf + ll + 2,
                   len) < 0)
        return -1;
      off += ll + 2 + len + 2;
      continue;
    }
    if (strcmp(line, "PING") == 0 && bc_put(c, "PONG\r\n", 6) < 0)
      return -1;
    if (strncmp(line, "-ERR", 4) == 0) {
      if (n->r)
        run_errf(n->r, "nats-server: %s", line);
      fprintf(stderr, "bench_relay: nats-server: %s\n", line);
      return -1;
    }
    off += ll + 2; /* INFO, +OK, PONG */
  }
  bc_consume(c, off);
  return 0;
bad:
  if (n->r)
    run_errf(n->r, "nats-server sent a frame this client does not take");
  return -1;
}

static int nats_pump(void *ctx, run *r, double timeout_s) {
  nats *n = ctx;
  bconn *cs[2] = {&n->pub, &n->sub};
  n->r = r;
  if (bc_pump(cs, 2, timeout_s, nats_read, n) < 0) {
    if (r)
      run_errf(r, "connection to nats-server lost");
    return -1;
  }
  return 0;
}

static int nats_send(void *ctx, run *r, int seq) {
  nats *n = ctx;
  char hdr[128], p[PAYLOAD];
  int hl = snprintf(hdr, sizeof(hdr),
                    "PUB " NATS_SUBJ " " NATS_ACKS "%d %d\r\n", seq, PAYLOAD);
  payload_of(seq, p);
  if (bc_put(&n->pub, hdr, (size_t)hl) < 0 || bc_put(&n->pub, p, PAYLOAD) < 0 ||
      bc_put(&n->pub, "\r\n", 2) < 0) {
    run_errf(r, "output to nats-server past %u bytes", OUT_MAX);
    return -1;
  }
  return 0;
}

static const sys_ops nats_ops = {nats_send, nats_pump};

/* A JetStream API request on c; 0 when answered without "error". */
static int nats_api(nats *n, bconn *c, const char *subj, const char *body,
                    figs *f) {
  char hdr[256];
  double end = bench_now_s() + SETUP_S;
  snprintf(hdr, sizeof(hdr), "PUB %s " NATS_API " %zu\r\n", subj, strlen(body));
  n->api_got = false;
  bc_put(c, hdr, strlen(hdr));
  bc_put(c, body, strlen(body));
  bc_put(c, "\r\n", 2);
  while (!n->api_got && bench_now_s() < end)
    if (nats_pump(n, NULL, 0.05) < 0) {
      failf(f, "connection to nats-server lost during %s", subj);
      return -1;
    }
  if (!n->api_got || strstr(n->api_reply, "\"error\"")) {
    failf(f, "%s: %s", subj, n->api_got ? n->api_reply : "no answer");
    return -1;
  }
  return 0;
}

static void bench_nats(const char *hostport, figs *f) {
  nats *n = calloc(1, sizeof(*n));
  static const char connect[] =
      "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,"
      "\"lang\":\"c\",\"version\":\"0\",\"protocol\":1}\r\n";
  char cfg[512];

  if (n == NULL)
    exit(1);
  n->pub.fd = n->sub.fd = -1;
  if (bc_connect(&n->pub, hostport, NULL, f->why, sizeof(f->why)) < 0 ||
      bc_connect(&n->sub, hostport, NULL, f->why, sizeof(f->why)) < 0)
    goto out;
  for (int i = 0; i < 2; i++) {
    bconn *c = i ? &n->sub : &n->pub;
    bc_put(c, connect, sizeof(connect) - 1);
    bc_put(c, "SUB " NATS_API " 1\r\n", strlen("SUB " NATS_API " 1\r\n"));
  }
  bc_put(&n->pub, "SUB " NATS_ACKS "* 2\r\n",
         strlen("SUB " NATS_ACKS "* 2\r\n"));
  bc_put(&n->sub, "SUB " NATS_DELIVER " 2\r\n",
         strlen("SUB " NATS_DELIVER " 2\r\n"));
  if (nats_api(n, &n->pub, "$JS.API.STREAM.CREATE." NATS_STREAM,
               "{\"name\":\"" NATS_STREAM "\",\"subjects\":[\"" NATS_SUBJ
               "\"],\"storage\":\"file\",\"num_replicas\":1}",
               f) < 0)
    goto out;
  snprintf(cfg, sizeof(cfg),
           "{\"stream_name\":\"" NATS_STREAM "\",\"config\":{"
           "\"durable_name\":\"C\",\"deliver_subject\":\"" NATS_DELIVER "\","
           "\"ack_policy\":\"explicit\",\"deliver_policy\":\"all\","
           "\"max_ack_pending\":%d}}",
           n_tp + lat_s_i);
  if (nats_api(n, &n->sub, "$JS.API.CONSUMER.DURABLE.CREATE." NATS_STREAM ".C",
               cfg, f) < 0)
    goto out;
  measure(&nats_ops, n, f, false);
out:
  bc_close(&n->pub);
  bc_close(&n->sub);
  free(n);
}

/* ---- ours: two agents over relay.sock (docs/RELAY.md §7) ---- */

typedef struct idslot {
  char id[33];
  int seq;        /* -1 until the send's answer names it */
  double t_early; /* a `stored` seen before the answer */
} idslot;

typedef struct relay {
  bconn a, b;
  const char *to;
  run *r;
  idslot *ids; /* open addressing by id */
  size_t ids_cap;
  char *acks; /* B's pending ack line being built */
  size_t n_acks;
  cJSON *answer;   /* the last answer to a setup request on a */
  char b_err[256]; /* B's refusal, if any */
  char body[PAYLOAD + 1];
} relay;

static idslot *id_slot(relay *o, const char *id) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = id; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  for (size_t i = h & (o->ids_cap - 1);; i = (i + 1) & (o->ids_cap - 1)) {
    if (o->ids[i].id[0] == '\0') {
      snprintf(o->ids[i].id, sizeof(o->ids[i].id), "%s", id);
      o->ids[i].seq = -1;
      return &o->ids[i];
    }
    if (strcmp(o->ids[i].id, id) == 0)
      return &o->ids[i];
  }
}

static bool is_id(const cJSON *v) {
  return cJSON_IsString(v) && strlen(v->valuestring) == 32;
}

/* One line from A: a send's answer, a state event, or a setup answer. */
static int relay_line_a(relay *o, cJSON *j) {
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "req");
  run *r = o->r;

  if (cJSON_IsString(ev)) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "state");
    if (!r || !is_id(id) || !cJSON_IsString(st))
      return 0;
    if (strcmp(st->valuestring, "failed") == 0) {
      const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "reason");
      run_errf(r, "message %s failed: %s", id->valuestring,
               cJSON_IsString(why) ? why->valuestring : "?");
      return -1;
    }
    if (strcmp(st->valuestring, "stored") == 0) {
      idslot *s = id_slot(o, id->valuestring);
      if (s->seq >= 0)
        mark(r, r->t_store, s->seq, &r->stored);
      else if (s->t_early == 0)
        s->t_early = bench_now_s();
    }
    return 0;
  }
  if (r && cJSON_IsString(req) && req->valuestring[0] == 's') {
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    int seq = atoi(req->valuestring + 1);
    if (!cJSON_IsTrue(ok) || !is_id(id)) {
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
      const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "reason");
      run_errf(r, "send: %s (%s)", cJSON_IsString(e) ? e->valuestring : "?",
               cJSON_IsString(why) ? why->valuestring : "no reason");
      return -1;
    }
    idslot *s = id_slot(o, id->valuestring);
    s->seq = seq;
    mark(r, r->t_acc, seq, &(int){0});
    if (s->t_early != 0) { /* `stored` came first: keep its time */
      mark(r, r->t_store, seq, &r->stored);
      if (seq - r->base >= 0 && seq - r->base < r->n)
        r->t_store[seq - r->base] = s->t_early;
    }
    return 0;
  }
  cJSON_Delete(o->answer);
  o->answer = cJSON_Duplicate(j, true);
  return 0;
}

/* One line from B: a pushed message (queued for an ack), else an answer. */
static int relay_line_b(relay *o, cJSON *j) {
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
  const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
  char item[40];

  if (cJSON_IsBool(ok) && !cJSON_IsTrue(ok)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "reason");
    snprintf(o->b_err, sizeof(o->b_err), "agent B was refused: %s (%s)",
             cJSON_IsString(e) ? e->valuestring : "?",
             cJSON_IsString(why) ? why->valuestring : "no reason");
    if (o->r)
      run_errf(o->r, "%s", o->b_err);
    return -1;
  }
  if (!cJSON_IsString(ev) || strcmp(ev->valuestring, "message") != 0 ||
      !is_id(id))
    return 0;
  if (o->r && cJSON_IsString(body))
    mark(o->r, o->r->t_recv,
         seq_of(body->valuestring, strlen(body->valuestring)), &o->r->recvd);
  snprintf(item, sizeof(item), "%s\"%s\"", o->n_acks ? "," : "",
           id->valuestring);
  strcat(o->acks, item);
  o->n_acks++;
  return 0;
}

/* Sends B's queued acks as one request. */
static int relay_flush_acks(relay *o) {
  if (o->n_acks == 0)
    return 0;
  strcat(o->acks, "],\"req\":\"k\"}\n");
  if (bc_put(&o->b, o->acks, strlen(o->acks)) < 0)
    return -1;
  strcpy(o->acks, "{\"cmd\":\"ack\",\"ids\":[");
  o->n_acks = 0;
  return 0;
}

static int relay_read(void *ctx, bconn *c) {
  relay *o = ctx;
  size_t off = 0;
  char *nl;
  while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
    cJSON *j = cJSON_ParseWithLength(c->in + off, (size_t)(nl - c->in - off));
    int rc = 0;
    if (j == NULL || !cJSON_IsObject(j)) {
      if (o->r)
        run_errf(o->r, "the node sent a line that is not a JSON object");
      cJSON_Delete(j);
      return -1;
    }
    rc = c == &o->a ? relay_line_a(o, j) : relay_line_b(o, j);
    cJSON_Delete(j);
    if (rc < 0)
      return -1;
    off = (size_t)(nl - c->in) + 1;
    if (c == &o->b && o->n_acks >= 1000 && relay_flush_acks(o) < 0)
      return -1;
  }
  bc_consume(c, off);
  return c == &o->b ? relay_flush_acks(o) : 0;
}

static int relay_pump(void *ctx, run *r, double timeout_s) {
  relay *o = ctx;
  bconn *cs[2] = {&o->a, &o->b};
  o->r = r;
  if (bc_pump(cs, 2, timeout_s, relay_read, o) < 0) {
    if (r)
      run_errf(r, "relay.sock connection lost");
    return -1;
  }
  return 0;
}

static int relay_send(void *ctx, run *r, int seq) {
  relay *o = ctx;
  char head[512];
  int hl = snprintf(head, sizeof(head),
                    "{\"cmd\":\"send\",\"to\":\"%s\",\"req\":\"s%d\","
                    "\"message\":\"",
                    o->to, seq);
  payload_of(seq, o->body);
  if (bc_put(&o->a, head, (size_t)hl) < 0 ||
      bc_put(&o->a, o->body, PAYLOAD) < 0 || bc_put(&o->a, "\"}\n", 3) < 0) {
    run_errf(r, "output to relay.sock past %u bytes", OUT_MAX);
    return -1;
  }
  return 0;
}

static const sys_ops relay_ops = {relay_send, relay_pump};

/* Sends a setup request on c and waits for an answer that is ok; for
 * requests on B the answer is an `ok` line seen by relay_line_b. */
static cJSON *relay_ask(relay *o, bconn *c, const char *line, figs *f) {
  double end = bench_now_s() + SETUP_S;
  cJSON_Delete(o->answer);
  o->answer = NULL;
  bc_put(c, line, strlen(line));
  while (o->answer == NULL && bench_now_s() < end)
    if (relay_pump(o, NULL, 0.05) < 0) {
      failf(f, "%s", o->b_err[0] ? o->b_err : "relay.sock connection lost");
      return NULL;
    }
  if (o->answer == NULL) {
    failf(f, "no answer on relay.sock to %.40s", line);
    return NULL;
  }
  const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o->answer, "ok");
  if (!cJSON_IsTrue(ok)) {
    char *s = cJSON_PrintUnformatted(o->answer);
    failf(f, "%.40s: %s", line, s ? s : "?");
    free(s);
    return NULL;
  }
  return o->answer;
}

/* True when A's team directory lists the address o->to. */
static bool relay_sees_b(relay *o, figs *f) {
  const cJSON *ans = relay_ask(o, &o->a, "{\"cmd\":\"agents\"}\n", f), *ag;
  if (ans == NULL)
    return false;
  cJSON_ArrayForEach(ag, cJSON_GetObjectItemCaseSensitive(ans, "agents")) {
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(ag, "address");
    if (cJSON_IsString(addr) && strcmp(addr->valuestring, o->to) == 0)
      return true;
  }
  return false;
}

static void bench_ours(const char *sock_a, const char *sock_b, const char *to,
                       figs *f) {
  relay *o = calloc(1, sizeof(*o));
  double end;
  bool seen = false;

  if (o == NULL)
    exit(1);
  o->to = to;
  o->a.fd = o->b.fd = -1;
  o->ids_cap = 1;
  while (o->ids_cap < 2u * (size_t)(n_tp + lat_s_i))
    o->ids_cap *= 2;
  o->ids = calloc(o->ids_cap, sizeof(*o->ids));
  o->acks = malloc(1000 * 40 + 64);
  if (o->ids == NULL || o->acks == NULL)
    exit(1);
  strcpy(o->acks, "{\"cmd\":\"ack\",\"ids\":[");
  if (bc_connect(&o->b, NULL, sock_b, f->why, sizeof(f->why)) < 0 ||
      bc_connect(&o->a, NULL, sock_a, f->why, sizeof(f->why)) < 0)
    goto out;
  /* B registers first, so that A's directory can learn it. B's answers
   * are read by relay_line_b; a refusal ends the run there. */
  bc_put(&o->b, "{\"cmd\":\"hello\",\"as\":\"bench:b\",\"req\":\"h\"}\n",
         strlen("{\"cmd\":\"hello\",\"as\":\"bench:b\",\"req\":\"h\"}\n"));
  if (!relay_ask(o, &o->a, "{\"cmd\":\"hello\",\"as\":\"bench:a\"}\n", f) ||
      !relay_ask(o, &o->a, "{\"cmd\":\"subscribe\"}\n", f))
    goto out;
  end = bench_now_s() + SETUP_S;
  while (!(seen = relay_sees_b(o, f)) && f->why[0] == '\0' &&
         bench_now_s() < end)
    usleep(100 * 1000);
  if (!seen) {
    if (f->why[0] == '\0')
      failf(f, "A's directory does not list %s after %.0f s", to, SETUP_S);
    goto out;
  }
  measure(&relay_ops, o, f, true);
out:
  cJSON_Delete(o->answer);
  bc_close(&o->a);
  bc_close(&o->b);
  free(o->ids);
  free(o->acks);
  free(o);
}

/* ---- the table ---- */

static void cell(double v, int width) {
  if (v < 0)
    printf(" %*s", width, "-");
  else
    printf(" %*.*f", width, v >= 100 ? 0 : 2, v);
}

static void ratio(double ours, const figs *o, double anchor, const figs *a) {
  if (!o->ok || !a->ok || ours <= 0 || anchor <= 0)
    printf(" %9s", "-");
  else
    printf(" %9.2f", ours / anchor);
}

static void row(const char *name, const figs *f, size_t off) {
  const figs *o = &f[0], *m = &f[1], *n = &f[2];
#define AT(x) (x->ok ? *(const double *)((const char *)x + off) : -1)
  printf("%-38s", name);
  cell(AT(o), 10), cell(AT(m), 10), cell(AT(n), 10);
  ratio(AT(o), o, AT(m), m);
  ratio(AT(o), o, AT(n), n);
  printf("\n");
#undef AT
}

static void reached(const char *name, const figs *f) {
  if (!f->ok) {
    printf("  %-10s not available (%s)\n", name, f->why);
    return;
  }
  printf("  %-10s throughput: %d/%d stored, %d/%d delivered; paced: %d/%d "
         "stored, %d/%d delivered\n",
         name, f->tp_stored, f->tp_n, f->tp_deliv, f->tp_n, f->lat_stored,
         f->lat_n, f->lat_deliv, f->lat_n);
}

int main(int argc, char **argv) {
  const char *mqtt = NULL, *nats_at = NULL, *sa = NULL, *sb = NULL, *to = NULL,
             *na = NULL, *mqtt_na = NULL, *nats_na = NULL;
  figs f[3] = {0}; /* ours, mosquitto, nats */

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--mqtt") == 0 && i + 1 < argc)
      mqtt = argv[++i];
    else if (strcmp(argv[i], "--nats") == 0 && i + 1 < argc)
      nats_at = argv[++i];
    else if (strcmp(argv[i], "--ours") == 0 && i + 3 < argc)
      sa = argv[i + 1], sb = argv[i + 2], to = argv[i + 3], i += 3;
    else if (strcmp(argv[i], "--ours-na") == 0 && i + 1 < argc)
      na = argv[++i];
    else if (strcmp(argv[i], "--mqtt-na") == 0 && i + 1 < argc)
      mqtt_na = argv[++i];
    else if (strcmp(argv[i], "--nats-na") == 0 && i + 1 < argc)
      nats_na = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_relay (--mqtt HOST:PORT | --mqtt-na REASON) "
              "(--nats HOST:PORT | --nats-na REASON) "
              "(--ours SOCK_A SOCK_B TO | --ours-na REASON)\n");
      return 2;
    }
  }
  if ((!mqtt && !mqtt_na) || (!nats_at && !nats_na) || (!sa && !na)) {
    fprintf(stderr, "bench_relay: each system needs an address or a "
                    "reason it is not available\n");
    return 2;
  }
  n_tp = (int)bench_env("RELAY_BENCH_COUNT", 20000, 100, 1e7);
  win = (int)bench_env("RELAY_BENCH_WINDOW", 256, 1, 65535);
  rate = bench_env("RELAY_BENCH_RATE", 10000, 1, 1e7);
  lat_s = bench_env("RELAY_BENCH_LAT_SECONDS", 2, 0.1, 600);
  phase_s = bench_env("RELAY_BENCH_PHASE_SECONDS", 6, 0.5, 3600);
  lat_s_i = (int)(rate * lat_s) > 0 ? (int)(rate * lat_s) : 1;

  mosquitto_lib_init();
  if (mqtt)
    bench_mqtt(mqtt, &f[1]);
  else
    failf(&f[1], "%s", mqtt_na);
  if (nats_at)
    bench_nats(nats_at, &f[2]);
  else
    failf(&f[2], "%s", nats_na);
  if (sa)
    bench_ours(sa, sb, to, &f[0]);
  else
    failf(&f[0], "%s", na);
  mosquitto_lib_cleanup();

  printf("%-38s %10s %10s %10s %9s %9s\n", "figure (1 KiB, durable)", "ours",
         "mosquitto", "nats-js", "ours/mq", "ours/nats");
  row("throughput to stored (msg/s)", f, offsetof(figs, tput_store));
  row("throughput to delivered (msg/s)", f, offsetof(figs, tput_deliv));
  char name[64];
  snprintf(name, sizeof(name), "p50 send->stored @%.0f/s (ms)", rate);
  row(name, f, offsetof(figs, p50));
  snprintf(name, sizeof(name), "p99 send->stored @%.0f/s (ms)", rate);
  row(name, f, offsetof(figs, p99));
  snprintf(name, sizeof(name), "p50 send->delivered @%.0f/s (ms)", rate);
  row(name, f, offsetof(figs, d50));
  snprintf(name, sizeof(name), "p99 send->delivered @%.0f/s (ms)", rate);
  row(name, f, offsetof(figs, d99));
  if (f[0].ok)
    printf("ours, accepted->stored @%.0f/s: p50 %.2f ms, p99 %.2f ms\n", rate,
           f[0].a50, f[0].a99);
  printf("ratios: throughput > 1 and latency < 1 favour ours\n");
  printf("reached (of asked), window %d, %d msgs then %.1f s paced, "
         "phase limit %.0f s:\n",
         win, n_tp, lat_s, phase_s);
  reached("ours", &f[0]);
  reached("mosquitto", &f[1]);
  reached("nats-js", &f[2]);
  return 0;
}

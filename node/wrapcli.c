/* grapevine wrap: runs an agent CLI in a pseudo-terminal and relays for it
 * (docs/AGENTS.md §11). The adapter around the pure core node/wrap.h: it
 * owns the pty, the person's terminal, the relay connection (node/aclient.h)
 * and the clock, feeds the core what happens and carries out its actions.
 *
 *   person's terminal (raw)          pty master              agent CLI
 *     stdin  --gv_wrap_input()--> PTY actions --write--> slave (its tty)
 *     stdout <------ copied unchanged <---- read ------------+
 *                          \--gv_wrap_output()--> SEND actions --> relay
 *   relay events --gv_wrap_message()/notice()--> PTY actions, ACK, READ
 *
 * Acknowledged means written to the agent's terminal: an ACK or READ the
 * core asks for waits (held, in order) until the bytes queued before it
 * are written, and the core starts no injection while bytes wait
 * (gv_wrap_blocked). Once the terminal is gone (the master reads EOF, a
 * write to it fails, or the agent exits) the core is told (gv_wrap_gone),
 * the ACKs and READs held are dropped, and pushed messages are left with
 * the node: it pushes them again to the next run.
 *
 * Life of a run:
 *
 *   START --forkpty+exec--> RUNNING --SIGCHLD--> DRAINING --EOF/grace-->
 *   FLUSHING (stdout written, relay requests answered, 2 s at most) -->
 *   CLOSED (handles closed, terminal restored, exit with the agent's code)
 *
 *   SIGTERM/SIGHUP/SIGINT to the wrapper: terminal restored, the signal
 *   passed on to the agent, the wrapper dies of it.
 *
 * Nothing is written to the person's screen but the agent's output while
 * the agent runs; diagnostics go to <data-dir>/wrap-<project>-<name>.log.
 * Exit status: the agent's (128+N if a signal N killed it); 127 if COMMAND
 * cannot be run; 1 if the wrapper cannot start; 2 a usage error.
 *
 * The master is read with uv_poll and read(2), not a libuv stream: a
 * stream takes POLLHUP with a partial read for EOF and may drop the
 * agent's last output (libuv issue #4992); read(2) on a master returns what
 * is buffered and then EIO.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pty.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include "aclient.h"
#include "cli.h"
#include "log.h"
#include "relayaddr.h"
#include "wrap.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOEXEC 127
#define READ_CHUNK 65536
#define READS_PER_WAKE 16      /* master reads per poll callback */
#define OUT_HIGH (1u << 20)    /* stdout backlog that pauses the agent */
#define MASTER_MAX (16u << 20) /* bytes waiting for the agent's tty */
#define JOBS_MAX 1024          /* relay requests waiting */
#define GRACE_MS 1000          /* silence after the agent's exit */
#define FLUSH_MS 2000          /* relay requests' last chance */
#define SENT_RING 64           /* recent sends, to name a failure */
#define DURATION_MAX_MS 600000 /* --quiet and --typing: 10 min at most */

/* The person's terminal settings, for the one restore that must also work
 * from a signal: process-wide because a terminal is. */
static struct termios saved_tio;
static volatile sig_atomic_t raw_on;

static void restore_terminal(void) {
  if (raw_on) {
    tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
    raw_on = 0;
  }
}

typedef enum job_kind { JOB_SEND, JOB_ACK, JOB_READ } job_kind;

/* A relay request waiting to be answered; sent one at a time, in order,
 * and sent again after a reconnect (a send carries its idempotency key, an
 * ack or read is idempotent), so nothing the core asked for is lost while
 * the node is away. */
typedef struct job {
  struct job *next;
  job_kind kind;
  cJSON *req;
  char *to; /* SEND: the address, for notices */
} job;

typedef union stdio_h {
  uv_handle_t h;
  uv_stream_t s;
  uv_tty_t tty;
  uv_pipe_t pipe;
} stdio_h;

typedef struct wrapper {
  uv_loop_t loop;
  gv_wrap *core;
  gv_aclient *ac;
  gv_log log;
  char as[GV_RADDR_TEXT_MAX + 1];

  pid_t child;
  int status; /* waitpid's, once child_done */
  bool child_done;
  int master;
  uv_poll_t mpoll;
  int mevents; /* UV_READABLE | UV_WRITABLE asked of mpoll */
  bool master_eof, paused;
  bool gone;    /* the agent's terminal is gone: nothing reaches the agent */
  bool blocked; /* what the core was last told: mq is not empty */
  uint8_t rbuf[READ_CHUNK]; /* the agent's output, one read at a time */
  char ibuf[4096];          /* the person's input, one read at a time */
  uint8_t *mq;              /* for the agent's tty, not yet written */
  size_t mq_len, mq_cap;

  stdio_h in, out;
  bool in_open, out_stream, out_dead;
  size_t out_pending; /* uv_write requests not yet called back */

  uv_signal_t sig[5];
  uv_timer_t tick, grace, flush;
  bool grace_over, flush_started, flush_over, closing;

  job *head, *tail;
  size_t njobs;
  job *held, *held_tail; /* ACKs and READs waiting for mq to be written */
  bool inflight;
  bool was_up, told_down;
  struct {
    char id[GV_WRAP_ID_HEX + 1];
    char to[GV_RADDR_TEXT_MAX + 1];
  } sent[SENT_RING];
  size_t sent_next;
} wrapper;

static int64_t now_ms(void) { return (int64_t)(uv_hrtime() / 1000000); }

static void maybe_finish(wrapper *w);
static void pump(wrapper *w);
static void master_poll(wrapper *w);
static void tick_cb(uv_timer_t *t);
static void grace_cb(uv_timer_t *t);

static bool relay_up(const wrapper *w) {
  return w->ac != NULL && gv_aclient_up(w->ac);
}

/* ---- the person's screen ---- */

static void out_written(uv_write_t *req, int status) {
  wrapper *w = req->data;
  free(req);
  w->out_pending--;
  if (status < 0 && !w->out_dead) {
    gv_logf(&w->log, GV_LOG_WARN, "standard output: %s; output is dropped",
            uv_strerror(status));
    w->out_dead = true;
  }
  if (w->paused && uv_stream_get_write_queue_size(&w->out.s) < OUT_HIGH / 2) {
    w->paused = false;
    w->mevents |= UV_READABLE;
    master_poll(w);
  }
  maybe_finish(w);
}

/* Copies the agent's bytes to standard output, unchanged. */
static void out_write(wrapper *w, const uint8_t *b, size_t n) {
  if (w->out_dead)
    return;
  if (!w->out_stream) { /* a file or /dev/null: never blocks for long */
    while (n > 0) {
      ssize_t r = write(STDOUT_FILENO, b, n);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        gv_logf(&w->log, GV_LOG_WARN, "standard output: %s; output dropped",
                strerror(errno));
        w->out_dead = true;
        return;
      }
      b += r;
      n -= (size_t)r;
    }
    return;
  }
  uv_write_t *req = malloc(sizeof(*req) + n);
  uv_buf_t buf;
  if (req == NULL) {
    gv_logf(&w->log, GV_LOG_ERROR, "out of memory; %zu bytes of output lost",
            n);
    return;
  }
  memcpy(req + 1, b, n);
  req->data = w;
  buf = uv_buf_init((char *)(req + 1), (unsigned)n);
  if (uv_write(req, &w->out.s, &buf, 1, out_written) < 0) {
    free(req);
    w->out_dead = true;
    return;
  }
  w->out_pending++;
}

/* ---- the agent's terminal ---- */

static void master_cb(uv_poll_t *p, int status, int events);
static void release_held(wrapper *w);
static void job_free(struct job *j);

/* Tells the core whether bytes for the agent wait (no injection starts
 * while they do); the caller pumps the actions this may bring. */
static void set_blocked(wrapper *w) {
  bool blocked = w->mq_len > 0;
  if (blocked != w->blocked) {
    w->blocked = blocked;
    gv_wrap_blocked(w->core, blocked, now_ms());
  }
}

/* The agent's terminal is gone: whatever was queued for it, and the ACKs
 * and READs waiting for that, go nowhere; the messages they name stay
 * unacknowledged with the node, which pushes them to the next run. */
static void set_gone(wrapper *w, const char *why) {
  size_t n = 0;
  if (w->gone)
    return;
  w->gone = true;
  w->mq_len = 0;
  for (job *j = w->held, *next; j != NULL; j = next, n++) {
    next = j->next;
    job_free(j);
  }
  w->held = w->held_tail = NULL;
  gv_logf(&w->log, GV_LOG_INFO,
          "the agent's terminal is gone (%s): nothing more is typed in; "
          "%zu acks and reads not sent",
          why, n);
  gv_wrap_gone(w->core, now_ms());
}

static void master_poll(wrapper *w) {
  if (w->master_eof)
    return;
  if (w->mevents == 0)
    uv_poll_stop(&w->mpoll);
  else
    uv_poll_start(&w->mpoll, w->mevents, master_cb);
}

/* Writes what can be written of the queue to the agent's terminal;
 * returns 0, or -errno when the write failed (the terminal is gone). */
static int master_flush(wrapper *w) {
  int rc = 0;
  while (w->mq_len > 0 && !w->gone) {
    ssize_t r = write(w->master, w->mq, w->mq_len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) { /* EIO: no one holds the terminal; its input goes nowhere */
      rc = r < 0 ? -errno : -EIO;
      set_gone(w, r < 0 ? strerror(errno) : "a write took nothing");
      break;
    }
    memmove(w->mq, w->mq + r, w->mq_len - (size_t)r);
    w->mq_len -= (size_t)r;
  }
  w->mevents = (w->mevents & ~UV_WRITABLE) | (w->mq_len > 0 ? UV_WRITABLE : 0);
  master_poll(w);
  if (w->mq_len == 0)
    release_held(w);
  set_blocked(w);
  return rc;
}

/* Queues b[0..n) for the agent's terminal and writes what it takes now.
 * Returns 0; GV_EBUSY when MASTER_MAX bytes already wait (only the
 * person's keystrokes can meet that: no injection starts while bytes
 * wait), GV_ENOMEM, or -errno when the terminal is gone. The bytes are
 * dropped on any error. */
static int master_write(wrapper *w, const uint8_t *b, size_t n) {
  if (w->gone)
    return -EIO;
  if (w->mq_len + n > MASTER_MAX) {
    gv_logf(&w->log, GV_LOG_ERROR,
            "the agent reads no input: %zu bytes for it dropped", n);
    return GV_EBUSY;
  }
  if (w->mq_len + n > w->mq_cap) {
    size_t cap = w->mq_cap ? w->mq_cap : 4096;
    uint8_t *q;
    while (cap < w->mq_len + n)
      cap *= 2;
    if ((q = realloc(w->mq, cap)) == NULL) {
      gv_logf(&w->log, GV_LOG_ERROR, "out of memory: %zu input bytes lost", n);
      return GV_ENOMEM;
    }
    w->mq = q;
    w->mq_cap = cap;
  }
  memcpy(w->mq + w->mq_len, b, n);
  w->mq_len += n;
  return master_flush(w);
}

static void master_cb(uv_poll_t *p, int status, int events) {
  wrapper *w = p->data;
  uint8_t *buf = w->rbuf;

  if (status < 0) {
    gv_logf(&w->log, GV_LOG_WARN, "the agent's terminal: %s",
            uv_strerror(status));
    events = UV_READABLE; /* read(2) says what happened */
  }
  if (events & UV_WRITABLE)
    master_flush(w);
  if (!(events & UV_READABLE) || w->paused) {
    pump(w); /* the queue drained: an injection may start */
    return;
  }
  for (int i = 0; i < READS_PER_WAKE && !w->paused; i++) {
    ssize_t n = read(w->master, buf, sizeof(w->rbuf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) { /* EIO: every slave closed, all output read */
      w->master_eof = true;
      uv_poll_stop(&w->mpoll);
      set_gone(w, "it reads end of file");
      pump(w);
      maybe_finish(w);
      return;
    }
    out_write(w, buf, (size_t)n);
    gv_wrap_output(w->core, buf, (size_t)n, now_ms());
    if (w->out_stream && uv_stream_get_write_queue_size(&w->out.s) > OUT_HIGH) {
      w->paused = true; /* the screen is slower than the agent */
      w->mevents &= ~UV_READABLE;
      master_poll(w);
    }
  }
  if (w->child_done)
    uv_timer_again(&w->grace); /* still talking: more grace */
  pump(w);
}

/* ---- the relay ---- */

static void notice(wrapper *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void notice(wrapper *w, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  gv_logf(&w->log, GV_LOG_INFO, "notice: %s", text);
  gv_wrap_notice(w->core, text, now_ms());
}

static void job_free(job *j) {
  cJSON_Delete(j->req);
  free(j->to);
  free(j);
}

static void flush_jobs(wrapper *w);

static void remember_sent(wrapper *w, const char *id, const char *to) {
  size_t i = w->sent_next++ % SENT_RING;
  snprintf(w->sent[i].id, sizeof(w->sent[i].id), "%s", id);
  snprintf(w->sent[i].to, sizeof(w->sent[i].to), "%s", to);
}

static const char *sent_to(const wrapper *w, const char *id) {
  for (size_t i = 0; i < SENT_RING; i++)
    if (strcmp(w->sent[i].id, id) == 0)
      return w->sent[i].to;
  return NULL;
}

/* The answer to the head job; NULL: the connection dropped first, and the
 * job is sent again once the node is back. */
static void job_answered(void *arg, const cJSON *a) {
  wrapper *w = arg;
  job *j = w->head;
  const cJSON *sent, *it;

  w->inflight = false;
  if (a == NULL || j == NULL) {
    maybe_finish(w);
    return;
  }
  w->head = j->next;
  if (w->head == NULL)
    w->tail = NULL;
  w->njobs--;
  if (!cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"))) {
    if (j->kind == JOB_SEND)
      notice(w, "message to %s failed: %s: %s", j->to,
             gv_aclient_str(a, "error"), gv_aclient_str(a, "reason"));
    else
      gv_logf(&w->log, GV_LOG_WARN, "%s refused: %s: %s",
              j->kind == JOB_ACK ? "ack" : "read", gv_aclient_str(a, "error"),
              gv_aclient_str(a, "reason"));
  } else if (j->kind == JOB_SEND) {
    sent = cJSON_GetObjectItem(a, "sent");
    if (!cJSON_IsArray(sent))
      sent = NULL;
    if (sent == NULL) {
      gv_logf(&w->log, GV_LOG_INFO, "sent %s %s -> %s", gv_aclient_str(a, "id"),
              gv_aclient_str(a, "state"), gv_aclient_str(a, "to"));
      remember_sent(w, gv_aclient_str(a, "id"), gv_aclient_str(a, "to"));
    }
    cJSON_ArrayForEach(it, sent) {
      gv_logf(&w->log, GV_LOG_INFO, "sent %s %s -> %s",
              gv_aclient_str(it, "id"), gv_aclient_str(it, "state"),
              gv_aclient_str(it, "to"));
      remember_sent(w, gv_aclient_str(it, "id"), gv_aclient_str(it, "to"));
    }
  } else {
    gv_logf(&w->log, GV_LOG_DEBUG, "%s done",
            j->kind == JOB_ACK ? "ack" : "read");
  }
  job_free(j);
  pump(w); /* a notice above may be injectable now */
  flush_jobs(w);
  maybe_finish(w);
}

/* Sends the head job if the node is up and nothing is waiting. */
static void flush_jobs(wrapper *w) {
  cJSON *req;
  if (w->inflight || w->head == NULL || w->closing || !relay_up(w))
    return;
  if ((req = cJSON_Duplicate(w->head->req, true)) == NULL)
    return;
  if (gv_aclient_call(w->ac, req, job_answered, w) == 0)
    w->inflight = true;
}

/* Queues a request (taken) for the node. An ACK or READ waits, in order
 * behind those already waiting, until the bytes queued before it reached
 * the agent's terminal: acknowledged means written, and the node hears an
 * id's ACK before its READ. */
static void job_add(wrapper *w, job_kind kind, cJSON *req, const char *to) {
  job *j;
  if (w->njobs >= JOBS_MAX || (j = calloc(1, sizeof(*j))) == NULL) {
    if (kind == JOB_SEND)
      notice(w,
             "message to %s not sent: %zu requests already wait for the "
             "node",
             to, w->njobs);
    else
      gv_logf(&w->log, GV_LOG_WARN, "%s dropped: %zu requests wait",
              kind == JOB_ACK ? "ack" : "read", w->njobs);
    cJSON_Delete(req);
    return;
  }
  j->kind = kind;
  j->req = req;
  if (to != NULL)
    j->to = strdup(to);
  if (kind != JOB_SEND && (w->mq_len > 0 || w->held != NULL)) {
    if (w->held_tail != NULL)
      w->held_tail->next = j;
    else
      w->held = j;
    w->held_tail = j;
    return;
  }
  if (w->tail != NULL)
    w->tail->next = j;
  else
    w->head = j;
  w->tail = j;
  w->njobs++;
  flush_jobs(w);
}

/* The agent's terminal took everything queued: the ACKs and READs held
 * go out. */
static void release_held(wrapper *w) {
  if (w->held == NULL)
    return;
  if (w->tail != NULL)
    w->tail->next = w->held;
  else
    w->head = w->held;
  w->tail = w->held_tail;
  for (job *j = w->held; j != NULL; j = j->next)
    w->njobs++;
  w->held = w->held_tail = NULL;
  flush_jobs(w);
}

static cJSON *ids_req(const char *cmd, const char *id) {
  cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray();
  cJSON_AddStringToObject(o, "cmd", cmd);
  cJSON_AddItemToArray(ids, cJSON_CreateString(id));
  cJSON_AddItemToObject(o, "ids", ids);
  return o;
}

/* Carries out the core's actions, then arms the one timer at its
 * deadline. */
static void pump(wrapper *w) {
  const gv_wrap_act *a;
  int64_t d;
  int rc;

  while ((a = gv_wrap_next(w->core)) != NULL) {
    switch (a->type) {
    case GV_WRAP_PTY:
      /* Past MASTER_MAX only keystrokes are dropped (no injection starts
       * while bytes wait); any other failure is the end of the terminal,
       * and the core withdraws the injection's Enter and ACK. */
      rc = master_write(w, a->bytes, a->len);
      if (rc < 0 && rc != GV_EBUSY)
        set_gone(w, gv_strerror(rc));
      break;
    case GV_WRAP_SEND: {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "cmd", "send");
      cJSON_AddStringToObject(o, "to", a->to);
      cJSON_AddStringToObject(o, "message", a->body);
      if (a->thread != NULL && *a->thread)
        cJSON_AddStringToObject(o, "thread", a->thread);
      cJSON_AddStringToObject(o, "key", a->key);
      gv_logf(&w->log, GV_LOG_INFO, "the agent sends %zu bytes to %s",
              strlen(a->body), a->to);
      job_add(w, JOB_SEND, o, a->to);
      break;
    }
    case GV_WRAP_ACK:
      gv_logf(&w->log, GV_LOG_INFO, "delivered %s", a->id);
      job_add(w, JOB_ACK, ids_req("ack", a->id), NULL);
      break;
    case GV_WRAP_READ:
      gv_logf(&w->log, GV_LOG_INFO, "read %s", a->id);
      job_add(w, JOB_READ, ids_req("read", a->id), NULL);
      break;
    }
  }
  if (w->closing)
    return;
  d = gv_wrap_deadline(w->core);
  if (d < 0) {
    uv_timer_stop(&w->tick);
  } else {
    int64_t now = now_ms();
    uv_timer_start(&w->tick, tick_cb, d > now ? (uint64_t)(d - now) : 0, 0);
  }
}

static void subscribed(void *arg, const cJSON *a) {
  wrapper *w = arg;
  if (a != NULL && !cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")))
    gv_logf(&w->log, GV_LOG_WARN, "subscribe refused: %s: %s",
            gv_aclient_str(a, "error"), gv_aclient_str(a, "reason"));
}

static void on_state(void *ctx, bool up, const char *why) {
  wrapper *w = ctx;
  if (up) {
    gv_logf(&w->log, GV_LOG_INFO, "relay up as %s on node %.12s", w->as,
            gv_aclient_node(w->ac));
    if (w->told_down)
      notice(w, "the relay node is back; messages flow again");
    w->told_down = false;
    w->was_up = true;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cmd", "subscribe");
    gv_aclient_call(w->ac, o, subscribed, w);
    flush_jobs(w);
  } else {
    gv_logf(&w->log, GV_LOG_WARN, "relay down: %s", why);
    if (w->was_up && !w->told_down) {
      notice(w,
             "the relay node is down (%s); messages wait until it is "
             "back",
             why);
      w->told_down = true;
    }
    maybe_finish(w);
  }
  pump(w);
}

static void on_event(void *ctx, const cJSON *ev) {
  wrapper *w = ctx;
  const char *kind = gv_aclient_str(ev, "event"),
             *id = gv_aclient_str(ev, "id");

  if (strcmp(kind, "message") == 0 && w->gone) {
    gv_logf(&w->log, GV_LOG_INFO,
            "message %s left with the node: the agent's terminal is gone", id);
  } else if (strcmp(kind, "message") == 0) {
    int rc = gv_wrap_message(w->core, id, gv_aclient_str(ev, "from"),
                             gv_aclient_str(ev, "thread"),
                             gv_aclient_str(ev, "body"), now_ms());
    if (rc == GV_EBUSY)
      gv_logf(&w->log, GV_LOG_WARN,
              "message %s left with the node: %zu already wait", id,
              gv_wrap_queued(w->core));
    else if (rc < 0)
      gv_logf(&w->log, GV_LOG_WARN, "message %s refused: %s", id,
              gv_strerror(rc));
    else
      gv_logf(&w->log, GV_LOG_INFO, "message %s from %s queued", id,
              gv_aclient_str(ev, "from"));
  } else if (strcmp(kind, "state") == 0) {
    const char *st = gv_aclient_str(ev, "state"), *to = sent_to(w, id);
    gv_logf(&w->log, GV_LOG_INFO, "message %s: %s %s", id, st,
            gv_aclient_str(ev, "reason"));
    if (strcmp(st, "failed") == 0)
      notice(w, "message %.8s to %s failed: %s", id, to ? to : "?",
             gv_aclient_str(ev, "reason"));
  }
  pump(w);
}

/* ---- signals, timers, the end ---- */

static void tick_cb(uv_timer_t *t) {
  wrapper *w = t->data;
  gv_wrap_tick(w->core, now_ms());
  pump(w);
}

static void check_child(wrapper *w) {
  int st;
  if (w->child_done || waitpid(w->child, &st, WNOHANG) != w->child)
    return;
  w->child_done = true;
  w->status = st;
  gv_logf(&w->log, GV_LOG_INFO, "the agent exited (status 0x%x)", st);
  set_gone(w, "the agent exited");
  pump(w);
  uv_timer_start(&w->grace, grace_cb, GRACE_MS, GRACE_MS);
  maybe_finish(w);
}

static void grace_cb(uv_timer_t *t) {
  wrapper *w = t->data;
  if (w->paused)
    return; /* the screen holds us up, not the agent: wait on */
  uv_timer_stop(t);
  w->grace_over = true;
  maybe_finish(w);
}

static void flush_cb(uv_timer_t *t) {
  wrapper *w = t->data;
  w->flush_over = true;
  maybe_finish(w);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Ends the run once the agent is gone, its output is on the screen and
 * the relay requests are answered (or the node is away, or time is up). */
static void maybe_finish(wrapper *w) {
  if (w->closing || !w->child_done || (!w->master_eof && !w->grace_over) ||
      w->out_pending > 0)
    return;
  if (w->head != NULL && relay_up(w) && !w->flush_over) {
    if (!w->flush_started) {
      w->flush_started = true;
      uv_timer_start(&w->flush, flush_cb, FLUSH_MS, 0);
    }
    return;
  }
  if (w->head != NULL)
    gv_logf(&w->log, GV_LOG_WARN, "%zu relay requests left unanswered",
            w->njobs);
  w->closing = true;
  restore_terminal();
  if (w->ac != NULL)
    gv_aclient_close(w->ac);
  w->ac = NULL;
  uv_walk(&w->loop, close_walk, NULL);
}

static void signal_cb(uv_signal_t *s, int signum) {
  wrapper *w = s->data;
  struct winsize ws;

  switch (signum) {
  case SIGCHLD: check_child(w); break;
  case SIGWINCH:
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
      ioctl(w->master, TIOCSWINSZ, &ws); /* the kernel tells the agent */
    break;
  default: /* SIGTERM, SIGHUP, SIGINT */
    restore_terminal();
    gv_logf(&w->log, GV_LOG_INFO, "%s: passed on to the agent; exiting",
            strsignal(signum));
    kill(w->child, signum);
    signal(signum, SIG_DFL);
    raise(signum);
    _exit(128 + signum);
  }
}

/* ---- start-up ---- */

static const char wrap_usage[] =
    "[--as project:name] [--data-dir DIR] [--quiet D] [--typing D]\n"
    "       -- COMMAND [ARGS...]";

static void wrap_help(void) {
  printf(
      "usage: grapevine wrap %s\n\n"
      "Runs COMMAND (an agent CLI) in a pseudo-terminal and relays for it.\n"
      "You see its screen and type into it as usual. Lines it prints that\n"
      "start with '->relay:TO message', or '->relay:TO <<<' ... '>>>'\n"
      "blocks, are sent to TO (any address form of 'grapevine send'); not\n"
      "inside ``` fences, and not when written '\\->relay:'. Messages for it\n"
      "are typed in as one line, 'Relay message from SENDER [id8]: body',\n"
      "when it is idle and you are not typing.\n\n"
      "  --as P:N        relay as this agent (default: $GRAPEVINE_AS, else\n"
      "                  <basename of the working directory>:<COMMAND's "
      "name>)\n"
      "  --data-dir DIR  the node's data directory (default: "
      "$GRAPEVINE_DIR,\n"
      "                  else $XDG_DATA_HOME/grapevine); the wrapper logs to\n"
      "                  DIR/wrap-<project>-<name>.log\n"
      "  --quiet D       the agent is idle after D without output "
      "(default 1.5s)\n"
      "  --typing D      you are idle after D without typing (default 3s)\n\n"
      "Durations: 500ms, 2s. Exit status: COMMAND's (128+N if signal N "
      "killed\nit), 127 if it cannot be run, 1 if the wrapper cannot start, "
      "2 usage.\n",
      wrap_usage);
}

static int usage_err(void) {
  fprintf(stderr, "usage: grapevine wrap %s\n(see 'grapevine wrap --help')\n",
          wrap_usage);
  return EXIT_USAGE;
}

/* Opens <dir>/wrap-<project>-<name>.log for appending, mode 0600. */
static FILE *open_log(const char *dir, const char *as) {
  char path[4400], name[GV_RADDR_TEXT_MAX + 1];
  int fd;
  FILE *f;

  snprintf(name, sizeof(name), "%s", as);
  for (char *p = name; *p; p++)
    if (*p == ':' || *p == '/')
      *p = '-';
  snprintf(path, sizeof(path), "%s/wrap-%s.log", dir, name);
  if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
    fprintf(stderr, "grapevine wrap: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  if ((f = fdopen(fd, "a")) == NULL) {
    close(fd);
    return NULL;
  }
  setvbuf(f, NULL, _IOLBF, 0); /* a kill -9 loses no line */
  return f;
}

/* Starts argv in a new pty; returns 0, or the exit status if it cannot
 * run (the reason on stderr). The child's exec failure comes back through
 * a close-on-exec pipe, so it is told here, before raw mode. */
static int spawn(wrapper *w, char **argv, const struct termios *tio,
                 const struct winsize *ws) {
  int pfd[2], err = 0;
  ssize_t n;

  if (pipe2(pfd, O_CLOEXEC) < 0) {
    fprintf(stderr, "grapevine wrap: pipe: %s\n", strerror(errno));
    return EXIT_FAIL;
  }
  w->child = forkpty(&w->master, NULL, tio, ws);
  if (w->child < 0) {
    fprintf(stderr, "grapevine wrap: cannot open a pseudo-terminal: %s\n",
            strerror(errno));
    close(pfd[0]);
    close(pfd[1]);
    return EXIT_FAIL;
  }
  if (w->child == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(pfd[0]);
    execvp(argv[0], argv);
    err = errno;
    if (write(pfd[1], &err, sizeof(err)) < 0)
      _exit(EXIT_NOEXEC);
    _exit(EXIT_NOEXEC);
  }
  close(pfd[1]);
  do
    n = read(pfd[0], &err, sizeof(err));
  while (n < 0 && errno == EINTR);
  close(pfd[0]);
  if (n == (ssize_t)sizeof(err)) {
    fprintf(stderr, "grapevine wrap: cannot run '%s': %s\n", argv[0],
            strerror(err));
    waitpid(w->child, NULL, 0);
    close(w->master);
    return EXIT_NOEXEC;
  }
  return 0;
}

/* Opens fd 0 or 1 as a libuv stream if it is a terminal or a pipe. */
static bool open_stdio(wrapper *w, stdio_h *h, int fd) {
  uv_handle_type t = uv_guess_handle(fd);
  if (t == UV_TTY)
    return uv_tty_init(&w->loop, &h->tty, fd, fd == STDIN_FILENO) == 0;
  if (t == UV_NAMED_PIPE) {
    if (uv_pipe_init(&w->loop, &h->pipe, 0) < 0)
      return false;
    if (uv_pipe_open(&h->pipe, fd) == 0)
      return true;
    uv_close(&h->h, NULL);
  }
  return false;
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  wrapper *w = h->data;
  (void)hint;
  *b = uv_buf_init(w->ibuf, sizeof(w->ibuf));
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  wrapper *w = s->data;
  if (n < 0) { /* EOF: the agent keeps running without the person */
    uv_read_stop(s);
    return;
  }
  if (n > 0) {
    gv_wrap_input(w->core, (const uint8_t *)b->base, (size_t)n, now_ms());
    pump(w);
  }
}

int gv_cmd_wrap(int argc, char **argv) {
  static const struct option opts[] = {
      {"as", required_argument, NULL, 'a'},
      {"data-dir", required_argument, NULL, 'd'},
      {"quiet", required_argument, NULL, 'q'},
      {"typing", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static const int sigs[5] = {SIGCHLD, SIGWINCH, SIGTERM, SIGHUP, SIGINT};
  const char *as_flag = NULL, *dflag = NULL;
  uint64_t d;
  wrapper *w = NULL;
  gv_wrap_cfg cfg;
  gv_why why = {""};
  char dir[4096], sock[4200], cmdname[256];
  struct termios tio;
  struct winsize ws = {.ws_row = 24, .ws_col = 80};
  bool tty = isatty(STDIN_FILENO);
  uint8_t session[16];
  gv_aclient_cbs cbs = {on_state, on_event};
  FILE *logf = NULL;
  int opt, rc;

  gv_wrap_cfg_default(&cfg);
  optind = 1;
  while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (opt) {
    case 'a': as_flag = optarg; break;
    case 'd': dflag = optarg; break;
    case 'h': wrap_help(); return 0;
    case 'q':
    case 't':
      if (!gv_cli_duration(optarg, &d) || d > DURATION_MAX_MS) {
        fprintf(stderr,
                "grapevine wrap: --%s takes a duration up to 10 min, "
                "like 500ms or 2s\n",
                opt == 'q' ? "quiet" : "typing");
        return EXIT_USAGE;
      }
      *(opt == 'q' ? &cfg.quiet_ms : &cfg.typing_ms) = (int64_t)d;
      cfg.unknown_ms = 10 * cfg.typing_ms; /* an unknown line: forgotten */
      break;
    default: return usage_err();
    }
  }
  if (optind >= argc)
    return usage_err();
  snprintf(cmdname, sizeof(cmdname), "%s", argv[optind]);
  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return EXIT_FAIL;
  if (gv_aclient_name(as_flag, basename(cmdname), w->as, sizeof(w->as), &why) <
      0) {
    fprintf(stderr,
            "grapevine wrap: '%s' is not an agent name (%s); pass --as "
            "project:name\n",
            w->as, why.text);
    free(w);
    return EXIT_USAGE;
  }
  if (gv_cli_data_dir(dflag, dir, sizeof(dir)) < 0 || gv_cli_mkdirs(dir) < 0) {
    fprintf(stderr,
            "grapevine wrap: cannot use the data directory %s; pass "
            "--data-dir DIR\n",
            dflag ? dflag : "(default)");
    free(w);
    return EXIT_FAIL;
  }
  snprintf(sock, sizeof(sock), "%s/relay.sock", dir);
  if ((logf = open_log(dir, w->as)) == NULL) {
    free(w);
    return EXIT_FAIL;
  }
  gv_log_init(&w->log, logf, GV_LOG_INFO, "wrap");
  if (access(sock, F_OK) != 0)
    fprintf(stderr,
            "grapevine wrap: no node is running yet (nothing at %s); %s runs "
            "and is relayed once one starts\n",
            sock, w->as);
  if (tty) {
    tcgetattr(STDIN_FILENO, &tio);
    ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
  }
  if ((rc = spawn(w, argv + optind, tty ? &tio : NULL, &ws)) != 0)
    goto out_early;
  gv_logf(&w->log, GV_LOG_INFO, "%s runs as %s (pid %d)", argv[optind], w->as,
          (int)w->child);
  signal(SIGPIPE, SIG_IGN); /* after the fork: the agent keeps its default */
  randombytes_buf(session, sizeof(session));
  if ((rc = gv_wrap_new(&w->core, &cfg, session)) < 0) {
    fprintf(stderr, "grapevine wrap: %s\n", gv_strerror(rc));
    kill(w->child, SIGHUP);
    waitpid(w->child, NULL, 0);
    close(w->master);
    rc = EXIT_FAIL;
    goto out_early;
  }
  uv_loop_init(&w->loop);
  fcntl(w->master, F_SETFL, fcntl(w->master, F_GETFL) | O_NONBLOCK);
  uv_poll_init(&w->loop, &w->mpoll, w->master);
  w->mpoll.data = w;
  w->mevents = UV_READABLE;
  master_poll(w);
  if ((w->in_open = open_stdio(w, &w->in, STDIN_FILENO))) {
    w->in.h.data = w;
    uv_read_start(&w->in.s, in_alloc, in_read);
  }
  if ((w->out_stream = open_stdio(w, &w->out, STDOUT_FILENO)))
    w->out.h.data = w;
  uv_timer_init(&w->loop, &w->tick);
  uv_timer_init(&w->loop, &w->grace);
  uv_timer_init(&w->loop, &w->flush);
  w->tick.data = w->grace.data = w->flush.data = w;
  for (int i = 0; i < 5; i++) {
    uv_signal_init(&w->loop, &w->sig[i]);
    w->sig[i].data = w;
    uv_signal_start(&w->sig[i], signal_cb, sigs[i]);
  }
  if (tty) {
    struct termios raw = tio;
    saved_tio = tio;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
      raw_on = 1;
  }
  if ((rc = gv_aclient_start(&w->ac, &w->loop, sock, w->as, &cbs, w)) < 0)
    gv_logf(&w->log, GV_LOG_ERROR, "relay client: %s", gv_strerror(rc));
  check_child(w); /* it may have ended before SIGCHLD was watched */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  restore_terminal();
  uv_loop_close(&w->loop);
  close(w->master);
  if (WIFSIGNALED(w->status))
    rc = 128 + WTERMSIG(w->status);
  else
    rc = WEXITSTATUS(w->status);
  gv_logf(&w->log, GV_LOG_INFO, "exit %d", rc);
  for (job *j = w->head, *next; j != NULL; j = next) {
    next = j->next;
    job_free(j);
  }
  for (job *j = w->held, *next; j != NULL; j = next) {
    next = j->next;
    job_free(j);
  }
  gv_wrap_free(w->core);
  free(w->mq);
out_early:
  gv_log_done(&w->log);
  fclose(logf);
  free(w);
  return rc;
}

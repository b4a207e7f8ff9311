/* The relay's command line: send, inbox, agents and trace talk to the
 * node's agent socket, <data-dir>/relay.sock, with the protocol of
 * docs/RELAY.md §7; team manages the team key files (node/team.h) and
 * tells a running node over its control socket.
 *
 * Exit status: 0 success; 1 an error answer (`error: CODE: reason` on
 * stderr); 2 a usage error; 3 no node is running. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "aclient.h"
#include "cli.h"
#include "relayreq.h"
#include "team.h"

#define EXIT_ANSWER 1
#define EXIT_USAGE 2
#define EXIT_NO_NODE 3
#define CALL_TIMEOUT_MS 10000

/* ---- a line client over a Unix socket (libuv, one connection) ---- */

typedef struct lclient {
  uv_loop_t loop;
  uv_pipe_t pipe;
  uv_connect_t connect;
  uv_timer_t timer;
  char *buf; /* received, not yet taken; at most GV_RREQ_ANSWER_MAX + 64K */
  size_t len, cap;
  int rc;    /* first error: connect, read, write, EOF, timeout */
  bool open; /* the handles are initialised */
  const char *path;
  gv_why why; /* why the socket or its server was refused, if it was */
} lclient;

static void lc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  lclient *c = h->data;
  (void)hint;
  if (c->cap - c->len < 65536) {
    char *p;
    if (c->cap > GV_RREQ_ANSWER_MAX ||
        (p = realloc(c->buf, c->cap + 65536)) == NULL) {
      *b = uv_buf_init(NULL, 0); /* a line past the limit: UV_ENOBUFS */
      return;
    }
    c->buf = p;
    c->cap += 65536;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void lc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  lclient *c = s->data;
  (void)b;
  if (n < 0) {
    c->rc = (int)n;
    uv_read_stop(s);
    uv_stop(&c->loop);
    return;
  }
  c->len += (size_t)n;
  if (memchr(c->buf + c->len - (size_t)n, '\n', (size_t)n) != NULL)
    uv_stop(&c->loop);
}

static void lc_connected(uv_connect_t *req, int status) {
  lclient *c = req->data;
  if (status < 0)
    c->rc = status;
  else if ((status = gv_cli_check_node(&c->pipe, c->path, &c->why)) < 0)
    c->rc = status; /* not the node's user: nothing is sent */
  else if ((status =
                uv_read_start((uv_stream_t *)&c->pipe, lc_alloc, lc_read)) < 0)
    c->rc = status;
  uv_stop(&c->loop);
}

static void lc_timeout(uv_timer_t *t) {
  lclient *c = t->data;
  c->rc = UV_ETIMEDOUT;
  uv_stop(&c->loop);
}

/* A failed write (a node that refused us and closed) shows on the read
 * side, after the node's reason, which is read first. */
static void lc_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* Runs the loop until a callback stops it or timeout_ms passes (0: no
 * limit). */
static void lc_run(lclient *c, uint64_t timeout_ms) {
  if (timeout_ms > 0)
    uv_timer_start(&c->timer, lc_timeout, timeout_ms, 0);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&c->timer);
}

/* Connects to path, a node's socket, after checking it and then its
 * server (gv_cli_check_sock, then gv_cli_check_node once connected). 0, or a
 * libuv error (UV_ENOENT, UV_ECONNREFUSED: no node), or a refusal with c->why.
 */
static int lc_open(lclient *c, const char *path) {
  uid_t owner;
  int rc;

  memset(c, 0, sizeof(*c));
  if ((rc = gv_cli_check_sock(path, &owner, &c->why)) < 0) {
    if (rc == -ENOENT)
      c->why.text[0] = '\0'; /* no node runs: not a refusal */
    return rc == -ENOENT ? UV_ENOENT : rc;
  }
  c->path = path;
  signal(SIGPIPE, SIG_IGN); /* a closed socket shows as EPIPE */
  uv_loop_init(&c->loop);
  uv_pipe_init(&c->loop, &c->pipe, 0);
  uv_timer_init(&c->loop, &c->timer);
  c->pipe.data = c->timer.data = c->connect.data = c;
  c->open = true;
  uv_pipe_connect(&c->connect, &c->pipe, path, lc_connected);
  lc_run(c, CALL_TIMEOUT_MS);
  return c->rc;
}

static void lc_close(lclient *c) {
  if (!c->open)
    return;
  uv_close((uv_handle_t *)&c->pipe, NULL);
  uv_close((uv_handle_t *)&c->timer, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  uv_loop_close(&c->loop);
  free(c->buf);
  c->open = false;
}

/* Queues one JSON object as a line; takes o. */
static int lc_send(lclient *c, cJSON *o) {
  return gv_aclient_write_json((uv_stream_t *)&c->pipe, o, lc_written, c) < 0
             ? UV_EIO
             : 0;
}

/* The next line as JSON, waiting at most timeout_ms (0: forever). NULL on
 * an error (c->rc says which; UV_EINVAL for a line that is not JSON). */
static cJSON *lc_next(lclient *c, uint64_t timeout_ms) {
  char *nl;
  cJSON *o;

  while (c->len == 0 || (nl = memchr(c->buf, '\n', c->len)) == NULL) {
    if (c->rc != 0)
      return NULL;
    lc_run(c, timeout_ms);
    if (c->rc == 0 && (c->len == 0 || memchr(c->buf, '\n', c->len) == NULL) &&
        !uv_loop_alive(&c->loop))
      c->rc = UV_EOF;
  }
  o = cJSON_ParseWithLength(c->buf, (size_t)(nl - c->buf));
  c->len -= (size_t)(nl - c->buf) + 1;
  memmove(c->buf, nl + 1, c->len);
  if (o == NULL)
    c->rc = UV_EINVAL;
  return o;
}

/* ---- shared helpers ---- */

typedef struct common {
  const char *cmd;
  char dir[4096];
  char sock[4200];
  bool json;
  lclient lc;
} common;

static void print_json(const cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  if (t != NULL)
    puts(t);
  free(t);
  fflush(stdout);
}

/* Prints an error answer (`error: CODE: reason`, and AMBIGUOUS's
 * candidates) and returns EXIT_ANSWER. */
static int print_error(const cJSON *o) {
  const cJSON *it;
  fprintf(stderr, "error: %s: %s\n", gv_aclient_str(o, "error"),
          gv_aclient_str(o, "reason"));
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "candidates")) {
    if (cJSON_IsString(it))
      fprintf(stderr, "  candidate: %s\n", it->valuestring);
  }
  return EXIT_ANSWER;
}

static bool is_ok(const cJSON *o) {
  return cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"));
}

/* Connects to the node's relay socket; on failure prints why and returns
 * the exit status. */
static int connect_node(common *c) {
  int rc = lc_open(&c->lc, c->sock);
  if (rc == 0)
    return 0;
  if (rc == UV_ENOENT || rc == UV_ECONNREFUSED) {
    fprintf(stderr,
            "grapevine %s: no node is running: nothing answers on %s "
            "(start one with 'grapevine node')\n",
            c->cmd, c->sock);
    return EXIT_NO_NODE;
  }
  if (c->lc.why.text[0] != '\0')
    fprintf(stderr, "grapevine %s: %s\n", c->cmd, c->lc.why.text);
  else
    fprintf(stderr, "grapevine %s: %s: %s\n", c->cmd, c->sock, uv_strerror(rc));
  return EXIT_NO_NODE;
}

/* Sends o (taken) and waits for its answer; events that come first are
 * handed to on_event, if any, else dropped. Prints a transport failure;
 * NULL then. */
typedef void (*event_fn)(common *c, const cJSON *ev, void *arg);
static cJSON *call(common *c, cJSON *o, uint64_t timeout_ms, event_fn on_event,
                   void *arg) {
  cJSON *a;
  if (lc_send(&c->lc, o) < 0) {
    fprintf(stderr, "grapevine %s: cannot write to %s\n", c->cmd, c->sock);
    return NULL;
  }
  while ((a = lc_next(&c->lc, timeout_ms)) != NULL &&
         cJSON_GetObjectItem(a, "event") != NULL) {
    if (on_event != NULL)
      on_event(c, a, arg);
    cJSON_Delete(a);
  }
  if (a == NULL)
    fprintf(stderr, "grapevine %s: the node did not answer: %s\n", c->cmd,
            c->lc.rc == UV_EINVAL ? "an answer that is not JSON"
                                  : uv_strerror(c->lc.rc));
  return a;
}

/* --as, else $GRAPEVINE_AS, else <basename of cwd>:cli, checked. */
static int agent_name(const char *cmd, const char *flag, char *out,
                      size_t cap) {
  gv_why why = {""};

  if (gv_aclient_name(flag, "cli", out, cap, &why) == 0)
    return 0;
  fprintf(stderr,
          "grapevine %s: '%s' is not an agent name (%s); pass --as "
          "project:name\n",
          cmd, out, why.text);
  return EXIT_USAGE;
}

/* Registers as `as`; returns 0 or the exit status. */
static int hello(common *c, const char *as) {
  cJSON *o = cJSON_CreateObject(), *a;
  int rc = 0;

  cJSON_AddStringToObject(o, "cmd", "hello");
  cJSON_AddStringToObject(o, "as", as);
  if ((a = call(c, o, CALL_TIMEOUT_MS, NULL, NULL)) == NULL)
    return EXIT_ANSWER;
  if (!is_ok(a)) {
    if (c->json)
      print_json(a);
    rc = print_error(a);
  }
  cJSON_Delete(a);
  return rc;
}

static const char *const data_dir_help =
    "  --data-dir DIR  the node's data directory (default: $GRAPEVINE_DIR,\n"
    "                  else $XDG_DATA_HOME/grapevine)\n";

static int usage_err(const char *cmd, const char *usage) {
  fprintf(stderr, "usage: grapevine %s %s\n(see 'grapevine %s --help')\n", cmd,
          usage, cmd);
  return EXIT_USAGE;
}

/* Resolves the data directory and the socket paths. */
static int locate(common *c, const char *dflag) {
  if (gv_cli_data_dir(dflag, c->dir, sizeof(c->dir)) < 0) {
    fprintf(stderr,
            "grapevine %s: cannot tell the data directory; pass "
            "--data-dir DIR\n",
            c->cmd);
    return EXIT_USAGE;
  }
  snprintf(c->sock, sizeof(c->sock), "%s/relay.sock", c->dir);
  return 0;
}

/* ---- grapevine send ---- */

static const char send_usage[] =
    "TO MESSAGE [--as project:name] [--thread T] [--ttl D] [--key K]\n"
    "       [--wait STATE] [--timeout D] [--data-dir DIR] [--json]";

static void send_help(void) {
  printf("usage: grapevine send %s\n\n"
         "Sends MESSAGE (or standard input, for '-', at most 1 MiB) to the "
         "agent\nTO: name, project:name, name@NODE, project:name@NODE, * "
         "(the team),\nproject:* or *:name. Prints each message's id and "
         "state.\n\n"
         "  --as P:N        send as this agent (default: $GRAPEVINE_AS, "
         "else\n"
         "                  <basename of the working directory>:cli)\n"
         "  --thread T      a thread name (0..64 printable characters)\n"
         "  --ttl D         give up after D (default 7d, at most 30d)\n"
         "  --key K         an idempotency key: the same key sends once\n"
         "  --wait STATE    answer once the message is accepted (default), "
         "sent,\n"
         "                  stored, delivered or read\n"
         "  --timeout D     how long --wait may take (default 30s, at most "
         "1h)\n"
         "%s"
         "  --json          print the node's answer object\n\n"
         "Durations: 500ms, 30s, 5m, 2h, 7d. Exit status: 0 sent, 1 an "
         "error\nanswer, 2 usage, 3 no node running.\n",
         send_usage, data_dir_help);
}

/* Reads standard input, at most GV_RREQ_MESSAGE_MAX bytes; more is
 * PAYLOAD_TOO_LARGE before anything is sent. */
static int read_stdin(char **out, size_t *len) {
  size_t cap = GV_RREQ_MESSAGE_MAX + 1, n = 0;
  char *b = malloc(cap + 1);

  if (b == NULL) {
    fprintf(stderr, "grapevine send: out of memory\n");
    return EXIT_ANSWER;
  }
  while (n < cap) {
    size_t r = fread(b + n, 1, cap - n, stdin);
    if (r == 0)
      break;
    n += r;
  }
  if (ferror(stdin)) {
    fprintf(stderr, "grapevine send: reading standard input: %s\n",
            strerror(errno));
    free(b);
    return EXIT_ANSWER;
  }
  if (n > GV_RREQ_MESSAGE_MAX) {
    fprintf(stderr,
            "error: PAYLOAD_TOO_LARGE: the message is more than %d bytes "
            "(1 MiB); nothing was sent\n",
            GV_RREQ_MESSAGE_MAX);
    free(b);
    return EXIT_ANSWER;
  }
  b[n] = '\0';
  *out = b;
  *len = n;
  return 0;
}

static void print_sent(const cJSON *s) {
  const char *reason = gv_aclient_str(s, "reason");
  printf("%s %s -> %s%s%s\n", gv_aclient_str(s, "id"),
         gv_aclient_str(s, "state"), gv_aclient_str(s, "to"),
         *reason ? ": " : "", reason);
}

int gv_cmd_send(int argc, char **argv) {
  static const struct option opts[] = {
      {"as", required_argument, NULL, 'a'},
      {"thread", required_argument, NULL, 't'},
      {"ttl", required_argument, NULL, 'T'},
      {"key", required_argument, NULL, 'k'},
      {"wait", required_argument, NULL, 'w'},
      {"timeout", required_argument, NULL, 'o'},
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  common c = {.cmd = "send"};
  const char *as_flag = NULL, *dflag = NULL, *thread = NULL, *key = NULL;
  const char *wait = NULL;
  uint64_t ttl = 0, timeout = GV_RREQ_TIMEOUT_DEFAULT_MS;
  char as[GV_RADDR_NAME_MAX + 16], *body = NULL;
  size_t body_len;
  cJSON *o, *a;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'a': as_flag = optarg; break;
    case 't': thread = optarg; break;
    case 'k': key = optarg; break;
    case 'd': dflag = optarg; break;
    case 'j': c.json = true; break;
    case 'h': send_help(); return 0;
    case 'T':
      if (!gv_cli_duration(optarg, &ttl) || ttl < 1 ||
          ttl > GV_RREQ_TTL_MAX_MS) {
        fprintf(stderr, "grapevine send: --ttl takes a duration from 1ms to "
                        "30d, like 5m or 7d\n");
        return EXIT_USAGE;
      }
      break;
    case 'o':
      if (!gv_cli_duration(optarg, &timeout) || timeout < 1 ||
          timeout > GV_RREQ_TIMEOUT_MAX_MS) {
        fprintf(stderr, "grapevine send: --timeout takes a duration from "
                        "1ms to 1h, like 500ms or 30s\n");
        return EXIT_USAGE;
      }
      break;
    case 'w':
      wait = optarg;
      for (int s = GV_RSTATE_ACCEPTED; s <= GV_RSTATE_READ; s++)
        if (strcmp(optarg, gv_rstate_name((gv_rstate)s)) == 0)
          wait = NULL;
      if (wait != NULL) {
        fprintf(stderr, "grapevine send: --wait takes accepted, sent, "
                        "stored, delivered or read\n");
        return EXIT_USAGE;
      }
      wait = optarg;
      break;
    default: return usage_err("send", send_usage);
    }
  }
  if (argc - optind != 2)
    return usage_err("send", send_usage);
  if ((rc = agent_name("send", as_flag, as, sizeof(as))) != 0 ||
      (rc = locate(&c, dflag)) != 0)
    return rc;
  if (strcmp(argv[optind + 1], "-") == 0) {
    if ((rc = read_stdin(&body, &body_len)) != 0)
      return rc;
  } else if ((body_len = strlen(argv[optind + 1])) > GV_RREQ_MESSAGE_MAX) {
    fprintf(stderr, "error: PAYLOAD_TOO_LARGE: the message is more than 1 "
                    "MiB; nothing was sent\n");
    return EXIT_ANSWER;
  }
  if ((rc = connect_node(&c)) != 0 || (rc = hello(&c, as)) != 0)
    goto out;
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "send");
  cJSON_AddStringToObject(o, "to", argv[optind]);
  cJSON_AddStringToObject(o, "message", body != NULL ? body : argv[optind + 1]);
  if (thread != NULL)
    cJSON_AddStringToObject(o, "thread", thread);
  if (key != NULL)
    cJSON_AddStringToObject(o, "key", key);
  if (ttl != 0)
    cJSON_AddNumberToObject(o, "ttl_ms", (double)ttl);
  if (wait != NULL) {
    cJSON_AddStringToObject(o, "wait", wait);
    cJSON_AddNumberToObject(o, "timeout_ms", (double)timeout);
  }
  if ((a = call(&c, o, timeout + CALL_TIMEOUT_MS, NULL, NULL)) == NULL) {
    rc = EXIT_ANSWER;
    goto out;
  }
  if (c.json)
    print_json(a);
  if (!is_ok(a)) {
    rc = print_error(a);
  } else if (!c.json) {
    const cJSON *sent = cJSON_GetObjectItem(a, "sent"), *it;
    if (cJSON_IsArray(sent))
      cJSON_ArrayForEach(it, sent) print_sent(it);
    else
      print_sent(a);
  }
  cJSON_Delete(a);
out:
  lc_close(&c.lc);
  free(body);
  return rc;
}

/* ---- grapevine inbox ---- */

static const char inbox_usage[] =
    "[--as project:name] [--follow] [--peek] [--limit N] [--data-dir DIR]\n"
    "       [--json]";

typedef struct inbox_state {
  bool peek;
  cJSON *listed; /* ids printed from the listing: pushed again, skipped */
  int rc;
} inbox_state;

/* Prints one message: `[id8] from -> to (thread): body`, or its JSON. */
static void print_msg(const common *c, const cJSON *m) {
  const char *thread = gv_aclient_str(m, "thread");
  const cJSON *sk;
  if (c->json) {
    print_json(m);
    return;
  }
  printf("[%.8s] %s -> %s%s%s%s: %s\n", gv_aclient_str(m, "id"),
         gv_aclient_str(m, "from"), gv_aclient_str(m, "to"),
         *thread ? " (" : "", thread, *thread ? ")" : "",
         gv_aclient_str(m, "body"));
  if (cJSON_GetArraySize(sk = cJSON_GetObjectItem(m, "skipped")) > 0)
    printf("  (%d earlier message(s) from this sender expired before "
           "delivery)\n",
           cJSON_GetArraySize(sk));
  fflush(stdout);
}

/* Acks ids (taken); the answer comes later in --follow, now otherwise. */
static cJSON *ack_req(cJSON *ids) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "ack");
  cJSON_AddItemToObject(o, "ids", ids);
  return o;
}

static bool listed(const inbox_state *st, const char *id) {
  const cJSON *it;
  cJSON_ArrayForEach(it, st->listed) {
    if (strcmp(it->valuestring, id) == 0)
      return true;
  }
  return false;
}

/* A pushed line in --follow: a message is printed and acked. */
static void on_pushed(common *c, const cJSON *ev, void *arg) {
  inbox_state *st = arg;
  const char *id = gv_aclient_str(ev, "id");
  cJSON *ids;

  if (strcmp(gv_aclient_str(ev, "event"), "message") != 0 || listed(st, id))
    return;
  print_msg(c, ev);
  if (st->peek)
    return;
  ids = cJSON_CreateArray();
  cJSON_AddItemToArray(ids, cJSON_CreateString(id));
  if (lc_send(&c->lc, ack_req(ids)) < 0)
    st->rc = EXIT_ANSWER;
}

static void inbox_help(void) {
  printf("usage: grapevine inbox %s\n\n"
         "Lists the messages waiting for this agent, oldest first, as\n"
         "'[id8] from -> to (thread): body', and consumes them (acks them:\n"
         "the sender sees 'delivered').\n\n"
         "  --as P:N   the agent (default: $GRAPEVINE_AS, else <basename of "
         "the\n"
         "             working directory>:cli)\n"
         "  --follow   stay connected and print messages as they arrive\n"
         "  --peek     print without consuming\n"
         "  --limit N  list at most N messages (1..1000, default 100)\n"
         "%s"
         "  --json     print each message as one JSON object per line\n",
         inbox_usage, data_dir_help);
}

int gv_cmd_inbox(int argc, char **argv) {
  static const struct option opts[] = {
      {"as", required_argument, NULL, 'a'},
      {"follow", no_argument, NULL, 'f'},
      {"peek", no_argument, NULL, 'p'},
      {"limit", required_argument, NULL, 'l'},
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  common c = {.cmd = "inbox"};
  inbox_state st = {0};
  const char *as_flag = NULL, *dflag = NULL;
  char as[GV_RADDR_NAME_MAX + 16];
  bool follow = false;
  long limit = GV_RREQ_LIMIT_DEFAULT;
  cJSON *o, *a = NULL, *ids;
  const cJSON *it;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (opt) {
    case 'a': as_flag = optarg; break;
    case 'f': follow = true; break;
    case 'p': st.peek = true; break;
    case 'd': dflag = optarg; break;
    case 'j': c.json = true; break;
    case 'h': inbox_help(); return 0;
    case 'l':
      limit = strtol(optarg, &end, 10);
      if (*end != '\0' || *optarg == '\0' || limit < 1 ||
          limit > GV_RREQ_LIMIT_MAX) {
        fprintf(stderr, "grapevine inbox: --limit takes 1..%d\n",
                GV_RREQ_LIMIT_MAX);
        return EXIT_USAGE;
      }
      break;
    default: return usage_err("inbox", inbox_usage);
    }
  }
  if (argc != optind)
    return usage_err("inbox", inbox_usage);
  if ((rc = agent_name("inbox", as_flag, as, sizeof(as))) != 0 ||
      (rc = locate(&c, dflag)) != 0)
    return rc;
  if ((rc = connect_node(&c)) != 0 || (rc = hello(&c, as)) != 0)
    goto out;
  st.listed = cJSON_CreateArray();
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "inbox");
  cJSON_AddNumberToObject(o, "limit", (double)limit);
  cJSON_AddBoolToObject(o, "peek", 1);
  /* Messages pushed before the listing's answer are in the listing. */
  if ((a = call(&c, o, CALL_TIMEOUT_MS, NULL, NULL)) == NULL) {
    rc = EXIT_ANSWER;
    goto out;
  }
  if (!is_ok(a)) {
    if (c.json)
      print_json(a);
    rc = print_error(a);
    goto out;
  }
  ids = cJSON_CreateArray();
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(a, "messages")) {
    print_msg(&c, it);
    cJSON_AddItemToArray(ids, cJSON_CreateString(gv_aclient_str(it, "id")));
    cJSON_AddItemToArray(st.listed,
                         cJSON_CreateString(gv_aclient_str(it, "id")));
  }
  if (cJSON_IsTrue(cJSON_GetObjectItem(a, "more")))
    fprintf(stderr,
            "grapevine inbox: more messages wait than one listing holds; "
            "%s\n",
            st.peek ? "take these to see the rest"
                    : "run it again for the rest");
  cJSON_Delete(a);
  a = NULL;
  if (!st.peek && cJSON_GetArraySize(ids) > 0) {
    if ((a = call(&c, ack_req(ids), CALL_TIMEOUT_MS, follow ? on_pushed : NULL,
                  &st)) == NULL) {
      rc = EXIT_ANSWER;
      goto out;
    }
    if (!is_ok(a)) {
      rc = print_error(a);
      goto out;
    }
  } else {
    cJSON_Delete(ids);
  }
  /* --follow: until the node closes the connection (or a signal). */
  while (follow && st.rc == 0) {
    cJSON_Delete(a);
    if ((a = lc_next(&c.lc, 0)) == NULL) {
      fprintf(stderr, "grapevine inbox: the node closed the connection%s%s\n",
              c.lc.rc != UV_EOF ? ": " : "",
              c.lc.rc != UV_EOF ? uv_strerror(c.lc.rc) : "");
      rc = EXIT_ANSWER;
      break;
    }
    if (cJSON_GetObjectItem(a, "event") != NULL)
      on_pushed(&c, a, &st);
    else if (!is_ok(a)) /* the answer to an ack */
      rc = print_error(a);
  }
  if (st.rc != 0)
    rc = st.rc;
out:
  cJSON_Delete(a);
  cJSON_Delete(st.listed);
  lc_close(&c.lc);
  return rc;
}

/* ---- grapevine agents ---- */

static const char agents_usage[] = "[--project P] [--data-dir DIR] [--json]";

int gv_cmd_agents(int argc, char **argv) {
  static const struct option opts[] = {
      {"project", required_argument, NULL, 'p'},
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  common c = {.cmd = "agents"};
  const char *dflag = NULL, *project = NULL;
  gv_why why = {""};
  cJSON *o, *a;
  const cJSON *it;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'p': project = optarg; break;
    case 'd': dflag = optarg; break;
    case 'j': c.json = true; break;
    case 'h':
      printf("usage: grapevine agents %s\n\n"
             "Prints the team's directory of agents: every agent of every "
             "node of\nthe team, online or not.\n\n"
             "  --project P     only the agents of project P\n"
             "%s"
             "  --json          print the node's answer object\n",
             agents_usage, data_dir_help);
      return 0;
    default: return usage_err("agents", agents_usage);
    }
  }
  if (argc != optind)
    return usage_err("agents", agents_usage);
  if (project != NULL &&
      gv_raddr_part_check(project, strlen(project), "project", &why) < 0) {
    fprintf(stderr, "grapevine agents: %s\n", why.text);
    return EXIT_USAGE;
  }
  if ((rc = locate(&c, dflag)) != 0 || (rc = connect_node(&c)) != 0)
    goto out;
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "agents");
  if (project != NULL)
    cJSON_AddStringToObject(o, "project", project);
  if ((a = call(&c, o, CALL_TIMEOUT_MS, NULL, NULL)) == NULL) {
    rc = EXIT_ANSWER;
    goto out;
  }
  if (c.json)
    print_json(a);
  if (!is_ok(a)) {
    rc = print_error(a);
  } else if (!c.json) {
    printf("%-60s %s\n", "ADDRESS", "ONLINE");
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(a, "agents")) {
      printf("%-60s %s\n", gv_aclient_str(it, "address"),
             cJSON_IsTrue(cJSON_GetObjectItem(it, "online")) ? "yes" : "no");
    }
  }
  cJSON_Delete(a);
out:
  lc_close(&c.lc);
  return rc;
}

/* ---- grapevine trace ---- */

static const char trace_usage[] =
    "MSGID [--as project:name] [--data-dir DIR] [--json]";

/* at_ms as 2026-01-01T00:00:00.000Z. */
static void iso_ms(double at_ms, char out[32]) {
  time_t secs = (time_t)(at_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)((uint64_t)at_ms % 1000));
}

int gv_cmd_trace(int argc, char **argv) {
  static const struct option opts[] = {
      {"as", required_argument, NULL, 'a'},
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  common c = {.cmd = "trace"};
  const char *as_flag = NULL, *dflag = NULL, *id;
  char as[GV_RADDR_NAME_MAX + 16];
  uint8_t bin[GV_RREQ_ID_BYTES];
  cJSON *o, *a;
  const cJSON *it;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'a': as_flag = optarg; break;
    case 'd': dflag = optarg; break;
    case 'j': c.json = true; break;
    case 'h':
      printf("usage: grapevine trace %s\n\n"
             "Shows where message MSGID (32 hex digits) is: its state, and "
             "every step\nwith its time (UTC) and, for 'sent', the node it "
             "left for.\n\n"
             "  --as P:N        ask as this agent (default: $GRAPEVINE_AS, "
             "else\n"
             "                  <basename of the working directory>:cli)\n"
             "%s"
             "  --json          print the node's answer object\n",
             trace_usage, data_dir_help);
      return 0;
    default: return usage_err("trace", trace_usage);
    }
  }
  if (argc - optind != 1)
    return usage_err("trace", trace_usage);
  id = argv[optind];
  if (strlen(id) != 2 * GV_RREQ_ID_BYTES ||
      sodium_hex2bin(bin, sizeof(bin), id, strlen(id), NULL, NULL, NULL) != 0) {
    fprintf(stderr,
            "grapevine trace: '%s' is not a message id (32 hex "
            "digits)\n",
            id);
    return EXIT_USAGE;
  }
  if ((rc = agent_name("trace", as_flag, as, sizeof(as))) != 0 ||
      (rc = locate(&c, dflag)) != 0)
    return rc;
  if ((rc = connect_node(&c)) != 0 || (rc = hello(&c, as)) != 0)
    goto out;
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "status");
  cJSON_AddStringToObject(o, "id", id);
  if ((a = call(&c, o, CALL_TIMEOUT_MS, NULL, NULL)) == NULL) {
    rc = EXIT_ANSWER;
    goto out;
  }
  if (c.json)
    print_json(a);
  if (!is_ok(a)) {
    rc = print_error(a);
  } else if (!c.json) {
    const char *reason = gv_aclient_str(a, "reason");
    printf("%s %s%s%s\n", id, gv_aclient_str(a, "state"), *reason ? ": " : "",
           reason);
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(a, "trace")) {
      char when[32];
      const char *hop = gv_aclient_str(it, "hop");
      iso_ms(cJSON_GetNumberValue(cJSON_GetObjectItem(it, "at_ms")), when);
      printf("  %s  %-9s%s%.12s\n", when, gv_aclient_str(it, "state"),
             *hop ? "  via " : "", hop);
    }
  }
  cJSON_Delete(a);
out:
  lc_close(&c.lc);
  return rc;
}

/* ---- grapevine team ---- */

static const char team_usage[] =
    "create | join TOKEN | list  [--data-dir DIR] [--json]";

/* Asks a running node to load the team files again: "loaded", "refused"
 * (with reason) or "not_running". */
static const char *team_reload(common *c, char *reason, size_t cap) {
  char path[4200];
  cJSON *o, *a;
  const char *res = "refused";

  snprintf(path, sizeof(path), "%s/control.sock", c->dir);
  reason[0] = '\0';
  if (lc_open(&c->lc, path) != 0) {
    lc_close(&c->lc);
    if (c->lc.why.text[0] == '\0')
      return "not_running";
    snprintf(reason, cap, "%s", c->lc.why.text);
    return res;
  }
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", "team_reload");
  if (lc_send(&c->lc, o) < 0 ||
      (a = lc_next(&c->lc, CALL_TIMEOUT_MS)) == NULL) {
    snprintf(reason, cap, "no answer: %s", uv_strerror(c->lc.rc));
  } else {
    if (is_ok(a))
      res = "loaded";
    else
      snprintf(reason, cap, "%s", gv_aclient_str(a, "reason"));
    cJSON_Delete(a);
  }
  lc_close(&c->lc);
  return res;
}

static void print_reload(const char *res, const char *reason) {
  if (strcmp(res, "loaded") == 0)
    printf("the running node loaded it\n");
  else if (strcmp(res, "not_running") == 0)
    printf("no node is running; the node loads it when it starts\n");
  else
    printf("the running node did not take it (%s); it loads it when it "
           "restarts\n",
           reason);
}

static int team_create(common *c) {
  char token[GV_RW_TOKEN_LEN + 1], reason[192];
  char file[GV_TEAM_FILE_NAME_LEN + 1], id8[2 * GV_RW_TEAM_ID8 + 1];
  uint8_t T[GV_RW_KEY_BYTES], inviter[GV_ID_BYTES];
  gv_identity self;
  gv_rw_team keys;
  gv_why why = {""};
  const char *res;
  int dfd, rc;

  if ((dfd = gv_cli_open_dir(c->dir, false, &why)) >= 0) {
    rc = gv_cli_load_key(&self, dfd, c->dir, "node.key", false, NULL, &why);
    close(dfd);
  } else {
    rc = dfd;
  }
  if (rc < 0) {
    fprintf(stderr,
            "grapevine team: %s (create the node's key with "
            "'grapevine keygen')\n",
            why.text);
    return EXIT_ANSWER;
  }
  if (gv_team_create(c->dir, &self, token, &why) < 0) {
    gv_id_wipe(&self);
    fprintf(stderr, "grapevine team: %s\n", why.text);
    return EXIT_ANSWER;
  }
  gv_id_wipe(&self);
  gv_rw_token_decode(token, strlen(token), T, inviter, NULL);
  gv_rw_team_keys(T, &keys);
  gv_team_file_name(keys.team_id, file);
  sodium_bin2hex(id8, sizeof(id8), keys.team_id, GV_RW_TEAM_ID8);
  gv_rw_team_keys_wipe(&keys);
  sodium_memzero(T, sizeof(T));
  res = team_reload(c, reason, sizeof(reason));
  if (c->json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddStringToObject(o, "team", id8);
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "token", token);
    cJSON_AddStringToObject(o, "node", res);
    if (*reason)
      cJSON_AddStringToObject(o, "node_reason", reason);
    print_json(o);
    cJSON_Delete(o);
  } else {
    printf("team %s created (%s/%s)\n\n"
           "Join token (a secret: whoever holds it is in the team and can "
           "send\nprompts to its agents; share it like a password):\n\n"
           "  %s\n\n"
           "On each other node of the team, run:\n"
           "  grapevine team join %s\n\n",
           id8, c->dir, file, token, token);
    print_reload(res, reason);
  }
  sodium_memzero(token, sizeof(token));
  return 0;
}

static int team_join(common *c, const char *token) {
  char reason[192], file[GV_TEAM_FILE_NAME_LEN + 1];
  char id8[2 * GV_RW_TEAM_ID8 + 1], inv[GV_ID_HEX_LEN + 1];
  uint8_t T[GV_RW_KEY_BYTES], inviter[GV_ID_BYTES];
  gv_rw_team keys;
  gv_why why = {""};
  const char *res;
  int rc;

  if (gv_rw_token_decode(token, strlen(token), T, inviter, &why) < 0) {
    fprintf(stderr, "grapevine team join: not a join token: %s\n", why.text);
    return EXIT_USAGE;
  }
  gv_rw_team_keys(T, &keys);
  gv_team_file_name(keys.team_id, file);
  sodium_bin2hex(id8, sizeof(id8), keys.team_id, GV_RW_TEAM_ID8);
  gv_rw_team_keys_wipe(&keys);
  sodium_memzero(T, sizeof(T));
  gv_id_to_hex(inviter, inv);
  if ((rc = gv_cli_mkdirs(c->dir)) < 0) {
    fprintf(stderr, "grapevine team: %s: %s\n", c->dir, gv_strerror(rc));
    return EXIT_ANSWER;
  }
  if ((rc = gv_team_join(c->dir, token, &why)) < 0) {
    fprintf(stderr, "grapevine team: %s\n", why.text);
    return EXIT_ANSWER;
  }
  res = team_reload(c, reason, sizeof(reason));
  if (c->json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddStringToObject(o, "team", id8);
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "inviter", inv);
    cJSON_AddBoolToObject(o, "already", rc == 1);
    cJSON_AddStringToObject(o, "node", res);
    if (*reason)
      cJSON_AddStringToObject(o, "node_reason", reason);
    print_json(o);
    cJSON_Delete(o);
  } else {
    printf("%s team %s (invited by %.12s; %s/%s)\n",
           rc == 1 ? "already in" : "joined", id8, inv, c->dir, file);
    print_reload(res, reason);
  }
  return 0;
}

static int team_list(common *c) {
  gv_team_ent *t;
  gv_why why = {""};
  size_t n;
  cJSON *arr;

  if (gv_team_list(c->dir, &t, &n, &why) < 0) {
    fprintf(stderr, "grapevine team: %s\n", why.text);
    return EXIT_ANSWER;
  }
  arr = cJSON_CreateArray();
  if (!c->json)
    printf("%-16s  %-12s  %s\n", "TEAM", "INVITER", "FILE");
  for (size_t i = 0; i < n; i++) {
    char id8[2 * GV_RW_TEAM_ID8 + 1], inv[GV_ID_HEX_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    sodium_bin2hex(id8, sizeof(id8), t[i].team_id, GV_RW_TEAM_ID8);
    gv_id_to_hex(t[i].inviter, inv);
    cJSON_AddStringToObject(o, "team", id8);
    cJSON_AddStringToObject(o, "inviter", inv);
    cJSON_AddStringToObject(o, "file", t[i].file);
    cJSON_AddItemToArray(arr, o);
    if (!c->json)
      printf("%-16s  %-12.12s  %s/%s\n", id8, inv, c->dir, t[i].file);
  }
  gv_team_list_free(t, n);
  if (c->json)
    print_json(arr);
  else if (n == 0)
    printf("(no team: make one with 'grapevine team create', or join with "
           "'grapevine team join TOKEN')\n");
  cJSON_Delete(arr);
  return 0;
}

int gv_cmd_team(int argc, char **argv) {
  static const struct option opts[] = {
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  common c = {.cmd = "team"};
  const char *dflag = NULL, *sub;
  int opt, rc, nargs;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'd': dflag = optarg; break;
    case 'j': c.json = true; break;
    case 'h':
      printf("usage: grapevine team %s\n\n"
             "Teams decide who may see this node's agents and send them "
             "messages.\n\n"
             "  create      make a new team and print its join token (a "
             "secret)\n"
             "  join TOKEN  join the team of TOKEN\n"
             "  list        list the teams this node is in\n\n"
             "The team's key is kept in DIR/team-<id>.key (mode 0600); a "
             "running\nnode is told to load it.\n\n"
             "%s"
             "  --json          print one JSON value\n",
             team_usage, data_dir_help);
      return 0;
    default: return usage_err("team", team_usage);
    }
  }
  nargs = argc - optind;
  sub = nargs > 0 ? argv[optind] : "";
  if (!((strcmp(sub, "create") == 0 && nargs == 1) ||
        (strcmp(sub, "join") == 0 && nargs == 2) ||
        (strcmp(sub, "list") == 0 && nargs == 1)))
    return usage_err("team", team_usage);
  if ((rc = locate(&c, dflag)) != 0)
    return rc;
  if (strcmp(sub, "create") == 0)
    return team_create(&c);
  if (strcmp(sub, "join") == 0)
    return team_join(&c, argv[optind + 1]);
  return team_list(&c);
}

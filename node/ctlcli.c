/* The CLI side of the control socket: status, peers, request, repo and
 * broadcast talk to a running node (docs/NODE.md, "Control protocol"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "ctl.h"
#include "engine.h"

typedef struct call {
  uv_pipe_t pipe;
  uv_connect_t connect;
  uv_write_t write;
  uv_timer_t timer;
  const char *request;
  const char *path;
  gv_why why; /* why the server was refused, if it was */
  char *reply;
  size_t len;
  int rc;
  bool done;
} call;

static void call_finish(call *c, int rc) {
  if (c->done)
    return;
  c->done = true;
  c->rc = rc;
  uv_close((uv_handle_t *)&c->pipe, NULL);
  uv_close((uv_handle_t *)&c->timer, NULL);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  call *c = h->data;
  char *p;
  (void)hint;
  if (c->len > GV_CTL_LINE_MAX * 64 ||
      (p = realloc(c->reply, c->len + 65536)) == NULL) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  c->reply = p;
  *buf = uv_buf_init(c->reply + c->len, 65536);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  call *c = s->data;
  (void)buf;
  if (n < 0) {
    call_finish(c, n == UV_EOF ? -EPROTO : (int)n);
    return;
  }
  c->len += (size_t)n;
  if (memchr(c->reply, '\n', c->len) != NULL)
    call_finish(c, 0);
}

/* A failed write (a node that refused us and closed) shows on the read
 * side, after the node's reason, which is read first. */
static void on_written(uv_write_t *w, int status) {
  (void)w;
  (void)status;
}

static void on_connect(uv_connect_t *req, int status) {
  call *c = req->data;
  uv_buf_t buf = uv_buf_init((char *)c->request, (unsigned)strlen(c->request));
  if (status < 0) {
    call_finish(c, status);
    return;
  }
  /* Before a byte is sent: the server must run as the node's user. */
  if ((status = gv_cli_check_node(&c->pipe, c->path, &c->why)) < 0) {
    call_finish(c, status);
    return;
  }
  c->write.data = c;
  if (uv_write(&c->write, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
    call_finish(c, -EIO);
}

static void on_timeout(uv_timer_t *t) { call_finish(t->data, -ETIMEDOUT); }

cJSON *gv_ctl_call(const char *cmd, const char *dir, const char *request,
                   uint64_t timeout_ms, bool *no_node) {
  char path[4200];
  uv_loop_t loop;
  call c;
  cJSON *o = NULL;
  uid_t owner;
  int rc;

  memset(&c, 0, sizeof(c));
  if (no_node != NULL)
    *no_node = false;
  c.request = request;
  c.path = path;
  snprintf(path, sizeof(path), "%s/control.sock", dir);
  /* The socket must be the node's own, not one planted by someone else
   * (docs/NODE.md, "Who may touch the data directory"). */
  if ((rc = gv_cli_check_sock(path, &owner, &c.why)) == -ENOENT) {
    if (no_node != NULL)
      *no_node = true;
    fprintf(stderr,
            "grapevine %s: no node is running on %s (start one with "
            "'grapevine node')\n",
            cmd, dir);
    return NULL;
  } else if (rc < 0) {
    fprintf(stderr, "grapevine %s: %s\n", cmd, c.why.text);
    return NULL;
  }
  signal(SIGPIPE, SIG_IGN); /* a closed socket shows as EPIPE */
  uv_loop_init(&loop);
  uv_pipe_init(&loop, &c.pipe, 0);
  uv_timer_init(&loop, &c.timer);
  c.pipe.data = c.timer.data = c.connect.data = &c;
  uv_pipe_connect(&c.connect, &c.pipe, path, on_connect);
  uv_timer_start(&c.timer, on_timeout, timeout_ms, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if ((c.rc == UV_ENOENT || c.rc == UV_ECONNREFUSED) && no_node != NULL)
    *no_node = true;
  if (c.rc == UV_ENOENT || c.rc == UV_ECONNREFUSED)
    fprintf(stderr,
            "grapevine %s: no node is running on %s (start one with "
            "'grapevine node')\n",
            cmd, dir);
  else if (c.rc < 0 && c.why.text[0] != '\0') /* the server was refused */
    fprintf(stderr, "grapevine %s: %s\n", cmd, c.why.text);
  else if (c.rc < 0)
    fprintf(stderr, "grapevine %s: the node did not answer: %s\n", cmd,
            uv_strerror(c.rc));
  else if ((o = cJSON_ParseWithLength(c.reply, c.len)) == NULL)
    fprintf(stderr, "grapevine %s: the node's answer is not JSON\n", cmd);
  free(c.reply);
  return o;
}

/* Prints the node's answer: JSON as is, or a failure as one line. Returns
 * the exit status for a non-ok answer, or -1 when the caller should go on
 * to print a success in its own words. */
static int check_reply(const char *cmd, cJSON *o, bool json) {
  const cJSON *ok = cJSON_GetObjectItem(o, "ok");
  char *txt;

  if (json) {
    txt = cJSON_PrintUnformatted(o);
    puts(txt);
    free(txt);
    return cJSON_IsTrue(ok) ? 0 : 1;
  }
  if (cJSON_IsTrue(ok))
    return -1;
  fprintf(stderr, "grapevine %s: %s\n", cmd,
          cJSON_GetStringValue(cJSON_GetObjectItem(o, "reason")));
  return 1;
}

static const char *str(const cJSON *o, const char *key) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
  return s != NULL ? s : "";
}

static double num(const cJSON *o, const char *key) {
  return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

static void join(const cJSON *arr, char *out, size_t cap) {
  const cJSON *it;
  size_t off = 0;
  out[0] = '\0';
  cJSON_ArrayForEach(it, arr) {
    if (cJSON_IsString(it))
      off += (size_t)snprintf(out + off, off < cap ? cap - off : 0, "%s%s",
                              off ? "," : "", it->valuestring);
  }
  if (off == 0)
    snprintf(out, cap, "-");
}

static void print_peers(const cJSON *arr, int64_t now) {
  const cJSON *p;
  printf("%-12s  %-22s %-5s %-4s %5s %5s %9s %-4s %5s %7s %s\n", "ID",
         "ADDRESS", "BCAST", "BOOT", "AVAIL", "PERF", "SEEN", "LINK", "SCORE",
         "RTT", "REPOSITORIES");
  cJSON_ArrayForEach(p, arr) {
    char addrs[256], repos[512], seen[32], score[16] = "-", rtt[16] = "-";
    double ago = ((double)now - num(p, "last_seen")) / 1000.0;
    const cJSON *l = cJSON_GetObjectItem(p, "link");
    if (cJSON_IsObject(l)) {
      snprintf(score, sizeof(score), "%.0f", num(l, "score"));
      if (num(l, "rtt_ms") >= 0)
        snprintf(rtt, sizeof(rtt), "%.1fms", num(l, "rtt_ms"));
    }
    join(cJSON_GetObjectItem(p, "addresses"), addrs, sizeof(addrs));
    join(cJSON_GetObjectItem(p, "repositories"), repos, sizeof(repos));
    if (ago < 120)
      snprintf(seen, sizeof(seen), "%.0fs ago", fmax(ago, 0));
    else
      snprintf(seen, sizeof(seen), "%.0fm ago", ago / 60);
    printf("%-12.12s  %-22s %-5s %-4s %5.0f %5.0f %9s %-4s %5s %7s %s\n",
           str(p, "id"), addrs,
           cJSON_IsTrue(cJSON_GetObjectItem(p, "broadcasting")) ? "yes" : "no",
           cJSON_IsTrue(cJSON_GetObjectItem(p, "bootstrap")) ? "yes" : "no",
           num(p, "availability"), num(p, "performance"), seen,
           cJSON_IsTrue(cJSON_GetObjectItem(p, "connected")) ? "up" : "-",
           score, rtt, repos);
  }
}

typedef struct cmd_spec {
  const char *name, *usage, *about;
  int min_args, max_args;
} cmd_spec;

/* Shared option parsing: --data-dir, --json, --help, plus request's
 * --max/--wait and broadcast's --wait (NULL: the option is refused). Returns 0
 * to go on, else the exit status. */
static int parse(const cmd_spec *spec, int argc, char **argv, char *dir,
                 size_t cap, bool *json, long *max, long *wait) {
  static const struct option opts[] = {
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"max", required_argument, NULL, 'm'},
      {"wait", required_argument, NULL, 'w'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *dflag = NULL;
  int opt;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (opt) {
    case 'd': dflag = optarg; break;
    case 'j': *json = true; break;
    case 'm':
    case 'w':
      if ((opt == 'm' ? max : wait) == NULL)
        goto usage;
      *(opt == 'm' ? max : wait) = strtol(optarg, &end, 10);
      if (*end != '\0')
        goto usage;
      break;
    case 'h':
      printf(
          "usage: grapevine %s %s\n\n%s\n\n  --data-dir DIR  the node's data "
          "directory (default: $GRAPEVINE_DIR,\n                  else "
          "$XDG_DATA_HOME/grapevine)\n  --json          print the node's "
          "JSON answer\n",
          spec->name, spec->usage, spec->about);
      return 0 + 100;
    default: goto usage;
    }
  }
  if (argc - optind < spec->min_args || argc - optind > spec->max_args)
    goto usage;
  if (gv_cli_data_dir(dflag, dir, cap) < 0) {
    fprintf(stderr,
            "grapevine %s: cannot tell the data directory; pass "
            "--data-dir DIR\n",
            spec->name);
    return 1;
  }
  return 0;
usage:
  fprintf(stderr, "usage: grapevine %s %s\n", spec->name, spec->usage);
  return 2;
}

#define PARSE(spec, max, wait)                                                 \
  do {                                                                         \
    int prc = parse(&spec, argc, argv, dir, sizeof(dir), &json, max, wait);    \
    if (prc != 0)                                                              \
      return prc == 100 ? 0 : prc;                                             \
  } while (0)

/* Prints a successful answer in the command's own words; arg is the
 * command's argument, if any. */
typedef void (*reply_printer)(const cJSON *o, const char *arg);

/* One request, one answer: with --json the node's answer as is, else the
 * printer's words; a failure as one line. Returns the exit status. */
static int exchange(const char *cmd, const char *dir, const char *req,
                    uint64_t timeout_ms, bool json, reply_printer print,
                    const char *arg) {
  cJSON *o = gv_ctl_call(cmd, dir, req, timeout_ms, NULL);
  int rc;

  if (o == NULL)
    return 1;
  if ((rc = check_reply(cmd, o, json)) < 0) {
    print(o, arg);
    rc = 0;
  }
  cJSON_Delete(o);
  return rc;
}

/* 0 for a repository name, else a one-line reason and exit status 2. */
static int repo_arg(const char *cmd, const char *name) {
  if (gv_repo_name_check(name, strlen(name)) == 0)
    return 0;
  fprintf(stderr,
          "grapevine %s: '%s' is not a repository name (1..%d of "
          "A-Za-z0-9._-/:@+)\n",
          cmd, name, GV_REPO_MAX);
  return 2;
}

static void print_status(const cJSON *o, const char *arg) {
  char repos[1024];
  double up = num(o, "uptime_s");

  (void)arg;
  join(cJSON_GetObjectItem(o, "repos"), repos, sizeof(repos));
  printf("node       %s\n", str(o, "id"));
  printf("uptime     %.0fh %02.0fm %02.0fs\n", floor(up / 3600),
         fmod(floor(up / 60), 60), fmod(up, 60));
  printf("links      %.0f up, %.0f handshaking\n", num(o, "links"),
         num(o, "handshaking"));
  printf("table      %.0f peers\n", num(o, "table"));
  if (cJSON_IsTrue(cJSON_GetObjectItem(o, "broadcasting")))
    printf("mode       broadcasting on %s%s\n", str(o, "listen"),
           cJSON_IsTrue(cJSON_GetObjectItem(o, "bootstrap")) ? ", bootstrap"
                                                             : "");
  else
    printf("mode       silent (dials out only; address never shared)\n");
  printf("repos      %s\n", repos);
  printf("data       %s\n", str(o, "data_dir"));
}

static void print_holders(const cJSON *o, const char *repo) {
  const cJSON *arr = cJSON_GetObjectItem(o, "peers");
  printf("%d node(s) hold '%s'\n", cJSON_GetArraySize(arr), repo);
  if (cJSON_GetArraySize(arr) > 0)
    print_peers(arr, gv_cli_now_ms());
}

static void print_repos(const cJSON *o, const char *arg) {
  char repos[1024];
  (void)arg;
  join(cJSON_GetObjectItem(o, "repos"), repos, sizeof(repos));
  printf("repositories: %s\n", repos);
}

/* True if a later command changed the broadcast state during the wait:
 * the state asked for does not stand. */
static bool broadcast_superseded(const cJSON *o) {
  return cJSON_IsTrue(
      cJSON_GetObjectItem(cJSON_GetObjectItem(o, "uptake"), "superseded"));
}

/* The uptake, plainly: how many neighbours confirmed the new record. */
static void print_broadcast(const cJSON *o, const char *arg) {
  const cJSON *u = cJSON_GetObjectItem(o, "uptake");
  bool on = strcmp(arg, "on") == 0;
  double links, ok;

  if (!cJSON_IsObject(u)) {
    printf("broadcast %s\n", on ? "on: this node's address is shared"
                                : "off: the network forgets this node's "
                                  "address (not waiting for the uptake)");
    return;
  }
  if (broadcast_superseded(o)) {
    fprintf(stderr,
            "grapevine broadcast %s: the state was changed by a later "
            "command during the wait; broadcasting is now %s\n",
            arg,
            cJSON_IsTrue(cJSON_GetObjectItem(u, "broadcasting")) ? "on"
                                                                 : "off");
    return;
  }
  links = num(u, "neighbours");
  ok = num(u, "confirmed");
  if (links == 0) {
    printf("broadcast %s: no neighbour is linked now; the update goes out "
           "when a link comes up\n",
           arg);
    return;
  }
  printf("broadcast %s: taken up by %.0f of %.0f neighbour%s", arg, ok, links,
         links == 1 ? "" : "s");
  if (ok < links)
    printf(" (%.0f did not confirm within %.0f s)", links - ok,
           num(u, "wait_ms") / 1000.0);
  printf("\n");
}

int gv_cmd_status(int argc, char **argv) {
  static const cmd_spec spec = {
      "status", "[--data-dir DIR] [--json]",
      "Shows the running node: id, uptime, links, table size, and whether it\n"
      "broadcasts its address or is a bootstrap node.",
      0, 0};
  char dir[4096];
  bool json = false;

  PARSE(spec, NULL, NULL);
  return exchange("status", dir, "{\"cmd\":\"status\"}\n", 5000, json,
                  print_status, NULL);
}

int gv_cmd_peers(int argc, char **argv) {
  static const cmd_spec spec = {
      "peers", "[--data-dir DIR] [--json]",
      "Prints the node's peer table with scores. Silent nodes have no "
      "address.",
      0, 0};
  char dir[4096];
  bool json = false;
  cJSON *o;
  int rc;

  PARSE(spec, NULL, NULL);
  if ((o = gv_ctl_call("peers", dir, "{\"cmd\":\"peers\"}\n", 5000, NULL)) ==
      NULL)
    return 1;
  if ((rc = check_reply("peers", o, false)) < 0) {
    if (json) { /* the contract for scripts: the array itself */
      char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "peers"));
      puts(txt);
      free(txt);
    } else {
      print_peers(cJSON_GetObjectItem(o, "peers"), gv_cli_now_ms());
    }
    rc = 0;
  }
  cJSON_Delete(o);
  return rc;
}

int gv_cmd_request(int argc, char **argv) {
  static const cmd_spec spec = {
      "request", "REPO [--max N] [--wait MS] [--data-dir DIR] [--json]",
      "Asks the network who holds repository REPO (a PEER_REQUEST), waits\n"
      "up to --wait ms (default 3000) and prints the matching nodes.",
      1, 1};
  char dir[4096], req[256];
  bool json = false;
  long max = 16, wait = 3000;
  cJSON *r;
  char *t;
  int rc;

  PARSE(spec, &max, &wait);
  if ((rc = repo_arg("request", argv[optind])) != 0)
    return rc;
  if (max < 1 || max > GV_MAX_PEERS || wait < 1 || wait > GV_CTL_WAIT_MAX_MS) {
    fprintf(stderr, "grapevine request: --max takes 1..%d, --wait 1..%d\n",
            GV_MAX_PEERS, GV_CTL_WAIT_MAX_MS);
    return 2;
  }
  r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cmd", "request");
  cJSON_AddStringToObject(r, "repo", argv[optind]);
  cJSON_AddNumberToObject(r, "max", (double)max);
  cJSON_AddNumberToObject(r, "wait_ms", (double)wait);
  t = cJSON_PrintUnformatted(r);
  snprintf(req, sizeof(req), "%s\n", t);
  free(t);
  cJSON_Delete(r);
  return exchange("request", dir, req, (uint64_t)wait + 5000, json,
                  print_holders, argv[optind]);
}

int gv_cmd_repo(int argc, char **argv) {
  static const cmd_spec spec = {
      "repo", "add|rm NAME [--data-dir DIR] [--json]",
      "Adds or removes a repository this node holds, and tells the network\n"
      "(a PEER_UPDATE).",
      2, 2};
  char dir[4096], req[256];
  bool json = false;
  int rc;

  PARSE(spec, NULL, NULL);
  if (strcmp(argv[optind], "add") != 0 && strcmp(argv[optind], "rm") != 0) {
    fprintf(stderr, "usage: grapevine repo %s\n", spec.usage);
    return 2;
  }
  if ((rc = repo_arg("repo", argv[optind + 1])) != 0)
    return rc;
  snprintf(req, sizeof(req),
           "{\"cmd\":\"repo\",\"op\":\"%s\",\"name\":\"%s\"}\n", argv[optind],
           argv[optind + 1]);
  return exchange("repo", dir, req, 5000, json, print_repos, NULL);
}

int gv_cmd_broadcast(int argc, char **argv) {
  static const cmd_spec spec = {
      "broadcast", "on|off [--wait MS] [--data-dir DIR] [--json]",
      "Switches whether this node shares its address. 'off' publishes a\n"
      "newer signed record without it, and every node forgets it. Waits up\n"
      "to --wait ms (default 10000; 0: do not wait) until the neighbours\n"
      "confirm they took the new record, and says how many did; exits 1\n"
      "if a later command changed the state during the wait.",
      1, 1};
  cJSON *o;
  int rc;
  char dir[4096], req[96];
  bool json = false, on;
  long wait = GV_UPTAKE_WAIT_MS;

  PARSE(spec, NULL, &wait);
  on = strcmp(argv[optind], "on") == 0;
  if (!on && strcmp(argv[optind], "off") != 0) {
    fprintf(stderr, "usage: grapevine broadcast %s\n", spec.usage);
    return 2;
  }
  if (wait < 0 || wait > GV_CTL_WAIT_MAX_MS) {
    fprintf(stderr, "grapevine broadcast: --wait takes 0..%d\n",
            GV_CTL_WAIT_MAX_MS);
    return 2;
  }
  snprintf(req, sizeof(req),
           "{\"cmd\":\"broadcast\",\"on\":%s,\"wait_ms\":%ld}\n",
           on ? "true" : "false", wait);
  /* Not exchange(): a superseded wait exits 1, with --json too. */
  o = gv_ctl_call("broadcast", dir, req, (uint64_t)wait + 5000, NULL);
  if (o == NULL)
    return 1;
  if ((rc = check_reply("broadcast", o, json)) < 0) {
    print_broadcast(o, argv[optind]);
    rc = 0;
  }
  if (rc == 0 && broadcast_superseded(o))
    rc = 1;
  cJSON_Delete(o);
  return rc;
}

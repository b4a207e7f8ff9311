/* `grapevine mcp`: the MCP server's adapter. The protocol is node/mcp.c;
 * this file owns the I/O: stdin (one JSON-RPC message a line, at most
 * GV_RREQ_LINE_MAX bytes), stdout (JSON-RPC only; logs go to stderr), and
 * the node's relay socket through node/aclient.h. `grapevine mcp config`
 * prints the snippet that makes an MCP client start it.
 *
 * A relay request made while the connection is not up waits for it at
 * most HOLD_MS (the connection comes up a moment after initialize, and
 * again after a node restart), then fails as NODE_DOWN with the reason the
 * client gave.
 *
 * Output is a queue that libuv writes (stdout a pipe, socket or tty); a
 * file is written at once. Past OUT_HIGH bytes queued, stdin is not read
 * until the queue falls to OUT_LOW: a client that writes before it reads
 * is served, one that never reads stops being read, and the loop never
 * waits on stdout.
 *
 * The process, as states:
 *
 *   SERVING --stdin ends, or stdout fails (end_input)--> DRAINING
 *   DRAINING --nothing held or unflushed (settle, finish)--> CLOSING
 *   CLOSING --stdout's queue written (close_out)--> exit
 *
 *  - SERVING: lines in, answers out.
 *  - DRAINING: stdin is no longer read. Held requests are sent once the
 *    connection is up, or fail after HOLD_MS (their answers queued). Then
 *    a `subscribe` (changes nothing: we are subscribed) goes out as a
 *    barrier: its answer means the node has read every line before it, so
 *    the requests sent stand. Their answers are not waited for.
 *  - CLOSING: the relay client and timers close; stdout closes once its
 *    queue is written (at once, discarded, if stdout failed).
 *  - LINGER_MS after DRAINING began, whatever is left is given up (a node
 *    that does not answer, a client that does not read): exit all the
 *    same. The exit status is 0 unless stdin or stdout could not be set
 *    up. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aclient.h"
#include "cli.h"
#include "mcp.h"
#include "relayreq.h"

#define HOLD_MS 1000
#define LINGER_MS 10000
#define READ_SLAB 65536
#define OUT_HIGH ((size_t)16 << 20) /* queued: stop reading stdin */
#define OUT_LOW (OUT_HIGH / 2)      /* queued: read stdin again */

typedef struct held {
  uint64_t token;
  cJSON *req;
  uint64_t deadline; /* uv_now */
} held;

typedef union stdio_h {
  uv_pipe_t pipe;
  uv_tty_t tty;
} stdio_h;

typedef struct srv {
  uv_loop_t *loop;
  gv_mcp *core;
  gv_aclient *ac; /* NULL until the name is known */
  char sock[PATH_MAX + 16];
  const char *flag_as; /* --as, or NULL */
  char why[256];       /* why the node is not reachable, for NODE_DOWN */
  /* stdin: a stream (pipe, tty) or a file read through the loop */
  stdio_h in;
  bool in_stream, in_open, in_paused, fs_busy;
  uv_fs_t fsreq;
  char slab[READ_SLAB];
  char *line; /* the line read so far: at most GV_RREQ_LINE_MAX bytes */
  size_t len;
  bool discarding; /* inside a line past the limit */
  /* stdout: a stream written by the loop, or a file written at once */
  stdio_h out;
  bool out_stream, out_open, out_broken;
  size_t out_queued; /* bytes handed to uv_write, not yet called back */
  held *holds;
  size_t nholds, capholds;
  uv_timer_t hold_timer, linger_timer;
  /* requests written to the node, and how many of them a barrier's
   * answer has shown the node read */
  uint64_t sent, flushed, barrier_at;
  bool barrier; /* one is in flight */
  bool in_done; /* DRAINING or CLOSING */
  bool closing; /* CLOSING */
} srv;

typedef struct answer_box {
  srv *s;
  uint64_t token;
} answer_box;

typedef struct outw {
  uv_write_t w; /* w.data: the srv */
  size_t len;
  char data[];
} outw;

static void end_input(srv *s);
static void resume_input(srv *s);

/* ---- stdout ---- */

/* The last step: stdout and the linger timer close, and the loop ends. */
static void close_out(srv *s) {
  if (s->out_open) {
    uv_close((uv_handle_t *)&s->out, NULL); /* cancels what is queued */
    s->out_open = false;
  }
  if (!uv_is_closing((uv_handle_t *)&s->linger_timer))
    uv_close((uv_handle_t *)&s->linger_timer, NULL);
}

/* stdout failed: the client is gone. Nothing more is written. */
static void client_gone(srv *s) {
  if (s->out_broken)
    return;
  s->out_broken = true;
  if (s->out_open) {
    uv_close((uv_handle_t *)&s->out, NULL);
    s->out_open = false;
  }
  end_input(s);
}

static void out_written(uv_write_t *w, int status) {
  outw *o = (outw *)w;
  srv *s = w->data;
  s->out_queued -= o->len;
  free(o);
  if (status < 0 && status != UV_ECANCELED && !s->out_broken) {
    fprintf(stderr, "grapevine mcp: stdout: %s\n", uv_strerror(status));
    client_gone(s);
  }
  if (s->closing) {
    if (s->out_queued == 0)
      close_out(s);
  } else if (s->in_paused && s->out_queued <= OUT_LOW) {
    resume_input(s);
  }
}

/* Queues n bytes for the client; past OUT_HIGH queued, stdin waits. */
static void out_line(srv *s, const char *p, size_t n) {
  if (s->out_broken)
    return;
  if (!s->out_stream) { /* a file: no reader to wait for */
    while (n > 0) {
      ssize_t w = write(STDOUT_FILENO, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        fprintf(stderr, "grapevine mcp: stdout: %s\n",
                w < 0 ? strerror(errno) : "nothing written");
        client_gone(s);
        return;
      }
      p += w;
      n -= (size_t)w;
    }
    return;
  }
  outw *o = malloc(sizeof(*o) + n);
  int rc = UV_ENOMEM;
  if (o != NULL) {
    memcpy(o->data, p, n);
    o->len = n;
    o->w.data = s;
    uv_buf_t b = uv_buf_init(o->data, (unsigned)n);
    rc = uv_write(&o->w, (uv_stream_t *)&s->out, &b, 1, out_written);
  }
  if (rc < 0) {
    free(o);
    fprintf(stderr, "grapevine mcp: stdout: %s\n", uv_strerror(rc));
    client_gone(s);
    return;
  }
  s->out_queued += n;
  if (s->out_queued > OUT_HIGH && !s->in_paused && !s->in_done) {
    s->in_paused = true;
    if (s->in_stream)
      uv_read_stop((uv_stream_t *)&s->in);
    /* a file: fs_read_cb reads on only when not paused */
  }
}

static int start_output(srv *s) {
  uv_handle_type t = uv_guess_handle(STDOUT_FILENO);
  int rc;
  if (t == UV_NAMED_PIPE || t == UV_TCP) {
    if ((rc = uv_pipe_init(s->loop, &s->out.pipe, 0)) < 0)
      return rc;
    if ((rc = uv_pipe_open(&s->out.pipe, STDOUT_FILENO)) < 0) {
      uv_close((uv_handle_t *)&s->out, NULL);
      return rc;
    }
  } else if (t == UV_TTY) {
    if ((rc = uv_tty_init(s->loop, &s->out.tty, STDOUT_FILENO, 0)) < 0)
      return rc;
  } else {
    return 0;
  }
  s->out_stream = s->out_open = true;
  s->out.pipe.data = s;
  return 0;
}

/* ---- the relay connection ---- */

static void answer_cb(void *arg, const cJSON *answer);
static void drain(srv *s);
static void hold_expired(uv_timer_t *t);

/* Sends CALL `token`, or holds it until the connection is up. */
static void dispatch(srv *s, uint64_t token, cJSON *req) {
  if (s->ac != NULL && gv_aclient_up(s->ac)) {
    answer_box *b = malloc(sizeof(*b));
    if (b == NULL) {
      cJSON_Delete(req);
      gv_mcp_answer(s->core, token, NULL, "out of memory");
      return;
    }
    *b = (answer_box){s, token};
    if (gv_aclient_call(s->ac, req, answer_cb, b) < 0) { /* req freed */
      free(b);
      gv_mcp_answer(s->core, token, NULL, s->why);
      return;
    }
    s->sent++;
    return;
  }
  if (s->ac == NULL && s->why[0] != '\0') { /* no name could be made */
    cJSON_Delete(req);
    gv_mcp_answer(s->core, token, NULL, s->why);
    return;
  }
  if (s->nholds == s->capholds) {
    size_t cap = s->capholds ? s->capholds * 2 : 16;
    held *h = realloc(s->holds, cap * sizeof(*h));
    if (h == NULL) {
      cJSON_Delete(req);
      gv_mcp_answer(s->core, token, NULL, "out of memory");
      return;
    }
    s->holds = h;
    s->capholds = cap;
  }
  s->holds[s->nholds++] = (held){token, req, uv_now(s->loop) + HOLD_MS};
  if (!uv_is_active((uv_handle_t *)&s->hold_timer))
    uv_timer_start(&s->hold_timer, hold_expired, HOLD_MS, 0);
}

/* Fails the holds whose time is up, sends them all if the connection is
 * up. */
static void run_holds(srv *s, uint64_t now) {
  size_t k = 0;
  bool up = s->ac != NULL && gv_aclient_up(s->ac);
  for (size_t i = 0; i < s->nholds; i++) {
    held h = s->holds[i];
    if (up) {
      dispatch(s, h.token, h.req);
    } else if (h.deadline <= now) {
      cJSON_Delete(h.req);
      gv_mcp_answer(s->core, h.token, NULL,
                    s->why[0] ? s->why
                              : "the node's relay socket does not "
                                "answer");
    } else {
      s->holds[k++] = h;
    }
  }
  s->nholds = k;
  if (k > 0 && !s->closing)
    uv_timer_start(&s->hold_timer, hold_expired,
                   s->holds[0].deadline > now ? s->holds[0].deadline - now : 1,
                   0);
}

static void hold_expired(uv_timer_t *t) {
  srv *s = t->data;
  run_holds(s, uv_now(s->loop));
  drain(s);
}

static void on_state(void *ctx, bool up, const char *why) {
  srv *s = ctx;
  if (up) {
    s->why[0] = '\0';
    fprintf(stderr, "grapevine mcp: connected to the node as %s\n",
            gv_aclient_as(s->ac));
    gv_mcp_relay_up(s->core);
    run_holds(s, uv_now(s->loop));
  } else {
    snprintf(s->why, sizeof(s->why), "%s", why ? why : "connection lost");
    fprintf(stderr, "grapevine mcp: node unreachable: %s\n", s->why);
  }
  drain(s);
}

static void on_event(void *ctx, const cJSON *ev) {
  srv *s = ctx;
  gv_mcp_event(s->core, ev);
  drain(s);
}

static void answer_cb(void *arg, const cJSON *answer) {
  answer_box *b = arg;
  srv *s = b->s;
  uint64_t token = b->token;
  free(b);
  if (s->closing)
    return; /* the client is gone: nobody to tell */
  gv_mcp_answer(s->core, token, answer,
                s->why[0] ? s->why : "the connection to the node dropped");
  drain(s);
}

static void connect_as(srv *s, const char *fallback) {
  static const gv_aclient_cbs cbs = {on_state, on_event};
  char as[GV_RADDR_NAME_MAX + 1];
  gv_why why = {{0}};
  int rc;
  if (gv_aclient_name(s->flag_as, fallback, as, sizeof(as), &why) < 0) {
    snprintf(s->why, sizeof(s->why), "FIELD: no agent name: %s (use --as)",
             why.text);
    fprintf(stderr, "grapevine mcp: %s\n", s->why);
    return;
  }
  if ((rc = gv_aclient_start(&s->ac, s->loop, s->sock, as, &cbs, s)) < 0) {
    snprintf(s->why, sizeof(s->why), "cannot start the relay client: %s",
             gv_strerror(rc));
    fprintf(stderr, "grapevine mcp: %s\n", s->why);
    s->ac = NULL;
  }
}

/* ---- ending: DRAINING and CLOSING ---- */

/* CLOSING: no answer is awaited any more. */
static void finish(srv *s) {
  if (s->closing)
    return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->hold_timer, NULL);
  for (size_t i = 0; i < s->nholds; i++) /* only if LINGER_MS ran out */
    cJSON_Delete(s->holds[i].req);
  s->nholds = 0;
  if (s->ac != NULL) {
    gv_aclient_close(s->ac); /* its NULL answers find s->closing */
    s->ac = NULL;
  }
  if (s->out_queued == 0)
    close_out(s);
}

static void settle(srv *s);

static void barrier_cb(void *arg, const cJSON *answer) {
  srv *s = arg;
  s->barrier = false;
  if (s->closing)
    return;
  /* answered: the node read what came before; NULL: the connection
   * dropped, and what it had not read is answered NULL already */
  s->flushed = answer != NULL ? s->barrier_at : s->sent;
  settle(s);
}

/* DRAINING: once nothing is held, makes sure the node read what was
 * sent (the barrier), then finishes. */
static void settle(srv *s) {
  if (!s->in_done || s->closing || s->nholds > 0 || s->barrier)
    return;
  if (s->flushed < s->sent && s->ac != NULL && gv_aclient_up(s->ac)) {
    cJSON *req = cJSON_CreateObject();
    if (req != NULL && cJSON_AddStringToObject(req, "cmd", "subscribe")) {
      s->barrier_at = s->sent;
      if (gv_aclient_call(s->ac, req, barrier_cb, s) == 0) {
        s->barrier = true;
        return;
      }
    } else {
      cJSON_Delete(req);
    }
  }
  finish(s);
}

static void linger_over(uv_timer_t *t) {
  srv *s = t->data;
  fprintf(stderr, "grapevine mcp: %s after %d ms: exiting\n",
          s->closing ? "stdout still not written"
                     : "the node still has not answered",
          LINGER_MS);
  finish(s);
  close_out(s);
}

/* DRAINING: stdin is read no more. */
static void end_input(srv *s) {
  if (s->in_done)
    return;
  s->in_done = true;
  if (s->in_open) {
    uv_read_stop((uv_stream_t *)&s->in);
    uv_close((uv_handle_t *)&s->in, NULL);
    s->in_open = false;
  }
  uv_timer_start(&s->linger_timer, linger_over, LINGER_MS, 0);
  settle(s);
}

/* Carries out what the core asks, until it asks nothing. */
static void drain(srv *s) {
  gv_mcp_act a;
  while (gv_mcp_next(s->core, &a)) {
    if (a.kind == GV_MCP_OUT) {
      out_line(s, a.line, strlen(a.line));
    } else if (a.kind == GV_MCP_CALL) {
      if (s->closing)
        cJSON_Delete(a.req); /* the core is freed after: no answer due */
      else
        dispatch(s, a.token, a.req);
    } else if (s->ac == NULL && !s->closing) {
      connect_as(s, a.fallback);
    }
  }
  settle(s);
}

/* ---- stdin: lines of at most GV_RREQ_LINE_MAX bytes ---- */

static void feed(srv *s, const char *p, size_t n) {
  while (n > 0 && !s->in_done) {
    const char *nl = memchr(p, '\n', n);
    size_t seg = nl ? (size_t)(nl - p) : n;
    if (s->discarding) {
      /* nothing: the rest of a line already answered as too long */
    } else if (s->len + seg > GV_RREQ_LINE_MAX) {
      s->len = 0;
      s->discarding = true;
      gv_mcp_line_too_long(s->core, GV_RREQ_LINE_MAX);
      drain(s);
    } else {
      memcpy(s->line + s->len, p, seg);
      s->len += seg;
    }
    if (nl == NULL)
      return;
    if (!s->discarding) {
      gv_mcp_line(s->core, s->line, s->len);
      drain(s);
    }
    s->len = 0;
    s->discarding = false;
    p = nl + 1;
    n -= seg + 1;
  }
}

/* stdin ended: a last line without its newline counts. */
static void end_of_input(srv *s) {
  if (s->len > 0 && !s->discarding && !s->in_done) {
    gv_mcp_line(s->core, s->line, s->len);
    drain(s);
  }
  s->len = 0;
  end_input(s);
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  srv *s = h->data;
  (void)hint;
  *b = uv_buf_init(s->slab, sizeof(s->slab));
}

static void in_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  srv *s = st->data;
  if (n > 0)
    feed(s, b->base, (size_t)n);
  else if (n < 0) {
    if (n != UV_EOF)
      fprintf(stderr, "grapevine mcp: stdin: %s\n", uv_strerror((int)n));
    end_of_input(s);
  }
}

static void fs_read_cb(uv_fs_t *req);

static int read_file(srv *s) {
  uv_buf_t b = uv_buf_init(s->slab, sizeof(s->slab));
  int rc = uv_fs_read(s->loop, &s->fsreq, STDIN_FILENO, &b, 1, -1, fs_read_cb);
  s->fs_busy = rc == 0;
  return rc;
}

static void fs_read_cb(uv_fs_t *req) {
  srv *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->fs_busy = false;
  if (s->in_done)
    return;
  if (n <= 0) {
    if (n < 0)
      fprintf(stderr, "grapevine mcp: stdin: %s\n", uv_strerror((int)n));
    end_of_input(s);
    return;
  }
  feed(s, s->slab, (size_t)n);
  int rc;
  if (!s->in_done && !s->in_paused && (rc = read_file(s)) < 0) {
    fprintf(stderr, "grapevine mcp: stdin: %s\n", uv_strerror(rc));
    end_of_input(s);
  }
}

/* The output queue fell to OUT_LOW: stdin is read again. */
static void resume_input(srv *s) {
  int rc = 0;
  s->in_paused = false;
  if (s->in_done)
    return;
  if (s->in_stream)
    rc = uv_read_start((uv_stream_t *)&s->in, in_alloc, in_read);
  else if (!s->fs_busy)
    rc = read_file(s);
  if (rc < 0) {
    fprintf(stderr, "grapevine mcp: stdin: %s\n", uv_strerror(rc));
    end_of_input(s);
  }
}

static int start_input(srv *s) {
  uv_handle_type t = uv_guess_handle(STDIN_FILENO);
  int rc;
  if (t == UV_NAMED_PIPE || t == UV_TCP) {
    if ((rc = uv_pipe_init(s->loop, &s->in.pipe, 0)) < 0)
      return rc;
    s->in_open = true; /* closed by end_input, opened or not */
    if ((rc = uv_pipe_open(&s->in.pipe, STDIN_FILENO)) < 0)
      return rc;
    s->in_stream = true;
  } else if (t == UV_TTY) {
    if ((rc = uv_tty_init(s->loop, &s->in.tty, STDIN_FILENO, 1)) < 0)
      return rc;
    s->in_open = s->in_stream = true;
  }
  if (s->in_stream) {
    s->in.pipe.data = s;
    return uv_read_start((uv_stream_t *)&s->in, in_alloc, in_read);
  }
  /* a file, /dev/null, ...: read through the loop's thread pool */
  s->fsreq.data = s;
  return read_file(s);
}

/* ---- mcp config ---- */

typedef struct cfgctx {
  const char *exe, *as, *dir;
} cfgctx;

/* A JSON string literal of s (escaped), printed. */
static void jstr(const char *s) {
  cJSON *v = cJSON_CreateString(s);
  char *p = v ? cJSON_PrintUnformatted(v) : NULL;
  fputs(p ? p : "\"\"", stdout);
  free(p);
  cJSON_Delete(v);
}

/* The JSON array of arguments. */
static void jargs(const cfgctx *c) {
  fputs("[\"mcp\"", stdout);
  if (c->as != NULL) {
    fputs(", \"--as\", ", stdout);
    jstr(c->as);
  }
  if (c->dir != NULL) {
    fputs(", \"--data-dir\", ", stdout);
    jstr(c->dir);
  }
  fputs("]", stdout);
}

/* The usual {"mcpServers":{"grapevine":{...}}} form; extra is added to
 * the server object (a line with its leading indent, or ""). */
static void json_form(const cfgctx *c, const char *top, const char *extra) {
  printf("{\n  \"%s\": {\n    \"grapevine\": {\n%s      \"command\": ", top,
         extra);
  jstr(c->exe);
  fputs(",\n      \"args\": ", stdout);
  jargs(c);
  fputs("\n    }\n  }\n}\n", stdout);
}

/* A shell word, quoted only if it needs it. */
static void shword(const char *s) {
  if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789._-/:@=+,") == strlen(s) &&
      *s != '\0') {
    fputs(s, stdout);
    return;
  }
  putchar('\'');
  for (; *s; s++)
    if (*s == '\'')
      fputs("'\\''", stdout);
    else
      putchar(*s);
  putchar('\'');
}

/* A TOML basic string: JSON's escapes are valid TOML ones. */
#define tstr jstr

/* Each client's form, as its own documentation gives it:
 *  - claude-code: docs.claude.com/en/docs/claude-code/mcp, "Option 3: Add
 *    a local stdio server" (`claude mcp add [options] <name> -- <command>
 *    [args...]`) and "Project scope" (.mcp.json, "mcpServers").
 *  - claude-desktop: modelcontextprotocol.io/quickstart/user
 *    (claude_desktop_config.json, "mcpServers", command/args).
 *  - cursor: cursor.com/docs/mcp (~/.cursor/mcp.json or .cursor/mcp.json,
 *    "mcpServers", command/args).
 *  - vscode: code.visualstudio.com/docs/copilot/reference/mcp-configuration
 *    (.vscode/mcp.json, "servers", "type": "stdio", command/args).
 *  - windsurf: docs.windsurf.com/windsurf/cascade/mcp
 *    (~/.codeium/windsurf/mcp_config.json, "mcpServers", command/args).
 *  - codex: developers.openai.com/codex/mcp (~/.codex/config.toml,
 *    [mcp_servers.<name>] command = "...", args = [...]).
 *  - gemini-cli: github.com/google-gemini/gemini-cli docs/tools/
 *    mcp-server.md (~/.gemini/settings.json, "mcpServers", command/args).
 *  - zed: zed.dev/docs/ai/mcp (settings.json, "context_servers",
 *    command/args). */
static void cfg_claude_code(const cfgctx *c) {
  fputs("# claude mcp add, in your project (--scope user: every project);\n"
        "# or the JSON below in .mcp.json at the project's root\n",
        stderr);
  fputs("claude mcp add grapevine -- ", stdout);
  shword(c->exe);
  fputs(" mcp", stdout);
  if (c->as != NULL) {
    fputs(" --as ", stdout);
    shword(c->as);
  }
  if (c->dir != NULL) {
    fputs(" --data-dir ", stdout);
    shword(c->dir);
  }
  fputs("\n\n", stdout);
  json_form(c, "mcpServers", "");
}

static void cfg_json(const cfgctx *c, const char *where, const char *top,
                     const char *extra) {
  fprintf(stderr, "# in %s:\n", where); /* stdout: the JSON alone */
  json_form(c, top, extra);
}

static void cfg_claude_desktop(const cfgctx *c) {
  cfg_json(
      c,
      "claude_desktop_config.json (Settings > Developer > Edit Config; "
      "~/Library/Application Support/Claude/ on macOS, %APPDATA%\\Claude\\ "
      "on Windows)",
      "mcpServers", "");
}
static void cfg_cursor(const cfgctx *c) {
  cfg_json(c,
           "~/.cursor/mcp.json (every project) or .cursor/mcp.json (this "
           "project)",
           "mcpServers", "");
}
static void cfg_vscode(const cfgctx *c) {
  cfg_json(c, ".vscode/mcp.json in the workspace", "servers",
           "      \"type\": \"stdio\",\n");
}
static void cfg_windsurf(const cfgctx *c) {
  cfg_json(c, "~/.codeium/windsurf/mcp_config.json", "mcpServers", "");
}
static void cfg_gemini(const cfgctx *c) {
  cfg_json(c,
           "~/.gemini/settings.json (or .gemini/settings.json in the "
           "project)",
           "mcpServers", "");
}
static void cfg_zed(const cfgctx *c) {
  cfg_json(c, "Zed's settings.json (zed: open settings)", "context_servers",
           "");
}
static void cfg_codex(const cfgctx *c) {
  fputs("# in ~/.codex/config.toml:\n", stderr);
  fputs("[mcp_servers.grapevine]\ncommand = ", stdout);
  tstr(c->exe);
  fputs("\nargs = ", stdout);
  jargs(c); /* a JSON array of strings is a TOML array */
  fputs("\n", stdout);
}

static const struct client {
  const char *name;
  void (*print)(const cfgctx *c);
  const char *what;
} clients[] = {
    {"claude-code", cfg_claude_code, "Claude Code (claude mcp add, .mcp.json)"},
    {"claude-desktop", cfg_claude_desktop, "Claude Desktop"},
    {"cursor", cfg_cursor, "Cursor"},
    {"vscode", cfg_vscode, "Visual Studio Code (Copilot agent mode)"},
    {"windsurf", cfg_windsurf, "Windsurf (Cascade)"},
    {"codex", cfg_codex, "OpenAI Codex CLI (TOML)"},
    {"gemini-cli", cfg_gemini, "Gemini CLI"},
    {"zed", cfg_zed, "Zed"},
};
#define NCLIENTS (sizeof(clients) / sizeof(clients[0]))

static void list_clients(FILE *f) {
  for (size_t i = 0; i < NCLIENTS; i++)
    fprintf(f, "  %-15s %s\n", clients[i].name, clients[i].what);
}

static const char config_usage[] =
    "usage: grapevine mcp config --client NAME [--as PROJECT:NAME] "
    "[--data-dir DIR]\n\n"
    "Prints what makes an MCP client start `grapevine mcp` (this binary, by\n"
    "its absolute path), with --as and --data-dir passed on when given.\n"
    "--client list names the clients.\n";

static int cmd_config(int argc, char **argv) {
  static const struct option opts[] = {
      {"client", required_argument, NULL, 'c'},
      {"as", required_argument, NULL, 'a'},
      {"data-dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *client = NULL, *dflag = NULL;
  cfgctx c = {0};
  char exe[PATH_MAX], dir[PATH_MAX], as[GV_RADDR_NAME_MAX + 1];
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'c': client = optarg; break;
    case 'a': c.as = optarg; break;
    case 'd': dflag = optarg; break;
    case 'h': fputs(config_usage, stdout); return 0;
    default: fputs(config_usage, stderr); return 2;
    }
  }
  if (client == NULL || optind != argc) {
    fputs(config_usage, stderr);
    return 2;
  }
  if (strcmp(client, "list") == 0) {
    list_clients(stdout);
    return 0;
  }
  const struct client *cl = NULL;
  for (size_t i = 0; i < NCLIENTS; i++)
    if (strcmp(clients[i].name, client) == 0)
      cl = &clients[i];
  if (cl == NULL) {
    fprintf(stderr, "grapevine mcp config: unknown client '%s'; known:\n",
            client);
    list_clients(stderr);
    return 2;
  }
  if (c.as != NULL) {
    gv_why why = {{0}};
    if (gv_aclient_name(c.as, "mcp", as, sizeof(as), &why) < 0) {
      fprintf(stderr, "grapevine mcp config: --as: %s\n", why.text);
      return 2;
    }
  }
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    perror("grapevine mcp config: /proc/self/exe");
    return 1;
  }
  exe[n] = '\0';
  c.exe = exe;
  if (dflag != NULL) { /* clients start us elsewhere: make it absolute */
    char cwd[PATH_MAX];
    if (dflag[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
      snprintf(dir, sizeof(dir), "%s", dflag);
    else if (snprintf(dir, sizeof(dir), "%s/%s", cwd, dflag) >=
             (int)sizeof(dir)) {
      fputs("grapevine mcp config: --data-dir: path too long\n", stderr);
      return 2;
    }
    c.dir = dir;
  }
  cl->print(&c);
  return 0;
}

/* ---- grapevine mcp ---- */

static const char mcp_usage[] =
    "usage: grapevine mcp [--as PROJECT:NAME] [--data-dir DIR]\n"
    "       grapevine mcp config --client NAME [--as ...] [--data-dir ...]\n\n"
    "An MCP server over stdio (JSON-RPC 2.0, one message a line) that an MCP\n"
    "client starts; it speaks to this machine's node through relay.sock.\n"
    "Tools: relay_send, relay_inbox (a peek by default), relay_read,\n"
    "relay_status, relay_agents; resource relay://inbox (subscribe to be\n"
    "told of new messages). Nothing is acknowledged for the agent: a\n"
    "message is delivered when relay_inbox takes it (peek false).\n\n"
    "  --as PROJECT:NAME  the agent's name (default $GRAPEVINE_AS, else\n"
    "                     <cwd basename>:<the client's name>)\n"
    "  --data-dir DIR     the node's data directory\n\n"
    "stdout carries only JSON-RPC; messages for people go to stderr.\n"
    "`grapevine mcp config --client list` names the clients it configures.\n";

int gv_cmd_mcp(int argc, char **argv) {
  static const struct option opts[] = {
      {"as", required_argument, NULL, 'a'},
      {"data-dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *dflag = NULL;
  char dir[PATH_MAX], as[GV_RADDR_NAME_MAX + 1];
  uint8_t key[16];
  uv_loop_t loop;
  srv *s;
  int opt, rc = 1;

  if (argc >= 2 && strcmp(argv[1], "config") == 0)
    return cmd_config(argc - 1, argv + 1);
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return 1;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'a': s->flag_as = optarg; break;
    case 'd': dflag = optarg; break;
    case 'h':
      fputs(mcp_usage, stdout);
      free(s);
      return 0;
    default:
      fputs(mcp_usage, stderr);
      free(s);
      return 2;
    }
  }
  if (optind != argc) {
    fputs(mcp_usage, stderr);
    free(s);
    return 2;
  }
  const char *env = getenv("GRAPEVINE_AS");
  bool have_name = s->flag_as != NULL || (env != NULL && *env);
  if (have_name) {
    gv_why why = {{0}};
    if (gv_aclient_name(s->flag_as, "mcp", as, sizeof(as), &why) < 0) {
      fprintf(stderr, "grapevine mcp: %s\n", why.text);
      free(s);
      return 2;
    }
  }
  if (gv_cli_data_dir(dflag, dir, sizeof(dir)) < 0) {
    fputs("grapevine mcp: cannot find the data directory (--data-dir)\n",
          stderr);
    free(s);
    return 2;
  }
  snprintf(s->sock, sizeof(s->sock), "%s/relay.sock", dir);
  s->line = malloc(GV_RREQ_LINE_MAX);
  randombytes_buf(key, sizeof(key));
  s->core = gv_mcp_new(have_name, key);
  if (s->line == NULL || s->core == NULL) {
    fputs("grapevine mcp: out of memory\n", stderr);
    goto out;
  }
  signal(SIGPIPE, SIG_IGN); /* a client gone shows as EPIPE */
  uv_loop_init(&loop);
  s->loop = &loop;
  uv_timer_init(&loop, &s->hold_timer);
  uv_timer_init(&loop, &s->linger_timer);
  s->hold_timer.data = s->linger_timer.data = s;
  if ((rc = start_output(s)) < 0) {
    fprintf(stderr, "grapevine mcp: stdout: %s\n", uv_strerror(rc));
    s->out_broken = true;
  } else if ((rc = start_input(s)) < 0) {
    fprintf(stderr, "grapevine mcp: stdin: %s\n", uv_strerror(rc));
  }
  if (rc < 0) {
    end_input(s); /* nothing was sent: straight to CLOSING */
    rc = 1;
  } else if (have_name) {
    connect_as(s, "mcp");
  }
  uv_run(&loop, UV_RUN_DEFAULT); /* until every handle is closed */
  gv_mcp_free(s->core);
  free(s->line);
  free(s->holds);
  fflush(stderr);
  uv_loop_close(&loop);
  free(s);
  return rc;
out:
  gv_mcp_free(s->core);
  free(s->line);
  free(s);
  return 1;
}

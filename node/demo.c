/* grapevine demo: the wire protocol end to end over real loopback TCP.
 *
 * Two identities, alice (silent) and bob (broadcasting), kept in --dir so
 * that re-runs reuse them. alice dials bob pinning his id; both run the
 * handshake, say HELLO and send a signed PEER_ANNOUNCEMENT; each validates
 * what it receives; bob shows that a tampered copy is rejected; then both
 * close with FINAL frames. Replaced by a local network when the node
 * exists. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "conn.h"
#include "msg.h"

#define DEMO_DEADLINE_MS 10000

typedef struct demo demo;

typedef struct demo_node {
  const char *name;
  demo *d;
  gv_identity id;
  char shortid[GV_ID_SHORT_LEN + 1];
  gv_conn *conn;
  int got_announcement;
  int closed;
  int close_status;
} demo_node;

struct demo {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t deadline;
  demo_node alice, bob;
  int port;
  uint64_t t_dial;
  int json;
  int failed;
  cJSON *report;
  cJSON *events;
};

static void say(const demo *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const demo *d, const char *fmt, ...) {
  va_list ap;
  if (d->json)
    return;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static demo_node *node_of(demo *d, const uint8_t *pk) {
  if (memcmp(pk, d->alice.id.pk, GV_ID_BYTES) == 0)
    return &d->alice;
  if (memcmp(pk, d->bob.id.pk, GV_ID_BYTES) == 0)
    return &d->bob;
  return NULL;
}

static void maybe_stop(demo *d) {
  if (!d->alice.closed || !d->bob.closed)
    return;
  uv_close((uv_handle_t *)&d->listener, NULL);
  uv_close((uv_handle_t *)&d->deadline, NULL);
}

static int send_hello(demo_node *n) {
  gv_msg m = {0};
  char *out;
  size_t len;
  int rc;

  m.type = GV_MSG_HELLO;
  m.ts = gv_cli_now_ms();
  m.u.hello.seq = 0;
  snprintf(m.u.hello.agent, sizeof(m.u.hello.agent), "%s", GV_AGENT);
  if ((rc = gv_msg_encode_link(&m, &out, &len)) < 0)
    return rc;
  rc = gv_conn_send(n->conn, (const uint8_t *)out, len);
  free(out);
  return rc;
}

/* A signed self-description: bob broadcasts his listening address, alice is
 * silent and so lists none. */
static int send_announcement(demo_node *n) {
  demo *d = n->d;
  gv_msg m = {0};
  char *out, addr[32];
  size_t len;
  int rc;

  m.type = GV_MSG_PEER_ANNOUNCEMENT;
  m.ttl = GV_TTL_ANNOUNCE;
  m.ts = gv_cli_now_ms();
  m.seq = (uint64_t)m.ts; /* strictly increasing across demo runs */
  m.u.peer.repos = "demo/hello\0demo/world"; /* bob names both */
  m.u.peer.n_repos = 1;
  if (n == &d->bob) {
    m.u.peer.broadcasting = true;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", d->port);
    gv_addr_parse(&m.u.peer.addrs[0], addr, strlen(addr));
    m.u.peer.n_addrs = 1;
    m.u.peer.n_repos = 2;
  }
  if ((rc = gv_msg_seal(&m, &n->id, &out, &len)) < 0)
    goto out;
  say(d, "[%s] -> PEER_ANNOUNCEMENT seq=%llu ttl=%u, %zu bytes, signed\n",
      n->name, (unsigned long long)m.seq, m.ttl, len);
  rc = gv_conn_send(n->conn, (const uint8_t *)out, len);
  free(out);
out:
  gv_msg_clear(&m);
  return rc;
}

static void on_open(gv_conn *c) {
  demo_node *n = gv_conn_data(c), *peer;
  demo *d = n->d;
  double ms = (double)(uv_hrtime() - d->t_dial) / 1e6;
  int rc;

  peer = node_of(d, gv_conn_peer_id(c));
  say(d, "[%s] link up: authenticated %s (%s)%s, %.2f ms after dial\n", n->name,
      peer ? peer->name : "a stranger", peer ? peer->shortid : "?",
      n == &d->alice ? ", the id alice pinned" : "", ms);
  if (n == &d->alice)
    cJSON_AddNumberToObject(d->report, "handshake_ms", ms);
  if ((rc = send_hello(n)) < 0 || (rc = send_announcement(n)) < 0) {
    fprintf(stderr, "grapevine demo: %s: send: %s\n", n->name, gv_strerror(rc));
    d->failed = 1;
    gv_conn_abort(c, rc);
  }
}

static cJSON *event(demo *d, demo_node *n, const gv_msg *m) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "at", n->name);
  cJSON_AddStringToObject(e, "type", gv_msg_type_name(m->type));
  cJSON_AddItemToArray(d->events, e);
  return e;
}

/* Shows that one changed byte of a signed body is caught. */
static void tamper_test(demo *d, const uint8_t *msg, size_t len) {
  uint8_t *copy = malloc(len);
  char *at;
  gv_msg m;
  gv_why why = {""};
  gv_msg_policy pol = {.now_ms = gv_cli_now_ms()};
  int rc;

  memcpy(copy, msg, len);
  at = memmem(copy, len, "demo/hello", 10);
  if (at != NULL)
    at[0] = 'D'; /* "Demo/hello": a forwarder rewriting a repository */
  rc = gv_msg_decode(&m, copy, len, &pol, &why);
  gv_msg_clear(&m);
  free(copy);
  say(d, "[bob] a copy with one byte of the body changed is %s: %s: %s\n",
      rc < 0 ? "rejected" : "ACCEPTED", gv_err_name(rc), why.text);
  cJSON_AddStringToObject(d->report, "tampered_copy", gv_err_name(rc));
  if (rc != GV_EBADSIG)
    d->failed = 1;
}

static void on_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  demo_node *n = gv_conn_data(c), *origin;
  demo *d = n->d;
  gv_msg_policy pol = {.now_ms = gv_cli_now_ms()};
  gv_why why = {""};
  gv_msg m;
  cJSON *e;
  char addr[GV_ADDR_TEXT_MAX];
  const char *r;
  int rc = gv_msg_decode(&m, msg, len, &pol, &why);

  if (rc < 0) {
    say(d, "[%s] <- rejected message: %s: %s\n", n->name, gv_err_name(rc),
        why.text);
    d->failed = 1;
    gv_msg_clear(&m);
    return;
  }
  e = event(d, n, &m);
  switch (m.type) {
  case GV_MSG_HELLO:
    say(d, "[%s] <- HELLO, agent %s\n", n->name, m.u.hello.agent);
    break;
  case GV_MSG_PEER_ANNOUNCEMENT:
    origin = node_of(d, m.origin);
    say(d, "[%s] <- PEER_ANNOUNCEMENT from %s, signature valid\n", n->name,
        origin ? origin->name : "?");
    {
      char idhex[GV_ID_HEX_LEN + 1];
      gv_id_to_hex(m.id, idhex);
      cJSON_AddStringToObject(e, "id", idhex);
      say(d, "       message id %s\n", idhex);
    }
    say(d, "       %s, addresses:",
        m.u.peer.broadcasting ? "broadcasting"
                              : "silent (no address may be "
                                "shared)");
    cJSON_AddBoolToObject(e, "broadcasting", m.u.peer.broadcasting);
    {
      cJSON *arr = cJSON_AddArrayToObject(e, "addrs");
      for (int i = 0; i < m.u.peer.n_addrs; i++) {
        gv_addr_format(&m.u.peer.addrs[i], addr);
        say(d, " %s", addr);
        cJSON_AddItemToArray(arr, cJSON_CreateString(addr));
      }
    }
    say(d, "%s, repositories:", m.u.peer.n_addrs ? "" : " none");
    r = m.u.peer.repos;
    for (int i = 0; i < m.u.peer.n_repos; i++, r += strlen(r) + 1)
      say(d, " %s", r);
    say(d, "\n");
    n->got_announcement = 1;
    if (n == &d->bob)
      tamper_test(d, msg, len);
    /* alice has what she came for: she says goodbye. */
    if (d->alice.got_announcement && d->bob.got_announcement) {
      gv_msg bye = {.type = GV_MSG_GOODBYE};
      char *out;
      size_t olen;
      snprintf(bye.u.reason, sizeof(bye.u.reason), "demo done");
      if (gv_msg_encode_link(&bye, &out, &olen) == 0) {
        say(d, "[alice] -> GOODBYE in the FINAL frame\n");
        gv_conn_close(d->alice.conn, (const uint8_t *)out, olen);
        free(out);
      }
    }
    break;
  case GV_MSG_GOODBYE:
    say(d, "[%s] <- GOODBYE (%s); closing too\n", n->name, m.u.reason);
    gv_conn_close(c, NULL, 0);
    break;
  default: say(d, "[%s] <- %s\n", n->name, gv_msg_type_name(m.type)); break;
  }
  gv_msg_clear(&m);
}

static void on_close(gv_conn *c, int status) {
  demo_node *n = gv_conn_data(c);
  demo *d = n->d;

  n->closed = 1;
  n->close_status = status;
  n->conn = NULL;
  if (status == 0)
    say(d, "[%s] link closed cleanly (both FINAL frames exchanged)\n", n->name);
  else {
    say(d, "[%s] link closed: %s\n", n->name, gv_strerror(status));
    d->failed = 1;
  }
  maybe_stop(d);
}

static const gv_conn_cbs demo_cbs = {on_open, on_msg, on_close};

static void on_connection(uv_stream_t *server, int status) {
  demo *d = server->data;
  gv_conn *c;
  int rc;

  if (status < 0 || d->bob.conn != NULL)
    return;
  rc = gv_conn_new(&c, &d->loop, &d->bob.id, GV_HS_RESPONDER, NULL, &demo_cbs,
                   &d->bob);
  if (rc < 0)
    return;
  d->bob.conn = c;
  if (uv_accept(server, gv_conn_stream(c)) < 0)
    gv_conn_abort(c, GV_ESTATE);
  else if (gv_conn_start(c) < 0)
    d->bob.conn = NULL; /* on_close never comes; the deadline reports */
}

static void on_deadline(uv_timer_t *t) {
  demo *d = t->data;

  fprintf(stderr, "grapevine demo: no clean finish within %d ms\n",
          DEMO_DEADLINE_MS);
  d->failed = 1;
  if (d->alice.conn)
    gv_conn_abort(d->alice.conn, GV_ESTATE);
  if (d->bob.conn)
    gv_conn_abort(d->bob.conn, GV_ESTATE);
  if (!d->alice.conn && !d->bob.conn) {
    d->alice.closed = d->bob.closed = 1;
    maybe_stop(d);
  }
}

static int load_node(demo *d, demo_node *n, const char *name, const char *dir) {
  char path[4200];
  gv_why why = {""};
  int created, rc;

  n->name = name;
  n->d = d;
  snprintf(path, sizeof(path), "%s/%s.key", dir, name);
  rc = gv_id_load_or_create(&n->id, path, &created, &why);
  if (rc < 0) {
    fprintf(stderr, "grapevine demo: %s\n", why.text);
    return rc;
  }
  gv_id_to_short(n->id.pk, n->shortid);
  say(d, "%-5s id %s  (%s %s)\n", name, n->shortid,
      created ? "new key" : "existing key", path);
  {
    char hex[GV_ID_HEX_LEN + 1];
    gv_id_to_hex(n->id.pk, hex);
    cJSON_AddStringToObject(d->report, name, hex);
  }
  return 0;
}

static void demo_usage(FILE *f) {
  fprintf(f, "usage: grapevine demo [--dir DIR] [--json]\n\n"
             "Runs the wire protocol end to end on loopback TCP: two "
             "identities (kept in\nDIR, reused on re-runs), a mutually "
             "authenticated handshake with alice\npinning bob's id, HELLO and "
             "signed PEER_ANNOUNCEMENTs both ways, a tampered\ncopy rejected, "
             "and a clean close.\n\n"
             "  --dir DIR  where the two key files live (default: run/demo)\n"
             "  --json     print one JSON report instead of the narration\n");
}

int gv_cmd_demo(int argc, char **argv) {
  static const struct option opts[] = {
      {"dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *dir = "run/demo";
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  int namelen = sizeof(ss), opt, rc;
  demo d;
  gv_conn *c;

  memset(&d, 0, sizeof(d));
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'd': dir = optarg; break;
    case 'j': d.json = 1; break;
    case 'h': demo_usage(stdout); return 0;
    default: demo_usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    demo_usage(stderr);
    return 2;
  }
  if ((rc = gv_cli_mkdirs(dir)) < 0) {
    fprintf(stderr, "grapevine demo: %s: %s\n", dir, gv_strerror(rc));
    return 1;
  }
  d.report = cJSON_CreateObject();
  d.events = cJSON_AddArrayToObject(d.report, "events");
  say(&d, "grapevine protocol demo\n");
  if (load_node(&d, &d.alice, "alice", dir) < 0 ||
      load_node(&d, &d.bob, "bob", dir) < 0) {
    cJSON_Delete(d.report);
    return 1;
  }

  uv_loop_init(&d.loop);
  uv_tcp_init(&d.loop, &d.listener);
  uv_timer_init(&d.loop, &d.deadline);
  d.listener.data = d.deadline.data = &d;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  if ((rc = uv_tcp_bind(&d.listener, (struct sockaddr *)&sin, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&d.listener, 16, on_connection)) < 0 ||
      (rc = uv_tcp_getsockname(&d.listener, (struct sockaddr *)&ss, &namelen)) <
          0) {
    fprintf(stderr, "grapevine demo: listen on 127.0.0.1: %s\n",
            uv_strerror(rc));
    return 1;
  }
  d.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  cJSON_AddNumberToObject(d.report, "port", d.port);
  say(&d, "[bob] listening on 127.0.0.1:%d (broadcasting)\n", d.port);

  rc = gv_conn_new(&c, &d.loop, &d.alice.id, GV_HS_INITIATOR, d.bob.id.pk,
                   &demo_cbs, &d.alice);
  if (rc < 0) {
    fprintf(stderr, "grapevine demo: %s\n", gv_strerror(rc));
    return 1;
  }
  d.alice.conn = c;
  say(&d,
      "[alice] dialing 127.0.0.1:%d, pinning bob's id (silent: alice "
      "never listens)\n",
      d.port);
  sin.sin_port = htons((uint16_t)d.port);
  d.t_dial = uv_hrtime();
  if ((rc = gv_conn_dial(c, (struct sockaddr *)&sin)) < 0) {
    /* on_close never comes: end the demo here. */
    fprintf(stderr, "grapevine demo: dial: %s\n", gv_strerror(rc));
    d.failed = 1;
    d.alice.conn = NULL;
    uv_close((uv_handle_t *)&d.listener, NULL);
    uv_close((uv_handle_t *)&d.deadline, NULL);
  } else {
    uv_timer_start(&d.deadline, on_deadline, DEMO_DEADLINE_MS, 0);
  }
  uv_run(&d.loop, UV_RUN_DEFAULT);
  uv_loop_close(&d.loop);

  cJSON_AddBoolToObject(d.report, "clean_close",
                        d.alice.close_status == 0 && d.bob.close_status == 0);
  cJSON_AddBoolToObject(d.report, "ok", !d.failed);
  if (d.json) {
    char *s = cJSON_PrintUnformatted(d.report);
    puts(s);
    free(s);
  } else {
    say(&d, d.failed ? "demo FAILED\n" : "demo ok\n");
  }
  cJSON_Delete(d.report);
  gv_id_wipe(&d.alice.id);
  gv_id_wipe(&d.bob.id);
  return d.failed ? 1 : 0;
}

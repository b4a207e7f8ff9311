/* tracker_peer: a node that accepts links, for the tracker's tests.
 *
 *   tracker_peer --key FILE [--port N]
 *
 * Listens on 127.0.0.1 (port N, default a free one), prints "port N" once
 * listening, then completes the handshake of PROTOCOL.md §4 as responder
 * with the identity in FILE (created if missing) for every connection,
 * printing "open ID" when a link is up and "close STATUS" when it ends; a
 * GOODBYE is answered with our own FINAL frame. Runs until SIGTERM or
 * SIGINT. Output is line-buffered. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chan.h"
#include "conn.h"
#include "msg.h"

typedef struct peer {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  gv_identity id;
  int conns; /* open gv_conns */
  int stopping;
} peer;

static void on_open(gv_conn *c) {
  char hex[GV_ID_HEX_LEN + 1];
  gv_id_to_hex(gv_conn_peer_id(c), hex);
  printf("open %s\n", hex);
}

static void on_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  gv_msg_policy pol = {0};
  gv_msg m;

  memset(&m, 0, sizeof(m));

  /* A plaintext is the channel byte, then the message (PROTOCOL.md §5.1);
   * a GOODBYE travels on the link channel. */
  if (len > 1 && msg[0] == GV_CHAN_LINK &&
      gv_msg_decode(&m, msg + 1, len - 1, &pol, NULL) == 0 &&
      m.type == GV_MSG_GOODBYE) {
    printf("goodbye %s\n", m.u.reason);
    gv_conn_close(c, NULL, 0);
  }
  gv_msg_clear(&m);
}

static void maybe_done(peer *p) {
  if (p->stopping && p->conns == 0) {
    uv_close((uv_handle_t *)&p->listener, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
    uv_close((uv_handle_t *)&p->sigint, NULL);
  }
}

static void on_close(gv_conn *c, int status) {
  peer *p = gv_conn_data(c);
  printf("close %s\n", status == 0 ? "ok" : gv_err_name(status));
  p->conns--;
  maybe_done(p);
}

static const gv_conn_cbs cbs = {on_open, on_msg, on_close};

static void on_connection(uv_stream_t *server, int status) {
  peer *p = server->data;
  gv_conn *c;

  if (status < 0 || p->stopping ||
      gv_conn_new(&c, &p->loop, &p->id, GV_HS_RESPONDER, NULL, &cbs, p) < 0)
    return;
  p->conns++;
  if (uv_accept(server, gv_conn_stream(c)) < 0)
    gv_conn_abort(c, GV_ESTATE);
  else if (gv_conn_start(c) < 0)
    p->conns--; /* on_close never comes */
}

static void on_signal(uv_signal_t *h, int signum) {
  peer *p = h->data;
  (void)signum;
  p->stopping = 1;
  maybe_done(p);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                       {"port", required_argument, NULL, 'p'},
                                       {NULL, 0, NULL, 0}};
  const char *key = NULL;
  int port = 0, opt, created, rc, namelen;
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  gv_why why = {""};
  peer p;

  memset(&p, 0, sizeof(p));
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (opt == 'k')
      key = optarg;
    else if (opt == 'p')
      port = atoi(optarg);
    else
      return 2;
  }
  if (key == NULL) {
    fprintf(stderr, "usage: tracker_peer --key FILE [--port N]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (gv_id_load_or_create(&p.id, key, &created, &why) < 0) {
    fprintf(stderr, "tracker_peer: %s\n", why.text);
    return 1;
  }
  uv_loop_init(&p.loop);
  uv_tcp_init(&p.loop, &p.listener);
  uv_signal_init(&p.loop, &p.sigterm);
  uv_signal_init(&p.loop, &p.sigint);
  p.listener.data = p.sigterm.data = p.sigint.data = &p;
  uv_ip4_addr("127.0.0.1", port, &sin);
  namelen = sizeof(ss);
  if ((rc = uv_tcp_bind(&p.listener, (struct sockaddr *)&sin, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&p.listener, 64, on_connection)) < 0 ||
      (rc = uv_tcp_getsockname(&p.listener, (struct sockaddr *)&ss, &namelen)) <
          0) {
    fprintf(stderr, "tracker_peer: listen: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_signal_start(&p.sigterm, on_signal, SIGTERM);
  uv_signal_start(&p.sigint, on_signal, SIGINT);
  printf("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  uv_run(&p.loop, UV_RUN_DEFAULT);
  uv_loop_close(&p.loop);
  gv_id_wipe(&p.id);
  return 0;
}

/* link_peer: throw-away identities that take a node's inbound links, for
 * tests/integration/test_links.sh.
 *
 *   link_peer --connect HOST:PORT --count N [--hold-s S] [--garbage]
 *
 * Dials HOST:PORT N times, one handshake at a time, each link with a fresh
 * identity made for it alone. On each link it completes the handshake of
 * PROTOCOL.md §4, sends a HELLO on the link channel (§5.1, §6.4) and then
 * never answers a PING, so the node sees a peer that is up but not live.
 * With --garbage, once every dial has ended, it sends one invalid message
 * (channel byte 0x01, then bytes that are not JSON) on the gossip channel
 * of every link still up, all back to back: the node gets them as one
 * burst however slowly the handshakes went. A GOODBYE is answered with our
 * own FINAL frame.
 *
 * Output, one line per event, line-buffered:
 *   open I PEER          link I (0-based) is up; PEER is the node's short id
 *   garbage I            the invalid message went out on link I
 *   ping I               the node sent a PING on link I (not answered)
 *   goodbye I REASON     the node closed link I with a GOODBYE
 *   close I STATUS       link I is gone: "ok" (both FINALs) or a GV_E* name
 *   done opened O closed C
 * S seconds (default 30) after the last dial ended, or on SIGTERM/SIGINT,
 * every link still up is closed with a FINAL frame; the program exits 0
 * once all are gone, 1 on a usage or setup error. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "chan.h"
#include "conn.h"
#include "msg.h"
#include "sockaddr.h"

#define HANDSHAKE_MS 10000

typedef struct peer peer;

typedef struct tlink {
  peer *p;
  int index;
  gv_identity id; /* borrowed by conn; wiped when the link is gone */
  gv_conn *conn;  /* NULL before the dial and after on_close */
  bool opened;    /* the handshake finished */
} tlink;

struct peer {
  uv_loop_t loop;
  uv_timer_t hold;
  uv_signal_t sigterm, sigint;
  struct sockaddr_storage to;
  bool garbage;
  bool stopping;
  int count;
  uint64_t hold_ms; /* --hold-s, counted from the end of the last dial */
  int next;    /* index of the next link to dial */
  int dialing; /* 1 while a handshake runs */
  bool dialed; /* every dial has ended; the hold runs */
  int live;    /* conns not yet closed */
  int opened, closed;
  tlink *links;
};

static void dial_next(peer *p);
static void on_hold(uv_timer_t *t);

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one message on a channel: the channel byte, then msg. */
static int send_on(gv_conn *c, unsigned chan, const void *msg, size_t len) {
  uint8_t *pt = malloc(GV_CHAN_HDR + len);
  int rc;

  if (pt == NULL)
    return GV_ENOMEM;
  pt[0] = (uint8_t)chan;
  memcpy(pt + GV_CHAN_HDR, msg, len);
  rc = gv_conn_send(c, pt, GV_CHAN_HDR + len);
  free(pt);
  return rc;
}

static int send_hello(gv_conn *c) {
  gv_msg hello;
  char *out = NULL;
  size_t len;
  int rc;

  memset(&hello, 0, sizeof(hello));
  hello.type = GV_MSG_HELLO;
  hello.ts = wall_ms();
  snprintf(hello.u.hello.agent, sizeof(hello.u.hello.agent), "link_peer/1");
  if ((rc = gv_msg_encode_link(&hello, &out, &len)) == 0)
    rc = send_on(c, GV_CHAN_LINK, out, len);
  free(out);
  return rc;
}

static void maybe_done(peer *p) {
  if (!p->stopping || p->live > 0)
    return;
  printf("done opened %d closed %d\n", p->opened, p->closed);
  uv_close((uv_handle_t *)&p->hold, NULL);
  uv_close((uv_handle_t *)&p->sigterm, NULL);
  uv_close((uv_handle_t *)&p->sigint, NULL);
}

static void on_open(gv_conn *c) {
  tlink *l = gv_conn_data(c);
  peer *p = l->p;
  char shrt[GV_ID_SHORT_LEN + 1];
  int rc;

  gv_id_to_short(gv_conn_peer_id(c), shrt);
  printf("open %d %s\n", l->index, shrt);
  l->opened = true;
  p->opened++;
  p->dialing = 0;
  if ((rc = send_hello(c)) < 0)
    printf("hello %d failed: %s\n", l->index, gv_err_name(rc));
  dial_next(p);
}

/* Reads the link channel only: PINGs are noted and left unanswered, a
 * GOODBYE (it comes in the node's FINAL frame) is answered with ours. */
static void on_msg(gv_conn *c, const uint8_t *pt, size_t len) {
  tlink *l = gv_conn_data(c);
  gv_msg_policy pol = {0};
  gv_msg m;

  if (len <= GV_CHAN_HDR || pt[0] != GV_CHAN_LINK)
    return;
  pol.now_ms = wall_ms();
  if (gv_msg_decode(&m, pt + GV_CHAN_HDR, len - GV_CHAN_HDR, &pol, NULL) == 0) {
    if (m.type == GV_MSG_PING) {
      printf("ping %d\n", l->index);
    } else if (m.type == GV_MSG_GOODBYE) {
      printf("goodbye %d %s\n", l->index, m.u.reason);
      gv_conn_close(c, NULL, 0);
    }
  }
  gv_msg_clear(&m);
}

static void on_close(gv_conn *c, int status) {
  tlink *l = gv_conn_data(c);
  peer *p = l->p;

  printf("close %d %s\n", l->index, status == 0 ? "ok" : gv_err_name(status));
  l->conn = NULL;
  gv_id_wipe(&l->id);
  p->closed++;
  p->live--;
  if (!l->opened) {
    p->dialing = 0;
    dial_next(p);
  }
  maybe_done(p);
}

static const gv_conn_cbs cbs = {on_open, on_msg, on_close};

/* Every dial has ended: with --garbage, the invalid message goes out on
 * every link still up in this one callback, then the hold starts. */
static void all_dialed(peer *p) {
  static const char junk[] = "this is not a grapevine message";
  int rc;

  p->dialed = true;
  for (int i = 0; p->garbage && i < p->count; i++) {
    tlink *l = &p->links[i];
    if (l->conn == NULL || !l->opened)
      continue;
    if ((rc = send_on(l->conn, GV_CHAN_GOSSIP, junk, sizeof(junk) - 1)) < 0)
      printf("garbage %d failed: %s\n", l->index, gv_err_name(rc));
    else
      printf("garbage %d\n", l->index);
  }
  uv_timer_start(&p->hold, on_hold, p->hold_ms, 0);
}

/* One handshake at a time, so the node never sees more than one of ours
 * in progress. */
static void dial_next(peer *p) {
  tlink *l;
  int rc;

  while (!p->stopping && !p->dialing && p->next < p->count) {
    l = &p->links[p->next++];
    if ((rc = gv_id_generate(&l->id)) < 0 ||
        (rc = gv_conn_new(&l->conn, &p->loop, &l->id, GV_HS_INITIATOR, NULL,
                          &cbs, l)) < 0) {
      printf("close %d %s\n", l->index, gv_err_name(rc));
      continue;
    }
    gv_conn_set_timeouts(l->conn,
                         &(gv_conn_timeouts){.handshake_ms = HANDSHAKE_MS});
    if ((rc = gv_conn_dial(l->conn, (struct sockaddr *)&p->to)) < 0) {
      /* on_close never comes; the conn released itself. */
      l->conn = NULL;
      gv_id_wipe(&l->id);
      printf("close %d %s\n", l->index, gv_err_name(rc));
      continue;
    }
    p->live++;
    p->dialing = 1;
  }
  if (!p->stopping && !p->dialing && p->next == p->count && !p->dialed)
    all_dialed(p);
}

static void stop(peer *p) {
  if (p->stopping)
    return;
  p->stopping = true;
  uv_timer_stop(&p->hold);
  for (int i = 0; i < p->count; i++)
    if (p->links[i].conn != NULL) {
      if (p->links[i].opened)
        gv_conn_close(p->links[i].conn, NULL, 0);
      else
        gv_conn_abort(p->links[i].conn, GV_ESTATE);
    }
  maybe_done(p);
}

static void on_hold(uv_timer_t *t) { stop(t->data); }

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  stop(h->data);
}

static int usage(void) {
  fprintf(stderr, "usage: link_peer --connect HOST:PORT --count N "
                  "[--hold-s S] [--garbage]\n");
  return 1;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"connect", required_argument, NULL, 'c'},
      {"count", required_argument, NULL, 'n'},
      {"hold-s", required_argument, NULL, 's'},
      {"garbage", no_argument, NULL, 'g'},
      {NULL, 0, NULL, 0}};
  const char *connect = NULL;
  int opt, hold_s = 30, rc = 0;
  gv_addr addr;
  peer p;

  memset(&p, 0, sizeof(p));
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (opt == 'c')
      connect = optarg;
    else if (opt == 'n')
      p.count = atoi(optarg);
    else if (opt == 's')
      hold_s = atoi(optarg);
    else if (opt == 'g')
      p.garbage = true;
    else
      return usage();
  }
  if (connect == NULL || p.count < 1 || p.count > 1024 || hold_s < 0 ||
      gv_addr_parse(&addr, connect, strlen(connect)) < 0)
    return usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  gv_addr_to_sockaddr(&addr, &p.to, NULL);
  if ((p.links = calloc((size_t)p.count, sizeof(*p.links))) == NULL)
    return 1;
  for (int i = 0; i < p.count; i++) {
    p.links[i].p = &p;
    p.links[i].index = i;
  }
  uv_loop_init(&p.loop);
  uv_timer_init(&p.loop, &p.hold);
  uv_signal_init(&p.loop, &p.sigterm);
  uv_signal_init(&p.loop, &p.sigint);
  p.hold.data = p.sigterm.data = p.sigint.data = &p;
  uv_signal_start(&p.sigterm, on_signal, SIGTERM);
  uv_signal_start(&p.sigint, on_signal, SIGINT);
  p.hold_ms = (uint64_t)hold_s * 1000;
  dial_next(&p);
  uv_run(&p.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&p.loop) != 0)
    rc = 1;
  free(p.links);
  return rc;
}

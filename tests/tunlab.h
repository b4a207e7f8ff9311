/* The tunnel lab, for tests/check_tunio.c and tests/bench/bench_tunnel.c:
 * real gv_tun cores and gv_tunio's on one real uv loop, joined by
 * in-process links, with real TCP peers on loopback standing in for
 * libtorrent on each end.
 *
 *  - A link carries each SEND action of one core into the other core's
 *    gv_tun_recv, asynchronously: queued, and delivered from a uv_idle
 *    callback (messages queued during a delivery wait for the next turn
 *    of the loop). A link taken down drops what it still carries.
 *  - A node drains its core the way the daemon does: SEND to its link,
 *    HOLD and RELEASE kept per link end, everything else to gv_tunio_run. After
 *    every drain the core's invariants are checked (gv_tun_check).
 *  - A pair is one seeder-side libtorrent (a TCP server: the node's
 *    tor_port) and one fetcher-side libtorrent (a TCP client that connects
 *    wherever it is told). Each sends its bytes of a pseudo-random stream
 *    and checks every byte it reads against the other's stream. When both
 *    have read everything, the client closes; the server then reads EOF.
 *
 * Lifetime: everything belongs to the lab; tl_lab_free() closes every
 * handle, runs the loop until they are closed and frees all.
 */
#ifndef GV_TUNLAB_H
#define GV_TUNLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "tun.h"
#include "tunio.h"

#define TL_NODES_MAX 4
#define TL_LINKS_MAX 4
#define TL_PAIRS_MAX 2

typedef struct tl_lab tl_lab;

/* One pair's transfer. */
typedef struct tl_flow {
  size_t down;   /* bytes the server (seeder side) sends */
  size_t up;     /* bytes the client (fetcher side) sends */
  uint64_t seed; /* the streams' seed */
} tl_flow;

typedef struct tl_peer {
  uv_tcp_t tcp;
  uv_connect_t connect;
  tl_lab *lab;
  uint8_t *tx_tab, *rx_tab; /* the streams it sends and expects */
  size_t tx_total, rx_total;
  size_t queued;     /* bytes handed to uv_write */
  size_t recvd;      /* bytes read, every one as expected */
  unsigned inflight; /* writes not yet done */
  bool connected;
  bool ended;  /* EOF, an error, a refused connect, or closed by the lab */
  bool bad;    /* read a byte it did not expect */
  bool closed; /* its handle's close callback ran */
  int status;  /* how it ended: 0 EOF or closed by the lab, else UV_E* */
  uint64_t t0, t_done; /* uv_hrtime(): connect started; last byte read */
} tl_peer;

typedef struct tl_pair {
  tl_lab *lab;
  tl_flow flow;
  uv_tcp_t server; /* the seeder side's libtorrent, listening */
  uint16_t port;
  unsigned accepted; /* connections the server took */
  tl_peer *srv;      /* the one it serves; NULL until accepted */
  tl_peer *cli;      /* NULL until tl_pair_connect */
} tl_pair;

typedef struct tl_node {
  tl_lab *lab;
  uint8_t id[GV_ID_BYTES];
  gv_tun *core;
  gv_tunio *io;
  bool serve; /* the core's accept: serve OPENs for us (default true) */
} tl_node;

typedef struct tl_link {
  int a, b;         /* nodes; a dialed */
  gv_linkid la, lb; /* the link's id at a and at b */
  bool up;
  bool held_a, held_b; /* held by a's core, by b's (HOLD, RELEASE) */
} tl_link;

typedef struct tl_msg tl_msg;

struct tl_lab {
  uv_loop_t *loop;
  gv_log log;
  uv_idle_t idle;      /* delivers the links' messages */
  uv_check_t check;    /* closes finished clients; tests the goal */
  uv_timer_t deadline; /* tl_run's time limit */
  tl_node nodes[TL_NODES_MAX];
  int n_nodes;
  tl_link links[TL_LINKS_MAX];
  int n_links;
  tl_pair *pairs[TL_PAIRS_MAX];
  int n_pairs;
  tl_msg *head, *tail; /* in flight on the links */
  size_t n_msgs;
  size_t queued, queued_max; /* bytes in flight now, and the most ever */
  bool (*goal)(void *ctx);
  void *goal_ctx;
  bool met;
  char err[256]; /* the first failure: a recv error or a broken invariant */
};

/* Aborts on failure: a lab that cannot start is a failed test. */
tl_lab *tl_lab_new(uv_loop_t *loop);
void tl_lab_free(tl_lab *lab);

/* A node whose CONNECTs go to 127.0.0.1:tor_port. Returns its index. */
int tl_node_add(tl_lab *lab, uint16_t tor_port, bool relay);
/* Link a -> b (a dialed) comes up on both cores. Returns its index. */
int tl_link_up(tl_lab *lab, int a, int b);
/* The link goes down on both cores and both tunio's; what it carried is
 * dropped. */
void tl_link_down(tl_lab *lab, int k);

/* A pair whose server listens now (pair->port). */
tl_pair *tl_pair_new(tl_lab *lab, const tl_flow *flow);
/* Its client connects to 127.0.0.1:port. */
void tl_pair_connect(tl_pair *p, uint16_t port);
/* Both peers read all they expected, and the server saw the client go. */
bool tl_pair_done(const tl_pair *p);

/* Runs the loop until goal(ctx) holds (true) or timeout_ms passed
 * (false). */
bool tl_run(tl_lab *lab, bool (*goal)(void *ctx), void *ctx,
            unsigned timeout_ms);

/* No stream in any core and no local socket in any tunio. */
bool tl_quiet(void *lab);

/* A loopback port that nothing listens on (bound, then released). */
uint16_t tl_free_port(void);

#endif

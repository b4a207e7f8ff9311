/* The simulator's virtual network: N real nodes' cores (the link core,
 * node/lcore.c, with the gossip engine, node/engine.c, as its service), links
 * with latency and loss, a virtual clock, and one event heap. Everything
 * random comes from the seed, and ties break by insertion order, so the same
 * configuration gives the same run.
 *
 * Threads (cfg.threads > 1, net.c "lanes"): the nodes are split in
 * contiguous ranges, one lane (a gv_sim of its own: queue, links, PRNG,
 * counters, body pool) per thread, run in windows of the lookahead
 * cfg.lat_min; the run is deterministic for (seed, threads) but another
 * sample than one thread's. Every call below is made from the caller's
 * thread between gv_sim_run_until() calls, when no lane runs; the
 * counters, n_links and violation of the gv_sim are then the lanes'
 * sums. The per-frame hooks (filter, frame_fn, deliver_fn, relay_fn) and
 * `links` are for one thread only.
 *
 * Lifetime: gv_sim_new() allocates all nodes (and starts the lanes'
 * threads); gv_sim_free() releases them (and joins the threads).
 */
#ifndef GV_SIM_NET_H
#define GV_SIM_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "idmap.h"
#include "intern.h"
#include "lcore.h"
#include "relay.h"
#include "rng.h"

#define GV_SIM_T0 1767225600000LL /* virtual start: 2026-01-01T00:00:00Z */
#define GV_SIM_SPARE_NODES 1024   /* room for nodes that join later */

typedef struct gv_sim_cfg {
  uint32_t nodes;
  unsigned fanout, fanout_announced, ttl, active_target, candidates;
  uint64_t seed;
  double loss, silent_frac;
  int lat_min, lat_max; /* one-way link latency, ms */
  bool repair, stub_sigs;
  bool guards; /* silent nodes keep entry guards (off but in harvest) */
  bool pings;  /* link PINGs as the daemon sends them (off but in steady) */
  int64_t shuffle_ms, heartbeat_ms;
  /* Per-node upload cap, kB/s (1 kB/s = 1 byte per ms); 0: none. A frame
   * leaving a node departs when its uplink is free and holds it for
   * len / cap; it arrives that long after departing plus the latency. */
  uint32_t upload_kbps;
  /* Threads, 1..GV_SIM_THREADS_MAX (0 is taken as 1); above 1 needs
   * lat_min >= 1, the lookahead. */
  unsigned threads;
  /* malloc's heap is on huge pages (sim/main.c, thp_reexec): the lanes
   * past the first advise their own arenas' heaps too (net.c, lane_thp) */
  bool huge_pages;
  /* A progress line on stderr at most this often (wall seconds) while
   * gv_sim_run_until() runs; 0: none. It reads the wall clock, and nothing
   * of what it reads reaches the run. */
  double progress_s;
} gv_sim_cfg;

#define GV_SIM_THREADS_MAX 64

typedef struct gv_sim_node {
  gv_engine *e;
  gv_lcore *lc;
  gv_relay *relay; /* the relay scenario's; owned by it, NULL otherwise */
  uint32_t epoch;  /* incarnation: bumped by gv_sim_kill() */
  gv_service svc;  /* e on lc's gossip channel */
  gv_identity id;
  int64_t wake;         /* the pending timer; INT64_MAX: none */
  int64_t delivered_at; /* of the tracked message; -1: not yet */
  uint16_t hops;
  bool dead, silent, flooder, joined;
  /* harvest: an attacker's node; a silent node whose dial reached one
   * (at observed_at) */
  bool attacker, observed;
  int64_t observed_at;
  uint8_t side; /* partition side */
  uint8_t lane; /* the lane (thread) that runs it */
  uint32_t indegree;
  int64_t up_free_us; /* upload cap: when its uplink is next free (µs) */
} gv_sim_node;

typedef struct gv_sim_link {
  uint32_t a, b;             /* a dialed b */
  uint32_t a_epoch, b_epoch; /* their incarnations at the dial */
  uint16_t lat;
  bool up;   /* one thread: the link's; lanes: a's end only */
  bool up_b; /* lanes: b's end (each end is written by its own lane) */
} gv_sim_link;

/* What a node's relay core asks of its driver beyond the link layer
 * (PERSIST, LINE, HANGUP, RELAYS). The action's pointers last for the
 * call only; it must not call into the relay core. */
typedef void gv_sim_relay_fn(void *ctx, uint32_t i, const gv_ract *a);

/* Asked of every frame node `from` sends to node `to` (b: the plaintext,
 * channel byte first, valid for the call); false drops it after it is
 * counted, as a peer that ignores it would (the attack scenarios). */
typedef bool gv_sim_filter_fn(void *ctx, uint32_t from, uint32_t to,
                              const gv_buf *b);
/* Called on every delivery (node i delivered message id), after the
 * dedup check; id lasts for the call only. */
typedef void gv_sim_deliver_fn(void *ctx, uint32_t i, const uint8_t *id);
/* Sees every frame: sent by node i (in false: before loss or a dead peer
 * can drop it) or received by live node i (in true). b is the plaintext,
 * channel byte first, valid during the call only. */
typedef void gv_sim_frame_fn(void *ctx, uint32_t i, const gv_buf *b, bool in);

typedef struct gv_sim_ev gv_sim_ev;
typedef struct gv_sim_far gv_sim_far;
typedef struct gv_sim_xev gv_sim_xev;
typedef struct gv_sim_lent gv_sim_lent;
typedef struct gv_sim_par gv_sim_par;

typedef struct gv_sim {
  gv_sim_cfg cfg;
  gv_rng rng;
  int64_t now;
  gv_sim_node *nodes;
  uint32_t n_nodes, cap_nodes;
  uint32_t n_silent; /* of the nodes, added silent (root's) */
  gv_sim_link *links;
  uint32_t n_links, cap_links;
  /* The event queue (net.c, "the event queue"): a ring of one-ms buckets
   * over [cursor, cursor + GV_SIM_WINDOW_MS), each a FIFO of events in a
   * pool, and a heap of the events beyond it. */
  gv_sim_ev *pool;
  uint32_t n_pool, cap_pool, free_ev;
  uint32_t *head, *tail; /* per bucket; UINT32_MAX: empty */
  uint64_t *busy;        /* a bit per non-empty bucket */
  size_t n_near;         /* events in the buckets */
  int64_t cursor;
  gv_sim_far *far;
  size_t n_far, cap_far;
  uint64_t ev_seq;
  /* tracked message */
  bool tracking;
  uint8_t tracked[GV_MSG_ID_BYTES];
  int64_t tracked_at;
  /* partition */
  bool partitioned;
  /* counters */
  uint64_t events, frames, frame_bytes, ip_leaks, dropped, violations;
  uint64_t relay_frames, relay_bytes; /* channel 2, all kinds */
  gv_sim_relay_fn *relay_fn;
  void *relay_ctx;
  gv_sim_filter_fn *filter; /* NULL: every frame goes */
  void *filter_ctx;
  gv_sim_deliver_fn *deliver_fn; /* NULL: none */
  void *deliver_ctx;
  /* upload cap: frames sent, and the time they waited for the uplink */
  uint64_t up_frames, up_wait_us;
  int64_t up_wait_max_us;
  gv_sim_frame_fn *frame_fn; /* NULL: none */
  void *frame_ctx;
  gv_idmap delivered; /* (node, id) pairs seen delivered: no id twice */
  gv_intern *bodies;  /* every engine's signed bodies, each stored once */
  char violation[256];
  /* Lanes (net.c): root is the gv_sim the caller holds (itself with one
   * thread); tid the lane's index. A lane's links live in fixed chunks
   * (the other lanes read them while it adds more); out[p][u] holds the
   * events for lane u made in a window of parity p. */
  struct gv_sim *root;
  unsigned threads, tid;
  struct gv_sim **lanes; /* root only, threads > 1 */
  gv_sim_par *par;       /* root only: threads and barrier */
  gv_sim_link **chunks;
  gv_sim_xev *out[2][GV_SIM_THREADS_MAX];
  uint32_t n_out[2][GV_SIM_THREADS_MAX], cap_out[2][GV_SIM_THREADS_MAX];
  int64_t out_min;   /* the earliest event sent out in this window */
  gv_sim_lent *lent; /* frames merged by other lanes, until they ran */
  size_t n_lent, cap_lent;
  unsigned parity;
  uint64_t windows, barriers; /* root: the windows run, the barriers met */
  /* a lane: wall-clock and CPU seconds running its windows' events */
  double busy_s, cpu_s;
  /* lanes past the first: their arena's heaps are advised for huge pages
   * (net.c, lane_thp) when thp is set, next at thp_next (monotonic s) */
  bool thp;
  double thp_next;
  /* root: cfg.progress_s's last line (monotonic s, events) and the next */
  double progress_at, progress_next;
  uint64_t progress_events;
} gv_sim;

int gv_sim_new(gv_sim **out, const gv_sim_cfg *cfg);
void gv_sim_free(gv_sim *s);

/* Adds a node (formation or a later join) and gives it `candidates` random
 * broadcasting nodes to dial. Returns its index. */
uint32_t gv_sim_add_node(gv_sim *s, bool silent);
/* Gives node i k random candidates (live or not: a stale cache). */
void gv_sim_seed_candidates(gv_sim *s, uint32_t i, unsigned k);
/* As many gv_sim_add_node() calls, silent[k] for the k-th, and
 * gv_sim_seed_candidates() for every node, in node order: with one thread
 * the very same; with lanes each lane sets up its own nodes at once (the
 * draws are the same, the order in which the other lanes' link ends land
 * on a queue is not). */
void gv_sim_add_nodes(gv_sim *s, uint32_t n, const bool *silent);
void gv_sim_seed_all(gv_sim *s, unsigned k);

/* Runs events until the clock reaches t (or none are left). With lanes,
 * in windows (net.c); the counters are summed at the end. */
void gv_sim_run_until(gv_sim *s, int64_t t);

/* A crash: the node stops; nobody is told. Frames to it are lost and their
 * senders see the link go down one round trip later (a TCP reset). */
void gv_sim_crash(gv_sim *s, uint32_t i);

/* A crash that the peers notice (kill -9: the kernel resets its TCP
 * connections): the node stops, its incarnation ends (events and dials of
 * the old one are void), and each peer of an open link sees it go down
 * after the link's latency. The caller frees the node's relay core. */
void gv_sim_kill(gv_sim *s, uint32_t i);
/* The killed node i starts again: a fresh engine and link core, the same
 * identity and address, k candidates to dial. The caller plugs a new
 * relay core in (gv_sim_set_relay) before the next event runs. */
void gv_sim_restart(gv_sim *s, uint32_t i, unsigned k);
/* Plugs r in as node i's channel-2 service; NULL unplugs. */
void gv_sim_set_relay(gv_sim *s, uint32_t i, gv_relay *r);
/* Node i's address (its record's, if it broadcasts). */
void gv_sim_node_addr(uint32_t i, gv_addr *a);

/* Cuts every link between side 0 and side 1; dials across fail until
 * gv_sim_heal(). */
void gv_sim_partition(gv_sim *s);
void gv_sim_heal(gv_sim *s);

/* Injects one junk frame from a flooder on each of its links. */
void gv_sim_flood_once(gv_sim *s, uint32_t i);

/* Node i's transport dials node j, whatever i's engine wants (an
 * attacker's); the link comes up to its cores like any other. */
void gv_sim_dial(gv_sim *s, uint32_t i, uint32_t j);
/* Node i sends b on its link (i's id for it), taking b's reference, as if
 * its cores had: an attacker's crafted message. */
void gv_sim_send(gv_sim *s, uint32_t i, gv_linkid link, gv_buf *b);

/* Starts tracking a message: DELIVERs of it set delivered_at and hops. */
void gv_sim_track(gv_sim *s, const uint8_t *id);

/* Checks every live engine's invariants; false (and s->violation set) on
 * the first failure. */
bool gv_sim_check(gv_sim *s);

/* Counts each node's inbound links open at the end (indegree). */
void gv_sim_count_indegree(gv_sim *s);

/* After any call into node i's cores: carry out their actions, then arm
 * its timer at the earliest of their expiries. */
void gv_sim_drain(gv_sim *s, uint32_t i);

#endif

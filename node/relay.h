/* gv_relay: the relay router's pure core (docs/RELAY.md). Events go in with
 * `now` (monotonic ms): an agent's request line, a message on the relay
 * channel, a store commit done, a link up or down, a tick. Actions come out:
 * send on a link, dial, hold or release a link, persist rows, answer or push
 * a line to an agent. No clock, socket, file or RNG in here: randomness
 * comes from cfg.random, the node's record view from cfg.route, and the wall
 * clock only as an offset (gv_relay_set_wall) for stamps and stored
 * deadlines. The daemon and the simulator drive the same object code.
 *
 * Durability: a state change that anyone is told of is first a PERSIST
 * action with a job number; the driver commits the rows (node/relaystore.c,
 * on gv_db) and reports gv_relay_committed(job, status). Only then does the
 * core answer `accepted`, send STORED, DELIVERED or READ, or push a state.
 * Jobs complete in the order they were emitted (gv_db's contract).
 *
 * Restart: before the first event, the driver feeds back every row it
 * stored with gv_relay_load(): agents, members, then each message (with
 * its current state) followed by its trace, then cursors; then it calls
 * gv_relay_loaded().
 *
 * Lifetime: pointers inside an action stay valid until the next call into
 * the core; an action's line is the driver's to free() once popped.
 */
#ifndef GV_RELAY_H
#define GV_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "engine.h"
#include "identity.h"
#include "lcore.h"
#include "relayaddr.h"
#include "relayreq.h"
#include "relaywire.h"

#define GV_RELAY_RELAYS_MAX 4 /* relays a silent node names (§5.7) */
#define GV_RELAY_TEAMS_MAX 16
#define GV_RELAY_WINDOW (4u * 1024 * 1024) /* per-link relay credit */
#define GV_RELAY_PUSH_MAX 256              /* unacknowledged pushes per agent */

typedef uint32_t gv_rconn; /* an agent connection, numbered by the driver */

/* What the node's gossip table says of a node (engine.h). */
typedef struct gv_rroute {
  bool known;        /* the node's record is held */
  bool broadcasting; /* addr is dialable */
  gv_addr addr;
  size_t n_relays; /* a silent node's relays, node ids */
  uint8_t relays[GV_RELAY_RELAYS_MAX][GV_ID_BYTES];
} gv_rroute;

typedef struct gv_relay_cfg {
  size_t outbox_max;      /* messages (100,000) */
  uint64_t outbox_bytes;  /* payload bytes (1 GiB) */
  size_t inbox_max;       /* messages (100,000) */
  uint64_t inbox_bytes;   /* payload bytes (1 GiB) */
  uint32_t window;        /* per-link credit (GV_RELAY_WINDOW) */
  int64_t retry_min_ms;   /* first retransmission (1 s) */
  int64_t retry_max_ms;   /* backoff cap (5 min) */
  int64_t busy_retry_ms;  /* retry_after a full inbox answers (5 s) */
  int64_t dir_refresh_ms; /* full DIR to every member (5 min) */
  bool silent;            /* this node is silent: it names relays */
  /* Broadcasting: silent nodes whose links to us we hold as their relay
   * (16): such a link is never evicted (lcore.h), so the rest of the
   * inbound slots stay for broadcasting peers and newcomers. */
  size_t users_max;
  /* n random bytes (nonces, ids, session tokens). Required. */
  void (*random)(void *ctx, uint8_t *buf, size_t n);
  /* Fills *out for node id (false, or out->known false: unknown). May be
   * NULL (no routes but links). */
  bool (*route)(void *ctx, const uint8_t id[GV_ID_BYTES], gv_rroute *out);
  void *ctx;
} gv_relay_cfg;

void gv_relay_cfg_default(gv_relay_cfg *cfg);

/* ---- rows: what the store keeps (node/relaystore.c maps them to SQL) ---- */

typedef enum gv_rrow_type {
  GV_RROW_MSG,    /* a message, out (origin) or in (destination): insert */
  GV_RROW_STATE,  /* a message's new state, with its trace step */
  GV_RROW_CURSOR, /* a pair's delivery cursor */
  GV_RROW_AGENT,  /* a local agent registered (once per name) */
  GV_RROW_MEMBER, /* a team member node learned */
  GV_RROW_DROP,   /* a message forgotten (past its deadline and a day) */
} gv_rrow_type;

/* One message. `inbound` false: our outbox (we are src); true: our inbox
 * (we are dst). A skipped inbound seq (the origin gave up on it, GONE) is
 * an inbound row with state failed, reason expired, and no body. */
typedef struct gv_rmsg_row {
  uint64_t key; /* this node's number for the row: from 1, never reused */
  uint8_t id[GV_RW_ID_BYTES];
  bool inbound;
  uint8_t team_id[GV_RW_KEY_BYTES];
  uint8_t src[GV_ID_BYTES], dst[GV_ID_BYTES];
  char from[GV_RW_AGENT_MAX + 1]; /* project:name at src */
  char to[GV_RW_AGENT_MAX + 1];   /* project:name at dst */
  char thread[GV_RW_THREAD_MAX + 1];
  uint64_t seq;
  int64_t created_ms;  /* wall */
  int64_t deadline_ms; /* wall: created + ttl (origin) or arrival + ttl */
  gv_rstate state;
  gv_rfail reason;
  const uint8_t *body; /* payload, borrowed */
  size_t body_len;
} gv_rmsg_row;

typedef struct gv_rstate_row {
  uint64_t key; /* of the message (its MSG row's) */
  uint8_t id[GV_RW_ID_BYTES];
  bool inbound;
  gv_rstate state;
  gv_rfail reason;
  int64_t at_ms; /* wall */
  bool has_hop;  /* sent: the link's peer */
  uint8_t hop[GV_ID_BYTES];
} gv_rstate_row;

typedef struct gv_rcursor_row {
  char to[GV_RW_AGENT_MAX + 1]; /* the local recipient */
  uint8_t src[GV_ID_BYTES];     /* the sender's node */
  char from[GV_RW_AGENT_MAX + 1];
  uint64_t seq; /* every seq <= this was handed over and acked, or skipped */
} gv_rcursor_row;

typedef struct gv_ragent_row {
  uint8_t team_id[GV_RW_KEY_BYTES];
  gv_raddr_name agent;
} gv_ragent_row;

typedef struct gv_rmember_row {
  uint8_t team_id[GV_RW_KEY_BYTES];
  uint8_t node[GV_ID_BYTES];
} gv_rmember_row;

typedef struct gv_rrow {
  gv_rrow_type type;
  union {
    gv_rmsg_row msg;
    gv_rstate_row state;
    gv_rcursor_row cursor;
    gv_ragent_row agent;
    gv_rmember_row member;
    struct {
      uint64_t key;
      uint8_t id[GV_RW_ID_BYTES];
      bool inbound;
    } drop;
  } u;
} gv_rrow;

/* ---- actions ---- */

typedef enum gv_ract_type {
  GV_RACT_NONE = 0,
  GV_RACT_SEND,    /* link, data/len: a whole plaintext, channel byte first;
                    * forwarded: a packet of others we pass on (peer: its
                    * destination, id: its message id), for a frame log */
  GV_RACT_DIAL,    /* peer, addr */
  GV_RACT_HOLD,    /* link: the relay holds it (GV_HOLD_RELAY) */
  GV_RACT_RELEASE, /* link: the relay no longer holds it */
  GV_RACT_PERSIST, /* job, rows[0..n_rows): commit all or none */
  GV_RACT_LINE,    /* conn, data/len: a line to the agent ('\n' ended) */
  GV_RACT_HANGUP,  /* conn: close it once its lines are written */
  GV_RACT_RELAYS,  /* a silent node's relays changed: relays[0..n_relays) */
} gv_ract_type;

typedef struct gv_ract {
  gv_ract_type type;
  gv_linkid link;
  gv_rconn conn;
  uint8_t *data; /* SEND, LINE: malloc'd, the driver frees it */
  size_t len;
  uint8_t peer[GV_ID_BYTES];
  gv_addr addr;
  bool forwarded;
  uint8_t id[GV_RW_ID_BYTES];
  uint64_t job;
  const gv_rrow *rows;
  size_t n_rows;
  const uint8_t (*relays)[GV_ID_BYTES];
  size_t n_relays;
} gv_ract;

/* ---- lifecycle ---- */

typedef struct gv_relay gv_relay;

int gv_relay_new(gv_relay **out, const gv_relay_cfg *cfg,
                 const gv_identity *self, int64_t now);
void gv_relay_free(gv_relay *r);
/* wall = now + offset (ms). */
void gv_relay_set_wall(gv_relay *r, int64_t offset);
/* The service of channel 2 for gv_lcore_set_service(). */
const gv_service *gv_relay_service(gv_relay *r);

/* Teams (§4): adds the team whose secret is T (idempotent). inviter, when
 * not NULL, is the node to send JOIN to (team join). The first team added
 * is the default one. GV_ELIMIT past GV_RELAY_TEAMS_MAX. */
int gv_relay_team_add(gv_relay *r, const uint8_t T[GV_RW_KEY_BYTES],
                      const uint8_t *inviter, int64_t now);

/* ---- restart: rows back, oldest first, then loaded() ---- */
void gv_relay_load(gv_relay *r, const gv_rrow *row);
void gv_relay_loaded(gv_relay *r, int64_t now);

/* ---- events ---- */

void gv_relay_committed(gv_relay *r, uint64_t job, int status, int64_t now);
void gv_relay_conn_open(gv_relay *r, gv_rconn conn, int64_t now);
/* One request line, without its '\n'. */
void gv_relay_conn_line(gv_relay *r, gv_rconn conn, const char *line,
                        size_t len, int64_t now);
void gv_relay_conn_closed(gv_relay *r, gv_rconn conn, int64_t now);
void gv_relay_tick(gv_relay *r, int64_t now);
/* A dial the relay asked for (GV_RACT_DIAL) failed before its handshake;
 * ones that fail later come through the service's dial_ended. The relay
 * backs off dialing that node. */
void gv_relay_dial_failed(gv_relay *r, const uint8_t *id, int64_t now);
/* The node's gossip table took a newer record of node id (or dropped it).
 * The relay asks cfg.route again for what it decided from the record at
 * link-up: whether id, silent on an inbound link, names this node as its
 * relay, and so whether the relay holds that link (docs/RELAY.md §5.7). */
void gv_relay_record(gv_relay *r, const uint8_t *id, int64_t now);

/* ---- output and inspection ---- */

bool gv_relay_next(gv_relay *r, gv_ract *a);
int64_t gv_relay_expiry(const gv_relay *r);

#define GV_RELAY_LAT_BUCKETS                                                   \
  12 /* le 1,2,5,10,20,50,100,200,500,1000,5000,+Inf ms */
extern const double gv_relay_lat_le[GV_RELAY_LAT_BUCKETS];

typedef struct gv_relay_stats {
  uint64_t by_state[GV_RSTATE_FAILED + 1];       /* outbox messages now */
  uint64_t failed[GV_RFAIL_NOT_IN_TEAM + 1];     /* failures since start */
  uint64_t refused_in[GV_RFAIL_NOT_IN_TEAM + 1]; /* packets refused */
  uint64_t busy_sent, busy_received;
  uint64_t forwarded, forward_dropped;
  uint64_t outbox, outbox_bytes, inbox, inbox_bytes; /* depths now */
  uint64_t agents_online;
  uint64_t lat_stored[GV_RELAY_LAT_BUCKETS],
      lat_delivered[GV_RELAY_LAT_BUCKETS];
  double lat_stored_sum, lat_delivered_sum; /* ms */
} gv_relay_stats;
void gv_relay_stats_get(const gv_relay *r, gv_relay_stats *out);

/* Checks docs/RELAY.md §8's invariants; 0 or a GV_E* with a reason. */
int gv_relay_check(const gv_relay *r, gv_why *why);

#endif

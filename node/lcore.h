/* The link core (docs/DEVELOPING.md "Links and services"): every open link
 * between this node and a peer, as a pure state machine. It owns what is
 * common to all services on a link: admission, HELLO, PING/PONG and RTT,
 * idle and liveness, per-link rate limits, penalties and bans, link scores,
 * and the channel byte (proto/chan.h). Each message is dispatched by its
 * channel to the service that owns it: the gossip engine today, the relay
 * and torrent cores later.
 *
 * A link's life (PROTOCOL.md §5.2):
 *
 *   gv_lcore_open ----> OPEN: HELLO sent, waiting for the peer's HELLO
 *        |                |  peer HELLO (first message, channel 0)
 *        | refused        v
 *        |              READY: services told (up); each may hold the link
 *        |                |  no holder left | ban | idle | PING unanswered |
 *        v                v  evicted | duplicate | protocol error
 *      CLOSE action --> CLOSING: nothing more is sent or dispatched
 *                         |  the transport is gone
 *                         v
 *   gv_lcore_closed ----> removed (services told: down, if it was READY)
 *
 * Services hold a READY link with a reason (GV_HOLD_*). The link closes
 * only when no service holds it, or when the core itself ends it (ban,
 * liveness, eviction, protocol error).
 *
 * Time: `now` is a monotonic clock in milliseconds and must never decrease.
 * gv_lcore_expiry() says when gv_lcore_tick() is next needed.
 *
 * Lifetime: gv_lcore_new() allocates, gv_lcore_free() frees everything,
 * including undrained actions. Services are borrowed and must outlive the
 * core. Pointers inside an action are valid until the next call into the
 * core; a SEND's buffer carries one reference the caller releases with
 * gv_buf_unref(). A service callback must not call back into the core,
 * except gv_lcore_hold()/gv_lcore_release()/gv_lcore_penalize().
 */
#ifndef GV_LCORE_H
#define GV_LCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "engine.h"
#include "msg.h"

/* Why a link closed: the label of grapevine_links_closed_total. */
#define GV_CLOSE_MAP(XX)                                                       \
  XX(GOODBYE, "goodbye")             /* the peer closed cleanly */             \
  XX(SHUTDOWN, "shutdown")           /* this node is stopping */               \
  XX(UNWANTED, "unwanted")           /* no service holds it */                 \
  XX(DUPLICATE, "duplicate")         /* a second link to the same peer */      \
  XX(SELF, "self")                   /* a link to this node itself */          \
  XX(FULL, "full")                   /* no inbound slot, none to evict */      \
  XX(EVICTED, "evicted")             /* made room for a newcomer */            \
  XX(NOT_ACCEPTING, "not_accepting") /* inbound while silent */                \
  XX(BANNED, "banned")               /* misbehaviour */                        \
  XX(HELLO_TIMEOUT, "hello_timeout") /* no HELLO in time */                    \
  XX(PING_TIMEOUT, "ping_timeout")   /* a PING went unanswered */              \
  XX(IDLE, "idle")                   /* nothing received for too long */       \
  XX(PROTOCOL, "protocol")           /* a message broke the link rules */      \
  XX(QUEUE_FULL, "queue_full")       /* the peer does not read its data */     \
  XX(TRANSPORT, "transport")         /* TCP error, truncation, bad crypto */

typedef enum gv_close {
#define XX(name, label) GV_CLOSE_##name,
  GV_CLOSE_MAP(XX)
#undef XX
      GV__CLOSE_COUNT
} gv_close;

const char *gv_close_label(gv_close why);

/* Why a service holds a link: a bit each. */
enum {
  GV_HOLD_GOSSIP = 1u << 0,
  GV_HOLD_RELAY = 1u << 1,
  GV_HOLD_TORRENT = 1u << 2,
};

typedef struct gv_lcore_cfg {
  uint64_t seed;                 /* jitter and PING nonces */
  bool accepting;                /* takes inbound links (broadcasting) */
  unsigned inbound_max;          /* inbound links (32) */
  unsigned outbound_max;         /* dialed links (8) */
  int64_t hello_ms;              /* OPEN must see HELLO within (10 s) */
  int64_t ping_ms;               /* PING interval once READY (30 s; 0: off) */
  int64_t ping_timeout_ms;       /* an unanswered PING ends the link (20 s) */
  int64_t idle_ms;               /* nothing received for this long (90 s) */
  int64_t protect_ms;            /* inbound links this old and scoring >= 50
                                    are never evicted (10 min) */
  double rate_per_s, rate_burst; /* link+gossip messages per link (200, 400) */
  double ban_threshold;          /* score below which: ban (-30) */
  int64_t ban_ms;                /* 10 min */
  const char *agent;             /* HELLO's agent string */
  bool stub_sigs; /* SIMULATOR ONLY: HELLO records are not verified */
  /* SIMULATOR ONLY: records decoded once for every engine (msg.h); NULL
   * (a node): each HELLO's record is decoded here. */
  const gv_msg_memo *memo;
  /* Where the constant part of this configuration is kept (all but seed
   * and accepting): a pool shared with other link cores (the simulator's,
   * which must outlive the core), or NULL for the core's own copy. */
  struct gv_intern *pool;
} gv_lcore_cfg;

void gv_lcore_cfg_default(gv_lcore_cfg *cfg);

typedef struct gv_link_info {
  gv_linkid id;
  uint8_t peer[GV_ID_BYTES];
  bool dialed, ready;
  unsigned holds; /* GV_HOLD_* bits */
  int64_t up_at;  /* monotonic ms */
  double rtt_ms;  /* smoothed; -1 before the first PONG */
  double availability, performance, penalty, score;
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
} gv_link_info;

/* A service plugged into the core for one channel. ctx is passed back. */
typedef struct gv_service {
  void *ctx;
  /* Fills what this service adds to this node's HELLO (gossip: seq, and
   * the signed record in *record, storage the core provides, which it then
   * attaches); may be NULL. Pointers stored must stay valid until the call
   * that triggered it returns. */
  void (*hello)(void *ctx, gv_msg *hello, gv_msg *record);
  /* The link is READY. hello is the peer's HELLO, validated. Returns true
   * to hold the link (GV_HOLD_* of this service). addr: the address this
   * node dialed, NULL for an inbound link (never shareable). */
  bool (*up)(void *ctx, gv_linkid link, const uint8_t *peer, bool dialed,
             const gv_addr *addr, const gv_msg *hello, int64_t now);
  /* The link is gone; it was READY. */
  void (*down)(void *ctx, gv_linkid link, gv_close why, int64_t now);
  /* One message on the service's channel (without the channel byte).
   * Returns 0, or a negative GV_E* for a rejected message with the reason
   * in why: the core logs it and penalizes the link. */
  int (*recv)(void *ctx, gv_linkid link, const uint8_t *msg, size_t len,
              int64_t now, gv_why *why);
  /* A link this node dialed ended before READY (refused, a duplicate that
   * lost, no HELLO): the dial is over, and why says whether the peer is
   * reached anyway (GV_CLOSE_DUPLICATE) or failed. addr: the address
   * dialed. Every service hears it; each minds only its own dials. May be
   * NULL. */
  void (*dial_ended)(void *ctx, const uint8_t *peer, const gv_addr *addr,
                     gv_close why, int64_t now);
  /* The link's score changed (after a PONG or a penalty); may be NULL. */
  void (*score)(void *ctx, const gv_link_info *info, int64_t now);
} gv_service;

/* What the core says about one link (grapevine peers, metrics). */
typedef struct gv_lcore_stats {
  uint64_t opened;
  uint64_t closed[GV__CLOSE_COUNT];
  uint64_t msgs_in[GV__CHAN_COUNT], bytes_in[GV__CHAN_COUNT];
  uint64_t unknown_chan; /* messages on channels nobody serves */
  uint64_t rejected, rate_limited, bans;
  uint64_t pings, pongs;
} gv_lcore_stats;

typedef struct gv_lcore gv_lcore;

int gv_lcore_new(gv_lcore **out, const gv_lcore_cfg *cfg,
                 const uint8_t self[GV_ID_BYTES], int64_t now);
void gv_lcore_free(gv_lcore *lc);

/* Plugs svc in for chan (GOSSIP, RELAY, TORRENT); NULL unplugs. */
void gv_lcore_set_service(gv_lcore *lc, gv_chan chan, const gv_service *svc);
/* Going silent closes every inbound link (NOT_ACCEPTING). */
void gv_lcore_set_accepting(gv_lcore *lc, bool on, int64_t now);
/* The wall clock is now + offset (ms). It stamps HELLO and checks the
 * future rule on HELLO's record; nothing is scheduled by it. */
void gv_lcore_set_wall(gv_lcore *lc, int64_t offset);

/* ---- events ---- */

/* A handshake finished: the link is OPEN and HELLO goes out, or it is
 * refused at once with a CLOSE action. Either way the caller reports the
 * transport's end with gv_lcore_closed(), as for every link. addr: the
 * address dialed, NULL for an inbound link. */
void gv_lcore_open(gv_lcore *lc, gv_linkid link, const uint8_t *peer,
                   bool dialed, const gv_addr *addr, int64_t now);
/* One plaintext from the link (channel byte first). */
void gv_lcore_recv(gv_lcore *lc, gv_linkid link, const uint8_t *pt, size_t len,
                   int64_t now);
/* The transport is gone. goodbye: the peer ended with a FINAL frame. */
void gv_lcore_closed(gv_lcore *lc, gv_linkid link, bool goodbye, int64_t now);
void gv_lcore_tick(gv_lcore *lc, int64_t now);

/* ---- commands ---- */

/* A service takes or gives up its hold on a READY link. Releasing the last
 * hold closes the link (UNWANTED). GV_ESTATE if the link is not READY. */
int gv_lcore_hold(gv_lcore *lc, gv_linkid link, unsigned hold, int64_t now);
int gv_lcore_release(gv_lcore *lc, gv_linkid link, unsigned hold, int64_t now);
/* Adds penalty points to a link (a service saw abuse); may ban. */
void gv_lcore_penalize(gv_lcore *lc, gv_linkid link, double points,
                       int64_t now);
/* Closes every link (SHUTDOWN). */
void gv_lcore_close_all(gv_lcore *lc, gv_close why, int64_t now);
/* The transport could not queue a send: the peer does not read. */
void gv_lcore_send_failed(gv_lcore *lc, gv_linkid link, int64_t now);

/* ---- output and inspection ---- */

/* SEND (link, buf: the whole plaintext, channel byte first), CLOSE (link,
 * reason: a gv_close; the caller sends FINAL with a GOODBYE, then calls
 * gv_lcore_closed() when the transport is gone), REJECT (link, reason: the
 * GV_E*, why: the text; for a rate-limited debug log). */
bool gv_lcore_next(gv_lcore *lc, gv_action *a);
/* When gv_lcore_tick() is next needed; INT64_MAX: never. */
int64_t gv_lcore_expiry(const gv_lcore *lc);

/* A hint, no effect on state: lc's next event is near, so start loading
 * what every event reads (a driver of many cores, the simulator, calls
 * it a few events ahead: each core's memory is cold by then). */
void gv_lcore_prefetch(const gv_lcore *lc);
const gv_lcore_stats *gv_lcore_stats_get(const gv_lcore *lc);
size_t gv_lcore_count(const gv_lcore *lc);
/* The i-th link (any state but CLOSING); false past the end. */
bool gv_lcore_info(const gv_lcore *lc, size_t i, gv_link_info *out);
/* The link's score (availability and performance averaged, less its
 * penalty), 0..100 less penalties; 50 before anything is known. */
double gv_lcore_score(const gv_lcore *lc, gv_linkid link);
/* True while peer is banned. */
bool gv_lcore_banned(const gv_lcore *lc, const uint8_t *peer);
/* Checks the invariants of this header; 0 or a GV_E* with a reason. */
int gv_lcore_check(const gv_lcore *lc, gv_why *why);

#endif

/* The gossip engine (docs/GOSSIP.md): membership, peer table, dissemination
 * with repair, requests, liveness, scores and abuse control, as a pure state
 * machine. Events go in with the caller's clock; actions come out.
 *
 *   gv_engine_new -> { link core events (gv_engine_service) | _tick |
 *                      _announce | _set_repos | _set_broadcast |
 *                      _set_relays | _set_tport | _request |
 *                      _add_candidate }
 *                      -> drain gv_engine_next() -> arm a
 *   timer at gv_engine_expiry() -> ...
 *
 * The engine never reads a clock, touches a socket or file, or calls rand().
 * `now` is milliseconds on the caller's monotonic clock and must never
 * decrease; the wall clock, for message timestamps only, is now plus the
 * offset given to gv_engine_set_wall().
 *
 * Lifetime: gv_engine_new() allocates; gv_engine_free() releases everything,
 * including buffers of actions not yet drained. The identity is borrowed and
 * must outlive the engine. Pointers inside an action (entry, response) are
 * valid until the queue has been drained (gv_engine_next() returned false),
 * even if the caller calls into the engine meanwhile; a SEND's buffer
 * carries one reference that the caller owns and releases with
 * gv_buf_unref().
 */
#ifndef GV_ENGINE_H
#define GV_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "msg.h"

/* ---- reference-counted byte buffers ---- */

typedef struct gv_buf {
  uint32_t refs;
  uint32_t len;
  uint8_t data[];
} gv_buf;

/* ---- memory for hot blocks ----
 *
 * Buffers, and the arrays the engine grows step by step and releases when
 * empty (links, dials, pending ids, FIFOs), come and go millions of times
 * in a simulation. Their memory comes from malloc and free unless a
 * program sets other functions, once, before it starts a second thread
 * (the hooks are read by every thread, never locked). alloc(n) returns a
 * block of at least n bytes that free() accepts, or NULL; release(p, n)
 * takes back a block that alloc(n) returned (the same n), or NULL. A block
 * from alloc may also be freed with free(). The simulator sets free lists
 * by size, per thread; the daemon sets nothing. */
typedef struct gv_blk_hooks {
  void *(*alloc)(size_t n);
  void (*release)(void *p, size_t n);
} gv_blk_hooks;

/* Sets the hooks; NULL restores malloc and free. h is copied. */
void gv_blk_set_hooks(const gv_blk_hooks *h);
/* For the engine: a block of n bytes (never NULL: node/oom.h); p, a block
 * of old bytes from here (or NULL), moved into one of n (never NULL); p,
 * a block of n bytes from here, released. */
void *gv__blk_alloc(size_t n);
void *gv__blk_grow(void *p, size_t old, size_t n);
void gv__blk_free(void *p, size_t n);

/* A new buffer with one reference (never NULL: node/oom.h). */
gv_buf *gv_buf_new(const void *data, size_t len);
void gv_buf_ref(gv_buf *b);
void gv_buf_unref(gv_buf *b);
/* A plaintext for the link: the channel byte (proto/chan.h), then len
 * bytes of msg. */
gv_buf *gv_chan_buf(unsigned chan, const void *msg, size_t len);
/* A link message (m->type and its union member, gv_msg_encode_link) as a
 * plaintext for chan; NULL only if m does not encode. */
gv_buf *gv_chan_msg(unsigned chan, const gv_msg *m);

/* ---- configuration ---- */

typedef struct gv_engine_cfg {
  uint64_t seed;             /* PRNG seed */
  unsigned fanout;           /* eager push targets (3) */
  unsigned fanout_announced; /* ...once a neighbour announced it (2) */
  unsigned ttl_announce, ttl_request, ttl_heartbeat; /* 32, 16, 2 */
  bool repair;            /* lazy push + pull (true) */
  unsigned active_target; /* links a node aims for (5) */
  unsigned active_max;    /* links beyond which it lets its own dials go (8) */
  unsigned table_cap;     /* peer table entries (1024) */
  unsigned dedup_cap;     /* ids remembered (65536) */
  unsigned cache_cap;     /* messages kept for IWANT (1024) */
  unsigned pull_cap;      /* ids awaited at once (1024) */
  int64_t dedup_ms, cache_ms;                  /* 15 min, 10 min */
  int64_t pull_delay_ms;                       /* 250 */
  int64_t heartbeat_ms;                        /* 30 s; 0 disables */
  int64_t peer_expiry_ms, bootstrap_expiry_ms; /* 2 h, 1 h */
  int64_t route_ms;                            /* reverse paths live 60 s */
  int64_t shuffle_ms;       /* one extra dial up to active_max (60 s; 0: off) */
  int64_t banned_redial_ms; /* a peer the link core banned: no dial (10 min) */
  bool stub_sigs;           /* SIMULATOR ONLY: sign nothing, verify nothing */
  /* Where signed bodies are kept: a pool shared with other engines (the
   * simulator's, so that a record a thousand engines hold is stored once;
   * it must outlive the engine), or NULL for the engine's own copies. */
  struct gv_intern *bodies;
  /* Entry guards (guard.h, NODE.md "Privacy"): while this node is silent
   * and guards is on, it dials only its guards (and seeds until it holds
   * guard_count), with no shuffle. Ignored while broadcasting. */
  bool guards;                                  /* true */
  unsigned guard_count;                         /* 0: active_target */
  int64_t guard_min_age_ms;                     /* 1 h in the table */
  int64_t guard_down_ms;                        /* 1 h of failed dials */
  int64_t guard_life_min_ms, guard_life_max_ms; /* 30, 60 days */
  int64_t wall_offset; /* wall clock = now + this, from the start; later
                          changes through gv_engine_set_wall() */
  /* The seq ceiling reserved by an earlier run (GV_ACT_SEQ_RESERVE), 0 if
   * none: every seq this engine signs is above it. */
  uint64_t seq_floor;
  /* What this node says about itself. */
  bool broadcasting, bootstrap;
  uint8_t n_addrs; /* used only when broadcasting */
  gv_addr addrs[GV_MAX_ADDRS];
  /* Read by gv_engine_new() only (the engine keeps a packed copy); may
   * point to the caller's storage. */
  size_t n_repos;
  const char (*repos)[GV_REPO_MAX + 1];
  /* The torrent port the record names while broadcasting (PROTOCOL.md
   * §6.5 `tport`); 0: none. */
  uint16_t tport;
} gv_engine_cfg;

/* Fills cfg with the defaults above (not broadcasting, no repos). */
void gv_engine_cfg_default(gv_engine_cfg *cfg);

/* ---- the peer table, as the caller sees it ---- */

/* Compact on purpose: the simulator holds millions. body and repos point
 * into one string, which other engines may share (cfg.bodies): never
 * written. The string also holds the record's signature, addresses and
 * relays; gv_peer_entry_sig(), _addrs() and _relays() read them there. */
typedef struct gv_peer_entry {
  uint8_t id[GV_ID_BYTES];
  uint64_t seq;      /* of the record held */
  int64_t last_seen; /* the engine's (monotonic) clock */
  char *repos;       /* n_repos NUL-terminated names, back to back */
  char *body;        /* the origin's signed record, exact bytes */
  uint32_t body_len;
  gv_msg_type type;                /* PEER_ANNOUNCEMENT or PEER_UPDATE */
  float availability, performance; /* 0..100 */
  bool broadcasting, bootstrap;
  bool connected;
  uint8_t n_addrs, n_repos;
  uint8_t n_relays; /* 0..GV_MAX_RELAYS; none unless silent */
  uint16_t tport;   /* torrent port of a broadcasting origin; 0: none */
} gv_peer_entry;

/* The record's signature (GV_SIG_BYTES). */
const uint8_t *gv_peer_entry_sig(const gv_peer_entry *p);
/* Its n_addrs addresses (none unless broadcasting); NULL when none. */
const gv_addr *gv_peer_entry_addrs(const gv_peer_entry *p);
/* The n_relays node ids the (silent) origin names as its relays, in its
 * order (PROTOCOL.md §6.5); NULL when there are none. */
const uint8_t (*gv_peer_entry_relays(const gv_peer_entry *p))[GV_ID_BYTES];

/* True if the entry lists repository name. */
bool gv_peer_entry_has_repo(const gv_peer_entry *p, const char *name);

/* ---- actions ---- */

typedef enum gv_act_type {
  GV_ACT_NONE = 0,
  GV_ACT_SEND,    /* link, buf: a whole plaintext, channel byte first */
  GV_ACT_DIAL,    /* peer (all zero if unknown), addr */
  GV_ACT_CLOSE,   /* link core: link, reason (a gv_close) */
  GV_ACT_RELEASE, /* engine: gossip no longer holds link */
  GV_ACT_REJECT,  /* link core: link, reason (GV_E*), why: a message refused */
  GV_ACT_PERSIST, /* peer, entry (NULL: delete the peer), at */
  GV_ACT_DELIVER, /* msg_id, msg_type, hops: first receipt of a message */
  GV_ACT_REPORT,  /* msg_id (the request), response: results for us */
  GV_ACT_GUARDS,  /* the guard set changed: save gv_engine_guards() */
  /* seq: store this ceiling durably (it becomes the next run's
   * cfg.seq_floor) before carrying out any later action; the messages
   * queued after it carry seqs up to it. */
  GV_ACT_SEQ_RESERVE,
} gv_act_type;

/* Sequence numbers (PROTOCOL.md §6.2): at most GV_SEQ_MAX (JSON-safe);
 * reserved GV_SEQ_BLOCK ahead, so the ceiling is stored about once an hour
 * of signing at the wall-clock pace. */
#define GV_SEQ_MAX GV_INT_MAX /* 2^53 - 1 */
#define GV_SEQ_BLOCK 3600000ULL
/* How long an origin waits for its neighbours to confirm its newest record
 * (IHAVE back, PROTOCOL.md §6.7) before a silent node lets its inbound
 * links go. */
#define GV_UPTAKE_WAIT_MS 10000

typedef uint32_t gv_linkid;

typedef struct gv_action {
  gv_act_type type;
  gv_linkid link;
  gv_buf *buf;
  int reason;
  const char *why; /* REJECT */
  uint8_t peer[GV_ID_BYTES];
  gv_addr addr;
  const gv_peer_entry *entry;
  int64_t at; /* PERSIST: the entry's last_seen on the wall clock */
  uint8_t msg_id[GV_MSG_ID_BYTES];
  gv_msg_type msg_type;
  uint32_t hops;
  bool repaired;          /* DELIVER: obtained by pull */
  const gv_msg *response; /* REPORT */
  uint64_t seq;           /* SEQ_RESERVE */
} gv_action;

/* ---- counters ---- */

typedef struct gv_engine_stats {
  uint64_t msgs_in[GV__MSG_COUNT], msgs_out[GV__MSG_COUNT];
  uint64_t bytes_in, bytes_out;
  uint64_t payload_out; /* gossip payload sends: eager pushes + pull answers */
  uint64_t dedup_hits, dedup_evictions;
  uint64_t pulls_sent, pulls_served;
  uint64_t rejected;
} gv_engine_stats;

typedef struct gv_engine gv_engine;

int gv_engine_new(gv_engine **out, const gv_engine_cfg *cfg,
                  const gv_identity *id, int64_t now);
void gv_engine_free(gv_engine *e);

/* ---- events ----
 *
 * The link core (lcore.h) owns the links and calls these through the
 * service gv_engine_service() fills; tests may call them directly. */

struct gv_service;
/* Fills svc so that the link core drives this engine on the gossip
 * channel. The engine must outlive the link core's use of svc. */
void gv_engine_service(gv_engine *e, struct gv_service *svc);

/* A link is READY (both HELLOs exchanged). addr: the address this node
 * dialed (NULL for inbound); hello: the peer's HELLO, whose record (if
 * any) is the peer's own. Returns true if gossip holds the link. */
bool gv_engine_link_up(gv_engine *e, gv_linkid link, const uint8_t *peer,
                       bool we_dialed, const gv_addr *addr, const gv_msg *hello,
                       int64_t now);
/* A READY link is gone; why is a gv_close (lcore.h). */
void gv_engine_link_down(gv_engine *e, gv_linkid link, int why, int64_t now);
/* A dial this node made ended before its link was READY; why is a gv_close
 * (lcore.h): a DUPLICATE means the peer is reached by the other link, any
 * other reason is a failed dial (backoff). */
void gv_engine_dial_ended(gv_engine *e, const uint8_t *peer,
                          const gv_addr *addr, int why, int64_t now);
/* A dial failed before a link was up (TCP or handshake). */
void gv_engine_dial_failed(gv_engine *e, const uint8_t *peer,
                           const gv_addr *addr, int64_t now);
/* One gossip-channel message (without the channel byte). Returns 0 (a
 * duplicate is not an error) or the GV_E* of a rejected message, with the
 * reason in why (may be NULL). */
int gv_engine_recv(gv_engine *e, gv_linkid link, const uint8_t *msg, size_t len,
                   int64_t now, gv_why *why);
/* The link core's score for a link changed. */
void gv_engine_link_score(gv_engine *e, gv_linkid link, double score,
                          double performance, int64_t now);
/* Fills the gossip part of this node's HELLO: seq, and its signed record
 * into *record (pointing into the engine; valid until the next call into
 * it). */
void gv_engine_hello(gv_engine *e, gv_msg *hello, gv_msg *record);
/* Timers: gv_engine_tick() is due at gv_engine_expiry() (never earlier
 * than needed; INT64_MAX: nothing scheduled). */
void gv_engine_tick(gv_engine *e, int64_t now);
int64_t gv_engine_expiry(const gv_engine *e);
/* The wall clock is now + offset (ms). Message timestamps and their
 * validation use it; nothing is scheduled by it, so a wall-clock step never
 * freezes or hurries a timer. */
void gv_engine_set_wall(gv_engine *e, int64_t offset);
/* A time of the engine's (a last_seen) on the wall clock. */
int64_t gv_engine_wall(const gv_engine *e, int64_t t);

/* ---- local commands ---- */

/* Floods this node's signed record network-wide (ttl 32). *id (may be
 * NULL) receives the message id. */
int gv_engine_announce(gv_engine *e, uint8_t *id, int64_t now);
/* Replace this node's repositories / broadcasting state; floods a
 * PEER_UPDATE. Going silent drops the addresses from the record, so every
 * node forgets them. */
int gv_engine_set_repos(gv_engine *e, const char (*repos)[GV_REPO_MAX + 1],
                        size_t n, int64_t now);
int gv_engine_set_broadcast(gv_engine *e, bool on, bool bootstrap,
                            const gv_addr *addrs, size_t n, int64_t now);
/* Sets the torrent port this node's record names while it broadcasts
 * (PROTOCOL.md §6.5 `tport`; 0: none). When it changes and the node
 * broadcasts, re-signs the record and floods a PEER_UPDATE; a silent
 * node's record never carries it, but the port is kept for when it
 * broadcasts again. Returns 0. */
int gv_engine_set_tport(gv_engine *e, uint16_t port, int64_t now);
/* Names this silent node's relays (RELAY.md §5.7): the broadcasting nodes
 * it keeps links to, by id, in order of preference; n 0 names none. When
 * the set differs from the one in force (order aside), re-signs the record
 * and floods a PEER_UPDATE; an equal set changes and sends nothing. Returns
 * 0; GV_ESTATE while broadcasting (a broadcasting node is dialed directly,
 * and going broadcasting drops the relays); GV_ELIMIT for n over
 * GV_MAX_RELAYS; GV_EINVAL for an id given twice or this node's own id.
 * ids is read during the call only. */
int gv_engine_set_relays(gv_engine *e, const uint8_t (*ids)[GV_ID_BYTES],
                         size_t n, int64_t now);
/* Floods a PEER_REQUEST; results come as REPORT actions. *req_id (may be
 * NULL) receives the request's message id. */
int gv_engine_request(gv_engine *e, const char *repo, unsigned max,
                      uint8_t *req_id, int64_t now);
/* A dialable candidate (tracker answer, --peer, cached peer). peer may be
 * NULL when unknown; then the dial is not pinned. by_operator: the operator
 * named it (--peer, config `peer`), so a bootstrap node among such seeds may
 * serve as a guard at once; a tracker answer (anyone can register) never
 * does, and waits guard_min_age like any entry. */
void gv_engine_add_candidate(gv_engine *e, const uint8_t *peer,
                             const gv_addr *addr, bool by_operator,
                             int64_t now);
/* Restores a cached peer (from the store) at start-up: the origin's signed
 * record, validated like any other, and when it was last seen (wall
 * clock, as stored). */
int gv_engine_restore(gv_engine *e, const char *body, size_t body_len,
                      const uint8_t sig[GV_SIG_BYTES], int64_t last_seen,
                      int64_t now);

/* Puts back one guard saved before a restart (GV_ACT_GUARDS), times on
 * the wall clock as saved; call after the peer table is restored (a guard
 * not in the table is dropped at the next round). Returns 0, GV_ESTATE if
 * guards are off, or gv_guards_restore()'s error. */
int gv_engine_restore_guard(gv_engine *e, const gv_guard *saved, int64_t now);

/* ---- output and inspection ---- */

/* Pops the next action; returns false when there is none. */
bool gv_engine_next(gv_engine *e, gv_action *a);

const gv_engine_stats *gv_engine_stats_get(const gv_engine *e);
size_t gv_engine_table_size(const gv_engine *e);
size_t gv_engine_link_count(const gv_engine *e);
/* Iterates the table: i from 0 while it returns non-NULL. */
const gv_peer_entry *gv_engine_table_at(const gv_engine *e, size_t i);
/* The entry of node id (its record as last applied: addresses, relays),
 * or NULL if the table holds none; valid until the next call into the
 * engine. This node itself is never in its table. */
const gv_peer_entry *gv_engine_table_get(const gv_engine *e, const uint8_t *id);
/* The guard set in force, in order of preference; *n receives its size (0
 * while guards are off or the node broadcasts). Times are on the engine's
 * clock (gv_engine_wall() converts). Valid until the next call into the
 * engine. */
const gv_guard *gv_engine_guards(const gv_engine *e, size_t *n);
/* Uptake of this node's newest record (PROTOCOL.md §6.7): *links is the
 * number of gossip links it went out on when it was signed, *confirmed how
 * many of those have sent its id back in an IHAVE (a link that went down
 * unconfirmed stays counted as not confirming). Both 0 for a record signed
 * with no link up (the next links get it in their HELLO). */
void gv_engine_uptake(const gv_engine *e, size_t *confirmed, size_t *links);
/* The seq of this node's newest record, the one gv_engine_uptake() reports
 * on (above cfg.seq_floor); a heartbeat or request does not change it. */
uint64_t gv_engine_record_seq(const gv_engine *e);
/* Whether this node's newest record shares its address (cfg.broadcasting,
 * as gv_engine_set_broadcast() last set it). */
bool gv_engine_broadcasting(const gv_engine *e);
/* Checks the invariants of docs/GOSSIP.md §9; 0 or a GV_E* with a reason. */
int gv_engine_check(const gv_engine *e, gv_why *why);

#endif

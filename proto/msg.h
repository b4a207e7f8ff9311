/* Grapevine messages (PROTOCOL.md §6): JSON through cJSON. Gossip messages
 * carry an origin-signed body as a JSON string, verified over the exact
 * bytes received; link messages travel one hop, unsigned.
 *
 * gv_msg_decode() is the one entry point from bytes to a validated message.
 *
 * Lifetime: a gv_msg is a value the caller owns (stack or embedded). Decoding
 * and sealing may attach heap memory to it (the body, the peers of a
 * response); gv_msg_clear() releases it and must be called on every gv_msg
 * that a decode or seal touched, whether it succeeded or not.
 */
#ifndef GV_MSG_H
#define GV_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "identity.h"

#define GV_MSG_VERSION 1
#define GV_MSG_MAX (512u * 1024u) /* largest accepted message, bytes */
#define GV_MAX_REPOS 64
#define GV_REPO_MAX 64 /* bytes in a repository name */
#define GV_MAX_ADDRS 8
#define GV_MAX_RELAYS 4 /* relays a silent record names (PROTOCOL.md §6.5) */
#define GV_MAX_PEERS 32 /* records in a PEER_LIST_RESPONSE */
#define GV_MAX_IDS 64   /* ids in IHAVE / IWANT */
#define GV_AGENT_MAX 64
#define GV_REASON_MAX 64
#define GV_HOPS_MAX 32
#define GV_CLOCK_SKEW_MS 30000LL
#define GV_MSG_MAX_AGE_MS 600000LL
#define GV_INT_MAX 9007199254740991ULL /* 2^53 - 1 */
#define GV_MSG_ID_BYTES 32
#define GV_SIG_BYTES 64

/* TTL limits (and initial values) by type. */
#define GV_TTL_ANNOUNCE 32
#define GV_TTL_REQUEST 16
#define GV_TTL_RESPONSE 16
#define GV_TTL_HEARTBEAT 2

#define GV_MSG_TYPE_MAP(XX)                                                    \
  XX(HELLO, 0)                                                                 \
  XX(PING, 0)                                                                  \
  XX(PONG, 0)                                                                  \
  XX(IHAVE, 0)                                                                 \
  XX(IWANT, 0)                                                                 \
  XX(GOODBYE, 0)                                                               \
  XX(PEER_ANNOUNCEMENT, GV_TTL_ANNOUNCE)                                       \
  XX(PEER_UPDATE, GV_TTL_ANNOUNCE)                                             \
  XX(PEER_REQUEST, GV_TTL_REQUEST)                                             \
  XX(PEER_LIST_RESPONSE, GV_TTL_RESPONSE)                                      \
  XX(HEARTBEAT, GV_TTL_HEARTBEAT)

/* Max ttl: 0 marks a link message. The relay and the torrent module have
 * message sets of their own, on their own channels (PROTOCOL.md §5.1). */
typedef enum gv_msg_type {
  GV_MSG_NONE = 0,
#define XX(name, ttl) GV_MSG_##name,
  GV_MSG_TYPE_MAP(XX)
#undef XX
      GV__MSG_COUNT
} gv_msg_type;

const char *gv_msg_type_name(gv_msg_type t);
/* GV_MSG_NONE if name (of len bytes) names no type. */
gv_msg_type gv_msg_type_from_name(const char *name, size_t len);
bool gv_msg_is_gossip(gv_msg_type t);
unsigned gv_msg_max_ttl(gv_msg_type t);

/* A node's self-description: PEER_ANNOUNCEMENT and PEER_UPDATE.
 *
 * repos holds n_repos names, each NUL-terminated, back to back
 * ("demo/hello\0linux@v6.1\0"); step through them with r += strlen(r) + 1.
 * After a decode or a seal it points into the allocation of m->body (behind
 * the body's NUL), so it lives exactly as long as the body and
 * gv_msg_clear() releases both. To seal, point it at names of the caller's;
 * seal copies them and re-points it.
 *
 * relays: the node ids of the broadcasting nodes a silent origin keeps
 * links to, so that relay traffic reaches it through one of them
 * (RELAY.md §5.7). Ids only, never addresses; distinct, none the origin's
 * own id, and none at all unless the origin is silent. n_relays 0: the
 * member is absent from the body (records from before it stay valid and
 * encode to the same bytes). */
/* The simulator's memo (common/intern.c, memo_put() and memo_find())
 * copies these member by member: a member added here goes there too. */
typedef struct gv_peer_state {
  bool broadcasting;
  bool bootstrap;
  uint8_t n_addrs;
  uint8_t n_repos;
  uint8_t n_relays;
  gv_addr addrs[GV_MAX_ADDRS];
  const char *repos;
  uint8_t relays[GV_MAX_RELAYS][GV_ID_BYTES];
  /* tport: the TCP port its torrent session listens on (docs/TORRENT.md),
   * 1..65535, on the IPs of addrs; only in a broadcasting record. 0: the
   * member is absent (a silent record never has one; records from before
   * it stay valid and encode to the same bytes). */
  uint16_t tport;
} gv_peer_state;

typedef struct gv_msg gv_msg;

struct gv_msg {
  gv_msg_type type;
  /* Gossip: hop fields (unsigned), then the signed part. */
  uint32_t ttl;
  uint32_t hops;
  uint8_t id[GV_MSG_ID_BYTES];
  uint8_t origin[GV_ID_BYTES];
  uint8_t sig[GV_SIG_BYTES];
  uint64_t seq;
  int64_t ts; /* gossip and HELLO: ms since the epoch */
  char *body; /* exact signed bytes, NUL-terminated, owned (unless kept) */
  size_t body_len;
  /* SIMULATOR ONLY: when decoding found this body with this signature in
   * a memo (gv_msg_memo), its kept form there (gv_kept_new()), a
   * reference this message holds until gv_msg_clear() gives it back;
   * body (then equal to kept) and a record's repos point into it. The
   * engine keeps that very string instead of building its own. NULL
   * otherwise. */
  const char *kept;
  const struct gv_msg_memo *memo; /* kept's; gives it back */
  union {
    gv_peer_state peer; /* PEER_ANNOUNCEMENT, PEER_UPDATE */
    struct {
      char repo[GV_REPO_MAX + 1];
      uint32_t max;
    } request;
    struct {
      uint8_t to[GV_ID_BYTES];
      uint8_t request[GV_MSG_ID_BYTES];
      size_t n_peers;
      gv_msg *peers; /* owned array of signed records */
    } response;
    struct {
      char agent[GV_AGENT_MAX + 1];
      uint64_t seq;
      gv_msg *record;   /* optional: the sender's own signed record, owned */
      bool record_lent; /* record is gv_msg_policy.record: not freed */
    } hello;
    uint64_t nonce; /* PING, PONG */
    struct {
      size_t n;
      uint8_t ids[GV_MAX_IDS][GV_MSG_ID_BYTES];
    } ids;                          /* IHAVE, IWANT */
    char reason[GV_REASON_MAX + 1]; /* GOODBYE */
  } u;
};

/* SIMULATOR ONLY: signed bodies decoded once and shared by every receiver
 * (common/intern.h gives one). Whether a body passes its own checks (step
 * 4's printable bytes, then JSON, members, version, type, origin, seq, ts
 * and the type's members) depends on its bytes alone, and so does its id.
 * So decoding first asks `find`: nonzero means these exact bytes passed
 * those checks before, and `find` has filled m's id, type, origin, seq, ts
 * and union member (a record's repos pointing into the memo's storage,
 * valid until the next `put`); 2 also says that m->sig verified for this
 * body before. When the memo holds this body with m->sig, `find` also
 * lends m its kept form (m->kept, a reference): m->body is then that
 * string, not a copy. The checks that depend on the receiver (dedup, ttl, the
 * clock window, an embedded record's type) and on the envelope (the
 * signature, unless find said 2) run as for any message, in the same
 * order. `put` gets every body that passed all its checks but a
 * PEER_LIST_RESPONSE (whose embedded records are checked against the
 * receiver's clock); sig_checked: its signature was verified. `put` may
 * lend m the kept form it made (m->kept; m->body stays m's own). With a
 * memo, gv_msg_decode() also reads the envelopes our encoders write (a
 * gossip hop, a HELLO) without a cJSON tree, to the same result. */
typedef struct gv_msg_memo {
  int (*find)(void *ctx, const char *body, size_t len, gv_msg *m);
  void (*put)(void *ctx, gv_msg *m, bool sig_checked);
  void (*drop)(void *ctx, const char *kept); /* gives m->kept back */
  void *ctx;
} gv_msg_memo;

/* What the receiver brings to validation. */
typedef struct gv_msg_policy {
  int64_t now_ms; /* the receiver's clock */
  /* Optional dedup probe, asked after the id is known and before the
   * signature is checked: nonzero means already seen (GV_EDUP). */
  int (*seen)(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]);
  void *seen_ctx;
  /* SIMULATOR ONLY (grapevine-sim --stub-sigs): skip signature checks.
   * Off (false) everywhere else; a node never sets it. */
  bool trust_sigs;
  /* Optional storage for a HELLO's record, which is then decoded into it
   * instead of a new allocation (a HELLO comes with every link): the
   * record points there, and gv_msg_clear() clears it but does not free
   * it. It must outlive the decoded message. */
  gv_msg *record;
  /* SIMULATOR ONLY: decoded bodies shared between receivers; NULL (a
   * node) decodes every body itself. */
  const gv_msg_memo *memo;
} gv_msg_policy;

/* Validates buf[0..len) into *m (PROTOCOL.md §6.6). Returns 0, or a GV_E*
 * code with a specific reason in why. */
int gv_msg_decode(gv_msg *m, const uint8_t *buf, size_t len,
                  const gv_msg_policy *pol, gv_why *why);

/* Validates one stored signed record (a PEER_ANNOUNCEMENT or PEER_UPDATE as
 * its origin signed it: exact body bytes and signature) into *m, by the
 * rules for records embedded in a response (PROTOCOL.md §6.5). */
int gv_msg_decode_record(gv_msg *m, const char *body, size_t body_len,
                         const uint8_t sig[GV_SIG_BYTES],
                         const gv_msg_policy *pol, gv_why *why);

/* Releases what decode or seal attached to m, and zeroes it. */
void gv_msg_clear(gv_msg *m);

/* The kept form of a signed body: how the engine keeps a record (a table
 * entry's, its own) or a cached message, and how the simulator's memo
 * shares it with the engines (common/intern.h): the body, a NUL, the
 * signature's GV_SIG_BYTES, a NUL pad to an even offset
 * (gv_kept_tail_at()), then for a record (PEER_ANNOUNCEMENT, PEER_UPDATE)
 * its addresses as gv_addr (a broadcasting origin's; IP rule, §8), its
 * relay ids (a silent origin's) and its packed repository names. Equal
 * messages give equal bytes, padding included. */
size_t gv_kept_tail_at(size_t body_len);
/* m's kept form, malloc'd, its size in *n; NULL only when out of memory. */
char *gv_kept_new(const gv_msg *m, size_t *n);

/* Encodes a link message from m->type and its union member. *out is
 * malloc'd (free() it), NUL-terminated; *len excludes the NUL. */
int gv_msg_encode_link(const gv_msg *m, char **out, size_t *len);
/* As gv_msg_encode_link(), written into buf[0..cap) when the encoder's
 * worst case fits there (about six bytes a body byte: then *out ==
 * buf), or else into a malloc'd block (*out != buf: free() it); buf may be
 * NULL when cap is 0. On an error nothing is left allocated, and buf's
 * contents are undefined. For the sends of every hop and link: no
 * allocation of that worst case, freed at once. */
int gv_msg_encode_link_in(const gv_msg *m, char *buf, size_t cap, char **out,
                          size_t *len);

/* Gossip origin: fills m->origin from id, builds and signs the body from
 * m->type, m->seq, m->ts and the union member, sets m->body and m->id, then
 * encodes the envelope with m->ttl and m->hops. */
int gv_msg_seal(gv_msg *m, const gv_identity *id, char **out, size_t *len);

/* As gv_msg_seal(); with stub_sig (SIMULATOR ONLY) the signature is left
 * all zero and id->sk is not used. */
int gv_msg_seal_opt(gv_msg *m, const gv_identity *id, bool stub_sig, char **out,
                    size_t *len);

/* Encodes the envelope of an already-signed gossip message (forwarding:
 * change m->ttl and m->hops first). The body is emitted unchanged. */
int gv_msg_encode_gossip(const gv_msg *m, char **out, size_t *len);
/* As gv_msg_encode_gossip(), into buf as gv_msg_encode_link_in(). */
int gv_msg_encode_gossip_in(const gv_msg *m, char *buf, size_t cap,
                            char **out, size_t *len);

/* Checks a repository name (PROTOCOL.md §6.2). 0 or GV_EFIELD. */
int gv_repo_name_check(const char *name, size_t len);

#endif

/* The relay's wire format on channel 2 (docs/RELAY.md §4.2, §5.1, §6).
 *
 * Sans-I/O: no clock, no socket, no global RNG (a nonce or random id is
 * passed in), no global state. Every decoder works on a buffer the caller
 * owns, allocates nothing, and returns pointers into that buffer: they stay
 * valid as long as the buffer does. Every decoder checks each length before
 * it uses it and refuses, with a reason in why, anything that does not parse
 * exactly. Every encoder refuses (GV_EFIELD, GV_ERANGE, GV_ELIMIT, GV_ETOOBIG)
 * what its decoder would refuse, so what we send we also accept.
 *
 * Layers, outermost first:
 *   hop packet   ROUTE or CREDIT            gv_rw_hop_decode / _route_encode
 *   sealed       nonce || crypto_box(inner) gv_rw_seal / gv_rw_open
 *   inner        v || kind || team_id8 || team_mac || body
 *   body         DATA, STORED, ... DIR      gv_rw_body_decode / _body_encode
 *
 * Errors of gv_rw_open() map onto the failure reasons of RELAY.md §5.3:
 * GV_EDECRYPT is `refused` (not sealed by src for us, or altered on the
 * way), GV_EBADSIG is `not_in_team` (opened, but no team of ours proves it).
 */
#ifndef GV_RELAYWIRE_H
#define GV_RELAYWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"

/* ---- sizes and limits (§6) ---- */
#define GV_RW_ID_BYTES 16 /* message id (§5.1) */
#define GV_RW_KEY_BYTES 32
#define GV_RW_NONCE_BYTES 24
#define GV_RW_MAC_BYTES 16 /* crypto_box's authenticator */
#define GV_RW_TEAM_ID8 8   /* team_id prefix carried in the inner packet */
#define GV_RW_TEAM_MAC 32  /* team_mac */
#define GV_RW_VERSION 1    /* inner v */
#define GV_RW_HOPS_MAX 3   /* a ROUTE with hops >= this is dropped */
#define GV_RW_ROUTE_HDR 82 /* kind, dst, src, hops, id */
#define GV_RW_CREDIT_LEN 5 /* kind, window */
#define GV_RW_INNER_HDR 42 /* v, kind, team_id8, team_mac */
#define GV_RW_SEAL_OVERHEAD                                                    \
  (GV_RW_NONCE_BYTES + GV_RW_MAC_BYTES + GV_RW_INNER_HDR)
#define GV_RW_SEALED_MAX (1024u * 1024u + 4096u)
#define GV_RW_BODY_MAX (GV_RW_SEALED_MAX - GV_RW_SEAL_OVERHEAD)
#define GV_RW_PAYLOAD_MAX (1024u * 1024u)
#define GV_RW_PART_MAX 64   /* a project or a name */
#define GV_RW_AGENT_MAX 129 /* project:name */
#define GV_RW_THREAD_MAX 64
#define GV_RW_IDEM_KEY_MAX 64
#define GV_RW_TTL_MAX_MS 2592000000u /* 30 days */
#define GV_RW_MEMBERS_MAX 1024
#define GV_RW_DIR_MAX 4096
#define GV_RW_TOKEN_PREFIX "gvteam1."
#define GV_RW_TOKEN_LEN 94 /* "gvteam1." + 86 base64url digits, no NUL */

/* Hop kinds (§6.1, §6.2): the first byte of a channel-2 message. */
enum { GV_RW_ROUTE = 0x01, GV_RW_CREDIT = 0x02 };

/* Inner kinds (§6.4). */
#define GV_RW_KIND_MAP(XX)                                                     \
  XX(DATA, 0x10, "DATA")                                                       \
  XX(STORED, 0x11, "STORED")                                                   \
  XX(DELIVERED, 0x12, "DELIVERED")                                             \
  XX(READ, 0x13, "READ")                                                       \
  XX(FAILED, 0x14, "FAILED")                                                   \
  XX(BUSY, 0x15, "BUSY")                                                       \
  XX(GONE, 0x16, "GONE")                                                       \
  XX(JOIN, 0x20, "JOIN")                                                       \
  XX(MEMBERS, 0x21, "MEMBERS")                                                 \
  XX(DIR, 0x22, "DIR")

typedef enum gv_rw_kind {
#define XX(name, num, text) GV_RW_##name = num,
  GV_RW_KIND_MAP(XX)
#undef XX
} gv_rw_kind;

/* "DATA", ...; NULL for a byte that is no inner kind. */
const char *gv_rw_kind_name(unsigned kind);

/* True for the kinds that travel with the zero id (JOIN, MEMBERS, DIR);
 * every other kind names a message by a non-zero outer id. */
int gv_rw_kind_is_control(unsigned kind);

/* FAILED reasons (§6.4). */
enum {
  GV_RW_FAIL_UNKNOWN_RECIPIENT = 1,
  GV_RW_FAIL_REFUSED = 2,
  GV_RW_FAIL_TOO_LARGE = 3,
  GV_RW_FAIL_EXPIRED = 4
};

/* ---- hop packets (§6.1, §6.2) ---- */

typedef struct gv_rw_route {
  uint8_t dst[GV_ID_BYTES];
  uint8_t src[GV_ID_BYTES];
  uint8_t hops;
  uint8_t id[GV_RW_ID_BYTES];
  const uint8_t *sealed; /* nonce || box; borrowed */
  size_t sealed_len;     /* GV_RW_SEAL_OVERHEAD..GV_RW_SEALED_MAX */
} gv_rw_route;

typedef struct gv_rw_hop {
  uint8_t kind; /* GV_RW_ROUTE or GV_RW_CREDIT */
  union {
    gv_rw_route route;
    uint32_t window; /* CREDIT */
  } u;
} gv_rw_hop;

/* Decodes a channel-2 message b[0..len) (the channel byte already taken
 * off). Refuses: an empty message or unknown kind (GV_ETYPE), a ROUTE
 * shorter than its header or a CREDIT of any length but 5 (GV_EFRAME), a
 * sealed part outside GV_RW_SEAL_OVERHEAD..GV_RW_SEALED_MAX (GV_EFRAME /
 * GV_ETOOBIG), hops >= GV_RW_HOPS_MAX (GV_ERANGE). h->u.route.sealed points
 * into b. */
int gv_rw_hop_decode(const uint8_t *b, size_t len, gv_rw_hop *h, gv_why *why);

/* Bytes of a ROUTE carrying sealed_len sealed bytes. */
size_t gv_rw_route_size(size_t sealed_len);

/* Writes r as a ROUTE into out[0..cap); *len is its size. r->sealed may
 * point anywhere, including at out + GV_RW_ROUTE_HDR (seal in place, then
 * encode: nothing is copied). GV_ETOOBIG if cap is short; GV_EFRAME /
 * GV_ETOOBIG / GV_ERANGE as the decoder. */
int gv_rw_route_encode(const gv_rw_route *r, uint8_t *out, size_t cap,
                       size_t *len, gv_why *why);

/* Writes CREDIT(window) into out (GV_RW_CREDIT_LEN bytes). */
void gv_rw_credit_encode(uint32_t window, uint8_t out[GV_RW_CREDIT_LEN]);

/* ---- team keys and the join token (§4.2) ---- */

typedef struct gv_rw_team {
  uint8_t team_id[GV_RW_KEY_BYTES]; /* local lookups; team_id8 = first 8 */
  uint8_t auth[GV_RW_KEY_BYTES];    /* K_auth */
  uint8_t dir[GV_RW_KEY_BYTES];     /* K_dir */
} gv_rw_team;

/* Derives team_id, K_auth and K_dir from the team secret T. The keys are
 * secrets: wipe them with gv_rw_team_keys_wipe(). */
void gv_rw_team_keys(const uint8_t T[GV_RW_KEY_BYTES], gv_rw_team *k);
void gv_rw_team_keys_wipe(gv_rw_team *k);

/* Writes the join token for T and the inviter's node id into out (NUL
 * terminated, GV_RW_TOKEN_LEN characters). */
void gv_rw_token_encode(const uint8_t T[GV_RW_KEY_BYTES],
                        const uint8_t inviter[GV_ID_BYTES],
                        char out[GV_RW_TOKEN_LEN + 1]);

/* Parses exactly text[0..len) as a join token. GV_EFIELD with a reason for
 * a wrong prefix, a wrong length, a character outside base64url, a
 * non-canonical encoding, or an inviter id that is not a valid node id.
 * T is written only on success; the caller wipes it. */
int gv_rw_token_decode(const char *text, size_t len, uint8_t T[GV_RW_KEY_BYTES],
                       uint8_t inviter[GV_ID_BYTES], gv_why *why);

/* ---- peer keys and sealing (§6.3) ---- */

/* The crypto_box key precomputed for one peer: a secret. */
typedef struct gv_rw_boxkey {
  uint8_t k[GV_RW_KEY_BYTES];
} gv_rw_boxkey;

/* Computes the key shared by self and the node `peer` (its Ed25519 public
 * key). GV_EFIELD if peer is not a valid Ed25519 point (or gives a
 * degenerate shared key). The key is the same on both sides. */
int gv_rw_peer_key(const gv_identity *self, const uint8_t peer[GV_ID_BYTES],
                   gv_rw_boxkey *out, gv_why *why);
void gv_rw_peer_key_wipe(gv_rw_boxkey *k);

/* Bytes of the sealed part for a body of body_len bytes. */
size_t gv_rw_sealed_size(size_t body_len);

/* Seals kind || body for the packet whose src, dst and id are in hdr (its
 * sealed fields are ignored), proving membership of `team`, with the
 * caller's fresh random nonce. Writes gv_rw_sealed_size(body_len) bytes to
 * out (cap at least that, else GV_ETOOBIG); body may not overlap out.
 * Refuses a kind that is no inner kind (GV_ETYPE), a body over
 * GV_RW_BODY_MAX (GV_ETOOBIG) and an id that does not fit the kind
 * (GV_EFIELD). The body itself is not checked: encode it with
 * gv_rw_body_encode(). */
int gv_rw_seal(const gv_rw_boxkey *k, const gv_rw_team *team,
               const uint8_t nonce[GV_RW_NONCE_BYTES], const gv_rw_route *hdr,
               unsigned kind, const uint8_t *body, size_t body_len,
               uint8_t *out, size_t cap, gv_why *why);

/* What gv_rw_open() found. */
typedef struct gv_rw_opened {
  uint8_t kind;
  const gv_rw_team *team; /* the element of teams that proved it */
  const uint8_t *body;    /* into the caller's buf */
  size_t body_len;
} gv_rw_opened;

/* Opens r's sealed part with the key shared with r->src into buf[0..cap)
 * (cap >= r->sealed_len - GV_RW_NONCE_BYTES - GV_RW_MAC_BYTES, else
 * GV_ETOOBIG) and checks, in this order:
 *   GV_EDECRYPT  does not open: not sealed by src for us, or altered
 *   GV_EVERSION  v is not 1
 *   GV_EBADSIG   not in team: no element of teams[0..n_teams) whose team_id
 *                starts with team_id8 gives the same team_mac
 *   GV_ETYPE     the kind is no inner kind
 *   GV_EFIELD    the outer id does not fit the kind
 * The body is not parsed: gv_rw_body_decode() does that. */
int gv_rw_open(const gv_rw_boxkey *k, const gv_rw_route *r,
               const gv_rw_team *teams, size_t n_teams, uint8_t *buf,
               size_t cap, gv_rw_opened *out, gv_why *why);

/* ---- inner bodies (§6.4) ---- */

/* 0 if s[0..len) is one part of an agent's name (a project or a name):
 * 1..GV_RW_PART_MAX bytes of [A-Za-z0-9._-]; else GV_EFIELD. */
int gv_rw_name_check(const char *s, size_t len);

/* 0 if s[0..len) is `project:name`, both parts passing
 * gv_rw_name_check(); else GV_EFIELD. */
int gv_rw_agent_check(const char *s, size_t len);

/* A string inside a body: borrowed, not NUL-terminated. */
typedef struct gv_rw_str {
  const char *s;
  size_t len;
} gv_rw_str;

typedef struct gv_rw_data {
  uint32_t ttl_ms; /* remaining: 1..GV_RW_TTL_MAX_MS */
  uint64_t seq;    /* per (from, to), from 1 */
  gv_rw_str from;  /* project:name */
  gv_rw_str to;    /* project:name */
  gv_rw_str thread;
  const uint8_t *payload;
  size_t payload_len; /* 0..GV_RW_PAYLOAD_MAX */
} gv_rw_data;

typedef struct gv_rw_dir_entry {
  gv_rw_str project;
  gv_rw_str name;
  uint8_t online; /* 0 or 1 */
} gv_rw_dir_entry;

/* One node's agents, complete, at the version the node gave them. */
typedef struct gv_rw_dir_node {
  const uint8_t *node; /* GV_ID_BYTES */
  uint64_t ver;        /* higher replaces lower; never 0 */
  uint16_t n;          /* entries: 0..GV_RW_DIR_MAX */
  /* Encoding reads the n entries of list; decoding sets list to NULL and
   * raw to the entries as on the wire (read them with gv_rw_dir_next()). */
  const gv_rw_dir_entry *list;
  const uint8_t *raw;
  size_t raw_len;
} gv_rw_dir_node;

typedef struct gv_rw_dir {
  uint16_t n_nodes; /* 0..GV_RW_MEMBERS_MAX; entries of all <= DIR_MAX */
  /* Encoding reads nodes[0..n_nodes); decoding sets nodes to NULL and raw
   * to the blocks as on the wire (read them with gv_rw_dir_node_next()). */
  const gv_rw_dir_node *nodes;
  const uint8_t *raw;
  size_t raw_len;
} gv_rw_dir;

typedef struct gv_rw_body {
  uint8_t kind;
  union {
    gv_rw_data data;
    uint8_t reason;          /* FAILED: GV_RW_FAIL_* */
    uint32_t retry_after_ms; /* BUSY */
    struct {
      uint16_t n;         /* 0..GV_RW_MEMBERS_MAX */
      const uint8_t *ids; /* n x GV_ID_BYTES, contiguous */
    } members;
    gv_rw_dir dir;
    struct { /* GONE: the origin gave up on seq of (from, to) */
      uint64_t seq;
      gv_rw_str from, to;
    } gone;
  } u; /* nothing for STORED, DELIVERED, READ, JOIN: their body is empty */
} gv_rw_body;

/* Parses the body of an inner packet of the given kind exactly: every
 * length checked before use, names by gv_rw_name_check(), thread 0..64
 * printable ASCII, payload at most GV_RW_PAYLOAD_MAX, at most
 * GV_RW_MEMBERS_MAX ids and GV_RW_DIR_MAX entries, flags 0 or 1, no byte
 * left over. GV_ETYPE, GV_EFRAME (short or trailing bytes), GV_EFIELD,
 * GV_ERANGE, GV_ELIMIT, GV_ETOOBIG, with a reason. Pointers in out point
 * into b. */
int gv_rw_body_decode(unsigned kind, const uint8_t *b, size_t len,
                      gv_rw_body *out, gv_why *why);

/* Bytes gv_rw_body_encode() writes for m (0 for the empty kinds), or
 * SIZE_MAX if m is not encodable. */
size_t gv_rw_body_size(const gv_rw_body *m);

/* Writes m's body into out[0..cap); *len its size. Refuses what the decoder
 * would refuse, a short cap (GV_ETOOBIG), and entries promised but not
 * given (GV_EINVAL: a DIR with n > 0 and no list, MEMBERS without ids). */
int gv_rw_body_encode(const gv_rw_body *m, uint8_t *out, size_t cap,
                      size_t *len, gv_why *why);

/* Reads the DIR block at *off of d->raw (start with *off = 0) into b and
 * advances *off. Returns 1 for a block, 0 past the last. Only for a d that
 * gv_rw_body_decode() accepted. */
int gv_rw_dir_node_next(const gv_rw_dir *d, size_t *off, gv_rw_dir_node *b);
/* Reads the entry at *off of a decoded block's raw (start with *off = 0)
 * into e and advances *off. Returns 1 for an entry, 0 past the last. */
int gv_rw_dir_next(const gv_rw_dir_node *b, size_t *off, gv_rw_dir_entry *e);

/* ---- message ids (§5.1) ---- */

/* A random id from the caller's 16 random bytes. GV_EINVAL for all zeros
 * (the id of control packets): draw again. */
int gv_rw_id_random(uint8_t id[GV_RW_ID_BYTES],
                    const uint8_t rnd[GV_RW_ID_BYTES]);

/* The id of a send with an idempotency key:
 * BLAKE2b-128(origin || team_id || u8 len || sender || u8 len || key).
 * GV_EFIELD for a sender that is not project:name or a key that is not
 * 1..64 printable ASCII bytes. */
int gv_rw_id_from_key(uint8_t id[GV_RW_ID_BYTES],
                      const uint8_t origin[GV_ID_BYTES],
                      const uint8_t team_id[GV_RW_KEY_BYTES],
                      const char *sender, size_t sender_len, const char *key,
                      size_t key_len, gv_why *why);

/* The id of the n-th recipient of a fan-out message `id`:
 * BLAKE2b-128(id || u32 n). Recipients count from 1: GV_EINVAL for n = 0. */
int gv_rw_id_fanout(uint8_t out[GV_RW_ID_BYTES],
                    const uint8_t id[GV_RW_ID_BYTES], uint32_t n);

#endif

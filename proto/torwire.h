/* The torrent tunnel's wire format on channel 3 (PROTOCOL.md §5.3,
 * docs/TUNNEL.md).
 *
 * A channel-3 message (the channel byte already taken off) is one of:
 *
 *   0x01 OPEN    sid u32, hops u8, dst[32], src[32], ih[20]   90 bytes
 *   0x02 DATA    sid u32, payload 1..GV_TW_DATA_MAX bytes     6..65541 bytes
 *   0x03 CREDIT  sid u32, n u32 (1..GV_TW_CREDIT_MAX)         9 bytes
 *   0x04 CLOSE   sid u32, reason u8 (GV_TW_CLOSE_*)           6 bytes
 *
 * Integers are big-endian. sid is the stream's id on this link, never 0;
 * the node that dialed the link opens streams with odd sids, the other
 * with even ones. hops is 0 from the opener and counts the relays passed
 * (1 after the first, 2 after the second); nothing larger is valid. dst and src
 * are node ids; ih is the v1 info-hash.
 *
 * Sans-I/O: no clock, socket, allocation or global state. The decoder
 * checks every length before use, refuses with a reason in why anything
 * that does not parse exactly, and points into the caller's buffer: the
 * pointers in a gv_tw_msg stay valid as long as that buffer. The encoder
 * refuses what the decoder refuses, so what we send we also accept.
 */
#ifndef GV_TORWIRE_H
#define GV_TORWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"

#define GV_TW_IH_BYTES 20            /* v1 info-hash (SHA-1) */
#define GV_TW_OPEN_LEN 90            /* the whole OPEN */
#define GV_TW_DATA_HDR 5             /* kind, sid */
#define GV_TW_DATA_MAX 65536u        /* payload bytes in one DATA */
#define GV_TW_CREDIT_LEN 9           /* kind, sid, n */
#define GV_TW_CREDIT_MAX 0x80000000u /* largest n (2^31) */
#define GV_TW_CLOSE_LEN 6            /* kind, sid, reason */
#define GV_TW_HOPS_MAX 2             /* two relays at most */
/* The largest channel-3 message (a full DATA). */
#define GV_TW_MSG_MAX (GV_TW_DATA_HDR + GV_TW_DATA_MAX)

/* Kinds: the first byte of a channel-3 message. */
enum {
  GV_TW_OPEN = 0x01,
  GV_TW_DATA = 0x02,
  GV_TW_CREDIT = 0x03,
  GV_TW_CLOSE = 0x04,
};

/* CLOSE reasons. */
#define GV_TW_CLOSE_MAP(XX)                                                    \
  XX(DONE, 0, "done")               /* the stream ended normally */            \
  XX(REFUSED, 1, "refused")         /* no such torrent, or not accepted */     \
  XX(UNREACHABLE, 2, "unreachable") /* the relay has no link to dst */         \
  XX(LIMIT, 3, "limit")             /* too many streams */                     \
  XX(PROTOCOL, 4, "protocol")       /* a message broke the stream rules */     \
  XX(IO, 5, "io")                   /* a local socket or a link failed */

enum {
#define XX(name, num, text) GV_TW_CLOSE_##name = num,
  GV_TW_CLOSE_MAP(XX)
#undef XX
      GV__TW_CLOSE_COUNT
};

/* "OPEN", ...; NULL for a byte that is no kind. */
const char *gv_tw_kind_name(unsigned kind);
/* "done", ...; NULL for a byte that is no reason. */
const char *gv_tw_close_name(unsigned reason);

/* One channel-3 message. Which fields mean something depends on kind;
 * the others are zero after decoding and ignored by encoding. */
typedef struct gv_tw_msg {
  uint8_t kind;
  uint32_t sid; /* 1..2^32-1 */
  /* OPEN */
  uint8_t hops;       /* 0..GV_TW_HOPS_MAX */
  const uint8_t *dst; /* GV_ID_BYTES, borrowed */
  const uint8_t *src; /* GV_ID_BYTES, borrowed */
  const uint8_t *ih;  /* GV_TW_IH_BYTES, borrowed */
  /* DATA */
  const uint8_t *data; /* borrowed */
  size_t len;          /* 1..GV_TW_DATA_MAX */
  /* CREDIT */
  uint32_t n; /* 1..GV_TW_CREDIT_MAX */
  /* CLOSE */
  uint8_t reason; /* GV_TW_CLOSE_* */
} gv_tw_msg;

/* Decodes b[0..len) exactly. Refuses: an empty message or unknown kind
 * (GV_ETYPE); a length other than the kind's (GV_EFRAME; a DATA shorter
 * than 6 bytes or longer than GV_TW_MSG_MAX: GV_EFRAME / GV_ETOOBIG);
 * sid 0 (GV_EFIELD); hops > GV_TW_HOPS_MAX, n outside 1..GV_TW_CREDIT_MAX
 * or an unknown reason (GV_ERANGE). On failure *m is unspecified. */
int gv_tw_decode(const uint8_t *b, size_t len, gv_tw_msg *m, gv_why *why);

/* Bytes gv_tw_encode() writes for m, or 0 if m is not encodable. */
size_t gv_tw_size(const gv_tw_msg *m);

/* Writes m into out[0..cap); *len is its size. Refuses what the decoder
 * refuses (same codes), a NULL dst/src/ih/data where the kind needs one
 * (GV_EINVAL), and a short cap (GV_ETOOBIG). m->data may not overlap out. */
int gv_tw_encode(const gv_tw_msg *m, uint8_t *out, size_t cap, size_t *len,
                 gv_why *why);

#endif

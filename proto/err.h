/* Grapevine's one table of error codes.
 *
 * Every function that can fail returns a negative int on failure and 0 (or a
 * count) on success. Codes from the table below are GV_E*; an errno from the
 * C library is passed through as -errno. gv_strerror() and gv_err_name()
 * accept both.
 */
#ifndef GV_ERR_H
#define GV_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, message) */
#define GV_ERRNO_MAP(XX)                                                       \
  XX(NOMEM, "out of memory")                                                   \
  XX(INVAL, "invalid argument")                                                \
  XX(TOOBIG, "too large")                                                      \
  XX(FRAME, "malformed frame")                                                 \
  XX(JSON, "malformed JSON")                                                   \
  XX(VERSION, "unsupported protocol version")                                  \
  XX(TYPE, "unknown or misplaced message type")                                \
  XX(FIELD, "missing or malformed field")                                      \
  XX(RANGE, "field value out of range")                                        \
  XX(TTL, "ttl out of range for the message type")                             \
  XX(FUTURE, "timestamp too far in the future")                                \
  XX(STALE, "timestamp too old")                                               \
  XX(LIMIT, "more entries than the limit allows")                              \
  XX(SILENTADDR, "address attached to a node that is not broadcasting")        \
  XX(BADSIG, "bad signature")                                                  \
  XX(DUP, "duplicate message")                                                 \
  XX(NOTIMPL, "not implemented in this version")                               \
  XX(HANDSHAKE, "handshake failed")                                            \
  XX(PEERID, "peer id does not match the pinned id")                           \
  XX(DECRYPT, "decryption failed")                                             \
  XX(TRUNCATED, "stream ended before its final frame")                         \
  XX(STATE, "operation not valid in this state")                               \
  XX(BUSY, "send queue full or no room for another link")                     \
  XX(BANNED, "peer is banned for misbehaviour")                                \
  XX(KEYPERM, "key file is readable by others")                                \
  XX(KEYFMT, "key file is malformed")                                          \
  XX(UNKNOWN_RECIPIENT, "no agent matches the address")                        \
  XX(AMBIGUOUS, "the address matches more than one agent or node")             \
  XX(NAME_TAKEN, "the agent name is registered on this node already")          \
  XX(PAYLOAD_TOO_LARGE, "message larger than 1 MiB")                           \
  XX(OUTBOX_FULL, "the outbox is full")                                        \
  XX(NOT_FOUND, "no such message on this node")                               \
  XX(CANCELED, "cancelled before it finished")

#define GV__ERR_FIRST 1000

/* Table positions; internal. */
enum {
#define XX(name, msg) GV__ERRIDX_##name,
  GV_ERRNO_MAP(XX)
#undef XX
      GV__ERR_COUNT
};

/* The codes: -1001, -1002, ... in table order. */
enum {
#define XX(name, msg) GV_E##name = -(GV__ERR_FIRST + 1 + GV__ERRIDX_##name),
  GV_ERRNO_MAP(XX)
#undef XX
};

/* Returns a static, human-readable description of err (GV_E* or -errno). */
const char *gv_strerror(int err);

/* Returns the symbolic name ("GV_EBADSIG", "ENOENT", ...) of err. */
const char *gv_err_name(int err);

/* A readable reason for a rejection, more specific than gv_strerror():
 * "ttl 40 exceeds 32 for PEER_ANNOUNCEMENT". Functions that take a gv_why *
 * accept NULL when the caller does not want the text. */
typedef struct gv_why {
  char text[192];
} gv_why;

/* Formats into why (if non-NULL) and returns err, so that callers can write
 * `return gv_fail(why, GV_ETTL, "ttl %u ...", ttl);`. */
int gv_fail(gv_why *why, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif

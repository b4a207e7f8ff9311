/* The relay's agent socket (docs/RELAY.md §7): one JSON object per line
 * each way over relay.sock. This is the pure part shared by the daemon and
 * the CLI: parsing a request line into a typed gv_rreq, and encoding the
 * answers and pushed events, so both sides use one definition.
 *
 * Lifetimes: a parsed gv_rreq owns its JSON tree; its string pointers point
 * into it and live until gv_rreq_free(). Encoders return a malloc'd line
 * ending in '\n' (free() it), or NULL when out of memory; their string
 * arguments are borrowed for the call and must be NUL-terminated.
 */
#ifndef GV_RELAYREQ_H
#define GV_RELAYREQ_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "relayaddr.h"

#define GV_RREQ_LINE_MAX (2 * 1024 * 1024) /* longer: GV_ETOOBIG, close */
/* The longest line the node writes: one message of 1 MiB whose every byte
 * JSON escapes to 6 (\u00XX), with its envelope, fits; an inbox answer
 * lists fewer messages rather than pass it ("more"). Clients read up to
 * this. */
#define GV_RREQ_ANSWER_MAX (8 * 1024 * 1024)
#define GV_RREQ_MESSAGE_MAX (1024 * 1024) /* bytes of `message` */
#define GV_RREQ_TOKEN_MAX 64              /* `req`, `key`, `thread` */
#define GV_RREQ_ID_BYTES 16               /* message ids, 32 hex digits */
#define GV_RREQ_SESSION_BYTES 32          /* session tokens, 64 hex */
#define GV_RREQ_TEAM_BYTES 8              /* team_id8, 16 hex digits */
#define GV_RREQ_IDS_MAX 1000              /* ids of one ack / read */
#define GV_RREQ_LIMIT_MAX 1000            /* inbox `limit` */
#define GV_RREQ_LIMIT_DEFAULT 100
#define GV_RREQ_TTL_MAX_MS (30ULL * 24 * 3600 * 1000)
#define GV_RREQ_TTL_DEFAULT_MS (7ULL * 24 * 3600 * 1000)
#define GV_RREQ_TIMEOUT_MAX_MS (3600ULL * 1000) /* `timeout_ms` of a wait */
#define GV_RREQ_TIMEOUT_DEFAULT_MS 30000

typedef enum gv_rreq_cmd {
  GV_RREQ_HELLO,
  GV_RREQ_SEND,
  GV_RREQ_INBOX,
  GV_RREQ_ACK,
  GV_RREQ_READ,
  GV_RREQ_STATUS,
  GV_RREQ_AGENTS,
  GV_RREQ_SUBSCRIBE,
} gv_rreq_cmd;

/* A message's states (§1), in the order a message passes them; `failed`
 * is final and may come after any. */
typedef enum gv_rstate {
  GV_RSTATE_ACCEPTED,
  GV_RSTATE_SENT,
  GV_RSTATE_STORED,
  GV_RSTATE_DELIVERED,
  GV_RSTATE_READ,
  GV_RSTATE_FAILED,
} gv_rstate;

/* Why a message failed (§1). */
typedef enum gv_rfail {
  GV_RFAIL_NONE,
  GV_RFAIL_EXPIRED,
  GV_RFAIL_UNKNOWN_RECIPIENT,
  GV_RFAIL_REFUSED,
  GV_RFAIL_TOO_LARGE,
  GV_RFAIL_NOT_IN_TEAM,
} gv_rfail;

/* "accepted" ... "failed"; NULL for a value outside the enum. */
const char *gv_rstate_name(gv_rstate s);
/* "expired" ... "not_in_team"; NULL for GV_RFAIL_NONE and outside. */
const char *gv_rfail_name(gv_rfail f);

typedef struct gv_rreq {
  gv_rreq_cmd cmd;
  /* Every command: the client's correlation id, 0..64 printable ASCII
   * bytes, NULL if absent. Read first, so an answer to a request refused
   * for another field can still echo it. */
  const char *req;
  union {
    struct {            /* hello */
      gv_raddr_name as; /* `as`: project:name */
      bool has_team;    /* `team`: 16 hex digits */
      uint8_t team[GV_RREQ_TEAM_BYTES];
      bool has_resume; /* `resume`: 64 hex digits */
      uint8_t resume[GV_RREQ_SESSION_BYTES];
    } hello;
    struct {               /* send */
      gv_raddr to;         /* `to`: any address of §2 */
      const char *message; /* `message`: UTF-8, no NUL */
      size_t message_len;  /* 0..GV_RREQ_MESSAGE_MAX */
      const char *thread;  /* `thread`: 0..64 printable, or NULL */
      const char *key;     /* `key`: 1..64 printable, or NULL */
      uint64_t ttl_ms;     /* 1..GV_RREQ_TTL_MAX_MS (7 days) */
      gv_rstate wait;      /* accepted..read (accepted) */
      uint64_t timeout_ms; /* 1..GV_RREQ_TIMEOUT_MAX_MS (30 s) */
    } send;
    struct {            /* inbox */
      unsigned limit;   /* 1..GV_RREQ_LIMIT_MAX (100) */
      bool unread_only; /* (false) */
      bool peek;        /* (true) */
    } inbox;
    struct {    /* ack, read */
      size_t n; /* 1..GV_RREQ_IDS_MAX */
      uint8_t (*ids)[GV_RREQ_ID_BYTES];
    } ids;
    struct { /* status */
      uint8_t id[GV_RREQ_ID_BYTES];
    } status;
    struct {               /* agents */
      const char *project; /* a project (§2), or NULL for all */
    } agents;
  } u;
  cJSON *root; /* owns the strings above */
  void *owned; /* ids.ids */
} gv_rreq;

/* Parses one request line (without its newline) into *r. Returns 0, or:
 * GV_ETOOBIG (line over GV_RREQ_LINE_MAX), GV_EJSON (not exactly one JSON
 * object; a NUL byte), GV_EFIELD / GV_ERANGE / GV_ELIMIT (a field, named in
 * the reason), GV_ETYPE (an unknown `cmd`), GV_EPAYLOAD_TOO_LARGE
 * (`message` over 1 MiB), GV_ENOMEM. Members not named above are ignored;
 * a repeated member is an error. On failure only r->req means anything
 * (set if it was valid, so the error can echo it). Call gv_rreq_free()
 * after success and failure alike. */
int gv_rreq_parse(gv_rreq *r, const char *line, size_t len, gv_why *why);
void gv_rreq_free(gv_rreq *r);

/* ---- Encoders: answers (each echoes `req` if not NULL) ---- */

/* {"ok":false,"error":CODE,"reason":R}: CODE is err's name without its
 * "GV_E" prefix ("UNKNOWN_RECIPIENT", "FIELD", ...). */
char *gv_rreq_enc_error(const char *req, int err, const char *reason);
/* The AMBIGUOUS error, with "candidates": the full addresses of
 * dir[idx[0..n)]. */
char *gv_rreq_enc_ambiguous(const char *req, const char *reason,
                            const gv_raddr_ent *dir, const size_t *idx,
                            size_t n);
/* {"ok":true}: ack, read, subscribe. */
char *gv_rreq_enc_ok(const char *req);
/* hello: {"ok":true,"as","node","session"}. */
char *gv_rreq_enc_hello(const char *req, const gv_raddr_name *as,
                        const uint8_t node[GV_ID_BYTES],
                        const uint8_t session[GV_RREQ_SESSION_BYTES]);
/* One recipient of a send and where its message is. */
typedef struct gv_rreq_sent {
  uint8_t id[GV_RREQ_ID_BYTES];
  const char *to; /* the full address, project:name@NODE */
  gv_rstate state;
  gv_rfail reason; /* when state is failed */
} gv_rreq_sent;

/* send: a single recipient (fanout false, n == 1):
 *   {"ok":true,"id","to","state","reason"?}
 * a fan-out (`*` forms), one entry per recipient, in directory order:
 *   {"ok":true,"sent":[{"id","to","state","reason"?}...]}
 * NULL also when a state is outside the enum or failed has no reason. */
char *gv_rreq_enc_sent(const char *req, const gv_rreq_sent *s, size_t n,
                       bool fanout);

/* A message as an agent sees it: pushed as an event and listed by inbox. */
typedef struct gv_rreq_msg {
  uint8_t id[GV_RREQ_ID_BYTES];
  const char *from;   /* project:name@NODE of the sender */
  const char *to;     /* project:name of the recipient */
  const char *thread; /* "" when none */
  const char *body;
  uint64_t seq;            /* per (sender, recipient), from 1 */
  const uint64_t *skipped; /* seqs given up before this one (§5.5) */
  size_t n_skipped;
} gv_rreq_msg;

/* inbox: {"ok":true,"messages":[{"id","from","to","thread","body","seq",
 * "skipped"?}...],"more"?:true}; more: messages that match were left out
 * (the limit, or GV_RREQ_ANSWER_MAX). */
char *gv_rreq_enc_inbox(const char *req, const gv_rreq_msg *m, size_t n,
                        bool more);

/* One step of a message's trace: the state, when it was reached (wall
 * clock, ms since the epoch, as the node recorded it) and, for `sent`, the
 * node id of the link it left on (NULL otherwise). */
typedef struct gv_rreq_step {
  gv_rstate state;
  uint64_t at_ms;
  const uint8_t *hop;
} gv_rreq_step;

/* status: {"ok":true,"state","reason"?,"trace":[{"state","at_ms","hop"?}]}. */
char *gv_rreq_enc_status(const char *req, gv_rstate state, gv_rfail reason,
                         const gv_rreq_step *trace, size_t n);
/* agents: {"ok":true,"agents":[{"address","project","name","node",
 * "online"}...]} for dir[0..n). */
char *gv_rreq_enc_agents(const char *req, const gv_raddr_ent *dir, size_t n);

/* ---- Encoders: pushed events (no `req`) ---- */

/* {"event":"message","id","from","to","thread","body","seq","skipped"?}. */
char *gv_rreq_enc_ev_message(const gv_rreq_msg *m);
/* {"event":"state","id","state","reason"?}: to a subscribed sender. */
char *gv_rreq_enc_ev_state(const uint8_t id[GV_RREQ_ID_BYTES], gv_rstate s,
                           gv_rfail reason);

#endif

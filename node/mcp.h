/* The MCP server's core (`grapevine mcp`, docs/AGENTS.md §3, §10): JSON-RPC
 * 2.0 lines of the Model Context Protocol in, lines for the client and
 * requests for the node's relay socket (docs/RELAY.md §7) out. No I/O, no
 * clock: node/mcpcli.c reads stdin, writes stdout and owns the relay
 * connection (node/aclient.h).
 *
 * Session state machine:
 *
 *   NEW --initialize (gv_mcp_line)--> READY
 *
 *  - In NEW only `initialize` and `ping` are served; every other request
 *    is -32600 "not initialized". A second `initialize` is -32600 too.
 *  - `notifications/initialized` is accepted and changes nothing: a client
 *    that skips it is served all the same.
 *  - A notification (a message without "id") never gets an answer, even
 *    when malformed or unknown.
 *
 * What the adapter does with the actions (gv_mcp_next):
 *  - GV_MCP_OUT: write `line` (ends in '\n', one JSON-RPC message) to the
 *    client.
 *  - GV_MCP_CONNECT: the agent name is decided by the client's name
 *    (`fallback`, already reduced to [A-Za-z0-9._-]{1,64}): connect to the
 *    relay socket as <basename of cwd>:<fallback>. Queued once, by the
 *    first initialize, and only if gv_mcp_new was told no name is known.
 *  - GV_MCP_CALL: send `req` (a relay request object) on the relay
 *    connection; report its answer, or NULL if it never came (the node is
 *    down, the connection dropped), with gv_mcp_answer(token, ...). Every
 *    CALL must be answered exactly once, sooner or later.
 *
 * The core never sends `ack`: a pushed message is only a trigger for
 * notifications/resources/updated; messages become `delivered` when the
 * agent takes them (relay_inbox with peek false) and `read` by relay_read.
 * So past GV_RELAY_PUSH_MAX (256) pushed messages not taken or read, the
 * node pushes no more and no notification comes: a relay_inbox peek
 * (without unread_only) that lists 256 or more messages says so in a
 * second text content of its result.
 *
 * Lifetime: gv_mcp_new() allocates, gv_mcp_free() frees everything,
 * including actions not yet taken. Strings in an action live until the
 * next gv_mcp_* call.
 */
#ifndef GV_MCP_H
#define GV_MCP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* JSON-RPC 2.0 error codes, and MCP's "resource not found". */
#define GV_MCP_PARSE_ERROR (-32700)
#define GV_MCP_INVALID_REQUEST (-32600)
#define GV_MCP_METHOD_NOT_FOUND (-32601)
#define GV_MCP_INVALID_PARAMS (-32602)
#define GV_MCP_INTERNAL_ERROR (-32603)
#define GV_MCP_RESOURCE_NOT_FOUND (-32002)

/* Relay requests waiting for their answers at once; more calls are a tool
 * error BUSY. */
#define GV_MCP_PENDING_MAX 1024
/* Message ids remembered to notify once per id; the oldest is forgotten
 * beyond this (a re-push of a forgotten id notifies again: harmless). */
#define GV_MCP_SEEN_MAX 4096

#define GV_MCP_INBOX_URI "relay://inbox"

typedef struct gv_mcp gv_mcp;

typedef enum gv_mcp_act_kind {
  GV_MCP_OUT,
  GV_MCP_CONNECT,
  GV_MCP_CALL,
} gv_mcp_act_kind;

typedef struct gv_mcp_act {
  gv_mcp_act_kind kind;
  char *line;           /* OUT: borrowed */
  const char *fallback; /* CONNECT: borrowed */
  cJSON *req;           /* CALL: the caller takes it (and frees it) */
  uint64_t token;       /* CALL: for gv_mcp_answer */
} gv_mcp_act;

/* have_name: the agent name is known already (--as or $GRAPEVINE_AS), so
 * no CONNECT is ever queued. seen_key: GV_IDMAP_KEY_BYTES (16) of secret
 * randomness for the seen-id set. NULL when out of memory. */
gv_mcp *gv_mcp_new(bool have_name, const uint8_t seen_key[16]);
void gv_mcp_free(gv_mcp *m);

/* One line from the client, without its newline (a trailing '\r' is
 * ignored). Never fails: whatever is wrong is answered to the client. */
void gv_mcp_line(gv_mcp *m, const char *line, size_t len);

/* A line longer than max bytes came and was discarded: answered with a
 * JSON-RPC error with id null. */
void gv_mcp_line_too_long(gv_mcp *m, size_t max);

/* The answer to CALL `token` (borrowed), or NULL with why (a sentence for
 * people: why the node could not be asked). An unknown token is ignored. */
void gv_mcp_answer(gv_mcp *m, uint64_t token, const cJSON *answer,
                   const char *why);

/* The relay connection came up (again): queues the relay `subscribe`. */
void gv_mcp_relay_up(gv_mcp *m);

/* A pushed relay event (borrowed). */
void gv_mcp_event(gv_mcp *m, const cJSON *ev);

/* Takes the next action; false when there is none. */
bool gv_mcp_next(gv_mcp *m, gv_mcp_act *act);

/* The protocol version agreed by initialize ("" before). */
const char *gv_mcp_version(const gv_mcp *m);

/* Reduces a client's name to an agent name part: keeps [A-Za-z0-9._-],
 * at most 64 bytes; "mcp" if nothing is left. out has room for 65. */
void gv_mcp_name_part(const char *client, char out[65]);

#endif

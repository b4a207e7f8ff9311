/* An agent's client of the node's relay socket (docs/RELAY.md §7), on a
 * libuv loop: what `grapevine mcp` and `grapevine wrap` stand on. An
 * adapter only: it connects, says hello, keeps the connection, matches
 * answers to requests by "req", and hands pushed events to its owner; what
 * a request or an event means is the owner's business.
 *
 * Connection state machine:
 *
 *   DOWN --connect--> CONNECTING --ok--> GREETING (hello sent) --ok--> UP
 *     ^                   |                  |                          |
 *     +---- backoff <-----+------------------+--------------------------+
 *           (on any failure: refused, EOF, error answer, a line that is
 *            not one JSON object or longer than GV_RREQ_LINE_MAX)
 *
 *  - The backoff starts at 100 ms and doubles to 5 s; UP resets it.
 *  - The hello carries the session token of the last one answered
 *    ("resume"), so a reconnect takes the agent's name back even if the
 *    node has not yet seen the old connection close.
 *  - on_state is called on each change between UP and not UP, with a reason
 *    for people when it goes down (the error answer's reason, "no node is
 *    running: nothing answers on PATH", ...).
 *  - Requests are accepted only while UP; otherwise gv_aclient_call fails
 *    at once with GV_ESTATE and the owner tells its user the node is down.
 *  - When the connection drops, every request still waiting for its answer
 *    is answered with NULL (exactly once each), before on_state(down).
 *  - Events (lines with "event") are handed to on_event in the order they
 *    came; events that came with the hello's answer follow on_state(up).
 *
 * Lifetime: gv_aclient_start() begins connecting; gv_aclient_close() fails
 * what waits (answers NULL), closes the handles and frees the client once
 * the loop has run their close callbacks; no callback fires after it
 * returns, except those NULL answers, which it makes itself.
 */
#ifndef GV_ACLIENT_H
#define GV_ACLIENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "err.h"

typedef struct gv_aclient gv_aclient;

/* The answer to one request, or NULL if the connection dropped before it
 * came (or the client was closed). answer is borrowed for the call. */
typedef void (*gv_aclient_answer_fn)(void *arg, const cJSON *answer);

typedef struct gv_aclient_cbs {
  /* UP (up true, why NULL) or no longer UP (why: a sentence). */
  void (*on_state)(void *ctx, bool up, const char *why);
  /* A pushed event ({"event":"message",...} or {"event":"state",...}),
   * borrowed for the call. */
  void (*on_event)(void *ctx, const cJSON *ev);
} gv_aclient_cbs;

/* Starts connecting to sock_path as agent `as` (project:name, already
 * checked). Returns 0 or a negative GV_E* code; *out is set on success. */
int gv_aclient_start(gv_aclient **out, uv_loop_t *loop, const char *sock_path,
                     const char *as, const gv_aclient_cbs *cbs, void *ctx);

/* Sends req (taken, freed here whatever happens; its "req" member is set
 * here). fn gets the answer later, from the loop, never from inside this
 * call. Returns 0, or GV_ESTATE if not UP (fn is then not called). */
int gv_aclient_call(gv_aclient *c, cJSON *req, gv_aclient_answer_fn fn,
                    void *arg);

bool gv_aclient_up(const gv_aclient *c);

/* This agent's name and, once UP, the node's id (64 hex; "" before). */
const char *gv_aclient_as(const gv_aclient *c);
const char *gv_aclient_node(const gv_aclient *c);

void gv_aclient_close(gv_aclient *c);

/* Queues o (taken, freed here whatever happens) on s as one line: its
 * unformatted JSON and '\n'. cb (req->data = data) must free(req). 0 or a
 * libuv error; cb is called only on 0. Shared with the CLI's client. */
int gv_aclient_write_json(uv_stream_t *s, cJSON *o, uv_write_cb cb, void *data);

/* The string member key of o, or "" if absent or not a string: for the
 * answers of relay.sock, whose members are checked by whoever reads them. */
const char *gv_aclient_str(const cJSON *o, const char *key);

/* The agent name a command runs as: flag, else $GRAPEVINE_AS, else
 * "<basename of the working directory>:<fallback>". Checked as an agent
 * name (docs/RELAY.md §2); on failure returns GV_EFIELD with why set. */
int gv_aclient_name(const char *flag, const char *fallback, char *out,
                    size_t cap, gv_why *why);

#endif

/* The terminal wrapper's core (docs/AGENTS.md §11): pure, no clock, file,
 * socket or terminal. The adapter (node/wrapcli.c) owns the pseudo-terminal,
 * the person's terminal and the relay connection; it feeds this core what
 * it sees, with the time, and carries out the actions it returns.
 *
 * What the core decides:
 *  - Outgoing. The agent's output, ANSI escapes stripped, is split into
 *    lines; `->relay:TO message` and `->relay:TO <<<` ... `>>>` at the start
 *    of a line become SEND actions. Inside a fenced code block (``` or ~~~
 *    at the start of a line) nothing is a marker; `\->relay:` is no marker.
 *    An optional `[thread:T]` right after TO sets the thread. A block that
 *    is not closed within cfg.block_lines lines or cfg.block_bytes bytes is
 *    abandoned, and the next notice injected says so.
 *  - Incoming. Messages and notices queue in order and are injected one at
 *    a time, each as one line (a bracketed paste when the agent enabled
 *    bracketed paste, then Enter), only when the agent has been quiet for
 *    cfg.quiet_ms, the person has not typed for cfg.typing_ms, the
 *    person's input line is empty, and the adapter has not said the agent
 *    is blocked (gv_wrap_blocked: bytes for its terminal still wait, so
 *    it reads no input: it is not idle). Between the paste and its Enter
 *    the person's keystrokes are held, then passed on in order, so they
 *    can never be spliced into an injection.
 *  - The person's line. It is empty after Enter, Ctrl-C or Ctrl-U, and
 *    not after printable characters. An escape sequence (an arrow key) or
 *    another control makes it unknown, and unknown counts as not empty
 *    until Enter, Ctrl-C, Ctrl-U, or cfg.unknown_ms without a keystroke.
 *    A sequence not finished GV_WRAP_ESC_MS after its last byte is over
 *    (a lone Esc is a key of its own).
 *  - Loop-proof. An injected line holds no newline and no "->relay:" (a
 *    body's "->relay:" is written "->relay\:", its control characters as
 *    spaces) and starts with "Relay message from " or "Relay notice: ",
 *    and lines that start so are never parsed as outgoing.
 *  - States. A message is acknowledged (ACK: `delivered`) once its Enter is
 *    written; it is marked read (READ) at the agent's next turn: its first
 *    output that comes more than cfg.echo_ms after that Enter.
 *  - The end. Once the adapter says the agent's terminal is gone
 *    (gv_wrap_gone), the core injects nothing more and acknowledges
 *    nothing more: only SEND actions come out, for what the agent wrote.
 *
 * Every event may append actions; take them with gv_wrap_next() until it
 * returns NULL. Bounds: the queue of incoming messages holds at most
 * GV_WRAP_QUEUE_MAX (past that, gv_wrap_message() refuses and the message
 * stays with the node, unacknowledged, to be pushed again later).
 */
#ifndef GV_WRAP_H
#define GV_WRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define GV_WRAP_QUEUE_MAX 256
#define GV_WRAP_ID_HEX 32 /* a message id: 32 hex digits */
/* Further bounds (docs/AGENTS.md §11):
 *  - a line of output outside a block keeps its first GV_WRAP_LINE_MAX
 *    bytes; a marker on a longer line sends nothing and gives a notice;
 *  - an injected line is at most GV_WRAP_INJECT_MAX bytes (a longer body is
 *    cut and says so), plus the bracketed-paste brackets;
 *  - at most GV_WRAP_NOTICE_MAX notices wait; past that they are counted,
 *    and the next notice injected gives the count;
 *  - keystrokes held during an injection: at most GV_WRAP_HOLD_MAX bytes;
 *    past that the injection's Enter is written at once, then they follow;
 *  - the ids seen this run: the last GV_WRAP_SEEN_MAX. */
#define GV_WRAP_ESC_MS 100
#define GV_WRAP_LINE_MAX (64 * 1024)
#define GV_WRAP_INJECT_MAX (64 * 1024)
#define GV_WRAP_NOTICE_MAX 64
#define GV_WRAP_HOLD_MAX (64 * 1024)
#define GV_WRAP_SEEN_MAX 4096

typedef struct gv_wrap gv_wrap;

typedef struct gv_wrap_cfg {
  int64_t quiet_ms;   /* agent idle after this much silence; 1500 */
  int64_t typing_ms;  /* the person idle after this; 3000 */
  int64_t unknown_ms; /* an unknown line is forgotten after this much
                         idleness; 30000 (10 x typing_ms) */
  int64_t enter_ms;   /* between the paste and its Enter; 30 */
  int64_t echo_ms;    /* output this soon after the Enter is its echo; 250 */
  size_t block_lines; /* an open block is abandoned past this; 200 */
  size_t block_bytes; /* ... or past this many body bytes; 1 MiB */
} gv_wrap_cfg;

typedef enum gv_wrap_act_type {
  GV_WRAP_PTY = 1, /* write bytes[0..len) to the agent's terminal */
  GV_WRAP_SEND,    /* send body to `to` with `thread` ("" none), `key` */
  GV_WRAP_ACK,     /* id is delivered: written to the agent */
  GV_WRAP_READ,    /* id is read: the agent's next turn began */
} gv_wrap_act_type;

typedef struct gv_wrap_act {
  gv_wrap_act_type type;
  const uint8_t *bytes; /* PTY */
  size_t len;
  const char *to, *thread, *body, *key; /* SEND; key: 32 hex, see below */
  const char *id;                       /* ACK, READ */
} gv_wrap_act;

void gv_wrap_cfg_default(gv_wrap_cfg *cfg);
/* session: 16 random bytes of this wrapper run. A SEND's idempotency key is
 * BLAKE2b-128(session || turn || to || 0 || thread || 0 || body) in hex,
 * turn (8 bytes, big-endian) counting the Enters written to the agent: one
 * block a redrawing screen shows twice in one turn is sent once, the same
 * text in two turns twice. Returns 0, or GV_EINVAL for a cfg out of range
 * (negative times, zero block bounds). Keys to the set of
 * ids seen are derived from session too. */
int gv_wrap_new(gv_wrap **out, const gv_wrap_cfg *cfg,
                const uint8_t session[16]);
void gv_wrap_free(gv_wrap *w);

/* Bytes the agent wrote (the adapter also copies them to the screen). */
void gv_wrap_output(gv_wrap *w, const uint8_t *b, size_t n, int64_t now);
/* Bytes the person typed; passed on as PTY actions (now or, while an
 * injection is under way, after its Enter). */
void gv_wrap_input(gv_wrap *w, const uint8_t *b, size_t n, int64_t now);
/* A message the node pushed (docs/RELAY.md §7), copied. A repeat of an id
 * already queued or injected this run is ignored (returns 0), except that
 * one already injected is acknowledged again (an ACK action): the node
 * pushes again only what it did not hear acknowledged. Returns GV_EBUSY
 * when the queue is full (the id is not remembered), GV_EINVAL when id is
 * not 32 hex digits or from or body is NULL; thread may be NULL. */
int gv_wrap_message(gv_wrap *w, const char *id, const char *from,
                    const char *thread, const char *body, int64_t now);
/* A notice for the agent (a failed send, the node gone), injected like a
 * message but never acknowledged to anyone. */
void gv_wrap_notice(gv_wrap *w, const char *text, int64_t now);
/* The adapter's queue of bytes for the agent's terminal is not empty
 * (blocked) or is empty again (!blocked). While blocked no injection
 * starts: an agent that does not read its input is not idle, and a paste
 * queued behind unread bytes would be acknowledged before it reached the
 * terminal. An injection under way still gets its Enter (queued behind
 * its paste). Starts unblocked. */
void gv_wrap_blocked(gv_wrap *w, bool blocked, int64_t now);
/* The agent's terminal is gone (it read EOF, writing to it failed, or the
 * agent exited): nothing written to it from now on reaches the agent. The
 * paste under way, if any, is abandoned without its Enter or ACK; actions
 * not yet taken other than SEND are withdrawn; from now on no PTY, ACK or
 * READ action comes out, gv_wrap_message() refuses with GV_ESTATE (the
 * node keeps the message for the next run), and what the agent still
 * writes is parsed for SENDs as before. Idempotent. */
void gv_wrap_gone(gv_wrap *w, int64_t now);
/* Time passed: injects what may be injected now. */
void gv_wrap_tick(gv_wrap *w, int64_t now);
/* When the adapter should tick next (absolute ms), or -1 if not needed. */
int64_t gv_wrap_deadline(const gv_wrap *w);

/* The next action, valid until the next call into the core; NULL when
 * there are none left. */
const gv_wrap_act *gv_wrap_next(gv_wrap *w);

/* Messages queued, not yet injected. */
size_t gv_wrap_queued(const gv_wrap *w);

#endif

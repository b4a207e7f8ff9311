/* A link (proto/link.h) carried over a libuv TCP stream: the adapter
 * between the sans-I/O link and real sockets.
 *
 *   gv_conn_new -> gv_conn_dial (initiator) | uv_accept + gv_conn_start
 *   -> on_open -> on_msg* -> gv_conn_close or the peer's FINAL (graceful:
 *   FINAL both ways) | gv_conn_abort
 *   -> on_close (exactly once, last, unless dial/start returned an error)
 *
 * Lifetime: the conn owns its TCP handle and link. After on_close returns,
 * the conn is freed; do not touch it again. Failure follows libuv's rule:
 * when gv_conn_dial() or gv_conn_start() returns an error, on_close is
 * never called; the conn then releases itself (do not touch it again) and
 * the caller undoes its own state at once. Once either has returned 0,
 * on_close is called exactly once, last. A conn that was never dialed or
 * started is released with gv_conn_abort() (on_close follows). The
 * identity is borrowed and must outlive the conn.
 */
#ifndef GV_CONN_H
#define GV_CONN_H

#include <uv.h>

#include "link.h"

typedef struct gv_conn gv_conn;

typedef struct gv_conn_cbs {
  /* The handshake is done; gv_conn_peer_id() is valid from now on. */
  void (*on_open)(gv_conn *c);
  /* One message; msg is valid only during the call. */
  void (*on_msg)(gv_conn *c, const uint8_t *msg, size_t len);
  /* The connection is gone. status: 0 for a clean close by both sides
   * (FINAL frames), else a GV_E* or -errno (UV_E*) reason. */
  void (*on_close)(gv_conn *c, int status);
} gv_conn_cbs;

/* How long a graceful close waits for the peer's FINAL frame, unless
 * gv_conn_set_timeouts() says otherwise. */
#define GV_CONN_CLOSE_WAIT_MS 2000

/* Deadlines, in ms of the loop's monotonic clock; 0 leaves one off. The
 * first two count from gv_conn_dial() (the TCP connect included) or
 * gv_conn_start(), and abort the conn with -ETIMEDOUT when they run out. */
typedef struct gv_conn_timeouts {
  uint64_t handshake_ms;  /* until the handshake is done (on_open) */
  uint64_t first_byte_ms; /* until the peer's first byte arrives */
  uint64_t close_wait_ms; /* after our FINAL (0: GV_CONN_CLOSE_WAIT_MS) */
  /* Once open: a frame that has started arriving must be whole within
   * this, counted from its first byte (0: off). A peer cannot hold a
   * large receive buffer by trickling a frame. */
  uint64_t frame_ms;
} gv_conn_timeouts;

int gv_conn_new(gv_conn **out, uv_loop_t *loop, const gv_identity *self,
                gv_hs_role role, const uint8_t *pin, const gv_conn_cbs *cbs,
                void *data);

/* The TCP handle, for uv_accept() into it before gv_conn_start(). */
uv_stream_t *gv_conn_stream(gv_conn *c);

/* Before gv_conn_dial()/gv_conn_start(). Without it no deadline runs but
 * the close wait (GV_CONN_CLOSE_WAIT_MS). An open link has no idle limit
 * here: its owner decides when a quiet link is dead (the node's link core,
 * PROTOCOL.md §5.2). */
void gv_conn_set_timeouts(gv_conn *c, const gv_conn_timeouts *to);

/* The plaintext of the FINAL frame that answers the peer's FINAL (copied;
 * empty until set). 0 or GV_ENOMEM. */
int gv_conn_set_final(gv_conn *c, const uint8_t *msg, size_t len);

/* 0, or a UV_E* error after which on_close is never called. */
int gv_conn_dial(gv_conn *c, const struct sockaddr *addr);
int gv_conn_start(gv_conn *c);

/* Queues one message; errors as gv_link_send(). GV_EBUSY also when the
 * bytes not yet taken by the socket would pass GV_LINK_OUT_MAX (8 MiB): the
 * peer does not read. */
int gv_conn_send(gv_conn *c, const uint8_t *msg, size_t len);

/* Sends the FINAL frame (with msg as its plaintext, may be NULL) and closes
 * once it is written and the peer's FINAL has arrived, or after the close
 * wait; nothing can be sent after it. The peer's FINAL does the same by
 * itself (PROTOCOL.md §5.2): the conn answers with its own FINAL (see
 * gv_conn_set_final()) before it hands the FINAL's plaintext, if any, to
 * on_msg, so gv_conn_send() fails from then on (GV_ESTATE). Either way
 * on_close gets 0 once both FINALs are out. */
void gv_conn_close(gv_conn *c, const uint8_t *msg, size_t len);

/* Closes at once; on_close gets status. */
void gv_conn_abort(gv_conn *c, int status);

const uint8_t *gv_conn_peer_id(const gv_conn *c);
void *gv_conn_data(const gv_conn *c);

#endif

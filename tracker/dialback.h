/* Dial-backs: before listing a node, the tracker connects to the address
 * the request came from at the port the node named, and completes the link
 * handshake (PROTOCOL.md §4) as initiator pinned to the node's id, then
 * closes with a GOODBYE in the FINAL frame. Runs common/conn.c on the
 * caller's libuv loop; bounded by a timeout per dial, a cap on dials in
 * flight, and a cap on dials queued. Free slots go to the addresses that
 * have dials queued in turn (round robin), so one address's many dials
 * cannot hold back another's.
 *
 *   queued --slot free--> dialing --handshake done--> reported ok
 *                            |  --error/timeout/stop--> reported failure
 *   (the link then closes cleanly, or is aborted, in the background)
 *
 * Lifetime: gv_trk_dialer_new() allocates on a loop; gv_trk_dialer_stop()
 * then gv_trk_dialer_close() on the loop thread, once
 * gv_trk_dialer_active() is 0; the dialer is freed when the loop runs the
 * close. The identity is borrowed and must outlive the dialer.
 */
#ifndef GV_TRK_DIALBACK_H
#define GV_TRK_DIALBACK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "addr.h"
#include "identity.h"

typedef struct gv_trk_dialer gv_trk_dialer;

/* The outcome, on the loop thread: 0 when the handshake completed with
 * the pinned id, else a GV_E* or UV_E* reason (UV_ETIMEDOUT after the
 * timeout, UV_ECANCELED when stopped). */
typedef void (*gv_trk_dial_cb)(void *ctx, int status);

typedef struct gv_trk_dial_cfg {
  unsigned timeout_ms;  /* connect + handshake */
  unsigned concurrency; /* dials in flight */
  unsigned queue_max;   /* dials waiting for a slot */
} gv_trk_dial_cfg;

int gv_trk_dialer_new(gv_trk_dialer **out, uv_loop_t *loop,
                      const gv_identity *self, const gv_trk_dial_cfg *cfg);

/* Thread-safe. Queues a dial-back to addr pinned to id; queued dials
 * start in turns over their source addresses (IPv4, or IPv6 /64), not in
 * arrival order. cb runs exactly once, on the loop thread, if and only if
 * this returns 0 and gv_trk_dialer_cancel() does not take the dial back;
 * otherwise GV_EBUSY (queue full), GV_ESTATE (stopped), GV_ENOMEM. */
int gv_trk_dial(gv_trk_dialer *d, const gv_addr *addr,
                const uint8_t id[GV_ID_BYTES], gv_trk_dial_cb cb, void *ctx);

/* Thread-safe. Takes back the queued (not yet started) dial to addr
 * pinned to id: 0, its cb never runs, and *ctx is the ctx it was queued
 * with; GV_ESTATE if no such dial is queued (it started, or was never
 * queued). O(dials queued from addr's source), newest tried first. */
int gv_trk_dialer_cancel(gv_trk_dialer *d, const gv_addr *addr,
                         const uint8_t id[GV_ID_BYTES], void **ctx);

/* Dials queued or in flight, links still closing included. Thread-safe. */
size_t gv_trk_dialer_active(const gv_trk_dialer *d);

/* How many more dials would start at once: concurrency minus active, or
 * 0. Thread-safe; a hint (other threads may take the slots meanwhile). */
size_t gv_trk_dialer_free_slots(const gv_trk_dialer *d);

/* Loop thread: reports UV_ECANCELED for every queued dial, aborts those in
 * flight, and refuses new ones. */
void gv_trk_dialer_stop(gv_trk_dialer *d);

/* Loop thread, after stop, once active is 0. */
void gv_trk_dialer_close(gv_trk_dialer *d);

#endif

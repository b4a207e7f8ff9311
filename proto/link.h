/* An encrypted, authenticated link (PROTOCOL.md §3-5), sans-I/O.
 *
 * The owner moves bytes: whatever arrives from the transport goes into
 * gv_link_recv(); whatever gv_link_out() shows must be written to the
 * transport and then released with gv_link_out_consume(). The link runs the
 * handshake, then one secretstream per direction, and hands each received
 * plaintext message to a callback.
 *
 *   HANDSHAKE --handshake done--> OPEN (may send; peer_id known)
 *   OPEN --peer's FINAL frame--> PEER_CLOSED
 *   OPEN --gv_link_close--> CLOSING (no more sends)
 *   any --error--> FAILED (terminal: close the transport)
 *
 * Lifetime: gv_link_new() allocates, gv_link_free() wipes and frees. The
 * identity is borrowed and must outlive the link. The callback must not free
 * the link; it may call gv_link_send()/gv_link_close().
 */
#ifndef GV_LINK_H
#define GV_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "handshake.h"

/* gv_link_send() refuses with GV_EBUSY when this many bytes wait unsent. */
#define GV_LINK_OUT_MAX (8u * 1024u * 1024u)

typedef struct gv_link gv_link;

/* Called once per received message; msg is valid only during the call.
 * A negative return aborts gv_link_recv() with that value. */
typedef int (*gv_link_msg_cb)(void *ctx, const uint8_t *msg, size_t len);

/* An initiator queues M1 at once; pin as in gv_hs_new(). */
int gv_link_new(gv_link **out, const gv_identity *self, gv_hs_role role,
                const uint8_t *pin);
void gv_link_free(gv_link *l);

/* Feeds transport bytes. Returns 0, or a negative error after which the link
 * is FAILED. Messages, and the handshake's replies, are produced as a side
 * effect. */
int gv_link_recv(gv_link *l, const uint8_t *data, size_t len, gv_link_msg_cb cb,
                 void *ctx);

/* Queues one message (1 byte to GV_FRAME_MAX_PAYLOAD). GV_ESTATE before the
 * handshake is done or after close, GV_ETOOBIG, GV_EBUSY. */
int gv_link_send(gv_link *l, const uint8_t *msg, size_t len);

/* Queues the FINAL frame, with msg (may be NULL/0) as its plaintext. */
int gv_link_close(gv_link *l, const uint8_t *msg, size_t len);

/* The transport reached end of file: 0 if the peer closed with a FINAL
 * frame, GV_ETRUNCATED otherwise. */
int gv_link_eof(const gv_link *l);

/* Bytes waiting to be written; *data is valid until the next call. */
size_t gv_link_out(const gv_link *l, const uint8_t **data);
void gv_link_out_consume(gv_link *l, size_t n);

/* The authenticated peer id once the handshake is done, else NULL. */
const uint8_t *gv_link_peer_id(const gv_link *l);

/* Bytes of an incomplete frame held (its prefix and body so far), 0 between
 * frames. Memory for a frame grows with these bytes, not with the length
 * the peer announced. An adapter uses it to give a frame that has started
 * arriving its own deadline: nonzero and not growing for too long means a
 * stalled frame. */
size_t gv_link_rx_partial(const gv_link *l);

int gv_link_peer_closed(const gv_link *l);
int gv_link_failed(const gv_link *l);

#endif

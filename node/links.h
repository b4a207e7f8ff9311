/* The node's link table: every TCP link, dialed or inbound, from the first
 * SYN to its close, over common/conn.c. It listens when asked, dials when
 * asked, enforces the caps on handshakes in progress (64 in all, 8 per
 * source IPv4 address or IPv6 /64) and their deadlines (an inbound peer's
 * first byte within 2 s, every handshake within 10 s), carries bytes, and
 * reports each link's events through callbacks; it never calls the gossip
 * engine and knows nothing of the daemon. Link ids are never 0 and never
 * reused while a link holds one.
 *
 *   gv_links_dial | inbound accept -> handshaking --open--> up (cbs.up,
 *   cbs.msg*) -> gv_links_close (FINAL) | the peer's FINAL (answered with
 *   ours) | failure -> cbs.down (always, exactly once per link, after the
 *   link has left the table). An inbound connection refused by a cap never
 *   enters the table and gets no callback.
 *
 * Lifetime: gv_links_new() on a loop; gv_links_free() once the table is
 * empty (after gv_links_goodbye() and the last cbs.down). The identity and
 * the logger are borrowed and must outlive the table.
 */
#ifndef GV_LINKS_H
#define GV_LINKS_H

#include <stdbool.h>
#include <uv.h>

#include "addr.h"
#include "engine.h"
#include "identity.h"
#include "log.h"

typedef struct gv_links gv_links;

/* A link has left the table. pin is NULL unless the dial was pinned;
 * addr is meaningful only when dialed. Pointers last for the call. */
typedef struct gv_links_down {
  gv_linkid id;
  int status; /* 0: clean close (FINAL both ways), else GV_E* or UV_E* */
  bool was_open, dialed;
  const uint8_t *pin;
  const gv_addr *addr;
} gv_links_down;

typedef struct gv_links_cbs {
  /* The handshake is done. addr: the address dialed; NULL for an inbound
   * link, whose source address is never handed on (IP rule 2). */
  void (*up)(void *ctx, gv_linkid id, const uint8_t *peer, bool dialed,
             const gv_addr *addr);
  void (*msg)(void *ctx, gv_linkid id, const uint8_t *msg, size_t len);
  void (*down)(void *ctx, const gv_links_down *ev);
} gv_links_cbs;

int gv_links_new(gv_links **out, uv_loop_t *loop, const gv_identity *self,
                 gv_log *log, const gv_links_cbs *cbs, void *ctx);

/* What every link answers a peer's FINAL with (copied): the daemon's
 * GOODBYE. Empty until set. 0 or GV_ENOMEM. */
int gv_links_set_final(gv_links *t, const uint8_t *msg, size_t len);

/* Starts accepting on addr (no-op if listening). 0, or an error and why. */
int gv_links_listen(gv_links *t, const gv_addr *addr, gv_why *why);
void gv_links_unlisten(gv_links *t);

/* Dials addr, pinned to peer unless peer is all zeros. 0, or an error
 * after which no callback comes for this dial (the caller fails it). */
int gv_links_dial(gv_links *t, const uint8_t peer[GV_ID_BYTES],
                  const gv_addr *addr);

/* Sends one message on link id; errors as gv_conn_send(), -ENOENT if
 * there is no such link. */
int gv_links_send(gv_links *t, gv_linkid id, const uint8_t *msg, size_t len);

/* Closes link id gracefully: a FINAL frame with msg (may be NULL) as its
 * plaintext; why is logged. */
void gv_links_close(gv_links *t, gv_linkid id, const char *why,
                    const uint8_t *msg, size_t len);

/* Shutdown: stops listening and refuses new links, sends msg in a FINAL
 * frame on every open link and aborts the rest. */
void gv_links_goodbye(gv_links *t, const uint8_t *msg, size_t len);

/* Cuts every link at once (status GV_ESTATE). */
void gv_links_abort_all(gv_links *t);

size_t gv_links_count(const gv_links *t);       /* in the table */
size_t gv_links_handshaking(const gv_links *t); /* not yet open */

void gv_links_free(gv_links *t);

#endif

/* gv_tunio: the torrent tunnel's libuv side (docs/TUNNEL.md, "The tunnel's
 * I/O"). It owns the local TCP sockets of the pure core gv_tun (node/tun.h)
 * and nothing else: no links, no gossip, no daemon.
 *
 *  - Fetcher side: gv_tunio_listen() opens a listener on 127.0.0.1 (an
 *    ephemeral port) for "streams to node dst for torrent ih over link
 *    via"; libtorrent is given 127.0.0.1:port as a peer. Each connection
 *    accepted there becomes a stream: gv_tun_open(core, via, dst, ih).
 *  - Seeder side: the core's CONNECT action connects a new socket to
 *    tor, our own libtorrent's listen address.
 *  - Both: the core's WRITE, PAUSE, RESUME and SHUT actions are carried
 *    out by gv_tunio_run(); what a socket reads, its EOF or error, and
 *    what it has written go back into the core.
 *
 * Driving it (the daemon's drain() pattern): after every event tunio feeds
 * into the core it calls cbs.changed(ctx), from the loop. The owner then
 * pops every action with gv_tun_next() and carries it out: SEND, HOLD and
 * RELEASE itself (it owns the links: gv_links_send, gv_lcore_hold and
 * gv_lcore_release), every other one with gv_tunio_run(). changed is never
 * called from inside a gv_tunio_* call, so the owner's drain loop does not
 * recurse; gv_tunio_run() may feed the core directly (a failure known at
 * once), and the same drain loop then pops what that produced.
 *
 *   listener: gv_tunio_listen -> LISTENING --gv_tunio_unlisten |
 *             gv_tunio_link_down(via) | gv_tunio_close--> closed
 *   socket:   accepted (gv_tun_open) ----------------------> OPEN
 *             CONNECT -> CONNECTING --connected------------> OPEN
 *             OPEN --PAUSE/RESUME--> OPEN (reading off/on)
 *             OPEN --SHUT--> SHUTTING (pending writes, then FIN) -> closed
 *             any --EOF, error, failed connect (reported to the core),
 *                   SHUT while CONNECTING, gv_tunio_close--> closed
 *
 * A socket is known to the core ("live") from its gv_tun_open or CONNECT
 * until its SHUT or the report of its end (gv_tun_local_closed, a failed
 * gv_tun_local_connected); tunio reports exactly one end for each live
 * socket that the core did not SHUT, and nothing about it afterwards.
 *
 * Bounds: GV_TUNIO_LISTENERS_MAX listeners (GV_ELIMIT beyond);
 * GV_TUNIO_SOCKETS_MAX sockets open at once, accepted and connected
 * together: a connection accepted beyond it is closed at once (counted in
 * refused), a CONNECT beyond it fails (gv_tun_local_connected(GV_ELIMIT)).
 * A socket reads into one shared GV_TUNIO_READ_BUF buffer (the core copies
 * what it keeps); what waits to be written is bounded by the core's window.
 *
 * Lifetime: gv_tunio_new() borrows the loop, the logger and the core, which
 * must outlive it. gv_tunio_close() closes every listener and socket at
 * once without telling the core or calling changed again (the core may be
 * freed right after it); tunio frees itself once the last handle's close
 * callback has run, so the loop must run on (the daemon's stop and
 * maybe_finalize do).
 */
#ifndef GV_TUNIO_H
#define GV_TUNIO_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "tun.h"

#define GV_TUNIO_LISTENERS_MAX 256
#define GV_TUNIO_SOCKETS_MAX 1024
#define GV_TUNIO_READ_BUF (64u * 1024u)

typedef struct gv_tunio gv_tunio;

typedef struct gv_tunio_cbs {
  /* The core may have actions to drain (see above). Called from the loop
   * only, after each event tunio fed into the core. */
  void (*changed)(void *ctx);
} gv_tunio_cbs;

typedef struct gv_tunio_stats {
  uint64_t listeners;      /* listening now */
  uint64_t sockets;        /* local sockets open now (closing ones too) */
  uint64_t accepted;       /* connections accepted that became streams */
  uint64_t refused;        /* accepted then closed at once: over the
                              socket cap, or gv_tun_open refused */
  uint64_t connected;      /* CONNECTs that reached libtorrent */
  uint64_t connect_failed; /* CONNECTs that did not */
  uint64_t errors;         /* sockets ended by a read or write error */
  uint64_t bytes_read, bytes_written;
} gv_tunio_stats;

/* tor: our libtorrent's listen address (IPv4 or IPv6, copied), where CONNECT
 * connects. cbs is copied; ctx is handed to cbs.changed. 0 or GV_ENOMEM. */
int gv_tunio_new(gv_tunio **out, uv_loop_t *loop, gv_log *log, gv_tun *core,
                 const struct sockaddr *tor, const gv_tunio_cbs *cbs,
                 void *ctx);

/* Listens on 127.0.0.1 for streams to dst for torrent ih over link via, and
 * puts the port in *port. Idempotent per (dst, ih): an existing listener's
 * port comes back, and its link becomes via (later connections use it).
 * 0, GV_ELIMIT past GV_TUNIO_LISTENERS_MAX, GV_ESTATE after close, or a
 * UV_E* from the socket calls, with a reason in why. */
int gv_tunio_listen(gv_tunio *io, const uint8_t dst[GV_ID_BYTES], gv_linkid via,
                    const uint8_t ih[GV_TW_IH_BYTES], uint16_t *port,
                    gv_why *why);

/* Closes the listener for (dst, ih), if any; with dst NULL, every listener
 * for ih. Streams they accepted go on. io may be NULL. */
void gv_tunio_unlisten(gv_tunio *io, const uint8_t dst[GV_ID_BYTES],
                       const uint8_t ih[GV_TW_IH_BYTES]);

/* Link via is gone: closes every listener that opened streams over it.
 * The streams themselves end through the core (gv_tun_link_down, whose
 * SHUT actions reach gv_tunio_run). */
void gv_tunio_link_down(gv_tunio *io, gv_linkid via);

/* Carries out one of the core's local actions: CONNECT, WRITE, PAUSE,
 * RESUME, SHUT. WRITE's data is taken (a->data becomes NULL) and freed once
 * written; for every other type a->data is left to the caller, so
 * `gv_tunio_run(io, &a); free(a.data);` is always right. SEND, HOLD and
 * RELEASE are the owner's and ignored here, as are actions for a handle
 * tunio no longer holds (its end was reported) and every action after
 * gv_tunio_close(), and with io NULL (the owner's after it closed). */
void gv_tunio_run(gv_tunio *io, gv_tact *a);

void gv_tunio_stats_get(const gv_tunio *io, gv_tunio_stats *st);

/* See "Lifetime" above. io may be NULL. */
void gv_tunio_close(gv_tunio *io);

#endif

/* gv_tun: the torrent tunnel's pure core (docs/TUNNEL.md). It carries
 * BitTorrent byte streams over Grapevine links on channel 3
 * (proto/torwire.h), so that libtorrent on either end only ever sees
 * 127.0.0.1 and a silent node's address never reaches another node.
 *
 * A stream joins a local TCP socket on each end (the fetcher's: one
 * libtorrent connected to our local port; the seeder's: one we connected to
 * our libtorrent's listen port), either over a direct link between the two
 * nodes or through one or two broadcasting relays (fetcher -> its guard ->
 * a relay of the holder -> holder; docs/TUNNEL.md, "Relay rules"). The core
 * names local sockets by handles (gv_tun_local) it allocates; the driver
 * (node/tunio.c) owns the sockets.
 *
 * Events in (link up/down, a channel-3 message, a local socket connected,
 * read, written or closed), actions out (gv_tun_next). No clock, socket,
 * libuv, RNG or global state: the daemon and tests drive the same code.
 *
 * Flow control, per stream and per direction on each link: a side may
 * send at most GV_TUN_WINDOW bytes of DATA payload beyond what the other
 * side has granted back with CREDIT; both start with the full window. The
 * receiving end grants credit for bytes its local socket has written
 * (gv_tun_local_written), so what any node buffers per stream is bounded by
 * the window (plus one local read on the sending end). DATA beyond the
 * window, or CREDIT beyond what was sent, is a protocol violation: the
 * stream ends with CLOSE(protocol) and gv_tun_recv returns an error so the
 * link core penalises the link.
 *
 * Holding: the core holds a link (GV_HOLD_TORRENT, through HOLD and
 * RELEASE actions, or the service's `up` return) iff a stream uses it or
 * an expectation (gv_tun_expect) names its peer.
 *
 * Lifetime: gv_tun_new() allocates; gv_tun_free() frees everything,
 * including undrained actions (and their data). A popped action's data
 * (SEND, WRITE) is malloc'd and the driver's to free(). A local handle is
 * dead after SHUT, after gv_tun_local_closed(), and after a failed
 * gv_tun_local_connected(): reports about a dead or unknown handle are
 * ignored.
 */
#ifndef GV_TUN_H
#define GV_TUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "engine.h"
#include "identity.h"
#include "lcore.h"
#include "torwire.h"

#define GV_TUN_WINDOW (256u * 1024u)   /* per stream, per direction, per link */
#define GV_TUN_DATA_MAX GV_TW_DATA_MAX /* payload bytes per DATA */
#define GV_TUN_CREDIT_AT (GV_TUN_WINDOW / 4) /* credit is sent in batches */
/* Bytes a local socket's reads may leave held in the core beyond the
 * window (normally one read: the core PAUSEs the socket when it holds any);
 * gv_tun_local_read refuses past it. */
#define GV_TUN_HELD_MAX (1024u * 1024u)
#define GV_TUN_EXPECT_MAX 64 /* pending expectations */
#define GV_TUN_PARK_MAX 64   /* relayed OPENs waiting for a dialed link */

/* A local TCP socket's handle: never 0, never reused; the core allocates
 * them (gv_tun_open, GV_TACT_CONNECT). */
typedef uint64_t gv_tun_local;

/* How a relay reaches an OPEN's dst it has no link to (cfg.route). */
typedef enum gv_tun_route_kind {
  GV_TUN_ROUTE_NONE = 0, /* unreachable: CLOSE(unreachable) */
  GV_TUN_ROUTE_LINK,     /* forward on `link` (to dst, or to a relay of dst) */
  GV_TUN_ROUTE_DIAL,     /* dial `peer` (dst, or a relay of dst) at `addr`;
                            the OPEN is parked until a link to peer is up */
} gv_tun_route_kind;

typedef struct gv_tun_route {
  gv_tun_route_kind kind;
  gv_linkid link;            /* LINK */
  uint8_t peer[GV_ID_BYTES]; /* DIAL */
  gv_addr addr;              /* DIAL */
} gv_tun_route;

typedef struct gv_tun_cfg {
  uint8_t self[GV_ID_BYTES];
  bool relay;                /* forward streams for others (broadcasting) */
  unsigned link_streams_max; /* streams the peer may open on one link, and
                                streams we open on one link (64) */
  unsigned relayed_max;      /* streams forwarded at once (256) */
  /* An OPEN for us: do we serve torrent ih to node src? NULL refuses
   * every OPEN. ih and src are valid during the call only; the callback
   * must not call into the core. */
  bool (*accept)(void *ctx, const uint8_t ih[GV_TW_IH_BYTES],
                 const uint8_t src[GV_ID_BYTES]);
  /* A relayed OPEN for dst, to which this node has no link: how to reach
   * it (*out is zeroed before the call). NULL answers NONE. dst is valid
   * during the call only; the callback must not call into the core. */
  void (*route)(void *ctx, const uint8_t dst[GV_ID_BYTES], gv_tun_route *out);
  void *ctx;
} gv_tun_cfg;

/* self zero, relay false, link_streams_max 64, relayed_max 256, no
 * accept, no route. */
void gv_tun_cfg_default(gv_tun_cfg *cfg);

typedef enum gv_tact_type {
  GV_TACT_NONE = 0,
  GV_TACT_SEND,    /* link, data/len: a whole plaintext, channel byte first */
  GV_TACT_CONNECT, /* local, ih: connect a new local socket to our
                      libtorrent; answer with gv_tun_local_connected() */
  GV_TACT_WRITE,   /* local, data/len: write to the local socket, in order;
                      report gv_tun_local_written() as bytes are written */
  GV_TACT_PAUSE,   /* local: stop reading the local socket */
  GV_TACT_RESUME,  /* local: read it again */
  GV_TACT_SHUT,    /* local, reason (GV_TW_CLOSE_*): close the local socket
                      once its pending writes are done (or cancel its
                      connect); the handle is dead */
  GV_TACT_HOLD,    /* link: gv_lcore_hold(link, GV_HOLD_TORRENT) */
  GV_TACT_RELEASE, /* link: gv_lcore_release(link, GV_HOLD_TORRENT) */
  GV_TACT_DIAL,    /* peer, addr: dial peer (pinned) for parked OPENs; a
                      dial that fails is reported with gv_tun_dial_failed,
                      a link that comes up with gv_tun_link_up */
} gv_tact_type;

typedef struct gv_tact {
  gv_tact_type type;
  gv_linkid link;
  gv_tun_local local;
  uint8_t ih[GV_TW_IH_BYTES];
  uint8_t *data; /* SEND, WRITE: malloc'd, the driver frees it */
  size_t len;
  int reason;                /* SHUT: GV_TW_CLOSE_* */
  uint8_t peer[GV_ID_BYTES]; /* DIAL */
  gv_addr addr;              /* DIAL */
} gv_tact;

typedef struct gv_tun gv_tun;

/* GV_EINVAL for a zero link_streams_max. */
int gv_tun_new(gv_tun **out, const gv_tun_cfg *cfg);
void gv_tun_free(gv_tun *t);

/* The service of channel 3 for gv_lcore_set_service(): up, down and recv
 * call gv_tun_link_up, gv_tun_link_down and gv_tun_recv. It lives as long
 * as t. */
const gv_service *gv_tun_service(gv_tun *t);

/* Whether this node forwards streams for others (cfg.relay): the daemon
 * follows broadcast on/off. Streams relayed already go on. */
void gv_tun_set_relay(gv_tun *t, bool on);

/* ---- links ---- */

/* A link is READY with peer. dialed: this node dialed it (our sids are
 * then odd). OPENs parked for peer are forwarded on it. Returns true when
 * the core holds the link at once (an expectation for peer is pending, or
 * an OPEN was parked for it). */
bool gv_tun_link_up(gv_tun *t, gv_linkid link, const uint8_t *peer,
                    bool dialed);
/* The link is gone: every stream on it ends (an end's local socket gets
 * SHUT(io); a relayed stream's other half gets CLOSE(io)); OPENs parked
 * that came in on it are dropped. */
void gv_tun_link_down(gv_tun *t, gv_linkid link);
/* A dial to peer (a DIAL action) ended without a link: the OPENs parked
 * for peer get CLOSE(unreachable). Ignored while a link to peer is up. */
void gv_tun_dial_failed(gv_tun *t, const uint8_t *peer);
/* One channel-3 message (without the channel byte). 0, or a negative
 * GV_E* with a reason for a malformed message or a protocol violation
 * (the link core penalises the link). Messages for a sid with no stream
 * (one that just closed) are ignored. GV_ESTATE for a link not up. */
int gv_tun_recv(gv_tun *t, gv_linkid link, const uint8_t *msg, size_t len,
                gv_why *why);

/* The daemon dialed peer for tunnels (or wants its link kept): while on,
 * a link to peer is held, from when it comes up, whether or not it has
 * streams. Turning it off releases a link that has no stream. GV_ELIMIT
 * past GV_TUN_EXPECT_MAX expectations. */
int gv_tun_expect(gv_tun *t, const uint8_t *peer, bool on);

/* ---- local sockets ---- */

/* Fetcher side: libtorrent connected to our local port for (dst, ih).
 * Opens a stream on link `via` (a link to dst, or to a relay with a link
 * to dst) and returns its handle in *local; the socket is connected, so the
 * driver reads it at once. GV_ESTATE for a link not up, GV_EINVAL for dst
 * == self, GV_ELIMIT past link_streams_max streams opened by us on via or
 * when via's sids are spent. */
int gv_tun_open(gv_tun *t, gv_linkid via, const uint8_t dst[GV_ID_BYTES],
                const uint8_t ih[GV_TW_IH_BYTES], gv_tun_local *local,
                gv_why *why);
/* Seeder side: the CONNECT for local finished. status 0: connected (the
 * driver reads it from now on); negative: failed, the stream ends with
 * CLOSE(io) and the handle is dead. */
void gv_tun_local_connected(gv_tun *t, gv_tun_local local, int status);
/* The local socket read b[0..len). The core sends what the window allows
 * and keeps the rest, PAUSEing the socket while it keeps any or the
 * window is spent; RESUME follows when credit drains it. GV_ELIMIT if the
 * held bytes would pass GV_TUN_HELD_MAX (the driver should then close the
 * socket); GV_ESTATE for a socket whose CONNECT has not been answered; 0
 * for an unknown handle (ignored). */
int gv_tun_local_read(gv_tun *t, gv_tun_local local, const uint8_t *b,
                      size_t len);
/* n more bytes of the WRITE actions for local were written, in order. The
 * core grants them back with CREDIT, batched (GV_TUN_CREDIT_AT). */
void gv_tun_local_written(gv_tun *t, gv_tun_local local, size_t n);
/* The local socket hit EOF (status 0) or an error (negative): the stream
 * ends with CLOSE(done) or CLOSE(io); bytes held for the link are dropped.
 * A half-close is a close. The handle is dead; no SHUT follows. */
void gv_tun_local_closed(gv_tun *t, gv_tun_local local, int status);

/* ---- output and inspection ---- */

/* Pops the next action into *a; false when there is none. */
bool gv_tun_next(gv_tun *t, gv_tact *a);

typedef struct gv_tun_stats {
  uint64_t opened;  /* streams ended here: opened by us or accepted */
  uint64_t relayed; /* streams forwarded */
  uint64_t closed;  /* streams (ends and relayed pairs) that ended */
  uint64_t bytes_in, bytes_out; /* DATA payload received / sent, all links */
  uint64_t refused;             /* OPENs this node answered with CLOSE */
  uint64_t parked;              /* OPENs parked for a dial */
  uint64_t violations;          /* protocol violations seen */
} gv_tun_stats;

const gv_tun_stats *gv_tun_stats_get(const gv_tun *t);
/* Streams alive now: ends plus relayed pairs (parked OPENs included). */
size_t gv_tun_streams(const gv_tun *t);
/* OPENs parked now, waiting for a link to their next hop. */
size_t gv_tun_parked(const gv_tun *t);
/* Checks docs/TUNNEL.md's invariants; 0 or a GV_E* with a reason. */
int gv_tun_check(const gv_tun *t, gv_why *why);

#endif

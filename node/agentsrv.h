/* The agent socket server (docs/RELAY.md §7): relay.sock, a Unix socket in
 * the data directory that speaks newline-delimited lines. This is an
 * adapter only: it numbers connections, splits their input into lines and
 * queues output lines; what a line means is the owner's business (the
 * daemon parses it with node/relayreq.c and feeds node/relay.c).
 *
 * Connections are named by a gv_rconn, a nonzero number that is never
 * given to another connection while this one is open (until its on_closed
 * has returned).
 *
 * Bounds, each with an explicit outcome:
 *  - a line longer than GV_RREQ_LINE_MAX without a newline: the TOOBIG
 *    error line is written and the connection closed; a connection buffers
 *    at most GV_RREQ_LINE_MAX bytes of an unfinished line;
 *  - output queued to a client that does not read, past max_queued bytes:
 *    the connection is closed (counted in closed_slow);
 *  - past max_conns open connections, a new client is accepted, sent a
 *    LIMIT error line and closed; the owner never hears of it;
 *  - a client whose uid (SO_PEERCRED) is neither the node's nor root's:
 *    sent an EACCES error line and closed; the owner never hears of it.
 *
 * Lifetime: gv_agentsrv_start() binds and listens; gv_agentsrv_close()
 * closes every connection and the socket, after which no callback fires;
 * the server frees itself once its libuv handles are closed (the loop must
 * run). The socket file is removed by gv_agentsrv_close().
 */
#ifndef GV_AGENTSRV_H
#define GV_AGENTSRV_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

typedef uint32_t gv_rconn;
typedef struct gv_agentsrv gv_agentsrv;

#define GV_AGENTSRV_MAX_CONNS 4096
#define GV_AGENTSRV_MAX_QUEUED (64u * 1024 * 1024)

typedef struct gv_agentsrv_cbs {
  /* A client connected (not called for one refused at the cap or for its
   * uid). */
  void (*on_open)(void *ctx, gv_rconn conn);
  /* One input line, without its '\n' (a "\r" before it is kept). line is
   * borrowed for the call. The callback may write, hang up or close. */
  void (*on_line)(void *ctx, gv_rconn conn, const char *line, size_t len);
  /* The connection is closed, whoever closed it; conn may be reused
   * after this returns. Called once for every on_open, from the loop (never
   * from inside gv_agentsrv_write or gv_agentsrv_hangup). */
  void (*on_closed)(void *ctx, gv_rconn conn);
} gv_agentsrv_cbs;

typedef struct gv_agentsrv_opts {
  unsigned max_conns; /* 0: GV_AGENTSRV_MAX_CONNS */
  size_t max_queued;  /* output bytes per connection; 0: 64 MiB */
} gv_agentsrv_opts;

typedef struct gv_agentsrv_stats {
  uint64_t conns;        /* open now */
  uint64_t accepted;     /* connections opened, ever */
  uint64_t lines_in;     /* lines handed to on_line */
  uint64_t lines_out;    /* lines queued by gv_agentsrv_write */
  uint64_t toobig;       /* connections closed for an oversized line */
  uint64_t refused;      /* clients refused at the cap or for their uid */
  uint64_t closed_slow;  /* connections closed for not reading */
  uint64_t write_errors; /* writes that failed on the socket */
} gv_agentsrv_stats;

/* Listens on path with mode 0600 (set by the umask at bind, so there is no
 * moment it is open to others). A socket file left at path by a dead node
 * (nobody answers on it) is replaced; a live one, a path that is not a
 * socket, or a socket of another user's or writable by others
 * (gv_cli_check_owned), is refused with a reason (GV_EBUSY, -EEXIST,
 * -EPERM). opts may be NULL.
 * cbs and ctx are kept. Returns 0 or GV_E* / -errno with a reason; on
 * failure *out is NULL and no callback ever fires. */
int gv_agentsrv_start(gv_agentsrv **out, uv_loop_t *loop, const char *path,
                      const gv_agentsrv_cbs *cbs, void *ctx,
                      const gv_agentsrv_opts *opts, gv_why *why);

/* Queues data[0..len) (one or more whole lines, each ending in '\n') to
 * conn. Takes ownership of data, a malloc'd buffer, and frees it whatever
 * happens. Returns 0; GV_ESTATE when conn is not open (closed, closing or
 * hung up); GV_EBUSY when it would take conn's queue past max_queued: the
 * connection is then closed and on_closed follows from the loop. */
int gv_agentsrv_write(gv_agentsrv *s, gv_rconn conn, uint8_t *data, size_t len);

/* Stops reading conn and closes it once its queued output is written.
 * Later writes to it return GV_ESTATE. A conn that is not open is
 * ignored. */
void gv_agentsrv_hangup(gv_agentsrv *s, gv_rconn conn);

void gv_agentsrv_stats_get(const gv_agentsrv *s, gv_agentsrv_stats *st);

/* Closes every connection and the listening socket; no callback fires
 * after this. s may be NULL. */
void gv_agentsrv_close(gv_agentsrv *s);

#endif

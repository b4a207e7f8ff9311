/* The control-socket server: a Unix socket that takes one JSON request per
 * line (node/ctl.c parses it) and writes one JSON answer per line, for the
 * CLI (docs/NODE.md). It answers `peers` and `request` itself from the
 * engine and link core it is given (read-only, plus gv_engine_request()),
 * and hands every
 * command that changes the node to the owner through cbs.command. A
 * `request` waits wait_ms for PEER_LIST_RESPONSEs, which the owner passes
 * in with gv_ctlsrv_report(). A `broadcast` with wait_ms > 0 answers once
 * every neighbour has confirmed the new record or wait_ms has passed,
 * with the engine's uptake (gv_engine_uptake) as
 * "uptake":{"neighbours":N,"confirmed":K,"waited_ms":W,"wait_ms":M}, or,
 * if a newer record of this node went out during the wait (a re-announce,
 * a repo change; it carries the same broadcast state), as
 * "uptake":{"superseded":true,"waited_ms":W,"wait_ms":M}.
 *
 * Who may connect: the node's own uid or root, read with SO_PEERCRED; any
 * other client gets one EACCES line and is closed before it is read. A
 * stale socket at path is replaced only if it is this user's
 * (gv_cli_check_stale_sock); another user's is refused at start.
 *
 * Lifetime: gv_ctlsrv_start() binds and listens; gv_ctlsrv_stop() closes
 * every client and the socket, and the server frees itself once its
 * handles are closed (the loop must run). The engine and the link core are
 * borrowed.
 */
#ifndef GV_CTLSRV_H
#define GV_CTLSRV_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "ctl.h"
#include "engine.h"
#include "lcore.h"

/* At most this many clients are connected at once. A client past it evicts
 * the one that has waited longest without sending a request (it gets a
 * BUSY line and is closed), so idle connections cannot lock the CLI out;
 * if every client has a request in flight, the newcomer gets the BUSY line
 * and is closed instead. */
#define GV_CTLSRV_CLIENTS_MAX 64
/* A client that sends no complete request line for this long (since it
 * connected or since its last answer) gets a TIMEOUT line and is closed.
 * A `request` waiting for its answers is not idle. */
#define GV_CTLSRV_IDLE_MS 10000

typedef struct gv_ctlsrv gv_ctlsrv;

typedef struct gv_ctlsrv_cbs {
  /* The answer to `status`. */
  cJSON *(*status)(void *ctx);
  /* The answer to a command that changes the node (repo add/rm,
   * broadcast); gv_ctlsrv_error() builds a refusal. */
  cJSON *(*command)(void *ctx, const gv_ctl_req *req);
  /* The engine was called and may have actions to drain. */
  void (*changed)(void *ctx);
  /* The engine's clock. */
  int64_t (*now)(void *ctx);
} gv_ctlsrv_cbs;

int gv_ctlsrv_start(gv_ctlsrv **out, uv_loop_t *loop, const char *path,
                    gv_engine *engine, const gv_lcore *lc,
                    const gv_ctlsrv_cbs *cbs, void *ctx, gv_why *why);

/* A GV_ACT_REPORT action: adds the answering peers that hold the repo to
 * every client waiting on that request. */
void gv_ctlsrv_report(gv_ctlsrv *s, const gv_action *a);

/* The optional handler of `team_reload` (called with the ctx given to
 * gv_ctlsrv_start): load the team files of the data directory again
 * (node/team.h) after `grapevine team create` or `join` wrote one, and
 * return the answer, e.g. {"ok":true,"teams":N}, or gv_ctlsrv_error() with
 * the reason. Until it is set, `team_reload` answers NOTIMPL. (A setter
 * rather than a member of gv_ctlsrv_cbs, so that the callers' positional
 * initializers of that struct stay complete.) */
void gv_ctlsrv_set_team_reload(gv_ctlsrv *s, cJSON *(*team_reload)(void *ctx));

/* The handler of the torrent commands (share, fetch, torrent, torrents,
 * unshare; node/torsvc.h), called with the ctx given to gv_ctlsrv_start.
 * It returns the answer, or NULL to answer later with gv_ctlsrv_answer()
 * and this token (a share hashes its file off the loop first). Until it is
 * set, those commands answer NOTIMPL. */
typedef cJSON *(*gv_ctlsrv_torrent_fn)(void *ctx, const gv_ctl_req *req,
                                       uint64_t token);
void gv_ctlsrv_set_torrent(gv_ctlsrv *s, gv_ctlsrv_torrent_fn fn);

/* The deferred answer to the request of token: written to its client if it
 * is still connected, else dropped. Takes answer (freed either way). */
void gv_ctlsrv_answer(gv_ctlsrv *s, uint64_t token, cJSON *answer);

void gv_ctlsrv_stop(gv_ctlsrv *s);

/* {"ok":false,"error":NAME,"reason":reason}. */
cJSON *gv_ctlsrv_error(int rc, const char *reason);

#endif

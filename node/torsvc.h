/* The node's torrent service (docs/TORRENT.md, "The node's torrent
 * service"): one gv_tor session (torrent/tor.h) driven from the node's
 * loop, the torrents the user shared or fetched, and the holders of each
 * fetch found by gossip.
 *
 *   share PATH --uv_queue_work--> gv_tor_create (thread pool)
 *              --after work--> gv_tor_add (seed mode) -> list saved ->
 *              names_changed (bt:<v1>, bt2:<v2/60>, --repo) -> answer
 *   fetch T    -> gv_tor_add (target) -> list saved -> find holders now,
 *              then every GV_TORSVC_FIND_MS until it completes
 *              (the PEER_REQUEST less and less often):
 *                table scan + PEER_REQUEST -> gv_tor_connect(IP:tport)
 *                or torsvc_reach_tunnel() for a holder that needs one
 *   alerts     cfg.notify -> uv_async_send -> gv_tor_poll until drained
 *
 * Persistence, under DIR (DATA_DIR/torrents): resume files in DIR/state
 * (gv_tor's state_dir), each share's .torrent bytes as DIR/<hash>.torrent,
 * and the list DIR/list, one line per torrent (kind, v1 hex, v2 hex,
 * repo, save path; tab-separated), each written atomically (temporary
 * file, fsync, rename, fsync of DIR). At start every listed torrent is
 * added again: a share from its .torrent in seed mode, a fetch by its
 * hashes (its resume file carries the info dict and the verified pieces).
 *
 * Lifetime: gv_torsvc_new() starts the session; gv_torsvc_stop() saves
 * resume data, frees the session and closes the handles; the service
 * frees itself once they are closed and no hashing job is left (the loop
 * must run). The engine is borrowed and must outlive the service.
 */
#ifndef GV_TORSVC_H
#define GV_TORSVC_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "config.h"
#include "ctl.h"
#include "engine.h"
#include "log.h"

/* Shares at most: each takes two names of the record (bt:, bt2:) and
 * perhaps a --repo name, and the user's repositories keep the rest of
 * GV_MAX_REPOS. */
#define GV_TORSVC_SHARES_MAX 24
/* Torrents in the list at most (shares and fetches). */
#define GV_TORSVC_MAX 128
/* How often a fetch looks for holders again until it completes. */
#define GV_TORSVC_FIND_MS 2000
/* Its PEER_REQUEST floods at a gap doubling from GV_TORSVC_FIND_MS up to
 * this one; a fetch or attach starts again from GV_TORSVC_FIND_MS. */
#define GV_TORSVC_FIND_MAX_MS (5 * 60 * 1000)

typedef struct gv_torsvc gv_torsvc;

typedef struct gv_torsvc_cbs {
  /* The names this service adds to the record changed: the owner merges
   * gv_torsvc_names() with the user's repositories (gv_engine_set_repos). */
  void (*names_changed)(void *ctx);
  /* How many of GV_MAX_REPOS the user's own repositories take. */
  size_t (*user_repos)(void *ctx);
  /* A deferred control answer (gv_ctlsrv_answer); takes answer. */
  void (*answer)(void *ctx, uint64_t token, cJSON *answer);
  /* The engine was called and may have actions to drain. */
  void (*changed)(void *ctx);
  /* The engine's clock. */
  int64_t (*now)(void *ctx);
  /* A holder libtorrent may not dial directly (it is silent, or this node
   * is): a port on 127.0.0.1 whose connections the owner tunnels to it for
   * torrent ih (its v1 info-hash, or a v2-only torrent's first 20 bytes of
   * v2: the handshake's), or 0 while the link that needs is not up yet. */
  uint16_t (*tunnel)(void *ctx, const uint8_t holder[GV_ID_BYTES],
                     const uint8_t ih[20]);
  /* Torrent ih (as in tunnel) needs no tunnel port any more: its fetch
   * completed, or it was removed. Streams already open go on. */
  void (*untunnel)(void *ctx, const uint8_t ih[20]);
} gv_torsvc_cbs;

/* Starts the session on cfg's torrent keys, listening on listen_ip
 * (NULL: 127.0.0.1), with its state under dir (created 0700), and adds
 * every listed torrent again; the caller then publishes gv_torsvc_names()
 * (names_changed is called only for later changes). *out is freed by
 * gv_torsvc_stop(). */
int gv_torsvc_new(gv_torsvc **out, uv_loop_t *loop, gv_engine *engine,
                  gv_log *log, const gv_config *cfg, const char *listen_ip,
                  const char *dir, const gv_torsvc_cbs *cbs, void *ctx,
                  gv_why *why);

/* The port the session listens on (what the record's tport says). */
uint16_t gv_torsvc_port(const gv_torsvc *s);

/* Listens on ips (gv_tor_set_listen's comma-separated list) at the
 * current port instead. GV_ESTATE once stopped. */
int gv_torsvc_listen(gv_torsvc *s, const char *ips, gv_why *why);

/* Appends to out[0..k) the names the shares add to the record that are
 * not in it yet, writing at most cap in all, and returns how many there
 * are in all (more than cap when they do not fit). */
size_t gv_torsvc_names(const gv_torsvc *s, char (*out)[GV_REPO_MAX + 1],
                       size_t k, size_t cap);

/* A torrent command (GV_CTL_SHARE .. GV_CTL_UNSHARE): the answer, or NULL
 * when it comes later through cbs.answer with token. */
cJSON *gv_torsvc_command(gv_torsvc *s, const gv_ctl_req *req, uint64_t token);

/* Whether this node has torrent ih (as in cbs.tunnel) to serve through a
 * tunnel: shared, or fetched far enough to have its metadata. False once
 * stopped. */
bool gv_torsvc_serves(const gv_torsvc *s, const uint8_t ih[20]);

/* A GV_ACT_REPORT action: holders answering a fetch's PEER_REQUEST. */
void gv_torsvc_report(gv_torsvc *s, const gv_action *a);

/* Cancels the shares still hashing or queued (their CLIs are answered
 * "node stopping" through cbs.answer before this returns, so call it
 * while the control socket is open), saves resume data (gv_tor_free),
 * closes the handles; NULL is a no-op. */
void gv_torsvc_stop(gv_torsvc *s);

#endif

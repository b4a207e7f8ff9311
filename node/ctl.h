/* The control protocol between the grapevine CLI and a running node: one
 * JSON object per line each way over the node's Unix socket (docs/NODE.md).
 * This is the pure part: parsing a request line. */
#ifndef GV_CTL_H
#define GV_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "msg.h"

#define GV_CTL_LINE_MAX (64 * 1024) /* longer lines close the connection */
#define GV_CTL_WAIT_MAX_MS 60000

typedef enum gv_ctl_cmd {
  GV_CTL_STATUS,
  GV_CTL_PEERS,
  GV_CTL_REQUEST,
  GV_CTL_REPO_ADD,
  GV_CTL_REPO_RM,
  GV_CTL_BROADCAST,
  GV_CTL_TEAM_RELOAD, /* load the team files again (node/team.h) */
  /* The torrent service (node/torsvc.h, docs/TORRENT.md). */
  GV_CTL_SHARE,    /* path, repo ("" if none) */
  GV_CTL_FETCH,    /* target (a hash or magnet, parsed by the node), path */
  GV_CTL_TORRENT,  /* target: one torrent's status, by hash */
  GV_CTL_TORRENTS, /* every torrent's status */
  GV_CTL_UNSHARE,  /* target (a hash), del */
} gv_ctl_cmd;

#define GV_CTL_PATH_MAX 4095 /* bytes of an absolute path */
#define GV_CTL_TARGET_MAX                                                      \
  2048 /* bytes of a hash or magnet (GV_TOR_TARGET_MAX) */

typedef struct gv_ctl_req {
  gv_ctl_cmd cmd;
  char repo[GV_REPO_MAX + 1];     /* REQUEST, REPO_* */
  unsigned max;                   /* REQUEST: 1..GV_MAX_PEERS (default 16) */
  unsigned wait_ms;               /* REQUEST: 1..GV_CTL_WAIT_MAX_MS (3000);
                                     BROADCAST: 0..GV_CTL_WAIT_MAX_MS (0), how
                                     long to wait for the neighbours' uptake */
  bool on;                        /* BROADCAST */
  bool del;                       /* UNSHARE: delete the files too */
  char path[GV_CTL_PATH_MAX + 1]; /* SHARE: the file or directory;
                                     FETCH: the output directory; both
                                     absolute, no tab or newline */
  char target[GV_CTL_TARGET_MAX + 1]; /* FETCH, TORRENT, UNSHARE */
} gv_ctl_req;

/* Parses one request line (without its newline) through the wire's strict
 * JSON layer (gv_json_parse_strict): invalid UTF-8, a NUL byte, \u0000,
 * trailing bytes and a repeated member name are refused. 0, or GV_EJSON /
 * GV_EFIELD / GV_ELIMIT / GV_ERANGE / GV_ETOOBIG with a reason; a reason
 * quotes the request only as whole UTF-8 characters. */
int gv_ctl_parse(gv_ctl_req *req, const char *line, size_t len, gv_why *why);

/* What a `broadcast` waiting for its uptake does at each poll. */
typedef enum gv_ctl_uptake_step {
  GV_CTL_UPTAKE_KEEP,       /* same record: keep counting its uptake */
  GV_CTL_UPTAKE_FOLLOW,     /* a newer record with the awaited broadcast
                               state (a re-announce, a repo change): wait on
                               that one's uptake instead */
  GV_CTL_UPTAKE_SUPERSEDED, /* a newer record with the other state: a later
                               command changed it; answer so, do not wait */
} gv_ctl_uptake_step;

/* The step for a wait on the record numbered awaited_seq, signed with
 * broadcast state awaited_on, when the node's newest record is now_seq with
 * state now_on. A seq at or below awaited_seq is the same record. */
gv_ctl_uptake_step gv_ctl_uptake_step_of(uint64_t awaited_seq, bool awaited_on,
                                         uint64_t now_seq, bool now_on);

#endif

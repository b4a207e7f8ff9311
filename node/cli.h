/* The grapevine command line: one function per subcommand. Each takes the
 * subcommand's argc/argv (argv[0] is the subcommand's name) and returns the
 * process exit status: 0 success, 1 failure, 2 usage error. */
#ifndef GV_CLI_H
#define GV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <uv.h>

#include "identity.h"

#define GV_VERSION "0.1.0"
#define GV_AGENT "grapevine/" GV_VERSION

int gv_cmd_id(int argc, char **argv);
int gv_cmd_keygen(int argc, char **argv);
int gv_cmd_msg_check(int argc, char **argv);
int gv_cmd_demo(int argc, char **argv);
int gv_cmd_node(int argc, char **argv);
int gv_cmd_status(int argc, char **argv);
int gv_cmd_peers(int argc, char **argv);
int gv_cmd_request(int argc, char **argv);
int gv_cmd_repo(int argc, char **argv);
int gv_cmd_broadcast(int argc, char **argv);
/* Torrents (node/torcli.c, docs/TORRENT.md); exit 3 when no node runs. */
int gv_cmd_share(int argc, char **argv);
int gv_cmd_fetch(int argc, char **argv);
int gv_cmd_torrents(int argc, char **argv);
int gv_cmd_unshare(int argc, char **argv);

/* Sends one request line (with its newline) to the node whose data
 * directory is dir and returns its one-line answer (the caller frees it
 * with cJSON_Delete), or NULL after printing one line that names cmd and
 * says why: no node runs (then *no_node, if given, is true), the node was
 * refused, did not answer within timeout_ms, or answered no JSON
 * (node/ctlcli.c). */
struct cJSON *gv_ctl_call(const char *cmd, const char *dir, const char *request,
                          uint64_t timeout_ms, bool *no_node);
/* The relay (node/relaycli.c); these also exit 3 when no node runs. */
int gv_cmd_send(int argc, char **argv);
int gv_cmd_inbox(int argc, char **argv);
int gv_cmd_agents(int argc, char **argv);
int gv_cmd_trace(int argc, char **argv);
int gv_cmd_team(int argc, char **argv);
/* The MCP server over stdio, and `mcp config` (node/mcpcli.c). */
int gv_cmd_mcp(int argc, char **argv);
/* An agent CLI in a pseudo-terminal, relayed (node/wrapcli.c); exits with
 * the agent's status, 127 if it cannot run. */
int gv_cmd_wrap(int argc, char **argv);

/* Resolves the data directory: flag, else $GRAPEVINE_DIR, else
 * $XDG_DATA_HOME/grapevine, else ~/.local/share/grapevine. */
int gv_cli_data_dir(const char *flag, char *out, size_t cap);

/* "500ms", "1.5s", "5m", "2h", "7d" into ms (a decimal number, then one
 * unit); false if s is not one, or past UINT32_MAX days. */
bool gv_cli_duration(const char *s, uint64_t *ms);

/* mkdir -p with mode 0700 for what it creates. Returns 0 or -errno. */
int gv_cli_mkdirs(const char *path);

/* ---- What the node trusts in its data directory (docs/NODE.md, "Who may
 * touch the data directory"). The directory and everything in it belong to
 * the user who runs the node: owned by that uid, writable by nobody else,
 * never a symbolic link. Every check below names the path and the reason in
 * why and returns -EPERM (the rule), -ELOOP (a symbolic link) or -errno. */

/* The one rule, pure: st (from fstat or lstat of path) is of file type
 * `type` (S_IFDIR, S_IFREG or S_IFSOCK), owned by uid, and, unless
 * others_may_write, grants no write to group or others. */
int gv_cli_check_owned(const char *path, const struct stat *st, mode_t type,
                       uid_t uid, bool others_may_write, gv_why *why);

/* Opens the data directory dir (creating it, mode 0700, if create) without
 * following a symbolic link, checks it for geteuid() and returns its fd
 * (O_CLOEXEC; the caller closes it). A missing dir without create is
 * -ENOENT. */
int gv_cli_open_dir(const char *dir, bool create, gv_why *why);

/* Opens name (relative to dirfd, whose path is dir, for messages; dirfd
 * may be AT_FDCWD with name a path and dir NULL) with flags | O_NOFOLLOW |
 * O_CLOEXEC (mode 0600 if O_CREAT) and checks the regular file it opened
 * for geteuid(). Returns the fd or a negative code (-ENOENT included). */
int gv_cli_open_owned(int dirfd, const char *dir, const char *name, int flags,
                      gv_why *why);

/* Checks every entry of the data directory (not recursing) with the rule:
 * ours, not writable by others, not a symbolic link. For the node's
 * start-up, after the directory itself was checked. */
int gv_cli_check_entries(int dirfd, const char *dir, gv_why *why);

/* Loads the key file name (relative to dirfd, as for gv_cli_open_owned)
 * after checking it with gv_cli_open_owned, creating it first (mode 0600,
 * gv_id_save_fd in dirfd, or gv_id_save for AT_FDCWD) when create and it does
 * not exist: *created is then 1 (created may be NULL). */
int gv_cli_load_key(gv_identity *id, int dirfd, const char *dir,
                    const char *name, bool create, int *created, gv_why *why);

/* A node's Unix socket, as its server sees a stale one before binding:
 * missing (0), or a socket we own (0, to be replaced), else refused. */
int gv_cli_check_stale_sock(const char *path, gv_why *why);

/* The client's check of a node's socket at path, before connecting: the
 * directory holding it is writable by nobody but its owner, and path is
 * a socket (not followed) owned by that same user, returned in *owner.
 * -ENOENT when the directory or the socket is missing (no node runs). */
int gv_cli_check_sock(const char *path, uid_t *owner, gv_why *why);

/* The uid at the other end of a connected Unix socket (SO_PEERCRED). */
int gv_cli_peer_uid(int fd, uid_t *uid, gv_why *why);

/* The client's check once connected: the server on fd runs as owner (the
 * uid gv_cli_check_sock returned). */
int gv_cli_check_server(int fd, uid_t owner, const char *path, gv_why *why);

/* A client's whole check of the node it just connected to on pipe, before
 * sending a byte: gv_cli_check_sock(path), then gv_cli_check_server on the
 * pipe's fd for the owner found. 0 or a negative code (a libuv one if the
 * fd cannot be had), with the reason in why. */
int gv_cli_check_node(const uv_pipe_t *pipe, const char *path, gv_why *why);

/* The servers' rule, pure: a client of uid peer may use a node run by
 * self when it is the same user, or root. */
bool gv_cli_peer_allowed(uid_t peer, uid_t self);

/* The servers' check of a client just accepted on fd: gv_cli_peer_allowed
 * for geteuid(), with the reason in why. */
int gv_cli_check_client(int fd, gv_why *why);

/* Wall clock in ms since the epoch (for the adapters; cores take it as an
 * argument). */
long long gv_cli_now_ms(void);

#endif

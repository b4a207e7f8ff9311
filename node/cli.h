/* The grapevine command line: one function per subcommand. Each takes the
 * subcommand's argc/argv (argv[0] is the subcommand's name) and returns the
 * process exit status: 0 success, 1 failure, 2 usage error. */
#ifndef GV_CLI_H
#define GV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Wall clock in ms since the epoch (for the adapters; cores take it as an
 * argument). */
long long gv_cli_now_ms(void);

#endif

/* grapevine: the node's command line. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} commands[] = {
    {"node", gv_cmd_node, "run this machine's node (the daemon)"},
    {"status", gv_cmd_status, "show the running node: links, table, mode"},
    {"peers", gv_cmd_peers, "print the node's peer table with scores"},
    {"request", gv_cmd_request, "ask the network who holds a repository"},
    {"repo", gv_cmd_repo, "add or remove a repository this node holds"},
    {"broadcast", gv_cmd_broadcast,
     "switch sharing this node's address on or off"},
    {"share", gv_cmd_share,
     "share a file or directory: seed it, name it in the record"},
    {"fetch", gv_cmd_fetch,
     "fetch a shared file by info-hash or magnet from its holders"},
    {"torrents", gv_cmd_torrents, "list shared and fetched torrents"},
    {"unshare", gv_cmd_unshare, "stop sharing a torrent, drop its names"},
    {"send", gv_cmd_send, "send a message to an agent by name (the relay)"},
    {"inbox", gv_cmd_inbox, "read the messages sent to an agent"},
    {"agents", gv_cmd_agents, "list the agents of this node's teams"},
    {"trace", gv_cmd_trace, "show where a message is, step by step"},
    {"team", gv_cmd_team, "create, join or list teams (who may message)"},
    {"mcp", gv_cmd_mcp, "an MCP server over stdio for AI agents (the relay)"},
    {"wrap", gv_cmd_wrap, "run an agent CLI in a terminal that relays for it"},
    {"config", gv_cmd_config, "check a configuration file"},
    {"demo", gv_cmd_demo,
     "protocol demo: two identities, a handshake over loopback TCP, "
     "signed announcements"},
    {"id", gv_cmd_id, "print this node's id"},
    {"keygen", gv_cmd_keygen, "create this node's identity key"},
    {"msg-check", gv_cmd_msg_check,
     "validate a wire message and say why it is rejected"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: grapevine COMMAND [OPTIONS]\n\n"
             "Grapevine " GV_VERSION ", a peer-discovery network node.\n\n"
             "Commands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nRun 'grapevine COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("grapevine " GV_VERSION "\n");
    return 0;
  }
  if (sodium_init() < 0) {
    fprintf(stderr, "grapevine: libsodium failed to initialise\n");
    return 1;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "grapevine: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}

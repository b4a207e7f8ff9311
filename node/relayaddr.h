/* Relay agent names and addresses (docs/RELAY.md §2): parsing, formatting,
 * and resolution of an address against a team directory snapshot.
 *
 * Pure code: no I/O, no allocation. Every value here is a plain struct the
 * caller owns. Names are compared byte for byte: `Bob` and `bob` are two
 * agents.
 *
 * Forms (§2), with what gv_raddr.kind says:
 *
 *   name                 GV_RADDR_ONE, project ""   one agent, any project
 *   project:name         GV_RADDR_ONE               one agent
 *   name@NODE            GV_RADDR_ONE + node        ... on node NODE only
 *   project:name@NODE    GV_RADDR_ONE + node
 *   *                    GV_RADDR_ALL               fan-out: the whole team
 *   project:*            GV_RADDR_PROJECT           fan-out: one project
 *   *:name               GV_RADDR_EVERY_NAME        fan-out: `name` everywhere
 *
 * NODE is 64 hex digits (a node id) or its first 12 (a short form), either
 * case. A fan-out form takes no @NODE, and `*:*` is refused (write `*`).
 */
#ifndef GV_RELAYADDR_H
#define GV_RELAYADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"

#define GV_RADDR_PART_MAX 64 /* bytes of a project or of a name */
/* "project:name", without NUL. */
#define GV_RADDR_NAME_MAX (2 * GV_RADDR_PART_MAX + 1)
/* "project:name@" + 64 hex digits, the longest address, without NUL. */
#define GV_RADDR_TEXT_MAX (GV_RADDR_NAME_MAX + 1 + GV_ID_HEX_LEN)
#define GV_RADDR_SHORT_BYTES (GV_ID_SHORT_LEN / 2) /* 6 bytes, 12 digits */

/* An agent's registered name: both parts 1..64 bytes of [A-Za-z0-9._-]. */
typedef struct gv_raddr_name {
  char project[GV_RADDR_PART_MAX + 1];
  char name[GV_RADDR_PART_MAX + 1];
} gv_raddr_name;

typedef enum gv_raddr_kind {
  GV_RADDR_ONE,        /* exactly one agent must match */
  GV_RADDR_ALL,        /* `*` */
  GV_RADDR_PROJECT,    /* `project:*` */
  GV_RADDR_EVERY_NAME, /* `*:name` */
} gv_raddr_kind;

typedef enum gv_raddr_node {
  GV_RADDR_NODE_ANY,   /* no @NODE */
  GV_RADDR_NODE_FULL,  /* @ 64 hex digits: all of node[] */
  GV_RADDR_NODE_SHORT, /* @ 12 hex digits: node[0..GV_RADDR_SHORT_BYTES) */
} gv_raddr_node;

typedef struct gv_raddr {
  gv_raddr_kind kind;
  char project[GV_RADDR_PART_MAX + 1]; /* "" for any project */
  char name[GV_RADDR_PART_MAX + 1];    /* "" for ALL and PROJECT */
  gv_raddr_node node_kind;
  uint8_t node[GV_ID_BYTES]; /* zero past what node_kind covers */
} gv_raddr;

/* One agent of the team directory (§4.4), as the caller's snapshot holds
 * it. Resolution does not look at `online`: an offline agent's messages
 * wait at its node (§5.3), so it is a valid recipient. */
typedef struct gv_raddr_ent {
  uint8_t node[GV_ID_BYTES];
  gv_raddr_name agent;
  bool online;
} gv_raddr_ent;

/* Checks one part (a project or a name): 1..64 bytes of [A-Za-z0-9._-].
 * `what` names it in the reason. 0 or GV_EFIELD. */
int gv_raddr_part_check(const char *s, size_t len, const char *what,
                        gv_why *why);

/* Parses an agent name `project:name` from s[0..len) (no NUL needed).
 * 0, or GV_EFIELD with a reason; *out is zeroed first. */
int gv_raddr_name_parse(gv_raddr_name *out, const char *s, size_t len,
                        gv_why *why);

/* Parses an address of any form above from s[0..len). 0, or GV_EFIELD
 * (GV_ETOOBIG past GV_RADDR_TEXT_MAX bytes) with a reason; *out is zeroed
 * first. */
int gv_raddr_parse(gv_raddr *out, const char *s, size_t len, gv_why *why);

/* Writes a's canonical text (hex in lower case) into out; gv_raddr_parse()
 * of it gives a back. Returns its length. */
size_t gv_raddr_format(const gv_raddr *a, char out[GV_RADDR_TEXT_MAX + 1]);

/* Writes the full address `project:name@<64 hex>` of a directory entry,
 * the form AMBIGUOUS lists candidates in. Returns its length. */
size_t gv_raddr_format_ent(const gv_raddr_ent *e,
                           char out[GV_RADDR_TEXT_MAX + 1]);

/* True if entry e is the agent `self` names (same node, project, name). */
bool gv_raddr_same(const gv_raddr_ent *e, const gv_raddr_ent *self);

/* Resolves a against the directory dir[0..n) of the sender's team (§2).
 * `self` is the sending agent (NULL when no agent sends, e.g. the CLI
 * without --as); only fan-out forms leave it out. The entries of dir must
 * be distinct agents (node, project, name).
 *
 * Writes the indexes into dir of the matches, in directory order, to
 * out[0..min(*found, cap)); *found is their full number, which may exceed
 * cap (call again with a larger out). Returns:
 *   0                      one match (GV_RADDR_ONE) or *found >= 1 (fan-out)
 *   GV_EUNKNOWN_RECIPIENT  no match (*found == 0)
 *   GV_EAMBIGUOUS          GV_RADDR_ONE matched several agents, or a short
 *                          NODE is the prefix of several node ids in dir
 *                          and some agent on them matches; the candidates
 *                          (every matching agent on every such node) are in
 *                          out, as with a success.
 * The project part is never dropped: `web:Bob` matches only project web. */
int gv_raddr_resolve(const gv_raddr *a, const gv_raddr_ent *dir, size_t n,
                     const gv_raddr_ent *self, size_t *out, size_t cap,
                     size_t *found, gv_why *why);

#endif

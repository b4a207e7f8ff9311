/* grapevine-sim --scenario eclipse|sybil|spam|forged: attacks on the real
 * engine, measured as the gossipsub v1.1 evaluation measured them (honest
 * delivery while attackers act). See docs/EXPERIMENTS.md, "Attacks".
 *
 * The network: --nodes N, of which a share (or a count) --attackers are
 * the attacker's, the rest honest (--silent-frac of them silent; the
 * victim, node 0, broadcasts). The honest nodes form first; then:
 *
 *   base (30 s)  -> attack (--duration-s) -> after (eclipse: until the
 *                   victim recovers, at most 300 s; else 30 s)
 *
 * Every 5 s an honest node (never the victim) announces itself, and the
 * next 5 s say which live honest nodes delivered it: the reliability
 * series. The attacker's nodes join when the attack begins and are killed
 * when it ends. They are black holes for honest gossip (they forward
 * nothing that an honest node sent them, as the gossipsub evaluation's
 * Sybils do), and each kind adds:
 *   eclipse: every attacker claims to be a bootstrap node, re-announces
 *            every 60 s, links to the victim and a few other attackers,
 *            and redials the victim every second while not linked to it;
 *            a third into the attack the victim restarts from its cached
 *            table (the moment an eclipse waits for).
 *   sybil:   --attackers hosts (5) announce --sybils fresh ids (5000),
 *            silent records, spread over the first half of the attack.
 *   spam:    every attacker announces itself --rate times a second (10):
 *            valid, signed, fresh, useless.
 *   forged:  every attacker sends --rate (20) records a second on each of
 *            its links, each claiming a random honest node's id (with the
 *            attacker's address) and signed with the attacker's key.
 *            Needs real signatures.
 * Attackers dial and are dialed through the real engine and link core (a
 * forced dial for the eclipse's redials), so scores, eviction, rate
 * limits and bans are the node's own.
 */
#ifndef GV_SIM_ATTACK_H
#define GV_SIM_ATTACK_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

typedef enum gv_attack_kind {
  GV_ATTACK_ECLIPSE,
  GV_ATTACK_SYBIL,
  GV_ATTACK_SPAM,
  GV_ATTACK_FORGED,
} gv_attack_kind;

typedef struct gv_attack_opts {
  gv_attack_kind kind;
  double attackers;    /* < 1: share of --nodes; >= 1: a count; < 0: default */
  uint32_t sybils;     /* sybil: fresh ids; 0: default (5000) */
  double rate;         /* spam, forged: per attacker per second; < 0: default */
  int64_t duration_ms; /* the attack; <= 0: default (eclipse 120 s, 60 s) */
  const char *out;     /* CSV directory, or NULL */
  bool json, timing;
  int argc; /* the command line, for the reproduction line */
  char **argv;
} gv_attack_opts;

/* The kind named name; -1 if it names none. */
int gv_attack_kind_from_name(const char *name);

/* The kind's defaults: nodes (when --nodes is not given), attackers. */
uint32_t gv_attack_default_nodes(gv_attack_kind kind);

/* Checks the options against cfg (attackers leave two honest nodes, a
 * count is whole, forged has real signatures); NULL if they fit, else
 * the message for the user. */
const char *gv_attack_check(const gv_sim_cfg *cfg, const gv_attack_opts *ao);

/* Runs the scenario and prints its report on stdout. Returns the exit
 * status: 0, 1 out of memory, or 3 when an engine's invariants failed. */
int gv_attack_run(const gv_sim_cfg *cfg, const gv_attack_opts *ao);

#endif

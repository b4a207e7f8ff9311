/* The fair share of the connection cap (docs/TRACKER.md §4): which
 * connection to close when a newcomer takes the count of open connections
 * past the cap. Sans-I/O: it only keeps counts and lists; the HTTP
 * adapter (tracker/http.c) does the shutting down.
 *
 * Connections are counted per source (gv_trk_ipkey: an IPv4 address or an
 * IPv6 /64) and listed per source in accept order. Past the cap, the
 * newcomer is refused if its source holds as many open connections as the
 * heaviest source (the newcomer counted); otherwise the heaviest source's
 * oldest connection that the caller says may be evicted (still waiting for
 * its head or body) is chosen; if it has none, the next sources in
 * descending count that still hold more than the newcomer's are tried the
 * same way (8 sources at most, the heaviest included); else the newcomer
 * is refused. So a connection is only taken from a source holding more
 * than the newcomer's, which keeps at least as many: no flood from any
 * number of sources can push out a source, and none holding fewer than the
 * heaviest loses one while the heaviest has one to evict. Sources are kept
 * in buckets by open count, so an add is O(1) in the number of sources.
 *
 *   add --within the cap--> open
 *   add --past the cap--> open, and one connection (maybe itself) shut
 *   open --gv_trk_fair_shut--> shut (no longer counted, still listed)
 *   open or shut --gv_trk_fair_remove--> gone
 *
 * Lifetime: gv_trk_fair_new() allocates, gv_trk_fair_free() frees the
 * table and its sources, never the connections, which are embedded by the
 * caller (struct gv_trk_fair_conn) and must stay put from add to remove.
 * Not thread-safe: the caller holds one lock around every call.
 */
#ifndef GV_TRK_FAIR_H
#define GV_TRK_FAIR_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

typedef struct gv_trk_fair gv_trk_fair;
typedef struct gv_trk_fair_src gv_trk_fair_src;

/* A connection as the table sees it; embedded by the caller, zeroed
 * before add. Its fields belong to the table. */
typedef struct gv_trk_fair_conn gv_trk_fair_conn;
struct gv_trk_fair_conn {
  gv_trk_fair_src *src; /* NULL: not in the table */
  gv_trk_fair_conn *prev, *next;
  int shut;
};

/* Nonzero when c may be closed for a newcomer. Called under the caller's
 * lock, during add; c is borrowed for the call. */
typedef int (*gv_trk_fair_evictable)(const gv_trk_fair_conn *c, void *ctx);

/* cap >= 1 open connections; key: the hash key of the table of sources
 * (random, so that clients cannot collide sources on purpose). */
int gv_trk_fair_new(gv_trk_fair **out, size_t cap, const uint8_t key[16],
                    gv_trk_fair_evictable evictable, void *ctx);
void gv_trk_fair_free(gv_trk_fair *f);

/* A new connection c from src. 0, and *victim is NULL (within the cap) or
 * the connection to close, c itself or another, already marked shut; or
 * GV_ENOMEM (c is then not in the table). */
int gv_trk_fair_add(gv_trk_fair *f, gv_trk_fair_conn *c,
                    const gv_trk_ipkey *src, gv_trk_fair_conn **victim);

/* c is being closed by the caller: it stops counting. Idempotent. */
void gv_trk_fair_shut(gv_trk_fair *f, gv_trk_fair_conn *c);

/* c is closed: out of the table (a no-op when it is not in it). */
void gv_trk_fair_remove(gv_trk_fair *f, gv_trk_fair_conn *c);

/* Open (not shut) connections, in all and of src. */
size_t gv_trk_fair_open(const gv_trk_fair *f);
size_t gv_trk_fair_open_of(const gv_trk_fair *f, const gv_trk_ipkey *src);

/* Calls fn on every connection in the table, shut ones included; fn may
 * call gv_trk_fair_shut but not add or remove. */
void gv_trk_fair_each(gv_trk_fair *f,
                      void (*fn)(gv_trk_fair_conn *c, void *ctx), void *ctx);

#endif

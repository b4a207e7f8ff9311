/* The daemon's shared context: configuration, the cores with the locks
 * that guard them, and the adapters. Owned by main.c; http.c serves from
 * it on libmicrohttpd's threads, dialback.c and the housekeeping timer use
 * it on the main libuv loop, store.c's callbacks on the writer thread.
 *
 * Locks, each taken only after those above it in this order and never
 * two at once except as listed:
 *   reg_lock     read-write: readers sample, writers change the registry;
 *   replay_lock  the nonce cache; taken inside reg_lock (write) for a
 *                register or unregister, held from the nonce's admission
 *                through the registry change to its recording, so that
 *                they are one step;
 *   the dialer's queue lock, inside reg_lock and replay_lock, where a full
 *                pool takes a queued dial-back back (gv_trk_reg_begin);
 *   http.c's peers_lock (the shared peers answer), inside reg_lock (read)
 *                in peers_shared, or alone;
 *   bucket_lock  the token buckets, and http.c's connection table lock:
 *                taken with no other.
 * A core's clock is read inside its lock (gv_trk_now() is monotonic across
 * threads), so each core sees `now` never decrease.
 */
#ifndef GV_TRK_TRACKER_H
#define GV_TRK_TRACKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "bucket.h"
#include "dialback.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "replay.h"
#include "store.h"

#define GV_TRK_VERSION "0.1.0"

typedef struct gv_trk_cfg {
  const char *listen; /* ADDR:PORT as given */
  const char *db_path;
  char key_path[4096];
  int trust_proxy;
  unsigned rate; /* requests/s per client; 0 = off */
  unsigned burst;
  unsigned max_results;
  unsigned max_per_ip;
  unsigned dial_timeout_ms;
  unsigned dial_concurrency;
  unsigned max_verifying;
  unsigned max_verifying_per_ip; /* 0 = no limit */
  unsigned replay_cap;           /* nonces remembered */
  unsigned threads;
  unsigned max_conns;
  unsigned max_conns_per_ip; /* 0 = no limit */
  unsigned conn_timeout_s;
  unsigned header_timeout_s; /* a head is complete this long after it is due */
  unsigned body_timeout_s;   /* a body this long after its head */
} gv_trk_cfg;

typedef struct gv_trk_ctx {
  gv_trk_cfg cfg;
  gv_log log;
  int64_t start_ms;
  atomic_int_fast64_t clock; /* the latest gv_trk_now() */
  atomic_int stopping;       /* refuse writes: shutting down */
  atomic_long async_reqs;    /* requests suspended or answering */
  gv_identity self;          /* for dial-backs */
  gv_trk_reg *reg;
  uv_rwlock_t reg_lock;
  /* Under reg_lock as a writer: the pending register whose dial-back
   * gv_trk_http_take_back() took back during the current begin. */
  void *taken_back;
  gv_trk_replay *replay;
  uv_mutex_t replay_lock;
  gv_trk_buckets *buckets; /* NULL when cfg.rate is 0 */
  uv_mutex_t bucket_lock;
  gv_trk_store *store;
  gv_trk_dialer *dialer;
  gv_trk_metrics metrics;
  struct MHD_Daemon *mhd;
  struct gv_trk_conns *conns; /* http.c's connection table */
  int listen_fd;
  char listen_text[GV_ADDR_TEXT_MAX]; /* as bound */
} gv_trk_ctx;

/* The wall clock in ms, never less than a previous call returned. */
int64_t gv_trk_now(gv_trk_ctx *t);

#endif

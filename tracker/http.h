/* The tracker's HTTP front (docs/TRACKER.md §1-§4) on libmicrohttpd: a
 * thread pool with epoll, the two-phase handler, suspended requests while a
 * registration is dial-backed and committed.
 *
 *   gv_trk_http_start -> ... -> gv_trk_http_quiesce (no new connections)
 *   -> wait until t->async_reqs is 0 -> gv_trk_http_stop
 */
#ifndef GV_TRK_HTTP_H
#define GV_TRK_HTTP_H

#include "tracker.h"

/* Serves on t->listen_fd (bound and listening). 0 or GV_E* with why. */
int gv_trk_http_start(gv_trk_ctx *t, gv_why *why);

/* Shuts down the connections whose head or body is past its deadline
 * (--header-timeout, --body-timeout); call it every second, from any
 * thread. */
void gv_trk_http_reap(gv_trk_ctx *t);

/* Stops accepting connections; requests on open ones are still served. */
void gv_trk_http_quiesce(gv_trk_ctx *t);

/* Closes every connection and joins the threads; no request may be
 * suspended. */
void gv_trk_http_stop(gv_trk_ctx *t);

/* gv_trk_reg_cfg.take_back, ctx the gv_trk_ctx: takes the queued
 * dial-back of id from the dialer and keeps its pending register in
 * ctx->taken_back, which do_register answers (503) or frees once it has
 * released reg_lock. Under reg_lock as a writer. */
int gv_trk_http_take_back(void *ctx, const uint8_t id[GV_ID_BYTES],
                          const gv_addr *addr);

#endif

/* gv_tunio: the tunnel's local sockets, on a real loop with real gv_tun
 * cores joined by in-process links (tests/tunlab.h), and real TCP peers on
 * loopback standing in for libtorrent on both ends. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tunlab.h"

#define LIMIT_MS 20000 /* every wait fails the test after this */
#define MIB (1024u * 1024u)

static uv_loop_t loop;
static tl_lab *lab;

static const uint8_t IH[GV_TW_IH_BYTES] = {0x11, 0x22, 0x33, 0x44, 0x55};

static void setup(void) {
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  lab = tl_lab_new(&loop);
}

static void teardown(void) {
  tl_lab_free(lab);
  /* Every handle closed, tunio's included: nothing is left to free. */
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Who is where: fetcher f, relay r (or -1), seeder s; link lf carries the
 * fetcher's streams, ls the seeder's (the same link when direct). */
typedef struct world {
  int f, r, s, lf, ls;
  tl_pair *pair;
  uint16_t port; /* the fetcher's local port for (s, IH) */
} world;

/* tor_port 0: the seeder's libtorrent is the pair's server. */
static void build(world *w, const tl_flow *flow, bool relayed,
                  uint16_t tor_port) {
  gv_why why = {""};

  w->pair = tl_pair_new(lab, flow);
  w->s = tl_node_add(lab, tor_port ? tor_port : w->pair->port, false);
  w->f = tl_node_add(lab, tl_free_port(), false);
  w->r = -1;
  if (relayed) {
    w->r = tl_node_add(lab, tl_free_port(), true);
    w->lf = tl_link_up(lab, w->f, w->r);
    w->ls = tl_link_up(lab, w->s, w->r); /* the silent seeder dialed */
  } else {
    w->lf = w->ls = tl_link_up(lab, w->f, w->s);
  }
  ck_assert_int_eq(gv_tunio_listen(lab->nodes[w->f].io, lab->nodes[w->s].id,
                                   lab->links[w->lf].la, IH, &w->port, &why),
                   0);
  ck_assert_uint_ne(w->port, 0);
}

static void stats(int node, gv_tunio_stats *st) {
  gv_tunio_stats_get(lab->nodes[node].io, st);
}

static bool pair_done(void *ctx) { return tl_pair_done(ctx); }

static bool cli_ended(void *ctx) {
  const tl_pair *p = ctx;
  return p->cli->ended;
}

static bool both_ended(void *ctx) {
  const tl_pair *p = ctx;
  return p->cli->ended && p->srv != NULL && p->srv->ended;
}

static size_t want_read;
static bool cli_read_some(void *ctx) {
  const tl_pair *p = ctx;
  return p->cli->ended || p->cli->recvd >= want_read;
}

/* Every stream gone, every local socket closed, every link released, and
 * nothing went wrong in the cores. */
static void assert_quiet(void) {
  ck_assert_msg(tl_run(lab, tl_quiet, lab, LIMIT_MS),
                "streams or sockets still open after %d ms", LIMIT_MS);
  for (int k = 0; k < lab->n_links; k++)
    ck_assert_msg(!lab->links[k].held_a && !lab->links[k].held_b,
                  "link %d still held", k);
  ck_assert_msg(lab->err[0] == '\0', "%s", lab->err);
}

/* A whole transfer both ways: every byte arrives, in order, and the
 * windows bound what the links carry at once. */
static void transfer(bool relayed) {
  tl_flow flow = {4 * MIB, 3 * MIB, 7};
  gv_tunio_stats f, s;
  world w;
  size_t hops = relayed ? 2 : 1;

  build(&w, &flow, relayed, 0);
  tl_pair_connect(w.pair, w.port);
  ck_assert_msg(tl_run(lab, pair_done, w.pair, LIMIT_MS),
                "client read %zu of %zu, server %zu of %zu (%s)",
                w.pair->cli->recvd, flow.down,
                w.pair->srv ? w.pair->srv->recvd : 0, flow.up, lab->err);
  ck_assert(!w.pair->cli->bad && !w.pair->srv->bad);
  ck_assert_int_eq(w.pair->srv->status, 0); /* EOF: the client left */
  assert_quiet();
  stats(w.f, &f);
  stats(w.s, &s);
  ck_assert_uint_eq(f.accepted, 1);
  ck_assert_uint_eq(s.connected, 1);
  ck_assert_uint_eq(f.bytes_read, flow.up);
  ck_assert_uint_eq(f.bytes_written, flow.down);
  ck_assert_uint_eq(s.bytes_read, flow.down);
  ck_assert_uint_eq(s.bytes_written, flow.up);
  ck_assert_uint_eq(f.errors + s.errors, 0);
  /* Each direction of each link carries at most one window of payload
   * (plus message headers). */
  ck_assert_msg(lab->queued_max <= hops * 2 * (GV_TUN_WINDOW + 4096),
                "links carried %zu bytes at once", lab->queued_max);
  ck_assert_uint_eq(w.pair->accepted, 1);
}

START_TEST(test_direct) { transfer(false); }
END_TEST

START_TEST(test_relay) { transfer(true); }
END_TEST

/* _i: 0 the direct link, 1 the fetcher's link to the relay, 2 the
 * seeder's. Either way both local sockets close, mid-stream. */
START_TEST(test_link_down) {
  tl_flow flow = {64 * MIB, 64 * MIB, 9};
  gv_tunio_stats f;
  world w;

  build(&w, &flow, _i > 0, 0);
  tl_pair_connect(w.pair, w.port);
  want_read = MIB;
  ck_assert(tl_run(lab, cli_read_some, w.pair, LIMIT_MS));
  ck_assert(!w.pair->cli->ended);
  tl_link_down(lab, _i == 2 ? w.ls : w.lf);
  ck_assert_msg(tl_run(lab, both_ended, w.pair, LIMIT_MS),
                "client ended %d, server ended %d", w.pair->cli->ended,
                w.pair->srv != NULL && w.pair->srv->ended);
  ck_assert(!w.pair->cli->bad && !w.pair->srv->bad);
  ck_assert_uint_lt(w.pair->cli->recvd, flow.down);
  ck_assert_uint_lt(w.pair->srv->recvd, flow.up);
  assert_quiet();
  /* The fetcher's listener went with its link, and only then. */
  stats(w.f, &f);
  ck_assert_uint_eq(f.listeners, (_i == 2) ? 1u : 0u);
}
END_TEST

/* The seeder refuses the OPEN (it does not serve IH): the fetcher's
 * accepted socket closes, and the seeder's libtorrent never hears of it.
 * _i: 0 direct, 1 through a relay. */
START_TEST(test_refused) {
  tl_flow flow = {MIB, MIB, 3};
  world w;

  build(&w, &flow, _i == 1, 0);
  lab->nodes[w.s].serve = false;
  tl_pair_connect(w.pair, w.port);
  ck_assert(tl_run(lab, cli_ended, w.pair, LIMIT_MS));
  ck_assert_uint_eq(w.pair->cli->recvd, 0);
  ck_assert_uint_eq(w.pair->accepted, 0);
  ck_assert_uint_eq(gv_tun_stats_get(lab->nodes[w.s].core)->refused, 1);
  assert_quiet();
}
END_TEST

/* Nothing listens on the seeder's tor_port: its CONNECT fails and the
 * fetcher's socket closes. _i: 0 direct, 1 through a relay. */
START_TEST(test_connect_fails) {
  tl_flow flow = {MIB, MIB, 5};
  gv_tunio_stats s;
  world w;

  build(&w, &flow, _i == 1, tl_free_port());
  tl_pair_connect(w.pair, w.port);
  ck_assert(tl_run(lab, cli_ended, w.pair, LIMIT_MS));
  ck_assert_uint_eq(w.pair->cli->recvd, 0);
  stats(w.s, &s);
  ck_assert_uint_eq(s.connect_failed, 1);
  ck_assert_uint_eq(s.connected, 0);
  assert_quiet();
}
END_TEST

/* One listener per (dst, ih); unlisten closes it. */
START_TEST(test_listen) {
  tl_flow flow = {0, 0, 1};
  uint8_t ih2[GV_TW_IH_BYTES] = {0x99};
  uint16_t p1, p2, p3, p4;
  gv_tunio_stats st;
  gv_why why = {""};
  gv_tunio *io;
  world w;

  build(&w, &flow, false, 0);
  io = lab->nodes[w.f].io;
  ck_assert_int_eq(gv_tunio_listen(io, lab->nodes[w.s].id, 100, IH, &p1, &why),
                   0);
  ck_assert_uint_eq(p1, w.port);
  ck_assert_int_eq(gv_tunio_listen(io, lab->nodes[w.s].id, 100, ih2, &p2, &why),
                   0);
  ck_assert_int_eq(gv_tunio_listen(io, lab->nodes[w.f].id, 100, IH, &p3, &why),
                   0);
  ck_assert_uint_ne(p2, p1);
  ck_assert_uint_ne(p3, p1);
  ck_assert_uint_ne(p3, p2);
  gv_tunio_stats_get(io, &st);
  ck_assert_uint_eq(st.listeners, 3);
  gv_tunio_unlisten(io, lab->nodes[w.s].id, IH);
  gv_tunio_unlisten(io, lab->nodes[w.s].id, IH); /* gone: a no-op */
  gv_tunio_stats_get(io, &st);
  ck_assert_uint_eq(st.listeners, 2);
  /* Nothing answers on the old port now. */
  tl_pair_connect(w.pair, p1);
  ck_assert(tl_run(lab, cli_ended, w.pair, LIMIT_MS));
  ck_assert_int_eq(w.pair->cli->status, UV_ECONNREFUSED);
  ck_assert(!w.pair->cli->connected);
  /* A new listener for the same pair is a new port. */
  ck_assert_int_eq(gv_tunio_listen(io, lab->nodes[w.s].id, 100, IH, &p4, &why),
                   0);
  ck_assert_uint_ne(p4, 0);
  /* Every holder's listener for IH at once (a fetch completed); ih2's
   * stays. */
  gv_tunio_unlisten(io, NULL, IH);
  gv_tunio_stats_get(io, &st);
  ck_assert_uint_eq(st.listeners, 1);
  ck_assert_int_eq(gv_tunio_listen(io, lab->nodes[w.s].id, 100, ih2, &p1, &why),
                   0);
  ck_assert_uint_eq(p1, p2);
  assert_quiet();
}
END_TEST

/* At most GV_TUNIO_LISTENERS_MAX listeners; the link going down closes
 * those that use it. */
START_TEST(test_listen_cap) {
  uint8_t ih[GV_TW_IH_BYTES] = {0};
  uint8_t dst[GV_ID_BYTES];
  gv_tunio_stats st;
  gv_why why = {""};
  uint16_t port;
  gv_tunio *io;
  int n = tl_node_add(lab, tl_free_port(), false);

  io = lab->nodes[n].io;
  memset(dst, 'Z', sizeof(dst));
  for (unsigned i = 0; i < GV_TUNIO_LISTENERS_MAX; i++) {
    ih[0] = (uint8_t)i;
    ih[1] = (uint8_t)(i >> 8);
    ck_assert_int_eq(gv_tunio_listen(io, dst, i % 2 ? 7 : 8, ih, &port, &why),
                     0);
  }
  ih[2] = 1;
  ck_assert_int_eq(gv_tunio_listen(io, dst, 7, ih, &port, &why), GV_ELIMIT);
  ck_assert(strstr(why.text, "listeners") != NULL);
  gv_tunio_link_down(io, 7);
  gv_tunio_stats_get(io, &st);
  ck_assert_uint_eq(st.listeners, GV_TUNIO_LISTENERS_MAX / 2);
  ck_assert_int_eq(gv_tunio_listen(io, dst, 7, ih, &port, &why), 0);
}
END_TEST

/* gv_tunio_close with streams under way closes every handle and frees
 * itself (teardown: the loop closes empty; ASan: nothing leaks), and the
 * cores are freed after it without a word from tunio. */
START_TEST(test_close_mid_stream) {
  tl_flow flow = {64 * MIB, 64 * MIB, 11};
  gv_tunio_stats f, s;
  world w;

  build(&w, &flow, true, 0);
  tl_pair_connect(w.pair, w.port);
  want_read = MIB / 2;
  ck_assert(tl_run(lab, cli_read_some, w.pair, LIMIT_MS));
  stats(w.f, &f);
  stats(w.s, &s);
  ck_assert_uint_eq(f.sockets, 1);
  ck_assert_uint_eq(s.sockets, 1);
  ck_assert_msg(lab->err[0] == '\0', "%s", lab->err);
}
END_TEST

static Suite *tunio_suite(void) {
  Suite *s = suite_create("tunio");
  TCase *tc = tcase_create("loopback");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_direct);
  tcase_add_test(tc, test_relay);
  tcase_add_loop_test(tc, test_link_down, 0, 3);
  tcase_add_loop_test(tc, test_refused, 0, 2);
  tcase_add_loop_test(tc, test_connect_fails, 0, 2);
  tcase_add_test(tc, test_listen);
  tcase_add_test(tc, test_listen_cap);
  tcase_add_test(tc, test_close_mid_stream);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(tunio_suite()); }

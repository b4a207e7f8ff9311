/* sim/net.c's IP-rule check: a frame that carries a silent node's address,
 * as text in gossip's JSON or in its 16-byte form in a relay packet, is
 * counted as a leak and fails the run's invariants; a broadcasting node's
 * address is not. Correct cores never send such a frame, so the test plants
 * one the way an attacker's crafted message is sent (gv_sim_send). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../sim/net.h"
#include "../sim/simout.h"
#include "testutil.h"

#define NODES 8
#define SILENT 7 /* the one silent node */

static gv_sim *s;

static void setup(void) {
  gv_sim_cfg cfg = {
      .nodes = NODES,
      .fanout = 3,
      .fanout_announced = 2,
      .ttl = 32,
      .active_target = 3,
      .candidates = 4,
      .seed = 5,
      .lat_min = 10,
      .lat_max = 20,
      .repair = true,
      .stub_sigs = true,
      .shuffle_ms = 60000,
  };
  bool silent[NODES] = {[SILENT] = true};

  ck_assert_int_eq(gv_sim_new(&s, &cfg), 0);
  gv_sim_add_nodes(s, NODES, silent);
  gv_sim_seed_all(s, cfg.candidates);
  gv_sim_run_until(s, s->now + 10000);
  ck_assert(gv_sim_check(s));
  ck_assert_uint_eq(s->ip_leaks, 0);
}

static void teardown(void) { gv_sim_free(s); }

/* A READY link of broadcasting node 0's. */
static gv_linkid ready_link(void) {
  gv_link_info li;
  for (size_t x = 0; gv_lcore_info(s->nodes[0].lc, x, &li); x++)
    if (li.ready)
      return li.id;
  ck_abort_msg("node 0 has no READY link after formation");
  return 0;
}

/* Node 0 sends a gossip frame naming node i's address as text. */
static void send_text(uint32_t i) {
  gv_addr a;
  char addr[GV_ADDR_TEXT_MAX], json[256];

  gv_sim_node_addr(i, &a);
  gv_addr_format(&a, addr);
  snprintf(json, sizeof(json), "{\"type\":\"PEER_UPDATE\",\"addrs\":[\"%s\"]}",
           addr);
  gv_sim_send(s, 0, ready_link(),
              gv_chan_buf(GV_CHAN_GOSSIP, json, strlen(json)));
}

/* Node 0 sends a relay packet with node i's address in 16 bytes. */
static void send_bin(uint32_t i) {
  uint8_t pkt[1 + 2 * GV_ID_BYTES] = {GV_RW_ROUTE};
  gv_addr a;

  gv_sim_node_addr(i, &a);
  memcpy(pkt + 1 + GV_ID_BYTES, a.ip, sizeof(a.ip));
  gv_sim_send(s, 0, ready_link(), gv_chan_buf(GV_CHAN_RELAY, pkt, sizeof(pkt)));
}

START_TEST(test_silent_address_as_text_is_a_leak) {
  char *argv[] = {"grapevine-sim"};

  send_text(SILENT);
  ck_assert_uint_eq(s->ip_leaks, 1);
  ck_assert(!gv_sim_checked(s, 1, argv));
}
END_TEST

START_TEST(test_silent_address_in_relay_packet_is_a_leak) {
  char *argv[] = {"grapevine-sim"};

  send_bin(SILENT);
  ck_assert_uint_eq(s->ip_leaks, 1);
  ck_assert(!gv_sim_checked(s, 1, argv));
}
END_TEST

START_TEST(test_broadcasting_address_is_no_leak) {
  char *argv[] = {"grapevine-sim"};

  for (uint32_t i = 1; i < SILENT; i++) {
    send_text(i);
    send_bin(i);
  }
  gv_sim_run_until(s, s->now + 1000);
  ck_assert_uint_eq(s->ip_leaks, 0);
  ck_assert(gv_sim_checked(s, 1, argv));
}
END_TEST

static Suite *suite(void) {
  Suite *su = suite_create("sim");
  TCase *tc = tcase_create("ip_leaks");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_silent_address_as_text_is_a_leak);
  tcase_add_test(tc, test_silent_address_in_relay_packet_is_a_leak);
  tcase_add_test(tc, test_broadcasting_address_is_no_leak);
  suite_add_tcase(su, tc);
  return su;
}

int main(void) { return tu_run(suite()); }

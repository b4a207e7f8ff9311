/* The handshake state machine, message by message (PROTOCOL.md §4). */
#include <sodium.h>
#include <string.h>

#include "handshake.h"
#include "testutil.h"

static gv_identity alice, bob, carol;

static void setup(void) {
  tu_identity(&alice, 1);
  tu_identity(&bob, 2);
  tu_identity(&carol, 3);
}

/* A recorded, successful transcript. */
typedef struct transcript {
  uint8_t m1[GV_HS_MSG_MAX], m2[GV_HS_MSG_MAX], m3[GV_HS_MSG_MAX];
  size_t l1, l2, l3;
} transcript;

/* Runs I (pinning `pin`) against R. Returns the first error, or 0; fills
 * the results when both sides complete. */
static int run(const gv_identity *ini, const gv_identity *res,
               const uint8_t *pin, transcript *t, gv_hs_result *ri,
               gv_hs_result *rr) {
  uint8_t none[GV_HS_MSG_MAX];
  gv_hs *i, *r;
  size_t n;
  int rc;

  ck_assert_int_eq(gv_hs_new(&i, ini, GV_HS_INITIATOR, pin), 0);
  ck_assert_int_eq(gv_hs_new(&r, res, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_start(i, t->m1, &t->l1), 0);
  if ((rc = gv_hs_read(r, t->m1, t->l1, t->m2, &t->l2)) == 0 &&
      (rc = gv_hs_read(i, t->m2, t->l2, t->m3, &t->l3)) == 0 &&
      (rc = gv_hs_read(r, t->m3, t->l3, none, &n)) == 0) {
    ck_assert_uint_eq(n, 0);
    ck_assert(gv_hs_done(i) && gv_hs_done(r));
    ck_assert_int_eq(gv_hs_finish(i, ri), 0);
    ck_assert_int_eq(gv_hs_finish(r, rr), 0);
  }
  gv_hs_free(i);
  gv_hs_free(r);
  return rc;
}

START_TEST(test_success_keys_match) {
  transcript t;
  gv_hs_result ri, rr;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  ck_assert_uint_eq(t.l1, GV_HS_M1_LEN);
  ck_assert_uint_eq(t.l2, GV_HS_M2_LEN);
  ck_assert_uint_eq(t.l3, GV_HS_M3_LEN);
  ck_assert_mem_eq(ri.peer_id, bob.pk, 32);
  ck_assert_mem_eq(rr.peer_id, alice.pk, 32);
  ck_assert_mem_eq(ri.tx_key, rr.rx_key, 32);
  ck_assert_mem_eq(ri.rx_key, rr.tx_key, 32);
  ck_assert_int_ne(memcmp(ri.tx_key, ri.rx_key, 32), 0);
}
END_TEST

/* Identities never travel in clear: neither id appears in the transcript. */
START_TEST(test_ids_hidden) {
  transcript t;
  gv_hs_result ri, rr;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  ck_assert_ptr_null(memmem(t.m2, t.l2, bob.pk, 32));
  ck_assert_ptr_null(memmem(t.m3, t.l3, alice.pk, 32));
}
END_TEST

START_TEST(test_fresh_keys_each_time) {
  transcript t1, t2;
  gv_hs_result a1, b1, a2, b2;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t1, &a1, &b1), 0);
  ck_assert_int_eq(run(&alice, &bob, NULL, &t2, &a2, &b2), 0);
  ck_assert_int_ne(memcmp(t1.m1, t2.m1, GV_HS_M1_LEN), 0);
  ck_assert_int_ne(memcmp(a1.tx_key, a2.tx_key, 32), 0);
}
END_TEST

START_TEST(test_pin_match) {
  transcript t;
  gv_hs_result ri, rr;
  ck_assert_int_eq(run(&alice, &bob, bob.pk, &t, &ri, &rr), 0);
}
END_TEST

START_TEST(test_pin_mismatch) {
  transcript t;
  gv_hs_result ri, rr;
  ck_assert_int_eq(run(&alice, &bob, carol.pk, &t, &ri, &rr), GV_EPEERID);
}
END_TEST

/* Flips bit (_i % 8) of byte (_i / 8) of the whole transcript M1||M2||M3 and
 * replays the rest honestly where possible: every position must fail. */
START_TEST(test_flip_every_byte) {
  const size_t total = GV_HS_M1_LEN + GV_HS_M2_LEN + GV_HS_M3_LEN;
  size_t pos = (size_t)_i / 8, bit = (size_t)_i % 8;
  uint8_t m[GV_HS_MSG_MAX], out[GV_HS_MSG_MAX];
  gv_hs *i, *r;
  size_t n, len;
  int rc;

  ck_assert_uint_lt(pos, total);
  ck_assert_int_eq(gv_hs_new(&i, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_start(i, m, &len), 0);
  if (pos < GV_HS_M1_LEN)
    m[pos] ^= (uint8_t)(1u << bit);
  rc = gv_hs_read(r, m, len, out, &n);
  if (rc == 0) {
    memcpy(m, out, n);
    len = n;
    if (pos >= GV_HS_M1_LEN && pos < GV_HS_M1_LEN + GV_HS_M2_LEN)
      m[pos - GV_HS_M1_LEN] ^= (uint8_t)(1u << bit);
    rc = gv_hs_read(i, m, len, out, &n);
  }
  if (rc == 0) {
    memcpy(m, out, n);
    len = n;
    if (pos >= GV_HS_M1_LEN + GV_HS_M2_LEN)
      m[pos - GV_HS_M1_LEN - GV_HS_M2_LEN] ^= (uint8_t)(1u << bit);
    rc = gv_hs_read(r, m, len, out, &n);
  }
  /* A flip in M1 passes R (it cannot know) but I then fails on M2. */
  ck_assert_msg(rc < 0, "flip at byte %zu bit %zu went unnoticed", pos, bit);
  gv_hs_free(i);
  gv_hs_free(r);
}
END_TEST

/* M1 and M3 recorded from one session, replayed to a new responder. */
START_TEST(test_replay_to_responder) {
  transcript t;
  gv_hs_result ri, rr;
  uint8_t out[GV_HS_MSG_MAX];
  gv_hs *r;
  size_t n;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(r, t.m1, t.l1, out, &n), 0);
  ck_assert_int_ne(memcmp(out, t.m2, 32), 0); /* fresh ephemeral */
  ck_assert_int_eq(gv_hs_read(r, t.m3, t.l3, out, &n), GV_EDECRYPT);
  ck_assert(!gv_hs_done(r));
  gv_hs_free(r);
}
END_TEST

/* M2 recorded from one session, replayed to a new initiator. */
START_TEST(test_replay_to_initiator) {
  transcript t;
  gv_hs_result ri, rr;
  uint8_t m1[GV_HS_MSG_MAX], out[GV_HS_MSG_MAX];
  gv_hs *i;
  size_t n;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  ck_assert_int_eq(gv_hs_new(&i, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_hs_start(i, m1, &n), 0);
  ck_assert_int_eq(gv_hs_read(i, t.m2, t.l2, out, &n), GV_EDECRYPT);
  gv_hs_free(i);
}
END_TEST

/* Each message cut short, or one byte long. */
START_TEST(test_truncated_messages) {
  transcript t;
  gv_hs_result ri, rr;
  uint8_t out[GV_HS_MSG_MAX], m1[GV_HS_MSG_MAX];
  gv_hs *h;
  size_t n;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  ck_assert_int_eq(gv_hs_new(&h, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(h, t.m1, t.l1 - 1, out, &n), GV_EHANDSHAKE);
  gv_hs_free(h);

  ck_assert_int_eq(gv_hs_new(&h, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_hs_start(h, m1, &n), 0);
  ck_assert_int_eq(gv_hs_read(h, t.m2, t.l2 - 1, out, &n), GV_EHANDSHAKE);
  gv_hs_free(h);

  ck_assert_int_eq(gv_hs_new(&h, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(h, t.m1, t.l1, out, &n), 0);
  ck_assert_int_eq(gv_hs_read(h, out, 1, out, &n), GV_EHANDSHAKE);
  gv_hs_free(h);
}
END_TEST

START_TEST(test_version_and_magic) {
  transcript t;
  gv_hs_result ri, rr;
  uint8_t out[GV_HS_MSG_MAX];
  gv_hs *r;
  size_t n;

  ck_assert_int_eq(run(&alice, &bob, NULL, &t, &ri, &rr), 0);
  t.m1[3] = 1; /* a version-1 node: its plaintexts carry no channel */
  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(r, t.m1, t.l1, out, &n), GV_EVERSION);
  gv_hs_free(r);
  t.m1[0] = 'X';
  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(r, t.m1, t.l1, out, &n), GV_EHANDSHAKE);
  gv_hs_free(r);
}
END_TEST

/* An all-zero (low-order) ephemeral makes crypto_kx fail. */
START_TEST(test_low_order_ephemeral) {
  uint8_t m1[GV_HS_M1_LEN] = {'G', 'V', 'H', 2}, out[GV_HS_MSG_MAX];
  gv_hs *r;
  size_t n;

  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_read(r, m1, sizeof(m1), out, &n), GV_EHANDSHAKE);
  gv_hs_free(r);
}
END_TEST

/* A reflected M2 (the initiator's own M1 sent back) and misuse of states. */
START_TEST(test_state_misuse) {
  uint8_t m1[GV_HS_MSG_MAX], out[GV_HS_MSG_MAX];
  gv_hs *i, *r;
  gv_hs_result res;
  size_t n;

  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, alice.pk), GV_EINVAL);
  ck_assert_int_eq(gv_hs_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(gv_hs_start(r, m1, &n), GV_ESTATE);
  gv_hs_free(r);

  ck_assert_int_eq(gv_hs_new(&i, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_hs_finish(i, &res), GV_ESTATE);
  ck_assert_int_eq(gv_hs_start(i, m1, &n), 0);
  ck_assert_int_eq(gv_hs_read(i, m1, n, out, &n), GV_EHANDSHAKE);
  /* Dead after a failure. */
  ck_assert_int_eq(gv_hs_read(i, m1, GV_HS_M2_LEN, out, &n), GV_ESTATE);
  gv_hs_free(i);
}
END_TEST

static Suite *hs_suite(void) {
  Suite *s = suite_create("handshake");
  TCase *tc = tcase_create("core");
  TCase *flip = tcase_create("flip");
  const int bits = 8 * (GV_HS_M1_LEN + GV_HS_M2_LEN + GV_HS_M3_LEN);

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_success_keys_match);
  tcase_add_test(tc, test_ids_hidden);
  tcase_add_test(tc, test_fresh_keys_each_time);
  tcase_add_test(tc, test_pin_match);
  tcase_add_test(tc, test_pin_mismatch);
  tcase_add_test(tc, test_replay_to_responder);
  tcase_add_test(tc, test_replay_to_initiator);
  tcase_add_test(tc, test_truncated_messages);
  tcase_add_test(tc, test_version_and_magic);
  tcase_add_test(tc, test_low_order_ephemeral);
  tcase_add_test(tc, test_state_misuse);
  suite_add_tcase(s, tc);
  /* Every bit of every byte; run without forking, it is 2,336 cases. */
  tcase_add_unchecked_fixture(flip, setup, NULL);
  tcase_set_timeout(flip, 120);
  tcase_add_loop_test(flip, test_flip_every_byte, 0, bits);
  suite_add_tcase(s, flip);
  return s;
}

int main(void) { return tu_run(hs_suite()); }

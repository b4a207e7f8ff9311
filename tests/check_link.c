/* The encrypted link: handshake through framing, streams, close, abuse. */
#include <malloc.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "link.h"
#include "testutil.h"

static gv_identity alice, bob;

static void setup(void) {
  tu_identity(&alice, 1);
  tu_identity(&bob, 2);
}

START_TEST(test_exchange_both_ways) {
  gv_link *a, *b;
  tu_inbox in_a = {0}, in_b = {0};

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_mem_eq(gv_link_peer_id(a), bob.pk, 32);
  ck_assert_mem_eq(gv_link_peer_id(b), alice.pk, 32);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"hello bob", 9), 0);
  ck_assert_int_eq(gv_link_send(b, (const uint8_t *)"hi alice", 8), 0);
  ck_assert_int_eq(tu_pump(a, b, 0, tu_inbox_cb, &in_b), 0);
  ck_assert_int_eq(tu_pump(b, a, 0, tu_inbox_cb, &in_a), 0);
  ck_assert_uint_eq(in_b.n, 1);
  ck_assert_mem_eq(in_b.last, "hello bob", 9);
  ck_assert_uint_eq(in_a.n, 1);
  ck_assert_mem_eq(in_a.last, "hi alice", 8);
  tu_inbox_free(&in_a);
  tu_inbox_free(&in_b);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* The whole conversation, handshake included, one byte per read. */
START_TEST(test_byte_at_a_time) {
  gv_link *a, *b;
  tu_inbox in = {0};

  ck_assert_int_eq(gv_link_new(&a, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_link_new(&b, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(tu_pump(a, b, 1, NULL, NULL), 0);
  ck_assert_int_eq(tu_pump(b, a, 1, NULL, NULL), 0);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"one", 3), 0);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"two", 3), 0);
  ck_assert_int_eq(tu_pump(a, b, 1, tu_inbox_cb, &in), 0);
  ck_assert_int_eq(tu_pump(b, a, 1, NULL, NULL), 0);
  ck_assert_uint_eq(in.n, 2);
  ck_assert_mem_eq(in.last, "two", 3);
  tu_inbox_free(&in);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* Many frames, of sizes up to the 1 MiB limit, coalesced into one read. */
START_TEST(test_coalesced_and_max_size) {
  gv_link *a, *b;
  tu_inbox in = {0};
  uint8_t *big = malloc(GV_FRAME_MAX_PAYLOAD);

  memset(big, 'x', GV_FRAME_MAX_PAYLOAD);
  tu_link_pair(&a, &b, &alice, &bob);
  for (int i = 0; i < 50; i++)
    ck_assert_int_eq(gv_link_send(a, big, (size_t)i + 1), 0);
  ck_assert_int_eq(gv_link_send(a, big, GV_FRAME_MAX_PAYLOAD), 0);
  ck_assert_int_eq(gv_link_send(a, big, GV_FRAME_MAX_PAYLOAD + 1), GV_ETOOBIG);
  ck_assert_int_eq(tu_pump(a, b, 0, tu_inbox_cb, &in), 0);
  ck_assert_uint_eq(in.n, 51);
  ck_assert_uint_eq(in.last_len, GV_FRAME_MAX_PAYLOAD);
  ck_assert_uint_eq(in.total, 50 * 51 / 2 + GV_FRAME_MAX_PAYLOAD);
  free(big);
  tu_inbox_free(&in);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

START_TEST(test_send_before_open) {
  gv_link *a, *r;
  const uint8_t *p = (const uint8_t *)"x";
  /* Found by fuzzing: a fresh responder has no output buffer at all. */
  ck_assert_int_eq(gv_link_new(&r, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_uint_eq(gv_link_out(r, &p), 0);
  ck_assert_ptr_null(p);
  gv_link_free(r);
  ck_assert_int_eq(gv_link_new(&a, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_ptr_null(gv_link_peer_id(a));
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"x", 1), GV_ESTATE);
  ck_assert_int_eq(gv_link_close(a, NULL, 0), GV_ESTATE);
  gv_link_free(a);
}
END_TEST

START_TEST(test_clean_close_and_truncation) {
  gv_link *a, *b;
  tu_inbox in = {0};

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_int_eq(gv_link_eof(b), GV_ETRUNCATED); /* no FINAL yet */
  ck_assert_int_eq(gv_link_close(a, (const uint8_t *)"bye", 3), 0);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"x", 1), GV_ESTATE);
  ck_assert_int_eq(tu_pump(a, b, 0, tu_inbox_cb, &in), 0);
  ck_assert(gv_link_peer_closed(b));
  ck_assert_int_eq(gv_link_eof(b), 0);
  ck_assert_mem_eq(in.last, "bye", 3);
  tu_inbox_free(&in);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* A frame cut in the middle: the stream ended without FINAL. */
START_TEST(test_truncated_mid_frame) {
  gv_link *a, *b;
  const uint8_t *p;
  size_t n;

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"hello", 5), 0);
  ck_assert_int_eq(gv_link_close(a, NULL, 0), 0);
  n = gv_link_out(a, &p);
  ck_assert_int_eq(gv_link_recv(b, p, n - 3, NULL, NULL), 0);
  ck_assert_int_eq(gv_link_eof(b), GV_ETRUNCATED);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

START_TEST(test_data_after_final) {
  gv_link *a, *b;
  uint8_t junk[8] = {0, 0, 0, 4, 1, 2, 3, 4};

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_int_eq(gv_link_close(a, NULL, 0), 0);
  ck_assert_int_eq(tu_pump(a, b, 0, NULL, NULL), 0);
  ck_assert_int_eq(gv_link_recv(b, junk, sizeof(junk), NULL, NULL), GV_EFRAME);
  ck_assert(gv_link_failed(b));
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* Every bit of an encrypted frame is authenticated. */
START_TEST(test_tampered_frame) {
  gv_link *a, *b;
  const uint8_t *p;
  uint8_t buf[64];
  size_t n;

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"payload", 7), 0);
  n = gv_link_out(a, &p);
  ck_assert_uint_lt(n, sizeof(buf));
  memcpy(buf, p, n);
  buf[GV_FRAME_HDR + (size_t)_i] ^= 0x10;
  ck_assert_int_eq(gv_link_recv(b, buf, n, NULL, NULL), GV_EDECRYPT);
  ck_assert_int_eq(gv_link_recv(b, buf, n, NULL, NULL), GV_ESTATE);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* The length prefix over the limit is refused from its 4 bytes alone. */
START_TEST(test_oversize_prefix) {
  gv_link *a, *b;
  uint8_t hdr[4];

  /* During the handshake the limit is 256 bytes. */
  ck_assert_int_eq(gv_link_new(&b, &bob, GV_HS_RESPONDER, NULL), 0);
  gv_frame_put_hdr(hdr, GV_FRAME_HS_MAX + 1);
  ck_assert_int_eq(gv_link_recv(b, hdr, 4, NULL, NULL), GV_ETOOBIG);
  gv_link_free(b);

  tu_link_pair(&a, &b, &alice, &bob);
  gv_frame_put_hdr(hdr, 0xffffffffu);
  ck_assert_int_eq(gv_link_recv(b, hdr, 4, NULL, NULL), GV_ETOOBIG);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

START_TEST(test_send_queue_bound) {
  gv_link *a, *b;
  uint8_t *big = calloc(1, GV_FRAME_MAX_PAYLOAD);
  int rc = 0, sent = 0;

  tu_link_pair(&a, &b, &alice, &bob);
  while (sent < 64 && (rc = gv_link_send(a, big, GV_FRAME_MAX_PAYLOAD)) == 0)
    sent++;
  ck_assert_int_eq(rc, GV_EBUSY);
  ck_assert_int_ge(sent, 7);
  /* Draining the queue makes room again. */
  ck_assert_int_eq(tu_pump(a, b, 0, NULL, NULL), 0);
  ck_assert_int_eq(gv_link_send(a, big, GV_FRAME_MAX_PAYLOAD), 0);
  free(big);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* The responder's first post-handshake frame must be its stream header. */
START_TEST(test_header_wrong_size) {
  gv_link *a, *b;
  uint8_t frame[4 + 10] = {0, 0, 0, 10};

  ck_assert_int_eq(gv_link_new(&a, &alice, GV_HS_INITIATOR, NULL), 0);
  ck_assert_int_eq(gv_link_new(&b, &bob, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(tu_pump(a, b, 0, NULL, NULL), 0);
  ck_assert_int_eq(tu_pump(b, a, 0, NULL, NULL), 0);
  ck_assert_ptr_nonnull(gv_link_peer_id(a));
  ck_assert_int_eq(gv_link_recv(a, frame, sizeof(frame), NULL, NULL),
                   GV_EHANDSHAKE);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* A large message one byte per read: rx_partial counts the bytes of the
 * frame in progress and drops to 0 when it completes. */
START_TEST(test_partial_byte_by_byte) {
  const size_t big = 100000;
  uint8_t *msg = malloc(big);
  gv_link *a, *b;
  tu_inbox in = {0};
  const uint8_t *p;
  size_t n;

  for (size_t i = 0; i < big; i++)
    msg[i] = (uint8_t)(i * 31 + 5);
  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_uint_eq(gv_link_rx_partial(b), 0);
  ck_assert_int_eq(gv_link_send(a, msg, big), 0);
  n = gv_link_out(a, &p);
  ck_assert_uint_eq(n, GV_FRAME_HDR + big + 17); /* 17: secretstream ABYTES */
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(gv_link_recv(b, p + i, 1, tu_inbox_cb, &in), 0);
    ck_assert_uint_eq(gv_link_rx_partial(b), i + 1 < n ? i + 1 : 0);
  }
  gv_link_out_consume(a, n);
  ck_assert_uint_eq(in.n, 1);
  ck_assert_uint_eq(in.last_len, big);
  ck_assert_mem_eq(in.last, msg, big);
  free(msg);
  tu_inbox_free(&in);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

/* A peer announces a 1 MiB frame and sends 10 bytes: the link holds a small
 * buffer, and reports the stalled frame. */
START_TEST(test_announced_length_not_allocated) {
  uint8_t bytes[GV_FRAME_HDR + 10] = {0};
  struct mallinfo2 before, after;
  gv_link *a, *b;

  tu_link_pair(&a, &b, &alice, &bob);
  gv_frame_put_hdr(bytes, GV_FRAME_MAX_PAYLOAD + 17);
  before = mallinfo2();
  ck_assert_int_eq(gv_link_recv(b, bytes, sizeof(bytes), NULL, NULL), 0);
  after = mallinfo2();
  /* glibc's count of heap and mmap'd bytes in use (ASan's allocator
   * leaves it unchanged). */
  ck_assert_uint_lt(
      after.uordblks + after.hblkhd - (before.uordblks + before.hblkhd), 4096);
  ck_assert_uint_eq(gv_link_rx_partial(b), sizeof(bytes));
  ck_assert(!gv_link_failed(b));
  ck_assert_int_eq(gv_link_eof(b), GV_ETRUNCATED);
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

static int fail_cb(void *ctx, const uint8_t *msg, size_t len) {
  (void)ctx;
  (void)msg;
  (void)len;
  return GV_EFIELD;
}

START_TEST(test_callback_error_propagates) {
  gv_link *a, *b;

  tu_link_pair(&a, &b, &alice, &bob);
  ck_assert_int_eq(gv_link_send(a, (const uint8_t *)"x", 1), 0);
  ck_assert_int_eq(tu_pump(a, b, 0, fail_cb, NULL), GV_EFIELD);
  ck_assert(gv_link_failed(b));
  gv_link_free(a);
  gv_link_free(b);
}
END_TEST

static Suite *link_suite(void) {
  Suite *s = suite_create("link");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_exchange_both_ways);
  tcase_add_test(tc, test_byte_at_a_time);
  tcase_add_test(tc, test_coalesced_and_max_size);
  tcase_add_test(tc, test_send_before_open);
  tcase_add_test(tc, test_clean_close_and_truncation);
  tcase_add_test(tc, test_truncated_mid_frame);
  tcase_add_test(tc, test_data_after_final);
  tcase_add_loop_test(tc, test_tampered_frame, 0, 7 + 17);
  tcase_add_test(tc, test_oversize_prefix);
  tcase_add_test(tc, test_send_queue_bound);
  tcase_add_test(tc, test_header_wrong_size);
  tcase_add_test(tc, test_callback_error_propagates);
  tcase_add_test(tc, test_partial_byte_by_byte);
  tcase_add_test(tc, test_announced_length_not_allocated);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(link_suite()); }

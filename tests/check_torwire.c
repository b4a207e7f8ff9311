/* The torrent tunnel's wire format (PROTOCOL.md §5.3; proto/torwire.h). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "torwire.h"

static uint8_t dst[GV_ID_BYTES], src[GV_ID_BYTES], ih[GV_TW_IH_BYTES];
static uint8_t payload[GV_TW_DATA_MAX + 1];
static uint8_t buf[GV_TW_MSG_MAX + 16];

static void setup(void) {
  memset(dst, 0xaa, sizeof dst);
  memset(src, 0xbb, sizeof src);
  memset(ih, 0xcc, sizeof ih);
  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)(i * 7 + 1);
}

/* Encodes m, checks the size, decodes it back and returns the length. */
static size_t roundtrip(const gv_tw_msg *m, gv_tw_msg *back) {
  gv_why why = {{0}};
  size_t len = 0;

  ck_assert_int_eq(gv_tw_encode(m, buf, sizeof buf, &len, &why), 0);
  ck_assert_uint_eq(len, gv_tw_size(m));
  ck_assert_int_eq(gv_tw_decode(buf, len, back, &why), 0);
  ck_assert_uint_eq(back->kind, m->kind);
  ck_assert_uint_eq(back->sid, m->sid);
  return len;
}

START_TEST(test_open) {
  gv_tw_msg m = {.kind = GV_TW_OPEN, .sid = 0x01020304, .hops = 1};
  gv_tw_msg b;
  size_t len;

  m.dst = dst;
  m.src = src;
  m.ih = ih;
  len = roundtrip(&m, &b);
  ck_assert_uint_eq(len, GV_TW_OPEN_LEN);
  /* The layout, byte by byte. */
  ck_assert_uint_eq(buf[0], 0x01);
  ck_assert_uint_eq(buf[1], 0x01);
  ck_assert_uint_eq(buf[4], 0x04);
  ck_assert_uint_eq(buf[5], 1);
  ck_assert_uint_eq(buf[6], 0xaa);
  ck_assert_uint_eq(buf[38], 0xbb);
  ck_assert_uint_eq(buf[70], 0xcc);
  ck_assert_uint_eq(b.hops, 1);
  ck_assert(b.dst == buf + 6 && b.src == buf + 38 && b.ih == buf + 70);
  ck_assert_int_eq(memcmp(b.dst, dst, GV_ID_BYTES), 0);
  ck_assert_int_eq(memcmp(b.src, src, GV_ID_BYTES), 0);
  ck_assert_int_eq(memcmp(b.ih, ih, GV_TW_IH_BYTES), 0);
}
END_TEST

START_TEST(test_data) {
  gv_tw_msg m = {.kind = GV_TW_DATA, .sid = 7, .data = payload};
  gv_tw_msg b;
  size_t sizes[] = {1, 2, 1000, GV_TW_DATA_MAX};

  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    m.len = sizes[i];
    ck_assert_uint_eq(roundtrip(&m, &b), GV_TW_DATA_HDR + sizes[i]);
    ck_assert_uint_eq(b.len, sizes[i]);
    ck_assert(b.data == buf + GV_TW_DATA_HDR);
    ck_assert_int_eq(memcmp(b.data, payload, sizes[i]), 0);
  }
}
END_TEST

START_TEST(test_credit_close) {
  gv_tw_msg m = {.kind = GV_TW_CREDIT, .sid = 0xffffffffu, .n = 1};
  gv_tw_msg b;

  ck_assert_uint_eq(roundtrip(&m, &b), GV_TW_CREDIT_LEN);
  ck_assert_uint_eq(b.n, 1);
  m.n = GV_TW_CREDIT_MAX;
  roundtrip(&m, &b);
  ck_assert_uint_eq(b.n, GV_TW_CREDIT_MAX);
  ck_assert_uint_eq(buf[5], 0x80);
  for (unsigned r = 0; r < GV__TW_CLOSE_COUNT; r++) {
    gv_tw_msg c = {.kind = GV_TW_CLOSE, .sid = 2, .reason = (uint8_t)r};
    ck_assert_uint_eq(roundtrip(&c, &b), GV_TW_CLOSE_LEN);
    ck_assert_uint_eq(b.reason, r);
    ck_assert_ptr_nonnull(gv_tw_close_name(r));
  }
  ck_assert_str_eq(gv_tw_close_name(GV_TW_CLOSE_UNREACHABLE), "unreachable");
  ck_assert_ptr_null(gv_tw_close_name(GV__TW_CLOSE_COUNT));
  ck_assert_str_eq(gv_tw_kind_name(GV_TW_CREDIT), "CREDIT");
  ck_assert_ptr_null(gv_tw_kind_name(0));
}
END_TEST

/* A decode that must fail with code and a reason. */
static void refused(const uint8_t *b, size_t len, int code) {
  gv_tw_msg m;
  gv_why why = {{0}};

  ck_assert_int_eq(gv_tw_decode(b, len, &m, &why), code);
  ck_assert_msg(why.text[0] != '\0', "no reason for code %d", code);
}

START_TEST(test_decode_refusals) {
  uint8_t b[GV_TW_MSG_MAX + 2] = {0};
  gv_tw_msg m = {
      .kind = GV_TW_OPEN, .sid = 3, .dst = dst, .src = src, .ih = ih};
  size_t len = 0;

  refused(b, 0, GV_ETYPE);
  b[0] = 0x00;
  refused(b, 6, GV_ETYPE);
  b[0] = 0x05;
  refused(b, 6, GV_ETYPE);
  /* OPEN: exact length, sid, hops. */
  ck_assert_int_eq(gv_tw_encode(&m, b, sizeof b, &len, NULL), 0);
  refused(b, GV_TW_OPEN_LEN - 1, GV_EFRAME);
  refused(b, GV_TW_OPEN_LEN + 1, GV_EFRAME);
  refused(b, 1, GV_EFRAME);
  b[5] = GV_TW_HOPS_MAX; /* two relays passed: still an OPEN */
  ck_assert_int_eq(gv_tw_decode(b, GV_TW_OPEN_LEN, &m, NULL), 0);
  ck_assert_uint_eq(m.hops, 2);
  b[5] = GV_TW_HOPS_MAX + 1;
  refused(b, GV_TW_OPEN_LEN, GV_ERANGE);
  b[5] = 0;
  memset(b + 1, 0, 4);
  refused(b, GV_TW_OPEN_LEN, GV_EFIELD);
  /* DATA: 1..65536 payload bytes, sid not 0. */
  memset(b, 0, sizeof b);
  b[0] = GV_TW_DATA;
  b[4] = 1;
  refused(b, GV_TW_DATA_HDR, GV_EFRAME);
  refused(b, 3, GV_EFRAME);
  refused(b, GV_TW_MSG_MAX + 1, GV_ETOOBIG);
  b[4] = 0;
  refused(b, GV_TW_DATA_HDR + 1, GV_EFIELD);
  /* CREDIT: 9 bytes, n in 1..2^31. */
  memset(b, 0, 16);
  b[0] = GV_TW_CREDIT;
  b[4] = 1;
  refused(b, GV_TW_CREDIT_LEN, GV_ERANGE); /* n 0 */
  b[5] = 0x80;
  b[8] = 1;
  refused(b, GV_TW_CREDIT_LEN, GV_ERANGE); /* 2^31 + 1 */
  b[8] = 0;
  refused(b, GV_TW_CREDIT_LEN + 1, GV_EFRAME);
  refused(b, GV_TW_CREDIT_LEN - 1, GV_EFRAME);
  /* CLOSE: 6 bytes, a known reason. */
  memset(b, 0, 16);
  b[0] = GV_TW_CLOSE;
  b[4] = 1;
  b[5] = GV__TW_CLOSE_COUNT;
  refused(b, GV_TW_CLOSE_LEN, GV_ERANGE);
  b[5] = 0;
  refused(b, GV_TW_CLOSE_LEN + 1, GV_EFRAME);
  refused(b, GV_TW_CLOSE_LEN - 1, GV_EFRAME);
}
END_TEST

/* An encode that must fail with code and a reason. */
static void enc_refused(const gv_tw_msg *m, size_t cap, int code) {
  gv_why why = {{0}};
  size_t len = 0;

  ck_assert_int_eq(gv_tw_encode(m, buf, cap, &len, &why), code);
  ck_assert_msg(why.text[0] != '\0', "no reason for code %d", code);
}

START_TEST(test_encode_refusals) {
  gv_tw_msg m = {
      .kind = GV_TW_OPEN, .sid = 1, .dst = dst, .src = src, .ih = ih};

  enc_refused(&m, GV_TW_OPEN_LEN - 1, GV_ETOOBIG);
  m.hops = 3;
  enc_refused(&m, sizeof buf, GV_ERANGE);
  m.hops = 0;
  m.sid = 0;
  enc_refused(&m, sizeof buf, GV_EFIELD);
  m.sid = 1;
  m.ih = NULL;
  enc_refused(&m, sizeof buf, GV_EINVAL);
  m = (gv_tw_msg){.kind = GV_TW_DATA, .sid = 1, .data = payload};
  enc_refused(&m, sizeof buf, GV_EFRAME); /* len 0 */
  ck_assert_uint_eq(gv_tw_size(&m), 0);
  m.len = GV_TW_DATA_MAX + 1;
  enc_refused(&m, sizeof buf, GV_ETOOBIG);
  ck_assert_uint_eq(gv_tw_size(&m), 0);
  m.len = 10;
  m.data = NULL;
  enc_refused(&m, sizeof buf, GV_EINVAL);
  m = (gv_tw_msg){.kind = GV_TW_CREDIT, .sid = 1, .n = 0};
  enc_refused(&m, sizeof buf, GV_ERANGE);
  m.n = GV_TW_CREDIT_MAX + 1;
  enc_refused(&m, sizeof buf, GV_ERANGE);
  m = (gv_tw_msg){.kind = GV_TW_CLOSE, .sid = 1, .reason = 6};
  enc_refused(&m, sizeof buf, GV_ERANGE);
  m = (gv_tw_msg){.kind = 9, .sid = 1};
  enc_refused(&m, sizeof buf, GV_ETYPE);
  ck_assert_uint_eq(gv_tw_size(&m), 0);
}
END_TEST

static Suite *torwire_suite(void) {
  Suite *s = suite_create("torwire");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_open);
  tcase_add_test(tc, test_data);
  tcase_add_test(tc, test_credit_close);
  tcase_add_test(tc, test_decode_refusals);
  tcase_add_test(tc, test_encode_refusals);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(torwire_suite()); }

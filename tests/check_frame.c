/* Length-prefixed framing (PROTOCOL.md §3). */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "testutil.h"

/* Encodes n frames of sizes 1..n, body byte = frame index. */
static uint8_t *make_stream(int n, size_t *len) {
  size_t total = 0, off = 0;
  uint8_t *s;

  for (int i = 1; i <= n; i++)
    total += GV_FRAME_HDR + (size_t)i;
  s = malloc(total);
  for (int i = 1; i <= n; i++) {
    gv_frame_put_hdr(s + off, (uint32_t)i);
    memset(s + off + GV_FRAME_HDR, i, (size_t)i);
    off += GV_FRAME_HDR + (size_t)i;
  }
  *len = total;
  return s;
}

/* Feeds s in pieces of `chunk` bytes (0: whole); checks every frame. */
static int decode_all(const uint8_t *s, size_t len, size_t chunk) {
  gv_frame_dec d;
  int frames = 0;
  size_t off = 0;

  gv_frame_dec_init(&d, 1024);
  while (off < len) {
    size_t piece = chunk == 0 || chunk > len - off ? len - off : chunk;
    const uint8_t *p = s + off;
    off += piece;
    while (piece > 0) {
      const uint8_t *f;
      size_t used, flen;
      int rc = gv_frame_dec_feed(&d, p, piece, &used, &f, &flen);
      ck_assert_int_ge(rc, 0);
      ck_assert_uint_le(used, piece);
      p += used;
      piece -= used;
      if (rc == 1) {
        frames++;
        ck_assert_uint_eq(flen, (size_t)frames);
        for (size_t k = 0; k < flen; k++)
          ck_assert_uint_eq(f[k], (unsigned)frames);
      }
    }
  }
  ck_assert(gv_frame_dec_idle(&d));
  gv_frame_dec_free(&d);
  return frames;
}

START_TEST(test_coalesced) {
  size_t len;
  uint8_t *s = make_stream(40, &len);
  ck_assert_int_eq(decode_all(s, len, 0), 40);
  free(s);
}
END_TEST

START_TEST(test_split_every_size) {
  size_t len;
  uint8_t *s = make_stream(20, &len);
  /* _i is the read size: 1 (byte at a time) up to 32. */
  ck_assert_int_eq(decode_all(s, len, (size_t)_i), 20);
  free(s);
}
END_TEST

START_TEST(test_oversize_prefix_no_alloc) {
  gv_frame_dec d;
  uint8_t hdr[4];
  const uint8_t *f;
  size_t used, flen;

  gv_frame_dec_init(&d, 1024);
  gv_frame_put_hdr(hdr, 1025);
  /* Two bytes: not yet decidable. */
  ck_assert_int_eq(gv_frame_dec_feed(&d, hdr, 2, &used, &f, &flen), 0);
  ck_assert_int_eq(gv_frame_dec_feed(&d, hdr + 2, 2, &used, &f, &flen),
                   GV_ETOOBIG);
  ck_assert_ptr_null(d.buf);
  gv_frame_dec_free(&d);
}
END_TEST

START_TEST(test_exact_limit) {
  gv_frame_dec d;
  uint8_t s[4 + 64];
  const uint8_t *f;
  size_t used, flen;

  gv_frame_dec_init(&d, 64);
  gv_frame_put_hdr(s, 64);
  memset(s + 4, 7, 64);
  ck_assert_int_eq(gv_frame_dec_feed(&d, s, sizeof(s), &used, &f, &flen), 1);
  ck_assert_uint_eq(flen, 64);
  ck_assert_uint_eq(used, sizeof(s));
  gv_frame_dec_free(&d);
}
END_TEST

START_TEST(test_zero_length) {
  gv_frame_dec d;
  uint8_t hdr[4] = {0, 0, 0, 0};
  const uint8_t *f;
  size_t used, flen;

  gv_frame_dec_init(&d, 64);
  ck_assert_int_eq(gv_frame_dec_feed(&d, hdr, 4, &used, &f, &flen), GV_EFRAME);
  gv_frame_dec_free(&d);
}
END_TEST

START_TEST(test_prefix_big_endian) {
  uint8_t hdr[4];
  gv_frame_put_hdr(hdr, 0x01020304u);
  ck_assert_uint_eq(hdr[0], 1);
  ck_assert_uint_eq(hdr[3], 4);
}
END_TEST

/* A large frame's buffer is kept until the next small frame, then
 * released: memory stays bounded by one frame, without churn per frame. */
START_TEST(test_large_buffer_released) {
  const size_t big = 200000;
  uint8_t *s = calloc(1, 4 + big), small[4 + 8] = {0, 0, 0, 8};
  const uint8_t *f;
  size_t used, flen;
  gv_frame_dec d;

  gv_frame_dec_init(&d, 1 << 20);
  gv_frame_put_hdr(s, (uint32_t)big);
  /* Split, so the body is buffered rather than passed through. */
  ck_assert_int_eq(gv_frame_dec_feed(&d, s, 10, &used, &f, &flen), 0);
  ck_assert_int_eq(
      gv_frame_dec_feed(&d, s + 10, 4 + big - 10, &used, &f, &flen), 1);
  ck_assert_uint_ge(d.cap, big);
  ck_assert_int_eq(gv_frame_dec_feed(&d, small, 6, &used, &f, &flen), 0);
  ck_assert_int_eq(gv_frame_dec_feed(&d, small + 6, 6, &used, &f, &flen), 1);
  ck_assert_uint_eq(flen, 8);
  ck_assert_uint_lt(d.cap, big);
  /* ...also when the small frame arrives whole (found by fuzzing). */
  ck_assert_int_eq(gv_frame_dec_feed(&d, s, 10, &used, &f, &flen), 0);
  ck_assert_int_eq(
      gv_frame_dec_feed(&d, s + 10, 4 + big - 10, &used, &f, &flen), 1);
  ck_assert_uint_ge(d.cap, big);
  ck_assert_int_eq(gv_frame_dec_feed(&d, small, 12, &used, &f, &flen), 1);
  ck_assert_uint_eq(d.cap, 0);
  gv_frame_dec_free(&d);
  free(s);
}
END_TEST

/* A 1 MiB length prefix and 10 bytes of body hold a small buffer: memory
 * follows the bytes received, not the length announced. */
START_TEST(test_buffer_grows_with_bytes) {
  const size_t big = GV_FRAME_MAX_PAYLOAD;
  uint8_t *s = malloc(4 + big);
  const uint8_t *f;
  size_t used, flen, off;
  gv_frame_dec d;

  for (size_t i = 0; i < big; i++)
    s[4 + i] = (uint8_t)(i * 7);
  gv_frame_dec_init(&d, big);
  gv_frame_put_hdr(s, (uint32_t)big);
  ck_assert_uint_eq(gv_frame_dec_partial(&d), 0);
  ck_assert_int_eq(gv_frame_dec_feed(&d, s, 4, &used, &f, &flen), 0);
  ck_assert_ptr_null(d.buf); /* the prefix alone allocates nothing */
  ck_assert_uint_eq(gv_frame_dec_partial(&d), 4);
  ck_assert_int_eq(gv_frame_dec_feed(&d, s + 4, 10, &used, &f, &flen), 0);
  ck_assert_uint_eq(used, 10);
  ck_assert_uint_le(d.cap, 1024);
  ck_assert_uint_eq(gv_frame_dec_partial(&d), 14);
  /* The rest in 64 KiB reads: the buffer never exceeds twice what came. */
  for (off = 14; off < 4 + big; off += used) {
    size_t n = 4 + big - off < 65536 ? 4 + big - off : 65536;
    int rc = gv_frame_dec_feed(&d, s + off, n, &used, &f, &flen);
    ck_assert_int_ge(rc, 0);
    ck_assert_uint_eq(used, n);
    ck_assert_uint_le(d.cap, 2 * (off + used - 4));
    ck_assert_uint_eq(rc, off + used == 4 + big);
    if (rc == 1) {
      ck_assert_uint_eq(flen, big);
      ck_assert_mem_eq(f, s + 4, big);
    } else {
      ck_assert_uint_eq(gv_frame_dec_partial(&d), off + used);
    }
  }
  ck_assert_uint_eq(gv_frame_dec_partial(&d), 0);
  ck_assert(gv_frame_dec_idle(&d));
  gv_frame_dec_free(&d);
  free(s);
}
END_TEST

/* A large frame byte by byte: every byte counted, the body intact. */
START_TEST(test_large_frame_byte_by_byte) {
  const size_t big = 100000;
  uint8_t *s = malloc(4 + big);
  const uint8_t *f = NULL;
  size_t used, flen = 0;
  int rc = 0;
  gv_frame_dec d;

  for (size_t i = 0; i < big; i++)
    s[4 + i] = (uint8_t)(i * 13 + 1);
  gv_frame_put_hdr(s, (uint32_t)big);
  gv_frame_dec_init(&d, 1 << 20);
  for (size_t off = 0; off < 4 + big; off++) {
    rc = gv_frame_dec_feed(&d, s + off, 1, &used, &f, &flen);
    ck_assert_uint_eq(used, 1);
    ck_assert_int_eq(rc, off + 1 == 4 + big);
    if (rc == 0)
      ck_assert_uint_eq(gv_frame_dec_partial(&d), off + 1);
  }
  ck_assert_uint_eq(flen, big);
  ck_assert_mem_eq(f, s + 4, big);
  ck_assert_uint_eq(d.cap, big);
  ck_assert_uint_eq(gv_frame_dec_partial(&d), 0);
  gv_frame_dec_free(&d);
  free(s);
}
END_TEST

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_coalesced);
  tcase_add_loop_test(tc, test_split_every_size, 1, 33);
  tcase_add_test(tc, test_oversize_prefix_no_alloc);
  tcase_add_test(tc, test_exact_limit);
  tcase_add_test(tc, test_zero_length);
  tcase_add_test(tc, test_prefix_big_endian);
  tcase_add_test(tc, test_large_buffer_released);
  tcase_add_test(tc, test_buffer_grows_with_bytes);
  tcase_add_test(tc, test_large_frame_byte_by_byte);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(frame_suite()); }

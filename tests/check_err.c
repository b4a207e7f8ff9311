/* The error table. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "testutil.h"

START_TEST(test_codes_distinct_and_named) {
  static const int codes[] = {
#define XX(name, msg) GV_E##name,
      GV_ERRNO_MAP(XX)
#undef XX
  };
  size_t n = sizeof(codes) / sizeof(codes[0]);

  ck_assert_uint_eq(n, GV__ERR_COUNT);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_lt(codes[i], -GV__ERR_FIRST);
    ck_assert_ptr_eq(strstr(gv_err_name(codes[i]), "GV_E"),
                     gv_err_name(codes[i]));
    ck_assert_str_ne(gv_strerror(codes[i]), "unknown error");
    for (size_t j = 0; j < i; j++)
      ck_assert_int_ne(codes[i], codes[j]);
  }
  ck_assert_str_eq(gv_err_name(GV_EBADSIG), "GV_EBADSIG");
  ck_assert_str_eq(gv_strerror(GV_EBADSIG), "bad signature");
}
END_TEST

START_TEST(test_errno_passthrough) {
  ck_assert_str_eq(gv_strerror(-ENOENT), strerror(ENOENT));
  ck_assert_str_eq(gv_err_name(-ENOENT), "ENOENT");
  ck_assert_str_eq(gv_strerror(-5000), "unknown error");
  ck_assert_str_eq(gv_strerror(1), "unknown error");
}
END_TEST

/* Every errno the C library can describe has its symbolic name, never
 * EUNKNOWN; and each name is the one for that number. */
START_TEST(test_every_errno_named) {
  ck_assert_str_eq(gv_err_name(-ECONNREFUSED), "ECONNREFUSED");
  ck_assert_str_eq(gv_err_name(-EADDRINUSE), "EADDRINUSE");
  ck_assert_str_eq(gv_err_name(-EPIPE), "EPIPE");
  ck_assert_str_eq(gv_err_name(-ENETUNREACH), "ENETUNREACH");
  ck_assert_str_eq(gv_err_name(-EWOULDBLOCK), "EAGAIN");
  for (int e = 1; e < 134; e++) {
    char unknown[64];
    snprintf(unknown, sizeof(unknown), "Unknown error %d", e);
    if (strcmp(strerror(e), unknown) == 0)
      continue; /* a hole in the numbering (41, 58 on Linux) */
    ck_assert_msg(strcmp(gv_err_name(-e), "EUNKNOWN") != 0,
                  "errno %d (%s) has no name", e, strerror(e));
    ck_assert_int_eq(gv_err_name(-e)[0], 'E');
  }
  ck_assert_str_eq(gv_err_name(-999), "EUNKNOWN");
}
END_TEST

START_TEST(test_fail_formats) {
  gv_why why;
  ck_assert_int_eq(gv_fail(&why, GV_ETTL, "ttl %u exceeds %u", 40u, 32u),
                   GV_ETTL);
  ck_assert_str_eq(why.text, "ttl 40 exceeds 32");
  ck_assert_int_eq(gv_fail(NULL, GV_ETTL, "ignored"), GV_ETTL);
}
END_TEST

static Suite *err_suite(void) {
  Suite *s = suite_create("err");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_codes_distinct_and_named);
  tcase_add_test(tc, test_errno_passthrough);
  tcase_add_test(tc, test_every_errno_named);
  tcase_add_test(tc, test_fail_formats);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(err_suite()); }

/* The pool of shared strings, against a brute-force model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "rng.h"
#include "testutil.h"

static const uint8_t KEY[GV_INTERN_KEY_BYTES] = "0123456789abcdef";

/* Equal contents share one copy, NUL-terminated, until the last drop. */
START_TEST(test_shared) {
  gv_intern *p;
  const char *a, *b, *c;

  ck_assert_int_eq(gv_intern_new(&p, KEY), 0);
  a = gv_intern_get(p, "{\"seq\":1}xyz", 9);
  b = gv_intern_get(p, "{\"seq\":1}", 9);
  c = gv_intern_get(p, "{\"seq\":2}", 9);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_eq(a, b);
  ck_assert_ptr_ne(a, c);
  ck_assert_str_eq(a, "{\"seq\":1}");
  ck_assert_str_eq(c, "{\"seq\":2}");
  ck_assert_uint_eq(gv_intern_count(p), 2);
  gv_intern_drop(p, a);
  ck_assert_uint_eq(gv_intern_count(p), 2); /* b still holds it */
  ck_assert_str_eq(b, "{\"seq\":1}");
  gv_intern_drop(p, b);
  ck_assert_uint_eq(gv_intern_count(p), 1);
  gv_intern_drop(p, NULL);
  /* A prefix, embedded NULs and the empty string are distinct. */
  a = gv_intern_get(p, "{\"seq\":2", 8);
  b = gv_intern_get(p, "a\0b", 3);
  ck_assert_ptr_ne(b, gv_intern_get(p, "a\0c", 3));
  ck_assert_ptr_ne(a, c);
  ck_assert_int_eq(memcmp(b, "a\0b", 4), 0);
  ck_assert_str_eq(gv_intern_get(p, "", 0), "");
  ck_assert_uint_eq(gv_intern_count(p), 5);
  gv_intern_free(p); /* frees what is still held */
}
END_TEST

/* Random gets and drops, checked against counts kept by hand: every live
 * string is found again (same pointer), every dropped one gone. */
START_TEST(test_against_model) {
  enum { STRS = 400, STEPS = 20000 };
  static char text[STRS][24];
  static const char *ptr[STRS];
  static unsigned refs[STRS];
  gv_intern *p;
  gv_rng r;

  gv_rng_seed(&r, (uint64_t)_i + 1);
  ck_assert_int_eq(gv_intern_new(&p, KEY), 0);
  memset(refs, 0, sizeof(refs));
  for (int k = 0; k < STRS; k++)
    snprintf(text[k], sizeof(text[k]), "record-%d", k);
  for (int s = 0; s < STEPS; s++) {
    int k = (int)gv_rng_below(&r, STRS);
    if (refs[k] > 0 && gv_rng_below(&r, 2) == 0) {
      gv_intern_drop(p, ptr[k]);
      refs[k]--;
    } else {
      const char *q = gv_intern_get(p, text[k], strlen(text[k]));
      ck_assert_ptr_nonnull(q);
      ck_assert_str_eq(q, text[k]);
      if (refs[k] > 0)
        ck_assert_ptr_eq(q, ptr[k]);
      ptr[k] = q;
      refs[k]++;
    }
    if (s % 97 == 0) {
      size_t n = 0;
      for (int j = 0; j < STRS; j++)
        n += refs[j] > 0;
      ck_assert_uint_eq(gv_intern_count(p), n);
    }
  }
  for (int k = 0; k < STRS; k++)
    while (refs[k] > 0) {
      gv_intern_drop(p, ptr[k]);
      refs[k]--;
    }
  ck_assert_uint_eq(gv_intern_count(p), 0);
  gv_intern_free(p);
}
END_TEST

static Suite *intern_suite(void) {
  Suite *s = suite_create("intern");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_shared);
  tcase_add_loop_test(tc, test_against_model, 0, 4);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(intern_suite()); }

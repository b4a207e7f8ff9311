/* The id-keyed hash map, against a brute-force model. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "rng.h"
#include "testutil.h"

/* Random inserts and deletes, many colliding in their low hash bits, checked
 * against a plain array after every step. */
START_TEST(test_against_model) {
  enum { KEYS = 300, STEPS = 20000 };
  static uint8_t keys[KEYS][32];
  static int present[KEYS];
  gv_idmap m;
  gv_rng r;

  gv_rng_seed(&r, (uint64_t)_i + 1);
  gv_idmap_init(&m, (const uint8_t *)"0123456789abcdef");
  memset(present, 0, sizeof(present));
  for (int k = 0; k < KEYS; k++) {
    for (int b = 0; b < 32; b++)
      keys[k][b] = (uint8_t)gv_rng_next(&r);
    memset(keys[k], 0, 8); /* equal first bytes: the old, unkeyed hash's
                              worst case; the keyed one must not care */
  }
  for (int s = 0; s < STEPS; s++) {
    int k = (int)gv_rng_below(&r, KEYS);
    if (gv_rng_below(&r, 3) == 0) {
      void *v = gv_idmap_del(&m, keys[k]);
      ck_assert_ptr_eq(v, present[k] ? (void *)&present[k] : NULL);
      present[k] = 0;
    } else {
      ck_assert_int_eq(gv_idmap_put(&m, keys[k], &present[k]), 0);
      present[k] = 1;
    }
    if (s % 97 == 0) {
      size_t n = 0;
      for (int j = 0; j < KEYS; j++) {
        ck_assert_ptr_eq(gv_idmap_get(&m, keys[j]),
                         present[j] ? (void *)&present[j] : NULL);
        n += (size_t)present[j];
      }
      ck_assert_uint_eq(m.len, n);
    }
  }
  gv_idmap_free(&m);
}
END_TEST

START_TEST(test_empty) {
  gv_idmap m;
  uint8_t k[32] = {1};
  gv_idmap_init(&m, (const uint8_t *)"0123456789abcdef");
  ck_assert_ptr_null(gv_idmap_get(&m, k));
  ck_assert_ptr_null(gv_idmap_del(&m, k));
  gv_idmap_free(&m);
}
END_TEST

/* gv_idtab: objects holding their own id (at an offset), against the same
 * model; an object found is the very one put. */
typedef struct obj {
  int tag;
  uint8_t id[32];
} obj;

START_TEST(test_idtab_against_model) {
  enum { KEYS = 300, STEPS = 20000 };
  static obj objs[KEYS];
  static int present[KEYS];
  gv_idtab t;
  gv_rng r;

  gv_rng_seed(&r, (uint64_t)_i + 1);
  gv_idtab_init(&t, (const uint8_t *)"0123456789abcdef", offsetof(obj, id));
  memset(present, 0, sizeof(present));
  for (int k = 0; k < KEYS; k++) {
    objs[k].tag = k;
    for (int b = 0; b < 32; b++)
      objs[k].id[b] = (uint8_t)gv_rng_next(&r);
    memset(objs[k].id, 0, 8);
  }
  for (int s = 0; s < STEPS; s++) {
    int k = (int)gv_rng_below(&r, KEYS);
    if (gv_rng_below(&r, 3) == 0) {
      void *v = gv_idtab_del(&t, objs[k].id);
      ck_assert_ptr_eq(v, present[k] ? (void *)&objs[k] : NULL);
      present[k] = 0;
    } else {
      ck_assert_int_eq(gv_idtab_put(&t, &objs[k]), 0);
      present[k] = 1;
    }
    if (s % 97 == 0) {
      size_t n = 0;
      for (int j = 0; j < KEYS; j++) {
        ck_assert_ptr_eq(gv_idtab_get(&t, objs[j].id),
                         present[j] ? (void *)&objs[j] : NULL);
        n += (size_t)present[j];
      }
      ck_assert_uint_eq(t.len, n);
    }
  }
  gv_idtab_free(&t);
  ck_assert_ptr_null(gv_idtab_get(&t, objs[0].id));
  ck_assert_ptr_null(gv_idtab_del(&t, objs[0].id));
}
END_TEST

static Suite *idmap_suite(void) {
  Suite *s = suite_create("idmap");
  TCase *tc = tcase_create("core");
  tcase_add_loop_test(tc, test_against_model, 0, 4);
  tcase_add_test(tc, test_empty);
  tcase_add_loop_test(tc, test_idtab_against_model, 0, 4);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(idmap_suite()); }

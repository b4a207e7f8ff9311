#include "testutil.h"

#include <stdlib.h>
#include <string.h>

void tu_identity(gv_identity *id, uint8_t b) {
  uint8_t seed[32];
  memset(seed, b, sizeof(seed));
  ck_assert_int_eq(gv_id_from_seed(id, seed), 0);
}

int tu_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

int tu_pump(gv_link *from, gv_link *to, size_t chunk, gv_link_msg_cb cb,
            void *ctx) {
  const uint8_t *p;
  size_t n = gv_link_out(from, &p);
  uint8_t *copy = n ? malloc(n) : NULL;
  size_t off = 0;
  int rc = 0;

  if (n == 0)
    return 0;
  memcpy(copy, p, n);
  gv_link_out_consume(from, n);
  while (off < n && rc == 0) {
    size_t take = chunk == 0 || chunk > n - off ? n - off : chunk;
    rc = gv_link_recv(to, copy + off, take, cb, ctx);
    off += take;
  }
  free(copy);
  return rc;
}

int tu_inbox_cb(void *ctx, const uint8_t *msg, size_t len) {
  tu_inbox *in = ctx;
  free(in->last);
  in->last = malloc(len);
  memcpy(in->last, msg, len);
  in->last_len = len;
  in->n++;
  in->total += len;
  return 0;
}

void tu_inbox_free(tu_inbox *in) {
  free(in->last);
  memset(in, 0, sizeof(*in));
}

void tu_link_pair(gv_link **ini, gv_link **res, const gv_identity *a,
                  const gv_identity *b) {
  ck_assert_int_eq(gv_link_new(ini, a, GV_HS_INITIATOR, b->pk), 0);
  ck_assert_int_eq(gv_link_new(res, b, GV_HS_RESPONDER, NULL), 0);
  ck_assert_int_eq(tu_pump(*ini, *res, 0, NULL, NULL), 0); /* M1 */
  ck_assert_int_eq(tu_pump(*res, *ini, 0, NULL, NULL), 0); /* M2 */
  ck_assert_int_eq(tu_pump(*ini, *res, 0, NULL, NULL), 0); /* M3 + hdr */
  ck_assert_int_eq(tu_pump(*res, *ini, 0, NULL, NULL), 0); /* hdr */
  ck_assert_ptr_nonnull(gv_link_peer_id(*ini));
  ck_assert_ptr_nonnull(gv_link_peer_id(*res));
}

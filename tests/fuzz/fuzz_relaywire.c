/* libFuzzer target: the relay's wire format (RELAY.md §6,
 * proto/relaywire.h).
 *
 * Input layout, by the first byte:
 *   0x00 msg...         a channel-2 message (gv_rw_hop_decode)
 *   0x01 kind body...   an inner body of that kind (gv_rw_body_decode)
 *   0x02 kind id body.. kind || body sealed by alice for bob in team 1 with
 *                       the outer id filled with byte `id`, then opened by
 *                       bob (gv_rw_seal, gv_rw_open)
 *   0x03 msg...         a channel-2 message as bob receives it: decoded,
 *                       opened with the key of the src it names against
 *                       teams 1 and 2, its body decoded
 *   0x04 text...        a join token (gv_rw_token_decode)
 *   anything else       as 0x00, the whole input
 * Identities: alice seed 32 x 0x01, bob 32 x 0x02; team secrets 32 x 0x11
 * and 32 x 0x22.
 *
 * Checked: every return is 0 or a GV_E* code with a non-empty reason; what
 * decodes re-encodes to the same bytes (hop packets, bodies, DIR entries
 * read back with gv_rw_dir_next(), tokens) and obeys the limits of §6.4;
 * a body sealed with a valid kind and fitting id opens to the same kind and
 * bytes, proved by team 1 (not by team 2 alone), and the body opened
 * goes through the body checks above; a seal refused is refused for the reasons
 * the header lists.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "relaywire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gv_identity fz_alice, fz_bob;
static gv_rw_team fz_teams[2];
static gv_rw_boxkey fz_k_ab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  uint8_t seed[32];

  (void)argc;
  (void)argv;
  FZ_CHECK(sodium_init() >= 0);
  memset(seed, 0x01, sizeof(seed));
  FZ_CHECK(gv_id_from_seed(&fz_alice, seed) == 0);
  memset(seed, 0x02, sizeof(seed));
  FZ_CHECK(gv_id_from_seed(&fz_bob, seed) == 0);
  memset(seed, 0x11, sizeof(seed));
  gv_rw_team_keys(seed, &fz_teams[0]);
  memset(seed, 0x22, sizeof(seed));
  gv_rw_team_keys(seed, &fz_teams[1]);
  FZ_CHECK(gv_rw_peer_key(&fz_alice, fz_bob.pk, &fz_k_ab, NULL) == 0);
  return 0;
}

/* A return and its reason. */
static void fz_check_rc(int rc, const gv_why *why) {
  FZ_CHECK(rc == 0 || (rc < 0 && gv_err_name(rc) != NULL &&
                       strncmp(gv_err_name(rc), "GV_E", 4) == 0));
  if (rc < 0)
    FZ_CHECK(why->text[0] != '\0' &&
             memchr(why->text, '\0', sizeof(why->text)) != NULL);
}

static int fz_printable(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
      return 0;
  return 1;
}

static void fz_hop(const uint8_t *b, size_t len) {
  gv_why why = {{0}};
  gv_rw_hop h;
  uint8_t *out;
  size_t n;
  int rc = gv_rw_hop_decode(b, len, &h, &why);

  fz_check_rc(rc, &why);
  if (rc < 0)
    return;
  out = malloc(len);
  FZ_CHECK(out != NULL);
  if (h.kind == GV_RW_CREDIT) {
    FZ_CHECK(len == GV_RW_CREDIT_LEN);
    gv_rw_credit_encode(h.u.window, out);
    n = GV_RW_CREDIT_LEN;
  } else {
    FZ_CHECK(h.kind == GV_RW_ROUTE && h.u.route.hops < GV_RW_HOPS_MAX);
    FZ_CHECK(h.u.route.sealed == b + GV_RW_ROUTE_HDR);
    FZ_CHECK(h.u.route.sealed_len >= GV_RW_SEAL_OVERHEAD &&
             h.u.route.sealed_len <= GV_RW_SEALED_MAX);
    FZ_CHECK(gv_rw_route_encode(&h.u.route, out, len, &n, NULL) == 0);
  }
  FZ_CHECK(n == len && memcmp(out, b, len) == 0);
  free(out);
}

/* A decoded body: limits, then encode again to the same bytes. */
static void fz_check_body(gv_rw_body *m, const uint8_t *b, size_t len) {
  gv_rw_dir_entry *list = NULL;
  gv_rw_dir_node *blocks = NULL;
  uint8_t *out = malloc(len + 1);
  size_t n = 0, off = 0, i = 0;

  FZ_CHECK(out != NULL);
  switch (m->kind) {
  case GV_RW_DATA:
    FZ_CHECK(gv_rw_agent_check(m->u.data.from.s, m->u.data.from.len) == 0);
    FZ_CHECK(gv_rw_agent_check(m->u.data.to.s, m->u.data.to.len) == 0);
    FZ_CHECK(m->u.data.thread.len <= GV_RW_THREAD_MAX &&
             fz_printable(m->u.data.thread.s, m->u.data.thread.len));
    FZ_CHECK(m->u.data.payload_len <= GV_RW_PAYLOAD_MAX);
    FZ_CHECK(m->u.data.ttl_ms >= 1 && m->u.data.ttl_ms <= GV_RW_TTL_MAX_MS);
    FZ_CHECK(m->u.data.seq >= 1);
    break;
  case GV_RW_FAILED: FZ_CHECK(m->u.reason >= 1 && m->u.reason <= 4); break;
  case GV_RW_MEMBERS: FZ_CHECK(m->u.members.n <= GV_RW_MEMBERS_MAX); break;
  case GV_RW_DIR: {
    gv_rw_dir_node blk;
    size_t boff = 0, k = 0;
    FZ_CHECK(m->u.dir.n_nodes <= GV_RW_MEMBERS_MAX);
    FZ_CHECK(m->u.dir.nodes == NULL);
    blocks = calloc(m->u.dir.n_nodes + 1u, sizeof(*blocks));
    list = calloc(GV_RW_DIR_MAX + 1u, sizeof(*list));
    FZ_CHECK(blocks != NULL && list != NULL);
    while (gv_rw_dir_node_next(&m->u.dir, &boff, &blk) == 1) {
      FZ_CHECK(k < m->u.dir.n_nodes && blk.ver != 0);
      blocks[k] = blk;
      blocks[k].list = list + i;
      for (off = 0; gv_rw_dir_next(&blk, &off, &list[i]) == 1; i++) {
        FZ_CHECK(i < GV_RW_DIR_MAX);
        FZ_CHECK(gv_rw_name_check(list[i].project.s, list[i].project.len) == 0);
        FZ_CHECK(gv_rw_name_check(list[i].name.s, list[i].name.len) == 0);
        FZ_CHECK(list[i].online <= 1);
      }
      FZ_CHECK(off == blk.raw_len &&
               (size_t)(list + i - blocks[k].list) == blk.n);
      k++;
    }
    FZ_CHECK(k == m->u.dir.n_nodes && boff == m->u.dir.raw_len);
    m->u.dir.nodes = blocks;
    break;
  }
  case GV_RW_GONE:
    FZ_CHECK(m->u.gone.seq >= 1);
    FZ_CHECK(gv_rw_agent_check(m->u.gone.from.s, m->u.gone.from.len) == 0);
    FZ_CHECK(gv_rw_agent_check(m->u.gone.to.s, m->u.gone.to.len) == 0);
    break;
  default: FZ_CHECK(len == 0 || m->kind == GV_RW_BUSY); break;
  }
  FZ_CHECK(gv_rw_body_size(m) == len);
  FZ_CHECK(gv_rw_body_encode(m, out, len + 1, &n, NULL) == 0);
  FZ_CHECK(n == len && memcmp(out, b, len) == 0);
  free(list);
  free(blocks);
  free(out);
}

static void fz_body(unsigned kind, const uint8_t *b, size_t len) {
  gv_why why = {{0}};
  gv_rw_body m;
  int rc = gv_rw_body_decode(kind, b, len, &m, &why);

  fz_check_rc(rc, &why);
  if (rc == 0) {
    FZ_CHECK(m.kind == kind && gv_rw_kind_name(kind) != NULL);
    fz_check_body(&m, b, len);
  }
}

static void fz_seal_open(unsigned kind, uint8_t idb, const uint8_t *body,
                         size_t len) {
  uint8_t nonce[GV_RW_NONCE_BYTES] = {0}, *sealed, *buf;
  gv_rw_route r;
  gv_rw_boxkey k_ba;
  gv_rw_opened o;
  gv_why why = {{0}};
  int rc;

  memset(&r, 0, sizeof(r));
  memcpy(r.src, fz_alice.pk, GV_ID_BYTES);
  memcpy(r.dst, fz_bob.pk, GV_ID_BYTES);
  memset(r.id, idb, GV_RW_ID_BYTES);
  nonce[0] = idb;
  sealed = malloc(gv_rw_sealed_size(len));
  FZ_CHECK(sealed != NULL);
  rc = gv_rw_seal(&fz_k_ab, &fz_teams[0], nonce, &r, kind, body, len, sealed,
                  gv_rw_sealed_size(len), &why);
  fz_check_rc(rc, &why);
  if (gv_rw_kind_name(kind) == NULL)
    FZ_CHECK(rc == GV_ETYPE);
  else if (gv_rw_kind_is_control(kind) != (idb == 0))
    FZ_CHECK(rc == GV_EFIELD);
  else
    FZ_CHECK(rc == 0);
  if (rc < 0) {
    free(sealed);
    return;
  }
  r.sealed = sealed;
  r.sealed_len = gv_rw_sealed_size(len);
  buf = malloc(r.sealed_len);
  FZ_CHECK(buf != NULL);
  FZ_CHECK(gv_rw_peer_key(&fz_bob, fz_alice.pk, &k_ba, NULL) == 0);
  rc = gv_rw_open(&k_ba, &r, fz_teams, 2, buf, r.sealed_len, &o, &why);
  FZ_CHECK(rc == 0);
  FZ_CHECK(o.kind == kind && o.team == &fz_teams[0] && o.body_len == len);
  FZ_CHECK(len == 0 || memcmp(o.body, body, len) == 0);
  fz_body(o.kind, o.body, o.body_len);
  /* The same packet for team 2 only: not in team. */
  rc = gv_rw_open(&k_ba, &r, &fz_teams[1], 1, buf, r.sealed_len, &o, &why);
  FZ_CHECK(rc == GV_EBADSIG && o.team == NULL);
  free(buf);
  free(sealed);
}

static void fz_receive(const uint8_t *b, size_t len) {
  gv_why why = {{0}};
  gv_rw_boxkey k;
  gv_rw_opened o;
  gv_rw_body m;
  gv_rw_hop h;
  uint8_t *buf;
  int rc = gv_rw_hop_decode(b, len, &h, &why);

  fz_check_rc(rc, &why);
  if (rc < 0 || h.kind != GV_RW_ROUTE)
    return;
  rc = gv_rw_peer_key(&fz_bob, h.u.route.src, &k, &why);
  fz_check_rc(rc, &why);
  if (rc < 0)
    return;
  buf = malloc(h.u.route.sealed_len);
  FZ_CHECK(buf != NULL);
  rc = gv_rw_open(&k, &h.u.route, fz_teams, 2, buf, h.u.route.sealed_len, &o,
                  &why);
  fz_check_rc(rc, &why);
  FZ_CHECK((rc == 0) == (o.team != NULL));
  if (rc == 0) {
    FZ_CHECK(o.body_len == h.u.route.sealed_len - GV_RW_SEAL_OVERHEAD);
    FZ_CHECK(gv_rw_kind_is_control(o.kind) ==
             sodium_is_zero(h.u.route.id, GV_RW_ID_BYTES));
    rc = gv_rw_body_decode(o.kind, o.body, o.body_len, &m, &why);
    fz_check_rc(rc, &why);
    if (rc == 0)
      fz_check_body(&m, o.body, o.body_len);
  }
  free(buf);
}

static void fz_token(const uint8_t *b, size_t len) {
  uint8_t T[GV_RW_KEY_BYTES], inv[GV_ID_BYTES];
  char out[GV_RW_TOKEN_LEN + 1];
  gv_why why = {{0}};
  int rc = gv_rw_token_decode((const char *)b, len, T, inv, &why);

  fz_check_rc(rc, &why);
  if (rc == 0) {
    gv_rw_token_encode(T, inv, out);
    FZ_CHECK(len == GV_RW_TOKEN_LEN && memcmp(out, b, len) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  switch (data[0]) {
  case 0x00: fz_hop(data + 1, size - 1); break;
  case 0x01:
    if (size >= 2)
      fz_body(data[1], data + 2, size - 2);
    break;
  case 0x02:
    if (size >= 3)
      fz_seal_open(data[1], data[2], data + 3, size - 3);
    break;
  case 0x03: fz_receive(data + 1, size - 1); break;
  case 0x04: fz_token(data + 1, size - 1); break;
  default: fz_hop(data, size); break;
  }
  return 0;
}

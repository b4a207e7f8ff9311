/* libFuzzer target: message validation (PROTOCOL.md §6, proto/msg.h).
 *
 * Input layout:
 *   0xFF body...          body bytes (up to the first NUL) wrapped in a
 *                         gossip envelope with ttl 1, hops 0, signed by the
 *                         fixed identity (seed 32 x 0x01) as §6.1 says, so
 *                         that decoding gets past the signature to the field
 *                         validators and to success
 *   0xFE ttl hops body... the same with the envelope's ttl and hops given
 *   anything else         the message bytes as they would arrive
 *
 * Every decode runs twice: with no dedup probe, and with one that claims
 * every id was seen. Checked: the return is 0 or a GV_E* code with a
 * non-empty, NUL-terminated reason; the dedup probe is asked at most once,
 * with the body's id, never for a link message, always before a signature
 * is checked, and a hit is GV_EDUP; a decoded message obeys the limits of
 * §6; re-encoding it (gv_msg_encode_link or gv_msg_encode_gossip) decodes
 * again to the same message, every field equal, and re-encodes to the same
 * bytes; re-sealing a decoded gossip message's content (gv_msg_seal) gives a
 * valid message with the same content. gv_msg_clear() runs on every gv_msg
 * touched. With the simulator's memo (common/intern.c), which also reads
 * our own envelope forms without a tree, decoding twice (the body decoded,
 * then found) gives the same code, reason and message as without it.
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "intern.h"
#include "msg.h"

#define FZ_NOW_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gv_identity fz_alice; /* seed 32 x 0x01 */

/* The dedup probe that has seen everything; records what it was asked. */
typedef struct fz_seen {
  int calls;
  uint8_t id[GV_MSG_ID_BYTES];
} fz_seen;

static int fz_seen_all(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]) {
  fz_seen *s = ctx;
  s->calls++;
  memcpy(s->id, id, GV_MSG_ID_BYTES);
  return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  uint8_t seed[32];

  (void)argc;
  (void)argv;
  FZ_CHECK(sodium_init() >= 0);
  memset(seed, 0x01, sizeof(seed));
  FZ_CHECK(gv_id_from_seed(&fz_alice, seed) == 0);
  return 0;
}

/* ---- invariants of a successfully decoded message ---- */

static int fz_printable(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      return 0;
  return 1;
}

/* The id and signature of a signed body, recomputed here. */
static void fz_check_signed(const gv_msg *m) {
  uint8_t id[GV_MSG_ID_BYTES], tbs[15 + GV_MSG_ID_BYTES];

  FZ_CHECK(m->body != NULL && m->body_len > 0);
  FZ_CHECK(strlen(m->body) == m->body_len);
  FZ_CHECK(fz_printable(m->body));
  crypto_generichash(id, sizeof(id), (const uint8_t *)m->body, m->body_len,
                     NULL, 0);
  FZ_CHECK(memcmp(id, m->id, sizeof(id)) == 0);
  memcpy(tbs, "grapevine/1 msg", 15);
  memcpy(tbs + 15, id, sizeof(id));
  FZ_CHECK(crypto_sign_verify_detached(m->sig, tbs, sizeof(tbs), m->origin) ==
           0);
  FZ_CHECK(m->seq >= 1 && m->seq <= GV_INT_MAX);
  FZ_CHECK(m->ts >= 0 && m->ts <= FZ_NOW_MS + GV_CLOCK_SKEW_MS);
}

/* A decoded peer state: its names packed right behind the body's NUL, or
 * behind the addresses and relays of the kept form a memo lent. */
static void fz_check_peer_state(const gv_msg *m) {
  const gv_peer_state *p = &m->u.peer;
  const char *ri, *rj;

  if (m->kept != NULL && m->body == m->kept)
    FZ_CHECK(p->repos == m->kept + gv_kept_tail_at(m->body_len) +
                             p->n_addrs * sizeof(gv_addr) +
                             p->n_relays * GV_ID_BYTES);
  else
    FZ_CHECK(p->repos == m->body + m->body_len + 1);
  FZ_CHECK(p->n_addrs <= GV_MAX_ADDRS && p->n_repos <= GV_MAX_REPOS);
  FZ_CHECK(!p->bootstrap || p->broadcasting);
  FZ_CHECK(p->n_addrs == 0 || p->broadcasting); /* the IP-sharing rule */
  FZ_CHECK(p->n_relays <= GV_MAX_RELAYS);
  FZ_CHECK(p->n_relays == 0 || !p->broadcasting); /* relays: silent only */
  for (unsigned i = 0; i < p->n_relays; i++) {
    FZ_CHECK(memcmp(p->relays[i], m->origin, GV_ID_BYTES) != 0);
    for (unsigned j = 0; j < i; j++)
      FZ_CHECK(memcmp(p->relays[i], p->relays[j], GV_ID_BYTES) != 0);
  }
  for (unsigned i = 0; i < p->n_addrs; i++) {
    FZ_CHECK(p->addrs[i].family == 4 || p->addrs[i].family == 6);
    FZ_CHECK(p->addrs[i].port != 0);
  }
  ri = p->repos;
  for (unsigned i = 0; i < p->n_repos; i++, ri += strlen(ri) + 1) {
    FZ_CHECK(gv_repo_name_check(ri, strlen(ri)) == 0);
    rj = p->repos;
    for (unsigned j = 0; j < i; j++, rj += strlen(rj) + 1)
      FZ_CHECK(strcmp(ri, rj) != 0);
  }
}

/* An embedded record (PEER_LIST_RESPONSE, HELLO): a signed peer state. */
static void fz_check_record(const gv_msg *r) {
  FZ_CHECK(r->type == GV_MSG_PEER_ANNOUNCEMENT ||
           r->type == GV_MSG_PEER_UPDATE);
  fz_check_signed(r);
  fz_check_peer_state(r);
}

static void fz_check_valid(const gv_msg *m) {
  FZ_CHECK(m->type > GV_MSG_NONE && m->type < GV__MSG_COUNT);
  if (!gv_msg_is_gossip(m->type)) {
    FZ_CHECK(m->body == NULL);
    switch (m->type) {
    case GV_MSG_HELLO:
      FZ_CHECK(strlen(m->u.hello.agent) >= 1 &&
               strlen(m->u.hello.agent) <= GV_AGENT_MAX);
      FZ_CHECK(fz_printable(m->u.hello.agent));
      FZ_CHECK(m->u.hello.seq <= GV_INT_MAX);
      FZ_CHECK(m->ts >= 0 && (uint64_t)m->ts <= GV_INT_MAX);
      if (m->u.hello.record != NULL)
        fz_check_record(m->u.hello.record);
      break;
    case GV_MSG_PING:
    case GV_MSG_PONG: FZ_CHECK(m->u.nonce <= GV_INT_MAX); break;
    case GV_MSG_IHAVE:
    case GV_MSG_IWANT:
      FZ_CHECK(m->u.ids.n >= 1 && m->u.ids.n <= GV_MAX_IDS);
      break;
    case GV_MSG_GOODBYE:
      FZ_CHECK(strlen(m->u.reason) <= GV_REASON_MAX);
      FZ_CHECK(fz_printable(m->u.reason));
      break;
    default: FZ_CHECK(!"unreachable link type");
    }
    return;
  }
  fz_check_signed(m);
  FZ_CHECK(m->ttl <= gv_msg_max_ttl(m->type));
  FZ_CHECK(m->hops <= GV_HOPS_MAX);
  FZ_CHECK(m->ts >= FZ_NOW_MS - GV_MSG_MAX_AGE_MS);
  switch (m->type) {
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE: fz_check_peer_state(m); break;
  case GV_MSG_PEER_REQUEST:
    FZ_CHECK(gv_repo_name_check(m->u.request.repo, strlen(m->u.request.repo)) ==
             0);
    FZ_CHECK(m->u.request.max >= 1 && m->u.request.max <= GV_MAX_PEERS);
    break;
  case GV_MSG_PEER_LIST_RESPONSE:
    FZ_CHECK(m->u.response.n_peers <= GV_MAX_PEERS);
    FZ_CHECK((m->u.response.n_peers == 0) == (m->u.response.peers == NULL));
    for (size_t i = 0; i < m->u.response.n_peers; i++)
      fz_check_record(&m->u.response.peers[i]);
    break;
  case GV_MSG_HEARTBEAT: break;
  default: FZ_CHECK(!"unreachable gossip type");
  }
}

/* ---- equality of decoded content ---- */

static void fz_check_peer_eq(const gv_peer_state *a, const gv_peer_state *b) {
  FZ_CHECK(a->broadcasting == b->broadcasting);
  FZ_CHECK(a->bootstrap == b->bootstrap);
  FZ_CHECK(a->tport == b->tport);
  FZ_CHECK(a->n_addrs == b->n_addrs && a->n_repos == b->n_repos);
  FZ_CHECK(a->n_relays == b->n_relays);
  FZ_CHECK(memcmp(a->relays, b->relays, a->n_relays * GV_ID_BYTES) == 0);
  for (unsigned i = 0; i < a->n_addrs; i++)
    FZ_CHECK(gv_addr_equal(&a->addrs[i], &b->addrs[i]));
  /* Same names in the same order: the packed bytes are equal. */
  if (a->n_repos > 0) {
    const char *end = a->repos;
    for (unsigned i = 0; i < a->n_repos; i++)
      end += strlen(end) + 1;
    FZ_CHECK(memcmp(a->repos, b->repos, (size_t)(end - a->repos)) == 0);
  }
}

static void fz_check_content_eq(const gv_msg *a, const gv_msg *b);

/* Records are carried verbatim, signature and all. */
static void fz_check_record_eq(const gv_msg *ra, const gv_msg *rb) {
  FZ_CHECK(ra->body_len == rb->body_len);
  FZ_CHECK(memcmp(ra->body, rb->body, ra->body_len) == 0);
  FZ_CHECK(memcmp(ra->sig, rb->sig, GV_SIG_BYTES) == 0);
  FZ_CHECK(memcmp(ra->id, rb->id, GV_MSG_ID_BYTES) == 0);
  FZ_CHECK(memcmp(ra->origin, rb->origin, GV_ID_BYTES) == 0);
  fz_check_content_eq(ra, rb);
}

/* The content a message's origin chose: type, seq, ts and the union. */
static void fz_check_content_eq(const gv_msg *a, const gv_msg *b) {
  FZ_CHECK(a->type == b->type);
  FZ_CHECK(a->ts == b->ts);
  FZ_CHECK(a->seq == b->seq);
  switch (a->type) {
  case GV_MSG_HELLO:
    FZ_CHECK(strcmp(a->u.hello.agent, b->u.hello.agent) == 0);
    FZ_CHECK(a->u.hello.seq == b->u.hello.seq);
    FZ_CHECK((a->u.hello.record == NULL) == (b->u.hello.record == NULL));
    if (a->u.hello.record != NULL)
      fz_check_record_eq(a->u.hello.record, b->u.hello.record);
    break;
  case GV_MSG_PING:
  case GV_MSG_PONG: FZ_CHECK(a->u.nonce == b->u.nonce); break;
  case GV_MSG_IHAVE:
  case GV_MSG_IWANT:
    FZ_CHECK(a->u.ids.n == b->u.ids.n);
    FZ_CHECK(memcmp(a->u.ids.ids, b->u.ids.ids, a->u.ids.n * GV_MSG_ID_BYTES) ==
             0);
    break;
  case GV_MSG_GOODBYE: FZ_CHECK(strcmp(a->u.reason, b->u.reason) == 0); break;
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE: fz_check_peer_eq(&a->u.peer, &b->u.peer); break;
  case GV_MSG_PEER_REQUEST:
    FZ_CHECK(strcmp(a->u.request.repo, b->u.request.repo) == 0);
    FZ_CHECK(a->u.request.max == b->u.request.max);
    break;
  case GV_MSG_PEER_LIST_RESPONSE:
    FZ_CHECK(memcmp(a->u.response.to, b->u.response.to, GV_ID_BYTES) == 0);
    FZ_CHECK(memcmp(a->u.response.request, b->u.response.request,
                    GV_MSG_ID_BYTES) == 0);
    FZ_CHECK(a->u.response.n_peers == b->u.response.n_peers);
    for (size_t i = 0; i < a->u.response.n_peers; i++)
      fz_check_record_eq(&a->u.response.peers[i], &b->u.response.peers[i]);
    break;
  default: break;
  }
}

/* ---- decoding ---- */

static const gv_msg_policy fz_policy = {.now_ms = FZ_NOW_MS};

/* Decodes buf; checks the error contract. Returns gv_msg_decode's result. */
static int fz_decode(gv_msg *m, const uint8_t *buf, size_t len,
                     const gv_msg_policy *pol) {
  gv_why why;
  int rc;

  /* No NUL anywhere: a failure that leaves the reason unwritten shows. */
  memset(why.text, 'X', sizeof(why.text));
  rc = gv_msg_decode(m, buf, len, pol, &why);
  if (rc == 0)
    return 0;
  FZ_CHECK(rc <= -(GV__ERR_FIRST + 1) &&
           rc >= -(GV__ERR_FIRST + GV__ERR_COUNT));
  FZ_CHECK(strncmp(gv_err_name(rc), "GV_E", 4) == 0);
  if (rc != GV_ENOMEM) {
    FZ_CHECK(memchr(why.text, '\0', sizeof(why.text)) != NULL);
    FZ_CHECK(why.text[0] != '\0');
  }
  return rc;
}

/* Re-encodes a decoded message as it would be forwarded or answered; the
 * result must decode to the same message and re-encode to the same bytes,
 * the second time into a lent block (of 0 to 8 KB) it may or may not fit
 * (the _in forms the engine sends with). */
static void fz_check_reencode(const gv_msg *m) {
  gv_msg m2;
  char *out = NULL, *out2 = NULL, lent[8192];
  size_t len = 0, len2 = 0, cap;
  int gossip = gv_msg_is_gossip(m->type);

  if (gossip)
    FZ_CHECK(gv_msg_encode_gossip(m, &out, &len) == 0);
  else
    FZ_CHECK(gv_msg_encode_link(m, &out, &len) == 0);
  FZ_CHECK(out != NULL && strlen(out) == len);
  FZ_CHECK(fz_decode(&m2, (const uint8_t *)out, len, &fz_policy) == 0);
  FZ_CHECK(m2.type == m->type);
  fz_check_content_eq(m, &m2);
  if (gossip) {
    FZ_CHECK(memcmp(m2.id, m->id, GV_MSG_ID_BYTES) == 0);
    FZ_CHECK(memcmp(m2.sig, m->sig, GV_SIG_BYTES) == 0);
    FZ_CHECK(memcmp(m2.origin, m->origin, GV_ID_BYTES) == 0);
    FZ_CHECK(m2.body_len == m->body_len &&
             memcmp(m2.body, m->body, m->body_len) == 0);
    FZ_CHECK(m2.ttl == m->ttl && m2.hops == m->hops);
  }
  /* Spread over the block the engine lends, whatever the length. */
  cap = (len * 2654435761u) % (sizeof(lent) + 1);
  if (gossip)
    FZ_CHECK(gv_msg_encode_gossip_in(&m2, lent, cap, &out2, &len2) == 0);
  else
    FZ_CHECK(gv_msg_encode_link_in(&m2, lent, cap, &out2, &len2) == 0);
  /* Encoding is a function of the decoded content. */
  FZ_CHECK(len2 == len && memcmp(out, out2, len + 1) == 0);
  FZ_CHECK(out2 != lent || (cap > 0 && len2 < cap));
  free(out);
  if (out2 != lent)
    free(out2);
  gv_msg_clear(&m2);
}

/* True if m is a peer state that names id among its relays. */
static int fz_names_relay(const gv_msg *m, const uint8_t id[GV_ID_BYTES]) {
  if (m->type != GV_MSG_PEER_ANNOUNCEMENT && m->type != GV_MSG_PEER_UPDATE)
    return 0;
  for (unsigned i = 0; i < m->u.peer.n_relays; i++)
    if (memcmp(m->u.peer.relays[i], id, GV_ID_BYTES) == 0)
      return 1;
  return 0;
}

/* Seals the content of a decoded gossip message anew, as its origin would
 * have; the result must be valid and carry the same content. */
static void fz_check_reseal(const gv_msg *m) {
  gv_msg s = *m, d;
  char *out = NULL;
  size_t len = 0;
  int rc;

  s.body = NULL; /* s borrows m's records; only its own body is freed */
  s.body_len = 0;
  rc = gv_msg_seal(&s, &fz_alice, &out, &len);
  free(s.body);
  if (rc == GV_ETOOBIG) /* records re-escaped can outgrow GV_MSG_MAX */
    return;
  if (fz_names_relay(m, fz_alice.pk)) { /* alice cannot be her own relay */
    FZ_CHECK(rc == GV_EINVAL);
    return;
  }
  FZ_CHECK(rc == 0);
  FZ_CHECK(memcmp(s.origin, fz_alice.pk, GV_ID_BYTES) == 0);
  FZ_CHECK(fz_decode(&d, (const uint8_t *)out, len, &fz_policy) == 0);
  fz_check_valid(&d);
  fz_check_content_eq(m, &d);
  FZ_CHECK(memcmp(d.origin, fz_alice.pk, GV_ID_BYTES) == 0);
  FZ_CHECK(d.ttl == m->ttl && d.hops == m->hops);
  free(out);
  gv_msg_clear(&d);
}

/* The same decode with the memo: first decoded and kept, then found. */
static void fz_check_memo(const uint8_t *buf, size_t len) {
  static const uint8_t key[GV_INTERN_KEY_BYTES] = "fuzz-memo-key-16";
  gv_intern *pool;
  gv_msg m, mm;
  gv_why why, mwhy;
  gv_msg_policy pol = fz_policy;
  int rc;

  FZ_CHECK(gv_intern_new(&pool, key) == 0);
  why.text[0] = '\0';
  rc = gv_msg_decode(&m, buf, len, &fz_policy, &why);
  pol.memo = gv_intern_memo(pool);
  for (int k = 0; k < 2; k++) {
    mwhy.text[0] = '\0';
    FZ_CHECK(gv_msg_decode(&mm, buf, len, &pol, &mwhy) == rc);
    FZ_CHECK(rc == 0 || strcmp(why.text, mwhy.text) == 0);
    if (rc == 0) {
      fz_check_valid(&mm);
      fz_check_content_eq(&m, &mm);
      FZ_CHECK(mm.ttl == m.ttl && mm.hops == m.hops);
      if (gv_msg_is_gossip(m.type))
        fz_check_record_eq(&m, &mm);
      /* A kept body is lent as its kept form, the very bytes the message
       * decoded without the memo makes. */
      FZ_CHECK((mm.kept != NULL) == (gv_msg_is_gossip(m.type) &&
                                     m.type != GV_MSG_PEER_LIST_RESPONSE));
      if (mm.kept != NULL) {
        size_t n;
        char *kept = gv_kept_new(&m, &n);
        FZ_CHECK(kept != NULL && memcmp(kept, mm.kept, n) == 0);
        free(kept);
      }
    }
    gv_msg_clear(&mm);
  }
  gv_msg_clear(&m);
  /* Every lent reference is back: what is left is the memo's own. */
  FZ_CHECK(gv_intern_count(pool) == gv_intern_memo_count(pool));
  gv_intern_free(pool);
}

/* Decodes buf with and without the dedup probe and checks the results.
 * body_id, when known (the 0xFF forms), is the id the probe must be asked. */
static void fz_check_bytes(const uint8_t *buf, size_t len,
                           const uint8_t *body_id) {
  gv_msg m, m2;
  fz_seen seen = {0};
  gv_msg_policy dedup = {
      .now_ms = FZ_NOW_MS, .seen = fz_seen_all, .seen_ctx = &seen};
  int rc = fz_decode(&m, buf, len, &fz_policy);
  int rc2 = fz_decode(&m2, buf, len, &dedup);

  /* msg.h: the probe is asked once the id is known, before the signature
   * is checked, and a hit is GV_EDUP. Where in between is not fixed. */
  FZ_CHECK(seen.calls <= 1);
  if (seen.calls == 1) {
    FZ_CHECK(rc2 == GV_EDUP);
    FZ_CHECK(body_id == NULL || memcmp(seen.id, body_id, GV_MSG_ID_BYTES) == 0);
    FZ_CHECK(rc != 0 || memcmp(seen.id, m.id, GV_MSG_ID_BYTES) == 0);
  } else {
    FZ_CHECK(rc2 == rc);
  }
  if (rc == 0)
    FZ_CHECK(seen.calls == (gv_msg_is_gossip(m.type) ? 1 : 0));
  if (rc == GV_EBADSIG) /* some signature was checked, so the probe ran */
    FZ_CHECK(seen.calls == 1 || rc2 == GV_EBADSIG);
  gv_msg_clear(&m2);

  if (rc == 0) {
    fz_check_valid(&m);
    fz_check_reencode(&m);
    if (gv_msg_is_gossip(m.type))
      fz_check_reseal(&m);
  }
  gv_msg_clear(&m);
  FZ_CHECK(m.type == GV_MSG_NONE && m.body == NULL);
  fz_check_memo(buf, len);
}

/* Builds {"v":1,"ttl":T,"hops":H,"body":B,"sig":S}, S signed by fz_alice
 * over "grapevine/1 msg" || BLAKE2b-256(B) (§6.1); the id goes to id.
 * Returns the envelope text, to be released with cJSON_free(). */
static char *fz_envelope(const char *body, size_t body_len, unsigned ttl,
                         unsigned hops, uint8_t id[GV_MSG_ID_BYTES]) {
  uint8_t tbs[15 + GV_MSG_ID_BYTES], sig[GV_SIG_BYTES];
  char hex[2 * GV_SIG_BYTES + 1];
  cJSON *env = cJSON_CreateObject();
  char *out;

  crypto_generichash(id, GV_MSG_ID_BYTES, (const uint8_t *)body, body_len, NULL,
                     0);
  memcpy(tbs, "grapevine/1 msg", 15);
  memcpy(tbs + 15, id, GV_MSG_ID_BYTES);
  crypto_sign_detached(sig, NULL, tbs, sizeof(tbs), fz_alice.sk);
  sodium_bin2hex(hex, sizeof(hex), sig, sizeof(sig));
  FZ_CHECK(env != NULL);
  FZ_CHECK(cJSON_AddNumberToObject(env, "v", 1) != NULL);
  FZ_CHECK(cJSON_AddNumberToObject(env, "ttl", ttl) != NULL);
  FZ_CHECK(cJSON_AddNumberToObject(env, "hops", hops) != NULL);
  FZ_CHECK(cJSON_AddStringToObject(env, "body", body) != NULL);
  FZ_CHECK(cJSON_AddStringToObject(env, "sig", hex) != NULL);
  out = cJSON_PrintUnformatted(env);
  FZ_CHECK(out != NULL);
  cJSON_Delete(env);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 1 && (data[0] == 0xFF || (data[0] == 0xFE && size >= 3))) {
    size_t skip = data[0] == 0xFF ? 1 : 3;
    unsigned ttl = data[0] == 0xFF ? 1 : data[1];
    unsigned hops = data[0] == 0xFF ? 0 : data[2];
    size_t blen = strnlen((const char *)data + skip, size - skip);
    uint8_t id[GV_MSG_ID_BYTES];
    char *body = malloc(blen + 1), *env;

    FZ_CHECK(body != NULL);
    memcpy(body, data + skip, blen);
    body[blen] = '\0';
    env = fz_envelope(body, blen, ttl, hops, id);
    fz_check_bytes((const uint8_t *)env, strlen(env), id);
    cJSON_free(env);
    free(body);
    return 0;
  }
  fz_check_bytes(data, size, NULL);
  return 0;
}

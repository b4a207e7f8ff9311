/* Worked examples for docs/PROTOCOL.md §7, and a conformance check.
 *
 * The handshake is run twice: once through proto/ (gv_link), and once
 * recomputed here from the spec's steps with raw libsodium calls. The two
 * must produce the same bytes, or this program exits 1. Randomness comes
 * from a fixed ChaCha20 stream so the output is reproducible.
 *
 *   gen_vectors --markdown      the §7 text
 *   gen_vectors --out DIR       example messages as files (for CLI tests)
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "frame.h"
#include "link.h"
#include "msg.h"

#define T0 1767225600000LL

/* ---- deterministic randombytes ---- */

static uint64_t rng_counter;
static const uint8_t rng_key[32] = "grapevine test vectors rng key!";

static void rng_buf(void *const buf, const size_t size) {
  uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
  memcpy(nonce, &rng_counter, sizeof(rng_counter));
  rng_counter++;
  crypto_stream_chacha20(buf, size, nonce, rng_key);
}

static uint32_t rng_random(void) {
  uint32_t v;
  rng_buf(&v, sizeof(v));
  return v;
}

static const char *rng_name(void) { return "gv-test-vectors"; }

static struct randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .buf = rng_buf,
};

/* ---- output helpers ---- */

static int markdown;

static void hex_line(const char *label, const uint8_t *p, size_t n) {
  char *hex = malloc(2 * n + 1);
  sodium_bin2hex(hex, 2 * n + 1, p, n);
  if (markdown)
    printf("- %s (%zu bytes):\n  `%s`\n", label, n, hex);
  free(hex);
}

static void text_block(const char *label, const char *text) {
  if (markdown)
    printf("\n%s:\n\n```\n%s\n```\n", label, text);
}

static void die(const char *what) {
  fprintf(stderr, "gen_vectors: %s\n", what);
  exit(1);
}

/* ---- the handshake from the spec (PROTOCOL.md §4.2) ---- */

static void h_init(crypto_generichash_state *st) {
  crypto_generichash_init(st, NULL, 0, 32);
}

static void kdf(uint8_t out[32], const uint8_t key[32], const char *label,
                const uint8_t h[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, 32, 32);
  crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
  crypto_generichash_update(&st, h, 32);
  crypto_generichash_final(&st, out, 32);
}

typedef struct spec_hs {
  uint8_t m1[36], m2[144], m3[112];
  uint8_t sk_ir[32], sk_ri[32];
} spec_hs;

static void spec_handshake(const gv_identity *ini, const gv_identity *res,
                           const uint8_t ei_sk[32], const uint8_t er_sk[32],
                           spec_hs *o) {
  static const uint8_t zero_nonce[24];
  uint8_t ei[32], er[32], k_ir[32], k_ri[32], rx[32], tx[32];
  uint8_t h2[32], h3[32], h4[32], hk_r[32], hk_i[32];
  uint8_t tbs[25 + 96], pt[96];
  crypto_generichash_state st;

  crypto_scalarmult_base(ei, ei_sk);
  crypto_scalarmult_base(er, er_sk);
  /* 1 */
  memcpy(o->m1, "GVH\x02", 4);
  memcpy(o->m1 + 4, ei, 32);
  /* 2: the responder's view of the session keys */
  if (crypto_kx_server_session_keys(rx, tx, er, er_sk, ei) != 0)
    die("kx");
  memcpy(k_ir, rx, 32);
  memcpy(k_ri, tx, 32);
  /* 3 */
  h_init(&st);
  crypto_generichash_update(&st, (const uint8_t *)"grapevine/2 handshake", 21);
  crypto_generichash_update(&st, o->m1, 36);
  crypto_generichash_update(&st, er, 32);
  crypto_generichash_final(&st, h2, 32);
  kdf(hk_r, k_ri, "hs r2i", h2);
  memcpy(tbs, "grapevine/2 responder sig", 25);
  memcpy(tbs + 25, h2, 32);
  memcpy(tbs + 57, res->pk, 32);
  memcpy(pt, res->pk, 32);
  crypto_sign_detached(pt + 32, NULL, tbs, 25 + 64, res->sk);
  memcpy(o->m2, er, 32);
  crypto_aead_xchacha20poly1305_ietf_encrypt(o->m2 + 32, NULL, pt, 96, h2, 32,
                                             NULL, zero_nonce, hk_r);
  /* 5 */
  h_init(&st);
  crypto_generichash_update(&st, h2, 32);
  crypto_generichash_update(&st, o->m2 + 32, 112);
  crypto_generichash_final(&st, h3, 32);
  kdf(hk_i, k_ir, "hs i2r", h3);
  memcpy(tbs, "grapevine/2 initiator sig", 25);
  memcpy(tbs + 25, h3, 32);
  memcpy(tbs + 57, res->pk, 32);
  memcpy(tbs + 89, ini->pk, 32);
  memcpy(pt, ini->pk, 32);
  crypto_sign_detached(pt + 32, NULL, tbs, 25 + 96, ini->sk);
  crypto_aead_xchacha20poly1305_ietf_encrypt(o->m3, NULL, pt, 96, h3, 32, NULL,
                                             zero_nonce, hk_i);
  /* 7 */
  h_init(&st);
  crypto_generichash_update(&st, h3, 32);
  crypto_generichash_update(&st, o->m3, 112);
  crypto_generichash_update(&st, res->pk, 32);
  crypto_generichash_update(&st, ini->pk, 32);
  crypto_generichash_final(&st, h4, 32);
  kdf(o->sk_ir, k_ir, "stream i2r", h4);
  kdf(o->sk_ri, k_ri, "stream r2i", h4);

  if (markdown) {
    printf("\nIntermediate values (steps of §4.2):\n\n");
    hex_line("`e_I` secret", ei_sk, 32);
    hex_line("`e_I`", ei, 32);
    hex_line("`e_R` secret", er_sk, 32);
    hex_line("`e_R`", er, 32);
    hex_line("`K_IR`", k_ir, 32);
    hex_line("`K_RI`", k_ri, 32);
    hex_line("`h2`", h2, 32);
    hex_line("`hk_R`", hk_r, 32);
    hex_line("`h3`", h3, 32);
    hex_line("`hk_I`", hk_i, 32);
    hex_line("`h4`", h4, 32);
    hex_line("`sk_IR`", o->sk_ir, 32);
    hex_line("`sk_RI`", o->sk_ri, 32);
  }
}

/* Moves everything pending in `from` into `to`; returns the bytes moved. */
static size_t pump(gv_link *from, gv_link *to, uint8_t *copy, size_t cap) {
  const uint8_t *p;
  size_t n = gv_link_out(from, &p);
  if (n > cap)
    die("pump buffer too small");
  memcpy(copy, p, n);
  gv_link_out_consume(from, n);
  if (gv_link_recv(to, copy, n, NULL, NULL) < 0)
    die("link handshake failed");
  return n;
}

/* The channel a message travels on (PROTOCOL.md §5.1): link control on 0,
 * gossip with IHAVE and IWANT on 1. */
static unsigned channel_of(gv_msg_type t) {
  return gv_msg_is_gossip(t) || t == GV_MSG_IHAVE || t == GV_MSG_IWANT
             ? GV_CHAN_GOSSIP
             : GV_CHAN_LINK;
}

/* pt = channel || the encoded link message m; returns its length. */
static size_t link_plaintext(const gv_msg *m, uint8_t *pt, size_t cap) {
  char *json;
  size_t len;
  if (gv_msg_encode_link(m, &json, &len) < 0 || len + GV_CHAN_HDR > cap)
    die("encode");
  pt[0] = (uint8_t)channel_of(m->type);
  memcpy(pt + GV_CHAN_HDR, json, len);
  free(json);
  return GV_CHAN_HDR + len;
}

/* Queues alice's HELLO and PING, then her FINAL frame with a GOODBYE, on
 * link i; decrypts each frame with the spec's key and her stream header,
 * independently of the link, and prints the plaintexts and frames. */
static void encrypted_frames(gv_link *i, const uint8_t *header,
                             const uint8_t *sk_ir) {
  static const struct {
    gv_msg_type type;
    unsigned char tag;
    const char *tag_name;
  } seq[] = {
      {GV_MSG_HELLO, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
       "MESSAGE"},
      {GV_MSG_PING, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
       "MESSAGE"},
      {GV_MSG_GOODBYE, crypto_secretstream_xchacha20poly1305_TAG_FINAL,
       "FINAL"},
  };
  crypto_secretstream_xchacha20poly1305_state st;

  if (crypto_secretstream_xchacha20poly1305_init_pull(&st, header, sk_ir) != 0)
    die("alice's stream header does not open under the spec's sk_IR");
  if (markdown)
    printf("\n### 7.3 Encrypted frames\n\nalice's first three frames after "
           "her stream header, under `sk_IR`: her HELLO (here without the "
           "optional `record`), a PING, and the FINAL frame that closes the "
           "link, carrying a GOODBYE. Each plaintext is the channel byte "
           "(`00`: link) followed by the message (§5.1).\n");
  for (size_t k = 0; k < sizeof(seq) / sizeof(seq[0]); k++) {
    uint8_t pt[256], got[256];
    unsigned long long glen;
    unsigned char tag;
    const uint8_t *p;
    size_t len, n;
    gv_msg m;
    int rc;

    memset(&m, 0, sizeof(m));
    m.type = seq[k].type;
    if (m.type == GV_MSG_HELLO) {
      m.ts = T0;
      strcpy(m.u.hello.agent, "grapevine/0.2.0");
    } else if (m.type == GV_MSG_PING) {
      m.u.nonce = 7;
    } else {
      strcpy(m.u.reason, "shutdown");
    }
    len = link_plaintext(&m, pt, sizeof(pt));
    rc = seq[k].tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL
             ? gv_link_close(i, pt, len)
             : gv_link_send(i, pt, len);
    if (rc < 0)
      die("send");
    n = gv_link_out(i, &p);
    if (n < 4 + crypto_secretstream_xchacha20poly1305_ABYTES ||
        n - 4 - crypto_secretstream_xchacha20poly1305_ABYTES > sizeof(got) ||
        crypto_secretstream_xchacha20poly1305_pull(&st, got, &glen, &tag, p + 4,
                                                   n - 4, NULL, 0) != 0 ||
        glen != len || memcmp(got, pt, len) != 0 || tag != seq[k].tag)
      die("a frame does not decrypt to its plaintext under the spec's sk_IR");
    if (markdown) {
      printf("\n#### %s (channel %u, tag %s)\n", gv_msg_type_name(m.type),
             pt[0], seq[k].tag_name);
      printf("\nMessage:\n\n```\n%.*s\n```\n", (int)(len - GV_CHAN_HDR),
             (const char *)pt + GV_CHAN_HDR);
      hex_line("plaintext, channel byte first", pt, len);
      hex_line("frame", p, n);
    }
    gv_link_out_consume(i, n);
  }
  sodium_memzero(&st, sizeof(st));
}

static void handshake_vectors(const gv_identity *alice,
                              const gv_identity *bob) {
  uint8_t ei_sk[32], er_sk[32], ei_pk[32], er_pk[32];
  uint8_t w1[64], w2[256], w3[256], w4[64];
  size_t n1, n2, n3;
  gv_link *i, *r;
  spec_hs spec;

  /* The links draw e_I then e_R from the stream; replay it to learn them. */
  rng_counter = 1000;
  crypto_kx_keypair(ei_pk, ei_sk);
  crypto_kx_keypair(er_pk, er_sk);
  rng_counter = 1000;
  if (gv_link_new(&i, alice, GV_HS_INITIATOR, bob->pk) < 0 ||
      gv_link_new(&r, bob, GV_HS_RESPONDER, NULL) < 0)
    die("gv_link_new");
  n1 = pump(i, r, w1, sizeof(w1)); /* M1 */
  n2 = pump(r, i, w2, sizeof(w2)); /* M2 */
  n3 = pump(i, r, w3, sizeof(w3)); /* M3, then I's stream header */
  (void)pump(r, i, w4, sizeof(w4));

  if (markdown)
    printf("\n### 7.2 Handshake: alice (initiator) dials bob (responder)\n"
           "\nalice pins bob's id. `e_I` and `e_R` are the first two "
           "`crypto_kx_keypair()` results of the test RNG.\n");
  spec_handshake(alice, bob, ei_sk, er_sk, &spec);
  if (n1 != 4 + 36 || memcmp(w1 + 4, spec.m1, 36) != 0)
    die("M1 differs from the spec computation");
  if (n2 != 4 + 144 || memcmp(w2 + 4, spec.m2, 144) != 0)
    die("M2 differs from the spec computation");
  if (n3 != 4 + 112 + 4 + 24 || memcmp(w3 + 4, spec.m3, 112) != 0)
    die("M3 differs from the spec computation");
  if (markdown) {
    printf("\nThe frames on the wire (length prefix included):\n\n");
    hex_line("M1 frame", w1, n1);
    hex_line("M2 frame", w2, n2);
    hex_line("M3 frame", w3, 4 + 112);
    hex_line("alice's stream header frame", w3 + 4 + 112, 4 + 24);
  }

  /* §5 and §5.1: alice's first frames after her stream header. */
  encrypted_frames(i, w3 + 4 + 112 + 4, spec.sk_ir);
  gv_link_free(i);
  gv_link_free(r);
}

/* ---- messages ---- */

static FILE *out_file(const char *dir, const char *name) {
  char path[4096];
  FILE *f;
  if (dir == NULL)
    return NULL;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (f == NULL)
    die(path);
  return f;
}

static void emit(const char *dir, const char *file, const char *title,
                 const gv_msg *m, const char *wire, size_t len) {
  FILE *f = out_file(dir, file);
  gv_msg d;
  gv_why why = {""};
  gv_msg_policy pol = {.now_ms = T0};

  if (f != NULL) {
    fwrite(wire, 1, len, f);
    fclose(f);
  }
  if (gv_msg_decode(&d, (const uint8_t *)wire, len, &pol, &why) < 0) {
    fprintf(stderr, "gen_vectors: %s does not validate: %s\n", title, why.text);
    exit(1);
  }
  gv_msg_clear(&d);
  if (!markdown)
    return;
  printf("\n#### %s\n", title);
  if (m != NULL && m->body != NULL) {
    text_block("Body bytes (signed)", m->body);
    hex_line("message id = BLAKE2b-256(body)", m->id, 32);
    hex_line("signature over \"grapevine/1 msg\" || id", m->sig, 64);
  }
  text_block("Message bytes", wire);
}

static void seal_emit(const char *dir, const char *file, const char *title,
                      gv_msg *m, const gv_identity *id) {
  char *wire;
  size_t len;
  if (gv_msg_seal(m, id, &wire, &len) < 0)
    die("seal");
  emit(dir, file, title, m, wire, len);
  free(wire);
}

static void link_emit(const char *dir, const char *file, gv_msg *m) {
  char *wire;
  size_t len;
  if (gv_msg_encode_link(m, &wire, &len) < 0)
    die("encode");
  emit(dir, file, gv_msg_type_name(m->type), NULL, wire, len);
  free(wire);
  if (markdown) {
    uint8_t *pt = malloc(GV_CHAN_HDR + len);
    if (pt == NULL)
      die("out of memory");
    len = link_plaintext(m, pt, GV_CHAN_HDR + len);
    printf("\nOn the %s channel:\n\n", gv_chan_name(pt[0]));
    hex_line("plaintext, channel byte first", pt, len);
    free(pt);
  }
}

static void message_vectors(const gv_identity *alice, const gv_identity *bob,
                            const char *dir) {
  gv_msg ann = {0}, upd = {0}, req = {0}, resp = {0}, hb = {0}, l = {0};

  if (markdown)
    printf("\n### 7.4 Gossip messages\n\nAll at `ts` = %lld; they validate "
           "with the receiver's clock at the same instant. Each travels on "
           "the gossip channel: its plaintext is the byte `01` followed by "
           "the message bytes shown (§5.1).\n",
           T0);
  ann.type = GV_MSG_PEER_ANNOUNCEMENT;
  ann.ttl = GV_TTL_ANNOUNCE;
  ann.seq = 1;
  ann.ts = T0;
  ann.u.peer.broadcasting = true;
  gv_addr_parse(&ann.u.peer.addrs[0], "198.51.100.7:7411", 17);
  ann.u.peer.n_addrs = 1;
  ann.u.peer.repos = "demo/hello";
  ann.u.peer.n_repos = 1;
  seal_emit(dir, "announcement.json", "PEER_ANNOUNCEMENT (bob, broadcasting)",
            &ann, bob);

  upd.type = GV_MSG_PEER_UPDATE;
  upd.ttl = GV_TTL_ANNOUNCE;
  upd.seq = 2;
  upd.ts = T0;
  upd.u.peer.repos = "demo/hello\0linux@v6.1";
  upd.u.peer.n_repos = 2;
  upd.u.peer.n_relays = 1; /* reached through bob (§6.5), by id */
  memcpy(upd.u.peer.relays[0], bob->pk, GV_ID_BYTES);
  seal_emit(dir, "update.json",
            "PEER_UPDATE (alice, silent: no address may appear; bob is her "
            "relay)",
            &upd, alice);

  req.type = GV_MSG_PEER_REQUEST;
  req.ttl = GV_TTL_REQUEST;
  req.seq = 3;
  req.ts = T0;
  strcpy(req.u.request.repo, "demo/hello");
  req.u.request.max = 8;
  seal_emit(dir, "request.json", "PEER_REQUEST (alice)", &req, alice);

  resp.type = GV_MSG_PEER_LIST_RESPONSE;
  resp.ttl = GV_TTL_RESPONSE;
  resp.seq = 4;
  resp.ts = T0;
  memcpy(resp.u.response.to, alice->pk, 32);
  memcpy(resp.u.response.request, req.id, 32);
  resp.u.response.n_peers = 1;
  resp.u.response.peers = &ann;
  seal_emit(dir, "response.json",
            "PEER_LIST_RESPONSE (bob answers alice with his own record)", &resp,
            bob);
  resp.u.response.peers = NULL;
  resp.u.response.n_peers = 0;

  hb.type = GV_MSG_HEARTBEAT;
  hb.ttl = GV_TTL_HEARTBEAT;
  hb.seq = 5;
  hb.ts = T0;
  seal_emit(dir, "heartbeat.json", "HEARTBEAT (bob)", &hb, bob);

  if (markdown)
    printf("\n### 7.5 Link messages\n\nHELLO, PING, PONG and GOODBYE "
           "travel on the link channel (`00`), IHAVE and IWANT on the gossip "
           "channel (`01`).\n");
  l.type = GV_MSG_HELLO; /* alice's, with her latest record */
  l.ts = T0;
  l.u.hello.seq = upd.seq;
  strcpy(l.u.hello.agent, "grapevine/0.2.0");
  l.u.hello.record = &upd;
  link_emit(dir, "hello.json", &l);
  l.u.hello.record = NULL;
  memset(&l, 0, sizeof(l));
  l.type = GV_MSG_PING;
  l.u.nonce = 7;
  link_emit(dir, "ping.json", &l);
  l.type = GV_MSG_PONG;
  link_emit(dir, "pong.json", &l);
  memset(&l, 0, sizeof(l));
  l.type = GV_MSG_IHAVE;
  l.u.ids.n = 1;
  memcpy(l.u.ids.ids[0], ann.id, 32);
  link_emit(dir, "ihave.json", &l);
  l.type = GV_MSG_IWANT;
  link_emit(dir, "iwant.json", &l);
  memset(&l, 0, sizeof(l));
  l.type = GV_MSG_GOODBYE;
  strcpy(l.u.reason, "shutdown");
  link_emit(dir, "goodbye.json", &l);

  gv_msg_clear(&ann);
  gv_msg_clear(&upd);
  gv_msg_clear(&req);
  gv_msg_clear(&resp);
  gv_msg_clear(&hb);
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  uint8_t seed[32];
  gv_identity alice, bob;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--markdown") == 0)
      markdown = 1;
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr, "usage: gen_vectors [--markdown] [--out DIR]\n");
      return 2;
    }
  }
  randombytes_set_implementation(&rng_impl);
  if (sodium_init() < 0)
    die("sodium_init");
  memset(seed, 1, 32);
  gv_id_from_seed(&alice, seed);
  memset(seed, 2, 32);
  gv_id_from_seed(&bob, seed);

  if (markdown) {
    printf("\n### 7.1 Identities\n\n");
    hex_line("alice's id (seed 32 × `0x01`)", alice.pk, 32);
    hex_line("bob's id (seed 32 × `0x02`)", bob.pk, 32);
  }
  handshake_vectors(&alice, &bob);
  message_vectors(&alice, &bob, dir);
  return 0;
}

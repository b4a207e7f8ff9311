/* The link handshake. Numbers in comments are the steps of PROTOCOL.md §4.2.
 *
 *   initiator                          responder
 *   HS_I_START  --gv_hs_start-->       HS_R_WAIT_M1
 *   HS_I_WAIT_M2                       --gv_hs_read(M1)--> HS_R_WAIT_M3
 *   --gv_hs_read(M2)--> HS_DONE        --gv_hs_read(M3)--> HS_DONE
 *   HS_DONE --gv_hs_finish--> HS_FINISHED
 *   any --failure--> HS_FAILED (wiped, terminal)
 */
#include "handshake.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[4] = {'G', 'V', 'H', 0x02};
static const char PROLOGUE[] = "grapevine/2 handshake";
static const char SIG_R_LABEL[] = "grapevine/2 responder sig";
static const char SIG_I_LABEL[] = "grapevine/2 initiator sig";
#define LABEL_LEN(s) (sizeof(s) - 1)
#define AEAD_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ID_SIG_LEN (GV_ID_BYTES + crypto_sign_BYTES)

enum hs_state {
  HS_I_START,
  HS_I_WAIT_M2,
  HS_R_WAIT_M1,
  HS_R_WAIT_M3,
  HS_DONE,
  HS_FINISHED,
  HS_FAILED,
};

struct gv_hs {
  enum hs_state state;
  gv_hs_role role;
  const gv_identity *self;
  int pinned;
  uint8_t pin[GV_ID_BYTES];
  uint8_t e_pk[crypto_kx_PUBLICKEYBYTES];
  uint8_t e_sk[crypto_kx_SECRETKEYBYTES];
  uint8_t m1[GV_HS_M1_LEN];
  uint8_t peer_e[crypto_kx_PUBLICKEYBYTES];
  uint8_t k_ir[crypto_kx_SESSIONKEYBYTES]; /* initiator-to-responder */
  uint8_t k_ri[crypto_kx_SESSIONKEYBYTES];
  uint8_t h[32]; /* running transcript hash */
  uint8_t id_r[GV_ID_BYTES];
  uint8_t id_i[GV_ID_BYTES];
  gv_hs_result res;
};

static void wipe_secrets(gv_hs *hs) {
  sodium_memzero(hs->e_sk, sizeof(hs->e_sk));
  sodium_memzero(hs->k_ir, sizeof(hs->k_ir));
  sodium_memzero(hs->k_ri, sizeof(hs->k_ri));
  sodium_memzero(hs->h, sizeof(hs->h));
}

static int fail(gv_hs *hs, int err) {
  wipe_secrets(hs);
  sodium_memzero(&hs->res, sizeof(hs->res));
  hs->state = HS_FAILED;
  return err;
}

int gv_hs_new(gv_hs **out, const gv_identity *self, gv_hs_role role,
              const uint8_t *pin) {
  gv_hs *hs;

  *out = NULL;
  if (role == GV_HS_RESPONDER && pin != NULL)
    return GV_EINVAL;
  if (sodium_init() < 0)
    return GV_ENOMEM;
  hs = calloc(1, sizeof(*hs));
  if (hs == NULL)
    return GV_ENOMEM;
  hs->role = role;
  hs->self = self;
  hs->state = role == GV_HS_INITIATOR ? HS_I_START : HS_R_WAIT_M1;
  if (pin != NULL) {
    hs->pinned = 1;
    memcpy(hs->pin, pin, GV_ID_BYTES);
  }
  crypto_kx_keypair(hs->e_pk, hs->e_sk);
  *out = hs;
  return 0;
}

void gv_hs_free(gv_hs *hs) {
  if (hs == NULL)
    return;
  sodium_memzero(hs, sizeof(*hs));
  free(hs);
}

int gv_hs_done(const gv_hs *hs) { return hs->state == HS_DONE; }

/* BLAKE2b-256(key; label || h) */
static void kdf(uint8_t out[32], const uint8_t key[32], const char *label,
                const uint8_t h[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, 32, 32);
  crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
  crypto_generichash_update(&st, h, 32);
  crypto_generichash_final(&st, out, 32);
  sodium_memzero(&st, sizeof(st));
}

/* h = BLAKE2b-256(a || b || c || d), absent parts NULL. */
static void hash4(uint8_t out[32], const void *a, size_t alen, const void *b,
                  size_t blen, const void *c, size_t clen, const void *d,
                  size_t dlen) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, a, alen);
  crypto_generichash_update(&st, b, blen);
  if (c != NULL)
    crypto_generichash_update(&st, c, clen);
  if (d != NULL)
    crypto_generichash_update(&st, d, dlen);
  crypto_generichash_final(&st, out, 32);
}

static const uint8_t ZERO_NONCE[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

/* Steps 2-3 (responder side) and 4 (initiator side): h2 and hk_R. */
static void derive_h2(gv_hs *hs, const uint8_t e_r[32]) {
  hash4(hs->h, PROLOGUE, LABEL_LEN(PROLOGUE), hs->m1, sizeof(hs->m1), e_r, 32,
        NULL, 0);
}

/* Step 7: h4 and the stream keys; wipes everything but the result. */
static void derive_final(gv_hs *hs, const uint8_t *c3) {
  uint8_t h4[32];
  uint8_t k_ir_s[32], k_ri_s[32];

  hash4(h4, hs->h, 32, c3, GV_HS_M3_LEN, hs->id_r, GV_ID_BYTES, hs->id_i,
        GV_ID_BYTES);
  kdf(k_ir_s, hs->k_ir, "stream i2r", h4);
  kdf(k_ri_s, hs->k_ri, "stream r2i", h4);
  if (hs->role == GV_HS_INITIATOR) {
    memcpy(hs->res.tx_key, k_ir_s, 32);
    memcpy(hs->res.rx_key, k_ri_s, 32);
    memcpy(hs->res.peer_id, hs->id_r, GV_ID_BYTES);
  } else {
    memcpy(hs->res.tx_key, k_ri_s, 32);
    memcpy(hs->res.rx_key, k_ir_s, 32);
    memcpy(hs->res.peer_id, hs->id_i, GV_ID_BYTES);
  }
  sodium_memzero(h4, sizeof(h4));
  sodium_memzero(k_ir_s, sizeof(k_ir_s));
  sodium_memzero(k_ri_s, sizeof(k_ri_s));
  wipe_secrets(hs);
  hs->state = HS_DONE;
}

int gv_hs_start(gv_hs *hs, uint8_t out[GV_HS_MSG_MAX], size_t *out_len) {
  if (hs->state != HS_I_START)
    return fail(hs, GV_ESTATE);
  /* 1. M1 = MAGIC || e_I */
  memcpy(hs->m1, MAGIC, 4);
  memcpy(hs->m1 + 4, hs->e_pk, 32);
  memcpy(out, hs->m1, GV_HS_M1_LEN);
  *out_len = GV_HS_M1_LEN;
  hs->state = HS_I_WAIT_M2;
  return 0;
}

/* Responder: M1 in, M2 out. */
static int read_m1(gv_hs *hs, const uint8_t *msg, size_t len, uint8_t *out,
                   size_t *out_len) {
  uint8_t hk_r[32], tbs[LABEL_LEN(SIG_R_LABEL) + 64], pt[ID_SIG_LEN];
  unsigned long long clen;

  /* 2. check M1, derive the session keys */
  if (len != GV_HS_M1_LEN || memcmp(msg, MAGIC, 3) != 0)
    return fail(hs, GV_EHANDSHAKE);
  if (msg[3] != MAGIC[3])
    return fail(hs, GV_EVERSION);
  memcpy(hs->m1, msg, GV_HS_M1_LEN);
  memcpy(hs->peer_e, msg + 4, 32);
  if (crypto_kx_server_session_keys(hs->k_ir, hs->k_ri, hs->e_pk, hs->e_sk,
                                    hs->peer_e) != 0)
    return fail(hs, GV_EHANDSHAKE);
  memcpy(hs->id_r, hs->self->pk, GV_ID_BYTES);

  /* 3. h2, hk_R, sig_R = Sign(sk_R, SIG_R_LABEL || h2 || id_R), c2 */
  derive_h2(hs, hs->e_pk);
  kdf(hk_r, hs->k_ri, "hs r2i", hs->h);
  memcpy(tbs, SIG_R_LABEL, LABEL_LEN(SIG_R_LABEL));
  memcpy(tbs + LABEL_LEN(SIG_R_LABEL), hs->h, 32);
  memcpy(tbs + LABEL_LEN(SIG_R_LABEL) + 32, hs->id_r, 32);
  memcpy(pt, hs->id_r, GV_ID_BYTES);
  crypto_sign_detached(pt + GV_ID_BYTES, NULL, tbs, sizeof(tbs), hs->self->sk);
  memcpy(out, hs->e_pk, 32);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + 32, &clen, pt, sizeof(pt),
                                             hs->h, 32, NULL, ZERO_NONCE, hk_r);
  *out_len = GV_HS_M2_LEN;

  /* 5 (first half): h3 = H(h2 || c2) */
  hash4(hs->h, hs->h, 32, out + 32, GV_HS_M2_LEN - 32, NULL, 0, NULL, 0);
  hs->state = HS_R_WAIT_M3;
  sodium_memzero(hk_r, sizeof(hk_r));
  sodium_memzero(pt, sizeof(pt));
  return 0;
}

/* Initiator: M2 in, M3 out. */
static int read_m2(gv_hs *hs, const uint8_t *msg, size_t len, uint8_t *out,
                   size_t *out_len) {
  uint8_t hk[32], pt[ID_SIG_LEN];
  uint8_t tbs_r[LABEL_LEN(SIG_R_LABEL) + 64];
  uint8_t tbs_i[LABEL_LEN(SIG_I_LABEL) + 96];
  unsigned long long plen, clen;
  int rc = 0;

  /* 4. session keys, decrypt c2, pin check, verify sig_R */
  if (len != GV_HS_M2_LEN) {
    rc = GV_EHANDSHAKE;
    goto out;
  }
  memcpy(hs->peer_e, msg, 32);
  if (crypto_kx_client_session_keys(hs->k_ri, hs->k_ir, hs->e_pk, hs->e_sk,
                                    hs->peer_e) != 0) {
    rc = GV_EHANDSHAKE;
    goto out;
  }
  derive_h2(hs, hs->peer_e);
  kdf(hk, hs->k_ri, "hs r2i", hs->h);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, msg + 32,
                                                 len - 32, hs->h, 32,
                                                 ZERO_NONCE, hk) != 0 ||
      plen != ID_SIG_LEN) {
    rc = GV_EDECRYPT;
    goto out;
  }
  memcpy(hs->id_r, pt, GV_ID_BYTES);
  if (hs->pinned && sodium_memcmp(hs->id_r, hs->pin, GV_ID_BYTES) != 0) {
    rc = GV_EPEERID;
    goto out;
  }
  memcpy(tbs_r, SIG_R_LABEL, LABEL_LEN(SIG_R_LABEL));
  memcpy(tbs_r + LABEL_LEN(SIG_R_LABEL), hs->h, 32);
  memcpy(tbs_r + LABEL_LEN(SIG_R_LABEL) + 32, hs->id_r, 32);
  if (crypto_sign_verify_detached(pt + GV_ID_BYTES, tbs_r, sizeof(tbs_r),
                                  hs->id_r) != 0) {
    rc = GV_EBADSIG;
    goto out;
  }

  /* 5. h3, hk_I, sig_I = Sign(sk_I, SIG_I_LABEL || h3 || id_R || id_I), c3 */
  hash4(hs->h, hs->h, 32, msg + 32, len - 32, NULL, 0, NULL, 0);
  kdf(hk, hs->k_ir, "hs i2r", hs->h);
  memcpy(hs->id_i, hs->self->pk, GV_ID_BYTES);
  memcpy(tbs_i, SIG_I_LABEL, LABEL_LEN(SIG_I_LABEL));
  memcpy(tbs_i + LABEL_LEN(SIG_I_LABEL), hs->h, 32);
  memcpy(tbs_i + LABEL_LEN(SIG_I_LABEL) + 32, hs->id_r, 32);
  memcpy(tbs_i + LABEL_LEN(SIG_I_LABEL) + 64, hs->id_i, 32);
  memcpy(pt, hs->id_i, GV_ID_BYTES);
  crypto_sign_detached(pt + GV_ID_BYTES, NULL, tbs_i, sizeof(tbs_i),
                       hs->self->sk);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, pt, sizeof(pt), hs->h,
                                             32, NULL, ZERO_NONCE, hk);
  *out_len = GV_HS_M3_LEN;

  /* 7. */
  derive_final(hs, out);
out:
  sodium_memzero(hk, sizeof(hk));
  sodium_memzero(pt, sizeof(pt));
  return rc < 0 ? fail(hs, rc) : 0;
}

/* Responder: M3 in, nothing out. */
static int read_m3(gv_hs *hs, const uint8_t *msg, size_t len) {
  uint8_t hk[32], pt[ID_SIG_LEN];
  uint8_t tbs[LABEL_LEN(SIG_I_LABEL) + 96];
  unsigned long long plen;
  int rc = 0;

  /* 6. decrypt c3, verify sig_I */
  if (len != GV_HS_M3_LEN) {
    rc = GV_EHANDSHAKE;
    goto out;
  }
  kdf(hk, hs->k_ir, "hs i2r", hs->h);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          pt, &plen, NULL, msg, len, hs->h, 32, ZERO_NONCE, hk) != 0 ||
      plen != ID_SIG_LEN) {
    rc = GV_EDECRYPT;
    goto out;
  }
  memcpy(hs->id_i, pt, GV_ID_BYTES);
  memcpy(tbs, SIG_I_LABEL, LABEL_LEN(SIG_I_LABEL));
  memcpy(tbs + LABEL_LEN(SIG_I_LABEL), hs->h, 32);
  memcpy(tbs + LABEL_LEN(SIG_I_LABEL) + 32, hs->id_r, 32);
  memcpy(tbs + LABEL_LEN(SIG_I_LABEL) + 64, hs->id_i, 32);
  if (crypto_sign_verify_detached(pt + GV_ID_BYTES, tbs, sizeof(tbs),
                                  hs->id_i) != 0) {
    rc = GV_EBADSIG;
    goto out;
  }
  /* 7. */
  derive_final(hs, msg);
out:
  sodium_memzero(hk, sizeof(hk));
  sodium_memzero(pt, sizeof(pt));
  return rc < 0 ? fail(hs, rc) : 0;
}

int gv_hs_read(gv_hs *hs, const uint8_t *msg, size_t len,
               uint8_t out[GV_HS_MSG_MAX], size_t *out_len) {
  *out_len = 0;
  switch (hs->state) {
  case HS_R_WAIT_M1: return read_m1(hs, msg, len, out, out_len);
  case HS_I_WAIT_M2: return read_m2(hs, msg, len, out, out_len);
  case HS_R_WAIT_M3: return read_m3(hs, msg, len);
  default: return fail(hs, hs->state == HS_FAILED ? GV_ESTATE : GV_EHANDSHAKE);
  }
}

int gv_hs_finish(gv_hs *hs, gv_hs_result *res) {
  if (hs->state != HS_DONE)
    return GV_ESTATE;
  *res = hs->res;
  sodium_memzero(&hs->res, sizeof(hs->res));
  hs->state = HS_FINISHED;
  return 0;
}

/* The relay's wire format (docs/RELAY.md §4.2, §5.1, §6). Section numbers
 * in comments are RELAY.md's. */
#include "relaywire.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "be.h"

static const char TEAM_ID_LABEL[] = "grapevine/2 team id";
static const char TEAM_AUTH_LABEL[] = "grapevine/2 team auth";
static const char TEAM_DIR_LABEL[] = "grapevine/2 team dir";
static const char MAC_LABEL[] = "grapevine/2 relay";
#define TOKEN_PREFIX_LEN (sizeof(GV_RW_TOKEN_PREFIX) - 1)
#define TOKEN_BIN (GV_RW_KEY_BYTES + GV_ID_BYTES)

_Static_assert(GV_RW_NONCE_BYTES == crypto_box_NONCEBYTES, "nonce size");
_Static_assert(GV_RW_MAC_BYTES == crypto_box_MACBYTES, "box mac size");
_Static_assert(GV_RW_KEY_BYTES == crypto_box_BEFORENMBYTES, "box key size");
_Static_assert(GV_RW_ROUTE_HDR == 1 + 2 * GV_ID_BYTES + 1 + GV_RW_ID_BYTES,
               "ROUTE header");
_Static_assert(GV_RW_INNER_HDR == 2 + GV_RW_TEAM_ID8 + GV_RW_TEAM_MAC,
               "inner header");
_Static_assert(GV_RW_AGENT_MAX == 2 * GV_RW_PART_MAX + 1, "project:name");
_Static_assert(TOKEN_PREFIX_LEN +
                       sodium_base64_ENCODED_LEN(
                           TOKEN_BIN,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) -
                       1 ==
                   GV_RW_TOKEN_LEN,
               "token length");
/* The largest DATA fits the sealed limit. */
_Static_assert(4 + 8 + 2 * (1 + GV_RW_AGENT_MAX) + 1 + GV_RW_THREAD_MAX + 4 +
                       GV_RW_PAYLOAD_MAX <=
                   GV_RW_BODY_MAX,
               "DATA fits");

/* ---- kinds ---- */

const char *gv_rw_kind_name(unsigned kind) {
  switch (kind) {
#define XX(name, num, text)                                                    \
  case num: return text;
    GV_RW_KIND_MAP(XX)
#undef XX
  default: return NULL;
  }
}

int gv_rw_kind_is_control(unsigned kind) {
  return kind == GV_RW_JOIN || kind == GV_RW_MEMBERS || kind == GV_RW_DIR;
}

/* The outer id rule (§6.1): zero for control packets, non-zero otherwise. */
static int check_id(unsigned kind, const uint8_t id[GV_RW_ID_BYTES],
                    gv_why *why) {
  int zero = sodium_is_zero(id, GV_RW_ID_BYTES);

  if (gv_rw_kind_is_control(kind) && !zero)
    return gv_fail(why, GV_EFIELD, "%s carries a non-zero id",
                   gv_rw_kind_name(kind));
  if (!gv_rw_kind_is_control(kind) && zero)
    return gv_fail(why, GV_EFIELD, "%s carries the zero id",
                   gv_rw_kind_name(kind));
  return 0;
}

/* ---- hop packets (§6.1, §6.2) ---- */

static int check_route(const gv_rw_route *r, gv_why *why) {
  if (r->hops >= GV_RW_HOPS_MAX)
    return gv_fail(why, GV_ERANGE, "ROUTE hops %u, at most %u", r->hops,
                   GV_RW_HOPS_MAX - 1);
  if (r->sealed_len < GV_RW_SEAL_OVERHEAD)
    return gv_fail(why, GV_EFRAME,
                   "ROUTE sealed part of %zu bytes, at least %u", r->sealed_len,
                   (unsigned)GV_RW_SEAL_OVERHEAD);
  if (r->sealed_len > GV_RW_SEALED_MAX)
    return gv_fail(why, GV_ETOOBIG,
                   "ROUTE sealed part of %zu bytes, at most %u", r->sealed_len,
                   GV_RW_SEALED_MAX);
  return 0;
}

int gv_rw_hop_decode(const uint8_t *b, size_t len, gv_rw_hop *h, gv_why *why) {
  gv_rw_route *r = &h->u.route;

  memset(h, 0, sizeof(*h));
  if (len == 0)
    return gv_fail(why, GV_ETYPE, "empty relay message");
  h->kind = b[0];
  switch (b[0]) {
  case GV_RW_CREDIT:
    if (len != GV_RW_CREDIT_LEN)
      return gv_fail(why, GV_EFRAME, "CREDIT of %zu bytes, must be %u", len,
                     GV_RW_CREDIT_LEN);
    h->u.window = gv_be_get32(b + 1);
    return 0;
  case GV_RW_ROUTE:
    if (len < GV_RW_ROUTE_HDR)
      return gv_fail(why, GV_EFRAME, "ROUTE of %zu bytes, header is %u", len,
                     GV_RW_ROUTE_HDR);
    memcpy(r->dst, b + 1, GV_ID_BYTES);
    memcpy(r->src, b + 1 + GV_ID_BYTES, GV_ID_BYTES);
    r->hops = b[1 + 2 * GV_ID_BYTES];
    memcpy(r->id, b + 2 + 2 * GV_ID_BYTES, GV_RW_ID_BYTES);
    r->sealed = b + GV_RW_ROUTE_HDR;
    r->sealed_len = len - GV_RW_ROUTE_HDR;
    return check_route(r, why);
  default: return gv_fail(why, GV_ETYPE, "unknown relay hop kind 0x%02x", b[0]);
  }
}

size_t gv_rw_route_size(size_t sealed_len) {
  return GV_RW_ROUTE_HDR + sealed_len;
}

int gv_rw_route_encode(const gv_rw_route *r, uint8_t *out, size_t cap,
                       size_t *len, gv_why *why) {
  int rc = check_route(r, why);

  if (rc < 0)
    return rc;
  if (cap < gv_rw_route_size(r->sealed_len))
    return gv_fail(why, GV_ETOOBIG, "ROUTE needs %zu bytes, buffer has %zu",
                   gv_rw_route_size(r->sealed_len), cap);
  /* The sealed part first: it may sit where it belongs already. */
  if (r->sealed != out + GV_RW_ROUTE_HDR)
    memmove(out + GV_RW_ROUTE_HDR, r->sealed, r->sealed_len);
  out[0] = GV_RW_ROUTE;
  memcpy(out + 1, r->dst, GV_ID_BYTES);
  memcpy(out + 1 + GV_ID_BYTES, r->src, GV_ID_BYTES);
  out[1 + 2 * GV_ID_BYTES] = r->hops;
  memcpy(out + 2 + 2 * GV_ID_BYTES, r->id, GV_RW_ID_BYTES);
  *len = gv_rw_route_size(r->sealed_len);
  return 0;
}

void gv_rw_credit_encode(uint32_t window, uint8_t out[GV_RW_CREDIT_LEN]) {
  out[0] = GV_RW_CREDIT;
  gv_be_put32(out + 1, window);
}

/* ---- team keys and the join token (§4.2) ---- */

static void derive(uint8_t out[GV_RW_KEY_BYTES],
                   const uint8_t T[GV_RW_KEY_BYTES], const char *label) {
  crypto_generichash(out, GV_RW_KEY_BYTES, (const uint8_t *)label,
                     strlen(label), T, GV_RW_KEY_BYTES);
}

void gv_rw_team_keys(const uint8_t T[GV_RW_KEY_BYTES], gv_rw_team *k) {
  derive(k->team_id, T, TEAM_ID_LABEL);
  derive(k->auth, T, TEAM_AUTH_LABEL);
  derive(k->dir, T, TEAM_DIR_LABEL);
}

void gv_rw_team_keys_wipe(gv_rw_team *k) { sodium_memzero(k, sizeof(*k)); }

void gv_rw_token_encode(const uint8_t T[GV_RW_KEY_BYTES],
                        const uint8_t inviter[GV_ID_BYTES],
                        char out[GV_RW_TOKEN_LEN + 1]) {
  uint8_t bin[TOKEN_BIN];

  memcpy(bin, T, GV_RW_KEY_BYTES);
  memcpy(bin + GV_RW_KEY_BYTES, inviter, GV_ID_BYTES);
  memcpy(out, GV_RW_TOKEN_PREFIX, TOKEN_PREFIX_LEN);
  sodium_bin2base64(out + TOKEN_PREFIX_LEN,
                    GV_RW_TOKEN_LEN + 1 - TOKEN_PREFIX_LEN, bin, sizeof(bin),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(bin, sizeof(bin));
}

static int b64url_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int gv_rw_token_decode(const char *text, size_t len, uint8_t T[GV_RW_KEY_BYTES],
                       uint8_t inviter[GV_ID_BYTES], gv_why *why) {
  uint8_t bin[TOKEN_BIN], curve[crypto_scalarmult_curve25519_BYTES];
  const char *end = NULL;
  size_t bin_len = 0;
  int rc = 0;

  if (len < TOKEN_PREFIX_LEN ||
      memcmp(text, GV_RW_TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
    return gv_fail(why, GV_EFIELD,
                   "not a team token: it must start with \"%s\"",
                   GV_RW_TOKEN_PREFIX);
  if (len != GV_RW_TOKEN_LEN)
    return gv_fail(why, GV_EFIELD,
                   "team token of %zu characters, must be %u (truncated or "
                   "pasted twice?)",
                   len, GV_RW_TOKEN_LEN);
  /* The alphabet is checked here: libsodium's decoder takes some bytes
   * over 0x7f for digits (found by fuzz_relaywire). */
  for (size_t i = TOKEN_PREFIX_LEN; i < len; i++)
    if (!b64url_digit(text[i]))
      return gv_fail(why, GV_EFIELD,
                     "team token is not base64url (A-Z a-z 0-9 - _, no "
                     "padding): bad character at %zu",
                     i);
  /* Exactly 86 digits decode to exactly 64 bytes; libsodium refuses
   * non-zero padding bits, so each token has one spelling. */
  if (sodium_base642bin(bin, sizeof(bin), text + TOKEN_PREFIX_LEN,
                        len - TOKEN_PREFIX_LEN, NULL, &bin_len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      bin_len != sizeof(bin) || end != text + len) {
    rc = gv_fail(why, GV_EFIELD,
                 "team token is not base64url (A-Z a-z 0-9 - _, no padding)");
    goto out;
  }
  if (crypto_sign_ed25519_pk_to_curve25519(curve, bin + GV_RW_KEY_BYTES) != 0) {
    rc = gv_fail(why, GV_EFIELD,
                 "team token names an inviter that is not a valid node id");
    goto out;
  }
  memcpy(T, bin, GV_RW_KEY_BYTES);
  memcpy(inviter, bin + GV_RW_KEY_BYTES, GV_ID_BYTES);
out:
  sodium_memzero(bin, sizeof(bin));
  return rc;
}

/* ---- peer keys and sealing (§6.3) ---- */

int gv_rw_peer_key(const gv_identity *self, const uint8_t peer[GV_ID_BYTES],
                   gv_rw_boxkey *out, gv_why *why) {
  uint8_t own_sk[crypto_scalarmult_curve25519_BYTES];
  uint8_t peer_pk[crypto_scalarmult_curve25519_BYTES];
  int rc = 0;

  if (crypto_sign_ed25519_pk_to_curve25519(peer_pk, peer) != 0) {
    rc = gv_fail(why, GV_EFIELD, "peer id is not a valid Ed25519 point");
    goto out;
  }
  if (crypto_sign_ed25519_sk_to_curve25519(own_sk, self->sk) != 0 ||
      crypto_box_beforenm(out->k, peer_pk, own_sk) != 0) {
    rc = gv_fail(why, GV_EFIELD, "peer id gives a degenerate shared key");
    goto out;
  }
out:
  if (rc < 0)
    sodium_memzero(out, sizeof(*out));
  sodium_memzero(own_sk, sizeof(own_sk));
  return rc;
}

void gv_rw_peer_key_wipe(gv_rw_boxkey *k) { sodium_memzero(k, sizeof(*k)); }

size_t gv_rw_sealed_size(size_t body_len) {
  return GV_RW_SEAL_OVERHEAD + body_len;
}

/* team_mac = BLAKE2b-256(K_auth; label || src || dst || id || kind || body) */
static void team_mac(uint8_t mac[GV_RW_TEAM_MAC], const gv_rw_team *team,
                     const gv_rw_route *hdr, uint8_t kind, const uint8_t *body,
                     size_t body_len) {
  crypto_generichash_state st;

  crypto_generichash_init(&st, team->auth, GV_RW_KEY_BYTES, GV_RW_TEAM_MAC);
  crypto_generichash_update(&st, (const uint8_t *)MAC_LABEL,
                            sizeof(MAC_LABEL) - 1);
  crypto_generichash_update(&st, hdr->src, GV_ID_BYTES);
  crypto_generichash_update(&st, hdr->dst, GV_ID_BYTES);
  crypto_generichash_update(&st, hdr->id, GV_RW_ID_BYTES);
  crypto_generichash_update(&st, &kind, 1);
  crypto_generichash_update(&st, body, body_len);
  crypto_generichash_final(&st, mac, GV_RW_TEAM_MAC);
  sodium_memzero(&st, sizeof(st));
}

int gv_rw_seal(const gv_rw_boxkey *k, const gv_rw_team *team,
               const uint8_t nonce[GV_RW_NONCE_BYTES], const gv_rw_route *hdr,
               unsigned kind, const uint8_t *body, size_t body_len,
               uint8_t *out, size_t cap, gv_why *why) {
  uint8_t *inner;
  int rc;

  if (gv_rw_kind_name(kind) == NULL)
    return gv_fail(why, GV_ETYPE, "0x%02x is no inner kind", kind);
  if ((rc = check_id(kind, hdr->id, why)) < 0)
    return rc;
  if (body_len > GV_RW_BODY_MAX)
    return gv_fail(why, GV_ETOOBIG, "%s body of %zu bytes, at most %u",
                   gv_rw_kind_name(kind), body_len, GV_RW_BODY_MAX);
  if (cap < gv_rw_sealed_size(body_len))
    return gv_fail(why, GV_ETOOBIG, "sealing needs %zu bytes, buffer has %zu",
                   gv_rw_sealed_size(body_len), cap);
  /* The plaintext is laid out where its ciphertext ends up, less the box
   * MAC in front: crypto_box_easy_afternm encrypts in place. */
  inner = out + GV_RW_NONCE_BYTES + GV_RW_MAC_BYTES;
  inner[0] = GV_RW_VERSION;
  inner[1] = (uint8_t)kind;
  memcpy(inner + 2, team->team_id, GV_RW_TEAM_ID8);
  team_mac(inner + 2 + GV_RW_TEAM_ID8, team, hdr, (uint8_t)kind, body,
           body_len);
  if (body_len > 0)
    memcpy(inner + GV_RW_INNER_HDR, body, body_len);
  memcpy(out, nonce, GV_RW_NONCE_BYTES);
  if (crypto_box_easy_afternm(out + GV_RW_NONCE_BYTES, inner,
                              GV_RW_INNER_HDR + body_len, nonce, k->k) != 0)
    return gv_fail(why, GV_EINVAL, "crypto_box refused the message");
  return 0;
}

int gv_rw_open(const gv_rw_boxkey *k, const gv_rw_route *r,
               const gv_rw_team *teams, size_t n_teams, uint8_t *buf,
               size_t cap, gv_rw_opened *out, gv_why *why) {
  uint8_t mac[GV_RW_TEAM_MAC];
  const uint8_t *body;
  size_t inner_len, body_len;
  int rc;

  memset(out, 0, sizeof(*out));
  if ((rc = check_route(r, why)) < 0)
    return rc;
  inner_len = r->sealed_len - GV_RW_NONCE_BYTES - GV_RW_MAC_BYTES;
  if (cap < inner_len)
    return gv_fail(why, GV_ETOOBIG, "opening needs %zu bytes, buffer has %zu",
                   inner_len, cap);
  if (crypto_box_open_easy_afternm(buf, r->sealed + GV_RW_NONCE_BYTES,
                                   r->sealed_len - GV_RW_NONCE_BYTES, r->sealed,
                                   k->k) != 0)
    return gv_fail(why, GV_EDECRYPT,
                   "sealed packet does not open: not sealed by its src for "
                   "us, or altered");
  if (buf[0] != GV_RW_VERSION)
    return gv_fail(why, GV_EVERSION, "sealed packet of version %u, not %u",
                   buf[0], GV_RW_VERSION);
  body = buf + GV_RW_INNER_HDR;
  body_len = inner_len - GV_RW_INNER_HDR;
  for (size_t i = 0; i < n_teams && out->team == NULL; i++) {
    if (memcmp(teams[i].team_id, buf + 2, GV_RW_TEAM_ID8) != 0)
      continue; /* team_id8 only picks candidates; the mac decides */
    team_mac(mac, &teams[i], r, buf[1], body, body_len);
    if (crypto_verify_32(mac, buf + 2 + GV_RW_TEAM_ID8) == 0)
      out->team = &teams[i];
  }
  sodium_memzero(mac, sizeof(mac));
  if (out->team == NULL)
    return gv_fail(why, GV_EBADSIG,
                   "not in team: no team of ours proves this packet (or "
                   "its outer id was altered)");
  if (gv_rw_kind_name(buf[1]) == NULL) {
    out->team = NULL;
    return gv_fail(why, GV_ETYPE, "0x%02x is no inner kind", buf[1]);
  }
  if ((rc = check_id(buf[1], r->id, why)) < 0) {
    out->team = NULL;
    return rc;
  }
  out->kind = buf[1];
  out->body = body;
  out->body_len = body_len;
  return 0;
}

/* ---- inner bodies (§6.4) ---- */

int gv_rw_name_check(const char *s, size_t len) {
  if (len == 0 || len > GV_RW_PART_MAX)
    return GV_EFIELD;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return GV_EFIELD;
  }
  return 0;
}

int gv_rw_agent_check(const char *s, size_t len) {
  const char *colon = len > 0 ? memchr(s, ':', len) : NULL;
  size_t plen;

  if (colon == NULL)
    return GV_EFIELD;
  plen = (size_t)(colon - s);
  if (gv_rw_name_check(s, plen) < 0 ||
      gv_rw_name_check(colon + 1, len - plen - 1) < 0)
    return GV_EFIELD;
  return 0;
}

static int printable(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
      return 0;
  return 1;
}

/* A bounded reader over a body. Every get_* checks the bytes are there. */
typedef struct rd {
  const uint8_t *p;
  size_t left;
  const char *kind; /* for reasons */
} rd;

static int need(rd *r, size_t n, const char *what, gv_why *why) {
  if (r->left < n)
    return gv_fail(why, GV_EFRAME, "%s: %s needs %zu bytes, %zu left", r->kind,
                   what, n, r->left);
  return 0;
}

static int get_u8(rd *r, uint8_t *v, const char *what, gv_why *why) {
  int rc = need(r, 1, what, why);
  if (rc < 0)
    return rc;
  *v = r->p[0];
  r->p++;
  r->left--;
  return 0;
}

static int get_u16(rd *r, uint16_t *v, const char *what, gv_why *why) {
  int rc = need(r, 2, what, why);
  if (rc < 0)
    return rc;
  *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
  r->p += 2;
  r->left -= 2;
  return 0;
}

static int get_u32(rd *r, uint32_t *v, const char *what, gv_why *why) {
  int rc = need(r, 4, what, why);
  if (rc < 0)
    return rc;
  *v = gv_be_get32(r->p);
  r->p += 4;
  r->left -= 4;
  return 0;
}

static int get_u64(rd *r, uint64_t *v, const char *what, gv_why *why) {
  int rc = need(r, 8, what, why);
  if (rc < 0)
    return rc;
  *v = (uint64_t)gv_be_get32(r->p) << 32 | gv_be_get32(r->p + 4);
  r->p += 8;
  r->left -= 8;
  return 0;
}

static int get_bytes(rd *r, size_t n, const uint8_t **v, const char *what,
                     gv_why *why) {
  int rc = need(r, n, what, why);
  if (rc < 0)
    return rc;
  *v = r->p;
  r->p += n;
  r->left -= n;
  return 0;
}

/* u8 length || bytes */
static int get_str(rd *r, gv_rw_str *s, const char *what, gv_why *why) {
  const uint8_t *b;
  uint8_t n;
  int rc;

  if ((rc = get_u8(r, &n, what, why)) < 0 ||
      (rc = get_bytes(r, n, &b, what, why)) < 0)
    return rc;
  s->s = (const char *)b;
  s->len = n;
  return 0;
}

/* Field checks, shared by the decoder and the encoder. */
static int check_agent(const gv_rw_str *s, const char *kind, const char *what,
                       gv_why *why) {
  if (gv_rw_agent_check(s->s, s->len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "%s: '%s' is not project:name (each part 1..%d of "
                   "A-Za-z0-9._-)",
                   kind, what, GV_RW_PART_MAX);
  return 0;
}

static int check_part(const gv_rw_str *s, const char *what, size_t i,
                      gv_why *why) {
  if (gv_rw_name_check(s->s, s->len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "DIR entry %zu: bad %s (1..%d of A-Za-z0-9._-)", i, what,
                   GV_RW_PART_MAX);
  return 0;
}

static int check_data(const gv_rw_data *d, gv_why *why) {
  int rc;

  if (d->ttl_ms == 0 || d->ttl_ms > GV_RW_TTL_MAX_MS)
    return gv_fail(why, GV_ERANGE, "DATA: ttl_ms %u outside 1..%u", d->ttl_ms,
                   GV_RW_TTL_MAX_MS);
  if (d->seq == 0)
    return gv_fail(why, GV_ERANGE, "DATA: seq 0 (sequences start at 1)");
  if ((rc = check_agent(&d->from, "DATA", "from", why)) < 0 ||
      (rc = check_agent(&d->to, "DATA", "to", why)) < 0)
    return rc;
  if (d->thread.len > GV_RW_THREAD_MAX ||
      !printable(d->thread.s, d->thread.len))
    return gv_fail(why, GV_EFIELD,
                   "DATA: thread must be 0..%d printable ASCII bytes",
                   GV_RW_THREAD_MAX);
  if (d->payload_len > GV_RW_PAYLOAD_MAX)
    return gv_fail(why, GV_ETOOBIG, "DATA: payload of %zu bytes, at most %u",
                   d->payload_len, GV_RW_PAYLOAD_MAX);
  return 0;
}

static int check_gone(const gv_rw_body *m, gv_why *why) {
  int rc;

  if (m->u.gone.seq == 0)
    return gv_fail(why, GV_ERANGE, "GONE: seq 0 (sequences start at 1)");
  if ((rc = check_agent(&m->u.gone.from, "GONE", "from", why)) < 0 ||
      (rc = check_agent(&m->u.gone.to, "GONE", "to", why)) < 0)
    return rc;
  return 0;
}

static int decode_data(rd *r, gv_rw_data *d, gv_why *why) {
  uint32_t plen;
  int rc;

  if ((rc = get_u32(r, &d->ttl_ms, "ttl_ms", why)) < 0 ||
      (rc = get_u64(r, &d->seq, "seq", why)) < 0 ||
      (rc = get_str(r, &d->from, "from", why)) < 0 ||
      (rc = get_str(r, &d->to, "to", why)) < 0 ||
      (rc = get_str(r, &d->thread, "thread", why)) < 0 ||
      (rc = get_u32(r, &plen, "payload length", why)) < 0)
    return rc;
  /* The length is checked before the bytes are looked for, so an oversize
   * claim is TOOBIG, not a truncation. */
  if (plen > GV_RW_PAYLOAD_MAX)
    return gv_fail(why, GV_ETOOBIG, "DATA: payload of %u bytes, at most %u",
                   plen, GV_RW_PAYLOAD_MAX);
  if ((rc = get_bytes(r, plen, &d->payload, "payload", why)) < 0)
    return rc;
  d->payload_len = plen;
  return check_data(d, why);
}

static int decode_dir(rd *r, gv_rw_dir *d, gv_why *why) {
  gv_rw_dir_entry e;
  const uint8_t *start = NULL, *node;
  uint64_t ver;
  uint16_t n;
  size_t total = 0;
  int rc;

  if ((rc = get_u16(r, &d->n_nodes, "n_nodes", why)) < 0)
    return rc;
  if (d->n_nodes > GV_RW_MEMBERS_MAX)
    return gv_fail(why, GV_ELIMIT, "DIR of %u nodes, at most %d", d->n_nodes,
                   GV_RW_MEMBERS_MAX);
  start = r->p;
  for (size_t k = 0; k < d->n_nodes; k++) {
    if ((rc = get_bytes(r, GV_ID_BYTES, &node, "node", why)) < 0 ||
        (rc = get_u64(r, &ver, "ver", why)) < 0 ||
        (rc = get_u16(r, &n, "n", why)) < 0)
      return rc;
    if (ver == 0)
      return gv_fail(why, GV_ERANGE, "DIR block %zu: version 0", k);
    if ((total += n) > GV_RW_DIR_MAX)
      return gv_fail(why, GV_ELIMIT, "DIR of more than %d entries",
                     GV_RW_DIR_MAX);
    for (size_t i = 0; i < n; i++) {
      if ((rc = get_str(r, &e.project, "project", why)) < 0 ||
          (rc = check_part(&e.project, "project", i, why)) < 0 ||
          (rc = get_str(r, &e.name, "name", why)) < 0 ||
          (rc = check_part(&e.name, "name", i, why)) < 0 ||
          (rc = get_u8(r, &e.online, "online", why)) < 0)
        return rc;
      if (e.online > 1)
        return gv_fail(why, GV_ERANGE,
                       "DIR entry %zu: online is %u, not 0 or 1", i, e.online);
    }
  }
  d->nodes = NULL;
  d->raw = start;
  d->raw_len = (size_t)(r->p - start);
  return 0;
}

int gv_rw_body_decode(unsigned kind, const uint8_t *b, size_t len,
                      gv_rw_body *out, gv_why *why) {
  rd r = {b, len, gv_rw_kind_name(kind)};
  int rc = 0;

  memset(out, 0, sizeof(*out));
  if (r.kind == NULL)
    return gv_fail(why, GV_ETYPE, "0x%02x is no inner kind", kind);
  out->kind = (uint8_t)kind;
  switch (kind) {
  case GV_RW_DATA: rc = decode_data(&r, &out->u.data, why); break;
  case GV_RW_STORED:
  case GV_RW_DELIVERED:
  case GV_RW_READ:
  case GV_RW_JOIN: break;
  case GV_RW_FAILED:
    if ((rc = get_u8(&r, &out->u.reason, "reason", why)) == 0 &&
        (out->u.reason < GV_RW_FAIL_UNKNOWN_RECIPIENT ||
         out->u.reason > GV_RW_FAIL_EXPIRED))
      rc = gv_fail(why, GV_ERANGE, "FAILED: unknown reason %u", out->u.reason);
    break;
  case GV_RW_BUSY:
    rc = get_u32(&r, &out->u.retry_after_ms, "retry_after_ms", why);
    break;
  case GV_RW_MEMBERS:
    if ((rc = get_u16(&r, &out->u.members.n, "n", why)) < 0)
      break;
    if (out->u.members.n > GV_RW_MEMBERS_MAX) {
      rc = gv_fail(why, GV_ELIMIT, "MEMBERS of %u ids, at most %d",
                   out->u.members.n, GV_RW_MEMBERS_MAX);
      break;
    }
    rc = get_bytes(&r, (size_t)out->u.members.n * GV_ID_BYTES,
                   &out->u.members.ids, "ids", why);
    break;
  case GV_RW_DIR: rc = decode_dir(&r, &out->u.dir, why); break;
  case GV_RW_GONE:
    if ((rc = get_u64(&r, &out->u.gone.seq, "seq", why)) < 0 ||
        (rc = get_str(&r, &out->u.gone.from, "from", why)) < 0 ||
        (rc = get_str(&r, &out->u.gone.to, "to", why)) < 0)
      break;
    rc = check_gone(out, why);
    break;
  }
  if (rc == 0 && r.left != 0)
    rc =
        gv_fail(why, GV_EFRAME, "%s: %zu bytes after the body", r.kind, r.left);
  return rc;
}

int gv_rw_dir_node_next(const gv_rw_dir *d, size_t *off, gv_rw_dir_node *b) {
  const uint8_t *p = d->raw + *off, *q;

  if (*off >= d->raw_len)
    return 0;
  memset(b, 0, sizeof(*b));
  b->node = p;
  for (int i = 0; i < 8; i++)
    b->ver = b->ver << 8 | p[GV_ID_BYTES + i];
  b->n = (uint16_t)(p[GV_ID_BYTES + 8] << 8 | p[GV_ID_BYTES + 9]);
  q = b->raw = p + GV_ID_BYTES + 10;
  for (size_t i = 0; i < b->n; i++) {
    q += 1 + q[0]; /* project */
    q += 1 + q[0]; /* name */
    q += 1;        /* online */
  }
  b->raw_len = (size_t)(q - b->raw);
  *off = (size_t)(q - d->raw);
  return 1;
}

int gv_rw_dir_next(const gv_rw_dir_node *d, size_t *off, gv_rw_dir_entry *e) {
  const uint8_t *p = d->raw + *off;

  if (*off >= d->raw_len)
    return 0;
  e->project.len = p[0];
  e->project.s = (const char *)p + 1;
  p += 1 + e->project.len;
  e->name.len = p[0];
  e->name.s = (const char *)p + 1;
  p += 1 + e->name.len;
  e->online = p[0];
  *off = (size_t)(p + 1 - d->raw);
  return 1;
}

/* Checks m as the decoder would; *size is its body size. */
static int check_body(const gv_rw_body *m, size_t *size, gv_why *why) {
  const gv_rw_dir *d;
  size_t n = 0;
  int rc;

  switch (m->kind) {
  case GV_RW_DATA:
    if ((rc = check_data(&m->u.data, why)) < 0)
      return rc;
    n = 4 + 8 + 1 + m->u.data.from.len + 1 + m->u.data.to.len + 1 +
        m->u.data.thread.len + 4 + m->u.data.payload_len;
    break;
  case GV_RW_STORED:
  case GV_RW_DELIVERED:
  case GV_RW_READ:
  case GV_RW_JOIN: break;
  case GV_RW_FAILED:
    if (m->u.reason < GV_RW_FAIL_UNKNOWN_RECIPIENT ||
        m->u.reason > GV_RW_FAIL_EXPIRED)
      return gv_fail(why, GV_ERANGE, "FAILED: unknown reason %u", m->u.reason);
    n = 1;
    break;
  case GV_RW_BUSY: n = 4; break;
  case GV_RW_GONE:
    if ((rc = check_gone(m, why)) < 0)
      return rc;
    n = 8 + 1 + m->u.gone.from.len + 1 + m->u.gone.to.len;
    break;
  case GV_RW_MEMBERS:
    if (m->u.members.n > GV_RW_MEMBERS_MAX)
      return gv_fail(why, GV_ELIMIT, "MEMBERS of %u ids, at most %d",
                     m->u.members.n, GV_RW_MEMBERS_MAX);
    if (m->u.members.n > 0 && m->u.members.ids == NULL)
      return gv_fail(why, GV_EINVAL, "MEMBERS of %u ids without ids",
                     m->u.members.n);
    n = 2 + (size_t)m->u.members.n * GV_ID_BYTES;
    break;
  case GV_RW_DIR: {
    size_t total = 0;
    d = &m->u.dir;
    if (d->n_nodes > GV_RW_MEMBERS_MAX)
      return gv_fail(why, GV_ELIMIT, "DIR of %u nodes, at most %d", d->n_nodes,
                     GV_RW_MEMBERS_MAX);
    /* A decoded DIR has raw, not nodes: the caller fills nodes to encode. */
    if (d->n_nodes > 0 && d->nodes == NULL)
      return gv_fail(why, GV_EINVAL, "DIR of %u nodes without nodes",
                     d->n_nodes);
    n = 2;
    for (size_t k = 0; k < d->n_nodes; k++) {
      const gv_rw_dir_node *b = &d->nodes[k];
      if (b->node == NULL || b->ver == 0 || (b->n > 0 && b->list == NULL))
        return gv_fail(why, GV_EINVAL,
                       "DIR block %zu: no node, version or "
                       "list",
                       k);
      if ((total += b->n) > GV_RW_DIR_MAX)
        return gv_fail(why, GV_ELIMIT, "DIR of more than %d entries",
                       GV_RW_DIR_MAX);
      n += GV_ID_BYTES + 10;
      for (size_t i = 0; i < b->n; i++) {
        const gv_rw_dir_entry *e = &b->list[i];
        if ((rc = check_part(&e->project, "project", i, why)) < 0 ||
            (rc = check_part(&e->name, "name", i, why)) < 0)
          return rc;
        if (e->online > 1)
          return gv_fail(why, GV_ERANGE,
                         "DIR entry %zu: online is %u, not 0 or 1", i,
                         e->online);
        n += 3 + e->project.len + e->name.len;
      }
    }
    break;
  }
  default: return gv_fail(why, GV_ETYPE, "0x%02x is no inner kind", m->kind);
  }
  *size = n;
  return 0;
}

size_t gv_rw_body_size(const gv_rw_body *m) {
  size_t n;
  return check_body(m, &n, NULL) < 0 ? SIZE_MAX : n;
}

static uint8_t *put_str(uint8_t *p, const gv_rw_str *s) {
  *p++ = (uint8_t)s->len;
  if (s->len > 0)
    memcpy(p, s->s, s->len);
  return p + s->len;
}

int gv_rw_body_encode(const gv_rw_body *m, uint8_t *out, size_t cap,
                      size_t *len, gv_why *why) {
  const gv_rw_data *d = &m->u.data;
  uint8_t *p = out;
  size_t n;
  int rc;

  if ((rc = check_body(m, &n, why)) < 0)
    return rc;
  if (cap < n)
    return gv_fail(why, GV_ETOOBIG, "%s body needs %zu bytes, buffer has %zu",
                   gv_rw_kind_name(m->kind), n, cap);
  switch (m->kind) {
  case GV_RW_DATA:
    gv_be_put32(p, d->ttl_ms);
    gv_be_put32(p + 4, (uint32_t)(d->seq >> 32));
    gv_be_put32(p + 8, (uint32_t)d->seq);
    p = put_str(p + 12, &d->from);
    p = put_str(p, &d->to);
    p = put_str(p, &d->thread);
    gv_be_put32(p, (uint32_t)d->payload_len);
    if (d->payload_len > 0)
      memcpy(p + 4, d->payload, d->payload_len);
    p += 4 + d->payload_len;
    break;
  case GV_RW_FAILED: *p++ = m->u.reason; break;
  case GV_RW_GONE:
    gv_be_put32(p, (uint32_t)(m->u.gone.seq >> 32));
    gv_be_put32(p + 4, (uint32_t)m->u.gone.seq);
    p = put_str(p + 8, &m->u.gone.from);
    p = put_str(p, &m->u.gone.to);
    break;
  case GV_RW_BUSY:
    gv_be_put32(p, m->u.retry_after_ms);
    p += 4;
    break;
  case GV_RW_MEMBERS:
    *p++ = (uint8_t)(m->u.members.n >> 8);
    *p++ = (uint8_t)m->u.members.n;
    if (m->u.members.n > 0)
      memcpy(p, m->u.members.ids, (size_t)m->u.members.n * GV_ID_BYTES);
    p += (size_t)m->u.members.n * GV_ID_BYTES;
    break;
  case GV_RW_DIR:
    *p++ = (uint8_t)(m->u.dir.n_nodes >> 8);
    *p++ = (uint8_t)m->u.dir.n_nodes;
    for (size_t k = 0; k < m->u.dir.n_nodes; k++) {
      const gv_rw_dir_node *b = &m->u.dir.nodes[k];
      memcpy(p, b->node, GV_ID_BYTES);
      gv_be_put32(p + GV_ID_BYTES, (uint32_t)(b->ver >> 32));
      gv_be_put32(p + GV_ID_BYTES + 4, (uint32_t)b->ver);
      p[GV_ID_BYTES + 8] = (uint8_t)(b->n >> 8);
      p[GV_ID_BYTES + 9] = (uint8_t)b->n;
      p += GV_ID_BYTES + 10;
      for (size_t i = 0; i < b->n; i++) {
        p = put_str(p, &b->list[i].project);
        p = put_str(p, &b->list[i].name);
        *p++ = b->list[i].online;
      }
    }
    break;
  default: break; /* empty bodies */
  }
  *len = (size_t)(p - out);
  return 0;
}

/* ---- message ids (§5.1) ---- */

int gv_rw_id_random(uint8_t id[GV_RW_ID_BYTES],
                    const uint8_t rnd[GV_RW_ID_BYTES]) {
  if (sodium_is_zero(rnd, GV_RW_ID_BYTES))
    return GV_EINVAL;
  memcpy(id, rnd, GV_RW_ID_BYTES);
  return 0;
}

int gv_rw_id_from_key(uint8_t id[GV_RW_ID_BYTES],
                      const uint8_t origin[GV_ID_BYTES],
                      const uint8_t team_id[GV_RW_KEY_BYTES],
                      const char *sender, size_t sender_len, const char *key,
                      size_t key_len, gv_why *why) {
  crypto_generichash_state st;
  uint8_t l;

  if (gv_rw_agent_check(sender, sender_len) < 0)
    return gv_fail(why, GV_EFIELD, "sender is not project:name");
  if (key_len == 0 || key_len > GV_RW_IDEM_KEY_MAX || !printable(key, key_len))
    return gv_fail(why, GV_EFIELD,
                   "idempotency key must be 1..%d printable ASCII bytes",
                   GV_RW_IDEM_KEY_MAX);
  crypto_generichash_init(&st, NULL, 0, GV_RW_ID_BYTES);
  crypto_generichash_update(&st, origin, GV_ID_BYTES);
  crypto_generichash_update(&st, team_id, GV_RW_KEY_BYTES);
  l = (uint8_t)sender_len;
  crypto_generichash_update(&st, &l, 1);
  crypto_generichash_update(&st, (const uint8_t *)sender, sender_len);
  l = (uint8_t)key_len;
  crypto_generichash_update(&st, &l, 1);
  crypto_generichash_update(&st, (const uint8_t *)key, key_len);
  crypto_generichash_final(&st, id, GV_RW_ID_BYTES);
  return 0;
}

int gv_rw_id_fanout(uint8_t out[GV_RW_ID_BYTES],
                    const uint8_t id[GV_RW_ID_BYTES], uint32_t n) {
  uint8_t in[GV_RW_ID_BYTES + 4];

  if (n == 0)
    return GV_EINVAL;
  memcpy(in, id, GV_RW_ID_BYTES);
  gv_be_put32(in + GV_RW_ID_BYTES, n);
  crypto_generichash(out, GV_RW_ID_BYTES, in, sizeof(in), NULL, 0);
  return 0;
}

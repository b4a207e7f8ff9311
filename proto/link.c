#include "link.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define FRAME_MAX (GV_FRAME_MAX_PAYLOAD + SS_ABYTES)
/* As KEEP_CAP in frame.c: a larger scratch buffer is released when a
 * smaller message comes, not after each large one. */
#define SCRATCH_KEEP (64u * 1024u + 64u)

enum link_state {
  LINK_HANDSHAKE,
  LINK_OPEN,    /* sending stream open; receiving once rx_open */
  LINK_CLOSING, /* we sent FINAL */
  LINK_FAILED,
};

struct gv_link {
  enum link_state state;
  int rx_open;     /* peer's stream header received */
  int peer_closed; /* peer's FINAL received */
  gv_hs *hs;
  uint8_t peer_id[GV_ID_BYTES];
  uint8_t rx_key[GV_HS_KEY_BYTES]; /* kept until the peer's header arrives */
  crypto_secretstream_xchacha20poly1305_state tx, rx;
  gv_frame_dec dec;
  uint8_t *out; /* pending output: out[head .. head+len) */
  size_t head, len, cap;
  uint8_t *scratch; /* decrypted plaintext */
  size_t scratch_cap;
};

static int fail(gv_link *l, int err) {
  if (l->state != LINK_FAILED) {
    gv_hs_free(l->hs);
    l->hs = NULL;
    sodium_memzero(l->rx_key, sizeof(l->rx_key));
    sodium_memzero(&l->tx, sizeof(l->tx));
    sodium_memzero(&l->rx, sizeof(l->rx));
    l->state = LINK_FAILED;
  }
  return err;
}

/* Makes room for n more output bytes and returns where they go. */
static uint8_t *out_reserve(gv_link *l, size_t n) {
  if (l->head > 0 && l->head + l->len + n > l->cap) {
    memmove(l->out, l->out + l->head, l->len);
    l->head = 0;
  }
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 4096;
    uint8_t *p;
    while (cap < l->len + n)
      cap *= 2;
    p = realloc(l->out, cap);
    if (p == NULL)
      return NULL;
    l->out = p;
    l->cap = cap;
  }
  return l->out + l->head + l->len;
}

/* Queues a cleartext frame (handshake messages, stream headers). */
static int out_frame(gv_link *l, const uint8_t *body, size_t len) {
  uint8_t *p = out_reserve(l, GV_FRAME_HDR + len);
  if (p == NULL)
    return GV_ENOMEM;
  gv_frame_put_hdr(p, (uint32_t)len);
  memcpy(p + GV_FRAME_HDR, body, len);
  l->len += GV_FRAME_HDR + len;
  return 0;
}

/* Queues one encrypted frame, encrypting straight into the output buffer. */
static int out_sealed(gv_link *l, const uint8_t *msg, size_t len,
                      unsigned char tag) {
  size_t body = len + SS_ABYTES;
  uint8_t *p;

  if (l->len + GV_FRAME_HDR + body > GV_LINK_OUT_MAX)
    return GV_EBUSY;
  p = out_reserve(l, GV_FRAME_HDR + body);
  if (p == NULL)
    return GV_ENOMEM;
  gv_frame_put_hdr(p, (uint32_t)body);
  crypto_secretstream_xchacha20poly1305_push(&l->tx, p + GV_FRAME_HDR, NULL,
                                             msg, len, NULL, 0, tag);
  l->len += GV_FRAME_HDR + body;
  return 0;
}

/* Step 8 of PROTOCOL.md §4.2: open the sending stream, queue its header. */
static int open_tx(gv_link *l) {
  gv_hs_result res;
  uint8_t hdr[SS_HDR];
  int rc = gv_hs_finish(l->hs, &res);

  if (rc == 0) {
    memcpy(l->peer_id, res.peer_id, GV_ID_BYTES);
    memcpy(l->rx_key, res.rx_key, sizeof(l->rx_key));
    crypto_secretstream_xchacha20poly1305_init_push(&l->tx, hdr, res.tx_key);
    rc = out_frame(l, hdr, sizeof(hdr));
  }
  sodium_memzero(&res, sizeof(res));
  gv_hs_free(l->hs);
  l->hs = NULL;
  l->state = LINK_OPEN;
  l->dec.max = FRAME_MAX;
  return rc;
}

int gv_link_new(gv_link **out, const gv_identity *self, gv_hs_role role,
                const uint8_t *pin) {
  gv_link *l;
  int rc;

  *out = NULL;
  l = calloc(1, sizeof(*l));
  if (l == NULL)
    return GV_ENOMEM;
  gv_frame_dec_init(&l->dec, GV_FRAME_HS_MAX);
  rc = gv_hs_new(&l->hs, self, role, pin);
  if (rc == 0 && role == GV_HS_INITIATOR) {
    uint8_t m1[GV_HS_MSG_MAX];
    size_t n;
    rc = gv_hs_start(l->hs, m1, &n);
    if (rc == 0)
      rc = out_frame(l, m1, n);
  }
  if (rc < 0) {
    gv_link_free(l);
    return rc;
  }
  *out = l;
  return 0;
}

void gv_link_free(gv_link *l) {
  if (l == NULL)
    return;
  gv_hs_free(l->hs);
  gv_frame_dec_free(&l->dec);
  free(l->out);
  if (l->scratch != NULL)
    sodium_memzero(l->scratch, l->scratch_cap);
  free(l->scratch);
  sodium_memzero(l, sizeof(*l));
  free(l);
}

static int on_hs_frame(gv_link *l, const uint8_t *body, size_t len) {
  uint8_t reply[GV_HS_MSG_MAX];
  size_t n;
  int rc = gv_hs_read(l->hs, body, len, reply, &n);

  if (rc < 0)
    return rc;
  if (n > 0 && (rc = out_frame(l, reply, n)) < 0)
    return rc;
  return gv_hs_done(l->hs) ? open_tx(l) : 0;
}

static int on_sealed_frame(gv_link *l, const uint8_t *body, size_t len,
                           gv_link_msg_cb cb, void *ctx) {
  unsigned long long mlen;
  unsigned char tag;
  int rc = 0;

  if (!l->rx_open) {
    /* Step 8: the first frame is the peer's 24-byte stream header. */
    if (len != SS_HDR)
      return GV_EHANDSHAKE;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&l->rx, body,
                                                        l->rx_key) != 0)
      return GV_EHANDSHAKE;
    sodium_memzero(l->rx_key, sizeof(l->rx_key));
    l->rx_open = 1;
    return 0;
  }
  if (l->peer_closed)
    return GV_EFRAME;
  if (len < SS_ABYTES)
    return GV_EFRAME;
  if (l->scratch_cap > SCRATCH_KEEP && len - SS_ABYTES <= SCRATCH_KEEP) {
    sodium_memzero(l->scratch, l->scratch_cap);
    free(l->scratch);
    l->scratch = NULL;
    l->scratch_cap = 0;
  }
  if (l->scratch_cap < len - SS_ABYTES || l->scratch == NULL) {
    size_t cap = len - SS_ABYTES > 0 ? len - SS_ABYTES : 1;
    uint8_t *p = realloc(l->scratch, cap);
    if (p == NULL)
      return GV_ENOMEM;
    l->scratch = p;
    l->scratch_cap = cap;
  }
  if (crypto_secretstream_xchacha20poly1305_pull(&l->rx, l->scratch, &mlen,
                                                 &tag, body, len, NULL, 0) != 0)
    return GV_EDECRYPT;
  if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
    l->peer_closed = 1;
  else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
    return GV_EFRAME;
  if (mlen > 0 && cb != NULL)
    rc = cb(ctx, l->scratch, (size_t)mlen);
  return rc;
}

int gv_link_recv(gv_link *l, const uint8_t *data, size_t len, gv_link_msg_cb cb,
                 void *ctx) {
  if (l->state == LINK_FAILED)
    return GV_ESTATE;
  while (len > 0) {
    const uint8_t *body;
    size_t used, blen;
    int rc = gv_frame_dec_feed(&l->dec, data, len, &used, &body, &blen);

    if (rc < 0)
      return fail(l, rc);
    data += used;
    len -= used;
    if (rc == 0)
      break;
    if (l->state == LINK_HANDSHAKE)
      rc = on_hs_frame(l, body, blen);
    else
      rc = on_sealed_frame(l, body, blen, cb, ctx);
    if (rc < 0)
      return fail(l, rc);
    if (l->state == LINK_FAILED) /* the callback failed it */
      return GV_ESTATE;
  }
  return 0;
}

int gv_link_send(gv_link *l, const uint8_t *msg, size_t len) {
  if (l->state != LINK_OPEN)
    return GV_ESTATE;
  if (len == 0 || len > GV_FRAME_MAX_PAYLOAD)
    return len == 0 ? GV_EINVAL : GV_ETOOBIG;
  return out_sealed(l, msg, len,
                    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

int gv_link_close(gv_link *l, const uint8_t *msg, size_t len) {
  int rc;

  if (l->state != LINK_OPEN)
    return GV_ESTATE;
  if (len > GV_FRAME_MAX_PAYLOAD)
    return GV_ETOOBIG;
  rc = out_sealed(l, msg, len, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
  if (rc == 0)
    l->state = LINK_CLOSING;
  return rc;
}

int gv_link_eof(const gv_link *l) {
  return l->peer_closed && gv_frame_dec_idle(&l->dec) ? 0 : GV_ETRUNCATED;
}

size_t gv_link_out(const gv_link *l, const uint8_t **data) {
  *data = l->out != NULL ? l->out + l->head : NULL; /* nothing queued yet */
  return l->len;
}

void gv_link_out_consume(gv_link *l, size_t n) {
  if (n > l->len)
    n = l->len;
  l->head += n;
  l->len -= n;
  if (l->len == 0)
    l->head = 0;
}

const uint8_t *gv_link_peer_id(const gv_link *l) {
  return l->state == LINK_OPEN || l->state == LINK_CLOSING ? l->peer_id : NULL;
}

size_t gv_link_rx_partial(const gv_link *l) {
  return gv_frame_dec_partial(&l->dec);
}

int gv_link_peer_closed(const gv_link *l) { return l->peer_closed; }

int gv_link_failed(const gv_link *l) { return l->state == LINK_FAILED; }

/* The torrent tunnel's wire format (PROTOCOL.md §5.3). */
#include "torwire.h"

#include <string.h>

#include "be.h"

_Static_assert(GV_TW_OPEN_LEN == 1 + 4 + 1 + 2 * GV_ID_BYTES + GV_TW_IH_BYTES,
               "OPEN length");

const char *gv_tw_kind_name(unsigned kind) {
  switch (kind) {
  case GV_TW_OPEN: return "OPEN";
  case GV_TW_DATA: return "DATA";
  case GV_TW_CREDIT: return "CREDIT";
  case GV_TW_CLOSE: return "CLOSE";
  default: return NULL;
  }
}

const char *gv_tw_close_name(unsigned reason) {
  switch (reason) {
#define XX(name, num, text)                                                    \
  case num: return text;
    GV_TW_CLOSE_MAP(XX)
#undef XX
  default: return NULL;
  }
}

/* The value checks decoder and encoder share: m's fixed-size fields. */
static int check_fields(const gv_tw_msg *m, gv_why *why) {
  const char *k = gv_tw_kind_name(m->kind);

  if (m->sid == 0)
    return gv_fail(why, GV_EFIELD, "%s with sid 0", k);
  switch (m->kind) {
  case GV_TW_OPEN:
    if (m->hops > GV_TW_HOPS_MAX)
      return gv_fail(why, GV_ERANGE, "OPEN with hops %u (at most %u)", m->hops,
                     GV_TW_HOPS_MAX);
    break;
  case GV_TW_CREDIT:
    if (m->n == 0 || m->n > GV_TW_CREDIT_MAX)
      return gv_fail(why, GV_ERANGE, "CREDIT of %u (1..2^31)", m->n);
    break;
  case GV_TW_CLOSE:
    if (m->reason >= GV__TW_CLOSE_COUNT)
      return gv_fail(why, GV_ERANGE, "CLOSE with unknown reason %u", m->reason);
    break;
  default: break;
  }
  return 0;
}

/* The exact length of a kind's message; 0 for DATA (variable). */
static size_t fixed_len(unsigned kind) {
  switch (kind) {
  case GV_TW_OPEN: return GV_TW_OPEN_LEN;
  case GV_TW_CREDIT: return GV_TW_CREDIT_LEN;
  case GV_TW_CLOSE: return GV_TW_CLOSE_LEN;
  default: return 0;
  }
}

int gv_tw_decode(const uint8_t *b, size_t len, gv_tw_msg *m, gv_why *why) {
  memset(m, 0, sizeof *m);
  if (len == 0)
    return gv_fail(why, GV_ETYPE, "empty channel-3 message");
  if (!gv_tw_kind_name(b[0]))
    return gv_fail(why, GV_ETYPE, "unknown channel-3 kind 0x%02x", b[0]);
  m->kind = b[0];
  if (m->kind == GV_TW_DATA) {
    if (len < GV_TW_DATA_HDR + 1)
      return gv_fail(why, GV_EFRAME, "DATA of %zu bytes (at least %u)", len,
                     GV_TW_DATA_HDR + 1);
    if (len > GV_TW_MSG_MAX)
      return gv_fail(why, GV_ETOOBIG, "DATA of %zu bytes (at most %u)", len,
                     GV_TW_MSG_MAX);
  } else if (len != fixed_len(m->kind)) {
    return gv_fail(why, GV_EFRAME, "%s of %zu bytes (exactly %zu)",
                   gv_tw_kind_name(m->kind), len, fixed_len(m->kind));
  }
  m->sid = gv_be_get32(b + 1);
  switch (m->kind) {
  case GV_TW_OPEN:
    m->hops = b[5];
    m->dst = b + 6;
    m->src = m->dst + GV_ID_BYTES;
    m->ih = m->src + GV_ID_BYTES;
    break;
  case GV_TW_DATA:
    m->data = b + GV_TW_DATA_HDR;
    m->len = len - GV_TW_DATA_HDR;
    break;
  case GV_TW_CREDIT: m->n = gv_be_get32(b + 5); break;
  case GV_TW_CLOSE: m->reason = b[5]; break;
  }
  return check_fields(m, why);
}

size_t gv_tw_size(const gv_tw_msg *m) {
  if (!gv_tw_kind_name(m->kind))
    return 0;
  if (m->kind != GV_TW_DATA)
    return fixed_len(m->kind);
  if (m->len == 0 || m->len > GV_TW_DATA_MAX)
    return 0;
  return GV_TW_DATA_HDR + m->len;
}

int gv_tw_encode(const gv_tw_msg *m, uint8_t *out, size_t cap, size_t *len,
                 gv_why *why) {
  size_t n;
  int rc;

  if (!gv_tw_kind_name(m->kind))
    return gv_fail(why, GV_ETYPE, "unknown channel-3 kind 0x%02x", m->kind);
  if (m->kind == GV_TW_DATA) {
    if (m->len == 0)
      return gv_fail(why, GV_EFRAME, "DATA with no payload");
    if (m->len > GV_TW_DATA_MAX)
      return gv_fail(why, GV_ETOOBIG, "DATA of %zu payload bytes (at most %u)",
                     m->len, GV_TW_DATA_MAX);
    if (!m->data)
      return gv_fail(why, GV_EINVAL, "DATA without its payload");
  }
  if (m->kind == GV_TW_OPEN && (!m->dst || !m->src || !m->ih))
    return gv_fail(why, GV_EINVAL, "OPEN without dst, src or ih");
  if ((rc = check_fields(m, why)) < 0)
    return rc;
  n = gv_tw_size(m);
  if (cap < n)
    return gv_fail(why, GV_ETOOBIG, "%s needs %zu bytes, buffer has %zu",
                   gv_tw_kind_name(m->kind), n, cap);
  out[0] = m->kind;
  gv_be_put32(out + 1, m->sid);
  switch (m->kind) {
  case GV_TW_OPEN:
    out[5] = m->hops;
    memcpy(out + 6, m->dst, GV_ID_BYTES);
    memcpy(out + 6 + GV_ID_BYTES, m->src, GV_ID_BYTES);
    memcpy(out + 6 + 2 * GV_ID_BYTES, m->ih, GV_TW_IH_BYTES);
    break;
  case GV_TW_DATA: memcpy(out + GV_TW_DATA_HDR, m->data, m->len); break;
  case GV_TW_CREDIT: gv_be_put32(out + 5, m->n); break;
  case GV_TW_CLOSE: out[5] = m->reason; break;
  }
  *len = n;
  return 0;
}

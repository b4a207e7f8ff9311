/* Relay agent names and addresses (docs/RELAY.md §2). Contracts in
 * relayaddr.h. */
#include "relayaddr.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static bool part_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int gv_raddr_part_check(const char *s, size_t len, const char *what,
                        gv_why *why) {
  if (len == 0)
    return gv_fail(why, GV_EFIELD, "empty %s", what);
  if (len > GV_RADDR_PART_MAX)
    return gv_fail(why, GV_EFIELD, "%s of %zu bytes, more than %d", what, len,
                   GV_RADDR_PART_MAX);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '*')
      return gv_fail(why, GV_EFIELD,
                     "'*' in %s '%.*s': a wildcard is a whole part", what,
                     (int)len, s);
    if (!part_byte(c))
      return gv_fail(why, GV_EFIELD,
                     "byte 0x%02x at %zu of %s: only A-Za-z0-9._- are allowed",
                     c, i, what);
  }
  return 0;
}

/* Copies a checked part; len <= GV_RADDR_PART_MAX. */
static void put_part(char out[GV_RADDR_PART_MAX + 1], const char *s,
                     size_t len) {
  memcpy(out, s, len);
  out[len] = '\0';
}

int gv_raddr_name_parse(gv_raddr_name *out, const char *s, size_t len,
                        gv_why *why) {
  const char *colon;
  size_t plen;
  int rc;

  memset(out, 0, sizeof(*out));
  colon = memchr(s, ':', len);
  if (colon == NULL)
    return gv_fail(why, GV_EFIELD, "agent name '%.*s' has no 'project:'",
                   (int)(len > 64 ? 64 : len), s);
  plen = (size_t)(colon - s);
  if ((rc = gv_raddr_part_check(s, plen, "project", why)) < 0 ||
      (rc = gv_raddr_part_check(colon + 1, len - plen - 1, "name", why)) < 0)
    return rc;
  put_part(out->project, s, plen);
  put_part(out->name, colon + 1, len - plen - 1);
  return 0;
}

static bool is_star(const char *s, size_t len) {
  return len == 1 && s[0] == '*';
}

/* NODE after the '@': 64 or 12 hex digits. */
static int parse_node(gv_raddr *a, const char *s, size_t len, gv_why *why) {
  size_t got = 0;
  const char *end = NULL;

  if (len == GV_ID_HEX_LEN && gv_id_from_hex(a->node, s, len) == 0) {
    a->node_kind = GV_RADDR_NODE_FULL;
    return 0;
  }
  if (len == GV_ID_SHORT_LEN &&
      sodium_hex2bin(a->node, GV_RADDR_SHORT_BYTES, s, len, NULL, &got, &end) ==
          0 &&
      got == GV_RADDR_SHORT_BYTES && end == s + len) {
    a->node_kind = GV_RADDR_NODE_SHORT;
    return 0;
  }
  memset(a->node, 0, sizeof(a->node));
  return gv_fail(why, GV_EFIELD,
                 "node '%.*s' is not 64 hex digits nor a 12-digit short form",
                 (int)(len > 64 ? 64 : len), s);
}

int gv_raddr_parse(gv_raddr *out, const char *s, size_t len, gv_why *why) {
  const char *at, *colon;
  size_t llen, plen;
  int rc;

  memset(out, 0, sizeof(*out));
  if (len == 0)
    return gv_fail(why, GV_EFIELD, "empty address");
  if (len > GV_RADDR_TEXT_MAX)
    return gv_fail(why, GV_ETOOBIG, "address of %zu bytes, more than %d", len,
                   GV_RADDR_TEXT_MAX);

  /* project:name @ NODE */
  at = memchr(s, '@', len);
  llen = at != NULL ? (size_t)(at - s) : len;
  if (at != NULL) {
    if (memchr(at + 1, '@', len - llen - 1) != NULL)
      return gv_fail(why, GV_EFIELD, "more than one '@' in the address");
    if (llen + 1 == len)
      return gv_fail(why, GV_EFIELD, "empty node after '@'");
    if ((rc = parse_node(out, at + 1, len - llen - 1, why)) < 0)
      return rc;
  }
  if (llen == 0)
    return gv_fail(why, GV_EFIELD, "no agent before '@'");

  colon = memchr(s, ':', llen);
  if (colon == NULL) { /* `name` or `*` */
    if (is_star(s, llen))
      out->kind = GV_RADDR_ALL;
    else if ((rc = gv_raddr_part_check(s, llen, "name", why)) < 0)
      goto fail;
    else
      put_part(out->name, s, llen);
  } else {
    plen = (size_t)(colon - s);
    if (memchr(colon + 1, ':', llen - plen - 1) != NULL) {
      rc = gv_fail(why, GV_EFIELD, "more than one ':' in the address");
      goto fail;
    }
    bool pstar = is_star(s, plen), nstar = is_star(colon + 1, llen - plen - 1);
    if (pstar && nstar) {
      rc = gv_fail(why, GV_EFIELD, "'*:*' is written '*'");
      goto fail;
    }
    if (!pstar && (rc = gv_raddr_part_check(s, plen, "project", why)) < 0)
      goto fail;
    if (!nstar &&
        (rc = gv_raddr_part_check(colon + 1, llen - plen - 1, "name", why)) < 0)
      goto fail;
    out->kind = pstar   ? GV_RADDR_EVERY_NAME
                : nstar ? GV_RADDR_PROJECT
                        : GV_RADDR_ONE;
    if (!pstar)
      put_part(out->project, s, plen);
    if (!nstar)
      put_part(out->name, colon + 1, llen - plen - 1);
  }
  if (out->kind != GV_RADDR_ONE && out->node_kind != GV_RADDR_NODE_ANY) {
    rc = gv_fail(why, GV_EFIELD, "a '*' address takes no '@NODE'");
    goto fail;
  }
  return 0;
fail:
  memset(out, 0, sizeof(*out));
  return rc;
}

size_t gv_raddr_format(const gv_raddr *a, char out[GV_RADDR_TEXT_MAX + 1]) {
  char hex[GV_ID_HEX_LEN + 1] = "";
  int n;

  if (a->node_kind == GV_RADDR_NODE_FULL)
    gv_id_to_hex(a->node, hex);
  else if (a->node_kind == GV_RADDR_NODE_SHORT)
    gv_id_to_short(a->node, hex);
  switch (a->kind) {
  case GV_RADDR_ALL: n = snprintf(out, GV_RADDR_TEXT_MAX + 1, "*"); break;
  case GV_RADDR_PROJECT:
    n = snprintf(out, GV_RADDR_TEXT_MAX + 1, "%s:*", a->project);
    break;
  case GV_RADDR_EVERY_NAME:
    n = snprintf(out, GV_RADDR_TEXT_MAX + 1, "*:%s", a->name);
    break;
  default:
    n = snprintf(out, GV_RADDR_TEXT_MAX + 1, "%s%s%s%s%s", a->project,
                 a->project[0] ? ":" : "", a->name, hex[0] ? "@" : "", hex);
  }
  return n < 0 ? 0 : (size_t)n;
}

size_t gv_raddr_format_ent(const gv_raddr_ent *e,
                           char out[GV_RADDR_TEXT_MAX + 1]) {
  char hex[GV_ID_HEX_LEN + 1];
  int n;

  gv_id_to_hex(e->node, hex);
  n = snprintf(out, GV_RADDR_TEXT_MAX + 1, "%s:%s@%s", e->agent.project,
               e->agent.name, hex);
  return n < 0 ? 0 : (size_t)n;
}

bool gv_raddr_same(const gv_raddr_ent *e, const gv_raddr_ent *self) {
  return memcmp(e->node, self->node, GV_ID_BYTES) == 0 &&
         strcmp(e->agent.project, self->agent.project) == 0 &&
         strcmp(e->agent.name, self->agent.name) == 0;
}

static size_t node_cmp_len(const gv_raddr *a) {
  return a->node_kind == GV_RADDR_NODE_FULL    ? GV_ID_BYTES
         : a->node_kind == GV_RADDR_NODE_SHORT ? GV_RADDR_SHORT_BYTES
                                               : 0;
}

/* Does entry e match a, the node part aside? */
static bool agent_matches(const gv_raddr *a, const gv_raddr_ent *e) {
  if (a->project[0] != '\0' && strcmp(a->project, e->agent.project) != 0)
    return false; /* the project is never dropped */
  return a->kind == GV_RADDR_ALL || a->kind == GV_RADDR_PROJECT ||
         strcmp(a->name, e->agent.name) == 0;
}

/* Does a short NODE name another node id in dir than the one at `node`? */
static bool short_is_ambiguous(const gv_raddr *a, const gv_raddr_ent *dir,
                               size_t n, const uint8_t *node) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(dir[i].node, a->node, GV_RADDR_SHORT_BYTES) == 0 &&
        memcmp(dir[i].node, node, GV_ID_BYTES) != 0)
      return true;
  return false;
}

int gv_raddr_resolve(const gv_raddr *a, const gv_raddr_ent *dir, size_t n,
                     const gv_raddr_ent *self, size_t *out, size_t cap,
                     size_t *found, gv_why *why) {
  char text[GV_RADDR_TEXT_MAX + 1];
  size_t k = 0, cmp = node_cmp_len(a), first = 0;
  bool fanout = a->kind != GV_RADDR_ONE;

  for (size_t i = 0; i < n; i++) {
    if (cmp > 0 && memcmp(dir[i].node, a->node, cmp) != 0)
      continue;
    if (!agent_matches(a, &dir[i]))
      continue;
    if (fanout && self != NULL && gv_raddr_same(&dir[i], self))
      continue; /* a fan-out never comes back to its sender */
    if (k == 0)
      first = i;
    if (k < cap)
      out[k] = i;
    k++;
  }
  *found = k;
  gv_raddr_format(a, text); /* for the reasons below */
  if (k == 0)
    return gv_fail(why, GV_EUNKNOWN_RECIPIENT,
                   fanout ? "no agent in the team directory matches '%s' "
                            "(the sender aside)"
                          : "no agent in the team directory matches '%s'",
                   text);
  if (!fanout && k > 1)
    return gv_fail(why, GV_EAMBIGUOUS, "'%s' matches %zu agents", text, k);
  if (!fanout && a->node_kind == GV_RADDR_NODE_SHORT &&
      short_is_ambiguous(a, dir, n, dir[first].node))
    return gv_fail(why, GV_EAMBIGUOUS,
                   "the short node id in '%s' names several nodes", text);
  return 0;
}

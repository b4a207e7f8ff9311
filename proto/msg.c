/* Message validation and encoding. The step numbers in comments are those of
 * PROTOCOL.md §6.6. */
#include "msg.h"

#include "json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SIG_PREFIX[] = "grapevine/1 msg";
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)

static const struct {
  const char *name;
  int max_ttl;
} types[GV__MSG_COUNT] = {[GV_MSG_NONE] = {"NONE", -1},
#define XX(n, ttl) [GV_MSG_##n] = {#n, ttl},
                          GV_MSG_TYPE_MAP(XX)
#undef XX
};

const char *gv_msg_type_name(gv_msg_type t) {
  return t > GV_MSG_NONE && t < GV__MSG_COUNT ? types[t].name : "NONE";
}

gv_msg_type gv_msg_type_from_name(const char *name, size_t len) {
  for (int t = GV_MSG_NONE + 1; t < GV__MSG_COUNT; t++)
    if (strlen(types[t].name) == len && memcmp(types[t].name, name, len) == 0)
      return (gv_msg_type)t;
  return GV_MSG_NONE;
}

bool gv_msg_is_gossip(gv_msg_type t) {
  return t > GV_MSG_NONE && t < GV__MSG_COUNT && types[t].max_ttl > 0;
}

unsigned gv_msg_max_ttl(gv_msg_type t) {
  return gv_msg_is_gossip(t) ? (unsigned)types[t].max_ttl : 0;
}

void gv_msg_clear(gv_msg *m) {
  if (m->type == GV_MSG_PEER_LIST_RESPONSE && m->u.response.peers != NULL) {
    for (size_t i = 0; i < m->u.response.n_peers; i++)
      gv_msg_clear(&m->u.response.peers[i]);
    free(m->u.response.peers);
  }
  if (m->type == GV_MSG_HELLO && m->u.hello.record != NULL) {
    gv_msg_clear(m->u.hello.record);
    if (!m->u.hello.record_lent)
      free(m->u.hello.record);
  }
  if (m->kept != NULL)
    m->memo->drop(m->memo->ctx, m->kept);
  if (m->body != m->kept)
    free(m->body);
  memset(m, 0, sizeof(*m));
}

static int printable(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
      return 0;
  return 1;
}

/* A printable-ASCII string member of min..max bytes copied into out. */
static int get_text(const cJSON *obj, const char *key, size_t min, size_t max,
                    char *out, gv_why *why) {
  const char *s;
  size_t len;
  int rc = gv_json_str(obj, key, &s, &len, why);

  if (rc < 0)
    return rc;
  if (len < min || len > max || !printable(s, len))
    return gv_fail(why, GV_EFIELD,
                   "field '%s' must be %zu..%zu printable ASCII bytes", key,
                   min, max);
  memcpy(out, s, len + 1);
  return 0;
}

int gv_repo_name_check(const char *name, size_t len) {
  if (len == 0 || len > GV_REPO_MAX)
    return GV_EFIELD;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || strchr("._-/:@+", c) != NULL) ||
        c == '\0')
      return GV_EFIELD;
  }
  return 0;
}

/* A repository name element; *name borrows the tree's string. */
static int get_repo(const cJSON *it, const char *what, const char **name,
                    size_t *len, gv_why *why) {
  if (it == NULL)
    return gv_fail(why, GV_EFIELD, "missing field '%s'", what);
  if (!cJSON_IsString(it) || it->valuestring == NULL)
    return gv_fail(why, GV_EFIELD, "%s: repository name is not a string", what);
  *len = strlen(it->valuestring);
  if (gv_repo_name_check(it->valuestring, *len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "%s: bad repository name (1..%d of A-Za-z0-9._-/:@+)", what,
                   GV_REPO_MAX);
  *name = it->valuestring;
  return 0;
}

/* ---- type-specific members (step 7) ---- */

static bool lower_hex(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* The optional `relays` of a peer state (§6.5): absent, or 1..GV_MAX_RELAYS
 * distinct node ids as 64 lower-case hex digits, none the origin's own, and
 * only in a silent record. Needs p->broadcasting parsed. */
static int parse_relays(const cJSON *b, const uint8_t origin[GV_ID_BYTES],
                        gv_peer_state *p, gv_why *why) {
  const cJSON *arr, *it;
  int n, rc, i = 0;

  p->n_relays = 0;
  if (gv_json_get(b, "relays") == NULL)
    return 0;
  if (p->broadcasting)
    return gv_fail(why, GV_EFIELD,
                   "a broadcasting node names relays (only a silent node "
                   "is reached through relays)");
  /* The bound comes before any id is read; the ids land in p's array. */
  if ((rc = gv_json_array(b, "relays", GV_MAX_RELAYS, &arr, &n, why)) < 0)
    return rc;
  if (n == 0)
    return gv_fail(why, GV_EFIELD, "field 'relays' is empty (omit it)");
  cJSON_ArrayForEach(it, arr) {
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        strlen(it->valuestring) != GV_ID_HEX_LEN ||
        !lower_hex(it->valuestring, GV_ID_HEX_LEN) ||
        gv_id_from_hex(p->relays[i], it->valuestring, GV_ID_HEX_LEN) < 0)
      return gv_fail(why, GV_EFIELD,
                     "relays[%d] is not a node id (64 lower-case hex digits)",
                     i);
    if (sodium_memcmp(p->relays[i], origin, GV_ID_BYTES) == 0)
      return gv_fail(why, GV_EFIELD, "relays[%d] is the origin itself", i);
    for (int j = 0; j < i; j++)
      if (sodium_memcmp(p->relays[j], p->relays[i], GV_ID_BYTES) == 0)
        return gv_fail(why, GV_EFIELD, "relays[%d] repeats relays[%d]", i, j);
    i++;
  }
  p->n_relays = (uint8_t)n;
  return 0;
}

/* The optional `tport` of a peer state (§6.5): absent, or 1..65535, and
 * only in a broadcasting record (a silent node is never dialed, so it has
 * no port to tell). Needs p->broadcasting parsed. */
static int parse_tport(const cJSON *b, gv_peer_state *p, gv_why *why) {
  uint64_t v;
  int rc;

  p->tport = 0;
  if (gv_json_get(b, "tport") == NULL)
    return 0;
  if (!p->broadcasting)
    return gv_fail(why, GV_EFIELD,
                   "a silent node names a torrent port (only a broadcasting "
                   "node is dialed)");
  if ((rc = gv_json_uint(b, "tport", 1, 65535, &v, why)) < 0)
    return rc;
  p->tport = (uint16_t)v;
  return 0;
}

/* Validates the members of a PEER_ANNOUNCEMENT or PEER_UPDATE. The names
 * stay in b's tree; *repos_bytes is what they take packed (pack_body()). */
static int parse_peer_state(const cJSON *b, const uint8_t origin[GV_ID_BYTES],
                            gv_peer_state *p, size_t *repos_bytes,
                            gv_why *why) {
  const char *names[GV_MAX_REPOS];
  const cJSON *arr, *it;
  int n, rc, i = 0;
  size_t len;

  if ((rc = gv_json_bool(b, "broadcasting", &p->broadcasting, why)) < 0 ||
      (rc = gv_json_bool(b, "bootstrap", &p->bootstrap, why)) < 0)
    return rc;
  if (p->bootstrap && !p->broadcasting)
    return gv_fail(why, GV_EFIELD, "bootstrap requires broadcasting");
  if ((rc = gv_json_array(b, "addrs", GV_MAX_ADDRS, &arr, &n, why)) < 0)
    return rc;
  /* The IP-sharing rule: no address may be attached to a silent node. */
  if (n > 0 && !p->broadcasting)
    return gv_fail(why, GV_ESILENTADDR,
                   "%d address(es) attached to a node that is not "
                   "broadcasting",
                   n);
  cJSON_ArrayForEach(it, arr) {
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        gv_addr_parse(&p->addrs[i], it->valuestring, strlen(it->valuestring)) <
            0)
      return gv_fail(why, GV_EFIELD, "addrs[%d] is not a numeric HOST:PORT", i);
    i++;
  }
  p->n_addrs = (uint8_t)n;
  if ((rc = parse_relays(b, origin, p, why)) < 0 ||
      (rc = parse_tport(b, p, why)) < 0)
    return rc;
  if ((rc = gv_json_array(b, "repos", GV_MAX_REPOS, &arr, &n, why)) < 0)
    return rc;
  i = 0;
  *repos_bytes = 0;
  cJSON_ArrayForEach(it, arr) {
    if ((rc = get_repo(it, "repos", &names[i], &len, why)) < 0)
      return rc;
    for (int j = 0; j < i; j++)
      if (strcmp(names[j], names[i]) == 0)
        return gv_fail(why, GV_EFIELD, "repos: '%s' listed twice", names[i]);
    *repos_bytes += len + 1;
    i++;
  }
  p->n_repos = (uint8_t)n;
  return 0;
}

/* Bytes of n packed names ("a\0b\0"). */
static size_t repos_bytes(const char *repos, unsigned n) {
  const char *r = repos;
  if (n == 0)
    return 0;
  for (unsigned i = 0; i < n; i++)
    r += strlen(r) + 1;
  return (size_t)(r - repos);
}

size_t gv_kept_tail_at(size_t body_len) {
  return (body_len + 1 + GV_SIG_BYTES + 1) & ~(size_t)1;
}

char *gv_kept_new(const gv_msg *m, size_t *n) {
  const gv_peer_state *p = &m->u.peer;
  bool peer =
      m->type == GV_MSG_PEER_ANNOUNCEMENT || m->type == GV_MSG_PEER_UPDATE;
  size_t at = gv_kept_tail_at(m->body_len), na = 0, nr = 0, rlen = 0;
  char *s, *t;

  if (peer) {
    na = p->broadcasting ? p->n_addrs : 0;
    nr = p->broadcasting ? 0 : p->n_relays;
    rlen = repos_bytes(p->repos, p->n_repos);
  }
  *n = at + na * sizeof(gv_addr) + nr * GV_ID_BYTES + rlen;
  if ((s = malloc(*n)) == NULL)
    return NULL;
  memcpy(s, m->body, m->body_len);
  s[m->body_len] = '\0';
  memcpy(s + m->body_len + 1, m->sig, GV_SIG_BYTES);
  if (at > m->body_len + 1 + GV_SIG_BYTES)
    s[at - 1] = '\0'; /* the pad: equal strings match */
  t = s + at;
  for (size_t i = 0; i < na; i++) {
    gv_addr a; /* field by field: no padding of the caller's in the string */
    memset(&a, 0, sizeof(a));
    a.family = p->addrs[i].family;
    memcpy(a.ip, p->addrs[i].ip, sizeof(a.ip));
    a.port = p->addrs[i].port;
    memcpy(t, &a, sizeof(a));
    t += sizeof(a);
  }
  if (nr > 0)
    memcpy(t, p->relays, nr * GV_ID_BYTES);
  if (rlen > 0)
    memcpy(t + nr * GV_ID_BYTES, p->repos, rlen);
  return s;
}

/* Copies body[0..body_len) (not necessarily NUL-terminated) into m's owned,
 * NUL-terminated body, with room for extra bytes behind its NUL in the same
 * allocation. Returns where the extra bytes go, or NULL for GV_ENOMEM.
 * (Adopting the string that cJSON unescaped instead of copying it ran
 * fewer instructions but made grapevine-sim ~10% slower: the adopted block
 * outlives the tree it was carved among and fragments the heap.) */
static char *set_body(gv_msg *m, const char *body, size_t body_len,
                      size_t extra) {
  char *p = malloc(body_len + 1 + extra);

  if (p == NULL)
    return NULL;
  memcpy(p, body, body_len);
  p[body_len] = '\0';
  m->body = p;
  m->body_len = body_len;
  return p + body_len + 1;
}

static int parse_signed(gv_msg *m, const char *body, size_t body_len,
                        const char *sig_hex, size_t sig_len, bool embedded,
                        const gv_msg_policy *pol, gv_why *why);

/* A signed record {"body": B, "sig": S} (a PEER_ANNOUNCEMENT or PEER_UPDATE
 * as its origin signed it) into rec; `where` prefixes the reason. */
/* Prefixes a signed record's failure with where it was. */
static int record_failed(int rc, const char *where, gv_why *why) {
  if (why != NULL) {
    char inner[sizeof(why->text)];
    memcpy(inner, why->text, sizeof(inner));
    gv_fail(why, rc, "%s: %.160s", where, inner);
  }
  return rc;
}

static int parse_record(const cJSON *it, gv_msg *rec, const gv_msg_policy *pol,
                        const char *where, gv_why *why) {
  const char *rb, *rs;
  size_t rbl, rsl;
  int rc;

  if (!cJSON_IsObject(it))
    return gv_fail(why, GV_EFIELD, "%s is not an object", where);
  if ((rc = gv_json_str(it, "body", &rb, &rbl, why)) < 0 ||
      (rc = gv_json_str(it, "sig", &rs, &rsl, why)) < 0 ||
      (rc = parse_signed(rec, rb, rbl, rs, rsl, true, pol, why)) < 0)
    return record_failed(rc, where, why);
  return 0;
}

/* Where a HELLO's record is decoded: the policy's storage, else its own. */
static int hello_record(gv_msg *m, const gv_msg_policy *pol) {
  if (pol->record != NULL) {
    memset(pol->record, 0, sizeof(*pol->record));
    m->u.hello.record = pol->record;
    m->u.hello.record_lent = true;
  } else if ((m->u.hello.record = calloc(1, sizeof(gv_msg))) == NULL) {
    return GV_ENOMEM;
  }
  return 0;
}

static int parse_response(const cJSON *b, gv_msg *m, const gv_msg_policy *pol,
                          gv_why *why) {
  const cJSON *arr, *it;
  int n, rc, i = 0;

  if ((rc = gv_json_hex(b, "to", m->u.response.to, 32, why)) < 0 ||
      (rc = gv_json_hex(b, "request", m->u.response.request, 32, why)) < 0 ||
      (rc = gv_json_array(b, "peers", GV_MAX_PEERS, &arr, &n, why)) < 0)
    return rc;
  if (n == 0)
    return 0;
  m->u.response.peers = calloc((size_t)n, sizeof(gv_msg));
  if (m->u.response.peers == NULL)
    return GV_ENOMEM;
  cJSON_ArrayForEach(it, arr) {
    char where[24];

    m->u.response.n_peers = (size_t)i + 1; /* so clear() frees it */
    snprintf(where, sizeof(where), "peers[%d]", i);
    if ((rc = parse_record(it, &m->u.response.peers[i], pol, where, why)) < 0)
      return rc;
    i++;
  }
  return 0;
}

/* *repos_bytes: what a peer state's names take packed, else 0. */
static int parse_body_fields(const cJSON *b, gv_msg *m,
                             const gv_msg_policy *pol, size_t *repos_bytes,
                             gv_why *why) {
  const char *repo;
  size_t len;
  uint64_t v;
  int rc;

  *repos_bytes = 0;
  switch (m->type) {
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE:
    return parse_peer_state(b, m->origin, &m->u.peer, repos_bytes, why);
  case GV_MSG_PEER_REQUEST:
    if ((rc = get_repo(gv_json_get(b, "repo"), "repo", &repo, &len, why)) < 0 ||
        (rc = gv_json_uint(b, "max", 1, GV_MAX_PEERS, &v, why)) < 0)
      return rc;
    memcpy(m->u.request.repo, repo, len + 1);
    m->u.request.max = (uint32_t)v;
    return 0;
  case GV_MSG_PEER_LIST_RESPONSE: return parse_response(b, m, pol, why);
  case GV_MSG_HEARTBEAT: return 0;
  default:
    return gv_fail(why, GV_ETYPE, "%s is not a gossip type",
                   gv_msg_type_name(m->type));
  }
}

static int check_version(const cJSON *obj, const char *where, gv_why *why) {
  const cJSON *v = gv_json_get(obj, "v");

  if (v == NULL)
    return gv_fail(why, GV_EFIELD, "%s: missing field 'v'", where);
  if (!cJSON_IsNumber(v) || v->valuedouble != GV_MSG_VERSION)
    return gv_fail(why, GV_EVERSION, "%s: version is not %d", where,
                   GV_MSG_VERSION);
  return 0;
}

/* The type member, resolved. */
static int get_type(const cJSON *obj, gv_msg_type *t, gv_why *why) {
  const char *s;
  size_t len;
  int rc = gv_json_str(obj, "type", &s, &len, why);

  if (rc < 0)
    return rc;
  *t = gv_msg_type_from_name(s, len);
  if (*t == GV_MSG_NONE)
    return gv_fail(why, GV_ETYPE, "unknown type '%.40s'", s);
  return 0;
}

/* Steps 4 (body) to 10 for one signed body: a top-level gossip message or
 * an embedded record (which must be an announcement or update, and is exempt
 * from the staleness rule). With a memo (the simulator's), a body that
 * passed its own checks before skips steps 6 and 9, which depend on its
 * bytes alone; every other step runs, in the same order. */
static int parse_signed(gv_msg *m, const char *body, size_t body_len,
                        const char *sig_hex, size_t sig_len, bool embedded,
                        const gv_msg_policy *pol, gv_why *why) {
  uint8_t tbs[SIG_PREFIX_LEN + GV_MSG_ID_BYTES];
  bool peer;
  size_t at, extra;
  cJSON *b = NULL;
  char *w;
  uint64_t v;
  int rc = 0, hit = 0;

  if (gv_hex_decode(m->sig, sizeof(m->sig), sig_hex, sig_len) < 0)
    return gv_fail(why, GV_EFIELD, "field 'sig' is not 128 hex digits");
  /* A body in the memo was printable and has its id. */
  if (pol->memo != NULL)
    hit = pol->memo->find(pol->memo->ctx, body, body_len, m);
  if (!hit) {
    if (body_len == 0 || !printable(body, body_len))
      return gv_fail(why, GV_EFIELD, "body is empty or not printable ASCII");
    crypto_generichash(m->id, sizeof(m->id), (const uint8_t *)body, body_len,
                       NULL, 0);
  }
  /* 5. A duplicate costs a hash: ids are recorded only after the exact body
   * fully validated, so a hit needs no second look. */
  if (!embedded && pol->seen != NULL && pol->seen(pol->seen_ctx, m->id))
    return gv_fail(why, GV_EDUP, "duplicate message");
  /* 6. */
  if (!hit) {
    b = gv_json_parse_exact(body, body_len, &at);
    if (b == NULL || !cJSON_IsObject(b)) {
      rc = gv_fail(why, GV_EJSON, "body is not one JSON object (byte %zu)", at);
      goto out;
    }
    if ((rc = gv_json_check_members(b, why)) < 0)
      goto out;
    if ((rc = check_version(b, "body", why)) < 0 ||
        (rc = get_type(b, &m->type, why)) < 0)
      goto out;
    if (!gv_msg_is_gossip(m->type)) {
      rc = gv_fail(why, GV_ETYPE, "link type %s inside a signed body",
                   gv_msg_type_name(m->type));
      goto out;
    }
  }
  peer = m->type == GV_MSG_PEER_ANNOUNCEMENT || m->type == GV_MSG_PEER_UPDATE;
  if (embedded && !peer) {
    rc = gv_fail(why, GV_ETYPE, "a %s cannot be a peer record",
                 gv_msg_type_name(m->type));
    goto out;
  }
  if (!hit) {
    if ((rc = gv_json_hex(b, "origin", m->origin, 32, why)) < 0 ||
        (rc = gv_json_uint(b, "seq", 1, GV_INT_MAX, &m->seq, why)) < 0 ||
        (rc = gv_json_uint(b, "ts", 0, GV_INT_MAX, &v, why)) < 0)
      goto out;
    m->ts = (int64_t)v;
  }

  /* 7. ttl for the type (the envelope was read by the caller) */
  if (!embedded && m->ttl > gv_msg_max_ttl(m->type)) {
    rc = gv_fail(why, GV_ETTL, "ttl %u exceeds %u for %s", m->ttl,
                 gv_msg_max_ttl(m->type), gv_msg_type_name(m->type));
    goto out;
  }
  /* 8. the clock window */
  if (m->ts > pol->now_ms + GV_CLOCK_SKEW_MS) {
    rc = gv_fail(why, GV_EFUTURE, "ts is %lld ms ahead of this node's clock",
                 (long long)(m->ts - pol->now_ms));
    goto out;
  }
  if (!embedded && m->ts < pol->now_ms - GV_MSG_MAX_AGE_MS) {
    rc = gv_fail(why, GV_ESTALE, "ts is %lld s old, the limit is %lld s",
                 (long long)((pol->now_ms - m->ts) / 1000),
                 GV_MSG_MAX_AGE_MS / 1000);
    goto out;
  }
  /* 9. */
  if (!hit && (rc = parse_body_fields(b, m, pol, &extra, why)) < 0)
    goto out;
  if (hit)
    extra = peer ? repos_bytes(m->u.peer.repos, m->u.peer.n_repos) : 0;
  /* 10. Ed25519 over "grapevine/1 msg" || id, id = BLAKE2b(exact body) */
  memcpy(tbs, SIG_PREFIX, SIG_PREFIX_LEN);
  memcpy(tbs + SIG_PREFIX_LEN, m->id, GV_MSG_ID_BYTES);
  if (!pol->trust_sigs && hit != 2 &&
      crypto_sign_verify_detached(m->sig, tbs, sizeof(tbs), m->origin) != 0) {
    rc = gv_fail(why, GV_EBADSIG, "signature does not verify for origin");
    goto out;
  }
  if (m->kept != NULL) { /* the memo's string: body, sig, repos */
    m->body = (char *)m->kept;
    m->body_len = body_len;
    goto out;
  }
  /* The repository names are packed behind the body, one allocation. */
  w = set_body(m, body, body_len, extra);
  if (w == NULL) {
    rc = GV_ENOMEM;
    goto out;
  }
  if (peer && hit) {
    if (extra > 0)
      memcpy(w, m->u.peer.repos, extra);
    m->u.peer.repos = w;
  } else if (peer) {
    const cJSON *it;
    m->u.peer.repos = w;
    cJSON_ArrayForEach(it, gv_json_get(b, "repos")) {
      size_t n = strlen(it->valuestring) + 1;
      memcpy(w, it->valuestring, n);
      w += n;
    }
  }
  if (!hit && pol->memo != NULL && m->type != GV_MSG_PEER_LIST_RESPONSE)
    pol->memo->put(pol->memo->ctx, m, !pol->trust_sigs);
out:
  cJSON_Delete(b);
  return rc;
}

int gv_msg_decode_record(gv_msg *m, const char *body, size_t body_len,
                         const uint8_t sig[GV_SIG_BYTES],
                         const gv_msg_policy *pol, gv_why *why) {
  char hex[2 * GV_SIG_BYTES + 1];

  memset(m, 0, sizeof(*m));
  if (body_len > GV_MSG_MAX)
    return gv_fail(why, GV_ETOOBIG, "record of %zu bytes", body_len);
  gv_hex_encode(hex, sig, GV_SIG_BYTES);
  return parse_signed(m, body, body_len, hex, 2 * GV_SIG_BYTES, true, pol, why);
}

static int parse_link(const cJSON *root, gv_msg *m, const gv_msg_policy *pol,
                      gv_why *why) {
  const cJSON *arr, *it;
  uint64_t v;
  int n, rc, i = 0;

  if ((rc = get_type(root, &m->type, why)) < 0)
    return rc;
  switch (m->type) {
  case GV_MSG_HELLO:
    if ((rc = get_text(root, "agent", 1, GV_AGENT_MAX, m->u.hello.agent, why)) <
            0 ||
        (rc = gv_json_uint(root, "ts", 0, GV_INT_MAX, &v, why)) < 0 ||
        (rc = gv_json_uint(root, "seq", 0, GV_INT_MAX, &m->u.hello.seq, why)) <
            0)
      return rc;
    m->ts = (int64_t)v;
    it = gv_json_get(root, "record");
    if (it == NULL)
      return 0;
    if ((rc = hello_record(m, pol)) < 0)
      return rc;
    return parse_record(it, m->u.hello.record, pol, "record", why);
  case GV_MSG_PING:
  case GV_MSG_PONG:
    return gv_json_uint(root, "nonce", 0, GV_INT_MAX, &m->u.nonce, why);
  case GV_MSG_IHAVE:
  case GV_MSG_IWANT:
    if ((rc = gv_json_array(root, "ids", GV_MAX_IDS, &arr, &n, why)) < 0)
      return rc;
    if (n == 0)
      return gv_fail(why, GV_EFIELD, "field 'ids' is empty");
    cJSON_ArrayForEach(it, arr) {
      if (!cJSON_IsString(it) || it->valuestring == NULL ||
          gv_id_from_hex(m->u.ids.ids[i], it->valuestring,
                         strlen(it->valuestring)) < 0)
        return gv_fail(why, GV_EFIELD, "ids[%d] is not 64 hex digits", i);
      i++;
    }
    m->u.ids.n = (size_t)n;
    return 0;
  case GV_MSG_GOODBYE:
    return get_text(root, "reason", 0, GV_REASON_MAX, m->u.reason, why);
  default:
    return gv_fail(why, GV_ETYPE,
                   "%s must travel signed, not as a link message",
                   gv_msg_type_name(m->type));
  }
}

/* The envelopes sent most (a gossip message on every hop, a HELLO on
 * every link) in exactly the form gv_msg_encode_gossip() and
 * gv_msg_encode_link() write, read without a cJSON tree (gv_json_scan):
 * the envelope's checks pass, and the same values reach the same calls as
 * on the tree's path in gv_msg_decode(), which judges everything else.
 * Returns 1 (m untouched) for anything not in that form. */
static int decode_canonical(gv_msg *m, const uint8_t *buf, size_t len,
                            const gv_msg_policy *pol, gv_why *why) {
  static const char *const gossip[] = {"v", "ttl", "hops", "body", "sig"};
  static const char *const hello[] = {"v",  "type", "agent",
                                      "ts", "seq",  "record"};
  static const char *const record[] = {"body", "sig"};
  const char *text = (const char *)buf;
  char str[4096]; /* the strings, unescaped: a record's body is ~400 */
  gv_json_tok t[6] = {{.kind = GV_JSON_UINT},
                      {.kind = GV_JSON_UINT},
                      {.kind = GV_JSON_UINT},
                      {.kind = GV_JSON_STR},
                      {.kind = GV_JSON_STR}};
  gv_json_tok r[2] = {{.kind = GV_JSON_STR}, {.kind = GV_JSON_STR}};
  size_t n = 6, used, more;
  int rc;

  if (gv_json_scan(text, len, gossip, t, 5, str, sizeof(str), &used)) {
    if (t[0].num != GV_MSG_VERSION || t[1].num > 255 || t[2].num > GV_HOPS_MAX)
      return 1;
    m->ttl = (uint32_t)t[1].num;
    m->hops = (uint32_t)t[2].num;
    return parse_signed(m, t[3].s, t[3].len, t[4].s, t[4].len, false, pol, why);
  }
  t[1].kind = t[2].kind = GV_JSON_STR;
  t[3].kind = t[4].kind = GV_JSON_UINT;
  t[5].kind = GV_JSON_OBJ;
  if (!gv_json_scan(text, len, hello, t, n, str, sizeof(str), &used) &&
      !gv_json_scan(text, len, hello, t, --n, str, sizeof(str), &used))
    return 1;
  /* 15 digits at most: ts and seq are within 0..GV_INT_MAX. */
  if (t[0].num != GV_MSG_VERSION || t[1].len != 5 ||
      memcmp(t[1].s, "HELLO", 5) != 0 || t[2].len < 1 ||
      t[2].len > GV_AGENT_MAX)
    return 1;
  if (n == 6 && !gv_json_scan(t[5].s, t[5].len, record, r, 2, str + used,
                              sizeof(str) - used, &more))
    return 1;
  m->type = GV_MSG_HELLO;
  memcpy(m->u.hello.agent, t[2].s, t[2].len + 1);
  m->ts = (int64_t)t[3].num;
  m->u.hello.seq = t[4].num;
  if (n == 5)
    return 0;
  if ((rc = hello_record(m, pol)) < 0)
    return rc;
  if ((rc = parse_signed(m->u.hello.record, r[0].s, r[0].len, r[1].s, r[1].len,
                         true, pol, why)) < 0)
    return record_failed(rc, "record", why);
  return 0;
}

int gv_msg_decode(gv_msg *m, const uint8_t *buf, size_t len,
                  const gv_msg_policy *pol, gv_why *why) {
  cJSON *root = NULL;
  size_t at;
  int rc;

  memset(m, 0, sizeof(*m));
  /* 1. size, before anything is parsed or allocated */
  if (len > GV_MSG_MAX)
    return gv_fail(why, GV_ETOOBIG, "%zu bytes, the limit is %u", len,
                   GV_MSG_MAX);
  /* The simulator's (it gives a memo): our own envelopes without a tree. */
  if (pol->memo != NULL && (rc = decode_canonical(m, buf, len, pol, why)) != 1)
    return rc;
  /* 2. syntax */
  root = gv_json_parse_exact((const char *)buf, len, &at);
  if (root == NULL)
    return gv_fail(why, GV_EJSON, "malformed JSON at byte %zu", at);
  if (!cJSON_IsObject(root)) {
    rc = gv_fail(why, GV_EJSON, "top level is not a JSON object");
    goto out;
  }
  if ((rc = gv_json_check_members(root, why)) < 0)
    goto out;
  /* 3. envelope */
  if ((rc = check_version(root, "envelope", why)) < 0)
    goto out;
  if (gv_json_get(root, "body") == NULL) {
    rc = parse_link(root, m, pol, why);
  } else {
    const char *body, *sig;
    size_t blen, slen;
    uint64_t ttl, hops;
    /* 4. hop fields, then the signed body */
    if ((rc = gv_json_uint(root, "ttl", 0, 255, &ttl, why)) < 0 ||
        (rc = gv_json_uint(root, "hops", 0, GV_HOPS_MAX, &hops, why)) < 0 ||
        (rc = gv_json_str(root, "body", &body, &blen, why)) < 0 ||
        (rc = gv_json_str(root, "sig", &sig, &slen, why)) < 0)
      goto out;
    m->ttl = (uint32_t)ttl;
    m->hops = (uint32_t)hops;
    rc = parse_signed(m, body, blen, sig, slen, false, pol, why);
  }
out:
  cJSON_Delete(root);
  return rc;
}

/* ---- encoding ---- */

static int add_hex(cJSON *obj, const char *key, const uint8_t *bin, size_t n) {
  char hex[2 * GV_SIG_BYTES + 1];
  gv_hex_encode(hex, bin, n);
  return cJSON_AddStringToObject(obj, key, hex) != NULL ? 0 : GV_ENOMEM;
}

/* Integers are written as exact decimal text: cJSON's own number printer
 * rounds values above 10^15 to 15 significant digits. */
static int add_num(cJSON *obj, const char *key, uint64_t v) {
  char digits[24];
  snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
  return cJSON_AddRawToObject(obj, key, digits) != NULL ? 0 : GV_ENOMEM;
}

/* Prints obj compactly into *out, checking the size limit. Frees obj. */
static int print_obj(cJSON *obj, char **out, size_t *len) {
  char *s = cJSON_PrintUnformatted(obj);

  cJSON_Delete(obj);
  if (s == NULL)
    return GV_ENOMEM;
  *len = strlen(s);
  if (*len > GV_MSG_MAX) {
    free(s);
    return GV_ETOOBIG;
  }
  *out = s;
  return 0;
}

static int add_str_array(cJSON *obj, const char *key, size_t n,
                         const char *(*get)(const gv_msg *, size_t, char *),
                         const gv_msg *m) {
  cJSON *arr = cJSON_AddArrayToObject(obj, key);
  char tmp[GV_ADDR_TEXT_MAX];

  if (arr == NULL)
    return GV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    cJSON *s = cJSON_CreateString(get(m, i, tmp));
    if (s == NULL || !cJSON_AddItemToArray(arr, s))
      return GV_ENOMEM;
  }
  return 0;
}

static const char *addr_at(const gv_msg *m, size_t i, char *tmp) {
  gv_addr_format(&m->u.peer.addrs[i], tmp);
  return tmp;
}

/* What parse_relays() accepts, for the origin `origin`. */
static bool relays_valid(const gv_peer_state *p,
                         const uint8_t origin[GV_ID_BYTES]) {
  if (p->n_relays > GV_MAX_RELAYS || (p->n_relays > 0 && p->broadcasting))
    return false;
  for (unsigned i = 0; i < p->n_relays; i++) {
    if (sodium_memcmp(p->relays[i], origin, GV_ID_BYTES) == 0)
      return false;
    for (unsigned j = 0; j < i; j++)
      if (sodium_memcmp(p->relays[j], p->relays[i], GV_ID_BYTES) == 0)
        return false;
  }
  return true;
}

/* "relays", only when there are any: a record without relays encodes to
 * the bytes it had before the member existed. */
static int add_relays(cJSON *obj, const gv_peer_state *p) {
  cJSON *arr;

  if (p->n_relays == 0)
    return 0;
  if ((arr = cJSON_AddArrayToObject(obj, "relays")) == NULL)
    return GV_ENOMEM;
  for (unsigned i = 0; i < p->n_relays; i++) {
    char hex[GV_ID_HEX_LEN + 1];
    cJSON *s;
    gv_id_to_hex(p->relays[i], hex);
    if ((s = cJSON_CreateString(hex)) == NULL || !cJSON_AddItemToArray(arr, s))
      return GV_ENOMEM;
  }
  return 0;
}

static int add_repos(cJSON *obj, const gv_peer_state *p) {
  cJSON *arr = cJSON_AddArrayToObject(obj, "repos");
  const char *r = p->repos;

  if (arr == NULL)
    return GV_ENOMEM;
  for (unsigned i = 0; i < p->n_repos; i++, r += strlen(r) + 1) {
    cJSON *s = cJSON_CreateString(r);
    if (s == NULL || !cJSON_AddItemToArray(arr, s))
      return GV_ENOMEM;
  }
  return 0;
}

/* Appends {"body": ..., "sig": ...} of an already-signed record. */
static int add_record(cJSON *arr_or_obj, const char *key, const gv_msg *rec) {
  cJSON *e = cJSON_CreateObject();

  if (e == NULL)
    return GV_ENOMEM;
  if (key != NULL ? !cJSON_AddItemToObject(arr_or_obj, key, e)
                  : !cJSON_AddItemToArray(arr_or_obj, e)) {
    cJSON_Delete(e);
    return GV_ENOMEM;
  }
  if (rec->body == NULL || (rec->type != GV_MSG_PEER_ANNOUNCEMENT &&
                            rec->type != GV_MSG_PEER_UPDATE))
    return GV_EINVAL;
  if (cJSON_AddStringToObject(e, "body", rec->body) == NULL)
    return GV_ENOMEM;
  return add_hex(e, "sig", rec->sig, GV_SIG_BYTES);
}

/* ---- the envelopes, written directly ----
 *
 * Envelopes are encoded for every message sent (a HELLO per link, a
 * gossip message per hop), so they are written straight into one buffer,
 * byte for byte what cJSON_PrintUnformatted printed from the tree it used
 * to build (tests/check_msg.c compares the two): members in order, no
 * white space, strings escaped as cJSON escapes them. */

typedef struct wbuf {
  char *p;
  size_t n, cap;
  bool oom;
  bool lent; /* p is the caller's buffer (the _in forms), not malloc'd */
} wbuf;

/* w_reserve's growth: the first malloc'd block is the size asked (w_open's
 * hint, or what a lent block lacked room for), later ones double; what was
 * written in a lent block is copied over. */
static void w_grow(wbuf *w, size_t more) {
  size_t need = w->n + more + 1, cap = w->cap && !w->lent ? w->cap : need;
  char *p;
  if (w->oom)
    return;
  while (cap < need)
    cap *= 2;
  if (w->lent) {
    if ((p = malloc(cap)) != NULL)
      memcpy(p, w->p, w->n);
  } else {
    p = realloc(w->p, cap);
  }
  if (p == NULL) {
    w->oom = true;
    return;
  }
  w->p = p;
  w->cap = cap;
  w->lent = false;
}

/* Room for more bytes and a NUL (w->oom set if there is none). Called
 * for every member written: the test inline, the growth not. */
static inline void w_reserve(wbuf *w, size_t more) {
  if (w->n + more + 1 > w->cap)
    w_grow(w, more);
}

/* A buffer that starts in buf[0..cap) (none if cap is 0). */
static wbuf w_in(char *buf, size_t cap) {
  return (wbuf){.p = cap > 0 ? buf : NULL, .cap = cap, .lent = cap > 0};
}

static void w_free(wbuf *w) {
  if (!w->lent)
    free(w->p);
}

static void w_mem(wbuf *w, const char *s, size_t len) {
  w_reserve(w, len);
  if (w->oom)
    return;
  memcpy(w->p + w->n, s, len);
  w->n += len;
}

#define W_LIT(w, lit) w_mem(w, lit, sizeof(lit) - 1)

/* One byte of a string, escaped if it must be; returns the new end. */
static char *w_byte(char *o, unsigned char c) {
  static const char hex[] = "0123456789abcdef";

  if (c >= 32 && c != '"' && c != '\\') {
    *o++ = (char)c;
    return o;
  }
  *o++ = '\\';
  switch (c) {
  case '"': *o++ = '"'; break;
  case '\\': *o++ = '\\'; break;
  case '\b': *o++ = 'b'; break;
  case '\f': *o++ = 'f'; break;
  case '\n': *o++ = 'n'; break;
  case '\r': *o++ = 'r'; break;
  case '\t': *o++ = 't'; break;
  default:
    memcpy(o, "u00", 3);
    o[3] = hex[c >> 4];
    o[4] = hex[c & 15];
    o += 5;
    break;
  }
  return o;
}

/* A JSON string as cJSON prints one: '"', '\\' and the control characters
 * escaped (\b \f \n \r \t, else \u00xx), every other byte as it is. Room
 * for the worst case (6 bytes a byte) is taken first: one check. */
static void w_str(wbuf *w, const char *s) {
  const uint64_t ones = 0x0101010101010101ULL, highs = ones * 0x80;
  size_t len = strlen(s), i = 0;
  char *o;

  w_reserve(w, 6 * len + 2);
  if (w->oom)
    return;
  o = w->p + w->n;
  *o++ = '"';
  /* Eight bytes at a time: each test sets a byte's high bit where the
   * byte is below 0x20, '"' or '\\' (bytes at or past 0x80 are plain,
   * masked out by ~x). The subtractions' borrows can mark bytes above a
   * marked one, never below it, so the lowest mark is exact: the word is
   * copied whole, the output advanced to it, and that byte escaped. */
  while (len - i >= 8) {
    uint64_t x, m;
    memcpy(&x, s + i, 8);
    m = ((x - ones * 0x20) | ((x ^ ones * '"') - ones) |
         ((x ^ ones * '\\') - ones)) &
        ~x & highs;
    memcpy(o, &x, 8);
    if (m == 0) {
      o += 8;
      i += 8;
      continue;
    }
    m = (unsigned)__builtin_ctzll(m) >> 3;
    o += m;
    if (s[i + m] == '"') { /* nearly every escape of a JSON body */
      memcpy(o, "\\\"", 2);
      o += 2;
    } else {
      o = w_byte(o, (unsigned char)s[i + m]);
    }
    i += m + 1;
  }
  for (; i < len; i++)
    o = w_byte(o, (unsigned char)s[i]);
  *o++ = '"';
  w->n = (size_t)(o - w->p);
}

/* ,"key": (the first member's comma is the caller's '{'). Keys are our
 * own names, nothing in them to escape. */
static void w_key(wbuf *w, const char *key) {
  size_t len = strlen(key);
  char *o;

  w_reserve(w, len + 4);
  if (w->oom)
    return;
  o = w->p + w->n;
  memcpy(o, ",\"", 2);
  memcpy(o + 2, key, len);
  memcpy(o + 2 + len, "\":", 2);
  w->n += len + 4;
}

/* ,"key":digits (snprintf cost a thousand instructions a number). */
static void w_num(wbuf *w, const char *key, uint64_t v) {
  char digits[24], *d = digits + sizeof(digits);
  w_key(w, key);
  do
    *--d = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  w_mem(w, d, (size_t)(digits + sizeof(digits) - d));
}

static void w_hex(wbuf *w, const uint8_t *bin, size_t n) {
  w_reserve(w, 2 * n + 2);
  if (w->oom)
    return;
  w->p[w->n++] = '"';
  gv_hex_encode(w->p + w->n, bin, n);
  w->n += 2 * n;
  w->p[w->n++] = '"';
}

/* {"v":1 opens every envelope. */
_Static_assert(GV_MSG_VERSION == 1, "w_open writes the version");
static void w_open(wbuf *w, size_t hint) {
  w_reserve(w, hint);
  W_LIT(w, "{\"v\":1");
}

/* Closes the envelope into *out, checking the size limit. */
static int w_close(wbuf *w, char **out, size_t *len) {
  W_LIT(w, "}");
  if (w->oom) {
    w_free(w);
    return GV_ENOMEM;
  }
  if (w->n > GV_MSG_MAX) {
    w_free(w);
    return GV_ETOOBIG;
  }
  w->p[w->n] = '\0';
  *out = w->p;
  *len = w->n;
  return 0;
}

int gv_msg_encode_link(const gv_msg *m, char **out, size_t *len) {
  return gv_msg_encode_link_in(m, NULL, 0, out, len);
}

int gv_msg_encode_link_in(const gv_msg *m, char *buf, size_t cap, char **out,
                          size_t *len) {
  wbuf w = w_in(buf, cap);
  const gv_msg *rec;

  if (gv_msg_is_gossip(m->type) || m->type <= GV_MSG_NONE ||
      m->type >= GV__MSG_COUNT)
    return GV_EINVAL;
  /* A HELLO's record body at its worst (w_str's reserve): one block. */
  w_open(&w, m->type == GV_MSG_HELLO && m->u.hello.record != NULL &&
                     m->u.hello.record->body != NULL
                 ? 6 * strlen(m->u.hello.record->body) + 512
                 : 256);
  w_key(&w, "type");
  w_str(&w, gv_msg_type_name(m->type));
  switch (m->type) {
  case GV_MSG_HELLO:
    w_key(&w, "agent");
    w_str(&w, m->u.hello.agent);
    w_num(&w, "ts", (uint64_t)m->ts);
    w_num(&w, "seq", m->u.hello.seq);
    if ((rec = m->u.hello.record) == NULL)
      break;
    if (rec->body == NULL || (rec->type != GV_MSG_PEER_ANNOUNCEMENT &&
                              rec->type != GV_MSG_PEER_UPDATE)) {
      w_free(&w);
      return GV_EINVAL;
    }
    w_key(&w, "record");
    W_LIT(&w, "{\"body\":");
    w_str(&w, rec->body);
    W_LIT(&w, ",\"sig\":");
    w_hex(&w, rec->sig, GV_SIG_BYTES);
    W_LIT(&w, "}");
    break;
  case GV_MSG_PING:
  case GV_MSG_PONG: w_num(&w, "nonce", m->u.nonce); break;
  case GV_MSG_IHAVE:
  case GV_MSG_IWANT:
    if (m->u.ids.n == 0 || m->u.ids.n > GV_MAX_IDS) {
      w_free(&w);
      return GV_EINVAL;
    }
    w_key(&w, "ids");
    W_LIT(&w, "[");
    for (size_t i = 0; i < m->u.ids.n; i++) {
      if (i > 0)
        W_LIT(&w, ",");
      w_hex(&w, m->u.ids.ids[i], GV_MSG_ID_BYTES);
    }
    W_LIT(&w, "]");
    break;
  case GV_MSG_GOODBYE:
    w_key(&w, "reason");
    w_str(&w, m->u.reason);
    break;
  default: break;
  }
  return w_close(&w, out, len);
}

static int build_body(const gv_msg *m, cJSON *b) {
  int rc;

  if ((rc = add_num(b, "v", GV_MSG_VERSION)) < 0 ||
      cJSON_AddStringToObject(b, "type", gv_msg_type_name(m->type)) == NULL ||
      (rc = add_hex(b, "origin", m->origin, GV_ID_BYTES)) < 0 ||
      (rc = add_num(b, "seq", m->seq)) < 0 ||
      (rc = add_num(b, "ts", (uint64_t)m->ts)) < 0)
    return rc < 0 ? rc : GV_ENOMEM;
  switch (m->type) {
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE:
    if (m->u.peer.n_addrs > GV_MAX_ADDRS || m->u.peer.n_repos > GV_MAX_REPOS ||
        (m->u.peer.n_repos > 0 && m->u.peer.repos == NULL) ||
        (m->u.peer.n_addrs > 0 && !m->u.peer.broadcasting) ||
        !relays_valid(&m->u.peer, m->origin) ||
        (m->u.peer.tport != 0 && !m->u.peer.broadcasting))
      return GV_EINVAL; /* never sign what validation would reject */
    if (cJSON_AddBoolToObject(b, "broadcasting", m->u.peer.broadcasting) ==
            NULL ||
        cJSON_AddBoolToObject(b, "bootstrap", m->u.peer.bootstrap) == NULL)
      return GV_ENOMEM;
    if ((rc = add_str_array(b, "addrs", m->u.peer.n_addrs, addr_at, m)) < 0 ||
        (rc = add_repos(b, &m->u.peer)) < 0 ||
        (rc = add_relays(b, &m->u.peer)) < 0)
      return rc;
    /* "tport" only when set: a record without it encodes to the bytes it
     * had before the member existed. */
    return m->u.peer.tport != 0 ? add_num(b, "tport", m->u.peer.tport) : 0;
  case GV_MSG_PEER_REQUEST:
    if (cJSON_AddStringToObject(b, "repo", m->u.request.repo) == NULL)
      return GV_ENOMEM;
    return add_num(b, "max", m->u.request.max);
  case GV_MSG_PEER_LIST_RESPONSE: {
    cJSON *arr;
    if ((rc = add_hex(b, "to", m->u.response.to, GV_ID_BYTES)) < 0 ||
        (rc = add_hex(b, "request", m->u.response.request, GV_MSG_ID_BYTES)) <
            0)
      return rc;
    if (m->u.response.n_peers > GV_MAX_PEERS)
      return GV_EINVAL;
    if ((arr = cJSON_AddArrayToObject(b, "peers")) == NULL)
      return GV_ENOMEM;
    for (size_t i = 0; i < m->u.response.n_peers; i++)
      if ((rc = add_record(arr, NULL, &m->u.response.peers[i])) < 0)
        return rc;
    return 0;
  }
  case GV_MSG_HEARTBEAT: return 0;
  default: return GV_EINVAL;
  }
}

int gv_msg_encode_gossip(const gv_msg *m, char **out, size_t *len) {
  return gv_msg_encode_gossip_in(m, NULL, 0, out, len);
}

int gv_msg_encode_gossip_in(const gv_msg *m, char *buf, size_t cap,
                            char **out, size_t *len) {
  wbuf w = w_in(buf, cap);

  if (m->body == NULL || !gv_msg_is_gossip(m->type))
    return GV_EINVAL;
  w_open(&w, 6 * strlen(m->body) + 2 * GV_SIG_BYTES + 128);
  w_num(&w, "ttl", m->ttl);
  w_num(&w, "hops", m->hops);
  w_key(&w, "body");
  w_str(&w, m->body);
  w_key(&w, "sig");
  w_hex(&w, m->sig, GV_SIG_BYTES);
  return w_close(&w, out, len);
}

int gv_msg_seal(gv_msg *m, const gv_identity *id, char **out, size_t *len) {
  return gv_msg_seal_opt(m, id, false, out, len);
}

int gv_msg_seal_opt(gv_msg *m, const gv_identity *id, bool stub_sig, char **out,
                    size_t *len) {
  uint8_t tbs[SIG_PREFIX_LEN + GV_MSG_ID_BYTES];
  bool peer =
      m->type == GV_MSG_PEER_ANNOUNCEMENT || m->type == GV_MSG_PEER_UPDATE;
  char *old = m->body, *body = NULL, *w;
  size_t len_body, extra;
  cJSON *b;
  int rc;

  if (!gv_msg_is_gossip(m->type) || m->seq == 0 || m->seq > GV_INT_MAX ||
      m->ttl > gv_msg_max_ttl(m->type))
    return GV_EINVAL;
  memcpy(m->origin, id->pk, GV_ID_BYTES);
  if ((b = cJSON_CreateObject()) == NULL)
    return GV_ENOMEM;
  if ((rc = build_body(m, b)) < 0) {
    cJSON_Delete(b);
    return rc;
  }
  if ((rc = print_obj(b, &body, &len_body)) < 0)
    return rc;
  /* The names move behind the new body, as after a decode: m no longer
   * borrows them (they may have lived in the old body). */
  extra = peer ? repos_bytes(m->u.peer.repos, m->u.peer.n_repos) : 0;
  w = set_body(m, body, len_body, extra);
  free(body);
  if (w == NULL)
    return GV_ENOMEM;
  if (peer) {
    if (extra > 0)
      memcpy(w, m->u.peer.repos, extra);
    m->u.peer.repos = w;
  }
  free(old);
  crypto_generichash(m->id, sizeof(m->id), (const uint8_t *)m->body,
                     m->body_len, NULL, 0);
  memcpy(tbs, SIG_PREFIX, SIG_PREFIX_LEN);
  memcpy(tbs + SIG_PREFIX_LEN, m->id, GV_MSG_ID_BYTES);
  if (stub_sig)
    memset(m->sig, 0, sizeof(m->sig));
  else
    crypto_sign_detached(m->sig, NULL, tbs, sizeof(tbs), id->sk);
  return gv_msg_encode_gossip(m, out, len);
}

/* The relay's agent socket (docs/RELAY.md §7): request parsing on top of
 * proto/json.c's strict layer, and the encoders of answers and events.
 * Contracts in relayreq.h. */
#include "relayreq.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char *const state_names[] = {
    [GV_RSTATE_ACCEPTED] = "accepted", [GV_RSTATE_SENT] = "sent",
    [GV_RSTATE_STORED] = "stored",     [GV_RSTATE_DELIVERED] = "delivered",
    [GV_RSTATE_READ] = "read",         [GV_RSTATE_FAILED] = "failed",
};

static const char *const fail_names[] = {
    [GV_RFAIL_EXPIRED] = "expired",
    [GV_RFAIL_UNKNOWN_RECIPIENT] = "unknown_recipient",
    [GV_RFAIL_REFUSED] = "refused",
    [GV_RFAIL_TOO_LARGE] = "too_large",
    [GV_RFAIL_NOT_IN_TEAM] = "not_in_team",
};

const char *gv_rstate_name(gv_rstate s) {
  return (unsigned)s < sizeof(state_names) / sizeof(state_names[0])
             ? state_names[s]
             : NULL;
}

const char *gv_rfail_name(gv_rfail f) {
  return (unsigned)f < sizeof(fail_names) / sizeof(fail_names[0])
             ? fail_names[f]
             : NULL;
}

/* ---- Parsing ---- */

/* A member that may be absent; JSON null counts as absent. */
static const cJSON *opt(const cJSON *o, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNull(it) ? NULL : it;
}

static int opt_uint(const cJSON *o, const char *key, uint64_t lo, uint64_t hi,
                    uint64_t dflt, uint64_t *out, gv_why *why) {
  if (opt(o, key) == NULL) {
    *out = dflt;
    return 0;
  }
  return gv_json_uint(o, key, lo, hi, out, why);
}

static int opt_bool(const cJSON *o, const char *key, bool dflt, bool *out,
                    gv_why *why) {
  if (opt(o, key) == NULL) {
    *out = dflt;
    return 0;
  }
  return gv_json_bool(o, key, out, why);
}

/* An optional string of lo..GV_RREQ_TOKEN_MAX printable ASCII bytes;
 * *out stays NULL when absent. */
static int opt_token(const cJSON *o, const char *key, size_t lo,
                     const char **out, gv_why *why) {
  const char *s;
  size_t len;
  int rc;

  if (opt(o, key) == NULL)
    return 0;
  if ((rc = gv_json_str(o, key, &s, &len, why)) < 0)
    return rc;
  if (len < lo || len > GV_RREQ_TOKEN_MAX)
    return gv_fail(why, GV_ERANGE, "'%s' has %zu bytes, not %zu..%d", key, len,
                   lo, GV_RREQ_TOKEN_MAX);
  for (size_t i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] > 0x7e)
      return gv_fail(why, GV_EFIELD,
                     "'%s' has byte 0x%02x at %zu: only printable ASCII", key,
                     (unsigned char)s[i], i);
  *out = s;
  return 0;
}

static int opt_hex(const cJSON *o, const char *key, uint8_t *out, size_t n,
                   bool *has, gv_why *why) {
  int rc;

  *has = false;
  if (opt(o, key) == NULL)
    return 0;
  if ((rc = gv_json_hex(o, key, out, n, why)) < 0)
    return rc;
  *has = true;
  return 0;
}

static int parse_hello(gv_rreq *r, const cJSON *o, gv_why *why) {
  const char *s;
  size_t len;
  int rc;

  if ((rc = gv_json_str(o, "as", &s, &len, why)) < 0)
    return rc;
  if ((rc = gv_raddr_name_parse(&r->u.hello.as, s, len, why)) < 0)
    return rc;
  if ((rc = opt_hex(o, "team", r->u.hello.team, GV_RREQ_TEAM_BYTES,
                    &r->u.hello.has_team, why)) < 0)
    return rc;
  return opt_hex(o, "resume", r->u.hello.resume, GV_RREQ_SESSION_BYTES,
                 &r->u.hello.has_resume, why);
}

static int parse_send(gv_rreq *r, const cJSON *o, gv_why *why) {
  const char *s;
  size_t len, bad;
  uint64_t v;
  int rc;

  if ((rc = gv_json_str(o, "to", &s, &len, why)) < 0 ||
      (rc = gv_raddr_parse(&r->u.send.to, s, len, why)) < 0)
    return rc;
  if ((rc = gv_json_str(o, "message", &s, &len, why)) < 0)
    return rc;
  if (len > GV_RREQ_MESSAGE_MAX)
    return gv_fail(why, GV_EPAYLOAD_TOO_LARGE,
                   "'message' has %zu bytes, more than %d", len,
                   GV_RREQ_MESSAGE_MAX);
  if ((bad = gv_json_utf8_bad_at(s, len)) < len)
    return gv_fail(why, GV_EFIELD, "'message' is not UTF-8 at byte %zu", bad);
  r->u.send.message = s;
  r->u.send.message_len = len;
  if ((rc = opt_token(o, "thread", 0, &r->u.send.thread, why)) < 0 ||
      (rc = opt_token(o, "key", 1, &r->u.send.key, why)) < 0 ||
      (rc = opt_uint(o, "ttl_ms", 1, GV_RREQ_TTL_MAX_MS, GV_RREQ_TTL_DEFAULT_MS,
                     &r->u.send.ttl_ms, why)) < 0 ||
      (rc = opt_uint(o, "timeout_ms", 1, GV_RREQ_TIMEOUT_MAX_MS,
                     GV_RREQ_TIMEOUT_DEFAULT_MS, &r->u.send.timeout_ms, why)) <
          0)
    return rc;
  r->u.send.wait = GV_RSTATE_ACCEPTED;
  if (opt(o, "wait") == NULL)
    return 0;
  if ((rc = gv_json_str(o, "wait", &s, &len, why)) < 0)
    return rc;
  for (v = GV_RSTATE_ACCEPTED; v <= GV_RSTATE_READ; v++)
    if (strcmp(s, state_names[v]) == 0) {
      r->u.send.wait = (gv_rstate)v;
      return 0;
    }
  return gv_fail(why, GV_EFIELD,
                 "'wait' is '%.32s', not accepted, sent, stored, delivered "
                 "or read",
                 s);
}

static int parse_ids(gv_rreq *r, const cJSON *o, gv_why *why) {
  const cJSON *arr, *it;
  size_t got, k = 0;
  const char *end;
  int n, rc;

  if ((rc = gv_json_array(o, "ids", GV_RREQ_IDS_MAX, &arr, &n, why)) < 0)
    return rc;
  if (n == 0)
    return gv_fail(why, GV_ERANGE, "'ids' is empty");
  /* n is bounded above, so the allocation is too. */
  if ((r->owned = calloc((size_t)n, GV_RREQ_ID_BYTES)) == NULL)
    return gv_fail(why, GV_ENOMEM, "no memory for %d ids", n);
  r->u.ids.ids = r->owned;
  cJSON_ArrayForEach(it, arr) {
    got = 0;
    end = NULL;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        strlen(it->valuestring) != 2 * GV_RREQ_ID_BYTES ||
        sodium_hex2bin(r->u.ids.ids[k], GV_RREQ_ID_BYTES, it->valuestring,
                       2 * GV_RREQ_ID_BYTES, NULL, &got, &end) != 0 ||
        got != GV_RREQ_ID_BYTES || *end != '\0')
      return gv_fail(why, GV_EFIELD, "'ids'[%zu] is not %d hex digits", k,
                     2 * GV_RREQ_ID_BYTES);
    k++;
  }
  r->u.ids.n = k;
  return 0;
}

static int parse_agents(gv_rreq *r, const cJSON *o, gv_why *why) {
  const char *s;
  size_t len;
  int rc;

  if (opt(o, "project") == NULL)
    return 0;
  if ((rc = gv_json_str(o, "project", &s, &len, why)) < 0 ||
      (rc = gv_raddr_part_check(s, len, "project", why)) < 0)
    return rc;
  r->u.agents.project = s;
  return 0;
}

int gv_rreq_parse(gv_rreq *r, const char *line, size_t len, gv_why *why) {
  const cJSON *o;
  const char *cmd;
  size_t at = 0, clen;
  uint64_t v;
  int rc;

  memset(r, 0, sizeof(*r));
  if (len > GV_RREQ_LINE_MAX)
    return gv_fail(why, GV_ETOOBIG, "request of %zu bytes, more than %d", len,
                   GV_RREQ_LINE_MAX);
  if ((r->root = gv_json_parse_exact(line, len, &at)) == NULL) {
    if (at < len && line[at] == '\0')
      return gv_fail(why, GV_EJSON, "NUL byte at %zu", at);
    if (at + 5 < len && memcmp(line + at, "\\u0000", 6) == 0)
      return gv_fail(why, GV_EJSON, "\\u0000 at %zu", at);
    return gv_fail(why, GV_EJSON, "not one JSON value (at byte %zu)", at);
  }
  o = r->root;
  if (!cJSON_IsObject(o))
    return gv_fail(why, GV_EJSON, "request is not a JSON object");
  if ((rc = gv_json_check_members(o, why)) < 0)
    return rc;
  if ((rc = opt_token(o, "req", 0, &r->req, why)) < 0)
    return rc;
  if ((rc = gv_json_str(o, "cmd", &cmd, &clen, why)) < 0)
    return rc;

  if (strcmp(cmd, "hello") == 0) {
    r->cmd = GV_RREQ_HELLO;
    return parse_hello(r, o, why);
  }
  if (strcmp(cmd, "send") == 0) {
    r->cmd = GV_RREQ_SEND;
    return parse_send(r, o, why);
  }
  if (strcmp(cmd, "inbox") == 0) {
    r->cmd = GV_RREQ_INBOX;
    if ((rc = opt_uint(o, "limit", 1, GV_RREQ_LIMIT_MAX, GV_RREQ_LIMIT_DEFAULT,
                       &v, why)) < 0 ||
        (rc = opt_bool(o, "unread_only", false, &r->u.inbox.unread_only, why)) <
            0)
      return rc;
    r->u.inbox.limit = (unsigned)v;
    return opt_bool(o, "peek", true, &r->u.inbox.peek, why);
  }
  if (strcmp(cmd, "ack") == 0 || strcmp(cmd, "read") == 0) {
    r->cmd = cmd[0] == 'a' ? GV_RREQ_ACK : GV_RREQ_READ;
    return parse_ids(r, o, why);
  }
  if (strcmp(cmd, "status") == 0) {
    r->cmd = GV_RREQ_STATUS;
    return gv_json_hex(o, "id", r->u.status.id, GV_RREQ_ID_BYTES, why);
  }
  if (strcmp(cmd, "agents") == 0) {
    r->cmd = GV_RREQ_AGENTS;
    return parse_agents(r, o, why);
  }
  if (strcmp(cmd, "subscribe") == 0) {
    r->cmd = GV_RREQ_SUBSCRIBE;
    return 0;
  }
  return gv_fail(why, GV_ETYPE,
                 "unknown cmd '%.32s' (hello, send, inbox, ack, read, status, "
                 "agents, subscribe)",
                 cmd);
}

void gv_rreq_free(gv_rreq *r) {
  cJSON_Delete(r->root);
  free(r->owned);
  memset(r, 0, sizeof(*r));
}

/* ---- Encoders ---- */

/* Prints o on one line with its '\n' and deletes it; NULL if o is NULL or
 * anything failed (`ok` false). cJSON escapes control characters, so the
 * only newline is the last byte. */
static char *finish(cJSON *o, bool ok) {
  char *s = NULL, *line = NULL;
  size_t n;

  if (o != NULL && ok)
    s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (s == NULL)
    return NULL;
  n = strlen(s);
  if ((line = realloc(s, n + 2)) == NULL) {
    free(s);
    return NULL;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  return line;
}

static bool add_str(cJSON *o, const char *key, const char *v) {
  return cJSON_AddStringToObject(o, key, v) != NULL;
}

static bool add_hex(cJSON *o, const char *key, const uint8_t *b, size_t n) {
  char hex[2 * GV_ID_BYTES + 1];

  if (2 * n + 1 > sizeof(hex))
    return false;
  sodium_bin2hex(hex, sizeof(hex), b, n);
  return add_str(o, key, hex);
}

/* {"ok":ok,"req"?}: the start of every answer. */
static cJSON *answer(const char *req, bool ok) {
  cJSON *o = cJSON_CreateObject();

  if (o == NULL)
    return NULL;
  if (cJSON_AddBoolToObject(o, "ok", ok) == NULL ||
      (req != NULL && !add_str(o, "req", req))) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static bool add_state(cJSON *o, gv_rstate s, gv_rfail f) {
  const char *sn = gv_rstate_name(s), *fn = gv_rfail_name(f);

  if (sn == NULL || !add_str(o, "state", sn))
    return false;
  return s != GV_RSTATE_FAILED || (fn != NULL && add_str(o, "reason", fn));
}

static cJSON *error_obj(const char *req, int err, const char *reason) {
  const char *name = gv_err_name(err);
  cJSON *o = answer(req, false);

  if (strncmp(name, "GV_E", 4) == 0)
    name += 4;
  if (o != NULL &&
      (!add_str(o, "error", name) ||
       !add_str(o, "reason", reason ? reason : gv_strerror(err)))) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

char *gv_rreq_enc_error(const char *req, int err, const char *reason) {
  cJSON *o = error_obj(req, err, reason);
  return finish(o, o != NULL);
}

char *gv_rreq_enc_ambiguous(const char *req, const char *reason,
                            const gv_raddr_ent *dir, const size_t *idx,
                            size_t n) {
  char text[GV_RADDR_TEXT_MAX + 1];
  cJSON *o = error_obj(req, GV_EAMBIGUOUS, reason), *arr, *s;
  bool ok = o != NULL && (arr = cJSON_AddArrayToObject(o, "candidates"));

  for (size_t i = 0; ok && i < n; i++) {
    gv_raddr_format_ent(&dir[idx[i]], text);
    ok = (s = cJSON_CreateString(text)) != NULL && cJSON_AddItemToArray(arr, s);
  }
  return finish(o, ok);
}

char *gv_rreq_enc_ok(const char *req) {
  cJSON *o = answer(req, true);
  return finish(o, o != NULL);
}

char *gv_rreq_enc_hello(const char *req, const gv_raddr_name *as,
                        const uint8_t node[GV_ID_BYTES],
                        const uint8_t session[GV_RREQ_SESSION_BYTES]) {
  char name[GV_RADDR_NAME_MAX + 1];
  cJSON *o = answer(req, true);

  snprintf(name, sizeof(name), "%s:%s", as->project, as->name);
  return finish(o, o != NULL && add_str(o, "as", name) &&
                       add_hex(o, "node", node, GV_ID_BYTES) &&
                       add_hex(o, "session", session, GV_RREQ_SESSION_BYTES));
}

static bool add_sent(cJSON *o, const gv_rreq_sent *s) {
  return add_hex(o, "id", s->id, GV_RREQ_ID_BYTES) && add_str(o, "to", s->to) &&
         add_state(o, s->state, s->reason);
}

char *gv_rreq_enc_sent(const char *req, const gv_rreq_sent *s, size_t n,
                       bool fanout) {
  cJSON *o = answer(req, true), *arr, *e;
  bool ok = o != NULL;

  if (!fanout)
    return finish(o, ok && n == 1 && add_sent(o, s));
  ok = ok && (arr = cJSON_AddArrayToObject(o, "sent")) != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = (e = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(arr, e) &&
         add_sent(e, &s[i]);
  return finish(o, ok);
}

/* The members of a message, into o. */
static bool add_msg(cJSON *o, const gv_rreq_msg *m) {
  cJSON *arr, *v;

  if (!add_hex(o, "id", m->id, GV_RREQ_ID_BYTES) ||
      !add_str(o, "from", m->from) || !add_str(o, "to", m->to) ||
      !add_str(o, "thread", m->thread ? m->thread : "") ||
      !add_str(o, "body", m->body) ||
      cJSON_AddNumberToObject(o, "seq", (double)m->seq) == NULL)
    return false;
  if (m->n_skipped == 0)
    return true;
  if ((arr = cJSON_AddArrayToObject(o, "skipped")) == NULL)
    return false;
  for (size_t i = 0; i < m->n_skipped; i++)
    if ((v = cJSON_CreateNumber((double)m->skipped[i])) == NULL ||
        !cJSON_AddItemToArray(arr, v))
      return false;
  return true;
}

char *gv_rreq_enc_inbox(const char *req, const gv_rreq_msg *m, size_t n,
                        bool more) {
  cJSON *o = answer(req, true), *arr, *e;
  bool ok = o != NULL && (arr = cJSON_AddArrayToObject(o, "messages"));

  for (size_t i = 0; ok && i < n; i++)
    ok = (e = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(arr, e) &&
         add_msg(e, &m[i]);
  if (ok && more)
    ok = cJSON_AddTrueToObject(o, "more") != NULL;
  return finish(o, ok);
}

char *gv_rreq_enc_status(const char *req, gv_rstate state, gv_rfail reason,
                         const gv_rreq_step *trace, size_t n) {
  cJSON *o = answer(req, true), *arr, *e;
  bool ok = o != NULL && add_state(o, state, reason) &&
            (arr = cJSON_AddArrayToObject(o, "trace"));

  for (size_t i = 0; ok && i < n; i++)
    ok = (e = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(arr, e) &&
         gv_rstate_name(trace[i].state) != NULL &&
         add_str(e, "state", gv_rstate_name(trace[i].state)) &&
         cJSON_AddNumberToObject(e, "at_ms", (double)trace[i].at_ms) != NULL &&
         (trace[i].hop == NULL || add_hex(e, "hop", trace[i].hop, GV_ID_BYTES));
  return finish(o, ok);
}

char *gv_rreq_enc_agents(const char *req, const gv_raddr_ent *dir, size_t n) {
  char text[GV_RADDR_TEXT_MAX + 1];
  cJSON *o = answer(req, true), *arr, *e;
  bool ok = o != NULL && (arr = cJSON_AddArrayToObject(o, "agents"));

  for (size_t i = 0; ok && i < n; i++) {
    gv_raddr_format_ent(&dir[i], text);
    ok = (e = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(arr, e) &&
         add_str(e, "address", text) &&
         add_str(e, "project", dir[i].agent.project) &&
         add_str(e, "name", dir[i].agent.name) &&
         add_hex(e, "node", dir[i].node, GV_ID_BYTES) &&
         cJSON_AddBoolToObject(e, "online", dir[i].online) != NULL;
  }
  return finish(o, ok);
}

char *gv_rreq_enc_ev_message(const gv_rreq_msg *m) {
  cJSON *o = cJSON_CreateObject();

  return finish(o,
                o != NULL && add_str(o, "event", "message") && add_msg(o, m));
}

char *gv_rreq_enc_ev_state(const uint8_t id[GV_RREQ_ID_BYTES], gv_rstate s,
                           gv_rfail reason) {
  cJSON *o = cJSON_CreateObject();

  return finish(o, o != NULL && add_str(o, "event", "state") &&
                       add_hex(o, "id", id, GV_RREQ_ID_BYTES) &&
                       add_state(o, s, reason));
}

/* The MCP server's core: see mcp.h. Protocol steps cite the Model Context
 * Protocol specification (modelcontextprotocol.io/specification, revision
 * 2025-11-25 and the older ones negotiated below) and JSON-RPC 2.0. */
#include "mcp.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h" /* GV_VERSION */
#include "idmap.h"
#include "json.h"
#include "relay.h" /* GV_RELAY_PUSH_MAX */
#include "relayaddr.h"
#include "relayreq.h"

/* Newest first. The client's version is answered if listed here, else the
 * first (lifecycle: "Version Negotiation"). */
static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                       "2024-11-05"};
/* structuredContent in tool results exists from this revision on. */
#define STRUCTURED_SINCE "2025-06-18"

/* ---- tools: one table drives tools/list, argument checks and requests */

typedef enum fkind { F_STR, F_INT, F_BOOL, F_IDS } fkind;
typedef enum fchars { C_ANY, C_PRINTABLE, C_HEX, C_PART } fchars;

typedef struct field {
  const char *name; /* the argument, and the relay request's member */
  fkind kind;
  bool required;
  uint64_t min, max;          /* string bytes, integer value, array entries */
  fchars chars;               /* F_STR, and each entry of F_IDS */
  const char *const *choices; /* F_STR: one of these, NULL-terminated */
  const char *desc;
} field;

#define NFIELDS 6
typedef struct tool {
  const char *name, *title, *desc;
  const char *cmd; /* the relay request */
  field fields[NFIELDS];
} tool;

static const char *const waits[] = {"accepted", "stored", "delivered", "read",
                                    NULL};

static const tool tools[] = {
    {"relay_send",
     "Send a message",
     "Send a message to another agent of the team by name: 'name', "
     "'project:name', 'name@NODE', '*' (every agent of the team) or "
     "'project:*'. Returns the message id(s) and the state reached "
     "(accepted: on this node's disk; stored: on the destination node's "
     "disk; delivered: the recipient took it; read: it marked it read).",
     "send",
     {{"to", F_STR, true, 1, GV_RADDR_TEXT_MAX, C_ANY, NULL,
       "recipient address: name, project:name, name@NODE, * or project:*"},
      {"message", F_STR, true, 0, GV_RREQ_MESSAGE_MAX, C_ANY, NULL,
       "the text, at most 1 MiB of UTF-8"},
      {"thread", F_STR, false, 0, GV_RREQ_TOKEN_MAX, C_PRINTABLE, NULL,
       "a conversation thread id (printable ASCII)"},
      {"wait", F_STR, false, 0, 0, C_ANY, waits,
       "return once the message reaches this state (default accepted)"},
      {"timeout_ms", F_INT, false, 1, GV_RREQ_TIMEOUT_MAX_MS, C_ANY, NULL,
       "how long a wait may take, in ms (default 30000); then the state "
       "reached is returned"}}},
    {"relay_inbox",
     "Check the inbox",
     "List the messages sent to this agent, oldest first. By default a "
     "peek: nothing is consumed. With peek false the listed messages are "
     "taken (they become 'delivered' for their senders).",
     "inbox",
     {{"limit", F_INT, false, 1, GV_RREQ_LIMIT_MAX, C_ANY, NULL,
       "at most this many messages (default 100)"},
      {"unread_only", F_BOOL, false, 0, 0, C_ANY, NULL,
       "every message not yet read, taken or not (default false)"},
      {"peek", F_BOOL, false, 0, 0, C_ANY, NULL,
       "consume nothing (default true)"}}},
    {"relay_read",
     "Mark messages read",
     "Mark messages read by their ids; their senders see 'read'.",
     "read",
     {{"ids", F_IDS, true, 1, GV_RREQ_IDS_MAX, C_HEX, NULL,
       "message ids (32 hex digits each)"}}},
    {"relay_status",
     "Where is a message",
     "The state of a message this agent sent or received, and its trace: "
     "every state with its time and hop.",
     "status",
     {{"id", F_STR, true, 2 * GV_RREQ_ID_BYTES, 2 * GV_RREQ_ID_BYTES, C_HEX,
       NULL, "the message id (32 hex digits)"}}},
    {"relay_agents",
     "List the team's agents",
     "The team directory: every agent's address, project, name, node and "
     "whether it is online.",
     "agents",
     {{"project", F_STR, false, 1, GV_RADDR_PART_MAX, C_PART, NULL,
       "only this project's agents"}}},
};
#define NTOOLS (sizeof(tools) / sizeof(tools[0]))

/* ---- state ---- */

/* P_PEEK: a relay_inbox tool call that lists untaken messages only (a
 * peek without unread_only), so its length tells whether the node has
 * stopped pushing. */
typedef enum pkind { P_FREE, P_TOOL, P_PEEK, P_READ, P_SUBSCRIBE } pkind;

typedef struct pending {
  pkind kind;
  uint32_t gen; /* part of the token: a stale token finds no match */
  bool cancelled;
  cJSON *id; /* the JSON-RPC id to answer; NULL for P_SUBSCRIBE */
} pending;

struct gv_mcp {
  bool ready;      /* initialize answered */
  bool have_name;  /* no CONNECT needed */
  bool subscribed; /* to relay://inbox */
  char version[16];
  /* actions not yet taken: acts[head..n) */
  gv_mcp_act *acts;
  size_t head, n, cap;
  char *taken; /* the line of the last OUT taken, freed on the next call */
  char fallback[65];
  pending pend[GV_MCP_PENDING_MAX];
  uint16_t freelist[GV_MCP_PENDING_MAX];
  size_t nfree;
  /* ids already notified: a set, and a ring for forgetting the oldest */
  gv_idmap seen;
  uint8_t (*ring)[GV_RREQ_ID_BYTES];
  size_t ring_next, ring_len;
};

static void *xalloc(void *p) {
  if (p == NULL) { /* the core's state is bounded: no half transition */
    fputs("grapevine mcp: out of memory\n", stderr);
    abort();
  }
  return p;
}

static void begin(gv_mcp *m) {
  free(m->taken);
  m->taken = NULL;
}

static void push(gv_mcp *m, gv_mcp_act a) {
  if (m->head == m->n)
    m->head = m->n = 0;
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 16;
    m->acts = xalloc(realloc(m->acts, m->cap * sizeof(*m->acts)));
  }
  m->acts[m->n++] = a;
}

/* Queues obj (taken) as one line for the client. */
static void out(gv_mcp *m, cJSON *obj) {
  char *s = xalloc(cJSON_PrintUnformatted(obj));
  size_t len = strlen(s);
  char *line = xalloc(realloc(s, len + 2));
  line[len] = '\n';
  line[len + 1] = '\0';
  cJSON_Delete(obj);
  push(m, (gv_mcp_act){.kind = GV_MCP_OUT, .line = line});
}

static cJSON *envelope(const cJSON *id) {
  cJSON *o = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(o, "jsonrpc", "2.0");
  cJSON_AddItemToObject(o, "id",
                        id ? xalloc(cJSON_Duplicate(id, true))
                           : xalloc(cJSON_CreateNull()));
  return o;
}

static void reply(gv_mcp *m, const cJSON *id, cJSON *result) {
  cJSON *o = envelope(id);
  cJSON_AddItemToObject(o, "result", result);
  out(m, o);
}

/* An error answer; data (taken) may be NULL. */
static void reply_err(gv_mcp *m, const cJSON *id, int code, const char *msg,
                      cJSON *data) {
  cJSON *o = envelope(id), *e = xalloc(cJSON_CreateObject());
  cJSON_AddNumberToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", msg);
  if (data != NULL)
    cJSON_AddItemToObject(e, "data", data);
  cJSON_AddItemToObject(o, "error", e);
  out(m, o);
}

gv_mcp *gv_mcp_new(bool have_name, const uint8_t seen_key[16]) {
  gv_mcp *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->have_name = have_name;
  m->ring = calloc(GV_MCP_SEEN_MAX, sizeof(*m->ring));
  if (m->ring == NULL) {
    free(m);
    return NULL;
  }
  gv_idmap_init(&m->seen, seen_key);
  for (size_t i = 0; i < GV_MCP_PENDING_MAX; i++)
    m->freelist[i] = (uint16_t)(GV_MCP_PENDING_MAX - 1 - i);
  m->nfree = GV_MCP_PENDING_MAX;
  return m;
}

void gv_mcp_free(gv_mcp *m) {
  if (m == NULL)
    return;
  for (size_t i = m->head; i < m->n; i++) {
    free(m->acts[i].line);
    cJSON_Delete(m->acts[i].req);
  }
  for (size_t i = 0; i < GV_MCP_PENDING_MAX; i++)
    cJSON_Delete(m->pend[i].id);
  free(m->acts);
  free(m->taken);
  free(m->ring);
  gv_idmap_free(&m->seen);
  free(m);
}

bool gv_mcp_next(gv_mcp *m, gv_mcp_act *act) {
  begin(m);
  if (m->head == m->n)
    return false;
  *act = m->acts[m->head++];
  if (act->kind == GV_MCP_OUT)
    m->taken = act->line; /* lives until the next call */
  return true;
}

const char *gv_mcp_version(const gv_mcp *m) { return m->version; }

void gv_mcp_name_part(const char *client, char out_[65]) {
  size_t n = 0;
  for (const char *p = client; p != NULL && *p != '\0' && n < 64; p++)
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
        (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
      out_[n++] = *p;
  if (n == 0)
    memcpy(out_, "mcp", n = 3);
  out_[n] = '\0';
}

/* ---- relay calls ---- */

/* Queues req (taken) for the relay; false (req freed) if too many wait. */
static bool call(gv_mcp *m, pkind kind, const cJSON *id, cJSON *req) {
  if (m->nfree == 0) {
    cJSON_Delete(req);
    return false;
  }
  uint16_t slot = m->freelist[--m->nfree];
  pending *p = &m->pend[slot];
  p->kind = kind;
  p->gen++;
  p->cancelled = false;
  p->id = id ? xalloc(cJSON_Duplicate(id, true)) : NULL;
  push(m, (gv_mcp_act){.kind = GV_MCP_CALL,
                       .req = req,
                       .token = ((uint64_t)p->gen << 16) | slot});
  return true;
}

static bool structured(const gv_mcp *m) {
  return strcmp(m->version, STRUCTURED_SINCE) >= 0;
}

/* A tool result: text content (text, else payload as JSON; then hint
 * if not NULL), structuredContent when the version has it. payload is
 * taken. */
static void tool_result(gv_mcp *m, const cJSON *id, cJSON *payload,
                        const char *text, const char *hint, bool is_error) {
  cJSON *r = xalloc(cJSON_CreateObject());
  cJSON *content = xalloc(cJSON_AddArrayToObject(r, "content"));
  cJSON *c = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(c, "type", "text");
  if (text != NULL) {
    cJSON_AddStringToObject(c, "text", text);
  } else {
    char *s = xalloc(cJSON_PrintUnformatted(payload));
    cJSON_AddStringToObject(c, "text", s);
    free(s);
  }
  cJSON_AddItemToArray(content, c);
  if (hint != NULL) {
    c = xalloc(cJSON_CreateObject());
    cJSON_AddStringToObject(c, "type", "text");
    cJSON_AddStringToObject(c, "text", hint);
    cJSON_AddItemToArray(content, c);
  }
  if (structured(m))
    cJSON_AddItemToObject(r, "structuredContent", payload);
  else
    cJSON_Delete(payload);
  cJSON_AddBoolToObject(r, "isError", is_error);
  reply(m, id, r);
}

/* A tool error "CODE: reason", with {"error","reason"} structured. */
static void tool_error(gv_mcp *m, const cJSON *id, const char *code,
                       const char *reason, const cJSON *candidates) {
  cJSON *p = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(p, "error", code);
  cJSON_AddStringToObject(p, "reason", reason);
  size_t cap = strlen(code) + strlen(reason) + 16;
  const cJSON *c;
  cJSON_ArrayForEach(c, candidates) {
    if (cJSON_IsString(c))
      cap += strlen(c->valuestring) + 2;
  }
  char *text = xalloc(malloc(cap));
  size_t n = (size_t)snprintf(text, cap, "%s: %s", code, reason);
  if (cJSON_IsArray(candidates) && cJSON_GetArraySize(candidates) > 0) {
    cJSON_AddItemToObject(p, "candidates",
                          xalloc(cJSON_Duplicate(candidates, true)));
    const char *sep = " (candidates: ";
    cJSON_ArrayForEach(c, candidates) {
      if (cJSON_IsString(c))
        n += (size_t)snprintf(text + n, cap - n, "%s%s", sep, c->valuestring);
      sep = ", ";
    }
    snprintf(text + n, cap - n, ")");
  }
  tool_result(m, id, p, text, NULL, true);
  free(text);
}

/* The relay's answer without "ok" and "req": what the agent is shown. */
static cJSON *answer_body(const cJSON *answer) {
  cJSON *b = xalloc(cJSON_Duplicate(answer, true));
  cJSON_DeleteItemFromObjectCaseSensitive(b, "ok");
  cJSON_DeleteItemFromObjectCaseSensitive(b, "req");
  return b;
}

/* An answer's error as code and reason; false if it is a success. */
static bool answer_failed(const cJSON *answer, const char *why,
                          const char **code, const char **reason) {
  if (answer == NULL) {
    *code = "NODE_DOWN";
    *reason = why ? why : "the node did not answer";
    return true;
  }
  if (!cJSON_IsObject(answer) ||
      !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(answer, "ok"))) {
    *code = "PROTOCOL";
    *reason = "the node's answer is malformed";
    return true;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ok")))
    return false;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(answer, "reason");
  *code = cJSON_IsString(e) ? e->valuestring : "ERROR";
  *reason = cJSON_IsString(r) ? r->valuestring : "no reason given";
  return true;
}

/* Past GV_RELAY_PUSH_MAX pushed messages not taken, the node pushes no
 * more (docs/AGENTS.md §3.3): the agent must take or read. */
static const char full_hint[] =
    "Note: 256 or more messages wait untaken, so no notification of a new "
    "message comes until you take some (relay_inbox with peek false) or "
    "mark them read (relay_read).";
_Static_assert(GV_RELAY_PUSH_MAX == 256, "full_hint names the number");

void gv_mcp_answer(gv_mcp *m, uint64_t token, const cJSON *answer,
                   const char *why) {
  begin(m);
  size_t slot = token & 0xffff;
  if (slot >= GV_MCP_PENDING_MAX)
    return;
  pending *p = &m->pend[slot];
  if (p->kind == P_FREE || p->gen != (uint32_t)(token >> 16))
    return;
  const char *code, *reason;
  bool failed = answer_failed(answer, why, &code, &reason);
  if (p->cancelled || p->kind == P_SUBSCRIBE) {
    /* a cancelled request gets no answer (cancellation); the relay's
     * subscribe needs none */
  } else if (p->kind == P_TOOL || p->kind == P_PEEK) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(answer, "messages");
    if (failed)
      tool_error(m, p->id, code, reason,
                 answer ? cJSON_GetObjectItemCaseSensitive(answer, "candidates")
                        : NULL);
    else
      tool_result(m, p->id, answer_body(answer), NULL,
                  p->kind == P_PEEK &&
                          cJSON_GetArraySize(msgs) >= GV_RELAY_PUSH_MAX
                      ? full_hint
                      : NULL,
                  false);
  } else if (failed) { /* P_READ: resources have no isError */
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s", code, reason);
    reply_err(m, p->id, GV_MCP_INTERNAL_ERROR, msg, NULL);
  } else {
    cJSON *body = answer_body(answer);
    char *text = xalloc(cJSON_PrintUnformatted(body));
    cJSON_Delete(body);
    cJSON *r = xalloc(cJSON_CreateObject());
    cJSON *contents = xalloc(cJSON_AddArrayToObject(r, "contents"));
    cJSON *c = xalloc(cJSON_CreateObject());
    cJSON_AddStringToObject(c, "uri", GV_MCP_INBOX_URI);
    cJSON_AddStringToObject(c, "mimeType", "application/json");
    cJSON_AddStringToObject(c, "text", text);
    free(text);
    cJSON_AddItemToArray(contents, c);
    reply(m, p->id, r);
  }
  cJSON_Delete(p->id);
  p->id = NULL;
  p->kind = P_FREE;
  m->freelist[m->nfree++] = (uint16_t)slot;
}

void gv_mcp_relay_up(gv_mcp *m) {
  begin(m);
  cJSON *req = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(req, "cmd", "subscribe");
  call(m, P_SUBSCRIBE, NULL, req);
}

/* The id in a pushed event: exactly 2 * GV_RREQ_ID_BYTES hex digits. It
 * keys the seen set, so it is decoded, not trusted as text. */
static bool hex_id(const char *s, uint8_t out_[GV_RREQ_ID_BYTES]) {
  size_t got = 0;
  return s != NULL && strlen(s) == 2 * GV_RREQ_ID_BYTES &&
         sodium_hex2bin(out_, GV_RREQ_ID_BYTES, s, 2 * GV_RREQ_ID_BYTES, NULL,
                        &got, NULL) == 0 &&
         got == GV_RREQ_ID_BYTES;
}

void gv_mcp_event(gv_mcp *m, const cJSON *ev) {
  begin(m);
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ev, "event");
  const cJSON *idv = cJSON_GetObjectItemCaseSensitive(ev, "id");
  uint8_t key[32] = {0};
  if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "message") != 0 ||
      !cJSON_IsString(idv) || !hex_id(idv->valuestring, key))
    return; /* state events and anything else: nothing to tell */
  if (gv_idmap_get(&m->seen, key) != NULL)
    return; /* a re-push of a message already announced */
  if (m->ring_len == GV_MCP_SEEN_MAX) { /* forget the oldest */
    uint8_t old[32] = {0};
    memcpy(old, m->ring[m->ring_next], GV_RREQ_ID_BYTES);
    gv_idmap_del(&m->seen, old);
  } else {
    m->ring_len++;
  }
  memcpy(m->ring[m->ring_next], key, GV_RREQ_ID_BYTES);
  m->ring_next = (m->ring_next + 1) % GV_MCP_SEEN_MAX;
  if (gv_idmap_put(&m->seen, key, m) < 0)
    xalloc(NULL);
  if (!m->ready || !m->subscribed)
    return;
  /* resources: "Subscriptions": notifications/resources/updated */
  cJSON *o = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(o, "jsonrpc", "2.0");
  cJSON_AddStringToObject(o, "method", "notifications/resources/updated");
  cJSON *params = xalloc(cJSON_AddObjectToObject(o, "params"));
  cJSON_AddStringToObject(params, "uri", GV_MCP_INBOX_URI);
  out(m, o);
}

/* ---- tool arguments ---- */

static bool chars_ok(fchars c, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    bool ok =
        c == C_ANY || (c == C_PRINTABLE && ch >= 0x20 && ch <= 0x7e) ||
        (c == C_HEX && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                        (ch >= 'A' && ch <= 'F'))) ||
        (c == C_PART &&
         ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'));
    if (!ok)
      return false;
  }
  return true;
}

static const char *chars_name(fchars c) {
  return c == C_PRINTABLE ? "printable ASCII"
         : c == C_HEX     ? "hex digits"
         : c == C_PART    ? "[A-Za-z0-9._-]"
                          : "any";
}

/* Checks one string against f. */
static int check_str(const field *f, const char *what, const cJSON *v,
                     gv_why *why) {
  if (!cJSON_IsString(v))
    return gv_fail(why, GV_EFIELD, "%s is not a string", what);
  size_t len = strlen(v->valuestring);
  if (f->choices != NULL) {
    for (const char *const *c = f->choices; *c != NULL; c++)
      if (strcmp(*c, v->valuestring) == 0)
        return 0;
    return gv_fail(why, GV_EFIELD, "%s is not one of the allowed values", what);
  }
  if (len > f->max && strcmp(f->name, "message") == 0)
    return gv_fail(why, GV_EPAYLOAD_TOO_LARGE,
                   "'message' is %zu bytes, more than %llu", len,
                   (unsigned long long)f->max);
  if (len < f->min || len > f->max)
    return gv_fail(why, GV_ERANGE, "%s is %zu bytes, not %llu..%llu", what, len,
                   (unsigned long long)f->min, (unsigned long long)f->max);
  if (!chars_ok(f->chars, v->valuestring, len))
    return gv_fail(why, GV_EFIELD, "%s holds characters other than %s", what,
                   chars_name(f->chars));
  return 0;
}

/* Checks args against t's schema and builds the relay request into req. */
static int build(const tool *t, const cJSON *args, cJSON *req, gv_why *why) {
  const cJSON *a;
  cJSON_ArrayForEach(a, args) {
    size_t i = 0;
    while (i < NFIELDS && t->fields[i].name != NULL &&
           strcmp(t->fields[i].name, a->string) != 0)
      i++;
    if (i == NFIELDS || t->fields[i].name == NULL)
      return gv_fail(why, GV_EFIELD, "unknown argument '%.64s' for %s",
                     a->string, t->name);
  }
  cJSON_AddStringToObject(req, "cmd", t->cmd);
  for (const field *f = t->fields; f < t->fields + NFIELDS && f->name; f++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, f->name);
    char what[48];
    snprintf(what, sizeof(what), "'%s'", f->name);
    int rc = 0;
    if (v == NULL || cJSON_IsNull(v)) {
      if (f->required)
        return gv_fail(why, GV_EFIELD, "missing argument '%s'", f->name);
      continue;
    }
    if (f->kind == F_STR) {
      rc = check_str(f, what, v, why);
    } else if (f->kind == F_INT) {
      uint64_t n;
      rc = gv_json_uint(args, f->name, f->min, f->max, &n, why);
    } else if (f->kind == F_BOOL) {
      bool b;
      rc = gv_json_bool(args, f->name, &b, why);
    } else { /* F_IDS */
      const cJSON *arr;
      int n;
      if ((rc = gv_json_array(args, f->name, (int)f->max, &arr, &n, why)) < 0)
        return rc;
      if ((uint64_t)n < f->min)
        return gv_fail(why, GV_ERANGE, "'%s' is empty", f->name);
      field e = {.kind = F_STR,
                 .min = 2 * GV_RREQ_ID_BYTES,
                 .max = 2 * GV_RREQ_ID_BYTES,
                 .chars = f->chars};
      int k = 0;
      const cJSON *x;
      cJSON_ArrayForEach(x, arr) {
        snprintf(what, sizeof(what), "'%s'[%d]", f->name, k++);
        if ((rc = check_str(&e, what, x, why)) < 0)
          return rc;
      }
    }
    if (rc < 0)
      return rc;
    cJSON_AddItemToObject(req, f->name, xalloc(cJSON_Duplicate(v, true)));
  }
  return 0;
}

static cJSON *schema(const tool *t) {
  cJSON *s = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(s, "type", "object");
  cJSON *props = xalloc(cJSON_AddObjectToObject(s, "properties"));
  cJSON *req = xalloc(cJSON_CreateArray());
  for (const field *f = t->fields; f < t->fields + NFIELDS && f->name; f++) {
    cJSON *p = xalloc(cJSON_AddObjectToObject(props, f->name));
    cJSON *str = p;
    if (f->kind == F_IDS) {
      cJSON_AddStringToObject(p, "type", "array");
      str = xalloc(cJSON_AddObjectToObject(p, "items"));
      cJSON_AddNumberToObject(p, "minItems", (double)f->min);
      cJSON_AddNumberToObject(p, "maxItems", (double)f->max);
    }
    if (f->kind == F_STR || f->kind == F_IDS) {
      cJSON_AddStringToObject(str, "type", "string");
      if (f->choices != NULL) {
        cJSON *e = xalloc(cJSON_AddArrayToObject(str, "enum"));
        for (const char *const *c = f->choices; *c != NULL; c++)
          cJSON_AddItemToArray(e, xalloc(cJSON_CreateString(*c)));
      } else {
        /* maxLength counts characters, our bound bytes: only the byte
         * bound is exact, so the pattern carries it where it can */
        uint64_t lo = f->kind == F_IDS ? 2 * GV_RREQ_ID_BYTES : f->min;
        uint64_t hi = f->kind == F_IDS ? 2 * GV_RREQ_ID_BYTES : f->max;
        if (lo > 0)
          cJSON_AddNumberToObject(str, "minLength", (double)lo);
        cJSON_AddNumberToObject(str, "maxLength", (double)hi);
        char pat[64];
        const char *cls = f->chars == C_PRINTABLE ? " -~"
                          : f->chars == C_HEX     ? "0-9a-fA-F"
                          : f->chars == C_PART    ? "A-Za-z0-9._-"
                                                  : NULL;
        if (cls != NULL) {
          snprintf(pat, sizeof(pat), "^[%s]{%llu,%llu}$", cls,
                   (unsigned long long)lo, (unsigned long long)hi);
          cJSON_AddStringToObject(str, "pattern", pat);
        }
      }
    } else if (f->kind == F_INT) {
      cJSON_AddStringToObject(p, "type", "integer");
      cJSON_AddNumberToObject(p, "minimum", (double)f->min);
      cJSON_AddNumberToObject(p, "maximum", (double)f->max);
    } else {
      cJSON_AddStringToObject(p, "type", "boolean");
    }
    cJSON_AddStringToObject(p, "description", f->desc);
    if (f->required)
      cJSON_AddItemToArray(req, xalloc(cJSON_CreateString(f->name)));
  }
  if (cJSON_GetArraySize(req) > 0)
    cJSON_AddItemToObject(s, "required", req);
  else
    cJSON_Delete(req);
  cJSON_AddBoolToObject(s, "additionalProperties", false);
  return s;
}

/* ---- methods ---- */

static void m_initialize(gv_mcp *m, const cJSON *id, const cJSON *params) {
  const cJSON *pv = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
  if (m->ready) {
    reply_err(m, id, GV_MCP_INVALID_REQUEST, "already initialized", NULL);
    return;
  }
  if (!cJSON_IsString(pv)) {
    reply_err(m, id, GV_MCP_INVALID_PARAMS,
              "initialize: 'protocolVersion' is missing or not a string", NULL);
    return;
  }
  /* lifecycle, "Version Negotiation" */
  const char *v = versions[0];
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
    if (strcmp(pv->valuestring, versions[i]) == 0)
      v = versions[i];
  snprintf(m->version, sizeof(m->version), "%s", v);
  m->ready = true;

  cJSON *r = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(r, "protocolVersion", v);
  cJSON *caps = xalloc(cJSON_AddObjectToObject(r, "capabilities"));
  cJSON *tc = xalloc(cJSON_AddObjectToObject(caps, "tools"));
  cJSON_AddBoolToObject(tc, "listChanged", false);
  cJSON *rc = xalloc(cJSON_AddObjectToObject(caps, "resources"));
  cJSON_AddBoolToObject(rc, "subscribe", true);
  cJSON_AddBoolToObject(rc, "listChanged", false);
  cJSON *si = xalloc(cJSON_AddObjectToObject(r, "serverInfo"));
  cJSON_AddStringToObject(si, "name", "grapevine");
  cJSON_AddStringToObject(si, "title", "Grapevine relay");
  cJSON_AddStringToObject(si, "version", GV_VERSION);
  cJSON_AddStringToObject(
      r, "instructions",
      "Messages between AI agents across machines. relay_inbox peeks "
      "(consumes nothing) unless peek is false; relay_read marks messages "
      "read. Subscribe to relay://inbox to be told when a message comes.");
  reply(m, id, r);

  if (!m->have_name) {
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(params, "clientInfo");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(ci, "name");
    gv_mcp_name_part(cJSON_IsString(nm) ? nm->valuestring : NULL, m->fallback);
    m->have_name = true;
    push(m, (gv_mcp_act){.kind = GV_MCP_CONNECT, .fallback = m->fallback});
  }
}

static void m_tools_list(gv_mcp *m, const cJSON *id) {
  cJSON *r = xalloc(cJSON_CreateObject());
  cJSON *arr = xalloc(cJSON_AddArrayToObject(r, "tools"));
  for (size_t i = 0; i < NTOOLS; i++) {
    cJSON *t = xalloc(cJSON_CreateObject());
    cJSON_AddStringToObject(t, "name", tools[i].name);
    cJSON_AddStringToObject(t, "title", tools[i].title);
    cJSON_AddStringToObject(t, "description", tools[i].desc);
    cJSON_AddItemToObject(t, "inputSchema", schema(&tools[i]));
    cJSON_AddItemToArray(arr, t);
  }
  reply(m, id, r);
}

static void m_tools_call(gv_mcp *m, const cJSON *id, const cJSON *params) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
  if (!cJSON_IsString(name)) {
    reply_err(m, id, GV_MCP_INVALID_PARAMS,
              "tools/call: 'name' is missing or not a string", NULL);
    return;
  }
  const tool *t = NULL;
  for (size_t i = 0; i < NTOOLS; i++)
    if (strcmp(tools[i].name, name->valuestring) == 0)
      t = &tools[i];
  if (t == NULL) {
    char msg[128];
    snprintf(msg, sizeof(msg), "unknown tool '%.64s'", name->valuestring);
    reply_err(m, id, GV_MCP_INVALID_PARAMS, msg, NULL);
    return;
  }
  if (args != NULL && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
    reply_err(m, id, GV_MCP_INVALID_PARAMS,
              "tools/call: 'arguments' is not an object", NULL);
    return;
  }
  /* Arguments that break the schema are a tool error, so the model can
   * correct itself (SEP-1303, revision 2025-11-25). */
  gv_why why = {{0}};
  cJSON *req = xalloc(cJSON_CreateObject());
  int rc = build(t, cJSON_IsObject(args) ? args : NULL, req, &why);
  if (rc < 0) {
    cJSON_Delete(req);
    tool_error(m, id, gv_err_name(rc) + 4, why.text, NULL);
    return;
  }
  bool peek =
      strcmp(t->cmd, "inbox") == 0 &&
      !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(req, "peek")) &&
      !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "unread_only"));
  if (!call(m, peek ? P_PEEK : P_TOOL, id, req))
    tool_error(m, id, "BUSY", "too many tool calls wait for the node", NULL);
}

/* The uri of resources/read, subscribe and unsubscribe; false (answered)
 * if it is not ours. */
static bool inbox_uri(gv_mcp *m, const cJSON *id, const cJSON *params) {
  const cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
  if (!cJSON_IsString(uri)) {
    reply_err(m, id, GV_MCP_INVALID_PARAMS, "'uri' is missing or not a string",
              NULL);
    return false;
  }
  if (strcmp(uri->valuestring, GV_MCP_INBOX_URI) != 0) {
    cJSON *data = xalloc(cJSON_CreateObject());
    cJSON_AddStringToObject(data, "uri", uri->valuestring);
    reply_err(m, id, GV_MCP_RESOURCE_NOT_FOUND, "Resource not found", data);
    return false;
  }
  return true;
}

static void m_resources_list(gv_mcp *m, const cJSON *id) {
  cJSON *r = xalloc(cJSON_CreateObject());
  cJSON *arr = xalloc(cJSON_AddArrayToObject(r, "resources"));
  cJSON *x = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(x, "uri", GV_MCP_INBOX_URI);
  cJSON_AddStringToObject(x, "name", "inbox");
  cJSON_AddStringToObject(x, "title", "Relay inbox");
  cJSON_AddStringToObject(x, "description",
                          "The messages waiting for this agent (a peek: "
                          "reading it consumes nothing). Subscribe to be "
                          "told when a new one comes.");
  cJSON_AddStringToObject(x, "mimeType", "application/json");
  cJSON_AddItemToArray(arr, x);
  reply(m, id, r);
}

static void m_resources_read(gv_mcp *m, const cJSON *id, const cJSON *params) {
  if (!inbox_uri(m, id, params))
    return;
  cJSON *req = xalloc(cJSON_CreateObject());
  cJSON_AddStringToObject(req, "cmd", "inbox");
  cJSON_AddBoolToObject(req, "peek", true);
  if (!call(m, P_READ, id, req))
    reply_err(m, id, GV_MCP_INTERNAL_ERROR,
              "BUSY: too many requests wait for the node", NULL);
}

static void m_subscribe(gv_mcp *m, const cJSON *id, const cJSON *params,
                        bool on) {
  if (!inbox_uri(m, id, params))
    return;
  m->subscribed = on;
  reply(m, id, xalloc(cJSON_CreateObject()));
}

static void notification(gv_mcp *m, const char *method, const cJSON *params) {
  if (strcmp(method, "notifications/cancelled") != 0)
    return; /* initialized, roots/list_changed, ...: nothing to do */
  const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
  if (rid == NULL)
    return;
  for (size_t i = 0; i < GV_MCP_PENDING_MAX; i++)
    if (m->pend[i].kind != P_FREE && m->pend[i].id != NULL &&
        cJSON_Compare(m->pend[i].id, rid, true))
      m->pend[i].cancelled = true;
}

void gv_mcp_line_too_long(gv_mcp *m, size_t max) {
  begin(m);
  char msg[96];
  snprintf(msg, sizeof(msg), "Invalid Request: line longer than %zu bytes",
           max);
  reply_err(m, NULL, GV_MCP_INVALID_REQUEST, msg, NULL);
}

void gv_mcp_line(gv_mcp *m, const char *line, size_t len) {
  begin(m);
  if (len > 0 && line[len - 1] == '\r')
    len--;
  size_t at = 0;
  gv_why why = {{0}};
  char msg[256];
  cJSON *root = gv_json_parse_exact(line, len, &at);
  if (root == NULL) {
    snprintf(msg, sizeof(msg), "Parse error: not JSON (at byte %zu)", at);
    reply_err(m, NULL, GV_MCP_PARSE_ERROR, msg, NULL);
    return;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
  const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
  const cJSON *jv = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
  if (cJSON_IsArray(root)) {
    /* JSON-RPC batches were removed from MCP in 2025-06-18 */
    reply_err(m, NULL, GV_MCP_INVALID_REQUEST,
              "Invalid Request: batches are not supported", NULL);
    goto out;
  }
  if (!cJSON_IsObject(root)) {
    reply_err(m, NULL, GV_MCP_INVALID_REQUEST,
              "Invalid Request: not a JSON object", NULL);
    goto out;
  }
  if (gv_json_check_members(root, &why) < 0) {
    snprintf(msg, sizeof(msg), "Invalid Request: %s", why.text);
    reply_err(m, NULL, GV_MCP_INVALID_REQUEST, msg, NULL);
    goto out;
  }
  if (id != NULL && !cJSON_IsString(id) && !cJSON_IsNumber(id)) {
    reply_err(m, NULL, GV_MCP_INVALID_REQUEST,
              "Invalid Request: 'id' must be a string or a number", NULL);
    goto out;
  }
  if (method == NULL && id != NULL &&
      (cJSON_GetObjectItemCaseSensitive(root, "result") != NULL ||
       cJSON_GetObjectItemCaseSensitive(root, "error") != NULL))
    goto out; /* a response: we send no requests, so nothing waits for it */
  if (!cJSON_IsString(jv) || strcmp(jv->valuestring, "2.0") != 0 ||
      !cJSON_IsString(method)) {
    if (id != NULL)
      reply_err(m, id, GV_MCP_INVALID_REQUEST,
                "Invalid Request: needs \"jsonrpc\":\"2.0\" and a string "
                "'method'",
                NULL);
    goto out;
  }
  if (id == NULL) { /* a notification: never answered */
    notification(m, method->valuestring, params);
    goto out;
  }
  if (params != NULL && !cJSON_IsObject(params)) {
    reply_err(m, id, GV_MCP_INVALID_PARAMS, "'params' is not an object", NULL);
    goto out;
  }
  const char *me = method->valuestring;
  if (strcmp(me, "ping") == 0) {
    reply(m, id, xalloc(cJSON_CreateObject()));
  } else if (strcmp(me, "initialize") == 0) {
    m_initialize(m, id, params);
  } else if (!m->ready) {
    reply_err(m, id, GV_MCP_INVALID_REQUEST,
              "Invalid Request: not initialized (send initialize first)", NULL);
  } else if (strcmp(me, "tools/list") == 0) {
    m_tools_list(m, id);
  } else if (strcmp(me, "tools/call") == 0) {
    m_tools_call(m, id, params);
  } else if (strcmp(me, "resources/list") == 0) {
    m_resources_list(m, id);
  } else if (strcmp(me, "resources/templates/list") == 0) {
    cJSON *r = xalloc(cJSON_CreateObject());
    xalloc(cJSON_AddArrayToObject(r, "resourceTemplates"));
    reply(m, id, r);
  } else if (strcmp(me, "resources/read") == 0) {
    m_resources_read(m, id, params);
  } else if (strcmp(me, "resources/subscribe") == 0) {
    m_subscribe(m, id, params, true);
  } else if (strcmp(me, "resources/unsubscribe") == 0) {
    m_subscribe(m, id, params, false);
  } else {
    snprintf(msg, sizeof(msg), "Method not found: %.128s", me);
    reply_err(m, id, GV_MCP_METHOD_NOT_FOUND, msg, NULL);
  }
out:
  cJSON_Delete(root);
}

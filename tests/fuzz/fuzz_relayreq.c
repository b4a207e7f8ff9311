/* Fuzz target: agent-socket request lines (node/relayreq.c). Checks that
 * what is accepted is within its bounds, and that the encoders turn what
 * a request carries (its req, its message) into one line of JSON that
 * reads back the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "relayreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const char *s, size_t lo) {
  size_t len;

  if (s == NULL)
    return;
  len = strlen(s);
  FZ_CHECK(len >= lo && len <= GV_RREQ_TOKEN_MAX);
  for (size_t i = 0; i < len; i++)
    FZ_CHECK(s[i] >= 0x20 && s[i] <= 0x7e);
}

/* line is one line holding one JSON object; returns it parsed. */
static cJSON *one_line(char *line) {
  size_t len, at;
  cJSON *o;

  FZ_CHECK(line != NULL);
  len = strlen(line);
  FZ_CHECK(len > 1 && line[len - 1] == '\n');
  FZ_CHECK(strchr(line, '\n') == line + len - 1);
  o = gv_json_parse_exact(line, len, &at);
  FZ_CHECK(o != NULL && cJSON_IsObject(o));
  free(line);
  return o;
}

static void check_str(const cJSON *o, const char *key, const char *want) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  FZ_CHECK(cJSON_IsString(it) && strcmp(it->valuestring, want) == 0);
}

static void check_accepted(const gv_rreq *r) {
  char text[GV_RADDR_TEXT_MAX + 1];
  gv_raddr back;
  gv_raddr_name back_name;
  gv_rreq_msg m;
  cJSON *o;
  size_t len;

  switch (r->cmd) {
  case GV_RREQ_HELLO:
    len = (size_t)snprintf(text, sizeof(text), "%s:%s", r->u.hello.as.project,
                           r->u.hello.as.name);
    FZ_CHECK(gv_raddr_name_parse(&back_name, text, len, NULL) == 0);
    break;
  case GV_RREQ_SEND:
    len = gv_raddr_format(&r->u.send.to, text);
    FZ_CHECK(gv_raddr_parse(&back, text, len, NULL) == 0);
    FZ_CHECK(memcmp(&back, &r->u.send.to, sizeof(back)) == 0);
    FZ_CHECK(r->u.send.message != NULL);
    FZ_CHECK(r->u.send.message_len <= GV_RREQ_MESSAGE_MAX);
    FZ_CHECK(strlen(r->u.send.message) == r->u.send.message_len);
    check_token(r->u.send.thread, 0);
    check_token(r->u.send.key, 1);
    FZ_CHECK(r->u.send.ttl_ms >= 1 && r->u.send.ttl_ms <= GV_RREQ_TTL_MAX_MS);
    FZ_CHECK(r->u.send.timeout_ms >= 1 &&
             r->u.send.timeout_ms <= GV_RREQ_TIMEOUT_MAX_MS);
    FZ_CHECK(r->u.send.wait <= GV_RSTATE_READ);
    /* The message reaches the recipient's client intact. */
    memset(&m, 0, sizeof(m));
    m.from = "p:n";
    m.to = text;
    m.thread = r->u.send.thread;
    m.body = r->u.send.message;
    m.seq = 1;
    o = one_line(gv_rreq_enc_ev_message(&m));
    check_str(o, "body", r->u.send.message);
    cJSON_Delete(o);
    break;
  case GV_RREQ_INBOX:
    FZ_CHECK(r->u.inbox.limit >= 1 && r->u.inbox.limit <= GV_RREQ_LIMIT_MAX);
    break;
  case GV_RREQ_ACK:
  case GV_RREQ_READ:
    FZ_CHECK(r->u.ids.n >= 1 && r->u.ids.n <= GV_RREQ_IDS_MAX);
    FZ_CHECK(r->u.ids.ids != NULL);
    break;
  case GV_RREQ_AGENTS:
    if (r->u.agents.project != NULL)
      FZ_CHECK(gv_raddr_part_check(r->u.agents.project,
                                   strlen(r->u.agents.project), "p",
                                   NULL) == 0);
    break;
  case GV_RREQ_STATUS:
  case GV_RREQ_SUBSCRIBE: break;
  default: FZ_CHECK(0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_rreq r;
  gv_why why;
  cJSON *o;
  int rc;

  why.text[0] = '\0';
  rc = gv_rreq_parse(&r, (const char *)data, size, &why);
  FZ_CHECK(rc <= 0);
  FZ_CHECK(rc == 0 || why.text[0] != '\0'); /* every rejection has a reason */
  check_token(r.req, 0);
  if (rc == 0)
    check_accepted(&r);
  /* Whatever the request, its answer echoes req in one line. */
  o = one_line(gv_rreq_enc_error(r.req, rc < 0 ? rc : GV_EBUSY, why.text));
  if (r.req != NULL)
    check_str(o, "req", r.req);
  cJSON_Delete(o);
  gv_rreq_free(&r);
  FZ_CHECK(r.root == NULL && r.owned == NULL);
  return 0;
}

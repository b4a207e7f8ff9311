/* Fuzz target: JSON-RPC lines into the MCP server's core (node/mcp.c).
 * The input is split at newlines; each piece is a client line, and every
 * relay call the core makes is answered with the next piece parsed as the
 * node's answer (or NULL when it is not JSON), and pushed as an event too.
 * Checks: every output is one line of one JSON-RPC 2.0 object; no relay
 * request is ever an `ack`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(gv_mcp *m, const char *piece, size_t len) {
  gv_mcp_act a;
  uint64_t tokens[64];
  size_t nt = 0;

  while (gv_mcp_next(m, &a)) {
    if (a.kind == GV_MCP_OUT) {
      size_t n = strlen(a.line), at;
      FZ_CHECK(n > 1 && a.line[n - 1] == '\n');
      FZ_CHECK(memchr(a.line, '\n', n - 1) == NULL);
      cJSON *o = gv_json_parse_exact(a.line, n, &at);
      FZ_CHECK(cJSON_IsObject(o));
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "jsonrpc");
      FZ_CHECK(cJSON_IsString(v) && strcmp(v->valuestring, "2.0") == 0);
      cJSON_Delete(o);
    } else if (a.kind == GV_MCP_CALL) {
      const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(a.req, "cmd");
      FZ_CHECK(cJSON_IsString(cmd) && strcmp(cmd->valuestring, "ack") != 0);
      cJSON_Delete(a.req);
      if (nt < 64)
        tokens[nt++] = a.token;
    }
  }
  if (nt == 0)
    return;
  size_t at;
  cJSON *ans = gv_json_parse_exact(piece, len, &at);
  for (size_t i = 0; i < nt; i++)
    gv_mcp_answer(m, tokens[i], ans, "fuzz");
  if (ans != NULL)
    gv_mcp_event(m, ans);
  cJSON_Delete(ans);
  drain(m, piece, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t key[16] = {7};
  gv_mcp *m = gv_mcp_new(size % 2 == 0, key);
  const char *p = (const char *)data, *end = p + size;

  FZ_CHECK(m != NULL);
  gv_mcp_relay_up(m);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    gv_mcp_line(m, p, len);
    drain(m, p, len);
    p += len + 1;
  }
  gv_mcp_line_too_long(m, 10);
  drain(m, "", 0);
  gv_mcp_free(m);
  return 0;
}

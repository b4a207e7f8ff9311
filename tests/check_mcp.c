/* The MCP server's core (node/mcp.c): version negotiation, the JSON-RPC
 * error codes, tool argument checks, relay errors as tool errors, inbox
 * notifications once per id, and never an `ack`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"
#include "relayreq.h"
#include "testutil.h"

#define OUT_MAX 16
#define CALL_MAX 16

/* What the core did after one input: its lines parsed, its relay calls. */
typedef struct drained {
  cJSON *out[OUT_MAX];
  size_t nout;
  cJSON *call[CALL_MAX];
  uint64_t token[CALL_MAX];
  size_t ncall;
  char fallback[65]; /* CONNECT's, "" if none */
} drained;

static const uint8_t key[16] = {1, 2, 3};
static gv_mcp *m;
static drained d;

static void clear(void) {
  for (size_t i = 0; i < d.nout; i++)
    cJSON_Delete(d.out[i]);
  for (size_t i = 0; i < d.ncall; i++)
    cJSON_Delete(d.call[i]);
  memset(&d, 0, sizeof(d));
}

static void drain(void) {
  gv_mcp_act a;
  clear();
  while (gv_mcp_next(m, &a)) {
    if (a.kind == GV_MCP_OUT) {
      size_t len = strlen(a.line);
      ck_assert(len > 1 && a.line[len - 1] == '\n');
      ck_assert_ptr_eq(strchr(a.line, '\n'), a.line + len - 1);
      ck_assert_uint_lt(d.nout, OUT_MAX);
      d.out[d.nout] = cJSON_Parse(a.line);
      ck_assert_ptr_nonnull(d.out[d.nout]);
      d.nout++;
    } else if (a.kind == GV_MCP_CALL) {
      const cJSON *cmd = cJSON_GetObjectItem(a.req, "cmd");
      ck_assert(cJSON_IsString(cmd));
      ck_assert_str_ne(cmd->valuestring, "ack"); /* never, whatever came */
      ck_assert_uint_lt(d.ncall, CALL_MAX);
      d.token[d.ncall] = a.token;
      d.call[d.ncall++] = a.req;
    } else {
      snprintf(d.fallback, sizeof(d.fallback), "%s", a.fallback);
    }
  }
}

static void line(const char *s) {
  gv_mcp_line(m, s, strlen(s));
  drain();
}

static void setup(void) {
  m = gv_mcp_new(true, key);
  ck_assert_ptr_nonnull(m);
  memset(&d, 0, sizeof(d));
}

static void teardown(void) {
  clear();
  gv_mcp_free(m);
}

static void init_as(const char *version) {
  char buf[256];
  snprintf(buf, sizeof(buf),
           "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
           "\"params\":{\"protocolVersion\":\"%s\",\"capabilities\":{},"
           "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
           version);
  line(buf);
  ck_assert_uint_eq(d.nout, 1);
  line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
  ck_assert_uint_eq(d.nout, 0);
}

/* The single answer's error code (0 if it is a result), its id checked. */
static int err_code(const char *want_id) {
  ck_assert_uint_eq(d.nout, 1);
  const cJSON *id = cJSON_GetObjectItem(d.out[0], "id");
  char *s = cJSON_PrintUnformatted(id);
  ck_assert_str_eq(s, want_id);
  free(s);
  ck_assert_str_eq(cJSON_GetObjectItem(d.out[0], "jsonrpc")->valuestring,
                   "2.0");
  const cJSON *e = cJSON_GetObjectItem(d.out[0], "error");
  if (e == NULL) {
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(d.out[0], "result"));
    return 0;
  }
  ck_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
  return cJSON_GetObjectItem(e, "code")->valueint;
}

static const cJSON *result(void) {
  ck_assert_int_eq(err_code("1"), 0);
  return cJSON_GetObjectItem(d.out[0], "result");
}

/* A tools/call with id 1. */
static void tool(const char *name, const char *args) {
  char *buf = malloc(strlen(args) + 256);
  sprintf(buf,
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
          "\"params\":{\"name\":\"%s\",\"arguments\":%s}}",
          name, args);
  line(buf);
  free(buf);
}

/* The text of a tool result, asserting isError is is_err. */
static const char *tool_text(bool is_err) {
  const cJSON *r = result();
  ck_assert(cJSON_IsBool(cJSON_GetObjectItem(r, "isError")));
  ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(r, "isError")), is_err);
  const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "content"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(c, "type")->valuestring, "text");
  return cJSON_GetObjectItem(c, "text")->valuestring;
}

static void tool_rejects(const char *name, const char *args,
                         const char *prefix) {
  tool(name, args);
  ck_assert_uint_eq(d.ncall, 0);
  const char *t = tool_text(true);
  if (strncmp(t, prefix, strlen(prefix)) != 0)
    ck_abort_msg("%s %s: got '%s', want '%s...'", name, args, t, prefix);
}

START_TEST(test_negotiation) {
  const char *cases[][2] = {
      {"2025-11-25", "2025-11-25"}, {"2025-06-18", "2025-06-18"},
      {"2025-03-26", "2025-03-26"}, {"2024-11-05", "2024-11-05"},
      {"2099-01-01", "2025-11-25"}, {"2024-10-07", "2025-11-25"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    teardown();
    setup();
    init_as(cases[i][0]);
    ck_assert_str_eq(gv_mcp_version(m), cases[i][1]);
  }
  /* The answer's shape. */
  teardown();
  gv_mcp_free(NULL);
  m = gv_mcp_new(false, key);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
       "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
       "\"clientInfo\":{\"name\":\"Claude Code!\",\"version\":\"2\"}}}");
  const cJSON *r = result();
  ck_assert_str_eq(cJSON_GetObjectItem(r, "protocolVersion")->valuestring,
                   "2025-06-18");
  const cJSON *caps = cJSON_GetObjectItem(r, "capabilities");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(
      cJSON_GetObjectItem(caps, "resources"), "subscribe")));
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(caps, "tools"));
  ck_assert_str_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(r, "serverInfo"), "name")
          ->valuestring,
      "grapevine");
  /* No --as: the client's name, reduced, names the agent. */
  ck_assert_str_eq(d.fallback, "ClaudeCode");
  /* initialize twice is refused; the first stands. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
       "{\"protocolVersion\":\"2024-11-05\"}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_REQUEST);
  ck_assert_str_eq(gv_mcp_version(m), "2025-06-18");
  ck_assert_str_eq(d.fallback, "");
  /* With a name known, no CONNECT. */
  teardown();
  setup();
  init_as("2025-06-18");
  ck_assert_str_eq(d.fallback, "");
  /* A version that is not a string. */
  teardown();
  setup();
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
       "{\"protocolVersion\":20250618}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_PARAMS);
  ck_assert_str_eq(gv_mcp_version(m), "");
}
END_TEST

START_TEST(test_name_part) {
  char out[65];
  gv_mcp_name_part("claude-code", out);
  ck_assert_str_eq(out, "claude-code");
  gv_mcp_name_part("Visual Studio Code", out);
  ck_assert_str_eq(out, "VisualStudioCode");
  gv_mcp_name_part("¡¿ !", out);
  ck_assert_str_eq(out, "mcp");
  gv_mcp_name_part(NULL, out);
  ck_assert_str_eq(out, "mcp");
  char long_name[200];
  memset(long_name, 'x', 199);
  long_name[199] = '\0';
  gv_mcp_name_part(long_name, out);
  ck_assert_uint_eq(strlen(out), 64);
}
END_TEST

START_TEST(test_errors) {
  /* Before initialize: only ping. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  ck_assert_int_eq(err_code("1"), 0);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_REQUEST);
  init_as("2025-06-18");

  line("this is not json");
  ck_assert_int_eq(err_code("null"), GV_MCP_PARSE_ERROR);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x");
  ck_assert_int_eq(err_code("null"), GV_MCP_PARSE_ERROR);
  line("");
  ck_assert_int_eq(err_code("null"), GV_MCP_PARSE_ERROR);
  line("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);
  line("42");
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}");
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}");
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}");
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"1.0\",\"id\":\"a\",\"method\":\"ping\"}");
  ck_assert_int_eq(err_code("\"a\""), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"2.0\",\"id\":7}");
  ck_assert_int_eq(err_code("7"), GV_MCP_INVALID_REQUEST);
  line("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"no/such\"}");
  ck_assert_int_eq(err_code("\"x\""), GV_MCP_METHOD_NOT_FOUND);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1]}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_PARAMS);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
       "\"params\":{\"name\":\"rm_rf\"}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_PARAMS);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
       "\"params\":{\"name\":\"relay_inbox\",\"arguments\":[]}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_PARAMS);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\","
       "\"params\":{\"uri\":\"file:///etc/passwd\"}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_RESOURCE_NOT_FOUND);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\","
       "\"params\":{}}");
  ck_assert_int_eq(err_code("1"), GV_MCP_INVALID_PARAMS);
  gv_mcp_line_too_long(m, 2097152);
  drain();
  ck_assert_int_eq(err_code("null"), GV_MCP_INVALID_REQUEST);

  /* Notifications are never answered, whatever they are. */
  line("{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\"}");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  line("{\"jsonrpc\":\"2.0\",\"method\":\"no/such\",\"params\":7}");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
       "\"params\":{\"requestId\":99}}");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  /* A response from the client: nothing waits for it. */
  line("{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  /* Still up: a CRLF line works. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r");
  ck_assert_int_eq(err_code("1"), 0);
}
END_TEST

START_TEST(test_tools_list) {
  init_as("2025-06-18");
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  const cJSON *tools = cJSON_GetObjectItem(result(), "tools");
  const char *want[] = {"relay_send", "relay_inbox", "relay_read",
                        "relay_status", "relay_agents"};
  ck_assert_int_eq(cJSON_GetArraySize(tools), 5);
  for (int i = 0; i < 5; i++) {
    const cJSON *t = cJSON_GetArrayItem(tools, i);
    ck_assert_str_eq(cJSON_GetObjectItem(t, "name")->valuestring, want[i]);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(t, "description")));
    const cJSON *s = cJSON_GetObjectItem(t, "inputSchema");
    ck_assert_str_eq(cJSON_GetObjectItem(s, "type")->valuestring, "object");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "additionalProperties")));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(s, "properties")));
  }
  const cJSON *send =
      cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 0), "inputSchema");
  char *req = cJSON_PrintUnformatted(cJSON_GetObjectItem(send, "required"));
  ck_assert_str_eq(req, "[\"to\",\"message\"]");
  free(req);
  const cJSON *timeout = cJSON_GetObjectItem(
      cJSON_GetObjectItem(send, "properties"), "timeout_ms");
  ck_assert_int_eq(cJSON_GetObjectItem(timeout, "maximum")->valueint, 3600000);
}
END_TEST

START_TEST(test_arguments) {
  init_as("2025-06-18");
  tool_rejects("relay_send", "{\"message\":\"hi\"}", "FIELD: missing");
  tool_rejects("relay_send", "{\"to\":\"bob\",\"message\":\"hi\",\"x\":1}",
               "FIELD: unknown argument 'x'");
  tool_rejects("relay_send", "{\"to\":\"\",\"message\":\"hi\"}", "RANGE");
  tool_rejects("relay_send", "{\"to\":\"bob\",\"message\":5}", "FIELD");
  tool_rejects("relay_send",
               "{\"to\":\"bob\",\"message\":\"hi\",\"wait\":\"failed\"}",
               "FIELD");
  tool_rejects("relay_send",
               "{\"to\":\"bob\",\"message\":\"hi\",\"timeout_ms\":0}", "RANGE");
  tool_rejects("relay_send",
               "{\"to\":\"bob\",\"message\":\"hi\",\"timeout_ms\":1.5}",
               "FIELD");
  tool_rejects("relay_send",
               "{\"to\":\"bob\",\"message\":\"hi\",\"thread\":\"a\\nb\"}",
               "FIELD");
  tool_rejects("relay_inbox", "{\"limit\":1001}", "RANGE");
  tool_rejects("relay_inbox", "{\"peek\":\"no\"}", "FIELD");
  tool_rejects("relay_read", "{\"ids\":[]}", "RANGE");
  tool_rejects("relay_read", "{\"ids\":[\"zz\"]}", "RANGE");
  tool_rejects("relay_read", "{\"ids\":[\"0123456789abcdef0123456789abcdeg\"]}",
               "FIELD");
  tool_rejects("relay_status", "{}", "FIELD: missing");
  tool_rejects("relay_agents", "{\"project\":\"a b\"}", "FIELD");
  tool_rejects("relay_agents", "{\"project\":\"*\"}", "FIELD");

  /* 1 MiB + 1 is the relay's own PAYLOAD_TOO_LARGE. */
  size_t n = GV_RREQ_MESSAGE_MAX + 1;
  char *big = malloc(n + 64);
  int k = sprintf(big, "{\"to\":\"bob\",\"message\":\"");
  memset(big + k, 'a', n);
  strcpy(big + k + n, "\"}");
  tool_rejects("relay_send", big, "PAYLOAD_TOO_LARGE");
  free(big);

  /* What passes becomes exactly one relay request, arguments copied. */
  tool("relay_send", "{\"to\":\"web:bob\",\"message\":\"hi\",\"thread\":"
                     "\"t1\",\"wait\":\"read\",\"timeout_ms\":500}");
  ck_assert_uint_eq(d.nout, 0);
  ck_assert_uint_eq(d.ncall, 1);
  char *s = cJSON_PrintUnformatted(d.call[0]);
  ck_assert_str_eq(s, "{\"cmd\":\"send\",\"to\":\"web:bob\",\"message\":"
                      "\"hi\",\"thread\":\"t1\",\"wait\":\"read\","
                      "\"timeout_ms\":500}");
  free(s);
  tool("relay_inbox", "{\"peek\":false,\"limit\":3,\"unread_only\":null}");
  s = cJSON_PrintUnformatted(d.call[0]);
  ck_assert_str_eq(s, "{\"cmd\":\"inbox\",\"limit\":3,\"peek\":false}");
  free(s);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
       "\"params\":{\"name\":\"relay_agents\"}}");
  s = cJSON_PrintUnformatted(d.call[0]);
  ck_assert_str_eq(s, "{\"cmd\":\"agents\"}");
  free(s);
  tool("relay_read", "{\"ids\":[\"0123456789abcdef0123456789ABCDEF\"]}");
  ck_assert_str_eq(cJSON_GetObjectItem(d.call[0], "cmd")->valuestring, "read");
}
END_TEST

/* The relay's answers become tool results; its errors isError. */
START_TEST(test_answers) {
  init_as("2025-06-18");
  tool("relay_send", "{\"to\":\"nobody\",\"message\":\"hi\"}");
  ck_assert_uint_eq(d.ncall, 1);
  uint64_t t = d.token[0];
  cJSON *a = cJSON_Parse("{\"ok\":false,\"error\":\"UNKNOWN_RECIPIENT\","
                         "\"reason\":\"no agent is called nobody\"}");
  gv_mcp_answer(m, t, a, NULL);
  drain();
  ck_assert_str_eq(tool_text(true),
                   "UNKNOWN_RECIPIENT: no agent is called nobody");
  const cJSON *sc = cJSON_GetObjectItem(result(), "structuredContent");
  ck_assert_str_eq(cJSON_GetObjectItem(sc, "error")->valuestring,
                   "UNKNOWN_RECIPIENT");
  /* The same token again: already answered, ignored. */
  gv_mcp_answer(m, t, a, NULL);
  drain();
  ck_assert_uint_eq(d.nout, 0);
  cJSON_Delete(a);

  /* AMBIGUOUS lists its candidates. */
  tool("relay_send", "{\"to\":\"bob\",\"message\":\"hi\"}");
  a = cJSON_Parse("{\"ok\":false,\"error\":\"AMBIGUOUS\",\"reason\":\"two\","
                  "\"candidates\":[\"a:bob@1\",\"b:bob@2\"]}");
  gv_mcp_answer(m, d.token[0], a, NULL);
  cJSON_Delete(a);
  drain();
  ck_assert_str_eq(tool_text(true),
                   "AMBIGUOUS: two (candidates: a:bob@1, b:bob@2)");

  /* The node down: isError, not a protocol error. */
  tool("relay_inbox", "{}");
  gv_mcp_answer(m, d.token[0], NULL, "no node is running");
  drain();
  ck_assert_str_eq(tool_text(true), "NODE_DOWN: no node is running");

  /* Success: the answer as JSON text and structuredContent. */
  tool("relay_send", "{\"to\":\"bob\",\"message\":\"hi\"}");
  a = cJSON_Parse("{\"ok\":true,\"req\":\"r1\",\"id\":"
                  "\"00112233445566778899aabbccddeeff\",\"to\":\"p:bob@ab\","
                  "\"state\":\"accepted\"}");
  gv_mcp_answer(m, d.token[0], a, NULL);
  cJSON_Delete(a);
  drain();
  cJSON *text = cJSON_Parse(tool_text(false));
  ck_assert_str_eq(cJSON_GetObjectItem(text, "state")->valuestring, "accepted");
  ck_assert_ptr_null(cJSON_GetObjectItem(text, "ok"));
  ck_assert_ptr_null(cJSON_GetObjectItem(text, "req"));
  ck_assert(cJSON_Compare(
      text, cJSON_GetObjectItem(result(), "structuredContent"), true));
  cJSON_Delete(text);

  /* A malformed answer is an error too. */
  tool("relay_agents", "{}");
  a = cJSON_Parse("[1]");
  gv_mcp_answer(m, d.token[0], a, NULL);
  cJSON_Delete(a);
  drain();
  ck_assert_str_eq(tool_text(true), "PROTOCOL: the node's answer is malformed");

  /* Older versions get no structuredContent. */
  teardown();
  setup();
  init_as("2025-03-26");
  tool("relay_agents", "{}");
  gv_mcp_answer(m, d.token[0], NULL, NULL);
  drain();
  ck_assert_str_eq(tool_text(true), "NODE_DOWN: the node did not answer");
  ck_assert_ptr_null(cJSON_GetObjectItem(result(), "structuredContent"));
}
END_TEST

START_TEST(test_resources) {
  init_as("2025-06-18");
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}");
  const cJSON *r0 =
      cJSON_GetArrayItem(cJSON_GetObjectItem(result(), "resources"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(r0, "uri")->valuestring,
                   "relay://inbox");
  /* A read is a peek. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\","
       "\"params\":{\"uri\":\"relay://inbox\"}}");
  ck_assert_uint_eq(d.ncall, 1);
  char *s = cJSON_PrintUnformatted(d.call[0]);
  ck_assert_str_eq(s, "{\"cmd\":\"inbox\",\"peek\":true}");
  free(s);
  cJSON *a = cJSON_Parse("{\"ok\":true,\"messages\":[]}");
  gv_mcp_answer(m, d.token[0], a, NULL);
  cJSON_Delete(a);
  drain();
  const cJSON *c =
      cJSON_GetArrayItem(cJSON_GetObjectItem(result(), "contents"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(c, "text")->valuestring,
                   "{\"messages\":[]}");
  /* The node down: a read has no isError, so a protocol error. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\","
       "\"params\":{\"uri\":\"relay://inbox\"}}");
  gv_mcp_answer(m, d.token[0], NULL, "down");
  drain();
  ck_assert_int_eq(err_code("1"), GV_MCP_INTERNAL_ERROR);
}
END_TEST

static void push_msg(const char *id) {
  char buf[256];
  snprintf(buf, sizeof(buf),
           "{\"event\":\"message\",\"id\":\"%s\",\"from\":\"a:b@00\","
           "\"to\":\"c:d\",\"thread\":\"\",\"body\":\"x\",\"seq\":1}",
           id);
  cJSON *ev = cJSON_Parse(buf);
  gv_mcp_event(m, ev);
  cJSON_Delete(ev);
  drain();
}

static bool one_update(void) {
  if (d.nout != 1 || d.ncall != 0)
    return false;
  const cJSON *me = cJSON_GetObjectItem(d.out[0], "method");
  const cJSON *uri =
      cJSON_GetObjectItem(cJSON_GetObjectItem(d.out[0], "params"), "uri");
  return cJSON_GetObjectItem(d.out[0], "id") == NULL &&
         strcmp(me->valuestring, "notifications/resources/updated") == 0 &&
         strcmp(uri->valuestring, "relay://inbox") == 0;
}

START_TEST(test_push) {
  const char *id1 = "00000000000000000000000000000001";
  const char *id2 = "00000000000000000000000000000002";
  gv_mcp_relay_up(m);
  drain();
  ck_assert_uint_eq(d.ncall, 1);
  ck_assert_str_eq(cJSON_GetObjectItem(d.call[0], "cmd")->valuestring,
                   "subscribe");
  cJSON *ok = cJSON_Parse("{\"ok\":true}");
  gv_mcp_answer(m, d.token[0], ok, NULL);
  cJSON_Delete(ok);
  drain();
  ck_assert_uint_eq(d.nout, 0);

  init_as("2025-06-18");
  push_msg(id1); /* not subscribed: nothing, but remembered */
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\","
       "\"params\":{\"uri\":\"relay://inbox\"}}");
  ck_assert_int_eq(err_code("1"), 0);
  push_msg(id1); /* a re-push of a known id */
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  push_msg(id2);
  ck_assert(one_update());
  push_msg(id2);
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  /* State events and malformed events say nothing. */
  cJSON *ev = cJSON_Parse("{\"event\":\"state\",\"id\":\""
                          "00000000000000000000000000000003\",\"state\":"
                          "\"read\"}");
  gv_mcp_event(m, ev);
  cJSON_Delete(ev);
  ev = cJSON_Parse("{\"event\":\"message\",\"id\":\"xyz\"}");
  gv_mcp_event(m, ev);
  cJSON_Delete(ev);
  ev = cJSON_Parse("{\"event\":\"message\",\"id\":\""
                   "0000000000000000000000000000000g\"}");
  gv_mcp_event(m, ev);
  cJSON_Delete(ev);
  drain();
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  /* The set is bounded: past GV_MCP_SEEN_MAX new ids, id2 is forgotten
   * and a re-push of it notifies again (harmless, and bounded). */
  for (unsigned i = 0; i < GV_MCP_SEEN_MAX; i++) {
    char id[33];
    snprintf(id, sizeof(id), "1%031x", i);
    push_msg(id);
    ck_assert(one_update());
  }
  push_msg(id2);
  ck_assert(one_update());
  /* Unsubscribed: nothing. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/unsubscribe\","
       "\"params\":{\"uri\":\"relay://inbox\"}}");
  push_msg("00000000000000000000000000000009");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
}
END_TEST

START_TEST(test_cancel_and_busy) {
  init_as("2025-06-18");
  tool("relay_send", "{\"to\":\"bob\",\"message\":\"hi\",\"wait\":\"read\"}");
  uint64_t t = d.token[0];
  line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
       "\"params\":{\"requestId\":1,\"reason\":\"user\"}}");
  ck_assert_uint_eq(d.nout + d.ncall, 0);
  gv_mcp_answer(m, t, NULL, "gone");
  drain();
  ck_assert_uint_eq(d.nout, 0); /* a cancelled request is not answered */

  /* GV_MCP_PENDING_MAX calls wait; one more is BUSY, at once. */
  uint64_t *tok = malloc(GV_MCP_PENDING_MAX * sizeof(*tok));
  for (unsigned i = 0; i < GV_MCP_PENDING_MAX; i++) {
    tool("relay_agents", "{}");
    ck_assert_uint_eq(d.ncall, 1);
    tok[i] = d.token[0];
  }
  tool("relay_agents", "{}");
  ck_assert_str_eq(tool_text(true),
                   "BUSY: too many tool calls wait for the node");
  for (unsigned i = 0; i < GV_MCP_PENDING_MAX; i++) {
    gv_mcp_answer(m, tok[i], NULL, NULL);
    drain();
    ck_assert_uint_eq(d.nout, 1);
  }
  free(tok);
  /* Stale and impossible tokens are ignored. */
  gv_mcp_answer(m, t, NULL, NULL);
  gv_mcp_answer(m, 0xffffffffffffULL, NULL, NULL);
  drain();
  ck_assert_uint_eq(d.nout, 0);
}
END_TEST

/* A relay_inbox answer listing n messages, for the call just made. */
static void inbox_answer(int n) {
  cJSON *a = cJSON_Parse("{\"ok\":true,\"messages\":[]}");
  cJSON *arr = cJSON_GetObjectItem(a, "messages");
  for (int i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateObject());
  ck_assert_uint_eq(d.ncall, 1);
  gv_mcp_answer(m, d.token[0], a, NULL);
  cJSON_Delete(a);
  drain();
}

static int content_items(void) {
  return cJSON_GetArraySize(cJSON_GetObjectItem(result(), "content"));
}

START_TEST(test_full_hint) {
  init_as("2025-06-18");
  /* 255 untaken: the node still pushes; no hint. */
  tool("relay_inbox", "{\"limit\":1000}");
  inbox_answer(255);
  tool_text(false);
  ck_assert_int_eq(content_items(), 1);
  /* 256 listed by a peek: the node has stopped pushing; the hint. */
  tool("relay_inbox", "{\"limit\":1000,\"peek\":true}");
  inbox_answer(256);
  cJSON *j = cJSON_Parse(tool_text(false)); /* still the JSON first */
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")), 256);
  cJSON_Delete(j);
  ck_assert_int_eq(content_items(), 2);
  const cJSON *h =
      cJSON_GetArrayItem(cJSON_GetObjectItem(result(), "content"), 1);
  ck_assert_str_eq(cJSON_GetObjectItem(h, "type")->valuestring, "text");
  ck_assert_ptr_nonnull(
      strstr(cJSON_GetObjectItem(h, "text")->valuestring, "peek false"));
  /* Taken (peek false) or unread_only (taken ones count too): no hint. */
  tool("relay_inbox", "{\"limit\":1000,\"peek\":false}");
  inbox_answer(300);
  ck_assert_int_eq(content_items(), 1);
  tool("relay_inbox", "{\"limit\":1000,\"unread_only\":true}");
  inbox_answer(300);
  ck_assert_int_eq(content_items(), 1);
  /* The resource is no tool result: no hint there either. */
  line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\","
       "\"params\":{\"uri\":\"relay://inbox\"}}");
  inbox_answer(300);
  ck_assert_int_eq(
      cJSON_GetArraySize(cJSON_GetObjectItem(result(), "contents")), 1);
}
END_TEST

static Suite *mcp_suite(void) {
  Suite *s = suite_create("mcp");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_negotiation);
  tcase_add_test(tc, test_name_part);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_tools_list);
  tcase_add_test(tc, test_arguments);
  tcase_add_test(tc, test_answers);
  tcase_add_test(tc, test_resources);
  tcase_add_test(tc, test_push);
  tcase_add_test(tc, test_cancel_and_busy);
  tcase_add_test(tc, test_full_hint);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(mcp_suite()); }

/* The relay's agent side: names and addresses (node/relayaddr.c) and
 * agent-socket lines (node/relayreq.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "relayaddr.h"
#include "relayreq.h"
#include "testutil.h"

/* ---- names and addresses ---- */

static int name_parse(const char *s, gv_raddr_name *n, gv_why *why) {
  why->text[0] = '\0';
  return gv_raddr_name_parse(n, s, strlen(s), why);
}

static int addr_parse(const char *s, gv_raddr *a, gv_why *why) {
  why->text[0] = '\0';
  return gv_raddr_parse(a, s, strlen(s), why);
}

START_TEST(test_names) {
  gv_raddr_name n;
  gv_why why;
  char p64[65], p65[66], long_name[80];

  ck_assert_int_eq(name_parse("web:Bob", &n, &why), 0);
  ck_assert_str_eq(n.project, "web");
  ck_assert_str_eq(n.name, "Bob");
  ck_assert_int_eq(name_parse("my-proj_2.x:a.b-c_9", &n, &why), 0);
  memset(p64, 'a', 64);
  p64[64] = '\0';
  memset(p65, 'b', 65);
  p65[65] = '\0';
  snprintf(long_name, sizeof(long_name), "%s:%s", "p", p64);
  ck_assert_int_eq(name_parse(long_name, &n, &why), 0);
  ck_assert_uint_eq(strlen(n.name), 64);

  ck_assert_int_eq(name_parse("Bob", &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "project"));
  ck_assert_int_eq(name_parse(":Bob", &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "empty project"));
  ck_assert_int_eq(name_parse("web:", &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "empty name"));
  snprintf(long_name, sizeof(long_name), "%s:%s", "p", p65);
  ck_assert_int_eq(name_parse(long_name, &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "65 bytes"));
  ck_assert_int_eq(name_parse("web:B ob", &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "0x20"));
  ck_assert_int_eq(name_parse("a/b:Bob", &n, &why), GV_EFIELD);
  ck_assert_int_eq(name_parse("web:Bob:x", &n, &why), GV_EFIELD);
  ck_assert_int_eq(name_parse("web:*", &n, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "wildcard"));
  ck_assert_int_eq(name_parse("web:B\xc3\xa9", &n, &why), GV_EFIELD);
  ck_assert_int_eq(gv_raddr_name_parse(&n, "web:Bob\0x", 9, &why), GV_EFIELD);
  ck_assert_str_eq(n.project, ""); /* zeroed on failure */
}
END_TEST

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000"
#define HEX_C "bbbbbbbbbbbb1111111111111111111111111111111111111111111111111111"

/* Parses s, checks kind / project / name / node kind, and that the
 * canonical text parses back to the same value. */
static void form(const char *s, gv_raddr_kind kind, const char *project,
                 const char *name, gv_raddr_node node_kind) {
  gv_raddr a, b;
  gv_why why;
  char text[GV_RADDR_TEXT_MAX + 1];
  size_t len;

  ck_assert_msg(addr_parse(s, &a, &why) == 0, "%s: %s", s, why.text);
  ck_assert_int_eq(a.kind, kind);
  ck_assert_str_eq(a.project, project);
  ck_assert_str_eq(a.name, name);
  ck_assert_int_eq(a.node_kind, node_kind);
  len = gv_raddr_format(&a, text);
  ck_assert_uint_eq(len, strlen(text));
  ck_assert_int_eq(gv_raddr_parse(&b, text, len, &why), 0);
  ck_assert_mem_eq(&a, &b, sizeof(a));
}

START_TEST(test_address_forms) {
  gv_raddr a;
  gv_why why;
  char text[GV_RADDR_TEXT_MAX + 1];

  form("Bob", GV_RADDR_ONE, "", "Bob", GV_RADDR_NODE_ANY);
  form("web:Bob", GV_RADDR_ONE, "web", "Bob", GV_RADDR_NODE_ANY);
  form("Bob@" HEX_A, GV_RADDR_ONE, "", "Bob", GV_RADDR_NODE_FULL);
  form("web:Bob@" HEX_B, GV_RADDR_ONE, "web", "Bob", GV_RADDR_NODE_FULL);
  form("Bob@3fa1c2d4e5f6", GV_RADDR_ONE, "", "Bob", GV_RADDR_NODE_SHORT);
  form("web:Bob@3FA1C2D4E5F6", GV_RADDR_ONE, "web", "Bob", GV_RADDR_NODE_SHORT);
  form("*", GV_RADDR_ALL, "", "", GV_RADDR_NODE_ANY);
  form("web:*", GV_RADDR_PROJECT, "web", "", GV_RADDR_NODE_ANY);
  form("*:Bob", GV_RADDR_EVERY_NAME, "", "Bob", GV_RADDR_NODE_ANY);

  /* Node ids: both lengths, either case, canonical in lower case. */
  ck_assert_int_eq(addr_parse("web:Bob@3FA1C2D4E5F6", &a, &why), 0);
  ck_assert_uint_eq(a.node[0], 0x3f);
  ck_assert_uint_eq(a.node[5], 0xf6);
  ck_assert_uint_eq(a.node[6], 0);
  gv_raddr_format(&a, text);
  ck_assert_str_eq(text, "web:Bob@3fa1c2d4e5f6");
  ck_assert_int_eq(addr_parse("Bob@" HEX_B, &a, &why), 0);
  ck_assert_uint_eq(a.node[31], 0);
  ck_assert_uint_eq(a.node[0], 0xbb);
  gv_raddr_format(&a, text);
  ck_assert_str_eq(text, "Bob@" HEX_B);
}
END_TEST

static void bad_addr(const char *s, size_t len, int err, const char *reason) {
  gv_raddr a;
  gv_why why;

  why.text[0] = '\0';
  ck_assert_msg(gv_raddr_parse(&a, s, len, &why) == err,
                "'%s' should fail with %s", s, gv_err_name(err));
  ck_assert_msg(strstr(why.text, reason) != NULL, "'%s': reason '%s'", s,
                why.text);
  ck_assert_int_eq(a.kind, 0);
  ck_assert_str_eq(a.name, "");
}

#define BAD(s, err, reason) bad_addr(s, strlen(s), err, reason)

START_TEST(test_address_rejections) {
  char big[GV_RADDR_TEXT_MAX + 2];

  BAD("", GV_EFIELD, "empty address");
  BAD("@" HEX_A, GV_EFIELD, "no agent");
  BAD("Bob@", GV_EFIELD, "empty node");
  BAD("Bob@3fa1c2d4e5f", GV_EFIELD, "not 64 hex");   /* 11 digits */
  BAD("Bob@3fa1c2d4e5f6a", GV_EFIELD, "not 64 hex"); /* 13 */
  BAD("Bob@3fa1c2d4e5fg", GV_EFIELD, "not 64 hex");
  BAD("Bob@" HEX_A "a", GV_EFIELD, "not 64 hex");
  BAD("Bob@3fa1c2d4e5f6@3fa1c2d4e5f6", GV_EFIELD, "more than one '@'");
  BAD("a:b:c", GV_EFIELD, "more than one ':'");
  BAD("*:*", GV_EFIELD, "written '*'");
  BAD("*@3fa1c2d4e5f6", GV_EFIELD, "takes no '@NODE'");
  BAD("web:*@3fa1c2d4e5f6", GV_EFIELD, "takes no '@NODE'");
  BAD("*:Bob@" HEX_A, GV_EFIELD, "takes no '@NODE'");
  BAD(":Bob", GV_EFIELD, "empty project");
  BAD("web:", GV_EFIELD, "empty name");
  BAD(":", GV_EFIELD, "empty project");
  BAD("B*b", GV_EFIELD, "wildcard");
  BAD("web*:Bob", GV_EFIELD, "wildcard");
  BAD("**", GV_EFIELD, "wildcard");
  BAD("Bob smith", GV_EFIELD, "0x20");
  BAD("web:Bob\n", GV_EFIELD, "0x0a");
  BAD("B\xc3\xb6", GV_EFIELD, "0xc3");
  bad_addr("Bob\0x", 5, GV_EFIELD, "0x00");
  memset(big, 'a', sizeof(big));
  bad_addr(big, GV_RADDR_TEXT_MAX + 1, GV_ETOOBIG, "more than 194");
  memset(big, 'a', 65);
  big[65] = '\0';
  BAD(big, GV_EFIELD, "65 bytes");
}
END_TEST

static uint8_t node_a[32], node_b[32], node_c[32];

static void ent(gv_raddr_ent *e, const uint8_t *node, const char *project,
                const char *name, bool online) {
  memset(e, 0, sizeof(*e));
  memcpy(e->node, node, 32);
  strcpy(e->agent.project, project);
  strcpy(e->agent.name, name);
  e->online = online;
}

/* The team directory of the resolution tests. B and C share their short
 * form (bbbbbbbbbbbb). */
enum { E_WEB_BOB, E_API_BOB, E_WEB_ALICE, E_WEB_CAROL, E_API_DAVE, N_DIR };
static gv_raddr_ent dir[N_DIR];

static void dir_setup(void) {
  ck_assert_int_eq(gv_id_from_hex(node_a, HEX_A, 64), 0);
  ck_assert_int_eq(gv_id_from_hex(node_b, HEX_B, 64), 0);
  ck_assert_int_eq(gv_id_from_hex(node_c, HEX_C, 64), 0);
  ent(&dir[E_WEB_BOB], node_a, "web", "Bob", true);
  ent(&dir[E_API_BOB], node_b, "api", "Bob", false); /* offline counts */
  ent(&dir[E_WEB_ALICE], node_a, "web", "Alice", true);
  ent(&dir[E_WEB_CAROL], node_b, "web", "Carol", true);
  ent(&dir[E_API_DAVE], node_c, "api", "Dave", true);
}

/* Resolves text from self (NULL: none) into out[0..8); returns the code. */
static int resolve(const char *text, const gv_raddr_ent *self, size_t *out,
                   size_t *found, gv_why *why) {
  gv_raddr a;

  ck_assert_int_eq(addr_parse(text, &a, why), 0);
  why->text[0] = '\0';
  return gv_raddr_resolve(&a, dir, N_DIR, self, out, 8, found, why);
}

START_TEST(test_resolve_exact) {
  size_t out[8], found;
  gv_why why;

  ck_assert_int_eq(resolve("web:Bob", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(found, 1);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_int_eq(resolve("api:Bob", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_API_BOB);
  ck_assert_int_eq(resolve("Alice", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_WEB_ALICE);
  ck_assert_int_eq(resolve("Bob@" HEX_A, NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_int_eq(resolve("Bob@aaaaaaaaaaaa", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_int_eq(resolve("api:Bob@" HEX_B, NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_API_BOB);
  ck_assert_int_eq(resolve("web:Carol@" HEX_B, NULL, out, &found, &why), 0);
  ck_assert_uint_eq(out[0], E_WEB_CAROL);
  /* Naming oneself exactly is a lookup like any other. */
  ck_assert_int_eq(resolve("web:Alice", &dir[E_WEB_ALICE], out, &found, &why),
                   0);
  ck_assert_uint_eq(out[0], E_WEB_ALICE);
}
END_TEST

START_TEST(test_resolve_ambiguous_unknown) {
  size_t out[8], found;
  gv_why why;
  gv_raddr a;
  gv_raddr_ent only_api;
  char *line;

  ck_assert_int_eq(resolve("Bob", NULL, out, &found, &why), GV_EAMBIGUOUS);
  ck_assert_uint_eq(found, 2);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_uint_eq(out[1], E_API_BOB);
  ck_assert_ptr_nonnull(strstr(why.text, "2 agents"));
  line = gv_rreq_enc_ambiguous("r1", why.text, dir, out, found);
  ck_assert_ptr_nonnull(line);
  ck_assert_ptr_nonnull(strstr(line, "\"error\":\"AMBIGUOUS\""));
  ck_assert_ptr_nonnull(strstr(line, "\"candidates\":[\"web:Bob@" HEX_A
                                     "\",\"api:Bob@" HEX_B "\"]"));
  free(line);

  /* A short node id that names two nodes of the directory, even with one
   * agent of that name on them: the user meant one node. */
  ck_assert_int_eq(resolve("Dave@bbbbbbbbbbbb", NULL, out, &found, &why),
                   GV_EAMBIGUOUS);
  ck_assert_uint_eq(found, 1);
  ck_assert_uint_eq(out[0], E_API_DAVE);
  ck_assert_ptr_nonnull(strstr(why.text, "several nodes"));
  ck_assert_int_eq(resolve("Carol@bbbbbbbbbbbb", NULL, out, &found, &why),
                   GV_EAMBIGUOUS);
  ck_assert_uint_eq(out[0], E_WEB_CAROL);
  ck_assert_int_eq(resolve("api:Bob@BBBBBBBBBBBB", NULL, out, &found, &why),
                   GV_EAMBIGUOUS);
  ck_assert_uint_eq(found, 1);
  ck_assert_uint_eq(out[0], E_API_BOB);
  ck_assert_int_eq(resolve("Dave@" HEX_C, NULL, out, &found, &why), 0);

  ck_assert_int_eq(resolve("Zed", NULL, out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);
  ck_assert_uint_eq(found, 0);
  ck_assert_ptr_nonnull(strstr(why.text, "'Zed'"));
  ck_assert_int_eq(resolve("Bob@" HEX_C, NULL, out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);
  ck_assert_int_eq(resolve("Zed@bbbbbbbbbbbb", NULL, out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);
  ck_assert_int_eq(resolve("web:Dave", NULL, out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);

  /* The project is never dropped: web:Bob does not reach api:Bob, even
   * when api:Bob is the only Bob. */
  ent(&only_api, node_b, "api", "Bob", true);
  ck_assert_int_eq(addr_parse("web:Bob", &a, &why), 0);
  ck_assert_int_eq(
      gv_raddr_resolve(&a, &only_api, 1, NULL, out, 8, &found, &why),
      GV_EUNKNOWN_RECIPIENT);
  ck_assert_int_eq(addr_parse("web:*", &a, &why), 0);
  ck_assert_int_eq(
      gv_raddr_resolve(&a, &only_api, 1, NULL, out, 8, &found, &why),
      GV_EUNKNOWN_RECIPIENT);
  ck_assert_int_eq(addr_parse("Bob", &a, &why), 0);
  ck_assert_int_eq(gv_raddr_resolve(&a, NULL, 0, NULL, out, 8, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);
}
END_TEST

START_TEST(test_resolve_fanout) {
  size_t out[8], found;
  gv_why why;
  gv_raddr a;

  /* `*` from web:Alice: everyone else, in directory order. */
  ck_assert_int_eq(resolve("*", &dir[E_WEB_ALICE], out, &found, &why), 0);
  ck_assert_uint_eq(found, 4);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_uint_eq(out[1], E_API_BOB);
  ck_assert_uint_eq(out[2], E_WEB_CAROL);
  ck_assert_uint_eq(out[3], E_API_DAVE);
  ck_assert_int_eq(resolve("*", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(found, N_DIR);

  ck_assert_int_eq(resolve("web:*", &dir[E_WEB_ALICE], out, &found, &why), 0);
  ck_assert_uint_eq(found, 2);
  ck_assert_uint_eq(out[0], E_WEB_BOB);
  ck_assert_uint_eq(out[1], E_WEB_CAROL);
  ck_assert_int_eq(resolve("api:*", &dir[E_WEB_ALICE], out, &found, &why), 0);
  ck_assert_uint_eq(found, 2);

  ck_assert_int_eq(resolve("*:Bob", &dir[E_WEB_BOB], out, &found, &why), 0);
  ck_assert_uint_eq(found, 1);
  ck_assert_uint_eq(out[0], E_API_BOB);
  ck_assert_int_eq(resolve("*:Bob", NULL, out, &found, &why), 0);
  ck_assert_uint_eq(found, 2);

  /* Only the sender matches: nobody to send to. */
  ck_assert_int_eq(resolve("*:Alice", &dir[E_WEB_ALICE], out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);
  ck_assert_ptr_nonnull(strstr(why.text, "sender aside"));
  ck_assert_int_eq(resolve("nope:*", NULL, out, &found, &why),
                   GV_EUNKNOWN_RECIPIENT);

  /* More matches than room: all counted, the first cap written. */
  ck_assert_int_eq(addr_parse("*", &a, &why), 0);
  out[2] = 99;
  ck_assert_int_eq(gv_raddr_resolve(&a, dir, N_DIR, NULL, out, 2, &found, &why),
                   0);
  ck_assert_uint_eq(found, N_DIR);
  ck_assert_uint_eq(out[1], E_API_BOB);
  ck_assert_uint_eq(out[2], 99);
}
END_TEST

/* ---- agent-socket lines ---- */

static int parse(const char *line, gv_rreq *r, gv_why *why) {
  gv_rreq_free(r);
  why->text[0] = '\0';
  return gv_rreq_parse(r, line, strlen(line), why);
}

/* Expects line to fail with err and a reason containing `reason`. */
static void bad(const char *line, int err, const char *reason) {
  gv_rreq r = {0};
  gv_why why;
  int rc = parse(line, &r, &why);

  ck_assert_msg(rc == err, "%s: got %s (%s), want %s", line, gv_err_name(rc),
                why.text, gv_err_name(err));
  ck_assert_msg(strstr(why.text, reason) != NULL, "%s: reason '%s'", line,
                why.text);
  gv_rreq_free(&r);
}

START_TEST(test_req_hello) {
  gv_rreq r = {0};
  gv_why why;

  ck_assert_int_eq(parse("{\"cmd\":\"hello\",\"as\":\"web:Bob\"}", &r, &why),
                   0);
  ck_assert_int_eq(r.cmd, GV_RREQ_HELLO);
  ck_assert_str_eq(r.u.hello.as.project, "web");
  ck_assert_str_eq(r.u.hello.as.name, "Bob");
  ck_assert(!r.u.hello.has_team && !r.u.hello.has_resume);
  ck_assert_ptr_null(r.req);
  ck_assert_int_eq(parse("{\"cmd\":\"hello\",\"as\":\"web:Bob\",\"req\":\"7\","
                         "\"team\":\"0123456789abcdef\",\"resume\":\"" HEX_A
                         "\",\"extra\":[1,{\"x\":2}]}",
                         &r, &why),
                   0);
  ck_assert_str_eq(r.req, "7");
  ck_assert(r.u.hello.has_team && r.u.hello.has_resume);
  ck_assert_uint_eq(r.u.hello.team[7], 0xef);
  ck_assert_uint_eq(r.u.hello.resume[31], 0xaa);
  /* null is as good as absent */
  ck_assert_int_eq(
      parse("{\"cmd\":\"hello\",\"as\":\"a:b\",\"team\":null}", &r, &why), 0);
  ck_assert(!r.u.hello.has_team);
  gv_rreq_free(&r);

  bad("{\"cmd\":\"hello\"}", GV_EFIELD, "'as'");
  bad("{\"cmd\":\"hello\",\"as\":7}", GV_EFIELD, "'as' is not a string");
  bad("{\"cmd\":\"hello\",\"as\":\"Bob\"}", GV_EFIELD, "project");
  bad("{\"cmd\":\"hello\",\"as\":\"web:*\"}", GV_EFIELD, "wildcard");
  bad("{\"cmd\":\"hello\",\"as\":\"a:b\",\"team\":\"0123\"}", GV_EFIELD,
      "'team' is not 16 hex");
  bad("{\"cmd\":\"hello\",\"as\":\"a:b\",\"resume\":\"xyz\"}", GV_EFIELD,
      "'resume' is not 64 hex");
  bad("{\"cmd\":\"hello\",\"as\":\"a:b\",\"resume\":1}", GV_EFIELD,
      "not a string");
}
END_TEST

START_TEST(test_req_send) {
  gv_rreq r = {0};
  gv_why why;

  ck_assert_int_eq(
      parse("{\"cmd\":\"send\",\"to\":\"web:Bob\",\"message\":\"hi\"}", &r,
            &why),
      0);
  ck_assert_int_eq(r.cmd, GV_RREQ_SEND);
  ck_assert_int_eq(r.u.send.to.kind, GV_RADDR_ONE);
  ck_assert_str_eq(r.u.send.to.project, "web");
  ck_assert_str_eq(r.u.send.message, "hi");
  ck_assert_uint_eq(r.u.send.message_len, 2);
  ck_assert_ptr_null(r.u.send.thread);
  ck_assert_ptr_null(r.u.send.key);
  ck_assert_uint_eq(r.u.send.ttl_ms, 7ULL * 24 * 3600 * 1000);
  ck_assert_int_eq(r.u.send.wait, GV_RSTATE_ACCEPTED);
  ck_assert_uint_eq(r.u.send.timeout_ms, 30000);

  ck_assert_int_eq(
      parse("{\"req\":\"c-1\",\"cmd\":\"send\",\"to\":\"*\",\"message\":"
            "\"caf\\u00e9 \xe2\x82\xac \xf0\x9f\x98\x80\\n\",\"thread\":"
            "\"t 1\",\"key\":\"k\",\"ttl_ms\":2592000000,\"wait\":\"read\","
            "\"timeout_ms\":3600000}",
            &r, &why),
      0);
  ck_assert_int_eq(r.u.send.to.kind, GV_RADDR_ALL);
  ck_assert_str_eq(r.u.send.message,
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");
  ck_assert_str_eq(r.u.send.thread, "t 1");
  ck_assert_str_eq(r.u.send.key, "k");
  ck_assert_uint_eq(r.u.send.ttl_ms, 30ULL * 24 * 3600 * 1000);
  ck_assert_int_eq(r.u.send.wait, GV_RSTATE_READ);
  ck_assert_uint_eq(r.u.send.timeout_ms, 3600000);
  ck_assert_int_eq(parse("{\"cmd\":\"send\",\"to\":\"a\",\"message\":\"\","
                         "\"thread\":\"\",\"wait\":\"stored\",\"ttl_ms\":1}",
                         &r, &why),
                   0);
  ck_assert_uint_eq(r.u.send.message_len, 0);
  ck_assert_str_eq(r.u.send.thread, "");
  ck_assert_int_eq(r.u.send.wait, GV_RSTATE_STORED);
  gv_rreq_free(&r);

#define SEND "{\"cmd\":\"send\",\"to\":\"web:Bob\",\"message\":\"m\","
  bad("{\"cmd\":\"send\",\"message\":\"m\"}", GV_EFIELD, "'to'");
  bad("{\"cmd\":\"send\",\"to\":\"*:*\",\"message\":\"m\"}", GV_EFIELD,
      "written '*'");
  bad("{\"cmd\":\"send\",\"to\":[],\"message\":\"m\"}", GV_EFIELD,
      "not a string");
  bad("{\"cmd\":\"send\",\"to\":\"Bob\"}", GV_EFIELD, "'message'");
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":5}", GV_EFIELD,
      "'message' is not a string");
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"a\xff\"}", GV_EFIELD,
      "not UTF-8 at byte 1");
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"\xc0\xaf\"}", GV_EFIELD,
      "not UTF-8"); /* overlong '/' */
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"\xed\xa0\x80\"}",
      GV_EFIELD, "not UTF-8"); /* a surrogate */
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"\xf4\x90\x80\x80\"}",
      GV_EFIELD, "not UTF-8"); /* past U+10FFFF */
  bad("{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"\xe2\x82\"}", GV_EFIELD,
      "not UTF-8"); /* cut short */
  bad(SEND "\"thread\":\"0123456789012345678901234567890123456789012345678901"
           "2345678901234\"}",
      GV_ERANGE, "'thread' has 65 bytes");
  bad(SEND "\"thread\":\"a\\tb\"}", GV_EFIELD, "'thread' has byte 0x09");
  bad(SEND "\"thread\":1}", GV_EFIELD, "not a string");
  bad(SEND "\"key\":\"\"}", GV_ERANGE, "'key' has 0 bytes");
  bad(SEND "\"key\":\"\xc3\xa9\"}", GV_EFIELD, "only printable");
  bad(SEND "\"ttl_ms\":0}", GV_ERANGE, "'ttl_ms'");
  bad(SEND "\"ttl_ms\":2592000001}", GV_ERANGE, "'ttl_ms'");
  bad(SEND "\"ttl_ms\":1.5}", GV_EFIELD, "not an integer");
  bad(SEND "\"ttl_ms\":-5e300}", GV_ERANGE, "'ttl_ms'");
  bad(SEND "\"ttl_ms\":\"1\"}", GV_EFIELD, "not a number");
  bad(SEND "\"wait\":\"failed\"}", GV_EFIELD, "'wait' is 'failed'");
  bad(SEND "\"wait\":\"done\"}", GV_EFIELD, "'wait' is 'done'");
  bad(SEND "\"wait\":true}", GV_EFIELD, "not a string");
  bad(SEND "\"timeout_ms\":0}", GV_ERANGE, "'timeout_ms'");
  bad(SEND "\"timeout_ms\":3600001}", GV_ERANGE, "'timeout_ms'");
#undef SEND
}
END_TEST

/* A send line whose message has n bytes ('x'). */
static char *send_of(size_t n, size_t *len) {
  static const char head[] = "{\"cmd\":\"send\",\"to\":\"Bob\",\"message\":\"";
  char *s = malloc(sizeof(head) + n + 3);

  ck_assert_ptr_nonnull(s);
  memcpy(s, head, sizeof(head) - 1);
  memset(s + sizeof(head) - 1, 'x', n);
  memcpy(s + sizeof(head) - 1 + n, "\"}", 3);
  *len = sizeof(head) - 1 + n + 2;
  return s;
}

START_TEST(test_req_sizes) {
  gv_rreq r = {0};
  gv_why why;
  size_t len;
  char *s;

  s = send_of(GV_RREQ_MESSAGE_MAX, &len);
  ck_assert_int_eq(gv_rreq_parse(&r, s, len, &why), 0);
  ck_assert_uint_eq(r.u.send.message_len, 1024 * 1024);
  gv_rreq_free(&r);
  free(s);

  s = send_of(GV_RREQ_MESSAGE_MAX + 1, &len);
  ck_assert_int_eq(gv_rreq_parse(&r, s, len, &why), GV_EPAYLOAD_TOO_LARGE);
  ck_assert_ptr_nonnull(strstr(why.text, "1048577 bytes"));
  gv_rreq_free(&r);
  free(s);

  /* A line within its limit whose message is not. */
  s = send_of(GV_RREQ_LINE_MAX - 40, &len);
  ck_assert_int_eq(gv_rreq_parse(&r, s, len, &why), GV_EPAYLOAD_TOO_LARGE);
  gv_rreq_free(&r);
  free(s);

  s = send_of(GV_RREQ_LINE_MAX, &len);
  ck_assert_int_eq(gv_rreq_parse(&r, s, len, &why), GV_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(why.text, "more than 2097152"));
  ck_assert_ptr_null(r.root);
  gv_rreq_free(&r);
  free(s);
}
END_TEST

START_TEST(test_req_others) {
  gv_rreq r = {0};
  gv_why why;
  char line[64 + 36 * (GV_RREQ_IDS_MAX + 1)];
  size_t n;

  ck_assert_int_eq(parse("{\"cmd\":\"inbox\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_RREQ_INBOX);
  ck_assert_uint_eq(r.u.inbox.limit, 100);
  ck_assert(!r.u.inbox.unread_only);
  ck_assert(r.u.inbox.peek);
  ck_assert_int_eq(parse("{\"cmd\":\"inbox\",\"limit\":1000,\"unread_only\":"
                         "true,\"peek\":false}",
                         &r, &why),
                   0);
  ck_assert_uint_eq(r.u.inbox.limit, 1000);
  ck_assert(r.u.inbox.unread_only);
  ck_assert(!r.u.inbox.peek);
  bad("{\"cmd\":\"inbox\",\"limit\":0}", GV_ERANGE, "'limit'");
  bad("{\"cmd\":\"inbox\",\"limit\":1001}", GV_ERANGE, "'limit'");
  bad("{\"cmd\":\"inbox\",\"peek\":\"yes\"}", GV_EFIELD, "'peek'");
  bad("{\"cmd\":\"inbox\",\"unread_only\":1}", GV_EFIELD, "'unread_only'");

  ck_assert_int_eq(
      parse("{\"cmd\":\"ack\",\"ids\":[\"000102030405060708090a0b0c0d0e0f\","
            "\"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\"]}",
            &r, &why),
      0);
  ck_assert_int_eq(r.cmd, GV_RREQ_ACK);
  ck_assert_uint_eq(r.u.ids.n, 2);
  ck_assert_uint_eq(r.u.ids.ids[0][15], 0x0f);
  ck_assert_uint_eq(r.u.ids.ids[1][0], 0xff);
  ck_assert_int_eq(
      parse("{\"cmd\":\"read\",\"ids\":[\"000102030405060708090a0b0c0d0e0f\"]}",
            &r, &why),
      0);
  ck_assert_int_eq(r.cmd, GV_RREQ_READ);
  ck_assert_uint_eq(r.u.ids.n, 1);
  bad("{\"cmd\":\"ack\"}", GV_EFIELD, "'ids'");
  bad("{\"cmd\":\"ack\",\"ids\":\"00\"}", GV_EFIELD, "not an array");
  bad("{\"cmd\":\"read\",\"ids\":[]}", GV_ERANGE, "empty");
  bad("{\"cmd\":\"ack\",\"ids\":[\"000102030405060708090a0b0c0d0e\"]}",
      GV_EFIELD, "'ids'[0] is not 32 hex");
  bad("{\"cmd\":\"ack\",\"ids\":[\"000102030405060708090a0b0c0d0e0f\",1]}",
      GV_EFIELD, "'ids'[1]");
  bad("{\"cmd\":\"ack\",\"ids\":[\"000102030405060708090a0b0c0d0e0g\"]}",
      GV_EFIELD, "'ids'[0]");
  /* 1000 ids pass, 1001 do not. */
  for (int k = 0; k < 2; k++) {
    n = (size_t)snprintf(line, sizeof(line), "{\"cmd\":\"ack\",\"ids\":[");
    for (int i = 0; i < GV_RREQ_IDS_MAX + k; i++)
      n += (size_t)snprintf(line + n, sizeof(line) - n, "%s\"%032x\"",
                            i ? "," : "", (unsigned)i);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "]}");
    ck_assert_uint_lt(n, sizeof(line) - 1);
    ck_assert_int_eq(parse(line, &r, &why), k == 0 ? 0 : GV_ELIMIT);
    if (k == 0) {
      ck_assert_uint_eq(r.u.ids.n, 1000);
      ck_assert_uint_eq(r.u.ids.ids[999][15], 999 & 0xff);
    }
  }

  ck_assert_int_eq(parse("{\"cmd\":\"status\",\"id\":"
                         "\"000102030405060708090a0b0c0d0e0f\"}",
                         &r, &why),
                   0);
  ck_assert_int_eq(r.cmd, GV_RREQ_STATUS);
  ck_assert_uint_eq(r.u.status.id[1], 1);
  bad("{\"cmd\":\"status\"}", GV_EFIELD, "'id'");
  bad("{\"cmd\":\"status\",\"id\":\"0001\"}", GV_EFIELD, "32 hex");

  ck_assert_int_eq(parse("{\"cmd\":\"agents\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_RREQ_AGENTS);
  ck_assert_ptr_null(r.u.agents.project);
  ck_assert_int_eq(parse("{\"cmd\":\"agents\",\"project\":\"web\"}", &r, &why),
                   0);
  ck_assert_str_eq(r.u.agents.project, "web");
  bad("{\"cmd\":\"agents\",\"project\":\"w b\"}", GV_EFIELD, "0x20");
  bad("{\"cmd\":\"agents\",\"project\":\"\"}", GV_EFIELD, "empty project");

  ck_assert_int_eq(parse("{\"cmd\":\"subscribe\",\"req\":\"\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_RREQ_SUBSCRIBE);
  ck_assert_str_eq(r.req, "");
  gv_rreq_free(&r);
}
END_TEST

START_TEST(test_req_envelope) {
  gv_rreq r = {0};
  gv_why why;
  static const char nul[] = "{\"cmd\":\"inbox\"}\0";

  bad("", GV_EJSON, "not one JSON value");
  bad("inbox", GV_EJSON, "not one JSON value");
  bad("[\"inbox\"]", GV_EJSON, "not a JSON object");
  bad("{\"cmd\":\"inbox\"} {}", GV_EJSON, "at byte 16");
  bad("{\"cmd\":\"inbox\",\"cmd\":\"send\"}", GV_EFIELD, "appears twice");
  bad("{\"cmd\":\"inbox\",\"x\":{\"a\":1,\"a\":2}}", GV_EFIELD,
      "appears twice");
  bad("{\"cmd\":\"send\\u0000\"}", GV_EJSON, "\\u0000 at 12");
  bad("{}", GV_EFIELD, "'cmd'");
  bad("{\"cmd\":3}", GV_EFIELD, "'cmd' is not a string");
  bad("{\"cmd\":\"reboot\"}", GV_ETYPE, "unknown cmd 'reboot'");
  bad("{\"cmd\":\"Send\"}", GV_ETYPE, "unknown cmd");
  bad("{\"cmd\":\"inbox\",\"req\":7}", GV_EFIELD, "'req' is not a string");
  bad("{\"cmd\":\"inbox\",\"req\":\"0123456789012345678901234567890123456789"
      "0123456789012345678901234\"}",
      GV_ERANGE, "'req' has 65 bytes");
  bad("{\"cmd\":\"inbox\",\"req\":\"a\\u007fb\"}", GV_EFIELD, "0x7f");

  /* 65 members: over proto/json.c's bound on one object */
  {
    char wide[1024];
    size_t n = (size_t)snprintf(wide, sizeof(wide), "{\"cmd\":\"inbox\"");
    for (int i = 0; i < 64; i++)
      n += (size_t)snprintf(wide + n, sizeof(wide) - n, ",\"m%d\":0", i);
    snprintf(wide + n, sizeof(wide) - n, "}");
    bad(wide, GV_ELIMIT, "more than 64 members");
  }

  ck_assert_int_eq(gv_rreq_parse(&r, nul, sizeof(nul) - 1, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "NUL byte at 15"));
  gv_rreq_free(&r);
  /* A request refused for another field still carries its req. */
  ck_assert_int_eq(
      parse("{\"cmd\":\"inbox\",\"req\":\"abc\",\"limit\":0}", &r, &why),
      GV_ERANGE);
  ck_assert_str_eq(r.req, "abc");
  ck_assert_int_eq(parse("{\"cmd\":\"nope\",\"req\":\"q\"}", &r, &why),
                   GV_ETYPE);
  ck_assert_str_eq(r.req, "q");
  gv_rreq_free(&r);
  ck_assert_ptr_null(r.root);
}
END_TEST

/* ---- encoders ---- */

/* line must be one line of one JSON object; returns it parsed. */
static cJSON *one_line(char *line) {
  size_t at, len;
  cJSON *o;

  ck_assert_ptr_nonnull(line);
  len = strlen(line);
  ck_assert_uint_gt(len, 1);
  ck_assert_int_eq(line[len - 1], '\n');
  ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1);
  o = gv_json_parse_exact(line, len, &at);
  ck_assert_ptr_nonnull(o);
  ck_assert(cJSON_IsObject(o));
  free(line);
  return o;
}

static const char *get_s(const cJSON *o, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  ck_assert_msg(cJSON_IsString(it), "no string '%s'", key);
  return it->valuestring;
}

START_TEST(test_encoders) {
  uint8_t id[16], session[32];
  gv_raddr_name as = {"web", "Bob"};
  cJSON *o, *arr;
  uint64_t skipped[] = {3, 4};
  gv_rreq_msg m[2] = {
      {.from = "api:Ann@" HEX_A,
       .to = "web:Bob",
       .thread = "t",
       .body = "line 1\nline 2 \"q\" \x01",
       .seq = 5,
       .skipped = skipped,
       .n_skipped = 2},
      {.from = "api:Ann@" HEX_A, .to = "web:Bob", .body = "", .seq = 6},
  };
  gv_rreq_sent sent[2] = {{.to = "web:Bob@" HEX_A, .state = GV_RSTATE_ACCEPTED},
                          {.to = "api:Bob@" HEX_B,
                           .state = GV_RSTATE_FAILED,
                           .reason = GV_RFAIL_NOT_IN_TEAM}};
  gv_rreq_step trace[2] = {{GV_RSTATE_ACCEPTED, T0_MS, NULL},
                           {GV_RSTATE_SENT, T0_MS + 3, node_b}};

  memset(id, 0xab, sizeof(id));
  memcpy(sent[0].id, id, 16);
  memset(session, 0x01, sizeof(session));
  memcpy(m[0].id, id, 16);

  o = one_line(gv_rreq_enc_error("x\"y", GV_EUNKNOWN_RECIPIENT, "no 'Zed'"));
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
  ck_assert_str_eq(get_s(o, "req"), "x\"y");
  ck_assert_str_eq(get_s(o, "error"), "UNKNOWN_RECIPIENT");
  ck_assert_str_eq(get_s(o, "reason"), "no 'Zed'");
  cJSON_Delete(o);
  o = one_line(gv_rreq_enc_error(NULL, GV_EPAYLOAD_TOO_LARGE, NULL));
  ck_assert_ptr_null(cJSON_GetObjectItem(o, "req"));
  ck_assert_str_eq(get_s(o, "error"), "PAYLOAD_TOO_LARGE");
  ck_assert_str_eq(get_s(o, "reason"), "message larger than 1 MiB");
  cJSON_Delete(o);
  o = one_line(gv_rreq_enc_error(NULL, GV_ENAME_TAKEN, "x"));
  ck_assert_str_eq(get_s(o, "error"), "NAME_TAKEN");
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_ok("r"));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_hello("r", &as, node_a, session));
  ck_assert_str_eq(get_s(o, "as"), "web:Bob");
  ck_assert_str_eq(get_s(o, "node"), HEX_A);
  ck_assert_uint_eq(strlen(get_s(o, "session")), 64);
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_sent("r", &sent[0], 1, false));
  ck_assert_str_eq(get_s(o, "id"), "abababababababababababababababab");
  ck_assert_str_eq(get_s(o, "to"), "web:Bob@" HEX_A);
  ck_assert_str_eq(get_s(o, "state"), "accepted");
  ck_assert_ptr_null(cJSON_GetObjectItem(o, "reason"));
  cJSON_Delete(o);
  o = one_line(gv_rreq_enc_sent(NULL, sent, 2, true));
  arr = cJSON_GetObjectItem(o, "sent");
  ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 1), "state"), "failed");
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 1), "reason"), "not_in_team");
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 1), "to"), "api:Bob@" HEX_B);
  cJSON_Delete(o);
  /* one recipient is not a list; failed without a reason is refused */
  ck_assert_ptr_null(gv_rreq_enc_sent(NULL, sent, 2, false));
  sent[1].reason = GV_RFAIL_NONE;
  ck_assert_ptr_null(gv_rreq_enc_sent(NULL, &sent[1], 1, false));
  ck_assert_ptr_null(gv_rreq_enc_ev_state(id, (gv_rstate)17, 0));

  o = one_line(gv_rreq_enc_inbox("r", m, 2, false));
  ck_assert_ptr_null(cJSON_GetObjectItem(o, "more"));
  arr = cJSON_GetObjectItem(o, "messages");
  ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 0), "body"),
                   "line 1\nline 2 \"q\" \x01");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
                       cJSON_GetArrayItem(arr, 0), "skipped")),
                   2);
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 1), "thread"), "");
  ck_assert_ptr_null(
      cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "skipped"));
  cJSON_Delete(o);
  o = one_line(gv_rreq_enc_inbox("r", m, 1, true));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "more")));
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_ev_message(&m[0]));
  ck_assert_str_eq(get_s(o, "event"), "message");
  ck_assert_str_eq(get_s(o, "from"), "api:Ann@" HEX_A);
  ck_assert_int_eq(cJSON_GetObjectItem(o, "seq")->valuedouble, 5);
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_ev_state(id, GV_RSTATE_FAILED, GV_RFAIL_EXPIRED));
  ck_assert_str_eq(get_s(o, "event"), "state");
  ck_assert_str_eq(get_s(o, "reason"), "expired");
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_status("r", GV_RSTATE_SENT, 0, trace, 2));
  arr = cJSON_GetObjectItem(o, "trace");
  ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
  ck_assert_double_eq(
      cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "at_ms")->valuedouble,
      (double)T0_MS);
  ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "hop"));
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, 1), "hop"), HEX_B);
  cJSON_Delete(o);

  o = one_line(gv_rreq_enc_agents(NULL, dir, N_DIR));
  arr = cJSON_GetObjectItem(o, "agents");
  ck_assert_int_eq(cJSON_GetArraySize(arr), N_DIR);
  ck_assert_str_eq(get_s(cJSON_GetArrayItem(arr, E_API_BOB), "address"),
                   "api:Bob@" HEX_B);
  ck_assert(cJSON_IsFalse(
      cJSON_GetObjectItem(cJSON_GetArrayItem(arr, E_API_BOB), "online")));
  cJSON_Delete(o);

  ck_assert_str_eq(gv_rstate_name(GV_RSTATE_DELIVERED), "delivered");
  ck_assert_ptr_null(gv_rstate_name((gv_rstate)6));
  ck_assert_str_eq(gv_rfail_name(GV_RFAIL_UNKNOWN_RECIPIENT),
                   "unknown_recipient");
  ck_assert_ptr_null(gv_rfail_name(GV_RFAIL_NONE));
}
END_TEST

static Suite *relayreq_suite(void) {
  Suite *s = suite_create("relayreq");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, dir_setup, NULL);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_address_forms);
  tcase_add_test(tc, test_address_rejections);
  tcase_add_test(tc, test_resolve_exact);
  tcase_add_test(tc, test_resolve_ambiguous_unknown);
  tcase_add_test(tc, test_resolve_fanout);
  tcase_add_test(tc, test_req_hello);
  tcase_add_test(tc, test_req_send);
  tcase_add_test(tc, test_req_sizes);
  tcase_add_test(tc, test_req_others);
  tcase_add_test(tc, test_req_envelope);
  tcase_add_test(tc, test_encoders);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(relayreq_suite()); }

/* The relay socket client (node/aclient.c) against a scripted node: the
 * real socket server (node/agentsrv.c) on a temporary relay.sock, both on
 * this test's loop. Every wait pumps the loop and is bounded in time. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aclient.h"
#include "agentsrv.h"
#include "relayreq.h"
#include "testutil.h"

#define WAIT_MS 10000

/* The scripted node: what it does with each line. */
typedef struct node {
  gv_agentsrv *srv;
  gv_rconn conn;      /* the last connection that said hello */
  unsigned hellos;    /* hello lines seen */
  unsigned resumes;   /* ... carrying a resume token */
  const char *refuse; /* answer hello with this error code */
  bool event_first;   /* push an event in the same write as hello's answer */
  bool silent;        /* answer no request but hello */
  bool hangup_hello;  /* hang up instead of answering hello */
  size_t big;         /* answer requests with a line this long */
} node;

/* What the client told its owner, in order, as text. */
typedef struct seen {
  char log[4096];
  unsigned ups, downs, events, answers, nulls;
} seen;

static char dir[64], path[96];
static uv_loop_t loop;
static node N;
static seen S;
static gv_aclient *C;

static void logf_(const char *s) {
  size_t n = strlen(S.log);
  snprintf(S.log + n, sizeof(S.log) - n, "%s;", s);
}

static void write_str(gv_rconn conn, const char *s) {
  size_t n = strlen(s);
  uint8_t *b = malloc(n);
  memcpy(b, s, n);
  ck_assert_int_eq(gv_agentsrv_write(N.srv, conn, b, n), 0);
}

static void n_line(void *ctx, gv_rconn conn, const char *line, size_t len) {
  cJSON *o = cJSON_ParseWithLength(line, len);
  const char *cmd = cJSON_GetStringValue(cJSON_GetObjectItem(o, "cmd"));
  const char *req = cJSON_GetStringValue(cJSON_GetObjectItem(o, "req"));
  char out[512];

  (void)ctx;
  ck_assert_ptr_nonnull(cmd);
  if (strcmp(cmd, "hello") == 0) {
    N.hellos++;
    N.conn = conn;
    if (cJSON_GetObjectItem(o, "resume") != NULL)
      N.resumes++;
    if (N.hangup_hello) {
      gv_agentsrv_hangup(N.srv, conn);
      cJSON_Delete(o);
      return;
    }
    if (N.refuse != NULL)
      snprintf(out, sizeof(out),
               "{\"ok\":false,\"error\":\"%s\",\"reason\":\"taken\"}\n",
               N.refuse);
    else
      snprintf(out, sizeof(out),
               "{\"ok\":true,\"as\":\"p:a\",\"node\":\"%064d\",\"session\":"
               "\"%064d\"}\n%s",
               7, 9,
               N.event_first ? "{\"event\":\"message\",\"id\":\"e0\"}\n" : "");
    write_str(conn, out);
  } else if (N.big > 0) {
    uint8_t *b = malloc(N.big + 1);
    int n = snprintf(out, sizeof(out), "{\"ok\":true,\"req\":\"%s\"}", req);
    memset(b, ' ', N.big);
    memcpy(b, out, (size_t)n);
    b[N.big] = '\n';
    ck_assert_int_eq(gv_agentsrv_write(N.srv, conn, b, N.big + 1), 0);
  } else if (!N.silent) {
    ck_assert_ptr_nonnull(req);
    snprintf(out, sizeof(out),
             "{\"event\":\"state\",\"id\":\"before-%s\"}\n"
             "{\"ok\":true,\"req\":\"%s\",\"cmd\":\"%s\"}\n",
             req, req, cmd);
    write_str(conn, out);
  }
  cJSON_Delete(o);
}

static void n_open(void *ctx, gv_rconn conn) {
  (void)ctx;
  (void)conn;
}
static void n_closed(void *ctx, gv_rconn conn) {
  (void)ctx;
  if (conn == N.conn)
    N.conn = 0;
}
static const gv_agentsrv_cbs ncbs = {n_open, n_line, n_closed};

static void c_state(void *ctx, bool up, const char *why) {
  char s[400];
  (void)ctx;
  if (up) {
    S.ups++;
    logf_("up");
    ck_assert_ptr_null(why);
    ck_assert_str_eq(gv_aclient_node(C), "0000000000000000000000000000000000"
                                         "000000000000000000000000000007");
  } else {
    S.downs++;
    snprintf(s, sizeof(s), "down:%s", why);
    logf_(s);
  }
}

static void c_event(void *ctx, const cJSON *ev) {
  char s[128];
  (void)ctx;
  S.events++;
  snprintf(s, sizeof(s), "ev:%s",
           cJSON_GetStringValue(cJSON_GetObjectItem(ev, "id")));
  logf_(s);
}

static const gv_aclient_cbs ccbs = {c_state, c_event};

static void c_answer(void *arg, const cJSON *a) {
  char s[128];
  if (a == NULL) {
    S.nulls++;
    snprintf(s, sizeof(s), "null:%s", (const char *)arg);
  } else {
    S.answers++;
    snprintf(s, sizeof(s), "ans:%s:%s", (const char *)arg,
             cJSON_GetStringValue(cJSON_GetObjectItem(a, "cmd")));
  }
  logf_(s);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump_until(const unsigned *n, unsigned want) {
  long long end = now_ms() + WAIT_MS;
  while (*n < want && now_ms() < end) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(500);
  }
  ck_assert_msg(*n >= want, "waited for %u, got %u; log %s", want, *n, S.log);
}

static void node_start(void) {
  gv_why why = {""};
  ck_assert_int_eq(
      gv_agentsrv_start(&N.srv, &loop, path, &ncbs, NULL, NULL, &why), 0);
}

static void node_stop(void) {
  gv_agentsrv_close(N.srv);
  N.srv = NULL;
}

static cJSON *req(const char *cmd) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cmd", cmd);
  return o;
}

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/gv-aclient-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/relay.sock", dir);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  memset(&N, 0, sizeof(N));
  memset(&S, 0, sizeof(S));
  C = NULL;
}

static void teardown(void) {
  gv_aclient_close(C);
  if (N.srv != NULL)
    node_stop();
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle closed */
  rmdir(dir);
}

START_TEST(test_no_node_then_node) {
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.downs, 1);
  ck_assert_ptr_nonnull(strstr(S.log, "down:no node is running"));
  ck_assert_ptr_nonnull(strstr(S.log, path));
  ck_assert(!gv_aclient_up(C));
  ck_assert_str_eq(gv_aclient_node(C), "");
  ck_assert_int_eq(gv_aclient_call(C, req("inbox"), c_answer, "x"), GV_ESTATE);
  usleep(300 * 1000); /* retries fail the same way: told once */
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_uint_eq(S.downs, 1);
  node_start(); /* the client finds it by itself */
  pump_until(&S.ups, 1);
  ck_assert(gv_aclient_up(C));
  ck_assert_str_eq(gv_aclient_as(C), "p:a");
}
END_TEST

START_TEST(test_answers_and_events_in_order) {
  node_start();
  N.event_first = true;
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.ups, 1);
  pump_until(&S.events, 1);
  ck_assert_int_eq(gv_aclient_call(C, req("inbox"), c_answer, "1"), 0);
  ck_assert_int_eq(gv_aclient_call(C, req("agents"), c_answer, "2"), 0);
  ck_assert_uint_eq(S.answers, 0); /* never from inside the call */
  pump_until(&S.answers, 2);
  ck_assert_str_eq(S.log, "up;ev:e0;ev:before-a1;ans:1:inbox;"
                          "ev:before-a2;ans:2:agents;");
}
END_TEST

START_TEST(test_drop_fails_pending_then_resumes) {
  node_start();
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.ups, 1);
  N.silent = true;
  ck_assert_int_eq(gv_aclient_call(C, req("send"), c_answer, "w"), 0);
  pump_until(&N.hellos, 1);
  uv_run(&loop, UV_RUN_NOWAIT);
  gv_agentsrv_hangup(N.srv, N.conn);
  pump_until(&S.downs, 1);
  ck_assert_str_eq(S.log, "up;null:w;down:the node closed the connection;");
  N.silent = false;
  pump_until(&S.ups, 2); /* back by itself, with the session token */
  ck_assert_uint_eq(N.hellos, 2);
  ck_assert_uint_eq(N.resumes, 1);
}
END_TEST

START_TEST(test_refused_hello) {
  node_start();
  N.refuse = "NAME_TAKEN";
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.downs, 1);
  ck_assert_ptr_nonnull(strstr(S.log, "down:the node refused p:a: "
                                      "NAME_TAKEN: taken;"));
  ck_assert_uint_eq(S.ups, 0);
  N.refuse = NULL; /* the other holder went away */
  pump_until(&S.ups, 1);
}
END_TEST

START_TEST(test_close_answers_pending_null) {
  node_start();
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.ups, 1);
  N.silent = true;
  ck_assert_int_eq(gv_aclient_call(C, req("send"), c_answer, "c"), 0);
  gv_aclient_close(C);
  C = NULL;
  ck_assert_str_eq(S.log, "up;null:c;"); /* and no "down" after close */
}
END_TEST

START_TEST(test_line_limits) {
  node_start();
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.ups, 1);
  N.big = GV_RREQ_ANSWER_MAX; /* the longest line the node may write */
  ck_assert_int_eq(gv_aclient_call(C, req("inbox"), c_answer, "b"), 0);
  pump_until(&S.answers, 1);
  N.big = GV_RREQ_ANSWER_MAX + 70000; /* past it: the connection drops */
  ck_assert_int_eq(gv_aclient_call(C, req("inbox"), c_answer, "c"), 0);
  pump_until(&S.downs, 1);
  ck_assert_ptr_nonnull(strstr(S.log, "null:c;down:the node sent a line "
                                      "longer than 8388608 bytes;"));
}
END_TEST

START_TEST(test_lost_while_greeting) {
  node_start();
  N.hangup_hello = true;
  ck_assert_int_eq(gv_aclient_start(&C, &loop, path, "p:a", &ccbs, NULL), 0);
  pump_until(&S.downs, 1);
  ck_assert_str_eq(S.log, "down:the node closed the connection;");
  ck_assert_int_eq(gv_aclient_call(C, req("inbox"), c_answer, "x"), GV_ESTATE);
  N.hangup_hello = false;
  pump_until(&S.ups, 1);
}
END_TEST

START_TEST(test_names) {
  char out[256];
  gv_why why = {""};

  unsetenv("GRAPEVINE_AS");
  ck_assert_int_eq(gv_aclient_name("web:alice", "x", out, sizeof(out), &why),
                   0);
  ck_assert_str_eq(out, "web:alice");
  ck_assert_int_eq(gv_aclient_name("no-colon", "x", out, sizeof(out), &why),
                   GV_EFIELD);
  ck_assert_str_ne(why.text, "");
  setenv("GRAPEVINE_AS", "api:bob", 1);
  ck_assert_int_eq(gv_aclient_name(NULL, "x", out, sizeof(out), &why), 0);
  ck_assert_str_eq(out, "api:bob");
  unsetenv("GRAPEVINE_AS");
  ck_assert_int_eq(chdir(dir), 0);
  ck_assert_int_eq(gv_aclient_name(NULL, "mcp", out, sizeof(out), &why), 0);
  ck_assert_str_eq(out + strlen(out) - 4, ":mcp");
  ck_assert_int_eq(strncmp(out, "gv-aclient-", 11), 0);
  ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("aclient");
  TCase *tc = tcase_create("aclient");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_no_node_then_node);
  tcase_add_test(tc, test_answers_and_events_in_order);
  tcase_add_test(tc, test_drop_fails_pending_then_resumes);
  tcase_add_test(tc, test_refused_hello);
  tcase_add_test(tc, test_close_answers_pending_null);
  tcase_add_test(tc, test_line_limits);
  tcase_add_test(tc, test_lost_while_greeting);
  tcase_add_test(tc, test_names);
  suite_add_tcase(s, tc);
  return tu_run(s);
}

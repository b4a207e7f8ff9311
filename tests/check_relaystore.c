/* The relay's store (node/relaystore.h): every row type through persist,
 * close, open and load, the load order, DROP, bounds and refusals, and
 * whole jobs surviving kill -9. Real files in a temp dir. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "relaystore.h"
#include "testutil.h"

static char dir[] = "/tmp/gv-check-rstore-XXXXXX";
static char path[256];
static uv_loop_t loop;

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/relay.db", dir);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char file[300];

  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
    unlink(file);
  }
  ck_assert_int_eq(rmdir(dir), 0);
  strcpy(dir, "/tmp/gv-check-rstore-XXXXXX");
}

static gv_rstore *open_q(uv_loop_t *lp, size_t queue_max) {
  gv_rstore *s;
  gv_why why = {{0}};
  int rc = gv__rstore_open(&s, lp, path, queue_max, &why);
  ck_assert_msg(rc == 0, "open: %d %s", rc, why.text);
  return s;
}

static gv_rstore *open_ok(void) { return open_q(&loop, 0); }

static void close_ok(gv_rstore *s) {
  gv_rstore_close(s);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}

/* ---- deterministic rows, zeroed first so they compare with memcmp ---- */

/* n >= 4 bytes: k (little-endian), then a pattern of k and tag. */
static void fill(uint8_t *p, size_t n, uint32_t k, uint8_t tag) {
  for (size_t i = 0; i < n; i++)
    p[i] = i < 4 ? (uint8_t)(k >> (8 * i)) : (uint8_t)(k * 31u + i * 7u + tag);
}

static uint32_t k_of(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

#define FAR_MS 4102444800000LL /* 2100-01-01 */

static gv_rrow msg_row(uint32_t k, bool inbound, const uint8_t *body,
                       size_t len) {
  gv_rrow r;
  gv_rmsg_row *m = &r.u.msg;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_MSG;
  m->key = 2ull * k + inbound + 1;
  fill(m->id, sizeof(m->id), k, 1);
  m->inbound = inbound;
  fill(m->team_id, sizeof(m->team_id), k, 2);
  fill(m->src, sizeof(m->src), k, 3);
  fill(m->dst, sizeof(m->dst), k, 4);
  snprintf(m->from, sizeof(m->from), "proj-%u:sender.%u", k, k);
  snprintf(m->to, sizeof(m->to), "proj-%u:rcpt_%u", k, k);
  snprintf(m->thread, sizeof(m->thread), "thread-%u", k);
  m->seq = (1ull << 63) + k; /* past INT64_MAX: the column is signed */
  m->created_ms = T0_MS + k;
  m->deadline_ms = FAR_MS + k; /* the load prunes rows a day past it */
  m->state = GV_RSTATE_ACCEPTED;
  m->body = body;
  m->body_len = len;
  return r;
}

static gv_rrow state_row(uint32_t k, bool inbound, gv_rstate st, gv_rfail why,
                         bool hop) {
  gv_rrow r;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_STATE;
  r.u.state.key = 2ull * k + inbound + 1; /* msg_row(k)'s */
  fill(r.u.state.id, sizeof(r.u.state.id), k, 1);
  r.u.state.inbound = inbound;
  r.u.state.state = st;
  r.u.state.reason = why;
  r.u.state.at_ms = T0_MS + 1000 * (int64_t)st + k;
  r.u.state.has_hop = hop;
  if (hop)
    fill(r.u.state.hop, sizeof(r.u.state.hop), k, 5);
  return r;
}

static gv_rrow cursor_row(uint32_t k, uint64_t seq) {
  gv_rrow r;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_CURSOR;
  snprintf(r.u.cursor.to, sizeof(r.u.cursor.to), "p:rcpt");
  fill(r.u.cursor.src, sizeof(r.u.cursor.src), 0, 6);
  snprintf(r.u.cursor.from, sizeof(r.u.cursor.from), "p:s%u", k);
  r.u.cursor.seq = seq;
  return r;
}

static gv_rrow agent_row(uint32_t k) {
  gv_rrow r;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_AGENT;
  fill(r.u.agent.team_id, sizeof(r.u.agent.team_id), 0, 7);
  snprintf(r.u.agent.agent.project, sizeof(r.u.agent.agent.project), "proj");
  snprintf(r.u.agent.agent.name, sizeof(r.u.agent.agent.name), "agent%u", k);
  return r;
}

static gv_rrow member_row(uint32_t k) {
  gv_rrow r;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_MEMBER;
  fill(r.u.member.team_id, sizeof(r.u.member.team_id), 0, 7);
  fill(r.u.member.node, sizeof(r.u.member.node), k, 8);
  return r;
}

static gv_rrow drop_row(uint32_t k, bool inbound) {
  gv_rrow r;

  memset(&r, 0, sizeof(r));
  r.type = GV_RROW_DROP;
  r.u.drop.key = 2ull * k + inbound + 1;
  fill(r.u.drop.id, sizeof(r.u.drop.id), k, 1);
  r.u.drop.inbound = inbound;
  return r;
}

/* ---- persisting and waiting for the callbacks ---- */

typedef struct calls {
  size_t n;
  uint64_t job[64];
  int status[64];
} calls;

static void on_done(void *ctx, uint64_t job, int status) {
  calls *c = ctx;
  ck_assert_uint_lt(c->n, 64);
  c->job[c->n] = job;
  c->status[c->n++] = status;
}

/* Persists one job and runs the loop until its callback; returns its
 * status. */
static int persist_wait(gv_rstore *s, uint64_t job, const gv_rrow *rows,
                        size_t n) {
  calls c = {0};

  ck_assert_int_eq(gv_rstore_persist(s, job, rows, n, on_done, &c), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(c.n, 1);
  ck_assert_uint_eq(c.job[0], job);
  return c.status[0];
}

#define PERSIST_OK(s, job, ...)                                                \
  do {                                                                         \
    const gv_rrow rows_[] = {__VA_ARGS__};                                     \
    ck_assert_int_eq(                                                          \
        persist_wait(s, job, rows_, sizeof(rows_) / sizeof(rows_[0])), 0);     \
  } while (0)

/* ---- loading into a list of deep copies ---- */

typedef struct got {
  size_t n;
  gv_rrow rows[64];
  uint8_t *bodies[64];
} got;

static void collect(void *ctx, const gv_rrow *row) {
  got *g = ctx;

  ck_assert_uint_lt(g->n, 64);
  g->rows[g->n] = *row;
  g->bodies[g->n] = NULL;
  if (row->type == GV_RROW_MSG && row->u.msg.body_len > 0) {
    ck_assert_ptr_nonnull(row->u.msg.body);
    g->bodies[g->n] = malloc(row->u.msg.body_len);
    ck_assert_ptr_nonnull(g->bodies[g->n]);
    memcpy(g->bodies[g->n], row->u.msg.body, row->u.msg.body_len);
    g->rows[g->n].u.msg.body = g->bodies[g->n];
  } else if (row->type == GV_RROW_MSG) {
    ck_assert_ptr_null(row->u.msg.body);
  }
  g->n++;
}

static void got_free(got *g) {
  for (size_t i = 0; i < g->n; i++)
    free(g->bodies[i]);
}

static void load_ok(gv_rstore *s, got *g) {
  gv_why why = {{0}};
  int rc;

  memset(g, 0, sizeof(*g));
  rc = gv_rstore_load(s, collect, g, &why);
  ck_assert_msg(rc == 0, "load: %d %s", rc, why.text);
}

/* Field for field: every field of the union member, the body by value. */
static void same_row(const gv_rrow *a, const gv_rrow *want, size_t i) {
  ck_assert_msg(a->type == want->type, "row %zu: type %d, want %d", i, a->type,
                want->type);
  if (a->type == GV_RROW_MSG) {
    gv_rmsg_row x = a->u.msg, y = want->u.msg;
    ck_assert_uint_eq(x.body_len, y.body_len);
    if (y.body_len > 0)
      ck_assert_msg(memcmp(x.body, y.body, y.body_len) == 0,
                    "row %zu: body differs", i);
    x.body = y.body = NULL;
    ck_assert_msg(memcmp(&x, &y, sizeof(x)) == 0, "row %zu: msg differs", i);
    return;
  }
  ck_assert_msg(memcmp(&a->u, &want->u, sizeof(a->u)) == 0,
                "row %zu (type %d) differs", i, a->type);
}

static void expect(gv_rstore *s, const gv_rrow *want, size_t n) {
  got g;

  load_ok(s, &g);
  ck_assert_uint_eq(g.n, n);
  for (size_t i = 0; i < n; i++)
    same_row(&g.rows[i], &want[i], i);
  got_free(&g);
}

static int64_t raw_int(const char *sql) {
  sqlite3 *h;
  sqlite3_stmt *st;
  int64_t v;

  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

static void raw_exec(const char *sql) {
  sqlite3 *h;

  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s",
                sql, sqlite3_errmsg(h));
  sqlite3_close(h);
}

/* ---- tests ---- */

START_TEST(test_every_row_round_trips) {
  static const uint8_t body[] = "sealed bytes \0 with a NUL inside";
  gv_rstore *s = open_ok();
  gv_rrow out1 = msg_row(1, false, body, sizeof(body));
  gv_rrow in1 = msg_row(1, true, NULL, 0); /* a skipped seq: no body */
  gv_rrow in2 = msg_row(2, true, body, 0); /* an empty body */

  in1.u.msg.state = GV_RSTATE_FAILED;
  in1.u.msg.reason = GV_RFAIL_EXPIRED;
  PERSIST_OK(s, 1, agent_row(1), member_row(1), out1, in1, cursor_row(1, 5));
  PERSIST_OK(s, 2, state_row(1, false, GV_RSTATE_SENT, GV_RFAIL_NONE, true),
             state_row(1, false, GV_RSTATE_STORED, GV_RFAIL_NONE, false),
             cursor_row(1, UINT64_MAX), agent_row(1), member_row(1),
             agent_row(2), in2);
  close_ok(s);

  s = open_ok();
  out1.u.msg.state = GV_RSTATE_STORED; /* its current state */
  {
    const gv_rrow want[] = {
        agent_row(1),
        agent_row(2),
        member_row(1),
        out1,
        state_row(1, false, GV_RSTATE_SENT, GV_RFAIL_NONE, true),
        state_row(1, false, GV_RSTATE_STORED, GV_RFAIL_NONE, false),
        in1,
        in2,
        cursor_row(1, UINT64_MAX),
    };
    expect(s, want, sizeof(want) / sizeof(want[0]));
  }
  /* The failed state and its reason travel through a STATE row too. */
  PERSIST_OK(s, 3,
             state_row(2, true, GV_RSTATE_FAILED, GV_RFAIL_NOT_IN_TEAM, true));
  close_ok(s);
  s = open_ok();
  {
    got g;
    load_ok(s, &g);
    ck_assert_uint_eq(g.n, 10);
    ck_assert_int_eq(g.rows[7].type, GV_RROW_MSG);
    ck_assert_int_eq(g.rows[7].u.msg.state, GV_RSTATE_FAILED);
    ck_assert_int_eq(g.rows[7].u.msg.reason, GV_RFAIL_NOT_IN_TEAM);
    gv_rrow st =
        state_row(2, true, GV_RSTATE_FAILED, GV_RFAIL_NOT_IN_TEAM, true);
    same_row(&g.rows[8], &st, 8);
    got_free(&g);
  }
  close_ok(s);
}
END_TEST

START_TEST(test_load_order_and_drop) {
  gv_rstore *s = open_ok();
  calls c = {0};
  /* Written interleaved, several jobs in flight at once. */
  const gv_rrow jobs[][2] = {
      {cursor_row(9, 1), msg_row(10, false, NULL, 0)},
      {msg_row(11, false, NULL, 0), agent_row(3)},
      {state_row(10, false, GV_RSTATE_SENT, 0, true), member_row(4)},
      {state_row(11, false, GV_RSTATE_SENT, 0, true), cursor_row(8, 2)},
      {state_row(10, false, GV_RSTATE_STORED, 0, false), agent_row(1)},
      {drop_row(11, false), msg_row(12, true, NULL, 0)},
      {drop_row(11, true), member_row(2)}, /* nothing to drop: no error */
  };
  const size_t n_jobs = sizeof(jobs) / sizeof(jobs[0]);

  for (size_t j = 0; j < n_jobs; j++)
    ck_assert_int_eq(gv_rstore_persist(s, 100 + j, jobs[j], 2, on_done, &c), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(c.n, n_jobs);
  for (size_t j = 0; j < n_jobs; j++) {
    ck_assert_uint_eq(c.job[j], 100 + j); /* in order */
    ck_assert_int_eq(c.status[j], 0);
  }
  close_ok(s);

  s = open_ok();
  {
    gv_rrow m10 = msg_row(10, false, NULL, 0);
    m10.u.msg.state = GV_RSTATE_STORED;
    const gv_rrow want[] = {
        agent_row(3),
        agent_row(1),
        member_row(4),
        member_row(2),
        m10,
        state_row(10, false, GV_RSTATE_SENT, 0, true),
        state_row(10, false, GV_RSTATE_STORED, 0, false),
        msg_row(12, true, NULL, 0),
        cursor_row(9, 1),
        cursor_row(8, 2),
    };
    expect(s, want, sizeof(want) / sizeof(want[0]));
  }
  /* The DROP forgot message 11 and its trace... */
  ck_assert_int_eq(raw_int("SELECT count(*) FROM msgs"), 2);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM trace"), 2);
  /* ...so the id can be stored again, under a new key (the core's next):
   * after the others, with no trace. */
  gv_rrow m11 = msg_row(11, false, NULL, 0);
  m11.u.msg.key = 1000;
  PERSIST_OK(s, 200, m11);
  {
    got g;
    load_ok(s, &g);
    ck_assert_uint_eq(g.n, 11);
    same_row(&g.rows[8], &m11, 8);
    ck_assert_int_eq(g.rows[9].type, GV_RROW_CURSOR);
    got_free(&g);
  }
  close_ok(s);
}
END_TEST

/* A message a day past its deadline is gone at the next load, with its
 * trace and body; one within the day stays. */
START_TEST(test_load_prunes_the_long_dead) {
  gv_rstore *s = open_ok();
  const uint8_t body[3] = {1, 2, 3};
  gv_rrow dead = msg_row(1, true, body, sizeof(body));
  gv_rrow late = msg_row(2, true, body, sizeof(body));
  int64_t now = (int64_t)time(NULL) * 1000;
  got g;

  dead.u.msg.deadline_ms = now - 2 * 86400000LL;
  late.u.msg.deadline_ms = now - 3600000LL;
  PERSIST_OK(s, 1, dead, state_row(1, true, GV_RSTATE_DELIVERED, 0, false),
             late);
  close_ok(s);
  s = open_ok();
  load_ok(s, &g);
  ck_assert_uint_eq(g.n, 1);
  same_row(&g.rows[0], &late, 0);
  got_free(&g);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM trace"), 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM bodies"), 1);
  close_ok(s);
}
END_TEST

START_TEST(test_failing_jobs_and_bad_rows) {
  gv_rstore *s = open_ok();
  calls c = {0};
  gv_rrow bad;

  PERSIST_OK(s, 1, msg_row(1, false, NULL, 0));
  /* A duplicate key fails its whole job, alone. */
  {
    const gv_rrow dup[] = {agent_row(9), msg_row(1, false, NULL, 0)};
    ck_assert_int_eq(persist_wait(s, 2, dup, 2), GV_EINVAL);
  }
  /* The same id the other way is another message. */
  PERSIST_OK(s, 3, msg_row(1, true, NULL, 0));
  /* A STATE for a message that is not stored. */
  {
    const gv_rrow st[] = {member_row(9),
                          state_row(7, false, GV_RSTATE_SENT, 0, false)};
    ck_assert_int_eq(persist_wait(s, 4, st, 2), GV_EINVAL);
  }
  ck_assert_int_eq(raw_int("SELECT count(*) FROM agents"), 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM members"), 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM trace"), 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM msgs"), 2);

  /* Refused at once; done is never called. */
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 0, on_done, &c), GV_EINVAL);
  bad = msg_row(2, false, NULL, 0);
  bad.type = (gv_rrow_type)42;
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  bad = msg_row(2, false, NULL, 0);
  memset(bad.u.msg.to, 'x', sizeof(bad.u.msg.to)); /* no NUL */
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  bad = msg_row(2, false, NULL, 5);
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  bad = msg_row(2, false, NULL, 0);
  bad.u.msg.state = (gv_rstate)6;
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  bad = state_row(1, false, GV_RSTATE_SENT, (gv_rfail)9, false);
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  bad = agent_row(1);
  memset(bad.u.agent.agent.name, 'n', sizeof(bad.u.agent.agent.name));
  ck_assert_int_eq(gv_rstore_persist(s, 5, &bad, 1, on_done, &c), GV_EINVAL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(c.n, 0);
  close_ok(s);
}
END_TEST

START_TEST(test_one_mib_body) {
  size_t max = GV_RW_PAYLOAD_MAX;
  uint8_t *body = malloc(max + 1);
  gv_rstore *s = open_ok();
  gv_rrow m;
  calls c = {0};

  ck_assert_ptr_nonnull(body);
  randombytes_buf(body, max + 1);
  m = msg_row(1, true, body, max + 1);
  ck_assert_int_eq(gv_rstore_persist(s, 1, &m, 1, on_done, &c), GV_ETOOBIG);
  m = msg_row(1, true, body, max);
  ck_assert_int_eq(persist_wait(s, 1, &m, 1), 0);
  close_ok(s);
  s = open_ok();
  expect(s, &m, 1);
  close_ok(s);
  ck_assert_uint_eq(c.n, 0);
  free(body);
}
END_TEST

START_TEST(test_busy_when_queue_full) {
  gv_rstore *s = open_q(&loop, 2);
  gv_rrow r[3] = {member_row(1), member_row(2), member_row(3)};
  calls c = {0};

  /* Room comes back only when the loop delivers the callbacks. */
  ck_assert_int_eq(gv_rstore_persist(s, 1, &r[0], 1, on_done, &c), 0);
  ck_assert_int_eq(gv_rstore_persist(s, 2, &r[1], 1, on_done, &c), 0);
  ck_assert_int_eq(gv_rstore_persist(s, 3, &r[2], 1, on_done, &c), GV_EBUSY);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(c.n, 2);
  ck_assert_int_eq(gv_rstore_persist(s, 3, &r[2], 1, on_done, &c), 0);
  /* Close commits what is queued and calls back. */
  close_ok(s);
  ck_assert_uint_eq(c.n, 3);
  ck_assert_uint_eq(c.job[2], 3);
  ck_assert_int_eq(c.status[2], 0);
  ck_assert_int_eq(raw_int("SELECT count(*) FROM members"), 3);
}
END_TEST

START_TEST(test_refuses_other_files) {
  gv_rstore *s = open_ok();
  gv_why why = {{0}};

  close_ok(s);
  raw_exec("PRAGMA user_version = 7");
  ck_assert_int_eq(gv_rstore_open(&s, &loop, path, &why), GV_EVERSION);
  ck_assert_ptr_null(s);
  ck_assert_msg(strstr(why.text, path) != NULL &&
                    strstr(why.text, "version 7") != NULL &&
                    strstr(why.text, "not migrated") != NULL,
                "reason: %s", why.text);
  ck_assert_int_eq(raw_int("PRAGMA user_version"), 7); /* left as it was */
  raw_exec("PRAGMA user_version = 2");
  s = open_ok(); /* the right version opens again */
  close_ok(s);

  /* A SQLite file of someone else's. */
  raw_exec("PRAGMA application_id = 0; PRAGMA user_version = 0");
  ck_assert_int_eq(gv_rstore_open(&s, &loop, path, &why), GV_EINVAL);
  ck_assert_msg(strstr(why.text, "not a Grapevine relay database") != NULL,
                "reason: %s", why.text);
  ck_assert_int_eq(gv_rstore_open(&s, &loop, NULL, &why), GV_EINVAL);
}
END_TEST

START_TEST(test_malformed_row_stops_load) {
  gv_rstore *s = open_ok();
  gv_why why = {{0}};
  got g;

  PERSIST_OK(s, 1, msg_row(1, false, NULL, 0), member_row(1));
  close_ok(s);
  /* Only another writer can do this: our CHECKs refuse it. */
  raw_exec("PRAGMA ignore_check_constraints = ON;"
           " UPDATE msgs SET id = x'0102'");
  s = open_ok();
  memset(&g, 0, sizeof(g));
  ck_assert_int_eq(gv_rstore_load(s, collect, &g, &why), GV_EINVAL);
  ck_assert_msg(strstr(why.text, "msgs row 3: malformed id") != NULL,
                "reason: %s", why.text);
  ck_assert_uint_eq(g.n, 1); /* the member came before */
  got_free(&g);
  close_ok(s);
}
END_TEST

/* ---- kill -9 ---- */

#define KILL_JOBS 200000
#define KILL_WINDOW 32 /* jobs in flight in the child */
#define KILL_ROWS 5    /* rows per job */

typedef struct child {
  gv_rstore *s;
  int fd;
  uint32_t next;
  uint8_t body[512];
} child;

static void child_submit(child *c);

static void kill_done(void *ctx, uint64_t job, int status) {
  child *c = ctx;
  char line[32];
  int n;

  if (status != 0)
    _exit(4);
  n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)job);
  if (write(c->fd, line, (size_t)n) != n)
    _exit(5);
  child_submit(c);
}

/* Job k: message k sent then stored, member k, the cursor of sender k. */
static void child_submit(child *c) {
  uint32_t k = c->next++;
  gv_rrow rows[KILL_ROWS];

  if (k >= KILL_JOBS)
    return;
  fill(c->body, sizeof(c->body), k, 9);
  rows[0] = msg_row(k, false, c->body, sizeof(c->body));
  rows[1] = state_row(k, false, GV_RSTATE_SENT, 0, true);
  rows[2] = state_row(k, false, GV_RSTATE_STORED, 0, false);
  rows[3] = member_row(k);
  rows[4] = cursor_row(k, k);
  if (gv_rstore_persist(c->s, k, rows, KILL_ROWS, kill_done, c) < 0)
    _exit(3);
}

static void child_run(int fd) {
  static child c;
  uv_loop_t lp;

  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
    _exit(6); /* never outlive a failed test */
  if (uv_loop_init(&lp) < 0)
    _exit(2);
  c.s = open_q(&lp, 0);
  c.fd = fd;
  for (int i = 0; i < KILL_WINDOW; i++)
    child_submit(&c);
  uv_run(&lp, UV_RUN_DEFAULT);
  _exit(7); /* never reached before the kill */
}

/* Reads acknowledged job numbers from fd into acked; stops at want lines
 * (if > 0) or at EOF. Every read is bounded by a 10 s poll. */
static int read_acks(int fd, unsigned char *acked, int want) {
  static char part[16];
  static size_t plen;
  char buf[4096];
  int lines = 0;

  while (want <= 0 || lines < want) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    if ((n = read(fd, buf, sizeof(buf))) <= 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        ck_assert_uint_lt(plen, 15);
        part[plen++] = buf[i];
        continue;
      }
      part[plen] = '\0';
      long k = strtol(part, NULL, 10);
      ck_assert(k >= 0 && k < KILL_JOBS);
      acked[k] = 1;
      plen = 0;
      lines++;
    }
  }
  return lines;
}

/* What the load found of each job: bits of the rows seen. */
enum {
  HAS_MSG = 1,
  HAS_SENT = 2,
  HAS_STORED = 4,
  HAS_MEMBER = 8,
  HAS_CURSOR = 16,
  HAS_ALL = 31
};

typedef struct kseen {
  unsigned char *bits;
  uint32_t last_msg; /* the job of the MSG row just loaded */
  int bad;           /* rows that match no job, differ from it, or come
                        out of order */
} kseen;

/* Checks one loaded row against the job it names; sets its bit. */
static void kill_collect(void *ctx, const gv_rrow *row) {
  kseen *ks = ctx;
  uint8_t body[512];
  gv_rrow want;
  uint32_t k;

  switch (row->type) {
  case GV_RROW_MSG:
    k = k_of(row->u.msg.id);
    if (k >= KILL_JOBS)
      break;
    fill(body, sizeof(body), k, 9);
    want = msg_row(k, false, body, sizeof(body));
    want.u.msg.state = GV_RSTATE_STORED;
    if (row->u.msg.body_len != sizeof(body) ||
        memcmp(row->u.msg.body, body, sizeof(body)) != 0)
      break;
    want.u.msg.body = row->u.msg.body;
    if (memcmp(&want.u.msg, &row->u.msg, sizeof(want.u.msg)) != 0)
      break;
    ks->last_msg = k;
    ks->bits[k] |= HAS_MSG;
    return;
  case GV_RROW_STATE:
    k = k_of(row->u.state.id);
    if (k != ks->last_msg) /* a trace follows its message */
      break;
    want = state_row(k, false, row->u.state.state, 0, row->u.state.has_hop);
    if (memcmp(&want.u.state, &row->u.state, sizeof(want.u.state)) != 0 ||
        row->u.state.has_hop != (row->u.state.state == GV_RSTATE_SENT))
      break;
    ks->bits[k] |= row->u.state.state == GV_RSTATE_SENT ? HAS_SENT : HAS_STORED;
    return;
  case GV_RROW_MEMBER:
    k = k_of(row->u.member.node);
    want = member_row(k);
    if (k >= KILL_JOBS ||
        memcmp(&want.u.member, &row->u.member, sizeof(want.u.member)) != 0)
      break;
    ks->bits[k] |= HAS_MEMBER;
    return;
  case GV_RROW_CURSOR:
    k = (uint32_t)row->u.cursor.seq;
    want = cursor_row(k, k);
    if (k >= KILL_JOBS ||
        memcmp(&want.u.cursor, &row->u.cursor, sizeof(want.u.cursor)) != 0)
      break;
    ks->bits[k] |= HAS_CURSOR;
    return;
  default: break;
  }
  ks->bad++;
}

START_TEST(test_kill9_whole_jobs) {
  static unsigned char acked[KILL_JOBS], bits[KILL_JOBS];
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  int fds[2], status, want, acks = 0, present = 0;
  kseen ks = {bits, UINT32_MAX, 0};
  gv_rstore *s;
  gv_why why = {{0}};
  pid_t pid;

  srand(seed);
  want = 100 + rand() % 1400; /* the random moment: after this many acks */
  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_run(fds[1]);
  }
  close(fds[1]);
  ck_assert_int_ge(read_acks(fds[0], acked, want), want);
  usleep((useconds_t)(rand() % 5000)); /* mid-transaction, most likely */
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  read_acks(fds[0], acked, 0); /* acks written before death */
  close(fds[0]);

  /* Load only: no loop. */
  ck_assert_int_eq(gv_rstore_open(&s, NULL, path, &why), 0);
  ck_assert_int_eq(gv_rstore_load(s, kill_collect, &ks, &why), 0);
  gv_rstore_close(s);
  ck_assert_msg(ks.bad == 0, "seed %u: %d rows not of any job", seed, ks.bad);
  for (uint32_t k = 0; k < KILL_JOBS; k++) {
    acks += acked[k];
    ck_assert_msg(!acked[k] || bits[k] == HAS_ALL,
                  "seed %u: acknowledged job %u has rows %#x of %#x", seed, k,
                  bits[k], HAS_ALL);
    ck_assert_msg(bits[k] == 0 || bits[k] == HAS_ALL,
                  "seed %u: job %u half present (rows %#x)", seed, k, bits[k]);
    /* Jobs commit in order: what is present is a prefix. */
    ck_assert_msg(bits[k] == 0 || k == 0 || bits[k - 1] == HAS_ALL,
                  "seed %u: job %u present after a missing one", seed, k);
    present += bits[k] != 0;
  }
  ck_assert_int_ge(acks, want);
  ck_assert_int_ge(present, acks);
}
END_TEST

static Suite *rstore_suite(void) {
  Suite *s = suite_create("relaystore");
  TCase *tc = tcase_create("relaystore");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_every_row_round_trips);
  tcase_add_test(tc, test_load_order_and_drop);
  tcase_add_test(tc, test_load_prunes_the_long_dead);
  tcase_add_test(tc, test_failing_jobs_and_bad_rows);
  tcase_add_test(tc, test_one_mib_body);
  tcase_add_test(tc, test_busy_when_queue_full);
  tcase_add_test(tc, test_refuses_other_files);
  tcase_add_test(tc, test_malformed_row_stops_load);
  tcase_add_test(tc, test_kill9_whole_jobs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(rstore_suite()); }

/* The relay core (node/relay.h) under a fake clock: a few cores wired back
 * to back through their channel-2 services, a fake store that keeps the
 * rows as node/relaystore.c would and commits when told, and agents that
 * are request lines in and answer lines out. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"
#include "testutil.h"

#define MAXN 4
#define SEC 1000LL

typedef struct line {
  gv_rconn conn;
  char *text;
} line;

typedef struct pkt {
  int from, to;
  uint8_t *data;
  size_t len;
} pkt;

typedef struct tnode {
  gv_relay *r;
  gv_relay_cfg cfg;
  gv_identity id;
  uint8_t team[GV_RW_KEY_BYTES];
  bool broadcasting;
  uint8_t relays[GV_RELAY_RELAYS_MAX][GV_ID_BYTES];
  size_t n_relays;
  gv_rrow *rows; /* the fake store, in write order */
  size_t n_rows, cap_rows;
  uint64_t *jobs; /* emitted, not committed */
  size_t n_jobs, cap_jobs;
  bool hold_commits;
  line *lines;
  size_t n_lines, cap_lines;
  unsigned dials, hangups;
  uint8_t dialed[GV_ID_BYTES]; /* the node the last DIAL asked for */
  bool held[MAXN];             /* the relay holds its link to node j */
} tnode;

static tnode N[MAXN];
static int nn;
static bool up_[MAXN][MAXN], drop_[MAXN][MAXN];
static unsigned sends_[MAXN][MAXN]; /* packets node i sent on its link to j */
static pkt *net;
static size_t n_net, cap_net;

#define GROW(p, n, cap)                                                        \
  do {                                                                         \
    if ((n) == (cap)) {                                                        \
      (cap) = (cap) ? 2 * (cap) : 16;                                          \
      (p) = realloc((p), (cap) * sizeof(*(p)));                                \
      ck_assert_ptr_nonnull(p);                                                \
    }                                                                          \
  } while (0)

static void rnd(void *ctx, uint8_t *buf, size_t n) {
  (void)ctx;
  randombytes_buf(buf, n);
}

static int node_of(const uint8_t *id) {
  for (int i = 0; i < nn; i++)
    if (memcmp(N[i].id.pk, id, GV_ID_BYTES) == 0)
      return i;
  return -1;
}

/* What gossip would say: every test node is known. */
static bool route_cb(void *ctx, const uint8_t id[GV_ID_BYTES], gv_rroute *out) {
  int i = node_of(id);

  (void)ctx;
  if (i < 0)
    return false;
  out->known = true;
  out->broadcasting = N[i].broadcasting;
  gv_addr_parse(&out->addr, "127.0.0.1:7001", 14);
  out->n_relays = N[i].n_relays;
  memcpy(out->relays, N[i].relays, sizeof(out->relays));
  return true;
}

/* ---- the fake store: MSG rows hold the current state (relaystore.c) ---- */

static gv_rrow *row_copy(const gv_rrow *w) {
  static gv_rrow c;
  c = *w;
  if (w->type == GV_RROW_MSG) {
    uint8_t *b = malloc(w->u.msg.body_len + 1);
    memcpy(b, w->u.msg.body ? w->u.msg.body : (const uint8_t *)"",
           w->u.msg.body_len);
    c.u.msg.body = b;
  }
  return &c;
}

static bool same_msg(const gv_rrow *a, const uint8_t *id, bool inbound) {
  return a->type == GV_RROW_MSG && a->u.msg.inbound == inbound &&
         memcmp(a->u.msg.id, id, GV_RW_ID_BYTES) == 0;
}

static void store_rows(tnode *t, const gv_rrow *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const gv_rrow *w = &rows[i];
    if (w->type == GV_RROW_STATE)
      for (size_t k = 0; k < t->n_rows; k++)
        if (same_msg(&t->rows[k], w->u.state.id, w->u.state.inbound)) {
          t->rows[k].u.msg.state = w->u.state.state;
          t->rows[k].u.msg.reason = w->u.state.reason;
        }
    if (w->type == GV_RROW_DROP) {
      size_t k2 = 0;
      for (size_t k = 0; k < t->n_rows; k++) {
        gv_rrow *x = &t->rows[k];
        bool gone = same_msg(x, w->u.drop.id, w->u.drop.inbound) ||
                    (x->type == GV_RROW_STATE &&
                     x->u.state.inbound == w->u.drop.inbound &&
                     memcmp(x->u.state.id, w->u.drop.id, GV_RW_ID_BYTES) == 0);
        if (gone && x->type == GV_RROW_MSG)
          free((void *)x->u.msg.body);
        if (!gone)
          t->rows[k2++] = *x;
      }
      t->n_rows = k2;
      continue;
    }
    GROW(t->rows, t->n_rows, t->cap_rows);
    t->rows[t->n_rows++] = *row_copy(w);
  }
}

static size_t count_rows(const tnode *t, gv_rrow_type type) {
  size_t n = 0;
  for (size_t i = 0; i < t->n_rows; i++)
    n += t->rows[i].type == type;
  return n;
}

/* Loads rows back in relaystore's order: agents, members, each message
 * with its trace, cursors (the last of each). */
static void store_load(tnode *t) {
  const gv_rrow_type first[] = {GV_RROW_AGENT, GV_RROW_MEMBER};
  for (size_t f = 0; f < 2; f++)
    for (size_t i = 0; i < t->n_rows; i++)
      if (t->rows[i].type == first[f])
        gv_relay_load(t->r, &t->rows[i]);
  for (size_t i = 0; i < t->n_rows; i++) {
    const gv_rrow *m = &t->rows[i];
    if (m->type != GV_RROW_MSG)
      continue;
    gv_relay_load(t->r, m);
    for (size_t k = 0; k < t->n_rows; k++)
      if (t->rows[k].type == GV_RROW_STATE &&
          t->rows[k].u.state.inbound == m->u.msg.inbound &&
          memcmp(t->rows[k].u.state.id, m->u.msg.id, GV_RW_ID_BYTES) == 0)
        gv_relay_load(t->r, &t->rows[k]);
  }
  for (size_t i = 0; i < t->n_rows; i++)
    if (t->rows[i].type == GV_RROW_CURSOR)
      gv_relay_load(t->r, &t->rows[i]);
}

/* ---- the harness ---- */

static void check_core(const tnode *t) {
  gv_why why = {{0}};
  ck_assert_msg(gv_relay_check(t->r, &why) == 0, "invariant: %s", why.text);
}

static void drain(int i, int64_t now) {
  tnode *t = &N[i];
  gv_ract a;
  int j;

  (void)now;
  if (t->r == NULL)
    return; /* not started yet */
  while (gv_relay_next(t->r, &a)) {
    switch (a.type) {
    case GV_RACT_SEND:
      j = (int)a.link - 1;
      ck_assert(j >= 0 && j < nn && up_[i][j]);
      ck_assert_uint_eq(a.data[0], GV_CHAN_RELAY);
      sends_[i][j]++;
      if (drop_[i][j])
        break; /* lost: freed below */
      GROW(net, n_net, cap_net);
      net[n_net++] = (pkt){i, j, a.data, a.len};
      a.data = NULL;
      break;
    case GV_RACT_PERSIST:
      store_rows(t, a.rows, a.n_rows);
      GROW(t->jobs, t->n_jobs, t->cap_jobs);
      t->jobs[t->n_jobs++] = a.job;
      break;
    case GV_RACT_LINE:
      ck_assert_uint_eq(a.data[a.len - 1], '\n');
      GROW(t->lines, t->n_lines, t->cap_lines);
      t->lines[t->n_lines++] = (line){a.conn, (char *)a.data};
      a.data = NULL;
      break;
    case GV_RACT_DIAL:
      t->dials++;
      memcpy(t->dialed, a.peer, GV_ID_BYTES);
      break;
    case GV_RACT_HANGUP: t->hangups++; break;
    case GV_RACT_HOLD:
    case GV_RACT_RELEASE:
      j = (int)a.link - 1;
      ck_assert(j >= 0 && j < nn && up_[i][j]);
      t->held[j] = a.type == GV_RACT_HOLD;
      break;
    case GV_RACT_RELAYS:
      t->n_relays = a.n_relays;
      memcpy(t->relays, a.relays, a.n_relays * GV_ID_BYTES);
      break;
    default: break;
    }
    free(a.data);
  }
}

/* Runs every core until nothing moves: actions, packets, commits. */
static void pump(int64_t now) {
  for (int round = 0; round < 10000; round++) {
    bool moved = false;
    for (int i = 0; i < nn; i++)
      drain(i, now);
    while (n_net > 0) {
      pkt p = net[0];
      gv_why why = {{0}};
      memmove(net, net + 1, (--n_net) * sizeof(*net));
      if (up_[p.to][p.from]) {
        const gv_service *s = gv_relay_service(N[p.to].r);
        int rc = s->recv(s->ctx, (gv_linkid)(p.from + 1), p.data + 1, p.len - 1,
                         now, &why);
        ck_assert_msg(rc == 0, "recv: %s", why.text);
      }
      free(p.data);
      drain(p.to, now);
      moved = true;
    }
    for (int i = 0; i < nn; i++) {
      tnode *t = &N[i];
      if (t->r == NULL)
        continue;
      while (!t->hold_commits && t->n_jobs > 0) {
        uint64_t job = t->jobs[0];
        memmove(t->jobs, t->jobs + 1, (--t->n_jobs) * sizeof(*t->jobs));
        gv_relay_committed(t->r, job, 0, now);
        drain(i, now);
        moved = true;
      }
      check_core(t);
    }
    if (!moved)
      return;
  }
  ck_abort_msg("pump: the cores never settled");
}

static void tick(int64_t now) {
  for (int i = 0; i < nn; i++)
    if (N[i].r != NULL && gv_relay_expiry(N[i].r) <= now)
      gv_relay_tick(N[i].r, now);
  pump(now);
}

static void start(int i, int64_t now) {
  tnode *t = &N[i];
  ck_assert_int_eq(gv_relay_new(&t->r, &t->cfg, &t->id, now), 0);
  gv_relay_set_wall(t->r, T0_MS);
  /* Every node joined with a token node 0 printed, as after `team join`. */
  ck_assert_int_eq(
      gv_relay_team_add(t->r, t->team, i > 0 ? N[0].id.pk : NULL, now), 0);
  store_load(t);
  gv_relay_loaded(t->r, now);
  pump(now);
}

/* n nodes, all broadcasting, all in one team, none linked yet. */
static void setup_n(int n) {
  uint8_t T[GV_RW_KEY_BYTES];

  ck_assert_int_ge(sodium_init(), 0);
  memset(N, 0, sizeof(N));
  memset(up_, 0, sizeof(up_));
  memset(drop_, 0, sizeof(drop_));
  memset(sends_, 0, sizeof(sends_));
  nn = n;
  randombytes_buf(T, sizeof(T));
  for (int i = 0; i < n; i++) {
    tnode *t = &N[i];
    tu_identity(&t->id, (uint8_t)(0x41 + i));
    gv_relay_cfg_default(&t->cfg);
    t->cfg.random = rnd;
    t->cfg.route = route_cb;
    t->cfg.ctx = t;
    t->broadcasting = true;
    memcpy(t->team, T, sizeof(T));
  }
}

static void teardown_all(void) {
  for (int i = 0; i < nn; i++) {
    tnode *t = &N[i];
    gv_relay_free(t->r);
    for (size_t k = 0; k < t->n_rows; k++)
      if (t->rows[k].type == GV_RROW_MSG)
        free((void *)t->rows[k].u.msg.body);
    free(t->rows);
    free(t->jobs);
    for (size_t k = 0; k < t->n_lines; k++)
      free(t->lines[k].text);
    free(t->lines);
  }
  for (size_t k = 0; k < n_net; k++)
    free(net[k].data);
  free(net);
  net = NULL;
  n_net = cap_net = 0;
}

/* Restarts node i from its store, as after kill -9 (lines and in-flight
 * packets of the old process are gone; uncommitted jobs are lost). */
static void restart(int i, int64_t now) {
  tnode *t = &N[i];
  gv_relay_free(t->r);
  t->r = NULL;
  t->n_jobs = 0;
  for (int j = 0; j < nn; j++)
    up_[i][j] = up_[j][i] = false;
  start(i, now);
}

static void link_up(int a, int b, int64_t now) {
  const gv_service *sa = gv_relay_service(N[a].r);
  const gv_service *sb = gv_relay_service(N[b].r);

  up_[a][b] = up_[b][a] = true;
  N[a].held[b] =
      sa->up(sa->ctx, (gv_linkid)(b + 1), N[b].id.pk, true, NULL, NULL, now);
  drain(a, now); /* a silent dialer's RELAYS: what b's gossip would tell */
  N[b].held[a] =
      sb->up(sb->ctx, (gv_linkid)(a + 1), N[a].id.pk, false, NULL, NULL, now);
  pump(now);
}

/* The link between a and b ends, for the reasons each end's link core
 * gives. */
static void link_end(int a, int b, gv_close why_a, gv_close why_b,
                     int64_t now) {
  const gv_service *sa = gv_relay_service(N[a].r);
  const gv_service *sb = gv_relay_service(N[b].r);

  up_[a][b] = up_[b][a] = false;
  N[a].held[b] = N[b].held[a] = false;
  sa->down(sa->ctx, (gv_linkid)(b + 1), why_a, now);
  sb->down(sb->ctx, (gv_linkid)(a + 1), why_b, now);
  pump(now);
}

static void link_down(int a, int b, int64_t now) {
  link_end(a, b, GV_CLOSE_SHUTDOWN, GV_CLOSE_SHUTDOWN, now);
}

/* b evicted a's link (its inbound slots full): a hears a goodbye. */
static void link_lost(int a, int b, int64_t now) {
  link_end(a, b, GV_CLOSE_GOODBYE, GV_CLOSE_EVICTED, now);
}

/* Agent requests: conn c on node i. */
static void req(int i, gv_rconn c, int64_t now, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  gv_relay_conn_line(N[i].r, c, buf, (size_t)n, now);
  pump(now);
}

static void open_agent(int i, gv_rconn c, const char *as, int64_t now) {
  gv_relay_conn_open(N[i].r, c, now);
  req(i, c, now, "{\"cmd\":\"hello\",\"as\":\"%s\"}", as);
}

/* How many lines to conn c on node i contain s. */
static int count_lines(int i, gv_rconn c, const char *s) {
  int n = 0;
  for (size_t k = 0; k < N[i].n_lines; k++)
    if (N[i].lines[k].conn == c && strstr(N[i].lines[k].text, s) != NULL)
      n++;
  return n;
}

/* The last line to conn c on node i, "" if none. */
static const char *last_line(int i, gv_rconn c) {
  for (size_t k = N[i].n_lines; k > 0; k--)
    if (N[i].lines[k - 1].conn == c)
      return N[i].lines[k - 1].text;
  return "";
}

/* The 32-hex id in the last line to c that has "id". */
static void last_id(int i, gv_rconn c, char out[33]) {
  const char *l = last_line(i, c), *p = strstr(l, "\"id\":\"");
  ck_assert_msg(p != NULL, "no id in: %s", l);
  memcpy(out, p + 6, 32);
  out[32] = '\0';
}

/* Two nodes A (web:alice) and B (api:bob), linked, directories exchanged. */
static void two(int64_t now) {
  setup_n(2);
  start(0, now);
  start(1, now);
  link_up(0, 1, now);
  open_agent(0, 1, "web:alice", now);
  open_agent(1, 1, "api:bob", now);
  pump(now);
}

START_TEST(test_send_every_state) {
  char id[33], want[64];
  int64_t now = 0;

  two(now);
  ck_assert_int_eq(count_lines(0, 1, "\"session\""), 1);
  req(0, 1, now, "{\"cmd\":\"subscribe\"}");
  req(0, 1, now, "{\"cmd\":\"agents\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "api:bob@"));
  req(0, 1, now,
      "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"hi bob\","
      "\"thread\":\"t1\",\"req\":\"r1\"}");
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"accepted\""), 1);
  ck_assert_int_eq(count_lines(0, 1, "\"req\":\"r1\""), 1);
  last_id(0, 1, id);
  for (size_t k = 0; k < N[0].n_lines; k++)
    if (strstr(N[0].lines[k].text, "accepted"))
      ck_assert_ptr_nonnull(strstr(N[0].lines[k].text, id));
  /* Bob has it, pushed, once, with its thread and sender. */
  ck_assert_int_eq(count_lines(1, 1, "\"event\":\"message\""), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"hi bob\""), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"thread\":\"t1\""), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"from\":\"web:alice@"), 1);
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"sent\""), 1);
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"stored\""), 1);
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"delivered\""), 0);
  snprintf(want, sizeof(want), "{\"cmd\":\"ack\",\"ids\":[\"%s\"]}", id);
  req(1, 1, now, "%s", want);
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"delivered\""), 1);
  req(1, 1, now, "{\"cmd\":\"read\",\"ids\":[\"%s\"]}", id);
  ck_assert_int_eq(count_lines(0, 1, "\"state\":\"read\""), 1);
  req(0, 1, now, "{\"cmd\":\"status\",\"id\":\"%s\"}", id);
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "\"state\":\"read\""));
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "\"hop\""));
  /* The store holds one outbox and one inbox row, a cursor at 1. */
  ck_assert_uint_eq(count_rows(&N[0], GV_RROW_MSG), 1);
  ck_assert_uint_eq(count_rows(&N[1], GV_RROW_MSG), 1);
  ck_assert_uint_eq(count_rows(&N[1], GV_RROW_CURSOR), 1);
  teardown_all();
}
END_TEST

/* Nothing is acknowledged before its commit. */
START_TEST(test_accepted_only_after_commit) {
  int64_t now = 0;

  two(now);
  N[0].hold_commits = true;
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"x\"}");
  ck_assert_int_eq(count_lines(0, 1, "accepted"), 0);
  ck_assert_int_eq(count_lines(1, 1, "\"event\""), 0);
  N[0].hold_commits = false;
  pump(now);
  ck_assert_int_eq(count_lines(0, 1, "accepted"), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"event\":\"message\""), 1);
  teardown_all();
}
END_TEST

START_TEST(test_names_and_errors) {
  char tok[65];
  const char *l, *p;
  int64_t now = 0;

  two(now);
  open_agent(1, 2, "web:bob", now); /* a second bob, other project */
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"x\"}");
  l = last_line(0, 1);
  ck_assert_ptr_nonnull(strstr(l, "\"error\":\"AMBIGUOUS\""));
  ck_assert_ptr_nonnull(strstr(l, "api:bob@"));
  ck_assert_ptr_nonnull(strstr(l, "web:bob@"));
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"x\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "UNKNOWN_RECIPIENT"));
  /* The project is never dropped. */
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"ops:bob\",\"message\":\"x\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "UNKNOWN_RECIPIENT"));
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"api:bob\",\"message\":\"x\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "accepted"));
  ck_assert_int_eq(count_lines(1, 2, "\"event\":\"message\""), 0);
  ck_assert_int_eq(count_lines(1, 1, "\"event\":\"message\""), 1);
  /* NAME_TAKEN, then a resume with the session token takes over. */
  p = strstr(N[1].lines[0].text, "\"session\":\"");
  ck_assert_ptr_nonnull(p);
  memcpy(tok, p + 11, 64);
  tok[64] = '\0';
  gv_relay_conn_open(N[1].r, 3, now);
  req(1, 3, now, "{\"cmd\":\"hello\",\"as\":\"api:bob\"}");
  ck_assert_ptr_nonnull(strstr(last_line(1, 3), "NAME_TAKEN"));
  req(1, 3, now, "{\"cmd\":\"hello\",\"as\":\"api:bob\",\"resume\":\"%s\"}",
      tok);
  ck_assert_int_eq(count_lines(1, 3, "\"session\""), 1);
  ck_assert_int_eq(count_lines(1, 3, "\"body\":\"x\""), 1); /* unacked */
  ck_assert_uint_eq(N[1].hangups, 1);
  /* Requests that need an agent, and lines that are no request. */
  gv_relay_conn_open(N[0].r, 9, now);
  req(0, 9, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"x\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 9), "\"error\":\"STATE\""));
  req(0, 9, now, "not json");
  ck_assert_ptr_nonnull(strstr(last_line(0, 9), "\"error\":\"JSON\""));
  req(0, 9, now, "{\"cmd\":\"fly\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 9), "\"error\":\"TYPE\""));
  req(0, 9, now,
      "{\"cmd\":\"status\",\"id\":\"00112233445566778899aabbccddeeff\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 9), "NOT_FOUND"));
  teardown_all();
}
END_TEST

START_TEST(test_fanout_and_idempotency) {
  int64_t now = 0;

  two(now);
  open_agent(1, 2, "api:carol", now);
  open_agent(0, 2, "web:dave", now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"*\",\"message\":\"all\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "\"sent\":["));
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"all\""), 1);
  ck_assert_int_eq(count_lines(1, 2, "\"body\":\"all\""), 1);
  ck_assert_int_eq(count_lines(0, 2, "\"body\":\"all\""), 1); /* same node */
  ck_assert_int_eq(count_lines(0, 1, "\"body\":\"all\""), 0); /* not self */
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"api:*\",\"message\":\"api\"}");
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"api\""), 1);
  ck_assert_int_eq(count_lines(0, 2, "\"body\":\"api\""), 0);
  /* A key makes a retried send the same message: accepted once. */
  req(0, 1, now,
      "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"k\",\"key\":\"x1\"}");
  req(0, 1, now,
      "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"k\",\"key\":\"x1\"}");
  ck_assert_int_eq(count_lines(1, 2, "\"body\":\"k\""), 1);
  teardown_all();
}
END_TEST

/* STORED answers are lost: the origin retransmits, the destination stores
 * and hands over once. */
START_TEST(test_retransmit_dedup) {
  int64_t now = 0;

  two(now);
  drop_[1][0] = true;
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"once\"}");
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"once\""), 1);
  for (int k = 1; k <= 4; k++)
    tick(now += 3 * SEC);
  drop_[1][0] = false;
  tick(now += 30 * SEC);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"once\""), 1);
  ck_assert_uint_eq(count_rows(&N[1], GV_RROW_MSG), 1);
  req(0, 1, now, "{\"cmd\":\"subscribe\"}");
  req(0, 1, now, "{\"cmd\":\"inbox\"}"); /* alice has none */
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "\"messages\":[]"));
  teardown_all();
}
END_TEST

/* A lost message holds the ones after it; when its origin gives up, the
 * destination goes on and tells the agent what was skipped. */
START_TEST(test_gap_then_gone) {
  int64_t now = 0;

  two(now);
  drop_[0][1] = true;
  req(0, 1, now,
      "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"m1\",\"ttl_ms\":5000}");
  drop_[0][1] = false;
  /* m2 goes through while m1 waits for its retry. */
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"m2\"}");
  ck_assert_int_eq(count_lines(0, 1, "accepted"), 2);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"m2\""), 0); /* held */
  drop_[0][1] = true; /* m1's retries are lost too */
  for (int k = 0; k < 8; k++)
    tick(now += SEC);
  drop_[0][1] = false;
  tick(now += 61 * SEC);
  tick(now += 61 * SEC);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"m1\""), 0);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"m2\""), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"skipped\":[1]"), 1);
  /* The sender hears of m1's failure unasked. */
  ck_assert_int_eq(count_lines(0, 1, "\"reason\":\"expired\""), 1);
  teardown_all();
}
END_TEST

/* kill -9 of the destination before the agent acked: handed over again
 * (same id), acked, and never again after the next restart. */
START_TEST(test_restart_exactly_once) {
  char id[33];
  int64_t now = 0;

  two(now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"r1\"}");
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"r1\""), 1);
  restart(1, now);
  link_up(0, 1, now);
  open_agent(1, 5, "api:bob", now);
  ck_assert_int_eq(count_lines(1, 5, "\"body\":\"r1\""), 1);
  last_id(1, 5, id);
  req(1, 5, now, "{\"cmd\":\"ack\",\"ids\":[\"%s\"]}", id);
  restart(1, now);
  link_up(0, 1, now);
  open_agent(1, 6, "api:bob", now);
  tick(now += 10 * SEC);
  ck_assert_int_eq(count_lines(1, 6, "\"body\":\"r1\""), 0);
  /* The origin restarts with a message it could not send yet. */
  link_down(0, 1, now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"r2\"}");
  ck_assert_int_eq(count_lines(0, 1, "accepted"), 2);
  restart(0, now);
  link_up(0, 1, now);
  tick(now += 5 * SEC);
  ck_assert_int_eq(count_lines(1, 6, "\"body\":\"r2\""), 1);
  teardown_all();
}
END_TEST

/* The destination dies with a message handed over but not acked; while it
 * is back and its agent not yet, the origin retransmits that one and sends
 * two more: the agent, back, gets all three, in order. */
START_TEST(test_restart_then_more_before_agent) {
  int64_t now = 0;

  two(now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"q1\"}");
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"q1\""), 1);
  restart(1, now);
  link_up(0, 1, now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"q2\"}");
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"q3\"}");
  tick(now += 5 * SEC);
  open_agent(1, 7, "api:bob", now);
  ck_assert_int_eq(count_lines(1, 7, "\"body\":\"q1\""), 1);
  ck_assert_int_eq(count_lines(1, 7, "\"body\":\"q2\""), 1);
  ck_assert_int_eq(count_lines(1, 7, "\"body\":\"q3\""), 1);
  teardown_all();
}
END_TEST

/* A node of another team sees no agent and cannot inject; an altered
 * packet is refused. */
START_TEST(test_outsider) {
  gv_relay_stats st;
  uint8_t T2[GV_RW_KEY_BYTES];
  int64_t now = 0;

  setup_n(3);
  randombytes_buf(T2, sizeof(T2));
  memcpy(N[2].team, T2, sizeof(T2));
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(0, 1, now);
  link_up(2, 1, now);
  open_agent(0, 1, "web:alice", now);
  open_agent(1, 1, "api:bob", now);
  open_agent(2, 1, "evil:mallory", now);
  req(2, 1, now, "{\"cmd\":\"agents\"}");
  ck_assert_ptr_null(strstr(last_line(2, 1), "bob"));
  req(2, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"rm -rf\"}");
  ck_assert_ptr_nonnull(strstr(last_line(2, 1), "UNKNOWN_RECIPIENT"));
  /* A packet sealed for B with the wrong team's keys. */
  {
    gv_rw_team k2;
    gv_rw_boxkey bk;
    gv_rw_route h;
    gv_rw_body b;
    uint8_t body[256], sealed[512], wire[1024], nonce[24] = {1};
    size_t blen, plen;
    const gv_service *s = gv_relay_service(N[1].r);
    gv_why why = {{0}};

    gv_rw_team_keys(T2, &k2);
    ck_assert_int_eq(gv_rw_peer_key(&N[2].id, N[1].id.pk, &bk, NULL), 0);
    memset(&b, 0, sizeof(b));
    b.kind = GV_RW_DATA;
    b.u.data.ttl_ms = 60000;
    b.u.data.seq = 1;
    b.u.data.from = (gv_rw_str){"evil:mallory", 12};
    b.u.data.to = (gv_rw_str){"api:bob", 7};
    b.u.data.payload = (const uint8_t *)"rm -rf /";
    b.u.data.payload_len = 8;
    ck_assert_int_eq(gv_rw_body_encode(&b, body, sizeof(body), &blen, NULL), 0);
    memset(&h, 0, sizeof(h));
    memcpy(h.dst, N[1].id.pk, 32);
    memcpy(h.src, N[2].id.pk, 32);
    h.id[0] = 7;
    ck_assert_int_eq(gv_rw_seal(&bk, &k2, nonce, &h, GV_RW_DATA, body, blen,
                                sealed, sizeof(sealed), NULL),
                     0);
    h.sealed = sealed;
    h.sealed_len = gv_rw_sealed_size(blen);
    ck_assert_int_eq(gv_rw_route_encode(&h, wire, sizeof(wire), &plen, NULL),
                     0);
    ck_assert_int_eq(s->recv(s->ctx, 3, wire, plen, now, &why), 0);
    wire[plen - 1] ^= 1; /* altered on the way */
    ck_assert_int_eq(s->recv(s->ctx, 3, wire, plen, now, &why), 0);
    gv_rw_team_keys_wipe(&k2);
  }
  pump(now);
  gv_relay_stats_get(N[1].r, &st);
  ck_assert_uint_eq(st.refused_in[GV_RFAIL_NOT_IN_TEAM], 1);
  ck_assert_uint_eq(st.refused_in[GV_RFAIL_REFUSED], 1);
  ck_assert_int_eq(count_lines(1, 1, "rm -rf"), 0);
  teardown_all();
}
END_TEST

/* Two silent nodes talk through a broadcasting one, which forwards sealed
 * packets and stores nothing. */
START_TEST(test_silent_through_relay) {
  gv_relay_stats st;
  int64_t now = 0;

  setup_n(3);
  N[0].broadcasting = N[2].broadcasting = false;
  N[0].cfg.silent = N[2].cfg.silent = true;
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(0, 1, now); /* A dials B: B becomes A's relay */
  link_up(2, 1, now);
  ck_assert_uint_eq(N[0].n_relays, 1);
  ck_assert_uint_eq(N[2].n_relays, 1);
  open_agent(0, 1, "web:alice", now);
  open_agent(2, 1, "ops:carol", now);
  tick(now += 6 * 60 * SEC); /* the directory refresh reaches everyone */
  tick(now += SEC);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"psst\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "accepted"));
  tick(now += SEC);
  ck_assert_int_eq(count_lines(2, 1, "\"body\":\"psst\""), 1);
  gv_relay_stats_get(N[1].r, &st);
  ck_assert_uint_gt(st.forwarded, 0);
  ck_assert_uint_eq(count_rows(&N[1], GV_RROW_MSG), 0);
  teardown_all();
}
END_TEST

/* A silent node S that a broadcasting origin O reaches through S's relay
 * R has no link to O, and an answer may not dial: S's STORED and DELIVERED
 * must go back the way O's DATA came, on S's link to R, which forwards
 * them to O. (They were dropped: O's record is known and broadcasting, so
 * the way back was never looked at; O retransmitted, S answered STORED
 * again, dropped again, and O never saw stored or delivered.)
 * Nodes: 0 R (broadcasting, the inviter), 1 S (silent), 2 O. */
START_TEST(test_answer_back_through_relay) {
  gv_relay_stats st;
  char id[33];
  unsigned s_to_r, s_dials;
  uint64_t fwd;
  int64_t now = 0;

  setup_n(3);
  N[1].broadcasting = false;
  N[1].cfg.silent = true;
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(1, 0, now); /* S dials R: R becomes S's relay */
  link_up(2, 0, now); /* O dials R; S and O have no link, ever */
  ck_assert_uint_eq(N[1].n_relays, 1);
  open_agent(1, 1, "ops:sam", now);
  open_agent(2, 1, "web:olga", now);
  tick(now += 6 * 60 * SEC); /* the refresh: O's directory lists sam */
  tick(now += SEC);
  req(2, 1, now, "{\"cmd\":\"subscribe\"}");
  s_to_r = sends_[1][0];
  s_dials = N[1].dials;
  gv_relay_stats_get(N[0].r, &st);
  fwd = st.forwarded;
  req(2, 1, now, "{\"cmd\":\"send\",\"to\":\"sam\",\"message\":\"back\"}");
  ck_assert_int_eq(count_lines(2, 1, "\"state\":\"accepted\""), 1);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"back\""), 1);
  /* Stored at S, and O hears it at once: no retransmission was needed. */
  ck_assert_msg(count_lines(2, 1, "\"state\":\"stored\"") == 1,
                "O never heard S's STORED");
  ck_assert_uint_gt(sends_[1][0], s_to_r); /* on S's link to R */
  ck_assert_uint_eq(N[1].dials, s_dials);  /* and S dialed nobody */
  last_id(1, 1, id);
  req(1, 1, now, "{\"cmd\":\"ack\",\"ids\":[\"%s\"]}", id);
  ck_assert_msg(count_lines(2, 1, "\"state\":\"delivered\"") == 1,
                "O never heard S's DELIVERED");
  gv_relay_stats_get(N[0].r, &st);
  /* R forwarded the DATA to S, the STORED and DELIVERED to O. */
  ck_assert_uint_ge(st.forwarded - fwd, 3);
  tick(now += 10 * SEC);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"back\""), 1);
  teardown_all();
}
END_TEST

/* The directory's half of the same: a team of a silent node S and a
 * broadcasting node O, whose only way between them is S's relay R, a node
 * of another team. O's JOIN reaches S through R; S's answer (MEMBERS and
 * its directory) must go back through R too, or O never lists S's agents.
 * Nodes: 0 S (silent, the inviter), 1 R (another team), 2 O. */
START_TEST(test_join_answer_back_through_relay) {
  int64_t now = 0;

  setup_n(3);
  N[0].broadcasting = false;
  N[0].cfg.silent = true;
  randombytes_buf(N[1].team, sizeof(N[1].team));
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(0, 1, now); /* S dials R: R becomes S's relay */
  link_up(2, 1, now); /* O dials R; S and O have no link, ever */
  ck_assert_uint_eq(N[0].n_relays, 1);
  open_agent(0, 1, "ops:sam", now);
  open_agent(2, 1, "web:olga", now);
  for (int k = 0; k < 10; k++) /* O's JOIN is retried (1 s doubling) */
    tick(now += SEC);
  req(2, 1, now, "{\"cmd\":\"agents\"}");
  ck_assert_msg(strstr(last_line(2, 1), "ops:sam@") != NULL,
                "O's directory does not list sam: %s", last_line(2, 1));
  req(2, 1, now, "{\"cmd\":\"send\",\"to\":\"sam\",\"message\":\"hi\"}");
  ck_assert_int_eq(count_lines(0, 1, "\"body\":\"hi\""), 1);
  teardown_all();
}
END_TEST

/* The relay scenario's lost messages (grapevine-sim --scenario relay
 * --nodes 200 --seed 3): a silent origin A learned the way back to a
 * silent destination D from D's directory packets, which came through V;
 * then D's link to V went. A message to D must make A dial the relay D's
 * record names (R), not go to V at every retry, where it is dropped for
 * ever. Nodes: 0 V (the inviter), 1 A, 2 D, 3 R. */
START_TEST(test_stale_way_back) {
  gv_relay_stats st;
  int64_t now = 0;
  bool linked = false;

  setup_n(4);
  N[1].broadcasting = N[2].broadcasting = false;
  N[1].cfg.silent = N[2].cfg.silent = true;
  for (int i = 0; i < 4; i++)
    start(i, now);
  link_up(2, 3, now); /* D's relays: R, */
  link_up(1, 0, now); /* A's: V */
  link_up(2, 0, now); /* and V */
  ck_assert_uint_eq(N[1].n_relays, 1);
  ck_assert_uint_eq(N[2].n_relays, 2);
  open_agent(1, 1, "web:alice", now);
  open_agent(2, 1, "ops:carol", now);
  tick(now += 6 * 60 * SEC); /* the refresh: D's packets reach A via V */
  tick(now += SEC);
  link_down(2, 0, now); /* D's relay is R alone; V no longer reaches D */
  ck_assert_uint_eq(N[2].n_relays, 1);
  req(1, 1, now, "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"late\"}");
  ck_assert_ptr_nonnull(strstr(last_line(1, 1), "accepted"));
  /* The driver dials what A asks for; bounded: 30 tries, 10 minutes. */
  for (int k = 0; k < 30 && count_lines(2, 1, "\"body\":\"late\"") == 0; k++) {
    tick(now += 20 * SEC);
    if (!linked && N[1].dials > 0 &&
        memcmp(N[1].dialed, N[3].id.pk, GV_ID_BYTES) == 0) {
      link_up(1, 3, now);
      linked = true;
    }
  }
  ck_assert_msg(linked, "A never dialed R, D's relay");
  ck_assert_int_eq(count_lines(2, 1, "\"body\":\"late\""), 1);
  gv_relay_stats_get(N[0].r, &st);
  ck_assert_uint_gt(st.forward_dropped, 0); /* V was tried: the case holds */
  teardown_all();
}
END_TEST

/* The relay scenario's lost message (grapevine-sim --scenario relay
 * --nodes 100, seed 1): an origin's dialed links were all held by the
 * relay for messages long stored, because the team's directory packets
 * crossing them counted as use, so a message to a new destination found
 * no link slot to dial, ever. A link dialed for a message is let go once
 * no message crossed it for a minute, whatever the directory sends on it;
 * the link a silent node names as its relay is kept, at both ends.
 * Nodes: 0 V (the inviter), 1 A, 2 B, 3 S (silent, V its relay). */
START_TEST(test_directory_holds_no_link) {
  int64_t now = 0;

  setup_n(4);
  N[3].broadcasting = false;
  N[3].cfg.silent = true;
  for (int i = 0; i < 4; i++)
    start(i, now);
  link_up(1, 0, now);
  link_up(2, 0, now);
  link_up(3, 0, now); /* V: S's relay */
  ck_assert(N[3].held[0] && N[0].held[3]);
  open_agent(1, 1, "web:alice", now);
  open_agent(2, 1, "api:bob", now);
  tick(now += 6 * 60 * SEC); /* the refresh: every directory is whole */
  req(1, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"hi\"}");
  ck_assert_ptr_nonnull(strstr(last_line(1, 1), "accepted"));
  ck_assert_int_eq(memcmp(N[1].dialed, N[2].id.pk, GV_ID_BYTES), 0);
  link_up(1, 2, now); /* the dial A asked for */
  ck_assert(N[1].held[2]);
  tick(now += SEC);
  ck_assert_int_eq(count_lines(2, 1, "\"body\":\"hi\""), 1);
  /* Three minutes of directory packets on the link, each 20 s: bob comes
   * and goes, and B says so to every member. */
  for (int k = 0; k < 9; k++) {
    gv_relay_conn_closed(N[2].r, 1, now);
    open_agent(2, 1, "api:bob", now);
    tick(now += 20 * SEC);
  }
  ck_assert_msg(!N[1].held[2], "A still holds the link it dialed for bob");
  ck_assert(N[3].held[0] && N[0].held[3]); /* S's relay link stays */
  teardown_all();
}
END_TEST

/* The relay scenario's item 7 (docs/SIMULATOR.md): every whole directory
 * a member sends carries the receiver's own block at the receiver's
 * version, and the receiver took it for a clock stepped back, made a new
 * version and sent it to every member: an echo at every refresh. In a
 * quiet team (nothing changes) a refresh is each node's JOIN and directory
 * to each member and each member's MEMBERS and directory back, no more.
 * Nodes: 0 V (the inviter), 1 A, 2 B, all linked to each other. */
START_TEST(test_quiet_refresh_no_echo) {
  int64_t now = 0;
  unsigned before = 0, after = 0;

  setup_n(3);
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(1, 0, now);
  link_up(2, 0, now);
  link_up(1, 2, now);
  open_agent(0, 1, "web:vera", now);
  open_agent(1, 1, "web:alice", now);
  open_agent(2, 1, "api:bob", now);
  tick(now += 6 * 60 * SEC); /* a refresh: every directory is whole */
  tick(now += 6 * 60 * SEC); /* and another */
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      before += sends_[i][j];
  tick(now += 6 * 60 * SEC); /* a quiet refresh */
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      after += sends_[i][j];
  /* Per ordered pair: the JOIN and the directory of the refresh, MEMBERS
   * and the directory in answer (30 with the echo: each node's own block
   * again to both members). */
  ck_assert_uint_eq(after - before, 4 * 3 * 2);
  teardown_all();
}
END_TEST

/* Nodes 0 V (the inviter), 1 A, 2 B, 3 C, all linked to V, with agents
 * alice at A, bob at B and carol at C; A dialed B for a message to bob,
 * whose packets reach B unless drop_bob; then alice sends to carol, and
 * A's own link core refuses the dial of C (GV_CLOSE_FULL: its dialed slots
 * are taken). Returns the DIALs A had asked for before that refusal. */
static unsigned refused_dial_after_bob(bool drop_bob, int64_t *now) {
  const gv_service *sa;
  unsigned dials;

  setup_n(4);
  for (int i = 0; i < 4; i++)
    start(i, *now);
  for (int i = 1; i < 4; i++)
    link_up(i, 0, *now);
  open_agent(1, 1, "web:alice", *now);
  open_agent(2, 1, "api:bob", *now);
  open_agent(3, 1, "api:carol", *now);
  tick(*now += 6 * 60 * SEC); /* the refresh: every directory is whole */
  drop_[1][2] = drop_bob;
  req(1, 1, *now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"hi\"}");
  ck_assert_int_eq(memcmp(N[1].dialed, N[2].id.pk, GV_ID_BYTES), 0);
  link_up(1, 2, *now);
  tick(*now += SEC);
  ck_assert_int_eq(count_lines(2, 1, "\"body\":\"hi\""), drop_bob ? 0 : 1);
  tick(*now += 10 * SEC); /* well inside IDLE_LINK_MS */
  ck_assert(N[1].held[2]);
  req(1, 1, *now, "{\"cmd\":\"send\",\"to\":\"carol\",\"message\":\"yo\"}");
  ck_assert_int_eq(memcmp(N[1].dialed, N[3].id.pk, GV_ID_BYTES), 0);
  dials = N[1].dials;
  sa = gv_relay_service(N[1].r);
  sa->dial_ended(sa->ctx, N[3].id.pk, NULL, GV_CLOSE_FULL, *now);
  pump(*now);
  return dials;
}

/* The relay scenario's item 12 (docs/SIMULATOR.md): a dial that this
 * node's own link core refused for want of a slot, while a link the relay
 * dialed for a delivered message sat idle, backed off for minutes. The
 * idle link must go and the dial must be asked for again at once. */
START_TEST(test_full_lets_idle_link_go) {
  int64_t now = 0;
  unsigned dials = refused_dial_after_bob(false, &now);

  ck_assert_msg(!N[1].held[2], "A keeps the idle link it dialed for bob");
  tick(now);
  ck_assert_uint_eq(N[1].dials, dials + 1);
  ck_assert_int_eq(memcmp(N[1].dialed, N[3].id.pk, GV_ID_BYTES), 0);
  link_up(1, 3, now);
  tick(now += SEC);
  ck_assert_int_eq(count_lines(3, 1, "\"body\":\"yo\""), 1);
  teardown_all();
}
END_TEST

/* ...but a link that a waiting message still needs (bob's, undelivered)
 * stays, and the refused dial is not asked for again at once (it goes to
 * gv_relay_dial_failed()'s backoff, as any failed dial). */
START_TEST(test_full_keeps_needed_link) {
  int64_t now = 0;
  unsigned dials = refused_dial_after_bob(true, &now);

  ck_assert(N[1].held[2]);
  tick(now);
  ck_assert_uint_eq(N[1].dials, dials);
  teardown_all();
}
END_TEST

/* The relay scenario's item 8 (docs/SIMULATOR.md): a broadcasting node's
 * end of a silent node's link came up before the silent node named it as
 * a relay (a silent node chooses its relays at its own link-up, and its
 * record comes by gossip later), so it held the link for gossip alone,
 * young and the first evicted. The newer record must make it hold the
 * link, whatever the idle sweep, and a record that names it no more must
 * let the link go. Nodes: 0 B (broadcasting), 1 S (silent). */
START_TEST(test_relay_named_after_link_up) {
  const gv_service *sb, *ss;
  int64_t now = 0;

  setup_n(2);
  N[1].broadcasting = false;
  N[1].cfg.silent = true;
  start(0, now);
  start(1, now);
  sb = gv_relay_service(N[0].r);
  ss = gv_relay_service(N[1].r);
  up_[0][1] = up_[1][0] = true;
  N[0].held[1] = sb->up(sb->ctx, 2, N[1].id.pk, false, NULL, NULL, now);
  ck_assert(!N[0].held[1]); /* S names no relay yet */
  N[1].held[0] = ss->up(ss->ctx, 1, N[0].id.pk, true, NULL, NULL, now);
  pump(now);
  ck_assert_uint_eq(N[1].n_relays, 1); /* now it names B */
  ck_assert(N[1].held[0]);
  gv_relay_record(N[0].r, N[1].id.pk, now); /* B's gossip brings it */
  pump(now);
  ck_assert_msg(N[0].held[1], "B does not hold its relay user's link");
  tick(now += 3 * 60 * SEC); /* idle: no message crossed it */
  ck_assert(N[0].held[1]);
  N[1].n_relays = 0; /* a newer record names another relay */
  gv_relay_record(N[0].r, N[1].id.pk, now);
  pump(now);
  ck_assert(!N[0].held[1]);
  teardown_all();
}
END_TEST

/* Node 0 a broadcasting relay with users_max slots for relay users,
 * nodes 1..silent silent, the rest of the n broadcasting; all started. */
static void setup_users(int n, int silent, size_t users_max, int64_t now) {
  setup_n(n);
  N[0].cfg.users_max = users_max;
  for (int i = 1; i <= silent; i++) {
    N[i].broadcasting = false;
    N[i].cfg.silent = true;
  }
  for (int i = 0; i < n; i++)
    start(i, now);
}

/* Held relay users' links are never evicted, so a broadcasting node that
 * held every one filled its inbound slots with them and refused every
 * other dial (50 nodes, seed 2: another broadcasting node's messages to
 * it were lost). It holds cfg.users_max; a slot that frees goes to a
 * linked node that names it and waits. Nodes: 0 B, 1 S, 2 T (silent). */
START_TEST(test_relay_users_max) {
  int64_t now = 0;

  setup_users(3, 2, 1, now);
  link_up(1, 0, now);
  link_up(2, 0, now);
  ck_assert_uint_eq(N[2].n_relays, 1); /* T names B too */
  ck_assert(N[0].held[1]);
  ck_assert_msg(!N[0].held[2], "B holds more relay users than users_max");
  link_down(1, 0, now);
  ck_assert_msg(N[0].held[2], "T did not get the slot S left");
  teardown_all();
}
END_TEST

/* The relay scenario's item 11 (docs/SIMULATOR.md, 100 nodes, seed 29):
 * every slot was held by silent nodes that 2-4 relays held, and a
 * restarted silent node got none anywhere, its links the first evicted
 * and its messages lost. A node whose record names only us takes the
 * slot of a user whose record names 3 relays or more; that user, naming
 * 2 others, does not take it back. Nodes: 0 B, 1 S, 2 T (silent), 3 X (a
 * broadcasting node S also names). */
START_TEST(test_relay_slot_to_unheld) {
  int64_t now = 0;

  setup_users(4, 2, 1, now);
  link_up(1, 0, now);
  ck_assert(N[0].held[1]);
  /* S's record comes to name 3 relays (X and a third B never sees). */
  memcpy(N[1].relays[1], N[3].id.pk, GV_ID_BYTES);
  memset(N[1].relays[2], 0x7a, GV_ID_BYTES);
  N[1].n_relays = 3;
  gv_relay_record(N[0].r, N[1].id.pk, now);
  pump(now);
  ck_assert(N[0].held[1]);
  link_up(2, 0, now);
  ck_assert_uint_eq(N[2].n_relays, 1); /* T names B alone */
  ck_assert_msg(N[0].held[2], "T, naming B alone, got no slot");
  ck_assert_msg(!N[0].held[1], "S kept its slot: more users than users_max");
  gv_relay_record(N[0].r, N[1].id.pk, now); /* S still names B */
  pump(now);
  ck_assert_msg(N[0].held[2] && !N[0].held[1], "S took the slot back");
  link_down(2, 0, now);
  ck_assert_msg(N[0].held[1], "S did not get the slot T left");
  teardown_all();
}
END_TEST

/* A user whose record names 2 relays keeps its slot: without it, it may
 * have one relay holding it, or none. Nodes as above. */
START_TEST(test_relay_slot_kept_by_two) {
  int64_t now = 0;

  setup_users(4, 2, 1, now);
  link_up(1, 0, now);
  link_up(1, 3, now); /* S names B and X */
  ck_assert_uint_eq(N[1].n_relays, 2);
  gv_relay_record(N[0].r, N[1].id.pk, now);
  pump(now);
  link_up(2, 0, now);
  ck_assert_uint_eq(N[2].n_relays, 1);
  ck_assert(N[0].held[1]);
  ck_assert_msg(!N[0].held[2], "S, naming 2 relays, lost its slot");
  gv_relay_record(N[0].r, N[2].id.pk, now);
  pump(now);
  ck_assert(N[0].held[1] && !N[0].held[2]);
  teardown_all();
}
END_TEST

/* Silent node i's record comes to name B (0) and n - 1 other relays. */
static void names_n(int i, size_t n, int64_t now) {
  memcpy(N[i].relays[0], N[0].id.pk, GV_ID_BYTES);
  for (size_t k = 1; k < n; k++)
    memset(N[i].relays[k], 0x70 + (int)k, GV_ID_BYTES);
  N[i].n_relays = n;
  gv_relay_record(N[0].r, N[i].id.pk, now);
  pump(now);
}

/* The trade is tried at a user's newer record too: T, naming B alone,
 * waits while the user S names 2, and takes the slot once S names 3.
 * Nodes: 0 B, 1 S, 2 T (silent). */
START_TEST(test_relay_slot_when_user_names_more) {
  int64_t now = 0;

  setup_users(3, 2, 1, now);
  link_up(1, 0, now);
  names_n(1, 2, now);
  link_up(2, 0, now);
  ck_assert(N[0].held[1] && !N[0].held[2]);
  names_n(1, 3, now);
  ck_assert_msg(N[0].held[2] && !N[0].held[1],
                "T, naming B alone, still waits after S came to name 3");
  teardown_all();
}
END_TEST

/* Of the users, the one naming the most relays gives its slot up. Nodes:
 * 0 B; 1, 2, 3 silent. */
START_TEST(test_relay_slot_shed_order) {
  int64_t now = 0;

  setup_users(4, 3, 2, now);
  link_up(1, 0, now);
  link_up(2, 0, now);
  names_n(1, 3, now);
  names_n(2, 4, now);
  link_up(3, 0, now); /* names B alone */
  ck_assert_msg(N[0].held[3] && N[0].held[1] && !N[0].held[2],
                "the user naming 4 relays was not the one to give its slot up");
  teardown_all();
}
END_TEST

/* Of the peers that wait, the one naming the fewest relays takes a slot
 * that frees. Nodes: 0 B; 1, 2, 3 silent. */
START_TEST(test_relay_slot_fill_order) {
  int64_t now = 0;

  setup_users(4, 3, 1, now);
  link_up(1, 0, now);
  names_n(1, 2, now);
  for (int i = 2; i < 4; i++)
    link_up(i, 0, now);
  names_n(2, 2, now);
  names_n(3, 3, now);
  ck_assert(N[0].held[1] && !N[0].held[2] && !N[0].held[3]);
  link_down(1, 0, now);
  ck_assert_msg(N[0].held[2] && !N[0].held[3],
                "the freed slot went to a peer naming more relays");
  teardown_all();
}
END_TEST

/* A full inbox answers BUSY and the origin keeps and retries; a full
 * outbox refuses at once. */
START_TEST(test_busy_and_outbox_full) {
  gv_relay_stats st;
  char id[33];
  int64_t now = 0;

  setup_n(2);
  N[1].cfg.inbox_max = 1;
  N[0].cfg.outbox_max = 3;
  start(0, now);
  start(1, now);
  link_up(0, 1, now);
  open_agent(0, 1, "web:alice", now);
  open_agent(1, 1, "api:bob", now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"b1\"}");
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"b2\"}");
  gv_relay_stats_get(N[1].r, &st);
  ck_assert_uint_eq(st.busy_sent, 1);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"b2\""), 0);
  last_id(1, 1, id);
  req(1, 1, now, "{\"cmd\":\"ack\",\"ids\":[\"%s\"]}", id);
  tick(now += 6 * SEC);
  ck_assert_int_eq(count_lines(1, 1, "\"body\":\"b2\""), 1);
  N[1].hold_commits = true; /* nothing more is stored at B */
  link_down(0, 1, now);
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"b3\"}");
  req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"b4\"}");
  ck_assert_ptr_nonnull(strstr(last_line(0, 1), "OUTBOX_FULL"));
  teardown_all();
}
END_TEST

/* A window smaller than two messages: the second waits for CREDIT, and
 * both arrive in order. */
START_TEST(test_credit_window) {
  char big[3001];
  int64_t now = 0;

  memset(big, 'x', 3000);
  big[3000] = '\0';
  setup_n(2);
  N[0].cfg.window = N[1].cfg.window = 4096;
  start(0, now);
  start(1, now);
  link_up(0, 1, now);
  open_agent(0, 1, "web:alice", now);
  open_agent(1, 1, "api:bob", now);
  for (int k = 0; k < 5; k++)
    req(0, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"%s\"}", big);
  tick(now += SEC);
  ck_assert_int_eq(count_lines(1, 1, "\"event\":\"message\""), 5);
  ck_assert_int_eq(count_lines(1, 1, "\"seq\":5"), 1);
  teardown_all();
}
END_TEST

/* Nodes 0 V (the inviter), 1 A with agent alice, 2 B with bob, A and B
 * linked to V, after a refresh (every directory whole). Returns the time. */
static int64_t alice_and_bob(void) {
  int64_t now = 0;

  setup_n(3);
  for (int i = 0; i < 3; i++)
    start(i, now);
  link_up(1, 0, now);
  link_up(2, 0, now);
  open_agent(1, 1, "web:alice", now);
  open_agent(2, 1, "api:bob", now);
  tick(now += 6 * 60 * SEC);
  return now;
}

/* The relay scenario without the directory's echo storm (docs/SIMULATOR.md
 * item 7; 100 nodes, seed 5, drained in 225 s): an origin dialed a
 * broadcasting destination whose inbound slots were full; the destination
 * evicted the new link (its newest) just as the message's packet crossed,
 * and the packet died with it. The origin was not told, and the message
 * waited out a backoff grown by tries that never had a chance: minutes, at
 * every such eviction. A link that goes down under an unanswered packet
 * sends its message again as soon as the destination may be dialed again.
 * Nodes: 0 V (the inviter), 1 A, 2 B. */
START_TEST(test_link_lost_under_message) {
  int64_t now, down_at;
  unsigned dials;

  now = alice_and_bob();
  req(1, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"hi\"}");
  ck_assert_ptr_nonnull(strstr(last_line(1, 1), "accepted"));
  ck_assert_int_eq(memcmp(N[1].dialed, N[2].id.pk, GV_ID_BYTES), 0);
  for (int k = 0; k < 24; k++) /* two minutes of dials that never connect */
    tick(now += 5 * SEC);
  drop_[1][2] = true; /* B evicts the link as the DATA crosses */
  link_up(1, 2, now);
  tick(now);
  ck_assert_uint_gt(sends_[1][2], 0);
  link_lost(1, 2, down_at = now += 100);
  drop_[1][2] = false;
  dials = N[1].dials;
  for (int k = 0; k < 20 && count_lines(2, 1, "\"body\":\"hi\"") == 0; k++) {
    tick(now += SEC);
    if (!up_[1][2] && N[1].dials > dials &&
        memcmp(N[1].dialed, N[2].id.pk, GV_ID_BYTES) == 0)
      link_up(1, 2, now);
  }
  ck_assert_msg(count_lines(2, 1, "\"body\":\"hi\"") == 1,
                "not delivered %lld ms after the link went down",
                (long long)(now - down_at));
  teardown_all();
}
END_TEST

/* ...but a destination that evicts every new link of ours before the
 * packet crosses (its inbound slots full for good) must not be dialed at
 * every DIAL_HOLDOFF_MS for the message's life: the first few such losses
 * send it again sooner than its backoff, later ones later each time
 * (without that, 119 dials in 20 minutes). */
START_TEST(test_flapping_link_backs_off) {
  int64_t now;
  unsigned first, seen;

  now = alice_and_bob();
  drop_[1][2] = true;
  req(1, 1, now, "{\"cmd\":\"send\",\"to\":\"bob\",\"message\":\"hi\"}");
  first = seen = N[1].dials;
  for (int k = 0; k < 20 * 60; k++) {
    if (!up_[1][2] && N[1].dials > seen &&
        memcmp(N[1].dialed, N[2].id.pk, GV_ID_BYTES) == 0) {
      seen = N[1].dials;
      link_up(1, 2, now); /* CREDIT comes, the DATA is lost... */
      tick(now);
      link_lost(1, 2, now); /* ...with the link */
    }
    tick(now += SEC);
  }
  ck_assert_int_eq(count_lines(2, 1, "\"body\":\"hi\""), 0);
  ck_assert_uint_ge(seen - first, 3);
  ck_assert_msg(seen - first <= 20, "%u dials in 20 minutes", seen - first);
  teardown_all();
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("relay");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_send_every_state);
  tcase_add_test(tc, test_accepted_only_after_commit);
  tcase_add_test(tc, test_names_and_errors);
  tcase_add_test(tc, test_fanout_and_idempotency);
  tcase_add_test(tc, test_retransmit_dedup);
  tcase_add_test(tc, test_gap_then_gone);
  tcase_add_test(tc, test_restart_exactly_once);
  tcase_add_test(tc, test_restart_then_more_before_agent);
  tcase_add_test(tc, test_outsider);
  tcase_add_test(tc, test_silent_through_relay);
  tcase_add_test(tc, test_answer_back_through_relay);
  tcase_add_test(tc, test_join_answer_back_through_relay);
  tcase_add_test(tc, test_stale_way_back);
  tcase_add_test(tc, test_directory_holds_no_link);
  tcase_add_test(tc, test_quiet_refresh_no_echo);
  tcase_add_test(tc, test_full_lets_idle_link_go);
  tcase_add_test(tc, test_full_keeps_needed_link);
  tcase_add_test(tc, test_link_lost_under_message);
  tcase_add_test(tc, test_flapping_link_backs_off);
  tcase_add_test(tc, test_relay_named_after_link_up);
  tcase_add_test(tc, test_relay_users_max);
  tcase_add_test(tc, test_relay_slot_to_unheld);
  tcase_add_test(tc, test_relay_slot_when_user_names_more);
  tcase_add_test(tc, test_relay_slot_shed_order);
  tcase_add_test(tc, test_relay_slot_fill_order);
  tcase_add_test(tc, test_relay_slot_kept_by_two);
  tcase_add_test(tc, test_busy_and_outbox_full);
  tcase_add_test(tc, test_credit_window);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(suite()); }

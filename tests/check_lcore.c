/* The link core (node/lcore.h) under a fake clock: a few cores wired back
 * to back by an in-memory transport, with a fake service on the gossip
 * channel that records what the core tells it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lcore.h"
#include "testutil.h"

#define MAXN 6    /* cores */
#define MAXW 32   /* wires (one transport connection each) */
#define MAXL 64   /* link ids per core */
#define MAXQ 1024 /* plaintexts and FINALs in flight */
#define MAXLOG 256
#define MIN 60000LL

/* ---- the fake gossip service ---- */

typedef struct fsvc {
  bool hold;            /* what up() returns */
  int recv_rc;          /* what recv() returns: 0 or a GV_E* */
  const char *recv_why; /* its reason */
  uint64_t hello_seq;   /* what hello() puts in this node's HELLO */
  gv_msg *record;       /* ...and the record it attaches (may be NULL) */
  unsigned ups, downs, recvs, scores;
  unsigned ups_of[MAXL], downs_of[MAXL];
  int down_why[MAXL];
  struct {
    gv_linkid link;
    uint8_t peer[GV_ID_BYTES];
    bool dialed, has_addr;
    gv_addr addr;
    gv_msg_type type;
    char agent[GV_AGENT_MAX + 1];
    int64_t ts;
    uint64_t seq;
    int64_t now;
    bool has_record;
    uint8_t record_origin[GV_ID_BYTES];
  } up;
  gv_link_info score;
  unsigned dial_ends; /* dial_ended calls; the last one's arguments: */
  struct {
    uint8_t peer[GV_ID_BYTES];
    bool has_addr;
    gv_addr addr;
    int why;
  } ended;
} fsvc;

static void fs_hello(void *ctx, gv_msg *hello, gv_msg *record) {
  hello->u.hello.seq = ((fsvc *)ctx)->hello_seq;
  if (((fsvc *)ctx)->record != NULL)
    *record = *((fsvc *)ctx)->record; /* a view: the core clears nothing */
}

static bool fs_up(void *ctx, gv_linkid link, const uint8_t *peer, bool dialed,
                  const gv_addr *addr, const gv_msg *hello, int64_t now) {
  fsvc *f = ctx;
  ck_assert_uint_lt(link, MAXL);
  f->ups++;
  f->ups_of[link]++;
  f->up.link = link;
  memcpy(f->up.peer, peer, GV_ID_BYTES);
  f->up.dialed = dialed;
  f->up.has_addr = addr != NULL;
  if (addr != NULL)
    f->up.addr = *addr;
  ck_assert_ptr_nonnull(hello);
  f->up.type = hello->type;
  memcpy(f->up.agent, hello->u.hello.agent, sizeof(f->up.agent));
  f->up.ts = hello->ts;
  f->up.seq = hello->u.hello.seq;
  f->up.has_record = hello->u.hello.record != NULL;
  if (f->up.has_record)
    memcpy(f->up.record_origin, hello->u.hello.record->origin, GV_ID_BYTES);
  f->up.now = now;
  return f->hold;
}

static void fs_down(void *ctx, gv_linkid link, gv_close why, int64_t now) {
  fsvc *f = ctx;
  (void)now;
  ck_assert_uint_lt(link, MAXL);
  f->downs++;
  f->downs_of[link]++;
  f->down_why[link] = (int)why;
}

static int fs_recv(void *ctx, gv_linkid link, const uint8_t *msg, size_t len,
                   int64_t now, gv_why *why) {
  fsvc *f = ctx;
  (void)link, (void)msg, (void)len, (void)now;
  f->recvs++;
  if (f->recv_rc != 0)
    return gv_fail(why, f->recv_rc, "%s", f->recv_why);
  return 0;
}

static void fs_dial_ended(void *ctx, const uint8_t *peer, const gv_addr *addr,
                          gv_close why, int64_t now) {
  fsvc *f = ctx;
  (void)now;
  f->dial_ends++;
  memcpy(f->ended.peer, peer, GV_ID_BYTES);
  f->ended.has_addr = addr != NULL;
  if (addr != NULL)
    f->ended.addr = *addr;
  f->ended.why = (int)why;
}

static void fs_score(void *ctx, const gv_link_info *info, int64_t now) {
  fsvc *f = ctx;
  (void)now;
  f->scores++;
  f->score = *info;
}

/* ---- the harness ---- */

typedef struct node {
  gv_lcore *lc;
  uint8_t id[GV_ID_BYTES];
  fsvc f;
  gv_service svc;
  gv_linkid next_link;
  unsigned sends[MAXL]; /* SEND actions per link */
  size_t n_close, n_reject;
  struct {
    gv_linkid link;
    int why;
    int64_t at;
  } closes[MAXLOG];
  struct {
    gv_linkid link;
    int rc;
    char why[sizeof(((gv_why *)0)->text)];
  } rejects[MAXLOG];
} node;

/* One transport connection: side 0 is core a's link la, side 1 core b's. */
typedef struct wire {
  int core[2];
  gv_linkid link[2];
  bool open[2];
  bool drop_pong[2]; /* drop the PONGs this side sends */
  bool mute[2];      /* drop everything this side sends */
} wire;

typedef struct flight {
  int64_t at;
  int wire, to; /* the receiving side */
  gv_buf *buf;  /* NULL: FINAL */
} flight;

typedef struct net {
  node n[MAXN];
  int nn;
  wire w[MAXW];
  int nw;
  flight q[MAXQ];
  int nq;
  int64_t now, latency;
  bool manual_close; /* the test calls gv_lcore_closed() itself */
  unsigned steps;    /* pump steps, each followed by the invariant checks */
} net;

static net T;

static void t_free(void) {
  for (int i = 0; i < T.nq; i++)
    if (T.q[i].buf != NULL)
      gv_buf_unref(T.q[i].buf);
  for (int i = 0; i < T.nn; i++)
    gv_lcore_free(T.n[i].lc);
  memset(&T, 0, sizeof(T));
}

/* Frees what a failed test left behind (CK_FORK=no runs them in turn). */
static void t_init(int64_t t0) {
  t_free();
  T.now = t0;
}

static void cfg_test(gv_lcore_cfg *c) {
  gv_lcore_cfg_default(c);
  c->accepting = true;
}

/* A core with this id, with the fake service plugged in. */
static int t_node_id(const gv_lcore_cfg *c, const uint8_t *id,
                     const char *agent) {
  node *n = &T.n[T.nn];
  gv_lcore_cfg cc = *c;
  ck_assert_int_lt(T.nn, MAXN);
  memcpy(n->id, id, GV_ID_BYTES);
  cc.seed = c->seed + id[0];
  if (agent != NULL)
    cc.agent = agent;
  ck_assert_int_eq(gv_lcore_new(&n->lc, &cc, n->id, T.now), 0);
  n->f.hold = true;
  n->svc.ctx = &n->f;
  n->svc.hello = fs_hello;
  n->svc.up = fs_up;
  n->svc.down = fs_down;
  n->svc.recv = fs_recv;
  n->svc.score = fs_score;
  n->svc.dial_ended = fs_dial_ended;
  gv_lcore_set_service(n->lc, GV_CHAN_GOSSIP, &n->svc);
  return T.nn++;
}

/* A core whose id is 32 bytes of idb. */
static int t_node(const gv_lcore_cfg *c, uint8_t idb, const char *agent) {
  uint8_t id[GV_ID_BYTES];
  memset(id, idb, sizeof(id));
  return t_node_id(c, id, agent);
}

static gv_addr addr_of(int c) {
  gv_addr a;
  char text[32];
  snprintf(text, sizeof(text), "127.0.0.1:%d", 7000 + c);
  ck_assert_int_eq(gv_addr_parse(&a, text, strlen(text)), 0);
  return a;
}

static gv_linkid new_link(int c) {
  gv_linkid l = ++T.n[c].next_link;
  ck_assert_uint_lt(l, MAXL);
  return l;
}

/* Core a dials core b: both ends open at once (HELLOs cross). Not pumped. */
static int t_dial(int a, int b) {
  wire *w = &T.w[T.nw];
  gv_addr addr = addr_of(b);
  ck_assert_int_lt(T.nw, MAXW);
  w->core[0] = a;
  w->core[1] = b;
  w->link[0] = new_link(a);
  w->link[1] = new_link(b);
  w->open[0] = w->open[1] = true;
  gv_lcore_open(T.n[a].lc, w->link[0], T.n[b].id, true, &addr, T.now);
  gv_lcore_open(T.n[b].lc, w->link[1], T.n[a].id, false, NULL, T.now);
  return T.nw++;
}

/* A link of core c to a peer that is not a core of the net: its sends are
 * dropped, the test plays the peer with t_inject(). */
static gv_linkid t_open_raw(int c, const uint8_t *peer, bool dialed) {
  gv_linkid l = new_link(c);
  gv_addr addr = addr_of(9);
  gv_lcore_open(T.n[c].lc, l, peer, dialed, dialed ? &addr : NULL, T.now);
  return l;
}

static wire *wire_of(int c, gv_linkid l, int *side) {
  for (int i = 0; i < T.nw; i++)
    for (int s = 0; s < 2; s++)
      if (T.w[i].core[s] == c && T.w[i].link[s] == l) {
        *side = s;
        return &T.w[i];
      }
  return NULL;
}

static bool is_pong(const gv_buf *b) {
  return b->len > 1 && b->data[0] == GV_CHAN_LINK &&
         memmem(b->data, b->len, "\"PONG\"", 6) != NULL;
}

static void enqueue(int w, int to, gv_buf *b) {
  ck_assert_int_lt(T.nq, MAXQ);
  T.q[T.nq].at = T.now + T.latency;
  T.q[T.nq].wire = w;
  T.q[T.nq].to = to;
  T.q[T.nq].buf = b;
  T.nq++;
}

/* The invariants that hold between any two steps: the core's own, and one
 * `up` and one `down` per READY link (so up - down = READY links). */
static void t_check(void) {
  for (int i = 0; i < T.nn; i++) {
    gv_why why;
    gv_link_info info;
    unsigned ready = 0;
    why.text[0] = '\0';
    ck_assert_msg(gv_lcore_check(T.n[i].lc, &why) == 0, "core %d: %s", i,
                  why.text);
    for (size_t k = 0; gv_lcore_info(T.n[i].lc, k, &info); k++)
      ready += info.ready;
    ck_assert_uint_eq(T.n[i].f.ups - T.n[i].f.downs, ready);
  }
  T.steps++;
}

/* Drains core c's actions and carries them out. Returns true if any. */
static bool drain(int c) {
  node *n = &T.n[c];
  gv_action acts[512];
  size_t k = 0;
  gv_action a;

  /* All of them first: pointers in an action die at the next call. */
  while (gv_lcore_next(n->lc, &a)) {
    ck_assert_uint_lt(k, 512);
    if (a.type == GV_ACT_REJECT) {
      ck_assert_uint_lt(n->n_reject, MAXLOG);
      n->rejects[n->n_reject].link = a.link;
      n->rejects[n->n_reject].rc = a.reason;
      ck_assert_ptr_nonnull(a.why);
      snprintf(n->rejects[n->n_reject].why, sizeof(n->rejects[0].why), "%s",
               a.why);
      n->n_reject++;
    }
    acts[k++] = a;
  }
  for (size_t i = 0; i < k; i++) {
    int side = 0;
    wire *w = wire_of(c, acts[i].link, &side);
    switch (acts[i].type) {
    case GV_ACT_SEND:
      ck_assert_ptr_nonnull(acts[i].buf);
      ck_assert_uint_lt(acts[i].link, MAXL);
      n->sends[acts[i].link]++;
      if (w != NULL && w->open[side] && !w->mute[side] &&
          !(w->drop_pong[side] && is_pong(acts[i].buf)))
        enqueue((int)(w - T.w), !side, acts[i].buf);
      else
        gv_buf_unref(acts[i].buf);
      break;
    case GV_ACT_CLOSE:
      ck_assert_uint_lt(n->n_close, MAXLOG);
      n->closes[n->n_close].link = acts[i].link;
      n->closes[n->n_close].why = acts[i].reason;
      n->closes[n->n_close].at = T.now;
      n->n_close++;
      if (T.manual_close)
        break;
      /* FINAL goes out behind what was sent, then the transport is gone. */
      if (w != NULL && w->open[side]) {
        w->open[side] = false;
        enqueue((int)(w - T.w), !side, NULL);
      }
      gv_lcore_closed(n->lc, acts[i].link, false, T.now);
      break;
    case GV_ACT_REJECT:
    case GV_ACT_NONE: break;
    default: ck_abort_msg("core %d: unexpected action %d", c, acts[i].type);
    }
  }
  return k > 0;
}

/* Delivers what is due, in order. Returns true if anything was. */
static bool deliver(void) {
  bool any = false;
  int kept = 0;
  int n = T.nq;
  for (int i = 0; i < n; i++) {
    flight f = T.q[i];
    wire *w = &T.w[f.wire];
    int c = w->core[f.to];
    if (f.at > T.now) {
      T.q[kept++] = f;
      continue;
    }
    any = true;
    if (!w->open[f.to]) { /* that end is gone */
      if (f.buf != NULL)
        gv_buf_unref(f.buf);
      continue;
    }
    if (f.buf == NULL) {
      w->open[f.to] = false;
      gv_lcore_closed(T.n[c].lc, w->link[f.to], true, T.now);
    } else {
      gv_lcore_recv(T.n[c].lc, w->link[f.to], f.buf->data, f.buf->len, T.now);
      gv_buf_unref(f.buf);
    }
  }
  /* Entries queued while delivering sit past n. */
  for (int i = n; i < T.nq; i++)
    T.q[kept++] = T.q[i];
  T.nq = kept;
  return any;
}

/* Runs everything due at T.now to quiescence, checking after each step. */
static void t_pump(void) {
  int round;
  for (round = 0; round < 10000; round++) {
    bool any = false;
    for (int c = 0; c < T.nn; c++) {
      any |= drain(c);
      t_check();
    }
    any |= deliver();
    t_check();
    if (!any)
      break;
  }
  ck_assert_int_lt(round, 10000);
}

static int64_t min_expiry(void) {
  int64_t at = INT64_MAX;
  for (int c = 0; c < T.nn; c++) {
    int64_t e = gv_lcore_expiry(T.n[c].lc);
    if (e < at)
      at = e;
  }
  for (int i = 0; i < T.nq; i++)
    if (T.q[i].at < at)
      at = T.q[i].at;
  return at;
}

/* Advances the clock to `until`, stepping to each deliveries' time and each
 * core's expiry on the way. A tick must move a core's expiry past now. */
static void t_advance(int64_t until) {
  int i;
  t_pump();
  for (i = 0; i < 100000; i++) {
    int64_t at = min_expiry();
    if (at > until)
      break;
    ck_assert_int_ge(at, T.now);
    T.now = at;
    deliver();
    for (int c = 0; c < T.nn; c++)
      if (gv_lcore_expiry(T.n[c].lc) <= T.now) {
        gv_lcore_tick(T.n[c].lc, T.now);
        ck_assert_int_gt(gv_lcore_expiry(T.n[c].lc), T.now);
      }
    t_pump();
  }
  ck_assert_int_lt(i, 100000);
  T.now = until;
}

/* Ticks one core at now (the clock moves to now) and pumps. */
static void t_tick(int c, int64_t now) {
  T.now = now;
  gv_lcore_tick(T.n[c].lc, now);
  t_pump();
}

/* The plaintext chan + text, received by core c on link l. */
static void t_inject(int c, gv_linkid l, unsigned chan, const char *text) {
  gv_buf *b = gv_chan_buf(chan, text, strlen(text));
  gv_lcore_recv(T.n[c].lc, l, b->data, b->len, T.now);
  gv_buf_unref(b);
  t_pump();
}

static void t_inject_ping(int c, gv_linkid l, uint64_t nonce) {
  gv_msg m;
  char *out;
  size_t len;
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_PING;
  m.u.nonce = nonce;
  ck_assert_int_eq(gv_msg_encode_link(&m, &out, &len), 0);
  t_inject(c, l, GV_CHAN_LINK, out);
  free(out);
}

/* Core c's link l as gv_lcore_info() shows it; false if it is not listed
 * (CLOSING or gone). */
static bool t_info(int c, gv_linkid l, gv_link_info *out) {
  for (size_t k = 0; gv_lcore_info(T.n[c].lc, k, out); k++)
    if (out->id == l)
      return true;
  return false;
}

static bool t_ready(int c, gv_linkid l) {
  gv_link_info info;
  return t_info(c, l, &info) && info.ready;
}

/* The reason of the last CLOSE core c gave for link l; -1 if none. */
static int t_closed_why(int c, gv_linkid l) {
  for (size_t i = T.n[c].n_close; i-- > 0;)
    if (T.n[c].closes[i].link == l)
      return T.n[c].closes[i].why;
  return -1;
}

static const gv_lcore_stats *t_stats(int c) {
  return gv_lcore_stats_get(T.n[c].lc);
}

#define LA(x) T.w[x].link[0] /* the dialer's link of wire x */
#define LB(x) T.w[x].link[1] /* the acceptor's */

/* ---- 1. HELLO ---- */

/* Both ends open, the HELLOs cross, both are READY; each service hears
 * `up` once, with the peer, which end dialed, the dialed address and the
 * peer's HELLO (its agent, its wall clock and what its service added). */
START_TEST(test_hello_ready) {
  gv_lcore_cfg c;
  gv_addr want = addr_of(1);
  int a, b, w;

  t_init(5000);
  cfg_test(&c);
  a = t_node(&c, 0x11, "alpha/1.0");
  b = t_node(&c, 0x22, "beta/2.0");
  T.n[a].f.hello_seq = 41;
  T.n[b].f.hello_seq = 42;
  gv_lcore_set_wall(T.n[b].lc, T0_MS);
  w = t_dial(a, b);
  ck_assert(!t_ready(a, LA(w)));
  t_pump();

  ck_assert(t_ready(a, LA(w)));
  ck_assert(t_ready(b, LB(w)));
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 1);
  ck_assert_uint_eq(t_stats(a)->opened, 1);

  ck_assert_uint_eq(T.n[a].f.ups, 1);
  ck_assert_uint_eq(T.n[a].f.up.link, LA(w));
  ck_assert_mem_eq(T.n[a].f.up.peer, T.n[b].id, GV_ID_BYTES);
  ck_assert(T.n[a].f.up.dialed);
  ck_assert(T.n[a].f.up.has_addr);
  ck_assert(gv_addr_equal(&T.n[a].f.up.addr, &want));
  ck_assert_int_eq(T.n[a].f.up.type, GV_MSG_HELLO);
  ck_assert_str_eq(T.n[a].f.up.agent, "beta/2.0");
  ck_assert_uint_eq(T.n[a].f.up.seq, 42);
  ck_assert_int_eq(T.n[a].f.up.ts, T0_MS + 5000); /* b's wall clock */

  ck_assert_uint_eq(T.n[b].f.ups, 1);
  ck_assert_uint_eq(T.n[b].f.up.link, LB(w));
  ck_assert_mem_eq(T.n[b].f.up.peer, T.n[a].id, GV_ID_BYTES);
  ck_assert(!T.n[b].f.up.dialed);
  ck_assert(!T.n[b].f.up.has_addr);
  ck_assert_str_eq(T.n[b].f.up.agent, "alpha/1.0");
  ck_assert_uint_eq(T.n[b].f.up.seq, 41);
  ck_assert_int_eq(T.n[b].f.up.ts, 5000);
  ck_assert_uint_eq(T.n[a].f.downs + T.n[b].f.downs, 0);

  /* Both held by gossip; info says which end dialed. */
  {
    gv_link_info ia, ib;
    ck_assert(t_info(a, LA(w), &ia) && t_info(b, LB(w), &ib));
    ck_assert_uint_eq(ia.holds, GV_HOLD_GOSSIP);
    ck_assert(ia.dialed && !ib.dialed);
    ck_assert_int_eq(ia.up_at, 5000);
    ck_assert_mem_eq(ib.peer, T.n[a].id, GV_ID_BYTES);
  }
  t_free();
}
END_TEST

/* HELLO carries the sender's own signed record to the service; a record
 * of someone else is dropped (PROTOCOL.md §6.4); a record from the future
 * of the receiver's wall clock fails HELLO, so the link closes PROTOCOL. */
static void seal_record(gv_msg *m, const gv_identity *id, int64_t ts) {
  char *out;
  size_t len;
  memset(m, 0, sizeof(*m));
  m->type = GV_MSG_PEER_ANNOUNCEMENT;
  m->seq = 3;
  m->ts = ts;
  ck_assert_int_eq(gv_msg_seal(m, id, &out, &len), 0);
  free(out);
}

START_TEST(test_hello_record) {
  gv_lcore_cfg c;
  gv_identity ia, ib, ic;
  gv_msg own, other;
  int a, b, w;

  t_init(1000);
  cfg_test(&c);
  tu_identity(&ia, 0x11);
  tu_identity(&ib, 0x22);
  tu_identity(&ic, 0x33);
  a = t_node_id(&c, ia.pk, NULL);
  b = t_node_id(&c, ib.pk, NULL);
  gv_lcore_set_wall(T.n[a].lc, T0_MS);
  gv_lcore_set_wall(T.n[b].lc, T0_MS);
  seal_record(&own, &ia, T0_MS);
  seal_record(&other, &ic, T0_MS);

  T.n[a].f.record = &own;
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(b, LB(w)));
  ck_assert(T.n[b].f.up.has_record);
  ck_assert_mem_eq(T.n[b].f.up.record_origin, ia.pk, GV_ID_BYTES);
  ck_assert(!T.n[a].f.up.has_record); /* b sent none */
  gv_lcore_close_all(T.n[a].lc, GV_CLOSE_SHUTDOWN, T.now);
  t_pump();

  T.n[a].f.record = &other;
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(b, LB(w)));
  ck_assert(!T.n[b].f.up.has_record);
  gv_lcore_close_all(T.n[a].lc, GV_CLOSE_SHUTDOWN, T.now);
  t_pump();

  /* b's wall clock an hour behind: a's record is from its future. */
  T.n[a].f.record = &own;
  gv_lcore_set_wall(T.n[b].lc, T0_MS - 3600000);
  w = t_dial(a, b);
  t_pump();
  ck_assert_int_eq(t_closed_why(b, LB(w)), GV_CLOSE_PROTOCOL);
  ck_assert_uint_ge(T.n[b].n_reject, 1);
  ck_assert_int_eq(T.n[b].rejects[T.n[b].n_reject - 1].rc, GV_EFUTURE);
  ck_assert_uint_eq(T.n[b].f.ups, 2);
  gv_msg_clear(&own);
  gv_msg_clear(&other);
  t_free();
}
END_TEST

/* ---- 2. the channel byte ---- */

START_TEST(test_channels) {
  gv_lcore_cfg c;
  uint8_t peer[GV_ID_BYTES];
  const uint8_t empty = 0;
  int a, b, w;
  gv_linkid l;

  t_init(1000);
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  memset(peer, 0x99, sizeof(peer));

  /* Gossip before HELLO: the link's rules are broken. */
  l = t_open_raw(a, peer, false);
  t_pump();
  t_inject(a, l, GV_CHAN_GOSSIP, "{\"v\":1}");
  ck_assert_int_eq(t_closed_why(a, l), GV_CLOSE_PROTOCOL);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_PROTOCOL], 1);
  ck_assert_uint_eq(T.n[a].f.recvs, 0);
  ck_assert_uint_eq(T.n[a].f.ups, 0);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);

  /* Unknown channels on a READY link: counted, ignored, link stays. */
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  t_inject(a, LA(w), 7, "{\"v\":1}");
  ck_assert_uint_eq(t_stats(a)->unknown_chan, 1);
  t_inject(a, LA(w), GV_CHAN_RELAY, "anything"); /* no relay service */
  ck_assert_uint_eq(t_stats(a)->unknown_chan, 2);
  t_inject(a, LA(w), 255, "x");
  ck_assert_uint_eq(t_stats(a)->unknown_chan, 3);
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->rejected, 1); /* only the gossip above */
  ck_assert_uint_eq(T.n[a].f.recvs, 0);

  /* The gossip channel reaches the service. */
  t_inject(a, LA(w), GV_CHAN_GOSSIP, "{\"v\":1}");
  /* An IHAVE on the link channel: rejected, penalized, the link stays. */
  t_inject(a, LA(w), GV_CHAN_LINK,
           "{\"v\":1,\"type\":\"IHAVE\",\"ids\":[\""
           "0000000000000000000000000000000000000000000000000000000000000000"
           "\"]}");
  ck_assert_int_eq(T.n[a].rejects[T.n[a].n_reject - 1].rc, GV_ETYPE);
  ck_assert(t_ready(a, LA(w)));
  ck_assert_double_gt(T.n[a].f.score.penalty, 0);
  ck_assert_uint_eq(T.n[a].f.recvs, 1);
  ck_assert_uint_eq(t_stats(a)->msgs_in[GV_CHAN_GOSSIP], 2); /* + the first */
  ck_assert(t_ready(a, LA(w)));

  /* A second HELLO breaks the link's rules: PROTOCOL. */
  {
    gv_msg h;
    char *out;
    size_t len;
    int w2 = t_dial(a, b);
    memset(&h, 0, sizeof(h));
    h.type = GV_MSG_HELLO;
    h.ts = 1000;
    snprintf(h.u.hello.agent, sizeof(h.u.hello.agent), "again/1");
    ck_assert_int_eq(gv_msg_encode_link(&h, &out, &len), 0);
    t_pump(); /* b: a duplicate, refused; a's first link stays */
    ck_assert(t_ready(a, LA(w)));
    ck_assert_int_eq(t_closed_why(a, LA(w2)), GV_CLOSE_DUPLICATE);
    t_inject(b, LB(w), GV_CHAN_LINK, out);
    free(out);
    ck_assert_int_eq(t_closed_why(b, LB(w)), GV_CLOSE_PROTOCOL);
    ck_assert_int_eq(T.n[b].rejects[T.n[b].n_reject - 1].rc, GV_ESTATE);
    w = t_dial(a, b);
    t_pump();
    ck_assert(t_ready(a, LA(w)));
  }
  /* An empty plaintext (no channel byte): PROTOCOL. */
  gv_lcore_recv(T.n[a].lc, LA(w), &empty, 0, T.now);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_PROTOCOL);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_PROTOCOL], 2);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_PROTOCOL], 1);
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_int_eq(T.n[a].f.down_why[LA(w)], GV_CLOSE_PROTOCOL);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_GOODBYE], 1);
  t_free();
}
END_TEST

/* A dial that ends before READY hands the services the address it dialed
 * (the link keeps it only until READY: the PING state takes its bytes);
 * an inbound link, or a dial that became READY, never calls dial_ended.
 * The dialed link that became READY then PINGs with a fresh nonce: its
 * PONG is recognised (the address left nothing behind). */
START_TEST(test_dial_ended_addr) {
  gv_lcore_cfg c;
  uint8_t peer[GV_ID_BYTES];
  gv_addr want = addr_of(9), want_b;
  gv_link_info ia;
  gv_linkid l;
  int a, b, w;
  int64_t t0 = 3000;

  t_init(t0);
  T.latency = 50;
  cfg_test(&c);
  c.hello_ms = 10000;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  memset(peer, 0x77, sizeof(peer));
  l = t_open_raw(a, peer, true); /* never answers */
  t_open_raw(a, peer, false);    /* inbound, never answers */
  w = t_dial(a, b);
  t_advance(t0 + 150); /* READY, PING out and its PONG back */
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->pongs, 1);
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq_tol(ia.rtt_ms, 100, 1e-9);
  ck_assert_uint_eq(T.n[a].f.dial_ends, 0);
  want_b = addr_of(b);
  ck_assert(gv_addr_equal(&T.n[a].f.up.addr, &want_b));

  t_tick(a, t0 + 10000); /* both raw links: HELLO_TIMEOUT */
  ck_assert_int_eq(t_closed_why(a, l), GV_CLOSE_HELLO_TIMEOUT);
  ck_assert_uint_eq(T.n[a].f.dial_ends, 1); /* the dialed one only */
  ck_assert_mem_eq(T.n[a].f.ended.peer, peer, GV_ID_BYTES);
  ck_assert(T.n[a].f.ended.has_addr);
  ck_assert(gv_addr_equal(&T.n[a].f.ended.addr, &want));
  ck_assert_int_eq(T.n[a].f.ended.why, GV_CLOSE_HELLO_TIMEOUT);
  ck_assert(t_ready(a, LA(w)));
  t_free();
}
END_TEST

/* ---- 3. PING / PONG ---- */

/* With 100 ms each way, the first PING goes out at READY and its PONG
 * comes back 200 ms later: RTT 200, performance moves off 50, the service
 * hears the new score. Loop 1: no latency, and the clock starts at 0 (as
 * a simulator's may), so the PING leaves at now == 0. */
START_TEST(test_ping_pong) {
  gv_lcore_cfg c;
  gv_link_info ia;
  int a, b, w;
  int64_t t0 = _i == 0 ? 5000 : 0, lat = _i == 0 ? 100 : 0;

  t_init(t0);
  T.latency = lat;
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  if (lat > 0) {
    t_advance(t0 + lat); /* HELLOs arrive: READY, PINGs go out */
    ck_assert(t_ready(a, LA(w)));
    ck_assert_uint_eq(t_stats(a)->pings, 1);
    ck_assert_uint_eq(t_stats(b)->pings, 1);
    ck_assert_uint_eq(t_stats(a)->pongs, 0);
    ck_assert(t_info(a, LA(w), &ia));
    ck_assert_double_eq(ia.rtt_ms, -1);
    ck_assert_double_eq(ia.performance, 50);
    ck_assert_double_eq(gv_lcore_score(T.n[a].lc, LA(w)), 50);
  }
  t_advance(t0 + 3 * lat); /* the PONGs are back */
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->pings, 1);
  ck_assert_uint_eq(t_stats(a)->pongs, 1);
  ck_assert_uint_eq(t_stats(b)->pongs, 1);
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq_tol(ia.rtt_ms, 2.0 * (double)lat, 1e-9);
  ck_assert_double_gt(ia.performance, 50);
  ck_assert_double_gt(ia.availability, 50);
  ck_assert_double_eq_tol(ia.score, gv_lcore_score(T.n[a].lc, LA(w)), 1e-9);
  ck_assert_double_gt(ia.score, 50);
  ck_assert_uint_ge(T.n[a].f.scores, 1);
  ck_assert_uint_eq(T.n[a].f.score.id, LA(w));
  ck_assert_double_eq_tol(T.n[a].f.score.rtt_ms, 2.0 * (double)lat, 1e-9);
  ck_assert_uint_eq(ia.msgs_in, 3);  /* HELLO, PING, PONG */
  ck_assert_uint_eq(ia.msgs_out, 3); /* the same */
  /* The PING is answered with a PONG, never a PONG with anything. */
  ck_assert_uint_eq(T.n[a].sends[LA(w)], 3);
  t_free();
}
END_TEST

/* ---- 4. liveness timers ---- */

START_TEST(test_ping_timeout) {
  gv_lcore_cfg c;
  int a, b, w;
  int64_t t0 = 7000, due;

  t_init(t0);
  cfg_test(&c);
  c.ping_ms = 30000;
  c.ping_timeout_ms = 20000;
  c.idle_ms = 90000;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  T.w[w].drop_pong[1] = true; /* b's PONGs never reach a */
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->pings, 1);
  due = gv_lcore_expiry(T.n[a].lc);
  ck_assert_int_eq(due, t0 + 20000);
  t_tick(a, due - 1);
  ck_assert(t_ready(a, LA(w)));
  t_tick(a, due);
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_PING_TIMEOUT);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_PING_TIMEOUT], 1);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_GOODBYE], 1);

  /* A later PING, not the first: at next_ping it goes out, and its own
   * deadline follows. */
  w = t_dial(a, b);
  t_pump();
  t0 = T.now;
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->pongs, 1);
  T.w[w].drop_pong[1] = true;
  due = gv_lcore_expiry(T.n[a].lc);
  ck_assert_int_ge(due, t0 + 15000); /* the interval, jittered ±50% */
  ck_assert_int_le(due, t0 + 45000);
  t_tick(a, due - 1);
  ck_assert_uint_eq(t_stats(a)->pings, 2);
  t_tick(a, due);
  ck_assert_uint_eq(t_stats(a)->pings, 3);
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), due + 20000);
  t_tick(a, due + 19999);
  ck_assert(t_ready(a, LA(w)));
  t_tick(a, due + 20000);
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_PING_TIMEOUT);
  t_free();
}
END_TEST

START_TEST(test_idle_timeout) {
  gv_lcore_cfg c;
  int a, b, w;
  int64_t t0 = 3000;

  t_init(t0);
  cfg_test(&c);
  c.ping_ms = 0; /* no PINGs: nothing on the link after HELLO */
  c.idle_ms = 90000;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(t_stats(a)->pings, 0);
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), t0 + 90000);

  /* A message at +50 s moves the deadline. */
  T.now = t0 + 50000;
  t_inject(a, LA(w), GV_CHAN_GOSSIP, "{}");
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), t0 + 140000);
  ck_assert_int_eq(gv_lcore_expiry(T.n[b].lc), t0 + 90000);
  t_tick(a, t0 + 90000);
  ck_assert(t_ready(a, LA(w)));
  t_tick(b, t0 + 89999);
  ck_assert(t_ready(b, LB(w)));
  t_tick(b, t0 + 90000);
  ck_assert_int_eq(t_closed_why(b, LB(w)), GV_CLOSE_IDLE);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_IDLE], 1);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_GOODBYE], 1);
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), INT64_MAX);
  t_free();
}
END_TEST

START_TEST(test_hello_timeout) {
  gv_lcore_cfg c;
  uint8_t peer[GV_ID_BYTES];
  int a;
  gv_linkid l;
  int64_t t0 = 2000;

  t_init(t0);
  cfg_test(&c);
  c.hello_ms = 10000;
  a = t_node(&c, 0x11, NULL);
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), INT64_MAX);
  memset(peer, 0x77, sizeof(peer));
  l = t_open_raw(a, peer, false);
  t_pump();
  ck_assert_uint_eq(T.n[a].sends[l], 1); /* our HELLO */
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), t0 + 10000);
  t_tick(a, t0 + 9999);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 1);
  t_tick(a, t0 + 10000);
  ck_assert_int_eq(t_closed_why(a, l), GV_CLOSE_HELLO_TIMEOUT);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_HELLO_TIMEOUT], 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);
  ck_assert_uint_eq(T.n[a].f.ups + T.n[a].f.downs, 0);
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), INT64_MAX);

  /* A link-channel message other than HELLO first: PROTOCOL. */
  l = t_open_raw(a, peer, false);
  t_pump();
  t_inject_ping(a, l, 5);
  ck_assert_int_eq(t_closed_why(a, l), GV_CLOSE_PROTOCOL);
  ck_assert_uint_eq(T.n[a].sends[l], 1); /* no PONG */
  t_free();
}
END_TEST

/* ---- 5. a wall-clock step ---- */

/* Runs a pair for 20 minutes with 50 ms latency; at 7 min the wall clock
 * of a (stepped) jumps back an hour and b's forward; from 14 min b's
 * PONGs are dropped. Records when each PING went out and when the link
 * closed, and the HELLO time a third core sees from a. */
typedef struct wall_run {
  int64_t ping_at[2][64];
  unsigned n_ping[2];
  int64_t close_at, close_why;
  int64_t hello_ts, dial_at;
  int64_t expiry[3][4800]; /* each core's, at each 250 ms sample */
  unsigned n_samples;
} wall_run;

static void wall_scenario(bool stepped, wall_run *r) {
  gv_lcore_cfg c;
  int a, b, d, w;
  uint64_t seen[2] = {0, 0};
  int64_t hello_due = 0;

  memset(r, 0, sizeof(*r));
  t_init(1000);
  T.latency = 50;
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  d = t_node(&c, 0x33, NULL);
  for (int i = 0; i < 3; i++)
    gv_lcore_set_wall(T.n[i].lc, T0_MS);
  w = t_dial(a, b);
  for (int64_t t = 1000; t <= 20 * MIN; t += 250) {
    if (t == 7 * MIN && stepped) {
      gv_lcore_set_wall(T.n[a].lc, T0_MS - 3600000);
      gv_lcore_set_wall(T.n[b].lc, T0_MS + 3600000);
    }
    if (t == 14 * MIN)
      T.w[w].drop_pong[1] = true;
    if (t == 7 * MIN + 500) { /* a peer that never says HELLO */
      uint8_t peer[GV_ID_BYTES];
      memset(peer, 0x77, sizeof(peer));
      t_open_raw(a, peer, false);
    }
    if (t == 8 * MIN) {
      r->dial_at = T.now;
      t_dial(a, d);
    }
    t_advance(t);
    ck_assert_uint_lt(r->n_samples, 4800);
    for (int i = 0; i < 3; i++)
      r->expiry[i][r->n_samples] = gv_lcore_expiry(T.n[i].lc);
    r->n_samples++;
    for (int s = 0; s < 2; s++) {
      uint64_t p = t_stats(s == 0 ? a : b)->pings;
      for (; seen[s] < p; seen[s]++) {
        ck_assert_uint_lt(r->n_ping[s], 64);
        r->ping_at[s][r->n_ping[s]++] = T.now;
      }
    }
    if (t == 8 * MIN + 1000)
      r->hello_ts = T.n[d].f.up.ts;
  }
  for (size_t i = 0; i < T.n[a].n_close; i++)
    if (T.n[a].closes[i].why == GV_CLOSE_HELLO_TIMEOUT)
      hello_due = T.n[a].closes[i].at;
  ck_assert_int_eq(hello_due, 7 * MIN + 250 + 10000); /* opened at 7:00.25 */
  for (size_t i = 0; i < T.n[a].n_close; i++)
    if (T.n[a].closes[i].link == LA(w)) {
      r->close_at = T.n[a].closes[i].at;
      r->close_why = T.n[a].closes[i].why;
    }
  t_free();
}

START_TEST(test_wall_step) {
  static wall_run plain, stepped;
  unsigned after = 0;

  wall_scenario(false, &plain);
  wall_scenario(true, &stepped);
  /* The PINGs go out at the same times, before and after the step. */
  for (int s = 0; s < 2; s++) {
    ck_assert_uint_eq(plain.n_ping[s], stepped.n_ping[s]);
    for (unsigned i = 0; i < plain.n_ping[s]; i++) {
      ck_assert_int_eq(plain.ping_at[s][i], stepped.ping_at[s][i]);
      after += plain.ping_at[s][i] > 7 * MIN;
    }
  }
  ck_assert_uint_ge(after, 4); /* the comparison covers the step */
  /* Every timer of every core is due at the same ms throughout. */
  ck_assert_uint_eq(plain.n_samples, stepped.n_samples);
  for (int i = 0; i < 3; i++)
    for (unsigned k = 0; k < plain.n_samples; k++)
      ck_assert_int_eq(plain.expiry[i][k], stepped.expiry[i][k]);
  /* The unanswered PING closes the link at the same time. */
  ck_assert_int_eq(plain.close_why, GV_CLOSE_PING_TIMEOUT);
  ck_assert_int_eq(stepped.close_why, GV_CLOSE_PING_TIMEOUT);
  ck_assert_int_eq(plain.close_at, stepped.close_at);
  ck_assert_int_gt(plain.close_at, 14 * MIN);
  /* ...while the wall clock did move: it stamps HELLO. */
  ck_assert_int_eq(plain.hello_ts, T0_MS + plain.dial_at);
  ck_assert_int_eq(stepped.hello_ts, T0_MS - 3600000 + stepped.dial_at);
}
END_TEST

/* ---- 6. rate limit ---- */

START_TEST(test_rate_limit) {
  gv_lcore_cfg c;
  gv_link_info ia;
  int a, b, w;
  unsigned pongs_before, answered;
  uint64_t limited;

  t_init(1000);
  cfg_test(&c);
  c.rate_burst = 10;
  c.rate_per_s = 1;
  c.ping_ms = 0; /* the budget is ours alone: HELLO took one token */
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq(ia.penalty, 0);

  pongs_before = T.n[a].sends[LA(w)];
  for (uint64_t i = 0; i < 30; i++)
    t_inject_ping(a, LA(w), i + 1);
  limited = t_stats(a)->rate_limited;
  answered = T.n[a].sends[LA(w)] - pongs_before;
  ck_assert_uint_ge(limited, 15);
  ck_assert_uint_eq(answered + limited, 30);
  ck_assert_uint_ge(answered, 1);
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq_tol(ia.penalty, (double)limited, 1e-9);
  ck_assert(ia.ready); /* 21 points do not ban */

  /* 5 s refill 5 tokens: of 6 PINGs, 5 are answered. */
  T.now += 5000;
  pongs_before = T.n[a].sends[LA(w)];
  for (uint64_t i = 0; i < 6; i++)
    t_inject_ping(a, LA(w), 100 + i);
  ck_assert_uint_eq(T.n[a].sends[LA(w)] - pongs_before, 5);
  ck_assert_uint_eq(t_stats(a)->rate_limited, limited + 1);

  /* Gossip shares the budget; relay does not (flow control of its own,
   * here: no relay service, so it is only counted as unknown). */
  t_inject(a, LA(w), GV_CHAN_GOSSIP, "{}");
  ck_assert_uint_eq(T.n[a].f.recvs, 0);
  ck_assert_uint_eq(t_stats(a)->rate_limited, limited + 2);
  t_free();
}
END_TEST

/* ---- 7. penalties and bans ---- */

START_TEST(test_ban) {
  gv_lcore_cfg c;
  int a, b, w;
  unsigned sent = 0;
  int64_t banned_at, until;
  double last = 1e9;

  t_init(1000);
  cfg_test(&c);
  c.ban_ms = 10 * MIN;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  ck_assert(!gv_lcore_banned(T.n[a].lc, T.n[b].id));

  T.n[a].f.recv_rc = GV_EBADSIG;
  T.n[a].f.recv_why = "forged record of test";
  while (sent < 20 && t_closed_why(a, LA(w)) < 0) {
    unsigned scores = T.n[a].f.scores;
    t_inject(a, LA(w), GV_CHAN_GOSSIP, "{}");
    sent++;
    if (t_closed_why(a, LA(w)) < 0) { /* the service hears each new score */
      ck_assert_uint_eq(T.n[a].f.scores, scores + 1);
      ck_assert_double_lt(T.n[a].f.score.score, last);
      last = T.n[a].f.score.score;
    }
  }
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_BANNED);
  ck_assert_uint_ge(sent, 2);
  ck_assert_uint_eq(T.n[a].f.recvs, sent);
  ck_assert_uint_eq(t_stats(a)->rejected, sent);
  ck_assert_uint_eq(T.n[a].n_reject, sent);
  for (size_t i = 0; i < T.n[a].n_reject; i++) {
    ck_assert_uint_eq(T.n[a].rejects[i].link, LA(w));
    ck_assert_int_eq(T.n[a].rejects[i].rc, GV_EBADSIG);
    ck_assert_str_eq(T.n[a].rejects[i].why, "forged record of test");
  }
  ck_assert_uint_eq(t_stats(a)->bans, 1);
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_int_eq(T.n[a].f.down_why[LA(w)], GV_CLOSE_BANNED);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_GOODBYE], 1);
  ck_assert(gv_lcore_banned(T.n[a].lc, T.n[b].id));
  banned_at = T.now;
  until = banned_at + 10 * MIN;
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), until);

  /* b comes back, either way: refused BANNED, no HELLO sent. */
  T.now += 1000;
  w = t_dial(b, a);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LB(w)), GV_CLOSE_BANNED);
  ck_assert_uint_eq(T.n[a].sends[LB(w)], 0);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_BANNED], 2);
  ck_assert_uint_eq(t_stats(a)->bans, 1);
  w = t_dial(a, b);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_BANNED);
  ck_assert_uint_eq(T.n[a].f.ups, 1);

  /* The ban ends at its expiry, not before. */
  t_tick(a, until - 1);
  ck_assert(gv_lcore_banned(T.n[a].lc, T.n[b].id));
  t_tick(a, until);
  ck_assert(!gv_lcore_banned(T.n[a].lc, T.n[b].id));
  ck_assert_int_eq(gv_lcore_expiry(T.n[a].lc), INT64_MAX);
  T.n[a].f.recv_rc = 0;
  w = t_dial(b, a);
  t_pump();
  ck_assert(t_ready(a, LB(w)));
  ck_assert(t_ready(b, LA(w)));
  ck_assert_uint_eq(T.n[a].f.ups, 2);
  t_free();
}
END_TEST

/* A service's own report (gv_lcore_penalize) bans past the threshold. */
START_TEST(test_penalize) {
  gv_lcore_cfg c;
  gv_link_info ia;
  int a, b, w;

  t_init(1000);
  cfg_test(&c);
  c.ban_threshold = -30;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  gv_lcore_penalize(T.n[a].lc, LA(w), 40, T.now);
  t_pump();
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq_tol(ia.penalty, 40, 1e-9);
  ck_assert_double_eq_tol(T.n[a].f.score.penalty, 40, 1e-9);
  /* Penalties fade (half-life 10 min), as the core's clock moves. */
  t_advance(T.now + 10 * MIN);
  t_tick(a, T.now); /* info is as of the core's last call */
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_double_eq_tol(ia.penalty, 20, 1e-6);
  gv_lcore_penalize(T.n[a].lc, LA(w), 200, T.now);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_BANNED);
  ck_assert(gv_lcore_banned(T.n[a].lc, T.n[b].id));
  ck_assert(!gv_lcore_banned(T.n[b].lc, T.n[a].id));
  t_free();
}
END_TEST

/* ---- 8. duplicates ---- */

/* a and b dial each other at once. Both ends keep the link dialed by the
 * smaller id and close the other DUPLICATE, whatever order the four ends
 * open in (_i: which core has the smaller id, and the order). */
START_TEST(test_duplicates) {
  gv_lcore_cfg c;
  int a, b;
  int64_t t0 = 1000;
  bool a_small = (_i & 1) == 0;
  int order = _i >> 1;
  gv_addr addr_a, addr_b;
  gv_linkid a1, a2, b1, b2; /* a1/b1: a dialed; b2/a2: b dialed */
  int small, keep_small, keep_big;

  t_init(t0);
  cfg_test(&c);
  a = t_node(&c, a_small ? 0x11 : 0x99, NULL);
  b = t_node(&c, a_small ? 0x55 : 0x22, NULL);
  addr_a = addr_of(a);
  addr_b = addr_of(b);
  /* Two wires, filled by hand to open the ends in any order. */
  T.w[0] = (wire){{a, b}, {new_link(a), new_link(b)}, {true, true}, {0}, {0}};
  T.w[1] = (wire){{b, a}, {new_link(b), new_link(a)}, {true, true}, {0}, {0}};
  T.nw = 2;
  a1 = T.w[0].link[0];
  b1 = T.w[0].link[1];
  b2 = T.w[1].link[0];
  a2 = T.w[1].link[1];
  {
    /* The four ends, opened in one of four orders. */
    static const int orders[4][4] = {
        {0, 1, 2, 3}, {2, 3, 0, 1}, {0, 2, 1, 3}, {3, 1, 2, 0}};
    for (int k = 0; k < 4; k++) {
      switch (orders[order][k]) {
      case 0:
        gv_lcore_open(T.n[a].lc, a1, T.n[b].id, true, &addr_b, T.now);
        break;
      case 1:
        gv_lcore_open(T.n[b].lc, b1, T.n[a].id, false, NULL, T.now);
        break;
      case 2:
        gv_lcore_open(T.n[b].lc, b2, T.n[a].id, true, &addr_a, T.now);
        break;
      case 3:
        gv_lcore_open(T.n[a].lc, a2, T.n[b].id, false, NULL, T.now);
        break;
      }
    }
  }
  t_pump();
  small = a_small ? a : b;
  /* The survivor is wire 0 if a (its dialer) is the smaller id. */
  keep_small = small == a ? (int)a1 : (int)b2;
  keep_big = small == a ? (int)b1 : (int)a2;
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 1);
  ck_assert(t_ready(small, (gv_linkid)keep_small));
  ck_assert(t_ready(small == a ? b : a, (gv_linkid)keep_big));
  {
    gv_link_info is;
    ck_assert(t_info(small, (gv_linkid)keep_small, &is));
    ck_assert(is.dialed); /* the smaller id dialed the survivor */
  }
  ck_assert_uint_ge(t_stats(a)->closed[GV_CLOSE_DUPLICATE] +
                        t_stats(b)->closed[GV_CLOSE_DUPLICATE],
                    1);
  ck_assert_uint_eq(T.n[a].f.ups - T.n[a].f.downs, 1);
  ck_assert_uint_eq(T.n[b].f.ups - T.n[b].f.downs, 1);
  /* And it stays that way: PINGs flow on the survivor. */
  t_advance(t0 + 2 * MIN);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 1);
  ck_assert(t_ready(small, (gv_linkid)keep_small));
  ck_assert_uint_ge(t_stats(a)->pongs, 2);
  t_free();
}
END_TEST

/* ---- 9. inbound and outbound caps ---- */

/* inbound_max 2: the third inbound link evicts the lowest-scored one. _i
 * picks which of the two has the worse penalty. */
START_TEST(test_evict) {
  gv_lcore_cfg c;
  int a, b, cc, d, wb, wc, wd, victim, spared;
  gv_linkid lv, ls;

  t_init(1000);
  cfg_test(&c);
  c.inbound_max = 2;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  cc = t_node(&c, 0x33, NULL);
  d = t_node(&c, 0x44, NULL);
  wb = t_dial(b, a);
  wc = t_dial(cc, a);
  t_pump();
  ck_assert(t_ready(a, LB(wb)) && t_ready(a, LB(wc)));
  victim = _i == 0 ? b : cc;
  spared = _i == 0 ? cc : b;
  lv = LB(_i == 0 ? wb : wc);
  ls = LB(_i == 0 ? wc : wb);
  gv_lcore_penalize(T.n[a].lc, lv, 30, T.now);
  gv_lcore_penalize(T.n[a].lc, ls, 20, T.now);
  t_pump();
  ck_assert_double_lt(gv_lcore_score(T.n[a].lc, lv),
                      gv_lcore_score(T.n[a].lc, ls));
  ck_assert_double_lt(gv_lcore_score(T.n[a].lc, ls), 50);

  wd = t_dial(d, a);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, lv), GV_CLOSE_EVICTED);
  ck_assert_int_eq(t_closed_why(a, ls), -1);
  ck_assert(t_ready(a, ls));
  ck_assert(t_ready(a, LB(wd)));
  ck_assert(t_ready(d, LA(wd)));
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 2);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_EVICTED], 1);
  ck_assert_int_eq(T.n[a].f.down_why[lv], GV_CLOSE_EVICTED);
  ck_assert_uint_eq(t_stats(victim)->closed[GV_CLOSE_GOODBYE], 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[victim].lc), 0);
  ck_assert_uint_eq(gv_lcore_count(T.n[spared].lc), 1);
  t_free();
}
END_TEST

/* Links older than protect_ms scoring >= 50 are never evicted; an old one
 * scoring below 50 is. */
START_TEST(test_evict_protected) {
  gv_lcore_cfg c;
  int a, b, cc, d, e, wb, wc, wd, we;

  t_init(1000);
  T.latency = 20;
  cfg_test(&c);
  c.inbound_max = 2;
  c.protect_ms = 5 * MIN;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  cc = t_node(&c, 0x33, NULL);
  d = t_node(&c, 0x44, NULL);
  e = t_node(&c, 0x55, NULL);
  wb = t_dial(b, a);
  wc = t_dial(cc, a);
  t_advance(6 * MIN); /* PINGs keep them alive and scoring */
  ck_assert(t_ready(a, LB(wb)) && t_ready(a, LB(wc)));
  ck_assert_double_ge(gv_lcore_score(T.n[a].lc, LB(wb)), 50);
  gv_lcore_penalize(T.n[a].lc, LB(wc), 60, T.now);
  t_pump();
  ck_assert_double_lt(gv_lcore_score(T.n[a].lc, LB(wc)), 50);

  wd = t_dial(d, a); /* evicts c, old but poor */
  t_advance(T.now + 1000);
  ck_assert_int_eq(t_closed_why(a, LB(wc)), GV_CLOSE_EVICTED);
  ck_assert(t_ready(a, LB(wd)));

  t_advance(12 * MIN); /* d is old and good too */
  ck_assert_double_ge(gv_lcore_score(T.n[a].lc, LB(wd)), 50);
  we = t_dial(e, a); /* b and d are protected */
  t_advance(T.now + 1000);
  ck_assert_int_eq(t_closed_why(a, LB(we)), GV_CLOSE_FULL);
  ck_assert(t_ready(a, LB(wb)));
  ck_assert(t_ready(a, LB(wd)));
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_FULL], 1);
  ck_assert_uint_eq(T.n[e].f.ups, 0);
  ck_assert_uint_eq(gv_lcore_count(T.n[e].lc), 0);
  t_free();
}
END_TEST

/* The header: FULL means "no inbound slot, none to evict", and only links
 * older than protect_ms scoring >= 50 are spared. So a young inbound link
 * is evicted for a newcomer even when it scores above 50: the lower-scored
 * of two young links, both READY and pinged, goes. */
START_TEST(test_evict_young) {
  gv_lcore_cfg c;
  int a, b, cc, d, wb, wc, wd;

  t_init(1000);
  cfg_test(&c);
  c.inbound_max = 2;
  c.protect_ms = 10 * MIN;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  cc = t_node(&c, 0x33, NULL);
  d = t_node(&c, 0x44, NULL);
  wb = t_dial(b, a);
  wc = t_dial(cc, a);
  t_pump();
  gv_lcore_penalize(T.n[a].lc, LB(wb), 5, T.now); /* the victim */
  t_pump();
  ck_assert_double_gt(gv_lcore_score(T.n[a].lc, LB(wb)), 50);
  ck_assert_double_lt(gv_lcore_score(T.n[a].lc, LB(wb)),
                      gv_lcore_score(T.n[a].lc, LB(wc)));
  wd = t_dial(d, a);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LB(wd)), -1); /* not refused FULL */
  ck_assert_int_eq(t_closed_why(a, LB(wb)), GV_CLOSE_EVICTED);
  ck_assert(t_ready(a, LB(wc)));
  ck_assert(t_ready(a, LB(wd)));
  t_free();
}
END_TEST

START_TEST(test_outbound_cap) {
  gv_lcore_cfg c;
  int a, b, cc, wb, wc;

  t_init(1000);
  cfg_test(&c);
  c.outbound_max = 1;
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  cc = t_node(&c, 0x33, NULL);
  wb = t_dial(a, b);
  wc = t_dial(a, cc);
  t_pump();
  ck_assert(t_ready(a, LA(wb)));
  ck_assert_int_eq(t_closed_why(a, LA(wc)), GV_CLOSE_FULL);
  ck_assert_uint_eq(gv_lcore_count(T.n[cc].lc), 0);
  /* Inbound is a separate budget. */
  wc = t_dial(cc, a);
  t_pump();
  ck_assert(t_ready(a, LB(wc)));
  t_free();
}
END_TEST

/* ---- 10. not accepting ---- */

START_TEST(test_not_accepting) {
  gv_lcore_cfg c, silent;
  int a, b, cc, d, w, win, wout;

  t_init(1000);
  cfg_test(&c);
  silent = c;
  silent.accepting = false;
  a = t_node(&silent, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  cc = t_node(&c, 0x33, NULL);
  d = t_node(&c, 0x44, NULL);
  w = t_dial(b, a); /* inbound to a silent node */
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LB(w)), GV_CLOSE_NOT_ACCEPTING);
  ck_assert_uint_eq(T.n[a].sends[LB(w)], 0);
  ck_assert_uint_eq(T.n[b].f.ups, 0);
  w = t_dial(a, b); /* but it dials out */
  t_pump();
  ck_assert(t_ready(a, LA(w)));

  /* Going silent closes inbound links, keeps dialed ones. */
  gv_lcore_set_accepting(T.n[a].lc, true, T.now);
  win = t_dial(cc, a);
  wout = t_dial(a, d);
  t_pump();
  ck_assert(t_ready(a, LB(win)) && t_ready(a, LA(wout)));
  gv_lcore_set_accepting(T.n[a].lc, false, T.now);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LB(win)), GV_CLOSE_NOT_ACCEPTING);
  ck_assert_int_eq(T.n[a].f.down_why[LB(win)], GV_CLOSE_NOT_ACCEPTING);
  ck_assert(t_ready(a, LA(wout)));
  ck_assert(t_ready(a, LA(w)));
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 2);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_NOT_ACCEPTING], 2);
  ck_assert_uint_eq(gv_lcore_count(T.n[cc].lc), 0);
  t_free();
}
END_TEST

/* ---- 11. holds ---- */

START_TEST(test_unwanted) {
  gv_lcore_cfg c;
  int a, b, w;

  t_init(1000);
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  T.n[a].f.hold = false;
  w = t_dial(a, b);
  t_pump();
  ck_assert_uint_eq(T.n[a].f.ups, 1);
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_UNWANTED);
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_uint_eq(t_stats(a)->pings, 0); /* never PINGed */
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_GOODBYE], 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 0);
  t_free();
}
END_TEST

START_TEST(test_hold_release) {
  gv_lcore_cfg c;
  gv_link_info ia;
  uint8_t peer[GV_ID_BYTES];
  int a, b, w;
  gv_linkid l;

  t_init(1000);
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  ck_assert_int_eq(gv_lcore_hold(T.n[a].lc, LA(w), GV_HOLD_RELAY, T.now), 0);
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert_uint_eq(ia.holds, GV_HOLD_GOSSIP | GV_HOLD_RELAY);
  ck_assert_int_eq(gv_lcore_release(T.n[a].lc, LA(w), GV_HOLD_GOSSIP, T.now),
                   0);
  t_pump();
  ck_assert(t_info(a, LA(w), &ia));
  ck_assert(ia.ready);
  ck_assert_uint_eq(ia.holds, GV_HOLD_RELAY);
  ck_assert_int_eq(t_closed_why(a, LA(w)), -1);
  ck_assert_int_eq(gv_lcore_release(T.n[a].lc, LA(w), GV_HOLD_RELAY, T.now), 0);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_UNWANTED);
  ck_assert_int_eq(T.n[a].f.down_why[LA(w)], GV_CLOSE_UNWANTED);

  /* Not READY: OPEN, gone, never known. */
  memset(peer, 0x66, sizeof(peer));
  l = t_open_raw(a, peer, false);
  t_pump();
  ck_assert_int_eq(gv_lcore_release(T.n[a].lc, l, GV_HOLD_GOSSIP, T.now),
                   GV_ESTATE);
  ck_assert_int_eq(gv_lcore_hold(T.n[a].lc, l, GV_HOLD_GOSSIP, T.now),
                   GV_ESTATE);
  ck_assert_int_eq(gv_lcore_release(T.n[a].lc, LA(w), GV_HOLD_GOSSIP, T.now),
                   GV_ESTATE);
  ck_assert_int_eq(gv_lcore_release(T.n[a].lc, 60, GV_HOLD_GOSSIP, T.now),
                   GV_ESTATE);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 1); /* l is still OPEN */
  t_free();
}
END_TEST

/* ---- 12. the transport's end ---- */

START_TEST(test_closed) {
  gv_lcore_cfg c;
  gv_action act;
  int a, b, w;
  uint64_t tr;

  t_init(1000);
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  b = t_node(&c, 0x22, NULL);
  w = t_dial(a, b);
  t_pump();
  T.manual_close = true;

  /* The core closes: down at once, before the transport is gone. */
  gv_lcore_release(T.n[a].lc, LA(w), GV_HOLD_GOSSIP, T.now);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_UNWANTED);
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);
  ck_assert(!t_ready(a, LA(w)));
  /* CLOSING: what still arrives is not dispatched. */
  t_inject(a, LA(w), GV_CHAN_GOSSIP, "{}");
  ck_assert_uint_eq(T.n[a].f.recvs, 0);
  tr = t_stats(a)->closed[GV_CLOSE_TRANSPORT];
  gv_lcore_closed(T.n[a].lc, LA(w), false, T.now);
  t_pump();
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_TRANSPORT], tr);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_UNWANTED], 1);
  ck_assert_uint_eq(T.n[a].n_close, 1);

  /* b's end sees the FINAL: GOODBYE, down once, no CLOSE of its own. */
  gv_lcore_closed(T.n[b].lc, LB(w), true, T.now);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_GOODBYE], 1);
  ck_assert_uint_eq(T.n[b].f.downs_of[LB(w)], 1);
  ck_assert_int_eq(T.n[b].f.down_why[LB(w)], GV_CLOSE_GOODBYE);
  while (gv_lcore_next(T.n[b].lc, &act))
    ck_assert_int_ne(act.type, GV_ACT_CLOSE);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 0);
  t_check();

  /* A transport lost without FINAL: TRANSPORT, on both ends. */
  w = t_dial(a, b);
  t_pump();
  ck_assert(t_ready(a, LA(w)));
  gv_lcore_closed(T.n[a].lc, LA(w), false, T.now);
  gv_lcore_closed(T.n[b].lc, LB(w), false, T.now);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_TRANSPORT], 1);
  ck_assert_uint_eq(t_stats(b)->closed[GV_CLOSE_TRANSPORT], 1);
  ck_assert_uint_eq(T.n[a].f.downs_of[LA(w)], 1);
  ck_assert_int_eq(T.n[a].f.down_why[LA(w)], GV_CLOSE_TRANSPORT);
  for (int k = 0; k < 2; k++)
    while (gv_lcore_next(T.n[k].lc, &act)) {
      ck_assert_int_ne(act.type, GV_ACT_CLOSE);
      if (act.type == GV_ACT_SEND)
        gv_buf_unref(act.buf);
    }
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);
  t_check();

  /* An OPEN link lost: no down (it never was READY). */
  {
    uint8_t peer[GV_ID_BYTES];
    gv_linkid l;
    memset(peer, 0x77, sizeof(peer));
    l = t_open_raw(a, peer, true);
    gv_lcore_closed(T.n[a].lc, l, false, T.now);
    t_pump();
    ck_assert_uint_eq(T.n[a].f.downs_of[l], 0);
    ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_TRANSPORT], 2);
  }
  /* A send the transport could not queue: QUEUE_FULL. */
  T.manual_close = false;
  w = t_dial(a, b);
  t_pump();
  gv_lcore_send_failed(T.n[a].lc, LA(w), T.now);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, LA(w)), GV_CLOSE_QUEUE_FULL);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 0);
  /* Shutdown closes all. */
  w = t_dial(a, b);
  t_dial(b, a); /* a duplicate, gone at once */
  t_pump();
  gv_lcore_close_all(T.n[a].lc, GV_CLOSE_SHUTDOWN, T.now);
  t_pump();
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_SHUTDOWN], 1);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);
  ck_assert_uint_eq(gv_lcore_count(T.n[b].lc), 0);
  t_free();
}
END_TEST

/* ---- 13. self ---- */

START_TEST(test_self) {
  gv_lcore_cfg c;
  int a;
  gv_linkid l1, l2;

  t_init(1000);
  cfg_test(&c);
  a = t_node(&c, 0x11, NULL);
  l1 = t_open_raw(a, T.n[a].id, true);
  l2 = t_open_raw(a, T.n[a].id, false);
  t_pump();
  ck_assert_int_eq(t_closed_why(a, l1), GV_CLOSE_SELF);
  ck_assert_int_eq(t_closed_why(a, l2), GV_CLOSE_SELF);
  ck_assert_uint_eq(t_stats(a)->closed[GV_CLOSE_SELF], 2);
  ck_assert_uint_eq(T.n[a].sends[l1] + T.n[a].sends[l2], 0);
  ck_assert_uint_eq(gv_lcore_count(T.n[a].lc), 0);
  ck_assert_uint_eq(T.n[a].f.ups, 0);
  t_free();
}
END_TEST

/* ---- 14. a long scenario, checked after every step ---- */

/* Five cores for an hour with latency: a ring of dials, crossing dials,
 * an inbound cap, a peer gone silent, a misbehaving peer banned and back,
 * a node going silent and back, a wall-clock step. t_pump() checks
 * gv_lcore_check() and up - down = READY after every step. */
START_TEST(test_long) {
  gv_lcore_cfg c;
  int n[5];
  int w01, w34;

  t_init(1000);
  T.latency = 30;
  cfg_test(&c);
  c.inbound_max = 2;
  c.ping_ms = 20000;
  c.ping_timeout_ms = 10000;
  c.idle_ms = 60000;
  c.ban_ms = 5 * MIN;
  for (int i = 0; i < 5; i++)
    n[i] = t_node(&c, (uint8_t)(0x10 * (i + 1)), NULL);
  for (int i = 0; i < 5; i++)
    t_dial(n[i], n[(i + 1) % 5]);
  w01 = 0;
  t_dial(n[1], n[0]); /* crossing dials */
  t_dial(n[2], n[0]); /* n0 is full: 4->0 and 2->0, evicts or refuses */
  t_advance(5 * MIN);
  ck_assert_uint_ge(T.steps, 100);
  for (int i = 0; i < 5; i++)
    ck_assert_uint_ge(gv_lcore_count(T.n[n[i]].lc), 1);

  /* n4 stops answering n3: n3 drops the link after a PING timeout. */
  w34 = 3;
  T.w[w34].mute[1] = true;
  t_advance(8 * MIN);
  ck_assert(!t_ready(n[3], LA(w34)));
  ck_assert_uint_ge(t_stats(n[3])->closed[GV_CLOSE_PING_TIMEOUT] +
                        t_stats(n[3])->closed[GV_CLOSE_IDLE],
                    1);

  /* n1's gossip turns bad: n0 bans it (if the 0-1 link survived). */
  T.n[n[0]].f.recv_rc = GV_EBADSIG;
  T.n[n[0]].f.recv_why = "bad";
  for (int k = 0; k < 10 && t_ready(n[0], LA(w01)); k++)
    t_inject(n[0], LA(w01), GV_CHAN_GOSSIP, "{}");
  T.n[n[0]].f.recv_rc = 0;
  if (t_stats(n[0])->bans > 0)
    ck_assert(gv_lcore_banned(T.n[n[0]].lc, T.n[n[1]].id));
  t_dial(n[1], n[0]);
  gv_lcore_set_wall(T.n[n[2]].lc, -3600000);
  t_advance(12 * MIN);
  gv_lcore_set_accepting(T.n[n[3]].lc, false, T.now);
  t_pump();
  t_dial(n[4], n[3]);
  t_dial(n[1], n[0]); /* after the ban, or a duplicate */
  t_advance(20 * MIN);
  gv_lcore_set_accepting(T.n[n[3]].lc, true, T.now);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++)
      if (i != j && T.nw < MAXW - 2 && (i + j) % 2 == 1)
        t_dial(n[i], n[j]);
  t_advance(60 * MIN);
  ck_assert(!gv_lcore_banned(T.n[n[0]].lc, T.n[n[1]].id));
  /* Every READY link has its READY twin at the other end. */
  for (int i = 0; i < T.nw; i++) {
    bool r0 = t_ready(T.w[i].core[0], T.w[i].link[0]);
    bool r1 = t_ready(T.w[i].core[1], T.w[i].link[1]);
    if (T.nq == 0)
      ck_assert_int_eq(r0, r1);
  }
  ck_assert_uint_ge(t_stats(n[0])->pongs, 10);
  ck_assert_uint_ge(T.steps, 1000);
  t_free();
}
END_TEST

static Suite *lcore_suite(void) {
  Suite *s = suite_create("lcore");
  TCase *tc = tcase_create("core");
  /* test_long checks the cores after each of its thousands of steps: well
   * under a second alone, past check's default 4 s on a loaded machine or
   * under ASan. The timeout is for a hang, not for speed. */
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_hello_ready);
  tcase_add_test(tc, test_hello_record);
  tcase_add_test(tc, test_dial_ended_addr);
  tcase_add_test(tc, test_channels);
  tcase_add_loop_test(tc, test_ping_pong, 0, 2);
  tcase_add_test(tc, test_ping_timeout);
  tcase_add_test(tc, test_idle_timeout);
  tcase_add_test(tc, test_hello_timeout);
  tcase_add_test(tc, test_wall_step);
  tcase_add_test(tc, test_rate_limit);
  tcase_add_test(tc, test_ban);
  tcase_add_test(tc, test_penalize);
  tcase_add_loop_test(tc, test_duplicates, 0, 8);
  tcase_add_loop_test(tc, test_evict, 0, 2);
  tcase_add_test(tc, test_evict_protected);
  tcase_add_test(tc, test_evict_young);
  tcase_add_test(tc, test_outbound_cap);
  tcase_add_test(tc, test_not_accepting);
  tcase_add_test(tc, test_unwanted);
  tcase_add_test(tc, test_hold_release);
  tcase_add_test(tc, test_closed);
  tcase_add_test(tc, test_self);
  tcase_add_test(tc, test_long);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(lcore_suite()); }

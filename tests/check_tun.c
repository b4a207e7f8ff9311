/* The torrent tunnel's core (node/tun.h, docs/TUNNEL.md): two to four
 * cores wired together in memory. A SEND action of one core is queued and
 * delivered, in order, to the recv of the core at the link's other end;
 * local sockets are fakes that read a known byte pattern and write slowly,
 * so the windows are what bounds every buffer. */
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "testutil.h"
#include "tun.h"

#define NMAX 4
#define LMAX 6
#define SMAX 16
#define STEPS_MAX 20000

/* ---- the harness ---- */

typedef struct tnode {
  gv_tun *t;
  uint8_t id[GV_ID_BYTES];
  bool accept;
  int errors, last_rc;
  gv_why why;
  bool held[LMAX];
  uint32_t last_open_sid;
  uint8_t last_send[GV_TW_OPEN_LEN]; /* the last SEND, channel byte off */
  size_t n_sends;
  /* cfg.route's answer: rkind, over link index rlink, or dialing node
   * rpeer; what was asked and dialed. */
  gv_tun_route_kind rkind;
  int rlink, rpeer, routes, dials;
  uint8_t last_dial[GV_ID_BYTES];
} tnode;

typedef struct tlnk {
  int a, b; /* a dialed b */
  bool up;
  size_t inflight[2]; /* DATA payload queued toward a (0) and b (1) */
} tlnk;

typedef struct fmsg {
  struct fmsg *next;
  int node, lk;
  uint8_t *data;
  size_t len;
} fmsg;

typedef struct fsock {
  bool used;
  int node;
  gv_tun_local h;
  bool connected, paused, shut, dead, connect_fail;
  int reason;
  uint8_t out_seed, in_seed;
  size_t sent, got, target;
  uint8_t *pend;
  size_t pend_len, pend_cap;
} fsock;

static tnode N[NMAX];
static int n_nodes;
static tlnk L[LMAX];
static int n_links;
static fmsg *q_head, *q_tail;
static fsock S[SMAX];
static size_t g_target;     /* bytes each socket sends */
static bool g_connect_fail; /* CONNECTs fail */
static size_t g_write_rate; /* bytes a socket writes per step */
static size_t g_read_size;  /* bytes a socket reads per step */
static size_t g_max_pend;   /* the most a fake socket had to buffer */
static size_t g_max_inflight;
static int g_pauses;
static bool g_random_data; /* DATA bytes are not the pattern */

static gv_linkid link_id(int k, int side) {
  return (gv_linkid)(side ? 200 + k : 100 + k);
}

/* The link index and side of node n's link id. */
static int link_of(int n, gv_linkid id, int *side) {
  for (int k = 0; k < n_links; k++) {
    if (L[k].a == n && link_id(k, 0) == id) {
      *side = 0;
      return k;
    }
    if (L[k].b == n && link_id(k, 1) == id) {
      *side = 1;
      return k;
    }
  }
  return -1;
}

static uint8_t pattern(uint8_t seed, size_t off) {
  return (uint8_t)(off * 131 + seed * 17 + (off >> 9));
}

static bool accept_cb(void *ctx, const uint8_t ih[GV_TW_IH_BYTES],
                      const uint8_t src[GV_ID_BYTES]) {
  tnode *n = ctx;
  (void)src;
  return n->accept && ih[0] == 0x1f;
}

static void route_cb(void *ctx, const uint8_t dst[GV_ID_BYTES],
                     gv_tun_route *out) {
  tnode *n = ctx;
  int self = (int)(n - N);

  (void)dst;
  n->routes++;
  out->kind = n->rkind;
  if (n->rkind == GV_TUN_ROUTE_LINK)
    out->link = link_id(n->rlink, L[n->rlink].b == self);
  if (n->rkind == GV_TUN_ROUTE_DIAL) {
    memcpy(out->peer, N[n->rpeer].id, GV_ID_BYTES);
    out->addr.family = 4;
    out->addr.port = (uint16_t)(1000 + n->rpeer);
  }
}

static void add_node(bool relay, unsigned streams_max, unsigned relayed_max) {
  tnode *n = &N[n_nodes];
  gv_tun_cfg cfg;

  memset(n, 0, sizeof *n);
  memset(n->id, 0x10 + n_nodes, GV_ID_BYTES);
  n->accept = true;
  gv_tun_cfg_default(&cfg);
  memcpy(cfg.self, n->id, GV_ID_BYTES);
  cfg.relay = relay;
  cfg.link_streams_max = streams_max;
  cfg.relayed_max = relayed_max;
  cfg.accept = accept_cb;
  cfg.route = route_cb;
  cfg.ctx = n;
  ck_assert_int_eq(gv_tun_new(&n->t, &cfg), 0);
  n_nodes++;
}

/* a dials b; returns the link's index. */
static int add_link(int a, int b) {
  int k = n_links++;
  L[k] = (tlnk){.a = a, .b = b, .up = true};
  N[a].held[k] = gv_tun_link_up(N[a].t, link_id(k, 0), N[b].id, true);
  N[b].held[k] = gv_tun_link_up(N[b].t, link_id(k, 1), N[a].id, false);
  return k;
}

static fsock *sock_find(int node, gv_tun_local h) {
  for (int i = 0; i < SMAX; i++)
    if (S[i].used && S[i].node == node && S[i].h == h)
      return &S[i];
  return NULL;
}

static fsock *sock_new(int node, gv_tun_local h, bool connected,
                       uint8_t out_seed) {
  int i;

  /* A free slot, else one whose socket is gone (the hostile test makes
   * many). */
  for (i = 0; i < SMAX && S[i].used; i++)
    ;
  for (int j = 0; i == SMAX && j < SMAX; j++)
    if (S[j].shut || S[j].dead) {
      free(S[j].pend);
      i = j;
    }
  if (i < SMAX) {
    S[i] = (fsock){.used = true,
                   .node = node,
                   .h = h,
                   .connected = connected,
                   .out_seed = out_seed,
                   .in_seed = (uint8_t)(3 - out_seed),
                   .target = g_target,
                   .connect_fail = g_connect_fail};
    return &S[i];
  }
  ck_abort_msg("too many sockets");
  return NULL;
}

static void drain(int n) {
  gv_tact a;
  fsock *s;
  int side, k;

  while (gv_tun_next(N[n].t, &a)) {
    switch (a.type) {
    case GV_TACT_SEND: {
      fmsg *m;
      ck_assert_uint_ge(a.len, 2);
      ck_assert_uint_eq(a.data[0], GV_CHAN_TORRENT);
      k = link_of(n, a.link, &side);
      ck_assert_int_ge(k, 0);
      N[n].n_sends++;
      memcpy(N[n].last_send, a.data + 1,
             a.len - 1 < GV_TW_OPEN_LEN ? a.len - 1 : GV_TW_OPEN_LEN);
      if (a.data[1] == GV_TW_OPEN)
        N[n].last_open_sid = (uint32_t)a.data[2] << 24 |
                             (uint32_t)a.data[3] << 16 |
                             (uint32_t)a.data[4] << 8 | a.data[5];
      if (!L[k].up) {
        free(a.data);
        break;
      }
      m = calloc(1, sizeof *m);
      m->node = side ? L[k].a : L[k].b;
      m->lk = k;
      m->data = a.data;
      m->len = a.len;
      if (a.data[1] == GV_TW_DATA) {
        size_t *f = &L[k].inflight[side ? 0 : 1];
        *f += a.len - 1 - GV_TW_DATA_HDR;
        if (*f > g_max_inflight)
          g_max_inflight = *f;
      }
      if (q_tail)
        q_tail->next = m;
      else
        q_head = m;
      q_tail = m;
      break;
    }
    case GV_TACT_CONNECT:
      ck_assert_uint_eq(a.ih[0], 0x1f);
      sock_new(n, a.local, false, 2);
      break;
    case GV_TACT_WRITE:
      s = sock_find(n, a.local);
      ck_assert_ptr_nonnull(s);
      ck_assert(!s->shut);
      if (s->pend_len + a.len > s->pend_cap) {
        s->pend_cap = s->pend_len + a.len;
        s->pend = realloc(s->pend, s->pend_cap);
      }
      memcpy(s->pend + s->pend_len, a.data, a.len);
      s->pend_len += a.len;
      /* Bounded by the window: the core never asks for more. */
      ck_assert_uint_le(s->pend_len, GV_TUN_WINDOW);
      if (s->pend_len > g_max_pend)
        g_max_pend = s->pend_len;
      free(a.data);
      break;
    case GV_TACT_PAUSE:
      s = sock_find(n, a.local);
      ck_assert_ptr_nonnull(s);
      ck_assert(!s->paused);
      s->paused = true;
      g_pauses++;
      break;
    case GV_TACT_RESUME:
      s = sock_find(n, a.local);
      ck_assert_ptr_nonnull(s);
      ck_assert(s->paused);
      s->paused = false;
      break;
    case GV_TACT_SHUT:
      s = sock_find(n, a.local);
      ck_assert_ptr_nonnull(s);
      ck_assert(!s->shut);
      s->shut = true;
      s->reason = a.reason;
      break;
    case GV_TACT_HOLD:
    case GV_TACT_RELEASE:
      k = link_of(n, a.link, &side);
      ck_assert_int_ge(k, 0);
      ck_assert(N[n].held[k] == (a.type == GV_TACT_RELEASE));
      N[n].held[k] = a.type == GV_TACT_HOLD;
      break;
    case GV_TACT_DIAL:
      N[n].dials++;
      memcpy(N[n].last_dial, a.peer, GV_ID_BYTES);
      ck_assert_uint_eq(a.addr.port, 1000 + N[n].rpeer);
      break;
    default: ck_abort_msg("action %d", a.type);
    }
  }
}

/* Drains every core and delivers every queued message, in order. */
static void pump(void) {
  for (int guard = 0; guard < 1000000; guard++) {
    fmsg *m;
    int rc;
    for (int n = 0; n < n_nodes; n++)
      drain(n);
    if (!(m = q_head))
      break;
    q_head = m->next;
    if (!q_head)
      q_tail = NULL;
    if (m->data[1] == GV_TW_DATA)
      L[m->lk].inflight[m->node == L[m->lk].a ? 0 : 1] -=
          m->len - 1 - GV_TW_DATA_HDR;
    if (L[m->lk].up) {
      gv_linkid id = link_id(m->lk, m->node == L[m->lk].b);
      rc = gv_tun_recv(N[m->node].t, id, m->data + 1, m->len - 1,
                       &N[m->node].why);
      if (rc < 0) {
        N[m->node].errors++;
        N[m->node].last_rc = rc;
      }
    }
    free(m->data);
    free(m);
  }
  ck_assert_ptr_null(q_head);
  for (int n = 0; n < n_nodes; n++) {
    gv_why why = {{0}};
    ck_assert_msg(gv_tun_check(N[n].t, &why) == 0, "node %d: %s", n, why.text);
  }
}

/* One step of every fake socket: connect, read, write; then pump. */
static void step(void) {
  static uint8_t buf[1 << 20];

  for (int i = 0; i < SMAX; i++) {
    fsock *s = &S[i];
    size_t w;
    if (!s->used || s->shut || s->dead)
      continue;
    if (!s->connected) {
      gv_tun_local_connected(N[s->node].t, s->h, s->connect_fail ? -1 : 0);
      s->connected = !s->connect_fail;
      s->dead = s->connect_fail;
      continue;
    }
    if (!s->paused && s->sent < s->target) {
      size_t n = s->target - s->sent;
      if (n > g_read_size)
        n = g_read_size;
      for (size_t j = 0; j < n; j++)
        buf[j] = pattern(s->out_seed, s->sent + j);
      ck_assert_int_eq(gv_tun_local_read(N[s->node].t, s->h, buf, n), 0);
      s->sent += n;
    }
    w = s->pend_len < g_write_rate ? s->pend_len : g_write_rate;
    if (w > 0) {
      /* One assertion per write: libcheck reports each one to its parent. */
      size_t bad = w;
      for (size_t j = 0; j < w && !g_random_data && bad == w; j++)
        if (s->pend[j] != pattern(s->in_seed, s->got + j))
          bad = j;
      ck_assert_msg(bad == w, "byte %zu of the stream is wrong", s->got + bad);
      s->got += w;
      memmove(s->pend, s->pend + w, s->pend_len - w);
      s->pend_len -= w;
      gv_tun_local_written(N[s->node].t, s->h, w);
    }
  }
  pump();
}

static bool all_done(void) {
  for (int i = 0; i < SMAX; i++)
    if (S[i].used && !S[i].shut && !S[i].dead &&
        (S[i].sent < S[i].target || S[i].got < S[i].target))
      return false;
  return true;
}

static void run_until_done(void) {
  int i;
  for (i = 0; i < STEPS_MAX && !all_done(); i++)
    step();
  ck_assert_msg(i < STEPS_MAX, "no progress after %d steps", i);
}

static const uint8_t IH[GV_TW_IH_BYTES] = {0x1f, 1, 2, 3};
static const uint8_t IH_UNKNOWN[GV_TW_IH_BYTES] = {0x2e};

/* Node n opens a stream via link k to node dst; its socket, or NULL. */
static fsock *open_stream(int n, int k, int dst, const uint8_t *ih, int rc) {
  gv_tun_local h = 0;
  gv_why why = {{0}};
  gv_linkid via = link_id(k, L[k].b == n);

  ck_assert_int_eq(gv_tun_open(N[n].t, via, N[dst].id, ih, &h, &why), rc);
  if (rc < 0) {
    ck_assert_uint_eq(h, 0);
    ck_assert(why.text[0] != '\0');
    return NULL;
  }
  ck_assert_uint_ne(h, 0);
  drain(n);
  return sock_new(n, h, true, 1);
}

static void setup(void) {
  memset(N, 0, sizeof N);
  memset(L, 0, sizeof L);
  memset(S, 0, sizeof S);
  n_nodes = n_links = 0;
  q_head = q_tail = NULL;
  g_target = 0;
  g_connect_fail = false;
  g_write_rate = 40000;
  g_read_size = 100000;
  g_max_pend = g_max_inflight = 0;
  g_pauses = 0;
  g_random_data = false;
}

static void teardown(void) {
  while (q_head) {
    fmsg *m = q_head;
    q_head = m->next;
    free(m->data);
    free(m);
  }
  for (int n = 0; n < n_nodes; n++)
    gv_tun_free(N[n].t);
  for (int i = 0; i < SMAX; i++)
    free(S[i].pend);
}

/* The socket node n got from a CONNECT (the i-th such). */
static fsock *accepted(int n, int i) {
  for (int j = 0; j < SMAX; j++)
    if (S[j].used && S[j].node == n && S[j].out_seed == 2 && i-- == 0)
      return &S[j];
  return NULL;
}

/* Both ends of a stream got all g_target bytes, and no stream ever had
 * more than a window in flight or parked. */
static void whole_within_window(const fsock *a, const fsock *b) {
  ck_assert_uint_eq(a->got, g_target);
  ck_assert_uint_eq(b->got, g_target);
  ck_assert_uint_le(g_max_inflight, GV_TUN_WINDOW);
  ck_assert_uint_le(g_max_pend, GV_TUN_WINDOW);
}

/* ---- raw messages, as a misbehaving peer would send them ---- */

static uint8_t raw[GV_TW_MSG_MAX];

/* Node n receives m on link k; returns gv_tun_recv's code (then drains n,
 * leaving its SENDs queued). */
static int inject(int n, int k, const gv_tw_msg *m) {
  size_t len = 0;
  gv_why why = {{0}};
  int rc;

  ck_assert_int_eq(gv_tw_encode(m, raw, sizeof raw, &len, NULL), 0);
  rc = gv_tun_recv(N[n].t, link_id(k, L[k].b == n), raw, len, &why);
  if (rc < 0)
    ck_assert(why.text[0] != '\0');
  drain(n);
  return rc;
}

static gv_tw_msg open_msg(uint32_t sid, uint8_t hops, int dst, int src) {
  gv_tw_msg m = {.kind = GV_TW_OPEN, .sid = sid, .hops = hops};
  m.dst = N[dst].id;
  m.src = N[src].id;
  m.ih = IH;
  return m;
}

/* Node n's last SEND was CLOSE(sid, reason). */
static void sent_close(int n, uint32_t sid, int reason) {
  gv_tw_msg m;
  ck_assert_int_eq(gv_tw_decode(N[n].last_send, GV_TW_CLOSE_LEN, &m, NULL), 0);
  ck_assert_uint_eq(m.kind, GV_TW_CLOSE);
  ck_assert_uint_eq(m.sid, sid);
  ck_assert_int_eq(m.reason, reason);
}

/* Drops every queued message (what a misbehaving peer never reads). */
static void discard_queue(void) {
  while (q_head) {
    fmsg *m = q_head;
    q_head = m->next;
    free(m->data);
    free(m);
  }
  q_tail = NULL;
  for (int k = 0; k < n_links; k++)
    L[k].inflight[0] = L[k].inflight[1] = 0;
}

/* ---- tests ---- */

/* Two nodes, a stream each way on one link, megabytes in both directions
 * of each, with slow writers: the data arrives whole and in order, no
 * buffer passes the window, and the sids follow the dialer's parity. */
START_TEST(test_direct_both_ways) {
  fsock *fa, *fc;

  g_target = 2 * 1024 * 1024 + 12345;
  g_write_rate = 20000;
  add_node(false, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  fa = open_stream(0, 0, 1, IH, 0);
  ck_assert_uint_eq(N[0].last_open_sid % 2, 1); /* A dialed: odd */
  fc = open_stream(1, 0, 0, IH, 0);
  ck_assert_uint_eq(N[1].last_open_sid % 2, 0); /* C did not: even */
  run_until_done();
  ck_assert_uint_eq(fa->got, g_target);
  ck_assert_uint_eq(fc->got, g_target);
  ck_assert_uint_eq(accepted(1, 0)->got, g_target);
  ck_assert_uint_eq(accepted(0, 0)->got, g_target);
  ck_assert_int_gt(g_pauses, 0); /* the windows did stall the readers */
  ck_assert_uint_le(g_max_inflight, 2 * GV_TUN_WINDOW);
  ck_assert_uint_eq(gv_tun_streams(N[0].t), 2);
  ck_assert_uint_eq(gv_tun_stats_get(N[0].t)->opened, 2);
  ck_assert_uint_eq(gv_tun_stats_get(N[0].t)->bytes_out, 2 * g_target);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->bytes_in, 2 * g_target);
  ck_assert(N[0].held[0] && N[1].held[0]);
  ck_assert_int_eq(N[0].errors + N[1].errors, 0);
  /* The fetchers hang up: the other ends are SHUT with "done". */
  gv_tun_local_closed(N[0].t, fa->h, 0);
  gv_tun_local_closed(N[1].t, fc->h, 0);
  pump();
  ck_assert(accepted(1, 0)->shut && accepted(0, 0)->shut);
  ck_assert_int_eq(accepted(1, 0)->reason, GV_TW_CLOSE_DONE);
  ck_assert_uint_eq(gv_tun_streams(N[0].t) + gv_tun_streams(N[1].t), 0);
  ck_assert(!N[0].held[0] && !N[1].held[0]);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->closed, 2);
}
END_TEST

/* Silent A and silent C, through broadcasting relay B: megabytes both ways,
 * every window enforced (B never has more than a window in flight per
 * direction), then C ends the stream and everything is released. */
START_TEST(test_relay_both_ways) {
  fsock *fa, *fc;
  const gv_tun_stats *sb;

  g_target = 3 * 1024 * 1024 + 777;
  g_write_rate = 30000;
  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1); /* A dials B */
  add_link(2, 1); /* C dials B */
  fa = open_stream(0, 0, 2, IH, 0);
  ck_assert_uint_eq(N[0].last_open_sid % 2, 1);
  pump();
  ck_assert_uint_eq(N[1].last_open_sid % 2, 0); /* B did not dial C */
  run_until_done();
  fc = accepted(2, 0);
  ck_assert_ptr_nonnull(fc);
  whole_within_window(fa, fc);
  ck_assert_int_gt(g_pauses, 0);
  sb = gv_tun_stats_get(N[1].t);
  ck_assert_uint_eq(sb->relayed, 1);
  ck_assert_uint_eq(sb->opened, 0);
  ck_assert_uint_eq(sb->bytes_in, 2 * g_target);
  ck_assert_uint_eq(sb->bytes_out, 2 * g_target);
  ck_assert(N[1].held[0] && N[1].held[1]);
  gv_tun_local_closed(N[2].t, fc->h, 0);
  pump();
  ck_assert(fa->shut);
  ck_assert_int_eq(fa->reason, GV_TW_CLOSE_DONE);
  for (int n = 0; n < 3; n++)
    ck_assert_uint_eq(gv_tun_streams(N[n].t), 0);
  ck_assert(!N[1].held[0] && !N[1].held[1] && !N[0].held[0]);
  ck_assert_int_eq(N[0].errors + N[1].errors + N[2].errors, 0);
}
END_TEST

/* What a relay refuses, and what an end refuses, reach the opener's socket
 * as SHUT with the reason. */
START_TEST(test_refusals) {
  fsock *f;

  add_node(false, 64, 256);
  add_node(false, 64, 256); /* B does not relay */
  add_node(false, 64, 256);
  add_link(0, 1);
  add_link(2, 1);
  f = open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_UNREACHABLE);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->refused, 1);
  ck_assert(!N[0].held[0] && !N[1].held[0]);
  ck_assert_int_eq(N[0].errors + N[1].errors, 0);
}
END_TEST

START_TEST(test_refusals_relay) {
  fsock *f;

  add_node(false, 64, 256);
  add_node(true, 64, 1); /* relays one stream at a time */
  add_node(false, 64, 256);
  add_link(0, 1);
  /* No link from B to C yet: unreachable. */
  f = open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_UNREACHABLE);
  add_link(2, 1);
  /* C does not serve this torrent: refused, carried back through B. */
  f = open_stream(0, 0, 2, IH_UNKNOWN, 0);
  pump();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_REFUSED);
  ck_assert_uint_eq(gv_tun_stats_get(N[2].t)->refused, 1);
  ck_assert_uint_eq(gv_tun_streams(N[1].t), 0);
  /* relayed_max 1: the second stream at once is over the limit. */
  f = open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert(!f->shut);
  f = open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_LIMIT);
  ck_assert_uint_eq(gv_tun_streams(N[1].t), 1);
  /* A stream to the relay itself ends there: B serves IH. */
  f = open_stream(0, 0, 1, IH, 0);
  pump();
  ck_assert(!f->shut);
  ck_assert_ptr_nonnull(accepted(1, 0));
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->opened, 1);
  ck_assert_int_eq(N[0].errors + N[1].errors + N[2].errors, 0);
}
END_TEST

/* The relay rules against a misbehaving first hop: hops below 2, src
 * must be the link's peer at hops 0, sids must be the opener's parity and
 * new. */
START_TEST(test_relay_rules_raw) {
  gv_tw_msg m;
  size_t sends;

  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  add_link(2, 1);
  /* hops 2 at a node that is not dst: a third relay is refused, not
   * penalised. */
  m = open_msg(1, 2, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  sent_close(1, 1, GV_TW_CLOSE_UNREACHABLE);
  /* A spoofed src: CLOSE(protocol) and an error for the link core. */
  m = open_msg(3, 0, 2, 2);
  ck_assert_int_eq(inject(1, 0, &m), GV_EFIELD);
  sent_close(1, 3, GV_TW_CLOSE_PROTOCOL);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->violations, 1);
  /* The wrong parity (A dialed: its sids are odd), or a sid used before:
   * an error, and no CLOSE that could hit a stream of ours. */
  sends = N[1].n_sends;
  m = open_msg(4, 0, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), GV_EFIELD);
  m = open_msg(3, 0, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), GV_EFIELD);
  ck_assert_uint_eq(N[1].n_sends, sends);
  /* dst == src: no loop back to the opener. */
  m = open_msg(5, 0, 0, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  sent_close(1, 5, GV_TW_CLOSE_UNREACHABLE);
  /* A malformed message, and a link that is not up. */
  ck_assert_int_eq(gv_tun_recv(N[1].t, link_id(0, 1), raw, 0, NULL), GV_ETYPE);
  ck_assert_int_eq(gv_tun_recv(N[1].t, 999, raw, 0, NULL), GV_ESTATE);
  /* A good one is forwarded with hops 1 and B's own sid. */
  m = open_msg(7, 0, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  ck_assert_uint_eq(N[1].last_send[0], GV_TW_OPEN);
  ck_assert_uint_eq(N[1].last_send[5], 1);
  ck_assert_uint_eq(gv_tun_streams(N[1].t), 1);
  discard_queue();
}
END_TEST

/* Stream limits: what the peer may open on a link, what we may open. */
START_TEST(test_limits) {
  fsock *f[2];
  gv_tun_local h;
  gv_why why;

  add_node(false, 2, 256);
  add_node(false, 2, 256);
  add_link(0, 1);
  f[0] = open_stream(0, 0, 1, IH, 0);
  f[1] = open_stream(0, 0, 1, IH, 0);
  open_stream(0, 0, 1, IH, GV_ELIMIT); /* ours: 2 on the link */
  pump();
  ck_assert(!f[0]->shut && !f[1]->shut);
  /* The peer's limit, tested with a raw OPEN past it (a sid A has not
   * used yet, so A's own opens would now be refused as reuses). */
  {
    gv_tw_msg m = open_msg(1001, 0, 1, 0);
    ck_assert_int_eq(inject(1, 0, &m), 0);
    sent_close(1, 1001, GV_TW_CLOSE_LIMIT);
    discard_queue();
    /* Closing one makes room again. */
    gv_tun_local_closed(N[0].t, f[0]->h, 0);
    pump();
    ck_assert_uint_eq(gv_tun_streams(N[1].t), 1);
    m = open_msg(1003, 0, 1, 0);
    ck_assert_int_eq(inject(1, 0, &m), 0);
    ck_assert_uint_eq(gv_tun_streams(N[1].t), 2);
    discard_queue();
  }
  /* A socket that reads on while paused: the core holds at most
   * GV_TUN_HELD_MAX bytes beyond the window, then refuses. */
  {
    static uint8_t big[GV_TUN_HELD_MAX];
    fsock *f1 = f[1];
    ck_assert_int_eq(gv_tun_local_read(N[0].t, f1->h, big, GV_TUN_WINDOW), 0);
    drain(0);
    ck_assert(f1->paused);
    ck_assert_int_eq(gv_tun_local_read(N[0].t, f1->h, big, GV_TUN_HELD_MAX), 0);
    ck_assert_int_eq(gv_tun_local_read(N[0].t, f1->h, big, 1), GV_ELIMIT);
    ck_assert_int_eq(gv_tun_check(N[0].t, NULL), 0);
    discard_queue();
  }
  /* No stream to ourselves; none on a link that is not up. */
  ck_assert_int_eq(gv_tun_open(N[0].t, link_id(0, 0), N[0].id, IH, &h, &why),
                   GV_EINVAL);
  ck_assert_int_eq(gv_tun_open(N[0].t, 77, N[1].id, IH, &h, &why), GV_ESTATE);
}
END_TEST

/* DATA beyond the window, and CREDIT beyond what was sent, end the stream
 * with CLOSE(protocol) and an error; at an end and at a relay. */
START_TEST(test_window_violation) {
  gv_tw_msg m;
  static uint8_t big[GV_TW_DATA_MAX];
  fsock *s;

  add_node(false, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  m = open_msg(1, 0, 1, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  s = accepted(1, 0);
  ck_assert_ptr_nonnull(s);
  m = (gv_tw_msg){
      .kind = GV_TW_DATA, .sid = 1, .data = big, .len = GV_TW_DATA_MAX};
  for (unsigned i = 0; i < GV_TUN_WINDOW / GV_TW_DATA_MAX; i++)
    ck_assert_int_eq(inject(1, 0, &m), 0);
  m.len = 1;
  ck_assert_int_eq(inject(1, 0, &m), GV_ERANGE);
  sent_close(1, 1, GV_TW_CLOSE_PROTOCOL);
  ck_assert(s->shut);
  ck_assert_int_eq(s->reason, GV_TW_CLOSE_PROTOCOL);
  ck_assert_uint_eq(gv_tun_streams(N[1].t), 0);
  /* Late DATA for the closed sid is ignored. */
  ck_assert_int_eq(inject(1, 0, &m), 0);
  /* CREDIT when nothing was sent. */
  m = open_msg(3, 0, 1, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  m = (gv_tw_msg){.kind = GV_TW_CREDIT, .sid = 3, .n = 1};
  ck_assert_int_eq(inject(1, 0, &m), GV_ERANGE);
  sent_close(1, 3, GV_TW_CLOSE_PROTOCOL);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->violations, 2);
  ck_assert(!N[1].held[0]);
  discard_queue();
}
END_TEST

START_TEST(test_window_violation_relay) {
  gv_tw_msg m;
  static uint8_t big[GV_TW_DATA_MAX];
  fsock *c;

  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  add_link(2, 1);
  m = open_msg(1, 0, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  pump(); /* the OPEN reaches C; A's side gets nothing back */
  c = accepted(2, 0);
  ck_assert_ptr_nonnull(c);
  step(); /* C connects */
  m = (gv_tw_msg){
      .kind = GV_TW_DATA, .sid = 1, .data = big, .len = GV_TW_DATA_MAX};
  for (unsigned i = 0; i < GV_TUN_WINDOW / GV_TW_DATA_MAX; i++)
    ck_assert_int_eq(inject(1, 0, &m), 0);
  m.len = 100;
  ck_assert_int_eq(inject(1, 0, &m), GV_ERANGE);
  pump();
  ck_assert(c->shut);
  ck_assert_int_eq(c->reason, GV_TW_CLOSE_PROTOCOL);
  ck_assert_uint_eq(gv_tun_streams(N[1].t), 0);
  ck_assert(!N[1].held[0] && !N[1].held[1]);
}
END_TEST

/* A link going down mid-stream ends every stream on it: the relay tells
 * the other half, each end SHUTs its socket with io. */
START_TEST(test_link_down_mid_stream) {
  fsock *fa, *fc;

  g_target = 4 * 1024 * 1024;
  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  add_link(2, 1);
  fa = open_stream(0, 0, 2, IH, 0);
  for (int i = 0; i < 10; i++)
    step();
  fc = accepted(2, 0);
  ck_assert(fa->got > 0 && fc->got > 0 && fa->got < g_target);
  L[1].up = false;
  gv_tun_link_down(N[1].t, link_id(1, 1));
  gv_tun_link_down(N[2].t, link_id(1, 0));
  pump();
  ck_assert(fa->shut && fc->shut);
  ck_assert_int_eq(fa->reason, GV_TW_CLOSE_IO);
  ck_assert_int_eq(fc->reason, GV_TW_CLOSE_IO);
  for (int n = 0; n < 3; n++)
    ck_assert_uint_eq(gv_tun_streams(N[n].t), 0);
  ck_assert(!N[0].held[0] && !N[1].held[0]);
  /* Reports about the dead handles are ignored. */
  gv_tun_local_written(N[0].t, fa->h, 10);
  ck_assert_int_eq(gv_tun_local_read(N[0].t, fa->h, raw, 10), 0);
  gv_tun_local_closed(N[0].t, fa->h, 0);
  pump();
  ck_assert_uint_eq(N[1].errors, 0);
}
END_TEST

/* CLOSE from either side, direct: an error on one end's socket is io at
 * the other; a connect that fails is io at the opener. */
START_TEST(test_close_either_side) {
  fsock *f;

  g_target = 300000;
  add_node(false, 64, 256);
  add_node(false, 64, 256);
  add_link(1, 0); /* C dials A: A's sids are even */
  f = open_stream(0, 0, 1, IH, 0);
  ck_assert_uint_eq(N[0].last_open_sid % 2, 0);
  step();
  step();
  gv_tun_local_closed(N[0].t, f->h, -5 /* EIO */);
  pump();
  ck_assert(accepted(1, 0)->shut);
  ck_assert_int_eq(accepted(1, 0)->reason, GV_TW_CLOSE_IO);
  f = open_stream(0, 0, 1, IH, 0);
  step();
  step();
  gv_tun_local_closed(N[1].t, accepted(1, 1)->h, 0);
  pump();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_DONE);
  g_connect_fail = true;
  f = open_stream(0, 0, 1, IH, 0);
  step();
  step();
  ck_assert(f->shut);
  ck_assert_int_eq(f->reason, GV_TW_CLOSE_IO);
  ck_assert_uint_eq(gv_tun_streams(N[0].t) + gv_tun_streams(N[1].t), 0);
  ck_assert_uint_eq(gv_tun_stats_get(N[0].t)->closed, 3);
}
END_TEST

/* Holding: a link is held iff it has a stream or an expectation. */
START_TEST(test_holds) {
  fsock *f;
  uint8_t peer[GV_ID_BYTES];

  add_node(false, 64, 256);
  add_node(false, 64, 256);
  ck_assert_int_eq(gv_tun_expect(N[0].t, N[1].id, true), 0);
  add_link(0, 1);
  ck_assert(N[0].held[0]);  /* link_up returned true */
  ck_assert(!N[1].held[0]); /* nothing for B */
  ck_assert_int_eq(gv_tun_expect(N[0].t, N[1].id, false), 0);
  drain(0);
  ck_assert(!N[0].held[0]);
  ck_assert_int_eq(gv_tun_expect(N[0].t, N[1].id, true), 0);
  ck_assert_int_eq(gv_tun_expect(N[0].t, N[1].id, true), 0); /* idempotent */
  drain(0);
  ck_assert(N[0].held[0]);
  f = open_stream(0, 0, 1, IH, 0);
  pump();
  ck_assert(N[1].held[0]);
  ck_assert_int_eq(gv_tun_expect(N[0].t, N[1].id, false), 0);
  drain(0);
  ck_assert(N[0].held[0]); /* the stream still holds it */
  gv_tun_local_closed(N[0].t, f->h, 0);
  pump();
  ck_assert(!N[0].held[0] && !N[1].held[0]);
  /* At most GV_TUN_EXPECT_MAX expectations. */
  for (int i = 0; i < GV_TUN_EXPECT_MAX; i++) {
    memset(peer, 0x80, sizeof peer);
    peer[0] = (uint8_t)i;
    ck_assert_int_eq(gv_tun_expect(N[0].t, peer, true), 0);
  }
  peer[0] = 0xff;
  ck_assert_int_eq(gv_tun_expect(N[0].t, peer, true), GV_ELIMIT);
}
END_TEST

/* The service: the link core's callbacks reach the same core. */
START_TEST(test_service) {
  const gv_service *svc;
  gv_tun *t;
  gv_tun_cfg cfg;
  uint8_t peer[GV_ID_BYTES];

  gv_tun_cfg_default(&cfg);
  cfg.link_streams_max = 0;
  ck_assert_int_eq(gv_tun_new(&t, &cfg), GV_EINVAL);
  gv_tun_cfg_default(&cfg);
  memset(cfg.self, 1, GV_ID_BYTES);
  ck_assert_int_eq(gv_tun_new(&t, &cfg), 0);
  svc = gv_tun_service(t);
  memset(peer, 2, sizeof peer);
  ck_assert_int_eq(gv_tun_expect(t, peer, true), 0);
  ck_assert(svc->up(svc->ctx, 5, peer, true, NULL, NULL, 0));
  ck_assert_int_eq(svc->recv(svc->ctx, 5, raw, 0, 0, NULL), GV_ETYPE);
  svc->down(svc->ctx, 5, GV_CLOSE_IDLE, 0);
  ck_assert_int_eq(svc->recv(svc->ctx, 5, raw, 0, 0, NULL), GV_ESTATE);
  ck_assert_int_eq(gv_tun_check(t, NULL), 0);
  gv_tun_free(t);
}
END_TEST

/* A hostile peer: thousands of random, mostly invalid, channel-3 messages
 * from A into relay B and into C, with the honest traffic they cause
 * delivered; every core's invariants hold after each (pump checks them). */
START_TEST(test_hostile_peer_random) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  static uint8_t b[GV_TW_MSG_MAX + 8];
  uint32_t next_sid[2] = {1, 1}, recent[2][8] = {{1}, {1}};
  fsock *f;

  g_random_data = true;
  add_node(false, 8, 8);
  add_node(true, 8, 8);
  add_node(false, 8, 8);
  add_link(0, 1);
  add_link(2, 1);
  add_link(0, 2);
  for (int i = 0; i < 20000; i++) {
    size_t len;
    int to, k, pick;
    uint32_t sid;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    to = (x >> 8) % 2 ? 1 : 2; /* A's hostile twin talks to B or C */
    k = to == 1 ? 0 : 2;
    pick = (int)((x >> 12) % 16);
    b[0] = pick < 4    ? GV_TW_OPEN
           : pick < 11 ? GV_TW_DATA
           : pick < 13 ? GV_TW_CREDIT
           : pick < 15 ? GV_TW_CLOSE
                       : (uint8_t)((x >> 16) % 256);
    /* A's recent sids mostly; now and then a sid never opened. */
    sid = (x >> 20) % 16 ? recent[to - 1][(x >> 24) % 8]
                         : (uint32_t)((x >> 24) % 1000);
    len = 0;
    switch (b[0]) {
    case GV_TW_OPEN:
      /* New sids of A's parity mostly, so many OPENs are good. */
      sid = next_sid[to - 1] + ((x >> 36) % 8 ? 0 : 1);
      next_sid[to - 1] += 2;
      recent[to - 1][(x >> 40) % 8] = sid;
      len = GV_TW_OPEN_LEN;
      b[5] = (x >> 27) % 4 ? 0 : (uint8_t)((x >> 24) % 3);
      memcpy(b + 6, N[(x >> 28) % 4 ? 2 - (to == 2) : 0].id, GV_ID_BYTES);
      memcpy(b + 38, N[(x >> 30) % 4 ? 0 : 2].id, GV_ID_BYTES);
      memcpy(b + 70, (x >> 32) % 4 ? IH : IH_UNKNOWN, GV_TW_IH_BYTES);
      break;
    case GV_TW_DATA: len = GV_TW_DATA_HDR + 1 + (x >> 32) % 66000; break;
    case GV_TW_CREDIT:
      len = GV_TW_CREDIT_LEN;
      b[5] = 0, b[6] = 0, b[7] = (uint8_t)(x >> 48), b[8] = (uint8_t)(x >> 56);
      break;
    case GV_TW_CLOSE:
      len = GV_TW_CLOSE_LEN;
      b[5] = (uint8_t)((x >> 44) % 7);
      break;
    default: len = 1 + (x >> 44) % 100; break;
    }
    b[1] = (uint8_t)(sid >> 24), b[2] = (uint8_t)(sid >> 16);
    b[3] = (uint8_t)(sid >> 8), b[4] = (uint8_t)sid;
    if ((x >> 58) == 0)
      len = (x >> 50) % 12; /* a truncation */
    gv_tun_recv(N[to].t, link_id(k, L[k].b == to), b, len, NULL);
    if (i % 8 == 0)
      step(); /* connect, write, grant credit */
    else
      pump();
  }
  for (int n = 1; n < 3; n++) {
    const gv_tun_stats *st = gv_tun_stats_get(N[n].t);
    ck_assert_uint_gt(st->violations, 0);
    ck_assert_uint_gt(st->refused, 0);
    ck_assert_uint_gt(st->closed, 0);
    ck_assert_uint_gt(st->bytes_in, 0);
  }
  ck_assert_uint_gt(gv_tun_stats_get(N[1].t)->relayed, 0);
  ck_assert_uint_gt(gv_tun_stats_get(N[2].t)->opened, 0);
  /* Whatever it did, an honest stream from C to A still works. */
  g_random_data = false;
  g_target = 300000;
  f = open_stream(2, 2, 0, IH, 0);
  run_until_done();
  ck_assert_uint_eq(f->got, g_target);
}
END_TEST

/* The hops of the last message node sender sent (an OPEN). */
static uint8_t hops_seen(int sender) {
  ck_assert_uint_eq(N[sender].last_send[0], GV_TW_OPEN);
  return N[sender].last_send[5];
}

/* Silent F and silent H, each with only a link to a broadcasting node
 * (F's guard G, H's relay R), and G with a link to R: F opens to H over
 * its only link, G routes it to R (cfg.route: LINK), R forwards it to H
 * with hops 2. Megabytes both ways, windows enforced at every hop. */
START_TEST(test_two_relays) {
  fsock *ff, *fh;

  g_target = 2 * 1024 * 1024 + 99;
  g_write_rate = 30000;
  add_node(false, 64, 256); /* F */
  add_node(true, 64, 256);  /* G */
  add_node(true, 64, 256);  /* R */
  add_node(false, 64, 256); /* H */
  add_link(0, 1);           /* F dials G */
  add_link(3, 2);           /* H dials R */
  add_link(1, 2);           /* G dials R */
  N[1].rkind = GV_TUN_ROUTE_LINK;
  N[1].rlink = 2;
  ff = open_stream(0, 0, 3, IH, 0);
  pump();
  ck_assert_int_eq(N[1].routes, 1);
  ck_assert_int_eq(N[2].routes, 0); /* R has a link to H */
  ck_assert_uint_eq(hops_seen(1), 1);
  ck_assert_uint_eq(hops_seen(2), 2);
  run_until_done();
  fh = accepted(3, 0);
  ck_assert_ptr_nonnull(fh);
  whole_within_window(ff, fh);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->relayed, 1);
  ck_assert_uint_eq(gv_tun_stats_get(N[2].t)->relayed, 1);
  ck_assert(N[1].held[0] && N[1].held[2] && N[2].held[2] && N[2].held[1]);
  /* H ends it: every hop is freed and released. */
  gv_tun_local_closed(N[3].t, fh->h, 0);
  pump();
  ck_assert(ff->shut);
  ck_assert_int_eq(ff->reason, GV_TW_CLOSE_DONE);
  for (int n = 0; n < 4; n++) {
    ck_assert_uint_eq(gv_tun_streams(N[n].t), 0);
    ck_assert_int_eq(N[n].errors, 0);
  }
  ck_assert(!N[1].held[2] && !N[2].held[2]);
}
END_TEST

/* At hops 1 a relay forwards only to dst itself: a route to another relay
 * would arrive there with hops 2 and be refused, so it is refused here.
 * hops 2 at a node that is not dst is refused. The src of a hops-1 OPEN
 * is vouched for by the relay before: no src check. */
START_TEST(test_hops_limit) {
  gv_tw_msg m;

  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(true, 64, 256);
  add_node(false, 64, 256);
  add_link(0, 1);
  add_link(1, 2);
  add_link(3, 2);
  N[1].rkind = GV_TUN_ROUTE_LINK; /* G: to H via R */
  N[1].rlink = 1;
  m = open_msg(1, 1, 3, 2); /* hops 1, src not F */
  ck_assert_int_eq(inject(1, 0, &m), 0);
  sent_close(1, 1, GV_TW_CLOSE_UNREACHABLE);
  m = open_msg(3, 2, 3, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  sent_close(1, 3, GV_TW_CLOSE_UNREACHABLE);
  /* R has a link to H: hops 1 goes on as hops 2, and H accepts it. */
  m = open_msg(1, 1, 3, 0);
  ck_assert_int_eq(inject(2, 1, &m), 0);
  ck_assert_uint_eq(hops_seen(2), 2);
  pump();
  ck_assert_uint_eq(gv_tun_streams(N[3].t), 1);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->refused, 2);
  ck_assert_int_eq(N[1].errors + N[2].errors + N[3].errors, 0);
  discard_queue();
}
END_TEST

/* G has no link to R: cfg.route says DIAL R, and the OPEN is parked. F
 * sends at once: G queues it within the window (F is paused when the
 * window is spent; nothing passes). A second stream parks without a
 * second dial. The link G-R comes up (held at once): both go on, with
 * what was queued, and arrive whole. */
START_TEST(test_park_link_up) {
  fsock *f1, *f2;

  g_target = 1024 * 1024 + 5;
  add_node(false, 64, 256); /* F */
  add_node(true, 64, 256);  /* G */
  add_node(true, 64, 256);  /* R */
  add_node(false, 64, 256); /* H */
  add_link(0, 1);
  add_link(3, 2);
  N[1].rkind = GV_TUN_ROUTE_DIAL;
  N[1].rpeer = 2;
  f1 = open_stream(0, 0, 3, IH, 0);
  f2 = open_stream(0, 0, 3, IH, 0);
  for (int i = 0; i < 10; i++)
    step();
  ck_assert_int_eq(N[1].dials, 1);
  ck_assert_mem_eq(N[1].last_dial, N[2].id, GV_ID_BYTES);
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 2);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->parked, 2);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->bytes_in, 2 * GV_TUN_WINDOW);
  ck_assert(f1->paused && f2->paused && !f1->shut);
  ck_assert_uint_eq(gv_tun_streams(N[2].t) + gv_tun_streams(N[3].t), 0);
  ck_assert(N[1].held[0]);
  add_link(1, 2);
  ck_assert(N[1].held[2]); /* held from its first moment */
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 0);
  run_until_done();
  ck_assert_uint_eq(f1->got, g_target);
  ck_assert_uint_eq(f2->got, g_target);
  ck_assert_uint_eq(accepted(3, 0)->got, g_target);
  ck_assert_uint_eq(accepted(3, 1)->got, g_target);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->relayed, 2);
  for (int n = 0; n < 4; n++)
    ck_assert_int_eq(N[n].errors, 0);
}
END_TEST

/* A parked OPEN ends with CLOSE(unreachable) when its dial fails (not
 * while a link to the peer is up), and is dropped when its incoming link
 * goes down; DATA past the window on a parked OPEN is a violation. */
START_TEST(test_park_release) {
  fsock *f1, *f2;
  gv_tw_msg m;
  static uint8_t big[GV_TW_DATA_MAX];
  int k;

  g_target = 64 * 1024;
  add_node(false, 64, 256);
  add_node(true, 64, 256);
  add_node(true, 64, 256);
  add_link(0, 1);
  N[1].rkind = GV_TUN_ROUTE_DIAL;
  N[1].rpeer = 2;
  f1 = open_stream(0, 0, 2, IH, 0);
  f2 = open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 2);
  gv_tun_dial_failed(N[1].t, N[0].id); /* not the peer dialed */
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 2);
  gv_tun_dial_failed(N[1].t, N[2].id);
  pump();
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 0);
  ck_assert(f1->shut && f2->shut);
  ck_assert_int_eq(f1->reason, GV_TW_CLOSE_UNREACHABLE);
  ck_assert_int_eq(f2->reason, GV_TW_CLOSE_UNREACHABLE);
  ck_assert(!N[1].held[0] && !N[0].held[0]);
  ck_assert_uint_eq(gv_tun_stats_get(N[1].t)->refused, 2);
  /* Parked again (a new dial), then F's link to G goes down: dropped,
   * and the link to R that comes up later carries nothing. */
  open_stream(0, 0, 2, IH, 0);
  pump();
  ck_assert_int_eq(N[1].dials, 2);
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 1);
  L[0].up = false;
  gv_tun_link_down(N[1].t, link_id(0, 1));
  gv_tun_link_down(N[0].t, link_id(0, 0));
  pump();
  ck_assert_uint_eq(gv_tun_parked(N[1].t) + gv_tun_streams(N[1].t), 0);
  add_link(1, 2);
  ck_assert(!N[1].held[1]);
  pump();
  ck_assert_uint_eq(gv_tun_streams(N[2].t), 0);
  /* A parked OPEN takes DATA up to the window, queued; one byte more is
   * CLOSE(protocol) and an error for the link core. */
  add_node(false, 64, 256); /* H, which nobody has a link to */
  k = add_link(0, 1);
  N[1].rpeer = 3;
  m = open_msg(1, 0, 3, 0);
  ck_assert_int_eq(inject(1, k, &m), 0);
  ck_assert_uint_eq(gv_tun_parked(N[1].t), 1);
  m = (gv_tw_msg){.kind = GV_TW_DATA, .sid = 1, .data = big};
  m.len = sizeof big;
  for (size_t sent = 0; sent < GV_TUN_WINDOW; sent += sizeof big)
    ck_assert_int_eq(inject(1, k, &m), 0);
  ck_assert_int_eq(gv_tun_check(N[1].t, NULL), 0);
  m.len = 1;
  ck_assert_int_eq(inject(1, k, &m), GV_ERANGE);
  sent_close(1, 1, GV_TW_CLOSE_PROTOCOL);
  ck_assert_uint_eq(gv_tun_parked(N[1].t) + gv_tun_streams(N[1].t), 0);
  discard_queue();
}
END_TEST

/* At most GV_TUN_PARK_MAX OPENs wait at once; the next is CLOSE(limit). */
START_TEST(test_park_limit) {
  gv_tw_msg m;
  uint32_t sid = 1;

  add_node(false, 256, 1024);
  add_node(true, 256, 1024);
  add_node(true, 256, 1024);
  add_link(0, 1);
  N[1].rkind = GV_TUN_ROUTE_DIAL;
  N[1].rpeer = 2;
  for (int i = 0; i < GV_TUN_PARK_MAX; i++, sid += 2) {
    m = open_msg(sid, 0, 2, 0);
    ck_assert_int_eq(inject(1, 0, &m), 0);
  }
  ck_assert_uint_eq(gv_tun_parked(N[1].t), GV_TUN_PARK_MAX);
  ck_assert_int_eq(N[1].dials, 1);
  m = open_msg(sid, 0, 2, 0);
  ck_assert_int_eq(inject(1, 0, &m), 0);
  sent_close(1, sid, GV_TW_CLOSE_LIMIT);
  ck_assert_uint_eq(gv_tun_parked(N[1].t), GV_TUN_PARK_MAX);
  ck_assert_int_eq(gv_tun_check(N[1].t, NULL), 0);
  discard_queue();
}
END_TEST

static Suite *tun_suite(void) {
  Suite *s = suite_create("tun");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_direct_both_ways);
  tcase_add_test(tc, test_relay_both_ways);
  tcase_add_test(tc, test_refusals);
  tcase_add_test(tc, test_refusals_relay);
  tcase_add_test(tc, test_relay_rules_raw);
  tcase_add_test(tc, test_limits);
  tcase_add_test(tc, test_window_violation);
  tcase_add_test(tc, test_window_violation_relay);
  tcase_add_test(tc, test_link_down_mid_stream);
  tcase_add_test(tc, test_close_either_side);
  tcase_add_test(tc, test_holds);
  tcase_add_test(tc, test_service);
  tcase_add_test(tc, test_hostile_peer_random);
  tcase_add_test(tc, test_two_relays);
  tcase_add_test(tc, test_hops_limit);
  tcase_add_test(tc, test_park_link_up);
  tcase_add_test(tc, test_park_release);
  tcase_add_test(tc, test_park_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(tun_suite()); }

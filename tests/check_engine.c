/* The gossip engine under a fake clock: a few nodes, each a link core
 * (node/lcore.c) with the engine as its gossip service, wired together by
 * an in-memory router (docs/GOSSIP.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "intern.h"
#include "lcore.h"
#include "testutil.h"

#define MAXN 8
#define MAXL 32
#define HOUR 3600000LL

typedef struct sent {
  int from, to;
  gv_msg_type type; /* decoded, for inspection */
  uint32_t ttl, hops;
  uint8_t id[32];
  uint8_t origin[32]; /* gossip messages */
  uint64_t seq;
  char *text;
} sent;

typedef struct harness {
  gv_identity ids[MAXN];
  gv_engine *e[MAXN];
  gv_lcore *lc[MAXN];
  gv_service svc[MAXN];
  gv_engine_cfg cfg[MAXN];
  gv_lcore_cfg lcfg[MAXN];
  int n;
  struct {
    int a, b;
    bool up;
  } links[MAXL];
  int nlinks;
  int64_t now;
  /* drop(from, to, type): true drops the frame */
  bool (*drop)(int from, int to, gv_msg_type type);
  /* what happened */
  int delivered[MAXN];
  bool repaired[MAXN];
  uint32_t hops[MAXN];
  uint8_t last_id[MAXN][32];
  int reports[MAXN];
  size_t report_peers[MAXN];
  int report_addrs[MAXN];
  int closes[MAXN], last_close_reason[MAXN], dials[MAXN], persists[MAXN];
  int deletes[MAXN];
  uint8_t dial_peer[MAXN][GV_ID_BYTES]; /* the last dial: zero if unpinned */
  gv_addr dial_addr[MAXN];
  uint64_t reserved[MAXN]; /* the last SEQ_RESERVE */
  int reserves[MAXN];
  sent log[4096];
  int nlog;
} harness;

static harness H;

static void h_clear_log(void) {
  for (int i = 0; i < H.nlog; i++)
    free(H.log[i].text);
  H.nlog = 0;
}

static void h_init(int n) {
  h_clear_log();
  for (int i = 0; i < H.n; i++) {
    gv_lcore_free(H.lc[i]);
    gv_engine_free(H.e[i]);
  }
  memset(&H, 0, sizeof(H));
  H.n = n;
  H.now = T0_MS;
  for (int i = 0; i < n; i++) {
    tu_identity(&H.ids[i], (uint8_t)(i + 1));
    gv_engine_cfg_default(&H.cfg[i]);
    H.cfg[i].seed = (uint64_t)i + 1;
    H.cfg[i].heartbeat_ms = 0;
    H.cfg[i].active_target = 0;
    H.cfg[i].shuffle_ms = 0;
    gv_lcore_cfg_default(&H.lcfg[i]);
    H.lcfg[i].seed = (uint64_t)i + 1;
    H.lcfg[i].ping_ms = 0;
    H.lcfg[i].idle_ms = 100 * HOUR;
  }
}

/* The clock here is both monotonic and wall: offset 0, as in the
 * simulator. */
static void h_start(void) {
  for (int i = 0; i < H.n; i++) {
    H.lcfg[i].accepting = H.cfg[i].broadcasting;
    ck_assert_int_eq(gv_engine_new(&H.e[i], &H.cfg[i], &H.ids[i], H.now), 0);
    ck_assert_int_eq(gv_lcore_new(&H.lc[i], &H.lcfg[i], H.ids[i].pk, H.now), 0);
    gv_engine_service(H.e[i], &H.svc[i]);
    gv_lcore_set_service(H.lc[i], GV_CHAN_GOSSIP, &H.svc[i]);
  }
}

static void teardown(void) { h_init(0); }

/* Link k: side ids 2k+1 on node a, 2k+2 on node b. */
static int side_node(gv_linkid id, int *peer, gv_linkid *peer_id) {
  int k = (int)(id - 1) / 2;
  bool a_side = id % 2 == 1;
  *peer = a_side ? H.links[k].b : H.links[k].a;
  *peer_id = a_side ? id + 1 : id - 1;
  return a_side ? H.links[k].a : H.links[k].b;
}

/* Logs a plaintext: channel byte, then the message. */
static void h_log(int from, int to, const gv_buf *b) {
  sent *s = &H.log[H.nlog < 4096 ? H.nlog++ : 4095];
  gv_msg m;
  gv_msg_policy pol = {.now_ms = H.now, .trust_sigs = true};

  s->from = from;
  s->to = to;
  s->type = GV_MSG_NONE;
  s->text = malloc(b->len);
  memcpy(s->text, b->data + 1, b->len - 1);
  s->text[b->len - 1] = '\0';
  if (gv_msg_decode(&m, b->data + 1, b->len - 1, &pol, NULL) == 0) {
    s->type = m.type;
    s->ttl = m.ttl;
    s->hops = m.hops;
    memcpy(s->id, m.id, 32);
    memcpy(s->origin, m.origin, 32);
    s->seq = m.seq;
  }
  gv_msg_clear(&m);
}

typedef struct ev {
  int to;
  gv_linkid lid;
  gv_buf *b;
  int down; /* the transport's end instead of a frame */
} ev;
static ev q[65536];
static size_t qhead, qtail;

static void run_action(int i, const gv_action *a) {
  int peer;
  gv_linkid pid;
  switch (a->type) {
  case GV_ACT_SEND:
    side_node(a->link, &peer, &pid);
    if (H.links[(a->link - 1) / 2].up) {
      h_log(i, peer, a->buf);
      /* Nothing of this node's goes out with a seq not reserved first. */
      if (gv_msg_is_gossip(H.log[H.nlog - 1].type) &&
          memcmp(H.log[H.nlog - 1].origin, H.ids[i].pk, 32) == 0)
        ck_assert_uint_le(H.log[H.nlog - 1].seq, H.reserved[i]);
      if (H.drop == NULL || !H.drop(i, peer, H.log[H.nlog - 1].type)) {
        q[qtail++ % 65536] = (ev){peer, pid, a->buf, 0};
        break;
      }
    }
    gv_buf_unref(a->buf);
    break;
  case GV_ACT_CLOSE:
    H.closes[i]++;
    H.last_close_reason[i] = a->reason;
    if (H.links[(a->link - 1) / 2].up) {
      H.links[(a->link - 1) / 2].up = false;
      side_node(a->link, &peer, &pid);
      q[qtail++ % 65536] = (ev){i, a->link, NULL, 1};
      q[qtail++ % 65536] = (ev){peer, pid, NULL, 1};
    }
    break;
  case GV_ACT_RELEASE:
    gv_lcore_release(H.lc[i], a->link, GV_HOLD_GOSSIP, H.now);
    break;
  case GV_ACT_DELIVER:
    H.delivered[i]++;
    H.repaired[i] = a->repaired;
    H.hops[i] = a->hops;
    memcpy(H.last_id[i], a->msg_id, 32);
    break;
  case GV_ACT_REPORT:
    H.reports[i]++;
    H.report_peers[i] = a->response->u.response.n_peers;
    H.report_addrs[i] = 0;
    for (size_t k = 0; k < a->response->u.response.n_peers; k++)
      H.report_addrs[i] += a->response->u.response.peers[k].u.peer.n_addrs;
    break;
  case GV_ACT_DIAL:
    H.dials[i]++;
    memcpy(H.dial_peer[i], a->peer, GV_ID_BYTES);
    H.dial_addr[i] = a->addr;
    break;
  case GV_ACT_SEQ_RESERVE:
    ck_assert_uint_gt(a->seq, H.reserved[i]);
    H.reserved[i] = a->seq;
    H.reserves[i]++;
    break;
  case GV_ACT_PERSIST:
    H.persists[i]++;
    H.deletes[i] += a->entry == NULL;
    break;
  default: break;
  }
}

/* Runs every core's actions until all are quiet; frames are delivered in
 * FIFO order at the current time. Both cores' invariants hold after every
 * step. */
static void h_pump(void) {
  bool busy = true;

  while (busy) {
    busy = false;
    for (int i = 0; i < H.n; i++) {
      gv_action a;
      while (gv_engine_next(H.e[i], &a) || gv_lcore_next(H.lc[i], &a)) {
        busy = true;
        run_action(i, &a);
      }
      ck_assert_int_eq(gv_engine_check(H.e[i], NULL), 0);
      ck_assert_int_eq(gv_lcore_check(H.lc[i], NULL), 0);
    }
    while (qhead < qtail) {
      ev x = q[qhead++ % 65536];
      busy = true;
      if (x.down)
        gv_lcore_closed(H.lc[x.to], x.lid, true, H.now);
      else {
        gv_lcore_recv(H.lc[x.to], x.lid, x.b->data, x.b->len, H.now);
        gv_buf_unref(x.b);
      }
    }
  }
}

/* a dials b (at b's first address, if any). Returns the link index. */
static int h_connect(int a, int b) {
  int k = H.nlinks++;
  H.links[k].a = a;
  H.links[k].b = b;
  H.links[k].up = true;
  gv_lcore_open(H.lc[a], (gv_linkid)(2 * k + 1), H.ids[b].pk, true,
                H.cfg[b].n_addrs > 0 ? &H.cfg[b].addrs[0] : NULL, H.now);
  gv_lcore_open(H.lc[b], (gv_linkid)(2 * k + 2), H.ids[a].pk, false, NULL,
                H.now);
  h_pump();
  return k;
}

/* Ends link k from both sides' transports, as a dropped TCP connection. */
static void h_cut(int k) {
  H.links[k].up = false;
  gv_lcore_closed(H.lc[H.links[k].a], (gv_linkid)(2 * k + 1), false, H.now);
  gv_lcore_closed(H.lc[H.links[k].b], (gv_linkid)(2 * k + 2), false, H.now);
  h_pump();
}

static void h_tick_all(int64_t now) {
  H.now = now;
  for (int i = 0; i < H.n; i++) {
    gv_lcore_tick(H.lc[i], now);
    gv_engine_tick(H.e[i], now);
  }
  h_pump();
}

static void broadcasting(int i, const char *addr) {
  H.cfg[i].broadcasting = true;
  gv_addr_parse(&H.cfg[i].addrs[0], addr, strlen(addr));
  H.cfg[i].n_addrs = 1;
}

static char repo_store[MAXN][4][GV_REPO_MAX + 1];

static void holds(int i, const char *repo) {
  strcpy(repo_store[i][H.cfg[i].n_repos++], repo);
  H.cfg[i].repos = (const char(*)[GV_REPO_MAX + 1]) repo_store[i];
}

static int count_sent(gv_msg_type t) {
  int n = 0;
  for (int i = 0; i < H.nlog; i++)
    n += H.log[i].type == t;
  return n;
}

/* ---- tests ---- */

/* HELLO introduces each side's record; the silent one has no address. */
START_TEST(test_hello_fills_tables) {
  const gv_peer_entry *p;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  holds(0, "demo/a");
  h_start();
  h_connect(0, 1);
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  ck_assert_ptr_nonnull(p);
  ck_assert(p->broadcasting && p->connected);
  ck_assert_uint_eq(p->n_addrs, 1);
  p = gv_engine_table_get(H.e[1], H.ids[0].pk);
  ck_assert_ptr_nonnull(p);
  ck_assert(!p->broadcasting);
  ck_assert_uint_eq(p->n_addrs, 0);
  ck_assert(gv_peer_entry_has_repo(p, "demo/a"));
  ck_assert_int_eq(count_sent(GV_MSG_HELLO), 2);
  ck_assert_int_eq(gv_engine_check(H.e[0], NULL), 0);
}
END_TEST

/* A triangle: every node gets the announcement once although two copies
 * arrive at some; nothing is sent back to where it came from. */
START_TEST(test_dedup_and_never_back) {
  h_init(3);
  broadcasting(0, "198.51.100.1:7411");
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_connect(1, 2);
  h_connect(2, 0);
  h_clear_log();
  ck_assert_int_eq(gv_engine_announce(H.e[0], NULL, H.now), 0);
  h_pump();
  ck_assert_int_eq(H.delivered[1], 1);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert_int_eq(H.delivered[0], 0); /* the origin does not deliver */
  for (int i = 0; i < H.nlog; i++) {
    sent *s = &H.log[i];
    if (s->type != GV_MSG_PEER_ANNOUNCEMENT)
      continue;
    /* Node 1 received from 0 and may only send on to 2, and vice versa. */
    ck_assert_msg(
        !(s->from != 0 && s->to == 0 && s->hops == 1 && H.hops[s->from] == 1),
        "sent back to the node it came from");
  }
  ck_assert_uint_ge(gv_engine_stats_get(H.e[1])->dedup_hits +
                        gv_engine_stats_get(H.e[2])->dedup_hits,
                    1);
}
END_TEST

/* Engines given one pool (cfg.bodies, as the simulator's are) hold one
 * copy of each signed body, the very bytes, the one the pool's memo
 * remembers too, and give every reference back when freed. */
START_TEST(test_shared_bodies) {
  gv_intern *pool;
  const gv_peer_entry *p1, *p2;

  ck_assert_int_eq(gv_intern_new(&pool, (const uint8_t *)"0123456789abcdef"),
                   0);
  h_init(3);
  broadcasting(0, "198.51.100.1:7411");
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  for (int i = 0; i < 3; i++)
    H.cfg[i].bodies = pool;
  h_start();
  h_connect(0, 1);
  h_connect(1, 2);
  h_connect(2, 0);
  ck_assert_int_eq(gv_engine_announce(H.e[0], NULL, H.now), 0);
  h_pump();
  ck_assert_int_eq(H.delivered[1], 1);
  p1 = gv_engine_table_get(H.e[1], H.ids[0].pk);
  p2 = gv_engine_table_get(H.e[2], H.ids[0].pk);
  ck_assert_ptr_nonnull(p1);
  ck_assert_ptr_nonnull(p2);
  ck_assert_ptr_eq(p1->body, p2->body);
  ck_assert_uint_eq(strlen(p1->body), p1->body_len);
  /* The signature and addresses, read from that string, are the origin's:
   * the signature verifies over the body and node 0 signed it. */
  {
    gv_msg hello, rec;
    gv_addr want;
    memset(&hello, 0, sizeof(hello));
    memset(&rec, 0, sizeof(rec));
    gv_engine_hello(H.e[0], &hello, &rec);
    ck_assert_str_eq(rec.body, p1->body);
    ck_assert_mem_eq(gv_peer_entry_sig(p1), rec.sig, GV_SIG_BYTES);
    {
      gv_msg_policy pol = {.now_ms = H.now}; /* signatures checked */
      gv_msg dec;
      ck_assert_int_eq(gv_msg_decode_record(&dec, p1->body, p1->body_len,
                                            gv_peer_entry_sig(p1), &pol, NULL),
                       0);
      ck_assert_mem_eq(dec.origin, H.ids[0].pk, GV_ID_BYTES);
      gv_msg_clear(&dec);
    }
    ck_assert_uint_eq(p1->n_addrs, 1);
    ck_assert_int_eq(gv_addr_parse(&want, "198.51.100.1:7411", 17), 0);
    ck_assert(gv_addr_equal(&gv_peer_entry_addrs(p1)[0], &want));
    ck_assert_ptr_null(gv_peer_entry_relays(p1));
  }
  /* The three newest records (node 0's HELLO record was superseded by its
   * announcement, which the caches share too), and the one configuration
   * the three engines share: they differ only in per-node members. */
  ck_assert_uint_eq(gv_intern_count(pool), 4);
  h_init(0);
  /* What is left is the memo's: each body it remembers holds its kept
   * form (the announcement's, which the engines shared). */
  ck_assert_uint_ge(gv_intern_memo_count(pool), 1);
  ck_assert_uint_eq(gv_intern_count(pool), gv_intern_memo_count(pool));
  gv_intern_free(pool);
}
END_TEST

/* The initial ttl by type: 32, 16, 2; each hop takes one. */
START_TEST(test_ttl_per_type) {
  uint8_t rid[32];
  h_init(3);
  broadcasting(0, "198.51.100.1:7411");
  broadcasting(1, "198.51.100.2:7411"); /* silent nodes take no inbound */
  H.cfg[0].heartbeat_ms = 30000;
  h_start();
  h_connect(1, 0);
  h_connect(2, 1);
  h_clear_log();
  gv_engine_announce(H.e[0], NULL, H.now);
  h_pump();
  ck_assert_int_eq(H.log[0].type, GV_MSG_PEER_ANNOUNCEMENT);
  ck_assert_uint_eq(H.log[0].ttl, 32);
  ck_assert_uint_eq(H.log[0].hops, 0);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert_uint_eq(H.hops[2], 2);
  h_clear_log();
  ck_assert_int_eq(gv_engine_request(H.e[0], "x", 4, rid, H.now), 0);
  h_pump();
  ck_assert_int_eq(H.log[0].type, GV_MSG_PEER_REQUEST);
  ck_assert_uint_eq(H.log[0].ttl, 16);
  h_clear_log();
  h_tick_all(H.now + 46000); /* past the jittered first heartbeat */
  ck_assert_int_ge(count_sent(GV_MSG_HEARTBEAT), 1);
  for (int i = 0; i < H.nlog; i++)
    if (H.log[i].type == GV_MSG_HEARTBEAT && H.log[i].from == 0)
      ck_assert_uint_eq(H.log[i].ttl, 2);
}
END_TEST

/* Heartbeats (ttl 2) stop after two hops in a line of four. */
START_TEST(test_heartbeat_ttl_bounds_reach) {
  h_init(4);
  H.cfg[0].heartbeat_ms = 30000;
  for (int i = 1; i < 4; i++)
    H.cfg[i].broadcasting = true;
  h_start();
  h_connect(0, 1);
  h_connect(1, 2);
  h_connect(2, 3);
  h_tick_all(H.now + 46000);
  ck_assert_int_eq(H.delivered[1], 1);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert_int_eq(H.delivered[3], 0);
}
END_TEST

/* Entries expire after 2 h of silence, bootstrap entries after 1 h. */
START_TEST(test_expiry) {
  h_init(3);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  H.cfg[2].bootstrap = true;
  h_start();
  int k1 = h_connect(0, 1), k2 = h_connect(0, 2);
  /* Disconnect both: then only silence counts. */
  h_cut(k1);
  h_cut(k2);
  int64_t t = H.now;
  h_tick_all(t + HOUR - 20000);
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[2].pk));
  h_tick_all(t + HOUR + 20000);
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[2].pk));
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[1].pk));
  h_tick_all(t + 2 * HOUR - 20000);
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[1].pk));
  h_tick_all(t + 2 * HOUR + 20000);
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[1].pk));
  ck_assert_int_ge(H.persists[0], 2); /* the deletions were persisted */
}
END_TEST

/* A newer origin seq wins; an older one changes nothing. */
START_TEST(test_seq_wins) {
  const gv_peer_entry *p;
  char repos[1][GV_REPO_MAX + 1] = {"new/repo"};
  uint64_t first;

  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  h_connect(0, 1);
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  first = p->seq;
  H.now += 10;
  ck_assert_int_eq(gv_engine_set_repos(H.e[1], repos, 1, H.now), 0);
  h_pump();
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  ck_assert_uint_gt(p->seq, first);
  ck_assert(gv_peer_entry_has_repo(p, "new/repo"));
}
END_TEST

/* IP rule 3: going silent makes every node forget the address, and no
 * later message carries it. */
START_TEST(test_switch_to_silent) {
  const gv_peer_entry *p;
  h_init(3);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_connect(1, 2);
  gv_engine_announce(H.e[2], NULL, H.now);
  h_pump();
  p = gv_engine_table_get(H.e[0], H.ids[2].pk);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(p->n_addrs, 1);
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[2], false, false, NULL, 0, H.now), 0);
  h_pump(); /* the update goes out on every link first */
  gv_lcore_set_accepting(H.lc[2], false, H.now);
  h_pump();
  for (int i = 0; i < 2; i++) {
    p = gv_engine_table_get(H.e[i], H.ids[2].pk);
    ck_assert_ptr_nonnull(p);
    ck_assert(!p->broadcasting);
    ck_assert_uint_eq(p->n_addrs, 0);
  }
  for (int i = 0; i < H.nlog; i++)
    ck_assert_ptr_null(strstr(H.log[i].text, "198.51.100.3"));
  /* Its inbound link closed; it dials out, as maintenance would. A request
   * now answers without the address. */
  ck_assert_uint_eq(gv_engine_link_count(H.e[2]), 0);
  h_connect(2, 1);
  h_clear_log();
  {
    char repos[1][GV_REPO_MAX + 1] = {"r"};
    H.now += 10;
    gv_engine_set_repos(H.e[2], repos, 1, H.now);
    h_pump();
  }
  gv_engine_request(H.e[0], "r", 8, NULL, H.now);
  h_pump();
  ck_assert_int_ge(H.reports[0], 1);
  ck_assert_int_eq(H.report_addrs[0], 0);
  for (int i = 0; i < H.nlog; i++)
    ck_assert_ptr_null(strstr(H.log[i].text, "198.51.100.3"));
}
END_TEST

/* Sends of PEER_UPDATE from origin i in the log; all must be copies of one
 * message (*id receives its id). */
static int updates_from(int i, uint8_t id[32]) {
  int n = 0;
  for (int k = 0; k < H.nlog; k++) {
    gv_msg m;
    gv_msg_policy pol = {.now_ms = H.now, .trust_sigs = true};
    if (H.log[k].type != GV_MSG_PEER_UPDATE)
      continue;
    ck_assert_int_eq(gv_msg_decode(&m, (const uint8_t *)H.log[k].text,
                                   strlen(H.log[k].text), &pol, NULL),
                     0);
    if (memcmp(m.origin, H.ids[i].pk, 32) == 0) {
      if (n++ == 0)
        memcpy(id, m.id, 32);
      ck_assert_mem_eq(m.id, id, 32);
    }
    gv_msg_clear(&m);
  }
  return n;
}

/* A silent node names its relays: one PEER_UPDATE floods, and every node's
 * entry for it then lists them, in order; the same set again (in another
 * order) sends and changes nothing; an empty set floods once more. */
START_TEST(test_set_relays) {
  const uint8_t(*rel)[GV_ID_BYTES];
  uint8_t ids[2][GV_ID_BYTES], swapped[2][GV_ID_BYTES], id[32];
  const gv_peer_entry *p;
  uint64_t seq;
  int persists;

  h_init(4);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  broadcasting(3, "198.51.100.4:7411");
  h_start();
  h_connect(0, 1);
  h_connect(0, 2);
  h_connect(3, 1); /* node 3 hears of node 0 through node 1 only */
  gv_engine_announce(H.e[0], NULL, H.now);
  h_pump();
  p = gv_engine_table_get(H.e[3], H.ids[0].pk);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(p->n_relays, 0);
  ck_assert_ptr_null(gv_peer_entry_relays(p));
  ck_assert_ptr_null(gv_peer_entry_addrs(p)); /* silent */

  memcpy(ids[0], H.ids[2].pk, GV_ID_BYTES);
  memcpy(ids[1], H.ids[1].pk, GV_ID_BYTES);
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 2, H.now), 0);
  h_pump();
  ck_assert_int_ge(updates_from(0, id), 1); /* one message, flooded */
  for (int i = 1; i < 4; i++) {
    p = gv_engine_table_get(H.e[i], H.ids[0].pk);
    ck_assert_ptr_nonnull(p);
    ck_assert(!p->broadcasting);
    ck_assert_uint_eq(p->n_addrs, 0);
    ck_assert_uint_eq(p->n_relays, 2);
    rel = gv_peer_entry_relays(p);
    ck_assert_mem_eq(rel[0], H.ids[2].pk, GV_ID_BYTES);
    ck_assert_mem_eq(rel[1], H.ids[1].pk, GV_ID_BYTES);
  }
  /* The same set, in another order: nothing is signed or sent. */
  seq = gv_engine_table_get(H.e[3], H.ids[0].pk)->seq;
  persists = H.persists[3];
  memcpy(swapped[0], ids[1], GV_ID_BYTES);
  memcpy(swapped[1], ids[0], GV_ID_BYTES);
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], swapped, 2, H.now), 0);
  h_pump();
  ck_assert_int_eq(H.nlog, 0);
  ck_assert_int_eq(H.persists[3], persists);
  ck_assert_uint_eq(gv_engine_table_get(H.e[3], H.ids[0].pk)->seq, seq);
  /* A changed set floods again; none at all leaves the member out. */
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 1, H.now), 0);
  h_pump();
  ck_assert_int_ge(updates_from(0, id), 1);
  ck_assert_uint_eq(gv_engine_table_get(H.e[3], H.ids[0].pk)->n_relays, 1);
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], NULL, 0, H.now), 0);
  h_pump();
  ck_assert_int_ge(updates_from(0, id), 1);
  p = gv_engine_table_get(H.e[3], H.ids[0].pk);
  ck_assert_uint_eq(p->n_relays, 0);
  ck_assert_ptr_null(gv_peer_entry_relays(p));
  ck_assert_ptr_null(strstr(p->body, "relays"));
}
END_TEST

/* The torrent port (PROTOCOL.md §6.5 tport): a broadcasting node's record
 * names it and every node's table holds it; going silent drops it from the
 * record, going broadcasting again names it again. */
START_TEST(test_set_tport) {
  const gv_peer_entry *p;
  uint8_t id[32];

  h_init(2);
  broadcasting(0, "198.51.100.2:7411");
  broadcasting(1, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_pump();
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_tport(H.e[0], 6881, H.now), 0);
  h_pump();
  ck_assert_int_ge(updates_from(0, id), 1);
  p = gv_engine_table_get(H.e[1], H.ids[0].pk);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(p->tport, 6881);
  ck_assert_ptr_nonnull(strstr(p->body, "\"tport\":6881"));
  /* the same port again: nothing is signed */
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_tport(H.e[0], 6881, H.now), 0);
  h_pump();
  ck_assert_int_eq(H.nlog, 0);
  /* silent: the record names no port */
  H.now += 10;
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[0], false, false, NULL, 0, H.now), 0);
  h_pump();
  p = gv_engine_table_get(H.e[1], H.ids[0].pk);
  ck_assert(!p->broadcasting);
  ck_assert_uint_eq(p->tport, 0);
  ck_assert_ptr_null(strstr(p->body, "tport"));
}
END_TEST

/* Relays belong to silent nodes: a broadcasting one is refused, going
 * broadcasting drops them; bad sets are refused; a refusal sends nothing. */
START_TEST(test_set_relays_refused) {
  uint8_t ids[GV_MAX_RELAYS + 1][GV_ID_BYTES];
  gv_addr addr;
  const gv_peer_entry *p;

  h_init(3);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_connect(2, 1);
  for (int i = 0; i <= GV_MAX_RELAYS; i++)
    memset(ids[i], 0x40 + i, GV_ID_BYTES);
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[1], ids, 1, H.now), GV_ESTATE);
  ck_assert_int_eq(gv_engine_set_relays(H.e[1], NULL, 0, H.now), GV_ESTATE);
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, GV_MAX_RELAYS + 1, H.now),
                   GV_ELIMIT);
  memcpy(ids[1], H.ids[0].pk, GV_ID_BYTES); /* itself */
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 2, H.now), GV_EINVAL);
  memcpy(ids[1], ids[0], GV_ID_BYTES); /* twice */
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 2, H.now), GV_EINVAL);
  h_pump();
  ck_assert_int_eq(H.nlog, 0);

  /* Going broadcasting drops the relays from the record everyone holds. */
  memcpy(ids[0], H.ids[1].pk, GV_ID_BYTES);
  H.now += 10;
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 1, H.now), 0);
  h_pump();
  ck_assert_uint_eq(gv_engine_table_get(H.e[2], H.ids[0].pk)->n_relays, 1);
  gv_addr_parse(&addr, "198.51.100.1:7411", 17);
  H.now += 10;
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[0], true, false, &addr, 1, H.now), 0);
  h_pump();
  p = gv_engine_table_get(H.e[2], H.ids[0].pk);
  ck_assert(p->broadcasting);
  ck_assert_uint_eq(p->n_addrs, 1);
  ck_assert_uint_eq(p->n_relays, 0);
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 1, H.now), GV_ESTATE);
}
END_TEST

/* Every string in JSON value v: none is an address, none holds one of the
 * IPs given. */
static void no_address_in(const cJSON *v, const char *const *ips, int n) {
  const cJSON *c;
  if (cJSON_IsString(v)) {
    gv_addr a;
    ck_assert_msg(gv_addr_parse(&a, v->valuestring, strlen(v->valuestring)),
                  "address '%s' in a silent record", v->valuestring);
    for (int i = 0; i < n; i++)
      ck_assert_ptr_null(strstr(v->valuestring, ips[i]));
  }
  cJSON_ArrayForEach(c, v) no_address_in(c, ips, n);
}

/* Privacy (DESIGN-BRIEF 7): a silent record with relays names them by id
 * and carries no address anywhere: not its own (configured but not
 * broadcast), not its relays'. Nor does any message on the wire carry the
 * silent node's address. */
START_TEST(test_silent_relays_carry_no_address) {
  static const char *const ips[] = {"203.0.113.9", "198.51.100.2",
                                    "198.51.100.3"};
  uint8_t ids[2][GV_ID_BYTES], id[32];
  gv_msg hello = {0}, rec = {0};
  cJSON *body;
  char hex[65];

  h_init(3);
  broadcasting(0, "203.0.113.9:7411");
  H.cfg[0].broadcasting = false; /* an address configured, not broadcast */
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_connect(0, 2);
  memcpy(ids[0], H.ids[1].pk, GV_ID_BYTES);
  memcpy(ids[1], H.ids[2].pk, GV_ID_BYTES);
  H.now += 10;
  h_clear_log();
  ck_assert_int_eq(gv_engine_set_relays(H.e[0], ids, 2, H.now), 0);
  h_pump();
  ck_assert_int_ge(updates_from(0, id), 1);
  gv_engine_hello(H.e[0], &hello, &rec);
  ck_assert_ptr_nonnull(rec.body);
  gv_id_to_hex(H.ids[1].pk, hex);
  ck_assert_ptr_nonnull(strstr(rec.body, hex)); /* named, by id */
  ck_assert_ptr_nonnull(strstr(rec.body, "\"addrs\":[]"));
  body = cJSON_Parse(rec.body);
  ck_assert_ptr_nonnull(body);
  no_address_in(body, ips, 3);
  cJSON_Delete(body);
  /* the same, as every node holds it */
  body = cJSON_Parse(gv_engine_table_get(H.e[2], H.ids[0].pk)->body);
  ck_assert_ptr_nonnull(body);
  no_address_in(body, ips, 3);
  cJSON_Delete(body);
  for (int i = 0; i < H.nlog; i++)
    ck_assert_ptr_null(strstr(H.log[i].text, "203.0.113.9"));
}
END_TEST

/* A silent node takes no inbound link; an engine never sees an inbound
 * peer's address, so it cannot share one. */
START_TEST(test_silent_refuses_inbound) {
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  h_connect(1, 0);
  ck_assert_int_eq(H.closes[0], 1);
  ck_assert_int_eq(H.last_close_reason[0], GV_CLOSE_NOT_ACCEPTING);
  ck_assert_uint_eq(gv_engine_link_count(H.e[0]), 0);
  ck_assert_uint_eq(gv_engine_link_count(H.e[1]), 0);
}
END_TEST

/* Requests find holders through a silent middle node; the answer travels
 * the reverse path back to a silent requester. */
START_TEST(test_request_reverse_path) {
  uint8_t rid[32];
  h_init(4);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  holds(2, "linux");
  holds(3, "linux");
  h_start();
  h_connect(0, 1); /* 0: a silent requester; 1: a relay */
  h_connect(1, 2);
  h_connect(3, 2); /* 3: a silent holder */
  ck_assert_int_eq(gv_engine_request(H.e[0], "linux", 8, rid, H.now), 0);
  h_pump();
  /* 1 knows 2 from HELLO and answers; 2 answers with itself and 3. */
  ck_assert_int_ge(H.reports[0], 2);
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[2].pk));
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[3].pk));
  ck_assert_uint_eq(gv_engine_table_get(H.e[0], H.ids[2].pk)->n_addrs, 1);
  /* The silent holder is found, without an address. */
  ck_assert_uint_eq(gv_engine_table_get(H.e[0], H.ids[3].pk)->n_addrs, 0);
  ck_assert_int_eq(H.reports[1], 0);
  /* A second request: nodes answer again (a response's id was once
   * recorded as all zero and leaked the second time). */
  H.now += 10;
  ck_assert_int_eq(gv_engine_request(H.e[0], "linux", 8, rid, H.now), 0);
  h_pump();
  ck_assert_int_ge(H.reports[0], 4);
  for (int i = 0; i < H.nlog; i++)
    if (H.log[i].type == GV_MSG_PEER_LIST_RESPONSE)
      ck_assert_msg(H.log[i].to != 3,
                    "a response went off the reverse path, to node 3");
}
END_TEST

static bool drop_eager_0_to_2(int from, int to, gv_msg_type t) {
  return from == 0 && to == 2 && t == GV_MSG_PEER_ANNOUNCEMENT;
}

/* Three nodes, fan-out 1; node 0 broadcasts and its eager copy to node 2
 * is lost. Whoever missed it hears an IHAVE and pulls it: both deliver. */
static void run_missed_eager(void) {
  h_init(3);
  for (int i = 0; i < 3; i++)
    H.cfg[i].fanout = 1;
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  h_start();
  h_connect(0, 1);
  h_connect(0, 2);
  h_connect(1, 2);
  H.drop = drop_eager_0_to_2;
  gv_engine_announce(H.e[0], NULL, H.now);
  h_pump();
  H.drop = NULL;
  for (int i = 0; i < 4; i++)
    h_tick_all(H.now + 300);
  ck_assert_int_eq(H.delivered[1], 1);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert_uint_ge(gv_engine_stats_get(H.e[1])->pulls_sent +
                        gv_engine_stats_get(H.e[2])->pulls_sent,
                    1);
}

/* Repair: the eager copy to node 2 is lost; node 2 learns the id by IHAVE
 * and pulls it. */
START_TEST(test_repair_pulls_missed_message) {
  run_missed_eager();
  ck_assert_uint_ge(gv_engine_stats_get(H.e[0])->pulls_served, 1);
}
END_TEST

/* Hooks that check the contract of gv_blk_hooks (engine.h): every block
 * released was handed out by alloc, with the same size. */
#define BLK_MAX 4096
static struct {
  void *p[BLK_MAX];
  size_t n[BLK_MAX];
  int len, allocs, releases, bad;
} B;

static int blk_find(const void *p) {
  for (int i = B.len - 1; i >= 0; i--)
    if (B.p[i] == p)
      return i;
  return -1;
}

static void *blk_alloc(size_t n) {
  void *p = malloc(n);
  int i;
  if (p == NULL)
    return NULL;
  /* A block freed with free() (allowed) may come back from malloc. */
  if ((i = blk_find(p)) >= 0)
    B.n[i] = n;
  else if (B.len < BLK_MAX) {
    B.p[B.len] = p;
    B.n[B.len++] = n;
  } else
    B.bad++;
  B.allocs++;
  return p;
}

static void blk_release(void *p, size_t n) {
  int i;
  if (p == NULL)
    return;
  if ((i = blk_find(p)) < 0 || B.n[i] != n)
    B.bad++;
  else
    B.p[i] = B.p[--B.len], B.n[i] = B.n[B.len];
  B.releases++;
  free(p);
}

/* The repair run (run_missed_eager) with every buffer and growing array
 * through the hooks: the same deliveries, and each block comes back with
 * the size it was asked for. */
START_TEST(test_blk_hooks) {
  static const gv_blk_hooks hooks = {blk_alloc, blk_release};
  int releases_before_free;

  memset(&B, 0, sizeof(B));
  gv_blk_set_hooks(&hooks);
  run_missed_eager();
  releases_before_free = B.releases;
  h_init(0); /* frees the engines: their link arrays come back */
  ck_assert_int_gt(releases_before_free, 10); /* every frame is a buffer */
  ck_assert_int_gt(B.releases, releases_before_free);
  ck_assert_int_ge(B.allocs, B.releases);
  ck_assert_int_eq(B.bad, 0);
  /* malloc's again: a buffer made and freed without the hooks. */
  releases_before_free = B.releases;
  gv_blk_set_hooks(NULL);
  gv_buf_unref(gv_buf_new("x", 1));
  ck_assert_int_eq(B.releases, releases_before_free);
}
END_TEST

/* Without repair, the same loss is permanent. */
START_TEST(test_no_repair_loses) {
  h_init(3);
  for (int i = 0; i < 3; i++) {
    H.cfg[i].fanout = 1;
    H.cfg[i].repair = false;
    H.cfg[i].seed = 7;
  }
  h_start();
  h_connect(0, 1);
  h_connect(0, 2);
  H.drop = drop_eager_0_to_2;
  gv_engine_announce(H.e[0], NULL, H.now);
  h_pump();
  h_tick_all(H.now + 1000);
  ck_assert_int_eq(H.delivered[2], 0); /* its only copy was lost */
}
END_TEST

/* A late neighbour catches up through the IHAVE sent on link up. */
START_TEST(test_anti_entropy_on_link_up) {
  h_init(3);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  h_connect(0, 1);
  gv_engine_announce(H.e[0], NULL, H.now);
  h_pump();
  ck_assert_int_eq(H.delivered[1], 1);
  h_connect(2, 1); /* joins later */
  h_tick_all(H.now + 300);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert(H.repaired[2]);
}
END_TEST

/* Garbage on the gossip channel is rejected by the engine and penalized by
 * the link core; past the threshold the link closes and the peer is
 * banned: its next link is refused, and gossip does not redial it. */
START_TEST(test_penalties_and_ban) {
  static const uint8_t junk[] = "\x01{junk";
  int k;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  k = h_connect(0, 1);
  for (int i = 0; i < 20 && H.links[k].up; i++) {
    gv_lcore_recv(H.lc[1], (gv_linkid)(2 * k + 2), junk, sizeof(junk) - 1,
                  H.now);
    h_pump();
  }
  ck_assert(!H.links[k].up);
  ck_assert_int_eq(H.last_close_reason[1], GV_CLOSE_BANNED);
  ck_assert_uint_eq(gv_lcore_stats_get(H.lc[1])->bans, 1);
  ck_assert_uint_ge(gv_engine_stats_get(H.e[1])->rejected, 4);
  k = h_connect(0, 1);
  ck_assert(!H.links[k].up);
  ck_assert_int_eq(H.last_close_reason[1], GV_CLOSE_BANNED);
  /* After the ban expires, the peer is welcome again. */
  h_tick_all(H.now + 11 * 60000);
  k = h_connect(0, 1);
  ck_assert(H.links[k].up);
  ck_assert_uint_eq(gv_engine_link_count(H.e[1]), 1);
}
END_TEST

/* The table stays within its cap: a record from a new node evicts the
 * lowest-scored entry that has no link, and the eviction is persisted;
 * when every entry is linked, the newcomer is not entered. */
START_TEST(test_table_cap) {
  int k[5];
  h_init(6);
  for (int i = 0; i < 6; i++) {
    char addr[32];
    snprintf(addr, sizeof(addr), "198.51.100.%d:7411", i + 1);
    broadcasting(i, addr);
  }
  H.cfg[0].table_cap = 3;
  h_start();
  for (int i = 1; i <= 3; i++)
    k[i] = h_connect(i, 0);
  ck_assert_uint_eq(gv_engine_table_size(H.e[0]), 3);
  /* All three linked: a fourth record finds no room. */
  k[4] = h_connect(4, 0);
  ck_assert(H.links[k[4]].up);
  ck_assert_uint_eq(gv_engine_table_size(H.e[0]), 3);
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[4].pk));
  /* Node 2 goes away, and its entry scores lowest: node 5's record
   * evicts it. */
  h_cut(k[2]);
  gv_engine_link_score(H.e[0], (gv_linkid)(2 * k[1] + 2), 90, 90, H.now);
  gv_engine_link_score(H.e[0], (gv_linkid)(2 * k[3] + 2), 90, 90, H.now);
  H.deletes[0] = 0;
  h_connect(5, 0);
  ck_assert_uint_eq(gv_engine_table_size(H.e[0]), 3);
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[2].pk));
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[5].pk));
  ck_assert_int_eq(H.deletes[0], 1);
}
END_TEST

/* Dedup is exact and bounded: past its cap the oldest id is evicted (and
 * counted); an id is forgotten after dedup_ms, so the same message is then
 * taken as new. */
START_TEST(test_dedup_cap_and_expiry) {
  char repos[3][1][GV_REPO_MAX + 1] = {{"a"}, {"b"}, {"c"}};
  const gv_engine_stats *st;
  int k;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  H.cfg[1].dedup_cap = 2;
  H.cfg[1].dedup_ms = 1000;
  h_start();
  k = h_connect(0, 1);
  st = gv_engine_stats_get(H.e[1]);
  for (int i = 0; i < 3; i++) {
    H.now += 10;
    ck_assert_int_eq(gv_engine_set_repos(H.e[0], repos[i], 1, H.now), 0);
    h_pump();
  }
  ck_assert_int_eq(H.delivered[1], 3);
  ck_assert_uint_ge(st->dedup_evictions, 1);
  /* The last update again, before and after its id expires. */
  {
    gv_buf *b = NULL;
    for (int i = H.nlog - 1; i >= 0 && b == NULL; i--)
      if (H.log[i].type == GV_MSG_PEER_UPDATE && H.log[i].to == 1)
        b = gv_chan_buf(GV_CHAN_GOSSIP, H.log[i].text, strlen(H.log[i].text));
    ck_assert_ptr_nonnull(b);
    gv_lcore_recv(H.lc[1], (gv_linkid)(2 * k + 2), b->data, b->len, H.now);
    h_pump();
    ck_assert_int_eq(H.delivered[1], 3); /* a duplicate */
    h_tick_all(H.now + 11000);           /* past dedup_ms and a sweep */
    gv_lcore_recv(H.lc[1], (gv_linkid)(2 * k + 2), b->data, b->len, H.now);
    h_pump();
    ck_assert_int_eq(H.delivered[1], 4); /* forgotten, so new again */
    gv_buf_unref(b);
  }
}
END_TEST

/* The IWANT cache is bounded: past cache_cap the oldest message is dropped
 * and no longer served; and it expires after cache_ms. */
START_TEST(test_cache_cap_and_expiry) {
  char repos[2][1][GV_REPO_MAX + 1] = {{"a"}, {"b"}};
  uint8_t ids[2][32];
  gv_msg want;
  char *out;
  size_t len;
  gv_buf *b;
  int k;

  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  H.cfg[0].cache_cap = 1;
  H.cfg[0].cache_ms = 5000;
  h_start();
  k = h_connect(0, 1);
  for (int i = 0; i < 2; i++) {
    H.now += 10;
    ck_assert_int_eq(gv_engine_set_repos(H.e[0], repos[i], 1, H.now), 0);
    h_pump();
    memcpy(ids[i], H.last_id[1], 32);
  }
  memset(&want, 0, sizeof(want));
  want.type = GV_MSG_IWANT;
  want.u.ids.n = 2;
  memcpy(want.u.ids.ids[0], ids[0], 32);
  memcpy(want.u.ids.ids[1], ids[1], 32);
  ck_assert_int_eq(gv_msg_encode_link(&want, &out, &len), 0);
  b = gv_chan_buf(GV_CHAN_GOSSIP, out, len);
  free(out);
  gv_lcore_recv(H.lc[0], (gv_linkid)(2 * k + 1), b->data, b->len, H.now);
  h_pump();
  ck_assert_uint_eq(gv_engine_stats_get(H.e[0])->pulls_served, 1);
  h_tick_all(H.now + 11000); /* past cache_ms and a sweep */
  gv_lcore_recv(H.lc[0], (gv_linkid)(2 * k + 1), b->data, b->len, H.now);
  h_pump();
  ck_assert_uint_eq(gv_engine_stats_get(H.e[0])->pulls_served, 1);
  gv_buf_unref(b);
}
END_TEST

/* Membership: a node dials candidates up to its target and backs off from
 * failures. */
START_TEST(test_dials_candidates_with_backoff) {
  gv_addr a;
  h_init(1);
  H.cfg[0].active_target = 2;
  h_start();
  gv_addr_parse(&a, "198.51.100.9:7411", 17);
  gv_engine_add_candidate(H.e[0], NULL, &a, true, H.now);
  h_tick_all(H.now + 1);
  ck_assert_int_eq(H.dials[0], 1);
  gv_engine_dial_failed(H.e[0], NULL, &a, H.now);
  h_pump();
  h_tick_all(H.now + 100); /* within the first backoff: no redial */
  ck_assert_int_eq(H.dials[0], 1);
  h_tick_all(H.now + 2000);
  ck_assert_int_eq(H.dials[0], 2);
}
END_TEST

/* A PEER_REQUEST is handed out by IWANT only while the reverse paths its
 * answers need live (60 s); an announcement for the whole cache time. */
START_TEST(test_request_served_within_route_time) {
  uint8_t rid[32];
  gv_msg want;
  char *out;
  size_t len;
  gv_buf *b;
  int k;

  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  k = h_connect(0, 1);
  ck_assert_int_eq(gv_engine_request(H.e[0], "some/repo", 4, rid, H.now), 0);
  h_pump();
  memset(&want, 0, sizeof(want));
  want.type = GV_MSG_IWANT;
  want.u.ids.n = 1;
  memcpy(want.u.ids.ids[0], rid, 32);
  ck_assert_int_eq(gv_msg_encode_link(&want, &out, &len), 0);
  b = gv_chan_buf(GV_CHAN_GOSSIP, out, len);
  free(out);
  H.now += 59000;
  gv_lcore_recv(H.lc[0], (gv_linkid)(2 * k + 1), b->data, b->len, H.now);
  h_pump();
  ck_assert_uint_eq(gv_engine_stats_get(H.e[0])->pulls_served, 1);
  H.now += 2000;
  gv_lcore_recv(H.lc[0], (gv_linkid)(2 * k + 1), b->data, b->len, H.now);
  h_pump();
  ck_assert_uint_eq(gv_engine_stats_get(H.e[0])->pulls_served, 1);
  gv_buf_unref(b);
}
END_TEST

/* A link closed as a duplicate has a surviving twin (maybe still saying
 * HELLO): its peer is not redialed at once, which would only make another
 * duplicate; a link that simply went down is replaced within seconds. */
START_TEST(test_no_redial_after_duplicate) {
  int k, dials;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  H.cfg[0].active_target = 1;
  h_start();
  k = h_connect(0, 1);
  /* Node 1 is also a seed with a known id (a --peer once dialed). */
  gv_engine_add_candidate(H.e[0], H.ids[1].pk, &H.cfg[1].addrs[0], false,
                          H.now);
  h_pump();
  dials = H.dials[0];
  gv_engine_link_down(H.e[0], (gv_linkid)(2 * k + 1), GV_CLOSE_DUPLICATE,
                      H.now);
  h_pump();
  for (int i = 1; i <= 10; i++)
    h_tick_all(H.now + 1000);
  ck_assert_int_eq(H.dials[0], dials);
  h_tick_all(H.now + 21000);
  ck_assert_int_eq(H.dials[0], dials + 1);
}
END_TEST

/* A link that ends moments after it came up (its HELLO refused at the far
 * end, say) counts as a failed dial: the peer, a seed here, is redialed
 * after a backoff that grows with each flap, not at once (a neighbour
 * once redialed a node that kept refusing it 120 times a second). */
START_TEST(test_flapping_link_backs_off) {
  int k, dials;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  H.cfg[0].active_target = 1;
  H.cfg[0].shuffle_ms = 0;
  h_start();
  gv_engine_add_candidate(H.e[0], H.ids[1].pk, &H.cfg[1].addrs[0], false,
                          H.now);
  for (int round = 1; round <= 3; round++) {
    int64_t min_wait = 1000LL << (round - 1); /* base 2^(n-1), -50% */
    k = h_connect(0, 1);
    H.now += 100;
    h_cut(k);
    dials = H.dials[0];
    h_tick_all(H.now + min_wait / 2 - 50);
    ck_assert_int_eq(H.dials[0], dials);
    h_tick_all(H.now + 2 * min_wait);
    ck_assert_int_eq(H.dials[0], dials + 1);
    gv_engine_dial_ended(H.e[0], H.ids[1].pk, &H.cfg[1].addrs[0],
                         GV_CLOSE_DUPLICATE, H.now);
    h_pump();
  }
  /* A link that lasted resets the count: the next flap waits ~1 s. */
  k = h_connect(0, 1);
  H.now += 60000;
  h_tick_all(H.now);
  h_cut(k);
  dials = H.dials[0];
  h_tick_all(H.now + 2000);
  ck_assert_int_eq(H.dials[0], dials + 1);
}
END_TEST

static bool guard_is(int i, int peer) {
  size_t n;
  const gv_guard *g = gv_engine_guards(H.e[i], &n);
  for (size_t k = 0; k < n; k++)
    if (memcmp(g[k].id, H.ids[peer].pk, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* A bootstrap node may be a guard before guard_min_age only if the
 * operator named it (--peer, here by address alone, its id shown by the
 * link); one a tracker named claims the flag in its own record, as anyone
 * registering there can, and waits like any entry. */
START_TEST(test_guard_bootstrap_operator_only) {
  h_init(3);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(2, "198.51.100.3:7411");
  H.cfg[1].bootstrap = true;
  H.cfg[2].bootstrap = true;
  H.cfg[0].active_target = 2;
  H.cfg[0].guard_count = 2;
  h_start();
  gv_engine_add_candidate(H.e[0], H.ids[1].pk, &H.cfg[1].addrs[0], false,
                          H.now);
  gv_engine_add_candidate(H.e[0], NULL, &H.cfg[2].addrs[0], true, H.now);
  h_connect(0, 1);
  h_connect(0, 2);
  for (int i = 1; i <= 5; i++)
    h_tick_all(H.now + 60000);
  ck_assert(guard_is(0, 2));
  ck_assert(!guard_is(0, 1));
  /* Past the minimum age both qualify. */
  for (int i = 1; i <= 3; i++)
    h_tick_all(H.now + H.cfg[0].guard_min_age_ms / 2);
  ck_assert(guard_is(0, 1));
}
END_TEST

/* A record from node X that lists an operator seed S's address (a forged
 * claim: anyone can sign one) does not pin the dial to S to X's id, which
 * would fail with a wrong id forever: S is dialed by address alone, linked,
 * and its id, shown by the link, makes it an operator-named bootstrap
 * guard at once. */
START_TEST(test_seed_address_claim_does_not_pin) {
  static const uint8_t zero[GV_ID_BYTES];
  gv_addr s_addr;

  h_init(4);
  broadcasting(1, "198.51.100.2:7411"); /* S, the operator's seed */
  H.cfg[1].bootstrap = true;
  broadcasting(2, "198.51.100.2:7411"); /* X claims S's address */
  broadcasting(3, "198.51.100.4:7411"); /* Y relays X's record */
  H.cfg[0].active_target = 2;
  H.cfg[0].guard_count = 2;
  h_start();
  s_addr = H.cfg[1].addrs[0];
  /* The seed, by address alone, is dialed at once; that dial fails. */
  gv_engine_add_candidate(H.e[0], NULL, &s_addr, true, H.now);
  h_tick_all(H.now + 1);
  ck_assert_int_eq(H.dials[0], 1);
  gv_engine_dial_failed(H.e[0], NULL, &s_addr, H.now);
  h_pump();
  /* X's record, relayed by Y, arrives before the redial. */
  h_connect(0, 3);
  h_connect(2, 3);
  ck_assert_int_eq(gv_engine_announce(H.e[2], NULL, H.now), 0);
  h_pump();
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[2].pk));
  memset(&H.dial_addr[0], 0, sizeof(H.dial_addr[0]));
  for (int i = 0; i < 5 && !gv_addr_equal(&H.dial_addr[0], &s_addr); i++)
    h_tick_all(H.now + 1000);
  ck_assert(gv_addr_equal(&H.dial_addr[0], &s_addr));
  ck_assert_mem_eq(H.dial_peer[0], zero, GV_ID_BYTES);
  h_connect(0, 1);
  for (int i = 1; i <= 3; i++)
    h_tick_all(H.now + 60000);
  ck_assert(guard_is(0, 1));
  ck_assert(!guard_is(0, 2));
}
END_TEST

/* A flood of records into a full table never evicts a guard, linked or
 * not: only unlinked non-guards make room. */
START_TEST(test_table_cap_keeps_guard) {
  int k;
  h_init(4);
  for (int i = 1; i < 4; i++) {
    char addr[32];
    snprintf(addr, sizeof(addr), "198.51.100.%d:7411", i + 1);
    broadcasting(i, addr);
  }
  H.cfg[1].bootstrap = true;
  H.cfg[0].active_target = 1;
  H.cfg[0].guard_count = 1;
  H.cfg[0].table_cap = 2;
  h_start();
  gv_engine_add_candidate(H.e[0], NULL, &H.cfg[1].addrs[0], true, H.now);
  k = h_connect(0, 1);
  h_tick_all(H.now + 60000);
  ck_assert(guard_is(0, 1));
  h_cut(k); /* the guard is down now, its entry unlinked */
  h_connect(0, 2);
  h_connect(0, 3); /* the table is full: 3 finds no room */
  ck_assert_ptr_nonnull(gv_engine_table_get(H.e[0], H.ids[1].pk));
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[3].pk));
  h_tick_all(H.now + 60000);
  ck_assert(guard_is(0, 1));
}
END_TEST

/* The record seq names the record gv_engine_uptake() follows (the CLI's
 * `broadcast --wait` compares it to tell a superseded record): a
 * re-announce changes it and restarts the uptake; a heartbeat or a
 * request, which take seqs too, do not. */
static bool drop_all(int from, int to, gv_msg_type type) {
  (void)from;
  (void)to;
  (void)type;
  return true;
}

START_TEST(test_record_seq_follows_uptake) {
  uint64_t rs;
  size_t ok, links;
  h_init(2);
  broadcasting(0, "198.51.100.1:7411");
  H.cfg[0].heartbeat_ms = 30000;
  h_start();
  h_connect(1, 0);
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[0], true, false, H.cfg[0].addrs, 1, H.now),
      0);
  h_pump();
  rs = gv_engine_record_seq(H.e[0]);
  gv_engine_uptake(H.e[0], &ok, &links);
  ck_assert_uint_eq(links, 1);
  ck_assert_uint_eq(ok, 1);
  h_tick_all(H.now + 30000); /* a heartbeat */
  ck_assert_int_ge(H.delivered[1], 1);
  ck_assert_int_eq(gv_engine_request(H.e[0], "r", 1, NULL, H.now), 0);
  h_pump();
  ck_assert_uint_eq(gv_engine_record_seq(H.e[0]), rs);
  H.drop = drop_all;
  ck_assert_int_eq(gv_engine_announce(H.e[0], NULL, H.now + 1), 0);
  ck_assert_uint_gt(gv_engine_record_seq(H.e[0]), rs);
  gv_engine_uptake(H.e[0], &ok, &links);
  ck_assert_uint_eq(links, 1);
  ck_assert_uint_eq(ok, 0);
}
END_TEST

/* The engine's expiry names the next deadline exactly; a tick a
 * millisecond early changes nothing and the deadline stays (the daemon
 * once stalled when an early timer lost its wake-up). */
START_TEST(test_expiry_and_early_tick) {
  gv_addr addr;
  int64_t at;

  h_init(1);
  H.cfg[0].active_target = 2;
  h_start();
  gv_addr_parse(&addr, "198.51.100.9:7411", 17);
  gv_engine_add_candidate(H.e[0], NULL, &addr, true, H.now);
  h_pump();
  ck_assert_int_eq(gv_engine_expiry(H.e[0]), H.now); /* dial at once */
  h_tick_all(H.now);
  ck_assert_int_eq(H.dials[0], 1);
  gv_engine_dial_failed(H.e[0], NULL, &addr, H.now);
  h_pump();
  ck_assert_int_eq(gv_engine_expiry(H.e[0]), H.now); /* replace it: now */
  h_tick_all(H.now); /* within the backoff: no dial, next try in 1 s */
  ck_assert_int_eq(H.dials[0], 1);
  at = gv_engine_expiry(H.e[0]);
  ck_assert_int_eq(at, H.now + 1000);
  h_tick_all(at - 1);
  ck_assert_int_eq(H.dials[0], 1);
  ck_assert_int_eq(gv_engine_expiry(H.e[0]), at);
  for (int i = 0; i < 3 && H.dials[0] == 1; i++)
    h_tick_all(gv_engine_expiry(H.e[0]));
  ck_assert_int_eq(H.dials[0], 2); /* the backoff (0.5 to 1.5 s) is over */
}
END_TEST

/* A wall-clock step back of an hour freezes nothing: heartbeats and
 * expiry run on the monotonic clock; only timestamps follow the wall. */
START_TEST(test_wall_clock_step_back) {
  int64_t t0;
  int beats;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  broadcasting(0, "198.51.100.1:7411");
  H.cfg[0].heartbeat_ms = 30000;
  h_start();
  int k = h_connect(0, 1);
  t0 = H.now;
  h_tick_all(H.now + 46000);
  beats = H.delivered[1];
  ck_assert_int_ge(beats, 1);
  /* The wall clock goes back an hour on both nodes. */
  gv_engine_set_wall(H.e[0], -HOUR);
  gv_engine_set_wall(H.e[1], -HOUR);
  h_tick_all(H.now + 31000);
  ck_assert_int_gt(H.delivered[1], beats); /* heartbeats go on */
  /* Expiry too: node 2's entry ages on the monotonic clock. */
  h_cut(k);
  h_tick_all(t0 + 2 * HOUR + 60000);
  ck_assert_ptr_null(gv_engine_table_get(H.e[0], H.ids[1].pk));
}
END_TEST

/* Node i stops (its links cut) and starts again with the given seq floor
 * and wall-clock offset: a restart, as the daemon does it. */
static void h_restart(int i, uint64_t floor, int64_t wall_offset) {
  for (int k = 0; k < H.nlinks; k++)
    if (H.links[k].up && (H.links[k].a == i || H.links[k].b == i))
      h_cut(k);
  gv_lcore_free(H.lc[i]);
  gv_engine_free(H.e[i]);
  H.cfg[i].seq_floor = floor;
  H.cfg[i].wall_offset = wall_offset;
  H.reserved[i] = floor;
  ck_assert_int_eq(gv_engine_new(&H.e[i], &H.cfg[i], &H.ids[i], H.now), 0);
  ck_assert_int_eq(gv_lcore_new(&H.lc[i], &H.lcfg[i], H.ids[i].pk, H.now), 0);
  gv_engine_service(H.e[i], &H.svc[i]);
  gv_lcore_set_service(H.lc[i], GV_CHAN_GOSSIP, &H.svc[i]);
}

/* The ceiling is reserved before any message that carries a seq above it
 * (run_action checks every send of ours against the last reserve), once
 * at start and then about once an hour of heartbeats. */
START_TEST(test_seq_reserved_before_send) {
  gv_action a;
  h_init(2);
  broadcasting(0, "198.51.100.1:7411");
  H.cfg[0].heartbeat_ms = 30000;
  h_start();
  /* The first action of a new engine reserves its first record's seq. */
  ck_assert(gv_engine_next(H.e[0], &a));
  ck_assert_int_eq(a.type, GV_ACT_SEQ_RESERVE);
  ck_assert_uint_eq(a.seq, gv_engine_record_seq(H.e[0]) + GV_SEQ_BLOCK);
  H.reserved[0] = a.seq;
  H.reserves[0] = 1;
  h_connect(1, 0);
  for (int k = 1; k <= 3 * 120; k++) /* three hours of heartbeats */
    h_tick_all(T0_MS + k * 30000);
  ck_assert_int_ge(H.delivered[1], 300);
  ck_assert_int_ge(H.reserves[0], 3);
  ck_assert_int_le(H.reserves[0], 5);
  ck_assert_uint_le(gv_engine_record_seq(H.e[0]), H.reserved[0]);
}
END_TEST

/* The defect of issue 12 (item 8): a node restarts with its wall clock
 * five minutes behind (its messages are still fresh: GV_MSG_MAX_AGE_MS)
 * and goes silent. Started above its stored ceiling, its update
 * wins and the address is forgotten; without the ceiling (floor 0, as
 * before) the update would carry a lower seq and be ignored. */
START_TEST(test_seq_restart_clock_back) {
  const gv_peer_entry *p;
  uint64_t before, ceiling;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  h_connect(0, 1);
  gv_engine_announce(H.e[1], NULL, H.now);
  h_pump();
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  ck_assert_uint_eq(p->n_addrs, 1);
  before = p->seq;
  ceiling = H.reserved[1];
  ck_assert_uint_gt(ceiling, before);

  /* Control: today's floor (none), clock 5 min back: the update loses. */
  H.now += 1000;
  h_restart(1, 0, -5 * 60000);
  h_connect(0, 1);
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[1], false, false, NULL, 0, H.now), 0);
  h_pump();
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  ck_assert_uint_eq(p->seq, before);
  ck_assert_uint_eq(p->n_addrs, 1); /* the hole: the address is kept */

  /* The fix: started above the stored ceiling. */
  H.now += 1000;
  h_restart(1, ceiling, -5 * 60000);
  ck_assert_uint_gt(gv_engine_record_seq(H.e[1]), ceiling);
  h_connect(0, 1);
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[1], false, false, NULL, 0, H.now), 0);
  h_pump();
  p = gv_engine_table_get(H.e[0], H.ids[1].pk);
  ck_assert_uint_gt(p->seq, ceiling);
  ck_assert(!p->broadcasting);
  ck_assert_uint_eq(p->n_addrs, 0);
}
END_TEST

/* seq stays within 2^53-1: a floor at the limit refuses to start, one
 * below it signs its last number, then refuses with GV_ERANGE. */
START_TEST(test_seq_limit) {
  gv_engine *e;
  gv_engine_cfg c;
  gv_identity id;

  tu_identity(&id, 9);
  gv_engine_cfg_default(&c);
  c.seq_floor = GV_SEQ_MAX + 1;
  ck_assert_int_eq(gv_engine_new(&e, &c, &id, T0_MS), GV_EINVAL);
  c.seq_floor = GV_SEQ_MAX;
  ck_assert_int_eq(gv_engine_new(&e, &c, &id, T0_MS), GV_ERANGE);
  c.seq_floor = GV_SEQ_MAX - 1;
  ck_assert_int_eq(gv_engine_new(&e, &c, &id, T0_MS), 0);
  ck_assert_uint_eq(gv_engine_record_seq(e), GV_SEQ_MAX);
  ck_assert_int_eq(gv_engine_announce(e, NULL, T0_MS), GV_ERANGE);
  ck_assert_int_eq(gv_engine_request(e, "r", 1, NULL, T0_MS), GV_ERANGE);
  ck_assert_uint_eq(gv_engine_record_seq(e), GV_SEQ_MAX);
  ck_assert_int_eq(gv_engine_check(e, NULL), 0);
  gv_engine_free(e);
}
END_TEST

static bool drop_ihave_from_5(int from, int to, gv_msg_type type) {
  (void)to;
  return from == 5 && type == GV_MSG_IHAVE;
}

/* Uptake: five neighbours dialed a broadcasting node, which goes silent.
 * Three get the update eagerly, two pull it; each takes it from its
 * origin and sends one IHAVE back, which triggers no pull; each inbound
 * link is let go once it confirmed. A neighbour whose IHAVE is lost stays
 * unconfirmed, and its link goes at GV_UPTAKE_WAIT_MS. */
START_TEST(test_uptake_confirmed) {
  size_t confirmed, links;
  uint8_t id[32];
  int ihaves = 0;
  h_init(6);
  broadcasting(0, "198.51.100.1:7411");
  h_start();
  for (int i = 1; i <= 5; i++)
    h_connect(i, 0);
  gv_engine_uptake(H.e[0], &confirmed, &links);
  ck_assert_uint_eq(links, 0); /* the first record went out in HELLOs */
  H.drop = drop_ihave_from_5;
  h_clear_log();
  H.now += 10;
  ck_assert_int_eq(
      gv_engine_set_broadcast(H.e[0], false, false, NULL, 0, H.now), 0);
  h_pump();
  h_tick_all(H.now + 300); /* the lazy ones pull */
  ck_assert_int_eq(updates_from(0, id), 5);
  gv_engine_uptake(H.e[0], &confirmed, &links);
  ck_assert_uint_eq(links, 5);
  ck_assert_uint_eq(confirmed, 4);
  for (int k = 0; k < H.nlog; k++)
    if (H.log[k].type == GV_MSG_IHAVE && H.log[k].to == 0) {
      ck_assert_ptr_nonnull(strstr(H.log[k].text, "\"ids\""));
      ihaves++;
    }
  ck_assert_int_eq(ihaves, 5);         /* one per neighbour, 5's lost */
  ck_assert_int_eq(H.delivered[0], 0); /* 0 pulled nothing back */
  for (int k = 0; k < H.nlog; k++)
    ck_assert(!(H.log[k].from == 0 && H.log[k].type == GV_MSG_IWANT));
  /* The confirmed inbound links are gone; 5's stays until the deadline. */
  ck_assert_uint_eq(gv_engine_link_count(H.e[0]), 1);
  h_tick_all(H.now + GV_UPTAKE_WAIT_MS);
  ck_assert_uint_eq(gv_engine_link_count(H.e[0]), 0);
  gv_engine_uptake(H.e[0], &confirmed, &links);
  ck_assert_uint_eq(links, 5);
  ck_assert_uint_eq(confirmed, 4);
  for (int i = 1; i <= 5; i++)
    ck_assert_uint_eq(gv_engine_table_get(H.e[i], H.ids[0].pk)->n_addrs, 0);
}
END_TEST

static Suite *engine_suite(void) {
  Suite *s = suite_create("engine");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_hello_fills_tables);
  tcase_add_test(tc, test_dedup_and_never_back);
  tcase_add_test(tc, test_shared_bodies);
  tcase_add_test(tc, test_ttl_per_type);
  tcase_add_test(tc, test_heartbeat_ttl_bounds_reach);
  tcase_add_test(tc, test_expiry);
  tcase_add_test(tc, test_seq_wins);
  tcase_add_test(tc, test_switch_to_silent);
  tcase_add_test(tc, test_silent_refuses_inbound);
  tcase_add_test(tc, test_set_relays);
  tcase_add_test(tc, test_set_relays_refused);
  tcase_add_test(tc, test_set_tport);
  tcase_add_test(tc, test_silent_relays_carry_no_address);
  tcase_add_test(tc, test_request_reverse_path);
  tcase_add_test(tc, test_repair_pulls_missed_message);
  tcase_add_test(tc, test_no_repair_loses);
  tcase_add_test(tc, test_blk_hooks);
  tcase_add_test(tc, test_anti_entropy_on_link_up);
  tcase_add_test(tc, test_penalties_and_ban);
  tcase_add_test(tc, test_table_cap);
  tcase_add_test(tc, test_dedup_cap_and_expiry);
  tcase_add_test(tc, test_cache_cap_and_expiry);
  tcase_add_test(tc, test_request_served_within_route_time);
  tcase_add_test(tc, test_dials_candidates_with_backoff);
  tcase_add_test(tc, test_no_redial_after_duplicate);
  tcase_add_test(tc, test_flapping_link_backs_off);
  tcase_add_test(tc, test_guard_bootstrap_operator_only);
  tcase_add_test(tc, test_seed_address_claim_does_not_pin);
  tcase_add_test(tc, test_table_cap_keeps_guard);
  tcase_add_test(tc, test_record_seq_follows_uptake);
  tcase_add_test(tc, test_expiry_and_early_tick);
  tcase_add_test(tc, test_wall_clock_step_back);
  tcase_add_test(tc, test_seq_reserved_before_send);
  tcase_add_test(tc, test_seq_restart_clock_back);
  tcase_add_test(tc, test_seq_limit);
  tcase_add_test(tc, test_uptake_confirmed);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(engine_suite()); }

/* The gossip engine under a fake clock, a few engines wired together by an
 * in-memory router (docs/GOSSIP.md). */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

#define MAXN 8
#define MAXL 32
#define HOUR 3600000LL

typedef struct sent {
  int from, to;
  gv_msg_type type; /* decoded, for inspection */
  uint32_t ttl, hops;
  uint8_t id[32];
  char *text;
} sent;

typedef struct harness {
  gv_identity ids[MAXN];
  gv_engine *e[MAXN];
  gv_engine_cfg cfg[MAXN];
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
  for (int i = 0; i < H.n; i++)
    gv_engine_free(H.e[i]);
  memset(&H, 0, sizeof(H));
  H.n = n;
  H.now = T0_MS;
  for (int i = 0; i < n; i++) {
    tu_identity(&H.ids[i], (uint8_t)(i + 1));
    gv_engine_cfg_default(&H.cfg[i]);
    H.cfg[i].seed = (uint64_t)i + 1;
    H.cfg[i].heartbeat_ms = 0;
    H.cfg[i].ping_ms = 0;
    H.cfg[i].active_target = 0;
    H.cfg[i].shuffle_ms = 0;
  }
}

static void h_start(void) {
  for (int i = 0; i < H.n; i++)
    ck_assert_int_eq(gv_engine_new(&H.e[i], &H.cfg[i], &H.ids[i], H.now), 0);
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

static void h_log(int from, int to, const gv_buf *b) {
  sent *s = &H.log[H.nlog < 4096 ? H.nlog++ : 4095];
  gv_msg m;
  gv_msg_policy pol = {.now_ms = H.now, .trust_sigs = true};

  s->from = from;
  s->to = to;
  s->text = malloc(b->len + 1);
  memcpy(s->text, b->data, b->len);
  s->text[b->len] = '\0';
  if (gv_msg_decode(&m, b->data, b->len, &pol, NULL) == 0) {
    s->type = m.type;
    s->ttl = m.ttl;
    s->hops = m.hops;
    memcpy(s->id, m.id, 32);
  }
  gv_msg_clear(&m);
}

/* Runs every engine's actions until all are quiet; frames are delivered in
 * FIFO order at the current time. */
static void h_pump(void) {
  typedef struct {
    int to;
    gv_linkid lid;
    gv_buf *b;
    int down; /* a link_down event instead of a frame */
  } ev;
  static ev q[65536];
  size_t head = 0, tail = 0;
  bool busy = true;

  while (busy) {
    busy = false;
    for (int i = 0; i < H.n; i++) {
      gv_action a;
      while (gv_engine_next(H.e[i], &a)) {
        int peer;
        gv_linkid pid;
        busy = true;
        switch (a.type) {
        case GV_ACT_SEND:
          side_node(a.link, &peer, &pid);
          if (H.links[(a.link - 1) / 2].up) {
            h_log(i, peer, a.buf);
            if (H.drop == NULL || !H.drop(i, peer, H.log[H.nlog - 1].type)) {
              q[tail++ % 65536] = (ev){peer, pid, a.buf, 0};
              break;
            }
          }
          gv_buf_unref(a.buf);
          break;
        case GV_ACT_CLOSE:
          H.closes[i]++;
          H.last_close_reason[i] = a.reason;
          if (H.links[(a.link - 1) / 2].up) {
            H.links[(a.link - 1) / 2].up = false;
            side_node(a.link, &peer, &pid);
            q[tail++ % 65536] = (ev){i, a.link, NULL, 1};
            q[tail++ % 65536] = (ev){peer, pid, NULL, 1};
          }
          break;
        case GV_ACT_DELIVER:
          H.delivered[i]++;
          H.repaired[i] = a.repaired;
          H.hops[i] = a.hops;
          memcpy(H.last_id[i], a.msg_id, 32);
          break;
        case GV_ACT_REPORT:
          H.reports[i]++;
          H.report_peers[i] = a.response->u.response.n_peers;
          H.report_addrs[i] = 0;
          for (size_t k = 0; k < a.response->u.response.n_peers; k++)
            H.report_addrs[i] += a.response->u.response.peers[k].u.peer.n_addrs;
          break;
        case GV_ACT_DIAL: H.dials[i]++; break;
        case GV_ACT_PERSIST: H.persists[i]++; break;
        default: break;
        }
      }
    }
    while (head < tail) {
      ev x = q[head++ % 65536];
      busy = true;
      if (x.down)
        gv_engine_link_down(H.e[x.to], x.lid, H.now);
      else {
        gv_engine_recv(H.e[x.to], x.lid, x.b->data, x.b->len, H.now);
        gv_buf_unref(x.b);
      }
    }
  }
}

/* a dials b. Returns the link index. */
static int h_connect(int a, int b) {
  int k = H.nlinks++;
  H.links[k].a = a;
  H.links[k].b = b;
  H.links[k].up = true;
  gv_engine_link_up(H.e[a], (gv_linkid)(2 * k + 1), H.ids[b].pk, true, H.now);
  gv_engine_link_up(H.e[b], (gv_linkid)(2 * k + 2), H.ids[a].pk, false, H.now);
  h_pump();
  return k;
}

static void h_tick_all(int64_t now) {
  H.now = now;
  for (int i = 0; i < H.n; i++)
    gv_engine_tick(H.e[i], now);
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
  H.links[k1].up = H.links[k2].up = false;
  gv_engine_link_down(H.e[0], (gv_linkid)(2 * k1 + 1), H.now);
  gv_engine_link_down(H.e[0], (gv_linkid)(2 * k2 + 1), H.now);
  h_pump();
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
  /* Replaying the older HELLO-borne record: ignored. */
  ck_assert_uint_gt(p->seq, first);
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

/* A silent node takes no inbound link; an engine never sees an inbound
 * peer's address, so it cannot share one. */
START_TEST(test_silent_refuses_inbound) {
  h_init(2);
  h_start();
  H.links[0].a = 1;
  H.links[0].b = 0;
  H.links[0].up = true;
  H.nlinks = 1;
  gv_engine_link_up(H.e[0], 2, H.ids[1].pk, false, H.now);
  h_pump();
  ck_assert_int_eq(H.closes[0], 1);
  ck_assert_int_eq(H.last_close_reason[0], GV_EBUSY);
  ck_assert_uint_eq(gv_engine_link_count(H.e[0]), 0);
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

/* Repair: the eager copy to node 2 is lost; node 2 learns the id by IHAVE
 * and pulls it. */
START_TEST(test_repair_pulls_missed_message) {
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
  /* Whoever missed the eager copy heard an IHAVE and pulls it. */
  for (int i = 0; i < 4; i++)
    h_tick_all(H.now + 300);
  ck_assert_int_eq(H.delivered[1], 1);
  ck_assert_int_eq(H.delivered[2], 1);
  ck_assert_uint_ge(gv_engine_stats_get(H.e[1])->pulls_sent +
                        gv_engine_stats_get(H.e[2])->pulls_sent,
                    1);
  ck_assert_uint_ge(gv_engine_stats_get(H.e[0])->pulls_served, 1);
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

/* Garbage costs penalties; past the threshold the link is closed and the
 * peer banned: its next link is refused. */
START_TEST(test_penalties_and_ban) {
  int k;
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  h_start();
  k = h_connect(0, 1);
  for (int i = 0; i < 20 && H.links[k].up; i++) {
    gv_engine_recv(H.e[1], (gv_linkid)(2 * k + 2), (const uint8_t *)"{junk", 5,
                   H.now);
    h_pump();
  }
  ck_assert(!H.links[k].up);
  ck_assert_int_eq(H.last_close_reason[1], GV_EBANNED);
  ck_assert_uint_eq(gv_engine_stats_get(H.e[1])->bans, 1);
  k = h_connect(0, 1);
  ck_assert(!H.links[k].up);
  ck_assert_int_eq(H.last_close_reason[1], GV_EBANNED);
  /* After the ban expires, the peer is welcome again. */
  h_tick_all(H.now + 11 * 60000);
  k = h_connect(0, 1);
  ck_assert(H.links[k].up);
}
END_TEST

/* A flood beyond the per-link rate is dropped and counted. */
START_TEST(test_rate_limit) {
  int k;
  const char *ping = "{\"v\":1,\"type\":\"PING\",\"nonce\":1}";
  h_init(2);
  broadcasting(1, "198.51.100.2:7411");
  H.cfg[1].rate_burst = 10;
  H.cfg[1].rate_per_s = 1;
  h_start();
  k = h_connect(0, 1);
  for (int i = 0; i < 30; i++)
    gv_engine_recv(H.e[1], (gv_linkid)(2 * k + 2), (const uint8_t *)ping,
                   strlen(ping), H.now);
  h_pump();
  ck_assert_uint_ge(gv_engine_stats_get(H.e[1])->rate_limited, 15);
}
END_TEST

/* The table stays within its cap whatever arrives. */
START_TEST(test_table_cap) {
  h_init(6);
  H.cfg[0].table_cap = 3;
  h_start();
  for (int i = 1; i < 6; i++)
    h_connect(i, 0);
  ck_assert_uint_le(gv_engine_table_size(H.e[0]), 3);
  ck_assert_int_eq(gv_engine_check(H.e[0], NULL), 0);
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
  gv_engine_add_candidate(H.e[0], NULL, &a, H.now);
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

/* A timer that fires a millisecond early must not end the engine's
 * wake-ups (the daemon stalled on this: its dials stopped). */
START_TEST(test_early_tick_rewakes) {
  gv_action a;
  int64_t at = 0;
  gv_addr addr;
  int wakes = 0;

  h_init(1);
  H.cfg[0].active_target = 2;
  h_start();
  gv_addr_parse(&addr, "198.51.100.9:7411", 17);
  gv_engine_add_candidate(H.e[0], NULL, &addr, H.now);
  while (gv_engine_next(H.e[0], &a))
    if (a.type == GV_ACT_WAKE)
      at = a.at;
  gv_engine_tick(H.e[0], at);
  while (gv_engine_next(H.e[0], &a))
    if (a.type == GV_ACT_WAKE)
      at = a.at;
  ck_assert_int_gt(at, H.now);
  gv_engine_tick(H.e[0], at - 1); /* early */
  while (gv_engine_next(H.e[0], &a)) {
    wakes += a.type == GV_ACT_WAKE;
    gv_buf_unref(a.buf);
  }
  ck_assert_int_eq(wakes, 1);
}
END_TEST

static Suite *engine_suite(void) {
  Suite *s = suite_create("engine");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_hello_fills_tables);
  tcase_add_test(tc, test_dedup_and_never_back);
  tcase_add_test(tc, test_ttl_per_type);
  tcase_add_test(tc, test_heartbeat_ttl_bounds_reach);
  tcase_add_test(tc, test_expiry);
  tcase_add_test(tc, test_seq_wins);
  tcase_add_test(tc, test_switch_to_silent);
  tcase_add_test(tc, test_silent_refuses_inbound);
  tcase_add_test(tc, test_request_reverse_path);
  tcase_add_test(tc, test_repair_pulls_missed_message);
  tcase_add_test(tc, test_no_repair_loses);
  tcase_add_test(tc, test_anti_entropy_on_link_up);
  tcase_add_test(tc, test_penalties_and_ban);
  tcase_add_test(tc, test_rate_limit);
  tcase_add_test(tc, test_table_cap);
  tcase_add_test(tc, test_dials_candidates_with_backoff);
  tcase_add_test(tc, test_early_tick_rewakes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(engine_suite()); }

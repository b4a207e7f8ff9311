/* The simulator's virtual network. See net.h.
 *
 * Link ids: link k is 2k+1 on its dialer, 2k+2 on the other side.
 * Node i's address is [2001:db8::<i>]:7411 (a documentation prefix; no
 * packet is ever sent). */
#include "net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ev_kind { EV_FRAME, EV_UP, EV_DOWN, EV_TIMER, EV_DIAL_FAIL };

struct gv_sim_ev {
  int64_t t;
  uint64_t seq;
  uint32_t node;
  uint32_t arg;   /* link side id, or link index for EV_UP */
  gv_buf *buf;    /* EV_FRAME */
  uint32_t epoch; /* the node's incarnation when the event was made */
  uint8_t kind;
};

#define PORT 7411

void gv_sim_node_addr(uint32_t i, gv_addr *a) {
  memset(a, 0, sizeof(*a));
  a->family = 6;
  a->ip[0] = 0x20;
  a->ip[1] = 0x01;
  a->ip[2] = 0x0d;
  a->ip[3] = 0xb8;
  a->ip[12] = (uint8_t)(i >> 24);
  a->ip[13] = (uint8_t)(i >> 16);
  a->ip[14] = (uint8_t)(i >> 8);
  a->ip[15] = (uint8_t)i;
  a->port = PORT;
}

static void node_addr(uint32_t i, gv_addr *a) { gv_sim_node_addr(i, a); }

static bool addr_node(const gv_sim *s, const gv_addr *a, uint32_t *i) {
  static const uint8_t prefix[12] = {0x20, 0x01, 0x0d, 0xb8};
  if (a->family != 6 || memcmp(a->ip, prefix, 12) != 0 || a->port != PORT)
    return false;
  *i = (uint32_t)a->ip[12] << 24 | (uint32_t)a->ip[13] << 16 |
       (uint32_t)a->ip[14] << 8 | a->ip[15];
  return *i < s->n_nodes;
}

/* ---- the heap: ordered by (t, seq) ---- */

static bool ev_less(const gv_sim_ev *x, const gv_sim_ev *y) {
  return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void push(gv_sim *s, int64_t t, uint8_t kind, uint32_t node,
                 uint32_t arg, gv_buf *buf) {
  size_t i;
  if (s->n_heap == s->cap_heap) {
    size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
    gv_sim_ev *h = realloc(s->heap, cap * sizeof(*h));
    if (h == NULL) {
      fprintf(stderr, "grapevine-sim: out of memory (event heap)\n");
      exit(1);
    }
    s->heap = h;
    s->cap_heap = cap;
  }
  i = s->n_heap++;
  s->heap[i] =
      (gv_sim_ev){t, s->ev_seq++, node, arg, buf, s->nodes[node].epoch, kind};
  while (i > 0 && ev_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
    gv_sim_ev tmp = s->heap[i];
    s->heap[i] = s->heap[(i - 1) / 2];
    s->heap[(i - 1) / 2] = tmp;
    i = (i - 1) / 2;
  }
}

static gv_sim_ev pop(gv_sim *s) {
  gv_sim_ev top = s->heap[0];
  size_t i = 0;
  s->heap[0] = s->heap[--s->n_heap];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->n_heap && ev_less(&s->heap[l], &s->heap[m]))
      m = l;
    if (r < s->n_heap && ev_less(&s->heap[r], &s->heap[m]))
      m = r;
    if (m == i)
      break;
    gv_sim_ev tmp = s->heap[i];
    s->heap[i] = s->heap[m];
    s->heap[m] = tmp;
    i = m;
  }
  return top;
}

/* ---- links ---- */

static gv_sim_link *link_of(gv_sim *s, gv_linkid side, uint32_t *peer,
                            gv_linkid *peer_side) {
  uint32_t k = (side - 1) / 2;
  gv_sim_link *l = &s->links[k];
  bool dialer = side % 2 == 1;
  *peer = dialer ? l->b : l->a;
  *peer_side = dialer ? side + 1 : side - 1;
  return l;
}

static uint16_t latency(gv_sim *s) {
  return (uint16_t)(s->cfg.lat_min +
                    (int)gv_rng_below(&s->rng, (uint64_t)(s->cfg.lat_max -
                                                          s->cfg.lat_min + 1)));
}

/* IP rule 1, checked on every frame: no silent node's address, ever. */
static void scan_leaks(gv_sim *s, const gv_buf *b) {
  const char *p = (const char *)b->data, *end = p + b->len;
  while ((p = memmem(p, (size_t)(end - p), "[2001:db8:", 10)) != NULL) {
    const char *close = memchr(p, ']', (size_t)(end - p));
    char text[64];
    gv_addr a;
    uint32_t i;
    if (close == NULL || close - p + 6 >= (long)sizeof(text))
      break;
    memcpy(text, p, (size_t)(close - p) + 6);
    text[close - p + 6] = '\0';
    if (gv_addr_parse(&a, text, strlen(text)) == 0 && addr_node(s, &a, &i) &&
        s->nodes[i].silent)
      s->ip_leaks++;
    p = close;
  }
}

/* The same rule on relay packets, which are binary: no silent node's
 * address in its 16-byte form either (relay packets carry node ids only,
 * docs/RELAY.md §8.6). */
static void scan_leaks_bin(gv_sim *s, const uint8_t *p, size_t len) {
  static const uint8_t prefix[12] = {0x20, 0x01, 0x0d, 0xb8};
  const uint8_t *end = p + len, *q = p;

  while (end - q >= 16 && (q = memmem(q, (size_t)(end - q - 4), prefix,
                                      sizeof(prefix))) != NULL) {
    uint32_t i = (uint32_t)q[12] << 24 | (uint32_t)q[13] << 16 |
                 (uint32_t)q[14] << 8 | q[15];
    if (i < s->n_nodes && s->nodes[i].silent)
      s->ip_leaks++;
    q++;
  }
}

static void record_delivery(gv_sim *s, uint32_t i, const gv_action *a) {
  uint8_t key[GV_MSG_ID_BYTES];
  uint64_t salt =
      i * 0x9e3779b97f4a7c15ULL + 1 + s->nodes[i].epoch * 0xd1b54a32d192ed03ULL;

  /* (node incarnation, id) as one key: the id with the node mixed into 8
   * bytes. A restarted node remembers nothing, so it may deliver again. */
  memcpy(key, a->msg_id, sizeof(key));
  for (int k = 0; k < 8; k++)
    key[k] ^= (uint8_t)(gv__splitmix64(&salt) >> (8 * k));
  if (gv_idmap_get(&s->delivered, key) != NULL) {
    s->violations++;
    snprintf(s->violation, sizeof(s->violation),
             "node %u delivered one message twice", i);
    return;
  }
  gv_idmap_put(&s->delivered, key, (void *)1);
  if (s->tracking && memcmp(a->msg_id, s->tracked, GV_MSG_ID_BYTES) == 0) {
    s->nodes[i].delivered_at = s->now;
    s->nodes[i].hops = (uint16_t)a->hops;
  }
}

static void do_send(gv_sim *s, uint32_t i, const gv_action *a) {
  uint32_t peer;
  gv_linkid pside;
  gv_sim_link *l = link_of(s, a->link, &peer, &pside);

  s->frames++;
  s->frame_bytes += a->buf->len;
  scan_leaks(s, a->buf);
  if (s->frame_fn != NULL)
    s->frame_fn(s->frame_ctx, i, a->buf, false);
  if (!l->up) {
    gv_buf_unref(a->buf);
    return;
  }
  if (s->nodes[peer].dead) {
    /* Lost; the sender learns of it after a round trip (a reset). */
    gv_buf_unref(a->buf);
    l->up = false;
    push(s, s->now + 2 * l->lat, EV_DOWN, i, a->link, NULL);
    return;
  }
  if (s->cfg.loss > 0 && gv_rng_unit(&s->rng) < s->cfg.loss) {
    s->dropped++;
    gv_buf_unref(a->buf);
    return;
  }
  push(s, s->now + l->lat, EV_FRAME, peer, pside, a->buf);
}

/* A dial from node i's engine (relay false) or relay core (true: it has
 * no dial-failure event; it dials again after its hold-off). */
static void do_dial(gv_sim *s, uint32_t i, const gv_addr *addr, bool relay) {
  uint32_t target, k;
  gv_sim_link *l;
  uint16_t lat = latency(s);

  if (!addr_node(s, addr, &target) || target == i || s->nodes[target].silent ||
      s->nodes[target].dead ||
      (s->partitioned && s->nodes[target].side != s->nodes[i].side)) {
    if (!relay)
      push(s, s->now + 2 * lat, EV_DIAL_FAIL, i, target, NULL);
    return;
  }
  if (s->n_links == s->cap_links) {
    uint32_t cap = s->cap_links ? s->cap_links * 2 : 1024;
    gv_sim_link *p = realloc(s->links, cap * sizeof(*p));
    if (p == NULL) {
      fprintf(stderr, "grapevine-sim: out of memory (links)\n");
      exit(1);
    }
    s->links = p;
    s->cap_links = cap;
  }
  /* The TCP connection alone shows the dialer's address to the target. */
  if (s->nodes[target].attacker && s->nodes[i].silent &&
      !s->nodes[i].observed) {
    s->nodes[i].observed = true;
    s->nodes[i].observed_at = s->now;
  }
  k = s->n_links++;
  l = &s->links[k];
  *l = (gv_sim_link){i,   target, s->nodes[i].epoch, s->nodes[target].epoch,
                     lat, false};
  /* TCP and the 3-message handshake: about two round trips. */
  push(s, s->now + 4 * lat, EV_UP, i, k, NULL);
}

static void do_close(gv_sim *s, uint32_t i, gv_linkid link) {
  uint32_t peer;
  gv_linkid pside;
  gv_sim_link *l = link_of(s, link, &peer, &pside);

  /* A link already down has its EV_DOWN on the way to this side. */
  if (l->up) {
    l->up = false;
    push(s, s->now, EV_DOWN, i, link, NULL);
    push(s, s->now + l->lat, EV_DOWN, peer, pside, NULL);
  }
}

static void run_action(gv_sim *s, uint32_t i, const gv_action *a) {
  gv_sim_node *n = &s->nodes[i];
  switch (a->type) {
  case GV_ACT_SEND: do_send(s, i, a); break;
  case GV_ACT_DIAL: do_dial(s, i, &a->addr, false); break;
  case GV_ACT_CLOSE: do_close(s, i, a->link); break;
  case GV_ACT_RELEASE:
    gv_lcore_release(n->lc, a->link, GV_HOLD_GOSSIP, s->now);
    break;
  case GV_ACT_DELIVER: record_delivery(s, i, a); break;
  default: /* PERSIST, REPORT, REJECT, SEQ_RESERVE: nothing to keep */ break;
  }
}

/* A relay packet: sent on the link as the link core's SENDs are. */
static void relay_send(gv_sim *s, uint32_t i, const gv_ract *a) {
  gv_action fa;

  s->relay_frames++;
  s->relay_bytes += a->len;
  scan_leaks_bin(s, a->data, a->len);
  memset(&fa, 0, sizeof(fa));
  fa.type = GV_ACT_SEND;
  fa.link = a->link;
  fa.buf = gv_chan_buf(a->data[0], a->data + GV_CHAN_HDR, a->len - GV_CHAN_HDR);
  do_send(s, i, &fa);
}

static void run_relay(gv_sim *s, uint32_t i, const gv_ract *a) {
  gv_sim_node *n = &s->nodes[i];
  switch (a->type) {
  case GV_RACT_SEND: relay_send(s, i, a); break;
  case GV_RACT_DIAL: do_dial(s, i, &a->addr, true); break;
  case GV_RACT_HOLD:
    (void)gv_lcore_hold(n->lc, a->link, GV_HOLD_RELAY, s->now);
    break;
  case GV_RACT_RELEASE:
    (void)gv_lcore_release(n->lc, a->link, GV_HOLD_RELAY, s->now);
    break;
  default:
    if (s->relay_fn != NULL)
      s->relay_fn(s->relay_ctx, i, a);
    break;
  }
}

void gv_sim_drain(gv_sim *s, uint32_t i) {
  gv_sim_node *n = &s->nodes[i];
  gv_action a;
  gv_ract ra;
  bool more = true;
  int64_t at;

  /* Each core's actions may be events for the other (a release closes a
   * link; a close tells the engine), so drain until both are quiet. */
  while (more) {
    more = false;
    while (gv_engine_next(n->e, &a)) {
      run_action(s, i, &a);
      more = true;
    }
    while (gv_lcore_next(n->lc, &a)) {
      run_action(s, i, &a);
      more = true;
    }
    while (n->relay != NULL && gv_relay_next(n->relay, &ra)) {
      run_relay(s, i, &ra);
      free(ra.data);
      more = true;
    }
  }
  at = gv_engine_expiry(n->e);
  if (gv_lcore_expiry(n->lc) < at)
    at = gv_lcore_expiry(n->lc);
  if (n->relay != NULL && gv_relay_expiry(n->relay) < at)
    at = gv_relay_expiry(n->relay);
  if (at < s->now)
    at = s->now;
  if (at != n->wake && at != INT64_MAX) {
    n->wake = at;
    push(s, at, EV_TIMER, i, 0, NULL);
  }
}

static void on_up(gv_sim *s, uint32_t k) {
  gv_sim_link *l = &s->links[k];
  gv_sim_node *a = &s->nodes[l->a], *b = &s->nodes[l->b];
  gv_addr addr;

  if (a->dead || a->epoch != l->a_epoch)
    return; /* the dialer crashed meanwhile */
  if (b->dead || b->epoch != l->b_epoch ||
      (s->partitioned && a->side != b->side)) {
    gv_engine_dial_failed(a->e, b->id.pk, NULL, s->now);
    gv_sim_drain(s, l->a);
    return;
  }
  l->up = true;
  node_addr(l->b, &addr);
  gv_lcore_open(a->lc, 2 * k + 1, b->id.pk, true, &addr, s->now);
  gv_lcore_open(b->lc, 2 * k + 2, a->id.pk, false, NULL, s->now);
  gv_sim_drain(s, l->a);
  gv_sim_drain(s, l->b);
}

void gv_sim_run_until(gv_sim *s, int64_t t) {
  while (s->n_heap > 0 && s->heap[0].t <= t) {
    gv_sim_ev ev = pop(s);
    gv_sim_node *n = &s->nodes[ev.node];

    s->now = ev.t;
    s->events++;
    if (n->dead || ev.epoch != n->epoch) {
      gv_buf_unref(ev.buf); /* for a crashed node, or its past life */
      continue;
    }
    switch (ev.kind) {
    case EV_FRAME:
      if (s->frame_fn != NULL)
        s->frame_fn(s->frame_ctx, ev.node, ev.buf, true);
      gv_lcore_recv(n->lc, ev.arg, ev.buf->data, ev.buf->len, s->now);
      gv_buf_unref(ev.buf);
      break;
    case EV_UP: on_up(s, ev.arg); continue;
    case EV_DOWN: gv_lcore_closed(n->lc, ev.arg, true, s->now); break;
    case EV_TIMER:
      if (n->wake != ev.t)
        continue; /* superseded */
      n->wake = INT64_MAX;
      gv_lcore_tick(n->lc, s->now);
      gv_engine_tick(n->e, s->now);
      if (n->relay != NULL && gv_relay_expiry(n->relay) <= s->now)
        gv_relay_tick(n->relay, s->now);
      break;
    case EV_DIAL_FAIL: {
      gv_addr a;
      node_addr(ev.arg, &a);
      gv_engine_dial_failed(n->e, NULL, &a, s->now);
      break;
    }
    }
    gv_sim_drain(s, ev.node);
  }
  if (s->now < t)
    s->now = t;
}

/* ---- nodes ---- */

/* Node i's identity and cores, from the seed (and its incarnation, for
 * the cores' own randomness). */
static void node_init(gv_sim *s, uint32_t i) {
  gv_sim_node *n = &s->nodes[i];
  bool silent = n->silent;
  gv_engine_cfg c;
  gv_lcore_cfg lc;
  uint64_t seed;

  seed = s->cfg.seed ^ ((uint64_t)i * 0xd1b54a32d192ed03ULL);
  if (s->cfg.stub_sigs) {
    /* No keys needed: nothing is signed or verified. */
    for (int k = 0; k < GV_ID_BYTES; k += 8) {
      uint64_t v = gv__splitmix64(&seed);
      memcpy(n->id.pk + k, &v, 8);
    }
  } else {
    uint8_t key_seed[32];
    for (int k = 0; k < 32; k += 8) {
      uint64_t v = gv__splitmix64(&seed);
      memcpy(key_seed + k, &v, 8);
    }
    gv_id_from_seed(&n->id, key_seed);
  }
  gv_engine_cfg_default(&c);
  c.seed = gv__splitmix64(&seed) + n->epoch;
  c.fanout = s->cfg.fanout;
  c.fanout_announced = s->cfg.fanout_announced;
  c.ttl_announce = s->cfg.ttl;
  c.repair = s->cfg.repair;
  c.stub_sigs = s->cfg.stub_sigs;
  c.active_target = s->cfg.active_target;
  c.heartbeat_ms = s->cfg.heartbeat_ms;
  c.shuffle_ms = s->cfg.shuffle_ms;
  c.guards = s->cfg.guards;
  c.broadcasting = !silent;
  if (!silent) {
    node_addr(i, &c.addrs[0]);
    c.n_addrs = 1;
  }
  gv_lcore_cfg_default(&lc);
  lc.seed = c.seed;
  lc.accepting = !silent;
  lc.outbound_max = c.active_max + GV_RELAY_RELAYS_MAX; /* as the node */
  lc.stub_sigs = s->cfg.stub_sigs;
  /* No PINGs (but in steady, which counts them), so no idle limit either:
   * links end by close, crash or partition. */
  if (!s->cfg.pings) {
    lc.ping_ms = 0;
    lc.idle_ms = INT64_MAX / 4;
  }
  if (gv_engine_new(&n->e, &c, &n->id, s->now) < 0 ||
      gv_lcore_new(&n->lc, &lc, n->id.pk, s->now) < 0) {
    fprintf(stderr, "grapevine-sim: cannot create node %u\n", i);
    exit(1);
  }
  gv_engine_service(n->e, &n->svc);
  gv_lcore_set_service(n->lc, GV_CHAN_GOSSIP, &n->svc);
}

uint32_t gv_sim_add_node(gv_sim *s, bool silent) {
  gv_sim_node *n;
  uint32_t i;

  /* Fixed capacity: engines borrow &node->id, so the array never moves. */
  if (s->n_nodes == s->cap_nodes) {
    fprintf(stderr, "grapevine-sim: more than %u nodes\n", s->cap_nodes);
    exit(1);
  }
  i = s->n_nodes++;
  n = &s->nodes[i];
  memset(n, 0, sizeof(*n));
  n->silent = silent;
  n->wake = INT64_MAX;
  n->delivered_at = -1;
  node_init(s, i);
  gv_sim_drain(s, i);
  return i;
}

void gv_sim_kill(gv_sim *s, uint32_t i) {
  gv_sim_node *n = &s->nodes[i];

  n->dead = true;
  n->epoch++;
  n->wake = INT64_MAX;
  n->relay = NULL; /* the caller's to free */
  for (uint32_t k = 0; k < s->n_links; k++) {
    gv_sim_link *l = &s->links[k];
    if (!l->up || (l->a != i && l->b != i))
      continue;
    l->up = false;
    if (l->a == i)
      push(s, s->now + l->lat, EV_DOWN, l->b, 2 * k + 2, NULL);
    else
      push(s, s->now + l->lat, EV_DOWN, l->a, 2 * k + 1, NULL);
  }
}

void gv_sim_restart(gv_sim *s, uint32_t i, unsigned k) {
  gv_sim_node *n = &s->nodes[i];

  gv_lcore_free(n->lc);
  gv_engine_free(n->e);
  gv_id_wipe(&n->id);
  n->relay = NULL;
  node_init(s, i);
  n->dead = false;
  gv_sim_seed_candidates(s, i, k);
}

void gv_sim_set_relay(gv_sim *s, uint32_t i, gv_relay *r) {
  gv_sim_node *n = &s->nodes[i];

  n->relay = r;
  gv_lcore_set_service(n->lc, GV_CHAN_RELAY,
                       r != NULL ? gv_relay_service(r) : NULL);
}

void gv_sim_seed_candidates(gv_sim *s, uint32_t i, unsigned k) {
  unsigned given = 0;
  for (unsigned tries = 0; given < k && tries < 64 * k; tries++) {
    uint32_t j = (uint32_t)gv_rng_below(&s->rng, s->n_nodes);
    gv_addr a;
    if (j == i || s->nodes[j].silent)
      continue;
    node_addr(j, &a);
    gv_engine_add_candidate(s->nodes[i].e, s->nodes[j].id.pk, &a, false,
                            s->now);
    given++;
  }
  gv_sim_drain(s, i);
}

void gv_sim_crash(gv_sim *s, uint32_t i) { s->nodes[i].dead = true; }

void gv_sim_partition(gv_sim *s) {
  s->partitioned = true;
  for (uint32_t k = 0; k < s->n_links; k++) {
    gv_sim_link *l = &s->links[k];
    if (!l->up || s->nodes[l->a].side == s->nodes[l->b].side)
      continue;
    l->up = false;
    push(s, s->now + l->lat, EV_DOWN, l->a, 2 * k + 1, NULL);
    push(s, s->now + l->lat, EV_DOWN, l->b, 2 * k + 2, NULL);
  }
}

void gv_sim_heal(gv_sim *s) { s->partitioned = false; }

void gv_sim_flood_once(gv_sim *s, uint32_t i) {
  static const char junk[] = "{\"v\":1,\"ttl\":9,\"hops\":0,\"body\":\"x\"}";
  for (uint32_t k = 0; k < s->n_links; k++) {
    gv_sim_link *l = &s->links[k];
    gv_buf *b;
    if (!l->up || (l->a != i && l->b != i))
      continue;
    b = gv_chan_buf(GV_CHAN_GOSSIP, junk, sizeof(junk) - 1);
    if (l->a == i)
      push(s, s->now + l->lat, EV_FRAME, l->b, 2 * k + 2, b);
    else
      push(s, s->now + l->lat, EV_FRAME, l->a, 2 * k + 1, b);
  }
}

void gv_sim_track(gv_sim *s, const uint8_t *id) {
  s->tracking = true;
  memcpy(s->tracked, id, GV_MSG_ID_BYTES);
  s->tracked_at = s->now;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    s->nodes[i].delivered_at = -1;
}

bool gv_sim_check(gv_sim *s) {
  gv_why why;
  if (s->violations > 0)
    return false;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    if (s->nodes[i].dead)
      continue;
    if (gv_engine_check(s->nodes[i].e, &why) < 0 ||
        gv_lcore_check(s->nodes[i].lc, &why) < 0) {
      s->violations++;
      snprintf(s->violation, sizeof(s->violation), "node %u: %s", i, why.text);
      return false;
    }
  }
  return true;
}

int gv_sim_new(gv_sim **out, const gv_sim_cfg *cfg) {
  gv_sim *s = calloc(1, sizeof(*s));

  *out = NULL;
  if (s == NULL)
    return GV_ENOMEM;
  s->cfg = *cfg;
  s->now = GV_SIM_T0;
  s->cap_nodes = cfg->nodes + cfg->nodes / 8 + GV_SIM_SPARE_NODES;
  if ((s->nodes = calloc(s->cap_nodes, sizeof(gv_sim_node))) == NULL) {
    free(s);
    return GV_ENOMEM;
  }
  gv_rng_seed(&s->rng, cfg->seed);
  {
    uint8_t key[GV_IDMAP_KEY_BYTES] = {0};
    memcpy(key, &cfg->seed, sizeof(cfg->seed));
    gv_idmap_init(&s->delivered, key);
  }
  *out = s;
  return 0;
}

void gv_sim_free(gv_sim *s) {
  if (s == NULL)
    return;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    gv_lcore_free(s->nodes[i].lc);
    gv_engine_free(s->nodes[i].e);
    gv_id_wipe(&s->nodes[i].id);
  }
  while (s->n_heap > 0) {
    gv_sim_ev ev = pop(s);
    gv_buf_unref(ev.buf);
  }
  gv_idmap_free(&s->delivered);
  free(s->heap);
  free(s->nodes);
  free(s->links);
  free(s);
}

/* The link core. node/lcore.h is its contract and draws the link states;
 * PROTOCOL.md §5.2 gives the rules it enforces on the wire.
 *
 *   open --admit--> OPEN --HELLO--> READY --close_link--> CLOSING
 *   gv_lcore_closed: any state --> removed
 */
#include "lcore.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"
#include "backoff.h"
#include "idmap.h"
#include "intern.h"
#include "invariant.h"
#include "oom.h"
#include "rng.h"

#define PROTECT_SCORE 50.0
#define PENALTY_HALF_LIFE_MS 600000.0
/* Rejection reasons kept per drain; more are counted. */
#define REJECT_TEXTS 8
/* Bans held at most; identities cost nothing to make. */
#define BAN_CAP 4096
/* The link array grows by this many links. */
#define LINKS_STEP 2

typedef struct ban_item {
  uint8_t peer[GV_ID_BYTES];
  int64_t until;
} ban_item;

typedef enum lstate { L_OPEN, L_READY, L_CLOSING } lstate;

/* Ordered to leave little padding (5 bytes after told): the simulator
 * holds ten per node, a million nodes. */
typedef struct llink {
  gv_linkid id;
  uint8_t peer[GV_ID_BYTES];
  bool dialed, has_addr;
  bool ping_out; /* a PING awaits its PONG, sent at ping_sent */
  bool peer_dup; /* the peer's GOODBYE said "duplicate" */
  uint8_t state; /* an lstate */
  uint8_t holds; /* GV_HOLD_* bits */
  uint8_t told;  /* bit per channel: services told up, so owed a down */
  int64_t opened_at, up_at, last_rx;
  double tokens;
  int64_t tokens_at;
  double penalty;
  int64_t penalty_at;
  /* The dialed address is read only until the link is READY (the services'
   * up, or dial_ended for a dial that never was), the PING state only once
   * it is (ready() starts it from zero): they share the bytes. */
  union {
    gv_addr addr; /* if has_addr; while L_OPEN */
    struct {      /* while L_READY */
      uint64_t ping_nonce;
      int64_t ping_sent, next_ping;
    } p;
  } u;
  double rtt, availability, performance;
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
} llink;
_Static_assert(GV__CHAN_COUNT <= 8, "llink.told holds a bit per channel");

struct gv_lcore {
  /* The configuration's constant part, seed and accepting cleared
   * (cfg_shared()); never written. */
  const gv_lcore_cfg *cfg;
  uint8_t self[GV_ID_BYTES];
  bool accepting; /* cfg's; gv_lcore_set_accepting() changes it */
  /* Counts (of links, bans, texts) are far below 2^32, and small members
   * first leave no padding: the simulator holds a million cores. */
  uint32_t n_links, cap_links;
  uint32_t ban_head, n_bans;
  uint32_t n_texts;
  gv_rng rng;
  int64_t now, wall_offset;
  llink *links;
  gv_linkid *ids; /* ids[i] == links[i].id: find() scans 4 bytes a link,
                     not a cold llink each */
  const gv_service *svc[GV__CHAN_COUNT];
  /* Bans, oldest first: every ban lasts ban_ms, and a banned peer cannot
   * link (so is never banned again while banned), so this order is expiry
   * order. At most BAN_CAP; past it the oldest ban is lifted early. */
  gv_idmap bans; /* peer -> its ban_item */
  ban_item *ban_ring;
  gv_actq acts;
  char (*texts)[sizeof(((gv_why *)0)->text)]; /* REJECT_TEXTS, on demand */
  gv_lcore_stats stats;
};

const char *gv_close_label(gv_close why) {
  static const char *const labels[] = {
#define XX(name, label) label,
      GV_CLOSE_MAP(XX)
#undef XX
  };
  return (unsigned)why < GV__CLOSE_COUNT ? labels[why] : "unknown";
}

void gv_lcore_cfg_default(gv_lcore_cfg *c) {
  memset(c, 0, sizeof(*c));
  c->seed = 1;
  c->inbound_max = 32;
  c->outbound_max = 8;
  c->hello_ms = 10000;
  c->ping_ms = 30000;
  c->ping_timeout_ms = 20000;
  c->idle_ms = 90000;
  c->protect_ms = 10 * 60000;
  c->rate_per_s = 200;
  c->rate_burst = 400;
  c->ban_threshold = -30;
  c->ban_ms = 10 * 60000;
  c->agent = "grapevine/0.2.0";
}

/* ---- small helpers ---- */

static llink *find(gv_lcore *lc, gv_linkid id) {
  for (size_t i = 0; i < lc->n_links; i++)
    if (lc->ids[i] == id)
      return &lc->links[i];
  return NULL;
}

static gv_action *push_act(gv_lcore *lc, gv_act_type type) {
  return gv_actq_push(&lc->acts, type);
}

bool gv_lcore_next(gv_lcore *lc, gv_action *a) {
  if (gv_actq_empty(&lc->acts)) {
#ifdef GV_DEBUG
    gv_why why;
    if (gv_lcore_check(lc, &why) < 0)
      gv__invariant_failed(why.text, __FILE__, __LINE__);
#endif
    free(lc->texts); /* the REJECT reasons drained with their actions */
    lc->texts = NULL;
    lc->n_texts = 0;
  }
  return gv_actq_pop(&lc->acts, a);
}

static void begin(gv_lcore *lc, int64_t now) {
  assert(now >= lc->now && "the clock must never go backwards");
  if (now > lc->now)
    lc->now = now;
}

/* ---- scores and bans ---- */

static double penalty(gv_lcore *lc, llink *l) {
  double dt = (double)(lc->now - l->penalty_at);
  if (dt > 0 && l->penalty > 0) {
    l->penalty *= pow(0.5, dt / PENALTY_HALF_LIFE_MS);
    l->penalty_at = lc->now;
  }
  return l->penalty;
}

static double score(gv_lcore *lc, llink *l) {
  return (l->availability + l->performance) / 2.0 - penalty(lc, l);
}

static void fill_info(gv_lcore *lc, llink *l, gv_link_info *o) {
  memset(o, 0, sizeof(*o));
  o->id = l->id;
  memcpy(o->peer, l->peer, GV_ID_BYTES);
  o->dialed = l->dialed;
  o->ready = l->state == L_READY;
  o->holds = l->holds;
  o->up_at = l->up_at;
  o->rtt_ms = l->rtt;
  o->availability = l->availability;
  o->performance = l->performance;
  o->penalty = penalty(lc, l);
  o->score = o->availability / 2 + o->performance / 2 - o->penalty;
  o->msgs_in = l->msgs_in;
  o->msgs_out = l->msgs_out;
  o->bytes_in = l->bytes_in;
  o->bytes_out = l->bytes_out;
}

static void tell_score(gv_lcore *lc, llink *l) {
  gv_link_info info;
  if (l->state != L_READY)
    return;
  fill_info(lc, l, &info);
  for (unsigned c = 0; c < GV__CHAN_COUNT; c++)
    if (lc->svc[c] != NULL && lc->svc[c]->score != NULL)
      lc->svc[c]->score(lc->svc[c]->ctx, &info, lc->now);
}

bool gv_lcore_banned(const gv_lcore *lc, const uint8_t *peer) {
  const ban_item *b = gv_idmap_get(&lc->bans, peer);
  return b != NULL && b->until > lc->now;
}

/* ---- closing ---- */

static void close_link(gv_lcore *lc, llink *l, gv_close why) {
  bool was_ready = l->state == L_READY;
  gv_action *a;

  if (l->state == L_CLOSING)
    return;
  l->state = L_CLOSING;
  l->holds = 0;
  lc->stats.closed[why]++;
  a = push_act(lc, GV_ACT_CLOSE);
  a->link = l->id;
  a->reason = (int)why;
  /* Services stop using it now, not when the transport is gone; each that
   * was told up, and only those. A dial that never became READY is over. */
  for (unsigned c = 0; c < GV__CHAN_COUNT; c++) {
    const gv_service *s = lc->svc[c];
    if (s == NULL)
      continue;
    if (was_ready && (l->told & 1u << c) && s->down != NULL)
      s->down(s->ctx, l->id, why, lc->now);
    else if (!was_ready && l->dialed && s->dial_ended != NULL)
      s->dial_ended(s->ctx, l->peer, l->has_addr ? &l->u.addr : NULL, why,
                    lc->now);
  }
}

static void unban_oldest(gv_lcore *lc) {
  ban_item *b = &lc->ban_ring[lc->ban_head];
  gv_idmap_del(&lc->bans, b->peer);
  lc->ban_head = (lc->ban_head + 1) % BAN_CAP;
  lc->n_bans--;
}

static void ban(gv_lcore *lc, llink *l) {
  ban_item *b = gv_idmap_get(&lc->bans, l->peer);
  if (b == NULL) { /* else a ban past its time, not yet swept */
    if (lc->ban_ring == NULL)
      lc->ban_ring = gv__xmalloc(BAN_CAP * sizeof(ban_item));
    if (lc->n_bans == BAN_CAP)
      unban_oldest(lc);
    b = &lc->ban_ring[(lc->ban_head + lc->n_bans++) % BAN_CAP];
    memcpy(b->peer, l->peer, GV_ID_BYTES);
    if (gv_idmap_put(&lc->bans, b->peer, b) < 0)
      abort(); /* only out of memory (oom.h) */
  }
  b->until = lc->now + lc->cfg->ban_ms;
  lc->stats.bans++;
  close_link(lc, l, GV_CLOSE_BANNED);
}

static void add_penalty(gv_lcore *lc, llink *l, double points) {
  penalty(lc, l);
  l->penalty += points;
  l->penalty_at = lc->now;
  if (score(lc, l) < lc->cfg->ban_threshold)
    ban(lc, l);
  else
    tell_score(lc, l);
}

/* ---- sending ---- */

static void send_buf(gv_lcore *lc, llink *l, gv_buf *b) {
  gv_action *a = push_act(lc, GV_ACT_SEND);
  a->link = l->id;
  a->buf = b; /* the caller's reference moves into the action */
  l->msgs_out++;
  l->bytes_out += b->len;
}

static void send_link_msg(gv_lcore *lc, llink *l, const gv_msg *m) {
  gv_buf *b = gv_chan_msg(GV_CHAN_LINK, m);
  if (b == NULL)
    abort(); /* only out of memory: our own messages always encode */
  send_buf(lc, l, b);
}

static void send_hello(gv_lcore *lc, llink *l) {
  gv_msg h, rec;
  memset(&h, 0, sizeof(h));
  memset(&rec, 0, sizeof(rec));
  h.type = GV_MSG_HELLO;
  h.ts = lc->now + lc->wall_offset;
  /* Cut to fit, NUL-ended by the memset (snprintf cost 600 instructions). */
  memcpy(h.u.hello.agent, lc->cfg->agent,
         strnlen(lc->cfg->agent, sizeof(h.u.hello.agent) - 1));
  if (lc->svc[GV_CHAN_GOSSIP] != NULL && lc->svc[GV_CHAN_GOSSIP]->hello != NULL)
    lc->svc[GV_CHAN_GOSSIP]->hello(lc->svc[GV_CHAN_GOSSIP]->ctx, &h, &rec);
  if (rec.body != NULL)
    h.u.hello.record = &rec; /* its pointers are the service's */
  send_link_msg(lc, l, &h);
}

static void send_ping(gv_lcore *lc, llink *l) {
  gv_msg p;
  memset(&p, 0, sizeof(p));
  p.type = GV_MSG_PING;
  p.u.nonce = l->u.p.ping_nonce = gv_rng_next(&lc->rng) & GV_INT_MAX;
  l->ping_out = true;
  l->u.p.ping_sent = lc->now;
  lc->stats.pings++;
  send_link_msg(lc, l, &p);
}

/* ---- admission ---- */

/* The node that dialed a link. */
static const uint8_t *initiator(const gv_lcore *lc, const llink *l) {
  return l->dialed ? lc->self : l->peer;
}

static size_t count(const gv_lcore *lc, bool dialed) {
  size_t n = 0;
  for (size_t i = 0; i < lc->n_links; i++)
    n += lc->links[i].state != L_CLOSING && lc->links[i].dialed == dialed;
  return n;
}

/* The inbound link to give up for newcomer n: the lowest-scored one that
 * is not an established good neighbour, the newest among equals; never n
 * itself nor skip (a duplicate that goes anyway). */
static llink *eviction_victim(gv_lcore *lc, const llink *n, const llink *skip) {
  llink *worst = NULL;
  double worst_score = 0;
  for (size_t i = 0; i < lc->n_links; i++) {
    llink *l = &lc->links[i];
    double s;
    /* A relay route (a silent node's only way in) is never the victim. */
    if (l == n || l == skip || l->dialed || l->state == L_CLOSING ||
        (l->holds & GV_HOLD_RELAY))
      continue;
    s = score(lc, l);
    if (l->state == L_READY && lc->now - l->up_at >= lc->cfg->protect_ms &&
        s >= PROTECT_SCORE)
      continue;
    if (worst == NULL || s < worst_score ||
        (s == worst_score && l->opened_at > worst->opened_at)) {
      worst = l;
      worst_score = s;
    }
  }
  return worst;
}

/* Decides on a new link; returns the reason to refuse it, or -1. May close
 * another link (duplicate, eviction). */
static int admit(gv_lcore *lc, llink *n) {
  llink *dup = NULL, *victim = NULL;

  if (memcmp(n->peer, lc->self, GV_ID_BYTES) == 0)
    return GV_CLOSE_SELF;
  if (gv_lcore_banned(lc, n->peer))
    return GV_CLOSE_BANNED;
  if (!n->dialed && !lc->accepting)
    return GV_CLOSE_NOT_ACCEPTING;
  for (size_t i = 0; i < lc->n_links; i++) {
    llink *o = &lc->links[i];
    if (o == n || o->state == L_CLOSING ||
        memcmp(o->peer, n->peer, GV_ID_BYTES) != 0)
      continue;
    /* Both ends keep the link dialed by the smaller id, so two nodes that
     * dial each other at once agree on the survivor. */
    if (memcmp(initiator(lc, n), initiator(lc, o), GV_ID_BYTES) >= 0)
      return GV_CLOSE_DUPLICATE;
    dup = o; /* n wins, once it is admitted at all */
  }
  /* The room is counted as it will be: without the duplicate n replaces. */
  if (n->dialed &&
      count(lc, true) - (dup != NULL && dup->dialed) > lc->cfg->outbound_max)
    return GV_CLOSE_FULL;
  if (!n->dialed &&
      count(lc, false) - (dup != NULL && !dup->dialed) > lc->cfg->inbound_max &&
      (victim = eviction_victim(lc, n, dup)) == NULL)
    return GV_CLOSE_FULL;
  if (dup != NULL)
    close_link(lc, dup, GV_CLOSE_DUPLICATE);
  if (victim != NULL)
    close_link(lc, victim, GV_CLOSE_EVICTED);
  return -1;
}

/* ---- events ---- */

void gv_lcore_open(gv_lcore *lc, gv_linkid link, const uint8_t *peer,
                   bool dialed, const gv_addr *addr, int64_t now) {
  llink *l;
  int refuse;

  begin(lc, now);
  if (lc->n_links == lc->cap_links) {
    /* Linear growth: a node holds about ten links, and at most
     * inbound_max + outbound_max, so a few reallocations at most, and
     * never a doubled array mostly empty. */
    uint32_t cap = lc->cap_links + LINKS_STEP;
    lc->links = gv__xrealloc(lc->links, cap * sizeof(llink));
    lc->ids = gv__xrealloc(lc->ids, cap * sizeof(gv_linkid));
    lc->cap_links = cap;
  }
  lc->ids[lc->n_links] = link;
  l = &lc->links[lc->n_links++];
  memset(l, 0, sizeof(*l));
  l->id = link;
  memcpy(l->peer, peer, GV_ID_BYTES);
  l->dialed = dialed;
  if (dialed && addr != NULL) {
    l->has_addr = true;
    l->u.addr = *addr;
  }
  l->state = L_OPEN;
  l->opened_at = l->last_rx = l->tokens_at = l->penalty_at = lc->now;
  l->tokens = lc->cfg->rate_burst;
  l->rtt = -1;
  l->availability = l->performance = 50;
  lc->stats.opened++;
  refuse = admit(lc, l);
  if (refuse >= 0) {
    close_link(lc, l, (gv_close)refuse);
    return;
  }
  send_hello(lc, l);
}

static void ready(gv_lcore *lc, llink *l, const gv_msg *hello) {
  l->state = L_READY;
  l->up_at = lc->now;
  /* A service may end the link from inside up (a penalty that bans):
   * then no later service hears of it, and no hold is taken. */
  for (unsigned c = 1; c < GV__CHAN_COUNT && l->state == L_READY; c++) {
    const gv_service *s = lc->svc[c];
    bool hold;
    if (s == NULL || s->up == NULL)
      continue;
    l->told |= 1u << c;
    hold = s->up(s->ctx, l->id, l->peer, l->dialed,
                 l->has_addr ? &l->u.addr : NULL, hello, lc->now);
    if (hold && l->state == L_READY)
      l->holds |= 1u << (c - 1);
  }
  if (l->state != L_READY)
    return;
  if (l->holds == 0) {
    close_link(lc, l, GV_CLOSE_UNWANTED);
    return;
  }
  memset(&l->u.p, 0, sizeof(l->u.p)); /* the address is done with */
  /* The first PING at once: the link's RTT is known within a round trip,
   * not after the first interval. */
  if (lc->cfg->ping_ms > 0) {
    send_ping(lc, l);
    l->u.p.next_ping = lc->now + gv_jitter_ms(&lc->rng, lc->cfg->ping_ms);
  }
}

static bool rate_ok(gv_lcore *lc, llink *l) {
  double dt = (double)(lc->now - l->tokens_at) / 1000.0;
  l->tokens = fmin(lc->cfg->rate_burst, l->tokens + dt * lc->cfg->rate_per_s);
  l->tokens_at = lc->now;
  if (l->tokens < 1.0)
    return false;
  l->tokens -= 1.0;
  return true;
}

static double points_for(int rc) {
  return rc == GV_EBADSIG ? 20 : rc == GV_ESTALE || rc == GV_EFUTURE ? 2 : 10;
}

static void reject(gv_lcore *lc, llink *l, int rc, const gv_why *why) {
  gv_action *a;
  lc->stats.rejected++;
  if (lc->texts == NULL)
    lc->texts = gv__xmalloc(REJECT_TEXTS * sizeof(*lc->texts));
  if (lc->n_texts < REJECT_TEXTS) {
    a = push_act(lc, GV_ACT_REJECT);
    a->link = l->id;
    a->reason = rc;
    snprintf(lc->texts[lc->n_texts], sizeof(lc->texts[0]), "%s",
             why != NULL && why->text[0] ? why->text : gv_strerror(rc));
    a->why = lc->texts[lc->n_texts++];
  }
  add_penalty(lc, l, points_for(rc));
}

static void on_link_msg(gv_lcore *lc, llink *l, const uint8_t *msg,
                        size_t len) {
  gv_msg_policy pol;
  gv_msg m, record; /* a HELLO's record lives here: no allocation */
  gv_why why;
  int rc;

  memset(&pol, 0, sizeof(pol));
  pol.now_ms = lc->now + lc->wall_offset;
  pol.trust_sigs = lc->cfg->stub_sigs;
  pol.memo = lc->cfg->memo;
  pol.record = &record;
  why.text[0] = '\0';
  rc = gv_msg_decode(&m, msg, len, &pol, &why);
  if (rc == 0 && gv_msg_is_gossip(m.type))
    rc = gv_fail(&why, GV_ETYPE, "%s on the link channel",
                 gv_msg_type_name(m.type));
  if (rc == 0 && (m.type == GV_MSG_IHAVE || m.type == GV_MSG_IWANT))
    rc = gv_fail(&why, GV_ETYPE, "%s belongs on the gossip channel",
                 gv_msg_type_name(m.type));
  /* Before HELLO only HELLO, or the GOODBYE of a peer that refused us. */
  if (rc == 0 && l->state == L_OPEN && m.type != GV_MSG_HELLO &&
      m.type != GV_MSG_GOODBYE)
    rc = gv_fail(&why, GV_ESTATE, "%s before HELLO", gv_msg_type_name(m.type));
  if (rc == 0 && l->state == L_READY && m.type == GV_MSG_HELLO)
    rc = gv_fail(&why, GV_ESTATE, "a second HELLO");
  if (rc < 0) {
    reject(lc, l, rc, &why);
    /* The link's rules, not a message's content: the link is unusable. */
    if (l->state == L_OPEN || rc == GV_ESTATE)
      close_link(lc, l, GV_CLOSE_PROTOCOL);
    gv_msg_clear(&m);
    return;
  }
  switch (m.type) {
  case GV_MSG_HELLO:
    /* A record that is not the peer's own is ignored (PROTOCOL.md §6.4). */
    if (m.u.hello.record != NULL &&
        memcmp(m.u.hello.record->origin, l->peer, GV_ID_BYTES) != 0) {
      gv_msg_clear(m.u.hello.record); /* lent: not freed */
      m.u.hello.record = NULL;
    }
    ready(lc, l, &m);
    break;
  case GV_MSG_PING: {
    gv_msg pong;
    memset(&pong, 0, sizeof(pong));
    pong.type = GV_MSG_PONG;
    pong.u.nonce = m.u.nonce;
    send_link_msg(lc, l, &pong);
    break;
  }
  case GV_MSG_PONG:
    if (l->ping_out && m.u.nonce == l->u.p.ping_nonce) {
      double rtt = (double)(lc->now - l->u.p.ping_sent);
      double perf = fmax(0.0, fmin(100.0, 100.0 * (1.0 - rtt / 1000.0)));
      l->rtt = l->rtt < 0 ? rtt : l->rtt * 0.7 + rtt * 0.3;
      l->performance = l->performance * 0.7 + perf * 0.3;
      l->availability += (100.0 - l->availability) * 0.2;
      l->ping_out = false;
      lc->stats.pongs++;
      tell_score(lc, l);
    }
    break;
  case GV_MSG_GOODBYE:
    /* The transport reports the end; the reason tells a duplicate the peer
     * closed from any other goodbye, so this side holds off too. */
    l->peer_dup = strcmp(m.u.reason, gv_close_label(GV_CLOSE_DUPLICATE)) == 0;
    break;
  default: break;
  }
  gv_msg_clear(&m);
}

void gv_lcore_recv(gv_lcore *lc, gv_linkid link, const uint8_t *pt, size_t len,
                   int64_t now) {
  llink *l;
  unsigned chan;

  begin(lc, now);
  if ((l = find(lc, link)) == NULL || l->state == L_CLOSING)
    return;
  l->last_rx = lc->now;
  l->msgs_in++;
  l->bytes_in += len;
  if (len < GV_CHAN_HDR + 1) {
    gv_why why;
    reject(lc, l, gv_fail(&why, GV_EFRAME, "an empty plaintext"), &why);
    close_link(lc, l, GV_CLOSE_PROTOCOL);
    return;
  }
  chan = pt[0];
  pt += GV_CHAN_HDR;
  len -= GV_CHAN_HDR;
  if (chan >= GV__CHAN_COUNT ||
      (chan != GV_CHAN_LINK && lc->svc[chan] == NULL)) {
    lc->stats.unknown_chan++; /* a newer node's service: not an error */
    return;
  }
  lc->stats.msgs_in[chan]++;
  lc->stats.bytes_in[chan] += len;
  if (chan != GV_CHAN_LINK && l->state != L_READY) {
    gv_why why;
    reject(
        lc, l,
        gv_fail(&why, GV_ESTATE, "%s message before HELLO", gv_chan_name(chan)),
        &why);
    close_link(lc, l, GV_CLOSE_PROTOCOL);
    return;
  }
  /* Link control and gossip share a per-link budget; relay and torrent
   * have flow control of their own. */
  if ((chan == GV_CHAN_LINK || chan == GV_CHAN_GOSSIP) && !rate_ok(lc, l)) {
    lc->stats.rate_limited++;
    add_penalty(lc, l, 1);
    return;
  }
  if (len > gv_chan_max(chan)) {
    gv_why why;
    reject(lc, l,
           gv_fail(&why, GV_ETOOBIG, "%zu bytes on the %s channel", len,
                   gv_chan_name(chan)),
           &why);
    if (l->state == L_OPEN) /* HELLO must come first, and this is not it */
      close_link(lc, l, GV_CLOSE_PROTOCOL);
    return;
  }
  if (chan == GV_CHAN_LINK) {
    on_link_msg(lc, l, pt, len);
  } else {
    const gv_service *s = lc->svc[chan];
    gv_why why;
    int rc;
    why.text[0] = '\0';
    rc = s->recv(s->ctx, l->id, pt, len, lc->now, &why);
    if (rc < 0 && l->state != L_CLOSING)
      reject(lc, l, rc, &why);
  }
}

static bool is_close_of(const gv_action *a, const void *link) {
  return a->type == GV_ACT_CLOSE && a->link == *(const gv_linkid *)link;
}

void gv_lcore_closed(gv_lcore *lc, gv_linkid link, bool goodbye, int64_t now) {
  llink *l;

  begin(lc, now);
  if (NEVER((l = find(lc, link)) == NULL))
    return; /* every link given to gv_lcore_open ends here once */
  close_link(lc, l,
             !goodbye      ? GV_CLOSE_TRANSPORT
             : l->peer_dup ? GV_CLOSE_DUPLICATE
                           : GV_CLOSE_GOODBYE);
  /* The CLOSE just queued for a link already gone is moot: drop it. */
  gv_actq_cancel(&lc->acts, is_close_of, &link);
  lc->n_links--;
  lc->ids[l - lc->links] = lc->ids[lc->n_links];
  *l = lc->links[lc->n_links];
}

void gv_lcore_tick(gv_lcore *lc, int64_t now) {
  begin(lc, now);
  for (size_t i = 0; i < lc->n_links; i++) {
    llink *l = &lc->links[i];
    if (l->state == L_OPEN && lc->now - l->opened_at >= lc->cfg->hello_ms)
      close_link(lc, l, GV_CLOSE_HELLO_TIMEOUT);
    if (l->state != L_READY)
      continue;
    if (lc->now - l->last_rx >= lc->cfg->idle_ms) {
      close_link(lc, l, GV_CLOSE_IDLE);
      continue;
    }
    if (l->ping_out && lc->now - l->u.p.ping_sent >= lc->cfg->ping_timeout_ms) {
      close_link(lc, l, GV_CLOSE_PING_TIMEOUT);
      continue;
    }
    if (lc->cfg->ping_ms > 0 && !l->ping_out && lc->now >= l->u.p.next_ping) {
      send_ping(lc, l);
      l->u.p.next_ping = lc->now + lc->cfg->ping_ms;
    }
  }
  while (lc->n_bans > 0 && lc->ban_ring[lc->ban_head].until <= lc->now)
    unban_oldest(lc);
  if (lc->n_bans == 0) {
    free(lc->ban_ring); /* an idle core holds none of its peak */
    lc->ban_ring = NULL;
    lc->ban_head = 0;
  }
}

int64_t gv_lcore_expiry(const gv_lcore *lc) {
  int64_t at = INT64_MAX;
#define EARLIER(t)                                                             \
  do {                                                                         \
    int64_t t_ = (t);                                                          \
    if (t_ < at)                                                               \
      at = t_;                                                                 \
  } while (0)
  for (size_t i = 0; i < lc->n_links; i++) {
    const llink *l = &lc->links[i];
    if (l->state == L_OPEN)
      EARLIER(l->opened_at + lc->cfg->hello_ms);
    if (l->state != L_READY)
      continue;
    EARLIER(l->last_rx + lc->cfg->idle_ms);
    if (l->ping_out)
      EARLIER(l->u.p.ping_sent + lc->cfg->ping_timeout_ms);
    else if (lc->cfg->ping_ms > 0)
      EARLIER(l->u.p.next_ping);
  }
  if (lc->n_bans > 0)
    EARLIER(lc->ban_ring[lc->ban_head].until);
#undef EARLIER
  return at;
}

/* ---- commands ---- */

int gv_lcore_hold(gv_lcore *lc, gv_linkid link, unsigned hold, int64_t now) {
  llink *l;
  begin(lc, now);
  if ((l = find(lc, link)) == NULL || l->state != L_READY)
    return GV_ESTATE;
  l->holds |= hold;
  return 0;
}

int gv_lcore_release(gv_lcore *lc, gv_linkid link, unsigned hold, int64_t now) {
  llink *l;
  begin(lc, now);
  if ((l = find(lc, link)) == NULL || l->state != L_READY)
    return GV_ESTATE;
  l->holds &= ~hold;
  if (l->holds == 0)
    close_link(lc, l, GV_CLOSE_UNWANTED);
  return 0;
}

void gv_lcore_penalize(gv_lcore *lc, gv_linkid link, double points,
                       int64_t now) {
  llink *l;
  begin(lc, now);
  if ((l = find(lc, link)) != NULL && l->state != L_CLOSING)
    add_penalty(lc, l, points);
}

void gv_lcore_close_all(gv_lcore *lc, gv_close why, int64_t now) {
  begin(lc, now);
  for (size_t i = 0; i < lc->n_links; i++)
    close_link(lc, &lc->links[i], why);
}

void gv_lcore_send_failed(gv_lcore *lc, gv_linkid link, int64_t now) {
  llink *l;
  begin(lc, now);
  if ((l = find(lc, link)) != NULL)
    close_link(lc, l, GV_CLOSE_QUEUE_FULL);
}

void gv_lcore_set_accepting(gv_lcore *lc, bool on, int64_t now) {
  begin(lc, now);
  lc->accepting = on;
  for (size_t i = 0; !on && i < lc->n_links; i++)
    if (!lc->links[i].dialed)
      close_link(lc, &lc->links[i], GV_CLOSE_NOT_ACCEPTING);
}

void gv_lcore_set_wall(gv_lcore *lc, int64_t offset) {
  lc->wall_offset = offset;
}

void gv_lcore_set_service(gv_lcore *lc, gv_chan chan, const gv_service *svc) {
  if (chan != GV_CHAN_LINK && (unsigned)chan < GV__CHAN_COUNT)
    lc->svc[chan] = svc;
}

/* ---- construction and inspection ---- */

/* The constant part of cfg: a copy with seed and accepting cleared, taken
 * from the shared pool when there is one (cfg.pool), so that link cores
 * configured alike hold one copy. Callers that start from
 * gv_lcore_cfg_default() leave the padding zero, so alike is equal bytes.
 * Released by gv_lcore_free(). */
static const gv_lcore_cfg *cfg_shared(const gv_lcore_cfg *cfg) {
  gv_lcore_cfg *c = gv__xmalloc(sizeof(*c));
  const char *kept;

  memcpy(c, cfg, sizeof(*c));
  c->seed = 0;
  c->accepting = false;
  if (cfg->pool == NULL)
    return c;
  /* The pool's strings are aligned for any object (intern.h). */
  kept =
      gv__xcheck((char *)gv_intern_get(cfg->pool, (const char *)c, sizeof(*c)));
  free(c);
  return (const gv_lcore_cfg *)(const void *)kept;
}

int gv_lcore_new(gv_lcore **out, const gv_lcore_cfg *cfg,
                 const uint8_t self[GV_ID_BYTES], int64_t now) {
  gv_lcore *lc;
  uint8_t key[GV_IDMAP_KEY_BYTES];
  uint64_t x = cfg->seed ^ 0x6c636f72656b6579ULL;

  *out = NULL;
  if (cfg->hello_ms <= 0 || cfg->idle_ms <= 0 || cfg->ping_timeout_ms <= 0 ||
      cfg->rate_per_s <= 0 || cfg->rate_burst < 1 || cfg->agent == NULL ||
      strlen(cfg->agent) == 0 || strlen(cfg->agent) > GV_AGENT_MAX)
    return GV_EINVAL;
  lc = gv__xcalloc(1, sizeof(*lc));
  lc->cfg = cfg_shared(cfg);
  lc->accepting = cfg->accepting;
  memcpy(lc->self, self, GV_ID_BYTES);
  lc->now = now;
  gv_rng_seed(&lc->rng, cfg->seed ^ 0x6c696e6b636f7265ULL);
  for (int i = 0; i < 2; i++) {
    uint64_t k = gv__splitmix64(&x);
    memcpy(key + 8 * i, &k, 8);
  }
  gv_idmap_init(&lc->bans, key);
  *out = lc;
  return 0;
}

void gv_lcore_free(gv_lcore *lc) {
  if (lc == NULL)
    return;
  gv_actq_free(&lc->acts);
  gv_idmap_free(&lc->bans);
  free(lc->ban_ring);
  free(lc->links);
  free(lc->ids);
  free(lc->texts);
  if (lc->cfg->pool != NULL)
    gv_intern_drop(lc->cfg->pool, (const char *)lc->cfg);
  else
    free((void *)lc->cfg);
  free(lc);
}

void gv_lcore_prefetch(const gv_lcore *lc) {
  /* What every event reads first: the clock and the link index. */
  __builtin_prefetch(&lc->now);
  __builtin_prefetch(&lc->n_links);
}

const gv_lcore_stats *gv_lcore_stats_get(const gv_lcore *lc) {
  return &lc->stats;
}

size_t gv_lcore_count(const gv_lcore *lc) {
  size_t n = 0;
  for (size_t i = 0; i < lc->n_links; i++)
    n += lc->links[i].state != L_CLOSING;
  return n;
}

bool gv_lcore_info(const gv_lcore *lc, size_t i, gv_link_info *out) {
  gv_lcore *m = (gv_lcore *)lc; /* decaying the penalty is not a change */
  for (size_t k = 0; k < m->n_links; k++) {
    if (m->links[k].state == L_CLOSING)
      continue;
    if (i-- == 0) {
      fill_info(m, &m->links[k], out);
      return true;
    }
  }
  return false;
}

double gv_lcore_score(const gv_lcore *lc, gv_linkid link) {
  gv_lcore *m = (gv_lcore *)lc;
  llink *l = find(m, link);
  return l != NULL ? score(m, l) : 50.0;
}

int gv_lcore_check(const gv_lcore *lc, gv_why *why) {
  size_t in = 0, out = 0;
  for (size_t i = 0; i < lc->n_links; i++) {
    const llink *l = &lc->links[i];
    if (lc->ids[i] != l->id)
      return gv_fail(why, GV_ESTATE, "link %u indexed as %u", l->id,
                     lc->ids[i]);
    if (l->state == L_CLOSING) {
      if (l->holds != 0)
        return gv_fail(why, GV_ESTATE, "closing link %u is held", l->id);
      continue;
    }
    if (l->state == L_READY && l->holds == 0)
      return gv_fail(why, GV_ESTATE, "ready link %u has no holder", l->id);
    if (memcmp(l->peer, lc->self, GV_ID_BYTES) == 0)
      return gv_fail(why, GV_ESTATE, "link %u to this node", l->id);
    if (!l->dialed && !lc->accepting)
      return gv_fail(why, GV_ESTATE, "inbound link %u while silent", l->id);
    in += !l->dialed;
    out += l->dialed;
    for (size_t j = i + 1; j < lc->n_links; j++)
      if (lc->links[j].state != L_CLOSING &&
          memcmp(lc->links[j].peer, l->peer, GV_ID_BYTES) == 0)
        return gv_fail(why, GV_ESTATE, "two links to one peer");
  }
  if (in > lc->cfg->inbound_max || out > lc->cfg->outbound_max)
    return gv_fail(why, GV_ELIMIT, "%zu inbound, %zu outbound links", in, out);
  return 0;
}

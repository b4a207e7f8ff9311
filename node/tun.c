/* The torrent tunnel's pure core (node/tun.h, docs/TUNNEL.md).
 *
 * A stream at this node is either an END (one half on a link, a local
 * socket on the other side) or a RELAYED pair (two halves on two links).
 * Half-states of an END:
 *
 *   gv_tun_open ----------------> OPEN (fetcher: socket already connected)
 *   OPEN received, accepted ----> CONNECTING: CONNECT emitted, link DATA
 *                                 queued in the core
 *        | gv_tun_local_connected(0)        | (< 0): CLOSE(io)
 *        v                                  v
 *      OPEN: link DATA -> WRITE; local reads -> DATA within the window
 *        | CLOSE received: SHUT     | local_closed: CLOSE(done/io)
 *        | link down: SHUT(io)      | violation: CLOSE(protocol) + SHUT
 *        v                          v
 *      freed (end_free)
 *
 * A RELAYED pair is made by an OPEN for another node (relay_open) and
 * freed by a CLOSE on either half (forwarded to the other), a violation
 * (CLOSE(protocol) both ways) or the link down of either half (CLOSE(io)
 * to the other). When the next hop has no link yet (cfg.route answered
 * DIAL), the pair is PARKED: only h[0] is attached, the OPEN waits in the
 * stream and DATA from h[0] is queued (within h[0]'s window) until a link
 * to park_peer comes up (relay_join: OPEN and the queue go out on it), the
 * dial fails (CLOSE(unreachable)) or h[0]'s link goes down (dropped).
 *
 * Window accounting per half: send_avail is what we may still send on the
 * half's link, recv_avail what its peer may still send us. For an END:
 *   recv_avail + queued + unwritten + uncredited == GV_TUN_WINDOW
 * For a RELAYED pair (credit is passed on 1:1, DATA forwarded at once):
 *   h[0].recv_avail == h[1].send_avail, h[1].recv_avail == h[0].send_avail
 * gv_tun_check() checks these and the rest of the header's invariants.
 *
 * Sizes are small (link_streams_max per link, relayed_max pairs, tens of
 * links), so streams and links are found by a linear scan.
 */
#include "tun.h"

#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "invariant.h"
#include "oom.h"

typedef struct tlink {
  gv_linkid id;
  uint8_t peer[GV_ID_BYTES];
  bool dialed, held;
  unsigned n_halves, n_peer_open, n_our_open;
  uint64_t next_sid;      /* the next sid we open; > UINT32_MAX: spent */
  uint32_t last_peer_sid; /* the highest sid the peer opened */
} tlink;

typedef struct half {
  gv_linkid link;
  uint32_t sid;
  bool ours; /* this node opened the sid */
  uint32_t send_avail, recv_avail;
} half;

typedef struct chunk {
  struct chunk *next;
  uint8_t *data; /* malloc'd, becomes a WRITE's data */
  size_t len;
} chunk;

typedef struct stream {
  struct stream *prev, *next;
  bool relayed;
  half h[2]; /* END: h[0]; RELAYED: h[0] toward the opener, h[1] to dst */
  /* END only */
  gv_tun_local local;
  bool connecting, paused;
  uint8_t *held; /* local bytes not yet sent: held[held_off..held_len) */
  size_t held_off, held_len, held_cap;
  chunk *q_head, *q_tail; /* link DATA while connecting (END) or parked */
  size_t queued, unwritten, uncredited;
  /* RELAYED only: parked until a link to park_peer is up; the OPEN to
   * forward then (hops as received). */
  bool parked;
  uint8_t park_peer[GV_ID_BYTES], dst[GV_ID_BYTES], src[GV_ID_BYTES];
  uint8_t ih[GV_TW_IH_BYTES], hops;
} stream;

struct gv_tun {
  gv_tun_cfg cfg;
  gv_service svc;
  tlink *links;
  size_t n_links, cap_links;
  stream *streams;                       /* doubly linked, newest first */
  size_t n_streams, n_relayed, n_parked; /* parked ones count as relayed */
  uint8_t (*expect)[GV_ID_BYTES];
  size_t n_expect;
  gv_tun_local next_local;
  gv_tact *acts;
  size_t act_head, n_acts, cap_acts;
  gv_tun_stats stats;
};

void gv_tun_cfg_default(gv_tun_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->link_streams_max = 64;
  cfg->relayed_max = 256;
}

/* ---- actions ---- */

static gv_tact *push(gv_tun *t, gv_tact_type type) {
  gv_tact *a;

  if (t->n_acts == t->cap_acts) {
    t->cap_acts = t->cap_acts ? 2 * t->cap_acts : 16;
    t->acts = gv__xrealloc(t->acts, t->cap_acts * sizeof *t->acts);
  }
  a = &t->acts[t->n_acts++];
  memset(a, 0, sizeof *a);
  a->type = type;
  return a;
}

bool gv_tun_next(gv_tun *t, gv_tact *a) {
  if (t->act_head == t->n_acts) {
#ifdef GV_DEBUG /* node/invariant.h: checked when the actions are drained */
    gv_why why;
    if (gv_tun_check(t, &why) < 0)
      gv__invariant_failed(why.text, __FILE__, __LINE__);
#endif
    return false;
  }
  *a = t->acts[t->act_head++];
  if (t->act_head == t->n_acts)
    t->act_head = t->n_acts = 0;
  return true;
}

static void act_local(gv_tun *t, gv_tact_type type, gv_tun_local local) {
  push(t, type)->local = local;
}

/* Queues m as a SEND on link: channel byte, then the message. */
static void send_msg(gv_tun *t, gv_linkid link, const gv_tw_msg *m) {
  size_t n = gv_tw_size(m), len = 0;
  uint8_t *b;
  gv_tact *a;

  if (NEVER(n == 0))
    return;
  b = gv__xmalloc(GV_CHAN_HDR + n);
  b[0] = GV_CHAN_TORRENT;
  if (NEVER(gv_tw_encode(m, b + GV_CHAN_HDR, n, &len, NULL) < 0)) {
    free(b);
    return;
  }
  a = push(t, GV_TACT_SEND);
  a->link = link;
  a->data = b;
  a->len = GV_CHAN_HDR + len;
  if (m->kind == GV_TW_DATA)
    t->stats.bytes_out += m->len;
}

static void send_close(gv_tun *t, gv_linkid link, uint32_t sid, int reason) {
  gv_tw_msg m = {.kind = GV_TW_CLOSE, .sid = sid, .reason = (uint8_t)reason};
  send_msg(t, link, &m);
}

static void send_credit(gv_tun *t, const half *h, uint32_t n) {
  gv_tw_msg m = {.kind = GV_TW_CREDIT, .sid = h->sid, .n = n};
  send_msg(t, h->link, &m);
}

static void send_data(gv_tun *t, const half *h, const uint8_t *b, size_t n) {
  gv_tw_msg m = {.kind = GV_TW_DATA, .sid = h->sid, .data = b, .len = n};
  send_msg(t, h->link, &m);
}

/* ---- links and holds ---- */

static tlink *link_find(const gv_tun *t, gv_linkid id) {
  for (size_t i = 0; i < t->n_links; i++)
    if (t->links[i].id == id)
      return &t->links[i];
  return NULL;
}

static tlink *link_by_peer(const gv_tun *t, const uint8_t *peer) {
  for (size_t i = 0; i < t->n_links; i++)
    if (memcmp(t->links[i].peer, peer, GV_ID_BYTES) == 0)
      return &t->links[i];
  return NULL;
}

static bool expected(const gv_tun *t, const uint8_t *peer) {
  for (size_t i = 0; i < t->n_expect; i++)
    if (memcmp(t->expect[i], peer, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* Holds lk iff it has a stream or an expectation names its peer. */
static void hold_update(gv_tun *t, tlink *lk) {
  bool want = lk->n_halves > 0 || expected(t, lk->peer);

  if (want == lk->held)
    return;
  lk->held = want;
  push(t, want ? GV_TACT_HOLD : GV_TACT_RELEASE)->link = lk->id;
}

/* A sid of ours on lk: odd if we dialed it, even otherwise. 0 when spent. */
static uint32_t sid_alloc(tlink *lk) {
  uint32_t sid;

  if (lk->next_sid > UINT32_MAX)
    return 0;
  sid = (uint32_t)lk->next_sid;
  lk->next_sid += 2;
  return sid;
}

static void half_attach(gv_tun *t, half *h, tlink *lk, uint32_t sid,
                        bool ours) {
  h->link = lk->id;
  h->sid = sid;
  h->ours = ours;
  h->send_avail = h->recv_avail = GV_TUN_WINDOW;
  lk->n_halves++;
  if (ours)
    lk->n_our_open++;
  else
    lk->n_peer_open++;
  hold_update(t, lk);
}

static void half_detach(gv_tun *t, const half *h) {
  tlink *lk = link_find(t, h->link);

  if (!lk) /* its link is going down */
    return;
  if (ALWAYS(lk->n_halves > 0))
    lk->n_halves--;
  if (h->ours) {
    if (ALWAYS(lk->n_our_open > 0))
      lk->n_our_open--;
  } else if (ALWAYS(lk->n_peer_open > 0)) {
    lk->n_peer_open--;
  }
  hold_update(t, lk);
}

/* ---- streams ---- */

static stream *stream_new(gv_tun *t, bool relayed) {
  stream *s = gv__xcalloc(1, sizeof *s);

  s->relayed = relayed;
  s->next = t->streams;
  if (t->streams)
    t->streams->prev = s;
  t->streams = s;
  t->n_streams++;
  if (relayed) {
    t->n_relayed++; /* stats.relayed counts it once joined */
  } else {
    t->stats.opened++;
  }
  return s;
}

static void stream_free(gv_tun *t, stream *s) {
  half_detach(t, &s->h[0]);
  if (s->relayed) {
    if (s->parked)
      t->n_parked--;
    else
      half_detach(t, &s->h[1]);
    t->n_relayed--;
  }
  if (s->prev)
    s->prev->next = s->next;
  else
    t->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  for (chunk *c = s->q_head, *n; c; c = n) {
    n = c->next;
    free(c->data);
    free(c);
  }
  free(s->held);
  free(s);
  t->n_streams--;
  t->stats.closed++;
}

/* The halves attached: 2 for a joined pair, else 1. */
static int n_halves(const stream *s) {
  return s->relayed && !s->parked ? 2 : 1;
}

/* The half of a stream on (link, sid), and its stream in *sp. */
static half *half_find(const gv_tun *t, gv_linkid link, uint32_t sid,
                       stream **sp) {
  for (stream *s = t->streams; s; s = s->next)
    for (int i = 0; i < n_halves(s); i++)
      if (s->h[i].link == link && s->h[i].sid == sid) {
        *sp = s;
        return &s->h[i];
      }
  return NULL;
}

static stream *local_find(const gv_tun *t, gv_tun_local local) {
  if (local == 0)
    return NULL;
  for (stream *s = t->streams; s; s = s->next)
    if (!s->relayed && s->local == local)
      return s;
  return NULL;
}

static half *other_half(stream *s, const half *h) {
  return h == &s->h[0] ? &s->h[1] : &s->h[0];
}

/* Ends stream s because of a message on half h: CLOSE(reason) to h's peer
 * if tell, and the other side told (SHUT or CLOSE) with the same reason. */
static void stream_end(gv_tun *t, stream *s, half *h, bool tell, int reason) {
  if (tell)
    send_close(t, h->link, h->sid, reason);
  if (s->relayed) {
    half *o = other_half(s, h);
    if (!s->parked)
      send_close(t, o->link, o->sid, reason);
  } else {
    gv_tact *a = push(t, GV_TACT_SHUT);
    a->local = s->local;
    a->reason = reason;
  }
  stream_free(t, s);
}

/* Sends held local bytes while the window allows; RESUMEs the socket
 * when nothing is held and the window is open again. */
static void end_flush(gv_tun *t, stream *s) {
  half *h = &s->h[0];

  while (s->held_off < s->held_len && h->send_avail > 0) {
    size_t n = s->held_len - s->held_off;
    if (n > h->send_avail)
      n = h->send_avail;
    if (n > GV_TUN_DATA_MAX)
      n = GV_TUN_DATA_MAX;
    send_data(t, h, s->held + s->held_off, n);
    h->send_avail -= (uint32_t)n;
    s->held_off += n;
  }
  if (s->held_off == s->held_len)
    s->held_off = s->held_len = 0;
  if (s->paused && s->held_len == 0 && h->send_avail > 0) {
    s->paused = false;
    act_local(t, GV_TACT_RESUME, s->local);
  }
}

/* Keeps b[0..n) (a copy) at the tail of s's queue. */
static void enqueue(stream *s, const uint8_t *b, size_t n) {
  chunk *c = gv__xmalloc(sizeof *c);

  c->next = NULL;
  c->data = gv__xmalloc(n);
  memcpy(c->data, b, n);
  c->len = n;
  if (s->q_tail)
    s->q_tail->next = c;
  else
    s->q_head = c;
  s->q_tail = c;
  s->queued += n;
}

/* Hands link bytes to the local socket, or queues them while connecting. */
static void end_deliver(gv_tun *t, stream *s, const uint8_t *b, size_t n) {
  uint8_t *copy;

  if (s->connecting) {
    enqueue(s, b, n);
  } else {
    copy = gv__xmalloc(n);
    memcpy(copy, b, n);
    gv_tact *a = push(t, GV_TACT_WRITE);
    a->local = s->local;
    a->data = copy;
    a->len = n;
    s->unwritten += n;
  }
}

/* Joins parked pair s to link dl: forwards its OPEN (hops + 1, a
 * sid of ours) and what h[0] sent meanwhile. Past dl's limits the pair
 * ends with CLOSE(limit) to the opener. */
static void relay_join(gv_tun *t, stream *s, tlink *dl) {
  gv_tw_msg fwd = {.kind = GV_TW_OPEN};
  uint32_t sid;

  if (dl->n_our_open >= t->cfg.link_streams_max || !(sid = sid_alloc(dl))) {
    t->stats.refused++;
    stream_end(t, s, &s->h[0], true, GV_TW_CLOSE_LIMIT);
    return;
  }
  s->parked = false;
  t->n_parked--;
  t->stats.relayed++;
  half_attach(t, &s->h[1], dl, sid, true);
  fwd.sid = sid;
  fwd.hops = (uint8_t)(s->hops + 1);
  fwd.dst = s->dst;
  fwd.src = s->src;
  fwd.ih = s->ih;
  send_msg(t, dl->id, &fwd);
  /* Within h[0]'s window, so within h[1]'s: the windows mirror after. */
  for (chunk *c = s->q_head, *n; c; c = n) {
    n = c->next;
    send_data(t, &s->h[1], c->data, c->len);
    s->h[1].send_avail -= (uint32_t)c->len;
    free(c->data);
    free(c);
  }
  s->q_head = s->q_tail = NULL;
  s->queued = 0;
}

static bool parked_for(const gv_tun *t, const uint8_t *peer) {
  for (const stream *s = t->streams; s; s = s->next)
    if (s->parked && memcmp(s->park_peer, peer, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* ---- lifecycle ---- */

static bool svc_up(void *ctx, gv_linkid link, const uint8_t *peer, bool dialed,
                   const gv_addr *addr, const gv_msg *hello, int64_t now) {
  (void)addr;
  (void)hello;
  (void)now;
  return gv_tun_link_up(ctx, link, peer, dialed);
}

static void svc_down(void *ctx, gv_linkid link, gv_close why, int64_t now) {
  (void)why;
  (void)now;
  gv_tun_link_down(ctx, link);
}

static int svc_recv(void *ctx, gv_linkid link, const uint8_t *msg, size_t len,
                    int64_t now, gv_why *why) {
  (void)now;
  return gv_tun_recv(ctx, link, msg, len, why);
}

int gv_tun_new(gv_tun **out, const gv_tun_cfg *cfg) {
  gv_tun *t;

  *out = NULL;
  if (cfg->link_streams_max == 0)
    return GV_EINVAL;
  t = gv__xcalloc(1, sizeof *t);
  t->cfg = *cfg;
  t->svc.ctx = t;
  t->svc.up = svc_up;
  t->svc.down = svc_down;
  t->svc.recv = svc_recv;
  t->expect = gv__xcalloc(GV_TUN_EXPECT_MAX, sizeof *t->expect);
  *out = t;
  return 0;
}

void gv_tun_free(gv_tun *t) {
  if (!t)
    return;
  t->n_links = 0; /* no holds to update while streams go */
  while (t->streams)
    stream_free(t, t->streams);
  for (size_t i = t->act_head; i < t->n_acts; i++)
    free(t->acts[i].data);
  free(t->acts);
  free(t->links);
  free(t->expect);
  free(t);
}

const gv_service *gv_tun_service(gv_tun *t) { return &t->svc; }

void gv_tun_set_relay(gv_tun *t, bool on) { t->cfg.relay = on; }

/* ---- links ---- */

bool gv_tun_link_up(gv_tun *t, gv_linkid link, const uint8_t *peer,
                    bool dialed) {
  tlink *lk;
  bool held;

  if (NEVER(link_find(t, link) != NULL))
    return link_find(t, link)->held;
  if (t->n_links == t->cap_links) {
    t->cap_links = t->cap_links ? 2 * t->cap_links : 8;
    t->links = gv__xrealloc(t->links, t->cap_links * sizeof *t->links);
  }
  lk = &t->links[t->n_links++];
  memset(lk, 0, sizeof *lk);
  lk->id = link;
  memcpy(lk->peer, peer, GV_ID_BYTES);
  lk->dialed = dialed;
  lk->next_sid = dialed ? 1 : 2;
  lk->held = expected(t, peer) || parked_for(t, peer);
  held = lk->held;
  for (stream *s = t->streams, *next; s; s = next) {
    next = s->next;
    if (s->parked && memcmp(s->park_peer, peer, GV_ID_BYTES) == 0)
      relay_join(t, s, lk);
  }
  hold_update(t, lk); /* every join refused: RELEASE follows */
  return held;
}

void gv_tun_link_down(gv_tun *t, gv_linkid link) {
  tlink *lk = link_find(t, link);
  stream *s, *next;

  if (!lk)
    return;
  /* Forget the link first: its halves detach without a RELEASE. */
  *lk = t->links[--t->n_links];
  for (s = t->streams; s; s = next) {
    next = s->next;
    if (s->h[0].link == link)
      stream_end(t, s, &s->h[0], false, GV_TW_CLOSE_IO);
    else if (s->relayed && s->h[1].link == link)
      stream_end(t, s, &s->h[1], false, GV_TW_CLOSE_IO);
  }
}

void gv_tun_dial_failed(gv_tun *t, const uint8_t *peer) {
  if (link_by_peer(t, peer) != NULL)
    return;
  for (stream *s = t->streams, *next; s; s = next) {
    next = s->next;
    if (s->parked && memcmp(s->park_peer, peer, GV_ID_BYTES) == 0) {
      t->stats.refused++;
      stream_end(t, s, &s->h[0], true, GV_TW_CLOSE_UNREACHABLE);
    }
  }
}

int gv_tun_expect(gv_tun *t, const uint8_t *peer, bool on) {
  tlink *lk;

  if (on && !expected(t, peer)) {
    if (t->n_expect == GV_TUN_EXPECT_MAX)
      return GV_ELIMIT;
    memcpy(t->expect[t->n_expect++], peer, GV_ID_BYTES);
  } else if (!on) {
    for (size_t i = 0; i < t->n_expect; i++)
      if (memcmp(t->expect[i], peer, GV_ID_BYTES) == 0) {
        memcpy(t->expect[i], t->expect[--t->n_expect], GV_ID_BYTES);
        break;
      }
  }
  if ((lk = link_by_peer(t, peer)))
    hold_update(t, lk);
  return 0;
}

/* ---- messages from links ---- */

/* A refused OPEN: CLOSE(reason) on its sid. */
static int refuse(gv_tun *t, tlink *lk, uint32_t sid, int reason) {
  t->stats.refused++;
  send_close(t, lk->id, sid, reason);
  return 0;
}

/* Whether an OPEN that arrived with hops may go on to peer: to dst
 * itself always; to another relay only while that relay may still forward
 * it (it arrives there with hops + 1 < GV_TW_HOPS_MAX). */
static bool next_hop_ok(const gv_tw_msg *m, const uint8_t *peer) {
  return memcmp(peer, m->dst, GV_ID_BYTES) == 0 || m->hops + 1 < GV_TW_HOPS_MAX;
}

/* An OPEN for another node: forward it if we may (docs/TUNNEL.md, relay
 * rules), on a link to dst, or where cfg.route says: another link, or a
 * dial, the OPEN parked until its link is up. */
static int relay_open(gv_tun *t, tlink *lk, const gv_tw_msg *m) {
  gv_tun_route r;
  tlink *dl = NULL;
  stream *s;
  bool dial;

  if (!t->cfg.relay || m->hops >= GV_TW_HOPS_MAX ||
      memcmp(m->dst, m->src, GV_ID_BYTES) == 0)
    return refuse(t, lk, m->sid, GV_TW_CLOSE_UNREACHABLE);
  memset(&r, 0, sizeof r);
  if ((dl = link_by_peer(t, m->dst)) != NULL) {
    r.kind = GV_TUN_ROUTE_LINK;
    r.link = dl->id;
  } else if (t->cfg.route) {
    t->cfg.route(t->cfg.ctx, m->dst, &r);
  }
  if (r.kind == GV_TUN_ROUTE_DIAL && (dl = link_by_peer(t, r.peer)) != NULL) {
    r.kind = GV_TUN_ROUTE_LINK; /* up meanwhile */
    r.link = dl->id;
  }
  if (r.kind == GV_TUN_ROUTE_LINK && (dl = link_find(t, r.link)) == NULL)
    r.kind = GV_TUN_ROUTE_NONE;
  dial = r.kind == GV_TUN_ROUTE_DIAL;
  if ((r.kind != GV_TUN_ROUTE_LINK && !dial) || (!dial && dl == lk) ||
      (dial && (memcmp(r.peer, lk->peer, GV_ID_BYTES) == 0 ||
                memcmp(r.peer, t->cfg.self, GV_ID_BYTES) == 0)) ||
      !next_hop_ok(m, dial ? r.peer : dl->peer))
    return refuse(t, lk, m->sid, GV_TW_CLOSE_UNREACHABLE);
  if (t->n_relayed >= t->cfg.relayed_max ||
      lk->n_peer_open >= t->cfg.link_streams_max ||
      (dial && t->n_parked >= GV_TUN_PARK_MAX) ||
      (!dial && dl->n_our_open >= t->cfg.link_streams_max))
    return refuse(t, lk, m->sid, GV_TW_CLOSE_LIMIT);
  if (dial && !parked_for(t, r.peer)) { /* one dial per peer at a time */
    gv_tact *a = push(t, GV_TACT_DIAL);
    memcpy(a->peer, r.peer, GV_ID_BYTES);
    a->addr = r.addr;
  }
  /* Parked from birth; joined at once when the link is there. */
  s = stream_new(t, true);
  half_attach(t, &s->h[0], lk, m->sid, false);
  memcpy(s->dst, m->dst, GV_ID_BYTES);
  memcpy(s->src, m->src, GV_ID_BYTES);
  memcpy(s->ih, m->ih, GV_TW_IH_BYTES);
  s->hops = m->hops;
  s->parked = true;
  memcpy(s->park_peer, dial ? r.peer : dl->peer, GV_ID_BYTES);
  t->n_parked++;
  if (dial)
    t->stats.parked++;
  else
    relay_join(t, s, dl);
  return 0;
}

static int on_open(gv_tun *t, tlink *lk, const gv_tw_msg *m, gv_why *why) {
  bool peer_odd = !lk->dialed; /* the dialer's sids are odd */
  stream *s;
  gv_tact *a;

  /* Neither answered with CLOSE: the sid may be one of our streams. */
  if ((m->sid & 1u) != (peer_odd ? 1u : 0u))
    return gv_fail(why, GV_EFIELD, "OPEN with sid %u of the wrong parity",
                   m->sid);
  if (m->sid <= lk->last_peer_sid)
    return gv_fail(why, GV_EFIELD, "OPEN reuses sid %u (last %u)", m->sid,
                   lk->last_peer_sid);
  lk->last_peer_sid = m->sid;
  if (m->hops == 0 && memcmp(m->src, lk->peer, GV_ID_BYTES) != 0) {
    t->stats.violations++;
    refuse(t, lk, m->sid, GV_TW_CLOSE_PROTOCOL);
    return gv_fail(why, GV_EFIELD, "OPEN names a src that is not the peer");
  }
  if (memcmp(m->dst, t->cfg.self, GV_ID_BYTES) != 0)
    return relay_open(t, lk, m);
  if (lk->n_peer_open >= t->cfg.link_streams_max)
    return refuse(t, lk, m->sid, GV_TW_CLOSE_LIMIT);
  if (!t->cfg.accept || !t->cfg.accept(t->cfg.ctx, m->ih, m->src))
    return refuse(t, lk, m->sid, GV_TW_CLOSE_REFUSED);
  s = stream_new(t, false);
  half_attach(t, &s->h[0], lk, m->sid, false);
  s->local = ++t->next_local;
  s->connecting = true;
  a = push(t, GV_TACT_CONNECT);
  a->local = s->local;
  memcpy(a->ih, m->ih, GV_TW_IH_BYTES);
  return 0;
}

/* A protocol violation on half h of s: the stream ends both ways. */
static int violation(gv_tun *t, stream *s, half *h) {
  t->stats.violations++;
  stream_end(t, s, h, true, GV_TW_CLOSE_PROTOCOL);
  return 0;
}

static int on_data(gv_tun *t, tlink *lk, const gv_tw_msg *m, gv_why *why) {
  stream *s;
  half *h = half_find(t, lk->id, m->sid, &s), *o;

  if (!h) /* closed meanwhile */
    return 0;
  if (m->len > h->recv_avail) {
    uint32_t avail = h->recv_avail;
    violation(t, s, h);
    return gv_fail(why, GV_ERANGE, "DATA of %zu bytes on sid %u, window %u",
                   m->len, m->sid, avail);
  }
  h->recv_avail -= (uint32_t)m->len;
  t->stats.bytes_in += m->len;
  if (!s->relayed) {
    end_deliver(t, s, m->data, m->len);
    return 0;
  }
  if (s->parked) { /* forwarded when it joins */
    enqueue(s, m->data, m->len);
    return 0;
  }
  o = other_half(s, h);
  if (NEVER(o->send_avail < m->len)) /* the pair invariant */
    return violation(t, s, h);
  o->send_avail -= (uint32_t)m->len;
  send_data(t, o, m->data, m->len);
  return 0;
}

static int on_credit(gv_tun *t, tlink *lk, const gv_tw_msg *m, gv_why *why) {
  stream *s;
  half *h = half_find(t, lk->id, m->sid, &s), *o;

  if (!h)
    return 0;
  if ((uint64_t)h->send_avail + m->n > GV_TUN_WINDOW) {
    uint32_t avail = h->send_avail;
    violation(t, s, h);
    return gv_fail(why, GV_ERANGE,
                   "CREDIT of %u on sid %u beyond what was sent (%u open)",
                   m->n, m->sid, avail);
  }
  if (NEVER(s->parked)) /* nothing was sent on h[0]: caught above */
    return violation(t, s, h);
  h->send_avail += m->n;
  if (!s->relayed) {
    end_flush(t, s);
    return 0;
  }
  o = other_half(s, h);
  o->recv_avail += m->n;
  send_credit(t, o, m->n);
  return 0;
}

static int on_close(gv_tun *t, tlink *lk, const gv_tw_msg *m) {
  stream *s;
  half *h = half_find(t, lk->id, m->sid, &s);

  if (h)
    stream_end(t, s, h, false, m->reason);
  return 0;
}

int gv_tun_recv(gv_tun *t, gv_linkid link, const uint8_t *msg, size_t len,
                gv_why *why) {
  tlink *lk = link_find(t, link);
  gv_tw_msg m;
  int rc;

  if (!lk)
    return gv_fail(why, GV_ESTATE, "channel 3 on link %u, not up", link);
  if ((rc = gv_tw_decode(msg, len, &m, why)) < 0) {
    t->stats.violations++;
    return rc;
  }
  switch (m.kind) {
  case GV_TW_OPEN: return on_open(t, lk, &m, why);
  case GV_TW_DATA: return on_data(t, lk, &m, why);
  case GV_TW_CREDIT: return on_credit(t, lk, &m, why);
  default: return on_close(t, lk, &m);
  }
}

/* ---- local sockets ---- */

int gv_tun_open(gv_tun *t, gv_linkid via, const uint8_t dst[GV_ID_BYTES],
                const uint8_t ih[GV_TW_IH_BYTES], gv_tun_local *local,
                gv_why *why) {
  tlink *lk = link_find(t, via);
  stream *s;
  uint32_t sid;
  gv_tw_msg m = {.kind = GV_TW_OPEN, .hops = 0};

  *local = 0;
  if (!lk)
    return gv_fail(why, GV_ESTATE, "link %u is not up", via);
  if (memcmp(dst, t->cfg.self, GV_ID_BYTES) == 0)
    return gv_fail(why, GV_EINVAL, "a stream to this node itself");
  if (lk->n_our_open >= t->cfg.link_streams_max)
    return gv_fail(why, GV_ELIMIT, "%u streams open on link %u already",
                   lk->n_our_open, via);
  if (!(sid = sid_alloc(lk)))
    return gv_fail(why, GV_ELIMIT, "link %u has spent its stream ids", via);
  s = stream_new(t, false);
  half_attach(t, &s->h[0], lk, sid, true);
  s->local = ++t->next_local;
  m.sid = sid;
  m.dst = dst;
  m.src = t->cfg.self;
  m.ih = ih;
  send_msg(t, via, &m);
  *local = s->local;
  return 0;
}

void gv_tun_local_connected(gv_tun *t, gv_tun_local local, int status) {
  stream *s = local_find(t, local);

  if (!s || !s->connecting)
    return;
  if (status < 0) {
    send_close(t, s->h[0].link, s->h[0].sid, GV_TW_CLOSE_IO);
    stream_free(t, s);
    return;
  }
  s->connecting = false;
  for (chunk *c = s->q_head, *n; c; c = n) {
    gv_tact *a = push(t, GV_TACT_WRITE);
    n = c->next;
    a->local = s->local;
    a->data = c->data;
    a->len = c->len;
    s->unwritten += c->len;
    free(c);
  }
  s->q_head = s->q_tail = NULL;
  s->queued = 0;
}

int gv_tun_local_read(gv_tun *t, gv_tun_local local, const uint8_t *b,
                      size_t len) {
  stream *s = local_find(t, local);
  half *h;

  if (!s || len == 0)
    return 0;
  if (NEVER(s->connecting)) /* the driver reads only a connected socket */
    return GV_ESTATE;
  h = &s->h[0];
  if (s->held_len - s->held_off + len > GV_TUN_HELD_MAX)
    return GV_ELIMIT;
  /* Straight from the caller's buffer while nothing is held. */
  while (s->held_len == 0 && len > 0 && h->send_avail > 0) {
    size_t n = len;
    if (n > h->send_avail)
      n = h->send_avail;
    if (n > GV_TUN_DATA_MAX)
      n = GV_TUN_DATA_MAX;
    send_data(t, h, b, n);
    h->send_avail -= (uint32_t)n;
    b += n;
    len -= n;
  }
  if (len > 0) {
    if (s->held_off > 0) {
      memmove(s->held, s->held + s->held_off, s->held_len - s->held_off);
      s->held_len -= s->held_off;
      s->held_off = 0;
    }
    if (s->held_len + len > s->held_cap) {
      s->held_cap = s->held_len + len;
      s->held = gv__xrealloc(s->held, s->held_cap);
    }
    memcpy(s->held + s->held_len, b, len);
    s->held_len += len;
    end_flush(t, s);
  }
  if (!s->paused && (s->held_len > 0 || h->send_avail == 0)) {
    s->paused = true;
    act_local(t, GV_TACT_PAUSE, s->local);
  }
  return 0;
}

void gv_tun_local_written(gv_tun *t, gv_tun_local local, size_t n) {
  stream *s = local_find(t, local);
  half *h;

  if (!s || s->connecting)
    return;
  if (NEVER(n > s->unwritten))
    n = s->unwritten;
  s->unwritten -= n;
  s->uncredited += n;
  if (s->uncredited < GV_TUN_CREDIT_AT)
    return;
  h = &s->h[0];
  h->recv_avail += (uint32_t)s->uncredited;
  send_credit(t, h, (uint32_t)s->uncredited);
  s->uncredited = 0;
}

void gv_tun_local_closed(gv_tun *t, gv_tun_local local, int status) {
  stream *s = local_find(t, local);

  if (!s)
    return;
  send_close(t, s->h[0].link, s->h[0].sid,
             status < 0 ? GV_TW_CLOSE_IO : GV_TW_CLOSE_DONE);
  stream_free(t, s);
}

/* ---- inspection ---- */

const gv_tun_stats *gv_tun_stats_get(const gv_tun *t) { return &t->stats; }

size_t gv_tun_streams(const gv_tun *t) { return t->n_streams; }

size_t gv_tun_parked(const gv_tun *t) { return t->n_parked; }

static int check_half(const gv_tun *t, const half *h, gv_why *why) {
  const tlink *lk = link_find(t, h->link);

  if (!lk)
    return gv_fail(why, GV_ESTATE, "sid %u on link %u, which is down", h->sid,
                   h->link);
  if (h->sid == 0)
    return gv_fail(why, GV_ESTATE, "sid 0 on link %u", h->link);
  /* Our sids: odd iff we dialed; the peer's: the other parity. */
  if ((h->sid & 1u) != ((h->ours == lk->dialed) ? 1u : 0u))
    return gv_fail(why, GV_ESTATE, "sid %u of the wrong parity on link %u",
                   h->sid, h->link);
  if (h->send_avail > GV_TUN_WINDOW || h->recv_avail > GV_TUN_WINDOW)
    return gv_fail(why, GV_ESTATE, "sid %u window past GV_TUN_WINDOW", h->sid);
  return 0;
}

int gv_tun_check(const gv_tun *t, gv_why *why) {
  size_t n = 0, relayed = 0, parked = 0;
  int rc;

  for (const stream *s = t->streams; s; s = s->next) {
    n++;
    if ((rc = check_half(t, &s->h[0], why)) < 0)
      return rc;
    if (s->relayed && s->parked) {
      relayed++;
      parked++;
      if (s->h[0].recv_avail + s->queued != GV_TUN_WINDOW ||
          s->h[0].send_avail != GV_TUN_WINDOW)
        return gv_fail(why, GV_ESTATE, "parked sid %u windows do not add up",
                       s->h[0].sid);
      if (link_by_peer(t, s->park_peer) != NULL)
        return gv_fail(why, GV_ESTATE, "sid %u parked for a peer linked",
                       s->h[0].sid);
      continue;
    }
    if (s->relayed) {
      relayed++;
      if (s->queued != 0)
        return gv_fail(why, GV_ESTATE, "relayed pair %u queues bytes",
                       s->h[0].sid);
      if ((rc = check_half(t, &s->h[1], why)) < 0)
        return rc;
      if (s->h[0].link == s->h[1].link)
        return gv_fail(why, GV_ESTATE, "relayed pair on one link %u",
                       s->h[0].link);
      if (s->h[0].recv_avail != s->h[1].send_avail ||
          s->h[1].recv_avail != s->h[0].send_avail)
        return gv_fail(why, GV_ESTATE, "relayed pair %u/%u windows differ",
                       s->h[0].sid, s->h[1].sid);
      continue;
    }
    if (s->h[0].recv_avail + s->queued + s->unwritten + s->uncredited !=
        GV_TUN_WINDOW)
      return gv_fail(why, GV_ESTATE, "sid %u receive window does not add up",
                     s->h[0].sid);
    if (s->held_len - s->held_off > GV_TUN_HELD_MAX)
      return gv_fail(why, GV_ESTATE, "sid %u holds %zu bytes", s->h[0].sid,
                     s->held_len - s->held_off);
    if (s->held_len > 0 && !s->paused)
      return gv_fail(why, GV_ESTATE, "sid %u holds bytes but reads on",
                     s->h[0].sid);
    if (s->connecting ? s->unwritten != 0 : s->queued != 0)
      return gv_fail(why, GV_ESTATE, "sid %u queue and writes disagree",
                     s->h[0].sid);
    if (s->local == 0 || s->local > t->next_local)
      return gv_fail(why, GV_ESTATE, "sid %u has no local handle", s->h[0].sid);
  }
  if (n != t->n_streams || relayed != t->n_relayed || parked != t->n_parked)
    return gv_fail(why, GV_ESTATE,
                   "stream counts %zu/%zu/%zu, list %zu/%zu/%zu", t->n_streams,
                   t->n_relayed, t->n_parked, n, relayed, parked);
  if (t->n_parked > GV_TUN_PARK_MAX)
    return gv_fail(why, GV_ESTATE, "%zu parked, limit %d", t->n_parked,
                   GV_TUN_PARK_MAX);
  if (t->n_relayed > t->cfg.relayed_max)
    return gv_fail(why, GV_ESTATE, "%zu relayed, limit %u", t->n_relayed,
                   t->cfg.relayed_max);
  for (size_t i = 0; i < t->n_links; i++) {
    const tlink *lk = &t->links[i];
    unsigned halves = 0, ours = 0;
    for (const stream *s = t->streams; s; s = s->next)
      for (int j = 0; j < n_halves(s); j++)
        if (s->h[j].link == lk->id) {
          halves++;
          ours += s->h[j].ours;
        }
    if (halves != lk->n_halves || ours != lk->n_our_open ||
        halves - ours != lk->n_peer_open)
      return gv_fail(why, GV_ESTATE, "link %u counts %u streams, has %u",
                     lk->id, lk->n_halves, halves);
    if (lk->held != (halves > 0 || expected(t, lk->peer)))
      return gv_fail(why, GV_ESTATE, "link %u %s without cause", lk->id,
                     lk->held ? "held" : "released");
    if (lk->n_peer_open > t->cfg.link_streams_max ||
        lk->n_our_open > t->cfg.link_streams_max)
      return gv_fail(why, GV_ESTATE, "link %u over its stream limit", lk->id);
  }
  return 0;
}

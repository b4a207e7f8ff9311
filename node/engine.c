/* The gossip engine. docs/GOSSIP.md is its specification; section numbers
 * in comments refer to it.
 *
 * Link life:   link_up -> ACTIVE -> link_down (removed; backoff for dials)
 * Dial life:   DIAL action -> pending -> link_up(we_dialed) | dial_failed
 * Message:     recv -> decode (dedup probe) -> first receipt: DELIVER,
 *              apply, eager push (§2.1), lazy push (§2.2), cache
 * Pull:        IHAVE(unknown id) -> pending pull -> deadline: IWANT to an
 *              announcer -> message arrives (repaired) | next announcer
 */
#include "engine.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"
#include "backoff.h"
#include "chan.h"
#include "idmap.h"
#include "intern.h"
#include "invariant.h"
#include "lcore.h"
#include "oom.h"
#include "rng.h"

#define MAX_ANNOUNCERS 8
#define LINKS_STEP 2 /* the link array grows by this many */
#define MAX_PULL_TRIES 4
#define MAINT_MS 1000
#define SWEEP_MS 10000
#define DIAL_TIMEOUT_MS 30000
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS 300000
#define FLAP_MS 10000 /* a link shorter than this was a failed dial */
#define DUPLICATE_REDIAL_MS 30000
#define GUARD_ROUND_MS 10000         /* the guard set is reviewed this often */
#define GUARD_STABLE_MS 600000       /* a link this old: the guard is up */
#define GUARD_EVICTED_HOLD_MS 300000 /* an evicting guard: redial after */

/* ---- memory for hot blocks ---- */

/* NULL: malloc and free. Set before any second thread starts (engine.h). */
static gv_blk_hooks blk;

void gv_blk_set_hooks(const gv_blk_hooks *h) {
  if (h == NULL)
    memset(&blk, 0, sizeof(blk));
  else
    blk = *h;
}

void *gv__blk_alloc(size_t n) {
  return blk.alloc != NULL ? gv__xcheck(blk.alloc(n)) : gv__xmalloc(n);
}

void *gv__blk_grow(void *p, size_t old, size_t n) {
  void *q;

  if (blk.alloc == NULL)
    return gv__xrealloc(p, n);
  q = gv__xcheck(blk.alloc(n));
  if (p != NULL)
    memcpy(q, p, old < n ? old : n);
  blk.release(p, old);
  return q;
}

void gv__blk_free(void *p, size_t n) {
  if (blk.release != NULL)
    blk.release(p, n);
  else
    free(p);
}

/* ---- buffers ---- */

gv_buf *gv_buf_new(const void *data, size_t len) {
  gv_buf *b = gv__blk_alloc(sizeof(*b) + len);
  b->refs = 1;
  b->len = (uint32_t)len;
  if (data != NULL)
    memcpy(b->data, data, len);
  return b;
}

void gv_buf_ref(gv_buf *b) { b->refs++; }

void gv_buf_unref(gv_buf *b) {
  if (b != NULL && --b->refs == 0)
    gv__blk_free(b, sizeof(*b) + b->len);
}

gv_buf *gv_chan_buf(gv_chan chan, const void *msg, size_t len) {
  gv_buf *b = gv_buf_new(NULL, GV_CHAN_HDR + len);
  b->data[0] = (uint8_t)chan;
  if (len > 0)
    memcpy(b->data + GV_CHAN_HDR, msg, len);
  return b;
}

/* The encoders write into a stack block of this size first: a HELLO or a
 * gossip message with a record body up to about 1.3 KB (the encoders'
 * first reserve is six bytes a body byte). */
#define ENCODE_STACK 8192

/* The frame of an envelope encoded into stack (or malloc'd past it). */
static gv_buf *chan_out(gv_chan chan, char *out, size_t len,
                        const char *stack) {
  gv_buf *b = gv_chan_buf(chan, out, len);
  if (out != stack)
    free(out);
  return b;
}

gv_buf *gv_chan_msg(unsigned chan, const gv_msg *m) {
  char stack[ENCODE_STACK], *out;
  size_t len;

  if (gv_msg_encode_link_in(m, stack, sizeof(stack), &out, &len) < 0)
    return NULL;
  return chan_out(chan, out, len, stack);
}

/* ---- internal types ---- */

typedef struct elink {
  gv_linkid id;
  uint8_t peer[GV_ID_BYTES];
  bool dialed;
  bool leaving;  /* inbound, this node went silent: released once it
                    confirms the update or at uptake_until */
  double score;  /* the link core's */
  int64_t up_at; /* READY since */
} elink;

typedef struct entry {
  gv_peer_entry pub;
  int failures;     /* consecutive failed dials and flapped links */
  int64_t next_try; /* backoff */
  int64_t last_hb;
  int64_t first_seen; /* entered the table (guard eligibility) */
} entry;

typedef struct cand { /* a seed: tracker answer, --peer, cached peer */
  bool has_id;        /* id known: given, shown by a link, or claimed by a
                         record listing addr (then only to skip dialing
                         this node or a peer already linked) */
  bool by_operator; /* named by the operator (--peer, config), not a tracker */
  bool id_linked;   /* id given by the operator or shown by a link to addr */
  uint8_t failures; /* consecutive, saturating (cand_failed()) */
  uint8_t id[GV_ID_BYTES];
  gv_addr addr;
  int64_t next_try;
} cand;
/* A seed's failures saturate at 255: its backoff is at BACKOFF_MAX_MS long
 * before (gv_backoff_ms doubles BACKOFF_BASE_MS per failure). */
_Static_assert(BACKOFF_MAX_MS <= (BACKOFF_BASE_MS << 20),
               "a seed's backoff reaches its cap within 255 failures");

/* One more failure of seed c; returns the count. */
static unsigned cand_failed(cand *c) {
  if (c->failures < UINT8_MAX)
    c->failures++;
  return c->failures;
}

typedef struct dialing {
  bool has_id;
  uint8_t id[GV_ID_BYTES];
  gv_addr addr;
  int64_t started;
} dialing;

typedef struct cached { /* a message kept to answer IWANT */
  uint8_t id[GV_MSG_ID_BYTES];
  gv_msg_type type;
  uint8_t ttl, hops;  /* as this node sends it on */
  char *body;         /* a kept_copy() */
  const uint8_t *sig; /* in body's string */
  int64_t at;
} cached;

typedef struct pull {
  uint8_t id[GV_MSG_ID_BYTES];
  gv_linkid from[MAX_ANNOUNCERS];
  int n_from, tries;
  gv_linkid asked; /* where the last IWANT went (0: none yet) */
  int64_t deadline;
} pull;

typedef struct route {
  uint8_t id[GV_MSG_ID_BYTES];
  gv_linkid link;
  int64_t until;
} route;

typedef struct uptake { /* a link this node's newest record went out on */
  gv_linkid link;
  bool confirmed; /* it sent the record's id back (IHAVE) */
} uptake;

typedef struct pending_id { /* an IHAVE or IWANT entry awaiting flush */
  gv_linkid link;
  uint8_t id[GV_MSG_ID_BYTES];
} pending_id;

/* A FIFO of pointers (expiry order). */
typedef struct fifo {
  void **items;
  uint32_t head, len, cap;
} fifo;

struct gv_engine {
  /* The configuration's constant part: the per-node members below are
   * cleared in it (cfg_shared()), so that the simulator's engines share one
   * copy through cfg.bodies. Never written. */
  const gv_engine_cfg *cfg;
  /* What this node says about itself (cfg's broadcasting, bootstrap,
   * addrs; gv_engine_set_broadcast() changes them). addrs: n_addrs, NULL
   * when none. */
  bool broadcasting, bootstrap;
  uint8_t n_addrs;
  /* (with the small members of this node's state below: no padding) */
  uint8_t self_n_repos;
  uint8_t self_n_relays; /* none while broadcasting */
  uint16_t self_tport;   /* named only while broadcasting */
  gv_addr *addrs;
  const gv_identity *id;
  gv_rng rng;
  int64_t now, wall_offset;
  uint64_t seq;         /* the last one signed */
  uint64_t seq_ceiling; /* reserved: durable before any seq above it */
  gv_engine_stats stats;

  /* this node's own state and latest signed record */
  char *self_repos;                    /* packed, as gv_peer_entry.repos */
  uint8_t (*self_relays)[GV_ID_BYTES]; /* self_n_relays; NULL: none */
  char *self_body;
  gv_msg_type self_type;
  uint32_t self_len; /* self_body's; its signature follows it (signed_sig) */
  uint64_t self_seq;
  uint8_t self_id[GV_MSG_ID_BYTES]; /* the record's message id */
  uptake *up;                       /* its uptake by the links of the time */
  uint32_t n_up, cap_up;
  int64_t uptake_until; /* leaving links are released then */

  elink *links;
  uint32_t n_links, cap_links;
  gv_idtab table;
  entry **entries; /* dense, for iteration */
  uint32_t n_entries, cap_entries;
  cand *cands;
  uint32_t n_cands, cap_cands;
  dialing *dials;
  uint32_t n_dials, cap_dials;

  gv_idtab dedup; /* id -> expiry boxed in the fifo item */
  fifo dedup_q;
  gv_idtab cache;
  fifo cache_q;
  gv_idtab pulls;
  gv_idtab routes;
  fifo route_q;

  pending_id *lazy, *wants;
  uint32_t n_lazy, cap_lazy, n_wants, cap_wants;

  gv_actq acts;
  gv_msg *report; /* the response behind a REPORT, until the next call */

  int64_t next_maint, next_sweep, next_hb, next_shuffle;

  /* cfg.guards with a valid guard cfg; NULL otherwise (a broadcasting
   * simulated node saves its 944 bytes) */
  gv_guards *guards;
  int64_t next_guards; /* the next guard round */
};

/* ---- small helpers ---- */

/* Returns p grown to hold need items (oom.h: never NULL). */
static void *grow(void *p, uint32_t *cap, size_t need, size_t size) {
  uint32_t c = *cap ? *cap : 4;
  if (need <= *cap)
    return p;
  while (c < need)
    c *= 2;
  p = gv__blk_grow(p, *cap * size, c * size);
  *cap = c;
  return p;
}

static void fifo_push(fifo *f, void *item) {
  if (f->len == f->cap) {
    uint32_t cap = f->cap ? f->cap * 2 : 2; /* most hold one or two */
    void **items = gv__blk_alloc(cap * sizeof(void *));
    for (size_t i = 0; i < f->len; i++)
      items[i] = f->items[(f->head + i) % f->cap];
    gv__blk_free(f->items, f->cap * sizeof(void *));
    f->items = items;
    f->cap = cap;
    f->head = 0;
  }
  f->items[(f->head + f->len) % f->cap] = item;
  f->len++;
}

static void *fifo_peek(const fifo *f) {
  return f->len ? f->items[f->head] : NULL;
}

static void *fifo_pop(fifo *f) {
  void *it;
  if (f->len == 0)
    return NULL;
  it = f->items[f->head];
  f->head = (f->head + 1) % f->cap;
  f->len--;
  return it;
}

/* gv_idtab_put fails only when out of memory (oom.h). */
static void map_put(gv_idtab *m, void *val) {
  if (gv_idtab_put(m, val) < 0)
    abort();
}

/* A signed body (a record, a cached message, this node's record) is kept
 * in its kept form (proto/msg.h, gv_kept_new()): the body, a NUL, its
 * signature (signed_sig()), then from gv_kept_tail_at() a record's
 * addresses, relays and repositories. The caller's shared pool's copy when
 * it gave one (cfg.bodies), else the engine's own. Never written once
 * made. */
static const uint8_t *signed_sig(const char *body, size_t len) {
  return (const uint8_t *)body + len + 1;
}

/* m's kept form: the pool's string that decoding lent m (the simulator's
 * memo), else one made now, and the pool's copy of it if there is a pool.
 * An entry holding this node's record and this node's own copy are then
 * one string. */
static char *kept_copy(gv_engine *e, const gv_msg *m) {
  gv_intern *pool = e->cfg->bodies;
  const char *b;
  size_t n;
  char *s;

  if (pool != NULL && m->kept != NULL && m->memo == gv_intern_memo(pool))
    return gv__xcheck((char *)gv_intern_ref(pool, m->kept));
  s = gv__xcheck(gv_kept_new(m, &n));
  if (pool == NULL)
    return s;
  b = gv__xcheck((char *)gv_intern_get(pool, s, n));
  free(s);
  return (char *)b;
}

static void body_drop(gv_engine *e, char *b) {
  if (e->cfg->bodies != NULL)
    gv_intern_drop(e->cfg->bodies, b);
  else
    free(b);
}

static bool is_self(const gv_engine *e, const uint8_t *id) {
  return memcmp(id, e->id->pk, GV_ID_BYTES) == 0;
}

static elink *link_find(gv_engine *e, gv_linkid id) {
  for (size_t i = 0; i < e->n_links; i++)
    if (e->links[i].id == id)
      return &e->links[i];
  return NULL;
}

static elink *link_to(gv_engine *e, const uint8_t *peer) {
  for (size_t i = 0; i < e->n_links; i++)
    if (memcmp(e->links[i].peer, peer, GV_ID_BYTES) == 0)
      return &e->links[i];
  return NULL;
}

/* ---- actions ---- */

static gv_action *push_act(gv_engine *e, gv_act_type type) {
  return gv_actq_push(&e->acts, type);
}

static void drop_report(gv_engine *e);

bool gv_engine_next(gv_engine *e, gv_action *a) {
  if (gv_actq_empty(&e->acts)) {
#ifdef GV_DEBUG
    gv_why why;
    if (gv_engine_check(e, &why) < 0)
      gv__invariant_failed(why.text, __FILE__, __LINE__);
#endif
    drop_report(e); /* its REPORT has been drained */
  }
  return gv_actq_pop(&e->acts, a);
}

static void send_buf(gv_engine *e, elink *l, gv_buf *b, gv_msg_type type,
                     bool payload) {
  gv_action *a = push_act(e, GV_ACT_SEND);
  a->link = l->id;
  a->buf = b;
  gv_buf_ref(b);
  e->stats.msgs_out[type]++;
  e->stats.bytes_out += b->len;
  if (payload)
    e->stats.payload_out++;
}

/* IHAVE and IWANT: one-hop messages on the gossip channel. */
static void send_ids_msg(gv_engine *e, elink *l, const gv_msg *m) {
  gv_buf *b = gv_chan_msg(GV_CHAN_GOSSIP, m);
  if (b == NULL)
    abort(); /* only out of memory: our own messages always encode */
  send_buf(e, l, b, m->type, false);
  gv_buf_unref(b);
}

/* Gossip no longer needs link l and forgets it; the link core closes it
 * unless another service holds it. The last link moves into l's slot. */
static void release_link(gv_engine *e, elink *l) {
  gv_action *a = push_act(e, GV_ACT_RELEASE);
  entry *en = gv_idtab_get(&e->table, l->peer);
  a->link = l->id;
  if (en != NULL)
    en->pub.connected = false;
  *l = e->links[--e->n_links];
}

static int64_t wall(const gv_engine *e) { return e->now + e->wall_offset; }

static void persist(gv_engine *e, const uint8_t *id, const entry *en) {
  gv_action *a = push_act(e, GV_ACT_PERSIST);
  memcpy(a->peer, id, GV_ID_BYTES);
  a->entry = en != NULL ? &en->pub : NULL;
  a->at = en != NULL ? gv_engine_wall(e, en->pub.last_seen) : 0;
}

/* ---- peer table (§4) ---- */

const uint8_t *gv_peer_entry_sig(const gv_peer_entry *p) {
  return signed_sig(p->body, p->body_len);
}

const gv_addr *gv_peer_entry_addrs(const gv_peer_entry *p) {
  if (p->n_addrs == 0)
    return NULL;
  return (const gv_addr *)(const void *)(p->body +
                                         gv_kept_tail_at(p->body_len));
}

const uint8_t (*gv_peer_entry_relays(const gv_peer_entry *p))[GV_ID_BYTES] {
  if (p->n_relays == 0)
    return NULL;
  return (const uint8_t(*)[GV_ID_BYTES])(
      const void *)(p->body + gv_kept_tail_at(p->body_len) +
                    p->n_addrs * sizeof(gv_addr));
}

bool gv_peer_entry_has_repo(const gv_peer_entry *p, const char *name) {
  const char *r = p->repos;
  for (int i = 0; i < p->n_repos; i++, r += strlen(r) + 1)
    if (strcmp(r, name) == 0)
      return true;
  return false;
}

static double entry_score(const entry *en) {
  return (en->pub.availability + en->pub.performance) / 2.0;
}

static void entry_free(gv_engine *e, entry *en) {
  body_drop(e, en->pub.body); /* and the addrs, relays, repos in it */
  free(en);
}

static bool persists(const gv_action *a, const void *en) {
  return a->type == GV_ACT_PERSIST && a->entry == en;
}

static void table_remove(gv_engine *e, size_t i, bool tell) {
  entry *en = e->entries[i];
  /* A queued upsert of this entry would point at freed memory; the delete
   * below supersedes it. */
  gv_actq_cancel(&e->acts, persists, &en->pub);
  gv_idtab_del(&e->table, en->pub.id);
  e->entries[i] = e->entries[--e->n_entries];
  if (tell)
    persist(e, en->pub.id, NULL);
  entry_free(e, en);
}

/* Makes room for one entry: evicts the lowest-scored unlinked entry. */
static bool table_room(gv_engine *e) {
  size_t worst = SIZE_MAX;
  if (e->n_entries < e->cfg->table_cap)
    return true;
  for (size_t i = 0; i < e->n_entries; i++) {
    entry *en = e->entries[i];
    /* Never a linked peer, nor a guard: a flood of fresh records must
     * not push the guards out. */
    if (en->pub.connected ||
        (e->guards != NULL && gv_guards_has(e->guards, en->pub.id)))
      continue;
    if (worst == SIZE_MAX || entry_score(en) < entry_score(e->entries[worst]))
      worst = i;
  }
  if (worst == SIZE_MAX)
    return false;
  table_remove(e, worst, true);
  return true;
}

/* Copies a validated record into en (the compact form). */
static void entry_set_record(gv_engine *e, entry *en, const gv_msg *rec) {
  const gv_peer_state *p = &rec->u.peer;
  char *s = kept_copy(e, rec);

  body_drop(e, en->pub.body);
  en->pub.body = s;
  en->pub.body_len = (uint32_t)rec->body_len;
  /* What the kept form holds (IP rule, §8): a broadcasting origin's
   * addresses, a silent one's relays. */
  en->pub.n_addrs = p->broadcasting ? p->n_addrs : 0;
  en->pub.n_relays = p->broadcasting ? 0 : p->n_relays;
  en->pub.repos = p->n_repos > 0 ? s + gv_kept_tail_at(rec->body_len) +
                                       en->pub.n_addrs * sizeof(gv_addr) +
                                       en->pub.n_relays * GV_ID_BYTES
                                 : NULL;
  en->pub.n_repos = p->n_repos;
  en->pub.broadcasting = p->broadcasting;
  en->pub.bootstrap = p->bootstrap;
  en->pub.tport = p->broadcasting ? p->tport : 0;
  en->pub.seq = rec->seq;
  en->pub.type = rec->type;
}

/* Applies an origin-signed record (§4): newest seq wins. seen_at is the
 * evidence of life it brings. Returns true if the table took it. */
static bool table_apply(gv_engine *e, const gv_msg *rec, int64_t seen_at) {
  entry *en;

  if (is_self(e, rec->origin))
    return false;
  en = gv_idtab_get(&e->table, rec->origin);
  if (en != NULL && rec->seq <= en->pub.seq)
    return false;
  if (en == NULL) {
    if (!table_room(e))
      return false;
    en = gv__xcalloc(1, sizeof(*en));
    memcpy(en->pub.id, rec->origin, GV_ID_BYTES);
    en->pub.availability = 50;
    en->pub.performance = 50;
    en->pub.connected = link_to(e, rec->origin) != NULL;
    en->first_seen = e->now;
    e->entries =
        grow(e->entries, &e->cap_entries, e->n_entries + 1, sizeof(entry *));
    map_put(&e->table, en);
    e->entries[e->n_entries++] = en;
  }
  entry_set_record(e, en, rec);
  if (seen_at > en->pub.last_seen)
    en->pub.last_seen = seen_at < e->now ? seen_at : e->now;
  /* A seed known by address alone is this node, if it advertises that
   * address: then it is not dialed while linked (a node that dialed us
   * first must not be dialed back as a stranger). The claim is anyone's:
   * it never pins a dial nor names a trusted seed (id_linked does). */
  for (size_t i = 0; i < e->n_cands; i++)
    for (int k = 0; !e->cands[i].has_id && k < en->pub.n_addrs; k++)
      if (gv_addr_equal(&e->cands[i].addr, &gv_peer_entry_addrs(&en->pub)[k])) {
        e->cands[i].has_id = true;
        memcpy(e->cands[i].id, en->pub.id, GV_ID_BYTES);
      }
  persist(e, en->pub.id, en);
  return true;
}

static void table_touch(gv_engine *e, const uint8_t *id) {
  entry *en = gv_idtab_get(&e->table, id);
  if (en != NULL)
    en->pub.last_seen = e->now;
}

/* ---- dedup (§2.3) ---- */

typedef struct dedup_item {
  uint8_t id[GV_MSG_ID_BYTES];
  int64_t until;
} dedup_item;

static int seen_probe(void *ctx, const uint8_t id[GV_MSG_ID_BYTES]) {
  gv_engine *e = ctx;
  if (gv_idtab_get(&e->dedup, id) != NULL) {
    e->stats.dedup_hits++;
    return 1;
  }
  return 0;
}

static void dedup_add(gv_engine *e, const uint8_t *id) {
  dedup_item *it;

  if (gv_idtab_get(&e->dedup, id) != NULL)
    return; /* one queue entry per id: the queue owns the items */
  if (e->dedup_q.len >= e->cfg->dedup_cap) {
    dedup_item *old = fifo_pop(&e->dedup_q);
    gv_idtab_del(&e->dedup, old->id);
    free(old);
    e->stats.dedup_evictions++;
  }
  it = gv__xmalloc(sizeof(*it));
  memcpy(it->id, id, GV_MSG_ID_BYTES);
  it->until = e->now + e->cfg->dedup_ms;
  map_put(&e->dedup, it);
  fifo_push(&e->dedup_q, it);
}

/* ---- cache for IWANT ---- */

static void cache_drop_oldest(gv_engine *e) {
  cached *c = fifo_pop(&e->cache_q);
  gv_idtab_del(&e->cache, c->id);
  body_drop(e, c->body);
  free(c);
}

static void cache_add(gv_engine *e, const gv_msg *m, uint32_t ttl,
                      uint32_t hops) {
  cached *c;

  if (e->cfg->cache_cap == 0 || gv_idtab_get(&e->cache, m->id) != NULL)
    return;
  if (e->cache_q.len >= e->cfg->cache_cap)
    cache_drop_oldest(e);
  c = gv__xcalloc(1, sizeof(*c));
  c->body = kept_copy(e, m); /* a record: one string with the table's */
  c->sig = signed_sig(c->body, m->body_len);
  memcpy(c->id, m->id, GV_MSG_ID_BYTES);
  c->type = m->type;
  c->ttl = (uint8_t)ttl;
  c->hops = (uint8_t)hops;
  c->at = e->now;
  map_put(&e->cache, c);
  fifo_push(&e->cache_q, c);
}

/* Encodes a gossip message for sending with the given hop fields: the
 * whole plaintext, channel byte first. */
static gv_buf *encode_gossip(gv_msg_type type, const char *body,
                             const uint8_t *sig, uint32_t ttl, uint32_t hops) {
  gv_msg tmp;
  char stack[ENCODE_STACK], *out;
  size_t len;

  memset(&tmp, 0, sizeof(tmp));
  tmp.type = type;
  tmp.ttl = ttl;
  tmp.hops = hops;
  tmp.body = (char *)body;
  memcpy(tmp.sig, sig, GV_SIG_BYTES);
  if (gv_msg_encode_gossip_in(&tmp, stack, sizeof(stack), &out, &len) < 0)
    abort(); /* only out of memory: the body was validated or ours */
  return chan_out(GV_CHAN_GOSSIP, out, len, stack);
}

/* ---- batches of ids (IHAVE, IWANT) ---- */

static void queue_id(pending_id **arr, uint32_t *n, uint32_t *cap,
                     gv_linkid link, const uint8_t *id) {
  pending_id *p = grow(*arr, cap, *n + 1, sizeof(pending_id));
  *arr = p;
  p[*n].link = link;
  memcpy(p[*n].id, id, GV_MSG_ID_BYTES);
  (*n)++;
}

static void flush_ids(gv_engine *e, pending_id *arr, uint32_t *n,
                      gv_msg_type type) {
  for (size_t i = 0; i<e->n_links && * n> 0; i++) {
    elink *l = &e->links[i];
    gv_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    for (size_t j = 0; j < *n; j++) {
      if (arr[j].link != l->id)
        continue;
      memcpy(m.u.ids.ids[m.u.ids.n++], arr[j].id, GV_MSG_ID_BYTES);
      if (m.u.ids.n == GV_MAX_IDS) {
        send_ids_msg(e, l, &m);
        m.u.ids.n = 0;
      }
    }
    if (m.u.ids.n > 0)
      send_ids_msg(e, l, &m);
  }
  *n = 0;
}

/* Arrays are released once empty: an idle engine holds none of its peak
 * (the simulator keeps a million idle engines). */
static void release_empty(void **arr, uint32_t n, uint32_t *cap, size_t size) {
  if (n == 0 && *cap > 0) {
    gv__blk_free(*arr, *cap * size);
    *arr = NULL;
    *cap = 0;
  }
}

/* ---- dissemination (§2) ---- */

static bool is_flooded(gv_msg_type t) {
  return t == GV_MSG_PEER_ANNOUNCEMENT || t == GV_MSG_PEER_UPDATE ||
         t == GV_MSG_PEER_REQUEST || t == GV_MSG_HEARTBEAT;
}

static bool is_repaired(gv_msg_type t) {
  return t == GV_MSG_PEER_ANNOUNCEMENT || t == GV_MSG_PEER_UPDATE ||
         t == GV_MSG_PEER_REQUEST;
}

static bool announced_by(const pull *p, gv_linkid link) {
  for (int i = 0; p != NULL && i < p->n_from; i++)
    if (p->from[i] == link)
      return true;
  return false;
}

/* Eager push to `fanout` links by score-weighted choice, then lazy push of
 * the id to the rest, with the given outgoing hop fields. src is the link it
 * came on (0: we are the origin). Links known to hold the message (they
 * announced it) get neither: after a pull, the eager push reaches only
 * neighbours that have shown no sign of having it, which re-ignites a wave
 * that died (its eager targets crashed) at little cost otherwise. */
static void disseminate(gv_engine *e, const gv_msg *m, uint32_t ttl,
                        uint32_t hops, gv_linkid src, gv_linkid skip,
                        const pull *known) {
  elink *pick[64];
  double w[64], total = 0;
  size_t n = 0;
  /* A neighbour that announced the id holds it and pushes it on: once one
   * has, push to fanout_announced targets (EXPERIMENTS.md weighs it). */
  unsigned want = known != NULL && known->n_from > 0 &&
                          e->cfg->fanout_announced < e->cfg->fanout
                      ? e->cfg->fanout_announced
                      : e->cfg->fanout;
  gv_buf *b = NULL;

  for (size_t i = 0; i < e->n_links && n < 64; i++) {
    elink *l = &e->links[i];
    if (l->id == src || l->id == skip || announced_by(known, l->id))
      continue;
    pick[n] = l;
    w[n] = 1.0 + fmax(l->score, 0.0);
    total += w[n++];
  }
  /* Weighted choice without replacement. */
  for (unsigned k = 0; k < want && n > 0; k++) {
    double r = gv_rng_unit(&e->rng) * total;
    size_t i = 0;
    while (i + 1 < n && r >= w[i])
      r -= w[i++];
    if (b == NULL)
      b = encode_gossip(m->type, m->body, m->sig, ttl, hops);
    send_buf(e, pick[i], b, m->type, true);
    total -= w[i];
    pick[i] = pick[n - 1];
    w[i] = w[n - 1];
    n--;
  }
  gv_buf_unref(b);
  if (e->cfg->repair && is_repaired(m->type))
    for (size_t i = 0; i < n; i++)
      queue_id(&e->lazy, &e->n_lazy, &e->cap_lazy, pick[i]->id, m->id);
}

/* ---- requests (§5) ---- */

static void route_add(gv_engine *e, const uint8_t *id, gv_linkid link) {
  route *r;
  if (gv_idtab_get(&e->routes, id) != NULL)
    return;
  r = gv__xmalloc(sizeof(*r));
  memcpy(r->id, id, GV_MSG_ID_BYTES);
  r->link = link;
  r->until = e->now + e->cfg->route_ms;
  map_put(&e->routes, r);
  fifo_push(&e->route_q, r);
}

/* The next seq (PROTOCOL.md §6.2): above the last one and above the
 * reserved floor, and at least the wall clock in ms, so that a node whose
 * store was lost still starts above its old numbers unless its clock is
 * behind. Crossing the ceiling reserves a new one first (SEQ_RESERVE
 * precedes every action that carries the seq). GV_ERANGE near 2^53. */
static int next_seq(gv_engine *e, uint64_t *out) {
  int64_t w = wall(e);
  uint64_t s = e->seq + 1;

  if (w > 0 && (uint64_t)w > s)
    s = (uint64_t)w;
  if (s > GV_SEQ_MAX)
    return GV_ERANGE;
  if (s > e->seq_ceiling) {
    gv_action *a = push_act(e, GV_ACT_SEQ_RESERVE);
    e->seq_ceiling =
        s <= GV_SEQ_MAX - GV_SEQ_BLOCK ? s + GV_SEQ_BLOCK : GV_SEQ_MAX;
    a->seq = e->seq_ceiling;
  }
  e->seq = s;
  *out = s;
  return 0;
}

/* Signs m as its origin (this node): sets body, id and sig. */
static int sign(gv_engine *e, gv_msg *m) {
  char *out;
  size_t len;
  int rc = gv_msg_seal_opt(m, e->id, e->cfg->stub_sigs, &out, &len);
  free(out);
  return rc;
}

static bool self_has_repo(const gv_engine *e, const char *name) {
  const char *r = e->self_repos;
  for (int i = 0; i < e->self_n_repos; i++, r += strlen(r) + 1)
    if (strcmp(r, name) == 0)
      return true;
  return false;
}

/* Packs n names into one allocation: "a\0b\0". */
static void pack_repos(gv_engine *e, const char (*repos)[GV_REPO_MAX + 1],
                       size_t n) {
  size_t len = 0;
  char *p, *w;

  for (size_t i = 0; i < n; i++)
    len += strlen(repos[i]) + 1;
  p = gv__xmalloc(len ? len : 1);
  w = p;
  for (size_t i = 0; i < n; i++) {
    size_t k = strlen(repos[i]) + 1;
    memcpy(w, repos[i], k);
    w += k;
  }
  free(e->self_repos);
  e->self_repos = p;
  e->self_n_repos = (uint8_t)n;
}

static void answer_request(gv_engine *e, const gv_msg *req, elink *back) {
  unsigned max = req->u.request.max, n = 0;
  gv_msg resp, *recs;
  gv_buf *b;

  /* On the heap, not the stack; only the entries used are zeroed. */
  recs = gv__xmalloc(max * sizeof(*recs));
  memset(&resp, 0, sizeof(resp));
  if (e->self_body != NULL && self_has_repo(e, req->u.request.repo)) {
    memset(&recs[n], 0, sizeof(recs[n]));
    recs[n].type = e->self_type;
    recs[n].body = e->self_body;
    memcpy(recs[n].sig, signed_sig(e->self_body, e->self_len), GV_SIG_BYTES);
    n++;
  }
  for (size_t i = 0; i < e->n_entries && n < max; i++) {
    entry *en = e->entries[i];
    if (memcmp(en->pub.id, req->origin, GV_ID_BYTES) == 0 ||
        !gv_peer_entry_has_repo(&en->pub, req->u.request.repo))
      continue;
    memset(&recs[n], 0, sizeof(recs[n]));
    recs[n].type = en->pub.type;
    recs[n].body = en->pub.body;
    memcpy(recs[n].sig, gv_peer_entry_sig(&en->pub), GV_SIG_BYTES);
    n++;
  }
  if (n == 0 || next_seq(e, &resp.seq) < 0) {
    free(recs);
    return;
  }
  resp.type = GV_MSG_PEER_LIST_RESPONSE;
  resp.ttl = e->cfg->ttl_request;
  resp.ts = wall(e);
  memcpy(resp.u.response.to, req->origin, GV_ID_BYTES);
  memcpy(resp.u.response.request, req->id, GV_MSG_ID_BYTES);
  resp.u.response.peers = recs;
  resp.u.response.n_peers = n;
  b = sign(e, &resp) == 0
          ? encode_gossip(resp.type, resp.body, resp.sig, resp.ttl, 0)
          : NULL;
  resp.u.response.peers = NULL; /* borrowed */
  resp.u.response.n_peers = 0;
  free(recs);
  if (b != NULL)
    dedup_add(e, resp.id); /* before the clear: it zeroes the id */
  gv_msg_clear(&resp);
  if (b != NULL) {
    send_buf(e, back, b, GV_MSG_PEER_LIST_RESPONSE, false);
    gv_buf_unref(b);
  }
}

static void drop_report(gv_engine *e) {
  if (e->report != NULL) {
    gv_msg_clear(e->report);
    free(e->report);
    e->report = NULL;
  }
}

static void on_response(gv_engine *e, gv_msg *m) {
  route *r;
  elink *l;
  gv_buf *b;

  if (is_self(e, m->u.response.to)) {
    gv_action *a;
    /* A record's ts (the origin's wall clock) is its evidence of life. */
    for (size_t i = 0; i < m->u.response.n_peers; i++)
      table_apply(e, &m->u.response.peers[i],
                  m->u.response.peers[i].ts - e->wall_offset);
    drop_report(e);
    e->report = gv__xmalloc(sizeof(*e->report));
    *e->report = *m; /* take ownership until the next call */
    memset(m, 0, sizeof(*m));
    a = push_act(e, GV_ACT_REPORT);
    memcpy(a->msg_id, e->report->u.response.request, GV_MSG_ID_BYTES);
    a->response = e->report;
    return;
  }
  /* Someone else's: back along the reverse path, never flooded. */
  r = gv_idtab_get(&e->routes, m->u.response.request);
  if (r == NULL || r->until < e->now || m->ttl <= 1 ||
      (l = link_find(e, r->link)) == NULL)
    return;
  b = encode_gossip(m->type, m->body, m->sig, m->ttl - 1, m->hops + 1);
  send_buf(e, l, b, m->type, false); /* reverse path, not flooded */
  gv_buf_unref(b);
}

/* First receipt of a valid gossip message (§2.1). */
static void on_gossip(gv_engine *e, elink *src, gv_msg *m) {
  pull *p = gv_idtab_del(&e->pulls, m->id);
  /* Repaired: the answer to our IWANT, not an eager copy that came first. */
  bool repaired = p != NULL && p->asked == src->id;
  elink *origin = NULL; /* the link to the origin, told of the uptake */
  gv_action *a;

  dedup_add(e, m->id);
  a = push_act(e, GV_ACT_DELIVER);
  memcpy(a->msg_id, m->id, GV_MSG_ID_BYTES);
  a->msg_type = m->type;
  a->hops = m->hops + 1;
  a->repaired = repaired;
  table_touch(e, m->origin);

  switch (m->type) {
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE:
    /* Uptake (PROTOCOL.md §6.7): a record taken into the table goes back
     * to its origin as one IHAVE, when a link to the origin is up; that
     * IHAVE replaces any push to the origin, which holds the record. */
    if (table_apply(e, m, e->now) && (origin = link_to(e, m->origin)) != NULL)
      queue_id(&e->lazy, &e->n_lazy, &e->cap_lazy, origin->id, m->id);
    break;
  case GV_MSG_HEARTBEAT: {
    entry *en = gv_idtab_get(&e->table, m->origin);
    if (en != NULL) {
      en->pub.availability += (100.0f - en->pub.availability) * 0.2f;
      en->last_hb = e->now;
    }
    break;
  }
  case GV_MSG_PEER_REQUEST:
    if (!is_self(e, m->origin)) {
      route_add(e, m->id, src->id);
      answer_request(e, m, src);
    }
    break;
  case GV_MSG_PEER_LIST_RESPONSE:
    on_response(e, m);
    free(p);
    return;
  default: break;
  }
  /* ttl counts the hops still allowed, this one included. */
  if (is_flooded(m->type) && m->ttl > 1) {
    if (e->cfg->repair && is_repaired(m->type))
      cache_add(e, m, m->ttl - 1, m->hops + 1);
    disseminate(e, m, m->ttl - 1, m->hops + 1, src->id,
                origin != NULL ? origin->id : 0, p);
  }
  free(p);
}

/* ---- pulls (§2.2) ---- */

/* Link l confirmed this node's newest record; a leaving link has done
 * its last duty and is let go (l is invalid afterwards). */
static void uptake_confirm(gv_engine *e, elink *l) {
  for (size_t i = 0; i < e->n_up; i++)
    if (e->up[i].link == l->id)
      e->up[i].confirmed = true;
  if (l->leaving)
    release_link(e, l);
}

static void on_ihave(gv_engine *e, elink *l, const gv_msg *m) {
  bool confirmed = false;

  for (size_t i = 0; i < m->u.ids.n; i++) {
    const uint8_t *id = m->u.ids.ids[i];
    pull *p;
    if (e->n_up > 0 && memcmp(id, e->self_id, GV_MSG_ID_BYTES) == 0)
      confirmed = true;
    if (gv_idtab_get(&e->dedup, id) != NULL)
      continue;
    p = gv_idtab_get(&e->pulls, id);
    if (p != NULL) {
      if (p->n_from < MAX_ANNOUNCERS && !announced_by(p, l->id))
        p->from[p->n_from++] = l->id;
      continue;
    }
    if (e->pulls.len >= e->cfg->pull_cap)
      continue; /* bounded; a later IHAVE will ask again */
    p = gv__xcalloc(1, sizeof(*p));
    memcpy(p->id, id, GV_MSG_ID_BYTES);
    p->from[p->n_from++] = l->id;
    p->deadline = e->now + e->cfg->pull_delay_ms;
    map_put(&e->pulls, p);
  }
  if (confirmed)
    uptake_confirm(e, l);
}

/* A cached message may still be handed out: a PEER_REQUEST only while
 * the reverse paths its answers need are alive (route_ms); pulled later,
 * it would be answered into paths that are gone. */
static bool servable(const gv_engine *e, const cached *c) {
  return c->type != GV_MSG_PEER_REQUEST || e->now - c->at < e->cfg->route_ms;
}

static void on_iwant(gv_engine *e, elink *l, const gv_msg *m) {
  for (size_t i = 0; i < m->u.ids.n; i++) {
    cached *c = gv_idtab_get(&e->cache, m->u.ids.ids[i]);
    gv_buf *b;
    if (c == NULL || !servable(e, c))
      continue;
    b = encode_gossip(c->type, c->body, c->sig, c->ttl, c->hops);
    send_buf(e, l, b, c->type, true);
    gv_buf_unref(b);
    e->stats.pulls_served++;
  }
}

static void run_pulls(gv_engine *e) {
  for (size_t i = 0; i < e->pulls.cap; i++) {
    pull *p = e->pulls.slots[i].val;
    elink *l = NULL;
    if (p == NULL || p->deadline > e->now)
      continue;
    for (int k = 0; k < p->n_from && l == NULL; k++)
      l = link_find(e, p->from[(p->tries + k) % p->n_from]);
    if (l == NULL || p->tries >= MAX_PULL_TRIES) {
      gv_idtab_del(&e->pulls, p->id);
      free(p);
      i--; /* backward shift may have moved another entry here */
      continue;
    }
    queue_id(&e->wants, &e->n_wants, &e->cap_wants, l->id, p->id);
    e->stats.pulls_sent++;
    p->asked = l->id;
    p->tries++;
    p->deadline = e->now + e->cfg->pull_delay_ms;
  }
}

/* ---- this node's record ---- */

/* This node's addresses become addrs[0..n). */
static void set_addrs(gv_engine *e, const gv_addr *addrs, size_t n) {
  free(e->addrs);
  e->addrs = NULL;
  e->n_addrs = (uint8_t)n;
  if (n > 0) {
    e->addrs = gv__xmalloc(n * sizeof(gv_addr));
    memcpy(e->addrs, addrs, n * sizeof(gv_addr));
  }
}

/* This node's relays become ids[0..n). */
static void set_relays(gv_engine *e, const uint8_t (*ids)[GV_ID_BYTES],
                       size_t n) {
  free(e->self_relays);
  e->self_relays = NULL;
  e->self_n_relays = (uint8_t)n;
  if (n > 0) {
    e->self_relays = gv__xmalloc(n * GV_ID_BYTES);
    memcpy(e->self_relays, ids, n * GV_ID_BYTES);
  }
}

/* Re-signs this node's record with a new seq; kind is ANNOUNCEMENT or
 * UPDATE. */
static int make_self_record(gv_engine *e, gv_msg_type kind, gv_msg *m) {
  char *out;
  size_t len;
  int rc;

  memset(m, 0, sizeof(*m));
  if ((rc = next_seq(e, &m->seq)) < 0)
    return rc;
  m->type = kind;
  m->ttl = e->cfg->ttl_announce;
  m->ts = wall(e);
  m->u.peer.broadcasting = e->broadcasting;
  m->u.peer.bootstrap = e->bootstrap;
  /* IP rule (§8): addresses never for a silent node. */
  m->u.peer.n_addrs = e->broadcasting ? e->n_addrs : 0;
  if (e->n_addrs > 0)
    memcpy(m->u.peer.addrs, e->addrs, e->n_addrs * sizeof(gv_addr));
  m->u.peer.repos = e->self_repos; /* packed alike; seal copies them */
  m->u.peer.n_repos = e->self_n_repos;
  /* Relays by id only, and only while silent (PROTOCOL.md §6.5). */
  m->u.peer.n_relays = e->broadcasting ? 0 : e->self_n_relays;
  if (e->self_n_relays > 0)
    memcpy(m->u.peer.relays, e->self_relays, e->self_n_relays * GV_ID_BYTES);
  m->u.peer.tport = e->broadcasting ? e->self_tport : 0;
  rc = gv_msg_seal_opt(m, e->id, e->cfg->stub_sigs, &out, &len);
  if (rc < 0)
    return rc;
  free(out);
  body_drop(e, e->self_body);
  e->self_body = kept_copy(e, m);
  e->self_len = (uint32_t)m->body_len;
  e->self_type = kind;
  e->self_seq = m->seq;
  memcpy(e->self_id, m->id, GV_MSG_ID_BYTES);
  return 0;
}

/* Floods a sealed message as its origin: the first hop receives the full
 * ttl and hops 0. */
static void originate(gv_engine *e, const gv_msg *m) {
  dedup_add(e, m->id);
  if (e->cfg->repair && is_repaired(m->type))
    cache_add(e, m, m->ttl, 0);
  disseminate(e, m, m->ttl, 0, 0, 0, NULL);
}

/* ---- timers ---- */

static bool guarded(const gv_engine *e);
static bool guard_wants_dial(const gv_engine *e);

static bool wants_dial(const gv_engine *e) {
  if (guarded(e))
    return guard_wants_dial(e);
  return e->n_links + e->n_dials < e->cfg->active_target &&
         (e->n_cands > 0 || e->n_entries > 0);
}

int64_t gv_engine_expiry(const gv_engine *e) {
  int64_t at = e->next_sweep;

  if (wants_dial(e) && e->next_maint < at)
    at = e->next_maint;
  if (e->cfg->heartbeat_ms > 0 && e->next_hb < at)
    at = e->next_hb;
  if (e->cfg->shuffle_ms > 0 && e->next_shuffle < at)
    at = e->next_shuffle;
  if (e->uptake_until > 0 && e->uptake_until < at)
    at = e->uptake_until;
  for (size_t i = 0; i < e->pulls.cap; i++) {
    pull *p = e->pulls.slots[i].val;
    if (p != NULL && p->deadline < at)
      at = p->deadline;
  }
  return at;
}

/* Every event ends here: flush the batches of ids. */
static void finish(gv_engine *e) {
  flush_ids(e, e->lazy, &e->n_lazy, GV_MSG_IHAVE);
  flush_ids(e, e->wants, &e->n_wants, GV_MSG_IWANT);
  release_empty((void **)&e->lazy, e->n_lazy, &e->cap_lazy, sizeof(pending_id));
  release_empty((void **)&e->wants, e->n_wants, &e->cap_wants,
                sizeof(pending_id));
  release_empty((void **)&e->dials, e->n_dials, &e->cap_dials, sizeof(dialing));
}

static void begin(gv_engine *e, int64_t now) {
  assert(now >= e->now && "the clock must never go backwards");
  if (now > e->now)
    e->now = now;
}

/* ---- membership (§3) ---- */

static bool dialing_to(const gv_engine *e, const uint8_t *id,
                       const gv_addr *addr) {
  for (size_t i = 0; i < e->n_dials; i++)
    if ((id != NULL && e->dials[i].has_id &&
         memcmp(e->dials[i].id, id, GV_ID_BYTES) == 0) ||
        (addr != NULL && gv_addr_equal(&e->dials[i].addr, addr)))
      return true;
  return false;
}

static void dial(gv_engine *e, const uint8_t *id, const gv_addr *addr) {
  gv_action *a;
  dialing *d;

  e->dials = grow(e->dials, &e->cap_dials, e->n_dials + 1, sizeof(dialing));
  d = &e->dials[e->n_dials++];
  memset(d, 0, sizeof(*d));
  d->has_id = id != NULL;
  if (id != NULL)
    memcpy(d->id, id, GV_ID_BYTES);
  d->addr = *addr;
  d->started = e->now;
  a = push_act(e, GV_ACT_DIAL);
  if (id != NULL)
    memcpy(a->peer, id, GV_ID_BYTES);
  a->addr = *addr;
}

/* Guards apply to a silent node only: a broadcasting one publishes its
 * address anyway. */
static bool guarded(const gv_engine *e) {
  return e->guards != NULL && !e->broadcasting;
}

/* A seed the operator named (--peer, config), whose id it gave or a link to
 * its address showed: who the operator trusts. Not a tracker answer (anyone
 * can register there) nor an id a record claimed by listing the address. */
static bool seed_named(const gv_engine *e, const uint8_t *id) {
  for (size_t i = 0; i < e->n_cands; i++) {
    const cand *c = &e->cands[i];
    if (c->by_operator && c->id_linked && memcmp(c->id, id, GV_ID_BYTES) == 0)
      return true;
  }
  return false;
}

static void guards_changed(gv_engine *e) { push_act(e, GV_ACT_GUARDS); }

/* One round of the guard policy over the table's broadcasting nodes. */
static void guards_update(gv_engine *e) {
  gv_guard_cand *gc = gv__xmalloc((e->n_entries + 1) * sizeof(*gc));
  size_t n = 0;

  /* A guard is reachable again once a link to it has lasted. */
  for (size_t i = 0; i < e->n_links; i++)
    if (e->now - e->links[i].up_at >= GUARD_STABLE_MS &&
        gv_guards_reached(e->guards, e->links[i].peer))
      guards_changed(e);

  for (size_t i = 0; i < e->n_entries; i++) {
    entry *en = e->entries[i];
    if (!en->pub.broadcasting || en->pub.n_addrs == 0)
      continue;
    gc[n].id = en->pub.id;
    /* Eligible at once: a bootstrap node the operator named, not one
     * that merely calls itself so in its record or that a tracker named. */
    gc[n].bootstrap = en->pub.bootstrap && seed_named(e, en->pub.id);
    gc[n].first_seen = en->first_seen;
    gc[n].score = entry_score(en);
    n++;
  }
  if (gv_guards_update(e->guards, gc, n, &e->rng, e->now))
    guards_changed(e);
  free(gc);
}

static bool dialable_entry(const gv_engine *e, const entry *en) {
  return en->pub.broadcasting && en->pub.n_addrs > 0 && !en->pub.connected &&
         en->next_try <= e->now && !dialing_to(e, en->pub.id, NULL);
}

static void dial_entry(gv_engine *e, const entry *en) {
  dial(e, en->pub.id,
       &gv_peer_entry_addrs(&en->pub)[gv_rng_below(&e->rng, en->pub.n_addrs)]);
}

static bool linked_to(const gv_engine *e, const uint8_t *peer) {
  for (size_t i = 0; i < e->n_links; i++)
    if (memcmp(e->links[i].peer, peer, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* A seed is dialed pinned to its id only when the operator gave the id or
 * a link to its address showed it: a record listing the address with
 * another id (a forged claim) must not make the real node unreachable. */
static const uint8_t *cand_pin(const cand *c) {
  return c->id_linked ? c->id : NULL;
}

static bool dialable_cand(const gv_engine *e, const cand *c) {
  return c->next_try <= e->now && !dialing_to(e, cand_pin(c), &c->addr) &&
         !(c->has_id && (linked_to(e, c->id) || is_self(e, c->id)));
}

/* A guarded node wants a dial when a guard is dialable, or when it has
 * too few guards and a seed to dial instead. */
static bool guard_wants_dial(const gv_engine *e) {
  if (e->n_links + e->n_dials >= e->cfg->active_target)
    return false;
  for (size_t i = 0; i < e->guards->n; i++) {
    const entry *en = gv_idtab_get(&e->table, e->guards->set[i].id);
    if (en != NULL && dialable_entry(e, en))
      return true;
  }
  /* Seeds in backoff count: the tick at the backoff's end dials them. */
  return e->guards->n < e->guards->cfg.count &&
         (e->n_cands > 0 || (e->n_links + e->n_dials == 0 && e->n_entries > 0));
}

/* Dials random seeds and/or broadcasting table entries until the active
 * view holds `target` links (or enough tries failed). */
static void dial_random(gv_engine *e, size_t target, bool seeds, bool entries) {
  size_t tries = 0, nc = seeds ? e->n_cands : 0;
  size_t total = nc + (entries ? e->n_entries : 0);

  while (e->n_links + e->n_dials < target && total > 0 && tries++ < 4 * total) {
    size_t k = gv_rng_below(&e->rng, total);
    if (k < nc) {
      cand *c = &e->cands[k];
      if (dialable_cand(e, c))
        dial(e, cand_pin(c), &c->addr);
    } else {
      entry *en = e->entries[k - nc];
      if (dialable_entry(e, en))
        dial_entry(e, en);
    }
  }
}

/* Dials random passive-view candidates until the active view holds
 * `target` links. A guarded node dials its guards, in order, and seeds
 * only while its set is short; a random table entry only when stranded. */
static void maintain(gv_engine *e, size_t target) {
  /* Dials the caller never answered are given up. */
  for (size_t i = 0; i < e->n_dials;)
    if (e->now - e->dials[i].started > DIAL_TIMEOUT_MS)
      e->dials[i] = e->dials[--e->n_dials];
    else
      i++;
  if (guarded(e)) {
    if (e->now >= e->next_guards) {
      guards_update(e);
      e->next_guards = e->now + GUARD_ROUND_MS;
    }
    for (size_t i = 0; i < e->guards->n && e->n_links + e->n_dials < target;
         i++) {
      entry *en = gv_idtab_get(&e->table, e->guards->set[i].id);
      if (en != NULL && dialable_entry(e, en))
        dial_entry(e, en);
    }
    /* Short of guards: the seeds (tracker, --peer) fill in. A random
     * table entry only when the node is stranded (no link, and no seed
     * it could dial: a restart from the cache alone, or its seeds went
     * silent), and then one at a time. */
    if (e->guards->n >= e->guards->cfg.count)
      return;
    dial_random(e, target, true, false);
    if (e->n_links + e->n_dials == 0)
      dial_random(e, 1, false, true);
    return;
  }
  dial_random(e, target, true, true);
}

void gv_engine_hello(gv_engine *e, gv_msg *hello, gv_msg *record) {
  hello->u.hello.seq = e->self_seq;
  if (e->self_body != NULL) {
    /* A view of the engine's record: its pointers stay the engine's. */
    record->type = e->self_type;
    record->body = e->self_body;
    memcpy(record->sig, signed_sig(e->self_body, e->self_len), GV_SIG_BYTES);
  }
}

/* The dial that produced a link is done; a seed dialed by address alone
 * now has an id, so it is never dialed again while linked (that was the
 * redial churn of a network of mutual --peer nodes). */
static void dial_done(gv_engine *e, const uint8_t *peer, const gv_addr *addr) {
  for (size_t i = 0; i < e->n_dials; i++) {
    dialing *d = &e->dials[i];
    if ((d->has_id && memcmp(d->id, peer, GV_ID_BYTES) == 0) ||
        (addr != NULL && gv_addr_equal(&d->addr, addr))) {
      e->dials[i] = e->dials[--e->n_dials];
      break;
    }
  }
  for (size_t i = 0; i < e->n_cands; i++) {
    cand *c = &e->cands[i];
    if (addr != NULL && !c->id_linked && gv_addr_equal(&c->addr, addr)) {
      c->has_id = true;
      c->id_linked = true;
      memcpy(c->id, peer, GV_ID_BYTES);
    }
  }
}

static size_t dialed_links(const gv_engine *e) {
  size_t n = 0;
  for (size_t i = 0; i < e->n_links; i++)
    n += e->links[i].dialed;
  return n;
}

bool gv_engine_link_up(gv_engine *e, gv_linkid link, const uint8_t *peer,
                       bool we_dialed, const gv_addr *addr, const gv_msg *hello,
                       int64_t now) {
  elink *l;
  entry *en;

  begin(e, now);
  if (we_dialed)
    dial_done(e, peer, addr);
  /* The peer's own record introduces it (PROTOCOL.md §6.4). */
  if (hello != NULL && hello->u.hello.record != NULL)
    table_apply(e, hello->u.hello.record, e->now);
  /* Gossip uses every inbound link a broadcasting node takes, and a dialed
   * one while it has fewer than active_max links in all (inbound links may
   * have filled the view while the dial ran). */
  if (is_self(e, peer) || link_to(e, peer) != NULL ||
      (!we_dialed && !e->broadcasting) ||
      (we_dialed && e->n_links >= e->cfg->active_max)) {
    finish(e);
    return false;
  }
  /* Linear growth: about ten links, at most active_max plus inbound, so
   * a few reallocations, and no doubled array mostly empty. */
  if (e->n_links == e->cap_links) {
    e->links = gv__blk_grow(e->links, e->cap_links * sizeof(elink),
                            (e->cap_links + LINKS_STEP) * sizeof(elink));
    e->cap_links += LINKS_STEP;
  }
  l = &e->links[e->n_links++];
  memset(l, 0, sizeof(*l));
  l->id = link;
  memcpy(l->peer, peer, GV_ID_BYTES);
  l->dialed = we_dialed;
  l->score = 50;
  l->up_at = e->now;
  if ((en = gv_idtab_get(&e->table, peer)) != NULL) {
    en->pub.connected = true;
    en->pub.last_seen = e->now;
  }
  /* Anti-entropy (§2.2): every servable cached id (the cache is bounded),
   * so a new neighbour can pull what it missed. */
  if (e->cfg->repair)
    for (size_t i = 0; i < e->cache_q.len; i++) {
      cached *c = e->cache_q.items[(e->cache_q.head + i) % e->cache_q.cap];
      if (servable(e, c))
        queue_id(&e->lazy, &e->n_lazy, &e->cap_lazy, l->id, c->id);
    }
  finish(e);
  return true;
}

/* Neither peer's table entry nor a seed with its id is dialed before
 * until. */
static void hold_off(gv_engine *e, const uint8_t *peer, int64_t until) {
  entry *en = gv_idtab_get(&e->table, peer);
  if (en != NULL)
    en->next_try = until;
  for (size_t i = 0; i < e->n_cands; i++)
    if (e->cands[i].id_linked && memcmp(e->cands[i].id, peer, GV_ID_BYTES) == 0)
      e->cands[i].next_try = until;
}

void gv_engine_link_down(gv_engine *e, gv_linkid link, int why, int64_t now) {
  elink *l;
  entry *en;

  begin(e, now);
  if ((l = link_find(e, link)) != NULL) {
    /* A link that lasted counts as a success; one that ended within
     * FLAP_MS (a HELLO refused at the far end, say) as a failed dial, so
     * a peer that keeps refusing this node backs off exponentially
     * instead of being redialed at once, over and over. */
    bool flapped = e->now - l->up_at < FLAP_MS;
    if ((en = gv_idtab_get(&e->table, l->peer)) != NULL) {
      en->pub.connected = false;
      en->failures = flapped ? en->failures + 1 : 0;
      en->next_try =
          e->now + gv_backoff_ms(&e->rng, BACKOFF_BASE_MS, BACKOFF_MAX_MS,
                                 (unsigned)en->failures + !flapped);
    }
    for (size_t i = 0; i < e->n_cands; i++) {
      cand *c = &e->cands[i];
      if (c->id_linked && memcmp(c->id, l->peer, GV_ID_BYTES) == 0) {
        if (!flapped)
          c->failures = 0;
        else
          c->next_try = e->now + gv_backoff_ms(&e->rng, BACKOFF_BASE_MS,
                                               BACKOFF_MAX_MS, cand_failed(c));
      }
    }
    /* A banned peer is not dialed again until its ban is over; a
     * duplicate's twin survives (it may still be saying HELLO), so a
     * redial would only make another duplicate. */
    if (why == GV_CLOSE_BANNED)
      hold_off(e, l->peer, e->now + e->cfg->banned_redial_ms);
    else if (guarded(e) && e->now - l->up_at < GUARD_STABLE_MS &&
             gv_guards_has(e->guards, l->peer)) {
      /* A guard that drops this node soon after taking it (a full node
       * evicting it for a newcomer, say) is not serving it: not redialed
       * at once (its evictees would take turns forever), and down until a
       * link to it lasts (guards_update). */
      hold_off(e, l->peer, e->now + GUARD_EVICTED_HOLD_MS);
      if (gv_guards_failed(e->guards, l->peer, e->now))
        guards_changed(e);
    } else if (why == GV_CLOSE_DUPLICATE)
      hold_off(e, l->peer, e->now + DUPLICATE_REDIAL_MS);
    *l = e->links[--e->n_links];
    e->next_maint = e->now; /* replace it */
  }
  finish(e);
}

void gv_engine_link_score(gv_engine *e, gv_linkid link, double score,
                          double performance, int64_t now) {
  elink *l;
  entry *en;

  begin(e, now);
  if ((l = link_find(e, link)) == NULL)
    return;
  l->score = score;
  if ((en = gv_idtab_get(&e->table, l->peer)) != NULL)
    en->pub.performance = (float)performance;
}

void gv_engine_dial_ended(gv_engine *e, const uint8_t *peer,
                          const gv_addr *addr, int why, int64_t now) {
  if (why != GV_CLOSE_DUPLICATE) {
    gv_engine_dial_failed(e, peer, addr, now);
    return;
  }
  /* The peer is reached by the twin that won; it may still be saying
   * HELLO, so do not dial it again meanwhile. */
  begin(e, now);
  dial_done(e, peer, addr);
  hold_off(e, peer, e->now + DUPLICATE_REDIAL_MS);
  finish(e);
}

void gv_engine_dial_failed(gv_engine *e, const uint8_t *peer,
                           const gv_addr *addr, int64_t now) {
  uint8_t pinned[GV_ID_BYTES];

  begin(e, now);
  for (size_t i = 0; i < e->n_dials; i++) {
    dialing *d = &e->dials[i];
    if ((peer != NULL && d->has_id && memcmp(d->id, peer, GV_ID_BYTES) == 0) ||
        (addr != NULL && gv_addr_equal(&d->addr, addr))) {
      /* A guarded node dials its guards by id; a failure reported by
       * address alone is still theirs (else the guard is redialed at
       * once, forever). */
      if (peer == NULL && d->has_id && guarded(e)) {
        memcpy(pinned, d->id, GV_ID_BYTES);
        peer = pinned;
      }
      e->dials[i] = e->dials[--e->n_dials];
      break;
    }
  }
  if (peer != NULL) {
    entry *en = gv_idtab_get(&e->table, peer);
    if (en != NULL)
      en->next_try =
          e->now + gv_backoff_ms(&e->rng, BACKOFF_BASE_MS, BACKOFF_MAX_MS,
                                 (unsigned)++en->failures);
    if (e->guards != NULL && gv_guards_failed(e->guards, peer, e->now))
      guards_changed(e);
  }
  for (size_t i = 0; i < e->n_cands; i++) {
    cand *c = &e->cands[i];
    if ((peer != NULL && c->id_linked &&
         memcmp(c->id, peer, GV_ID_BYTES) == 0) ||
        (addr != NULL && gv_addr_equal(&c->addr, addr)))
      c->next_try = e->now + gv_backoff_ms(&e->rng, BACKOFF_BASE_MS,
                                           BACKOFF_MAX_MS, cand_failed(c));
  }
  e->next_maint = e->now;
  finish(e);
}

/* ---- receiving ---- */

int gv_engine_recv(gv_engine *e, gv_linkid link, const uint8_t *data,
                   size_t len, int64_t now, gv_why *why) {
  gv_msg_policy pol;
  gv_msg m;
  elink *l;
  int rc = 0;

  begin(e, now);
  if ((l = link_find(e, link)) == NULL)
    goto out; /* not a link gossip holds: ignored */
  e->stats.bytes_in += len;
  memset(&pol, 0, sizeof(pol));
  pol.now_ms = wall(e);
  pol.seen = seen_probe;
  pol.seen_ctx = e;
  pol.trust_sigs = e->cfg->stub_sigs;
  pol.memo = e->cfg->bodies != NULL ? gv_intern_memo(e->cfg->bodies) : NULL;
  rc = gv_msg_decode(&m, data, len, &pol, why);
  if (rc == 0 && !gv_msg_is_gossip(m.type) && m.type != GV_MSG_IHAVE &&
      m.type != GV_MSG_IWANT)
    rc = gv_fail(why, GV_ETYPE, "%s on the gossip channel",
                 gv_msg_type_name(m.type));
  if (rc == GV_EDUP) {
    table_touch(e, l->peer);
    rc = 0;
  } else if (rc < 0) {
    e->stats.rejected++;
  } else {
    e->stats.msgs_in[m.type]++;
    table_touch(e, l->peer);
    switch (m.type) {
    case GV_MSG_IHAVE: on_ihave(e, l, &m); break;
    case GV_MSG_IWANT: on_iwant(e, l, &m); break;
    default: on_gossip(e, l, &m); break;
    }
  }
  gv_msg_clear(&m);
out:
  finish(e);
  return rc;
}

/* ---- timers ---- */

static void sweep(gv_engine *e) {
  dedup_item *d;
  cached *c;
  route *r;

  while ((d = fifo_peek(&e->dedup_q)) != NULL && d->until <= e->now) {
    fifo_pop(&e->dedup_q);
    gv_idtab_del(&e->dedup, d->id);
    free(d);
  }
  while ((c = fifo_peek(&e->cache_q)) != NULL &&
         c->at + e->cfg->cache_ms <= e->now)
    cache_drop_oldest(e);
  while ((r = fifo_peek(&e->route_q)) != NULL && r->until <= e->now) {
    fifo_pop(&e->route_q);
    gv_idtab_del(&e->routes, r->id);
    free(r);
  }
  for (size_t i = 0; i < e->n_entries;) {
    entry *en = e->entries[i];
    int64_t ttl = en->pub.bootstrap ? e->cfg->bootstrap_expiry_ms
                                    : e->cfg->peer_expiry_ms;
    if (!en->pub.connected && en->pub.last_seen + ttl <= e->now) {
      table_remove(e, i, true);
      continue;
    }
    /* Availability falls for every heartbeat interval missed. */
    if (e->cfg->heartbeat_ms > 0 && en->last_hb > 0 &&
        e->now - en->last_hb > 2 * e->cfg->heartbeat_ms)
      en->pub.availability *= 0.9f;
    i++;
  }
}

static void heartbeat(gv_engine *e) {
  gv_msg m;

  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_HEARTBEAT;
  m.ttl = e->cfg->ttl_heartbeat;
  m.ts = wall(e);
  if (next_seq(e, &m.seq) == 0 && sign(e, &m) == 0)
    originate(e, &m);
  gv_msg_clear(&m);
}

void gv_engine_tick(gv_engine *e, int64_t now) {
  begin(e, now);
  run_pulls(e);
  if (e->now >= e->next_maint) {
    maintain(e, e->cfg->active_target);
    e->next_maint = e->now + MAINT_MS;
  }
  /* Shuffle (§3): one extra link now and then keeps views mixing, so two
   * halves of a healed partition find each other again. */
  if (e->cfg->shuffle_ms > 0 && e->now >= e->next_shuffle) {
    if (e->n_links + e->n_dials < e->cfg->active_max && !guarded(e))
      maintain(e, e->n_links + e->n_dials + 1);
    e->next_shuffle = e->now + gv_jitter_ms(&e->rng, e->cfg->shuffle_ms);
  }
  if (e->cfg->heartbeat_ms > 0 && e->now >= e->next_hb) {
    heartbeat(e);
    e->next_hb = e->now + e->cfg->heartbeat_ms;
  }
  if (e->now >= e->next_sweep) {
    sweep(e);
    e->next_sweep = e->now + SWEEP_MS;
  }
  if (e->uptake_until > 0 && e->now >= e->uptake_until) {
    for (size_t i = 0; i < e->n_links;)
      if (e->links[i].leaving)
        release_link(e, &e->links[i]); /* the last link moved into slot i */
      else
        i++;
    e->uptake_until = 0;
  }
  finish(e);
}

void gv_engine_set_wall(gv_engine *e, int64_t offset) {
  e->wall_offset = offset;
}

int64_t gv_engine_wall(const gv_engine *e, int64_t t) {
  return t + e->wall_offset;
}

/* ---- local commands ---- */

static int flood_self(gv_engine *e, gv_msg_type kind, uint8_t *id) {
  gv_msg m;
  int rc = make_self_record(e, kind, &m);
  if (rc == 0) {
    originate(e, &m);
    /* Every link gets the record, eagerly or by pull: each is asked to
     * confirm it. */
    e->up = grow(e->up, &e->cap_up, e->n_links, sizeof(uptake));
    for (size_t i = 0; i < e->n_links; i++) {
      e->up[i].link = e->links[i].id;
      e->up[i].confirmed = false;
    }
    e->n_up = e->n_links;
    if (id != NULL)
      memcpy(id, m.id, GV_MSG_ID_BYTES);
  }
  gv_msg_clear(&m);
  return rc;
}

int gv_engine_announce(gv_engine *e, uint8_t *id, int64_t now) {
  int rc;
  begin(e, now);
  rc = flood_self(e, GV_MSG_PEER_ANNOUNCEMENT, id);
  finish(e);
  return rc;
}

int gv_engine_set_repos(gv_engine *e, const char (*repos)[GV_REPO_MAX + 1],
                        size_t n, int64_t now) {
  int rc;
  if (n > GV_MAX_REPOS)
    return GV_ELIMIT;
  for (size_t i = 0; i < n; i++)
    if (gv_repo_name_check(repos[i], strlen(repos[i])) < 0)
      return GV_EFIELD;
  begin(e, now);
  pack_repos(e, repos, n);
  rc = flood_self(e, GV_MSG_PEER_UPDATE, NULL);
  finish(e);
  return rc;
}

int gv_engine_set_broadcast(gv_engine *e, bool on, bool bootstrap,
                            const gv_addr *addrs, size_t n, int64_t now) {
  int rc;
  if (n > GV_MAX_ADDRS || (bootstrap && !on))
    return GV_EINVAL;
  begin(e, now);
  e->broadcasting = on;
  e->bootstrap = bootstrap;
  set_addrs(e, addrs, on ? n : 0);
  if (on) /* a broadcasting record names no relays */
    set_relays(e, NULL, 0);
  rc = flood_self(e, GV_MSG_PEER_UPDATE, NULL);
  /* A silent node keeps no inbound links: gossip lets each go once it has
   * confirmed the update, or after GV_UPTAKE_WAIT_MS (then the caller
   * tells the link core to stop accepting); maintenance dials out
   * instead. */
  for (size_t i = 0; i < e->n_links; i++)
    e->links[i].leaving = !on && !e->links[i].dialed;
  e->uptake_until = on ? 0 : e->now + GV_UPTAKE_WAIT_MS;
  finish(e);
  return rc;
}

int gv_engine_set_tport(gv_engine *e, uint16_t port, int64_t now) {
  int rc = 0;

  begin(e, now);
  if (port != e->self_tport) {
    e->self_tport = port;
    if (e->broadcasting)
      rc = flood_self(e, GV_MSG_PEER_UPDATE, NULL);
  }
  finish(e);
  return rc;
}

/* True if ids[0..n) and this node's relays are the same set. */
static bool same_relays(const gv_engine *e, const uint8_t (*ids)[GV_ID_BYTES],
                        size_t n) {
  if (n != e->self_n_relays)
    return false;
  for (size_t i = 0; i < n; i++) {
    bool found = false;
    for (size_t j = 0; !found && j < n; j++)
      found = memcmp(ids[i], e->self_relays[j], GV_ID_BYTES) == 0;
    if (!found)
      return false;
  }
  return true;
}

int gv_engine_set_relays(gv_engine *e, const uint8_t (*ids)[GV_ID_BYTES],
                         size_t n, int64_t now) {
  int rc = 0;

  if (e->broadcasting)
    return GV_ESTATE;
  if (n > GV_MAX_RELAYS)
    return GV_ELIMIT;
  for (size_t i = 0; i < n; i++) {
    if (is_self(e, ids[i]))
      return GV_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (memcmp(ids[i], ids[j], GV_ID_BYTES) == 0)
        return GV_EINVAL;
  }
  begin(e, now);
  if (!same_relays(e, ids, n)) {
    set_relays(e, ids, n);
    rc = flood_self(e, GV_MSG_PEER_UPDATE, NULL);
  }
  finish(e);
  return rc;
}

int gv_engine_request(gv_engine *e, const char *repo, unsigned max,
                      uint8_t *req_id, int64_t now) {
  gv_msg m;
  int rc;

  if (gv_repo_name_check(repo, strlen(repo)) < 0)
    return GV_EFIELD;
  if (max == 0 || max > GV_MAX_PEERS)
    return GV_ERANGE;
  begin(e, now);
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_PEER_REQUEST;
  m.ttl = e->cfg->ttl_request;
  m.ts = wall(e);
  snprintf(m.u.request.repo, sizeof(m.u.request.repo), "%s", repo);
  m.u.request.max = max;
  if ((rc = next_seq(e, &m.seq)) < 0 || (rc = sign(e, &m)) < 0) {
    gv_msg_clear(&m);
    finish(e);
    return rc;
  }
  if (req_id != NULL)
    memcpy(req_id, m.id, GV_MSG_ID_BYTES);
  originate(e, &m);
  gv_msg_clear(&m);
  finish(e);
  return 0;
}

void gv_engine_add_candidate(gv_engine *e, const uint8_t *peer,
                             const gv_addr *addr, bool by_operator,
                             int64_t now) {
  cand *c;

  begin(e, now);
  for (size_t i = 0; i < e->n_cands; i++)
    if (gv_addr_equal(&e->cands[i].addr, addr))
      goto out;
  if (e->n_cands >= e->cfg->table_cap)
    goto out;
  e->cands = grow(e->cands, &e->cap_cands, e->n_cands + 1, sizeof(cand));
  c = &e->cands[e->n_cands++];
  memset(c, 0, sizeof(*c));
  c->has_id = peer != NULL;
  c->id_linked = peer != NULL;
  c->by_operator = by_operator;
  if (peer != NULL)
    memcpy(c->id, peer, GV_ID_BYTES);
  c->addr = *addr;
  e->next_maint = e->now;
out:
  finish(e);
}

int gv_engine_restore(gv_engine *e, const char *body, size_t body_len,
                      const uint8_t sig[GV_SIG_BYTES], int64_t last_seen,
                      int64_t now) {
  gv_msg_policy pol;
  gv_msg m;
  int rc;

  begin(e, now);
  memset(&pol, 0, sizeof(pol));
  pol.now_ms = wall(e);
  pol.trust_sigs = e->cfg->stub_sigs;
  rc = gv_msg_decode_record(&m, body, body_len, sig, &pol, NULL);
  if (rc == 0)
    table_apply(e, &m, last_seen - e->wall_offset);
  gv_msg_clear(&m);
  finish(e);
  return rc;
}

int gv_engine_restore_guard(gv_engine *e, const gv_guard *saved, int64_t now) {
  gv_guard g = *saved;
  int rc;

  begin(e, now);
  if (e->guards == NULL) {
    rc = GV_ESTATE;
    goto out;
  }
  g.chosen_at -= e->wall_offset;
  g.expires_at -= e->wall_offset;
  if (g.down_since != 0)
    g.down_since -= e->wall_offset;
  rc = gv_guards_restore(e->guards, &g, e->now);
out:
  finish(e);
  return rc;
}

const gv_guard *gv_engine_guards(const gv_engine *e, size_t *n) {
  *n = guarded(e) ? e->guards->n : 0;
  return e->guards != NULL ? e->guards->set : NULL;
}

/* ---- construction ---- */

void gv_engine_cfg_default(gv_engine_cfg *c) {
  memset(c, 0, sizeof(*c));
  c->seed = 1;
  c->fanout = 3;
  c->fanout_announced = 2;
  c->ttl_announce = GV_TTL_ANNOUNCE;
  c->ttl_request = GV_TTL_REQUEST;
  c->ttl_heartbeat = GV_TTL_HEARTBEAT;
  c->repair = true;
  c->active_target = 5;
  c->active_max = 8;
  c->table_cap = 1024;
  c->dedup_cap = 65536;
  c->cache_cap = 1024;
  c->pull_cap = 1024;
  c->dedup_ms = 15 * 60000;
  c->cache_ms = GV_MSG_MAX_AGE_MS;
  c->pull_delay_ms = 250;
  c->heartbeat_ms = 30000;
  c->peer_expiry_ms = 2 * 3600000;
  c->bootstrap_expiry_ms = 3600000;
  c->route_ms = 60000;
  c->shuffle_ms = 60000;
  c->banned_redial_ms = 10 * 60000;
  c->guards = true;
  c->guard_min_age_ms = 3600000;
  c->guard_down_ms = 3600000;
  c->guard_life_min_ms = 30 * 24 * 3600000LL;
  c->guard_life_max_ms = 60 * 24 * 3600000LL;
}

/* The constant part of cfg: a copy with the per-node members cleared (the
 * PRNG seed, clock offset, seq floor, and what the node says about itself,
 * kept in the engine), taken from the shared pool when there is one
 * (cfg.bodies): engines configured alike hold one copy. Callers that start
 * from gv_engine_cfg_default() leave the padding zero, so alike is equal
 * bytes. Released by body_drop(). */
static const gv_engine_cfg *cfg_shared(const gv_engine_cfg *cfg) {
  gv_engine_cfg *c = gv__xmalloc(sizeof(*c));
  const char *kept;

  memcpy(c, cfg, sizeof(*c));
  c->seed = 0;
  c->wall_offset = 0;
  c->seq_floor = 0;
  c->broadcasting = c->bootstrap = false;
  c->n_addrs = 0;
  memset(c->addrs, 0, sizeof(c->addrs));
  c->n_repos = 0;
  c->repos = NULL; /* not retained */
  c->tport = 0;
  if (cfg->bodies == NULL)
    return c;
  /* The pool's strings are aligned for any object (intern.h). */
  kept = gv__xcheck(
      (char *)gv_intern_get(cfg->bodies, (const char *)c, sizeof(*c)));
  free(c);
  return (const gv_engine_cfg *)(const void *)kept;
}

int gv_engine_new(gv_engine **out, const gv_engine_cfg *cfg,
                  const gv_identity *id, int64_t now) {
  gv_engine *e = gv__xcalloc(1, sizeof(*e));
  gv_msg m;
  int rc;

  *out = NULL;
  if (cfg->fanout == 0 || cfg->bootstrap > cfg->broadcasting ||
      cfg->ttl_announce > GV_TTL_ANNOUNCE ||
      cfg->ttl_request > GV_TTL_REQUEST ||
      cfg->ttl_heartbeat > GV_TTL_HEARTBEAT || cfg->table_cap == 0 ||
      cfg->dedup_cap == 0 || cfg->n_repos > GV_MAX_REPOS ||
      cfg->n_addrs > GV_MAX_ADDRS || cfg->seq_floor > GV_SEQ_MAX) {
    free(e);
    return GV_EINVAL;
  }
  for (size_t i = 0; i < cfg->n_repos; i++)
    if (gv_repo_name_check(cfg->repos[i], strlen(cfg->repos[i])) < 0) {
      free(e);
      return GV_EFIELD;
    }
  /* A node that never dials on its own (active_target 0) needs none. */
  if (cfg->guards && (cfg->guard_count > 0 || cfg->active_target > 0)) {
    gv_guard_cfg gc = {
        .count = cfg->guard_count ? cfg->guard_count : cfg->active_target,
        .min_age_ms = cfg->guard_min_age_ms,
        .down_ms = cfg->guard_down_ms,
        .life_min_ms = cfg->guard_life_min_ms,
        .life_max_ms = cfg->guard_life_max_ms,
    };
    e->guards = gv__xmalloc(sizeof(*e->guards));
    if ((rc = gv_guards_init(e->guards, &gc)) < 0) {
      free(e->guards);
      free(e);
      return rc;
    }
  }
  e->cfg = cfg_shared(cfg);
  e->broadcasting = cfg->broadcasting;
  e->bootstrap = cfg->bootstrap;
  set_addrs(e, cfg->addrs, cfg->n_addrs);
  pack_repos(e, cfg->repos, cfg->n_repos);
  e->self_tport = cfg->tport;
  e->id = id;
  e->now = now;
  e->wall_offset = cfg->wall_offset; /* before the first record is signed */
  e->seq = e->seq_ceiling = cfg->seq_floor;
  gv_rng_seed(&e->rng, cfg->seed);
  e->next_maint = now;
  e->next_sweep = now + SWEEP_MS;
  e->next_hb =
      now +
      (cfg->heartbeat_ms > 0 ? gv_jitter_ms(&e->rng, cfg->heartbeat_ms) : 0);
  e->next_shuffle =
      now + (cfg->shuffle_ms > 0 ? gv_jitter_ms(&e->rng, cfg->shuffle_ms) : 0);
  {
    /* Map keys from the caller's seed, apart from the gossip PRNG's
     * stream: secret in a node (seeded from libsodium), reproducible in
     * the simulator. */
    uint8_t key[GV_IDMAP_KEY_BYTES];
    uint64_t x = cfg->seed ^ 0x6b65796b65796b65ULL, a = gv__splitmix64(&x),
             b = gv__splitmix64(&x);
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
    gv_idtab_init(&e->table, key, offsetof(entry, pub.id));
    gv_idtab_init(&e->dedup, key, offsetof(dedup_item, id));
    gv_idtab_init(&e->cache, key, offsetof(cached, id));
    gv_idtab_init(&e->pulls, key, offsetof(pull, id));
    gv_idtab_init(&e->routes, key, offsetof(route, id));
  }
  if ((rc = make_self_record(e, GV_MSG_PEER_ANNOUNCEMENT, &m)) < 0) {
    gv_msg_clear(&m);
    gv_engine_free(e);
    return rc;
  }
  gv_msg_clear(&m);
  *out = e;
  return 0;
}

static void free_map_values(gv_idtab *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->slots[i].val);
  gv_idtab_free(m);
}

void gv_engine_free(gv_engine *e) {
  if (e == NULL)
    return;
  gv_actq_free(&e->acts);
  for (size_t i = 0; i < e->n_entries; i++)
    entry_free(e, e->entries[i]);
  for (size_t i = 0; i < e->cache.cap; i++) {
    cached *c = e->cache.slots[i].val;
    if (c != NULL)
      body_drop(e, c->body);
  }
  free_map_values(&e->cache);
  free_map_values(&e->dedup);
  free_map_values(&e->pulls);
  free_map_values(&e->routes);
  gv_idtab_free(&e->table);
  free(e->dedup_q.items);
  free(e->cache_q.items);
  free(e->route_q.items);
  free(e->entries);
  gv__blk_free(e->links, e->cap_links * sizeof(elink));
  free(e->cands);
  free(e->dials);
  free(e->lazy);
  free(e->wants);
  free(e->up);
  body_drop(e, e->self_body);
  free(e->addrs);
  free(e->self_relays);
  free(e->self_repos);
  free(e->guards);
  drop_report(e);
  if (e->cfg->bodies != NULL) /* last: the drops above read it */
    gv_intern_drop(e->cfg->bodies, (const char *)e->cfg);
  else
    free((void *)e->cfg);
  free(e);
}

/* ---- inspection ---- */

const gv_engine_stats *gv_engine_stats_get(const gv_engine *e) {
  return &e->stats;
}

size_t gv_engine_table_size(const gv_engine *e) { return e->n_entries; }

size_t gv_engine_link_count(const gv_engine *e) { return e->n_links; }

void gv_engine_uptake(const gv_engine *e, size_t *confirmed, size_t *links) {
  *confirmed = 0;
  for (size_t i = 0; i < e->n_up; i++)
    *confirmed += e->up[i].confirmed;
  *links = e->n_up;
}

uint64_t gv_engine_record_seq(const gv_engine *e) { return e->self_seq; }

bool gv_engine_broadcasting(const gv_engine *e) { return e->broadcasting; }

const gv_peer_entry *gv_engine_table_at(const gv_engine *e, size_t i) {
  return i < e->n_entries ? &e->entries[i]->pub : NULL;
}

const gv_peer_entry *gv_engine_table_get(const gv_engine *e,
                                         const uint8_t *id) {
  entry *en = gv_idtab_get(&e->table, id);
  return en != NULL ? &en->pub : NULL;
}

int gv_engine_check(const gv_engine *e, gv_why *why) {
  if (e->n_entries > e->cfg->table_cap || e->table.len != e->n_entries)
    return gv_fail(why, GV_ELIMIT, "table holds %u entries, cap %u",
                   (unsigned)e->n_entries, e->cfg->table_cap);
  if (e->dedup_q.len > e->cfg->dedup_cap || e->dedup.len != e->dedup_q.len)
    return gv_fail(why, GV_ELIMIT, "dedup holds %u ids, cap %u",
                   (unsigned)e->dedup_q.len, e->cfg->dedup_cap);
  if (e->cache_q.len > e->cfg->cache_cap || e->pulls.len > e->cfg->pull_cap)
    return gv_fail(why, GV_ELIMIT, "cache %u / pulls %u over their caps",
                   (unsigned)e->cache_q.len, (unsigned)e->pulls.len);
  if (e->broadcasting && e->self_n_relays > 0)
    return gv_fail(why, GV_ESTATE, "broadcasting, yet %u relays named",
                   e->self_n_relays);
  if (e->seq > e->seq_ceiling || e->seq > GV_SEQ_MAX)
    return gv_fail(why, GV_ESTATE, "seq %llu above the reserved %llu",
                   (unsigned long long)e->seq,
                   (unsigned long long)e->seq_ceiling);
  for (size_t i = 0; i < e->n_links; i++)
    if (e->links[i].leaving &&
        (e->links[i].dialed || e->broadcasting || e->uptake_until == 0))
      return gv_fail(why, GV_ESTATE, "link %u leaving out of turn",
                     e->links[i].id);
  if (dialed_links(e) > e->cfg->active_max)
    return gv_fail(why, GV_ELIMIT, "%zu dialed links", dialed_links(e));
  for (size_t i = 0; i < e->n_entries; i++) {
    const gv_peer_entry *p = &e->entries[i]->pub;
    if (!p->broadcasting && p->n_addrs > 0)
      return gv_fail(why, GV_ESILENTADDR,
                     "table entry of a silent node holds an address");
    if (p->n_relays > GV_MAX_RELAYS || (p->broadcasting && p->n_relays > 0))
      return gv_fail(why, GV_ESTATE, "table entry holds %u relays%s",
                     p->n_relays, p->broadcasting ? " while broadcasting" : "");
  }
  for (size_t i = 0; i < e->n_links; i++)
    for (size_t j = i + 1; j < e->n_links; j++)
      if (memcmp(e->links[i].peer, e->links[j].peer, GV_ID_BYTES) == 0)
        return gv_fail(why, GV_ESTATE, "two links to one peer");
  return 0;
}

/* ---- the gossip service of the link core ---- */

static void svc_hello(void *ctx, gv_msg *hello, gv_msg *record) {
  gv_engine_hello(ctx, hello, record);
}

static bool svc_up(void *ctx, gv_linkid link, const uint8_t *peer, bool dialed,
                   const gv_addr *addr, const gv_msg *hello, int64_t now) {
  return gv_engine_link_up(ctx, link, peer, dialed, addr, hello, now);
}

static void svc_down(void *ctx, gv_linkid link, gv_close why, int64_t now) {
  gv_engine_link_down(ctx, link, (int)why, now);
}

static int svc_recv(void *ctx, gv_linkid link, const uint8_t *msg, size_t len,
                    int64_t now, gv_why *why) {
  return gv_engine_recv(ctx, link, msg, len, now, why);
}

static void svc_dial_ended(void *ctx, const uint8_t *peer, const gv_addr *addr,
                           gv_close why, int64_t now) {
  gv_engine_dial_ended(ctx, peer, addr, (int)why, now);
}

static void svc_score(void *ctx, const gv_link_info *info, int64_t now) {
  gv_engine_link_score(ctx, info->id, info->score, info->performance, now);
}

void gv_engine_service(gv_engine *e, gv_service *svc) {
  memset(svc, 0, sizeof(*svc));
  svc->ctx = e;
  svc->hello = svc_hello;
  svc->up = svc_up;
  svc->down = svc_down;
  svc->recv = svc_recv;
  svc->dial_ended = svc_dial_ended;
  svc->score = svc_score;
}

/* The simulator's virtual network. See net.h.
 *
 * Link ids: link k is 2k+1 on its dialer, 2k+2 on the other side. With
 * lanes, link k of lane u is link k * threads + u.
 * Node i's address is [2001:db8::<i>]:7411 (a documentation prefix; no
 * packet is ever sent). */
#include "net.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* EV_ACCEPT and EV_HANGUP occur with lanes only: the acceptor's end opens
 * in an event of its own, and a close reaches the peer's end as a hangup
 * (lanes, below). */
enum ev_kind {
  EV_FRAME,
  EV_UP,
  EV_DOWN,
  EV_TIMER,
  EV_DIAL_FAIL,
  EV_ACCEPT,
  EV_HANGUP
};

/* An event waiting in the pool. Its time is its bucket's (or, beyond the
 * window, its gv_sim_far entry's). */
struct gv_sim_ev {
  gv_buf *buf; /* EV_FRAME */
  uint32_t node;
  uint32_t arg;   /* link side id, or link index for EV_UP */
  uint32_t epoch; /* the node's incarnation when the event was made */
  uint32_t next;  /* the next in its bucket, or in the free list */
  uint8_t kind;
  bool lent; /* lanes: buf is the sending lane's, to read, never to drop */
};

/* An event beyond the window, ordered by (t, seq). */
struct gv_sim_far {
  int64_t t;
  uint64_t seq;
  uint32_t ev;
};

/* An event for another lane, waiting in its sender's outbox. */
struct gv_sim_xev {
  int64_t t;
  gv_buf *buf;
  uint32_t node, arg;
  uint8_t kind;
};

/* A frame another lane read from its sender's buffer, kept by the sender
 * until every lane is past t. */
struct gv_sim_lent {
  int64_t t;
  gv_buf *buf;
};

/* The lanes' threads and what they share (root only). next[p][u]: the
 * earliest event lane u holds or sent, published at the end of a window
 * of parity p. */
struct gv_sim_par {
  pthread_barrier_t bar;
  pthread_t th[GV_SIM_THREADS_MAX];
  int64_t next[2][GV_SIM_THREADS_MAX];
  uint64_t events[2][GV_SIM_THREADS_MAX]; /* as next: the lanes' counts */
  int job;               /* what the lanes do next (lanes, "jobs") */
  int64_t run_to;        /* JOB_RUN */
  uint32_t from, to, k;  /* JOB_ADD, JOB_SEED: nodes [from, to) */
  const uint32_t *cands; /* JOB_SEED: k candidates per node (or NIL) */
  bool running;
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

/* ---- the memory of hot blocks ----
 *
 * Every message decoded builds a cJSON tree of some 20 to 50 small blocks
 * and frees it at once; every frame is a buffer, freed where it arrives;
 * the engine's arrays grow by a block of the next size (the old one
 * freed) and are freed when empty. glibc keeps only 7 freed blocks of
 * a size at hand, so most went back through its bins (malloc and free
 * were a fifth of a run). The simulator gives cJSON
 * (cJSON_InitHooks) and the cores' hot blocks (gv_blk_set_hooks) free
 * lists by size class instead. The blocks are plain malloc blocks, sized
 * by malloc_usable_size(): what cJSON hands out (a printed text) may be
 * freed with free(), and what is freed here may have come from malloc.
 * The lists are per thread (lanes): a lane's blocks go back to its own
 * lists, whichever lane made them, and the lists hold at most CJ_KEEP
 * blocks a class and CJ_BYTES in all, beyond which free() takes them. */

#define CJ_GRAIN 16
#define CJ_CLASSES 64 /* blocks up to 1 KiB */
/* Blocks kept per class, and in all per thread: frames in flight swing by
 * tens of thousands during formation (at 1,024 and 4 MiB the lists ran
 * dry at 100k nodes and half the frames went through malloc again). */
#define CJ_KEEP 16384
#define CJ_BYTES ((size_t)32 << 20)

static _Thread_local struct {
  void *head[CJ_CLASSES + 1];
  uint32_t n[CJ_CLASSES + 1];
  size_t bytes; /* held in the lists */
} cj;

static void *cj_malloc(size_t n) {
  size_t c = (n + CJ_GRAIN - 1) / CJ_GRAIN;
  void *p;

  if (c > CJ_CLASSES)
    return malloc(n);
  if ((p = cj.head[c]) != NULL) {
    memcpy(&cj.head[c], p, sizeof(void *));
    cj.n[c]--;
    cj.bytes -= c * CJ_GRAIN;
    return p;
  }
  return malloc(c * CJ_GRAIN);
}

/* Files p, of class c, or frees it. */
static void cj_keep(void *p, size_t c) {
  if (c > CJ_CLASSES || cj.n[c] >= CJ_KEEP ||
      cj.bytes + c * CJ_GRAIN > CJ_BYTES) {
    free(p);
    return;
  }
  memcpy(p, &cj.head[c], sizeof(void *));
  cj.head[c] = p;
  cj.n[c]++;
  cj.bytes += c * CJ_GRAIN;
}

/* cJSON's: any block, sized by malloc (it serves any request up to it). */
static void cj_free(void *p) {
  if (p != NULL)
    cj_keep(p, malloc_usable_size(p) / CJ_GRAIN);
}

/* The cores': a block from cj_malloc(n), filed by n without asking malloc
 * (which reads the next block's header: a cache miss). */
static void cj_release(void *p, size_t n) {
  if (p != NULL)
    cj_keep(p, (n + CJ_GRAIN - 1) / CJ_GRAIN);
}

/* Frees this thread's lists (a lane's thread, before it ends). */
static void cj_drain(void) {
  for (size_t c = 0; c <= CJ_CLASSES; c++) {
    while (cj.head[c] != NULL) {
      void *p = cj.head[c];
      memcpy(&cj.head[c], p, sizeof(void *));
      free(p);
    }
    cj.n[c] = 0;
  }
  cj.bytes = 0;
}

static void cj_hooks(void) {
  static cJSON_Hooks hooks = {cj_malloc, cj_free};
  static const gv_blk_hooks blk = {cj_malloc, cj_release};
  cJSON_InitHooks(&hooks);
  gv_blk_set_hooks(&blk);
}

/* ---- the event queue: ordered by (t, insertion) ----
 *
 * Latencies and timers are whole milliseconds, so events wait in a ring of
 * one-ms buckets, each a FIFO, covering [cursor, cursor + WINDOW): pushing
 * appends to a bucket, popping takes the head of the first busy one, both
 * O(1), and an event is touched once more when it runs instead of log n
 * times in a heap far bigger than the cache. The cursor is the time of the
 * last event popped (never past s->now: every push is at s->now or later).
 *
 * Events beyond the window (bans, long timers) wait in a heap ordered by
 * (t, seq). Whenever the cursor moves, those the window now covers move
 * into their buckets, in heap order, before anything else can be pushed
 * at the new cursor: any event pushed straight into a bucket later has a
 * larger seq than all of them. So the order is exactly (t, insertion), as
 * with one heap, and runs are unchanged. */

#define WINDOW_MS ((int64_t)1 << 16)
#define SLOT(t) ((size_t)((uint64_t)(t) & (WINDOW_MS - 1)))
#define NIL UINT32_MAX

static void *xrealloc(void *p, size_t size) {
  p = realloc(p, size);
  if (p == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory (events)\n");
    exit(1);
  }
  return p;
}

static void queue_init(gv_sim *s) {
  s->head = xrealloc(NULL, WINDOW_MS * sizeof(uint32_t));
  s->tail = xrealloc(NULL, WINDOW_MS * sizeof(uint32_t));
  s->busy = xrealloc(NULL, WINDOW_MS / 64 * sizeof(uint64_t));
  memset(s->head, 0xff, WINDOW_MS * sizeof(uint32_t));
  memset(s->busy, 0, WINDOW_MS / 64 * sizeof(uint64_t));
  s->free_ev = NIL;
  s->cursor = s->now;
}

static void bucket_append(gv_sim *s, int64_t t, uint32_t k) {
  size_t b = SLOT(t);
  s->pool[k].next = NIL;
  if (s->head[b] == NIL) {
    s->head[b] = k;
    s->busy[b / 64] |= 1ULL << (b % 64);
  } else {
    s->pool[s->tail[b]].next = k;
  }
  s->tail[b] = k;
  s->n_near++;
}

static bool far_less(const gv_sim_far *x, const gv_sim_far *y) {
  return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void far_push(gv_sim *s, int64_t t, uint32_t k) {
  size_t i;
  if (s->n_far == s->cap_far) {
    s->cap_far = s->cap_far ? s->cap_far * 2 : 1024;
    s->far = xrealloc(s->far, s->cap_far * sizeof(*s->far));
  }
  i = s->n_far++;
  s->far[i] = (gv_sim_far){t, s->ev_seq, k};
  while (i > 0 && far_less(&s->far[i], &s->far[(i - 1) / 2])) {
    gv_sim_far tmp = s->far[i];
    s->far[i] = s->far[(i - 1) / 2];
    s->far[(i - 1) / 2] = tmp;
    i = (i - 1) / 2;
  }
}

static gv_sim_far far_pop(gv_sim *s) {
  gv_sim_far top = s->far[0];
  size_t i = 0;
  s->far[0] = s->far[--s->n_far];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->n_far && far_less(&s->far[l], &s->far[m]))
      m = l;
    if (r < s->n_far && far_less(&s->far[r], &s->far[m]))
      m = r;
    if (m == i)
      break;
    gv_sim_far tmp = s->far[i];
    s->far[i] = s->far[m];
    s->far[m] = tmp;
    i = m;
  }
  return top;
}

/* Returns the event's place in the pool. */
static uint32_t push(gv_sim *s, int64_t t, uint8_t kind, uint32_t node,
                     uint32_t arg, gv_buf *buf) {
  uint32_t k;

  if (s->free_ev != NIL) {
    k = s->free_ev;
    s->free_ev = s->pool[k].next;
  } else {
    if (s->n_pool == s->cap_pool) {
      if (s->cap_pool >= NIL / 2) {
        fprintf(stderr, "grapevine-sim: too many events pending\n");
        exit(1);
      }
      s->cap_pool = s->cap_pool ? s->cap_pool * 2 : 1024;
      s->pool = xrealloc(s->pool, s->cap_pool * sizeof(*s->pool));
    }
    k = s->n_pool++;
  }
  s->pool[k] =
      (gv_sim_ev){buf, node, arg, s->nodes[node].epoch, NIL, kind, false};
  if (t < s->cursor + WINDOW_MS)
    bucket_append(s, t, k);
  else
    far_push(s, t, k);
  s->ev_seq++;
  return k;
}

/* The time of the earliest event; false if there is none. The first busy
 * bucket from the cursor's, around the ring, holds it. */
static bool next_time(const gv_sim *s, int64_t *t) {
  size_t from = SLOT(s->cursor), w = from / 64;
  uint64_t bits = s->busy[w] & (~0ULL << (from % 64));

  if (s->n_near == 0) {
    if (s->n_far == 0)
      return false;
    *t = s->far[0].t;
    return true;
  }
  /* Round the ring; back at the cursor's word, its bits below the
   * cursor's are the last times of the window. */
  while (bits == 0) {
    w = (w + 1) % (WINDOW_MS / 64);
    bits = s->busy[w];
  }
  *t = s->cursor + (int64_t)((w * 64 + (size_t)__builtin_ctzll(bits) - from) &
                             (WINDOW_MS - 1));
  return true;
}

/* Moves the cursor to t (no event before it), and the far events the
 * window now covers into their buckets. */
static void advance(gv_sim *s, int64_t t) {
  s->cursor = t;
  while (s->n_far > 0 && s->far[0].t < s->cursor + WINDOW_MS) {
    gv_sim_far f = far_pop(s);
    bucket_append(s, f.t, f.ev);
  }
}

/* Each event reads memory of its node that no recent event touched: the
 * event, the node, its link core, the frame. While event e0 runs, the
 * next ones in its bucket are loaded in stages, each from what the stage
 * before brought in: e3's event, e2's node, e1's link core and frame. */
static void prefetch_after(const gv_sim *s, uint32_t e1) {
  const gv_sim_ev *p1, *p2;

  if (e1 == NIL)
    return;
  p1 = &s->pool[e1];
  if (p1->buf != NULL)
    __builtin_prefetch(p1->buf);
  gv_lcore_prefetch(s->nodes[p1->node].lc);
  if (p1->next == NIL)
    return;
  p2 = &s->pool[p1->next];
  __builtin_prefetch(&s->nodes[p2->node]);
  if (p2->next != NIL)
    __builtin_prefetch(&s->pool[p2->next]);
}

/* Pops the earliest event, at time t (from next_time()). */
static gv_sim_ev pop_at(gv_sim *s, int64_t t) {
  size_t b = SLOT(t);
  uint32_t k;
  gv_sim_ev ev;

  if (t != s->cursor)
    advance(s, t);
  k = s->head[b];
  ev = s->pool[k];
  s->head[b] = ev.next;
  if (ev.next == NIL)
    s->busy[b / 64] &= ~(1ULL << (b % 64));
  s->n_near--;
  s->pool[k].next = s->free_ev;
  s->pool[k].buf = NULL;
  s->free_ev = k;
  prefetch_after(s, ev.next);
  return ev;
}

/* ---- links ---- */

/* A lane's links sit in chunks that never move, because the other lanes
 * read them (a link's far end) while this one adds more. */
#define CHUNK_BITS 12
#define CHUNK ((uint32_t)1 << CHUNK_BITS)
#define CHUNKS_MAX ((uint32_t)1 << 16)

/* Link g (its ids are 2g+1 and 2g+2). */
static gv_sim_link *link_at(const gv_sim *s, uint32_t g) {
  const gv_sim *l;
  uint32_t k;

  if (s->threads == 1)
    return &s->links[g];
  l = s->root->lanes[g % s->threads];
  k = g / s->threads;
  return &l->chunks[k >> CHUNK_BITS][k & (CHUNK - 1)];
}

/* A new link of s (uninitialised); returns its index g. */
static uint32_t link_new(gv_sim *s) {
  uint32_t k = s->n_links;

  if (s->threads == 1) {
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
    return s->n_links++;
  }
  if (k >> CHUNK_BITS >= CHUNKS_MAX ||
      (uint64_t)k * s->threads + s->tid >= UINT32_MAX / 2) {
    fprintf(stderr, "grapevine-sim: too many links\n");
    exit(1);
  }
  if ((k & (CHUNK - 1)) == 0)
    s->chunks[k >> CHUNK_BITS] = xrealloc(NULL, CHUNK * sizeof(gv_sim_link));
  s->n_links++;
  return k * s->threads + s->tid;
}

/* Every link of every lane in a fixed order: start with *u = *k = 0;
 * NULL after the last. *g: the link's index. */
static gv_sim_link *link_iter(const gv_sim *r, uint32_t *u, uint32_t *k,
                              uint32_t *g) {
  for (;;) {
    const gv_sim *l = r->threads == 1 ? r : r->lanes[*u];
    if (*k < l->n_links) {
      *g = *k * r->threads + *u;
      (*k)++;
      return link_at(r, *g);
    }
    if (r->threads == 1 || ++*u == r->threads)
      return NULL;
    *k = 0;
  }
}

/* The up flag of side's end: one for both with one thread, its own with
 * lanes. */
static bool *up_of(const gv_sim *s, gv_sim_link *l, gv_linkid side) {
  return s->threads > 1 && side % 2 == 0 ? &l->up_b : &l->up;
}

/* Queues an event for node `node`: on s's own queue; with lanes, on the
 * node's lane's, at once between runs or through s's outbox during one
 * (t is then at least the lookahead ahead). A frame that crosses lanes
 * must not have its buffer touched by both: gv_buf's count is not atomic,
 * and a buffer is best freed by the thread (the malloc arena) that made
 * it. During a run the receiver reads the sender's buffer when the event
 * runs, without a reference of its own (lent), and the sender drops its
 * reference once every lane is past the event's time (release()); between
 * runs, when no lane runs, the receiver gets a copy unless s held the only
 * reference, which then goes with the event. */
static void post(gv_sim *s, int64_t t, uint8_t kind, uint32_t node,
                 uint32_t arg, gv_buf *buf) {
  gv_sim *to;
  unsigned u, p;

  if (s->threads == 1) {
    push(s, t, kind, node, arg, buf);
    return;
  }
  u = s->nodes[node].lane;
  to = s->root->lanes[u];
  if (to != s && !s->root->par->running && buf != NULL && buf->refs > 1) {
    gv_buf *c = gv_buf_new(buf->data, buf->len);
    gv_buf_unref(buf);
    buf = c;
  }
  if (to == s || !s->root->par->running) {
    push(to, t, kind, node, arg, buf);
    return;
  }
  p = s->parity;
  if (s->n_out[p][u] == s->cap_out[p][u]) {
    s->cap_out[p][u] = s->cap_out[p][u] ? s->cap_out[p][u] * 2 : 1024;
    s->out[p][u] =
        xrealloc(s->out[p][u], s->cap_out[p][u] * sizeof(gv_sim_xev));
  }
  s->out[p][u][s->n_out[p][u]++] = (gv_sim_xev){t, buf, node, arg, kind};
  if (t < s->out_min)
    s->out_min = t;
}

static gv_sim_link *link_of(gv_sim *s, gv_linkid side, uint32_t *peer,
                            gv_linkid *peer_side) {
  uint32_t k = (side - 1) / 2;
  gv_sim_link *l = link_at(s, k);
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

/* IP rule 1 as text: a silent node's address in a gossip frame's JSON. */
static void scan_text(gv_sim *s, const gv_buf *b) {
  const char *p = (const char *)b->data, *end = p + b->len;

  /* Each '[' (a few a frame), then the prefix: memmem's setup cost more
   * than the whole scan. */
  while ((p = memchr(p, '[', (size_t)(end - p))) != NULL) {
    const char *close;
    char text[64];
    gv_addr a;
    uint32_t i;
    if (end - p < 10 || memcmp(p, "[2001:db8:", 10) != 0) {
      p++;
      continue;
    }
    close = memchr(p, ']', (size_t)(end - p));
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
static void scan_bin(gv_sim *s, const uint8_t *p, size_t len) {
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

/* IP rule 1, checked on every frame sent (the cores' and an attacker's):
 * no silent node's address, ever. In a network without a silent node no
 * address can be one: nothing to read (the address parse was 2% of a
 * broadcast's instructions). tests/check_sim.c plants each form. */
static void scan_leaks(gv_sim *s, const gv_buf *b) {
  if (s->root->n_silent == 0)
    return;
  scan_text(s, b);
  if (b->len > 0 && b->data[0] == GV_CHAN_RELAY)
    scan_bin(s, b->data, b->len);
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
  if (s->deliver_fn != NULL)
    s->deliver_fn(s->deliver_ctx, i, a->msg_id);
  if (s->tracking && memcmp(a->msg_id, s->tracked, GV_MSG_ID_BYTES) == 0) {
    s->nodes[i].delivered_at = s->now;
    s->nodes[i].hops = (uint16_t)a->hops;
  }
}

/* The upload cap (cfg.upload_kbps): len bytes leave node i when its
 * uplink is free and hold it for len / cap. Returns the virtual ms the last
 * byte is out (rounded down: a cap too high to matter changes nothing). */
static int64_t uplink(gv_sim *s, uint32_t i, size_t len) {
  gv_sim_node *n = &s->nodes[i];
  int64_t now_us = s->now * 1000;
  int64_t dep = n->up_free_us > now_us ? n->up_free_us : now_us;

  s->up_frames++;
  s->up_wait_us += (uint64_t)(dep - now_us);
  if (dep - now_us > s->up_wait_max_us)
    s->up_wait_max_us = dep - now_us;
  n->up_free_us =
      dep + (int64_t)(((uint64_t)len * 1000 + s->cfg.upload_kbps - 1) /
                      s->cfg.upload_kbps);
  return n->up_free_us / 1000;
}

static void do_send(gv_sim *s, uint32_t i, const gv_action *a) {
  uint32_t peer;
  gv_linkid pside;
  gv_sim_link *l = link_of(s, a->link, &peer, &pside);
  bool *up = up_of(s, l, a->link);
  int64_t out = s->now;

  s->frames++;
  s->frame_bytes += a->buf->len;
  scan_leaks(s, a->buf);
  if (s->frame_fn != NULL)
    s->frame_fn(s->frame_ctx, i, a->buf, false);
  if (!*up ||
      (s->filter != NULL && !s->filter(s->filter_ctx, i, peer, a->buf))) {
    gv_buf_unref(a->buf);
    return;
  }
  if (s->cfg.upload_kbps > 0)
    out = uplink(s, i, a->buf->len);
  if (s->nodes[peer].dead) {
    /* Lost; the sender learns of it after a round trip (a reset). */
    gv_buf_unref(a->buf);
    *up = false;
    push(s, s->now + 2 * l->lat, EV_DOWN, i, a->link, NULL);
    return;
  }
  if (s->cfg.loss > 0 && gv_rng_unit(&s->rng) < s->cfg.loss) {
    s->dropped++;
    gv_buf_unref(a->buf);
    return;
  }
  post(s, out + l->lat, EV_FRAME, peer, pside, a->buf);
}

/* A dial from node i's engine (relay false) or relay core (true: it has
 * no dial-failure event; it dials again after its hold-off). */
static void do_dial(gv_sim *s, uint32_t i, const gv_addr *addr, bool relay) {
  uint32_t target, g;
  gv_sim_link *l;
  uint16_t lat = latency(s);

  if (!addr_node(s, addr, &target) || target == i || s->nodes[target].silent ||
      s->nodes[target].dead ||
      (s->partitioned && s->nodes[target].side != s->nodes[i].side)) {
    if (!relay)
      push(s, s->now + 2 * lat, EV_DIAL_FAIL, i, target, NULL);
    return;
  }
  /* The TCP connection alone shows the dialer's address to the target. */
  if (s->nodes[target].attacker && s->nodes[i].silent &&
      !s->nodes[i].observed) {
    s->nodes[i].observed = true;
    s->nodes[i].observed_at = s->now;
  }
  g = link_new(s);
  l = link_at(s, g);
  *l = (gv_sim_link){
      i, target, s->nodes[i].epoch, s->nodes[target].epoch, lat, false, false};
  /* TCP and the 3-message handshake: about two round trips. With lanes
   * each end opens in its own event, at the same time. */
  push(s, s->now + 4 * lat, EV_UP, i, g, NULL);
  if (s->threads > 1)
    post(s, s->now + 4 * lat, EV_ACCEPT, target, g, NULL);
}

static void do_close(gv_sim *s, uint32_t i, gv_linkid link) {
  uint32_t peer;
  gv_linkid pside;
  gv_sim_link *l = link_of(s, link, &peer, &pside);
  bool *up = up_of(s, l, link);

  /* A link already down has its EV_DOWN on the way to this side. The
   * peer sees the end after the frames queued before it (upload cap).
   * With lanes, an end already down has had its own EV_DOWN, and the
   * peer's end learns by a hangup, which it ignores if it closed too. */
  if (*up) {
    int64_t out = s->nodes[i].up_free_us / 1000;
    *up = false;
    push(s, s->now, EV_DOWN, i, link, NULL);
    post(s, (out > s->now ? out : s->now) + l->lat,
         s->threads > 1 ? EV_HANGUP : EV_DOWN, peer, pside, NULL);
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

/* The lane that runs node i (s itself with one thread, or if s is one). */
static gv_sim *lane_of(gv_sim *s, uint32_t i) {
  return s->lanes != NULL ? s->lanes[s->nodes[i].lane] : s;
}

void gv_sim_drain(gv_sim *s, uint32_t i) {
  gv_sim_node *n = &s->nodes[i];
  gv_action a;
  gv_ract ra;
  bool more = true;
  int64_t at;

  s = lane_of(s, i);
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

/* With lanes: one end of link g opens (EV_UP on the dialer's, EV_ACCEPT on
 * the other's lane, at the same time). Both ends test the same state, the
 * nodes' dead, epoch and side, which change only between runs, so both
 * open or neither does. */
static void on_open(gv_sim *s, uint32_t g, bool dialer) {
  gv_sim_link *l = link_at(s, g);
  gv_sim_node *a = &s->nodes[l->a], *b = &s->nodes[l->b];
  bool a_ok = !a->dead && a->epoch == l->a_epoch;
  bool b_ok = !b->dead && b->epoch == l->b_epoch &&
              !(s->partitioned && a->side != b->side);
  gv_addr addr;

  if (dialer) {
    if (!a_ok)
      return;
    if (!b_ok) {
      gv_engine_dial_failed(a->e, b->id.pk, NULL, s->now);
      gv_sim_drain(s, l->a);
      return;
    }
    l->up = true;
    node_addr(l->b, &addr);
    gv_lcore_open(a->lc, 2 * g + 1, b->id.pk, true, &addr, s->now);
    gv_sim_drain(s, l->a);
  } else if (a_ok && b_ok) {
    l->up_b = true;
    gv_lcore_open(b->lc, 2 * g + 2, a->id.pk, false, NULL, s->now);
    gv_sim_drain(s, l->b);
  }
}

/* Drops an event's frame, unless another lane lent it (lanes, merge()). */
static void ev_drop(const gv_sim_ev *ev) {
  if (!ev->lent)
    gv_buf_unref(ev->buf);
}

/* Seconds on a clock: for the lanes' busy times (timing keys) and the
 * progress line, never for the run. */
static double clock_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* cfg.progress_s: a line on stderr when that much wall time has passed
 * since the last (or since gv_sim_new), with the virtual time reached,
 * the events run (all lanes') and their rate since the last line or the
 * start of this run (gv_sim_run_until). A million nodes take a minute to
 * form; a researcher sees that the run moves, and how fast. */
static void progress_tick(gv_sim *r, int64_t now, uint64_t events) {
  double t = clock_s(CLOCK_MONOTONIC);

  /* No events since the last line: nothing to say (a run's first window
   * reads counts published before the last line). */
  if (t < r->progress_next || events <= r->progress_events)
    return;
  fprintf(stderr,
          "grapevine-sim: running: +%.1f s simulated, %llu events, "
          "%.0f events/s\n",
          (double)(now - GV_SIM_T0) / 1e3, (unsigned long long)events,
          (double)(events - r->progress_events) / (t - r->progress_at));
  r->progress_at = t;
  r->progress_events = events;
  r->progress_next = t + r->cfg.progress_s;
}

/* Runs s's events up to time last, inclusive. */
static void run_events(gv_sim *s, int64_t last) {
  int64_t at;

  while (next_time(s, &at) && at <= last) {
    gv_sim_ev ev = pop_at(s, at);
    gv_sim_node *n = &s->nodes[ev.node];

    s->now = at;
    s->events++;
    /* One thread: here, every 65,536 events; lanes: lane_run(). */
    if ((s->events & 0xffff) == 0 && s->cfg.progress_s > 0 && s->root == s)
      progress_tick(s, at, s->events);
    if (n->dead || ev.epoch != n->epoch) {
      ev_drop(&ev); /* for a crashed node, or its past life */
      continue;
    }
    switch (ev.kind) {
    case EV_FRAME:
      if (s->threads > 1 && !*up_of(s, link_at(s, (ev.arg - 1) / 2), ev.arg)) {
        ev_drop(&ev); /* its end closed: counted at the send */
        continue;
      }
      if (s->frame_fn != NULL)
        s->frame_fn(s->frame_ctx, ev.node, ev.buf, true);
      gv_lcore_recv(n->lc, ev.arg, ev.buf->data, ev.buf->len, s->now);
      ev_drop(&ev);
      break;
    case EV_UP:
      if (s->threads > 1)
        on_open(s, ev.arg, true);
      else
        on_up(s, ev.arg);
      continue;
    case EV_ACCEPT: on_open(s, ev.arg, false); continue;
    case EV_DOWN: gv_lcore_closed(n->lc, ev.arg, true, s->now); break;
    case EV_HANGUP: {
      bool *up = up_of(s, link_at(s, (ev.arg - 1) / 2), ev.arg);
      if (!*up)
        continue; /* this end closed too, and has had its EV_DOWN */
      *up = false;
      gv_lcore_closed(n->lc, ev.arg, true, s->now);
      break;
    }
    case EV_TIMER:
      if (n->wake != at)
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
}

/* ---- lanes: the nodes over threads ----
 *
 * With cfg.threads = T > 1, lane u (a gv_sim of its own, run by thread u;
 * the caller's is lane 0) runs the nodes of [u n / T, (u + 1) n / T) and
 * the nodes that join later (the last lane), with its own event queue,
 * links, PRNG, counters, delivered map and body pool. A node's cores are
 * touched by its lane alone; the nodes' other fields change only between
 * runs.
 *
 * Lanes meet only through events at least L = cfg.lat_min ms ahead: a
 * frame, a link's far end opening (EV_ACCEPT), a close reaching the far
 * end (EV_HANGUP). So a run goes in windows: with S the earliest event
 * anywhere, every lane runs its events before S + L, then all meet at a
 * barrier; what each lane sent another during the window (its outbox, in
 * send order) is pushed onto the receiver's queue at the start of the
 * next window, sender by sender, before anything of that window runs:
 * every such event is at S + L or later, so none is late, and the order
 * of every queue is fixed by the seed and T alone. The outboxes, the
 * published next times and the published event counts alternate by
 * window parity, so one barrier a window suffices: the window after the
 * next is the first to write what a window read.
 */

static void bar_wait(gv_sim *r, unsigned tid) {
  pthread_barrier_wait(&r->par->bar);
  if (tid == 0)
    r->barriers++;
}

/* Pushes what the other lanes sent lane tid in a window of parity p. A
 * frame stays its sender's: the receiver reads it when its event runs and
 * never drops it (lent), and the sender drops it once every lane is past
 * its time (release()). */
static void merge(gv_sim *r, unsigned tid, unsigned p) {
  gv_sim *s = r->lanes[tid];

  for (unsigned u = 0; u < r->threads; u++) {
    gv_sim *from = r->lanes[u];
    if (u == tid)
      continue;
    for (uint32_t k = 0; k < from->n_out[p][tid]; k++) {
      const gv_sim_xev *x = &from->out[p][tid][k];
      uint32_t e = push(s, x->t, x->kind, x->node, x->arg, x->buf);
      s->pool[e].lent = true; /* after push(), which may move the pool */
    }
  }
}

/* Empties lane s's outboxes of parity p, once every receiver merged them:
 * their frames join the ones s lent. Then drops the lent frames of events
 * before `done` (every lane has run all its events before it): the
 * buffers, made on s's thread, are dropped there. */
static void release(gv_sim *s, unsigned p, int64_t done) {
  size_t kept = 0;

  for (unsigned u = 0; u < s->threads; u++) {
    for (uint32_t k = 0; k < s->n_out[p][u]; k++) {
      const gv_sim_xev *x = &s->out[p][u][k];
      if (x->buf == NULL)
        continue;
      if (s->n_lent == s->cap_lent) {
        s->cap_lent = s->cap_lent ? s->cap_lent * 2 : 1024;
        s->lent = xrealloc(s->lent, s->cap_lent * sizeof(*s->lent));
      }
      s->lent[s->n_lent++] = (gv_sim_lent){x->t, x->buf};
    }
    s->n_out[p][u] = 0;
  }
  for (size_t k = 0; k < s->n_lent; k++) {
    if (s->lent[k].t < done)
      gv_buf_unref(s->lent[k].buf);
    else
      s->lent[kept++] = s->lent[k];
  }
  s->n_lent = kept;
}

static int64_t lane_next(const gv_sim *s) {
  int64_t at;
  return next_time(s, &at) ? at : INT64_MAX;
}

/* glibc.malloc.hugetlb=1 (sim/main.c, thp_reexec) puts the main arena's
 * heap and mmapped chunks on transparent huge pages, but not the heaps of
 * the arenas other threads allocate from: a lane past the first, whose
 * nodes live there, ran 7% longer than lane 0 for as many events at 300k
 * nodes (with the tunable off, the same time). So such a lane advises its
 * arena itself: every anonymous private mapping of 2 MB or more (a heap,
 * mapped whole at once with glibc.malloc.top_pad=64 MiB, which thp_reexec
 * sets too), so that its pages fault in huge. At most every 20 ms; a
 * mapping advised twice is left as it is, and a failed read or madvise
 * leaves the pages small. */
static void lane_thp(gv_sim *s) {
  char line[512];
  double now;
  FILE *f;

  if (!s->thp || (now = clock_s(CLOCK_MONOTONIC)) < s->thp_next)
    return;
  s->thp_next = now + 0.02;
  if ((f = fopen("/proc/self/maps", "re")) == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long lo, hi, ino;
    char perms[5];
    int name = 0;
    /* "lo-hi perms offset dev inode [name]": no name is anonymous */
    if (sscanf(line, "%lx-%lx %4s %*s %*s %lu %n", &lo, &hi, perms, &ino,
               &name) == 4 &&
        ino == 0 && line[name] == '\0' && perms[3] == 'p' &&
        hi - lo >= (2UL << 20))
      madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
  }
  fclose(f);
}

/* Lane tid's part of a run to t_end. Every lane computes the same windows
 * from the same published times, so all meet at each barrier. */
static void lane_run(gv_sim *r, unsigned tid, int64_t t_end) {
  gv_sim *s = r->lanes[tid];
  gv_sim_par *par = r->par;
  int64_t lookahead = r->cfg.lat_min;
  unsigned w;
  double t0, c0;

  par->next[1][tid] = lane_next(s);
  bar_wait(r, tid);
  for (w = 0;; w++) {
    unsigned p = w & 1;
    int64_t start = INT64_MAX, last;
    for (unsigned u = 0; u < r->threads; u++)
      if (par->next[p ^ 1][u] < start)
        start = par->next[p ^ 1][u];
    if (start > t_end)
      break;
    if (tid == 0 && r->cfg.progress_s > 0) {
      uint64_t events = 0;
      for (unsigned u = 0; u < r->threads; u++)
        events += par->events[p ^ 1][u];
      progress_tick(r, start, events);
    }
    merge(r, tid, p ^ 1);
    release(s, p, start); /* sent two windows ago, merged since */
    last = t_end - start < lookahead ? t_end : start + lookahead - 1;
    s->parity = p;
    s->out_min = INT64_MAX;
    t0 = clock_s(CLOCK_MONOTONIC);
    c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    run_events(s, last);
    s->busy_s += clock_s(CLOCK_MONOTONIC) - t0;
    s->cpu_s += clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    start = lane_next(s);
    par->next[p][tid] = start < s->out_min ? start : s->out_min;
    par->events[p][tid] = s->events;
    if (tid == 0)
      r->windows++;
    lane_thp(s);
    bar_wait(r, tid);
  }
  merge(r, tid, (w & 1) ^ 1);
  if (s->now < t_end)
    s->now = t_end;
  bar_wait(r, tid);
  release(s, 0, t_end + 1);
  release(s, 1, t_end + 1);
  bar_wait(r, tid);
}

/* ---- jobs: what the lanes do together ----
 *
 * Between runs the caller's thread (lane 0) hands the other lanes a job
 * at a barrier: a run (above), or the setup of many nodes at once, each
 * lane its own (created on the thread that will run them, so in its
 * malloc arena), or the end, each lane freeing its nodes. */

enum { JOB_RUN, JOB_ADD, JOB_SEED, JOB_CHECK, JOB_QUIT };

static void node_init(gv_sim *s, uint32_t i);

/* Lane tid's part of JOB_ADD (create the nodes) or JOB_SEED (give them
 * their candidates), in node order; what they send other lanes (the
 * accepting ends of their dials) is merged in the fixed order of a
 * window's. */
static void lane_setup(gv_sim *r, unsigned tid) {
  gv_sim *s = r->lanes[tid];
  const gv_sim_par *par = r->par;

  s->parity = 0;
  for (uint32_t i = par->from; i < par->to; i++) {
    if (s->nodes[i].lane != tid)
      continue;
    if (par->job == JOB_ADD) {
      node_init(r, i);
      lane_thp(s);
    } else { /* JOB_SEED */
      const uint32_t *c = par->cands + (size_t)(i - par->from) * par->k;
      for (uint32_t g = 0; g < par->k && c[g] != NIL; g++) {
        gv_addr a;
        node_addr(c[g], &a);
        gv_engine_add_candidate(s->nodes[i].e, s->nodes[c[g]].id.pk, &a, false,
                                s->now);
      }
    }
    gv_sim_drain(s, i);
  }
  bar_wait(r, tid);
  merge(r, tid, 0);
  bar_wait(r, tid);
  release(s, 0, INT64_MIN);
  bar_wait(r, tid);
}

/* Checks lane tid's live nodes' invariants (JOB_CHECK), up to the first
 * failure, as gv_sim_check() does. */
static void lane_check(gv_sim *r, unsigned tid) {
  gv_sim *s = r->lanes[tid];
  gv_why why;

  for (uint32_t i = 0; i < r->n_nodes && s->violations == 0; i++) {
    if (r->nodes[i].lane != tid || r->nodes[i].dead)
      continue;
    if (gv_engine_check(r->nodes[i].e, &why) < 0 ||
        gv_lcore_check(r->nodes[i].lc, &why) < 0) {
      s->violations++;
      snprintf(s->violation, sizeof(s->violation), "node %u: %s", i, why.text);
    }
  }
  bar_wait(r, tid);
}

/* Frees lane tid's nodes (JOB_QUIT). */
static void lane_free_nodes(gv_sim *r, unsigned tid) {
  for (uint32_t i = 0; i < r->n_nodes; i++) {
    if (r->nodes[i].lane != tid)
      continue;
    gv_lcore_free(r->nodes[i].lc);
    gv_engine_free(r->nodes[i].e);
    gv_id_wipe(&r->nodes[i].id);
  }
}

/* job: read once after the barrier that started it (the caller's thread
 * may set the next one as soon as the job is done). */
static void lane_job(gv_sim *r, unsigned tid, int job) {
  switch (job) {
  case JOB_RUN: lane_run(r, tid, r->par->run_to); break;
  case JOB_ADD:
  case JOB_SEED: lane_setup(r, tid); break;
  case JOB_CHECK: lane_check(r, tid); break;
  default: lane_free_nodes(r, tid); break;
  }
}

static void *lane_main(void *arg) {
  gv_sim *s = arg, *r = s->root;

  free(malloc(1)); /* this thread's arena and its first heap, */
  lane_thp(s);     /* advised before a node is made */

  for (;;) {
    int job;
    pthread_barrier_wait(&r->par->bar);
    job = r->par->job;
    lane_job(r, s->tid, job);
    if (job == JOB_QUIT)
      break;
  }
  cj_drain();
  return NULL;
}

/* The root's view, into each lane, between runs. */
static void lanes_sync(gv_sim *r) {
  for (unsigned u = 0; u < r->threads && r->lanes != NULL; u++) {
    gv_sim *l = r->lanes[u];
    l->now = r->now;
    l->n_nodes = r->n_nodes;
    l->partitioned = r->partitioned;
    l->tracking = r->tracking;
    memcpy(l->tracked, r->tracked, sizeof(l->tracked));
    l->tracked_at = r->tracked_at;
  }
}

/* The lanes' counters, summed into the root's. */
static void lanes_gather(gv_sim *r) {
  r->events = r->frames = r->frame_bytes = r->ip_leaks = r->dropped = 0;
  r->violations = r->relay_frames = r->relay_bytes = 0;
  r->up_frames = r->up_wait_us = 0;
  r->up_wait_max_us = 0;
  r->n_links = 0;
  for (unsigned u = 0; u < r->threads; u++) {
    const gv_sim *l = r->lanes[u];
    if (r->violations == 0 && l->violations > 0)
      memcpy(r->violation, l->violation, sizeof(r->violation));
    r->events += l->events;
    r->frames += l->frames;
    r->frame_bytes += l->frame_bytes;
    r->ip_leaks += l->ip_leaks;
    r->dropped += l->dropped;
    r->violations += l->violations;
    r->relay_frames += l->relay_frames;
    r->relay_bytes += l->relay_bytes;
    r->up_frames += l->up_frames;
    r->up_wait_us += l->up_wait_us;
    if (l->up_wait_max_us > r->up_wait_max_us)
      r->up_wait_max_us = l->up_wait_max_us;
    r->n_links += l->n_links;
  }
}

/* Runs a job on every lane, lane 0 on this thread; returns when all are
 * done. */
static void lanes_job(gv_sim *r, int job) {
  lanes_sync(r);
  r->par->job = job;
  r->par->running = job != JOB_QUIT;
  bar_wait(r, 0);
  lane_job(r, 0, job);
  r->par->running = false;
  if (job != JOB_QUIT)
    lanes_gather(r);
}

void gv_sim_run_until(gv_sim *s, int64_t t) {
  if (s->cfg.progress_s > 0) {
    /* a line's rate counts this run's events and time, not the set-up's
     * or the caller's between runs */
    s->progress_at = clock_s(CLOCK_MONOTONIC);
    s->progress_events = s->events;
  }
  if (s->threads == 1) {
    run_events(s, t);
    if (s->now < t)
      s->now = t;
    return;
  }
  if (s->filter != NULL || s->frame_fn != NULL || s->deliver_fn != NULL ||
      s->relay_fn != NULL) {
    fprintf(stderr, "grapevine-sim: a per-frame hook with threads\n");
    abort();
  }
  s->par->run_to = t;
  lanes_job(s, JOB_RUN);
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
  gv_intern *bodies = lane_of(s, i)->bodies;

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
  c.bodies = bodies;
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
  lc.memo = gv_intern_memo(bodies);
  lc.pool = bodies; /* one copy of the constant configuration */
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
  s->n_silent += silent;
  n->wake = INT64_MAX;
  n->delivered_at = -1;
  /* Lanes: contiguous ranges of the first cfg.nodes; later joins, the last
   * lane. */
  n->lane = (uint8_t)(i < s->cfg.nodes ? (uint64_t)i * s->threads / s->cfg.nodes
                                       : s->threads - 1);
  lanes_sync(s);
  node_init(s, i);
  gv_sim_drain(s, i);
  return i;
}

void gv_sim_kill(gv_sim *s, uint32_t i) {
  gv_sim_node *n = &s->nodes[i];

  n->dead = true;
  n->epoch++;
  n->wake = INT64_MAX;
  n->up_free_us = 0;
  n->relay = NULL; /* the caller's to free */
  if (s->threads > 1) {
    /* Each open end of i's tells the other end (lanes). */
    uint32_t u = 0, k = 0, g;
    gv_sim_link *l;
    while ((l = link_iter(s, &u, &k, &g)) != NULL) {
      if (l->a == i && l->up) {
        l->up = false;
        post(s, s->now + l->lat, EV_HANGUP, l->b, 2 * g + 2, NULL);
      } else if (l->b == i && l->up_b) {
        l->up_b = false;
        post(s, s->now + l->lat, EV_HANGUP, l->a, 2 * g + 1, NULL);
      }
    }
    return;
  }
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

void gv_sim_add_nodes(gv_sim *s, uint32_t n, const bool *silent) {
  uint32_t first = s->n_nodes;

  if (s->lanes == NULL) {
    for (uint32_t k = 0; k < n; k++)
      gv_sim_add_node(s, silent[k]);
    return;
  }
  if (n > s->cap_nodes - s->n_nodes) {
    fprintf(stderr, "grapevine-sim: more than %u nodes\n", s->cap_nodes);
    exit(1);
  }
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = s->n_nodes++;
    gv_sim_node *nd = &s->nodes[i];
    memset(nd, 0, sizeof(*nd));
    nd->silent = silent[k];
    s->n_silent += silent[k];
    nd->wake = INT64_MAX;
    nd->delivered_at = -1;
    nd->lane =
        (uint8_t)(i < s->cfg.nodes ? (uint64_t)i * s->threads / s->cfg.nodes
                                   : s->threads - 1);
  }
  s->par->from = first;
  s->par->to = s->n_nodes;
  s->par->k = 0;
  s->par->cands = NULL;
  lanes_job(s, JOB_ADD);
}

void gv_sim_seed_all(gv_sim *s, unsigned k) {
  uint32_t *cands;

  if (s->lanes == NULL) {
    for (uint32_t i = 0; i < s->n_nodes; i++)
      gv_sim_seed_candidates(s, i, k);
    return;
  }
  /* The draws of gv_sim_seed_candidates(), in its order, from this
   * thread; the lanes add them. */
  cands = xrealloc(NULL, ((size_t)s->n_nodes * k + 1) * sizeof(uint32_t));
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    uint32_t *c = cands + (size_t)i * k;
    unsigned given = 0;
    for (unsigned tries = 0; given < k && tries < 64 * k; tries++) {
      uint32_t j = (uint32_t)gv_rng_below(&s->rng, s->n_nodes);
      if (j != i && !s->nodes[j].silent)
        c[given++] = j;
    }
    while (given < k)
      c[given++] = NIL;
  }
  s->par->from = 0;
  s->par->to = s->n_nodes;
  s->par->k = k;
  s->par->cands = cands;
  lanes_job(s, JOB_SEED);
  free(cands);
}

void gv_sim_crash(gv_sim *s, uint32_t i) { s->nodes[i].dead = true; }

void gv_sim_partition(gv_sim *s) {
  s->partitioned = true;
  lanes_sync(s);
  if (s->threads > 1) {
    /* Each end open across the cut is cut (lanes). */
    uint32_t u = 0, k = 0, g;
    gv_sim_link *l;
    while ((l = link_iter(s, &u, &k, &g)) != NULL) {
      if (s->nodes[l->a].side == s->nodes[l->b].side)
        continue;
      if (l->up) {
        l->up = false;
        post(s, s->now + l->lat, EV_DOWN, l->a, 2 * g + 1, NULL);
      }
      if (l->up_b) {
        l->up_b = false;
        post(s, s->now + l->lat, EV_DOWN, l->b, 2 * g + 2, NULL);
      }
    }
    return;
  }
  for (uint32_t k = 0; k < s->n_links; k++) {
    gv_sim_link *l = &s->links[k];
    if (!l->up || s->nodes[l->a].side == s->nodes[l->b].side)
      continue;
    l->up = false;
    push(s, s->now + l->lat, EV_DOWN, l->a, 2 * k + 1, NULL);
    push(s, s->now + l->lat, EV_DOWN, l->b, 2 * k + 2, NULL);
  }
}

void gv_sim_heal(gv_sim *s) {
  s->partitioned = false;
  lanes_sync(s);
}

void gv_sim_flood_once(gv_sim *s, uint32_t i) {
  static const char junk[] = "{\"v\":1,\"ttl\":9,\"hops\":0,\"body\":\"x\"}";
  uint32_t u = 0, k = 0, g;
  gv_sim_link *l;

  while ((l = link_iter(s, &u, &k, &g)) != NULL) {
    gv_buf *b;
    if ((l->a != i && l->b != i) || !*up_of(s, l, l->a == i ? 1 : 2))
      continue;
    b = gv_chan_buf(GV_CHAN_GOSSIP, junk, sizeof(junk) - 1);
    if (l->a == i)
      post(s, s->now + l->lat, EV_FRAME, l->b, 2 * g + 2, b);
    else
      post(s, s->now + l->lat, EV_FRAME, l->a, 2 * g + 1, b);
  }
}

void gv_sim_dial(gv_sim *s, uint32_t i, uint32_t j) {
  gv_addr a;
  node_addr(j, &a);
  do_dial(lane_of(s, i), i, &a, false);
}

void gv_sim_send(gv_sim *s, uint32_t i, gv_linkid link, gv_buf *b) {
  gv_action a = {.type = GV_ACT_SEND, .link = link, .buf = b};
  do_send(lane_of(s, i), i, &a);
}

void gv_sim_track(gv_sim *s, const uint8_t *id) {
  s->tracking = true;
  memcpy(s->tracked, id, GV_MSG_ID_BYTES);
  s->tracked_at = s->now;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    s->nodes[i].delivered_at = -1;
  lanes_sync(s);
}

void gv_sim_count_indegree(gv_sim *s) {
  uint32_t u = 0, k = 0, g;
  gv_sim_link *l;

  while ((l = link_iter(s, &u, &k, &g)) != NULL)
    if (l->up && (s->threads == 1 || l->up_b))
      s->nodes[l->b].indegree++;
}

bool gv_sim_check(gv_sim *s) {
  gv_why why;
  if (s->lanes != NULL) {
    lanes_job(s, JOB_CHECK); /* and sums the lanes' violations */
    return s->violations == 0;
  }
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

/* Room in the memo of decoded bodies for every node's record twice over
 * (a record and its update) and the broadcasts: a long run's older
 * bodies, long dead, are forgotten instead of held. With fewer (the
 * pool's default, 131,072), a large run forgot most records before their
 * next hop and decoded them again: 300k nodes took 17% longer, for about
 * 0.35 KB a body saved (docs/SIMULATOR.md, "A memo for every record"). */
static void memo_size(gv_intern *bodies, uint32_t nodes) {
  gv_intern_memo_max(bodies, 2 * (size_t)nodes + 4096);
}

/* Lane u of r, with its thread (but lane 0's, the caller's). */
static void lane_new(gv_sim *r, unsigned u) {
  gv_sim *l = xrealloc(NULL, sizeof(*l));
  uint8_t key[GV_IDMAP_KEY_BYTES] = {0};

  memset(l, 0, sizeof(*l));
  l->cfg = r->cfg;
  l->now = r->now;
  l->nodes = r->nodes;
  l->cap_nodes = r->cap_nodes;
  l->root = r;
  l->threads = r->threads;
  l->tid = u;
  /* Lane 0 allocates from the main arena, which glibc advises. */
  l->thp = u > 0 && r->cfg.huge_pages;
  gv_rng_seed(&l->rng,
              r->cfg.seed ^ ((uint64_t)(u + 1) * 0x9e3779b97f4a7c15ULL));
  queue_init(l);
  memcpy(key, &r->cfg.seed, sizeof(r->cfg.seed));
  key[9] = (uint8_t)u;
  gv_idmap_init(&l->delivered, key);
  key[8] ^= 0xb0;
  if (gv_intern_new(&l->bodies, key) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory (lanes)\n");
    exit(1);
  }
  memo_size(l->bodies, r->cfg.nodes);
  l->chunks = xrealloc(NULL, CHUNKS_MAX * sizeof(gv_sim_link *));
  r->lanes[u] = l;
}

static void lane_free(gv_sim *l) {
  for (uint32_t k = 0; k < l->n_pool; k++)
    ev_drop(&l->pool[k]);
  for (unsigned p = 0; p < 2; p++)
    for (unsigned u = 0; u < l->threads; u++) {
      for (uint32_t k = 0; k < l->n_out[p][u]; k++)
        gv_buf_unref(l->out[p][u][k].buf);
      free(l->out[p][u]);
    }
  for (size_t k = 0; k < l->n_lent; k++)
    gv_buf_unref(l->lent[k].buf);
  free(l->lent);
  gv_idmap_free(&l->delivered);
  gv_intern_free(l->bodies);
  for (uint32_t c = 0; c < CHUNKS_MAX && c * CHUNK < l->n_links; c++)
    free(l->chunks[c]);
  free(l->chunks);
  free(l->pool);
  free(l->head);
  free(l->tail);
  free(l->busy);
  free(l->far);
  free(l);
}

/* The lanes and their threads (cfg.threads > 1). */
static void lanes_start(gv_sim *s) {
  s->lanes = xrealloc(NULL, s->threads * sizeof(gv_sim *));
  s->par = xrealloc(NULL, sizeof(*s->par));
  memset(s->par, 0, sizeof(*s->par));
  for (unsigned u = 0; u < s->threads; u++)
    lane_new(s, u);
  if (pthread_barrier_init(&s->par->bar, NULL, s->threads) != 0) {
    fprintf(stderr, "grapevine-sim: cannot make a barrier\n");
    exit(1);
  }
  for (unsigned u = 1; u < s->threads; u++)
    if (pthread_create(&s->par->th[u], NULL, lane_main, s->lanes[u]) != 0) {
      fprintf(stderr, "grapevine-sim: cannot start thread %u\n", u);
      exit(1);
    }
}

int gv_sim_new(gv_sim **out, const gv_sim_cfg *cfg) {
  gv_sim *s;
  unsigned threads = cfg->threads ? cfg->threads : 1;

  *out = NULL;
  if (threads > GV_SIM_THREADS_MAX || (threads > 1 && cfg->lat_min < 1))
    return GV_EINVAL;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return GV_ENOMEM;
  s->cfg = *cfg;
  s->cfg.threads = threads;
  s->root = s;
  s->threads = threads;
  s->now = GV_SIM_T0;
  s->progress_at = clock_s(CLOCK_MONOTONIC);
  s->progress_next = s->progress_at + cfg->progress_s;
  s->cap_nodes = cfg->nodes + cfg->nodes / 8 + GV_SIM_SPARE_NODES;
  if ((s->nodes = calloc(s->cap_nodes, sizeof(gv_sim_node))) == NULL) {
    free(s);
    return GV_ENOMEM;
  }
  gv_rng_seed(&s->rng, cfg->seed);
  queue_init(s);
  cj_hooks();
  {
    uint8_t key[GV_IDMAP_KEY_BYTES] = {0};
    memcpy(key, &cfg->seed, sizeof(cfg->seed));
    gv_idmap_init(&s->delivered, key);
    key[8] ^= 0xb0; /* the pool's own key */
    if (gv_intern_new(&s->bodies, key) < 0) {
      free(s->nodes);
      free(s);
      return GV_ENOMEM;
    }
    memo_size(s->bodies, cfg->nodes);
  }
  if (threads > 1)
    lanes_start(s);
  *out = s;
  return 0;
}

void gv_sim_free(gv_sim *s) {
  if (s == NULL)
    return;
  if (s->lanes != NULL) {
    /* Each lane frees its nodes on its thread. */
    lanes_job(s, JOB_QUIT);
    for (unsigned u = 1; u < s->threads; u++)
      pthread_join(s->par->th[u], NULL);
  } else {
    for (uint32_t i = 0; i < s->n_nodes; i++) {
      gv_lcore_free(s->nodes[i].lc);
      gv_engine_free(s->nodes[i].e);
      gv_id_wipe(&s->nodes[i].id);
    }
  }
  if (s->lanes != NULL) {
    /* After the engines, which hold the lanes' pooled bodies. */
    for (unsigned u = 0; u < s->threads; u++)
      lane_free(s->lanes[u]);
    pthread_barrier_destroy(&s->par->bar);
    free(s->lanes);
    free(s->par);
  }
  for (uint32_t k = 0; k < s->n_pool; k++)
    gv_buf_unref(s->pool[k].buf); /* NULL once popped */
  gv_idmap_free(&s->delivered);
  gv_intern_free(s->bodies); /* after the engines that hold its strings */
  free(s->pool);
  free(s->head);
  free(s->tail);
  free(s->busy);
  free(s->far);
  free(s->nodes);
  free(s->links);
  free(s);
}

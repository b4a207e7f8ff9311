/* common/intern.h: shared, reference-counted strings, and the decoded
 * bodies the simulator's engines share. */
#include "intern.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "err.h"

/* Both tables hold pointers to objects whose first member is their hash:
 * open addressing, linear probing, backward-shift deletion. */
typedef struct table {
  void **slots; /* NULL: empty */
  size_t cap;   /* a power of two, or 0 before the first object */
  size_t len;
} table;

typedef struct item {
  uint64_t hash;
  uint32_t refs, len;
  char s[]; /* len bytes, then a NUL */
} item;
/* A string starts where malloc's alignment does: the engine and the link
 * core keep their shared configurations in the pool (intern.h). */
_Static_assert(offsetof(item, s) % _Alignof(max_align_t) == 0,
               "a pooled string is aligned for any object");

/* A body that passed its own checks, and what it decoded to, in as few
 * bytes as it takes: a million-node run keeps one per record. The body,
 * its signature, a record's addresses, relays and names are in its kept
 * form (gv_kept_new()), a string of the pool's that the engines keep too;
 * a PEER_REQUEST's request is in the tail. */
typedef struct memo_ent memo_ent;
struct memo_ent {
  uint64_t hash;    /* of the body */
  memo_ent *next;   /* put after this one */
  const char *kept; /* a reference */
  uint8_t id[GV_MSG_ID_BYTES];
  uint8_t origin[GV_ID_BYTES];
  uint64_t seq;
  int64_t ts;
  gv_msg_type type;
  uint32_t len; /* body bytes */
  bool sig_ok;  /* kept's signature verified */
  /* A record's gv_peer_state but its addresses, relays and names. */
  bool broadcasting, bootstrap;
  uint8_t n_addrs, n_repos, n_relays;
  uint16_t tport;
  unsigned char tail[];
};
/* memo_put() and memo_find() copy gv_peer_state member by member: one
 * added to it must be added to them (proto/msg.h says so beside it;
 * check_intern's test_memo_same and fuzz_msg compare every member decoded
 * with and without the memo). */

struct gv_intern {
  uint8_t key[GV_INTERN_KEY_BYTES];
  table strs;
  table memo;
  memo_ent *oldest, *newest; /* the memo's bodies in the order put */
  size_t max;
  gv_msg_memo cb;
};

/* XXH3 under a seed from the pool's key. The pool holds only bodies the
 * simulator's own engines made or took, and a collision costs a compare,
 * never a result, so a fast hash serves; SipHash-2-4 (the id maps') was a
 * tenth of all instructions here, hashing every record and body whole. */
static uint64_t hash(const gv_intern *p, const void *s, size_t len) {
  uint64_t seed;
  memcpy(&seed, p->key, sizeof(seed));
  return XXH3_64bits_withSeed(s, len, seed);
}

static uint64_t hash_of(const void *obj) {
  uint64_t h;
  memcpy(&h, obj, sizeof(h));
  return h;
}

/* Places obj in the first empty slot of its probe run. */
static void place(table *t, void *obj) {
  size_t mask = t->cap - 1, i = (size_t)hash_of(obj) & mask;
  while (t->slots[i] != NULL)
    i = (i + 1) & mask;
  t->slots[i] = obj;
}

/* Room for one more object at a load factor of at most 3/4. */
static int reserve(table *t) {
  size_t old_cap = t->cap, cap = old_cap ? old_cap * 2 : 64;
  void **old = t->slots;

  if ((t->len + 1) * 4 <= t->cap * 3)
    return 0;
  if ((t->slots = calloc(cap, sizeof(*t->slots))) == NULL) {
    t->slots = old;
    return GV_ENOMEM;
  }
  t->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i] != NULL)
      place(t, old[i]);
  free(old);
  return 0;
}

/* Takes obj (present) out of t; the caller frees it. */
static void unslot(table *t, const void *obj) {
  size_t mask = t->cap - 1, i, j;

  for (i = (size_t)hash_of(obj) & mask; t->slots[i] != obj; i = (i + 1) & mask)
    ;
  /* Backward-shift: move later members of the probe run into the hole. */
  for (j = (i + 1) & mask; t->slots[j] != NULL; j = (j + 1) & mask) {
    size_t home = (size_t)hash_of(t->slots[j]) & mask;
    /* Move j into i unless its home lies cyclically in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && home <= i && home > j)) {
      t->slots[i] = t->slots[j];
      i = j;
    }
  }
  t->slots[i] = NULL;
  t->len--;
}

static item *item_of(const char *s) {
  return (item *)(void *)(s - offsetof(item, s));
}

static int memo_find(void *ctx, const char *body, size_t len, gv_msg *m);
static void memo_put(void *ctx, gv_msg *m, bool sig_checked);
static void memo_drop(void *ctx, const char *kept);

int gv_intern_new(gv_intern **out, const uint8_t key[GV_INTERN_KEY_BYTES]) {
  gv_intern *p = calloc(1, sizeof(*p));

  *out = p;
  if (p == NULL)
    return GV_ENOMEM;
  memcpy(p->key, key, GV_INTERN_KEY_BYTES);
  p->max = GV_INTERN_MEMO_MAX;
  p->cb.find = memo_find;
  p->cb.put = memo_put;
  p->cb.drop = memo_drop;
  p->cb.ctx = p;
  return 0;
}

void gv_intern_free(gv_intern *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->strs.cap; i++)
    free(p->strs.slots[i]);
  for (size_t i = 0; i < p->memo.cap; i++)
    free(p->memo.slots[i]);
  free(p->strs.slots);
  free(p->memo.slots);
  free(p);
}

size_t gv_intern_count(const gv_intern *p) { return p->strs.len; }

const char *gv_intern_get(gv_intern *p, const char *s, size_t len) {
  uint64_t h = hash(p, s, len);
  table *t = &p->strs;
  item *it;

  if (len > UINT32_MAX)
    return NULL;
  for (size_t mask = t->cap - 1, i = (size_t)h & mask; t->cap > 0;
       i = (i + 1) & mask) {
    it = t->slots[i];
    if (it == NULL)
      break;
    if (it->hash == h && it->len == len && memcmp(it->s, s, len) == 0 &&
        it->refs < UINT32_MAX) {
      it->refs++;
      return it->s;
    }
  }
  if (reserve(t) < 0 || (it = malloc(sizeof(*it) + len + 1)) == NULL)
    return NULL;
  it->hash = h;
  it->refs = 1;
  it->len = (uint32_t)len;
  memcpy(it->s, s, len);
  it->s[len] = '\0';
  place(t, it);
  t->len++;
  return it->s;
}

const char *gv_intern_ref(gv_intern *p, const char *s) {
  item *it = item_of(s);

  if (it->refs == UINT32_MAX) /* a second copy, as gv_intern_get() makes */
    return gv_intern_get(p, s, it->len);
  it->refs++;
  return s;
}

void gv_intern_drop(gv_intern *p, const char *s) {
  item *it;

  if (s == NULL)
    return;
  it = item_of(s);
  if (--it->refs > 0)
    return;
  unslot(&p->strs, it);
  free(it);
}

/* ---- decoded bodies ---- */

const gv_msg_memo *gv_intern_memo(gv_intern *p) { return &p->cb; }

size_t gv_intern_memo_count(const gv_intern *p) { return p->memo.len; }

/* Forgets the oldest body. */
static void memo_evict(gv_intern *p) {
  memo_ent *old = p->oldest;

  if ((p->oldest = old->next) == NULL)
    p->newest = NULL;
  unslot(&p->memo, old);
  gv_intern_drop(p, old->kept);
  free(old);
}

void gv_intern_memo_max(gv_intern *p, size_t max) {
  p->max = max > 0 ? max : 1;
  while (p->memo.len > p->max)
    memo_evict(p);
}

/* The body's entry; h is its hash. */
static memo_ent *memo_get(gv_intern *p, const char *body, size_t len,
                          uint64_t h) {
  table *t = &p->memo;
  memo_ent *en;

  for (size_t mask = t->cap - 1, i = (size_t)h & mask; t->cap > 0;
       i = (i + 1) & mask) {
    if ((en = t->slots[i]) == NULL)
      break;
    if (en->hash == h && en->len == len && memcmp(en->kept, body, len) == 0)
      return en;
  }
  return NULL;
}

/* Lends m the kept form s (the pool's): a reference of m's own. */
static void lend(gv_intern *p, gv_msg *m, const char *s) {
  m->kept = gv_intern_ref(p, s);
  m->memo = &p->cb;
}

static int memo_find(void *ctx, const char *body, size_t len, gv_msg *m) {
  memo_ent *en = memo_get(ctx, body, len, hash(ctx, body, len));
  const char *sig, *t;

  if (en == NULL)
    return 0;
  sig = en->kept + len + 1;
  t = en->kept + gv_kept_tail_at(len);
  memcpy(m->id, en->id, GV_MSG_ID_BYTES);
  m->type = en->type;
  memcpy(m->origin, en->origin, GV_ID_BYTES);
  m->seq = en->seq;
  m->ts = en->ts;
  switch (en->type) {
  case GV_MSG_PEER_ANNOUNCEMENT:
  case GV_MSG_PEER_UPDATE:
    memset(&m->u.peer, 0, sizeof(m->u.peer));
    m->u.peer.broadcasting = en->broadcasting;
    m->u.peer.bootstrap = en->bootstrap;
    m->u.peer.n_addrs = en->n_addrs;
    m->u.peer.n_repos = en->n_repos;
    m->u.peer.n_relays = en->n_relays;
    m->u.peer.tport = en->tport;
    /* The kept form holds exactly these: a silent record has no address
     * and a broadcasting one no relay (msg.c rejects either). */
    memcpy(m->u.peer.addrs, t, en->n_addrs * sizeof(gv_addr));
    t += en->n_addrs * sizeof(gv_addr);
    memcpy(m->u.peer.relays, t, en->n_relays * (size_t)GV_ID_BYTES);
    t += en->n_relays * (size_t)GV_ID_BYTES;
    m->u.peer.repos = t; /* packed names, or the end: none */
    break;
  case GV_MSG_PEER_REQUEST:
    memcpy(&m->u.request, en->tail, sizeof(m->u.request));
    break;
  default: break;
  }
  if (memcmp(sig, m->sig, GV_SIG_BYTES) != 0)
    return 1; /* another signature: m's to check, and to keep */
  lend(ctx, m, en->kept);
  return en->sig_ok ? 2 : 1;
}

static void memo_put(void *ctx, gv_msg *m, bool sig_checked) {
  gv_intern *p = ctx;
  size_t n, tail = m->type == GV_MSG_PEER_REQUEST ? sizeof(m->u.request) : 0;
  uint64_t h = hash(p, m->body, m->body_len);
  const char *kept;
  memo_ent *en;
  char *s;

  if (m->body_len > UINT32_MAX || memo_get(p, m->body, m->body_len, h) != NULL)
    return;
  if (p->memo.len >= p->max)
    memo_evict(p);
  /* Out of memory, the body is simply not kept. */
  if ((s = gv_kept_new(m, &n)) == NULL)
    return;
  kept = gv_intern_get(p, s, n);
  free(s);
  if (kept == NULL)
    return;
  if (reserve(&p->memo) < 0 ||
      (en = malloc(offsetof(memo_ent, tail) + tail)) == NULL) {
    gv_intern_drop(p, kept);
    return;
  }
  memset(en, 0, offsetof(memo_ent, tail));
  en->hash = h;
  en->kept = kept;
  memcpy(en->id, m->id, GV_MSG_ID_BYTES);
  memcpy(en->origin, m->origin, GV_ID_BYTES);
  en->seq = m->seq;
  en->ts = m->ts;
  en->type = m->type;
  en->len = (uint32_t)m->body_len;
  en->sig_ok = sig_checked;
  if (m->type == GV_MSG_PEER_ANNOUNCEMENT || m->type == GV_MSG_PEER_UPDATE) {
    en->broadcasting = m->u.peer.broadcasting;
    en->bootstrap = m->u.peer.bootstrap;
    en->n_addrs = m->u.peer.n_addrs;
    en->n_repos = m->u.peer.n_repos;
    en->n_relays = m->u.peer.n_relays;
    en->tport = m->u.peer.tport;
  } else if (tail > 0) {
    memcpy(en->tail, &m->u.request, tail);
  }
  place(&p->memo, en);
  p->memo.len++;
  if (p->newest != NULL)
    p->newest->next = en;
  else
    p->oldest = en;
  p->newest = en;
  if (m->kept == NULL)
    lend(p, m, kept);
}

static void memo_drop(void *ctx, const char *kept) {
  gv_intern_drop(ctx, kept);
}

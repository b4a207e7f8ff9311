/* The registry core; see registry.h for the state machine and
 * docs/TRACKER.md §6.2 for the invariants.
 *
 * Data structures (all owned by the gv_trk_reg):
 *   ids      map id -> entry, every state;
 *   ips      map address key -> count of ids held (limits);
 *   repos    map repository name -> repo_ix, the visible entries holding it;
 *   listed   dense array of the visible entries (uniform sampling);
 *   head..   the LISTED entries in expiry order (a RENEWING entry is taken
 *            out while its renewal is pending and put back when it settles);
 *   by_count the pool's fair share: by_count[k] lists the addresses with k
 *            verifications charged that have at least one still QUEUED
 *            (not marked in flight); max_q is the largest such k, 0 when
 *            none. Each address lists its queued verifications, oldest
 *            first. A full pool takes the newest queued verification of an
 *            address at max_q for a newcomer from an address below max_q
 *            (make_room), the same bucket idea as tracker/replay.c's.
 */
#include "registry.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

enum state { VERIFYING = 1, LISTED, RENEWING };

typedef struct repo_ix {
  char name[GV_REPO_MAX + 1];
  size_t len;
  gv_trk_entry **v; /* the visible entries holding name */
  size_t n, cap;
} repo_ix;

/* Where one of an entry's repositories indexes it. */
typedef struct repo_slot {
  repo_ix *ix;
  size_t pos; /* ix->v[pos] is the entry */
} repo_slot;

typedef struct ip_count ip_count;
struct ip_count {
  gv_trk_ipkey key;
  unsigned n;         /* ids held, VERIFYING and RENEWING ones included */
  unsigned verifying; /* of those, being verified from this address */
  unsigned queued;    /* of those, not marked in flight: on qhead.. */
  gv_trk_entry *qhead, *qtail;
  ip_count *bprev, *bnext; /* by_count[verifying] while queued > 0 */
};

struct gv_trk_entry {
  uint8_t id[GV_ID_BYTES];
  enum state state;
  gv_trk_ipkey ip;     /* the address's key, counted in ips */
  gv_trk_ipkey new_ip; /* RENEWING from another address: counted as well */
  int new_ip_counted;
  gv_addr verifying_addr; /* VERIFYING and RENEWING: being dial-tested */
  int queued;             /* on its address's queue (may be taken back) */
  gv_trk_entry *qprev, *qnext;
  /* Visible entries only: */
  gv_addr addr;
  int64_t registered_ms;
  int64_t expires_ms;
  char *json;
  size_t json_len;
  size_t list_pos; /* listed[list_pos] == this */
  size_t n_slots;
  repo_slot *slots;
  gv_trk_entry *prev, *next; /* expiry list */
  int in_expiry;
};

struct gv_trk_reg {
  gv_trk_reg_cfg cfg;
  gv_trk_map ids, ips, repos;
  gv_trk_entry **listed;
  size_t n_listed, cap_listed;
  gv_trk_entry *head, *tail;
  size_t verifying;
  ip_count **by_count; /* [0..max_verifying] */
  unsigned max_q;
  uint64_t taken_back;
  int64_t last_now;
  uint64_t generation; /* bumped by every change of what a read can show */
};

void gv_trk_ipkey_of(gv_trk_ipkey *k, const gv_addr *a) {
  memset(k, 0, sizeof(*k));
  k->b[0] = a->family;
  memcpy(k->b + 1, a->ip, a->family == 4 ? 4 : 8);
}

static int ipkey_eq(const gv_trk_ipkey *a, const gv_trk_ipkey *b) {
  return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

static int id_match(const void *item, const void *key, size_t len) {
  return len == GV_ID_BYTES &&
         memcmp(((const gv_trk_entry *)item)->id, key, len) == 0;
}

static int ip_match(const void *item, const void *key, size_t len) {
  return len == sizeof(gv_trk_ipkey) &&
         memcmp(((const ip_count *)item)->key.b, key, len) == 0;
}

static int repo_match(const void *item, const void *key, size_t len) {
  const repo_ix *ix = item;
  return ix->len == len && memcmp(ix->name, key, len) == 0;
}

static void clock_at(gv_trk_reg *r, int64_t now) {
  assert(now >= r->last_now); /* the adapter clamps the wall clock */
  r->last_now = now;
}

int gv_trk_reg_new(gv_trk_reg **out, const gv_trk_reg_cfg *cfg,
                   const uint8_t hash_key[16]) {
  gv_trk_reg *r = calloc(1, sizeof(*r));
  uint8_t k[GV_TRK_MAP_KEY_BYTES];

  *out = NULL;
  if (r == NULL)
    return GV_ENOMEM;
  if (cfg->max_per_ip < 1 || cfg->max_verifying < 1 || cfg->ttl_ms < 1) {
    free(r);
    return GV_EINVAL;
  }
  r->cfg = *cfg;
  if ((r->by_count = calloc((size_t)cfg->max_verifying + 1,
                            sizeof(*r->by_count))) == NULL) {
    free(r);
    return GV_ENOMEM;
  }
  /* One key, three tables: distinct derived keys keep them independent. */
  for (uint8_t i = 0; i < 3; i++) {
    crypto_generichash(k, sizeof(k), &i, 1, hash_key, 16);
    gv_trk_map_init(i == 0   ? &r->ids
                    : i == 1 ? &r->ips
                             : &r->repos,
                    k,
                    i == 0   ? id_match
                    : i == 1 ? ip_match
                             : repo_match);
  }
  sodium_memzero(k, sizeof(k));
  *out = r;
  return 0;
}

static void free_entry(gv_trk_entry *e) {
  free(e->json);
  free(e->slots);
  free(e);
}

void gv_trk_reg_free(gv_trk_reg *r) {
  size_t pos = 0;
  void *it;

  if (r == NULL)
    return;
  while ((it = gv_trk_map_next(&r->ids, &pos)) != NULL)
    free_entry(it);
  pos = 0;
  while ((it = gv_trk_map_next(&r->ips, &pos)) != NULL)
    free(it);
  pos = 0;
  while ((it = gv_trk_map_next(&r->repos, &pos)) != NULL) {
    free(((repo_ix *)it)->v);
    free(it);
  }
  gv_trk_map_free(&r->ids);
  gv_trk_map_free(&r->ips);
  gv_trk_map_free(&r->repos);
  free(r->listed);
  free(r->by_count);
  free(r);
}

/* ---- per-address counts ---- */

/* Counts one more id at key; limit 0 means none. */
static int ip_take(gv_trk_reg *r, const gv_trk_ipkey *key, unsigned limit) {
  ip_count *c = gv_trk_map_get(&r->ips, key->b, sizeof(key->b));

  if (c != NULL) {
    if (limit != 0 && c->n >= limit)
      return GV_ELIMIT;
    c->n++;
    return 0;
  }
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return GV_ENOMEM;
  c->key = *key;
  c->n = 1;
  if (gv_trk_map_put(&r->ips, key->b, sizeof(key->b), c) < 0) {
    free(c);
    return GV_ENOMEM;
  }
  return 0;
}

/* The address a verification of e is charged to. */
static const gv_trk_ipkey *verify_ip(const gv_trk_entry *e) {
  return e->new_ip_counted ? &e->new_ip : &e->ip;
}

/* ---- the pool's fair share: by_count and the queues ---- */

static void bucket_out(gv_trk_reg *r, ip_count *c) {
  if (c->queued == 0)
    return;
  if (c->bprev)
    c->bprev->bnext = c->bnext;
  else
    r->by_count[c->verifying] = c->bnext;
  if (c->bnext)
    c->bnext->bprev = c->bprev;
  c->bprev = c->bnext = NULL;
  while (r->max_q > 0 && r->by_count[r->max_q] == NULL)
    r->max_q--;
}

static void bucket_in(gv_trk_reg *r, ip_count *c) {
  if (c->queued == 0)
    return;
  assert(c->verifying >= 1 && c->verifying <= r->cfg.max_verifying);
  c->bprev = NULL;
  c->bnext = r->by_count[c->verifying];
  if (c->bnext)
    c->bnext->bprev = c;
  r->by_count[c->verifying] = c;
  if (c->verifying > r->max_q)
    r->max_q = c->verifying;
}

static ip_count *verify_count(gv_trk_reg *r, const gv_trk_entry *e) {
  const gv_trk_ipkey *k = verify_ip(e);
  return gv_trk_map_get(&r->ips, k->b, sizeof(k->b));
}

/* Takes e off its address's queue: it is in flight, never taken back. */
static void unqueue(gv_trk_reg *r, gv_trk_entry *e) {
  ip_count *c = verify_count(r, e);

  if (!e->queued)
    return;
  bucket_out(r, c);
  if (e->qprev)
    e->qprev->qnext = e->qnext;
  else
    c->qhead = e->qnext;
  if (e->qnext)
    e->qnext->qprev = e->qprev;
  else
    c->qtail = e->qprev;
  e->qprev = e->qnext = NULL;
  e->queued = 0;
  c->queued--;
  bucket_in(r, c);
}

/* Moves the count of verifications from e's address by delta (+1: e
 * starts, queued; -1: e settles); the address holds e's id, so its count
 * exists. */
static void ip_verifying(gv_trk_reg *r, gv_trk_entry *e, int delta) {
  ip_count *c;

  if (delta < 0)
    unqueue(r, e);
  c = verify_count(r, e);
  assert(c != NULL && (delta > 0 || c->verifying > 0));
  bucket_out(r, c);
  c->verifying = (unsigned)((int)c->verifying + delta);
  if (delta > 0) {
    e->queued = 1;
    e->qnext = NULL;
    e->qprev = c->qtail;
    if (c->qtail)
      c->qtail->qnext = e;
    else
      c->qhead = e;
    c->qtail = e;
    c->queued++;
  }
  bucket_in(r, c);
}

/* Whether key may start one more verification. */
static int ip_may_verify(const gv_trk_reg *r, const gv_trk_ipkey *key) {
  const ip_count *c = gv_trk_map_get(&r->ips, key->b, sizeof(key->b));

  return r->cfg.max_verifying_per_ip == 0 || c == NULL ||
         c->verifying < r->cfg.max_verifying_per_ip;
}

static void ip_release(gv_trk_reg *r, const gv_trk_ipkey *key) {
  ip_count *c = gv_trk_map_get(&r->ips, key->b, sizeof(key->b));

  assert(c != NULL && c->n > 0);
  if (--c->n == 0)
    free(gv_trk_map_del(&r->ips, key->b, sizeof(key->b)));
}

/* ---- expiry list, ordered by expires_ms ---- */

static void expiry_unlink(gv_trk_reg *r, gv_trk_entry *e) {
  if (!e->in_expiry)
    return;
  if (e->prev)
    e->prev->next = e->next;
  else
    r->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    r->tail = e->prev;
  e->prev = e->next = NULL;
  e->in_expiry = 0;
}

/* Renewals append (expires = now + ttl never decreases); loading and a kept
 * renewal may insert earlier, found by walking back from the tail. */
static void expiry_insert(gv_trk_reg *r, gv_trk_entry *e) {
  gv_trk_entry *after = r->tail;

  assert(!e->in_expiry);
  if (r->head != NULL && e->expires_ms < r->head->expires_ms)
    after = NULL;
  else
    while (after != NULL && after->expires_ms > e->expires_ms)
      after = after->prev;
  e->prev = after;
  e->next = after ? after->next : r->head;
  if (e->next)
    e->next->prev = e;
  else
    r->tail = e;
  if (after)
    after->next = e;
  else
    r->head = e;
  e->in_expiry = 1;
}

/* ---- visible data: rendering and indexes ---- */

/* The PEER object of docs/TRACKER.md §3.3. NULL when out of memory. */
static char *render(const gv_trk_rec *rec, int64_t expires_ms, size_t *len) {
  cJSON *o = cJSON_CreateObject(), *arr;
  char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX], *s = NULL;
  int ok;

  gv_id_to_hex(rec->id, hex);
  gv_addr_format(&rec->addr, addr);
  ok = o != NULL && cJSON_AddStringToObject(o, "id", hex) != NULL &&
       cJSON_AddStringToObject(o, "addr", addr) != NULL &&
       (arr = cJSON_AddArrayToObject(o, "repos")) != NULL;
  for (int i = 0; ok && i < rec->n_repos; i++)
    ok = cJSON_AddItemToArray(arr, cJSON_CreateString(rec->repos[i]));
  ok = ok && (arr = cJSON_AddArrayToObject(o, "caps")) != NULL;
  for (int i = 0; ok && i < rec->n_caps; i++)
    ok = cJSON_AddItemToArray(arr, cJSON_CreateString(rec->caps[i]));
  ok = ok && cJSON_AddNumberToObject(o, "expires", (double)expires_ms) != NULL;
  if (ok && (s = cJSON_PrintUnformatted(o)) != NULL)
    *len = strlen(s);
  cJSON_Delete(o);
  return s;
}

static void drop_if_empty(gv_trk_reg *r, repo_ix *ix) {
  if (ix->n != 0)
    return;
  gv_trk_map_del(&r->repos, ix->name, ix->len);
  free(ix->v);
  free(ix);
}

/* Makes sure every repository of rec has an index with room for one more
 * entry per occurrence, and listed room for one more. On failure, drops the
 * indexes it created. */
static int reserve(gv_trk_reg *r, const gv_trk_rec *rec) {
  int i;

  if (r->n_listed == r->cap_listed) {
    size_t ncap = r->cap_listed ? r->cap_listed * 2 : 64;
    gv_trk_entry **nl = realloc(r->listed, ncap * sizeof(*nl));
    if (nl == NULL)
      return GV_ENOMEM;
    r->listed = nl;
    r->cap_listed = ncap;
  }
  for (i = 0; i < rec->n_repos; i++) {
    size_t len = strlen(rec->repos[i]);
    repo_ix *ix = gv_trk_map_get(&r->repos, rec->repos[i], len);

    if (ix == NULL) {
      if ((ix = calloc(1, sizeof(*ix))) == NULL)
        goto fail;
      memcpy(ix->name, rec->repos[i], len + 1);
      ix->len = len;
      if (gv_trk_map_put(&r->repos, ix->name, len, ix) < 0) {
        free(ix);
        goto fail;
      }
    }
    if (ix->n + rec->n_repos > ix->cap) {
      size_t ncap = ix->cap ? ix->cap * 2 : 8;
      gv_trk_entry **nv;
      while (ncap < ix->n + rec->n_repos)
        ncap *= 2;
      if ((nv = realloc(ix->v, ncap * sizeof(*nv))) == NULL)
        goto fail;
      ix->v = nv;
      ix->cap = ncap;
    }
  }
  return 0;
fail:
  for (i = 0; i < rec->n_repos; i++) {
    repo_ix *ix =
        gv_trk_map_get(&r->repos, rec->repos[i], strlen(rec->repos[i]));
    if (ix != NULL)
      drop_if_empty(r, ix);
  }
  return GV_ENOMEM;
}

/* Indexes e under rec's repositories, into room reserve() made. */
static void index_repos(gv_trk_reg *r, gv_trk_entry *e, const gv_trk_rec *rec) {
  for (int i = 0; i < rec->n_repos; i++) {
    repo_ix *ix =
        gv_trk_map_get(&r->repos, rec->repos[i], strlen(rec->repos[i]));
    assert(ix != NULL && ix->n < ix->cap);
    e->slots[i].ix = ix;
    e->slots[i].pos = ix->n;
    ix->v[ix->n++] = e;
  }
  e->n_slots = rec->n_repos;
}

/* Takes e out of every repository index; empty indexes are dropped only if
 * drop is set (a renewal re-adds first, then drops). */
static void unindex_repos(gv_trk_reg *r, gv_trk_entry *e, int drop) {
  for (size_t k = 0; k < e->n_slots; k++) {
    repo_ix *ix = e->slots[k].ix;
    size_t pos = e->slots[k].pos, last = ix->n - 1;
    gv_trk_entry *moved = ix->v[last];

    assert(ix->v[pos] == e);
    ix->v[pos] = moved;
    ix->n--;
    if (pos != last)
      for (size_t j = 0; j < moved->n_slots; j++)
        if (moved->slots[j].ix == ix && moved->slots[j].pos == last) {
          moved->slots[j].pos = pos;
          break;
        }
    if (drop)
      drop_if_empty(r, ix);
  }
}

static void unlist(gv_trk_reg *r, gv_trk_entry *e) {
  gv_trk_entry *moved = r->listed[--r->n_listed];

  r->generation++;
  assert(r->listed[e->list_pos] == e);
  r->listed[e->list_pos] = moved;
  moved->list_pos = e->list_pos;
}

/* Removes a visible entry entirely. */
static void remove_entry(gv_trk_reg *r, gv_trk_entry *e) {
  expiry_unlink(r, e);
  unindex_repos(r, e, 1);
  unlist(r, e);
  ip_release(r, &e->ip);
  if (e->new_ip_counted)
    ip_release(r, &e->new_ip);
  gv_trk_map_del(&r->ids, e->id, GV_ID_BYTES);
  free_entry(e);
}

/* Gives e rec's content, expiring at expires_ms: renders, reserves and
 * reindexes; on failure nothing changed. */
static int set_content(gv_trk_reg *r, gv_trk_entry *e, const gv_trk_rec *rec,
                       int64_t expires_ms) {
  size_t len = 0, old_n = e->n_slots;
  char *json = render(rec, expires_ms, &len);
  repo_slot *slots = calloc(rec->n_repos ? rec->n_repos : 1, sizeof(*slots));
  repo_slot *old = e->slots;

  if (json == NULL || slots == NULL || reserve(r, rec) < 0) {
    free(json);
    free(slots);
    return GV_ENOMEM;
  }
  unindex_repos(r, e, 0);
  e->slots = slots;
  index_repos(r, e, rec);
  for (size_t k = 0; k < old_n; k++)
    drop_if_empty(r, old[k].ix);
  free(old);
  free(e->json);
  e->json = json;
  e->json_len = len;
  r->generation++;
  e->addr = rec->addr;
  e->expires_ms = expires_ms;
  return 0;
}

/* ---- transitions ---- */

/* The pool is full: for a newcomer from k, takes back the newest queued
 * verification of an address holding more than k does (the heaviest one
 * with any queued), as if its dial-back had failed (a renewal keeps its
 * listing). Entries the hook cannot take back are in flight: they leave
 * their queue for good, so the loop runs at most once per verification
 * begun, amortised O(1) per begin. 0, or -EAGAIN when none can go. */
static int make_room(gv_trk_reg *r, const gv_trk_ipkey *k, gv_why *why) {
  const ip_count *mine = gv_trk_map_get(&r->ips, k->b, sizeof(k->b));
  unsigned have = mine != NULL ? mine->verifying : 0;

  while (r->max_q > have) {
    gv_trk_entry *v = r->by_count[r->max_q]->qtail;
    int rc;

    assert(v != NULL && v->queued);
    if (r->cfg.take_back != NULL &&
        !r->cfg.take_back(r->cfg.take_back_ctx, v->id, &v->verifying_addr)) {
      unqueue(r, v);
      continue;
    }
    rc = gv_trk_reg_abort(r, v->id, 1);
    assert(rc == 0);
    (void)rc;
    r->taken_back++;
    return 0;
  }
  return gv_fail(why, -EAGAIN,
                 "%zu registrations are being verified, none of them queued "
                 "from an address with more than this one's %u",
                 r->verifying, have);
}

int gv_trk_reg_begin(gv_trk_reg *r, const gv_trk_rec *rec, int64_t now,
                     gv_why *why) {
  gv_trk_entry *e = gv_trk_map_get(&r->ids, rec->id, GV_ID_BYTES);
  gv_trk_ipkey k;
  int rc;

  clock_at(r, now);
  gv_trk_ipkey_of(&k, &rec->addr);
  if (e != NULL && e->state != LISTED)
    return gv_fail(why, GV_EBUSY,
                   "a registration for this id is being verified");
  if (!ip_may_verify(r, &k))
    return gv_fail(why, -EBUSY,
                   "this address already has %u registrations being "
                   "verified",
                   r->cfg.max_verifying_per_ip);
  /* The id limit first, so that no one's verification is taken back for a
   * request refused anyway; past make_room only GV_ENOMEM can fail. */
  if (e == NULL || !ipkey_eq(&k, &e->ip)) {
    const ip_count *c = gv_trk_map_get(&r->ips, k.b, sizeof(k.b));
    if (c != NULL && c->n >= r->cfg.max_per_ip) {
      rc = GV_ELIMIT;
      goto limit;
    }
  }
  if (r->verifying >= r->cfg.max_verifying && (rc = make_room(r, &k, why)) < 0)
    return rc;
  if (e != NULL) {
    if (!ipkey_eq(&k, &e->ip)) {
      if ((rc = ip_take(r, &k, r->cfg.max_per_ip)) < 0)
        goto limit;
      e->new_ip = k;
      e->new_ip_counted = 1;
    }
    e->state = RENEWING;
    e->verifying_addr = rec->addr;
    expiry_unlink(r, e);
    r->verifying++;
    ip_verifying(r, e, 1);
    return 1;
  }
  if ((rc = ip_take(r, &k, r->cfg.max_per_ip)) < 0)
    goto limit;
  if ((e = calloc(1, sizeof(*e))) == NULL ||
      gv_trk_map_put(&r->ids, rec->id, GV_ID_BYTES, e) < 0) {
    free(e);
    ip_release(r, &k);
    return gv_fail(why, GV_ENOMEM, "out of memory");
  }
  memcpy(e->id, rec->id, GV_ID_BYTES);
  e->ip = k;
  e->state = VERIFYING;
  e->verifying_addr = rec->addr;
  r->verifying++;
  ip_verifying(r, e, 1);
  return 0;
limit:
  if (rc == GV_ELIMIT)
    return gv_fail(why, rc, "this address already holds %u ids",
                   r->cfg.max_per_ip);
  return gv_fail(why, rc, "out of memory");
}

int gv_trk_reg_commit(gv_trk_reg *r, const gv_trk_rec *rec, int64_t expires_ms,
                      int64_t now) {
  gv_trk_entry *e = gv_trk_map_get(&r->ids, rec->id, GV_ID_BYTES);
  gv_trk_ipkey k;
  int rc;

  clock_at(r, now);
  assert(expires_ms > now);
  gv_trk_ipkey_of(&k, &rec->addr);
  if (e == NULL || e->state == LISTED ||
      !ipkey_eq(&k, e->new_ip_counted ? &e->new_ip : &e->ip))
    return GV_ESTATE;
  if ((rc = set_content(r, e, rec, expires_ms)) < 0)
    return rc;
  ip_verifying(r, e, -1);
  if (e->state == VERIFYING) {
    e->list_pos = r->n_listed; /* set_content reserved the room */
    r->listed[r->n_listed++] = e;
    e->registered_ms = now;
  }
  if (e->new_ip_counted) {
    ip_release(r, &e->ip);
    e->ip = e->new_ip;
    e->new_ip_counted = 0;
  }
  e->state = LISTED;
  expiry_insert(r, e);
  r->verifying--;
  return 0;
}

int gv_trk_reg_abort(gv_trk_reg *r, const uint8_t id[GV_ID_BYTES], int keep) {
  gv_trk_entry *e = gv_trk_map_get(&r->ids, id, GV_ID_BYTES);

  if (e == NULL || e->state == LISTED)
    return GV_ESTATE;
  r->verifying--;
  ip_verifying(r, e, -1);
  if (e->state == VERIFYING) {
    ip_release(r, &e->ip);
    gv_trk_map_del(&r->ids, id, GV_ID_BYTES);
    free_entry(e);
    return 0;
  }
  if (keep) {
    if (e->new_ip_counted)
      ip_release(r, &e->new_ip);
    e->new_ip_counted = 0;
    e->state = LISTED;
    expiry_insert(r, e);
    return 0;
  }
  remove_entry(r, e);
  return 1;
}

int gv_trk_reg_may_unregister(const gv_trk_reg *r,
                              const uint8_t id[GV_ID_BYTES]) {
  const gv_trk_entry *e = gv_trk_map_get(&r->ids, id, GV_ID_BYTES);

  if (e == NULL)
    return -ENOENT;
  return e->state != LISTED ? GV_EBUSY : 0;
}

int gv_trk_reg_unregister(gv_trk_reg *r, const uint8_t id[GV_ID_BYTES]) {
  int rc = gv_trk_reg_may_unregister(r, id);

  if (rc < 0)
    return rc;
  remove_entry(r, gv_trk_map_get(&r->ids, id, GV_ID_BYTES));
  return 0;
}

int gv_trk_reg_load(gv_trk_reg *r, const gv_trk_rec *rec, int64_t registered_ms,
                    int64_t expires_ms, int64_t now) {
  gv_trk_entry *e;
  gv_trk_ipkey k;
  int rc;

  clock_at(r, now);
  if (expires_ms <= now)
    return GV_ESTALE;
  if (gv_trk_map_get(&r->ids, rec->id, GV_ID_BYTES) != NULL)
    return -EEXIST;
  if ((e = calloc(1, sizeof(*e))) == NULL)
    return GV_ENOMEM;
  memcpy(e->id, rec->id, GV_ID_BYTES);
  gv_trk_ipkey_of(&k, &rec->addr);
  if ((rc = set_content(r, e, rec, expires_ms)) < 0)
    goto fail;
  if ((rc = ip_take(r, &k, 0)) < 0)
    goto fail;
  if ((rc = gv_trk_map_put(&r->ids, e->id, GV_ID_BYTES, e)) < 0) {
    ip_release(r, &k);
    goto fail;
  }
  e->ip = k;
  e->state = LISTED;
  e->registered_ms = registered_ms;
  e->list_pos = r->n_listed;
  r->listed[r->n_listed++] = e;
  expiry_insert(r, e);
  return 0;
fail:
  unindex_repos(r, e, 1);
  free_entry(e);
  return rc;
}

size_t gv_trk_reg_expire(gv_trk_reg *r, int64_t now,
                         void (*cb)(void *ctx, const uint8_t id[GV_ID_BYTES]),
                         void *ctx) {
  size_t n = 0;

  clock_at(r, now);
  while (r->head != NULL && r->head->expires_ms <= now) {
    gv_trk_entry *e = r->head;
    assert(e->state == LISTED);
    if (cb != NULL)
      cb(ctx, e->id);
    remove_entry(r, e);
    n++;
  }
  return n;
}

int64_t gv_trk_reg_next_expiry(const gv_trk_reg *r) {
  return r->head ? r->head->expires_ms : INT64_MAX;
}

/* ---- readers ---- */

/* Floyd's algorithm: m distinct values of [0, n) in m draws. */
static size_t floyd(gv_trk_rng *rng, size_t n, size_t m, size_t *out) {
  size_t k = 0;

  assert(m <= n && n <= UINT32_MAX);
  for (size_t j = n - m; j < n; j++) {
    size_t t = gv_trk_rng_uniform(rng, (uint32_t)(j + 1));
    for (size_t i = 0; i < k; i++)
      if (out[i] == t) {
        t = j;
        break;
      }
    out[k++] = t;
  }
  return k;
}

static void shuffle(gv_trk_rng *rng, const gv_trk_entry **v, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = gv_trk_rng_uniform(rng, (uint32_t)i);
    const gv_trk_entry *t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

const gv_trk_entry *gv_trk_reg_find(const gv_trk_reg *r,
                                    const uint8_t id[GV_ID_BYTES]) {
  const gv_trk_entry *e = gv_trk_map_get(&r->ids, id, GV_ID_BYTES);
  return e != NULL && e->state != VERIFYING ? e : NULL;
}

size_t gv_trk_reg_sample(const gv_trk_reg *r, gv_trk_rng *rng, size_t max,
                         const uint8_t *exclude, const gv_trk_entry **out) {
  const gv_trk_entry *ex = exclude ? gv_trk_reg_find(r, exclude) : NULL;
  size_t idx[GV_TRK_MAX_RESULTS + 1], m, k = 0;

  if (max > GV_TRK_MAX_RESULTS)
    max = GV_TRK_MAX_RESULTS;
  m = max + (ex != NULL);
  if (m > r->n_listed)
    m = r->n_listed;
  floyd(rng, r->n_listed, m, idx);
  for (size_t i = 0; i < m && k < max; i++)
    if (r->listed[idx[i]] != ex)
      out[k++] = r->listed[idx[i]];
  shuffle(rng, out, k);
  return k;
}

/* Adds e to out[0..*k) unless it is there already. */
static void add_unique(const gv_trk_entry **out, size_t *k,
                       const gv_trk_entry *e) {
  for (size_t i = 0; i < *k; i++)
    if (out[i] == e)
      return;
  out[(*k)++] = e;
}

/* Position p of the concatenation of the indexes ixs[0], ixs[1], ... */
static const gv_trk_entry *entry_at(const repo_ix *const *ixs, size_t p) {
  size_t j = 0;

  while (p >= ixs[j]->n)
    p -= ixs[j++]->n;
  return ixs[j]->v[p];
}

size_t gv_trk_reg_discover(const gv_trk_reg *r, gv_trk_rng *rng,
                           const char (*names)[GV_REPO_MAX + 1], size_t n,
                           size_t max, const gv_trk_entry **out) {
  const repo_ix *ixs[GV_TRK_MAX_QUERY_REPOS];
  size_t idx[GV_TRK_MAX_RESULTS], nix = 0, total = 0, m, k = 0;

  if (max > GV_TRK_MAX_RESULTS)
    max = GV_TRK_MAX_RESULTS;
  for (size_t i = 0; i < n && i < GV_TRK_MAX_QUERY_REPOS; i++) {
    const repo_ix *ix =
        gv_trk_map_get(&r->repos, names[i], strnlen(names[i], GV_REPO_MAX));
    size_t j = 0;
    while (j < nix && ixs[j] != ix)
      j++;
    if (ix != NULL && j == nix) {
      ixs[nix++] = ix;
      total += ix->n;
    }
  }
  if (max == 0 || total == 0)
    return 0;
  assert(total <= UINT32_MAX);
  m = max < total ? max : total;
  floyd(rng, total, m, idx);
  /* Positions index the concatenation of the indexes. An entry found
   * through two repositories counts once; fresh draws (at most 4 per wanted
   * entry) then top the answer up. */
  for (size_t i = 0; i < m && k < max; i++)
    add_unique(out, &k, entry_at(ixs, idx[i]));
  for (size_t extra = 0; total > max && k < max && extra < 4 * max; extra++)
    add_unique(out, &k,
               entry_at(ixs, gv_trk_rng_uniform(rng, (uint32_t)total)));
  shuffle(rng, out, k);
  return k;
}

const char *gv_trk_entry_json(const gv_trk_entry *e, size_t *len) {
  *len = e->json_len;
  return e->json;
}

const uint8_t *gv_trk_entry_id(const gv_trk_entry *e) { return e->id; }
int gv_trk_reg_verifying_addr(const gv_trk_reg *r,
                              const uint8_t id[GV_ID_BYTES], gv_addr *out) {
  const gv_trk_entry *e = gv_trk_map_get(&r->ids, id, GV_ID_BYTES);

  if (e == NULL || e->state == LISTED)
    return GV_ESTATE;
  *out = e->verifying_addr;
  return 0;
}

const gv_addr *gv_trk_entry_addr(const gv_trk_entry *e) { return &e->addr; }
int64_t gv_trk_entry_expires(const gv_trk_entry *e) { return e->expires_ms; }
int64_t gv_trk_entry_registered(const gv_trk_entry *e) {
  return e->registered_ms;
}

uint64_t gv_trk_reg_generation(const gv_trk_reg *r) { return r->generation; }

uint64_t gv_trk_reg_taken_back(const gv_trk_reg *r) { return r->taken_back; }

void gv_trk_reg_get_stats(const gv_trk_reg *r, gv_trk_reg_stats *st) {
  st->listed = r->n_listed;
  st->verifying = r->verifying;
  st->ips = r->ips.count;
  st->repos = r->repos.count;
}

/* ---- invariants ---- */

/* c's queue: linked both ways, in step with its count, every entry being
 * verified from c's address. */
static int check_queue(const gv_trk_reg *r, const ip_count *c, gv_why *why) {
  const gv_trk_entry *e, *p = NULL;
  unsigned n = 0;

  for (e = c->qhead; e != NULL && n <= r->cfg.max_verifying;
       p = e, e = e->qnext, n++)
    if (!e->queued || e->state == LISTED || e->qprev != p ||
        !ipkey_eq(verify_ip(e), &c->key))
      return gv_fail(why, GV_ESTATE, "verification queue entry wrong");
  if (p != c->qtail || n != c->queued || n > c->verifying)
    return gv_fail(why, GV_ESTATE, "verification queue count wrong");
  return 0;
}

int gv__trk_reg_check(const gv_trk_reg *r, gv_why *why) {
  size_t pos = 0, visible = 0, verifying = 0, listed = 0, in_list = 0;
  size_t in_buckets = 0, with_queued = 0;
  int rc;
  const gv_trk_entry *e, *p;
  const ip_count *c;
  const repo_ix *ix;

  while ((e = gv_trk_map_next(&r->ids, &pos)) != NULL) {
    gv_trk_ipkey k;
    if (e->state == VERIFYING || e->state == RENEWING)
      verifying++;
    if (e->state == LISTED)
      listed++;
    if ((e->state == LISTED) != (e->in_expiry != 0))
      return gv_fail(why, GV_ESTATE, "expiry list membership wrong");
    if (e->state == LISTED && e->queued)
      return gv_fail(why, GV_ESTATE, "listed entry on a verification queue");
    if (e->state == VERIFYING)
      continue;
    visible++;
    if (e->list_pos >= r->n_listed || r->listed[e->list_pos] != e)
      return gv_fail(why, GV_ESTATE, "listed position wrong");
    gv_trk_ipkey_of(&k, &e->addr);
    if (!ipkey_eq(&k, &e->ip))
      return gv_fail(why, GV_ESTATE, "address key differs from address");
    for (size_t i = 0; i < e->n_slots; i++) {
      ix = e->slots[i].ix;
      if (gv_trk_map_get(&r->repos, ix->name, ix->len) != ix ||
          e->slots[i].pos >= ix->n || ix->v[e->slots[i].pos] != e)
        return gv_fail(why, GV_ESTATE, "repository slot wrong");
    }
  }
  if (visible != r->n_listed || verifying != r->verifying ||
      verifying > r->cfg.max_verifying)
    return gv_fail(why, GV_ESTATE, "counts wrong");
  for (p = NULL, e = r->head; e != NULL; p = e, e = e->next) {
    in_list++;
    if (e->prev != p || (p != NULL && p->expires_ms > e->expires_ms))
      return gv_fail(why, GV_ESTATE, "expiry list out of order");
  }
  if (p != r->tail || in_list != listed)
    return gv_fail(why, GV_ESTATE, "expiry list length wrong");
  pos = 0;
  while ((c = gv_trk_map_next(&r->ips, &pos)) != NULL) {
    size_t n = 0, v = 0, epos = 0;
    while ((e = gv_trk_map_next(&r->ids, &epos)) != NULL) {
      n += ipkey_eq(&e->ip, &c->key) +
           (e->new_ip_counted && ipkey_eq(&e->new_ip, &c->key));
      v += e->state != LISTED && ipkey_eq(verify_ip(e), &c->key);
    }
    if (n != c->n || n == 0)
      return gv_fail(why, GV_ESTATE, "address count wrong");
    with_queued += c->queued > 0;
    if (v != c->verifying)
      return gv_fail(why, GV_ESTATE, "address verification count wrong");
    if ((rc = check_queue(r, c, why)) < 0)
      return rc;
  }
  for (unsigned k = 0; k <= r->cfg.max_verifying; k++)
    for (c = r->by_count[k]; c != NULL; c = c->bnext) {
      if (c->verifying != k || c->queued == 0 || k > r->max_q ||
          (c->bnext != NULL && c->bnext->bprev != c))
        return gv_fail(why, GV_ESTATE, "pool bucket wrong");
      in_buckets++;
    }
  if (in_buckets != with_queued ||
      (r->max_q > 0 && r->by_count[r->max_q] == NULL))
    return gv_fail(why, GV_ESTATE, "pool buckets out of step");
  pos = 0;
  while ((ix = gv_trk_map_next(&r->repos, &pos)) != NULL) {
    if (ix->n == 0)
      return gv_fail(why, GV_ESTATE, "empty repository index kept");
    for (size_t i = 0; i < ix->n; i++) {
      size_t j = 0;
      e = ix->v[i];
      while (j < e->n_slots && !(e->slots[j].ix == ix && e->slots[j].pos == i))
        j++;
      if (j == e->n_slots)
        return gv_fail(why, GV_ESTATE, "repository index entry without slot");
    }
  }
  return 0;
}

/* grapevine-sim --scenario relay. See relaysim.h and docs/SIMULATOR.md.
 *
 * Every node runs the real relay core as its link core's channel-2
 * service (sim/net.c carries SEND, DIAL, HOLD and RELEASE); this file
 * drives the rest, on the same virtual clock:
 *
 *   store   PERSIST rows wait a commit delay (COMMIT_MIN..MAX ms), jobs
 *           commit in order; a crash loses the uncommitted ones; a
 *           restart feeds the stored rows back (gv_relay_load).
 *   agents  one or two per node on connections 1 and 2; they send to
 *           random agents by full address at --rate, and ack every
 *           message pushed to them. Their lines come back through
 *           GV_RACT_LINE and are read with cJSON.
 *   crashes Poisson at --crash-rate over the whole network; the node is
 *           down DOWN_MIN..DOWN_MAX ms, then restarts from its store.
 *
 * The ledger: a message is `accepted` when its sender read the answer,
 * `delivered` when the recipient read the answer to its ack (the ack is
 * committed: the cursor moved). Lost: accepted, never delivered.
 * Duplicate: pushed again after it was delivered. Out of order: a first
 * push of a pair's seq not above the pair's last first push.
 */
#include "relaysim.h"
#include "simout.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FORM_MS 5000    /* links form before agents connect */
#define COMMIT_MIN_MS 2 /* a store's commit delay */
#define COMMIT_MAX_MS 6
#define DOWN_MIN_MS 1000 /* how long a crashed node stays down */
#define DOWN_MAX_MS 10000
#define CONNECT_MS 50 /* an agent reconnects this long after its node */
#define CHECK_MS 1000 /* the cores' invariants, this often */
#define CANDIDATES 8  /* tracker answers a (re)started node dials */

enum {
  A_COMMIT,
  A_LINE,
  A_SEND,
  A_CRASH,
  A_RESTART,
  A_CONNECT,
  A_CHECK,
  A_RECORD /* node's table takes a newer record of node arg */
};

typedef struct aev {
  int64_t t;
  uint64_t seq;
  uint32_t node, epoch, arg;
  uint8_t kind;
  char *text; /* A_LINE */
} aev;

typedef struct job {
  uint64_t id;
  gv_rrow *rows; /* deep copies */
  size_t n;
} job;

struct rsim;

typedef struct rnode {
  struct rsim *sim;
  uint32_t i;
  gv_relay *r;
  gv_relay_cfg cfg;
  gv_rng rng;    /* the core's cfg.random */
  gv_rrow *rows; /* the store, in write order */
  size_t n_rows, cap_rows;
  job *jobs; /* emitted, not committed, oldest first */
  size_t n_jobs, cap_jobs;
  int64_t last_commit;
  uint8_t relays[GV_RELAY_RELAYS_MAX][GV_ID_BYTES];
  size_t n_relays;
  uint32_t first_agent, n_agents;
} rnode;

typedef struct ragent {
  uint32_t node;
  char as[32];                         /* p<node>:a<k> */
  char addr[32 + 1 + 2 * GV_ID_BYTES]; /* as@<node id> */
  bool online;
  uint32_t epoch; /* of its node when it connected */
} ragent;

typedef struct rrec {
  uint8_t id[GV_RW_ID_BYTES];
  int64_t accepted_at, delivered_at; /* -1: not yet */
  uint32_t from, to;                 /* agents */
  bool handed;
} rrec;

typedef struct rsim {
  gv_sim *s;
  const gv_relaysim_opts *o;
  gv_rng rng; /* agents, crashes, commit delays */
  uint8_t T[GV_RW_KEY_BYTES];
  rnode *nodes;
  uint32_t n;
  ragent *agents;
  uint32_t n_agents;
  gv_idmap by_id, msgs, pairs, by_addr;
  rrec **recs; /* every record, in creation order */
  size_t n_recs, cap_recs;
  aev *heap;
  size_t n_heap, cap_heap;
  uint64_t seq;
  int64_t t_end;
  /* counters */
  uint64_t sends, accepted, delivered, dups, ooo, skipped, crashes;
  uint64_t unreported, errors_send, errors_other;
  uint64_t forwarded, forward_dropped, refused, busy;
  cJSON *send_errors;
} rsim;

#define GROW(p, n, cap)                                                        \
  do {                                                                         \
    if ((n) == (cap)) {                                                        \
      (cap) = (cap) ? 2 * (cap) : 16;                                          \
      (p) = realloc((p), (cap) * sizeof(*(p)));                                \
      if ((p) == NULL) {                                                       \
        fprintf(stderr, "grapevine-sim: out of memory\n");                     \
        exit(1);                                                               \
      }                                                                        \
    }                                                                          \
  } while (0)

/* ---- the scenario's own events, ordered by (t, seq) ---- */

static bool aev_less(const aev *x, const aev *y) {
  return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void apush(rsim *m, int64_t t, uint8_t kind, uint32_t node, uint32_t arg,
                  char *text) {
  size_t i;
  GROW(m->heap, m->n_heap, m->cap_heap);
  i = m->n_heap++;
  m->heap[i] =
      (aev){t, m->seq++, node, m->s->nodes[node].epoch, arg, kind, text};
  while (i > 0 && aev_less(&m->heap[i], &m->heap[(i - 1) / 2])) {
    aev tmp = m->heap[i];
    m->heap[i] = m->heap[(i - 1) / 2];
    m->heap[(i - 1) / 2] = tmp;
    i = (i - 1) / 2;
  }
}

static aev apop(rsim *m) {
  aev top = m->heap[0];
  size_t i = 0;
  m->heap[0] = m->heap[--m->n_heap];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, k = i;
    if (l < m->n_heap && aev_less(&m->heap[l], &m->heap[k]))
      k = l;
    if (r < m->n_heap && aev_less(&m->heap[r], &m->heap[k]))
      k = r;
    if (k == i)
      break;
    aev tmp = m->heap[i];
    m->heap[i] = m->heap[k];
    m->heap[k] = tmp;
    i = k;
  }
  return top;
}

static int64_t exp_ms(rsim *m, double per_s) {
  double u = gv_rng_unit(&m->rng);
  return 1 + (int64_t)(-log(1.0 - u) / per_s * 1000.0);
}

static int64_t uniform(rsim *m, int64_t lo, int64_t hi) {
  return lo + (int64_t)gv_rng_below(&m->rng, (uint64_t)(hi - lo + 1));
}

/* ---- the cores' callbacks ---- */

static void rnd(void *ctx, uint8_t *buf, size_t n) {
  rnode *rn = ctx;
  for (size_t k = 0; k < n; k += 8) {
    uint64_t v = gv_rng_next(&rn->rng);
    memcpy(buf + k, &v, n - k < 8 ? n - k : 8);
  }
}

static void key32(uint8_t k[32], const void *p, size_t len) {
  memset(k, 0, 32);
  memcpy(k, p, len < 32 ? len : 32);
}

static int64_t node_of(const rsim *m, const uint8_t *id) {
  void *v = gv_idmap_get(&m->by_id, id);
  return v == NULL ? -1 : (int64_t)(uintptr_t)v - 1;
}

/* What gossip would tell: every node is known; a broadcasting one by its
 * address, a silent one by the relays it last reported. */
static bool route_cb(void *ctx, const uint8_t id[GV_ID_BYTES], gv_rroute *out) {
  rnode *self = ctx;
  rsim *m = self->sim;
  int64_t i = node_of(m, id);

  if (i < 0)
    return false;
  out->known = true;
  out->broadcasting = !m->s->nodes[i].silent;
  if (out->broadcasting)
    gv_sim_node_addr((uint32_t)i, &out->addr);
  out->n_relays = m->nodes[i].n_relays;
  memcpy(out->relays, m->nodes[i].relays, sizeof(out->relays));
  return true;
}

/* ---- the store (as node/relaystore.c keeps rows) ---- */

static void row_free(gv_rrow *w) {
  if (w->type == GV_RROW_MSG)
    free((void *)w->u.msg.body);
}

static gv_rrow row_copy(const gv_rrow *w) {
  gv_rrow c = *w;
  if (w->type == GV_RROW_MSG) {
    uint8_t *b = malloc(w->u.msg.body_len + 1);
    if (b == NULL)
      exit(1);
    if (w->u.msg.body_len > 0)
      memcpy(b, w->u.msg.body, w->u.msg.body_len);
    c.u.msg.body = b;
  }
  return c;
}

static bool same_msg(const gv_rrow *a, const uint8_t *id, bool inbound) {
  return a->type == GV_RROW_MSG && a->u.msg.inbound == inbound &&
         memcmp(a->u.msg.id, id, GV_RW_ID_BYTES) == 0;
}

static bool same_cursor(const gv_rcursor_row *a, const gv_rcursor_row *b) {
  return strcmp(a->to, b->to) == 0 && strcmp(a->from, b->from) == 0 &&
         memcmp(a->src, b->src, GV_ID_BYTES) == 0;
}

/* One committed row: MSG rows hold the current state, STATE rows the
 * trace, a CURSOR replaces its pair's, DROP forgets a message. Takes w. */
static void store_apply(rnode *t, gv_rrow *w) {
  if (w->type == GV_RROW_STATE)
    for (size_t k = 0; k < t->n_rows; k++)
      if (same_msg(&t->rows[k], w->u.state.id, w->u.state.inbound)) {
        t->rows[k].u.msg.state = w->u.state.state;
        t->rows[k].u.msg.reason = w->u.state.reason;
      }
  if (w->type == GV_RROW_CURSOR)
    for (size_t k = 0; k < t->n_rows; k++)
      if (t->rows[k].type == GV_RROW_CURSOR &&
          same_cursor(&t->rows[k].u.cursor, &w->u.cursor)) {
        t->rows[k] = *w;
        return;
      }
  if (w->type == GV_RROW_DROP) {
    size_t k2 = 0;
    for (size_t k = 0; k < t->n_rows; k++) {
      gv_rrow *x = &t->rows[k];
      bool gone = same_msg(x, w->u.drop.id, w->u.drop.inbound) ||
                  (x->type == GV_RROW_STATE &&
                   x->u.state.inbound == w->u.drop.inbound &&
                   memcmp(x->u.state.id, w->u.drop.id, GV_RW_ID_BYTES) == 0);
      if (gone)
        row_free(x);
      else
        t->rows[k2++] = *x;
    }
    t->n_rows = k2;
    return;
  }
  GROW(t->rows, t->n_rows, t->cap_rows);
  t->rows[t->n_rows++] = *w;
}

/* Rows back in relaystore's order (as tests/check_relay.c's store_load):
 * agents, members, each message with its trace, cursors. */
static void store_load(rnode *t) {
  const gv_rrow_type first[] = {GV_RROW_AGENT, GV_RROW_MEMBER};
  for (size_t f = 0; f < 2; f++)
    for (size_t i = 0; i < t->n_rows; i++)
      if (t->rows[i].type == first[f])
        gv_relay_load(t->r, &t->rows[i]);
  for (size_t i = 0; i < t->n_rows; i++) {
    const gv_rrow *w = &t->rows[i];
    if (w->type != GV_RROW_MSG)
      continue;
    gv_relay_load(t->r, w);
    for (size_t k = 0; k < t->n_rows; k++)
      if (t->rows[k].type == GV_RROW_STATE &&
          t->rows[k].u.state.inbound == w->u.msg.inbound &&
          memcmp(t->rows[k].u.state.id, w->u.msg.id, GV_RW_ID_BYTES) == 0)
        gv_relay_load(t->r, &t->rows[k]);
  }
  for (size_t i = 0; i < t->n_rows; i++)
    if (t->rows[i].type == GV_RROW_CURSOR)
      gv_relay_load(t->r, &t->rows[i]);
}

static void jobs_drop(rnode *t) {
  for (size_t k = 0; k < t->n_jobs; k++) {
    for (size_t j = 0; j < t->jobs[k].n; j++)
      row_free(&t->jobs[k].rows[j]);
    free(t->jobs[k].rows);
  }
  t->n_jobs = 0;
}

/* ---- the ledger ---- */

static rrec *rec_get(rsim *m, const uint8_t id[GV_RW_ID_BYTES], bool create) {
  uint8_t k[32];
  rrec *r;

  key32(k, id, GV_RW_ID_BYTES);
  if ((r = gv_idmap_get(&m->msgs, k)) != NULL || !create)
    return r;
  if ((r = calloc(1, sizeof(*r))) == NULL)
    exit(1);
  r->accepted_at = r->delivered_at = -1;
  memcpy(r->id, id, GV_RW_ID_BYTES);
  gv_idmap_put(&m->msgs, k, r);
  GROW(m->recs, m->n_recs, m->cap_recs);
  m->recs[m->n_recs++] = r;
  return r;
}

static int64_t agent_of(rsim *m, const char *addr) {
  uint8_t k[32];
  void *v;

  crypto_generichash(k, sizeof(k), (const uint8_t *)addr, strlen(addr), NULL,
                     0);
  v = gv_idmap_get(&m->by_addr, k);
  return v == NULL ? -1 : (int64_t)(uintptr_t)v - 1;
}

/* The last seq first pushed for the pair (from, to). */
static uint64_t *pair_last(rsim *m, uint32_t from, uint32_t to) {
  uint8_t k[32] = {0};
  uint64_t *v;

  memcpy(k, &from, 4);
  memcpy(k + 4, &to, 4);
  if ((v = gv_idmap_get(&m->pairs, k)) == NULL) {
    if ((v = calloc(1, sizeof(*v))) == NULL)
      exit(1);
    gv_idmap_put(&m->pairs, k, v);
  }
  return v;
}

static bool hex_id(const cJSON *j, uint8_t id[GV_RW_ID_BYTES]) {
  size_t n = 0;
  return cJSON_IsString(j) &&
         sodium_hex2bin(id, GV_RW_ID_BYTES, j->valuestring,
                        strlen(j->valuestring), NULL, &n, NULL) == 0 &&
         n == GV_RW_ID_BYTES;
}

static void count_error(rsim *m, const char *code, bool send) {
  cJSON *c = cJSON_GetObjectItemCaseSensitive(m->send_errors, code);
  if (!send) {
    m->errors_other++;
    return;
  }
  m->errors_send++;
  if (c == NULL)
    cJSON_AddNumberToObject(m->send_errors, code, 1);
  else
    cJSON_SetNumberValue(c, c->valuedouble + 1);
}

/* A message pushed to agent `to`: check it against the ledger, ack it. */
static void on_push(rsim *m, uint32_t to, const cJSON *j) {
  const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "from");
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
  const cJSON *sk = cJSON_GetObjectItemCaseSensitive(j, "skipped");
  uint8_t id[GV_RW_ID_BYTES];
  char hex[2 * GV_RW_ID_BYTES + 1], line[160];
  int64_t f;
  rrec *r;

  if (!hex_id(cJSON_GetObjectItemCaseSensitive(j, "id"), id) ||
      !cJSON_IsString(from) || !cJSON_IsNumber(seq) ||
      (f = agent_of(m, from->valuestring)) < 0) {
    m->errors_other++;
    return;
  }
  if (cJSON_IsArray(sk))
    m->skipped += (uint64_t)cJSON_GetArraySize(sk);
  r = rec_get(m, id, true);
  if (r->delivered_at >= 0)
    m->dups++;
  if (!r->handed) {
    uint64_t *last = pair_last(m, (uint32_t)f, to);
    r->handed = true;
    r->from = (uint32_t)f;
    r->to = to;
    if ((uint64_t)seq->valuedouble <= *last)
      m->ooo++;
    else
      *last = (uint64_t)seq->valuedouble;
  }
  sodium_bin2hex(hex, sizeof(hex), id, GV_RW_ID_BYTES);
  snprintf(line, sizeof(line),
           "{\"cmd\":\"ack\",\"ids\":[\"%s\"],\"req\":\"a%s\"}", hex, hex);
  apush(m, m->s->now, A_LINE, m->agents[to].node, to,
        strdup(line)); /* the agent answers at once */
}

/* One line to agent a. */
static void on_line(rsim *m, uint32_t a, const uint8_t *data, size_t len) {
  cJSON *j = cJSON_ParseWithLength((const char *)data, len);
  const cJSON *ev, *ok, *req;
  uint8_t id[GV_RW_ID_BYTES];
  rrec *r;

  if (j == NULL) {
    m->errors_other++;
    return;
  }
  ev = cJSON_GetObjectItemCaseSensitive(j, "event");
  ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
  req = cJSON_GetObjectItemCaseSensitive(j, "req");
  if (cJSON_IsString(ev)) {
    if (strcmp(ev->valuestring, "message") == 0)
      on_push(m, a, j);
  } else if (cJSON_IsTrue(ok) &&
             cJSON_GetObjectItemCaseSensitive(j, "session") != NULL) {
    m->agents[a].online = true;
  } else if (cJSON_IsTrue(ok) && cJSON_IsString(req) &&
             req->valuestring[0] == 's') {
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(j, "to");
    int64_t t = cJSON_IsString(to) ? agent_of(m, to->valuestring) : -1;
    if (!hex_id(cJSON_GetObjectItemCaseSensitive(j, "id"), id) || t < 0) {
      m->errors_other++;
    } else {
      r = rec_get(m, id, true);
      if (r->accepted_at < 0) {
        r->accepted_at = m->s->now;
        r->from = a;
        r->to = (uint32_t)t;
        m->accepted++;
      }
    }
  } else if (cJSON_IsTrue(ok) && cJSON_IsString(req) &&
             req->valuestring[0] == 'a') {
    size_t n = 0;
    if (sodium_hex2bin(id, sizeof(id), req->valuestring + 1,
                       strlen(req->valuestring + 1), NULL, &n, NULL) == 0 &&
        n == sizeof(id) && (r = rec_get(m, id, false)) != NULL &&
        r->delivered_at < 0) {
      r->delivered_at = m->s->now;
      m->delivered++;
    }
  } else if (!cJSON_IsTrue(ok)) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "error");
    count_error(m, cJSON_IsString(code) ? code->valuestring : "?",
                cJSON_IsString(req) && req->valuestring[0] == 's');
  }
  cJSON_Delete(j);
}

/* Node `to` learns node i's newer record, once the running event is done
 * (a core is never called from inside another's actions). */
static void record_to(rsim *m, const uint8_t *to, uint32_t i) {
  int64_t j = node_of(m, to);
  if (j >= 0)
    apush(m, m->s->now, A_RECORD, (uint32_t)j, i, NULL);
}

/* What the relay core asks beyond the link layer (sim/net.c calls it). */
static void relay_fn(void *ctx, uint32_t i, const gv_ract *a) {
  rsim *m = ctx;
  rnode *t = &m->nodes[i];

  switch (a->type) {
  case GV_RACT_PERSIST: {
    job *jb;
    int64_t at = m->s->now + uniform(m, COMMIT_MIN_MS, COMMIT_MAX_MS);
    GROW(t->jobs, t->n_jobs, t->cap_jobs);
    jb = &t->jobs[t->n_jobs++];
    jb->id = a->job;
    jb->n = a->n_rows;
    if ((jb->rows = calloc(a->n_rows + 1, sizeof(gv_rrow))) == NULL)
      exit(1);
    for (size_t k = 0; k < a->n_rows; k++)
      jb->rows[k] = row_copy(&a->rows[k]);
    if (at < t->last_commit)
      at = t->last_commit; /* in order */
    t->last_commit = at;
    apush(m, at, A_COMMIT, i, 0, NULL);
    break;
  }
  case GV_RACT_LINE:
    if (a->conn >= 1 && a->conn <= t->n_agents)
      on_line(m, t->first_agent + a->conn - 1, a->data, a->len);
    break;
  case GV_RACT_HANGUP:
    if (a->conn >= 1 && a->conn <= t->n_agents)
      m->agents[t->first_agent + a->conn - 1].online = false;
    break;
  case GV_RACT_RELAYS:
    /* The relays it named and the ones it names now hear the new record
     * (route_cb's answer changes for everyone at once, as if gossip were
     * instant): whether they hold its link rests on it. */
    for (size_t k = 0; k < t->n_relays; k++)
      record_to(m, t->relays[k], i);
    t->n_relays = a->n_relays;
    memcpy(t->relays, a->relays, a->n_relays * GV_ID_BYTES);
    for (size_t k = 0; k < t->n_relays; k++)
      record_to(m, t->relays[k], i);
    break;
  default: break;
  }
}

/* ---- nodes ---- */

static void relay_start(rsim *m, uint32_t i) {
  rnode *t = &m->nodes[i];
  gv_sim_node *n = &m->s->nodes[i];

  gv_rng_seed(&t->rng, m->s->cfg.seed ^ (0x72656c6179ULL + i) ^
                           ((uint64_t)n->epoch << 40));
  gv_relay_cfg_default(&t->cfg);
  t->cfg.silent = n->silent;
  t->cfg.random = rnd;
  t->cfg.route = route_cb;
  t->cfg.ctx = t;
  t->last_commit = 0;
  t->n_relays = 0;
  if (gv_relay_new(&t->r, &t->cfg, &n->id, m->s->now) < 0 ||
      gv_relay_team_add(t->r, m->T, i > 0 ? m->s->nodes[0].id.pk : NULL,
                        m->s->now) < 0) {
    fprintf(stderr, "grapevine-sim: cannot create relay %u\n", i);
    exit(1);
  }
  gv_relay_set_wall(t->r, 0); /* the virtual clock is a wall clock */
  store_load(t);
  gv_relay_loaded(t->r, m->s->now);
  gv_sim_set_relay(m->s, i, t->r);
  gv_sim_drain(m->s, i);
  for (uint32_t k = 0; k < t->n_agents; k++)
    apush(m, m->s->now + CONNECT_MS, A_CONNECT, i, t->first_agent + k, NULL);
}

static void add_stats(rsim *m, const gv_relay *r) {
  gv_relay_stats st;
  gv_relay_stats_get(r, &st);
  m->forwarded += st.forwarded;
  m->forward_dropped += st.forward_dropped;
  m->busy += st.busy_sent;
  for (int k = 0; k <= GV_RFAIL_NOT_IN_TEAM; k++)
    m->refused += st.refused_in[k];
}

static void crash(rsim *m, uint32_t i) {
  rnode *t = &m->nodes[i];

  add_stats(m, t->r);
  gv_sim_kill(m->s, i);
  gv_relay_free(t->r);
  t->r = NULL;
  jobs_drop(t);
  t->n_relays = 0;
  for (uint32_t k = 0; k < t->n_agents; k++)
    m->agents[t->first_agent + k].online = false;
  m->crashes++;
  apush(m, m->s->now + uniform(m, DOWN_MIN_MS, DOWN_MAX_MS), A_RESTART, i, 0,
        NULL);
}

static void die(rsim *m, const char *what) {
  fprintf(stderr, "grapevine-sim: INVARIANT VIOLATED at +%lld ms: %s\n",
          (long long)(m->s->now - GV_SIM_T0), what);
  fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
          (unsigned long long)m->s->cfg.seed);
  for (int k = 0; k < m->o->argc; k++)
    fprintf(stderr, " %s", m->o->argv[k]);
  fprintf(stderr, "\n");
  exit(3);
}

static void check_all(rsim *m) {
  gv_why why = {{0}};
  char text[400];

  if (!gv_sim_check(m->s))
    die(m, m->s->violation);
  for (uint32_t i = 0; i < m->n; i++)
    if (m->nodes[i].r != NULL && gv_relay_check(m->nodes[i].r, &why) < 0) {
      snprintf(text, sizeof(text), "relay of node %u: %s", i, why.text);
      die(m, text);
    }
}

/* ---- events ---- */

static void agent_send(rsim *m, uint32_t a) {
  ragent *ag = &m->agents[a];
  uint32_t b;
  char line[256];

  if (m->s->now < m->t_end)
    apush(m, m->s->now + exp_ms(m, m->o->rate), A_SEND, ag->node, a, NULL);
  if (!ag->online || m->n_agents < 2)
    return;
  b = (uint32_t)gv_rng_below(&m->rng, m->n_agents - 1);
  b += b >= a;
  m->sends++;
  snprintf(line, sizeof(line),
           "{\"cmd\":\"send\",\"to\":\"%s\",\"message\":\"m%llu\","
           "\"req\":\"s%llu\"}",
           m->agents[b].addr, (unsigned long long)m->sends,
           (unsigned long long)m->sends);
  gv_relay_conn_line(m->nodes[ag->node].r,
                     a - m->nodes[ag->node].first_agent + 1, line, strlen(line),
                     m->s->now);
}

static void run_event(rsim *m, aev *e) {
  gv_sim_node *n = &m->s->nodes[e->node];
  rnode *t = &m->nodes[e->node];
  bool live = !n->dead && e->epoch == n->epoch;

  switch (e->kind) {
  case A_COMMIT:
    if (!live || t->n_jobs == 0)
      break;
    {
      job jb = t->jobs[0];
      memmove(t->jobs, t->jobs + 1, (--t->n_jobs) * sizeof(job));
      for (size_t k = 0; k < jb.n; k++)
        store_apply(t, &jb.rows[k]);
      free(jb.rows);
      gv_relay_committed(t->r, jb.id, 0, m->s->now);
    }
    break;
  case A_LINE:
    if (live && m->agents[e->arg].online)
      gv_relay_conn_line(t->r, e->arg - t->first_agent + 1, e->text,
                         strlen(e->text), m->s->now);
    break;
  case A_SEND: agent_send(m, e->arg); break;
  case A_CRASH: {
    uint32_t i = (uint32_t)gv_rng_below(&m->rng, m->n);
    if (m->s->now < m->t_end)
      apush(m, m->s->now + exp_ms(m, m->o->crash_rate), A_CRASH, 0, 0, NULL);
    if (!m->s->nodes[i].dead)
      crash(m, i);
    return;
  }
  case A_RESTART:
    gv_sim_restart(m->s, e->node, CANDIDATES);
    relay_start(m, e->node);
    return;
  case A_CONNECT: {
    char line[96];
    if (!live)
      return;
    snprintf(line, sizeof(line), "{\"cmd\":\"hello\",\"as\":\"%s\"}",
             m->agents[e->arg].as);
    gv_relay_conn_open(t->r, e->arg - t->first_agent + 1, m->s->now);
    gv_relay_conn_line(t->r, e->arg - t->first_agent + 1, line, strlen(line),
                       m->s->now);
    break;
  }
  case A_RECORD:
    if (!live)
      return;
    gv_relay_record(t->r, m->s->nodes[e->arg].id.pk, m->s->now);
    break;
  case A_CHECK:
    check_all(m);
    apush(m, m->s->now + CHECK_MS, A_CHECK, 0, 0, NULL);
    return;
  }
  if (!n->dead)
    gv_sim_drain(m->s, e->node);
}

/* Runs both event queues up to t, the network's first at equal times. */
static void run_until(rsim *m, int64_t t) {
  while (m->n_heap > 0 && m->heap[0].t <= t) {
    aev e;
    gv_sim_run_until(m->s, m->heap[0].t);
    e = apop(m);
    run_event(m, &e);
    free(e.text);
  }
  gv_sim_run_until(m->s, t);
}

static uint64_t outstanding(const rsim *m) {
  uint64_t k = 0;
  for (size_t i = 0; i < m->n_recs; i++)
    k += m->recs[i]->accepted_at >= 0 && m->recs[i]->delivered_at < 0;
  return k;
}

static bool any_down(const rsim *m) {
  for (uint32_t i = 0; i < m->n; i++)
    if (m->s->nodes[i].dead)
      return true;
  return false;
}

/* ---- report ---- */

static void write_csv(const rsim *m, const double *lat, size_t n_lat) {
  char path[4096];
  FILE *f;

  mkdir(m->o->out, 0755);
  snprintf(path, sizeof(path), "%s/relay_latency_cdf.csv", m->o->out);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "latency_ms,cdf\n");
  for (size_t i = 0; i < n_lat; i++)
    if (i + 1 == n_lat || lat[i + 1] != lat[i])
      fprintf(f, "%.0f,%.6f\n", lat[i], (double)(i + 1) / (double)n_lat);
  fclose(f);
  snprintf(path, sizeof(path), "%s/relay_summary.csv", m->o->out);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "grapevine-sim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "nodes,agents,crashes,sends,accepted,delivered,lost,duplicates,"
             "out_of_order,p50_ms,p90_ms,p99_ms\n");
  fprintf(f, "%u,%u,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%.0f,%.0f,%.0f\n", m->n,
          m->n_agents, (unsigned long long)m->crashes,
          (unsigned long long)m->sends, (unsigned long long)m->accepted,
          (unsigned long long)m->delivered,
          (unsigned long long)(m->accepted - m->delivered),
          (unsigned long long)m->dups, (unsigned long long)m->ooo,
          gv_sim_pct(lat, n_lat, 0.5), gv_sim_pct(lat, n_lat, 0.9),
          gv_sim_pct(lat, n_lat, 0.99));
  fclose(f);
}

static cJSON *report(rsim *m, double *lat, size_t n_lat, int64_t drained,
                     double wall) {
  cJSON *j = cJSON_CreateObject(), *l, *rl;
  uint64_t lost = 0, unrep = 0, delivered = 0;
  uint32_t silent = 0;

  for (size_t i = 0; i < m->n_recs; i++) {
    const rrec *r = m->recs[i];
    lost += r->accepted_at >= 0 && r->delivered_at < 0;
    delivered += r->accepted_at >= 0 && r->delivered_at >= 0;
    unrep += r->accepted_at < 0 && r->delivered_at >= 0;
  }
  for (uint32_t i = 0; i < m->n; i++)
    silent += m->s->nodes[i].silent;
  cJSON_AddNumberToObject(j, "nodes", m->n);
  cJSON_AddNumberToObject(j, "seed", (double)m->s->cfg.seed);
  cJSON_AddStringToObject(j, "scenario", "relay");
  cJSON_AddNumberToObject(j, "silent", silent);
  cJSON_AddNumberToObject(j, "agents", m->n_agents);
  cJSON_AddNumberToObject(j, "rate", m->o->rate);
  cJSON_AddNumberToObject(j, "crash_rate", m->o->crash_rate);
  cJSON_AddNumberToObject(j, "duration_s", (double)m->o->duration_ms / 1000);
  cJSON_AddNumberToObject(j, "drained_s", (double)drained / 1000);
  cJSON_AddNumberToObject(j, "crashes", (double)m->crashes);
  cJSON_AddNumberToObject(j, "sends", (double)m->sends);
  cJSON_AddItemToObject(j, "send_errors",
                        cJSON_Duplicate(m->send_errors, true));
  cJSON_AddNumberToObject(j, "accepted", (double)m->accepted);
  cJSON_AddNumberToObject(j, "delivered", (double)delivered);
  cJSON_AddNumberToObject(j, "lost", (double)lost);
  cJSON_AddNumberToObject(j, "duplicates", (double)m->dups);
  cJSON_AddNumberToObject(j, "out_of_order", (double)m->ooo);
  cJSON_AddNumberToObject(j, "skipped", (double)m->skipped);
  cJSON_AddNumberToObject(j, "delivered_unanswered", (double)unrep);
  l = cJSON_AddObjectToObject(j, "latency_ms");
  cJSON_AddNumberToObject(l, "p50", gv_sim_pct(lat, n_lat, 0.50));
  cJSON_AddNumberToObject(l, "p90", gv_sim_pct(lat, n_lat, 0.90));
  cJSON_AddNumberToObject(l, "p99", gv_sim_pct(lat, n_lat, 0.99));
  cJSON_AddNumberToObject(l, "max", n_lat ? lat[n_lat - 1] : 0);
  rl = cJSON_AddObjectToObject(j, "relay");
  cJSON_AddNumberToObject(rl, "frames", (double)m->s->relay_frames);
  cJSON_AddNumberToObject(rl, "bytes", (double)m->s->relay_bytes);
  cJSON_AddNumberToObject(rl, "forwarded", (double)m->forwarded);
  cJSON_AddNumberToObject(rl, "forward_dropped", (double)m->forward_dropped);
  cJSON_AddNumberToObject(rl, "refused", (double)m->refused);
  cJSON_AddNumberToObject(rl, "busy", (double)m->busy);
  cJSON_AddNumberToObject(rl, "agent_errors", (double)m->errors_other);
  cJSON_AddNumberToObject(j, "ip_leaks", (double)m->s->ip_leaks);
  cJSON_AddNumberToObject(j, "events", (double)m->s->events);
  if (m->o->timing)
    cJSON_AddNumberToObject(j, "wall_s", round(wall * 1000) / 1000);
  return j;
}

/* ---- the run ---- */

static void setup(rsim *m) {
  uint64_t x = m->s->cfg.seed ^ 0x7465616d736563ULL; /* "teamsec" */
  uint8_t k[GV_IDMAP_KEY_BYTES] = {0};
  uint32_t n = m->s->cfg.nodes;

  for (size_t b = 0; b < sizeof(m->T); b += 8) {
    uint64_t v = gv__splitmix64(&x);
    memcpy(m->T + b, &v, 8);
  }
  gv_rng_seed(&m->rng, m->s->cfg.seed ^ 0x6167656e7473ULL);
  memcpy(k, &m->s->cfg.seed, sizeof(m->s->cfg.seed));
  gv_idmap_init(&m->by_id, k);
  gv_idmap_init(&m->msgs, k);
  gv_idmap_init(&m->pairs, k);
  gv_idmap_init(&m->by_addr, k);
  m->send_errors = cJSON_CreateObject();
  m->n = n;
  m->nodes = calloc(n, sizeof(rnode));
  m->agents = calloc(2 * (size_t)n, sizeof(ragent));
  if (m->nodes == NULL || m->agents == NULL)
    exit(1);
  m->s->relay_fn = relay_fn;
  m->s->relay_ctx = m;
  /* Node 0 is the inviter: it broadcasts. */
  for (uint32_t i = 0; i < n; i++) {
    bool silent = i > 0 && gv_rng_unit(&m->s->rng) < m->s->cfg.silent_frac;
    rnode *t = &m->nodes[i];
    uint8_t h[32];
    char hex[2 * GV_ID_BYTES + 1];

    gv_sim_add_node(m->s, silent);
    gv_idmap_put(&m->by_id, m->s->nodes[i].id.pk, (void *)(uintptr_t)(i + 1));
    sodium_bin2hex(hex, sizeof(hex), m->s->nodes[i].id.pk, GV_ID_BYTES);
    t->sim = m;
    t->i = i;
    t->first_agent = m->n_agents;
    t->n_agents = 1 + (uint32_t)gv_rng_below(&m->rng, 2);
    for (uint32_t a = 0; a < t->n_agents; a++) {
      ragent *ag = &m->agents[m->n_agents];
      ag->node = i;
      snprintf(ag->as, sizeof(ag->as), "p%u:a%u", i, a);
      snprintf(ag->addr, sizeof(ag->addr), "%s@%s", ag->as, hex);
      crypto_generichash(h, sizeof(h), (const uint8_t *)ag->addr,
                         strlen(ag->addr), NULL, 0);
      gv_idmap_put(&m->by_addr, h, (void *)(uintptr_t)(m->n_agents + 1));
      m->n_agents++;
    }
    relay_start(m, i);
  }
  for (uint32_t i = 0; i < n; i++)
    gv_sim_seed_candidates(m->s, i, CANDIDATES);
}

static void teardown(rsim *m) {
  for (uint32_t i = 0; i < m->n; i++) {
    rnode *t = &m->nodes[i];
    gv_relay_free(t->r);
    jobs_drop(t);
    free(t->jobs);
    for (size_t k = 0; k < t->n_rows; k++)
      row_free(&t->rows[k]);
    free(t->rows);
  }
  for (size_t i = 0; i < m->n_heap; i++)
    free(m->heap[i].text);
  for (size_t i = 0; i < m->n_recs; i++)
    free(m->recs[i]);
  for (size_t i = 0; i < m->pairs.cap; i++)
    free(m->pairs.slots[i].val);
  gv_idmap_free(&m->by_id);
  gv_idmap_free(&m->msgs);
  gv_idmap_free(&m->pairs);
  gv_idmap_free(&m->by_addr);
  cJSON_Delete(m->send_errors);
  free(m->recs);
  free(m->heap);
  free(m->nodes);
  free(m->agents);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int gv_relaysim_run(const gv_sim_cfg *cfg, const gv_relaysim_opts *ro) {
  rsim m;
  double t0 = now_s(), *lat;
  size_t n_lat = 0;
  int64_t t_drain;
  cJSON *j;
  char *txt;
  uint64_t lost;
  int rc = 0;

  if (sodium_init() < 0)
    return 1;
  memset(&m, 0, sizeof(m));
  m.o = ro;
  if (gv_sim_new(&m.s, cfg) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  setup(&m);
  run_until(&m, m.s->now + FORM_MS);
  fprintf(stderr, "grapevine-sim: formed: %u nodes, %u links\n", m.n,
          m.s->n_links);
  m.t_end = m.s->now + ro->duration_ms;
  for (uint32_t a = 0; a < m.n_agents; a++)
    apush(&m, m.s->now + exp_ms(&m, ro->rate), A_SEND, m.agents[a].node, a,
          NULL);
  if (ro->crash_rate > 0)
    apush(&m, m.s->now + exp_ms(&m, ro->crash_rate), A_CRASH, 0, 0, NULL);
  apush(&m, m.s->now + CHECK_MS, A_CHECK, 0, 0, NULL);
  run_until(&m, m.t_end);
  fprintf(stderr,
          "grapevine-sim: %llu sends, %llu accepted, %llu delivered, %llu "
          "crashes; draining\n",
          (unsigned long long)m.sends, (unsigned long long)m.accepted,
          (unsigned long long)m.delivered, (unsigned long long)m.crashes);
  /* The drain: no sends, no crashes; down nodes come back. */
  t_drain = m.s->now;
  while (m.s->now < t_drain + ro->drain_ms &&
         (outstanding(&m) > 0 || any_down(&m)))
    run_until(&m, m.s->now + 1000);
  check_all(&m);
  lat = malloc((m.n_recs + 1) * sizeof(double));
  for (size_t i = 0; i < m.n_recs; i++)
    if (m.recs[i]->accepted_at >= 0 && m.recs[i]->delivered_at >= 0)
      lat[n_lat++] =
          (double)(m.recs[i]->delivered_at > m.recs[i]->accepted_at
                       ? m.recs[i]->delivered_at - m.recs[i]->accepted_at
                       : 0);
  qsort(lat, n_lat, sizeof(double), gv_sim_cmp_double);
  lost = outstanding(&m);
  for (uint32_t i = 0; i < m.n; i++)
    if (m.nodes[i].r != NULL)
      add_stats(&m, m.nodes[i].r);
  j = report(&m, lat, n_lat, m.s->now - t_drain, now_s() - t0);
  if (ro->out != NULL)
    write_csv(&m, lat, n_lat);
  txt = ro->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  for (size_t i = 0; i < m.n_recs && lost > 0; i++) {
    /* Where each lost message is, as the two stores hold it. */
    const rrec *r = m.recs[i];
    char hex[2 * GV_RW_ID_BYTES + 1];
    if (r->accepted_at < 0 || r->delivered_at >= 0)
      continue;
    sodium_bin2hex(hex, sizeof(hex), r->id, GV_RW_ID_BYTES);
    fprintf(stderr, "grapevine-sim: lost %s %s -> %s accepted at %lld ms:", hex,
            m.agents[r->from].as, m.agents[r->to].as,
            (long long)r->accepted_at);
    for (int in = 0; in < 2; in++) {
      const rnode *t = &m.nodes[m.agents[in ? r->to : r->from].node];
      int st = -1;
      uint64_t seq = 0;
      for (size_t k = 0; k < t->n_rows; k++)
        if (same_msg(&t->rows[k], r->id, in)) {
          st = t->rows[k].u.msg.state;
          seq = t->rows[k].u.msg.seq;
        }
      fprintf(stderr, " %s state %d seq %llu", in ? "inbox" : "outbox", st,
              (unsigned long long)seq);
    }
    fprintf(stderr, "\n");
  }
  if (lost > 0 || m.dups > 0 || m.ooo > 0 || m.s->ip_leaks > 0) {
    fprintf(stderr,
            "grapevine-sim: RELAY INVARIANT VIOLATED: %llu lost, %llu "
            "duplicates, %llu out of order, %llu leaks\n",
            (unsigned long long)lost, (unsigned long long)m.dups,
            (unsigned long long)m.ooo, (unsigned long long)m.s->ip_leaks);
    fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
            (unsigned long long)cfg->seed);
    for (int k = 0; k < ro->argc; k++)
      fprintf(stderr, " %s", ro->argv[k]);
    fprintf(stderr, "\n");
    rc = 3;
  }
  free(lat);
  teardown(&m);
  gv_sim_free(m.s);
  return rc;
}

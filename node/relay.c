/* node/relay.h: the relay router's pure core (docs/RELAY.md). */
#include "relay.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "chan.h"
#include "idmap.h"
#include "invariant.h"
#include "oom.h"
#include "rng.h"

#define DAY_MS (24LL * 3600 * 1000)
#define SWEEP_MS (60LL * 1000)        /* expiry and idle-link sweep, at most */
#define DIAL_HOLDOFF_MS (10LL * 1000) /* one DIAL per node per this */
#define JOIN_HOLDOFF_MS 1000 /* one MEMBERS+DIR answer per node a second */
#define IDLE_LINK_MS (60LL * 1000) /* no message on a dialed link: let go */
#define LOST_QUICK 3  /* links lost under a message, each retried soon */
#define KEYS_MAX 4096 /* cached peer box keys */
#define CREDIT_MAX (64LL * 1024 * 1024)
/* Finished messages kept in memory for status, trace and `read`; older
 * ones are forgotten (their rows stay on disk until a day past their
 * deadline), and an inbound retransmission of one is recognised by its
 * pair's cursor instead of its id. */
#define RECENT_MAX 10000

/* ---- the state ---- */

typedef struct step {
  uint8_t state, reason;
  bool has_hop;
  int64_t at; /* wall */
  uint8_t hop[GV_ID_BYTES];
} step;

struct pairin;
struct agent;
struct rmsg;
struct peer;

/* A queue of messages: live ones are v[off..n). Taking from the front is
 * O(1), which is how acknowledgements and the ring of finished messages
 * take them. */
typedef struct mq {
  struct rmsg **v;
  size_t off, n, cap;
} mq;

/* A message: in our outbox (inbound false) or our inbox (true). */
typedef struct rmsg {
  uint64_t key; /* its rows' number in the store */
  uint8_t id[GV_RW_ID_BYTES];
  bool inbound;
  uint8_t team;
  uint8_t src[GV_ID_BYTES], dst[GV_ID_BYTES];
  char from[GV_RW_AGENT_MAX + 1], to[GV_RW_AGENT_MAX + 1];
  char thread[GV_RW_THREAD_MAX + 1];
  uint64_t seq;
  int64_t created;       /* wall */
  int64_t deadline_wall; /* wall */
  uint8_t state, reason;
  uint8_t cstate, creason; /* the state committed: what anyone is told */
  uint8_t n_ctrace;        /* trace steps committed */
  uint8_t *body;
  uint32_t body_len;
  step *trace;
  uint8_t n_trace, cap_trace;
  bool committed; /* its MSG row is durable */
  /* outbox */
  int64_t next_try; /* monotonic */
  size_t hidx;      /* in the retry heap, or SIZE_MAX */
  unsigned tries;
  bool waiting; /* on waitp's credit list */
  struct peer *waitp;
  bool unanswered;     /* its last packet left on sent_link, no answer since */
  gv_linkid sent_link; /* (svc_down()) */
  uint8_t lost;        /* links lost under it since its last answer */
  bool gone_pending;   /* failed: GONE not yet acknowledged */
  int64_t accepted_at; /* monotonic, for the latency histograms */
  /* inbox */
  bool skip; /* a seq the origin gave up on: no body */
  bool pushed;
  bool recent;         /* in the ring of finished messages */
  struct pairin *pair; /* while seq > its pair's cursor */
  struct agent *ag;    /* the recipient */
} rmsg;

/* Per (local recipient, sender node, sender agent): order and cursor. */
typedef struct pairin {
  uint8_t key[32];
  struct agent *ag;
  uint8_t src[GV_ID_BYTES];
  char from[GV_RW_AGENT_MAX + 1];
  uint64_t cursor; /* every seq <= cursor is acked or skipped */
  uint64_t pushed; /* every seq <= pushed was handed to the connection */
  mq q;            /* seq > cursor, sorted by seq */
} pairin;

typedef struct pairout {
  uint64_t last; /* the last seq given */
} pairout;

typedef struct agent {
  uint8_t team;
  gv_raddr_name name;
  char full[GV_RW_AGENT_MAX + 1]; /* project:name */
  gv_rconn conn;                  /* 0: offline */
  bool has_session;
  uint8_t session[GV_RREQ_SESSION_BYTES];
  size_t unacked; /* pushes not acknowledged */
  bool greeting;  /* its hello not answered yet: nothing is pushed before */
  mq inbox;       /* arrival order, skips left out */
  pairin **pairs;
  size_t n_pairs, cap_pairs;
} agent;

typedef struct conn {
  gv_rconn id;
  agent *ag;
  bool subscribed;
} conn;

typedef struct team {
  uint8_t T[GV_RW_KEY_BYTES];
  uint8_t inviter[GV_ID_BYTES]; /* whose JOIN may dial; zero: none */
  uint8_t (*members)[GV_ID_BYTES];
  size_t n_members, cap_members;
  gv_raddr_ent *dir; /* every agent of the team, ours included */
  size_t n_dir, cap_dir;
  struct {
    uint8_t node[GV_ID_BYTES];
    uint64_t ver; /* of the node's block held (§4.4) */
  } * vers;
  size_t n_vers, cap_vers;
} team;

/* What the relay knows of a peer node: its link, credit and timers. */
typedef struct peer {
  uint8_t id[GV_ID_BYTES];
  unsigned dial_fails; /* dials that ended before READY, in a row */
  int64_t next_dial;   /* no dial before this (backoff after failures) */
  gv_linkid link;      /* valid while up */
  bool up, held, relay, dialed;
  bool inbound;     /* the link is one it dialed to us */
  bool named;       /* silent, and its record names us as a relay (rehold()) */
  bool user;        /* named, and the relay holds its link (cfg.users_max) */
  int64_t credit;   /* bytes of ROUTE we may still send */
  int64_t grant_in; /* bytes of ROUTE it may still send us */
  int64_t consumed; /* received since our last CREDIT */
  int64_t last_dial, last_join;
  int64_t last_room; /* make_room() for a refused dial of it */
  int64_t last_used; /* a message's packet crossed the link (sweep) */
  rmsg **wait;       /* waiting for credit, FIFO */
  size_t n_wait, cap_wait;
  bool has_key;
  gv_rw_boxkey key;
  bool need_sync;    /* a JOIN or DIR for it found no route */
  unsigned sync_try; /* ...so many times in a row */
  int64_t next_sync; /* when to try them again */
  bool has_via;      /* the last hop its packets came to us through */
  uint8_t via[GV_ID_BYTES];
} peer;

/* A send request of an agent, answered at commit or at its wait. */
typedef struct sendreq {
  gv_rconn conn;
  char *req;
  rmsg **m;
  char (*to)[GV_RADDR_TEXT_MAX + 1];
  size_t n;
  bool fanout;
  uint8_t wait;
  int64_t deadline;
  struct sendreq *next; /* on the waiting list */
} sendreq;

enum { FX_LINE, FX_ACCEPTED, FX_STORED, FX_SKIPPED, FX_ACKED, FX_STATE };

typedef struct fx {
  uint8_t type;
  uint8_t kind;   /* FX_ACKED: DELIVERED or READ; FX_STATE: the state */
  uint8_t reason; /* FX_STATE */
  uint8_t step;   /* FX_STATE: trace steps with it */
  bool quiet;     /* FX_STATE: told already (durable elsewhere) */
  bool hello;     /* FX_LINE: a hello's answer (then pushes may start) */
  gv_rconn conn;
  char *line;
  rmsg *m;
  sendreq *sr;
} fx;

typedef struct job {
  uint64_t id;
  gv_rrow *rows;
  size_t n_rows, cap_rows;
  fx *fx;
  size_t n_fx, cap_fx;
} job;

/* An inner packet for this node itself (an agent writing to an agent of
 * the same node): handled after the event, never re-entrantly. */
typedef struct loq_item {
  uint8_t team, kind;
  uint8_t id[GV_RW_ID_BYTES];
  uint8_t *body;
  size_t len;
} loq_item;

struct gv_relay {
  gv_relay_cfg cfg;
  gv_identity self;
  gv_rng rng;
  int64_t wall_offset;
  gv_service svc;

  gv_rw_team keys[GV_RELAY_TEAMS_MAX];
  team teams[GV_RELAY_TEAMS_MAX];
  size_t n_teams;

  gv_idmap msgs;     /* msg_key(id, inbound) -> rmsg */
  gv_idmap pairs_in; /* pair key -> pairin */
  gv_idmap pairs_out;
  gv_idmap agents; /* agent key -> agent */
  gv_idmap peers;  /* node id -> peer */
  gv_idmap conns;  /* conn key -> conn */
  size_t n_keys;

  rmsg **heap; /* outbox retries by next_try */
  size_t n_heap, cap_heap;

  size_t n_out, n_in;
  size_t n_queue; /* inbound, not yet delivered: what the inbox cap counts */
  uint64_t out_bytes, in_bytes;

  rmsg **recent; /* RECENT_MAX slots, oldest at recent_at */
  size_t recent_at, n_recent;

  job *jobs; /* emitted, not completed, in order */
  size_t n_jobs, cap_jobs;
  job cur; /* being built during this event */
  uint64_t next_job;

  sendreq *waiting;

  loq_item *loq;
  size_t n_loq, cap_loq;

  gv_ract *acts;
  size_t head_act, n_act, cap_act;
  uint8_t relays[GV_RELAY_RELAYS_MAX][GV_ID_BYTES]; /* a silent node's */
  size_t n_relays;
  size_t n_users; /* peers with user set */

  int64_t next_sweep, next_refresh;
  int64_t next_sync;    /* the earliest peer's next_sync (INT64_MAX: none) */
  uint64_t last_key;    /* the last row number given to a message */
  int64_t min_deadline; /* earliest deadline of a live message (mono) */
  bool loaded;
  gv_relay_stats st;
};

const double gv_relay_lat_le[GV_RELAY_LAT_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 1e300};

/* ---- small helpers ---- */

#define GROW(p, n, cap)                                                        \
  do {                                                                         \
    if ((n) == (cap)) {                                                        \
      (cap) = (cap) ? 2 * (cap) : 8;                                           \
      (p) = gv__xrealloc((p), (cap) * sizeof(*(p)));                           \
    }                                                                          \
  } while (0)

static size_t mq_len(const mq *q) { return q->n - q->off; }
static rmsg *mq_at(const mq *q, size_t i) { return q->v[q->off + i]; }

/* Room for one more at the end. */
static void mq_room(mq *q) {
  if (q->n < q->cap)
    return;
  if (q->off > 0 && q->off >= q->n / 2) {
    memmove(q->v, q->v + q->off, (q->n - q->off) * sizeof(*q->v));
    q->n -= q->off;
    q->off = 0;
    return;
  }
  q->cap = q->cap ? 2 * q->cap : 8;
  q->v = gv__xrealloc(q->v, q->cap * sizeof(*q->v));
}

static void mq_push(mq *q, rmsg *m) {
  mq_room(q);
  q->v[q->n++] = m;
}

static void mq_del(mq *q, const rmsg *m) {
  if (q->off < q->n && q->v[q->off] == m) {
    q->off++;
    return;
  }
  for (size_t i = q->off; i < q->n; i++)
    if (q->v[i] == m) {
      memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof(*q->v));
      q->n--;
      return;
    }
}

static void mq_free(mq *q) { free(q->v); }

static int64_t wall(const gv_relay *r, int64_t now) {
  return now + r->wall_offset;
}

static void msg_key(uint8_t k[32], const uint8_t id[GV_RW_ID_BYTES],
                    bool inbound) {
  memset(k, 0, 32);
  memcpy(k, id, GV_RW_ID_BYTES);
  k[GV_RW_ID_BYTES] = inbound ? 1 : 2;
}

/* A key for a tuple of byte strings: BLAKE2b-256 of their lengths and
 * bytes, so ("a:b","c") and ("a:bc","") differ. */
static void tuple_key(uint8_t k[32], const void *a, size_t na, const void *b,
                      size_t nb, const void *c, size_t nc) {
  crypto_generichash_state st;
  uint8_t l[3] = {(uint8_t)na, (uint8_t)nb, (uint8_t)nc};

  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, l, sizeof(l));
  crypto_generichash_update(&st, a, na);
  crypto_generichash_update(&st, b, nb);
  crypto_generichash_update(&st, c, nc);
  crypto_generichash_final(&st, k, 32);
}

static void conn_key(uint8_t k[32], gv_rconn c) {
  memset(k, 0, 32);
  memcpy(k, &c, sizeof(c));
}

static void copy_str(char *dst, size_t cap, const char *s, size_t len) {
  if (len >= cap)
    len = cap - 1;
  memcpy(dst, s, len);
  dst[len] = '\0';
}

static bool is_self(const gv_relay *r, const uint8_t *id) {
  return memcmp(id, r->self.pk, GV_ID_BYTES) == 0;
}

/* ---- actions ---- */

static gv_ract *push_act(gv_relay *r, gv_ract_type type) {
  gv_ract *a;

  if (r->head_act > 0 && r->head_act == r->n_act)
    r->head_act = r->n_act = 0;
  GROW(r->acts, r->n_act, r->cap_act);
  a = &r->acts[r->n_act++];
  memset(a, 0, sizeof(*a));
  a->type = type;
  return a;
}

static void emit_line(gv_relay *r, gv_rconn c, char *line) {
  gv_ract *a;

  gv__xcheck(line);
  if (c == 0) {
    free(line);
    return;
  }
  a = push_act(r, GV_RACT_LINE);
  a->conn = c;
  a->data = (uint8_t *)line;
  a->len = strlen(line);
}

/* A message's packet (DATA, GONE and their answers), not the directory's
 * or CREDIT: only those keep a dialed link held (sweep()). The control
 * kinds' outer id is all zeros, every other's never is (§6.4), so a
 * forwarder that sees only the route header tells them apart too. */
static void used_for_message(peer *p, const uint8_t id[GV_RW_ID_BYTES],
                             int64_t now) {
  if (!sodium_is_zero(id, GV_RW_ID_BYTES))
    p->last_used = now;
}

static void emit_send(gv_relay *r, peer *p, uint8_t *buf, size_t len) {
  gv_ract *a = push_act(r, GV_RACT_SEND);
  a->link = p->link;
  a->data = buf;
  a->len = len;
}

/* What cfg.route says of node id; known false when it says nothing. */
static void route_of(gv_relay *r, const uint8_t *id, gv_rroute *rt) {
  memset(rt, 0, sizeof(*rt));
  if (r->cfg.route == NULL || !r->cfg.route(r->cfg.ctx, id, rt))
    rt->known = false;
}

static void emit_hold(gv_relay *r, peer *p, bool on) {
  if (!p->up || p->held == on)
    return;
  p->held = on;
  push_act(r, on ? GV_RACT_HOLD : GV_RACT_RELEASE)->link = p->link;
}

/* ---- the retry heap (outbox messages by next_try) ---- */

static void heap_swap(gv_relay *r, size_t i, size_t j) {
  rmsg *t = r->heap[i];
  r->heap[i] = r->heap[j];
  r->heap[j] = t;
  r->heap[i]->hidx = i;
  r->heap[j]->hidx = j;
}

static void heap_up(gv_relay *r, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (r->heap[p]->next_try <= r->heap[i]->next_try)
      break;
    heap_swap(r, i, p);
    i = p;
  }
}

static void heap_down(gv_relay *r, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, s = i;
    if (l < r->n_heap && r->heap[l]->next_try < r->heap[s]->next_try)
      s = l;
    if (l + 1 < r->n_heap && r->heap[l + 1]->next_try < r->heap[s]->next_try)
      s = l + 1;
    if (s == i)
      return;
    heap_swap(r, i, s);
    i = s;
  }
}

static void heap_del(gv_relay *r, rmsg *m) {
  size_t i = m->hidx;

  if (i == SIZE_MAX)
    return;
  m->hidx = SIZE_MAX;
  if (i != --r->n_heap) {
    r->heap[i] = r->heap[r->n_heap];
    r->heap[i]->hidx = i;
    heap_down(r, i);
    heap_up(r, i);
  }
}

/* Schedules m's next try at t (replacing any). */
static void schedule(gv_relay *r, rmsg *m, int64_t t) {
  m->next_try = t;
  if (m->hidx == SIZE_MAX) {
    GROW(r->heap, r->n_heap, r->cap_heap);
    m->hidx = r->n_heap;
    r->heap[r->n_heap++] = m;
  }
  heap_down(r, m->hidx);
  heap_up(r, m->hidx);
}

/* ---- jobs: rows to commit, and what to do after ---- */

static gv_rrow *add_row(gv_relay *r, gv_rrow_type type) {
  job *j = &r->cur;
  gv_rrow *w;

  GROW(j->rows, j->n_rows, j->cap_rows);
  w = &j->rows[j->n_rows++];
  memset(w, 0, sizeof(*w));
  w->type = type;
  return w;
}

static fx *add_fx(gv_relay *r, uint8_t type) {
  job *j = &r->cur;
  fx *f;

  GROW(j->fx, j->n_fx, j->cap_fx);
  f = &j->fx[j->n_fx++];
  memset(f, 0, sizeof(*f));
  f->type = type;
  return f;
}

static void fill_msg_row(gv_relay *r, const rmsg *m, gv_rrow *w) {
  gv_rmsg_row *x = &w->u.msg;

  x->key = m->key;
  memcpy(x->id, m->id, GV_RW_ID_BYTES);
  x->inbound = m->inbound;
  memcpy(x->team_id, r->keys[m->team].team_id, GV_RW_KEY_BYTES);
  memcpy(x->src, m->src, GV_ID_BYTES);
  memcpy(x->dst, m->dst, GV_ID_BYTES);
  memcpy(x->from, m->from, sizeof(x->from));
  memcpy(x->to, m->to, sizeof(x->to));
  memcpy(x->thread, m->thread, sizeof(x->thread));
  x->seq = m->seq;
  x->created_ms = m->created;
  x->deadline_ms = m->deadline_wall;
  x->state = (gv_rstate)m->state;
  x->reason = (gv_rfail)m->reason;
  x->body = m->body;
  x->body_len = m->body_len;
}

static void add_step(rmsg *m, uint8_t state, uint8_t reason, int64_t at,
                     const uint8_t *hop) {
  step *s;

  GROW(m->trace, m->n_trace, m->cap_trace);
  s = &m->trace[m->n_trace++];
  memset(s, 0, sizeof(*s));
  s->state = state;
  s->reason = reason;
  s->at = at;
  if (hop != NULL) {
    s->has_hop = true;
    memcpy(s->hop, hop, GV_ID_BYTES);
  }
}

static void count_state(gv_relay *r, const rmsg *m, int delta) {
  if (!m->inbound && m->state <= GV_RSTATE_FAILED)
    r->st.by_state[m->state] += (uint64_t)delta;
}

/* Sets m's state, appends its trace step and a STATE row to this job. */
static void set_state(gv_relay *r, rmsg *m, uint8_t state, uint8_t reason,
                      const uint8_t *hop, int64_t now) {
  gv_rrow *w = add_row(r, GV_RROW_STATE);

  count_state(r, m, -1);
  m->state = state;
  m->reason = reason;
  count_state(r, m, 1);
  add_step(m, state, reason, wall(r, now), hop);
  w->u.state.key = m->key;
  memcpy(w->u.state.id, m->id, GV_RW_ID_BYTES);
  w->u.state.inbound = m->inbound;
  w->u.state.state = (gv_rstate)state;
  w->u.state.reason = (gv_rfail)reason;
  w->u.state.at_ms = wall(r, now);
  if (hop != NULL) {
    w->u.state.has_hop = true;
    memcpy(w->u.state.hop, hop, GV_ID_BYTES);
  }
  {
    fx *f = add_fx(r, FX_STATE);
    f->m = m;
    f->kind = state;
    f->reason = reason;
    f->step = m->n_trace;
  }
}

static void job_done(gv_relay *r, size_t i, int status, int64_t now);

#define JOBS_INFLIGHT 2   /* jobs handed to the store at once */
#define JOB_ROWS_MAX 4096 /* a job this big goes at once anyway */

/* Emits the job built during this event. One without rows (an answer that
 * must follow earlier commits) completes with the jobs before it, so
 * nothing overtakes a commit. */
static bool flush_job(gv_relay *r, int64_t now) {
  job *j = &r->cur;
  gv_ract *a;

  if (j->n_rows == 0 && j->n_fx == 0)
    return false;
  /* Group commit: while JOBS_INFLIGHT jobs are being committed, what the
   * events make meanwhile gathers into the next one, so the store commits
   * a burst of messages in a few transactions, not one each. */
  if (r->n_jobs >= JOBS_INFLIGHT && j->n_rows < JOB_ROWS_MAX)
    return false;
  j->id = ++r->next_job;
  GROW(r->jobs, r->n_jobs, r->cap_jobs);
  r->jobs[r->n_jobs++] = *j;
  memset(j, 0, sizeof(*j));
  if (r->jobs[r->n_jobs - 1].n_rows == 0) {
    if (r->n_jobs == 1)
      job_done(r, 0, 0, now);
    return true;
  }
  a = push_act(r, GV_RACT_PERSIST);
  a->job = r->jobs[r->n_jobs - 1].id;
  a->rows = r->jobs[r->n_jobs - 1].rows;
  a->n_rows = r->jobs[r->n_jobs - 1].n_rows;
  return true;
}

/* ---- teams and the directory ---- */

static int team_by_id8(const gv_relay *r, const uint8_t id8[GV_RW_TEAM_ID8]) {
  for (size_t i = 0; i < r->n_teams; i++)
    if (memcmp(r->keys[i].team_id, id8, GV_RW_TEAM_ID8) == 0)
      return (int)i;
  return -1;
}

static int team_by_id(const gv_relay *r, const uint8_t id[GV_RW_KEY_BYTES]) {
  for (size_t i = 0; i < r->n_teams; i++)
    if (memcmp(r->keys[i].team_id, id, GV_RW_KEY_BYTES) == 0)
      return (int)i;
  return -1;
}

static bool is_member(const team *t, const uint8_t *node) {
  for (size_t i = 0; i < t->n_members; i++)
    if (memcmp(t->members[i], node, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* Adds node to team ti's members (and a MEMBER row); false if known. */
static bool add_member(gv_relay *r, size_t ti, const uint8_t *node,
                       bool persist) {
  team *t = &r->teams[ti];
  gv_rrow *w;

  if (is_self(r, node) || is_member(t, node))
    return false;
  GROW(t->members, t->n_members, t->cap_members);
  memcpy(t->members[t->n_members++], node, GV_ID_BYTES);
  if (persist) {
    w = add_row(r, GV_RROW_MEMBER);
    memcpy(w->u.member.team_id, r->keys[ti].team_id, GV_RW_KEY_BYTES);
    memcpy(w->u.member.node, node, GV_ID_BYTES);
  }
  return true;
}

/* The directory entry of (node, project, name) in team t, or NULL. */
static gv_raddr_ent *dir_find(team *t, const uint8_t *node, const char *project,
                              size_t plen, const char *name, size_t nlen) {
  for (size_t i = 0; i < t->n_dir; i++) {
    gv_raddr_ent *e = &t->dir[i];
    if (memcmp(e->node, node, GV_ID_BYTES) == 0 &&
        strlen(e->agent.project) == plen &&
        memcmp(e->agent.project, project, plen) == 0 &&
        strlen(e->agent.name) == nlen && memcmp(e->agent.name, name, nlen) == 0)
      return e;
  }
  return NULL;
}

static void dir_set(team *t, const uint8_t *node, const char *project,
                    size_t plen, const char *name, size_t nlen, bool online) {
  gv_raddr_ent *e = dir_find(t, node, project, plen, name, nlen);

  if (e == NULL) {
    if (t->n_dir >= GV_RW_DIR_MAX * 4)
      return; /* bounded: a team of 4 full member DIRs at most per node */
    GROW(t->dir, t->n_dir, t->cap_dir);
    e = &t->dir[t->n_dir++];
    memset(e, 0, sizeof(*e));
    memcpy(e->node, node, GV_ID_BYTES);
    copy_str(e->agent.project, sizeof(e->agent.project), project, plen);
    copy_str(e->agent.name, sizeof(e->agent.name), name, nlen);
  }
  e->online = online;
}

/* Whether block b lists the held entry x (its agent and online flag). */
static bool block_has(const gv_rw_dir_node *b, const gv_raddr_ent *x) {
  gv_rw_dir_entry e;
  size_t off = 0;

  while (gv_rw_dir_next(b, &off, &e))
    if (e.online == x->online && e.project.len == strlen(x->agent.project) &&
        memcmp(e.project.s, x->agent.project, e.project.len) == 0 &&
        e.name.len == strlen(x->agent.name) &&
        memcmp(e.name.s, x->agent.name, e.name.len) == 0)
      return true;
  return false;
}

/* Whether block b lists exactly the agents (and their online flags) that
 * team t holds for b's node: each of b's is held, and each held is in b. */
static bool same_block(team *t, const gv_rw_dir_node *b) {
  gv_rw_dir_entry e;
  size_t off = 0;
  gv_raddr_ent *x;

  while (gv_rw_dir_next(b, &off, &e)) {
    x = dir_find(t, b->node, e.project.s, e.project.len, e.name.s, e.name.len);
    if (x == NULL || x->online != e.online)
      return false;
  }
  for (size_t i = 0; i < t->n_dir; i++)
    if (memcmp(t->dir[i].node, b->node, GV_ID_BYTES) == 0 &&
        !block_has(b, &t->dir[i]))
      return false;
  return true;
}

/* Forgets node's entries in team t (a full DIR replaces them). */
static void dir_clear_node(team *t, const uint8_t *node) {
  size_t k = 0;

  for (size_t i = 0; i < t->n_dir; i++)
    if (memcmp(t->dir[i].node, node, GV_ID_BYTES) != 0)
      t->dir[k++] = t->dir[i];
  t->n_dir = k;
}

/* ---- peers, keys, links ---- */

static peer *peer_get(gv_relay *r, const uint8_t *id, bool create) {
  peer *p = gv_idmap_get(&r->peers, id);

  if (p == NULL && create) {
    p = gv__xcalloc(1, sizeof(*p));
    memcpy(p->id, id, GV_ID_BYTES);
    p->last_dial = p->last_join = p->last_room = INT64_MIN / 2;
    if (gv_idmap_put(&r->peers, id, p) < 0)
      gv__xcheck(NULL);
  }
  return p;
}

/* The box key shared with node id; NULL if id is no valid key. */
static const gv_rw_boxkey *peer_key(gv_relay *r, const uint8_t *id) {
  peer *p = peer_get(r, id, true);

  if (!p->has_key) {
    if (r->n_keys >= KEYS_MAX) {
      /* Bounded: forget every cached key but the live links' (a forger
       * can make us compute keys for ids of its choosing). */
      for (size_t i = 0; i < r->peers.cap; i++) {
        peer *q = r->peers.slots[i].val;
        if (q != NULL && q->has_key && !q->up && q != p) {
          gv_rw_peer_key_wipe(&q->key);
          q->has_key = false;
          r->n_keys--;
        }
      }
    }
    if (gv_rw_peer_key(&r->self, id, &p->key, NULL) < 0)
      return NULL;
    p->has_key = true;
    r->n_keys++;
  }
  return &p->key;
}

static void dial(gv_relay *r, peer *p, const gv_addr *addr, int64_t now) {
  gv_ract *a;

  if (p->up || now - p->last_dial < DIAL_HOLDOFF_MS || now < p->next_dial)
    return;
  p->last_dial = now;
  p->dialed = true;
  a = push_act(r, GV_RACT_DIAL);
  memcpy(a->peer, p->id, GV_ID_BYTES);
  a->addr = *addr;
}

/* The link a packet for dst leaves on: dst's own; else, for a silent dst,
 * one of the relays its record names that we have a link to, taken in
 * turn by `turn` (a retry count), so that a relay that lost dst is not
 * used for ever; else the hop dst's last packet came through (an answer
 * needs no record to go back). A packet that may_dial (a message) to a
 * broadcasting dst without a link asks for a dial of dst and waits for
 * that link (kick()); to a silent dst that no relay link reaches, it asks
 * for a dial of one of its relays (in turn) before it falls back on that
 * last hop: the hop is a link dst once had for its own reasons and may
 * have lost since, and a message that only ever took it would be dropped
 * there at every try (the relay scenario's lost messages, seed 3). A
 * packet that may not dial (an answer, the directory's) takes the hop to
 * a broadcasting dst too: a silent node that such a dst reached through
 * the silent node's relay has no link to it, and its STORED would be
 * dropped at every retransmission. NULL when there is no link to take. */
static peer *route(gv_relay *r, const uint8_t *dst, bool may_dial,
                   unsigned turn, int64_t now) {
  peer *p = peer_get(r, dst, true), *q, *up[GV_RELAY_RELAYS_MAX];
  size_t n_up = 0;
  gv_rroute rt;

  if (p->up)
    return p;
  route_of(r, dst, &rt);
  if (rt.known && rt.broadcasting) {
    if (may_dial) {
      dial(r, p, &rt.addr, now);
      return NULL;
    }
  } else if (rt.known) {
    for (size_t i = 0; i < rt.n_relays; i++)
      if ((q = peer_get(r, rt.relays[i], true))->up)
        up[n_up++] = q;
    if (n_up > 0)
      return up[turn % n_up];
  }
  for (size_t i = 0; i < rt.n_relays && may_dial; i++) {
    size_t k = (i + turn) % rt.n_relays;
    gv_rroute rr;
    if (is_self(r, rt.relays[k]))
      continue;
    route_of(r, rt.relays[k], &rr);
    if (rr.known && rr.broadcasting) {
      dial(r, peer_get(r, rt.relays[k], true), &rr.addr, now);
      break;
    }
  }
  if (p->has_via && (q = peer_get(r, p->via, false)) != NULL && q->up)
    return q;
  return NULL;
}

/* Seals kind || body for dst into a whole plaintext (channel byte and
 * ROUTE). NULL if dst has no valid key. */
static uint8_t *seal_packet(gv_relay *r, size_t ti, const uint8_t *dst,
                            const uint8_t *id, unsigned kind,
                            const uint8_t *body, size_t blen, size_t *len) {
  const gv_rw_boxkey *k = peer_key(r, dst);
  size_t slen = gv_rw_sealed_size(blen), rlen = gv_rw_route_size(slen);
  uint8_t nonce[GV_RW_NONCE_BYTES], *buf;
  gv_rw_route h;
  size_t n;

  if (k == NULL)
    return NULL;
  memset(&h, 0, sizeof(h));
  memcpy(h.dst, dst, GV_ID_BYTES);
  memcpy(h.src, r->self.pk, GV_ID_BYTES);
  memcpy(h.id, id, GV_RW_ID_BYTES);
  r->cfg.random(r->cfg.ctx, nonce, sizeof(nonce));
  buf = gv__xmalloc(1 + rlen);
  buf[0] = GV_CHAN_RELAY;
  if (gv_rw_seal(k, &r->keys[ti], nonce, &h, kind, body, blen,
                 buf + 1 + GV_RW_ROUTE_HDR, slen, NULL) < 0)
    goto fail;
  h.sealed = buf + 1 + GV_RW_ROUTE_HDR;
  h.sealed_len = slen;
  if (gv_rw_route_encode(&h, buf + 1, rlen, &n, NULL) < 0)
    goto fail;
  *len = 1 + n;
  return buf;
fail:
  free(buf);
  return NULL;
}

enum { TX_SENT, TX_LOCAL, TX_WAIT, TX_NOROUTE };

/* Sends inner kind || body to dst: on a link (TX_SENT, *via its peer),
 * to ourselves (TX_LOCAL, handled after the event), queued on a link's
 * credit (TX_WAIT, when m is given), or not (TX_NOROUTE). */
static int transmit(gv_relay *r, size_t ti, const uint8_t *dst,
                    const uint8_t *id, unsigned kind, const uint8_t *body,
                    size_t blen, rmsg *m, bool dial, peer **via, int64_t now) {
  peer *p;
  uint8_t *buf;
  size_t len;
  loq_item *q;

  if (is_self(r, dst)) {
    GROW(r->loq, r->n_loq, r->cap_loq);
    q = &r->loq[r->n_loq++];
    q->team = (uint8_t)ti;
    q->kind = (uint8_t)kind;
    memcpy(q->id, id, GV_RW_ID_BYTES);
    q->body = blen ? gv__xmalloc(blen) : NULL;
    if (blen)
      memcpy(q->body, body, blen);
    q->len = blen;
    return TX_LOCAL;
  }
  /* Only messages, and the JOIN to a team's inviter (how a node first
   * reaches its team), dial: the directory's other packets go where links
   * already are (or wait, retry_syncs), so they never fight for link
   * slots. */
  if ((p = route(r, dst, m != NULL || dial, m != NULL ? m->tries : 0, now)) ==
      NULL)
    return TX_NOROUTE;
  if (m != NULL &&
      p->credit < (int64_t)(1 + GV_RW_ROUTE_HDR + gv_rw_sealed_size(blen))) {
    if (!m->waiting) {
      m->waiting = true;
      m->waitp = p;
      GROW(p->wait, p->n_wait, p->cap_wait);
      p->wait[p->n_wait++] = m;
    }
    return TX_WAIT;
  }
  if ((buf = seal_packet(r, ti, dst, id, kind, body, blen, &len)) == NULL)
    return TX_NOROUTE;
  p->credit -= (int64_t)(len - 1);
  emit_send(r, p, buf, len);
  used_for_message(p, id, now);
  if (via != NULL)
    *via = p;
  return TX_SENT;
}

/* A control or answer packet with a small body: best effort, no retry. */
static void send_small(gv_relay *r, size_t ti, const uint8_t *dst,
                       const uint8_t *id, const gv_rw_body *b, bool dial,
                       int64_t now) {
  uint8_t stack[256], *body = stack;
  size_t n = gv_rw_body_size(b), len = 0;

  if (n == SIZE_MAX)
    return;
  if (n > sizeof(stack))
    body = gv__xmalloc(n);
  if (gv_rw_body_encode(b, body, n, &len, NULL) == 0 &&
      transmit(r, ti, dst, id, b->kind, body, len, NULL, dial, NULL, now) ==
          TX_NOROUTE &&
      (b->kind == GV_RW_JOIN || b->kind == GV_RW_DIR)) {
    /* The team's sync with dst waits for a route: tried again soon (1 s
     * doubling), not only at the refresh. */
    peer *p = peer_get(r, dst, true);
    /* Six tries (a minute in all); then the refresh and link-ups. */
    if (!p->need_sync && p->sync_try < 6) {
      int64_t wait = 1000LL << p->sync_try;
      p->need_sync = true;
      p->sync_try++;
      p->next_sync = now + wait;
      if (p->next_sync < r->next_sync)
        r->next_sync = p->next_sync;
    }
  }
  if (body != stack)
    free(body);
}

static const uint8_t zero_id[GV_RW_ID_BYTES];

static void send_reply(gv_relay *r, size_t ti, const uint8_t *dst,
                       const uint8_t *id, unsigned kind, uint32_t arg,
                       int64_t now) {
  gv_rw_body b;

  memset(&b, 0, sizeof(b));
  b.kind = (uint8_t)kind;
  if (kind == GV_RW_FAILED)
    b.u.reason = (uint8_t)arg;
  else if (kind == GV_RW_BUSY)
    b.u.retry_after_ms = arg;
  send_small(r, ti, dst, id, &b, false, now);
}

/* The version of node's block in team t (0: none held). */
static uint64_t dir_ver(const team *t, const uint8_t *node) {
  for (size_t i = 0; i < t->n_vers; i++)
    if (memcmp(t->vers[i].node, node, GV_ID_BYTES) == 0)
      return t->vers[i].ver;
  return 0;
}

static void dir_set_ver(team *t, const uint8_t *node, uint64_t ver) {
  for (size_t i = 0; i < t->n_vers; i++)
    if (memcmp(t->vers[i].node, node, GV_ID_BYTES) == 0) {
      t->vers[i].ver = ver;
      return;
    }
  GROW(t->vers, t->n_vers, t->cap_vers);
  memcpy(t->vers[t->n_vers].node, node, GV_ID_BYTES);
  t->vers[t->n_vers++].ver = ver;
}

/* Our own agents changed: a new version of our block, above every one we
 * gave before (the wall clock, so a restart does not go back). */
static void dir_bump(gv_relay *r, size_t ti, int64_t now) {
  team *t = &r->teams[ti];
  uint64_t v = dir_ver(t, r->self.pk) + 1, w = (uint64_t)wall(r, now);
  dir_set_ver(t, r->self.pk, w > v ? w : v);
}

/* Sends dst the blocks of team ti: node's only, or (node NULL) every one
 * held, as many DIR packets as the limits need. */
static void send_dir(gv_relay *r, size_t ti, const uint8_t *dst,
                     const uint8_t *node, int64_t now) {
  team *t = &r->teams[ti];
  gv_rw_dir_node *blocks = gv__xcalloc(t->n_vers + 1, sizeof(*blocks));
  gv_rw_dir_entry *list = gv__xcalloc(t->n_dir + 1, sizeof(*list));
  size_t nb = 0, ne = 0, first = 0;
  gv_rw_body b;

  memset(&b, 0, sizeof(b));
  b.kind = GV_RW_DIR;
  for (size_t k = 0; k <= t->n_vers; k++) {
    bool last = k == t->n_vers;
    size_t have = 0;
    if (!last) {
      const uint8_t *id = t->vers[k].node;
      if (node != NULL && memcmp(id, node, GV_ID_BYTES) != 0)
        continue;
      for (size_t i = 0; i < t->n_dir; i++)
        have += memcmp(t->dir[i].node, id, GV_ID_BYTES) == 0;
    }
    /* Full: what is gathered goes first. */
    if (nb > 0 && (last || nb == GV_RW_MEMBERS_MAX ||
                   ne - first + have > GV_RW_DIR_MAX)) {
      b.u.dir.n_nodes = (uint16_t)nb;
      b.u.dir.nodes = blocks;
      send_small(r, ti, dst, zero_id, &b, false, now);
      nb = 0;
      first = ne;
    }
    if (last || have > GV_RW_DIR_MAX)
      continue;
    blocks[nb].node = t->vers[k].node;
    blocks[nb].ver = t->vers[k].ver;
    blocks[nb].list = list + ne;
    for (size_t i = 0; i < t->n_dir; i++) {
      gv_raddr_ent *e = &t->dir[i];
      if (memcmp(e->node, t->vers[k].node, GV_ID_BYTES) != 0)
        continue;
      list[ne].project =
          (gv_rw_str){e->agent.project, strlen(e->agent.project)};
      list[ne].name = (gv_rw_str){e->agent.name, strlen(e->agent.name)};
      list[ne++].online = e->online;
    }
    blocks[nb].n = (uint16_t)(ne - (size_t)(blocks[nb].list - list));
    nb++;
  }
  free(blocks);
  free(list);
}

/* Our block of team ti (new) to every member we reach without a dial:
 * directly, or through the member's relays. Others' blocks are not passed
 * on: a member hears them from their node, from the whole directory a
 * JOIN is answered with, or at the refresh (flooding them over every link
 * cost a 200-node team more than a million packets in the simulator). */
static void send_own_dir(gv_relay *r, size_t ti, int64_t now) {
  team *t = &r->teams[ti];
  for (size_t i = 0; i < t->n_members; i++)
    send_dir(r, ti, t->members[i], r->self.pk, now);
}

static void send_join(gv_relay *r, size_t ti, const uint8_t *dst, bool dial,
                      int64_t now) {
  gv_rw_body b;
  memset(&b, 0, sizeof(b));
  b.kind = GV_RW_JOIN;
  send_small(r, ti, dst, zero_id, &b, dial, now);
}

/* JOIN to every member of every team we reach, with the directory we
 * hold: on the refresh timer. Each answers MEMBERS and its own. */
static void refresh_all(gv_relay *r, int64_t now) {
  for (size_t ti = 0; ti < r->n_teams; ti++)
    for (size_t i = 0; i < r->teams[ti].n_members; i++) {
      send_join(r, ti, r->teams[ti].members[i],
                memcmp(r->teams[ti].members[i], r->teams[ti].inviter,
                       GV_ID_BYTES) == 0,
                now);
      send_dir(r, ti, r->teams[ti].members[i], NULL, now);
    }
}

/* ---- messages: lookup, create, forget ---- */

static rmsg *msg_get(const gv_relay *r, const uint8_t *id, bool inbound) {
  uint8_t k[32];
  msg_key(k, id, inbound);
  return gv_idmap_get(&r->msgs, k);
}

/* A new message (its row number the next one; a loaded one's is set
 * from its row). */
static rmsg *msg_new(gv_relay *r, const uint8_t *id, bool inbound) {
  rmsg *m = gv__xcalloc(1, sizeof(*m));
  uint8_t k[32];

  m->key = ++r->last_key;
  memcpy(m->id, id, GV_RW_ID_BYTES);
  m->inbound = inbound;
  m->hidx = SIZE_MAX;
  msg_key(k, id, inbound);
  if (gv_idmap_put(&r->msgs, k, m) < 0)
    gv__xcheck(NULL);
  return m;
}

/* Bodies are text (the agent socket takes no NUL), kept NUL-terminated. */
static void set_body(gv_relay *r, rmsg *m, const uint8_t *b, size_t len) {
  m->body = gv__xmalloc(len + 1);
  if (len)
    memcpy(m->body, b, len);
  m->body[len] = '\0';
  m->body_len = (uint32_t)len;
  if (m->inbound)
    r->in_bytes += len;
  else
    r->out_bytes += len;
}

static void drop_body(gv_relay *r, rmsg *m) {
  if (m->inbound)
    r->in_bytes -= m->body_len;
  else
    r->out_bytes -= m->body_len;
  free(m->body);
  m->body = NULL;
  m->body_len = 0;
}

static void deadline_seen(gv_relay *r, int64_t mono) {
  if (mono < r->min_deadline)
    r->min_deadline = mono;
}

static void list_del(rmsg **v, size_t *n, const rmsg *m) {
  for (size_t i = 0; i < *n; i++)
    if (v[i] == m) {
      memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
      (*n)--;
      return;
    }
}

/* Takes outbox message m off the retry heap and off any link's credit
 * list: it has nothing more to send. */
static void unqueue(gv_relay *r, rmsg *m) {
  heap_del(r, m);
  if (m->waiting) {
    list_del(m->waitp->wait, &m->waitp->n_wait, m);
    m->waiting = false;
    m->waitp = NULL;
  }
}

/* True while outbox message m has something to send: its DATA, not yet
 * stored, or its GONE, not yet answered. */
static bool to_send(const rmsg *m) {
  return !m->inbound && m->committed &&
         (m->gone_pending || m->state < GV_RSTATE_STORED);
}

/* Removes m from every structure and frees it. */
static void msg_forget(gv_relay *r, rmsg *m) {
  uint8_t k[32];

  unqueue(r, m);
  if (m->pair != NULL)
    mq_del(&m->pair->q, m);
  if (m->ag != NULL) {
    mq_del(&m->ag->inbox, m);
    if (m->pushed && m->ag->unacked > 0)
      m->ag->unacked--;
  }
  for (sendreq *s = r->waiting; s != NULL; s = s->next)
    for (size_t i = 0; i < s->n; i++)
      if (s->m[i] == m)
        s->m[i] = NULL;
  if (m->recent)
    for (size_t i = 0; i < r->n_recent; i++)
      if (r->recent[(r->recent_at + i) % RECENT_MAX] == m)
        r->recent[(r->recent_at + i) % RECENT_MAX] = NULL;
  if (m->inbound && !m->skip && m->state == GV_RSTATE_STORED)
    r->n_queue--;
  count_state(r, m, -1);
  if (m->inbound)
    r->n_in--;
  else
    r->n_out--;
  drop_body(r, m);
  msg_key(k, m->id, m->inbound);
  gv_idmap_del(&r->msgs, k);
  free(m->trace);
  free(m);
}

/* m is finished: it joins the ring of recent ones, and the oldest there
 * is forgotten. */
static void retire(gv_relay *r, rmsg *m) {
  rmsg *old;

  if (m->recent)
    return;
  if (r->recent == NULL)
    r->recent = gv__xcalloc(RECENT_MAX, sizeof(*r->recent));
  m->recent = true;
  if (r->n_recent < RECENT_MAX) {
    r->recent[(r->recent_at + r->n_recent++) % RECENT_MAX] = m;
    return;
  }
  old = r->recent[r->recent_at];
  r->recent[r->recent_at] = m;
  r->recent_at = (r->recent_at + 1) % RECENT_MAX;
  if (old != NULL) {
    old->recent = false;
    msg_forget(r, old);
  }
}

/* ---- agents and pairs ---- */

static void agent_key(gv_relay *r, uint8_t k[32], size_t ti, const char *full) {
  tuple_key(k, r->keys[ti].team_id, GV_RW_KEY_BYTES, full, strlen(full), NULL,
            0);
}

static agent *agent_get(gv_relay *r, size_t ti, const char *full) {
  uint8_t k[32];
  agent_key(r, k, ti, full);
  return gv_idmap_get(&r->agents, k);
}

/* Registers agent name in team ti (an AGENT row when persist). */
static agent *agent_add(gv_relay *r, size_t ti, const gv_raddr_name *name,
                        bool persist) {
  agent *ag = gv__xcalloc(1, sizeof(*ag));
  uint8_t k[32];
  gv_rrow *w;

  ag->team = (uint8_t)ti;
  ag->name = *name;
  snprintf(ag->full, sizeof(ag->full), "%s:%s", name->project, name->name);
  agent_key(r, k, ti, ag->full);
  if (gv_idmap_put(&r->agents, k, ag) < 0)
    gv__xcheck(NULL);
  dir_set(&r->teams[ti], r->self.pk, name->project, strlen(name->project),
          name->name, strlen(name->name), false);
  if (persist) {
    w = add_row(r, GV_RROW_AGENT);
    memcpy(w->u.agent.team_id, r->keys[ti].team_id, GV_RW_KEY_BYTES);
    w->u.agent.agent = *name;
  }
  return ag;
}

static pairin *pair_in(gv_relay *r, agent *ag, const uint8_t *src,
                       const char *from, size_t flen) {
  uint8_t k[32];
  pairin *p;

  tuple_key(k, ag->full, strlen(ag->full), src, GV_ID_BYTES, from, flen);
  if ((p = gv_idmap_get(&r->pairs_in, k)) != NULL)
    return p;
  p = gv__xcalloc(1, sizeof(*p));
  memcpy(p->key, k, 32);
  p->ag = ag;
  memcpy(p->src, src, GV_ID_BYTES);
  copy_str(p->from, sizeof(p->from), from, flen);
  if (gv_idmap_put(&r->pairs_in, k, p) < 0)
    gv__xcheck(NULL);
  GROW(ag->pairs, ag->n_pairs, ag->cap_pairs);
  ag->pairs[ag->n_pairs++] = p;
  return p;
}

/* Inserts m into its pair's seq-ordered list. */
static void pair_insert(pairin *p, rmsg *m) {
  mq *q = &p->q;
  size_t i;

  mq_room(q);
  i = q->n;
  while (i > q->off && q->v[i - 1]->seq > m->seq)
    i--;
  memmove(&q->v[i + 1], &q->v[i], (q->n - i) * sizeof(*q->v));
  q->v[i] = m;
  q->n++;
  m->pair = p;
}

static uint64_t *pair_out(gv_relay *r, const char *from, const uint8_t *dst,
                          const char *to) {
  uint8_t k[32];
  pairout *p;

  tuple_key(k, from, strlen(from), dst, GV_ID_BYTES, to, strlen(to));
  if ((p = gv_idmap_get(&r->pairs_out, k)) == NULL) {
    p = gv__xcalloc(1, sizeof(*p));
    if (gv_idmap_put(&r->pairs_out, k, p) < 0)
      gv__xcheck(NULL);
  }
  return &p->last;
}

static void addr_of(char out[GV_RADDR_TEXT_MAX + 1], const char *who,
                    const uint8_t *node) {
  char hex[GV_ID_HEX_LEN + 1];
  gv_id_to_hex(node, hex);
  snprintf(out, GV_RADDR_TEXT_MAX + 1, "%s@%s", who, hex);
}

/* ---- outbox: sending and retrying ---- */

static void lat_observe(uint64_t *h, double *sum, double ms) {
  for (size_t i = 0; i < GV_RELAY_LAT_BUCKETS; i++)
    if (ms <= gv_relay_lat_le[i]) {
      h[i]++;
      break;
    }
  *sum += ms;
}

/* Transmits outbox message m (its DATA, or its GONE once failed) and
 * schedules the next try. */
static void try_send(gv_relay *r, rmsg *m, int64_t now) {
  gv_rw_body b;
  uint8_t *body;
  size_t n, len = 0;
  int64_t left = m->deadline_wall - wall(r, now);
  peer *via = NULL;
  int rc;

  memset(&b, 0, sizeof(b));
  if (m->gone_pending) {
    b.kind = GV_RW_GONE;
    b.u.gone.seq = m->seq;
    b.u.gone.from = (gv_rw_str){m->from, strlen(m->from)};
    b.u.gone.to = (gv_rw_str){m->to, strlen(m->to)};
  } else {
    b.kind = GV_RW_DATA;
    b.u.data.ttl_ms = (uint32_t)(left < 1                  ? 1
                                 : left > GV_RW_TTL_MAX_MS ? GV_RW_TTL_MAX_MS
                                                           : left);
    b.u.data.seq = m->seq;
    b.u.data.from = (gv_rw_str){m->from, strlen(m->from)};
    b.u.data.to = (gv_rw_str){m->to, strlen(m->to)};
    b.u.data.thread = (gv_rw_str){m->thread, strlen(m->thread)};
    b.u.data.payload = m->body;
    b.u.data.payload_len = m->body_len;
  }
  n = gv_rw_body_size(&b);
  body = gv__xmalloc(n ? n : 1);
  rc = gv_rw_body_encode(&b, body, n, &len, NULL) < 0
           ? TX_NOROUTE
           : transmit(r, m->team, m->dst, m->id, b.kind, body, len, m, true,
                      &via, now);
  free(body);
  if (rc == TX_WAIT) {
    heap_del(r, m);
    return;
  }
  if (rc == TX_SENT) {
    m->unanswered = true;
    m->sent_link = via->link;
  }
  if (rc == TX_SENT && m->state == GV_RSTATE_ACCEPTED)
    set_state(r, m, GV_RSTATE_SENT, 0, via->id, now);
  m->tries++;
  schedule(r, m,
           now + gv_backoff_ms(&r->rng, r->cfg.retry_min_ms,
                               r->cfg.retry_max_ms, m->tries));
}

/* A link to p came up or got credit: what waits for it goes now. */
static void flush_wait(gv_relay *r, peer *p, int64_t now) {
  size_t n = p->n_wait, i = 0;
  rmsg **v = p->wait;

  p->wait = NULL;
  p->n_wait = p->cap_wait = 0;
  for (; i < n; i++) {
    v[i]->waiting = false;
    v[i]->waitp = NULL;
    if (!to_send(v[i]))
      continue;
    try_send(r, v[i], now);
    if (p->n_wait > 0) /* out of credit again: keep the rest in order */
      break;
  }
  for (i++; i < n; i++) {
    GROW(p->wait, p->n_wait, p->cap_wait);
    p->wait[p->n_wait++] = v[i];
  }
  free(v);
}

static bool route_via(gv_relay *r, const uint8_t *dst, const uint8_t *via) {
  gv_rroute rt;

  if (memcmp(dst, via, GV_ID_BYTES) == 0)
    return true;
  route_of(r, dst, &rt);
  if (!rt.known || rt.broadcasting)
    return false;
  for (size_t i = 0; i < rt.n_relays; i++)
    if (memcmp(rt.relays[i], via, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* A link to `via` came up: messages that can use it are due now. */
static void kick(gv_relay *r, const uint8_t *via, int64_t now) {
  for (size_t i = 0; i < r->n_heap; i++) {
    rmsg *m = r->heap[i];
    if (m->next_try > now && route_via(r, m->dst, via)) {
      m->next_try = now;
      heap_up(r, i);
    }
  }
}

static void notify_state(gv_relay *r, rmsg *m);
static void check_waits(gv_relay *r, int64_t now);

/* The destination answered about outbox message id. */
static void out_reply(gv_relay *r, const uint8_t *src, const uint8_t *id,
                      const gv_rw_body *b, int64_t now) {
  rmsg *m = msg_get(r, id, false);
  uint8_t target;

  if (m == NULL || !m->committed || memcmp(m->dst, src, GV_ID_BYTES) != 0)
    return; /* unknown, or not from its destination: ignored */
  /* Any answer, BUSY too (its wait stands): what left reached it. */
  m->unanswered = false;
  m->lost = 0;
  if (m->gone_pending) {
    if (b->kind != GV_RW_BUSY) { /* any answer acknowledges the GONE */
      m->gone_pending = false;
      unqueue(r, m);
      retire(r, m);
    }
    return;
  }
  switch (b->kind) {
  case GV_RW_BUSY:
    r->st.busy_received++;
    if (m->state < GV_RSTATE_STORED)
      schedule(r, m,
               now + (b->u.retry_after_ms < 100 ? 100 : b->u.retry_after_ms));
    return;
  case GV_RW_FAILED:
    if (m->state >= GV_RSTATE_DELIVERED)
      return;
    unqueue(r, m);
    set_state(r, m, GV_RSTATE_FAILED,
              b->u.reason == GV_RW_FAIL_UNKNOWN_RECIPIENT
                  ? GV_RFAIL_UNKNOWN_RECIPIENT
              : b->u.reason == GV_RW_FAIL_TOO_LARGE ? GV_RFAIL_TOO_LARGE
              : b->u.reason == GV_RW_FAIL_EXPIRED   ? GV_RFAIL_EXPIRED
                                                    : GV_RFAIL_REFUSED,
              NULL, now);
    r->st.failed[m->reason]++;
    drop_body(r, m);
    retire(r, m);
    return;
  case GV_RW_STORED: target = GV_RSTATE_STORED; break;
  case GV_RW_DELIVERED: target = GV_RSTATE_DELIVERED; break;
  default: target = GV_RSTATE_READ; break;
  }
  if (m->state == GV_RSTATE_FAILED || m->state >= target)
    return;
  unqueue(r, m);
  if (m->state < GV_RSTATE_STORED) {
    if (m->accepted_at != 0)
      lat_observe(r->st.lat_stored, &r->st.lat_stored_sum,
                  (double)(now - m->accepted_at));
    drop_body(r, m);
  }
  if (target >= GV_RSTATE_DELIVERED && m->state < GV_RSTATE_DELIVERED &&
      m->accepted_at != 0)
    lat_observe(r->st.lat_delivered, &r->st.lat_delivered_sum,
                (double)(now - m->accepted_at));
  set_state(r, m, target, 0, NULL, now);
  /* Durable already where it happened: the destination committed it
   * before it answered. So the sender is told now, and our own row of it
   * only keeps the trace (a crash before it commits makes us retransmit,
   * and the destination answers the same again). */
  r->cur.fx[r->cur.n_fx - 1].quiet = true;
  m->creason = 0;
  m->n_ctrace = m->n_trace;
  /* Every state between is told too, in order: a subscriber sees sent
   * before stored even when the stored came before our row of sent. */
  while (m->cstate < target) {
    m->cstate++;
    notify_state(r, m);
  }
  check_waits(r, now);
  if (target >= GV_RSTATE_DELIVERED)
    retire(r, m);
}

/* ---- inbox: storing, ordering, handing over ---- */

static void push_ev(gv_relay *r, agent *ag, rmsg *m, const uint64_t *skipped,
                    size_t n_skipped) {
  char from[GV_RADDR_TEXT_MAX + 1];
  gv_rreq_msg x;

  addr_of(from, m->from, m->src);
  memset(&x, 0, sizeof(x));
  memcpy(x.id, m->id, GV_RW_ID_BYTES);
  x.from = from;
  x.to = m->to;
  x.thread = m->thread;
  x.body = (const char *)m->body;
  x.seq = m->seq;
  x.skipped = skipped;
  x.n_skipped = n_skipped;
  emit_line(r, ag->conn, gv_rreq_enc_ev_message(&x));
}

/* The message of seq in p's queue, or NULL. */
static rmsg *pair_find(const pairin *p, uint64_t seq) {
  size_t lo = 0, hi = mq_len(&p->q);

  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (mq_at(&p->q, mid)->seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < mq_len(&p->q) && mq_at(&p->q, lo)->seq == seq ? mq_at(&p->q, lo)
                                                            : NULL;
}

/* Hands p's next messages, in seq order, to its connected agent. Skipped
 * seqs are told with the message after them; a gap stops it. */
static void push_pair(gv_relay *r, pairin *p) {
  agent *ag = p->ag;
  uint64_t skipped[64];

  /* Never before its hello's answer: a client reads that first. */
  while (ag->conn != 0 && !ag->greeting && ag->unacked < GV_RELAY_PUSH_MAX) {
    uint64_t s = p->pushed + 1;
    size_t n_sk = 0;
    rmsg *m;

    while ((m = pair_find(p, s)) != NULL && m->committed && m->skip) {
      if (n_sk < sizeof(skipped) / sizeof(*skipped))
        skipped[n_sk++] = s;
      s++;
    }
    if (m == NULL || !m->committed)
      return; /* a gap, or not durable yet */
    p->pushed = s;
    if (m->state >= GV_RSTATE_DELIVERED)
      continue; /* taken by `inbox` already */
    m->pushed = true;
    ag->unacked++;
    push_ev(r, ag, m, skipped, n_sk);
  }
}

static void push_agent(gv_relay *r, agent *ag) {
  for (size_t i = 0; i < ag->n_pairs && ag->conn != 0; i++)
    push_pair(r, ag->pairs[i]);
}

/* Moves p's cursor over every acked or skipped seq that follows it; a CURSOR
 * row when it moved. */
static void pair_advance(gv_relay *r, pairin *p) {
  uint64_t c = p->cursor;
  gv_rrow *w;
  rmsg *m;

  while (mq_len(&p->q) > 0 && (m = mq_at(&p->q, 0))->seq == c + 1 &&
         m->committed && (m->skip || m->state >= GV_RSTATE_DELIVERED)) {
    c = m->seq;
    p->q.off++;
    m->pair = NULL;
    if (m->skip)
      msg_forget(r, m); /* the cursor stands for it now */
    else
      retire(r, m);
  }
  if (c == p->cursor)
    return;
  p->cursor = c;
  if (p->pushed < c)
    p->pushed = c;
  w = add_row(r, GV_RROW_CURSOR);
  memcpy(w->u.cursor.to, p->ag->full, sizeof(w->u.cursor.to));
  memcpy(w->u.cursor.src, p->src, GV_ID_BYTES);
  memcpy(w->u.cursor.from, p->from, sizeof(w->u.cursor.from));
  w->u.cursor.seq = c;
}

static void in_data(gv_relay *r, size_t ti, const uint8_t *src,
                    const uint8_t *id, const gv_rw_data *d, int64_t now) {
  rmsg *m = msg_get(r, id, true);
  char to[GV_RW_AGENT_MAX + 1];
  agent *ag;
  pairin *p;

  if (m != NULL) { /* a retransmission: answer where it is, store nothing */
    if (!m->committed)
      return; /* STORED goes at its commit */
    send_reply(r, ti, src, id,
               m->skip                           ? GV_RW_FAILED
               : m->state == GV_RSTATE_READ      ? GV_RW_READ
               : m->state == GV_RSTATE_DELIVERED ? GV_RW_DELIVERED
                                                 : GV_RW_STORED,
               GV_RW_FAIL_EXPIRED, now);
    return;
  }
  if (d->payload_len > 0 && memchr(d->payload, 0, d->payload_len) != NULL) {
    r->st.refused_in[GV_RFAIL_REFUSED]++; /* no agent could read it */
    send_reply(r, ti, src, id, GV_RW_FAILED, GV_RW_FAIL_REFUSED, now);
    return;
  }
  copy_str(to, sizeof(to), d->to.s, d->to.len);
  if ((ag = agent_get(r, ti, to)) == NULL) {
    r->st.refused_in[GV_RFAIL_UNKNOWN_RECIPIENT]++;
    send_reply(r, ti, src, id, GV_RW_FAILED, GV_RW_FAIL_UNKNOWN_RECIPIENT, now);
    return;
  }
  p = pair_in(r, ag, src, d->from.s, d->from.len);
  if (d->seq <= p->cursor) {
    /* Passed already: a retransmission of a message delivered and since
     * forgotten (the cursor stands for it), or of one skipped, which its
     * origin marked failed and ignores this for. */
    send_reply(r, ti, src, id, GV_RW_DELIVERED, 0, now);
    return;
  }
  if (pair_find(p, d->seq) != NULL) { /* another id holds this seq */
    r->st.refused_in[GV_RFAIL_REFUSED]++;
    send_reply(r, ti, src, id, GV_RW_FAILED, GV_RW_FAIL_REFUSED, now);
    return;
  }
  if (r->n_queue >= r->cfg.inbox_max ||
      r->in_bytes + d->payload_len > r->cfg.inbox_bytes) {
    r->st.busy_sent++;
    send_reply(r, ti, src, id, GV_RW_BUSY, (uint32_t)r->cfg.busy_retry_ms, now);
    return;
  }
  m = msg_new(r, id, true);
  r->n_in++;
  r->n_queue++;
  m->team = (uint8_t)ti;
  memcpy(m->src, src, GV_ID_BYTES);
  memcpy(m->dst, r->self.pk, GV_ID_BYTES);
  copy_str(m->from, sizeof(m->from), d->from.s, d->from.len);
  memcpy(m->to, to, sizeof(m->to));
  copy_str(m->thread, sizeof(m->thread), d->thread.s, d->thread.len);
  m->seq = d->seq;
  m->created = wall(r, now);
  m->deadline_wall = m->created + d->ttl_ms;
  deadline_seen(r, now + d->ttl_ms);
  m->state = GV_RSTATE_STORED;
  set_body(r, m, d->payload, d->payload_len);
  add_step(m, GV_RSTATE_STORED, 0, m->created, NULL);
  pair_insert(p, m);
  m->ag = ag;
  mq_push(&ag->inbox, m);
  fill_msg_row(r, m, add_row(r, GV_RROW_MSG));
  add_fx(r, FX_STORED)->m = m;
}

/* The origin gave up on seq of (from, to): a skip row holds its place. */
static void in_gone(gv_relay *r, size_t ti, const uint8_t *src,
                    const uint8_t *id, const gv_rw_body *b, int64_t now) {
  rmsg *m = msg_get(r, id, true);
  char to[GV_RW_AGENT_MAX + 1];
  agent *ag;
  pairin *p;

  if (m != NULL) {
    if (m->committed)
      send_reply(r, ti, src, id, GV_RW_STORED, 0, now);
    return;
  }
  copy_str(to, sizeof(to), b->u.gone.to.s, b->u.gone.to.len);
  if ((ag = agent_get(r, ti, to)) == NULL) {
    send_reply(r, ti, src, id, GV_RW_STORED, 0, now);
    return;
  }
  p = pair_in(r, ag, src, b->u.gone.from.s, b->u.gone.from.len);
  if (b->u.gone.seq <= p->cursor || b->u.gone.seq <= p->pushed ||
      pair_find(p, b->u.gone.seq) != NULL) {
    send_reply(r, ti, src, id, GV_RW_STORED, 0, now);
    return;
  }
  m = msg_new(r, id, true);
  r->n_in++;
  m->team = (uint8_t)ti;
  memcpy(m->src, src, GV_ID_BYTES);
  memcpy(m->dst, r->self.pk, GV_ID_BYTES);
  copy_str(m->from, sizeof(m->from), b->u.gone.from.s, b->u.gone.from.len);
  memcpy(m->to, to, sizeof(m->to));
  m->seq = b->u.gone.seq;
  m->created = wall(r, now);
  m->deadline_wall = m->created + DAY_MS;
  deadline_seen(r, now + DAY_MS);
  m->state = GV_RSTATE_FAILED;
  m->reason = GV_RFAIL_EXPIRED;
  m->skip = true;
  set_body(r, m, NULL, 0);
  add_step(m, GV_RSTATE_FAILED, GV_RFAIL_EXPIRED, m->created, NULL);
  pair_insert(p, m);
  fill_msg_row(r, m, add_row(r, GV_RROW_MSG));
  add_fx(r, FX_SKIPPED)->m = m;
}

/* Marks inbound m delivered (or read); the origin hears after commit. */
static void in_mark(gv_relay *r, rmsg *m, uint8_t state, int64_t now) {
  fx *f;

  if (m->skip || m->state >= state)
    return;
  if (m->state == GV_RSTATE_STORED)
    r->n_queue--;
  if (m->pushed) {
    m->pushed = false;
    if (m->ag->unacked > 0)
      m->ag->unacked--;
  }
  set_state(r, m, state, 0, NULL, now);
  f = add_fx(r, FX_ACKED);
  f->m = m;
  f->kind = state == GV_RSTATE_READ ? GV_RW_READ : GV_RW_DELIVERED;
  if (m->pair != NULL)
    pair_advance(r, m->pair);
}

/* ---- agents' requests ---- */

static conn *conn_get(gv_relay *r, gv_rconn c) {
  uint8_t k[32];
  conn_key(k, c);
  return gv_idmap_get(&r->conns, k);
}

static void answer_err(gv_relay *r, gv_rconn c, const char *req, int err,
                       const char *reason) {
  emit_line(r, c, gv_rreq_enc_error(req, err, reason));
}

static char *dup_req(const char *req) {
  char *s;
  size_t n;

  if (req == NULL)
    return NULL;
  n = strlen(req) + 1;
  s = gv__xmalloc(n);
  memcpy(s, req, n);
  return s;
}

static void sendreq_free(sendreq *s) {
  free(s->req);
  free(s->m);
  free(s->to);
  free(s);
}

/* Answers a send with where each of its messages is now. */
static void sendreq_answer(gv_relay *r, sendreq *s) {
  gv_rreq_sent *v = gv__xcalloc(s->n, sizeof(*v));

  for (size_t i = 0; i < s->n; i++) {
    rmsg *m = s->m[i];
    v[i].to = s->to[i];
    if (m == NULL) { /* forgotten meanwhile: it was final long ago */
      v[i].state = GV_RSTATE_FAILED;
      v[i].reason = GV_RFAIL_EXPIRED;
      continue;
    }
    memcpy(v[i].id, m->id, GV_RW_ID_BYTES);
    v[i].state = (gv_rstate)m->cstate;
    v[i].reason = (gv_rfail)m->creason;
  }
  emit_line(r, s->conn, gv_rreq_enc_sent(s->req, v, s->n, s->fanout));
  free(v);
}

static bool sendreq_done(const sendreq *s) {
  for (size_t i = 0; i < s->n; i++)
    if (s->m[i] != NULL && s->m[i]->cstate != GV_RSTATE_FAILED &&
        (!s->m[i]->committed || s->m[i]->cstate < s->wait))
      return false;
  return true;
}

/* Answers the waits that m's new state (or the clock) ends. */
static void check_waits(gv_relay *r, int64_t now) {
  for (sendreq **pp = &r->waiting; *pp != NULL;) {
    sendreq *s = *pp;
    if (s->conn != 0 && !sendreq_done(s) && now < s->deadline) {
      pp = &s->next;
      continue;
    }
    *pp = s->next;
    sendreq_answer(r, s);
    sendreq_free(s);
  }
}

static void cmd_hello(gv_relay *r, conn *c, const gv_rreq *q, int64_t now) {
  char full[GV_RW_AGENT_MAX + 1];
  int ti = 0;
  agent *ag;
  fx *f;

  if (c->ag != NULL) {
    answer_err(r, c->id, q->req, GV_ESTATE,
               "this connection said hello already");
    return;
  }
  if (q->u.hello.has_team) {
    if ((ti = team_by_id8(r, q->u.hello.team)) < 0) {
      answer_err(r, c->id, q->req, GV_EFIELD, "team: this node is not in it");
      return;
    }
  } else if (r->n_teams == 0) {
    answer_err(r, c->id, q->req, GV_ESTATE,
               "this node is in no team: run `grapevine team create`");
    return;
  }
  snprintf(full, sizeof(full), "%s:%s", q->u.hello.as.project,
           q->u.hello.as.name);
  ag = agent_get(r, (size_t)ti, full);
  if (ag != NULL && ag->conn != 0) {
    if (!q->u.hello.has_resume || !ag->has_session ||
        sodium_memcmp(q->u.hello.resume, ag->session, GV_RREQ_SESSION_BYTES)) {
      answer_err(r, c->id, q->req, GV_ENAME_TAKEN,
                 "another live connection holds this name; resume its "
                 "session with its token to take over");
      return;
    }
    conn *old = conn_get(r, ag->conn);
    if (old != NULL) {
      old->ag = NULL;
      push_act(r, GV_RACT_HANGUP)->conn = old->id;
    }
  }
  if (ag == NULL)
    ag = agent_add(r, (size_t)ti, &q->u.hello.as, true);
  if (!(q->u.hello.has_resume && ag->has_session &&
        sodium_memcmp(q->u.hello.resume, ag->session, GV_RREQ_SESSION_BYTES) ==
            0)) {
    r->cfg.random(r->cfg.ctx, ag->session, GV_RREQ_SESSION_BYTES);
    ag->has_session = true;
  }
  ag->conn = c->id;
  ag->unacked = 0;
  for (size_t i = 0; i < ag->n_pairs; i++)
    ag->pairs[i]->pushed = ag->pairs[i]->cursor;
  for (size_t i = 0; i < mq_len(&ag->inbox); i++)
    mq_at(&ag->inbox, i)->pushed = false;
  c->ag = ag;
  r->st.agents_online++;
  dir_set(&r->teams[ti], r->self.pk, ag->name.project, strlen(ag->name.project),
          ag->name.name, strlen(ag->name.name), true);
  dir_bump(r, (size_t)ti, now);
  send_own_dir(r, (size_t)ti, now);
  /* Answered first, then what waits for it is pushed: after the commit of
   * its registration (an AGENT row) when it is new. */
  ag->greeting = true;
  f = add_fx(r, FX_LINE);
  f->conn = c->id;
  f->line =
      gv__xcheck(gv_rreq_enc_hello(q->req, &ag->name, r->self.pk, ag->session));
  f->hello = true;
}

static void cmd_send(gv_relay *r, conn *c, const gv_rreq *q, int64_t now) {
  agent *ag = c->ag;
  team *t;
  gv_raddr_ent me;
  size_t *idx = NULL, found = 0, n;
  uint8_t base[GV_RW_ID_BYTES];
  gv_why why = {{0}};
  sendreq *s = NULL;
  int rc;

  if (ag == NULL) {
    answer_err(r, c->id, q->req, GV_ESTATE, "say hello first");
    return;
  }
  t = &r->teams[ag->team];
  memset(&me, 0, sizeof(me));
  memcpy(me.node, r->self.pk, GV_ID_BYTES);
  me.agent = ag->name;
  idx = gv__xcalloc(t->n_dir + 1, sizeof(*idx));
  rc = gv_raddr_resolve(&q->u.send.to, t->dir, t->n_dir, &me, idx, t->n_dir + 1,
                        &found, &why);
  if (rc == GV_EAMBIGUOUS) {
    emit_line(r, c->id,
              gv_rreq_enc_ambiguous(q->req, why.text, t->dir, idx, found));
    goto out;
  }
  if (rc < 0) {
    answer_err(r, c->id, q->req, rc, why.text);
    goto out;
  }
  n = found;
  if (r->n_out + n > r->cfg.outbox_max ||
      r->out_bytes + n * q->u.send.message_len > r->cfg.outbox_bytes) {
    answer_err(r, c->id, q->req, GV_EOUTBOX_FULL,
               "this node's outbox is full: retry when messages were stored");
    goto out;
  }
  if (q->u.send.key != NULL) {
    if ((rc = gv_rw_id_from_key(base, r->self.pk, r->keys[ag->team].team_id,
                                ag->full, strlen(ag->full), q->u.send.key,
                                strlen(q->u.send.key), &why)) < 0) {
      answer_err(r, c->id, q->req, rc, why.text);
      goto out;
    }
  } else {
    do
      r->cfg.random(r->cfg.ctx, base, sizeof(base));
    while (gv_rw_id_random(base, base) < 0);
  }
  s = gv__xcalloc(1, sizeof(*s));
  s->conn = c->id;
  s->req = dup_req(q->req);
  s->n = n;
  s->m = gv__xcalloc(n, sizeof(*s->m));
  s->to = gv__xcalloc(n, sizeof(*s->to));
  s->fanout = q->u.send.to.kind != GV_RADDR_ONE;
  s->wait = (uint8_t)q->u.send.wait;
  s->deadline = now + (int64_t)q->u.send.timeout_ms;
  for (size_t i = 0; i < n; i++) {
    const gv_raddr_ent *e = &t->dir[idx[i]];
    char to[GV_RW_AGENT_MAX + 1];
    uint8_t id[GV_RW_ID_BYTES];
    rmsg *m;

    snprintf(to, sizeof(to), "%s:%s", e->agent.project, e->agent.name);
    gv_raddr_format_ent(e, s->to[i]);
    if (s->fanout)
      gv_rw_id_fanout(id, base, (uint32_t)(i + 1));
    else
      memcpy(id, base, sizeof(id));
    if ((m = msg_get(r, id, false)) != NULL) { /* the same key again */
      s->m[i] = m;
      continue;
    }
    m = msg_new(r, id, false);
    r->n_out++;
    m->team = ag->team;
    memcpy(m->src, r->self.pk, GV_ID_BYTES);
    memcpy(m->dst, e->node, GV_ID_BYTES);
    memcpy(m->from, ag->full, sizeof(m->from));
    memcpy(m->to, to, sizeof(m->to));
    if (q->u.send.thread != NULL)
      copy_str(m->thread, sizeof(m->thread), q->u.send.thread,
               strlen(q->u.send.thread));
    m->seq = ++*pair_out(r, ag->full, e->node, to);
    m->created = wall(r, now);
    m->deadline_wall = m->created + (int64_t)q->u.send.ttl_ms;
    deadline_seen(r, now + (int64_t)q->u.send.ttl_ms);
    m->state = GV_RSTATE_ACCEPTED;
    count_state(r, m, 1);
    set_body(r, m, (const uint8_t *)q->u.send.message, q->u.send.message_len);
    add_step(m, GV_RSTATE_ACCEPTED, 0, m->created, NULL);
    fill_msg_row(r, m, add_row(r, GV_RROW_MSG));
    s->m[i] = m;
  }
  add_fx(r, FX_ACCEPTED)->sr = s;
out:
  free(idx);
}

static void msg_of(gv_rreq_msg *x, char from[GV_RADDR_TEXT_MAX + 1],
                   const rmsg *m) {
  addr_of(from, m->from, m->src);
  memset(x, 0, sizeof(*x));
  memcpy(x->id, m->id, GV_RW_ID_BYTES);
  x->from = from;
  x->to = m->to;
  x->thread = m->thread;
  x->body = (const char *)m->body;
  x->seq = m->seq;
}

/* An inbox answer of v[0..*n) that fits GV_RREQ_ANSWER_MAX: halves *n
 * until it does (one message always fits); more is set when any was left
 * out. */
static char *inbox_line(const char *req, const gv_rreq_msg *v, size_t *n,
                        bool more) {
  for (;;) {
    char *line = gv__xcheck(gv_rreq_enc_inbox(req, v, *n, more));
    if (*n <= 1 || strlen(line) <= GV_RREQ_ANSWER_MAX)
      return line;
    free(line);
    *n /= 2;
    more = true;
  }
}

static void cmd_inbox(gv_relay *r, conn *c, const gv_rreq *q, int64_t now) {
  agent *ag = c->ag;
  gv_rreq_msg *v;
  char(*from)[GV_RADDR_TEXT_MAX + 1];
  size_t n = 0;
  bool more = false;
  char *line;

  if (ag == NULL) {
    answer_err(r, c->id, q->req, GV_ESTATE, "say hello first");
    return;
  }
  v = gv__xcalloc(q->u.inbox.limit, sizeof(*v));
  from = gv__xcalloc(q->u.inbox.limit, sizeof(*from));
  for (size_t i = 0; i < mq_len(&ag->inbox) && !more; i++) {
    rmsg *m = mq_at(&ag->inbox, i);
    /* Not yet taken; or, with unread_only, not yet read (taken or not). */
    if (m->skip || (q->u.inbox.unread_only ? m->state == GV_RSTATE_READ
                                           : m->state != GV_RSTATE_STORED))
      continue;
    if (n == q->u.inbox.limit) {
      more = true;
    } else {
      msg_of(&v[n], from[n], m);
      n++;
    }
  }
  line = inbox_line(q->req, v, &n, more);
  if (q->u.inbox.peek || n == 0) {
    emit_line(r, c->id, line);
  } else {
    /* Taken: delivered once durable, and answered after that commit. */
    fx *f;
    for (size_t i = 0; i < n; i++)
      in_mark(r, msg_get(r, v[i].id, true), GV_RSTATE_DELIVERED, now);
    f = add_fx(r, FX_LINE);
    f->conn = c->id;
    f->line = line;
  }
  free(v);
  free(from);
}

static void cmd_mark(gv_relay *r, conn *c, const gv_rreq *q, uint8_t state,
                     int64_t now) {
  agent *ag = c->ag;
  char hex[2 * GV_RW_ID_BYTES + 1], why[96];
  fx *f;

  if (ag == NULL) {
    answer_err(r, c->id, q->req, GV_ESTATE, "say hello first");
    return;
  }
  for (size_t i = 0; i < q->u.ids.n; i++) {
    rmsg *m = msg_get(r, q->u.ids.ids[i], true);
    if (m == NULL || m->skip || m->ag != ag || !m->committed) {
      sodium_bin2hex(hex, sizeof(hex), q->u.ids.ids[i], GV_RW_ID_BYTES);
      snprintf(why, sizeof(why), "ids: %s is no message of this agent", hex);
      answer_err(r, c->id, q->req, GV_EFIELD, why);
      return;
    }
  }
  for (size_t i = 0; i < q->u.ids.n; i++)
    in_mark(r, msg_get(r, q->u.ids.ids[i], true), state, now);
  f = add_fx(r, FX_LINE);
  f->conn = c->id;
  f->line = gv__xcheck(gv_rreq_enc_ok(q->req));
}

static void cmd_status(gv_relay *r, conn *c, const gv_rreq *q) {
  rmsg *m = msg_get(r, q->u.status.id, false);
  gv_rreq_step *v;

  if (m == NULL)
    m = msg_get(r, q->u.status.id, true);
  if (m == NULL || !m->committed || (m->inbound && m->skip)) {
    answer_err(r, c->id, q->req, GV_ENOT_FOUND,
               "no message of that id on this node");
    return;
  }
  v = gv__xcalloc(m->n_ctrace + 1, sizeof(*v));
  for (size_t i = 0; i < m->n_ctrace; i++) {
    v[i].state = (gv_rstate)m->trace[i].state;
    v[i].at_ms = (uint64_t)m->trace[i].at;
    v[i].hop = m->trace[i].has_hop ? m->trace[i].hop : NULL;
  }
  emit_line(r, c->id,
            gv_rreq_enc_status(q->req, (gv_rstate)m->cstate,
                               (gv_rfail)m->creason, v, m->n_ctrace));
  free(v);
}

static void cmd_agents(gv_relay *r, conn *c, const gv_rreq *q) {
  size_t ti = c->ag != NULL ? c->ag->team : 0, n = 0;
  gv_raddr_ent *v;
  team *t;

  if (r->n_teams == 0) {
    emit_line(r, c->id, gv_rreq_enc_agents(q->req, NULL, 0));
    return;
  }
  t = &r->teams[ti];
  v = gv__xcalloc(t->n_dir + 1, sizeof(*v));
  for (size_t i = 0; i < t->n_dir; i++)
    if (q->u.agents.project == NULL ||
        strcmp(t->dir[i].agent.project, q->u.agents.project) == 0)
      v[n++] = t->dir[i];
  emit_line(r, c->id, gv_rreq_enc_agents(q->req, v, n));
  free(v);
}

static void agent_gone(gv_relay *r, conn *c, int64_t now) {
  agent *ag = c->ag;

  if (ag == NULL)
    return;
  c->ag = NULL;
  ag->conn = 0;
  ag->greeting = false;
  ag->unacked = 0;
  for (size_t i = 0; i < ag->n_pairs; i++)
    ag->pairs[i]->pushed = ag->pairs[i]->cursor;
  for (size_t i = 0; i < mq_len(&ag->inbox); i++)
    mq_at(&ag->inbox, i)->pushed = false;
  r->st.agents_online--;
  dir_set(&r->teams[ag->team], r->self.pk, ag->name.project,
          strlen(ag->name.project), ag->name.name, strlen(ag->name.name),
          false);
  dir_bump(r, ag->team, now);
  send_own_dir(r, ag->team, now);
}

/* ---- teams' control packets ---- */

static void in_control(gv_relay *r, size_t ti, const uint8_t *src,
                       const gv_rw_body *b, int64_t now) {
  team *t = &r->teams[ti];
  peer *p = peer_get(r, src, true);
  gv_rw_dir_node blk;
  gv_rw_dir_entry e;
  size_t boff = 0, off;

  /* The team mac proved src holds the team's secret: it is a member. */
  add_member(r, ti, src, true);
  switch (b->kind) {
  case GV_RW_JOIN:
    if (now - p->last_join < JOIN_HOLDOFF_MS)
      return;
    p->last_join = now;
    {
      gv_rw_body m;
      uint8_t(*ids)[GV_ID_BYTES] = gv__xcalloc(t->n_members + 1, sizeof(*ids));
      size_t n = 0;
      memset(&m, 0, sizeof(m));
      memcpy(ids[n++], r->self.pk, GV_ID_BYTES);
      for (size_t i = 0; i < t->n_members && n < GV_RW_MEMBERS_MAX; i++)
        if (memcmp(t->members[i], src, GV_ID_BYTES) != 0)
          memcpy(ids[n++], t->members[i], GV_ID_BYTES);
      m.kind = GV_RW_MEMBERS;
      m.u.members.n = (uint16_t)n;
      m.u.members.ids = ids[0];
      send_small(r, ti, src, zero_id, &m, false, now);
      free(ids);
    }
    send_dir(r, ti, src, NULL, now);
    return;
  case GV_RW_MEMBERS:
    for (size_t i = 0; i < b->u.members.n; i++) {
      const uint8_t *id = b->u.members.ids + i * GV_ID_BYTES;
      if (add_member(r, ti, id, true)) {
        send_join(r, ti, id, false, now);
        send_dir(r, ti, id, NULL, now);
      }
    }
    return;
  case GV_RW_DIR:
    /* A newer block of a node replaces its agents, and goes on to the
     * members we reach; an older or equal one is dropped here. Our own
     * block is ours to say. */
    while (gv_rw_dir_node_next(&b->u.dir, &boff, &blk)) {
      if (is_self(r, blk.node)) {
        /* Ours as we said it before a clock step back: say it again,
         * above that version, so that ours wins. Ours at our version and
         * as we hold it is the echo every whole directory carries of its
         * receiver's block: nothing to say (saying it again, to every
         * member, was most of the relay scenario's packets, item 7). */
        uint64_t v = dir_ver(t, r->self.pk);
        if (blk.ver > v || (blk.ver == v && !same_block(t, &blk))) {
          dir_set_ver(t, r->self.pk, blk.ver + 1);
          send_own_dir(r, ti, now);
        }
        continue;
      }
      if (blk.ver <= dir_ver(t, blk.node))
        continue;
      dir_clear_node(t, blk.node);
      for (off = 0; gv_rw_dir_next(&blk, &off, &e);)
        dir_set(t, blk.node, e.project.s, e.project.len, e.name.s, e.name.len,
                e.online);
      dir_set_ver(t, blk.node, blk.ver);
      add_member(r, ti, blk.node, true);
    }
    return;
  default: return;
  }
}

static void on_inner(gv_relay *r, size_t ti, const uint8_t *src,
                     const uint8_t *id, const gv_rw_body *b, int64_t now) {
  switch (b->kind) {
  case GV_RW_DATA: in_data(r, ti, src, id, &b->u.data, now); break;
  case GV_RW_GONE: in_gone(r, ti, src, id, b, now); break;
  case GV_RW_JOIN:
  case GV_RW_MEMBERS:
  case GV_RW_DIR: in_control(r, ti, src, b, now); break;
  default: out_reply(r, src, id, b, now); break;
  }
}

/* Inner packets to ourselves, in the order they were made. */
static void run_local(gv_relay *r, int64_t now) {
  for (size_t i = 0; i < r->n_loq; i++) {
    loq_item q = r->loq[i];
    gv_rw_body b;
    if (gv_rw_body_decode(q.kind, q.body, q.len, &b, NULL) == 0)
      on_inner(r, q.team, r->self.pk, q.id, &b, now);
    free(q.body);
  }
  r->n_loq = 0;
}

/* Every event ends here: local packets, then the job built. */
static void end_event(gv_relay *r, int64_t now) {
  /* A job without rows may complete at once, and its effects may make
   * more: until quiet. */
  do
    while (r->n_loq > 0)
      run_local(r, now);
  while (flush_job(r, now));
}

/* ---- the link service (channel 2) ---- */

static peer *peer_by_link(gv_relay *r, gv_linkid link) {
  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *p = r->peers.slots[i].val;
    if (p != NULL && p->up && p->link == link)
      return p;
  }
  return NULL;
}

static void emit_relays(gv_relay *r) {
  gv_ract *a = push_act(r, GV_RACT_RELAYS);
  a->relays = (const uint8_t(*)[GV_ID_BYTES])r->relays;
  a->n_relays = r->n_relays;
}

static void send_credit(gv_relay *r, peer *p, uint32_t window) {
  uint8_t *buf = gv__xmalloc(1 + GV_RW_CREDIT_LEN);

  buf[0] = GV_CHAN_RELAY;
  gv_rw_credit_encode(window, buf + 1);
  p->grant_in += window;
  emit_send(r, p, buf, 1 + GV_RW_CREDIT_LEN);
}

/* Whether p, on its inbound link, is a silent node whose record (rt)
 * names us as one of its relays: that link is its only way in. */
static bool names_us(const gv_relay *r, const peer *p, const gv_rroute *rt) {
  if (r->cfg.silent || !p->inbound || !rt->known || rt->broadcasting)
    return false;
  for (size_t i = 0; i < rt->n_relays && i < GV_RELAY_RELAYS_MAX; i++)
    if (is_self(r, rt->relays[i]))
      return true;
  return false;
}

/* The relay holds a link it dialed (until idle, sweep()), a silent node's
 * link to its relay, and a relay user's link to us (§5.7). */
static bool wants_hold(const peer *p) {
  return p->dialed || p->relay || p->user;
}

/* A link held only because this relay dialed it for messages, none of
 * which waits for its credit: the relay may let it go (sweep(), make_room()).
 * A relay of ours and a relay user's link are not ours to let go. */
static bool lettable(const peer *p) {
  return p->held && p->dialed && !p->relay && !p->user && p->n_wait == 0;
}

static void set_user(gv_relay *r, peer *p, bool on) {
  if (p->user == on)
    return;
  p->user = on;
  if (on)
    r->n_users++;
  else
    r->n_users--;
}

/* The relays p's record names; SIZE_MAX for a record no longer known
 * (expired, a node gone quiet): last for a slot, first to give one up. */
static size_t named_relays(gv_relay *r, const peer *p) {
  gv_rroute rt;
  route_of(r, p->id, &rt);
  return rt.known ? rt.n_relays : SIZE_MAX;
}

/* Whether a (naming na relays) comes before b (nb) for a slot: fewer
 * relays named first, then the lower id XORed with ours, so that relays
 * with the same users do not all choose the same one. */
static bool first_for_slot(const gv_relay *r, const peer *a, size_t na,
                           const peer *b, size_t nb) {
  if (na != nb)
    return na < nb;
  for (size_t k = 0; k < GV_ID_BYTES; k++)
    if ((a->id[k] ^ r->self.pk[k]) != (b->id[k] ^ r->self.pk[k]))
      return (a->id[k] ^ r->self.pk[k]) < (b->id[k] ^ r->self.pk[k]);
  return false;
}

/* The linked peer that names us and waits for a slot and comes first for
 * one (*n: the relays it names), or NULL. */
static peer *first_waiting(gv_relay *r, size_t *n) {
  peer *best = NULL;

  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *q = r->peers.slots[i].val;
    size_t k;
    if (q == NULL || !q->up || !q->named || q->user)
      continue;
    k = named_relays(r, q);
    if (best == NULL || first_for_slot(r, q, k, best, *n)) {
      best = q;
      *n = k;
    }
  }
  return best;
}

/* A slot for a relay user freed: the linked peers that name us and wait
 * for one take it, the fewest relays named first (their records named us
 * while cfg.users_max were served). */
static void fill_users(gv_relay *r) {
  peer *q;
  size_t n;

  while (r->n_users < r->cfg.users_max && (q = first_waiting(r, &n)) != NULL) {
    set_user(r, q, true);
    emit_hold(r, q, true);
  }
}

/* When every slot is taken, a peer whose record names at most
 * USER_TAKE_MAX relays (us alone) takes the slot of a user whose record
 * names at least USER_SHED_MIN. A silent node names only relays whose
 * links are up (it drops one at link-down), and a link nobody holds is
 * evicted fast, so the relays a record names are a fair proxy for the
 * relays that hold it: the one naming us alone is likely held by none,
 * the one naming 3 or more by 2 others at least once we let it go
 * (docs/SIMULATOR.md, relay scenario, item 11). The gap is what keeps it
 * from swinging back: the user let go still names 2 relays or more, so it
 * cannot take a slot by the same rule until it has lost all but one; a
 * user naming 2 keeps its slot, since without it it might have 1 relay
 * holding it, or none. */
#define USER_TAKE_MAX 1
#define USER_SHED_MIN 3

/* The relay user that comes last for a slot (the most relays named),
 * naming USER_SHED_MIN at least, or NULL. */
static peer *user_to_shed(gv_relay *r) {
  peer *best = NULL;
  size_t best_n = 0;

  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *q = r->peers.slots[i].val;
    size_t k;
    if (q == NULL || !q->user || (k = named_relays(r, q)) < USER_SHED_MIN)
      continue;
    if (best == NULL || first_for_slot(r, best, best_n, q, k)) {
      best = q;
      best_n = k;
    }
  }
  return best;
}

/* The trades above, as long as there is one to make: tried whenever a
 * record changes, the waiting peer's or a user's. Each leaves one user
 * fewer naming USER_SHED_MIN, so they end. p's hold is its caller's to
 * emit. */
static void trade_users(gv_relay *r, peer *p) {
  peer *w, *q;
  size_t n;

  while (r->n_users >= r->cfg.users_max &&
         (w = first_waiting(r, &n)) != NULL && n <= USER_TAKE_MAX &&
         (q = user_to_shed(r)) != NULL) {
    set_user(r, q, false); /* its link falls back on gossip's hold */
    set_user(r, w, true);
    if (q != p)
      emit_hold(r, q, wants_hold(q));
    if (w != p)
      emit_hold(r, w, true);
  }
}

/* Whether the relay holds p's link as a relay user's, from its record (rt)
 * and the room left: a free slot, or the slot of a user others hold. */
static void decide_user(gv_relay *r, peer *p, const gv_rroute *rt) {
  bool was = p->user;

  p->named = names_us(r, p, rt);
  set_user(r, p, p->named && (p->user || r->n_users < r->cfg.users_max));
  if (was && !p->user)
    fill_users(r);
  trade_users(r, p);
}

/* p's record changed: whether it names us as its relay is decided again,
 * and the hold follows. Deciding it only at link-up left the link of a
 * silent node that named us after its link came up (its relays are chosen
 * at its own link-up, and its record reaches us by gossip later) held by
 * gossip alone: young, so the first one evicted when our inbound slots
 * filled (docs/SIMULATOR.md, relay scenario, item 8). A record no longer
 * known changes nothing. */
static void rehold(gv_relay *r, peer *p) {
  gv_rroute rt;

  if (!p->up)
    return;
  route_of(r, p->id, &rt);
  if (!rt.known)
    return;
  decide_user(r, p, &rt);
  emit_hold(r, p, wants_hold(p));
}

static bool svc_up(void *ctx, gv_linkid link, const uint8_t *id, bool dialed,
                   const gv_addr *addr, const gv_msg *hello, int64_t now) {
  gv_relay *r = ctx;
  peer *p = peer_get(r, id, true);
  gv_rroute rt;
  bool hold;

  (void)addr;
  (void)hello;
  p->up = true;
  p->link = link;
  p->held = false;
  p->dial_fails = 0;
  p->next_dial = 0;
  p->sync_try = 0;
  p->credit = 0;
  p->grant_in = 0;
  p->consumed = 0;
  p->last_used = now;
  send_credit(r, p, r->cfg.window);
  p->inbound = !dialed;
  route_of(r, id, &rt);
  if (r->cfg.silent && dialed && rt.known && rt.broadcasting &&
      r->n_relays < GV_RELAY_RELAYS_MAX) {
    memcpy(r->relays[r->n_relays++], id, GV_ID_BYTES);
    p->relay = true;
    emit_relays(r);
  }
  decide_user(r, p, &rt);
  hold = p->held = wants_hold(p);
  /* Members this link reaches (the peer, or a silent member it relays
   * for) hear JOIN and our directory now: after a restart, that is how
   * this node learns the team's agents again without waiting for the
   * refresh. */
  for (size_t ti = 0; ti < r->n_teams; ti++)
    for (size_t i = 0; i < r->teams[ti].n_members; i++)
      if (route_via(r, r->teams[ti].members[i], id)) {
        send_join(r, ti, r->teams[ti].members[i], false, now);
        send_dir(r, ti, r->teams[ti].members[i], NULL, now);
      }
  kick(r, id, now);
  end_event(r, now);
  return hold;
}

/* When message m, which link p's loss most likely took, goes again: as
 * soon as p may be dialed again (DIAL_HOLDOFF_MS after its last dial, at
 * least retry_min_ms from now), for the first LOST_QUICK such losses
 * before any answer; past them (a peer that drops every new link) later
 * each time, DIAL_HOLDOFF_MS doubling. */
static int64_t after_loss(gv_relay *r, rmsg *m, const peer *p, int64_t now) {
  int64_t t = p->last_dial + DIAL_HOLDOFF_MS, min = now + r->cfg.retry_min_ms;

  if (m->lost < UINT8_MAX)
    m->lost++;
  if (m->lost > LOST_QUICK)
    min = now + gv_backoff_ms(&r->rng, DIAL_HOLDOFF_MS, r->cfg.retry_max_ms,
                              m->lost - LOST_QUICK);
  return t > min ? t : min;
}

static void svc_down(void *ctx, gv_linkid link, gv_close why, int64_t now) {
  gv_relay *r = ctx;
  peer *p = peer_by_link(r, link);
  rmsg **v;
  size_t n;
  /* What waited on the link, or left on it and is still unanswered, most
   * likely died with it: a full node evicts its newest inbound link, often
   * before the first packet crosses, and the origin is not told. Such a
   * message goes again after_loss(), not after a backoff grown by tries
   * that never had a chance (in the relay scenario without the directory's
   * echo, a silent origin's message to a full broadcasting node so waited
   * 31 s, then 185 s; docs/SIMULATOR.md, relay scenario, item 13). A link
   * this node let go (unwanted: idle, or make_room()) or its own stop is
   * no such loss. */
  bool lost = why != GV_CLOSE_UNWANTED && why != GV_CLOSE_SHUTDOWN;

  if (p == NULL)
    return;
  p->up = p->held = p->dialed = p->named = false;
  if (p->user) {
    set_user(r, p, false);
    fill_users(r);
  }
  p->credit = p->grant_in = p->consumed = 0;
  v = p->wait;
  n = p->n_wait;
  p->wait = NULL;
  p->n_wait = p->cap_wait = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t t, soon;
    v[i]->waiting = false;
    v[i]->waitp = NULL;
    if (!to_send(v[i]))
      continue;
    v[i]->tries++;
    t = now + gv_backoff_ms(&r->rng, r->cfg.retry_min_ms, r->cfg.retry_max_ms,
                            v[i]->tries);
    if (lost && (soon = after_loss(r, v[i], p, now)) < t)
      t = soon;
    schedule(r, v[i], t);
  }
  free(v);
  v = NULL;
  n = 0;
  for (size_t i = 0, cap = 0; lost && i < r->n_heap; i++) {
    rmsg *m = r->heap[i];
    if (to_send(m) && m->unanswered && m->sent_link == link) {
      GROW(v, n, cap); /* rescheduled after the walk: that moves the heap */
      v[n++] = m;
    }
  }
  for (size_t i = 0; i < n; i++) {
    int64_t soon = after_loss(r, v[i], p, now);
    v[i]->unanswered = false;
    if (soon < v[i]->next_try)
      schedule(r, v[i], soon);
  }
  free(v);
  if (p->relay) {
    p->relay = false;
    for (size_t i = 0; i < r->n_relays; i++)
      if (memcmp(r->relays[i], p->id, GV_ID_BYTES) == 0) {
        memmove(r->relays[i], r->relays[i + 1],
                (r->n_relays - i - 1) * GV_ID_BYTES);
        r->n_relays--;
        break;
      }
    emit_relays(r);
  }
  end_event(r, now);
}

static void forward(gv_relay *r, const gv_rw_hop *h, const uint8_t *msg,
                    size_t len, int64_t now) {
  peer *q = peer_get(r, h->u.route.dst, false);
  uint8_t *buf;

  if (h->u.route.hops + 1 >= GV_RW_HOPS_MAX || q == NULL || !q->up ||
      q->credit < (int64_t)len) {
    r->st.forward_dropped++; /* the origin retries */
    return;
  }
  buf = gv__xmalloc(1 + len);
  buf[0] = GV_CHAN_RELAY;
  memcpy(buf + 1, msg, len);
  buf[1 + 1 + 2 * GV_ID_BYTES] = (uint8_t)(h->u.route.hops + 1);
  q->credit -= (int64_t)len;
  emit_send(r, q, buf, 1 + len);
  used_for_message(q, h->u.route.id, now);
  r->acts[r->n_act - 1].forwarded = true;
  memcpy(r->acts[r->n_act - 1].peer, h->u.route.dst, GV_ID_BYTES);
  memcpy(r->acts[r->n_act - 1].id, h->u.route.id, GV_RW_ID_BYTES);
  r->st.forwarded++;
}

static int svc_recv(void *ctx, gv_linkid link, const uint8_t *msg, size_t len,
                    int64_t now, gv_why *why) {
  gv_relay *r = ctx;
  peer *p = peer_by_link(r, link);
  gv_rw_hop h;
  gv_rw_opened o;
  gv_rw_body b;
  const gv_rw_boxkey *k;
  peer *via_peer = NULL;
  uint8_t *plain;
  int rc;

  if (p == NULL)
    return 0;
  if ((rc = gv_rw_hop_decode(msg, len, &h, why)) < 0)
    return rc;
  if (h.kind == GV_RW_CREDIT) {
    p->credit += h.u.window;
    if (p->credit > CREDIT_MAX)
      p->credit = CREDIT_MAX;
    flush_wait(r, p, now);
    end_event(r, now);
    return 0;
  }
  p->grant_in -= (int64_t)len;
  if (p->grant_in < 0)
    return gv_fail(why, GV_ELIMIT, "relay: ROUTE past the credit granted");
  used_for_message(p, h.u.route.id, now);
  p->consumed += (int64_t)len;
  if (p->consumed >= (int64_t)r->cfg.window / 2) {
    send_credit(r, p, (uint32_t)p->consumed);
    p->consumed = 0;
  }
  if (!is_self(r, h.u.route.dst)) {
    forward(r, &h, msg, len, now);
    end_event(r, now);
    return 0;
  }
  if ((k = peer_key(r, h.u.route.src)) == NULL) {
    r->st.refused_in[GV_RFAIL_REFUSED]++;
    return 0;
  }
  if (memcmp(p->id, h.u.route.src, GV_ID_BYTES) != 0) {
    /* Relayed by p: the way back to src, until its own link or record
     * says better. (Set only once the packet opens: a forger cannot
     * steer our answers.) */
    via_peer = peer_get(r, h.u.route.src, true);
  }
  plain = gv__xmalloc(h.u.route.sealed_len);
  rc = gv_rw_open(k, &h.u.route, r->keys, r->n_teams, plain,
                  h.u.route.sealed_len, &o, NULL);
  if (rc == 0)
    rc = gv_rw_body_decode(o.kind, o.body, o.body_len, &b, NULL);
  if (rc < 0) {
    r->st.refused_in[rc == GV_EBADSIG ? GV_RFAIL_NOT_IN_TEAM
                                      : GV_RFAIL_REFUSED]++;
  } else {
    if (via_peer != NULL) {
      via_peer->has_via = true;
      memcpy(via_peer->via, p->id, GV_ID_BYTES);
    }
    on_inner(r, (size_t)(o.team - r->keys), h.u.route.src, h.u.route.id, &b,
             now);
  }
  free(plain);
  end_event(r, now);
  return 0;
}

void gv_relay_record(gv_relay *r, const uint8_t *id, int64_t now) {
  peer *p = peer_get(r, id, false);

  if (p == NULL || !p->up)
    return;
  rehold(r, p);
  end_event(r, now);
}

/* A dial ended before READY. Ours (a relay dial) backs off, so a node
 * whose link slots are full is not dialed again and again; a duplicate
 * means the peer is reached on another link. */
void gv_relay_dial_failed(gv_relay *r, const uint8_t *id, int64_t now) {
  peer *p = id != NULL ? peer_get(r, id, false) : NULL;

  if (p == NULL || !p->dialed || p->up)
    return;
  p->dialed = false;
  p->dial_fails++;
  p->next_dial = now + gv_backoff_ms(&r->rng, r->cfg.retry_min_ms * 5,
                                     r->cfg.retry_max_ms, p->dial_fails);
}

/* Whether an outbox message waiting for a retry would leave on a link to
 * via: its destination's own, one of its relays, or (route()'s fallback)
 * the hop its destination's last packet came through. */
static bool needed(gv_relay *r, const uint8_t *via) {
  for (size_t i = 0; i < r->n_heap; i++) {
    const uint8_t *dst = r->heap[i]->dst;
    peer *d;
    if (route_via(r, dst, via) ||
        ((d = peer_get(r, dst, false)) != NULL && d->has_via &&
         memcmp(d->via, via, GV_ID_BYTES) == 0))
      return true;
  }
  return false;
}

/* Our own link core refused our dial of id (GV_CLOSE_FULL): its dialed
 * slots are taken, some perhaps by links this relay dialed for earlier
 * messages and keeps until IDLE_LINK_MS passes. Backing off would hold
 * id's messages for minutes (docs/SIMULATOR.md, relay scenario, item 12),
 * so, when a waiting message needs id, the least recently used link that
 * this relay dialed, may let go and no waiting message needs goes now,
 * and the messages for id are due at once: the release reaches the link
 * core before their dial does. The refusal was ours, not id's, so the
 * dial may go again before DIAL_HOLDOFF_MS; but only once in that time,
 * since a release frees no slot when gossip holds the link too, and a
 * refusal after it is backed off as any. Returns false when it made no
 * room. */
static bool make_room(gv_relay *r, const uint8_t *id, int64_t now) {
  peer *p = peer_get(r, id, false), *q = NULL;

  if (p == NULL || !p->dialed || p->up ||
      now - p->last_room < DIAL_HOLDOFF_MS || !needed(r, id))
    return false;
  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *c = r->peers.slots[i].val;
    if (c == NULL || c == p || c->inbound || !lettable(c) || needed(r, c->id))
      continue;
    if (q == NULL || c->last_used < q->last_used ||
        (c->last_used == q->last_used && memcmp(c->id, q->id, GV_ID_BYTES) < 0))
      q = c;
  }
  if (q == NULL)
    return false;
  emit_hold(r, q, false);
  q->dialed = false;
  p->dialed = false;
  p->last_room = now;
  p->last_dial = now - DIAL_HOLDOFF_MS;
  kick(r, id, now);
  return true;
}

static void svc_dial_ended(void *ctx, const uint8_t *id, const gv_addr *addr,
                           gv_close why, int64_t now) {
  (void)addr;
  if (why == GV_CLOSE_DUPLICATE ||
      (why == GV_CLOSE_FULL && make_room(ctx, id, now)))
    return;
  gv_relay_dial_failed(ctx, id, now);
}

const gv_service *gv_relay_service(gv_relay *r) { return &r->svc; }

/* ---- commits ---- */

static void notify_state(gv_relay *r, rmsg *m) {
  agent *ag = agent_get(r, m->team, m->from);
  conn *c;

  if (ag == NULL || ag->conn == 0 || (c = conn_get(r, ag->conn)) == NULL)
    return;
  /* A failure is a non-delivery notice: every sender hears it. */
  if (c->subscribed || m->cstate == GV_RSTATE_FAILED)
    emit_line(r, c->id,
              gv_rreq_enc_ev_state(m->id, (gv_rstate)m->cstate,
                                   (gv_rfail)m->creason));
}

static void run_fx(gv_relay *r, fx *f, int status, int64_t now) {
  rmsg *m = f->m;
  sendreq *s = f->sr;
  gv_why why = {{0}};

  switch (f->type) {
  case FX_LINE:
    if (status == 0 && conn_get(r, f->conn) != NULL) {
      emit_line(r, f->conn, f->line);
      f->line = NULL;
    } else if (status < 0) {
      gv_fail(&why, status, "not stored: %s", gv_err_name(status));
      answer_err(r, f->conn, NULL, status, why.text);
    }
    if (f->conn != 0) {
      conn *c = conn_get(r, f->conn);
      if (c != NULL && c->ag != NULL) {
        if (f->hello)
          c->ag->greeting = false;
        if (status == 0)
          push_agent(r, c->ag);
      }
    }
    free(f->line);
    return;
  case FX_ACCEPTED:
    if (status < 0) {
      for (size_t i = 0; i < s->n; i++)
        if (s->m[i] != NULL && !s->m[i]->committed)
          msg_forget(r, s->m[i]);
      gv_fail(&why, status, "not accepted: the store failed (%s)",
              gv_err_name(status));
      answer_err(r, s->conn, s->req, status, why.text);
      sendreq_free(s);
      return;
    }
    for (size_t i = 0; i < s->n; i++)
      if (s->m[i] != NULL && !s->m[i]->committed) {
        s->m[i]->committed = true;
        s->m[i]->n_ctrace = 1;
        s->m[i]->accepted_at = now;
      }
    /* Answered before anything is sent: `sent` is not durable yet. */
    {
      rmsg **fresh = gv__xcalloc(s->n, sizeof(*fresh));
      size_t n = s->n;
      for (size_t i = 0; i < n; i++)
        fresh[i] = s->m[i];
      if (sendreq_done(s)) {
        sendreq_answer(r, s);
        sendreq_free(s);
      } else {
        s->next = r->waiting;
        r->waiting = s;
      }
      for (size_t i = 0; i < n; i++)
        if (fresh[i] != NULL && fresh[i]->n_trace == 1 &&
            fresh[i]->hidx == SIZE_MAX && !fresh[i]->waiting &&
            fresh[i]->state == GV_RSTATE_ACCEPTED)
          try_send(r, fresh[i], now);
      free(fresh);
    }
    return;
  case FX_STORED:
  case FX_SKIPPED:
    if (status < 0) { /* not stored: forget it, the origin retries */
      msg_forget(r, m);
      return;
    }
    m->committed = true;
    m->cstate =
        m->state == GV_RSTATE_FAILED ? GV_RSTATE_FAILED : GV_RSTATE_STORED;
    m->n_ctrace = 1;
    send_reply(r, m->team, m->src, m->id, GV_RW_STORED, 0, now);
    /* A skip stays queued until the message after it is handed over with
     * it in `skipped`; the ack of that message moves the cursor past both. */
    if (m->pair != NULL && m->pair->ag->conn != 0)
      push_pair(r, m->pair);
    return;
  case FX_ACKED:
    if (status == 0)
      send_reply(r, m->team, m->src, m->id, f->kind, 0, now);
    return;
  case FX_STATE:
    if (f->step > m->n_ctrace && status == 0)
      m->n_ctrace = f->step;
    /* Told already, or overtaken by a later state told first. */
    if (status == 0 && !f->quiet &&
        !(f->kind != GV_RSTATE_FAILED && m->cstate != GV_RSTATE_FAILED &&
          f->kind < m->cstate)) {
      m->cstate = f->kind;
      m->creason = f->reason;
      if (!m->inbound) {
        notify_state(r, m);
        check_waits(r, now);
      }
    }
    return;
  default: return;
  }
}

static void job_done(gv_relay *r, size_t i, int status, int64_t now) {
  job j = r->jobs[i];

  memmove(&r->jobs[i], &r->jobs[i + 1], (r->n_jobs - i - 1) * sizeof(job));
  r->n_jobs--;
  for (size_t k = 0; k < j.n_fx; k++)
    run_fx(r, &j.fx[k], status, now);
  free(j.fx);
  free(j.rows);
}

void gv_relay_committed(gv_relay *r, uint64_t id, int status, int64_t now) {
  for (size_t i = 0; i < r->n_jobs; i++)
    if (r->jobs[i].id == id) {
      job_done(r, i, status, now);
      break;
    }
  while (r->n_jobs > 0 && r->jobs[0].n_rows == 0)
    job_done(r, 0, 0, now);
  end_event(r, now);
}

/* ---- agents' connections ---- */

void gv_relay_conn_open(gv_relay *r, gv_rconn id, int64_t now) {
  conn *c = gv__xcalloc(1, sizeof(*c));
  uint8_t k[32];

  (void)now;
  c->id = id;
  conn_key(k, id);
  if (gv_idmap_put(&r->conns, k, c) < 0)
    gv__xcheck(NULL);
}

void gv_relay_conn_line(gv_relay *r, gv_rconn id, const char *line, size_t len,
                        int64_t now) {
  conn *c = conn_get(r, id);
  gv_why why = {{0}};
  gv_rreq q;
  int rc;

  if (c == NULL)
    return;
  if ((rc = gv_rreq_parse(&q, line, len, &why)) < 0) {
    answer_err(r, id, q.req, rc, why.text);
    if (rc == GV_ETOOBIG)
      push_act(r, GV_RACT_HANGUP)->conn = id;
    gv_rreq_free(&q);
    return;
  }
  switch (q.cmd) {
  case GV_RREQ_HELLO: cmd_hello(r, c, &q, now); break;
  case GV_RREQ_SEND: cmd_send(r, c, &q, now); break;
  case GV_RREQ_INBOX: cmd_inbox(r, c, &q, now); break;
  case GV_RREQ_ACK: cmd_mark(r, c, &q, GV_RSTATE_DELIVERED, now); break;
  case GV_RREQ_READ: cmd_mark(r, c, &q, GV_RSTATE_READ, now); break;
  case GV_RREQ_STATUS: cmd_status(r, c, &q); break;
  case GV_RREQ_AGENTS: cmd_agents(r, c, &q); break;
  case GV_RREQ_SUBSCRIBE:
    if (c->ag == NULL) {
      answer_err(r, id, q.req, GV_ESTATE, "say hello first");
      break;
    }
    c->subscribed = true;
    emit_line(r, id, gv_rreq_enc_ok(q.req));
    break;
  }
  gv_rreq_free(&q);
  end_event(r, now);
}

void gv_relay_conn_closed(gv_relay *r, gv_rconn id, int64_t now) {
  conn *c = conn_get(r, id);
  uint8_t k[32];

  if (c == NULL)
    return;
  agent_gone(r, c, now);
  for (sendreq *s = r->waiting; s != NULL; s = s->next)
    if (s->conn == id)
      s->conn = 0;
  for (size_t i = 0; i < r->n_jobs; i++)
    for (size_t j = 0; j < r->jobs[i].n_fx; j++) {
      fx *f = &r->jobs[i].fx[j];
      if (f->conn == id)
        f->conn = 0;
      if (f->type == FX_ACCEPTED && f->sr->conn == id)
        f->sr->conn = 0;
    }
  check_waits(r, now);
  conn_key(k, id);
  gv_idmap_del(&r->conns, k);
  free(c);
  end_event(r, now);
}

/* ---- time ---- */

/* Expiry and forgetting, at most once a SWEEP_MS (and at the earliest
 * deadline): outbox messages past their deadline fail (a GONE holds their
 * seq at the destination); undelivered inbox messages past theirs become
 * skips; every row a day past its deadline is dropped; a link we dialed
 * for messages that no message crossed for IDLE_LINK_MS is let go. The
 * directory's packets and CREDIT do not count: they go where links already
 * are (§4.4), and counted, they kept such links held for ever and filled a
 * node's dialed slots, so a message to a new destination never got a dial
 * (the relay scenario's lost message, 100 nodes, seed 1). A link we did
 * not dial (a silent node's to us, its relay) is not ours to let go. */
static void sweep(gv_relay *r, int64_t now) {
  int64_t w = wall(r, now), next = INT64_MAX;
  rmsg **dead = NULL, **lapsed = NULL;
  size_t n_dead = 0, cap_dead = 0, n_lapsed = 0, cap_lapsed = 0;

  for (size_t i = 0; i < r->msgs.cap; i++) {
    rmsg *m = r->msgs.slots[i].val;
    if (m == NULL || !m->committed)
      continue;
    if (w >= m->deadline_wall + DAY_MS && !m->gone_pending) {
      GROW(dead, n_dead, cap_dead);
      dead[n_dead++] = m;
      continue;
    }
    if (w >= m->deadline_wall) {
      if (!m->inbound && m->state < GV_RSTATE_STORED) {
        unqueue(r, m);
        set_state(r, m, GV_RSTATE_FAILED, GV_RFAIL_EXPIRED, NULL, now);
        r->st.failed[GV_RFAIL_EXPIRED]++;
        drop_body(r, m);
        m->gone_pending = true;
        m->tries = 0;
        schedule(r, m, now);
      } else if (m->inbound && !m->skip && m->state == GV_RSTATE_STORED) {
        GROW(lapsed, n_lapsed, cap_lapsed); /* changed after the walk */
        lapsed[n_lapsed++] = m;
      }
      if (m->deadline_wall + DAY_MS - r->wall_offset < next)
        next = m->deadline_wall + DAY_MS - r->wall_offset;
    } else if (m->deadline_wall - r->wall_offset < next) {
      next = m->deadline_wall - r->wall_offset;
    }
  }
  /* Undelivered inbox messages past their deadline become skips: the
   * agent hears of them with the next message, the origin gets FAILED. */
  for (size_t i = 0; i < n_lapsed; i++) {
    rmsg *m = lapsed[i];
    r->n_queue--;
    set_state(r, m, GV_RSTATE_FAILED, GV_RFAIL_EXPIRED, NULL, now);
    m->skip = true;
    mq_del(&m->ag->inbox, m);
    if (m->pushed && m->ag->unacked > 0)
      m->ag->unacked--;
    m->pushed = false;
    m->ag = NULL;
    drop_body(r, m);
    send_reply(r, m->team, m->src, m->id, GV_RW_FAILED, GV_RW_FAIL_EXPIRED,
               now);
    if (m->pair == NULL)
      msg_forget(r, m);
    else if (m->pair->ag->conn != 0)
      push_pair(r, m->pair);
  }
  free(lapsed);
  for (size_t i = 0; i < n_dead; i++) {
    gv_rrow *row = add_row(r, GV_RROW_DROP);
    row->u.drop.key = dead[i]->key;
    memcpy(row->u.drop.id, dead[i]->id, GV_RW_ID_BYTES);
    row->u.drop.inbound = dead[i]->inbound;
    msg_forget(r, dead[i]);
  }
  free(dead);
  r->min_deadline = next;
  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *p = r->peers.slots[i].val;
    if (p != NULL && lettable(p) && now - p->last_used >= IDLE_LINK_MS) {
      emit_hold(r, p, false);
      p->dialed = false;
    }
  }
  r->next_sweep = now + SWEEP_MS;
}

/* JOIN and the directory again to the members that had no route. */
static void retry_syncs(gv_relay *r, int64_t now) {
  peer **due = NULL;
  size_t n = 0, cap = 0;

  r->next_sync = INT64_MAX;
  for (size_t i = 0; i < r->peers.cap; i++) {
    peer *p = r->peers.slots[i].val;
    if (p == NULL || !p->need_sync)
      continue;
    if (p->next_sync <= now) {
      GROW(due, n, cap);
      due[n++] = p;
    } else if (p->next_sync < r->next_sync) {
      r->next_sync = p->next_sync;
    }
  }
  for (size_t k = 0; k < n; k++) {
    due[k]->need_sync = false; /* set again if still no route */
    for (size_t ti = 0; ti < r->n_teams; ti++)
      if (is_member(&r->teams[ti], due[k]->id)) {
        send_join(r, ti, due[k]->id, false, now);
        send_dir(r, ti, due[k]->id, NULL, now);
      }
  }
  free(due);
}

void gv_relay_tick(gv_relay *r, int64_t now) {
  if (!r->loaded)
    return;
  if (now >= r->next_sweep || now >= r->min_deadline)
    sweep(r, now);
  if (now >= r->next_refresh) {
    refresh_all(r, now);
    r->next_refresh = now + r->cfg.dir_refresh_ms;
  }
  if (now >= r->next_sync)
    retry_syncs(r, now);
  while (r->n_heap > 0 && r->heap[0]->next_try <= now)
    try_send(r, r->heap[0], now);
  check_waits(r, now);
  end_event(r, now);
}

int64_t gv_relay_expiry(const gv_relay *r) {
  int64_t t;

  if (!r->loaded)
    return INT64_MAX;
  t = r->next_sweep < r->next_refresh ? r->next_sweep : r->next_refresh;
  if (r->next_sync < t)
    t = r->next_sync;
  if (r->min_deadline < t)
    t = r->min_deadline;
  if (r->n_heap > 0 && r->heap[0]->next_try < t)
    t = r->heap[0]->next_try;
  for (const sendreq *s = r->waiting; s != NULL; s = s->next)
    if (s->deadline < t)
      t = s->deadline;
  return t;
}

/* ---- restart ---- */

void gv_relay_load(gv_relay *r, const gv_rrow *w) {
  int ti;
  rmsg *m;

  switch (w->type) {
  case GV_RROW_AGENT:
    if ((ti = team_by_id(r, w->u.agent.team_id)) >= 0) {
      char full[GV_RW_AGENT_MAX + 1];
      snprintf(full, sizeof(full), "%s:%s", w->u.agent.agent.project,
               w->u.agent.agent.name);
      if (agent_get(r, (size_t)ti, full) == NULL)
        agent_add(r, (size_t)ti, &w->u.agent.agent, false);
    }
    return;
  case GV_RROW_MEMBER:
    if ((ti = team_by_id(r, w->u.member.team_id)) >= 0)
      add_member(r, (size_t)ti, w->u.member.node, false);
    return;
  case GV_RROW_MSG: {
    const gv_rmsg_row *x = &w->u.msg;
    if ((ti = team_by_id(r, x->team_id)) < 0 ||
        msg_get(r, x->id, x->inbound) != NULL)
      return; /* a team this node left */
    m = msg_new(r, x->id, x->inbound);
    m->key = x->key;
    if (x->key > r->last_key)
      r->last_key = x->key;
    m->team = (uint8_t)ti;
    memcpy(m->src, x->src, GV_ID_BYTES);
    memcpy(m->dst, x->dst, GV_ID_BYTES);
    memcpy(m->from, x->from, sizeof(m->from));
    memcpy(m->to, x->to, sizeof(m->to));
    memcpy(m->thread, x->thread, sizeof(m->thread));
    m->seq = x->seq;
    m->created = x->created_ms;
    m->deadline_wall = x->deadline_ms;
    m->committed = true;
    add_step(m, x->inbound ? GV_RSTATE_STORED : GV_RSTATE_ACCEPTED,
             x->inbound && x->state == GV_RSTATE_FAILED ? GV_RFAIL_EXPIRED : 0,
             x->created_ms, NULL);
    m->state = m->cstate = (uint8_t)x->state;
    m->reason = m->creason = (uint8_t)x->reason;
    m->n_ctrace = 1;
    if (x->inbound) {
      r->n_in++;
      m->skip = m->state == GV_RSTATE_FAILED;
      if (m->state == GV_RSTATE_STORED)
        r->n_queue++;
      if (!m->skip) {
        set_body(r, m, x->body, x->body_len);
        m->ag = agent_get(r, (size_t)ti, m->to);
      } else {
        set_body(r, m, NULL, 0);
      }
      {
        agent *ag = agent_get(r, (size_t)ti, m->to);
        if (ag != NULL) {
          pair_insert(pair_in(r, ag, m->src, m->from, strlen(m->from)), m);
          if (m->ag != NULL)
            mq_push(&ag->inbox, m);
        }
      }
    } else {
      uint64_t *last = pair_out(r, m->from, m->dst, m->to);
      r->n_out++;
      if (m->seq > *last)
        *last = m->seq;
      count_state(r, m, 1);
      if (m->state < GV_RSTATE_STORED)
        set_body(r, m, x->body, x->body_len);
      else
        set_body(r, m, NULL, 0);
      m->gone_pending =
          m->state == GV_RSTATE_FAILED && m->reason == GV_RFAIL_EXPIRED;
    }
    return;
  }
  case GV_RROW_STATE:
    if ((m = msg_get(r, w->u.state.id, w->u.state.inbound)) == NULL)
      return;
    add_step(m, (uint8_t)w->u.state.state, (uint8_t)w->u.state.reason,
             w->u.state.at_ms, w->u.state.has_hop ? w->u.state.hop : NULL);
    m->n_ctrace = m->n_trace;
    return;
  case GV_RROW_CURSOR: {
    agent *ag = NULL;
    for (size_t i = 0; i < r->n_teams && ag == NULL; i++)
      ag = agent_get(r, i, w->u.cursor.to);
    if (ag != NULL) {
      pairin *p = pair_in(r, ag, w->u.cursor.src, w->u.cursor.from,
                          strlen(w->u.cursor.from));
      rmsg *m2;
      if (w->u.cursor.seq > p->cursor)
        p->cursor = w->u.cursor.seq;
      while (mq_len(&p->q) > 0 && (m2 = mq_at(&p->q, 0))->seq <= p->cursor) {
        p->q.off++;
        m2->pair = NULL;
        if (m2->skip)
          msg_forget(r, m2);
        else
          retire(r, m2);
      }
      p->pushed = p->cursor;
    }
    return;
  }
  default: return;
  }
}

void gv_relay_loaded(gv_relay *r, int64_t now) {
  rmsg **done = NULL;
  size_t n_done = 0, cap_done = 0;

  for (size_t i = 0; i < r->msgs.cap; i++) {
    rmsg *m = r->msgs.slots[i].val;
    if (m == NULL)
      continue;
    if (!m->inbound && (m->state < GV_RSTATE_STORED || m->gone_pending))
      schedule(r, m, now);
    else if (!m->inbound &&
             (m->state == GV_RSTATE_DELIVERED || m->state == GV_RSTATE_READ ||
              m->state == GV_RSTATE_FAILED)) {
      GROW(done, n_done, cap_done); /* retired after the walk */
      done[n_done++] = m;
    }
    deadline_seen(r, m->deadline_wall - r->wall_offset);
  }
  for (size_t i = 0; i < n_done; i++)
    retire(r, done[i]);
  free(done);
  /* Our agents are all offline now: a new version of our blocks. */
  for (size_t ti = 0; ti < r->n_teams; ti++)
    dir_bump(r, ti, now);
  r->loaded = true;
  r->next_sweep = now;
  r->next_refresh = now;
  end_event(r, now);
}

/* ---- lifecycle ---- */

void gv_relay_cfg_default(gv_relay_cfg *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->outbox_max = 100000;
  cfg->outbox_bytes = 1ULL << 30;
  cfg->inbox_max = 100000;
  cfg->inbox_bytes = 1ULL << 30;
  cfg->window = GV_RELAY_WINDOW;
  cfg->retry_min_ms = 1000;
  cfg->retry_max_ms = 5 * 60 * 1000;
  cfg->busy_retry_ms = 5000;
  cfg->dir_refresh_ms = 5 * 60 * 1000;
  cfg->users_max = 16;
}

int gv_relay_new(gv_relay **out, const gv_relay_cfg *cfg,
                 const gv_identity *self, int64_t now) {
  gv_relay *r;
  uint8_t seed[8 + GV_IDMAP_KEY_BYTES];
  uint64_t s = 0;

  (void)now;
  if (cfg->random == NULL || cfg->window < 1024)
    return GV_EINVAL;
  r = gv__xcalloc(1, sizeof(*r));
  r->cfg = *cfg;
  r->self = *self;
  cfg->random(cfg->ctx, seed, sizeof(seed));
  memcpy(&s, seed, 8);
  gv_rng_seed(&r->rng, s);
  gv_idmap_init(&r->msgs, seed + 8);
  gv_idmap_init(&r->pairs_in, seed + 8);
  gv_idmap_init(&r->pairs_out, seed + 8);
  gv_idmap_init(&r->agents, seed + 8);
  gv_idmap_init(&r->peers, seed + 8);
  gv_idmap_init(&r->conns, seed + 8);
  r->svc.ctx = r;
  r->svc.up = svc_up;
  r->svc.down = svc_down;
  r->svc.recv = svc_recv;
  r->svc.dial_ended = svc_dial_ended;
  r->min_deadline = INT64_MAX;
  r->next_sweep = r->next_refresh = r->next_sync = INT64_MAX;
  sodium_memzero(seed, sizeof(seed));
  *out = r;
  return 0;
}

int gv_relay_team_add(gv_relay *r, const uint8_t T[GV_RW_KEY_BYTES],
                      const uint8_t *inviter, int64_t now) {
  gv_rw_team k;
  int ti;

  gv_rw_team_keys(T, &k);
  if ((ti = team_by_id(r, k.team_id)) < 0) {
    if (r->n_teams >= GV_RELAY_TEAMS_MAX) {
      gv_rw_team_keys_wipe(&k);
      return GV_ELIMIT;
    }
    ti = (int)r->n_teams++;
    r->keys[ti] = k;
    memcpy(r->teams[ti].T, T, GV_RW_KEY_BYTES);
    dir_bump(r, (size_t)ti, now);
  }
  gv_rw_team_keys_wipe(&k);
  if (inviter != NULL && !is_self(r, inviter)) {
    memcpy(r->teams[ti].inviter, inviter, GV_ID_BYTES);
    add_member(r, (size_t)ti, inviter, r->loaded);
    if (r->loaded) {
      send_join(r, (size_t)ti, inviter, true, now);
      send_dir(r, (size_t)ti, inviter, NULL, now);
    }
  }
  end_event(r, now);
  return 0;
}

void gv_relay_set_wall(gv_relay *r, int64_t offset) { r->wall_offset = offset; }

static void free_map(gv_idmap *m, void (*f)(void *)) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].val != NULL)
      f(m->slots[i].val);
  gv_idmap_free(m);
}

static void free_msg(void *p) {
  rmsg *m = p;
  free(m->body);
  free(m->trace);
  free(m);
}

static void free_pairin(void *p) {
  mq_free(&((pairin *)p)->q);
  free(p);
}

static void free_agent(void *p) {
  agent *ag = p;
  mq_free(&ag->inbox);
  free(ag->pairs);
  free(ag);
}

static void free_peer(void *p) {
  peer *q = p;
  gv_rw_peer_key_wipe(&q->key);
  free(q->wait);
  free(q);
}

void gv_relay_free(gv_relay *r) {
  gv_ract a;

  if (r == NULL)
    return;
  while (gv_relay_next(r, &a))
    free(a.data);
  free(r->acts);
  for (size_t i = 0; i < r->n_jobs; i++) {
    for (size_t k = 0; k < r->jobs[i].n_fx; k++) {
      free(r->jobs[i].fx[k].line);
      if (r->jobs[i].fx[k].type == FX_ACCEPTED)
        sendreq_free(r->jobs[i].fx[k].sr);
    }
    free(r->jobs[i].fx);
    free(r->jobs[i].rows);
  }
  free(r->jobs);
  for (size_t k = 0; k < r->cur.n_fx; k++) {
    free(r->cur.fx[k].line);
    if (r->cur.fx[k].type == FX_ACCEPTED)
      sendreq_free(r->cur.fx[k].sr);
  }
  free(r->cur.fx);
  free(r->cur.rows);
  while (r->waiting != NULL) {
    sendreq *s = r->waiting;
    r->waiting = s->next;
    sendreq_free(s);
  }
  for (size_t i = 0; i < r->n_loq; i++)
    free(r->loq[i].body);
  free(r->loq);
  free(r->heap);
  free(r->recent);
  free_map(&r->msgs, free_msg);
  free_map(&r->pairs_in, free_pairin);
  free_map(&r->pairs_out, free);
  free_map(&r->agents, free_agent);
  free_map(&r->peers, free_peer);
  free_map(&r->conns, free);
  for (size_t i = 0; i < r->n_teams; i++) {
    free(r->teams[i].members);
    free(r->teams[i].dir);
    free(r->teams[i].vers);
    gv_rw_team_keys_wipe(&r->keys[i]);
    sodium_memzero(r->teams[i].T, GV_RW_KEY_BYTES);
  }
  sodium_memzero(&r->self, sizeof(r->self));
  free(r);
}

bool gv_relay_next(gv_relay *r, gv_ract *a) {
  if (r->head_act >= r->n_act) {
#ifdef GV_DEBUG
    gv_why why;
    if (gv_relay_check(r, &why) < 0)
      gv__invariant_failed(why.text, __FILE__, __LINE__);
#endif
    r->head_act = r->n_act = 0;
    return false;
  }
  *a = r->acts[r->head_act++];
  return true;
}

/* ---- inspection ---- */

void gv_relay_stats_get(const gv_relay *r, gv_relay_stats *out) {
  *out = r->st;
  out->outbox = r->n_out;
  out->outbox_bytes = r->out_bytes;
  out->inbox = r->n_in;
  out->inbox_bytes = r->in_bytes;
}

int gv_relay_check(const gv_relay *r, gv_why *why) {
  size_t n_out = 0, n_in = 0, n_users = 0;

  for (size_t i = 0; i < r->n_heap; i++) {
    const rmsg *m = r->heap[i];
    if (m->hidx != i)
      return gv_fail(why, GV_ESTATE, "heap: index %zu says %zu", i, m->hidx);
    if (i > 0 && r->heap[(i - 1) / 2]->next_try > m->next_try)
      return gv_fail(why, GV_ESTATE, "heap: order broken at %zu", i);
    if (m->inbound || !m->committed ||
        (m->state >= GV_RSTATE_STORED && !m->gone_pending))
      return gv_fail(why, GV_ESTATE, "heap: a message with nothing to send");
  }
  for (size_t i = 0; i < r->msgs.cap; i++) {
    const rmsg *m = r->msgs.slots[i].val;
    if (m == NULL)
      continue;
    if (m->inbound)
      n_in++;
    else
      n_out++;
    /* §8.4: a live outbox message is retried, waits for credit, or waits
     * for its commit. */
    if (!m->inbound && m->committed && m->state < GV_RSTATE_STORED &&
        m->hidx == SIZE_MAX && !m->waiting)
      return gv_fail(why, GV_ESTATE, "outbox: a %s message nobody retries",
                     gv_rstate_name((gv_rstate)m->state));
  }
  if (n_in != r->n_in || n_out != r->n_out)
    return gv_fail(why, GV_ESTATE, "counts: %zu/%zu in, %zu/%zu out", n_in,
                   r->n_in, n_out, r->n_out);
  /* §8.5: within the caps; nothing is evicted to make room. */
  if (r->n_queue > r->cfg.inbox_max)
    return gv_fail(why, GV_ESTATE, "inbox over its cap");
  for (size_t i = 0; i < r->pairs_in.cap; i++) {
    const pairin *p = r->pairs_in.slots[i].val;
    if (p == NULL)
      continue;
    if (p->pushed < p->cursor)
      return gv_fail(why, GV_ESTATE, "pair: pushed below the cursor");
    /* §8.3: what the hand-over passed was handed over (or taken, or is a
     * skip), while the agent is connected. */
    for (size_t k = 0; p->ag->conn != 0 && k < mq_len(&p->q); k++) {
      const rmsg *m = mq_at(&p->q, k);
      if (m->seq <= p->pushed && !m->skip && !m->pushed &&
          m->state == GV_RSTATE_STORED)
        return gv_fail(why, GV_ESTATE,
                       "pair %s: seq %llu passed (pushed %llu, cursor %llu) "
                       "but never handed over",
                       p->from, (unsigned long long)m->seq,
                       (unsigned long long)p->pushed,
                       (unsigned long long)p->cursor);
    }
    for (size_t k = 0; k < mq_len(&p->q); k++) {
      if (mq_at(&p->q, k)->seq <= p->cursor)
        return gv_fail(why, GV_ESTATE, "pair: seq %llu at or below cursor",
                       (unsigned long long)mq_at(&p->q, k)->seq);
      if (k > 0 && mq_at(&p->q, k - 1)->seq >= mq_at(&p->q, k)->seq)
        return gv_fail(why, GV_ESTATE, "pair: seqs out of order");
    }
  }
  for (size_t i = 0; i < r->peers.cap; i++) {
    const peer *p = r->peers.slots[i].val;
    if (p == NULL)
      continue;
    n_users += p->user;
    if (p->user && !(p->up && p->named && p->held))
      return gv_fail(why, GV_ESTATE, "a relay user's link not held");
    if (p->up && p->named && !p->user && r->n_users < r->cfg.users_max)
      return gv_fail(why, GV_ESTATE, "a relay user left waiting with room");
  }
  if (n_users != r->n_users || n_users > r->cfg.users_max)
    return gv_fail(why, GV_ESTATE, "relay users: %zu counted, %zu kept",
                   n_users, r->n_users);
  return 0;
}

/* grapevine-sim --scenario eclipse|sybil|spam|forged: see attack.h for the
 * model.
 *
 * Run:  form the honest network, tables filled by announcements
 *       -> base: honest broadcasts, every 5 s, each measured 5 s later
 *       -> attack: the attacker's nodes join and act (attack_step, every
 *          100 ms); broadcasts and samples go on
 *       -> after: the attacker's nodes are killed; samples until the
 *          phase ends (eclipse: until the victim has recovered)
 *       -> report, CSV and figure.
 */
#include "attack.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oom.h"
#include "simout.h"

#define FORM_MS 5000
#define SETTLE_MS 5000
#define STEP_MS 100   /* attack actions */
#define BCAST_MS 5000 /* honest broadcasts, and samples */
#define BASE_MS 30000
#define AFTER_MS 30000
#define RECOVER_MAX_MS 300000
#define RECOVERED_TAIL_MS 30000 /* samples kept after the recovery */
/* Formation: at most this many honest nodes announce, so that tables fill
 * (the table holds 1024) without N floods at large N. */
#define FILL_ANNOUNCERS 2000
/* Sybil: tables sampled on at most this many honest nodes. */
#define TABLE_SAMPLE 1000
#define ECLIPSE_ANNOUNCE_MS 60000
#define ECLIPSE_REDIAL_MS 1000
#define ECLIPSE_MESH 3 /* other attackers each one links to */
#define SYBIL_START_MS 2000
/* A repository name only forged records carry: a frame with it is a
 * forged record passing through. */
#define FORGED_REPO "zz-forged-record"

enum phase { PH_BASE, PH_ATTACK, PH_AFTER };
static const char *const phase_names[] = {"base", "attack", "after"};

typedef struct sample {
  int64_t t; /* ms from the attack's start */
  uint8_t phase;
  double reliability; /* of the broadcast these 5 s followed */
  bool victim_got;
  uint32_t victim_links, victim_att_links, victim_out, victim_att_out;
  double att_link_share, att_table_share;
  double sybil_share, honest_entries;    /* mean over sampled honest nodes */
  double kbytes_per_node_s;              /* honest gossip out, this window */
  uint64_t bans, rate_limited, rejected; /* honest nodes, since the start */
  uint64_t forwarded;                    /* forged records sent on */
} sample;

typedef struct atk {
  gv_sim_cfg cfg;
  const gv_attack_opts *ao;
  gv_sim *s;
  gv_rng rng;
  uint32_t n_honest, n_att, victim, first_att;
  int64_t duration, t_attack, t_end, t_stop;
  gv_idmap bad; /* attacker and sybil ids -> ATT or SYB */
  gv_identity *sybil_ids;
  uint32_t n_sybils, sybils_sent;
  double rate, owed;
  uint64_t sent;         /* spam announcements, forged records */
  uint64_t forwarded;    /* honest frames carrying a forged record */
  uint32_t *table_nodes; /* sampled honest nodes */
  uint32_t n_table_nodes;
  int64_t bytes0;   /* honest gossip bytes out at the window's start */
  int64_t bcast_at; /* the tracked broadcast's start; 0: none */
  uint32_t bcast_origin;
  int64_t recovered_at; /* eclipse: -1 until */
  sample *samples;
  size_t n_samples, cap_samples;
} atk;

static int ATT_TAG, SYB_TAG; /* their addresses tag the two kinds of id */
#define ATT ((void *)&ATT_TAG)
#define SYB ((void *)&SYB_TAG)

static const char *const kind_names[] = {"eclipse", "sybil", "spam", "forged"};

int gv_attack_kind_from_name(const char *name) {
  for (int k = 0; k < 4; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return k;
  return -1;
}

uint32_t gv_attack_default_nodes(gv_attack_kind kind) {
  return kind == GV_ATTACK_FORGED ? 300 : 1000;
}

static double default_attackers(gv_attack_kind kind) {
  switch (kind) {
  case GV_ATTACK_ECLIPSE: return 0.1;
  case GV_ATTACK_SYBIL: return 5;
  case GV_ATTACK_SPAM: return 0.01;
  default: return 0.02;
  }
}

static uint32_t attacker_count(const gv_sim_cfg *cfg,
                               const gv_attack_opts *ao) {
  double a = ao->attackers < 0 ? default_attackers(ao->kind) : ao->attackers;
  uint32_t n = a < 1 ? (uint32_t)lround(a * cfg->nodes) : (uint32_t)a;
  return n > 0 ? n : 1;
}

const char *gv_attack_check(const gv_sim_cfg *cfg, const gv_attack_opts *ao) {
  if (ao->attackers == 0)
    return "--attackers must be above 0 for an attack (a share rounds up to "
           "one node)";
  if (ao->attackers >= 1 && ao->attackers != floor(ao->attackers))
    return "--attackers takes a share below 1 or a whole count";
  if (attacker_count(cfg, ao) + 2 > cfg->nodes)
    return "--attackers must leave at least two honest nodes";
  if (ao->kind == GV_ATTACK_FORGED && cfg->stub_sigs)
    return "the forged scenario sends bad signatures, so it needs real ones: "
           "drop --stub-sigs";
  return NULL;
}

/* ---- attacker behaviour ---- */

/* Attackers forward nothing an honest node sent them; the forged
 * scenario also counts forged records honest nodes send on. */
static bool filter(void *ctx, uint32_t from, uint32_t to, const gv_buf *b) {
  atk *k = ctx;
  if (k->s->nodes[from].attacker || b->len < 1 || b->data[0] != GV_CHAN_GOSSIP)
    return true;
  if (k->ao->kind == GV_ATTACK_FORGED &&
      memmem(b->data, b->len, FORGED_REPO, sizeof(FORGED_REPO) - 1) != NULL)
    k->forwarded++;
  return !k->s->nodes[to].attacker;
}

static bool linked_to(const gv_sim *s, uint32_t i, const uint8_t *peer) {
  gv_link_info li;
  for (size_t x = 0; gv_lcore_info(s->nodes[i].lc, x, &li); x++)
    if (memcmp(li.peer, peer, GV_ID_BYTES) == 0)
      return true;
  return false;
}

/* Sends b on every READY link of node i; b's reference stays the
 * caller's. */
static void send_all(gv_sim *s, uint32_t i, gv_buf *b) {
  gv_link_info li;
  for (size_t x = 0; gv_lcore_info(s->nodes[i].lc, x, &li); x++)
    if (li.ready) {
      gv_buf_ref(b);
      gv_sim_send(s, i, li.id, b);
    }
}

static gv_buf *sealed(gv_msg *m, const gv_identity *id, bool stub) {
  char *out;
  size_t len;
  gv_buf *b = NULL;
  if (gv_msg_seal_opt(m, id, stub, &out, &len) == 0) {
    b = gv_chan_buf(GV_CHAN_GOSSIP, out, len);
    free(out);
  }
  gv_msg_clear(m);
  return b;
}

/* A fresh id's record: silent, so nobody dials it; it only takes room. */
static void sybil_announce(atk *k, uint32_t j) {
  gv_sim *s = k->s;
  uint32_t host = k->first_att + j % k->n_att;
  gv_msg m;
  gv_buf *b;

  if (s->nodes[host].dead)
    return;
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_PEER_ANNOUNCEMENT;
  m.ttl = k->cfg.ttl;
  m.seq = (uint64_t)s->now;
  m.ts = s->now;
  if ((b = sealed(&m, &k->sybil_ids[j], k->cfg.stub_sigs)) == NULL)
    return;
  send_all(s, host, b);
  gv_buf_unref(b);
}

/* A record claiming an honest node's id and the attacker's address,
 * signed with the attacker's key. */
static void forge(atk *k, uint32_t a) {
  static const char repos[] = FORGED_REPO "\0";
  gv_sim *s = k->s;
  gv_identity fake;
  uint32_t h = (uint32_t)gv_rng_below(&k->rng, k->n_honest);
  gv_msg m;
  gv_buf *b;

  memcpy(fake.pk, s->nodes[h].id.pk, GV_ID_BYTES);
  memcpy(fake.sk, s->nodes[a].id.sk, sizeof(fake.sk));
  memset(&m, 0, sizeof(m));
  m.type = GV_MSG_PEER_ANNOUNCEMENT;
  m.ttl = k->cfg.ttl;
  m.seq = (uint64_t)s->now + 1000000 + k->sent;
  m.ts = s->now;
  m.u.peer.broadcasting = true;
  m.u.peer.n_addrs = 1;
  gv_sim_node_addr(a, &m.u.peer.addrs[0]);
  m.u.peer.repos = repos;
  m.u.peer.n_repos = 1;
  b = sealed(&m, &fake, false);
  gv_id_wipe(&fake);
  if (b == NULL)
    return;
  send_all(s, a, b);
  gv_buf_unref(b);
  k->sent++;
}

static void add_attackers(atk *k) {
  gv_sim *s = k->s;
  for (uint32_t n = 0; n < k->n_att; n++) {
    uint32_t i = gv_sim_add_node(s, false);
    gv_sim_node *nd = &s->nodes[i];
    nd->attacker = true;
    nd->joined = true;
    gv_idmap_put(&k->bad, nd->id.pk, ATT);
    if (k->ao->kind != GV_ATTACK_ECLIPSE) {
      gv_sim_seed_candidates(s, i, k->cfg.candidates);
      continue;
    }
    /* Eclipse: a bootstrap claim (it costs nothing), the victim, and a
     * few attackers that joined before. */
    {
      gv_addr ad;
      gv_sim_node_addr(i, &ad);
      gv_engine_set_broadcast(nd->e, true, true, &ad, 1, s->now);
      gv_sim_node_addr(k->victim, &ad);
      gv_engine_add_candidate(nd->e, s->nodes[k->victim].id.pk, &ad, true,
                              s->now);
      for (unsigned m = 0; m < ECLIPSE_MESH && n > 0; m++) {
        uint32_t j = k->first_att + (uint32_t)gv_rng_below(&k->rng, n);
        gv_sim_node_addr(j, &ad);
        gv_engine_add_candidate(nd->e, s->nodes[j].id.pk, &ad, true, s->now);
      }
      gv_sim_drain(s, i);
    }
  }
}

/* A table entry as the store keeps it across a restart. */
typedef struct saved_entry {
  char *body;
  size_t body_len;
  uint8_t sig[GV_SIG_BYTES];
  int64_t last_seen;
} saved_entry;

/* The victim restarts from its cached table, as the daemon does from its
 * store. */
static void restart_victim(atk *k) {
  gv_sim *s = k->s;
  uint32_t v = k->victim;
  gv_engine *e = s->nodes[v].e;
  size_t n = gv_engine_table_size(e);
  saved_entry *saved = gv__xcalloc(n ? n : 1, sizeof(*saved));

  /* Its counters start again: what it sent this window stays counted. */
  k->bytes0 -= (int64_t)gv_engine_stats_get(e)->bytes_out;
  for (size_t i = 0; i < n; i++) {
    const gv_peer_entry *p = gv_engine_table_at(e, i);
    saved[i].body = gv__xmalloc(p->body_len + 1);
    memcpy(saved[i].body, p->body, p->body_len);
    saved[i].body[p->body_len] = '\0';
    saved[i].body_len = p->body_len;
    memcpy(saved[i].sig, gv_peer_entry_sig(p), GV_SIG_BYTES);
    saved[i].last_seen = gv_engine_wall(e, p->last_seen);
  }
  gv_sim_kill(s, v);
  gv_sim_restart(s, v, 0);
  for (size_t i = 0; i < n; i++) {
    (void)gv_engine_restore(s->nodes[v].e, saved[i].body, saved[i].body_len,
                            saved[i].sig, saved[i].last_seen, s->now);
    free(saved[i].body);
  }
  free(saved);
  gv_sim_seed_candidates(s, v, k->cfg.candidates);
}

/* One STEP_MS of the attack, at time t from its start. */
static void attack_step(atk *k, int64_t t) {
  gv_sim *s = k->s;
  uint32_t n;

  switch (k->ao->kind) {
  case GV_ATTACK_ECLIPSE:
    if (t == k->duration / 3 / STEP_MS * STEP_MS)
      restart_victim(k);
    for (uint32_t i = k->first_att; i < k->first_att + k->n_att; i++) {
      if (s->nodes[i].dead)
        continue;
      if (t % ECLIPSE_REDIAL_MS == 0 &&
          !linked_to(s, i, s->nodes[k->victim].id.pk))
        gv_sim_dial(s, i, k->victim);
      /* The first a second after joining, once linked. */
      if (t % ECLIPSE_ANNOUNCE_MS == 1000) {
        gv_engine_announce(s->nodes[i].e, NULL, s->now);
        gv_sim_drain(s, i);
      }
    }
    break;
  case GV_ATTACK_SYBIL: {
    int64_t span = k->duration / 2 - SYBIL_START_MS;
    /* All by half-time, even in an attack too short to spread them. */
    uint32_t due =
        t >= k->duration / 2 ? k->n_sybils
        : t < SYBIL_START_MS
            ? 0
            : (uint32_t)((double)k->n_sybils * (double)(t - SYBIL_START_MS) /
                         (double)(span > 0 ? span : 1));
    while (k->sybils_sent < due)
      sybil_announce(k, k->sybils_sent++);
    break;
  }
  case GV_ATTACK_SPAM:
  case GV_ATTACK_FORGED:
    k->owed += k->rate * STEP_MS / 1000.0;
    n = (uint32_t)k->owed;
    k->owed -= n;
    for (uint32_t r = 0; r < n; r++)
      for (uint32_t i = k->first_att; i < k->first_att + k->n_att; i++) {
        if (s->nodes[i].dead)
          continue;
        if (k->ao->kind == GV_ATTACK_FORGED) {
          forge(k, i);
        } else {
          gv_engine_announce(s->nodes[i].e, NULL, s->now);
          gv_sim_drain(s, i);
          k->sent++;
        }
      }
    break;
  }
}

/* ---- measuring ---- */

static bool honest_live(const gv_sim *s, uint32_t i) {
  return !s->nodes[i].attacker && !s->nodes[i].dead;
}

static int64_t honest_bytes(const gv_sim *s, uint32_t n_honest) {
  int64_t t = 0;
  for (uint32_t i = 0; i < n_honest; i++)
    t += (int64_t)gv_engine_stats_get(s->nodes[i].e)->bytes_out;
  return t;
}

static void victim_sample(atk *k, sample *x) {
  gv_sim *s = k->s;
  gv_engine *e = s->nodes[k->victim].e;
  gv_link_info li;
  size_t n = gv_engine_table_size(e), bad = 0;

  for (size_t i = 0; gv_lcore_info(s->nodes[k->victim].lc, i, &li); i++) {
    bool att;
    if (!li.ready)
      continue;
    att = gv_idmap_get(&k->bad, li.peer) != NULL;
    x->victim_links++;
    x->victim_att_links += att;
    x->victim_out += li.dialed;
    x->victim_att_out += li.dialed && att;
  }
  x->att_link_share =
      x->victim_links ? (double)x->victim_att_links / x->victim_links : 0;
  for (size_t i = 0; i < n; i++)
    bad += gv_idmap_get(&k->bad, gv_engine_table_at(e, i)->id) != NULL;
  x->att_table_share = n ? (double)bad / (double)n : 0;
}

static void table_sample(atk *k, sample *x) {
  gv_sim *s = k->s;
  double share = 0, honest = 0;
  uint32_t m = 0;

  for (uint32_t q = 0; q < k->n_table_nodes; q++) {
    uint32_t i = k->table_nodes[q];
    gv_engine *e = s->nodes[i].e;
    size_t n = gv_engine_table_size(e), syb = 0, good = 0;
    if (s->nodes[i].dead)
      continue;
    for (size_t j = 0; j < n; j++) {
      void *tag = gv_idmap_get(&k->bad, gv_engine_table_at(e, j)->id);
      syb += tag == SYB;
      good += tag == NULL;
    }
    share += n ? (double)syb / (double)n : 0;
    honest += (double)good;
    m++;
  }
  x->sybil_share = m ? share / m : 0;
  x->honest_entries = m ? honest / m : 0;
}

/* Closes the window that ends now: measures the tracked broadcast, samples
 * the state, and starts the next broadcast. */
static int sample_and_broadcast(atk *k, uint8_t phase) {
  gv_sim *s = k->s;
  sample *x;
  uint32_t live = 0, got = 0;
  int64_t bytes = honest_bytes(s, k->n_honest);
  uint8_t id[GV_MSG_ID_BYTES];

  if (k->n_samples == k->cap_samples) {
    size_t cap = k->cap_samples ? 2 * k->cap_samples : 64;
    sample *p = realloc(k->samples, cap * sizeof(*p));
    if (p == NULL)
      return -1;
    k->samples = p;
    k->cap_samples = cap;
  }
  x = &k->samples[k->n_samples++];
  memset(x, 0, sizeof(*x));
  x->t = s->now - k->t_attack;
  x->phase = phase;
  for (uint32_t i = 0; i < k->n_honest; i++) {
    const gv_lcore_stats *ls;
    if (!honest_live(s, i))
      continue;
    live++;
    got += s->nodes[i].delivered_at >= 0;
    ls = gv_lcore_stats_get(s->nodes[i].lc);
    x->bans += ls->bans;
    x->rate_limited += ls->rate_limited;
    x->rejected += ls->rejected;
  }
  if (k->bcast_at > 0) {
    /* The origin delivered it by making it. */
    x->reliability = live > 1 ? (double)(got - 1) / (double)(live - 1) : 0;
    x->victim_got = s->nodes[k->victim].delivered_at >= 0;
  } else {
    x->reliability = -1; /* no broadcast yet */
  }
  x->kbytes_per_node_s = (double)(bytes - k->bytes0) / 1000.0 /
                         (double)(live ? live : 1) / (BCAST_MS / 1000.0);
  k->bytes0 = bytes;
  x->forwarded = k->forwarded;
  if (k->ao->kind == GV_ATTACK_ECLIPSE) {
    victim_sample(k, x);
    if (phase == PH_AFTER && k->recovered_at < 0 && x->victim_got &&
        x->att_link_share < 0.5)
      k->recovered_at = s->nodes[k->victim].delivered_at;
  }
  if (k->ao->kind == GV_ATTACK_SYBIL)
    table_sample(k, x);

  /* The next broadcast: an honest node other than the victim. */
  do
    k->bcast_origin = (uint32_t)(1 + gv_rng_below(&k->rng, k->n_honest - 1));
  while (s->nodes[k->bcast_origin].dead);
  gv_engine_announce(s->nodes[k->bcast_origin].e, id, s->now);
  gv_sim_track(s, id);
  s->nodes[k->bcast_origin].delivered_at = s->now;
  gv_sim_drain(s, k->bcast_origin);
  k->bcast_at = s->now;
  return 0;
}

/* Runs from now to `until` (ms from the attack's start) in phase ph. */
static int run_phase(atk *k, uint8_t ph, int64_t until) {
  gv_sim *s = k->s;
  while (s->now < k->t_attack + until) {
    int64_t t = s->now - k->t_attack;
    if (ph == PH_ATTACK)
      attack_step(k, t);
    t += STEP_MS;
    gv_sim_run_until(s, k->t_attack + t);
    if (t % BCAST_MS == 0 && sample_and_broadcast(k, ph) < 0)
      return 1;
    if (ph == PH_AFTER && k->recovered_at >= 0 &&
        s->now - k->recovered_at >= RECOVERED_TAIL_MS)
      break;
  }
  return gv_sim_checked(k->s, k->ao->argc, k->ao->argv) ? 0 : 3;
}

/* ---- the run ---- */

static int setup(atk *k) {
  gv_sim *s;
  uint32_t n_fill;

  if (gv_sim_new(&k->s, &k->cfg) < 0)
    return 1;
  s = k->s;
  gv_rng_seed(&k->rng, k->cfg.seed ^ 0x61747461636bULL); /* "attack" */
  {
    uint8_t key[GV_IDMAP_KEY_BYTES] = {0};
    memcpy(key, &k->cfg.seed, sizeof(k->cfg.seed));
    key[15] = 0xa7;
    gv_idmap_init(&k->bad, key);
  }
  for (uint32_t i = 0; i < k->n_honest; i++)
    gv_sim_add_node(s, i != k->victim &&
                           gv_rng_unit(&k->rng) < k->cfg.silent_frac);
  for (uint32_t i = 0; i < k->n_honest; i++)
    gv_sim_seed_candidates(s, i, k->cfg.candidates);
  gv_sim_run_until(s, s->now + FORM_MS);
  /* Tables fill: every honest node announces (at most FILL_ANNOUNCERS of
   * them, from a random start), 2 ms apart. */
  n_fill = k->n_honest < FILL_ANNOUNCERS ? k->n_honest : FILL_ANNOUNCERS;
  {
    uint32_t start = (uint32_t)gv_rng_below(&k->rng, k->n_honest);
    for (uint32_t q = 0; q < n_fill; q++) {
      uint32_t i = (start + q) % k->n_honest;
      gv_sim_run_until(s, s->now + 2);
      gv_engine_announce(s->nodes[i].e, NULL, s->now);
      gv_sim_drain(s, i);
    }
  }
  gv_sim_run_until(s, s->now + SETTLE_MS);
  /* Whole seconds from here on. */
  k->t_attack = (s->now / 1000 + 1) * 1000 + BASE_MS;
  gv_sim_run_until(s, k->t_attack - BASE_MS);
  k->bytes0 = honest_bytes(s, k->n_honest);
  /* The honest nodes whose tables the sybil scenario samples. */
  k->n_table_nodes = k->n_honest < TABLE_SAMPLE ? k->n_honest : TABLE_SAMPLE;
  k->table_nodes = calloc(k->n_table_nodes, sizeof(uint32_t));
  if (k->table_nodes == NULL)
    return 1;
  for (uint32_t q = 0; q < k->n_table_nodes; q++)
    k->table_nodes[q] =
        (uint32_t)((uint64_t)q * k->n_honest / k->n_table_nodes);
  if (k->ao->kind == GV_ATTACK_SYBIL) {
    uint64_t seed = k->cfg.seed ^ 0x737962696cULL; /* "sybil" */
    k->sybil_ids = calloc(k->n_sybils, sizeof(gv_identity));
    if (k->sybil_ids == NULL)
      return 1;
    for (uint32_t j = 0; j < k->n_sybils; j++) {
      uint8_t key_seed[32];
      for (int b = 0; b < 32; b += 8) {
        uint64_t v = gv__splitmix64(&seed);
        memcpy(key_seed + b, &v, 8);
      }
      if (k->cfg.stub_sigs) /* nothing is signed: any 32 bytes will do */
        memcpy(k->sybil_ids[j].pk, key_seed, GV_ID_BYTES);
      else
        gv_id_from_seed(&k->sybil_ids[j], key_seed);
      gv_idmap_put(&k->bad, k->sybil_ids[j].pk, SYB);
    }
  }
  s->filter = filter;
  s->filter_ctx = k;
  return gv_sim_checked(k->s, k->ao->argc, k->ao->argv) ? 0 : 3;
}

/* ---- the report ---- */

typedef struct summary {
  double rel[3], rel_min[3]; /* per phase: mean, min */
  uint32_t n_bcast[3];
  double victim_got_attack, link_share_max, link_share_mean, table_share_max,
      out_share_max;
  double sybil_share_max, sybil_share_end, honest_before, honest_min;
  double kb[3];
  uint64_t bans, rate_limited, rejected;
} summary;

static void summarize(const atk *k, summary *m) {
  uint32_t got = 0, n_link = 0;
  memset(m, 0, sizeof(*m));
  m->honest_min = -1;
  for (int p = 0; p < 3; p++)
    m->rel_min[p] = 1;
  for (size_t i = 0; i < k->n_samples; i++) {
    const sample *x = &k->samples[i];
    int p = x->phase;
    m->kb[p] += x->kbytes_per_node_s;
    if (x->reliability >= 0) { /* the broadcast began in phase p */
      m->rel[p] += x->reliability;
      m->rel_min[p] = fmin(m->rel_min[p], x->reliability);
      m->n_bcast[p]++;
    }
    if (p == PH_BASE)
      m->honest_before = x->honest_entries;
    if (p == PH_ATTACK) {
      got += x->victim_got;
      m->link_share_max = fmax(m->link_share_max, x->att_link_share);
      m->link_share_mean += x->att_link_share;
      n_link++;
      m->table_share_max = fmax(m->table_share_max, x->att_table_share);
      m->out_share_max =
          fmax(m->out_share_max,
               x->victim_out ? (double)x->victim_att_out / x->victim_out : 0);
    }
    if (p != PH_BASE) {
      m->sybil_share_max = fmax(m->sybil_share_max, x->sybil_share);
      if (m->honest_min < 0 || x->honest_entries < m->honest_min)
        m->honest_min = x->honest_entries;
    }
    m->sybil_share_end = x->sybil_share;
  }
  for (int p = 0; p < 3; p++) {
    uint32_t n = 0;
    for (size_t i = 0; i < k->n_samples; i++)
      n += k->samples[i].phase == p;
    m->kb[p] = n ? m->kb[p] / n : 0;
    m->rel[p] = m->n_bcast[p] ? m->rel[p] / m->n_bcast[p] : 0;
  }
  m->victim_got_attack =
      m->n_bcast[PH_ATTACK] ? (double)got / m->n_bcast[PH_ATTACK] : 0;
  m->link_share_mean = n_link ? m->link_share_mean / n_link : 0;
  /* Counters since the attack began (the base adds none: nothing abuses
   * anything then). */
  if (k->n_samples > 0) {
    const sample *x = &k->samples[k->n_samples - 1];
    m->bans = x->bans;
    m->rate_limited = x->rate_limited;
    m->rejected = x->rejected;
  }
}

static double r4(double v) { return round(v * 10000) / 10000; }

static cJSON *report(const atk *k, const summary *m, double wall) {
  const gv_sim *s = k->s;
  cJSON *j = cJSON_CreateObject(), *rel;
  gv_attack_kind kind = k->ao->kind;

  cJSON_AddStringToObject(j, "scenario", kind_names[kind]);
  cJSON_AddNumberToObject(j, "nodes", k->cfg.nodes);
  cJSON_AddNumberToObject(j, "honest", k->n_honest);
  cJSON_AddNumberToObject(j, "attackers", k->n_att);
  cJSON_AddNumberToObject(j, "seed", (double)k->cfg.seed);
  cJSON_AddBoolToObject(j, "stub_sigs", k->cfg.stub_sigs);
  cJSON_AddNumberToObject(j, "silent_frac", k->cfg.silent_frac);
  cJSON_AddNumberToObject(j, "duration_s", (double)k->duration / 1000);
  rel = cJSON_AddObjectToObject(j, "reliability");
  for (int p = 0; p < 3; p++) {
    cJSON *o = cJSON_AddObjectToObject(rel, phase_names[p]);
    cJSON_AddNumberToObject(o, "broadcasts", m->n_bcast[p]);
    cJSON_AddNumberToObject(o, "mean", r4(m->rel[p]));
    cJSON_AddNumberToObject(o, "min", r4(m->n_bcast[p] ? m->rel_min[p] : 0));
  }
  cJSON_AddNumberToObject(j, "kbytes_per_node_s_base", r4(m->kb[PH_BASE]));
  cJSON_AddNumberToObject(j, "kbytes_per_node_s_attack", r4(m->kb[PH_ATTACK]));
  cJSON_AddNumberToObject(j, "bans", (double)m->bans);
  cJSON_AddNumberToObject(j, "rate_limited", (double)m->rate_limited);
  cJSON_AddNumberToObject(j, "rejected", (double)m->rejected);
  switch (kind) {
  case GV_ATTACK_ECLIPSE:
    cJSON_AddNumberToObject(j, "victim_delivered_attack",
                            r4(m->victim_got_attack));
    cJSON_AddNumberToObject(j, "victim_link_share_max", r4(m->link_share_max));
    cJSON_AddNumberToObject(j, "victim_link_share_mean",
                            r4(m->link_share_mean));
    cJSON_AddNumberToObject(j, "victim_outbound_share_max",
                            r4(m->out_share_max));
    cJSON_AddNumberToObject(j, "victim_table_share_max",
                            r4(m->table_share_max));
    cJSON_AddNumberToObject(
        j, "recovery_s",
        k->recovered_at < 0 ? -1 : (double)(k->recovered_at - k->t_end) / 1000);
    break;
  case GV_ATTACK_SYBIL:
    cJSON_AddNumberToObject(j, "sybils", k->n_sybils);
    cJSON_AddNumberToObject(j, "sybils_sent", k->sybils_sent);
    cJSON_AddNumberToObject(j, "sybil_table_share_max", r4(m->sybil_share_max));
    cJSON_AddNumberToObject(j, "sybil_table_share_end", r4(m->sybil_share_end));
    cJSON_AddNumberToObject(j, "honest_entries_before",
                            round(m->honest_before * 10) / 10);
    cJSON_AddNumberToObject(j, "honest_entries_min",
                            round(m->honest_min * 10) / 10);
    cJSON_AddNumberToObject(
        j, "honest_evicted",
        r4(m->honest_before > 0 ? 1 - m->honest_min / m->honest_before : 0));
    break;
  case GV_ATTACK_SPAM:
    cJSON_AddNumberToObject(j, "rate", k->rate);
    cJSON_AddNumberToObject(j, "spam_sent", (double)k->sent);
    cJSON_AddNumberToObject(j, "extra_kbytes_per_node_s",
                            r4(m->kb[PH_ATTACK] - m->kb[PH_BASE]));
    break;
  case GV_ATTACK_FORGED:
    cJSON_AddNumberToObject(j, "rate", k->rate);
    cJSON_AddNumberToObject(j, "forged_sent", (double)k->sent);
    cJSON_AddNumberToObject(j, "forged_forwarded", (double)k->forwarded);
    {
      uint64_t taken = 0;
      for (uint32_t i = 0; i < k->n_honest; i++) {
        const gv_engine *e = s->nodes[i].e;
        for (size_t x = 0; !s->nodes[i].dead && x < gv_engine_table_size(e);
             x++)
          taken +=
              gv_peer_entry_has_repo(gv_engine_table_at(e, x), FORGED_REPO);
      }
      cJSON_AddNumberToObject(j, "forged_accepted", (double)taken);
    }
    break;
  }
  cJSON_AddNumberToObject(j, "links", s->n_links);
  cJSON_AddNumberToObject(j, "frames", (double)s->frames);
  cJSON_AddNumberToObject(j, "ip_leaks", (double)s->ip_leaks);
  cJSON_AddNumberToObject(j, "events", (double)s->events);
  if (k->ao->timing)
    cJSON_AddNumberToObject(j, "wall_s", round(wall * 1000) / 1000);
  return j;
}

static void write_csv(const atk *k) {
  const char *name = kind_names[k->ao->kind], *dir = k->ao->out;
  gv_attack_kind kind = k->ao->kind;
  size_t cap = 256 + k->n_samples * 160, off;
  char *buf = gv__xmalloc(cap), file[64], *gp;

  mkdir(dir, 0755);
  off = (size_t)snprintf(buf, cap,
                         "t_s,phase,reliability,kbytes_per_node_s,"
                         "bans,rate_limited,rejected");
  if (kind == GV_ATTACK_ECLIPSE)
    off += (size_t)snprintf(buf + off, cap - off,
                            ",victim_got,victim_links,victim_outbound,"
                            "attacker_link_share,attacker_outbound,"
                            "attacker_table_share");
  if (kind == GV_ATTACK_SYBIL)
    off += (size_t)snprintf(buf + off, cap - off,
                            ",sybil_table_share,honest_entries");
  if (kind == GV_ATTACK_FORGED)
    off += (size_t)snprintf(buf + off, cap - off, ",forwarded");
  off += (size_t)snprintf(buf + off, cap - off, "\n");
  for (size_t i = 0; i < k->n_samples; i++) {
    const sample *x = &k->samples[i];
    off += (size_t)snprintf(
        buf + off, cap - off, "%.1f,%s,%.4f,%.3f,%llu,%llu,%llu",
        (double)x->t / 1000, phase_names[x->phase], x->reliability,
        x->kbytes_per_node_s, (unsigned long long)x->bans,
        (unsigned long long)x->rate_limited, (unsigned long long)x->rejected);
    if (kind == GV_ATTACK_ECLIPSE)
      off += (size_t)snprintf(buf + off, cap - off, ",%d,%u,%u,%.4f,%u,%.4f",
                              x->victim_got, x->victim_links, x->victim_out,
                              x->att_link_share, x->victim_att_out,
                              x->att_table_share);
    if (kind == GV_ATTACK_SYBIL)
      off += (size_t)snprintf(buf + off, cap - off, ",%.4f,%.1f",
                              x->sybil_share, x->honest_entries);
    if (kind == GV_ATTACK_FORGED)
      off += (size_t)snprintf(buf + off, cap - off, ",%llu",
                              (unsigned long long)x->forwarded);
    off += (size_t)snprintf(buf + off, cap - off, "\n");
  }
  snprintf(file, sizeof(file), "attack_%s.csv", name);
  gv_sim_write_file(dir, file, buf);
  /* The figure: honest reliability, and the kind's own series. */
  {
    const char *second =
        kind == GV_ATTACK_ECLIPSE
            ? "'' every ::1 using 1:11 with lines lw 2 title 'attackers: "
              "share of the victim''s links', '' every ::1 using 1:13 with "
              "lines lw 2 title 'attackers: share of the victim''s table'"
        : kind == GV_ATTACK_SYBIL
            ? "'' every ::1 using 1:8 with lines lw 2 title 'sybil share "
              "of honest tables'"
            : NULL;
    size_t gcap = 2048;
    gp = gv__xmalloc(gcap);
    snprintf(gp, gcap,
             "set terminal svg size 800,480\nset output 'attack_%s.svg'\n"
             "set datafile separator ','\nset key bottom left\nset grid\n"
             "set xlabel 'seconds from the attack''s start'\n"
             "set ylabel 'share'\nset yrange [0:1.05]\n"
             "set title '%s: %u honest nodes, %u attackers'\n"
             "set arrow from 0,0 to 0,1.05 nohead dt 2\n"
             "set arrow from %lld,0 to %lld,1.05 nohead dt 2\n"
             "plot 'attack_%s.csv' every ::1 using 1:($3 < 0 ? NaN : $3) "
             "with linespoints lw 2 title 'honest reliability'%s%s\n",
             name, name, k->n_honest, k->n_att, (long long)k->duration / 1000,
             (long long)k->duration / 1000, name, second ? ", " : "",
             second ? second : "");
    snprintf(file, sizeof(file), "attack_%s.gp", name);
    gv_sim_write_file(dir, file, gp);
    snprintf(file, sizeof(file), "attack_%s", name);
    gv_sim_plot(dir, file);
    free(gp);
  }
  free(buf);
}

int gv_attack_run(const gv_sim_cfg *cfg, const gv_attack_opts *ao) {
  atk k;
  summary m;
  struct timespec ts0, ts1;
  int rc;
  cJSON *j;
  char *txt;

  memset(&k, 0, sizeof(k));
  k.cfg = *cfg;
  k.ao = ao;
  k.n_att = attacker_count(cfg, ao);
  k.n_honest = cfg->nodes - k.n_att;
  k.first_att = k.n_honest;
  k.victim = 0;
  k.duration = ao->duration_ms > 0             ? ao->duration_ms
               : ao->kind == GV_ATTACK_ECLIPSE ? 120000
                                               : 60000;
  k.n_sybils = ao->sybils > 0 ? ao->sybils : 5000;
  k.rate = ao->rate >= 0 ? ao->rate : ao->kind == GV_ATTACK_SPAM ? 10 : 20;
  k.recovered_at = -1;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  rc = setup(&k);
  if (rc == 0)
    rc = sample_and_broadcast(&k, PH_BASE) < 0 ? 1 : 0;
  if (rc == 0)
    rc = run_phase(&k, PH_BASE, 0);
  if (rc == 0) {
    add_attackers(&k);
    rc = run_phase(&k, PH_ATTACK, k.duration);
  }
  if (rc == 0) {
    k.t_end = k.s->now;
    for (uint32_t i = k.first_att; i < k.first_att + k.n_att; i++)
      gv_sim_kill(k.s, i);
    rc = run_phase(&k, PH_AFTER,
                   k.duration + (ao->kind == GV_ATTACK_ECLIPSE ? RECOVER_MAX_MS
                                                               : AFTER_MS));
  }
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  if (rc == 1)
    fprintf(stderr, "grapevine-sim: out of memory\n");
  if (rc != 0) {
    fprintf(stderr, "grapevine-sim: seed %llu; reproduce with:\n ",
            (unsigned long long)cfg->seed);
    for (int i = 0; i < ao->argc; i++)
      fprintf(stderr, " %s", ao->argv[i]);
    fprintf(stderr, "\n");
    goto out;
  }
  summarize(&k, &m);
  j = report(&k, &m,
             (double)(ts1.tv_sec - ts0.tv_sec) +
                 (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9);
  if (ao->out != NULL)
    write_csv(&k);
  txt = ao->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
out:
  if (k.s != NULL)
    k.s->filter = NULL;
  gv_sim_free(k.s);
  gv_idmap_free(&k.bad);
  if (k.sybil_ids != NULL) {
    for (uint32_t i = 0; i < k.n_sybils; i++)
      gv_id_wipe(&k.sybil_ids[i]);
    free(k.sybil_ids);
  }
  free(k.table_nodes);
  free(k.samples);
  return rc;
}

/* Fuzz target: the relay core (node/relay.c) as a team member and its
 * agents can drive it. The input is a list of records
 * [1 byte: op][2 bytes BE: length][length bytes], one event each:
 *   op % 5 == 0  raw channel-2 bytes on the link from peer A (hop level)
 *   op % 5 == 1  kind || body sealed by A for us with the team's keys, so
 *                the bytes reach the inner decoders and the core's logic
 *   op % 5 == 2  a request line from agent connection 1 or 2 (op bit 3)
 *   op % 5 == 3  time passes: the first byte, in seconds, then a tick
 *   op % 5 == 4  the store commits every pending job, or fails them all
 * and, for op >= 0xe0, the links and records of other nodes (relay users,
 * docs/RELAY.md §5.7):
 *   op even      node k (the first byte, of NODES) links to us or its link
 *                goes down (second byte: bit 0 up, bit 1 we dialed it)
 *   op odd       node k's record as the gossip table holds it (second
 *                byte: bit 0 known, bit 1 broadcasting, bit 2 names us as
 *                a relay), then gv_relay_record()
 * The core's invariants must hold after every event, and everything must
 * be released at the end (ASan's leak check). */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t jobs[4096];
static size_t n_jobs;

#define NODES 8 /* other nodes, beside the team's peer A (link 1) */
static gv_identity nodes[NODES];
static gv_rroute routes[NODES];
static bool linked[NODES];

/* cfg.route: the records the input gave. */
static bool route(void *ctx, const uint8_t *id, gv_rroute *out) {
  (void)ctx;
  for (size_t k = 0; k < NODES; k++)
    if (memcmp(id, nodes[k].pk, GV_ID_BYTES) == 0) {
      *out = routes[k];
      return out->known;
    }
  return false;
}

/* The node events (op >= 0xe0): link k + 2 is node k's. */
static void node_event(gv_relay *r, const gv_service *svc,
                       const gv_identity *self, uint8_t op, const uint8_t *p,
                       size_t len, int64_t now) {
  size_t k;
  gv_rroute *rt;

  if (len < 2)
    return;
  k = p[0] % NODES;
  if (!(op & 1)) {
    if ((p[1] & 1) && !linked[k])
      linked[k] = svc->up(svc->ctx, (gv_linkid)k + 2, nodes[k].pk,
                          (p[1] & 2) != 0, NULL, NULL, now);
    else if (!(p[1] & 1) && linked[k]) {
      svc->down(svc->ctx, (gv_linkid)k + 2, GV_CLOSE_GOODBYE, now);
      linked[k] = false;
    }
    return;
  }
  rt = &routes[k];
  memset(rt, 0, sizeof(*rt));
  rt->known = p[1] & 1;
  rt->broadcasting = (p[1] & 2) != 0;
  if (!rt->broadcasting && (p[1] & 4)) {
    memcpy(rt->relays[rt->n_relays++], nodes[(k + 1) % NODES].pk, GV_ID_BYTES);
    memcpy(rt->relays[rt->n_relays++], self->pk, GV_ID_BYTES);
  }
  gv_relay_record(r, nodes[k].pk, now);
}

static void rnd(void *ctx, uint8_t *buf, size_t n) {
  static uint8_t seed[randombytes_SEEDBYTES];
  static uint64_t k;
  (void)ctx;
  memcpy(seed, &k, sizeof(k)); /* deterministic: a crash replays */
  k++;
  randombytes_buf_deterministic(buf, n, seed);
}

static void drain(gv_relay *r) {
  gv_ract a;
  while (gv_relay_next(r, &a)) {
    if (a.type == GV_RACT_PERSIST && n_jobs < sizeof(jobs) / sizeof(*jobs))
      jobs[n_jobs++] = a.job;
    free(a.data);
  }
  {
    gv_why why = {{0}};
    int rc = gv_relay_check(r, &why);
    if (rc < 0)
      fprintf(stderr, "invariant: %s\n", why.text);
    FZ_CHECK(rc == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gv_identity self, peer;
  static gv_rw_team team;
  static gv_rw_boxkey k_ab;
  static uint8_t T[32];
  static bool ready;
  const gv_service *svc;
  gv_relay_cfg cfg;
  gv_relay *r;
  int64_t now = 0;
  size_t off = 0;

  if (!ready) {
    uint8_t seed[32];
    FZ_CHECK(sodium_init() >= 0);
    memset(seed, 1, sizeof(seed));
    gv_id_from_seed(&self, seed);
    memset(seed, 2, sizeof(seed));
    gv_id_from_seed(&peer, seed);
    memset(T, 3, sizeof(T));
    gv_rw_team_keys(T, &team);
    FZ_CHECK(gv_rw_peer_key(&peer, self.pk, &k_ab, NULL) == 0);
    for (size_t k = 0; k < NODES; k++) {
      memset(seed, (int)(16 + k), sizeof(seed));
      gv_id_from_seed(&nodes[k], seed);
    }
    ready = true;
  }
  n_jobs = 0;
  memset(routes, 0, sizeof(routes));
  memset(linked, 0, sizeof(linked));
  gv_relay_cfg_default(&cfg);
  cfg.random = rnd;
  cfg.route = route;
  cfg.users_max = 3; /* fewer than the nodes that may name us */
  cfg.inbox_max = 8;
  cfg.outbox_max = 8;
  FZ_CHECK(gv_relay_new(&r, &cfg, &self, now) == 0);
  gv_relay_set_wall(r, 1767225600000LL);
  FZ_CHECK(gv_relay_team_add(r, T, peer.pk, now) == 0);
  gv_relay_loaded(r, now);
  svc = gv_relay_service(r);
  (void)svc->up(svc->ctx, 1, peer.pk, false, NULL, NULL, now);
  gv_relay_conn_open(r, 1, now);
  gv_relay_conn_open(r, 2, now);
  drain(r);
  while (off + 3 <= size) {
    uint8_t op = data[off];
    size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
    const uint8_t *p = data + off + 3;
    gv_why why = {{0}};

    if (len > size - off - 3)
      len = size - off - 3;
    off += 3 + len;
    if (op >= 0xe0) {
      node_event(r, svc, &self, op, p, len, now);
      drain(r);
      continue;
    }
    switch (op % 5) {
    case 0: (void)svc->recv(svc->ctx, 1, p, len, now, &why); break;
    case 1:
      if (len >= 1 + GV_RW_ID_BYTES) {
        gv_rw_route h;
        uint8_t nonce[GV_RW_NONCE_BYTES] = {0};
        size_t slen = gv_rw_sealed_size(len - 1 - GV_RW_ID_BYTES), n;
        uint8_t *sealed = malloc(slen), *wire;
        memset(&h, 0, sizeof(h));
        memcpy(h.dst, self.pk, GV_ID_BYTES);
        memcpy(h.src, peer.pk, GV_ID_BYTES);
        memcpy(h.id, p + 1, GV_RW_ID_BYTES);
        if (gv_rw_seal(&k_ab, &team, nonce, &h, p[0], p + 1 + GV_RW_ID_BYTES,
                       len - 1 - GV_RW_ID_BYTES, sealed, slen, NULL) == 0) {
          h.sealed = sealed;
          h.sealed_len = slen;
          wire = malloc(gv_rw_route_size(slen));
          if (gv_rw_route_encode(&h, wire, gv_rw_route_size(slen), &n, NULL) ==
              0)
            FZ_CHECK(svc->recv(svc->ctx, 1, wire, n, now, &why) == 0);
          free(wire);
        }
        free(sealed);
      }
      break;
    case 2:
      gv_relay_conn_line(r, (op & 8) ? 2 : 1, (const char *)p, len, now);
      break;
    case 3:
      now += len > 0 ? (int64_t)p[0] * 1000 : 1;
      gv_relay_tick(r, now);
      break;
    default: {
      int status = len > 0 && p[0] == 0xff ? GV_EBUSY : 0;
      size_t n = n_jobs;
      n_jobs = 0;
      for (size_t i = 0; i < n; i++)
        gv_relay_committed(r, jobs[i], status, now);
      break;
    }
    }
    drain(r);
  }
  gv_relay_conn_closed(r, 1, now);
  svc->down(svc->ctx, 1, GV_CLOSE_SHUTDOWN, now);
  for (size_t k = 0; k < NODES; k++)
    if (linked[k])
      svc->down(svc->ctx, (gv_linkid)k + 2, GV_CLOSE_SHUTDOWN, now);
  drain(r);
  gv_relay_free(r);
  return 0;
}

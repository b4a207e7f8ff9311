/* Fuzz target: the relay core (node/relay.c) as a team member and its
 * agents can drive it. The input is a list of records
 * [1 byte: op][2 bytes BE: length][length bytes], one event each:
 *   op % 5 == 0  raw channel-2 bytes on the link from peer A (hop level)
 *   op % 5 == 1  kind || body sealed by A for us with the team's keys, so
 *                the bytes reach the inner decoders and the core's logic
 *   op % 5 == 2  a request line from agent connection 1 or 2 (op bit 3)
 *   op % 5 == 3  time passes: the first byte, in seconds, then a tick
 *   op % 5 == 4  the store commits every pending job, or fails them all
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
    ready = true;
  }
  n_jobs = 0;
  gv_relay_cfg_default(&cfg);
  cfg.random = rnd;
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
  drain(r);
  gv_relay_free(r);
  return 0;
}

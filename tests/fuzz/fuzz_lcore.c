/* Fuzz target: what a peer can send on an open link, through the link core
 * (node/lcore.c) to the gossip engine, its service. The input is a
 * conversation: records of [1 byte: time step in 100 ms units][2 bytes BE:
 * length][length bytes: one plaintext, channel byte first], fed to one
 * inbound link after the handshake. Both cores' invariants must hold after
 * every step, and every buffer must be released (ASan's leak check). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fuzz.h"
#include "lcore.h"

#define T0 1767225600000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(gv_engine *e, gv_lcore *lc, gv_linkid link, int64_t now,
                  bool *closed) {
  gv_action a;
  bool more = true;
  while (more) {
    more = false;
    while (gv_engine_next(e, &a) || gv_lcore_next(lc, &a)) {
      more = true;
      if (a.type == GV_ACT_RELEASE)
        gv_lcore_release(lc, a.link, GV_HOLD_GOSSIP, now);
      if (a.type == GV_ACT_CLOSE && a.link == link)
        *closed = true;
      if (a.type == GV_ACT_REJECT)
        FZ_CHECK(a.why != NULL && a.why[0] != '\0'); /* always a reason */
      gv_buf_unref(a.buf);
    }
  }
  FZ_CHECK(gv_engine_check(e, NULL) == 0);
  FZ_CHECK(gv_lcore_check(lc, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gv_identity self, peer;
  static bool ready;
  gv_engine_cfg ec;
  gv_lcore_cfg lcfg;
  gv_engine *e;
  gv_lcore *lc;
  gv_service svc;
  int64_t now = T0;
  bool closed = false;

  if (!ready) {
    uint8_t seed[32];
    memset(seed, 1, sizeof(seed));
    gv_id_from_seed(&self, seed);
    memset(seed, 2, sizeof(seed));
    gv_id_from_seed(&peer, seed);
    ready = true;
  }
  gv_engine_cfg_default(&ec);
  ec.broadcasting = true;
  ec.n_addrs = 1;
  gv_addr_parse(&ec.addrs[0], "198.51.100.1:7411", 17);
  gv_lcore_cfg_default(&lcfg);
  lcfg.accepting = true;
  lcfg.rate_burst = 64;
  FZ_CHECK(gv_engine_new(&e, &ec, &self, now) == 0);
  FZ_CHECK(gv_lcore_new(&lc, &lcfg, self.pk, now) == 0);
  gv_engine_service(e, &svc);
  gv_lcore_set_service(lc, GV_CHAN_GOSSIP, &svc);
  gv_lcore_open(lc, 1, peer.pk, false, NULL, now);
  drain(e, lc, 1, now, &closed);

  while (size >= 3 && !closed) {
    size_t len = (size_t)data[1] << 8 | data[2];
    now += (int64_t)data[0] * 100;
    data += 3;
    size -= 3;
    if (len > size)
      len = size;
    gv_lcore_tick(lc, now);
    gv_engine_tick(e, now);
    drain(e, lc, 1, now, &closed);
    if (closed)
      break;
    gv_lcore_recv(lc, 1, data, len, now);
    drain(e, lc, 1, now, &closed);
    data += len;
    size -= len;
  }
  if (!closed)
    gv_lcore_closed(lc, 1, false, now);
  else
    gv_lcore_closed(lc, 1, true, now);
  drain(e, lc, 1, now, &closed);
  FZ_CHECK(gv_lcore_count(lc) == 0);
  gv_lcore_free(lc);
  gv_engine_free(e);
  return 0;
}

/* bench_tun: the torrent tunnel's core (node/tun.h) moving bytes through a
 * relay in one process, beside memcpy doing the same copies in the same
 * run.
 *
 *   build/bench/bench_tun
 *   BENCH_MB=256 (bytes moved per round)  BENCH_ROUNDS=3 (median taken)
 *
 * ours: three cores, A -> relay B -> C, one stream. A's local socket reads
 * 64 KiB at a time while not paused; every SEND is queued and handed, in
 * order, to the next core's gv_tun_recv; C's WRITEs are copied into a sink
 * and reported written at once. Per byte that is four copies: A's DATA, B's
 * forwarded DATA, C's WRITE, the sink.
 *
 * anchor: memcpy of the same bytes, 64 KiB at a time, through the same four
 * copies (buffer to buffer). ratio = ours / anchor, both in MB/s of
 * payload delivered: what the core's bookkeeping costs beyond the copies.
 *
 * Method: CLOCK_MONOTONIC, one warm-up round, then BENCH_ROUNDS rounds of
 * each, alternating which goes first; medians. It never fails for being
 * slow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tun.h"

#define CHUNK 65536u
#define QMAX 4096 /* queued messages; the windows bound them far below */

typedef struct qmsg {
  int node;
  gv_linkid link;
  uint8_t *data;
  size_t len;
} qmsg;

static gv_tun *T[3];
static uint8_t ID[3][GV_ID_BYTES];
static qmsg Q[QMAX];
static size_t q_head, q_n;
static uint8_t *src_buf, *sink;
static size_t sink_len, delivered;
static bool paused;
static gv_tun_local c_local;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_tun: %s\n", what);
  exit(1);
}

static bool accept_all(void *ctx, const uint8_t ih[GV_TW_IH_BYTES],
                       const uint8_t src[GV_ID_BYTES]) {
  (void)ctx;
  (void)ih;
  (void)src;
  return true;
}

/* Links: A(0)-B(1) is 1 at A, 2 at B; C(2)-B(1) is 3 at C, 4 at B. */
static void route(int from, gv_linkid link, int *to, gv_linkid *to_link) {
  switch (from * 10 + (int)link) {
  case 1: *to = 1, *to_link = 2; break;
  case 12: *to = 0, *to_link = 1; break;
  case 14: *to = 2, *to_link = 3; break;
  case 23: *to = 1, *to_link = 4; break;
  default: die("no such link");
  }
}

static void drain(int n) {
  gv_tact a;

  while (gv_tun_next(T[n], &a)) {
    switch (a.type) {
    case GV_TACT_SEND: {
      qmsg *m;
      if (q_n == QMAX)
        die("queue full");
      m = &Q[(q_head + q_n++) % QMAX];
      route(n, a.link, &m->node, &m->link);
      m->data = a.data;
      m->len = a.len;
      break;
    }
    case GV_TACT_CONNECT:
      c_local = a.local;
      gv_tun_local_connected(T[n], a.local, 0);
      break;
    case GV_TACT_WRITE:
      if (sink_len < a.len)
        sink = realloc(sink, sink_len = a.len);
      memcpy(sink, a.data, a.len);
      delivered += a.len;
      free(a.data);
      gv_tun_local_written(T[n], a.local, a.len);
      break;
    case GV_TACT_PAUSE: paused = true; break;
    case GV_TACT_RESUME: paused = false; break;
    case GV_TACT_SHUT: die("stream shut");
    default: break;
    }
  }
}

static void pump(void) {
  for (;;) {
    for (int n = 0; n < 3; n++)
      drain(n);
    if (q_n == 0)
      return;
    qmsg m = Q[q_head];
    q_head = (q_head + 1) % QMAX;
    q_n--;
    if (gv_tun_recv(T[m.node], m.link, m.data + 1, m.len - 1, NULL) < 0)
      die("recv refused");
    free(m.data);
  }
}

/* One round of ours: a fresh set of cores, total bytes A -> C. */
static double run_ours(size_t total) {
  gv_tun_cfg cfg;
  gv_tun_local a_local;
  uint8_t ih[GV_TW_IH_BYTES] = {1};
  size_t sent = 0;
  double t0;

  for (int n = 0; n < 3; n++) {
    gv_tun_cfg_default(&cfg);
    memcpy(cfg.self, ID[n], GV_ID_BYTES);
    cfg.relay = n == 1;
    cfg.accept = accept_all;
    if (gv_tun_new(&T[n], &cfg) < 0)
      die("gv_tun_new");
  }
  gv_tun_link_up(T[0], 1, ID[1], true);
  gv_tun_link_up(T[1], 2, ID[0], false);
  gv_tun_link_up(T[2], 3, ID[1], true);
  gv_tun_link_up(T[1], 4, ID[2], false);
  paused = false;
  delivered = 0;
  t0 = now_s();
  if (gv_tun_open(T[0], 1, ID[2], ih, &a_local, NULL) < 0)
    die("gv_tun_open");
  pump();
  while (delivered < total) {
    if (!paused && sent < total) {
      size_t n = total - sent < CHUNK ? total - sent : CHUNK;
      if (gv_tun_local_read(T[0], a_local, src_buf, n) < 0)
        die("read");
      sent += n;
    } else if (paused && q_n == 0) {
      die("stalled");
    }
    pump();
  }
  t0 = now_s() - t0;
  for (int n = 0; n < 3; n++)
    gv_tun_free(T[n]);
  return (double)total / 1e6 / t0;
}

/* One round of the anchor: the same four copies per chunk. */
static double run_anchor(size_t total) {
  static uint8_t b1[CHUNK], b2[CHUNK], b3[CHUNK], b4[CHUNK];
  volatile uint8_t keep = 0;
  double t0 = now_s();

  for (size_t done = 0; done < total; done += CHUNK) {
    memcpy(b1, src_buf, CHUNK);
    memcpy(b2, b1, CHUNK);
    memcpy(b3, b2, CHUNK);
    memcpy(b4, b3, CHUNK);
    keep ^= b4[done % CHUNK];
  }
  (void)keep;
  return (double)total / 1e6 / (now_s() - t0);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *e;
  size_t mb = 256, rounds = 3, total;
  double ours[16], anchor[16];

  if (argc > 1) {
    printf("usage: %s   (BENCH_MB, BENCH_ROUNDS from the environment)\n",
           argv[0]);
    return 0;
  }
  if ((e = getenv("BENCH_MB")) && atoi(e) > 0)
    mb = (size_t)atoi(e);
  if ((e = getenv("BENCH_ROUNDS")) && atoi(e) > 0 && atoi(e) <= 15)
    rounds = (size_t)atoi(e);
  total = mb * 1024 * 1024;
  src_buf = malloc(CHUNK);
  for (unsigned i = 0; i < CHUNK; i++)
    src_buf[i] = (uint8_t)(i * 131);
  for (int n = 0; n < 3; n++)
    memset(ID[n], 0x10 + n, GV_ID_BYTES);
  run_ours(total / 8);
  run_anchor(total / 8);
  for (size_t r = 0; r < rounds; r++) {
    if (r % 2) {
      anchor[r] = run_anchor(total);
      ours[r] = run_ours(total);
    } else {
      ours[r] = run_ours(total);
      anchor[r] = run_anchor(total);
    }
  }
  qsort(ours, rounds, sizeof *ours, cmp);
  qsort(anchor, rounds, sizeof *anchor, cmp);
  printf("tunnel through a relay, in process, %zu MiB, median of %zu\n", mb,
         rounds);
  printf("  gv_tun A->B->C      %9.1f MB/s\n", ours[rounds / 2]);
  printf("  memcpy x4 (anchor)  %9.1f MB/s\n", anchor[rounds / 2]);
  printf("  ratio               %9.2f\n",
         ours[rounds / 2] / anchor[rounds / 2]);
  free(src_buf);
  free(sink);
  return 0;
}

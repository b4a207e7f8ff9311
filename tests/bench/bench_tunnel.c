/* The torrent tunnel's throughput: 64 MiB from a seeder-side libtorrent
 * stand-in to a fetcher-side one, through a direct tunnel and through one
 * relay (real gv_tun cores and gv_tunio's, in-process links: no link
 * encryption, no TCP between nodes), beside the anchor measured in the
 * same run: the same transfer over a plain loopback TCP connection. Both
 * ends do the same work in all three (generate and check every byte), so
 * the ratio is what the tunnel adds. The median of TUNNEL_ROUNDS rounds
 * (default 5) each; never fails for being slow. */
#include <stdio.h>

#include "../tunlab.h"
#include "bench.h"

#define MIB (1024u * 1024u)
#define SIZE (64u * MIB)
#define LIMIT_MS 300000 /* a transfer that takes this long is broken */

enum { ANCHOR, DIRECT, RELAY };

static bool done(void *ctx) { return tl_pair_done(ctx); }

/* One transfer; its MB/s (10^6 bytes), or a negative number if it failed. */
static double once(int mode) {
  tl_flow flow = {SIZE, 0, 42};
  uv_loop_t loop;
  tl_lab *lab;
  tl_pair *p;
  uint16_t port;
  gv_why why = {""};
  double mbps = -1;

  uv_loop_init(&loop);
  lab = tl_lab_new(&loop);
  p = tl_pair_new(lab, &flow);
  port = p->port;
  if (mode != ANCHOR) {
    int s = tl_node_add(lab, p->port, false), f, lf;
    f = tl_node_add(lab, tl_free_port(), false);
    if (mode == RELAY) {
      int r = tl_node_add(lab, tl_free_port(), true);
      lf = tl_link_up(lab, f, r);
      tl_link_up(lab, s, r);
    } else {
      lf = tl_link_up(lab, f, s);
    }
    if (gv_tunio_listen(lab->nodes[f].io, lab->nodes[s].id, lab->links[lf].la,
                        (const uint8_t *)"bench-infohash-20byt", &port,
                        &why) < 0) {
      fprintf(stderr, "bench_tunnel: %s\n", why.text);
      goto out;
    }
  }
  tl_pair_connect(p, port);
  if (tl_run(lab, done, p, LIMIT_MS) && !p->cli->bad && lab->err[0] == '\0')
    mbps = (double)SIZE / 1e6 / ((double)(p->cli->t_done - p->cli->t0) / 1e9);
  else
    fprintf(stderr, "bench_tunnel: transfer failed: read %zu of %u %s\n",
            p->cli->recvd, SIZE, lab->err);
out:
  tl_lab_free(lab);
  uv_loop_close(&loop);
  return mbps;
}

/* The rounds of the three modes interleave, so a neighbour's load on the
 * shared machine falls on all three alike. */
int main(void) {
  int rounds = (int)bench_env("TUNNEL_ROUNDS", 5, 1, BENCH_MAX_ROUNDS);
  double v[3][BENCH_MAX_ROUNDS], anchor, direct, relay;

  for (int i = 0; i < rounds; i++)
    for (int m = ANCHOR; m <= RELAY; m++)
      if ((v[m][i] = once(m)) < 0)
        return 1;
  anchor = bench_median(v[ANCHOR], rounds);
  direct = bench_median(v[DIRECT], rounds);
  relay = bench_median(v[RELAY], rounds);
  printf("tunnel: %u MiB one way on loopback, in-process links, median of "
         "%d\n",
         SIZE / MIB, rounds);
  printf("  plain TCP pair (anchor)  %8.1f MB/s\n", anchor);
  printf("  direct tunnel            %8.1f MB/s  %.2fx anchor\n", direct,
         direct / anchor);
  printf("  through one relay        %8.1f MB/s  %.2fx anchor  %.2fx direct\n",
         relay, relay / anchor, relay / direct);
  return 0;
}

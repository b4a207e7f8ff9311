/* sim-baseline: the anchor for the simulator's speed. A bare discrete-event
 * push-gossip loop: a heap of events and nothing else. Each node, on the
 * first receipt, pushes to `fanout` uniformly random nodes with a random
 * latency. It prints its reach and events/s, the figure grapevine-sim's
 * events/s is compared with (make bench). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rng.h"

typedef struct ev {
  int64_t t;
  uint32_t node;
} ev;

static ev *heap;
static size_t n_heap, cap_heap;

static void push(int64_t t, uint32_t node) {
  size_t i;
  if (n_heap == cap_heap) {
    cap_heap = cap_heap ? cap_heap * 2 : 1024;
    heap = realloc(heap, cap_heap * sizeof(ev));
    if (heap == NULL) {
      fprintf(stderr, "sim-baseline: out of memory\n");
      exit(1);
    }
  }
  i = n_heap++;
  heap[i] = (ev){t, node};
  while (i > 0 && heap[i].t < heap[(i - 1) / 2].t) {
    ev tmp = heap[i];
    heap[i] = heap[(i - 1) / 2];
    heap[(i - 1) / 2] = tmp;
    i = (i - 1) / 2;
  }
}

static ev pop(void) {
  ev top = heap[0];
  size_t i = 0;
  heap[0] = heap[--n_heap];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n_heap && heap[l].t < heap[m].t)
      m = l;
    if (r < n_heap && heap[r].t < heap[m].t)
      m = r;
    if (m == i)
      break;
    ev tmp = heap[i];
    heap[i] = heap[m];
    heap[m] = tmp;
    i = m;
  }
  return top;
}

int main(int argc, char **argv) {
  uint32_t n = 100000, fanout = 3;
  uint64_t events = 0, got = 0;
  uint8_t *seen;
  gv_rng r;
  struct timespec a, b;
  double wall;

  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    printf("usage: sim-baseline [NODES [FANOUT]]\n\nA bare discrete-event "
           "push-gossip loop (a heap of events and nothing else):\nthe "
           "speed anchor for grapevine-sim. Prints nodes, reach, events, "
           "wall_s and\nevents_per_s as JSON.\n");
    return 0;
  }
  if (argc > 1)
    n = (uint32_t)strtoul(argv[1], NULL, 10);
  if (argc > 2)
    fanout = (uint32_t)strtoul(argv[2], NULL, 10);
  if (n < 2 || fanout < 1) {
    fprintf(stderr, "sim-baseline: NODES >= 2 and FANOUT >= 1\n");
    return 2;
  }
  seen = calloc(n, 1);
  gv_rng_seed(&r, 1);
  clock_gettime(CLOCK_MONOTONIC, &a);
  push(0, 0);
  while (n_heap > 0) {
    ev e = pop();
    events++;
    if (seen[e.node])
      continue;
    seen[e.node] = 1;
    got++;
    for (uint32_t k = 0; k < fanout; k++)
      push(e.t + 10 + (int64_t)gv_rng_below(&r, 91),
           (uint32_t)gv_rng_below(&r, n));
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  wall = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("{\"nodes\":%u,\"reach\":%.5f,\"events\":%llu,\"wall_s\":%.3f,"
         "\"events_per_s\":%.0f}\n",
         n, (double)got / n, (unsigned long long)events, wall,
         (double)events / wall);
  free(seen);
  free(heap);
  return 0;
}

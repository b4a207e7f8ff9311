/* sim-baseline: the anchor for the simulator's speed. A bare discrete-event
 * push-gossip loop: a heap of events and nothing else. Each node, on the
 * first receipt, pushes to `fanout` uniformly random nodes with a random
 * latency. It prints its reach and events/s, the figure grapevine-sim's
 * events/s is compared with (make bench), from the median of repeated
 * runs (main). */
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

/* One broadcast from node 0; its events. */
static uint64_t broadcast(uint32_t n, uint32_t fanout, uint8_t *seen,
                          uint64_t *got) {
  uint64_t events = 0;
  gv_rng r;

  memset(seen, 0, n);
  gv_rng_seed(&r, 1);
  *got = 0;
  n_heap = 0;
  push(0, 0);
  while (n_heap > 0) {
    ev e = pop();
    events++;
    if (seen[e.node])
      continue;
    seen[e.node] = 1;
    (*got)++;
    for (uint32_t k = 0; k < fanout; k++)
      push(e.t + 10 + (int64_t)gv_rng_below(&r, 91),
           (uint32_t)gv_rng_below(&r, n));
  }
  return events;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The broadcast is repeated, the same each time, until REPS_S seconds
 * have passed (at most REPS_MAX times): at 20k nodes one takes 3-4 ms,
 * and a single run's rate swung from 9 to 16 M events/s between runs
 * (first touch of the heap, the scheduler). The median run's rate is
 * the anchor; the first run's, cold, is printed beside it. */
#define REPS_S 0.3
#define REPS_MAX 1000

int main(int argc, char **argv) {
  uint32_t n = 100000, fanout = 3;
  uint64_t events = 0, got = 0;
  double wall[REPS_MAX], first, start;
  unsigned reps = 0;
  uint8_t *seen;

  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    printf("usage: sim-baseline [NODES [FANOUT]]\n\nA bare discrete-event "
           "push-gossip loop (a heap of events and nothing else):\nthe "
           "speed anchor for grapevine-sim. One broadcast, repeated for "
           "%.1f s (at most\n%d times); prints nodes, reach, events, reps, "
           "wall_s and events_per_s\n(of the median run) and "
           "first_events_per_s (the first, cold) as JSON.\n",
           REPS_S, REPS_MAX);
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
  if ((seen = malloc(n)) == NULL) {
    fprintf(stderr, "sim-baseline: out of memory\n");
    return 1;
  }
  start = now_s();
  do {
    double a = now_s();
    events = broadcast(n, fanout, seen, &got);
    wall[reps++] = now_s() - a;
  } while (reps < REPS_MAX && now_s() - start < REPS_S);
  /* Every run has the same events: the median run is the median wall. */
  first = wall[0];
  qsort(wall, reps, sizeof(double), by_value);
  printf("{\"nodes\":%u,\"reach\":%.5f,\"events\":%llu,\"reps\":%u,"
         "\"first_events_per_s\":%.0f,\"wall_s\":%.4f,"
         "\"events_per_s\":%.0f}\n",
         n, (double)got / n, (unsigned long long)events, reps,
         (double)events / first, wall[reps / 2],
         (double)events / wall[reps / 2]);
  free(seen);
  free(heap);
  return 0;
}

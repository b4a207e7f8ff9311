/* node/oom.h: abort on allocation failure, with one line saying why. */
#include "oom.h"

#include <stdio.h>
#include <stdlib.h>

static void *check(void *p, size_t n) {
  if (p == NULL && n > 0) {
    fprintf(stderr, "grapevine: out of memory (%zu bytes)\n", n);
    abort();
  }
  return p;
}

void *gv__xmalloc(size_t n) { return check(malloc(n), n); }

void *gv__xcalloc(size_t n, size_t size) {
  return check(calloc(n, size), n * size);
}

void *gv__xrealloc(void *p, size_t n) { return check(realloc(p, n), n); }

void *gv__xcheck(void *p) { return check(p, 1); }

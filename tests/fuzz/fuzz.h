/* Shared by the fuzz targets: a check that, unlike assert(), no NDEBUG can
 * turn off. It names its place, then abort()s so that libFuzzer keeps the
 * input. */
#ifndef GV_FUZZ_H
#define GV_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(c)                                                            \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);    \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif

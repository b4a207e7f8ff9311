/* Three strengths of check, as SQLite has them (STYLE.md):
 *
 *   assert(x)   a proven truth; compiled out with NDEBUG.
 *   ALWAYS(x)   a defensive check kept in release builds: the code handles
 *   NEVER(x)    the unexpected case and goes on. In a debug build
 *               (-DGV_DEBUG, which `make asan` sets) they abort instead,
 *               so tests find the case that "cannot happen".
 *   tests       for boundaries.
 *
 * GV_DEBUG also runs each core's full invariant check (gv_engine_check,
 * gv_lcore_check) after every event, when its actions have been drained.
 */
#ifndef GV_INVARIANT_H
#define GV_INVARIANT_H

#include <assert.h>

#ifdef GV_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define ALWAYS(x) ((x) ? 1 : (gv__invariant_failed(#x, __FILE__, __LINE__), 0))
#define NEVER(x)                                                               \
  ((x) ? (gv__invariant_failed("!(" #x ")", __FILE__, __LINE__), 1) : 0)
static inline void gv__invariant_failed(const char *what, const char *file,
                                        int line) {
  fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
  abort();
}
#else
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#endif

#endif

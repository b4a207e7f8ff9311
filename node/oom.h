/* The pure cores' out-of-memory policy: allocation failure is fatal.
 *
 * Every table, queue and buffer in the engine and the link core is bounded
 * by a cap, so a failed allocation means the machine itself is out of
 * memory. Carrying on with half-applied state would be worse than a
 * restart: the node's durable state is in SQLite and it rejoins from it.
 * So the cores never return GV_ENOMEM from inside a state transition; they
 * print one line and abort. (Adapters, which own sockets and files, still
 * return errors.)
 */
#ifndef GV_OOM_H
#define GV_OOM_H

#include <stddef.h>

void *gv__xmalloc(size_t n);
void *gv__xcalloc(size_t n, size_t size);
void *gv__xrealloc(void *p, size_t n);
/* p, or the abort when a callee that allocates returned NULL for it. */
void *gv__xcheck(void *p);

#endif

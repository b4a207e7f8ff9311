/* The queue of actions a pure core hands its driver (engine.h, lcore.h):
 * pushed during an event, drained with gv_actq_pop() after it.
 *
 * Lifetime: embedded, zeroed to start; gv_actq_free() releases the array
 * and the buffers of actions never drained.
 */
#ifndef GV_ACTQ_H
#define GV_ACTQ_H

#include "engine.h"

typedef struct gv_actq {
  gv_action *v;
  size_t head, n, cap;
} gv_actq;

/* A new, zeroed action of that type at the tail (never NULL: oom.h). */
gv_action *gv_actq_push(gv_actq *q, gv_act_type type);
/* Pops the head into *a; false when empty, and then the array is
 * released, so an idle core holds none of it (the simulator keeps a
 * million idle ones). */
bool gv_actq_pop(gv_actq *q, gv_action *a);
bool gv_actq_empty(const gv_actq *q);
/* Turns every queued action that match() accepts into GV_ACT_NONE (its
 * buffer released): an action made moot before it was drained. */
void gv_actq_cancel(gv_actq *q,
                    bool (*match)(const gv_action *a, const void *ctx),
                    const void *ctx);
void gv_actq_free(gv_actq *q);

#endif

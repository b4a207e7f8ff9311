/* node/actq.h: a FIFO of actions in one array. */
#include "actq.h"

#include <stdlib.h>
#include <string.h>

#include "oom.h"

/* A queue grows from this many actions; once drained it keeps none (the
 * simulator holds two idle queues per node, a million nodes). */
#define FIRST_CAP 4

gv_action *gv_actq_push(gv_actq *q, gv_act_type type) {
  gv_action *a;
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : FIRST_CAP;
    q->v = gv__xrealloc(q->v, q->cap * sizeof(gv_action));
  }
  a = &q->v[q->n++];
  memset(a, 0, sizeof(*a));
  a->type = type;
  return a;
}

bool gv_actq_empty(const gv_actq *q) { return q->head == q->n; }

void gv_actq_cancel(gv_actq *q,
                    bool (*match)(const gv_action *a, const void *ctx),
                    const void *ctx) {
  for (size_t i = q->head; i < q->n; i++)
    if (q->v[i].type != GV_ACT_NONE && match(&q->v[i], ctx)) {
      gv_buf_unref(q->v[i].buf);
      memset(&q->v[i], 0, sizeof(q->v[i]));
    }
}

bool gv_actq_pop(gv_actq *q, gv_action *a) {
  if (q->head == q->n) {
    if (q->cap > 0) {
      free(q->v);
      q->v = NULL;
      q->cap = 0;
    }
    q->head = q->n = 0;
    return false;
  }
  *a = q->v[q->head++];
  return true;
}

void gv_actq_free(gv_actq *q) {
  gv_action a;
  while (gv_actq_pop(q, &a))
    gv_buf_unref(a.buf);
  free(q->v);
  memset(q, 0, sizeof(*q));
}

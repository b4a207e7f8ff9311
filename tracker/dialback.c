#include "dialback.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chan.h"
#include "conn.h"
#include "map.h"
#include "msg.h"
#include "registry.h"
#include "sockaddr.h"

typedef struct job {
  struct job *next, *prev; /* its source's queue, then the in-flight list */
  gv_trk_dialer *d;
  gv_addr addr;
  uint8_t id[GV_ID_BYTES];
  gv_trk_dial_cb cb;
  void *ctx;
  gv_conn *conn;    /* NULL once closed */
  uv_timer_t timer; /* bounds connect + handshake */
  int reported;
} job;

/* The queued dials of one source address (an IPv4 address or an IPv6
 * /64), in arrival order; it exists while it has some, and is then on the
 * ring. */
typedef struct src {
  gv_trk_ipkey key;
  job *qhead, *qtail;
  struct src *prev, *next; /* on the ring */
} src;

struct gv_trk_dialer {
  uv_loop_t *loop;
  const gv_identity *self;
  gv_trk_dial_cfg cfg;
  uv_async_t async;
  char *goodbye; /* the FINAL frame's plaintext: channel 0, GOODBYE */
  size_t goodbye_len;
  atomic_size_t active;
  /* Guarded by mu. A free slot takes the first dial of the source at the
   * head of the ring, which then goes to the tail: the sources take turns,
   * so a source with one dial waits for one dial of each other source at
   * most, however many the others queued. */
  uv_mutex_t mu;
  gv_trk_map srcs; /* of src, by key */
  src *rhead, *rtail;
  size_t queued;
  int stopped;
  /* Loop thread only: */
  job *flying;
  size_t in_flight;
};

static void kick(gv_trk_dialer *d);

static void report(job *j, int status) {
  if (j->reported)
    return;
  j->reported = 1;
  j->cb(j->ctx, status);
}

static void job_done(job *j) {
  gv_trk_dialer *d = j->d;

  free(j);
  atomic_fetch_sub(&d->active, 1);
}

static void on_timer_closed(uv_handle_t *h) { job_done(h->data); }

static void on_open(gv_conn *c) {
  job *j = gv_conn_data(c);
  gv_trk_dialer *d = j->d;

  /* The handshake proved the pinned id (gv_hs fails with GV_EPEERID
   * otherwise): reachable and holding its key. */
  uv_timer_stop(&j->timer);
  report(j, 0);
  gv_conn_close(c, (const uint8_t *)d->goodbye, d->goodbye_len);
}

static void on_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  (void)c; /* a HELLO or anything else: the tracker only checks the link */
  (void)msg;
  (void)len;
}

/* The dial is over (its conn closed, or never started): report, leave the
 * in-flight list, free the job once its timer is closed. The caller
 * kicks the queue. */
static void job_end(job *j, int status) {
  gv_trk_dialer *d = j->d;

  j->conn = NULL;
  report(j, status < 0 ? status : GV_EHANDSHAKE);
  if (j->prev)
    j->prev->next = j->next;
  else
    d->flying = j->next;
  if (j->next)
    j->next->prev = j->prev;
  d->in_flight--;
  uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

static void on_close(gv_conn *c, int status) {
  job *j = gv_conn_data(c);
  gv_trk_dialer *d = j->d;

  job_end(j, status);
  kick(d);
}

static const gv_conn_cbs dial_cbs = {on_open, on_msg, on_close};

static void on_timeout(uv_timer_t *t) {
  job *j = t->data;
  if (j->conn != NULL)
    gv_conn_abort(j->conn, UV_ETIMEDOUT);
}

static void start(gv_trk_dialer *d, job *j) {
  struct sockaddr_storage ss;
  int rc = gv_conn_new(&j->conn, d->loop, d->self, GV_HS_INITIATOR, j->id,
                       &dial_cbs, j);

  if (rc < 0) {
    report(j, rc);
    job_done(j);
    return;
  }
  uv_timer_init(d->loop, &j->timer);
  j->timer.data = j;
  j->next = d->flying;
  j->prev = NULL;
  if (d->flying)
    d->flying->prev = j;
  d->flying = j;
  d->in_flight++;
  uv_timer_start(&j->timer, on_timeout, d->cfg.timeout_ms, 0);
  gv_addr_to_sockaddr(&j->addr, &ss, NULL);
  if ((rc = gv_conn_dial(j->conn, (const struct sockaddr *)&ss)) < 0)
    job_end(j, rc); /* on_close never comes; kick()'s loop goes on */
}

static int src_match(const void *item, const void *key, size_t len) {
  return len == sizeof(gv_trk_ipkey) &&
         memcmp(((const src *)item)->key.b, key, len) == 0;
}

/* Under mu: s goes to the tail of the ring. */
static void ring_append(gv_trk_dialer *d, src *s) {
  s->next = NULL;
  s->prev = d->rtail;
  if (d->rtail != NULL)
    d->rtail->next = s;
  else
    d->rhead = s;
  d->rtail = s;
}

static void ring_unlink(gv_trk_dialer *d, src *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    d->rhead = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    d->rtail = s->prev;
  s->prev = s->next = NULL;
}

/* Under mu: j, queued on s, leaves the queue; s leaves the ring and the
 * table once empty, else goes to the ring's tail if rotate is set. */
static void dequeue(gv_trk_dialer *d, src *s, job *j, int rotate) {
  if (j->prev)
    j->prev->next = j->next;
  else
    s->qhead = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    s->qtail = j->prev;
  j->prev = j->next = NULL;
  d->queued--;
  if (s->qhead == NULL) {
    ring_unlink(d, s);
    gv_trk_map_del(&d->srcs, s->key.b, sizeof(s->key.b));
    free(s);
  } else if (rotate) {
    ring_unlink(d, s);
    ring_append(d, s);
  }
}

/* Under mu: the next dial in turn, off its queue, or NULL. */
static job *take(gv_trk_dialer *d) {
  src *s = d->rhead;
  job *j;

  if (s == NULL)
    return NULL;
  j = s->qhead;
  dequeue(d, s, j, 1);
  return j;
}

/* Starts queued dials while slots are free. */
static void kick(gv_trk_dialer *d) {
  while (d->in_flight < d->cfg.concurrency) {
    job *j;
    uv_mutex_lock(&d->mu);
    j = take(d);
    uv_mutex_unlock(&d->mu);
    if (j == NULL)
      return;
    start(d, j);
  }
}

static void on_async(uv_async_t *a) { kick(a->data); }

int gv_trk_dialer_new(gv_trk_dialer **out, uv_loop_t *loop,
                      const gv_identity *self, const gv_trk_dial_cfg *cfg) {
  gv_trk_dialer *d;
  gv_msg bye = {.type = GV_MSG_GOODBYE};
  char *json;
  size_t len;
  int rc;

  *out = NULL;
  if (cfg->timeout_ms < 1 || cfg->concurrency < 1)
    return GV_EINVAL;
  if ((d = calloc(1, sizeof(*d))) == NULL)
    return GV_ENOMEM;
  snprintf(bye.u.reason, sizeof(bye.u.reason), "tracker dial-back");
  if ((rc = gv_msg_encode_link(&bye, &json, &len)) < 0) {
    free(d);
    return rc;
  }
  /* A plaintext is the channel byte, then the message (PROTOCOL.md §5.1). */
  d->goodbye = malloc(GV_CHAN_HDR + len);
  if (d->goodbye == NULL) {
    free(json);
    free(d);
    return GV_ENOMEM;
  }
  d->goodbye[0] = (char)GV_CHAN_LINK;
  memcpy(d->goodbye + GV_CHAN_HDR, json, len);
  d->goodbye_len = GV_CHAN_HDR + len;
  free(json);
  if ((rc = uv_async_init(loop, &d->async, on_async)) < 0) {
    free(d->goodbye);
    free(d);
    return rc;
  }
  uv_mutex_init(&d->mu);
  {
    uint8_t key[GV_TRK_MAP_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    gv_trk_map_init(&d->srcs, key, src_match);
    sodium_memzero(key, sizeof(key));
  }
  d->async.data = d;
  d->loop = loop;
  d->self = self;
  d->cfg = *cfg;
  *out = d;
  return 0;
}

int gv_trk_dial(gv_trk_dialer *d, const gv_addr *addr,
                const uint8_t id[GV_ID_BYTES], gv_trk_dial_cb cb, void *ctx) {
  job *j = calloc(1, sizeof(*j));
  gv_trk_ipkey key;
  src *s;
  int rc = 0;

  if (j == NULL)
    return GV_ENOMEM;
  gv_trk_ipkey_of(&key, addr);
  j->d = d;
  j->addr = *addr;
  memcpy(j->id, id, GV_ID_BYTES);
  j->cb = cb;
  j->ctx = ctx;
  uv_mutex_lock(&d->mu);
  if (d->stopped || d->queued >= d->cfg.queue_max) {
    rc = d->stopped ? GV_ESTATE : GV_EBUSY;
    goto out;
  }
  if ((s = gv_trk_map_get(&d->srcs, key.b, sizeof(key.b))) == NULL) {
    if ((s = calloc(1, sizeof(*s))) == NULL) {
      rc = GV_ENOMEM;
      goto out;
    }
    s->key = key;
    if ((rc = gv_trk_map_put(&d->srcs, s->key.b, sizeof(s->key.b), s)) < 0) {
      free(s);
      goto out;
    }
    ring_append(d, s);
  }
  j->prev = s->qtail;
  if (s->qtail != NULL)
    s->qtail->next = j;
  else
    s->qhead = j;
  s->qtail = j;
  d->queued++;
  atomic_fetch_add(&d->active, 1);
out:
  uv_mutex_unlock(&d->mu);
  if (rc < 0) {
    free(j);
    return rc;
  }
  uv_async_send(&d->async);
  return 0;
}

int gv_trk_dialer_cancel(gv_trk_dialer *d, const gv_addr *addr,
                         const uint8_t id[GV_ID_BYTES], void **ctx) {
  gv_trk_ipkey key;
  src *s;
  job *j = NULL;

  gv_trk_ipkey_of(&key, addr);
  uv_mutex_lock(&d->mu);
  /* Newest first: a full pool takes back a source's newest dial. */
  if ((s = gv_trk_map_get(&d->srcs, key.b, sizeof(key.b))) != NULL)
    for (j = s->qtail; j != NULL; j = j->prev)
      if (memcmp(j->id, id, GV_ID_BYTES) == 0 &&
          gv_addr_equal(&j->addr, addr)) {
        dequeue(d, s, j, 0);
        break;
      }
  uv_mutex_unlock(&d->mu);
  if (j == NULL)
    return GV_ESTATE;
  *ctx = j->ctx;
  job_done(j);
  return 0;
}

size_t gv_trk_dialer_active(const gv_trk_dialer *d) {
  return atomic_load(&d->active);
}

size_t gv_trk_dialer_free_slots(const gv_trk_dialer *d) {
  size_t active = atomic_load(&d->active);
  return active < d->cfg.concurrency ? d->cfg.concurrency - active : 0;
}

void gv_trk_dialer_stop(gv_trk_dialer *d) {
  job *q;

  uv_mutex_lock(&d->mu);
  d->stopped = 1;
  while ((q = take(d)) != NULL) {
    uv_mutex_unlock(&d->mu);
    report(q, UV_ECANCELED);
    job_done(q);
    uv_mutex_lock(&d->mu);
  }
  uv_mutex_unlock(&d->mu);
  for (job *j = d->flying; j != NULL; j = j->next)
    if (j->conn != NULL) {
      report(j, UV_ECANCELED);
      gv_conn_abort(j->conn, UV_ECANCELED);
    }
}

static void on_async_closed(uv_handle_t *h) {
  gv_trk_dialer *d = h->data;

  uv_mutex_destroy(&d->mu);
  gv_trk_map_free(&d->srcs);
  free(d->goodbye);
  free(d);
}

void gv_trk_dialer_close(gv_trk_dialer *d) {
  assert(d->stopped && atomic_load(&d->active) == 0);
  uv_close((uv_handle_t *)&d->async, on_async_closed);
}

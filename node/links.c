#include "links.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "sockaddr.h"

#define HANDSHAKE_MS 10000
/* Inbound: until the peer's first handshake byte. */
#define FIRST_BYTE_MS 2000
/* A frame that has started must be whole within (1 MiB at 35 KB/s). */
#define FRAME_MS 30000
#define MAX_PENDING_HS 64
#define MAX_PENDING_PER_SRC 8 /* per IPv4 address, per IPv6 /64 */
#define SRC_KEY_MAX 8

typedef struct nlink {
  gv_links *t;
  gv_linkid id;
  gv_conn *conn;
  bool dialed, open, has_pin;
  bool refused; /* over its source's share: never entered the table */
  uint8_t pin[GV_ID_BYTES];
  gv_addr addr; /* dialed address; never recorded for inbound links */
  /* Inbound, while handshaking: the source's IPv4 address or IPv6 /64,
   * only to count its handshakes; wiped at open, never handed on. */
  uint8_t src[SRC_KEY_MAX];
  size_t src_len;
} nlink;

struct gv_links {
  uv_loop_t *loop;
  const gv_identity *self;
  gv_log *log;
  gv_links_cbs cbs;
  void *ctx;
  uv_tcp_t *listener; /* one per listen, freed by its close callback, so a
                         quick off/on never reuses a closing handle */
  uint8_t *final;     /* the plaintext that answers a peer's FINAL */
  size_t final_len;
  bool listening, stopping;
  nlink **v;
  size_t n, cap;
  gv_linkid next_id;
  size_t pending_hs;
};

int gv_links_new(gv_links **out, uv_loop_t *loop, const gv_identity *self,
                 gv_log *log, const gv_links_cbs *cbs, void *ctx) {
  gv_links *t = calloc(1, sizeof(*t));

  *out = NULL;
  if (t == NULL)
    return GV_ENOMEM;
  t->loop = loop;
  t->self = self;
  t->log = log;
  t->cbs = *cbs;
  t->ctx = ctx;
  *out = t;
  return 0;
}

void gv_links_free(gv_links *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i]);
  free(t->v);
  free(t->final);
  free(t);
}

int gv_links_set_final(gv_links *t, const uint8_t *msg, size_t len) {
  uint8_t *p = malloc(len ? len : 1);
  if (p == NULL)
    return GV_ENOMEM;
  memcpy(p, msg, len);
  free(t->final);
  t->final = p;
  t->final_len = len;
  return 0;
}

/* Puts l in the table with a fresh id, counted as a handshake in progress.
 * 0 or GV_ENOMEM (l is then untouched). */
static int link_insert(gv_links *t, nlink *l) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    nlink **p = realloc(t->v, cap * sizeof(*p));
    if (p == NULL)
      return GV_ENOMEM;
    t->v = p;
    t->cap = cap;
  }
  if (++t->next_id == 0)
    t->next_id = 1;
  l->id = t->next_id;
  t->v[t->n++] = l;
  t->pending_hs++;
  return 0;
}

static nlink *link_add(gv_links *t, bool dialed) {
  nlink *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  l->t = t;
  l->dialed = dialed;
  if (link_insert(t, l) < 0) {
    free(l);
    return NULL;
  }
  return l;
}

/* The share key of an inbound connection's source: its IPv4 address, or
 * its IPv6 /64 (one host commonly holds a whole /64). 0 when unknown. */
static size_t src_key(uv_tcp_t *tcp, uint8_t key[SRC_KEY_MAX]) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  gv_addr a;

  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) < 0 ||
      gv_addr_from_sockaddr(&a, (struct sockaddr *)&ss) < 0)
    return 0;
  memcpy(key, a.ip, a.family == 4 ? 4 : 8);
  return a.family == 4 ? 4 : 8;
}

/* Inbound handshakes in progress from the source with this key. */
static size_t src_pending(const gv_links *t, const uint8_t *key, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++) {
    const nlink *l = t->v[i];
    n += !l->open && !l->dialed && l->src_len == len &&
         memcmp(l->src, key, len) == 0;
  }
  return n;
}

static nlink *link_find(gv_links *t, gv_linkid id) {
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i]->id == id)
      return t->v[i];
  return NULL;
}

/* Takes l out of the table and frees it (l->open: no longer counted as a
 * handshake in progress). */
static void link_remove(gv_links *t, nlink *l) {
  if (!l->open)
    t->pending_hs--;
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i] == l) {
      t->v[i] = t->v[--t->n];
      break;
    }
  free(l);
}

static void on_conn_open(gv_conn *c) {
  nlink *l = gv_conn_data(c);
  gv_links *t = l->t;
  char shrt[GV_ID_SHORT_LEN + 1];

  l->open = true;
  t->pending_hs--;
  memset(l->src, 0, sizeof(l->src));
  l->src_len = 0;
  gv_id_to_short(gv_conn_peer_id(c), shrt);
  gv_logf(t->log, GV_LOG_INFO, "link %u up with %s (%s)", l->id, shrt,
          l->dialed ? "dialed" : "inbound");
  t->cbs.up(t->ctx, l->id, gv_conn_peer_id(c), l->dialed,
            l->dialed ? &l->addr : NULL);
}

static void on_conn_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  nlink *l = gv_conn_data(c);
  l->t->cbs.msg(l->t->ctx, l->id, msg, len);
}

static void on_conn_close(gv_conn *c, int status) {
  nlink *l = gv_conn_data(c);
  gv_links *t = l->t;
  nlink copy;

  if (l->refused) { /* never in the table: no event */
    free(l);
    return;
  }
  copy = *l;
  gv_links_down ev;

  ev = (gv_links_down){
      copy.id,   status, copy.open, copy.dialed, copy.has_pin ? copy.pin : NULL,
      &copy.addr};
  if (l->open)
    gv_logf(t->log, status == 0 ? GV_LOG_INFO : GV_LOG_WARN,
            "link %u closed: %s", l->id,
            status == 0 ? "goodbye" : gv_strerror(status));
  else
    gv_logf(t->log, GV_LOG_DEBUG, "connection %u failed: %s", l->id,
            gv_strerror(status));
  link_remove(t, l);
  t->cbs.down(t->ctx, &ev);
}

static const gv_conn_cbs conn_cbs = {on_conn_open, on_conn_msg, on_conn_close};

int gv_links_dial(gv_links *t, const uint8_t peer[GV_ID_BYTES],
                  const gv_addr *addr) {
  static const uint8_t zero[GV_ID_BYTES];
  bool pinned = memcmp(peer, zero, GV_ID_BYTES) != 0;
  struct sockaddr_storage ss;
  nlink *l;
  gv_conn *c;
  int rc;

  if (t->stopping)
    return GV_ESTATE;
  if ((l = link_add(t, true)) == NULL)
    return GV_ENOMEM;
  l->has_pin = pinned;
  memcpy(l->pin, peer, GV_ID_BYTES);
  l->addr = *addr;
  if ((rc = gv_conn_new(&c, t->loop, t->self, GV_HS_INITIATOR,
                        pinned ? peer : NULL, &conn_cbs, l)) < 0) {
    link_remove(t, l);
    return rc;
  }
  l->conn = c;
  gv_conn_set_timeouts(c, &(gv_conn_timeouts){HANDSHAKE_MS, 0, 0, FRAME_MS});
  if (t->final != NULL)
    gv_conn_set_final(c, t->final, t->final_len); /* empty if out of memory */
  gv_addr_to_sockaddr(addr, &ss, NULL);
  if ((rc = gv_conn_dial(c, (struct sockaddr *)&ss)) < 0) {
    /* on_close never comes. */
    gv_logf(t->log, GV_LOG_DEBUG, "connection %u failed: %s", l->id,
            gv_strerror(rc));
    link_remove(t, l);
  }
  return rc;
}

static void on_refused_closed(uv_handle_t *h) { free(h); }

/* Accepts the next connection and closes it at once, so the backlog cannot
 * pin the node. */
static void refuse(gv_links *t, uv_stream_t *server) {
  uv_tcp_t *s = malloc(sizeof(*s));
  if (s == NULL)
    return;
  uv_tcp_init(t->loop, s);
  if (uv_accept(server, (uv_stream_t *)s) == 0)
    gv_logf(t->log, GV_LOG_DEBUG,
            "refused a connection: %zu handshakes running", t->pending_hs);
  uv_close((uv_handle_t *)s, on_refused_closed);
}

/* Admission before any byte is read: at most MAX_PENDING_HS handshakes in
 * all and MAX_PENDING_PER_SRC per source (refused ones are accepted and
 * closed at once); then the peer has FIRST_BYTE_MS to start its handshake
 * and HANDSHAKE_MS to finish it. Idle sockets from one address thus hold
 * at most its share, and each for FIRST_BYTE_MS. */
static void on_connection(uv_stream_t *server, int status) {
  gv_links *t = server->data;
  gv_conn *c;
  nlink *l;

  if (status < 0)
    return;
  if (t->stopping || t->pending_hs >= MAX_PENDING_HS ||
      (l = calloc(1, sizeof(*l))) == NULL) {
    refuse(t, server);
    return;
  }
  l->t = t;
  if (gv_conn_new(&c, t->loop, t->self, GV_HS_RESPONDER, NULL, &conn_cbs, l) <
      0) {
    free(l);
    refuse(t, server);
    return;
  }
  l->conn = c;
  if (uv_accept(server, gv_conn_stream(c)) < 0) {
    l->refused = true;
    gv_conn_abort(c, GV_ESTATE);
    return;
  }
  l->src_len = src_key((uv_tcp_t *)gv_conn_stream(c), l->src);
  if (src_pending(t, l->src, l->src_len) >= MAX_PENDING_PER_SRC ||
      link_insert(t, l) < 0) {
    gv_logf(t->log, GV_LOG_DEBUG,
            "refused a connection: %d handshakes running from its address",
            MAX_PENDING_PER_SRC);
    l->refused = true;
    gv_conn_abort(c, GV_ELIMIT);
    return;
  }
  gv_conn_set_timeouts(
      c, &(gv_conn_timeouts){HANDSHAKE_MS, FIRST_BYTE_MS, 0, FRAME_MS});
  if (t->final != NULL)
    gv_conn_set_final(c, t->final, t->final_len); /* empty if out of memory */
  if (gv_conn_start(c) < 0)
    link_remove(t, l); /* on_close never comes */
}

static void free_handle(uv_handle_t *h) { free(h); }

int gv_links_listen(gv_links *t, const gv_addr *addr, gv_why *why) {
  struct sockaddr_storage ss;
  char text[GV_ADDR_TEXT_MAX];
  int rc;

  if (t->listening)
    return 0;
  gv_addr_format(addr, text);
  gv_addr_to_sockaddr(addr, &ss, NULL);
  if ((t->listener = malloc(sizeof(*t->listener))) == NULL)
    return gv_fail(why, GV_ENOMEM, "cannot listen on %s: out of memory", text);
  uv_tcp_init(t->loop, t->listener);
  t->listener->data = t;
  if ((rc = uv_tcp_bind(t->listener, (struct sockaddr *)&ss, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)t->listener, 128, on_connection)) < 0) {
    uv_close((uv_handle_t *)t->listener, free_handle);
    t->listener = NULL;
    return gv_fail(why, rc, "cannot listen on %s: %s", text, uv_strerror(rc));
  }
  t->listening = true;
  gv_logf(t->log, GV_LOG_INFO, "listening on %s (broadcasting)", text);
  return 0;
}

void gv_links_unlisten(gv_links *t) {
  if (t->listening) {
    uv_close((uv_handle_t *)t->listener, free_handle);
    t->listener = NULL;
    t->listening = false;
  }
}

int gv_links_send(gv_links *t, gv_linkid id, const uint8_t *msg, size_t len) {
  nlink *l = link_find(t, id);
  if (l == NULL || l->conn == NULL)
    return -ENOENT;
  return gv_conn_send(l->conn, msg, len);
}

void gv_links_close(gv_links *t, gv_linkid id, const char *why,
                    const uint8_t *msg, size_t len) {
  nlink *l = link_find(t, id);
  if (l == NULL)
    return;
  gv_logf(t->log, GV_LOG_INFO, "closing link %u: %s", l->id, why);
  gv_conn_close(l->conn, msg, len);
}

void gv_links_goodbye(gv_links *t, const uint8_t *msg, size_t len) {
  t->stopping = true;
  gv_links_unlisten(t);
  /* on_close runs later (handles close on the loop), so the table holds
   * still while we walk it. */
  for (size_t i = 0; i < t->n; i++) {
    nlink *l = t->v[i];
    if (l->open)
      gv_conn_close(l->conn, msg, len);
    else
      gv_conn_abort(l->conn, GV_ESTATE);
  }
}

void gv_links_abort_all(gv_links *t) {
  for (size_t i = 0; i < t->n; i++)
    gv_conn_abort(t->v[i]->conn, GV_ESTATE);
}

size_t gv_links_count(const gv_links *t) { return t->n; }
size_t gv_links_handshaking(const gv_links *t) { return t->pending_hs; }

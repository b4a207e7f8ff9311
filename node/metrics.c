/* The node's Prometheus endpoint (metrics.h), served by libmicrohttpd from
 * its own thread. The only state the two threads share is the published
 * text, behind one mutex: the daemon swaps in a new copy, a request copies
 * it into its response; neither holds the lock longer than one copy.
 *
 * Request life, with libmicrohttpd 0.9.75's two-phase handler (a response
 * queued on the first call makes 0.9.75 close keep-alive connections):
 *
 *   GET or HEAD, call 1 (headers)  mark the request seen, answer nothing
 *                call 2            /metrics: 200 and the text; other paths:
 *                                  404; a request body: the connection is
 *                                  closed unanswered
 *   other methods, call 1          405 for /metrics, 404 for other paths,
 *                                  at once: a body is never read, and
 *                                  libmicrohttpd closes the connection
 *                                  after answering
 */
#include "metrics.h"

#include "sockaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_PATH "/metrics"
#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX_CONNS 64u /* scrapers at once */
#define METRICS_TIMEOUT_S 10u /* an idle connection is closed after this */

struct gv_metrics {
  struct MHD_Daemon *mhd;
  uint16_t port;
  pthread_mutex_t lock; /* guards text and len */
  char *text;           /* malloc'd; NULL until the first publish */
  size_t len;
};

/* Queues a response with a static body. */
static enum MHD_Result respond_static(struct MHD_Connection *conn,
                                      unsigned status, const char *body) {
  struct MHD_Response *resp;
  enum MHD_Result ret;

  resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Queues 200 with a copy of the published text. */
static enum MHD_Result respond_metrics(gv_metrics *m,
                                       struct MHD_Connection *conn) {
  struct MHD_Response *resp;
  enum MHD_Result ret;

  pthread_mutex_lock(&m->lock);
  if (m->len > 0)
    resp =
        MHD_create_response_from_buffer(m->len, m->text, MHD_RESPMEM_MUST_COPY);
  else
    resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  pthread_mutex_unlock(&m->lock);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CTYPE);
  ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static int is_read(const char *method) {
  return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
         strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
  gv_metrics *m = cls;
  int found = strcmp(url, METRICS_PATH) == 0;

  (void)version;
  (void)upload_data;
  if (*req_cls == NULL) {
    if (!is_read(method))
      return found ? respond_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                    "method not allowed\n")
                   : respond_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    *req_cls = m; /* any non-NULL mark */
    return MHD_YES;
  }
  if (*upload_data_size != 0)
    return MHD_NO; /* a GET or HEAD with a body: closed unanswered */
  if (!found)
    return respond_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
  return respond_metrics(m, conn);
}

int gv_metrics_start(gv_metrics **out, const gv_addr *addr, gv_why *why) {
  struct sockaddr_storage ss;
  char text[GV_ADDR_TEXT_MAX];
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
  const union MHD_DaemonInfo *info;
  gv_metrics *m = NULL;
  int rc = 0, err;

  *out = NULL;
  if (addr->family != 4 && addr->family != 6)
    return gv_fail(why, GV_EINVAL, "metrics: address family %u is not 4 or 6",
                   (unsigned)addr->family);
  if (addr->family == 6)
    flags |= MHD_USE_IPv6;
  gv_addr_to_sockaddr(addr, &ss, NULL);
  gv_addr_format(addr, text);
  if ((m = calloc(1, sizeof(*m))) == NULL)
    return gv_fail(why, GV_ENOMEM, "metrics: out of memory");
  if ((err = pthread_mutex_init(&m->lock, NULL)) != 0) {
    free(m);
    return gv_fail(why, -err, "metrics: %s", strerror(err));
  }
  /* Without MHD_USE_ERROR_LOG libmicrohttpd prints nothing; 0.9.75 leaves
   * the errno of the call that failed (bind(), listen(), ...), which is the
   * reason, though no version promises it. */
  errno = 0;
  m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, METRICS_MAX_CONNS,
                            MHD_OPTION_CONNECTION_TIMEOUT, METRICS_TIMEOUT_S,
                            MHD_OPTION_END);
  if (m->mhd == NULL) {
    err = errno;
    rc = gv_fail(why, GV_EINVAL, "metrics: cannot listen on %s: %s", text,
                 err != 0 ? strerror(err) : "libmicrohttpd refused to start");
    goto out;
  }
  info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
  m->port = info != NULL && info->port != 0 ? info->port : addr->port;
  *out = m;
out:
  if (rc < 0) {
    pthread_mutex_destroy(&m->lock);
    free(m);
  }
  return rc;
}

uint16_t gv_metrics_port(const gv_metrics *m) { return m->port; }

void gv_metrics_publish(gv_metrics *m, const char *text, size_t len) {
  char *copy = malloc(len > 0 ? len : 1), *old;

  /* Out of memory: the previous text stays served. */
  if (copy == NULL)
    return;
  if (len > 0)
    memcpy(copy, text, len);
  pthread_mutex_lock(&m->lock);
  old = m->text;
  m->text = copy;
  m->len = len;
  pthread_mutex_unlock(&m->lock);
  free(old);
}

void gv_metrics_stop(gv_metrics *m) {
  if (m == NULL)
    return;
  MHD_stop_daemon(m->mhd);
  pthread_mutex_destroy(&m->lock);
  free(m->text);
  free(m);
}

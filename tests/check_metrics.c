/* The Prometheus endpoint (node/metrics.h), fetched over real TCP with
 * libcurl. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "testutil.h"

#define CTYPE "text/plain; version=0.0.4; charset=utf-8"

static gv_metrics *m;
static CURL *h;

/* What one request brought back. */
typedef struct reply {
  long status;
  char *body;
  size_t len;
  char allow[64];
  char ctype[96];
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
  reply *r = ctx;
  char *nb = realloc(r->body, r->len + size * n + 1);

  ck_assert_ptr_nonnull(nb);
  memcpy(nb + r->len, p, size * n);
  r->body = nb;
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

/* Keeps the value of a header named name (with its ": "), CRLF cut. */
static void keep_header(char *dst, size_t cap, const char *line, size_t len,
                        const char *name) {
  size_t nlen = strlen(name);

  if (len < nlen || strncasecmp(line, name, nlen) != 0)
    return;
  line += nlen;
  len -= nlen;
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
    len--;
  snprintf(dst, cap, "%.*s", (int)len, line);
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
  reply *r = ctx;

  keep_header(r->allow, sizeof(r->allow), p, size * n, "Allow: ");
  keep_header(r->ctype, sizeof(r->ctype), p, size * n, "Content-Type: ");
  return size * n;
}

static void reply_free(reply *r) {
  free(r->body);
  memset(r, 0, sizeof(*r));
}

/* method NULL: GET. A POST sends a small body. */
static void fetch_on(CURL *curl, const char *host, uint16_t port,
                     const char *path, const char *method, reply *r) {
  char url[128];
  CURLcode rc;

  memset(r, 0, sizeof(*r));
  snprintf(url, sizeof(url), "http://%s:%u%s", host, (unsigned)port, path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
  if (method != NULL && strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != NULL && strcmp(method, "POST") == 0) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "a=1&b=2");
  } else if (method != NULL) {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }
  rc = curl_easy_perform(curl);
  ck_assert_msg(rc == CURLE_OK, "%s: %s", url, curl_easy_strerror(rc));
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
}

static void fetch(const char *path, const char *method, reply *r) {
  fetch_on(h, "127.0.0.1", gv_metrics_port(m), path, method, r);
}

static long connects(void) {
  long n = -1;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n);
  return n;
}

static void start_on(gv_metrics **out, const char *text) {
  gv_addr a;
  gv_why why = {""};

  /* Port 0 cannot be written as text; parse a port and clear it. */
  ck_assert_int_eq(gv_addr_parse(&a, text, strlen(text)), 0);
  a.port = 0;
  ck_assert_msg(gv_metrics_start(out, &a, &why) == 0, "%s", why.text);
  ck_assert_uint_ne(gv_metrics_port(*out), 0);
}

static void setup(void) {
  start_on(&m, "127.0.0.1:1");
  h = curl_easy_init();
  ck_assert_ptr_nonnull(h);
}

static void teardown(void) {
  curl_easy_cleanup(h);
  gv_metrics_stop(m);
}

START_TEST(test_get) {
  static const char one[] = "# TYPE gv_peers gauge\ngv_peers 3\n";
  static const char two[] = "# TYPE gv_peers gauge\ngv_peers 4\n";
  reply r;

  /* Nothing published yet: an empty exposition. */
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);
  ck_assert_str_eq(r.ctype, CTYPE);
  reply_free(&r);

  gv_metrics_publish(m, one, strlen(one));
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, one);
  ck_assert_str_eq(r.ctype, CTYPE);
  reply_free(&r);

  gv_metrics_publish(m, two, strlen(two));
  fetch("/metrics?name[]=gv_peers", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, two);
  reply_free(&r);

  /* Publishing nothing serves nothing. */
  gv_metrics_publish(m, NULL, 0);
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);
  reply_free(&r);
}
END_TEST

START_TEST(test_head) {
  static const char text[] = "gv_up 1\n";
  curl_off_t clen = -1;
  reply r;

  gv_metrics_publish(m, text, strlen(text));
  fetch("/metrics", "HEAD", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);
  curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
  ck_assert_int_eq(clen, (curl_off_t)strlen(text));
  reply_free(&r);
}
END_TEST

START_TEST(test_not_found) {
  static const char *const paths[] = {"/", "/other", "/metrics/", "/metricsx",
                                      "/METRICS"};
  reply r;

  gv_metrics_publish(m, "gv_up 1\n", 8);
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    fetch(paths[i], NULL, &r);
    ck_assert_msg(r.status == 404, "%s: %ld", paths[i], r.status);
    ck_assert_str_eq(r.body, "not found\n");
    reply_free(&r);
  }
  fetch("/other", "POST", &r);
  ck_assert_int_eq(r.status, 404);
  reply_free(&r);
}
END_TEST

START_TEST(test_method_not_allowed) {
  static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
  reply r;

  gv_metrics_publish(m, "gv_up 1\n", 8);
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    fetch("/metrics", methods[i], &r);
    ck_assert_msg(r.status == 405, "%s: %ld", methods[i], r.status);
    ck_assert_str_eq(r.allow, "GET, HEAD");
    ck_assert_str_eq(r.body, "method not allowed\n");
    reply_free(&r);
  }
  /* And the server goes on serving. */
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "gv_up 1\n");
  reply_free(&r);
}
END_TEST

START_TEST(test_get_with_body) {
  char url[64];
  reply r;

  /* Refused by closing the connection: 0.9.75 cannot answer mid-body. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
           (unsigned)gv_metrics_port(m));
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "a=1");
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "GET");
  ck_assert_int_eq(curl_easy_perform(h), CURLE_GOT_NOTHING);
  /* The server goes on serving. */
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  reply_free(&r);
}
END_TEST

START_TEST(test_keep_alive) {
  reply r;

  gv_metrics_publish(m, "gv_up 1\n", 8);
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(connects(), 1);
  reply_free(&r);
  for (int i = 0; i < 3; i++) {
    fetch(i == 1 ? "/other" : "/metrics", NULL, &r);
    ck_assert_int_eq(r.status, i == 1 ? 404 : 200);
    ck_assert_msg(connects() == 0, "request %d opened a connection", i + 2);
    reply_free(&r);
  }
}
END_TEST

START_TEST(test_large) {
  size_t len = 4u << 20;
  char *text = malloc(len), *want = malloc(len);
  reply r;

  ck_assert(text != NULL && want != NULL);
  for (size_t i = 0; i < len; i++)
    text[i] = (char)('a' + i % 26);
  memcpy(want, text, len);
  gv_metrics_publish(m, text, len);
  /* The server holds its own copy. */
  memset(text, 'x', len);
  fetch("/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, len);
  ck_assert(memcmp(r.body, want, len) == 0);
  reply_free(&r);
  free(text);
  free(want);
}
END_TEST

typedef struct publisher {
  gv_metrics *m;
  atomic_bool stop;
  atomic_int rounds;
} publisher;

/* Publishes bodies of 64 KiB of one letter, the letter changing, until
 * stopped. */
static void *publish_loop(void *arg) {
  publisher *p = arg;
  size_t len = 64u << 10;
  char *text = malloc(len);

  for (int i = 0; text != NULL && !atomic_load(&p->stop); i++) {
    memset(text, 'a' + i % 26, len);
    gv_metrics_publish(p->m, text, len);
    atomic_fetch_add(&p->rounds, 1);
  }
  free(text);
  return NULL;
}

/* Whether body is len bytes all equal. */
static int uniform(const char *body, size_t len) {
  for (size_t i = 1; i < len; i++)
    if (body[i] != body[0])
      return 0;
  return 1;
}

START_TEST(test_publish_while_serving) {
  publisher p = {.m = m};
  pthread_t t;
  reply r;

  atomic_init(&p.stop, false);
  atomic_init(&p.rounds, 0);
  ck_assert_int_eq(pthread_create(&t, NULL, publish_loop, &p), 0);
  while (atomic_load(&p.rounds) == 0)
    sched_yield();
  for (int i = 0; i < 50; i++) {
    fetch("/metrics", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    /* Each scrape sees one whole publication. */
    ck_assert_uint_eq(r.len, 64u << 10);
    ck_assert(uniform(r.body, r.len));
    reply_free(&r);
  }
  atomic_store(&p.stop, true);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

START_TEST(test_address_in_use) {
  gv_metrics *other = (gv_metrics *)&other; /* start must clear it */
  gv_addr a;
  gv_why why = {""};
  char want[128];

  ck_assert_int_eq(gv_addr_parse(&a, "127.0.0.1:1", 11), 0);
  a.port = gv_metrics_port(m);
  ck_assert_int_eq(gv_metrics_start(&other, &a, &why), GV_EINVAL);
  ck_assert_ptr_null(other);
  snprintf(want, sizeof(want),
           "metrics: cannot listen on 127.0.0.1:%u: Address already in use",
           (unsigned)a.port);
  ck_assert_str_eq(why.text, want);
}
END_TEST

START_TEST(test_cannot_bind) {
  gv_metrics *other = NULL;
  gv_addr a;
  gv_why why = {""};

  /* TEST-NET-1: no interface has it. */
  ck_assert_int_eq(gv_addr_parse(&a, "192.0.2.1:9411", 14), 0);
  ck_assert_int_eq(gv_metrics_start(&other, &a, &why), GV_EINVAL);
  ck_assert_ptr_null(other);
  ck_assert_str_eq(why.text, "metrics: cannot listen on 192.0.2.1:9411: "
                             "Cannot assign requested address");
  memset(&a, 0, sizeof(a));
  ck_assert_int_eq(gv_metrics_start(&other, &a, &why), GV_EINVAL);
  ck_assert_str_eq(why.text, "metrics: address family 0 is not 4 or 6");
  ck_assert_ptr_null(other);
}
END_TEST

/* Whether this host can bind [::1]. */
static int have_ipv6_loopback(void) {
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
  int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;

  if (fd < 0)
    return 0;
  sin6.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
  close(fd);
  return ok;
}

START_TEST(test_ipv6) {
  gv_metrics *m6;
  reply r;

  if (!have_ipv6_loopback())
    return; /* no IPv6 on this host: nothing to test */
  start_on(&m6, "[::1]:1");
  gv_metrics_publish(m6, "gv_up 6\n", 8);
  fetch_on(h, "[::1]", gv_metrics_port(m6), "/metrics", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "gv_up 6\n");
  reply_free(&r);
  gv_metrics_stop(m6);
}
END_TEST

START_TEST(test_stop_with_open_connection) {
  gv_metrics *m2;
  CURL *c2 = curl_easy_init();
  reply r;

  /* A scraper keeps its connection open across the stop. */
  start_on(&m2, "127.0.0.1:1");
  gv_metrics_publish(m2, "gv_up 1\n", 8);
  gv_metrics_publish(m2, "gv_up 2\n", 8);
  fetch_on(c2, "127.0.0.1", gv_metrics_port(m2), "/metrics", NULL, &r);
  ck_assert_str_eq(r.body, "gv_up 2\n");
  reply_free(&r);
  gv_metrics_stop(m2);
  curl_easy_cleanup(c2);
  gv_metrics_stop(NULL);
}
END_TEST

static Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("http");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_get);
  tcase_add_test(tc, test_head);
  tcase_add_test(tc, test_not_found);
  tcase_add_test(tc, test_method_not_allowed);
  tcase_add_test(tc, test_get_with_body);
  tcase_add_test(tc, test_keep_alive);
  tcase_add_test(tc, test_large);
  tcase_add_test(tc, test_publish_while_serving);
  tcase_add_test(tc, test_address_in_use);
  tcase_add_test(tc, test_cannot_bind);
  tcase_add_test(tc, test_ipv6);
  tcase_add_test(tc, test_stop_with_open_connection);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  int rc;

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  rc = tu_run(metrics_suite());
  curl_global_cleanup();
  return rc;
}

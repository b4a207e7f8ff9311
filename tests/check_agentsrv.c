/* The agent socket server (node/agentsrv.c) over a real Unix socket in a
 * temporary directory. The clients are plain non-blocking sockets in this
 * process; every wait pumps the server's loop and is bounded in time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentsrv.h"
#include "relayreq.h"
#include "testutil.h"

#define WAIT_MS 10000 /* every wait gives up after this */

typedef struct tctx {
  gv_agentsrv *srv;
  unsigned opens, closes, lines;
  size_t last_len;
  bool echo;
} tctx;

static char dir[64], path[96];
static uv_loop_t loop;
static tctx T;

static void t_open(void *ctx, gv_rconn conn) {
  tctx *t = ctx;
  ck_assert_uint_ne(conn, 0);
  t->opens++;
}

/* Echoes every line; "bye" is echoed, then the server hangs up. */
static void t_line(void *ctx, gv_rconn conn, const char *line, size_t len) {
  tctx *t = ctx;
  uint8_t *out;

  t->lines++;
  t->last_len = len;
  if (!t->echo)
    return;
  out = malloc(len + 1);
  ck_assert_ptr_nonnull(out);
  memcpy(out, line, len);
  out[len] = '\n';
  ck_assert_int_eq(gv_agentsrv_write(t->srv, conn, out, len + 1), 0);
  if (len == 3 && memcmp(line, "bye", 3) == 0) {
    gv_agentsrv_hangup(t->srv, conn);
    out = malloc(4);
    memcpy(out, "no\n", 3);
    ck_assert_int_eq(gv_agentsrv_write(t->srv, conn, out, 3), GV_ESTATE);
  }
}

static void t_closed(void *ctx, gv_rconn conn) {
  tctx *t = ctx;
  ck_assert_uint_ne(conn, 0);
  t->closes++;
}

static const gv_agentsrv_cbs cbs = {t_open, t_line, t_closed};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump(void) { uv_run(&loop, UV_RUN_NOWAIT); }

/* Pumps until *n reaches want or WAIT_MS passes. */
static void pump_until(const unsigned *n, unsigned want) {
  long long end = now_ms() + WAIT_MS;
  while (*n < want && now_ms() < end) {
    pump();
    usleep(200);
  }
  ck_assert_uint_eq(*n, want);
}

static int cli_connect(const char *p) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
  return fd;
}

/* Sends all of p[0..n), pumping the server while the socket is full. */
static void cli_send(int fd, const void *p, size_t n) {
  long long end = now_ms() + WAIT_MS;
  const char *b = p;
  while (n > 0 && now_ms() < end) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w > 0) {
      b += w;
      n -= (size_t)w;
    } else {
      ck_assert(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      pump();
    }
  }
  ck_assert_uint_eq(n, 0);
}

/* Reads one line (without '\n') into buf, byte by byte so nothing after it
 * is consumed. Returns its length, or -1 at EOF. */
static ssize_t cli_line(int fd, char *buf, size_t cap) {
  long long end = now_ms() + WAIT_MS;
  size_t len = 0;
  while (now_ms() < end) {
    ssize_t r = recv(fd, buf + len, 1, 0);
    if (r == 0)
      return -1;
    if (r < 0) {
      ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
      pump();
      continue;
    }
    if (buf[len] == '\n') {
      buf[len] = '\0';
      return (ssize_t)len;
    }
    ck_assert_uint_lt(++len, cap);
  }
  ck_abort_msg("no line within %d ms", WAIT_MS);
  return -1;
}

/* Reads and drops everything until EOF (true) or WAIT_MS (false). */
static bool cli_eof(int fd) {
  long long end = now_ms() + WAIT_MS;
  char b[65536];
  while (now_ms() < end) {
    ssize_t r = recv(fd, b, sizeof(b), 0);
    if (r == 0)
      return true;
    if (r < 0 && errno == ECONNRESET)
      return true;
    if (r < 0)
      pump();
  }
  return false;
}

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/gv-agentsrv-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/relay.sock", dir);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  memset(&T, 0, sizeof(T));
  T.echo = true;
}

static void start(const gv_agentsrv_opts *opts) {
  gv_why why = {""};
  ck_assert_msg(gv_agentsrv_start(&T.srv, &loop, path, &cbs, &T, opts, &why) ==
                    0,
                "%s", why.text);
}

static void teardown(void) {
  struct stat sb;
  gv_agentsrv_close(T.srv);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle closed */
  ck_assert_int_ne(lstat(path, &sb), 0);     /* the socket file is gone */
  rmdir(dir);
}

START_TEST(test_echo_mode) {
  struct stat sb;
  char buf[64];
  int fd;

  start(NULL);
  ck_assert_int_eq(lstat(path, &sb), 0);
  ck_assert(S_ISSOCK(sb.st_mode));
  ck_assert_uint_eq(sb.st_mode & 07777, 0600);
  fd = cli_connect(path);
  cli_send(fd, "hello\n", 6);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 5);
  ck_assert_str_eq(buf, "hello");
  ck_assert_uint_eq(T.opens, 1);
  close(fd);
  pump_until(&T.closes, 1);
}
END_TEST

START_TEST(test_split_lines) {
  gv_agentsrv_stats st;
  char buf[64];
  int fd;

  start(NULL);
  fd = cli_connect(path);
  /* One line across three reads. */
  cli_send(fd, "ab", 2);
  pump_until(&T.opens, 1);
  for (int i = 0; i < 20; i++)
    pump();
  ck_assert_uint_eq(T.lines, 0);
  cli_send(fd, "c", 1);
  for (int i = 0; i < 20; i++)
    pump();
  ck_assert_uint_eq(T.lines, 0);
  cli_send(fd, "\nde", 3);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 3);
  ck_assert_str_eq(buf, "abc");
  cli_send(fd, "f\n", 2);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 3);
  ck_assert_str_eq(buf, "def");
  /* Several lines in one read, an empty one among them, in order. */
  cli_send(fd, "1\n\n22\n333\n", 10);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 1);
  ck_assert_str_eq(buf, "1");
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 0);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 2);
  ck_assert_str_eq(buf, "22");
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 3);
  ck_assert_str_eq(buf, "333");
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.lines_in, 6);
  ck_assert_uint_eq(st.lines_out, 6);
  ck_assert_uint_eq(st.conns, 1);
  /* "bye": its echo, then the server closes; later writes are refused. */
  cli_send(fd, "bye\nlost\n", 9);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 3);
  ck_assert(cli_eof(fd));
  pump_until(&T.closes, 1);
  ck_assert_uint_eq(T.lines, 7); /* "lost" came after the hang-up */
  close(fd);
}
END_TEST

START_TEST(test_toobig) {
  gv_agentsrv_stats st;
  char *big = malloc(GV_RREQ_LINE_MAX + 2), line[256];
  int fd;

  ck_assert_ptr_nonnull(big);
  memset(big, 'x', GV_RREQ_LINE_MAX + 1);
  big[GV_RREQ_LINE_MAX] = '\n';
  T.echo = false;
  start(NULL);
  /* Exactly the limit, newline after: a line. */
  fd = cli_connect(path);
  cli_send(fd, big, GV_RREQ_LINE_MAX + 1);
  pump_until(&T.lines, 1);
  ck_assert_uint_eq(T.last_len, GV_RREQ_LINE_MAX);
  /* One byte more without a newline: TOOBIG, then the server closes. */
  big[GV_RREQ_LINE_MAX] = 'x';
  cli_send(fd, big, GV_RREQ_LINE_MAX + 1);
  ck_assert_int_gt(cli_line(fd, line, sizeof(line)), 0);
  ck_assert_ptr_nonnull(strstr(line, "\"error\":\"TOOBIG\""));
  ck_assert(cli_eof(fd));
  pump_until(&T.closes, 1);
  ck_assert_uint_eq(T.lines, 1);
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.toobig, 1);
  ck_assert_uint_eq(st.conns, 0);
  close(fd);
  free(big);
}
END_TEST

#define N_PARALLEL 1000

START_TEST(test_parallel) {
  static int fds[N_PARALLEL];
  gv_agentsrv_stats st;
  char buf[64], want[64];

  start(NULL);
  for (int i = 0; i < N_PARALLEL; i++) {
    fds[i] = cli_connect(path);
    snprintf(buf, sizeof(buf), "client %d\n", i);
    cli_send(fds[i], buf, strlen(buf));
    if (i % 64 == 0)
      pump();
  }
  pump_until(&T.opens, N_PARALLEL);
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.conns, N_PARALLEL);
  for (int i = N_PARALLEL - 1; i >= 0; i--) {
    snprintf(want, sizeof(want), "client %d", i);
    ck_assert_int_ge(cli_line(fds[i], buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, want);
  }
  for (int i = 0; i < N_PARALLEL; i++)
    close(fds[i]);
  pump_until(&T.closes, N_PARALLEL);
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.conns, 0);
  ck_assert_uint_eq(st.refused, 0);
}
END_TEST

START_TEST(test_cap) {
  gv_agentsrv_opts o = {.max_conns = 2};
  gv_agentsrv_stats st;
  char buf[256];
  int a, b, c;

  start(&o);
  a = cli_connect(path);
  b = cli_connect(path);
  pump_until(&T.opens, 2);
  c = cli_connect(path);
  ck_assert_int_gt(cli_line(c, buf, sizeof(buf)), 0);
  ck_assert_ptr_nonnull(strstr(buf, "\"error\":\"LIMIT\""));
  ck_assert(cli_eof(c));
  ck_assert_uint_eq(T.opens, 2);
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.refused, 1);
  /* A slot freed is a slot taken again. */
  close(a);
  pump_until(&T.closes, 1);
  close(c);
  c = cli_connect(path);
  pump_until(&T.opens, 3);
  cli_send(c, "hi\n", 3);
  ck_assert_int_eq(cli_line(c, buf, sizeof(buf)), 2);
  close(b);
  close(c);
  pump_until(&T.closes, 3);
}
END_TEST

static gv_rconn last_open;
static void t_open_keep(void *ctx, gv_rconn conn) {
  t_open(ctx, conn);
  last_open = conn;
}

START_TEST(test_slow_reader) {
  static const gv_agentsrv_cbs keep = {t_open_keep, t_line, t_closed};
  const size_t mib = 1024 * 1024;
  gv_agentsrv_stats st;
  gv_why why = {""};
  size_t written = 0;
  int fd, rc = 0, i;

  ck_assert_int_eq(
      gv_agentsrv_start(&T.srv, &loop, path, &keep, &T, NULL, &why), 0);
  fd = cli_connect(path); /* connects, never reads */
  pump_until(&T.opens, 1);
  for (i = 0; i < 200 && rc == 0; i++) {
    uint8_t *line = malloc(mib);
    ck_assert_ptr_nonnull(line);
    memset(line, 'y', mib - 1);
    line[mib - 1] = '\n';
    if ((rc = gv_agentsrv_write(T.srv, last_open, line, mib)) == 0)
      written += mib;
    pump();
  }
  ck_assert_int_eq(rc, GV_EBUSY);
  /* Cut at the bound: no more than 64 MiB queued beyond what the kernel's
   * socket buffer took (a few hundred KiB). */
  ck_assert_uint_ge(written, GV_AGENTSRV_MAX_QUEUED - mib);
  ck_assert_uint_le(written, GV_AGENTSRV_MAX_QUEUED + 8 * mib);
  ck_assert_int_eq(gv_agentsrv_write(T.srv, last_open, malloc(mib), mib),
                   GV_ESTATE);
  pump_until(&T.closes, 1);
  gv_agentsrv_stats_get(T.srv, &st);
  ck_assert_uint_eq(st.closed_slow, 1);
  ck_assert_uint_eq(st.conns, 0);
  close(fd);
}
END_TEST

START_TEST(test_second_server_refused) {
  gv_agentsrv *two = NULL;
  gv_why why = {""};
  char buf[64];
  int fd;

  start(NULL);
  ck_assert_int_eq(gv_agentsrv_start(&two, &loop, path, &cbs, &T, NULL, &why),
                   GV_EBUSY);
  ck_assert_ptr_null(two);
  ck_assert_ptr_nonnull(strstr(why.text, "in use"));
  /* The first one still owns the path and answers. */
  fd = cli_connect(path);
  cli_send(fd, "still\n", 6);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 5);
  close(fd);
  pump_until(&T.closes, 1);
}
END_TEST

START_TEST(test_stale_replaced) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  gv_agentsrv *none = NULL;
  gv_why why = {""};
  char buf[64];
  int fd;

  /* A regular file in the way is not ours to remove. */
  fd = open(path, O_CREAT | O_WRONLY, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(gv_agentsrv_start(&none, &loop, path, &cbs, &T, NULL, &why),
                   -EEXIST);
  ck_assert_ptr_null(none);
  ck_assert_ptr_nonnull(strstr(why.text, "not a socket"));
  ck_assert_int_eq(unlink(path), 0);
  /* A socket file whose owner died: bound, never listened, closed. */
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(fd);
  start(NULL);
  fd = cli_connect(path);
  cli_send(fd, "fresh\n", 6);
  ck_assert_int_eq(cli_line(fd, buf, sizeof(buf)), 5);
  close(fd);
  pump_until(&T.closes, 1);
}
END_TEST

static Suite *agentsrv_suite(void) {
  Suite *s = suite_create("agentsrv");
  TCase *tc = tcase_create("socket");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_echo_mode);
  tcase_add_test(tc, test_split_lines);
  tcase_add_test(tc, test_toobig);
  tcase_add_test(tc, test_parallel);
  tcase_add_test(tc, test_cap);
  tcase_add_test(tc, test_slow_reader);
  tcase_add_test(tc, test_second_server_refused);
  tcase_add_test(tc, test_stale_replaced);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(agentsrv_suite()); }

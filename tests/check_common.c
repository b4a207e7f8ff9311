/* The adapters' shared helpers (common/): sockaddr conversion, the
 * rate-limited logger, the retry backoff, and the libuv link adapter
 * (conn.c) on a real loop over loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "conn.h"
#include "log.h"
#include "sockaddr.h"
#include "testutil.h"

START_TEST(test_sockaddr_round_trip) {
  static const char *const texts[] = {"127.0.0.1:7000", "[2001:db8::1]:1",
                                      "10.1.2.3:65535", "[::1]:443"};
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    struct sockaddr_storage ss;
    socklen_t len = 0;
    gv_addr a, b;
    char out[GV_ADDR_TEXT_MAX];
    ck_assert_int_eq(gv_addr_parse(&a, texts[i], strlen(texts[i])), 0);
    gv_addr_to_sockaddr(&a, &ss, &len);
    ck_assert_int_eq(ss.ss_family, a.family == 6 ? AF_INET6 : AF_INET);
    ck_assert_uint_eq(len, a.family == 6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    ck_assert_int_eq(gv_addr_from_sockaddr(&b, (struct sockaddr *)&ss), 0);
    ck_assert(gv_addr_equal(&a, &b));
    gv_addr_format(&b, out);
    ck_assert_str_eq(out, texts[i]);
  }
}
END_TEST

START_TEST(test_sockaddr_mapped_and_bad) {
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  struct sockaddr sa = {.sa_family = AF_UNIX};
  gv_addr a;

  inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
  s6.sin6_port = htons(99);
  ck_assert_int_eq(gv_addr_from_sockaddr(&a, (struct sockaddr *)&s6), 0);
  ck_assert_int_eq(a.family, 4);
  ck_assert_int_eq(a.port, 99);
  ck_assert_mem_eq(a.ip, "\xc0\x00\x02\x07", 4);
  ck_assert_int_eq(gv_addr_from_sockaddr(&a, &sa), GV_EINVAL);
  ck_assert_int_eq(gv_addr_from_sockaddr(&a, NULL), GV_EINVAL);
}
END_TEST

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

/* A rate-limited logger writing to f on the fake clock, at 1000 ms. */
static void log_setup(gv_log *lg, FILE *f) {
  ck_assert_ptr_nonnull(f);
  gv_log_init(lg, f, GV_LOG_INFO, "test");
  lg->now_ms = fake_clock;
  fake_now = 1000;
}

static size_t count_lines(FILE *f, const char *needle) {
  char line[1200];
  size_t n = 0;
  rewind(f);
  while (fgets(line, sizeof(line), f) != NULL)
    n += strstr(line, needle) != NULL;
  return n;
}

/* One site flooding: GV_LOG_BURST lines per window, the rest counted and
 * the count reported with the next window's first line; another site keeps
 * its own budget; levels filter before the limiter. */
START_TEST(test_log_rate_limit) {
  FILE *f = tmpfile();
  gv_log lg;

  log_setup(&lg, f);
  for (int i = 0; i < 100; i++)
    gv_logf(&lg, GV_LOG_INFO, "flood %d", i);
  gv_logf(&lg, GV_LOG_WARN, "other site");
  gv_logf(&lg, GV_LOG_DEBUG, "too verbose");
  ck_assert_uint_eq(count_lines(f, "info: flood "), GV_LOG_BURST);
  ck_assert_uint_eq(count_lines(f, "other site"), 1);
  ck_assert_uint_eq(count_lines(f, "too verbose"), 0);
  ck_assert_uint_eq(count_lines(f, "suppressed"), 0);
  fake_now += GV_LOG_WINDOW_MS;
  gv_logf(&lg, GV_LOG_INFO, "flood %d", 100);
  ck_assert_uint_eq(count_lines(f, "suppressed 80 line(s) like: flood %d"), 1);
  ck_assert_uint_eq(count_lines(f, "info: flood 100"), 1);
  for (int i = 0; i < 30; i++)
    gv_logf(&lg, GV_LOG_INFO, "flood %d", i);
  gv_log_done(&lg); /* reports the 11 still pending */
  ck_assert_uint_eq(count_lines(f, "suppressed 11 line(s)"), 1);
  ck_assert_uint_eq(count_lines(f, "test["), count_lines(f, ": "));
  fclose(f);
}
END_TEST

/* Sums the N of every "suppressed N line(s)" line. */
static size_t count_suppressed(FILE *f) {
  char line[1200];
  const char *p;
  size_t n = 0;
  rewind(f);
  while (fgets(line, sizeof(line), f) != NULL)
    if ((p = strstr(line, "suppressed ")) != NULL)
      n += strtoul(p + strlen("suppressed "), NULL, 10);
  return n;
}

/* Many sites flooding in turn each keep their own budget (a direct-mapped
 * table let two sites that hashed alike reset each other's, so neither was
 * ever limited); past the table's size a site is taken over, its count
 * reported first: every line is written or counted, none lost. */
START_TEST(test_log_many_sites) {
#define SITE(n) "site " #n " %d"
  static const char *const fmts[] = {
      SITE(0),  SITE(1),  SITE(2),  SITE(3),  SITE(4),  SITE(5),  SITE(6),
      SITE(7),  SITE(8),  SITE(9),  SITE(10), SITE(11), SITE(12), SITE(13),
      SITE(14), SITE(15), SITE(16), SITE(17), SITE(18), SITE(19), SITE(20),
      SITE(21), SITE(22), SITE(23), SITE(24), SITE(25), SITE(26), SITE(27),
      SITE(28), SITE(29), SITE(30), SITE(31), SITE(32), SITE(33), SITE(34),
      SITE(35), SITE(36), SITE(37), SITE(38), SITE(39)};
#undef SITE
  const size_t n = sizeof(fmts) / sizeof(fmts[0]), rounds = 30;
  FILE *f = tmpfile();
  gv_log lg;

  log_setup(&lg, f);
  for (size_t r = 0; r < rounds; r++)
    for (size_t i = 0; i < n; i++)
      gv_logf(&lg, GV_LOG_INFO, fmts[i], (int)r);
  for (size_t i = 0; i < n; i++) {
    char want[32];
    snprintf(want, sizeof(want), "info: site %zu ", i);
    ck_assert_uint_eq(count_lines(f, want), GV_LOG_BURST);
  }
  ck_assert_uint_eq(count_lines(f, "suppressed"), 0);
  gv_log_done(&lg);
  ck_assert_uint_eq(count_suppressed(f), n * (rounds - GV_LOG_BURST));
  ck_assert_uint_eq(count_lines(f, "suppressed"), n);

  /* More sites than slots: whatever is taken over, written + counted is
   * every call. Each site is its own "x" in one array. */
  {
    static char many[2 * 3 * GV_LOG_SITES];
    size_t calls = 0;
    for (size_t i = 0; i < sizeof(many); i += 2)
      many[i] = 'x';
    log_setup(&lg, f = freopen(NULL, "w+", f));
    for (int r = 0; r < GV_LOG_BURST + 5; r++)
      for (size_t i = 0; i < sizeof(many); i += 2, calls++)
        gv_logf(&lg, GV_LOG_INFO, &many[i], r);
    gv_log_done(&lg);
    ck_assert_uint_gt(count_suppressed(f), 0);
    ck_assert_uint_eq(count_lines(f, "info: x") + count_suppressed(f), calls);
  }
  fclose(f);
}
END_TEST

START_TEST(test_log_one_line_and_parse) {
  FILE *f = tmpfile();
  gv_log lg = {.level = GV_LOG_DEBUG, .out = f};
  gv_log_level lv;

  gv_logf(&lg, GV_LOG_ERROR, "two\nlines");
  ck_assert_uint_eq(count_lines(f, "error: two lines"), 1);
  ck_assert_int_eq(gv_log_level_parse("warn", &lv), 0);
  ck_assert_int_eq(lv, GV_LOG_WARN);
  ck_assert_int_eq(gv_log_level_parse("loud", &lv), GV_EINVAL);
  fclose(f);
}
END_TEST

/* Every delay lies within +-50% of base * 2^(n-1), capped at max. */
START_TEST(test_backoff_bounds) {
  gv_rng r;
  gv_rng_seed(&r, 7);
  for (unsigned n = 1; n <= 20; n++) {
    int64_t nominal = 2000;
    for (unsigned i = 1; i < n && nominal < 300000; i++)
      nominal *= 2;
    if (nominal > 300000)
      nominal = 300000;
    for (int k = 0; k < 50; k++) {
      int64_t d = gv_backoff_ms(&r, 2000, 300000, n);
      ck_assert_int_ge(d, nominal / 2);
      ck_assert_int_le(d, nominal / 2 + nominal);
    }
  }
  ck_assert_int_eq(gv_jitter_ms(&r, 0), 0);
}
END_TEST

static int closes;
static void on_open_none(gv_conn *c) { (void)c; }
static void on_msg_none(gv_conn *c, const uint8_t *m, size_t n) {
  (void)c;
  (void)m;
  (void)n;
}
static void on_close_count(gv_conn *c, int status) {
  (void)c;
  (void)status;
  closes++;
}

/* libuv's rule: a dial that returns an error never calls on_close, and the
 * conn still releases itself (ASan's leak check sees it). A dial that
 * returns 0 and then fails calls on_close once. */
START_TEST(test_conn_failed_dial_is_silent) {
  static const gv_conn_cbs cbs = {on_open_none, on_msg_none, on_close_count};
  struct sockaddr_storage bad = {.ss_family = AF_UNSPEC};
  struct sockaddr_storage ss;
  gv_identity id;
  uv_loop_t loop;
  gv_conn *c;
  gv_addr a;

  ck_assert_int_eq(gv_id_generate(&id), 0);
  uv_loop_init(&loop);
  closes = 0;
  ck_assert_int_eq(
      gv_conn_new(&c, &loop, &id, GV_HS_INITIATOR, NULL, &cbs, NULL), 0);
  ck_assert_int_lt(gv_conn_dial(c, (struct sockaddr *)&bad), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(closes, 0);

  /* Port 1 on loopback: refused after the dial returned 0. */
  ck_assert_int_eq(gv_addr_parse(&a, "127.0.0.1:1", 11), 0);
  gv_addr_to_sockaddr(&a, &ss, NULL);
  ck_assert_int_eq(
      gv_conn_new(&c, &loop, &id, GV_HS_INITIATOR, NULL, &cbs, NULL), 0);
  ck_assert_int_eq(gv_conn_dial(c, (struct sockaddr *)&ss), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(closes, 1);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  gv_id_wipe(&id);
}
END_TEST

/* ---- conn.c on a real loop over loopback ---- */

/* One end of a conn under test: what its callbacks saw. */
typedef struct end {
  gv_conn *c;
  int opened, closed, status;
  int msgs;           /* messages delivered */
  int sent_after_fin; /* gv_conn_send() calls accepted after the peer's FINAL */
  uint64_t closed_at;
  char last[16];
} end;

/* A loop with a listener on 127.0.0.1 and a guard timer: whatever is still
 * open when the guard fires is aborted with GV_ESTATE, so no test waits on
 * a defect for more than the guard. */
typedef struct rig {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t guard;
  struct sockaddr_in at;
  gv_identity ida, idb;
  end a, b; /* a dials, b is accepted */
  uint64_t started;
  int listening;
  gv_conn_timeouts b_to; /* b's deadlines */
  uv_tcp_t raw;          /* instead of a: a bare TCP client */
  uv_connect_t raw_req;
  gv_link *raw_link; /* what raw says, if anything: a link that never closes */
  int raw_open;
  int raw_got_final; /* raw's link received b's FINAL */
} rig;

static rig R;

static void raw_close(void) {
  if (R.raw_open) {
    uv_close((uv_handle_t *)&R.raw, NULL);
    R.raw_open = 0;
  }
}

static void rig_on_guard(uv_timer_t *t) {
  (void)t;
  raw_close();
  if (R.a.c != NULL && !R.a.closed)
    gv_conn_abort(R.a.c, GV_ESTATE);
  if (R.b.c != NULL && !R.b.closed)
    gv_conn_abort(R.b.c, GV_ESTATE);
  if (R.listening) {
    uv_close((uv_handle_t *)&R.listener, NULL);
    R.listening = 0;
  }
}

/* Both ends closed: nothing is left but the guard and the listener. */
static void rig_maybe_done(void) {
  if ((R.a.c == NULL || R.a.closed) && (R.b.c == NULL || R.b.closed)) {
    uv_timer_stop(&R.guard);
    uv_close((uv_handle_t *)&R.guard, NULL);
    raw_close();
    if (R.listening) {
      uv_close((uv_handle_t *)&R.listener, NULL);
      R.listening = 0;
    }
  }
}

static void end_on_close(gv_conn *c, int status) {
  end *e = gv_conn_data(c);
  e->closed = 1;
  e->status = status;
  e->closed_at = uv_now(&R.loop) - R.started;
  rig_maybe_done();
}

static void rig_init(uint64_t guard_ms) {
  socklen_t len = sizeof(R.at);
  memset(&R, 0, sizeof(R));
  tu_identity(&R.ida, 1);
  tu_identity(&R.idb, 2);
  ck_assert_int_eq(uv_loop_init(&R.loop), 0);
  uv_tcp_init(&R.loop, &R.listener);
  uv_ip4_addr("127.0.0.1", 0, &R.at);
  ck_assert_int_eq(uv_tcp_bind(&R.listener, (struct sockaddr *)&R.at, 0), 0);
  ck_assert_int_eq(
      uv_tcp_getsockname(&R.listener, (struct sockaddr *)&R.at, (int *)&len),
      0);
  R.listening = 1;
  uv_timer_init(&R.loop, &R.guard);
  uv_timer_start(&R.guard, rig_on_guard, guard_ms, 0);
  R.started = uv_now(&R.loop);
}

static void rig_run(void) {
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&R.loop), 0);
  gv_link_free(R.raw_link);
  gv_id_wipe(&R.ida);
  gv_id_wipe(&R.idb);
}

/* b is the accepted end: a gv_conn responder. */
static const gv_conn_cbs *b_cbs;
static void rig_on_connection(uv_stream_t *s, int status) {
  ck_assert_int_eq(status, 0);
  ck_assert_int_eq(
      gv_conn_new(&R.b.c, &R.loop, &R.idb, GV_HS_RESPONDER, NULL, b_cbs, &R.b),
      0);
  ck_assert_int_eq(uv_accept(s, gv_conn_stream(R.b.c)), 0);
  gv_conn_set_timeouts(R.b.c, &R.b_to);
  ck_assert_int_eq(gv_conn_start(R.b.c), 0);
}

static void rig_listen(const gv_conn_cbs *cbs) {
  b_cbs = cbs;
  ck_assert_int_eq(uv_listen((uv_stream_t *)&R.listener, 8, rig_on_connection),
                   0);
}

static void rig_dial(const gv_conn_cbs *cbs) {
  ck_assert_int_eq(gv_conn_new(&R.a.c, &R.loop, &R.ida, GV_HS_INITIATOR,
                               R.idb.pk, cbs, &R.a),
                   0);
  ck_assert_int_eq(gv_conn_dial(R.a.c, (struct sockaddr *)&R.at), 0);
}

static void end_record(end *e, const uint8_t *m, size_t n) {
  e->msgs++;
  snprintf(e->last, sizeof(e->last), "%.*s", (int)n, (const char *)m);
}

/* a: on open, two messages and then a graceful close. */
static void bye_a_open(gv_conn *c) {
  R.a.opened = 1;
  ck_assert_int_eq(gv_conn_send(c, (const uint8_t *)"a1", 2), 0);
  ck_assert_int_eq(gv_conn_send(c, (const uint8_t *)"a2", 2), 0);
  gv_conn_close(c, (const uint8_t *)"bye", 3);
}
static void bye_a_msg(gv_conn *c, const uint8_t *m, size_t n) {
  (void)c;
  end_record(&R.a, m, n);
}
/* b: answers every message it is given; after a's FINAL (whose plaintext
 * "bye" it is given last) no send may be accepted. */
static void bye_b_open(gv_conn *c) {
  R.b.opened = 1;
  ck_assert_int_eq(gv_conn_set_final(c, (const uint8_t *)"ok", 2), 0);
}
static void bye_b_msg(gv_conn *c, const uint8_t *m, size_t n) {
  int fin = n == 3 && memcmp(m, "bye", 3) == 0;
  int rc;

  ck_assert_int_eq(R.b.sent_after_fin, 0);
  ck_assert_str_ne(R.b.last, "bye"); /* nothing is delivered after FINAL */
  end_record(&R.b, m, n);
  rc = gv_conn_send(c, (const uint8_t *)"r", 1);
  if (fin)
    R.b.sent_after_fin += rc == 0;
  else
    ck_assert_int_eq(rc, 0);
}

/* PROTOCOL.md §5.2: the receiver of a FINAL stops sending, answers with its
 * own FINAL and closes the TCP connection once that is written; both ends
 * see a clean close (status 0), well before a's close wait runs out. b's
 * FINAL carries the plaintext its owner set. */
START_TEST(test_conn_goodbye_answered) {
  static const gv_conn_cbs acbs = {bye_a_open, bye_a_msg, end_on_close};
  static const gv_conn_cbs bcbs = {bye_b_open, bye_b_msg, end_on_close};

  rig_init(GV_CONN_CLOSE_WAIT_MS * 3 / 4);
  rig_listen(&bcbs);
  rig_dial(&acbs);
  rig_run();
  ck_assert(R.a.opened && R.b.opened);
  ck_assert_int_eq(R.b.msgs, 3); /* a1, a2, then FINAL's plaintext */
  ck_assert_str_eq(R.b.last, "bye");
  ck_assert_int_eq(R.b.sent_after_fin, 0);
  ck_assert_int_eq(R.a.msgs, 3); /* b's answers to a1 and a2, its FINAL */
  ck_assert_str_eq(R.a.last, "ok");
  ck_assert_int_eq(R.b.status, 0);
  ck_assert_int_eq(R.a.status, 0);
  ck_assert_uint_lt(R.b.closed_at, GV_CONN_CLOSE_WAIT_MS / 2);
  ck_assert_uint_lt(R.a.closed_at, GV_CONN_CLOSE_WAIT_MS / 2);
}
END_TEST

/* ---- a bare TCP client against b's deadlines ---- */

static void raw_write_out(void) {
  const uint8_t *p;
  size_t n = gv_link_out(R.raw_link, &p);
  uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);

  if (n == 0)
    return;
  /* Loopback takes a few hundred bytes at once. */
  ck_assert_int_eq(uv_try_write((uv_stream_t *)&R.raw, &buf, 1), (int)n);
  gv_link_out_consume(R.raw_link, n);
}

static uint8_t raw_buf[65536];
static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init((char *)raw_buf, sizeof(raw_buf));
}
/* raw's link reads b's bytes and answers the handshake, never a FINAL. */
static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n <= 0 || R.raw_link == NULL)
    return;
  ck_assert_int_eq(
      gv_link_recv(R.raw_link, (uint8_t *)buf->base, (size_t)n, NULL, NULL), 0);
  R.raw_got_final = gv_link_peer_closed(R.raw_link);
  raw_write_out();
}

static const uint8_t *raw_says;
static size_t raw_says_len;
static void raw_connected(uv_connect_t *req, int status) {
  uv_buf_t buf = uv_buf_init((char *)raw_says, (unsigned)raw_says_len);
  (void)req;
  ck_assert_int_eq(status, 0);
  if (raw_says_len > 0)
    ck_assert_int_eq(uv_try_write((uv_stream_t *)&R.raw, &buf, 1),
                     (int)raw_says_len);
  if (R.raw_link != NULL)
    raw_write_out();
  uv_read_start((uv_stream_t *)&R.raw, raw_alloc, raw_read);
}

/* A bare client connects to b and sends says[0..len) (nothing if len is 0),
 * or, with a link, runs that link's side of the handshake. */
static void raw_dial(const uint8_t *says, size_t len, int with_link) {
  raw_says = says;
  raw_says_len = len;
  if (with_link)
    ck_assert_int_eq(gv_link_new(&R.raw_link, &R.ida, GV_HS_INITIATOR, NULL),
                     0);
  uv_tcp_init(&R.loop, &R.raw);
  R.raw_open = 1;
  ck_assert_int_eq(uv_tcp_connect(&R.raw_req, &R.raw, (struct sockaddr *)&R.at,
                                  raw_connected),
                   0);
}

static void none_open(gv_conn *c) {
  (void)c;
  R.b.opened = 1;
}
static void none_msg(gv_conn *c, const uint8_t *m, size_t n) {
  (void)c;
  end_record(&R.b, m, n);
}

/* A client that connects and says nothing runs into the first-byte deadline;
 * one that says a byte (half a frame header) and stalls, into the handshake
 * deadline; with no first-byte deadline, the handshake deadline alone. */
START_TEST(test_conn_handshake_deadlines) {
  static const gv_conn_cbs cbs = {none_open, none_msg, end_on_close};
  static const struct {
    gv_conn_timeouts to;
    size_t says;
    uint64_t at;
  } cases[] = {{{300, 100, 0, 0}, 0, 100},
               {{300, 100, 0, 0}, 1, 300},
               {{200, 0, 0, 0}, 0, 200}};

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rig_init(1500);
    R.b_to = cases[i].to;
    rig_listen(&cbs);
    raw_dial((const uint8_t *)"\x00", cases[i].says, 0);
    rig_run();
    ck_assert_int_eq(R.b.opened, 0);
    ck_assert_int_eq(R.b.status, -ETIMEDOUT);
    /* The loop's clock counts whole ms: allow one either side. */
    ck_assert_uint_ge(R.b.closed_at + 1, cases[i].at);
    ck_assert_uint_lt(R.b.closed_at, cases[i].at + 150);
  }
}
END_TEST

static void closer_open(gv_conn *c) {
  R.b.opened = 1;
  gv_conn_close(c, NULL, 0);
}

/* b closes gracefully; its peer completes the handshake but never answers
 * the FINAL: b gives up after its close wait, a truncated stream. */
START_TEST(test_conn_close_wait) {
  static const gv_conn_cbs cbs = {closer_open, none_msg, end_on_close};

  rig_init(1500);
  R.b_to = (gv_conn_timeouts){1000, 0, 200, 0};
  rig_listen(&cbs);
  raw_dial(NULL, 0, 1);
  rig_run();
  ck_assert_int_eq(R.b.opened, 1);
  ck_assert_int_eq(R.raw_got_final, 1); /* b's FINAL arrived */
  ck_assert_int_eq(R.b.status, GV_ETRUNCATED);
  ck_assert_uint_ge(R.b.closed_at, 200);
  ck_assert_uint_lt(R.b.closed_at, GV_CONN_CLOSE_WAIT_MS / 2);
}
END_TEST

/* Once open, a frame whose length has arrived but whose bytes trickle in
 * must be whole within frame_ms of its start: b cuts a peer that sends a
 * header announcing 1,024 bytes, then 10 bytes, then nothing. */
static void frame_open(gv_conn *c) {
  static const uint8_t part[14] = {0, 0, 4, 0, 'p', 'a', 'r', 't'};
  uv_buf_t buf = uv_buf_init((char *)part, sizeof(part));
  (void)c;
  R.b.opened = 1;
  R.b.closed_at = uv_now(&R.loop) - R.started; /* when the frame starts */
  ck_assert_int_eq(uv_try_write((uv_stream_t *)&R.raw, &buf, 1),
                   (int)sizeof(part));
}

static uint64_t frame_started;
static void frame_close(gv_conn *c, int status) {
  frame_started = R.b.closed_at;
  end_on_close(c, status);
}

START_TEST(test_conn_frame_deadline) {
  static const gv_conn_cbs cbs = {frame_open, none_msg, frame_close};

  rig_init(1500);
  R.b_to = (gv_conn_timeouts){1000, 0, 0, 200};
  rig_listen(&cbs);
  raw_dial(NULL, 0, 1);
  rig_run();
  ck_assert_int_eq(R.b.opened, 1);
  ck_assert_int_eq(R.b.status, -ETIMEDOUT);
  ck_assert_uint_ge(R.b.closed_at - frame_started + 1, 200);
  ck_assert_uint_lt(R.b.closed_at - frame_started, 500);
}
END_TEST

/* A peer that stops reading: b's sends are refused with GV_EBUSY once
 * about GV_LINK_OUT_MAX waits beyond what the kernel took, rather than
 * queued without bound. */
static size_t busy_sent;
static int busy_rc;
static void busy_open(gv_conn *c) {
  static uint8_t msg[64 * 1024];
  R.b.opened = 1;
  uv_read_stop((uv_stream_t *)&R.raw);
  for (busy_sent = 0; busy_sent < ((size_t)256 << 20); busy_sent += sizeof(msg))
    if ((busy_rc = gv_conn_send(c, msg, sizeof(msg))) < 0)
      break;
  gv_conn_abort(c, GV_ESTATE);
}

START_TEST(test_conn_send_queue_bounded) {
  static const gv_conn_cbs cbs = {busy_open, none_msg, end_on_close};

  rig_init(3000);
  R.b_to = (gv_conn_timeouts){1000, 0, 0, 0};
  rig_listen(&cbs);
  raw_dial(NULL, 0, 1);
  rig_run();
  ck_assert_int_eq(R.b.opened, 1);
  ck_assert_int_eq(busy_rc, GV_EBUSY);
  ck_assert_uint_ge(busy_sent, GV_LINK_OUT_MAX);
  ck_assert_uint_lt(busy_sent, (size_t)64 << 20); /* kernel buffers + 8 MiB */
}
END_TEST

static Suite *common_suite(void) {
  Suite *s = suite_create("common");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_sockaddr_round_trip);
  tcase_add_test(tc, test_sockaddr_mapped_and_bad);
  tcase_add_test(tc, test_log_rate_limit);
  tcase_add_test(tc, test_log_many_sites);
  tcase_add_test(tc, test_log_one_line_and_parse);
  tcase_add_test(tc, test_backoff_bounds);
  tcase_add_test(tc, test_conn_failed_dial_is_silent);
  tcase_add_test(tc, test_conn_goodbye_answered);
  tcase_add_test(tc, test_conn_handshake_deadlines);
  tcase_add_test(tc, test_conn_close_wait);
  tcase_add_test(tc, test_conn_frame_deadline);
  tcase_add_test(tc, test_conn_send_queue_bounded);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(common_suite()); }

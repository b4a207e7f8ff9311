/* grapevine-tracker: the bootstrap tracker daemon (docs/TRACKER.md).
 *
 * Threads: main runs the libuv loop (signals, the 1 s housekeeping timer,
 * dial-backs); libmicrohttpd runs its thread pool; the store runs its
 * writer. Start-up opens everything in order and fails with one line on
 * stderr; SIGTERM/SIGINT stop accepting, cancel dial-backs, let queued
 * writes commit and their answers go out, then close the database.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "req.h"
#include "sockaddr.h"

#define DRAIN_MS 10000 /* bound on the wait for in-flight requests */

typedef struct app {
  gv_trk_ctx t;
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  uv_timer_t tick, drain;
  uint64_t drain_deadline;
  int shutting;
  int status; /* exit status */
} app;

int64_t gv_trk_now(gv_trk_ctx *t) {
  struct timespec ts;
  int64_t now, old;

  clock_gettime(CLOCK_REALTIME, &ts);
  now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  old = atomic_load(&t->clock);
  while (now > old)
    if (atomic_compare_exchange_weak(&t->clock, &old, now))
      return now;
  return old;
}

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: grapevine-tracker [options]\n\n"
      "The Grapevine bootstrap tracker: lists bootstrap nodes over HTTP\n"
      "(docs/TRACKER.md). Every registration is signed by the node's key and\n"
      "verified by dialing back the node before it is listed.\n\n"
      "  --listen ADDR:PORT        where to serve (default 0.0.0.0:7470;\n"
      "                            [::]:PORT for IPv6, port 0 picks one)\n"
      "  --db FILE                 SQLite database (default "
      "grapevine-tracker.db)\n"
      "  --key FILE                the tracker's identity for dial-backs\n"
      "                            (default tracker.key next to the db)\n"
      "  --trust-proxy             take the client address from the last\n"
      "                            X-Forwarded-For entry\n"
      "  --log-level L             error, warn, info (default) or debug\n"
      "  --rate-limit RPS          requests per second per client "
      "(default 10;\n"
      "                            0 turns it off)\n"
      "  --rate-burst N            token bucket size (default 2 x RPS)\n"
      "  --max-results N           entries per answer, 1..256 (default 32)\n"
      "  --max-per-ip K            registered ids per address (default 8)\n"
      "  --dial-timeout-ms MS      bound on one dial-back (default 5000)\n"
      "  --dial-concurrency N      dial-backs in flight (default 64)\n"
      "  --max-verifying N         registrations being verified "
      "(default 1024)\n"
      "  --max-verifying-per-ip N  of those, from one address (default 2;\n"
      "                            0 = no limit)\n"
      "  --replay-cap N            signed requests remembered for replay\n"
      "                            protection, shared fairly between\n"
      "                            addresses (default 262144)\n"
      "  --threads N               HTTP threads (default: CPU count)\n"
      "  --max-conns N             HTTP connections (default 1024)\n"
      "  --max-conns-per-ip N      HTTP connections per address "
      "(default 32;\n"
      "                            0 = no limit)\n"
      "  --conn-timeout S          idle connection timeout (default 30)\n"
      "  --header-timeout S        a request's head must be complete S\n"
      "                            seconds after the connection opens or\n"
      "                            the previous answer (default 5)\n"
      "  --body-timeout S          its body S seconds after the head\n"
      "                            (default 10)\n"
      "  --help                    this text\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max,
                      unsigned *out) {
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
      v > max)
    return GV_EINVAL;
  *out = (unsigned)v;
  return 0;
}

/* "a.b.c.d:port" or "[v6]:port", port 0..65535. */
static int parse_listen(const char *s, struct sockaddr_storage *ss,
                        socklen_t *len) {
  char host[INET6_ADDRSTRLEN + 1];
  const char *colon, *h = s;
  size_t hlen;
  unsigned port;
  gv_addr a;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':')
      return GV_EINVAL;
    h = s + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    if ((colon = strrchr(s, ':')) == NULL)
      return GV_EINVAL;
    hlen = (size_t)(colon - s);
  }
  if (hlen == 0 || hlen >= sizeof(host) ||
      parse_uint(colon + 1, 0, 65535, &port) < 0)
    return GV_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  memset(&a, 0, sizeof(a));
  a.family = s[0] == '[' ? 6 : 4;
  a.port = (uint16_t)port;
  if (inet_pton(a.family == 6 ? AF_INET6 : AF_INET, host, a.ip) != 1)
    return GV_EINVAL;
  gv_addr_to_sockaddr(&a, ss, len);
  return 0;
}

/* Binds and listens; the bound address goes to t->listen_text. */
static int open_listener(gv_trk_ctx *t, gv_why *why) {
  struct sockaddr_storage ss;
  socklen_t len;
  gv_addr bound;
  int one = 1, zero = 0, fd;

  if (parse_listen(t->cfg.listen, &ss, &len) < 0)
    return gv_fail(why, GV_EINVAL,
                   "--listen %s: expected a.b.c.d:PORT or [v6]:PORT",
                   t->cfg.listen);
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return gv_fail(why, -errno, "cannot listen on %s: %s", t->cfg.listen,
                   strerror(errno));
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    int err = errno;
    close(fd);
    return gv_fail(why, -err, "cannot listen on %s: %s", t->cfg.listen,
                   strerror(err));
  }
  gv_addr_from_sockaddr(&bound, (const struct sockaddr *)&ss);
  gv_addr_format(&bound, t->listen_text);
  t->listen_fd = fd;
  return 0;
}

/* Raises the soft limit on open files (up to the hard one) so that
 * libmicrohttpd can hold --max-conns connections and the headroom above it
 * (http.c): at the common default of 1,024, accept() would fail before the
 * cap is reached and the fair share of the cap could not choose. */
static void raise_nofile(gv_trk_ctx *t) {
  rlim_t want = (rlim_t)t->cfg.max_conns * 2 + 256;
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
    gv_logf(&t->log, GV_LOG_WARN,
            "open files limited to %llu; --max-conns %u wants %llu",
            (unsigned long long)rl.rlim_cur, t->cfg.max_conns,
            (unsigned long long)want);
}

/* Start-up: each stored row back into the registry. */
static int on_row(void *ctx, const gv_trk_row *row) {
  gv_trk_ctx *t = ctx;
  return gv_trk_reg_load(t->reg, &row->rec, row->registered_ms, row->expires_ms,
                         gv_trk_now(t));
}

static void on_expired(void *ctx, const uint8_t id[GV_ID_BYTES]) {
  gv_trk_ctx *t = ctx;
  char sid[GV_ID_SHORT_LEN + 1];

  gv_id_to_short(id, sid);
  gv_trk_count(&t->metrics.expired);
  gv_trk_store_del(t->store, id, NULL, NULL);
  gv_logf(&t->log, GV_LOG_INFO, "expired id=%s", sid);
}

/* Every second: expiry, forgetting what no longer matters, and closing
 * connections past their head or body deadline. */
static void on_tick(uv_timer_t *h) {
  gv_trk_ctx *t = h->data;

  gv_trk_http_reap(t);
  uv_rwlock_wrlock(&t->reg_lock);
  gv_trk_reg_expire(t->reg, gv_trk_now(t), on_expired, t);
  uv_rwlock_wrunlock(&t->reg_lock);
  uv_mutex_lock(&t->replay_lock);
  gv_trk_replay_prune(t->replay, gv_trk_now(t));
  uv_mutex_unlock(&t->replay_lock);
  if (t->buckets != NULL) {
    uv_mutex_lock(&t->bucket_lock);
    gv_trk_buckets_sweep(t->buckets, gv_trk_now(t));
    uv_mutex_unlock(&t->bucket_lock);
  }
}

static void on_drain(uv_timer_t *h) {
  app *a = h->data;
  gv_trk_ctx *t = &a->t;
  long pending = atomic_load(&t->async_reqs);

  if ((pending > 0 || gv_trk_dialer_active(t->dialer) > 0) &&
      uv_now(&a->loop) < a->drain_deadline)
    return;
  if (pending > 0) {
    /* libmicrohttpd must not be stopped with suspended requests. */
    gv_logf(&t->log, GV_LOG_ERROR,
            "%ld requests still pending after %d ms; exiting without "
            "answering them",
            pending, DRAIN_MS);
    a->status = 1;
  } else {
    gv_trk_http_stop(t);
  }
  close(t->listen_fd);
  t->listen_fd = -1;
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->drain, NULL);
  if (gv_trk_dialer_active(t->dialer) == 0)
    gv_trk_dialer_close(t->dialer);
}

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  gv_trk_ctx *t = &a->t;

  if (a->shutting)
    return;
  a->shutting = 1;
  gv_logf(&t->log, GV_LOG_INFO, "%s: shutting down",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  atomic_store(&t->stopping, 1);
  gv_trk_http_quiesce(t);
  gv_trk_dialer_stop(t->dialer);
  a->drain_deadline = uv_now(&a->loop) + DRAIN_MS;
  uv_timer_start(&a->drain, on_drain, 0, 20);
}

static int parse_args(gv_trk_ctx *t, int argc, char **argv) {
  enum {
    O_LISTEN = 256,
    O_DB,
    O_KEY,
    O_TRUST,
    O_LOG,
    O_RATE,
    O_BURST,
    O_RESULTS,
    O_PER_IP,
    O_DIAL_TIMEOUT,
    O_DIAL_CONC,
    O_MAX_VERIFYING,
    O_VERIFYING_IP,
    O_REPLAY_CAP,
    O_THREADS,
    O_CONNS,
    O_CONNS_IP,
    O_CONN_TIMEOUT,
    O_HEADER_TIMEOUT,
    O_BODY_TIMEOUT,
    O_HELP
  };
  static const struct option opts[] = {
      {"listen", required_argument, NULL, O_LISTEN},
      {"db", required_argument, NULL, O_DB},
      {"key", required_argument, NULL, O_KEY},
      {"trust-proxy", no_argument, NULL, O_TRUST},
      {"log-level", required_argument, NULL, O_LOG},
      {"rate-limit", required_argument, NULL, O_RATE},
      {"rate-burst", required_argument, NULL, O_BURST},
      {"max-results", required_argument, NULL, O_RESULTS},
      {"max-per-ip", required_argument, NULL, O_PER_IP},
      {"dial-timeout-ms", required_argument, NULL, O_DIAL_TIMEOUT},
      {"dial-concurrency", required_argument, NULL, O_DIAL_CONC},
      {"max-verifying", required_argument, NULL, O_MAX_VERIFYING},
      {"max-verifying-per-ip", required_argument, NULL, O_VERIFYING_IP},
      {"replay-cap", required_argument, NULL, O_REPLAY_CAP},
      {"threads", required_argument, NULL, O_THREADS},
      {"max-conns", required_argument, NULL, O_CONNS},
      {"max-conns-per-ip", required_argument, NULL, O_CONNS_IP},
      {"conn-timeout", required_argument, NULL, O_CONN_TIMEOUT},
      {"header-timeout", required_argument, NULL, O_HEADER_TIMEOUT},
      {"body-timeout", required_argument, NULL, O_BODY_TIMEOUT},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0},
  };
  gv_trk_cfg *c = &t->cfg;
  const char *key = NULL;
  unsigned burst = 0;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int opt, bad = 0;

  c->listen = "0.0.0.0:7470";
  c->db_path = "grapevine-tracker.db";
  c->rate = 10;
  c->max_results = 32;
  c->max_per_ip = 8;
  c->dial_timeout_ms = 5000;
  c->dial_concurrency = 64;
  c->max_verifying = 1024;
  c->max_verifying_per_ip = 2;
  c->replay_cap = GV_TRK_NONCE_CAP;
  c->threads = cpus < 1 ? 1 : cpus > 64 ? 64 : (unsigned)cpus;
  c->max_conns = 1024;
  c->max_conns_per_ip = 32;
  c->conn_timeout_s = 30;
  c->header_timeout_s = 5;
  c->body_timeout_s = 10;
  t->log.level = GV_LOG_INFO;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    const char *what = NULL;
    switch (opt) {
    case O_LISTEN: c->listen = optarg; break;
    case O_DB: c->db_path = optarg; break;
    case O_KEY: key = optarg; break;
    case O_TRUST: c->trust_proxy = 1; break;
    case O_LOG:
      if (gv_log_level_parse(optarg, &t->log.level) < 0)
        what = "--log-level takes error, warn, info or debug";
      break;
    case O_RATE:
      if (parse_uint(optarg, 0, 1000000, &c->rate) < 0)
        what = "--rate-limit takes 0..1000000";
      break;
    case O_BURST:
      if (parse_uint(optarg, 1, 1000000, &burst) < 0)
        what = "--rate-burst takes 1..1000000";
      break;
    case O_RESULTS:
      if (parse_uint(optarg, 1, GV_TRK_MAX_RESULTS, &c->max_results) < 0)
        what = "--max-results takes 1..256";
      break;
    case O_PER_IP:
      if (parse_uint(optarg, 1, 1000000, &c->max_per_ip) < 0)
        what = "--max-per-ip takes 1..1000000";
      break;
    case O_DIAL_TIMEOUT:
      if (parse_uint(optarg, 1, 600000, &c->dial_timeout_ms) < 0)
        what = "--dial-timeout-ms takes 1..600000";
      break;
    case O_DIAL_CONC:
      if (parse_uint(optarg, 1, 100000, &c->dial_concurrency) < 0)
        what = "--dial-concurrency takes 1..100000";
      break;
    case O_MAX_VERIFYING:
      if (parse_uint(optarg, 1, 1000000, &c->max_verifying) < 0)
        what = "--max-verifying takes 1..1000000";
      break;
    case O_VERIFYING_IP:
      if (parse_uint(optarg, 0, 1000000, &c->max_verifying_per_ip) < 0)
        what = "--max-verifying-per-ip takes 0..1000000";
      break;
    case O_REPLAY_CAP:
      if (parse_uint(optarg, 1, 16777216, &c->replay_cap) < 0)
        what = "--replay-cap takes 1..16777216";
      break;
    case O_THREADS:
      if (parse_uint(optarg, 1, 64, &c->threads) < 0)
        what = "--threads takes 1..64";
      break;
    case O_CONNS:
      if (parse_uint(optarg, 1, 1000000, &c->max_conns) < 0)
        what = "--max-conns takes 1..1000000";
      break;
    case O_CONNS_IP:
      if (parse_uint(optarg, 0, 1000000, &c->max_conns_per_ip) < 0)
        what = "--max-conns-per-ip takes 0..1000000";
      break;
    case O_CONN_TIMEOUT:
      if (parse_uint(optarg, 1, 86400, &c->conn_timeout_s) < 0)
        what = "--conn-timeout takes 1..86400 seconds";
      break;
    case O_HEADER_TIMEOUT:
      if (parse_uint(optarg, 1, 3600, &c->header_timeout_s) < 0)
        what = "--header-timeout takes 1..3600 seconds";
      break;
    case O_BODY_TIMEOUT:
      if (parse_uint(optarg, 1, 3600, &c->body_timeout_s) < 0)
        what = "--body-timeout takes 1..3600 seconds";
      break;
    case O_HELP: usage(stdout); return 0;
    default: bad = 1; break;
    }
    if (what != NULL) {
      fprintf(stderr, "grapevine-tracker: %s (got '%s')\n", what, optarg);
      return 2;
    }
  }
  if (bad || optind != argc) {
    usage(stderr);
    return 2;
  }
  c->burst = burst ? burst : c->rate > 0 ? 2 * c->rate : 1;
  if (key != NULL) {
    snprintf(c->key_path, sizeof(c->key_path), "%s", key);
  } else {
    char *copy = strdup(c->db_path);
    if (copy == NULL)
      return 1;
    snprintf(c->key_path, sizeof(c->key_path), "%s/tracker.key", dirname(copy));
    free(copy);
  }
  return -1; /* carry on */
}

/* Everything but the HTTP server and the loop, in the order that fails
 * early and leaves nothing behind: the port, the database, the key. */
static int open_all(app *a, int *created, size_t *loaded, size_t *skipped,
                    gv_why *why) {
  gv_trk_ctx *t = &a->t;
  gv_trk_reg_cfg rcfg = {t->cfg.max_per_ip,     t->cfg.max_verifying,
                         GV_TRK_TTL_MS,         t->cfg.max_verifying_per_ip,
                         gv_trk_http_take_back, t};
  gv_trk_dial_cfg dcfg = {t->cfg.dial_timeout_ms, t->cfg.dial_concurrency,
                          t->cfg.max_verifying};
  uint8_t key[16];
  int rc;

  if ((rc = open_listener(t, why)) < 0 ||
      (rc = gv_trk_store_open(&t->store, t->cfg.db_path, &t->log, why)) < 0 ||
      (rc = gv_id_load_or_create(&t->self, t->cfg.key_path, created, why)) < 0)
    return rc;
  randombytes_buf(key, sizeof(key));
  if ((rc = gv_trk_reg_new(&t->reg, &rcfg, key)) < 0 ||
      (rc = gv_trk_replay_new(&t->replay, t->cfg.replay_cap, t->start_ms,
                              key)) < 0 ||
      (t->cfg.rate > 0 &&
       (rc = gv_trk_buckets_new(&t->buckets, t->cfg.rate, t->cfg.burst,
                                GV_TRK_BUCKETS_CAP, key)) < 0)) {
    sodium_memzero(key, sizeof(key));
    return gv_fail(why, rc, "%s", gv_strerror(rc));
  }
  sodium_memzero(key, sizeof(key));
  if ((rc = gv_trk_store_load(t->store, gv_trk_now(t), on_row, t, loaded,
                              skipped, why)) < 0)
    return rc;
  if ((rc = gv_trk_store_start(t->store)) < 0)
    return gv_fail(why, rc, "cannot start the store: %s", gv_strerror(rc));
  if ((rc = gv_trk_dialer_new(&t->dialer, &a->loop, &t->self, &dcfg)) < 0)
    return gv_fail(why, rc, "cannot start dial-backs: %s", gv_strerror(rc));
  return gv_trk_http_start(t, why);
}

int main(int argc, char **argv) {
  app *a = calloc(1, sizeof(*a));
  gv_trk_ctx *t;
  gv_why why = {""};
  char sid[GV_ID_SHORT_LEN + 1];
  size_t loaded = 0, skipped = 0;
  int created = 0, rc;

  if (a == NULL)
    return 1;
  t = &a->t;
  t->listen_fd = -1;
  if ((rc = parse_args(t, argc, argv)) >= 0) {
    free(a);
    return rc;
  }
  if (sodium_init() < 0) {
    fprintf(stderr, "grapevine-tracker: libsodium failed to start\n");
    free(a);
    return 1;
  }
  gv_log_init(&t->log, stderr, t->log.level, "grapevine-tracker");
  signal(SIGPIPE, SIG_IGN);
  raise_nofile(t);
  t->start_ms = gv_trk_now(t);
  uv_rwlock_init(&t->reg_lock);
  uv_mutex_init(&t->replay_lock);
  uv_mutex_init(&t->bucket_lock);
  uv_loop_init(&a->loop);
  a->status = 0;

  if (open_all(a, &created, &loaded, &skipped, &why) < 0) {
    fprintf(stderr, "grapevine-tracker: %s\n", why.text);
    a->status = 1;
    if (t->dialer != NULL) {
      gv_trk_dialer_stop(t->dialer);
      gv_trk_dialer_close(t->dialer);
    }
    goto out;
  }
  uv_signal_init(&a->loop, &a->sigterm);
  uv_signal_init(&a->loop, &a->sigint);
  uv_timer_init(&a->loop, &a->tick);
  uv_timer_init(&a->loop, &a->drain);
  a->sigterm.data = a->sigint.data = a->drain.data = a;
  a->tick.data = t;
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_timer_start(&a->tick, on_tick, 1000, 1000);
  gv_id_to_short(t->self.pk, sid);
  if (created)
    gv_logf(&t->log, GV_LOG_INFO, "created key %s", t->cfg.key_path);
  gv_logf(&t->log, GV_LOG_INFO,
          "store %s: %zu registrations loaded, %zu skipped", t->cfg.db_path,
          loaded, skipped);
  gv_logf(&t->log, GV_LOG_INFO,
          "grapevine-tracker %s listening on http://%s (id %s, %u "
          "threads, rate limit %u/s)",
          GV_TRK_VERSION, t->listen_text, sid, t->cfg.threads, t->cfg.rate);

out:
  uv_run(&a->loop, UV_RUN_DEFAULT);
  if (t->mhd != NULL) /* start-up failed after the server started */
    gv_trk_http_stop(t);
  if (t->listen_fd >= 0)
    close(t->listen_fd);
  gv_trk_store_close(t->store); /* commits what is queued */
  if (uv_loop_close(&a->loop) != 0)
    gv_logf(&t->log, GV_LOG_WARN, "event loop closed with handles");
  gv_trk_reg_free(t->reg);
  gv_trk_replay_free(t->replay);
  gv_trk_buckets_free(t->buckets);
  uv_rwlock_destroy(&t->reg_lock);
  uv_mutex_destroy(&t->replay_lock);
  uv_mutex_destroy(&t->bucket_lock);
  gv_id_wipe(&t->self);
  if (a->status == 0)
    gv_logf(&t->log, GV_LOG_INFO, "stopped");
  gv_log_done(&t->log);
  rc = a->status;
  free(a);
  return rc;
}

/* The torrent wrapper through its C API only (torrent/tor.h): sessions on
 * loopback with ephemeral ports, driven by the notify callback and
 * gv_tor_poll, every wait bounded in time. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../torrent/tor.h"
#include "testutil.h"

#define WAIT_MS 30000
#define PIECE (64 * 1024)

/* Every session notifies the same condition variable. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int woken;

static void notify(void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  woken = 1;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

#define MAX_SES 4
#define LOG_MAX 4096
typedef struct ses {
  gv_tor *t;
  char state[256];
  gv_tor_event log[LOG_MAX]; /* every event polled, in order */
  size_t n;
} ses;
static ses *all[MAX_SES];
static size_t nall;

static char tmp_root[64];
static char mounted[300]; /* a tmpfs to detach in teardown */

static void mkpath(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmp_root, name);
  mkdir(out, 0700);
}

static ses *ses_new(const char *name, const char *ip, gv_tor_enc enc,
                    int up_rate) {
  ses *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  char d[64];
  snprintf(d, sizeof d, "state-%s", name);
  mkpath(s->state, sizeof s->state, d);
  gv_tor_cfg cfg = {0};
  cfg.state_dir = s->state;
  cfg.listen_ip = ip;
  cfg.encryption = enc;
  cfg.upload_rate = up_rate;
  cfg.notify = notify;
  gv_why why = {{0}};
  int rc = gv_tor_new(&s->t, &cfg, &why);
  ck_assert_msg(rc == 0, "gv_tor_new: %s", why.text);
  ck_assert_uint_ne(gv_tor_port(s->t), 0);
  ck_assert_uint_lt(nall, MAX_SES);
  all[nall++] = s;
  return s;
}

static void ses_free(ses *s) {
  for (size_t i = 0; i < nall; i++)
    if (all[i] == s)
      all[i] = all[--nall];
  gv_tor_free(s->t);
  free(s);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drains every session, as the loop's async callback would. */
static void drain(void) {
  for (size_t i = 0; i < nall; i++) {
    ses *s = all[i];
    int n;
    do {
      gv_tor_event ev[16];
      n = gv_tor_poll(s->t, ev, 16);
      ck_assert_int_ge(n, 0);
      for (int k = 0; k < n && s->n < LOG_MAX; k++) {
        if (getenv("TOR_DEBUG"))
          fprintf(stderr, "%s: %s piece %u banned %d err %d %s\n", s->state,
                  gv_tor_ev_name(ev[k].type), ev[k].piece, ev[k].banned,
                  ev[k].err, ev[k].reason);
        s->log[s->n++] = ev[k];
      }
    } while (n == 16);
  }
}

/* Waits until s has logged an event of type (searching from *from), at
 * most ms; returns it or NULL. *from moves past it. */
static const gv_tor_event *wait_ev(ses *s, gv_tor_ev_type type, size_t *from,
                                   int ms) {
  int64_t end = now_ms() + ms;
  size_t i = from ? *from : 0;
  for (;;) {
    pthread_mutex_lock(&mu);
    woken = 0;
    pthread_mutex_unlock(&mu);
    drain();
    for (; i < s->n; i++)
      if (s->log[i].type == type) {
        if (from)
          *from = i + 1;
        return &s->log[i];
      }
    int64_t left = end - now_ms();
    if (left <= 0)
      return NULL;
    /* Sleep until notified, 100 ms at most: libtorrent's tick moves the
     * state the status tests read without an alert. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&mu);
    if (!woken)
      pthread_cond_timedwait(&cv, &mu, &ts);
    pthread_mutex_unlock(&mu);
  }
}

/* Waits until the torrent's status is in state, at most ms. */
static int wait_state(ses *s, const gv_tor_ih *ih, gv_tor_state state, int ms) {
  int64_t end = now_ms() + ms;
  gv_tor_status st;
  while (now_ms() < end) {
    drain();
    if (gv_tor_status_get(s->t, ih, &st, NULL) == 0 && st.state == state)
      return 1;
    usleep(20000);
  }
  return 0;
}

static void connect_to(ses *s, const gv_tor_ih *ih, ses *peer, const char *ip) {
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(gv_tor_port(peer->t));
  inet_pton(AF_INET, ip, &sin.sin_addr);
  gv_why why = {{0}};
  ck_assert_msg(gv_tor_connect(s->t, ih, (struct sockaddr *)&sin, &why) == 0,
                "connect: %s", why.text);
}

static void write_random(const char *path, size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  uint32_t x = 0x9e3779b9u ^ (uint32_t)len;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    fputc((int)(x & 0xff), f);
  }
  ck_assert_int_eq(fclose(f), 0);
}

static int same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb)
      same = 0;
    if (ca == EOF || cb == EOF)
      break;
  }
  if (fa)
    fclose(fa);
  if (fb)
    fclose(fb);
  return same;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d)
    return -1;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void rm_rf(const char *p) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  if (system(cmd) != 0)
    fprintf(stderr, "cleanup of %s failed\n", p);
}

static void setup(void) {
  snprintf(tmp_root, sizeof tmp_root, "/tmp/gv-tor-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp_root));
  nall = 0;
}

static void teardown(void) {
  while (nall)
    ses_free(all[nall - 1]);
  if (mounted[0])
    umount2(mounted, MNT_DETACH);
  mounted[0] = 0;
  rm_rf(tmp_root);
}

/* A source file and its hybrid torrent. */
typedef struct src {
  char dir[300], path[400];
  uint8_t *torrent;
  size_t len;
  gv_tor_ih ih;
} src;

static void make_src(src *s, const char *dirname, size_t size) {
  mkpath(s->dir, sizeof s->dir, dirname);
  snprintf(s->path, sizeof s->path, "%s/data.bin", s->dir);
  write_random(s->path, size);
  gv_why why = {{0}};
  int rc = gv_tor_create(s->path, PIECE, &s->torrent, &s->len, &s->ih, &why);
  ck_assert_msg(rc == 0, "create: %s", why.text);
  ck_assert(s->ih.has_v1 && s->ih.has_v2);
}

static gv_tor_ih add_bytes(ses *s, const src *from, const char *save,
                           unsigned flags) {
  gv_tor_add_params p = {0};
  p.torrent = from->torrent;
  p.torrent_len = from->len;
  p.save_path = save;
  p.flags = flags;
  gv_tor_ih ih;
  gv_why why = {{0}};
  int rc = gv_tor_add(s->t, &p, &ih, &why);
  ck_assert_msg(rc == 0, "add: %s", why.text);
  return ih;
}

START_TEST(test_parse_target) {
  gv_tor_target tg;
  gv_why why = {{0}};
  const char *v1 = "0123456789abcdef0123456789ABCDEF01234567";
  ck_assert_int_eq(gv_tor_parse_target(v1, 40, &tg, &why), 0);
  ck_assert(tg.ih.has_v1 && !tg.ih.has_v2);
  ck_assert_uint_eq(tg.ih.v1[0], 0x01);
  ck_assert_uint_eq(tg.ih.v1[19], 0x67);
  char v2[65];
  memset(v2, 'e', 64);
  v2[64] = 0;
  ck_assert_int_eq(gv_tor_parse_target(v2, 64, &tg, &why), 0);
  ck_assert(!tg.ih.has_v1 && tg.ih.has_v2 && tg.ih.v2[31] == 0xee);

  /* A magnet we build parses back to the same hashes and name. */
  gv_tor_ih ih = {0};
  for (int i = 0; i < 20; i++)
    ih.v1[i] = (uint8_t)i;
  for (int i = 0; i < 32; i++)
    ih.v2[i] = (uint8_t)(0xa0 + i);
  ih.has_v1 = ih.has_v2 = 1;
  char m[512];
  int n = gv_tor_magnet(&ih, "my data set.tar", m, sizeof m);
  ck_assert_int_gt(n, 0);
  ck_assert_str_eq(m, "magnet:?xt=urn:btih:000102030405060708090a0b0c0d0e0f"
                      "10111213&xt=urn:btmh:1220a0a1a2a3a4a5a6a7a8a9aaabacad"
                      "aeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf&dn=my%20data%20set"
                      ".tar");
  ck_assert_int_eq(gv_tor_parse_target(m, (size_t)n, &tg, &why), 0);
  ck_assert(tg.ih.has_v1 && tg.ih.has_v2);
  ck_assert_mem_eq(tg.ih.v1, ih.v1, 20);
  ck_assert_mem_eq(tg.ih.v2, ih.v2, 32);
  ck_assert_str_eq(tg.name, "my data set.tar");
  ck_assert_int_eq(gv_tor_magnet(&ih, "x", m, 20), GV_ETOOBIG);

  /* v2 only. */
  ih.has_v1 = 0;
  n = gv_tor_magnet(&ih, NULL, m, sizeof m);
  ck_assert_int_eq(gv_tor_parse_target(m, (size_t)n, &tg, &why), 0);
  ck_assert(!tg.ih.has_v1 && tg.ih.has_v2);

  static const struct {
    const char *in, *reason;
    int err;
  } bad[] = {
      {"0123456789abcdef0123456789abcdef0123456g", "bad hex", GV_EINVAL},
      {"0123456789abcdef0123456789abcdef012345", "wrong length", GV_EINVAL},
      {"http://example.com/x.torrent", "not a magnet", GV_EINVAL},
      {"magnet:xt=urn:btih:0123", "not a magnet", GV_EINVAL},
      {"magnet:?dn=hello", "without urn:btih or urn:btmh", GV_EINVAL},
      {"magnet:?xt=urn:btih:zz", "bad magnet link", GV_EINVAL},
      {"", "empty", GV_EINVAL},
      {"0000000000000000000000000000000000000000", "all-zero", GV_EINVAL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&why, 0, sizeof why);
    int rc = gv_tor_parse_target(bad[i].in, strlen(bad[i].in), &tg, &why);
    ck_assert_msg(rc == bad[i].err, "%s: rc %d", bad[i].in, rc);
    ck_assert_msg(strstr(why.text, bad[i].reason), "%s: reason '%s'", bad[i].in,
                  why.text);
  }
  char big[GV_TOR_TARGET_MAX + 2];
  memset(big, 'a', sizeof big);
  ck_assert_int_eq(gv_tor_parse_target(big, sizeof big, &tg, &why), GV_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(why.text, "too long"));
  ck_assert_int_eq(gv_tor_parse_target("a\0b", 3, &tg, &why), GV_EINVAL);
}
END_TEST

/* A seeds; B fetches by .torrent, then (after removing it) by magnet with
 * the metadata from A; C's save path holds a symlink that would send the
 * file outside, so its magnet fetch fails at metadata. */
START_TEST(test_fetch) {
  src s;
  make_src(&s, "src", 3 * 1024 * 1024 + 12345);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  gv_tor_ih ih = add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  ck_assert_mem_eq(ih.v1, s.ih.v1, 20);
  ck_assert_mem_eq(ih.v2, s.ih.v2, 32);
  size_t ia = 0;
  ck_assert_ptr_nonnull(wait_ev(a, GV_TOR_EV_ADDED, &ia, WAIT_MS));

  char dst1[300], got[400];
  mkpath(dst1, sizeof dst1, "dst1");
  add_bytes(b, &s, dst1, 0);
  size_t ib = 0;
  const gv_tor_event *ev = wait_ev(b, GV_TOR_EV_ADDED, &ib, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(ev->err, 0);
  connect_to(b, &ih, a, "127.0.0.1");
  ev = wait_ev(b, GV_TOR_EV_PIECE, &ib, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_ge(ev->pieces_done, 1);
  ck_assert_int_eq(ev->pieces_total,
                   (3 * 1024 * 1024 + 12345 + PIECE - 1) / PIECE);
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &ib, WAIT_MS));
  snprintf(got, sizeof got, "%s/data.bin", dst1);
  ck_assert(same_file(s.path, got));

  gv_tor_status st;
  gv_why why = {{0}};
  ck_assert_int_eq(gv_tor_status_get(b->t, &ih, &st, &why), 0);
  ck_assert_int_eq(st.state, GV_TOR_SEEDING);
  ck_assert_uint_eq(st.total, 3 * 1024 * 1024 + 12345);
  ck_assert_uint_eq(st.done, st.total);
  ck_assert(st.progress > 0.999);
  ck_assert_uint_ge(st.downloaded, st.total);
  ck_assert_int_eq(st.pieces_done, st.pieces_total);
  ck_assert_str_eq(st.name, "data.bin");
  ck_assert_str_eq(st.error, "");
  ck_assert_ptr_nonnull(strstr(st.save_path, "dst1"));
  gv_tor_status list[4];
  /* libtorrent adds to the all-time totals once a second. */
  for (int k = 0; k < 150; k++) {
    ck_assert_int_eq(gv_tor_list(a->t, list, 4), 1);
    if (list[0].ratio >= 1.0)
      break;
    usleep(20000);
  }
  ck_assert_int_eq(list[0].state, GV_TOR_SEEDING);
  ck_assert_uint_ge(list[0].uploaded, st.total);
  ck_assert_msg(list[0].ratio >= 1.0, "ratio %f uploaded %lu all %lu",
                list[0].ratio, (unsigned long)list[0].uploaded,
                (unsigned long)list[0].all_uploaded);

  /* Remove from B; the files stay, the resume file goes. */
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_RESUME_SAVED, &ib, WAIT_MS));
  ck_assert_int_eq(count_entries(b->state), 2); /* v1 file + v2 symlink */
  ck_assert_int_eq(gv_tor_remove(b->t, &ih, 0, &why), 0);
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_REMOVED, &ib, WAIT_MS));
  ck_assert_int_eq(gv_tor_status_get(b->t, &ih, &st, &why), GV_ENOT_FOUND);
  ck_assert_int_eq(gv_tor_remove(b->t, &ih, 0, &why), GV_ENOT_FOUND);
  ck_assert_int_eq(count_entries(b->state), 0);
  ck_assert(same_file(s.path, got));

  /* By magnet: the info dict comes from A. */
  char m[512], dst2[300];
  int n = gv_tor_magnet(&s.ih, "data.bin", m, sizeof m);
  gv_tor_target tg;
  ck_assert_int_eq(gv_tor_parse_target(m, (size_t)n, &tg, &why), 0);
  mkpath(dst2, sizeof dst2, "dst2");
  gv_tor_add_params p = {.target = &tg, .save_path = dst2};
  ck_assert_int_eq(gv_tor_add(b->t, &p, NULL, &why), 0);
  ck_assert_int_eq(gv_tor_add(b->t, &p, NULL, &why), GV_EDUP);
  connect_to(b, &tg.ih, a, "127.0.0.1");
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_METADATA, &ib, WAIT_MS));
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &ib, WAIT_MS));
  snprintf(got, sizeof got, "%s/data.bin", dst2);
  ck_assert(same_file(s.path, got));
  ck_assert_int_eq(gv_tor_remove(b->t, &tg.ih, 1, &why), 0);
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_REMOVED, &ib, WAIT_MS));
  for (int i = 0; i < 100 && access(got, F_OK) == 0; i++)
    usleep(20000);
  ck_assert_int_ne(access(got, F_OK), 0);

  /* A symlink in the save path pointing outside: refused at metadata. */
  char dst3[300], outside[300], link[400], target[400];
  mkpath(dst3, sizeof dst3, "dst3");
  mkpath(outside, sizeof outside, "outside");
  snprintf(target, sizeof target, "%s/victim", outside);
  write_random(target, 100);
  snprintf(link, sizeof link, "%s/data.bin", dst3);
  ck_assert_int_eq(symlink(target, link), 0);
  ses *c = ses_new("c", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  p.save_path = dst3;
  ck_assert_int_eq(gv_tor_add(c->t, &p, NULL, &why), 0);
  connect_to(c, &tg.ih, a, "127.0.0.1");
  size_t ic = 0;
  ev = wait_ev(c, GV_TOR_EV_TORRENT_ERROR, &ic, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(ev->err, GV_EFIELD);
  ck_assert_msg(strstr(ev->reason, "resolves outside"), "%s", ev->reason);
  ck_assert_int_eq(gv_tor_status_get(c->t, &tg.ih, &st, &why), 0);
  ck_assert_int_eq(st.state, GV_TOR_ERROR);
  ck_assert_ptr_nonnull(strstr(st.error, "resolves outside"));
  usleep(300000); /* anything it would write, it would write now */
  struct stat sb;
  ck_assert_int_eq(stat(target, &sb), 0);
  ck_assert_int_eq(sb.st_size, 100);
  ck_assert_int_eq(count_entries(dst3), 1);
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* What the seeder sent over one forwarded connection, read off the
 * plaintext BitTorrent stream: its handshake, then messages of a 4-byte
 * length and an id. */
typedef struct fwd_seen {
  int meta;          /* ut_metadata data messages (BEP 9 msg_type 1) */
  uint64_t piece;    /* bytes of blocks in piece messages */
  size_t skip;       /* of the handshake, or of a message's rest */
  uint8_t head[20];  /* a message's length, id and first body bytes */
  size_t have, want; /* of head */
  size_t rest;       /* of the message, after its head */
} fwd_seen;

#define BT_HANDSHAKE 68
#define BT_PIECE 7
#define BT_EXTENDED 20

static void fwd_scan(fwd_seen *sn, const uint8_t *p, size_t n) {
  static const char meta_data[] = "d8:msg_typei1e";
  while (n > 0) {
    if (sn->have == 0 && sn->skip > 0) {
      size_t k = n < sn->skip ? n : sn->skip;
      sn->skip -= k, p += k, n -= k;
      continue;
    }
    sn->head[sn->have++] = *p++, n--;
    if (sn->have == 4) {
      uint32_t len = (uint32_t)sn->head[0] << 24 | sn->head[1] << 16 |
                     sn->head[2] << 8 | sn->head[3];
      sn->want = 4 + (len < 16 ? len : 16);
      sn->rest = len - (sn->want - 4);
    }
    if (sn->have < 4 || sn->have < sn->want)
      continue;
    /* The head is whole; the message's rest is skipped. */
    size_t body = sn->want - 4 + sn->rest;
    if (body >= 9 && sn->head[4] == BT_PIECE)
      sn->piece += body - 9;
    if (body >= 2 + sizeof meta_data - 1 && sn->head[4] == BT_EXTENDED &&
        memcmp(sn->head + 6, meta_data, sizeof meta_data - 1) == 0)
      sn->meta++;
    sn->skip = sn->rest;
    sn->have = sn->want = 0;
  }
}

/* A TCP forwarder on 127.0.0.1 to one port: on its own thread until
 * fwd_stop(), it carries each connection's bytes both ways and notes what
 * the far side sent on each (plaintext BitTorrent). */
#define FWD_PAIRS 8
typedef struct fwd {
  int lfd, stop[2];
  uint16_t port, to;
  int accepted;              /* read after fwd_stop() */
  fwd_seen seen[FWD_PAIRS]; /* by connection, in accept order; ditto */
  pthread_t th;
} fwd;

static void *fwd_run(void *arg) {
  fwd *f = arg;
  int fds[FWD_PAIRS][2], n = 0;
  for (;;) {
    struct pollfd pf[2 + 2 * FWD_PAIRS];
    int k = 0;
    pf[k++] = (struct pollfd){.fd = f->stop[0], .events = POLLIN};
    pf[k++] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
    for (int i = 0; i < n; i++)
      for (int j = 0; j < 2; j++) /* an ended pair's -1s are not polled */
        pf[k++] = (struct pollfd){.fd = fds[i][j], .events = POLLIN};
    if (poll(pf, (nfds_t)k, -1) <= 0 || pf[0].revents)
      break;
    int polled = n;
    if ((pf[1].revents & POLLIN) && n < FWD_PAIRS) {
      int c = accept(f->lfd, NULL, NULL);
      int u = socket(AF_INET, SOCK_STREAM, 0);
      struct sockaddr_in sin = {.sin_family = AF_INET,
                                .sin_port = htons(f->to)};
      inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
      if (c >= 0 && u >= 0 &&
          connect(u, (struct sockaddr *)&sin, sizeof sin) == 0) {
        fds[n][0] = c, fds[n][1] = u;
        f->seen[n].skip = BT_HANDSHAKE;
        n++;
        f->accepted++;
      } else {
        close(c), close(u);
      }
    }
    for (int i = 0, at = 2; i < polled; i++, at += 2)
      for (int j = 0; j < 2 && fds[i][0] >= 0; j++) {
        if (!pf[at + j].revents)
          continue;
        uint8_t buf[65536];
        ssize_t r = read(fds[i][j], buf, sizeof buf);
        if (r > 0 && j == 1)
          fwd_scan(&f->seen[i], buf, (size_t)r);
        for (ssize_t off = 0; r > 0 && off < r;) {
          ssize_t w = write(fds[i][!j], buf + off, (size_t)(r - off));
          if (w <= 0)
            r = -1;
          else
            off += w;
        }
        if (r <= 0) { /* one side ended: the pair ends */
          close(fds[i][0]), close(fds[i][1]);
          fds[i][0] = fds[i][1] = -1;
        }
      }
  }
  for (int i = 0; i < n; i++)
    if (fds[i][0] >= 0)
      close(fds[i][0]), close(fds[i][1]);
  return NULL;
}

static void fwd_start(fwd *f, uint16_t to) {
  memset(f, 0, sizeof *f);
  f->to = to;
  ck_assert_int_eq(pipe(f->stop), 0);
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(f->lfd, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
  socklen_t len = sizeof sin;
  ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
  ck_assert_int_eq(listen(f->lfd, 8), 0);
  ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sin, &len), 0);
  f->port = ntohs(sin.sin_port);
  ck_assert_int_eq(pthread_create(&f->th, NULL, fwd_run, f), 0);
}

static void fwd_stop(fwd *f) {
  ck_assert_int_eq(write(f->stop[1], "x", 1), 1);
  pthread_join(f->th, NULL);
  close(f->lfd), close(f->stop[0]), close(f->stop[1]);
}

static struct sockaddr_storage loopback(uint16_t port) {
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  memset(&ss, 0, sizeof ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
  return ss;
}

/* Adds ih to b as a magnet (no metadata yet) saving into dst, with one
 * known holder at 127.0.0.1:port; *tg is the target added. */
static void add_magnet(ses *b, const gv_tor_ih *ih, const char *dst,
                       uint16_t port, gv_tor_target *tg) {
  struct sockaddr_storage peer = loopback(port);
  gv_tor_add_params p = {
      .target = tg, .save_path = dst, .peers = &peer, .n_peers = 1};
  gv_why why = {{0}};

  memset(tg, 0, sizeof(*tg));
  tg->ih = *ih;
  ck_assert_msg(gv_tor_add(b->t, &p, NULL, &why) == 0, "%s", why.text);
}

/* A magnet added with its seeder's address, and no gv_tor_connect(): the
 * add dials it, the info dict comes over that connection, and the whole
 * file follows over the same one (the checked storage moves into the save
 * path; nothing is dialled for the pieces); once done, the fetcher ends
 * it. The seeder is reached only through a forwarder that reads what it
 * sends on each connection (plaintext, for that). A connection that ends
 * before carrying either (a seeder that refuses the first one under load,
 * redialled a second later) is no second connection for the magnet. */
START_TEST(test_magnet_one_connection) {
  src s;
  size_t size = 2 * 1024 * 1024 + 777;
  make_src(&s, "src", size);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_DISABLED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_DISABLED, 0);
  add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  /* Seeding, not just added: a seeder still checking its resume data
   * refuses the connection, and the fetcher would have to dial again. */
  ck_assert(wait_state(a, &s.ih, GV_TOR_SEEDING, WAIT_MS));
  fwd f;
  fwd_start(&f, gv_tor_port(a->t));

  char dst[300], got[400];
  mkpath(dst, sizeof dst, "dst");
  gv_tor_target tg;
  gv_why why = {{0}};
  add_magnet(b, &s.ih, dst, f.port, &tg);
  size_t ib = 0;
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_METADATA, &ib, WAIT_MS));
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &ib, WAIT_MS));
  snprintf(got, sizeof got, "%s/data.bin", dst);
  ck_assert(same_file(s.path, got));
  gv_tor_status st;
  ck_assert_int_eq(gv_tor_status_get(b->t, &tg.ih, &st, &why), 0);
  ck_assert_int_eq(st.state, GV_TOR_SEEDING);
  ck_assert_str_eq(st.save_path, dst);
  char meta[400];
  snprintf(meta, sizeof meta, "%s/.meta", b->state);
  ck_assert_int_le(count_entries(meta), 0);
  /* Done, B ends its connection to the seed (within libtorrent's next
   * second tick or two), as libtorrent's default would. */
  struct sockaddr_storage ss[4];
  int n = -1;
  for (int k = 0; k < 100 && n != 0; k++) {
    n = gv_tor_peers(b->t, &tg.ih, ss, 4, &why);
    if (n != 0)
      usleep(50000);
  }
  ck_assert_int_eq(n, 0);
  fwd_stop(&f);
  int used = -1;
  for (int i = 0; i < f.accepted; i++)
    if (f.seen[i].meta > 0 || f.seen[i].piece > 0) {
      ck_assert_msg(used < 0, "connections %d and %d of %d both carried "
                    "the info dict or pieces", used, i, f.accepted);
      used = i;
    }
  ck_assert_msg(used >= 0, "none of %d connection(s) carried the magnet",
                f.accepted);
  ck_assert_int_ge(f.seen[used].meta, 1);
  ck_assert_uint_eq(f.seen[used].piece, size);
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* A magnet into a save path that already holds the file, its first half
 * right and the rest zeros: the file is kept and checked, not replaced,
 * so only the wrong pieces come from the seeder. */
START_TEST(test_magnet_existing_file) {
  src s;
  size_t size = 2 * 1024 * 1024;
  make_src(&s, "src", size);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  ck_assert(wait_state(a, &s.ih, GV_TOR_SEEDING, WAIT_MS));

  char dst[300], got[400];
  mkpath(dst, sizeof dst, "dst");
  snprintf(got, sizeof got, "%s/data.bin", dst);
  FILE *in = fopen(s.path, "rb"), *out = fopen(got, "wb");
  ck_assert(in && out);
  for (size_t i = 0; i < size; i++) {
    int c = fgetc(in);
    fputc(i < size / 2 ? c : 0, out);
  }
  fclose(in);
  ck_assert_int_eq(fclose(out), 0);

  gv_tor_target tg;
  gv_why why = {{0}};
  add_magnet(b, &s.ih, dst, gv_tor_port(a->t), &tg);
  size_t ib = 0;
  /* The check of the kept file drops the connection: the session dials
   * the seeder again by itself. */
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_METADATA, &ib, WAIT_MS));
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &ib, WAIT_MS));
  ck_assert(same_file(s.path, got));
  gv_tor_status st;
  ck_assert_int_eq(gv_tor_status_get(b->t, &tg.ih, &st, &why), 0);
  ck_assert_uint_ge(st.downloaded, size / 2 - PIECE);
  ck_assert_msg(st.downloaded < size, "downloaded %lu of %zu",
                (unsigned long)st.downloaded, size);
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* Peers given to gv_tor_add are checked before anything is added. */
START_TEST(test_add_bad_peers) {
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  char dst[300];
  mkpath(dst, sizeof dst, "dst");
  gv_tor_target tg;
  memset(&tg, 0, sizeof tg);
  memset(tg.ih.v1, 0x5a, 20);
  tg.ih.has_v1 = 1;
  static struct sockaddr_storage peers[GV_TOR_ADD_PEERS_MAX + 1];
  for (size_t i = 0; i <= GV_TOR_ADD_PEERS_MAX; i++)
    peers[i] = loopback((uint16_t)(20000 + i));
  gv_tor_add_params p = {.target = &tg,
                         .save_path = dst,
                         .peers = peers,
                         .n_peers = GV_TOR_ADD_PEERS_MAX + 1};
  gv_why why = {{0}};
  ck_assert_int_eq(gv_tor_add(b->t, &p, NULL, &why), GV_ETOOBIG);
  peers[3].ss_family = AF_UNIX;
  p.n_peers = GV_TOR_ADD_PEERS_MAX;
  ck_assert_int_eq(gv_tor_add(b->t, &p, NULL, &why), GV_EINVAL);
  gv_tor_status st;
  ck_assert_int_eq(gv_tor_status_get(b->t, &tg.ih, &st, &why), GV_ENOT_FOUND);
  ck_assert_int_eq(gv_tor_list(b->t, &st, 1), 0);
  peers[3] = loopback(20003);
  ck_assert_msg(gv_tor_add(b->t, &p, NULL, &why) == 0, "%s", why.text);
  ck_assert_int_eq(gv_tor_list(b->t, &st, 1), 1);
  ck_assert_int_eq(st.state, GV_TOR_METADATA);
}
END_TEST

/* Encryption is forced by default: a plaintext-only session gets nothing
 * from a default seeder, and a default fetcher gets nothing from a
 * plaintext-only seeder. */
START_TEST(test_encryption_forced) {
  src s;
  make_src(&s, "src", 256 * 1024);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *p = ses_new("p", "127.0.0.1", GV_TOR_ENC_DISABLED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  gv_tor_ih ih = add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  char d1[300], d2[300];
  mkpath(d1, sizeof d1, "d1");
  mkpath(d2, sizeof d2, "d2");
  add_bytes(p, &s, d1, 0);
  connect_to(p, &ih, a, "127.0.0.1");
  size_t i = 0;
  ck_assert_ptr_null(wait_ev(p, GV_TOR_EV_PIECE, &i, 1500));
  /* p now seeds nothing; give it the file in plaintext seed mode. */
  ses_free(p);
  p = ses_new("p2", "127.0.0.1", GV_TOR_ENC_DISABLED, 0);
  add_bytes(p, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  add_bytes(b, &s, d2, 0);
  connect_to(b, &ih, p, "127.0.0.1");
  i = 0;
  ck_assert_ptr_null(wait_ev(b, GV_TOR_EV_PIECE, &i, 1500));
  /* The control: the same fetcher and the default seeder. */
  connect_to(b, &ih, a, "127.0.0.1");
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &i, WAIT_MS));
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* --- A tiny bencoder for hand-made hostile torrents ----------------------- */
typedef struct bbuf {
  char b[4096];
  size_t n;
} bbuf;
static void bput(bbuf *o, const void *p, size_t n) {
  ck_assert_uint_le(o->n + n, sizeof o->b);
  memcpy(o->b + o->n, p, n);
  o->n += n;
}
static void bstr(bbuf *o, const void *s, size_t n) {
  char h[24];
  int k = snprintf(h, sizeof h, "%zu:", n);
  bput(o, h, (size_t)k);
  bput(o, s, n);
}
static void bcstr(bbuf *o, const char *s) { bstr(o, s, strlen(s)); }
static void bint(bbuf *o, long v) {
  char h[32];
  int k = snprintf(h, sizeof h, "i%lde", v);
  bput(o, h, (size_t)k);
}
static void bc(bbuf *o, char c) { bput(o, &c, 1); }

/* A v1 torrent of one 16 KiB file: single-file with `name`, or a
 * multi-file one named "t" whose one file has path elems[0..n). */
static void bad_torrent(bbuf *o, const char *name, const char *const *elems,
                        const size_t *lens, size_t n) {
  static const uint8_t pieces[20] = {0};
  o->n = 0;
  bc(o, 'd');
  bcstr(o, "info");
  bc(o, 'd');
  if (n) {
    bcstr(o, "files");
    bc(o, 'l');
    bc(o, 'd');
    bcstr(o, "length");
    bint(o, 16384);
    bcstr(o, "path");
    bc(o, 'l');
    for (size_t i = 0; i < n; i++)
      bstr(o, elems[i], lens[i]);
    bc(o, 'e');
    bc(o, 'e');
    bc(o, 'e');
  } else {
    bcstr(o, "length");
    bint(o, 16384);
  }
  bcstr(o, "name");
  bcstr(o, n ? "t" : name);
  bcstr(o, "piece length");
  bint(o, 16384);
  bcstr(o, "pieces");
  bstr(o, pieces, 20);
  bc(o, 'e');
  bc(o, 'e');
}

static void expect_refused(ses *s, const bbuf *o, const char *save,
                           const char *reason) {
  gv_tor_add_params p = {0};
  p.torrent = (const uint8_t *)o->b;
  p.torrent_len = o->n;
  p.save_path = save;
  gv_why why = {{0}};
  ck_assert_int_eq(gv_tor_add(s->t, &p, NULL, &why), GV_EFIELD);
  ck_assert_msg(strstr(why.text, reason), "want '%s', got '%s'", reason,
                why.text);
}

START_TEST(test_bad_paths) {
  ses *s = ses_new("bad", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  char save[300], outside[300], link[400];
  mkpath(save, sizeof save, "save");
  bbuf o;

  const char *up[] = {"..", "x"};
  const size_t uplen[] = {2, 1};
  bad_torrent(&o, NULL, up, uplen, 2);
  expect_refused(s, &o, save, "'..' path element");

  bad_torrent(&o, "/tmp/abs", NULL, NULL, 0);
  expect_refused(s, &o, save, "'/' in a file name");
  const char *abs[] = {"/etc/passwd"};
  const size_t abslen[] = {11};
  bad_torrent(&o, NULL, abs, abslen, 1);
  expect_refused(s, &o, save, "'/' in a file name");

  const char *nul[] = {"a\0b"};
  const size_t nullen[] = {3};
  bad_torrent(&o, NULL, nul, nullen, 1);
  expect_refused(s, &o, save, "NUL");

  /* A v2 file tree and a BEP 47 symlink target, through the checker. */
  static const char tree[] = "d4:infod9:file treed2:..d1:xd0:d6:lengthi1eeeee"
                             "4:name1:t12:piece lengthi16384eee";
  static const char slink[] = "d4:infod5:filesld4:attr1:l6:lengthi0e4:pathl1:"
                              "le12:symlink pathl2:..3:etceee4:name1:t12:piece "
                              "lengthi16384eee";
  static const char ok[] = "d4:infod5:filesld6:lengthi16384e4:pathl1:aeed4:"
                           "attr1:l6:lengthi0e4:pathl1:le12:symlink pathl1:a"
                           "eee4:name1:t12:piece lengthi16384e6:pieces20:"
                           "AAAAAAAAAAAAAAAAAAAAee";
  gv_why w = {{0}};
  ck_assert_int_eq(
      gv__tor_check_torrent((const uint8_t *)tree, sizeof tree - 1, save, &w),
      GV_EFIELD);
  ck_assert_msg(strstr(w.text, "'..' path element"), "%s", w.text);
  ck_assert_int_eq(
      gv__tor_check_torrent((const uint8_t *)slink, sizeof slink - 1, save, &w),
      GV_EFIELD);
  ck_assert_msg(strstr(w.text, "symlink target"), "%s", w.text);
  ck_assert_msg(
      gv__tor_check_torrent((const uint8_t *)ok, sizeof ok - 1, save, &w) == 0,
      "%s", w.text);
  ck_assert_int_eq(
      gv__tor_check_torrent((const uint8_t *)"d4:infoi1ee", 11, save, &w),
      GV_EFIELD);

  /* The well-formed one is accepted: the refusals above were the paths. */
  const char *fine[] = {"sub", "x"};
  const size_t finelen[] = {3, 1};
  bad_torrent(&o, NULL, fine, finelen, 2);
  /* ...but not where "t" is a symlink out of the save path. */
  mkpath(outside, sizeof outside, "outside");
  snprintf(link, sizeof link, "%s/t", save);
  ck_assert_int_eq(symlink(outside, link), 0);
  expect_refused(s, &o, save, "resolves outside");
  ck_assert_int_eq(count_entries(save), 1);
  ck_assert_int_eq(count_entries(outside), 0);
  ck_assert_int_eq(gv_tor_list(s->t, NULL, 0), 0);
  unlink(link);
  gv_tor_add_params p = {
      .torrent = (const uint8_t *)o.b, .torrent_len = o.n, .save_path = save};
  gv_why why = {{0}};
  ck_assert_msg(gv_tor_add(s->t, &p, NULL, &why) == 0, "%s", why.text);
  ck_assert_int_eq(gv_tor_list(s->t, NULL, 0), 1);
  ck_assert_int_eq(count_entries(outside), 0);
}
END_TEST

/* A v2-only torrent of one 16 KiB file whose file tree's one key ("x")
 * is not its name ("t"): libtorrent writes it as save/x, not save/t/x. */
static void v2_renamed(bbuf *o) {
  static const char root[32] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  static const char head[] =
      "d4:infod9:file treed1:xd0:d6:lengthi16384e11:pieces root";
  static const char tail[] =
      "eee12:meta versioni2e4:name1:t12:piece lengthi16384eee";
  o->n = 0;
  bput(o, head, sizeof head - 1);
  bstr(o, root, 32);
  bput(o, tail, sizeof tail - 1);
}

/* The reviewer's v2w case: the check looked at save/t/x while libtorrent
 * writes save/x, here a symlink to a file outside the save path. */
START_TEST(test_v2_single_renamed) {
  ses *s = ses_new("v2", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  char save[300], outside[300], link[400], victim[400];
  mkpath(save, sizeof save, "save");
  mkpath(outside, sizeof outside, "outside");
  snprintf(victim, sizeof victim, "%s/victim", outside);
  write_random(victim, 100);
  snprintf(link, sizeof link, "%s/x", save);
  ck_assert_int_eq(symlink(victim, link), 0);
  bbuf o;
  v2_renamed(&o);
  gv_why w = {{0}};
  ck_assert_int_eq(gv__tor_check_torrent((const uint8_t *)o.b, o.n, save, &w),
                   GV_EFIELD);
  ck_assert_msg(strstr(w.text, "'x' resolves outside"), "%s", w.text);
  expect_refused(s, &o, save, "'x' resolves outside");
  ck_assert_int_eq(gv_tor_list(s->t, NULL, 0), 0);
  struct stat sb;
  ck_assert_int_eq(stat(victim, &sb), 0);
  ck_assert_int_eq(sb.st_size, 100);
  /* Without the planted link the same torrent is fine. */
  unlink(link);
  ck_assert_int_eq(gv__tor_check_torrent((const uint8_t *)o.b, o.n, save, &w),
                   0);
}
END_TEST

/* The reviewer's repro.c case: a magnet of a directory "share" holding
 * an empty file, fetched into a save path where "share" is a symlink to a
 * directory outside it. libtorrent creates empty files (and directories,
 * and BEP 47 symlinks) on its own thread as soon as the metadata arrives,
 * before gv_tor_poll() runs the check: nothing may appear outside. */
START_TEST(test_magnet_before_poll) {
  char seed[300], share[400], f[500], dst[300], outside[300], link[400];
  mkpath(seed, sizeof seed, "seed");
  snprintf(share, sizeof share, "%s/share", seed);
  ck_assert_int_eq(mkdir(share, 0700), 0);
  snprintf(f, sizeof f, "%s/data", share);
  write_random(f, 100000);
  snprintf(f, sizeof f, "%s/empty", share);
  write_random(f, 0);
  mkpath(dst, sizeof dst, "dst");
  mkpath(outside, sizeof outside, "outside");
  snprintf(link, sizeof link, "%s/share", dst);
  ck_assert_int_eq(symlink(outside, link), 0);

  uint8_t *tb;
  size_t tl;
  gv_tor_ih ih;
  gv_why why = {{0}};
  ck_assert_msg(gv_tor_create(share, 0, &tb, &tl, &ih, &why) == 0, "%s",
                why.text);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  gv_tor_add_params pa = {.torrent = tb,
                          .torrent_len = tl,
                          .save_path = seed,
                          .flags = GV_TOR_ADD_SEED_MODE};
  ck_assert_msg(gv_tor_add(a->t, &pa, NULL, &why) == 0, "%s", why.text);
  gv_tor_target tg;
  memset(&tg, 0, sizeof tg);
  tg.ih = ih;
  tg.ih.has_v2 = 0; /* a v1 magnet */
  gv_tor_add_params pb = {.target = &tg, .save_path = dst};
  ck_assert_msg(gv_tor_add(b->t, &pb, NULL, &why) == 0, "%s", why.text);
  connect_to(b, &tg.ih, a, "127.0.0.1");

  /* Only A is polled for 2 s: B's libtorrent fetches the metadata alone.
   * Until B's check ran, its status says it waits for metadata. */
  for (int i = 0; i < 20; i++) {
    gv_tor_event ev[16];
    while (gv_tor_poll(a->t, ev, 16) == 16)
      ;
    ck_assert_int_eq(count_entries(outside), 0);
    gv_tor_status st;
    ck_assert_int_eq(gv_tor_status_get(b->t, &tg.ih, &st, &why), 0);
    ck_assert_int_eq(st.state, GV_TOR_METADATA);
    usleep(100000);
  }
  size_t ib = 0;
  const gv_tor_event *ev = wait_ev(b, GV_TOR_EV_TORRENT_ERROR, &ib, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(ev->err, GV_EFIELD);
  ck_assert_msg(strstr(ev->reason, "resolves outside"), "%s", ev->reason);
  usleep(300000);
  drain();
  ck_assert_int_eq(count_entries(outside), 0);
  ck_assert_int_eq(count_entries(dst), 1);
  /* Refused, so never "finished" (in its private directory, with no file
   * wanted, libtorrent would call it that). */
  for (size_t k = 0; k < b->n; k++)
    ck_assert_int_ne(b->log[k].type, GV_TOR_EV_FINISHED);
  /* The private directory of the metadata phase is gone. */
  char meta[400];
  snprintf(meta, sizeof meta, "%s/.meta", b->state);
  ck_assert_int_le(count_entries(meta), 0);
  ck_assert_int_eq(gv_tor_remove(b->t, &tg.ih, 0, &why), 0);
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_REMOVED, &ib, WAIT_MS));
  ck_assert_int_eq(count_entries(b->state), 0);

  /* Without the planted link the same magnet arrives whole, in dst. */
  unlink(link);
  ck_assert_msg(gv_tor_add(b->t, &pb, NULL, &why) == 0, "%s", why.text);
  connect_to(b, &tg.ih, a, "127.0.0.1");
  size_t before = ib;
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_METADATA, &ib, WAIT_MS));
  for (size_t k = before; k < ib; k++) /* nothing finished before it */
    ck_assert_int_ne(b->log[k].type, GV_TOR_EV_FINISHED);
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &ib, WAIT_MS));
  char got[500];
  snprintf(f, sizeof f, "%s/data", share);
  snprintf(got, sizeof got, "%s/share/data", dst);
  ck_assert(same_file(f, got));
  snprintf(got, sizeof got, "%s/share/empty", dst);
  ck_assert_int_eq(access(got, F_OK), 0);
  ck_assert_int_le(count_entries(meta), 0);
  gv_tor_bytes_free(tb);
}
END_TEST

/* A resume file that cannot be written (its name is taken by a non-empty
 * directory, so the rename fails): the save reports the error and leaves
 * no temp file behind. */
START_TEST(test_resume_unwritable) {
  src s;
  make_src(&s, "src", 256 * 1024);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  char hex[41], taken[400], inside[500], dst[300];
  gv_tor_hex(s.ih.v1, 20, hex);
  snprintf(taken, sizeof taken, "%s/%s.resume", b->state, hex);
  ck_assert_int_eq(mkdir(taken, 0700), 0);
  snprintf(inside, sizeof inside, "%s/x", taken);
  write_random(inside, 1);
  gv_tor_ih ih = add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  mkpath(dst, sizeof dst, "dst");
  add_bytes(b, &s, dst, 0);
  connect_to(b, &ih, a, "127.0.0.1");
  size_t i = 0;
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_FINISHED, &i, WAIT_MS));
  const gv_tor_event *ev = wait_ev(b, GV_TOR_EV_RESUME_SAVED, &i, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_lt(ev->err, 0);
  ck_assert_msg(strstr(ev->reason, "rename"), "%s", ev->reason);
  ck_assert_int_eq(count_entries(b->state), 1); /* no .<hex>.resume.tmp */
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* Bad seeder on 127.0.0.2 serves flipped bytes; the fetcher bans it, then
 * completes from the good seeder on 127.0.0.3. */
START_TEST(test_corrupt_seeder) {
  src s;
  make_src(&s, "good", 2 * 1024 * 1024);
  char badd[300], badp[400];
  mkpath(badd, sizeof badd, "bad");
  snprintf(badp, sizeof badp, "%s/data.bin", badd);
  char cmd[900];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", s.path, badp);
  ck_assert_int_eq(system(cmd), 0);

  ses *bad = ses_new("bad", "127.0.0.2", GV_TOR_ENC_FORCED, 0);
  ses *good = ses_new("good", "127.0.0.3", GV_TOR_ENC_FORCED, 0);
  ses *f = ses_new("f", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  /* Checked at add (not seed mode, which would re-hash on first upload),
   * then corrupted behind libtorrent's back: it serves what it believes. */
  gv_tor_ih ih = add_bytes(bad, &s, badd, 0);
  ck_assert(wait_state(bad, &ih, GV_TOR_SEEDING, WAIT_MS));
  int fd = open(badp, O_WRONLY);
  ck_assert_int_ge(fd, 0);
  for (int k = 0; k < 32; k++) /* every piece */
    ck_assert_int_eq(pwrite(fd, "XXXX", 4, (off_t)k * PIECE + 100), 4);
  close(fd);
  add_bytes(good, &s, s.dir, GV_TOR_ADD_SEED_MODE);

  char dst[300], got[400];
  mkpath(dst, sizeof dst, "dst");
  add_bytes(f, &s, dst, 0);
  connect_to(f, &ih, bad, "127.0.0.2");
  size_t i = 0;
  const gv_tor_event *ev = wait_ev(f, GV_TOR_EV_HASH_FAILED, &i, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(ev->banned, 1);
  ck_assert_int_eq(ev->has_peer, 1);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&ev->peer;
  ck_assert_int_eq(sin->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0x7f000002);
  ck_assert_uint_eq(ntohs(sin->sin_port), gv_tor_port(bad->t));
  i = 0;
  ev = wait_ev(f, GV_TOR_EV_PEER_BANNED, &i, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  sin = (const struct sockaddr_in *)&ev->peer;
  ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0x7f000002);

  connect_to(f, &ih, good, "127.0.0.3");
  ck_assert_ptr_nonnull(wait_ev(f, GV_TOR_EV_FINISHED, &i, WAIT_MS));
  snprintf(got, sizeof got, "%s/data.bin", dst);
  ck_assert(same_file(s.path, got));
  /* Banned: reconnecting to the bad seeder does not bring it back. */
  connect_to(f, &ih, bad, "127.0.0.2");
  usleep(300000);
  gv_tor_status st;
  ck_assert_int_eq(gv_tor_status_get(f->t, &ih, &st, NULL), 0);
  ck_assert_int_le(st.peers, 1);
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* A 2 MiB tmpfs as the save path of a 6 MiB file. */
START_TEST(test_disk_full) {
  char mnt[300];
  mkpath(mnt, sizeof mnt, "small");
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
    fprintf(stderr,
            "check_tor: SKIP disk full test: mount tmpfs: %s "
            "(needs root)\n",
            strerror(errno));
    return;
  }
  snprintf(mounted, sizeof mounted, "%s", mnt);
  src s;
  make_src(&s, "src", 6 * 1024 * 1024);
  ses *a = ses_new("a", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  ses *b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  gv_tor_ih ih = add_bytes(a, &s, s.dir, GV_TOR_ADD_SEED_MODE);
  add_bytes(b, &s, mnt, 0);
  connect_to(b, &ih, a, "127.0.0.1");
  size_t i = 0;
  const gv_tor_event *ev = wait_ev(b, GV_TOR_EV_FILE_ERROR, &i, WAIT_MS);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(ev->err, -ENOSPC);
  ck_assert_msg(strstr(ev->reason, "disk full"), "%s", ev->reason);
  /* The error libtorrent saw is kept: "disk full: <file>: Bad address". */
  ck_assert_msg(strstr(ev->reason, "No space left") ||
                    strstr(ev->reason, "Bad address") ||
                    strstr(ev->reason, "Input/output error") ||
                    strstr(ev->reason, "File too large"),
                "%s", ev->reason);
  /* libtorrent stops the torrent on its own thread after the alert: its
   * status says so a little later. */
  gv_tor_status st;
  int64_t until = now_ms() + WAIT_MS;
  for (;;) {
    ck_assert_int_eq(gv_tor_status_get(b->t, &ih, &st, NULL), 0);
    if (st.state == GV_TOR_ERROR || now_ms() >= until)
      break;
    usleep(20000);
  }
  ck_assert_int_eq(st.state, GV_TOR_ERROR);
  ck_assert_msg(strstr(st.error, "disk full"), "%s", st.error);
  ck_assert_uint_gt(st.done, 0);
  uint64_t kept = st.done;

  /* The resume data says so: a new session on the same state dir starts
   * from the verified pieces, with no peer to download from. */
  ck_assert_ptr_nonnull(wait_ev(b, GV_TOR_EV_RESUME_SAVED, &i, WAIT_MS));
  ses_free(b);
  b = ses_new("b", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  add_bytes(b, &s, mnt, 0);
  int64_t end = now_ms() + WAIT_MS;
  do {
    usleep(20000);
    ck_assert_int_eq(gv_tor_status_get(b->t, &ih, &st, NULL), 0);
  } while (st.state == GV_TOR_CHECKING && now_ms() < end);
  ck_assert_uint_ge(st.done, kept);
  ck_assert_uint_eq(st.downloaded, 0);
  gv_tor_bytes_free(s.torrent);
}
END_TEST

/* Paths of a created torrent, joined by '\n' (gv__tor_paths' order). */
typedef struct pathlist {
  char text[4096];
  size_t len;
} pathlist;

static void on_path(void *ctx, const char *path, size_t n) {
  pathlist *pl = ctx;
  ck_assert_uint_lt(pl->len + n + 1, sizeof pl->text);
  memcpy(pl->text + pl->len, path, n);
  pl->len += n;
  pl->text[pl->len++] = '\n';
  pl->text[pl->len] = '\0';
}

static void write_text(const char *dir, const char *name, const char *text) {
  char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

static void link_at(const char *dir, const char *name, const char *target) {
  char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  unlink(p);
  ck_assert_int_eq(symlink(target, p), 0);
}

/* Sharing a directory never follows a symlink out of it: a link leading
 * outside (or dangling, or to the root itself) refuses the share; links
 * inside are stored as BEP 47 links with root-relative targets, which the
 * fetch side's check accepts; hidden entries are left out. */
START_TEST(test_create_symlinks) {
  char proj[300], sub[400], secret[300], empty[300];
  uint8_t *tb = NULL;
  size_t tlen = 0;
  gv_tor_ih ih;
  gv_why why = {{0}};

  mkpath(secret, sizeof secret, "secret");
  write_text(secret, "id_ed25519", "private key\n");
  mkpath(proj, sizeof proj, "proj");
  snprintf(sub, sizeof sub, "%s/sub", proj);
  ck_assert_int_eq(mkdir(sub, 0700), 0);
  mkpath(empty, sizeof empty, "empty");
  write_text(proj, "a.txt", "a\n");
  write_text(proj, ".env", "TOKEN=x\n");
  write_text(sub, "b.txt", "b\n");
  link_at(sub, "up", "../a.txt");

  static const char *const bad[][2] = {
      {"link", "../secret"},           /* a directory outside */
      {"key", "../secret/id_ed25519"}, /* a file outside */
      {"dangle", "nowhere"},           /* dangling */
      {"loop", "."},                   /* the root itself */
      {"env", ".env"},                 /* a hidden entry, left out */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    link_at(proj, bad[i][0], bad[i][1]);
    why.text[0] = '\0';
    ck_assert_int_eq(gv_tor_create(proj, 0, &tb, &tlen, &ih, &why), GV_EFIELD);
    ck_assert_ptr_null(tb);
    ck_assert_msg(strstr(why.text, bad[i][0]) != NULL, "why: %s", why.text);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", proj, bad[i][0]);
    ck_assert_int_eq(unlink(p), 0);
  }

  link_at(proj, "in", "sub/b.txt");
  ck_assert_msg(gv_tor_create(proj, 0, &tb, &tlen, &ih, &why) == 0,
                "create: %s", why.text);
  pathlist pl = {.len = 0};
  pl.text[0] = '\0';
  ck_assert_int_gt(gv__tor_paths(tb, tlen, on_path, &pl), 0);
  /* Files, then each link and its target, relative to the save path. */
  ck_assert_msg(strstr(pl.text, "proj/a.txt\n") != NULL, "%s", pl.text);
  ck_assert_msg(strstr(pl.text, "proj/sub/b.txt\n") != NULL, "%s", pl.text);
  ck_assert_msg(strstr(pl.text, "proj/in\nproj/sub/b.txt\n") != NULL, "%s",
                pl.text);
  ck_assert_msg(strstr(pl.text, "proj/sub/up\nproj/a.txt\n") != NULL, "%s",
                pl.text);
  ck_assert_msg(strstr(pl.text, "secret") == NULL, "%s", pl.text);
  ck_assert_msg(strstr(pl.text, "id_ed25519") == NULL, "%s", pl.text);
  ck_assert_msg(strstr(pl.text, "env") == NULL, "%s", pl.text);
  /* What a fetcher checks before writing anything. */
  ck_assert_msg(gv__tor_check_torrent(tb, tlen, empty, &why) == 0, "check: %s",
                why.text);
  gv_tor_bytes_free(tb);

  /* A hidden file named directly is shared. */
  char env[400];
  snprintf(env, sizeof env, "%s/.env", proj);
  ck_assert_msg(gv_tor_create(env, 0, &tb, &tlen, &ih, &why) == 0, "create: %s",
                why.text);
  gv_tor_bytes_free(tb);
}
END_TEST

/* A hashing on another thread, stopped through its cancel flag. */
typedef struct hash_job {
  char path[400];
  int cancel;
  int rc;
  gv_why why;
} hash_job;

static void *hash_main(void *arg) {
  hash_job *j = arg;
  uint8_t *tb = NULL;
  size_t tlen = 0;
  gv_tor_ih ih;
  j->rc =
      gv_tor_create_cancel(j->path, 0, &j->cancel, &tb, &tlen, &ih, &j->why);
  ck_assert_ptr_null(tb);
  return NULL;
}

/* An 8 GiB sparse file takes many seconds to hash; cancelled 200 ms in,
 * gv_tor_create_cancel returns GV_ECANCELED within a few pieces (5 s is
 * a bound for a loaded machine, far below the whole hashing). A flag set
 * before the call stops it before any hashing. */
START_TEST(test_create_cancel) {
  hash_job j = {.cancel = 0};
  char dir[300];
  uint8_t *tb = NULL;
  size_t tlen = 0;
  gv_tor_ih ih;

  mkpath(dir, sizeof dir, "big");
  snprintf(j.path, sizeof j.path, "%s/sparse.bin", dir);
  int fd = open(j.path, O_CREAT | O_WRONLY, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, (off_t)8 << 30), 0);
  close(fd);

  int pre = 1;
  ck_assert_int_eq(
      gv_tor_create_cancel(j.path, 0, &pre, &tb, &tlen, &ih, &j.why),
      GV_ECANCELED);
  ck_assert_ptr_null(tb);

  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, hash_main, &j), 0);
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  __atomic_store_n(&j.cancel, 1, __ATOMIC_RELAXED);
  int64_t t0 = now_ms();
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_lt(now_ms() - t0, 5000);
  ck_assert_msg(j.rc == GV_ECANCELED, "rc %d: %s", j.rc, j.why.text);
  ck_assert_msg(strstr(j.why.text, "cancelled") != NULL, "%s", j.why.text);
}
END_TEST

/* Whether a TCP connect to ip:port succeeds (loopback: at once). */
static int can_connect(const char *ip, uint16_t port) {
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
  close(fd);
  return rc == 0;
}

/* A session re-listens on a list of IPs and back, keeping its port. */
START_TEST(test_set_listen) {
  ses *s = ses_new("ls", "127.0.0.1", GV_TOR_ENC_FORCED, 0);
  uint16_t port = gv_tor_port(s->t);
  gv_why why = {{0}};

  ck_assert_uint_gt(port, 0);
  ck_assert(can_connect("127.0.0.1", port));
  ck_assert(!can_connect("127.0.0.3", port));

  ck_assert_msg(gv_tor_set_listen(s->t, "127.0.0.1,127.0.0.3", port, &why) == 0,
                "%s", why.text);
  ck_assert_uint_eq(gv_tor_port(s->t), port);
  ck_assert(can_connect("127.0.0.3", port));
  ck_assert(can_connect("127.0.0.1", port));

  ck_assert_msg(gv_tor_set_listen(s->t, NULL, port, &why) == 0, "%s", why.text);
  ck_assert_uint_eq(gv_tor_port(s->t), port);
  ck_assert(!can_connect("127.0.0.3", port));
  ck_assert(can_connect("127.0.0.1", port));

  ck_assert_int_eq(gv_tor_set_listen(s->t, "127.0.0.1,nope", port, &why),
                   GV_EINVAL);
  ck_assert_msg(strstr(why.text, "nope") != NULL, "%s", why.text);
  ck_assert_int_eq(gv_tor_set_listen(s->t, "127.0.0.1,", port, &why),
                   GV_EINVAL);
  /* An address of no interface here: refused, naming it. */
  ck_assert_int_eq(gv_tor_set_listen(s->t, "127.0.0.1,192.0.2.1", port, &why),
                   GV_ESTATE);
  ck_assert_msg(strstr(why.text, "192.0.2.1") != NULL, "%s", why.text);
  ck_assert(can_connect("127.0.0.1", port));
}
END_TEST

static Suite *tor_suite(void) {
  Suite *s = suite_create("tor");
  TCase *tc = tcase_create("tor");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_parse_target);
  tcase_add_test(tc, test_bad_paths);
  tcase_add_test(tc, test_v2_single_renamed);
  tcase_add_test(tc, test_magnet_before_poll);
  tcase_add_test(tc, test_resume_unwritable);
  tcase_add_test(tc, test_fetch);
  tcase_add_test(tc, test_magnet_one_connection);
  tcase_add_test(tc, test_magnet_existing_file);
  tcase_add_test(tc, test_add_bad_peers);
  tcase_add_test(tc, test_encryption_forced);
  tcase_add_test(tc, test_corrupt_seeder);
  tcase_add_test(tc, test_disk_full);
  tcase_add_test(tc, test_create_symlinks);
  tcase_add_test(tc, test_create_cancel);
  tcase_add_test(tc, test_set_listen);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(tor_suite()); }

/* tor_peer: one gv_tor session in its own process, driven by a libuv loop
 * the way the node drives it (notify -> uv_async_send -> gv_tor_poll). For
 * tests/integration/test_tor_resume.sh and tests/bench/bench_torrent.sh.
 *
 *   tor_peer seed --file F --state DIR [--torrent-out T] [common options]
 *     Makes a hybrid torrent of F (written to T), adds it with F's
 *     directory as save path (checking the file, or --seed-mode), prints
 *     "port N", "v1 HEX" and "ready" once it seeds, and seeds until
 *     SIGTERM or SIGINT.
 *   tor_peer fetch --torrent T --out DIR --state DIR --peer IP:PORT...
 *     Adds T, connects to each peer, and exits 0 when every piece is
 *     verified, printing "finished ms=.. first_piece_ms=.. downloaded=..
 *     total=..": ms from the add to the last piece, downloaded the payload
 *     bytes this process received. Exit 1 on a file or torrent error, 2 on
 *     --timeout. --progress prints "piece DONE/TOTAL" and "resume_saved".
 *
 * Common options: --ip IP (listen, default 127.0.0.1), --plain (no
 * encryption), --rate BYTES (session upload limit), --piece BYTES (seed),
 * --timeout SECONDS (fetch, default 600).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../torrent/tor.h"

#define MAX_PEERS 8

typedef struct app {
  uv_loop_t *loop;
  uv_async_t async;
  uv_signal_t sigterm, sigint;
  uv_timer_t timeout;
  gv_tor *t;
  gv_tor_ih ih;
  int fetch, progress, exit_code;
  uint64_t t0, first_piece;
} app;

static void notify(void *ctx) { uv_async_send(ctx); }

static void stop(app *a, int code) {
  a->exit_code = code;
  uv_stop(a->loop);
}

static void on_event(app *a, const gv_tor_event *ev) {
  gv_tor_status st;
  switch (ev->type) {
  case GV_TOR_EV_PIECE:
    if (!a->first_piece)
      a->first_piece = uv_hrtime();
    if (a->progress)
      printf("piece %d/%d\n", ev->pieces_done, ev->pieces_total);
    break;
  case GV_TOR_EV_RESUME_SAVED:
    if (a->progress)
      printf("resume_saved err=%d %s\n", ev->err, ev->reason);
    break;
  case GV_TOR_EV_FINISHED:
    if (gv_tor_status_get(a->t, &a->ih, &st, NULL) != 0)
      break;
    if (!a->fetch) {
      printf("ready\n");
      break;
    }
    printf("finished ms=%.1f first_piece_ms=%.1f downloaded=%llu "
           "total=%llu\n",
           (double)(uv_hrtime() - a->t0) / 1e6,
           a->first_piece ? (double)(a->first_piece - a->t0) / 1e6 : -1.0,
           (unsigned long long)st.downloaded, (unsigned long long)st.total);
    stop(a, 0);
    break;
  case GV_TOR_EV_HASH_FAILED:
  case GV_TOR_EV_PEER_BANNED:
    printf("%s piece %u\n", gv_tor_ev_name(ev->type), ev->piece);
    break;
  case GV_TOR_EV_FILE_ERROR:
  case GV_TOR_EV_TORRENT_ERROR:
    printf("error %s: %s\n", gv_tor_ev_name(ev->type), ev->reason);
    stop(a, 1);
    break;
  default: break;
  }
  fflush(stdout);
}

static void on_async(uv_async_t *h) {
  app *a = h->data;
  gv_tor_event ev[32];
  int n;
  do {
    n = gv_tor_poll(a->t, ev, 32);
    for (int i = 0; i < n; i++)
      on_event(a, &ev[i]);
  } while (n == 32);
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)sig;
  stop(h->data, 0);
}

static void on_timeout(uv_timer_t *h) {
  printf("timeout\n");
  fflush(stdout);
  stop(h->data, 2);
}

static int read_file(const char *path, uint8_t **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  *buf = malloc(n > 0 ? (size_t)n : 1);
  *len = *buf ? fread(*buf, 1, (size_t)n, f) : 0;
  fclose(f);
  return *buf && *len == (size_t)n ? 0 : -1;
}

static int usage(void) {
  fprintf(stderr, "usage: tor_peer seed|fetch [options] (see the source)\n");
  return 64;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return usage();
  app a = {0};
  a.fetch = strcmp(argv[1], "fetch") == 0;
  if (!a.fetch && strcmp(argv[1], "seed") != 0)
    return usage();
  const char *file = NULL, *state = NULL, *tout = NULL, *tin = NULL;
  const char *out = NULL, *peers[MAX_PEERS];
  int npeers = 0, seed_mode = 0, timeout_s = 600;
  uint32_t piece = 0;
  gv_tor_cfg cfg = {0};
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--progress"))
      a.progress = 1;
    else if (!strcmp(o, "--plain"))
      cfg.encryption = GV_TOR_ENC_DISABLED;
    else if (!strcmp(o, "--seed-mode"))
      seed_mode = 1;
    else if (!v)
      return usage();
    else if (!strcmp(o, "--file"))
      file = v, i++;
    else if (!strcmp(o, "--state"))
      state = v, i++;
    else if (!strcmp(o, "--torrent-out"))
      tout = v, i++;
    else if (!strcmp(o, "--torrent"))
      tin = v, i++;
    else if (!strcmp(o, "--out"))
      out = v, i++;
    else if (!strcmp(o, "--ip"))
      cfg.listen_ip = v, i++;
    else if (!strcmp(o, "--rate"))
      cfg.upload_rate = atoi(v), i++;
    else if (!strcmp(o, "--piece"))
      piece = (uint32_t)strtoul(v, NULL, 10), i++;
    else if (!strcmp(o, "--timeout"))
      timeout_s = atoi(v), i++;
    else if (!strcmp(o, "--peer") && npeers < MAX_PEERS)
      peers[npeers++] = v, i++;
    else
      return usage();
  }
  if (!state || (a.fetch ? !tin || !out : !file))
    return usage();

  a.loop = uv_default_loop();
  uv_async_init(a.loop, &a.async, on_async);
  a.async.data = &a;
  cfg.state_dir = state;
  cfg.notify = notify;
  cfg.notify_ctx = &a.async;
  gv_why why = {{0}};
  if (gv_tor_new(&a.t, &cfg, &why) != 0) {
    fprintf(stderr, "tor_peer: %s\n", why.text);
    return 1;
  }
  uint8_t *bytes = NULL;
  size_t len = 0;
  char save[1024];
  int rc;
  if (a.fetch) {
    rc = read_file(tin, &bytes, &len);
    if (rc != 0)
      fprintf(stderr, "tor_peer: cannot read %s\n", tin);
    snprintf(save, sizeof save, "%s", out);
  } else {
    rc = gv_tor_create(file, piece, &bytes, &len, &a.ih, &why);
    if (rc != 0)
      fprintf(stderr, "tor_peer: %s\n", why.text);
    FILE *f = rc == 0 && tout ? fopen(tout, "wb") : NULL;
    if (f) {
      fwrite(bytes, 1, len, f);
      fclose(f);
    }
    snprintf(save, sizeof save, "%s", file);
    char *slash = strrchr(save, '/');
    if (slash)
      *slash = 0;
    else
      snprintf(save, sizeof save, ".");
  }
  if (rc != 0)
    return 1;
  gv_tor_add_params p = {.torrent = bytes,
                         .torrent_len = len,
                         .save_path = save,
                         .flags = seed_mode ? GV_TOR_ADD_SEED_MODE : 0};
  a.t0 = uv_hrtime();
  if (gv_tor_add(a.t, &p, &a.ih, &why) != 0) {
    fprintf(stderr, "tor_peer: %s\n", why.text);
    return 1;
  }
  for (int i = 0; i < npeers; i++) {
    char host[64];
    const char *colon = strrchr(peers[i], ':');
    struct sockaddr_in sin = {.sin_family = AF_INET};
    if (!colon || (size_t)(colon - peers[i]) >= sizeof host)
      return usage();
    memcpy(host, peers[i], (size_t)(colon - peers[i]));
    host[colon - peers[i]] = 0;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
        gv_tor_connect(a.t, &a.ih, (struct sockaddr *)&sin, &why) != 0) {
      fprintf(stderr, "tor_peer: peer %s: %s\n", peers[i], why.text);
      return 1;
    }
  }
  if (!a.fetch) {
    char hex[41];
    gv_tor_hex(a.ih.v1, 20, hex);
    printf("port %u\nv1 %s\n", gv_tor_port(a.t), hex);
    fflush(stdout);
  } else {
    uv_timer_init(a.loop, &a.timeout);
    a.timeout.data = &a;
    uv_timer_start(&a.timeout, on_timeout, (uint64_t)timeout_s * 1000, 0);
  }
  uv_signal_init(a.loop, &a.sigterm);
  uv_signal_init(a.loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_run(a.loop, UV_RUN_DEFAULT);
  gv_tor_free(a.t); /* saves resume data; no notify after it returns */
  uv_close((uv_handle_t *)&a.async, NULL);
  uv_close((uv_handle_t *)&a.sigterm, NULL);
  uv_close((uv_handle_t *)&a.sigint, NULL);
  if (a.fetch)
    uv_close((uv_handle_t *)&a.timeout, NULL);
  uv_run(a.loop, UV_RUN_DEFAULT);
  uv_loop_close(a.loop);
  gv_tor_bytes_free(bytes);
  return a.exit_code;
}

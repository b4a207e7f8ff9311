/* grapevine-sim --scenario steady: see steady.h for the model.
 *
 * Run:  form (5 s) -> warm-up (60 s) -> count every frame (the net's
 *       frame hook) for the duration, announcing on each node's 30-min
 *       schedule -> report per node per second; CSV and plots with --out.
 *
 * Bytes are counted as on the wire above TCP: the plaintext (channel byte
 * and message), the frame's length prefix and the AEAD tag of the link
 * encryption (proto/link.c). The handshake's bytes (once per link) are not.
 */
#include "steady.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "chan.h"
#include "frame.h"
#include "simout.h"

#define FORM_MS 5000
#define WARM_MS 60000
#define TICK_MS 1000
#define BUCKET_MS 10000 /* the time series' resolution */
/* node/daemon.c REANNOUNCE_MS: a node floods its record every 30 min. */
#define REANNOUNCE_MS (30 * 60000LL)
#define WIRE_EXTRA (GV_FRAME_HDR + crypto_secretstream_xchacha20poly1305_ABYTES)

/* Message classes: the gossip and link types (GV_MSG_NONE for a frame
 * none names), then the relay and torrent channels. */
enum { CL_RELAY = GV__MSG_COUNT, CL_TORRENT, CL_COUNT };

typedef struct counts {
  uint64_t msgs[2][CL_COUNT], bytes[2][CL_COUNT]; /* [in][class] */
} counts;

typedef struct steady {
  gv_sim *s;
  bool on;                              /* counting */
  int64_t m0;                           /* start of the count */
  counts role[2];                       /* [silent] */
  uint64_t *bucket_msgs, *bucket_bytes; /* sent, per BUCKET_MS */
  size_t n_buckets;
} steady;

static const char *class_name(int c) {
  return c == CL_RELAY      ? "RELAY"
         : c == CL_TORRENT  ? "TORRENT"
         : c == GV_MSG_NONE ? "UNKNOWN"
                            : gv_msg_type_name((gv_msg_type)c);
}

/* The type named in a link or gossip plaintext: the first "type" key,
 * plain (link messages, IHAVE, IWANT) or escaped inside the body string
 * (gossip messages, whose signed body leads with v and type). */
static int classify(const gv_buf *b) {
  const char *p, *end = (const char *)b->data + b->len, *q;

  if (b->len < 1)
    return GV_MSG_NONE;
  if (b->data[0] == GV_CHAN_RELAY)
    return CL_RELAY;
  if (b->data[0] == GV_CHAN_TORRENT)
    return CL_TORRENT;
  p = memmem(b->data + 1, b->len - 1, "type", 4);
  if (p == NULL)
    return GV_MSG_NONE;
  for (p += 4; p < end && (*p == '"' || *p == '\\' || *p == ':'); p++)
    ;
  for (q = p; q < end && *q != '"' && *q != '\\'; q++)
    ;
  return gv_msg_type_from_name(p, (size_t)(q - p));
}

static void on_frame(void *ctx, uint32_t i, const gv_buf *b, bool in) {
  steady *st = ctx;
  counts *c;
  int cl;

  if (!st->on)
    return;
  c = &st->role[st->s->nodes[i].silent];
  cl = classify(b);
  c->msgs[in][cl]++;
  c->bytes[in][cl] += b->len + WIRE_EXTRA;
  if (!in) {
    size_t k = (size_t)((st->s->now - st->m0) / BUCKET_MS);
    if (k < st->n_buckets) {
      st->bucket_msgs[k]++;
      st->bucket_bytes[k] += b->len + WIRE_EXTRA;
    }
  }
}

/* Progress lines on stderr: about ten per run, on the tick grid. */
static int64_t report_ms(int64_t duration_ms) {
  int64_t step = duration_ms / 10 / TICK_MS * TICK_MS;
  return step > TICK_MS ? step : TICK_MS;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double r3(double x) { return round(x * 1000) / 1000; }

/* msgs and bytes per node per second, in and out, of class cl (-1: all)
 * over the roles in mask (bit 0 broadcasting, bit 1 silent). */
static void rates(const steady *st, int cl, int mask, double node_s,
                  double out[4]) {
  memset(out, 0, 4 * sizeof(double));
  for (int r = 0; r < 2; r++) {
    if (!(mask & (1 << r)))
      continue;
    for (int c = 0; c < CL_COUNT; c++) {
      if (cl >= 0 && c != cl)
        continue;
      out[0] += (double)st->role[r].msgs[0][c];
      out[1] += (double)st->role[r].bytes[0][c];
      out[2] += (double)st->role[r].msgs[1][c];
      out[3] += (double)st->role[r].bytes[1][c];
    }
  }
  for (int k = 0; k < 4; k++)
    out[k] = node_s > 0 ? out[k] / node_s : 0;
}

static void add_rates(cJSON *o, const double v[4]) {
  cJSON_AddNumberToObject(o, "msgs_out_per_s", r3(v[0]));
  cJSON_AddNumberToObject(o, "bytes_out_per_s", r3(v[1]));
  cJSON_AddNumberToObject(o, "msgs_in_per_s", r3(v[2]));
  cJSON_AddNumberToObject(o, "bytes_in_per_s", r3(v[3]));
}

static void write_csv(const steady *st, const gv_steady_opts *so, double node_s,
                      uint32_t nodes) {
  size_t cap = 4096 + st->n_buckets * 64, off;
  char *buf = malloc(cap);
  double v[4];

  if (buf == NULL)
    return;
  mkdir(so->out, 0755);
  off = (size_t)snprintf(buf, cap,
                         "type,msgs_out_per_s,bytes_out_per_s,"
                         "msgs_in_per_s,bytes_in_per_s\n");
  for (int c = 0; c < CL_COUNT; c++) {
    rates(st, c, 3, node_s, v);
    if (v[0] + v[2] == 0)
      continue;
    off += (size_t)snprintf(buf + off, cap - off, "%s,%.4f,%.2f,%.4f,%.2f\n",
                            class_name(c), v[0], v[1], v[2], v[3]);
  }
  gv_sim_write_file(so->out, "traffic_by_type.csv", buf);
  off = (size_t)snprintf(buf, cap, "t_s,msgs_out_per_s,bytes_out_per_s\n");
  for (size_t k = 0; k < st->n_buckets; k++)
    off += (size_t)snprintf(
        buf + off, cap - off, "%zu,%.4f,%.2f\n", k * BUCKET_MS / 1000,
        (double)st->bucket_msgs[k] / nodes / (BUCKET_MS / 1000.0),
        (double)st->bucket_bytes[k] / nodes / (BUCKET_MS / 1000.0));
  gv_sim_write_file(so->out, "steady_rate.csv", buf);
  free(buf);
  gv_sim_write_file(
      so->out, "steady_types.gp",
      "set terminal svg size 800,400 noenhanced\n"
      "set output 'steady_types.svg'\n"
      "set datafile separator ','\nset key top right\nset grid y\n"
      "set style data histograms\nset style fill solid border -1\n"
      "set ylabel 'bytes per node per second'\nset xtics rotate by -30\n"
      "plot 'traffic_by_type.csv' every ::1 using 3:xtic(1) title 'sent', "
      "'' every ::1 using 5 title 'received'\n");
  gv_sim_plot(so->out, "steady_types");
  gv_sim_write_file(
      so->out, "steady_rate.gp",
      "set terminal svg size 800,400\nset output 'steady_rate.svg'\n"
      "set datafile separator ','\nset key top right\nset grid\n"
      "set xlabel 'simulated seconds'\nset ylabel 'bytes sent per node "
      "per second'\nset y2label 'messages sent per node per second'\n"
      "set y2tics\nset ytics nomirror\nset yrange [0:*]\nset y2range [0:*]\n"
      "plot 'steady_rate.csv' every ::1 using 1:3 with lines lw 2 title "
      "'bytes/s', '' every ::1 using 1:2 axes x1y2 with lines lw 2 title "
      "'msgs/s (right)'\n");
  gv_sim_plot(so->out, "steady_rate");
}

int gv_steady_run(const gv_sim_cfg *base, const gv_steady_opts *so) {
  gv_sim_cfg cfg = *base;
  gv_engine_cfg ec;
  gv_lcore_cfg lc;
  steady st;
  gv_rng rng;
  int64_t *announce_at = NULL, t0, m_end;
  uint32_t n = cfg.nodes, n_role[2] = {0, 0};
  struct timespec ts0, ts1;
  double cpu0 = 0, cpu1 = 0, secs, v[4];
  bool any = false;
  int rc = 0;
  cJSON *j, *o;
  char *txt;

  memset(&st, 0, sizeof(st));
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  /* The real intervals: the engine's and the link core's defaults. */
  gv_engine_cfg_default(&ec);
  gv_lcore_cfg_default(&lc);
  cfg.heartbeat_ms = ec.heartbeat_ms;
  cfg.shuffle_ms = ec.shuffle_ms;
  cfg.pings = true;
  if (gv_sim_new(&st.s, &cfg) < 0) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    return 1;
  }
  gv_rng_seed(&rng, cfg.seed ^ 0x737465616479ULL); /* "steady" */
  st.n_buckets = (size_t)(so->duration_ms / BUCKET_MS);
  announce_at = calloc(n, sizeof(int64_t));
  st.bucket_msgs = calloc(st.n_buckets + 1, sizeof(uint64_t));
  st.bucket_bytes = calloc(st.n_buckets + 1, sizeof(uint64_t));
  if (announce_at == NULL || st.bucket_msgs == NULL ||
      st.bucket_bytes == NULL) {
    fprintf(stderr, "grapevine-sim: out of memory\n");
    rc = 1;
    goto out;
  }
  for (uint32_t i = 0; i < n; i++) {
    bool silent = gv_rng_unit(&st.s->rng) < cfg.silent_frac;
    if (i == n - 1 && !any)
      silent = false; /* someone must accept links */
    any |= !silent;
    gv_sim_add_node(st.s, silent);
    n_role[silent]++;
  }
  for (uint32_t i = 0; i < n; i++)
    gv_sim_seed_candidates(st.s, i, cfg.candidates);
  st.s->frame_fn = on_frame;
  st.s->frame_ctx = &st;
  gv_sim_run_until(st.s, st.s->now + FORM_MS);
  if (!gv_sim_checked(st.s, so->argc, so->argv)) {
    rc = 3;
    goto out;
  }
  /* Each node at its own phase of the 30-min announcement period. */
  t0 = st.s->now;
  for (uint32_t i = 0; i < n; i++)
    announce_at[i] = t0 + (int64_t)gv_rng_below(&rng, REANNOUNCE_MS);
  st.m0 = t0 + WARM_MS;
  m_end = st.m0 + so->duration_ms;
  for (int64_t now = t0; now <= m_end; now += TICK_MS) {
    gv_sim_run_until(st.s, now);
    if (now == st.m0) {
      st.on = true;
      cpu0 = cpu_s();
    }
    if (now > st.m0 && (now - st.m0) % report_ms(so->duration_ms) == 0)
      fprintf(stderr,
              "grapevine-sim: steady +%lld s of %lld counted, %llu events\n",
              (long long)((now - st.m0) / 1000),
              (long long)(so->duration_ms / 1000),
              (unsigned long long)st.s->events);
    if (now == m_end)
      break;
    for (uint32_t i = 0; i < n; i++)
      if (announce_at[i] <= now) {
        gv_engine_announce(st.s->nodes[i].e, NULL, now);
        gv_sim_drain(st.s, i);
        announce_at[i] += REANNOUNCE_MS;
      }
  }
  st.on = false;
  cpu1 = cpu_s();
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  if (!gv_sim_checked(st.s, so->argc, so->argv)) {
    rc = 3;
    goto out;
  }
  secs = (double)so->duration_ms / 1000;

  j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "scenario", "steady");
  cJSON_AddNumberToObject(j, "nodes", n);
  cJSON_AddNumberToObject(j, "seed", (double)cfg.seed);
  cJSON_AddNumberToObject(j, "silent_frac", cfg.silent_frac);
  cJSON_AddBoolToObject(j, "stub_sigs", cfg.stub_sigs);
  cJSON_AddNumberToObject(j, "duration_min", secs / 60);
  cJSON_AddNumberToObject(j, "warmup_s", WARM_MS / 1000);
  o = cJSON_AddObjectToObject(j, "intervals_s");
  cJSON_AddNumberToObject(o, "heartbeat", (double)ec.heartbeat_ms / 1000);
  cJSON_AddNumberToObject(o, "shuffle", (double)ec.shuffle_ms / 1000);
  cJSON_AddNumberToObject(o, "ping", (double)lc.ping_ms / 1000);
  cJSON_AddNumberToObject(o, "announce", (double)REANNOUNCE_MS / 1000);
  rates(&st, -1, 3, (double)n * secs, v);
  add_rates(cJSON_AddObjectToObject(j, "per_node"), v);
  o = cJSON_AddObjectToObject(j, "by_role");
  if (n_role[0] > 0) {
    cJSON *r = cJSON_AddObjectToObject(o, "broadcasting");
    cJSON_AddNumberToObject(r, "nodes", n_role[0]);
    rates(&st, -1, 1, (double)n_role[0] * secs, v);
    add_rates(r, v);
  }
  if (n_role[1] > 0) {
    cJSON *r = cJSON_AddObjectToObject(o, "silent");
    cJSON_AddNumberToObject(r, "nodes", n_role[1]);
    rates(&st, -1, 2, (double)n_role[1] * secs, v);
    add_rates(r, v);
  }
  o = cJSON_AddObjectToObject(j, "by_type");
  for (int c = 0; c < CL_COUNT; c++) {
    rates(&st, c, 3, (double)n * secs, v);
    if (v[0] + v[2] > 0)
      add_rates(cJSON_AddObjectToObject(o, class_name(c)), v);
  }
  cJSON_AddNumberToObject(j, "links_made", st.s->n_links);
  cJSON_AddNumberToObject(j, "ip_leaks", (double)st.s->ip_leaks);
  cJSON_AddNumberToObject(j, "frames", (double)st.s->frames);
  cJSON_AddNumberToObject(j, "events", (double)st.s->events);
  if (so->timing) {
    double wall = (double)(ts1.tv_sec - ts0.tv_sec) +
                  (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9;
    cJSON_AddNumberToObject(j, "wall_s", r3(wall));
    cJSON_AddNumberToObject(j, "cpu_s", r3(cpu1 - cpu0));
    cJSON_AddNumberToObject(j, "cpu_us_per_node_s",
                            r3((cpu1 - cpu0) * 1e6 / ((double)n * secs)));
  }
  txt = so->json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
  puts(txt);
  free(txt);
  cJSON_Delete(j);
  if (so->out != NULL)
    write_csv(&st, so, (double)n * secs, n);
out:
  free(announce_at);
  free(st.bucket_msgs);
  free(st.bucket_bytes);
  gv_sim_free(st.s);
  return rc;
}

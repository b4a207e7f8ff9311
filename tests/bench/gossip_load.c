/* gossip_load: drives a running node for the footprint benchmark
 * (tests/bench/bench_node.sh). It opens LINKS links to HOST:PORT as
 * LINKS identities, introduces PEERS signed records (PEER_ANNOUNCEMENTs,
 * ttl 1, so the table fills without a flood), then sends signed
 * HEARTBEATs at RATE msg/s in total for SECONDS, spread over the links so
 * that no link exceeds the node's per-link rate limit. All signing happens
 * before the clock starts. Each link speaks wire version 2 as a node would
 * (PROTOCOL.md §5): HELLO first, gossip on channel 1, PINGs answered, and
 * nothing is sent until every link has the node's HELLO.
 *
 *   gossip_load HOST:PORT PEERS RATE SECONDS [LINKS]
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chan.h"
#include "cli.h"
#include "conn.h"
#include "msg.h"

typedef struct load {
  uv_loop_t *loop;
  gv_conn **conns;
  gv_identity *ids;
  int n_links, dialed, open, ready, closed;
  struct sockaddr_in to;
  char **intro, **beats;
  size_t *intro_len, *beat_len;
  int peers, beats_total, sent_intro, sent_beats;
  int rate, seconds;
  uv_timer_t tick;
} load;

/* Sends m on the link channel. */
static void send_link(gv_conn *c, const gv_msg *m) {
  char *out;
  size_t len;
  uint8_t *pt;
  if (gv_msg_encode_link(m, &out, &len) < 0 || (pt = malloc(len + 1)) == NULL)
    exit(1);
  pt[0] = GV_CHAN_LINK;
  memcpy(pt + 1, out, len);
  gv_conn_send(c, pt, len + 1);
  free(pt);
  free(out);
}

static const gv_conn_cbs cbs;

/* Links are dialed one after another: a node takes at most 8 handshakes
 * from one address at a time (PROTOCOL.md §5.2). */
static void dial_next(load *l) {
  int i = l->dialed++;
  if (gv_conn_new(&l->conns[i], l->loop, &l->ids[i], GV_HS_INITIATOR, NULL,
                  &cbs, l) < 0 ||
      gv_conn_dial(l->conns[i], (struct sockaddr *)&l->to) < 0) {
    fprintf(stderr, "gossip_load: cannot dial\n");
    exit(1);
  }
}

static void on_open(gv_conn *c) {
  load *l = gv_conn_data(c);
  if (l->dialed < l->n_links)
    dial_next(l);
  gv_msg hello = {.type = GV_MSG_HELLO};
  snprintf(hello.u.hello.agent, sizeof(hello.u.hello.agent), "gossip_load/2");
  hello.ts = gv_cli_now_ms();
  send_link(c, &hello);
  l->open++;
}

/* The node's HELLO makes the link ready; its PINGs are answered (else it
 * would close the link); nothing else is measured. */
static void on_msg(gv_conn *c, const uint8_t *msg, size_t len) {
  load *l = gv_conn_data(c);
  gv_msg_policy pol = {.now_ms = gv_cli_now_ms()};
  gv_msg m;

  memset(&m, 0, sizeof(m));
  if (len < 2 || msg[0] != GV_CHAN_LINK ||
      gv_msg_decode(&m, msg + 1, len - 1, &pol, NULL) < 0) {
    gv_msg_clear(&m);
    return;
  }
  if (m.type == GV_MSG_HELLO) {
    l->ready++;
  } else if (m.type == GV_MSG_PING) {
    gv_msg pong = {.type = GV_MSG_PONG};
    pong.u.nonce = m.u.nonce;
    send_link(c, &pong);
  }
  gv_msg_clear(&m);
}

static void on_close(gv_conn *c, int status) {
  load *l = gv_conn_data(c);
  (void)status;
  l->closed++;
}

static const gv_conn_cbs cbs = {on_open, on_msg, on_close};

/* Every 10 ms: send a tenth of a tenth of the rate, round-robin. */
static void on_tick(uv_timer_t *t) {
  load *l = t->data;
  int per_tick = l->rate / 100 > 0 ? l->rate / 100 : 1;

  if (l->ready < l->n_links)
    return;
  for (int k = 0; k < per_tick; k++) {
    gv_conn *c = l->conns[(l->sent_intro + l->sent_beats) % l->n_links];
    if (l->sent_intro < l->peers) {
      gv_conn_send(c, (uint8_t *)l->intro[l->sent_intro],
                   l->intro_len[l->sent_intro]);
      l->sent_intro++;
    } else if (l->sent_beats < l->beats_total) {
      gv_conn_send(c, (uint8_t *)l->beats[l->sent_beats],
                   l->beat_len[l->sent_beats]);
      l->sent_beats++;
    } else {
      uv_timer_stop(t);
      for (int i = 0; i < l->n_links; i++)
        gv_conn_close(l->conns[i], NULL, 0);
      uv_close((uv_handle_t *)t, NULL);
      return;
    }
  }
}

/* Signs m as id's; returns the plaintext for the gossip channel. */
static char *seal(gv_msg *m, const gv_identity *id, size_t *len) {
  char *out = NULL, *pt;
  if (gv_msg_seal(m, id, &out, len) < 0 || (pt = malloc(*len + 1)) == NULL) {
    fprintf(stderr, "gossip_load: cannot sign\n");
    exit(1);
  }
  pt[0] = GV_CHAN_GOSSIP;
  memcpy(pt + 1, out, *len);
  (*len)++;
  free(out);
  gv_msg_clear(m);
  return pt;
}

int main(int argc, char **argv) {
  load l;
  gv_addr target;
  struct sockaddr_in sin;
  int64_t now;

  if (argc < 5 || sodium_init() < 0 ||
      gv_addr_parse(&target, argv[1], strlen(argv[1])) < 0 ||
      target.family != 4) {
    fprintf(stderr, "usage: gossip_load HOST:PORT PEERS RATE SECONDS "
                    "[LINKS]\n");
    return 2;
  }
  memset(&l, 0, sizeof(l));
  l.peers = atoi(argv[2]);
  l.rate = atoi(argv[3]);
  l.seconds = atoi(argv[4]);
  l.n_links = argc > 5 ? atoi(argv[5]) : 10;
  l.beats_total = l.rate * l.seconds;
  if (l.peers < 0 || l.rate < 1 || l.seconds < 1 || l.n_links < 1 ||
      l.peers > 1000000 || l.beats_total > 10000000 || l.n_links > 256)
    return 2;
  now = gv_cli_now_ms();
  l.ids = calloc((size_t)(l.peers > l.n_links ? l.peers : l.n_links),
                 sizeof(gv_identity));
  l.intro = calloc((size_t)l.peers + 1, sizeof(char *));
  l.intro_len = calloc((size_t)l.peers + 1, sizeof(size_t));
  l.beats = calloc((size_t)l.beats_total, sizeof(char *));
  l.beat_len = calloc((size_t)l.beats_total, sizeof(size_t));
  for (int i = 0; i < (l.peers > l.n_links ? l.peers : l.n_links); i++)
    gv_id_generate(&l.ids[i]);
  for (int i = 0; i < l.peers; i++) {
    gv_msg m = {0};
    char repo[GV_REPO_MAX + 1];
    m.type = GV_MSG_PEER_ANNOUNCEMENT;
    m.ttl = 1;
    m.seq = 1;
    m.ts = now;
    snprintf(repo, sizeof(repo), "repo-%d", i);
    m.u.peer.repos = repo;
    m.u.peer.n_repos = 1;
    l.intro[i] = seal(&m, &l.ids[i], &l.intro_len[i]);
  }
  for (int i = 0; i < l.beats_total; i++) {
    gv_msg m = {0};
    m.type = GV_MSG_HEARTBEAT;
    m.ttl = 2;
    m.seq = 2 + (uint64_t)i;
    m.ts = now + (int64_t)(i / (l.rate > 0 ? l.rate : 1)) * 1000;
    l.beats[i] =
        seal(&m, &l.ids[i % (l.peers > 0 ? l.peers : 1)], &l.beat_len[i]);
  }
  l.loop = uv_default_loop();
  l.conns = calloc((size_t)l.n_links, sizeof(gv_conn *));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  memcpy(&sin.sin_addr, target.ip, 4);
  sin.sin_port = htons(target.port);
  l.to = sin;
  dial_next(&l);
  uv_timer_init(l.loop, &l.tick);
  l.tick.data = &l;
  uv_timer_start(&l.tick, on_tick, 10, 10);
  uv_run(l.loop, UV_RUN_DEFAULT);
  printf("{\"links\":%d,\"records\":%d,\"heartbeats\":%d}\n", l.open,
         l.sent_intro, l.sent_beats);
  return l.open == l.n_links ? 0 : 1;
}

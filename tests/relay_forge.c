/* relay_forge: an outsider's relay packets, for
 * tests/integration/test_relay.sh (docs/RELAY.md §6.1, §6.3).
 *
 *   relay_forge HOST:PORT DST TO [TOKEN]
 *
 * Dials HOST:PORT (IPv4) with a throw-away identity, completes the
 * handshake of PROTOCOL.md §4, sends its HELLO and waits for the node's
 * PING (the link is READY). Then it sends on channel 2 three ROUTE packets
 * whose `dst` is the node id DST (64 hex digits; the node dialed, or a node
 * it forwards to), each a DATA from `x:mallory` to the agent TO
 * (project:name), seq 1, every one with its own random id:
 *   wrong_team  sealed for DST by us, with the keys of a team we just made
 *               up: it opens, but no team of DST's proves it (not_in_team);
 *   altered     sealed for DST with the team of TOKEN (a random team
 *               without TOKEN), then one byte of the box flipped, as a
 *               relay on the way would (refused);
 *   control     (only with TOKEN) sealed for DST with the team of TOKEN and
 *               left alone: what a team member sends, so a test can tell a
 *               refusal from a packet that never arrived.
 * Bodies are "forged: wrong team", "forged: altered" and "control". Then it
 * reads for 3 s and closes the link with FINAL.
 *
 * Output, one line each: `open PEER` (the node's short id), `sent NAME ID`
 * (ID: 32 hex), `recv KIND ID` for every relay packet addressed to us that
 * opens with the team of TOKEN (e.g. the STORED of the control), `done`.
 * Exit status 0 when every packet was sent, 1 on a failed link, 2 on usage.
 * Blocking sockets and poll(): the link itself is sans-I/O (proto/link.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "link.h"
#include "msg.h"
#include "relaywire.h"

#define FROM "x:mallory"
#define READ_MS 3000

typedef struct forge {
  gv_identity self;
  uint8_t dst[GV_ID_BYTES];
  gv_rw_team team; /* TOKEN's team, or a random one */
  bool have_token;
  bool pinged;
} forge;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes everything the link has queued. */
static int flush(int fd, gv_link *l) {
  const uint8_t *p;
  size_t n;

  while ((n = gv_link_out(l, &p)) > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    gv_link_out_consume(l, (size_t)w);
  }
  return 0;
}

/* A relay packet addressed to us, opened with f->team: printed. */
static void on_relay(forge *f, const uint8_t *b, size_t len) {
  static uint8_t buf[GV_RW_SEALED_MAX];
  char hex[2 * GV_RW_ID_BYTES + 1];
  gv_rw_boxkey k;
  gv_rw_opened o;
  gv_rw_hop h;

  if (!f->have_token || gv_rw_hop_decode(b, len, &h, NULL) < 0 ||
      h.kind != GV_RW_ROUTE ||
      memcmp(h.u.route.dst, f->self.pk, GV_ID_BYTES) != 0)
    return;
  if (gv_rw_peer_key(&f->self, h.u.route.src, &k, NULL) == 0 &&
      gv_rw_open(&k, &h.u.route, &f->team, 1, buf, sizeof(buf), &o, NULL) ==
          0) {
    sodium_bin2hex(hex, sizeof(hex), h.u.route.id, GV_RW_ID_BYTES);
    printf("recv %s %s\n", gv_rw_kind_name(o.kind), hex);
  }
  gv_rw_peer_key_wipe(&k);
}

/* A message from the node: notes a PING, prints relay answers. */
static int on_msg(void *ctx, const uint8_t *msg, size_t len) {
  gv_msg_policy pol = {0};
  forge *f = ctx;
  gv_msg m;

  if (len > GV_CHAN_HDR && msg[0] == GV_CHAN_LINK) {
    if (gv_msg_decode(&m, msg + GV_CHAN_HDR, len - GV_CHAN_HDR, &pol, NULL) ==
        0)
      f->pinged |= m.type == GV_MSG_PING;
    gv_msg_clear(&m);
  } else if (len > GV_CHAN_HDR && msg[0] == GV_CHAN_RELAY) {
    on_relay(f, msg + GV_CHAN_HDR, len - GV_CHAN_HDR);
  }
  return 0;
}

/* Reads once, waiting at most until deadline. 1: bytes fed; 0: end of
 * stream; -1: error or the deadline passed. */
static int pump(int fd, gv_link *l, int64_t deadline, forge *f) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  uint8_t buf[65536];
  int64_t left = deadline - mono_ms();
  ssize_t r;

  if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
    return -1;
  r = recv(fd, buf, sizeof(buf), 0);
  if (r == 0)
    return 0;
  if (r < 0)
    return errno == ECONNRESET ? 0 : -1;
  if (gv_link_recv(l, buf, (size_t)r, on_msg, f) < 0)
    return -1;
  return 1;
}

/* Sends one DATA to `to` on l, sealed with team; alter flips a byte of the
 * box after sealing. */
static int send_data(forge *f, gv_link *l, const char *name,
                     const gv_rw_team *team, const char *to, const char *text,
                     bool alter) {
  static uint8_t pkt[GV_CHAN_HDR + 4096];
  uint8_t body[1024], rnd[GV_RW_ID_BYTES], nonce[GV_RW_NONCE_BYTES];
  char hex[2 * GV_RW_ID_BYTES + 1];
  gv_rw_body m = {.kind = GV_RW_DATA};
  gv_rw_route r = {0};
  gv_rw_boxkey k;
  size_t blen, slen, plen;
  int rc;

  m.u.data.ttl_ms = 60000;
  m.u.data.seq = 1;
  m.u.data.from = (gv_rw_str){FROM, strlen(FROM)};
  m.u.data.to = (gv_rw_str){to, strlen(to)};
  m.u.data.thread = (gv_rw_str){"", 0};
  m.u.data.payload = (const uint8_t *)text;
  m.u.data.payload_len = strlen(text);
  memcpy(r.dst, f->dst, GV_ID_BYTES);
  memcpy(r.src, f->self.pk, GV_ID_BYTES);
  do
    randombytes_buf(rnd, sizeof(rnd));
  while (gv_rw_id_random(r.id, rnd) < 0);
  randombytes_buf(nonce, sizeof(nonce));
  if ((rc = gv_rw_body_encode(&m, body, sizeof(body), &blen, NULL)) < 0 ||
      (rc = gv_rw_peer_key(&f->self, f->dst, &k, NULL)) < 0)
    return rc;
  slen = gv_rw_sealed_size(blen);
  rc = gv_rw_seal(&k, team, nonce, &r, GV_RW_DATA, body, blen,
                  pkt + GV_CHAN_HDR + GV_RW_ROUTE_HDR,
                  sizeof(pkt) - GV_CHAN_HDR - GV_RW_ROUTE_HDR, NULL);
  gv_rw_peer_key_wipe(&k);
  if (rc < 0)
    return rc;
  if (alter) /* a byte inside the box, past the nonce */
    pkt[GV_CHAN_HDR + GV_RW_ROUTE_HDR + GV_RW_NONCE_BYTES + 20] ^= 0x01;
  r.sealed = pkt + GV_CHAN_HDR + GV_RW_ROUTE_HDR;
  r.sealed_len = slen;
  if ((rc = gv_rw_route_encode(&r, pkt + GV_CHAN_HDR, sizeof(pkt) - GV_CHAN_HDR,
                               &plen, NULL)) < 0)
    return rc;
  pkt[0] = GV_CHAN_RELAY;
  if ((rc = gv_link_send(l, pkt, GV_CHAN_HDR + plen)) < 0)
    return rc;
  sodium_bin2hex(hex, sizeof(hex), r.id, GV_RW_ID_BYTES);
  printf("sent %s %s\n", name, hex);
  return 0;
}

static void made_up_team(gv_rw_team *t) {
  uint8_t T[GV_RW_KEY_BYTES];

  randombytes_buf(T, sizeof(T));
  gv_rw_team_keys(T, t);
  sodium_memzero(T, sizeof(T));
}

int main(int argc, char **argv) {
  struct sockaddr_in sin = {.sin_family = AF_INET};
  uint8_t T[GV_RW_KEY_BYTES], inviter[GV_ID_BYTES], plain[1024];
  char host[64], shrt[GV_ID_SHORT_LEN + 1], *colon, *json = NULL;
  gv_rw_team wrong;
  gv_link *l = NULL;
  gv_msg hello;
  size_t jlen;
  int64_t deadline;
  int fd = -1, rc = 2;
  forge f;

  memset(&f, 0, sizeof(f));
  if (argc < 4 || argc > 5 || strlen(argv[1]) >= sizeof(host) ||
      (colon = strrchr(strcpy(host, argv[1]), ':')) == NULL ||
      gv_id_from_hex(f.dst, argv[2], strlen(argv[2])) < 0 ||
      gv_rw_agent_check(argv[3], strlen(argv[3])) < 0) {
    fprintf(stderr, "usage: relay_forge HOST:PORT DST TO [TOKEN]\n");
    return 2;
  }
  *colon = '\0';
  sin.sin_port = htons((uint16_t)atoi(colon + 1));
  if (sodium_init() < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
      gv_id_generate(&f.self) < 0)
    return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  made_up_team(&wrong);
  if (argc == 5) {
    if (gv_rw_token_decode(argv[4], strlen(argv[4]), T, inviter, NULL) < 0) {
      fprintf(stderr, "relay_forge: not a join token\n");
      goto out;
    }
    gv_rw_team_keys(T, &f.team);
    f.have_token = true;
  } else {
    made_up_team(&f.team);
  }
  memset(&hello, 0, sizeof(hello));
  hello.type = GV_MSG_HELLO;
  hello.ts = (int64_t)time(NULL) * 1000;
  snprintf(hello.u.hello.agent, sizeof(hello.u.hello.agent), "relay_forge");
  if (gv_msg_encode_link(&hello, &json, &jlen) < 0 ||
      jlen + GV_CHAN_HDR > sizeof(plain))
    goto out;
  plain[0] = GV_CHAN_LINK;
  memcpy(plain + GV_CHAN_HDR, json, jlen);

  rc = 1;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      gv_link_new(&l, &f.self, GV_HS_INITIATOR, NULL) < 0) {
    perror("relay_forge: connect");
    goto out;
  }
  /* The handshake and the first PING, bounded by the node's 10 s. */
  deadline = mono_ms() + 10000;
  while (gv_link_peer_id(l) == NULL)
    if (flush(fd, l) < 0 || pump(fd, l, deadline, &f) <= 0) {
      fprintf(stderr, "relay_forge: handshake failed\n");
      goto out;
    }
  gv_id_to_short(gv_link_peer_id(l), shrt);
  printf("open %s\n", shrt);
  if (gv_link_send(l, plain, jlen + GV_CHAN_HDR) < 0)
    goto out;
  while (!f.pinged)
    if (flush(fd, l) < 0 || pump(fd, l, deadline, &f) <= 0) {
      fprintf(stderr, "relay_forge: no PING after our HELLO\n");
      goto out;
    }
  if (send_data(&f, l, "wrong_team", &wrong, argv[3], "forged: wrong team",
                false) < 0 ||
      send_data(&f, l, "altered", &f.team, argv[3], "forged: altered", true) <
          0 ||
      (f.have_token &&
       send_data(&f, l, "control", &f.team, argv[3], "control", false) < 0) ||
      flush(fd, l) < 0) {
    fprintf(stderr, "relay_forge: sending failed\n");
    goto out;
  }
  deadline = mono_ms() + READ_MS;
  while (pump(fd, l, deadline, &f) == 1)
    if (flush(fd, l) < 0) /* e.g. our PONG-less link's answers */
      break;
  if (gv_link_close(l, NULL, 0) == 0)
    flush(fd, l);
  printf("done\n");
  rc = 0;
out:
  if (fd >= 0)
    close(fd);
  gv_link_free(l);
  free(json);
  sodium_memzero(T, sizeof(T));
  gv_rw_team_keys_wipe(&f.team);
  gv_rw_team_keys_wipe(&wrong);
  gv_id_wipe(&f.self);
  return rc;
}

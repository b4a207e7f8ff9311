/* link_probe: says goodbye to a node and watches how the node ends the link,
 * from outside, for tests/integration/test_adapter.sh.
 *
 *   link_probe HOST:PORT [WAIT_MS [keep]]
 *
 * Dials HOST:PORT (IPv4), completes the handshake of PROTOCOL.md §4 as
 * initiator with a throw-away identity, sends its HELLO and waits (10 s at
 * most) for the node's PING, which the node sends once the link is READY
 * (§5.2). Then it sends a FINAL frame whose plaintext is 0x00 || GOODBYE
 * (§5.1), and reads until the node closes the TCP connection or WAIT_MS
 * (default 5000) pass. After its FINAL the probe half-closes (as a gv_conn
 * does); with "keep" it leaves its sending side open, so only the node can
 * end the connection. Prints one line:
 *
 *   final=0|1 eof=0|1 clean=0|1 after_ms=N
 *
 * final: the node's FINAL arrived; eof: the node closed the connection;
 * clean: it closed after its FINAL with no bytes left over (gv_link_eof);
 * after_ms: from our FINAL to the end (or to WAIT_MS). Exit status 0 only
 * when clean, 1 otherwise, 2 on usage, a failed handshake or no PING. Blocking
 * sockets and poll(): the link itself is sans-I/O (proto/link.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "link.h"
#include "msg.h"

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

/* A message from the node: notes a PING on the link channel. */
static int on_msg(void *ctx, const uint8_t *msg, size_t len) {
  gv_msg_policy pol = {0};
  int *pinged = ctx;
  gv_msg m;

  if (len > GV_CHAN_HDR && msg[0] == GV_CHAN_LINK) {
    if (gv_msg_decode(&m, msg + GV_CHAN_HDR, len - GV_CHAN_HDR, &pol, NULL) ==
        0)
      *pinged |= m.type == GV_MSG_PING;
    gv_msg_clear(&m);
  }
  return 0;
}

/* Reads once, waiting at most until deadline. 1: bytes fed; 0: end of
 * stream; -1: error or the deadline passed. */
static int pump(int fd, gv_link *l, int64_t deadline, int *pinged) {
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
  if (gv_link_recv(l, buf, (size_t)r, on_msg, pinged) < 0)
    return -1;
  return 1;
}

int main(int argc, char **argv) {
  struct sockaddr_in sin = {.sin_family = AF_INET};
  int64_t wait_ms = argc > 2 ? atoll(argv[2]) : 5000, t0, deadline;
  int keep = argc > 3 && strcmp(argv[3], "keep") == 0;
  char host[64], *colon;
  gv_identity id;
  gv_link *l = NULL;
  gv_msg bye, hello;
  char *json = NULL, *hjson = NULL;
  size_t jlen, hlen;
  uint8_t *plain = NULL, *hplain = NULL;
  int fd = -1, rc = 2, r = 1, eof = 0, clean = 0, pinged = 0;

  if (argc < 2 || strlen(argv[1]) >= sizeof(host) ||
      (colon = strrchr(strcpy(host, argv[1]), ':')) == NULL) {
    fprintf(stderr, "usage: link_probe HOST:PORT [WAIT_MS]\n");
    return 2;
  }
  *colon = '\0';
  sin.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || gv_id_generate(&id) < 0)
    return 2;
  memset(&bye, 0, sizeof(bye));
  bye.type = GV_MSG_GOODBYE;
  snprintf(bye.u.reason, sizeof(bye.u.reason), "probe");
  if (gv_msg_encode_link(&bye, &json, &jlen) < 0 ||
      (plain = malloc(jlen + GV_CHAN_HDR)) == NULL)
    goto out;
  plain[0] = GV_CHAN_LINK;
  memcpy(plain + GV_CHAN_HDR, json, jlen);
  memset(&hello, 0, sizeof(hello));
  hello.type = GV_MSG_HELLO;
  hello.ts = (int64_t)time(NULL) * 1000;
  snprintf(hello.u.hello.agent, sizeof(hello.u.hello.agent), "link_probe");
  if (gv_msg_encode_link(&hello, &hjson, &hlen) < 0 ||
      (hplain = malloc(hlen + GV_CHAN_HDR)) == NULL)
    goto out;
  hplain[0] = GV_CHAN_LINK;
  memcpy(hplain + GV_CHAN_HDR, hjson, hlen);

  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
      gv_link_new(&l, &id, GV_HS_INITIATOR, NULL) < 0) {
    perror("link_probe: connect");
    goto out;
  }
  /* The handshake, bounded by the node's own 10 s deadline. */
  deadline = mono_ms() + 10000;
  while (gv_link_peer_id(l) == NULL)
    if (flush(fd, l) < 0 || pump(fd, l, deadline, &pinged) <= 0) {
      fprintf(stderr, "link_probe: handshake failed\n");
      goto out;
    }
  if (gv_link_send(l, hplain, hlen + GV_CHAN_HDR) < 0)
    goto out;
  while (!pinged)
    if (flush(fd, l) < 0 || pump(fd, l, deadline, &pinged) <= 0) {
      fprintf(stderr, "link_probe: no PING after our HELLO\n");
      goto out;
    }
  if (gv_link_close(l, plain, jlen + GV_CHAN_HDR) < 0 || flush(fd, l) < 0)
    goto out;
  if (!keep)
    shutdown(fd, SHUT_WR);
  t0 = mono_ms();
  deadline = t0 + wait_ms;
  while ((r = pump(fd, l, deadline, &pinged)) == 1)
    ;
  eof = r == 0;
  clean = eof && gv_link_eof(l) == 0;
  printf("final=%d eof=%d clean=%d after_ms=%lld\n", gv_link_peer_closed(l),
         eof, clean, (long long)(mono_ms() - t0));
  rc = clean ? 0 : 1;
out:
  if (fd >= 0)
    close(fd);
  gv_link_free(l);
  free(json);
  free(plain);
  free(hjson);
  free(hplain);
  gv_id_wipe(&id);
  return rc;
}

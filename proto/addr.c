#include "addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static int parse_port(const char *s, size_t len, uint16_t *port) {
  unsigned v = 0;

  if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
    return GV_EFIELD;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return GV_EFIELD;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v == 0 || v > 65535)
    return GV_EFIELD;
  *port = (uint16_t)v;
  return 0;
}

int gv_addr_parse(gv_addr *a, const char *text, size_t len) {
  char host[64];
  const char *colon;
  size_t hlen;

  memset(a, 0, sizeof(*a));
  if (len == 0 || len >= GV_ADDR_TEXT_MAX || memchr(text, '\0', len))
    return GV_EFIELD;
  if (text[0] == '[') {
    const char *close = memchr(text, ']', len);
    if (close == NULL || close + 1 >= text + len || close[1] != ':')
      return GV_EFIELD;
    hlen = (size_t)(close - text - 1);
    memcpy(host, text + 1, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET6, host, a->ip) != 1)
      return GV_EFIELD;
    a->family = 6;
    colon = close + 1;
  } else {
    colon = memchr(text, ':', len);
    if (colon == NULL)
      return GV_EFIELD;
    hlen = (size_t)(colon - text);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, a->ip) != 1)
      return GV_EFIELD;
    a->family = 4;
  }
  return parse_port(colon + 1, (size_t)(text + len - colon - 1), &a->port);
}

void gv_addr_format(const gv_addr *a, char out[GV_ADDR_TEXT_MAX]) {
  char host[INET6_ADDRSTRLEN];

  if (a->family == 6) {
    inet_ntop(AF_INET6, a->ip, host, sizeof(host));
    snprintf(out, GV_ADDR_TEXT_MAX, "[%s]:%u", host, (unsigned)a->port);
  } else {
    inet_ntop(AF_INET, a->ip, host, sizeof(host));
    snprintf(out, GV_ADDR_TEXT_MAX, "%s:%u", host, (unsigned)a->port);
  }
}

int gv_addr_equal(const gv_addr *a, const gv_addr *b) {
  return a->family == b->family && a->port == b->port &&
         memcmp(a->ip, b->ip, a->family == 6 ? 16 : 4) == 0;
}

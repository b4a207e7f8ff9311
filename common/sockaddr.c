#include "sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "err.h"

void gv_addr_to_sockaddr(const gv_addr *a, struct sockaddr_storage *ss,
                         socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, a->ip, 16);
    s6->sin6_port = htons(a->port);
    if (len != NULL)
      *len = sizeof(*s6);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
    if (len != NULL)
      *len = sizeof(*s4);
  }
}

int gv_addr_from_sockaddr(gv_addr *a, const struct sockaddr *sa) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

  memset(a, 0, sizeof(*a));
  if (sa == NULL)
    return GV_EINVAL;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    a->family = 4;
    memcpy(a->ip, &s4->sin_addr, 4);
    a->port = ntohs(s4->sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *ip = s6->sin6_addr.s6_addr;
    if (memcmp(ip, mapped, sizeof(mapped)) == 0) {
      a->family = 4;
      memcpy(a->ip, ip + 12, 4);
    } else {
      a->family = 6;
      memcpy(a->ip, ip, 16);
    }
    a->port = ntohs(s6->sin6_port);
    return 0;
  }
  return GV_EINVAL;
}

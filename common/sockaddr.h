/* The one conversion between a gv_addr (proto/addr.h) and a socket
 * address. Adapters only: the pure cores never see a struct sockaddr.
 *
 * Lifetime: plain values; nothing is kept.
 */
#ifndef GV_SOCKADDR_H
#define GV_SOCKADDR_H

#include <sys/socket.h>

#include "addr.h"

/* Fills *ss (zeroed first) with a's family, IP and port; *len, if not NULL,
 * gets the size of the filled sockaddr. Family 6 gives AF_INET6, anything
 * else AF_INET. */
void gv_addr_to_sockaddr(const gv_addr *a, struct sockaddr_storage *ss,
                         socklen_t *len);

/* Fills *a from an AF_INET or AF_INET6 socket address; an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) becomes family 4. 0, or GV_EINVAL for NULL or
 * any other family (*a is then zeroed). */
int gv_addr_from_sockaddr(gv_addr *a, const struct sockaddr *sa);

#endif

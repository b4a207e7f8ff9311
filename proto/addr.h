/* Node addresses as they travel in messages: "a.b.c.d:port" or
 * "[ipv6]:port", numeric only (PROTOCOL.md §6.2). */
#ifndef GV_ADDR_H
#define GV_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define GV_ADDR_TEXT_MAX 56 /* "[" INET6_ADDRSTRLEN "]:65535", plus NUL */

typedef struct gv_addr {
  uint8_t family; /* 4 or 6 */
  uint8_t ip[16]; /* IPv4 in the first 4 bytes */
  uint16_t port;  /* host order, 1..65535 */
} gv_addr;

/* Parses text[0..len). Returns 0 or GV_EFIELD. */
int gv_addr_parse(gv_addr *a, const char *text, size_t len);

/* Writes the canonical text form (NUL-terminated) into out. */
void gv_addr_format(const gv_addr *a, char out[GV_ADDR_TEXT_MAX]);

int gv_addr_equal(const gv_addr *a, const gv_addr *b);

#endif

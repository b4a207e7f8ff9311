/* Big-endian integers on the wire: every field of our binary formats
 * (PROTOCOL.md §5.3, RELAY.md §6) is big-endian. p points at 4 bytes the
 * caller has bounded; no alignment is assumed. */
#ifndef GV_BE_H
#define GV_BE_H

#include <stdint.h>

static inline void gv_be_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline uint32_t gv_be_get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

#endif

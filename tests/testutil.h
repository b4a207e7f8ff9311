/* Shared helpers for the libcheck test programs. */
#ifndef GV_TESTUTIL_H
#define GV_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "link.h"

/* 2026-01-01T00:00:00Z, the clock of the worked examples. */
#define T0_MS 1767225600000LL

/* Identity from a seed of 32 bytes all equal to b. */
void tu_identity(gv_identity *id, uint8_t b);

/* Runs suite s, prints libcheck's summary, returns the process exit code. */
int tu_run(Suite *s);

/* Moves all pending output of `from` into `to`, chunk bytes at a time
 * (0: all at once). Returns gv_link_recv()'s first error, or 0. */
int tu_pump(gv_link *from, gv_link *to, size_t chunk, gv_link_msg_cb cb,
            void *ctx);

/* A message sink for tu_pump: appends copies to a list. */
typedef struct tu_inbox {
  size_t n;
  size_t total;
  uint8_t *last;
  size_t last_len;
} tu_inbox;
int tu_inbox_cb(void *ctx, const uint8_t *msg, size_t len);
void tu_inbox_free(tu_inbox *in);

/* Creates a linked initiator/responder pair and completes the handshake. */
void tu_link_pair(gv_link **ini, gv_link **res, const gv_identity *a,
                  const gv_identity *b);

#endif

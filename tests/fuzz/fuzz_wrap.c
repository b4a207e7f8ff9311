/* Fuzz target: the terminal wrapper's core (node/wrap.c), driven by a
 * random interleaving of agent output, keystrokes, messages, notices,
 * ticks and echoes of what it injected.
 *
 * Invariants checked on every action:
 *  - no SEND before the agent wrote anything but echoes of injections
 *    (wrapped at any width, with line breaks between the pieces);
 *  - an injected line holds no newline and no "->relay:", and is at most
 *    GV_WRAP_INJECT_MAX bytes plus the paste brackets;
 *  - every other PTY action is the person's keystrokes: at most
 *    GV_WRAP_HOLD_MAX bytes;
 *  - a SEND has a recipient, a non-empty valid UTF-8 body, a 32-hex key;
 *  - ACK and READ name ids that were pushed; READ only after its ACK;
 *  - the queue never holds more than GV_WRAP_QUEUE_MAX messages;
 *  - no paste starts while the adapter says bytes wait (gv_wrap_blocked);
 *  - once the terminal is gone (gv_wrap_gone), only SENDs come out.
 * GV_DEBUG is on: the core checks its own invariants after every event. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ECHO_MAX (256 * 1024)
#define IDS_MAX 4096

/* Keystrokes come from this alphabet: no 'R', so the person's bytes can
 * never pass for an injection ("Relay ..."). */
static const char keys[] = "abcxyz ->:\r\n\x03\x15\x7f\x08\x0c\t\x1b[AO~0125";

typedef struct fz {
  gv_wrap *w;
  bool raw; /* the agent wrote something of its own */
  uint8_t *echo;
  size_t echo_len;
  uint8_t acked[IDS_MAX]; /* per id number: 0 new, 1 pushed, 2 acked */
  unsigned next_id;
  bool blocked, gone;
} fz;

static bool utf8_ok(const char *s) {
  const uint8_t *u = (const uint8_t *)s;
  while (*u) {
    size_t n = *u < 0x80             ? 1
               : (*u & 0xe0) == 0xc0 ? 2
               : (*u & 0xf0) == 0xe0 ? 3
                                     : 4;
    for (size_t i = 1; i < n; i++)
      if ((u[i] & 0xc0) != 0x80)
        return false;
    u += n;
  }
  return true;
}

static unsigned id_num(const char *id) {
  FZ_CHECK(id != NULL && strlen(id) == GV_WRAP_ID_HEX);
  return (unsigned)strtoul(id + 24, NULL, 16);
}

static void drain(fz *f) {
  const gv_wrap_act *a;

  while ((a = gv_wrap_next(f->w)) != NULL) {
    FZ_CHECK(!f->gone || a->type == GV_WRAP_SEND);
    switch (a->type) {
    case GV_WRAP_PTY: {
      const uint8_t *b = a->bytes;
      size_t n = a->len;
      bool inj = (n >= 6 && memcmp(b, "Relay ", 6) == 0) ||
                 (n >= 12 && memcmp(b, "\x1b[200~Relay ", 12) == 0);
      if (inj) {
        FZ_CHECK(!f->blocked);
        FZ_CHECK(n <= GV_WRAP_INJECT_MAX + 12);
        FZ_CHECK(memchr(b, '\n', n) == NULL && memchr(b, '\r', n) == NULL);
        FZ_CHECK(memmem(b, n, "->relay:", 8) == NULL);
      } else {
        FZ_CHECK(n <= GV_WRAP_HOLD_MAX);
      }
      if ((inj || (n == 1 && b[0] == '\r')) && f->echo_len + n <= ECHO_MAX) {
        memcpy(f->echo + f->echo_len, b, n);
        f->echo_len += n;
      }
      break;
    }
    case GV_WRAP_SEND:
      FZ_CHECK(f->raw);
      FZ_CHECK(a->to[0] != '\0' && a->body[0] != '\0');
      FZ_CHECK(utf8_ok(a->body));
      FZ_CHECK(strlen(a->key) == 32);
      FZ_CHECK(strlen(a->thread) <= 64);
      break;
    case GV_WRAP_ACK: {
      unsigned k = id_num(a->id);
      FZ_CHECK(k < f->next_id && f->acked[k] >= 1);
      f->acked[k] = 2;
      break;
    }
    case GV_WRAP_READ: FZ_CHECK(f->acked[id_num(a->id)] == 2); break;
    default: FZ_CHECK(0);
    }
  }
  FZ_CHECK(gv_wrap_queued(f->w) <= GV_WRAP_QUEUE_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *decor[] = {"\x1b[?2004h", "\x1b[?2004l",  "\x1b[1;31m",
                                "\x1b[0m",     "\x1b]0;t\x07", "\x1b[2K",
                                "\r",          "\x1b[5;1H"};
  uint8_t session[16] = {0};
  gv_wrap_cfg cfg;
  int64_t now = 0;
  size_t i = 1;
  fz f;

  if (size < 1)
    return 0;
  memset(&f, 0, sizeof(f));
  gv_wrap_cfg_default(&cfg);
  cfg.block_lines = 1 + data[0] % 8;
  cfg.block_bytes = 16 + (size_t)data[0] * 4;
  FZ_CHECK(gv_wrap_new(&f.w, &cfg, session) == 0);
  f.echo = malloc(ECHO_MAX);
  FZ_CHECK(f.echo != NULL);
  while (i < size) {
    uint8_t op = data[i++], arg = op >> 3;
    size_t len = i < size ? data[i++] : 0;
    const uint8_t *chunk = data + i;
    char text[256];

    if (len > size - i)
      len = size - i;
    i += len;
    memcpy(text, chunk, len);
    text[len] = '\0';
    switch (op & 7) {
    case 0:
      f.raw = true;
      gv_wrap_output(f.w, chunk, len, now);
      break;
    case 1: {
      uint8_t k[256];
      for (size_t j = 0; j < len; j++)
        k[j] = (uint8_t)keys[chunk[j] % (sizeof(keys) - 1)];
      gv_wrap_input(f.w, k, len, now);
      break;
    }
    case 2:
    case 6: {
      /* 6 pushes an id again (a re-push after a reconnect). */
      unsigned k = (op & 7) == 6 && f.next_id > 0
                       ? f.next_id - 1 - arg % f.next_id
                       : f.next_id;
      char id[GV_WRAP_ID_HEX + 1];
      int rc;
      if (k >= IDS_MAX)
        break;
      snprintf(id, sizeof(id), "%024x%08x", 0xabcu, k);
      rc = gv_wrap_message(f.w, id, arg & 1 ? text : "web:al@x",
                           arg & 2 ? "t" : "", text, now);
      FZ_CHECK(rc == 0 || rc == GV_EBUSY || (f.gone && rc == GV_ESTATE));
      if (rc == 0 && f.acked[k] == 0)
        f.acked[k] = 1;
      if (k == f.next_id)
        f.next_id++;
      break;
    }
    case 3: gv_wrap_notice(f.w, text, now); break;
    case 4:
      now += (int64_t)len * 40 + arg * 100;
      gv_wrap_tick(f.w, now);
      break;
    case 5: {
      /* The agent echoes what was typed into it, wrapped at some width. */
      size_t width = 1 + arg;
      for (size_t o = 0; o < f.echo_len; o += width) {
        size_t n = f.echo_len - o < width ? f.echo_len - o : width;
        gv_wrap_output(f.w, f.echo + o, n, now);
        if (len & 1)
          gv_wrap_output(f.w, (const uint8_t *)"\r\n", 2, now);
      }
      f.echo_len = 0;
      break;
    }
    case 7: {
      const char *d = decor[arg % 8];
      now += (int64_t)len;
      if (arg >= 28) { /* the adapter's queue, or the end of the terminal */
        if (arg == 31) {
          f.gone = true;
          gv_wrap_gone(f.w, now);
        } else {
          f.blocked = arg & 1;
          gv_wrap_blocked(f.w, f.blocked, now);
        }
        break;
      }
      gv_wrap_output(f.w, (const uint8_t *)d, strlen(d), now);
      break;
    }
    }
    drain(&f);
    FZ_CHECK(gv_wrap_deadline(f.w) == -1 || gv_wrap_deadline(f.w) >= 0);
  }
  gv_wrap_free(f.w);
  free(f.echo);
  return 0;
}

/* The terminal wrapper's pure core (wrap.h; the rules in
 * docs/AGENTS.md §11).
 *
 * The agent's output goes through two machines, one byte at a time:
 *
 *  1. The escape scanner strips ANSI sequences (ECMA-48):
 *
 *             ESC                '['              final 0x40-0x7E
 *     TEXT -------> ESC ----------------> CSI ----------------------> TEXT
 *       ^            |  ']'                                 (csi_final)
 *       |            +-----> OSC --BEL or ESC '\'--------------------> TEXT
 *       |            |  'P' 'X' '^' '_'
 *       |            +-----> STR (DCS SOS PM APC) --ESC '\'----------> TEXT
 *       |            |  0x20-0x2F
 *       |            +-----> INTER --0x30-0x7E----------------------> TEXT
 *       +------------+  any other byte: a lone ESC x (esc_byte)
 *
 *     CAN/SUB abort a sequence; other C0 controls inside CSI or INTER are
 *     executed as in TEXT (that is what terminals do).
 *
 *  2. The line builder (text_byte, end_line) keeps the current line: "\n"
 *     and cursor moves that change row (CSI A B E F H f d, ESC D E M,
 *     ESC 8) end it; a lone "\r" makes the next text start it over (a
 *     spinner's redraw); backspace deletes its last character; CSI n C
 *     (cursor forward) writes n spaces; tab is a space; other C0 controls
 *     are dropped. CSI ?2004h / ?2004l switch bracketed paste on and off.
 *
 * Each finished line goes to the marker parser (process_line):
 *
 *     NORMAL --``` or ~~~ --> FENCE --the same fence--> NORMAL
 *     NORMAL --"->relay:TO <<<"--> BLOCK --">>>"--> NORMAL (SEND)
 *                                    \--past block_lines or block_bytes,
 *                                       or an injection--> NORMAL (notice)
 *     NORMAL --"->relay:TO message"--> SEND (or a notice if malformed)
 *
 * The person's keystrokes go through a third, smaller scanner
 * (person_byte) that only tracks whether their input line is empty; time
 * (person_time) ends a sequence left open GV_WRAP_ESC_MS and forgets an
 * unknown line after cfg.unknown_ms.
 *
 * Injection (try_inject, finish_inject, gv_wrap_gone):
 *
 *   IDLE --paste (not blocked)--> PASTED --enter_ms--> IDLE
 *     |                              |   (the Enter, the ACK, the held
 *     |                              |    keystrokes)
 *     +----------gv_wrap_gone--------+--> GONE (the paste abandoned: no
 *                                          Enter, no ACK; only SENDs)
 */
#include "wrap.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "invariant.h"
#include "oom.h"
#include "relayaddr.h"

#define MARKER "->relay:"
#define MARKER_LEN 8
#define THREAD_MAX 64
#define CSI_PARAM_MAX 32
#define CSI_FORWARD_MAX 256 /* spaces one CSI n C may write */
#define PASTE_ON "\x1b[200~"
#define PASTE_OFF "\x1b[201~"
#define PASTE_LEN 6
#define MSG_PREFIX "Relay message from "
#define NOTICE_PREFIX "Relay notice: "
/* Room kept for the "... [cut: N bytes ...]" tail of a cut body. */
#define CUT_TAIL_MAX 96

typedef struct wbuf {
  char *p;
  size_t len, cap;
} wbuf;

typedef enum esc_state {
  ESC_NONE,
  ESC_ESC,
  ESC_INTER,
  ESC_CSI,
  ESC_OSC,
  ESC_OSC_ESC,
  ESC_STR,
  ESC_STR_ESC,
} esc_state;

typedef enum in_state { IN_TEXT, IN_ESC, IN_CSI, IN_SS3 } in_state;

/* One entry of the incoming queue: a message (its line formatted) or a
 * notice (its raw text: the count of dropped notices is added when it is
 * injected). */
typedef struct item {
  bool notice;
  char id[GV_WRAP_ID_HEX + 1];
  uint8_t key[32]; /* the id in binary, zero-padded: the seen map's key */
  char *text;
  size_t len;
} item;

/* An id seen this run: a slot of the ring that forgets the oldest. */
typedef struct seen {
  uint8_t key[32];
  bool acked;
} seen;

typedef struct wact {
  gv_wrap_act a;
  char *buf; /* owns what a points into */
} wact;

struct gv_wrap {
  gv_wrap_cfg cfg;
  uint8_t session[16];
  uint64_t turn; /* Enters written */
  bool started;
  int64_t now;

  /* Output: the escape scanner and the line builder. */
  esc_state esc;
  char csi[CSI_PARAM_MAX];
  size_t csi_len; /* may exceed CSI_PARAM_MAX: then the params are unknown */
  bool cr;        /* a lone "\r" came: the next text starts the line over */
  wbuf line;
  bool line_cut; /* bytes past the line's cap were dropped */
  bool paste_on; /* the agent enabled bracketed paste */
  char fence;    /* 0, '`' or '~': inside a fenced code block */
  bool block;
  size_t block_indent; /* spaces before the block's marker */
  char block_to[GV_RADDR_TEXT_MAX + 1];
  char block_thread[THREAD_MAX + 1];
  wbuf body;
  size_t body_lines;
  int64_t quiet_from; /* the last output, Enter, or the first event */

  /* The person's input line. */
  in_state in;
  char in_csi[8];
  size_t in_csi_len;
  bool in_paste;   /* inside the person's own bracketed paste */
  size_t in_chars; /* characters typed on the line */
  bool in_unknown; /* an escape sequence or a control made it unknowable */
  bool blocked; /* the adapter's bytes for the agent wait (gv_wrap_blocked) */
  bool gone;    /* the agent's terminal is gone (gv_wrap_gone) */
  bool typed;
  int64_t last_typed;

  /* Injection. */
  bool pasted; /* the paste is written, its Enter is not */
  int64_t paste_at;
  item cur;
  wbuf held;                          /* keystrokes that came while pasted */
  char (*unread)[GV_WRAP_ID_HEX + 1]; /* acked, waiting for READ */
  size_t n_unread;
  int64_t last_enter;

  /* The queue: a ring of messages and notices, in order. */
  item *q;
  size_t q_head, q_n, q_cap;
  size_t q_msgs, q_notices, notices_dropped;

  /* The ids seen: a map to their slots in a ring, oldest forgotten. */
  gv_idmap seen_map;
  seen *seen;
  size_t seen_n, seen_next;

  wact *acts;
  size_t a_n, a_head, a_cap;
};

/* ---- small helpers ---- */

static void wbuf_put(wbuf *b, const void *s, size_t n) {
  if (n == 0)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
      cap *= 2;
    b->p = gv__xrealloc(b->p, cap);
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void wbuf_putc(wbuf *b, char c) { wbuf_put(b, &c, 1); }

static void wbuf_puts(wbuf *b, const char *s) { wbuf_put(b, s, strlen(s)); }

static void wbuf_free(wbuf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

static bool starts(const char *s, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  return n >= k && memcmp(s, prefix, k) == 0;
}

/* Whether s[0..n) is n hex digits and nothing else (s may go on past n);
 * bin (n / 2 bytes) gets their value. */
static bool hex_bin(uint8_t *bin, const char *s, size_t n) {
  size_t got = 0;
  const char *end = NULL;

  return n % 2 == 0 &&
         sodium_hex2bin(bin, n / 2, s, n, NULL, &got, &end) == 0 &&
         got == n / 2 && end == s + n;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if there is none
 * (overlong forms, surrogates and code points past U+10FFFF are invalid).
 * *cp gets the code point. */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
  uint32_t c = s[0], min;
  size_t len;

  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, c &= 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, c &= 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, c &= 0x07, min = 0x10000;
  else
    return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    c = c << 6 | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return len;
}

/* Appends s[0..n) to out made safe to type into a terminal and impossible
 * to read back as a marker: C0 and C1 controls and DEL become spaces,
 * invalid UTF-8 bytes '?', "->relay:" becomes "->relay\:". Stops before
 * out would pass `limit` bytes; returns the bytes of s consumed. */
static size_t sanitize(wbuf *out, const char *s, size_t n, size_t limit) {
  size_t i = 0;

  while (i < n) {
    const uint8_t *u = (const uint8_t *)s + i;
    uint32_t cp;
    size_t k;

    if (starts(s + i, n - i, MARKER)) {
      if (out->len + MARKER_LEN + 1 > limit)
        break;
      wbuf_put(out, "->relay\\:", MARKER_LEN + 1);
      i += MARKER_LEN;
      continue;
    }
    k = utf8_seq(u, n - i, &cp);
    if (out->len + (k ? k : 1) > limit)
      break;
    if (k == 0)
      wbuf_putc(out, '?'), k = 1;
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
      wbuf_putc(out, ' ');
    else
      wbuf_put(out, u, k);
    i += k;
  }
  return i;
}

/* Appends s[0..n) sanitized, cut to fit `limit` with a tail that says how
 * many bytes were left out and where to find them. */
static void put_capped(wbuf *out, const char *s, size_t n, size_t limit,
                       const char *where) {
  size_t mark = out->len, used;
  char tail[CUT_TAIL_MAX];

  if (limit < mark + CUT_TAIL_MAX)
    limit = mark + CUT_TAIL_MAX; /* never below the tail's room */
  if (sanitize(out, s, n, limit) == n)
    return;
  /* Too long: again, leaving room for the tail that says so. */
  out->len = mark;
  used = sanitize(out, s, n, limit - CUT_TAIL_MAX);
  snprintf(tail, sizeof(tail), "\xe2\x80\xa6 [cut: %zu bytes%s%s]", n - used,
           where[0] ? "; " : "", where);
  wbuf_puts(out, tail);
}

/* ---- actions ---- */

static gv_wrap_act *push_act(gv_wrap *w, gv_wrap_act_type type, size_t size,
                             char **buf) {
  wact *a;

  if (w->a_n == w->a_cap) {
    w->a_cap = w->a_cap ? 2 * w->a_cap : 16;
    w->acts = gv__xrealloc(w->acts, w->a_cap * sizeof(*w->acts));
  }
  a = &w->acts[w->a_n++];
  memset(a, 0, sizeof(*a));
  a->a.type = type;
  a->buf = gv__xmalloc(size ? size : 1);
  *buf = a->buf;
  return &a->a;
}

static void act_pty(gv_wrap *w, const void *b, size_t n) {
  char *buf;
  gv_wrap_act *a = push_act(w, GV_WRAP_PTY, n, &buf);

  memcpy(buf, b, n);
  a->bytes = (const uint8_t *)buf;
  a->len = n;
}

static void act_id(gv_wrap *w, gv_wrap_act_type type, const char *id) {
  char *buf;
  gv_wrap_act *a = push_act(w, type, GV_WRAP_ID_HEX + 1, &buf);

  memcpy(buf, id, GV_WRAP_ID_HEX + 1);
  a->id = buf;
}

/* Frees what the caller has taken and compacts the rest. */
static void drop_taken(gv_wrap *w) {
  if (w->a_head == 0)
    return;
  for (size_t i = 0; i < w->a_head; i++)
    free(w->acts[i].buf);
  memmove(w->acts, w->acts + w->a_head,
          (w->a_n - w->a_head) * sizeof(*w->acts));
  w->a_n -= w->a_head;
  w->a_head = 0;
}

/* ---- the queue ---- */

static void q_push(gv_wrap *w, item *it) {
  assert(w->q_n < w->q_cap);
  w->q[(w->q_head + w->q_n++) % w->q_cap] = *it;
  if (it->notice)
    w->q_notices++;
  else
    w->q_msgs++;
}

static item q_pop(gv_wrap *w) {
  item it = w->q[w->q_head];

  assert(w->q_n > 0);
  w->q_head = (w->q_head + 1) % w->q_cap;
  w->q_n--;
  if (it.notice)
    w->q_notices--;
  else
    w->q_msgs--;
  return it;
}

static seen *seen_find(gv_wrap *w, const uint8_t key[32]) {
  return gv_idmap_get(&w->seen_map, key);
}

/* Remembers key (not yet seen), forgetting the oldest when the ring is
 * full. */
static void seen_add(gv_wrap *w, const uint8_t key[32]) {
  seen *s = &w->seen[w->seen_next];

  if (w->seen_n == GV_WRAP_SEEN_MAX)
    gv_idmap_del(&w->seen_map, s->key);
  else
    w->seen_n++;
  memcpy(s->key, key, sizeof(s->key));
  s->acked = false;
  if (gv_idmap_put(&w->seen_map, s->key, s) < 0)
    gv__xcheck(NULL);
  w->seen_next = (w->seen_next + 1) % GV_WRAP_SEEN_MAX;
}

/* Queues a notice's text (its first GV_WRAP_INJECT_MAX bytes: the
 * injection cuts it further), or counts it when GV_WRAP_NOTICE_MAX wait. */
static void notice_raw(gv_wrap *w, const char *text, size_t len) {
  item it;

  if (w->q_notices >= GV_WRAP_NOTICE_MAX) {
    w->notices_dropped++;
    return;
  }
  if (len > GV_WRAP_INJECT_MAX)
    len = GV_WRAP_INJECT_MAX;
  memset(&it, 0, sizeof(it));
  it.notice = true;
  it.len = len;
  it.text = gv__xmalloc(len + 1);
  memcpy(it.text, text, len);
  it.text[len] = '\0';
  q_push(w, &it);
}

static void notice(gv_wrap *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void notice(gv_wrap *w, const char *fmt, ...) {
  char text[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  notice_raw(w, text, strlen(text));
}

/* ---- outgoing: SEND ---- */

static void emit_send(gv_wrap *w, const char *to, const char *thread,
                      const char *body, size_t blen) {
  size_t tolen = strlen(to), thlen = strlen(thread), off;
  uint8_t turn[8], key[16];
  crypto_generichash_state st;
  wbuf fixed = {0};
  gv_wrap_act *a;
  char *buf;

  /* The relay takes valid UTF-8 only: invalid bytes become '?'. */
  for (size_t i = 0; i < blen;) {
    uint32_t cp;
    size_t k = utf8_seq((const uint8_t *)body + i, blen - i, &cp);

    if (k == 0)
      wbuf_putc(&fixed, '?'), k = 1;
    else
      wbuf_put(&fixed, body + i, k);
    i += k;
  }
  for (int i = 0; i < 8; i++)
    turn[i] = (uint8_t)(w->turn >> (56 - 8 * i));
  /* session || turn (8 bytes, big-endian) || to || 0 || thread || 0 ||
   * body: the NULs keep (to, thread) pairs apart. */
  crypto_generichash_init(&st, NULL, 0, sizeof(key));
  crypto_generichash_update(&st, w->session, sizeof(w->session));
  crypto_generichash_update(&st, turn, sizeof(turn));
  crypto_generichash_update(&st, (const uint8_t *)to, tolen + 1);
  crypto_generichash_update(&st, (const uint8_t *)thread, thlen + 1);
  crypto_generichash_update(&st, (const uint8_t *)fixed.p, fixed.len);
  crypto_generichash_final(&st, key, sizeof(key));

  a = push_act(w, GV_WRAP_SEND, tolen + thlen + fixed.len + 33 + 3, &buf);
  off = 0;
  a->to = memcpy(buf + off, to, tolen + 1), off += tolen + 1;
  a->thread = memcpy(buf + off, thread, thlen + 1), off += thlen + 1;
  a->body = buf + off;
  if (fixed.len)
    memcpy(buf + off, fixed.p, fixed.len);
  buf[off + fixed.len] = '\0', off += fixed.len + 1;
  a->key = sodium_bin2hex(buf + off, 33, key, sizeof(key));
  wbuf_free(&fixed);
}

/* The first bytes of what the agent wrote, for a notice: at most 64. */
#define SHOWN(n) ((int)((n) < 64 ? (n) : 64))

static void abandon_block(gv_wrap *w, const char *why) {
  notice(w,
         "your block to %s was not sent: %s; write it again and close it "
         "with a line >>>",
         w->block_to, why);
  w->block = false;
  wbuf_free(&w->body);
  w->body_lines = 0;
}

/* A "->relay:" marker's rest, s[0..n) (what follows the colon). */
static void marker(gv_wrap *w, const char *s, size_t n, size_t indent) {
  char to[GV_RADDR_TEXT_MAX + 1], thread[THREAD_MAX + 1] = "";
  size_t k = 0;
  gv_raddr addr;
  gv_why why;

  while (k < n && s[k] != ' ' && s[k] != '[')
    k++;
  if (k == 0) {
    notice(w, "a relay marker with no recipient was not sent");
    return;
  }
  if (gv_raddr_parse(&addr, s, k, &why) < 0) {
    notice(w, "not sent to \"%.*s\": %s", SHOWN(k), s, why.text);
    return;
  }
  memcpy(to, s, k);
  to[k] = '\0';
  s += k, n -= k;
  while (n > 0 && *s == ' ')
    s++, n--;
  if (starts(s, n, "[thread:")) {
    size_t t = 8;

    while (t < n && s[t] > ' ' && s[t] < 0x7f && s[t] != ']')
      t++;
    if (t == 8 || t - 8 > THREAD_MAX || t == n || s[t] != ']') {
      notice(w,
             "not sent to %s: a thread tag is [thread:T], T 1-64 printable "
             "characters without spaces",
             to);
      return;
    }
    memcpy(thread, s + 8, t - 8);
    thread[t - 8] = '\0';
    s += t + 1, n -= t + 1;
    while (n > 0 && *s == ' ')
      s++, n--;
  }
  while (n > 0 && s[n - 1] == ' ')
    n--;
  if (n == 3 && memcmp(s, "<<<", 3) == 0) {
    w->block = true;
    w->block_indent = indent;
    memcpy(w->block_to, to, sizeof(to));
    memcpy(w->block_thread, thread, sizeof(thread));
    w->body.len = 0;
    w->body_lines = 0;
    return;
  }
  if (w->line_cut) {
    notice(w,
           "not sent to %s: the line was longer than %d bytes; send long "
           "text as a block (<<< ... >>>)",
           to, GV_WRAP_LINE_MAX);
    return;
  }
  if (n == 0) {
    notice(w, "not sent to %s: the message is empty", to);
    return;
  }
  emit_send(w, to, thread, s, n);
}

static void block_line(gv_wrap *w, const char *s, size_t n) {
  size_t i = 0, e = n;
  char why[96];

  while (i < n && s[i] == ' ')
    i++;
  while (e > i && s[e - 1] == ' ')
    e--;
  if (e - i == 3 && memcmp(s + i, ">>>", 3) == 0) {
    if (w->body.len > 0)
      w->body.len--; /* the last line's "\n" */
    if (w->body.len == 0)
      notice(w, "not sent to %s: the message is empty", w->block_to);
    else
      emit_send(w, w->block_to, w->block_thread, w->body.p, w->body.len);
    w->block = false;
    wbuf_free(&w->body);
    w->body_lines = 0;
    return;
  }
  /* Body lines lose the indentation the marker had. */
  i = 0;
  while (i < w->block_indent && i < n && s[i] == ' ')
    i++;
  if (w->line_cut || w->body.len + (n - i) + 1 > w->cfg.block_bytes) {
    snprintf(why, sizeof(why), "no >>> within %zu bytes", w->cfg.block_bytes);
    abandon_block(w, why);
    return;
  }
  if (w->body_lines + 1 > w->cfg.block_lines) {
    snprintf(why, sizeof(why), "no >>> within %zu lines", w->cfg.block_lines);
    abandon_block(w, why);
    return;
  }
  wbuf_put(&w->body, s + i, n - i);
  wbuf_putc(&w->body, '\n');
  w->body_lines++;
}

static void process_line(gv_wrap *w) {
  const char *s = w->line.p != NULL ? w->line.p : "";
  size_t n = w->line.len, indent = 0;

  if (w->block) {
    block_line(w, s, n);
    return;
  }
  while (indent < n && s[indent] == ' ')
    indent++;
  s += indent, n -= indent;
  if (starts(s, n, "```") || starts(s, n, "~~~")) {
    if (w->fence == 0)
      w->fence = s[0];
    else if (w->fence == s[0])
      w->fence = 0;
    return;
  }
  if (w->fence != 0)
    return;
  /* Our own injections never count, and "\->relay:" fails the test. */
  if (starts(s, n, MSG_PREFIX) || starts(s, n, NOTICE_PREFIX))
    return;
  if (starts(s, n, MARKER))
    marker(w, s + MARKER_LEN, n - MARKER_LEN, indent);
}

/* ---- the line builder ---- */

static void line_restart(gv_wrap *w) {
  w->line.len = 0;
  w->line_cut = false;
  w->cr = false;
}

static void end_line(gv_wrap *w) {
  process_line(w);
  line_restart(w);
}

static void text_byte(gv_wrap *w, uint8_t c) {
  /* A block's line may be as long as the block; any other is cut. */
  size_t cap = w->block ? w->cfg.block_bytes + 1 : GV_WRAP_LINE_MAX;

  if (w->cr)
    line_restart(w);
  if (w->line.len >= cap) {
    w->line_cut = true;
    return;
  }
  wbuf_putc(&w->line, (char)c);
}

/* text_byte() for each of b[0..n), none a control, the line not at
 * column 0 (!w->cr). */
static void text_run(gv_wrap *w, const uint8_t *b, size_t n) {
  size_t cap = w->block ? w->cfg.block_bytes + 1 : GV_WRAP_LINE_MAX;
  size_t room = w->line.len < cap ? cap - w->line.len : 0;

  assert(!w->cr);
  wbuf_put(&w->line, b, n < room ? n : room);
  if (n > room)
    w->line_cut = true;
}

static void backspace(gv_wrap *w) {
  if (w->cr || w->line_cut)
    return; /* at column 0, or in a line already cut */
  while (w->line.len > 0) {
    uint8_t c = (uint8_t)w->line.p[--w->line.len];
    if ((c & 0xc0) != 0x80)
      break; /* the first byte of the character */
  }
}

static void plain(gv_wrap *w, uint8_t c) {
  if (c == 0x1b) {
    w->esc = ESC_ESC;
  } else if (c == '\n') {
    end_line(w);
  } else if (c == '\r') {
    w->cr = true;
  } else if (c == 0x08) {
    backspace(w);
  } else if (c == '\t') {
    text_byte(w, ' ');
  } else if (c >= 0x20 && c != 0x7f) {
    text_byte(w, c);
  } /* other C0 controls and DEL: dropped */
}

/* The first numeric parameter of the CSI, or def if absent or unknown. */
static unsigned csi_param(const gv_wrap *w, unsigned def) {
  unsigned v = 0;
  size_t i = 0;

  if (w->csi_len > CSI_PARAM_MAX)
    return def;
  for (; i < w->csi_len && w->csi[i] >= '0' && w->csi[i] <= '9'; i++)
    if (v < 100000)
      v = v * 10 + (unsigned)(w->csi[i] - '0');
  return i == 0 ? def : v;
}

static void csi_final(gv_wrap *w, uint8_t f) {
  bool priv = w->csi_len > 0 && w->csi_len <= CSI_PARAM_MAX && w->csi[0] == '?';

  switch (f) {
  case 'h':
  case 'l':
    if (!priv)
      return;
    /* ?p1;p2;...: bracketed paste is mode 2004. */
    for (size_t i = 1; i < w->csi_len;) {
      unsigned v = 0;
      size_t d = 0;
      for (; i < w->csi_len && w->csi[i] >= '0' && w->csi[i] <= '9'; i++, d++)
        if (v < 100000)
          v = v * 10 + (unsigned)(w->csi[i] - '0');
      if (d > 0 && v == 2004)
        w->paste_on = f == 'h';
      while (i < w->csi_len && w->csi[i] != ';')
        i++;
      i++;
    }
    return;
  case 'A':
  case 'B':
  case 'E':
  case 'F':
  case 'H':
  case 'f':
  case 'd':
    if (!priv)
      end_line(w);
    return;
  case 'u': /* restore cursor (SCO) takes no parameter */
    if (w->csi_len == 0)
      end_line(w);
    return;
  case 'K': /* erase in line */
    if (!priv && (w->cr || csi_param(w, 0) == 2))
      line_restart(w);
    return;
  case 'C': {
    unsigned n = csi_param(w, 1);
    if (priv)
      return;
    if (n == 0)
      n = 1;
    if (n > CSI_FORWARD_MAX)
      n = CSI_FORWARD_MAX;
    for (unsigned i = 0; i < n; i++)
      text_byte(w, ' ');
    return;
  }
  default: return;
  }
}

static void esc_byte(gv_wrap *w, uint8_t c) {
  switch (c) {
  case '[':
    w->esc = ESC_CSI;
    w->csi_len = 0;
    return;
  case ']': w->esc = ESC_OSC; return;
  case 'P':
  case 'X':
  case '^':
  case '_': w->esc = ESC_STR; return;
  case 0x1b: return;
  case 0x18:
  case 0x1a: w->esc = ESC_NONE; return;
  default: break;
  }
  if (c >= 0x20 && c <= 0x2f) {
    w->esc = ESC_INTER;
    return;
  }
  w->esc = ESC_NONE;
  if (c < 0x20)
    plain(w, c); /* a control right after ESC is executed */
  else if (c == 'D' || c == 'E' || c == 'M' || c == '8')
    end_line(w); /* index, next line, reverse index, restore cursor */
}

static void out_byte(gv_wrap *w, uint8_t c) {
  switch (w->esc) {
  case ESC_NONE: plain(w, c); return;
  case ESC_ESC: esc_byte(w, c); return;
  case ESC_INTER:
  case ESC_CSI:
    if (c == 0x1b) {
      w->esc = ESC_ESC;
    } else if (c == 0x18 || c == 0x1a) {
      w->esc = ESC_NONE;
    } else if (c < 0x20) {
      plain(w, c);
    } else if (w->esc == ESC_INTER) {
      if (c >= 0x30 && c <= 0x7e)
        w->esc = ESC_NONE;
    } else if (c >= 0x40 && c <= 0x7e) {
      w->esc = ESC_NONE;
      csi_final(w, c);
    } else if (c >= 0x20 && c <= 0x3f) {
      if (w->csi_len < CSI_PARAM_MAX)
        w->csi[w->csi_len] = (char)c;
      if (w->csi_len <= CSI_PARAM_MAX)
        w->csi_len++;
    }
    return;
  case ESC_OSC:
  case ESC_STR:
    if (c == 0x1b)
      w->esc = w->esc == ESC_OSC ? ESC_OSC_ESC : ESC_STR_ESC;
    else if (c == 0x18 || c == 0x1a || (c == 0x07 && w->esc == ESC_OSC))
      w->esc = ESC_NONE;
    return;
  case ESC_OSC_ESC:
  case ESC_STR_ESC:
    w->esc = ESC_ESC;
    if (c == '\\')
      w->esc = ESC_NONE;
    else
      esc_byte(w, c); /* the ESC began a new sequence */
    return;
  }
}

/* ---- the person's line ---- */

static void person_byte(gv_wrap *w, uint8_t c) {
  switch (w->in) {
  case IN_ESC:
    w->in = c == '[' ? IN_CSI : c == 'O' ? IN_SS3 : IN_TEXT;
    w->in_csi_len = 0;
    return;
  case IN_SS3: w->in = IN_TEXT; return;
  case IN_CSI:
    if (c >= 0x40 && c <= 0x7e) {
      w->in = IN_TEXT;
      if (c == '~' && w->in_csi_len == 3 && memcmp(w->in_csi, "200", 3) == 0)
        w->in_paste = true;
      else if (c == '~' && w->in_csi_len == 3 &&
               memcmp(w->in_csi, "201", 3) == 0)
        w->in_paste = false;
      return;
    }
    if (c >= 0x20 && c <= 0x3f) {
      if (w->in_csi_len < sizeof(w->in_csi))
        w->in_csi[w->in_csi_len++] = (char)c;
      return;
    }
    w->in = IN_TEXT; /* malformed: take c as it is */
    break;
  case IN_TEXT: break;
  }
  if (c == 0x1b) {
    w->in = IN_ESC;
    w->in_unknown = true; /* an arrow key, a paste, Alt-x: who knows */
  } else if (w->in_paste) {
    w->in_chars++;
  } else if (c == '\r' || c == '\n' || c == 0x03 || c == 0x15) {
    w->in_chars = 0;
    w->in_unknown = false;
  } else if (c == 0x08 || c == 0x7f) {
    if (w->in_chars > 0)
      w->in_chars--;
  } else if (c == 0x0c) {
    /* Ctrl-L redraws; the line stays as it is */
  } else if (c < 0x20) {
    w->in_unknown = true; /* tab completion, Ctrl-W, Ctrl-Y, ... */
  } else if ((c & 0xc0) != 0x80) {
    w->in_chars++;
  }
}

/* What time alone changes in the person's line: a sequence with nothing
 * more after GV_WRAP_ESC_MS is over (a lone Esc is a key of its own), and
 * an unknown line is forgotten after cfg.unknown_ms without a keystroke. */
static void person_time(gv_wrap *w) {
  if (!w->typed)
    return;
  if (w->in != IN_TEXT && w->now >= w->last_typed + GV_WRAP_ESC_MS)
    w->in = IN_TEXT;
  if (w->in_unknown && w->now >= w->last_typed + w->cfg.unknown_ms)
    w->in_unknown = false;
}

/* Characters are on the person's line, or their own paste is open: only
 * they can empty it. */
static bool person_line_busy(const gv_wrap *w) {
  return w->in_chars > 0 || w->in_paste;
}

static bool person_line_empty(const gv_wrap *w) {
  return !person_line_busy(w) && !w->in_unknown && w->in == IN_TEXT;
}

/* ---- incoming: injection ---- */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* When the agent and the person are idle and the person's line is empty,
 * unless they type again; assumes !person_line_busy(). */
static int64_t ready_at(const gv_wrap *w) {
  int64_t t = w->quiet_from + w->cfg.quiet_ms;

  if (w->typed) {
    t = max64(t, w->last_typed + w->cfg.typing_ms);
    if (w->in != IN_TEXT)
      t = max64(t, w->last_typed + GV_WRAP_ESC_MS);
    if (w->in_unknown)
      t = max64(t, w->last_typed + w->cfg.unknown_ms);
  }
  return t;
}

static void finish_inject(gv_wrap *w) {
  assert(w->pasted);
  act_pty(w, "\r", 1);
  w->turn++;
  w->last_enter = w->now;
  w->quiet_from = w->now; /* the next injection waits for quiet again */
  if (!w->cur.notice) {
    seen *s = seen_find(w, w->cur.key);

    act_id(w, GV_WRAP_ACK, w->cur.id);
    if (s != NULL)
      s->acked = true;
    if (w->n_unread == GV_WRAP_QUEUE_MAX) {
      /* The agent wrote nothing for many injections: the oldest stays
       * delivered, never read. */
      memmove(w->unread, w->unread + 1,
              (GV_WRAP_QUEUE_MAX - 1) * sizeof(*w->unread));
      w->n_unread--;
    }
    memcpy(w->unread[w->n_unread++], w->cur.id, GV_WRAP_ID_HEX + 1);
  }
  if (w->held.len > 0)
    act_pty(w, w->held.p, w->held.len);
  w->held.len = 0;
  free(w->cur.text);
  memset(&w->cur, 0, sizeof(w->cur));
  w->pasted = false;
}

static void try_inject(gv_wrap *w) {
  wbuf line = {0}, pty = {0};
  item it;

  if (w->pasted || w->blocked || w->gone || w->q_n == 0 ||
      !person_line_empty(w) || w->now < ready_at(w))
    return;
  it = q_pop(w);
  if (it.notice) {
    char more[96] = "";

    if (w->notices_dropped > 0)
      snprintf(more, sizeof(more), " [%zu more notices were dropped]",
               w->notices_dropped);
    w->notices_dropped = 0;
    wbuf_puts(&line, NOTICE_PREFIX);
    put_capped(&line, it.text, it.len, GV_WRAP_INJECT_MAX - strlen(more), "");
    wbuf_puts(&line, more);
  } else {
    wbuf_put(&line, it.text, it.len);
  }
  /* The agent's turn is over: what it left open stays behind. */
  if (w->block)
    abandon_block(w, "no >>> before the next message was typed in");
  w->fence = 0;
  /* One PTY action: the paste, in brackets if the agent asked for them. */
  if (w->paste_on)
    wbuf_put(&pty, PASTE_ON, PASTE_LEN);
  wbuf_put(&pty, line.p, line.len);
  if (w->paste_on)
    wbuf_put(&pty, PASTE_OFF, PASTE_LEN);
  act_pty(w, pty.p, pty.len);
  wbuf_free(&pty);
  wbuf_free(&line);
  w->cur = it;
  w->pasted = true;
  w->paste_at = w->now;
}

/* After every event: the Enter that is due, then what may be injected. */
static void settle(gv_wrap *w) {
  for (;;) {
    if (w->pasted && w->now >= w->paste_at + w->cfg.enter_ms)
      finish_inject(w);
    if (w->pasted)
      return;
    size_t before = w->q_n;
    try_inject(w);
    if (w->q_n == before && !w->pasted)
      return;
  }
}

#ifdef GV_DEBUG
static void check(const gv_wrap *w) {
  size_t msgs = 0;

  for (size_t i = 0; i < w->q_n; i++)
    msgs += !w->q[(w->q_head + i) % w->q_cap].notice;
  ALWAYS(msgs == w->q_msgs && w->q_n == w->q_msgs + w->q_notices);
  ALWAYS(w->q_msgs <= GV_WRAP_QUEUE_MAX);
  ALWAYS(w->q_notices <= GV_WRAP_NOTICE_MAX);
  ALWAYS(w->held.len <= GV_WRAP_HOLD_MAX);
  ALWAYS(w->pasted || w->held.len == 0);
  ALWAYS(w->line.len <= GV_WRAP_LINE_MAX || w->block);
  ALWAYS(w->body.len <= w->cfg.block_bytes);
  ALWAYS(w->n_unread <= GV_WRAP_QUEUE_MAX);
  ALWAYS(!w->gone || (!w->pasted && w->n_unread == 0));
  ALWAYS(w->seen_n == w->seen_map.len);
}
#define CHECK(w) check(w)
#else
#define CHECK(w) ((void)0)
#endif

/* Every entry point begins here: actions taken are released, time moves. */
static void begin(gv_wrap *w, int64_t now) {
  drop_taken(w);
  if (!w->started) {
    w->started = true;
    w->now = now;
    w->quiet_from = now;
  }
  if (!NEVER(now < w->now))
    w->now = now;
  person_time(w);
}

static void end(gv_wrap *w) {
  settle(w);
  CHECK(w);
}

/* ---- the interface ---- */

void gv_wrap_cfg_default(gv_wrap_cfg *cfg) {
  cfg->quiet_ms = 1500;
  cfg->typing_ms = 3000;
  cfg->unknown_ms = 30000;
  cfg->enter_ms = 30;
  cfg->echo_ms = 250;
  cfg->block_lines = 200;
  cfg->block_bytes = 1024 * 1024;
}

int gv_wrap_new(gv_wrap **out, const gv_wrap_cfg *cfg,
                const uint8_t session[16]) {
  gv_wrap *w;

  *out = NULL;
  if (cfg == NULL || session == NULL || cfg->quiet_ms < 0 ||
      cfg->typing_ms < 0 || cfg->unknown_ms < 0 || cfg->enter_ms < 0 ||
      cfg->echo_ms < 0 || cfg->block_lines == 0 || cfg->block_bytes == 0 ||
      cfg->block_bytes > SIZE_MAX / 4)
    return GV_EINVAL;
  w = gv__xcalloc(1, sizeof(*w));
  w->cfg = *cfg;
  memcpy(w->session, session, sizeof(w->session));
  w->q_cap = GV_WRAP_QUEUE_MAX + GV_WRAP_NOTICE_MAX;
  w->q = gv__xcalloc(w->q_cap, sizeof(*w->q));
  w->seen = gv__xcalloc(GV_WRAP_SEEN_MAX, sizeof(*w->seen));
  {
    uint8_t k[GV_IDMAP_KEY_BYTES];
    static const char ctx[] = "grapevine wrap seen ids";

    /* A key of its own, not the session's bytes themselves. */
    crypto_generichash(k, sizeof(k), (const uint8_t *)ctx, sizeof(ctx) - 1,
                       session, 16);
    gv_idmap_init(&w->seen_map, k);
    sodium_memzero(k, sizeof(k));
  }
  w->unread = gv__xcalloc(GV_WRAP_QUEUE_MAX, sizeof(*w->unread));
  *out = w;
  return 0;
}

void gv_wrap_free(gv_wrap *w) {
  if (w == NULL)
    return;
  for (size_t i = 0; i < w->a_n; i++)
    free(w->acts[i].buf);
  free(w->acts);
  while (w->q_n > 0) {
    item it = q_pop(w);
    free(it.text);
  }
  free(w->q);
  free(w->cur.text);
  gv_idmap_free(&w->seen_map);
  free(w->seen);
  free(w->unread);
  wbuf_free(&w->line);
  wbuf_free(&w->body);
  wbuf_free(&w->held);
  sodium_memzero(w->session, sizeof(w->session));
  free(w);
}

void gv_wrap_output(gv_wrap *w, const uint8_t *b, size_t n, int64_t now) {
  begin(w, now);
  if (n > 0) {
    w->quiet_from = w->now;
    if (w->n_unread > 0 && w->now > w->last_enter + w->cfg.echo_ms) {
      assert(!w->gone);
      for (size_t i = 0; i < w->n_unread; i++)
        act_id(w, GV_WRAP_READ, w->unread[i]);
      w->n_unread = 0;
    }
    for (size_t i = 0; i < n;) {
      size_t j = i;
      /* The fast path: a run of text outside any sequence, as text_byte()
       * would take it byte by byte. */
      if (w->esc == ESC_NONE && !w->cr)
        while (j < n && b[j] >= 0x20 && b[j] != 0x7f)
          j++;
      if (j == i) {
        out_byte(w, b[i++]);
        continue;
      }
      text_run(w, b + i, j - i);
      i = j;
    }
  }
  end(w);
}

void gv_wrap_input(gv_wrap *w, const uint8_t *b, size_t n, int64_t now) {
  begin(w, now);
  if (n > 0 && !w->gone) {
    w->typed = true;
    w->last_typed = w->now;
    for (size_t i = 0; i < n; i++)
      person_byte(w, b[i]);
    if (w->pasted && w->held.len + n > GV_WRAP_HOLD_MAX)
      finish_inject(w); /* too much to hold: the Enter goes first */
    if (w->pasted)
      wbuf_put(&w->held, b, n);
    else
      act_pty(w, b, n);
  }
  end(w);
}

int gv_wrap_message(gv_wrap *w, const char *id, const char *from,
                    const char *thread, const char *body, int64_t now) {
  wbuf line = {0};
  const char *at;
  uint8_t key[32] = {0}, node[32];
  seen *s;
  item it;
  int rc = 0;

  begin(w, now);
  if (id == NULL || strlen(id) != GV_WRAP_ID_HEX ||
      !hex_bin(key, id, GV_WRAP_ID_HEX) || from == NULL || body == NULL) {
    rc = GV_EINVAL;
    goto out;
  }
  if (w->gone) {
    rc = GV_ESTATE;
    goto out;
  }
  s = seen_find(w, key);
  if (s != NULL) {
    /* Pushed again: the node did not hear our ack (a reconnect). */
    if (s->acked)
      act_id(w, GV_WRAP_ACK, id);
    goto out;
  }
  if (w->q_msgs >= GV_WRAP_QUEUE_MAX) {
    rc = GV_EBUSY;
    goto out;
  }
  wbuf_puts(&line, MSG_PREFIX);
  /* project:name@<64 hex> is shown with the node's first 12 digits. */
  at = strchr(from, '@');
  if (at != NULL && strlen(at + 1) == 64 && hex_bin(node, at + 1, 64))
    sanitize(&line, from, (size_t)(at - from) + 13, 1024);
  else
    sanitize(&line, from, strlen(from), 1024);
  wbuf_puts(&line, " [");
  wbuf_put(&line, id, 8);
  wbuf_puts(&line, "]");
  if (thread != NULL && thread[0] != '\0') {
    wbuf_puts(&line, " [thread:");
    sanitize(&line, thread, strlen(thread), line.len + 128);
    wbuf_puts(&line, "]");
  }
  wbuf_puts(&line, ": ");
  put_capped(&line, body, strlen(body), GV_WRAP_INJECT_MAX,
             "grapevine inbox --peek shows it");
  memset(&it, 0, sizeof(it));
  memcpy(it.id, id, GV_WRAP_ID_HEX + 1);
  memcpy(it.key, key, sizeof(key));
  it.text = line.p;
  it.len = line.len;
  q_push(w, &it);
  seen_add(w, key);
out:
  end(w);
  return rc;
}

void gv_wrap_notice(gv_wrap *w, const char *text, int64_t now) {
  begin(w, now);
  if (text != NULL)
    notice_raw(w, text, strlen(text));
  end(w);
}

void gv_wrap_blocked(gv_wrap *w, bool blocked, int64_t now) {
  begin(w, now);
  w->blocked = blocked;
  end(w);
}

void gv_wrap_gone(gv_wrap *w, int64_t now) {
  size_t k = 0;

  begin(w, now); /* actions taken are released: those left are untaken */
  if (w->gone)
    goto out;
  w->gone = true;
  if (w->pasted) { /* its Enter never comes: no ACK, no READ */
    free(w->cur.text);
    memset(&w->cur, 0, sizeof(w->cur));
    w->pasted = false;
  }
  w->held.len = 0;
  w->n_unread = 0;
  /* Withdraw what the adapter has not taken but SENDs. */
  for (size_t i = 0; i < w->a_n; i++) {
    if (w->acts[i].a.type == GV_WRAP_SEND)
      w->acts[k++] = w->acts[i];
    else
      free(w->acts[i].buf);
  }
  w->a_n = k;
out:
  end(w);
}

void gv_wrap_tick(gv_wrap *w, int64_t now) {
  begin(w, now);
  end(w);
}

int64_t gv_wrap_deadline(const gv_wrap *w) {
  if (w->pasted)
    return w->paste_at + w->cfg.enter_ms;
  if (w->gone || w->blocked || w->q_n == 0 || person_line_busy(w))
    return -1; /* nothing to inject, or an event must come first */
  return ready_at(w);
}

const gv_wrap_act *gv_wrap_next(gv_wrap *w) {
  if (w->a_head > 0) {
    free(w->acts[w->a_head - 1].buf);
    w->acts[w->a_head - 1].buf = NULL;
  }
  if (w->a_head == w->a_n) {
    w->a_head = w->a_n = 0;
    return NULL;
  }
  return &w->acts[w->a_head++].a;
}

size_t gv_wrap_queued(const gv_wrap *w) { return w->q_msgs; }

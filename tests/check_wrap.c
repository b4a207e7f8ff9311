/* The terminal wrapper's core (node/wrap.c): markers, escapes, fences,
 * loop-proof injection, timing, ACK and READ, queue bounds. Times are
 * given by hand: the core reads no clock. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wrap.h"

#define ID(c) c "0123456789abcdef0123456789abcde"

typedef struct rec {
  gv_wrap_act_type type;
  char *bytes; /* PTY, NUL-terminated copy */
  size_t len;
  char *to, *thread, *body, *key, *id;
} rec;

#define REC_MAX 1024
static rec recs[REC_MAX];
static size_t nrec;
static gv_wrap *w;
static gv_wrap_cfg cfg;
static const uint8_t session[16] = {1, 2, 3};

static char *dup_n(const void *p, size_t n) {
  char *s = malloc(n + 1);
  ck_assert_ptr_nonnull(s);
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static char *dup_s(const char *s) { return s ? dup_n(s, strlen(s)) : NULL; }

static void drain(void) {
  const gv_wrap_act *a;

  while ((a = gv_wrap_next(w)) != NULL) {
    rec *r = &recs[nrec++];
    ck_assert_uint_lt(nrec, REC_MAX);
    memset(r, 0, sizeof(*r));
    r->type = a->type;
    if (a->type == GV_WRAP_PTY) {
      r->bytes = dup_n(a->bytes, a->len);
      r->len = a->len;
    } else if (a->type == GV_WRAP_SEND) {
      r->to = dup_s(a->to);
      r->thread = dup_s(a->thread);
      r->body = dup_s(a->body);
      r->key = dup_s(a->key);
    } else {
      r->id = dup_s(a->id);
    }
  }
}

static void clear(void) {
  for (size_t i = 0; i < nrec; i++) {
    free(recs[i].bytes);
    free(recs[i].to);
    free(recs[i].thread);
    free(recs[i].body);
    free(recs[i].key);
    free(recs[i].id);
  }
  nrec = 0;
}

static void out(const char *s, int64_t now) {
  gv_wrap_output(w, (const uint8_t *)s, strlen(s), now);
  drain();
}

static void in(const char *s, int64_t now) {
  gv_wrap_input(w, (const uint8_t *)s, strlen(s), now);
  drain();
}

static void tick(int64_t now) {
  gv_wrap_tick(w, now);
  drain();
}

static int msg(const char *id, const char *from, const char *thread,
               const char *body, int64_t now) {
  int rc = gv_wrap_message(w, id, from, thread, body, now);
  drain();
  return rc;
}

static size_t count(gv_wrap_act_type t) {
  size_t n = 0;
  for (size_t i = 0; i < nrec; i++)
    n += recs[i].type == t;
  return n;
}

/* The k-th action of type t, or fails. */
static rec *nth(gv_wrap_act_type t, size_t k) {
  for (size_t i = 0; i < nrec; i++)
    if (recs[i].type == t && k-- == 0)
      return &recs[i];
  ck_abort_msg("no such action");
  return NULL;
}

static void setup(void) {
  gv_wrap_cfg_default(&cfg);
  cfg.block_lines = 5;
  ck_assert_int_eq(gv_wrap_new(&w, &cfg, session), 0);
  nrec = 0;
}

static void teardown(void) {
  gv_wrap_free(w);
  w = NULL;
  clear();
}

START_TEST(single_line) {
  out("$ ok\r\n->relay:bob hello there  \r\n", 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->to, "bob");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->thread, "");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "hello there");
  ck_assert_uint_eq(strlen(nth(GV_WRAP_SEND, 0)->key), 32);
  /* Split across reads, and indented by spaces: still one marker. */
  out("  ->relay:web:carol@3fa1c2d4e5f6 ", 10);
  out("split\n", 11);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->to, "web:carol@3fa1c2d4e5f6");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->body, "split");
}
END_TEST

START_TEST(block) {
  out("  ->relay:web:bob <<<\n  line 1\n    line 2\n\n  >>>  \n", 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->to, "web:bob");
  /* The marker's indentation is taken off the body's lines. */
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "line 1\n  line 2\n");
  /* A block's body may hold fences and markers: it is body until >>>. */
  out("->relay:* <<<\n```\n->relay:bob no\n```\n>>>\n", 5);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->to, "*");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->body, "```\n->relay:bob no\n```");
}
END_TEST

START_TEST(thread_tag) {
  out("->relay:bob [thread:t-1] hi\n->relay:bob[thread:x] <<<\nbody\n>>>\n", 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->thread, "t-1");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "hi");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->thread, "x");
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->body, "body");
  /* A bad tag sends nothing. */
  out("->relay:bob [thread:] hi\n->relay:bob [thread:a b] hi\n", 1);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
}
END_TEST

START_TEST(fenced) {
  out("```sh\n->relay:bob no\n~~~\n->relay:bob still no\n```\n", 0);
  out("~~~\n->relay:bob no\n~~~\n->relay:bob yes\n", 1);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "yes");
}
END_TEST

START_TEST(escaped_and_not_at_start) {
  out("\\->relay:bob no\nsay ->relay:bob no\n-> relay:bob no\n", 0);
  out("Relay message from a:b@1 [12345678]: ->relay:bob no\n", 1);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
}
END_TEST

START_TEST(ansi_coloured) {
  out("\x1b[1;32m->relay:\x1b[0mbob \x1b]0;title\x07h\x1bP1$r\x1b\\i"
      "\x1b(B\x1b[K\r\n",
      0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "hi");
  /* CSI n C moves right: spaces. A cursor move to another row ends the
   * line like a newline. */
  out("->relay:bob a\x1b[3Cb\x1b[5;1Hnext line", 1);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->body, "a   b");
}
END_TEST

START_TEST(cr_redraw) {
  out("\xe2\xa0\x8b working\r\xe2\xa0\x99 working\r->relay:bob wrong\r", 0);
  out("->relay:bob right\r\n", 1);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->body, "right");
  /* Backspace deletes a character (a whole UTF-8 one). */
  out("->relay:bob hell\xc3\xa9\bo\n", 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 1)->body, "hello");
  /* "\r" then an erase of the line, then new text. */
  out("->relay:bob old\r\x1b[2Kplain text\n", 3);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
}
END_TEST

START_TEST(bad_marker_notice) {
  out("->relay: hi\n->relay:bob\n->relay:a:b:c hi\n->relay:bob   \n", 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), 0); /* notices are no messages */
  tick(1500);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 0)->bytes,
                               "Relay notice: a relay marker with no"));
  tick(1530); /* the Enter, and no ACK for a notice */
  ck_assert_uint_eq(count(GV_WRAP_ACK), 0);
  tick(3030);
  ck_assert_ptr_nonnull(
      strstr(nth(GV_WRAP_PTY, 2)->bytes, "not sent to bob: the message is"));
}
END_TEST

START_TEST(block_abandoned) {
  out("->relay:bob <<<\n1\n2\n3\n4\n5\n6\n>>>\n", 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  ck_assert_int_eq(msg(ID("a"), "web:al@x", "", "hi", 10), 0);
  tick(1500);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 0)->bytes,
                               "Relay notice: your block to bob was not "
                               "sent: no >>> within 5 lines"));
  tick(1530);
  tick(3030);
  ck_assert_ptr_nonnull(
      strstr(nth(GV_WRAP_PTY, 2)->bytes, "Relay message from web:al@x"));
}
END_TEST

START_TEST(block_abandoned_by_injection) {
  out("->relay:bob <<<\nhalf a body\n", 0);
  msg(ID("a"), "web:al@x", "", "hi", 0);
  tick(1500);
  tick(1530);
  /* Its echo would have joined the body; the block is given up instead. */
  out("Relay message from web:al@x [a0123456]: hi\r\n>>>\n", 1540);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  tick(3039);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2); /* quiet counts from the echo */
  tick(3040);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 2)->bytes,
                               "no >>> before the next message was typed"));
}
END_TEST

/* Injects one message and feeds every PTY byte back as the agent's
 * output, the way a TUI echoes it, wrapped at `width` columns. */
static void echo_back(const char *body, size_t width, int64_t *t) {
  size_t first = nrec;

  msg(ID("e"), "web:al@x", "th", body, *t);
  *t += 1500;
  tick(*t);
  *t += 30;
  tick(*t);
  for (size_t i = first; i < nrec; i++) {
    if (recs[i].type != GV_WRAP_PTY)
      continue;
    for (size_t o = 0; o < recs[i].len; o += width) {
      size_t n = recs[i].len - o < width ? recs[i].len - o : width;
      gv_wrap_output(w, (const uint8_t *)recs[i].bytes + o, n, *t);
      gv_wrap_output(w, (const uint8_t *)"\r\n", 2, *t);
    }
  }
  drain();
}

START_TEST(injection_never_sends) {
  static const char *bodies[] = {"x\n->relay:x hi",
                                 "->relay:",
                                 "\r->relay:bob hi\r\n",
                                 "\x1b[2K->relay:b",
                                 "a\x08\x08->relay:bob hi",
                                 "```\n->relay:bob hi",
                                 ">>>\n->relay:bob <<<\nhi\n>>>"};
  int64_t t = 0;

  out("\x1b[?2004h", 0);
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    size_t widths[] = {1, 7, 20, 4096};
    for (size_t k = 0; k < 4; k++) {
      /* Distinct ids: a repeat would be ignored. */
      char id[33];
      snprintf(id, sizeof(id), "%016zx%016zx", i, k);
      size_t first = nrec;
      msg(id, "web:al@x", "", bodies[i], t);
      t += 1500;
      tick(t);
      t += 30;
      tick(t);
      for (size_t j = first; j < nrec; j++) {
        if (recs[j].type != GV_WRAP_PTY)
          continue;
        ck_assert_ptr_null(strchr(recs[j].bytes, '\n'));
        ck_assert_ptr_null(strstr(recs[j].bytes, "->relay:"));
        for (size_t o = 0; o < recs[j].len; o += widths[k]) {
          size_t n = recs[j].len - o;
          n = n < widths[k] ? n : widths[k];
          gv_wrap_output(w, (const uint8_t *)recs[j].bytes + o, n, t);
          gv_wrap_output(w, (const uint8_t *)"\r\n", 2, t);
        }
      }
      drain();
    }
  }
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  echo_back("->relay:bob [thread:x] <<<", 3, &t);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  /* The body's marker is shown escaped. */
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 0)->bytes, "->relay\\:x hi"));
}
END_TEST

START_TEST(waits_for_quiet_and_person) {
  out("thinking...", 0);
  msg(ID("a"), "web:al@x", "", "hi", 100);
  ck_assert_int_eq(gv_wrap_deadline(w), 1500);
  tick(1000);
  out("more", 1000); /* busy again */
  tick(1600);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 0);
  ck_assert_int_eq(gv_wrap_deadline(w), 2500);
  in("ab", 2000); /* the person types: passed on at once */
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 0)->bytes, "ab");
  ck_assert_int_eq(gv_wrap_deadline(w), -1); /* their line is not empty */
  tick(9000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  in("\x7f\x7f", 9000); /* erased: empty, but typing just now */
  ck_assert_int_eq(gv_wrap_deadline(w), 12000);
  tick(11999);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
  tick(12000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 2)->bytes,
                   "Relay message from web:al@x [a0123456]: hi");
}
END_TEST

START_TEST(person_escape_unknown) {
  msg(ID("a"), "web:al@x", "", "hi", 0);
  in("\x1b[D", 0); /* an arrow key: the line is unknowable */
  ck_assert_int_eq(gv_wrap_deadline(w), 30000);
  tick(29999);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  in("\x03", 29999); /* Ctrl-C empties it */
  tick(32998);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
  tick(32999);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  tick(33029);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 4); /* its Enter */
  /* The person's own bracketed paste holds the line, even its "\r". */
  msg(ID("b"), "web:al@x", "", "hi", 33029);
  in("\x1b[200~a\rb", 33100);
  tick(70000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 5);
  in("\x1b[201~\r", 70000);
  tick(72999);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 6);
  tick(73000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 7);
}
END_TEST

/* An unknown line is forgotten after cfg.unknown_ms without a keystroke;
 * a keystroke starts that time again. Characters typed are never
 * forgotten. */
START_TEST(unknown_forgotten) {
  gv_wrap_free(w);
  cfg.unknown_ms = 5000;
  ck_assert_int_eq(gv_wrap_new(&w, &cfg, session), 0);
  msg(ID("a"), "web:al@x", "", "hi", 0);
  in("\t", 0); /* tab completion: unknown */
  in("\x1b[A", 4000);
  ck_assert_int_eq(gv_wrap_deadline(w), 9000);
  tick(8999);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
  tick(9000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 2)->bytes, ": hi"));
  tick(9030);
  msg(ID("b"), "web:al@x", "", "ho", 9030);
  in("ab\x1b[D", 9100); /* text, then an arrow key */
  ck_assert_int_eq(gv_wrap_deadline(w), -1);
  tick(100000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 5);
  cfg.unknown_ms = -1;
  ck_assert_int_eq(gv_wrap_new(&(gv_wrap *){NULL}, &cfg, session), GV_EINVAL);
}
END_TEST

/* A lone Esc (to interrupt the agent) is a key of its own once nothing
 * follows within GV_WRAP_ESC_MS: the next byte is not taken as part of a
 * sequence, so an Enter after it empties the line. */
START_TEST(lone_escape) {
  msg(ID("a"), "web:al@x", "", "hi", 0);
  in("\x1b", 1000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1); /* passed on at once */
  tick(1000 + GV_WRAP_ESC_MS);
  in("\r", 2000); /* an Enter, not ESC CR */
  ck_assert_int_eq(gv_wrap_deadline(w), 5000);
  tick(5000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 2)->bytes, ": hi"));
  tick(5030);
  /* Within GV_WRAP_ESC_MS a sequence goes on across reads: ESC, then "[D"
   * is an arrow key, not the characters '[' and 'D'. */
  msg(ID("b"), "web:al@x", "", "ho", 5030);
  in("\x1b", 6000);
  in("[D", 6000 + GV_WRAP_ESC_MS - 1);
  ck_assert_int_eq(gv_wrap_deadline(w), 6000 + GV_WRAP_ESC_MS - 1 + 30000);
  in("\x15", 6200); /* Ctrl-U: empty again */
  ck_assert_int_eq(gv_wrap_deadline(w), 9200);
  /* A lone Esc leaves no sequence open: at the deadline the line is
   * empty, whatever came before. */
  in("\x1b", 7000);
  in("\r", 7500);
  ck_assert_int_eq(gv_wrap_deadline(w), 10500);
  tick(10500);
  ck_assert_ptr_nonnull(
      strstr(nth(GV_WRAP_PTY, count(GV_WRAP_PTY) - 1)->bytes, ": ho"));
}
END_TEST

/* While the adapter's bytes for the agent wait, no injection starts; an
 * injection under way still gets its Enter. */
START_TEST(blocked) {
  msg(ID("a"), "web:al@x", "", "one", 0);
  gv_wrap_blocked(w, true, 100);
  drain();
  ck_assert_int_eq(gv_wrap_deadline(w), -1);
  tick(5000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 0);
  gv_wrap_blocked(w, false, 6000);
  drain();
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1); /* the paste, at once */
  msg(ID("b"), "web:al@x", "", "two", 6001);
  gv_wrap_blocked(w, true, 6001); /* the paste is not written yet */
  drain();
  tick(6030);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 1)->bytes, "\r");
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  tick(20000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
  gv_wrap_blocked(w, false, 20000);
  drain();
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 2)->bytes, ": two"));
}
END_TEST

/* Once the terminal is gone: the paste under way gets no Enter and no
 * ACK, nothing more is injected, acknowledged or read, the person's
 * keystrokes go nowhere, messages are refused; SENDs still come. */
START_TEST(gone) {
  msg(ID("a"), "web:al@x", "", "one", 0);
  tick(1500);
  tick(1530);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  msg(ID("b"), "web:al@x", "", "two", 1600);
  tick(3030); /* the paste of "two" */
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  gv_wrap_gone(w, 3040);
  drain();
  ck_assert_int_eq(gv_wrap_deadline(w), -1);
  tick(3060);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  ck_assert_int_eq(msg(ID("c"), "web:al@x", "", "three", 3100), GV_ESTATE);
  ck_assert_int_eq(msg(ID("a"), "web:al@x", "", "one", 3100), GV_ESTATE);
  in("typed\r", 3200);
  out("the agent's last words\n->relay:web:bob bye\n", 4000);
  ck_assert_uint_eq(count(GV_WRAP_READ), 0);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 1);
  gv_wrap_notice(w, "a notice", 4000);
  drain();
  tick(90000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
}
END_TEST

/* The adapter finds the terminal gone while it takes actions (a write
 * failed): what it has not taken of the injection is withdrawn. */
START_TEST(gone_withdraws) {
  const gv_wrap_act *a;

  gv_wrap_free(w);
  cfg.enter_ms = 0; /* the paste, its Enter and the ACK in one batch */
  ck_assert_int_eq(gv_wrap_new(&w, &cfg, session), 0);
  ck_assert_int_eq(gv_wrap_message(w, ID("a"), "web:al@x", "", "hi", 0), 0);
  gv_wrap_output(w, (const uint8_t *)"->relay:web:bob x\n", 18, 0);
  gv_wrap_tick(w, 1500);
  a = gv_wrap_next(w);
  ck_assert_ptr_nonnull(a);
  ck_assert_int_eq(a->type, GV_WRAP_SEND);
  a = gv_wrap_next(w);
  ck_assert_ptr_nonnull(a);
  ck_assert_int_eq(a->type, GV_WRAP_PTY); /* the paste: its write fails */
  gv_wrap_gone(w, 1500);
  drain();
  ck_assert_uint_eq(nrec, 0);
  gv_wrap_gone(w, 1600); /* again: nothing changes */
  drain();
  ck_assert_uint_eq(nrec, 0);
}
END_TEST

START_TEST(keystrokes_held) {
  msg(ID("a"), "web:al@x", "", "hi", 0);
  tick(1500);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  in("ab", 1510);
  in("c\r", 1520);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1); /* held */
  ck_assert_uint_eq(count(GV_WRAP_ACK), 0);
  ck_assert_int_eq(gv_wrap_deadline(w), 1530);
  tick(1530);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 3);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 1)->bytes, "\r");
  ck_assert_str_eq(nth(GV_WRAP_PTY, 2)->bytes, "abc\r");
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  /* The ACK follows the Enter. */
  ck_assert(nth(GV_WRAP_ACK, 0) > nth(GV_WRAP_PTY, 1));
}
END_TEST

START_TEST(ack_and_read) {
  msg(ID("a"), "web:al@x", "", "hi", 0);
  tick(1500);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 0);
  out("Relay message from web:al@x [a0123456]: hi", 1510); /* echo */
  tick(1530);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  ck_assert_str_eq(nth(GV_WRAP_ACK, 0)->id, ID("a"));
  out("\r\n", 1600); /* echo of the Enter */
  out("x", 1780);
  ck_assert_uint_eq(count(GV_WRAP_READ), 0);
  out("Working on it", 1781);
  ck_assert_uint_eq(count(GV_WRAP_READ), 1);
  ck_assert_str_eq(nth(GV_WRAP_READ, 0)->id, ID("a"));
  out("more", 1900);
  ck_assert_uint_eq(count(GV_WRAP_READ), 1);
}
END_TEST

START_TEST(queue_order) {
  msg(ID("a"), "web:al@x", "", "one", 0);
  gv_wrap_notice(w, "the node is gone", 1);
  drain();
  msg(ID("b"), "web:al@x", "", "two", 2);
  ck_assert_uint_eq(gv_wrap_queued(w), 2);
  for (int64_t t = 1500; t < 8000; t += 1530) {
    tick(t);
    tick(t + 30);
  }
  ck_assert_uint_eq(count(GV_WRAP_PTY), 6);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 0)->bytes, ": one"));
  ck_assert_str_eq(nth(GV_WRAP_PTY, 2)->bytes,
                   "Relay notice: the node is gone");
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 4)->bytes, ": two"));
  ck_assert_uint_eq(count(GV_WRAP_ACK), 2);
  ck_assert_uint_eq(gv_wrap_queued(w), 0);
}
END_TEST

START_TEST(queue_full) {
  char id[33];
  out("busy", 0);
  for (int i = 0; i < GV_WRAP_QUEUE_MAX; i++) {
    snprintf(id, sizeof(id), "%032x", i);
    ck_assert_int_eq(msg(id, "a:b@c", "", "m", 1), 0);
  }
  snprintf(id, sizeof(id), "%032x", GV_WRAP_QUEUE_MAX);
  ck_assert_int_eq(msg(id, "a:b@c", "", "m", 1), GV_EBUSY);
  ck_assert_uint_eq(gv_wrap_queued(w), GV_WRAP_QUEUE_MAX);
  /* Refused, not remembered: pushed again later, it is taken. */
  tick(1500);
  ck_assert_int_eq(msg(id, "a:b@c", "", "m", 1510), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), GV_WRAP_QUEUE_MAX);
  ck_assert_int_eq(msg("xyz", "a:b@c", "", "m", 1510), GV_EINVAL);
}
END_TEST

START_TEST(dedup) {
  ck_assert_int_eq(msg(ID("a"), "web:al@x", "", "hi", 0), 0);
  ck_assert_int_eq(msg(ID("a"), "web:al@x", "", "hi", 1), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), 1);
  tick(1500);
  tick(1530);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  /* Pushed again after injection (our ack was lost): acked again, not
   * injected again. */
  ck_assert_int_eq(msg(ID("a"), "web:al@x", "", "hi", 2000), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), 0);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 2);
  tick(9000);
  ck_assert_uint_eq(count(GV_WRAP_PTY), 2);
}
END_TEST

/* The ids seen: the last GV_WRAP_SEEN_MAX, the oldest forgotten. A hex id
 * is an id whatever the case of its digits. */
START_TEST(seen_ring) {
  char id[33];
  int64_t t = 0;

  for (int i = 0; i <= GV_WRAP_SEEN_MAX; i++) {
    snprintf(id, sizeof(id), "%032x", i);
    ck_assert_int_eq(msg(id, "a:b@c", "", "m", t), 0);
    tick(t += 1500);
    tick(t += 30);
    ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
    clear();
  }
  snprintf(id, sizeof(id), "%032x", GV_WRAP_SEEN_MAX);
  ck_assert_int_eq(msg(id, "a:b@c", "", "m", t), 0);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1); /* remembered: acked again */
  ck_assert_uint_eq(gv_wrap_queued(w), 0);
  snprintf(id, sizeof(id), "%032x", 1);
  ck_assert_int_eq(msg(id, "a:b@c", "", "m", t), 0);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 2); /* the oldest kept */
  snprintf(id, sizeof(id), "%032x", 0);
  ck_assert_int_eq(msg(id, "a:b@c", "", "m", t), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), 1); /* forgotten: new again */
  clear();
  ck_assert_int_eq(msg(ID("A"), "a:b@c", "", "m", t), 0);
  ck_assert_int_eq(msg(ID("a"), "a:b@c", "", "m", t), 0);
  ck_assert_uint_eq(gv_wrap_queued(w), 2);
  ck_assert_int_eq(msg("0123456789abcdef0123456789abcdeg", "a:b@c", "", "m", t),
                   GV_EINVAL);
}
END_TEST

START_TEST(bracketed_paste) {
  msg(ID("a"), "web:al@x", "", "one", 0);
  tick(1500);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 0)->bytes,
                   "Relay message from web:al@x [a0123456]: one");
  tick(1530);
  out("\x1b[?1;2004h", 1600);
  msg(ID("b"), "web:al@x", "", "two", 1600);
  tick(3100);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 2)->bytes,
                   "\x1b[200~Relay message from web:al@x [b0123456]: two"
                   "\x1b[201~");
  tick(3130);
  out("\x1b[?2004l", 3200);
  msg(ID("c"), "web:al@x", "", "three", 3200);
  tick(4700);
  ck_assert_uint_eq(nth(GV_WRAP_PTY, 4)->bytes[0], 'R');
}
END_TEST

START_TEST(key_per_turn) {
  static const char blk[] = "->relay:bob <<<\nsame\n>>>\n";
  gv_wrap *w2;
  const gv_wrap_act *a;
  uint8_t other[16] = {9};

  out(blk, 0);
  out("\x1b[3A", 1); /* the TUI redraws: the block shows again */
  out(blk, 2);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 2);
  ck_assert_str_eq(nth(GV_WRAP_SEND, 0)->key, nth(GV_WRAP_SEND, 1)->key);
  msg(ID("a"), "web:al@x", "", "hi", 2);
  tick(1502);
  tick(1532);
  out(blk, 1600); /* the next turn */
  ck_assert_uint_eq(count(GV_WRAP_SEND), 3);
  ck_assert_str_ne(nth(GV_WRAP_SEND, 0)->key, nth(GV_WRAP_SEND, 2)->key);
  /* Another wrapper run: another key. */
  ck_assert_int_eq(gv_wrap_new(&w2, &cfg, other), 0);
  gv_wrap_output(w2, (const uint8_t *)blk, strlen(blk), 0);
  a = gv_wrap_next(w2);
  ck_assert_ptr_nonnull(a);
  ck_assert_int_eq(a->type, GV_WRAP_SEND);
  ck_assert_str_ne(a->key, nth(GV_WRAP_SEND, 0)->key);
  gv_wrap_free(w2);
}
END_TEST

START_TEST(long_body_cut) {
  size_t n = 100 * 1024;
  char *body = malloc(n + 1);
  const rec *r;

  memset(body, 'x', n);
  body[n] = '\0';
  msg(ID("a"), "web:al@x", "", body, 0);
  tick(1500);
  r = nth(GV_WRAP_PTY, 0);
  ck_assert_uint_le(r->len, GV_WRAP_INJECT_MAX);
  ck_assert_uint_gt(r->len, GV_WRAP_INJECT_MAX - 200);
  ck_assert_ptr_nonnull(strstr(r->bytes, "\xe2\x80\xa6 [cut: "));
  ck_assert_ptr_nonnull(strstr(r->bytes, "grapevine inbox --peek shows it]"));
  free(body);
}
END_TEST

START_TEST(long_line_cut) {
  size_t n = GV_WRAP_LINE_MAX + 100;
  char *line = malloc(n + 2);

  memcpy(line, "->relay:bob ", 12);
  memset(line + 12, 'y', n - 12);
  line[n] = '\n';
  line[n + 1] = '\0';
  out(line, 0);
  ck_assert_uint_eq(count(GV_WRAP_SEND), 0);
  tick(1500);
  ck_assert_ptr_nonnull(strstr(nth(GV_WRAP_PTY, 0)->bytes,
                               "the line was longer than 65536 bytes"));
  free(line);
}
END_TEST

START_TEST(sender_shortened) {
  msg(ID("a"),
      "web:alice@3fa1c2d4e5f60000000000000000000000000000000000000000000000000"
      "000",
      "t9", "hi\tthere\x1b[31m", 0);
  tick(1500);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 0)->bytes,
                   "Relay message from web:alice@3fa1c2d4e5f6 [a0123456] "
                   "[thread:t9]: hi there [31m");
}
END_TEST

START_TEST(notices_bounded) {
  char text[32];
  out("busy", 0);
  for (int i = 0; i < GV_WRAP_NOTICE_MAX + 6; i++) {
    snprintf(text, sizeof(text), "n%d", i);
    gv_wrap_notice(w, text, 1);
  }
  drain();
  tick(1500);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 0)->bytes,
                   "Relay notice: n0 [6 more notices were dropped]");
}
END_TEST

START_TEST(hold_bounded) {
  size_t n = GV_WRAP_HOLD_MAX / 2 + 1;
  uint8_t *b = malloc(n);

  memset(b, 'k', n);
  msg(ID("a"), "web:al@x", "", "hi", 0);
  tick(1500);
  gv_wrap_input(w, b, n, 1501);
  drain();
  ck_assert_uint_eq(count(GV_WRAP_PTY), 1);
  gv_wrap_input(w, b, n, 1502); /* past the bound: the Enter goes now */
  drain();
  ck_assert_uint_eq(count(GV_WRAP_PTY), 4);
  ck_assert_str_eq(nth(GV_WRAP_PTY, 1)->bytes, "\r");
  ck_assert_uint_eq(nth(GV_WRAP_PTY, 2)->len, n);
  ck_assert_uint_eq(nth(GV_WRAP_PTY, 3)->len, n);
  ck_assert_uint_eq(count(GV_WRAP_ACK), 1);
  free(b);
}
END_TEST

static Suite *wrap_suite(void) {
  Suite *s = suite_create("wrap");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, single_line);
  tcase_add_test(tc, block);
  tcase_add_test(tc, thread_tag);
  tcase_add_test(tc, fenced);
  tcase_add_test(tc, escaped_and_not_at_start);
  tcase_add_test(tc, ansi_coloured);
  tcase_add_test(tc, cr_redraw);
  tcase_add_test(tc, bad_marker_notice);
  tcase_add_test(tc, block_abandoned);
  tcase_add_test(tc, block_abandoned_by_injection);
  tcase_add_test(tc, injection_never_sends);
  tcase_add_test(tc, waits_for_quiet_and_person);
  tcase_add_test(tc, person_escape_unknown);
  tcase_add_test(tc, unknown_forgotten);
  tcase_add_test(tc, lone_escape);
  tcase_add_test(tc, blocked);
  tcase_add_test(tc, gone);
  tcase_add_test(tc, gone_withdraws);
  tcase_add_test(tc, keystrokes_held);
  tcase_add_test(tc, ack_and_read);
  tcase_add_test(tc, queue_order);
  tcase_add_test(tc, queue_full);
  tcase_add_test(tc, dedup);
  tcase_add_test(tc, seen_ring);
  tcase_add_test(tc, bracketed_paste);
  tcase_add_test(tc, key_per_turn);
  tcase_add_test(tc, long_body_cut);
  tcase_add_test(tc, long_line_cut);
  tcase_add_test(tc, sender_shortened);
  tcase_add_test(tc, notices_bounded);
  tcase_add_test(tc, hold_bounded);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(wrap_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

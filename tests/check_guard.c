/* The entry-guard policy (node/guard.c) on a fake clock and a seeded rng. */
#include <string.h>

#include "err.h"
#include "guard.h"
#include "testutil.h"

#define H 3600000LL
#define DAY (24 * H)
#define N 12

static uint8_t ids[N][GV_ID_BYTES];
static gv_guard_cand cands[N];

/* N broadcasting nodes, all seen since t = 0, score 60, none bootstrap. */
static void setup(void) {
  for (int i = 0; i < N; i++) {
    memset(ids[i], 0, GV_ID_BYTES);
    ids[i][0] = (uint8_t)(i + 1);
    cands[i].id = ids[i];
    cands[i].bootstrap = false;
    cands[i].first_seen = 0;
    cands[i].score = 60;
  }
}

static void make(gv_guards *g, unsigned count) {
  gv_guard_cfg cfg;
  gv_guard_cfg_default(&cfg, count);
  ck_assert_int_eq(gv_guards_init(g, &cfg), 0);
}

static bool holds(const gv_guards *g, int i) {
  return gv_guards_has(g, ids[i]);
}

START_TEST(test_cfg) {
  gv_guard_cfg cfg;
  gv_guards g;
  gv_guard_cfg_default(&cfg, 0);
  ck_assert_int_eq(gv_guards_init(&g, &cfg), GV_EINVAL);
  cfg.count = GV_GUARDS_MAX + 1;
  ck_assert_int_eq(gv_guards_init(&g, &cfg), GV_EINVAL);
  cfg.count = 3;
  cfg.life_max_ms = cfg.life_min_ms - 1;
  ck_assert_int_eq(gv_guards_init(&g, &cfg), GV_EINVAL);
  gv_guard_cfg_default(&cfg, 3);
  ck_assert_int_eq(cfg.min_age_ms, H);
  ck_assert_int_eq(cfg.life_min_ms, 30 * DAY);
  ck_assert_int_eq(cfg.life_max_ms, 60 * DAY);
}
END_TEST

/* Young nodes are not eligible until min_age; bootstrap nodes at once;
 * below-median scores never. */
START_TEST(test_eligibility) {
  gv_guards g, all;
  gv_rng rng;

  gv_rng_seed(&rng, 1);
  make(&g, 3);
  for (int i = 0; i < N; i++)
    cands[i].first_seen = 10 * H;
  cands[4].bootstrap = true;
  /* 30 min after they all appeared: only the bootstrap node is eligible. */
  ck_assert(gv_guards_update(&g, cands, N, &rng, 10 * H + H / 2));
  ck_assert_uint_eq(g.n, 1);
  ck_assert(holds(&g, 4));
  /* Scores below the median exclude half the table. */
  for (int i = 0; i < N; i++)
    cands[i].score = i < N / 2 ? 10 : 90;
  ck_assert(gv_guards_update(&g, cands, N, &rng, 11 * H));
  ck_assert_uint_eq(g.n, 3);
  for (int i = 0; i < N / 2; i++)
    if (i != 4)
      ck_assert(!holds(&g, i));
  /* A set with room for all takes exactly the upper half. */
  make(&all, N);
  ck_assert(gv_guards_update(&all, cands, N, &rng, 11 * H));
  ck_assert_uint_eq(all.n, N / 2);
  for (int i = N / 2; i < N; i++)
    ck_assert(holds(&all, i));
}
END_TEST

/* A full set stays put when newcomers arrive, however well scored. */
START_TEST(test_newcomer_never_chosen) {
  gv_guards g;
  gv_rng rng;
  gv_guard before[GV_GUARDS_MAX];

  gv_rng_seed(&rng, 7);
  make(&g, 3);
  ck_assert(gv_guards_update(&g, cands, N - 4, &rng, 2 * H));
  ck_assert_uint_eq(g.n, 3);
  memcpy(before, g.set, sizeof(before));
  /* Four newcomers, scored 100, appear at 3 h; the others sink. */
  for (int i = N - 4; i < N; i++) {
    cands[i].first_seen = 3 * H;
    cands[i].score = 100;
  }
  for (int64_t t = 3 * H; t < 3 * DAY; t += H)
    ck_assert(!gv_guards_update(&g, cands, N, &rng, t));
  ck_assert_mem_eq(before, g.set, 3 * sizeof(gv_guard));
  /* An empty slot is never filled with a node younger than min_age. */
  gv_guards_failed(&g, g.set[0].id, 3 * DAY);
  for (int i = 0; i < N - 4; i++)
    cands[i].score = 100; /* keep the old ones eligible */
  for (int i = N - 4; i < N; i++)
    cands[i].first_seen = 3 * DAY + H / 2;
  ck_assert(gv_guards_update(&g, cands, N, &rng, 3 * DAY + H));
  for (int i = N - 4; i < N; i++)
    ck_assert(!holds(&g, i));
}
END_TEST

/* Rotation is slow: a failed dial alone is not enough, an hour of them is;
 * a reached guard is no longer down; a guard leaves at its lifetime's end,
 * or an hour after it left the table (a flood of records that evicted it
 * must not rotate it out at once). */
START_TEST(test_rotation) {
  gv_guards g;
  gv_rng rng;
  uint8_t first[GV_ID_BYTES];
  int64_t expires;

  gv_rng_seed(&rng, 3);
  make(&g, 3);
  ck_assert(gv_guards_update(&g, cands, N, &rng, 2 * H));
  for (size_t i = 0; i < g.n; i++) {
    int64_t life = g.set[i].expires_at - g.set[i].chosen_at;
    ck_assert_int_ge(life, 30 * DAY);
    ck_assert_int_le(life, 60 * DAY);
  }
  memcpy(first, g.set[0].id, GV_ID_BYTES);
  ck_assert(gv_guards_failed(&g, first, 3 * H));
  ck_assert(!gv_guards_failed(&g, first, 3 * H + 10)); /* already down */
  ck_assert(!gv_guards_update(&g, cands, N, &rng, 3 * H + H / 2));
  ck_assert(gv_guards_reached(&g, first));
  ck_assert(!gv_guards_update(&g, cands, N, &rng, 5 * H));
  ck_assert(gv_guards_has(&g, first));
  /* Down for a full hour: replaced, by someone else. */
  gv_guards_failed(&g, first, 6 * H);
  ck_assert(gv_guards_update(&g, cands, N, &rng, 7 * H));
  ck_assert(!gv_guards_has(&g, first));
  ck_assert_uint_eq(g.n, 3);
  /* Gone from the table: down, kept for down_ms, then replaced. */
  memcpy(first, g.set[1].id, GV_ID_BYTES);
  for (int i = 0; i < N; i++)
    if (memcmp(ids[i], first, GV_ID_BYTES) == 0)
      cands[i] = cands[N - 1];
  ck_assert(gv_guards_update(&g, cands, N - 1, &rng, 8 * H)); /* now down */
  ck_assert(gv_guards_has(&g, first));
  ck_assert_int_eq(gv_guards_find(&g, first)->down_since, 8 * H);
  ck_assert(!gv_guards_update(&g, cands, N - 1, &rng, 9 * H - 1));
  ck_assert(gv_guards_has(&g, first));
  ck_assert(gv_guards_update(&g, cands, N - 1, &rng, 9 * H));
  ck_assert(!gv_guards_has(&g, first));
  ck_assert_uint_eq(g.n, 3);
  /* Lifetime: kept until expires_at, replaced at it. */
  expires = g.set[0].expires_at;
  memcpy(first, g.set[0].id, GV_ID_BYTES);
  for (size_t i = 1; i < g.n; i++)
    g.set[i].expires_at = INT64_MAX;
  ck_assert(!gv_guards_update(&g, cands, N - 1, &rng, expires - 1));
  ck_assert(gv_guards_update(&g, cands, N - 1, &rng, expires));
  ck_assert(!gv_guards_has(&g, first));
}
END_TEST

/* A saved set comes back as it was; a down guard gets a fresh hour. */
START_TEST(test_restore) {
  gv_guards g, h;
  gv_rng rng;

  gv_rng_seed(&rng, 5);
  make(&g, 3);
  gv_guards_update(&g, cands, N, &rng, 2 * H);
  gv_guards_failed(&g, g.set[2].id, 2 * H + 1);
  make(&h, 3);
  for (size_t i = 0; i < g.n; i++)
    ck_assert_int_eq(gv_guards_restore(&h, &g.set[i], 50 * H), 0);
  ck_assert_int_eq(gv_guards_restore(&h, &g.set[0], 50 * H), GV_EINVAL);
  ck_assert_uint_eq(h.n, 3);
  for (size_t i = 0; i < 2; i++)
    ck_assert_mem_eq(&h.set[i], &g.set[i], sizeof(gv_guard));
  ck_assert_int_eq(h.set[2].down_since, 50 * H);
  /* The restored set is kept: nothing changes at the next update. */
  ck_assert(!gv_guards_update(&h, cands, N, &rng, 50 * H + 10));
  for (size_t i = 0; i < 3; i++)
    ck_assert_mem_eq(h.set[i].id, g.set[i].id, GV_ID_BYTES);
  /* A full set refuses more. */
  {
    gv_guard extra;
    memset(&extra, 0, sizeof(extra));
    memcpy(extra.id, ids[N - 1], GV_ID_BYTES);
    extra.id[1] = 0xee;
    ck_assert_int_eq(gv_guards_restore(&h, &extra, 50 * H), GV_ELIMIT);
  }
}
END_TEST

/* Same rng seed, same choices; another seed, other choices somewhere;
 * higher scores are picked more often. */
START_TEST(test_determinism_and_weight) {
  gv_guards a, b;
  gv_rng ra, rb;
  int hi = 0, lo = 0, differ = 0;

  for (int i = 0; i < N; i++)
    cands[i].score = i < 7 ? 55 : 100; /* median 55: all eligible */
  for (uint64_t seed = 1; seed <= 200; seed++) {
    make(&a, 2);
    make(&b, 2);
    gv_rng_seed(&ra, seed);
    gv_rng_seed(&rb, seed);
    gv_guards_update(&a, cands, N, &ra, 2 * H);
    gv_guards_update(&b, cands, N, &rb, 2 * H);
    ck_assert_mem_eq(a.set, b.set, 2 * sizeof(gv_guard));
    gv_rng_seed(&rb, seed + 1000);
    make(&b, 2);
    gv_guards_update(&b, cands, N, &rb, 2 * H);
    differ += memcmp(a.set[0].id, b.set[0].id, GV_ID_BYTES) != 0;
    for (size_t k = 0; k < a.n; k++)
      if (a.set[k].id[0] - 1 < 7)
        lo++;
      else
        hi++;
  }
  ck_assert_int_gt(differ, 100);
  /* Weights 101 (5 nodes) against 56 (7 nodes): each high node is drawn
   * about 1.6 times as often as a low one (400 draws); every node can be. */
  ck_assert_int_gt(hi * 7, lo * 5 * 13 / 10);
  ck_assert_int_gt(lo, 100);
}
END_TEST

/* The saved line round-trips; anything else is refused with a reason. */
START_TEST(test_line) {
  static const char *const bad[] = {
      "",
      "zz",
      "0101010101010101010101010101010101010101010101010101010101010101",
      "0101010101010101010101010101010101010101010101010101010101010101 1 2",
      "0101010101010101010101010101010101010101010101010101010101010101 1 2 3 "
      "4",
      "0101010101010101010101010101010101010101010101010101010101010101 1 2 0 ",
      "0101010101010101010101010101010101010101010101010101010101010101 1  2 0",
      "0101010101010101010101010101010101010101010101010101010101010101 2 1 0",
      "0101010101010101010101010101010101010101010101010101010101010101 1 2 x",
      "0101010101010101010101010101010101010101010101010101010101010101 1 2 -5",
      "0101010101010101010101010101010101010101010101010101010101010101 +1 2 0",
      "0101010101010101010101010101010101010101010101010101010101010101 1 "
      "99999999999999999999999 0",
      "g101010101010101010101010101010101010101010101010101010101010101 1 2 0",
  };
  gv_guard g, h;
  gv_why why;
  char line[GV_GUARD_LINE_MAX];
  size_t n;

  memset(&g, 0, sizeof(g));
  memcpy(g.id, ids[3], GV_ID_BYTES);
  g.chosen_at = 1767225600000LL;
  g.expires_at = g.chosen_at + 45 * DAY;
  g.down_since = g.chosen_at + H;
  n = gv_guard_format(&g, line, sizeof(line));
  ck_assert_uint_gt(n, GV_ID_HEX_LEN);
  ck_assert_int_eq(line[n - 1], '\n');
  ck_assert_int_eq(gv_guard_parse(&h, line, n - 1, &why), 0);
  ck_assert_mem_eq(&g, &h, sizeof(g));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why.text[0] = '\0';
    ck_assert_msg(gv_guard_parse(&h, bad[i], strlen(bad[i]), &why) == GV_EFIELD,
                  "accepted '%s'", bad[i]);
    ck_assert_str_ne(why.text, "");
  }
}
END_TEST

static Suite *guard_suite(void) {
  Suite *s = suite_create("guard");
  TCase *tc = tcase_create("policy");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_cfg);
  tcase_add_test(tc, test_eligibility);
  tcase_add_test(tc, test_newcomer_never_chosen);
  tcase_add_test(tc, test_rotation);
  tcase_add_test(tc, test_restore);
  tcase_add_test(tc, test_determinism_and_weight);
  tcase_add_test(tc, test_line);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(guard_suite()); }

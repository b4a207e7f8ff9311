/* Control-socket request parsing (node/ctl.c). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "testutil.h"

static int parse(const char *line, gv_ctl_req *r, gv_why *why) {
  why->text[0] = '\0';
  return gv_ctl_parse(r, line, strlen(line), why);
}

START_TEST(test_commands) {
  gv_ctl_req r;
  gv_why why;

  ck_assert_int_eq(parse("{\"cmd\":\"status\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_STATUS);
  ck_assert_int_eq(parse("{\"cmd\":\"peers\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_PEERS);
  ck_assert_int_eq(parse("{\"cmd\":\"request\",\"repo\":\"linux\"}", &r, &why),
                   0);
  ck_assert_int_eq(r.cmd, GV_CTL_REQUEST);
  ck_assert_str_eq(r.repo, "linux");
  ck_assert_uint_eq(r.max, 16);
  ck_assert_uint_eq(r.wait_ms, 3000);
  ck_assert_int_eq(parse("{\"cmd\":\"request\",\"repo\":\"a\",\"max\":32,"
                         "\"wait_ms\":60000}",
                         &r, &why),
                   0);
  ck_assert_uint_eq(r.max, 32);
  ck_assert_int_eq(
      parse("{\"cmd\":\"repo\",\"op\":\"rm\",\"name\":\"a/b\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_REPO_RM);
  ck_assert_int_eq(parse("{\"cmd\":\"broadcast\",\"on\":false}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_BROADCAST);
  ck_assert(!r.on);
  ck_assert_uint_eq(r.wait_ms, 0); /* answer at once, as before */
  ck_assert_int_eq(
      parse("{\"cmd\":\"broadcast\",\"on\":false,\"wait_ms\":10000}", &r, &why),
      0);
  ck_assert_uint_eq(r.wait_ms, 10000);
  ck_assert_int_eq(parse("{\"cmd\":\"team_reload\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_TEAM_RELOAD);
}
END_TEST

START_TEST(test_rejections) {
  gv_ctl_req r;
  gv_why why;
  static char big[GV_CTL_LINE_MAX + 2];

  ck_assert_int_eq(parse("status", &r, &why), GV_EJSON);
  ck_assert_int_eq(parse("{}", &r, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "cmd"));
  ck_assert_int_eq(parse("{\"cmd\":\"reboot\"}", &r, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "reboot"));
  ck_assert_int_eq(
      parse("{\"cmd\":\"request\",\"repo\":\"has space\"}", &r, &why),
      GV_EFIELD);
  ck_assert_int_eq(
      parse("{\"cmd\":\"request\",\"repo\":\"a\",\"max\":33}", &r, &why),
      GV_ERANGE);
  ck_assert_int_eq(
      parse("{\"cmd\":\"request\",\"repo\":\"a\",\"wait_ms\":1.5}", &r, &why),
      GV_EFIELD);
  /* Found by fuzzing: a huge number is out of range, not UB. */
  ck_assert_int_eq(
      parse("{\"cmd\":\"request\",\"repo\":\"a\",\"max\":5.1e82}", &r, &why),
      GV_ERANGE);
  ck_assert_int_eq(
      parse("{\"cmd\":\"request\",\"repo\":\"a\",\"max\":-1e300}", &r, &why),
      GV_ERANGE);
  ck_assert_int_eq(
      parse("{\"cmd\":\"repo\",\"op\":\"mv\",\"name\":\"a\"}", &r, &why),
      GV_EFIELD);
  ck_assert_int_eq(parse("{\"cmd\":\"broadcast\",\"on\":\"yes\"}", &r, &why),
                   GV_EFIELD);
  ck_assert_int_eq(
      parse("{\"cmd\":\"broadcast\",\"on\":true,\"wait_ms\":60001}", &r, &why),
      GV_ERANGE);
  ck_assert_int_eq(gv_ctl_parse(&r, "{\"cmd\":\"status\"}\0", 17, &why),
                   GV_EJSON);
  memset(big, ' ', sizeof(big));
  ck_assert_int_eq(gv_ctl_parse(&r, big, sizeof(big), &why), GV_ETOOBIG);
}
END_TEST

/* The torrent commands: paths absolute, targets bounded, flags typed. */
START_TEST(test_torrent_commands) {
  gv_ctl_req r;
  gv_why why;
  static char line[GV_CTL_PATH_MAX + 64];

  ck_assert_int_eq(parse("{\"cmd\":\"share\",\"path\":\"/d/f\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_SHARE);
  ck_assert_str_eq(r.path, "/d/f");
  ck_assert_str_eq(r.repo, "");
  ck_assert_int_eq(parse("{\"cmd\":\"share\",\"path\":\"/f\",\"repo\":"
                         "\"data@1\"}",
                         &r, &why),
                   0);
  ck_assert_str_eq(r.repo, "data@1");
  ck_assert_int_eq(parse("{\"cmd\":\"share\",\"path\":\"f\"}", &r, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "absolute"));
  ck_assert_int_eq(parse("{\"cmd\":\"share\",\"path\":\"/a\\nb\"}", &r, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "newline"));
  ck_assert_int_eq(
      parse("{\"cmd\":\"share\",\"path\":\"/f\",\"repo\":\"a b\"}", &r, &why),
      GV_EFIELD);
  ck_assert_int_eq(parse("{\"cmd\":\"share\"}", &r, &why), GV_EFIELD);
  int off = snprintf(line, sizeof(line), "{\"cmd\":\"share\",\"path\":\"/");
  memset(line + off, 'a', GV_CTL_PATH_MAX);
  snprintf(line + off + GV_CTL_PATH_MAX, sizeof(line) - off - GV_CTL_PATH_MAX,
           "\"}");
  ck_assert_int_eq(parse(line, &r, &why), GV_ETOOBIG);

  ck_assert_int_eq(parse("{\"cmd\":\"fetch\",\"target\":\"magnet:?x\","
                         "\"out\":\"/tmp\"}",
                         &r, &why),
                   0);
  ck_assert_int_eq(r.cmd, GV_CTL_FETCH);
  ck_assert_str_eq(r.target, "magnet:?x");
  ck_assert_str_eq(r.path, "/tmp");
  ck_assert_int_eq(
      parse("{\"cmd\":\"fetch\",\"target\":\"\",\"out\":\"/tmp\"}", &r, &why),
      GV_EFIELD);
  ck_assert_int_eq(parse("{\"cmd\":\"fetch\",\"target\":\"ab\"}", &r, &why),
                   GV_EFIELD);
  ck_assert_int_eq(parse("{\"cmd\":\"torrent\",\"hash\":\"ab\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_TORRENT);
  ck_assert_int_eq(parse("{\"cmd\":\"torrents\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_TORRENTS);
  ck_assert_int_eq(parse("{\"cmd\":\"unshare\",\"hash\":\"ab\"}", &r, &why), 0);
  ck_assert_int_eq(r.cmd, GV_CTL_UNSHARE);
  ck_assert(!r.del);
  ck_assert_int_eq(
      parse("{\"cmd\":\"unshare\",\"hash\":\"ab\",\"delete\":true}", &r, &why),
      0);
  ck_assert(r.del);
  ck_assert_int_eq(
      parse("{\"cmd\":\"unshare\",\"hash\":\"ab\",\"delete\":1}", &r, &why),
      GV_EFIELD);
  ck_assert_int_eq(parse("{\"cmd\":\"unshare\",\"hash\":7}", &r, &why),
                   GV_EFIELD);
}
END_TEST

/* The wire's strict JSON layer (proto/json.h), each with its own reason. */
START_TEST(test_strict_json) {
  gv_ctl_req r;
  gv_why why;
  char line[64];

  ck_assert_int_eq(parse("{\"cmd\":\"status\"} x", &r, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "trailing"));
  ck_assert_int_eq(parse("{\"cmd\":\"status\"}{}", &r, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "trailing"));
  ck_assert_int_eq(parse("{\"cmd\":\"status\"} \r", &r, &why), 0);

  ck_assert_int_eq(parse("{\"cmd\":\"status\",\"cmd\":\"peers\"}", &r, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "'cmd' appears twice"));
  ck_assert_int_eq(parse("{\"cmd\":\"repo\",\"op\":\"add\",\"name\":\"a\","
                         "\"name\":\"b\"}",
                         &r, &why),
                   GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "'name' appears twice"));

  /* \u0000 would cut "a\u0000zzz" to "a". */
  ck_assert_int_eq(parse("{\"cmd\":\"repo\",\"op\":\"add\","
                         "\"name\":\"a\\u0000zzz\"}",
                         &r, &why),
                   GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "\\u0000"));
  ck_assert_int_eq(parse("{\"cmd\":\"status\\u0000x\"}", &r, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "\\u0000"));

  /* Invalid UTF-8 is refused, not echoed: a lone continuation byte, an
   * overlong '/', a surrogate, a cut sequence. */
  ck_assert_int_eq(parse("{\"cmd\":\"\x80\"}", &r, &why), GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "not UTF-8 at byte 8"));
  ck_assert_ptr_null(strchr(why.text, '\x80'));
  ck_assert_int_eq(
      parse("{\"cmd\":\"repo\",\"op\":\"add\",\"name\":\"a\xc0\xaf\"}", &r,
            &why),
      GV_EJSON);
  ck_assert_ptr_nonnull(strstr(why.text, "not UTF-8"));
  ck_assert_int_eq(parse("{\"cmd\":\"\xed\xa0\x80\"}", &r, &why), GV_EJSON);
  ck_assert_int_eq(parse("{\"cmd\":\"\xe2\x82\"}", &r, &why), GV_EJSON);

  /* Valid UTF-8 is quoted back only as whole characters: 31 'x' then a
   * two-byte e-acute straddles the 32-byte quote. */
  snprintf(line, sizeof(line), "{\"cmd\":\"%s\xc3\xa9\"}",
           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  ck_assert_int_eq(parse(line, &r, &why), GV_EFIELD);
  ck_assert_ptr_nonnull(strstr(why.text, "xxxxxxx'"));
  ck_assert_ptr_null(strchr(why.text, '\xc3'));
}
END_TEST

/* A broadcast --wait follows a newer record with the state it asked for
 * and reports one with the other state as superseded (never as standing). */
START_TEST(test_uptake_step) {
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, false, 7, false),
                   GV_CTL_UPTAKE_KEEP);
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, true, 6, true), GV_CTL_UPTAKE_KEEP);
  /* A re-announce or repo change keeps the state: follow its uptake. */
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, false, 8, false),
                   GV_CTL_UPTAKE_FOLLOW);
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, true, 9, true),
                   GV_CTL_UPTAKE_FOLLOW);
  /* `broadcast on` from another client during `broadcast off --wait`. */
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, false, 8, true),
                   GV_CTL_UPTAKE_SUPERSEDED);
  ck_assert_int_eq(gv_ctl_uptake_step_of(7, true, 8, false),
                   GV_CTL_UPTAKE_SUPERSEDED);
}
END_TEST

static Suite *ctl_suite(void) {
  Suite *s = suite_create("ctl");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_commands);
  tcase_add_test(tc, test_rejections);
  tcase_add_test(tc, test_torrent_commands);
  tcase_add_test(tc, test_strict_json);
  tcase_add_test(tc, test_uptake_step);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(ctl_suite()); }

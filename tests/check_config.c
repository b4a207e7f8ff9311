/* The node's configuration (node/config.h): keys, files, cross-checks and
 * `grapevine config check`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

static char dir[] = "/tmp/gv-check-config-XXXXXX";
static char path[256], out_path[256], err_path[256];

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/grapevine.conf", dir);
  snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
  snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
}

static void teardown(void) {
  unlink(path);
  unlink(out_path);
  unlink(err_path);
  rmdir(dir);
  strcpy(dir, "/tmp/gv-check-config-XXXXXX");
}

static void write_file(const char *p, const void *data, size_t len) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* Sets key to value and expects err (0: success); on failure the reason
 * must contain `needle`. */
static void expect_set(gv_config *c, const char *key, const char *value,
                       int err, const char *needle) {
  gv_why why = {""};
  int rc = gv_config_set(c, key, value, &why);

  ck_assert_msg(rc == err, "%s = '%s': got %d (%s), want %d", key, value, rc,
                why.text, err);
  if (err != 0 && needle != NULL)
    ck_assert_msg(strstr(why.text, needle) != NULL,
                  "%s = '%s': reason '%s' lacks '%s'", key, value, why.text,
                  needle);
}

static void set_ok(gv_config *c, const char *key, const char *value) {
  expect_set(c, key, value, 0, NULL);
}

/* Fails to set and checks that the reason names the key. */
static void set_bad(gv_config *c, const char *key, const char *value,
                    const char *needle) {
  char named[64];

  snprintf(named, sizeof(named), "key '%s': ", key);
  expect_set(c, key, value, GV_EFIELD, named);
  expect_set(c, key, value, GV_EFIELD, needle);
}

/* For literals, which may hold NUL bytes. */
#define PARSE_BAD(lit, err, prefix) parse_bad(lit, sizeof(lit) - 1, err, prefix)

static int parse(gv_config *c, const char *text, gv_why *why) {
  return gv_config_parse(c, text, strlen(text), why);
}

/* Parses text into a default config and expects err with a reason that
 * starts with `prefix`. */
static void parse_bad(const char *text, size_t len, int err,
                      const char *prefix) {
  gv_config c;
  gv_why why = {""};
  int rc;

  gv_config_default(&c);
  rc = gv_config_parse(&c, text, len, &why);
  ck_assert_msg(rc == err, "got %d (%s), want %d", rc, why.text, err);
  ck_assert_msg(strncmp(why.text, prefix, strlen(prefix)) == 0,
                "reason '%s' does not start with '%s'", why.text, prefix);
}

START_TEST(test_default) {
  gv_config c;

  memset(&c, 0xa5, sizeof(c));
  gv_config_default(&c);
  ck_assert_str_eq(c.data_dir, "");
  ck_assert(!c.broadcast && !c.bootstrap && !c.has_listen && !c.has_metrics);
  ck_assert_str_eq(c.tracker, "");
  ck_assert_int_eq(c.log_level, GV_LOG_INFO);
  ck_assert_uint_eq(c.n_repos, 0);
  ck_assert_uint_eq(c.n_peers, 0);
}
END_TEST

START_TEST(test_data_dir) {
  gv_config c;
  char long_dir[4097];

  gv_config_default(&c);
  set_ok(&c, "data-dir", "/var/lib/grapevine");
  ck_assert_str_eq(c.data_dir, "/var/lib/grapevine");
  set_bad(&c, "data-dir", "", "empty");
  memset(long_dir, 'd', 4095);
  long_dir[4095] = '\0';
  set_ok(&c, "data-dir", long_dir);
  ck_assert_uint_eq(strlen(c.data_dir), 4095);
  long_dir[4095] = 'd';
  long_dir[4096] = '\0';
  set_bad(&c, "data-dir", long_dir, "longer than 4095 bytes");
  ck_assert_uint_eq(strlen(c.data_dir), 4095);
}
END_TEST

START_TEST(test_listen_and_metrics) {
  static const char *const bad[] = {
      "",          "localhost:7411", "1.2.3.4", "1.2.3.4:0",  "1.2.3.4:65536",
      "1.2.3.4:x", "::1:7411",       "[::1]",   " 1.2.3.4:1", "1.2.3.4:07411",
  };
  const char *keys[] = {"listen", "metrics"};
  gv_config c;

  for (int k = 0; k < 2; k++) {
    gv_addr *a;
    gv_config_default(&c);
    a = k == 0 ? &c.listen : &c.metrics;
    set_ok(&c, keys[k], "0.0.0.0:7411");
    ck_assert(k == 0 ? c.has_listen : c.has_metrics);
    ck_assert_uint_eq(a->family, 4);
    ck_assert_uint_eq(a->port, 7411);
    set_ok(&c, keys[k], "[::1]:9411");
    ck_assert_uint_eq(a->family, 6);
    ck_assert_uint_eq(a->ip[15], 1);
    ck_assert_uint_eq(a->port, 9411);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
      set_bad(&c, keys[k], bad[i], "is not a numeric ADDR:PORT");
    /* A failed set keeps the last good value. */
    ck_assert_uint_eq(a->port, 9411);
  }
}
END_TEST

START_TEST(test_booleans) {
  static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "On"};
  static const char *const no[] = {"false", "no", "off", "0", "False", "NO"};
  static const char *const bad[] = {"", "maybe", "2", "truee", "y", " true"};
  gv_config c;

  gv_config_default(&c);
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    set_ok(&c, "broadcast", yes[i]);
    ck_assert(c.broadcast);
    set_ok(&c, "broadcast", no[i]);
    ck_assert(!c.broadcast);
    set_ok(&c, "bootstrap", yes[i]);
    ck_assert(c.bootstrap);
    set_ok(&c, "bootstrap", no[i]);
    ck_assert(!c.bootstrap);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    set_bad(&c, "broadcast", bad[i], "is not a boolean");
    set_bad(&c, "bootstrap", bad[i], "is not a boolean");
  }
}
END_TEST

/* The entry-guard keys: defaults, ranges, and reasons. */
START_TEST(test_guard_keys) {
  gv_config c;

  gv_config_default(&c);
  ck_assert(c.guards);
  ck_assert_uint_eq(c.guard_count, 0);
  ck_assert_int_eq(c.guard_min_age_ms, 3600000);
  ck_assert_int_eq(c.guard_down_ms, 3600000);
  ck_assert_int_eq(c.guard_life_min_ms, 30 * 86400000LL);
  ck_assert_int_eq(c.guard_life_max_ms, 60 * 86400000LL);
  set_ok(&c, "guards", "off");
  ck_assert(!c.guards);
  set_ok(&c, "guard-count", "3");
  ck_assert_uint_eq(c.guard_count, 3);
  set_ok(&c, "guard-min-age", "0");
  ck_assert_int_eq(c.guard_min_age_ms, 0);
  set_ok(&c, "guard-down", "90");
  ck_assert_int_eq(c.guard_down_ms, 90000);
  set_ok(&c, "guard-lifetime", "7-7");
  ck_assert_int_eq(c.guard_life_min_ms, 7 * 86400000LL);
  ck_assert_int_eq(c.guard_life_max_ms, 7 * 86400000LL);
  set_bad(&c, "guards", "sometimes", "is not a boolean");
  set_bad(&c, "guard-count", "0", "is not a count");
  set_bad(&c, "guard-count", "17", "is not a count");
  set_bad(&c, "guard-count", "-1", "is not a count");
  set_bad(&c, "guard-min-age", "1h", "is not seconds");
  set_bad(&c, "guard-min-age", "01", "is not seconds");
  set_bad(&c, "guard-down", "0", "is not seconds");
  set_bad(&c, "guard-lifetime", "60-30", "is not MIN-MAX days");
  set_bad(&c, "guard-lifetime", "30", "is not MIN-MAX days");
  set_bad(&c, "guard-lifetime", "0-30", "is not MIN-MAX days");
  set_bad(&c, "guard-lifetime", "30-366", "is not MIN-MAX days");
  set_bad(&c, "guard-lifetime", "30--60", "is not MIN-MAX days");
  ck_assert_int_eq(c.guard_life_min_ms, 7 * 86400000LL); /* left as it was */
}
END_TEST

/* The torrent session's keys: every privacy switch off by default. */
START_TEST(test_torrent_keys) {
  gv_config c;

  gv_config_default(&c);
  ck_assert_uint_eq(c.torrent_port, 0);
  ck_assert(!c.torrent_dht && !c.torrent_lsd && !c.torrent_upnp &&
            !c.torrent_natpmp && !c.torrent_utp && !c.torrent_pex);
  ck_assert_int_eq(c.torrent_encryption, 0);
  set_ok(&c, "torrent-port", "6881");
  ck_assert_uint_eq(c.torrent_port, 6881);
  set_ok(&c, "torrent-port", "0");
  ck_assert_uint_eq(c.torrent_port, 0);
  set_bad(&c, "torrent-port", "65536", "is not a port");
  set_bad(&c, "torrent-port", "-1", "is not a port");
  set_ok(&c, "torrent-upload-rate", "1048576");
  ck_assert_uint_eq(c.torrent_upload_rate, 1048576);
  set_bad(&c, "torrent-upload-rate", "2147483648", "bytes per second");
  set_ok(&c, "torrent-download-rate", "0");
  set_ok(&c, "torrent-encryption", "disabled");
  ck_assert_int_eq(c.torrent_encryption, 2);
  set_bad(&c, "torrent-encryption", "rc4", "forced, enabled, disabled");
  set_ok(&c, "torrent-dht", "on");
  set_ok(&c, "torrent-pex", "true");
  ck_assert(c.torrent_dht && c.torrent_pex && !c.torrent_lsd);
  set_bad(&c, "torrent-utp", "maybe", "is not a boolean");
}
END_TEST

START_TEST(test_bootstrap_implies_broadcast) {
  gv_config c;

  gv_config_default(&c);
  set_ok(&c, "bootstrap", "false");
  ck_assert(!c.broadcast);
  set_ok(&c, "bootstrap", "true");
  ck_assert(c.bootstrap && c.broadcast);
  /* Turning bootstrap off leaves broadcast as it is. */
  set_ok(&c, "bootstrap", "false");
  ck_assert(!c.bootstrap && c.broadcast);
}
END_TEST

START_TEST(test_repo) {
  gv_config c;
  char name[GV_REPO_MAX + 2];

  gv_config_default(&c);
  set_ok(&c, "repo", "github.com/grapevine/grapevine");
  set_ok(&c, "repo", "a");
  ck_assert_uint_eq(c.n_repos, 2);
  ck_assert_str_eq(c.repos[0], "github.com/grapevine/grapevine");
  ck_assert_str_eq(c.repos[1], "a");
  set_bad(&c, "repo", "", "is not a repository name");
  set_bad(&c, "repo", "has space", "is not a repository name");
  set_bad(&c, "repo", "semi;colon", "is not a repository name");
  memset(name, 'r', GV_REPO_MAX + 1);
  name[GV_REPO_MAX + 1] = '\0';
  set_bad(&c, "repo", name, "is not a repository name");
  name[GV_REPO_MAX] = '\0';
  set_ok(&c, "repo", name);
  set_bad(&c, "repo", "a", "'a' is listed twice");
  ck_assert_uint_eq(c.n_repos, 3);
}
END_TEST

START_TEST(test_repo_limit) {
  gv_config c;
  char name[16];

  gv_config_default(&c);
  for (int i = 0; i < GV_MAX_REPOS; i++) {
    snprintf(name, sizeof(name), "repo%d", i);
    set_ok(&c, "repo", name);
  }
  ck_assert_uint_eq(c.n_repos, GV_MAX_REPOS);
  expect_set(&c, "repo", "one-more", GV_ELIMIT,
             "key 'repo': more than 64 repositories");
  /* A duplicate is named as such even when full. */
  expect_set(&c, "repo", "repo0", GV_EFIELD, "listed twice");
  ck_assert_uint_eq(c.n_repos, GV_MAX_REPOS);
}
END_TEST

START_TEST(test_peer) {
  static const char *const good[] = {
      "example.org:7411", "1.2.3.4:1",         "[2001:db8::1]:65535",
      "a-b.c0:7411",      "localhost:7411",    "[::ffff:1.2.3.4]:7411",
      "UPPER.Example:80", "0123.example:7411",
  };
  static const struct {
    const char *v, *why;
  } bad[] = {
      {"", "empty"},
      {"example.org", "is not HOST:PORT"},
      {"example.org:", "port '' is not 1..65535"},
      {"example.org:0", "port '0' is not 1..65535"},
      {"example.org:65536", "is not 1..65535"},
      {"example.org:07411", "is not 1..65535"},
      {"example.org:+1", "is not 1..65535"},
      {":7411", "'' is not a host name"},
      {"-bad.org:1", "is not a host name"},
      {"bad-.org:1", "is not a host name"},
      {"a..b:1", "is not a host name"},
      {".a:1", "is not a host name"},
      {"a.:1", "is not a host name"},
      {"under_score:1", "is not a host name"},
      {"sp ace:1", "is not a host name"},
      {"999.1.1.1:1", "is not a host name or IPv4 address"},
      {"1.2.3:1", "is not a host name or IPv4 address"},
      {"2001:db8::1:7411", "an IPv6 address goes in brackets"},
      {"[2001:db8::1]7411", "is not [IPv6]:PORT"},
      {"[2001:db8::1]", "is not [IPv6]:PORT"},
      {"[nothex]:1", "'nothex' is not an IPv6 address"},
      {"[1.2.3.4]:1", "is not an IPv6 address"},
  };
  char v[GV_CONFIG_PEER_MAX + 8];
  gv_config c;
  size_t n = 0;

  gv_config_default(&c);
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    set_ok(&c, "peer", good[i]);
    ck_assert_str_eq(c.peers[i], good[i]);
  }
  ck_assert_uint_eq(c.n_peers, sizeof(good) / sizeof(good[0]));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    set_bad(&c, "peer", bad[i].v, bad[i].why);
  set_bad(&c, "peer", "example.org:7411", "listed twice");
  /* A 63-byte label is the longest. */
  memset(v, 'l', 64);
  strcpy(v + 64, ".org:1");
  set_bad(&c, "peer", v, "is not a host name");
  strcpy(v + 63, ".org:1");
  set_ok(&c, "peer", v);
  /* 253 bytes of host and ":1" is 255, the longest peer. */
  for (n = 0; n < 253; n += 2)
    memcpy(v + n, "a.", 2);
  memcpy(v + 252, "a:1", 4);
  ck_assert_uint_eq(strlen(v), GV_CONFIG_PEER_MAX - 1);
  set_ok(&c, "peer", v);
  memcpy(v + 252, "ab:1", 5);
  set_bad(&c, "peer", v, "longer than 255 bytes");
  memcpy(v + 252, "a:12", 5);
  set_bad(&c, "peer", v, "longer than 255 bytes");
  /* A host of 254 bytes is too long even where the whole would fit. */
  memcpy(v + 250, "aaaa:", 6);
  set_bad(&c, "peer", v, "is not a host name");
}
END_TEST

START_TEST(test_peer_limit) {
  gv_config c;
  char v[32];

  gv_config_default(&c);
  for (int i = 0; i < GV_CONFIG_MAX_PEERS; i++) {
    snprintf(v, sizeof(v), "peer%d.example:7411", i);
    set_ok(&c, "peer", v);
  }
  expect_set(&c, "peer", "one-more.example:7411", GV_ELIMIT,
             "key 'peer': more than 32 peers");
  expect_set(&c, "peer", "bad host:1", GV_EFIELD, "is not a host name");
  ck_assert_uint_eq(c.n_peers, GV_CONFIG_MAX_PEERS);
}
END_TEST

START_TEST(test_tracker) {
  static const struct {
    const char *v, *why;
  } bad[] = {
      {"", "is not an http:// or https:// URL"},
      {"ftp://tracker.example/", "is not an http:// or https:// URL"},
      {"tracker.example", "is not an http:// or https:// URL"},
      {"http:/tracker.example", "is not an http:// or https:// URL"},
      {"http://", "has no host"},
      {"https:///path", "has no host"},
      {"http://?q", "has no host"},
      {"http://a b/", "byte 9 is a space"},
      {"http://a/\tb", "byte 10 is a space, control"},
      {"http://a/\x7f", "control"},
      {"http://caf\xc3\xa9.example/", "non-ASCII"},
  };
  char url[GV_CONFIG_URL_MAX + 1];
  gv_config c;

  gv_config_default(&c);
  set_ok(&c, "tracker", "http://tracker.example:8080/");
  ck_assert_str_eq(c.tracker, "http://tracker.example:8080/");
  set_ok(&c, "tracker", "HTTPS://tracker.example/v1?x=1#top");
  ck_assert_str_eq(c.tracker, "HTTPS://tracker.example/v1?x=1#top");
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    set_bad(&c, "tracker", bad[i].v, bad[i].why);
  strcpy(url, "https://t.example/");
  memset(url + strlen(url), 'p', GV_CONFIG_URL_MAX - 1 - strlen(url));
  url[GV_CONFIG_URL_MAX - 1] = '\0';
  set_ok(&c, "tracker", url);
  ck_assert_uint_eq(strlen(c.tracker), GV_CONFIG_URL_MAX - 1);
  url[GV_CONFIG_URL_MAX - 1] = 'p';
  url[GV_CONFIG_URL_MAX] = '\0';
  set_bad(&c, "tracker", url, "longer than 511 bytes");
}
END_TEST

START_TEST(test_log_level) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  gv_config c;

  gv_config_default(&c);
  for (int i = 0; i < 4; i++) {
    set_ok(&c, "log-level", names[i]);
    ck_assert_int_eq(c.log_level, i);
  }
  set_ok(&c, "log-level", "WARN");
  ck_assert_int_eq(c.log_level, GV_LOG_WARN);
  set_bad(&c, "log-level", "verbose", "is not one of error, warn, info, debug");
  set_bad(&c, "log-level", "", "is not one of");
  set_bad(&c, "log-level", "warning", "is not one of");
  ck_assert_int_eq(c.log_level, GV_LOG_WARN);
}
END_TEST

START_TEST(test_unknown_key) {
  gv_config c;

  gv_config_default(&c);
  expect_set(&c, "lisen", "0.0.0.0:7411", GV_EFIELD,
             "key 'lisen': unknown; the keys are data-dir, listen, ");
  expect_set(&c, "", "x", GV_EFIELD, "key '': unknown");
  expect_set(&c, "Listen", "0.0.0.0:7411", GV_EFIELD, "unknown");
  ck_assert(!c.has_listen);
}
END_TEST

START_TEST(test_parse_file) {
  static const char text[] = "# Grapevine\n"
                             "\n"
                             "data-dir = /srv/gv#1   \n"
                             "listen=192.0.2.1:7411\r\n"
                             "   \t\n"
                             "  # indented comment\n"
                             "bootstrap\t=\ttrue # a seed node\n"
                             "repo = a/b\n"
                             "repo =c #d\n"
                             "peer = seed.example:7411\r\n"
                             "tracker = https://t.example/#frag\n"
                             "metrics = 127.0.0.1:9411\n"
                             "log-level = debug";
  gv_config c;
  gv_why why = {""};

  gv_config_default(&c);
  ck_assert_int_eq(parse(&c, text, &why), 0);
  /* '#' starts a comment only first on a line or after whitespace. */
  ck_assert_str_eq(c.data_dir, "/srv/gv#1");
  ck_assert(c.has_listen && c.listen.port == 7411);
  ck_assert(c.bootstrap && c.broadcast);
  ck_assert_uint_eq(c.n_repos, 2);
  ck_assert_str_eq(c.repos[0], "a/b");
  ck_assert_str_eq(c.repos[1], "c");
  ck_assert_uint_eq(c.n_peers, 1);
  ck_assert_str_eq(c.peers[0], "seed.example:7411");
  ck_assert_str_eq(c.tracker, "https://t.example/#frag");
  ck_assert(c.has_metrics && c.metrics.port == 9411);
  ck_assert_int_eq(c.log_level, GV_LOG_DEBUG);
  ck_assert_int_eq(gv_config_validate(&c, &why), 0);
}
END_TEST

START_TEST(test_parse_empty) {
  static const char *const texts[] = {"",    "\n",     "\r\n\r\n",
                                      "# x", "  \t  ", "#\n#\n"};
  gv_config c, d;
  gv_why why = {""};

  gv_config_default(&d);
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    gv_config_default(&c);
    ck_assert_int_eq(parse(&c, texts[i], &why), 0);
    ck_assert_mem_eq(&c, &d, sizeof(c));
  }
  /* len 0 with no text at all. */
  ck_assert_int_eq(gv_config_parse(&c, NULL, 0, &why), 0);
}
END_TEST

START_TEST(test_parse_line_numbers) {
  static const char text[] = "# 1\n"
                             "repo = ok\n"
                             "\r\n"
                             "repo = not ok\n"
                             "repo = never reached\n";
  char lines[64];

  parse_bad(text, strlen(text), GV_EFIELD,
            "line 4: key 'repo': 'not ok' is not a repository name");
  PARSE_BAD("a = b", GV_EFIELD, "line 1: key 'a': unknown; the keys are ");
  PARSE_BAD("\n\nlisten = 0.0.0.0\n", GV_EFIELD,
            "line 3: key 'listen': '0.0.0.0' is not a numeric ADDR:PORT");
  /* The last line needs no newline. */
  PARSE_BAD("\n\nlog-level = loud", GV_EFIELD,
            "line 3: key 'log-level': 'loud'");
  memset(lines, '\n', sizeof(lines));
  memcpy(lines + 60, "x=1", 3);
  parse_bad(lines, 63, GV_EFIELD, "line 61: key 'x': unknown");
}
END_TEST

START_TEST(test_parse_syntax) {
  char key[64];

  PARSE_BAD("repo = a\nlisten 0.0.0.0:7411\n", GV_EFIELD,
            "line 2: expected key = value, not 'listen 0.0.0.0:7411'");
  PARSE_BAD("= x\n", GV_EFIELD, "line 1: no key before '='");
  PARSE_BAD("  \t= x\n", GV_EFIELD, "line 1: no key before '='");
  /* A comment marker glued to a key is part of it. */
  PARSE_BAD("repo# = a\n", GV_EFIELD, "line 1: key 'repo#': unknown");
  PARSE_BAD("log level = info\n", GV_EFIELD,
            "line 1: key 'log level': unknown");
  /* The value is everything after the first '='. */
  PARSE_BAD("data-dir = \n", GV_EFIELD,
            "line 1: key 'data-dir': empty; give a directory");
  PARSE_BAD("repo = a = b\n", GV_EFIELD, "line 1: key 'repo': 'a = b'");
  /* No value begins with '#': it would not survive being written back. */
  PARSE_BAD("data-dir =#x\n", GV_EFIELD,
            "line 1: key 'data-dir': empty; give a directory");
  PARSE_BAD("data-dir=# x\n", GV_EFIELD,
            "line 1: key 'data-dir': empty; give a directory");
  /* A long key is cut to 32 bytes in the reason and stays unknown. */
  memset(key, 'k', sizeof(key));
  memcpy(key + 40, "=v", 2);
  parse_bad(key, 42, GV_EFIELD,
            "line 1: key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk': unknown");
}
END_TEST

START_TEST(test_parse_repeats) {
  static const char *const singles[] = {
      "data-dir = /a\ndata-dir = /b\n",
      "listen = 1.2.3.4:1\n\nlisten = 1.2.3.4:2\n",
      "broadcast = true\nbroadcast = true\n",
      "bootstrap = false\nbootstrap = true\n",
      "tracker = http://a/\ntracker = http://b/\n",
      "metrics = 127.0.0.1:1\nmetrics = 127.0.0.1:2\n",
      "log-level = info\nlog-level = info\n",
  };
  gv_config c;
  gv_why why = {""};
  char want[96];
  char key[16];

  for (size_t i = 0; i < sizeof(singles) / sizeof(singles[0]); i++) {
    int line = strstr(singles[i], "\n\n") ? 3 : 2;
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(singles[i], " "),
             singles[i]);
    snprintf(want, sizeof(want), "line %d: key '%s': already set on line 1",
             line, key);
    parse_bad(singles[i], strlen(singles[i]), GV_EFIELD, want);
  }
  /* repo and peer repeat; an exact duplicate is refused. */
  gv_config_default(&c);
  ck_assert_int_eq(
      parse(&c, "repo = a\nrepo = b\npeer = h:1\npeer = h:2\n", &why), 0);
  ck_assert_uint_eq(c.n_repos, 2);
  ck_assert_uint_eq(c.n_peers, 2);
  PARSE_BAD("peer = h:1\npeer = h:1\n", GV_EFIELD,
            "line 2: key 'peer': 'h:1' is listed twice");
  /* Each parse is one source: a second file may set a key again, as a flag
   * may after a file. */
  ck_assert_int_eq(parse(&c, "log-level = warn\n", &why), 0);
  ck_assert_int_eq(parse(&c, "log-level = error\n", &why), 0);
  ck_assert_int_eq(c.log_level, GV_LOG_ERROR);
  ck_assert_int_eq(gv_config_set(&c, "log-level", "debug", &why), 0);
  ck_assert_int_eq(c.log_level, GV_LOG_DEBUG);
}
END_TEST

START_TEST(test_parse_limits) {
  char text[GV_MAX_REPOS * 16 + 64];
  size_t len = 0;

  for (int i = 0; i <= GV_MAX_REPOS; i++)
    len += (size_t)sprintf(text + len, "repo = r%d\n", i);
  parse_bad(text, len, GV_ELIMIT,
            "line 65: key 'repo': more than 64 repositories");
}
END_TEST

START_TEST(test_parse_nul_and_control) {
  PARSE_BAD("repo = a\0b\n", GV_EFIELD, "line 1: NUL byte at column 9");
  PARSE_BAD("repo = a\n\0", GV_EFIELD, "line 2: NUL byte at column 1");
  /* A NUL inside a comment is refused too: the file is not text. */
  PARSE_BAD("# \0\n", GV_EFIELD, "line 1: NUL byte");
  PARSE_BAD("repo = a\x01\n", GV_EFIELD,
            "line 1: control character 0x01 at column 9");
  PARSE_BAD("repo = a\rb\n", GV_EFIELD,
            "line 1: control character 0x0d at column 9");
  PARSE_BAD("repo = a\r\r\n", GV_EFIELD, "line 1: control character 0x0d");
  PARSE_BAD("repo = a\x7f\n", GV_EFIELD, "line 1: control character 0x7f");
}
END_TEST

START_TEST(test_parse_long_line) {
  static char text[8192 + 64];
  gv_config c;
  gv_why why = {""};

  memset(text, '#', 8192);
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_parse(&c, text, 8192, &why), 0);
  /* The limit counts the line without its newline (or CRLF). */
  memcpy(text + 8192, "\r\nrepo = a", 10);
  ck_assert_int_eq(gv_config_parse(&c, text, 8202, &why), 0);
  ck_assert_uint_eq(c.n_repos, 1);
  text[8192] = '#';
  parse_bad(text, 8193, GV_ETOOBIG, "line 1: longer than 8192 bytes");
  /* The longest data-dir fits on a line. */
  memcpy(text, "data-dir = ", 11);
  memset(text + 11, 'd', 4095);
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_parse(&c, text, 11 + 4095, &why), 0);
  ck_assert_uint_eq(strlen(c.data_dir), 4095);
}
END_TEST

START_TEST(test_parse_atomic) {
  gv_config c, before;
  gv_why why = {""};

  gv_config_default(&c);
  set_ok(&c, "data-dir", "/keep");
  set_ok(&c, "repo", "kept");
  before = c;
  ck_assert_int_lt(parse(&c,
                         "repo = new\nlisten = 1.2.3.4:1\nbootstrap = true\n"
                         "peer = bad\n",
                         &why),
                   0);
  ck_assert_mem_eq(&c, &before, sizeof(c));
}
END_TEST

START_TEST(test_load_file) {
  static const char good[] = "listen = 0.0.0.0:7411\nbroadcast = yes\n";
  static const char bad[] = "listen = 0.0.0.0:7411\nbroadcast = sure\n";
  gv_config c;
  gv_why why = {""};
  char want[320];

  write_file(path, good, strlen(good));
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), 0);
  ck_assert(c.has_listen && c.broadcast);
  write_file(path, bad, strlen(bad));
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), GV_EFIELD);
  snprintf(want, sizeof(want),
           "%s: line 2: key 'broadcast': 'sure' is not a boolean", path);
  ck_assert_msg(strncmp(why.text, want, strlen(want)) == 0, "%s", why.text);
  ck_assert(!c.has_listen);
}
END_TEST

START_TEST(test_load_missing) {
  gv_config c;
  gv_why why = {""};
  char want[320];

  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), -ENOENT);
  snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
  ck_assert_str_eq(why.text, want);
  ck_assert_int_eq(gv_config_load_file(&c, dir, &why), -EISDIR);
}
END_TEST

START_TEST(test_load_too_big) {
  gv_config c;
  gv_why why = {""};
  char want[320];
  int fd;

  /* Sparse and all NUL bytes: reading it would fail on the first line, so
   * GV_ETOOBIG shows the size was checked before. */
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(truncate(path, GV_CONFIG_FILE_MAX + 1), 0);
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), GV_ETOOBIG);
  snprintf(want, sizeof(want),
           "%s: 65537 bytes; a configuration file has at most 65536", path);
  ck_assert_str_eq(why.text, want);
  ck_assert_int_eq(truncate(path, 1LL << 32), 0);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), GV_ETOOBIG);
  /* At the limit it is read, and refused for what it holds. */
  ck_assert_int_eq(truncate(path, GV_CONFIG_FILE_MAX), 0);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), GV_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(why.text, ": line 1: longer than 8192 bytes"));
}
END_TEST

START_TEST(test_load_at_limit) {
  static char text[GV_CONFIG_FILE_MAX];
  gv_config c;
  gv_why why = {""};

  /* 65536 bytes: 1023 comment lines of 64 bytes, then a key. */
  for (size_t i = 0; i < 1023; i++) {
    memset(text + i * 64, '#', 63);
    text[i * 64 + 63] = '\n';
  }
  memset(text + 1023 * 64, ' ', 64);
  memcpy(text + 1023 * 64, "repo = last", 11);
  write_file(path, text, sizeof(text));
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, path, &why), 0);
  ck_assert_uint_eq(c.n_repos, 1);
  ck_assert_str_eq(c.repos[0], "last");
}
END_TEST

START_TEST(test_load_unsized) {
  gv_config c;
  gv_why why = {""};

  /* A device has no size to check: the read stops one byte past the
   * limit. */
  gv_config_default(&c);
  ck_assert_int_eq(gv_config_load_file(&c, "/dev/zero", &why), GV_ETOOBIG);
  ck_assert_str_eq(why.text, "/dev/zero: more than 65536 bytes; a "
                             "configuration file has at most 65536");
  ck_assert_int_eq(gv_config_load_file(&c, "/dev/null", &why), 0);
}
END_TEST

START_TEST(test_example_file) {
  static const char example[] = "dist/grapevine.conf.example";
  char text[8192], *p, *line;
  gv_config c;
  gv_why why = {""};
  FILE *f;
  size_t len;

  /* As shipped. */
  gv_config_default(&c);
  ck_assert_msg(gv_config_load_file(&c, example, &why) == 0, "%s", why.text);
  ck_assert_int_eq(gv_config_validate(&c, &why), 0);
  ck_assert(c.has_metrics && c.metrics.port == 9411);
  ck_assert(!c.has_listen);
  /* With every commented-out key line turned on. */
  f = fopen(example, "r");
  ck_assert_ptr_nonnull(f);
  len = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[len] = '\0';
  for (p = text; (line = strstr(p, "\n#")) != NULL; p = line + 1)
    if (line[2] >= 'a' && line[2] <= 'z')
      line[1] = ' ';
  gv_config_default(&c);
  ck_assert_msg(gv_config_parse(&c, text, len, &why) == 0, "%s", why.text);
  ck_assert_msg(gv_config_validate(&c, &why) == 0, "%s", why.text);
  ck_assert(c.has_listen && c.n_repos == 2 && c.n_peers == 3);
  ck_assert_str_ne(c.data_dir, "");
  ck_assert_str_ne(c.tracker, "");
}
END_TEST

static void validate_bad(const char *text, const char *reason) {
  gv_config c;
  gv_why why = {""};

  gv_config_default(&c);
  ck_assert_int_eq(parse(&c, text, &why), 0);
  ck_assert_int_eq(gv_config_validate(&c, &why), GV_EINVAL);
  ck_assert_str_eq(why.text, reason);
}

static void validate_ok(const char *text) {
  gv_config c;
  gv_why why = {""};

  gv_config_default(&c);
  ck_assert_int_eq(parse(&c, text, &why), 0);
  ck_assert_msg(gv_config_validate(&c, &why) == 0, "%s", why.text);
}

START_TEST(test_validate) {
  gv_config c;
  gv_why why = {""};

  gv_config_default(&c);
  ck_assert_int_eq(gv_config_validate(&c, &why), 0);
  validate_ok("listen = 192.0.2.1:7411\n");
  validate_ok("listen = 192.0.2.1:7411\nbootstrap = on\n");
  validate_ok("listen = [2001:db8::1]:7411\nbroadcast = on\n");
  validate_bad("broadcast = true\n", "broadcast needs listen = ADDR:PORT");
  validate_bad("bootstrap = true\n", "broadcast needs listen = ADDR:PORT");
  validate_bad("listen = 192.0.2.1:7411\nbootstrap = true\nbroadcast = no\n",
               "bootstrap needs broadcast; remove broadcast = false");
  /* The listen address is advertised as it is. */
  validate_bad("listen = 0.0.0.0:7411\n",
               "listen is the address other nodes are told to dial: give one "
               "they can reach, not 0.0.0.0");
  validate_bad("listen = [::]:7411\nbroadcast = true\n",
               "listen is the address other nodes are told to dial: give one "
               "they can reach, not [::]");
  /* A port 0 can only come from a struct filled by hand. */
  gv_config_default(&c);
  c.has_listen = true;
  c.listen.family = 4;
  ck_assert_int_eq(gv_config_validate(&c, &why), GV_EINVAL);
  ck_assert_str_eq(why.text, "listen needs a port 1..65535, not 0");
}
END_TEST

START_TEST(test_validate_metrics) {
  /* Serving metrics is always asked for; any address is allowed. */
  validate_ok("metrics = 127.0.0.1:9411\n");
  validate_ok("metrics = 0.0.0.0:9411\n");
  validate_ok("metrics = [::]:9411\n");
  validate_ok("metrics = 127.0.0.1:7411\nlisten = 10.0.0.1:7411\n");
  validate_ok("metrics = [::1]:7411\nlisten = 127.0.0.1:7411\n");
  validate_bad("metrics = 127.0.0.1:7411\nlisten = 127.0.0.1:7411\n",
               "metrics (127.0.0.1:7411) and listen (127.0.0.1:7411) cannot "
               "share a port");
  validate_bad("metrics = 0.0.0.0:7411\nlisten = 127.0.0.1:7411\n",
               "metrics (0.0.0.0:7411) and listen (127.0.0.1:7411) cannot "
               "share a port");
  validate_bad("metrics = [::]:7411\nlisten = 10.0.0.1:7411\n",
               "metrics ([::]:7411) and listen (10.0.0.1:7411) cannot "
               "share a port");
}
END_TEST

/* Runs `grapevine config ARGS...` with stdout and stderr captured into out
 * and err (NUL-terminated, cut to 1 KiB). Returns the exit status. */
static int run_config(char *out, char *err, const char *const *args) {
  char *argv[8];
  int argc = 0, rc, so, se, fo, fe;
  ssize_t n;

  argv[argc++] = (char *)"config";
  for (; *args != NULL; args++)
    argv[argc++] = (char *)*args;
  argv[argc] = NULL;
  fflush(stdout);
  fflush(stderr);
  so = dup(1);
  se = dup(2);
  fo = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  fe = open(err_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  ck_assert(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
  dup2(fo, 1);
  dup2(fe, 2);
  rc = gv_cmd_config(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(so, 1);
  dup2(se, 2);
  close(so);
  close(se);
  n = pread(fo, out, 1023, 0);
  out[n > 0 ? n : 0] = '\0';
  n = pread(fe, err, 1023, 0);
  err[n > 0 ? n : 0] = '\0';
  close(fo);
  close(fe);
  return rc;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_cmd_usage) {
  char out[1024], err[1024];

  ck_assert_int_eq(run_config(out, err, ARGS("--help")), 0);
  ck_assert_int_eq(strncmp(out, "usage: grapevine config check FILE\n", 35), 0);
  ck_assert_str_eq(err, "");
  ck_assert_int_eq(run_config(out, err, ARGS("check", "--help")), 0);
  ck_assert_int_eq(strncmp(out, "usage: grapevine config ", 24), 0);
  ck_assert_int_eq(run_config(out, err, (const char *const[]){NULL}), 2);
  ck_assert_int_eq(strncmp(err, "usage: grapevine config ", 24), 0);
  ck_assert_str_eq(out, "");
  ck_assert_int_eq(run_config(out, err, ARGS("check")), 2);
  ck_assert_int_eq(strncmp(err, "usage: grapevine config ", 24), 0);
  ck_assert_int_eq(run_config(out, err, ARGS("check", "a", "b")), 2);
  ck_assert_int_eq(strncmp(err, "usage: grapevine config ", 24), 0);
  ck_assert_int_eq(run_config(out, err, ARGS("--frob", "check", path)), 2);
  ck_assert_ptr_nonnull(strstr(err, "usage: grapevine config "));
  ck_assert_int_eq(run_config(out, err, ARGS("lint", path)), 2);
  ck_assert_str_eq(err, "grapevine config: unknown subcommand 'lint'\n");
}
END_TEST

START_TEST(test_cmd_check) {
  static const char good[] = "# a silent node\nrepo = a\n";
  static const char bad[] = "repo = a\nrepo = b c\n";
  static const char invalid[] = "broadcast = true\n";
  char out[1024], err[1024], want[512];

  write_file(path, good, strlen(good));
  ck_assert_int_eq(run_config(out, err, ARGS("check", path)), 0);
  snprintf(want, sizeof(want), "%s: ok\n", path);
  ck_assert_str_eq(out, want);
  ck_assert_str_eq(err, "");

  write_file(path, bad, strlen(bad));
  ck_assert_int_eq(run_config(out, err, ARGS("check", path)), 1);
  snprintf(want, sizeof(want),
           "%s: line 2: key 'repo': 'b c' is not a repository name "
           "(1..64 of A-Za-z0-9._-/:@+)\n",
           path);
  ck_assert_str_eq(err, want);
  ck_assert_str_eq(out, "");

  write_file(path, invalid, strlen(invalid));
  ck_assert_int_eq(run_config(out, err, ARGS("check", path)), 1);
  snprintf(want, sizeof(want), "%s: broadcast needs listen = ADDR:PORT\n",
           path);
  ck_assert_str_eq(err, want);

  unlink(path);
  ck_assert_int_eq(run_config(out, err, ARGS("check", path)), 1);
  snprintf(want, sizeof(want), "%s: %s\n", path, strerror(ENOENT));
  ck_assert_str_eq(err, want);
}
END_TEST

static Suite *config_suite(void) {
  Suite *s = suite_create("config");
  TCase *keys = tcase_create("keys");
  TCase *text = tcase_create("parse");
  TCase *files = tcase_create("files");
  TCase *rules = tcase_create("validate");
  TCase *cmd = tcase_create("command");

  tcase_add_test(keys, test_default);
  tcase_add_test(keys, test_data_dir);
  tcase_add_test(keys, test_listen_and_metrics);
  tcase_add_test(keys, test_booleans);
  tcase_add_test(keys, test_guard_keys);
  tcase_add_test(keys, test_torrent_keys);
  tcase_add_test(keys, test_bootstrap_implies_broadcast);
  tcase_add_test(keys, test_repo);
  tcase_add_test(keys, test_repo_limit);
  tcase_add_test(keys, test_peer);
  tcase_add_test(keys, test_peer_limit);
  tcase_add_test(keys, test_tracker);
  tcase_add_test(keys, test_log_level);
  tcase_add_test(keys, test_unknown_key);
  suite_add_tcase(s, keys);

  tcase_add_test(text, test_parse_file);
  tcase_add_test(text, test_parse_empty);
  tcase_add_test(text, test_parse_line_numbers);
  tcase_add_test(text, test_parse_syntax);
  tcase_add_test(text, test_parse_repeats);
  tcase_add_test(text, test_parse_limits);
  tcase_add_test(text, test_parse_nul_and_control);
  tcase_add_test(text, test_parse_long_line);
  tcase_add_test(text, test_parse_atomic);
  suite_add_tcase(s, text);

  tcase_add_checked_fixture(files, setup, teardown);
  tcase_add_test(files, test_load_file);
  tcase_add_test(files, test_load_missing);
  tcase_add_test(files, test_load_too_big);
  tcase_add_test(files, test_load_at_limit);
  tcase_add_test(files, test_load_unsized);
  tcase_add_test(files, test_example_file);
  suite_add_tcase(s, files);

  tcase_add_test(rules, test_validate);
  tcase_add_test(rules, test_validate_metrics);
  suite_add_tcase(s, rules);

  tcase_add_checked_fixture(cmd, setup, teardown);
  tcase_add_test(cmd, test_cmd_usage);
  tcase_add_test(cmd, test_cmd_check);
  suite_add_tcase(s, cmd);
  return s;
}

int main(void) { return tu_run(config_suite()); }

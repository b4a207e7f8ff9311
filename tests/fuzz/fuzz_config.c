/* libFuzzer target: configuration files (node/config.h).
 *
 * The input is a file's text, parsed into a default config and then
 * cross-checked with gv_config_validate(). Checked: every return is 0 or a
 * GV_E* code; every failure writes a NUL-terminated reason (a parse
 * failure's starts "line N: ") and a failed parse leaves the config as it
 * was; a parsed config keeps every string NUL-terminated inside its array,
 * every count within its limit and every repository name valid; and the
 * config written back as text parses again to the same config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node/config.h"
#include "fuzz.h"

static int is_gv_error(int rc) {
  return rc <= -(GV__ERR_FIRST + 1) && rc >= -(GV__ERR_FIRST + GV__ERR_COUNT);
}

static int terminated(const char *s, size_t cap) {
  return memchr(s, '\0', cap) != NULL;
}

/* Checks a failure's reason: written, NUL-terminated, not empty. */
static void check_why(const gv_why *why) {
  FZ_CHECK(terminated(why->text, sizeof(why->text)));
  FZ_CHECK(why->text[0] != '\0' && why->text[0] != '\x7f');
}

static void check_config(const gv_config *c) {
  FZ_CHECK(terminated(c->data_dir, sizeof(c->data_dir)));
  FZ_CHECK(terminated(c->tracker, sizeof(c->tracker)));
  FZ_CHECK(c->log_level >= GV_LOG_ERROR && c->log_level <= GV_LOG_DEBUG);
  FZ_CHECK(c->n_repos <= GV_MAX_REPOS);
  FZ_CHECK(c->n_peers <= GV_CONFIG_MAX_PEERS);
  FZ_CHECK(!c->has_listen || c->listen.port != 0);
  FZ_CHECK(!c->has_metrics || c->metrics.port != 0);
  for (size_t i = 0; i < c->n_repos; i++) {
    FZ_CHECK(terminated(c->repos[i], sizeof(c->repos[i])));
    FZ_CHECK(gv_repo_name_check(c->repos[i], strlen(c->repos[i])) == 0);
  }
  for (size_t i = 0; i < c->n_peers; i++) {
    FZ_CHECK(terminated(c->peers[i], sizeof(c->peers[i])));
    FZ_CHECK(strlen(c->peers[i]) > 2);
  }
}

static int config_equal(const gv_config *a, const gv_config *b) {
  if (strcmp(a->data_dir, b->data_dir) != 0 || a->broadcast != b->broadcast ||
      a->bootstrap != b->bootstrap || a->has_listen != b->has_listen ||
      (a->has_listen && !gv_addr_equal(&a->listen, &b->listen)) ||
      strcmp(a->tracker, b->tracker) != 0 || a->has_metrics != b->has_metrics ||
      (a->has_metrics && !gv_addr_equal(&a->metrics, &b->metrics)) ||
      a->log_level != b->log_level || a->n_repos != b->n_repos ||
      a->n_peers != b->n_peers)
    return 0;
  for (size_t i = 0; i < a->n_repos; i++)
    if (strcmp(a->repos[i], b->repos[i]) != 0)
      return 0;
  for (size_t i = 0; i < a->n_peers; i++)
    if (strcmp(a->peers[i], b->peers[i]) != 0)
      return 0;
  return 1;
}

/* Appends "key = value\n"; the buffer is sized for every key at its
 * longest. */
static void put(char *buf, size_t cap, size_t *len, const char *key,
                const char *value) {
  int n = snprintf(buf + *len, cap - *len, "%s = %s\n", key, value);
  FZ_CHECK(n > 0 && (size_t)n < cap - *len);
  *len += (size_t)n;
}

/* Writes c back as a file's text. bootstrap comes before broadcast, as
 * setting it also sets broadcast. */
static size_t render(const gv_config *c, char *buf, size_t cap) {
  static const char *const levels[] = {"error", "warn", "info", "debug"};
  char addr[GV_ADDR_TEXT_MAX];
  size_t len = 0;

  if (c->data_dir[0] != '\0')
    put(buf, cap, &len, "data-dir", c->data_dir);
  if (c->has_listen) {
    gv_addr_format(&c->listen, addr);
    put(buf, cap, &len, "listen", addr);
  }
  put(buf, cap, &len, "bootstrap", c->bootstrap ? "true" : "false");
  put(buf, cap, &len, "broadcast", c->broadcast ? "true" : "false");
  for (size_t i = 0; i < c->n_repos; i++)
    put(buf, cap, &len, "repo", c->repos[i]);
  for (size_t i = 0; i < c->n_peers; i++)
    put(buf, cap, &len, "peer", c->peers[i]);
  if (c->tracker[0] != '\0')
    put(buf, cap, &len, "tracker", c->tracker);
  if (c->has_metrics) {
    gv_addr_format(&c->metrics, addr);
    put(buf, cap, &len, "metrics", addr);
  }
  put(buf, cap, &len, "log-level", levels[c->log_level]);
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char text[sizeof(gv_config) + 4096];
  gv_config c, before, again;
  gv_why why;
  size_t len;
  int rc;

  gv_config_default(&c);
  before = c;
  memset(&why, 0x7f, sizeof(why));
  rc = gv_config_parse(&c, (const char *)data, size, &why);
  if (rc < 0) {
    FZ_CHECK(is_gv_error(rc));
    check_why(&why);
    FZ_CHECK(strncmp(why.text, "line ", 5) == 0);
    FZ_CHECK(memcmp(&c, &before, sizeof(c)) == 0); /* not even written */
    return 0;
  }
  FZ_CHECK(rc == 0);
  check_config(&c);

  memset(&why, 0x7f, sizeof(why));
  rc = gv_config_validate(&c, &why);
  FZ_CHECK(rc == 0 || is_gv_error(rc));
  if (rc < 0)
    check_why(&why);

  len = render(&c, text, sizeof(text));
  gv_config_default(&again);
  rc = gv_config_parse(&again, text, len, &why);
  if (rc < 0)
    fprintf(stderr, "re-parse: %s\n", why.text);
  FZ_CHECK(rc == 0);
  FZ_CHECK(config_equal(&c, &again));
  return 0;
}

/* The node's configuration (config.h): one key at a time, whole files, the
 * cross-checks, and `grapevine config check`.
 *
 * Reasons are built in layers, each adding its prefix:
 *
 *   a key's setter        "'x' is not a boolean (...)"
 *   gv_config_set()       "key 'broadcast': " ...
 *   gv_config_parse()     "line 3: " ...
 *   gv_config_load_file() "/etc/grapevine.conf: " ...
 *
 * Parsing allocates nothing: lines are copied into fixed buffers, the
 * config is built in a copy, and a bad line leaves the caller's as it was.
 * Within one text a key other than repo and peer may appear once; a later
 * source (a flag, through gv_config_set) may set it again.
 */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

/* The longest line, its newline excluded: room for any key with the longest
 * data-dir. */
#define CONFIG_LINE_MAX 8192
/* Longer keys are unknown; the name is cut here in reasons. */
#define CONFIG_KEY_MAX 32
#define DATA_DIR_MAX (sizeof(((gv_config *)0)->data_dir))

#define KEY_LIST                                                               \
  "data-dir, listen, broadcast, bootstrap, repo, peer, tracker, metrics, "     \
  "log-level, guards, guard-*, torrent-* (grapevine node --help)"

static const char *const level_names[] = {
    [GV_LOG_ERROR] = "error",
    [GV_LOG_WARN] = "warn",
    [GV_LOG_INFO] = "info",
    [GV_LOG_DEBUG] = "debug",
};

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* ---- values ---- */

static int parse_bool(bool *out, const char *v, gv_why *why) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};

  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(v, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(v, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return gv_fail(why, GV_EFIELD,
                 "'%.32s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                 v);
}

/* Sets *out and *has, or leaves both as they were. */
static int parse_addr(gv_addr *out, bool *has, const char *v, size_t len,
                      gv_why *why) {
  gv_addr a;

  if (gv_addr_parse(&a, v, len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "'%.64s' is not a numeric ADDR:PORT (a.b.c.d:PORT or "
                   "[v6]:PORT, PORT 1..65535)",
                   v);
  *out = a;
  *has = true;
  return 0;
}

/* A decimal port, 1..65535, no sign or leading zero. */
static int port_ok(const char *s) {
  size_t len = strlen(s);
  unsigned v = 0;

  if (len == 0 || len > 5 || s[0] == '0')
    return 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  return v <= 65535;
}

/* A DNS name (RFC 1123: dot-separated labels of 1..63 letters, digits and
 * hyphens, no hyphen at either end; 253 bytes at most) or a dotted IPv4
 * address; digits and dots alone must be the latter. */
static int host_ok(const char *h, size_t len) {
  char v4[INET_ADDRSTRLEN];
  struct in_addr in;
  size_t label = 0;
  int numeric = 1;

  if (len == 0 || len > 253)
    return 0;
  for (size_t i = 0; i <= len; i++) {
    char ch = i < len ? h[i] : '.';
    if (ch == '.') {
      if (label == 0 || label > 63 || h[i - 1] == '-')
        return 0;
      label = 0;
      continue;
    }
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-'))
      return 0;
    if (ch == '-' && label == 0)
      return 0;
    if (ch < '0' || ch > '9')
      numeric = 0;
    label++;
  }
  if (!numeric)
    return 1;
  if (len >= sizeof(v4))
    return 0;
  memcpy(v4, h, len);
  v4[len] = '\0';
  return inet_pton(AF_INET, v4, &in) == 1;
}

/* HOST:PORT, HOST a name or IPv4 address, or [IPv6]:PORT. */
static int check_peer(const char *v, size_t len, gv_why *why) {
  char v6[INET6_ADDRSTRLEN];
  struct in6_addr in6;
  const char *colon;
  size_t hlen;

  if (len == 0)
    return gv_fail(why, GV_EFIELD, "empty; give HOST:PORT");
  if (len >= GV_CONFIG_PEER_MAX)
    return gv_fail(why, GV_EFIELD, "longer than %d bytes",
                   GV_CONFIG_PEER_MAX - 1);
  if (v[0] == '[') {
    const char *close = strchr(v, ']');
    if (close == NULL || close[1] != ':')
      return gv_fail(why, GV_EFIELD, "'%.64s' is not [IPv6]:PORT", v);
    hlen = (size_t)(close - v - 1);
    if (hlen >= sizeof(v6))
      return gv_fail(why, GV_EFIELD, "'%.64s' is not [IPv6]:PORT", v);
    memcpy(v6, v + 1, hlen);
    v6[hlen] = '\0';
    if (inet_pton(AF_INET6, v6, &in6) != 1)
      return gv_fail(why, GV_EFIELD, "'%.64s' is not an IPv6 address", v6);
    colon = close + 1;
  } else {
    colon = strrchr(v, ':');
    if (colon == NULL)
      return gv_fail(why, GV_EFIELD, "'%.64s' is not HOST:PORT", v);
    hlen = (size_t)(colon - v);
    if (memchr(v, ':', hlen) != NULL)
      return gv_fail(why, GV_EFIELD,
                     "'%.64s': an IPv6 address goes in brackets, "
                     "[ADDR]:PORT",
                     v);
    if (!host_ok(v, hlen))
      return gv_fail(why, GV_EFIELD,
                     "'%.64s': '%.*s' is not a host name or IPv4 address", v,
                     (int)(hlen < 64 ? hlen : 64), v);
  }
  if (!port_ok(colon + 1))
    return gv_fail(why, GV_EFIELD, "'%.64s': port '%.8s' is not 1..65535", v,
                   colon + 1);
  return 0;
}

/* http:// or https://, a host, printable ASCII without spaces. */
static int check_url(const char *v, size_t len, gv_why *why) {
  size_t skip;

  if (strncasecmp(v, "http://", 7) == 0)
    skip = 7;
  else if (strncasecmp(v, "https://", 8) == 0)
    skip = 8;
  else
    return gv_fail(why, GV_EFIELD, "'%.64s' is not an http:// or https:// URL",
                   v);
  if (len >= GV_CONFIG_URL_MAX)
    return gv_fail(why, GV_EFIELD, "longer than %d bytes",
                   GV_CONFIG_URL_MAX - 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch <= ' ' || ch >= 0x7f)
      return gv_fail(why, GV_EFIELD,
                     "byte %zu is a space, control or non-ASCII character "
                     "(percent-encode it)",
                     i + 1);
  }
  if (v[skip] == '\0' || strchr("/?#", v[skip]) != NULL)
    return gv_fail(why, GV_EFIELD, "'%.64s' has no host", v);
  return 0;
}

/* Appends name (len bytes, NUL-terminated, shorter than width) to list, an
 * array of *n strings width bytes apart, unless present or full. */
static int add_unique(char *list, size_t width, size_t *n, size_t max,
                      const char *name, size_t len, const char *what,
                      gv_why *why) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp(list + i * width, name) == 0)
      return gv_fail(why, GV_EFIELD, "'%.64s' is listed twice", name);
  if (*n >= max)
    return gv_fail(why, GV_ELIMIT, "more than %zu %s", max, what);
  memcpy(list + *n * width, name, len + 1);
  (*n)++;
  return 0;
}

/* The keys. Each setter applies one value (len bytes, NUL-terminated) or
 * leaves c as it was; its reason does not name the key. */

static int set_data_dir(gv_config *c, const char *v, size_t len, gv_why *why) {
  if (len == 0)
    return gv_fail(why, GV_EFIELD, "empty; give a directory");
  if (len >= DATA_DIR_MAX)
    return gv_fail(why, GV_EFIELD, "longer than %zu bytes", DATA_DIR_MAX - 1);
  memcpy(c->data_dir, v, len + 1);
  return 0;
}

static int set_listen(gv_config *c, const char *v, size_t len, gv_why *why) {
  return parse_addr(&c->listen, &c->has_listen, v, len, why);
}

static int set_metrics(gv_config *c, const char *v, size_t len, gv_why *why) {
  return parse_addr(&c->metrics, &c->has_metrics, v, len, why);
}

static int set_broadcast(gv_config *c, const char *v, size_t len, gv_why *why) {
  (void)len;
  return parse_bool(&c->broadcast, v, why);
}

static int set_bootstrap(gv_config *c, const char *v, size_t len, gv_why *why) {
  int rc = parse_bool(&c->bootstrap, v, why);

  (void)len;
  if (rc == 0 && c->bootstrap)
    c->broadcast = true;
  return rc;
}

static int set_repo(gv_config *c, const char *v, size_t len, gv_why *why) {
  if (gv_repo_name_check(v, len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "'%.64s' is not a repository name (1..%d of "
                   "A-Za-z0-9._-/:@+)",
                   v, GV_REPO_MAX);
  return add_unique(&c->repos[0][0], sizeof(c->repos[0]), &c->n_repos,
                    GV_MAX_REPOS, v, len, "repositories", why);
}

static int set_peer(gv_config *c, const char *v, size_t len, gv_why *why) {
  int rc = check_peer(v, len, why);

  if (rc < 0)
    return rc;
  return add_unique(&c->peers[0][0], sizeof(c->peers[0]), &c->n_peers,
                    GV_CONFIG_MAX_PEERS, v, len, "peers", why);
}

static int set_tracker(gv_config *c, const char *v, size_t len, gv_why *why) {
  int rc = check_url(v, len, why);

  if (rc < 0)
    return rc;
  memcpy(c->tracker, v, len + 1);
  return 0;
}

static int set_log_level(gv_config *c, const char *v, size_t len, gv_why *why) {
  (void)len;
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
    if (strcasecmp(v, level_names[i]) == 0) {
      c->log_level = (gv_log_level)i;
      return 0;
    }
  }
  return gv_fail(why, GV_EFIELD,
                 "'%.32s' is not one of error, warn, info, debug", v);
}

#define DAY_MS (24LL * 3600000)
#define GUARD_SECONDS_MAX (365LL * 24 * 3600)

/* A decimal integer in lo..hi, digits only (no sign, blank or leading
 * zero but "0"). */
static int parse_uint(const char *v, size_t len, int64_t lo, int64_t hi,
                      int64_t *out) {
  int64_t x = 0;

  if (len == 0 || len > 12 || (v[0] == '0' && len > 1))
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    x = x * 10 + (v[i] - '0');
  }
  if (x < lo || x > hi)
    return -1;
  *out = x;
  return 0;
}

static int set_guards(gv_config *c, const char *v, size_t len, gv_why *why) {
  (void)len;
  return parse_bool(&c->guards, v, why);
}

static int set_guard_count(gv_config *c, const char *v, size_t len,
                           gv_why *why) {
  int64_t x;

  if (parse_uint(v, len, 1, GV_GUARDS_MAX, &x) < 0)
    return gv_fail(why, GV_EFIELD, "'%.32s' is not a count in 1..%d", v,
                   GV_GUARDS_MAX);
  c->guard_count = (unsigned)x;
  return 0;
}

/* Seconds in lo..GUARD_SECONDS_MAX, into *ms. */
static int guard_seconds(const char *v, size_t len, int64_t lo, int64_t *ms,
                         gv_why *why) {
  int64_t x;

  if (parse_uint(v, len, lo, GUARD_SECONDS_MAX, &x) < 0)
    return gv_fail(why, GV_EFIELD, "'%.32s' is not seconds in %lld..%lld", v,
                   (long long)lo, (long long)GUARD_SECONDS_MAX);
  *ms = x * 1000;
  return 0;
}

static int set_guard_min_age(gv_config *c, const char *v, size_t len,
                             gv_why *why) {
  return guard_seconds(v, len, 0, &c->guard_min_age_ms, why);
}

static int set_guard_down(gv_config *c, const char *v, size_t len,
                          gv_why *why) {
  return guard_seconds(v, len, 1, &c->guard_down_ms, why);
}

static int set_guard_lifetime(gv_config *c, const char *v, size_t len,
                              gv_why *why) {
  const char *dash = memchr(v, '-', len);
  int64_t lo, hi;

  if (dash == NULL || parse_uint(v, (size_t)(dash - v), 1, 365, &lo) < 0 ||
      parse_uint(dash + 1, len - (size_t)(dash - v) - 1, 1, 365, &hi) < 0 ||
      lo > hi)
    return gv_fail(why, GV_EFIELD,
                   "'%.32s' is not MIN-MAX days, 1 <= MIN <= MAX <= 365", v);
  c->guard_life_min_ms = lo * DAY_MS;
  c->guard_life_max_ms = hi * DAY_MS;
  return 0;
}

static int set_torrent_port(gv_config *c, const char *v, size_t len,
                            gv_why *why) {
  int64_t x;

  if (parse_uint(v, len, 0, 65535, &x) < 0)
    return gv_fail(why, GV_EFIELD,
                   "'%.32s' is not a port in 0..65535 (0: any free one)", v);
  c->torrent_port = (uint16_t)x;
  return 0;
}

/* Bytes per second, 0 (unlimited) up to libtorrent's int. */
static int torrent_rate(const char *v, size_t len, uint32_t *out, gv_why *why) {
  int64_t x;

  if (parse_uint(v, len, 0, 2147483647, &x) < 0)
    return gv_fail(why, GV_EFIELD,
                   "'%.32s' is not bytes per second in 0..2147483647 (0: "
                   "unlimited)",
                   v);
  *out = (uint32_t)x;
  return 0;
}

static int set_torrent_up(gv_config *c, const char *v, size_t len,
                          gv_why *why) {
  return torrent_rate(v, len, &c->torrent_upload_rate, why);
}

static int set_torrent_down(gv_config *c, const char *v, size_t len,
                            gv_why *why) {
  return torrent_rate(v, len, &c->torrent_download_rate, why);
}

static int set_torrent_enc(gv_config *c, const char *v, size_t len,
                           gv_why *why) {
  static const char *const names[] = {"forced", "enabled", "disabled"};

  (void)len;
  for (int i = 0; i < 3; i++)
    if (strcasecmp(v, names[i]) == 0) {
      c->torrent_encryption = i;
      return 0;
    }
  return gv_fail(why, GV_EFIELD,
                 "'%.32s' is not one of forced, enabled, disabled", v);
}

#define TORRENT_SWITCH(name)                                                   \
  static int set_torrent_##name(gv_config *c, const char *v, size_t len,       \
                                gv_why *why) {                                 \
    (void)len;                                                                 \
    return parse_bool(&c->torrent_##name, v, why);                             \
  }
TORRENT_SWITCH(dht)
TORRENT_SWITCH(lsd)
TORRENT_SWITCH(upnp)
TORRENT_SWITCH(natpmp)
TORRENT_SWITCH(utp)
TORRENT_SWITCH(pex)
#undef TORRENT_SWITCH

typedef struct key_def {
  const char *name;
  int (*set)(gv_config *c, const char *v, size_t len, gv_why *why);
  bool repeats; /* may appear on more than one line of a file */
} key_def;

static const key_def keys[] = {
    {"data-dir", set_data_dir, false},
    {"listen", set_listen, false},
    {"broadcast", set_broadcast, false},
    {"bootstrap", set_bootstrap, false},
    {"repo", set_repo, true},
    {"peer", set_peer, true},
    {"tracker", set_tracker, false},
    {"metrics", set_metrics, false},
    {"log-level", set_log_level, false},
    {"guards", set_guards, false},
    {"guard-count", set_guard_count, false},
    {"guard-min-age", set_guard_min_age, false},
    {"guard-down", set_guard_down, false},
    {"guard-lifetime", set_guard_lifetime, false},
    {"torrent-port", set_torrent_port, false},
    {"torrent-upload-rate", set_torrent_up, false},
    {"torrent-download-rate", set_torrent_down, false},
    {"torrent-encryption", set_torrent_enc, false},
    {"torrent-dht", set_torrent_dht, false},
    {"torrent-lsd", set_torrent_lsd, false},
    {"torrent-upnp", set_torrent_upnp, false},
    {"torrent-natpmp", set_torrent_natpmp, false},
    {"torrent-utp", set_torrent_utp, false},
    {"torrent-pex", set_torrent_pex, false},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Returns the key called name, or NULL. */
static const key_def *key_find(const char *name) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(name, keys[i].name) == 0)
      return &keys[i];
  return NULL;
}

void gv_config_default(gv_config *c) {
  memset(c, 0, sizeof(*c));
  c->log_level = GV_LOG_INFO;
  c->guards = true;
  c->guard_min_age_ms = 3600000;
  c->guard_down_ms = 3600000;
  c->guard_life_min_ms = 30 * DAY_MS;
  c->guard_life_max_ms = 60 * DAY_MS;
}

int gv_config_set(gv_config *c, const char *key, const char *value,
                  gv_why *why) {
  const key_def *k = key_find(key);
  gv_why inner = {""};
  int rc;

  if (k == NULL)
    return gv_fail(why, GV_EFIELD,
                   "key '%.*s': unknown; the keys are " KEY_LIST,
                   CONFIG_KEY_MAX, key);
  if ((rc = k->set(c, value, strlen(value), &inner)) < 0)
    return gv_fail(why, rc, "key '%s': %s", k->name, inner.text);
  return 0;
}

/* ---- files ---- */

/* One line (s[0..n), no newline) into c. first[i] is the line that set
 * keys[i], 0 if none yet. */
static int parse_line(gv_config *c, const char *s, size_t n, size_t line,
                      size_t first[N_KEYS], gv_why *why) {
  char key[CONFIG_KEY_MAX + 1], value[CONFIG_LINE_MAX + 1];
  const char *eq;
  size_t klen, vlen, kstart = 0, vstart;
  gv_why inner = {""};
  const key_def *k;
  int rc;

  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\0')
      return gv_fail(why, GV_EFIELD, "line %zu: NUL byte at column %zu", line,
                     i + 1);
    if ((ch < ' ' && ch != '\t') || ch == 0x7f)
      return gv_fail(why, GV_EFIELD,
                     "line %zu: control character 0x%02x at column %zu", line,
                     ch, i + 1);
  }
  /* A comment starts at '#' first on the line or after whitespace (or
   * right after the '=', below). */
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '#' && (i == 0 || is_space(s[i - 1]))) {
      n = i;
      break;
    }
  }
  while (kstart < n && is_space(s[kstart]))
    kstart++;
  while (n > kstart && is_space(s[n - 1]))
    n--;
  if (kstart == n)
    return 0;
  eq = memchr(s + kstart, '=', n - kstart);
  if (eq == NULL)
    return gv_fail(why, GV_EFIELD, "line %zu: expected key = value, not '%.*s'",
                   line, (int)(n - kstart < 48 ? n - kstart : 48), s + kstart);
  klen = (size_t)(eq - s) - kstart;
  while (klen > 0 && is_space(s[kstart + klen - 1]))
    klen--;
  if (klen == 0)
    return gv_fail(why, GV_EFIELD, "line %zu: no key before '='", line);
  vstart = (size_t)(eq - s) + 1;
  while (vstart < n && is_space(s[vstart]))
    vstart++;
  /* "key =# x" reads as "key = # x": no value begins with '#'. */
  vlen = vstart < n && s[vstart] == '#' ? 0 : n - vstart;
  /* A key longer than any known one stays unknown when cut. */
  memcpy(key, s + kstart, klen < CONFIG_KEY_MAX ? klen : CONFIG_KEY_MAX);
  key[klen < CONFIG_KEY_MAX ? klen : CONFIG_KEY_MAX] = '\0';
  memcpy(value, s + vstart, vlen);
  value[vlen] = '\0';
  k = key_find(key);
  if (k != NULL && !k->repeats && first[k - keys] != 0)
    return gv_fail(why, GV_EFIELD,
                   "line %zu: key '%s': already set on line %zu", line, key,
                   first[k - keys]);
  if ((rc = gv_config_set(c, key, value, &inner)) < 0)
    return gv_fail(why, rc, "line %zu: %s", line, inner.text);
  assert(k != NULL); /* gv_config_set() refuses unknown keys */
  first[k - keys] = line;
  return 0;
}

int gv_config_parse(gv_config *c, const char *text, size_t len, gv_why *why) {
  gv_config tmp = *c;
  size_t first[N_KEYS] = {0}, pos = 0, line = 0;
  int rc;

  while (pos < len) {
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', len - pos);
    size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;

    pos += n + (nl != NULL);
    line++;
    if (n > 0 && s[n - 1] == '\r')
      n--;
    if (n > CONFIG_LINE_MAX)
      return gv_fail(why, GV_ETOOBIG, "line %zu: longer than %d bytes", line,
                     CONFIG_LINE_MAX);
    if ((rc = parse_line(&tmp, s, n, line, first, why)) < 0)
      return rc;
  }
  *c = tmp;
  return 0;
}

int gv_config_load_file(gv_config *c, const char *path, gv_why *why) {
  gv_why inner = {""};
  struct stat st;
  char *buf = NULL;
  size_t len = 0;
  ssize_t n;
  int rc = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, &st) != 0) {
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (S_ISREG(st.st_mode) && st.st_size > GV_CONFIG_FILE_MAX) {
    rc = gv_fail(why, GV_ETOOBIG,
                 "%s: %lld bytes; a configuration file has at most %d", path,
                 (long long)st.st_size, GV_CONFIG_FILE_MAX);
    goto out;
  }
  if ((buf = malloc(GV_CONFIG_FILE_MAX + 1)) == NULL) {
    rc = gv_fail(why, GV_ENOMEM, "%s: out of memory", path);
    goto out;
  }
  /* One byte more than allowed tells a file that grew, or a pipe, apart. */
  while (len <= GV_CONFIG_FILE_MAX) {
    n = read(fd, buf + len, GV_CONFIG_FILE_MAX + 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
      goto out;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (len > GV_CONFIG_FILE_MAX) {
    rc = gv_fail(why, GV_ETOOBIG,
                 "%s: more than %d bytes; a configuration file has at most %d",
                 path, GV_CONFIG_FILE_MAX, GV_CONFIG_FILE_MAX);
    goto out;
  }
  if ((rc = gv_config_parse(c, buf, len, &inner)) < 0)
    gv_fail(why, rc, "%s: %s", path, inner.text);
out:
  free(buf);
  close(fd);
  return rc;
}

/* ---- cross-checks ---- */

static int addr_is_any(const gv_addr *a) {
  static const uint8_t zero[16];
  return memcmp(a->ip, zero, a->family == 6 ? 16 : 4) == 0;
}

/* Whether binding both would collide: same port, and the same address or a
 * wildcard on either side. */
static int addr_collide(const gv_addr *a, const gv_addr *b) {
  if (a->port != b->port)
    return 0;
  if (addr_is_any(a) || addr_is_any(b))
    return 1;
  return a->family == b->family &&
         memcmp(a->ip, b->ip, a->family == 6 ? 16 : 4) == 0;
}

int gv_config_validate(const gv_config *c, gv_why *why) {
  if (c->bootstrap && !c->broadcast)
    return gv_fail(why, GV_EINVAL,
                   "bootstrap needs broadcast; remove broadcast = false");
  if (c->broadcast && !c->has_listen)
    return gv_fail(why, GV_EINVAL, "broadcast needs listen = ADDR:PORT");
  if (c->has_listen && c->listen.port == 0)
    return gv_fail(why, GV_EINVAL, "listen needs a port 1..65535, not 0");
  if (c->has_listen && addr_is_any(&c->listen))
    return gv_fail(why, GV_EINVAL,
                   "listen is the address other nodes are told to dial: "
                   "give one they can reach, not %s",
                   c->listen.family == 6 ? "[::]" : "0.0.0.0");
  if (c->has_listen && c->has_metrics &&
      addr_collide(&c->listen, &c->metrics)) {
    char l[GV_ADDR_TEXT_MAX], m[GV_ADDR_TEXT_MAX];
    gv_addr_format(&c->listen, l);
    gv_addr_format(&c->metrics, m);
    return gv_fail(why, GV_EINVAL,
                   "metrics (%s) and listen (%s) cannot share a port", m, l);
  }
  return 0;
}

/* ---- grapevine config ---- */

static const struct option config_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void config_usage(FILE *f) {
  fprintf(f, "usage: grapevine config check FILE\n\n"
             "Checks a node configuration file (key = value lines; see\n"
             "dist/grapevine.conf.example): every key, then the rules "
             "between keys.\nPrints 'FILE: ok', or the first problem with "
             "its line number.\nExit status 0 valid, 1 invalid, 2 usage "
             "error.\n");
}

int gv_cmd_config(int argc, char **argv) {
  gv_config c;
  gv_why why = {""};
  const char *path;
  int opt;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", config_opts, NULL)) != -1) {
    switch (opt) {
    case 'h': config_usage(stdout); return 0;
    default: config_usage(stderr); return 2;
    }
  }
  if (optind < argc && strcmp(argv[optind], "check") != 0) {
    fprintf(stderr, "grapevine config: unknown subcommand '%s'\n",
            argv[optind]);
    return 2;
  }
  if (argc - optind != 2) {
    config_usage(stderr);
    return 2;
  }
  path = argv[optind + 1];
  gv_config_default(&c);
  if (gv_config_load_file(&c, path, &why) < 0) {
    fprintf(stderr, "%s\n", why.text);
    return 1;
  }
  if (gv_config_validate(&c, &why) < 0) {
    fprintf(stderr, "%s: %s\n", path, why.text);
    return 1;
  }
  printf("%s: ok\n", path);
  return 0;
}

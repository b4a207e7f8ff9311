/* Control requests: the strict JSON layer of the wire (proto/json.h), then
 * the command's fields. Contracts in ctl.h. */
#include "ctl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "json.h"

/* How many bytes of s (at most max) to quote in a reason without cutting a
 * UTF-8 character: the reason travels back inside a JSON answer. */
static int quote_len(const char *s, size_t max) {
  size_t n = strnlen(s, max);

  while (n > 0 && s[n] != '\0' && ((unsigned char)s[n] & 0xc0) == 0x80)
    n--;
  return (int)n;
}

static int get_uint(const cJSON *o, const char *key, unsigned lo, unsigned hi,
                    unsigned dflt, unsigned *out, gv_why *why) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

  if (it == NULL) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(it))
    return gv_fail(why, GV_EFIELD, "'%s' must be a whole number", key);
  /* Range first: casting an out-of-range double is undefined (the fuzzer
   * found 5e82). */
  if (!(it->valuedouble >= lo && it->valuedouble <= hi))
    return gv_fail(why, GV_ERANGE, "'%s' must be %u..%u", key, lo, hi);
  if (it->valuedouble != floor(it->valuedouble))
    return gv_fail(why, GV_EFIELD, "'%s' must be a whole number", key);
  *out = (unsigned)it->valuedouble;
  return 0;
}

static int get_repo(const cJSON *o, const char *key, char *out, gv_why *why) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  size_t len;

  if (!cJSON_IsString(it) || it->valuestring == NULL)
    return gv_fail(why, GV_EFIELD, "'%s' must be a repository name", key);
  len = strlen(it->valuestring);
  if (gv_repo_name_check(it->valuestring, len) < 0)
    return gv_fail(why, GV_EFIELD,
                   "'%.*s' is not a repository name (1..%d of "
                   "A-Za-z0-9._-/:@+)",
                   quote_len(it->valuestring, 64), it->valuestring,
                   GV_REPO_MAX);
  memcpy(out, it->valuestring, len + 1);
  return 0;
}

/* An absolute path of 1..GV_CTL_PATH_MAX bytes without a tab or newline
 * (the torrent list is one line per torrent, tab-separated). */
static int get_path(const cJSON *o, const char *key, char *out, gv_why *why) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  size_t len;

  if (!cJSON_IsString(it) || it->valuestring == NULL)
    return gv_fail(why, GV_EFIELD, "'%s' must be a path", key);
  len = strlen(it->valuestring);
  if (len > GV_CTL_PATH_MAX)
    return gv_fail(why, GV_ETOOBIG, "'%s' is longer than %d bytes", key,
                   GV_CTL_PATH_MAX);
  if (it->valuestring[0] != '/')
    return gv_fail(why, GV_EFIELD, "'%s' must be an absolute path", key);
  if (strpbrk(it->valuestring, "\t\n\r") != NULL)
    return gv_fail(why, GV_EFIELD, "'%s' holds a tab or newline", key);
  memcpy(out, it->valuestring, len + 1);
  return 0;
}

/* A hash or magnet: a non-empty string of at most GV_CTL_TARGET_MAX bytes;
 * the node parses it (gv_tor_parse_target). */
static int get_target(const cJSON *o, const char *key, char *out, gv_why *why) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  size_t len;

  if (!cJSON_IsString(it) || it->valuestring == NULL ||
      it->valuestring[0] == '\0')
    return gv_fail(why, GV_EFIELD, "'%s' must be an info-hash or magnet", key);
  len = strlen(it->valuestring);
  if (len > GV_CTL_TARGET_MAX)
    return gv_fail(why, GV_ETOOBIG, "'%s' is longer than %d bytes", key,
                   GV_CTL_TARGET_MAX);
  memcpy(out, it->valuestring, len + 1);
  return 0;
}

int gv_ctl_parse(gv_ctl_req *req, const char *line, size_t len, gv_why *why) {
  cJSON *o;
  const cJSON *cmd, *it;
  int rc = 0;

  memset(req, 0, sizeof(*req));
  if (len > GV_CTL_LINE_MAX)
    return gv_fail(why, GV_ETOOBIG, "request longer than %d bytes",
                   GV_CTL_LINE_MAX);
  if ((rc = gv_json_parse_strict(&o, line, len, why)) < 0)
    return rc;
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return gv_fail(why, GV_EJSON, "request is not a JSON object");
  }
  cmd = cJSON_GetObjectItemCaseSensitive(o, "cmd");
  if (!cJSON_IsString(cmd) || cmd->valuestring == NULL) {
    rc = gv_fail(why, GV_EFIELD, "missing 'cmd'");
  } else if (strcmp(cmd->valuestring, "status") == 0) {
    req->cmd = GV_CTL_STATUS;
  } else if (strcmp(cmd->valuestring, "peers") == 0) {
    req->cmd = GV_CTL_PEERS;
  } else if (strcmp(cmd->valuestring, "request") == 0) {
    req->cmd = GV_CTL_REQUEST;
    if ((rc = get_repo(o, "repo", req->repo, why)) == 0 &&
        (rc = get_uint(o, "max", 1, GV_MAX_PEERS, 16, &req->max, why)) == 0)
      rc = get_uint(o, "wait_ms", 1, GV_CTL_WAIT_MAX_MS, 3000, &req->wait_ms,
                    why);
  } else if (strcmp(cmd->valuestring, "repo") == 0) {
    it = cJSON_GetObjectItemCaseSensitive(o, "op");
    if (cJSON_IsString(it) && strcmp(it->valuestring, "add") == 0)
      req->cmd = GV_CTL_REPO_ADD;
    else if (cJSON_IsString(it) && strcmp(it->valuestring, "rm") == 0)
      req->cmd = GV_CTL_REPO_RM;
    else
      rc = gv_fail(why, GV_EFIELD, "'op' must be \"add\" or \"rm\"");
    if (rc == 0)
      rc = get_repo(o, "name", req->repo, why);
  } else if (strcmp(cmd->valuestring, "broadcast") == 0) {
    req->cmd = GV_CTL_BROADCAST;
    it = cJSON_GetObjectItemCaseSensitive(o, "on");
    if (!cJSON_IsBool(it))
      rc = gv_fail(why, GV_EFIELD, "'on' must be true or false");
    else
      req->on = cJSON_IsTrue(it);
    if (rc == 0)
      rc = get_uint(o, "wait_ms", 0, GV_CTL_WAIT_MAX_MS, 0, &req->wait_ms, why);
  } else if (strcmp(cmd->valuestring, "team_reload") == 0) {
    req->cmd = GV_CTL_TEAM_RELOAD;
  } else if (strcmp(cmd->valuestring, "share") == 0) {
    req->cmd = GV_CTL_SHARE;
    if ((rc = get_path(o, "path", req->path, why)) == 0 &&
        cJSON_GetObjectItemCaseSensitive(o, "repo") != NULL)
      rc = get_repo(o, "repo", req->repo, why);
  } else if (strcmp(cmd->valuestring, "fetch") == 0) {
    req->cmd = GV_CTL_FETCH;
    if ((rc = get_target(o, "target", req->target, why)) == 0)
      rc = get_path(o, "out", req->path, why);
  } else if (strcmp(cmd->valuestring, "torrent") == 0) {
    req->cmd = GV_CTL_TORRENT;
    rc = get_target(o, "hash", req->target, why);
  } else if (strcmp(cmd->valuestring, "torrents") == 0) {
    req->cmd = GV_CTL_TORRENTS;
  } else if (strcmp(cmd->valuestring, "unshare") == 0) {
    req->cmd = GV_CTL_UNSHARE;
    rc = get_target(o, "hash", req->target, why);
    it = cJSON_GetObjectItemCaseSensitive(o, "delete");
    if (rc == 0 && it != NULL && !cJSON_IsBool(it))
      rc = gv_fail(why, GV_EFIELD, "'delete' must be true or false");
    req->del = cJSON_IsTrue(it);
  } else {
    rc = gv_fail(why, GV_EFIELD, "unknown command '%.*s'",
                 quote_len(cmd->valuestring, 32), cmd->valuestring);
  }
  cJSON_Delete(o);
  return rc;
}

gv_ctl_uptake_step gv_ctl_uptake_step_of(uint64_t awaited_seq, bool awaited_on,
                                         uint64_t now_seq, bool now_on) {
  if (now_seq <= awaited_seq)
    return GV_CTL_UPTAKE_KEEP;
  return now_on == awaited_on ? GV_CTL_UPTAKE_FOLLOW : GV_CTL_UPTAKE_SUPERSEDED;
}

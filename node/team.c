/* Team key files: see team.h. */
#include "team.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

#define PATH_CAP 4200

void gv_team_file_name(const uint8_t team_id[GV_RW_KEY_BYTES],
                       char out[GV_TEAM_FILE_NAME_LEN + 1]) {
  char hex[2 * GV_RW_TEAM_ID8 + 1];
  sodium_bin2hex(hex, sizeof(hex), team_id, GV_RW_TEAM_ID8);
  snprintf(out, GV_TEAM_FILE_NAME_LEN + 1, "team-%s.key", hex);
}

/* Whether name has the shape of a team file name (not whether it matches
 * its contents). */
static bool team_file_shaped(const char *name) {
  if (strlen(name) != GV_TEAM_FILE_NAME_LEN || strncmp(name, "team-", 5) != 0 ||
      strcmp(name + 5 + 2 * GV_RW_TEAM_ID8, ".key") != 0)
    return false;
  for (int i = 0; i < 2 * GV_RW_TEAM_ID8; i++)
    if (!strchr("0123456789abcdef", name[5 + i]) || name[5 + i] == '\0')
      return false;
  return true;
}

int gv_team_load(const char *dir, const char *file, gv_team_ent *e,
                 gv_why *why) {
  char path[PATH_CAP], text[GV_RW_TOKEN_LEN + 2],
      name[GV_TEAM_FILE_NAME_LEN + 1];
  gv_rw_team keys;
  struct stat sb;
  ssize_t len;
  int fd, rc = 0;

  memset(e, 0, sizeof(*e));
  if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
    return gv_fail(why, -ENAMETOOLONG, "%s/%s: path too long", dir, file);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
    return gv_fail(
        why, errno == ELOOP ? GV_EKEYFMT : -errno, "team file %s: %s", path,
        errno == ELOOP ? "a symlink, not a team file" : strerror(errno));
  if (fstat(fd, &sb) != 0) {
    rc = gv_fail(why, -errno, "team file %s: %s", path, strerror(errno));
    goto out;
  }
  if (!S_ISREG(sb.st_mode)) {
    rc = gv_fail(why, GV_EKEYFMT, "team file %s: not a regular file", path);
    goto out;
  }
  if ((sb.st_mode & 077) != 0) {
    rc = gv_fail(why, GV_EKEYPERM,
                 "team file %s: mode %03o lets others in; it holds a team "
                 "secret (chmod 600 it, or make a new team)",
                 path, (unsigned)(sb.st_mode & 0777));
    goto out;
  }
  /* A token, and at most a newline: read one byte more to see excess. */
  len = read(fd, text, sizeof(text));
  if (len < 0) {
    rc = gv_fail(why, -errno, "team file %s: %s", path, strerror(errno));
    goto out;
  }
  if (len > 0 && text[len - 1] == '\n')
    len--;
  if ((size_t)len != GV_RW_TOKEN_LEN || sb.st_size > GV_RW_TOKEN_LEN + 1) {
    rc = gv_fail(why, GV_EKEYFMT,
                 "team file %s: %lld bytes; a team file holds one join "
                 "token (%d characters) and a newline",
                 path, (long long)sb.st_size, GV_RW_TOKEN_LEN);
    goto out;
  }
  if (gv_rw_token_decode(text, (size_t)len, e->T, e->inviter, why) < 0) {
    char reason[sizeof(why->text)];
    snprintf(reason, sizeof(reason), "%s", why ? why->text : "");
    rc = gv_fail(why, GV_EKEYFMT, "team file %s: %s", path, reason);
    goto out;
  }
  gv_rw_team_keys(e->T, &keys);
  memcpy(e->team_id, keys.team_id, sizeof(e->team_id));
  gv_rw_team_keys_wipe(&keys);
  gv_team_file_name(e->team_id, name);
  if (strcmp(name, file) != 0) {
    rc = gv_fail(why, GV_EKEYFMT,
                 "team file %s: holds the team of %s, not this name", path,
                 name);
    goto out;
  }
  memcpy(e->file, name, sizeof(e->file));
out:
  sodium_memzero(text, sizeof(text));
  if (rc < 0)
    sodium_memzero(e, sizeof(*e));
  close(fd);
  return rc;
}

/* Writes the file of (T, inviter) in dir: 0 written, 1 present already
 * with the same secret. */
static int store(const char *dir, const uint8_t T[GV_RW_KEY_BYTES],
                 const uint8_t inviter[GV_ID_BYTES], gv_why *why) {
  char token[GV_RW_TOKEN_LEN + 2], name[GV_TEAM_FILE_NAME_LEN + 1];
  char path[PATH_CAP];
  gv_team_ent old;
  gv_rw_team keys;
  int rc;

  gv_rw_team_keys(T, &keys);
  gv_team_file_name(keys.team_id, name);
  gv_rw_team_keys_wipe(&keys);
  if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
    return gv_fail(why, -ENAMETOOLONG, "%s: path too long", dir);
  if (access(path, F_OK) == 0) {
    if ((rc = gv_team_load(dir, name, &old, why)) < 0)
      return rc;
    rc = sodium_memcmp(old.T, T, GV_RW_KEY_BYTES) == 0
             ? 1
             : gv_fail(why, -EEXIST,
                       "team file %s: another team's file "
                       "is in the way",
                       path);
    sodium_memzero(&old, sizeof(old));
    return rc;
  }
  gv_rw_token_encode(T, inviter, token);
  token[GV_RW_TOKEN_LEN] = '\n';
  /* Mode 0600, and a reason that names the step and the file. */
  rc = gv_write_atomic(path, token, GV_RW_TOKEN_LEN + 1, why);
  sodium_memzero(token, sizeof(token));
  return rc;
}

int gv_team_create(const char *dir, const gv_identity *self,
                   char token[GV_RW_TOKEN_LEN + 1], gv_why *why) {
  uint8_t T[GV_RW_KEY_BYTES];
  int rc;

  randombytes_buf(T, sizeof(T));
  if ((rc = store(dir, T, self->pk, why)) == 0)
    gv_rw_token_encode(T, self->pk, token);
  else if (rc == 1) /* 2^-64: a fresh T whose team_id8 is taken */
    rc = gv_fail(why, -EEXIST, "a team with this id exists; try again");
  sodium_memzero(T, sizeof(T));
  return rc;
}

int gv_team_join(const char *dir, const char *token, gv_why *why) {
  uint8_t T[GV_RW_KEY_BYTES], inviter[GV_ID_BYTES];
  int rc;

  if ((rc = gv_rw_token_decode(token, strlen(token), T, inviter, why)) == 0)
    rc = store(dir, T, inviter, why);
  sodium_memzero(T, sizeof(T));
  return rc;
}

static int cmp_ent(const void *a, const void *b) {
  return strcmp(((const gv_team_ent *)a)->file, ((const gv_team_ent *)b)->file);
}

int gv_team_list(const char *dir, gv_team_ent **out, size_t *n, gv_why *why) {
  gv_team_ent *v = NULL;
  size_t len = 0, cap = 0;
  struct dirent *de;
  DIR *d;
  int rc = 0;

  *out = NULL;
  *n = 0;
  if ((d = opendir(dir)) == NULL)
    return errno == ENOENT
               ? 0
               : gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
  while ((de = readdir(d)) != NULL) {
    size_t nl = strlen(de->d_name);
    if (strncmp(de->d_name, "team-", 5) != 0 || nl < 4 ||
        strcmp(de->d_name + nl - 4, ".key") != 0)
      continue;
    if (!team_file_shaped(de->d_name)) {
      rc = gv_fail(why, GV_EKEYFMT,
                   "team file %s/%.64s: the name is not team-<16 hex>.key", dir,
                   de->d_name);
      break;
    }
    if (len == cap) {
      size_t ncap = cap ? 2 * cap : 4;
      gv_team_ent *nv = sodium_allocarray(ncap, sizeof(*nv));
      if (nv == NULL) {
        rc = gv_fail(why, GV_ENOMEM, "team files: out of memory");
        break;
      }
      if (len > 0)
        memcpy(nv, v, len * sizeof(*v));
      sodium_free(v);
      v = nv;
      cap = ncap;
    }
    if ((rc = gv_team_load(dir, de->d_name, &v[len], why)) < 0)
      break;
    len++;
  }
  closedir(d);
  if (rc < 0) {
    gv_team_list_free(v, len);
    return rc;
  }
  if (len > 1)
    qsort(v, len, sizeof(*v), cmp_ent);
  *out = v;
  *n = len;
  return 0;
}

void gv_team_list_free(gv_team_ent *t, size_t n) {
  (void)n; /* sodium_free wipes the whole allocation */
  sodium_free(t);
}

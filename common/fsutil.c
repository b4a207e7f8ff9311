/* Whole-file writes: see fsutil.h. */
#include "fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int gv_write_atomic(const char *path, const void *data, size_t len,
                    gv_why *why) {
  const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
  const char *dpart = slash ? path : "."; /* its first dlen bytes: the dir */
  int dlen = slash ? (int)(slash - path) : 1, fd = -1, dfd = -1, rc = 0;
  size_t cap = strlen(path) + sizeof("./..tmp.XXXXXX");
  char *tmp = malloc(cap), *dir = NULL;

  if (tmp == NULL) {
    rc = gv_fail(why, -ENOMEM, "write %s: %s", path, strerror(ENOMEM));
    goto out;
  }
  snprintf(tmp, cap, "%.*s/.%s.tmp.XXXXXX", dlen, dpart, name);
  if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
    rc = gv_fail(why, -errno, "open %s: %s", tmp, strerror(errno));
    tmp[0] = '\0'; /* nothing to remove */
    goto out;
  }
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, (const char *)data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = gv_fail(why, -errno, "write %s: %s", tmp, strerror(errno));
      goto out;
    }
    off += (size_t)n;
  }
  if (fchmod(fd, 0600) != 0) {
    rc = gv_fail(why, -errno, "chmod %s: %s", tmp, strerror(errno));
    goto out;
  }
  if (fsync(fd) != 0) {
    rc = gv_fail(why, -errno, "fsync %s: %s", tmp, strerror(errno));
    goto out;
  }
  if (close(fd) != 0) {
    fd = -1;
    rc = gv_fail(why, -errno, "close %s: %s", tmp, strerror(errno));
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    rc = gv_fail(why, -errno, "rename %s: %s", path, strerror(errno));
    goto out;
  }
  tmp[0] = '\0'; /* renamed: nothing to remove */
  dir = dlen == 0 ? strdup("/") : strndup(dpart, (size_t)dlen);
  if (dir == NULL) {
    rc = gv_fail(why, -ENOMEM, "fsync of the directory of %s: %s", path,
                 strerror(ENOMEM));
    goto out;
  }
  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
      fsync(dfd) != 0)
    rc = gv_fail(why, -errno, "fsync %s: %s", dir, strerror(errno));
out:
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  if (tmp != NULL && tmp[0] != '\0')
    unlink(tmp);
  free(tmp);
  free(dir);
  if (rc < 0)
    errno = -rc; /* the cause, whatever the clean-up did to errno */
  return rc;
}

/* Whether name is one gv_write_atomic gives its temporary files. */
static bool atomic_tmp_name(const char *name) {
  static const char tag[] = ".tmp.";
  size_t n = strlen(name), t = sizeof(tag) - 1;

  /* ".", at least one byte of the name, the tag, six from mkstemp */
  if (name[0] != '.' || n < 1 + 1 + t + 6 ||
      memcmp(name + n - 6 - t, tag, t) != 0)
    return false;
  for (size_t i = n - 6; i < n; i++)
    if (!isalnum((unsigned char)name[i]))
      return false;
  return true;
}

int gv_sweep_atomic_tmp(const char *dir, int min_age_s, gv_why *why) {
  time_t now = time(NULL);
  struct dirent *de;
  struct stat st;
  int dfd, removed = 0;
  DIR *d;

  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    return gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
  if ((d = fdopendir(dfd)) == NULL) {
    int rc = gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
    close(dfd);
    return rc;
  }
  while ((de = readdir(d)) != NULL) {
    if (!atomic_tmp_name(de->d_name) ||
        fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || now - st.st_mtime < min_age_s)
      continue;
    removed += unlinkat(dfd, de->d_name, 0) == 0;
  }
  closedir(d); /* and dfd */
  return removed;
}

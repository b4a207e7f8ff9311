/* Whole-file writes: see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

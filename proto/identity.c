#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gv_id_generate(gv_identity *id) {
  if (sodium_init() < 0)
    return GV_ENOMEM;
  crypto_sign_keypair(id->pk, id->sk);
  return 0;
}

int gv_id_from_seed(gv_identity *id, const uint8_t seed[32]) {
  if (sodium_init() < 0)
    return GV_ENOMEM;
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  return 0;
}

void gv_id_wipe(gv_identity *id) { sodium_memzero(id, sizeof(*id)); }

int gv_id_load(gv_identity *id, const char *path, gv_why *why) {
  int rc, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  rc = gv_id_load_fd(id, fd, path, why);
  close(fd);
  return rc;
}

int gv_id_load_fd(gv_identity *id, int fd, const char *path, gv_why *why) {
  uint8_t raw[GV_KEYFILE_BYTES + 1];
  gv_identity derived;
  struct stat st;
  ssize_t n;
  int rc = 0;

  if (fstat(fd, &st) != 0) {
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = gv_fail(why, GV_EKEYFMT, "%s: not a regular file", path);
    goto out;
  }
  if (st.st_mode & 077) {
    rc = gv_fail(why, GV_EKEYPERM,
                 "%s: permissions %04o let others read the key; "
                 "run: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
    goto out;
  }
  if (st.st_size != GV_KEYFILE_BYTES) {
    rc = gv_fail(why, GV_EKEYFMT, "%s: %lld bytes, a key file has exactly %d",
                 path, (long long)st.st_size, GV_KEYFILE_BYTES);
    goto out;
  }
  do
    n = read(fd, raw, sizeof(raw));
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (n != GV_KEYFILE_BYTES) {
    rc = gv_fail(why, GV_EKEYFMT, "%s: short read (%zd bytes)", path, n);
    goto out;
  }
  /* The public half must be the one the seed derives. */
  rc = gv_id_from_seed(&derived, raw);
  if (rc < 0)
    goto out;
  if (sodium_memcmp(derived.pk, raw + 32, 32) != 0) {
    rc = gv_fail(why, GV_EKEYFMT,
                 "%s: public key does not match the secret seed", path);
    goto out;
  }
  *id = derived;
out:
  sodium_memzero(raw, sizeof(raw));
  sodium_memzero(&derived, sizeof(derived));
  return rc;
}

static int fsync_dir_of(const char *path) {
  char copy[4096];
  int fd, rc = 0;

  if (strlen(path) >= sizeof(copy))
    return -ENAMETOOLONG;
  strcpy(copy, path);
  fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fsync(fd) != 0)
    rc = -errno;
  close(fd);
  return rc;
}

int gv_id_save(const gv_identity *id, const char *path, gv_why *why) {
  char tmp[4096];
  int fd, rc = 0;
  size_t off = 0;

  if (access(path, F_OK) == 0)
    return gv_fail(why, -EEXIST, "%s: a key file already exists", path);
  if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
    return gv_fail(why, -ENAMETOOLONG, "%s: path too long", path);
  (void)unlink(tmp); /* a leftover from a crash holds no committed key */
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return gv_fail(why, -errno, "%s: %s", tmp, strerror(errno));
  while (off < sizeof(id->sk)) {
    ssize_t n = write(fd, id->sk + off, sizeof(id->sk) - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = gv_fail(why, -errno, "%s: %s", tmp, strerror(errno));
      break;
    }
    off += (size_t)n;
  }
  if (rc == 0 && fsync(fd) != 0)
    rc = gv_fail(why, -errno, "%s: fsync: %s", tmp, strerror(errno));
  close(fd);
  /* link() rather than rename(): it fails if path appeared meanwhile. */
  if (rc == 0 && link(tmp, path) != 0)
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  (void)unlink(tmp);
  if (rc == 0 && (rc = fsync_dir_of(path)) < 0)
    gv_fail(why, rc, "%s: fsync directory: %s", path, strerror(-rc));
  return rc;
}

int gv_id_load_or_create(gv_identity *id, const char *path, int *created,
                         gv_why *why) {
  int rc = gv_id_load(id, path, why);

  *created = 0;
  if (rc != -ENOENT)
    return rc;
  if ((rc = gv_id_generate(id)) < 0)
    return rc;
  rc = gv_id_save(id, path, why);
  if (rc == -EEXIST) /* lost a race with another creator: use theirs */
    return gv_id_load(id, path, why);
  if (rc < 0) {
    gv_id_wipe(id);
    return rc;
  }
  *created = 1;
  return 0;
}

void gv_id_to_hex(const uint8_t pk[GV_ID_BYTES], char out[GV_ID_HEX_LEN + 1]) {
  sodium_bin2hex(out, GV_ID_HEX_LEN + 1, pk, GV_ID_BYTES);
}

void gv_id_to_short(const uint8_t pk[GV_ID_BYTES],
                    char out[GV_ID_SHORT_LEN + 1]) {
  sodium_bin2hex(out, GV_ID_SHORT_LEN + 1, pk, GV_ID_SHORT_LEN / 2);
}

int gv_id_from_hex(uint8_t pk[GV_ID_BYTES], const char *text, size_t len) {
  size_t bin_len = 0;
  const char *end = NULL;

  if (len != GV_ID_HEX_LEN)
    return GV_EFIELD;
  if (sodium_hex2bin(pk, GV_ID_BYTES, text, len, NULL, &bin_len, &end) != 0 ||
      bin_len != GV_ID_BYTES || end != text + len)
    return GV_EFIELD;
  return 0;
}

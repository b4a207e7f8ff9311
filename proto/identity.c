#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

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

/* gv_id_load_fd on path, opened without following a link. */
static int load_path(gv_identity *id, const char *path, gv_why *why) {
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

int gv_id_save_fd(const gv_identity *id, int dirfd, const char *name,
                  const char *path, gv_why *why) {
  char tmp[4096];
  int fd, rc = 0;
  size_t off = 0;

  if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    return gv_fail(why, -EEXIST, "%s: a key file already exists", path);
  if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
    return gv_fail(why, -ENAMETOOLONG, "%s: path too long", path);
  (void)unlinkat(dirfd, tmp, 0); /* a crash's leftover holds no key yet */
  fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
              0600);
  if (fd < 0)
    return gv_fail(why, -errno, "%s.tmp: %s", path, strerror(errno));
  while (off < sizeof(id->sk)) {
    ssize_t n = write(fd, id->sk + off, sizeof(id->sk) - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = gv_fail(why, -errno, "%s.tmp: %s", path, strerror(errno));
      break;
    }
    off += (size_t)n;
  }
  if (rc == 0 && fsync(fd) != 0)
    rc = gv_fail(why, -errno, "%s.tmp: fsync: %s", path, strerror(errno));
  close(fd);
  /* linkat() rather than renameat(): it fails if name appeared meanwhile,
   * so a key is never replaced. */
  if (rc == 0 && linkat(dirfd, tmp, dirfd, name, 0) != 0)
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  (void)unlinkat(dirfd, tmp, 0);
  if (rc == 0 && fsync(dirfd) != 0)
    rc = gv_fail(why, -errno, "%s: fsync directory: %s", path, strerror(errno));
  return rc;
}

int gv_id_save(const gv_identity *id, const char *path, gv_why *why) {
  char dir[4096], base[4096];
  int dfd, rc;

  if (strlen(path) >= sizeof(dir))
    return gv_fail(why, -ENAMETOOLONG, "%s: path too long", path);
  strcpy(dir, path);
  strcpy(base, path);
  dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
  rc = gv_id_save_fd(id, dfd, basename(base), path, why);
  close(dfd);
  return rc;
}

int gv_id_load_or_create(gv_identity *id, const char *path, int *created,
                         gv_why *why) {
  int rc = load_path(id, path, why);

  *created = 0;
  if (rc != -ENOENT)
    return rc;
  if ((rc = gv_id_generate(id)) < 0)
    return rc;
  rc = gv_id_save(id, path, why);
  if (rc == -EEXIST) /* lost a race with another creator: use theirs */
    return load_path(id, path, why);
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
  /* An id is public: the table decode, not sodium's constant-time loop. */
  return len == GV_ID_HEX_LEN ? gv_hex_decode(pk, GV_ID_BYTES, text, len)
                              : GV_EFIELD;
}

/* Identity and key files (PROTOCOL.md §2). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"
#include "testutil.h"

static char dir[] = "/tmp/gv-check-identity-XXXXXX";
static char path[256];

static void setup(void) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/node.key", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(dir);
  strcpy(dir, "/tmp/gv-check-identity-XXXXXX");
}

static void write_raw(const void *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
  chmod(path, mode);
}

/* The key file at path, opened as the node opens it, through
 * gv_id_load_fd; -errno if it cannot be opened. */
static int load(gv_identity *id, gv_why *why) {
  int rc, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  rc = gv_id_load_fd(id, fd, path, why);
  close(fd);
  return rc;
}

START_TEST(test_save_load_roundtrip) {
  gv_identity a, b;
  gv_why why;
  struct stat st;

  ck_assert_int_eq(gv_id_generate(&a), 0);
  ck_assert_int_eq(gv_id_save(&a, path, &why), 0);
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(st.st_size, GV_KEYFILE_BYTES);
  ck_assert_int_eq(load(&b, &why), 0);
  ck_assert_mem_eq(a.pk, b.pk, 32);
  ck_assert_mem_eq(a.sk, b.sk, 64);
  /* Never overwrites an existing key. */
  ck_assert_int_eq(gv_id_save(&a, path, &why), -EEXIST);
}
END_TEST

START_TEST(test_loose_permissions) {
  gv_identity a, b;
  gv_why why;

  tu_identity(&a, 9);
  write_raw(a.sk, 64, 0644);
  ck_assert_int_eq(load(&b, &why), GV_EKEYPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "chmod 600"));
  chmod(path, 0640);
  ck_assert_int_eq(load(&b, &why), GV_EKEYPERM);
  chmod(path, 0600);
  ck_assert_int_eq(load(&b, &why), 0);
}
END_TEST

START_TEST(test_wrong_length) {
  gv_identity a, b;
  gv_why why;
  uint8_t raw[128] = {0};

  tu_identity(&a, 9);
  memcpy(raw, a.sk, sizeof(a.sk));
  write_raw(raw, (size_t)_i, 0600);
  ck_assert_int_eq(load(&b, &why), GV_EKEYFMT);
  ck_assert_ptr_nonnull(strstr(why.text, "exactly 64"));
}
END_TEST

START_TEST(test_mismatched_public_half) {
  gv_identity a, b;
  gv_why why;

  tu_identity(&a, 9);
  a.sk[40] ^= 1;
  write_raw(a.sk, 64, 0600);
  ck_assert_int_eq(load(&b, &why), GV_EKEYFMT);
  ck_assert_ptr_nonnull(strstr(why.text, "does not match"));
}
END_TEST

START_TEST(test_missing_and_create) {
  gv_identity a, b;
  gv_why why;
  int created;

  ck_assert_int_eq(load(&a, &why), -ENOENT);
  ck_assert_int_eq(gv_id_load_or_create(&a, path, &created, &why), 0);
  ck_assert_int_eq(created, 1);
  ck_assert_int_eq(gv_id_load_or_create(&b, path, &created, &why), 0);
  ck_assert_int_eq(created, 0);
  ck_assert_mem_eq(a.pk, b.pk, 32);
}
END_TEST

START_TEST(test_not_a_regular_file) {
  gv_identity a;
  gv_why why;
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_lt(load(&a, &why), 0);
  rmdir(path);
}
END_TEST

/* Saved through the directory's fd: 0600, no temporary left behind, never
 * over an existing name, a symbolic link included (not followed). */
START_TEST(test_save_fd) {
  gv_identity a, b;
  gv_why why;
  struct stat st;
  char tmp[300], target[300];
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  ck_assert_int_ge(dfd, 0);
  ck_assert_int_eq(gv_id_generate(&a), 0);
  ck_assert_int_eq(gv_id_save_fd(&a, dfd, "node.key", path, &why), 0);
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  ck_assert_int_ne(access(tmp, F_OK), 0);
  ck_assert_int_eq(load(&b, &why), 0);
  ck_assert_mem_eq(a.sk, b.sk, 64);
  ck_assert_int_eq(gv_id_save_fd(&a, dfd, "node.key", path, &why), -EEXIST);
  /* A dangling link at the name: refused, and nothing made where it
   * points. */
  unlink(path);
  snprintf(target, sizeof(target), "%s/elsewhere", dir);
  ck_assert_int_eq(symlink(target, path), 0);
  ck_assert_int_eq(gv_id_save_fd(&a, dfd, "node.key", path, &why), -EEXIST);
  ck_assert_int_ne(access(target, F_OK), 0);
  close(dfd);
}
END_TEST

START_TEST(test_text_forms) {
  gv_identity a;
  char hex[GV_ID_HEX_LEN + 1], shrt[GV_ID_SHORT_LEN + 1], up[65];
  uint8_t pk[32];

  tu_identity(&a, 1);
  gv_id_to_hex(a.pk, hex);
  gv_id_to_short(a.pk, shrt);
  ck_assert_uint_eq(strlen(hex), 64);
  ck_assert_uint_eq(strlen(shrt), 12);
  ck_assert_int_eq(strncmp(hex, shrt, 12), 0);
  ck_assert_int_eq(gv_id_from_hex(pk, hex, 64), 0);
  ck_assert_mem_eq(pk, a.pk, 32);
  for (int i = 0; i < 64; i++)
    up[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
  ck_assert_int_eq(gv_id_from_hex(pk, up, 64), 0);
  ck_assert_mem_eq(pk, a.pk, 32);
  ck_assert_int_eq(gv_id_from_hex(pk, hex, 63), GV_EFIELD);
  hex[10] = 'g';
  ck_assert_int_eq(gv_id_from_hex(pk, hex, 64), GV_EFIELD);
  hex[10] = ' ';
  ck_assert_int_eq(gv_id_from_hex(pk, hex, 64), GV_EFIELD);
}
END_TEST

static Suite *identity_suite(void) {
  Suite *s = suite_create("identity");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_save_load_roundtrip);
  tcase_add_test(tc, test_loose_permissions);
  tcase_add_loop_test(tc, test_wrong_length, 0, 3);
  tcase_add_loop_test(tc, test_wrong_length, 63, 63 + 1);
  tcase_add_loop_test(tc, test_wrong_length, 65, 65 + 1);
  tcase_add_loop_test(tc, test_wrong_length, 32, 32 + 1);
  tcase_add_test(tc, test_mismatched_public_half);
  tcase_add_test(tc, test_missing_and_create);
  tcase_add_test(tc, test_not_a_regular_file);
  tcase_add_test(tc, test_save_fd);
  tcase_add_test(tc, test_text_forms);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(identity_suite()); }

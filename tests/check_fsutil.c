/* common/fsutil.h: gv_write_atomic writes, replaces, and fails clearly,
 * leaving no temporary file behind; gv_sweep_atomic_tmp removes what a
 * process killed mid-write left, and nothing else. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "testutil.h"

static char dir[64];

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/gv-fsutil-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static int not_dots(const struct dirent *de) {
  return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

/* The entries of d (but . and ..); the first one's name in first. */
static int n_entries(const char *d, char *first, size_t cap) {
  struct dirent **v;
  int n = scandir(d, &v, not_dots, alphasort);

  ck_assert_int_ge(n, 0);
  if (n > 0 && first != NULL)
    snprintf(first, cap, "%s", v[0]->d_name);
  for (int k = 0; k < n; k++)
    free(v[k]);
  free(v);
  return n;
}

/* The whole file at path, NUL-ended, in buf; its length. */
static size_t slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;

  ck_assert_ptr_nonnull(f);
  n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return n;
}

START_TEST(test_write_then_replace) {
  char path[128], buf[64], first[NAME_MAX + 1];
  struct stat sb;
  gv_why why = {""};

  snprintf(path, sizeof(path), "%s/list", dir);
  /* A umask that would leave a new file 0400: 0600 comes from the call. */
  umask(0277);
  ck_assert_int_eq(gv_write_atomic(path, "first contents\n", 15, &why), 0);
  ck_assert_uint_eq(slurp(path, buf, sizeof(buf)), 15);
  ck_assert_str_eq(buf, "first contents\n");
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  /* Shorter contents replace the file whole, nothing of the old stays. */
  ck_assert_int_eq(gv_write_atomic(path, "2nd", 3, NULL), 0);
  ck_assert_uint_eq(slurp(path, buf, sizeof(buf)), 3);
  ck_assert_str_eq(buf, "2nd");
  /* Empty is a length like another. */
  ck_assert_int_eq(gv_write_atomic(path, "", 0, NULL), 0);
  ck_assert_uint_eq(slurp(path, buf, sizeof(buf)), 0);
  /* No temporary file is left. */
  ck_assert_int_eq(n_entries(dir, first, sizeof(first)), 1);
  ck_assert_str_eq(first, "list");
}
END_TEST

/* A path without a directory part is in the working directory. */
START_TEST(test_relative_path) {
  char buf[16], cwd[512];

  ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
  ck_assert_int_eq(chdir(dir), 0);
  ck_assert_int_eq(gv_write_atomic("here", "x", 1, NULL), 0);
  ck_assert_uint_eq(slurp("here", buf, sizeof(buf)), 1);
  ck_assert_int_eq(chdir(cwd), 0);
  ck_assert_int_eq(n_entries(dir, NULL, 0), 1);
}
END_TEST

START_TEST(test_missing_directory) {
  char path[128];
  gv_why why = {""};
  int rc;

  snprintf(path, sizeof(path), "%s/nope/list", dir);
  errno = 0;
  rc = gv_write_atomic(path, "x", 1, &why);
  ck_assert_int_eq(rc, -ENOENT);
  ck_assert_int_eq(errno, ENOENT); /* for the caller's strerror(errno) */
  ck_assert_msg(strstr(why.text, "open ") == why.text &&
                    strstr(why.text, "/nope/.list.tmp.") != NULL &&
                    strstr(why.text, strerror(ENOENT)) != NULL,
                "%s", why.text);
  ck_assert_int_eq(n_entries(dir, NULL, 0), 0);
}
END_TEST

/* The rename fails (the name is a non-empty directory, root or not): the
 * error names the step, the temporary file is gone, the target stays. */
START_TEST(test_rename_fails) {
  char path[128], inside[160];
  gv_why why = {""};
  int rc;

  snprintf(path, sizeof(path), "%s/taken", dir);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  snprintf(inside, sizeof(inside), "%s/x", path);
  ck_assert_int_eq(gv_write_atomic(inside, "y", 1, NULL), 0);
  rc = gv_write_atomic(path, "data", 4, &why);
  ck_assert_int_lt(rc, 0);
  ck_assert_int_eq(errno, -rc);
  ck_assert_msg(strstr(why.text, "rename ") == why.text &&
                    strstr(why.text, path) != NULL,
                "%s", why.text);
  ck_assert_int_eq(n_entries(dir, NULL, 0), 1);
  ck_assert_int_eq(n_entries(path, NULL, 0), 1);
}
END_TEST

/* Makes dir/name holding "x", last modified age_s seconds ago. */
static void make_aged(const char *name, int age_s) {
  char path[192];
  struct timespec t[2];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  ck_assert_ptr_nonnull(f = fopen(path, "w"));
  fputs("x", f);
  fclose(f);
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= age_s;
  t[1] = t[0];
  ck_assert_int_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool exists(const char *name) {
  char path[192];
  struct stat sb;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return lstat(path, &sb) == 0;
}

/* What a write cut short leaves (".<name>.tmp.XXXXXX") goes once it is
 * min_age_s old; everything else stays. */
START_TEST(test_sweep_leftovers) {
  static const char *const kept[] = {
      ".list.tmp.ABc12z",   /* too young: a write in progress */
      ".list.tmp.ABc12",    /* five letters */
      ".list.tmp.ABc1-z",   /* not mkstemp's */
      "list.tmp.ABc12z",    /* no leading dot */
      "..tmp.ABc12z",       /* no name */
      ".list.tmp.ABc12zz",  /* seven */
      "node.key",
  };
  char path[192], link[192];
  gv_why why = {""};

  make_aged(".list.tmp.Q7fK2a", 120);
  make_aged(".f0e1.resume.tmp.000000", 61);
  make_aged(".list.tmp.ABc12z", 10);
  for (size_t i = 1; i < sizeof(kept) / sizeof(kept[0]); i++)
    make_aged(kept[i], 3600);
  /* A directory and a symbolic link of the form are not what a write
   * leaves: neither is touched (nor what the link points at). */
  snprintf(path, sizeof(path), "%s/.d.tmp.aaaaaa", dir);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/node.key", dir);
  snprintf(link, sizeof(link), "%s/.l.tmp.bbbbbb", dir);
  ck_assert_int_eq(symlink(path, link), 0);

  ck_assert_int_eq(gv_sweep_atomic_tmp(dir, 60, &why), 2);
  ck_assert(!exists(".list.tmp.Q7fK2a"));
  ck_assert(!exists(".f0e1.resume.tmp.000000"));
  for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
    ck_assert_msg(exists(kept[i]), "%s was removed", kept[i]);
  ck_assert(exists(".d.tmp.aaaaaa"));
  ck_assert(exists(".l.tmp.bbbbbb"));
  ck_assert_int_eq(n_entries(dir, NULL, 0), 9);
  /* Nothing left to do; a younger limit takes the young one. */
  ck_assert_int_eq(gv_sweep_atomic_tmp(dir, 60, NULL), 0);
  ck_assert_int_eq(gv_sweep_atomic_tmp(dir, 5, NULL), 1);
}
END_TEST

START_TEST(test_sweep_missing_directory) {
  char path[128];
  gv_why why = {""};

  snprintf(path, sizeof(path), "%s/nope", dir);
  ck_assert_int_eq(gv_sweep_atomic_tmp(path, 60, &why), -ENOENT);
  ck_assert_msg(strstr(why.text, path) == why.text &&
                    strstr(why.text, strerror(ENOENT)) != NULL,
                "%s", why.text);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("fsutil");
  TCase *tc = tcase_create("write_atomic");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_write_then_replace);
  tcase_add_test(tc, test_relative_path);
  tcase_add_test(tc, test_missing_directory);
  tcase_add_test(tc, test_rename_fails);
  tcase_add_test(tc, test_sweep_leftovers);
  tcase_add_test(tc, test_sweep_missing_directory);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(suite()); }

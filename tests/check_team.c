/* Team key files (node/team.c) in a temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "team.h"
#include "testutil.h"

static char dir[64], dir2[64];

static void mkdir_tmp(char *d, size_t cap) {
  snprintf(d, cap, "/tmp/gv-team-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(d));
}

static void rm_tree(const char *d) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
  ck_assert_int_eq(system(cmd), 0);
}

static void setup(void) {
  ck_assert_int_ge(sodium_init(), 0);
  mkdir_tmp(dir, sizeof(dir));
  mkdir_tmp(dir2, sizeof(dir2));
}

static void teardown(void) {
  rm_tree(dir);
  rm_tree(dir2);
}

/* The number of entries of d whose name does not start with '.'. */
static int n_files(const char *d, int *hidden) {
  DIR *dd = opendir(d);
  struct dirent *de;
  int n = 0;
  *hidden = 0;
  ck_assert_ptr_nonnull(dd);
  while ((de = readdir(dd)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (de->d_name[0] == '.')
      (*hidden)++;
    else
      n++;
  }
  closedir(dd);
  return n;
}

/* Creates a team in dir and returns its file path in path. */
static void make_team(const gv_identity *self, char *token, char *path,
                      size_t cap) {
  gv_team_ent *t;
  gv_why why = {""};
  size_t n;

  ck_assert_msg(gv_team_create(dir, self, token, &why) == 0, "%s", why.text);
  ck_assert_msg(gv_team_list(dir, &t, &n, &why) == 0, "%s", why.text);
  ck_assert_uint_eq(n, 1);
  snprintf(path, cap, "%s/%s", dir, t[0].file);
  gv_team_list_free(t, n);
}

START_TEST(test_round_trip) {
  char token[GV_RW_TOKEN_LEN + 1], path[256];
  uint8_t T[GV_RW_KEY_BYTES], inviter[GV_ID_BYTES];
  gv_identity self;
  gv_team_ent *a, *b;
  gv_rw_team keys;
  gv_why why = {""};
  size_t na, nb;
  struct stat sb;
  int hidden;

  tu_identity(&self, 7);
  make_team(&self, token, path, sizeof(path));
  ck_assert_uint_eq(strlen(token), GV_RW_TOKEN_LEN);
  ck_assert_int_eq(strncmp(token, GV_RW_TOKEN_PREFIX, 8), 0);
  /* The file: mode 0600, the token and a newline. */
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_uint_eq(sb.st_mode & 0777, 0600);
  ck_assert_int_eq(sb.st_size, GV_RW_TOKEN_LEN + 1);
  ck_assert_int_eq(n_files(dir, &hidden), 1);
  ck_assert_int_eq(hidden, 0); /* no temporary file left */
  /* The listing gives back T, the inviter, team_id, and the file name. */
  ck_assert_int_eq(gv_rw_token_decode(token, strlen(token), T, inviter, &why),
                   0);
  gv_rw_team_keys(T, &keys);
  ck_assert_int_eq(gv_team_list(dir, &a, &na, &why), 0);
  ck_assert_uint_eq(na, 1);
  ck_assert_mem_eq(a[0].T, T, sizeof(T));
  ck_assert_mem_eq(a[0].inviter, self.pk, GV_ID_BYTES);
  ck_assert_mem_eq(a[0].team_id, keys.team_id, GV_RW_KEY_BYTES);
  ck_assert_ptr_nonnull(strstr(path, a[0].file));
  /* Another node joins with the token: the same team. */
  ck_assert_msg(gv_team_join(dir2, token, &why) == 0, "%s", why.text);
  ck_assert_int_eq(gv_team_list(dir2, &b, &nb, &why), 0);
  ck_assert_uint_eq(nb, 1);
  ck_assert_mem_eq(b[0].T, a[0].T, GV_RW_KEY_BYTES);
  ck_assert_mem_eq(b[0].inviter, self.pk, GV_ID_BYTES);
  ck_assert_str_eq(b[0].file, a[0].file);
  /* Joining again is no change. */
  ck_assert_int_eq(gv_team_join(dir2, token, &why), 1);
  ck_assert_int_eq(gv_team_join(dir, token, &why), 1);
  ck_assert_int_eq(n_files(dir2, &hidden), 1);
  gv_team_list_free(a, na);
  gv_team_list_free(b, nb);
  gv_rw_team_keys_wipe(&keys);
}
END_TEST

START_TEST(test_several) {
  char token[GV_RW_TOKEN_LEN + 1];
  gv_identity self;
  gv_team_ent *t;
  gv_why why = {""};
  size_t n;

  tu_identity(&self, 9);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(gv_team_create(dir, &self, token, &why), 0);
  ck_assert_int_eq(gv_team_list(dir, &t, &n, &why), 0);
  ck_assert_uint_eq(n, 5);
  for (size_t i = 1; i < n; i++)
    ck_assert_int_lt(strcmp(t[i - 1].file, t[i].file), 0);
  gv_team_list_free(t, n);
  /* A missing directory holds no teams. */
  ck_assert_int_eq(gv_team_list("/nonexistent/gv", &t, &n, &why), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_null(t);
}
END_TEST

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  ck_assert_int_eq(fchmod(fd, mode), 0);
  close(fd);
}

static void expect_refused(int err, const char *words) {
  gv_team_ent *t;
  gv_why why = {""};
  size_t n;
  ck_assert_int_eq(gv_team_list(dir, &t, &n, &why), err);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(why.text, words) != NULL, "'%s' lacks '%s'", why.text,
                words);
}

START_TEST(test_bad_files) {
  char token[GV_RW_TOKEN_LEN + 1], path[256], other[256], text[128];
  gv_identity self;
  gv_why why = {""};

  tu_identity(&self, 3);
  make_team(&self, token, path, sizeof(path));
  /* Readable by others. */
  ck_assert_int_eq(chmod(path, 0644), 0);
  expect_refused(GV_EKEYPERM, "lets others in");
  ck_assert_int_eq(chmod(path, 0600), 0);
  /* Truncated, then with trailing bytes. */
  snprintf(text, sizeof(text), "%.50s\n", token);
  write_file(path, text, 0600);
  expect_refused(GV_EKEYFMT, "one join token");
  snprintf(text, sizeof(text), "%s\nx", token);
  write_file(path, text, 0600);
  expect_refused(GV_EKEYFMT, "one join token");
  /* A token of the right length that does not decode. */
  snprintf(text, sizeof(text), "%s", token);
  text[10] = '!';
  write_file(path, text, 0600);
  expect_refused(GV_EKEYFMT, "team file");
  /* A good token under another team's name. */
  write_file(path, token, 0600);
  snprintf(other, sizeof(other), "%s/team-0000000000000000.key", dir);
  ck_assert_int_eq(rename(path, other), 0);
  expect_refused(GV_EKEYFMT, "not this name");
  /* A symlink to a good file. */
  ck_assert_int_eq(rename(other, path), 0);
  ck_assert_int_eq(symlink(path, other), 0);
  expect_refused(GV_EKEYFMT, "symlink");
  ck_assert_int_eq(unlink(other), 0);
  /* A name of the wrong shape. */
  snprintf(other, sizeof(other), "%s/team-xyz.key", dir);
  write_file(other, token, 0600);
  expect_refused(GV_EKEYFMT, "name");
  ck_assert_int_eq(unlink(other), 0);
  /* Left-over temporary files and other files are not teams. */
  snprintf(other, sizeof(other), "%s/.team.tmp.abcdef", dir);
  write_file(other, "half", 0600);
  snprintf(other, sizeof(other), "%s/node.key", dir);
  write_file(other, "x", 0600);
  {
    gv_team_ent *t;
    size_t n;
    ck_assert_int_eq(gv_team_list(dir, &t, &n, &why), 0);
    ck_assert_uint_eq(n, 1);
    gv_team_list_free(t, n);
  }
  /* Malformed tokens to join: refused, nothing written. */
  ck_assert_int_eq(gv_team_join(dir2, "gvteam1.short", &why), GV_EFIELD);
  snprintf(text, sizeof(text), "%s ", token);
  ck_assert_int_eq(gv_team_join(dir2, text, &why), GV_EFIELD);
  {
    int hidden;
    ck_assert_int_eq(n_files(dir2, &hidden), 0);
    ck_assert_int_eq(hidden, 0);
  }
}
END_TEST

START_TEST(test_no_overwrite) {
  char token[GV_RW_TOKEN_LEN + 1], path[256], text[128];
  gv_identity self;
  gv_why why = {""};
  struct stat sb;

  tu_identity(&self, 4);
  make_team(&self, token, path, sizeof(path));
  /* A join of the same team over a damaged file refuses and leaves it. */
  snprintf(text, sizeof(text), "%.40s", token);
  write_file(path, text, 0600);
  ck_assert_int_eq(gv_team_join(dir, token, &why), GV_EKEYFMT);
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_size, 40);
  /* An unwritable directory: an error, no file. */
  ck_assert_int_eq(chmod(dir2, 0500), 0);
  if (access(dir2, W_OK) != 0) { /* root writes anyway */
    ck_assert_int_lt(gv_team_join(dir2, token, &why), 0);
    ck_assert_ptr_nonnull(strstr(why.text, dir2));
  }
  ck_assert_int_eq(chmod(dir2, 0700), 0);
}
END_TEST

static Suite *team_suite(void) {
  Suite *s = suite_create("team");
  TCase *tc = tcase_create("files");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_several);
  tcase_add_test(tc, test_bad_files);
  tcase_add_test(tc, test_no_overwrite);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(team_suite()); }

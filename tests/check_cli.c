/* The data directory's trust rules (node/cli.h, docs/NODE.md "Who may
 * touch the data directory"): the pure rule on a struct stat, the openers
 * on real files, and the SO_PEERCRED checks on a socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "testutil.h"

static char dir[] = "/tmp/gv-check-cli-XXXXXX";

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(dir)); }

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
  strcpy(dir, "/tmp/gv-check-cli-XXXXXX");
}

static struct stat st_of(mode_t type_mode, uid_t uid) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_mode = type_mode;
  st.st_uid = uid;
  return st;
}

static void write_file(const char *name, mode_t mode, const char *text) {
  char p[256];
  int fd;
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  ck_assert_int_eq(chmod(p, mode), 0);
}

START_TEST(test_rule) {
  struct stat st;
  gv_why why = {""};

  st = st_of(S_IFDIR | 0700, 1000);
  ck_assert_int_eq(gv_cli_check_owned("d", &st, S_IFDIR, 1000, false, &why), 0);
  st = st_of(S_IFDIR | 0755, 1000); /* read and search for all: fine */
  ck_assert_int_eq(gv_cli_check_owned("d", &st, S_IFDIR, 1000, false, &why), 0);
  st = st_of(S_IFDIR | 0770, 1000);
  ck_assert_int_eq(gv_cli_check_owned("d", &st, S_IFDIR, 1000, false, &why),
                   -EPERM);
  ck_assert_str_eq(why.text,
                   "d: mode 0770 lets the group write it; refusing it "
                   "(chmod go-w)");
  st = st_of(S_IFDIR | 01777, 1000);
  ck_assert_int_eq(gv_cli_check_owned("d", &st, S_IFDIR, 1000, false, &why),
                   -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "group and others"));
  st = st_of(S_IFREG | 0600, 65534);
  ck_assert_int_eq(gv_cli_check_owned("k", &st, S_IFREG, 1000, false, &why),
                   -EPERM);
  ck_assert_str_eq(why.text, "k: owned by uid 65534, not uid 1000; "
                             "refusing it");
  st = st_of(S_IFLNK | 0777, 1000);
  ck_assert_int_eq(gv_cli_check_owned("l", &st, S_IFREG, 1000, false, &why),
                   -ELOOP);
  st = st_of(S_IFIFO | 0600, 1000);
  ck_assert_int_eq(gv_cli_check_owned("f", &st, S_IFREG, 1000, false, &why),
                   -EPERM);
  ck_assert_str_eq(why.text, "f: a special file where a regular file "
                             "belongs; refusing it");
  /* A socket others may connect to: only where the caller allows it. */
  st = st_of(S_IFSOCK | 0666, 1000);
  ck_assert_int_eq(gv_cli_check_owned("s", &st, S_IFSOCK, 1000, true, &why), 0);
  ck_assert_int_eq(gv_cli_check_owned("s", &st, S_IFSOCK, 1000, false, &why),
                   -EPERM);
}
END_TEST

START_TEST(test_peer_allowed) {
  ck_assert(gv_cli_peer_allowed(1000, 1000));
  ck_assert(gv_cli_peer_allowed(0, 1000)); /* root may ask a user's node */
  ck_assert(!gv_cli_peer_allowed(65534, 1000));
  ck_assert(!gv_cli_peer_allowed(1000, 0)); /* a user may not ask root's */
  ck_assert(gv_cli_peer_allowed(0, 0));
}
END_TEST

START_TEST(test_open_owned) {
  char p[256], q[256], buf[16] = "";
  gv_why why = {""};
  int dfd, fd;

  dfd = gv_cli_open_dir(dir, false, &why);
  ck_assert_int_ge(dfd, 0);
  write_file("ok", 0600, "x");
  fd = gv_cli_open_owned(dfd, dir, "ok", O_RDONLY, &why);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  close(fd);
  write_file("loose", 0620, "x");
  ck_assert_int_eq(gv_cli_open_owned(dfd, dir, "loose", O_RDONLY, &why),
                   -EPERM);
  /* A symbolic link is never followed, not even to create through it. */
  write_file("victim", 0600, "precious");
  snprintf(p, sizeof(p), "%s/victim", dir);
  snprintf(q, sizeof(q), "%s/lock", dir);
  ck_assert_int_eq(symlink(p, q), 0);
  ck_assert_int_eq(gv_cli_open_owned(dfd, dir, "lock", O_RDWR | O_CREAT, &why),
                   -ELOOP);
  ck_assert_ptr_nonnull(strstr(why.text, "/lock: a symbolic link"));
  fd = open(p, O_RDONLY);
  ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 8);
  close(fd);
  ck_assert_str_eq(buf, "precious");
  /* A FIFO neither blocks the open nor passes. */
  snprintf(p, sizeof(p), "%s/fifo", dir);
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  ck_assert_int_eq(gv_cli_open_owned(dfd, dir, "fifo", O_RDONLY, &why), -EPERM);
  ck_assert_int_eq(gv_cli_open_owned(dfd, dir, "none", O_RDONLY, &why),
                   -ENOENT);
  close(dfd);
}
END_TEST

START_TEST(test_dir_and_entries) {
  char sub[256], p[256];
  gv_why why = {""};
  int dfd;

  snprintf(sub, sizeof(sub), "%s/a/b", dir);
  dfd = gv_cli_open_dir(sub, false, &why);
  ck_assert_int_eq(dfd, -ENOENT);
  dfd = gv_cli_open_dir(sub, true, &why); /* created 0700 */
  ck_assert_int_ge(dfd, 0);
  ck_assert_int_eq(gv_cli_check_entries(dfd, sub, &why), 0);
  close(dfd);
  ck_assert_int_eq(chmod(sub, 0775), 0);
  ck_assert_int_eq(gv_cli_open_dir(sub, true, &why), -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "lets the group write it"));
  ck_assert_int_eq(chmod(sub, 0700), 0);
  snprintf(p, sizeof(p), "%s/link", dir);
  ck_assert_int_eq(symlink(sub, p), 0);
  ck_assert_int_eq(gv_cli_open_dir(p, false, &why), -ELOOP);

  dfd = gv_cli_open_dir(dir, false, &why);
  ck_assert_int_ge(dfd, 0);
  ck_assert_int_eq(gv_cli_check_entries(dfd, dir, &why), -ELOOP);
  ck_assert_int_eq(unlink(p), 0);
  ck_assert_int_eq(gv_cli_check_entries(dfd, dir, &why), 0);
  write_file("node.db-wal", 0666, "");
  ck_assert_int_eq(gv_cli_check_entries(dfd, dir, &why), -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "/node.db-wal: mode 0666"));
  close(dfd);
}
END_TEST

START_TEST(test_key) {
  gv_identity a, b;
  gv_why why = {""};
  char p[256];
  int dfd, created = -1;

  dfd = gv_cli_open_dir(dir, false, &why);
  ck_assert_int_ge(dfd, 0);
  ck_assert_int_eq(
      gv_cli_load_key(&a, dfd, dir, "node.key", false, &created, &why),
      -ENOENT);
  ck_assert_int_eq(
      gv_cli_load_key(&a, dfd, dir, "node.key", true, &created, &why), 0);
  ck_assert_int_eq(created, 1);
  ck_assert_int_eq(
      gv_cli_load_key(&b, dfd, dir, "node.key", true, &created, &why), 0);
  ck_assert_int_eq(created, 0);
  ck_assert_mem_eq(a.pk, b.pk, sizeof(a.pk));
  /* A key behind a symbolic link is refused, and never created through
   * it. */
  snprintf(p, sizeof(p), "%s/node.key", dir);
  ck_assert_int_eq(rename(p, "/tmp/gv-check-cli-moved.key"), 0);
  ck_assert_int_eq(symlink("/tmp/gv-check-cli-moved.key", p), 0);
  ck_assert_int_eq(
      gv_cli_load_key(&b, dfd, dir, "node.key", true, &created, &why), -ELOOP);
  unlink("/tmp/gv-check-cli-moved.key");
  ck_assert_int_eq(
      gv_cli_load_key(&b, dfd, dir, "node.key", true, &created, &why), -ELOOP);
  ck_assert_int_eq(access("/tmp/gv-check-cli-moved.key", F_OK), -1);
  gv_id_wipe(&a);
  gv_id_wipe(&b);
  close(dfd);
}
END_TEST

START_TEST(test_peercred) {
  gv_why why = {""};
  int sv[2];
  uid_t uid;

  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(gv_cli_peer_uid(sv[0], &uid, &why), 0);
  ck_assert_uint_eq(uid, geteuid());
  ck_assert_int_eq(gv_cli_check_client(sv[0], &why), 0);
  ck_assert_int_eq(gv_cli_check_server(sv[0], geteuid(), "s", &why), 0);
  ck_assert_int_eq(gv_cli_check_server(sv[0], geteuid() + 1, "s", &why),
                   -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "s: the server runs as uid"));
  close(sv[0]);
  close(sv[1]);
  ck_assert_int_lt(gv_cli_peer_uid(sv[0], &uid, &why), 0); /* closed fd */
}
END_TEST

START_TEST(test_sock) {
  char p[256], q[256];
  gv_why why = {""};
  uid_t owner = 12345;

  snprintf(p, sizeof(p), "%s/control.sock", dir);
  ck_assert_int_eq(gv_cli_check_sock(p, &owner, &why), -ENOENT);
  ck_assert_int_eq(gv_cli_check_stale_sock(p, &why), 0);
  write_file("control.sock", 0600, "");
  ck_assert_int_eq(gv_cli_check_sock(p, &owner, &why), -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "a regular file where a socket"));
  ck_assert_int_eq(gv_cli_check_stale_sock(p, &why), -EPERM);
  ck_assert_int_eq(unlink(p), 0);
  snprintf(q, sizeof(q), "%s/elsewhere", dir);
  ck_assert_int_eq(symlink(q, p), 0);
  ck_assert_int_eq(gv_cli_check_sock(p, &owner, &why), -ELOOP);
  ck_assert_int_eq(chmod(dir, 0777), 0); /* anyone could swap it */
  ck_assert_int_eq(gv_cli_check_sock(p, &owner, &why), -EPERM);
  ck_assert_ptr_nonnull(strstr(why.text, "mode 0777"));
  ck_assert_int_eq(chmod(dir, 0700), 0);
}
END_TEST

static Suite *cli_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("datadir");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_rule);
  tcase_add_test(tc, test_peer_allowed);
  tcase_add_test(tc, test_open_owned);
  tcase_add_test(tc, test_dir_and_entries);
  tcase_add_test(tc, test_key);
  tcase_add_test(tc, test_peercred);
  tcase_add_test(tc, test_sock);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(cli_suite()); }

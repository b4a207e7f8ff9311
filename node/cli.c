/* The id, keygen and msg-check commands, and helpers shared by commands. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"

long long gv_cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gv_cli_data_dir(const char *flag, char *out, size_t cap) {
  const char *env;
  int n;

  if (flag != NULL)
    n = snprintf(out, cap, "%s", flag);
  else if ((env = getenv("GRAPEVINE_DIR")) != NULL && *env)
    n = snprintf(out, cap, "%s", env);
  else if ((env = getenv("XDG_DATA_HOME")) != NULL && *env)
    n = snprintf(out, cap, "%s/grapevine", env);
  else if ((env = getenv("HOME")) != NULL && *env)
    n = snprintf(out, cap, "%s/.local/share/grapevine", env);
  else
    return GV_EINVAL;
  return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

bool gv_cli_duration(const char *s, uint64_t *ms) {
  static const struct {
    const char *unit;
    double ms;
  } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}, {"d", 8.64e7}};
  char *end;
  double v;

  if (*s < '0' || *s > '9')
    return false; /* no sign, no "inf", no "nan" */
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0)
    return false;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
    if (strcmp(end, units[i].unit) == 0) {
      v *= units[i].ms;
      if (v >= 3.7e17) /* about UINT32_MAX days: far inside uint64_t */
        return false;
      *ms = (uint64_t)v;
      return true;
    }
  return false;
}

int gv_cli_mkdirs(const char *path) {
  char tmp[4096];
  size_t len = strlen(path);

  if (len == 0 || len >= sizeof(tmp))
    return -ENAMETOOLONG;
  memcpy(tmp, path, len + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* ---- what the node trusts in its data directory ---- */

static const char *type_name(mode_t type) {
  switch (type) {
  case S_IFDIR: return "a directory";
  case S_IFREG: return "a regular file";
  case S_IFSOCK: return "a socket";
  case S_IFLNK: return "a symbolic link";
  default: return "a special file";
  }
}

int gv_cli_check_owned(const char *path, const struct stat *st, mode_t type,
                       uid_t uid, bool others_may_write, gv_why *why) {
  mode_t mode = st->st_mode;

  if (S_ISLNK(mode))
    return gv_fail(why, -ELOOP, "%s: a symbolic link; refusing to follow it",
                   path);
  if ((mode & S_IFMT) != type)
    return gv_fail(why, -EPERM, "%s: %s where %s belongs; refusing it", path,
                   type_name(mode & S_IFMT), type_name(type));
  if (st->st_uid != uid)
    return gv_fail(why, -EPERM, "%s: owned by uid %u, not uid %u; refusing it",
                   path, (unsigned)st->st_uid, (unsigned)uid);
  if (!others_may_write && (mode & 022) != 0)
    return gv_fail(why, -EPERM,
                   "%s: mode %04o lets %s write it; refusing it (chmod go-w)",
                   path, (unsigned)(mode & 07777),
                   (mode & 022) == 022 ? "group and others"
                   : (mode & 020)      ? "the group"
                                       : "others");
  return 0;
}

int gv_cli_open_dir(const char *dir, bool create, gv_why *why) {
  struct stat st;
  int fd, rc;

  if (create && (rc = gv_cli_mkdirs(dir)) < 0)
    return gv_fail(why, rc, "%s: %s", dir, gv_strerror(rc));
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
    if ((rc == -ELOOP || rc == -ENOTDIR) && lstat(dir, &st) == 0)
      return gv_cli_check_owned(dir, &st, S_IFDIR, geteuid(), false, why);
    return gv_fail(why, rc, "%s: %s", dir, strerror(-rc));
  }
  if (fstat(fd, &st) != 0)
    rc = gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
  else
    rc = gv_cli_check_owned(dir, &st, S_IFDIR, geteuid(), false, why);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

/* dir/name, or name alone when dir is NULL (for messages). */
static void join_path(char *out, size_t cap, const char *dir,
                      const char *name) {
  snprintf(out, cap, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
}

int gv_cli_open_owned(int dirfd, const char *dir, const char *name, int flags,
                      gv_why *why) {
  char path[4200];
  struct stat st;
  int fd, rc;

  join_path(path, sizeof(path), dir, name);
  /* O_NONBLOCK: a planted FIFO must not block the open; cleared below. */
  fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (fd < 0) {
    rc = -errno;
    if (rc == -ELOOP)
      return gv_fail(why, rc, "%s: a symbolic link; refusing to follow it",
                     path);
    return gv_fail(why, rc, "%s: %s", path, strerror(-rc));
  }
  if (fstat(fd, &st) != 0)
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  else if ((rc = gv_cli_check_owned(path, &st, S_IFREG, geteuid(), false,
                                    why)) == 0 &&
           fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
    rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int gv_cli_check_entries(int dirfd, const char *dir, gv_why *why) {
  char path[4200];
  struct dirent *e;
  struct stat st;
  DIR *d;
  int fd, rc = 0;

  if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
      (d = fdopendir(fd)) == NULL) {
    rc = gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
    if (fd >= 0)
      close(fd);
    return rc;
  }
  while (rc == 0 && (e = readdir(d)) != NULL) {
    mode_t type;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) /* gone meanwhile: nothing to trust */
        rc = gv_fail(why, -errno, "%s: %s", path, strerror(errno));
      continue;
    }
    type = S_ISDIR(st.st_mode) || S_ISSOCK(st.st_mode) ? st.st_mode & S_IFMT
                                                       : S_IFREG;
    rc = gv_cli_check_owned(path, &st, type, geteuid(), false, why);
  }
  closedir(d);
  return rc;
}

int gv_cli_load_key(gv_identity *id, int dirfd, const char *dir,
                    const char *name, bool create, int *created, gv_why *why) {
  char path[4200];
  int fd, rc;

  join_path(path, sizeof(path), dir, name);
  if (created != NULL)
    *created = 0;
  fd = gv_cli_open_owned(dirfd, dir, name, O_RDONLY, why);
  if (fd == -ENOENT && create) {
    if ((rc = gv_id_generate(id)) < 0)
      return rc;
    /* Never over a file, link or not; in the checked directory itself. */
    rc = dirfd == AT_FDCWD ? gv_id_save(id, path, why)
                           : gv_id_save_fd(id, dirfd, name, path, why);
    gv_id_wipe(id);
    if (rc < 0 && rc != -EEXIST) /* EEXIST: another creator won; use it */
      return rc;
    if (rc == 0 && created != NULL)
      *created = 1;
    fd = gv_cli_open_owned(dirfd, dir, name, O_RDONLY, why);
  }
  if (fd < 0)
    return fd;
  rc = gv_id_load_fd(id, fd, path, why);
  close(fd);
  return rc;
}

int gv_cli_check_stale_sock(const char *path, gv_why *why) {
  struct stat st;

  if (lstat(path, &st) != 0)
    return errno == ENOENT
               ? 0
               : gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  return gv_cli_check_owned(path, &st, S_IFSOCK, geteuid(), false, why);
}

int gv_cli_check_sock(const char *path, uid_t *owner, gv_why *why) {
  char dir[4200];
  struct stat st;
  char *slash;
  int rc;

  snprintf(dir, sizeof(dir), "%s", path);
  if ((slash = strrchr(dir, '/')) == NULL)
    snprintf(dir, sizeof(dir), ".");
  else
    slash[slash == dir] = '\0'; /* "/x.sock" keeps its "/" */
  if (lstat(dir, &st) != 0)
    return gv_fail(why, -errno, "%s: %s", dir, strerror(errno));
  /* Whoever owns the directory is the node's user: root may ask a user's
   * node, but nobody else may stand in for it. */
  if ((rc = gv_cli_check_owned(dir, &st, S_IFDIR, st.st_uid, false, why)) < 0)
    return rc;
  *owner = st.st_uid;
  if (lstat(path, &st) != 0)
    return gv_fail(why, -errno, "%s: %s", path, strerror(errno));
  /* Write on a socket only lets a user connect; the server checks who. */
  return gv_cli_check_owned(path, &st, S_IFSOCK, *owner, true, why);
}

int gv_cli_peer_uid(int fd, uid_t *uid, gv_why *why) {
  struct ucred cred;
  socklen_t len = sizeof(cred);

  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return gv_fail(why, -errno, "SO_PEERCRED: %s", strerror(errno));
  *uid = cred.uid;
  return 0;
}

int gv_cli_check_server(int fd, uid_t owner, const char *path, gv_why *why) {
  uid_t uid;
  int rc;

  if ((rc = gv_cli_peer_uid(fd, &uid, why)) < 0)
    return rc;
  if (uid != owner)
    return gv_fail(why, -EPERM,
                   "%s: the server runs as uid %u, not uid %u who owns the "
                   "directory; refusing it",
                   path, (unsigned)uid, (unsigned)owner);
  return 0;
}

int gv_cli_check_node(const uv_pipe_t *pipe, const char *path, gv_why *why) {
  uv_os_fd_t fd;
  uid_t owner;
  int rc;

  if ((rc = gv_cli_check_sock(path, &owner, why)) < 0)
    return rc;
  if ((rc = uv_fileno((const uv_handle_t *)pipe, &fd)) < 0)
    return gv_fail(why, rc, "%s: %s", path, uv_strerror(rc));
  return gv_cli_check_server(fd, owner, path, why);
}

bool gv_cli_peer_allowed(uid_t peer, uid_t self) {
  return peer == self || peer == 0;
}

int gv_cli_check_client(int fd, gv_why *why) {
  uid_t uid;
  int rc;

  if ((rc = gv_cli_peer_uid(fd, &uid, why)) < 0)
    return rc;
  if (!gv_cli_peer_allowed(uid, geteuid()))
    return gv_fail(why, -EACCES,
                   "uid %u may not use this node, which runs as uid %u",
                   (unsigned)uid, (unsigned)geteuid());
  return 0;
}

static const struct option id_opts[] = {
    {"data-dir", required_argument, NULL, 'd'},
    {"key", required_argument, NULL, 'k'},
    {"short", no_argument, NULL, 's'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void id_usage(FILE *f, const char *cmd) {
  fprintf(f,
          "usage: grapevine %s [--data-dir DIR | --key FILE] [--short] "
          "[--json]\n\n"
          "%s\n\n"
          "  --data-dir DIR  the node's data directory (default: "
          "$GRAPEVINE_DIR,\n"
          "                  else $XDG_DATA_HOME/grapevine); the key is "
          "DIR/node.key\n"
          "  --key FILE      use this key file instead\n"
          "  --short         print the short form (12 hex digits)\n"
          "  --json          print {\"id\", \"short\", \"key\"%s}\n",
          cmd,
          strcmp(cmd, "keygen") == 0
              ? "Creates the node's Ed25519 identity key (mode 0600) if it "
                "does not exist,\nand prints the node id."
              : "Prints the node id: the public half of the node's key.",
          strcmp(cmd, "keygen") == 0 ? ", \"created\"" : "");
}

static int id_or_keygen(int argc, char **argv, int create) {
  const char *dir_flag = NULL, *key_flag = NULL;
  char dir[4096], key[4200];
  char hex[GV_ID_HEX_LEN + 1], shrt[GV_ID_SHORT_LEN + 1];
  int opt, short_form = 0, json = 0, created = 0, rc, dfd;
  gv_identity id;
  gv_why why = {""};

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", id_opts, NULL)) != -1) {
    switch (opt) {
    case 'd': dir_flag = optarg; break;
    case 'k': key_flag = optarg; break;
    case 's': short_form = 1; break;
    case 'j': json = 1; break;
    case 'h': id_usage(stdout, argv[0]); return 0;
    default: id_usage(stderr, argv[0]); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "grapevine %s: unexpected argument '%s'\n", argv[0],
            argv[optind]);
    return 2;
  }
  if (key_flag != NULL) {
    snprintf(key, sizeof(key), "%s", key_flag);
    rc = gv_cli_load_key(&id, AT_FDCWD, NULL, key, create, &created, &why);
  } else {
    if (gv_cli_data_dir(dir_flag, dir, sizeof(dir)) < 0) {
      fprintf(stderr,
              "grapevine %s: cannot tell the data directory; "
              "pass --data-dir DIR\n",
              argv[0]);
      return 1;
    }
    snprintf(key, sizeof(key), "%s/node.key", dir);
    if ((dfd = gv_cli_open_dir(dir, create, &why)) >= 0) {
      rc = gv_cli_load_key(&id, dfd, dir, "node.key", create, &created, &why);
      close(dfd);
    } else {
      rc = dfd;
    }
  }
  if (rc == -ENOENT && !create) {
    fprintf(stderr,
            "grapevine id: no key at %s; create one with "
            "'grapevine keygen%s%s'\n",
            key, dir_flag ? " --data-dir " : "", dir_flag ? dir_flag : "");
    return 1;
  }
  if (rc < 0) {
    fprintf(stderr, "grapevine %s: %s\n", argv[0], why.text);
    return 1;
  }
  gv_id_to_hex(id.pk, hex);
  gv_id_to_short(id.pk, shrt);
  gv_id_wipe(&id);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    char *s;
    cJSON_AddStringToObject(o, "id", hex);
    cJSON_AddStringToObject(o, "short", shrt);
    cJSON_AddStringToObject(o, "key", key);
    if (create)
      cJSON_AddBoolToObject(o, "created", created);
    s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
  } else {
    if (create)
      fprintf(stderr, "%s %s\n", created ? "created" : "existing key", key);
    puts(short_form ? shrt : hex);
  }
  return 0;
}

int gv_cmd_id(int argc, char **argv) { return id_or_keygen(argc, argv, 0); }

int gv_cmd_keygen(int argc, char **argv) { return id_or_keygen(argc, argv, 1); }

static const struct option check_opts[] = {
    {"now", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void check_usage(FILE *f) {
  fprintf(f, "usage: grapevine msg-check [--now MS] [--json] [FILE]\n\n"
             "Validates one wire message (the plaintext of a frame: JSON) read "
             "from FILE\nor standard input, exactly as a node would on "
             "receipt, and prints its\ncontents or the reason it is "
             "rejected. Exit status 0 valid, 1 rejected.\n\n"
             "  --now MS  the receiver's clock, ms since the epoch (default: "
             "now)\n"
             "  --json    print {\"valid\", \"type\", \"id\", \"origin\", ...} "
             "or\n"
             "            {\"valid\": false, \"error\", \"reason\"}\n");
}

/* Reads at most max + 1 bytes, so that an oversize input is detected
 * without reading it all. */
static int read_bounded(FILE *f, uint8_t *buf, size_t max, size_t *len) {
  *len = fread(buf, 1, max + 1, f);
  return ferror(f) ? -EIO : 0;
}

static void print_valid(const gv_msg *m, int json) {
  char origin[GV_ID_HEX_LEN + 1], id[GV_ID_HEX_LEN + 1];
  char addr[GV_ADDR_TEXT_MAX];
  cJSON *o = cJSON_CreateObject(), *arr;
  const char *r;
  char *s;

  cJSON_AddBoolToObject(o, "valid", 1);
  cJSON_AddStringToObject(o, "type", gv_msg_type_name(m->type));
  if (gv_msg_is_gossip(m->type)) {
    gv_id_to_hex(m->id, id);
    gv_id_to_hex(m->origin, origin);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "origin", origin);
    cJSON_AddNumberToObject(o, "seq", (double)m->seq);
    cJSON_AddNumberToObject(o, "ts", (double)m->ts);
    cJSON_AddNumberToObject(o, "ttl", m->ttl);
    cJSON_AddNumberToObject(o, "hops", m->hops);
  }
  if (m->type == GV_MSG_PEER_ANNOUNCEMENT || m->type == GV_MSG_PEER_UPDATE) {
    cJSON_AddBoolToObject(o, "broadcasting", m->u.peer.broadcasting);
    cJSON_AddBoolToObject(o, "bootstrap", m->u.peer.bootstrap);
    arr = cJSON_AddArrayToObject(o, "addrs");
    for (int i = 0; i < m->u.peer.n_addrs; i++) {
      gv_addr_format(&m->u.peer.addrs[i], addr);
      cJSON_AddItemToArray(arr, cJSON_CreateString(addr));
    }
    arr = cJSON_AddArrayToObject(o, "repos");
    r = m->u.peer.repos;
    for (int i = 0; i < m->u.peer.n_repos; i++, r += strlen(r) + 1)
      cJSON_AddItemToArray(arr, cJSON_CreateString(r));
  } else if (m->type == GV_MSG_PEER_REQUEST) {
    cJSON_AddStringToObject(o, "repo", m->u.request.repo);
  } else if (m->type == GV_MSG_PEER_LIST_RESPONSE) {
    cJSON_AddNumberToObject(o, "peers", (double)m->u.response.n_peers);
  }
  if (json) {
    s = cJSON_PrintUnformatted(o);
    puts(s);
  } else {
    s = cJSON_Print(o);
    printf("valid %s\n%s\n", gv_msg_type_name(m->type), s);
  }
  free(s);
  cJSON_Delete(o);
}

int gv_cmd_msg_check(int argc, char **argv) {
  gv_msg_policy pol = {0};
  gv_msg m;
  gv_why why = {""};
  uint8_t *buf;
  size_t len;
  int opt, json = 0, rc;
  FILE *f = stdin;

  pol.now_ms = gv_cli_now_ms();
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", check_opts, NULL)) != -1) {
    switch (opt) {
    case 'n': {
      char *end;
      errno = 0;
      pol.now_ms = strtoll(optarg, &end, 10);
      if (errno != 0 || *end != '\0' || pol.now_ms < 0) {
        fprintf(stderr,
                "grapevine msg-check: --now takes milliseconds "
                "since the epoch, not '%s'\n",
                optarg);
        return 2;
      }
      break;
    }
    case 'j': json = 1; break;
    case 'h': check_usage(stdout); return 0;
    default: check_usage(stderr); return 2;
    }
  }
  if (argc - optind > 1) {
    check_usage(stderr);
    return 2;
  }
  if (optind < argc && strcmp(argv[optind], "-") != 0 &&
      (f = fopen(argv[optind], "rb")) == NULL) {
    fprintf(stderr, "grapevine msg-check: %s: %s\n", argv[optind],
            strerror(errno));
    return 1;
  }
  buf = malloc(GV_MSG_MAX + 1);
  if (buf == NULL) {
    fprintf(stderr, "grapevine msg-check: out of memory\n");
    return 1;
  }
  rc = read_bounded(f, buf, GV_MSG_MAX, &len);
  if (f != stdin)
    fclose(f);
  if (rc < 0) {
    fprintf(stderr, "grapevine msg-check: read error\n");
    free(buf);
    return 1;
  }
  rc = gv_msg_decode(&m, buf, len, &pol, &why);
  free(buf);
  if (rc == 0) {
    print_valid(&m, json);
  } else if (json) {
    cJSON *o = cJSON_CreateObject();
    char *s;
    cJSON_AddBoolToObject(o, "valid", 0);
    cJSON_AddStringToObject(o, "error", gv_err_name(rc));
    cJSON_AddStringToObject(o, "reason", why.text);
    s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
  } else {
    printf("rejected: %s: %s\n", gv_err_name(rc), why.text);
  }
  gv_msg_clear(&m);
  return rc == 0 ? 0 : 1;
}

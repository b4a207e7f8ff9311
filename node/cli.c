/* The id, keygen and msg-check commands, and helpers shared by commands. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
  int opt, short_form = 0, json = 0, created = 0, rc;
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
  } else {
    if (gv_cli_data_dir(dir_flag, dir, sizeof(dir)) < 0) {
      fprintf(stderr,
              "grapevine %s: cannot tell the data directory; "
              "pass --data-dir DIR\n",
              argv[0]);
      return 1;
    }
    if (create && (rc = gv_cli_mkdirs(dir)) < 0) {
      fprintf(stderr, "grapevine %s: %s: %s\n", argv[0], dir, gv_strerror(rc));
      return 1;
    }
    snprintf(key, sizeof(key), "%s/node.key", dir);
  }
  rc = create ? gv_id_load_or_create(&id, key, &created, &why)
              : gv_id_load(&id, key, &why);
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

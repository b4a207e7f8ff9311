/* The torrent commands: share, fetch, torrents, unshare (docs/TORRENT.md).
 * Each talks to the running node over its control socket (gv_ctl_call);
 * the node's torrent service (torsvc.c) does the work. Exit status: 0
 * success, 1 failure, 2 usage or bad input (nothing sent), 3 no node. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../torrent/tor.h"
#include "cli.h"
#include "ctl.h"

#define POLL_MS 200
#define PLAIN_EVERY_MS 3000 /* a progress line when not on a terminal */
#define JSON_EVERY_MS 1000
#define FETCH_TIMEOUT_MS 60000

typedef struct opts {
  const char *name, *usage, *about;
  int min_args, max_args;
  char dir[4096];
  bool json, del;
  const char *out, *repo, *timeout;
} opts;

/* --data-dir, --json, --help, and the command's own options. Returns 0 to
 * go on, 100 for --help (exit 0), else the exit status. */
static int parse(opts *o, int argc, char **argv) {
  static const struct option lo[] = {
      {"data-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"out", required_argument, NULL, 'o'},
      {"repo", required_argument, NULL, 'r'},
      {"timeout", required_argument, NULL, 't'},
      {"delete", no_argument, NULL, 'x'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *dflag = NULL;
  int opt;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (opt) {
    case 'd': dflag = optarg; break;
    case 'j': o->json = true; break;
    case 'o': o->out = optarg; break;
    case 'r': o->repo = optarg; break;
    case 't': o->timeout = optarg; break;
    case 'x': o->del = true; break;
    case 'h':
      printf("usage: grapevine %s %s\n\n%s\n\n  --data-dir DIR  the node's "
             "data directory (default: $GRAPEVINE_DIR,\n                  "
             "else $XDG_DATA_HOME/grapevine)\n",
             o->name, o->usage, o->about);
      return 100;
    default: goto usage;
    }
  }
  /* Each option belongs to one command. */
  if ((o->out || o->timeout) && strcmp(o->name, "fetch") != 0)
    goto usage;
  if (o->repo && strcmp(o->name, "share") != 0)
    goto usage;
  if (o->del && strcmp(o->name, "unshare") != 0)
    goto usage;
  if (argc - optind < o->min_args || argc - optind > o->max_args)
    goto usage;
  if (gv_cli_data_dir(dflag, o->dir, sizeof(o->dir)) < 0) {
    fprintf(stderr,
            "grapevine %s: cannot tell the data directory; pass "
            "--data-dir DIR\n",
            o->name);
    return 1;
  }
  return 0;
usage:
  fprintf(stderr, "usage: grapevine %s %s\n", o->name, o->usage);
  return 2;
}

#define PARSE(o)                                                               \
  do {                                                                         \
    int prc = parse(&o, argc, argv);                                           \
    if (prc != 0)                                                              \
      return prc == 100 ? 0 : prc;                                             \
  } while (0)

/* The request line of object r (freed). */
static char *line_of(cJSON *r) {
  char *t = cJSON_PrintUnformatted(r), *l = NULL;
  cJSON_Delete(r);
  if (t != NULL && (l = malloc(strlen(t) + 2)) != NULL)
    sprintf(l, "%s\n", t);
  free(t);
  return l;
}

/* One exchange: the answer if it is ok, else NULL after one line saying
 * why; *rc is the exit status for a NULL. */
static cJSON *call(const opts *o, cJSON *req, uint64_t timeout_ms, int *rc) {
  char *line = line_of(req);
  bool no_node = false;
  cJSON *a;

  *rc = 1;
  if (line == NULL)
    return NULL;
  a = gv_ctl_call(o->name, o->dir, line, timeout_ms, &no_node);
  free(line);
  if (a == NULL) {
    *rc = no_node ? 3 : 1;
    return NULL;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")))
    return a;
  if (o->json) {
    char *t = cJSON_PrintUnformatted(a);
    puts(t);
    free(t);
  } else {
    fprintf(stderr, "grapevine %s: %s\n", o->name,
            cJSON_GetStringValue(cJSON_GetObjectItem(a, "reason")));
  }
  cJSON_Delete(a);
  return NULL;
}

static const char *str(const cJSON *o, const char *key) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
  return s != NULL ? s : "";
}

static double num(const cJSON *o, const char *key) {
  double v = cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
  return isnan(v) ? 0 : v;
}

static void print_json(const cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  puts(t);
  free(t);
  fflush(stdout);
}

/* "12.3 MiB" */
static void human(double b, char *out, size_t cap) {
  static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    i++;
  }
  snprintf(out, cap, i == 0 ? "%.0f %s" : "%.1f %s", b, u[i]);
}

/* A hash the user typed, checked before the node is asked. */
static int hash_arg(const char *cmd, const char *text) {
  gv_tor_target tg;
  gv_why why = {""};
  if (gv_tor_parse_target(text, strlen(text), &tg, &why) == 0)
    return 0;
  fprintf(stderr, "grapevine %s: '%.80s' is not an info-hash or magnet: %s\n",
          cmd, text, why.text);
  return 2;
}

/* ---- share ---- */

int gv_cmd_share(int argc, char **argv) {
  opts o = {
      .name = "share",
      .usage = "PATH [--repo NAME] [--data-dir DIR] [--json]",
      .about =
          "Shares the file or directory PATH: the node hashes it (a v1+v2\n"
          "hybrid torrent), seeds it from where it is, and names it in its\n"
          "signed record (bt:<v1>, bt2:<v2>) so that fetchers find it by\n"
          "gossip. Prints both info-hashes and the magnet link.\n\n"
          "  --repo NAME     also list NAME in the record\n"
          "  --json          print the node's answer as one JSON object",
      .min_args = 1,
      .max_args = 1};
  char path[PATH_MAX];
  cJSON *r, *a;
  int rc;

  PARSE(o);
  if (o.repo != NULL && gv_repo_name_check(o.repo, strlen(o.repo)) < 0) {
    fprintf(stderr,
            "grapevine share: '%s' is not a repository name (1..%d of "
            "A-Za-z0-9._-/:@+)\n",
            o.repo, GV_REPO_MAX);
    return 2;
  }
  if (realpath(argv[optind], path) == NULL) {
    fprintf(stderr, "grapevine share: %s: %s\n", argv[optind], strerror(errno));
    return 1;
  }
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "grapevine share: %s: %s\n", path, strerror(errno));
    return 1;
  }
  r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cmd", "share");
  cJSON_AddStringToObject(r, "path", path);
  if (o.repo != NULL)
    cJSON_AddStringToObject(r, "repo", o.repo);
  /* Hashing a big file takes a while: the node answers when it is done. */
  if ((a = call(&o, r, 3600 * 1000, &rc)) == NULL)
    return rc;
  if (o.json) {
    print_json(a);
  } else {
    printf("%s %s\nv1      %s\nv2      %s\nmagnet  %s\n",
           cJSON_IsTrue(cJSON_GetObjectItem(a, "already")) ? "already shared"
                                                           : "shared",
           str(a, "path"), str(a, "v1"), str(a, "v2"), str(a, "magnet"));
  }
  cJSON_Delete(a);
  return 0;
}

/* ---- fetch ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void eta_text(double left, double rate, char *out, size_t cap) {
  if (rate <= 0) {
    snprintf(out, cap, "--");
    return;
  }
  double s = left / rate;
  if (s < 60)
    snprintf(out, cap, "%.0fs", s);
  else if (s < 3600)
    snprintf(out, cap, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
  else
    snprintf(out, cap, "%.0fh%02.0fm", floor(s / 3600), fmod(s / 60, 60));
}

/* One progress report of status t. */
static void progress(const opts *o, const cJSON *t, bool tty) {
  char done[32], total[32], rate[32], eta[32];
  double d = num(t, "done"), tot = num(t, "total"), r = num(t, "down_rate");

  if (o->json) {
    cJSON *e = cJSON_Duplicate(t, 1);
    cJSON_AddStringToObject(e, "event", "progress");
    print_json(e);
    cJSON_Delete(e);
    return;
  }
  human(d, done, sizeof(done));
  human(tot, total, sizeof(total));
  human(r, rate, sizeof(rate));
  eta_text(tot - d, r, eta, sizeof(eta));
  printf("%s%5.1f%%  %s / %s  %s/s  %.0f peer%s  ETA %s%s", tty ? "\r" : "",
         num(t, "progress") * 100, done, total, rate, num(t, "peers"),
         num(t, "peers") == 1 ? "" : "s", eta, tty ? "\033[K" : "\n");
  fflush(stdout);
}

/* The line that replaces the live one when every piece is verified: the
 * size, and the time and average rate of the whole fetch by the node's
 * clock (fetch_ms; ms, the CLI's own time when attached to an old one). */
static void finished(const cJSON *t, double ms, bool tty) {
  char total[32], rate[32];
  const cJSON *f = cJSON_GetObjectItem(t, "fetch_ms");

  if (cJSON_IsNumber(f))
    ms = f->valuedouble;
  human(num(t, "total"), total, sizeof(total));
  human(ms > 0 ? num(t, "total") * 1000 / ms : 0, rate, sizeof(rate));
  printf("%s100.0%%  %s in %.1f s  (%s/s on average)%s\n", tty ? "\r" : "",
         total, ms / 1000, rate, tty ? "\033[K" : "");
}

/* The fetch's end: a JSON result line or the path as the last line. */
static int result(const opts *o, const cJSON *t, bool ok, const char *why,
                  bool tty) {
  if (o->json) {
    cJSON *e = cJSON_Duplicate(t, 1);
    cJSON_AddStringToObject(e, "event", "result");
    cJSON_AddBoolToObject(e, "ok", ok);
    if (!ok)
      cJSON_AddStringToObject(e, "reason", why);
    print_json(e);
    cJSON_Delete(e);
    return ok ? 0 : 1;
  }
  if (tty)
    printf("\n");
  if (!ok) {
    fprintf(stderr, "grapevine fetch: %s\n", why);
    return 1;
  }
  printf("%s\n", str(t, "path"));
  return 0;
}

int gv_cmd_fetch(int argc, char **argv) {
  opts o = {
      .name = "fetch",
      .usage = "INFOHASH|MAGNET [--out DIR] [--timeout T] [--data-dir DIR] "
               "[--json]",
      .about =
          "Asks the node to fetch a torrent (a 40-hex v1 or 64-hex v2\n"
          "info-hash, or a magnet link) from the nodes that hold it, found\n"
          "by gossip, and shows its progress until every piece is verified.\n"
          "The last line is the path of the file or directory. Ctrl-C stops\n"
          "this command only: the node goes on fetching, and a later fetch\n"
          "of the same hash attaches to it.\n\n"
          "  --out DIR       where the files go (default: the current "
          "directory)\n"
          "  --timeout T     give up when no holder is found within T "
          "(default 60s),\n"
          "                  or no byte is verified for T once one is\n"
          "  --json          progress events, one JSON object per line; the "
          "last\n"
          "                  (\"event\":\"result\") says ok and the path",
      .min_args = 1,
      .max_args = 1};
  char out[PATH_MAX], hash[65], why[256];
  uint64_t timeout = FETCH_TIMEOUT_MS, t0, last_print = 0, last_change;
  double last_done = -1;
  bool tty = isatty(STDOUT_FILENO);
  cJSON *r, *a, *t;
  int rc;

  PARSE(o);
  if (o.timeout != NULL &&
      (!gv_cli_duration(o.timeout, &timeout) || timeout == 0)) {
    fprintf(stderr, "grapevine fetch: --timeout takes a duration (30s, 5m)\n");
    return 2;
  }
  if ((rc = hash_arg("fetch", argv[optind])) != 0)
    return rc;
  if (gv_cli_mkdirs(o.out != NULL ? o.out : ".") < 0 ||
      realpath(o.out != NULL ? o.out : ".", out) == NULL) {
    fprintf(stderr, "grapevine fetch: %s: %s\n", o.out ? o.out : ".",
            strerror(errno));
    return 1;
  }
  r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cmd", "fetch");
  cJSON_AddStringToObject(r, "target", argv[optind]);
  cJSON_AddStringToObject(r, "out", out);
  if ((a = call(&o, r, 10000, &rc)) == NULL)
    return rc;
  t = cJSON_GetObjectItem(a, "torrent");
  snprintf(hash, sizeof(hash), "%s",
           str(t, "v1")[0] ? str(t, "v1") : str(t, "v2"));
  if (cJSON_IsTrue(cJSON_GetObjectItem(a, "attached")) && !o.json)
    fprintf(stderr, "grapevine fetch: the node has this torrent already; "
                    "following it\n");
  t0 = last_change = mono_ms();
  for (;;) {
    uint64_t now = mono_ms();
    const char *err = str(t, "error");
    double d = num(t, "done");

    if (cJSON_IsTrue(cJSON_GetObjectItem(t, "complete"))) {
      if (o.json)
        progress(&o, t, tty);
      else
        finished(t, (double)(now - t0), tty);
      rc = result(&o, t, true, NULL, false);
      break;
    }
    if (err[0] != '\0') {
      snprintf(why, sizeof(why), "failed: %s", err);
      rc = result(&o, t, false, why, tty);
      break;
    }
    if (d != last_done) {
      last_done = d;
      last_change = now;
    }
    if (num(t, "holders") == 0 && num(t, "peers") == 0 && now - t0 >= timeout) {
      snprintf(why, sizeof(why), "no holder found within %s",
               o.timeout ? o.timeout : "60s");
      rc = result(&o, t, false, why, tty);
      break;
    }
    if (now - last_change >= timeout && now - t0 >= timeout) {
      snprintf(why, sizeof(why),
               "no piece verified within %s (%.0f holder(s) known, %.0f "
               "peer(s) connected)",
               o.timeout ? o.timeout : "60s", num(t, "holders"),
               num(t, "peers"));
      rc = result(&o, t, false, why, tty);
      break;
    }
    if (tty || now - last_print >= (o.json ? JSON_EVERY_MS : PLAIN_EVERY_MS)) {
      progress(&o, t, tty);
      last_print = now;
    }
    usleep(POLL_MS * 1000);
    cJSON_Delete(a);
    r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "cmd", "torrent");
    cJSON_AddStringToObject(r, "hash", hash);
    if ((a = call(&o, r, 10000, &rc)) == NULL) {
      if (tty)
        printf("\n");
      return rc;
    }
    t = cJSON_GetObjectItem(a, "torrent");
  }
  cJSON_Delete(a);
  return rc;
}

/* ---- torrents ---- */

int gv_cmd_torrents(int argc, char **argv) {
  opts o = {
      .name = "torrents",
      .usage = "[--data-dir DIR] [--json]",
      .about =
          "Lists the node's torrents: hash, name, state, progress, rates,\n"
          "peers, seeding ratio, and whether it was shared or fetched.\n\n"
          "  --json          print the array of torrents",
      .min_args = 0,
      .max_args = 0};
  cJSON *r, *a, *t;
  int rc;

  PARSE(o);
  r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cmd", "torrents");
  if ((a = call(&o, r, 5000, &rc)) == NULL)
    return rc;
  if (o.json) {
    print_json(cJSON_GetObjectItem(a, "torrents"));
    cJSON_Delete(a);
    return 0;
  }
  printf("%-12s  %-24s %-11s %6s %10s %10s %5s %6s %s\n", "HASH", "NAME",
         "STATE", "DONE", "DOWN", "UP", "PEERS", "RATIO", "KIND");
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(a, "torrents")) {
    char down[32], up[32];
    human(num(t, "down_rate"), down, sizeof(down));
    human(num(t, "up_rate"), up, sizeof(up));
    printf("%-12.12s  %-24.24s %-11s %5.1f%% %8s/s %8s/s %5.0f %6.2f %s\n",
           str(t, "v1")[0] ? str(t, "v1") : str(t, "v2"), str(t, "name"),
           str(t, "state"), num(t, "progress") * 100, down, up, num(t, "peers"),
           num(t, "ratio"), str(t, "kind"));
  }
  cJSON_Delete(a);
  return 0;
}

/* ---- unshare ---- */

int gv_cmd_unshare(int argc, char **argv) {
  opts o = {
      .name = "unshare",
      .usage = "INFOHASH [--delete] [--data-dir DIR] [--json]",
      .about =
          "Stops seeding (or fetching) a torrent, removes it from the node\n"
          "and its names from the record. The files stay unless --delete.\n\n"
          "  --delete        delete the torrent's files too\n"
          "  --json          print the node's answer",
      .min_args = 1,
      .max_args = 1};
  cJSON *r, *a;
  int rc;

  PARSE(o);
  if ((rc = hash_arg("unshare", argv[optind])) != 0)
    return rc;
  r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cmd", "unshare");
  cJSON_AddStringToObject(r, "hash", argv[optind]);
  cJSON_AddBoolToObject(r, "delete", o.del);
  if ((a = call(&o, r, 15000, &rc)) == NULL)
    return rc;
  if (o.json)
    print_json(a);
  else
    printf("unshared %s; files %s\n",
           str(a, "v1")[0] ? str(a, "v1") : str(a, "v2"),
           o.del ? "deleted" : "kept");
  cJSON_Delete(a);
  return 0;
}

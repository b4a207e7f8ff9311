/* tracker_client: node/trkclient.c from the command line, for the
 * tracker's tests and for people trying the API by hand.
 *
 *   tracker_client URL register --key FILE --port N [--repos a,b]
 *                  [--caps x,y] [--ts-offset MS]
 *   tracker_client URL unregister --key FILE [--ts-offset MS]
 *   tracker_client URL peers [--max N]
 *   tracker_client URL discover REPOS [--max N]
 *   tracker_client body --key FILE --port N [--repos a,b] [--ts MS]
 *   tracker_client sign --key FILE --method M --path P --body TEXT
 *   tracker_client id --key FILE
 *
 * The calls print one summary line, "rc=NAME http=N error=CODE ...", then
 * one line per peer ("peer ID ADDR REPO,..."), and exit 0 on success, 1 on
 * failure, 2 on a usage error. Keys are created if missing. */
#include <curl/curl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trkclient.h"

#define MAX_NAMES 64

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct args {
  const char *key, *method, *path, *body;
  long port, max;
  long long ts, ts_offset;
  size_t n_repos, n_caps;
  const char *repos[MAX_NAMES], *caps[MAX_NAMES];
  char *repos_buf, *caps_buf;
} args;

/* Splits a comma-separated list in place (buf is kept by the caller). */
static size_t split(char *buf, const char **out) {
  size_t n = 0;
  for (char *tok = strtok(buf, ","); tok && n < MAX_NAMES;
       tok = strtok(NULL, ","))
    out[n++] = tok;
  return n;
}

static int parse(args *a, int argc, char **argv) {
  static const struct option opts[] = {
      {"key", required_argument, NULL, 'k'},
      {"port", required_argument, NULL, 'p'},
      {"repos", required_argument, NULL, 'r'},
      {"caps", required_argument, NULL, 'c'},
      {"max", required_argument, NULL, 'm'},
      {"ts", required_argument, NULL, 't'},
      {"ts-offset", required_argument, NULL, 'o'},
      {"method", required_argument, NULL, 'M'},
      {"path", required_argument, NULL, 'P'},
      {"body", required_argument, NULL, 'b'},
      {NULL, 0, NULL, 0}};
  int opt;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (opt) {
    case 'k': a->key = optarg; break;
    case 'p': a->port = atol(optarg); break;
    case 'r':
      a->repos_buf = strdup(optarg);
      a->n_repos = split(a->repos_buf, a->repos);
      break;
    case 'c':
      a->caps_buf = strdup(optarg);
      a->n_caps = split(a->caps_buf, a->caps);
      break;
    case 'm': a->max = atol(optarg); break;
    case 't': a->ts = atoll(optarg); break;
    case 'o': a->ts_offset = atoll(optarg); break;
    case 'M': a->method = optarg; break;
    case 'P': a->path = optarg; break;
    case 'b': a->body = optarg; break;
    default: return -1;
    }
  }
  return optind;
}

static int load_key(const args *a, gv_identity *id) {
  gv_why why = {""};
  int created;

  if (a->key == NULL) {
    fprintf(stderr, "tracker_client: --key FILE is required\n");
    return -1;
  }
  if (gv_id_load_or_create(id, a->key, &created, &why) < 0) {
    fprintf(stderr, "tracker_client: %s\n", why.text);
    return -1;
  }
  return 0;
}

static void print_result(int rc, const gv_trkc_result *res) {
  char addr[GV_ADDR_TEXT_MAX] = "-";

  if (res->addr.family != 0)
    gv_addr_format(&res->addr, addr);
  printf("rc=%s http=%ld error=%s retry_after=%ld addr=%s renewed=%d "
         "reason=%s\n",
         rc == 0 ? "OK" : gv_err_name(rc), res->http,
         res->error[0] ? res->error : "-", res->retry_after_s, addr,
         res->renewed, res->reason[0] ? res->reason : "-");
}

static void print_peers(const gv_trkc_peers *p) {
  printf("peers %zu total %zu skipped %zu\n", p->n, p->total, p->skipped);
  for (size_t i = 0; i < p->n; i++) {
    char hex[GV_ID_HEX_LEN + 1], addr[GV_ADDR_TEXT_MAX];
    gv_id_to_hex(p->v[i].id, hex);
    gv_addr_format(&p->v[i].addr, addr);
    printf("peer %s %s ", hex, addr);
    for (size_t j = 0; j < p->v[i].n_repos; j++)
      printf("%s%s", j ? "," : "", p->v[i].repos[j]);
    printf("%s\n", p->v[i].n_repos ? "" : "-");
  }
}

static int call(const char *url, const char *cmd, args *a) {
  gv_trkc *c;
  gv_trkc_result res;
  gv_trkc_peers peers = {0};
  gv_identity id;
  int64_t now = now_ms() + a->ts_offset;
  int rc;

  if (gv_trkc_new(&c, url, NULL) < 0) {
    fprintf(stderr, "tracker_client: bad URL %s\n", url);
    return 2;
  }
  if (strcmp(cmd, "register") == 0 || strcmp(cmd, "unregister") == 0) {
    if (load_key(a, &id) < 0) {
      gv_trkc_free(c);
      return 2;
    }
    if (cmd[0] == 'r') {
      gv_trkc_reg reg = {(uint16_t)a->port, a->n_repos, a->repos, a->n_caps,
                         a->caps};
      rc = gv_trkc_register(c, &id, &reg, now, &res, &peers);
    } else {
      rc = gv_trkc_unregister(c, &id, now, &res);
    }
    gv_id_wipe(&id);
  } else if (strcmp(cmd, "peers") == 0) {
    rc = gv_trkc_peers_get(c, (unsigned)a->max, &res, &peers);
  } else {
    rc = gv_trkc_discover(c, a->repos, a->n_repos, (unsigned)a->max, &res,
                          &peers);
  }
  print_result(rc, &res);
  if (rc == 0)
    print_peers(&peers);
  gv_trkc_peers_free(&peers);
  gv_trkc_free(c);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  args a;
  gv_identity id;
  int rc = 2;

  memset(&a, 0, sizeof(a));
  if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
    return 1;
  if (argc >= 3 && strncmp(argv[1], "http", 4) == 0) {
    const char *url = argv[1], *cmd = argv[2];
    int at = parse(&a, argc - 2, argv + 2);
    if (strcmp(cmd, "discover") == 0 && at >= 0 && at < argc - 2) {
      a.repos_buf = strdup(argv[2 + at]);
      a.n_repos = split(a.repos_buf, a.repos);
      at++;
    }
    if (at == argc - 2 &&
        (strcmp(cmd, "register") == 0 || strcmp(cmd, "unregister") == 0 ||
         strcmp(cmd, "peers") == 0 || strcmp(cmd, "discover") == 0))
      rc = call(url, cmd, &a);
  } else if (argc >= 2 && parse(&a, argc - 1, argv + 1) == argc - 1) {
    const char *cmd = argv[1];
    if (strcmp(cmd, "id") == 0 && load_key(&a, &id) == 0) {
      char hex[GV_ID_HEX_LEN + 1];
      gv_id_to_hex(id.pk, hex);
      puts(hex);
      rc = 0;
    } else if (strcmp(cmd, "body") == 0 && load_key(&a, &id) == 0) {
      gv_trkc_reg reg = {(uint16_t)a.port, a.n_repos, a.repos, a.n_caps,
                         a.caps};
      char *body;
      size_t len;
      rc = gv_trkc_register_body(&id, &reg, a.ts ? a.ts : now_ms(), &body,
                                 &len) == 0
               ? 0
               : 1;
      if (rc == 0)
        puts(body);
      free(body);
    } else if (strcmp(cmd, "sign") == 0 && a.method && a.path && a.body &&
               load_key(&a, &id) == 0) {
      char sig[2 * GV_SIG_BYTES + 1];
      gv_trkc_sign(&id, a.method, a.path, (const uint8_t *)a.body,
                   strlen(a.body), sig);
      puts(sig);
      rc = 0;
    }
    if (rc == 0)
      gv_id_wipe(&id);
  }
  if (rc == 2)
    fprintf(stderr,
            "usage: tracker_client URL register|unregister|peers|discover "
            "...\n       tracker_client body|sign|id --key FILE ...\n");
  free(a.repos_buf);
  free(a.caps_buf);
  curl_global_cleanup();
  return rc;
}

/* The node's torrent service. Contracts in torsvc.h; the user's and the
 * developer's view in docs/TORRENT.md. */
#include "torsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../torrent/tor.h"
#include "cli.h"
#include "ctlsrv.h"
#include "fsutil.h"
#include "json.h"
#include "sockaddr.h"

/* Distinct holders a fetch counts (more are still connected). */
#define HOLDERS_MAX 32
#define EVENTS_MAX 32

typedef struct tent {
  gv_tor_ih ih;
  bool share;                        /* else a fetch */
  bool done;                         /* every piece verified */
  char repo[GV_REPO_MAX + 1];        /* --repo of a share, or "" */
  char save[GV_CTL_PATH_MAX + 1];    /* save path */
  char err[192];                     /* the last file or torrent error */
  uint64_t added_ns, first_piece_ns; /* uv_hrtime(), this run; 0: none */
  uint64_t finished_ns;              /* a fetch's last piece, this run */
  bool req_live;                     /* req_id is a PEER_REQUEST of ours */
  uint8_t req_id[GV_MSG_ID_BYTES];
  int64_t find_at, find_gap; /* the next search for holders, and the
                                gap after it (0: the first) */
  uint8_t holders[HOLDERS_MAX][GV_ID_BYTES];
  unsigned n_holders;
} tent;

struct gv_torsvc {
  uv_loop_t *loop;
  gv_engine *engine;
  gv_log *log;
  gv_tor *tor; /* NULL once stopped */
  uv_async_t async;
  uv_timer_t find;
  char dir[4096];
  gv_torsvc_cbs cbs;
  void *ctx;
  tent *t[GV_TORSVC_MAX];
  size_t n;
  int jobs;                 /* share jobs on the thread pool */
  struct share_job *shares; /* those jobs, for gv_torsvc_stop() */
  int handles;              /* open uv handles */
  bool stopped;
  /* While a fetch is being added (cmd_fetch), its holders' addresses are
   * gathered here and handed to gv_tor_add(), which dials them at once;
   * NULL otherwise: they go to gv_tor_connect(). */
  struct sockaddr_storage *early;
  size_t n_early;
};

/* A share being hashed on the thread pool. cancel is set (atomically)
 * by gv_torsvc_stop() on the loop thread and read by the hashing. */
typedef struct share_job {
  uv_work_t work;
  gv_torsvc *s;
  struct share_job *next;
  int cancel;
  bool answered; /* gv_torsvc_stop() answered the CLI already */
  uint64_t token;
  char path[GV_CTL_PATH_MAX + 1];
  char repo[GV_REPO_MAX + 1];
  uint8_t *bytes;
  size_t len;
  gv_tor_ih ih;
  int rc;
  gv_why why;
} share_job;

static void maybe_free(gv_torsvc *s) {
  if (!s->stopped || s->handles > 0 || s->jobs > 0)
    return;
  for (size_t i = 0; i < s->n; i++)
    free(s->t[i]);
  free(s);
}

/* ---- names and lookups ---- */

/* The key of a torrent's files: its v1 hex if it has one, else its v2. */
static void ih_key(const gv_tor_ih *ih, char out[65]) {
  if (ih->has_v1)
    gv_tor_hex(ih->v1, 20, out);
  else
    gv_tor_hex(ih->v2, 32, out);
}

/* The record name holders of ih carry: bt:<v1> or, v2-only, bt2:<v2/60>. */
/* A hash's record name: "bt:<v1 hex>", or "bt2:<first 60 hex of v2>". */
static void bt_name(const gv_tor_ih *ih, bool v2, char out[GV_REPO_MAX + 1]) {
  char hex[65];
  gv_tor_hex(v2 ? ih->v2 : ih->v1, v2 ? 32 : 20, hex);
  snprintf(out, GV_REPO_MAX + 1, v2 ? "bt2:%.60s" : "bt:%.40s", hex);
}

/* The name a fetch asks holders by: its v1's, else its v2's. */
static void ih_repo(const gv_tor_ih *ih, char out[GV_REPO_MAX + 1]) {
  bt_name(ih, !ih->has_v1, out);
}

static bool same_ih(const gv_tor_ih *a, const gv_tor_ih *b) {
  bool any = false;
  if (a->has_v1 && b->has_v1) {
    if (memcmp(a->v1, b->v1, 20) != 0)
      return false;
    any = true;
  }
  if (a->has_v2 && b->has_v2) {
    if (memcmp(a->v2, b->v2, 32) != 0)
      return false;
    any = true;
  }
  return any;
}

static tent *find_ih(const gv_torsvc *s, const gv_tor_ih *ih, size_t *at) {
  for (size_t i = 0; i < s->n; i++)
    if (same_ih(&s->t[i]->ih, ih)) {
      if (at != NULL)
        *at = i;
      return s->t[i];
    }
  return NULL;
}

static size_t n_shares(const gv_torsvc *s) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    k += s->t[i]->share;
  return k;
}

static size_t add_name(char (*out)[GV_REPO_MAX + 1], size_t k, size_t cap,
                       const char *name) {
  for (size_t i = 0; i < k && i < cap; i++)
    if (strcmp(out[i], name) == 0)
      return k;
  if (k < cap)
    snprintf(out[k], GV_REPO_MAX + 1, "%s", name);
  return k + 1;
}

size_t gv_torsvc_names(const gv_torsvc *s, char (*out)[GV_REPO_MAX + 1],
                       size_t k, size_t cap) {
  char name[GV_REPO_MAX + 1];

  for (size_t i = 0; i < s->n; i++) {
    const tent *t = s->t[i];
    if (!t->share)
      continue;
    if (t->ih.has_v1) {
      bt_name(&t->ih, false, name);
      k = add_name(out, k, cap, name);
    }
    if (t->ih.has_v2) {
      bt_name(&t->ih, true, name);
      k = add_name(out, k, cap, name);
    }
    if (t->repo[0] != '\0')
      k = add_name(out, k, cap, t->repo);
  }
  return k;
}

uint16_t gv_torsvc_port(const gv_torsvc *s) {
  return s->tor != NULL ? gv_tor_port(s->tor) : 0;
}

int gv_torsvc_listen(gv_torsvc *s, const char *ips, gv_why *why) {
  int rc;
  if (s->tor == NULL)
    return gv_fail(why, GV_ESTATE, "the torrent service is stopped");
  if ((rc = gv_tor_set_listen(s->tor, ips, gv_tor_port(s->tor), why)) == 0)
    gv_logf(s->log, GV_LOG_INFO, "torrent: listening on %s port %u", ips,
            gv_tor_port(s->tor));
  return rc;
}

/* ---- persistence ---- */

/* Writes len bytes to DIR/name atomically (gv_write_atomic). 0 or -errno. */
static int write_atomic(const gv_torsvc *s, const char *name, const void *buf,
                        size_t len) {
  char path[4200];

  if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->dir, name) >=
      sizeof(path))
    return -ENAMETOOLONG;
  return gv_write_atomic(path, buf, len, NULL);
}

/* The list: "share|fetch \t v1 \t v2 \t repo \t save path" per line. */
static int save_list(gv_torsvc *s) {
  size_t cap = s->n * (GV_CTL_PATH_MAX + 256) + 1, off = 0;
  char *buf = malloc(cap);
  int rc;

  if (buf == NULL)
    return -ENOMEM;
  buf[0] = '\0';
  for (size_t i = 0; i < s->n; i++) {
    const tent *t = s->t[i];
    char v1[41] = "", v2[65] = "";
    if (t->ih.has_v1)
      gv_tor_hex(t->ih.v1, 20, v1);
    if (t->ih.has_v2)
      gv_tor_hex(t->ih.v2, 32, v2);
    off += (size_t)snprintf(buf + off, cap - off, "%s\t%s\t%s\t%s\t%s\n",
                            t->share ? "share" : "fetch", v1, v2, t->repo,
                            t->save);
  }
  rc = write_atomic(s, "list", buf, off);
  free(buf);
  if (rc < 0)
    gv_logf(s->log, GV_LOG_ERROR, "torrent: cannot save %s/list: %s", s->dir,
            strerror(-rc));
  return rc;
}

static int read_all(const char *path, uint8_t **out, size_t *len, size_t max) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
  uint8_t *buf = NULL;
  size_t off = 0;

  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0 || st.st_size < 0 || (size_t)st.st_size > max) {
    close(fd);
    return -EFBIG;
  }
  if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
    close(fd);
    return -ENOMEM;
  }
  while (off < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      rc = r < 0 ? -errno : -EIO;
      break;
    }
    off += (size_t)r;
  }
  close(fd);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  buf[off] = 0;
  *out = buf;
  *len = off;
  return 0;
}

static bool hex_ok(const char *h, size_t n, uint8_t *out) {
  return gv_hex_decode(out, n, h, strlen(h)) == 0;
}

static tent *tent_new(gv_torsvc *s, const gv_tor_ih *ih, bool share,
                      const char *repo, const char *save) {
  tent *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->ih = *ih;
  t->share = share;
  snprintf(t->repo, sizeof(t->repo), "%s", repo);
  snprintf(t->save, sizeof(t->save), "%s", save);
  t->added_ns = uv_hrtime();
  s->t[s->n++] = t;
  return t;
}

/* One line of the list back into the session. */
static void load_line(gv_torsvc *s, char *line) {
  char *f[5], key[65];
  gv_tor_ih ih;
  gv_why why = {""};
  int k = 0, rc;

  memset(&ih, 0, sizeof(ih));
  /* Fields may be empty (no v1, no v2, no repo): strsep keeps them. */
  for (char *p; k < 5 && (p = strsep(&line, "\t")) != NULL;)
    f[k++] = p;
  if (k != 5 || line != NULL || s->n >= GV_TORSVC_MAX) {
    gv_logf(s->log, GV_LOG_WARN, "torrent: a line of %s/list is refused",
            s->dir);
    return;
  }
  ih.has_v1 = hex_ok(f[1], 20, ih.v1);
  ih.has_v2 = hex_ok(f[2], 32, ih.v2);
  /* A list edited by hand or damaged: a torrent listed twice is loaded
   * once, and shares past the cap are not loaded at all. */
  if ((!ih.has_v1 && !ih.has_v2) || f[4][0] != '/' ||
      (f[3][0] != '\0' && gv_repo_name_check(f[3], strlen(f[3])) < 0) ||
      find_ih(s, &ih, NULL) != NULL ||
      (strcmp(f[0], "share") == 0 && n_shares(s) >= GV_TORSVC_SHARES_MAX)) {
    gv_logf(s->log, GV_LOG_WARN, "torrent: a line of %s/list is refused",
            s->dir);
    return;
  }
  ih_key(&ih, key);
  if (strcmp(f[0], "share") == 0) {
    char path[4200];
    uint8_t *bytes = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s.torrent", s->dir, key);
    rc = read_all(path, &bytes, &len, 64u << 20);
    if (rc == 0) {
      gv_tor_add_params p = {.torrent = bytes,
                             .torrent_len = len,
                             .save_path = f[4],
                             .flags = GV_TOR_ADD_SEED_MODE};
      rc = gv_tor_add(s->tor, &p, &ih, &why);
    } else {
      gv_fail(&why, rc, "%s: %s", path, strerror(-rc));
    }
    free(bytes);
  } else {
    gv_tor_target tg;
    memset(&tg, 0, sizeof(tg));
    tg.ih = ih;
    gv_tor_add_params p = {.target = &tg, .save_path = f[4]};
    rc = gv_tor_add(s->tor, &p, &ih, &why);
  }
  if (rc < 0 && rc != GV_EDUP) {
    gv_logf(s->log, GV_LOG_WARN, "torrent %s: not added again: %s", key,
            why.text);
    return;
  }
  if (tent_new(s, &ih, strcmp(f[0], "share") == 0, f[3], f[4]) != NULL)
    gv_logf(s->log, GV_LOG_INFO, "torrent %s: %s again (%s)", key,
            strcmp(f[0], "share") == 0 ? "shared" : "fetching", f[4]);
}

static void load_list(gv_torsvc *s) {
  char path[4200], *save = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;

  snprintf(path, sizeof(path), "%s/list", s->dir);
  if (read_all(path, &buf, &len, (size_t)GV_TORSVC_MAX * 8192) < 0)
    return;
  for (char *line = strtok_r((char *)buf, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save))
    load_line(s, line);
  free(buf);
}

/* ---- holders ---- */

/* The 20 bytes a BitTorrent handshake names the torrent by: its v1
 * info-hash, or a v2-only torrent's v2 truncated (BEP 52). */
static void handshake_ih(const gv_tor_ih *ih, uint8_t out[20]) {
  memcpy(out, ih->has_v1 ? ih->v1 : ih->v2, 20);
}

bool gv_torsvc_serves(const gv_torsvc *s, const uint8_t ih[20]) {
  if (s == NULL || s->tor == NULL)
    return false;
  for (size_t i = 0; i < s->n; i++) {
    gv_tor_status st;
    if ((memcmp(s->t[i]->ih.v1, ih, 20) != 0 || !s->t[i]->ih.has_v1) &&
        (memcmp(s->t[i]->ih.v2, ih, 20) != 0 || !s->t[i]->ih.has_v2))
      continue;
    return gv_tor_status_get(s->tor, &s->t[i]->ih, &st, NULL) == 0 &&
           st.total > 0;
  }
  return false;
}

/* Dials one address of a holder of t: now if t is in the session, else
 * with the add (see gv_torsvc.early). */
static void dial(gv_torsvc *s, const tent *t, const struct sockaddr *sa) {
  gv_why why = {""};

  if (s->early != NULL) {
    if (s->n_early < GV_TOR_ADD_PEERS_MAX)
      memcpy(&s->early[s->n_early++], sa,
             sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
    return;
  }
  if (gv_tor_connect(s->tor, &t->ih, sa, &why) < 0)
    gv_logf(s->log, GV_LOG_DEBUG, "torrent: connect: %s", why.text);
}

/* The one place a holder that cannot be dialed directly goes: a silent
 * holder, or any holder while this node is silent. The owner gives a local
 * port that tunnels to it (docs/TORRENT.md, "The connection matrix"), and
 * libtorrent dials that; none yet while the link it needs comes up (the
 * next scan asks again). */
static void torsvc_reach_tunnel(gv_torsvc *s, const tent *t,
                                const uint8_t id[GV_ID_BYTES]) {
  uint8_t ih[20];
  struct sockaddr_in sin;
  uint16_t port;

  handshake_ih(&t->ih, ih);
  if ((port = s->cbs.tunnel(s->ctx, id, ih)) == 0)
    return;
  uv_ip4_addr("127.0.0.1", port, &sin);
  dial(s, t, (struct sockaddr *)&sin);
}

/* A node whose record lists the torrent: counted, then dialed on each of
 * its addresses' IP at its torrent port when both ends broadcast. */
static void holder(gv_torsvc *s, tent *t, const uint8_t id[GV_ID_BYTES],
                   bool broadcasting, const gv_addr *addrs, unsigned n_addrs,
                   uint16_t tport) {
  unsigned i;

  for (i = 0; i < t->n_holders; i++)
    if (memcmp(t->holders[i], id, GV_ID_BYTES) == 0)
      break;
  if (i == t->n_holders && t->n_holders < HOLDERS_MAX)
    memcpy(t->holders[t->n_holders++], id, GV_ID_BYTES);
  if (!gv_engine_broadcasting(s->engine) || !broadcasting || tport == 0 ||
      n_addrs == 0) {
    torsvc_reach_tunnel(s, t, id);
    return;
  }
  for (i = 0; i < n_addrs; i++) {
    struct sockaddr_storage ss;
    gv_addr a = addrs[i];
    bool seen = false;
    for (unsigned j = 0; j < i && !seen; j++) /* one dial per IP */
      seen = addrs[j].family == a.family &&
             memcmp(addrs[j].ip, a.ip, sizeof(a.ip)) == 0;
    if (seen)
      continue;
    a.port = tport;
    gv_addr_to_sockaddr(&a, &ss, NULL);
    dial(s, t, (struct sockaddr *)&ss);
  }
}

/* The holders of one fetch that this node's table knows. */
static void scan_table(gv_torsvc *s, tent *t) {
  char repo[GV_REPO_MAX + 1];
  const gv_peer_entry *p;

  ih_repo(&t->ih, repo);
  for (size_t i = 0; (p = gv_engine_table_at(s->engine, i)) != NULL; i++)
    if (gv_peer_entry_has_repo(p, repo))
      holder(s, t, p->id, p->broadcasting, gv_peer_entry_addrs(p), p->n_addrs,
             p->tport);
}

/* A PEER_REQUEST for the holders of one fetch, whose answers come through
 * gv_torsvc_report(). */
static void ask_holders(gv_torsvc *s, tent *t) {
  char repo[GV_REPO_MAX + 1];
  int64_t now = s->cbs.now(s->ctx);

  /* The table is ours to read every time (scan_table); a PEER_REQUEST
   * floods the network, so a fetch nobody answers asks less and less
   * often: GV_TORSVC_FIND_MS doubling up to GV_TORSVC_FIND_MAX_MS, until
   * the user asks for it again. */
  if (now >= t->find_at) {
    t->find_gap = t->find_gap == 0 ? GV_TORSVC_FIND_MS
                                   : (t->find_gap * 2 > GV_TORSVC_FIND_MAX_MS
                                          ? GV_TORSVC_FIND_MAX_MS
                                          : t->find_gap * 2);
    t->find_at = now + t->find_gap;
    ih_repo(&t->ih, repo);
    t->req_live =
        gv_engine_request(s->engine, repo, GV_MAX_PEERS, t->req_id, now) == 0;
  }
  s->cbs.changed(s->ctx);
}

/* Holders of one fetch: the table now, and a PEER_REQUEST. */
static void find_holders(gv_torsvc *s, tent *t) {
  scan_table(s, t);
  ask_holders(s, t);
}

void gv_torsvc_report(gv_torsvc *s, const gv_action *a) {
  if (s == NULL || s->tor == NULL)
    return;
  for (size_t i = 0; i < s->n; i++) {
    tent *t = s->t[i];
    char repo[GV_REPO_MAX + 1];
    if (t->share || t->done || !t->req_live ||
        memcmp(t->req_id, a->msg_id, GV_MSG_ID_BYTES) != 0)
      continue;
    ih_repo(&t->ih, repo);
    for (size_t k = 0; k < a->response->u.response.n_peers; k++) {
      const gv_msg *rec = &a->response->u.response.peers[k];
      const gv_peer_state *p = &rec->u.peer;
      const char *r = p->repos;
      bool has = false;
      for (int j = 0; j < p->n_repos && !has; j++, r += strlen(r) + 1)
        has = strcmp(r, repo) == 0;
      if (has)
        holder(s, t, rec->origin, p->broadcasting, p->addrs, p->n_addrs,
               p->tport);
    }
  }
}

static void on_find(uv_timer_t *h) {
  gv_torsvc *s = h->data;
  bool any = false;

  for (size_t i = 0; i < s->n; i++)
    if (!s->t[i]->share && !s->t[i]->done) {
      find_holders(s, s->t[i]);
      any = true;
    }
  if (!any)
    uv_timer_stop(&s->find);
}

static void find_arm(gv_torsvc *s) {
  if (!uv_is_active((uv_handle_t *)&s->find))
    uv_timer_start(&s->find, on_find, GV_TORSVC_FIND_MS, GV_TORSVC_FIND_MS);
}

/* ---- alerts ---- */

static void on_event(gv_torsvc *s, const gv_tor_event *ev) {
  tent *t = find_ih(s, &ev->ih, NULL);
  char key[65];

  ih_key(&ev->ih, key);
  switch (ev->type) {
  case GV_TOR_EV_ADDED:
    /* libtorrent drops a connect made before the torrent is in its
     * session: dial the known holders again now that it is. */
    if (t != NULL && !t->share && !t->done && ev->err == 0)
      scan_table(s, t);
    break;
  case GV_TOR_EV_PIECE:
    if (t != NULL && t->first_piece_ns == 0)
      t->first_piece_ns = uv_hrtime();
    break;
  case GV_TOR_EV_FINISHED:
    if (t != NULL && !t->done) {
      t->done = true;
      t->finished_ns = uv_hrtime();
      t->err[0] = '\0';
      if (!t->share) {
        uint8_t ih[20];
        gv_logf(s->log, GV_LOG_INFO, "torrent %s: complete in %s", key,
                t->save);
        handshake_ih(&t->ih, ih);
        s->cbs.untunnel(s->ctx, ih);
      }
    }
    break;
  case GV_TOR_EV_FILE_ERROR:
  case GV_TOR_EV_TORRENT_ERROR:
    if (t != NULL)
      snprintf(t->err, sizeof(t->err), "%s", ev->reason);
    gv_logf(s->log, GV_LOG_WARN, "torrent %s: %s", key, ev->reason);
    break;
  case GV_TOR_EV_HASH_FAILED:
  case GV_TOR_EV_PEER_BANNED:
    gv_logf(s->log, GV_LOG_WARN, "torrent %s: %s (piece %u)", key,
            gv_tor_ev_name(ev->type), ev->piece);
    break;
  case GV_TOR_EV_METADATA: /* the download goes on on the same peers */
    gv_logf(s->log, GV_LOG_DEBUG, "torrent %s: metadata after %.1f ms", key,
            t != NULL ? (double)(uv_hrtime() - t->added_ns) / 1e6 : 0.0);
    break;
  default: break;
  }
}

static void on_async(uv_async_t *h) {
  gv_torsvc *s = h->data;
  gv_tor_event ev[EVENTS_MAX];
  int n;

  if (s->tor == NULL)
    return;
  do {
    n = gv_tor_poll(s->tor, ev, EVENTS_MAX);
    for (int i = 0; i < n; i++)
      on_event(s, &ev[i]);
  } while (n == EVENTS_MAX);
}

static void notify(void *ctx) { uv_async_send(ctx); }

/* ---- answers ---- */

static const char *state_name(gv_tor_state st) {
  switch (st) {
  case GV_TOR_CHECKING: return "checking";
  case GV_TOR_METADATA: return "metadata";
  case GV_TOR_DOWNLOADING: return "downloading";
  case GV_TOR_SEEDING: return "seeding";
  case GV_TOR_PAUSED: return "paused";
  case GV_TOR_ERROR: return "error";
  }
  return "unknown";
}

static void add_hashes(cJSON *o, const gv_tor_ih *ih) {
  char hex[65];
  gv_tor_hex(ih->v1, 20, hex);
  cJSON_AddStringToObject(o, "v1", ih->has_v1 ? hex : "");
  gv_tor_hex(ih->v2, 32, hex);
  cJSON_AddStringToObject(o, "v2", ih->has_v2 ? hex : "");
}

/* The addresses libtorrent's connections of t go to, as it sees them: a
 * tunnelled peer is 127.0.0.1 (docs/TORRENT.md, "The connection matrix"). */
static cJSON *peer_addrs(gv_torsvc *s, const tent *t) {
  struct sockaddr_storage ss[64];
  cJSON *a = cJSON_CreateArray();
  int n = gv_tor_peers(s->tor, &t->ih, ss, 64, NULL);

  for (int i = 0; i < n && i < 64; i++) {
    gv_addr addr;
    char text[GV_ADDR_TEXT_MAX];
    if (gv_addr_from_sockaddr(&addr, (struct sockaddr *)&ss[i]) < 0)
      continue;
    gv_addr_format(&addr, text);
    cJSON_AddItemToArray(a, cJSON_CreateString(text));
  }
  return a;
}

static cJSON *status_json(gv_torsvc *s, const tent *t) {
  cJSON *o = cJSON_CreateObject();
  gv_tor_status st;
  char path[GV_CTL_PATH_MAX + GV_TOR_NAME_MAX + 2];

  if (gv_tor_status_get(s->tor, &t->ih, &st, NULL) < 0)
    memset(&st, 0, sizeof(st));
  add_hashes(o, &t->ih);
  cJSON_AddStringToObject(o, "name", st.name);
  cJSON_AddStringToObject(o, "kind",
                          t->share  ? "shared"
                          : t->done ? "fetched"
                                    : "fetching");
  cJSON_AddStringToObject(o, "state", state_name(st.state));
  cJSON_AddBoolToObject(o, "complete", t->done || st.state == GV_TOR_SEEDING);
  cJSON_AddNumberToObject(o, "progress", st.progress);
  cJSON_AddNumberToObject(o, "done", (double)st.done);
  cJSON_AddNumberToObject(o, "total", (double)st.total);
  cJSON_AddNumberToObject(o, "down_rate", st.down_rate);
  cJSON_AddNumberToObject(o, "up_rate", st.up_rate);
  cJSON_AddNumberToObject(o, "peers", st.peers);
  cJSON_AddItemToObject(o, "peer_addrs", peer_addrs(s, t));
  cJSON_AddNumberToObject(o, "uploaded", (double)st.all_uploaded);
  cJSON_AddNumberToObject(o, "downloaded", (double)st.all_downloaded);
  cJSON_AddNumberToObject(o, "ratio", st.ratio);
  cJSON_AddNumberToObject(o, "holders", t->n_holders);
  cJSON_AddStringToObject(o, "save_path", t->save);
  snprintf(path, sizeof(path), "%s/%s", t->save, st.name);
  cJSON_AddStringToObject(o, "path", st.name[0] ? path : "");
  if (t->repo[0] != '\0')
    cJSON_AddStringToObject(o, "repo", t->repo);
  if (t->first_piece_ns != 0)
    cJSON_AddNumberToObject(o, "first_piece_ms",
                            (double)(t->first_piece_ns - t->added_ns) / 1e6);
  else
    cJSON_AddNullToObject(o, "first_piece_ms");
  if (t->finished_ns != 0) /* from the add to the last verified piece */
    cJSON_AddNumberToObject(o, "fetch_ms",
                            (double)(t->finished_ns - t->added_ns) / 1e6);
  else
    cJSON_AddNullToObject(o, "fetch_ms");
  cJSON_AddStringToObject(o, "error", st.error[0] ? st.error : t->err);
  return o;
}

static cJSON *ok_with(cJSON *item, const char *key) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddItemToObject(o, key, item);
  return o;
}

/* A hash typed by the user: 40 or 64 hex digits, or a magnet. */
static int parse_hash(const char *text, gv_tor_ih *ih, gv_why *why) {
  gv_tor_target tg;
  int rc = gv_tor_parse_target(text, strlen(text), &tg, why);
  if (rc == 0)
    *ih = tg.ih;
  return rc;
}

/* ---- share ---- */

static void share_work(uv_work_t *w) {
  share_job *j = w->data;
  j->rc = gv_tor_create_cancel(j->path, 0, &j->cancel, &j->bytes, &j->len,
                               &j->ih, &j->why);
}

static cJSON *share_answer(gv_torsvc *s, const share_job *j, bool already) {
  cJSON *o = cJSON_CreateObject();
  char magnet[1024], dir[GV_CTL_PATH_MAX + 1], base[GV_CTL_PATH_MAX + 1];
  tent *t = find_ih(s, &j->ih, NULL);

  snprintf(dir, sizeof(dir), "%s", j->path);
  snprintf(base, sizeof(base), "%s", basename(dir));
  cJSON_AddBoolToObject(o, "ok", 1);
  add_hashes(o, &j->ih);
  if (gv_tor_magnet(&j->ih, base, magnet, sizeof(magnet)) < 0)
    gv_tor_magnet(&j->ih, NULL, magnet, sizeof(magnet));
  cJSON_AddStringToObject(o, "magnet", magnet);
  cJSON_AddStringToObject(o, "name", base);
  cJSON_AddStringToObject(o, "path", j->path);
  cJSON_AddBoolToObject(o, "already", already);
  if (t != NULL && t->repo[0] != '\0')
    cJSON_AddStringToObject(o, "repo", t->repo);
  return o;
}

static void share_done(uv_work_t *w, int status) {
  share_job *j = w->data;
  gv_torsvc *s = j->s;
  char save[GV_CTL_PATH_MAX + 1], key[65], file[80];
  gv_tor_add_params p;
  cJSON *o = NULL;
  tent *t;
  int rc;

  s->jobs--;
  for (share_job **at = &s->shares; *at != NULL; at = &(*at)->next)
    if (*at == j) {
      *at = j->next;
      break;
    }
  /* Stopped: gv_torsvc_stop() cancelled the job (UV_ECANCELED if it had
   * not started, GV_ECANCELED if it was hashing) and answered. */
  if (s->stopped || status < 0 || j->rc == GV_ECANCELED) {
    if (!j->answered)
      s->cbs.answer(s->ctx, j->token,
                    gv_ctlsrv_error(GV_ECANCELED, "share: node stopping"));
    goto out;
  }
  if (j->rc < 0) {
    o = gv_ctlsrv_error(j->rc, j->why.text);
    goto answer;
  }
  if ((t = find_ih(s, &j->ih, NULL)) != NULL) {
    o = t->share ? share_answer(s, j, true)
                 : gv_ctlsrv_error(GV_EDUP, "this node is fetching "
                                            "that torrent; unshare it "
                                            "first");
    goto answer;
  }
  if (n_shares(s) >= GV_TORSVC_SHARES_MAX || s->n >= GV_TORSVC_MAX) {
    o = gv_ctlsrv_error(GV_ELIMIT, "this node shares the most "
                                   "torrents it may; unshare one first");
    goto answer;
  }
  ih_key(&j->ih, key);
  snprintf(file, sizeof(file), "%s.torrent", key);
  if ((rc = write_atomic(s, file, j->bytes, j->len)) < 0) {
    gv_why why;
    gv_fail(&why, rc, "cannot save %s/%s: %s", s->dir, file, strerror(-rc));
    o = gv_ctlsrv_error(rc, why.text);
    goto answer;
  }
  {
    char tmp[GV_CTL_PATH_MAX + 1];
    snprintf(tmp, sizeof(tmp), "%s", j->path);
    snprintf(save, sizeof(save), "%s", dirname(tmp));
  }
  memset(&p, 0, sizeof(p));
  p.torrent = j->bytes;
  p.torrent_len = j->len;
  p.save_path = save;
  p.flags = GV_TOR_ADD_SEED_MODE;
  if ((rc = gv_tor_add(s->tor, &p, &j->ih, &j->why)) < 0) {
    o = gv_ctlsrv_error(rc, j->why.text);
    goto answer;
  }
  t = tent_new(s, &j->ih, true, j->repo, save);
  t->done = true;
  save_list(s);
  gv_logf(s->log, GV_LOG_INFO, "torrent %s: sharing %s", key, j->path);
  s->cbs.names_changed(s->ctx);
  o = share_answer(s, j, false);
answer:
  s->cbs.answer(s->ctx, j->token, o);
out:
  gv_tor_bytes_free(j->bytes);
  free(j);
  maybe_free(s);
}

static cJSON *cmd_share(gv_torsvc *s, const gv_ctl_req *req, uint64_t token) {
  char names[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t need = 2 + (req->repo[0] != '\0');
  share_job *j;
  int rc;

  if (access(req->path, R_OK) != 0) {
    gv_why why;
    gv_fail(&why, -errno, "%s: %s", req->path, strerror(errno));
    return gv_ctlsrv_error(-errno, why.text);
  }
  if (n_shares(s) >= GV_TORSVC_SHARES_MAX)
    return gv_ctlsrv_error(GV_ELIMIT,
                           "this node shares the most torrents it may "
                           "(24); unshare one first");
  if (gv_torsvc_names(s, names, 0, GV_MAX_REPOS) + s->cbs.user_repos(s->ctx) +
          need >
      GV_MAX_REPOS)
    return gv_ctlsrv_error(GV_ELIMIT,
                           "the record has no room for the torrent's "
                           "names (64 at most, with the repositories); "
                           "remove a repository or unshare a torrent");
  if ((j = calloc(1, sizeof(*j))) == NULL)
    return gv_ctlsrv_error(GV_ENOMEM, "out of memory");
  j->s = s;
  j->token = token;
  j->work.data = j;
  snprintf(j->path, sizeof(j->path), "%s", req->path);
  snprintf(j->repo, sizeof(j->repo), "%s", req->repo);
  if ((rc = uv_queue_work(s->loop, &j->work, share_work, share_done)) < 0) {
    free(j);
    return gv_ctlsrv_error(rc, "cannot queue the hashing");
  }
  s->jobs++;
  j->next = s->shares;
  s->shares = j;
  return NULL;
}

/* ---- fetch, status, unshare ---- */

static cJSON *cmd_fetch(gv_torsvc *s, const gv_ctl_req *req) {
  gv_tor_target tg;
  gv_why why = {""};
  cJSON *o;
  tent *t;
  int rc;

  if ((rc = gv_tor_parse_target(req->target, strlen(req->target), &tg, &why)) <
      0)
    return gv_ctlsrv_error(rc, why.text);
  if ((t = find_ih(s, &tg.ih, NULL)) == NULL) {
    struct sockaddr_storage early[GV_TOR_ADD_PEERS_MAX];
    if (s->n >= GV_TORSVC_MAX)
      return gv_ctlsrv_error(GV_ELIMIT, "this node holds the most "
                                        "torrents it may");
    /* The holders this node's table knows go in with the add, which
     * dials them at once: libtorrent's own connect round runs only once a
     * second. */
    if ((t = tent_new(s, &tg.ih, false, "", req->path)) == NULL)
      return gv_ctlsrv_error(GV_ENOMEM, "out of memory");
    s->early = early;
    s->n_early = 0;
    scan_table(s, t);
    s->early = NULL;
    gv_tor_add_params p = {.target = &tg,
                           .save_path = req->path,
                           .peers = early,
                           .n_peers = s->n_early};
    if ((rc = gv_tor_add(s->tor, &p, &t->ih, &why)) < 0) {
      free(t);
      s->n--;
      return gv_ctlsrv_error(rc, why.text);
    }
    save_list(s);
    ask_holders(s, t);
    find_arm(s);
    o = ok_with(status_json(s, t), "torrent");
    cJSON_AddBoolToObject(o, "attached", 0);
    return o;
  }
  if (!t->share && !t->done) {
    t->find_gap = t->find_at = 0; /* asked again: at the first pace */
    find_holders(s, t);
    find_arm(s);
  }
  o = ok_with(status_json(s, t), "torrent");
  cJSON_AddBoolToObject(o, "attached", 1);
  return o;
}

static cJSON *cmd_unshare(gv_torsvc *s, const gv_ctl_req *req) {
  uint8_t tih[20];
  gv_tor_ih ih;
  gv_why why = {""};
  char key[65], file[4200];
  size_t at;
  tent *t;
  cJSON *o;
  int rc;
  bool share;

  if ((rc = parse_hash(req->target, &ih, &why)) < 0)
    return gv_ctlsrv_error(rc, why.text);
  if ((t = find_ih(s, &ih, &at)) == NULL)
    return gv_ctlsrv_error(GV_ENOT_FOUND, "this node has no such torrent");
  if ((rc = gv_tor_remove(s->tor, &t->ih, req->del, &why)) < 0 &&
      rc != GV_ENOT_FOUND)
    return gv_ctlsrv_error(rc, why.text);
  o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  add_hashes(o, &t->ih);
  cJSON_AddBoolToObject(o, "deleted", req->del);
  ih_key(&t->ih, key);
  handshake_ih(&t->ih, tih);
  s->cbs.untunnel(s->ctx, tih);
  share = t->share;
  free(t);
  s->t[at] = s->t[--s->n];
  save_list(s); /* first: a kill -9 now leaves a .torrent nothing lists */
  snprintf(file, sizeof(file), "%s/%s.torrent", s->dir, key);
  unlink(file);
  gv_logf(s->log, GV_LOG_INFO, "torrent %s: removed%s", key,
          req->del ? ", files deleted" : "");
  if (share)
    s->cbs.names_changed(s->ctx);
  return o;
}

cJSON *gv_torsvc_command(gv_torsvc *s, const gv_ctl_req *req, uint64_t token) {
  gv_tor_ih ih;
  gv_why why = {""};
  cJSON *arr;
  tent *t;
  int rc;

  if (s->tor == NULL)
    return gv_ctlsrv_error(GV_ESTATE, "the node is stopping");
  switch (req->cmd) {
  case GV_CTL_SHARE: return cmd_share(s, req, token);
  case GV_CTL_FETCH: return cmd_fetch(s, req);
  case GV_CTL_UNSHARE: return cmd_unshare(s, req);
  case GV_CTL_TORRENT:
    if ((rc = parse_hash(req->target, &ih, &why)) < 0)
      return gv_ctlsrv_error(rc, why.text);
    if ((t = find_ih(s, &ih, NULL)) == NULL)
      return gv_ctlsrv_error(GV_ENOT_FOUND, "this node has no such torrent");
    return ok_with(status_json(s, t), "torrent");
  case GV_CTL_TORRENTS:
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++)
      cJSON_AddItemToArray(arr, status_json(s, s->t[i]));
    return ok_with(arr, "torrents");
  default: return gv_ctlsrv_error(GV_EINVAL, "not a torrent command");
  }
}

/* ---- start and stop ---- */

int gv_torsvc_new(gv_torsvc **out, uv_loop_t *loop, gv_engine *engine,
                  gv_log *log, const gv_config *cfg, const char *listen_ip,
                  const char *dir, const gv_torsvc_cbs *cbs, void *ctx,
                  gv_why *why) {
  gv_torsvc *s = calloc(1, sizeof(*s));
  char state[4200];
  gv_tor_cfg tc;
  int rc;

  *out = NULL;
  if (s == NULL)
    return gv_fail(why, GV_ENOMEM, "torrent: out of memory");
  s->loop = loop;
  s->engine = engine;
  s->log = log;
  s->cbs = *cbs;
  s->ctx = ctx;
  snprintf(s->dir, sizeof(s->dir), "%s", dir);
  snprintf(state, sizeof(state), "%s/state", dir);
  if ((rc = gv_cli_mkdirs(state)) < 0) {
    free(s);
    return gv_fail(why, rc, "torrent: %s: %s", state, strerror(-rc));
  }
  uv_async_init(loop, &s->async, on_async);
  uv_timer_init(loop, &s->find);
  s->async.data = s->find.data = s;
  s->handles = 2;
  memset(&tc, 0, sizeof(tc));
  tc.state_dir = state;
  tc.listen_ip = listen_ip;
  tc.listen_port = cfg->torrent_port;
  tc.dht = cfg->torrent_dht;
  tc.lsd = cfg->torrent_lsd;
  tc.upnp = cfg->torrent_upnp;
  tc.natpmp = cfg->torrent_natpmp;
  tc.utp = cfg->torrent_utp;
  tc.pex = cfg->torrent_pex;
  tc.encryption = (gv_tor_enc)cfg->torrent_encryption;
  tc.upload_rate = (int)cfg->torrent_upload_rate;
  tc.download_rate = (int)cfg->torrent_download_rate;
  tc.notify = notify;
  tc.notify_ctx = &s->async;
  if ((rc = gv_tor_new(&s->tor, &tc, why)) < 0) {
    s->tor = NULL;
    gv_torsvc_stop(s);
    return rc;
  }
  load_list(s); /* the owner publishes gv_torsvc_names() once we return */
  for (size_t i = 0; i < s->n; i++)
    if (!s->t[i]->share)
      find_arm(s);
  gv_logf(log, GV_LOG_INFO, "torrent: listening on port %u, %zu torrent(s)",
          gv_tor_port(s->tor), s->n);
  *out = s;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  gv_torsvc *s = h->data;
  s->handles--;
  maybe_free(s);
}

void gv_torsvc_stop(gv_torsvc *s) {
  if (s == NULL || s->stopped)
    return;
  s->stopped = true;
  /* A share still hashing stops within a few pieces; one still queued
   * never starts. Either way its done callback comes later (the loop
   * must run), and the CLI waiting for it is answered now, while the
   * control socket is still open. */
  for (share_job *j = s->shares; j != NULL; j = j->next) {
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
    uv_cancel((uv_req_t *)&j->work);
    s->cbs.answer(s->ctx, j->token,
                  gv_ctlsrv_error(GV_ECANCELED, "share: node stopping"));
    j->answered = true;
  }
  gv_tor_free(s->tor); /* saves resume data; no notify after it returns */
  s->tor = NULL;
  uv_close((uv_handle_t *)&s->async, on_closed);
  uv_close((uv_handle_t *)&s->find, on_closed);
}

/* The node's configuration: command-line flags and an optional file with
 * the same keys (`key = value` lines; `#` starts a comment; repo and peer
 * may repeat). Flags given on the command line override the file.
 *
 * Keys: data-dir, listen (ADDR:PORT, numeric), broadcast (true/false),
 * bootstrap (true/false; implies broadcast), repo (repeatable), peer
 * (HOST:PORT, repeatable), tracker (http:// or https:// URL), metrics
 * (ADDR:PORT), log-level (error, warn, info, debug); for a silent node's
 * entry guards (docs/NODE.md "Privacy"): guards (true/false, default
 * true), guard-count (1..16; default: the links a node aims for, 5),
 * guard-min-age (seconds in the table before a node may be chosen, 3600),
 * guard-down (seconds of failed dials before a guard is replaced, 3600),
 * guard-lifetime (MIN-MAX days, a guard's lifetime drawn in it, 30-60);
 * for the torrent session (docs/TORRENT.md): torrent-port (0..65535, 0:
 * an ephemeral one, advertised in the record), torrent-upload-rate and
 * torrent-download-rate (bytes/s for the session, 0: unlimited),
 * torrent-encryption (forced, enabled, disabled), and the privacy
 * switches torrent-dht, torrent-lsd, torrent-upnp, torrent-natpmp,
 * torrent-utp and torrent-pex (true/false, all false by default).
 *
 * Pure parsing: no I/O except gv_config_load_file() reading its file.
 */
#ifndef GV_CONFIG_H
#define GV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"
#include "log.h" /* gv_log_level */
#include "msg.h"

#define GV_CONFIG_MAX_PEERS 32
#define GV_CONFIG_PEER_MAX 256 /* HOST:PORT text */
#define GV_CONFIG_URL_MAX 512
#define GV_CONFIG_FILE_MAX (64 * 1024) /* larger config files are refused */

typedef struct gv_config {
  char data_dir[4096]; /* "" until set: the daemon resolves a default */
  bool broadcast, bootstrap;
  bool has_listen;
  gv_addr listen;
  char tracker[GV_CONFIG_URL_MAX]; /* "" if none */
  bool has_metrics;
  gv_addr metrics;
  gv_log_level log_level; /* default GV_LOG_INFO */
  size_t n_repos;
  char repos[GV_MAX_REPOS][GV_REPO_MAX + 1];
  size_t n_peers;
  char peers[GV_CONFIG_MAX_PEERS][GV_CONFIG_PEER_MAX]; /* HOST:PORT */
  bool guards;                                         /* true */
  unsigned guard_count;                         /* 0: the engine's default */
  int64_t guard_min_age_ms;                     /* 1 h */
  int64_t guard_down_ms;                        /* 1 h */
  int64_t guard_life_min_ms, guard_life_max_ms; /* 30, 60 days */
  /* The torrent session (gv_tor_cfg); every privacy switch off. */
  uint16_t torrent_port; /* 0: ephemeral */
  bool torrent_dht, torrent_lsd, torrent_upnp, torrent_natpmp, torrent_utp,
      torrent_pex;
  int torrent_encryption; /* GV_TOR_ENC_*: 0 forced, 1 enabled, 2 disabled */
  uint32_t torrent_upload_rate, torrent_download_rate; /* bytes/s, 0: none */
} gv_config;

void gv_config_default(gv_config *c);

/* Applies one key. Unknown key, bad value or too many repeats: GV_EFIELD /
 * GV_ELIMIT with a reason naming the key. bootstrap=true sets broadcast. */
int gv_config_set(gv_config *c, const char *key, const char *value,
                  gv_why *why);

/* Parses a whole file's text (len bytes, need not be NUL-terminated). On
 * error, why reads "line N: key 'k': reason". */
int gv_config_parse(gv_config *c, const char *text, size_t len, gv_why *why);

/* Reads path (at most GV_CONFIG_FILE_MAX bytes, else GV_ETOOBIG) and
 * parses it; why is prefixed with the path. */
int gv_config_load_file(gv_config *c, const char *path, gv_why *why);

/* After all sources: cross-checks (broadcast needs listen, and so on). */
int gv_config_validate(const gv_config *c, gv_why *why);

/* grapevine config check FILE: exit status as the other commands. */
int gv_cmd_config(int argc, char **argv);

#endif

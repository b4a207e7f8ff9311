/* gv_tor: Grapevine's C face on libtorrent-rasterbar (issue 11).
 *
 * C++17 inside (torrent/tor.cpp), C outside. The types below are opaque or
 * plain C structs; no C++ type, exception or allocation crosses this line.
 * Every entry point catches everything libtorrent may throw and returns a
 * negative GV_E* code (proto/err.h) or -errno, with a reason in a gv_why
 * when the caller passes one. "When a function fails, nothing was added,
 * started or written" unless its comment says otherwise.
 *
 * Threads. A gv_tor session and every gv_tor_* call on it belong to one
 * thread, the caller's loop thread. The one exception is cfg.notify, which
 * libtorrent calls from its own network thread (see gv_tor_cfg).
 *
 * Alerts, without polling on a timer:
 *
 *   libtorrent thread          loop thread (libuv)
 *   alert queued ──notify()──> uv_async_send ──> async cb: gv_tor_poll()
 *
 * notify fires when libtorrent's alert queue goes from empty to non-empty;
 * the queue fills again only after it was drained, so the async callback
 * must call gv_tor_poll() until it returns fewer than `max` events.
 *
 * Privacy defaults (all switches off): no DHT, no local service discovery,
 * no UPnP or NAT-PMP, no peer exchange, TCP only (no uTP), peer connections
 * encrypted (RC4 both ways, plaintext refused). Trackers and web seeds of
 * every added torrent or magnet are stripped: a torrent's peers come only
 * from gv_tor_add_params.peers, gv_tor_connect() and peers that connect to
 * us.
 *
 * Resume data lives in cfg.state_dir as <hash>.resume, where <hash> is the
 * torrent's v1 info-hash in hex if it has one, else its v2 info-hash; for a
 * hybrid torrent <v2>.resume is a symlink to it, so a v2-only magnet finds
 * it too. It is written atomically (temp file, fsync, rename, fsync of the
 * directory) after every GV_TOR_RESUME_PIECES verified pieces or
 * GV_TOR_RESUME_MS milliseconds with at least one new piece, whichever comes
 * first (both checked when alerts arrive), after a file error, when the
 * torrent finishes, and for every torrent in gv_tor_free(). gv_tor_add()
 * loads it when it exists, so verified pieces are never fetched again; an
 * unreadable one is ignored (libtorrent then checks the files on disk).
 */
#ifndef GV_TOR_H
#define GV_TOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Resume-data coalescing (see above). */
#define GV_TOR_RESUME_PIECES 64
#define GV_TOR_RESUME_MS 1000

/* gv_tor_parse_target() refuses longer input before parsing it. */
#define GV_TOR_TARGET_MAX 2048

/* Longest display name kept from a magnet's dn= (bytes, without NUL). */
#define GV_TOR_NAME_MAX 255

typedef struct gv_tor gv_tor;

/* A torrent's identity: its v1 (SHA-1 of the info dict) and v2 (SHA-256)
 * info-hashes. A hybrid has both; a magnet may name only one. Two ihs name
 * the same torrent when a hash present in both is equal. */
typedef struct gv_tor_ih {
  uint8_t v1[20];
  uint8_t v2[32];
  uint8_t has_v1;
  uint8_t has_v2;
} gv_tor_ih;

/* Encryption of peer connections (libtorrent's protocol encryption). */
typedef enum gv_tor_enc {
  GV_TOR_ENC_FORCED = 0, /* RC4 both ways; unencrypted peers refused */
  GV_TOR_ENC_ENABLED,    /* prefer RC4, accept plaintext peers */
  GV_TOR_ENC_DISABLED    /* plaintext only (benchmarks) */
} gv_tor_enc;

/* Session configuration. Zero-initialise, then set what differs; every
 * privacy switch defaults to off. Pointers need only live for the call to
 * gv_tor_new(). */
typedef struct gv_tor_cfg {
  const char *state_dir;  /* required: resume files; created if missing */
  const char *listen_ip;  /* NULL: "127.0.0.1"; "::1" and any IP work, or
                           * a comma-separated list (gv_tor_set_listen) */
  uint16_t listen_port;   /* 0: ephemeral; see gv_tor_port() */
  int dht, lsd, upnp, natpmp, utp, pex; /* non-zero turns one on */
  gv_tor_enc encryption;
  int tick_ms;            /* libtorrent's tick; 0: 100 ms */
  int upload_rate;        /* bytes/s for the whole session; 0: unlimited */
  int download_rate;      /* bytes/s for the whole session; 0: unlimited */
  /* Called on libtorrent's thread when alerts are waiting. It must not call
   * any gv_tor_* function; it should only wake the loop (uv_async_send).
   * It may be called before gv_tor_new() returns and until gv_tor_free()
   * returns. NULL: the caller polls. */
  void (*notify)(void *ctx);
  void *notify_ctx;
} gv_tor_cfg;

/* Starts a session listening on cfg's address. On success *out is the
 * caller's, freed with gv_tor_free(). */
int gv_tor_new(gv_tor **out, const gv_tor_cfg *cfg, gv_why *why);

/* Saves the resume data of every torrent with metadata and waits for it,
 * at most 10 s, then stops the session and frees it. NULL is a no-op. */
void gv_tor_free(gv_tor *t);

/* The TCP port the session listens on (the bound one when cfg asked 0),
 * or 0 if it does not listen. */
uint16_t gv_tor_port(gv_tor *t);

/* Listens on ip instead: one IP or a comma-separated list of them
 * ("127.0.0.1,192.0.2.7"; NULL: "127.0.0.1"), all on port (0: an
 * ephemeral one, which may differ per IP; pass gv_tor_port() to keep the
 * current one). Sockets on addresses still listed stay open; connections
 * stay up. On return the new sockets are bound and gv_tor_port() gives
 * the port; GV_EINVAL for a bad IP, GV_ESTATE with the address in why if
 * one could not be bound (the others are then listening). */
int gv_tor_set_listen(gv_tor *t, const char *ip, uint16_t port, gv_why *why);

/* --- Creating ------------------------------------------------------------ */

/* Makes a v1+v2 hybrid torrent of the file or directory `path` (hashing
 * every byte: slow for big files). A directory's hidden entries (names
 * starting with '.') are left out; symlinks are never followed but stored
 * as BEP 47 links to what they resolve to, relative to the root, and one
 * that dangles or resolves to the root, outside it or to a left-out entry
 * refuses the torrent with GV_EFIELD. piece_size 0 lets libtorrent choose;
 * otherwise a power of two, at least 16 KiB. On success *torrent (the
 * .torrent's bencoded bytes, *len of them) is the caller's, freed with
 * gv_tor_bytes_free(), and *ih holds both info-hashes. */
int gv_tor_create(const char *path, uint32_t piece_size, uint8_t **torrent,
                  size_t *len, gv_tor_ih *ih, gv_why *why);

/* gv_tor_create() that another thread may stop: when *cancel is non-zero
 * (read with __atomic_load_n, so set it with __atomic_store_n) before or
 * during the hashing, it stops within the pieces already being read and
 * returns GV_ECANCELED, having written nothing to *torrent. The hashing
 * runs on the calling thread (a thread pool's worker), so this is how
 * the owner of that pool stops it. cancel NULL: gv_tor_create(). */
int gv_tor_create_cancel(const char *path, uint32_t piece_size,
                         const int *cancel, uint8_t **torrent, size_t *len,
                         gv_tor_ih *ih, gv_why *why);
void gv_tor_bytes_free(uint8_t *p);

/* Writes "magnet:?xt=urn:btih:<v1 hex>&xt=urn:btmh:1220<v2 hex>&dn=<name>"
 * (each xt only if ih has that hash; dn percent-encoded, left out when name
 * is NULL or empty) into out. Returns its length, or GV_ETOOBIG if it does
 * not fit in cap bytes with its NUL, GV_EINVAL if ih has no hash. */
int gv_tor_magnet(const gv_tor_ih *ih, const char *name, char *out,
                  size_t cap);

/* Writes a hash as lowercase hex ("" if absent): v1 needs 41 bytes, v2 65. */
void gv_tor_hex(const uint8_t *hash, size_t n, char *out);

/* --- Parsing user input ---------------------------------------------------- */

/* What a user asked for: info-hashes and a display name (may be empty). */
typedef struct gv_tor_target {
  gv_tor_ih ih;
  char name[GV_TOR_NAME_MAX + 1];
} gv_tor_target;

/* Parses user bytes (len of them, no NUL needed): a 40-hex v1 info-hash, a
 * 64-hex v2 info-hash, or a magnet link with urn:btih and/or urn:btmh
 * (1220 prefix, SHA-256). Anything else is refused with GV_EINVAL (bad hex,
 * wrong length, not a magnet, magnet without btih/btmh, bad dn) or
 * GV_ETOOBIG (more than GV_TOR_TARGET_MAX bytes), and a reason in why.
 * An all-zero hash is refused (libtorrent reads it as none). Trackers,
 * peers and web seeds in a magnet are ignored. */
int gv_tor_parse_target(const char *s, size_t len, gv_tor_target *out,
                        gv_why *why);

/* --- Adding and removing ---------------------------------------------------- */

enum {
  /* Trust the files under save_path to be complete (libtorrent's seed
   * mode): no check at add; each piece is hashed the first time a peer asks
   * for it. Without it, existing files are checked piece by piece. */
  GV_TOR_ADD_SEED_MODE = 1 << 0,
};

/* Most peers gv_tor_add() takes (GV_ETOOBIG beyond). */
#define GV_TOR_ADD_PEERS_MAX 64

/* Exactly one of torrent/target is set. */
typedef struct gv_tor_add_params {
  const uint8_t *torrent; /* .torrent bytes, torrent_len of them */
  size_t torrent_len;
  const gv_tor_target *target; /* metadata will come from peers */
  const char *save_path;       /* required; created if missing */
  unsigned flags;              /* GV_TOR_ADD_* */
  /* Peers known at the add (IPv4 or IPv6 sockaddrs, n_peers of them; may
   * be NULL when n_peers is 0), as if given to gv_tor_connect() after it,
   * but a target without resume data dials them at once; gv_tor_connect()
   * and every other add leave the dial to libtorrent's connect round,
   * which runs once a second. */
  const struct sockaddr_storage *peers;
  size_t n_peers;
} gv_tor_add_params;

/* Adds a torrent (resuming from its resume file if there is one). Every
 * file path of the torrent is checked first: an element that is "..",
 * ".", empty, or holds '/' or a NUL (so an absolute path too), a symlink
 * target of that kind, or a path that resolves outside save_path through a
 * symlink already on disk is refused with GV_EFIELD and the path in why,
 * before anything is written. Both the raw names and the paths libtorrent
 * makes of them (what it will write, relative to save_path) are checked.
 * For a target, the check runs when the metadata arrives. Until then the
 * torrent lives in a private empty directory, cfg.state_dir/.meta/<hash>/
 * (upload mode, every file at priority 0): whatever libtorrent creates on
 * its own thread when the metadata arrives (empty files, directories,
 * BEP 47 symlinks) lands there, never in save_path. If the check passes,
 * libtorrent moves that storage into save_path (a file already there is
 * kept and checked, not replaced), and once it is there every file is
 * wanted and GV_TOR_EV_METADATA follows: the download runs on the peer
 * connections of the metadata phase, nothing is dialled again. If the
 * check or the move fails, the torrent stays paused in the error state and
 * a GV_TOR_EV_TORRENT_ERROR event says why. Either way the private
 * directory is deleted. GV_EDUP if the torrent is already in the session,
 * GV_EINVAL for a peer that is not IPv4 or IPv6. On success *ih (if not
 * NULL) names the torrent. */
int gv_tor_add(gv_tor *t, const gv_tor_add_params *p, gv_tor_ih *ih,
               gv_why *why);

/* Connects the torrent to a peer (IPv4 or IPv6 sockaddr), at libtorrent's
 * next connect round (once a second; peers known before the add dial
 * sooner through gv_tor_add_params.peers). GV_ENOT_FOUND if no such
 * torrent. The result arrives as events, if at all. */
int gv_tor_connect(gv_tor *t, const gv_tor_ih *ih, const struct sockaddr *sa,
                   gv_why *why);

/* Removes a torrent and its resume file; with delete_files, its downloaded
 * files too. GV_TOR_EV_REMOVED follows. */
int gv_tor_remove(gv_tor *t, const gv_tor_ih *ih, int delete_files,
                  gv_why *why);

/* Internal, for tests and the fuzzer: the path check gv_tor_add() runs on
 * .torrent bytes (len of them) against the existing directory root: bytes
 * libtorrent cannot parse as a torrent are refused too. Returns 0, or
 * GV_EFIELD with the reason. */
int gv__tor_check_torrent(const uint8_t *torrent, size_t len,
                          const char *root, gv_why *why);

/* Internal, for the fuzzer: calls fn once for each path libtorrent makes
 * of .torrent bytes (len of them), relative to the save path: every file
 * but pad files (never written), and every symlink target. path holds n
 * bytes and a NUL (n may count NULs inside). Returns how many paths, or
 * GV_EFIELD if libtorrent does not parse the bytes. */
int gv__tor_paths(const uint8_t *torrent, size_t len,
                  void (*fn)(void *ctx, const char *path, size_t n),
                  void *ctx);

/* --- Status ------------------------------------------------------------------ */

typedef enum gv_tor_state {
  GV_TOR_CHECKING = 1, /* checking files or resume data */
  GV_TOR_METADATA,     /* waiting for the info dict from peers */
  GV_TOR_DOWNLOADING,
  GV_TOR_SEEDING,      /* has every piece, verified */
  GV_TOR_PAUSED,
  GV_TOR_ERROR         /* see error */
} gv_tor_state;

typedef struct gv_tor_status {
  gv_tor_ih ih;
  gv_tor_state state;
  uint64_t done;       /* verified bytes */
  uint64_t total;      /* bytes of the torrent (0 before metadata) */
  double progress;     /* done / total, 0..1 */
  int down_rate;       /* payload bytes/s */
  int up_rate;
  uint64_t downloaded; /* payload bytes received by this session */
  uint64_t uploaded;   /* payload bytes sent by this session */
  /* Across restarts (kept in resume data); libtorrent adds this session's
   * bytes to them once a second. */
  uint64_t all_downloaded, all_uploaded;
  int peers;
  int pieces_done, pieces_total;
  double ratio; /* all_uploaded / total, 0 before metadata */
  char save_path[1024];
  char name[GV_TOR_NAME_MAX + 1];
  char error[192]; /* "" unless state is GV_TOR_ERROR */
} gv_tor_status;

/* Fills *st for one torrent; GV_ENOT_FOUND if there is none. */
int gv_tor_status_get(gv_tor *t, const gv_tor_ih *ih, gv_tor_status *st,
                      gv_why *why);

/* Fills up to max statuses, in the order torrents were added; returns how
 * many torrents there are (possibly more than max). */
int gv_tor_list(gv_tor *t, gv_tor_status *st, size_t max);

/* Fills up to max addresses of the peers torrent ih is connected to, as
 * libtorrent sees them (IPv4 or IPv6 sockaddrs), and returns how many there
 * are (possibly more than max); GV_ENOT_FOUND if there is no such torrent. */
int gv_tor_peers(gv_tor *t, const gv_tor_ih *ih, struct sockaddr_storage *out,
                 size_t max, gv_why *why);

/* --- Events -------------------------------------------------------------------- */

typedef enum gv_tor_ev_type {
  GV_TOR_EV_ADDED = 1,     /* err: the add failed (rare: gv_tor_add says) */
  GV_TOR_EV_METADATA,      /* a magnet's info dict arrived and passed */
  GV_TOR_EV_PIECE,         /* piece verified; pieces_done of pieces_total */
  GV_TOR_EV_FINISHED,      /* every piece verified */
  GV_TOR_EV_HASH_FAILED,   /* piece failed its hash; peer: who was banned */
  GV_TOR_EV_PEER_BANNED,   /* peer banned (bad data) */
  GV_TOR_EV_FILE_ERROR,    /* err: -errno; reason names file ("disk full") */
  GV_TOR_EV_TORRENT_ERROR, /* the torrent stopped: reason */
  GV_TOR_EV_REMOVED,
  GV_TOR_EV_RESUME_SAVED   /* err: 0, or why the save failed */
} gv_tor_ev_type;

typedef struct gv_tor_event {
  gv_tor_ev_type type;
  gv_tor_ih ih;
  int err;                   /* 0, GV_E* or -errno */
  uint32_t piece;            /* PIECE, HASH_FAILED */
  int pieces_done;           /* PIECE: verified pieces so far (>= 1) */
  int pieces_total;
  /* HASH_FAILED and PEER_BANNED: the peer (has_peer) and, for
   * HASH_FAILED, whether libtorrent banned it for this piece. libtorrent
   * names a peer only when it bans one, so has_peer == banned there. */
  int has_peer;
  int banned;
  struct sockaddr_storage peer;
  char reason[192];
} gv_tor_event;

/* Drains libtorrent's alerts into at most max events; returns how many
 * (0 when nothing is waiting) or a negative code. Call it until it returns
 * fewer than max: events left over are kept for the next call, and no
 * further notify announces them. It also writes resume files (see the top
 * of this file). */
int gv_tor_poll(gv_tor *t, gv_tor_event *ev, size_t max);

/* A short name of an event type ("piece", "hash_failed", ...). */
const char *gv_tor_ev_name(gv_tor_ev_type type);

#ifdef __cplusplus
}
#endif

#endif

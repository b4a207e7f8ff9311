/* Node identity: an Ed25519 keypair whose public key is the node id.
 *
 * gv_identity is a plain value the caller owns; it holds a secret, so wipe
 * it with gv_id_wipe() when done. Nothing here keeps global state.
 */
#ifndef GV_IDENTITY_H
#define GV_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define GV_ID_BYTES 32
#define GV_ID_HEX_LEN 64   /* text form, without NUL */
#define GV_ID_SHORT_LEN 12 /* short form for people, without NUL */
#define GV_KEYFILE_BYTES 64

typedef struct gv_identity {
  uint8_t pk[GV_ID_BYTES]; /* the node id */
  uint8_t sk[64];          /* libsodium Ed25519 secret key: seed || pk */
} gv_identity;

/* Creates a fresh random identity. Returns 0 or GV_E*. */
int gv_id_generate(gv_identity *id);

/* Derives an identity from a 32-byte seed (tests, simulator, vectors). */
int gv_id_from_seed(gv_identity *id, const uint8_t seed[32]);

/* Loads a key file (PROTOCOL.md §2) from fd, which the caller opened (and,
 * for the node, checked for its owner: node/cli.h); path only names it in
 * reasons. Reads from the file's current offset; fd stays open. Rejects,
 * with a reason in why: permissions that let group or others in
 * (GV_EKEYPERM), not a regular file, a size other than 64 bytes or a
 * public half that does not match the seed (GV_EKEYFMT). */
int gv_id_load_fd(gv_identity *id, int fd, const char *path, gv_why *why);

/* Writes id as name (one component) in the open directory dirfd
 * atomically, mode 0600, fsynced with the directory: name.tmp is created
 * there (O_EXCL, O_NOFOLLOW), then linked as name. Fails with -EEXIST if
 * name exists (never overwrites a key). path only names it in reasons. */
int gv_id_save_fd(const gv_identity *id, int dirfd, const char *name,
                  const char *path, gv_why *why);
/* gv_id_save_fd in the directory of path, opened for the call. */
int gv_id_save(const gv_identity *id, const char *path, gv_why *why);

/* Loads path (not following a symbolic link; -ENOENT if missing), or
 * creates and saves a new identity if it does not exist. *created is set
 * to 1 when a key was made. */
int gv_id_load_or_create(gv_identity *id, const char *path, int *created,
                         gv_why *why);

void gv_id_wipe(gv_identity *id);

/* Text forms. out must hold GV_ID_HEX_LEN + 1 / GV_ID_SHORT_LEN + 1 bytes. */
void gv_id_to_hex(const uint8_t pk[GV_ID_BYTES], char out[GV_ID_HEX_LEN + 1]);
void gv_id_to_short(const uint8_t pk[GV_ID_BYTES],
                    char out[GV_ID_SHORT_LEN + 1]);

/* Parses exactly 64 hex digits (either case) of text[0..len). GV_EFIELD on
 * any other length or character. */
int gv_id_from_hex(uint8_t pk[GV_ID_BYTES], const char *text, size_t len);

#endif

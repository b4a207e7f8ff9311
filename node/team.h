/* Team key files (docs/RELAY.md §4.2, §4.3): one file per team the node is
 * in, `<data-dir>/team-<team_id8 in hex>.key`, mode 0600, holding the join
 * token text (proto/relaywire.h gv_rw_token_*), which is the team secret T
 * and the inviter's node id. A file is written atomically (temporary file,
 * fsync, rename, fsync of the directory): a crash leaves the old state or
 * the new one, never half a file.
 *
 * The token is a secret: whoever holds it is a member. Every function here
 * wipes its copies; the caller wipes what it is given (gv_team_list_free).
 */
#ifndef GV_TEAM_H
#define GV_TEAM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"
#include "relaywire.h"

/* "team-" + 16 hex + ".key" */
#define GV_TEAM_FILE_NAME_LEN 25

typedef struct gv_team_ent {
  uint8_t T[GV_RW_KEY_BYTES];           /* the team secret */
  uint8_t inviter[GV_ID_BYTES];         /* who made the team */
  uint8_t team_id[GV_RW_KEY_BYTES];     /* derived from T (§4.2) */
  char file[GV_TEAM_FILE_NAME_LEN + 1]; /* its file name in dir */
} gv_team_ent;

/* Makes a new team (T from randombytes_buf) with self as the inviter,
 * stores its file in dir and writes the join token into token. Returns 0
 * or -errno / GV_E* with a reason. */
int gv_team_create(const char *dir, const gv_identity *self,
                   char token[GV_RW_TOKEN_LEN + 1], gv_why *why);

/* Joins the team of token (exactly the token's text; surrounding blanks
 * are not trimmed here): stores its file in dir. Returns 0 when the file
 * was written, 1 when the node was in that team already (same file
 * contents), GV_EFIELD for a malformed token, or -errno / GV_E* with a
 * reason. */
int gv_team_join(const char *dir, const char *token, gv_why *why);

/* The file name of the team with this team_id. */
void gv_team_file_name(const uint8_t team_id[GV_RW_KEY_BYTES],
                       char out[GV_TEAM_FILE_NAME_LEN + 1]);

/* Loads one team file. Refuses, with a reason: a file that is not a
 * regular file or is a symlink (GV_EKEYFMT), one group or others may read
 * or write (GV_EKEYPERM), contents other than a token and an optional
 * newline (GV_EKEYFMT), a file name that does not match the team's id
 * (GV_EKEYFMT). */
int gv_team_load(const char *dir, const char *file, gv_team_ent *e,
                 gv_why *why);

/* Every team file of dir (team-*.key), in file name order, into a malloc'd
 * array *out of *n entries (NULL, 0 when none; a missing dir is none). Any
 * refused file fails the whole listing with its reason: a team file that
 * cannot be trusted is never skipped silently. Free with
 * gv_team_list_free(), which wipes the secrets. */
int gv_team_list(const char *dir, gv_team_ent **out, size_t *n, gv_why *why);
void gv_team_list_free(gv_team_ent *t, size_t n);

#endif

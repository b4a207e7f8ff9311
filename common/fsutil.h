/* Files the adapters write whole: the node's torrent list and .torrent
 * copies (node/torsvc.c), its team key files (node/team.c) and libtorrent's
 * resume files (torrent/tor.cpp, hence the extern "C").
 *
 * Lifetime: nothing is kept; the call blocks on the disk (fsync), so a loop
 * thread calls it only for small, rare files.
 */
#ifndef GV_FSUTIL_H
#define GV_FSUTIL_H

#include <stddef.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Replaces the file at path with data[0..len), atomically and durably:
 * the bytes go to a new temporary file beside it (mode 0600, a unique name
 * ".<name>.tmp.XXXXXX"), which is fsynced, closed and renamed over path;
 * then path's directory is fsynced. A reader sees the old contents or the
 * new, never a mix; once 0 is returned the new contents survive a crash.
 *
 * Returns 0, or -errno of the step that failed, with errno set to that
 * same cause (for the caller's own message) and why, if not NULL, naming
 * the step and file ("rename /d/x: Is a directory"). On failure the
 * temporary file is gone; path keeps its old contents, except when only
 * the directory's fsync failed: then path holds the new ones, and whether
 * they are durable is unknown. */
int gv_write_atomic(const char *path, const void *data, size_t len,
                    gv_why *why);

/* Removes what gv_write_atomic leaves behind when its process dies (kill
 * -9, a crash, power loss) between making the temporary file and renaming
 * it: regular files of dir named ".<name>.tmp.XXXXXX" (mkstemp's six
 * letters and digits) last modified at least min_age_s seconds ago. A
 * younger one may be another process's write in progress (a command
 * writing a team file while the node starts); symbolic links, directories
 * and every other name are left alone.
 *
 * Returns how many were removed, or -errno if dir cannot be read, with why
 * naming it. A file that cannot be removed is skipped: the next sweep
 * tries again. */
int gv_sweep_atomic_tmp(const char *dir, int min_age_s, gv_why *why);

#ifdef __cplusplus
}
#endif

#endif

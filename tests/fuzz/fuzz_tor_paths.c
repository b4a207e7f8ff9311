/* Fuzz target: the path check on untrusted .torrent bytes
 * (gv__tor_check_torrent in torrent/tor.cpp: libtorrent's bdecode, then our
 * walk of name, files[].path, the v2 file tree and symlink targets). Every
 * refusal is GV_EFIELD with a reason. The root is an empty directory, so
 * the disk part of the check sees no symlink. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "tor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/gv-fuzz-tor-XXXXXX";

static void remove_root(void) { rmdir(dir); }

static const char *root(void) {
  static int made;
  if (!made) {
    FZ_CHECK(mkdtemp(dir) != NULL);
    atexit(remove_root);
    made = 1;
  }
  return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_why why;
  memset(&why, 0, sizeof why);
  int rc = gv__tor_check_torrent(data, size, root(), &why);
  if (rc < 0) {
    FZ_CHECK(rc == GV_EFIELD);
    FZ_CHECK(why.text[0] != '\0');
    return 0;
  }
  FZ_CHECK(rc == 0);
  return 0;
}

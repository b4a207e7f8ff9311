/* Fuzz target: the path check on untrusted .torrent bytes
 * (gv__tor_check_torrent in torrent/tor.cpp: libtorrent's bdecode, then our
 * walk of name, files[].path, the v2 file tree and symlink targets, then
 * the paths libtorrent makes of them). Every refusal is GV_EFIELD with a
 * reason. When the check accepts, every path libtorrent would write
 * (gv__tor_paths) must be one the check's rules accept: relative, every
 * element a plain name; a wrong acceptance crashes. The root is an empty
 * directory, so the disk part of the check sees no symlink. */
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

/* A path under the save path, written independently of tor.cpp's check. */
static void safe_path(void *ctx, const char *p, size_t n) {
  (void)ctx;
  FZ_CHECK(n > 0 && p[0] != '/');
  FZ_CHECK(memchr(p, '\0', n) == NULL);
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] != '/')
      continue;
    size_t len = i - start;
    FZ_CHECK(len > 0);
    FZ_CHECK(!(len == 1 && p[start] == '.'));
    FZ_CHECK(!(len == 2 && p[start] == '.' && p[start + 1] == '.'));
    start = i + 1;
  }
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
  /* Accepted, so libtorrent parses the same bytes. */
  FZ_CHECK(gv__tor_paths(data, size, safe_path, NULL) >= 0);
  return 0;
}

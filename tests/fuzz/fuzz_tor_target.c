/* Fuzz target: user input naming a torrent (gv_tor_parse_target in
 * torrent/tor.cpp: hex info-hashes and magnet links, the latter through
 * libtorrent's parse_magnet_uri). Every accepted target has a hash, a
 * NUL-terminated name within bounds, and survives gv_tor_magnet and a
 * second parse unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "tor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_tor_target tg, again;
  gv_why why;
  int rc = gv_tor_parse_target((const char *)data, size, &tg, &why);
  if (rc < 0) {
    FZ_CHECK(rc == GV_EINVAL || rc == GV_ETOOBIG);
    FZ_CHECK(why.text[0] != '\0');
    return 0;
  }
  FZ_CHECK(rc == 0);
  FZ_CHECK(size <= GV_TOR_TARGET_MAX);
  FZ_CHECK(tg.ih.has_v1 || tg.ih.has_v2);
  FZ_CHECK(memchr(tg.name, '\0', sizeof tg.name) != NULL);
  char m[1024];
  int n = gv_tor_magnet(&tg.ih, tg.name, m, sizeof m);
  FZ_CHECK(n > 0);
  /* A dn of percent-encoded bytes may grow past the input bound. */
  if ((size_t)n > GV_TOR_TARGET_MAX)
    return 0;
  FZ_CHECK(gv_tor_parse_target(m, (size_t)n, &again, &why) == 0);
  FZ_CHECK(memcmp(&again.ih, &tg.ih, sizeof tg.ih) == 0);
  FZ_CHECK(strcmp(again.name, tg.name) == 0);
  return 0;
}

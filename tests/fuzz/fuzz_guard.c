/* libFuzzer target: a saved guard line (node/guard.h, gv_guard_parse), as
 * the daemon reads it back from node.db's "guards" setting.
 *
 * Checked: the answer is 0 or GV_EFIELD; a failure writes a reason; a
 * parsed guard has chosen_at < expires_at and down_since >= 0, and its
 * line written back (gv_guard_format) parses to the same guard.
 */
#include <stdint.h>
#include <string.h>

#include "../../node/guard.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_guard g, h;
  gv_why why = {""};
  char line[GV_GUARD_LINE_MAX];
  size_t n;
  int rc = gv_guard_parse(&g, (const char *)data, size, &why);

  if (rc < 0) {
    FZ_CHECK(rc == GV_EFIELD);
    FZ_CHECK(why.text[0] != '\0');
    return 0;
  }
  FZ_CHECK(rc == 0);
  FZ_CHECK(g.chosen_at < g.expires_at && g.down_since >= 0);
  n = gv_guard_format(&g, line, sizeof(line));
  FZ_CHECK(n > 0 && line[n - 1] == '\n');
  FZ_CHECK(gv_guard_parse(&h, line, n - 1, &why) == 0);
  FZ_CHECK(memcmp(&g, &h, sizeof(g)) == 0);
  return 0;
}

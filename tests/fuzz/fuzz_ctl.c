/* Fuzz target: control-socket request lines (node/ctl.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gv_ctl_req req;
  gv_why why;
  int rc;

  why.text[0] = '\0';
  rc = gv_ctl_parse(&req, (const char *)data, size, &why);
  if (rc < 0) {
    if (memchr(why.text, '\0', sizeof(why.text)) == NULL || why.text[0] == 0)
      abort(); /* every rejection has a reason */
    if (gv_json_utf8_bad_at(why.text, strlen(why.text)) < strlen(why.text))
      abort(); /* the reason goes back inside JSON: never invalid UTF-8 */
    return 0;
  }
  /* Accepted: the strict layer let through only UTF-8 without NUL. */
  if (gv_json_utf8_bad_at((const char *)data, size) < size ||
      memchr(data, '\0', size) != NULL)
    abort();
  if ((req.cmd == GV_CTL_REQUEST || req.cmd == GV_CTL_REPO_ADD ||
       req.cmd == GV_CTL_REPO_RM) &&
      gv_repo_name_check(req.repo, strlen(req.repo)) < 0)
    abort();
  if (req.cmd == GV_CTL_REQUEST &&
      (req.max < 1 || req.max > GV_MAX_PEERS || req.wait_ms < 1 ||
       req.wait_ms > GV_CTL_WAIT_MAX_MS))
    abort();
  return 0;
}

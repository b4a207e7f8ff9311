#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {
#define XX(name, msg) msg,
    GV_ERRNO_MAP(XX)
#undef XX
};

static const char *const names[] = {
#define XX(name, msg) "GV_E" #name,
    GV_ERRNO_MAP(XX)
#undef XX
};

static int table_index(int err) {
  int idx = -err - GV__ERR_FIRST - 1;
  return idx >= 0 && idx < GV__ERR_COUNT ? idx : -1;
}

const char *gv_strerror(int err) {
  int idx = table_index(err);
  if (idx >= 0)
    return messages[idx];
  if (err < 0 && err > -GV__ERR_FIRST)
    return strerror(-err);
  return "unknown error";
}

const char *gv_err_name(int err) {
  int idx = table_index(err);
  if (idx >= 0)
    return names[idx];
  switch (-err) {
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case EEXIST: return "EEXIST";
  case EIO: return "EIO";
  case ENOSPC: return "ENOSPC";
  case ECONNREFUSED: return "ECONNREFUSED";
  case ECONNRESET: return "ECONNRESET";
  case ETIMEDOUT: return "ETIMEDOUT";
  case EAGAIN: return "EAGAIN";
  default: return "EUNKNOWN";
  }
}

int gv_fail(gv_why *why, int err, const char *fmt, ...) {
  if (why != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->text, sizeof(why->text), fmt, ap);
    va_end(ap);
  }
  return err;
}

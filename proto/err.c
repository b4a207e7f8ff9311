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

/* Every errno's name, for gv_err_name(). POSIX's first (aliases such as
 * EWOULDBLOCK and ENOTSUP come out as EAGAIN and EOPNOTSUPP), then Linux's
 * own. */
// clang-format off
#define POSIX_ERRNOS(X) \
  X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) \
  X(EBADF) X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) \
  X(EXDEV) X(ENODEV) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) \
  X(ETXTBSY) X(EFBIG) X(ENOSPC) X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) \
  X(EDOM) X(ERANGE) X(EDEADLK) X(ENAMETOOLONG) X(ENOLCK) X(ENOSYS) \
  X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(EIDRM) X(ENOSTR) X(ETIME) X(ENOSR) \
  X(ENOLINK) X(EPROTO) X(EMULTIHOP) X(EBADMSG) X(EOVERFLOW) X(EILSEQ) \
  X(ENOTSOCK) X(EDESTADDRREQ) X(EMSGSIZE) X(EPROTOTYPE) X(ENOPROTOOPT) \
  X(EPROTONOSUPPORT) X(EOPNOTSUPP) X(EAFNOSUPPORT) X(EADDRINUSE) \
  X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETRESET) X(ECONNABORTED) X(ECONNRESET) \
  X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ETIMEDOUT) X(ECONNREFUSED) \
  X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ESTALE) X(EDQUOT) \
  X(ECANCELED) X(EOWNERDEAD) X(ENOTRECOVERABLE) X(ECHILD) X(ENOTTY) \
  X(ENODATA) X(ENETUNREACH)
#ifdef __linux__
#define LINUX_ERRNOS(X) \
  X(ENOTBLK) X(ECHRNG) X(EL2NSYNC) X(EL3HLT) X(EL3RST) X(ELNRNG) X(EUNATCH) \
  X(ENOCSI) X(EL2HLT) X(EBADE) X(EBADR) X(EXFULL) X(ENOANO) X(EBADRQC) \
  X(EBADSLT) X(EBFONT) X(ENONET) X(ENOPKG) X(EREMOTE) X(EADV) X(ESRMNT) \
  X(ECOMM) X(EDOTDOT) X(ENOTUNIQ) X(EBADFD) X(EREMCHG) X(ELIBACC) \
  X(ELIBBAD) X(ELIBSCN) X(ELIBMAX) X(ELIBEXEC) X(ERESTART) X(ESTRPIPE) \
  X(EUSERS) X(ESOCKTNOSUPPORT) X(EPFNOSUPPORT) X(ESHUTDOWN) X(ETOOMANYREFS) \
  X(EHOSTDOWN) X(EUCLEAN) X(ENOTNAM) X(ENAVAIL) X(EISNAM) X(EREMOTEIO) \
  X(ENOMEDIUM) X(EMEDIUMTYPE) X(ENOKEY) X(EKEYEXPIRED) X(EKEYREVOKED) \
  X(EKEYREJECTED) X(ERFKILL) X(EHWPOISON)
#else
#define LINUX_ERRNOS(X)
#endif
// clang-format on

static const struct {
  int code;
  const char *name;
} errno_names[] = {
#define X(e) {e, #e},
    POSIX_ERRNOS(X) LINUX_ERRNOS(X)
#undef X
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
  for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
    if (errno_names[i].code == -err)
      return errno_names[i].name;
  return "EUNKNOWN";
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

// Status codes and error messages (see damrt_error.h).
#include "damrt_error.h"

#include <stdarg.h>
#include <stdio.h>

DamrtStatus damrt_error_set(DamrtError *err, DamrtStatus code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

const char *damrt_status_name(DamrtStatus code) {
  switch (code) {
  case DAMRT_OK: return "ok";
  case DAMRT_E_IO: return "i/o error";
  case DAMRT_E_FORMAT: return "bad format";
  case DAMRT_E_UNSUPPORTED: return "unsupported";
  case DAMRT_E_NOT_FOUND: return "not found";
  case DAMRT_E_ARGUMENT: return "invalid argument";
  case DAMRT_E_NOMEM: return "out of memory";
  case DAMRT_E_VALUE: return "non-finite value";
  }
  return "unknown status";
}

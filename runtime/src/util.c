// Shape arithmetic and message helpers shared by the runtime's modules (see util.h).
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "damrt_tensor.h"

static int thread_limit;  // damrt_set_threads; 0: the number of processors

void damrt_thread_limit_set(int n) { thread_limit = n; }

int damrt_thread_limit(void) {
  if (thread_limit > 0) return thread_limit;
  static int processors;  // sysconf reads /sys: once
  if (!processors) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    processors = n < 1 ? 1 : n > 64 ? 64 : (int)n;
  }
  return processors;
}

bool damrt_shape_count(int rank, const size_t *shape, size_t elem_size, size_t *count) {
  // Leave room for rounding the allocation up to a whole number of alignment blocks.
  size_t limit = (SIZE_MAX - DAMRT_ALIGNMENT) / elem_size;
  size_t n = 1;
  bool is_empty = false;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 0) is_empty = true;
    else if (n > limit / shape[d]) return false;
    else n *= shape[d];
  }
  *count = is_empty ? 0 : n;
  return true;
}

void damrt_appendf(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  if (*used + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *used, cap - *used, fmt, ap);
  va_end(ap);
  if (n > 0) *used += (size_t)n < cap - *used ? (size_t)n : cap - 1 - *used;
}

DamrtStatus damrt_error_errno(DamrtError *err, int errnum, const char *fmt, ...) {
  if (!err) return DAMRT_E_IO;
  err->code = DAMRT_E_IO;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  char reason[128];
  if (strerror_r(errnum, reason, sizeof reason) != 0)
    snprintf(reason, sizeof reason, "error %d", errnum);
  size_t used = strlen(err->message);
  damrt_appendf(err->message, sizeof err->message, &used, ": %s", reason);
  return DAMRT_E_IO;
}

const char *damrt_shape_format(char *buf, size_t cap, int rank, const size_t *shape) {
  size_t used = 0;
  buf[0] = '\0';
  damrt_appendf(buf, cap, &used, "(");
  for (int d = 0; d < rank; d++) damrt_appendf(buf, cap, &used, d ? ", %zu" : "%zu", shape[d]);
  damrt_appendf(buf, cap, &used, rank == 1 ? ",)" : ")");
  return buf;
}

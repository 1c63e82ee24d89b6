// Checked allocation and internal errors (see common.h).
#include "common.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Noreturn void damc_internal_error(const char *file, int line, const char *msg) {
  fprintf(stderr, "damc: internal error at %s:%d: %s\n", file, line, msg);
  abort();
}

volatile sig_atomic_t damc_out_of_memory = 0;

_Noreturn void damc_fail_out_of_memory(size_t bytes) {
  fprintf(stderr, "damc: error: out of memory: cannot allocate %zu bytes (%.3g GB); use a "
          "smaller batch or smaller layers\n", bytes, (double)bytes / 1e9);
  damc_out_of_memory = 1;
  abort();
}

void *xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) damc_fail_out_of_memory(size);
  return p;
}

void *xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) damc_fail_out_of_memory(count > SIZE_MAX / (size ? size : 1) ? SIZE_MAX : count * size);
  return p;
}

void *xrealloc(void *ptr, size_t size) {
  void *p = realloc(ptr, size ? size : 1);
  if (!p) damc_fail_out_of_memory(size);
  return p;
}

char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

void grow_array(void **items, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return;
  size_t n = *cap ? *cap : 8;
  while (n < need) n *= 2;
  *items = xrealloc(*items, n * elem);
  *cap = n;
}

const char *number_text(double v, NumText *buf) {
  if (isnan(v)) {  // printf writes "-nan" for a NaN with its sign bit set
    snprintf(buf->text, sizeof buf->text, "nan");
    return buf->text;
  }
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(buf->text, sizeof buf->text, "%.*g", digits, v);
    if (strtod(buf->text, NULL) == v || !isfinite(v)) break;
  }
  return buf->text;
}

double clock_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

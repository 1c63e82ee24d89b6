// Helpers shared by the backend's tests: timing, a seeded random generator, ulp
// distances, and reading one function's body out of an assembly listing.
#ifndef DAMC_BACKEND_TEST_H
#define DAMC_BACKEND_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/jit.h"
#include "check.h"

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

// splitmix64: a small seeded generator, so that failures reproduce.
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

// Uniform in [0, 1).
static inline double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

// Distance in units in the last place, counting across zero and through subnormals;
// 0 when both are NaN or both are the same infinity.
static inline int64_t ulp_diff_f64(double a, double b) {
  if (a != a || b != b) return (a != a && b != b) ? 0 : INT64_MAX;
  int64_t ia, ib;
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  if (ia < 0) ia = INT64_MIN - ia;
  if (ib < 0) ib = INT64_MIN - ib;
  return ia > ib ? ia - ib : ib - ia;
}

static inline int64_t ulp_diff_f32(float a, float b) {
  if (a != a || b != b) return (a != a && b != b) ? 0 : INT64_MAX;
  int32_t ia, ib;
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  int64_t la = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
  int64_t lb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
  return la > lb ? la - lb : lb - la;
}

// A JIT session, or exit with LLVM's message.
static inline Jit *test_jit_new(void) {
  StrBuf err = {0};
  Jit *jit = jit_new(&err);
  if (!jit) {
    fprintf(stderr, "%s", sb_str(&err));
    exit(1);
  }
  sb_free(&err);
  return jit;
}

// The assembly of function `name` in the listing `text`: from its label to the end
// marker LLVM emits (".Lfunc_endN"), as a new string (free()); NULL if absent.
static inline char *asm_function(const char *text, const char *name) {
  char label[128];
  snprintf(label, sizeof label, "\n%s:", name);
  const char *start = strstr(text, label);
  if (!start) return NULL;
  const char *end = strstr(start, ".Lfunc_end");
  size_t n = end ? (size_t)(end - start) : strlen(start);
  char *body = malloc(n + 1);
  memcpy(body, start, n);
  body[n] = '\0';
  return body;
}

static inline int count_substr(const char *s, const char *pat) {
  int n = 0;
  for (const char *p = strstr(s, pat); p; p = strstr(p + 1, pat)) n++;
  return n;
}

// Vector registers of AVX (ymm) or AVX-512 (zmm) in `body`.
static inline int count_vector_regs(const char *body) {
  return count_substr(body, "%ymm") + count_substr(body, "%zmm");
}

#endif

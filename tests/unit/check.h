// A minimal assertion harness for the unit tests: each CHECK prints the file, the line, the
// expression and the values it compared when it fails; main returns check_report().
#ifndef DAMC_CHECK_H
#define DAMC_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                              \
  do {                                                                           \
    check_count++;                                                               \
    if (!(cond)) {                                                               \
      check_failures++;                                                          \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);   \
    }                                                                            \
  } while (0)

#define CHECK_EQ(a, b)                                                           \
  do {                                                                           \
    long long va_ = (long long)(a), vb_ = (long long)(b);                        \
    check_count++;                                                               \
    if (va_ != vb_) {                                                            \
      check_failures++;                                                          \
      fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, \
              __LINE__, #a, #b, va_, vb_);                                       \
    }                                                                            \
  } while (0)

#define CHECK_STREQ(a, b)                                                        \
  do {                                                                           \
    const char *sa_ = (a), *sb_ = (b);                                           \
    check_count++;                                                               \
    if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                 \
      check_failures++;                                                          \
      fprintf(stderr, "%s:%d: CHECK_STREQ(%s, %s) failed:\n  got:  \"%s\"\n  want: \"%s\"\n", \
              __FILE__, __LINE__, #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)"); \
    }                                                                            \
  } while (0)

// |a - b| <= tol * max(1, |b|)
#define CHECK_NEAR(a, b, tol)                                                    \
  do {                                                                           \
    double va_ = (a), vb_ = (b);                                                 \
    check_count++;                                                               \
    if (!(fabs(va_ - vb_) <= (tol) * fmax(1.0, fabs(vb_)))) {                    \
      check_failures++;                                                          \
      fprintf(stderr, "%s:%d: CHECK_NEAR(%s, %s) failed: %.17g vs %.17g\n",      \
              __FILE__, __LINE__, #a, #b, va_, vb_);                             \
    }                                                                            \
  } while (0)

static inline int check_report(const char *name) {
  printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures != 0;
}

#endif

// Unit tests of the checked BLAS wrappers: every transpose combination against a plain
// reference loop, padded leading dimensions and strides, the empty-dimension cases, and
// each refused argument with its message.
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "damrt.h"

// A small deterministic generator, so failures reproduce.
static double next_value(uint64_t *state) {
  *state = *state * 6364136223846793005u + 1442695040888963407u;
  return (double)(*state >> 11) / 9007199254740992.0 * 2 - 1;
}

static void fill(double *p, size_t n, uint64_t *state) {
  for (size_t i = 0; i < n; i++) p[i] = next_value(state);
}

// Element (i, j) of op(M) for a row-major M with leading dimension ld.
static double at(const double *m, size_t ld, bool trans, size_t i, size_t j) {
  return trans ? m[j * ld + i] : m[i * ld + j];
}

static void test_gemm_values(void) {
  uint64_t state = 1;
  enum { M = 5, N = 4, K = 3, PAD = 2 };
  for (int ta = 0; ta < 2; ta++) {
    for (int tb = 0; tb < 2; tb++) {
      size_t lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
      double a[(M + PAD) * (K + PAD)], b[(N + PAD) * (K + PAD)], c[M * (N + PAD)];
      double want[M][N];
      fill(a, sizeof a / sizeof *a, &state);
      fill(b, sizeof b / sizeof *b, &state);
      fill(c, sizeof c / sizeof *c, &state);
      double alpha = 0.75, beta = -1.5;
      for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
          double sum = 0;
          for (size_t l = 0; l < K; l++) sum += at(a, lda, ta, i, l) * at(b, ldb, tb, l, j);
          want[i][j] = alpha * sum + beta * c[i * ldc + j];
        }
      }
      float af[sizeof a / sizeof *a], bf[sizeof b / sizeof *b], cf[sizeof c / sizeof *c];
      for (size_t i = 0; i < sizeof a / sizeof *a; i++) af[i] = (float)a[i];
      for (size_t i = 0; i < sizeof b / sizeof *b; i++) bf[i] = (float)b[i];
      for (size_t i = 0; i < sizeof c / sizeof *c; i++) cf[i] = (float)c[i];
      DamrtError err;
      CHECK_EQ(damrt_gemm_f64(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, &err),
               DAMRT_OK);
      CHECK_EQ(damrt_gemm_f32(ta, tb, M, N, K, (float)alpha, af, lda, bf, ldb, (float)beta, cf,
                              ldc, &err),
               DAMRT_OK);
      for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
          CHECK_NEAR(c[i * ldc + j], want[i][j], 1e-12);
          CHECK_NEAR(cf[i * ldc + j], want[i][j], 1e-5);
        }
      }
    }
  }
}

static void test_gemv_values(void) {
  uint64_t state = 2;
  enum { M = 4, N = 3, LDA = 5 };
  for (int trans = 0; trans < 2; trans++) {
    size_t xlen = trans ? M : N, ylen = trans ? N : M;
    double a[M * LDA], x[2 * M], y[3 * M], want[M];
    float af[M * LDA], xf[2 * M], yf[3 * M];
    fill(a, M * LDA, &state);
    fill(x, 2 * M, &state);
    fill(y, 3 * M, &state);
    for (int i = 0; i < M * LDA; i++) af[i] = (float)a[i];
    for (int i = 0; i < 2 * M; i++) xf[i] = (float)x[i];
    for (int i = 0; i < 3 * M; i++) yf[i] = (float)y[i];
    // x with stride 2, y with stride 3.
    for (size_t i = 0; i < ylen; i++) {
      double sum = 0;
      for (size_t j = 0; j < xlen; j++) sum += at(a, LDA, trans, i, j) * x[2 * j];
      want[i] = 2 * sum + 0.5 * y[3 * i];
    }
    DamrtError err;
    CHECK_EQ(damrt_gemv_f64(trans, M, N, 2, a, LDA, x, 2, 0.5, y, 3, &err), DAMRT_OK);
    CHECK_EQ(damrt_gemv_f32(trans, M, N, 2, af, LDA, xf, 2, 0.5f, yf, 3, &err), DAMRT_OK);
    for (size_t i = 0; i < ylen; i++) {
      CHECK_NEAR(y[3 * i], want[i], 1e-12);
      CHECK_NEAR(yf[3 * i], want[i], 1e-5);
    }
  }
}

static void test_empty_dimensions(void) {
  DamrtError err;
  // Nothing to multiply over: y = beta * y, and with beta = 0 whatever was in y is gone.
  double y[3] = {1, 2, NAN};
  CHECK_EQ(damrt_gemv_f64(false, 3, 0, 1, NULL, 1, NULL, 1, 2, y, 1, &err), DAMRT_OK);
  CHECK(y[0] == 2 && y[1] == 4 && isnan(y[2]));
  CHECK_EQ(damrt_gemv_f64(true, 0, 3, 1, NULL, 3, NULL, 1, 0, y, 1, &err), DAMRT_OK);
  CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0);
  float yf[2] = {1, 2};
  CHECK_EQ(damrt_gemv_f32(false, 2, 0, 1, NULL, 1, NULL, 1, -1, yf, 1, &err), DAMRT_OK);
  CHECK(yf[0] == -1 && yf[1] == -2);
  double c[4] = {1, 2, 3, 4};
  CHECK_EQ(damrt_gemm_f64(false, false, 2, 2, 0, 1, NULL, 1, NULL, 2, 3, c, 2, &err),
           DAMRT_OK);
  CHECK(c[0] == 3 && c[3] == 12);
  // No output at all: nothing is touched, NULL is fine.
  CHECK_EQ(damrt_gemm_f64(false, false, 0, 0, 4, 1, NULL, 4, NULL, 1, 0, NULL, 1, &err),
           DAMRT_OK);
  // With beta = 0 the output is only written, so NaNs in it do not survive.
  double a[4] = {1, 2, 3, 4}, x[2] = {1, 1}, yn[2] = {NAN, NAN};
  CHECK_EQ(damrt_gemv_f64(false, 2, 2, 1, a, 2, x, 1, 0, yn, 1, &err), DAMRT_OK);
  CHECK(yn[0] == 3 && yn[1] == 7);
}

static void test_refusals(void) {
  DamrtError err;
  double a[12], b[12], c[12], x[4], y[4];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  memset(c, 0, sizeof c);
  memset(x, 0, sizeof x);
  CHECK_EQ(damrt_gemm_f64(false, false, 3, 4, 4, 1, a, 3, b, 4, 0, c, 4, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: lda = 3 is too small: A is stored with 4 "
                           "columns, so lda must be at least 4");
  CHECK_EQ(damrt_gemm_f32(true, false, 2, 2, 2, 1, (float *)a, 2, (float *)b, 2, 0,
                          (float *)c, 1, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f32: ldc = 1 is too small: C is stored with 2 "
                           "columns, so ldc must be at least 2");
  CHECK_EQ(damrt_gemm_f64(false, false, 2, 0, 2, 1, a, 2, b, 0, 0, c, 1, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: ldb = 0 is too small: B is stored with 0 "
                           "columns, so ldb must be at least 1");
  CHECK_EQ(damrt_gemm_f64(false, false, (size_t)INT_MAX + 1, 1, 1, 1, a, 1, b, 1, 0, c, 1,
                          &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: m = 2147483648 exceeds the BLAS integer range "
                           "(at most 2147483647)");
  CHECK_EQ(damrt_gemm_f64(false, false, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: A is NULL");
  CHECK_EQ(damrt_gemm_f64(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, a + 2, 2, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: C overlaps A (BLAS needs the output apart from "
                           "its inputs)");
  CHECK_EQ(damrt_gemm_f64(false, true, 2, 2, 2, 1, a, 2, c, 2, 0, c, 2, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemm_f64: C overlaps B (BLAS needs the output apart from "
                           "its inputs)");
  // Adjacent, not overlapping: accepted.
  CHECK_EQ(damrt_gemm_f64(false, false, 2, 2, 2, 1, a, 2, a + 4, 2, 0, a + 8, 2, &err),
           DAMRT_OK);

  CHECK_EQ(damrt_gemv_f64(false, 2, 2, 1, a, 2, x, 0, 0, y, 1, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: incx must be at least 1");
  CHECK_EQ(damrt_gemv_f64(false, 2, 2, 1, a, 2, x, 1, 0, x, 1, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: y overlaps x (BLAS needs the output apart from "
                           "its inputs)");
  CHECK_EQ(damrt_gemv_f32(true, 2, 2, 1, (float *)a, 2, (float *)x, 1, 0, (float *)a, 1,
                          &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f32: y overlaps A (BLAS needs the output apart from "
                           "its inputs)");
  CHECK_EQ(damrt_gemv_f64(false, 2, 3, 1, a, 2, x, 1, 0, y, 1, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: lda = 2 is too small: A is stored with 3 "
                           "columns, so lda must be at least 3");
  CHECK_EQ(damrt_gemv_f64(false, 2, 2, 1, a, 2, NULL, 1, 0, y, 1, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: x is NULL");
  CHECK_EQ(damrt_gemv_f64(false, 1, 1, 1, a, 1, x, (size_t)INT_MAX + 5, 0, y, 1, &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: incx = 2147483652 exceeds the BLAS integer range "
                           "(at most 2147483647)");
  // A matrix reaching past the end of the address space.
  CHECK_EQ(damrt_gemv_f64(false, 2, 1, 1, (double *)(UINTPTR_MAX - 15), 1, x, 1, 0, y, 1,
                          &err),
           DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_gemv_f64: A would extend past the end of the address space");
}

int main(void) {
  test_gemm_values();
  test_gemv_values();
  test_empty_dimensions();
  test_refusals();
  return check_report("runtime/blas");
}

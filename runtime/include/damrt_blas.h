// Checked BLAS: matrix-vector and matrix-matrix products over row-major float32 and float64
// data, calling OpenBLAS's cblas_?gemv and cblas_?gemm.
//
// OpenBLAS reports a bad argument by printing to stderr from inside the library (its xerbla)
// and doing nothing, which inside a JIT-compiled kernel would be a silent wrong answer. These
// wrappers check every dimension, leading dimension, stride and pointer first and return
// DAMRT_E_ARGUMENT with a message naming the function and the argument instead, so cblas is
// only ever called with arguments it accepts. They also refuse an output that overlaps an
// input, which BLAS does not support. Transposition is a flag passed on to cblas: no operand
// is ever copied. Matrices are row-major: element (i, j) of a matrix with leading dimension
// `ld` is at p[i * ld + j], and `ld` is at least the number of stored columns (and at
// least 1). Vectors have positive strides. Sizes are size_t and must fit in the BLAS integer
// type (32 bits in the usual OpenBLAS build).
#ifndef DAMRT_BLAS_H
#define DAMRT_BLAS_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"

// y = alpha * op(A) * x + beta * y, where A is stored as m rows of n columns (leading
// dimension `lda`) and op(A) is A, or its transpose when `trans` is true. Without `trans`, x
// has n elements and y has m; with it, x has m and y has n. When beta is 0, y is only
// written (it may hold NaNs). Fails with DAMRT_E_ARGUMENT, leaving y untouched.
DamrtStatus damrt_gemv_f32(bool trans, size_t m, size_t n, float alpha, const float *a,
                           size_t lda, const float *x, size_t incx, float beta, float *y,
                           size_t incy, DamrtError *err);
DamrtStatus damrt_gemv_f64(bool trans, size_t m, size_t n, double alpha, const double *a,
                           size_t lda, const double *x, size_t incx, double beta, double *y,
                           size_t incy, DamrtError *err);

// C = alpha * op(A) * op(B) + beta * C, where C is m x n (leading dimension `ldc`), op(A) is
// m x k and op(B) is k x n. A is stored as m x k, or as k x m when `trans_a` is true (and
// likewise B as k x n, or n x k with `trans_b`); each leading dimension is at least the
// number of stored columns. When beta is 0, C is only written. Fails with DAMRT_E_ARGUMENT,
// leaving C untouched.
DamrtStatus damrt_gemm_f32(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                           float alpha, const float *a, size_t lda, const float *b,
                           size_t ldb, float beta, float *c, size_t ldc, DamrtError *err);
DamrtStatus damrt_gemm_f64(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                           double alpha, const double *a, size_t lda, const double *b,
                           size_t ldb, double beta, double *c, size_t ldc, DamrtError *err);

#endif

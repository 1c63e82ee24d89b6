// The kernel ABI: the runtime functions that JIT-compiled (and emitted C) kernels call.
//
// They take only fixed-size C types, so that generated code can call them without knowing
// the platform's bool or size_t. Their arguments come from a plan the compiler checked, so
// they do not check them again: a kernel never passes a size that does not match its
// buffers. This is the one place where kernels call BLAS (src/kernel_abi.c). The table the
// JIT registers them from, damrt_kernel.def, is checked against these prototypes by the
// test tests/tools/check_kernel_abi.py.
#ifndef DAMRT_KERNEL_H
#define DAMRT_KERNEL_H

#include <stdint.h>

// C[m, n] = op(A)[m, k] op(B)[k, n], row-major, op = transpose when trans_* is nonzero.
// One column or row of output (n == 1 or m == 1) uses gemv.
void damrt_kernel_gemm_f64(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                           const double *a, int64_t lda, const double *b, int64_t ldb,
                           double *c, int64_t ldc);
void damrt_kernel_gemm_f32(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                           const float *a, int64_t lda, const float *b, int64_t ldb,
                           float *c, int64_t ldc);
// Sets how many threads the BLAS products use (damc run --threads); n >= 1.
void damrt_set_threads(int n);

// pow(x, y), for exponents that are not constants of the model.
double damrt_kernel_pow_f64(double x, double y);
float damrt_kernel_pow_f32(float x, float y);

#endif

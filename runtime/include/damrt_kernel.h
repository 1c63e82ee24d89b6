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
// Sets how many threads the BLAS products and the fused products use at most (damc run
// --threads); n >= 1.
void damrt_set_threads(int n);

// The fused products (src/kernel_fused.c): for every sample b, z_b = W g_b (W is k x n,
// row-major; z and a are [batch, k], g and u [batch, n]), in one pass over W by blocks of
// `rows` rows. After z of a block is written, blk(bufs, params, batch, k0, k1) computes
// a[:, k0:k1) from it (the kernel's elementwise maps of those columns). mode 0 (softmax):
// lse_b = log sum_k exp(a_bk) and u_b = W' softmax(a_b), with the streaming (online) max and
// sum; mode 1 (additive): u_b = W' a_b, lse unused; mode 2 (an energy's log-sum-exp): lse_b
// alone, u unused (may be NULL); mode 3 (an energy's sum): lse_b = sum_k a_bk alone. At most
// `threads` threads (each a fixed segment of the blocks, so that the result does not depend
// on their timing), never more than damrt_set_threads allows.
void damrt_kernel_fused_f64(int32_t mode, int64_t batch, int64_t n, int64_t k, int64_t rows,
                            int32_t threads, const double *w, const double *g, double *z,
                            double *a, double *lse, double *u, void *blk, void **bufs,
                            const double *params);
void damrt_kernel_fused_f32(int32_t mode, int64_t batch, int64_t n, int64_t k, int64_t rows,
                            int32_t threads, const float *w, const float *g, float *z,
                            float *a, float *lse, float *u, void *blk, void **bufs,
                            const double *params);
// A thread limit of the fused products alone, instead of damrt_set_threads' (bench/fused_step
// times them on one thread beside BLAS's threads); 0: damrt_set_threads' limit.
void damrt_fused_set_thread_limit(int n);

// Stops OpenBLAS's worker threads (they are started again by the next threaded BLAS call), so
// that they do not spin on the cores while damc compiles or reads files: OpenBLAS 0.3.21
// starts them when it is loaded and keeps them polling for a while after each call.
void damrt_blas_rest(void);

// pow(x, y), for exponents that are not constants of the model.
double damrt_kernel_pow_f64(double x, double y);
float damrt_kernel_pow_f32(float x, float y);

#endif

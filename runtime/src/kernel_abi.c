// The kernel ABI (see damrt_kernel.h).
#include <cblas.h>
#include <math.h>

#include "damrt_kernel.h"
#include "util.h"

// gemm, or gemv when the output is one column (op(A) x) or one row (x' op(B)).
#define DEFINE_GEMM(suffix, real, gemm, gemv)                                              \
  void damrt_kernel_gemm_##suffix(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,  \
                                  int64_t k, const real *a, int64_t lda, const real *b,    \
                                  int64_t ldb, real *c, int64_t ldc) {                     \
    if (m <= 0 || n <= 0) return;                                                          \
    if (n == 1) {                                                                          \
      /* c[:, 0] = op(A) b[:, 0]: A is stored m x k, or k x m when transposed. */          \
      gemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (int)(trans_a ? k : m),     \
           (int)(trans_a ? m : k), 1, a, (int)lda, b, (int)(trans_b ? 1 : ldb), 0, c,      \
           (int)ldc);                                                                      \
      return;                                                                              \
    }                                                                                      \
    if (m == 1) {                                                                          \
      /* c[0, :] = op(B)' a[0, :]. */                                                      \
      gemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, (int)(trans_b ? n : k),     \
           (int)(trans_b ? k : n), 1, b, (int)ldb, a, (int)(trans_a ? lda : 1), 0, c, 1);  \
      return;                                                                              \
    }                                                                                      \
    gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,                               \
         trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1, a, (int)lda, b,   \
         (int)ldb, 0, c, (int)ldc);                                                        \
  }
DEFINE_GEMM(f64, double, cblas_dgemm, cblas_dgemv)
DEFINE_GEMM(f32, float, cblas_sgemm, cblas_sgemv)

double damrt_kernel_pow_f64(double x, double y) { return pow(x, y); }
float damrt_kernel_pow_f32(float x, float y) { return powf(x, y); }

// OpenBLAS's own (exported by 0.3.21; its fork handler uses it): joins the worker threads;
// exec_blas starts them again when a product needs them.
int blas_thread_shutdown_(void);

void damrt_blas_rest(void) { blas_thread_shutdown_(); }

void damrt_set_threads(int n) {
  openblas_set_num_threads(n);
  damrt_thread_limit_set(n);  // the fused products' limit too, unless they have their own
}

// Checked gemv and gemm over OpenBLAS (see damrt_blas.h).
//
// The checks are written once, on sizes in bytes, and the four entry points are stamped out
// for float and double by two macros that differ only in the element type and the cblas
// function they call.
#include "damrt_blas.h"

#include <cblas.h>
#include <limits.h>
#include <stdint.h>

// The largest value a BLAS integer argument can hold: blasint is 32 bits in the usual
// OpenBLAS build and 64 bits in an INTERFACE64 one.
#define BLAS_INT_MAX ((size_t)(sizeof(blasint) == 8 ? INT64_MAX : INT_MAX))

// The bytes an operand spans, [begin, end); empty when begin == end.
typedef struct {
  uintptr_t begin, end;
} Extent;

typedef struct {
  const char *fn;  // the entry point's name, which starts every message
  size_t elem;     // bytes per element
  DamrtError *err;
} Call;

static DamrtStatus check_int(const Call *c, const char *arg, size_t value) {
  if (value <= BLAS_INT_MAX) return DAMRT_OK;
  return damrt_error_set(c->err, DAMRT_E_ARGUMENT, "%s: %s = %zu exceeds the BLAS integer "
                         "range (at most %zu)", c->fn, arg, value, BLAS_INT_MAX);
}

// Elements from the first to the last one an operand touches, with stride `step` between
// its `count` rows or elements of `width`; fails when the bytes overflow.
static DamrtStatus extent(const Call *c, const char *name, const void *p, size_t count,
                          size_t step, size_t width, Extent *out) {
  out->begin = out->end = (uintptr_t)p;
  if (count == 0 || width == 0) return DAMRT_OK;
  if (!p) return damrt_error_set(c->err, DAMRT_E_ARGUMENT, "%s: %s is NULL", c->fn, name);
  // count and step fit in a BLAS integer, so (count - 1) * step cannot overflow.
  size_t elems = (count - 1) * step + width;
  if (elems > (UINTPTR_MAX - out->begin) / c->elem)
    return damrt_error_set(c->err, DAMRT_E_ARGUMENT,
                           "%s: %s would extend past the end of the address space", c->fn,
                           name);
  out->end = out->begin + elems * c->elem;
  return DAMRT_OK;
}

// A row-major `rows` x `cols` matrix with leading dimension `ld`.
static DamrtStatus check_matrix(const Call *c, const char *name, const char *ld_name,
                                const void *p, size_t rows, size_t cols, size_t ld,
                                Extent *out) {
  DamrtStatus status = check_int(c, ld_name, ld);
  if (status != DAMRT_OK) return status;
  size_t min_ld = cols > 1 ? cols : 1;
  if (ld < min_ld)
    return damrt_error_set(c->err, DAMRT_E_ARGUMENT,
                           "%s: %s = %zu is too small: %s is stored with %zu column%s, so %s "
                           "must be at least %zu",
                           c->fn, ld_name, ld, name, cols, cols == 1 ? "" : "s", ld_name,
                           min_ld);
  return extent(c, name, p, rows, ld, cols, out);
}

static DamrtStatus check_vector(const Call *c, const char *name, const char *inc_name,
                                const void *p, size_t len, size_t inc, Extent *out) {
  DamrtStatus status = check_int(c, inc_name, inc);
  if (status != DAMRT_OK) return status;
  if (inc == 0)
    return damrt_error_set(c->err, DAMRT_E_ARGUMENT, "%s: %s must be at least 1", c->fn,
                           inc_name);
  return extent(c, name, p, len, inc, 1, out);
}

static bool overlap(Extent a, Extent b) {
  return a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
}

static DamrtStatus check_apart(const Call *c, const char *out_name, Extent out,
                               const char *in_name, Extent in) {
  if (!overlap(out, in)) return DAMRT_OK;
  return damrt_error_set(c->err, DAMRT_E_ARGUMENT,
                         "%s: %s overlaps %s (BLAS needs the output apart from its inputs)",
                         c->fn, out_name, in_name);
}

static DamrtStatus check_gemv(const Call *c, bool trans, size_t m, size_t n, const void *a,
                              size_t lda, const void *x, size_t incx, const void *y,
                              size_t incy) {
  Extent ea, ex, ey;
  DamrtStatus status = check_int(c, "m", m);
  if (status == DAMRT_OK) status = check_int(c, "n", n);
  if (status == DAMRT_OK) status = check_matrix(c, "A", "lda", a, m, n, lda, &ea);
  if (status == DAMRT_OK) status = check_vector(c, "x", "incx", x, trans ? m : n, incx, &ex);
  if (status == DAMRT_OK) status = check_vector(c, "y", "incy", y, trans ? n : m, incy, &ey);
  if (status == DAMRT_OK) status = check_apart(c, "y", ey, "A", ea);
  if (status == DAMRT_OK) status = check_apart(c, "y", ey, "x", ex);
  return status;
}

static DamrtStatus check_gemm(const Call *c, bool trans_a, bool trans_b, size_t m, size_t n,
                              size_t k, const void *a, size_t lda, const void *b, size_t ldb,
                              const void *cm, size_t ldc) {
  Extent ea, eb, ec;
  DamrtStatus status = check_int(c, "m", m);
  if (status == DAMRT_OK) status = check_int(c, "n", n);
  if (status == DAMRT_OK) status = check_int(c, "k", k);
  if (status == DAMRT_OK)
    status = trans_a ? check_matrix(c, "A", "lda", a, k, m, lda, &ea)
                     : check_matrix(c, "A", "lda", a, m, k, lda, &ea);
  if (status == DAMRT_OK)
    status = trans_b ? check_matrix(c, "B", "ldb", b, n, k, ldb, &eb)
                     : check_matrix(c, "B", "ldb", b, k, n, ldb, &eb);
  if (status == DAMRT_OK) status = check_matrix(c, "C", "ldc", cm, m, n, ldc, &ec);
  if (status == DAMRT_OK) status = check_apart(c, "C", ec, "A", ea);
  if (status == DAMRT_OK) status = check_apart(c, "C", ec, "B", eb);
  return status;
}

static enum CBLAS_TRANSPOSE transpose(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

// BLAS returns early when the dimension summed over is empty, leaving y as it was instead of
// beta * y; the wrapper scales y itself so the result is the mathematical one. gemm needs no
// such care: it scales C by beta when k is 0.
#define DEFINE_GEMV(NAME, T, CBLAS_GEMV)                                                    \
  DamrtStatus NAME(bool trans, size_t m, size_t n, T alpha, const T *a, size_t lda,         \
                   const T *x, size_t incx, T beta, T *y, size_t incy, DamrtError *err) {   \
    Call c = {#NAME, sizeof(T), err};                                                       \
    DamrtStatus status = check_gemv(&c, trans, m, n, a, lda, x, incx, y, incy);             \
    if (status != DAMRT_OK) return status;                                                  \
    if ((trans ? m : n) == 0) {                                                             \
      for (size_t i = 0, len = trans ? n : m; i < len; i++)                                 \
        y[i * incy] = beta == 0 ? 0 : beta * y[i * incy];                                   \
      return DAMRT_OK;                                                                      \
    }                                                                                       \
    CBLAS_GEMV(CblasRowMajor, transpose(trans), (blasint)m, (blasint)n, alpha, a,           \
               (blasint)lda, x, (blasint)incx, beta, y, (blasint)incy);                     \
    return DAMRT_OK;                                                                        \
  }

#define DEFINE_GEMM(NAME, T, CBLAS_GEMM)                                                    \
  DamrtStatus NAME(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, T alpha,       \
                   const T *a, size_t lda, const T *b, size_t ldb, T beta, T *cm,           \
                   size_t ldc, DamrtError *err) {                                           \
    Call c = {#NAME, sizeof(T), err};                                                       \
    DamrtStatus status = check_gemm(&c, trans_a, trans_b, m, n, k, a, lda, b, ldb, cm, ldc);\
    if (status != DAMRT_OK) return status;                                                  \
    CBLAS_GEMM(CblasRowMajor, transpose(trans_a), transpose(trans_b), (blasint)m,           \
               (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, cm,   \
               (blasint)ldc);                                                               \
    return DAMRT_OK;                                                                        \
  }

DEFINE_GEMV(damrt_gemv_f32, float, cblas_sgemv)
DEFINE_GEMV(damrt_gemv_f64, double, cblas_dgemv)
DEFINE_GEMM(damrt_gemm_f32, float, cblas_sgemm)
DEFINE_GEMM(damrt_gemm_f64, double, cblas_dgemm)

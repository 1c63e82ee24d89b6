// The elementwise math functions of irb_math against glibc's libm, on 10^6 random points
// per function and type plus special values (NaN, +-inf, +-0, subnormals, thresholds of
// overflow and underflow). Requirements: f64 within 1e-13 relative (relative to the
// smallest normal for subnormal results), f32 within 4 ulp of libm's float functions.
// Functions libm lacks (sigmoid, softplus, relu, logcosh) are compared with a stable
// long double formula, rounded. Also checks that every kernel vectorises without calls,
// and prints accuracy, speed (ns per element, JIT against a C loop over libm) and
// compile times.
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/irb.h"
#include "backend_test.h"
#include "math_test.h"

enum { N_POINTS = 1000000 };

// Where each function is sampled.
typedef struct {
  IrbMath fn;
  double lo64, hi64;        // the whole interesting range per type
  double lo32, hi32;
  double core_lo, core_hi;  // where the function bends
} MathCase;

static const MathCase cases[IRB_MATH_COUNT] = {
    {IRB_EXP, -746, 710, -105, 89, -20, 20},
    {IRB_EXPM1, -40, 710, -20, 89, -2, 2},
    {IRB_LOG, 0, DBL_MAX, 0, FLT_MAX, 0.25, 4},
    {IRB_LOG1P, -1, DBL_MAX, -1, FLT_MAX, -0.9, 3},
    {IRB_SQRT, 0, DBL_MAX, 0, FLT_MAX, 0, 4},
    {IRB_ABS, -DBL_MAX, DBL_MAX, -FLT_MAX, FLT_MAX, -4, 4},
    {IRB_TANH, -25, 25, -12, 12, -2, 2},
    {IRB_SIGMOID, -750, 750, -110, 110, -20, 20},
    {IRB_SOFTPLUS, -750, 750, -110, 110, -20, 20},
    {IRB_RELU, -10, 10, -10, 10, -1, 1},
    {IRB_COSH, -711, 711, -90, 90, -25, 25},
    {IRB_SINH, -711, 711, -90, 90, -25, 25},
    {IRB_LOGCOSH, -1e4, 1e4, -1e4, 1e4, -25, 25},
};

// Special values for every function (converted to float for f32; out of range -> inf).
static const double specials[] = {
    NAN, INFINITY, -INFINITY, 0.0, -0.0, 1, -1, 2, -2, 0.5, -0.5,
    DBL_TRUE_MIN, -DBL_TRUE_MIN, DBL_MIN, -DBL_MIN, DBL_MAX, -DBL_MAX,
    FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
    1e-300, -1e-300, 1e-30, -1e-30, 1e-9, -1e-9,
    709.782712893384, 709.79, 710.4758600739439, 710.48, -708.4, -708.5, -745.1332191019411,
    -745.14, -745.2, 88.72283, 88.7229, 89.41599, 89.42, -87.33, -87.34, -103.97, -103.98,
    -104, -1 + 1e-16, -1 + 1e-7, 22, -22, 9.01, 10, 20, 40, -38, -18,
};
enum { N_SPECIAL = sizeof specials / sizeof specials[0] };

// x = sign * 2^u, u uniform over the binary exponents from the smallest subnormal up to
// `hi`'s: every scale gets its share, including tiny arguments.
static double log_uniform(uint64_t *s, double hi, int min_exp, bool may_negate) {
  double u = min_exp + rng_uniform(s) * (log2(hi) - min_exp);
  double x = exp2(u);
  return may_negate && rng_next(s) & 1 ? -x : x;
}

// Points for `c` in type `real`: specials first, then thirds uniform over the whole
// range, uniform over the core, and log-uniform in magnitude within the range.
static void sample(const MathCase *c, IrbReal real, double *x, uint64_t *s) {
  double lo = real == IRB_F32 ? c->lo32 : c->lo64, hi = real == IRB_F32 ? c->hi32 : c->hi64;
  int min_exp = real == IRB_F32 ? -149 : -1074;
  for (int i = 0; i < N_SPECIAL; i++) x[i] = specials[i];
  for (int i = N_SPECIAL; i < N_POINTS; i++) {
    double v;
    switch (i % 3) {
    case 0:  // lo + u (hi - lo) overflows for +-DBL_MAX; split the range instead
      v = lo / 2 + rng_uniform(s) * (hi / 2 - lo / 2);
      v *= 2;
      break;
    case 1:
      v = c->core_lo + rng_uniform(s) * (c->core_hi - c->core_lo);
      break;
    default:
      do v = log_uniform(s, fmax(fabs(lo), fabs(hi)), min_exp, lo < 0);
      while (v < lo || v > hi);
    }
    x[i] = v;
  }
}

typedef void (*KernelF64)(double *, const double *, int64_t);
typedef void (*KernelF32)(float *, const float *, int64_t);

// Best of three runs, in ns per element.
static double time_jit(uintptr_t fn, IrbReal real, void *y, const void *x) {
  double best = INFINITY;
  for (int r = 0; r < 3; r++) {
    double t0 = now_ms();
    if (real == IRB_F32)
      ((KernelF32)fn)(y, x, N_POINTS);
    else
      ((KernelF64)fn)(y, x, N_POINTS);
    best = fmin(best, now_ms() - t0);
  }
  return best * 1e6 / N_POINTS;
}

static double time_c(const MathRef *ref, IrbReal real, void *y, const void *x) {
  double best = INFINITY;
  for (int r = 0; r < 3; r++) {
    double t0 = now_ms();
    if (real == IRB_F32) {
      float *yf = y;
      const float *xf = x;
      for (int i = 0; i < N_POINTS; i++) yf[i] = ref->ref32(xf[i]);
    } else {
      double *yd = y;
      const double *xd = x;
      for (int i = 0; i < N_POINTS; i++) yd[i] = ref->ref64(xd[i]);
    }
    best = fmin(best, now_ms() - t0);
  }
  return best * 1e6 / N_POINTS;
}

// The error measures of one function: f64 relative (and ulp), f32 ulp.
typedef struct {
  double max_rel;
  int64_t max_ulp;
  double worst_x;
} Errors;

static void compare_f64(const MathRef *r, const double *x, const double *y, Errors *e) {
  for (int i = 0; i < N_POINTS; i++) {
    double ref = r->ref64(x[i]);
    double rel;
    if (isnan(ref) || isinf(ref) || isnan(y[i]) || isinf(y[i]))
      rel = (y[i] == ref || (isnan(ref) && isnan(y[i]))) ? 0 : INFINITY;
    else
      rel = fabs(y[i] - ref) / fmax(fabs(ref), DBL_MIN);
    int64_t ulp = ulp_diff_f64(y[i], ref);
    if (rel > e->max_rel) {
      e->max_rel = rel;
      e->worst_x = x[i];
    }
    if (ulp > e->max_ulp) e->max_ulp = ulp;
  }
}

static void compare_f32(const MathRef *r, const float *x, const float *y, Errors *e) {
  for (int i = 0; i < N_POINTS; i++) {
    int64_t ulp = ulp_diff_f32(y[i], r->ref32(x[i]));
    if (ulp > e->max_ulp) {
      e->max_ulp = ulp;
      e->worst_x = x[i];
    }
  }
}

static void run_type(Jit *jit, IrbReal real) {
  const char *sfx = real == IRB_F32 ? "f32" : "f64";
  StrBuf err = {0};
  char name[64];

  double t0 = now_ms();
  JitModule *m = jit_module_new(jit, sfx);
  math_kernels_build(m, real);
  double t_build = now_ms() - t0;
  t0 = now_ms();
  CHECK(jit_module_optimize(jit, m, &err));
  double t_opt = now_ms() - t0;
  char *text = jit_module_asm(jit, m, &err);
  CHECK(text != NULL);
  t0 = now_ms();
  CHECK(jit_add_module_take(jit, m, &err) != NULL);  // m is the JIT's now
  uintptr_t fns[IRB_MATH_COUNT];
  for (IrbMath fn = 0; fn < IRB_MATH_COUNT; fn++) {
    math_kernel_name(name, sizeof name, fn, real);
    fns[fn] = jit_lookup(jit, name, &err);
    CHECK(fns[fn] != 0);
  }
  double t_jit = now_ms() - t0;
  if (err.len) fprintf(stderr, "%s", sb_str(&err));
  printf("%s: %d kernels: IR build %.2f ms, optimisation %.2f ms, codegen+lookup %.2f ms\n",
         sfx, IRB_MATH_COUNT, t_build, t_opt, t_jit);
  printf("  %-9s %-22s %8s %8s %8s %10s\n", "function", "max error", "JIT ns", "libm ns",
         "speedup", "zmm/calls");

  uint64_t seed = 1234 + (uint64_t)real;
  double *xd = malloc(sizeof *xd * N_POINTS);
  void *x = malloc(sizeof(double) * N_POINTS), *y = malloc(sizeof(double) * N_POINTS);
  for (IrbMath fn = 0; fn < IRB_MATH_COUNT && fns[fn]; fn++) {
    const MathCase *c = &cases[fn];
    const MathRef *ref = &math_refs[fn];
    CHECK_EQ(c->fn, fn);  // cases[] is in IrbMath order
    math_kernel_name(name, sizeof name, fn, real);
    char *body = text ? asm_function(text, name) : NULL;
    int n_zmm = body ? count_substr(body, "%zmm") : 0;
    int n_call = body ? count_substr(body, "call") : -1;
    CHECK(body && count_vector_regs(body) > 0);
    CHECK_EQ(n_call, 0);
    free(body);

    sample(c, real, xd, &seed);
    if (real == IRB_F32)
      for (int i = 0; i < N_POINTS; i++) ((float *)x)[i] = (float)xd[i];
    else
      for (int i = 0; i < N_POINTS; i++) ((double *)x)[i] = xd[i];
    double ns_jit = time_jit(fns[fn], real, y, x);
    Errors e = {0};
    char err_text[64];
    if (real == IRB_F32) {
      compare_f32(ref, x, y, &e);
      snprintf(err_text, sizeof err_text, "%lld ulp", (long long)e.max_ulp);
      CHECK(e.max_ulp <= 4);
    } else {
      compare_f64(ref, x, y, &e);
      snprintf(err_text, sizeof err_text, "%.1e rel (%lld ulp)", e.max_rel,
               (long long)e.max_ulp);
      CHECK(e.max_rel <= 1e-13);
    }
    char speed[64] = "       -         -";
    if (ref->is_libm) {
      double ns_c = time_c(ref, real, y, x);
      snprintf(speed, sizeof speed, "%8.2f %8.1fx", ns_c, ns_c / ns_jit);
    }
    printf("  %-9s %-22s %8.2f %s %6d/%d   (worst at x = %.9g)\n", irb_math_name(c->fn),
           err_text, ns_jit, speed, n_zmm, n_call, e.worst_x);
  }
  free(text);
  free(xd);
  free(x);
  free(y);
  sb_free(&err);
}

int main(void) {
  Jit *jit = test_jit_new();
  printf("host cpu %s, %d points per function\n", jit_cpu_name(jit), N_POINTS);
  run_type(jit, IRB_F64);
  run_type(jit, IRB_F32);
  StrBuf err = {0};
  CHECK(jit_free(jit, &err));
  sb_free(&err);
  return check_report("test_backend_math");
}

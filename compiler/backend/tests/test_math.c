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

enum { N_POINTS = 1000000 };

// Long double references for the functions libm does not have.
static long double sigmoid_ld(long double x) {
  return x >= 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
}
static long double softplus_ld(long double x) {
  return (x > 0 ? x : 0) + log1pl(expl(-fabsl(x)));
}
static long double relu_ld(long double x) { return x < 0 ? 0 : x; }
static long double logcosh_ld(long double x) {
  long double a = fabsl(x), e = expm1l(a);
  if (a > 40) return a - 0.693147180559945309417232121458176568L + log1pl(expl(-2 * a));
  return log1pl(e * e / (2 * (1 + e)));
}

static double sigmoid_d(double x) { return (double)sigmoid_ld(x); }
static double softplus_d(double x) { return (double)softplus_ld(x); }
static double relu_d(double x) { return (double)relu_ld(x); }
static double logcosh_d(double x) { return (double)logcosh_ld(x); }
static float sigmoid_f(float x) { return (float)sigmoid_ld(x); }
static float softplus_f(float x) { return (float)softplus_ld(x); }
static float relu_f(float x) { return (float)relu_ld(x); }
static float logcosh_f(float x) { return (float)logcosh_ld(x); }

typedef struct {
  IrbMath fn;
  double (*ref64)(double);
  float (*ref32)(float);
  bool is_libm;             // the references are libm's (timed against the JIT)
  double lo64, hi64;        // the whole interesting range per type
  double lo32, hi32;
  double core_lo, core_hi;  // where the function bends
} MathCase;

static const MathCase cases[] = {
    {IRB_EXP, exp, expf, true, -746, 710, -105, 89, -20, 20},
    {IRB_EXPM1, expm1, expm1f, true, -40, 710, -20, 89, -2, 2},
    {IRB_LOG, log, logf, true, 0, DBL_MAX, 0, FLT_MAX, 0.25, 4},
    {IRB_LOG1P, log1p, log1pf, true, -1, DBL_MAX, -1, FLT_MAX, -0.9, 3},
    {IRB_SQRT, sqrt, sqrtf, true, 0, DBL_MAX, 0, FLT_MAX, 0, 4},
    {IRB_ABS, fabs, fabsf, true, -DBL_MAX, DBL_MAX, -FLT_MAX, FLT_MAX, -4, 4},
    {IRB_TANH, tanh, tanhf, true, -25, 25, -12, 12, -2, 2},
    {IRB_SIGMOID, sigmoid_d, sigmoid_f, false, -750, 750, -110, 110, -20, 20},
    {IRB_SOFTPLUS, softplus_d, softplus_f, false, -750, 750, -110, 110, -20, 20},
    {IRB_RELU, relu_d, relu_f, false, -10, 10, -10, 10, -1, 1},
    {IRB_COSH, cosh, coshf, true, -711, 711, -90, 90, -25, 25},
    {IRB_SINH, sinh, sinhf, true, -711, 711, -90, 90, -25, 25},
    {IRB_LOGCOSH, logcosh_d, logcosh_f, false, -1e4, 1e4, -1e4, 1e4, -25, 25},
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

static double time_c(const MathCase *c, IrbReal real, void *y, const void *x) {
  double best = INFINITY;
  for (int r = 0; r < 3; r++) {
    double t0 = now_ms();
    if (real == IRB_F32) {
      float *yf = y;
      const float *xf = x;
      for (int i = 0; i < N_POINTS; i++) yf[i] = c->ref32(xf[i]);
    } else {
      double *yd = y;
      const double *xd = x;
      for (int i = 0; i < N_POINTS; i++) yd[i] = c->ref64(xd[i]);
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

static void compare_f64(const MathCase *c, const double *x, const double *y, Errors *e) {
  for (int i = 0; i < N_POINTS; i++) {
    double ref = c->ref64(x[i]);
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

static void compare_f32(const MathCase *c, const float *x, const float *y, Errors *e) {
  for (int i = 0; i < N_POINTS; i++) {
    int64_t ulp = ulp_diff_f32(y[i], c->ref32(x[i]));
    if (ulp > e->max_ulp) {
      e->max_ulp = ulp;
      e->worst_x = x[i];
    }
  }
}

static void run_type(Jit *jit, IrbReal real) {
  const char *sfx = real == IRB_F32 ? "f32" : "f64";
  size_t n_cases = sizeof cases / sizeof cases[0];
  StrBuf err = {0};
  char name[64];

  double t0 = now_ms();
  JitModule *m = jit_module_new(jit, sfx);
  Irb irb;
  irb_init(&irb, m, real);
  for (size_t k = 0; k < n_cases; k++) {
    snprintf(name, sizeof name, "k_%s_%s", irb_math_name(cases[k].fn), sfx);
    irb_func_begin(&irb, name, "void(ptr noalias y, ptr noalias x, i64 n)");
    IrbLoop loop;
    irb_loop_begin(&irb, &loop, irb_param(&irb, 2), "l");
    LLVMValueRef v_x = irb_load(&irb, irb_param(&irb, 1), loop.i);
    irb_store(&irb, irb_param(&irb, 0), loop.i, irb_math(&irb, cases[k].fn, v_x));
    irb_loop_end(&irb, &loop, NULL);
    LLVMBuildRetVoid(irb.b);
  }
  irb_fini(&irb);
  double t_build = now_ms() - t0;
  t0 = now_ms();
  CHECK(jit_module_optimize(jit, m, &err));
  double t_opt = now_ms() - t0;
  char *text = jit_module_asm(jit, m, &err);
  CHECK(text != NULL);
  t0 = now_ms();
  CHECK(jit_add_module_take(jit, m, &err) != NULL);  // m is the JIT's now
  uintptr_t fns[sizeof cases / sizeof cases[0]];
  for (size_t k = 0; k < n_cases; k++) {
    snprintf(name, sizeof name, "k_%s_%s", irb_math_name(cases[k].fn), sfx);
    fns[k] = jit_lookup(jit, name, &err);
    CHECK(fns[k] != 0);
  }
  double t_jit = now_ms() - t0;
  if (err.len) fprintf(stderr, "%s", sb_str(&err));
  printf("%s: %zu kernels: IR build %.2f ms, optimisation %.2f ms, codegen+lookup %.2f ms\n",
         sfx, n_cases, t_build, t_opt, t_jit);
  printf("  %-9s %-22s %8s %8s %8s %10s\n", "function", "max error", "JIT ns", "libm ns",
         "speedup", "zmm/calls");

  uint64_t seed = 1234 + (uint64_t)real;
  double *xd = malloc(sizeof *xd * N_POINTS);
  void *x = malloc(sizeof(double) * N_POINTS), *y = malloc(sizeof(double) * N_POINTS);
  for (size_t k = 0; k < n_cases && fns[k]; k++) {
    const MathCase *c = &cases[k];
    snprintf(name, sizeof name, "k_%s_%s", irb_math_name(c->fn), sfx);
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
    double ns_jit = time_jit(fns[k], real, y, x);
    Errors e = {0};
    char err_text[64];
    if (real == IRB_F32) {
      compare_f32(c, x, y, &e);
      snprintf(err_text, sizeof err_text, "%lld ulp", (long long)e.max_ulp);
      CHECK(e.max_ulp <= 4);
    } else {
      compare_f64(c, x, y, &e);
      snprintf(err_text, sizeof err_text, "%.1e rel (%lld ulp)", e.max_rel,
               (long long)e.max_ulp);
      CHECK(e.max_rel <= 1e-13);
    }
    char speed[64] = "       -         -";
    if (c->is_libm) {
      double ns_c = time_c(c, real, y, x);
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

// What the math tests share: the reference per function (glibc's libm where it has the
// function, else a stable formula evaluated in long double and rounded), and the kernels
// `void k_<name>_<f32|f64>(real *y, const real *x, i64 n)`, y[i] = name(x[i]).
#ifndef DAMC_MATH_TEST_H
#define DAMC_MATH_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "backend/irb.h"

static long double sigmoid_ld(long double x) {
  return x >= 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
}
static long double softplus_ld(long double x) {
  return (x > 0 ? x : 0) + log1pl(expl(-fabsl(x)));
}
static long double relu_ld(long double x) { return x < 0 ? 0 : x; }
// log1p(cosh |x| - 1): full relative accuracy down to tiny x.
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
  double (*ref64)(double);
  float (*ref32)(float);
  bool is_libm;  // libm's own functions (the tests time the JIT against them)
} MathRef;

static const MathRef math_refs[IRB_MATH_COUNT] = {
    [IRB_EXP] = {exp, expf, true},
    [IRB_EXPM1] = {expm1, expm1f, true},
    [IRB_LOG] = {log, logf, true},
    [IRB_LOG1P] = {log1p, log1pf, true},
    [IRB_SQRT] = {sqrt, sqrtf, true},
    [IRB_ABS] = {fabs, fabsf, true},
    [IRB_TANH] = {tanh, tanhf, true},
    [IRB_SIGMOID] = {sigmoid_d, sigmoid_f, false},
    [IRB_SOFTPLUS] = {softplus_d, softplus_f, false},
    [IRB_RELU] = {relu_d, relu_f, false},
    [IRB_COSH] = {cosh, coshf, true},
    [IRB_SINH] = {sinh, sinhf, true},
    [IRB_LOGCOSH] = {logcosh_d, logcosh_f, false},
};

static inline void math_kernel_name(char *buf, size_t size, IrbMath fn, IrbReal real) {
  snprintf(buf, size, "k_%s_%s", irb_math_name(fn), real == IRB_F32 ? "f32" : "f64");
}

// Builds the kernel of every function into `m`.
static inline void math_kernels_build(JitModule *m, IrbReal real) {
  Irb irb;
  irb_init(&irb, m, real);
  for (IrbMath fn = 0; fn < IRB_MATH_COUNT; fn++) {
    char name[64];
    math_kernel_name(name, sizeof name, fn, real);
    irb_func_begin(&irb, name, "void(ptr noalias y, ptr noalias x, i64 n)");
    IrbLoop loop;
    irb_loop_begin(&irb, &loop, irb_param(&irb, 2), "l");
    LLVMValueRef v_x = irb_load(&irb, irb_param(&irb, 1), loop.i);
    irb_store(&irb, irb_param(&irb, 0), loop.i, irb_math(&irb, fn, v_x));
    irb_loop_end(&irb, &loop, NULL);
    LLVMBuildRetVoid(irb.b);
  }
  irb_fini(&irb);
}

#endif

// Kernels built with irb.h, JIT-compiled in f32 and f64 and compared with plain C:
//   axpexp     y[i] = exp(a x[i]) + b            elementwise math
//   sum, vmax  sum and max reductions
//   lse        log(sum exp(x[i] - max x)) + max   both reductions and math in one kernel
//   gemv_tanh  y = tanh(A x), A x by cblas_?gemv   an external call, registered explicitly
// Checks that the loops vectorise (vector registers, no calls but the BLAS one) and
// prints the compile times: IR build, optimisation, code generation + lookup.
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/irb.h"
#include "backend_test.h"
#include "support/common.h"

enum { N_VEC = 100003, GEMV_M = 300, GEMV_N = 200 };

// Builds the five kernels in `real` into `m`, names suffixed _f32 or _f64.
static void build_kernels(JitModule *m, IrbReal real) {
  const char *sfx = real == IRB_F32 ? "f32" : "f64";
  char name[64];
  Irb irb;
  irb_init(&irb, m, real);
  LLVMBuilderRef b = irb.b;

  // void axpexp(real *y, const real *x, i64 n, real a, real b)
  snprintf(name, sizeof name, "axpexp_%s", sfx);
  irb_func_begin(&irb, name, "void(ptr noalias y, ptr noalias x, i64 n, real a, real b)");
  IrbLoop loop;
  irb_loop_begin(&irb, &loop, irb_param(&irb, 2), "l");
  LLVMValueRef v_x = irb_load(&irb, irb_param(&irb, 1), loop.i);
  LLVMValueRef v_e = irb_math(&irb, IRB_EXP, LLVMBuildFMul(b, irb_param(&irb, 3), v_x, ""));
  irb_store(&irb, irb_param(&irb, 0), loop.i, LLVMBuildFAdd(b, v_e, irb_param(&irb, 4), ""));
  irb_loop_end(&irb, &loop, NULL);
  LLVMBuildRetVoid(b);

  // real sum(const real *x, i64 n)
  snprintf(name, sizeof name, "sum_%s", sfx);
  irb_func_begin(&irb, name, "real(ptr noalias x, i64 n)");
  irb_loop_begin(&irb, &loop, irb_param(&irb, 1), "l");
  LLVMValueRef v_acc = irb_loop_carry(&irb, &loop, irb_real(&irb, 0), "acc");
  LLVMValueRef v_x0 = irb_load(&irb, irb_param(&irb, 0), loop.i);
  LLVMValueRef v_next = irb_reduce_add(&irb, v_acc, v_x0);
  irb_loop_end(&irb, &loop, &v_next);
  LLVMBuildRet(b, loop.carry[0]);

  // real vmax(const real *x, i64 n)
  snprintf(name, sizeof name, "vmax_%s", sfx);
  irb_func_begin(&irb, name, "real(ptr noalias x, i64 n)");
  irb_loop_begin(&irb, &loop, irb_param(&irb, 1), "l");
  v_acc = irb_loop_carry(&irb, &loop, irb_real(&irb, -INFINITY), "acc");
  v_next = irb_reduce_max(&irb, v_acc, irb_load(&irb, irb_param(&irb, 0), loop.i));
  irb_loop_end(&irb, &loop, &v_next);
  LLVMBuildRet(b, loop.carry[0]);

  // real lse(const real *x, i64 n): log-sum-exp, shifted by the max
  snprintf(name, sizeof name, "lse_%s", sfx);
  irb_func_begin(&irb, name, "real(ptr noalias x, i64 n)");
  LLVMValueRef v_xs = irb_param(&irb, 0), v_n = irb_param(&irb, 1);
  irb_loop_begin(&irb, &loop, v_n, "max");
  v_acc = irb_loop_carry(&irb, &loop, irb_real(&irb, -INFINITY), "m");
  v_next = irb_reduce_max(&irb, v_acc, irb_load(&irb, v_xs, loop.i));
  irb_loop_end(&irb, &loop, &v_next);
  LLVMValueRef v_max = loop.carry[0];
  irb_loop_begin(&irb, &loop, v_n, "sum");
  v_acc = irb_loop_carry(&irb, &loop, irb_real(&irb, 0), "s");
  v_x = LLVMBuildFSub(b, irb_load(&irb, v_xs, loop.i), v_max, "");
  v_next = irb_reduce_add(&irb, v_acc, irb_math(&irb, IRB_EXP, v_x));
  irb_loop_end(&irb, &loop, &v_next);
  LLVMBuildRet(b, LLVMBuildFAdd(b, irb_math(&irb, IRB_LOG, loop.carry[0]), v_max, ""));

  // void gemv_tanh(const real *A, const real *x, real *y, i32 m, i32 n)
  const char *gemv = real == IRB_F32 ? "cblas_sgemv" : "cblas_dgemv";
  LLVMValueRef v_gemv = irb_declare(
      &irb, gemv, "void(i32, i32, i32, i32, real, ptr, i32, ptr, i32, real, ptr, i32)");
  snprintf(name, sizeof name, "gemv_tanh_%s", sfx);
  irb_func_begin(&irb, name,
                 "void(ptr noalias A, ptr noalias x, ptr noalias y, i32 m, i32 n)");
  LLVMValueRef v_m = irb_param(&irb, 3), v_ncol = irb_param(&irb, 4), v_y = irb_param(&irb, 2);
  LLVMValueRef v_one = LLVMConstInt(irb.ty_i32, 1, 0);
  LLVMValueRef args[12] = {LLVMConstInt(irb.ty_i32, CblasRowMajor, 0),
                           LLVMConstInt(irb.ty_i32, CblasNoTrans, 0),
                           v_m, v_ncol, irb_real(&irb, 1), irb_param(&irb, 0), v_ncol,
                           irb_param(&irb, 1), v_one, irb_real(&irb, 0), v_y, v_one};
  irb_call(&irb, v_gemv, args, 12);
  irb_loop_begin(&irb, &loop, LLVMBuildSExt(b, v_m, irb.ty_i64, "m64"), "l");
  irb_store(&irb, v_y, loop.i, irb_math(&irb, IRB_TANH, irb_load(&irb, v_y, loop.i)));
  irb_loop_end(&irb, &loop, NULL);
  LLVMBuildRetVoid(b);

  irb_fini(&irb);
}

// The kernels of one type: their assembly is checked, then they run against C.
static void check_asm(const char *text, const char *sfx) {
  static const char *const pure[] = {"axpexp", "sum", "vmax", "lse"};
  char name[64];
  for (size_t k = 0; k < 4; k++) {
    snprintf(name, sizeof name, "%s_%s", pure[k], sfx);
    char *body = asm_function(text, name);
    CHECK(body != NULL);
    if (!body) continue;
    int n_zmm = count_substr(body, "%zmm"), n_vec = count_vector_regs(body);
    int n_call = count_substr(body, "call");
    printf("  %-14s vector registers %4d (zmm %4d), calls %d\n", name, n_vec, n_zmm, n_call);
    CHECK(n_vec > 0);
    CHECK_EQ(n_call, 0);
    free(body);
  }
  snprintf(name, sizeof name, "gemv_tanh_%s", sfx);
  char *body = asm_function(text, name);
  CHECK(body != NULL);
  if (body) {
    int n_call = count_substr(body, "call"), n_blas = count_substr(body, "cblas_");
    printf("  %-14s vector registers %4d (zmm %4d), calls %d (BLAS %d)\n", name,
           count_vector_regs(body), count_substr(body, "%zmm"), n_call, n_blas);
    CHECK(count_vector_regs(body) > 0);
    CHECK_EQ(n_call, 1);
    CHECK_EQ(n_blas, 1);
    free(body);
  }
}

// The kernels' C types, per element type.
typedef void (*AxpexpF64)(double *, const double *, int64_t, double, double);
typedef void (*AxpexpF32)(float *, const float *, int64_t, float, float);
typedef double (*ReduceF64)(const double *, int64_t);
typedef float (*ReduceF32)(const float *, int64_t);
typedef void (*GemvF64)(const double *, const double *, double *, int32_t, int32_t);
typedef void (*GemvF32)(const float *, const float *, float *, int32_t, int32_t);

static uintptr_t must_lookup(Jit *jit, const char *name, const char *sfx) {
  char full[64];
  snprintf(full, sizeof full, "%s_%s", name, sfx);
  StrBuf err = {0};
  uintptr_t addr = jit_lookup(jit, full, &err);
  if (!addr) fprintf(stderr, "%s", sb_str(&err));
  CHECK(addr != 0);
  sb_free(&err);
  return addr;
}

static void run_f64(Jit *jit) {
  AxpexpF64 axpexp = (AxpexpF64)must_lookup(jit, "axpexp", "f64");
  ReduceF64 sum = (ReduceF64)must_lookup(jit, "sum", "f64");
  ReduceF64 vmax = (ReduceF64)must_lookup(jit, "vmax", "f64");
  ReduceF64 lse = (ReduceF64)must_lookup(jit, "lse", "f64");
  GemvF64 gemv_tanh = (GemvF64)must_lookup(jit, "gemv_tanh", "f64");
  if (!axpexp || !sum || !vmax || !lse || !gemv_tanh) return;
  uint64_t seed = 42;
  double *x = malloc(sizeof *x * N_VEC), *y = malloc(sizeof *y * N_VEC);
  for (int i = 0; i < N_VEC; i++) x[i] = 10 * rng_uniform(&seed) - 5;

  axpexp(y, x, N_VEC, 1.5, 0.25);
  double worst = 0;
  for (int i = 0; i < N_VEC; i++) {
    double ref = exp(1.5 * x[i]) + 0.25;
    worst = fmax(worst, fabs(y[i] - ref) / fabs(ref));
  }
  printf("  axpexp_f64 max relative error %.2e\n", worst);
  CHECK(worst <= 1e-13);

  long double s = 0, sabs = 0;
  double m = -INFINITY;
  for (int i = 0; i < N_VEC; i++) {
    s += x[i];
    sabs += fabs(x[i]);
    m = fmax(m, x[i]);
  }
  // The vector partial sums round differently from a sequential sum, by far less than
  // 1e-14 of the sum of magnitudes here.
  printf("  sum_f64 %.17g, long double reference %.17Lg\n", sum(x, N_VEC), s);
  CHECK(fabsl(sum(x, N_VEC) - s) <= 1e-14 * sabs);
  CHECK(vmax(x, N_VEC) == m);
  CHECK(sum(x, 0) == 0 && vmax(x, 0) == -INFINITY);  // empty loops
  long double se = 0;
  for (int i = 0; i < N_VEC; i++) se += expl((long double)x[i] - m);
  double lse_ref = (double)(logl(se) + m);
  printf("  lse_f64 %.17g, reference %.17g\n", lse(x, N_VEC), lse_ref);
  CHECK(fabs(lse(x, N_VEC) - lse_ref) <= 1e-13 * fabs(lse_ref));

  double *a = malloc(sizeof *a * GEMV_M * GEMV_N), *ref = malloc(sizeof *ref * GEMV_M);
  for (int i = 0; i < GEMV_M * GEMV_N; i++) a[i] = (rng_uniform(&seed) - 0.5) * 0.2;
  gemv_tanh(a, x, y, GEMV_M, GEMV_N);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, GEMV_M, GEMV_N, 1, a, GEMV_N, x, 1, 0, ref, 1);
  worst = 0;
  for (int i = 0; i < GEMV_M; i++)
    worst = fmax(worst, fabs(y[i] - tanh(ref[i])) / fabs(tanh(ref[i])));
  printf("  gemv_tanh_f64 max relative error %.2e\n", worst);
  CHECK(worst <= 1e-13);
  free(a);
  free(ref);
  free(x);
  free(y);
}

static void run_f32(Jit *jit) {
  AxpexpF32 axpexp = (AxpexpF32)must_lookup(jit, "axpexp", "f32");
  ReduceF32 sum = (ReduceF32)must_lookup(jit, "sum", "f32");
  ReduceF32 vmax = (ReduceF32)must_lookup(jit, "vmax", "f32");
  ReduceF32 lse = (ReduceF32)must_lookup(jit, "lse", "f32");
  GemvF32 gemv_tanh = (GemvF32)must_lookup(jit, "gemv_tanh", "f32");
  if (!axpexp || !sum || !vmax || !lse || !gemv_tanh) return;
  uint64_t seed = 43;
  float *x = malloc(sizeof *x * N_VEC), *y = malloc(sizeof *y * N_VEC);
  for (int i = 0; i < N_VEC; i++) x[i] = (float)(10 * rng_uniform(&seed) - 5);

  axpexp(y, x, N_VEC, 1.5f, 0.25f);
  int64_t worst = 0;
  for (int i = 0; i < N_VEC; i++) {
    int64_t d = ulp_diff_f32(y[i], expf(1.5f * x[i]) + 0.25f);
    worst = d > worst ? d : worst;
  }
  printf("  axpexp_f32 max error %lld ulp\n", (long long)worst);
  CHECK(worst <= 4);

  double s = 0, sabs = 0;
  float m = -INFINITY;
  for (int i = 0; i < N_VEC; i++) {
    s += x[i];
    sabs += fabsf(x[i]);
    m = fmaxf(m, x[i]);
  }
  // As for f64: within 1e-6 of the sum of magnitudes.
  printf("  sum_f32 %.9g, double reference %.9g\n", sum(x, N_VEC), s);
  CHECK(fabs(sum(x, N_VEC) - s) <= 1e-6 * sabs);
  CHECK(vmax(x, N_VEC) == m);
  double se = 0;
  for (int i = 0; i < N_VEC; i++) se += exp((double)x[i] - m);
  double lse_ref = log(se) + m;
  printf("  lse_f32 %.9g, reference %.9g\n", lse(x, N_VEC), lse_ref);
  CHECK(fabs(lse(x, N_VEC) - lse_ref) <= 1e-5 * fabs(lse_ref));

  float *a = malloc(sizeof *a * GEMV_M * GEMV_N), *ref = malloc(sizeof *ref * GEMV_M);
  for (int i = 0; i < GEMV_M * GEMV_N; i++) a[i] = (float)((rng_uniform(&seed) - 0.5) * 0.2);
  gemv_tanh(a, x, y, GEMV_M, GEMV_N);
  cblas_sgemv(CblasRowMajor, CblasNoTrans, GEMV_M, GEMV_N, 1, a, GEMV_N, x, 1, 0, ref, 1);
  worst = 0;
  for (int i = 0; i < GEMV_M; i++) {
    int64_t d = ulp_diff_f32(y[i], tanhf(ref[i]));
    worst = d > worst ? d : worst;
  }
  printf("  gemv_tanh_f32 max error %lld ulp\n", (long long)worst);
  CHECK(worst <= 4);
  free(a);
  free(ref);
  free(x);
  free(y);
}

int main(void) {
  Jit *jit = test_jit_new();
  StrBuf err = {0};
  JitSymbol syms[] = {JIT_SYMBOL(cblas_sgemv), JIT_SYMBOL(cblas_dgemv)};
  CHECK(jit_define_symbols(jit, syms, ARRAY_LEN(syms), &err));
  printf("host cpu %s\n", jit_cpu_name(jit));

  for (IrbReal real = IRB_F32; real <= IRB_F64; real++) {
    const char *sfx = real == IRB_F32 ? "f32" : "f64";
    double t0 = now_ms();
    JitModule *m = jit_module_new(jit, sfx);
    build_kernels(m, real);
    double t_build = now_ms() - t0;
    t0 = now_ms();
    CHECK(jit_module_optimize(jit, m, &err));
    double t_opt = now_ms() - t0;
    t0 = now_ms();
    char *text = jit_module_asm(jit, m, &err);
    double t_asm = now_ms() - t0;
    CHECK(text != NULL);
    printf("%s kernels:\n", sfx);
    if (text) check_asm(text, sfx);
    free(text);
    t0 = now_ms();
    CHECK(jit_add_module_take(jit, m, &err) != NULL);  // m is the JIT's now
    // The first lookup generates the machine code of the whole module.
    must_lookup(jit, "axpexp", sfx);
    double t_jit = now_ms() - t0;
    printf("  compile times (5 kernels): IR build %.2f ms, optimisation %.2f ms, "
           "codegen+lookup %.2f ms (assembly listing %.2f ms)\n",
           t_build, t_opt, t_jit, t_asm);
    if (real == IRB_F32)
      run_f32(jit);
    else
      run_f64(jit);
  }
  if (err.len) fprintf(stderr, "%s", sb_str(&err));
  CHECK(jit_free(jit, &err));
  sb_free(&err);
  return check_report("test_backend_irb");
}

// The fused products (PS_FUSED, runtime/src/kernel_fused.c) against the reference
// interpreter: u_v = Xi' softmax(beta Xi v) (Model B with h eliminated) and the additive
// u_v = Xi' F'(Xi v) (F' = relu^2 and exp), through the eval kernel (dx_v/dt = u_v - v and
// the reduced energy E), at sizes that cross every threshold and block edge: K below one
// block, K not a multiple of the block (N odd), one block exactly, several blocks, a weight
// above the one-thread size (several threads); B = 1 (the one-sample products), B = 5 (the
// four-sample products and a remainder), B = 40, and B = 130 at N = 4100 (above the fused
// batch limit of `auto`, g [B, N] over 2 MiB: the BLAS path of the same call); --kernels
// fused and auto; float64 and float32. E also from the energy kernel (one product fused with
// its log-sum-exp or sum, FUSED_LSE / FUSED_SUM). The same with K a runtime dim (the kernels' argument,
// damc capacity): one engine compiled at the first K, the weight bound again with every other
// K of a sweep that crosses the same edges, nothing compiled again; and with --kernels blas.
//
// Tolerances. float64: 1e-12 relative to the vector's largest element (as test_engine_jit).
// float32, derived from the order of the sums (the fused kernel adds the products in another
// order than the interpreter, and the online softmax rescales): with z_k = Xi_k . v,
// Z_k = sum_n |Xi_kn v_n| and eps = 2^-23,
//   |dz_k| <= N eps Z_k (a dot product in any order, FMA or not);
//   p_k = exp(beta z_k - m) / l: relative error <= |beta| (|dz_k| + max_j |dz_j|) + 2 eps
//     (exp's polynomial) + (blocks + 2) eps (one rescaling by exp(m_old - m_new) per block
//     and the division by l) + K eps (the sum l);
//   u_n = sum_k p_k Xi_kn: |du_n| <= sum_k p_k |Xi_kn| (K eps + the relative error of p_k).
// So the test's bound for u_n is eps S_n (2 K + blocks + 8 + 2 |beta| N max_k Z_k) with
// S_n = sum_k p_k |Xi_kn|, computed in float64. Additive: |du_n| <= eps sum_k |Xi_kn|
// (|F'(z_k)| (K + 4) + |F''(z_k)| N Z_k). The energy: E = -lse(beta z)/beta + |v|^2/2
// (softmax) or -sum_k F(z_k) + |v|^2/2: |dE| <= eps (2 N max Z + (2K + blocks + 8)/|beta| +
// N |v|^2 + |E|) (softmax), eps ((K + 4) sum |F| + sum |F'| N Z + N |v|^2) (additive).
#include "derive_fixture.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

static const double EPS32 = 1.1920928955078125e-07;

typedef enum { SOFTMAX, RELU2, EXPO } Kind;

// The model; K without a size (bound by the weight) when k is 0.
static const char *model_text(Kind kind, int64_t n, int64_t k, char *buf, size_t len) {
  static const char *const hidden[] = {
      "lagr_softmax(h, beta)", "sum(relu(h)^3) / 3", "sum(exp(h))"};
  char kdim[40] = "dim K;";
  if (k) snprintf(kdim, sizeof kdim, "dim K = %lld;", (long long)k);
  snprintf(buf, len,
           "dim N = %lld;\n%s\nparam beta = 0.7;\n"
           "layer v[N] { L = lagr_identity(v); }\n"
           "layer h[K] { L = %s; tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n",
           (long long)n, kdim, hidden[kind]);
  return buf;
}

static const double *result(const EngineResults *r, const char *name) {
  for (size_t i = 0; i < r->count; i++)
    if (!strcmp(r->items[i].name, name)) return r->items[i].tensor->data;
  return NULL;
}

// F, F' and F'' of the additive layers, at z.
static void additive(Kind kind, double z, double *f, double *f1, double *f2) {
  if (kind == RELU2) {
    double r = z > 0 ? z : 0;
    *f = r * r * r / 3, *f1 = r * r, *f2 = 2 * r;
  } else {
    *f = *f1 = *f2 = exp(z);
  }
}

// The number of fused steps in the plans of `e` (rhs and eval), and the rule's thread count,
// its weight size for one thread (a runtime K) and batch limit.
static int64_t max_batch, one_thread_bytes;
static int fused_steps(const Engine *e, int *threads) {
  int count = 0;
  for (int kind = 0; kind < KERNEL_MODEL_KINDS; kind++) {
    const Plan *p = engine_plan(e, (KernelKind)kind);
    for (int i = 0; p && i < p->nsteps; i++)
      if (p->steps[i].kind == PS_FUSED) {
        count++;
        *threads = p->steps[i].threads;
        max_batch = p->steps[i].max_batch;
        one_thread_bytes = p->steps[i].one_thread_bytes;
      }
  }
  return count;
}

// Checks the eval kernel of Model B (or its additive forms) with K = k against the
// interpreter. `shared`: an engine of the model with K a runtime dim, compiled at the first
// K of a sweep and bound again with this one (NULL: an engine of its own, K fixed).
static void check_in(Engine *shared, Kind kind, int64_t n, int64_t k, int64_t batch,
                     PlanKernels kernels, DamrtDtype dtype) {
  char text[512];
  model_text(kind, n, k, text, sizeof text);
  Fixture fx;
  bool ok = fx_open(&fx, text, 1, 1000 + (uint64_t)(n * k + batch));
  CHECK(ok);
  if (!ok) return;
  StrBuf err = {0};
  Engine *e = shared;
  EngineArray wa = {DAMRT_F64, 2, {(size_t)k, (size_t)n}, fx.weights[0]};
  if (!e) {
    e = engine_new_text("fused", text, strlen(text), NULL);
    CHECK(engine_compile(e, STAGE_DERIVE, &err));
    engine_set_kernels(e, kernels);
    engine_target(e, dtype, false);
  }
  if (engine_weight_bound(e, engine_weight_index(e, "Xi"))) CHECK(engine_rebind_weight(e, "Xi", &wa, "test", &err));
  else CHECK(engine_bind_weight(e, "Xi", &wa, "test", &err));
  CHECK(engine_compile(e, STAGE_JIT, &err));
  CHECK(engine_kernel(e, KERNEL_EVAL, &err) != NULL);
  if (err.len) fprintf(stderr, "%s", sb_str(&err));
  int threads = 0;
  CHECK(fused_steps(e, &threads) == (kernels == PLAN_KERNELS_BLAS ? 0 : 2));  // rhs and eval fuse
  int real_size = dtype == DAMRT_F32 ? 4 : 8;
  if (kernels == PLAN_KERNELS_AUTO) {
    if (shared) CHECK(threads == 64 && one_thread_bytes == 1 << 20);  // chosen at every call
    else CHECK(threads == (k * n * real_size < (1 << 20) ? 1 : 64) && one_thread_bytes == 0);
    int64_t limit = (2 << 20) / (n * real_size);
    CHECK_EQ(max_batch, limit < 32 ? 32 : limit);
  } else if (kernels == PLAN_KERNELS_FUSED) {
    CHECK_EQ(max_batch, INT64_MAX);
  }

  double *v = malloc(sizeof(double) * (size_t)(batch * n));
  for (int64_t i = 0; i < batch * n; i++) v[i] = fx_normal(&fx);
  EngineArray st[2] = {{DAMRT_F64, 2, {(size_t)batch, (size_t)n}, v}, {0}}, in[2] = {{0}, {0}};
  EngineArrays arrays = {st, in, NULL, NULL};
  EngineResults r = {0};
  CHECK(engine_eval(e, &arrays, &r, &err));
  const double *dxdt = result(&r, "dxdt_v"), *E = result(&r, "E");
  CHECK(dxdt && E);
  if (!dxdt || !E) return;
  // The energy kernel: one product, fused with the log-sum-exp or the sum that follows it.
  EngineResults re = {0};
  CHECK(engine_apply(e, KERNEL_ENERGY, &arrays, &re, &err));
  const double *E1 = result(&re, "E");
  CHECK(E1 != NULL);
  if (!E1) return;
  const Plan *ep = engine_plan(e, KERNEL_ENERGY);
  int energy_fused = 0;
  for (int i = 0; i < ep->nsteps; i++)
    energy_fused += ep->steps[i].kind == PS_FUSED &&
                    ep->steps[i].mode == (kind == SOFTMAX ? FUSED_LSE : FUSED_SUM);
  CHECK(energy_fused == (kernels == PLAN_KERNELS_BLAS ? 0 : 1));

  const double beta = 0.7, *xi = fx.weights[0];
  // The blocks: 128 KiB of W (8 to 256 rows, a multiple of 8, at most K when K is fixed).
  // The online softmax rescales at most once per block, or per group of rows at B = 1 (about
  // 16 KiB, at least 8 rows): the bound counts groups, the more numerous.
  const Plan *rp = engine_plan(e, KERNEL_RHS);
  for (int i = 0; kernels != PLAN_KERNELS_BLAS && i < rp->nsteps; i++) {
    if (rp->steps[i].kind != PS_FUSED) continue;
    int64_t want = 131072 / (n * real_size);
    want = want < 8 ? 8 : want > 256 ? 256 : want - want % 8;
    if (!shared && want > k) want = k;
    CHECK_EQ(rp->steps[i].rows, want);
  }
  int64_t rows = 16384 / (n * real_size) / 4 * 4;
  rows = rows < 8 ? 8 : rows;
  if (rows > k) rows = k;
  double blocks = (double)((k + rows - 1) / rows);
  double *want = malloc(sizeof(double) * (size_t)n), *z = malloc(sizeof(double) * (size_t)k);
  double *zabs = malloc(sizeof(double) * (size_t)k), *p = malloc(sizeof(double) * (size_t)k);
  double worst = 0;
  for (int64_t b = 0; b < batch; b++) {
    memcpy(fx.states[0], v + b * n, sizeof(double) * (size_t)n);
    fx_eval(&fx, fx.net->reduced_dxdt[0], want);
    double want_e = fx_eval_scalar(&fx, fx.net->reduced_energy_x);
    // The bounds' ingredients, in float64.
    double zmax = 0, m = -INFINITY, l = 0, vv = 0, fsum = 0, f1z = 0;
    for (int64_t i = 0; i < n; i++) vv += v[b * n + i] * v[b * n + i];
    for (int64_t q = 0; q < k; q++) {
      z[q] = zabs[q] = 0;
      for (int64_t i = 0; i < n; i++) {
        z[q] += xi[q * n + i] * v[b * n + i];
        zabs[q] += fabs(xi[q * n + i] * v[b * n + i]);
      }
      zmax = fmax(zmax, zabs[q]);
      m = fmax(m, beta * z[q]);
    }
    for (int64_t q = 0; q < k; q++) l += exp(beta * z[q] - m);
    for (int64_t q = 0; q < k; q++) p[q] = exp(beta * z[q] - m) / l;
    double inf = 0;
    for (int64_t i = 0; i < n; i++) inf = fmax(inf, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
      double got = dxdt[b * n + i], err_i = fabs(got - want[i]), bound;
      if (dtype == DAMRT_F64) {
        bound = 1e-12 * fmax(inf, 1e-300);
      } else if (kind == SOFTMAX) {
        double s = 0;
        for (int64_t q = 0; q < k; q++) s += p[q] * fabs(xi[q * n + i]);
        // dx/dt = u - v adds one rounding of |u| + |v|.
        bound = EPS32 * (s * (2 * (double)k + blocks + 8 + 2 * beta * (double)n * zmax) +
                         fabs(want[i]) + fabs(v[b * n + i]));
      } else {
        double s = 0, f, f1, f2;
        for (int64_t q = 0; q < k; q++) {
          additive(kind, z[q], &f, &f1, &f2);
          s += fabs(xi[q * n + i]) * (fabs(f1) * ((double)k + 4) + fabs(f2) * (double)n * zabs[q]);
        }
        bound = EPS32 * (s + fabs(want[i]) + fabs(v[b * n + i]));
      }
      worst = fmax(worst, err_i / bound);
      if (err_i > bound)
        fprintf(stderr, "  dxdt_v[%lld, %lld]: interpreter %.17g, kernel %.17g, bound %.3g\n",
                (long long)b, (long long)i, want[i], got, bound);
    }
    double bound_e;
    if (dtype == DAMRT_F64) {
      bound_e = 1e-12 * fmax(fabs(want_e), 0.5 * vv + fabs(m) / beta);
    } else if (kind == SOFTMAX) {
      bound_e = EPS32 * (2 * (double)n * zmax + (2 * (double)k + blocks + 8) / beta +
                         (double)n * vv + fabs(want_e));
    } else {
      for (int64_t q = 0; q < k; q++) {
        double f, f1, f2;
        additive(kind, z[q], &f, &f1, &f2);
        fsum += fabs(f);
        f1z += fabs(f1) * (double)n * zabs[q];
      }
      bound_e = EPS32 * (((double)k + 4) * fsum + f1z + (double)n * vv + fabs(want_e));
    }
    // E from eval, then from the energy kernel (the same terms, the same bound).
    for (int which = 0; which < 2; which++) {
      double got = which ? E1[b] : E[b], err_e = fabs(got - want_e);
      worst = fmax(worst, err_e / bound_e);
      if (err_e > bound_e)
        fprintf(stderr, "  %s E[%lld]: interpreter %.17g, kernel %.17g, bound %.3g\n",
                which ? "energy" : "eval", (long long)b, want_e, got, bound_e);
    }
  }
  engine_results_free(&re);
  CHECK(worst <= 1);
  static const char *const names[] = {"softmax", "relu^2", "exp"};
  printf("%-7s N=%-4lld K=%-5lld B=%-3lld %-5s %s%s%s: max error / bound %.3f\n", names[kind],
         (long long)n, (long long)k, (long long)batch, plan_kernels_name(kernels),
         dtype == DAMRT_F32 ? "f32" : "f64", shared ? " runtime K" : "",
         kernels != PLAN_KERNELS_BLAS && batch > max_batch ? " (BLAS path)" : "", worst);
  free(want);
  free(z);
  free(zabs);
  free(p);
  free(v);
  engine_results_free(&r);
  if (!shared) engine_free(e);
  sb_free(&err);
  fx_close(&fx);
}

static void check(Kind kind, int64_t n, int64_t k, int64_t batch, PlanKernels kernels,
                  DamrtDtype dtype) {
  check_in(NULL, kind, n, k, batch, kernels, dtype);
}

// One engine with K a runtime dim, compiled at the first K of `ks` and run at each.
static void check_sweep(Kind kind, int64_t n, const int64_t *ks, int nk, int64_t batch,
                        PlanKernels kernels, DamrtDtype dtype) {
  char text[512];
  model_text(kind, n, 0, text, sizeof text);
  StrBuf err = {0};
  Engine *e = engine_new_text("runtime", text, strlen(text), NULL);
  CHECK(engine_compile(e, STAGE_DERIVE, &err));
  engine_set_kernels(e, kernels);
  engine_target(e, dtype, false);
  engine_vary_dim(e, engine_network(e)->layers[engine_layer_index(e, "h")].dim);
  unsigned compiles = 0;
  for (int i = 0; i < nk; i++) {
    check_in(e, kind, n, ks[i], batch, kernels, dtype);
    if (i == 0) compiles = engine_compile_count(e);  // rhs, eval, energy
    CHECK(compiles == 3 && engine_compile_count(e) == compiles);  // nothing again
  }
  engine_free(e);
  sb_free(&err);
}

// --kernels blas keeps the two products as gemm steps: no fused step in either plan.
static void check_blas_plan(void) {
  char text[512];
  model_text(SOFTMAX, 9, 20, text, sizeof text);
  StrBuf err = {0};
  Engine *e = engine_new_text("blas", text, strlen(text), NULL);
  CHECK(engine_compile(e, STAGE_DERIVE, &err));
  double xi[180] = {0};
  EngineArray wa = {DAMRT_F64, 2, {20, 9}, xi};
  CHECK(engine_bind_weight(e, "Xi", &wa, "test", &err));
  engine_set_kernels(e, PLAN_KERNELS_BLAS);
  engine_target(e, DAMRT_F64, false);
  CHECK(engine_compile(e, STAGE_PLAN, &err));
  int threads = 0;
  CHECK(fused_steps(e, &threads) == 0);
  engine_free(e);
  sb_free(&err);
}

int main(void) {
  static const int64_t sizes[][2] = {
      {5, 3},      // K below one block, N below one vector
      {37, 301},   // N odd; K crosses a block edge (256 rows) and is no multiple
      {64, 256},   // one block of f32 exactly, N a multiple of the vectors
      {33, 1000},  // several blocks, a partial last one
      {129, 2100}, // the weight above 1 MiB (f32) and 2 MiB (f64): several threads in auto
  };
  static const int64_t batches[] = {1, 5, 40};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
      for (int d = 0; d < 2; d++) {
        DamrtDtype dtype = d ? DAMRT_F32 : DAMRT_F64;
        check(SOFTMAX, sizes[s][0], sizes[s][1], batches[b], PLAN_KERNELS_FUSED, dtype);
        check(SOFTMAX, sizes[s][0], sizes[s][1], batches[b], PLAN_KERNELS_AUTO, dtype);
        if (s == 1 || s == 4) {
          check(RELU2, sizes[s][0], sizes[s][1], batches[b], PLAN_KERNELS_FUSED, dtype);
          check(EXPO, sizes[s][0], sizes[s][1], batches[b], PLAN_KERNELS_AUTO, dtype);
        }
      }
  for (int d = 0; d < 2; d++) {  // above auto's batch limit: the BLAS path of the fused call
    check(SOFTMAX, 4100, 9, 130, PLAN_KERNELS_AUTO, d ? DAMRT_F32 : DAMRT_F64);
    check(RELU2, 4100, 9, 130, PLAN_KERNELS_AUTO, d ? DAMRT_F32 : DAMRT_F64);
  }
  check_blas_plan();
  // K as the kernels' argument: from below one block to several threads and back, so that
  // one compiled kernel meets every edge (block rows 256 at N = 37; the one-thread rule's
  // 1 MiB at K = 7085 f32 and 3543 f64).
  static const int64_t ks[] = {300, 1, 7, 104, 105, 255, 256, 257, 4000, 8000, 33};
  for (int d = 0; d < 2; d++) {
    DamrtDtype dtype = d ? DAMRT_F32 : DAMRT_F64;
    for (int kernels = 0; kernels < 3; kernels++)
      check_sweep(SOFTMAX, 37, ks, 11, 5, (PlanKernels)kernels, dtype);
    check_sweep(RELU2, 37, ks, 11, 1, PLAN_KERNELS_AUTO, dtype);
    check_sweep(EXPO, 301, ks + 1, 4, 40, PLAN_KERNELS_FUSED, dtype);
  }
  return check_report("test_engine_fused");
}

// The C API (include/damc.h) end to end, as a client sees it: models from text and from a
// file, layers, weights bound in float64 and float32, params, compile, eval against closed
// forms computed here, run to a fixed point that eval confirms, errors as values, two models
// in one process, and the enumeration of results.
//
// The models: Model B with its memories eliminated (tau_h = 0), whose energy is
//   E = |v|^2 / 2 - I . v - lse(beta Xi v) / beta,
// g_h = softmax(beta Xi v), u_v = I + Xi' g_h, u_h = Xi v, dxdt_v = u_v - v; and the classic
// Hopfield network (examples/hopfield_classic.dam), g = tanh(beta x),
//   E = sum_i (x_i g_i - log cosh(beta x_i) / beta) - g' T g / 2 - I . g,  u = I + T g.
//
// Tolerances (relative to max(1, |want|), the CHECK_NEAR convention, unless stated):
//   F64_TOL = 1e-12: float64 kernels against the closed form in double. Both sides round a
//     few dozen operations (sums of at most 8 terms, exp, log, tanh), each within a few ulps
//     (2.2e-16); 1e-12 leaves a margin of over 100 on the worst case measured (printed).
//   F32_DATA_TOL = 2e-6: an f64 model given the same weights as float32 data against float64
//     data: the data differ by the rounding to float32 (at most 2^-24 = 6e-8 relative per
//     element); with beta = 2 and |v| <= 3 the softmax amplifies that by at most
//     beta |v| |Xi| ~ 2 * 3 * 3 = 18, so ~1.1e-6 in the worst case, and 2e-6 bounds it.
//     Against float64 data already rounded to float32 the agreement is exact (float to double
//     is exact and the kernels are the same).
//   F32_TOL = 4e-6: float32 kernels against the closed form: the inputs rounded to float32
//     move the results by up to ~1.1e-6 (as above), and each result is a few dozen float32
//     roundings (6e-8 each) from the exact value at those inputs: ~2e-6 at worst; 4e-6.
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "damc.h"

#define F64_TOL 1e-12
#define F32_DATA_TOL 2e-6
#define F32_TOL 4e-6

enum { N = 8, K = 4 };

static const char model_b_text[] =
    "model mb;\n"
    "dim N = 8;\n"
    "dim K;\n"
    "param beta = 8.0;\n"
    "layer v[N] { L = lagr_identity(v); tau = 1.0; }\n"
    "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0; }\n"
    "synapse Xi[K, N] : h <-> v;\n"
    "input v;\n";

static const char *src_dir = ".";

// Arrays a model reads in place must outlive it: kept here, freed at the end of main.
static void *kept[64];
static int nkept;
static void *keep(void *p) {
  if (nkept < 64) kept[nkept++] = p;
  return p;
}
static double worst_f64, worst_f32_data, worst_f32;

// ---- Deterministic data ----

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) / 9007199254740992.0;
}
static double normal(void) {
  double u = uniform() + 1e-300, v = uniform();
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}
static void fill_normal(double *x, size_t n, double scale) {
  for (size_t i = 0; i < n; i++) x[i] = scale * normal();
}

// Row `r` of the 8 x 8 Sylvester Hadamard matrix: entries +-1, rows mutually orthogonal.
static double hadamard(int r, int c) { return __builtin_popcount((unsigned)(r & c)) % 2 ? -1 : 1; }

// ---- Closed forms ----

typedef struct {
  double E, E_v, E_h;
  double g_h[K], u_v[N], u_h[K], dxdt_v[N];
} ModelB;

// Model B, h eliminated, at state v with input I (NULL: none), k memories Xi[k, N].
static ModelB model_b_closed(const double *xi, int k, double beta, const double *v,
                             const double *I) {
  ModelB r = {0};
  double z[K], zmax = -INFINITY, s = 0, vv = 0, iv = 0;
  for (int m = 0; m < k; m++) {
    r.u_h[m] = 0;
    for (int i = 0; i < N; i++) r.u_h[m] += xi[m * N + i] * v[i];
    z[m] = beta * r.u_h[m];
    zmax = fmax(zmax, z[m]);
  }
  for (int m = 0; m < k; m++) s += exp(z[m] - zmax);
  double lse = zmax + log(s);
  for (int m = 0; m < k; m++) r.g_h[m] = exp(z[m] - lse);
  for (int i = 0; i < N; i++) {
    r.u_v[i] = I ? I[i] : 0;
    for (int m = 0; m < k; m++) r.u_v[i] += xi[m * N + i] * r.g_h[m];
    r.dxdt_v[i] = r.u_v[i] - v[i];
    vv += v[i] * v[i];
    iv += I ? I[i] * v[i] : 0;
  }
  r.E_v = 0.5 * vv - iv;
  r.E_h = -lse / beta;
  for (int m = 0; m < k; m++) r.E_h += r.u_h[m] * r.g_h[m];  // Lambda_h(u_h)
  r.E = r.E_v - lse / beta;
  return r;
}

// The classic Hopfield energy at x (n neurons, T[n, n], beta, input I or NULL), and g.
static double hopfield_energy(const double *T, int n, double beta, const double *x,
                              const double *I, double *g) {
  double e = 0;
  for (int i = 0; i < n; i++) {
    g[i] = tanh(beta * x[i]);
    e += x[i] * g[i] - log(cosh(beta * x[i])) / beta - (I ? I[i] * g[i] : 0);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) e -= 0.5 * g[i] * T[i * n + j] * g[j];
  return e;
}

// ---- Helpers ----

// |got - want| / max(1, |want|), recorded in *worst.
static double rel(double got, double want, double *worst) {
  double e = fabs(got - want) / fmax(1, fabs(want));
  if (worst && e > *worst) *worst = e;
  return e;
}

static void check_vec(const DamcResults *r, const char *name, const double *want, size_t n,
                      double tol, double *worst) {
  size_t count = 0;
  const double *got = damc_result(r, name, &count);
  CHECK(got != NULL);
  CHECK_EQ(count, n);
  if (!got || count != n) return;
  for (size_t i = 0; i < n; i++) {
    double e = rel(got[i], want[i], worst);
    if (!(e <= tol)) {
      fprintf(stderr, "%s[%zu] = %.17g, want %.17g (error %.3g > %.3g)\n", name, i, got[i],
              want[i], e, tol);
      check_failures++;
    }
    check_count++;
  }
}

static double result1(const DamcResults *r, const char *name, size_t i) {
  size_t count = 0;
  const double *p = damc_result(r, name, &count);
  return p && i < count ? p[i] : NAN;
}

static bool contains(const DamcError *err, const char *needle) {
  bool ok = err->message && strstr(err->message, needle);
  if (!ok)
    fprintf(stderr, "message lacks \"%s\": %s\n", needle, err->message ? err->message : "(null)");
  return ok;
}

// Model B from text with Xi (k rows) bound, beta set, compiled in `precision`; NULL on error.
static DamcModel *model_b(const double *xi, int k, DamcPrecision data, double beta,
                          DamcPrecision precision) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string("mb.dam", model_b_text, &err);
  if (!m) {
    fprintf(stderr, "%s", err.message);
    damc_error_clear(&err);
    return NULL;
  }
  float *xf = NULL;
  DamcArray w = {2, {(size_t)k, N}, xi, DAMC_F64};
  if (data == DAMC_F32) {
    // Converted once at compile (float64 kernels) or read in place (float32 kernels): kept
    // alive until the end of the test either way.
    xf = keep(malloc((size_t)k * N * sizeof *xf));
    for (int i = 0; i < k * N; i++) xf[i] = (float)xi[i];
    w.data = xf;
    w.dtype = DAMC_F32;
  }
  if (!damc_bind_weight(m, "Xi", &w, "test", &err) || !damc_set_param(m, "beta", beta, &err) ||
      !damc_compile(m, precision, &err)) {
    fprintf(stderr, "%s", err.message);
    damc_error_clear(&err);
    damc_model_free(m);
    return NULL;
  }
  return m;
}

// damc_eval (or `fn`: damc_energy) at one state v of layer 0 with input I.
static DamcResults *apply1(DamcResults *(*fn)(DamcModel *, const DamcBatch *, DamcError *),
                           DamcModel *m, const double *v, const double *I, size_t n) {
  DamcArray states[2] = {{1, {n}, v, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcArray inputs[2] = {{1, {n}, I, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch b = {states, I ? inputs : NULL, NULL};
  DamcError err = {0};
  DamcResults *r = fn(m, &b, &err);
  if (!r) fprintf(stderr, "damc_eval/damc_energy: %s", err.message);
  damc_error_clear(&err);
  return r;
}

static DamcResults *eval1(DamcModel *m, const double *v, const double *I, size_t n) {
  return apply1(damc_eval, m, v, I, n);
}

// ---- Tests ----

// Loading, layers, sizes before and after binding.
static void test_load_and_layers(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string("mb.dam", model_b_text, &err);
  CHECK(m != NULL);
  CHECK_EQ(err.status, 0);
  CHECK(err.message == NULL);
  if (!m) return;
  CHECK_EQ(damc_layer_count(m), 2);
  CHECK_STREQ(damc_layer_name(m, 0), "v");
  CHECK_STREQ(damc_layer_name(m, 1), "h");
  CHECK_EQ(damc_layer_size(m, 0), N);  // dim N = 8 is declared
  CHECK_EQ(damc_layer_size(m, 1), 0);  // K is unbound until Xi is bound
  double xi[3 * N] = {0};
  DamcArray w = {2, {3, N}, xi, DAMC_F64};
  CHECK(damc_bind_weight(m, "Xi", &w, NULL, &err));
  CHECK_EQ(damc_layer_size(m, 1), 3);  // K = 3 from Xi's shape
  damc_model_free(m);

  // From a file: the example classic Hopfield network; N is bound by T.
  char path[4096];
  snprintf(path, sizeof path, "%s/examples/hopfield_classic.dam", src_dir);
  m = damc_model_from_file(path, &err);
  CHECK(m != NULL);
  if (m) {
    CHECK_EQ(damc_layer_count(m), 1);
    CHECK_STREQ(damc_layer_name(m, 0), "v");
    CHECK_EQ(damc_layer_size(m, 0), 0);
    damc_model_free(m);
  }
  damc_model_free(NULL);  // a no-op, like free
}

// Eval of Model B against its closed form: float64 and float32 data, float64 and float32
// kernels; beta set through damc_set_param.
static void test_eval_closed_form(void) {
  double xi[K * N], v[N], I[N];
  fill_normal(xi, K * N, 1 / sqrt(N));
  fill_normal(v, N, 1);
  fill_normal(I, N, 0.1);
  const double beta = 2;  // set, replacing the default 8
  ModelB want = model_b_closed(xi, K, beta, v, I);

  DamcModel *m64 = model_b(xi, K, DAMC_F64, beta, DAMC_F64);
  CHECK(m64 != NULL);
  if (!m64) return;
  CHECK_EQ(damc_layer_size(m64, 1), K);
  DamcResults *r = eval1(m64, v, I, N);
  CHECK(r != NULL);
  if (r) {
    CHECK(rel(result1(r, "E", 0), want.E, &worst_f64) <= F64_TOL);
    CHECK(rel(result1(r, "E_v", 0), want.E_v, &worst_f64) <= F64_TOL);
    CHECK(rel(result1(r, "E_h", 0), want.E_h, &worst_f64) <= F64_TOL);
    check_vec(r, "g_v", v, N, F64_TOL, &worst_f64);  // g = v (lagr_identity)
    check_vec(r, "g_h", want.g_h, K, F64_TOL, &worst_f64);
    check_vec(r, "u_v", want.u_v, N, F64_TOL, &worst_f64);
    check_vec(r, "u_h", want.u_h, K, F64_TOL, &worst_f64);
    check_vec(r, "dxdt_v", want.dxdt_v, N, F64_TOL, &worst_f64);
    // The eliminated layer does not move: no dxdt_h; its state is reported as u_h.
    CHECK(damc_result(r, "dxdt_h", NULL) == NULL);
    CHECK(damc_result(r, "x_h", NULL) == NULL);
    CHECK(damc_result(r, "no such result", NULL) == NULL);
  }
  damc_results_free(r);
  // The energy alone (the reduced energy, one fused pass over Xi): E and g_v, nothing else.
  r = apply1(damc_energy, m64, v, I, N);
  CHECK(r != NULL);
  if (r) {
    CHECK(rel(result1(r, "E", 0), want.E, &worst_f64) <= F64_TOL);
    check_vec(r, "g_v", v, N, F64_TOL, &worst_f64);
    CHECK_EQ(damc_results_count(r), 2);
  }
  damc_results_free(r);

  // A float64 model given float32 data (converted once at compile) agrees with the same
  // model given float64 data to the rounding of the data; and exactly with float64 data
  // that is already that rounding.
  double xi_rounded[K * N];
  for (int i = 0; i < K * N; i++) xi_rounded[i] = (float)xi[i];
  DamcModel *m32d = model_b(xi, K, DAMC_F32, beta, DAMC_F64);
  DamcModel *mrd = model_b(xi_rounded, K, DAMC_F64, beta, DAMC_F64);
  CHECK(m32d && mrd);
  if (m32d && mrd) {
    DamcResults *a = eval1(m32d, v, I, N), *b = eval1(mrd, v, I, N), *c = eval1(m64, v, I, N);
    CHECK(a && b && c);
    if (a && b && c) {
      CHECK_EQ(damc_results_count(a), damc_results_count(c));
      for (size_t i = 0; i < damc_results_count(a); i++) {
        DamcArray x, y, z;
        const char *name = damc_results_at(a, i, &x);
        CHECK_STREQ(damc_results_at(b, i, &y), name);
        CHECK_STREQ(damc_results_at(c, i, &z), name);
        size_t count = 1;
        for (int d = 0; d < x.rank; d++) count *= x.shape[d];
        for (size_t k = 0; k < count; k++) {
          double xv = ((const double *)x.data)[k], yv = ((const double *)y.data)[k],
                 zv = ((const double *)z.data)[k];
          CHECK(xv == yv);  // float -> double is exact; the same kernels
          CHECK(rel(xv, zv, &worst_f32_data) <= F32_DATA_TOL);
        }
      }
    }
    damc_results_free(a);
    damc_results_free(b);
    damc_results_free(c);
  }
  damc_model_free(m32d);
  damc_model_free(mrd);

  // Float32 kernels (float32 data used in place; float64 states converted) against the
  // closed form.
  DamcModel *m32 = model_b(xi, K, DAMC_F32, beta, DAMC_F32);
  CHECK(m32 != NULL);
  if (m32) {
    // A float32 state too: the batch arrays take either dtype.
    float vf[N];
    for (int i = 0; i < N; i++) vf[i] = (float)v[i];
    DamcArray states[2] = {{1, {N}, vf, DAMC_F32}, {0, {0}, NULL, 0}};
    DamcArray inputs[2] = {{1, {N}, I, DAMC_F64}, {0, {0}, NULL, 0}};
    DamcBatch b = {states, inputs, NULL};
    DamcError err = {0};
    r = damc_eval(m32, &b, &err);
    CHECK(r != NULL);
    if (r) {
      CHECK(rel(result1(r, "E", 0), want.E, &worst_f32) <= F32_TOL);
      check_vec(r, "g_h", want.g_h, K, F32_TOL, &worst_f32);
      check_vec(r, "u_v", want.u_v, N, F32_TOL, &worst_f32);
      check_vec(r, "dxdt_v", want.dxdt_v, N, F32_TOL, &worst_f32);
    }
    damc_results_free(r);
    r = damc_energy(m32, &b, &err);
    CHECK(r != NULL);
    if (r) CHECK(rel(result1(r, "E", 0), want.E, &worst_f32) <= F32_TOL);
    damc_results_free(r);
    damc_error_clear(&err);
    damc_model_free(m32);
  }

  // A param set after compiling takes effect at the next call (params are run-time
  // scalars): beta = 5 now.
  DamcError err = {0};
  CHECK(damc_set_param(m64, "beta", 5, &err));
  ModelB want5 = model_b_closed(xi, K, 5, v, I);
  r = eval1(m64, v, I, N);
  CHECK(r != NULL);
  if (r) {
    CHECK(rel(result1(r, "E", 0), want5.E, &worst_f64) <= F64_TOL);
    check_vec(r, "g_h", want5.g_h, K, F64_TOL, &worst_f64);
  }
  damc_results_free(r);
  damc_model_free(m64);
}

// The classic Hopfield network from its example file: eval against the closed form.
static DamcModel *hopfield(const double *T, int n, DamcError *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/examples/hopfield_classic.dam", src_dir);
  DamcModel *m = damc_model_from_file(path, err);
  if (!m) return NULL;
  DamcArray w = {2, {(size_t)n, (size_t)n}, T, 0};  // dtype 0: float64
  if (!damc_bind_weight(m, "T", &w, "T.npy", err) || !damc_compile(m, DAMC_F64, err)) {
    damc_model_free(m);
    return NULL;
  }
  return m;
}

enum { HN = 6 };

static void symmetric_random(double *T, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) T[i * n + j] = T[j * n + i] = normal() / sqrt(n);
}

static void test_hopfield(void) {
  double T[HN * HN], x[HN], I[HN], g[HN];
  symmetric_random(T, HN);
  fill_normal(x, HN, 1);
  fill_normal(I, HN, 0.2);
  DamcError err = {0};
  DamcModel *m = hopfield(T, HN, &err);
  CHECK(m != NULL);
  if (!m) {
    fprintf(stderr, "%s", err.message);
    damc_error_clear(&err);
    return;
  }
  CHECK_EQ(damc_layer_size(m, 0), HN);
  double E = hopfield_energy(T, HN, 1, x, I, g);
  DamcResults *r = eval1(m, x, I, HN);
  CHECK(r != NULL);
  if (r) {
    CHECK(rel(result1(r, "E", 0), E, &worst_f64) <= F64_TOL);
    check_vec(r, "g_v", g, HN, F64_TOL, &worst_f64);
    double u[HN], dx[HN];
    for (int i = 0; i < HN; i++) {
      u[i] = I[i];
      for (int j = 0; j < HN; j++) u[i] += T[i * HN + j] * g[j];
      dx[i] = u[i] - x[i];  // tau = 1
    }
    check_vec(r, "u_v", u, HN, F64_TOL, &worst_f64);
    check_vec(r, "dxdt_v", dx, HN, F64_TOL, &worst_f64);
  }
  damc_results_free(r);
  damc_model_free(m);
}

// damc_set_kernels: Model B with h eliminated compiled with --kernels blas and fused gives the
// same currents and energy (float64, 1e-12 relative), and a value that is no DamcKernels is
// refused with status 2.
static void test_set_kernels(void) {
  static const char *text =
      "dim N = 13;\ndim K = 50;\nparam beta = 1.5;\nlayer v[N] { L = lagr_identity(v); }\n"
      "layer h[K] { L = lagr_softmax(h, beta); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n";
  static double xi[50 * 13], v[13];
  fill_normal(xi, 50 * 13, 0.3);
  fill_normal(v, 13, 1);
  const DamcKernels kinds[2] = {DAMC_KERNELS_BLAS, DAMC_KERNELS_FUSED};
  DamcResults *r[2] = {NULL, NULL};
  DamcModel *m[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    DamcError err = {0};
    m[i] = damc_model_from_string("kernels.dam", text, &err);
    DamcArray w = {2, {50, 13}, xi, DAMC_F64};
    CHECK(m[i] && damc_bind_weight(m[i], "Xi", &w, NULL, &err));
    CHECK(m[i] && !damc_set_kernels(m[i], (DamcKernels)7, &err) && err.status == 2);
    damc_error_clear(&err);
    CHECK(m[i] && damc_set_kernels(m[i], kinds[i], &err) && damc_compile(m[i], DAMC_F64, &err));
    damc_error_clear(&err);
    if (m[i]) r[i] = eval1(m[i], v, NULL, 13);
    CHECK(r[i] != NULL);
  }
  if (r[0] && r[1]) {
    size_t n = 0;
    check_vec(r[1], "u_v", damc_result(r[0], "u_v", &n), 13, F64_TOL, &worst_f64);
    CHECK(rel(result1(r[1], "E", 0), result1(r[0], "E", 0), &worst_f64) <= F64_TOL);
  }
  for (int i = 0; i < 2; i++) {
    damc_results_free(r[i]);
    damc_model_free(m[i]);
  }
}

// Run Model B (h eliminated) from corrupted patterns to convergence: the final states are
// fixed points that eval confirms, and the patterns are retrieved.
static void test_run_fixed_point(void) {
  // Four orthogonal +-1 patterns (Hadamard rows 1, 2, 5, 6); beta = 2. At a stored pattern
  // the other overlaps are 0 against 8, so their softmax weights are e^-16 = 1.1e-7: the
  // fixed point is the pattern to within 3 * 1.1e-7 per neuron (|Xi| entries are 1).
  static const int rows[K] = {1, 2, 5, 6};
  double xi[K * N], v0[2 * N];
  for (int m = 0; m < K; m++)
    for (int i = 0; i < N; i++) xi[m * N + i] = hadamard(rows[m], i);
  for (int i = 0; i < N; i++) {
    v0[i] = xi[2 * N + i] * (i == 3 ? -1 : 1);          // pattern 2, one sign flipped
    v0[N + i] = 0.5 * xi[0 * N + i] * (i < 2 ? -1 : 1);  // pattern 0, two flipped, halved
  }
  DamcModel *m = model_b(xi, K, DAMC_F64, 2, DAMC_F64);
  CHECK(m != NULL);
  if (!m) return;
  DamcArray states[2] = {{2, {2, N}, v0, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch b = {states, NULL, NULL};
  DamcError err = {0};
  DamcResults *start = damc_eval(m, &b, &err);
  DamcResults *r = damc_run(m, &b, NULL, &err);  // defaults: dopri5, tol 1e-6 (float64)
  CHECK(r != NULL && start != NULL);
  if (!r || !start) {
    fprintf(stderr, "%s", err.message ? err.message : "");
    damc_error_clear(&err);
    damc_results_free(r);
    damc_results_free(start);
    damc_model_free(m);
    return;
  }
  // Results of a run: x and g of each layer (the eliminated h too), E, steps, converged.
  static const char *const names[] = {"x_v", "g_v", "x_h", "g_h", "E", "steps", "converged"};
  CHECK_EQ(damc_results_count(r), 7);
  for (size_t i = 0; i < 7 && i < damc_results_count(r); i++) {
    DamcArray a;
    CHECK_STREQ(damc_results_at(r, i, &a), names[i]);
  }
  size_t count;
  const double *x = damc_result(r, "x_v", &count);
  CHECK_EQ(count, 2 * N);
  for (int s = 0; s < 2; s++) {
    CHECK(result1(r, "converged", (size_t)s) == 1);
    CHECK(result1(r, "steps", (size_t)s) >= 1 && result1(r, "steps", (size_t)s) < 10000);
    // The energy went down along the flow (docs/theory.md eq. 1.4).
    CHECK(result1(r, "E", (size_t)s) < result1(start, "E", (size_t)s));
  }
  // Retrieval: pattern 2 and pattern 0, each to within 1e-5 (the fixed point's distance from
  // the pattern, 3.4e-7, plus the distance left when |dx/dt| < 1e-6 stopped the run: near the
  // fixed point the update map's Jacobian is ~e^-16, so |x - x*| ~ |dx/dt| <= 1e-6).
  double far = 0;
  for (int i = 0; i < N; i++) {
    far = fmax(far, fabs(x[i] - xi[2 * N + i]));
    far = fmax(far, fabs(x[N + i] - xi[0 * N + i]));
  }
  CHECK(far < 1e-5);
  // A fixed point: eval at the final state gives |dx/dt| below the run's tolerance, and the
  // same E as the run (the same eval kernel on the same state: equal to rounding).
  DamcArray fin[2] = {{2, {2, N}, x, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch fb = {fin, NULL, NULL};
  DamcResults *ev = damc_eval(m, &fb, &err);
  CHECK(ev != NULL);
  if (ev) {
    const double *dx = damc_result(ev, "dxdt_v", &count);
    CHECK_EQ(count, 2 * N);
    double most = 0;
    for (size_t i = 0; dx && i < count; i++) most = fmax(most, fabs(dx[i]));
    CHECK(most < 1e-6);
    for (size_t s = 0; s < 2; s++) CHECK_NEAR(result1(ev, "E", s), result1(r, "E", s), 1e-12);
    printf("run: %g and %g steps, |x - pattern| <= %.2g, |dx/dt| at the end %.2g\n",
           result1(r, "steps", 0), result1(r, "steps", 1), far, most);
  }
  damc_results_free(ev);
  damc_results_free(r);
  damc_results_free(start);
  damc_model_free(m);
}

// Every failure is a value, with a status and a message.
static void test_errors(void) {
  DamcError err = {0};
  // A malformed model: NULL, status 1, the message located as name:line:col.
  DamcModel *m = damc_model_from_string(
      "bad.dam", "model m;\ndim N = 4;\nlayer v[N] { L = frobnicate(v); tau = 1; }\n", &err);
  CHECK(m == NULL);
  CHECK_EQ(err.status, 1);
  // 'frobnicate' starts after the 17 characters "layer v[N] { L = " of line 3.
  CHECK(contains(&err, "bad.dam:3:18: error: unknown function 'frobnicate'"));
  damc_error_clear(&err);
  CHECK(err.message == NULL && err.status == 0);
  m = damc_model_from_string("syntax.dam",
                             "model m;\ndim N = 4;\nlayer v[N] { L = lagr_identity(v) tau = 1; }\n",
                             &err);
  CHECK(m == NULL);
  CHECK_EQ(err.status, 1);
  // The missing ';' is found at 'tau', after the 34 characters "layer v[N] { L = lagr_identity(v) ".
  CHECK(contains(&err, "syntax.dam:3:35:"));
  damc_error_clear(&err);
  // A missing file.
  CHECK(damc_model_from_file("/no/such/model.dam", &err) == NULL);
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "/no/such/model.dam"));
  damc_error_clear(&err);
  // err may be NULL.
  CHECK(damc_model_from_string("bad.dam", "model", NULL) == NULL);

  m = damc_model_from_string("mb.dam", model_b_text, &err);
  CHECK(m != NULL);
  if (!m) return;
  double xi[K * 7] = {0};
  // A shape that contradicts the model: status 1, both shapes named.
  DamcArray wrong = {2, {K, 7}, xi, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &wrong, NULL, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "'Xi'") && contains(&err, "[4, 7]") && contains(&err, "[K, N=8]"));
  damc_error_clear(&err);
  DamcArray rank1 = {1, {K * 7}, xi, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &rank1, "xi.npy", &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "xi.npy") && contains(&err, "[28]"));
  damc_error_clear(&err);
  // A name that is no weight.
  CHECK(!damc_bind_weight(m, "W", &wrong, NULL, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "'W'") && contains(&err, "not a weight"));
  damc_error_clear(&err);
  // Bad arrays are bad arguments: status 2 (a rank above 4, an unknown dtype, no data).
  DamcArray rank5 = {5, {1, 1, 1, 1}, xi, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &rank5, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  DamcArray negative = {-1, {0}, xi, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &negative, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  DamcArray dtype9 = {2, {K, N}, xi, (DamcPrecision)9};
  CHECK(!damc_bind_weight(m, "Xi", &dtype9, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  DamcArray nodata = {2, {K, N}, NULL, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &nodata, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  CHECK(!damc_bind_weight(m, "Xi", NULL, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // A NaN names the tensor and the element.
  double bad[K * N];
  fill_normal(bad, K * N, 1);
  bad[2 * N + 5] = NAN;
  DamcArray nan = {2, {K, N}, bad, DAMC_F64};
  CHECK(!damc_bind_weight(m, "Xi", &nan, "nan.npy", &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "nan.npy") && contains(&err, "NaN") && contains(&err, "[2, 5]"));
  damc_error_clear(&err);
  // Params: unknown, or not finite.
  CHECK(!damc_set_param(m, "gamma", 1, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "no param 'gamma'"));
  damc_error_clear(&err);
  CHECK(!damc_set_param(m, "beta", INFINITY, &err));  // a bad argument
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // Eval before compile.
  double v[N] = {0};
  DamcArray states[2] = {{1, {N}, v, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch b = {states, NULL, NULL};
  CHECK(damc_eval(m, &b, &err) == NULL);
  CHECK(err.status != 0);
  CHECK(contains(&err, "damc_compile"));
  damc_error_clear(&err);
  CHECK(damc_run(m, &b, NULL, &err) == NULL);
  CHECK(err.status != 0);
  damc_error_clear(&err);
  // A precision that is not one: status 2.
  CHECK(!damc_compile(m, (DamcPrecision)3, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // A missing weight, found at compile: status 1, the weight and its shape named...
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "weight 'Xi' [K, N=8] is missing"));
  damc_error_clear(&err);
  // ...and the model is still usable: bind it and compile again.
  double good[K * N];
  fill_normal(good, K * N, 0.3);
  DamcArray w = {2, {K, N}, good, DAMC_F64};
  CHECK(damc_bind_weight(m, "Xi", &w, NULL, &err));
  CHECK(!damc_bind_weight(m, "Xi", &w, "again", &err));  // given twice
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "given twice"));
  damc_error_clear(&err);
  CHECK(damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 0);
  // After compiling: a second compile or a late weight is a bad argument (status 2).
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  CHECK(!damc_bind_weight(m, "Xi", &w, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // A state of the wrong size: status 1, the layer and both sizes named.
  DamcArray short_state[2] = {{1, {5}, v, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch sb = {short_state, NULL, NULL};
  CHECK(damc_eval(m, &sb, &err) == NULL);
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "layer 'v'") && contains(&err, "[5]") && contains(&err, "[8] or [B, 8]"));
  damc_error_clear(&err);
  // Batches that disagree.
  double two[2 * N] = {0}, three[3 * N] = {0};
  DamcArray mixed[2] = {{2, {2, N}, two, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcArray mixed_inputs[2] = {{2, {3, N}, three, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch mb = {mixed, mixed_inputs, NULL};
  CHECK(damc_eval(m, &mb, &err) == NULL);
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "batch of 3") && contains(&err, "has 2"));
  damc_error_clear(&err);
  // The model still works after all of that.
  DamcResults *r = damc_eval(m, &b, &err);
  CHECK(r != NULL);
  damc_results_free(r);
  damc_model_free(m);

  // A self-synapse that is not symmetric.
  double T[HN * HN];
  fill_normal(T, HN * HN, 1);
  CHECK(hopfield(T, HN, &err) == NULL);
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "T.npy") && contains(&err, "'T'") && contains(&err, "symmetric"));
  damc_error_clear(&err);

  // Regression: a weight whose shape names one unbound dim twice (W[N, N]) was not checked
  // against itself: [3, 4] bound N = 3 and was accepted, then read as a 3 x 3 matrix.
  {
    DamcModel *q = damc_model_from_string(
        "w.dam",
        "model w;\ndim N;\nlayer v[N] { L = lagr_identity(v); tau = 1; }\nweight W[N, N];\n"
        "energy -0.5 * dot(g(v), W @ g(v));\n",
        &err);
    CHECK(q != NULL);
    double w12[12] = {0};
    DamcArray w34 = {2, {3, 4}, w12, DAMC_F64};
    CHECK(!damc_bind_weight(q, "W", &w34, NULL, &err));
    CHECK_EQ(err.status, 1);
    damc_error_clear(&err);
    damc_model_free(q);
  }
  // Inconsistency: a batch array of a bad rank (a bad argument, as for damc_bind_weight)
  // gives status 1, and so does an eval before compile.
  {
    DamcModel *q = model_b(good, K, DAMC_F64, 2, DAMC_F64);
    DamcArray r5[2] = {{5, {1, 1, 1, 1}, v, DAMC_F64}, {0, {0}, NULL, 0}};
    DamcBatch bb = {r5, NULL, NULL};
    CHECK(damc_eval(q, &bb, &err) == NULL);
    CHECK_EQ(err.status, 2);
    damc_error_clear(&err);
    damc_model_free(q);
  }
}

// Two models in one process (two Model Bs from the same text with different memories, and
// a classic Hopfield network), with interleaved calls, give exactly what each gives alone.
typedef struct {
  double E[2], g_h[2 * K];
} Snapshot;

static void snapshot_b(DamcModel *m, const double *v, int k, Snapshot *s) {
  DamcArray states[2] = {{2, {2, N}, v, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch b = {states, NULL, NULL};
  DamcError err = {0};
  DamcResults *r = damc_eval(m, &b, &err);
  CHECK(r != NULL);
  memset(s, 0, sizeof *s);
  if (!r) return;
  size_t count;
  const double *e = damc_result(r, "E", &count);
  CHECK_EQ(count, 2);
  memcpy(s->E, e, sizeof s->E);
  const double *g = damc_result(r, "g_h", &count);
  CHECK_EQ(count, (size_t)(2 * k));
  memcpy(s->g_h, g, (size_t)(2 * k) * sizeof *g);
  damc_results_free(r);
}

static double hopfield_run(DamcModel *m, const double *x0, double *x_final) {
  DamcArray states[1] = {{1, {HN}, x0, DAMC_F64}};
  DamcBatch b = {states, NULL, NULL};
  DamcError err = {0};
  DamcResults *r = damc_run(m, &b, NULL, &err);
  CHECK(r != NULL);
  if (!r) return NAN;
  size_t count;
  memcpy(x_final, damc_result(r, "x_v", &count), HN * sizeof *x_final);
  CHECK_EQ(count, HN);
  double e = result1(r, "E", 0);
  damc_results_free(r);
  return e;
}

// An array for a layer that cannot take it fails with status 1 and the engine's message,
// in eval and in run: a state or a clamp of the eliminated h, an input of h (no `input h`).
// The derivative kernels take h's state (H_h at x_h): accepted.
static void test_layer_arrays(void) {
  double xi[K * N], v[N], h[K], ones[K];
  fill_normal(xi, K * N, 1);
  fill_normal(v, N, 1);
  fill_normal(h, K, 1);
  for (int m = 0; m < K; m++) ones[m] = 1;
  DamcModel *m = model_b(keep(memcpy(malloc(sizeof xi), xi, sizeof xi)), K, DAMC_F64, 2, DAMC_F64);
  CHECK(m != NULL);
  if (!m) return;
  DamcArray states[2] = {{1, {N}, v, DAMC_F64}, {1, {K}, h, DAMC_F64}};
  DamcArray inputs[2] = {{0, {0}, NULL, 0}, {1, {K}, h, DAMC_F64}};
  DamcArray clamps[2] = {{0, {0}, NULL, 0}, {1, {K}, ones, DAMC_F64}};
  DamcArray v_only[2] = {{1, {N}, v, DAMC_F64}, {0, {0}, NULL, 0}};
  const char *state = "a state is given for layer 'h', but 'h' is eliminated (tau = 0): its "
                      "state is computed from the other layers' at every instant (x = u), so it "
                      "takes none; give the states of the integrated layers only (v), or give "
                      "'h' a tau > 0 in the model to integrate it\n";
  const char *clamp = "a clamp is given for layer 'h', but 'h' is eliminated (tau = 0)";
  const char *input = "an input is given for layer 'h', but the model has no 'input h;' "
                      "statement: inputs are given only to layers declared with 'input' (v); "
                      "add 'input h;' to the model to give 'h' an external current\n";
  const struct {
    DamcBatch batch;
    const char *message;
  } cases[] = {{{states, NULL, NULL}, state},
               {{v_only, inputs, NULL}, input},
               {{v_only, NULL, clamps}, clamp}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (int run = 0; run < 2; run++) {
      if (!run && cases[i].batch.clamps) continue;  // eval takes no clamps
      DamcError err = {0};
      DamcResults *r = run ? damc_run(m, &cases[i].batch, NULL, &err)
                           : damc_eval(m, &cases[i].batch, &err);
      CHECK(r == NULL);
      CHECK_EQ(err.status, 1);
      CHECK(contains(&err, cases[i].message));
      damc_results_free(r);
      damc_error_clear(&err);
    }
  DamcError err = {0};
  DamcBatch at = {states, NULL, NULL};
  DamcResults *r = damc_hvp(m, &at, states, &err);
  CHECK(r != NULL && damc_result(r, "hvp_h", NULL) != NULL);
  damc_results_free(r);
  damc_error_clear(&err);
  damc_model_free(m);
}

static void test_independent_models(void) {
  double xi1[K * N], xi2[3 * N], v[2 * N], T[HN * HN], x0[HN];
  fill_normal(xi1, K * N, 0.4);
  fill_normal(xi2, 3 * N, 0.4);
  fill_normal(v, 2 * N, 1);
  symmetric_random(T, HN);
  fill_normal(x0, HN, 1);
  Snapshot alone1, alone2, s;
  double xa[HN], xb[HN];
  DamcError err = {0};

  // Each alone.
  DamcModel *p = model_b(xi1, K, DAMC_F64, 3, DAMC_F64);
  CHECK(p != NULL);
  if (!p) return;
  snapshot_b(p, v, K, &alone1);
  damc_model_free(p);
  p = model_b(xi2, 3, DAMC_F64, 0.5, DAMC_F64);
  CHECK(p != NULL);
  if (!p) return;
  snapshot_b(p, v, 3, &alone2);
  damc_model_free(p);
  DamcModel *h = hopfield(T, HN, &err);
  CHECK(h != NULL);
  if (!h) return;
  double Ea = hopfield_run(h, x0, xa);
  damc_model_free(h);
  // They are different models: the results differ, and match the closed forms.
  CHECK(alone1.E[0] != alone2.E[0]);
  for (int smp = 0; smp < 2; smp++) {
    CHECK(rel(alone1.E[smp], model_b_closed(xi1, K, 3, v + smp * N, NULL).E, &worst_f64) <= F64_TOL);
    CHECK(rel(alone2.E[smp], model_b_closed(xi2, 3, 0.5, v + smp * N, NULL).E, &worst_f64) <= F64_TOL);
  }

  // Together, built and called in interleaved order.
  DamcModel *a = damc_model_from_string("mb.dam", model_b_text, &err);
  DamcModel *b = damc_model_from_string("mb.dam", model_b_text, &err);
  CHECK(a && b);
  if (!a || !b) return;
  h = hopfield(T, HN, &err);
  CHECK(h != NULL);
  DamcArray w2 = {2, {3, N}, xi2, DAMC_F64}, w1 = {2, {K, N}, xi1, DAMC_F64};
  CHECK(damc_bind_weight(b, "Xi", &w2, NULL, &err));
  CHECK(damc_bind_weight(a, "Xi", &w1, NULL, &err));
  CHECK(damc_set_param(b, "beta", 0.5, &err) && damc_set_param(a, "beta", 3, &err));
  CHECK_EQ(damc_layer_size(a, 1), K);
  CHECK_EQ(damc_layer_size(b, 1), 3);
  CHECK(damc_compile(b, DAMC_F64, &err));
  CHECK(damc_compile(a, DAMC_F64, &err));
  for (int round = 0; round < 2; round++) {
    snapshot_b(b, v, 3, &s);
    CHECK(memcmp(&s, &alone2, sizeof s) == 0);
    double Eb = h ? hopfield_run(h, x0, xb) : NAN;
    CHECK(Eb == Ea && memcmp(xa, xb, sizeof xa) == 0);
    snapshot_b(a, v, K, &s);
    CHECK(memcmp(&s, &alone1, sizeof s) == 0);
  }
  damc_model_free(a);
  // b and h survive a's end.
  snapshot_b(b, v, 3, &s);
  CHECK(memcmp(&s, &alone2, sizeof s) == 0);
  damc_model_free(b);
  if (h) {
    CHECK(hopfield_run(h, x0, xb) == Ea);
    damc_model_free(h);
  }
  damc_error_clear(&err);
}

// damc_results_count and damc_results_at: every result in order, with its shape; a single
// sample gives no batch axis (E of rank 0), a batch gives one.
static void test_results_enumeration(void) {
  double xi[K * N], v[3 * N];
  fill_normal(xi, K * N, 0.5);
  fill_normal(v, 3 * N, 1);
  DamcModel *m = model_b(xi, K, DAMC_F64, 2, DAMC_F64);
  CHECK(m != NULL);
  if (!m) return;
  // Eval's results, in kernel order (kernel_eqs.h), x_h left out (it is u_h):
  static const char *const names[] = {"g_v", "g_h", "u_v", "dxdt_v", "u_h", "E_v", "E_h", "E"};
  static const size_t sizes[] = {N, K, N, N, K, 0, 0, 0};  // 0: a scalar per sample
  for (int batched = 0; batched < 2; batched++) {
    DamcArray states[2] = {{batched ? 2 : 1, {batched ? 3 : N, N}, v, DAMC_F64},
                           {0, {0}, NULL, 0}};
    DamcBatch b = {states, NULL, NULL};
    DamcError err = {0};
    DamcResults *r = damc_eval(m, &b, &err);
    CHECK(r != NULL);
    if (!r) continue;
    CHECK_EQ(damc_results_count(r), 8);
    for (size_t i = 0; i < 8 && i < damc_results_count(r); i++) {
      DamcArray a;
      const char *name = damc_results_at(r, i, &a);
      CHECK_STREQ(name, names[i]);
      CHECK_EQ(a.dtype, DAMC_F64);
      int want_rank = (batched ? 1 : 0) + (sizes[i] ? 1 : 0);
      CHECK_EQ(a.rank, want_rank);
      if (batched) CHECK_EQ(a.shape[0], 3);
      if (sizes[i]) CHECK_EQ(a.shape[a.rank - 1], sizes[i]);
      // The same values as damc_result by name.
      size_t count;
      CHECK(damc_result(r, name, &count) == a.data);
      CHECK_EQ(count, (batched ? 3 : 1) * (sizes[i] ? sizes[i] : 1));
    }
    // The batch's samples are evaluated independently: sample 1 of the batch is what sample
    // 1 alone gives (the closed form at v + N).
    ModelB want = model_b_closed(xi, K, 2, v + (batched ? N : 0), NULL);
    CHECK(rel(result1(r, "E", batched ? 1 : 0), want.E, &worst_f64) <= F64_TOL);
    damc_results_free(r);
  }
  damc_results_free(NULL);
  damc_model_free(m);
}

// A compile that failed can be retried after the cause is mended: a param without a default
// (status 1), then a negative tau (status 1), then a valid one; binding again after a failed
// compile is allowed, and a second compile of a compiled model is status 2.
static void test_compile_retry(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(
      "wt.dam",
      "model wt;\ndim N;\nparam t;\nlayer v[N] { L = lagr_identity(v); tau = t; }\n"
      "weight W[N, N];\nenergy -0.25 * dot(g(v), (W + W') @ g(v));\n",
      &err);
  double w[9] = {0};
  DamcArray a = {2, {3, 3}, w, DAMC_F64};
  CHECK(m && damc_bind_weight(m, "W", &a, NULL, &err));
  if (!m) return;
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "'t'"));
  damc_error_clear(&err);
  CHECK(damc_set_param(m, "t", -1, &err));
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "negative"));
  damc_error_clear(&err);
  CHECK(damc_set_param(m, "t", 0.5, &err));
  CHECK(damc_compile(m, DAMC_F32, &err));
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  damc_model_free(m);
}

// A param that makes an expression undefined (x / c with c = 0) is refused, at the divisor,
// by damc_compile and by damc_set_param after it, every time (the message is never dropped
// as one said before), and a refused value is not taken: the model goes on with the one it
// had.
static void test_param_domain(void) {
  static const char *const refused =
      "pd.dam:3:35: error: division by zero: the divisor is 0 with the params as set (c = 0)\n"
      "    3 | layer v[4] { L = 0.5 * sum(v^2) / c; }\n"
      "      |                                   ^\n";
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(
      "pd.dam", "model pd;\nparam c = 1.0;\nlayer v[4] { L = 0.5 * sum(v^2) / c; }\n", &err);
  CHECK(m != NULL);
  if (!m) return;
  CHECK(damc_set_param(m, "c", 0, &err));  // nothing is evaluated before the compile
  CHECK(!damc_compile(m, DAMC_F64, &err));
  CHECK_EQ(err.status, 1);
  CHECK(err.message && !strcmp(err.message, refused));
  damc_error_clear(&err);
  CHECK(damc_set_param(m, "c", 2, &err));
  CHECK(damc_compile(m, DAMC_F64, &err));
  for (int i = 0; i < 25; i++) {  // more than the front end's 20 errors
    CHECK(!damc_set_param(m, "c", 0, &err));
    CHECK_EQ(err.status, 1);
    CHECK(err.message && !strcmp(err.message, refused));
    damc_error_clear(&err);
  }
  double v[4] = {1, 2, 3, 4}, want[4] = {0.5, 1, 1.5, 2};  // g = v / c with c = 2
  DamcArray states[1] = {{1, {4}, v, DAMC_F64}};
  DamcBatch b = {states, NULL, NULL};
  DamcResults *r = damc_eval(m, &b, &err);
  CHECK(r != NULL);
  if (r) check_vec(r, "g_v", want, 4, F64_TOL, NULL);
  damc_results_free(r);
  damc_model_free(m);

  // A tau that the params make negative: located too, and refused without being taken.
  m = damc_model_from_string("tau.dam", "param c = 1.0;\nlayer v[4] { L = 0.5 * sum(v^2); tau = 1 / c; }\n",
                             &err);
  CHECK(m && damc_compile(m, DAMC_F64, &err));
  if (!m) return;
  CHECK(!damc_set_param(m, "c", -2, &err));
  CHECK_EQ(err.status, 1);
  CHECK(err.message && !strcmp(err.message,
                               "tau.dam:2:40: error: tau of layer 'v' is -0.5 with the params as "
                               "set (c = -2); it must not be negative\n"
                               "    2 | layer v[4] { L = 0.5 * sum(v^2); tau = 1 / c; }\n"
                               "      |                                        ^~~~~\n"));
  damc_error_clear(&err);
  r = damc_eval(m, &b, &err);  // with c = 1, as before
  CHECK(r != NULL);
  if (r) check_vec(r, "g_v", v, 4, F64_TOL, NULL);
  damc_results_free(r);
  damc_model_free(m);
}

// A value that is not finite only at some states is found at run time, and float32 is blamed
// only when float64 gives a finite value: g = v^3 at v = 2^43 is 2^129, beyond float32 and
// exact in float64.
static void test_precision_blamed(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string("cube.dam", "layer v[2] { L = sum(v^4) / 4; }\n", &err);
  CHECK(m && damc_compile(m, DAMC_F32, &err));
  if (!m) return;
  double big[2] = {8796093022208.0, 1};  // 2^43
  DamcArray cube[1] = {{1, {2}, big, DAMC_F64}};
  DamcBatch b = {cube, NULL, NULL};
  CHECK(damc_eval(m, &b, &err) == NULL);
  CHECK_EQ(err.status, 1);
  CHECK(err.message && !strcmp(err.message, "output 'g_v' is +Inf at sample 0, index 0: the "
                               "model is not finite at these states and params; it overflows "
                               "float32 there (in float64 it is 6.80564733841877e+38): use "
                               "damc_use_precision(model, DAMC_F64)\n"));
  damc_error_clear(&err);
  damc_model_free(m);
}

// A current of the weights alone (u_v = W' b) is the same for every sample of a batch:
// E = |v|^2 / 2 - (W' b) . v and u_v = W' b for each of 3 samples (float64).
static void test_weight_current_batch(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(
      "wb.dam",
      "model wb;\ndim N = 5;\ndim M = 3;\nlayer v[N] { L = lagr_identity(v); tau = 1; }\n"
      "weight W[M, N];\nweight b[M];\nenergy -dot(W' @ b, g(v));\n",
      &err);
  CHECK(m != NULL);
  if (!m) return;
  double w[15], bias[3], v[3 * 5], u[5];
  fill_normal(w, 15, 1);
  fill_normal(bias, 3, 1);
  fill_normal(v, 15, 1);
  DamcArray wa = {2, {3, 5}, w, DAMC_F64}, ba = {1, {3}, bias, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wa, NULL, &err) && damc_bind_weight(m, "b", &ba, NULL, &err));
  CHECK(damc_compile(m, DAMC_F64, &err));
  DamcArray states[1] = {{2, {3, 5}, v, DAMC_F64}};
  DamcBatch batch = {states, NULL, NULL};
  DamcResults *r = damc_eval(m, &batch, &err);
  CHECK(r != NULL);
  for (int i = 0; i < 5; i++) {
    u[i] = 0;
    for (int k = 0; k < 3; k++) u[i] += w[k * 5 + i] * bias[k];
  }
  for (size_t s = 0; r && s < 3; s++) {
    double E = 0;
    for (int i = 0; i < 5; i++) E += 0.5 * v[s * 5 + i] * v[s * 5 + i] - u[i] * v[s * 5 + i];
    CHECK(rel(result1(r, "E", s), E, &worst_f64) <= F64_TOL);
    for (int i = 0; i < 5; i++) CHECK(rel(result1(r, "u_v", s * 5 + (size_t)i), u[i], &worst_f64) <= F64_TOL);
  }
  damc_results_free(r);
  damc_error_clear(&err);
  damc_model_free(m);
}

// The compiled Hessian- and Jacobian-vector products (damc_hvp, damc_jvp) against central
// differences of damc_eval's g and dx/dt along the same direction, in float64: with
// h = 1e-5 the truncation error is about h^2 |third derivative| (1e-10 here) and the
// rounding about eps |g| / h (2e-11), so 1e-7 of the largest entry leaves a wide margin.
static void test_derivative_kernels(void) {
  static const char *const models[2] = {
      "model m;\ndim N = 5;\ndim K = 4;\nparam beta = 2;\n"
      "layer v[N] { L = lagr_tanh(v, beta); tau = 1; }\n"
      "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0.5; }\n"
      "synapse W[K, N] : h <-> v;\ninput v;\n",
      "model m;\ndim N = 5;\ndim K = 4;\nparam beta = 2;\n"
      "layer v[N] { L = lagr_tanh(v, beta); tau = 1; }\n"
      "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0; }\n"
      "synapse W[K, N] : h <-> v;\ninput v;\n"};
  for (int which = 0; which < 2; which++) {
    DamcError err = {0};
    DamcModel *m = damc_model_from_string("m.dam", models[which], &err);
    CHECK(m != NULL);
    if (!m) return;
    double w[20], x[2][9], d[2][9], in[5], h = 1e-5;
    fill_normal(w, 20, 0.5);
    fill_normal(in, 5, 0.3);
    for (int a = 0; a < 2; a++) {
      fill_normal(x[a], 9, 1);
      fill_normal(d[a], 9, 1);
    }
    DamcArray wa = {2, {4, 5}, w, DAMC_F64};
    CHECK(damc_bind_weight(m, "W", &wa, NULL, &err) && damc_compile(m, DAMC_F64, &err));
    DamcArray inputs[2] = {{1, {5}, in, DAMC_F64}, {0, {0}, NULL, 0}};
    DamcArray dirs[2] = {{1, {5}, d[0], DAMC_F64}, {1, {4}, d[1], DAMC_F64}};
    double xp[2][9], xm[2][9];
    for (int a = 0; a < 2; a++)
      for (int i = 0; i < 9; i++) {
        xp[a][i] = x[a][i] + h * d[a][i];
        xm[a][i] = x[a][i] - h * d[a][i];
      }
    DamcArray at[2] = {{1, {5}, x[0], DAMC_F64}, {1, {4}, x[1], DAMC_F64}};
    DamcArray plus[2] = {{1, {5}, xp[0], DAMC_F64}, {1, {4}, xp[1], DAMC_F64}};
    DamcArray minus[2] = {{1, {5}, xm[0], DAMC_F64}, {1, {4}, xm[1], DAMC_F64}};
    if (which == 1) plus[1].data = minus[1].data = NULL;  // eval: h is at x = u, given none
    DamcBatch b0 = {at, inputs, NULL}, bp = {plus, inputs, NULL}, bm = {minus, inputs, NULL};
    DamcResults *hv = damc_hvp(m, &b0, dirs, &err), *jv = damc_jvp(m, &b0, dirs, &err);
    DamcResults *ep = damc_eval(m, &bp, &err), *em = damc_eval(m, &bm, &err);
    CHECK(hv && jv && ep && em);
    if (hv && jv && ep && em) {
      const char *layers[2] = {"v", "h"};
      for (int a = 0; a < 2; a++) {
        size_t n = a ? 4 : 5;
        char name[16];
        snprintf(name, sizeof name, "hvp_%s", layers[a]);
        const double *got = damc_result(hv, name, NULL);
        snprintf(name, sizeof name, "g_%s", layers[a]);
        const double *gp = damc_result(ep, name, NULL), *gm = damc_result(em, name, NULL);
        // An eliminated layer's g is at x = u: its HVP is still H d at the state given.
        if (which == 1 && a == 1) continue;
        double scale = 1, worst = 0;
        for (size_t i = 0; got && i < n; i++) scale = fmax(scale, fabs(got[i]));
        for (size_t i = 0; got && gp && gm && i < n; i++)
          worst = fmax(worst, fabs(got[i] - (gp[i] - gm[i]) / (2 * h)) / scale);
        CHECK(got && worst <= 1e-7);
        snprintf(name, sizeof name, "jvp_%s", layers[a]);
        got = damc_result(jv, name, NULL);
        snprintf(name, sizeof name, "dxdt_%s", layers[a]);
        gp = damc_result(ep, name, NULL);
        gm = damc_result(em, name, NULL);
        scale = 1;
        worst = 0;
        for (size_t i = 0; got && i < n; i++) scale = fmax(scale, fabs(got[i]));
        for (size_t i = 0; got && gp && gm && i < n; i++)
          worst = fmax(worst, fabs(got[i] - (gp[i] - gm[i]) / (2 * h)) / scale);
        CHECK(got && worst <= 1e-7);
        printf("%s %s: hvp and jvp against central differences within %.1e (tol 1e-7)\n",
               which ? "eliminated h," : "two layers,", layers[a], worst);
      }
    }
    damc_results_free(hv);
    damc_results_free(jv);
    damc_results_free(ep);
    damc_results_free(em);
    damc_error_clear(&err);
    damc_model_free(m);
  }
}

// The oracle W1 of docs/theory.md §4.6 (computed in 40-digit arithmetic): at the given state,
// dE/dt by (1.4), -sum_A tau_A xdot_A' H_A xdot_A, from the compiled Hessian-vector products
// along dx/dt, against -1.10534651585699 to 1e-13 relative (the section's float64
// tolerance); and the check's stability item sees the fixed point's spectrum by name.
static void test_w1_oracle(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(
      "w1.dam",
      "dim N = 3;\ndim K = 2;\nlayer v[N] { L = 0.5 * sum(v^2); tau = 1; }\n"
      "layer h[K] { L = logsumexp(h); tau = 0.5; }\nsynapse W[N, K] : v <-> h;\ninput v;\n",
      &err);
  CHECK(m != NULL);
  if (!m) return;
  double w[6] = {1, -1, 0.5, 1, -1, 0.5}, in[3] = {0.1, -0.2, 0}, v[3] = {0.5, -0.3, 0.2},
         h[2] = {0.1, -0.4}, tau[2] = {1, 0.5};
  DamcArray wa = {2, {3, 2}, w, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wa, NULL, &err) && damc_compile(m, DAMC_F64, &err));
  DamcArray states[2] = {{1, {3}, v, DAMC_F64}, {1, {2}, h, DAMC_F64}};
  DamcArray inputs[2] = {{1, {3}, in, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch b = {states, inputs, NULL};
  DamcResults *e = damc_eval(m, &b, &err);
  CHECK(e != NULL);
  if (e) {
    const double *dv = damc_result(e, "dxdt_v", NULL), *dh = damc_result(e, "dxdt_h", NULL);
    DamcArray dirs[2] = {{1, {3}, dv, DAMC_F64}, {1, {2}, dh, DAMC_F64}};
    DamcResults *hv = damc_hvp(m, &b, dirs, &err);
    CHECK(hv != NULL);
    if (hv) {
      const double *xdot[2] = {dv, dh}, *hxdot[2] = {damc_result(hv, "hvp_v", NULL),
                                                     damc_result(hv, "hvp_h", NULL)};
      double dEdt = 0;
      for (int a = 0; a < 2; a++)
        for (int i = 0; i < (a ? 2 : 3); i++) dEdt -= tau[a] * xdot[a][i] * hxdot[a][i];
      double worst = 0;
      CHECK(rel(dEdt, -1.10534651585699, &worst) <= 1e-13);
      printf("W1: dE/dt by (1.4) from damc_hvp %.15g (oracle -1.10534651585699, %.1e)\n", dEdt, worst);
    }
    damc_results_free(hv);
  }
  damc_results_free(e);
  damc_error_clear(&err);
  damc_model_free(m);
}

// damc_check through the C API: the saddle x = 2 tanh(y), y = 2 tanh(x) (docs/theory.md
// §4.4.2) seen from sampled starts: every item has a verdict, the report is JSON, and the
// model itself stays usable (the checks run on a copy).
// Currents that are a bare leaf: with the energy -dot(b, g(v)) (or -dot(b + 0, g(v)), or
// -dot(b, g(v) / c * c), which simplify to it) and L = |v|^2 / 2, u_v = b, a weight alone:
// the eval kernel's output u_v is a copy of the weight, broadcast over the batch, and dx/dt
// = b - x reads the weight, not u_v. Closed forms: g_v = x, u_v = b, dxdt_v = b - x, E_v =
// |x|^2 / 2, E = -b . x + |x|^2 / 2, H d = d, J d = -d; the fixed point x = b with E =
// -|b|^2 / 2; damc check passes. float64 and float32 kernels, each of three spellings.
static void test_leaf_currents(void) {
  static const char *const energies[] = {"-dot(b, g(v))", "-dot(b + 0, g(v))",
                                         "-dot(b, g(v) / c * c)"};
  enum { M = 5, B = 2 };
  static const double bias[M] = {1, -2, 3, 0.5, -0.25};
  static const double x0[B * M] = {0.5, 0.25, -1, 2, 0, 1, 2, 3, -4, 0.125};
  static const double dir[B * M] = {1, 0, -1, 0.5, 2, -3, 1, 0.25, 0, 1};
  for (size_t k = 0; k < sizeof energies / sizeof energies[0]; k++)
    for (int prec = 0; prec < 2; prec++) {
      DamcPrecision precision = prec ? DAMC_F32 : DAMC_F64;
      double tol = prec ? F32_TOL : F64_TOL, *worst = prec ? &worst_f32 : &worst_f64;
      char text[512];
      snprintf(text, sizeof text,
               "dim N;\nparam c = 3;\nlayer v[N] { L = lagr_identity(v); tau = 1.0; }\n"
               "weight b[N];\nenergy %s;\n", energies[k]);
      DamcError err = {0};
      DamcModel *m = damc_model_from_string("bias.dam", text, &err);
      DamcArray wb = {1, {M}, bias, DAMC_F64};
      bool ok = m && damc_bind_weight(m, "b", &wb, NULL, &err) && damc_compile(m, precision, &err);
      CHECK(ok);
      if (!ok) {
        fprintf(stderr, "leaf currents, energy %s: %s", energies[k], err.message ? err.message : "");
        damc_error_clear(&err);
        damc_model_free(m);
        continue;
      }
      DamcArray states[2] = {{2, {B, M}, x0, DAMC_F64}, {0, {0}, NULL, 0}};
      DamcArray dirs[2] = {{2, {B, M}, dir, DAMC_F64}, {0, {0}, NULL, 0}};
      DamcBatch batch = {states, NULL, NULL};
      double u[B * M], dxdt[B * M], part[B], e[B], minus_d[B * M];
      for (int s = 0; s < B; s++) {
        part[s] = e[s] = 0;
        for (int i = 0; i < M; i++) {
          double x = x0[s * M + i];
          u[s * M + i] = bias[i];
          dxdt[s * M + i] = bias[i] - x;
          minus_d[s * M + i] = -dir[s * M + i];
          part[s] += x * x / 2;
          e[s] += x * x / 2 - bias[i] * x;
        }
      }
      DamcResults *r = damc_eval(m, &batch, &err);
      CHECK(r != NULL);
      if (r) {
        check_vec(r, "g_v", x0, B * M, tol, worst);
        check_vec(r, "u_v", u, B * M, tol, worst);
        check_vec(r, "dxdt_v", dxdt, B * M, tol, worst);
        check_vec(r, "E_v", part, B, tol, worst);
        check_vec(r, "E", e, B, tol, worst);
      }
      damc_results_free(r);
      DamcResults *hv = damc_hvp(m, &batch, dirs, &err), *jv = damc_jvp(m, &batch, dirs, &err);
      CHECK(hv != NULL && jv != NULL);
      if (hv) check_vec(hv, "hvp_v", dir, B * M, tol, worst);
      if (jv) check_vec(jv, "jvp_v", minus_d, B * M, tol, worst);
      damc_results_free(hv);
      damc_results_free(jv);
      // The fixed point: every tau |dx/dt| <= tol (1 + |x|) with tol 1e-7 (float64) or 1e-4
      // (float32), so |x - b| <= 4 tol (|b| <= 3) at most; 1e-5 and 1e-3 bound it.
      r = damc_run(m, &batch, NULL, &err);
      CHECK(r != NULL);
      if (r) {
        double fixed_tol = prec ? 1e-3 : 1e-5, want_e = 0;
        double xb[B * M];
        for (int i = 0; i < M; i++) want_e -= bias[i] * bias[i] / 2;
        for (int s = 0; s < B; s++) {
          for (int i = 0; i < M; i++) xb[s * M + i] = bias[i];
          CHECK(result1(r, "converged", (size_t)s) == 1);
          CHECK(fabs(result1(r, "E", (size_t)s) - want_e) <= fixed_tol * fabs(want_e));
        }
        check_vec(r, "x_v", xb, B * M, fixed_tol, NULL);
      } else {
        fprintf(stderr, "leaf currents, run: %s", err.message ? err.message : "");
      }
      damc_results_free(r);
      damc_error_clear(&err);
      // damc check on the model: every item computed, none failed.
      if (prec == 0) {
        DamcCheckReport *rep = damc_check(m, 3, 8, &err);
        CHECK(rep != NULL);
        if (!rep) fprintf(stderr, "leaf currents, check: %s", err.message ? err.message : "");
        for (size_t i = 0; rep && i < damc_check_count(rep); i++) {
          DamcCheckItem it;
          damc_check_item(rep, i, &it);
          if (!strcmp(it.verdict, "fail")) fprintf(stderr, "leaf currents: %s %s: %s\n", it.check, it.subject, it.reason);
          CHECK(strcmp(it.verdict, "fail") != 0);
        }
        CHECK(rep && !strcmp(damc_check_verdict(rep), "pass"));
        damc_check_free(rep);
        damc_error_clear(&err);
      }
      damc_model_free(m);
    }
}

static void test_check_api(void) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(
      "saddle.dam",
      "model saddle;\ndim N = 1;\nlayer x[N] { L = lagr_tanh(x); }\nlayer y[N] { L = lagr_tanh(y); }\n"
      "synapse W[N, N] : x <-> y;\n",
      &err);
  CHECK(m != NULL);
  if (!m) return;
  double w = 2;
  DamcArray wa = {2, {1, 1}, &w, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wa, NULL, &err));
  DamcCheckReport *r = damc_check(m, 7, 8, &err);
  CHECK(r != NULL && damc_check_count(r) > 5);
  bool saw_identity = false, saw_spectrum = false;
  for (size_t i = 0; r && i < damc_check_count(r); i++) {
    DamcCheckItem it;
    damc_check_item(r, i, &it);
    CHECK(it.check && it.subject && it.where && it.reason);
    CHECK(!strcmp(it.verdict, "pass") || !strcmp(it.verdict, "warn") || !strcmp(it.verdict, "fail") ||
          !strcmp(it.verdict, "skipped"));
    if (!strcmp(it.check, "energy-identity")) {
      saw_identity = true;
      CHECK(damc_check_number(r, i, "max |FD - (1.4)| beyond rounding / (1 + |(1.4)|)") <= 1e-6);
      CHECK(isnan(damc_check_number(r, i, "no such number")));
    }
    if (!strcmp(it.check, "stability") && strcmp(it.verdict, "skipped")) {
      // The fixed point (x, y) and the spectrum of J, ascending, whose ends are the numbers.
      size_t nx = 9, nj = 9;
      const double *x = damc_check_vector(r, i, "x*", &nx), *j = damc_check_vector(r, i, "eig(J)", &nj);
      saw_spectrum = x && j && nx == 2 && nj == 2;
      CHECK(saw_spectrum && j[0] <= j[1] && j[0] == damc_check_number(r, i, "min Re eig(J)") &&
            j[1] == damc_check_number(r, i, "max Re eig(J)"));
      CHECK(!damc_check_vector(r, i, "no such vector", &nx) && nx == 0);
    }
  }
  CHECK(saw_identity && saw_spectrum);
  CHECK(r && damc_check_json(r)[0] == '{' && strstr(damc_check_json(r), "\"items\""));
  damc_check_free(r);
  // The model was not compiled by the check: it compiles and evaluates now.
  CHECK(damc_compile(m, DAMC_F32, &err));
  damc_error_clear(&err);
  damc_model_free(m);
}

// The 0.2 additions: a compiled model bound to new weights and params and run again without
// compiling (the compile counter), the weight read in place (changing the caller's buffer
// changes the results), both precisions kept, results copied into the caller's buffers,
// explain's text, and diagnostics as records.
static void test_reuse_and_records(void) {
  DamcError err = {0};
  double xi[K * N], xi2[K * N], v[N];
  fill_normal(xi, K * N, 0.3);
  fill_normal(xi2, K * N, 0.3);
  fill_normal(v, N, 1.0);
  DamcModel *m = model_b(xi, K, DAMC_F64, 2.0, DAMC_F64);
  CHECK(m != NULL);
  if (!m) return;
  CHECK_EQ(damc_model_compile_count(m), 1);  // the step kernel; eval's comes at the first eval
  DamcResults *r = eval1(m, v, NULL, N);
  damc_results_free(r);
  CHECK_EQ(damc_model_compile_count(m), 2);
  // Rebinding a weight of the same shape, and a param: the closed form of the new values,
  // nothing compiled again.
  DamcArray w2 = {2, {K, N}, xi2, DAMC_F64};
  for (int round = 0; round < 3; round++) {
    const double *w = round % 2 ? xi2 : xi;
    w2.data = w;
    double beta = 1.0 + round;
    CHECK(damc_rebind_weight(m, "Xi", &w2, "round", &err));
    CHECK(damc_set_param(m, "beta", beta, &err));
    r = eval1(m, v, NULL, N);
    ModelB want = model_b_closed(w, K, beta, v, NULL);
    CHECK(r && rel(result1(r, "E", 0), want.E, &worst_f64) <= F64_TOL);
    if (r) check_vec(r, "u_v", want.u_v, N, F64_TOL, &worst_f64);
    damc_results_free(r);
  }
  CHECK_EQ(damc_model_compile_count(m), 2);
  // In place: the model reads the caller's buffer itself (xi, bound last).
  double e_before = NAN, e_after = NAN;
  r = eval1(m, v, NULL, N);
  if (r) e_before = result1(r, "E", 0);
  damc_results_free(r);
  xi[0] += 1.0;
  r = eval1(m, v, NULL, N);
  if (r) e_after = result1(r, "E", 0);
  damc_results_free(r);
  xi[0] -= 1.0;
  CHECK(e_before != e_after);
  CHECK(rel(e_after, model_b_closed((xi[0] += 1.0, xi), K, 3.0, v, NULL).E, NULL) <= F64_TOL);
  xi[0] -= 1.0;
  // A different shape, a NaN, an unknown name: status 1, the old binding kept.
  DamcArray wrong = {2, {K - 1, N}, xi2, DAMC_F64};
  CHECK(!damc_rebind_weight(m, "Xi", &wrong, "small", &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "same shape") && contains(&err, "[3, 8]") && contains(&err, "[4, 8]"));
  damc_error_clear(&err);
  double nan_xi[K * N];
  memcpy(nan_xi, xi2, sizeof nan_xi);
  nan_xi[5] = NAN;
  DamcArray wn = {2, {K, N}, nan_xi, DAMC_F64};
  CHECK(!damc_rebind_weight(m, "Xi", &wn, "nan", &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "NaN"));
  damc_error_clear(&err);
  CHECK(!damc_rebind_weight(m, "Xj", &w2, NULL, &err));
  CHECK_EQ(err.status, 1);
  CHECK(contains(&err, "did you mean 'Xi'"));
  damc_error_clear(&err);
  CHECK(!damc_rebind_weight(m, "Xi", NULL, NULL, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // Both precisions: float32 compiled once, then each selected without compiling.
  CHECK(damc_use_precision(m, DAMC_F32, &err));
  CHECK_EQ(damc_model_compile_count(m), 3);
  r = eval1(m, v, NULL, N);
  CHECK_EQ(damc_model_compile_count(m), 4);
  ModelB want = model_b_closed(xi, K, 3.0, v, NULL);
  CHECK(r && rel(result1(r, "E", 0), want.E, &worst_f32) <= F32_TOL);
  damc_results_free(r);
  CHECK(damc_use_precision(m, DAMC_F64, &err) && damc_use_precision(m, DAMC_F32, &err));
  CHECK_EQ(damc_model_compile_count(m), 4);
  CHECK(!damc_use_precision(m, (DamcPrecision)7, &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  // A rebinding reaches every precision (float32: converted into the copy made before).
  w2.data = xi2;
  CHECK(damc_rebind_weight(m, "Xi", &w2, "both", &err));
  want = model_b_closed(xi2, K, 3.0, v, NULL);
  for (int p = DAMC_F32; p <= DAMC_F64; p++) {
    CHECK(damc_use_precision(m, (DamcPrecision)p, &err));
    r = eval1(m, v, NULL, N);
    CHECK(r && rel(result1(r, "E", 0), want.E, NULL) <= (p == DAMC_F32 ? F32_TOL : F64_TOL));
    // Results into the caller's buffers, in float64 and float32.
    double u64[N];
    float u32[N];
    CHECK(r && damc_result_copy(r, "u_v", u64, DAMC_F64, N, &err));
    CHECK(r && damc_result_copy(r, "u_v", u32, DAMC_F32, N, &err));
    for (int i = 0; r && i < N; i++)
      CHECK(u64[i] == result1(r, "u_v", (size_t)i) && u32[i] == (float)u64[i]);
    CHECK(r && !damc_result_copy(r, "u_v", u64, DAMC_F64, N - 1, &err));
    CHECK_EQ(err.status, 2);
    damc_error_clear(&err);
    CHECK(r && !damc_result_copy(r, "nope", u64, DAMC_F64, N, &err));
    CHECK_EQ(err.status, 2);
    damc_error_clear(&err);
    damc_results_free(r);
  }
  CHECK_EQ(damc_model_compile_count(m), 4);
  // explain's text, plain and LaTeX.
  const char *plain = damc_explain(m, 0), *tex = damc_explain(m, 1);
  CHECK(plain && strstr(plain, "logsumexp") != NULL);
  CHECK(tex && strstr(tex, "\\") != NULL && strcmp(plain, tex) != 0);
  CHECK(damc_explain(m, 0) == plain);
  damc_model_free(m);
  // Diagnostics as records: a malformed model, located; the excerpt lines skipped.
  DamcModel *bad = damc_model_from_string(
      "bad.dam", "model x;\ndim N = 4;\nlayer v[N] { L = lagr_identity(v) tau = 1.0; }\n", &err);
  CHECK(bad == NULL);
  CHECK(damc_error_diagnostic_count(&err) >= 1);
  DamcDiagnostic d;
  CHECK(damc_error_diagnostic(&err, 0, &d));
  CHECK_STREQ(d.file, "bad.dam");
  CHECK_EQ(d.line, 3);
  CHECK_EQ(d.column, 35);
  CHECK_STREQ(d.severity, "error");
  CHECK(strstr(d.message, "unexpected keyword 'tau'") == d.message);
  CHECK(!damc_error_diagnostic(&err, damc_error_diagnostic_count(&err), &d) && d.line == 0);
  damc_error_clear(&err);
  CHECK_EQ(damc_error_diagnostic_count(&err), 0);
  CHECK_EQ(damc_error_diagnostic_count(NULL), 0);
  // An unlocated message (a tensor's) is one record with its whole text.
  m = damc_model_from_string("mb.dam", model_b_text, &err);
  DamcArray w3 = {2, {K, N + 1}, xi2, DAMC_F64};
  CHECK(m && !damc_bind_weight(m, "Xi", &w3, "w.npz", &err));
  CHECK_EQ(damc_error_diagnostic_count(&err), 1);
  CHECK(damc_error_diagnostic(&err, 0, &d) && d.line == 0 && d.file[0] == '\0' &&
        strstr(d.message, "w.npz: tensor 'Xi' has shape [4, 9]") == d.message);
  damc_error_clear(&err);
  damc_model_free(m);
}

// Arguments a C caller gets wrong: a NULL model, name, path or text is status 2 from every
// function that reports errors (0 or NULL from the queries), never a crash; a batch whose
// shape claims more than the machine's memory, or whose kernel buffers do not fit, is status 1
// with a message, never an abort of the caller's process.
static void test_null_and_huge(void) {
  DamcError err = {0};
  DamcBatch none = {NULL, NULL, NULL};
  CHECK(damc_model_from_string(NULL, "dim N = 2;", &err) == NULL && err.status == 2 &&
        contains(&err, "damc_model_from_string: name is NULL"));
  CHECK(damc_model_from_string("x", NULL, &err) == NULL && err.status == 2);
  CHECK(damc_model_from_file(NULL, &err) == NULL && err.status == 2);
  CHECK(damc_layer_count(NULL) == 0 && damc_layer_name(NULL, 0) == NULL &&
        damc_layer_size(NULL, 0) == 0 && damc_weight_count(NULL) == 0 &&
        damc_weight_name(NULL, 0) == NULL && damc_param_count(NULL) == 0 &&
        damc_param_name(NULL, 0) == NULL && damc_model_compile_count(NULL) == 0 &&
        damc_explain(NULL, 0) == NULL);
  CHECK(damc_compile(NULL, DAMC_F64, &err) == 0 && err.status == 2 &&
        contains(&err, "damc_compile_to: model is NULL"));
  CHECK(damc_set_param(NULL, "beta", 1, &err) == 0 && err.status == 2);
  CHECK(damc_set_dim(NULL, "K", 1, &err) == 0 && err.status == 2);
  CHECK(damc_bind_weight(NULL, "Xi", NULL, NULL, &err) == 0 && err.status == 2);
  CHECK(damc_rebind_weight(NULL, "Xi", NULL, NULL, &err) == 0 && err.status == 2);
  CHECK(damc_use_precision(NULL, DAMC_F64, &err) == 0 && err.status == 2);
  CHECK(damc_set_kernels(NULL, DAMC_KERNELS_AUTO, &err) == 0 && err.status == 2);
  CHECK(damc_eval(NULL, &none, &err) == NULL && err.status == 2);
  CHECK(damc_energy(NULL, &none, &err) == NULL && err.status == 2);
  CHECK(damc_run(NULL, &none, NULL, &err) == NULL && err.status == 2);
  CHECK(damc_hvp(NULL, &none, NULL, &err) == NULL && err.status == 2);
  CHECK(damc_jvp(NULL, &none, NULL, &err) == NULL && err.status == 2);
  CHECK(damc_check(NULL, 1, 1, &err) == NULL && err.status == 2);
  damc_error_clear(&err);

  double xi[K * N];
  fill_normal(xi, K * N, 1 / sqrt(N));
  DamcModel *m = model_b(xi, K, DAMC_F64, 2, DAMC_F32);
  CHECK(m != NULL);
  if (!m) return;
  CHECK(damc_set_param(m, NULL, 1, &err) == 0 && err.status == 2);
  double v[N] = {0};
  // 2^40 samples of N float64 (2^48 bytes) and 2^62 (the bytes overflow size_t).
  const size_t huge[2] = {(size_t)1 << 40, (size_t)1 << 62};
  for (int i = 0; i < 2; i++) {
    DamcArray states[2] = {{2, {huge[i], N}, v, DAMC_F64}, {0, {0}, NULL, 0}};
    DamcBatch b = {states, NULL, NULL};
    CHECK(damc_energy(m, &b, &err) == NULL && err.status == 1 &&
          contains(&err, "more elements than this machine's memory"));
    CHECK(damc_eval(m, &b, &err) == NULL && err.status == 1);
  }
  damc_error_clear(&err);
  damc_model_free(m);
}

int main(int argc, char **argv) {
  if (argc > 1) src_dir = argv[1];
  // The compile counts below are of compilations: kernels from the cache of compiled kernels
  // would not count (ctest sets this for every test; here for a run by hand too).
  setenv("DAMC_NO_CACHE", "1", 0);
  test_load_and_layers();
  test_eval_closed_form();
  test_hopfield();
  test_run_fixed_point();
  test_errors();
  test_layer_arrays();
  test_independent_models();
  test_results_enumeration();
  test_weight_current_batch();
  test_derivative_kernels();
  test_w1_oracle();
  test_check_api();
  test_leaf_currents();
  test_compile_retry();
  test_param_domain();
  test_precision_blamed();
  test_reuse_and_records();
  test_set_kernels();
  test_null_and_huge();
  printf("worst relative errors: float64 kernels %.2g (bound %.0e), float32 data %.2g "
         "(bound %.0e), float32 kernels %.2g (bound %.0e)\n",
         worst_f64, F64_TOL, worst_f32_data, F32_DATA_TOL, worst_f32, F32_TOL);
  for (int i = 0; i < nkept; i++) free(kept[i]);
  return check_report("test_api_c");
}

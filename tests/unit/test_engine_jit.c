// The JIT-compiled kernels against the reference interpreter, on every example, for a
// batch of random states (normal, and spread 40, where tanh and sigmoid saturate): float64
// within 1e-12 of the interpreter (relative to the size of the quantity), float32 within the
// bound of docs/theory.md §4.1.4 (16 eps32 (|v| + |v|_inf)); the energy relative to the size of
// the terms that cancel in it (float32: 3 eps32 of sum |x g| + |L| + ..., fx_energy_scale, engine_fixture.h).
// Also: Model B with tau_h = 0 and one Euler step of dt = tau_v is exactly the modern
// Hopfield update v <- Xi' softmax(beta Xi v) (float64, 1e-12 against a direct computation).
#include <dirent.h>

#include "engine_fixture.h"

enum { BATCH = 3 };

// A float64 view of `data`: [rows, cols], or [rows] when cols is 0.
static EngineArray array(size_t rows, size_t cols, const double *data) {
  return (EngineArray){DAMRT_F64, cols ? 2 : 1, {rows, cols}, data};
}


// The engine through the pipeline up to the network's equations.
static Engine *open_engine(const char *path, StrBuf *err) {
  Engine *e = engine_new(path, NULL);
  if (engine_compile(e, STAGE_DERIVE, err)) return e;
  engine_free(e);
  return NULL;
}

static bool prepare(Engine *e, DamrtDtype dtype, StrBuf *err) {
  engine_target(e, dtype, false);
  return engine_compile(e, STAGE_JIT, err);
}

typedef struct {
  double worst64, worst32;
  double worst_e32;  // the float32 energy's error in eps32 of the scale of its terms
} Errors;

// Compares one quantity of one sample: `want` from the interpreter (n values).
static void compare(const double *want, const double *got64, const double *got32, int64_t n,
                    Errors *e, const char *what) {
  double inf = 0;
  for (int64_t i = 0; i < n; i++) inf = fmax(inf, fabs(want[i]));
  for (int64_t i = 0; i < n; i++) {
    double r64 = fabs(got64[i] - want[i]) / (1e-300 + fmax(inf, 1e-300));
    e->worst64 = fmax(e->worst64, r64);
    double bound32 = 16 * 1.1920929e-07 * (fabs(want[i]) + inf);
    double r32 = fabs(got32[i] - want[i]) / fmax(bound32, 1e-300);
    e->worst32 = fmax(e->worst32, r32);
    if (r64 > 1e-12 || r32 > 1)
      fprintf(stderr, "  %s[%lld]: interpreter %.17g, f64 %.17g, f32 %.9g\n", what, (long long)i,
              want[i], got64[i], got32[i]);
  }
}


// The energy: float64 within 1e-12 of the interpreter, relative to the scale of its terms;
// float32 within 3 eps32 of it (about 3 ulps: the rounding of Lambda = x.g - L, whatever
// is left of it; with states of spread 40, |E| is 1.6 where the terms are 340).
static void compare_energy(double want, double got64, double got32, double scale, Errors *e) {
  double r64 = fabs(got64 - want) / fmax(scale, 1e-300);
  double r32 = fabs(got32 - want) / fmax(3 * 1.1920929e-07 * scale, 1e-300);
  e->worst64 = fmax(e->worst64, r64);
  e->worst32 = fmax(e->worst32, r32);
  e->worst_e32 = fmax(e->worst_e32, fabs(got32 - want) / (1.1920929e-07 * scale));
  if (r64 > 1e-12 || r32 > 1)
    fprintf(stderr, "  E: interpreter %.17g, f64 %.17g, f32 %.9g (scale of the terms %.3g)\n",
            want, got64, got32, scale);
}

static void check_example(const char *path, double spread) {
  char *text = NULL;
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  text = calloc((size_t)len + 1, 1);
  CHECK(fread(text, 1, (size_t)len, f) == (size_t)len);
  fclose(f);
  Fixture fx;
  bool ok = fx_open(&fx, text, 7, 77);
  free(text);
  CHECK(ok);
  if (!ok) return;
  const Model *m = fx.m;
  const Network *net = fx.net;

  Engine *eng[2];
  StrBuf err = {0};
  for (int p = 0; p < 2; p++) {
    eng[p] = open_engine(path, &err);
    CHECK(eng[p] != NULL);
    if (!eng[p]) return;
    for (int w = 0; w < m->nweights; w++) {
      const ModelWeight *mw = &m->weights[w];
      size_t rows = (size_t)fx.dims[mw->dims[0]], cols = mw->rank == 2 ? (size_t)fx.dims[mw->dims[1]] : 0;
      EngineArray wa = array(rows, cols, fx.weights[w]);
      CHECK(engine_bind_weight(eng[p], mw->name, &wa, "test", &err));
    }
    CHECK(prepare(eng[p], p ? DAMRT_F32 : DAMRT_F64, &err));
  }
  if (err.len) fprintf(stderr, "%s", sb_str(&err));

  // A batch of random states and inputs.
  double *states[16], *inputs[16];
  EngineArray st[16] = {0}, in[16] = {0};
  for (int a = 0; a < m->nlayers; a++) {
    int64_t n = fx_layer_size(&fx, a);
    states[a] = calloc((size_t)(BATCH * n), sizeof(double));
    inputs[a] = calloc((size_t)(BATCH * n), sizeof(double));
    for (int64_t i = 0; i < BATCH * n; i++) {
      states[a][i] = spread * fx_normal(&fx);
      inputs[a][i] = 0.3 * fx_normal(&fx);
    }
    if (!net->layers[a].eliminated) st[a] = array(BATCH, (size_t)n, states[a]);  // else x = u
    if (net->layers[a].input) in[a] = array(BATCH, (size_t)n, inputs[a]);
  }
  EngineArrays arrays = {st, in, NULL, NULL};
  EngineResults r64 = {0}, r32 = {0};
  CHECK(engine_eval(eng[0], &arrays, &r64, &err));
  CHECK(engine_eval(eng[1], &arrays, &r32, &err));
  // The energy kernel (E alone: the reduced energy with layers eliminated), to the same bound.
  EngineResults e64 = {0}, e32 = {0};
  CHECK(engine_apply(eng[0], KERNEL_ENERGY, &arrays, &e64, &err));
  CHECK(engine_apply(eng[1], KERNEL_ENERGY, &arrays, &e32, &err));
  bool energy = fx_result(&e64, "E", NULL) && fx_result(&e32, "E", NULL);
  CHECK(energy);
  size_t n64 = r64.count;
  CHECK(n64 > 0 && n64 == r32.count);

  Errors errs = {0, 0, 0};
  for (int s = 0; s < BATCH && n64 > 0; s++) {
    for (int a = 0; a < m->nlayers; a++) {
      int64_t n = fx_layer_size(&fx, a);
      memcpy(fx.states[a], states[a] + s * n, (size_t)n * sizeof(double));
      memcpy(fx.inputs[a], net->layers[a].input ? inputs[a] + s * n : fx.inputs[a],
             (size_t)n * sizeof(double));
      if (!net->layers[a].input) memset(fx.inputs[a], 0, (size_t)n * sizeof(double));
    }
    double want[4096];
    char name[80];
    for (int a = 0; a < m->nlayers; a++) {
      const LayerEq *l = &net->layers[a];
      if (l->eliminated) continue;
      int64_t n = fx_layer_size(&fx, a);
      snprintf(name, sizeof name, "g_%s", m->layers[a].name);
      fx_eval(&fx, l->g, want);
      compare(want, fx_result(&r64, name, NULL) + s * n, fx_result(&r32, name, NULL) + s * n, n, &errs, name);
      snprintf(name, sizeof name, "dxdt_%s", m->layers[a].name);
      fx_eval(&fx, net->reduced ? net->reduced_dxdt[a] : l->dxdt_x, want);
      compare(want, fx_result(&r64, name, NULL) + s * n, fx_result(&r32, name, NULL) + s * n, n, &errs, name);
    }
    want[0] = fx_eval_scalar(&fx, net->reduced ? net->reduced_energy_x : net->energy_x);
    double scale = fx_energy_scale(&fx, &r64, s, states, inputs);
    compare_energy(want[0], fx_result(&r64, "E", NULL)[s], fx_result(&r32, "E", NULL)[s], scale, &errs);
    if (energy)
      compare_energy(want[0], fx_result(&e64, "E", NULL)[s], fx_result(&e32, "E", NULL)[s], scale, &errs);
  }
  CHECK(errs.worst64 <= 1e-12);
  CHECK(errs.worst32 <= 1);
  printf("%-24s f64: max rel err %.1e (tol 1e-12); f32: max err / bound %.2f (tol 1); "
         "f32 E: %.2f eps32 of its terms (tol 3)\n",
         strrchr(path, '/') + 1, errs.worst64, errs.worst32, errs.worst_e32);
  engine_results_free(&r64);
  engine_results_free(&r32);
  engine_results_free(&e64);
  engine_results_free(&e32);
  for (int a = 0; a < m->nlayers; a++) {
    free(states[a]);
    free(inputs[a]);
  }
  engine_free(eng[0]);
  engine_free(eng[1]);
  sb_free(&err);
  fx_close(&fx);
}

// One Euler step of dt = tau_v of Model B with h eliminated is the modern Hopfield update.
static void check_modern_hopfield(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/tests/unit/data/model_b_eliminated.dam", dir);
  StrBuf err = {0};
  Engine *e = open_engine(path, &err);
  CHECK(e != NULL);
  if (!e) return;
  enum { N = 20, K = 7 };
  double xi[K * N], v[N], want[N];
  Fixture rng = {0};
  rng.rng = 5;
  for (int i = 0; i < K * N; i++) xi[i] = fx_normal(&rng) / sqrt((double)N);
  for (int i = 0; i < N; i++) v[i] = fx_normal(&rng);
  EngineArray xa = array(K, N, xi);
  CHECK(engine_bind_weight(e, "Xi", &xa, "test", &err));
  CHECK(engine_set_param(e, "beta", 3.0, &err));
  CHECK(prepare(e, DAMRT_F64, &err));
  // v <- Xi' softmax(beta Xi v), computed directly.
  double s[K], mx = -INFINITY, z = 0;
  for (int k = 0; k < K; k++) {
    s[k] = 0;
    for (int i = 0; i < N; i++) s[k] += xi[k * N + i] * v[i];
    s[k] *= 3.0;
    mx = fmax(mx, s[k]);
  }
  for (int k = 0; k < K; k++) z += exp(s[k] - mx);
  for (int i = 0; i < N; i++) {
    want[i] = 0;
    for (int k = 0; k < K; k++) want[i] += xi[k * N + i] * exp(s[k] - mx) / z;
  }
  EngineArray st[2] = {array(N, 0, v), {0}}, in[2] = {{0}, {0}};
  EngineArrays arrays = {st, in, NULL, NULL};
  EngineResults r = {0};
  CHECK(engine_eval(e, &arrays, &r, &err));
  const double *dxdt = fx_result(&r, "dxdt_v", NULL);
  CHECK(dxdt != NULL);
  double worst = 0;
  for (int i = 0; dxdt && i < N; i++) {
    double next = v[i] + 1.0 * dxdt[i];  // Euler, dt = tau_v = 1
    worst = fmax(worst, fabs(next - want[i]) / fmax(fabs(want[i]), 1e-300));
  }
  CHECK(worst <= 1e-12);
  printf("modern Hopfield update: one Euler step, max rel err %.1e (tol 1e-12)\n", worst);
  engine_results_free(&r);
  engine_free(e);
  sb_free(&err);
}

// engine_rebind_weight (damc capacity): Model B's Xi bound with K = 3 and compiled; without
// engine_vary_dim another K is refused; with K a runtime dim, Xi is bound again with K = 5,
// then 1, then other values of K = 1, with no new plan or compile; u_h = Xi v is the direct
// product each time (float64, 1e-12); another N is refused.
static void check_rebind(const char *src) {
  char path[4096];
  snprintf(path, sizeof path, "%s/examples/model_b.dam", src);
  StrBuf err = {0};
  Engine *e = open_engine(path, &err);
  CHECK(e != NULL);
  if (!e) return;
  engine_target(e, DAMRT_F64, false);
  enum { N = 784 };
  static double xi[4][5 * N], v[N];
  for (int i = 0; i < N; i++) v[i] = sin(0.37 * i);
  for (int r = 0; r < 4; r++)
    for (int i = 0; i < 5 * N; i++) xi[r][i] = cos(0.11 * i + r);
  int h = engine_layer_index(e, "h"), k_dim = engine_network(e)->layers[h].dim;
  const size_t rows[4] = {3, 5, 1, 1};
  const Plan *first = NULL;
  unsigned compiles = 0;
  for (int step = 0; step < 4; step++) {
    EngineArray w = array(rows[step], N, xi[step]);
    if (step == 0) {
      CHECK(engine_bind_weight(e, "Xi", &w, "test", &err) && engine_compile(e, STAGE_JIT, &err));
      EngineArray five = array(5, N, xi[1]);
      CHECK(!engine_rebind_weight(e, "Xi", &five, "test", &err) && strstr(sb_str(&err), "same shape"));
      sb_clear(&err);
      engine_vary_dim(e, k_dim);  // planned again, K read by the kernels
      CHECK(engine_compile(e, STAGE_JIT, &err));
      first = engine_plan(e, KERNEL_RHS);
    } else {
      CHECK(engine_rebind_weight(e, "Xi", &w, "test", &err));
    }
    CHECK(engine_dims(e)[k_dim] == (int64_t)rows[step]);
    EngineArray state[2] = {array(N, 0, v), {0}};
    EngineArrays arrays = {state, NULL, NULL, NULL};
    EngineResults r = {0};
    CHECK(engine_eval(e, &arrays, &r, &err));
    if (step == 0) compiles = engine_compile_count(e);
    CHECK(engine_plan(e, KERNEL_RHS) == first && engine_compile_count(e) == compiles);
    const double *u = fx_result(&r, "u_h", NULL);
    double worst = u ? 0 : INFINITY;
    for (size_t k = 0; u && k < rows[step]; k++) {
      double want = 0;
      for (int i = 0; i < N; i++) want += xi[step][k * N + i] * v[i];
      worst = fmax(worst, fabs(u[k] - want) / fmax(fabs(want), 1));
    }
    CHECK(worst <= 1e-12);
    engine_results_free(&r);
  }
  EngineArray wrong = array(1, N - 1, xi[0]);
  CHECK(!engine_rebind_weight(e, "Xi", &wrong, "test", &err) && strstr(sb_str(&err), "same shape"));
  printf("rebind: Xi with K = 3, then (K a runtime dim) 5, 1 and 1 again, %u compiles: u_h "
         "exact\n", compiles);
  if (err.len) printf("  (expected message: %s)", sb_str(&err));
  engine_free(e);
  sb_free(&err);
}

int main(int argc, char **argv) {
  const char *src = argc > 1 ? argv[1] : ".";
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/examples", src);
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  for (struct dirent *ent; d && (ent = readdir(d));) {
    size_t len = strlen(ent->d_name);
    if (len < 5 || strcmp(ent->d_name + len - 4, ".dam")) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
    check_example(path, 1);
    check_example(path, 40);
  }
  if (d) closedir(d);
  check_modern_hopfield(src);
  check_rebind(src);
  return check_report("test_engine_jit");
}

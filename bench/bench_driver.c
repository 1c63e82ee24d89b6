// The C contenders of `make bench` (bench/bench.py): damc through its C API library (the
// compiled kernels called on the harness's data) and a hand-written C + OpenBLAS baseline,
// for three computations on Xi [K, N] (float32) and states v [B, N]:
//
//   stepB   the Model B step with the memory layer eliminated:
//           dv = Xi' softmax(beta Xi v) - v          (damc: the rhs kernel of MODEL_B)
//   eulerA  one Euler step of Model A, n = 3 (tanh features, relu^2 memories, tau = 1):
//           v' = v + dt (Xi' relu(Xi tanh v)^2 - v)  (damc: the rhs kernel of MODEL_A and
//           the update v += dt dv/dt, the loop the engine's Euler integrator runs)
//   energy  E = |v|^2 / 2 - logsumexp(beta Xi v) / beta per sample
//           (damc: the energy kernel of MODEL_B, damc_energy's: one pass over Xi, the
//           product fused with its online log-sum-exp)
//
//   bench_driver DIR N K B [--write] [--budget SECONDS]
//     reads DIR/xi.f32 (K*N floats) and DIR/v.f32 (B*N), with --write writes each
//     contender's result to DIR/out_<kernel>_<contender>.f32 (for the harness's agreement
//     check), then times the contenders alternately (damc, C+BLAS, per kernel), each the
//     median of calls filling about --budget seconds (default 0.15), and prints
//     "time <kernel> <contender> <seconds>" lines (--only-step: stepB alone).
//   bench_driver --process DIR N K B
//     one whole Model B step as a process: read the files, one step, write DIR/out_proc_c.f32
//     (the C + BLAS side of the whole-process comparison).
// Not a test: it measures; bench/bench.py judges agreement and writes the report.
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/damc_internal.h"
#include "damrt_kernel.h"
#include "engine/engine_internal.h"
#include "support/common.h"

#define BETA 1.0f
#define DT 0.1f

static const char *const MODEL_B =
    "dim N;\ndim K;\nparam beta = 1.0;\nlayer v[N] { L = lagr_identity(v); tau = 1; }\n"
    "layer h[K] { L = lagr_softmax(h, beta); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n";
static const char *const MODEL_A =
    "dim N;\ndim K;\nparam n = 3;\nlayer v[N] { L = lagr_tanh(v, 1); tau = 1; }\n"
    "layer h[K] { L = lagr_repu(h, n); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n";

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_driver: %s: %s\n", what, msg);
  exit(1);
}

static float *read_f32(const char *dir, const char *name, size_t count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) die(path, "cannot open");
  float *x = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
  if (!x || fread(x, sizeof(float), count, f) != count) die(path, "short read");
  fclose(f);
  return x;
}

static void write_f32(const char *dir, const char *name, const float *x, size_t count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(x, sizeof(float), count, f) != count) die(path, "cannot write");
  fclose(f);
}

// ---- C + OpenBLAS: two products around a row-wise map, as one would write it by hand ----

typedef struct {
  size_t n, k, b;
  const float *xi, *v;
  float *s, *u, *t, *out;  // s [B, K], u [B, N], t [B, N] (tanh v), out [B, N] or [B]
} Ref;

// s = x Xi' (B = 1: a gemv)
static void ref_scores(Ref *r, const float *x) {
  int n = (int)r->n, k = (int)r->k, b = (int)r->b;
  if (b == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, k, n, 1.f, r->xi, n, x, 1, 0.f, r->s, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, k, n, 1.f, x, n, r->xi, n, 0.f,
                r->s, k);
}

// u = s Xi
static void ref_back(Ref *r) {
  int n = (int)r->n, k = (int)r->k, b = (int)r->b;
  if (b == 1)
    cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.f, r->xi, n, r->s, 1, 0.f, r->u, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, n, k, 1.f, r->s, k, r->xi, n, 0.f,
                r->u, n);
}

static void ref_step_b(Ref *r) {
  ref_scores(r, r->v);
  for (size_t i = 0; i < r->b; i++) {
    float *s = r->s + i * r->k, m = -INFINITY, sum = 0;
    for (size_t j = 0; j < r->k; j++) m = fmaxf(m, BETA * s[j]);
    for (size_t j = 0; j < r->k; j++) sum += s[j] = expf(BETA * s[j] - m);
    float inv = 1.f / sum;
    for (size_t j = 0; j < r->k; j++) s[j] *= inv;
  }
  ref_back(r);
  for (size_t i = 0; i < r->b * r->n; i++) r->out[i] = r->u[i] - r->v[i];
}

static void ref_euler_a(Ref *r) {
  for (size_t i = 0; i < r->b * r->n; i++) r->t[i] = tanhf(r->v[i]);
  ref_scores(r, r->t);
  for (size_t i = 0; i < r->b * r->k; i++) {
    float x = fmaxf(r->s[i], 0.f);
    r->s[i] = x * x;
  }
  ref_back(r);
  for (size_t i = 0; i < r->b * r->n; i++) r->out[i] = r->v[i] + DT * (r->u[i] - r->v[i]);
}

static void ref_energy(Ref *r) {
  ref_scores(r, r->v);
  for (size_t i = 0; i < r->b; i++) {
    const float *s = r->s + i * r->k, *v = r->v + i * r->n;
    float m = -INFINITY, sum = 0, q = 0;
    for (size_t j = 0; j < r->k; j++) m = fmaxf(m, BETA * s[j]);
    for (size_t j = 0; j < r->k; j++) sum += expf(BETA * s[j] - m);
    for (size_t j = 0; j < r->n; j++) q += v[j] * v[j];
    r->out[i] = 0.5f * q - (m + logf(sum)) / BETA;
  }
}

// ---- damc: the compiled kernels on the harness's states ----

typedef struct {
  DamcModel *model;
  Engine *e;
  KernelFn fn;
  void **bufs;
  const Plan *plan;
  float *result;   // the output buffer read (dx/dt of v, or E)
  float *state;    // the v state buffer (Euler updates it)
  size_t count;
} Damc;

static void damc_open(Damc *d, const char *text, const float *xi, const float *v, size_t n,
                      size_t k, size_t b, KernelKind kind) {
  DamcError err = {0};
  d->model = damc_model_from_string("bench", text, &err);
  DamcArray w = {2, {k, n, 0, 0}, xi, DAMC_F32};
  if (!d->model || !damc_bind_weight(d->model, "Xi", &w, NULL, &err) ||
      !damc_compile(d->model, DAMC_F32, &err))
    die("damc", err.message);
  d->e = damc_model_engine(d->model);
  StrBuf sb = {0};
  d->fn = engine_kernel(d->e, kind, &sb);
  if (!d->fn) die("damc kernel", sb_str(&sb));
  d->plan = d->e->plans[kind];
  EngineArray st[2] = {{DAMRT_F32, 2, {b, n}, v}, {DAMRT_F32, 0, {0}, NULL}};
  EngineArrays arrays = {st, NULL, NULL, NULL};
  d->bufs = engine_alloc_buffers(d->e, d->plan, b, 1, &arrays, &sb);
  if (!d->bufs) die("damc", sb_str(&sb));
  int out = kind == KERNEL_ENERGY ? plan_output_buf(d->plan, OUT_ENERGY, -1)
                                : plan_output_buf(d->plan, OUT_DXDT, 0);
  if (out < 0 || d->plan->state_buf[0] < 0) die("damc", "no output or state buffer in the plan");
  d->result = d->bufs[out];
  d->state = d->bufs[d->plan->state_buf[0]];
  d->count = kind == KERNEL_ENERGY ? b : b * n;
}

static void damc_call(Damc *d, size_t b) { d->fn(d->bufs, d->e->params, (int64_t)b); }

static void damc_close(Damc *d) {
  engine_free_buffers(d->plan, d->bufs);
  damc_model_free(d->model);
}

// ---- timing ----

typedef struct {
  const char *kernel, *contender;
  int which;  // 0 damc stepB, 1 damc eulerA, 2 damc energy, 3.. the same for C+BLAS
} Contender;

static Damc dm[3];
static Ref ref;
static float *v0;  // the harness's states, restored before each Euler step
static size_t B, NN;

static void call(int which) {
  switch (which) {
    case 0: damc_call(&dm[0], B); break;
    case 1:
      memcpy(dm[1].state, v0, B * NN * sizeof(float));
      damc_call(&dm[1], B);
      for (size_t i = 0; i < B * NN; i++) dm[1].state[i] += DT * dm[1].result[i];
      break;
    case 2: damc_call(&dm[2], B); break;
    case 3: ref_step_b(&ref); break;
    case 4: ref_euler_a(&ref); break;
    default: ref_energy(&ref); break;
  }
}

static double time_median(int which, double budget) {
  // The C+BLAS contender leaves OpenBLAS's threads polling after its calls, and they took the
  // second core from damc's threads timed next in this process (stepB at (784, 1000, 1): 51
  // us in 5 processes of 6, 28.5 us in all 6 with them stopped). A damc process alone has no
  // such neighbour: stop them before timing damc, as the engine does before it compiles.
  if (which < 3) damrt_blas_rest();
  call(which);  // warm-up
  double t0 = clock_seconds();
  call(which);
  double one = clock_seconds() - t0;
  int repeat = one > 0 ? (int)(budget / one) : 2000;
  if (repeat < 5) repeat = 5;
  if (repeat > 2000) repeat = 2000;
  double *ts = malloc((size_t)repeat * sizeof *ts);
  for (int r = 0; r < repeat; r++) {
    t0 = clock_seconds();
    call(which);
    ts[r] = clock_seconds() - t0;
  }
  qsort(ts, (size_t)repeat, sizeof *ts, cmpd);
  double med = ts[repeat / 2];
  free(ts);
  return med;
}

int main(int argc, char **argv) {
  int process = argc > 1 && !strcmp(argv[1], "--process");
  int a0 = process ? 2 : 1;
  if (argc < a0 + 4) {
    fprintf(stderr, "usage: bench_driver [--process] DIR N K B [--write] [--budget S]\n");
    return 2;
  }
  const char *dir = argv[a0];
  size_t n = (size_t)atol(argv[a0 + 1]), k = (size_t)atol(argv[a0 + 2]),
         b = (size_t)atol(argv[a0 + 3]);
  int write = 0, only = -1;
  double budget = 0.15;
  for (int i = a0 + 4; i < argc; i++) {
    if (!strcmp(argv[i], "--write")) write = 1;
    else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
    else if (!strcmp(argv[i], "--only-step")) only = 0;
  }
  B = b;
  NN = n;
  float *xi = read_f32(dir, "xi.f32", k * n);
  v0 = read_f32(dir, "v.f32", b * n);
  ref = (Ref){n, k, b, xi, v0, malloc(b * k * sizeof(float)), malloc(b * n * sizeof(float)),
              malloc(b * n * sizeof(float)), malloc(b * n * sizeof(float))};
  if (process) {
    ref_step_b(&ref);
    write_f32(dir, "out_proc_c.f32", ref.out, b * n);
    return 0;
  }
  damc_open(&dm[0], MODEL_B, xi, v0, n, k, b, KERNEL_RHS);
  damc_open(&dm[1], MODEL_A, xi, v0, n, k, b, KERNEL_RHS);
  damc_open(&dm[2], MODEL_B, xi, v0, n, k, b, KERNEL_ENERGY);
  static const char *const kernels[3] = {"stepB", "eulerA", "energy"};
  if (write) {
    char name[64];
    for (int c = 0; c < 3; c++) {
      call(c);
      snprintf(name, sizeof name, "out_%s_damc.f32", kernels[c]);
      write_f32(dir, name, c == 1 ? dm[1].state : dm[c].result, dm[c].count);
      call(3 + c);
      snprintf(name, sizeof name, "out_%s_cblas.f32", kernels[c]);
      write_f32(dir, name, ref.out, c == 2 ? b : b * n);
    }
  }
  for (int c = 0; c < 3; c++) {
    if (only >= 0 && c != only) continue;
    double td = time_median(c, budget), tc = time_median(3 + c, budget);
    printf("time %s damc %.9g\ntime %s cblas %.9g\n", kernels[c], td, kernels[c], tc);
  }
  fflush(stdout);
  for (int c = 0; c < 3; c++) damc_close(&dm[c]);
  free(xi);
  free(v0);
  free(ref.s);
  free(ref.u);
  free(ref.t);
  free(ref.out);
  return 0;
}

// Times a sweep of `damc run --method async` (the fast path: kept hidden states and the
// derived flip kernel, through the C API) against a hand-written O(N K) sweep in C, on the
// dense associative memory of KH16 (F = relu(x)^3, +-1 patterns), at (N, K) = (1000, 100)
// and (100, 300), and prints the ratios from one run. Not a test: it fails only when the two
// disagree on the states.
//
// Both run the heat-bath rule at a temperature where units keep flipping, so that no run
// stops early, with the same random order and noise streams (docs/cli.md: splitmix64), so
// their final states must be equal. A sweep's time is (t(S + 1 sweeps) - t(1 sweep)) / S,
// which removes the fixed costs of a run (buffers, the first and last evaluations); damc's
// sweep includes its per-sweep evaluation of E (the energy check), the reference's does not.
//
//   async_sweep [REPEAT]     (median of REPEAT runs each, default 7)
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "damc.h"

static const char *const MODEL =
    "dim N;\ndim K;\nlayer v[N] { L = sum(abs(v)); }\n"
    "layer h[K] { L = sum(relu(h)^3); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n";

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double F(double x) {
  double r = x > 0 ? x : 0;
  return r * r * r;
}

// The reference: h = Xi s once, then per unit i (random order) dE = -sum_mu [F(h_mu + D
// xi_mu,i) - F(h_mu)] with xi' stored [N][K], the heat-bath rule, h += D xi_:,i on a flip.
static void reference(const double *xit, double *s, size_t n, size_t k, size_t sweeps,
                      double T, uint64_t seed, double *h, size_t *order) {
  for (size_t m = 0; m < k; m++) h[m] = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t m = 0; m < k; m++) h[m] += xit[i * k + m] * s[i];
  uint64_t ord = seed, st = ~seed, noise = splitmix64(&st);
  for (size_t sweep = 0; sweep < sweeps; sweep++) {
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(splitmix64(&ord) % (uint64_t)(i + 1)), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    for (size_t u = 0; u < n; u++) {
      size_t i = order[u];
      const double *col = xit + i * k;
      double D = -2 * s[i], dE = 0;
      for (size_t m = 0; m < k; m++) dE -= F(h[m] + D * col[m]) - F(h[m]);
      double diff = s[i] > 0 ? -dE : dE;  // E(+1) - E(-1)
      double next = (double)(splitmix64(&noise) >> 11) * 0x1p-53 < 1 / (1 + exp(diff / T)) ? 1 : -1;
      if (next == s[i]) continue;
      s[i] = next;
      for (size_t m = 0; m < k; m++) h[m] += D * col[m];
    }
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static int bench(size_t n, size_t k, int repeat) {
  double *xi = malloc(n * k * sizeof *xi), *xit = malloc(n * k * sizeof *xit);
  double *s0 = malloc(n * sizeof *s0), *s = malloc(n * sizeof *s), *h = malloc(k * sizeof *h);
  size_t *order = malloc(n * sizeof *order);
  uint64_t g = 42 + n + k;
  for (size_t m = 0; m < k; m++)
    for (size_t i = 0; i < n; i++) xi[m * n + i] = xit[i * k + m] = splitmix64(&g) & 1 ? 1 : -1;
  for (size_t i = 0; i < n; i++) s0[i] = splitmix64(&g) & 1 ? 1 : -1;
  // A temperature at the scale of a flip's energy change near a stored pattern (2 F'(N) =
  // 6 N^2): the runs stay noisy, so every sweep flips units and none stops early.
  double T = 3.0 * (double)n * (double)n;
  DamcError err = {0};
  DamcModel *model = damc_model_from_string("kh16", MODEL, &err);
  DamcArray w = {2, {k, n}, xi, DAMC_F64};
  if (!model || !damc_bind_weight(model, "Xi", &w, NULL, &err) || !damc_compile(model, DAMC_F64, &err)) {
    fprintf(stderr, "%s", err.message);
    return 1;
  }
  const size_t S = 10;
  double t_damc[2], t_ref[2];
  int agree = 1;
  for (int which = 0; which < 2; which++) {
    size_t sweeps = which ? S + 1 : 1;
    double *td = malloc((size_t)repeat * sizeof *td), *tr = malloc((size_t)repeat * sizeof *tr);
    for (int r = -1; r < repeat; r++) {  // r = -1: a warm-up (compiles the flip kernel)
      DamcArray states[2] = {{1, {n}, s0, DAMC_F64}, {0, {0}, NULL, 0}};
      DamcBatch batch = {states, NULL, NULL};
      DamcRunOptions opt = {.method = DAMC_ASYNC, .max_steps = sweeps, .noise_T = T, .seed = 3};
      double t0 = now();
      DamcResults *res = damc_run(model, &batch, &opt, &err);
      double t1 = now();
      if (!res) {
        fprintf(stderr, "%s", err.message);
        return 1;
      }
      memcpy(s, s0, n * sizeof *s);
      double t2 = now();
      reference(xit, s, n, k, sweeps, T, 3, h, order);
      double t3 = now();
      const double *x = damc_result(res, "x_v", NULL);
      for (size_t i = 0; i < n; i++) agree &= x[i] == s[i];
      // Every sweep must have run (none without a change), or the timing means nothing.
      if (damc_result(res, "steps", NULL)[0] != (double)sweeps) {
        fprintf(stderr, "(N, K) = (%zu, %zu): %g sweeps changed a unit of %zu\n", n, k,
                damc_result(res, "steps", NULL)[0], sweeps);
        agree = 0;
      }
      damc_results_free(res);
      if (r >= 0) td[r] = t1 - t0, tr[r] = t3 - t2;
    }
    t_damc[which] = median(td, repeat);
    t_ref[which] = median(tr, repeat);
    free(td);
    free(tr);
  }
  double sd = (t_damc[1] - t_damc[0]) / (double)S, sr = (t_ref[1] - t_ref[0]) / (double)S;
  printf("(N, K) = (%zu, %zu): damc sweep %.1f us, C reference %.1f us, damc / reference = %.2f"
         "; whole 1-sweep run: damc %.1f us, reference %.1f us; states %s\n",
         n, k, 1e6 * sd, 1e6 * sr, sd / sr, 1e6 * t_damc[0], 1e6 * t_ref[0],
         agree ? "equal, every sweep run" : "DIFFER (or a run stopped early)");
  damc_model_free(model);
  free(xi);
  free(xit);
  free(s0);
  free(s);
  free(h);
  free(order);
  return agree ? 0 : 1;
}

int main(int argc, char **argv) {
  int repeat = argc > 1 ? atoi(argv[1]) : 7;
  if (repeat < 1) repeat = 1;
  int status = bench(1000, 100, repeat);
  status |= bench(100, 300, repeat);
  return status;
}

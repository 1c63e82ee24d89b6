// The float32 kernels against the float64 kernels (docs/theory.md §4.1.4): the same model
// compiled in both precisions, evaluated at the same sampled states.
#include <math.h>
#include <stdlib.h>

#include "check/checks.h"
#include "support/common.h"

static const double EPS32 = 1.1920928955078125e-07;

// The largest |a - b| / (16 eps32 (|b_i| + |b|_inf of its sample)) over a [samples, n]
// result (the bound of §4.1.4 for g; the same form for u and dx/dt).
static double worst_ratio(const DamrtTensor *a, const DamrtTensor *b, size_t samples) {
  if (!a || !b || a->count != b->count) return INFINITY;
  size_t per = b->count / samples;
  const double *x = a->data, *y = b->data;
  double worst = 0;
  for (size_t s = 0; s < samples; s++) {
    double inf = 0;
    for (size_t i = 0; i < per; i++) inf = fmax(inf, fabs(y[s * per + i]));
    for (size_t i = 0; i < per; i++) {
      size_t k = s * per + i;
      worst = fmax(worst, fabs(x[k] - y[k]) / (16 * EPS32 * (fabs(y[k]) + inf) + 1e-300));
    }
  }
  return worst;
}

bool check_precision(Engine *e, NetEnv *ne, int samples, CheckReport *r, StrBuf *fatal) {
  const Network *net = ne->net;
  StrBuf err = {0};
  // Bound in float32 first: a number of the model that float32 cannot hold is the model's
  // (the check is skipped, with the reason); the kernels, which compiled in float64, must
  // then compile (else the check cannot be computed: an error, never a verdict).
  Engine *f32 = engine_clone(e, &err);
  if (f32) {
    engine_target(f32, DAMRT_F32, false);
    if (!engine_compile(f32, STAGE_BIND, &err)) {
      engine_free(f32);
      f32 = NULL;
    }
  }
  if (!f32) {
    report_add(r, "float32", "network", NULL, VERDICT_SKIPPED, "the float32 kernels did not compile: %s",
               sb_str(&err));
    sb_free(&err);
    return true;
  }
  engine_want(f32, KERNEL_EVAL);
  if (!engine_compile(f32, STAGE_JIT, &err)) {
    sb_printf(fatal, "the float32 kernels of the float32 check did not compile: %s", sb_str(&err));
    engine_free(f32);
    sb_free(&err);
    return false;
  }
  int n = net->nlayers;
  double **data = xcalloc((size_t)n + 1, sizeof *data);
  EngineArray *states = xcalloc((size_t)n + 1, sizeof *states);
  for (int a = 0; a < n; a++) {
    data[a] = xcalloc((size_t)(samples * ne->n[a]) + 1, sizeof(double));
    // States rounded to float32 first, so that both precisions see the same points.
    for (int64_t i = 0; i < samples * ne->n[a]; i++) data[a][i] = (float)netenv_normal(ne);
    if (!net->layers[a].eliminated)  // x = u: drawn all the same, as in trajectories.c
      states[a] = (EngineArray){DAMRT_F64, 2, {(size_t)samples, (size_t)ne->n[a]}, data[a]};
  }
  // With every layer eliminated there is no state to sample: the one point they are at.
  bool integrated = false;
  for (int a = 0; a < n; a++) integrated |= !net->layers[a].eliminated;
  if (!integrated) samples = 1;
  EngineArrays arrays = {states, NULL, NULL, NULL};
  EngineResults r64 = {0}, r32 = {0};
  bool ok = engine_eval(e, &arrays, &r64, &err) && engine_eval(f32, &arrays, &r32, &err);
  if (!ok) {
    report_add(r, "float32", "network", NULL, VERDICT_FAIL, "an evaluation failed: %s", sb_str(&err));
  } else {
    double worst = 0;
    char name[80], which[80] = "";
    for (int a = 0; a < n; a++)
      for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s_%s", k == 0 ? "g" : k == 1 ? "u" : "dxdt", net->layers[a].name);
        const DamrtTensor *t64 = engine_result(&r64, name);
        if (!t64) continue;
        double ratio = worst_ratio(engine_result(&r32, name), t64, (size_t)samples);
        if (ratio > worst) {
          worst = ratio;
          snprintf(which, sizeof which, "%s", name);
        }
      }
    // E: against the size of its terms, sum_A |E_A| + |E - sum_A E_A| (what cancels in it).
    const DamrtTensor *e64 = engine_result(&r64, "E"), *e32 = engine_result(&r32, "E");
    double worst_e = 0;
    for (int s = 0; e64 && e32 && s < samples; s++) {
      double parts = 0, sum = 0;
      for (int a = 0; a < n; a++) {
        snprintf(name, sizeof name, "E_%s", net->layers[a].name);
        const DamrtTensor *p = engine_result(&r64, name);
        double v = p ? ((const double *)p->data)[s] : 0;
        parts += fabs(v);
        sum += v;
      }
      double energy = ((const double *)e64->data)[s];
      double scale = parts + fabs(energy - sum) + 1;
      worst_e = fmax(worst_e, fabs(((const double *)e32->data)[s] - energy) / (16 * EPS32 * scale));
    }
    bool pass = worst <= 1 && worst_e <= 1;
    CheckItem *it = report_add(
        r, "float32", "network", NULL, pass ? VERDICT_PASS : VERDICT_FAIL,
        pass ? "the float32 kernels agree with the float64 ones within 16 eps32 at %d sampled states "
               "(docs/theory.md §4.1.4)"
             : "the float32 kernels differ from the float64 ones by more than 16 eps32 at %d sampled "
               "states (docs/theory.md §4.1.4): a form that is not stable in float32",
        samples);
    report_number(it, "max error / bound (g, u, dx/dt)", worst);
    report_number(it, "max error / bound (E)", worst_e);
    if (!pass && which[0]) report_add(r, "float32", which, NULL, VERDICT_FAIL, "the worst output");
  }
  engine_results_free(&r64);
  engine_results_free(&r32);
  for (int a = 0; a < n; a++) free(data[a]);
  free(data);
  free(states);
  engine_free(f32);
  sb_free(&err);
  return true;
}

// What the engine's unit tests share on top of derive_fixture.h: results looked up by name,
// and the size of the terms that cancel in the energy, which float32 tolerances scale with.
#ifndef DAMC_TEST_ENGINE_FIXTURE_H
#define DAMC_TEST_ENGINE_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "derive_fixture.h"
#include "engine/engine.h"

// The values of result PREFIX_LAYER ("g_v"; `layer` NULL: PREFIX itself, "E"), or NULL.
static inline const double *fx_result(const EngineResults *r, const char *prefix, const char *layer) {
  char name[160];
  if (layer) snprintf(name, sizeof name, "%s_%s", prefix, layer);
  else snprintf(name, sizeof name, "%s", prefix);
  for (size_t i = 0; i < r->count; i++)
    if (!strcmp(r->items[i].name, name)) return r->items[i].tensor->data;
  return NULL;
}

// The size of the terms that cancel in the energy of sample s (from the float64 kernel's
// results): per layer sum_i |x_i g_i| + |L_A| + sum_i |I_i g_i|, with L_A = x.g - I.g - E_A
// (E_A = Lambda_A - I_A . g_A; x = u for an eliminated layer), and for the couplings
// sum_i |g_i (u_i - I_i)|, the terms of the interaction energy (-1/2 sum_A g_A . (u_A - I_A)
// for synapses). A float32 energy is good to a few ulps of this, not of |E|: Lambda =
// x.g - L cancels (to log 2 per unit of tanh for large |x|).
static inline double fx_energy_scale(Fixture *fx, const EngineResults *r, int s,
                                     double *const *states, double *const *inputs) {
  const Model *m = fx->m;
  double total = 0;
  for (int a = 0; a < m->nlayers; a++) {
    const LayerEq *l = &fx->net->layers[a];
    int64_t n = fx_layer_size(fx, a);
    const char *name = m->layers[a].name;
    const double *g = fx_result(r, "g", name) + s * n, *u = fx_result(r, "u", name) + s * n;
    double part = fx_result(r, "E", name)[s], xg = 0, ig = 0;
    const double *x = l->eliminated ? u : states[a] + s * n;
    for (int64_t i = 0; i < n; i++) {
      double in = l->input ? inputs[a][s * n + i] : 0;
      xg += x[i] * g[i];
      ig += in * g[i];
      total += fabs(x[i] * g[i]) + fabs(in * g[i]) + fabs(g[i] * (u[i] - in));
    }
    total += fabs(xg - ig - part);  // |L_A|
  }
  return total;
}

#endif

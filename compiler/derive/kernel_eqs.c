// The equations of each kernel (see kernel_eqs.h).
#include "derive/kernel_eqs.h"

#include <stdio.h>

#include "support/common.h"

static void add(KernelEq *out, int *n, OutputWhat what, const char *prefix, const Network *net,
                int layer, ExprId expr) {
  KernelEq *k = &out[(*n)++];
  if (layer < 0) snprintf(k->name, sizeof k->name, "%s", prefix);
  else snprintf(k->name, sizeof k->name, "%s_%s", prefix, net->layers[layer].name);
  k->what = what;
  k->layer = layer;
  k->expr = expr;
}

KernelEq *kernel_equations(const Network *net, KernelKind kind, int *count) {
  KernelEq *out = xcalloc((size_t)(5 * net->nlayers + 2), sizeof *out);
  int n = 0;
  if (kind == KERNEL_HVP) {
    for (int a = 0; a < net->nlayers; a++) add(out, &n, OUT_HVP, "hvp", net, a, net->layers[a].hvp);
    *count = n;
    return out;
  }
  if (kind == KERNEL_LAGR) {
    for (int a = 0; a < net->nlayers; a++) {
      add(out, &n, OUT_LAGR, "L", net, a, net->layers[a].L);
      add(out, &n, OUT_G, "g", net, a, net->layers[a].g);
    }
    *count = n;
    return out;
  }
  if (kind == KERNEL_FLIP) {
    for (int h = 0; h < net->nlayers; h++)
      if (net->layers[h].eliminated) add(out, &n, OUT_FLIP, "flip", net, h, net->layers[h].flip);
    *count = n;
    return out;
  }
  if (kind == KERNEL_JVP) {
    // In the states alone (the x-forms), differentiated along every integrated layer's d.
    ExprPool *p = net->pool;
    for (int a = 0; a < net->nlayers; a++) {
      const LayerEq *l = &net->layers[a];
      if (l->eliminated) continue;
      ExprId rhs = net->reduced ? net->reduced_dxdt[a] : l->dxdt_x, jvp = expr_const(p, 0);
      for (int b = 0; b < net->nlayers; b++)
        if (!net->layers[b].eliminated)
          jvp = expr_add(p, jvp, diff_jvp(p, rhs, net->layers[b].state, net->layers[b].dir));
      add(out, &n, OUT_JVP, "jvp", net, a, jvp);  // layer a's own term gives it a's shape
    }
    *count = n;
    return out;
  }
  // Activations first: of the integrated layers, then of the eliminated ones, each at its
  // instantaneous state x_h = u_h (which reads only integrated layers' activations).
  for (int a = 0; a < net->nlayers; a++)
    if (!net->layers[a].eliminated) add(out, &n, OUT_G, "g", net, a, net->layers[a].g);
  // The reduced energy reads the integrated layers alone but with a directed synapse into an
  // eliminated layer (its g_h . D g_b term): then E is computed as eval computes it.
  if (kind == KERNEL_ENERGY && (!net->reduced || !net->has_directed)) {
    add(out, &n, OUT_ENERGY, "E", net, -1, net->reduced ? net->reduced_energy : net->energy);
    *count = n;
    return out;
  }
  for (int h = 0; h < net->nlayers; h++) {
    if (!net->layers[h].eliminated) continue;
    add(out, &n, OUT_X, "x", net, h, net->layers[h].u);
    add(out, &n, OUT_G, "g", net, h, net->layers[h].g);
  }
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    if (kind == KERNEL_EVAL) add(out, &n, OUT_U, "u", net, a, l->u);
    if (!l->eliminated && kind != KERNEL_ENERGY) add(out, &n, OUT_DXDT, "dxdt", net, a, l->dxdt);
  }
  if (kind == KERNEL_EVAL) {
    for (int a = 0; a < net->nlayers; a++)
      add(out, &n, OUT_PART, "E", net, a, net->layers[a].energy_part);
  }
  if (kind == KERNEL_EVAL || kind == KERNEL_ENERGY) add(out, &n, OUT_ENERGY, "E", net, -1, net->energy);
  *count = n;
  return out;
}

const char *kernel_name(KernelKind kind) {
  static const char *const names[KERNEL_KINDS] = {"damc_rhs", "damc_eval", "damc_hvp", "damc_jvp",
                                                   "damc_lagr", "damc_flip", "damc_energy"};
  return names[kind];
}

const char *kernel_summary(KernelKind kind) {
  static const char *const summaries[KERNEL_KINDS] = {
      "dx/dt of every integrated layer",
      "E, and per layer g, u, dx/dt and its energy part E_A = Lambda_A - I_A . g_A",
      "H_A d_A of every layer (the Hessian-vector products)",
      "the Jacobian of dx/dt applied to d (the Jacobian-vector product)",
      "L_A and g_A of every layer at x_A (eliminated layers too: for damc check --emit-c)",
      "L_h(x_h + d_h) - L_h(x_h) of every eliminated layer (the single-unit rule's energy change)",
      "E alone (the reduced energy when layers are eliminated)"};
  return summaries[kind];
}

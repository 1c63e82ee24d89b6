// Float64 values of a whole network for the interpreter (see network_env.h).
#include "check/network_env.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

void netenv_init(NetEnv *ne, const Network *net, const int64_t *dims, const double *params,
                 const double *const *weights, uint64_t seed) {
  int n = net->nlayers;
  *ne = (NetEnv){net, NULL, NULL, NULL, NULL, NULL, NULL, {0}, {seed * 2654435761u + 1}, NULL, 0};
  ne->n = xcalloc((size_t)n + 1, sizeof *ne->n);
  double ***arrays[4] = {&ne->states, &ne->acts, &ne->inputs, &ne->dirs};
  for (int k = 0; k < 4; k++) *arrays[k] = xcalloc((size_t)n + 1, sizeof(double *));
  for (int a = 0; a < n; a++) {
    ne->n[a] = dims[net->layers[a].dim];
    for (int k = 0; k < 4; k++) (*arrays[k])[a] = xcalloc((size_t)ne->n[a] + 1, sizeof(double));
  }
  ne->weights = xcalloc((size_t)net->nweights + 1, sizeof *ne->weights);
  for (int w = 0; weights && w < net->nweights; w++) ne->weights[w] = weights[w];
  ne->env = (EvalEnv){dims, params, (const double *const *)ne->states,
                      (const double *const *)ne->acts, (const double *const *)ne->inputs,
                      ne->weights, (const double *const *)ne->dirs};
}

void netenv_free(NetEnv *ne) {
  for (int a = 0; a < ne->net->nlayers; a++) {
    free(ne->states[a]);
    free(ne->acts[a]);
    free(ne->inputs[a]);
    free(ne->dirs[a]);
  }
  free(ne->states);
  free(ne->acts);
  free(ne->inputs);
  free(ne->dirs);
  free(ne->weights);
  free(ne->n);
}

double netenv_normal(NetEnv *ne) { return rng_normal(&ne->rng); }

void netenv_set_inputs(NetEnv *ne, size_t b, bool sampled) {
  const EngineArray *given = ne->given_input;
  for (int a = 0; a < ne->net->nlayers; a++) {
    int64_t n = ne->n[a];
    const EngineArray *in = given && given[a].data ? &given[a] : NULL;
    size_t numel = 1;
    for (int k = 0; in && k < in->rank; k++) numel *= in->shape[k];
    size_t row = in && numel > (size_t)n ? b * (size_t)n : 0;  // [B, n] or one for all
    for (int64_t i = 0; i < n; i++) {
      double v = 0;
      if (in) v = engine_get(in->dtype, in->data, row + (size_t)i);
      else if (!given && sampled && ne->net->layers[a].has_input) v = netenv_normal(ne);
      ne->inputs[a][i] = v;
    }
  }
}

void netenv_eval(NetEnv *ne, ExprId e, double *out) {
  Evaluator *ev = eval_new(ne->net->pool, &ne->env);
  int64_t count;
  const double *v = eval_node(ev, e, &count);
  memcpy(out, v, (size_t)count * sizeof *out);
  eval_free(ev);
}

double netenv_scalar(NetEnv *ne, ExprId e) {
  Evaluator *ev = eval_new(ne->net->pool, &ne->env);
  double v = eval_scalar(ev, e);
  eval_free(ev);
  return v;
}

double netenv_energy_rate(NetEnv *ne, double **xdot, double *xdot_max) {
  const Network *net = ne->net;
  double rate = 0;
  *xdot_max = 0;
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    free(xdot[a]);
    xdot[a] = NULL;
    if (l->eliminated) continue;
    int64_t m = ne->n[a];
    xdot[a] = xcalloc((size_t)m + 1, sizeof(double));
    netenv_eval(ne, net->reduced ? net->reduced_dxdt[a] : l->dxdt_x, xdot[a]);
    memcpy(ne->dirs[a], xdot[a], (size_t)m * sizeof(double));
    double *hv = xcalloc((size_t)m + 1, sizeof(double)), quad = 0;
    netenv_eval(ne, l->hvp, hv);
    for (int64_t i = 0; i < m; i++) {
      quad += xdot[a][i] * hv[i];
      *xdot_max = fmax(*xdot_max, fabs(xdot[a][i]));
    }
    rate -= netenv_scalar(ne, l->tau) * quad;
    free(hv);
  }
  return rate;
}

bool symmetric_eig(double *m, int64_t n, double *values, bool vectors) {
  return LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)n, m,
                        (lapack_int)n, values) == 0;
}

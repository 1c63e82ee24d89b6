// The float64 values of a whole network for the reference interpreter (sym/eval.h): one
// array per layer for states, activations, inputs and directions, the weights and params as
// bound. Shared by the network-level checks of compiler/check/.
#ifndef DAMC_CHECK_NETWORK_ENV_H
#define DAMC_CHECK_NETWORK_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "derive/network.h"
#include "engine/engine.h"
#include "support/rng.h"
#include "sym/eval.h"

typedef struct {
  const Network *net;
  int64_t *n;  // per layer: its size
  double **states, **acts, **inputs, **dirs;
  const double **weights;
  EvalEnv env;
  Rng rng;
  // The user's inputs (per layer: [n_A] for every sample or [B, n_A], float32 or float64;
  // a layer's data NULL when not given), or NULL; borrowed.
  const EngineArray *given_input;
  // How many dense couplings 𝐖 = du/dg were computed (fixed_points.c), each 2d evaluations
  // of the currents for d state coordinates: what a fixed point costs, which tests count.
  unsigned couplings;
} NetEnv;

// `weights` (per weight, float64, or NULL when none are bound) are borrowed.
void netenv_init(NetEnv *ne, const Network *net, const int64_t *dims, const double *params,
                 const double *const *weights, uint64_t seed);
void netenv_free(NetEnv *ne);
// A standard normal deviate (deterministic from the seed).
double netenv_normal(NetEnv *ne);
// The inputs I_A of every layer declared `input`: sample `b` of the user's inputs
// (`given_input`) where given, else zeros, or standard normal values when the user gave
// none and `sampled`. Every check that evaluates E, u or dx/dt at a state a run of the
// user's arrays reached must see the inputs that run had.
void netenv_set_inputs(NetEnv *ne, size_t b, bool sampled);
// The value of `e` (freshly evaluated at the current arrays) into `out` (its numel values).
void netenv_eval(NetEnv *ne, ExprId e, double *out);
double netenv_scalar(NetEnv *ne, ExprId e);

// At the current states: dx/dt of every integrated layer into xdot[a] (freed and
// reallocated; NULL for an eliminated layer), its largest magnitude into *xdot_max, and
// dE/dt by the energy identity, -sum_A tau_A xdot_A' H_A xdot_A (docs/theory.md eq. 1.4).
// Leaves xdot in the directions.
double netenv_energy_rate(NetEnv *ne, double **xdot, double *xdot_max);

// Eigenvalues (ascending) and, when `vectors`, eigenvectors (columns, in place) of a
// symmetric row-major n x n matrix `m` (overwritten), by LAPACK's dsyevd. False when LAPACK
// fails.
bool symmetric_eig(double *m, int64_t n, double *values, bool vectors);

// Whether the current of layer `a` depends on the activation of layer `b` (layers from 63 on
// share the last bit of the mask: a conservative yes).
static inline bool coupled(const Network *net, int a, int b) {
  return expr_get(net->pool, net->layers[a].u)->acts >> (b < 63 ? b : 63) & 1;
}

#endif

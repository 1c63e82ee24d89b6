// What the files of compiler/check/ share: the network-level checks that check.c runs
// (energy_checks.c, trajectories.c), over the interpreter's values (network_env.h).
#ifndef DAMC_CHECK_CHECKS_H
#define DAMC_CHECK_CHECKS_H

#include "check/check.h"
#include "check/network_env.h"
#include "check/report.h"

// Is E bounded below (docs/theory.md §1.4): the growth of every activation, and for two
// linearly growing activations coupled by a synapse, the coupling's norm (needs weights).
void check_bounded_energy(NetEnv *ne, bool have_weights, CheckReport *r);
// The energy identity (1.4) at `samples` random states (docs/theory.md §4.1.6).
void check_energy_identity(NetEnv *ne, int samples, CheckReport *r);
// A model with a directed synapse has no energy (docs/theory.md §1.5): one item each.
void check_has_energy(const Network *net, CheckReport *r);
// The float32 kernels against the float64 ones of `e` at `samples` states (§4.1.4). False,
// with the message in `err`, when the float32 kernels do not compile although the model
// binds in float32 (the check cannot be computed: an error, not a verdict).
bool check_precision(Engine *e, NetEnv *ne, int samples, CheckReport *r, StrBuf *err);
// For a model without energy (a directed synapse): the residual Lyapunov function of
// docs/theory.md §4.4.5 at `samples` random states.
void check_residual_lyapunov(NetEnv *ne, int samples, CheckReport *r);
// The one integrated layer of a model of scheme (c1) of docs/theory.md §4.3 (H = I, every
// other layer eliminated, no self-coupling, an energy), for which Euler's step with
// dt <= 2 tau decreases E by at least (1/alpha - 1/2)|dv|^2; -1 when the model is not.
// Sets random states and directions (euler_step.c).
int euler_c1_layer(NetEnv *ne);
// The order test of scheme (c3) of docs/theory.md §4.3 at max(50, samples) random states:
// the median of e(delta)/e(delta/2), e(h) = E(x + h xdot) - E(x) - h dE/dt, in [3.5, 4.5].
void check_euler_order(NetEnv *ne, int samples, CheckReport *r);
// How Newton's method fared on a fixed point (docs/theory.md §4.4.1).
typedef struct {
  double rho;     // |u - x|_inf / (1 + |x|_inf) at the last iterate
  double step;    // the last step's |delta|_inf / (1 + |x|_inf) (infinity before any)
  int steps;
  bool resolved;  // rho <= 1e-10 and step <= 1e-10: the point is known to working precision
  // The dense coupling 𝐖 = du/dg Newton's method used (d x d, owned), when it is the same
  // at every state (the currents affine in the activations: synapses, inputs, energy terms
  // linear in each g), and so the fixed point's too; else NULL (and on the matrix-free path).
  double *w;
} Polished;

// Newton's method from the states set in `ne` to the fixed point near them, left in `ne`:
// with dense LU up to 1000 state coordinates, GMRES above (fixed_points.c). Free the result
// with polished_free.
Polished fixed_point_polish(NetEnv *ne);
void polished_free(Polished *p);
// Stability, the Jacobian's spectrum and dead units at the fixed point set in `ne` (after
// fixed_point_polish, whose outcome is `pol`; docs/theory.md §4.4, §4.5): densely up to 1000
// state coordinates, matrix-free above. `tau` per layer.
void check_fixed_point(NetEnv *ne, const double *tau, int index, uint64_t seed, const Polished *pol,
                       CheckReport *r);
// Trajectories of euler, rk4 and dopri5 (E never rising beyond rounding, §4.3; the (c1)
// bound for Euler), convexity and dead units at states along them (§4.2.4), and the fixed
// points they reach (stability §4.4.2, dead units §4.5). False only when the engine fails.
bool check_trajectories(Engine *e, NetEnv *ne, const CheckOptions *opt, CheckReport *r,
                        StrBuf *err);

#endif

// Integrators: explicit Euler (with optional Langevin noise), classic Runge–Kutta 4 and
// adaptive Dormand–Prince 5(4) for the dynamics tau_A dx_A/dt = u_A - x_A of a compiled
// model (docs/theory.md §1.2), over a batch of samples.
//
// The compiled model supplies the right-hand side as a callback over the whole batch; this
// module owns the time stepping around it: step-size control, per-sample convergence (a
// sample whose scaled residual falls to `tol` is frozen while the others go on), clamped
// coordinates, NaN/Inf detection naming the sample, the coordinate and the step, and a
// per-step hook for the trace writer and the energy monitor. Convergence is judged on dx/dt,
// never on the energy: the energy is flat along dead directions, where the state still moves
// (docs/theory.md §4.4.4, §4.5).
//
// The stop rule. The residual of coordinate i is tau_i |dx_i/dt| = |u_i - x_i| (docs/theory.md
// (1.2)): the distance of x_i from its update target u_i, where an Euler step with
// alpha = dt / tau = 1 would put it (§5.1), in the units of x and independent of tau. Its
// scaled residual is
//     rho_i = tau_i |dx_i/dt| / (1 + |x_i|),
// a sample's is the largest over its free (unclamped) coordinates, and the sample has
// converged when rho <= tol (tol > 0; a NaN never converges). The test is relative because
// u is computed in the kernels' precision, with a rounding error that grows with the size of
// the state, so an absolute bound on |dx/dt| can never be met by a layer whose state is
// large (Model B's memory layer reaches N); the 1 makes it absolute for states near 0.
//
// Precision. Whatever the dtype of the kernels, the integrator keeps its own states in
// float64 and rounds them to the kernel's dtype only to call the rhs (and to hand them to
// on_step and back to the caller). A float32 state would drop every increment below half an
// ulp of the state, so a run near a large fixed point would stall a few ulps short of it.
//
// All scratch memory is allocated once per call and freed before it returns; the step loop
// never allocates. There is no global state (the noise generator lives in the call), so
// several runs may go on at once on different threads.
#ifndef DAMRT_INTEGRATE_H
#define DAMRT_INTEGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "damrt_error.h"
#include "damrt_tensor.h"

// The system to integrate: dx/dt = f(x) for `batch` independent samples of `dim`
// coordinates each (every integrated layer of the model, concatenated).
typedef struct {
  // Writes dxdt = f(x) for every sample of the batch. `x` and `dxdt` are [batch][dim]
  // row-major arrays of `dtype`, never overlapping. `x` is either the caller's state or a
  // scratch state of the integrator (DAMRT_ALIGNMENT-aligned and zero-padded like a tensor);
  // neither pointer may be kept after the call. Returns DAMRT_OK, or a status with `err`
  // filled in (`err` may be NULL), which stops the run with that status.
  DamrtStatus (*rhs)(void *ctx, const void *x, void *dxdt, DamrtError *err);
  void *ctx;
  size_t batch, dim;  // both > 0
  DamrtDtype dtype;   // of the state and of dx/dt
  // [dim], each finite and > 0: the time constant of the coordinate's layer. The
  // deterministic step needs no tau (f already holds the 1/tau_A, so Euler's step is
  // alpha_A = dt / tau_A per layer, docs/theory.md §5.1); tau turns dx/dt into the residual
  // u - x of the stop rule, and sets the noise amplitude and the time scale below which a
  // dopri5 step counts as an underflow.
  const double *tau;
} DamrtSystem;

// DAMRT_ITERATE is the fixed-point iteration x <- u: the Euler step with each coordinate's own
// dt = tau_i (alpha = 1 in every layer, docs/theory.md §5.1; with eliminated hidden layers,
// the update of Ramsauer et al. 2020, §5.2). Its `dt` only advances t (one unit a step); it
// stops a sample by the same rule, the change of an update tau |dx/dt| being u - x. It also
// stops, as not converged, a sample caught in a cycle of period 2 (two coupled integrated
// layers can make x <- u overshoot back and forth): one whose state after step k+1 is within
// tol of the state after step k-1 (the largest |x_i - x'_i| / (1 + |x_i|) over its free
// coordinates) while the change of step k+1 is not small, its scaled residual above 100 tol
// (tol > 0). Iterations that converge while alternating with a ratio of modulus below 0.99
// are left to converge.
typedef enum { DAMRT_EULER, DAMRT_RK4, DAMRT_DOPRI5, DAMRT_ITERATE } DamrtMethod;

typedef struct {
  DamrtMethod method;
  double dt;      // > 0: the fixed step of euler and rk4, the first step tried by dopri5
  double dt_max;  // dopri5 only: the largest step (0: no limit)
  double rtol;    // dopri5 only, >= 0: relative error tolerance per step
  double atol;    // dopri5 only, > 0: absolute error tolerance per step
  size_t max_steps;  // the most accepted steps (0: only evaluate, check and report step 0)
  // >= 0: a sample has converged when its scaled residual (the stop rule above: the largest
  // tau_i |dx_i/dt| / (1 + |x_i|) over its free coordinates) is at most tol, checked
  // at the initial state and after every accepted step; it is then frozen. With tol = 0 no
  // sample converges and the run takes max_steps steps. The command line's defaults are
  // DAMRT_TOL_F32 and DAMRT_TOL_F64 (see runtime/README.md for why).
  double tol;
  // NULL or [batch][dim]: a nonzero entry clamps the coordinate: its dx/dt is set to 0 after
  // every evaluation of f, it gets no noise, and its value is never written.
  const uint8_t *clamp;
  // Langevin temperature, finite and >= 0 (0: none); only with DAMRT_EULER, which is then
  // Euler–Maruyama: x_i += dt f_i(x) + sqrt(2 T dt / tau_i) N(0, 1). The stationary variance
  // of dx/dt = -x/tau is then T (exactly T / (1 - dt / (2 tau)) for the discrete chain).
  double noise_T;
  // The noise stream. Sample b draws from its own xoshiro256** generator, whose four state
  // words are outputs 4b+1 .. 4b+4 of splitmix64 started at `seed`; normal deviates come in
  // pairs from Marsaglia's polar method (uniforms of 53 bits: next >> 11 times 2^-53), drawn
  // step by step over the sample's free coordinates in increasing order. A sample's noise so
  // depends only on the seed, its index and its own history, never on the other samples.
  // The integer stream is exact everywhere; the deviates go through libm's log and sqrt, so
  // runs are bit-identical across machines whose libm rounds log the same way (glibc does).
  uint64_t seed;
  // Called with step 0 and the initial state before any step, then after every accepted step,
  // with the current state (rounded to the system's dtype) and its dx/dt ([batch][dim] of the
  // system's dtype, clamped coordinates 0; both valid only during the call) and `active`
  // ([batch]: 1 for samples not yet converged at this state, 0 for frozen ones). A frozen
  // sample's state no longer changes, so a monitor comparing consecutive calls may look at
  // every sample. A status other than DAMRT_OK (with `err` filled in) stops the run with that
  // status. May be NULL.
  DamrtStatus (*on_step)(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                         const uint8_t *active, DamrtError *err);
  void *step_ctx;
} DamrtRunOptions;

// The default stop tolerances, by the kernels' dtype (runtime/README.md, "Stopping", gives
// the measurements): 100 times the default dopri5 rtol of each precision (1e-6, 1e-9), since
// dopri5 cannot bring the residual below about 3 to 10 rtol; for float32 that is also about
// 840 ulps of 1 (2^-23), well above the rounding of u - x.
#define DAMRT_TOL_F32 1e-4
#define DAMRT_TOL_F64 1e-7

// Where the run met a NaN or an infinity: the caller maps `coordinate` to a layer and an
// index and may rewrite the message with the layer's name.
typedef struct {
  bool found;         // the run failed because of a non-finite value
  size_t sample, coordinate;
  size_t step;        // the step that produced it (0: the initial state)
  double t;           // the time it would have reached
  double value;       // the value: NaN, +Inf or -Inf
  // false: the state is non-finite (at step 0: the caller's initial state; later: the run
  // diverged). true (only at step 0): the initial state is finite everywhere, but the first
  // evaluation of dx/dt gave this value at this coordinate: a parameter, an input or an
  // initial value is bad there, and nothing has been integrated yet.
  bool in_dxdt;
} DamrtNonfinite;

// A sample's largest scaled residual under the stop rule (top of this header).
typedef struct {
  size_t sample;
  size_t coordinate;  // where it is (the caller maps it to a layer)
  double value;       // rho = residual / scale, compared with tol; NaN if dx/dt was NaN
                      // there or was never evaluated (the run failed first)
  double residual;    // tau_i |dx_i/dt| = |u_i - x_i|
  double scale;       // 1 + |x_i|
} DamrtResidual;

typedef struct {
  size_t steps;         // accepted steps taken (the most any sample took)
  double t;             // the time reached
  size_t *sample_steps; // NULL or [batch], caller-allocated: steps until the sample converged
                        // (0 if it had converged at the start) or was stopped in a cycle,
                        // else `steps`
  double *sample_t;     // NULL or [batch], caller-allocated: the time it converged or was
                        // stopped, else `t`
  uint8_t *converged;   // NULL or [batch], caller-allocated: 1 if the sample converged
  // The rest is one anonymous member, whose first field is a scalar, so that a positional
  // initializer of the fields above ending in {0}, as {0, 0, steps, NULL, converged, {0}},
  // stays complete for -Wmissing-field-initializers and -Wmissing-braces.
  struct {
    size_t unconverged;  // samples that did not converge (all of them when tol = 0)
    DamrtNonfinite nonfinite;
    // NULL or [batch], caller-allocated: the sample's largest scaled residual rho where it
    // stopped (at most tol if it converged; NaN as in DamrtResidual.value).
    double *residual;
    // NULL or [batch], caller-allocated: the coordinate of that residual.
    size_t *residual_coordinate;
    // The sample with the largest residual where it stopped (a NaN counting as largest):
    // when some samples did not converge, one of them, and one that ran out of steps when
    // any did. What a warning about max_steps names.
    DamrtResidual worst;
    // DAMRT_ITERATE only: the samples stopped in a cycle of period 2 (counted in
    // `unconverged`), and the residual of the first of them: the change of its last step.
    size_t cycled;
    DamrtResidual cycle;
  };
} DamrtRunResult;

// "euler", "rk4" or "dopri5" ("invalid" for anything else).
const char *damrt_method_name(DamrtMethod method);

// Integrates the batch `x` ([batch][dim] of sys->dtype) in place from t = 0 until every
// sample has converged or max_steps steps were accepted, and fills `res` (may be NULL).
//
// Fails with DAMRT_E_ARGUMENT, before calling anything and leaving `x` and `res` untouched,
// on a NULL system, options, state or rhs, a zero batch or dim, an unknown dtype or method,
// a tau that is not finite and positive, dt not finite and positive, noise with a method
// other than euler, a negative or NaN tol, for dopri5 rtol < 0, atol <= 0 or dt_max < 0, and
// a batch whose scratch states would not fit in a size_t; with DAMRT_E_NOMEM, likewise
// untouched, when the scratch memory cannot be allocated. During the run it fails with
//   - the status of `rhs` or `on_step` when one of them fails;
//   - DAMRT_E_VALUE when the initial state or the state after an accepted step holds a NaN or
//     an infinity (in samples still moving), with res->nonfinite filled in and the message
//       sample 3, coordinate 17: the state is NaN at step 42 (t = 1.25)
//   - DAMRT_E_VALUE when the initial state is finite but dx/dt at it is not (the rhs is then
//     called once), with res->nonfinite.in_dxdt set and the message
//       sample 0, coordinate 5: dx/dt is NaN at step 0 (t = 0), at a finite initial state
//   - DAMRT_E_VALUE when dopri5's step falls below 1e-12 (float64) or 1e-6 (float32) times
//     the time scale max(t, min tau): the error estimate kept rejecting (a stiff system, a
//     discontinuous f, or a NaN at every step size, which the message then names as above,
//     followed by " at every step size down to dt = ... (dopri5)").
// After any failure during the run, `x` holds the last finite accepted state and `res`
// describes it (steps, t, and the per-sample arrays filled as at the end of a run).
// For float32 the state returned is the float64 state rounded once to float32.
//
// dopri5's error of a step is the largest, over the samples still moving, of the root mean
// square over the sample's free coordinates of err_i / (atol + rtol * max(|x_i|, |x_new_i|)),
// so every sample meets the tolerance while all share one step size. A step is accepted when
// that error is at most 1; the next step is h * min(10, max(0.2, 0.9 * error^(-1/5))), with
// no growth right after a rejection, and at most dt_max.
DamrtStatus damrt_integrate(const DamrtSystem *sys, const DamrtRunOptions *opt, void *x,
                            DamrtRunResult *res, DamrtError *err);

#endif

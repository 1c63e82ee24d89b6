// Unit tests of the integrators: the observed order of each method on a linear decay with a
// known solution, dopri5's error control on nonlinear systems, per-sample convergence and
// freezing, clamping, Langevin noise (the Ornstein–Uhlenbeck stationary variance and
// reproducibility), iterate's stop in a cycle of period 2, NaN/Inf detection, callbacks that
// fail, and every refused argument with its message. Each numerical test runs on float32 and float64 states.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "damrt_integrate.h"

static const DamrtDtype DTYPES[] = {DAMRT_F32, DAMRT_F64};
static const DamrtMethod METHODS[] = {DAMRT_EULER, DAMRT_RK4, DAMRT_DOPRI5};

static double get(DamrtDtype dtype, const void *p, size_t i) {
  return dtype == DAMRT_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void put(DamrtDtype dtype, void *p, size_t i, double v) {
  if (dtype == DAMRT_F32) {
    ((float *)p)[i] = (float)v;
  } else {
    ((double *)p)[i] = v;
  }
}

// A state of n elements of either dtype (doubles are big enough for both).
static void *state_new(size_t n) { return calloc(n, sizeof(double)); }

static bool same_bits(DamrtDtype dtype, const void *a, const void *b, size_t i) {
  size_t size = damrt_dtype_size(dtype);
  return memcmp((const char *)a + i * size, (const char *)b + i * size, size) == 0;
}

// ---- the systems ----

// dx_i/dt = (u_i - x_i) / tau_i for every sample: x_i(t) = u_i + (x_i(0) - u_i) e^(-t/tau_i).
typedef struct {
  DamrtDtype dtype;
  size_t batch, dim;
  const double *u, *tau;
  size_t calls;
} Decay;

static DamrtStatus decay_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  Decay *d = ctx;
  d->calls++;
  for (size_t b = 0; b < d->batch; b++) {
    for (size_t i = 0; i < d->dim; i++) {
      size_t at = b * d->dim + i;
      put(d->dtype, dxdt, at, (d->u[i] - get(d->dtype, x, at)) / d->tau[i]);
    }
  }
  return DAMRT_OK;
}

// dx/dt = -rate_b x: each sample decays at its own rate.
typedef struct {
  DamrtDtype dtype;
  size_t batch, dim;
  const double *rate;
} Rates;

static DamrtStatus rates_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  Rates *r = ctx;
  for (size_t b = 0; b < r->batch; b++) {
    for (size_t i = 0; i < r->dim; i++) {
      size_t at = b * r->dim + i;
      put(r->dtype, dxdt, at, -r->rate[b] * get(r->dtype, x, at));
    }
  }
  return DAMRT_OK;
}

// The logistic equation dx/dt = x (1 - x), one coordinate per sample.
typedef struct {
  DamrtDtype dtype;
  size_t batch;
  size_t calls;
} Logistic;

static double logistic_exact(double x0, double t) { return 1 / (1 + (1 / x0 - 1) * exp(-t)); }

static DamrtStatus logistic_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  Logistic *l = ctx;
  l->calls++;
  for (size_t b = 0; b < l->batch; b++) {
    double v = get(l->dtype, x, b);
    put(l->dtype, dxdt, b, v * (1 - v));
  }
  return DAMRT_OK;
}

// A rotation: dx/dt = -y, dy/dt = x, one sample.
static DamrtStatus rotation_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  DamrtDtype dtype = *(const DamrtDtype *)ctx;
  put(dtype, dxdt, 0, -get(dtype, x, 1));
  put(dtype, dxdt, 1, get(dtype, x, 0));
  return DAMRT_OK;
}

// Unit time constants, for systems of up to 8 coordinates whose tau does not matter.
static const double TAU1[8] = {1, 1, 1, 1, 1, 1, 1, 1};

static DamrtSystem make_system(DamrtStatus (*rhs)(void *, const void *, void *, DamrtError *),
                               void *ctx, size_t batch, size_t dim, DamrtDtype dtype,
                               const double *tau) {
  return (DamrtSystem){.rhs = rhs, .ctx = ctx, .batch = batch, .dim = dim, .dtype = dtype,
                       .tau = tau};
}

// ---- orders of convergence ----

// The largest error at the final time of the decay from 0 towards u = (2, -1) with
// tau = (1, 0.5), integrated to t = 2 with `n` steps of 2/n (dopri5 with dt_max = dt and
// tolerances so loose that every step is accepted at exactly dt: a fixed-step dopri5).
static double decay_error(DamrtMethod method, size_t n, DamrtDtype dtype, void *final) {
  static const double u[2] = {2, -1}, tau[2] = {1, 0.5};
  Decay d = {dtype, 1, 2, u, tau, 0};
  DamrtSystem sys = make_system(decay_rhs, &d, 1, 2, dtype, tau);
  double dt = 2.0 / (double)n;
  DamrtRunOptions opt = {.method = method, .dt = dt, .dt_max = dt, .rtol = 1, .atol = 1,
                         .max_steps = n};
  double x[2] = {0, 0};
  DamrtRunResult res = {0};
  DamrtError err = {0};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_OK);
  CHECK_EQ(res.steps, n);
  CHECK_NEAR(res.t, 2, 1e-12);
  double worst = 0;
  for (size_t i = 0; i < 2; i++) {
    double exact = u[i] - u[i] * exp(-res.t / tau[i]);
    worst = fmax(worst, fabs(get(dtype, x, i) - exact));
  }
  if (final) memcpy(final, x, sizeof x);
  return worst;
}

// The observed order log2(e(dt) / e(dt/2)) must be within 0.3 of the method's order. The
// leading error term gives exactly p; the next one shifts it by O(dt / tau) (observed: +0.002
// for euler at dt = 0.02, +0.12 for rk4 and +0.23 for dopri5 at dt = 0.1, with tau down to
// 0.5), and 0.3 still tells every order from its neighbours. The errors stay far above
// float64 rounding (the smallest, dopri5's at dt = 0.05, is 2.4e-10).
static void test_orders(void) {
  static const struct {
    DamrtMethod method;
    size_t n;
    double order;
  } cases[] = {{DAMRT_EULER, 100, 1}, {DAMRT_RK4, 20, 4}, {DAMRT_DOPRI5, 20, 5}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    double coarse = decay_error(cases[c].method, cases[c].n, DAMRT_F64, NULL);
    double fine = decay_error(cases[c].method, 2 * cases[c].n, DAMRT_F64, NULL);
    double order = log2(coarse / fine);
    printf("%s: error %.3e at dt = %g, %.3e at dt = %g: observed order %.3f\n",
           damrt_method_name(cases[c].method), coarse, 2.0 / (double)cases[c].n, fine,
           1.0 / (double)cases[c].n, order);
    CHECK(fabs(order - cases[c].order) <= 0.3);
  }
}

// float32 follows float64 up to float32 rounding: about 6e-8 per step on values of order 1,
// damped by the decay; 1e-5 leaves room for a hundred steps of it.
static void test_float32_matches_float64(void) {
  for (size_t m = 0; m < 3; m++) {
    double x32[2], x64[2];
    decay_error(METHODS[m], 100, DAMRT_F32, x32);
    decay_error(METHODS[m], 100, DAMRT_F64, x64);
    for (size_t i = 0; i < 2; i++) CHECK_NEAR(get(DAMRT_F32, x32, i), x64[i], 1e-5);
  }
}

// ---- dopri5 on nonlinear systems ----

typedef struct {
  DamrtDtype dtype;
  const double *x0;  // logistic: initial values; NULL: the rotation
  size_t batch;
  double rtol, atol;
  double worst;      // the largest |x - exact| / (atol + rtol |exact|) seen
  double max_dt, last_t;
} Accuracy;

static DamrtStatus accuracy_step(void *ctx, size_t step, double t, const void *x,
                                 const void *dxdt, const uint8_t *active, DamrtError *err) {
  Accuracy *a = ctx;
  a->max_dt = fmax(a->max_dt, t - a->last_t);
  a->last_t = t;
  for (size_t b = 0; b < a->batch; b++) {
    if (!active[b]) continue;
    size_t dim = a->x0 ? 1 : 2;
    for (size_t i = 0; i < dim; i++) {
      // The rotation's scale is its radius, 1: a coordinate near 0 is not more accurate.
      double exact = a->x0 ? logistic_exact(a->x0[b], t) : i == 0 ? cos(t) : sin(t);
      double ratio = fabs(get(a->dtype, x, b * dim + i) - exact) /
                     (a->atol + a->rtol * (a->x0 ? fabs(exact) : 1));
      a->worst = fmax(a->worst, ratio);
    }
  }
  return DAMRT_OK;
}

// The logistic equation from three starting points, until |dx/dt| < 10 rtol. dopri5 controls
// the local error of its embedded 4th-order solution and propagates the 5th-order one, and
// the flow contracts towards 1, so the global error stays below a small multiple of the
// tolerance: we require 10 (observed under 1.2). (A much smaller tol would not be reached:
// near the fixed point the step grows to the edge of dopri5's stability region, about 3.3
// here, where x - 1 wanders at the level of the tolerance, 1e-7 .. 1e-6 for rtol = 1e-6.)
// Returns the worst ratio.
static double run_logistic(DamrtDtype dtype, double dt, double rtol, double atol,
                           size_t *rejected) {
  static const double x0[3] = {0.1, 0.5, 2.0};
  Logistic l = {dtype, 3, 0};
  DamrtSystem sys = make_system(logistic_rhs, &l, 3, 1, dtype, TAU1);
  Accuracy acc = {dtype, x0, 3, rtol, atol, 0, 0, 0};
  DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = dt, .rtol = rtol, .atol = atol,
                         .max_steps = 10000, .tol = 10 * rtol, .on_step = accuracy_step,
                         .step_ctx = &acc};
  double x[3];
  for (size_t b = 0; b < 3; b++) put(dtype, x, b, x0[b]);
  size_t steps[3];
  double when[3];
  uint8_t converged[3];
  DamrtRunResult res = {.sample_steps = steps, .sample_t = when, .converged = converged};
  DamrtError err = {0};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_OK);
  for (size_t b = 0; b < 3; b++) {
    CHECK_EQ(converged[b], 1);
    CHECK(steps[b] <= res.steps);
    double exact = logistic_exact(x0[b], when[b]);
    CHECK(fabs(get(dtype, x, b) - exact) <= 10 * (atol + rtol * exact));
  }
  // Every dopri5 attempt costs 6 evaluations (FSAL), plus one at the start.
  if (rejected) *rejected = (l.calls - 1) / 6 - res.steps;
  printf("dopri5 logistic (%s, rtol %g, atol %g, dt0 %g): %zu steps, %zu rhs calls, worst "
         "error %.3f of the tolerance\n",
         damrt_dtype_name(dtype), rtol, atol, dt, res.steps, l.calls, acc.worst);
  return acc.worst;
}

static void test_dopri5_logistic(void) {
  CHECK(run_logistic(DAMRT_F64, 0.01, 1e-6, 1e-9, NULL) <= 10);
  // float32 cannot resolve 1e-9 + 1e-6 |x| much better than its own rounding (6e-8 |x|).
  CHECK(run_logistic(DAMRT_F32, 0.01, 1e-4, 1e-6, NULL) <= 10);
  // The error follows the tolerance over four orders of magnitude.
  CHECK(run_logistic(DAMRT_F64, 0.01, 1e-5, 1e-8, NULL) <= 10);
  CHECK(run_logistic(DAMRT_F64, 0.01, 1e-9, 1e-12, NULL) <= 10);
  // A first step far too large is rejected until the error estimate accepts it.
  size_t rejected = 0;
  CHECK(run_logistic(DAMRT_F64, 50, 1e-6, 1e-9, &rejected) <= 10);
  CHECK(rejected >= 2);
}

// The rotation is an isometry: it neither damps nor amplifies errors, so the global error is
// at most the sum of the local ones, and each accepted step's is at most about sqrt(2) times
// the tolerance (an RMS of 1 over two coordinates) when the estimate is right. Over 200 steps
// (t = 16 in float64, 111 in float32) we require the worst error to stay below `steps`
// tolerances; observed: 0.01 to 0.1 of that.
static void test_dopri5_rotation(void) {
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    double rtol = dtype == DAMRT_F32 ? 1e-4 : 1e-8, atol = rtol * 1e-2;
    DamrtSystem sys = make_system(rotation_rhs, &dtype, 1, 2, dtype, TAU1);
    Accuracy acc = {dtype, NULL, 1, rtol, atol, 0, 0, 0};
    DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = 0.1, .rtol = rtol, .atol = atol,
                           .max_steps = 200, .on_step = accuracy_step, .step_ctx = &acc};
    double x[2];
    put(dtype, x, 0, 1);
    put(dtype, x, 1, 0);
    DamrtRunResult res = {0};
    DamrtError err = {0};
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_OK);
    CHECK(res.t > 10);
    printf("dopri5 rotation (%s, rtol %g): t = %.2f in %zu steps, worst error %.3f of the "
           "tolerance\n",
           damrt_dtype_name(dtype), rtol, res.t, res.steps, acc.worst);
    CHECK(acc.worst <= (double)res.steps);
  }
}

// dx/dt = x^2 from 1 blows up at t = 1: dopri5's step shrinks with the distance to the pole
// until it underflows, while the state is still finite.
static DamrtStatus blowup_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  DamrtDtype dtype = *(const DamrtDtype *)ctx;
  put(dtype, dxdt, 0, get(dtype, x, 0) * get(dtype, x, 0));
  return DAMRT_OK;
}

static void test_dopri5_underflow(void) {
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    DamrtSystem sys = make_system(blowup_rhs, &dtype, 1, 1, dtype, TAU1);
    DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = 0.1, .rtol = 1e-6, .atol = 1e-6,
                           .max_steps = 100000};
    double x[1];
    put(dtype, x, 0, 1);
    DamrtRunResult res = {0};
    DamrtError err = {0};
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
    printf("dopri5 blow-up (%s): %s\n", damrt_dtype_name(dtype), err.message);
    CHECK(strncmp(err.message, "dopri5: the step size underflowed to dt = ", 42) == 0);
    char want[64];
    snprintf(want, sizeof want, "at step %zu (t = ", res.steps + 1);
    CHECK(strstr(err.message, want) != NULL);
    CHECK(strstr(err.message, dtype == DAMRT_F32 ? "below 1e-06 times the time scale 1"
                                                 : "below 1e-12 times the time scale 1") != NULL);
    CHECK(!res.nonfinite.found);
    CHECK(fabs(res.t - 1) < 1e-4);
    CHECK(isfinite(get(dtype, x, 0)) && get(dtype, x, 0) > 1e4);
  }
}

// dt_max bounds every step.
static void test_dopri5_dt_max(void) {
  static const double x0[1] = {0.1};
  Logistic l = {DAMRT_F64, 1, 0};
  DamrtSystem sys = make_system(logistic_rhs, &l, 1, 1, DAMRT_F64, TAU1);
  Accuracy acc = {DAMRT_F64, x0, 1, 1e-6, 1e-9, 0, 0, 0};
  DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = 1, .dt_max = 0.05, .rtol = 1e-6,
                         .atol = 1e-9, .max_steps = 100, .on_step = accuracy_step,
                         .step_ctx = &acc};
  double x[1] = {0.1};
  DamrtRunResult res = {0};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  CHECK_EQ(res.steps, 100);
  CHECK(acc.max_dt <= 0.05 + 1e-15);
  CHECK_NEAR(res.t, 5, 1e-9);
}

// ---- per-sample convergence ----

typedef struct {
  DamrtDtype dtype;
  size_t batch, dim;
  const size_t *expect_steps;  // NULL: do not check the active mask against it
  const double *frozen;        // [batch][dim] the expected frozen states, or NULL
  double *first_frozen;        // [batch][dim] the state when the sample became inactive
  uint8_t *seen_frozen;
  size_t calls;
} Freeze;

static DamrtStatus freeze_step(void *ctx, size_t step, double t, const void *x,
                               const void *dxdt, const uint8_t *active, DamrtError *err) {
  Freeze *f = ctx;
  CHECK_EQ(step, f->calls);
  f->calls++;
  for (size_t b = 0; b < f->batch; b++) {
    if (f->expect_steps) CHECK_EQ(active[b], step < f->expect_steps[b]);
    if (active[b]) continue;
    for (size_t i = 0; i < f->dim; i++) {
      size_t at = b * f->dim + i;
      double v = get(f->dtype, x, at);
      if (!f->seen_frozen[b]) f->first_frozen[at] = v;
      // A frozen sample never moves again.
      CHECK(v == f->first_frozen[at]);
      if (f->frozen) CHECK(v == f->frozen[at]);
    }
    f->seen_frozen[b] = 1;
  }
  return DAMRT_OK;
}

// The start of the freezing tests: (1, -0.5) in every sample.
static void freeze_start(DamrtDtype dtype, size_t batch, void *x) {
  for (size_t b = 0; b < batch; b++) {
    put(dtype, x, 2 * b, 1);
    put(dtype, x, 2 * b + 1, -0.5);
  }
}

// Euler on dx/dt = -rate_b x with rates 1, 2, 4, 0.5: the test replays the integrator's
// arithmetic to know exactly when each sample converges and where it stops: a float64 state
// v, dx/dt computed by the rhs from v rounded to the dtype (and rounded itself), the stop rule
// |dx/dt| <= tol (1 + |v|) (tau = 1), and the state handed back rounded to the dtype. The
// replay does its roundings through storage of the dtype, as the integrator does (GCC 12.2 at
// -O2 miscompiles the equivalent `dtype == DAMRT_F32 ? (double)(float)v : v` on a pair of
// values: its SLP vectoriser drops the rounding).
static void test_freeze_euler(DamrtDtype dtype) {
  enum { B = 4, D = 2 };
  static const double rate[B] = {1, 2, 4, 0.5};
  const double dt = 0.1, tol = 1e-3;
  double frozen[B * D];
  size_t expect[B], most = 0;
  for (size_t b = 0; b < B; b++) {
    double v[D], view[D], d[D];
    freeze_start(DAMRT_F64, 1, v);
    size_t n = 0;
    for (;;) {
      bool done = true;
      for (size_t i = 0; i < D; i++) {
        put(dtype, view, i, v[i]);
        put(dtype, d, i, -rate[b] * get(dtype, view, i));
        done = done && fabs(get(dtype, d, i)) <= tol * (1 + fabs(v[i]));
      }
      if (done) break;
      for (size_t i = 0; i < D; i++) v[i] += dt * get(dtype, d, i);
      n++;
    }
    expect[b] = n;
    most = n > most ? n : most;
    for (size_t i = 0; i < D; i++) {
      put(dtype, view, i, v[i]);
      frozen[b * D + i] = get(dtype, view, i);
    }
  }
  CHECK(expect[0] != expect[1] && expect[1] != expect[2] && expect[0] != expect[3]);
  Rates r = {dtype, B, D, rate};
  DamrtSystem sys = make_system(rates_rhs, &r, B, D, dtype, TAU1);
  double first[B * D];
  uint8_t seen[B] = {0};
  Freeze f = {dtype, B, D, expect, frozen, first, seen, 0};
  DamrtRunOptions opt = {.method = DAMRT_EULER, .dt = dt, .max_steps = 1000, .tol = tol,
                         .on_step = freeze_step, .step_ctx = &f};
  void *x = state_new(B * D);
  freeze_start(dtype, B, x);
  size_t steps[B];
  double when[B];
  uint8_t converged[B];
  DamrtRunResult res = {.sample_steps = steps, .sample_t = when, .converged = converged};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  CHECK_EQ(res.steps, most);
  CHECK_EQ(f.calls, most + 1);
  for (size_t b = 0; b < B; b++) {
    CHECK_EQ(steps[b], expect[b]);
    CHECK_EQ(converged[b], 1);
    CHECK_NEAR(when[b], dt * (double)expect[b], 1e-12);
    for (size_t i = 0; i < D; i++) CHECK(get(dtype, x, b * D + i) == frozen[b * D + i]);
  }
  // With too few steps, the slow samples (rates 1 and 0.5) are reported as not converged,
  // with their residuals; the largest is the slowest sample's, at its larger coordinate.
  freeze_start(dtype, B, x);
  size_t limit = expect[1];
  opt.max_steps = limit;
  opt.on_step = NULL;
  double resid[B];
  size_t resid_at[B];
  res.residual = resid;
  res.residual_coordinate = resid_at;
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  CHECK_EQ(res.steps, limit);
  CHECK_EQ(res.unconverged, 2);
  for (size_t b = 0; b < B; b++) {
    bool done = expect[b] <= limit;
    CHECK_EQ(converged[b], done);
    CHECK_EQ(steps[b], done ? expect[b] : limit);
    CHECK_NEAR(when[b], done ? dt * (double)expect[b] : res.t, 1e-12);
    CHECK(done ? resid[b] <= tol : resid[b] > tol);
    // rate |x| / (1 + |x|) grows with |x|, and x0 keeps the larger magnitude.
    CHECK_EQ(resid_at[b], 0);
    // The residual is rate |x| / (1 + |x|) at the state returned (exact in float64; the
    // float32 state returned is the rounding of the float64 state the scale uses).
    double v = get(dtype, x, b * D);
    CHECK_NEAR(resid[b], rate[b] * fabs(v) / (1 + fabs(v)), dtype == DAMRT_F32 ? 1e-6 : 1e-15);
  }
  CHECK_EQ(res.worst.sample, 3);
  CHECK_EQ(res.worst.coordinate, 0);
  CHECK(res.worst.value == resid[3]);
  CHECK(res.worst.value == res.worst.residual / res.worst.scale);
  // The scale is 1 + |x| of the state as stored: float32 rounds x, float64 is exact.
  CHECK_NEAR(res.worst.scale, 1 + fabs(get(dtype, x, 3 * D)), dtype == DAMRT_F32 ? 1e-6 : 1e-15);
  printf("euler freeze (%s): %zu of %d samples unconverged after %zu steps, the worst sample "
         "%zu, coordinate %zu: residual %.4g = %.4g / %.4g\n",
         damrt_dtype_name(dtype), res.unconverged, B, res.steps, res.worst.sample,
         res.worst.coordinate, res.worst.value, res.worst.residual, res.worst.scale);
  // tol = 0: nothing converges, and every residual is still reported.
  freeze_start(dtype, B, x);
  opt.tol = 0;
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  CHECK_EQ(res.unconverged, B);
  CHECK_EQ(res.worst.sample, 3);
  for (size_t b = 0; b < B; b++) CHECK(resid[b] > 0 && resid[b] <= res.worst.value);
  free(x);
}

// RK4 and dopri5: samples converge at different steps, stay frozen, and meet the criterion.
static void test_freeze_other(DamrtDtype dtype, DamrtMethod method) {
  enum { B = 4, D = 2 };
  static const double rate[B] = {1, 2, 4, 0.5};
  const double tol = 1e-4;
  Rates r = {dtype, B, D, rate};
  DamrtSystem sys = make_system(rates_rhs, &r, B, D, dtype, TAU1);
  double first[B * D];
  uint8_t seen[B] = {0};
  Freeze f = {dtype, B, D, NULL, NULL, first, seen, 0};
  DamrtRunOptions opt = {.method = method, .dt = 0.1, .rtol = 1e-6, .atol = 1e-9,
                         .max_steps = 10000, .tol = tol, .on_step = freeze_step,
                         .step_ctx = &f};
  void *x = state_new(B * D);
  freeze_start(dtype, B, x);
  size_t steps[B];
  double when[B];
  uint8_t converged[B];
  DamrtRunResult res = {.sample_steps = steps, .sample_t = when, .converged = converged};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  size_t most = 0;
  for (size_t b = 0; b < B; b++) {
    CHECK_EQ(converged[b], 1);
    most = steps[b] > most ? steps[b] : most;
    // Converged: every |dx/dt| = rate |x| is at most tol (1 + |x|) (the state returned is
    // the float64 state rounded, hence the 1e-6 for float32), and the state is on the
    // solution.
    for (size_t i = 0; i < D; i++) {
      double v = get(dtype, x, b * D + i);
      CHECK(rate[b] * fabs(v) <= tol * (1 + fabs(v)) * (1 + 1e-6));
      double exact = (i == 0 ? 1 : -0.5) * exp(-rate[b] * when[b]);
      CHECK(fabs(v - exact) < 1e-5);
    }
  }
  // The faster the decay, the earlier the sample stops.
  CHECK(steps[2] < steps[1] && steps[1] < steps[0] && steps[0] < steps[3]);
  CHECK_EQ(res.steps, most);
  CHECK_NEAR(when[3], res.t, 1e-12);
  free(x);
}

static void test_freeze(void) {
  for (size_t d = 0; d < 2; d++) {
    test_freeze_euler(DTYPES[d]);
    test_freeze_other(DTYPES[d], DAMRT_RK4);
    test_freeze_other(DTYPES[d], DAMRT_DOPRI5);
  }
}

// ---- clamping ----

// A chain: dx0 = x1 - x0, dx1 = x2 - x1, dx2 = 1 - x2.
typedef struct {
  DamrtDtype dtype;
  size_t batch;
  const uint8_t *clamp;
} Chain;

static DamrtStatus chain_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  Chain *c = ctx;
  for (size_t b = 0; b < c->batch; b++) {
    const size_t o = 3 * b;
    double v0 = get(c->dtype, x, o), v1 = get(c->dtype, x, o + 1), v2 = get(c->dtype, x, o + 2);
    put(c->dtype, dxdt, o, v1 - v0);
    put(c->dtype, dxdt, o + 1, v2 - v1);
    put(c->dtype, dxdt, o + 2, 1 - v2);
  }
  return DAMRT_OK;
}

static DamrtStatus chain_step(void *ctx, size_t step, double t, const void *x,
                              const void *dxdt, const uint8_t *active, DamrtError *err) {
  const Chain *c = ctx;
  for (size_t i = 0; i < 3 * c->batch; i++) {
    if (c->clamp[i]) CHECK(get(c->dtype, dxdt, i) == 0);
  }
  return DAMRT_OK;
}

static void test_clamp(void) {
  enum { B = 4 };
  // Sample 0 holds x1 = 5 (so x0 -> 5 although x2 -> 1 keeps pulling on x1); sample 1 holds
  // x0 = -0 and x2 = 3 (x1 -> 3); sample 2 is free; sample 3 is entirely clamped.
  static const uint8_t clamp[3 * B] = {0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1};
  static const double init[3 * B] = {0, 5, 0, -0.0, 0, 3, 0, 0, 0, 7, 8, 9};
  static const double want[3 * B] = {5, 5, 1, -0.0, 3, 3, 1, 1, 1, 7, 8, 9};
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    for (size_t m = 0; m < 4; m++) {
      bool noisy = m == 3;
      Chain c = {dtype, B, clamp};
      DamrtSystem sys = make_system(chain_rhs, &c, B, 3, dtype, TAU1);
      // tol 1e-4: float32 resolves the fixed point 5 to about 5e-7, so its |dx/dt| cannot
      // get much below 1e-6.
      DamrtRunOptions opt = {.method = noisy ? DAMRT_EULER : METHODS[m], .dt = 0.05,
                             .rtol = 1e-6, .atol = 1e-9, .max_steps = noisy ? 100 : 10000,
                             .tol = noisy ? 0 : 1e-4, .clamp = clamp,
                             .noise_T = noisy ? 0.1 : 0, .seed = 7, .on_step = chain_step,
                             .step_ctx = &c};
      void *x = state_new(3 * B), *x0 = state_new(3 * B);
      for (size_t i = 0; i < 3 * B; i++) put(dtype, x, i, init[i]);
      memcpy(x0, x, 3 * B * damrt_dtype_size(dtype));
      size_t steps[B];
      uint8_t converged[B];
      double resid[B];
      DamrtRunResult res = {.sample_steps = steps, .converged = converged, .residual = resid};
      DamrtError err = {0};
      CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_OK);
      for (size_t i = 0; i < 3 * B; i++) {
        if (clamp[i]) {
          CHECK(same_bits(dtype, x, x0, i));  // including the sign of -0
        } else if (!noisy) {
          CHECK(fabs(get(dtype, x, i) - want[i]) < 1e-3);
        } else {
          CHECK(get(dtype, x, i) != init[i]);
        }
      }
      if (!noisy) {
        for (size_t b = 0; b < 3; b++) CHECK_EQ(converged[b], 1);
        CHECK_EQ(converged[3], 1);  // nothing can move: converged at the start
        CHECK_EQ(steps[3], 0);
        CHECK(resid[3] == 0);
        CHECK_EQ(res.unconverged, 0);
      }
      free(x);
      free(x0);
    }
  }
}

// ---- Langevin noise ----

typedef struct {
  DamrtDtype dtype;
  size_t batch, dim, burn_in;
  const double *tau;
  double sum[2], sum_sq[2];  // per tau group, over samples and steps after the burn-in
  size_t count[2];
} Moments;

static DamrtStatus moments_step(void *ctx, size_t step, double t, const void *x,
                                const void *dxdt, const uint8_t *active, DamrtError *err) {
  Moments *m = ctx;
  if (step <= m->burn_in) return DAMRT_OK;
  for (size_t b = 0; b < m->batch; b++) {
    for (size_t i = 0; i < m->dim; i++) {
      double v = get(m->dtype, x, b * m->dim + i);
      size_t g = m->tau[i] == 1 ? 0 : 1;
      m->sum[g] += v;
      m->sum_sq[g] += v * v;
      m->count[g]++;
    }
  }
  return DAMRT_OK;
}

// Euler–Maruyama on dx/dt = -x/tau is x' = (1 - a) x + sqrt(2 T a) N(0, 1) with a = dt/tau,
// whose stationary variance is exactly T / (1 - a/2) (T in the limit dt -> 0). 1000 samples
// x 2 coordinates per tau, 20 tau_max after a burn-in of 5 tau_max (which leaves e^-10 of the
// initial zero variance): x^2 has autocorrelation e^(-2|s|/tau), integrating to tau, so the
// variance estimate has a relative standard deviation sqrt(2 tau / (L N)) = 0.7% for tau = 1
// (L = 20, N = 2000) and 0.35% for tau = 0.25. We allow 3% (over 4 standard deviations);
// for the mean, whose standard deviation is sqrt(T 2 tau / (L N)) = 0.005, we allow 0.03.
static void test_langevin_variance(DamrtDtype dtype) {
  enum { B = 1000, D = 4 };
  static const double tau[D] = {1, 0.25, 1, 0.25}, u[D] = {0, 0, 0, 0};
  const double T = 0.5, dt = 0.01;
  Decay sysctx = {dtype, B, D, u, tau, 0};
  DamrtSystem sys = make_system(decay_rhs, &sysctx, B, D, dtype, tau);
  Moments m = {dtype, B, D, 500, tau, {0, 0}, {0, 0}, {0, 0}};
  DamrtRunOptions opt = {.method = DAMRT_EULER, .dt = dt, .max_steps = 2500, .noise_T = T,
                         .seed = 12345, .on_step = moments_step, .step_ctx = &m};
  void *x = state_new(B * D);
  DamrtRunResult res = {0};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  for (size_t g = 0; g < 2; g++) {
    double a = dt / (g == 0 ? 1 : 0.25), want = T / (1 - a / 2);
    double mean = m.sum[g] / (double)m.count[g];
    double var = m.sum_sq[g] / (double)m.count[g] - mean * mean;
    printf("langevin (%s): tau %g: variance %.4f, expected %.4f (T = %g), mean %+.4f\n",
           damrt_dtype_name(dtype), g == 0 ? 1.0 : 0.25, var, want, T, mean);
    CHECK(fabs(var / want - 1) <= 0.03);
    CHECK(fabs(mean) <= 0.03);
  }
  free(x);
}

// Runs `steps` noisy Euler steps of dx/dt = -x/tau for `batch` samples of 3 coordinates.
static void noisy_run(DamrtDtype dtype, size_t batch, uint64_t seed, size_t steps, void *x) {
  static const double tau[3] = {1, 0.5, 2}, u[3] = {0, 0, 0};
  Decay d = {dtype, batch, 3, u, tau, 0};
  DamrtSystem sys = make_system(decay_rhs, &d, batch, 3, dtype, tau);
  DamrtRunOptions opt = {.method = DAMRT_EULER, .dt = 0.1, .max_steps = steps,
                         .noise_T = 1, .seed = seed};
  memset(x, 0, batch * 3 * damrt_dtype_size(dtype));
  CHECK_EQ(damrt_integrate(&sys, &opt, x, NULL, NULL), DAMRT_OK);
}

static void test_langevin_reproducible(void) {
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    size_t size = damrt_dtype_size(dtype);
    double a[3 * 3], b[3 * 3], c[3 * 3], single[3];
    noisy_run(dtype, 3, 42, 50, a);
    noisy_run(dtype, 3, 42, 50, b);
    noisy_run(dtype, 3, 43, 50, c);
    CHECK(memcmp(a, b, 9 * size) == 0);  // same seed: the same bits
    CHECK(memcmp(a, c, 9 * size) != 0);
    // Sample 0's noise does not depend on the other samples of the batch.
    noisy_run(dtype, 1, 42, 50, single);
    CHECK(memcmp(a, single, 3 * size) == 0);
  }
  // The stream itself is part of the contract (damrt_integrate.h): this pins it. The state
  // after 3 steps, x = 0.9 x + sqrt(0.2) N etc., from seed 42 (the tolerance only allows for
  // a libm whose log differs in the last bit).
  double x[2 * 3];
  noisy_run(DAMRT_F64, 2, 42, 3, x);
  static const double pinned[2 * 3] = {0.60754256654555538, 0.44710491384231793,
                                       0.60455296463419583, 0.011528751643434421,
                                       -1.4990341567610614, 0.28380582118166825};
  for (size_t i = 0; i < 6; i++) CHECK_NEAR(x[i], pinned[i], 1e-13);
}

// ---- NaN and Inf ----

// dx/dt = 1 everywhere, except at sample 1, coordinate 2, where f is `bad` once x > 0.35.
typedef struct {
  DamrtDtype dtype;
  double bad;
} Ramp;

static DamrtStatus ramp_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  const Ramp *r = ctx;
  for (size_t i = 0; i < 2 * 3; i++) {
    put(r->dtype, dxdt, i, i == 5 && get(r->dtype, x, i) > 0.35 ? r->bad : 1);
  }
  return DAMRT_OK;
}

static void test_nonfinite(void) {
  static const double tau[3] = {1, 1, 1};
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    static const struct {
      DamrtMethod method;
      double bad;
      const char *message;
      size_t step;
    } cases[] = {
        // Euler: the state after step 4 is 0.4, where f is NaN, so step 5 is NaN.
        {DAMRT_EULER, NAN, "sample 1, coordinate 2: the state is NaN at step 5 (t = 0.5)", 5},
        {DAMRT_EULER, INFINITY, "sample 1, coordinate 2: the state is Inf at step 5 (t = 0.5)",
         5},
        {DAMRT_EULER, -INFINITY,
         "sample 1, coordinate 2: the state is -Inf at step 5 (t = 0.5)", 5},
        // RK4: step 4's last stage, at 0.4, is NaN.
        {DAMRT_RK4, NAN, "sample 1, coordinate 2: the state is NaN at step 4 (t = 0.4)", 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      Ramp r = {dtype, cases[c].bad};
      DamrtSystem sys = make_system(ramp_rhs, &r, 2, 3, dtype, tau);
      DamrtRunOptions opt = {.method = cases[c].method, .dt = 0.1, .max_steps = 100};
      void *x = state_new(6);
      DamrtRunResult res = {0};
      DamrtError err = {0};
      CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
      CHECK_STREQ(err.message, cases[c].message);
      CHECK(res.nonfinite.found);
      CHECK_EQ(res.nonfinite.sample, 1);
      CHECK_EQ(res.nonfinite.coordinate, 2);
      CHECK_EQ(res.nonfinite.step, cases[c].step);
      CHECK(!res.nonfinite.in_dxdt);
      CHECK_NEAR(res.nonfinite.t, 0.1 * (double)cases[c].step, 1e-12);
      CHECK(isnan(cases[c].bad) ? isnan(res.nonfinite.value)
                                : res.nonfinite.value == cases[c].bad);
      // The state is the last finite one.
      CHECK_EQ(res.steps, cases[c].step - 1);
      for (size_t i = 0; i < 6; i++) {
        CHECK_NEAR(get(dtype, x, i), 0.1 * (double)(cases[c].step - 1), 1e-6);
      }
      free(x);
    }

    // dopri5 rejects the NaN steps and shrinks its step towards x = 0.35 until it
    // underflows; the message names where the NaN was.
    Ramp r = {dtype, NAN};
    DamrtSystem sys = make_system(ramp_rhs, &r, 2, 3, dtype, tau);
    DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = 0.1, .rtol = 1e-6, .atol = 1e-9,
                           .max_steps = 100000};
    void *x = state_new(6);
    DamrtRunResult res = {0};
    DamrtError err = {0};
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
    printf("dopri5 NaN (%s): %s\n", damrt_dtype_name(dtype), err.message);
    CHECK(strncmp(err.message, "sample 1, coordinate 2: the state is NaN at step ", 49) == 0);
    CHECK(strstr(err.message, "at every step size down to dt = ") != NULL);
    CHECK(res.nonfinite.found && res.nonfinite.sample == 1 && res.nonfinite.coordinate == 2);
    CHECK_EQ(res.nonfinite.step, res.steps + 1);
    CHECK(get(dtype, x, 5) <= 0.35 && get(dtype, x, 5) > 0.34);
    free(x);

    // A NaN in the initial state is step 0.
    Decay dec = {dtype, 2, 3, (const double[3]){0, 0, 0}, tau, 0};
    sys = make_system(decay_rhs, &dec, 2, 3, dtype, tau);
    opt = (DamrtRunOptions){.method = DAMRT_RK4, .dt = 0.1, .max_steps = 10};
    x = state_new(6);
    put(dtype, x, 1, NAN);
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
    CHECK_STREQ(err.message, "sample 0, coordinate 1: the state is NaN at step 0 (t = 0)");
    CHECK_EQ(dec.calls, 0);
    CHECK_EQ(res.steps, 0);
    CHECK(res.nonfinite.found && !res.nonfinite.in_dxdt && res.nonfinite.step == 0);
    free(x);

    // f is NaN at x > 0.35 but the run stops at max_steps with x = 0.4 (Euler, 4 steps): it
    // succeeds, sample 1's residual is NaN and counts as the largest.
    r = (Ramp){dtype, NAN};
    sys = make_system(ramp_rhs, &r, 2, 3, dtype, tau);
    opt = (DamrtRunOptions){.method = DAMRT_EULER, .dt = 0.1, .max_steps = 4, .tol = 1e-3};
    x = state_new(6);
    double resid[2];
    res = (DamrtRunResult){.residual = resid};
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_OK);
    CHECK_EQ(res.unconverged, 2);
    CHECK_NEAR(resid[0], 1 / (1 + get(dtype, x, 0)), 1e-6);
    CHECK(isnan(resid[1]));
    CHECK(res.worst.sample == 1 && res.worst.coordinate == 2 && isnan(res.worst.value));
    free(x);
  }
}

// ---- the stop rule on large states, float32's last ulps, NaN at t = 0 ----

// The command line's dopri5 tolerances (compiler/api/damc.c) and the runtime's default stop
// tolerances, by dtype.
static double default_rtol(DamrtDtype dtype) { return dtype == DAMRT_F32 ? 1e-6 : 1e-9; }
static double default_atol(DamrtDtype dtype) { return dtype == DAMRT_F32 ? 1e-8 : 1e-11; }
static double default_tol(DamrtDtype dtype) {
  return dtype == DAMRT_F32 ? DAMRT_TOL_F32 : DAMRT_TOL_F64;
}

// A state that grows to 1e3: dx/dt = (S - x) / tau from 0, S = 1000, tau = 1. The residual is
// S e^(-t/tau) and the scale 1 + S (1 - e^(-t/tau)), so the sample converges at
//   t* = tau ln(S (1 + tol) / (tol (1 + S)))        (tau ln(1/tol) to 1e-3),
// 9.21 for tol = 1e-4 and 16.1 for 1e-7, where |dx/dt| = tol (1 + S) / tau is still 1000 tol:
// an absolute test would go on (dopri5's wander alone, at rtol S, is 10 tol and more). A
// fixed-step method multiplies the residual by R(-dt/tau) per step (1 - h for euler, the
// Taylor polynomial of e^-h to order 4 for rk4), so it stops at the first n with
// R^n <= e^(-t*/tau): within one step of n* = t* / (-tau ln R), i.e. t*/dt times 1.054 for
// euler and 1.000 for rk4 at dt = 0.1 tau. dopri5 must stop between 0.95 t* and t* plus its
// largest step (3.5 tau, the edge of its stability region), in fewer steps than rk4.
static void test_scaled_growth(void) {
  static const double S = 1000, tau = 1, dt = 0.1;
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    double tol = default_tol(dtype);
    double tstar = tau * log(S * (1 + tol) / (tol * (1 + S)));
    for (size_t m = 0; m < 3; m++) {
      Decay dec = {dtype, 1, 1, &S, &tau, 0};
      DamrtSystem sys = make_system(decay_rhs, &dec, 1, 1, dtype, &tau);
      DamrtRunOptions opt = {.method = METHODS[m], .dt = dt, .rtol = default_rtol(dtype),
                             .atol = default_atol(dtype), .max_steps = 100000, .tol = tol};
      double x[1] = {0};
      size_t steps[1];
      double when[1], resid[1];
      uint8_t converged[1];
      DamrtRunResult res = {.sample_steps = steps, .sample_t = when, .converged = converged,
                            .residual = resid};
      CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
      CHECK_EQ(converged[0], 1);
      CHECK_EQ(res.unconverged, 0);
      CHECK(resid[0] <= tol);
      double v = get(dtype, x, 0);
      CHECK(fabs(S - v) / tau >= 500 * tol);  // |dx/dt| where it stopped
      double h = dt / tau;
      double R = METHODS[m] == DAMRT_EULER ? 1 - h : 1 - h + h * h / 2 - h * h * h / 6 +
                                                         h * h * h * h / 24;
      double nstar = tstar / (-tau * log(R));
      printf("growth to %g (%s, %s, tol %g): converged in %zu steps at t = %.3f; t* = %.3f "
             "(%.1f steps of dt), discrete n* = %.1f\n",
             S, damrt_dtype_name(dtype), damrt_method_name(METHODS[m]), tol, steps[0],
             when[0], tstar, tstar / dt, nstar);
      if (METHODS[m] == DAMRT_DOPRI5) {
        CHECK(when[0] >= 0.95 * tstar && when[0] <= tstar + 3.5 * tau);
        CHECK((double)steps[0] <= tstar / dt);
      } else {
        CHECK(fabs((double)steps[0] - nstar) <= 1);
        CHECK((double)steps[0] * dt <= (METHODS[m] == DAMRT_EULER ? 1.06 : 1.01) * tstar + dt);
      }
    }
  }
}

// Model B (examples/model_b.dam) with K = 20 patterns of N = 784 signs, beta = 8: v[N] with
// tau 1 and g = v, h[K] with tau 0.05 and g = softmax(beta h); u_h = Xi v, u_v = Xi' g_h.
// dx/dt is computed in the dtype, as the kernels do. From pattern 3 with every 4th sign
// flipped (the set F), softmax saturates at once (its arguments differ by hundreds), so v
// relaxes to the pattern, v_i = xi_3i (1 - 2 e^-t [i in F]), and h_3 grows to N = 784. The
// scaled residual of v is 2 e^-t / (2 - 2 e^-t). h_k follows u_hk = A_k - 2 e^-t B_k
// (A_k = xi_k . xi_3, B_k the same sum over F) with tau_h, so it lags by
// u_hk - h_k = 2 e^-t B_k tau_h / (1 - tau_h): the scaled residual c_k e^-t with
// c_k = 2 |B_k| tau_h / ((1 - tau_h)(1 + |A_k|)), largest for a pattern nearly orthogonal to
// xi_3 (small A_k). The run must stop at t* = ln(max(1 + tol, max_k c_k) / tol), within 2%
// for the fixed-step methods (their rate per step is e^-dt to 0.25%), and dopri5 between
// 0.9 t* and t* + 4 (its largest step) in at most 300 steps.
enum { MB_N = 784, MB_K = 20, MB_DIM = MB_N + MB_K };
static const double MB_BETA = 8, MB_TAU_H = 0.05;

typedef struct {
  DamrtDtype dtype;
  signed char xi[MB_K][MB_N];
} ModelB;

#define MODEL_B_RHS(T, EXP)                                                        \
  static void model_b_##T(const ModelB *m, const T *x, T *dxdt) {                  \
    const T *v = x, *h = x + MB_N;                                                 \
    T g[MB_K], hmax = h[0], z = 0;                                                 \
    for (size_t k = 1; k < MB_K; k++) hmax = h[k] > hmax ? h[k] : hmax;            \
    for (size_t k = 0; k < MB_K; k++) z += g[k] = EXP((T)MB_BETA * (h[k] - hmax)); \
    for (size_t k = 0; k < MB_K; k++) g[k] /= z;                                   \
    for (size_t i = 0; i < MB_N; i++) {                                            \
      T u = 0;                                                                     \
      for (size_t k = 0; k < MB_K; k++) u += (T)m->xi[k][i] * g[k];                \
      dxdt[i] = u - v[i];                                                          \
    }                                                                              \
    for (size_t k = 0; k < MB_K; k++) {                                            \
      T u = 0;                                                                     \
      for (size_t i = 0; i < MB_N; i++) u += (T)m->xi[k][i] * v[i];                \
      dxdt[MB_N + k] = (u - h[k]) / (T)MB_TAU_H;                                   \
    }                                                                              \
  }
MODEL_B_RHS(float, expf)
MODEL_B_RHS(double, exp)
#undef MODEL_B_RHS

static DamrtStatus model_b_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  const ModelB *m = ctx;
  if (m->dtype == DAMRT_F32) {
    model_b_float(m, x, dxdt);
  } else {
    model_b_double(m, x, dxdt);
  }
  return DAMRT_OK;
}

static void test_model_b(void) {
  static ModelB m;
  uint64_t state = 12345;
  for (size_t k = 0; k < MB_K; k++) {
    for (size_t i = 0; i < MB_N; i++) {
      state = state * 6364136223846793005u + 1442695040888963407u;
      m.xi[k][i] = (state >> 63) ? 1 : -1;
    }
  }
  static double tau[MB_DIM];
  for (size_t i = 0; i < MB_DIM; i++) tau[i] = i < MB_N ? 1 : MB_TAU_H;
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    m.dtype = dtype;
    double tol = default_tol(dtype), c = 1 + tol;
    for (size_t k = 0; k < MB_K; k++) {
      double a = 0, b = 0;
      for (size_t i = 0; i < MB_N; i++) {
        a += m.xi[k][i] * m.xi[3][i];
        if (i % 4 == 0) b += m.xi[k][i] * m.xi[3][i];
      }
      c = fmax(c, 2 * fabs(b) * MB_TAU_H / ((1 - MB_TAU_H) * (1 + fabs(a))));
    }
    double tstar = log(c / tol);
    for (size_t mi = 0; mi < 3; mi++) {
      DamrtSystem sys = make_system(model_b_rhs, &m, 1, MB_DIM, dtype, tau);
      // The command line's defaults: dt a tenth of the smallest tau, 10000 steps at most.
      DamrtRunOptions opt = {.method = METHODS[mi], .dt = 0.1 * MB_TAU_H,
                             .rtol = default_rtol(dtype), .atol = default_atol(dtype),
                             .max_steps = 10000, .tol = tol};
      void *x = state_new(MB_DIM);
      for (size_t i = 0; i < MB_N; i++) put(dtype, x, i, m.xi[3][i] * (i % 4 == 0 ? -1 : 1));
      size_t steps[1], at[1];
      double when[1], resid[1];
      uint8_t converged[1];
      DamrtRunResult res = {.sample_steps = steps, .sample_t = when, .converged = converged,
                            .residual = resid, .residual_coordinate = at};
      CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
      CHECK_EQ(converged[0], 1);
      double dv = 0;
      for (size_t i = 0; i < MB_N; i++) dv = fmax(dv, fabs(get(dtype, x, i) - m.xi[3][i]));
      double h3 = get(dtype, x, MB_N + 3);
      printf("model B (%s, %s, tol %g): converged in %zu steps at t = %.3f (t* = %.3f), "
             "residual %.3g at coordinate %zu, max |v - xi_3| = %.2g, h_3 = %.6f\n",
             damrt_dtype_name(dtype), damrt_method_name(METHODS[mi]), tol, steps[0], when[0],
             tstar, resid[0], at[0], dv, h3);
      CHECK(dv <= 2 * tol * 1.01);
      CHECK(fabs(h3 - MB_N) <= tol * (1 + MB_N));
      if (METHODS[mi] == DAMRT_DOPRI5) {
        CHECK(when[0] >= 0.9 * tstar && when[0] <= tstar + 4);
        CHECK(steps[0] <= 300);
      } else {
        CHECK(fabs(when[0] / tstar - 1) <= 0.02);
      }
      free(x);
    }
  }
}

// The float32 case of issue 10: L = lagr_tanh(v) with an input of 400 is
// dx/dt = (400 - x) / tau, computed in float32. ulp(400) = 2^-15 in float32, and one ulp
// short the residual is 2^-15 / 401 = 7.6e-8 of the scale, so a tol of 1e-8 can only be
// met at x = 400 exactly.
static DamrtStatus input400_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  const float *v = x;
  float *d = dxdt;
  d[0] = (400.0f - v[0]) / 1.0f;
  return DAMRT_OK;
}

static void test_float32_last_ulps(void) {
  const double ulp = 0x1p-15, tau = 1, dt = 0.1;
  // The float32 state of the former integrator, replayed: an increment dt |dx/dt| below half
  // an ulp vanishes, so Euler stalls where 0.1 k ulp < ulp / 2, 4 ulps short, with a scaled
  // residual 4 ulp / 401 = 3e-7, above any tol below that.
  float v[1] = {0}, d[1];
  for (;;) {
    input400_rhs(NULL, v, d, NULL);
    float before = v[0];
    put(DAMRT_F32, v, 0, (double)v[0] + dt * (double)d[0]);
    if (v[0] == before) break;
  }
  CHECK((400 - (double)v[0]) / ulp == 4);
  // With a float64 state, euler and rk4 multiply the distance by R(-0.1) per step until it is
  // below half an ulp, where the rhs sees 400 and returns 0: n = ln(400 / (ulp / 2)) / -ln R
  // (162.5 for euler, 170.7 for rk4) steps. dopri5 gets there too, but slowly: it wanders at
  // the stability edge of its step.
  for (size_t m = 0; m < 3; m++) {
    for (size_t pass = 0; pass < 2; pass++) {
      double tol = pass == 0 ? 1e-8 : DAMRT_TOL_F32;
      DamrtSystem sys = make_system(input400_rhs, NULL, 1, 1, DAMRT_F32, &tau);
      DamrtRunOptions opt = {.method = METHODS[m], .dt = dt, .rtol = default_rtol(DAMRT_F32),
                             .atol = default_atol(DAMRT_F32), .max_steps = 100000,
                             .tol = tol};
      float x[1] = {0};
      size_t steps[1];
      uint8_t converged[1];
      DamrtRunResult res = {.sample_steps = steps, .converged = converged};
      CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
      CHECK_EQ(converged[0], 1);
      printf("input 400 (float32, %s, tol %g): converged in %zu steps, x = 400 - %g ulp\n",
             damrt_method_name(METHODS[m]), tol, steps[0], (400 - (double)x[0]) / ulp);
      double h = dt / tau;
      double R = METHODS[m] == DAMRT_EULER ? 1 - h : 1 - h + h * h / 2 - h * h * h / 6 +
                                                         h * h * h * h / 24;
      if (pass == 0) {
        CHECK(fabs(x[0] - 400.0) <= ulp);
        if (METHODS[m] != DAMRT_DOPRI5) {
          CHECK(fabs((double)steps[0] - log(400 / (ulp / 2)) / -log(R)) <= 2);
        }
      } else {
        CHECK(fabs(x[0] - 400.0) <= tol * 401);
      }
    }
  }
}

// dx/dt = log(p) - x with a parameter p per sample and coordinate: p < 0 gives a NaN, p = 0 a
// -Inf, at t = 0, while the state is finite.
typedef struct {
  DamrtDtype dtype;
  const double *p;
  size_t calls;
} BadParam;

static DamrtStatus bad_param_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  BadParam *bp = ctx;
  bp->calls++;
  for (size_t i = 0; i < 2 * 3; i++) put(bp->dtype, dxdt, i, log(bp->p[i]) - get(bp->dtype, x, i));
  return DAMRT_OK;
}

static void test_nonfinite_at_start(void) {
  static const double tau[3] = {1, 1, 1};
  static const double p_nan[6] = {1, 2, 3, 1, 2, -1}, p_inf[6] = {1, 2, 3, 0, 2, 3};
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    for (size_t m = 0; m < 3; m++) {
      for (size_t c = 0; c < 2; c++) {
        BadParam bp = {dtype, c == 0 ? p_nan : p_inf, 0};
        DamrtSystem sys = make_system(bad_param_rhs, &bp, 2, 3, dtype, tau);
        DamrtRunOptions opt = {.method = METHODS[m], .dt = 0.1, .rtol = 1e-6, .atol = 1e-9,
                               .max_steps = 100, .tol = 1e-6};
        void *x = state_new(6);
        for (size_t i = 0; i < 6; i++) put(dtype, x, i, 0.5);
        DamrtRunResult res = {0};
        DamrtError err = {0};
        CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
        CHECK_STREQ(err.message,
                    c == 0 ? "sample 1, coordinate 2: dx/dt is NaN at step 0 (t = 0), at a "
                             "finite initial state"
                           : "sample 1, coordinate 0: dx/dt is -Inf at step 0 (t = 0), at a "
                             "finite initial state");
        CHECK(res.nonfinite.found && res.nonfinite.in_dxdt);
        CHECK_EQ(res.nonfinite.sample, 1);
        CHECK_EQ(res.nonfinite.coordinate, c == 0 ? 2 : 0);
        CHECK_EQ(res.nonfinite.step, 0);
        CHECK(res.nonfinite.t == 0);
        CHECK(c == 0 ? isnan(res.nonfinite.value) : res.nonfinite.value == -INFINITY);
        CHECK_EQ(bp.calls, 1);  // nothing was integrated
        CHECK_EQ(res.steps, 0);
        for (size_t i = 0; i < 6; i++) CHECK(get(dtype, x, i) == 0.5);
        free(x);
      }
    }
    // A clamped coordinate's dx/dt does not matter: its NaN is no error.
    static const uint8_t clamp[6] = {0, 0, 0, 0, 0, 1};
    BadParam bp = {dtype, p_nan, 0};
    DamrtSystem sys = make_system(bad_param_rhs, &bp, 2, 3, dtype, tau);
    DamrtRunOptions opt = {.method = DAMRT_RK4, .dt = 0.1, .max_steps = 100, .tol = 1e-3,
                           .clamp = clamp};
    void *x = state_new(6);
    CHECK_EQ(damrt_integrate(&sys, &opt, x, NULL, NULL), DAMRT_OK);
    free(x);
  }
}

// ---- callbacks that fail ----

typedef struct {
  size_t fail_at;
  size_t calls;
} Failing;

static DamrtStatus failing_step(void *ctx, size_t step, double t, const void *x,
                                const void *dxdt, const uint8_t *active, DamrtError *err) {
  Failing *f = ctx;
  f->calls++;
  if (step == f->fail_at) return damrt_error_set(err, DAMRT_E_IO, "trace.csv: disk full");
  return DAMRT_OK;
}

typedef struct {
  Decay decay;
  size_t fail_at;
} FailingDecay;

static DamrtStatus failing_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  FailingDecay *f = ctx;
  if (f->decay.calls == f->fail_at) {
    return damrt_error_set(err, DAMRT_E_VALUE, "layer h: log of a negative number");
  }
  return decay_rhs(&f->decay, x, dxdt, err);
}

// iterate on dx/dt = -rate_b x (tau 1) is x <- (1 - rate_b) x. Rate 2 alternates between
// x0 and -x0: stopped after step 2 (back at x0, a step of 2 |x0| / (1 + |x0|) = 1), not
// converged. Rate 1.98 alternates too but converges (|1 - rate| = 0.98 < 0.99), rate 1 in one
// step, and x0 = 0 at the start. With max_steps 20 the rate-1.98 sample runs out of steps and
// is the one `worst` names; with tol = 0 nothing is stopped.
static void test_iterate_cycle(void) {
  enum { B = 4 };
  static const double rate[B] = {2, 1.98, 1, 2}, x0[B] = {1, 1, 1, 0};
  for (size_t d = 0; d < 2; d++) {
    DamrtDtype dtype = DTYPES[d];
    double tol = dtype == DAMRT_F32 ? DAMRT_TOL_F32 : DAMRT_TOL_F64;
    Rates r = {dtype, B, 1, rate};
    DamrtSystem sys = make_system(rates_rhs, &r, B, 1, dtype, TAU1);
    size_t cases[][2] = {{10000, 1}, {20, 1}, {10000, 0}};  // max_steps, tol on
    for (size_t c = 0; c < 3; c++) {
      void *x = state_new(B);
      for (size_t b = 0; b < B; b++) put(dtype, x, b, x0[b]);
      size_t steps[B];
      uint8_t converged[B];
      DamrtRunResult res = {0, 0, steps, NULL, converged, {0}};
      DamrtRunOptions opt = {.method = DAMRT_ITERATE, .dt = 1, .max_steps = cases[c][0],
                             .tol = cases[c][1] ? tol : 0};
      CHECK(damrt_integrate(&sys, &opt, x, &res, NULL) == DAMRT_OK);
      if (c == 2) {
        CHECK(res.cycled == 0 && res.unconverged == B && res.steps == 10000);
        free(x);
        continue;
      }
      CHECK(res.cycled == 1 && res.cycle.sample == 0 && res.cycle.value == 1);
      CHECK(steps[0] == 2 && !converged[0] && get(dtype, x, 0) == 1);
      CHECK(steps[2] == 1 && converged[2] && steps[3] == 0 && converged[3]);
      if (c == 0) {
        CHECK(converged[1] && steps[1] > 20 && res.unconverged == 1);
        CHECK(res.worst.sample == 0);
      } else {
        CHECK(!converged[1] && steps[1] == 20 && res.unconverged == 2);
        CHECK(res.worst.sample == 1);
      }
      free(x);
    }
  }
}

static void test_callbacks(void) {
  static const double u[2] = {1, 1}, tau[2] = {1, 1};
  for (size_t m = 0; m < 3; m++) {
    // on_step fails at step 3: the run stops there, x holds step 3's state.
    Decay d = {DAMRT_F64, 1, 2, u, tau, 0};
    DamrtSystem sys = make_system(decay_rhs, &d, 1, 2, DAMRT_F64, tau);
    Failing f = {3, 0};
    DamrtRunOptions opt = {.method = METHODS[m], .dt = 0.1, .dt_max = 0.1, .rtol = 1,
                           .atol = 1, .max_steps = 100, .on_step = failing_step,
                           .step_ctx = &f};
    double x[2] = {0, 0};
    DamrtRunResult res = {0};
    DamrtError err = {0};
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_IO);
    CHECK_STREQ(err.message, "trace.csv: disk full");
    CHECK_EQ(f.calls, 4);
    CHECK_EQ(res.steps, 3);
    CHECK(!res.nonfinite.found);
    CHECK_NEAR(x[0], 1 - exp(-0.3), METHODS[m] == DAMRT_EULER ? 2e-2 : 1e-6);

    // The rhs fails on its 5th call: its status and message come back unchanged.
    FailingDecay fd = {{DAMRT_F64, 1, 2, u, tau, 0}, 4};
    sys = make_system(failing_rhs, &fd, 1, 2, DAMRT_F64, tau);
    opt.on_step = NULL;
    x[0] = x[1] = 0;
    CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, &err), DAMRT_E_VALUE);
    CHECK_STREQ(err.message, "layer h: log of a negative number");
    CHECK(!res.nonfinite.found);
    // Euler evaluates once per step (4 calls = step 3 done), RK4 and dopri5 fail in step 1.
    CHECK_EQ(res.steps, METHODS[m] == DAMRT_EULER ? 3 : 0);
  }

  // max_steps = 0 only evaluates and reports the initial state; a NULL err is allowed.
  Decay d = {DAMRT_F64, 2, 2, u, tau, 0};
  DamrtSystem sys = make_system(decay_rhs, &d, 2, 2, DAMRT_F64, tau);
  Failing f = {99, 0};
  DamrtRunOptions opt = {.method = DAMRT_DOPRI5, .dt = 0.1, .atol = 1e-9, .tol = 1e-3,
                         .on_step = failing_step, .step_ctx = &f};
  double x[4] = {1, 1, 0, 0};
  size_t steps[2];
  uint8_t converged[2];
  DamrtRunResult res = {.sample_steps = steps, .converged = converged};
  CHECK_EQ(damrt_integrate(&sys, &opt, x, &res, NULL), DAMRT_OK);
  CHECK_EQ(f.calls, 1);
  CHECK_EQ(d.calls, 1);
  CHECK_EQ(res.steps, 0);
  CHECK_EQ(converged[0], 1);  // at its fixed point from the start
  CHECK_EQ(converged[1], 0);
  CHECK_EQ(steps[0], 0);
  CHECK_EQ(steps[1], 0);
}

// ---- refused arguments ----

static void test_arguments(void) {
  static const double u[2] = {0, 0}, tau[2] = {1, 1}, bad_tau[2] = {1, 0};
  Decay d = {DAMRT_F64, 1, 2, u, tau, 0};
  const DamrtSystem good_sys = make_system(decay_rhs, &d, 1, 2, DAMRT_F64, tau);
  const DamrtRunOptions good = {.method = DAMRT_DOPRI5, .dt = 0.1, .rtol = 1e-6,
                                .atol = 1e-9, .max_steps = 10};
  struct {
    DamrtSystem sys;
    DamrtRunOptions opt;
    const char *message;
  } cases[16];
  size_t n = 0;
#define CASE(SYS_EDIT, OPT_EDIT, MESSAGE)                 \
  do {                                                     \
    cases[n].sys = good_sys;                               \
    cases[n].opt = good;                                   \
    DamrtSystem *sys = &cases[n].sys;                      \
    DamrtRunOptions *opt = &cases[n].opt;                  \
    SYS_EDIT;                                              \
    OPT_EDIT;                                              \
    (void)sys, (void)opt;                                  \
    cases[n++].message = MESSAGE;                          \
  } while (0)
  CASE(, opt->dt = 0, "damrt_integrate: dt = 0: the step must be positive and finite");
  CASE(, (opt->dt = -0.5, opt->method = DAMRT_EULER),
       "damrt_integrate: dt = -0.5: the step must be positive and finite");
  CASE(, opt->dt = INFINITY, "damrt_integrate: dt = inf: the step must be positive and finite");
  CASE(, (opt->method = DAMRT_RK4, opt->noise_T = 0.5),
       "damrt_integrate: langevin noise (noise_T = 0.5) needs the euler method "
       "(euler-maruyama), not rk4");
  CASE(, opt->noise_T = 0.5,
       "damrt_integrate: langevin noise (noise_T = 0.5) needs the euler method "
       "(euler-maruyama), not dopri5");
  CASE(, (opt->method = DAMRT_EULER, opt->noise_T = -1),
       "damrt_integrate: noise_T = -1: the temperature must be finite and >= 0");
  CASE(sys->dim = 0, ,
       "damrt_integrate: dim is 0: there must be at least one sample of at least one "
       "coordinate");
  CASE(sys->batch = 0, ,
       "damrt_integrate: batch is 0: there must be at least one sample of at least one "
       "coordinate");
  CASE(sys->tau = bad_tau, ,
       "damrt_integrate: tau[1] = 0: a time constant must be positive and finite");
  CASE(sys->tau = NULL, , "damrt_integrate: the system has no time constants (tau)");
  CASE(sys->rhs = NULL, , "damrt_integrate: the system has no right-hand side");
  CASE(sys->dtype = (DamrtDtype)9, , "damrt_integrate: unknown dtype 9");
  CASE(, opt->method = (DamrtMethod)5, "damrt_integrate: unknown method 5");
  CASE(, opt->tol = -1, "damrt_integrate: tol = -1: the convergence tolerance must be >= 0");
  CASE(, opt->atol = 0,
       "damrt_integrate: rtol = 1e-06, atol = 0: dopri5 needs a finite rtol >= 0 and a "
       "finite atol > 0 (a purely relative error is undefined at a zero state)");
  CASE(, opt->dt_max = -1,
       "damrt_integrate: dt_max = -1: the largest step must be >= 0 (0: no limit)");
#undef CASE
  for (size_t c = 0; c < n; c++) {
    double x[2] = {3, 4};
    DamrtRunResult res = {.steps = 77};
    DamrtError err = {0};
    CHECK_EQ(damrt_integrate(&cases[c].sys, &cases[c].opt, x, &res, &err), DAMRT_E_ARGUMENT);
    CHECK_EQ(err.code, DAMRT_E_ARGUMENT);
    CHECK_STREQ(err.message, cases[c].message);
    CHECK(x[0] == 3 && x[1] == 4);
    CHECK_EQ(res.steps, 77);
  }
  CHECK_EQ(d.calls, 0);

  DamrtError err = {0};
  double x[2] = {0, 0};
  CHECK_EQ(damrt_integrate(&good_sys, &good, NULL, NULL, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_integrate: the state is NULL");
  CHECK_EQ(damrt_integrate(NULL, &good, x, NULL, &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "damrt_integrate: the system is NULL");
  CHECK_EQ(damrt_integrate(&good_sys, NULL, x, NULL, NULL), DAMRT_E_ARGUMENT);
  // A NaN dt is refused too (its spelling is the C library's).
  DamrtRunOptions nan_dt = good;
  nan_dt.dt = NAN;
  CHECK_EQ(damrt_integrate(&good_sys, &nan_dt, x, NULL, &err), DAMRT_E_ARGUMENT);
  // Options that only dopri5 reads do not matter to euler.
  DamrtRunOptions euler = good;
  euler.method = DAMRT_EULER;
  euler.atol = 0;
  CHECK_EQ(damrt_integrate(&good_sys, &euler, x, NULL, &err), DAMRT_OK);
  CHECK_STREQ(damrt_method_name(DAMRT_RK4), "rk4");
  CHECK_STREQ(damrt_method_name((DamrtMethod)5), "invalid");
}

int main(void) {
  test_orders();
  test_float32_matches_float64();
  test_dopri5_logistic();
  test_dopri5_rotation();
  test_dopri5_underflow();
  test_dopri5_dt_max();
  test_freeze();
  test_clamp();
  test_langevin_variance(DAMRT_F64);
  test_langevin_variance(DAMRT_F32);
  test_langevin_reproducible();
  test_nonfinite();
  test_scaled_growth();
  test_model_b();
  test_float32_last_ulps();
  test_nonfinite_at_start();
  test_iterate_cycle();
  test_callbacks();
  test_arguments();
  return check_report("runtime/integrate");
}

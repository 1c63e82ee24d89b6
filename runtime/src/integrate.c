// ODE integrators over a batched right-hand side (see damrt_integrate.h).
//
// The three methods are explicit Runge–Kutta schemes, so one tableau-driven step serves them
// all: Euler and RK4 take it with a fixed dt, dopri5 wraps it in error control. The
// integrator's states are float64 whatever the kernels' dtype; for float32 kernels each state
// is rounded into a float32 view just before the rhs sees it, and dx/dt (in the kernels'
// dtype) goes through `load`. So there is one code path for both, and no increment is lost to
// the rounding of a float32 state.
#include "damrt_integrate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_STAGES = 7 };

// An explicit Runge–Kutta method for an autonomous system. Stage i (1 <= i < stages) is
// k_i = f(y + h * sum_j a[i][j] k_j), with k_0 = f(y); the new state is
// y + h * sum_j b[j] k_j, and k_stages = f(new state) is evaluated for the convergence check
// and reused as the next step's k_0 (for dopri5 this is its FSAL seventh stage).
typedef struct {
  int stages;
  double a[MAX_STAGES][MAX_STAGES];
  double b[MAX_STAGES];
  // Adaptive methods: the error estimate is h * sum_j e[j] k_j over k_0 .. k_stages.
  bool adaptive;
  double e[MAX_STAGES + 1];
} Tableau;

static const Tableau EULER = {.stages = 1, .b = {1}};

static const Tableau RK4 = {
    .stages = 4,
    .a = {{0}, {0.5}, {0, 0.5}, {0, 0, 1}},
    .b = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6},
};

// Dormand & Prince (1980), as in Hairer, Nørsett & Wanner, Solving ODEs I, table 5.2: the
// 5th-order solution is propagated, e = b - b_hat is the difference to the embedded 4th.
static const Tableau DOPRI5 = {
    .stages = 6,
    .a = {{0},
          {1.0 / 5},
          {3.0 / 40, 9.0 / 40},
          {44.0 / 45, -56.0 / 15, 32.0 / 9},
          {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
          {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656}},
    .b = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
    .adaptive = true,
    .e = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525,
          -1.0 / 40},
};

// Step-size control (Hairer's defaults): h_new = h * clamp(SAFETY * err^(-1/5)), the
// exponent being 1/(q+1) for the embedded order q = 4; no growth right after a rejection.
static const double SAFETY = 0.9, FAC_MIN = 0.2, FAC_MAX = 10, ERR_EXPONENT = -0.2;
// A dopri5 step below this fraction of the time scale max(t, min tau) is an underflow. For
// float32 kernels, 1e-6 (about 8 units in the last place): the state is float64, but the
// error estimate is built from dx/dt rounded to float32, and below that its rounding noise
// rejects as readily as a real error; float64 could go further, but no useful run needs 1e12
// steps per time constant, and stopping early turns a NaN wall or a blow-up into a prompt
// error.
static double underflow_fraction(DamrtDtype dtype) { return dtype == DAMRT_F32 ? 1e-6 : 1e-12; }
// iterate stops a sample in a cycle of period 2 only when its step is more than this many
// times tol: an iteration converging while it alternates with a ratio r, |r| < 1, has
// |x_{k+1} - x_{k-1}| = (1 - |r|) / |r| times its step, so a factor of 100 leaves alone
// every one with |r| < 0.99, which converges within a few hundred steps.
static const double CYCLE_STEP_FACTOR = 100;

// ---- the noise generator (documented in damrt_integrate.h) ----

typedef struct {
  uint64_t s[4];  // xoshiro256** state
  double spare;   // the second deviate of the last polar pair
  bool has_spare;
} Rng;

static const uint64_t GOLDEN_GAMMA = 0x9e3779b97f4a7c15u;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += GOLDEN_GAMMA);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro256ss(uint64_t s[4]) {
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

// Sample b's generator continues splitmix64 from `seed` at output 4b+1, so each stream can be
// set up directly, without running the ones before it.
static void rng_seed(Rng *r, uint64_t seed, size_t sample) {
  uint64_t state = seed + 4 * (uint64_t)sample * GOLDEN_GAMMA;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&state);
  r->has_spare = false;
}

static double rng_uniform(Rng *r) { return (double)(xoshiro256ss(r->s) >> 11) * 0x1p-53; }

// Marsaglia's polar method: only log and sqrt, no trigonometry.
static double rng_normal(Rng *r) {
  if (r->has_spare) {
    r->has_spare = false;
    return r->spare;
  }
  double u, v, s;
  do {
    u = 2 * rng_uniform(r) - 1;
    v = 2 * rng_uniform(r) - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  double f = sqrt(-2 * log(s) / s);
  r->spare = v * f;
  r->has_spare = true;
  return u * f;
}

// ---- element access: the one place that knows the kernels' dtype ----

static inline double load(DamrtDtype dtype, const void *p, size_t i) {
  return dtype == DAMRT_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static inline void store(DamrtDtype dtype, void *p, size_t i, double v) {
  if (dtype == DAMRT_F32) {
    ((float *)p)[i] = (float)v;
  } else {
    ((double *)p)[i] = v;
  }
}

static size_t round_up(size_t bytes) {
  return (bytes + DAMRT_ALIGNMENT - 1) / DAMRT_ALIGNMENT * DAMRT_ALIGNMENT;
}

// ---- the run ----

typedef struct {
  const DamrtSystem *sys;
  const DamrtRunOptions *opt;
  const Tableau *tab;
  bool iterate;         // DAMRT_ITERATE: each coordinate steps by its own tau
  DamrtDtype dtype;     // of the kernels: of the caller's state, the views and dx/dt
  size_t n, elem;       // batch * dim elements of `elem` bytes
  // The accepted state and the trial state, in float64 (for float64 kernels one of them is
  // the caller's), and the state of the current stage (NULL for Euler, which has one).
  double *cur, *nxt, *tmp;
  // cur and nxt as the rhs sees them: rounded to float32 (xnxt also serves the stages), or
  // for float64 the states themselves. xcur is always the rounding of cur.
  void *xcur, *xnxt;
  void *k[MAX_STAGES + 1];  // k[0] = f(cur); k[stages] = f(nxt)
  uint8_t *active;      // [batch]: 1 until the sample converges (or cycles)
  size_t nactive;
  // iterate only: the state before cur; per sample, the scaled distance of the newest state
  // from the one two steps before (NaN until there are two steps), and 1 for the samples
  // stopped in a cycle of period 2.
  double *prev, *back;
  uint8_t *cycled;
  DamrtResidual *resid; // [batch]: the residual at the last state checked (value NaN: none)
  Rng *rng;             // [batch], with noise only
  double *amp;          // [dim]: sqrt(2 T dt / tau_i), with noise only
  double tau_min;
  size_t step;
  double t;
  void *block;          // the scratch states, one allocation
} Work;

// Non-finite values as a message prints them.
static const char *nonfinite_name(double v) {
  return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
}

const char *damrt_method_name(DamrtMethod method) {
  switch (method) {
  case DAMRT_EULER: return "euler";
  case DAMRT_RK4: return "rk4";
  case DAMRT_DOPRI5: return "dopri5";
  case DAMRT_ITERATE: return "iterate";
  }
  return "invalid";
}

static DamrtStatus check_arguments(const DamrtSystem *sys, const DamrtRunOptions *opt,
                                   const void *x, DamrtError *err) {
  const char *fn = "damrt_integrate";
  if (!sys || !opt || !x) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: the %s is NULL", fn,
                           !sys ? "system" : !opt ? "options" : "state");
  }
  if (!sys->rhs) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: the system has no right-hand side",
                           fn);
  }
  if (sys->batch == 0 || sys->dim == 0) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "%s: %s is 0: there must be at least one sample of at least one "
                           "coordinate",
                           fn, sys->batch == 0 ? "batch" : "dim");
  }
  if (damrt_dtype_size(sys->dtype) == 0) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: unknown dtype %d", fn,
                           (int)sys->dtype);
  }
  if (!sys->tau) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: the system has no time constants (tau)",
                           fn);
  }
  for (size_t i = 0; i < sys->dim; i++) {
    if (!(sys->tau[i] > 0) || isinf(sys->tau[i])) {
      return damrt_error_set(err, DAMRT_E_ARGUMENT,
                             "%s: tau[%zu] = %g: a time constant must be positive and finite",
                             fn, i, sys->tau[i]);
    }
  }
  if (opt->method != DAMRT_EULER && opt->method != DAMRT_RK4 && opt->method != DAMRT_DOPRI5 &&
      opt->method != DAMRT_ITERATE) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: unknown method %d", fn,
                           (int)opt->method);
  }
  if (!(opt->dt > 0) || isinf(opt->dt)) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "%s: dt = %g: the step must be positive and finite", fn, opt->dt);
  }
  if (!(opt->tol >= 0)) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "%s: tol = %g: the convergence tolerance must be >= 0", fn,
                           opt->tol);
  }
  if (!(opt->noise_T >= 0) || isinf(opt->noise_T)) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "%s: noise_T = %g: the temperature must be finite and >= 0", fn,
                           opt->noise_T);
  }
  if (opt->noise_T > 0 && opt->method != DAMRT_EULER) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "%s: langevin noise (noise_T = %g) needs the euler method "
                           "(euler-maruyama), not %s",
                           fn, opt->noise_T, damrt_method_name(opt->method));
  }
  if (opt->method == DAMRT_DOPRI5) {
    if (!(opt->rtol >= 0) || isinf(opt->rtol) || !(opt->atol > 0) || isinf(opt->atol)) {
      return damrt_error_set(err, DAMRT_E_ARGUMENT,
                             "%s: rtol = %g, atol = %g: dopri5 needs a finite rtol >= 0 and "
                             "a finite atol > 0 (a purely relative error is undefined at a "
                             "zero state)",
                             fn, opt->rtol, opt->atol);
    }
    if (!(opt->dt_max >= 0)) {
      return damrt_error_set(err, DAMRT_E_ARGUMENT,
                             "%s: dt_max = %g: the largest step must be >= 0 (0: no limit)",
                             fn, opt->dt_max);
    }
  }
  return DAMRT_OK;
}

static void work_free(Work *w) {
  free(w->block);
  free(w->active);
  free(w->back);
  free(w->cycled);
  free(w->resid);
  free(w->rng);
  free(w->amp);
}

// Allocates every buffer the run needs; nothing is allocated after this.
static DamrtStatus work_init(Work *w, const DamrtSystem *sys, const DamrtRunOptions *opt,
                             void *x, DamrtError *err) {
  *w = (Work){.sys = sys, .opt = opt, .dtype = sys->dtype};
  w->tab = opt->method == DAMRT_EULER || opt->method == DAMRT_ITERATE ? &EULER
           : opt->method == DAMRT_RK4                                 ? &RK4
                                                                      : &DOPRI5;
  w->iterate = opt->method == DAMRT_ITERATE;
  w->elem = damrt_dtype_size(sys->dtype);
  bool f32 = sys->dtype == DAMRT_F32;
  // The scratch buffers, each padded to whole alignment blocks like a tensor, since the
  // compiled rhs may load whole blocks at the tail: k[0 .. stages] in the kernels' dtype;
  // the float64 states nxt, tmp (with more than one stage) and, for float32, cur; for
  // float32 the views xcur and xnxt; for iterate the float64 state prev.
  size_t nstages = (size_t)w->tab->stages;
  size_t nk = nstages + 1, nstates = 1 + (nstages > 1) + f32 + w->iterate, nviews = f32 ? 2 : 0;
  size_t nbuf = nk + nstates + nviews;
  if (sys->dim > SIZE_MAX / sys->batch ||
      sys->batch * sys->dim > (SIZE_MAX / nbuf - DAMRT_ALIGNMENT) / sizeof(double) ||
      sys->batch > SIZE_MAX / sizeof(DamrtResidual)) {
    return damrt_error_set(err, DAMRT_E_ARGUMENT,
                           "damrt_integrate: batch %zu x dim %zu is too large to allocate",
                           sys->batch, sys->dim);
  }
  w->n = sys->batch * sys->dim;
  size_t kstride = round_up(w->n * w->elem), dstride = round_up(w->n * sizeof(double));
  size_t bytes = (nk + nviews) * kstride + nstates * dstride;
  bool noisy = opt->noise_T > 0;
  if (posix_memalign(&w->block, DAMRT_ALIGNMENT, bytes) != 0) w->block = NULL;
  w->active = malloc(sys->batch);
  w->resid = malloc(sys->batch * sizeof *w->resid);
  if (w->iterate) {
    w->back = malloc(sys->batch * sizeof *w->back);
    w->cycled = calloc(sys->batch, 1);
  }
  if (noisy) {
    w->rng = calloc(sys->batch, sizeof *w->rng);
    w->amp = calloc(sys->dim, sizeof *w->amp);
  }
  if (!w->block || !w->active || !w->resid || (noisy && (!w->rng || !w->amp)) ||
      (w->iterate && (!w->back || !w->cycled))) {
    work_free(w);
    return damrt_error_set(err, DAMRT_E_NOMEM,
                           "damrt_integrate: cannot allocate the scratch states (%zu bytes)",
                           bytes);
  }
  memset(w->block, 0, bytes);
  char *p = w->block;
  for (size_t i = 0; i < nk; i++, p += kstride) w->k[i] = p;
  w->nxt = (double *)p;
  p += dstride;
  if (nstages > 1) {
    w->tmp = (double *)p;
    p += dstride;
  }
  if (w->iterate) {
    w->prev = (double *)p;
    p += dstride;
  }
  if (f32) {
    w->cur = (double *)p;
    p += dstride;
    w->xcur = p;
    w->xnxt = p + kstride;
    memcpy(w->xcur, x, w->n * w->elem);
    for (size_t i = 0; i < w->n; i++) w->cur[i] = ((const float *)x)[i];
  } else {
    w->cur = x;
    w->xcur = w->cur;
    w->xnxt = w->nxt;
  }
  memset(w->active, 1, sys->batch);
  w->nactive = sys->batch;
  for (size_t b = 0; b < sys->batch; b++) {
    w->resid[b] = (DamrtResidual){.sample = b, .value = NAN, .residual = NAN, .scale = NAN};
    if (w->back) w->back[b] = NAN;
  }
  w->tau_min = sys->tau[0];
  for (size_t i = 1; i < sys->dim; i++) w->tau_min = fmin(w->tau_min, sys->tau[i]);
  if (noisy) {
    for (size_t b = 0; b < sys->batch; b++) rng_seed(&w->rng[b], opt->seed, b);
    for (size_t i = 0; i < sys->dim; i++) {
      w->amp[i] = sqrt(2 * opt->noise_T * opt->dt / sys->tau[i]);
    }
  }
  return DAMRT_OK;
}

static bool is_clamped(const Work *w, size_t at) { return w->opt->clamp && w->opt->clamp[at]; }

// dxdt = f(x) for the whole batch, then 0 on clamped coordinates: they never move and do not
// count for convergence.
static DamrtStatus eval_rhs(const Work *w, const void *x, void *dxdt, DamrtError *err) {
  DamrtStatus status = w->sys->rhs(w->sys->ctx, x, dxdt, err);
  if (status != DAMRT_OK) return status;
  if (w->opt->clamp) {
    for (size_t i = 0; i < w->n; i++) {
      if (w->opt->clamp[i]) store(w->dtype, dxdt, i, 0);
    }
  }
  return DAMRT_OK;
}

// The kernels' view of a float64 state: for float32, the state rounded into `view`; for
// float64, the state itself. Rounding a float32 value that went through float64 gives back
// its exact bits, so clamped coordinates and frozen samples keep theirs.
static void *kernel_view(const Work *w, const double *state, void *view) {
  if (w->dtype == DAMRT_F64) return (void *)state;
  float *v = view;
  for (size_t i = 0; i < w->n; i++) v[i] = (float)state[i];
  return view;
}

// out = y + h * sum_{j < nk} c[j] k_j (plus the Langevin kick when `noisy`) on the free
// coordinates of active samples, in float64. Everything else is copied from y, so frozen
// samples and clamped coordinates keep their exact bits while the rhs still sees a valid
// batch.
static void combine(Work *w, double *out, const double *y, double h, const double *c, int nk,
                    bool noisy) {
  size_t dim = w->sys->dim;
  for (size_t b = 0; b < w->sys->batch; b++) {
    size_t row = b * dim;
    if (!w->active[b]) {
      memcpy(out + row, y + row, dim * sizeof *out);
      continue;
    }
    for (size_t i = 0; i < dim; i++) {
      size_t at = row + i;
      double v = y[at];
      if (!is_clamped(w, at)) {
        double sum = 0;
        for (int j = 0; j < nk; j++) {
          if (c[j] != 0) sum += c[j] * load(w->dtype, w->k[j], at);
        }
        // iterate: x <- x + tau_i f_i = u_i, the Euler step of dt = tau of each layer.
        v += (w->iterate ? w->sys->tau[i] : h) * sum;
        if (noisy) v += w->amp[i] * rng_normal(&w->rng[b]);
      }
      out[at] = v;
    }
  }
}

// One step of size h from cur: the stages, then the new state into nxt (and its view xnxt)
// and f(nxt) into k[stages]. k[0] = f(cur) is only read, so a rejected dopri5 step can simply
// be retried.
static DamrtStatus trial_step(Work *w, double h, DamrtError *err) {
  const Tableau *tab = w->tab;
  for (int i = 1; i < tab->stages; i++) {
    combine(w, w->tmp, w->cur, h, tab->a[i], i, false);
    DamrtStatus status = eval_rhs(w, kernel_view(w, w->tmp, w->xnxt), w->k[i], err);
    if (status != DAMRT_OK) return status;
  }
  combine(w, w->nxt, w->cur, h, tab->b, tab->stages, w->amp != NULL);
  return eval_rhs(w, kernel_view(w, w->nxt, w->xnxt), w->k[tab->stages], err);
}

// The scaled error of the trial step (see damrt_integrate.h): per active sample, the RMS over
// its free coordinates of err_i / (atol + rtol max(|y_i|, |ynew_i|)); the largest of these.
// Taking the worst sample rather than one RMS over the batch keeps a sample's accuracy from
// depending on how many easy samples share its batch. NaN propagates, so it rejects.
static double error_norm(const Work *w, double h) {
  const Tableau *tab = w->tab;
  size_t dim = w->sys->dim;
  double worst = 0;
  for (size_t b = 0; b < w->sys->batch; b++) {
    if (!w->active[b]) continue;
    double sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < dim; i++) {
      size_t at = b * dim + i;
      if (is_clamped(w, at)) continue;
      double e = 0;
      for (int j = 0; j <= tab->stages; j++) {
        if (tab->e[j] != 0) e += tab->e[j] * load(w->dtype, w->k[j], at);
      }
      double scale = w->opt->atol + w->opt->rtol * fmax(fabs(w->cur[at]), fabs(w->nxt[at]));
      double r = h * e / scale;
      sum += r * r;
      count++;
    }
    if (count == 0) continue;
    double rms = sqrt(sum / (double)count);
    if (isnan(rms)) return rms;
    if (rms > worst) worst = rms;
  }
  return worst;
}

// Finds the first NaN or Inf of `state` (or dx/dt: [batch][dim] of the kernels' dtype) in the
// samples still moving, in sample then coordinate order.
static bool find_nonfinite(const Work *w, const void *state, DamrtNonfinite *where) {
  size_t dim = w->sys->dim;
  for (size_t b = 0; b < w->sys->batch; b++) {
    if (!w->active[b]) continue;
    for (size_t i = 0; i < dim; i++) {
      double v = load(w->dtype, state, b * dim + i);
      if (!isfinite(v)) {
        *where = (DamrtNonfinite){true, b, i, 0, 0, v, false};
        return true;
      }
    }
  }
  return false;
}

// Fails with DAMRT_E_VALUE naming the first non-finite value of `state`, reached at `step`
// (time t), when there is one; `tail` ends the message.
static DamrtStatus check_finite(const Work *w, const void *state, size_t step, double t,
                                const char *tail, DamrtRunResult *res, DamrtError *err) {
  DamrtNonfinite where;
  if (!find_nonfinite(w, state, &where)) return DAMRT_OK;
  where.step = step;
  where.t = t;
  if (res) res->nonfinite = where;
  return damrt_error_set(err, DAMRT_E_VALUE,
                         "sample %zu, coordinate %zu: the state is %s at step %zu (t = %g)%s",
                         where.sample, where.coordinate, nonfinite_name(where.value), step, t,
                         tail);
}

// One accepted dopri5 step: tries `*h`, shrinking it until the error is at most 1; stores
// the step taken in `*taken` and the next step to try in `*h`.
static DamrtStatus adaptive_step(Work *w, double *h, double *taken, DamrtRunResult *res,
                                 DamrtError *err) {
  double grow = FAC_MAX;
  double e = 0, tried = 0;
  for (;;) {
    double scale = fmax(w->t, w->tau_min), fraction = underflow_fraction(w->dtype);
    if (!(*h >= fraction * scale)) {
      // A NaN that every step size ran into is named like a NaN in an accepted step.
      if (isnan(e)) {
        char tail[96];
        snprintf(tail, sizeof tail, " at every step size down to dt = %g (dopri5)", tried);
        DamrtStatus status =
            check_finite(w, w->xnxt, w->step + 1, w->t + tried, tail, res, err);
        if (status != DAMRT_OK) return status;
      }
      return damrt_error_set(err, DAMRT_E_VALUE,
                             "dopri5: the step size underflowed to dt = %g at step %zu "
                             "(t = %g), below %g times the time scale %g: the solution may "
                             "blow up there, be too stiff for rtol = %g, atol = %g, or have a "
                             "right-hand side that is not smooth",
                             *h, w->step + 1, w->t, fraction, scale, w->opt->rtol,
                             w->opt->atol);
    }
    tried = *h;
    DamrtStatus status = trial_step(w, tried, err);
    if (status != DAMRT_OK) return status;
    e = error_norm(w, tried);
    // pow(0, -0.2) is Inf and fmin brings it to `grow`; a NaN e fails the test and fmax turns
    // its factor into FAC_MIN.
    double fac = fmin(grow, fmax(FAC_MIN, SAFETY * pow(e, ERR_EXPONENT)));
    if (e <= 1) {
      *taken = *h;
      *h *= fac;
      if (w->opt->dt_max > 0) *h = fmin(*h, w->opt->dt_max);
      return DAMRT_OK;
    }
    *h *= fac;
    grow = 1;
  }
}

static void record_sample(const Work *w, DamrtRunResult *res, size_t b, bool converged) {
  if (!res) return;
  if (res->sample_steps) res->sample_steps[b] = w->step;
  if (res->sample_t) res->sample_t[b] = w->t;
  if (res->converged) res->converged[b] = converged;
}

// Is a larger than b, a NaN counting as larger than anything else?
static bool worse(double a, double b) { return isnan(a) ? !isnan(b) : a > b; }

// Sample b's largest scaled residual tau_i |f_i| / (1 + |x_i|) at cur, with f(cur) in k[0],
// over its free coordinates (a NaN counting as largest). An entirely clamped sample has 0.
static DamrtResidual sample_residual(const Work *w, size_t b) {
  size_t dim = w->sys->dim;
  DamrtResidual worst = {.sample = b, .value = 0, .residual = 0, .scale = 1};
  for (size_t i = 0; i < dim; i++) {
    size_t at = b * dim + i;
    if (is_clamped(w, at)) continue;
    double r = w->sys->tau[i] * fabs(load(w->dtype, w->k[0], at));
    double scale = 1 + fabs(w->cur[at]);
    if (worse(r / scale, worst.value)) worst = (DamrtResidual){b, i, r / scale, r, scale};
  }
  return worst;
}

// Computes the residual of every active sample and freezes those at most tol (tol > 0). A NaN
// fails the comparison, so it never counts as converged. iterate also freezes, as not
// converged, a sample in a cycle of period 2: back within tol of the state two steps before
// while its step is not small (CYCLE_STEP_FACTOR); it would alternate until max_steps.
static void update_convergence(Work *w, DamrtRunResult *res) {
  double tol = w->opt->tol;
  for (size_t b = 0; b < w->sys->batch; b++) {
    if (!w->active[b]) continue;
    w->resid[b] = sample_residual(w, b);
    bool converged = tol > 0 && w->resid[b].value <= tol;
    bool cycled = !converged && w->back && tol > 0 && w->back[b] <= tol &&
                  w->resid[b].value > CYCLE_STEP_FACTOR * tol;
    if (converged || cycled) {
      w->active[b] = 0;
      w->nactive--;
      record_sample(w, res, b, converged);
      if (cycled) w->cycled[b] = 1;
    }
  }
}

// iterate: before cur moves on to nxt, each active sample's scaled distance between nxt and
// prev (the states after steps k+1 and k-1) into back, then cur into prev.
static void update_back(Work *w) {
  size_t dim = w->sys->dim;
  for (size_t b = 0; w->step > 0 && b < w->sys->batch; b++) {
    if (!w->active[b]) continue;
    double far = 0;
    for (size_t i = 0; i < dim; i++) {
      size_t at = b * dim + i;
      if (is_clamped(w, at)) continue;
      far = fmax(far, fabs(w->nxt[at] - w->prev[at]) / (1 + fabs(w->nxt[at])));
    }
    w->back[b] = far;
  }
  memcpy(w->prev, w->cur, w->n * sizeof *w->prev);
}

static DamrtStatus notify(const Work *w, DamrtError *err) {
  if (!w->opt->on_step) return DAMRT_OK;
  return w->opt->on_step(w->opt->step_ctx, w->step, w->t, w->xcur, w->k[0], w->active, err);
}

static void swap(void **a, void **b) {
  void *t = *a;
  *a = *b;
  *b = t;
}

static void swap_states(double **a, double **b) {
  double *t = *a;
  *a = *b;
  *b = t;
}

// A NaN or Inf in dx/dt at a finite initial state is not a divergence: nothing has been
// integrated yet, so a parameter, an input or an initial value is bad where it shows.
static DamrtStatus check_initial_dxdt(const Work *w, DamrtRunResult *res, DamrtError *err) {
  DamrtNonfinite where;
  if (!find_nonfinite(w, w->k[0], &where)) return DAMRT_OK;
  where.in_dxdt = true;
  if (res) res->nonfinite = where;
  return damrt_error_set(err, DAMRT_E_VALUE,
                         "sample %zu, coordinate %zu: dx/dt is %s at step 0 (t = 0), at a "
                         "finite initial state",
                         where.sample, where.coordinate, nonfinite_name(where.value));
}

static DamrtStatus run(Work *w, DamrtRunResult *res, DamrtError *err) {
  DamrtStatus status = check_finite(w, w->xcur, 0, 0, "", res, err);
  if (status == DAMRT_OK) status = eval_rhs(w, w->xcur, w->k[0], err);
  if (status == DAMRT_OK) status = check_initial_dxdt(w, res, err);
  if (status != DAMRT_OK) return status;
  update_convergence(w, res);
  status = notify(w, err);
  double h = w->opt->dt;
  if (w->tab->adaptive && w->opt->dt_max > 0) h = fmin(h, w->opt->dt_max);
  while (status == DAMRT_OK && w->nactive > 0 && w->step < w->opt->max_steps) {
    double taken = h;
    status = w->tab->adaptive ? adaptive_step(w, &h, &taken, res, err) : trial_step(w, h, err);
    if (status == DAMRT_OK) {
      status = check_finite(w, w->xnxt, w->step + 1, w->t + taken, "", res, err);
    }
    if (status != DAMRT_OK) return status;
    if (w->iterate) update_back(w);
    swap_states(&w->cur, &w->nxt);
    swap(&w->xcur, &w->xnxt);
    swap(&w->k[0], &w->k[w->tab->stages]);
    w->step++;
    w->t += taken;
    update_convergence(w, res);
    status = notify(w, err);
  }
  return status;
}

DamrtStatus damrt_integrate(const DamrtSystem *sys, const DamrtRunOptions *opt, void *x,
                            DamrtRunResult *res, DamrtError *err) {
  DamrtStatus status = check_arguments(sys, opt, x, err);
  if (status != DAMRT_OK) return status;
  Work w;
  status = work_init(&w, sys, opt, x, err);
  if (status != DAMRT_OK) return status;
  if (res) res->nonfinite = (DamrtNonfinite){0};
  status = run(&w, res, err);
  // The accepted state may sit in a scratch buffer after an odd number of steps, and for
  // float32 it is the view of the float64 state.
  if (w.xcur != x) memcpy(x, w.xcur, w.n * w.elem);
  if (res) {
    res->steps = w.step;
    res->t = w.t;
    res->cycled = 0;
    for (size_t b = 0; w.cycled && b < sys->batch; b++) {
      if (w.cycled[b] && res->cycled++ == 0) res->cycle = w.resid[b];
    }
    res->unconverged = w.nactive + res->cycled;
    // worst names a sample that ran out of steps when there is one.
    bool skip_cycled = w.nactive > 0, found = false;
    for (size_t b = 0; b < sys->batch; b++) {
      if (w.active[b]) record_sample(&w, res, b, false);
      if (res->residual) res->residual[b] = w.resid[b].value;
      if (res->residual_coordinate) res->residual_coordinate[b] = w.resid[b].coordinate;
      if (skip_cycled && w.cycled && w.cycled[b]) continue;
      if (!found || worse(w.resid[b].value, res->worst.value)) res->worst = w.resid[b];
      found = true;
    }
  }
  work_free(&w);
  return status;
}

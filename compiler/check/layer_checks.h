// The per-layer numerical checks of `damc check` (docs/theory.md §4.1, §4.2, §4.5), in
// float64 with the reference interpreter (sym/eval.h), on each layer's derived equations
// (derive/network.h: L, g, the structured Hessian, the Hessian-vector product):
//
//   * sample points (§4.2.4): 32 states x ~ N(0, s^2 I) for each s in {0.1, 1, 10}/beta_L,
//     and structured ones (the origin, +-2h around each kink, the overflow edge beta x = +-30,
//     a one-hot logit at +20/beta), deterministic from a seed (layer_samples.c);
//   * derivative consistency (§4.1): g against L and H against g by central differences,
//     with the step rule, the normalised errors and tolerances, kink skipping and the
//     Richardson retry of §4.1.1-§4.1.5, coordinate by coordinate against H's structure and
//     along one random direction against the derived Hessian-vector product; for layers of
//     more than 64 units the directional form alone (layer_deriv.c);
//   * convexity (§4.2.2, §4.2.3): the spectrum of H at every sample point, exactly from its
//     structure where it allows (diagonal; constant diagonal plus low rank; diagonal plus a
//     symmetric rank-one term, by the secular equation), by LAPACK's dsyevd otherwise;
//     PASS iff lambda_min >= -10 n eps |H|_F everywhere, |H|_F taken of the terms H is
//     assembled from (LayerSpectrum.scale) (layer_spectra.c);
//   * dead neurons and flat directions (§4.5): structural null directions (span{1},
//     span{x}, span{x - mean x}, whichever H annihilates at every sample point), dead and
//     saturated units, nullity by the matrix_rank rule (layer_dead.c).
//
// check_layers runs them all on every layer and adds their items to a CheckReport
// (layer_checks.c); the lower-level functions are for tests and for the driver's own uses
// (the dead-neuron count at fixed points).
#ifndef DAMC_CHECK_LAYER_CHECKS_H
#define DAMC_CHECK_LAYER_CHECKS_H

#include <stdbool.h>
#include <stdint.h>

#include "check/report.h"
#include "derive/network.h"

enum {
  LAYER_CHECK_SAMPLES = 32,        // Gaussian points per scale (§4.2.4)
  LAYER_CHECK_DIRECTIONAL_N = 64,  // above this size, the directional form of §4.1.2
  LAYER_CHECK_MAX_KINKS = 32,      // kink arguments tracked per layer
  LAYER_CHECK_MAX_BREAKS = 8,      // per-coordinate breakpoints used for sample points
  LAYER_CHECK_MAX_SINGULAR = 8,    // scalar arguments of sqrt and fractional powers
};

// The tolerances of docs/theory.md (f64).
#define LAYER_TOL_EG 1e-7       // §4.1.3: max e_g
#define LAYER_TOL_EH 1e-6       // §4.1.3: max e_H
#define LAYER_TOL_SYM 4.0       // §4.1.3: |H - H'|_max <= 4 eps |H|_max
#define LAYER_TOL_PSD 10.0      // §4.2.3: lambda_min >= -10 n eps |H|_F
#define LAYER_DELTA_SAT 1e-6    // §4.5: saturated when H_ii < delta_sat beta_L
#define LAYER_SINGULAR_MIN 1e-6 // §4.1.5: skip points where r or s < 1e-3 (r^2, s^2 < 1e-6)

// One layer under check: its equations, the sizes and params, and what the checks read
// off its Lagrangian. Filled by layer_ctx_init; nothing to free.
typedef struct {
  const Network *net;
  int layer;
  const LayerEq *eq;               // the equations checked (normally &net->layers[layer])
  const int64_t *dims;             // size of every dim of the network
  const double *params;            // value of every param
  const double *const *weights;    // NULL: Lagrangians use no weights (a test's may)
  int64_t n;                       // the layer's size
  double beta;                     // the sharpness beta_L (1 when none is found)
  // Kinks: the arguments of relu, abs, step and sign in L, g and H. A central difference
  // is skipped where one of them changes sign within 2h (§4.1.5).
  int nkinks;
  ExprId kinks[LAYER_CHECK_MAX_KINKS];
  // The breakpoints of kink arguments of the form a x_i + b (elementwise, same a and b for
  // every unit): x_i = -b/a. The sample points put every unit at +-2h around each.
  int nbreaks;
  double breaks[LAYER_CHECK_MAX_BREAKS];
  // Scalar arguments of sqrt and of fractional or negative powers (|x|^2 + eps, var + eps):
  // a point where one is below LAYER_SINGULAR_MIN is skipped by the derivative check.
  int nsingular;
  ExprId singular[LAYER_CHECK_MAX_SINGULAR];
  bool has_lse;  // log-sum-exp or ghostmax in L
} LayerCheckCtx;

// Prepares the check of layer `layer` on its derived equations; `dims` sizes every dim
// (unbound ones given a default by the caller), `params` gives every param.
void layer_ctx_init(LayerCheckCtx *ctx, const Network *net, int layer, const int64_t *dims,
                    const double *params);
// The same on other equations for the layer (fault injection, hand-built Lagrangians);
// `weights` binds weight leaves those use (or NULL).
void layer_ctx_init_eq(LayerCheckCtx *ctx, const Network *net, int layer, const LayerEq *eq,
                       const int64_t *dims, const double *params, const double *const *weights);

// The sharpness beta_L of a Lagrangian (docs/theory.md §4): the largest scale |a| of the
// argument a x + ... of exp, expm1, tanh, logcosh, sigmoid, softplus, sech2, cosh, sinh,
// log-sum-exp and ghostmax in L, with the scale read through products by constants, params
// and dims, sums, relu and abs; 1 when there is none.
double layer_sharpness(const Network *net, ExprId L, int layer, const int64_t *dims,
                       const double *params);

// ---- Sample points (§4.2.4) ----

typedef struct {
  int64_t n;
  int count, cap;
  double *x;           // count rows of n values
  char (*label)[48];   // what each point is: "N(0, (1/beta)^2) #3", "origin", "kink 0 +2h"...
} SampleSet;

// 3 * per_scale Gaussian points (per_scale <= 0: LAYER_CHECK_SAMPLES) and the structured
// points, deterministic from `seed`. The origin is included only where L, g and H are
// finite there.
void layer_samples(const LayerCheckCtx *ctx, uint64_t seed, int per_scale, SampleSet *out);
void sample_set_add(SampleSet *s, const double *x, const char *label);
void sample_set_free(SampleSet *s);

// ---- Derivative consistency (§4.1) ----

typedef struct {
  Verdict verdict;      // FAIL when a tolerance is exceeded after the Richardson retry
  bool directional;     // n > LAYER_CHECK_DIRECTIONAL_N: one random direction per point
  double max_eg, max_eh;  // the largest normalised errors over the checked points
  // max over points of |H - H'|_max / (eps |H|_max), |H|_max taken of the terms H is
  // assembled from (|diag d| + sum_k |u_k||v_k|', as for convexity; 0 when H = 0)
  double max_sym;
  int points_checked, points_skipped;  // skipped: non-finite, singular, or every coordinate at a kink
  int coords_skipped;   // coordinates (or directions) skipped at kinks
  int retries;          // Richardson retries, and how many of them passed
  int retries_passed;
  // Coordinates (directions) that failed after the retry within 64 h of a kink, skipped as
  // kinks: a one-sided piece with an unbounded third derivative (relu(x)^p, 2 < p < 3)
  // spoils central differences that close to its breakpoint (also in coords_skipped).
  int near_kink;
  // The worst point (the largest error relative to its tolerance), or -1.
  int worst_point;
  int worst_coord;      // coordinate of the worst error (-1 for the symmetry, or directional)
  char worst_what[16];  // "e_g", "e_H" or "symmetry"
  double worst_ratio;   // its error / its tolerance
} DerivResult;

// The check at every point of `pts`; `seed` draws the directions of the directional form.
void layer_check_derivatives(const LayerCheckCtx *ctx, const SampleSet *pts, uint64_t seed,
                             DerivResult *out);

// ---- Spectra, convexity (§4.2) ----

typedef enum {
  SPECTRUM_DIAGONAL,       // H = diag(d): the eigenvalues are d
  SPECTRUM_LOW_RANK,       // H = c I + sum_k u_k v_k': c, and the eigenvalues of an m x m matrix
  SPECTRUM_SECULAR,        // H = diag(d) + rho z z': the secular equation, by bisection
  SPECTRUM_DENSE,          // dsyevd on the dense H (from the structure, or HVP columns)
} SpectrumMethod;

typedef struct {
  bool computed;           // set by layer_spectra for the points it computed
  bool finite;             // H was finite at the point (otherwise nothing else is set)
  SpectrumMethod method;   // how lambda_min was found
  double lambda_min, lambda_max;  // the extreme eigenvalues
  double abs_max;          // max |lambda|
  double frob;             // |H|_F
  // The scale of the convexity tolerance: |A|_F for the terms A = |diag(d)| + sum_k |u_k||v_k|'
  // H is assembled from (|H|_F when it has no structure). Assembling H costs about eps
  // times its terms, which cancel in log-sum-exp at a one-hot state (docs/theory.md §4.2.3).
  double scale;
  // #{k : |lambda_k| <= n eps max(abs_max, the largest entry of H's terms)}: NumPy's
  // matrix_rank rule, scaled like `scale` below.
  int64_t nullity;
  // With `cross_check` and a closed form available: its lambda_min, beside dsyevd's.
  bool has_closed;
  double closed_lambda_min;
} LayerSpectrum;

const char *spectrum_method_name(SpectrumMethod m);

// The spectrum of the layer's H at x. Small layers (n <= LAYER_CHECK_DIRECTIONAL_N) always
// use dsyevd; with `cross_check` the closed form, where the structure has one, is computed
// as well. Larger layers use the closed form when there is one, dsyevd otherwise.
void layer_spectrum(const LayerCheckCtx *ctx, const double *x, bool cross_check,
                    LayerSpectrum *out);

// H at x as a dense row-major n x n matrix, from its structure (or from n Hessian-vector
// products when it is dense). Returns false when a value is not finite.
bool layer_dense_hessian(const LayerCheckCtx *ctx, const double *x, double *h);

// The k-th smallest eigenvalue (k from 0) of diag(d) + rho z z', by bisection on the
// inertia count of the secular equation (Haynsworth), and that count itself.
double secular_eigenvalue(const double *d, const double *z, double rho, int64_t n, int64_t k);
int64_t secular_count_below(const double *d, const double *z, double rho, int64_t n, double t);

typedef struct {
  Verdict verdict;        // FAIL at the first point where lambda_min < -tol
  SpectrumMethod method;  // the method of the last point
  int points_checked, points_skipped;  // skipped: H not finite
  double min_rel;         // min over points of lambda_min / scale (0 for H = 0)
  double tol_rel;         // 10 n eps: the bound on lambda_min / scale
  double max_closed_gap;  // max |closed - dsyevd lambda_min| / scale when cross-checked, else -1
  // The worst point (the smallest lambda_min / |H|_F), and the eigenvalue there.
  int worst_point;
  double worst_lambda, worst_tol;
} ConvexResult;

// The spectrum at every point of `pts` (an array of pts->count, to free()); a layer without
// a closed-form spectrum of more than 256 units (64 when H has no structure and is built from
// n Hessian-vector products) gets dsyevd at 16 evenly spaced points only, the others stay
// computed = false.
LayerSpectrum *layer_spectra(const LayerCheckCtx *ctx, const SampleSet *pts);

// Convexity at the points of `pts`, from their spectra (NULL: computed here).
void layer_check_convexity(const LayerCheckCtx *ctx, const SampleSet *pts,
                           const LayerSpectrum *spectra, ConvexResult *out);

// ---- Dead neurons and flat directions (§4.5) ----

enum { NULL_ONES = 1, NULL_X = 2, NULL_CENTRED = 4 };

// The structural null directions: which of 1, x and x - mean(x) H annihilates at every
// point of `pts` (|H d| <= 10 n eps |H|_F |d|, at points where d != 0), as NULL_* bits, and
// the dimension of their span (*dim).
unsigned layer_structural_nulls(const LayerCheckCtx *ctx, const SampleSet *pts,
                                const LayerSpectrum *spectra, int *dim);
// "span{1}", "span{1, x - mean(x)}", "none"...
void structural_nulls_name(unsigned bits, char *buf, size_t n);

typedef struct {
  bool finite;
  bool additive;      // H is diagonal
  int64_t dead;       // additive: H_ii = 0 or <= n eps max(1, max_j H_jj); vector: nullity - structural
  int64_t saturated;  // H_ii < delta_sat beta_L (and not dead)
  int64_t nullity;    // of H (matrix_rank rule)
  bool signal;        // g != 0 somewhere: a layer whose directions are all null is then
                      // saturated (a winner takes all), not dead (docs/theory.md §4.5)
} DeadAt;

// The dead units of the layer at one state, given the structural dimension and the spectrum
// at x (NULL: computed here when needed, for vector layers).
void layer_dead_at(const LayerCheckCtx *ctx, const double *x, int structural_dim,
                   const LayerSpectrum *spectrum, DeadAt *out);

typedef struct {
  unsigned structural;  // NULL_* bits
  int structural_dim;
  bool additive;
  int states, states_skipped;   // skipped: H not finite
  double dead_fraction;         // mean over states of dead / n
  double saturated_fraction;    // mean over states of saturated / n
  double mean_nullity;
  int64_t max_nullity;
  int entirely_dead;            // states where every non-structural direction is dead and g = 0
} DeadResult;

// Dead units at every state of `states`; the structural directions are found on `samples`
// (which may be `states` itself). The spectra of either (from layer_spectra) may be NULL.
void layer_dead_neurons(const LayerCheckCtx *ctx, const SampleSet *samples,
                        const LayerSpectrum *sample_spectra, const SampleSet *states,
                        const LayerSpectrum *state_spectra, DeadResult *out);

// ---- The report ----

// Adds the items of one layer's checks: "derivatives", "convexity", "dead-neurons", with
// subject "layer NAME" and the place of its Lagrangian.
void report_layer_derivatives(CheckReport *r, const LayerCheckCtx *ctx, const SampleSet *pts,
                              const DerivResult *res);
void report_layer_convexity(CheckReport *r, const LayerCheckCtx *ctx, const SampleSet *pts,
                            const ConvexResult *res, const char *points_name);
void report_layer_dead(CheckReport *r, const LayerCheckCtx *ctx, const DeadResult *res,
                       const char *states_name);

// Every check above on every layer of `net`, at the sample set of §4.1 (32 Gaussian points
// per scale), deterministic from `seed`; three items per layer.
void check_layers(const Network *net, const int64_t *dims, const double *params, uint64_t seed,
                  CheckReport *report);

// The convexity and dead-neuron items of one layer at given states (states along
// trajectories, fixed points): `nstates` rows of the layer's size; `states_name` says what
// they are ("states along trajectories"). The structural directions are found at the
// layer's sample points drawn from `seed`. Returns the dead-neuron item (to add numbers to).
CheckItem *check_layer_at_states(const Network *net, int layer, const int64_t *dims,
                         const double *params, const double *states, int nstates,
                         const char *states_name, uint64_t seed, CheckReport *report);

#endif

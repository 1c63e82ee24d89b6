/* damc.h: the C API of damc, a compiler for Dense Associative Memory models.
 *
 * Compile a model (from a file or a string), bind its weights and params, and evaluate or
 * integrate it on batches of samples with kernels compiled for this machine. The damc
 * command line is a client of this API.
 *
 *   DamcError err = {0};
 *   DamcModel *m = damc_model_from_file("model_b.dam", &err);    // NULL: see err.message
 *   DamcArray xi = {2, {K, N}, xi_data, DAMC_F64};   // the K memories are the rows
 *   damc_bind_weight(m, "Xi", &xi, NULL, &err);      // read in place: keep xi_data alive
 *   damc_compile(m, DAMC_F64, &err);
 *   DamcArray states[2] = {{1, {N}, v0, DAMC_F64}};  // one per layer (v, h); h: zeros
 *   DamcBatch in = {states, NULL, NULL};             // {2, {B, N}, ...}: a batch of B
 *   DamcResults *r = damc_run(m, &in, NULL, &err);
 *   size_t count;
 *   const double *x = damc_result(r, "x_v", &count); // count = N
 *   printf("E = %g, x_v[0] = %g\n", damc_result(r, "E", NULL)[0], x[0]);
 *   damc_results_free(r); damc_model_free(m);
 *
 * (tests/tools/api_sketch.c compiles and runs these lines.)
 *
 * Errors are values: a function that fails returns 0 (or NULL) and fills `err` (which may
 * be NULL) with a status (1: the model or a tensor is wrong, 2: a bad argument, 70: an
 * internal error) and the diagnostics text; free it with damc_error_clear. There is no
 * global state: models are independent of each other.
 */
#ifndef DAMC_H
#define DAMC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct DamcModel DamcModel;
typedef struct DamcResults DamcResults;

typedef struct {
  int status;     /* 0 when nothing failed */
  char *message;  /* the diagnostics, or NULL; owned by the error (damc_error_clear) */
} DamcError;

void damc_error_clear(DamcError *err);

typedef enum { DAMC_F32 = 1, DAMC_F64 = 2 } DamcPrecision;

/* Parses and checks a model; NULL when it is wrong (the diagnostics are in err). */
DamcModel *damc_model_from_file(const char *path, DamcError *err);
DamcModel *damc_model_from_string(const char *name, const char *text, DamcError *err);
void damc_model_free(DamcModel *model);

/* The layers, in declaration order, and their sizes (known once the weights that fix
   them are bound). */
int damc_layer_count(const DamcModel *model);
const char *damc_layer_name(const DamcModel *model, int layer);
size_t damc_layer_size(const DamcModel *model, int layer);

/* A row-major (C order) array of rank 0 to 4: shape[0..rank), `data` (NULL: absent) of
   `dtype` (0 or DAMC_F64: double; DAMC_F32: float). */
typedef struct {
  int rank;
  size_t shape[4];
  const void *data;
  DamcPrecision dtype;
} DamcArray;

/* Binds weight `name` to `weight` (a vector or a matrix of the model's declared shape; the
   sizes of dims bound by no other weight are taken from it). The model reads the data in
   place when its dtype is the precision compiled for, and otherwise converts it once at
   damc_compile: keep it alive and unchanged until the model is freed. `origin` (or NULL)
   names where the data came from, e.g. a file, in messages. Fails (status 1) on a shape
   that contradicts the model, a NaN or infinity, or a declared symmetric weight that is not. */
int damc_bind_weight(DamcModel *model, const char *name, const DamcArray *weight,
                     const char *origin, DamcError *err);
/* Sets param `name` to `value`, before or after damc_compile. Fails with status 2 for a value
   that is NaN or infinite, 1 for a name the model does not have. After damc_compile, a value
   that makes an expression of params and sizes alone not finite (a division by 0, the log of
   a number that is not positive, ...), or tau negative, fails (status 1) with the place in the
   model, as damc_compile does, and is not taken: the model keeps the value it had. */
int damc_set_param(DamcModel *model, const char *name, double value, DamcError *err);
/* The warnings about the params as set, from the last damc_compile and every damc_set_param
   after it: a Lagrangian that they make provably not convex (E need not decrease), a prelude
   Lagrangian's argument outside its rule, where the defaults were fine (docs/theory.md
   §4.2.1); located as the model's diagnostics, with source excerpts, one per line group. ""
   when there are none (and before damc_compile). Valid until the next call on the model. */
const char *damc_model_warnings(const DamcModel *model);
/* Gives a dim the model declares without a size the size `size` (>= 1), before binding the
   weights that use it. */
int damc_set_dim(DamcModel *model, const char *name, int64_t size, DamcError *err);

/* Compiles the kernels once every weight is bound. */
int damc_compile(DamcModel *model, DamcPrecision precision, DamcError *err);

/* The per-layer arrays of an evaluation or run, each an array with one entry per layer in
   declaration order (or NULL: none at all). An entry is [n] (one sample, used for every
   sample) or [B, n] (a batch; all batched entries agree on B), or absent (states: zeros;
   inputs: none; clamps: none). Results have a leading B when some entry was a batch.
   An input is given only to a layer declared with `input`, and a state (for damc_eval and
   damc_run) or a clamp only to an integrated layer: an eliminated layer (tau = 0) has no
   state of its own (x = u). Any other entry fails the call with status 1 and a message that
   names the layer and the layers that may take it (damc_hvp and damc_jvp take the state of
   every layer, eliminated ones too: H_A at x_A). */
typedef struct {
  const DamcArray *states;
  const DamcArray *inputs;
  const DamcArray *clamps; /* damc_run: nonzero = the neuron is held fixed */
} DamcBatch;

/* DAMC_ASYNC: the discrete single-unit rule for binary layers (g = sign), one sweep a step.
   DAMC_ITERATE: the fixed-point iteration x <- u (one update a step; with eliminated hidden
   layers, the update of modern Hopfield networks; max_steps = 1 is one-step retrieval). */
typedef enum { DAMC_DOPRI5, DAMC_RK4, DAMC_EULER, DAMC_ASYNC, DAMC_ITERATE } DamcMethod;

/* DAMC_ASYNC's order of the units in a sweep: a random permutation per sweep drawn from
   `seed` (docs/cli.md), or in order. */
typedef enum { DAMC_ORDER_RANDOM, DAMC_ORDER_SEQUENTIAL } DamcOrder;

/* What a run reports while it goes on (DamcRunOptions.progress). */
typedef struct {
  size_t step, max_steps;
  double t;               /* NaN in the last report */
  double energy;          /* E of the first sample still moving (NaN when unknown) */
  size_t converged, batch;
  double elapsed;         /* seconds since the run started */
  double remaining;       /* an estimate of the seconds left (NaN when unknown) */
  int done;               /* 1 in the last report of the run */
} DamcProgress;

typedef struct {
  DamcMethod method;      /* zero: dopri5 */
  double dt;              /* 0: a tenth of the smallest tau; negative, NaN or inf: refused */
  double rtol, atol;      /* 0: the defaults for the precision (see docs/cli.md); negative,
                             NaN or inf: refused (status 2) */
  double tol;             /* stop a sample when every tau |dx/dt| <= tol (1 + |x|) (docs/cli.md);
                             0: the default for the precision (1e-4 f32, 1e-7 f64);
                             negative: never stop early; NaN or inf: refused */
  size_t max_steps;       /* 0: 10000 */
  double noise_T;         /* euler: Langevin temperature; async: heat-bath (Glauber)
                             temperature; other methods: must be 0 */
  uint64_t seed;          /* of the noise, and of async's sweep order */
  FILE *trace;            /* NULL, or where to write the CSV trace (one row per step) */
  /* NULL, or called at most ten times a second during the run and once at its end. */
  void (*progress)(void *user, const DamcProgress *progress);
  void *progress_user;
  /* NULL, or a flag (set by a signal handler, say) that stops the run at the next step
     with status 1 and a message that says it was interrupted; the trace keeps the steps
     taken. */
  const volatile int *cancel;
  DamcOrder order;        /* DAMC_ASYNC only; zero: random */
} DamcRunOptions;

/* E and, per layer, g_A, u_A and dxdt_A at the given states. */
DamcResults *damc_eval(DamcModel *model, const DamcBatch *batch, DamcError *err);
/* At the given states, with `directions` one array per layer in declaration order (like the
   states: [n] or [B, n], absent: zeros): the Hessian-vector products H_A d_A of every layer
   ("hvp_A"), or the Jacobian-vector product of the right-hand side,
   sum_B d(dx_A/dt)/dx_B d_B, of every integrated layer ("jvp_A"). Compiled when first used. */
DamcResults *damc_hvp(DamcModel *model, const DamcBatch *batch, const DamcArray *directions,
                      DamcError *err);
DamcResults *damc_jvp(DamcModel *model, const DamcBatch *batch, const DamcArray *directions,
                      DamcError *err);
/* Integrates to convergence: x_A and g_A per layer, E, steps and converged per sample.
   `options` may be NULL. */
DamcResults *damc_run(DamcModel *model, const DamcBatch *batch, const DamcRunOptions *options,
                      DamcError *err);

/* damc check (docs/cli.md, "damc check"): the derivative, convexity, energy and stability
   checks of the model as bound so far (weights and params; without every weight, the checks
   that need them are skipped), on a float64 copy (the model itself is not changed, compiled
   or not). `samples` (0: 20) states are sampled from `seed`. The report is a list of items. */
typedef struct DamcCheckReport DamcCheckReport;
typedef struct {
  const char *check;    /* "derivatives", "convexity", "stability", ... */
  const char *subject;  /* "layer v", "network", "fixed point 0", ... */
  const char *where;    /* "model.dam:4:9", or "" */
  const char *verdict;  /* "pass", "warn", "fail" or "skipped" */
  const char *reason;
} DamcCheckItem;
DamcCheckReport *damc_check(DamcModel *model, uint64_t seed, int samples, DamcError *err);
size_t damc_check_count(const DamcCheckReport *report);
/* Item i (valid until damc_check_free); and one of its numbers by name (NaN when absent). */
void damc_check_item(const DamcCheckReport *report, size_t i, DamcCheckItem *item);
double damc_check_number(const DamcCheckReport *report, size_t i, const char *name);
/* One of its vectors by name ("eig(J)", "x*": a spectrum or a state): `*count` values, or
   NULL when absent. Valid until damc_check_free. */
const double *damc_check_vector(const DamcCheckReport *report, size_t i, const char *name,
                                size_t *count);
/* "pass", "warn" or "fail": the worst verdict; and the whole report as JSON. */
const char *damc_check_verdict(const DamcCheckReport *report);
const char *damc_check_json(const DamcCheckReport *report);
void damc_check_free(DamcCheckReport *report);

/* The result `name` ("E", "x_v", "g_h", ...): its float64 values (`*count` of them,
   batch-major), or NULL when there is none. Valid until damc_results_free. */
const double *damc_result(const DamcResults *results, const char *name, size_t *count);
/* NULL, or a warning about the run that produced the results (samples that did not
   converge: how many, where the largest residual is, what to change). Valid until
   damc_results_free. */
const char *damc_results_warning(const DamcResults *results);
/* All results, in order: damc_results_at(r, i, &array) for i < damc_results_count(r) gives
   the i-th name and fills `array` (float64; rank 0 for a scalar of one sample). */
size_t damc_results_count(const DamcResults *results);
const char *damc_results_at(const DamcResults *results, size_t i, DamcArray *array);
void damc_results_free(DamcResults *results);

/* ---- Added in 0.2: reuse of a compiled model, and what bindings for other languages need.
   (The declarations above are unchanged; these are appended.) ---- */

/* Binds weight `name`, already bound (by damc_bind_weight or before), to `weight` instead,
   before or after damc_compile: `weight` must have the same shape as the array it replaces
   (so every dim keeps its size) and is checked as damc_bind_weight checks (finite, declared
   symmetry; for float32 kernels, within the float32 range). The kernels of every precision
   compiled read the new data at their next call, in place when its dtype is theirs (keep it
   alive and unchanged until it is replaced or the model is freed), else converted into the
   copy made for the old data: nothing is compiled again (damc_model_compile_count).
   A weight not bound yet is bound as by damc_bind_weight. Fails with status 1 (a shape that
   differs: a new shape needs a new model; a NaN; an unknown name) or 2 (no data, a bad rank
   or dtype); the binding in place is then the old one. */
int damc_rebind_weight(DamcModel *model, const char *name, const DamcArray *weight,
                       const char *origin, DamcError *err);

/* Makes damc_eval, damc_run, damc_hvp and damc_jvp use the kernels of `precision`,
   compiling them when no kernels of that precision were compiled for this model yet (from
   a copy of the model with the same weights, read in place, and params); the kernels of
   the other precision are kept for a later call. Before any damc_compile it is
   damc_compile. damc_set_param and damc_rebind_weight apply to every precision compiled.
   Fails with status 2 (not DAMC_F32 or DAMC_F64) or 1 (the compile failed: the selection
   is then unchanged). */
int damc_use_precision(DamcModel *model, DamcPrecision precision, DamcError *err);

/* How the two products around an eliminated layer (u = W' softmax(beta W g) or W' F'(W g))
   are computed: AUTO chooses by the sizes (docs/performance.md, "Kernels chosen by size"),
   BLAS always calls gemm twice around the layer's maps, FUSED always streams the weight once
   (the fused kernel of runtime/src/kernel_fused.c). Applies to the next damc_compile or
   damc_use_precision that compiles (set it before them). Fails with status 2 for a value
   that is none of these. */
typedef enum { DAMC_KERNELS_AUTO = 0, DAMC_KERNELS_BLAS = 1, DAMC_KERNELS_FUSED = 2 } DamcKernels;
int damc_set_kernels(DamcModel *model, DamcKernels kernels, DamcError *err);

/* How many times kernels were generated and compiled to machine code for this model, all
   precisions together (0 before damc_compile; 1 after it, the step kernel; each other kernel
   adds one when first used: the eval kernel at the first damc_eval or damc_run, the energy
   kernel at the first damc_energy, hvp and jvp likewise, and a second precision). Once a
   kernel exists, calls that use it, damc_set_param and damc_rebind_weight leave the count
   unchanged. Kernels loaded from the cache of compiled kernels
   (docs/cli.md; DAMC_NO_CACHE=1 turns it off) are not compiled and not counted: with a warm
   cache the count stays 0. */
unsigned damc_model_compile_count(const DamcModel *model);

/* Copies result `name` into the caller's buffer `out` of `count` values (exactly the
   result's count, batch-major as damc_result gives it), as float64 (dtype 0 or DAMC_F64)
   or rounded to float32 (DAMC_F32). Fails with status 2 on an unknown name, a NULL buffer,
   another count or another dtype. */
int damc_result_copy(const DamcResults *results, const char *name, void *out,
                     DamcPrecision dtype, size_t count, DamcError *err);

/* What `damc explain` prints for the model (`latex` nonzero: `damc explain --latex`): the
   derived L, g, H, energy, currents and dynamics. Valid until damc_model_free. */
const char *damc_explain(DamcModel *model, int latex);

/* The model's weights and params (those damc_bind_weight and damc_set_param take), in
   declaration order: their names, or NULL for an index out of range. */
int damc_weight_count(const DamcModel *model);
const char *damc_weight_name(const DamcModel *model, int weight);
int damc_param_count(const DamcModel *model);
const char *damc_param_name(const DamcModel *model, int param);

/* The diagnostics of an error as records. A located one comes from a line
   "FILE:LINE:COL: SEVERITY: MESSAGE" (the lines of source excerpt after it are skipped);
   any other line of the message is an unlocated record (file "", line and column 0,
   severity "error"): the tensor errors name the tensor and its origin in their message.
   Texts longer than their field are truncated. */
typedef struct {
  char file[256];        /* the model file (as given, or the name of a model from text) */
  unsigned line, column; /* 1-based; 0 when not located in a model's text */
  char severity[16];     /* "error", "warning" or "note" */
  char message[1024];
} DamcDiagnostic;
size_t damc_error_diagnostic_count(const DamcError *err);
/* Fills `diagnostic` with record i (< damc_error_diagnostic_count) and returns 1; 0 (and a
   zeroed record) past the end. */
int damc_error_diagnostic(const DamcError *err, size_t i, DamcDiagnostic *diagnostic);

/* ---- Added after 0.2.0 (the declarations above are unchanged) ---- */

/* The energy alone at the given states: "E" (per sample), and the activations g_A of the
   integrated layers it reads. With eliminated layers it is the reduced energy (the same
   value as damc_eval's E at x_h = u_h; docs/theory.md §2), computed with one product per
   memory weight, fused with its log-sum-exp or sum into one pass over the weight, where
   damc_eval computes both products of the dynamics. Compiled when first used. Status as
   damc_eval's. */
DamcResults *damc_energy(DamcModel *model, const DamcBatch *batch, DamcError *err);

/* The means a message names when it says how to give what is missing or to ask for what
   would help. A model from damc_model_from_file or damc_model_from_string names the C API's
   (shown here: "weight 'Xi' [K, N=784] is missing: give it with damc_bind_weight(model,
   "Xi", ...)"); a binding for another language names its own, setting each phrase after
   opening the model (the Python module: "give it with Model.bind(Xi=ARRAY)"). In a phrase,
   "{name}" stands for the weight, dim or param and "{value}" for the size or value. */
typedef enum {
  DAMC_PHRASE_WEIGHT,      /* giving weight {name}: damc_bind_weight(model, "{name}", ...) */
  DAMC_PHRASE_WEIGHTS,     /* giving every weight, after "give them": with damc_bind_weight */
  DAMC_PHRASE_DIM,         /* the call that sized dim {name}, in its errors:
                              damc_set_dim(model, "{name}", {value}) */
  DAMC_PHRASE_DIM_SIZE,    /* giving dim {name} the size {value}: the same */
  DAMC_PHRASE_DIM_ORIGIN,  /* where a size so given came from: damc_set_dim */
  DAMC_PHRASE_PARAM,       /* the call that set param {name}, in its errors:
                              damc_set_param(model, "{name}", {value}) */
  DAMC_PHRASE_PARAM_VALUE, /* giving param {name} the value {value}: the same */
  DAMC_PHRASE_F64,         /* asking for float64 kernels: damc_use_precision(model, DAMC_F64) */
  DAMC_PHRASE_DT,          /* the run's options: DamcRunOptions.dt, .tol, .max_steps */
  DAMC_PHRASE_TOL,
  DAMC_PHRASE_MAX_STEPS,
  DAMC_PHRASE_DOPRI5,      /* the run's methods: DAMC_DOPRI5, DAMC_ASYNC, DAMC_EULER */
  DAMC_PHRASE_ASYNC,
  DAMC_PHRASE_EULER,
  DAMC_PHRASE_EVAL,        /* evaluating without a run: damc_eval */
  DAMC_PHRASE_CHECK,       /* the checks of the model: damc_check */
  DAMC_PHRASE_EXPLAIN      /* the equations with a layer eliminated: damc_explain */
} DamcPhrase;
/* Sets `phrase` of the model's messages to `text` (copied), for every precision compiled and
   to come. `text` may be NULL for DAMC_PHRASE_DIM_SIZE only: the caller has no means to size
   a dim (the message then names the model's declaration alone). Fails with status 2 for
   another phrase or another NULL. */
int damc_set_phrase(DamcModel *model, DamcPhrase phrase, const char *text, DamcError *err);

#ifdef __cplusplus
}
#endif

#endif

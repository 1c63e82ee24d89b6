// The engine: a model compiled to native kernels and bound to its tensors.
//
// It is the pipeline in one place. engine_compile runs the stages in order, each once, up to
// the one a caller needs, and resumes there on the next call:
//
//   read ─► parse ─► check ─► derive ─► bind ─► plan ─► codegen ─► jit
//   file    text     syntax    Model     Network  sizes,  Plans     module
//   → text  → tree   → Model   → Network  + tensors τ     → module  → kernels
//
// `damc parse` stops after check, `explain` after derive, `emit --plan` after plan, eval and
// run after jit. Weights and params are given between derive and bind (engine_bind_weight,
// engine_set_param); which kernels to build, and in which precision, before bind.
//
// It then evaluates the model at given states (engine_eval, batch.c) and integrates its
// dynamics (engine_run, run.c and async.c) on batches of samples; trace.c writes the CSV
// trace of a run and bench.c times the kernels.
//
// Every failure is a value: functions return false (or NULL) and append a message to `err`
// that names the file, the tensor and the shapes involved. Nothing here exits. Located
// diagnostics of the model also go to the session's echo stream as they come.
#ifndef DAMC_ENGINE_H
#define DAMC_ENGINE_H

#include <stdbool.h>
#include <stdio.h>

#include "damrt_integrate.h"
#include "damrt_tensor.h"
#include "derive/kernel_eqs.h"
#include "derive/network.h"
#include "lower/plan.h"
#include "support/strbuf.h"

typedef struct Engine Engine;

// The stages, in pipeline order; each consumes what the one before produced.
typedef enum {
  STAGE_NONE,
  STAGE_READ,     // the model file -> its text (a regular file, at most ENGINE_MAX_MODEL_BYTES)
  STAGE_PARSE,    // text -> the syntax tree of the prelude and the file
  STAGE_CHECK,    // syntax tree -> a checked Model (names, shapes, the language's rules)
  STAGE_DERIVE,   // Model -> Network: g, H, Lambda, E, u, dx/dt, the reduced model
  STAGE_BIND,     // weights, params -> every dim's size, tau, weights in kernel precision
  STAGE_PLAN,     // Network + sizes -> a Plan per wanted kernel (lower/plan.h)
  STAGE_CODEGEN,  // Plans -> an LLVM module optimised for the host (backend/kernels.h)
  STAGE_JIT,      // module -> callable kernels
} EngineStage;

// The largest model file read (a model is text; this stops `damc parse /dev/zero`).
enum { ENGINE_MAX_MODEL_BYTES = 64 << 20 };

// An engine for the model in file `path`, or in `text` (`len` bytes, named `name` in
// messages). Nothing is read or checked until engine_compile. `echo` (or NULL) receives
// located diagnostics as they are found.
Engine *engine_new(const char *path, FILE *echo);
Engine *engine_new_text(const char *name, const char *text, size_t len, FILE *echo);
void engine_free(Engine *e);

// Runs the stages after the last one done, up to and including `last`. False, with the
// messages in `err`, when a stage fails (the engine is then left at the stage before it).
bool engine_compile(Engine *e, EngineStage last, StrBuf *err);

// The means a message names when it says how to give what is missing or to ask for what
// would help, in the words of the front end in use: the command line's flags (the default,
// shown here), the C API's functions, the Python module's keywords. The front end sets its
// phrases when it creates the engine; the text around them is the engine's, one for all.
// In a phrase, "{name}" stands for the weight, dim or param and "{value}" for the size or
// value the message is about.
typedef enum {
  PHRASE_WEIGHT,       // giving weight {name}: "--weights FILE.npz or --weight {name}=FILE.npy"
  PHRASE_WEIGHTS,      // giving every weight, after "give them": "as for damc eval"
  PHRASE_DIM,          // the call that sized dim {name} (with {value}), in its errors: "--dim {name}"
  PHRASE_DIM_SIZE,     // giving dim {name} the size {value}: "--dim {name}={value}"; NULL: none
  PHRASE_DIM_ORIGIN,   // where a size so given came from: "--dim"
  PHRASE_PARAM,        // the call that set param {name} (to {value}), in its errors: "--set {name}"
  PHRASE_PARAM_VALUE,  // giving param {name} the value {value}: "--set {name}={value}"
  PHRASE_F64,          // asking for float64 kernels: "--precision f64"
  PHRASE_DT,           // the run's options: "--dt", "--tol", "--max-steps"
  PHRASE_TOL,
  PHRASE_MAX_STEPS,
  PHRASE_DOPRI5,       // the run's methods: "--method dopri5", "--method async", "--method euler"
  PHRASE_ASYNC,
  PHRASE_EULER,
  PHRASE_EVAL,         // evaluating without a run: "damc eval"
  PHRASE_CHECK,        // the checks of the model: "damc check"
  PHRASE_EXPLAIN,      // the equations with a layer eliminated: "damc explain --eliminate"
  PHRASE_COUNT
} EnginePhrase;

// Sets phrase `p` to `text` (copied). NULL only for PHRASE_DIM_SIZE: the front end has no
// means to size a dim (the message then names the model's declaration alone).
void engine_set_phrase(Engine *e, EnginePhrase p, const char *text);
// Phrase `p` with {name} and {value} filled in, in `buf` (cleared first; the caller frees
// it); NULL when the front end has no such means.
const char *engine_phrase(const Engine *e, EnginePhrase p, const char *name, const char *value,
                          StrBuf *buf);

// After STAGE_BIND: warns, at the place in the model, about each Lagrangian that the params
// as set (--set, damc_set_param) make provably non-convex or put outside a parameter rule,
// where the defaults did not (parse already warned about those). docs/theory.md §4.2.1,
// §4.2.5. The warnings go to the engine's echo stream (the command line's stderr) and, when
// `out` is not NULL, their text (with the source excerpts) is appended to it. Returns the
// number of warnings.
int engine_warn_param_rules(Engine *e, StrBuf *out);

// Before STAGE_DERIVE: layers to eliminate besides those with tau = 0 (indices).
void engine_eliminate(Engine *e, const int *layers, int n);
// After STAGE_DERIVE: the kernels' float type (default float32) and whether to keep a copy
// of the code to show (engine_kernels_text, engine_object_code; it doubles compile time).
// Anything compiled before is dropped: the next engine_compile binds, plans and compiles
// again.
void engine_target(Engine *e, DamrtDtype dtype, bool showable);
// How the products around an eliminated layer are computed (lower/plan.h); a change
// replans the kernels at the next engine_compile.
void engine_set_kernels(Engine *e, PlanKernels kernels);
// Steps the engine back to `stage` (no further than it is), dropping what later stages made.
void engine_rewind(Engine *e, EngineStage stage);
// Asks for kernel `kind` (the step kernel KERNEL_RHS is always wanted). Asking after the
// plan stage steps the engine back so that the next engine_compile builds it.
void engine_want(Engine *e, KernelKind kind);
// Wants only the kernel `kind`, before anything is planned (damc eval: no step kernel is
// compiled for a command that never steps).
void engine_want_only(Engine *e, KernelKind kind);
// Starts compiling kernel `kind` on another thread (engine_kernel waits for it), so that it
// is compiled while the caller compiles or runs another kernel; does nothing when it is
// compiled or being compiled already, when the engine is not bound, or for code to show.
void engine_prefetch(Engine *e, KernelKind kind);

// After STAGE_CHECK: the checked model; after STAGE_DERIVE: its network.
const Model *engine_model(const Engine *e);
const Network *engine_network(const Engine *e);
// The index of the layer, weight or param named `name`, or -1 (after STAGE_CHECK).
int engine_layer_index(const Engine *e, const char *name);
int engine_weight_index(const Engine *e, const char *name);
int engine_param_index(const Engine *e, const char *name);
// After STAGE_CHECK: "model 'm' has no layer 'vv'; did you mean 'v'? (its layers: v h)",
// the message for a name of `kind` that the model does not have.
typedef enum { NAME_LAYER, NAME_WEIGHT, NAME_PARAM } EngineNameKind;
void engine_unknown_name(const Engine *e, EngineNameKind kind, const char *name, StrBuf *out);
// After STAGE_DERIVE: every dim's size (-1 while unbound) and every param's value; after
// STAGE_BIND, weight `w` as the kernels read it (in their dtype).
const int64_t *engine_dims(const Engine *e);
const double *engine_params(const Engine *e);
const void *engine_weight(const Engine *e, int w);
bool engine_weight_bound(const Engine *e, int w);
// A new engine for the same model text, through STAGE_DERIVE, with the same weights (read
// in place from `e`'s arrays, which must outlive it) and params bound: the same model in
// another precision (damc check's float32 comparison). NULL with the message on failure.
Engine *engine_clone(const Engine *e, StrBuf *err);
// The stream located diagnostics go to as they are found (engine_new's `echo`), or NULL:
// then every message is in the `err` of the call that failed.
FILE *engine_echo(const Engine *e);
// The diagnostics of the model's source (to turn spans into FILE:LINE:COL).
const DiagSink *engine_diagnostics(const Engine *e);
// The number of neurons of layer `a` (0 while its dim is unbound).
size_t engine_layer_size(const Engine *e, int a);

// A row-major array of float32 or float64 as the caller holds it (not owned).
typedef struct {
  DamrtDtype dtype;
  int rank;
  size_t shape[DAMRT_MAX_RANK];
  const void *data;  // NULL: absent
} EngineArray;

// Element `k` of an array of `dtype` (float32 or float64) as a double.
double engine_get(DamrtDtype dtype, const void *base, size_t k);

// After STAGE_DERIVE, before STAGE_BIND: binds weight `name` to `w`, which the engine reads
// until it is freed (used in place when its dtype is the kernels', else converted once at
// bind). `origin` names where it came from ("weights.npz") in messages. Binds the dims its
// shape names that have no size yet; checks the shape, finiteness and declared symmetry.
bool engine_bind_weight(Engine *e, const char *name, const EngineArray *w, const char *origin,
                        StrBuf *err);
// Binds weight `name`, already bound, to `w` instead: the same shape (and so the same dims),
// checked as engine_bind_weight checks, but for the sizes of runtime dims (engine_vary_dim)
// that this weight alone fixed, which take the new sizes. After STAGE_BIND the kernels read
// the new data and sizes at their next call (in place, or converted again into the copy of
// the old one): nothing is planned or compiled again.
bool engine_rebind_weight(Engine *e, const char *name, const EngineArray *w, const char *origin,
                          StrBuf *err);
// How many times kernels were generated and compiled to machine code (codegen + jit) by this
// engine: eval, run and rebinding leave it unchanged once the kernels they need exist.
unsigned engine_compile_count(const Engine *e);
// The checks of engine_bind_weight that need only the shape (the name, every size at least
// 1, the declared rank and the dims bound so far), so that a file's header can be checked
// before its data is read.
bool engine_check_weight_shape(const Engine *e, const char *name, int rank, const size_t *shape,
                               const char *origin, StrBuf *err);
// Makes dim `d` a kernel argument (after STAGE_DERIVE): the plans and kernels made from now
// on read its size at every call instead of holding it as a number, so that
// engine_rebind_weight can give it another size without compiling again (damc capacity
// varies K so). Steps back to STAGE_BIND when kernels were planned with it as a number.
void engine_vary_dim(Engine *e, int d);
// Gives dim `name`, which the model declares without a size, the size `size` (>= 1; from
// `--dim NAME=SIZE` or damc_set_dim), before the weights that use it are bound (they must
// then agree).
bool engine_set_dim(Engine *e, const char *name, int64_t size, StrBuf *err);
// The weight whose shape gave dim `name` its size, or NULL (no such dim, no size yet, or a
// size from the model or engine_set_dim).
const char *engine_dim_bound_by(const Engine *e, const char *name);
// Sets param `name` (from `--set`, damc_set_param, Model.bind).
bool engine_set_param(Engine *e, const char *name, double value, StrBuf *err);

// After STAGE_PLAN: the plan of `kind`, or NULL when it was not wanted.
const Plan *engine_plan(const Engine *e, KernelKind kind);
// After STAGE_JIT with `showable`: the LLVM IR or host assembly of the kernels (the caller
// frees), or the object file's bytes (appended to `bytes`).
char *engine_kernels_text(Engine *e, bool assembly, StrBuf *err);
bool engine_object_code(Engine *e, StrBuf *bytes, StrBuf *err);

// Per-layer arrays given to engine_eval and engine_run, one entry per layer (or NULL: none):
// [n_a] or [B, n_a] (data NULL: absent; states then start at zero); all batched entries
// agree on B.
typedef struct {
  const EngineArray *state;
  const EngineArray *input;
  const EngineArray *clamp;      // engine_run only: 1 = the neuron is held fixed
  const EngineArray *direction;  // KERNEL_HVP and KERNEL_JVP: the direction d of each layer
} EngineArrays;

// The batch size of `arrays` (1 when every array is a single sample), and whether the
// outputs carry a leading batch axis. False with a message on inconsistent shapes.
bool engine_batch(const Engine *e, const EngineArrays *arrays, size_t *batch, bool *batched,
                  StrBuf *err);

// Named float64 results, in the order they were produced; engine_results_free frees them.
typedef struct {
  char name[72];
  DamrtTensor *tensor;
} EngineResult;

typedef struct {
  EngineResult *items;
  size_t count, cap;
  StrBuf warning;  // what the caller should be told although nothing failed (one line)
  size_t cycled;   // engine_run with iterate: samples stopped in a cycle of period 2
} EngineResults;

void engine_results_free(EngineResults *r);
// The result named `name`, or NULL.
const DamrtTensor *engine_result(const EngineResults *r, const char *name);

// Evaluates E and, per layer, g, u, dxdt and E_A at the given states (an eliminated layer is
// set to x = u). Appends the results to `out`; false with a message on error.
bool engine_eval(Engine *e, const EngineArrays *arrays, EngineResults *out, StrBuf *err);
// Runs kernel `kind` (compiled when first asked for) at the given states (and directions,
// for KERNEL_HVP and KERNEL_JVP) and appends its outputs ("hvp_v", "jvp_v", ...) to `out`.
bool engine_apply(Engine *e, KernelKind kind, const EngineArrays *arrays, EngineResults *out,
                  StrBuf *err);

// What a long run reports while it goes on (at most ten times a second, and once at the end).
typedef struct {
  size_t step, max_steps;
  double t;
  double energy;        // E of the first sample still moving (NaN when not computed)
  size_t converged, batch;
  double elapsed;       // seconds since the run started
  double remaining;     // an estimate of the seconds left (NaN when unknown)
  bool done;            // the last report of the run
} EngineProgress;

// The network's values after a step (EngineRunOptions.on_state), in the kernels' dtype,
// [batch, n_A] per layer (NULL where the layer has none: x of an eliminated layer is its u,
// I of a layer without input), E and E_A [batch]; valid during the call only.
typedef struct {
  size_t step, batch;
  double t;
  DamrtDtype dtype;
  const void *energy;
  const void *const *x, *const *g, *const *u, *const *input, *const *part;
  const uint8_t *active;  // [batch]: 1 for samples still moving
} EngineState;

typedef struct {
  DamrtMethod method;
  bool async;  // the discrete single-unit rule instead of `method` (binary layers)
  double dt, rtol, atol;  // dt <= 0: a tenth of the smallest tau
  double tol;             // stop a sample when every |dx/dt| < tol
  size_t max_steps;
  double noise_T;  // euler: Langevin temperature; async: the heat-bath rule's temperature
  uint64_t seed;   // of the noise, and of async's sweep order
  FILE *trace;  // NULL, or where to write the CSV trace (one row per accepted step)
  void (*progress)(void *user, const EngineProgress *p);  // NULL: none
  void *progress_user;
  const volatile int *cancel;  // NULL, or nonzero: stop at the next step (an error)
  // NULL, or called at the initial state and after every accepted step with the network's
  // values there (damc check's energy monitor); false stops the run with an error.
  bool (*on_state)(void *user, const EngineState *s);
  void *state_user;
  bool sequential;  // async: sweep the units in order instead of a random permutation per sweep
} EngineRunOptions;

// Integrates the dynamics from the given states (zeros where none is given), holding the
// clamped neurons fixed, until every sample has converged or max_steps. With `async`, every
// integrated layer must be binary (LayerEq.binary): each step is one sweep of the
// single-unit rule (async.c), in O(N K) when Network.async_fast and O(N^2 K) otherwise. Appends x and g of every layer, the final E, and per sample
// `steps` and `converged` to `out`; false on error (a NaN or overflow names the layer, the
// sample and the step).
bool engine_run(Engine *e, const EngineArrays *arrays, const EngineRunOptions *opt,
                EngineResults *out, StrBuf *err);

// Times the kernels on `batch` samples (states filled with a fixed pattern): the median
// seconds of one call of the rhs kernel (one step's work) and of the eval kernel over
// `repeat` calls each, after one warm-up call.
bool engine_bench(Engine *e, size_t batch, int repeat, double *rhs_seconds, double *eval_seconds,
                  StrBuf *err);

#endif

// What the engine's files share (engine.h is the interface): the Engine itself, and the
// helpers that move values between the caller's arrays, the kernels' buffers and results.
//
// pipeline.c runs the stages, bind.c checks and binds tensors, batch.c executes kernels on
// batches (buffers, dtype conversion, results, eval), run.c is the glue to the integrators,
// async.c the discrete single-unit rule, trace.c the CSV trace writer, bench.c the timing,
// phrases.c the front end's words in messages.
#ifndef DAMC_ENGINE_INTERNAL_H
#define DAMC_ENGINE_INTERNAL_H

#include "engine/kcache.h"
#include "engine/engine.h"
#include "front/ast.h"
#include "support/session.h"

struct Engine {
  EngineStage done;  // the last stage that succeeded
  // read
  const char *path;  // the model file, or NULL for text given in memory
  const char *name;  // the model's name in messages
  char *text;
  size_t len;
  // parse, check, derive
  Session *s;
  FILE *echo;  // where located diagnostics go as found (then not repeated in `err`)
  AstDecl *program;
  Model *m;
  int *eliminate;
  int neliminate;
  Network *net;
  // bind: per dim, its size (-1 while unbound) and the weight that bound it
  int64_t *dims;
  const char **dim_origin;
  bool *runtime;  // per dim: a kernel argument (engine_vary_dim)
  double *params;
  bool *param_set;
  EngineArray *weights;  // per weight, as the caller gave it (data NULL until bound)
  const char **weight_origin;
  DamrtDtype dtype;
  bool showable;
  PlanKernels kernel_choice;  // how products around eliminated layers are computed (--kernels)
  DamrtTensor **converted;  // per weight: a copy in the kernels' dtype, or NULL (used in place)
  const void **weight_data; // per weight: what the kernels read
  double *tau;              // per layer, evaluated
  // plan, codegen, jit: per kernel kind
  bool wanted[KERNEL_KINDS];
  Plan *plans[KERNEL_KINDS];
  Code *modules[KERNEL_KINDS];  // the module that holds the kernel (one module for kernels compiled together)
  KernelFn kernels[KERNEL_KINDS];
  unsigned compile_count;  // modules generated and compiled (engine_compile_count)
  struct Prefetch *prefetch[KERNEL_KINDS];  // a kernel being compiled on another thread
  // The front end's words in messages (EnginePhrase): used as they are by the messages that
  // have no name or value to fill in, through engine_phrase by the others.
  const char *phrases[PHRASE_COUNT];
};

// The command line's phrases (phrases.c), every engine's until its front end sets its own.
extern const char *const engine_cli_phrases[PHRASE_COUNT];


// Which layers may be given which of `arrays`, checked once for eval, run and the checks
// (engine_batch): a state or a clamp only for an integrated layer (an eliminated one has no
// state of its own: x = u; the derivative kernels, given directions, take every layer's
// state), an input only for a layer declared with `input`. False with the message, which
// names the layers that may take the array, otherwise.
bool engine_check_layer_arrays(const Engine *e, const EngineArrays *arrays, StrBuf *err);

// Points the kernels at weight `w` as bound: its data in place when its dtype is the
// kernels', else a copy converted into it (the one made before, reused when there is one).
bool engine_weight_to_kernels(Engine *e, int w, StrBuf *err);

// Evaluates what the params and sizes fix, with the values bound (bind, a param set after
// it, a weight bound again with new sizes): every expression of them alone, which must be
// finite (front/param_domain.h: located errors), and each layer's tau.
bool engine_evaluate_params(Engine *e, StrBuf *err);

// The compiled kernel of `kind`, compiling it through the pipeline when not yet done.
KernelFn engine_kernel(Engine *e, KernelKind kind, StrBuf *err);

// "[K=100, N=784]": the declared shape of weight `w` with the sizes known so far.
void engine_declared_shape(const Engine *e, int w, StrBuf *out);
// "[3, 4]"
void engine_shape_text(int rank, const size_t *shape, StrBuf *out);
// Where dim `d`'s size came from, when a weight bound it: " (N = 784 from weight 'Xi' in
// w.npz, shape [5, 784], declared [K, N]; is 'Xi' transposed?)". The question is asked when
// `other`, a size that contradicts the dim, is the size of the weight's other axis.
void engine_dim_origin(const Engine *e, int d, size_t other, StrBuf *out);

// The runtime's view of an engine array (no copy), for its tensor checks.
DamrtTensor engine_tensor_view(const EngineArray *a);
// Sets element `k` of an array of `dtype` to `v` (engine_get, engine.h, is the reverse).
void engine_set(DamrtDtype dtype, void *base, size_t k, double v);
// False, with "LABEL: 1e+39 at [3, 4] does not fit float32 ...", when a float64 array
// holds a value beyond the range of the kernels' dtype.
bool engine_check_range(const Engine *e, const EngineArray *a, const char *label, StrBuf *err);
// False, with the output, the sample and the index, when a result from `first` on holds a
// NaN or an infinity: no non-finite value leaves the engine unreported. The results are
// those of kernel `kind` at the arrays `at` (for float32 kernels, the sample is evaluated
// again in float64 to say whether the precision is the cause: engine_precision_hint).
bool engine_check_results(const Engine *e, KernelKind kind, const EngineResults *r,
                          size_t first, bool batched, const EngineArrays *at, StrBuf *err);

// ---- The same value in float64 (f64_probe.c) ----

typedef enum { F64_UNKNOWN, F64_FINITE, F64_NOT_FINITE } F64Verdict;
// For element `index` of output `name` of kernel `kind` at sample `sample` of the arrays
// `at`, which is not finite in the kernels of `e`: whether it is finite when the model is
// compiled again in float64 (with the same weights and params; unknown when that could not
// be computed), and the end of a message that says so. For float32 kernels "; it overflows
// float32 there (in float64 it is 2.5e+43): use --precision f64", ", in float64 too: the
// precision is not the cause", or " (--precision f64 may help)" when unknown (the phrase
// of the front end in use for float64, PHRASE_F64, instead of --precision f64); for float64
// kernels nothing (the value is float64's: F64_NOT_FINITE).
F64Verdict engine_precision_hint(const Engine *e, KernelKind kind, const EngineArrays *at,
                                 size_t sample, const char *name, size_t index, StrBuf *out);
// False, with the place of the first NaN or infinity, unless every element is finite.
bool engine_check_finite(const EngineArray *t, const char *label, StrBuf *err);
// `count` zeroed elements of `elem` bytes, aligned for the widest vector loads.
void *engine_aligned_zeros(size_t count, size_t elem);
// The same, or NULL when it overflows, exceeds the physical memory or cannot be allocated.
void *engine_try_aligned_zeros(size_t count, size_t elem);

// The buffers of `plan` for `batch` samples, each sample of `arrays` given `copies` times in
// a row (1 usually; 2 for the async rule's pairs): states and inputs filled (a single-sample
// array repeated over the batch), weights pointed to, the rest zero. NULL, with a message in
// `err`, when a buffer does not fit the memory (engine_free_buffers takes NULL).
void **engine_alloc_buffers(const Engine *e, const Plan *plan, size_t batch, size_t copies,
                            const EngineArrays *arrays, StrBuf *err);
void engine_free_buffers(const Plan *plan, void **bufs);
// Appends buffer `buf` of `plan` as a float64 result named `name` ([B, n] or [n] when not
// batched, [B] or [] for scalars).
void engine_add_buffer_result(const Engine *e, EngineResults *out, const char *name,
                              const Plan *plan, int buf, const void *data, size_t batch,
                              bool batched);
// Appends a result that takes `t`.
void engine_add_result(EngineResults *out, const char *name, DamrtTensor *t);

// ---- A run in progress (run.c), shared with the trace writer and the async rule ----

// The integrator's state is one row of all integrated layers per sample; the kernels read
// one array per layer. The right-hand side copies between the two (cheap next to the
// products) through buffers allocated once, before the run.
typedef struct {
  Engine *e;
  size_t batch, dim;
  bool batched;
  int *offset;       // per layer: its first coordinate in a sample's row, or -1 (eliminated)
  int *dxdt_buf;     // per layer: the rhs plan's dxdt output buffer, or -1
  int *part_buf;     // per layer: the eval plan's E_A output buffer
  int energy_buf;    // the eval plan's E
  void **rhs_bufs;   // the rhs plan's buffers
  void **eval_bufs;  // the eval plan's buffers (for the trace and the async rule)
  const EngineRunOptions *opt;
  const double *tau;  // [dim]: each coordinate's tau (for the progress's residual)
  double started, last_report;  // clock_seconds() of the start and of the last progress report
  double first_rho;             // the largest scaled residual at the first report
  size_t first_rho_step;        // and its step
  size_t trace_bad_E_step;      // the first traced step whose E was not finite, or SIZE_MAX
  StrBuf trace_bad_E_hint;      // and whether the precision is the cause (engine_precision_hint)
  const EngineArray *input;     // the caller's inputs, per layer (or NULL)
} RunCtx;

// The states in the eval kernel's buffers (after engine_eval_rows), into `states` (one per
// layer; none for an eliminated layer, whose x is its u), for a check of the values there.
void engine_eval_states(const RunCtx *r, EngineArray *states);

// Copies between the rows of the integrator's state and the per-layer buffers `layer_buf`.
void engine_copy_rows(const RunCtx *r, const void *rows, void **bufs, const int *layer_buf,
                      bool to_rows);
// The eval kernel at the states `rows`, into r->eval_bufs.
void engine_eval_rows(const RunCtx *r, const void *rows);

// The trace (trace.c): its header line, and one row per sample after a step (an on_step
// hook of the integrators).
void trace_header(const RunCtx *r);
DamrtStatus trace_step(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                       const uint8_t *active, DamrtError *err);

// The per-step hook of a run (progress.c): the trace row, and the progress report when one
// is due (`active`: 1 for the samples still moving).
DamrtStatus run_on_step(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                        const uint8_t *active, DamrtError *err);
// The last progress report of a run.
void progress_done(RunCtx *r, size_t step, const uint8_t *active);

// The discrete single-unit rule (async.c) on the states `x` (rows), in place.
DamrtStatus async_run(RunCtx *r, char *x, const uint8_t *clamp, const EngineArrays *arrays,
                      size_t *steps, uint8_t *converged, StrBuf *err);

#endif

// The engine: a model compiled to native kernels and bound to its tensors.
//
// It joins the pipeline end to end: the front end and the derivation (a checked Model and
// its Network), the tensors (weights checked against the declared shapes, which bind the
// unbound dims; params), the plans of lower/plan.h, and their code, generated through the
// backend and compiled in process by the JIT. It then evaluates the model at given states
// (damc eval) and integrates its dynamics (damc run) on batches of samples.
//
// Every failure is a value: functions return false (or NULL) and append a message to
// `err` that names the file, the tensor and the shapes involved. Nothing here exits.
#ifndef DAMC_ENGINE_H
#define DAMC_ENGINE_H

#include <stdbool.h>
#include <stdio.h>

#include "damrt_integrate.h"
#include "damrt_tensor.h"
#include "derive/network.h"
#include "lower/plan.h"
#include "support/strbuf.h"

typedef struct Engine Engine;

// Parses, checks and derives the model in `path` (diagnostics to `echo` as they come, and
// into `err`). NULL when the model is wrong.
Engine *engine_open(const char *path, FILE *echo, StrBuf *err);
// The same from model text in memory; `name` is used in messages.
Engine *engine_open_text(const char *name, const char *text, size_t len, FILE *echo,
                         StrBuf *err);
void engine_free(Engine *e);
const Network *engine_network(const Engine *e);
// The number of neurons of layer `a` (0 while its dim is unbound).
size_t engine_layer_size(const Engine *e, int a);

// Binds weight `name` to `t` (taken in every case). `origin` names where it came from
// ("weights.npz") for messages. Binds the dims its shape names that have no size yet.
bool engine_bind_weight(Engine *e, const char *name, DamrtTensor *t, const char *origin,
                        StrBuf *err);
// Sets param `name` (from `--set`).
bool engine_set_param(Engine *e, const char *name, double value, StrBuf *err);

// Checks that every weight is bound and every param has a value, evaluates tau, builds the
// plans and compiles them for `dtype` (float32 or float64); `showable` keeps a copy of the
// code for engine_kernels_text and engine_write_object (it doubles the compile time).
bool engine_prepare(Engine *e, DamrtDtype dtype, bool showable, StrBuf *err);

// The plan of `kind` (after engine_prepare).
const Plan *engine_plan(const Engine *e, PlanKind kind);
// The LLVM IR or host assembly of the kernels (after engine_prepare); the caller frees.
char *engine_kernels_text(Engine *e, bool assembly, StrBuf *err);
bool engine_write_object(Engine *e, const char *path, StrBuf *err);

// Per-layer arrays given to engine_eval and engine_run: state[a], input[a] are [n_a] or
// [B, n_a] tensors (NULL: zeros); all given ones must agree on B.
typedef struct {
  DamrtTensor **state;
  DamrtTensor **input;
  DamrtTensor **clamp;  // engine_run only: 1 = the neuron is held fixed
} EngineArrays;

// The batch size of `arrays` (1 when every tensor is a single sample), and whether the
// outputs carry a leading batch axis. False with a message on inconsistent shapes.
bool engine_batch(const Engine *e, const EngineArrays *arrays, size_t *batch, bool *batched,
                  StrBuf *err);

// A named result tensor (float64), owned by the caller.
typedef struct {
  char name[64];
  DamrtTensor *tensor;
} EngineResult;

// Evaluates E and, per layer, g, u and dxdt at the given states (an eliminated layer is set
// to x = u). Fills `out` (at most `max` results) and returns how many, or -1 on error.
int engine_eval(Engine *e, const EngineArrays *arrays, EngineResult *out, int max, StrBuf *err);

typedef struct {
  DamrtMethod method;
  bool async;  // the discrete single-unit rule instead of `method` (binary layers)
  double dt, rtol, atol;  // dt <= 0: a tenth of the smallest tau
  double tol;             // stop a sample when every |dx/dt| < tol
  size_t max_steps;
  double noise_T;
  uint64_t seed;
  FILE *trace;  // NULL, or where to write the CSV trace (one row per accepted step)
} EngineRunOptions;

// Integrates the dynamics from the given states (zeros where none is given), holding the
// clamped neurons fixed, until every sample has converged or max_steps. With `async`, every
// integrated layer must be binary (g = sign(x), as from L = sum(abs(x))): each step is one
// sweep of the single-unit rule (theory.md §5.3), which sets each neuron in turn to the
// sign of lower energy (keeping it on ties), and a sample has converged after a sweep
// without a change. Fills `out` with
// x and g of every layer, the final E, and per sample `steps` and `converged`; returns how
// many results, or -1 on error (a NaN or overflow names the layer, the sample and the step).
int engine_run(Engine *e, const EngineArrays *arrays, const EngineRunOptions *opt,
               EngineResult *out, int max, StrBuf *err);

// Times the kernels on `batch` samples (states filled with a fixed pattern): the median
// seconds of one call of the rhs kernel (one step's work) and of the eval kernel over
// `repeat` calls each, after one warm-up call.
bool engine_bench(Engine *e, size_t batch, int repeat, double *rhs_seconds, double *eval_seconds,
                  StrBuf *err);

#endif

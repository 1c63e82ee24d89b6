/* damc.h: the C API of damc, a compiler for Dense Associative Memory models.
 *
 * Compile a model (from a file or a string), bind its weights and params, and evaluate or
 * integrate it on batches of samples with kernels compiled for this machine. The damc
 * command line is built on the same engine.
 *
 *   DamcError err = {0};
 *   DamcModel *m = damc_model_from_file("model_b.dam", &err);
 *   damc_bind_weight(m, "Xi", 2, (size_t[]){K, N}, xi, &err);
 *   damc_compile(m, DAMC_F64, &err);
 *   DamcBatch in = {1, states, NULL, NULL};
 *   DamcResults *r = damc_run(m, &in, NULL, &err);
 *   const double *v = damc_result(r, "x_v", &count);
 *   damc_results_free(r); damc_model_free(m);
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

/* Binds weight `name` to `data` (row-major float64, copied) of shape shape[0..rank). */
int damc_bind_weight(DamcModel *model, const char *name, int rank, const size_t *shape,
                     const double *data, DamcError *err);
int damc_set_param(DamcModel *model, const char *name, double value, DamcError *err);

/* Compiles the kernels once every weight is bound. */
int damc_compile(DamcModel *model, DamcPrecision precision, DamcError *err);

/* A batch: per layer (in declaration order) `batch` rows of the layer's size, row-major,
   or NULL (states: zeros; inputs: none; clamps: none). */
typedef struct {
  size_t batch;
  const double *const *states;
  const double *const *inputs;
  const double *const *clamps; /* damc_run: nonzero = the neuron is held fixed */
} DamcBatch;

typedef enum { DAMC_DOPRI5, DAMC_RK4, DAMC_EULER } DamcMethod;

typedef struct {
  DamcMethod method;      /* zero: dopri5 */
  double dt;              /* 0: a tenth of the smallest tau */
  double rtol, atol, tol; /* 0: the command line's defaults for the precision */
  size_t max_steps;       /* 0: 10000 */
  double noise_T;         /* Langevin temperature (euler only) */
  uint64_t seed;
} DamcRunOptions;

/* E and, per layer, g_A, u_A and dxdt_A at the given states. */
DamcResults *damc_eval(DamcModel *model, const DamcBatch *batch, DamcError *err);
/* Integrates to convergence: x_A and g_A per layer, E, steps and converged per sample.
   `options` may be NULL. */
DamcResults *damc_run(DamcModel *model, const DamcBatch *batch, const DamcRunOptions *options,
                      DamcError *err);

/* The result `name` ("E", "x_v", "g_h", ...): its values (`*count` of them, batch-major),
   or NULL when there is none. Valid until damc_results_free. */
const double *damc_result(const DamcResults *results, const char *name, size_t *count);
void damc_results_free(DamcResults *results);

#ifdef __cplusplus
}
#endif

#endif

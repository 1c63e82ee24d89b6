// The checks of a model as a standalone C program (see emit_check.h).
#include "check/emit_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "check/layer_internal.h"
#include "lower/plan.h"
#include "support/common.h"

// The runner, the same for every model (check_program.c.in, embedded by CMake).
extern const char check_program_text[];

enum { NKERNELS = 4 };
static const KernelKind kinds[NKERNELS] = {KERNEL_RHS, KERNEL_EVAL, KERNEL_HVP, KERNEL_LAGR};

// A C string literal of `s`.
static void c_string(StrBuf *out, const char *s) {
  sb_putc(out, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') sb_printf(out, "\\%c", c);
    else if (c < 32 || c >= 127) sb_printf(out, "\\%03o", c);
    else sb_putc(out, (char)c);
  }
  sb_putc(out, '"');
}

// The buffer of `role` for layer `layer` in `plan` (states, inputs, directions), or -1.
static int layer_buf(const Plan *plan, PlanBufRole role, int layer) {
  for (int i = 0; i < plan->nbufs; i++)
    if (plan->bufs[i].role == role && plan->bufs[i].index == layer) return i;
  return -1;
}

// A double that reads back exactly.
static void real(StrBuf *out, double v) {
  if (isinf(v)) sb_append(out, v < 0 ? "-INFINITY" : "INFINITY");
  else if (isnan(v)) sb_append(out, "NAN");
  else sb_printf(out, "%.17g", v);
}

// The model's facts for the runner (the tables its header comment describes).
static void write_tables(const Network *net, const int64_t *dims, const double *params,
                         const Plan *const *p, const char *model_path, StrBuf *out) {
  const Plan *rhs = p[0], *eval = p[1], *hvp = p[2], *lagr = p[3];
  sb_append(out, "\n// ---- The model, for the checks ----\n\n#define CHECK_MODEL ");
  c_string(out, net->name ? net->name : "model");
  sb_append(out, "\n#define CHECK_SOURCE ");
  c_string(out, model_path);
  sb_printf(out, "\n#define CHECK_NLAYERS %d\n#define CHECK_NWEIGHTS %d\n", net->nlayers,
            net->nweights);
  sb_printf(out, "#define CHECK_HAS_ENERGY %d\n", !net->has_directed);
  sb_printf(out, "#define CHECK_EVAL_E %d\n", plan_output_buf(eval, OUT_ENERGY, -1));
  sb_append(out, "\n// X(name, n, eliminated, tau, beta_L, then the buffers: damc_lagr x, L, g; "
                 "damc_hvp x, d,\n// H d; damc_rhs x, I, dx/dt; damc_eval x, I, g, u, E_A, x of an "
                 "eliminated layer), -1: none.\n#define CHECK_LAYERS(X)");
  StrBuf breaks = {0};
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    LayerCheckCtx ctx;
    layer_ctx_init(&ctx, net, a, dims, params);
    double tau = l->eliminated ? 0 : layer_eval_const(&ctx, l->tau);
    sb_append(out, " \\\n  X(");
    c_string(out, l->name);
    sb_printf(out, ", %lld, %d, ", (long long)dims[l->dim], l->eliminated);
    real(out, tau);
    sb_append(out, ", ");
    real(out, ctx.beta);
    sb_printf(out, ", %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d)",
              lagr->state_buf[a], plan_output_buf(lagr, OUT_LAGR, a), plan_output_buf(lagr, OUT_G, a),
              hvp->state_buf[a], layer_buf(hvp, PB_DIRECTION, a), plan_output_buf(hvp, OUT_HVP, a),
              rhs->state_buf[a], rhs->input_buf[a], plan_output_buf(rhs, OUT_DXDT, a),
              eval->state_buf[a], eval->input_buf[a], plan_output_buf(eval, OUT_G, a),
              plan_output_buf(eval, OUT_U, a), plan_output_buf(eval, OUT_PART, a),
              plan_output_buf(eval, OUT_X, a));
    for (int k = 0; k < ctx.nbreaks; k++) {
      sb_printf(&breaks, " \\\n  X(%d, ", a);
      real(&breaks, ctx.breaks[k]);
      sb_putc(&breaks, ')');
    }
  }
  sb_printf(out, "\n\n// X(layer, x): the breakpoints of kinks a x_i + b (docs/theory.md §4.1.5)."
                 "\n#define CHECK_BREAKS(X)%s\n", sb_str(&breaks));
  sb_free(&breaks);
  sb_append(out, "\n// X(name, rank, rows, cols, symmetric) of every weight.\n#define CHECK_WEIGHTS(X)");
  for (int w = 0; w < net->nweights; w++) {
    const NetWeight *nw = &net->weights[w];
    sb_append(out, " \\\n  X(");
    c_string(out, nw->name);
    sb_printf(out, ", %d, %lld, %lld, %d)", nw->rank, (long long)dims[nw->dims[0]],
              nw->rank == 2 ? (long long)dims[nw->dims[1]] : 0LL, nw->symmetric);
  }
  sb_append(out, "\n\n// The params as set when the program was written, in the order of "
                 "DAMC_PARAMS.\nstatic const double check_params[DAMC_NPARAMS + 1] = {");
  for (int k = 0; k < net->nparams; k++) {
    real(out, params[k]);
    sb_append(out, ", ");
  }
  sb_append(out, "0};\n");
}

bool emit_check_program(const Network *net, const int64_t *dims, const double *params,
                        const char *model_path, const char *c_name, StrBuf *out, StrBuf *err) {
  for (int d = 0; d < net->ndims; d++)
    if (dims[d] <= 0) {
      sb_printf(err, "--emit-c: dim '%s' has no size: give the weights that use it, or --dim %s=SIZE\n",
                net->dims[d].name ? net->dims[d].name : "?", net->dims[d].name ? net->dims[d].name : "?");
      return false;
    }
  Plan *built[NKERNELS] = {NULL};
  const Plan *plans[NKERNELS] = {NULL};
  bool ok = true;
  for (int k = 0; k < NKERNELS && ok; k++) ok = (plans[k] = built[k] = plan_build(net, dims, kinds[k], err)) != NULL;
  StrBuf kernels = {0}, header = {0};
  ok = ok && emit_c_generate(plans, NKERNELS, true, model_path, c_name, NULL, &kernels, &header, err);
  if (ok) {
    sb_printf(out, "// %s: the checks of model '%s' (%s), docs/theory.md §4, as a standalone "
              "program.\n", c_name, net->name ? net->name : "model", model_path);
    sb_printf(out, "// Generated by damc %s (damc check --emit-c); do not edit. Build and run:\n"
              "//   cc -std=c11 -O2 %s -I DAMC/runtime/include libdamrt.a -lopenblas -llapacke "
              "-lm\n//      $(pkg-config --libs libzip) -o check      (one command)\n"
              "//   ./check %s[--samples N] [--points N] [--seed S] [--init STATES.npz] "
              "[--input INPUTS.npz] [--strict]\n"
              "// It prints one line per item (verdict, check, subject, reason, numbers, "
              "tab-separated) and exits\n// 0, 1 when a check failed (with --strict: or warned), "
              "2 when it could not run.\n"
              "// The kernels' header and the kernels follow (as damc emit --c writes them), then "
              "the model's\n// facts and the checks.\n\n",
              DAMC_VERSION, c_name, net->nweights ? "WEIGHTS.npz " : "");
    sb_append(out, sb_str(&header));
    sb_append(out, sb_str(&kernels));
    write_tables(net, dims, params, plans, model_path, out);
    sb_append(out, check_program_text);
  }
  sb_free(&kernels);
  sb_free(&header);
  for (int k = 0; k < NKERNELS; k++) plan_free(built[k]);
  return ok;
}

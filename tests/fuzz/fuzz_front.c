// Fuzz target for the front end and the derivation: any bytes are parsed and checked as a
// model file; a model that passes is printed, derived (g, H, Λ, E, u, the reduced model)
// and scheduled into both kernels' plans with every unbound dim given the size 3. Crashes,
// sanitizer reports and hangs are the findings, and so is a valid model that the lowering
// cannot schedule (every model the language accepts must compile): it aborts. The params'
// expressions are also evaluated as at bind (front/param_domain.h), twice. The
// diagnostics themselves are not checked here (the golden tests do that).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "derive/network.h"
#include "front/ast_dump.h"
#include "front/front.h"
#include "front/param_domain.h"
#include "lower/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Session *s = session_new(NULL);
  Model *m = front_compile(s, "fuzz.dam", (const char *)data, size);
  Network *net = m ? network_derive(s, m, NULL, 0) : NULL;
  if (m) {
    StrBuf out = {0};
    ast_dump_model(&out, m);
    sb_free(&out);
    // The params' expressions evaluated as at bind: with the defaults (0.5 without one), then
    // every param 0 (divisions by zero, logs of 0), every dim 3 where the model leaves it open.
    double *params = calloc((size_t)m->nparams + 1, sizeof *params);
    int64_t *sizes = calloc((size_t)m->ndims + 1, sizeof *sizes);
    for (int d = 0; d < m->ndims; d++) sizes[d] = m->dims[d].value > 0 ? m->dims[d].value : 3;
    for (int pass = 0; pass < 2; pass++) {
      for (int i = 0; i < m->nparams; i++)
        params[i] = pass ? 0 : m->params[i].has_default ? m->params[i].value : 0.5;
      DiagSink *sink = diag_fork(s->diag, NULL);
      param_domain_check(m, params, sizes, sink);
      diag_free(sink);
    }
    free(params);
    free(sizes);
  }
  if (net) {
    int64_t *dims = calloc((size_t)net->ndims + 1, sizeof *dims);
    for (int d = 0; d < net->ndims; d++) dims[d] = net->dims[d].size > 0 ? net->dims[d].size : 3;
    for (int k = 0; k < KERNEL_KINDS; k++) {
      StrBuf err = {0};
      Plan *plan = plan_build(net, dims, (KernelKind)k, &err);
      if (!plan) {
        fprintf(stderr, "a valid model that does not compile: %s\n", sb_str(&err));
        abort();
      }
      StrBuf text = {0};
      plan_print(&text, plan);
      sb_free(&text);
      plan_free(plan);
      sb_free(&err);
    }
    free(dims);
  }
  network_free(net);
  session_free(s);
  return 0;
}

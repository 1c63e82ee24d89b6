// Fuzz target for the front end and the derivation: any bytes are parsed and checked as a
// model file; a model that passes is printed, derived (g, H, Λ, E, u, the reduced model)
// and scheduled into both kernels' plans with every unbound dim given the size 3. Crashes,
// sanitizer reports and hangs are the findings, and so is a valid model that the lowering
// cannot schedule (every model the language accepts must compile): it aborts. The
// diagnostics themselves are not checked here (the golden tests do that).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "derive/network.h"
#include "front/ast_dump.h"
#include "front/front.h"
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

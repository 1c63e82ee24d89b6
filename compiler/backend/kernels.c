// Compiling plans to native kernels (see kernels.h).
#include "backend/kernels.h"

#include <stdlib.h>

#include "backend/backend_module.h"
#include "backend/codegen.h"
#include "backend/irb.h"
#include "backend/jit.h"
#include "support/common.h"

struct Kernels {
  Jit *jit;
  JitModule *run;    // generated, until kernels_jit hands it to the JIT
  JitModule *shown;  // an identical copy of the module given to the JIT, to print or write
};

// The module of `n` plans, optimised; with `slot_names` (nslots of them), its runtime calls
// through the slots of DAMC_RUNTIME_SLOTS (jit_module_indirect_calls), made before
// optimising so that the stubs are inlined.
static JitModule *build(Jit *jit, const Plan *const *plans, int n, bool f32,
                        const char *module_name, const char *const *slot_names, size_t nslots,
                        StrBuf *err) {
  JitModule *mod = jit_module_new(jit, module_name);
  Irb irb;
  irb_init(&irb, mod, f32 ? IRB_F32 : IRB_F64);
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = codegen_plan(&irb, plans[i], kernel_name(plans[i]->kind), err);
  irb_fini(&irb);
  if (ok && slot_names)
    ok = jit_module_indirect_calls(mod, slot_names, nslots, DAMC_RUNTIME_SLOTS, err);
  if (!ok || !jit_module_optimize(jit, mod, err)) {
    jit_module_free(mod);
    return NULL;
  }
  return mod;
}

Kernels *kernels_generate(const Plan *const *plans, int n, bool f32, const char *module_name,
                          bool keep_copy, StrBuf *err) {
  size_t nsyms;
  const JitSymbol *syms = codegen_runtime_symbols(&nsyms);
  return kernels_generate_with(plans, n, f32, module_name, keep_copy, syms, nsyms, err);
}

Kernels *kernels_generate_with(const Plan *const *plans, int n, bool f32,
                               const char *module_name, bool keep_copy, const JitSymbol *syms,
                               size_t nsyms, StrBuf *err) {
  Kernels *k = xcalloc(1, sizeof *k);
  k->jit = jit_new(err);
  if (!k->jit || !jit_define_symbols(k->jit, syms, nsyms, err)) {
    kernels_free(k);
    return NULL;
  }
  if ((keep_copy && !(k->shown = build(k->jit, plans, n, f32, module_name, NULL, 0, err))) ||
      !(k->run = build(k->jit, plans, n, f32, module_name, NULL, 0, err))) {
    kernels_free(k);
    return NULL;
  }
  return k;
}

bool kernels_jit(Kernels *k, StrBuf *err) {
  JitModule *run = k->run;
  k->run = NULL;  // the JIT owns it from here, whether adding succeeds or not
  return run && jit_add_module_take(k->jit, run, err);
}

void kernels_free(Kernels *k) {
  if (!k) return;
  jit_module_free(k->run);
  jit_module_free(k->shown);
  StrBuf ignored = {0};
  jit_free(k->jit, &ignored);
  sb_free(&ignored);
  free(k);
}

KernelFn kernels_lookup(Kernels *k, const char *name, StrBuf *err) {
  return (KernelFn)jit_lookup(k->jit, name, err);
}

char *kernels_text(Kernels *k, bool assembly, StrBuf *err) {
  if (!k->shown) {
    sb_append(err, "the kernels were compiled without a copy to show");
    return NULL;
  }
  return assembly ? jit_module_asm(k->jit, k->shown, err) : jit_module_ir(k->shown);
}

bool kernels_object(Kernels *k, StrBuf *bytes, StrBuf *err) {
  if (!k->shown) {
    sb_append(err, "the kernels were compiled without a copy to write");
    return false;
  }
  return jit_module_object(k->jit, k->shown, bytes, err);
}

const char *kernels_cpu(const Kernels *k) { return jit_cpu_name(k->jit); }

bool kernels_cache_object(const Plan *const *plans, int n, bool f32, const char *module_name,
                          const char *const *slot_names, size_t nslots, StrBuf *obj,
                          StrBuf *host, StrBuf *err) {
  Jit *jit = jit_new(err);
  if (!jit) return false;
  JitModule *mod = build(jit, plans, n, f32, module_name, slot_names, nslots, err);
  bool ok = mod && jit_module_object(jit, mod, obj, err);
  if (ok) sb_printf(host, "%s %s", jit_cpu_name(jit), jit_cpu_features(jit));
  jit_module_free(mod);
  StrBuf ignored = {0};
  jit_free(jit, &ignored);
  sb_free(&ignored);
  return ok;
}

// The backend module's entry point (backend_module.h): the table of its functions, for the
// engine, which opens libdamc_llvm.so with dlopen.
#include "backend/backend_module.h"

#include <stdlib.h>

#include "backend/kernels.h"
#include "support/common.h"

_Static_assert(sizeof(DamcRuntimeSymbol) == sizeof(JitSymbol), "one layout for both tables");

static DamcKernels *generate(const Plan *const *plans, int n, bool f32, const char *module_name,
                             bool keep_copy, const DamcRuntimeSymbol *syms, size_t nsyms,
                             StrBuf *err) {
  JitSymbol *js = xcalloc(nsyms + 1, sizeof *js);
  for (size_t i = 0; i < nsyms; i++) js[i] = (JitSymbol){syms[i].name, syms[i].addr};
  Kernels *k = kernels_generate_with(plans, n, f32, module_name, keep_copy, js, nsyms, err);
  free(js);
  return (DamcKernels *)k;
}

static bool jit(DamcKernels *k, StrBuf *err) { return kernels_jit((Kernels *)k, err); }
static void free_kernels(DamcKernels *k) { kernels_free((Kernels *)k); }
static void *lookup(DamcKernels *k, const char *name, StrBuf *err) {
  return (void *)kernels_lookup((Kernels *)k, name, err);
}
static char *text(DamcKernels *k, bool assembly, StrBuf *err) {
  return kernels_text((Kernels *)k, assembly, err);
}
static bool object(DamcKernels *k, StrBuf *bytes, StrBuf *err) {
  return kernels_object((Kernels *)k, bytes, err);
}

static bool cache_object(const Plan *const *plans, int n, bool f32, const char *module_name,
                         const DamcRuntimeSymbol *syms, size_t nsyms, StrBuf *obj, StrBuf *host,
                         StrBuf *err) {
  const char **names = xcalloc(nsyms + 1, sizeof *names);
  for (size_t i = 0; i < nsyms; i++) names[i] = syms[i].name;
  bool ok = kernels_cache_object(plans, n, f32, module_name, names, nsyms, obj, host, err);
  free(names);
  return ok;
}

static const DamcBackend backend = {DAMC_BACKEND_ABI, generate, jit, free_kernels, lookup,
                                    text, object, cache_object, kernels_times};

const DamcBackend *damc_backend_entry(void) { return &backend; }

// Compiling plans to native kernels (see kernels.h).
#include "backend/kernels.h"

#include <pthread.h>
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

// ---- Where the time goes (kernels_times) ----

static pthread_mutex_t times_lock = PTHREAD_MUTEX_INITIALIZER;
static DamcBackendTimes times;

// Adds the time since `*t0` to `*field` and restarts `*t0`.
static void lap(double *field, double *t0) {
  double now = clock_seconds();
  pthread_mutex_lock(&times_lock);
  *field += now - *t0;
  pthread_mutex_unlock(&times_lock);
  *t0 = now;
}

DamcBackendTimes kernels_times(void) {
  pthread_mutex_lock(&times_lock);
  DamcBackendTimes t = times;
  pthread_mutex_unlock(&times_lock);
  return t;
}

// A JIT session with the runtime symbols `syms` (none for an object file); NULL on failure.
static Jit *session(const JitSymbol *syms, size_t nsyms, StrBuf *err) {
  double t0 = clock_seconds();
  Jit *jit = jit_new(err);
  if (jit && syms && !jit_define_symbols(jit, syms, nsyms, err)) {
    StrBuf ignored = {0};
    jit_free(jit, &ignored);
    sb_free(&ignored);
    jit = NULL;
  }
  lap(&times.setup_seconds, &t0);
  return jit;
}

// ---- Modules ----

// The module of `n` plans, optimised; with `slot_names` (nslots of them), its runtime calls
// through the slots of DAMC_RUNTIME_SLOTS (jit_module_indirect_calls), made before
// optimising so that the stubs are inlined.
static JitModule *build(Jit *jit, const Plan *const *plans, int n, bool f32,
                        const char *module_name, const char *const *slot_names, size_t nslots,
                        StrBuf *err) {
  double t0 = clock_seconds();
  JitModule *mod = jit_module_new(jit, module_name);
  Irb irb;
  irb_init(&irb, mod, f32 ? IRB_F32 : IRB_F64);
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = codegen_plan(&irb, plans[i], kernel_name(plans[i]->kind), err);
  irb_fini(&irb);
  if (ok && slot_names)
    ok = jit_module_indirect_calls(mod, slot_names, nslots, DAMC_RUNTIME_SLOTS, err);
  lap(&times.ir_seconds, &t0);
  if (ok) {
    ok = jit_module_optimize(jit, mod, err);
    lap(&times.optimise_seconds, &t0);
  }
  if (!ok) {
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
  if (!(k->jit = session(syms, nsyms, err))) {
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
  double t0 = clock_seconds();
  bool ok = run && jit_add_module_take(k->jit, run, err);
  lap(&times.codegen_seconds, &t0);
  return ok;
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
  double t0 = clock_seconds();  // the first lookup generates the machine code
  KernelFn f = (KernelFn)jit_lookup(k->jit, name, err);
  lap(&times.codegen_seconds, &t0);
  return f;
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
  Jit *jit = session(NULL, 0, err);
  if (!jit) return false;
  JitModule *mod = build(jit, plans, n, f32, module_name, slot_names, nslots, err);
  double t0 = clock_seconds();
  bool ok = mod && jit_module_object(jit, mod, obj, err);
  lap(&times.codegen_seconds, &t0);
  if (ok) sb_printf(host, "%s %s", jit_cpu_name(jit), jit_cpu_features(jit));
  jit_module_free(mod);
  StrBuf ignored = {0};
  jit_free(jit, &ignored);
  sb_free(&ignored);
  return ok;
}

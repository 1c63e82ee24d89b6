// Kernels: plans compiled to native code in process, behind an interface without LLVM.
//
// Two stages of the pipeline: kernels_generate generates one function per plan (codegen.h)
// and optimises the module for the host; kernels_jit hands it to a JIT session of its own,
// which compiles it to machine code; the functions are then looked up by name.
// When asked, a second copy of the module is kept so the kernels can be shown (IR,
// assembly) or written as an object file; it is optional because it doubles compile time.
#ifndef DAMC_KERNELS_H
#define DAMC_KERNELS_H

#include <stdbool.h>

#include "backend/backend_module.h"
#include "backend/jit.h"
#include "lower/plan.h"
#include "support/strbuf.h"

typedef struct Kernels Kernels;

// The signature of every kernel: see codegen.h.
typedef void (*KernelFn)(void **bufs, const double *params, int64_t batch);

// Generates `n` plans as functions named kernel_name(plan->kind), in float32 (`f32`) or
// float64, keeping a copy to show when `keep_copy`. NULL, with the message in `err`, on
// failure.
Kernels *kernels_generate(const Plan *const *plans, int n, bool f32, const char *module_name,
                          bool keep_copy, StrBuf *err);
// The same with the runtime symbols `syms` in place of codegen_runtime_symbols()'s (the
// process's own table, when the backend is a module of its own: backend_module.h).
Kernels *kernels_generate_with(const Plan *const *plans, int n, bool f32,
                               const char *module_name, bool keep_copy, const JitSymbol *syms,
                               size_t nsyms, StrBuf *err);
// Compiles the generated module to machine code (once); then kernels_lookup finds them.
bool kernels_jit(Kernels *k, StrBuf *err);
void kernels_free(Kernels *k);
KernelFn kernels_lookup(Kernels *k, const char *name, StrBuf *err);
// The module's LLVM IR, or its host assembly (NULL with a message on failure, or when no
// copy was kept); the caller frees the text.
char *kernels_text(Kernels *k, bool assembly, StrBuf *err);
// The object file of the kept copy, appended to `bytes`.
bool kernels_object(Kernels *k, StrBuf *bytes, StrBuf *err);
// The CPU the code is compiled for.
const char *kernels_cpu(const Kernels *k);
// The `n` plans as an object file appended to `obj`, their runtime calls through the slots
// of DAMC_RUNTIME_SLOTS named `slot_names` (backend_module.h); `host` gets "CPU FEATURES".
bool kernels_cache_object(const Plan *const *plans, int n, bool f32, const char *module_name,
                          const char *const *slot_names, size_t nslots, StrBuf *obj,
                          StrBuf *host, StrBuf *err);

// The time spent in each phase so far, over every thread (backend_module.h).
DamcBackendTimes kernels_times(void);

#endif

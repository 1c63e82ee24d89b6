// The LLVM backend as a module loaded at run time (libdamc_llvm.so), so that a process
// whose kernels all come from the cache (engine/kcache.h) never loads libLLVM.
//
// The module links damc_backend and libLLVM; the engine does not. It opens the module with
// dlopen on the first compilation and calls it only through this table, which
// `damc_backend_entry` (the module's one exported symbol) returns. The module has its own
// copies of the static libraries it needs (support, lower, ...): only data (plans, StrBufs,
// malloc'ed memory) crosses the boundary, never a global.
//
// Runtime symbols: the engine passes its own table (the functions of damrt_kernel.def in
// the process), so JIT'd kernels call the same functions as cached ones.
//
// This header does not include LLVM.
#ifndef DAMC_BACKEND_MODULE_H
#define DAMC_BACKEND_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lower/plan.h"
#include "support/strbuf.h"

// Raised whenever the table or the meaning of an entry changes; the engine refuses a
// module of another version.
#define DAMC_BACKEND_ABI 2

// The global a cached object holds the runtime functions' addresses in: an array with one
// pointer per row of damrt_kernel.def, in its order, filled by the loader before any call.
#define DAMC_RUNTIME_SLOTS "damc_runtime_slots"

typedef struct DamcKernels DamcKernels;  // the backend's Kernels (backend/kernels.h)

// Where the backend's time went since the module was loaded, summed over every module and
// thread (two modules compiled at once count twice): the phases of a compilation.
typedef struct {
  double setup_seconds;     // the host CPU, the target machines and the JIT session
  double ir_seconds;        // generating the IR from the plans
  double optimise_seconds;  // verifying and the optimisation pipeline
  double codegen_seconds;   // instruction selection to machine code; the JIT's linking
} DamcBackendTimes;

typedef struct {
  const char *name;
  uintptr_t addr;
} DamcRuntimeSymbol;

typedef struct {
  int abi;  // DAMC_BACKEND_ABI
  // kernels_generate with the runtime symbols `syms` (kernels.h).
  DamcKernels *(*generate)(const Plan *const *plans, int n, bool f32, const char *module_name,
                           bool keep_copy, const DamcRuntimeSymbol *syms, size_t nsyms,
                           StrBuf *err);
  bool (*jit)(DamcKernels *k, StrBuf *err);
  void (*free)(DamcKernels *k);
  void *(*lookup)(DamcKernels *k, const char *name, StrBuf *err);
  char *(*text)(DamcKernels *k, bool assembly, StrBuf *err);
  bool (*object)(DamcKernels *k, StrBuf *bytes, StrBuf *err);
  // The `n` plans as a relocatable object file for the cache (appended to `obj`): the same
  // code as generate + jit, but for its calls to runtime functions, which go through the
  // global DAMC_RUNTIME_SLOTS (the `nsyms` names of `syms`, in order). `host` gets the CPU
  // the code is for, as LLVM sees it: "name features".
  bool (*cache_object)(const Plan *const *plans, int n, bool f32, const char *module_name,
                       const DamcRuntimeSymbol *syms, size_t nsyms, StrBuf *obj, StrBuf *host,
                       StrBuf *err);
  DamcBackendTimes (*times)(void);
} DamcBackend;

// The module's entry point (dlsym "damc_backend_entry"; called directly where the backend
// is linked: sanitizer builds, DAMC_BACKEND_LINKED).
typedef const DamcBackend *(*DamcBackendEntry)(void);
const DamcBackend *damc_backend_entry(void);

#endif

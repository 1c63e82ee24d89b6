// Compiled kernels, from the LLVM backend or from the cache of compiled kernels, and the
// lazily loaded backend itself.
//
// The backend (libdamc_llvm.so, backend/backend_module.h) is opened with dlopen on the first
// compilation only, so a process whose kernels all come from the cache never loads libLLVM
// (loading it and its dependencies costs 15-25 ms of every process start).
//
// The cache holds one shared object per module of kernels, in $DAMC_CACHE_DIR, else
// $XDG_CACHE_HOME/damc, else ~/.cache/damc, named kernels-HASH.so. Its key is the text of
// everything the code depends on: damc's version and the build of the engine and of the
// backend module, the CPU (its CPUID identification: what LLVM derives its host CPU name and
// features from), the precision, the kernel kinds and the choice of products (--kernels),
// the sizes, the eliminated layers and the model's text. Params are not in it: kernels read them at run time.
//
// An entry is the shared object (`cc -shared -nostdlib` of the object LLVM wrote, its runtime
// calls through a table the loader fills: DAMC_RUNTIME_SLOTS) followed by the key and a
// trailer (magic, lengths, a 64-bit checksum of both). It is written to a temporary file in
// the directory and renamed into place, so concurrent writers never expose a partial entry;
// a reader validates the trailer, the checksum and the whole key before dlopen'ing the
// descriptor it validated (/proc/self/fd/N: the same inode, whatever renames happen), and
// treats anything else (truncated, garbled, another key in the same name) as a miss, which
// rebuilds and replaces the entry. An entry is loaded once per process and shared by every
// Code that uses it; the loaded object must be mapped from the inode validated and define
// every kernel the key names, else the entry is a miss too. When an entry cannot be written or loaded (no `cc`, a
// read-only or noexec directory) the kernels are compiled with the JIT as without a cache.
//
// The cache is off when DAMC_NO_CACHE is set (to anything but "" or "0") or after
// kcache_disable (damc --no-cache); kernels to show (emit) never use it.
#ifndef DAMC_KCACHE_H
#define DAMC_KCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lower/plan.h"
#include "support/strbuf.h"

typedef struct Code Code;

// The signature of every kernel (backend/codegen.h).
typedef void (*KernelFn)(void **bufs, const double *params, int64_t batch);

// What the code of a module depends on besides its plans.
typedef struct {
  const char *model_name;
  const char *text;  // the model's text
  size_t len;
  const int *eliminate;
  int neliminate;
  const int64_t *dims;
  int ndims;
  bool f32;
  const char *kernels;  // the choice of products (plan_kernels_name: blas, fused, auto)
  bool showable;  // keep a copy to show (emit): never cached
} CodeRequest;

// The kernels of the `n` plans: from the cache when it holds them (`*compiled` false), else
// compiled (`*compiled` true) and stored in the cache. NULL, with the message in `err`.
Code *code_get(const Plan *const *plans, int n, const CodeRequest *req, bool *compiled,
               StrBuf *err);
// The kernel `name` of `c`; NULL with the message in `err`.
void *code_lookup(Code *c, const char *name, StrBuf *err);
void code_free(Code *c);
// The LLVM IR or assembly of a module compiled to be shown; the caller frees it.
char *code_text(Code *c, bool assembly, StrBuf *err);
// Its object file, appended to `bytes`.
bool code_object(Code *c, StrBuf *bytes, StrBuf *err);

// Turns the cache off for the rest of the process (--no-cache).
void kcache_disable(void);
bool kcache_enabled(void);
// The cache directory (NULL when none can be named: no HOME); owned by kcache.
const char *kcache_dir(void);

// What happened so far in this process (damc run --verbose, damc bench).
typedef struct {
  unsigned hits;       // modules loaded from the cache
  unsigned compiled;   // modules compiled
  unsigned stored;     // entries written
  unsigned rejected;   // entries found invalid (corrupt, truncated, another key) and rebuilt
  bool llvm_loaded;    // the backend module was opened
  double load_seconds;     // opening the backend module (libLLVM with it)
  double compile_seconds;  // generating, optimising and compiling modules (the backend's)
  double link_seconds;     // linking entries (cc -shared), writing them and loading them
  // compile_seconds by phase, as the backend measured them (summed over threads): the
  // target machines and JIT sessions, IR generation, optimisation, machine code.
  double setup_seconds, ir_seconds, optimise_seconds, codegen_seconds;
  char problem[256];       // why the last entry could not be stored or loaded ("" if none)
} KcacheStats;
KcacheStats kcache_stats(void);

#endif

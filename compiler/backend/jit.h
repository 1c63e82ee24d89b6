// The JIT session: an ORC LLJIT for the host CPU, the modules the backend builds for it,
// and the machine code they become.
//
// A Jit owns an LLJIT made from a TargetMachine for the host (CPU name and features as
// LLVM detects them, -O1 code generation), and a second TargetMachine of the same kind
// that optimises modules (the kernels' pipeline, jit.c), prints their assembly and writes
// object files.
// Runtime functions reach JIT'd code only through jit_define_symbols: the JIT never
// searches the process, so nothing depends on how the executable was linked (-rdynamic,
// --as-needed).
//
// A JitModule is an LLVM context and module under construction, with the JIT's data
// layout and triple; irb.h builds IR into it. jit_add_module_take hands it to the JIT.
// Each added module gets its own resource tracker, returned as a JitCode, so that its
// machine code can be removed again. Code is generated lazily, at the first jit_lookup of
// one of its symbols.
//
// Errors: a fallible function returns false, NULL or 0 and appends one line
// "jit: <what>: <LLVM's message>" to the caller's `err`. Every LLVM error is copied there
// and disposed at once; nothing here aborts or exits on an LLVM error. The only
// process-wide state is LLVM's one-time native-target initialisation (pthread_once).
//
// This header does not include LLVM: the rest of the compiler can hold a Jit without
// seeing llvm-c/. Only jit_module_llvm names an LLVM type, through a forward declaration.
#ifndef DAMC_JIT_H
#define DAMC_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/strbuf.h"

typedef struct Jit Jit;
typedef struct JitModule JitModule;
typedef struct JitCode JitCode;

// A runtime symbol for jit_define_symbols: JIT'd code that calls `name` calls `addr`.
typedef struct {
  const char *name;
  uintptr_t addr;
} JitSymbol;

// A JitSymbol for the C function or object `fn` under its own name.
#define JIT_SYMBOL(fn) {#fn, (uintptr_t)&(fn)}

// A new JIT session for the host CPU, or NULL (with the reason in `err`). The caller owns
// the result; free it with jit_free.
Jit *jit_new(StrBuf *err);

// Frees `jit` (NULL is allowed) with all its code; JitCode handles and function addresses
// from it become invalid. Returns false, with the message in `err`, if LLVM reported an
// error while tearing down; everything is freed either way.
bool jit_free(Jit *jit, StrBuf *err);

// The CPU name the session compiles for (LLVMGetHostCPUName, e.g. "znver5"); owned by `jit`.
const char *jit_cpu_name(const Jit *jit);
// The CPU features the session compiles for (LLVMGetHostCPUFeatures, "+avx2,-sse4a,...").
const char *jit_cpu_features(const Jit *jit);

// Makes the `n` runtime symbols `syms` visible to code added to `jit` later or earlier
// (names are resolved at code generation). A name may be defined once per session.
// Returns false, with the message in `err`, on failure (e.g. a duplicate name).
bool jit_define_symbols(Jit *jit, const JitSymbol *syms, size_t n, StrBuf *err);

// A new empty module named `name`, in its own LLVM context, with the data layout and
// triple of `jit`. The caller owns it until jit_add_module_take; jit_module_free frees a
// module that was never added.
JitModule *jit_module_new(Jit *jit, const char *name);
void jit_module_free(JitModule *m);

// The LLVM module of `m` (an LLVMModuleRef), borrowed: for irb.h and LLVM-C callers only.
struct LLVMOpaqueModule *jit_module_llvm(JitModule *m);

// Verifies `m` and optimises it in place with the kernels' pipeline on the host
// TargetMachine: common subexpressions, loop rotation and invariant motion, loop
// vectorisation (no interleaving) and its clean-up (jit.c). Returns false, with the verifier's or the
// pass manager's message in `err`, on failure; `m` stays owned by the caller either way.
bool jit_module_optimize(Jit *jit, JitModule *m, StrBuf *err);

// The textual IR of `m`; the caller frees the result with free().
char *jit_module_ir(JitModule *m);

// The host assembly of `m` (AT&T syntax), generated from a copy because code generation
// changes the module it runs on. The caller frees the result with free(). NULL, with the
// message in `err`, on failure.
char *jit_module_asm(Jit *jit, JitModule *m, StrBuf *err);

// The host object file (ELF on Linux) of `m`, generated from a copy, appended to `bytes`
// (the caller writes it where it belongs). Returns false, with the message in `err`.
bool jit_module_object(Jit *jit, JitModule *m, StrBuf *bytes, StrBuf *err);

// Makes the calls of `m` to the `n` functions `names` indirect, for code loaded without the
// JIT (the kernel cache): a global array `table` of `n` pointers is defined in `m`, and each
// declared function of `names` becomes an internal function that calls through its slot
// (the loader fills the array). Returns false, naming it, when `m` declares a function that
// is not in `names` (intrinsics aside).
bool jit_module_indirect_calls(JitModule *m, const char *const *names, size_t n,
                               const char *table, StrBuf *err);

// Verifies `m` and adds it to `jit` under a new resource tracker. Takes ownership of `m`
// in every case: on failure (an invalid module, or LLVM refusing it, e.g. a duplicate
// definition) `m` is freed and NULL returned with the message in `err`. The JitCode is
// owned by `jit`: it lives until jit_remove or jit_free.
JitCode *jit_add_module_take(Jit *jit, JitModule *m, StrBuf *err);

// The address of the function or global `name` in the code of `jit`, generating the
// machine code of its module on first use; 0, with the message in `err`, on failure. A
// reference to an undefined symbol fails here, naming the symbol.
uintptr_t jit_lookup(Jit *jit, const char *name, StrBuf *err);

// Removes the machine code and symbols of `code` from `jit` and frees `code`; addresses
// looked up in it become invalid. Returns false, with the message in `err`, on failure
// (`code` is freed either way).
bool jit_remove(Jit *jit, JitCode *code, StrBuf *err);

#endif

// The backend's LLVM version shims: every LLVM C API call whose spelling depends on the
// LLVM version is made here, so that moving to a newer LLVM is a change to this file only.
//
// The backend needs LLVM >= 19 (CMakeLists.txt checks): per-instruction fast-math setters
// (18+), opaque pointers, and a host CPU name that knows Zen 5. The >= 21 branches follow
// the LLVM 21/22 headers: LLVM 22 removed LLVMOrcThreadSafeContextGetContext, and since 21
// the context is created first and handed to LLVMOrcCreateNewThreadSafeContextFromLLVMContext.
// Everything else the backend calls is spelled the same from 19 to 22.
#ifndef DAMC_LLVM_COMPAT_H
#define DAMC_LLVM_COMPAT_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Support.h>
#include <llvm/Config/llvm-config.h>  // LLVM_VERSION_MAJOR; plain #defines, C-safe

// One {name, address} element of the array LLVMOrcAbsoluteSymbols takes
// (LLVMJITCSymbolMapPair before LLVM 15).
typedef LLVMOrcCSymbolMapPair CompatSymbolPair;

// A new ThreadSafeContext around a new LLVMContext, which is stored in `*ctx`. The
// ThreadSafeContext owns the context: dispose it with LLVMOrcDisposeThreadSafeContext
// (after every module in the context) or hand it to a ThreadSafeModule.
LLVMOrcThreadSafeContextRef compat_tsc_new(LLVMContextRef *ctx);

// Sets the fast-math flags `fmf` on `v`, a floating-point instruction or call.
void compat_set_fmf(LLVMValueRef v, LLVMFastMathFlags fmf);

// Sets, once, the LLVM options the kernels are compiled with that the C API does not reach
// (LLVM's command-line options, so their names depend on the version): no loop strength
// reduction in code generation. They are process-wide in the LLVM they set: the private
// copy in libdamc_llvm.so, or the shared libLLVM of the builds that link it.
void compat_set_kernel_options(void);

#endif

// LLVM version shims (see llvm_compat.h).
#include "backend/llvm_compat.h"

#include "support/common.h"

LLVMOrcThreadSafeContextRef compat_tsc_new(LLVMContextRef *ctx) {
#if LLVM_VERSION_MAJOR >= 21
  *ctx = LLVMContextCreate();
  // The ThreadSafeContext takes ownership of *ctx.
  return LLVMOrcCreateNewThreadSafeContextFromLLVMContext(*ctx);
#else
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  *ctx = LLVMOrcThreadSafeContextGetContext(tsc);  // borrowed from tsc
  return tsc;
#endif
}

void compat_set_fmf(LLVMValueRef v, LLVMFastMathFlags fmf) {
  DAMC_ASSERT(LLVMCanValueUseFastMathFlags(v));
  LLVMSetFastMathFlags(v, fmf);
}

void compat_set_kernel_options(void) {
  // An unknown option would end the process: this one exists from LLVM 3 to 22. No loop
  // strength reduction: 15-20 % of code generation, for loops with one induction variable
  // that x86's scaled-index addressing already serves.
  const char *argv[] = {"damc", "-disable-lsr"};
  LLVMParseCommandLineOptions((int)(sizeof argv / sizeof argv[0]), argv, NULL);
}

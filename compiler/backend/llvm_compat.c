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

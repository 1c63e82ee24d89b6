// The JIT session (see jit.h). Ownership follows LLVM's OrcV2 C example: a module
// belongs to its ThreadSafeModule once wrapped, a ThreadSafeModule belongs to the LLJIT
// once added, and each transfer is marked where it happens.
#include "backend/jit.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/llvm_compat.h"
#include "support/common.h"

struct JitCode {
  LLVMOrcResourceTrackerRef rt;  // one reference, released when the JitCode goes
  JitCode *next;
};

struct Jit {
  LLVMOrcLLJITRef lljit;
  LLVMTargetMachineRef tm;  // optimisation, assembly, objects; the LLJIT has its own
  char *cpu;                // from LLVMGetHostCPUName; LLVMDisposeMessage
  char *features;           // from LLVMGetHostCPUFeatures; LLVMDisposeMessage
  StrBuf session_errors;    // what the execution session reported during the current call
  JitCode *codes;           // live code, newest first
};

struct JitModule {
  LLVMOrcThreadSafeContextRef tsc;  // owns the context of `mod`
  LLVMModuleRef mod;
};

// LLVM's native target registry is process-wide; initialise it once.
static pthread_once_t native_once = PTHREAD_ONCE_INIT;
static bool native_ok;

static void native_init(void) {
  // LLVMInitializeNative* return true on failure.
  native_ok = !LLVMInitializeNativeTarget() && !LLVMInitializeNativeAsmPrinter();
  compat_set_kernel_options();
}

// Appends "jit: <what>: <msg>" to `err` as one line (LLVM's multi-line messages joined
// with "; "), followed by what the execution session of `jit` (if any) reported during
// the failing call. Returns false, for `return report(...)`.
static bool report(Jit *jit, StrBuf *err, const char *what, const char *msg) {
  sb_printf(err, "jit: %s: ", what);
  if (!msg) msg = "unknown error";
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
  for (size_t i = 0; i < n; i++) {
    if (msg[i] == '\n')
      sb_append(err, "; ");
    else
      sb_putc(err, msg[i]);
  }
  if (jit && jit->session_errors.len) sb_printf(err, " (%s)", sb_str(&jit->session_errors));
  sb_putc(err, '\n');
  return false;
}

// report() for an LLVM error, which is consumed.
static bool fail(Jit *jit, StrBuf *err, const char *what, LLVMErrorRef e) {
  char *msg = LLVMGetErrorMessage(e);  // consumes e
  report(jit, err, what, msg);
  LLVMDisposeErrorMessage(msg);
  return false;
}

// report() for a message LLVM returned as a string, which is disposed.
static bool fail_msg(StrBuf *err, const char *what, char *msg) {
  report(NULL, err, what, msg);
  LLVMDisposeMessage(msg);
  return false;
}

// Errors the execution session cannot return to a caller arrive here, e.g. "Symbols not
// found: [ f ]" while linking, before the lookup itself fails with the vaguer "Failed to
// materialize symbols". They are kept for the failing call's message; code generation
// runs synchronously inside jit_lookup, so they belong to the current call.
static void report_session_error(void *ctx, LLVMErrorRef e) {
  Jit *jit = ctx;
  char *msg = LLVMGetErrorMessage(e);  // consumes e
  if (jit->session_errors.len) sb_append(&jit->session_errors, "; ");
  sb_append(&jit->session_errors, msg);
  LLVMDisposeErrorMessage(msg);
}

// A TargetMachine for the host CPU, position-independent; NULL on failure. Code generation
// at -O1: the kernels' loops are vectorised by then (jit_module_optimize) and their time is
// in the products; -O3 took 8 % longer to generate the same speed (docs/performance.md,
// "The cold compile").
static LLVMTargetMachineRef host_target_machine(const char *triple, const char *cpu,
                                                const char *features, StrBuf *err) {
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    fail_msg(err, "target", msg);
    return NULL;
  }
  LLVMDisposeMessage(msg);
  return LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelLess,
                                 LLVMRelocPIC, LLVMCodeModelJITDefault);
}

Jit *jit_new(StrBuf *err) {
  pthread_once(&native_once, native_init);
  if (!native_ok) {
    sb_append(err, "jit: the native target could not be initialised\n");
    return NULL;
  }
  char *triple = LLVMGetDefaultTargetTriple();
  char *features = LLVMGetHostCPUFeatures();
  Jit *jit = xcalloc(1, sizeof *jit);
  jit->cpu = LLVMGetHostCPUName();
  jit->tm = host_target_machine(triple, jit->cpu, features, err);
  // The second one cannot fail where the first succeeded.
  LLVMTargetMachineRef tm_jit =
      jit->tm ? host_target_machine(triple, jit->cpu, features, err) : NULL;
  LLVMDisposeMessage(triple);
  jit->features = features;
  if (!jit->tm) {
    jit_free(jit, err);
    return NULL;
  }
  // Ownership moves along: tm_jit (copied and destroyed) to jtmb, jtmb to the builder,
  // the builder to LLVMOrcCreateLLJIT, also when that fails.
  LLVMOrcJITTargetMachineBuilderRef jtmb =
      LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm_jit);
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&jit->lljit, builder);
  if (e) {
    fail(NULL, err, "creating the LLJIT", e);
    jit->lljit = NULL;
    jit_free(jit, err);
    return NULL;
  }
  LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit->lljit),
                                          report_session_error, jit);
  return jit;
}

bool jit_free(Jit *jit, StrBuf *err) {
  if (!jit) return true;
  bool ok = true;
  // Release our tracker references first; disposing the LLJIT frees the code itself.
  while (jit->codes) {
    JitCode *c = jit->codes;
    jit->codes = c->next;
    LLVMOrcReleaseResourceTracker(c->rt);
    free(c);
  }
  if (jit->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(jit->lljit);
    if (e) ok = fail(NULL, err, "disposing the LLJIT", e);
  }
  if (jit->tm) LLVMDisposeTargetMachine(jit->tm);
  LLVMDisposeMessage(jit->cpu);
  LLVMDisposeMessage(jit->features);
  sb_free(&jit->session_errors);
  free(jit);
  return ok;
}

const char *jit_cpu_name(const Jit *jit) { return jit->cpu; }
const char *jit_cpu_features(const Jit *jit) { return jit->features; }

bool jit_define_symbols(Jit *jit, const JitSymbol *syms, size_t n, StrBuf *err) {
  CompatSymbolPair *pairs = xcalloc(n, sizeof *pairs);
  for (size_t i = 0; i < n; i++) {
    // MangleAndIntern returns a retained name; LLVMOrcAbsoluteSymbols takes it over.
    pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit->lljit, syms[i].name);
    pairs[i].Sym.Address = (LLVMOrcExecutorAddress)syms[i].addr;
    pairs[i].Sym.Flags.GenericFlags =
        LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
  }
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, n);
  free(pairs);  // the elements now belong to mu; the array stays ours
  // On success the JITDylib owns mu; on failure we still do.
  LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(jit->lljit), mu);
  if (e) {
    LLVMOrcDisposeMaterializationUnit(mu);
    return fail(NULL, err, "defining runtime symbols", e);
  }
  return true;
}

JitModule *jit_module_new(Jit *jit, const char *name) {
  JitModule *m = xmalloc(sizeof *m);
  LLVMContextRef ctx;
  m->tsc = compat_tsc_new(&ctx);
  m->mod = LLVMModuleCreateWithNameInContext(name, ctx);
  LLVMSetTarget(m->mod, LLVMOrcLLJITGetTripleString(jit->lljit));
  LLVMSetDataLayout(m->mod, LLVMOrcLLJITGetDataLayoutStr(jit->lljit));
  return m;
}

void jit_module_free(JitModule *m) {
  if (!m) return;
  LLVMDisposeModule(m->mod);  // before its context
  LLVMOrcDisposeThreadSafeContext(m->tsc);
  free(m);
}

struct LLVMOpaqueModule *jit_module_llvm(JitModule *m) { return m->mod; }

static bool verify(LLVMModuleRef mod, StrBuf *err) {
  char *msg = NULL;
  if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg))
    return fail_msg(err, "invalid IR", msg);
  LLVMDisposeMessage(msg);
  return true;
}

// The kernels' pipeline. The generated IR is loop nests over buffers with inline math, no
// allocas and no calls but to the runtime, so the passes that matter are the loop ones; in
// order: inlining the runtime stubs (jit_module_indirect_calls), common subexpressions (the
// index arithmetic each load and store repeats), rotating the loops and hoisting the params'
// loads out of them, canonical induction variables, vectorisation (tail-folded where the
// trip count is a constant: irb_loop_end), and the clean-up of what the vectoriser leaves. It compiles
// Model B's step kernel in half the time of "default<O3>" (without unrolling and
// interleaving, as before), with the same kernel speed (docs/performance.md, "The cold
// compile").
static const char *const KERNEL_PIPELINE =
    "always-inline,function(early-cse,loop-mssa(loop-rotate,licm),loop(indvars),"
    "loop-vectorize,instcombine,simplifycfg)";

bool jit_module_optimize(Jit *jit, JitModule *m, StrBuf *err) {
  if (!verify(m->mod, err)) return false;
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
  // No interleaving: unrolled or interleaved inline math multiplied the code to optimise
  // and to generate (interleaving: 17% of the instructions of compiling Model B, by
  // callgrind) for no measured gain in steps whose time is in the products.
  LLVMPassBuilderOptionsSetLoopInterleaving(opts, 0);
  LLVMErrorRef e = LLVMRunPasses(m->mod, KERNEL_PIPELINE, jit->tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  return e ? fail(NULL, err, "optimising", e) : true;
}

char *jit_module_ir(JitModule *m) {
  char *text = LLVMPrintModuleToString(m->mod);
  char *copy = xstrdup(text);  // ours to free() rather than LLVMDisposeMessage
  LLVMDisposeMessage(text);
  return copy;
}

char *jit_module_asm(Jit *jit, JitModule *m, StrBuf *err) {
  LLVMModuleRef clone = LLVMCloneModule(m->mod);  // ours; same context as m
  char *msg = NULL;
  LLVMMemoryBufferRef buf;
  bool failed =
      LLVMTargetMachineEmitToMemoryBuffer(jit->tm, clone, LLVMAssemblyFile, &msg, &buf);
  LLVMDisposeModule(clone);
  if (failed) {
    fail_msg(err, "generating assembly", msg);
    return NULL;
  }
  char *text = xstrndup(LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
  LLVMDisposeMemoryBuffer(buf);
  return text;
}

bool jit_module_object(Jit *jit, JitModule *m, StrBuf *bytes, StrBuf *err) {
  LLVMModuleRef clone = LLVMCloneModule(m->mod);
  char *msg = NULL;
  LLVMMemoryBufferRef buf = NULL;
  bool failed = LLVMTargetMachineEmitToMemoryBuffer(jit->tm, clone, LLVMObjectFile, &msg, &buf);
  LLVMDisposeModule(clone);
  if (failed) return fail_msg(err, "generating an object file", msg);
  sb_appendn(bytes, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
  LLVMDisposeMemoryBuffer(buf);
  return true;
}

JitCode *jit_add_module_take(Jit *jit, JitModule *m, StrBuf *err) {
  if (!verify(m->mod, err)) {
    jit_module_free(m);
    return NULL;
  }
  // The module now belongs to tsm, which holds its own reference to the context.
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->mod, m->tsc);
  LLVMOrcDisposeThreadSafeContext(m->tsc);
  free(m);
  JitCode *code = xmalloc(sizeof *code);
  code->rt = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(jit->lljit));
  // The LLJIT takes tsm whether or not this succeeds.
  LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModuleWithRT(jit->lljit, code->rt, tsm);
  if (e) {
    LLVMOrcReleaseResourceTracker(code->rt);
    free(code);
    fail(NULL, err, "adding a module", e);
    return NULL;
  }
  code->next = jit->codes;
  jit->codes = code;
  return code;
}

uintptr_t jit_lookup(Jit *jit, const char *name, StrBuf *err) {
  sb_clear(&jit->session_errors);
  LLVMOrcExecutorAddress addr = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(jit->lljit, &addr, name);
  if (e) {
    StrBuf what = {0};
    sb_printf(&what, "looking up '%s'", name);
    fail(jit, err, sb_str(&what), e);
    sb_free(&what);
    return 0;
  }
  return (uintptr_t)addr;
}

bool jit_remove(Jit *jit, JitCode *code, StrBuf *err) {
  JitCode **p = &jit->codes;
  while (*p != code) {
    DAMC_ASSERT(*p);  // `code` must belong to `jit`
    p = &(*p)->next;
  }
  *p = code->next;
  sb_clear(&jit->session_errors);
  LLVMErrorRef e = LLVMOrcResourceTrackerRemove(code->rt);
  LLVMOrcReleaseResourceTracker(code->rt);
  free(code);
  return e ? fail(jit, err, "removing code", e) : true;
}

bool jit_module_indirect_calls(JitModule *m, const char *const *names, size_t n,
                               const char *table, StrBuf *err) {
  LLVMContextRef ctx = LLVMGetModuleContext(m->mod);
  LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0);
  LLVMTypeRef arr = LLVMArrayType2(ptr, n);
  LLVMValueRef slots = LLVMAddGlobal(m->mod, arr, table);
  LLVMSetInitializer(slots, LLVMConstNull(arr));
  LLVMSetLinkage(slots, LLVMExternalLinkage);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMTypeRef i64 = LLVMInt64TypeInContext(ctx);
  bool ok = true;
  for (LLVMValueRef f = LLVMGetFirstFunction(m->mod); f && ok; f = LLVMGetNextFunction(f)) {
    if (!LLVMIsDeclaration(f) || LLVMGetIntrinsicID(f)) continue;
    size_t len;
    const char *name = LLVMGetValueName2(f, &len);
    size_t i = 0;
    while (i < n && strcmp(names[i], name) != 0) i++;
    if (i == n) {
      sb_printf(err, "jit: the kernels call '%s', which is not a runtime function\n", name);
      ok = false;
      break;
    }
    // The declaration becomes an internal stub: load the slot, call through it.
    LLVMTypeRef fty = LLVMGlobalGetValueType(f);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMValueRef idx[2] = {LLVMConstInt(i64, 0, 0), LLVMConstInt(i64, i, 0)};
    LLVMValueRef p = LLVMBuildLoad2(b, ptr, LLVMBuildInBoundsGEP2(b, arr, slots, idx, 2, ""), "");
    unsigned np = LLVMCountParams(f);
    LLVMValueRef *args = xcalloc(np + 1, sizeof *args);
    for (unsigned a = 0; a < np; a++) args[a] = LLVMGetParam(f, a);
    LLVMValueRef call = LLVMBuildCall2(b, fty, p, args, np, "");
    free(args);
    LLVMSetTailCall(call, 1);
    if (LLVMGetTypeKind(LLVMGetReturnType(fty)) == LLVMVoidTypeKind)
      LLVMBuildRetVoid(b);
    else
      LLVMBuildRet(b, call);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    unsigned inl = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(ctx, inl, 0));
  }
  LLVMDisposeBuilder(b);
  return ok;
}

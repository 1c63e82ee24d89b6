// The IR-building layer: functions, signatures, loops, reductions (see irb.h). The math
// functions are in irb_math.c.
#include "backend/irb.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "backend/llvm_compat.h"
#include "support/common.h"

void irb_init(Irb *irb, JitModule *m, IrbReal real) {
  memset(irb, 0, sizeof *irb);
  irb->mod = jit_module_llvm(m);
  irb->ctx = LLVMGetModuleContext(irb->mod);
  irb->b = LLVMCreateBuilderInContext(irb->ctx);
  irb->real = real;
  irb->ty_real = real == IRB_F32 ? LLVMFloatTypeInContext(irb->ctx)
                                 : LLVMDoubleTypeInContext(irb->ctx);
  irb->ty_i1 = LLVMInt1TypeInContext(irb->ctx);
  irb->ty_i32 = LLVMInt32TypeInContext(irb->ctx);
  irb->ty_i64 = LLVMInt64TypeInContext(irb->ctx);
  irb->ty_ptr = LLVMPointerTypeInContext(irb->ctx, 0);
  irb->ty_void = LLVMVoidTypeInContext(irb->ctx);
}

void irb_fini(Irb *irb) {
  LLVMDisposeBuilder(irb->b);
  irb->b = NULL;
}

// ---- signatures ----

#define SIG_MAX_PARAMS 32

typedef struct {
  LLVMTypeRef ty_ret;
  unsigned n;
  LLVMTypeRef ty_params[SIG_MAX_PARAMS];
  bool noalias[SIG_MAX_PARAMS];
  char names[SIG_MAX_PARAMS][32];
} Sig;

// The next word of `*s` (letters, digits, '_') into `word`, or a single punctuation
// character; "" at the end.
static void sig_token(const char **s, char word[32]) {
  while (isspace((unsigned char)**s)) (*s)++;
  size_t n = 0;
  if (isalnum((unsigned char)**s) || **s == '_') {
    while ((isalnum((unsigned char)**s) || **s == '_') && n < 31) word[n++] = *(*s)++;
  } else if (**s) {
    word[n++] = *(*s)++;
  }
  word[n] = '\0';
}

static LLVMTypeRef sig_type(const Irb *irb, const char *word) {
  static const char *const names[] = {"void", "i32", "i64", "f32", "f64", "ptr", "real"};
  LLVMTypeRef types[] = {irb->ty_void,
                         irb->ty_i32,
                         irb->ty_i64,
                         LLVMFloatTypeInContext(irb->ctx),
                         LLVMDoubleTypeInContext(irb->ctx),
                         irb->ty_ptr,
                         irb->ty_real};
  for (size_t k = 0; k < ARRAY_LEN(names); k++)
    if (!strcmp(word, names[k])) return types[k];
  return NULL;
}

_Noreturn static void sig_error(const char *sig, const char *what) {
  fprintf(stderr, "damc: bad signature \"%s\": %s\n", sig, what);
  damc_unreachable();
}

// Parses `text` (see irb.h) into `sig`; aborts on a malformed signature.
static void sig_parse(const Irb *irb, const char *text, Sig *sig) {
  memset(sig, 0, sizeof *sig);
  const char *s = text;
  char word[32];
  sig_token(&s, word);
  if (!(sig->ty_ret = sig_type(irb, word))) sig_error(text, "unknown return type");
  sig_token(&s, word);
  if (strcmp(word, "(")) sig_error(text, "'(' expected");
  sig_token(&s, word);
  while (strcmp(word, ")")) {
    if (sig->n == SIG_MAX_PARAMS) sig_error(text, "too many parameters");
    LLVMTypeRef ty = sig_type(irb, word);
    if (!ty || ty == irb->ty_void) sig_error(text, "unknown parameter type");
    sig->ty_params[sig->n] = ty;
    sig_token(&s, word);
    if (!strcmp(word, "noalias")) {
      if (ty != irb->ty_ptr) sig_error(text, "noalias on a non-pointer");
      sig->noalias[sig->n] = true;
      sig_token(&s, word);
    }
    if (strcmp(word, ",") && strcmp(word, ")")) {
      if (!isalpha((unsigned char)word[0]) && word[0] != '_') sig_error(text, "name expected");
      memcpy(sig->names[sig->n], word, sizeof word);
      sig_token(&s, word);
    }
    sig->n++;
    if (!strcmp(word, ",")) {
      sig_token(&s, word);
      if (!strcmp(word, ")")) sig_error(text, "parameter expected after ','");
    } else if (strcmp(word, ")")) {
      sig_error(text, "',' or ')' expected");
    }
  }
  sig_token(&s, word);
  if (word[0]) sig_error(text, "text after ')'");
}

static void add_enum_attr(Irb *irb, LLVMValueRef fn, LLVMAttributeIndex idx, const char *k) {
  unsigned kind = LLVMGetEnumAttributeKindForName(k, strlen(k));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(irb->ctx, kind, 0));
}

// Adds function `name` of signature `sig` to the module, with its attributes.
static LLVMValueRef add_function(Irb *irb, const char *name, const Sig *sig) {
  LLVMTypeRef ty = LLVMFunctionType(sig->ty_ret, (LLVMTypeRef *)sig->ty_params, sig->n, 0);
  LLVMValueRef fn = LLVMAddFunction(irb->mod, name, ty);
  add_enum_attr(irb, fn, LLVMAttributeFunctionIndex, "nounwind");
  for (unsigned k = 0; k < sig->n; k++) {
    if (sig->noalias[k]) add_enum_attr(irb, fn, k + 1, "noalias");
    if (sig->names[k][0]) LLVMSetValueName2(LLVMGetParam(fn, k), sig->names[k],
                                             strlen(sig->names[k]));
  }
  return fn;
}

LLVMValueRef irb_func_begin(Irb *irb, const char *name, const char *sig_text) {
  DAMC_ASSERT(!LLVMGetNamedFunction(irb->mod, name));
  Sig sig;
  sig_parse(irb, sig_text, &sig);
  irb->fn = add_function(irb, name, &sig);
  LLVMPositionBuilderAtEnd(irb->b, LLVMAppendBasicBlockInContext(irb->ctx, irb->fn, "entry"));
  return irb->fn;
}

LLVMValueRef irb_param(const Irb *irb, unsigned i) {
  DAMC_ASSERT(i < LLVMCountParams(irb->fn));
  return LLVMGetParam(irb->fn, i);
}

LLVMValueRef irb_declare(Irb *irb, const char *name, const char *sig_text) {
  Sig sig;
  sig_parse(irb, sig_text, &sig);
  LLVMValueRef fn = LLVMGetNamedFunction(irb->mod, name);
  if (!fn) return add_function(irb, name, &sig);
  // Types are uniqued per context, so equal signatures give the same type.
  LLVMTypeRef ty = LLVMFunctionType(sig.ty_ret, sig.ty_params, sig.n, 0);
  DAMC_ASSERT(LLVMGlobalGetValueType(fn) == ty);
  return fn;
}

LLVMValueRef irb_call(Irb *irb, LLVMValueRef fn, LLVMValueRef *args, unsigned n) {
  return LLVMBuildCall2(irb->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

LLVMValueRef irb_intrinsic(Irb *irb, const char *name, LLVMValueRef *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  DAMC_ASSERT(id != 0);
  LLVMTypeRef ty = LLVMTypeOf(args[0]);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(irb->mod, id, &ty, 1);
  LLVMTypeRef ty_fn = LLVMIntrinsicGetType(irb->ctx, id, &ty, 1);
  return LLVMBuildCall2(irb->b, ty_fn, fn, args, n, "");
}

// ---- values ----

LLVMValueRef irb_real(const Irb *irb, double c) { return LLVMConstReal(irb->ty_real, c); }

LLVMValueRef irb_i64(const Irb *irb, int64_t c) {
  return LLVMConstInt(irb->ty_i64, (unsigned long long)c, 1);
}

static LLVMValueRef element_ptr(Irb *irb, LLVMValueRef v_base, LLVMValueRef v_i) {
  return LLVMBuildInBoundsGEP2(irb->b, irb->ty_real, v_base, &v_i, 1, "");
}

LLVMValueRef irb_load(Irb *irb, LLVMValueRef v_base, LLVMValueRef v_i) {
  return LLVMBuildLoad2(irb->b, irb->ty_real, element_ptr(irb, v_base, v_i), "");
}

void irb_store(Irb *irb, LLVMValueRef v_base, LLVMValueRef v_i, LLVMValueRef v) {
  LLVMBuildStore(irb->b, v, element_ptr(irb, v_base, v_i));
}

// ---- loops ----

// Asks the vectoriser to fold the remainder of the loop whose latch is `v_br` into its last
// vector iteration (masked loads and stores) instead of a vector and a scalar epilogue, each
// with its own copy of the inline math: a quarter less machine code for Model B's step
// kernel (docs/performance.md, "The cold compile"). Only for constant trip counts (the
// model's sizes): the short loops of runtime length, the blocks of a fused step, ran 4 %
// slower masked. The loop ID is a distinct node that refers to itself: a uniqued node that
// comes to refer to itself through the temporary becomes one.
static void set_fold_tail(Irb *irb, LLVMValueRef v_br) {
  static const char hint[] = "llvm.loop.vectorize.predicate.enable";
  LLVMMetadataRef kv[2] = {LLVMMDStringInContext2(irb->ctx, hint, sizeof hint - 1),
                           LLVMValueAsMetadata(LLVMConstInt(irb->ty_i1, 1, 0))};
  LLVMMetadataRef self = LLVMTemporaryMDNode(irb->ctx, NULL, 0);
  LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(irb->ctx, kv, 2)};
  LLVMMetadataRef id = LLVMMDNodeInContext2(irb->ctx, ops, 2);
  LLVMMetadataReplaceAllUsesWith(self, id);  // disposes of the temporary
  LLVMSetMetadata(v_br, LLVMGetMDKindIDInContext(irb->ctx, "llvm.loop", 9),
                  LLVMMetadataAsValue(irb->ctx, id));
}

void irb_loop_begin(Irb *irb, IrbLoop *loop, LLVMValueRef v_n, const char *name) {
  memset(loop, 0, sizeof *loop);
  loop->fold_tail = LLVMIsAConstantInt(v_n) != NULL;
  char label[64];
  loop->bb_pre = LLVMGetInsertBlock(irb->b);
  LLVMValueRef fn = LLVMGetBasicBlockParent(loop->bb_pre);
  snprintf(label, sizeof label, "%s.head", name);
  loop->bb_head = LLVMAppendBasicBlockInContext(irb->ctx, fn, label);
  snprintf(label, sizeof label, "%s.body", name);
  loop->bb_body = LLVMAppendBasicBlockInContext(irb->ctx, fn, label);
  snprintf(label, sizeof label, "%s.exit", name);
  loop->bb_exit = LLVMAppendBasicBlockInContext(irb->ctx, fn, label);

  LLVMBuildBr(irb->b, loop->bb_head);
  LLVMPositionBuilderAtEnd(irb->b, loop->bb_head);
  snprintf(label, sizeof label, "%s.i", name);
  loop->i = LLVMBuildPhi(irb->b, irb->ty_i64, label);
  LLVMValueRef v_zero = irb_i64(irb, 0);
  LLVMAddIncoming(loop->i, &v_zero, &loop->bb_pre, 1);
  // A signed test: the trip count is max(n, 0) and the no-wrap increment below holds.
  loop->v_test = LLVMBuildICmp(irb->b, LLVMIntSLT, loop->i, v_n, "");
  LLVMBuildCondBr(irb->b, loop->v_test, loop->bb_body, loop->bb_exit);
  LLVMPositionBuilderAtEnd(irb->b, loop->bb_body);
}

LLVMValueRef irb_loop_carry(Irb *irb, IrbLoop *loop, LLVMValueRef v_init, const char *name) {
  DAMC_ASSERT(loop->n_carry < IRB_LOOP_MAX_CARRY);
  // Phis must lead the header, and the builder is in the body: use a second builder.
  LLVMBuilderRef b = LLVMCreateBuilderInContext(irb->ctx);
  LLVMPositionBuilderBefore(b, loop->v_test);
  LLVMValueRef v_phi = LLVMBuildPhi(b, LLVMTypeOf(v_init), name);
  LLVMDisposeBuilder(b);
  LLVMAddIncoming(v_phi, &v_init, &loop->bb_pre, 1);
  loop->carry[loop->n_carry++] = v_phi;
  return v_phi;
}

void irb_loop_end(Irb *irb, IrbLoop *loop, const LLVMValueRef *v_next) {
  LLVMBasicBlockRef bb_latch = LLVMGetInsertBlock(irb->b);
  LLVMValueRef v_i_next = LLVMBuildNUWAdd(irb->b, loop->i, irb_i64(irb, 1), "");
  LLVMSetNSW(v_i_next, 1);
  LLVMAddIncoming(loop->i, &v_i_next, &bb_latch, 1);
  for (unsigned k = 0; k < loop->n_carry; k++) {
    LLVMValueRef v = v_next[k];
    LLVMAddIncoming(loop->carry[k], &v, &bb_latch, 1);
  }
  LLVMValueRef v_br = LLVMBuildBr(irb->b, loop->bb_head);
  if (loop->fold_tail) set_fold_tail(irb, v_br);
  LLVMPositionBuilderAtEnd(irb->b, loop->bb_exit);
}

// ---- reductions ----

// The flags the loop vectoriser needs to reorder a reduction, and no more (checked with
// LLVM 19): a sum needs reassociation (no-signed-zeros spares it a fix-up of the start
// value); maxnum needs no-NaNs and no-signed-zeros, not reassociation. No flag reaches
// other instructions: the elementwise math relies on exact IEEE steps.
#define FMF_SUM (LLVMFastMathAllowReassoc | LLVMFastMathNoSignedZeros)
#define FMF_MAX (LLVMFastMathNoNaNs | LLVMFastMathNoSignedZeros)

LLVMValueRef irb_reduce_add(Irb *irb, LLVMValueRef v_acc, LLVMValueRef v_x) {
  LLVMValueRef v = LLVMBuildFAdd(irb->b, v_acc, v_x, "sum");
  compat_set_fmf(v, FMF_SUM);
  return v;
}

LLVMValueRef irb_reduce_max(Irb *irb, LLVMValueRef v_acc, LLVMValueRef v_x) {
  LLVMValueRef args[2] = {v_acc, v_x};
  LLVMValueRef v = irb_intrinsic(irb, "llvm.maxnum", args, 2);
  compat_set_fmf(v, FMF_MAX);
  return v;
}

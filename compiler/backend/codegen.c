// Code generation from a kernel plan (see codegen.h).
#include "backend/codegen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "damrt_kernel.h"
#include "support/common.h"

typedef struct {
  Irb *irb;
  const Plan *plan;
  const ExprPool *pool;
  LLVMValueRef *v_buf;  // per buffer: its base pointer
  LLVMValueRef *v_dim;  // per runtime dim: its size, read at the function's entry
  LLVMValueRef v_params, v_batch;
  LLVMValueRef *cache;  // per node: its value in the current loop body
  uint32_t *cache_gen;
  uint32_t gen;       // the current body (cache entries of other bodies are stale)
  uint32_t last_gen;  // the last body number handed out
  StrBuf *err;
} Cg;

static const Expr *node(const Cg *cg, ExprId e) { return expr_get(cg->pool, e); }

// ---- Runtime functions ----

static const JitSymbol runtime_symbols[] = {
#define X(name, sig) JIT_SYMBOL(name),
#include "damrt_kernel.def"
#undef X
};

const JitSymbol *codegen_runtime_symbols(size_t *n) {
  *n = ARRAY_LEN(runtime_symbols);
  return runtime_symbols;
}

static LLVMValueRef runtime_fn(Cg *cg, const char *name) {
#define X(fn, sig)                                                             \
  if (strcmp(name, #fn) == 0) return irb_declare(cg->irb, #fn, sig);
#include "damrt_kernel.def"
#undef X
  damc_unreachable();
}

static bool f32(const Cg *cg) { return cg->irb->real == IRB_F32; }

// The size of a dim: a constant, or, for a runtime dim, read from the sizes buffer.
static LLVMValueRef dim_value(const Cg *cg, int d) {
  return plan_dim_runtime(cg->plan, d) ? cg->v_dim[d] : irb_i64(cg->irb, cg->plan->dims[d]);
}

static LLVMValueRef size_value(const Cg *cg, PlanSize s) {
  if (plan_size_fixed(cg->plan, s)) return irb_i64(cg->irb, plan_size(cg->plan, s));
  LLVMValueRef v = NULL;
  for (int i = 0; i < 2; i++)
    if (s.d[i] != PLAN_ONE) {
      LLVMValueRef f = dim_value(cg, s.d[i]);
      v = v ? LLVMBuildNUWMul(cg->irb->b, v, f, "") : f;
    }
  return v;
}

static PlanSize numel_of(const Cg *cg, ExprId e) { return plan_shape_numel(&node(cg, e)->shape); }

// ---- Values ----

static LLVMValueRef value(Cg *cg, ExprId e, LLVMValueRef v_b, LLVMValueRef v_i);

// Index of element (b, i) of buffer `buf` (b and i may be NULL when absent).
static LLVMValueRef buffer_index(Cg *cg, const PlanBuf *buf, LLVMValueRef v_b, LLVMValueRef v_i) {
  LLVMBuilderRef b = cg->irb->b;
  LLVMValueRef v_idx = irb_i64(cg->irb, 0);
  bool many = plan_size_many(cg->plan, buf->numel);
  if (buf->batched) {
    DAMC_ASSERT(v_b);
    v_idx = many ? LLVMBuildNUWMul(b, v_b, size_value(cg, buf->numel), "") : v_b;
  }
  if (many) {
    DAMC_ASSERT(v_i);
    v_idx = LLVMBuildNUWAdd(b, v_idx, v_i, "");
  }
  return v_idx;
}

static LLVMValueRef load_buffer(Cg *cg, int buf, LLVMValueRef v_b, LLVMValueRef v_i) {
  const PlanBuf *pb = &cg->plan->bufs[buf];
  return irb_load(cg->irb, cg->v_buf[buf], buffer_index(cg, pb, v_b, v_i));
}

static LLVMValueRef fmul(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFMul(cg->irb->b, a, b, "");
}
static LLVMValueRef fdiv(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFDiv(cg->irb->b, a, b, "");
}

static LLVMValueRef power(Cg *cg, LLVMValueRef v_x, const Expr *exponent, LLVMValueRef v_y) {
  Irb *irb = cg->irb;
  LLVMValueRef one = irb_real(irb, 1);
  switch (plan_pow_form(exponent)) {
  case POW_SQUARE: return fmul(cg, v_x, v_x);
  case POW_CUBE: return fmul(cg, fmul(cg, v_x, v_x), v_x);
  case POW_FOURTH: {
    LLVMValueRef sq = fmul(cg, v_x, v_x);
    return fmul(cg, sq, sq);
  }
  case POW_RECIP: return fdiv(cg, one, v_x);
  case POW_RECIP_SQUARE: return fdiv(cg, one, fmul(cg, v_x, v_x));
  case POW_SQRT: return irb_math(irb, IRB_SQRT, v_x);
  case POW_RECIP_SQRT: return fdiv(cg, one, irb_math(irb, IRB_SQRT, v_x));
  case POW_CALL: break;
  }
  LLVMValueRef args[2] = {v_x, v_y};
  return irb_call(irb, runtime_fn(cg, f32(cg) ? "damrt_kernel_pow_f32" : "damrt_kernel_pow_f64"),
                  args, 2);
}

static LLVMValueRef elementwise(Cg *cg, ElemFn fn, LLVMValueRef v_x) {
  Irb *irb = cg->irb;
  LLVMBuilderRef b = irb->b;
  static const IrbMath math[EF_COUNT] = {
      [EF_EXP] = IRB_EXP,           [EF_LOG] = IRB_LOG,       [EF_SQRT] = IRB_SQRT,
      [EF_ABS] = IRB_ABS,           [EF_TANH] = IRB_TANH,     [EF_SIGMOID] = IRB_SIGMOID,
      [EF_SOFTPLUS] = IRB_SOFTPLUS, [EF_RELU] = IRB_RELU,     [EF_LOG1P] = IRB_LOG1P,
      [EF_EXPM1] = IRB_EXPM1,       [EF_COSH] = IRB_COSH,     [EF_SINH] = IRB_SINH,
      [EF_LOGCOSH] = IRB_LOGCOSH,
  };
  LLVMValueRef zero = irb_real(irb, 0), one = irb_real(irb, 1);
  switch (fn) {
  case EF_STEP: return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, v_x, zero, ""), one, zero, "");
  case EF_SIGN: {
    LLVMValueRef neg = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, v_x, zero, ""),
                                       irb_real(irb, -1), v_x, "");
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, v_x, zero, ""), one, neg, "");
  }
  case EF_SECH2: {
    // 4 t / (1 + t)^2 with t = exp(-2|x|): never 1 - tanh^2 (docs/theory.md §3.3).
    LLVMValueRef t = irb_math(irb, IRB_EXP, fmul(cg, irb_real(irb, -2), irb_math(irb, IRB_ABS, v_x)));
    LLVMValueRef d = LLVMBuildFAdd(b, one, t, "");
    return fdiv(cg, fmul(cg, irb_real(irb, 4), t), fmul(cg, d, d));
  }
  default: return irb_math(irb, math[fn], v_x);
  }
}

static LLVMValueRef compute(Cg *cg, ExprId e, LLVMValueRef v_b, LLVMValueRef v_i) {
  const Expr *x = node(cg, e);
  Irb *irb = cg->irb;
  LLVMBuilderRef b = irb->b;
  switch (x->kind) {
  case EX_CONST: return irb_real(irb, x->value);
  case EX_DIM:
    if (!plan_dim_runtime(cg->plan, x->index)) return irb_real(irb, (double)cg->plan->dims[x->index]);
    return LLVMBuildSIToFP(b, dim_value(cg, x->index), irb->ty_real, "");
  case EX_PARAM: {
    LLVMValueRef v = LLVMBuildLoad2(b, LLVMDoubleTypeInContext(irb->ctx),
                                    LLVMBuildGEP2(b, LLVMDoubleTypeInContext(irb->ctx), cg->v_params,
                                                  (LLVMValueRef[]){irb_i64(irb, x->index)}, 1, ""),
                                    "param");
    return f32(cg) ? LLVMBuildFPTrunc(b, v, irb->ty_real, "") : v;
  }
  case EX_ADD:
  case EX_MUL: {
    LLVMValueRef acc = value(cg, x->kids[0], v_b, v_i);
    for (uint32_t k = 1; k < x->nkids; k++) {
      LLVMValueRef v = value(cg, node(cg, e)->kids[k], v_b, v_i);
      acc = x->kind == EX_ADD ? LLVMBuildFAdd(b, acc, v, "") : LLVMBuildFMul(b, acc, v, "");
    }
    return acc;
  }
  case EX_POW:
    return power(cg, value(cg, x->kids[0], v_b, v_i), node(cg, x->kids[1]),
                 value(cg, node(cg, e)->kids[1], v_b, v_i));
  case EX_FN: return elementwise(cg, (ElemFn)x->index, value(cg, x->kids[0], v_b, v_i));
  case EX_BCAST: return value(cg, x->kids[0], v_b, v_i);
  case EX_TRANSPOSE:
  case EX_OUTER: {
    // Element i = (r, c) of an R x C matrix: A' reads A at (c, r), a b' is a[r] b[c]. The
    // operands are evaluated at those indices in a body of their own, so no value computed
    // at i is reused at another index.
    PlanSize R = {{x->shape.dims[0], PLAN_ONE}}, C = {{x->shape.dims[1], PLAN_ONE}};
    if (!v_i) v_i = irb_i64(irb, 0);  // a 1 x 1 matrix
    LLVMValueRef v_R = size_value(cg, R), v_C = size_value(cg, C);
    LLVMValueRef v_r = LLVMBuildUDiv(b, v_i, v_C, "row");
    LLVMValueRef v_c = LLVMBuildURem(b, v_i, v_C, "col");
    uint32_t outer = cg->gen;
    cg->gen = ++cg->last_gen;
    LLVMValueRef v;
    if (x->kind == EX_TRANSPOSE) {
      LLVMValueRef v_j = LLVMBuildNUWAdd(b, LLVMBuildNUWMul(b, v_c, v_R, ""), v_r, "");
      v = value(cg, x->kids[0], v_b, plan_size_many(cg->plan, plan_shape_numel(&x->shape)) ? v_j : NULL);
    } else {
      v = value(cg, x->kids[0], v_b, plan_size_many(cg->plan, R) ? v_r : NULL);
      cg->gen = ++cg->last_gen;
      v = LLVMBuildFMul(b, v, value(cg, node(cg, e)->kids[1], v_b, plan_size_many(cg->plan, C) ? v_c : NULL), "");
    }
    cg->gen = outer;
    return v;
  }
  default:
    sb_printf(cg->err, "codegen: node of kind %d is not in a buffer", x->kind);
    return irb_real(irb, NAN);
  }
}

// The value of `e` at sample b, element i: from its buffer, or computed inline (once per
// loop body: shared subexpressions are reused).
static LLVMValueRef value(Cg *cg, ExprId e, LLVMValueRef v_b, LLVMValueRef v_i) {
  int buf = cg->plan->node_buf[e];
  if (buf >= 0) return load_buffer(cg, buf, v_b, v_i);
  if (cg->cache_gen[e] == cg->gen) return cg->cache[e];
  LLVMValueRef v = compute(cg, e, v_b, v_i);
  cg->cache[e] = v;
  cg->cache_gen[e] = cg->gen;
  return v;
}

static void new_body(Cg *cg) { cg->gen = ++cg->last_gen; }

// ---- Steps ----

// Opens the loop over samples when `batched`; returns the sample index or NULL.
static LLVMValueRef open_batch(Cg *cg, IrbLoop *loop, bool batched) {
  if (!batched) return NULL;
  irb_loop_begin(cg->irb, loop, cg->v_batch, "b");
  return loop->i;
}

static void close_batch(Cg *cg, IrbLoop *loop, bool batched) {
  if (batched) irb_loop_end(cg->irb, loop, NULL);
}

// The value a map step stores at (b, i): its node computed, or, for a copy
// (plan_step_copies), read from the node's buffer (broadcast when that is not batched).
static LLVMValueRef map_value(Cg *cg, const PlanStep *s, LLVMValueRef v_b, LLVMValueRef v_i) {
  int from = plan_step_copies(cg->plan, s);
  if (from < 0) return compute(cg, s->node, v_b, v_i);
  return load_buffer(cg, from, cg->plan->bufs[from].batched ? v_b : NULL,
                     plan_size_many(cg->plan, cg->plan->bufs[from].numel) ? v_i : NULL);
}

static void emit_map(Cg *cg, const PlanStep *s) {
  const PlanBuf *out = &cg->plan->bufs[s->out];
  IrbLoop lb, li;
  LLVMValueRef v_b = open_batch(cg, &lb, out->batched);
  LLVMValueRef v_i = NULL;
  bool many = plan_size_many(cg->plan, out->numel);
  if (many) {
    irb_loop_begin(cg->irb, &li, size_value(cg, out->numel), "i");
    v_i = li.i;
  }
  new_body(cg);
  LLVMValueRef v = map_value(cg, s, v_b, v_i);
  irb_store(cg->irb, cg->v_buf[s->out], buffer_index(cg, out, v_b, v_i), v);
  if (many) irb_loop_end(cg->irb, &li, NULL);
  close_batch(cg, &lb, out->batched);
}

// One pass over the elements of `arg` at sample v_b: the reduction of f(v) with `step`
// (sum or max) from `init`; `shift` (or NULL) is subtracted and exp taken (log-sum-exp).
static LLVMValueRef reduce_pass(Cg *cg, ExprId arg, LLVMValueRef v_b, LLVMValueRef init,
                                bool max, LLVMValueRef shift) {
  Irb *irb = cg->irb;
  PlanSize n = numel_of(cg, arg);
  IrbLoop li;
  irb_loop_begin(irb, &li, size_value(cg, n), max ? "max" : "sum");
  LLVMValueRef acc = irb_loop_carry(irb, &li, init, "acc");
  new_body(cg);
  LLVMValueRef v = value(cg, arg, v_b, plan_size_many(cg->plan, n) ? li.i : NULL);
  if (shift) v = irb_math(irb, IRB_EXP, LLVMBuildFSub(irb->b, v, shift, ""));
  LLVMValueRef next = max ? irb_reduce_max(irb, acc, v) : irb_reduce_add(irb, acc, v);
  irb_loop_end(irb, &li, &next);
  return li.carry[0];
}

static void emit_reduce(Cg *cg, const PlanStep *s) {
  Irb *irb = cg->irb;
  LLVMBuilderRef b = irb->b;
  const PlanBuf *out = &cg->plan->bufs[s->out];
  const Expr *x = node(cg, s->node);
  ExprId arg = x->kids[0];
  IrbLoop lb;
  LLVMValueRef v_b = open_batch(cg, &lb, out->batched);
  LLVMValueRef result;
  if (x->kind == EX_SUM) {
    result = reduce_pass(cg, arg, v_b, irb_real(irb, 0), false, NULL);
  } else {
    // log-sum-exp with the max shift; LSE1 has one more logit, fixed at 0.
    LLVMValueRef m = reduce_pass(cg, arg, v_b, irb_real(irb, -INFINITY), true, NULL);
    if (x->kind == EX_LSE1) m = irb_reduce_max(irb, m, irb_real(irb, 0));
    LLVMValueRef init = x->kind == EX_LSE1 ? irb_math(irb, IRB_EXP, LLVMBuildFNeg(b, m, ""))
                                           : irb_real(irb, 0);
    LLVMValueRef sum = reduce_pass(cg, arg, v_b, init, false, m);
    LLVMValueRef lse = LLVMBuildFAdd(b, m, irb_math(irb, IRB_LOG, sum), "");
    // All logits -inf (or one +inf): the answer is the max itself.
    LLVMValueRef inf = LLVMBuildFCmp(b, LLVMRealOEQ, irb_math(irb, IRB_ABS, m),
                                     irb_real(irb, INFINITY), "");
    result = LLVMBuildSelect(b, inf, m, lse, "");
  }
  irb_store(irb, cg->v_buf[s->out], buffer_index(cg, out, v_b, NULL), result);
  close_batch(cg, &lb, out->batched);
}

// Buffer `buf` advanced by `stride` elements per sample v_b (itself when v_b is NULL or the
// buffer is shared by every sample).
static LLVMValueRef sample_ptr(Cg *cg, int buf, PlanSize stride, bool shared, LLVMValueRef v_b) {
  if (!v_b || shared) return cg->v_buf[buf];
  Irb *irb = cg->irb;
  LLVMValueRef v_off = LLVMBuildNUWMul(irb->b, v_b, size_value(cg, stride), "");
  return LLVMBuildGEP2(irb->b, irb->ty_real, cg->v_buf[buf], (LLVMValueRef[]){v_off}, 1, "");
}

static void emit_matmul(Cg *cg, const PlanStep *s) {
  Irb *irb = cg->irb;
  IrbLoop lb;
  LLVMValueRef v_b = open_batch(cg, &lb, s->per_sample);
  LLVMValueRef v_m = s->batched ? cg->v_batch : size_value(cg, s->m);
  LLVMValueRef args[11] = {
      LLVMConstInt(irb->ty_i32, s->trans_a, 0), LLVMConstInt(irb->ty_i32, s->trans_b, 0),
      v_m, size_value(cg, s->n), size_value(cg, s->k),
      sample_ptr(cg, s->a, s->stride_a, s->shared_a, v_b), size_value(cg, s->lda),
      sample_ptr(cg, s->b, s->stride_b, s->shared_b, v_b), size_value(cg, s->ldb),
      sample_ptr(cg, s->out, s->stride_c, false, v_b), size_value(cg, s->ldc)};
  irb_call(irb, runtime_fn(cg, f32(cg) ? "damrt_kernel_gemm_f32" : "damrt_kernel_gemm_f64"),
           args, 11);
  close_batch(cg, &lb, s->per_sample);
}

static void load_bufs(Cg *cg, LLVMValueRef v_bufs) {
  Irb *irb = cg->irb;
  for (int i = 0; i < cg->plan->nbufs; i++) {
    LLVMValueRef v_slot = LLVMBuildGEP2(irb->b, irb->ty_ptr, v_bufs,
                                        (LLVMValueRef[]){irb_i64(irb, i)}, 1, "");
    cg->v_buf[i] = LLVMBuildLoad2(irb->b, irb->ty_ptr, v_slot, cg->plan->bufs[i].name);
  }
  // The runtime dims' sizes, read once: loop bounds that LLVM can hoist and vectorise by.
  for (int d = 0; d < cg->plan->net->ndims; d++)
    if (plan_dim_runtime(cg->plan, d)) {
      LLVMValueRef v_at = LLVMBuildGEP2(irb->b, irb->ty_i64, cg->v_buf[cg->plan->sizes_buf],
                                        (LLVMValueRef[]){irb_i64(irb, d)}, 1, "");
      cg->v_dim[d] = LLVMBuildLoad2(irb->b, irb->ty_i64, v_at, cg->plan->net->dims[d].name);
    }
}

// The block function of fused step `at`: its inner maps over the columns [k0, k1) of every
// sample (called by damrt_kernel_fused_* once per block of rows of the weight).
static LLVMValueRef emit_block_fn(Cg *cg, int at, const char *kernel) {
  Irb *irb = cg->irb;
  const PlanStep *f = &cg->plan->steps[at];
  char name[160];
  snprintf(name, sizeof name, "%s.block%d", kernel, at);
  LLVMValueRef fn = irb_func_begin(
      irb, name, "void(ptr noalias bufs, ptr noalias params, i64 batch, i64 k0, i64 k1)");
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  cg->v_params = irb_param(irb, 1);
  cg->v_batch = irb_param(irb, 2);
  LLVMValueRef v_k0 = irb_param(irb, 3), v_k1 = irb_param(irb, 4);
  load_bufs(cg, irb_param(irb, 0));
  for (int t = 1; t <= f->ninner; t++) {
    const PlanStep *s = &cg->plan->steps[at + t];
    const PlanBuf *out = &cg->plan->bufs[s->out];
    IrbLoop lb, li;
    LLVMValueRef v_b = open_batch(cg, &lb, true);
    irb_loop_begin(irb, &li, LLVMBuildSub(irb->b, v_k1, v_k0, ""), "i");
    LLVMValueRef v_i = LLVMBuildNUWAdd(irb->b, v_k0, li.i, "");
    new_body(cg);
    LLVMValueRef v = map_value(cg, s, v_b, v_i);
    irb_store(irb, cg->v_buf[s->out], buffer_index(cg, out, v_b, v_i), v);
    irb_loop_end(irb, &li, NULL);
    close_batch(cg, &lb, true);
  }
  LLVMBuildRetVoid(irb->b);
  return fn;
}

static void emit_fused(Cg *cg, const PlanStep *s, LLVMValueRef v_fn, LLVMValueRef v_bufs) {
  Irb *irb = cg->irb;
  LLVMValueRef null = LLVMConstNull(irb->ty_ptr);
  // Above max_batch samples the runtime takes the BLAS path; the plan's threads.
  LLVMValueRef v_n = size_value(cg, s->n), v_k = size_value(cg, s->k);
  LLVMValueRef v_threads = LLVMConstInt(irb->ty_i32, (unsigned long long)s->threads, 0);
  if (s->one_thread_bytes) {  // a runtime size: the plan's rule applied at every call
    LLVMValueRef v_bytes = LLVMBuildNUWMul(irb->b, LLVMBuildNUWMul(irb->b, v_n, v_k, ""),
                                           irb_i64(irb, f32(cg) ? 4 : 8), "");
    LLVMValueRef v_small = LLVMBuildICmp(irb->b, LLVMIntSLT, v_bytes, irb_i64(irb, s->one_thread_bytes), "");
    v_threads = LLVMBuildSelect(irb->b, v_small, LLVMConstInt(irb->ty_i32, 1, 0), v_threads, "");
  }
  // The runtime's modes are the plan's (damrt_kernel.h); an energy has no u.
  bool energy = s->mode == FUSED_LSE || s->mode == FUSED_SUM;
  LLVMValueRef args[15] = {
      LLVMConstInt(irb->ty_i32, (unsigned long long)s->mode, 0), cg->v_batch,
      v_n, v_k, irb_i64(irb, s->rows), v_threads, cg->v_buf[s->w],
      cg->v_buf[s->g], cg->v_buf[s->z], cg->v_buf[s->act],
      s->lse >= 0 ? cg->v_buf[s->lse] : null, energy ? null : cg->v_buf[s->out], v_fn, v_bufs,
      cg->v_params};
  const char *fn = f32(cg) ? "damrt_kernel_fused_f32" : "damrt_kernel_fused_f64";
  if (s->max_batch == INT64_MAX) {
    irb_call(irb, runtime_fn(cg, fn), args, 15);
    return;
  }
  LLVMValueRef v_small = LLVMBuildICmp(irb->b, LLVMIntSLE, cg->v_batch, irb_i64(irb, s->max_batch), "");
  args[5] = LLVMBuildSelect(irb->b, v_small, args[5], LLVMConstInt(irb->ty_i32, 0, 0), "");
  // max_batch is passed as a negative thread count: the runtime's BLAS path.
  irb_call(irb, runtime_fn(cg, fn), args, 15);
}

bool codegen_plan(Irb *irb, const Plan *plan, const char *name, StrBuf *err) {
  Cg cg = {irb, plan, plan->net->pool, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, err};
  size_t len0 = err->len;
  cg.v_buf = xcalloc((size_t)plan->nbufs + 1, sizeof *cg.v_buf);
  cg.v_dim = xcalloc((size_t)plan->net->ndims + 1, sizeof *cg.v_dim);
  uint32_t nn = expr_count(plan->net->pool);
  cg.cache = xcalloc(nn, sizeof *cg.cache);
  cg.cache_gen = xcalloc(nn, sizeof *cg.cache_gen);
  LLVMValueRef *block_fn = xcalloc((size_t)plan->nsteps + 1, sizeof *block_fn);
  for (int i = 0; i < plan->nsteps; i++)
    if (plan->steps[i].kind == PS_FUSED) block_fn[i] = emit_block_fn(&cg, i, name);
  irb_func_begin(irb, name, "void(ptr noalias bufs, ptr noalias params, i64 batch)");
  LLVMValueRef v_bufs = irb_param(irb, 0);
  cg.v_params = irb_param(irb, 1);
  cg.v_batch = irb_param(irb, 2);
  load_bufs(&cg, v_bufs);
  for (int i = 0; i < plan->nsteps; i++) {
    const PlanStep *s = &plan->steps[i];
    if (s->kind == PS_MAP) emit_map(&cg, s);
    else if (s->kind == PS_REDUCE) emit_reduce(&cg, s);
    else if (s->kind == PS_FUSED) {
      emit_fused(&cg, s, block_fn[i], v_bufs);
      i += s->ninner;
    } else emit_matmul(&cg, s);
  }
  free(block_fn);
  LLVMBuildRetVoid(irb->b);
  free(cg.v_buf);
  free(cg.v_dim);
  free(cg.cache);
  free(cg.cache_gen);
  return err->len == len0;
}

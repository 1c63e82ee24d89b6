// Lowering to a kernel plan (see plan.h).
#include "lower/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

typedef struct {
  Plan *plan;
  ExprPool *pool;
  int *uses;            // per node: references from needed parents (and outputs)
  bool *feeds_product;  // per node: an operand of a matmul or transpose
  int8_t *batched;      // per node: 1 depends on a state, activation, input or direction
  size_t buf_cap, step_cap, out_cap;
  StrBuf *err;
  int ntemps;
} Lowering;

static const Expr *node(const Lowering *lw, ExprId e) { return expr_get(lw->pool, e); }

static bool is_batched(Lowering *lw, ExprId e) {
  if (lw->batched[e]) return lw->batched[e] > 0;
  const Expr *x = node(lw, e);
  bool b = x->kind == EX_STATE || x->kind == EX_ACT || x->kind == EX_INPUT || x->kind == EX_DIR;
  for (uint32_t i = 0; i < x->nkids && !b; i++) b = is_batched(lw, x->kids[i]);
  lw->batched[e] = b ? 1 : -1;
  return b;
}

// ---- Sizes ----

// A size in canonical form (dims in increasing order, factors 1 last), so that two sizes
// made of the same dims are equal as values.
static PlanSize size_of(int32_t d0, int32_t d1) {
  if (d0 == PLAN_ONE || (d1 != PLAN_ONE && d1 < d0)) {
    int32_t t = d0;
    d0 = d1;
    d1 = t;
  }
  return (PlanSize){{d0, d1}};
}
static const PlanSize SIZE_ONE = {{PLAN_ONE, PLAN_ONE}};

static bool size_eq(PlanSize a, PlanSize b) { return a.d[0] == b.d[0] && a.d[1] == b.d[1]; }

// The product of two sizes (of one dim each at most).
static PlanSize size_mul(PlanSize a, PlanSize b) {
  DAMC_ASSERT(a.d[1] == PLAN_ONE && b.d[1] == PLAN_ONE);
  return size_of(a.d[0], b.d[0]);
}

PlanSize plan_shape_numel(const ExprShape *shape) {
  if (shape->rank == 0) return SIZE_ONE;
  return size_of(shape->dims[0], shape->rank == 2 ? shape->dims[1] : PLAN_ONE);
}

bool plan_dim_runtime(const Plan *plan, int dim) { return plan->runtime && plan->runtime[dim]; }

int64_t plan_size(const Plan *plan, PlanSize s) {
  int64_t n = 1;
  for (int i = 0; i < 2; i++)
    if (s.d[i] != PLAN_ONE) n *= plan->dims[s.d[i]];
  return n;
}

bool plan_size_fixed(const Plan *plan, PlanSize s) {
  for (int i = 0; i < 2; i++)
    if (s.d[i] != PLAN_ONE && plan_dim_runtime(plan, s.d[i])) return false;
  return true;
}

bool plan_size_many(const Plan *plan, PlanSize s) {
  return !plan_size_fixed(plan, s) || plan_size(plan, s) > 1;
}

// Whether `name` is taken: by a buffer already in the plan, or by a weight other than the
// one `self` is (weights keep the names the user gave them).
static bool name_taken(const Lowering *lw, const char *name, PlanBufRole role, int self) {
  for (int i = 0; i < lw->plan->nbufs; i++)
    if (!strcmp(lw->plan->bufs[i].name, name)) return true;
  const Network *net = lw->plan->net;
  for (int w = 0; w < net->nweights; w++)
    if (!(role == PB_WEIGHT && w == self) && !strcmp(net->weights[w].name, name)) return true;
  return false;
}

static int add_buf(Lowering *lw, PlanBufRole role, ExprId e, bool batched, int index,
                   const char *name) {
  Plan *plan = lw->plan;
  PlanBuf b = {role, e, batched, SIZE_ONE, 0, SIZE_ONE, SIZE_ONE, index, ""};
  if (role != PB_SIZES) {
    const Expr *x = node(lw, e);
    b.rank = x->shape.rank;
    if (x->shape.rank >= 1) b.rows = size_of(x->shape.dims[0], PLAN_ONE);
    if (x->shape.rank == 2) b.cols = size_of(x->shape.dims[1], PLAN_ONE);
  }
  b.numel = size_mul(b.rows, b.cols);
  // Names are unique in a plan (they are C identifiers in emit --c): an internal name that a
  // weight or another buffer already has gets a trailing '_' until it is free.
  do {
    if (name) snprintf(b.name, sizeof b.name, "%s", name);
    else snprintf(b.name, sizeof b.name, "t%d", lw->ntemps++);
    while (name_taken(lw, b.name, role, index) && strlen(b.name) + 1 < sizeof b.name)
      strcat(b.name, "_");
  } while (!name && name_taken(lw, b.name, role, index));
  size_t count = (size_t)plan->nbufs;
  VEC_PUSH(plan->bufs, count, lw->buf_cap, b);
  plan->nbufs = (int)count;
  return plan->nbufs - 1;
}

static void add_step(Lowering *lw, PlanStep s) {
  size_t count = (size_t)lw->plan->nsteps;
  VEC_PUSH(lw->plan->steps, count, lw->step_cap, s);
  lw->plan->nsteps = (int)count;
}

// ---- Use counts ----

static void count_uses(Lowering *lw, ExprId e, uint8_t *seen) {
  lw->uses[e]++;
  if (seen[e]) return;
  seen[e] = 1;
  const Expr *x = node(lw, e);
  for (uint32_t i = 0; i < x->nkids; i++) {
    if (x->kind == EX_MATMUL || x->kind == EX_TRANSPOSE || x->kind == EX_OUTER)
      lw->feeds_product[x->kids[i]] = true;
    count_uses(lw, x->kids[i], seen);
  }
}

// ---- Scheduling ----

static bool must_materialize(Lowering *lw, ExprId e) {
  const Expr *x = node(lw, e);
  switch (x->kind) {
  case EX_MATMUL:
  case EX_SUM:
  case EX_LSE:
  case EX_LSE1:
  case EX_TRANSPOSE:
  case EX_OUTER: return true;
  default: break;
  }
  bool batched = is_batched(lw, e);
  // A per-sample scalar used once is computed where it is used; one used more often gets a
  // small loop over the batch of its own.
  if (x->shape.rank == 0) return batched && lw->uses[e] >= 2;
  if (!batched) return true;               // computed once per call, not once per sample
  return lw->uses[e] >= 2 || lw->feeds_product[e];
}

static bool need(Lowering *lw, ExprId e);

// The buffer holding operand `e` of a product, with a transposition folded into a flag.
static bool product_operand(Lowering *lw, ExprId e, int *buf, bool *trans) {
  *trans = false;
  if (node(lw, e)->kind == EX_TRANSPOSE) {
    ExprId inner = node(lw, e)->kids[0];
    if (!need(lw, inner)) return false;
    *trans = true;
    e = inner;
  } else if (!need(lw, e)) {
    return false;
  }
  *buf = lw->plan->node_buf[e];
  DAMC_ASSERT(*buf >= 0);
  return true;
}

static bool schedule_matmul(Lowering *lw, ExprId e, int out) {
  const Expr *x = node(lw, e);
  ExprId a = x->kids[0], b = x->kids[1];
  PlanStep s = {.kind = PS_MATMUL, .node = e, .out = out, .w = -1, .g = -1, .z = -1, .act = -1,
                .lse = -1};
  int wa, wb;
  bool ta, tb;
  if (!product_operand(lw, a, &wa, &ta) || !product_operand(lw, b, &wb, &tb)) return false;
  const PlanBuf *A = &lw->plan->bufs[wa], *B = &lw->plan->bufs[wb];
  PlanSize m = ta ? A->cols : A->rows, k = ta ? A->rows : A->cols;
  bool vector = node(lw, b)->shape.rank == 1;
  // p: the columns of op(B) (1 for a vector).
  PlanSize p = vector ? SIZE_ONE : tb ? B->rows : B->cols;
  s.a = wa;
  s.b = wb;
  s.trans_a = ta;
  s.trans_b = tb;
  s.m = m;
  s.n = p;
  s.k = k;
  s.lda = A->cols;
  s.ldb = vector ? SIZE_ONE : B->cols;
  s.ldc = p;
  if (A->batched || (!vector && B->batched)) {
    // A matrix that depends on the sample: C_s = op(A_s) op(B_s), one product per sample.
    s.per_sample = true;
    s.stride_a = A->numel;
    s.shared_a = !A->batched;
    s.stride_b = B->numel;
    s.shared_b = !B->batched;
    s.stride_c = size_mul(m, p);
  } else if (vector && is_batched(lw, b)) {
    // OUT[batch, m] = X[batch, k] op(A)': one gemm over the whole batch.
    s.batched = true;
    s.a = wb;
    s.b = wa;
    s.trans_a = false;
    s.trans_b = !ta;
    s.m = SIZE_ONE;  // the batch
    s.n = m;
    s.lda = k;
    s.ldb = A->cols;
    s.ldc = m;
  }
  add_step(lw, s);
  return true;
}

// Materialises `e` into buffer `out` (a fresh temporary when `out` < 0).
static bool materialize(Lowering *lw, ExprId e, int out, bool force_batched) {
  const Expr *x = node(lw, e);
  bool batched = force_batched || is_batched(lw, e);
  if (out < 0) out = add_buf(lw, PB_TEMP, e, batched, -1, NULL);
  lw->plan->node_buf[e] = out;
  if (x->kind == EX_MATMUL) return schedule_matmul(lw, e, out);
  // A transposed or outer-product matrix outside a product is a map over its elements
  // (once per call when it depends on weights alone).
  PlanStepKind kind = x->kind == EX_SUM || x->kind == EX_LSE || x->kind == EX_LSE1 ? PS_REDUCE : PS_MAP;
  add_step(lw, (PlanStep){.kind = kind, .node = e, .out = out, .a = -1, .b = -1,
                          .batched = batched, .w = -1, .g = -1, .z = -1, .act = -1, .lse = -1});
  return true;
}

// Makes `e` usable by a later step: leaves and inline nodes need their dependencies; nodes
// that must live in a buffer get one.
static bool need(Lowering *lw, ExprId e) {
  if (lw->plan->node_buf[e] >= 0) return true;
  const Expr *x = node(lw, e);
  if (x->nkids == 0) {
    if (x->kind == EX_STATE || x->kind == EX_ACT || x->kind == EX_INPUT || x->kind == EX_WEIGHT ||
        x->kind == EX_DIR) {
      sb_printf(lw->err, "internal: leaf of kind %d has no buffer", x->kind);
      return false;
    }
    return true;  // constants, params, dims: inline
  }
  if (x->kind == EX_MATMUL) {
    // Operands are resolved by the product itself (a transpose becomes a flag).
    return materialize(lw, e, -1, false);
  }
  for (uint32_t i = 0; i < x->nkids; i++)
    if (!need(lw, node(lw, e)->kids[i])) return false;
  if (must_materialize(lw, e)) return materialize(lw, e, -1, false);
  return true;
}

// Whether earlier steps may read `e` where it is (its leaf, or inline) without a buffer of
// its own: a constant, param or dim, or a scalar of params and constants alone.
static bool always_inline(Lowering *lw, ExprId e) {
  const Expr *x = node(lw, e);
  return x->nkids == 0 || (x->shape.rank == 0 && !is_batched(lw, e));
}

// Computes output `name` := `expr` into a batched buffer of its own (or, when the value
// already lives in a batched buffer, names that buffer).
//
// An output whose value is already readable where it is (a leaf: a weight, a param, a
// constant, an input or a state; a value computed once per call into a buffer; a scalar of
// the params) is copied (broadcast over the batch) into its output buffer by a map step,
// and its readers keep reading it where it is: the output buffer is written only at that
// step, and a step before it may read the value (dx/dt = -x + b before u = b in eval).
static bool assign(Lowering *lw, const KernelEq *eq) {
  const char *name = eq->name;
  ExprId expr = eq->expr;
  Plan *plan = lw->plan;
  int buf = plan->node_buf[expr];
  const Expr *x = node(lw, expr);
  // A product of weights alone is computed once per call, unbatched: its output buffer is
  // unbatched too (the same for every sample; the engine broadcasts it when reading).
  bool once = x->kind == EX_MATMUL && !is_batched(lw, expr);
  if (buf < 0 || (!plan->bufs[buf].batched && !once)) {
    bool ok = true;
    if (buf >= 0 || always_inline(lw, expr)) {
      // A copy: the step's node keeps its place (plan.h, PS_MAP); a reduction of the weights
      // (sum(b)) gets a buffer of its own first.
      if (!need(lw, expr)) return false;
      buf = add_buf(lw, PB_OUTPUT, expr, true, plan->noutputs, name);
      add_step(lw, (PlanStep){.kind = PS_MAP, .node = expr, .out = buf, .a = -1, .b = -1,
                              .batched = true, .w = -1, .g = -1, .z = -1, .act = -1, .lse = -1});
    } else if (x->kind == EX_MATMUL) {
      buf = add_buf(lw, PB_OUTPUT, expr, !once, plan->noutputs, name);
      plan->node_buf[expr] = buf;
      ok = schedule_matmul(lw, expr, buf);
    } else {
      for (uint32_t i = 0; i < x->nkids && ok; i++) ok = need(lw, node(lw, expr)->kids[i]);
      if (ok) {
        buf = add_buf(lw, PB_OUTPUT, expr, true, plan->noutputs, name);
        ok = materialize(lw, expr, buf, true);
      }
    }
    if (!ok) return false;
  }
  PlanOutput o = {"", eq->what, eq->layer, expr, buf};
  snprintf(o.name, sizeof o.name, "%s", name);
  size_t count = (size_t)plan->noutputs;
  VEC_PUSH(plan->outputs, count, lw->out_cap, o);
  plan->noutputs = (int)count;
  return true;
}

// ---- Fusion of the products around an eliminated layer ----

// The rule of docs/performance.md ("Kernels chosen by size"), measured on the project's
// machine: fused while the batch of inputs g [B, N] takes at most FUSE_BATCH_BYTES (every
// block of rows reads all of it: above, it falls out of L2/L3 and gemm, whose packing then
// pays off, takes over), and always up to FUSE_MIN_BATCH samples; one thread below
// FUSE_ONE_THREAD_BYTES of weight; blocks of rows of about FUSE_BLOCK_BYTES, so that a block
// read for z is still in L2 for u.
enum {
  FUSE_MIN_BATCH = 32,
  FUSE_BATCH_BYTES = 2 << 20,
  FUSE_ONE_THREAD_BYTES = 1 << 20,
  FUSE_BLOCK_BYTES = 128 << 10,
};

const char *plan_kernels_name(PlanKernels kernels) {
  return kernels == PLAN_KERNELS_BLAS ? "blas" : kernels == PLAN_KERNELS_FUSED ? "fused" : "auto";
}

// Every buffer that `e`'s inline part (down to its buffered nodes) reads, marked in `reads`;
// whether that part is elementwise at one index (no transpose, product or reduction).
static bool inline_reads(const Plan *plan, ExprId e, bool root, bool *reads) {
  if (!root && plan->node_buf[e] >= 0) {
    reads[plan->node_buf[e]] = true;
    return true;
  }
  const Expr *x = expr_get(plan->net->pool, e);
  bool elementwise = root || !(x->kind == EX_TRANSPOSE || x->kind == EX_OUTER ||
                               x->kind == EX_MATMUL || x->kind == EX_SUM || x->kind == EX_LSE ||
                               x->kind == EX_LSE1);
  for (uint32_t i = 0; i < x->nkids; i++)
    elementwise &= inline_reads(plan, x->kids[i], false, reads);
  return elementwise;
}

// Every buffer step `s` reads, marked in `reads`; whether it is elementwise at one index.
static bool step_reads(const Plan *plan, const PlanStep *s, bool *reads) {
  int copied = plan_step_copies(plan, s);
  if (copied >= 0) {
    reads[copied] = true;
    return true;
  }
  if (s->kind == PS_MAP || s->kind == PS_REDUCE) return inline_reads(plan, s->node, true, reads);
  if (s->kind == PS_FUSED) reads[s->w] = reads[s->g] = true;
  else reads[s->a] = reads[s->b] = true;
  return false;
}

// A batched product OUT[B, rows] = G[B, cols] @ W' (trans_b) or P[B, rows] @ W, with W a
// weight matrix.
static bool batched_weight_product(const Plan *plan, const PlanStep *s, bool trans_b) {
  if (s->kind != PS_MATMUL || !s->batched || s->per_sample || s->trans_a ||
      s->trans_b != trans_b)
    return false;
  const PlanBuf *w = &plan->bufs[s->b], *a = &plan->bufs[s->a];
  return w->role == PB_WEIGHT && w->rank == 2 && a->batched && size_eq(a->numel, s->k);
}

// Whether `e` is zero by its form (0, 0 broadcast, a product with a factor 0, a sum of zeros).
static bool is_zero(const ExprPool *pool, ExprId e) {
  const Expr *x = expr_get(pool, e);
  switch (x->kind) {
  case EX_CONST: return x->value == 0;
  case EX_BCAST: return is_zero(pool, x->kids[0]);
  case EX_MUL:
    for (uint32_t i = 0; i < x->nkids; i++)
      if (is_zero(pool, x->kids[i])) return true;
    return false;
  case EX_ADD:
    for (uint32_t i = 0; i < x->nkids; i++)
      if (!is_zero(pool, x->kids[i])) return false;
    return true;
  default: return false;
  }
}

// The fused step over the weight W [K, N] (buffer w) from the inputs g: its blocking,
// threads and batch limit by the rule (AUTO) or forced (FUSED); the caller sets what it
// writes. The rule reads the sizes as bound now: a runtime dim's size when planned sets the
// blocking and the batch limit; the weight's bytes are compared when the kernel runs.
static PlanStep fused_step(const Plan *plan, PlanFusedMode mode, int w, int g, PlanSize K,
                           PlanSize N, PlanKernels kernels, int real_size) {
  PlanStep f = {.kind = PS_FUSED, .mode = mode, .w = w, .g = g, .n = N, .k = K, .batched = true,
                .a = -1, .b = -1, .max_batch = INT64_MAX, .threads = 64};
  int64_t n = plan_size(plan, N), bytes = plan_size(plan, K) * n * real_size;
  if (kernels == PLAN_KERNELS_AUTO) {
    f.max_batch = FUSE_BATCH_BYTES / (n * real_size);
    if (f.max_batch < FUSE_MIN_BATCH) f.max_batch = FUSE_MIN_BATCH;
    if (!plan_size_fixed(plan, K) || !plan_size_fixed(plan, N)) {
      f.one_thread_bytes = FUSE_ONE_THREAD_BYTES;
      snprintf(f.rule, sizeof f.rule, "auto: g [B, N] <= 2 MiB, 1 thread while W < 1 MiB");
    } else {
      if (bytes < FUSE_ONE_THREAD_BYTES) f.threads = 1;
      snprintf(f.rule, sizeof f.rule, "auto: g [B, N] <= 2 MiB, W %s 1 MiB",
               f.threads == 1 ? "<" : ">=");
    }
  } else {
    snprintf(f.rule, sizeof f.rule, "--kernels fused");
  }
  int64_t rows = FUSE_BLOCK_BYTES / (n * real_size);
  f.rows = rows < 8 ? 8 : rows > 256 ? 256 : rows - rows % 8;
  if (plan_size_fixed(plan, K) && f.rows > plan_size(plan, K)) f.rows = plan_size(plan, K);  // one block
  return f;
}

// Where a step between the two ends of a fusion goes.
typedef enum { STEP_GONE, STEP_INNER, STEP_BEFORE, STEP_AFTER } StepPlace;

// Replaces steps first..last (both ends gone) with the fused step `f`: first the steps placed
// STEP_BEFORE, then f with its block maps (those placed STEP_INNER, then `extra` when given),
// then the steps placed STEP_AFTER; cls[t - first] places step t. The steps never grow: f
// takes the place of the first end, `extra` that of the last.
static void splice_fused(Plan *plan, int first, int last, const int8_t *cls, PlanStep f,
                         const PlanStep *extra) {
  int n = last - first + 1;
  PlanStep *old = xmalloc((size_t)n * sizeof *old);
  memcpy(old, plan->steps + first, (size_t)n * sizeof *old);
  int at = first;
  for (int t = 1; t < n - 1; t++)
    if (cls[t] == STEP_BEFORE) plan->steps[at++] = old[t];
  int fused = at;
  plan->steps[at++] = f;
  for (int t = 1; t < n - 1; t++)
    if (cls[t] == STEP_INNER) plan->steps[at++] = old[t], plan->steps[fused].ninner++;
  if (extra) plan->steps[at++] = *extra, plan->steps[fused].ninner++;
  for (int t = 1; t < n - 1; t++)
    if (cls[t] == STEP_AFTER) plan->steps[at++] = old[t];
  int rest = plan->nsteps - last - 1;
  memmove(plan->steps + at, plan->steps + last + 1, (size_t)rest * sizeof *old);
  plan->nsteps = at + rest;
  free(old);
}

// Tries to fuse the product at step i with a later product by the same weight; on success
// rewrites plan->steps and returns true.
static bool fuse_at(Lowering *lw, int i, PlanKernels kernels, int real_size) {
  Plan *plan = lw->plan;
  const PlanStep *s1 = &plan->steps[i];
  if (!batched_weight_product(plan, s1, true)) return false;
  int W = s1->b, Z = s1->out;
  PlanSize K = s1->n, N = s1->k;
  int j = -1;
  for (int t = i + 1; t < plan->nsteps && j < 0; t++) {
    const PlanStep *s = &plan->steps[t];
    if (batched_weight_product(plan, s, false) && s->b == W && size_eq(s->k, K) && size_eq(s->n, N))
      j = t;
  }
  if (j < 0) return false;
  int P = plan->steps[j].a;
  // Classify the steps between: inner maps ([B, K] elementwise of z and of what was computed
  // before step i), at most one log-sum-exp of an inner buffer, and after it maps (post)
  // that nothing inner reads.
  int nb = plan->nbufs;
  bool *inner_buf = xcalloc((size_t)nb, sizeof(bool)), *late_buf = xcalloc((size_t)nb, sizeof(bool));
  bool *reads = xcalloc((size_t)nb, sizeof(bool));
  int8_t *cls = xcalloc((size_t)(j - i + 1), 1);  // StepPlace; the log-sum-exp is gone
  inner_buf[Z] = true;
  int lse_step = -1, p_step = -1;
  bool ok = true;
  for (int t = i + 1; t < j && ok; t++) {
    const PlanStep *s = &plan->steps[t];
    const PlanBuf *o = &plan->bufs[s->out];
    memset(reads, 0, (size_t)nb);
    bool elementwise = inline_reads(plan, s->node, true, reads);
    bool reads_late = false, reads_inner = false;
    for (int b = 0; b < nb; b++) {
      reads_late |= reads[b] && late_buf[b];
      reads_inner |= reads[b] && inner_buf[b];
    }
    if (s->kind == PS_MAP && elementwise && !reads_late && o->batched && size_eq(o->numel, K) &&
        o->rank == 1 && lse_step < 0) {
      cls[t - i] = STEP_INNER;
      inner_buf[s->out] = true;
    } else if (s->kind == PS_REDUCE && lse_step < 0 && expr_get(lw->pool, s->node)->kind == EX_LSE &&
               plan->node_buf[expr_get(lw->pool, s->node)->kids[0]] >= 0 &&
               inner_buf[plan->node_buf[expr_get(lw->pool, s->node)->kids[0]]] && o->batched) {
      cls[t - i] = STEP_GONE;
      lse_step = t;
      late_buf[s->out] = true;
    } else if (s->kind == PS_MAP && lse_step >= 0) {
      (void)reads_inner;
      cls[t - i] = STEP_AFTER;
      late_buf[s->out] = true;
      if (s->out == P) p_step = t;
    } else {
      ok = false;
    }
  }
  PlanFusedMode mode = lse_step >= 0 ? FUSED_SOFTMAX : FUSED_ADDITIVE;
  int act = -1, lse = -1;
  if (ok && mode == FUSED_SOFTMAX) {
    // p must be the softmax of the log-sum-exp's argument: exp(a - lse(a)).
    const Expr *l = expr_get(lw->pool, plan->steps[lse_step].node);
    ExprId a = l->kids[0], lnode = plan->steps[lse_step].node;
    act = plan->node_buf[a];
    lse = plan->steps[lse_step].out;
    const Expr *pe = p_step >= 0 ? expr_get(lw->pool, plan->steps[p_step].node) : NULL;
    ok = pe && pe->kind == EX_FN && pe->index == EF_EXP &&
         is_zero(lw->pool, expr_add(lw->pool, expr_sub(lw->pool, pe->kids[0], a), lnode));
  } else if (ok) {
    act = P;
    ok = inner_buf[P] && P != Z;
  }
  if (ok) {
    PlanStep f = fused_step(plan, mode, W, s1->a, K, N, kernels, real_size);
    f.node = plan->steps[j].node;
    f.out = plan->steps[j].out;
    f.z = Z;
    f.act = act;
    f.lse = lse;
    splice_fused(plan, i, j, cls, f, NULL);  // the log-sum-exp and the products: gone
  }
  free(inner_buf);
  free(late_buf);
  free(reads);
  free(cls);
  return ok;
}

// Tries to fuse the product at step i, z = g W' with W [K, N], with the reduction of z that
// follows it when no later product by W does (an energy: -lse(beta W g)/beta or
// -sum F(W g)): one pass over W with an online log-sum-exp (FUSED_LSE) or sum (FUSED_SUM),
// none of the [B, K] buffers needed after the block. The steps between are inner maps
// ([B, K] elementwise of z) or steps that read nothing of z (moved before the fused step);
// a reduction's argument that is computed inline becomes one more inner map. On success
// rewrites plan->steps and returns true.
static bool fuse_reduce_at(Lowering *lw, int i, PlanKernels kernels, int real_size) {
  Plan *plan = lw->plan;
  const PlanStep *s1 = &plan->steps[i];
  // z must be scratch: an output (u_h of the eval kernel) is kept whole for its readers.
  if (!batched_weight_product(plan, s1, true) || plan->bufs[s1->out].role != PB_TEMP) return false;
  int W = s1->b, Z = s1->out;
  PlanSize K = s1->n, N = s1->k;
  for (int t = i + 1; t < plan->nsteps; t++)  // a second product: fuse_at's pattern
    if (plan->steps[t].kind != PS_MAP && plan->steps[t].kind != PS_REDUCE &&
        (plan->steps[t].b == W || plan->steps[t].a == W || plan->steps[t].w == W))
      return false;
  int nb = plan->nbufs;
  bool *inner_buf = xcalloc((size_t)nb + 1, sizeof(bool)), *reads = xcalloc((size_t)nb + 1, sizeof(bool));
  int8_t *cls = xcalloc((size_t)(plan->nsteps - i + 1), 1);  // StepPlace
  inner_buf[Z] = true;
  int r = -1;
  bool ok = true;
  for (int t = i + 1; t < plan->nsteps && ok && r < 0; t++) {
    const PlanStep *s = &plan->steps[t];
    const PlanBuf *o = &plan->bufs[s->out];
    if (s->kind == PS_FUSED) {  // an earlier fusion's step: its inner maps follow it
      ok = false;
      break;
    }
    memset(reads, 0, (size_t)nb);
    bool elementwise = step_reads(plan, s, reads);
    bool reads_inner = false;
    for (int b = 0; b < nb; b++) reads_inner |= reads[b] && inner_buf[b];
    const Expr *x = expr_get(lw->pool, s->node);
    if (!reads_inner) {
      cls[t - i] = STEP_BEFORE;
    } else if (s->kind == PS_MAP && elementwise && o->batched && o->rank == 1 &&
               size_eq(o->numel, K)) {
      cls[t - i] = STEP_INNER;
      inner_buf[s->out] = true;
    } else if (s->kind == PS_REDUCE && (x->kind == EX_LSE || x->kind == EX_SUM) && o->batched &&
               elementwise && size_eq(plan_shape_numel(&expr_get(lw->pool, x->kids[0])->shape), K)) {
      r = t;
    } else {
      ok = false;
    }
  }
  ok = ok && r >= 0;
  ExprId arg = ok ? expr_get(lw->pool, plan->steps[r].node)->kids[0] : 0;
  int act = ok ? plan->node_buf[arg] : -1;
  PlanStep map = {0};
  bool with_map = false;  // the argument computed by a block map of its own
  if (ok && (act < 0 || !inner_buf[act])) {
    // The argument, computed inline: one more block map, written over z (which nothing after
    // the reduction reads), so that the plan keeps its buffers (the header of emit --c
    // describes the object of emit --obj, whose plans may be fused).
    for (int t = r + 1; t < plan->nsteps && ok; t++) {
      memset(reads, 0, (size_t)nb);
      step_reads(plan, &plan->steps[t], reads);
      ok = !reads[Z];
    }
    ok = ok && plan->node_buf[arg] < 0;
    act = Z;
    with_map = true;
    map = (PlanStep){.kind = PS_MAP, .node = arg, .out = Z, .a = -1, .b = -1, .batched = true,
                     .w = -1, .g = -1, .z = -1, .act = -1, .lse = -1};
  }
  if (ok) {
    const Expr *x = expr_get(lw->pool, plan->steps[r].node);
    if (with_map) plan->node_buf[arg] = Z;  // z's values are gone after the block
    PlanStep f = fused_step(plan, x->kind == EX_LSE ? FUSED_LSE : FUSED_SUM, W, s1->a, K, N,
                            kernels, real_size);
    f.node = plan->steps[r].node;
    f.out = f.lse = plan->steps[r].out;
    f.z = Z;
    f.act = act;
    splice_fused(plan, i, r, cls, f, with_map ? &map : NULL);  // the product, the reduction: gone
  }
  free(inner_buf);
  free(reads);
  free(cls);
  return ok;
}

static Plan *plan_schedule(const Network *net, const int64_t *dims, const bool *runtime,
                           KernelKind kind, StrBuf *err);

Plan *plan_build_kernels(const Network *net, const int64_t *dims, const bool *runtime,
                         KernelKind kind, PlanKernels kernels, int real_size, StrBuf *err) {
  Plan *plan = plan_schedule(net, dims, runtime, kind, err);
  if (!plan || kernels == PLAN_KERNELS_BLAS) return plan;
  Lowering lw = {0};
  lw.plan = plan;
  lw.pool = net->pool;
  lw.err = err;
  for (int i = 0; i < plan->nsteps; i++) fuse_at(&lw, i, kernels, real_size);
  for (int i = 0; i < plan->nsteps; i++) fuse_reduce_at(&lw, i, kernels, real_size);
  return plan;
}

static Plan *plan_schedule(const Network *net, const int64_t *dims, const bool *runtime,
                           KernelKind kind, StrBuf *err) {
  Plan *plan = xcalloc(1, sizeof *plan);
  plan->kind = kind;
  plan->net = net;
  plan->dims = dims;
  plan->sizes_buf = -1;
  for (int d = 0; runtime && d < net->ndims; d++)
    if (runtime[d]) plan->runtime = runtime;
  int na;
  KernelEq *as = kernel_equations(net, kind, &na);

  Lowering lw = {0};
  lw.plan = plan;
  lw.pool = net->pool;
  lw.err = err;
  uint32_t nn = expr_count(net->pool);
  plan->nnodes = nn;
  plan->node_buf = xmalloc(nn * sizeof *plan->node_buf);
  for (uint32_t i = 0; i < nn; i++) plan->node_buf[i] = -1;
  lw.uses = xcalloc(nn, sizeof *lw.uses);
  lw.feeds_product = xcalloc(nn, sizeof *lw.feeds_product);
  lw.batched = xcalloc(nn, sizeof *lw.batched);
  uint8_t *seen = xcalloc(nn, 1);
  for (int i = 0; i < na; i++) count_uses(&lw, as[i].expr, seen);
  free(seen);

  // The kernel's inputs: states of the integrated layers, inputs, weights.
  plan->state_buf = xmalloc(((size_t)net->nlayers + 1) * sizeof(int));
  plan->input_buf = xmalloc(((size_t)net->nlayers + 1) * sizeof(int));
  plan->weight_buf = xmalloc(((size_t)net->nweights + 1) * sizeof(int));
  char name[80];
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    plan->state_buf[a] = plan->input_buf[a] = -1;
    // An eliminated layer's state is the output x_h = u_h of the model's kernels; the
    // derivative kernels take it as given, like any state.
    bool given = !l->eliminated || ((int)kind >= (int)KERNEL_MODEL_KINDS && lw.uses[l->state]);
    if (given) {
      snprintf(name, sizeof name, "x_%s", l->name);
      plan->state_buf[a] = plan->node_buf[l->state] = add_buf(&lw, PB_STATE, l->state, true, a, name);
    }
    if (lw.uses[l->dir]) {
      snprintf(name, sizeof name, "d_%s", l->name);
      plan->node_buf[l->dir] = add_buf(&lw, PB_DIRECTION, l->dir, true, a, name);
    }
    if (l->input) {
      snprintf(name, sizeof name, "I_%s", l->name);
      plan->input_buf[a] = plan->node_buf[l->input] = add_buf(&lw, PB_INPUT, l->input, true, a, name);
    }
  }
  for (int w = 0; w < net->nweights; w++) {
    const NetWeight *mw = &net->weights[w];
    ExprShape shape = {(int8_t)mw->rank, {mw->dims[0], mw->dims[1]}};
    ExprId leaf = expr_leaf(net->pool, EX_WEIGHT, w, shape);
    plan->weight_buf[w] = -1;
    if (leaf < nn) plan->weight_buf[w] = plan->node_buf[leaf] = add_buf(&lw, PB_WEIGHT, leaf, false, w, mw->name);
  }
  // The dims' sizes, read by the kernels when some are runtime (no node: numel is unused).
  if (plan->runtime) plan->sizes_buf = add_buf(&lw, PB_SIZES, 0, false, -1, "dims");

  bool ok = true;
  for (int i = 0; i < na && ok; i++) {
    ok = assign(&lw, &as[i]);
    if (!ok) break;
    int buf = plan->outputs[plan->noutputs - 1].buf;
    // An eliminated layer's state is the output x_h; each layer's activation leaf g(A)
    // reads the output g_A.
    if (as[i].what == OUT_X) {
      plan->node_buf[net->layers[as[i].layer].state] = buf;
      plan->state_buf[as[i].layer] = buf;
    }
    if (as[i].what == OUT_G) plan->node_buf[net->layers[as[i].layer].act] = buf;
  }
  free(as);
  free(lw.uses);
  free(lw.feeds_product);
  free(lw.batched);
  if (!ok) {
    plan_free(plan);
    return NULL;
  }
  return plan;
}

Plan *plan_build(const Network *net, const int64_t *dims, KernelKind kind, StrBuf *err) {
  return plan_schedule(net, dims, NULL, kind, err);
}

void plan_free(Plan *plan) {
  if (!plan) return;
  free(plan->bufs);
  free(plan->steps);
  free(plan->outputs);
  free(plan->node_buf);
  free(plan->state_buf);
  free(plan->input_buf);
  free(plan->weight_buf);
  free(plan);
}

int plan_step_copies(const Plan *plan, const PlanStep *s) {
  if (s->kind != PS_MAP) return -1;
  int buf = plan->node_buf[s->node];
  return buf >= 0 && buf != s->out ? buf : -1;
}

int plan_output_buf(const Plan *plan, OutputWhat what, int layer) {
  for (int i = 0; i < plan->noutputs; i++)
    if (plan->outputs[i].what == what && plan->outputs[i].layer == layer)
      return plan->outputs[i].buf;
  return -1;
}

// ---- Printing ----

static const char *buffer_alias(const void *ctx, ExprId e) {
  const Plan *plan = ctx;
  if (e >= plan->nnodes || plan->node_buf[e] < 0) return NULL;
  return plan->bufs[plan->node_buf[e]].name;
}

// A size as text: its value, or a runtime dim's name (its size is read when the kernel runs).
static void size_text(StrBuf *out, const Plan *plan, PlanSize s) {
  if (plan_size_fixed(plan, s)) {
    sb_printf(out, "%lld", (long long)plan_size(plan, s));
    return;
  }
  for (int i = 0, n = 0; i < 2; i++)
    if (s.d[i] != PLAN_ONE) sb_printf(out, "%s%s", n++ ? "*" : "", plan->net->dims[s.d[i]].name);
}

static void shape_text(StrBuf *out, const Plan *plan, const PlanBuf *b) {
  if (b->role == PB_SIZES) {
    sb_printf(out, "[%d] (int64: the runtime dims' sizes)", plan->net->ndims);
    return;
  }
  sb_putc(out, '[');
  bool comma = false;
  if (b->batched) {
    sb_append(out, "B");
    comma = true;
  }
  if (plan_size_many(plan, b->numel) || !b->batched) {
    if (comma) sb_append(out, ", ");
    size_text(out, plan, b->rows);
    if (plan_size_many(plan, b->cols)) {
      sb_append(out, ", ");
      size_text(out, plan, b->cols);
    }
  }
  sb_putc(out, ']');
}

void plan_print(StrBuf *out, const Plan *plan) {
  static const char *const roles[] = {"state", "input", "weight", "output", "temp", "direction", "sizes"};
  ExprNames names = plan->net->names;
  names.alias = buffer_alias;
  names.alias_ctx = plan;
  sb_append(out, "buffers:\n");
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    sb_printf(out, "  %-12s %-7s ", b->name, roles[b->role]);
    shape_text(out, plan, b);
    sb_putc(out, '\n');
  }
  sb_append(out, "steps:\n");
  for (int i = 0; i < plan->nsteps; i++) {
    const PlanStep *s = &plan->steps[i];
    const PlanBuf *o = &plan->bufs[s->out];
    static const char *const kinds[] = {"map", "reduce", "matmul", "fused"};
    sb_printf(out, "  %2d %-6s %s", i + 1, kinds[s->kind], o->name);
    shape_text(out, plan, o);
    sb_append(out, " = ");
    if (s->kind == PS_FUSED) {
      const PlanStep *m = s;
      static const char *const forms[] = {"softmax", "map", "logsumexp", "sum"};
      const char *z = plan->bufs[m->z].name, *act = plan->bufs[m->act].name;
      if (m->mode == FUSED_LSE || m->mode == FUSED_SUM)
        sb_printf(out, "%s(%s), %s = %s @ %s'", forms[m->mode], act, z,
                  plan->bufs[m->g].name, plan->bufs[m->w].name);
      else
        sb_printf(out, "%s' %s(%s = %s @ %s')", plan->bufs[m->w].name,
                  m->mode == FUSED_SOFTMAX ? "softmax" : "p", z, plan->bufs[m->g].name,
                  plan->bufs[m->w].name);
      if (m->mode == FUSED_SOFTMAX)
        sb_printf(out, ", %s = logsumexp(%s)", plan->bufs[m->lse].name, act);
      else if (m->mode == FUSED_ADDITIVE) sb_printf(out, ", p = %s", act);
      sb_printf(out, "    (fused %s-matmul K=", forms[m->mode]);
      size_text(out, plan, m->k);
      sb_append(out, " N=");
      size_text(out, plan, m->n);
      sb_printf(out, ", %lld rows a block, ", (long long)m->rows);
      if (m->threads == 1) sb_append(out, "1 thread");
      else if (m->one_thread_bytes) sb_append(out, "1 thread while W < 1 MiB, else as --threads");
      else sb_append(out, "threads as --threads");
      if (m->max_batch != INT64_MAX) sb_printf(out, ", gemm above B=%lld", (long long)m->max_batch);
      sb_printf(out, "; rule: %s)\n", m->rule);
      for (int t = 1; t <= m->ninner; t++) {
        const PlanStep *in = &plan->steps[i + t];
        sb_printf(out, "  %2d   map  %s", i + t + 1, plan->bufs[in->out].name);
        shape_text(out, plan, &plan->bufs[in->out]);
        sb_append(out, " = ");
        expr_print(out, plan->net->pool, in->node, &names, PRINT_TEXT);
        sb_append(out, "    (each block of the fused step)\n");
      }
      i += m->ninner;
      continue;
    }
    if (s->kind == PS_MATMUL) {
      sb_printf(out, "%s%s @ %s%s", plan->bufs[s->a].name, s->trans_a ? "'" : "",
                plan->bufs[s->b].name, s->trans_b ? "'" : "");
      sb_append(out, s->per_sample ? "    (per sample: gemm M=" : "    (gemm M=");
      if (s->batched) sb_append(out, "B");
      else size_text(out, plan, s->m);
      sb_append(out, " N=");
      size_text(out, plan, s->n);
      sb_append(out, " K=");
      size_text(out, plan, s->k);
      sb_putc(out, ')');
    } else {
      expr_print(out, plan->net->pool, s->node, &names, PRINT_TEXT);
    }
    sb_putc(out, '\n');
  }
  sb_append(out, "outputs:");
  for (int i = 0; i < plan->noutputs; i++)
    sb_printf(out, " %s=%s", plan->outputs[i].name, plan->bufs[plan->outputs[i].buf].name);
  sb_putc(out, '\n');
}

PlanPowForm plan_pow_form(const Expr *exponent) {
  if (exponent->kind != EX_CONST) return POW_CALL;
  static const struct {
    double c;
    PlanPowForm form;
  } forms[] = {
      {2, POW_SQUARE}, {3, POW_CUBE},       {4, POW_FOURTH},      {-1, POW_RECIP},
      {-2, POW_RECIP_SQUARE}, {0.5, POW_SQRT}, {-0.5, POW_RECIP_SQRT},
  };
  for (size_t i = 0; i < ARRAY_LEN(forms); i++)
    if (exponent->value == forms[i].c) return forms[i].form;
  return POW_CALL;
}

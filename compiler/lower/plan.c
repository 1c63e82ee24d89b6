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

static int64_t dim_size(const Lowering *lw, int dim) { return lw->plan->dims[dim]; }

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
  const Expr *x = node(lw, e);
  PlanBuf b = {role, e, batched, 1, x->shape.rank, 1, 1, index, ""};
  if (x->shape.rank >= 1) b.rows = dim_size(lw, x->shape.dims[0]);
  if (x->shape.rank == 2) b.cols = dim_size(lw, x->shape.dims[1]);
  b.numel = b.rows * b.cols;
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
  PlanStep s = {PS_MATMUL, e, out, -1, -1, false, false, 0, 0, 0, 0, 0, 0, false, false, 0, 0, 0, FUSED_SOFTMAX, -1, -1, -1, -1, -1, 0, 0, 0, 0, ""};
  int wa, wb;
  bool ta, tb;
  if (!product_operand(lw, a, &wa, &ta) || !product_operand(lw, b, &wb, &tb)) return false;
  const PlanBuf *A = &lw->plan->bufs[wa], *B = &lw->plan->bufs[wb];
  int64_t m = ta ? A->cols : A->rows, k = ta ? A->rows : A->cols;
  if (A->batched || (node(lw, b)->shape.rank == 2 && B->batched)) {
    // A matrix that depends on the sample: C_s = op(A_s) op(B_s), one product per sample.
    int64_t p = node(lw, b)->shape.rank == 1 ? 1 : tb ? B->rows : B->cols;
    s = (PlanStep){PS_MATMUL, e, out, wa, wb, ta, tb, m, p, k, A->cols,
                   node(lw, b)->shape.rank == 1 ? 1 : B->cols, p, false, true,
                   A->batched ? A->numel : 0, B->batched ? B->numel : 0, m * p, FUSED_SOFTMAX, -1, -1, -1, -1, -1, 0, 0, 0, 0, ""};
  } else if (node(lw, b)->shape.rank == 1 && is_batched(lw, b)) {
    // OUT[batch, m] = X[batch, k] op(A)': one gemm over the whole batch.
    s.batched = true;
    s.a = wb;
    s.b = wa;
    s.trans_a = false;
    s.trans_b = !ta;
    s.m = -1;  // the batch
    s.n = m;
    s.k = k;
    s.lda = k;
    s.ldb = A->cols;
    s.ldc = m;
  } else {
    // C[m, p] = op(A)[m, k] op(B)[k, p] once (p = 1 for a vector).
    int64_t p = node(lw, b)->shape.rank == 1 ? 1 : tb ? B->rows : B->cols;
    s.a = wa;
    s.b = wb;
    s.trans_a = ta;
    s.trans_b = tb;
    s.m = m;
    s.n = p;
    s.k = k;
    s.lda = A->cols;
    s.ldb = node(lw, b)->shape.rank == 1 ? 1 : B->cols;
    s.ldc = p;
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
  add_step(lw, (PlanStep){kind, e, out, -1, -1, false, false, 0, 0, 0, 0, 0, 0, batched, false, 0,
                          0, 0, FUSED_SOFTMAX, -1, -1, -1, -1, -1, 0, 0, 0, 0, ""});
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

// Computes output `name` := `expr` into a batched buffer of its own (or, when the value
// already lives in a buffer, names that buffer).
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
    if (x->kind == EX_MATMUL) {
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

// Whether the inline part of `e` (below its buffered nodes) is elementwise at one index,
// and, when so, every buffer it reads marked in `reads`.
static bool inline_reads(const Plan *plan, ExprId e, bool root, bool *reads) {
  if (!root && plan->node_buf[e] >= 0) {
    reads[plan->node_buf[e]] = true;
    return true;
  }
  const Expr *x = expr_get(plan->net->pool, e);
  if (!root && (x->kind == EX_TRANSPOSE || x->kind == EX_OUTER || x->kind == EX_MATMUL ||
                x->kind == EX_SUM || x->kind == EX_LSE || x->kind == EX_LSE1))
    return false;
  for (uint32_t i = 0; i < x->nkids; i++)
    if (!inline_reads(plan, x->kids[i], false, reads)) return false;
  return true;
}

// A batched product OUT[B, rows] = G[B, cols] @ W' (trans_b) or P[B, rows] @ W, with W a
// weight matrix.
static bool batched_weight_product(const Plan *plan, const PlanStep *s, bool trans_b) {
  if (s->kind != PS_MATMUL || !s->batched || s->per_sample || s->m >= 0 || s->trans_a ||
      s->trans_b != trans_b)
    return false;
  const PlanBuf *w = &plan->bufs[s->b], *a = &plan->bufs[s->a];
  return w->role == PB_WEIGHT && w->rank == 2 && a->batched && a->numel == s->k;
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

// Tries to fuse the product at step i with a later product by the same weight; on success
// rewrites plan->steps and returns true.
static bool fuse_at(Lowering *lw, int i, PlanKernels kernels, int real_size) {
  Plan *plan = lw->plan;
  const PlanStep *s1 = &plan->steps[i];
  if (!batched_weight_product(plan, s1, true)) return false;
  int W = s1->b, Z = s1->out;
  int64_t K = s1->n, N = s1->k;
  int j = -1;
  for (int t = i + 1; t < plan->nsteps && j < 0; t++) {
    const PlanStep *s = &plan->steps[t];
    if (batched_weight_product(plan, s, false) && s->b == W && s->k == K && s->n == N) j = t;
  }
  if (j < 0) return false;
  int P = plan->steps[j].a;
  // Classify the steps between: inner maps ([B, K] elementwise of z and of what was computed
  // before step i), at most one log-sum-exp of an inner buffer, and after it maps (post)
  // that nothing inner reads.
  int nb = plan->nbufs;
  bool *inner_buf = xcalloc((size_t)nb, sizeof(bool)), *late_buf = xcalloc((size_t)nb, sizeof(bool));
  bool *reads = xcalloc((size_t)nb, sizeof(bool));
  int8_t *cls = xcalloc((size_t)(j - i + 1), 1);  // 1 inner, 2 lse, 3 post
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
    if (s->kind == PS_MAP && elementwise && !reads_late && o->batched && o->numel == K &&
        o->rank == 1 && lse_step < 0) {
      cls[t - i] = 1;
      inner_buf[s->out] = true;
    } else if (s->kind == PS_REDUCE && lse_step < 0 && expr_get(lw->pool, s->node)->kind == EX_LSE &&
               plan->node_buf[expr_get(lw->pool, s->node)->kids[0]] >= 0 &&
               inner_buf[plan->node_buf[expr_get(lw->pool, s->node)->kids[0]]] && o->batched) {
      cls[t - i] = 2;
      lse_step = t;
      late_buf[s->out] = true;
    } else if (s->kind == PS_MAP && lse_step >= 0) {
      (void)reads_inner;
      cls[t - i] = 3;
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
  int64_t max_batch = INT64_MAX;
  int threads = 64;
  int64_t bytes = K * N * real_size;
  char rule[96];
  if (ok) {
    if (kernels == PLAN_KERNELS_AUTO) {
      max_batch = FUSE_BATCH_BYTES / (N * real_size);
      if (max_batch < FUSE_MIN_BATCH) max_batch = FUSE_MIN_BATCH;
      if (bytes < FUSE_ONE_THREAD_BYTES) threads = 1;
      snprintf(rule, sizeof rule, "auto: g [B, N] <= 2 MiB, W %s 1 MiB",
               threads == 1 ? "<" : ">=");
    } else {
      snprintf(rule, sizeof rule, "--kernels fused");
    }
  }
  if (ok) {
    PlanStep f = {0};
    f.kind = PS_FUSED;
    f.node = plan->steps[j].node;
    f.out = plan->steps[j].out;
    f.mode = mode;
    f.w = W;
    f.g = s1->a;
    f.z = Z;
    f.act = act;
    f.lse = lse;
    f.n = N;
    f.k = K;
    f.batched = true;
    int64_t rows = FUSE_BLOCK_BYTES / (N * real_size);
    f.rows = rows < 8 ? 8 : rows > 256 ? 256 : rows - rows % 8;
    if (f.rows > K) f.rows = K;  // one block
    f.max_batch = max_batch;
    f.threads = threads;
    snprintf(f.rule, sizeof f.rule, "%s", rule);
    int n = j - i + 1;
    PlanStep *old = xmalloc((size_t)n * sizeof *old);
    memcpy(old, plan->steps + i, (size_t)n * sizeof *old);
    int at = i;
    plan->steps[at++] = f;
    for (int t = 1; t < n - 1; t++)
      if (cls[t] == 1) plan->steps[at++] = old[t], plan->steps[i].ninner++;
    for (int t = 1; t < n - 1; t++)
      if (cls[t] == 3) plan->steps[at++] = old[t];
    // The log-sum-exp step and the two products are gone: the fused step writes them.
    memmove(plan->steps + at, plan->steps + j + 1, (size_t)(plan->nsteps - j - 1) * sizeof *old);
    plan->nsteps = at + (plan->nsteps - j - 1);
    free(old);
  }
  free(inner_buf);
  free(late_buf);
  free(reads);
  free(cls);
  return ok;
}

Plan *plan_build_kernels(const Network *net, const int64_t *dims, KernelKind kind,
                         PlanKernels kernels, int real_size, StrBuf *err) {
  Plan *plan = plan_build(net, dims, kind, err);
  if (!plan || kernels == PLAN_KERNELS_BLAS) return plan;
  Lowering lw = {0};
  lw.plan = plan;
  lw.pool = net->pool;
  lw.err = err;
  for (int i = 0; i < plan->nsteps; i++) fuse_at(&lw, i, kernels, real_size);
  return plan;
}

Plan *plan_build(const Network *net, const int64_t *dims, KernelKind kind, StrBuf *err) {
  Plan *plan = xcalloc(1, sizeof *plan);
  plan->kind = kind;
  plan->net = net;
  plan->dims = dims;
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

static void shape_text(StrBuf *out, const PlanBuf *b) {
  sb_putc(out, '[');
  bool comma = false;
  if (b->batched) {
    sb_append(out, "B");
    comma = true;
  }
  if (b->numel > 1 || !b->batched) {
    if (comma) sb_append(out, ", ");
    if (b->cols > 1) sb_printf(out, "%lld, %lld", (long long)b->rows, (long long)b->cols);
    else sb_printf(out, "%lld", (long long)b->rows);
  }
  sb_putc(out, ']');
}

void plan_print(StrBuf *out, const Plan *plan) {
  static const char *const roles[] = {"state", "input", "weight", "output", "temp", "direction"};
  ExprNames names = plan->net->names;
  names.alias = buffer_alias;
  names.alias_ctx = plan;
  sb_append(out, "buffers:\n");
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    sb_printf(out, "  %-12s %-7s ", b->name, roles[b->role]);
    shape_text(out, b);
    sb_putc(out, '\n');
  }
  sb_append(out, "steps:\n");
  for (int i = 0; i < plan->nsteps; i++) {
    const PlanStep *s = &plan->steps[i];
    const PlanBuf *o = &plan->bufs[s->out];
    static const char *const kinds[] = {"map", "reduce", "matmul", "fused"};
    sb_printf(out, "  %2d %-6s %s", i + 1, kinds[s->kind], o->name);
    shape_text(out, o);
    sb_append(out, " = ");
    if (s->kind == PS_FUSED) {
      const PlanStep *m = s;
      sb_printf(out, "%s' %s(%s = %s @ %s')", plan->bufs[m->w].name,
                m->mode == FUSED_SOFTMAX ? "softmax" : "p", plan->bufs[m->z].name,
                plan->bufs[m->g].name, plan->bufs[m->w].name);
      if (m->mode == FUSED_SOFTMAX)
        sb_printf(out, ", %s = logsumexp(%s)", plan->bufs[m->lse].name, plan->bufs[m->act].name);
      else sb_printf(out, ", p = %s", plan->bufs[m->act].name);
      sb_printf(out, "    (fused %s-matmul K=%lld N=%lld, %lld rows a block, ",
                m->mode == FUSED_SOFTMAX ? "softmax" : "map", (long long)m->k, (long long)m->n,
                (long long)m->rows);
      if (m->threads == 1) sb_append(out, "1 thread");
      else sb_append(out, "threads as --threads");
      if (m->max_batch != INT64_MAX) sb_printf(out, ", gemm above B=%lld", (long long)m->max_batch);
      sb_printf(out, "; rule: %s)\n", m->rule);
      for (int t = 1; t <= m->ninner; t++) {
        const PlanStep *in = &plan->steps[i + t];
        sb_printf(out, "  %2d   map  %s", i + t + 1, plan->bufs[in->out].name);
        shape_text(out, &plan->bufs[in->out]);
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
      if (s->per_sample)
        sb_printf(out, "    (per sample: gemm M=%lld N=%lld K=%lld)", (long long)s->m,
                  (long long)s->n, (long long)s->k);
      else if (s->m < 0) sb_printf(out, "    (gemm M=B N=%lld K=%lld)", (long long)s->n, (long long)s->k);
      else sb_printf(out, "    (gemm M=%lld N=%lld K=%lld)", (long long)s->m, (long long)s->n, (long long)s->k);
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

// Emitting kernel plans as portable C (see emit_c.h).
//
// Each function is written in three parts, assembled at the end: the buffer pointers and
// params it uses (known only once the steps are written, so that nothing is declared
// unused), the scalars of params and constants (hoisted: computed once per call), and the
// steps. Every value computed inline is one `const` local, defined once per loop body and
// reused there, as codegen.c reuses a value within a body.
#include "backend/emit_c.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

// The header's macro prefix of each kernel kind.
static const char *const kernel_prefixes[KERNEL_KINDS] = {"DAMC_RHS", "DAMC_EVAL", "DAMC_HVP",
                                                          "DAMC_JVP", "DAMC_LAGR", "DAMC_FLIP",
                                                          "DAMC_ENERGY"};
static const char *const role_names[] = {"DAMC_STATE", "DAMC_INPUT", "DAMC_WEIGHT",
                                         "DAMC_OUTPUT", "DAMC_TEMP", "DAMC_DIRECTION"};

// The elementwise functions, as the interpreter defines them (sym/builtins.def): each used
// one becomes a static function of the generated file, with its body written verbatim.
static const char *const elem_bodies[EF_COUNT] = {
#define ELEM(id, name, body) [EF_##id] = #body,
#define FN(id, name, kind, arity)
#include "sym/builtins.def"
#undef ELEM
#undef FN
};

// ---- One function ----

typedef struct {
  const Plan *plan;
  const ExprPool *pool;
  bool f64;
  const char *real;     // "float" or "double"
  const char *suffix;   // libm's: "f" or ""
  StrBuf pre, body;     // the hoisted scalars; the steps
  int *local;           // per node: the number of its local, valid where local_gen matches
  uint32_t *local_gen;  // per node: the body that defined it (1: hoisted, for the call)
  uint32_t gen;         // the current loop body (from 2)
  uint32_t last_gen;    // the last body number handed out
  const char *index;    // the element index in the current body ("i", or a permuted one)
  int nindices;
  int8_t *invariant;    // per node: 1 params and constants only, -1 not, 0 not known yet
  int nlocals;
  int depth;            // loops open around the current line
  bool in_batch, in_elems;  // the sample index b, the element index i are defined
  bool *buf_used, *param_used;
  bool batch_used;
  unsigned *helpers;    // bit fn: the helper of ElemFn fn is used (for the whole file)
  StrBuf *err;
} Ec;

static const Expr *node(const Ec *ec, ExprId e) { return expr_get(ec->pool, e); }

__attribute__((format(printf, 3, 4))) static void line(StrBuf *out, int depth, const char *fmt,
                                                       ...) {
  for (int i = 0; i < depth; i++) sb_append(out, "  ");
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(out, fmt, ap);
  va_end(ap);
  sb_putc(out, '\n');
}

// A C floating literal of `v` in the kernels' type (rounded to float for float32 as
// codegen.c's constants are), in the shortest form that reads back to the same value.
static void literal(StrBuf *out, double v, bool f64) {
  if (!f64) v = (float)v;
  if (isnan(v)) {
    sb_append(out, "NAN");
    return;
  }
  if (isinf(v)) {
    sb_append(out, v < 0 ? "-INFINITY" : "INFINITY");
    return;
  }
  StrBuf text = {0};
  if (f64 || (v == floor(v) && fabs(v) < 1e15)) {
    sb_double(&text, v);
  } else {
    char buf[40];
    for (int prec = 1; prec <= 9; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, v);
      if (strtof(buf, NULL) == (float)v) break;
    }
    sb_append(&text, buf);
  }
  sb_append(out, sb_str(&text));
  if (!strpbrk(sb_str(&text), ".e")) sb_append(out, ".0");
  if (!f64) sb_putc(out, 'f');
  sb_free(&text);
}

// Loads and stores: buffer `buf` at sample b and element i, as codegen.c's buffer_index.
static void element(Ec *ec, int buf, StrBuf *out) {
  const PlanBuf *pb = &ec->plan->bufs[buf];
  int64_t numel = plan_size(ec->plan, pb->numel);
  ec->buf_used[buf] = true;
  sb_printf(out, "buf_%s[", pb->name);
  if (pb->batched) {
    DAMC_ASSERT(ec->in_batch);
    if (numel == 1) sb_append(out, "b");
    else sb_printf(out, "b * %lld + ", (long long)numel);
  }
  if (numel > 1) {
    DAMC_ASSERT(ec->in_elems);
    sb_append(out, ec->index);
  } else if (!pb->batched) {
    sb_append(out, "0");
  }
  sb_putc(out, ']');
}

static bool is_invariant(Ec *ec, ExprId e) {
  if (ec->invariant[e]) return ec->invariant[e] > 0;
  const Expr *x = node(ec, e);
  bool inv = ec->plan->node_buf[e] < 0;
  if (inv) {
    switch (x->kind) {
    case EX_CONST:
    case EX_PARAM:
    case EX_DIM: break;
    case EX_ADD:
    case EX_MUL:
    case EX_POW:
    case EX_FN:
    case EX_BCAST:
      for (uint32_t k = 0; k < x->nkids && inv; k++) inv = is_invariant(ec, x->kids[k]);
      break;
    default: inv = false;
    }
  }
  ec->invariant[e] = inv ? 1 : -1;
  return inv;
}

static void value(Ec *ec, ExprId e, StrBuf *out);

static void power(Ec *ec, const Expr *x, StrBuf *out) {
  StrBuf base = {0};
  value(ec, x->kids[0], &base);
  const char *b = sb_str(&base), *sqrt_ = ec->f64 ? "sqrt" : "sqrtf";
  StrBuf one = {0};
  literal(&one, 1, ec->f64);
  switch (plan_pow_form(node(ec, x->kids[1]))) {
  case POW_SQUARE: sb_printf(out, "%s * %s", b, b); break;
  case POW_CUBE: sb_printf(out, "%s * %s * %s", b, b, b); break;
  case POW_FOURTH: sb_printf(out, "(%s * %s) * (%s * %s)", b, b, b, b); break;
  case POW_RECIP: sb_printf(out, "%s / %s", sb_str(&one), b); break;
  case POW_RECIP_SQUARE: sb_printf(out, "%s / (%s * %s)", sb_str(&one), b, b); break;
  case POW_SQRT: sb_printf(out, "%s(%s)", sqrt_, b); break;
  case POW_RECIP_SQRT: sb_printf(out, "%s / %s(%s)", sb_str(&one), sqrt_, b); break;
  case POW_CALL:
    sb_printf(out, "damrt_kernel_pow_%s(%s, ", ec->f64 ? "f64" : "f32", b);
    value(ec, x->kids[1], out);
    sb_putc(out, ')');
    break;
  }
  sb_free(&base);
  sb_free(&one);
}

// The expression of node `e` (not in a buffer) in terms of its operands' values.
static void compute(Ec *ec, ExprId e, StrBuf *out) {
  const Expr *x = node(ec, e);
  switch (x->kind) {
  case EX_CONST: literal(out, x->value, ec->f64); break;
  case EX_DIM: literal(out, (double)ec->plan->dims[x->index], ec->f64); break;
  case EX_PARAM:
    ec->param_used[x->index] = true;
    sb_printf(out, "p_%s", ec->plan->net->params[x->index].name);
    break;
  case EX_ADD:
  case EX_MUL: {
    // -1 * y * ... is written -y * ...: the same value (negation is exact), and readable.
    uint32_t first = 0;
    if (x->kind == EX_MUL && x->nkids >= 2 && expr_is_const(ec->pool, x->kids[0], -1) &&
        node(ec, x->kids[1])->kind != EX_CONST) {
      sb_putc(out, '-');
      first = 1;
    }
    for (uint32_t k = first; k < x->nkids; k++) {
      if (k > first) sb_append(out, x->kind == EX_ADD ? " + " : " * ");
      value(ec, node(ec, e)->kids[k], out);
    }
    break;
  }
  case EX_POW: power(ec, x, out); break;
  case EX_FN: {
    ElemFn fn = (ElemFn)x->index;
    *ec->helpers |= 1u << fn;
    sb_printf(out, "elem_%s(", elem_fn_name[fn]);
    value(ec, x->kids[0], out);
    sb_putc(out, ')');
    break;
  }
  case EX_BCAST: value(ec, x->kids[0], out); break;
  case EX_TRANSPOSE:
  case EX_OUTER: {
    // As codegen.c: element (r, c) of an R x C matrix; A' reads A at (c, r), a b' is
    // a[r] b[c], each operand in a body of its own at its own index.
    long long R = (long long)ec->plan->dims[x->shape.dims[0]];
    long long C = (long long)ec->plan->dims[x->shape.dims[1]];
    const char *outer_index = ec->index;
    uint32_t outer_gen = ec->gen;
    char idx[2][32];
    int n = ec->nindices;
    ec->nindices += 2;
    snprintf(idx[0], sizeof idx[0], "j%d", n);
    snprintf(idx[1], sizeof idx[1], "j%d", n + 1);
    const char *at = ec->in_elems ? outer_index : "0";
    if (x->kind == EX_TRANSPOSE) {
      line(&ec->body, ec->depth + 1, "const int64_t %s = (%s %% %lld) * %lld + %s / %lld;", idx[0],
           at, C, R, at, C);
      ec->index = idx[0];
      ec->gen = ++ec->last_gen;
      value(ec, x->kids[0], out);
    } else {
      line(&ec->body, ec->depth + 1, "const int64_t %s = %s / %lld, %s = %s %% %lld;", idx[0], at,
           C, idx[1], at, C);
      ec->index = idx[0];
      ec->gen = ++ec->last_gen;
      value(ec, x->kids[0], out);
      sb_append(out, " * ");
      ec->index = idx[1];
      ec->gen = ++ec->last_gen;
      value(ec, node(ec, e)->kids[1], out);
    }
    ec->index = outer_index;
    ec->gen = outer_gen;
    break;
  }
  default:
    sb_printf(ec->err, "emit_c: node of kind %d is not in a buffer", x->kind);
    sb_append(out, "0");
  }
}

// The value of `e` in the current loop body: an element of its buffer, a leaf, or the local
// that holds it (defined at its first use in the body, or once per call when it depends on
// params and constants only).
static void value(Ec *ec, ExprId e, StrBuf *out) {
  int buf = ec->plan->node_buf[e];
  const Expr *x = node(ec, e);
  if (buf >= 0) {
    element(ec, buf, out);
    return;
  }
  if (x->nkids == 0 || x->kind == EX_BCAST) {
    compute(ec, e, out);
    return;
  }
  bool inv = is_invariant(ec, e);
  uint32_t gen = inv ? 1 : ec->gen;
  if (ec->local_gen[e] != gen) {
    StrBuf expr = {0};
    compute(ec, e, &expr);
    ec->local[e] = ec->nlocals++;
    ec->local_gen[e] = gen;
    line(inv ? &ec->pre : &ec->body, inv ? 1 : ec->depth + 1, "const %s %c%d = %s;", ec->real,
         inv ? 'c' : 'v', ec->local[e], sb_str(&expr));
    sb_free(&expr);
  }
  sb_printf(out, "%c%d", inv ? 'c' : 'v', ec->local[e]);
}

// ---- Steps ----

static void open_loop(Ec *ec, const char *var, const char *bound) {
  line(&ec->body, ec->depth + 1, "for (int64_t %s = 0; %s < %s; %s++) {", var, var, bound, var);
  ec->depth++;
  ec->gen = ++ec->last_gen;
}

static void close_loop(Ec *ec) {
  ec->depth--;
  line(&ec->body, ec->depth + 1, "}");
}

// Opens the loop over samples when `batched`, else a block (for the step's own locals).
static void open_batch(Ec *ec, bool batched) {
  if (batched) {
    open_loop(ec, "b", "batch");
    ec->batch_used = ec->in_batch = true;
  } else {
    line(&ec->body, ec->depth + 1, "{");
    ec->depth++;
  }
}

static void close_batch(Ec *ec) {
  close_loop(ec);
  ec->in_batch = false;
}

static void open_elems(Ec *ec, int64_t n) {
  char bound[32];
  snprintf(bound, sizeof bound, "%lld", (long long)n);
  open_loop(ec, "i", bound);
  ec->in_elems = true;
}

static void close_elems(Ec *ec) {
  close_loop(ec);
  ec->in_elems = false;
}

static void emit_map(Ec *ec, const PlanStep *s) {
  const PlanBuf *out = &ec->plan->bufs[s->out];
  int64_t numel = plan_size(ec->plan, out->numel);
  open_batch(ec, out->batched);
  if (numel > 1) open_elems(ec, numel);
  ec->gen = ++ec->last_gen;
  StrBuf target = {0}, expr = {0};
  element(ec, s->out, &target);
  // A copy (plan_step_copies) reads the node's buffer, broadcast when it is not batched.
  int from = plan_step_copies(ec->plan, s);
  if (from >= 0) element(ec, from, &expr);
  else compute(ec, s->node, &expr);
  line(&ec->body, ec->depth + 1, "%s = %s;", sb_str(&target), sb_str(&expr));
  sb_free(&target);
  sb_free(&expr);
  if (numel > 1) close_elems(ec);
  close_batch(ec);
}

// One pass over the elements of `arg` at the current sample: `acc` op= f(v), where f(v) is
// v, or exp(v - shift) when `shift` is given (log-sum-exp), and op is + or max.
static void reduce_pass(Ec *ec, ExprId arg, const char *acc, bool max, const char *shift) {
  open_elems(ec, plan_size(ec->plan, plan_shape_numel(&node(ec, arg)->shape)));
  StrBuf v = {0};
  value(ec, arg, &v);
  int d = ec->depth + 1;
  if (shift) line(&ec->body, d, "%s += exp%s(%s - %s);", acc, ec->suffix, sb_str(&v), shift);
  else if (max) line(&ec->body, d, "%s = fmax%s(%s, %s);", acc, ec->suffix, acc, sb_str(&v));
  else line(&ec->body, d, "%s += %s;", acc, sb_str(&v));
  sb_free(&v);
  close_elems(ec);
}

static void emit_reduce(Ec *ec, const PlanStep *s) {
  const PlanBuf *out = &ec->plan->bufs[s->out];
  const Expr *x = node(ec, s->node);
  ExprId arg = x->kids[0];
  StrBuf target = {0}, zero = {0};
  literal(&zero, 0, ec->f64);
  open_batch(ec, out->batched);
  int d = ec->depth + 1;
  element(ec, s->out, &target);
  if (x->kind == EX_SUM) {
    line(&ec->body, d, "%s sum = %s;", ec->real, sb_str(&zero));
    reduce_pass(ec, arg, "sum", false, NULL);
    line(&ec->body, d, "%s = sum;", sb_str(&target));
  } else {
    // log-sum-exp with the max shift; LSE1 has one more logit, fixed at 0.
    line(&ec->body, d, "%s m = -INFINITY;", ec->real);
    reduce_pass(ec, arg, "m", true, NULL);
    if (x->kind == EX_LSE1) {
      line(&ec->body, d, "m = fmax%s(m, %s);", ec->suffix, sb_str(&zero));
      line(&ec->body, d, "%s sum = exp%s(-m);", ec->real, ec->suffix);
    } else {
      line(&ec->body, d, "%s sum = %s;", ec->real, sb_str(&zero));
    }
    reduce_pass(ec, arg, "sum", false, "m");
    // All logits -inf (or one +inf): the answer is the max itself.
    line(&ec->body, d, "%s = fabs%s(m) == INFINITY ? m : m + log%s(sum);", sb_str(&target),
         ec->suffix, ec->suffix);
  }
  close_batch(ec);
  sb_free(&target);
  sb_free(&zero);
}

static void emit_matmul(Ec *ec, const PlanStep *s) {
  const Plan *plan = ec->plan;
  char m[32];
  if (s->batched) ec->batch_used = true;
  snprintf(m, sizeof m, s->batched ? "batch" : "%lld", (long long)plan_size(plan, s->m));
  ec->buf_used[s->a] = ec->buf_used[s->b] = ec->buf_used[s->out] = true;
  // A matrix that depends on the sample: one product per sample (as codegen.c).
  char off[3][48] = {"", "", ""};
  PlanSize strides[3] = {s->stride_a, s->stride_b, s->stride_c};
  bool shared[3] = {s->shared_a, s->shared_b, false};
  for (int i = 0; i < 3 && s->per_sample; i++)
    if (!shared[i])
      snprintf(off[i], sizeof off[i], " + b * %lld", (long long)plan_size(plan, strides[i]));
  if (s->per_sample) {
    ec->batch_used = true;
    line(&ec->body, 1, "for (int64_t b = 0; b < batch; b++)");
  }
  line(&ec->body, s->per_sample ? 2 : 1,
       "damrt_kernel_gemm_%s(%d, %d, %s, %lld, %lld, buf_%s%s, %lld, buf_%s%s, %lld, "
       "buf_%s%s, %lld);", ec->f64 ? "f64" : "f32", s->trans_a, s->trans_b, m,
       (long long)plan_size(plan, s->n), (long long)plan_size(plan, s->k), plan->bufs[s->a].name,
       off[0], (long long)plan_size(plan, s->lda), plan->bufs[s->b].name, off[1],
       (long long)plan_size(plan, s->ldb), plan->bufs[s->out].name, off[2],
       (long long)plan_size(plan, s->ldc));
}

// ---- Describing buffers ----

// "[B, 784]", "[6, 784]", "[B]": the buffer's shape, B the batch.
static void shape_text(StrBuf *out, const Plan *plan, const PlanBuf *b) {
  int64_t numel = plan_size(plan, b->numel), cols = plan_size(plan, b->cols);
  sb_putc(out, '[');
  if (b->batched) sb_append(out, numel > 1 ? "B, " : "B");
  if (numel > 1 || !b->batched) {
    sb_printf(out, "%lld", (long long)plan_size(plan, b->rows));
    if (cols > 1) sb_printf(out, ", %lld", (long long)cols);
  }
  sb_putc(out, ']');
}

// "state   [B, 784]  x of layer v": the buffer's role, shape and what it holds.
static void describe_buffer(StrBuf *out, const Plan *plan, int buf) {
  static const char *const roles[] = {"state", "input", "weight", "output", "temp", "direction"};
  const PlanBuf *b = &plan->bufs[buf];
  const Network *net = plan->net;
  size_t start = out->len;
  sb_printf(out, "%-7s ", roles[b->role]);
  shape_text(out, plan, b);
  while (out->len < start + 20) sb_putc(out, ' ');
  if (b->role == PB_STATE) sb_printf(out, "x of layer %s", net->layers[b->index].name);
  else if (b->role == PB_INPUT) sb_printf(out, "I of layer %s", net->layers[b->index].name);
  else if (b->role == PB_WEIGHT) {
    const NetWeight *w = &net->weights[b->index];
    sb_printf(out, "%s[", w->name);
    for (int k = 0; k < w->rank; k++) {
      const NetDim *d = &net->dims[w->dims[k]];
      if (k) sb_append(out, ", ");
      if (d->name) sb_append(out, d->name);
      else sb_printf(out, "%lld", (long long)plan->dims[w->dims[k]]);
    }
    sb_append(out, w->rank == 2 ? "], row-major" : "]");
  } else if (b->role == PB_OUTPUT) sb_append(out, "written by the kernel");
  else sb_append(out, "scratch, written and read by the kernel");
  while (out->len && out->data[out->len - 1] == ' ') out->data[--out->len] = '\0';
}

// ---- Files ----

static void write_function(const Plan *plan, bool f64, unsigned *helpers, StrBuf *out,
                           StrBuf *err) {
  uint32_t nn = expr_count(plan->net->pool);
  const Network *net = plan->net;
  KernelKind kind = plan->kind;
  Ec ec = {0};
  ec.plan = plan;
  ec.pool = plan->net->pool;
  ec.f64 = f64;
  ec.real = f64 ? "double" : "float";
  ec.suffix = f64 ? "" : "f";
  ec.local = xcalloc(nn, sizeof *ec.local);
  ec.local_gen = xcalloc(nn, sizeof *ec.local_gen);
  ec.invariant = xcalloc(nn, sizeof *ec.invariant);
  ec.gen = ec.last_gen = 2;
  ec.index = "i";
  ec.buf_used = xcalloc((size_t)plan->nbufs + 1, sizeof *ec.buf_used);
  ec.param_used = xcalloc((size_t)net->nparams + 1, sizeof *ec.param_used);
  ec.helpers = helpers;
  ec.err = err;

  // Each step is commented with its line of the printed plan (damc emit --plan).
  StrBuf printed = {0};
  plan_print(&printed, plan);
  const char *step_line = strstr(sb_str(&printed), "\nsteps:\n");
  DAMC_ASSERT(step_line);
  step_line += strlen("\nsteps:\n");
  for (int i = 0; i < plan->nsteps; i++) {
    const PlanStep *s = &plan->steps[i];
    while (*step_line == ' ') step_line++;
    const char *eol = strchr(step_line, '\n');
    DAMC_ASSERT(eol);
    if (i) sb_putc(&ec.body, '\n');
    line(&ec.body, 1, "// %.*s", (int)(eol - step_line), step_line);
    step_line = eol + 1;
    if (s->kind == PS_MAP) emit_map(&ec, s);
    else if (s->kind == PS_REDUCE) emit_reduce(&ec, s);
    else emit_matmul(&ec, s);
  }
  sb_free(&printed);

  sb_printf(out, "\n// %s: %s.\n", kernel_name(kind), kernel_summary(kind));
  sb_printf(out, "void %s(void **bufs, const double *params, int64_t batch) {\n",
            kernel_name(kind));
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    if (!ec.buf_used[i]) continue;
    bool in = b->role == PB_STATE || b->role == PB_INPUT || b->role == PB_WEIGHT ||
              b->role == PB_DIRECTION;
    StrBuf what = {0}, decl = {0};
    describe_buffer(&what, plan, i);
    sb_printf(&decl, "%s%s *restrict buf_%s = bufs[%d];", in ? "const " : "", ec.real, b->name, i);
    line(out, 1, "%-44s // %s", sb_str(&decl), sb_str(&what));
    sb_free(&what);
    sb_free(&decl);
  }
  bool any_param = false;
  for (int k = 0; k < net->nparams; k++) {
    if (!ec.param_used[k]) continue;
    any_param = true;
    line(out, 1, "const %s p_%s = %sparams[%d];", ec.real, net->params[k].name,
         f64 ? "" : "(float)", k);
  }
  if (!any_param) line(out, 1, "(void)params;");
  if (!ec.batch_used) line(out, 1, "(void)batch;");
  sb_append(out, sb_str(&ec.pre));
  sb_putc(out, '\n');
  sb_append(out, sb_str(&ec.body));
  sb_append(out, "}\n");

  sb_free(&ec.pre);
  sb_free(&ec.body);
  free(ec.local);
  free(ec.local_gen);
  free(ec.invariant);
  free(ec.buf_used);
  free(ec.param_used);
}

static void write_source(const Plan *const *plans, int nplans, bool f64, const char *model_path,
                         const char *c_name, const char *h_name, StrBuf *out, StrBuf *err) {
  const Network *net = plans[0]->net;
  unsigned helpers = 0;
  StrBuf fns = {0};
  for (int k = 0; k < nplans; k++) write_function(plans[k], f64, &helpers, &fns, err);

  sb_printf(out, "// %s: the kernels of model '%s' (%s) in %s.\n", c_name, net->name, model_path,
            f64 ? "float64" : "float32");
  sb_printf(out, "// Generated by damc %s (damc emit --c); do not edit. %s describes the "
            "buffers and params.\n", DAMC_VERSION, h_name ? h_name : "Its header above");
  if (h_name) sb_printf(out, "#include \"%s\"\n\n", h_name);
  sb_append(out, "#include <math.h>\n#include <stdint.h>\n\n#include \"damrt_kernel.h\"\n");
  if (helpers) {
    sb_append(out, "\n// Elementwise functions, as damc's interpreter defines them (F: libm's "
                   "function in this\n// precision).\n");
    sb_printf(out, "#define F(fn) fn%s\n#define LN2 ((%s)0.69314718055994530942)\n",
              f64 ? "" : "##f", f64 ? "double" : "float");
  }
  for (int fn = 0; fn < EF_COUNT; fn++) {
    if (!(helpers & (1u << fn))) continue;
    const char *real = f64 ? "double" : "float";
    sb_printf(out, "static %s elem_%s(%s x) { return %s; }\n", real, elem_fn_name[fn], real,
              elem_bodies[fn]);
  }
  sb_append(out, sb_str(&fns));
  sb_free(&fns);
}

static void write_kernel_header(const Plan *plan, StrBuf *out) {
  KernelKind kind = plan->kind;
  const char *pre = kernel_prefixes[kind];
  sb_printf(out, "\n// ---- %s: %s ----\n//\n", kernel_name(kind), kernel_summary(kind));
  sb_printf(out, "// bufs[%s_NBUFS]: the index of every buffer in `bufs`, with its role, shape "
            "(B: the batch)\n// and contents.\nenum {\n", pre);
  for (int i = 0; i < plan->nbufs; i++) {
    StrBuf what = {0}, entry = {0};
    describe_buffer(&what, plan, i);
    sb_printf(&entry, "%s_BUF_%s = %d,", pre, plan->bufs[i].name, i);
    line(out, 1, "%-28s // %s", sb_str(&entry), sb_str(&what));
    sb_free(&what);
    sb_free(&entry);
  }
  line(out, 1, "%s_NBUFS = %d", pre, plan->nbufs);
  sb_append(out, "};\n\n// The buffer of every output (some are the buffer of a state or of "
                 "another output).\nenum {\n");
  for (int i = 0; i < plan->noutputs; i++)
    line(out, 1, "%s_OUT_%s = %s_BUF_%s%s", pre, plan->outputs[i].name, pre,
         plan->bufs[plan->outputs[i].buf].name, i + 1 < plan->noutputs ? "," : "");
  sb_printf(out, "};\n\n// X(index, name, role, numel, batched) for every buffer: numel "
            "elements per sample when\n// batched ([batch, numel], row-major), else in all.\n"
            "#define %s_BUFFERS(X)", pre);
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    sb_printf(out, " \\\n  X(%d, %s, %s, %lld, %d)", i, b->name, role_names[b->role],
              (long long)plan_size(plan, b->numel), b->batched);
  }
  sb_printf(out, "\n\n// X(name, index) for every output.\n#define %s_OUTPUTS(X)", pre);
  for (int i = 0; i < plan->noutputs; i++)
    sb_printf(out, " \\\n  X(%s, %d)", plan->outputs[i].name, plan->outputs[i].buf);
  sb_printf(out, "\n\nvoid %s(void **bufs, const double *params, int64_t batch);\n",
            kernel_name(kind));
}

static void write_header(const Plan *const *plans, int nplans, bool f64, const char *model_path,
                         const char *h_name, StrBuf *out) {
  const Network *net = plans[0]->net;
  const int64_t *dims = plans[0]->dims;
  const char *real = f64 ? "double" : "float";
  sb_printf(out, "// %s: the kernels of model '%s' (%s) in %s, as C.\n", h_name, net->name,
            model_path, f64 ? "float64" : "float32");
  sb_printf(out, "// Generated by damc %s (damc emit --c); do not edit.\n//\n", DAMC_VERSION);
  if (nplans == KERNEL_MODEL_KINDS)
    sb_append(out, "// Two functions (defined by the .c file of the same name, or by the object "
              "file of `damc\n// emit --obj` for the same model, tensors and precision):\n");
  else
    sb_printf(out, "// %d functions (defined below):\n", nplans);
  for (int k = 0; k < nplans; k++)
    sb_printf(out, "//   %s:%*s%s%s\n", kernel_name(plans[k]->kind),
              (int)(10 - strlen(kernel_name(plans[k]->kind))), "", kernel_summary(plans[k]->kind),
              k + 1 < nplans ? ";" : ".");
  sb_printf(out,
            "// Each takes `bufs`, one pointer per buffer of its list below (the caller allocates "
            "every\n// buffer, temporaries too, as %s; they must not overlap), `params`, the "
            "params in the\n// order of DAMC_PARAMS, and `batch`, the number of samples. The "
            "caller fills the states\n// and inputs (batched) and the weights (not batched, as "
            "declared), calls the kernel, and\n// reads the outputs. Link with libdamrt.a, "
            "OpenBLAS and libm. One model per program.\n//\n// Layers:", real);
  for (int a = 0; a < net->nlayers; a++)
    sb_printf(out, " %s[%lld]%s%s", net->layers[a].name, (long long)dims[net->layers[a].dim],
              net->layers[a].eliminated ? " (eliminated: x = u)" : "",
              a + 1 < net->nlayers ? "," : ".\n");
  char guard[256];
  size_t n = 0;
  n += (size_t)snprintf(guard, sizeof guard, "DAMC_");
  for (const char *p = h_name; *p && n + 1 < sizeof guard; p++)
    guard[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A')
                 : ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p : '_';
  guard[n] = '\0';
  sb_printf(out, "#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n", guard, guard);
  sb_printf(out, "// The element type of every buffer.\ntypedef %s damc_real;\n\n", real);
  sb_append(out, "// The model's sizes.\n");
  for (int d = 0; d < net->ndims; d++)
    if (net->dims[d].name) sb_printf(out, "#define DAMC_DIM_%s %lld\n", net->dims[d].name,
                                   (long long)dims[d]);
  sb_printf(out, "\n// The params, in the order of `params` (float64): X(index, name, default, "
            "has_default).\n#define DAMC_NPARAMS %d\n#define DAMC_PARAMS(X)", net->nparams);
  for (int k = 0; k < net->nparams; k++) {
    sb_printf(out, " \\\n  X(%d, %s, ", k, net->params[k].name);
    literal(out, net->params[k].has_default ? net->params[k].value : 0, true);
    sb_printf(out, ", %d)", net->params[k].has_default);
  }
  sb_append(out, "\n\n// The roles of buffers.\nenum {");
  for (size_t r = 0; r < ARRAY_LEN(role_names); r++) sb_printf(out, "%s %s", r ? "," : "", role_names[r]);
  sb_append(out, " };\n");
  for (int k = 0; k < nplans; k++) write_kernel_header(plans[k], out);
  sb_printf(out, "\n#endif\n");
}

bool emit_c_generate(const Plan *const *plans, int nplans, bool f64, const char *model_path,
                     const char *c_name, const char *h_name, StrBuf *source, StrBuf *header,
                     StrBuf *err) {
  size_t len0 = err->len;
  // Emitted C has every size as a number: plans with runtime dims are the JIT's alone.
  for (int i = 0; i < nplans; i++) DAMC_ASSERT(!plans[i]->runtime);
  write_source(plans, nplans, f64, model_path, c_name, h_name, source, err);
  write_header(plans, nplans, f64, model_path, h_name ? h_name : c_name, header);
  return err->len == len0;
}

// Network derivation (see network.h).
#include "derive/network.h"

#include <stdlib.h>
#include <string.h>

#include "front/ast.h"
#include "support/common.h"
#include "sym/builtins.h"

// ---- From syntax to the DAG ----

typedef struct {
  Network *net;
  ExprPool *pool;
  const Model *m;
} DagBuilder;

static ExprShape weight_shape(const ModelWeight *w) {
  return (ExprShape){(int8_t)w->rank, {w->dims[0], w->dims[1]}};
}

// The operators of a chain that make one n-ary node: + and - a sum, * and / a product.
typedef enum { RUN_NONE, RUN_SUM, RUN_PRODUCT } RunKind;

// The n-ary node of the `k` operands of a run, or `a` when there is none.
static ExprId close_run(ExprPool *p, RunKind kind, const ExprId *run, size_t k, ExprId a) {
  return kind == RUN_SUM ? expr_add_n(p, run, (uint32_t)k)
         : kind == RUN_PRODUCT ? expr_mul_n(p, run, (uint32_t)k)
                               : a;
}

// The DAG node of a syntax tree; `args` binds the parameters of the def being inlined.
static ExprId to_dag(DagBuilder *lw, const AstExpr *e, const ExprId *args) {
  ExprPool *p = lw->pool;
  const Model *m = lw->m;
  switch (e->kind) {
  case AST_NUM: return expr_const(p, e->num);
  case AST_NAME:
    switch (e->ref) {
    case REF_DIM: return expr_leaf(p, EX_DIM, e->ref_index, expr_shape_scalar());
    case REF_PARAM: return expr_leaf(p, EX_PARAM, e->ref_index, expr_shape_scalar());
    case REF_STATE: return lw->net->layers[e->ref_index].state;
    case REF_WEIGHT:
      return expr_leaf(p, EX_WEIGHT, e->ref_index, weight_shape(&m->weights[e->ref_index]));
    case REF_ARG: return args[e->ref_index];
    default: damc_unreachable();
    }
  case AST_ACT: return lw->net->layers[e->ref_index].act;
  case AST_NEG: return expr_neg(p, to_dag(lw, e->lhs, args));
  case AST_TRANSPOSE: return expr_transpose(p, to_dag(lw, e->lhs, args));
  case AST_BINARY: {
    // A chain over its spine (ast_spine), from the innermost node out. Each run of + and -
    // (or * and /) is one n-ary node: built pair by pair, every step would flatten and
    // canonicalise the sum so far again, cubic in its length.
    size_t n, k = 0;
    AstExpr **spine = ast_spine(e, &n);
    ExprId *run = xmalloc((n + 2) * sizeof *run);
    RunKind kind = RUN_NONE;
    ExprId a = to_dag(lw, spine[n - 1]->lhs, args);
    for (size_t i = n; i-- > 0;) {
      AstBinOp op = spine[i]->op;
      ExprId b = to_dag(lw, spine[i]->rhs, args);
      RunKind now = op == OP_ADD || op == OP_SUB   ? RUN_SUM
                    : op == OP_MUL || op == OP_DIV ? RUN_PRODUCT
                                                   : RUN_NONE;
      if (now != kind) {
        a = close_run(p, kind, run, k, a);
        kind = now;
        k = 0;
        run[k++] = a;
      }
      if (op == OP_SUB) b = expr_neg(p, b);
      if (op == OP_DIV) b = expr_pow(p, b, expr_const(p, -1));
      if (now != RUN_NONE) run[k++] = b;
      else a = op == OP_MATMUL ? expr_matmul(p, a, b) : expr_pow(p, a, b);
    }
    a = close_run(p, kind, run, k, a);
    free(run);
    free(spine);
    return a;
  }
  case AST_CALL:
    if (e->ref == REF_DEF) {
      const AstDecl *def = e->ref_def;
      ExprId *bound = xmalloc(((size_t)def->nparams + 1) * sizeof *bound);
      // An argument is built where it is written; a default has no arguments to bind.
      for (int i = 0; i < def->nparams; i++) bound[i] = to_dag(lw, e->bound_args[i], args);
      ExprId r = to_dag(lw, def->value, bound);
      free(bound);
      return r;
    }
    {
      const BuiltinInfo *fn = &builtin_info[e->ref_index];
      ExprId a = to_dag(lw, e->args->value, args);
      switch (fn->kind) {
      case FNK_ELEM: return expr_fn(p, (ElemFn)e->ref_index, a);
      case FNK_DOT: return expr_dot(p, a, to_dag(lw, e->args->next->value, args));
      case FNK_TRANSPOSE: return expr_transpose(p, a);
      case FNK_LEN: return expr_numel(p, expr_get(p, a)->shape);
      case FNK_REDUCE:
        switch ((BuiltinFn)e->ref_index) {
        case FN_SUM: return expr_sum(p, a);
        case FN_MEAN: return expr_div(p, expr_sum(p, a), expr_numel(p, expr_get(p, a)->shape));
        case FN_LOGSUMEXP: return expr_lse(p, a);
        case FN_NORM: return expr_fn(p, EF_SQRT, expr_sum(p, expr_pow(p, a, expr_const(p, 2))));
        default: damc_unreachable();
        }
      }
      damc_unreachable();
    }
  }
  damc_unreachable();
}

// ---- Substitutions ----

typedef struct {
  const ExprId *act_value;  // per layer: what g(A) stands for, or 0 to keep the leaf
  const ExprId *state_value;  // per layer: what x_A stands for, or 0
} LeafValues;

static ExprId map_leaves(void *ctx, ExprPool *pool, const Expr *leaf) {
  (void)pool;
  const LeafValues *v = ctx;
  if (leaf->kind == EX_ACT && v->act_value) return v->act_value[leaf->index];
  if (leaf->kind == EX_STATE && v->state_value) return v->state_value[leaf->index];
  return 0;
}

static ExprId substitute(Network *net, ExprId e, const ExprId *acts, const ExprId *states) {
  LeafValues v = {acts, states};
  return expr_substitute(net->pool, e, map_leaves, &v);
}

// ---- Derivation ----

static void derive_layer(DagBuilder *lw, int a) {
  Network *net = lw->net;
  ExprPool *p = net->pool;
  const ModelLayer *ml = &lw->m->layers[a];
  LayerEq *l = &net->layers[a];
  l->L = to_dag(lw, ml->lagrangian, NULL);
  l->g = diff_grad(p, l->L, l->state);
  l->hessian = diff_jacobian(p, l->g, l->state);
  l->hvp = l->hessian.dense ? diff_jvp(p, l->g, l->state, l->dir)
                           : diff_jac_apply(p, &l->hessian, l->dir);
  l->legendre = expr_sub(p, expr_dot(p, l->state, l->g), l->L);
  l->tau = ml->tau ? to_dag(lw, ml->tau, NULL) : expr_const(p, 1);
  const Expr *g = expr_get(p, l->g);
  l->binary = g->kind == EX_FN && g->index == EF_SIGN && g->kids[0] == l->state;
}

// The interaction energy and the currents (in activation leaves).
static void derive_couplings(DagBuilder *lw) {
  Network *net = lw->net;
  ExprPool *p = net->pool;
  const Model *m = lw->m;
  ExprId energy_terms = expr_const(p, 0);
  for (int i = 0; i < m->nenergies; i++)
    energy_terms = expr_add(p, energy_terms, to_dag(lw, m->energies[i].expr, NULL));
  ExprId e_int = energy_terms;
  for (int a = 0; a < net->nlayers; a++) {
    LayerEq *l = &net->layers[a];
    // -dE/dg(A) of the general energy terms, derived symbolically. A layer no term
    // touches gets an exact +0: negating the zero gradient would make it -0 (-1 * 0), which
    // printed as "-0" in u and in the dynamics of an unconnected layer.
    ExprId grad = diff_grad(p, energy_terms, l->act);
    const Expr *gx = expr_get(p, grad);
    bool zero = expr_is_const(p, grad, 0) ||
                (gx->kind == EX_BCAST && expr_is_const(p, gx->kids[0], 0));
    l->u = zero ? expr_bcast(p, expr_const(p, 0), expr_get(p, l->act)->shape)
                : expr_neg(p, grad);
    if (l->input) l->u = expr_add(p, l->u, l->input);
  }
  for (int i = 0; i < m->nsynapses; i++) {
    const ModelSynapse *s = &m->synapses[i];
    ExprId w = expr_leaf(p, EX_WEIGHT, s->weight, weight_shape(&m->weights[s->weight]));
    LayerEq *la = &net->layers[s->a], *lb = &net->layers[s->b];
    la->u = expr_add(p, la->u, expr_matmul(p, w, lb->act));
    if (s->directed) {
      net->has_directed = true;
      continue;
    }
    ExprId term = expr_dot(p, la->act, expr_matmul(p, w, lb->act));
    if (s->a == s->b) {
      e_int = expr_sub(p, e_int, expr_scale(p, 0.5, term));
    } else {
      e_int = expr_sub(p, e_int, term);
      lb->u = expr_add(p, lb->u, expr_matmul(p, expr_transpose(p, w), la->act));
    }
  }
  net->energy_int = e_int;
}

static const char *layer_name(const Network *net, int a) { return net->model->layers[a].name; }

// Checks that eliminated layers are solvable in closed form: u_h may not depend on g(h)
// or on the activation of another eliminated layer.
static bool check_eliminable(Session *s, const Network *net) {
  bool ok = true;
  for (int h = 0; h < net->nlayers; h++) {
    const LayerEq *l = &net->layers[h];
    if (!l->eliminated) continue;
    uint64_t acts = expr_get(net->pool, l->u)->acts;
    for (int k = 0; k < net->nlayers; k++) {
      if (!net->layers[k].eliminated || !(acts >> (k < 63 ? k : 63) & 1)) continue;
      const ModelLayer *ml = &net->model->layers[h];
      Span where = ml->tau ? ml->tau->span : ml->span;
      if (k == h)
        diag_error(s->diag, where, "layer '%s' cannot be eliminated (x = u solved "
                   "instantly): its current depends on its own activation g(%s)",
                   layer_name(net, h), layer_name(net, h));
      else
        diag_error(s->diag, where, "layer '%s' cannot be eliminated: its current depends on "
                   "g(%s), and '%s' is eliminated too", layer_name(net, h),
                   layer_name(net, k), layer_name(net, k));
      ok = false;
      break;
    }
  }
  return ok;
}

// The reduced model of docs/theory.md §2 (eq. 2.1).
static void derive_reduced(Network *net) {
  ExprPool *p = net->pool;
  int n = net->nlayers;
  ExprId *acts = xcalloc((size_t)n, sizeof *acts), *states = xcalloc((size_t)n, sizeof *states);
  // g(A) := x_A for remaining identity layers, so that the equations read in the state.
  for (int a = 0; a < n; a++)
    if (!net->layers[a].eliminated && net->layers[a].g == net->layers[a].state)
      acts[a] = net->layers[a].state;
  ExprId e_int = net->energy_int, coupling = expr_const(p, 0);
  for (int h = 0; h < n; h++) {
    LayerEq *l = &net->layers[h];
    if (!l->eliminated) continue;
    // g_h at x_h = u_h, where u_h depends only on layers that stay.
    states[h] = substitute(net, l->u, acts, NULL);
    acts[h] = substitute(net, l->g, NULL, states);
    e_int = expr_at_zero(p, e_int, l->act);
    coupling = expr_sub(p, coupling, substitute(net, l->L, NULL, states));
    states[h] = 0;
  }
  // A directed synapse D : b -> h into an eliminated layer adds D @ g(b) to u_h without an
  // energy term. The energy the kernels compute (and eval and run report) is E of the full
  // model at x_h = u_h, which then exceeds E_eff of eq. (2.1) by g_h . (D @ g(b))
  // (docs/theory.md §2.3); the term is added so that the reduced energy is that E. Such a
  // reduced model has no energy function: explain says so.
  const Model *m = net->model;
  for (int i = 0; i < m->nsynapses; i++) {
    const ModelSynapse *s = &m->synapses[i];
    if (!s->directed || !net->layers[s->a].eliminated) continue;
    ExprId w = expr_leaf(p, EX_WEIGHT, s->weight, weight_shape(&m->weights[s->weight]));
    coupling = expr_add(p, coupling, expr_dot(p, net->layers[s->a].act,
                                              expr_matmul(p, w, net->layers[s->b].act)));
  }
  coupling = substitute(net, expr_add(p, coupling, e_int), acts, NULL);
  ExprId energy = coupling;
  for (int a = 0; a < n; a++) {
    const LayerEq *l = &net->layers[a];
    if (l->eliminated) continue;
    energy = expr_add(p, energy, l->legendre);
    if (l->input)
      energy = expr_sub(p, energy, substitute(net, expr_dot(p, l->input, l->act), acts, NULL));
    net->reduced_u[a] = substitute(net, l->u, acts, NULL);
  }
  net->reduced_energy_int = coupling;
  net->reduced_energy = energy;
  ExprId *g_of_x = xcalloc((size_t)n, sizeof *g_of_x);
  for (int a = 0; a < n; a++)
    if (!net->layers[a].eliminated) g_of_x[a] = net->layers[a].g;
  net->reduced_energy_x = substitute(net, net->reduced_energy, g_of_x, NULL);
  for (int a = 0; a < n; a++) {
    const LayerEq *l = &net->layers[a];
    if (l->eliminated) continue;
    ExprId u_x = substitute(net, net->reduced_u[a], g_of_x, NULL);
    net->reduced_dxdt[a] = expr_div(p, expr_sub(p, u_x, l->state), l->tau);
  }
  free(g_of_x);
  free(acts);
  free(states);
}

// ---- The fast single-unit rule (docs/theory.md §5.3) ----

// L(x + d) - L(x) for the scalar `e`, a part of layer h's Lagrangian; `moved` maps the
// state of h to x_h + d_h. Sums and constant factors are taken term by term, sum(a) as
// sum(a(x + d) - a(x)) and lse(a) as lse(a(x + d) - lse(a(x))) (both exact identities, and
// the second cannot overflow); anything else as the difference of its two values.
static ExprId flip_form(Network *net, int h, ExprId e, const ExprId *moved) {
  ExprPool *p = net->pool;
  const Expr *x = expr_get(p, e);
  if (!(x->states >> (h < 63 ? h : 63) & 1)) return expr_const(p, 0);
  if (x->kind == EX_ADD && x->shape.rank == 0) {
    ExprId sum = expr_const(p, 0);
    for (uint32_t k = 0; k < x->nkids; k++) sum = expr_add(p, sum, flip_form(net, h, x->kids[k], moved));
    return sum;
  }
  if (x->kind == EX_MUL && x->shape.rank == 0) {
    int varying = -1, count = 0;
    for (uint32_t k = 0; k < x->nkids; k++)
      if (expr_get(p, x->kids[k])->states >> (h < 63 ? h : 63) & 1) varying = (int)k, count++;
    if (count == 1) {
      ExprId factor = flip_form(net, h, x->kids[varying], moved);
      for (uint32_t k = 0; k < x->nkids; k++)
        if ((int)k != varying) factor = expr_mul(p, factor, x->kids[k]);
      return factor;
    }
  }
  if (x->kind == EX_SUM) {
    ExprId a = x->kids[0];
    return expr_sum(p, expr_sub(p, substitute(net, a, NULL, moved), a));
  }
  if (x->kind == EX_LSE) {
    ExprId a = x->kids[0];
    return expr_lse(p, expr_sub(p, substitute(net, a, NULL, moved), expr_lse(p, a)));
  }
  return expr_sub(p, substitute(net, e, NULL, moved), e);
}

static bool is_zero(const ExprPool *p, ExprId e) {
  const Expr *x = expr_get(p, e);
  return expr_is_const(p, e, 0) || (x->kind == EX_BCAST && expr_is_const(p, x->kids[0], 0));
}

// Whether the fast rule applies, the couplings it moves along, and each eliminated layer's
// flip expression.
static void derive_async(Network *net) {
  ExprPool *p = net->pool;
  int n = net->nlayers;
  ExprId *moved = xcalloc((size_t)n + 1, sizeof *moved);
  for (int h = 0; h < n; h++) {
    LayerEq *l = &net->layers[h];
    if (!l->eliminated) continue;
    moved[h] = expr_add(p, l->state, l->dir);
    l->flip = flip_form(net, h, l->L, moved);
    moved[h] = 0;
  }
  free(moved);
  net->async_slow_why = NULL;
  for (int a = 0; a < n && !net->async_slow_why; a++)
    if (!net->layers[a].eliminated && !net->layers[a].binary)
      net->async_slow_why = "an integrated layer is not binary";
  if (!net->async_slow_why && net->has_directed)
    net->async_slow_why = "a directed synapse (the model has no energy)";
  ExprId e0 = net->energy_int;
  for (int h = 0; h < n; h++)
    if (net->layers[h].eliminated) e0 = expr_at_zero(p, e0, net->layers[h].act);
  if (!net->async_slow_why && (expr_get(p, e0)->acts || expr_get(p, e0)->states))
    net->async_slow_why = "synapses or energy terms couple integrated layers directly";
  net->couplings = xcalloc((size_t)(n * n) + 1, sizeof *net->couplings);
  for (int h = 0; h < n && !net->async_slow_why; h++) {
    const LayerEq *lh = &net->layers[h];
    if (!lh->eliminated) continue;
    for (int a = 0; a < n && !net->async_slow_why; a++) {
      const LayerEq *la = &net->layers[a];
      if (la->eliminated) continue;
      ExprId jvp = diff_jvp(p, lh->u, la->act, la->dir);
      if (is_zero(p, jvp)) continue;
      int found = -1;
      bool transposed = false;
      for (int w = 0; w < net->nweights && found < 0; w++) {
        const NetWeight *nw = &net->weights[w];
        if (nw->rank != 2) continue;
        ExprShape shape = {2, {nw->dims[0], nw->dims[1]}};
        ExprId leaf = expr_leaf(p, EX_WEIGHT, w, shape);
        if (nw->dims[0] == lh->dim && nw->dims[1] == la->dim &&
            jvp == expr_matmul(p, leaf, la->dir))
          found = w;
        else if (nw->dims[1] == lh->dim && nw->dims[0] == la->dim &&
                 (jvp == expr_matmul(p, expr_transpose(p, leaf), la->dir) ||
                  jvp == expr_matmul(p, la->dir, leaf)))
          found = w, transposed = true;
      }
      if (found < 0)
        net->async_slow_why = "the current of an eliminated layer is not a weight times an "
                              "integrated layer's activation";
      else
        net->couplings[net->ncouplings++] = (NetCoupling){h, a, found, transposed};
    }
  }
  net->async_fast = !net->async_slow_why;
  if (!net->async_fast) net->ncouplings = 0;
}

static void make_names(Session *s, Network *net) {
  const Model *m = net->model;
  const char **params = arena_alloc(s->arena, sizeof(char *) * (size_t)(m->nparams + 1));
  const char **dims = arena_alloc(s->arena, sizeof(char *) * (size_t)(m->ndims + 1));
  const char **layers = arena_alloc(s->arena, sizeof(char *) * (size_t)(m->nlayers + 1));
  const char **weights = arena_alloc(s->arena, sizeof(char *) * (size_t)(m->nweights + 1));
  for (int i = 0; i < m->nparams; i++) params[i] = m->params[i].name;
  for (int i = 0; i < m->ndims; i++) {
    if (m->dims[i].name) {
      dims[i] = m->dims[i].name;
    } else {
      char buf[32];
      snprintf(buf, sizeof buf, "%lld", (long long)m->dims[i].value);
      dims[i] = arena_strndup(s->arena, buf, strlen(buf));
    }
  }
  for (int i = 0; i < m->nlayers; i++) layers[i] = m->layers[i].name;
  for (int i = 0; i < m->nweights; i++) weights[i] = m->weights[i].name;
  net->names = (ExprNames){params, dims, layers, weights, NULL, NULL};
}

// Copies what later stages need of the model into the network, as data.
static void record_facts(Network *net) {
  const Model *m = net->model;
  net->name = m->name;
  net->nparams = m->nparams;
  net->params = xcalloc((size_t)m->nparams + 1, sizeof *net->params);
  for (int i = 0; i < m->nparams; i++)
    net->params[i] = (NetParam){m->params[i].name, m->params[i].value, m->params[i].has_default};
  net->nweights = m->nweights;
  net->weights = xcalloc((size_t)m->nweights + 1, sizeof *net->weights);
  for (int i = 0; i < m->nweights; i++) {
    const ModelWeight *w = &m->weights[i];
    bool self = w->synapse >= 0 && m->synapses[w->synapse].a == m->synapses[w->synapse].b;
    net->weights[i] = (NetWeight){w->name, w->rank, {w->dims[0], w->dims[1]}, w->symmetric, self};
  }
  net->ndims = m->ndims;
  net->dims = xcalloc((size_t)m->ndims + 1, sizeof *net->dims);
  for (int i = 0; i < m->ndims; i++) net->dims[i] = (NetDim){m->dims[i].name, m->dims[i].value};
  for (int a = 0; a < m->nlayers; a++) {
    net->layers[a].name = m->layers[a].name;
    net->layers[a].dim = m->layers[a].dim;
    net->layers[a].has_input = m->layers[a].has_input;
  }
}

Network *network_derive(Session *s, const Model *m, const int *eliminate, int neliminate) {
  Network *net = xcalloc(1, sizeof *net);
  net->model = m;
  net->pool = expr_pool_new();
  net->nlayers = m->nlayers;
  net->layers = xcalloc((size_t)m->nlayers + 1, sizeof *net->layers);
  net->reduced_u = xcalloc((size_t)m->nlayers + 1, sizeof *net->reduced_u);
  net->reduced_dxdt = xcalloc((size_t)m->nlayers + 1, sizeof *net->reduced_dxdt);
  make_names(s, net);
  record_facts(net);
  ExprPool *p = net->pool;
  for (int a = 0; a < m->nlayers; a++) {
    LayerEq *l = &net->layers[a];
    ExprShape shape = expr_shape_vec(m->layers[a].dim);
    l->state = expr_leaf(p, EX_STATE, a, shape);
    l->act = expr_leaf(p, EX_ACT, a, shape);
    l->dir = expr_leaf(p, EX_DIR, a, shape);
    if (m->layers[a].has_input) l->input = expr_leaf(p, EX_INPUT, a, shape);
  }
  DagBuilder lw = {net, p, m};
  for (int a = 0; a < m->nlayers; a++) derive_layer(&lw, a);
  for (int i = 0; i < neliminate; i++) net->layers[eliminate[i]].eliminated = true;
  for (int a = 0; a < m->nlayers; a++)
    if (expr_is_const(p, net->layers[a].tau, 0)) net->layers[a].eliminated = true;
  derive_couplings(&lw);

  ExprId *acts = xcalloc((size_t)m->nlayers + 1, sizeof *acts);
  ExprId energy = net->energy_int;
  for (int a = 0; a < m->nlayers; a++) {
    LayerEq *l = &net->layers[a];
    acts[a] = l->g;
    energy = expr_add(p, energy, l->legendre);
    if (l->input) energy = expr_sub(p, energy, expr_dot(p, l->input, l->act));
  }
  net->energy = energy;
  net->energy_x = substitute(net, energy, acts, NULL);
  for (int a = 0; a < m->nlayers; a++) {
    LayerEq *l = &net->layers[a];
    l->u_x = substitute(net, l->u, acts, NULL);
    l->energy_part = l->legendre;
    if (l->input) l->energy_part = expr_sub(p, l->energy_part, expr_dot(p, l->input, l->act));
    // An eliminated layer does not move on its own: it is set to x = u at every instant.
    if (l->eliminated) {
      l->dxdt_x = expr_bcast(p, expr_const(p, 0), expr_get(p, l->state)->shape);
    } else {
      l->dxdt = expr_div(p, expr_sub(p, l->u, l->state), l->tau);
      l->dxdt_x = expr_div(p, expr_sub(p, l->u_x, l->state), l->tau);
    }
  }
  free(acts);

  bool ok = check_eliminable(s, net);
  for (int a = 0; a < m->nlayers && ok; a++)
    if (net->layers[a].eliminated) net->reduced = true;
  if (net->reduced) derive_reduced(net);
  if (ok) derive_async(net);
  if (!ok) {
    network_free(net);
    return NULL;
  }
  return net;
}

void network_free(Network *net) {
  if (!net) return;
  expr_pool_free(net->pool);
  free(net->layers);
  free(net->reduced_u);
  free(net->reduced_dxdt);
  free(net->couplings);
  free(net->params);
  free(net->weights);
  free(net->dims);
  free(net);
}

// Every equation `damc explain` prints is the one computed (issue 10). For every example
// (model_b and hierarchical also with layers integrated out) and every model of
// tests/golden/explain that derives, network_explain's PRINT_TEXT output is read line by
// line; each equation's right-hand side is parsed back (front_parse, then the names resolved
// to the leaves of the model's own pool: states, g(A), I_A, d_A, weights, params, dims, and
// Lambda_A to the Lambda line printed for A) and evaluated with the reference interpreter at
// a batch of 3 random states, at spread 1 and at spread 40 (where tanh and sigmoid saturate).
// It is compared with what the float64 JIT kernels of `damc eval` compute at those states:
//   E (the energy line, and the reduced model's energy line) against the kernel's E;
//   u_A, and x_h = u_h of an eliminated layer, against u_A; the dynamics line
//   (u_A - x_A, divided by the tau printed before dA/dt) against dx_A/dt; the reduced update
//   x_A <- u_A against u_A;
// and the layer sections (L, g, diag H, H u_k, H v_k, H d with a random d, Lambda, tau), which
// no kernel outputs except g, against the interpreter on the derivation's nodes (g also
// against the kernel's g). Each reparsed expression must also be the very node derived (the
// energies: net->energy and net->reduced_energy; the dynamics: u_A - x_A). Every printed line
// must be recognised and parse (Hessian lines not in the language would be counted, not
// failed: there are none).
//
// Tolerance: 1e-12, relative to the largest element of the quantity, and for the energies to
// the size of the terms that cancel in them (fx_energy_scale, engine_fixture.h). Both sides
// compute the same function in float64 in a different order (the interpreter's plain loops;
// the kernels' fused loops and BLAS), so they differ by rounding: a few ulps of the terms per
// reduction of at most 64 elements here (measured: 4e-15). 1e-12 leaves a margin of over 100
// and is far below the error of the issue: without its directed term, the reduced energy of
// reduced_directed.dam was off by 2e-2 of the size of its terms.
#include <dirent.h>

#include "engine_fixture.h"
#include "sym/builtins.h"

enum { BATCH = 3, MAXN = 4096 };

// ---- The kernels ----

static EngineArray array(size_t rows, size_t cols, const double *data) {
  return (EngineArray){DAMRT_F64, cols ? 2 : 1, {rows, cols}, data};
}


// ---- Reading printed text back into the model's pool ----

typedef struct {
  Fixture *f;
  ExprId lambda[16];  // the reparsed Lambda line of each layer, for Lambda_A in E
  char why[256];      // why the last parse failed
} Reparser;

static int layer_named(const Model *m, const char *name) {
  for (int a = 0; a < m->nlayers; a++)
    if (!strcmp(m->layers[a].name, name)) return a;
  return -1;
}

static ExprShape weight_shape(const ModelWeight *w) {
  return (ExprShape){(int8_t)w->rank, {w->dims[0], w->dims[1]}};
}

static ExprId resolve_name(Reparser *r, const char *name) {
  const Model *m = r->f->m;
  Network *net = r->f->net;
  ExprPool *p = net->pool;
  for (int i = 0; i < m->nparams; i++)
    if (!strcmp(m->params[i].name, name)) return expr_leaf(p, EX_PARAM, i, expr_shape_scalar());
  for (int i = 0; i < m->ndims; i++)
    if (m->dims[i].name && !strcmp(m->dims[i].name, name))
      return expr_leaf(p, EX_DIM, i, expr_shape_scalar());
  for (int i = 0; i < m->nweights; i++)
    if (!strcmp(m->weights[i].name, name))
      return expr_leaf(p, EX_WEIGHT, i, weight_shape(&m->weights[i]));
  int a = layer_named(m, name);
  if (a >= 0) return net->layers[a].state;
  if (!strncmp(name, "I_", 2) && (a = layer_named(m, name + 2)) >= 0 && net->layers[a].input)
    return net->layers[a].input;
  if (!strncmp(name, "d_", 2) && (a = layer_named(m, name + 2)) >= 0) return net->layers[a].dir;
  if (!strncmp(name, "Lambda_", 7) && (a = layer_named(m, name + 7)) >= 0 && r->lambda[a])
    return r->lambda[a];
  snprintf(r->why, sizeof r->why, "unknown name '%s'", name);
  return 0;
}

static ExprId to_expr(Reparser *r, const AstExpr *e) {
  ExprPool *p = r->f->net->pool;
  switch (e->kind) {
  case AST_NUM: return expr_const(p, e->num);
  case AST_NAME: return resolve_name(r, e->name.name);
  case AST_ACT: {
    int a = layer_named(r->f->m, e->name.name);
    if (a < 0) snprintf(r->why, sizeof r->why, "unknown layer in g(%s)", e->name.name);
    return a < 0 ? 0 : r->f->net->layers[a].act;
  }
  case AST_NEG: {
    ExprId a = to_expr(r, e->lhs);
    return a ? expr_neg(p, a) : 0;
  }
  case AST_TRANSPOSE: {
    ExprId a = to_expr(r, e->lhs);
    return a ? expr_transpose(p, a) : 0;
  }
  case AST_BINARY: {
    ExprId a = to_expr(r, e->lhs), b = a ? to_expr(r, e->rhs) : 0;
    if (!b) return 0;
    switch (e->op) {
    case OP_ADD: return expr_add(p, a, b);
    case OP_SUB: return expr_sub(p, a, b);
    case OP_MUL: return expr_mul(p, a, b);
    case OP_DIV: return expr_div(p, a, b);
    case OP_MATMUL: return expr_matmul(p, a, b);
    case OP_POW: return expr_pow(p, a, b);
    }
    return 0;
  }
  case AST_CALL: {
    int fn = builtin_lookup(e->name.name);
    if (fn < 0 || e->nargs != builtin_info[fn].arity) {
      snprintf(r->why, sizeof r->why, "'%s' is not a built-in of the language", e->name.name);
      return 0;
    }
    ExprId a = to_expr(r, e->args->value), b = 0;
    if (!a) return 0;
    if (e->nargs > 1 && !(b = to_expr(r, e->args->next->value))) return 0;
    switch (builtin_info[fn].kind) {
    case FNK_ELEM: return expr_fn(p, (ElemFn)fn, a);
    case FNK_DOT: return expr_dot(p, a, b);
    case FNK_TRANSPOSE: return expr_transpose(p, a);
    case FNK_LEN: return expr_numel(p, expr_get(p, a)->shape);
    case FNK_REDUCE:
      switch ((BuiltinFn)fn) {
      case FN_SUM: return expr_sum(p, a);
      case FN_MEAN: return expr_div(p, expr_sum(p, a), expr_numel(p, expr_get(p, a)->shape));
      case FN_LOGSUMEXP: return expr_lse(p, a);
      case FN_NORM: return expr_fn(p, EF_SQRT, expr_sum(p, expr_pow(p, a, expr_const(p, 2))));
      default: break;
      }
    }
    snprintf(r->why, sizeof r->why, "'%s' not handled", e->name.name);
    return 0;
  }
  }
  return 0;
}

// `text` parsed as an expression of the model (wrapped as an energy statement, which the
// parser reads as any expression), or 0 with r->why.
static ExprId reparse(Reparser *r, const char *text) {
  Session *s = session_new(NULL);
  StrBuf src = {0};
  sb_printf(&src, "energy %s;\n", text);
  AstDecl *d = front_parse(s, "printed", sb_str(&src), src.len, false);
  ExprId e = 0;
  r->why[0] = 0;
  if (!d || diag_error_count(s->diag) || d->kind != DECL_ENERGY || d->next)
    snprintf(r->why, sizeof r->why, "does not parse: %s", diag_text(s->diag));
  else
    e = to_expr(r, d->value);
  sb_free(&src);
  session_free(s);
  return e;
}

// ---- Comparisons ----

typedef struct {
  const char *kind;
  int count;
  double worst;
} Stat;

enum { K_LAYER, K_G, K_ENERGY, K_CURRENT, K_DYNAMICS, K_REDUCED_E, K_UPDATE, K_KINDS };
static Stat stats[K_KINDS] = {{"L, H, Lambda, tau (interpreter)", 0, 0},
                              {"g (kernel)", 0, 0},
                              {"E (kernel)", 0, 0},
                              {"u, x_h = u_h (kernel)", 0, 0},
                              {"dx/dt (kernel)", 0, 0},
                              {"reduced E (kernel)", 0, 0},
                              {"reduced update (kernel u)", 0, 0}};
static int lines_total, node_lines, same_node, not_reparsable, unrecognised, failures_shown;

// Compares `got` (ngot values; 1 for a constant vector printed as its scalar) with `want`
// (n values), relative to `scale` (0: the largest |want|).
static void compare(int kind, const char *model, const char *line, const double *got,
                    int64_t ngot, const double *want, int64_t n, double scale) {
  if (ngot != n && ngot != 1) {
    CHECK(ngot == n);
    fprintf(stderr, "%s: %lld values against %lld: %s\n", model, (long long)ngot, (long long)n, line);
    return;
  }
  if (scale == 0)
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    double g = got[ngot == 1 ? 0 : i], err = fabs(g - want[i]) / fmax(scale, 1e-300);
    if (g == want[i]) err = 0;
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  stats[kind].count++;
  if (!(worst <= stats[kind].worst)) stats[kind].worst = worst;
  CHECK(worst <= 1e-12);
  if (!(worst <= 1e-12) && failures_shown++ < 10)
    fprintf(stderr, "%s: [%lld] printed %.17g, computed %.17g (rel %.2e): %s\n", model,
            (long long)at, got[ngot == 1 ? 0 : at], want[at], worst, line);
}

// ---- One model ----

typedef struct {
  Fixture *f;
  Reparser *r;
  const char *model;
  const EngineResults *res;
  int sample;
  double escale;  // the size of the terms of the sample's energy
} Ctx;

static int64_t eval_into(Ctx *c, ExprId e, double *out) {
  Evaluator *ev = eval_new(c->f->net->pool, &c->f->env);
  int64_t n;
  const double *v = eval_node(ev, e, &n);
  CHECK(n <= MAXN);
  if (n > MAXN) n = MAXN;
  memcpy(out, v, (size_t)n * sizeof *out);
  eval_free(ev);
  return n;
}

// Whether the reparsed `e` is the very node `want` (a broadcast scalar prints as its scalar,
// expr_print.h); counted once per model and spread, checked at every state.
static void same_node_as(Ctx *c, ExprId e, ExprId want, const char *line) {
  const Expr *w = expr_get(c->f->net->pool, want);
  bool same = e == want || (w->kind == EX_BCAST && w->kids[0] == e);
  CHECK(same);
  if (!same && failures_shown++ < 10)
    fprintf(stderr, "%s: reparses to another node than the one derived: %s\n", c->model, line);
  if (c->sample == 0) {
    node_lines++;
    same_node += same;
  }
}

// One printed equation "lhs = rhs" (or "lhs <- rhs") of `section`, `layer` the layer of a
// layer section.
static void check_line(Ctx *c, const char *section, int layer, const char *lhs, const char *rhs,
                       const char *line) {
  Fixture *f = c->f;
  const Network *net = f->net;
  const Model *m = f->m;
  static double got[MAXN], want[MAXN];
  if (c->sample == 0) lines_total++;
  bool hessian = !strncmp(lhs, "H ", 2) || !strcmp(lhs, "diag H");
  // The dynamics line "tau dA/dt": the tau printed before d<layer>/dt.
  char tau_text[512] = "";
  int dyn_layer = -1;
  if (!strcmp(section, "dynamics")) {
    size_t len = strlen(lhs);
    const char *d = NULL;
    for (const char *q = lhs; (q = strstr(q, " d")); q++) d = q;
    if (len > 3 && !strcmp(lhs + len - 3, "/dt") && d) {
      char name[128];
      snprintf(name, sizeof name, "%.*s", (int)(lhs + len - 3 - (d + 2)), d + 2);
      dyn_layer = layer_named(m, name);
      snprintf(tau_text, sizeof tau_text, "%.*s", (int)(d - lhs), lhs);
    }
  }
  ExprId e = reparse(c->r, rhs);
  if (!e) {
    if (hessian) {
      not_reparsable++;
      return;
    }
    CHECK(e != 0);
    if (failures_shown++ < 10) fprintf(stderr, "%s: %s: %s\n", c->model, c->r->why, line);
    return;
  }
  int64_t ng = eval_into(c, e, got), s = c->sample;
  char name[160];
  if (layer >= 0) {
    const LayerEq *l = &net->layers[layer];
    ExprId w = 0;
    int kind = K_LAYER;
    snprintf(name, sizeof name, "g(%s)", m->layers[layer].name);
    if (!strcmp(lhs, "L")) w = l->L;
    else if (!strcmp(lhs, name)) w = l->g, kind = K_G;
    else if (!strcmp(lhs, "diag H")) w = l->hessian.diag;
    else if (!strcmp(lhs, "H d")) w = l->hvp;
    else if (!strcmp(lhs, "Lambda")) {
      w = l->legendre;
      c->r->lambda[layer] = e;  // what Lambda_A stands for in the energy lines
    }
    else if (!strcmp(lhs, "tau")) w = l->tau;
    else if (!strncmp(lhs, "H u", 3) || !strncmp(lhs, "H v", 3)) {
      int k = atoi(lhs + 3) - 1;
      if (k >= 0 && k < l->hessian.nterms) w = lhs[2] == 'u' ? l->hessian.u[k] : l->hessian.v[k];
    }
    if (!w) {
      unrecognised++;
      CHECK(w != 0);
      fprintf(stderr, "%s: unrecognised line in layer %s: %s\n", c->model, m->layers[layer].name, line);
      return;
    }
    same_node_as(c, e, w, line);
    int64_t n = eval_into(c, w, want);
    compare(K_LAYER, c->model, line, got, ng, want, n, 0);
    if (kind == K_G) {
      int64_t nl = fx_layer_size(f, layer);
      compare(K_G, c->model, line, got, ng, fx_result(c->res, "g", m->layers[layer].name) + s * nl, nl, 0);
    }
    return;
  }
  if (!strcmp(lhs, "E")) {
    int kind = !strcmp(section, "energy") ? K_ENERGY : K_REDUCED_E;
    same_node_as(c, e, kind == K_ENERGY ? net->energy : net->reduced_energy, line);
    compare(kind, c->model, line, got, ng, fx_result(c->res, "E", NULL) + s, 1, c->escale);
    return;
  }
  int a;
  if (!strcmp(section, "currents") && !strncmp(lhs, "u_", 2) && (a = layer_named(m, lhs + 2)) >= 0) {
    int64_t n = fx_layer_size(f, a);
    same_node_as(c, e, net->layers[a].u, line);
    compare(K_CURRENT, c->model, line, got, ng, fx_result(c->res, "u", lhs + 2) + s * n, n, 0);
    return;
  }
  if (!strcmp(section, "dynamics") && (a = layer_named(m, lhs)) >= 0 && net->layers[a].eliminated) {
    int64_t n = fx_layer_size(f, a);
    same_node_as(c, e, net->layers[a].u, line);
    compare(K_CURRENT, c->model, line, got, ng, fx_result(c->res, "u", lhs) + s * n, n, 0);
    return;
  }
  if (dyn_layer >= 0 && !net->layers[dyn_layer].eliminated) {
    ExprId tau = reparse(c->r, tau_text);
    CHECK(tau != 0);
    if (!tau) return;
    Evaluator *ev = eval_new(net->pool, &f->env);
    double t = eval_scalar(ev, tau), t_want = eval_scalar(ev, net->layers[dyn_layer].tau);
    eval_free(ev);
    CHECK(t == t_want);
    const LayerEq *l = &net->layers[dyn_layer];
    same_node_as(c, tau, l->tau, line);
    same_node_as(c, e, expr_sub(net->pool, l->u, l->state), line);
    int64_t n = fx_layer_size(f, dyn_layer);
    for (int64_t i = 0; i < ng; i++) got[i] /= t;
    compare(K_DYNAMICS, c->model, line, got, ng,
            fx_result(c->res, "dxdt", m->layers[dyn_layer].name) + s * n, n, 0);
    return;
  }
  if (!strcmp(section, "reduced") && (a = layer_named(m, lhs)) >= 0 && !net->layers[a].eliminated) {
    int64_t n = fx_layer_size(f, a);
    same_node_as(c, e, net->reduced_u[a], line);
    compare(K_UPDATE, c->model, line, got, ng, fx_result(c->res, "u", lhs) + s * n, n, 0);
    return;
  }
  unrecognised++;
  CHECK(false);
  fprintf(stderr, "%s: unrecognised line in %s: %s\n", c->model, section, line);
}

static char *trim(char *s) {
  while (*s == ' ') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = 0;
  return s;
}

// Reads the explain output of one sample's bindings and checks every line.
static void check_output(Ctx *c, const char *text) {
  const Model *m = c->f->m;
  char *copy = strdup(text), *save = NULL;
  const char *section = "";
  int layer = -1;
  memset(c->r->lambda, 0, sizeof c->r->lambda);
  for (char *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    char line[MAXN * 4];
    snprintf(line, sizeof line, "%s", ln);
    if (!strncmp(ln, "model ", 6)) continue;
    if (ln[0] != ' ') {  // a heading
      layer = -1;
      if (!strncmp(ln, "layer ", 6)) {
        char name[128];
        snprintf(name, sizeof name, "%s", ln + 6);
        *strchr(name, '[') = 0;
        layer = layer_named(m, name);
        section = "layer";
      } else if (!strcmp(ln, "energy") || !strcmp(ln, "currents") || !strcmp(ln, "dynamics")) {
        section = !strcmp(ln, "energy") ? "energy" : !strcmp(ln, "currents") ? "currents" : "dynamics";
      } else if (!strncmp(ln, "reduced model", 13)) {
        section = "reduced";
      } else {
        unrecognised++;
        CHECK(false);
        fprintf(stderr, "%s: unrecognised heading: %s\n", c->model, ln);
      }
      continue;
    }
    char *body = trim(ln);
    // A remark in parentheses under an energy (never an equation there).
    if (body[0] == '(' && (!strcmp(section, "energy") || !strcmp(section, "reduced"))) continue;
    char *note = strstr(body, "    [");
    if (note) *note = 0;
    char *sep = strstr(body, " = "), *arrow = strstr(body, " <- ");
    size_t seplen = 3;
    if (!strcmp(section, "reduced") && arrow && (!sep || arrow < sep)) sep = arrow, seplen = 4;
    if (!sep) {
      unrecognised++;
      CHECK(false);
      fprintf(stderr, "%s: not an equation: %s\n", c->model, line);
      continue;
    }
    *sep = 0;
    check_line(c, section, layer, trim(body), trim(sep + seplen), line);
  }
  free(copy);
}

static int models_checked;

static void check_model(const char *label, const char *text, const char *const *eliminate,
                        int neliminate, double spread) {
  Fixture f;
  if (!fx_open(&f, text, 5, 1234)) {
    CHECK(false);
    return;
  }
  int elim[16], ne = 0;
  for (int i = 0; i < neliminate; i++) {
    elim[ne] = layer_named(f.m, eliminate[i]);
    CHECK(elim[ne] >= 0);
    if (elim[ne] >= 0) ne++;
  }
  if (ne) {
    network_free(f.net);
    f.net = network_derive(f.s, f.m, elim, ne);
    CHECK(f.net != NULL);
    if (!f.net) {
      fx_close(&f);
      return;
    }
  }
  const Model *m = f.m;
  const Network *net = f.net;
  StrBuf err = {0};
  Engine *eng = engine_new_text(label, text, strlen(text), NULL);
  if (ne) engine_eliminate(eng, elim, ne);
  bool ok = engine_compile(eng, STAGE_DERIVE, &err);
  for (int w = 0; ok && w < m->nweights; w++) {
    const ModelWeight *mw = &m->weights[w];
    size_t rows = (size_t)f.dims[mw->dims[0]], cols = mw->rank == 2 ? (size_t)f.dims[mw->dims[1]] : 0;
    EngineArray wa = array(rows, cols, f.weights[w]);
    ok = engine_bind_weight(eng, mw->name, &wa, "test", &err);
  }
  if (ok) {
    engine_target(eng, DAMRT_F64, false);
    ok = engine_compile(eng, STAGE_JIT, &err);
  }
  CHECK(ok);
  if (!ok) {
    fprintf(stderr, "%s: %s\n", label, sb_str(&err));
    engine_free(eng);
    sb_free(&err);
    fx_close(&f);
    return;
  }

  double *states[16] = {0}, *inputs[16] = {0};
  EngineArray st[16] = {{0}}, in[16] = {{0}};
  for (int a = 0; a < m->nlayers; a++) {
    int64_t n = fx_layer_size(&f, a);
    states[a] = calloc((size_t)(BATCH * n), sizeof(double));
    inputs[a] = calloc((size_t)(BATCH * n), sizeof(double));
    for (int64_t i = 0; i < BATCH * n; i++) {
      states[a][i] = spread * fx_normal(&f);
      inputs[a][i] = net->layers[a].input ? 0.3 * fx_normal(&f) : 0;
    }
    if (!net->layers[a].eliminated) st[a] = array(BATCH, (size_t)n, states[a]);  // else x = u
    if (net->layers[a].input) in[a] = array(BATCH, (size_t)n, inputs[a]);
  }
  EngineArrays arrays = {st, in, NULL, NULL};
  EngineResults res = {0};
  ok = engine_eval(eng, &arrays, &res, &err);
  CHECK(ok);

  StrBuf out = {0};
  network_explain(&out, net, PRINT_TEXT);
  Reparser r = {&f, {0}, ""};
  for (int s = 0; ok && s < BATCH; s++) {
    // The kernels' bindings: integrated layers at the sample's state, eliminated ones at
    // x_h = u_h, every g(A) at the kernel's g_A; random directions for H d.
    for (int a = 0; a < m->nlayers; a++) {
      int64_t n = fx_layer_size(&f, a);
      const char *name = m->layers[a].name;
      memcpy(f.states[a], net->layers[a].eliminated ? fx_result(&res, "u", name) + s * n : states[a] + s * n,
             (size_t)n * sizeof(double));
      memcpy(f.acts[a], fx_result(&res, "g", name) + s * n, (size_t)n * sizeof(double));
      memcpy(f.inputs[a], inputs[a] + s * n, (size_t)n * sizeof(double));
      for (int64_t i = 0; i < n; i++) f.dirs[a][i] = fx_normal(&f);
    }
    Ctx c = {&f, &r, label, &res, s, fx_energy_scale(&f, &res, s, states, inputs)};
    check_output(&c, sb_str(&out));
  }
  models_checked++;
  sb_free(&out);
  engine_results_free(&res);
  for (int a = 0; a < m->nlayers; a++) {
    free(states[a]);
    free(inputs[a]);
  }
  engine_free(eng);
  sb_free(&err);
  fx_close(&f);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

// The .dam files of `dir`, sorted.
static int list_models(const char *dir, char **names, int max) {
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  int n = 0;
  for (struct dirent *ent; d && (ent = readdir(d)) && n < max;) {
    size_t len = strlen(ent->d_name);
    if (len > 4 && !strcmp(ent->d_name + len - 4, ".dam")) names[n++] = strdup(ent->d_name);
  }
  if (d) closedir(d);
  qsort(names, (size_t)n, sizeof *names, by_name);
  return n;
}

// A model at both spreads, with the layers named in `eliminate` (a space-separated list).
static void check_both(const char *label, const char *text, const char *eliminate) {
  char buf[512], *names[16], *save = NULL;
  int n = 0;
  snprintf(buf, sizeof buf, "%s", eliminate ? eliminate : "");
  for (char *t = strtok_r(buf, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save)) names[n++] = t;
  check_model(label, text, (const char *const *)names, n, 1);
  check_model(label, text, (const char *const *)names, n, 40);
}

int main(int argc, char **argv) {
  const char *src = argc > 1 ? argv[1] : ".";
  char dir[4096], path[8400], *names[128];
  // Every example, and each with layers integrated out.
  snprintf(dir, sizeof dir, "%s/examples", src);
  int n = list_models(dir, names, 128);
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    char *text = fx_read_text(path);
    CHECK(text != NULL);
    if (text) check_both(names[i], text, NULL);
    static const char *const variants[][2] = {{"model_b.dam", "h"},
                                              {"hierarchical.dam", "x3"},
                                              {"hierarchical.dam", "x2"},
                                              {"hierarchical.dam", "x1 x3"}};
    for (size_t v = 0; text && v < sizeof variants / sizeof *variants; v++)
      if (!strcmp(names[i], variants[v][0])) {
        char label[256];
        snprintf(label, sizeof label, "%s --eliminate %s", names[i], variants[v][1]);
        check_both(label, text, variants[v][1]);
      }
    free(text);
    free(names[i]);
  }
  // Every model of the explain goldens that derives (the others are there for their errors:
  // their golden says "# exit 1"), with the --eliminate of its args line.
  snprintf(dir, sizeof dir, "%s/tests/golden/explain", src);
  n = list_models(dir, names, 128);
  int skipped = 0;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    char *text = fx_read_text(path);
    snprintf(path + strlen(path) - 4, 8, ".golden");
    char *golden = fx_read_text(path);
    CHECK(text && golden);
    if (text && golden && !strstr(golden, "\n# exit 0\n")) {
      skipped++;
    } else if (text) {
      char elim[256] = "";
      const char *args = strstr(text, "// args: explain");
      const char *end = args ? strchr(args, '\n') : NULL;
      for (const char *q = args; q && end && (q = strstr(q, "--eliminate ")) && q < end; q++) {
        const char *name = q + 12, *stop = name;
        while (stop < end && *stop != ' ') stop++;
        snprintf(elim + strlen(elim), sizeof elim - strlen(elim), "%.*s ", (int)(stop - name), name);
      }
      check_both(names[i], text, elim);
    }
    free(text);
    free(golden);
    free(names[i]);
  }
  printf("%d models x 2 spreads (%d golden models that do not derive skipped): %d printed "
         "equations, each at %d states (%d of %d expressions reparse to the very node derived; "
         "%d Hessian lines not in the language; %d unrecognised)\n",
         models_checked / 2, skipped, lines_total / 2, 2 * BATCH, same_node / 2, node_lines / 2,
         not_reparsable, unrecognised);
  for (int k = 0; k < K_KINDS; k++)
    printf("  %-32s %5d comparisons, max rel err %.1e (tol 1e-12)\n", stats[k].kind,
           stats[k].count, stats[k].worst);
  return check_report("test_engine_explain");
}

// `damc explain`: the derived equations as text or LaTeX (see network_explain).
#include <string.h>

#include "derive/network.h"
#include "front/ast.h"
#include "support/common.h"

typedef struct {
  StrBuf *out;
  const Network *net;
  PrintStyle style;
} Explainer;

static bool tex(const Explainer *x) { return x->style == PRINT_LATEX; }

static void expr(Explainer *x, ExprId e) {
  expr_print(x->out, x->net->pool, e, &x->net->names, x->style);
}

// One "name = expression" line: plain text, or one row of a LaTeX align environment.
static void line(Explainer *x, const char *text_lhs, const char *tex_lhs, ExprId e,
                 const char *note) {
  if (tex(x)) {
    sb_printf(x->out, "  %s &= ", tex_lhs);
    expr(x, e);
    if (note) sb_printf(x->out, " && \\text{%s}", note);
    sb_append(x->out, " \\\\\n");
  } else {
    sb_printf(x->out, "  %-10s = ", text_lhs);
    expr(x, e);
    if (note) sb_printf(x->out, "    [%s]", note);
    sb_putc(x->out, '\n');
  }
}

static void heading(Explainer *x, const char *title) {
  if (tex(x)) sb_printf(x->out, "\\paragraph{%s}\n", title);
  else sb_printf(x->out, "\n%s\n", title);
}

static void begin_align(Explainer *x) {
  if (tex(x)) sb_append(x->out, "\\begin{align*}\n");
}
static void end_align(Explainer *x) {
  if (tex(x)) sb_append(x->out, "\\end{align*}\n");
}

static void structure_text(const StructJac *h, char *buf, size_t n) {
  if (h->dense) snprintf(buf, n, "dense");
  else if (h->nterms == 0) snprintf(buf, n, "diagonal");
  else snprintf(buf, n, "diagonal + rank %d", h->nterms);
}

static void layer_section(Explainer *x, int a) {
  const Network *net = x->net;
  const LayerEq *l = &net->layers[a];
  const char *name = net->model->layers[a].name;
  char title[256], lhs[128], tlhs[128], st[64];
  StrBuf dims = {0};
  sb_append(&dims, net->names.dims[net->model->layers[a].dim]);
  snprintf(title, sizeof title, "layer %s[%s]%s", name, sb_str(&dims),
           l->eliminated ? " (eliminated: x = u at every instant)" : "");
  sb_free(&dims);
  heading(x, title);
  begin_align(x);
  snprintf(tlhs, sizeof tlhs, "L_{%s}", name);
  line(x, "L", tlhs, l->L, NULL);
  snprintf(lhs, sizeof lhs, "g(%s)", name);
  snprintf(tlhs, sizeof tlhs, "g_{%s}", name);
  line(x, lhs, tlhs, l->g, NULL);
  structure_text(&l->hessian, st, sizeof st);
  snprintf(tlhs, sizeof tlhs, "H_{%s} d", name);
  if (!l->hessian.dense) {
    if (l->hessian.diag) {
      snprintf(tlhs, sizeof tlhs, "\\operatorname{diag} H_{%s}", name);
      line(x, "diag H", tlhs, l->hessian.diag, st);
    }
    for (int k = 0; k < l->hessian.nterms; k++) {
      char t[64], tt[96];
      snprintf(t, sizeof t, "H u%d", k + 1);
      snprintf(tt, sizeof tt, "u_{%d}", k + 1);
      line(x, t, tt, l->hessian.u[k], k == 0 && !l->hessian.diag ? st : "rank-one term u v'");
      snprintf(t, sizeof t, "H v%d", k + 1);
      snprintf(tt, sizeof tt, "v_{%d}", k + 1);
      line(x, t, tt, l->hessian.v[k], NULL);
    }
  }
  snprintf(tlhs, sizeof tlhs, "H_{%s} d", name);
  line(x, "H d", tlhs, l->hvp, l->hessian.dense ? "dense: Hessian-vector product" : NULL);
  snprintf(tlhs, sizeof tlhs, "\\Lambda_{%s}", name);
  line(x, "Lambda", tlhs, l->legendre, "x . g - L");
  snprintf(tlhs, sizeof tlhs, "\\tau_{%s}", name);
  line(x, "tau", tlhs, l->tau, NULL);
  end_align(x);
}

// E = sum_A Lambda_A - sum_A I_A . g_A + E_int over the layers that are not eliminated
// (all of them, or those of the reduced model), with the Lambda_A named (they are printed
// in the layer sections) so that the coupling terms stand out. `note`, when given, follows
// on a line of its own in text and as a remark on the line in LaTeX.
static void energy_line(Explainer *x, bool reduced, const char *tex_lhs, const char *note) {
  const Network *net = x->net;
  const Model *m = net->model;
  ExprId coupling = reduced ? net->reduced_energy_int : net->energy_int;
  if (tex(x)) sb_printf(x->out, "  %s &= ", tex_lhs);
  else sb_append(x->out, "  E          = ");
  bool first = true;
  for (int a = 0; a < net->nlayers; a++) {
    if (reduced && net->layers[a].eliminated) continue;
    const char *name = m->layers[a].name;
    if (tex(x)) sb_printf(x->out, "%s\\Lambda_{%s}", first ? "" : " + ", name);
    else sb_printf(x->out, "%sLambda_%s", first ? "" : " + ", name);
    first = false;
  }
  for (int a = 0; a < net->nlayers; a++) {
    if (!net->layers[a].input || (reduced && net->layers[a].eliminated)) continue;
    const char *name = m->layers[a].name;
    bool identity = reduced && net->layers[a].g == net->layers[a].state;
    if (tex(x)) sb_printf(x->out, " - I_{%s} \\cdot %s_{%s}", name, identity ? "x" : "g", name);
    else if (identity) sb_printf(x->out, " - dot(I_%s, %s)", name, name);
    else sb_printf(x->out, " - dot(I_%s, g(%s))", name, name);
  }
  if (!expr_is_const(net->pool, coupling, 0)) {
    StrBuf e = {0};
    expr_print(&e, net->pool, coupling, &net->names, x->style);
    const char *text = sb_str(&e);
    if (text[0] == '-') sb_printf(x->out, " - %s", text + 1);
    else sb_printf(x->out, " + %s", text);
    sb_free(&e);
  }
  if (tex(x)) {
    if (note) sb_printf(x->out, " && \\text{%s}", note);
    sb_append(x->out, " \\\\\n");
  } else {
    sb_putc(x->out, '\n');
    if (note) sb_printf(x->out, "  (%s)\n", note);
  }
}

// The first directed synapse into an eliminated layer (index into Model.synapses), or -1.
static int directed_into_eliminated(const Network *net) {
  const Model *m = net->model;
  for (int i = 0; i < m->nsynapses; i++)
    if (m->synapses[i].directed && net->layers[m->synapses[i].a].eliminated) return i;
  return -1;
}

// The energy of the reduced model, and what it is. Without directed synapses it is E_eff
// of docs/theory.md eq. (2.1), an energy function of the reduced dynamics. With one, the
// reduced model has none: the line is still the E the kernels compute (the full model's E
// at x_h = u_h; for a directed synapse into h that is E_eff plus g_h . (D @ g(b)),
// docs/theory.md §2.3), and the note says so.
static void reduced_energy_line(Explainer *x) {
  const Network *net = x->net;
  const Model *m = net->model;
  char note[512];
  int d = directed_into_eliminated(net);
  if (d >= 0) {
    const ModelSynapse *s = &m->synapses[d];
    const char *w = m->weights[s->weight].name, *h = m->layers[s->a].name,
               *b = m->layers[s->b].name;
    if (tex(x))
      snprintf(note, sizeof note, "no energy function: a directed synapse feeds an eliminated "
               "layer; E as eval and run report it");
    else
      snprintf(note, sizeof note, "the reduced model has no energy function: the directed "
               "synapse %s : %s -> %s feeds the eliminated layer %s. This E is the full model's "
               "E at x_%s = u_%s, as eval and run report it, with the term dot(g(%s), %s @ g(%s)) "
               "that E_eff lacks; it is not guaranteed to decrease", w, b, h, h, h, h, h, w, b);
  } else if (net->has_directed) {
    snprintf(note, sizeof note, "%s", tex(x) ? "no energy function (directed synapse)"
             : "the reduced model has no energy function: a directed synapse adds to the "
               "currents without energy. This E is the one eval and run report; it is not "
               "guaranteed to decrease");
  }
  energy_line(x, true, net->has_directed ? "E" : "E_{\\mathrm{eff}}",
              net->has_directed ? note : NULL);
}

// A coefficient that is not a number or a name is parenthesised before what it multiplies:
// "(2 * tscale + 0.1) dv/dt", not "2 * tscale + 0.1 dv/dt".
static bool compound(const Network *net, ExprId e) {
  const Expr *n = expr_get(net->pool, e);
  return n->kind == EX_ADD || n->kind == EX_MUL || n->kind == EX_POW ||
         (n->kind == EX_CONST && n->value < 0);
}

// tau_A dx_A/dt = u_A - x_A (or x_A = u_A for an eliminated layer).
static void dynamics_line(Explainer *x, int a) {
  const Network *net = x->net;
  const LayerEq *l = &net->layers[a];
  const char *name = net->model->layers[a].name;
  char lhs[160], tlhs[160];
  if (l->eliminated) {
    snprintf(lhs, sizeof lhs, "%s", name);
    snprintf(tlhs, sizeof tlhs, "x_{%s}", name);
    line(x, lhs, tlhs, l->u, "tau = 0: solved instantly");
    return;
  }
  StrBuf tau = {0};
  bool paren = compound(net, l->tau);
  if (paren) sb_append(&tau, tex(x) ? "\\left(" : "(");
  expr_print(&tau, net->pool, l->tau, &net->names, x->style);
  if (paren) sb_append(&tau, tex(x) ? "\\right)" : ")");
  if (tex(x)) sb_printf(x->out, "  %s \\frac{dx_{%s}}{dt} &= ", sb_str(&tau), name);
  else sb_printf(x->out, "  %s d%s/dt = ", sb_str(&tau), name);
  sb_free(&tau);
  expr(x, l->u);
  sb_printf(x->out, tex(x) ? " - x_{%s} \\\\\n" : " - %s\n", name);
}

void network_explain(StrBuf *out, const Network *net, PrintStyle style) {
  Explainer x = {out, net, style};
  const Model *m = net->model;
  if (tex(&x)) sb_printf(out, "%% damc explain: model %s\n", m->name);
  else sb_printf(out, "model %s\n", m->name);
  for (int a = 0; a < net->nlayers; a++) layer_section(&x, a);

  heading(&x, "energy");
  begin_align(&x);
  energy_line(&x, false, "E",
              !net->has_directed ? NULL
              : tex(&x) ? "no energy function (directed synapse)"
                        : "a directed synapse adds to the currents without energy: E is not "
                          "guaranteed to decrease");
  end_align(&x);

  heading(&x, "currents");
  begin_align(&x);
  for (int a = 0; a < net->nlayers; a++) {
    char lhs[128], tlhs[128];
    snprintf(lhs, sizeof lhs, "u_%s", m->layers[a].name);
    snprintf(tlhs, sizeof tlhs, "u_{%s}", m->layers[a].name);
    line(&x, lhs, tlhs, net->layers[a].u, NULL);
  }
  end_align(&x);

  heading(&x, "dynamics");
  begin_align(&x);
  for (int a = 0; a < net->nlayers; a++) dynamics_line(&x, a);
  end_align(&x);

  if (!net->reduced) return;
  heading(&x, "reduced model (eliminated layers integrated out)");
  begin_align(&x);
  reduced_energy_line(&x);
  for (int a = 0; a < net->nlayers; a++) {
    if (net->layers[a].eliminated) continue;
    const char *name = m->layers[a].name;
    if (tex(&x)) sb_printf(out, "  x_{%s} &\\leftarrow ", name);
    else sb_printf(out, "  %s <- ", name);
    expr(&x, net->reduced_u[a]);
    sb_append(out, tex(&x) ? " \\\\\n" : "    [x <- u: one Euler step with dt = tau]\n");
  }
  end_align(&x);
}

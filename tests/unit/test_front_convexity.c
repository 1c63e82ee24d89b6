// The static convexity proof (front/convexity.h, docs/theory.md §4.2.5): every prelude
// Lagrangian with its default parameters is proven convex, and so is every example; convex
// forms written by hand are proven; non-convex ones are flagged with the sub-expression to
// blame and the reason; the parameter rules of §4.2.1; re-evaluation with other param values
// and sizes, as damc check does with --set.
#include <dirent.h>
#include <stdlib.h>

#include "check.h"
#include "front/convexity.h"
#include "front/front.h"
#include "support/common.h"

typedef struct {
  Session *s;
  Model *m;
} Compiled;

static Compiled compile(const char *text) {
  Compiled c = {session_new(NULL), NULL};
  c.m = front_compile(c.s, "test.dam", text, strlen(text));
  if (!c.m) fprintf(stderr, "does not compile:\n%s\n%s", text, diag_text(c.s->diag));
  CHECK(c.m != NULL);  // a case whose model stops compiling must fail, not pass unchecked
  return c;
}

// The source text under a span of the user's file.
static void span_text(const Compiled *c, Span span, char *buf, size_t size) {
  const SourceFile *f = diag_source(c->s->diag, span.file);
  size_t n = span.end - span.begin;
  if (n >= size) n = size - 1;
  memcpy(buf, f->text + span.begin, n);
  buf[n] = '\0';
}

static const char *model_of(const char *lagrangian, const char *size) {
  static char text[1024];
  snprintf(text, sizeof text,
           "dim N = %s;\nparam beta = 2;\nparam T = 0.5;\nparam b;\nparam neg = -3;\n"
           "def cube(u) = sum(u^3);\ndef sq(u, s = 1) = s * (u * u);\n"
           "layer x[N] { L = %s; }\n",
           size, lagrangian);
  return text;
}

// ---- Proven convex ----

static const char *const convex_forms[] = {
    // the issue's forms
    "0.5*sum(x^2)",
    "logsumexp(beta*x)/beta",
    "sum(relu(x)^3)/3",
    "sum(softplus(x))",
    "norm(x)",
    "0.5*norm(x)^2",
    "T*softplus(logsumexp(x/T))",
    // the prelude's bodies, written out
    "0.5 * sum(relu(x)^2 + 0.01 * relu(-x)^2)",
    "sum(exp(beta * x)) / beta",
    "sum(logcosh(beta * x)) / beta",
    "sum(softplus(beta * x)) / beta",
    "log(1 + sum(exp(beta * x))) / beta",
    "2 * len(x) * sqrt(mean((x - mean(x))^2) + 1e-5) + 3 * sum(x)",
    "sqrt(sum(x^2) + 1e-5) - sum(x)",
    // compositions
    "sum(exp(x))",
    "sum(log(1 + exp(x)))",
    "sum(sqrt(x^2 + 1))",
    "sum(abs(x)^3) / 3",
    "logsumexp(x) + 0.5 * sum(x^2)",
    "log(sum(exp(2 * x))) / 2",
    "mean(x^2) * len(x)",
    "0.5 * dot(x, x) + sum(x)",
    "0.5 * (x @ x)",
    "sum(x * x)",
    "sq(sum(x), s = 2)",
    "sum(expm1(x) - x)",
    "sum(cosh(x))",
    "sum(softplus(x)^2)",
    "norm(x - mean(x))",
    "2 * sqrt(sum(x^2) + 1) + logsumexp(-x)",
    "sum(x^4) / 4 + sum(x)^2",
    "sum(x)^2 + norm(x)^2",
    "log(1 + sum(exp(x))) + sum(abs(x))",
    "sum(log1p(exp(x)))",
    "exp(logsumexp(x))",
    "sum(relu(x - 1)^1.5)",
    "sum(2^x)",
    "sum(relu(relu(x) - 1))",
    "sum(x)",
    "-sum(x) + 3",
    "0",
    "neg * neg * sum(x^2)",
    "sum(x^2) / -neg",
    "-(-sum(cosh(x)))",
    "sum(exp(x)) - sum(x - x) * 0",
    "lagr_rexp(x - mean(x), beta)",  // the catalogue, on an affine argument
    "lagr_ghostmax(2 * x + 1) + lagr_layernorm(x, 0.5, beta, 0)",
};

// ---- Proven not convex: the form and the text of the sub-expression to blame ----

typedef struct {
  const char *form;
  const char *blamed;
  const char *reason;  // a part of the reason
} NonConvex;

static const NonConvex nonconvex_forms[] = {
    {"sum(x^3)", "x^3", "x^3 is not convex for x < 0"},
    {"-logsumexp(x)", "-logsumexp(x)", "a negative multiple of a convex term"},
    {"-0.5*sum(x^2)", "-0.5*sum(x^2)", "a negative multiple of a convex term"},
    {"-beta * sum(x^2)", "-beta * sum(x^2)", "a negative multiple of a convex term"},
    {"neg * sum(exp(x))", "neg * sum(exp(x))", "a negative multiple"},
    {"sum(exp(x)) / neg", "sum(exp(x)) / neg", "a negative multiple"},
    {"sum(x) - logsumexp(x)", "logsumexp(x)", "a convex term subtracted"},
    {"sum(x) - 2 * lagr_exp(x)", "2 * lagr_exp(x)", "a convex term subtracted"},
    {"-lagr_softmax(x)", "-lagr_softmax(x)", "a negative multiple"},
    {"-lagr_spherical(x)", "-lagr_spherical(x)", "a negative multiple"},
    {"-lagr_ghostmax(x)", "-lagr_ghostmax(x)", "a negative multiple"},
    {"-lagr_rexp(x)", "-lagr_rexp(x)", "a negative multiple"},
    {"sum((beta * x)^3) + sum(x)", "(beta * x)^3", "(beta * x)^3 is not convex for beta * x < 0"},
    {"sum(x)^3", "sum(x)^3", "is not convex for sum(x) < 0"},
    {"sum(x^5 + x)", "x^5", "not convex"},
    {"sum(tanh(x))", "tanh(x)", "concave for positive arguments"},
    {"sum(sigmoid(2 * x + 1))", "sigmoid(2 * x + 1)", "not convex"},
    {"sum(sinh(x))", "sinh(x)", "concave for negative arguments"},
    {"-sum(relu(x))", "-sum(relu(x))", "a negative multiple"},
    {"-norm(x)", "-norm(x)", "a negative multiple"},
    {"-sum(abs(x)) + sum(x)", "-sum(abs(x))", "a negative multiple"},
    {"-sum(x^2) + 0.1 * sum(x)", "-sum(x^2)", "a negative multiple"},
    {"-sum(relu(x)) - sum(cosh(x))", "-sum(relu(x))", "a negative multiple"},
    {"-sum(exp(x)) * 2 + sum(x)", "-sum(exp(x))", "a negative multiple"},
    {"-sum(sq(x))", "-sum(sq(x))", "a negative multiple"},
};

// ---- Neither: the rules cannot tell ----

static const char *const unknown_forms[] = {
    "sum(x*sigmoid(x))",     // SiLU: not convex, but not provably so by the rules
    "sum(x * tanh(x))",      // convex, but a product
    "sum(log(cosh(x)))",     // convex (logcosh), but log of a convex term
    "logsumexp(x)^2",        // a square of a term of unknown sign
    "sum(sinh(x) * x)",
    "sum(x^2) - sum(x^2)",   // a difference of two convex terms
    "logsumexp(b * x) / b",  // b has no default: its sign is unknown
    "sum(x^b)",
    "sum(log(x))",
    "sum(sqrt(x))",
    "sum(exp(x)^x)",
    "sum(x / (1 + x^2))",
    "sum(exp(x)) / sum(x)",
    "-(sum(x - x))^2",       // concave, and in fact constant: not proven not convex
    "sum(2 * x * x)",        // convex, but (2 * x) * x is a product of two terms
    "sum(exp(x)) - sum(exp(x) - exp(x)) * 0",  // 0 times a term of unknown curvature
    "sum(x^2) + 0 * sum(log(x))",  // which may be undefined: 0 * NaN is NaN
    "lagr_rexp(relu(x))",    // the catalogue needs an affine argument
    "lagr_rexp(x, beta = sum(x))",  // and constant parameters
};

static void check_form(const char *form, Convexity want, const char *blamed,
                       const char *reason) {
  Compiled c = compile(model_of(form, "4"));
  CHECK(c.m != NULL);
  if (!c.m) {
    session_free(c.s);
    return;
  }
  const ModelLayer *l = &c.m->layers[0];
  char text[256];
  span_text(&c, l->convexity_span, text, sizeof text);
  if (l->convexity != want || (blamed && strcmp(text, blamed) != 0) ||
      (reason && !strstr(l->convexity_reason, reason))) {
    fprintf(stderr, "L = %s: %s at '%s': %s (want %s at '%s': %s)\n", form,
            convexity_verdict_text(l->convexity), text, l->convexity_reason,
            convexity_verdict_text(want), blamed ? blamed : "", reason ? reason : "");
    check_failures++;
  }
  check_count++;
  // Parse warns about a proven non-convexity, and is otherwise silent on convexity.
  bool warned = strstr(diag_text(c.s->diag), "is not convex") != NULL;
  CHECK(warned == (want == NONCONVEX_PROVEN));
  session_free(c.s);
}

// ---- Every prelude Lagrangian, with its defaults (and 2 for required parameters) ----

static int check_prelude(void) {
  Compiled c = compile(model_of("0", "4"));
  if (!c.m) return 0;
  int n = 0;
  for (const AstDecl *d = c.m->decls; d; d = d->next) {
    if (!d->in_prelude || d->kind != DECL_DEF || strncmp(d->name, "lagr_", 5) != 0) continue;
    char call[128];
    int len = snprintf(call, sizeof call, "%s(x", d->name);
    for (const AstParam *p = d->params->next; p; p = p->next)
      if (!p->default_value) len += snprintf(call + len, sizeof call - (size_t)len, ", 2");
    snprintf(call + len, sizeof call - (size_t)len, ")");
    char text[256];
    snprintf(text, sizeof text, "dim N = 4;\nlayer x[N] { L = %s; }\n", call);
    Compiled one = compile(text);
    CHECK(one.m != NULL);
    if (one.m) {
      const ModelLayer *l = &one.m->layers[0];
      if (l->convexity != CONVEX_PROVEN || l->nparam_issues) {
        fprintf(stderr, "L = %s: %s: %s\n", call, convexity_verdict_text(l->convexity),
                l->convexity_reason);
        check_failures++;
      }
      check_count++;
      // Only lagr_rexp needs the catalogue; the others are proven by the rules.
      bool catalogue = strstr(l->convexity_reason, "catalogue") != NULL;
      CHECK(catalogue == (strcmp(d->name, "lagr_rexp") == 0));
      CHECK(diag_warning_count(one.s->diag) == 0);
      n++;
    }
    session_free(one.s);
  }
  session_free(c.s);
  return n;
}

// ---- The examples parse without warnings, every Lagrangian proven convex ----

static int check_examples(const char *root) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/examples", root);
  DIR *dp = opendir(dir);
  CHECK(dp != NULL);
  if (!dp) return 0;
  int layers = 0;
  struct dirent *ent;
  while ((ent = readdir(dp))) {
    size_t n = strlen(ent->d_name);
    if (n < 5 || strcmp(ent->d_name + n - 4, ".dam") != 0) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) continue;
    char *text = xmalloc(1 << 20);
    size_t len = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    text[len] = '\0';
    Compiled c = {session_new(NULL), NULL};
    c.m = front_compile(c.s, path, text, len);
    CHECK(c.m != NULL);
    CHECK_EQ(diag_warning_count(c.s->diag), 0);
    for (int a = 0; c.m && a < c.m->nlayers; a++, layers++) {
      if (c.m->layers[a].convexity != CONVEX_PROVEN)
        fprintf(stderr, "%s: layer %s: %s\n", ent->d_name, c.m->layers[a].name,
                c.m->layers[a].convexity_reason);
      CHECK(c.m->layers[a].convexity == CONVEX_PROVEN);
    }
    session_free(c.s);
    free(text);
  }
  closedir(dp);
  return layers;
}

// ---- Parameter rules ----

typedef struct {
  const char *form;
  const char *span;  // the argument (or the call) the issue is at
  const char *text;
  bool fatal;
  Convexity verdict;
} RuleCase;

static const RuleCase rule_cases[] = {
    {"lagr_softmax(x, beta = -1)", "beta = -1",
     "'beta' of lagr_softmax must be positive, but it is -1", true, NONCONVEX_PROVEN},
    {"lagr_exp(x, neg)", "neg",
     "'beta' of lagr_exp must be positive, but it is -3 (with the params' defaults)", true,
     NONCONVEX_PROVEN},
    {"lagr_tanh(x, 0)", "0", "'beta' of lagr_tanh must be positive, but it is 0", true,
     CONVEXITY_UNKNOWN},
    {"lagr_repu(x, 1)", "1", "'n' of lagr_repu must be greater than 1, but it is 1", true,
     CONVEX_PROVEN},
    {"lagr_repu(x, 0.5)", "0.5", "'n' of lagr_repu must be greater than 1, but it is 0.5",
     true, CONVEXITY_UNKNOWN},
    {"lagr_repu(x, 1.5)", "1.5",
     "'n' of lagr_repu is 1.5: below 2 the Hessian is unbounded near 0", false, CONVEX_PROVEN},
    {"lagr_leaky(x, 2)", "2", "'a' of lagr_leaky must be in (0, 1], but it is 2", true,
     CONVEX_PROVEN},
    {"lagr_leaky(x, a = -0.5)", "a = -0.5", "'a' of lagr_leaky must be in (0, 1]", true,
     CONVEXITY_UNKNOWN},
    {"lagr_layernorm(x, gamma = -1)", "gamma = -1",
     "'gamma' of lagr_layernorm must not be negative, but it is -1", true, CONVEXITY_UNKNOWN},
    {"lagr_spherical(x, gamma = -1)", "gamma = -1",
     "'gamma' of lagr_spherical must not be negative, but it is -1", true, NONCONVEX_PROVEN},
    {"lagr_spherical(x, eps = -0.25)", "eps = -0.25",
     "'eps' of lagr_spherical must not be negative, but it is -0.25", true,
     CONVEXITY_UNKNOWN},
};

static void check_rule(const RuleCase *rc) {
  Compiled c = compile(model_of(rc->form, "4"));
  CHECK(c.m != NULL);
  if (!c.m) {
    session_free(c.s);
    return;
  }
  const ModelLayer *l = &c.m->layers[0];
  CHECK_EQ(l->nparam_issues, 1);
  if (l->nparam_issues >= 1) {
    char text[128];
    span_text(&c, l->param_issues[0].span, text, sizeof text);
    CHECK_STREQ(text, rc->span);
    if (!strstr(l->param_issues[0].text, rc->text))
      fprintf(stderr, "%s: '%s'\n", rc->form, l->param_issues[0].text);
    CHECK(strstr(l->param_issues[0].text, rc->text) != NULL);
    CHECK(l->param_issues[0].fatal == rc->fatal);
  }
  if (l->convexity != rc->verdict)
    fprintf(stderr, "%s: %s: %s\n", rc->form, convexity_verdict_text(l->convexity),
            l->convexity_reason);
  CHECK(l->convexity == rc->verdict);
  // One warning: the parameter's, which explains a proven non-convexity of the call.
  const char *diag = diag_text(c.s->diag);
  CHECK(strstr(diag, rc->text) != NULL);
  CHECK(strstr(diag, "is not convex") == NULL);
  session_free(c.s);
}

// ---- Re-evaluation: other param values and sizes ----

static void check_reevaluation(void) {
  Compiled c = compile(model_of("logsumexp(b * x) / b", "4"));
  if (!c.m) return;
  CHECK(c.m->layers[0].convexity == CONVEXITY_UNKNOWN);
  CHECK(strstr(c.m->layers[0].convexity_reason, "may be zero") != NULL);
  int b = -1;
  for (int i = 0; i < c.m->nparams; i++)
    if (strcmp(c.m->params[i].name, "b") == 0) b = i;
  CHECK(b >= 0);
  double params[8];
  for (int i = 0; i < c.m->nparams && i < 8; i++) params[i] = c.m->params[i].value;
  ConvexityResult r;
  params[b] = 4;
  convexity_analyze(c.m, 0, params, NULL, c.s->diag, &r);
  CHECK(r.verdict == CONVEX_PROVEN);
  params[b] = -4;
  convexity_analyze(c.m, 0, params, NULL, c.s->diag, &r);
  CHECK(r.verdict == NONCONVEX_PROVEN);
  CHECK(strstr(r.reason, "a negative multiple of a convex term") != NULL);
  session_free(c.s);

  // With --set, a parameter rule names the params' values.
  c = compile(model_of("lagr_softmax(x, beta)", "4"));
  if (!c.m) return;
  CHECK_EQ(c.m->layers[0].nparam_issues, 0);
  int beta = 0;
  for (int i = 0; i < c.m->nparams; i++) {
    params[i] = c.m->params[i].value;
    if (strcmp(c.m->params[i].name, "beta") == 0) beta = i;
  }
  params[beta] = -1;
  convexity_analyze(c.m, 0, params, NULL, c.s->diag, &r);
  CHECK(r.verdict == NONCONVEX_PROVEN);
  CHECK_EQ(r.nissues, 1);
  CHECK_STREQ(r.issues[0].text,
              "'beta' of lagr_softmax must be positive, but it is -1 (with the params' values)");
  session_free(c.s);

  // -logsumexp is affine for one neuron: not proven not convex then. A size not known yet
  // counts as two or more; the size given to convexity_analyze decides.
  c = compile(model_of("-logsumexp(x)", "1"));
  if (c.m) CHECK(c.m->layers[0].convexity != NONCONVEX_PROVEN);
  session_free(c.s);
  const char *unbound = "dim N;\nsynapse W[N, N] : x <-> x;\nlayer x[N] { L = -logsumexp(x); }\n";
  c = compile(unbound);
  if (!c.m) return;
  CHECK(c.m->layers[0].convexity == NONCONVEX_PROVEN);
  int64_t dims[4] = {1, 1, 1, 1};
  convexity_analyze(c.m, 0, NULL, dims, c.s->diag, &r);
  CHECK(r.verdict != NONCONVEX_PROVEN);
  dims[0] = dims[1] = dims[2] = dims[3] = 3;
  convexity_analyze(c.m, 0, NULL, dims, c.s->diag, &r);
  CHECK(r.verdict == NONCONVEX_PROVEN);
  session_free(c.s);
}

// ---- Blame inside a user def: the place in its body, with the call as a note ----

static void check_def_blame(void) {
  Compiled c = compile(model_of("cube(x) + sum(x)", "4"));
  if (!c.m) return;
  const ModelLayer *l = &c.m->layers[0];
  CHECK(l->convexity == NONCONVEX_PROVEN);
  char text[64];
  span_text(&c, l->convexity_span, text, sizeof text);
  CHECK_STREQ(text, "u^3");
  const char *diag = diag_text(c.s->diag);
  CHECK(strstr(diag, "note: in this call of 'cube'") != NULL);
  session_free(c.s);
}

// ---- A budget: defs that call the next twice, 18 levels (2^18 inlined bodies) ----

static void check_budget(void) {
  char text[4096];
  int len = snprintf(text, sizeof text, "dim N = 2;\ndef f0(u) = sum(u^2);\n");
  for (int i = 1; i <= 18; i++)
    len += snprintf(text + len, sizeof text - (size_t)len, "def f%d(u) = f%d(u) + f%d(u);\n",
                    i, i - 1, i - 1);
  snprintf(text + len, sizeof text - (size_t)len, "layer x[N] { L = f18(x); }\n");
  Compiled c = compile(text);
  if (!c.m) return;
  CHECK(c.m->layers[0].convexity == CONVEXITY_UNKNOWN);
  CHECK(strstr(c.m->layers[0].convexity_reason, "too large") != NULL);
  session_free(c.s);
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : ".";
  size_t nconvex = sizeof convex_forms / sizeof *convex_forms;
  size_t nnon = sizeof nonconvex_forms / sizeof *nonconvex_forms;
  size_t nunknown = sizeof unknown_forms / sizeof *unknown_forms;
  for (size_t i = 0; i < nconvex; i++) check_form(convex_forms[i], CONVEX_PROVEN, NULL, NULL);
  for (size_t i = 0; i < nnon; i++)
    check_form(nonconvex_forms[i].form, NONCONVEX_PROVEN, nonconvex_forms[i].blamed,
               nonconvex_forms[i].reason);
  for (size_t i = 0; i < nunknown; i++)
    check_form(unknown_forms[i], CONVEXITY_UNKNOWN, NULL, NULL);
  int prelude = check_prelude();
  CHECK(prelude >= 12);
  int examples = check_examples(root);
  CHECK(examples >= 5);
  for (size_t i = 0; i < sizeof rule_cases / sizeof *rule_cases; i++) check_rule(&rule_cases[i]);
  check_reevaluation();
  check_def_blame();
  check_budget();
  CHECK_STREQ(convexity_verdict_text(CONVEX_PROVEN), "convex (proven)");
  CHECK_STREQ(convexity_verdict_text(NONCONVEX_PROVEN), "not convex (proven)");
  CHECK_STREQ(convexity_verdict_text(CONVEXITY_UNKNOWN), "unknown");
  printf("%zu forms proven convex, %zu proven not convex, %zu unknown; %d prelude "
         "Lagrangians, %d example layers\n",
         nconvex, nnon, nunknown, prelude, examples);
  return check_report("test_front_convexity");
}

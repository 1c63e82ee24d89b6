// Printed expressions reparse to the same node: random Lagrangians in the model language
// are compiled, their L, Lambda and sum(g) printed (PRINT_TEXT) and compiled again as the
// Lagrangians of other layers of one model; after renaming those layers' states, the nodes
// must be the very same DAG nodes.
#include "derive_fixture.h"

enum { CASES = 150 };

static uint64_t rng = 99;
static int pick(int n) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (int)((rng >> 33) % (uint64_t)n);
}

// A random vector expression of the state `a`.
static void gen_vector(StrBuf *sb, int depth) {
  static const char *const fns[] = {"exp", "tanh", "sigmoid", "softplus", "relu", "abs",
                                    "logcosh", "log1p", "expm1", "sinh", "cosh", "sqrt",
                                    "log", "step", "sign", "sech2"};
  int op = depth <= 0 ? pick(2) : pick(9);
  switch (op) {
  case 0: sb_append(sb, "a"); break;
  case 1: sb_printf(sb, "%d * a", pick(5) - 2); break;
  case 2:
  case 3: {
    const char *fn = fns[pick(16)];
    bool positive = strcmp(fn, "sqrt") == 0 || strcmp(fn, "log") == 0 || strcmp(fn, "log1p") == 0;
    sb_printf(sb, "%s(", fn);
    if (positive) sb_append(sb, "1 + ");
    if (positive) sb_append(sb, "(");
    gen_vector(sb, depth - 1);
    if (positive) sb_append(sb, ")^2");
    sb_putc(sb, ')');
    break;
  }
  case 4:
    sb_putc(sb, '(');
    gen_vector(sb, depth - 1);
    sb_append(sb, pick(2) ? " + " : " - ");
    gen_vector(sb, depth - 1);
    sb_putc(sb, ')');
    break;
  case 5:
    gen_vector(sb, depth - 1);
    sb_append(sb, " * ");
    gen_vector(sb, depth - 1);
    break;
  case 6:
    sb_putc(sb, '(');
    gen_vector(sb, depth - 1);
    sb_printf(sb, ")^%d", pick(3) + 2);
    break;
  case 7:
    sb_append(sb, "beta * ");
    gen_vector(sb, depth - 1);
    sb_append(sb, " / (1 + beta^2)");
    break;
  default:
    sb_append(sb, pick(2) ? "mean(" : "norm(");
    gen_vector(sb, depth - 1);
    sb_append(sb, ") * a");
    break;
  }
}

static void gen_scalar(StrBuf *sb) {
  static const char *const reductions[] = {"sum", "logsumexp", "norm", "mean"};
  sb_printf(sb, "%s(", reductions[pick(4)]);
  gen_vector(sb, 1 + pick(3));
  sb_append(sb, ")");
  if (pick(2)) {
    sb_append(sb, " + 0.5 * dot(a, ");
    gen_vector(sb, pick(2));
    sb_append(sb, ")");
  }
}

// Prints `e` with layer 0's state named `as`.
static void print_as(const Fixture *f, ExprId e, const char *as, StrBuf *out) {
  ExprNames names = f->net->names;
  const char *layers[1] = {as};
  names.layers = layers;
  expr_print(out, f->net->pool, e, &names, PRINT_TEXT);
}

typedef struct {
  ExprId to;
} RenameTo;

static ExprId to_state_a(void *ctx, ExprPool *pool, const Expr *leaf) {
  (void)pool;
  return leaf->kind == EX_STATE && leaf->index > 0 ? ((RenameTo *)ctx)->to : 0;
}

static int failures_shown;

static void check_same(Fixture *f, int layer, ExprId want, const char *what, const char *text) {
  RenameTo r = {f->net->layers[0].state};
  ExprId got = expr_substitute(f->net->pool, f->net->layers[layer].L, to_state_a, &r);
  CHECK_EQ(got, want);
  if (got != want && failures_shown++ < 5) {
    StrBuf a = {0}, b = {0};
    expr_print(&a, f->net->pool, want, &f->net->names, PRINT_TEXT);
    expr_print(&b, f->net->pool, got, &f->net->names, PRINT_TEXT);
    fprintf(stderr, "%s of %s:\n  printed  %s\n  reparsed %s\n", what, text, sb_str(&a), sb_str(&b));
    sb_free(&a);
    sb_free(&b);
  }
}

int main(void) {
  for (int c = 0; c < CASES; c++) {
    StrBuf L = {0};
    gen_scalar(&L);
    char text[8192];
    snprintf(text, sizeof text, "dim N = 4; param beta = 1.5;\nlayer a[N] { L = %s + 0 * beta; }\n",
             sb_str(&L));
    Fixture first;
    CHECK(fx_open(&first, text, 4, 1));
    if (!first.net) {
      fprintf(stderr, "does not compile: %s\n", text);
      sb_free(&L);
      continue;
    }
    StrBuf pl = {0}, plam = {0}, pg = {0};
    print_as(&first, first.net->layers[0].L, "b", &pl);
    print_as(&first, first.net->layers[0].legendre, "c", &plam);
    print_as(&first, first.net->layers[0].g, "d", &pg);
    fx_close(&first);

    StrBuf model = {0};
    sb_printf(&model,
              "dim N = 4; param beta = 1.5;\nlayer a[N] { L = %s + 0 * beta; }\n"
              "layer b[N] { L = %s; }\nlayer c[N] { L = %s; }\nlayer d[N] { L = sum(%s); }\n",
              sb_str(&L), sb_str(&pl), sb_str(&plam), sb_str(&pg));
    Fixture f;
    CHECK(fx_open(&f, sb_str(&model), 4, 1));
    if (f.net) {
      const LayerEq *a = &f.net->layers[0];
      check_same(&f, 1, a->L, "L", sb_str(&L));
      check_same(&f, 2, a->legendre, "Lambda", sb_str(&L));
      // A constant vector (a broadcast scalar) has no syntax of its own: it prints as the
      // scalar, so sum(g) is compared only when g is not constant.
      if (expr_get(f.net->pool, a->g)->kind != EX_BCAST)
        check_same(&f, 3, expr_sum(f.net->pool, a->g), "sum(g)", sb_str(&L));
    } else {
      fprintf(stderr, "printed forms do not compile:\n%s\n", sb_str(&model));
    }
    fx_close(&f);
    sb_free(&model);
    sb_free(&pl);
    sb_free(&plam);
    sb_free(&pg);
    sb_free(&L);
  }
  return check_report("test_derive_reparse");
}

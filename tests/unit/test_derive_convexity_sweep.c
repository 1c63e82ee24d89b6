// The static convexity proof (front/convexity.h) against numbers: random Lagrangians built
// from every function, reduction and operator of the language, the prelude's Lagrangians
// and a user def, for layers of 3 neurons and of 1; each one the proof calls
// convex must satisfy midpoint convexity, L((a + b)/2) <= (L(a) + L(b))/2, at every pair of
// random states tried (and be defined at all of them), and each one it calls not convex must
// break it at some pair. The reference interpreter evaluates L.
#include "derive_fixture.h"
#include "front/convexity.h"

enum { N = 3, PAIRS = 400, SEARCH = 6000, FORMS = 3000 };

typedef struct {
  char *text;
  size_t len, cap;
  uint64_t rng;
} Gen;

static unsigned pick(Gen *g, unsigned n) {
  g->rng = g->rng * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned)((g->rng >> 33) % n);
}

static void put(Gen *g, const char *s) {
  size_t n = strlen(s);
  if (g->len + n + 1 > g->cap) {
    g->cap = 2 * (g->len + n + 1);
    g->text = realloc(g->text, g->cap);
  }
  memcpy(g->text + g->len, s, n + 1);
  g->len += n;
}

static const char *const fns[] = {"exp",  "log",  "sqrt", "abs",     "tanh",
                                  "sigmoid", "softplus", "relu", "log1p", "expm1",
                                  "cosh", "sinh", "logcosh"};
static const char *const consts[] = {"-2", "-0.5", "0.5", "1", "2", "3", "beta", "neg"};
static const char *const powers[] = {"0.5", "1.5", "2", "3", "4", "-1", "2", "3"};

typedef void Grow(Gen *g, int depth);
static Grow vec, scalar;

// pre f post
static void wrap(Gen *g, const char *pre, Grow *f, int depth, const char *post) {
  put(g, pre);
  f(g, depth);
  put(g, post);
}

// (f op h)
static void pair(Gen *g, Grow *f, const char *op, Grow *h, int depth) {
  put(g, "(");
  f(g, depth);
  put(g, op);
  h(g, depth);
  put(g, ")");
}

static void scalar(Gen *g, int depth) {
  static const char *const lagr[] = {"lagr_identity(", "lagr_relu(", "lagr_leaky(",
                                     "lagr_exp(", "lagr_rexp(", "lagr_tanh(",
                                     "lagr_sigmoid(", "lagr_softmax(", "lagr_ghostmax(",
                                     "lagr_layernorm(", "lagr_spherical("};
  unsigned k = depth <= 0 ? 0 : pick(g, 17);
  int d = depth - 1;
  switch (k) {
  case 0: wrap(g, "sum(", vec, d, ")"); break;
  case 1: wrap(g, "mean(", vec, d, ")"); break;
  case 2: wrap(g, "logsumexp(", vec, d, ")"); break;
  case 3: wrap(g, "norm(", vec, d, ")"); break;
  case 4: put(g, consts[pick(g, 8)]); wrap(g, " * ", scalar, d, ""); break;
  case 5: pair(g, scalar, " + ", scalar, d); break;
  case 6: pair(g, scalar, " - ", scalar, d); break;
  case 7: wrap(g, "-", scalar, d, ""); break;
  case 8: put(g, fns[pick(g, 13)]); wrap(g, "(", scalar, d, ")"); break;
  case 9: wrap(g, "(", scalar, d, ")^"); put(g, powers[pick(g, 8)]); break;
  case 10: put(g, "dot"); pair(g, vec, ", ", vec, d); break;
  case 11: wrap(g, "log(1 + sum(exp(", vec, d, ")))"); break;
  case 12: wrap(g, "sqrt(sum((", vec, d, ")^2) + 0.5)"); break;
  case 13: wrap(g, "sum(", vec, d, ") / len(x)"); break;
  case 14: wrap(g, lagr[pick(g, 11)], vec, d, ")"); break;
  case 15: wrap(g, "lagr_repu(", vec, d, pick(g, 2) ? ", 3)" : ", 2.5)"); break;
  default: wrap(g, "quad(", vec, d, ", "); put(g, consts[pick(g, 8)]); put(g, ")"); break;
  }
}

static void vec(Gen *g, int depth) {
  static const char *const leaves[] = {"x", "x", "(x - mean(x))", "(2 * x - 1)", "-x"};
  unsigned k = depth <= 0 ? 0 : pick(g, 11);
  int d = depth - 1;
  switch (k) {
  case 0: put(g, leaves[pick(g, 5)]); break;
  case 1: put(g, consts[pick(g, 8)]); wrap(g, " * ", vec, d, ""); break;
  case 2: pair(g, vec, " + ", vec, d); break;
  case 3: pair(g, vec, " - ", vec, d); break;
  case 4: wrap(g, "-", vec, d, ""); break;
  case 5:
  case 6: put(g, fns[pick(g, 13)]); wrap(g, "(", vec, d, ")"); break;
  case 7: wrap(g, "(", vec, d, ")^"); put(g, powers[pick(g, 8)]); break;
  case 8: pair(g, vec, " * ", vec, d); break;
  case 9: wrap(g, "(", vec, d, " + "); put(g, consts[pick(g, 8)]); put(g, ")"); break;
  default: pair(g, vec, " + ", scalar, d); break;
  }
}

static int64_t n_units = N;

static double eval_at(Fixture *f, const double *x) {
  memcpy(f->states[0], x, (size_t)n_units * sizeof *x);
  return fx_eval_scalar(f, f->net->layers[0].L);
}

static double scale_of(Fixture *f) {
  double u = fx_uniform(f);
  return u < 0.3 ? 0.3 : u < 0.7 ? 1.5 : 4;
}

static void random_point(Fixture *f, double *x, double s) {
  for (int i = 0; i < n_units; i++) x[i] = s * fx_normal(f);
}

// Midpoint convexity at one pair: 1 broken, 0 holds, -1 not comparable (overflow).
static int midpoint_broken(Fixture *f, const double *a, const double *b, bool *undefined) {
  double m[N];
  for (int i = 0; i < n_units; i++) m[i] = 0.5 * (a[i] + b[i]);
  double la = eval_at(f, a), lb = eval_at(f, b), lm = eval_at(f, m);
  if (isnan(la) || isnan(lb) || isnan(lm)) {
    *undefined = true;
    return -1;
  }
  if (!isfinite(la) || !isfinite(lb) || !isfinite(lm)) return -1;
  double tol = 1e-9 * (1 + fabs(la) + fabs(lb) + fabs(lm));
  return lm > 0.5 * (la + lb) + tol;
}

int main(void) {
  Gen g = {NULL, 0, 0, 12345};
  int counts[3] = {0, 0, 0}, unsound = 0, unconfirmed = 0;
  for (int form = 0; form < FORMS; form++) {
    g.len = 0;
    n_units = form % 4 == 3 ? 1 : N;
    char head[256];
    snprintf(head, sizeof head, "dim N = %d;\nparam beta = 1.5;\nparam neg = -1.5;\n"
             "def quad(u, s = 2) = s * sum(u^2) - sum(u);\nlayer x[N] { L = ", (int)n_units);
    put(&g, head);
    size_t start = g.len;
    scalar(&g, 2 + (int)pick(&g, 4));
    put(&g, "; }\n");
    char lagrangian[1024];
    snprintf(lagrangian, sizeof lagrangian, "%.*s", (int)(g.len - start - 4), g.text + start);
    Fixture f;
    if (!fx_open(&f, g.text, n_units, 1000 + (uint64_t)form)) {
      fprintf(stderr, "does not compile: %s\n", lagrangian);
      check_failures++;
      fx_close(&f);
      continue;
    }
    Convexity v = f.m->layers[0].convexity;
    counts[v]++;
    double a[N], b[N];
    if (v == CONVEX_PROVEN) {
      bool undefined = false;
      int broken = 0;
      for (int p = 0; p < PAIRS && !broken; p++) {
        double s = scale_of(&f);
        random_point(&f, a, s);
        random_point(&f, b, s);
        broken = midpoint_broken(&f, a, b, &undefined) == 1;
      }
      if (broken || undefined) {
        fprintf(stderr, "proven convex, but %s: L = %s\n",
                broken ? "midpoint convexity fails" : "undefined somewhere", lagrangian);
        unsound++;
      }
    } else if (v == NONCONVEX_PROVEN) {
      bool undefined = false, found = false;
      for (int p = 0; p < SEARCH && !found; p++) {
        // Short segments as well as long ones: a violation may be local.
        double s = scale_of(&f), r = p % 3 == 0 ? 0.05 : p % 3 == 1 ? 0.5 : 2;
        random_point(&f, a, s);
        for (int i = 0; i < n_units; i++) b[i] = a[i] + r * fx_normal(&f);
        found = midpoint_broken(&f, a, b, &undefined) == 1;
      }
      if (!found) {
        fprintf(stderr, "proven not convex, but no pair breaks midpoint convexity: L = %s (%s)\n",
                lagrangian, f.m->layers[0].convexity_reason);
        unconfirmed++;
      }
    }
    fx_close(&f);
  }
  free(g.text);
  printf("%d random Lagrangians: %d proven convex, %d proven not convex, %d unknown\n", FORMS,
         counts[CONVEX_PROVEN], counts[NONCONVEX_PROVEN], counts[CONVEXITY_UNKNOWN]);
  CHECK_EQ(unsound, 0);
  CHECK_EQ(unconfirmed, 0);
  // The sweep must exercise both verdicts.
  CHECK(counts[CONVEX_PROVEN] >= FORMS / 10);
  CHECK(counts[NONCONVEX_PROVEN] >= FORMS / 40);
  return check_report("test_derive_convexity_sweep");
}

// The static convexity proof of Lagrangians (see convexity.h; the rules are tabled in
// docs/theory.md §4.2.5).
//
// One walk over the syntax tree computes a Val for every sub-expression. Def calls are
// inlined: their arguments are analysed where they are written, once per call, and the body
// is walked with them bound, as derive/network.c's to_dag binds them. Reasons are kept as
// Blames (a kind and a place) in one array and written out only for the final verdict. A
// claim that something is certainly not convex (or not concave) is made only for a scalar,
// or for a "separable" vector whose component i is the same function f of x_i alone; for
// such a vector the claim is about f, and it carries over to sum, mean and logsumexp along
// the diagonal x = t·1.
#include "front/convexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"
#include "sym/builtins.h"
#include "sym/expr.h"

// ---- Signs: the set of signs a value may take ----

enum { SG_NEG = 1, SG_ZERO = 2, SG_POS = 4, SG_ANY = 7, SG_NONNEG = 6, SG_NONPOS = 3 };

static uint8_t sign_of(double v) {
  if (isnan(v)) return SG_ANY;
  return v > 0 ? SG_POS : v < 0 ? SG_NEG : SG_ZERO;
}

static uint8_t sign_neg(uint8_t s) {
  return (uint8_t)((s & SG_ZERO) | (s & SG_NEG ? SG_POS : 0) | (s & SG_POS ? SG_NEG : 0));
}

static uint8_t sign_add(uint8_t a, uint8_t b) {
  if (a == SG_ZERO) return b;
  if (b == SG_ZERO) return a;
  uint8_t zero = (a & SG_ZERO) && (b & SG_ZERO) ? SG_ZERO : 0;
  if (!(a & SG_NEG) && !(b & SG_NEG)) return (uint8_t)(SG_POS | zero);
  if (!(a & SG_POS) && !(b & SG_POS)) return (uint8_t)(SG_NEG | zero);
  return SG_ANY;
}

static uint8_t sign_mul(uint8_t a, uint8_t b) {
  uint8_t r = 0;
  if ((a & SG_ZERO) || (b & SG_ZERO)) r |= SG_ZERO;
  if (((a & SG_POS) && (b & SG_POS)) || ((a & SG_NEG) && (b & SG_NEG))) r |= SG_POS;
  if (((a & SG_POS) && (b & SG_NEG)) || ((a & SG_NEG) && (b & SG_POS))) r |= SG_NEG;
  return r ? r : SG_ANY;
}

static bool nonneg(uint8_t s) { return !(s & SG_NEG); }
static bool nonpos(uint8_t s) { return !(s & SG_POS); }

// ---- Blames: why a term is not convex, or why the rules stopped ----

typedef enum {
  BL_NONE,
  // certainly not convex
  BL_NEG_MULTIPLE,   // c * f, c < 0, f convex and not affine
  BL_SUBTRACTED,     // a - f, f convex and not affine
  BL_ODD_POWER,      // u^3, u affine and not constant
  BL_NOT_CONVEX_FN,  // tanh(u), sigmoid(u), ... of an affine, non-constant u
  // unknown
  BU_PRODUCT,
  BU_QUOTIENT,
  BU_MIXED_SUM,
  BU_DIFFERENCE,
  BU_SIGN,
  BU_COMPOSE,       // fn(u) with the wrong curvature or monotonicity
  BU_DOMAIN,        // fn(u) with u possibly outside fn's domain
  BU_DOMAIN_POW,    // u^p, p fractional, u possibly negative
  BU_POWER,         // u^p, p >= 1, u neither affine nor convex and nonnegative
  BU_ROOT,          // u^p, 0 < p < 1, u not concave and nonnegative
  BU_NEG_POWER,     // u^p, p < 0, u not concave and positive
  BU_EXPONENT,      // u^v, v not constant
  BU_EXPONENT_UNKNOWN,
  BU_NEITHER,       // tanh(u), step(u), ... of a non-affine u
  BU_LSE,
  BU_NORM,
  BU_DIV_ZERO,
  BU_DIV_MAYBE_ZERO,
  BU_NOT_FINITE,
  BU_TOO_BIG,
  BU_OTHER,
} BlameKind;

typedef struct {
  BlameKind kind;
  Span span;             // shown: inside a prelude def, the call of it
  const AstExpr *node;   // the node it was made at, for texts
  int fn;                // BU_COMPOSE, BU_DOMAIN, BL_NOT_CONVEX_FN, BU_NEITHER: the builtin
  int what;              // BU_COMPOSE: 0 convex, 1 concave, 2 neither (the argument)
  bool has_call;         // in a user def's body: the outermost call of it
  Span call;
  const char *call_name;
} Blame;

// ---- Values ----

typedef struct {
  bool cvx, ccv;   // convex, concave (both: affine)
  bool konst;      // independent of the state
  bool vec;        // a vector of the layer's size; else a scalar
  bool sep;        // vec: component i is f(x_i), the same f for every i
  bool varies;     // affine: certainly not constant (scalar, or f of a separable vector)
  bool nc, nv;     // certainly not convex / not concave (scalar, or f of a separable vector)
  bool has_value;  // konst, with a known finite value in every component
  uint8_t sign;
  bool sos, sos_vary;  // Σ (affine)^2 + c, c >= 0; some square not constant
  bool expsum;         // Σ c_k exp(affine_k) + c, c_k > 0, c >= 0
  bool es_const, es_vary, es_multi;  // c > 0; some exp term varies; a sum over >= 2 units
  double value;
  int nc_blame, nv_blame, unk_blame;  // indices into An.blames; 0: none (nv: it is convex)
} Val;

typedef struct Env {
  const AstDecl *def;        // NULL at the top of the Lagrangian
  AstExpr *const *bound;     // the def's arguments (or defaults), written in `up`
  const struct Env *up;
  const Val *args;
} Env;

enum { BUDGET = 400000, MAX_DEPTH = 2500 };

typedef struct {
  const Model *m;
  const double *params;
  const int64_t *dims;
  const DiagSink *sink;
  int64_t n;  // the layer's size, -1 unknown
  Blame *blames;
  size_t nblames, cap;
  long budget;
  int depth;
  bool overflow;
  const char *catalogue_name;  // a prelude Lagrangian proven by the catalogue
  ConvexityResult *out;
} An;

static int blame_new(An *an, BlameKind kind, Span span, const AstExpr *node) {
  Blame b = {kind, span, node, -1, 0, false, {0, 0, 0}, NULL};
  VEC_PUSH(an->blames, an->nblames, an->cap, b);
  return (int)an->nblames - 1;
}

static bool claims(const Val *v) { return !v->vec || v->sep; }
static bool affine(const Val *v) { return v->cvx && v->ccv; }

// Drops the claims a non-separable vector cannot carry.
static Val settle(Val r) {
  if (!claims(&r)) r.nc = r.nv = r.varies = false, r.sos_vary = r.es_vary = false;
  if (!affine(&r)) r.varies = false;
  if (!r.nc) r.nc_blame = 0;
  if (!r.nv) r.nv_blame = 0;
  if (r.cvx || r.ccv) r.unk_blame = 0;
  return r;
}

static Val v_const(double value, bool vec) {
  Val v = {0};
  v.cvx = v.ccv = v.konst = true;
  v.vec = v.sep = vec;
  v.has_value = isfinite(value);
  v.value = value;
  v.sign = sign_of(value);
  return v;
}

// A constant of unknown value and the given signs.
static Val v_const_sign(uint8_t sign, bool vec) {
  Val v = v_const(NAN, vec);
  v.sign = sign;
  return v;
}

static Val v_unknown(An *an, BlameKind kind, const AstExpr *e, bool vec) {
  Val v = {0};
  v.vec = vec;
  v.sign = SG_ANY;
  v.unk_blame = blame_new(an, kind, e->span, e);
  return v;
}

// A computed constant: of unknown curvature when it is not a finite number, since an
// infinity or a NaN makes every term it enters undefined somewhere.
static Val v_value(An *an, double value, bool vec, const AstExpr *e) {
  return isfinite(value) ? v_const(value, vec) : v_unknown(an, BU_NOT_FINITE, e, vec);
}

// Whether a term is proven defined everywhere: every rule that gives a curvature checks
// the domains of the functions below it.
static bool defined(const Val *v) { return v->cvx || v->ccv; }

// Marks `r` as of unknown curvature, blaming `inherit` if an operand already was.
static void make_unknown(An *an, Val *r, int inherit, BlameKind kind, Span span,
                         const AstExpr *e) {
  r->cvx = r->ccv = false;
  r->sos = r->expsum = false;
  r->unk_blame = inherit ? inherit : blame_new(an, kind, span, e);
}

static int first_unknown(const Val *a, const Val *b) {
  if (!a->cvx && !a->ccv && a->unk_blame) return a->unk_blame;
  if (b && !b->cvx && !b->ccv && b->unk_blame) return b->unk_blame;
  return 0;
}

// ---- Operations ----

// -a, blaming `span` with `kind` if -a is not convex because a is strictly convex.
static Val negate(An *an, Val a, BlameKind kind, Span span, const AstExpr *e) {
  Val r = a;
  r.cvx = a.ccv;
  r.ccv = a.cvx;
  r.sign = sign_neg(a.sign);
  r.value = -a.value;
  r.sos = r.expsum = false;
  r.nc = a.nv;
  r.nv = a.nc;
  r.nv_blame = a.nc_blame;
  r.nc_blame = a.nv ? (a.nv_blame ? a.nv_blame : blame_new(an, kind, span, e)) : 0;
  return settle(r);
}

// c * a for a constant c (c.konst), blaming `e` if the multiple is negative.
static Val scale(An *an, Val a, Val c, BlameKind kind, const AstExpr *e) {
  bool vec = a.vec || c.vec;
  if (a.konst) {
    if (a.has_value && c.has_value) return v_value(an, a.value * c.value, vec, e);
    return v_const_sign(sign_mul(a.sign, c.sign), vec);
  }
  Val r = a;
  r.vec = vec;
  if (c.has_value && c.value == 0 && defined(&a)) return v_const(0, vec);
  uint8_t s = c.sign;
  if (s == SG_POS) {
    r.value = a.value * (c.has_value ? c.value : 1);
    return settle(r);
  }
  if (s == SG_NEG) {
    r = negate(an, a, kind, e->span, e);
    r.vec = vec;
    return r;
  }
  r.sign = sign_mul(a.sign, s);
  r.nc = r.nv = r.varies = r.expsum = r.sos_vary = false;
  if (nonneg(s)) return settle(r);  // c >= 0 keeps curvature and sums of squares
  r.sos = false;
  if (nonpos(s)) {
    bool cvx = a.cvx;
    r.cvx = a.ccv;
    r.ccv = cvx;
    return settle(r);
  }
  if (!affine(&a)) make_unknown(an, &r, first_unknown(&a, NULL), BU_SIGN, e->span, e);
  return settle(r);
}

static Val add(An *an, Val a, Val b, bool difference, const AstExpr *e) {
  if (a.has_value && b.has_value) return v_value(an, a.value + b.value, a.vec || b.vec, e);
  Val r = {0};
  r.vec = a.vec || b.vec;
  r.konst = a.konst && b.konst;
  r.cvx = a.cvx && b.cvx;
  r.ccv = a.ccv && b.ccv;
  r.sign = sign_add(a.sign, b.sign);
  r.sep = r.vec && (a.sep || (!a.vec && a.konst)) && (b.sep || (!b.vec && b.konst));
  if (affine(&r)) r.varies = (a.varies && b.konst) || (b.varies && a.konst);
  // f + g is not convex if f is not and g is concave (else f = (f + g) - g is convex).
  if (a.nc && b.ccv) r.nc = true, r.nc_blame = a.nc_blame;
  else if (b.nc && a.ccv) r.nc = true, r.nc_blame = b.nc_blame;
  if (a.nv && b.cvx) r.nv = true, r.nv_blame = a.nv_blame;
  else if (b.nv && a.cvx) r.nv = true, r.nv_blame = b.nv_blame;
  bool a_extra = a.konst && nonneg(a.sign), b_extra = b.konst && nonneg(b.sign);
  if ((a.sos && (b.sos || b_extra)) || (b.sos && a_extra)) {
    r.sos = true;
    r.sos_vary = (a.sos && a.sos_vary) || (b.sos && b.sos_vary);
  }
  if ((a.expsum && (b.expsum || b_extra)) || (b.expsum && a_extra)) {
    r.expsum = true;
    r.es_const = (a.expsum ? a.es_const : a.sign == SG_POS) ||
                 (b.expsum ? b.es_const : b.sign == SG_POS);
    r.es_vary = (a.expsum && a.es_vary) || (b.expsum && b.es_vary);
    r.es_multi = (a.expsum && a.es_multi) || (b.expsum && b.es_multi);
  }
  if (!r.cvx && !r.ccv)
    make_unknown(an, &r, first_unknown(&a, &b), difference ? BU_DIFFERENCE : BU_MIXED_SUM,
                 e->span, e);
  return settle(r);
}

// Sum over the units of a vector (a scalar is its own sum).
static Val reduce_sum(An *an, Val a) {
  if (!a.vec) return a;
  Val r = a;
  r.vec = r.sep = false;
  r.sign = sign_add(a.sign, a.sign);
  r.has_value = a.has_value && an->n > 0;
  r.value = a.value * (double)an->n;
  if (a.has_value && !r.has_value && a.value == 0) r.has_value = true, r.value = 0;
  if (!a.sep) r.nc = r.nv = r.varies = r.sos_vary = r.es_vary = false;
  if (a.expsum) r.es_multi = a.es_multi || (a.sep && a.es_vary && an->n != 1);
  return settle(r);
}

static bool same_expr(An *an, const AstExpr *a, const Env *ea, const AstExpr *b,
                      const Env *eb);

static Val power(An *an, Val a, double p, const AstExpr *e);

// a * b, both non-constant.
static Val product(An *an, Val a, Val b, const AstExpr *ea, const Env *enva,
                   const AstExpr *eb, const Env *envb, const AstExpr *e) {
  if (same_expr(an, ea, enva, eb, envb)) return power(an, a, 2, e);
  Val r = {0};
  r.vec = a.vec || b.vec;
  r.sep = r.vec && (a.sep || !a.vec) && (b.sep || !b.vec) && (a.vec == b.vec);
  r.sign = sign_mul(a.sign, b.sign);
  make_unknown(an, &r, first_unknown(&a, &b), BU_PRODUCT, e->span, e);
  return settle(r);
}

// a^p for a constant p.
static Val power(An *an, Val a, double p, const AstExpr *e) {
  if (p == 1) return a;
  if (a.konst) {
    if (a.has_value) return v_value(an, pow(a.value, p), a.vec, e);
    if ((p != floor(p) && !nonneg(a.sign)) || (p < 0 && (a.sign & SG_ZERO)))
      return v_unknown(an, BU_DOMAIN_POW, e, a.vec);
    return v_const_sign(p == 0 ? SG_POS : SG_ANY, a.vec);
  }
  if (p == 0 && defined(&a)) return v_const(1, a.vec);
  bool integer = p == floor(p) && fabs(p) < 9007199254740992.0;
  bool even = integer && fmod(p, 2) == 0, odd = integer && !even;
  Val r = {0};
  r.vec = a.vec;
  r.sep = a.sep;
  uint8_t s = a.sign;
  if (even) r.sign = (uint8_t)((s & (SG_NEG | SG_POS) ? SG_POS : 0) | (s & SG_ZERO));
  else if (odd) r.sign = s;
  else r.sign = (uint8_t)(p < 0 ? SG_POS : (s & SG_NONNEG) ? (s & SG_NONNEG) : SG_ANY);
  int inherit = first_unknown(&a, NULL);
  if (p > 1) {
    if (even && affine(&a)) {
      r.cvx = true;
      r.nv = a.varies;
      r.sos = p == 2;
      r.sos_vary = a.varies;
    } else if (a.cvx && nonneg(s)) {  // x^p is convex and nondecreasing for x >= 0
      r.cvx = true;
      r.nv = a.nv;
      r.nv_blame = a.nv_blame;
    } else if (even && a.ccv && nonpos(s)) {  // and nonincreasing for x <= 0
      r.cvx = true;
      r.nv = a.nc;
      r.nv_blame = a.nc_blame;
    } else if (odd && a.ccv && nonpos(s)) {  // a^p = -(-a)^p
      r.ccv = true;
      r.nc = a.nc;
      r.nc_blame = a.nc_blame;
    } else if (odd && affine(&a) && a.varies) {
      r.nc = r.nv = true;
      r.nc_blame = r.nv_blame = r.unk_blame = blame_new(an, BL_ODD_POWER, e->span, e);
    } else {
      make_unknown(an, &r, inherit, !integer && !nonneg(s) ? BU_DOMAIN_POW : BU_POWER,
                   e->span, e);
    }
  } else if (p > 0) {
    if (a.ccv && nonneg(s)) {  // x^p is concave and nondecreasing for x >= 0
      r.ccv = true;
      r.nc = a.nc;
      r.nc_blame = a.nc_blame;
    } else {
      make_unknown(an, &r, inherit, nonneg(s) ? BU_ROOT : BU_DOMAIN_POW, e->span, e);
    }
  } else {
    if (a.ccv && s == SG_POS) r.cvx = true;  // convex and nonincreasing for x > 0
    else make_unknown(an, &r, inherit, BU_NEG_POWER, e->span, e);
  }
  return settle(r);
}

// ---- Elementwise functions ----

typedef enum { FC_CVX, FC_CCV, FC_CVX_NEG, FC_CVX_POS, FC_NONE } FnCurv;
typedef enum { MO_INC, MO_DEC, MO_BY_SIGN, MO_NONE } FnMono;
typedef enum { DO_ALL, DO_NONNEG, DO_POS } FnDomain;

// FC_CVX_NEG: convex for x <= 0, concave for x >= 0 (tanh, sigmoid); FC_CVX_POS: the
// reverse (sinh). MO_BY_SIGN: nonincreasing for x <= 0, nondecreasing for x >= 0.
// `strict`: f(u) is not affine when u is affine and not constant. `neither`: f(u) is then
// neither convex nor concave (f is bounded, or changes curvature). `strict_inc`: f is
// strictly increasing (or, relu, unbounded above), so that f(u) is not affine when u is
// convex and not affine.
typedef struct {
  FnCurv curv;
  FnMono mono;
  FnDomain domain;
  bool strict, neither, strict_inc;
} FnRule;

static FnRule fn_rule(int fn) {
  switch ((BuiltinFn)fn) {
  case FN_EXP: return (FnRule){FC_CVX, MO_INC, DO_ALL, true, false, true};
  case FN_LOG: return (FnRule){FC_CCV, MO_INC, DO_POS, false, false, true};
  case FN_SQRT: return (FnRule){FC_CCV, MO_INC, DO_NONNEG, false, false, true};
  case FN_ABS: return (FnRule){FC_CVX, MO_BY_SIGN, DO_ALL, true, false, false};
  case FN_TANH: return (FnRule){FC_CVX_NEG, MO_INC, DO_ALL, false, true, false};
  case FN_SIGMOID: return (FnRule){FC_CVX_NEG, MO_INC, DO_ALL, false, true, false};
  case FN_SOFTPLUS: return (FnRule){FC_CVX, MO_INC, DO_ALL, true, false, true};
  case FN_RELU: return (FnRule){FC_CVX, MO_INC, DO_ALL, true, false, true};
  case FN_LOG1P: return (FnRule){FC_CCV, MO_INC, DO_NONNEG, false, false, true};
  case FN_EXPM1: return (FnRule){FC_CVX, MO_INC, DO_ALL, true, false, true};
  case FN_COSH: return (FnRule){FC_CVX, MO_BY_SIGN, DO_ALL, true, false, false};
  case FN_SINH: return (FnRule){FC_CVX_POS, MO_INC, DO_ALL, false, true, false};
  case FN_LOGCOSH: return (FnRule){FC_CVX, MO_BY_SIGN, DO_ALL, true, false, false};
  case FN_STEP:
  case FN_SIGN: return (FnRule){FC_NONE, MO_INC, DO_ALL, false, true, false};
  case FN_SECH2: return (FnRule){FC_NONE, MO_NONE, DO_ALL, false, true, false};
  default: return (FnRule){FC_NONE, MO_NONE, DO_ALL, false, false, false};
  }
}

// A constant's value under an elementwise builtin: the one definition of builtins.def.
static double fn_value(int fn, double x) { return fn < EF_COUNT ? expr_eval_fn((ElemFn)fn, x) : NAN; }

static uint8_t fn_sign(int fn, uint8_t s) {
  switch ((BuiltinFn)fn) {
  case FN_EXP:
  case FN_SIGMOID:
  case FN_SOFTPLUS:
  case FN_COSH:
  case FN_SECH2: return SG_POS;
  case FN_SQRT:
  case FN_ABS:
  case FN_LOGCOSH: return (uint8_t)(SG_POS | (s & SG_ZERO ? SG_ZERO : 0));
  case FN_RELU:
  case FN_STEP: return (uint8_t)(SG_ZERO | (s & SG_POS));
  case FN_TANH:
  case FN_LOG1P:
  case FN_EXPM1:
  case FN_SINH:
  case FN_SIGN: return s;
  default: return SG_ANY;
  }
}

static Val compose(An *an, int fn, Val a, const AstExpr *e) {
  FnRule rule = fn_rule(fn);
  if (a.konst) {
    if (a.has_value) return v_value(an, fn_value(fn, a.value), a.vec, e);
    if ((rule.domain == DO_POS && a.sign != SG_POS) ||
        (rule.domain == DO_NONNEG && !nonneg(a.sign))) {
      Val r = v_unknown(an, BU_DOMAIN, e, a.vec);
      an->blames[r.unk_blame].fn = fn;
      return r;
    }
    return v_const_sign(fn_sign(fn, a.sign), a.vec);
  }
  Val r = {0};
  r.vec = a.vec;
  r.sep = a.sep;
  r.sign = fn_sign(fn, a.sign);
  // What DCP leaves to the user: log Σ exp (a log-sum-exp with a constant logit), and
  // sqrt(Σ u_k^2 + c), the Euclidean norm of an affine map.
  if ((fn == FN_LOG || fn == FN_LOG1P) && a.expsum) {
    r.cvx = true;
    r.nv = fn == FN_LOG1P ? a.es_vary || a.es_multi : (a.es_const && a.es_vary) || a.es_multi;
    if (fn == FN_LOG) r.sign = SG_ANY;
    return settle(r);
  }
  if (fn == FN_SQRT && a.sos) {
    r.cvx = true;
    r.nv = a.sos_vary;
    return settle(r);
  }
  uint8_t s = a.sign;
  int inherit = first_unknown(&a, NULL);
  if ((rule.domain == DO_POS && s != SG_POS) || (rule.domain == DO_NONNEG && !nonneg(s))) {
    make_unknown(an, &r, inherit, BU_DOMAIN, e->span, e);
    if (!inherit) an->blames[r.unk_blame].fn = fn;
    return settle(r);
  }
  // relu and abs of a term of one sign.
  if (fn == FN_RELU && nonpos(s) && defined(&a)) return v_const(0, a.vec);
  if ((fn == FN_RELU || fn == FN_ABS) && nonneg(s)) return a;
  if (fn == FN_ABS && nonpos(s)) return negate(an, a, BL_NEG_MULTIPLE, e->span, e);
  FnCurv fc = rule.curv;
  if (fc == FC_CVX_NEG) fc = nonpos(s) ? FC_CVX : nonneg(s) ? FC_CCV : FC_NONE;
  if (fc == FC_CVX_POS) fc = nonneg(s) ? FC_CVX : nonpos(s) ? FC_CCV : FC_NONE;
  FnMono mo = rule.mono;
  if (mo == MO_BY_SIGN) mo = nonneg(s) ? MO_INC : nonpos(s) ? MO_DEC : MO_NONE;
  if (affine(&a)) {
    r.cvx = fc == FC_CVX;
    r.ccv = fc == FC_CCV;
    if (a.varies && rule.strict && fc == FC_CVX) r.nv = true;
    if (a.varies && rule.neither && fc == FC_NONE) {
      r.nc = r.nv = true;
      r.nc_blame = r.nv_blame = r.unk_blame = blame_new(an, BL_NOT_CONVEX_FN, e->span, e);
      an->blames[r.nc_blame].fn = fn;
    }
    if (fn == FN_EXP) {
      r.expsum = true;
      r.es_vary = a.varies;
    }
    if (!r.cvx && !r.ccv && !r.unk_blame) {
      make_unknown(an, &r, 0, BU_NEITHER, e->span, e);
      an->blames[r.unk_blame].fn = fn;
    }
    return settle(r);
  }
  if (fc == FC_CVX && ((a.cvx && mo == MO_INC) || (a.ccv && mo == MO_DEC))) {
    r.cvx = true;
    r.nv = rule.strict_inc && a.cvx && mo == MO_INC && a.nv;
  } else if (fc == FC_CCV && ((a.ccv && mo == MO_INC) || (a.cvx && mo == MO_DEC))) {
    r.ccv = true;
    if (rule.strict_inc && a.ccv && mo == MO_INC && a.nc) r.nc = true, r.nc_blame = a.nc_blame;
  } else {
    make_unknown(an, &r, inherit, fc == FC_NONE ? BU_NEITHER : BU_COMPOSE, e->span, e);
    if (!inherit) {
      an->blames[r.unk_blame].fn = fn;
      an->blames[r.unk_blame].what = a.cvx ? 0 : a.ccv ? 1 : 2;
    }
  }
  return settle(r);
}

// ---- Structural equality (for u*u, dot(u, u), u @ u) ----

static const AstExpr *deref(const AstExpr *e, const Env **env) {
  while (e->kind == AST_NAME && e->ref == REF_ARG && (*env)->bound) {
    e = (*env)->bound[e->ref_index];
    *env = (*env)->up;
  }
  return e;
}

static bool same_expr(An *an, const AstExpr *a, const Env *ea, const AstExpr *b,
                      const Env *eb) {
  if (--an->budget < 0) return false;
  a = deref(a, &ea);
  b = deref(b, &eb);
  if (a == b && ea == eb) return true;
  if (a->kind != b->kind || a->ref != b->ref) return false;
  switch (a->kind) {
  case AST_NUM: return a->num == b->num;
  case AST_NAME: return a->ref != REF_ARG && a->ref_index == b->ref_index;
  case AST_ACT: return false;
  case AST_NEG:
  case AST_TRANSPOSE: return same_expr(an, a->lhs, ea, b->lhs, eb);
  case AST_BINARY:
    // The left operands in a loop: a chain is as deep as it is long (ast_spine).
    for (; a->kind == AST_BINARY && b->kind == AST_BINARY; a = a->lhs, b = b->lhs)
      if (a->op != b->op || !same_expr(an, a->rhs, ea, b->rhs, eb)) return false;
    return same_expr(an, a, ea, b, eb);
  case AST_CALL:
    if (a->ref == REF_DEF) {
      if (a->ref_def != b->ref_def || !a->bound_args || !b->bound_args) return false;
      for (int i = 0; i < a->ref_def->nparams; i++)
        if (!same_expr(an, a->bound_args[i], ea, b->bound_args[i], eb)) return false;
      return true;
    }
    if (a->ref != REF_BUILTIN || a->ref_index != b->ref_index || a->nargs != b->nargs)
      return false;
    for (const AstArg *x = a->args, *y = b->args; x && y; x = x->next, y = y->next)
      if (!same_expr(an, x->value, ea, y->value, eb)) return false;
    return true;
  }
  return false;
}

// ---- The catalogue: parameter rules and convexity of the prelude's Lagrangians ----

typedef enum { RULE_POSITIVE, RULE_NONNEG, RULE_REPU, RULE_LEAKY } RuleKind;

typedef struct {
  const char *name;
  const char *param[2];
  RuleKind kind[2];
  int nrules;
} CatalogueEntry;

// docs/theory.md §3 and §4.2.1. Every entry is convex when its fatal rules hold.
static const CatalogueEntry catalogue[] = {
    {"lagr_identity", {NULL, NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 0},
    {"lagr_relu", {NULL, NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 0},
    {"lagr_repu", {"n", NULL}, {RULE_REPU, RULE_POSITIVE}, 1},
    {"lagr_leaky", {"a", NULL}, {RULE_LEAKY, RULE_POSITIVE}, 1},
    {"lagr_exp", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_rexp", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_tanh", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_sigmoid", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_softmax", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_ghostmax", {"beta", NULL}, {RULE_POSITIVE, RULE_POSITIVE}, 1},
    {"lagr_layernorm", {"gamma", "eps"}, {RULE_NONNEG, RULE_NONNEG}, 2},
    {"lagr_spherical", {"gamma", "eps"}, {RULE_NONNEG, RULE_NONNEG}, 2},
};

static const CatalogueEntry *catalogue_entry(const AstDecl *def) {
  if (!def->in_prelude) return NULL;
  for (size_t i = 0; i < sizeof catalogue / sizeof *catalogue; i++)
    if (strcmp(catalogue[i].name, def->name) == 0) return &catalogue[i];
  return NULL;
}

static int param_index(const AstDecl *def, const char *name) {
  int i = 0;
  for (const AstParam *p = def->params; p; p = p->next, i++)
    if (strcmp(p->name, name) == 0) return i;
  return -1;
}

static bool expr_uses_param(const AstExpr *e, const Env *env, int depth) {
  if (depth > 64) return false;
  e = deref(e, &env);
  if (e->kind == AST_NAME) return e->ref == REF_PARAM;
  if (e->kind == AST_CALL && e->ref == REF_DEF && e->bound_args) {
    for (int i = 0; i < e->ref_def->nparams; i++)
      if (expr_uses_param(e->bound_args[i], env, depth + 1)) return true;
    return false;
  }
  for (const AstArg *a = e->args; a; a = a->next)
    if (expr_uses_param(a->value, env, depth + 1)) return true;
  return (e->lhs && expr_uses_param(e->lhs, env, depth + 1)) ||
         (e->rhs && expr_uses_param(e->rhs, env, depth + 1));
}

// Whether `v` obeys the rule; *fatal says whether breaking it is a rejection or advice.
static bool rule_holds(RuleKind kind, double v, bool *fatal, const char **want) {
  *fatal = true;
  switch (kind) {
  case RULE_POSITIVE: *want = "must be positive"; return v > 0;
  case RULE_NONNEG: *want = "must not be negative"; return v >= 0;
  case RULE_LEAKY: *want = "must be in (0, 1]"; return v > 0 && v <= 1;
  case RULE_REPU:
    *want = "must be greater than 1";
    if (!(v > 1)) return false;
    *fatal = false;
    *want = NULL;  // advice, worded by the caller
    return v >= 2;
  }
  return true;
}

// Checks the parameter rules of a call of a prelude Lagrangian. True when every fatal rule
// is known to hold.
static bool check_rules(An *an, const AstExpr *call, const Env *env, const Val *args) {
  const CatalogueEntry *c = catalogue_entry(call->ref_def);
  if (!c) return false;
  bool all = true;
  for (int k = 0; k < c->nrules; k++) {
    int i = param_index(call->ref_def, c->param[k]);
    if (i < 0) continue;
    if (!args[i].has_value) {
      all = false;
      continue;
    }
    bool fatal;
    const char *want;
    if (rule_holds(c->kind[k], args[i].value, &fatal, &want)) continue;
    all &= !fatal;
    Span span = call->span;
    const AstExpr *value = call->bound_args[i];
    for (const AstArg *a = call->args; a; a = a->next)
      if (a->value == value)
        span = a->name ? span_join(a->name_span, a->value->span) : a->value->span;
    ConvexityResult *out = an->out;
    ParamRuleIssue issue = {span, call->span, fatal, {0}};
    NumText num;
    const char *with = !expr_uses_param(value, env, 0) ? ""
                       : an->params ? " (with the params' values)"
                                    : " (with the params' defaults)";
    if (want)
      snprintf(issue.text, sizeof issue.text, "'%s' of %s %s, but it is %s%s", c->param[k],
               c->name, want, number_text(args[i].value, &num), with);
    else
      snprintf(issue.text, sizeof issue.text, "'%s' of %s is %s%s: below 2 the Hessian is "
               "unbounded near 0 and g is not Lipschitz; use n >= 2", c->param[k], c->name,
               number_text(args[i].value, &num), with);
    bool seen = false;
    for (int j = 0; j < out->nissues; j++)
      seen |= out->issues[j].span.begin == span.begin && out->issues[j].span.file == span.file &&
              strcmp(out->issues[j].text, issue.text) == 0;
    if (!seen && out->nissues < CONVEXITY_MAX_ISSUES) out->issues[out->nissues++] = issue;
  }
  return all;
}

// ---- The walk ----

static Val analyze(An *an, const AstExpr *e, const Env *env);

static double param_value(const An *an, int i) {
  if (an->params) return an->params[i];
  return an->m->params[i].has_default ? an->m->params[i].value : NAN;
}

static int64_t dim_value(const An *an, int i) {
  return an->dims ? an->dims[i] : an->m->dims[i].value;
}

static Val analyze_name(An *an, const AstExpr *e, const Env *env) {
  switch (e->ref) {
  case REF_ARG:
    if (env->args) return env->args[e->ref_index];
    break;
  case REF_STATE: {
    Val v = {0};
    v.cvx = v.ccv = v.vec = v.sep = v.varies = true;
    v.sign = SG_ANY;
    return v;
  }
  case REF_PARAM: {
    double p = param_value(an, e->ref_index);
    return isnan(p) ? v_const_sign(SG_ANY, false) : v_const(p, false);
  }
  case REF_DIM: {
    int64_t n = dim_value(an, e->ref_index);
    return n > 0 ? v_const((double)n, false) : v_const_sign(SG_POS, false);
  }
  default: break;
  }
  return v_unknown(an, BU_OTHER, e, false);
}

static Val analyze_def_call(An *an, const AstExpr *e, const Env *env) {
  const AstDecl *def = e->ref_def;
  if (!e->bound_args) return v_unknown(an, BU_OTHER, e, false);
  Val *args = xmalloc(sizeof *args * ((size_t)def->nparams + 1));
  for (int i = 0; i < def->nparams; i++) args[i] = analyze(an, e->bound_args[i], env);
  size_t start = an->nblames;
  bool rules_hold = check_rules(an, e, env, args);
  Env inner = {def, e->bound_args, env, args};
  Val r = analyze(an, def->value, &inner);
  // What the rules do not reach, the catalogue may: a prelude Lagrangian of an affine
  // argument, with constant parameters in range (docs/theory.md §3).
  bool constant_params = true;
  for (int i = 1; i < def->nparams; i++) constant_params &= args[i].konst;
  if (!r.cvx && !r.nc && rules_hold && constant_params && def->nparams > 0 &&
      affine(&args[0]) && !an->overflow) {
    Val c = {0};
    c.cvx = true;
    c.sign = SG_ANY;
    c.nv = args[0].varies;
    r = settle(c);
    an->catalogue_name = def->name;
  }
  for (size_t b = start; b < an->nblames; b++) {
    Blame *bl = &an->blames[b];
    if (def->in_prelude) {
      bl->span = e->span;
      bl->has_call = false;
    } else {
      bl->has_call = true;
      bl->call = e->span;
      bl->call_name = def->name;
    }
  }
  free(args);
  return r;
}

static Val analyze_builtin(An *an, const AstExpr *e, const Env *env) {
  const BuiltinInfo *fn = &builtin_info[e->ref_index];
  if (!e->args) return v_unknown(an, BU_OTHER, e, false);
  const AstExpr *x = e->args->value;
  Val a = analyze(an, x, env);
  switch (fn->kind) {
  case FNK_ELEM: return compose(an, e->ref_index, a, e);
  case FNK_TRANSPOSE: return a;
  case FNK_LEN:
    if (!a.vec) return v_const(1, false);
    return an->n > 0 ? v_const((double)an->n, false) : v_const_sign(SG_POS, false);
  case FNK_DOT: {
    if (!e->args->next) return v_unknown(an, BU_OTHER, e, false);
    const AstExpr *y = e->args->next->value;
    Val b = analyze(an, y, env);
    Val prod = a.konst ? scale(an, b, a, BL_NEG_MULTIPLE, e)
               : b.konst ? scale(an, a, b, BL_NEG_MULTIPLE, e)
                         : product(an, a, b, x, env, y, env, e);
    return reduce_sum(an, prod);
  }
  case FNK_REDUCE: break;
  }
  switch ((BuiltinFn)e->ref_index) {
  case FN_SUM: return reduce_sum(an, a);
  case FN_MEAN: {
    Val s = reduce_sum(an, a);
    if (!a.vec) return s;
    Val n = an->n > 0 ? v_const(1.0 / (double)an->n, false) : v_const_sign(SG_POS, false);
    return scale(an, s, n, BL_NEG_MULTIPLE, e);
  }
  case FN_LOGSUMEXP: {
    if (!a.vec) return a;
    if (a.konst) {
      if (a.has_value && an->n > 0) return v_value(an, a.value + log((double)an->n), false, e);
      return v_const_sign(SG_ANY, false);
    }
    Val r = {0};
    r.sign = SG_ANY;
    if (a.cvx) {  // convex and nondecreasing in every argument
      r.cvx = true;
      r.nv = a.sep && (a.nv || (affine(&a) && a.varies && an->n != 1));
    } else {
      make_unknown(an, &r, first_unknown(&a, NULL), BU_LSE, e->span, e);
    }
    return settle(r);
  }
  case FN_NORM: {
    if (!a.vec) return compose(an, FN_ABS, a, e);
    if (a.konst) {
      if (a.has_value && an->n > 0)
        return v_value(an, fabs(a.value) * sqrt((double)an->n), false, e);
      return v_const_sign(SG_NONNEG, false);
    }
    Val r = {0};
    r.sign = SG_NONNEG;
    if (affine(&a)) {
      r.cvx = true;
      r.nv = a.sep && a.varies;
    } else if (a.cvx && nonneg(a.sign)) {  // nondecreasing in each argument when >= 0
      r.cvx = true;
      r.nv = a.sep && a.nv;
    } else if (a.ccv && nonpos(a.sign)) {
      r.cvx = true;
      r.nv = a.sep && a.nc;
    } else {
      make_unknown(an, &r, first_unknown(&a, NULL), BU_NORM, e->span, e);
    }
    return settle(r);
  }
  default: break;
  }
  return v_unknown(an, BU_OTHER, e, a.vec);
}

static Val analyze_binary(An *an, const AstExpr *e, const Env *env) {
  Val a = analyze(an, e->lhs, env), b = analyze(an, e->rhs, env);
  switch (e->op) {
  case OP_ADD: return add(an, a, b, false, e);
  case OP_SUB: return add(an, a, negate(an, b, BL_SUBTRACTED, e->rhs->span, e->rhs), true, e);
  case OP_MUL:
    if (a.konst) return scale(an, b, a, BL_NEG_MULTIPLE, e);
    if (b.konst) return scale(an, a, b, BL_NEG_MULTIPLE, e);
    return product(an, a, b, e->lhs, env, e->rhs, env, e);
  case OP_MATMUL: {
    Val prod = a.konst ? scale(an, b, a, BL_NEG_MULTIPLE, e)
               : b.konst ? scale(an, a, b, BL_NEG_MULTIPLE, e)
                         : product(an, a, b, e->lhs, env, e->rhs, env, e);
    return reduce_sum(an, prod);
  }
  case OP_DIV:
    if (b.konst) {
      if (b.has_value && b.value == 0) return v_unknown(an, BU_DIV_ZERO, e, a.vec);
      if (b.has_value) return scale(an, a, v_value(an, 1 / b.value, b.vec, e), BL_NEG_MULTIPLE, e);
      if (b.sign & SG_ZERO) return v_unknown(an, BU_DIV_MAYBE_ZERO, e, a.vec || b.vec);
      return scale(an, a, v_const_sign(b.sign, b.vec), BL_NEG_MULTIPLE, e);
    }
    if (a.konst) return scale(an, power(an, b, -1, e), a, BL_NEG_MULTIPLE, e);
    {
      Val r = {0};
      r.vec = a.vec || b.vec;
      r.sign = SG_ANY;
      make_unknown(an, &r, first_unknown(&a, &b), BU_QUOTIENT, e->span, e);
      return settle(r);
    }
  case OP_POW:
    if (!b.konst) {
      if (a.konst && a.has_value && a.value > 0) {  // c^v = exp(v log c)
        Val t = scale(an, b, v_const(log(a.value), false), BL_NEG_MULTIPLE, e);
        return compose(an, FN_EXP, t, e);
      }
      Val r = {0};
      r.vec = a.vec || b.vec;
      r.sign = SG_ANY;
      make_unknown(an, &r, first_unknown(&a, &b), BU_EXPONENT, e->span, e);
      return settle(r);
    }
    if (!b.has_value) {
      if (a.konst) return v_const_sign(SG_ANY, a.vec || b.vec);
      return v_unknown(an, BU_EXPONENT_UNKNOWN, e, a.vec);
    }
    return power(an, a, b.value, e);
  }
  return v_unknown(an, BU_OTHER, e, a.vec || b.vec);
}

static Val analyze(An *an, const AstExpr *e, const Env *env) {
  if (--an->budget < 0 || an->depth >= MAX_DEPTH) {
    an->overflow = true;
    return v_unknown(an, BU_TOO_BIG, e, false);
  }
  an->depth++;
  Val r;
  switch (e->kind) {
  case AST_NUM: r = v_const(e->num, false); break;
  case AST_NAME: r = analyze_name(an, e, env); break;
  case AST_NEG: r = negate(an, analyze(an, e->lhs, env), BL_NEG_MULTIPLE, e->span, e); break;
  case AST_TRANSPOSE: r = analyze(an, e->lhs, env); break;
  case AST_BINARY: r = analyze_binary(an, e, env); break;
  case AST_CALL:
    if (e->ref == REF_DEF) r = analyze_def_call(an, e, env);
    else if (e->ref == REF_BUILTIN) r = analyze_builtin(an, e, env);
    else r = v_unknown(an, BU_OTHER, e, false);
    break;
  default: r = v_unknown(an, BU_OTHER, e, false); break;
  }
  an->depth--;
  return r;
}

// ---- Reasons ----

// The source text of `span`, when it is one short line; else false.
static bool span_text(const An *an, Span span, char *buf, size_t size) {
  if (!an->sink) return false;
  const SourceFile *f = diag_source(an->sink, span.file);
  if (!f || span.end > f->len || span.end <= span.begin || span.end - span.begin >= size ||
      span.end - span.begin > 40)
    return false;
  for (uint32_t i = span.begin; i < span.end; i++)
    if (f->text[i] == '\n' || f->text[i] == '\r' || f->text[i] == '\0') return false;
  memcpy(buf, f->text + span.begin, span.end - span.begin);
  buf[span.end - span.begin] = '\0';
  return true;
}

// Drops one pair of parentheses around the whole text.
static const char *unparen(char *text) {
  size_t n = strlen(text);
  if (n < 2 || text[0] != '(' || text[n - 1] != ')') return text;
  int depth = 0;
  for (size_t i = 0; i < n; i++) {
    depth += text[i] == '(' ? 1 : text[i] == ')' ? -1 : 0;
    if (depth == 0 && i + 1 < n) return text;
  }
  text[n - 1] = '\0';
  return text + 1;
}

static void write_reason(const An *an, const Blame *b, char *out, size_t size) {
  char node[48] = "", base[48] = "";
  bool have_node = b->node && span_text(an, b->node->span, node, sizeof node);
  const char *fname = b->fn >= 0 && b->fn < FN_COUNT ? builtin_info[b->fn].name : "a function";
  switch (b->kind) {
  case BL_NONE: snprintf(out, size, "not covered by the rules"); return;
  case BL_NEG_MULTIPLE: snprintf(out, size, "a negative multiple of a convex term"); return;
  case BL_SUBTRACTED: snprintf(out, size, "a convex term subtracted"); return;
  case BL_ODD_POWER:
    if (have_node && b->node->kind == AST_BINARY &&
        span_text(an, b->node->lhs->span, base, sizeof base))
      snprintf(out, size, "%s is not convex for %s < 0", node, unparen(base));
    else
      snprintf(out, size, "an odd power of a non-constant affine term is not convex where "
               "that term is negative");
    return;
  case BL_NOT_CONVEX_FN: {
    const char *why = b->fn == FN_TANH || b->fn == FN_SIGMOID ? "positive"
                      : b->fn == FN_SINH ? "negative" : NULL;
    if (why)
      snprintf(out, size, "%s is not convex (%s is concave for %s arguments)",
               have_node ? node : fname, fname, why);
    else
      snprintf(out, size, "%s is not convex (%s is bounded)", have_node ? node : fname, fname);
    return;
  }
  case BU_PRODUCT: snprintf(out, size, "a product of two non-constant terms"); return;
  case BU_QUOTIENT: snprintf(out, size, "a division by a non-constant term"); return;
  case BU_MIXED_SUM: snprintf(out, size, "a sum of a convex and a concave term"); return;
  case BU_DIFFERENCE: snprintf(out, size, "a difference of two convex terms"); return;
  case BU_SIGN:
    snprintf(out, size, "a multiple of a non-affine term by a factor of unknown sign");
    return;
  case BU_COMPOSE:
    snprintf(out, size, "%s of a %s term, which the composition rules do not cover", fname,
             b->what == 0 ? "convex" : b->what == 1 ? "concave" : "non-convex");
    return;
  case BU_DOMAIN:
    snprintf(out, size, "%s of a term that may be %s", fname,
             b->fn == FN_LOG ? "zero or negative" : "negative");
    return;
  case BU_DOMAIN_POW:
    snprintf(out, size, "a fractional power of a term that may be negative");
    return;
  case BU_POWER:
    snprintf(out, size, "a power of a term that is neither affine nor convex and nonnegative");
    return;
  case BU_ROOT: snprintf(out, size, "a power below 1 of a term that is not concave"); return;
  case BU_NEG_POWER:
    snprintf(out, size, "a negative power of a term that is not concave and positive");
    return;
  case BU_EXPONENT: snprintf(out, size, "a power whose exponent depends on the state"); return;
  case BU_EXPONENT_UNKNOWN:
    snprintf(out, size, "a power whose exponent is not known (a param without a value)");
    return;
  case BU_NEITHER: snprintf(out, size, "%s of a non-affine term", fname); return;
  case BU_LSE: snprintf(out, size, "logsumexp of a term that is not convex"); return;
  case BU_NORM:
    snprintf(out, size, "norm of a term that is neither affine nor convex and of one sign");
    return;
  case BU_DIV_ZERO: snprintf(out, size, "a division by zero"); return;
  case BU_DIV_MAYBE_ZERO:
    snprintf(out, size, "a division by a constant that may be zero (a param without a value)");
    return;
  case BU_NOT_FINITE: snprintf(out, size, "a constant that is not a finite number"); return;
  case BU_TOO_BIG:
    snprintf(out, size, "the Lagrangian is too large for the static proof");
    return;
  case BU_OTHER: snprintf(out, size, "an expression the rules do not cover"); return;
  }
  snprintf(out, size, "not covered by the rules");
}

static void set_blame(const An *an, ConvexityResult *out, int index) {
  const Blame *b = &an->blames[index];
  out->span = b->span;
  out->has_call = b->has_call;
  out->call = b->call;
  out->call_name = b->call_name;
  write_reason(an, b, out->reason, sizeof out->reason);
}

// ---- Entry points ----

void convexity_analyze(const Model *m, int layer, const double *params, const int64_t *dims,
                       const DiagSink *sink, ConvexityResult *out) {
  memset(out, 0, sizeof *out);
  const ModelLayer *l = &m->layers[layer];
  out->verdict = CONVEXITY_UNKNOWN;
  if (!l->lagrangian || l->dim < 0) {
    snprintf(out->reason, sizeof out->reason, "the layer has no valid Lagrangian");
    return;
  }
  out->span = l->lagrangian->span;
  An an = {m, params, dims, sink, -1, NULL, 0, 0, BUDGET, 0, false, NULL, out};
  an.n = dim_value(&an, l->dim);
  Blame none = {BL_NONE, {0, 0, 0}, NULL, -1, 0, false, {0, 0, 0}, NULL};
  VEC_PUSH(an.blames, an.nblames, an.cap, none);  // index 0: no blame
  Env top = {NULL, NULL, NULL, NULL};
  Val v = analyze(&an, l->lagrangian, &top);
  if (an.overflow) {
    snprintf(out->reason, sizeof out->reason, "the Lagrangian is too large for the static proof");
  } else if (v.cvx) {
    out->verdict = CONVEX_PROVEN;
    if (an.catalogue_name)
      snprintf(out->reason, sizeof out->reason, "convex by the catalogue: %s, with its "
               "parameters in range (docs/theory.md §3)", an.catalogue_name);
    else
      snprintf(out->reason, sizeof out->reason, "convex by the composition rules");
  } else if (v.nc && v.nc_blame) {
    out->verdict = NONCONVEX_PROVEN;
    set_blame(&an, out, v.nc_blame);
  } else if (v.ccv) {
    snprintf(out->reason, sizeof out->reason, "the rules prove it concave, but not affine");
  } else if (v.unk_blame) {
    set_blame(&an, out, v.unk_blame);
  } else {
    snprintf(out->reason, sizeof out->reason, "not covered by the rules");
  }
  free(an.blames);
}

static bool span_within(Span inner, Span outer) {
  return inner.file == outer.file && inner.begin >= outer.begin && inner.end <= outer.end;
}

void convexity_check_model(Session *s, Model *m) {
  ConvexityResult *r = xmalloc(sizeof *r);
  for (int a = 0; a < m->nlayers; a++) {
    ModelLayer *l = &m->layers[a];
    if (!l->lagrangian || l->dim < 0) continue;
    convexity_analyze(m, a, NULL, NULL, s->diag, r);
    l->convexity = r->verdict;
    l->convexity_span = r->span;
    l->convexity_reason = arena_strndup(s->arena, r->reason, strlen(r->reason));
    ParamRuleIssue *issues = arena_alloc(s->arena, sizeof *issues * ((size_t)r->nissues + 1));
    memcpy(issues, r->issues, sizeof *issues * (size_t)r->nissues);
    l->param_issues = issues;
    l->nparam_issues = r->nissues;
    bool explained = false;
    for (int i = 0; i < r->nissues; i++) {
      diag_warning(s->diag, r->issues[i].span, "%s", r->issues[i].text);
      explained |= r->issues[i].fatal && span_within(r->span, r->issues[i].call);
    }
    // A prelude Lagrangian with a parameter out of range is explained by that warning.
    if (r->verdict != NONCONVEX_PROVEN || explained) continue;
    diag_warning(s->diag, r->span, "the Lagrangian of layer '%s' is not convex: %s", l->name,
                 r->reason);
    if (r->has_call) diag_note(s->diag, r->call, "in this call of '%s'", r->call_name);
  }
  free(r);
}

const char *convexity_verdict_text(Convexity v) {
  switch (v) {
  case CONVEX_PROVEN: return "convex (proven)";
  case NONCONVEX_PROVEN: return "not convex (proven)";
  case CONVEXITY_UNKNOWN: return "unknown";
  }
  return "unknown";
}

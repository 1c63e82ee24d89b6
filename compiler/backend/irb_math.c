// Elementwise math functions emitted inline as branch-free IR (irb_math in irb.h).
//
// Why not libm or libmvec: llvm.exp and friends become one scalar libm call per element
// inside a vector loop; the vectoriser maps them to glibc's libmvec only through the
// process-wide -vector-library option, and then only to the AVX2 variants. Emitting the
// functions as IR keeps loops call-free, lets the vectoriser use the full vector width,
// and leaves accuracy in our hands.
//
// Every function is written once, for both float types; a Format row gives the bit layout
// and the polynomial degrees. The building blocks are fdlibm's classic reductions:
//   exp, expm1:  x = k ln2 + r, |r| <= ln2/2 (Cody-Waite: ln2 split into a short ln2_hi,
//                so that k*ln2_hi is exact, and ln2_lo); expm1(r) by its Taylor series;
//                exp = 2^k (1 + expm1(r)), expm1 = 2^k (expm1(r) + 1 - 2^-k), scaled in
//                two exact steps so that 2^k may overflow or underflow one float.
//   log, log1p:  u = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact),
//                s = f / (2 + f), log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))) with R the
//                tail of the atanh series; log1p adds the rounding error of u = 1 + x
//                back as c / u.
// and the rest is composed from them in forms without cancellation. Special values come
// from selects at the end: the reductions clamp their argument first so that no NaN or
// out-of-range value reaches a float-to-int conversion.
//
// Accuracy, measured on 10^6 random points per function and type (test_backend_math) and
// exhaustively over the f32 inputs: see compiler/backend/README.md.
#include <math.h>

#include "backend/irb.h"
#include "support/common.h"

// (M_LN2 and M_LOG2E are not in strict C11.)
#define LN2 0.693147180559945309417232121458176568
#define LOG2E 1.44269504088896340735992468100189214

typedef struct {
  LLVMTypeRef (*type)(LLVMContextRef ctx);      // the float type
  LLVMTypeRef (*int_type)(LLVMContextRef ctx);  // the integer type of the same width
  unsigned mant;        // explicit mantissa bits
  int bias;             // exponent bias
  long long sqrt_half;  // the bit pattern of sqrt(1/2), rounded
  int exp_degree;       // degree of the Taylor polynomial of expm1(r), |r| <= ln2/2
  int log_terms;        // terms of R(z) = sum 2 z^j / (2j + 1), z = s^2 <= 0.0295
  double ln2_hi;        // ln2 rounded to few bits: k * ln2_hi is exact for every k here
  double ln2_lo;        // ln2 - ln2_hi
  double big;           // above this |x|, e^(-2|x|) is below half an ulp of 1
} Format;

// Truncation errors: f64 13th degree: r^13 / 14! = 1.2e-17 relative; 10 atanh terms:
// z^11 / 23 = 6e-19. f32 8th degree: 6e-10; 4 terms: 2e-9. The ln2 splits are fdlibm's
// (32 bits) and Cephes' (9 bits).
static const Format formats[] = {
    [IRB_F32] = {LLVMFloatTypeInContext, LLVMInt32TypeInContext, 23, 127, 0x3f3504f3, 8, 4,
                 0.693359375, -2.12194440e-4, 10.0},
    [IRB_F64] = {LLVMDoubleTypeInContext, LLVMInt64TypeInContext, 52, 1023,
                 0x3fe6a09e667f3bcd, 13, 10, 6.93147180369123816490e-01,
                 1.90821492927058770002e-10, 22.0},
};

typedef struct {
  Irb *irb;
  LLVMBuilderRef b;
  const Format *f;
  LLVMTypeRef ty, ty_int;  // f's types
} Em;

// ---- instruction helpers (the builder folds constants) ----

static LLVMValueRef real(Em *em, double c) { return LLVMConstReal(em->ty, c); }
static LLVMValueRef cint(Em *em, long long c) {
  return LLVMConstInt(em->ty_int, (unsigned long long)c, 1);
}
static LLVMValueRef fadd(Em *em, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFAdd(em->b, a, b, "");
}
static LLVMValueRef fsub(Em *em, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFSub(em->b, a, b, "");
}
static LLVMValueRef fmul(Em *em, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFMul(em->b, a, b, "");
}
static LLVMValueRef fdiv(Em *em, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFDiv(em->b, a, b, "");
}
static LLVMValueRef fmuladd(Em *em, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMValueRef args[3] = {a, b, c};
  return irb_intrinsic(em->irb, "llvm.fmuladd", args, 3);
}
static LLVMValueRef call1(Em *em, const char *intrinsic, LLVMValueRef a) {
  return irb_intrinsic(em->irb, intrinsic, &a, 1);
}
static LLVMValueRef copysign_(Em *em, LLVMValueRef mag, LLVMValueRef sgn) {
  LLVMValueRef args[2] = {mag, sgn};
  return irb_intrinsic(em->irb, "llvm.copysign", args, 2);
}
static LLVMValueRef fcmp(Em *em, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFCmp(em->b, p, a, b, "");
}
static LLVMValueRef sel(Em *em, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(em->b, c, a, b, "");
}
static LLVMValueRef bits(Em *em, LLVMValueRef x) {
  return LLVMBuildBitCast(em->b, x, em->ty_int, "");
}
static LLVMValueRef from_bits(Em *em, LLVMValueRef i) {
  return LLVMBuildBitCast(em->b, i, em->ty, "");
}
// x with NaN wherever `orig` is NaN (NaN arguments take no path through the reductions).
static LLVMValueRef keep_nan(Em *em, LLVMValueRef orig, LLVMValueRef x) {
  return sel(em, fcmp(em, LLVMRealUNO, orig, orig), orig, x);
}
// x limited to [lo, hi]; NaN becomes lo. (ogt/olt selects are single max/min instructions.)
static LLVMValueRef clamp(Em *em, LLVMValueRef x, double lo, double hi) {
  LLVMValueRef t = sel(em, fcmp(em, LLVMRealOGT, x, real(em, lo)), x, real(em, lo));
  return sel(em, fcmp(em, LLVMRealOLT, t, real(em, hi)), t, real(em, hi));
}

// Conversions between small integers and reals go through i32, which vectorises without
// AVX-512DQ (64-bit integer <-> double conversions do not).
static LLVMValueRef real_to_int(Em *em, LLVMValueRef x) {
  LLVMValueRef k = LLVMBuildFPToSI(em->b, x, em->irb->ty_i32, "");
  return em->ty_int == em->irb->ty_i32 ? k : LLVMBuildSExt(em->b, k, em->ty_int, "");
}
static LLVMValueRef int_to_real(Em *em, LLVMValueRef k) {
  if (em->ty_int != em->irb->ty_i32) k = LLVMBuildTrunc(em->b, k, em->irb->ty_i32, "");
  return LLVMBuildSIToFP(em->b, k, em->ty, "");
}

// 2^k for an integer k in the normal exponent range.
static LLVMValueRef pow2(Em *em, LLVMValueRef k) {
  LLVMValueRef e = LLVMBuildAdd(em->b, k, cint(em, em->f->bias), "");
  return from_bits(em, LLVMBuildShl(em->b, e, cint(em, em->f->mant), ""));
}

// v * 2^k for |k| up to twice the exponent range, in two exact steps: 2^k itself may
// overflow or underflow, and only the last product rounds (once, also into subnormals).
static LLVMValueRef scale2(Em *em, LLVMValueRef v, LLVMValueRef k) {
  LLVMValueRef k1 = LLVMBuildAShr(em->b, k, cint(em, 1), "");
  LLVMValueRef k2 = LLVMBuildSub(em->b, k, k1, "");
  return fmul(em, fmul(em, v, pow2(em, k1)), pow2(em, k2));
}

// ---- exp and expm1 ----

// exp's argument range: beyond, the result is inf or 0, also for e^x / 2 (sinh, cosh),
// and k stays within scale2's range.
static double exp_hi(const Format *f) { return (f->bias + 3) * LN2; }
static double exp_lo(const Format *f) { return -(f->bias + (int)f->mant + 2) * LN2; }
// Below this, expm1 rounds to -1 (and 2^-k in expm1_join stays normal).
static double expm1_lo(const Format *f) { return -((int)f->mant + 3) * LN2; }

// Splits x (finite, clamped) into x = k ln2 + r and returns q = expm1(r); k in `*k`.
static LLVMValueRef exp_reduce(Em *em, LLVMValueRef x, LLVMValueRef *k) {
  const Format *f = em->f;
  LLVMValueRef kd = call1(em, "llvm.rint", fmul(em, x, real(em, LOG2E)));
  LLVMValueRef r = fmuladd(em, kd, real(em, -f->ln2_hi), x);  // exact
  r = fmuladd(em, kd, real(em, -f->ln2_lo), r);
  *k = real_to_int(em, kd);
  // q = r + r^2 (1/2! + r/3! + ... + r^(d-2)/d!)
  double c = 1;
  for (int j = 2; j <= f->exp_degree; j++) c /= j;
  LLVMValueRef p = real(em, c);
  for (int j = f->exp_degree - 1; j >= 2; j--) {
    c *= j + 1;
    p = fmuladd(em, p, r, real(em, c));
  }
  return fmuladd(em, fmul(em, r, r), p, r);
}

// expm1(k ln2 + r) = 2^k (q + 1 - 2^-k) from exp_reduce's k and q. For k above the
// mantissa width 1 - 2^-k rounds to 1, so k is capped there and 2^-k stays normal.
static LLVMValueRef expm1_join(Em *em, LLVMValueRef k, LLVMValueRef q) {
  LLVMValueRef cap = cint(em, em->f->mant + 2);
  LLVMValueRef kc = sel(em, LLVMBuildICmp(em->b, LLVMIntSGT, k, cap, ""), cap, k);
  LLVMValueRef c = fsub(em, real(em, 1), pow2(em, LLVMBuildNeg(em->b, kc, "")));
  // For k != 0, |c| >= 1/2 and |q| <= 0.42: at most about one bit cancels in q + c.
  return scale2(em, fadd(em, q, c), k);
}

static LLVMValueRef emit_exp(Em *em, LLVMValueRef x) {
  LLVMValueRef k;
  LLVMValueRef q = exp_reduce(em, clamp(em, x, exp_lo(em->f), exp_hi(em->f)), &k);
  return keep_nan(em, x, scale2(em, fadd(em, real(em, 1), q), k));
}

static LLVMValueRef emit_expm1(Em *em, LLVMValueRef x) {
  LLVMValueRef k;
  LLVMValueRef q = exp_reduce(em, clamp(em, x, expm1_lo(em->f), exp_hi(em->f)), &k);
  return keep_nan(em, x, expm1_join(em, k, q));
}

// ---- log and log1p ----

// log(u) for a positive normal u. `kadj`, if not NULL, is subtracted from the binary
// exponent (undoing a scaling of u); `corr`, if not NULL, is a small correction added in
// the low-order part.
static LLVMValueRef log_core(Em *em, LLVMValueRef u, LLVMValueRef kadj, LLVMValueRef corr) {
  const Format *f = em->f;
  long long one = (long long)f->bias << f->mant, sqh = f->sqrt_half;
  // Adding one - sqh carries into the exponent exactly when the mantissa is at least
  // sqrt(2)'s, so that m = 2^-k u lands in [sqrt(1/2), sqrt(2)).
  LLVMValueRef adj = LLVMBuildAdd(em->b, bits(em, u), cint(em, one - sqh), "");
  LLVMValueRef k = LLVMBuildSub(em->b, LLVMBuildLShr(em->b, adj, cint(em, f->mant), ""),
                                cint(em, f->bias), "");
  LLVMValueRef mant_mask = cint(em, (1ll << f->mant) - 1);
  LLVMValueRef m = from_bits(
      em, LLVMBuildAdd(em->b, LLVMBuildAnd(em->b, adj, mant_mask, ""), cint(em, sqh), ""));

  LLVMValueRef fm = fsub(em, m, real(em, 1));  // exact
  LLVMValueRef s = fdiv(em, fm, fadd(em, real(em, 2), fm));
  LLVMValueRef z = fmul(em, s, s);
  // R(z) = sum_{j=1..n} 2 z^j / (2j + 1), by Horner.
  int n = f->log_terms;
  LLVMValueRef t = real(em, 2.0 / (2 * n + 1));
  for (int j = n - 1; j >= 1; j--) t = fmuladd(em, t, z, real(em, 2.0 / (2 * j + 1)));
  LLVMValueRef big_r = fmul(em, t, z);
  LLVMValueRef hfsq = fmul(em, real(em, 0.5), fmul(em, fm, fm));

  LLVMValueRef kd = int_to_real(em, k);
  if (kadj) kd = fsub(em, kd, kadj);
  LLVMValueRef lo = fmul(em, kd, real(em, f->ln2_lo));
  if (corr) lo = fadd(em, lo, corr);
  // fdlibm's order: k ln2_hi + (f - (hfsq - (s (hfsq + R) + k ln2_lo)))
  LLVMValueRef tail = fsub(em, hfsq, fadd(em, fmul(em, s, fadd(em, hfsq, big_r)), lo));
  return fadd(em, fmul(em, kd, real(em, f->ln2_hi)), fsub(em, fm, tail));
}

static LLVMValueRef emit_log(Em *em, LLVMValueRef x) {
  const Format *f = em->f;
  // Subnormals are scaled into the normal range first (negatives and 0 too, harmlessly).
  LLVMValueRef tiny = fcmp(em, LLVMRealOLT, x, real(em, ldexp(1, 1 - f->bias)));
  LLVMValueRef u = sel(em, tiny, fmul(em, x, real(em, ldexp(1, (int)f->mant + 2))), x);
  LLVMValueRef kadj = sel(em, tiny, real(em, f->mant + 2), real(em, 0));
  LLVMValueRef r = log_core(em, u, kadj, NULL);
  r = sel(em, fcmp(em, LLVMRealOEQ, x, real(em, INFINITY)), x, r);
  r = sel(em, fcmp(em, LLVMRealOEQ, x, real(em, 0)), real(em, -INFINITY), r);
  return sel(em, fcmp(em, LLVMRealULT, x, real(em, 0)), real(em, NAN), r);  // also NaN
}

static LLVMValueRef emit_log1p(Em *em, LLVMValueRef x) {
  LLVMValueRef one = real(em, 1);
  LLVMValueRef u = fadd(em, one, x);
  // The rounding error of 1 + x, exactly: for x >= 1 by Fast2Sum, below by Sterbenz.
  LLVMValueRef c = sel(em, fcmp(em, LLVMRealOGE, x, one), fsub(em, one, fsub(em, u, x)),
                       fsub(em, x, fsub(em, u, one)));
  LLVMValueRef r = log_core(em, u, NULL, fdiv(em, c, u));
  r = sel(em, fcmp(em, LLVMRealOEQ, x, real(em, INFINITY)), x, r);
  r = sel(em, fcmp(em, LLVMRealOEQ, x, real(em, -1)), real(em, -INFINITY), r);
  return sel(em, fcmp(em, LLVMRealULT, x, real(em, -1)), real(em, NAN), r);  // also NaN
}

// ---- functions composed from exp, expm1, log1p ----

static LLVMValueRef emit_sqrt(Em *em, LLVMValueRef x) { return call1(em, "llvm.sqrt", x); }

static LLVMValueRef emit_abs(Em *em, LLVMValueRef x) { return call1(em, "llvm.fabs", x); }

static LLVMValueRef emit_relu(Em *em, LLVMValueRef x) {
  return sel(em, fcmp(em, LLVMRealOLT, x, real(em, 0)), real(em, 0), x);
}

// e^-|x|, the exponential of sigmoid and softplus: it cannot overflow.
static LLVMValueRef exp_neg_abs(Em *em, LLVMValueRef x) {
  return emit_exp(em, LLVMBuildFNeg(em->b, call1(em, "llvm.fabs", x), ""));
}

// cosh a - 1 = e^2 / (2 (1 + e)) for e = expm1(a), a >= 0: no cancellation near 0.
static LLVMValueRef cosh_minus_1(Em *em, LLVMValueRef e) {
  return fdiv(em, fmul(em, e, e), fmul(em, real(em, 2), fadd(em, real(em, 1), e)));
}

// tanh|x| = e / (e + 2) with e = expm1(2|x|): no cancellation at any size; beyond `big`
// it is 1 in this precision.
static LLVMValueRef emit_tanh(Em *em, LLVMValueRef x) {
  LLVMValueRef a = call1(em, "llvm.fabs", x);
  LLVMValueRef big = real(em, em->f->big);
  a = sel(em, fcmp(em, LLVMRealOGT, a, big), big, a);  // NaN stays
  LLVMValueRef e = emit_expm1(em, fmul(em, real(em, 2), a));
  return copysign_(em, fdiv(em, e, fadd(em, e, real(em, 2))), x);
}

// 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below, both from e = e^-|x|: no overflow
// of e^-x for very negative x, and the small results keep full relative accuracy.
static LLVMValueRef emit_sigmoid(Em *em, LLVMValueRef x) {
  LLVMValueRef e = exp_neg_abs(em, x);
  LLVMValueRef r = fdiv(em, real(em, 1), fadd(em, real(em, 1), e));
  return sel(em, fcmp(em, LLVMRealOGE, x, real(em, 0)), r, fmul(em, e, r));
}

// max(x, 0) + log1p(e^-|x|): no overflow, and no cancellation (both terms >= 0).
static LLVMValueRef emit_softplus(Em *em, LLVMValueRef x) {
  LLVMValueRef e = exp_neg_abs(em, x);
  LLVMValueRef m = sel(em, fcmp(em, LLVMRealOGT, x, real(em, 0)), x, real(em, 0));
  return fadd(em, m, emit_log1p(em, e));
}

// sinh and cosh of a = |x| from one reduction of a. Below `big`, from e = expm1(a):
// sinh a = (e + e / (e + 1)) / 2 and cosh a = 1 + cosh_minus_1, both without
// cancellation. Above, both are e^a / 2 = 2^(k-1) (1 + q), which stays finite up to
// sinh's own overflow threshold (e^a alone would overflow earlier).
static LLVMValueRef emit_hyperbolic(Em *em, LLVMValueRef x, bool is_sinh) {
  LLVMValueRef a = call1(em, "llvm.fabs", x);
  LLVMValueRef k;
  LLVMValueRef q = exp_reduce(em, clamp(em, a, 0, exp_hi(em->f)), &k);
  LLVMValueRef e = expm1_join(em, k, q);
  LLVMValueRef one = real(em, 1);
  LLVMValueRef small =
      is_sinh ? fmul(em, real(em, 0.5), fadd(em, e, fdiv(em, e, fadd(em, e, one))))
              : fadd(em, one, cosh_minus_1(em, e));
  LLVMValueRef k_half = LLVMBuildSub(em->b, k, cint(em, 1), "");
  LLVMValueRef half_exp = scale2(em, fadd(em, one, q), k_half);
  LLVMValueRef r = sel(em, fcmp(em, LLVMRealOLT, a, real(em, em->f->big)), small, half_exp);
  return keep_nan(em, x, is_sinh ? copysign_(em, r, x) : r);
}

static LLVMValueRef emit_sinh(Em *em, LLVMValueRef x) { return emit_hyperbolic(em, x, true); }
static LLVMValueRef emit_cosh(Em *em, LLVMValueRef x) { return emit_hyperbolic(em, x, false); }

// log cosh x = log1p(cosh a - 1) with a = |x|: accurate down to tiny x, where
// log(cosh x) would lose everything to cosh x ~ 1. Beyond `big`, it is a - ln2 in this
// precision.
static LLVMValueRef emit_logcosh(Em *em, LLVMValueRef x) {
  LLVMValueRef a = call1(em, "llvm.fabs", x);
  LLVMValueRef big = real(em, em->f->big);
  LLVMValueRef is_big = fcmp(em, LLVMRealOGT, a, big);  // false for NaN
  LLVMValueRef e = emit_expm1(em, sel(em, is_big, big, a));
  LLVMValueRef small = emit_log1p(em, cosh_minus_1(em, e));
  return sel(em, is_big, fsub(em, a, real(em, LN2)), small);
}

// ---- the table ----

// `f32_in_f64`: the f32 version is evaluated in f64 and rounded once (two conversions,
// half the vector width). For the functions whose f32 evaluation chains several roundings
// through expm1 and reaches 4 ulp (tanh) or 5 ulp (logcosh) somewhere among the 2^32
// inputs; widened, they are within 1 ulp of the exact value.
static const struct {
  const char *name;
  LLVMValueRef (*emit)(Em *em, LLVMValueRef x);
  bool f32_in_f64;
} math_fns[IRB_MATH_COUNT] = {
    [IRB_EXP] = {"exp", emit_exp, false},
    [IRB_EXPM1] = {"expm1", emit_expm1, false},
    [IRB_LOG] = {"log", emit_log, false},
    [IRB_LOG1P] = {"log1p", emit_log1p, false},
    [IRB_SQRT] = {"sqrt", emit_sqrt, false},
    [IRB_ABS] = {"abs", emit_abs, false},
    [IRB_TANH] = {"tanh", emit_tanh, true},
    [IRB_SIGMOID] = {"sigmoid", emit_sigmoid, false},
    [IRB_SOFTPLUS] = {"softplus", emit_softplus, false},
    [IRB_RELU] = {"relu", emit_relu, false},
    [IRB_COSH] = {"cosh", emit_cosh, false},
    [IRB_SINH] = {"sinh", emit_sinh, false},
    [IRB_LOGCOSH] = {"logcosh", emit_logcosh, true},
};

LLVMValueRef irb_math(Irb *irb, IrbMath fn, LLVMValueRef v_x) {
  DAMC_ASSERT(fn < IRB_MATH_COUNT);
  bool widen = irb->real == IRB_F32 && math_fns[fn].f32_in_f64;
  const Format *f = &formats[widen ? IRB_F64 : irb->real];
  Em em = {irb, irb->b, f, f->type(irb->ctx), f->int_type(irb->ctx)};
  if (widen) v_x = LLVMBuildFPExt(irb->b, v_x, em.ty, "");
  LLVMValueRef v = math_fns[fn].emit(&em, v_x);
  return widen ? LLVMBuildFPTrunc(irb->b, v, irb->ty_real, "") : v;
}

const char *irb_math_name(IrbMath fn) {
  DAMC_ASSERT(fn < IRB_MATH_COUNT);
  return math_fns[fn].name;
}

// The plan builder (lower/plan.h) on small networks built from model text, without compiling
// any code: which nodes get buffers (roles, batched or not, sizes, names), which elementwise
// chains are fused into one map, the shapes, leading dimensions and transpose flags of the
// BLAS products, both kernel kinds, an eliminated layer, and plan_output_buf.
//
// Every expected value below is derived from the rules of plan.h and kernel_eqs.h, with the
// reason next to it; none is copied from the builder's output.
//
// Conventions of a batched product (plan.h): per sample the model computes y = op(A) x with
// A a weight stored row-major [rows, cols]; over the batch the plan computes
// Y[B, m] = X[B, k] op(A)' with one gemm, so that the step's `a` is the batched operand, `b`
// the weight, trans_b = !(A is transposed in the model), n = m, k the length of x, lda = k
// (the row stride of X), ldb = A's cols (its row stride as stored), ldc = n, and m = -1 (the
// batch).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "derive/kernel_eqs.h"
#include "derive/network.h"
#include "front/front.h"
#include "lower/plan.h"
#include "support/strbuf.h"

// ---- Fixture: a network from text, its dims bound by hand ----

typedef struct {
  Session *s;
  Model *m;
  Network *net;
  int64_t dims[16];
} Net;

// Compiles and derives `text`; the dims named in `names` get `sizes`, the others their
// declared size. False (after printing the diagnostics) when the model does not derive or a
// dim stays unbound.
static bool net_open(Net *n, const char *text, const char *const *names, const int64_t *sizes,
                     int nsizes) {
  memset(n, 0, sizeof *n);
  n->s = session_new(NULL);
  n->m = front_compile(n->s, "test.dam", text, strlen(text));
  if (n->m) n->net = network_derive(n->s, n->m, NULL, 0);
  if (!n->net) {
    fprintf(stderr, "%s", diag_text(n->s->diag));
    return false;
  }
  for (int i = 0; i < n->net->ndims; i++) {
    n->dims[i] = n->net->dims[i].size;
    for (int k = 0; k < nsizes; k++)
      if (n->net->dims[i].name && strcmp(n->net->dims[i].name, names[k]) == 0) n->dims[i] = sizes[k];
    if (n->dims[i] <= 0) {
      fprintf(stderr, "dim %d is unbound\n", i);
      return false;
    }
  }
  return true;
}

static void net_close(Net *n) {
  network_free(n->net);
  session_free(n->s);
}

static Plan *build(const Net *n, KernelKind kind) {
  StrBuf err = {0};
  Plan *p = plan_build(n->net, n->dims, kind, &err);
  if (!p) fprintf(stderr, "plan_build: %s\n", sb_str(&err));
  sb_free(&err);
  return p;
}

static int layer_of(const Net *n, const char *name) {
  for (int a = 0; a < n->net->nlayers; a++)
    if (strcmp(n->net->layers[a].name, name) == 0) return a;
  return -1;
}

// ---- Queries on a plan ----

static int find_buf(const Plan *p, const char *name) {
  for (int i = 0; i < p->nbufs; i++)
    if (strcmp(p->bufs[i].name, name) == 0) return i;
  return -1;
}

static int count_steps(const Plan *p, PlanStepKind kind) {
  int c = 0;
  for (int i = 0; i < p->nsteps; i++) c += p->steps[i].kind == kind;
  return c;
}

static int count_role(const Plan *p, PlanBufRole role) {
  int c = 0;
  for (int i = 0; i < p->nbufs; i++) c += p->bufs[i].role == role;
  return c;
}

// The number of steps that write buffer `buf`, and the (first) one.
static int writers(const Plan *p, int buf, const PlanStep **step) {
  int c = 0;
  *step = NULL;
  for (int i = 0; i < p->nsteps; i++)
    if (p->steps[i].out == buf && c++ == 0) *step = &p->steps[i];
  return c;
}

// The step that writes `buf`, checked to be the only one and of `kind`; NULL otherwise.
static const PlanStep *only_writer(const Plan *p, int buf, PlanStepKind kind, int line) {
  const PlanStep *s;
  int c = buf >= 0 ? writers(p, buf, &s) : 0;
  if (c != 1 || s->kind != kind) {
    fprintf(stderr, "%s:%d: buffer %d (%s) has %d writers, wanted one of kind %d\n", __FILE__,
            line, buf, buf >= 0 ? p->bufs[buf].name : "-", c, (int)kind);
    check_failures++;
    return NULL;
  }
  return s;
}

// Checks buffer `i`'s facts.
static void check_buf(const Plan *p, int i, const char *name, PlanBufRole role, bool batched,
                      int64_t numel, int rank, int line) {
  check_count++;
  if (i < 0 || i >= p->nbufs) {
    fprintf(stderr, "%s:%d: no buffer %d (wanted %s)\n", __FILE__, line, i, name);
    check_failures++;
    return;
  }
  const PlanBuf *b = &p->bufs[i];
  if (strcmp(b->name, name) != 0 || b->role != role || b->batched != batched ||
      plan_size(p, b->numel) != numel || b->rank != rank) {
    fprintf(stderr, "%s:%d: buffer %d is %s role %d batched %d numel %lld rank %d; wanted %s "
            "role %d batched %d numel %lld rank %d\n", __FILE__, line, i, b->name, (int)b->role,
            b->batched, (long long)plan_size(p, b->numel), b->rank, name, (int)role, batched,
            (long long)numel, rank);
    check_failures++;
  }
}
#define CHECK_BUF(p, i, name, role, batched, numel, rank) \
  check_buf(p, i, name, role, batched, numel, rank, __LINE__)

// Checks a batched product step: out[B, n] = a[B, k] @ b(') (see the file comment).
static void check_batched_gemm(const Plan *p, const PlanStep *s, int a, int b, bool trans_b,
                               int64_t n, int64_t k, int64_t ldb, int line) {
  check_count++;
  if (!s) {
    check_failures++;
    return;
  }
  long long sn = plan_size(p, s->n), sk = plan_size(p, s->k), lda = plan_size(p, s->lda);
  long long sldb = plan_size(p, s->ldb), ldc = plan_size(p, s->ldc);
  if (s->kind != PS_MATMUL || !s->batched || s->a != a || s->b != b || s->trans_a ||
      s->trans_b != trans_b || sn != n || sk != k || lda != k || sldb != ldb || ldc != n) {
    fprintf(stderr, "%s:%d: gemm a=%d b=%d trans %d/%d batched %d n=%lld k=%lld "
            "lda=%lld ldb=%lld ldc=%lld; wanted a=%d b=%d trans 0/%d batched 1 n=%lld "
            "k=%lld lda=%lld ldb=%lld ldc=%lld\n", __FILE__, line, s->a, s->b, s->trans_a,
            s->trans_b, s->batched, sn, sk, lda, sldb, ldc, a, b, trans_b,
            (long long)n, (long long)k, (long long)k, (long long)ldb, (long long)n);
    check_failures++;
  }
}
#define CHECK_GEMM(p, s, a, b, trans_b, n, k, ldb) \
  check_batched_gemm(p, s, a, b, trans_b, n, k, ldb, __LINE__)

// The product step whose operands are buffers `a` and `b`, or NULL.
static const PlanStep *gemm_of(const Plan *p, int a, int b) {
  for (int i = 0; i < p->nsteps; i++)
    if (p->steps[i].kind == PS_MATMUL && p->steps[i].a == a && p->steps[i].b == b)
      return &p->steps[i];
  return NULL;
}

// No step transposes a matrix by computing it: transposes are flags of products.
static void check_no_transpose_copies(const Plan *p) {
  for (int i = 0; i < p->nbufs; i++)
    CHECK(expr_get(p->net->pool, p->bufs[i].node)->kind != EX_TRANSPOSE);
}

static void check_output(const Plan *p, int i, const char *name, OutputWhat what, int layer) {
  CHECK(i < p->noutputs);
  if (i >= p->noutputs) return;
  CHECK_STREQ(p->outputs[i].name, name);
  CHECK_EQ(p->outputs[i].what, what);
  CHECK_EQ(p->outputs[i].layer, layer);
  CHECK_EQ(plan_output_buf(p, what, layer), p->outputs[i].buf);
}

// ---- Model B: features v (g = v) and memories h (softmax), Xi[K, N] ----

static const char model_b[] =
    "model mb;\n"
    "dim N = 7;\n"
    "dim K;\n"
    "param beta = 8;\n"
    "layer v[N] { L = lagr_identity(v); tau = 1; }\n"
    "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0.05; }\n"
    "synapse Xi[K, N] : h <-> v;\n"
    "input v;\n";

enum { MB_N = 7, MB_K = 3 };  // N and K differ, so every m/n/k/ld is told apart

static void test_model_b_rhs(void) {
  Net n;
  const char *names[] = {"K"};
  const int64_t sizes[] = {MB_K};
  CHECK(net_open(&n, model_b, names, sizes, 1));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (!p) {
    net_close(&n);
    return;
  }
  CHECK_EQ(p->kind, KERNEL_RHS);
  int v = layer_of(&n, "v"), h = layer_of(&n, "h");
  CHECK(v == 0 && h == 1);

  // The inputs come first, in layer order, then the weights: x_v, I_v (v has `input`),
  // x_h (h has none), Xi. States and inputs are per sample; the weight is one [K, N] matrix.
  CHECK_BUF(p, 0, "x_v", PB_STATE, true, MB_N, 1);
  CHECK_BUF(p, 1, "I_v", PB_INPUT, true, MB_N, 1);
  CHECK_BUF(p, 2, "x_h", PB_STATE, true, MB_K, 1);
  CHECK_BUF(p, 3, "Xi", PB_WEIGHT, false, MB_K * MB_N, 2);
  CHECK_EQ(plan_size(p, p->bufs[3].rows), MB_K);
  CHECK_EQ(plan_size(p, p->bufs[3].cols), MB_N);
  CHECK_EQ(plan_size(p, p->bufs[0].rows), MB_N);
  CHECK_EQ(plan_size(p, p->bufs[0].cols), 1);
  CHECK_EQ(p->bufs[0].index, v);
  CHECK_EQ(p->bufs[2].index, h);
  CHECK_EQ(p->bufs[3].index, 0);
  CHECK_EQ(p->state_buf[v], 0);
  CHECK_EQ(p->state_buf[h], 2);
  CHECK_EQ(p->input_buf[v], 1);
  CHECK_EQ(p->input_buf[h], -1);  // h has no `input`
  CHECK_EQ(p->weight_buf[0], 3);
  CHECK_EQ(p->node_buf[n.net->layers[v].state], 0);
  CHECK_EQ(find_buf(p, "Xi"), 3);
  CHECK_EQ(find_buf(p, "u_v"), -1);  // RHS computes no u (dx/dt reads the product directly)

  // Outputs, in kernel_eqs order: g of each layer, then dx/dt of each (RHS has no u, no E).
  CHECK_EQ(p->noutputs, 4);
  check_output(p, 0, "g_v", OUT_G, v);
  check_output(p, 1, "g_h", OUT_G, h);
  check_output(p, 2, "dxdt_v", OUT_DXDT, v);
  check_output(p, 3, "dxdt_h", OUT_DXDT, h);
  CHECK_EQ(plan_output_buf(p, OUT_U, v), -1);
  CHECK_EQ(plan_output_buf(p, OUT_ENERGY, -1), -1);
  CHECK_EQ(plan_output_buf(p, OUT_X, h), -1);  // nothing is eliminated

  // g_v = v (lagr_identity) is the state leaf itself, which already lives in a batched
  // buffer: the output names x_v, with no copy.
  CHECK_EQ(plan_output_buf(p, OUT_G, v), 0);

  // Buffers: 4 inputs; outputs g_h, dxdt_v, dxdt_h (g_v aliases x_v); temporaries:
  // beta * x_h (used twice: inside the log-sum-exp and in the softmax's exponent),
  // logsumexp(beta * x_h) (a reduction), and the two products Xi' g(h) and Xi g(v)
  // (a product always gets a buffer). Nothing else: -x_v, the sums and the scaling by
  // 1/tau_h are used once and computed inline.
  CHECK_EQ(p->nbufs, 11);
  CHECK_EQ(count_role(p, PB_OUTPUT), 3);
  CHECK_EQ(count_role(p, PB_TEMP), 4);

  // Steps: map beta*x_h; reduce lse; map g_h; product Xi' g_h; map dxdt_v; product Xi x_v;
  // map dxdt_h: 4 maps, 1 reduction, 2 products, 7 in all.
  CHECK_EQ(p->nsteps, 7);
  CHECK_EQ(count_steps(p, PS_MAP), 4);
  CHECK_EQ(count_steps(p, PS_REDUCE), 1);
  CHECK_EQ(count_steps(p, PS_MATMUL), 2);
  static const PlanStepKind order[] = {PS_MAP, PS_REDUCE, PS_MAP, PS_MATMUL, PS_MAP, PS_MATMUL, PS_MAP};
  for (int i = 0; i < p->nsteps && i < 7; i++) CHECK_EQ(p->steps[i].kind, order[i]);

  // The reduction: logsumexp of the buffer of beta * x_h, into a per-sample scalar.
  const PlanStep *lse = &p->steps[1];
  const Expr *lx = expr_get(n.net->pool, lse->node);
  CHECK_EQ(lx->kind, EX_LSE);
  CHECK_BUF(p, lse->out, p->bufs[lse->out].name, PB_TEMP, true, 1, 0);
  CHECK_EQ(p->steps[0].out, p->node_buf[lx->kids[0]]);  // its argument is the first map's buffer
  const Expr *bx = expr_get(n.net->pool, lx->kids[0]);
  CHECK_EQ(bx->kind, EX_MUL);
  CHECK_BUF(p, p->steps[0].out, p->bufs[p->steps[0].out].name, PB_TEMP, true, MB_K, 1);

  // g_h is one fused map (exp(beta x_h - lse)), into its output; the activation leaf g(h)
  // then reads that buffer.
  int g_h = plan_output_buf(p, OUT_G, h);
  CHECK_BUF(p, g_h, "g_h", PB_OUTPUT, true, MB_K, 1);
  CHECK(only_writer(p, g_h, PS_MAP, __LINE__) != NULL);
  CHECK_EQ(p->node_buf[n.net->layers[h].act], g_h);

  // u_v's product Xi' g(h): per sample [N] = Xi'[N, K] g[K]; batched, G[B, K] @ Xi[K, N]
  // with Xi not transposed as stored: trans_b = 0, n = N, k = K, ldb = Xi's cols = N.
  const PlanStep *xt = gemm_of(p, g_h, 3);
  CHECK_GEMM(p, xt, g_h, 3, false, MB_N, MB_K, MB_N);
  if (xt) CHECK_BUF(p, xt->out, p->bufs[xt->out].name, PB_TEMP, true, MB_N, 1);
  // u_h's product Xi g(v) = Xi x_v: X[B, N] @ Xi'[N, K]: trans_b = 1, n = K, k = N, ldb = N.
  const PlanStep *xg = gemm_of(p, 0, 3);
  CHECK_GEMM(p, xg, 0, 3, true, MB_K, MB_N, MB_N);
  if (xg) CHECK_BUF(p, xg->out, p->bufs[xg->out].name, PB_TEMP, true, MB_K, 1);

  // dx/dt of each layer is one map over its inputs and the product's buffer:
  // dxdt_v = I_v - x_v + Xi' g_h (tau 1), dxdt_h = 20 (Xi x_v - x_h) (tau 0.05).
  int dv = plan_output_buf(p, OUT_DXDT, v), dh = plan_output_buf(p, OUT_DXDT, h);
  CHECK_BUF(p, dv, "dxdt_v", PB_OUTPUT, true, MB_N, 1);
  CHECK_BUF(p, dh, "dxdt_h", PB_OUTPUT, true, MB_K, 1);
  CHECK(only_writer(p, dv, PS_MAP, __LINE__) != NULL);
  CHECK(only_writer(p, dh, PS_MAP, __LINE__) != NULL);
  // ...and each product comes before the map that reads it.
  if (xt && xg) {
    CHECK(xt < &p->steps[6] && xt->out != dv);
    CHECK(p->steps[4].out == dv && p->steps[6].out == dh);
    CHECK(xt == &p->steps[3] && xg == &p->steps[5]);
  }
  check_no_transpose_copies(p);

  // The printed plan shows the products as gemms over the batch.
  StrBuf text = {0};
  plan_print(&text, p);
  CHECK(strstr(sb_str(&text), "g_h @ Xi    (gemm M=B N=7 K=3)") != NULL);
  CHECK(strstr(sb_str(&text), "x_v @ Xi'    (gemm M=B N=3 K=7)") != NULL);
  sb_free(&text);
  plan_free(p);
  net_close(&n);
}

static void test_model_b_eval(void) {
  Net n;
  const char *names[] = {"K"};
  const int64_t sizes[] = {MB_K};
  CHECK(net_open(&n, model_b, names, sizes, 1));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_EVAL);
  CHECK(p != NULL);
  if (!p) {
    net_close(&n);
    return;
  }
  CHECK_EQ(p->kind, KERNEL_EVAL);
  // The same inputs as the RHS kernel.
  CHECK_BUF(p, 0, "x_v", PB_STATE, true, MB_N, 1);
  CHECK_BUF(p, 1, "I_v", PB_INPUT, true, MB_N, 1);
  CHECK_BUF(p, 2, "x_h", PB_STATE, true, MB_K, 1);
  CHECK_BUF(p, 3, "Xi", PB_WEIGHT, false, MB_K * MB_N, 2);

  // EVAL adds u per layer (after g, interleaved with dx/dt), each layer's energy part and E.
  CHECK_EQ(p->noutputs, 9);
  check_output(p, 0, "g_v", OUT_G, 0);
  check_output(p, 1, "g_h", OUT_G, 1);
  check_output(p, 2, "u_v", OUT_U, 0);
  check_output(p, 3, "dxdt_v", OUT_DXDT, 0);
  check_output(p, 4, "u_h", OUT_U, 1);
  check_output(p, 5, "dxdt_h", OUT_DXDT, 1);
  check_output(p, 6, "E_v", OUT_PART, 0);
  check_output(p, 7, "E_h", OUT_PART, 1);
  check_output(p, 8, "E", OUT_ENERGY, -1);
  CHECK_EQ(plan_output_buf(p, OUT_G, 0), 0);  // g_v = x_v again
  CHECK_EQ(plan_output_buf(p, OUT_X, 1), -1);

  // u_h = Xi x_v is exactly a product: the gemm writes the output buffer itself, and dxdt_h
  // reads it (one product, not two).
  int u_h = plan_output_buf(p, OUT_U, 1);
  CHECK_BUF(p, u_h, "u_h", PB_OUTPUT, true, MB_K, 1);
  const PlanStep *s = only_writer(p, u_h, PS_MATMUL, __LINE__);
  CHECK_GEMM(p, s, 0, 3, true, MB_K, MB_N, MB_N);
  // u_v = I_v + Xi' g_h is a sum: a map; the product lives in a temporary that both u_v and
  // dxdt_v = I_v - x_v + Xi' g_h read (used twice).
  int u_v = plan_output_buf(p, OUT_U, 0);
  CHECK_BUF(p, u_v, "u_v", PB_OUTPUT, true, MB_N, 1);
  CHECK(only_writer(p, u_v, PS_MAP, __LINE__) != NULL);
  int g_h = plan_output_buf(p, OUT_G, 1);
  const PlanStep *xt = gemm_of(p, g_h, 3);
  CHECK_GEMM(p, xt, g_h, 3, false, MB_N, MB_K, MB_N);
  if (xt) CHECK_EQ(p->bufs[xt->out].role, PB_TEMP);

  // E and the parts are per-sample scalars: batched, one element, rank 0.
  CHECK_BUF(p, plan_output_buf(p, OUT_ENERGY, -1), "E", PB_OUTPUT, true, 1, 0);
  CHECK_BUF(p, plan_output_buf(p, OUT_PART, 0), "E_v", PB_OUTPUT, true, 1, 0);
  CHECK_BUF(p, plan_output_buf(p, OUT_PART, 1), "E_h", PB_OUTPUT, true, 1, 0);

  // Reductions: lse(beta x_h) (g_h and L_h), dot(x_v, I_v) (E_v's -I.g), sum(x_v^2)
  // (Lambda_v = x.x - x.x/2 folds to x.x/2), dot(x_h, g_h) (Lambda_h), dot(g_h, u_h) (the
  // synapse's energy -g_h . Xi g_v): 5. Products: Xi' g_h and Xi x_v, as in RHS: 2.
  // Maps: beta*x_h, g_h, u_v, dxdt_v, dxdt_h, E_v, E_h, E (8 outputs or operands used twice)
  // plus the three per-sample scalars used in both a part and E, each with a loop of its
  // own (plan.h): -dot(x_v, I_v), 0.5 sum(x_v^2), -lse/beta: 11. In all 18.
  CHECK_EQ(count_steps(p, PS_REDUCE), 5);
  CHECK_EQ(count_steps(p, PS_MATMUL), 2);
  CHECK_EQ(count_steps(p, PS_MAP), 11);
  CHECK_EQ(p->nsteps, 18);
  // Every reduction writes a per-sample scalar temporary.
  for (int i = 0; i < p->nsteps; i++)
    if (p->steps[i].kind == PS_REDUCE) {
      const PlanBuf *b = &p->bufs[p->steps[i].out];
      CHECK(b->role == PB_TEMP && b->batched && plan_size(p, b->numel) == 1 && b->rank == 0);
    }
  // Outputs: g_h u_v dxdt_v u_h dxdt_h E_v E_h E (g_v aliases x_v): 8 buffers. Temps:
  // beta*x_h, Xi' g_h, the 5 reductions, the 3 shared scalars: 10. With 4 inputs: 22.
  CHECK_EQ(count_role(p, PB_OUTPUT), 8);
  CHECK_EQ(count_role(p, PB_TEMP), 10);
  CHECK_EQ(p->nbufs, 22);
  check_no_transpose_copies(p);
  plan_free(p);
  net_close(&n);
}

// ---- An eliminated layer: Model A with tau_h = 0 ----

static const char model_a[] =
    "model ma;\n"
    "dim N;\n"
    "dim K;\n"
    "param n = 3;\n"
    "param beta = 1;\n"
    "layer v[N] { L = lagr_tanh(v, beta); tau = 1; }\n"
    "layer h[K] { L = lagr_repu(h, n); tau = 0; }\n"
    "synapse Xi[K, N] : h <-> v;\n"
    "input v;\n";

static void test_eliminated(void) {
  Net n;
  const char *names[] = {"N", "K"};
  const int64_t sizes[] = {5, 3};
  CHECK(net_open(&n, model_a, names, sizes, 2));
  if (!n.net) return;
  CHECK(n.net->layers[1].eliminated);
  CHECK(!n.net->layers[0].eliminated);
  for (int kind = 0; kind < KERNEL_MODEL_KINDS; kind++) {
    Plan *p = build(&n, (KernelKind)kind);
    CHECK(p != NULL);
    if (!p) continue;
    // h has no state input: the kernel computes x_h = u_h = Xi g_v, and that output is the
    // layer's state for everything after it.
    CHECK_BUF(p, 0, "x_v", PB_STATE, true, 5, 1);
    CHECK_BUF(p, 1, "I_v", PB_INPUT, true, 5, 1);
    CHECK_BUF(p, 2, "Xi", PB_WEIGHT, false, 15, 2);
    CHECK_EQ(count_role(p, PB_STATE), 1);
    int x_h = plan_output_buf(p, OUT_X, 1);
    CHECK_BUF(p, x_h, "x_h", PB_OUTPUT, true, 3, 1);
    CHECK_EQ(p->state_buf[1], x_h);
    CHECK_EQ(p->node_buf[n.net->layers[1].state], x_h);
    CHECK_EQ(p->input_buf[1], -1);
    // Order: g_v first (it is what u_h reads), then x_h, then g_h (kernel_eqs.h).
    check_output(p, 0, "g_v", OUT_G, 0);
    check_output(p, 1, "x_h", OUT_X, 1);
    check_output(p, 2, "g_h", OUT_G, 1);
    // An eliminated layer does not move: no dxdt_h.
    CHECK_EQ(plan_output_buf(p, OUT_DXDT, 1), -1);
    // g_v = tanh(beta x_v) is not the state: an output buffer of its own.
    int g_v = plan_output_buf(p, OUT_G, 0);
    CHECK_BUF(p, g_v, "g_v", PB_OUTPUT, true, 5, 1);
    // x_h is exactly the product Xi g_v: the gemm writes it directly.
    // G[B, N] @ Xi'[N, K]: trans_b = 1, n = K = 3, k = N = 5, ldb = Xi's cols = 5.
    const PlanStep *s = only_writer(p, x_h, PS_MATMUL, __LINE__);
    CHECK_GEMM(p, s, g_v, 2, true, 3, 5, 5);
    // u_v's product Xi' g_h: G[B, K] @ Xi[K, N]: trans_b = 0, n = 5, k = 3, ldb = 5.
    int g_h = plan_output_buf(p, OUT_G, 1);
    CHECK_BUF(p, g_h, "g_h", PB_OUTPUT, true, 3, 1);
    CHECK_GEMM(p, gemm_of(p, g_h, 2), g_h, 2, false, 5, 3, 5);
    CHECK_EQ(count_steps(p, PS_MATMUL), 2);
    if (kind == KERNEL_RHS) {
      // g_v, x_h, g_h, dxdt_v: 4 outputs. Steps: map g_v (tanh(beta x_v) fused: beta x_v is
      // used once here), gemm x_h, map g_h (relu(x_h)^(n-1) step(x_h) fused), gemm Xi' g_h,
      // map dxdt_v: 3 maps, 2 products, no reduction; one temporary (the second product).
      CHECK_EQ(p->noutputs, 4);
      check_output(p, 3, "dxdt_v", OUT_DXDT, 0);
      CHECK_EQ(p->nsteps, 5);
      CHECK_EQ(count_steps(p, PS_MAP), 3);
      CHECK_EQ(count_steps(p, PS_REDUCE), 0);
      CHECK_EQ(count_role(p, PB_TEMP), 1);
      CHECK_EQ(p->nbufs, 8);
      CHECK(only_writer(p, g_v, PS_MAP, __LINE__) != NULL);
      CHECK(only_writer(p, g_h, PS_MAP, __LINE__) != NULL);
    } else {
      // u_h = x_h: the same expression, already in a batched buffer: the output names it.
      CHECK_EQ(plan_output_buf(p, OUT_U, 1), x_h);
      CHECK(plan_output_buf(p, OUT_PART, 1) >= 0);  // E_h = Lambda_h(x_h), h still has a part
      CHECK_BUF(p, plan_output_buf(p, OUT_ENERGY, -1), "E", PB_OUTPUT, true, 1, 0);
      // g_v x_h g_h, then u_v dxdt_v u_h (no dxdt_h), then E_v E_h and E: 9.
      CHECK_EQ(p->noutputs, 9);
      check_output(p, 3, "u_v", OUT_U, 0);
      check_output(p, 4, "dxdt_v", OUT_DXDT, 0);
      check_output(p, 5, "u_h", OUT_U, 1);
      check_output(p, 8, "E", OUT_ENERGY, -1);
    }
    plan_free(p);
  }
  net_close(&n);
}

// ---- A self-synapse: the classic Hopfield network, T[N, N] ----

static void test_self_synapse(void) {
  Net n;
  const char *names[] = {"N"};
  const int64_t sizes[] = {4};
  CHECK(net_open(&n,
                 "model hop;\ndim N;\n"
                 "layer v[N] { L = lagr_tanh(v, 1); tau = 2; }\n"
                 "synapse T[N, N] : v <-> v;\n",
                 names, sizes, 1));
  if (!n.net) return;
  CHECK(n.net->weights[0].self_synapse && n.net->weights[0].symmetric);
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (p) {
    // x_v (no input), T, then g_v, the product, dxdt_v.
    CHECK_EQ(p->nbufs, 5);
    CHECK_BUF(p, 0, "x_v", PB_STATE, true, 4, 1);
    CHECK_BUF(p, 1, "T", PB_WEIGHT, false, 16, 2);
    CHECK_EQ(p->input_buf[0], -1);
    int g_v = plan_output_buf(p, OUT_G, 0);
    CHECK_BUF(p, g_v, "g_v", PB_OUTPUT, true, 4, 1);
    // The current of a symmetric self-synapse is T g (the 1/2 of the energy cancels against
    // the two equal halves of the gradient): one product, not (T + T')/2 g as two.
    // Per sample T[N, N] g: G[B, N] @ T': trans_b = 1, n = k = ldb = 4.
    CHECK_EQ(count_steps(p, PS_MATMUL), 1);
    const PlanStep *s = gemm_of(p, g_v, 1);
    CHECK_GEMM(p, s, g_v, 1, true, 4, 4, 4);
    // g_v one map, dxdt_v = (T g - x) / 2 one map.
    CHECK_EQ(count_steps(p, PS_MAP), 2);
    CHECK_EQ(p->nsteps, 3);
    plan_free(p);
  }
  net_close(&n);
}

// ---- A weight written transposed, a fused elementwise chain ----

static void test_transposed_weight(void) {
  Net n;
  const char *names[] = {"M"};
  const int64_t sizes[] = {3};
  // W[N, M] appears in the energy as W': u_h = W' g(v) and u_v = W g(h).
  CHECK(net_open(&n,
                 "model tr;\ndim N = 5;\ndim M;\n"
                 "layer v[N] { L = sum(softplus(3 * v - 1)) / 3; tau = 4; }\n"
                 "layer h[M] { L = lagr_identity(h); tau = 1; }\n"
                 "weight W[N, M];\n"
                 "energy -dot(g(h), W' @ g(v));\n",
                 names, sizes, 1));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (p) {
    CHECK_BUF(p, 0, "x_v", PB_STATE, true, 5, 1);
    CHECK_BUF(p, 1, "x_h", PB_STATE, true, 3, 1);
    CHECK_BUF(p, 2, "W", PB_WEIGHT, false, 15, 2);
    CHECK_EQ(plan_size(p, p->bufs[2].rows), 5);
    CHECK_EQ(plan_size(p, p->bufs[2].cols), 3);
    int g_v = plan_output_buf(p, OUT_G, 0);
    // g_v = sigmoid(3 x_v - 1): the chain (scale, shift, sigmoid) is one map into g_v, with
    // no temporary (3 x_v - 1 is used once in RHS, where L is not computed).
    CHECK_BUF(p, g_v, "g_v", PB_OUTPUT, true, 5, 1);
    CHECK(only_writer(p, g_v, PS_MAP, __LINE__) != NULL);
    // g_h = h (identity): x_h itself.
    CHECK_EQ(plan_output_buf(p, OUT_G, 1), 1);
    // u_h = W' g_v: per sample W'[M, N] g[N]; the transpose is a flag: G[B, N] @ W[N, M]
    // as stored: trans_b = 0, n = M = 3, k = N = 5, ldb = W's cols = 3.
    CHECK_GEMM(p, gemm_of(p, g_v, 2), g_v, 2, false, 3, 5, 3);
    // u_v = (W')' g_h = W g_h: X_h[B, M] @ W'[M, N]: trans_b = 1, n = 5, k = 3, ldb = 3.
    CHECK_GEMM(p, gemm_of(p, 1, 2), 1, 2, true, 5, 3, 3);
    // Temporaries: the two products only. Steps: map g_v, 2 products, map dxdt_v,
    // map dxdt_h (each (u - x)/tau fused with its scale 1/4 or 1): 3 maps + 2 products.
    CHECK_EQ(count_role(p, PB_TEMP), 2);
    CHECK_EQ(count_steps(p, PS_MATMUL), 2);
    CHECK_EQ(count_steps(p, PS_MAP), 3);
    CHECK_EQ(count_steps(p, PS_REDUCE), 0);
    CHECK_EQ(p->nsteps, 5);
    check_no_transpose_copies(p);
    plan_free(p);
  }
  p = build(&n, KERNEL_EVAL);
  CHECK(p != NULL);
  if (p) {
    // In EVAL, L_v = sum(softplus(3 x_v - 1))/3 also reads 3 x_v - 1... (its argument is
    // used by g_v and by L_v): the common operand gets a buffer, and g_v reads it.
    int g_v = plan_output_buf(p, OUT_G, 0);
    const PlanStep *s = only_writer(p, g_v, PS_MAP, __LINE__);
    if (s) {
      const Expr *g = expr_get(n.net->pool, s->node);
      CHECK_EQ(g->kind, EX_FN);
      CHECK(g->nkids == 1 && p->node_buf[g->kids[0]] >= 0);
      if (g->nkids == 1 && p->node_buf[g->kids[0]] >= 0)
        CHECK_BUF(p, p->node_buf[g->kids[0]], p->bufs[p->node_buf[g->kids[0]]].name, PB_TEMP,
                  true, 5, 1);
    }
    // u_h and u_v are exactly the products: the gemms write the outputs.
    CHECK_GEMM(p, only_writer(p, plan_output_buf(p, OUT_U, 1), PS_MATMUL, __LINE__), g_v, 2, false,
               3, 5, 3);
    CHECK_GEMM(p, only_writer(p, plan_output_buf(p, OUT_U, 0), PS_MATMUL, __LINE__), 1, 2, true, 5,
               3, 3);
    check_no_transpose_copies(p);
    plan_free(p);
  }
  net_close(&n);
}

// ---- An elementwise expression that feeds a product gets a buffer ----

static void test_feeds_product(void) {
  Net n;
  const char *names[] = {"M"};
  const int64_t sizes[] = {2};
  // The second energy term multiplies W by g(v)^2 (elementwise): that vector is used once,
  // but as a product's operand it must live in a buffer (BLAS reads memory).
  CHECK(net_open(&n,
                 "model fp;\ndim N = 6;\ndim M;\n"
                 "layer v[N] { L = lagr_tanh(v, 1); tau = 1; }\n"
                 "layer h[M] { L = lagr_identity(h); tau = 1; }\n"
                 "weight W[M, N];\n"
                 "energy -dot(g(h), W @ (g(v) * g(v)));\n",
                 names, sizes, 1));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (p) {
    int g_v = plan_output_buf(p, OUT_G, 0);
    // u_h = W g_v^2: the product's batched operand is a temporary [B, N] holding g_v^2,
    // written by one map from g_v's buffer.
    const PlanStep *prod = NULL;
    for (int i = 0; i < p->nsteps; i++)
      if (p->steps[i].kind == PS_MATMUL && plan_size(p, p->bufs[p->steps[i].out].numel) == 2) prod = &p->steps[i];
    CHECK(prod != NULL);
    if (prod) {
      CHECK(prod->a != g_v);
      CHECK_BUF(p, prod->a, p->bufs[prod->a].name, PB_TEMP, true, 6, 1);
      CHECK(only_writer(p, prod->a, PS_MAP, __LINE__) != NULL);
      // W g_v^2 per sample: SQ[B, N] @ W'[N, M]: trans_b = 1, n = 2, k = 6, ldb = 6.
      CHECK_GEMM(p, prod, prod->a, 2, true, 2, 6, 6);
    }
    plan_free(p);
  }
  net_close(&n);
}

// ---- A product of weights alone: computed once per call, not per sample ----

static const char weights_only[] =
    "model wb;\ndim N = 5;\ndim M = 3;\n"
    "layer v[N] { L = lagr_identity(v); tau = 1; }\n"
    "weight W[M, N];\nweight b[M];\n"
    "energy -dot(W' @ b, g(v));\n";

static void test_weight_product(void) {
  Net n;
  CHECK(net_open(&n, weights_only, NULL, NULL, 0));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (p) {
    CHECK_BUF(p, 1, "W", PB_WEIGHT, false, 15, 2);
    CHECK_BUF(p, 2, "b", PB_WEIGHT, false, 3, 1);
    // u_v = W' b depends on no state: one product per call, C[N, 1] = W'[N, M] b[M, 1],
    // into an unbatched [N] temporary: m = N = 5, n = 1, k = M = 3, trans_a = 1 (W is
    // stored [M, N]), lda = W's cols = 5, ldb = ldc = 1 (column vectors).
    CHECK_EQ(count_steps(p, PS_MATMUL), 1);
    const PlanStep *s = gemm_of(p, 1, 2);
    CHECK(s != NULL);
    if (s) {
      CHECK(!s->batched);
      CHECK(s->trans_a && !s->trans_b);
      CHECK_EQ(plan_size(p, s->m), 5);
      CHECK_EQ(plan_size(p, s->n), 1);
      CHECK_EQ(plan_size(p, s->k), 3);
      CHECK_EQ(plan_size(p, s->lda), 5);
      CHECK_EQ(plan_size(p, s->ldb), 1);
      CHECK_EQ(plan_size(p, s->ldc), 1);
      CHECK_BUF(p, s->out, p->bufs[s->out].name, PB_TEMP, false, 5, 1);
    }
    // dxdt_v = W' b - x_v: one batched map reading the unbatched temporary.
    int dv = plan_output_buf(p, OUT_DXDT, 0);
    CHECK_BUF(p, dv, "dxdt_v", PB_OUTPUT, true, 5, 1);
    CHECK(only_writer(p, dv, PS_MAP, __LINE__) != NULL);
    CHECK_EQ(p->nsteps, 2);
    plan_free(p);
  }
  // Regression: in EVAL, u_v = W' b is an output, which
  // assign() gives a batched [B, N] buffer but fills with the single unbatched gemm above:
  // only sample 0 was written, and u_v, dxdt_v and E were wrong for samples 1.. of a batch.
  // A product that writes a batched buffer must be a batched product (or be broadcast).
  p = build(&n, KERNEL_EVAL);
  CHECK(p != NULL);
  if (p) {
    for (int i = 0; i < p->nsteps; i++)
      if (p->steps[i].kind == PS_MATMUL) CHECK_EQ(p->bufs[p->steps[i].out].batched, p->steps[i].batched);
    plan_free(p);
  }
  net_close(&n);
}

// ---- A matrix computed once per call, shared by two products ----

static void test_matrix_once(void) {
  Net n;
  const char *names[] = {"N", "M"};
  const int64_t sizes[] = {5, 3};
  // (W * W) is a matrix of weights alone: one unbatched map per call (not per sample), used
  // by both currents: u_v = (W*W)' g_h and u_h = (W*W) g_v.
  CHECK(net_open(&n,
                 "model ww;\ndim N;\ndim M;\n"
                 "layer v[N] { L = lagr_identity(v); tau = 1; }\n"
                 "layer h[M] { L = lagr_tanh(h); tau = 1; }\n"
                 "weight W[M, N];\n"
                 "energy -dot(g(h), (W * W) @ g(v));\n",
                 names, sizes, 2));
  if (!n.net) return;
  Plan *p = build(&n, KERNEL_RHS);
  CHECK(p != NULL);
  if (p) {
    int sq = -1;
    for (int i = 0; i < p->nbufs; i++)
      if (p->bufs[i].rank == 2 && p->bufs[i].role == PB_TEMP) sq = i;
    CHECK(sq >= 0);
    if (sq >= 0) {
      CHECK_BUF(p, sq, p->bufs[sq].name, PB_TEMP, false, 15, 2);
      CHECK_EQ(plan_size(p, p->bufs[sq].rows), 3);
      CHECK_EQ(plan_size(p, p->bufs[sq].cols), 5);
      const PlanStep *s = only_writer(p, sq, PS_MAP, __LINE__);
      CHECK(s && !s->batched);
      // Both products read it as stored [M, N]: G_h[B, M] @ SQ (trans_b 0, n = 5, k = 3) and
      // X_v[B, N] @ SQ' (trans_b 1, n = 3, k = 5); ldb = 5 either way.
      int g_h = plan_output_buf(p, OUT_G, 1);
      CHECK_GEMM(p, gemm_of(p, g_h, sq), g_h, sq, false, 5, 3, 5);
      CHECK_GEMM(p, gemm_of(p, 0, sq), 0, sq, true, 3, 5, 5);
      // ...and the square comes before both.
      if (s) {
        const PlanStep *a = gemm_of(p, g_h, sq), *b = gemm_of(p, 0, sq);
        CHECK(a && b && s < a && s < b);
      }
    }
    // The weight itself feeds no product: only the square does.
    CHECK(gemm_of(p, plan_output_buf(p, OUT_G, 1), 2) == NULL);
    CHECK_EQ(count_steps(p, PS_MATMUL), 2);
    plan_free(p);
  }
  net_close(&n);
}

// ---- A transposed weight outside a product ----

static void test_transpose_outside_product(void) {
  Net n;
  const char *names[] = {"N"};
  const int64_t sizes[] = {3};
  // W + W' needs the transpose as a matrix of its own: W' is a map over its 9 elements,
  // once per call (unbatched, rank 2), and the two products read the sum.
  CHECK(net_open(&n,
                 "model wt;\ndim N;\n"
                 "layer v[N] { L = lagr_identity(v); tau = 1; }\n"
                 "weight W[N, N];\n"
                 "energy -0.25 * dot(g(v), (W + W') @ g(v));\n",
                 names, sizes, 1));
  if (!n.net) return;
  for (int kind = 0; kind < KERNEL_MODEL_KINDS; kind++) {
    StrBuf err = {0};
    Plan *p = plan_build(n.net, n.dims, (KernelKind)kind, &err);
    CHECK(p != NULL);
    int transposes = 0, products = 0;
    for (int i = 0; p && i < p->nsteps; i++) {
      const PlanStep *s = &p->steps[i];
      const PlanBuf *o = &p->bufs[s->out];
      if (s->kind == PS_MAP && expr_get(n.net->pool, s->node)->kind == EX_TRANSPOSE) {
        transposes++;
        CHECK(!o->batched && o->rank == 2 && plan_size(p, o->numel) == 9);
      }
      if (s->kind == PS_MATMUL) {
        products++;
        CHECK(!s->per_sample && s->batched);  // one gemm over the batch per product
        CHECK(!p->bufs[s->b].batched && p->bufs[s->b].rank == 2);  // the matrix, once
      }
    }
    CHECK_EQ(transposes, 1);
    CHECK(products >= 1);
    plan_free(p);
    sb_free(&err);
  }
  plan_free(NULL);  // a no-op
  net_close(&n);
}

// ---- The derivative kernels ----

static void test_derivative_kernels(void) {
  Net n;
  const char *names[] = {"N", "K"};
  const int64_t sizes[] = {7, 3};
  CHECK(net_open(&n,
                 "model b;\ndim N;\ndim K;\nparam beta = 2;\n"
                 "layer v[N] { L = lagr_identity(v); tau = 1; }\n"
                 "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0; }\n"
                 "synapse Xi[K, N] : h <-> v;\n",
                 names, sizes, 2));
  if (!n.net) return;
  // HVP: one output per layer, H_A d_A; every layer's state and direction is an input (the
  // eliminated h too: the product is taken at the state given).
  Plan *p = build(&n, KERNEL_HVP);
  CHECK(p != NULL);
  if (p) {
    CHECK_EQ(p->noutputs, 2);
    CHECK_EQ(count_role(p, PB_DIRECTION), 2);
    CHECK_EQ(count_role(p, PB_STATE), 2);
    CHECK(plan_output_buf(p, OUT_HVP, 0) >= 0 && plan_output_buf(p, OUT_HVP, 1) >= 0);
    plan_free(p);
  }
  // JVP of the reduced dynamics: one output (v), its state and direction the only inputs
  // besides the weight; the two products with Xi go through BLAS.
  p = build(&n, KERNEL_JVP);
  CHECK(p != NULL);
  if (p) {
    CHECK_EQ(p->noutputs, 1);
    CHECK(plan_output_buf(p, OUT_JVP, 0) >= 0);
    CHECK_EQ(count_role(p, PB_DIRECTION), 1);
    CHECK_EQ(count_role(p, PB_STATE), 1);
    int products = 0;
    for (int i = 0; i < p->nsteps; i++) products += p->steps[i].kind == PS_MATMUL;
    CHECK(products >= 2);
    plan_free(p);
  }
  net_close(&n);
}

int main(void) {
  test_model_b_rhs();
  test_model_b_eval();
  test_eliminated();
  test_self_synapse();
  test_transposed_weight();
  test_feeds_product();
  test_weight_product();
  test_matrix_once();
  test_transpose_outside_product();
  test_derivative_kernels();
  return check_report("test_lower_plan");
}

// The C API's messages name its own means (include/damc.h, DamcPhrase): every message of
// the engine that says how to give what is missing or to ask for what would help names a
// function, a field or a value of the API, never a flag of the command line. Each text is
// checked whole; tests/golden/diag/means_*.dam give the command line's texts of the same
// messages and python/tests/test_messages.py the Python module's.
//
// Then damc_set_phrase, as a binding for another language uses it: its phrases replace the
// API's, in the clone compiled for a second precision too; a NULL dim phrase leaves the
// model's declaration alone; a bad phrase is a bad argument.
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "damc.h"

// x decays to 0 (E = |x|^2 / 2): float32 overflows at x = 1e20, the async rule refuses it.
static const char decay_text[] = "model decay;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n";

static DamcModel *open_text(const char *name, const char *text) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string(name, text, &err);
  if (!m) fprintf(stderr, "%s: %s", name, err.message);
  damc_error_clear(&err);
  CHECK(m != NULL);
  return m;
}

// The message of the call that just failed, whole (then cleared).
#define CHECK_MESSAGE(err, want)        \
  do {                                  \
    CHECK_STREQ((err)->message, want);  \
    damc_error_clear(err);              \
  } while (0)

// damc_run from the state `x` of the model's first layer (`n` values), or NULL.
static DamcResults *run1(DamcModel *m, const double *x, size_t n, const DamcRunOptions *o,
                         DamcError *err) {
  DamcArray states[3] = {{1, {n}, x, DAMC_F64}};
  DamcBatch b = {states, NULL, NULL};
  return damc_run(m, &b, o, err);
}

// What is missing: a weight, a dim's size, a param's value.
static void test_missing(void) {
  DamcError err = {0};
  DamcModel *m = open_text("p.dam",
                           "model p;\ndim N = 2;\ndim K;\ndim M;\nparam beta;\n"
                           "layer v[N] { L = 0.5 * sum(v^2); }\nlayer m[M] { L = lagr_softmax(m); }\n"
                           "weight W[K, N];\nenergy -beta * sum(W @ g(v));\n");
  if (!m) return;
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "weight 'W' [K, N=2] is missing: give it with damc_bind_weight(model, \"W\", "
                      "...)\nparam 'beta' has no default: give it with damc_set_param(model, "
                      "\"beta\", VALUE)\n");
  double w[6] = {1, 2, 3, 4, 5, 6};
  DamcArray wa = {2, {3, 2}, w, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wa, "w.npy", &err));
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "dim 'M' has no size: no tensor fixes it; give it with damc_set_dim(model, "
                      "\"M\", SIZE) or in the model ('dim M = ...;')\nparam 'beta' has no default: "
                      "give it with damc_set_param(model, \"beta\", VALUE)\n");
  damc_model_free(m);
}

// The calls that size a dim or set a param, named with their arguments.
static void test_calls(void) {
  DamcError err = {0};
  const char *text = "model w;\ndim N;\nparam beta = 1;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
                     "weight b[N];\nenergy -beta * dot(b, g(v));\n";
  DamcModel *m = open_text("w.dam", text);
  if (!m) return;
  CHECK(!damc_set_dim(m, "Nn", 3, &err));
  CHECK_MESSAGE(&err, "damc_set_dim(model, \"Nn\", 3): model 'w' has no dim 'Nn'; did you mean "
                      "'N'?\n");
  CHECK(!damc_set_dim(m, "N", 0, &err));
  CHECK_MESSAGE(&err, "damc_set_dim(model, \"N\", 0): a size is an integer from 1 to 2147483647\n");
  CHECK(damc_set_dim(m, "N", 5, &err));
  CHECK(!damc_set_dim(m, "N", 6, &err));
  CHECK_MESSAGE(&err, "damc_set_dim(model, \"N\", 6): 'N' is already 5 (from damc_set_dim)\n");
  double b[3] = {1, 2, 3};
  DamcArray ba = {1, {3}, b, DAMC_F64};
  CHECK(!damc_bind_weight(m, "b", &ba, "b.npy", &err));
  CHECK_MESSAGE(&err, "b.npy: tensor 'b' has shape [3], but the model declares 'b' as [N=5] "
                      "(N = 5 from damc_set_dim)\n");
  CHECK(!damc_set_param(m, "gamma", 1, &err));
  CHECK_EQ(err.status, 1);  // the model's: it has no such param
  CHECK_MESSAGE(&err, "damc_set_param(model, \"gamma\", 1): model 'w' has no param 'gamma' (its "
                      "params: beta)\n");
  CHECK(!damc_set_param(m, "beta", INFINITY, &err));
  CHECK_EQ(err.status, 2);  // a bad argument
  CHECK_MESSAGE(&err, "damc_set_param(model, \"beta\", inf): the value must be a finite number\n");
  CHECK(!damc_set_param(m, "beta", NAN, &err));
  CHECK_MESSAGE(&err, "damc_set_param(model, \"beta\", nan): the value must be a finite number\n");
  damc_model_free(m);
  // A size the model declares; one a weight gave.
  m = open_text("decay.dam", decay_text);
  if (!m) return;
  CHECK(!damc_set_dim(m, "N", 5, &err));
  CHECK_MESSAGE(&err, "damc_set_dim(model, \"N\", 5): the model declares its size (2)\n");
  damc_model_free(m);
  m = open_text("w.dam", text);
  if (!m) return;
  CHECK(damc_bind_weight(m, "b", &ba, "b.npy", &err));
  CHECK(!damc_set_dim(m, "N", 4, &err));
  CHECK_MESSAGE(&err, "damc_set_dim(model, \"N\", 4): 'N' is already 3 (from b)\n");
  damc_model_free(m);
}

// What float64 would hold: a param, a number of the model, a weight, an output.
static void test_float64(void) {
  DamcError err = {0};
  DamcModel *m = open_text("w.dam", "model w;\ndim N = 2;\nparam beta = 1;\n"
                                    "layer v[N] { L = 0.5 * sum(v^2); }\nweight b[N];\n"
                                    "energy -beta * dot(b, g(v));\n");
  if (!m) return;
  double big[2] = {1e39, 0};
  DamcArray ba = {1, {2}, big, DAMC_F64};
  CHECK(damc_bind_weight(m, "b", &ba, "b.npy", &err));
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "b.npy: weight 'b': 9.9999999999999994e+38 at [0] does not fit float32 "
                      "(largest 3.40282347e+38): use damc_use_precision(model, DAMC_F64)\n");
  CHECK(damc_set_param(m, "beta", 1e39, &err));
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "param 'beta' = 9.9999999999999994e+38 does not fit float32 (largest "
                      "3.40282347e+38): use damc_use_precision(model, DAMC_F64)\n");
  damc_model_free(m);
  m = open_text("lit.dam", "model lit;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
                           "energy -1e39 * sum(g(x));\n");
  if (!m) return;
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "the model's equations hold the number 1e+39, which does not fit float32 "
                      "(largest 3.40282347e+38): use damc_use_precision(model, DAMC_F64)\n");
  damc_model_free(m);
  m = open_text("decay.dam", decay_text);
  if (!m) return;
  CHECK(damc_compile(m, DAMC_F32, &err));
  double x[2] = {1e20, 1};
  DamcArray states[1] = {{1, {2}, x, DAMC_F64}};
  DamcBatch b = {states, NULL, NULL};
  CHECK(damc_eval(m, &b, &err) == NULL);
  CHECK_MESSAGE(&err, "output 'E_x' is +Inf at sample 0, index 0: the model is not finite at "
                      "these states and params; it overflows float32 there (in float64 it is "
                      "5e+39): use damc_use_precision(model, DAMC_F64)\n");
  // Finite states whose E overflows float32 in the trace: a warning (tol < 0: nothing
  // converges, and no other warning says so).
  FILE *trace = tmpfile();
  DamcRunOptions o = {.method = DAMC_EULER, .dt = 0.5, .tol = -1, .max_steps = 3, .trace = trace};
  DamcResults *r = run1(m, x, 2, &o, &err);
  CHECK(r != NULL);
  if (r)
    CHECK_STREQ(damc_results_warning(r), "E is not finite at step 0 of the trace, though the "
                                         "states are; it overflows float32 there (in float64 it "
                                         "is 5.0000002004087754e+39): use "
                                         "damc_use_precision(model, DAMC_F64)");
  damc_results_free(r);
  if (trace) fclose(trace);
  damc_model_free(m);
}

// Model `text` compiled for float32 and run from the state `x` (n values) with `o`: the run
// fails with the message `want`, whole.
static void failed_run(const char *name, const char *text, const double *x, size_t n,
                       const DamcRunOptions *o, const char *want) {
  DamcError err = {0};
  DamcModel *m = open_text(name, text);
  if (!m) return;
  CHECK(damc_compile(m, DAMC_F32, &err));
  CHECK(run1(m, x, n, o, &err) == NULL);
  CHECK_MESSAGE(&err, want);
  damc_model_free(m);
}

// The runs: a domain error, a divergence, a cycle, steps cut short, a rule that does not
// apply, nothing to integrate.
static void test_runs(void) {
  DamcError err = {0};
  // E = |x|^2/2 + sum(sqrt(x)) drives x below 0.
  double half[2] = {0.5, 0.5}, one[1] = {1};
  DamcRunOptions euler = {.method = DAMC_EULER, .dt = 0.1};
  failed_run("sqrt.dam", "model sq;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
             "energy sum(sqrt(g(x)));\n", half, 2, &euler,
             "the run failed: layer 'x', sample 0, neuron 0 is nan at step 5 (t = 0.5): a "
             "function was evaluated outside its domain (a log or a square root of a negative "
             "number, or inf - inf); a smaller DamcRunOptions.dt or damc_use_precision(model, "
             "DAMC_F64) may avoid it\n");
  // E = -x^2/2: x doubles every step of dt = 1, past float32 at step 128.
  euler.dt = 1;
  failed_run("div.dam", "model div;\ndim N = 1;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
             "energy -sum(g(x)^2);\n", one, 1, &euler,
             "the run diverged: layer 'x', sample 0, neuron 0 is inf at step 128 (t = 128): the "
             "state grew without bound (is E bounded below? damc_check says) or beyond the float "
             "type (damc_use_precision(model, DAMC_F64))\n");
  DamcModel *m;
  // x <- u with u_v = -h, u_h = -v: (1, 0), (0, -1), (1, 0), ...
  m = open_text("cycle.dam", "model cycle;\ndim N = 1;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
                             "layer h[N] { L = 0.5 * sum(h^2); }\nsynapse W[N, N] : h <-> v;\n");
  if (!m) return;
  double minus[1] = {-1};
  DamcArray wa = {2, {1, 1}, minus, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wa, NULL, &err) && damc_compile(m, DAMC_F32, &err));
  DamcRunOptions iterate = {.method = DAMC_ITERATE};
  DamcResults *r = run1(m, one, 1, &iterate, &err);
  CHECK(r != NULL);
  if (r)
    CHECK_STREQ(damc_results_warning(r), "1 of 1 samples did not converge: the iteration "
                "alternates between two states (sample 0: after step 2 the state is back within "
                "tol = 0.0001 of the one two steps before, while a step changes layer 'h', neuron "
                "0 by tau |dx/dt| / (1 + |x|) = 1); x <- u of coupled integrated layers "
                "overshoots, so more steps will not help: eliminate the hidden layer (tau = 0 in "
                "the model; damc_explain shows the result) or use DAMC_DOPRI5");
  damc_results_free(r);
  damc_model_free(m);
  // The async rule: a sweep that still flips a unit; a layer that is not binary.
  m = open_text("sign.dam", "model sign;\ndim N = 3;\nlayer s[N] { L = sum(abs(s)); }\n"
                            "synapse W[N, N] : s <-> s;\n");
  if (!m) return;
  double w[9] = {0, 1, 1, 1, 0, 1, 1, 1, 0}, cue[3] = {1, 1, -1};
  DamcArray wn = {2, {3, 3}, w, DAMC_F64};
  CHECK(damc_bind_weight(m, "W", &wn, NULL, &err) && damc_compile(m, DAMC_F32, &err));
  DamcRunOptions async = {.method = DAMC_ASYNC, .max_steps = 1, .order = DAMC_ORDER_SEQUENTIAL};
  r = run1(m, cue, 3, &async, &err);
  CHECK(r != NULL);
  if (r)
    CHECK_STREQ(damc_results_warning(r),
                "1 of 1 samples still changed in sweep 1; raise DamcRunOptions.max_steps");
  damc_results_free(r);
  damc_model_free(m);
  m = open_text("decay.dam", decay_text);
  if (!m) return;
  CHECK(damc_compile(m, DAMC_F32, &err));
  double x[2] = {1, 0.5};
  euler = (DamcRunOptions){.method = DAMC_EULER, .dt = 0.1, .max_steps = 1};
  r = run1(m, x, 2, &euler, &err);
  CHECK(r != NULL);
  if (r)
    CHECK_STREQ(damc_results_warning(r), "1 of 1 samples did not converge in 1 steps; the largest "
                "residual is in layer 'x' (sample 0, neuron 0): tau |dx/dt| / (1 + |x|) = "
                "0.47368419797796957 > tol = 0.0001; raise DamcRunOptions.max_steps, or "
                "DamcRunOptions.tol");
  damc_results_free(r);
  async.max_steps = 0;
  CHECK(run1(m, half, 2, &async, &err) == NULL);
  CHECK_MESSAGE(&err, "DAMC_ASYNC needs binary layers (g = sign(x), e.g. L = sum(abs(x))), but "
                      "layer 'x' is not\n");
  // Options of another method: bad arguments.
  DamcRunOptions other = {.method = DAMC_DOPRI5, .order = DAMC_ORDER_SEQUENTIAL};
  CHECK(run1(m, half, 2, &other, &err) == NULL);
  CHECK_EQ(err.status, 2);
  CHECK_MESSAGE(&err, "the order of the units is an option of DAMC_ASYNC only\n");
  other = (DamcRunOptions){.method = DAMC_RK4, .noise_T = 0.5};
  CHECK(run1(m, half, 2, &other, &err) == NULL);
  CHECK_MESSAGE(&err, "noise_T = 0.5: noise is an option of DAMC_EULER and DAMC_ASYNC only\n");
  other = (DamcRunOptions){.method = DAMC_ASYNC, .order = (DamcOrder)7};
  CHECK(run1(m, half, 2, &other, &err) == NULL);
  CHECK_MESSAGE(&err, "the order of the units (7) is DAMC_ORDER_RANDOM or "
                      "DAMC_ORDER_SEQUENTIAL\n");
  damc_model_free(m);
  m = open_text("elim.dam", "model elim;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); tau = 0; }\n");
  if (!m) return;
  CHECK(damc_compile(m, DAMC_F32, &err));
  CHECK(run1(m, NULL, 2, NULL, &err) == NULL);
  CHECK_MESSAGE(&err, "every layer is eliminated (tau = 0): there is nothing to integrate; use "
                      "damc_eval\n");
  damc_model_free(m);
}

// The params as set make the Lagrangian not convex: damc_model_warnings says so after the
// compile and after every damc_set_param, located, naming damc_check; "" when they do not.
static void test_param_warnings(void) {
  static const char *const nonconvex =
      "nc.dam:2:18: warning: with the params as set, the Lagrangian of layer 'v' is not convex "
      "(a negative multiple of a convex term): E need not decrease; 'damc_check' tells more\n"
      "    2 | layer v[3] { L = sum(v^2) / (2 * c); }\n"
      "      |                  ^~~~~~~~~~~~~~~~~~\n";
  DamcError err = {0};
  DamcModel *m = open_text("nc.dam", "param c = 1.0;\nlayer v[3] { L = sum(v^2) / (2 * c); }\n");
  if (!m) return;
  CHECK_STREQ(damc_model_warnings(m), "");
  CHECK(damc_set_param(m, "c", -1, &err));
  CHECK_STREQ(damc_model_warnings(m), "");  // said at the compile
  CHECK(damc_compile(m, DAMC_F64, &err));
  CHECK_STREQ(damc_model_warnings(m), nonconvex);
  CHECK(damc_set_param(m, "c", 2, &err));
  CHECK_STREQ(damc_model_warnings(m), "");
  CHECK(damc_set_param(m, "c", -3, &err));
  CHECK_STREQ(damc_model_warnings(m), nonconvex);
  CHECK(damc_use_precision(m, DAMC_F32, &err));
  CHECK_STREQ(damc_model_warnings(m), nonconvex);
  damc_model_free(m);
  CHECK_STREQ(damc_model_warnings(NULL), "");
}

// damc check without the weights: the checks that need them say how to give them.
static void test_check(void) {
  DamcError err = {0};
  DamcModel *m = open_text("w.dam", "model w;\ndim N = 2;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
                                    "weight b[N];\nenergy -dot(b, g(v));\n");
  if (!m) return;
  DamcCheckReport *r = damc_check(m, 1, 4, &err);
  CHECK(r != NULL);
  int skipped = 0;
  for (size_t i = 0; r && i < damc_check_count(r); i++) {
    DamcCheckItem it;
    damc_check_item(r, i, &it);
    if (!strcmp(it.verdict, "skipped") && !strcmp(it.subject, "network")) {
      CHECK_STREQ(it.reason, "needs the weights (give them with damc_bind_weight)");
      skipped++;
    }
  }
  CHECK_EQ(skipped, 3);
  damc_check_free(r);
  damc_model_free(m);
}

// damc_set_phrase: a binding's own words, kept by the engine compiled for a second
// precision; no means to size a dim; bad arguments.
static void test_set_phrase(void) {
  DamcError err = {0};
  DamcModel *m = open_text("decay.dam", decay_text);
  if (!m) return;
  CHECK(damc_set_phrase(m, DAMC_PHRASE_ASYNC, "rule='{name}{value}async'", &err));
  CHECK(damc_compile(m, DAMC_F32, &err) && damc_use_precision(m, DAMC_F64, &err));
  double half[2] = {0.5, 0.5};
  DamcRunOptions async = {.method = DAMC_ASYNC};
  CHECK(run1(m, half, 2, &async, &err) == NULL);
  CHECK_MESSAGE(&err, "rule='{name}{value}async' needs binary layers (g = sign(x), e.g. L = "
                      "sum(abs(x))), but layer 'x' is not\n");
  // Set after both precisions were compiled: both engines take it.
  CHECK(damc_set_phrase(m, DAMC_PHRASE_ASYNC, "Async", &err));
  CHECK(damc_use_precision(m, DAMC_F32, &err));
  CHECK(run1(m, half, 2, &async, &err) == NULL);
  CHECK_MESSAGE(&err, "Async needs binary layers (g = sign(x), e.g. L = sum(abs(x))), but layer "
                      "'x' is not\n");
  CHECK(!damc_set_phrase(m, DAMC_PHRASE_WEIGHT, NULL, &err));
  CHECK_EQ(err.status, 2);
  CHECK_MESSAGE(&err, "damc_set_phrase: phrase 0 is from DAMC_PHRASE_WEIGHT to "
                      "DAMC_PHRASE_EXPLAIN, and its text NULL for DAMC_PHRASE_DIM_SIZE only\n");
  CHECK(!damc_set_phrase(m, (DamcPhrase)17, "x", &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  CHECK(!damc_set_phrase(m, (DamcPhrase)-1, "x", &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  CHECK(!damc_set_phrase(NULL, DAMC_PHRASE_WEIGHT, "x", &err));
  CHECK_EQ(err.status, 2);
  damc_error_clear(&err);
  damc_model_free(m);
  // {name} and {value} filled in; no means to size a dim.
  m = open_text("m.dam", "model m;\ndim N = 2;\ndim M;\nparam beta;\n"
                         "layer v[N] { L = 0.5 * sum(v^2); }\nlayer m[M] { L = lagr_softmax(m); }\n"
                         "energy -beta * sum(g(v));\n");
  if (!m) return;
  CHECK(damc_set_phrase(m, DAMC_PHRASE_DIM_SIZE, NULL, &err));
  CHECK(damc_set_phrase(m, DAMC_PHRASE_PARAM_VALUE, "set('{name}', {value}) or {name}={value}",
                        &err));
  CHECK(!damc_compile(m, DAMC_F32, &err));
  CHECK_MESSAGE(&err, "dim 'M' has no size: no tensor fixes it; give it in the model ('dim M = "
                      "...;')\nparam 'beta' has no default: give it with set('beta', VALUE) or "
                      "beta=VALUE\n");
  damc_model_free(m);
}

int main(void) {
  test_missing();
  test_calls();
  test_float64();
  test_runs();
  test_param_warnings();
  test_check();
  test_set_phrase();
  return check_report("test_api_messages");
}

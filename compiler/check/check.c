// damc check: the checks in order (see check.h).
#include "check/check.h"

#include <stdio.h>
#include <stdlib.h>

#include "check/checks.h"
#include "check/layer_checks.h"
#include "front/ast.h"
#include "front/convexity.h"
#include "support/common.h"

// The front end's proof (front/convexity.h) again, with the params as set and the sizes
// bound: proven convex passes, proven not convex fails at the sub-expression to blame, and
// a broken parameter rule fails (or warns, for advice).
static void static_convexity(const Engine *e, const int64_t *dims, CheckReport *report) {
  const Model *m = engine_model(e);
  for (int a = 0; a < m->nlayers; a++) {
    ConvexityResult res;
    convexity_analyze(m, a, engine_params(e), dims, engine_diagnostics(e), &res);
    char subject[96];
    snprintf(subject, sizeof subject, "layer %s", m->layers[a].name);
    Verdict v = res.verdict == CONVEX_PROVEN      ? VERDICT_PASS
                : res.verdict == NONCONVEX_PROVEN ? VERDICT_FAIL
                                                  : VERDICT_SKIPPED;
    report_add(report, "static-convexity", subject, &res.span, v, "%s%s%s",
               convexity_verdict_text(res.verdict),
               v == VERDICT_SKIPPED ? ": the composition rules do not decide it (the sampled "
                                      "check below does); they stopped here: " : ": ",
               res.reason);
    for (int i = 0; i < res.nissues; i++)
      report_add(report, "parameter-rules", subject, &res.issues[i].span,
                 res.issues[i].fatal ? VERDICT_FAIL : VERDICT_WARN, "%s", res.issues[i].text);
  }
}

bool check_run(const Engine *e, uint64_t seed, int samples, const EngineArrays *arrays,
               CheckReport *report, StrBuf *err) {
  Engine *c = engine_clone(e, err);
  if (!c) return false;
  const Network *net = engine_network(c);
  bool have_weights = true;
  for (int w = 0; w < net->nweights; w++) have_weights &= engine_weight_bound(c, w);
  engine_target(c, DAMRT_F64, false);
  // Every kernel the checks run (the step kernel, always wanted, and eval), compiled before
  // any check: one that does not compile is an error of damc check, never a check's verdict.
  bool ok = !have_weights || engine_compile(c, STAGE_BIND, err);
  if (ok && have_weights) {
    engine_want(c, KERNEL_EVAL);
    StrBuf why = {0};
    if (!(ok = engine_compile(c, STAGE_JIT, &why)))
      sb_printf(err, "the float64 kernels did not compile, so the checks that run them cannot be "
                "computed: %s", sb_str(&why));
    sb_free(&why);
  }
  int64_t *dims = xcalloc((size_t)net->ndims + 1, sizeof *dims);
  for (int d = 0; d < net->ndims; d++) {
    dims[d] = engine_dims(c)[d];
    if (dims[d] <= 0) dims[d] = CHECK_SAMPLE_SIZE;
  }
  CheckOptions opt = {seed, samples, have_weights, arrays};
  ok = ok && check_model(c, dims, &opt, report, err);
  free(dims);
  engine_free(c);
  return ok;
}

bool check_model(Engine *e, const int64_t *dims, const CheckOptions *opt, CheckReport *report,
                 StrBuf *err) {
  const Network *net = engine_network(e);
  const double **weights = xcalloc((size_t)net->nweights + 1, sizeof *weights);
  for (int w = 0; opt->have_weights && w < net->nweights; w++) weights[w] = engine_weight(e, w);
  NetEnv ne;
  netenv_init(&ne, net, dims, engine_params(e), opt->have_weights ? weights : NULL, opt->seed);
  ne.given_input = opt->arrays ? opt->arrays->input : NULL;
  netenv_set_inputs(&ne, 0, false);
  // Each layer: the static proof of convexity with the params as set, then derivatives,
  // convexity and dead units at sampled states (layer_checks.h).
  static_convexity(e, dims, report);
  check_layers(net, dims, engine_params(e), opt->seed, report);
  // The network: does it have an energy, is it bounded below.
  check_has_energy(net, report);
  check_bounded_energy(&ne, opt->have_weights, report);
  bool ok = true;
  if (!opt->have_weights && net->nweights > 0) {
    StrBuf how = {0};
    engine_phrase(e, PHRASE_WEIGHTS, NULL, NULL, &how);
    static const char *const skipped[] = {"energy-identity", "energy-decrease", "stability"};
    for (int i = 0; i < 3; i++)
      report_add(report, skipped[i], "network", NULL, VERDICT_SKIPPED,
                 "needs the weights (give them %s)", sb_str(&how));
    sb_free(&how);
  } else {
    if (net->has_directed) {
      report_add(report, "energy-identity", "network", NULL, VERDICT_SKIPPED,
                 "the model has no energy (a directed synapse)");
      check_residual_lyapunov(&ne, opt->samples, report);
    } else
      check_energy_identity(&ne, opt->samples, report);
    ok = check_precision(e, &ne, opt->samples, report, err);
    bool any_state = false;
    for (int a = 0; a < net->nlayers; a++) any_state |= !net->layers[a].eliminated;
    if (!ok) {
      // The float32 kernels did not compile (err says why): nothing more is checked.
    } else if (any_state) {
      ok = check_trajectories(e, &ne, opt, report, err);
    } else {
      // Every layer follows its input at every instant: there are no dynamics to check.
      report_add(report, "energy-decrease", "network", NULL, VERDICT_SKIPPED,
                 "every layer is eliminated (tau = 0): the model has no dynamics");
      report_add(report, "stability", "network", NULL, VERDICT_SKIPPED,
                 "every layer is eliminated (tau = 0): the model has no dynamics");
    }
  }
  netenv_free(&ne);
  free(weights);
  return ok;
}

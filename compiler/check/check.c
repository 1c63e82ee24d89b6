// damc check: the checks in order (see check.h).
#include "check/check.h"

#include <stdlib.h>

#include "check/checks.h"
#include "check/layer_checks.h"
#include "front/ast.h"
#include "support/common.h"

bool check_model(Engine *e, const int64_t *dims, const CheckOptions *opt, CheckReport *report,
                 StrBuf *err) {
  const Network *net = engine_network(e);
  const double **weights = xcalloc((size_t)net->nweights + 1, sizeof *weights);
  for (int w = 0; opt->have_weights && w < net->nweights; w++) weights[w] = engine_weight(e, w);
  NetEnv ne;
  netenv_init(&ne, net, dims, engine_params(e), opt->have_weights ? weights : NULL, opt->seed);
  // Each layer: derivatives, convexity, dead units at sampled states (layer_checks.h).
  check_layers(net, dims, engine_params(e), opt->seed, 0, report);
  // The network: does it have an energy, is it bounded below.
  check_has_energy(net, report);
  check_bounded_energy(&ne, opt->have_weights, report);
  bool ok = true;
  if (!opt->have_weights && net->nweights > 0) {
    report_add(report, "energy-identity", "network", NULL, VERDICT_SKIPPED,
               "needs the weights (give them as for damc eval)");
    report_add(report, "energy-decrease", "network", NULL, VERDICT_SKIPPED,
               "needs the weights (give them as for damc eval)");
    report_add(report, "stability", "network", NULL, VERDICT_SKIPPED,
               "needs the weights (give them as for damc eval)");
  } else {
    if (net->has_directed) {
      report_add(report, "energy-identity", "network", NULL, VERDICT_SKIPPED,
                 "the model has no energy (a directed synapse)");
      check_residual_lyapunov(&ne, opt->samples, report);
    } else
      check_energy_identity(&ne, opt->samples, report);
    ok = check_trajectories(e, &ne, opt, report, err);
  }
  netenv_free(&ne);
  free(weights);
  return ok;
}

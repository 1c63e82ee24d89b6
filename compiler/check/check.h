// damc check: the checks that tell whether a model is a valid associative memory
// (docs/theory.md §4), generated for every model and reported item by item (report.h).
//
// check_model runs, in order: per layer, the static convexity verdict of the front end and
// the numerical checks of layer_checks.h (derivatives against finite differences, sampled
// spectra, dead units); for the network, whether the energy is bounded below (§1.4), whether
// the model has an energy at all (directed synapses, §1.5), and, when every weight is bound,
// the energy identity (1.4) at sampled states, the energy decrease along trajectories of
// euler, rk4 and dopri5 with the rounding allowance of §4.3, and the fixed points those
// trajectories reach: their stability by λ_max(Bᵀ𝐖B) (§4.4.2), the spectrum of the
// Jacobian, and the dead and flat directions there (§4.5). Everything is float64.
#ifndef DAMC_CHECK_CHECK_H
#define DAMC_CHECK_CHECK_H

#include <stdint.h>

#include "check/report.h"
#include "engine/engine.h"

typedef struct {
  uint64_t seed;      // of every sample
  int samples;        // network states sampled for (1.4) and trajectories started (>= 1)
  bool have_weights;  // the engine is compiled (float64) with every weight bound
  // Per layer (or NULL): initial states and inputs to start trajectories from.
  const EngineArrays *arrays;
} CheckOptions;

// Runs every check on `e` (at STAGE_DERIVE or later, with every dim sized: unbound ones
// given a sample size by the caller) and adds the items to `report`. False only when the
// engine itself fails (the message in `err`), never for a failed check.
bool check_model(Engine *e, const int64_t *dims, const CheckOptions *opt, CheckReport *report,
                 StrBuf *err);

// The size given to a dim that no weight binds when checking without weights.
enum { CHECK_SAMPLE_SIZE = 8 };

// What `damc check` and damc_check do: a float64 copy of the model of `e` (at STAGE_DERIVE
// or later, with whatever weights and params are bound; `e` itself is left as it is),
// compiled when every weight is bound, the dims no weight binds given CHECK_SAMPLE_SIZE,
// then check_model. `arrays` (or NULL): initial states and inputs of the trajectories.
bool check_run(const Engine *e, uint64_t seed, int samples, const EngineArrays *arrays,
               CheckReport *report, StrBuf *err);

#endif

// What the damc command line needs beyond the public C API (include/damc.h): the engine
// under a model, for the compiler's own tools (emit, bench, the shapes of the model), and
// a compilation that keeps the code to show or stops at an earlier stage of the pipeline
// (engine.h). `damc parse` and `explain`, which need no tensors, drive the engine's
// pipeline directly (engine_new, engine_compile).
#ifndef DAMC_API_INTERNAL_H
#define DAMC_API_INTERNAL_H

#include <stdbool.h>

#include "damc.h"
#include "engine/engine.h"

Engine *damc_model_engine(DamcModel *model);
// damc_model_from_file, with the model's located diagnostics (warnings too) written to
// `echo` as they are found instead of into `err`.
DamcModel *damc_model_open(const char *path, FILE *echo, DamcError *err);
// The engine's view of an API array (no copy).
EngineArray damc_engine_array(const DamcArray *a);
// damc_compile, keeping a copy of the code for emit (--ir, --asm, --obj) when `showable`,
// and stopping after stage `last` (STAGE_PLAN for emit --plan).
int damc_compile_to(DamcModel *model, DamcPrecision precision, bool showable, EngineStage last,
                    DamcError *err);

// The engine's run options for the API's `d` (the defaults of the precision filled in; `d`
// must outlive `o`, whose progress report relays to d->progress). False, with the message,
// when an option belongs to another method or is out of range (damc_run's status 2).
bool damc_engine_run_options(const DamcModel *model, const DamcRunOptions *d,
                             EngineRunOptions *o, StrBuf *sb);

#endif

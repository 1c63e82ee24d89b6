// The means the engine's messages name, in the words of the front end in use (see
// EnginePhrase, engine.h): the command line's, unless the front end sets its own.
#include <string.h>

#include "engine/engine_internal.h"
#include "support/common.h"

const char *const engine_cli_phrases[PHRASE_COUNT] = {
    [PHRASE_WEIGHT] = "--weights FILE.npz or --weight {name}=FILE.npy",
    [PHRASE_WEIGHTS] = "as for damc eval",
    [PHRASE_DIM] = "--dim {name}",
    [PHRASE_DIM_SIZE] = "--dim {name}={value}",
    [PHRASE_DIM_ORIGIN] = "--dim",
    [PHRASE_PARAM] = "--set {name}",
    [PHRASE_PARAM_VALUE] = "--set {name}={value}",
    [PHRASE_F64] = "--precision f64",
    [PHRASE_DT] = "--dt",
    [PHRASE_TOL] = "--tol",
    [PHRASE_MAX_STEPS] = "--max-steps",
    [PHRASE_DOPRI5] = "--method dopri5",
    [PHRASE_ASYNC] = "--method async",
    [PHRASE_EULER] = "--method euler",
    [PHRASE_EVAL] = "damc eval",
    [PHRASE_CHECK] = "damc check",
    [PHRASE_EXPLAIN] = "damc explain --eliminate",
};

void engine_set_phrase(Engine *e, EnginePhrase p, const char *text) {
  DAMC_ASSERT(p >= 0 && p < PHRASE_COUNT && (text || p == PHRASE_DIM_SIZE));
  e->phrases[p] = text ? intern(e->s->names, text) : NULL;
}

const char *engine_phrase(const Engine *e, EnginePhrase p, const char *name, const char *value,
                          StrBuf *buf) {
  sb_clear(buf);
  const char *s = e->phrases[p];
  if (!s) return NULL;
  while (*s) {
    if (name && !strncmp(s, "{name}", 6)) {
      sb_append(buf, name);
      s += 6;
    } else if (value && !strncmp(s, "{value}", 7)) {
      sb_append(buf, value);
      s += 7;
    } else {
      sb_putc(buf, *s++);
    }
  }
  return sb_str(buf);
}

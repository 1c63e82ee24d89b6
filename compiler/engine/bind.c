// Binding tensors and params to a derived model (see engine_bind_weight): the shapes bind
// the dims that have no declared size, and every tensor is checked against the model before
// anything is compiled.
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "front/convexity.h"
#include "support/common.h"
#include "support/suggest.h"

void engine_unknown_name(const Engine *e, EngineNameKind kind, const char *name, StrBuf *out) {
  static const char *const what[] = {"layer", "weight", "param"};
  const Model *m = e->m;
  int n = kind == NAME_LAYER ? m->nlayers : kind == NAME_WEIGHT ? m->nweights : m->nparams;
  Suggestion s = suggest_begin(name);
  for (int i = 0; i < n; i++)
    suggest_consider(&s, kind == NAME_LAYER    ? m->layers[i].name
                         : kind == NAME_WEIGHT ? m->weights[i].name
                                               : m->params[i].name);
  sb_printf(out, "model '%s' has no %s '%s'", m->name, what[kind], name);
  if (s.best) sb_printf(out, "; did you mean '%s'?", s.best);
  sb_printf(out, " (its %ss:", what[kind]);
  for (int i = 0; i < n; i++)
    sb_printf(out, " %s", kind == NAME_LAYER    ? m->layers[i].name
                          : kind == NAME_WEIGHT ? m->weights[i].name
                                                : m->params[i].name);
  sb_append(out, n ? ")" : " none)");
}

void engine_declared_shape(const Engine *e, int w, StrBuf *out) {
  const NetWeight *mw = &e->net->weights[w];
  sb_putc(out, '[');
  for (int i = 0; i < mw->rank; i++) {
    const NetDim *d = &e->net->dims[mw->dims[i]];
    if (i) sb_append(out, ", ");
    if (d->name && e->dims[mw->dims[i]] > 0)
      sb_printf(out, "%s=%lld", d->name, (long long)e->dims[mw->dims[i]]);
    else if (d->name) sb_append(out, d->name);
    else sb_printf(out, "%lld", (long long)d->size);
  }
  sb_putc(out, ']');
}

void engine_shape_text(int rank, const size_t *shape, StrBuf *out) {
  sb_putc(out, '[');
  for (int i = 0; i < rank; i++) sb_printf(out, "%s%zu", i ? ", " : "", shape[i]);
  sb_putc(out, ']');
}

void engine_dim_origin(const Engine *e, int d, size_t other, StrBuf *out) {
  if (!e->dim_origin[d] && e->dims[d] > 0 && e->net->dims[d].size <= 0) {
    sb_printf(out, " (%s = %lld from %s)", e->net->dims[d].name, (long long)e->dims[d],
              e->phrases[PHRASE_DIM_ORIGIN]);
    return;
  }
  int w = e->dim_origin[d] ? engine_weight_index(e, e->dim_origin[d]) : -1;
  if (w < 0) return;
  const EngineArray *t = &e->weights[w];
  StrBuf have = {0}, declared = {0};
  engine_shape_text(t->rank, t->shape, &have);
  engine_declared_shape(e, w, &declared);
  sb_printf(out, " (%s = %lld from weight '%s' in %s, shape %s, declared %s", e->net->dims[d].name,
            (long long)e->dims[d], e->dim_origin[d], e->weight_origin[w], sb_str(&have),
            sb_str(&declared));
  bool transposed = false;
  for (int i = 0; i < t->rank; i++)
    transposed |= e->net->weights[w].dims[i] != d && t->shape[i] == other;
  if (transposed) sb_printf(out, "; is '%s' transposed?", e->dim_origin[d]);
  sb_putc(out, ')');
  sb_free(&have);
  sb_free(&declared);
}

// The message for a weight whose shape contradicts the model.
static void shape_mismatch(const Engine *e, int w, const EngineArray *t, const char *origin,
                           StrBuf *err) {
  const NetWeight *mw = &e->net->weights[w];
  StrBuf want = {0}, have = {0};
  engine_declared_shape(e, w, &want);
  engine_shape_text(t->rank, t->shape, &have);
  sb_printf(err, "%s: tensor '%s' has shape %s, but the model declares '%s' as %s", origin,
            mw->name, sb_str(&have), mw->name, sb_str(&want));
  bool reversed = t->rank == 2 && mw->rank == 2;
  for (int i = 0; i < mw->rank && i < t->rank; i++) {
    int d = mw->dims[i];
    bool reported = i == 1 && mw->dims[0] == d;  // a square weight names its dim once
    if (e->dims[d] > 0 && (size_t)e->dims[d] != t->shape[i] && !reported)
      engine_dim_origin(e, d, t->shape[i], err);
    if (reversed) {
      int64_t other = e->dims[mw->dims[1 - i]];
      reversed = other > 0 && (size_t)other == t->shape[i];
    }
  }
  if (reversed) sb_printf(err, "; is '%s' transposed?", mw->name);
  sb_putc(err, '\n');
  sb_free(&want);
  sb_free(&have);
}

// The runtime's finiteness check, on a view of the caller's array.
bool engine_check_finite(const EngineArray *t, const char *label, StrBuf *err) {
  DamrtTensor view = engine_tensor_view(t);
  DamrtError derr = {0};
  if (damrt_tensor_check_finite(&view, label, &derr) == DAMRT_OK) return true;
  sb_printf(err, "%s\n", derr.message);
  return false;
}

// A self-synapse or `symmetric` weight must be symmetric up to the rounding of float32
// data (a symmetric coupling written by NumPy is usually exactly symmetric).
static bool check_symmetric(const Engine *e, int w, const EngineArray *t, const char *origin,
                            StrBuf *err) {
  const NetWeight *mw = &e->net->weights[w];
  size_t n = t->shape[0];
  double scale = 0, worst = 0;
  size_t wi = 0, wj = 0;
  for (size_t i = 0; i < n * n; i++) scale = fmax(scale, fabs(engine_get(t->dtype, t->data, i)));
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++) {
      double d = fabs(engine_get(t->dtype, t->data, i * n + j) -
                      engine_get(t->dtype, t->data, j * n + i));
      if (d > worst) {
        worst = d;
        wi = i;
        wj = j;
      }
    }
  if (worst <= 1e-6 * scale) return true;
  sb_printf(err, "%s: weight '%s' must be symmetric (it is a %s), but [%zu, %zu] = %.17g "
            "and [%zu, %zu] = %.17g\n", origin, mw->name,
            mw->self_synapse ? "self-synapse" : "'symmetric' weight", wi, wj,
            engine_get(t->dtype, t->data, wi * n + wj), wj, wi,
            engine_get(t->dtype, t->data, wj * n + wi));
  return false;
}

bool engine_check_weight_shape(const Engine *e, const char *name, int rank, const size_t *shape,
                               const char *origin, StrBuf *err) {
  DAMC_ASSERT(e->done >= STAGE_DERIVE);
  int w = engine_weight_index(e, name);
  if (w < 0) {
    sb_printf(err, "%s: tensor '%s' is not a weight: ", origin, name);
    engine_unknown_name(e, NAME_WEIGHT, name, err);
    sb_putc(err, '\n');
    return false;
  }
  const NetWeight *mw = &e->net->weights[w];
  for (int i = 0; i < rank; i++)
    if (shape[i] == 0) {
      StrBuf have = {0};
      engine_shape_text(rank, shape, &have);
      sb_printf(err, "%s: weight '%s' has shape %s: every size must be at least 1\n", origin,
                name, sb_str(&have));
      sb_free(&have);
      return false;
    }
  bool ok = rank == mw->rank;
  for (int i = 0; ok && i < mw->rank; i++) {
    int d = mw->dims[i];
    if (e->dims[d] > 0 && (size_t)e->dims[d] != shape[i]) ok = false;
    // A dim named twice (W[N, N]) must have one size, bound or not.
    for (int j = 0; ok && j < i; j++) ok = mw->dims[j] != d || shape[j] == shape[i];
  }
  if (!ok) {
    EngineArray t = {DAMRT_F64, rank, {0}, NULL};
    memcpy(t.shape, shape, (size_t)rank * sizeof *shape);
    shape_mismatch(e, w, &t, origin, err);
    return false;
  }
  return true;
}

bool engine_bind_weight(Engine *e, const char *name, const EngineArray *t, const char *origin,
                        StrBuf *err) {
  DAMC_ASSERT(e->done >= STAGE_DERIVE);
  engine_rewind(e, STAGE_DERIVE);  // a compile that failed binds again
  if (!engine_check_weight_shape(e, name, t->rank, t->shape, origin, err)) return false;
  int w = engine_weight_index(e, name);
  const NetWeight *mw = &e->net->weights[w];
  if (e->weights[w].data) {
    sb_printf(err, "%s: weight '%s' is given twice (first from %s)\n", origin, name,
              e->weight_origin[w]);
    return false;
  }
  char label[512];
  snprintf(label, sizeof label, "%s: tensor '%s'", origin, name);
  if (!engine_check_finite(t, label, err) || (mw->symmetric && !check_symmetric(e, w, t, origin, err)))
    return false;
  for (int i = 0; i < mw->rank; i++)
    if (e->dims[mw->dims[i]] < 0) {
      e->dims[mw->dims[i]] = (int64_t)t->shape[i];
      e->dim_origin[mw->dims[i]] = mw->name;
    }
  e->weights[w] = *t;
  e->weight_origin[w] = intern(e->s->names, origin);
  return true;
}

// Whether weight `w` may be bound again with another size of dim `d`: a runtime dim that it
// alone fixes (no other weight bound with it, no size given by engine_set_dim).
static bool resizable(const Engine *e, int w, int d) {
  if (!e->runtime[d] || e->dim_origin[d] != e->net->weights[w].name) return false;
  for (int v = 0; v < e->net->nweights; v++)
    for (int i = 0; v != w && e->weights[v].data && i < e->net->weights[v].rank; i++)
      if (e->net->weights[v].dims[i] == d) return false;
  return true;
}

bool engine_rebind_weight(Engine *e, const char *name, const EngineArray *t, const char *origin,
                          StrBuf *err) {
  DAMC_ASSERT(e->done >= STAGE_DERIVE);
  int w = engine_weight_index(e, name);
  // An unknown name is reported without stepping back (engine_bind_weight would).
  if (w < 0) return engine_check_weight_shape(e, name, t->rank, t->shape, origin, err);
  if (!e->weights[w].data) return engine_bind_weight(e, name, t, origin, err);
  const NetWeight *mw = &e->net->weights[w];
  const EngineArray *old = &e->weights[w];
  bool same = t->rank == old->rank;
  for (int i = 0; same && i < t->rank; i++)
    same = t->shape[i] == old->shape[i] || resizable(e, w, mw->dims[i]);
  // A dim named twice (W[K, K]) keeps one size.
  for (int i = 0; same && i < t->rank; i++)
    for (int j = 0; j < i; j++) same &= mw->dims[j] != mw->dims[i] || t->shape[j] == t->shape[i];
  if (!same) {
    StrBuf have = {0}, had = {0};
    engine_shape_text(t->rank, t->shape, &have);
    engine_shape_text(old->rank, old->shape, &had);
    sb_printf(err, "%s: tensor '%s' has shape %s, but '%s' is bound with shape %s; a weight is "
              "bound again with the same shape (a new shape needs a new model)\n", origin, name,
              sb_str(&have), name, sb_str(&had));
    sb_free(&have);
    sb_free(&had);
    return false;
  }
  char label[512];
  snprintf(label, sizeof label, "%s: tensor '%s'", origin, name);
  if (!engine_check_finite(t, label, err) || (mw->symmetric && !check_symmetric(e, w, t, origin, err)))
    return false;
  if (e->done >= STAGE_BIND && !engine_check_range(e, t, label, err)) return false;
  EngineArray keep = *old;
  int64_t *sizes = xmalloc(((size_t)e->net->ndims + 1) * sizeof *sizes);
  memcpy(sizes, e->dims, (size_t)e->net->ndims * sizeof *sizes);
  e->weights[w] = *t;
  for (int i = 0; i < mw->rank; i++) e->dims[mw->dims[i]] = (int64_t)t->shape[i];
  // tau, and any expression of params and sizes, may be written with a dim's size.
  bool ok = e->done < STAGE_BIND || (engine_evaluate_params(e, err) && engine_weight_to_kernels(e, w, err));
  if (!ok) {  // the old weight and sizes, bound again from the start
    e->weights[w] = keep;
    memcpy(e->dims, sizes, (size_t)e->net->ndims * sizeof *sizes);
    engine_rewind(e, STAGE_DERIVE);
  }
  free(sizes);
  if (ok) e->weight_origin[w] = intern(e->s->names, origin);
  return ok;
}

// The message of a call that sized a dim, starting with the call: "--dim K=0: ..." (after
// `named`, a phrase of the call: PHRASE_DIM or PHRASE_DIM_SIZE).
__attribute__((format(printf, 6, 7))) static void dim_error(const Engine *e, EnginePhrase named,
                                                            const char *name, int64_t size,
                                                            StrBuf *err, const char *fmt, ...) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)size);
  StrBuf call = {0};
  sb_printf(err, "%s: ", engine_phrase(e, named, name, value, &call));
  sb_free(&call);
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(err, fmt, ap);
  va_end(ap);
}

bool engine_set_dim(Engine *e, const char *name, int64_t size, StrBuf *err) {
  engine_rewind(e, STAGE_DERIVE);  // the plans were built for the old sizes
  const Network *net = e->net;
  for (int d = 0; d < net->ndims; d++) {
    if (!net->dims[d].name || strcmp(net->dims[d].name, name) != 0) continue;
    if (net->dims[d].size > 0) {
      dim_error(e, PHRASE_DIM, name, size, err, "the model declares its size (%lld)\n",
                (long long)net->dims[d].size);
      return false;
    }
    if (e->dims[d] > 0 && e->dims[d] != size) {
      dim_error(e, PHRASE_DIM_SIZE, name, size, err, "'%s' is already %lld (from %s)\n", name,
                (long long)e->dims[d],
                e->dim_origin[d] ? e->dim_origin[d] : e->phrases[PHRASE_DIM_ORIGIN]);
      return false;
    }
    if (size < 1 || size > 2147483647) {
      dim_error(e, PHRASE_DIM_SIZE, name, size, err,
                "a size is an integer from 1 to 2147483647\n");
      return false;
    }
    e->dims[d] = size;
    e->dim_origin[d] = NULL;  // a size given by the caller, not by a weight
    return true;
  }
  dim_error(e, PHRASE_DIM, name, size, err, "model '%s' has no dim '%s'", net->name, name);
  Suggestion s = suggest_begin(name);
  for (int d = 0; d < net->ndims; d++)
    if (net->dims[d].name) suggest_consider(&s, net->dims[d].name);
  if (s.best) sb_printf(err, "; did you mean '%s'?", s.best);
  sb_putc(err, '\n');
  return false;
}

const char *engine_dim_bound_by(const Engine *e, const char *name) {
  for (int d = 0; d < e->net->ndims; d++)
    if (e->net->dims[d].name && !strcmp(e->net->dims[d].name, name)) return e->dim_origin[d];
  return NULL;
}

bool engine_set_param(Engine *e, const char *name, double value, StrBuf *err) {
  const Network *net = e->net;
  // The message starts with the call: "--set beta: ".
  NumText v;
  StrBuf call = {0};
  engine_phrase(e, PHRASE_PARAM, name, number_text(value, &v), &call);
  bool ok = false;
  int i = 0;
  while (i < net->nparams && strcmp(net->params[i].name, name) != 0) i++;
  if (i == net->nparams) {
    sb_printf(err, "%s: ", sb_str(&call));
    engine_unknown_name(e, NAME_PARAM, name, err);
    sb_putc(err, '\n');
  } else if (!isfinite(value)) {
    sb_printf(err, "%s: the value must be a finite number\n", sb_str(&call));
  } else {
    double old = e->params[i];
    e->params[i] = value;
    e->param_set[i] = true;
    // After binding, what the params fix is evaluated again with the new value (params are
    // read by the kernels at every call; tau by the run).
    ok = e->done < STAGE_BIND || engine_evaluate_params(e, err);
    if (!ok) {  // refused: the model keeps the value it had, and tau with it
      e->params[i] = old;
      StrBuf again = {0};
      engine_evaluate_params(e, &again);
      sb_free(&again);
    }
  }
  sb_free(&call);
  return ok;
}

int engine_warn_param_rules(Engine *e, StrBuf *out) {
  const Model *m = e->m;
  // With every param at its default, parse has said all there is: no analysis at start-up.
  bool changed = false;
  for (int i = 0; i < e->net->nparams; i++)
    changed |= !e->net->params[i].has_default || e->params[i] != e->net->params[i].value;
  if (!changed) return 0;
  // A sink of its own: said on the echo stream (the command line), and the text for `out`.
  DiagSink *sink = diag_fork(e->s->diag, e->echo);
  int warned = 0;
  for (int a = 0; a < m->nlayers; a++) {
    ConvexityResult set, dflt;
    convexity_analyze(m, a, e->params, e->dims, sink, &set);
    convexity_analyze(m, a, NULL, e->dims, sink, &dflt);
    if (set.verdict == NONCONVEX_PROVEN && dflt.verdict != NONCONVEX_PROVEN) {
      diag_warning(sink, set.span, "with the params as set, the Lagrangian of layer '%s' is not "
                   "convex (%s): E need not decrease; '%s' tells more", m->layers[a].name,
                   set.reason, e->phrases[PHRASE_CHECK]);
      warned++;
    }
    for (int i = 0; i < set.nissues; i++) {
      bool known = false;
      for (int k = 0; k < dflt.nissues && !known; k++) known = !strcmp(dflt.issues[k].text, set.issues[i].text);
      if (known) continue;
      diag_warning(sink, set.issues[i].span, "%s", set.issues[i].text);
      warned++;
    }
  }
  if (out) sb_append(out, diag_text(sink));
  diag_free(sink);
  return warned;
}

// The integrated layers (or those with an input), for the way out of a refused array.
static void layers_with(const Network *net, bool inputs, StrBuf *out) {
  int n = 0;
  for (int a = 0; a < net->nlayers; a++)
    if (inputs ? net->layers[a].has_input : !net->layers[a].eliminated)
      sb_printf(out, "%s%s", n++ ? ", " : "", net->layers[a].name);
  if (!n) sb_append(out, "none");
}

bool engine_check_layer_arrays(const Engine *e, const EngineArrays *arrays, StrBuf *err) {
  const Network *net = e->net;
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    // The derivative kernels (with directions) take every layer's state as given: H at x.
    bool state = arrays->state && arrays->state[a].data && !arrays->direction;
    if (l->eliminated && (state || (arrays->clamp && arrays->clamp[a].data))) {
      sb_printf(err, "a %s is given for layer '%s', but '%s' is eliminated (tau = 0): its state "
                "is computed from the other layers' at every instant (x = u), so %s; %s the "
                "integrated layers only (", state ? "state" : "clamp", l->name, l->name,
                state ? "it takes none" : "it cannot be held fixed",
                state ? "give the states of" : "clamp");
      layers_with(net, false, err);
      sb_printf(err, "), or give '%s' a tau > 0 in the model to integrate it\n", l->name);
      return false;
    }
    if (!l->has_input && arrays->input && arrays->input[a].data) {
      sb_printf(err, "an input is given for layer '%s', but the model has no 'input %s;' "
                "statement: inputs are given only to layers declared with 'input' (", l->name,
                l->name);
      layers_with(net, true, err);
      sb_printf(err, "); add 'input %s;' to the model to give '%s' an external current\n",
                l->name, l->name);
      return false;
    }
  }
  return true;
}

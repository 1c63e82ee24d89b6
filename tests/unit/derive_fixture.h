// Test fixture for the symbolic layer: compiles a model from text, derives its network,
// and evaluates derived expressions with the reference interpreter on random data.
#ifndef DAMC_DERIVE_FIXTURE_H
#define DAMC_DERIVE_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "derive/network.h"
#include "front/front.h"
#include "sym/eval.h"

typedef struct {
  Session *s;
  Model *m;
  Network *net;
  int64_t dims[32];
  double params[32];
  double *states[16], *acts[16], *inputs[16], *weights[16], *dirs[16];
  EvalEnv env;
  uint64_t rng;
} Fixture;

static inline double fx_uniform(Fixture *f) {
  f->rng = f->rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(f->rng >> 11) / 9007199254740992.0;
}
static inline double fx_normal(Fixture *f) {
  double u = fx_uniform(f) + 1e-300, v = fx_uniform(f);
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static inline int64_t fx_numel(const Fixture *f, int rank, const int *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= f->dims[dims[i]];
  return n;
}

// Compiles `text`; unbound dims get `unbound_size`. Returns false (after printing the
// diagnostics) when the model does not compile.
static inline bool fx_open(Fixture *f, const char *text, int64_t unbound_size, uint64_t seed) {
  memset(f, 0, sizeof *f);
  f->rng = seed;
  f->s = session_new(NULL);
  f->m = front_compile(f->s, "test.dam", text, strlen(text));
  if (f->m) f->net = network_derive(f->s, f->m, NULL, 0);
  if (!f->net) {
    fprintf(stderr, "%s", diag_text(f->s->diag));
    return false;
  }
  const Model *m = f->m;
  for (int i = 0; i < m->ndims; i++) f->dims[i] = m->dims[i].value > 0 ? m->dims[i].value : unbound_size;
  for (int i = 0; i < m->nparams; i++) f->params[i] = m->params[i].value;
  for (int a = 0; a < m->nlayers; a++) {
    int64_t n = f->dims[m->layers[a].dim];
    f->states[a] = calloc((size_t)n, sizeof(double));
    f->acts[a] = calloc((size_t)n, sizeof(double));
    f->inputs[a] = calloc((size_t)n, sizeof(double));
    f->dirs[a] = calloc((size_t)n, sizeof(double));
  }
  for (int w = 0; w < m->nweights; w++) {
    const ModelWeight *mw = &m->weights[w];
    int64_t n = fx_numel(f, mw->rank, mw->dims);
    f->weights[w] = calloc((size_t)n, sizeof(double));
    double scale = 1 / sqrt((double)f->dims[mw->dims[mw->rank - 1]]);
    for (int64_t i = 0; i < n; i++) f->weights[w][i] = scale * fx_normal(f);
    if (mw->symmetric) {  // symmetrise
      int64_t r = f->dims[mw->dims[0]];
      for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < i; j++)
          f->weights[w][j * r + i] = f->weights[w][i * r + j];
    }
  }
  f->env = (EvalEnv){f->dims, f->params, (const double *const *)f->states,
                     (const double *const *)f->acts, (const double *const *)f->inputs,
                     (const double *const *)f->weights, (const double *const *)f->dirs};
  return true;
}

static inline void fx_close(Fixture *f) {
  for (int i = 0; i < 16; i++) {
    free(f->states[i]);
    free(f->acts[i]);
    free(f->inputs[i]);
    free(f->weights[i]);
    free(f->dirs[i]);
  }
  network_free(f->net);
  session_free(f->s);
}

static inline int64_t fx_layer_size(const Fixture *f, int a) { return f->dims[f->m->layers[a].dim]; }

// Evaluates `e` into `out` (numel elements) under the current bindings.
static inline void fx_eval(Fixture *f, ExprId e, double *out) {
  Evaluator *ev = eval_new(f->net->pool, &f->env);
  int64_t n;
  const double *v = eval_node(ev, e, &n);
  memcpy(out, v, (size_t)n * sizeof *out);
  eval_free(ev);
}

static inline double fx_eval_scalar(Fixture *f, ExprId e) {
  double v;
  fx_eval(f, e, &v);
  return v;
}

// The dense Hessian of layer `a` from its structure: H_ij = d_i [i = j] + sum_k u_ki v_kj.
static inline void fx_dense_hessian(Fixture *f, int a, double *h) {
  const StructJac *j = &f->net->layers[a].hessian;
  int64_t n = fx_layer_size(f, a);
  double *d = calloc((size_t)n, sizeof *d), *u = calloc((size_t)n, sizeof *u),
         *v = calloc((size_t)n, sizeof *v);
  memset(h, 0, (size_t)(n * n) * sizeof *h);
  if (j->diag) {
    fx_eval(f, expr_bcast(f->net->pool, j->diag, expr_get(f->net->pool, f->net->layers[a].state)->shape), d);
    for (int64_t i = 0; i < n; i++) h[i * n + i] = d[i];
  }
  for (int k = 0; k < j->nterms; k++) {
    ExprShape shape = expr_get(f->net->pool, f->net->layers[a].state)->shape;
    fx_eval(f, expr_bcast(f->net->pool, j->u[k], shape), u);
    fx_eval(f, expr_bcast(f->net->pool, j->v[k], shape), v);
    for (int64_t r = 0; r < n; r++)
      for (int64_t c = 0; c < n; c++) h[r * n + c] += u[r] * v[c];
  }
  free(d);
  free(u);
  free(v);
}

// The whole text of a file, NUL-terminated (free it), or NULL when it cannot be read whole.
static inline char *fx_read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = n >= 0 ? calloc((size_t)n + 1, 1) : NULL;
  if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
    free(text);
    text = NULL;
  }
  fclose(f);
  return text;
}

#endif

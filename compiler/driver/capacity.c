// damc capacity: the storage capacity of a model, measured (docs/cli.md, "damc capacity").
//
// For each K of a list, K patterns are stored in the weight named by --store (its rows, or
// the Hebbian matrix of a self-synapse), T cues are made by corrupting randomly chosen stored
// patterns, the network is run from the cues (one batch of T samples, with the options of
// damc run), and the final states are compared with the patterns the cues came from: per K,
// the median and quartiles of the overlap, the fraction retrieved exactly and the bit-error
// rate. A table on stdout (or JSON), a plot (plot.c, PLplot) and the arrays (--save).
//
// Compilation: once for the whole sweep. Patterns stored as rows [K, N] make K a kernel
// argument (engine_vary_dim), so the kernels compiled for the first K read each next K when
// they run; a Hebbian matrix [N, N] keeps its shape. Either way the weight of each next K
// replaces the last in place (engine_rebind_weight).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damrt_npy.h"
#include "damrt_npz.h"
#include "driver/driver.h"
#include "driver/native.h"
#include "driver/plot.h"
#include "front/ast.h"
#include "support/common.h"
#include "support/rng.h"

// ---- The command line's values ----

typedef enum { PATTERNS_BINARY, PATTERNS_GAUSSIAN, PATTERNS_FILE } PatternKind;
typedef enum { CORRUPT_FLIP, CORRUPT_MASK, CORRUPT_NOISE } CorruptKind;
static const char *const corrupt_names[] = {"flip", "mask", "noise"};

typedef struct {
  size_t *k;  // increasing
  size_t nk;
  PatternKind patterns;
  CorruptKind corrupt;
  double amount;
} Sweep;

enum { MAX_K = 10000000 };

static int compare_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

// "10,20,40", "10:100:10" (FROM:TO:STEP, TO included when reached) or both, comma-separated.
static int parse_k_list(const char *text, Sweep *s) {
  size_t cap = 0;
  const char *p = text;
  while (true) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[64];
    if (len == 0 || len >= sizeof item)
      return usage_error("capacity", "--K %s: expected numbers of patterns, as 10,20,40 or "
                         "FROM:TO:STEP", text);
    memcpy(item, p, len);
    item[len] = '\0';
    long long v[3] = {0, 0, 1};
    int n = 0;
    char *q = item;
    for (; n < 3; n++) {
      char *stop;
      if (*q < '0' || *q > '9') break;
      v[n] = strtoll(q, &stop, 10);
      if (v[n] < 1 || v[n] > MAX_K) break;
      q = stop;
      if (*q != ':') {
        n++;
        break;
      }
      q++;
    }
    if (*q || n == 0 || n == 2 || item[len - 1] == ':' || v[0] > v[1 % n])
      return usage_error("capacity", "--K %s: each item is a whole number from 1 to 10000000, "
                         "or FROM:TO:STEP with FROM <= TO", text);
    long long to = n == 3 ? v[1] : v[0], step = n == 3 ? v[2] : 1;
    for (long long k = v[0]; k <= to; k += step) {
      if (s->nk >= 100000)
        return usage_error("capacity", "--K %s: more than 100000 values of K", text);
      VEC_PUSH(s->k, s->nk, cap, (size_t)k);
    }
    if (!end) break;
    p = end + 1;
  }
  qsort(s->k, s->nk, sizeof *s->k, compare_size);
  for (size_t i = 1; i < s->nk; i++)
    if (s->k[i] == s->k[i - 1]) {
      char msg[200];
      snprintf(msg, sizeof msg, "--K %%s: K = %zu is given twice", s->k[i]);
      return usage_error("capacity", msg, text);
    }
  return 0;
}

static int parse_corrupt(const char *text, Sweep *s) {
  const char *colon = strchr(text, ':');
  size_t len = colon ? (size_t)(colon - text) : strlen(text);
  int kind = -1;
  for (int i = 0; i < (int)ARRAY_LEN(corrupt_names); i++)
    if (strlen(corrupt_names[i]) == len && !strncmp(text, corrupt_names[i], len)) kind = i;
  if (kind < 0 || !colon)
    return usage_error("capacity", "--corrupt %s: expected flip:P, mask:P (a fraction P from 0 "
                       "to 1) or noise:S (a standard deviation S >= 0)", text);
  s->corrupt = (CorruptKind)kind;
  double hi = kind == CORRUPT_NOISE ? 1e300 : 1;
  if (!parse_number(colon + 1, 0, hi, &s->amount))
    return usage_error("capacity", kind == CORRUPT_NOISE
                       ? "--corrupt %s: the standard deviation is a number >= 0"
                       : "--corrupt %s: the fraction is a number from 0 to 1", text);
  return 0;
}

static int parse_sweep(const Options *o, Sweep *s) {
  memset(s, 0, sizeof *s);
  if (!o->k_list) return usage_error("capacity", "--K LIST is required: the numbers of patterns "
                                     "to store, as 10,20,40 or 10:100:10%s", "");
  int status = parse_k_list(o->k_list, s);
  if (!status) status = parse_corrupt(o->corrupt ? o->corrupt : "flip:0.1", s);
  // The single-unit rule starts from sign(x) with sign(0) = +1: a masked unit would start at
  // +1, so mask:P would flip about P/2 of the units, all of them towards +1.
  if (!status && s->corrupt == CORRUPT_MASK && o->run.method == DAMC_ASYNC)
    status = usage_error("capacity", "--corrupt mask:P with --method async: the single-unit rule "
                         "starts every unit at sign(x), with sign(0) = +1, so masked units would "
                         "not stay unknown; use flip:P%s", "");
  const char *p = o->patterns ? o->patterns : "binary";
  size_t len = strlen(p);
  if (!strcmp(p, "binary")) s->patterns = PATTERNS_BINARY;
  else if (!strcmp(p, "gaussian")) s->patterns = PATTERNS_GAUSSIAN;
  else if (len > 4 && !strcmp(p + len - 4, ".npy")) s->patterns = PATTERNS_FILE;
  else if (!status)
    status = usage_error("capacity", "--patterns %s: expected binary, gaussian or a FILE.npy", p);
  return status;
}

// ---- Random numbers: splitmix64 (support/rng.h), one stream per purpose and K ----

static Rng rng_stream(uint64_t seed, uint64_t purpose, uint64_t k) {
  Rng r = {seed};
  r.s = rng_next(&r) ^ (purpose * 0xD1B54A32D192ED03ull);
  r.s = rng_next(&r) ^ (k * 0xABC98388FB8FAC03ull);
  return r;
}

// ---- What is stored, and where ----

typedef struct {
  int weight;       // the --store weight
  bool hebb;        // a self-synapse [N, N]: the Hebbian matrix of the patterns
  int layer;        // the cued layer
  int pattern_axis; // rows mode: the weight's axis of length N (the other is K)
  int k_dim;        // rows mode: the dim that K sizes
  size_t n;         // units of the cued layer
  bool binary;      // +-1 patterns: overlaps of signs; otherwise cosines
  DamrtTensor *file;  // --patterns FILE.npy, [rows, N] float64
} Store;

static const char *dim_name(const Engine *e, int d) {
  const char *name = engine_network(e)->dims[d].name;
  return name ? name : "(literal)";
}

// Where the patterns go (see docs/cli.md): 0, or the exit status with the message in `err`.
static int resolve_store(const Options *o, const Sweep *sw, Loaded *l, Store *st, StrBuf *err) {
  Engine *e = l->engine;
  const Model *m = engine_model(e);
  const Network *net = engine_network(e);
  const int64_t *dims = engine_dims(e);
  int w = st->weight = engine_weight_index(e, o->store);
  if (w < 0) {
    sb_printf(err, "--store %s: ", o->store);
    engine_unknown_name(e, NAME_WEIGHT, o->store, err);
    sb_putc(err, '\n');
    return EXIT_USAGE;
  }
  if (engine_weight_bound(e, w)) {
    sb_printf(err, "--store %s: weight '%s' is also given as a tensor; capacity stores the "
              "patterns in it: leave it out of --weights and --weight\n", o->store,
              o->store);
    return EXIT_USAGE;
  }
  const ModelWeight *mw = &m->weights[w];
  if (mw->rank != 2 || mw->synapse < 0) {
    sb_printf(err, "--store %s: weight '%s' is %s; the patterns are stored in the matrix of a "
              "synapse\n", o->store, o->store, mw->rank != 2 ? "a vector" : "not a synapse's");
    return EXIT_MODEL;
  }
  const ModelSynapse *syn = &m->synapses[mw->synapse];
  int layer = -1;
  if (o->layer) {
    layer = engine_layer_index(e, o->layer);
    if (layer < 0) {
      sb_printf(err, "--layer %s: ", o->layer);
      engine_unknown_name(e, NAME_LAYER, o->layer, err);
      sb_putc(err, '\n');
      return EXIT_USAGE;
    }
    if (layer != syn->a && layer != syn->b) {
      sb_printf(err, "--layer %s: weight '%s' couples layers '%s' and '%s', not '%s'\n", o->layer,
                o->store, net->layers[syn->a].name, net->layers[syn->b].name, o->layer);
      return EXIT_USAGE;
    }
  }
  if (syn->a == syn->b) {
    st->hebb = true;
    st->layer = syn->a;
  } else {
    // W is [n_a, n_b]: the cued layer's axis holds the patterns, the other is K.
    // The cued layer: --layer; else the side whose dim has a size when the other has none;
    // else the one integrated layer of the two (an eliminated layer has no state to cue).
    bool free0 = dims[mw->dims[0]] < 0, free1 = dims[mw->dims[1]] < 0;
    bool elim_a = net->layers[syn->a].eliminated, elim_b = net->layers[syn->b].eliminated;
    if (layer >= 0) st->layer = layer;
    else if (free0 != free1) st->layer = free0 ? syn->b : syn->a;
    else if (elim_a != elim_b) st->layer = elim_a ? syn->b : syn->a;
    else {
      sb_printf(err, "--store %s: which of layers '%s' and '%s' is cued is not clear (%s): give "
                "--layer NAME\n", o->store, net->layers[syn->a].name, net->layers[syn->b].name,
                free0 ? "neither dim of the weight has a size yet" : "both dims of the weight have sizes");
      return EXIT_USAGE;
    }
    st->pattern_axis = st->layer == syn->a ? 0 : 1;
    st->k_dim = mw->dims[1 - st->pattern_axis];
    if (st->k_dim == mw->dims[st->pattern_axis]) {
      sb_printf(err, "--store %s: both axes of weight '%s' are dim '%s', so K cannot vary "
                "alone\n", o->store, o->store, dim_name(e, st->k_dim));
      return EXIT_MODEL;
    }
    // Another weight sized by K (a bias per memory) would need values for every K, which
    // capacity does not make; say so before the sweep, not at its first K.
    for (int v = 0; v < net->nweights; v++)
      for (int i = 0; v != w && i < net->weights[v].rank; i++)
        if (net->weights[v].dims[i] == st->k_dim) {
          sb_printf(err, "--store %s: weight '%s' is sized by dim '%s' too, the number of "
                    "patterns capacity varies; capacity makes the patterns of '%s' alone, so "
                    "it cannot run this model (write it without '%s', or with '%s' not sized "
                    "by '%s')\n", o->store, net->weights[v].name, dim_name(e, st->k_dim),
                    o->store, net->weights[v].name, net->weights[v].name, dim_name(e, st->k_dim));
          return EXIT_MODEL;
        }
    if (dims[st->k_dim] > 0) {
      sb_printf(err, "--store %s: dim '%s' (the number of patterns of weight '%s') is fixed to "
                "%lld %s; capacity varies it: declare it without a size\n", o->store,
                dim_name(e, st->k_dim), o->store, (long long)dims[st->k_dim],
                net->dims[st->k_dim].size > 0 ? "by the model" : "by --dim or another weight");
      return EXIT_MODEL;
    }
  }
  if (net->layers[st->layer].eliminated) {
    sb_printf(err, "--store %s: the cued layer '%s' is eliminated (tau = 0): cue a layer that "
              "is integrated (--layer)\n", o->store, net->layers[st->layer].name);
    return EXIT_MODEL;
  }
  int ndim = net->layers[st->layer].dim;
  int64_t n = dims[ndim];
  st->binary = sw->patterns == PATTERNS_BINARY;
  if (sw->patterns == PATTERNS_FILE) {
    DamrtError derr = {0};
    st->file = damrt_npy_read(o->patterns, DAMRT_F64, &derr);
    if (!st->file) {
      sb_printf(err, "%s\n", derr.message);
      return EXIT_MODEL;
    }
    if (damrt_tensor_check_finite(st->file, o->patterns, &derr) != DAMRT_OK) {
      sb_printf(err, "%s\n", derr.message);
      return EXIT_MODEL;
    }
    const DamrtTensor *f = st->file;
    if (f->rank != 2) {
      sb_printf(err, "--patterns %s: expected one pattern per row, [rows, N]; it has rank %d\n",
                o->patterns, f->rank);
      return EXIT_MODEL;
    }
    if (n > 0 && (int64_t)f->shape[1] != n) {
      sb_printf(err, "--patterns %s: patterns of %zu units, but layer '%s' has %lld\n",
                o->patterns, f->shape[1], net->layers[st->layer].name, (long long)n);
      return EXIT_MODEL;
    }
    n = (int64_t)f->shape[1];
    if (sw->k[sw->nk - 1] > f->shape[0]) {
      sb_printf(err, "--K %s: K = %zu, but %s holds %zu patterns\n", o->k_list,
                sw->k[sw->nk - 1], o->patterns, f->shape[0]);
      return EXIT_MODEL;
    }
    // A pattern of zeros has no direction: its overlap (a cosine) would be 0 whatever the run.
    for (size_t r = 0; r < f->shape[0]; r++) {
      bool zero = true;
      for (size_t j = 0; j < f->shape[1] && zero; j++) zero = ((double *)f->data)[r * f->shape[1] + j] == 0;
      if (zero) {
        sb_printf(err, "--patterns %s: pattern %zu (row %zu) is all zeros: its overlap with any "
                  "state is undefined\n", o->patterns, r, r);
        return EXIT_MODEL;
      }
    }
    st->binary = true;
    for (size_t i = 0; i < f->count && st->binary; i++) st->binary = fabs(((double *)f->data)[i]) == 1;
  }
  if (n <= 0) {
    sb_printf(err, "layer '%s' has no size: give --dim %s=SIZE (or --patterns FILE.npy)\n",
              net->layers[st->layer].name, dim_name(e, ndim));
    return EXIT_USAGE;
  }
  st->n = (size_t)n;
  return 0;
}

// The K patterns [K, N] of one K.
static double *make_patterns(const Sweep *sw, const Store *st, uint64_t seed, size_t k) {
  size_t n = st->n;
  double *xi = xcalloc(k * n + 1, sizeof *xi);
  if (sw->patterns == PATTERNS_FILE) {
    memcpy(xi, st->file->data, k * n * sizeof *xi);
    return xi;
  }
  Rng r = rng_stream(seed, 1, k);
  for (size_t i = 0; i < k * n; i++)
    xi[i] = sw->patterns == PATTERNS_BINARY ? (rng_next(&r) >> 63 ? 1.0 : -1.0) : rng_normal(&r);
  return xi;
}

// The weight that stores `xi`: its rows (or columns), or T = (1/N) sum_mu xi_mu xi_mu' with a
// zero diagonal (symmetric to the last bit: T_ij and T_ji are the same sum).
static double *make_weight(const Store *st, const double *xi, size_t k, size_t shape[2]) {
  size_t n = st->n;
  if (st->hebb) {
    double *t = xcalloc(n * n + 1, sizeof *t);
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++) {
        double s = 0;
        for (size_t mu = 0; mu < k; mu++) s += xi[mu * n + i] * xi[mu * n + j];
        t[i * n + j] = t[j * n + i] = s / (double)n;
      }
    shape[0] = shape[1] = n;
    return t;
  }
  double *w = xcalloc(k * n + 1, sizeof *w);
  if (st->pattern_axis == 1) {
    memcpy(w, xi, k * n * sizeof *w);
    shape[0] = k, shape[1] = n;
  } else {
    for (size_t mu = 0; mu < k; mu++)
      for (size_t i = 0; i < n; i++) w[i * k + mu] = xi[mu * n + i];
    shape[0] = n, shape[1] = k;
  }
  return w;
}

// T cues [T, N]: pattern index[b], corrupted.
static double *make_cues(const Sweep *sw, const Store *st, const double *xi, size_t k,
                         size_t trials, uint64_t seed, int64_t *index) {
  size_t n = st->n;
  double *cues = xcalloc(trials * n + 1, sizeof *cues);
  size_t *perm = xcalloc(n + 1, sizeof *perm);
  size_t changed = (size_t)llround(sw->amount * (double)n);
  Rng r = rng_stream(seed, 2, k);
  for (size_t b = 0; b < trials; b++) {
    size_t mu = rng_below(&r, k);
    index[b] = (int64_t)mu;
    double *c = cues + b * n;
    memcpy(c, xi + mu * n, n * sizeof *c);
    if (sw->corrupt == CORRUPT_NOISE) {
      for (size_t i = 0; i < n; i++) c[i] += sw->amount * rng_normal(&r);
      continue;
    }
    // Exactly round(P N) distinct units: the first of a random permutation (Fisher-Yates).
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = 0; i < changed; i++) {
      size_t j = i + rng_below(&r, n - i), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
      c[perm[i]] = sw->corrupt == CORRUPT_FLIP ? -c[perm[i]] : 0.0;
    }
  }
  free(perm);
  return cues;
}

// ---- Measures ----

typedef struct {
  size_t k;
  double median, q25, q75, exact, ber, converged, steps;
  double compile_seconds, run_seconds;
  double *overlap;  // [trials]
  size_t *errors;   // [trials]: units whose sign differs from the pattern's
} KResult;

static double sign_of(double v) { return v > 0 ? 1 : v < 0 ? -1 : 0; }

// The quantile q of sorted `v` (n >= 1), interpolated linearly as NumPy's default.
static double quantile(const double *v, size_t n, double q) {
  double pos = q * (double)(n - 1);
  size_t i = (size_t)floor(pos);
  if (i + 1 >= n) return v[n - 1];
  return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// The overlaps and errors of the final states `x` [T, N] against the cued patterns.
static void measure(const Store *st, const double *xi, const int64_t *index, const double *x,
                    size_t trials, KResult *r) {
  size_t n = st->n, exact = 0, errors = 0;
  r->overlap = xcalloc(trials + 1, sizeof *r->overlap);
  r->errors = xcalloc(trials + 1, sizeof *r->errors);
  for (size_t b = 0; b < trials; b++) {
    const double *p = xi + (size_t)index[b] * n, *s = x + b * n;
    double dot = 0, pp = 0, ss = 0;
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
      wrong += sign_of(s[i]) != sign_of(p[i]);
      if (st->binary) dot += p[i] * sign_of(s[i]);
      else dot += p[i] * s[i], pp += p[i] * p[i], ss += s[i] * s[i];
    }
    double m = st->binary ? dot / (double)n : pp > 0 && ss > 0 ? dot / sqrt(pp * ss) : 0;
    r->overlap[b] = m;
    r->errors[b] = wrong;
    errors += wrong;
    exact += st->binary ? wrong == 0 : m >= 0.999;
  }
  double *sorted = xcalloc(trials + 1, sizeof *sorted);
  memcpy(sorted, r->overlap, trials * sizeof *sorted);
  qsort(sorted, trials, sizeof *sorted, compare_double);
  r->median = quantile(sorted, trials, 0.5);
  r->q25 = quantile(sorted, trials, 0.25);
  r->q75 = quantile(sorted, trials, 0.75);
  free(sorted);
  r->exact = (double)exact / (double)trials;
  r->ber = (double)errors / ((double)trials * (double)n);
}

// ---- Progress ----

typedef struct {
  size_t index, count, k;  // the K being run: its place in the sweep
  double started;
} Bar;

static void draw_bar(const Bar *b, double within, const char *what) {
  double done = ((double)b->index + within) / (double)b->count;
  int width = 30, fill = (int)(done * width + 0.5);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  char line[200];
  snprintf(line, sizeof line, "[%s] K = %zu (%zu/%zu) %s  %.1fs", bar, b->k, b->index + 1,
           b->count, what, clock_seconds() - b->started);
  fprintf(stderr, "\r%-78s", line);
  fflush(stderr);
}

static void on_progress(void *user, const EngineProgress *p) {
  char what[80];
  snprintf(what, sizeof what, "converged %zu/%zu, step %zu", p->converged, p->batch, p->step);
  draw_bar(user, p->batch ? 0.9 * (double)p->converged / (double)p->batch : 0, what);
}

// ---- Output ----

static const char *method_name(const Options *o) {
  switch (o->run.method) {
  case DAMC_EULER: return "euler";
  case DAMC_RK4: return "rk4";
  case DAMC_ITERATE: return "iterate";
  case DAMC_ASYNC: return "async";
  default: return "dopri5";
  }
}

static const char *patterns_name(const Sweep *sw, const Options *o) {
  return sw->patterns == PATTERNS_BINARY ? "binary" : sw->patterns == PATTERNS_GAUSSIAN ? "gaussian" : o->patterns;
}

static void print_json(const Options *o, const Sweep *sw, const Store *st, const Loaded *l,
                       const KResult *res, size_t trials, int compiles, StrBuf *out) {
  const Network *net = engine_network(l->engine);
  sb_append(out, "{\n  \"model\": ");
  sb_json_string(out, o->model);
  sb_append(out, ",\n  \"store\": ");
  sb_json_string(out, o->store);
  sb_printf(out, ",\n  \"rule\": \"%s\",\n  \"layer\": ", st->hebb ? "hebb" : "rows");
  sb_json_string(out, net->layers[st->layer].name);
  sb_printf(out, ",\n  \"N\": %zu,\n  \"patterns\": ", st->n);
  sb_json_string(out, patterns_name(sw, o));
  sb_printf(out, ",\n  \"binary\": %s,\n  \"corrupt\": {\"kind\": \"%s\", \"amount\": ",
            st->binary ? "true" : "false", corrupt_names[sw->corrupt]);
  sb_json_number(out, sw->amount);
  sb_printf(out, "},\n  \"trials\": %zu,\n  \"method\": \"%s\",\n  \"seed\": %llu,\n"
            "  \"precision\": \"%s\",\n  \"compiles\": %d,\n  \"results\": [", trials,
            method_name(o), (unsigned long long)o->run.seed, o->precision == DAMC_F32 ? "f32" : "f64",
            compiles);
  for (size_t i = 0; i < sw->nk; i++) {
    const KResult *r = &res[i];
    sb_printf(out, "%s\n    {\"K\": %zu, \"alpha\": ", i ? "," : "", r->k);
    sb_json_number(out, (double)r->k / (double)st->n);
    const char *names[] = {"overlap_median", "overlap_q25", "overlap_q75", "exact_fraction",
                           "bit_error_rate", "converged_fraction", "steps_mean",
                           "compile_seconds", "run_seconds"};
    double values[] = {r->median, r->q25, r->q75, r->exact, r->ber, r->converged, r->steps,
                       r->compile_seconds, r->run_seconds};
    for (size_t j = 0; j < ARRAY_LEN(names); j++) {
      sb_printf(out, ", \"%s\": ", names[j]);
      sb_json_number(out, values[j]);
    }
    sb_append(out, ",\n     \"overlaps\": [");
    for (size_t b = 0; b < trials; b++) {
      if (b) sb_append(out, ", ");
      sb_json_number(out, r->overlap[b]);
    }
    sb_append(out, "],\n     \"bit_errors\": [");
    for (size_t b = 0; b < trials; b++) sb_printf(out, "%s%zu", b ? ", " : "", r->errors[b]);
    sb_append(out, "]}");
  }
  sb_append(out, "\n  ]\n}\n");
}

static void print_table(const Options *o, const Sweep *sw, const Store *st, const Loaded *l,
                        const KResult *res, size_t trials, int compiles, StrBuf *out) {
  const Network *net = engine_network(l->engine);
  sb_printf(out, "# %s: '%s' stores K %s patterns of N = %zu (%s), layer '%s' cued with %s:%g, "
            "%zu trials per K, --method %s, %d compile%s\n", o->model, o->store,
            patterns_name(sw, o), st->n, st->hebb ? "Hebbian matrix" : "one per row",
            net->layers[st->layer].name, corrupt_names[sw->corrupt], sw->amount, trials,
            method_name(o), compiles, compiles == 1 ? "" : "s");
  sb_printf(out, "%8s %9s %9s %9s %9s %7s %9s %6s %8s %8s\n", "K", "alpha", "overlap", "q25",
            "q75", "exact", "bit-err", "conv", "compile", "run");
  for (size_t i = 0; i < sw->nk; i++) {
    const KResult *r = &res[i];
    sb_printf(out, "%8zu %9.5f %9.5f %9.5f %9.5f %7.3f %9.6f %6.3f %7.3fs %7.3fs\n", r->k,
              (double)r->k / (double)st->n, r->median, r->q25, r->q75, r->exact, r->ber,
              r->converged, r->compile_seconds, r->run_seconds);
  }
}

static bool draw_plot(const char *path, const Sweep *sw, const Store *st, const KResult *res,
                      size_t trials, StrBuf *err) {
  size_t n = sw->nk;
  double *x = xcalloc(n, sizeof *x), *m = xcalloc(n, sizeof *m), *lo = xcalloc(n, sizeof *lo),
         *hi = xcalloc(n, sizeof *hi), *ex = xcalloc(n, sizeof *ex), *ok = xcalloc(n, sizeof *ok);
  for (size_t i = 0; i < n; i++) {
    x[i] = (double)res[i].k / (double)st->n;
    m[i] = res[i].median, lo[i] = res[i].q25, hi[i] = res[i].q75;
    ex[i] = res[i].exact, ok[i] = 1 - res[i].ber;
  }
  PlotSeries series[] = {
      {"median overlap (bars: 25-75%)", m, lo, hi, PLOT_BLUE, 1, "#(840)"},
      {st->binary ? "retrieved exactly" : "overlap >= 0.999", ex, NULL, NULL, PLOT_RED, 2, "#(841)"},
      {"bits right (1 - bit-error rate)", ok, NULL, NULL, PLOT_GREEN, 3, "#(842)"},
  };
  char title[200];
  snprintf(title, sizeof title, "Retrieval against load: N = %zu, %s:%g, %zu trials per K", st->n,
           corrupt_names[sw->corrupt], sw->amount, trials);
  PlotSpec spec = {title, "load #ga = K/N", "", x, n, series, (int)ARRAY_LEN(series),
                   fmin(0, lo[0]), 1, 900, 600};
  for (size_t i = 0; i < n; i++) spec.ymin = fmin(spec.ymin, fmin(lo[i], m[i]));
  bool done = plot_png(path, &spec, err);
  free(x), free(m), free(lo), free(hi), free(ex), free(ok);
  return done;
}

// --save: per K, "patterns_K<k>" [K, N], "index_K<k>" [T] (int64), "cues_K<k>" and
// "final_K<k>" [T, N], and "overlap_K<k>" [T].
typedef struct {
  DamrtTensor *tensors;
  DamrtNamedTensor *items;
  char (*keys)[48];
  size_t n, cap;
} Saved;

static void save_add(Saved *s, const char *what, size_t k, double *data, int rank, size_t d0,
                     size_t d1, DamrtStoreAs as) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->tensors = xrealloc(s->tensors, s->cap * sizeof *s->tensors);
    s->items = xrealloc(s->items, s->cap * sizeof *s->items);
    s->keys = xrealloc(s->keys, s->cap * sizeof *s->keys);
  }
  snprintf(s->keys[s->n], sizeof s->keys[s->n], "%s_K%zu", what, k);
  s->tensors[s->n] = (DamrtTensor){DAMRT_F64, rank, {d0, d1, 1, 1}, d0 * (rank == 2 ? d1 : 1), data};
  s->items[s->n].as = as;
  s->n++;
}

// ---- The command ----

int cmd_capacity(int argc, char **argv) {
  Options o;
  Loaded l;
  memset(&l, 0, sizeof l);
  Sweep sw = {0};
  Store st = {0};
  int status = parse_options(&o, argc, argv);
  if (!status) status = parse_sweep(&o, &sw);
  if (!status) status = check_paths(&o);
  if (!status) status = load_model(&o, &l, STAGE_DERIVE);
  StrBuf err = {0};
  if (!status && (status = resolve_store(&o, &sw, &l, &st, &err)) != 0) {
    print_errors("capacity", sb_str(&err));
    if (status == EXIT_USAGE) fprintf(stderr, "try 'damc capacity --help'\n");
  }
  EngineRunOptions ro;
  if (!status && !damc_engine_run_options(l.damc, &o.run, &ro, &err)) {
    print_errors("capacity", sb_str(&err));
    status = EXIT_USAGE;
  }
  if (status) {
    sb_free(&err);
    free(sw.k);
    damrt_tensor_free(st.file);
    return finish(&o, &l, status);
  }
  Engine *e = l.engine;
  const Network *net = engine_network(e);
  const char *store = o.store;
  size_t trials = o.trials, n = st.n;
  bool bar = o.progress > 0 || (o.progress == 0 && !o.quiet && isatty(STDERR_FILENO));
  Bar progress = {0, sw.nk, 0, clock_seconds()};
  if (bar) ro.progress = on_progress, ro.progress_user = &progress;
  KResult *res = xcalloc(sw.nk + 1, sizeof *res);
  Saved saved = {0};
  double *weight = NULL;  // what the engine reads now
  EngineArray *states = xcalloc((size_t)net->nlayers + 1, sizeof *states);
  char xname[80];
  snprintf(xname, sizeof xname, "x_%s", net->layers[st.layer].name);
  int compiles = 0;
  // Rows [K, N]: K is a kernel argument, so the first compile serves every K of the sweep.
  if (!st.hebb) engine_vary_dim(e, st.k_dim);
  for (size_t i = 0; i < sw.nk && !status; i++) {
    size_t k = sw.k[i];
    progress.index = i, progress.k = k;
    if (bar) draw_bar(&progress, 0, "compiling");
    double *xi = make_patterns(&sw, &st, o.run.seed, k);
    size_t shape[2];
    double *w = make_weight(&st, xi, k, shape);
    EngineArray wa = {DAMRT_F64, 2, {shape[0], shape[1]}, w};
    double t0 = clock_seconds();
    bool ok;
    if (compiles > 0) {
      ok = engine_rebind_weight(e, store, &wa, "capacity", &err);
    } else {
      ok = engine_bind_weight(e, store, &wa, "capacity", &err) &&
           engine_compile(e, STAGE_JIT, &err);
      if (ok && compiles++ == 0 && !o.quiet) engine_warn_param_rules(e, NULL);
    }
    if (ok || compiles == 0) {  // a failed rebind leaves the engine on the old one
      free(weight);
      weight = w;
    } else {
      free(w);
    }
    res[i].k = k;
    res[i].compile_seconds = clock_seconds() - t0;
    int64_t *index = xcalloc(trials + 1, sizeof *index);
    double *cues = make_cues(&sw, &st, xi, k, trials, o.run.seed, index);
    EngineResults out = {0};
    if (ok) {
      states[st.layer] = (EngineArray){DAMRT_F64, 2, {trials, n}, cues};
      EngineArrays arrays = {states, NULL, NULL, NULL};
      ro.seed = o.run.seed + k;  // async's order and the noise differ from one K to the next
      double t1 = clock_seconds();
      ok = engine_run(e, &arrays, &ro, &out, &err);
      res[i].run_seconds = clock_seconds() - t1;
    }
    const DamrtTensor *x = NULL, *steps = NULL, *conv = NULL;
    for (size_t j = 0; ok && j < out.count; j++) {
      if (!strcmp(out.items[j].name, xname)) x = out.items[j].tensor;
      if (!strcmp(out.items[j].name, "steps")) steps = out.items[j].tensor;
      if (!strcmp(out.items[j].name, "converged")) conv = out.items[j].tensor;
    }
    if (ok && (!x || !steps || !conv || x->count != trials * n)) {
      sb_printf(&err, "internal: the run gave no %s [%zu, %zu]\n", xname, trials, n);
      ok = false;
    }
    if (ok) {
      measure(&st, xi, index, x->data, trials, &res[i]);
      double c = 0, s = 0;
      for (size_t b = 0; b < trials; b++) {
        c += ((const double *)conv->data)[b] != 0;
        s += ((const double *)steps->data)[b];
      }
      res[i].converged = c / (double)trials;
      res[i].steps = s / (double)trials;
      if (c < (double)trials && !o.quiet) {
        if (bar) fprintf(stderr, "\n");
        // iterate's samples in a cycle of period 2 would not converge with more steps.
        size_t bad = trials - (size_t)c, cycled = out.cycled;
        if (cycled)
          fprintf(stderr, "damc capacity: warning: K = %zu: %zu of %zu runs did not converge: the "
                  "iteration alternates between two states; eliminate the hidden layer (tau = 0 "
                  "in the model) or use --method dopri5; their last states are measured\n", k,
                  cycled, trials);
        if (bad > cycled)
          fprintf(stderr, "damc capacity: warning: K = %zu: %zu of %zu runs did not converge in "
                  "%zu steps; their last states are measured\n", k, bad - cycled, trials,
                  ro.max_steps);
      }
      if (o.save) {
        double *fin = xcalloc(trials * n + 1, sizeof *fin), *idx = xcalloc(trials + 1, sizeof *idx);
        double *ov = xcalloc(trials + 1, sizeof *ov);
        memcpy(fin, x->data, trials * n * sizeof *fin);
        memcpy(ov, res[i].overlap, trials * sizeof *ov);
        for (size_t b = 0; b < trials; b++) idx[b] = (double)index[b];
        save_add(&saved, "patterns", k, xi, 2, k, n, DAMRT_STORE_TENSOR);
        save_add(&saved, "index", k, idx, 1, trials, 1, DAMRT_STORE_INT64);
        save_add(&saved, "cues", k, cues, 2, trials, n, DAMRT_STORE_TENSOR);
        save_add(&saved, "final", k, fin, 2, trials, n, DAMRT_STORE_TENSOR);
        save_add(&saved, "overlap", k, ov, 1, trials, 1, DAMRT_STORE_TENSOR);
        xi = cues = NULL;  // kept for the file
      }
    } else {
      if (bar) fprintf(stderr, "\n");
      print_errors("capacity", sb_str(&err));
      fprintf(stderr, "damc capacity: error: the sweep stopped at K = %zu%s\n", k,
              o.save || o.plot ? "; nothing was written" : "");
      status = EXIT_MODEL;
    }
    engine_results_free(&out);
    free(index);
    free(cues);
    free(xi);
  }
  if (bar && !status) {
    progress.index = sw.nk - 1;
    draw_bar(&progress, 1, "done");
    fprintf(stderr, "\n");
  }
  sb_clear(&err);
  // The plot first: a plot that fails leaves no --save file behind either.
  if (!status && o.plot && !draw_plot(o.plot, &sw, &st, res, trials, &err)) status = EXIT_MODEL;
  if (!status && o.save) {
    for (size_t j = 0; j < saved.n; j++)
      saved.items[j] = (DamrtNamedTensor){saved.keys[j], &saved.tensors[j], saved.items[j].as};
    DamrtError derr = {0};
    if (damrt_npz_write(o.save, saved.items, saved.n, DAMRT_NPZ_STORED, &derr) != DAMRT_OK) {
      sb_printf(&err, "%s\n", derr.message);
      status = EXIT_MODEL;
    }
  }
  if (!status) {
    StrBuf text = {0};
    if (o.json) print_json(&o, &sw, &st, &l, res, trials, compiles, &text);
    else print_table(&o, &sw, &st, &l, res, trials, compiles, &text);
    if (!output_write(NULL, text.data, text.len, &err)) status = EXIT_MODEL;
    sb_free(&text);
  }
  if (status && err.len) print_errors("capacity", sb_str(&err));
  for (size_t i = 0; i < sw.nk; i++) free(res[i].overlap), free(res[i].errors);
  for (size_t j = 0; j < saved.n; j++) free(saved.tensors[j].data);
  free(saved.tensors), free(saved.items), free(saved.keys);
  free(res);
  free(states);
  sb_free(&err);
  free(sw.k);
  damrt_tensor_free(st.file);
  // The engine reads the stored weight until it is freed: the model first.
  status = finish(&o, &l, status);
  free(weight);
  return status;
}

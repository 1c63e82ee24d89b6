// Fashion-MNIST retrieval with damc's C API: store K training images as the memories of
// memory.dam (Model B with the memory layer eliminated and a norm-correcting bias), cue it
// with half-masked images (the upper half visible and clamped) and with noisy ones, retrieve
// with one update, and print the figures that say whether it worked, beside the
// nearest-neighbour baseline. Writes OUTDIR/grid.png (cue / retrieved / original),
// OUTDIR/energy.csv (the energy trace of a continuous-time run from noisy cues) and
// OUTDIR/figures.txt (every figure as NAME VALUE, read by tests/e2e/fashion_mnist_demo.py).
//
//   fashion_mnist_demo MODEL.dam OUTDIR [--data DIR] [--K 1000] [--queries 500]
//                      [--beta 2] [--noise 0.5]
//
// The images come from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist,
// IDX files compressed with gzip, read with zlib's gzread). docs/tutorial.md explains the
// model and the choice of beta.
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "damc.h"

enum { SIDE = 28, NPIX = SIDE * SIDE, HALF = NPIX / 2 };

static const char *data_dir = "/usr/share/datasets/fashion-mnist";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "fashion_mnist_demo: out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

// Reads the first `want` items of an IDX file (gzip-compressed): images (3 dims, 28 x 28)
// scaled to [0, 1] into `pixels`, or labels (1 dim) into `labels`. 0 on failure, with a
// message that says how to install the data set when the file is missing.
static int read_idx(const char *name, size_t want, double *pixels, unsigned char *labels) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", data_dir, name);
  gzFile f = gzopen(path, "rb");
  if (!f) {
    fprintf(stderr,
            "fashion_mnist_demo: cannot open %s: %s\n"
            "  The images come from Debian's dataset-fashion-mnist; install it with\n"
            "    apt-get install dataset-fashion-mnist\n"
            "  (scripts/deps.sh, run by `make demo` and `make test`, installs it).\n",
            path, strerror(errno ? errno : ENOENT));
    return 0;
  }
  unsigned char head[16];
  int dims = pixels ? 3 : 1;
  int want_head = 4 + 4 * dims;
  int ok = gzread(f, head, (unsigned)want_head) == want_head && head[0] == 0 && head[1] == 0 &&
           head[2] == 0x08 && head[3] == dims;
  size_t count = 0;
  if (ok) {
    count = (size_t)head[4] << 24 | (size_t)head[5] << 16 | (size_t)head[6] << 8 | head[7];
    if (pixels)
      for (int d = 1; d < 3; d++)
        ok &= head[4 + 4 * d] == 0 && head[5 + 4 * d] == 0 && head[6 + 4 * d] == 0 &&
              head[7 + 4 * d] == SIDE;
  }
  if (!ok || count < want) {
    fprintf(stderr, "fashion_mnist_demo: %s is not an IDX file of %s with at least %zu items\n",
            path, pixels ? "28x28 images" : "labels", want);
    gzclose(f);
    return 0;
  }
  size_t item = pixels ? NPIX : 1;
  unsigned char *raw = xmalloc(want * item);
  size_t got = 0;
  while (got < want * item) {
    size_t chunk = want * item - got > (1u << 30) ? (1u << 30) : want * item - got;
    int n = gzread(f, raw + got, (unsigned)chunk);
    if (n <= 0) break;
    got += (size_t)n;
  }
  gzclose(f);
  if (got != want * item) {
    fprintf(stderr, "fashion_mnist_demo: %s ends early\n", path);
    free(raw);
    return 0;
  }
  for (size_t i = 0; i < want * item; i++) {
    if (pixels) pixels[i] = raw[i] / 255.0;
    else labels[i] = raw[i];
  }
  free(raw);
  return 1;
}

// For each of the q rows of V, the index of the nearest of the k rows of X in squared
// distance over the pixels [off, off + cnt), with xn2[j] = |X_j| ^ 2 over those pixels.
static void nearest(const double *V, size_t q, const double *X, const double *xn2, size_t k,
                    size_t off, size_t cnt, size_t *idx) {
  double *dot = xmalloc(q * k * sizeof *dot);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)q, (int)k, (int)cnt, 1.0, V + off,
              NPIX, X + off, NPIX, 0.0, dot, (int)k);
  for (size_t i = 0; i < q; i++) {
    size_t best = 0;
    double bd = INFINITY;
    for (size_t j = 0; j < k; j++) {
      double d = xn2[j] - 2 * dot[i * k + j];  // |v - x|^2 - |v|^2
      if (d < bd) bd = d, best = j;
    }
    idx[i] = best;
  }
  free(dot);
}

static void sq_norms(const double *X, size_t k, size_t off, size_t cnt, double *out) {
  for (size_t j = 0; j < k; j++) {
    double s = 0;
    for (size_t i = off; i < off + cnt; i++) s += X[j * NPIX + i] * X[j * NPIX + i];
    out[j] = s;
  }
}

// Mean squared error over the pixels [off, off + cnt) of q rows.
static double mse(const double *A, const double *B, size_t q, size_t off, size_t cnt) {
  double s = 0;
  for (size_t i = 0; i < q; i++)
    for (size_t p = off; p < off + cnt; p++) {
      double d = A[i * NPIX + p] - B[i * NPIX + p];
      s += d * d;
    }
  return s / (double)(q * cnt);
}

static DamcModel *load_model(const char *path, const double *xi, size_t k, const double *bias,
                             double beta) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_file(path, &err);
  DamcArray memories = {2, {k, NPIX}, xi, DAMC_F64};
  DamcArray b = {1, {k}, bias, DAMC_F64};
  if (m && damc_bind_weight(m, "Xi", &memories, "training images", &err) &&
      damc_bind_weight(m, "b", &b, "bias", &err) && damc_set_param(m, "beta", beta, &err) &&
      damc_compile(m, DAMC_F64, &err))
    return m;
  fprintf(stderr, "%s", err.message ? err.message : "fashion_mnist_demo: model failed\n");
  damc_error_clear(&err);
  damc_model_free(m);
  exit(1);
}

// Retrieves from the q cues; `clamp` ([N], or NULL) holds the visible pixels fixed. Copies
// the retrieved states into `out` (q x N).
static void retrieve(DamcModel *m, const double *cues, size_t q, const double *clamp,
                     DamcMethod method, size_t max_steps, FILE *trace, double *out,
                     double *energy, double *steps) {
  DamcError err = {0};
  DamcArray states[2] = {{2, {q, NPIX}, cues, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcArray clamps[2] = {{1, {NPIX}, clamp, DAMC_F64}, {0, {0}, NULL, 0}};
  DamcBatch batch = {states, NULL, clamp ? clamps : NULL};
  DamcRunOptions options = {.method = method, .max_steps = max_steps, .trace = trace};
  DamcResults *r = damc_run(m, &batch, &options, &err);
  if (!r) {
    fprintf(stderr, "%s", err.message ? err.message : "fashion_mnist_demo: run failed\n");
    exit(1);
  }
  size_t count;
  const double *x = damc_result(r, "x_v", &count);
  if (count != q * NPIX) {
    fprintf(stderr, "fashion_mnist_demo: x_v has %zu values, not %zu\n", count, q * NPIX);
    exit(1);
  }
  memcpy(out, x, count * sizeof *out);
  if (energy) memcpy(energy, damc_result(r, "E", NULL), q * sizeof *energy);
  if (steps) memcpy(steps, damc_result(r, "steps", NULL), q * sizeof *steps);
  damc_results_free(r);
}

// The PNG grid: blocks of three rows (cue, retrieved, original), `cols` images a row,
// each pixel drawn as SCALE x SCALE, pixels in [0, 1] as grey levels (clipped). The hidden
// half of a masked cue is drawn in dark blue, so that it shows what the network was not given.
enum { SCALE = 2, GAP = 3 };
typedef struct {
  size_t width, height;
  unsigned char *rgb;
} Canvas;

static void draw(Canvas *c, size_t row, size_t col, const double *img, int hide_lower) {
  size_t x0 = GAP + col * (SIDE * SCALE + GAP), y0 = GAP + row * (SIDE * SCALE + GAP);
  for (size_t p = 0; p < NPIX; p++) {
    double v = img[p] < 0 ? 0 : img[p] > 1 ? 1 : img[p];
    unsigned char grey = (unsigned char)lround(255 * v);
    unsigned char rgb[3] = {grey, grey, grey};
    if (hide_lower && p >= HALF) rgb[0] = 25, rgb[1] = 35, rgb[2] = 90;
    for (size_t dy = 0; dy < SCALE; dy++)
      for (size_t dx = 0; dx < SCALE; dx++) {
        size_t y = y0 + (p / SIDE) * SCALE + dy, x = x0 + (p % SIDE) * SCALE + dx;
        memcpy(c->rgb + 3 * (y * c->width + x), rgb, 3);
      }
  }
}

static int write_png(const char *path, const Canvas *c) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "fashion_mnist_demo: cannot write %s: %s\n", path, strerror(errno));
    return 0;
  }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    fprintf(stderr, "fashion_mnist_demo: libpng failed to write %s\n", path);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 0;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)c->width, (png_uint_32)c->height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 9);
  png_write_info(png, info);
  for (size_t y = 0; y < c->height; y++) png_write_row(png, c->rgb + 3 * y * c->width);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return fclose(f) == 0;
}

// Gaussian noise: splitmix64 and Box-Muller, so the demo is the same on every machine.
static uint64_t rng_state = 0x5eed;
static double uniform(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double gaussian(void) {
  return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

static FILE *figures_file;
static void figure(const char *name, double value) { fprintf(figures_file, "%s %.6g\n", name, value); }

static size_t parse_size(const char *s, const char *opt) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < 1) {
    fprintf(stderr, "fashion_mnist_demo: %s takes a positive integer, not '%s'\n", opt, s);
    exit(2);
  }
  return (size_t)v;
}
static double parse_real(const char *s, const char *opt) {
  char *end;
  double v = strtod(s, &end);
  if (*end || !(v > 0) || !isfinite(v)) {
    fprintf(stderr, "fashion_mnist_demo: %s takes a positive number, not '%s'\n", opt, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  size_t k = 1000, q = 500;
  double beta = 2.0, noise = 0.5;
  const char *model_path = NULL, *out_dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--data") && i + 1 < argc) data_dir = argv[++i];
    else if (!strcmp(a, "--K") && i + 1 < argc) k = parse_size(argv[++i], a);
    else if (!strcmp(a, "--queries") && i + 1 < argc) q = parse_size(argv[++i], a);
    else if (!strcmp(a, "--beta") && i + 1 < argc) beta = parse_real(argv[++i], a);
    else if (!strcmp(a, "--noise") && i + 1 < argc) noise = parse_real(argv[++i], a);
    else if (a[0] != '-' && !model_path) model_path = a;
    else if (a[0] != '-' && !out_dir) out_dir = a;
    else {
      fprintf(stderr, "usage: %s MODEL.dam OUTDIR [--data DIR] [--K 1000] [--queries 500] "
                      "[--beta 2] [--noise 0.5]\n", argv[0]);
      return 2;
    }
  }
  if (!out_dir) {
    fprintf(stderr, "usage: %s MODEL.dam OUTDIR [--data DIR] [--K 1000] [--queries 500] "
                    "[--beta 2] [--noise 0.5]\n", argv[0]);
    return 2;
  }
  if (q > k || q > 10000 || k > 60000) {
    fprintf(stderr, "fashion_mnist_demo: give --queries <= --K <= 60000 and --queries <= 10000 "
                    "(stored images cue the recall test; the training set has 60000 images, the "
                    "test set 10000)\n");
    return 2;
  }
  double t0 = now();

  // The data: the first K training images are the memories, the first Q test images the
  // unseen cues.
  double *xi = xmalloc(k * NPIX * sizeof *xi), *test = xmalloc(q * NPIX * sizeof *test);
  unsigned char *label = xmalloc(k), *test_label = xmalloc(q);
  if (!read_idx("train-images-idx3-ubyte.gz", k, xi, NULL) ||
      !read_idx("train-labels-idx1-ubyte.gz", k, NULL, label) ||
      !read_idx("t10k-images-idx3-ubyte.gz", q, test, NULL) ||
      !read_idx("t10k-labels-idx1-ubyte.gz", q, NULL, test_label))
    return 1;
  char path[4096];
  snprintf(path, sizeof path, "%s/figures.txt", out_dir);
  figures_file = fopen(path, "w");
  if (!figures_file) {
    fprintf(stderr, "fashion_mnist_demo: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  double t_data = now();
  printf("Fashion-MNIST (%s): %zu training images stored as the rows of Xi[%zu, %d], "
         "%zu test images as unseen cues; read in %.2f s\n", data_dir, k, k, NPIX, q, t_data - t0);

  // Two biases, so two models: -|xi_mu|^2/2 over the visible (upper) half for masked cues,
  // whose hidden half is 0; over all pixels for noisy cues.
  double *norm_full = xmalloc(k * sizeof(double)), *norm_up = xmalloc(k * sizeof(double));
  sq_norms(xi, k, 0, NPIX, norm_full);
  sq_norms(xi, k, 0, HALF, norm_up);
  double *bias_up = xmalloc(k * sizeof(double)), *bias_full = xmalloc(k * sizeof(double));
  for (size_t j = 0; j < k; j++) bias_up[j] = -0.5 * norm_up[j], bias_full[j] = -0.5 * norm_full[j];
  DamcModel *masked_model = load_model(model_path, xi, k, bias_up, beta);
  DamcModel *noisy_model = load_model(model_path, xi, k, bias_full, beta);
  double t_compile = now();
  printf("compiled %s twice (two biases), float64: %.2f s\n", model_path, t_compile - t_data);

  double *clamp = xmalloc(NPIX * sizeof *clamp);
  for (size_t p = 0; p < NPIX; p++) clamp[p] = p < HALF;
  double *stored_cue = xmalloc(q * NPIX * sizeof(double)), *test_cue = xmalloc(q * NPIX * sizeof(double));
  for (size_t i = 0; i < q; i++)
    for (size_t p = 0; p < NPIX; p++) {
      stored_cue[i * NPIX + p] = p < HALF ? xi[i * NPIX + p] : 0;
      test_cue[i * NPIX + p] = p < HALF ? test[i * NPIX + p] : 0;
    }
  double *got_stored = xmalloc(q * NPIX * sizeof(double)), *got_test = xmalloc(q * NPIX * sizeof(double));
  double *best_test = xmalloc(q * NPIX * sizeof(double));
  size_t *idx = xmalloc(q * sizeof *idx);

  // Baseline: copy the stored image nearest on the visible half.
  nearest(test, q, xi, norm_up, k, 0, HALF, idx);
  double base_acc = 0, base_mse = 0, zero_mse = 0;
  for (size_t i = 0; i < q; i++) {
    base_acc += label[idx[i]] == test_label[i];
    for (size_t p = HALF; p < NPIX; p++) {
      double d = xi[idx[i] * NPIX + p] - test[i * NPIX + p];
      base_mse += d * d;
      zero_mse += test[i * NPIX + p] * test[i * NPIX + p];
    }
  }
  base_acc /= (double)q, base_mse /= (double)(q * HALF), zero_mse /= (double)(q * HALF);

  // Half-masked cues, one update (--method iterate --max-steps 1), for several beta: recall
  // of the stored images, and on unseen images the label of the stored image nearest to the
  // retrieved one and the error on the hidden half.
  static const double betas[] = {0.5, 1, 2, 5, 20};
  size_t nb = sizeof betas / sizeof betas[0];
  double recall = 0, acc = 0, err_hidden = 0, sweep_time = 0;
  printf("\nhalf-masked cues: the upper half visible and clamped (--clamp), the lower half 0; "
         "one update\n(--method iterate --max-steps 1); bias -|xi_up|^2/2\n");
  printf("   beta   recall (stored)   label acc. (test)   hidden-half MSE (test)\n");
  for (size_t s = 0; s <= nb; s++) {
    double b = s < nb ? betas[s] : beta;  // the sweep, then the chosen beta
    DamcError e = {0};
    if (!damc_set_param(masked_model, "beta", b, &e)) {
      fprintf(stderr, "%s", e.message);
      return 1;
    }
    double ts = now();
    retrieve(masked_model, stored_cue, q, clamp, DAMC_ITERATE, 1, NULL, got_stored, NULL, NULL);
    retrieve(masked_model, test_cue, q, clamp, DAMC_ITERATE, 1, NULL, got_test, NULL, NULL);
    sweep_time = now() - ts;
    size_t hits = 0, right = 0;
    nearest(got_stored, q, xi, norm_full, k, 0, NPIX, idx);
    for (size_t i = 0; i < q; i++) hits += idx[i] == i;
    nearest(got_test, q, xi, norm_full, k, 0, NPIX, idx);
    for (size_t i = 0; i < q; i++) right += label[idx[i]] == test_label[i];
    double r = (double)hits / (double)q, a = (double)right / (double)q;
    double m = mse(got_test, test, q, HALF, HALF);
    if (s < nb) {
      printf("  %5g   %14.1f%%   %16.1f%%   %21.4f%s\n", b, 100 * r, 100 * a, m,
             b == beta ? "   <- chosen" : "");
      char name[64];
      snprintf(name, sizeof name, "sweep_beta_%g_recall", b);
      figure(name, r);
      snprintf(name, sizeof name, "sweep_beta_%g_label_accuracy", b);
      figure(name, a);
      snprintf(name, sizeof name, "sweep_beta_%g_hidden_mse", b);
      figure(name, m);
    } else {
      recall = r, acc = a, err_hidden = m;
      memcpy(best_test, got_test, q * NPIX * sizeof(double));
    }
  }
  printf("  nearest neighbour on the visible half (baseline): label acc. %.1f%%, hidden-half MSE "
         "%.4f;\n  filling the hidden half with 0: MSE %.4f\n", 100 * base_acc, base_mse, zero_mse);
  printf("at beta = %g: recall %.1f%% of %zu stored images, label accuracy %.1f%% (baseline "
         "%.1f%%), hidden-half MSE %.4f (baseline %.4f); %zu + %zu one-update retrievals in %.3f s\n",
         beta, 100 * recall, q, 100 * acc, 100 * base_acc, err_hidden, base_mse, q, q, sweep_time);
  figure("K", (double)k);
  figure("queries", (double)q);
  figure("beta", beta);
  figure("masked_recall", recall);
  figure("masked_label_accuracy", acc);
  figure("masked_hidden_mse", err_hidden);
  figure("baseline_label_accuracy", base_acc);
  figure("baseline_hidden_mse", base_mse);
  figure("zero_fill_hidden_mse", zero_mse);
  figure("masked_seconds", sweep_time);

  // Noisy cues: stored images plus Gaussian noise of standard deviation `noise` on every
  // pixel, nothing clamped; one update with the full-image bias.
  double *noisy = xmalloc(q * NPIX * sizeof(double)), *got_noisy = xmalloc(q * NPIX * sizeof(double));
  for (size_t i = 0; i < q * NPIX; i++) noisy[i] = xi[i] + noise * gaussian();
  double ts = now();
  retrieve(noisy_model, noisy, q, NULL, DAMC_ITERATE, 1, NULL, got_noisy, NULL, NULL);
  double noisy_time = now() - ts;
  nearest(got_noisy, q, xi, norm_full, k, 0, NPIX, idx);
  size_t hits = 0;
  for (size_t i = 0; i < q; i++) hits += idx[i] == i;
  double noisy_recall = (double)hits / (double)q;
  double cue_mse = mse(noisy, xi, q, 0, NPIX), noisy_mse = mse(got_noisy, xi, q, 0, NPIX);
  printf("\nnoisy cues: stored images + N(0, %g^2) on every pixel, one update; bias -|xi|^2/2\n"
         "  recall %.1f%% of %zu; MSE to the stored image %.2g (the cue's: %.3f); %.3f s\n",
         noise, 100 * noisy_recall, q, noisy_mse, cue_mse, noisy_time);
  figure("noise", noise);
  figure("noisy_recall", noisy_recall);
  figure("noisy_cue_mse", cue_mse);
  figure("noisy_mse", noisy_mse);

  // The same noisy cues (the first 16) in continuous time (dopri5, tau_v = 1) with the
  // energy trace: E must fall along every run, to about 0 at a stored image (E = 0 there up
  // to the other memories' share, which is exp(-beta d^2 / 2) small).
  size_t nt = q < 16 ? q : 16;
  snprintf(path, sizeof path, "%s/energy.csv", out_dir);
  FILE *trace = fopen(path, "w");
  if (!trace) {
    fprintf(stderr, "fashion_mnist_demo: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  double *got_flow = xmalloc(nt * NPIX * sizeof(double)), energy[16], steps[16];
  ts = now();
  retrieve(noisy_model, noisy, nt, NULL, DAMC_DOPRI5, 0, trace, got_flow, energy, steps);
  double flow_time = now() - ts;
  if (fclose(trace) != 0) {
    fprintf(stderr, "fashion_mnist_demo: cannot write %s\n", path);
    return 1;
  }
  nearest(got_flow, nt, xi, norm_full, k, 0, NPIX, idx);
  hits = 0;
  double max_steps = 0, max_e = -INFINITY;
  for (size_t i = 0; i < nt; i++) {
    hits += idx[i] == i;
    if (steps[i] > max_steps) max_steps = steps[i];
    if (energy[i] > max_e) max_e = energy[i];
  }
  printf("  the first %zu in continuous time (dopri5): recall %zu of %zu, at most %g steps, "
         "final E <= %.3g; %.3f s; energy trace: %s\n", nt, hits, nt, max_steps, max_e, flow_time,
         path);
  figure("flow_recall", (double)hits / (double)nt);
  figure("flow_final_energy_max", max_e);

  // The grid: 8 half-masked test images and 8 noisy stored ones, each as cue, retrieved,
  // original.
  size_t cols = q < 8 ? q : 8;
  Canvas c = {GAP + cols * (SIDE * SCALE + GAP), GAP + 6 * (SIDE * SCALE + GAP), NULL};
  c.rgb = xmalloc(c.width * c.height * 3);
  memset(c.rgb, 255, c.width * c.height * 3);
  for (size_t j = 0; j < cols; j++) {
    draw(&c, 0, j, test_cue + j * NPIX, 1);
    draw(&c, 1, j, best_test + j * NPIX, 0);
    draw(&c, 2, j, test + j * NPIX, 0);
    draw(&c, 3, j, noisy + j * NPIX, 0);
    draw(&c, 4, j, got_noisy + j * NPIX, 0);
    draw(&c, 5, j, xi + j * NPIX, 0);
  }
  snprintf(path, sizeof path, "%s/grid.png", out_dir);
  if (!write_png(path, &c)) return 1;
  printf("\ngrid (rows: masked test cue / retrieved / original, noisy stored cue / retrieved / "
         "original): %s (%zu x %zu)\n", path, c.width, c.height);
  figure("grid_width", (double)c.width);
  figure("grid_height", (double)c.height);
  figure("seconds", now() - t0);
  printf("total %.2f s\n", now() - t0);
  if (fclose(figures_file) != 0) return 1;

  damc_model_free(masked_model);
  damc_model_free(noisy_model);
  free(c.rgb);
  free(got_flow);
  free(noisy);
  free(got_noisy);
  free(idx);
  free(best_test);
  free(got_test);
  free(got_stored);
  free(test_cue);
  free(stored_cue);
  free(clamp);
  free(bias_up);
  free(bias_full);
  free(norm_up);
  free(norm_full);
  free(label);
  free(test_label);
  free(test);
  free(xi);
  return 0;
}

// The fused products of the kernel ABI (see damrt_kernel.h): u = W' p(W g) in one pass over
// the weight W [k, n], block of rows after block of rows, for a batch of samples.
//
// Per block of `rows` rows of W (sized by the plan to stay in cache between its two uses):
//   1. z[b, r] = W_r . g_b for every sample b and row r of the block, written to z;
//   2. the kernel's block function computes the elementwise maps of the block's columns
//      (the logits a = beta z of a softmax layer, or p = F'(z) of an additive one);
//   3. softmax mode: the streaming softmax per sample, m = the running max of a, l = the
//      running sum of exp(a - m), with acc rescaled by exp(m_old - m_new) when m grows, and
//      p = exp(a - m) for the block;
//   4. acc[b, :] += sum_r p[b, r] W_r.
// At the end u = acc / l and lse = m + log l (softmax), or u = acc (additive). An energy
// stops after step 3: the log-sum-exp alone (mode 2), or the sum of the block's map output
// (mode 3), with no u and no second read of the block. With several
// threads each has its own (m, l, acc), merged at the end
// (with the same rescaling); the threads take the blocks in turn from a shared counter, so that
// one that the system delays leaves its share to the others. The products are register-blocked with GCC vector types (one
// 64-byte vector: 16 floats or 8 doubles), compiled for AVX-512, AVX2 and the baseline
// (function multiversioning picks one at load time).
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "damrt_kernel.h"
#include "util.h"

typedef void (*BlockFn)(void **bufs, const double *params, int64_t batch, int64_t k0,
                        int64_t k1);

static int fused_limit;  // damrt_fused_set_thread_limit; 0: damrt_thread_limit

void damrt_fused_set_thread_limit(int n) { fused_limit = n; }

static int max_threads(void) { return fused_limit > 0 ? fused_limit : damrt_thread_limit(); }

// A kernel has no way to report an error: like the compiler's allocator, stop (status 70).
static void out_of_memory(void) {
  fputs("damrt: out of memory in a fused product\n", stderr);
  exit(70);
}

// The workers: threads started once (at the first call with more than one thread) that wait
// for a job, spinning for a short while after each (so that the next step of an integrator
// finds them awake) and then sleeping on a condition variable, so that no core is kept busy
// while damc compiles or reads files. The caller runs part 0 of every job itself.
enum { MAX_WORKERS = 63 };
static const double SPIN_SECONDS = 1e-3;  // a worker polls this long after a job, then sleeps

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
typedef void (*PartFn)(void *job, int part);
static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  int started;                // workers running
  unsigned long generation;   // bumped for each job
  PartFn fn;
  void *job;
  int parts;                  // parts of the job (part 0 is the caller's)
  int pending;                // parts not finished
  unsigned long claimed[MAX_WORKERS + 1];  // the last job (generation) whose part p was taken
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
          NULL, NULL, 0, 0, {0}};

// Takes part p of job `generation`: true for the first of its worker and the caller, and never
// for a worker that read an older job and was delayed until it ended (the caller ran its part
// and returned, freeing the job): the part's claim already holds that job or a later one.
static int claim(int p, unsigned long generation) {
  unsigned long was = __atomic_load_n(&pool.claimed[p], __ATOMIC_ACQUIRE);
  while (was < generation)
    if (__atomic_compare_exchange_n(&pool.claimed[p], &was, generation, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
      return 1;
  return 0;
}

static void part_done(void) {
  pthread_mutex_lock(&pool.lock);
  if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  pthread_mutex_unlock(&pool.lock);
}

static void *worker_main(void *arg) {
  int id = (int)(intptr_t)arg;
  unsigned long seen = 0;
  for (;;) {
    double until = seconds() + SPIN_SECONDS;
    for (int spin = 1; __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE) == seen; spin++) {
      __builtin_ia32_pause();
      if (spin % 256 == 0 && seconds() > until) break;
    }
    pthread_mutex_lock(&pool.lock);
    while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    seen = pool.generation;
    PartFn fn = pool.fn;
    void *job = pool.job;
    int mine = id < pool.parts;
    pthread_mutex_unlock(&pool.lock);
    if (!mine || !claim(id, seen)) continue;  // the caller ran it: it was late
    fn(job, id);
    part_done();
  }
  return NULL;
}

// Runs fn(job, p) for p in [0, parts): part 0 here, the others on workers (started when
// first needed; a part that finds no worker runs here).
static pthread_mutex_t pool_user = PTHREAD_MUTEX_INITIALIZER;  // one job at a time

// A child of fork() has none of the workers: it starts its own when it needs them.
static void pool_after_fork(void);
static void register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_after_fork); }

static void pool_after_fork(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pool.lock = pool_user = m;
  pool.wake = pool.done = c;
  pool.started = 0;
}

static void run_parts(PartFn fn, void *job, int parts) {
  if (pthread_mutex_trylock(&pool_user)) {  // another thread's job has the workers
    for (int p = 0; p < parts; p++) fn(job, p);
    return;
  }
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_fork_handler);
  pthread_mutex_lock(&pool.lock);
  while (pool.started < parts - 1 && pool.started < MAX_WORKERS) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int failed = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(pool.started + 1));
    pthread_attr_destroy(&attr);
    if (failed) break;
    pool.started++;
  }
  int remote = parts - 1 < pool.started ? parts - 1 : pool.started;
  pool.fn = fn;
  pool.job = job;
  pool.parts = remote + 1;
  pool.pending = remote;
  unsigned long generation = __atomic_add_fetch(&pool.generation, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  fn(job, 0);
  // Parts whose worker has not started yet run here (with a shared counter of blocks, they
  // find little or nothing left): the caller waits only for parts that are running.
  for (int p = 1; p <= remote; p++)
    if (claim(p, generation)) {
      fn(job, p);
      part_done();
    }
  for (int p = remote + 1; p < parts; p++) fn(job, p);
  pthread_mutex_lock(&pool.lock);
  while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
  pthread_mutex_unlock(&pool.lock);
  pthread_mutex_unlock(&pool_user);
}

// The blocks of a product are shared out in contiguous segments, one per thread, the same at
// every call with the same sizes and threads: the sums are then made in an order that nothing
// else decides, and a run gives the same bits every time (blocks taken from a shared counter,
// or from a busy thread's segment, made the last bits vary from run to run). Each thread works
// through its segment ascending and descending in turns from one call to the next: the rows a
// core read last in a call are the first it reads in the next, while they are still in its L2
// (a W of 784 x 1000 floats is 3.1 MB; two cores have 1 MB of L2 each: the step at batch 1
// takes 25 us instead of 28).
static unsigned long fused_calls;  // odd calls descend

static bool next_call_ascends(void) {
  return (__atomic_fetch_add(&fused_calls, 1, __ATOMIC_RELAXED) & 1) == 0;
}

// The rows of a group at batch 1: about 16 KiB of W (at least 8 rows, a multiple of 4, at most a
// block), read again by the second product while still in L1. Smaller groups cost more in
// their softmax bookkeeping than they save: at N = 64, 8-row groups made the step 1.2 -> 2.0 us;
// at N = 784, 8-row groups (25 KB) make it 29 -> 26 us.
static int64_t row_group(int64_t n, size_t real_size, int64_t rows) {
  int64_t g = (int64_t)(16384 / real_size) / (n > 0 ? n : 1) / 4 * 4;
  g = g < 8 ? 8 : g;
  return g < rows ? g : rows;
}

#define INLINE static inline __attribute__((always_inline))
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// exp for float32 arrays in a loop the compiler vectorises: 2^(x log2 e) split into an
// integer power (the exponent bits) and a degree-6 polynomial of the fraction on
// [-0.5, 0.5] (relative error below 2e-7); inputs below -87 give 0.
INLINE float exp_f32(float x) {
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  float t = x * 1.44269504088896341f;
  float k = (t + 0x1.8p23f) - 0x1.8p23f;  // round to nearest (|t| < 2^22)
  float f = t - k;
  float p = 1.5353362e-4f;
  p = p * f + 1.3398874e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return x <= -87.0f ? 0.0f : p * scale;
}
INLINE double exp_f64(double x) { return exp(x); }

#define DEFINE_FUSED(SUF, real, VL, ITYPE)                                                              \
  typedef real vec_##SUF __attribute__((vector_size(64)));                                       \
  INLINE vec_##SUF load_##SUF(const real *p) {                                                   \
    vec_##SUF v;                                                                                 \
    memcpy(&v, p, sizeof v);                                                                     \
    return v;                                                                                    \
  }                                                                                              \
  INLINE void store_##SUF(real *p, vec_##SUF v) { memcpy(p, &v, sizeof v); }                    \
  typedef real half_##SUF __attribute__((vector_size(32)));                                      \
  typedef real quarter_##SUF __attribute__((vector_size(16)));                                   \
  typedef ITYPE ivec_##SUF __attribute__((vector_size(64)));                                     \
  INLINE real hsum_##SUF(vec_##SUF v) { /* halves added in registers */                          \
    half_##SUF h0, h1;                                                                           \
    memcpy(&h0, &v, sizeof h0);                                                                  \
    memcpy(&h1, (char *)&v + sizeof h0, sizeof h1);                                              \
    h0 += h1;                                                                                    \
    quarter_##SUF q0, q1;                                                                        \
    memcpy(&q0, &h0, sizeof q0);                                                                 \
    memcpy(&q1, (char *)&h0 + sizeof q0, sizeof q1);                                             \
    q0 += q1;                                                                                    \
    real t = 0;                                                                                  \
    for (int i = 0; i < (int)(sizeof q0 / sizeof(real)); i++) t += q0[i];                        \
    return t;                                                                                    \
  }                                                                                              \
  /* max of a[0, R) (-inf when R = 0), with vector compares and bit selects */                   \
  INLINE real max_##SUF(const real *a, int64_t R) {                                              \
    vec_##SUF m = (vec_##SUF){0} - INFINITY;                                                     \
    int64_t r = 0;                                                                               \
    for (; r + VL <= R; r += VL) {                                                               \
      vec_##SUF x = load_##SUF(a + r);                                                           \
      ivec_##SUF gt = (ivec_##SUF)(x > m);                                                       \
      m = (vec_##SUF)(((ivec_##SUF)x & gt) | ((ivec_##SUF)m & ~gt));                             \
    }                                                                                            \
    real t = -INFINITY;                                                                          \
    for (int i = 0; i < VL; i++) t = m[i] > t ? m[i] : t;                                        \
    for (; r < R; r++) t = a[r] > t ? a[r] : t;                                                  \
    return t;                                                                                    \
  }                                                                                              \
  /* q[r] = exp(a[r] - m) for r < R; returns their sum (vector accumulators) */                  \
  INLINE real exp_sum_##SUF(const real *a, real m, real *q, int64_t R) {                         \
    for (int64_t r = 0; r < R; r++) q[r] = exp_##SUF(a[r] - m);                                  \
    vec_##SUF acc = (vec_##SUF){0};                                                              \
    int64_t r = 0;                                                                               \
    for (; r + VL <= R; r += VL) acc += load_##SUF(q + r);                                       \
    real t = hsum_##SUF(acc);                                                                    \
    for (; r < R; r++) t += q[r];                                                                \
    return t;                                                                                    \
  }                                                                                              \
  /* z[b * ldz + r] = W_r . g_b for RB rows from w and SB samples from g. */                     \
  INLINE void dots_##SUF(int RB, int SB, const real *w, const real *g, int64_t n, real *z,       \
                         int64_t ldz) {                                                          \
    vec_##SUF acc[4][4];                                                                         \
    for (int i = 0; i < RB; i++)                                                                 \
      for (int s = 0; s < SB; s++) acc[i][s] = (vec_##SUF){0};                                   \
    int64_t j = 0;                                                                               \
    for (; j + VL <= n; j += VL) {                                                               \
      vec_##SUF x[4];                                                                            \
      for (int i = 0; i < RB; i++) x[i] = load_##SUF(w + i * n + j);                             \
      for (int s = 0; s < SB; s++) {                                                             \
        vec_##SUF q = load_##SUF(g + s * n + j);                                                 \
        for (int i = 0; i < RB; i++) acc[i][s] += x[i] * q;                                      \
      }                                                                                          \
    }                                                                                            \
    for (int i = 0; i < RB; i++)                                                                 \
      for (int s = 0; s < SB; s++) {                                                             \
        real t = hsum_##SUF(acc[i][s]);                                                          \
        for (int64_t jj = j; jj < n; jj++) t += w[i * n + jj] * g[s * n + jj];                   \
        z[s * ldz + i] = t;                                                                      \
      }                                                                                          \
  }                                                                                              \
  /* One sample, four rows, two accumulators a row (eight chains of FMAs in flight, four     \
     row pointers: no spills). */                                                                \
  INLINE void dots4x1_##SUF(const real *w, const real *g, int64_t n, real *z) {                  \
    const real *w0 = w, *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n;                           \
    vec_##SUF a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};    \
    int64_t j = 0;                                                                               \
    for (; j + 2 * VL <= n; j += 2 * VL) {                                                       \
      vec_##SUF q = load_##SUF(g + j), q2 = load_##SUF(g + j + VL);                              \
      a0 += load_##SUF(w0 + j) * q;                                                              \
      a1 += load_##SUF(w1 + j) * q;                                                              \
      a2 += load_##SUF(w2 + j) * q;                                                              \
      a3 += load_##SUF(w3 + j) * q;                                                              \
      b0 += load_##SUF(w0 + j + VL) * q2;                                                        \
      b1 += load_##SUF(w1 + j + VL) * q2;                                                        \
      b2 += load_##SUF(w2 + j + VL) * q2;                                                        \
      b3 += load_##SUF(w3 + j + VL) * q2;                                                        \
    }                                                                                            \
    for (; j + VL <= n; j += VL) {                                                               \
      vec_##SUF q = load_##SUF(g + j);                                                           \
      a0 += load_##SUF(w0 + j) * q;                                                              \
      a1 += load_##SUF(w1 + j) * q;                                                              \
      a2 += load_##SUF(w2 + j) * q;                                                              \
      a3 += load_##SUF(w3 + j) * q;                                                              \
    }                                                                                            \
    real t0 = hsum_##SUF(a0 + b0), t1 = hsum_##SUF(a1 + b1), t2 = hsum_##SUF(a2 + b2),          \
         t3 = hsum_##SUF(a3 + b3);                                                               \
    for (; j < n; j++) {                                                                         \
      t0 += w0[j] * g[j];                                                                        \
      t1 += w1[j] * g[j];                                                                        \
      t2 += w2[j] * g[j];                                                                        \
      t3 += w3[j] * g[j];                                                                        \
    }                                                                                            \
    z[0] = t0, z[1] = t1, z[2] = t2, z[3] = t3;                                                  \
  }                                                                                              \
  /* z[b, k0 + r] for the rows [0, R) of block w and every sample. */                            \
  INLINE void block_dots_##SUF(const real *w, int64_t R, const real *g, int64_t B, int64_t n,    \
                               real *z, int64_t ldz) {                                           \
    int64_t r = 0;                                                                               \
    if (B < 4) {                                                                                 \
      for (; r + 4 <= R; r += 4)                                                                 \
        for (int64_t b = 0; b < B; b++) dots4x1_##SUF(w + r * n, g + b * n, n, z + b * ldz + r);  \
    } else {                                                                                     \
      for (; r + 4 <= R; r += 4) {                                                               \
        int64_t b = 0;                                                                           \
        for (; b + 4 <= B; b += 4) dots_##SUF(4, 4, w + r * n, g + b * n, n, z + b * ldz + r, ldz); \
        for (; b < B; b++) dots_##SUF(4, 1, w + r * n, g + b * n, n, z + b * ldz + r, ldz);      \
      }                                                                                          \
    }                                                                                            \
    for (; r < R; r++) {                                                                         \
      int64_t b = 0;                                                                             \
      for (; b + 4 <= B; b += 4) dots_##SUF(1, 4, w + r * n, g + b * n, n, z + b * ldz + r, ldz); \
      for (; b < B; b++) dots_##SUF(1, 1, w + r * n, g + b * n, n, z + b * ldz + r, ldz);        \
    }                                                                                            \
  }                                                                                              \
  /* acc[s, j..j+JW*VL) += sum_r p[s * ldp + r] w_r, for SB samples. */                          \
  INLINE void axpys_##SUF(int SB, int JW, const real *p, int64_t ldp, const real *w, int64_t R,  \
                          int64_t n, int64_t j, real *acc) {                                     \
    vec_##SUF a[4][8];                                                                           \
    for (int s = 0; s < SB; s++)                                                                 \
      for (int v = 0; v < JW; v++) a[s][v] = load_##SUF(acc + s * n + j + v * VL);               \
    int64_t r = 0;                                                                               \
    if (SB == 1 && JW <= 4) { /* one sample, few vectors: rows in pairs, two sets of sums */     \
      vec_##SUF a2[4];                                                                           \
      for (int v = 0; v < JW; v++) a2[v] = (vec_##SUF){0};                                       \
      for (; r + 2 <= R; r += 2) {                                                               \
        vec_##SUF c0 = (vec_##SUF){0} + p[r], c1 = (vec_##SUF){0} + p[r + 1];                    \
        for (int v = 0; v < JW; v++) {                                                           \
          a[0][v] += c0 * load_##SUF(w + r * n + j + v * VL);                                    \
          a2[v] += c1 * load_##SUF(w + (r + 1) * n + j + v * VL);                                \
        }                                                                                        \
      }                                                                                          \
      for (int v = 0; v < JW; v++) a[0][v] += a2[v];                                             \
    }                                                                                            \
    for (; r < R; r++) {                                                                         \
      vec_##SUF x[8];                                                                            \
      for (int v = 0; v < JW; v++) x[v] = load_##SUF(w + r * n + j + v * VL);                    \
      for (int s = 0; s < SB; s++) {                                                             \
        vec_##SUF c = (vec_##SUF){0} + p[s * ldp + r];                                           \
        for (int v = 0; v < JW; v++) a[s][v] += c * x[v];                                        \
      }                                                                                          \
    }                                                                                            \
    for (int s = 0; s < SB; s++)                                                                 \
      for (int v = 0; v < JW; v++) store_##SUF(acc + s * n + j + v * VL, a[s][v]);               \
  }                                                                                              \
  INLINE void block_axpy_##SUF(const real *p, int64_t ldp, const real *w, int64_t R, int64_t B,  \
                               int64_t n, real *acc) {                                           \
    int64_t b = 0;                                                                               \
    for (; b + 4 <= B; b += 4) {                                                                 \
      int64_t j = 0;                                                                             \
      for (; j + 4 * VL <= n; j += 4 * VL) axpys_##SUF(4, 4, p + b * ldp, ldp, w, R, n, j, acc + b * n); \
      if (j + 2 * VL <= n) {                                                                     \
        axpys_##SUF(4, 2, p + b * ldp, ldp, w, R, n, j, acc + b * n);                            \
        j += 2 * VL;                                                                             \
      }                                                                                          \
      for (; j + VL <= n; j += VL) axpys_##SUF(4, 1, p + b * ldp, ldp, w, R, n, j, acc + b * n); \
    }                                                                                            \
    for (; b < B; b++) {                                                                         \
      int64_t j = 0;                                                                             \
      for (; j + 8 * VL <= n; j += 8 * VL) axpys_##SUF(1, 8, p + b * ldp, ldp, w, R, n, j, acc + b * n); \
      if (j + 4 * VL <= n) {                                                                     \
        axpys_##SUF(1, 4, p + b * ldp, ldp, w, R, n, j, acc + b * n);                            \
        j += 4 * VL;                                                                             \
      }                                                                                          \
      if (j + 2 * VL <= n) {                                                                     \
        axpys_##SUF(1, 2, p + b * ldp, ldp, w, R, n, j, acc + b * n);                            \
        j += 2 * VL;                                                                             \
      }                                                                                          \
      for (; j + VL <= n; j += VL) axpys_##SUF(1, 1, p + b * ldp, ldp, w, R, n, j, acc + b * n); \
    }                                                                                            \
    int64_t j0 = n - n % VL;                                                                     \
    for (b = 0; b < B; b++)                                                                      \
      for (int64_t r = 0; r < R; r++) {                                                          \
        real c = p[b * ldp + r];                                                                 \
        for (int64_t j = j0; j < n; j++) acc[b * n + j] += c * w[r * n + j];                     \
      }                                                                                          \
  }                                                                                              \
  typedef struct {                                                                               \
    int32_t mode;                                                                                \
    int64_t batch, n, k, rows;                                                                   \
    const real *w, *g;                                                                           \
    real *z, *a;                                                                                 \
    BlockFn blk;                                                                                 \
    void **bufs;                                                                                 \
    const double *params;                                                                        \
    real *acc, *m, *l, *p; /* this thread's state and block scratch [batch, rows] */             \
    int part, parts;       /* this thread's segment, of how many */                              \
    bool ascending;        /* the direction of this call */                                      \
  } Job_##SUF;                                                                                   \
  /* Rows [k0, k0 + R) of W: both products and what lies between them, for every sample. */      \
  INLINE void block_##SUF(Job_##SUF *jb, int64_t k0, int64_t R) {                                \
    const int64_t B = jb->batch, n = jb->n, K = jb->k;                                           \
    const real *w = jb->w + k0 * n;                                                              \
    block_dots_##SUF(w, R, jb->g, B, n, jb->z + k0, K);                                          \
    jb->blk(jb->bufs, jb->params, B, k0, k0 + R);                                                \
    const real *p = jb->a + k0;                                                                  \
    int64_t ldp = K;                                                                             \
    if (jb->mode == 3) { /* an energy's sum */                                                   \
      for (int64_t b = 0; b < B; b++) {                                                          \
        const real *a = jb->a + b * K + k0;                                                      \
        real sum = 0;                                                                            \
        for (int64_t r = 0; r < R; r++) sum += a[r];                                             \
        jb->l[b] += sum;                                                                         \
      }                                                                                          \
      return;                                                                                    \
    }                                                                                            \
    if (jb->mode == 0 || jb->mode == 2) {                                                        \
      for (int64_t b = 0; b < B; b++) {                                                          \
        const real *a = jb->a + b * K + k0;                                                      \
        real *q = jb->p + b * jb->rows;                                                          \
        real mb = max_##SUF(a, R);                                                               \
        real mnew = mb > jb->m[b] ? mb : jb->m[b];                                               \
        if (mnew == -INFINITY) { /* every logit so far -inf: nothing to add */                   \
          for (int64_t r = 0; r < R; r++) q[r] = 0;                                              \
          continue;                                                                              \
        }                                                                                        \
        real sum = exp_sum_##SUF(a, mnew, q, R);                                                 \
        if (mnew > jb->m[b]) {                                                                   \
          real corr = exp_##SUF(jb->m[b] - mnew);                                                \
          jb->l[b] *= corr;                                                                      \
          real *acc = jb->mode == 0 ? jb->acc + b * n : NULL; /* an energy has no acc */         \
          for (int64_t j = 0; acc && j < n; j++) acc[j] *= corr;                                 \
          jb->m[b] = mnew;                                                                       \
        }                                                                                        \
        jb->l[b] += sum;                                                                         \
      }                                                                                          \
      if (jb->mode == 2) return;   /* the log-sum-exp alone */                                   \
      p = jb->p;                                                                                 \
      ldp = jb->rows;                                                                            \
    }                                                                                            \
    block_axpy_##SUF(p, ldp, w, R, B, n, jb->acc);                                               \
  }                                                                                              \
  CLONES static void run_rows_##SUF(Job_##SUF *jb) {                                             \
    const int64_t B = jb->batch, n = jb->n, K = jb->k;                                           \
    for (int64_t b = 0; b < B; b++) {                                                            \
      jb->m[b] = -INFINITY;                                                                      \
      jb->l[b] = 0;                                                                              \
    }                                                                                            \
    if (jb->mode < 2) memset(jb->acc, 0, sizeof(real) * (size_t)(B * n));                        \
    /* One sample: a block by groups of rows, each group read again by the second product        \
       while it is still in L1 (a block is in L2 only). */                                       \
    const int64_t group = B == 1 ? row_group(n, sizeof(real), jb->rows) : jb->rows;              \
    const int64_t blocks = (K + jb->rows - 1) / jb->rows;                                        \
    const int64_t first = blocks * jb->part / jb->parts, end = blocks * (jb->part + 1) / jb->parts; \
    for (int64_t i = first; i < end; i++) { /* this thread's segment, in this call's direction */ \
      int64_t k0 = (jb->ascending ? i : first + end - 1 - i) * jb->rows;                         \
      int64_t last = K - k0 < jb->rows ? K : k0 + jb->rows;                                      \
      for (int64_t r0 = k0; r0 < last; r0 += group) block_##SUF(jb, r0, last - r0 < group ? last - r0 : group); \
    }                                                                                            \
  }                                                                                              \
  /* The same result by two products over the whole batch around a row-wise softmax. */        \
  static void blas_path_##SUF(int32_t mode, int64_t B, int64_t n, int64_t K, const real *w,      \
                              const real *g, real *z, real *a, real *lse, real *u, BlockFn blk,  \
                              void **bufs, const double *params) {                               \
    damrt_kernel_gemm_##SUF(0, 1, B, K, n, g, n, w, n, z, K);                                    \
    blk(bufs, params, B, 0, K);                                                                  \
    if (mode == 1) {                                                                             \
      damrt_kernel_gemm_##SUF(0, 0, B, n, K, a, K, w, n, u, n);                                  \
      return;                                                                                    \
    }                                                                                            \
    if (mode == 3) {                                                                             \
      for (int64_t b = 0; b < B; b++) {                                                          \
        real sum = 0;                                                                            \
        for (int64_t r = 0; r < K; r++) sum += a[b * K + r];                                     \
        lse[b] = sum;                                                                            \
      }                                                                                          \
      return;                                                                                    \
    }                                                                                            \
    real *p = malloc(sizeof(real) * (size_t)(B * K));                                            \
    if (!p) out_of_memory();                                                                     \
    for (int64_t b = 0; b < B; b++) {                                                            \
      const real *ab = a + b * K;                                                                \
      real *pb = p + b * K;                                                                      \
      real m = -INFINITY, l = 0;                                                                 \
      for (int64_t r = 0; r < K; r++) m = ab[r] > m ? ab[r] : m;                                 \
      for (int64_t r = 0; r < K; r++) {                                                          \
        pb[r] = m == -INFINITY ? 0 : exp_##SUF(ab[r] - m);                                       \
        l += pb[r];                                                                              \
      }                                                                                          \
      real inv = 1 / l;                                                                          \
      for (int64_t r = 0; r < K; r++) pb[r] *= inv;                                              \
      lse[b] = m == -INFINITY ? m : m + log(l);                                                  \
    }                                                                                            \
    if (mode == 0) damrt_kernel_gemm_##SUF(0, 0, B, n, K, p, K, w, n, u, n);                     \
    free(p);                                                                                     \
  }                                                                                              \
  static void part_##SUF(void *jobs, int part) { run_rows_##SUF((Job_##SUF *)jobs + part); }     \
  void damrt_kernel_fused_##SUF(int32_t mode, int64_t batch, int64_t n, int64_t k,               \
                                int64_t rows, int32_t threads, const real *w, const real *g,     \
                                real *z, real *a, real *lse, real *u, void *blk, void **bufs,    \
                                const double *params) {                                          \
    if (batch <= 0) return;                                                                      \
    if (threads <= 0) {                                                                          \
      blas_path_##SUF(mode, batch, n, k, w, g, z, a, lse, u, (BlockFn)blk, bufs, params);        \
      return;                                                                                    \
    }                                                                                            \
    if (rows < 1) rows = 1;                                                                      \
    int T = threads < 1 ? 1 : threads;                                                           \
    if (T > max_threads()) T = max_threads();                                                    \
    if (T > k / rows) T = (int)(k / rows) < 1 ? 1 : (int)(k / rows);                             \
    size_t per = (size_t)(batch * n + 2 * batch + batch * rows);                                 \
    real *scratch = malloc(sizeof(real) * per * (size_t)T);                                      \
    if (!scratch) out_of_memory();                                                               \
    Job_##SUF jobs[64];                                                                          \
    bool ascending = next_call_ascends();                                                        \
    for (int t = 0; t < T; t++) {                                                                \
      real *s = scratch + per * (size_t)t;                                                       \
      Job_##SUF jb = {mode, batch, n, k, rows, w, g, z, a, (BlockFn)blk, bufs, params,           \
                      s, s + batch * n, s + batch * n + batch, s + batch * n + 2 * batch,        \
                      t, T, ascending};                                                          \
      if (t == 0) jb.acc = u; /* the first thread accumulates in place */                        \
      jobs[t] = jb;                                                                              \
    }                                                                                            \
    if (T == 1) run_rows_##SUF(&jobs[0]);                                                        \
    else run_parts(part_##SUF, jobs, T);                                                         \
    for (int64_t b = 0; b < batch; b++) {                                                        \
      real m = -INFINITY, l = 0;                                                                 \
      if (mode == 3) { /* the threads' partial sums */                                           \
        for (int t = 0; t < T; t++) l += jobs[t].l[b];                                           \
        lse[b] = l;                                                                              \
        continue;                                                                                \
      }                                                                                          \
      if (mode == 0 || mode == 2)                                                                \
        for (int t = 0; t < T; t++) m = jobs[t].m[b] > m ? jobs[t].m[b] : m;                     \
      if (mode == 2) {                                                                           \
        for (int t = 0; t < T; t++)                                                              \
          l += jobs[t].m[b] == -INFINITY ? 0 : exp(jobs[t].m[b] - m) * jobs[t].l[b];             \
        lse[b] = m == -INFINITY ? m : m + log(l);                                                \
        continue;                                                                                \
      }                                                                                          \
      real *ub = u + b * n; /* thread 0's sum, to which the others' are added */                 \
      for (int t = 0; t < T; t++) {                                                              \
        real c = 1;                                                                              \
        if (mode == 0) {                                                                         \
          c = jobs[t].m[b] == -INFINITY ? 0 : exp(jobs[t].m[b] - m);                             \
          l += c * jobs[t].l[b];                                                                 \
        }                                                                                        \
        const real *acc = jobs[t].acc + b * n;                                                   \
        if (t == 0) {                                                                            \
          if (c != 1)                                                                            \
            for (int64_t j = 0; j < n; j++) ub[j] *= c;                                          \
        } else {                                                                                 \
          for (int64_t j = 0; j < n; j++) ub[j] += c * acc[j];                                   \
        }                                                                                        \
      }                                                                                          \
      if (mode == 0) {                                                                           \
        real inv = 1 / l;                                                                        \
        for (int64_t j = 0; j < n; j++) ub[j] *= inv;                                            \
        lse[b] = m == -INFINITY ? m : m + log(l);                                                \
      }                                                                                          \
    }                                                                                            \
    free(scratch);                                                                               \
  }

DEFINE_FUSED(f32, float, 16, int32_t)
DEFINE_FUSED(f64, double, 8, int64_t)

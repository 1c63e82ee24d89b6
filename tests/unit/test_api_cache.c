// The C API with the cache of compiled kernels on (compiler/engine/kcache.h), in a fresh
// cache directory of its own: sequences that use one model in both precisions, with
// damc_check between (it compiles a float64 copy of the model and the float32 kernels
// again), give bit for bit the results of the same sequences with the cache off, and every
// step succeeds; a failing call would have to say why (a non-empty message).
//
// The regression: an entry is loaded as /proc/self/fd/N. When two engines loaded one entry
// (the float32 engine and damc_check's copy), glibc remembered the second name for the
// loaded object, and a later entry opened as that descriptor number (the float64 eval kernel
// after damc_use_precision) came back as the float32 step module: "the cached kernels have
// no 'damc_eval'", and then failures with an empty message.
//
// Then an entry whose key names a kernel its code lacks (an entry of eval's key holding the
// step module, a valid checksum): it is never used as if it held the kernel; rejected and
// rebuilt, the results are the same.
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "damc.h"

enum { N = 24, K = 5, B = 3 };

// Model B (examples/model_b.dam) at a small size; the memories integrated (tau 0.05), so
// that its float64 copy in damc_check and its runs use every kernel kind asked for here.
static const char model_text[] =
    "model mb;\n"
    "dim N = 24;\n"
    "dim K;\n"
    "param beta = 2.0;\n"
    "layer v[N] { L = lagr_identity(v); tau = 1.0; }\n"
    "layer h[K] { L = logsumexp(beta * h) / beta; tau = 0.05; }\n"
    "synapse Xi[K, N] : h <-> v;\n"
    "input v;\n";

static char cache_dir[256];
static double xi[K * N], states[B * N];

// Everything a sequence produced: per step whether it succeeded, and every result's bits.
typedef struct {
  char log[4096];      // "eval32 ok\ncheck PASS\n..."
  double *values;
  size_t count, cap;
} Record;

static void record_results(Record *rec, const DamcResults *r) {
  for (size_t i = 0; r && i < damc_results_count(r); i++) {
    DamcArray a;
    const char *name = damc_results_at(r, i, &a);
    size_t n = 1;
    for (int d = 0; d < a.rank; d++) n *= a.shape[d];
    if (rec->count + n > rec->cap) {
      rec->cap = (rec->count + n) * 2;
      rec->values = realloc(rec->values, rec->cap * sizeof *rec->values);
    }
    memcpy(rec->values + rec->count, a.data, n * sizeof(double));
    rec->count += n;
    size_t len = strlen(rec->log);
    snprintf(rec->log + len, sizeof rec->log - len, " %s[%zu]", name, n);
  }
}

// One step's outcome into the log; a failure must carry a message.
static void step_done(Record *rec, const char *step, bool ok, DamcError *err) {
  size_t len = strlen(rec->log);
  snprintf(rec->log + len, sizeof rec->log - len, "\n%s %s", step, ok ? "ok" : "FAILED");
  if (!ok) {
    fprintf(stderr, "%s failed (status %d): %s\n", step, err->status,
            err->message ? err->message : "(null)");
    CHECK(err->message && *err->message);
  }
  damc_error_clear(err);
}

// Runs `steps` ("c32 eval check f64 eval run energy ...") on a new Model B.
static void sequence(const char *steps, bool cache, Record *rec) {
  if (cache) unsetenv("DAMC_NO_CACHE");
  else setenv("DAMC_NO_CACHE", "1", 1);
  memset(rec, 0, sizeof *rec);
  DamcError err = {0};
  DamcModel *m = damc_model_from_string("mb.dam", model_text, &err);
  CHECK(m != NULL);
  if (!m) return;
  DamcArray w = {2, {K, N}, xi, DAMC_F64};
  CHECK(damc_bind_weight(m, "Xi", &w, NULL, &err));
  DamcArray st[2] = {{2, {B, N}, states, DAMC_F64}, {0}};
  DamcBatch batch = {st, NULL, NULL};
  DamcRunOptions opt = {0};
  opt.method = DAMC_ITERATE;
  opt.max_steps = 5;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", steps);
  for (char *s = strtok(buf, " "); s; s = strtok(NULL, " ")) {
    DamcResults *r = NULL;
    bool ok;
    if (strcmp(s, "c32") == 0) ok = damc_compile(m, DAMC_F32, &err);
    else if (strcmp(s, "c64") == 0) ok = damc_compile(m, DAMC_F64, &err);
    else if (strcmp(s, "f32") == 0) ok = damc_use_precision(m, DAMC_F32, &err);
    else if (strcmp(s, "f64") == 0) ok = damc_use_precision(m, DAMC_F64, &err);
    else if (strcmp(s, "eval") == 0) ok = (r = damc_eval(m, &batch, &err)) != NULL;
    else if (strcmp(s, "energy") == 0) ok = (r = damc_energy(m, &batch, &err)) != NULL;
    else if (strcmp(s, "run") == 0) ok = (r = damc_run(m, &batch, &opt, &err)) != NULL;
    else {
      DamcCheckReport *c = damc_check(m, 3, 4, &err);
      ok = c != NULL;
      if (c) {
        size_t len = strlen(rec->log);
        snprintf(rec->log + len, sizeof rec->log - len, " %s", damc_check_verdict(c));
      }
      damc_check_free(c);
    }
    step_done(rec, s, ok, &err);
    record_results(rec, r);
    damc_results_free(r);
  }
  damc_model_free(m);
}

static void compare(const char *steps, const Record *with, const Record *without) {
  CHECK(strstr(with->log, "FAILED") == NULL);
  CHECK_STREQ(with->log, without->log);
  CHECK_EQ(with->count, without->count);
  bool same = with->count == without->count &&
              memcmp(with->values, without->values, with->count * sizeof(double)) == 0;
  if (!same) fprintf(stderr, "sequence '%s': the results differ with the cache on\n", steps);
  CHECK(same);
}

static const char *const sequences[] = {
    "c32 eval check f64 eval run energy eval run",  // the tester's: f32, check, then f64
    "c32 check f64 run run run energy",
    "c32 run check f64 run eval",                    // Model.run(); check(); run(precision="f64")
    "c64 eval check f32 eval run energy f64 energy eval",
    "c32 energy check f64 energy eval run f32 eval energy",
    "c64 check f32 run check f64 eval",
};
enum { NSEQ = sizeof sequences / sizeof sequences[0] };

// Each sequence with the cache on: in the fresh directory (`pass` 0: kernels compiled and
// stored), then with its entries (1: loaded); against the same sequence without the cache.
static void test_sequences(Record *reference, int pass) {
  for (int i = 0; i < NSEQ; i++) {
    Record with;
    sequence(sequences[i], true, &with);
    if (pass == 0 && i == 0) {
      // The fresh directory holds entries now: the cache was really on.
      DIR *d = opendir(cache_dir);
      int entries = 0;
      for (struct dirent *e; d && (e = readdir(d));) entries += strncmp(e->d_name, "kernels-", 8) == 0;
      if (d) closedir(d);
      CHECK(entries > 0);
    }
    compare(sequences[i], &with, &reference[i]);
    free(with.values);
  }
}

// The entry at `path` as its shared object and its key (the trailer, kcache.c).
typedef struct {
  char magic[8];
  uint64_t so_len, key_len, sum;
} Trailer;

static bool read_entry(const char *path, unsigned char **data, Trailer *t) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  *data = malloc((size_t)size);
  bool ok = fread(*data, 1, (size_t)size, f) == (size_t)size && size > (long)sizeof *t;
  fclose(f);
  if (ok) memcpy(t, *data + size - sizeof *t, sizeof *t);
  return ok && memcmp(t->magic, "DAMCKC01", 8) == 0;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// Every entry whose key names the eval kernel alone is given the code of an entry that
// holds another kernel (the step kernel), with its own key and a valid checksum: a key that
// does not describe the module's contents. Returns the number of entries so replaced.
static int forge_entries(void) {
  DIR *d = opendir(cache_dir);
  if (!d) return 0;
  char other[512] = "";
  char evals[16][512];
  int nevals = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, "kernels-", 8) != 0) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
    unsigned char *data;
    Trailer t;
    if (!read_entry(path, &data, &t)) continue;
    char *key = strndup((char *)data + t.so_len, t.key_len);
    if (strstr(key, "\nkernels damc_eval\n") && nevals < 16) snprintf(evals[nevals++], 512, "%s", path);
    else if (strstr(key, "\nkernels damc_rhs\n") && strstr(key, "precision f64")) snprintf(other, sizeof other, "%s", path);
    free(key);
    free(data);
  }
  closedir(d);
  if (!*other) return 0;
  unsigned char *so;
  Trailer ts;
  if (!read_entry(other, &so, &ts)) return 0;
  int forged = 0;
  for (int i = 0; i < nevals; i++) {
    unsigned char *data;
    Trailer t;
    if (!read_entry(evals[i], &data, &t)) continue;
    Trailer nt = t;
    nt.so_len = ts.so_len;
    nt.sum = fnv(fnv(0xcbf29ce484222325ull, so, ts.so_len), data + t.so_len, t.key_len);
    FILE *f = fopen(evals[i], "wb");
    if (f) {
      fwrite(so, 1, ts.so_len, f);
      fwrite(data + t.so_len, 1, t.key_len, f);
      fwrite(&nt, sizeof nt, 1, f);
      forged += fclose(f) == 0;
    }
    free(data);
  }
  free(so);
  return forged;
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(cache_dir, sizeof cache_dir, "%s/damc-cache-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(cache_dir)) {
    perror("mkdtemp");
    return 1;
  }
  setenv("DAMC_CACHE_DIR", cache_dir, 1);  // read once, at the first compilation
  for (size_t i = 0; i < (size_t)K * N; i++) xi[i] = (i * 7919 % 3) ? 1 : -1;
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < N; i++) states[b * N + i] = xi[(b * 3 % K) * N + i] * (i % 5 ? 1 : -0.5);

  Record reference[NSEQ];
  for (int i = 0; i < NSEQ; i++) {
    sequence(sequences[i], false, &reference[i]);
    CHECK(strstr(reference[i].log, "FAILED") == NULL);
  }
  test_sequences(reference, 0);
  test_sequences(reference, 1);
  int forged = forge_entries();
  CHECK(forged > 0);
  test_sequences(reference, 2);  // the forged entries rejected (and rebuilt)
  test_sequences(reference, 3);

  for (int i = 0; i < NSEQ; i++) free(reference[i].values);
  // The directory and its entries.
  DIR *d = opendir(cache_dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(cache_dir);
  return check_report("test_api_cache");
}

// The compiler's random numbers: splitmix64 (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014), a small generator whose stream is the same on
// every platform, so that sampled states, patterns and sweep orders follow from a seed alone.
// Each user seeds its own streams (damc check per layer and purpose, damc capacity per K,
// the single-unit rule per sample); the runtime, which never sees the compiler, keeps its own.
#ifndef DAMC_SUPPORT_RNG_H
#define DAMC_SUPPORT_RNG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t s;
} Rng;

static inline uint64_t rng_next(Rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform on [0, 1), 53 random bits.
static inline double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

// Uniform on 0 .. n-1 (n >= 1; the modulo bias is below n / 2^64).
static inline size_t rng_below(Rng *r, size_t n) { return (size_t)(rng_next(r) % (uint64_t)n); }

// Standard normal, by Box-Muller from two uniforms (the first taken as 1 - u, in (0, 1]).
static inline double rng_normal(Rng *r) {
  double u = 1.0 - rng_uniform(r), v = rng_uniform(r);
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

#endif

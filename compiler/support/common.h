// Common definitions for every compiler layer: checked allocation and internal-error macros.
//
// The compiler treats broken invariants as internal errors: it prints where and aborts; the
// damc driver turns the abort into exit status 70. Running out of memory is the machine's
// limit, not a fault: it prints the size that could not be had and aborts with
// damc_out_of_memory set, which the driver turns into exit status 1. User errors never come
// here; they go to a DiagSink.
#ifndef DAMC_COMMON_H
#define DAMC_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

// Prints "damc: internal error at FILE:LINE: MSG" and aborts.
_Noreturn void damc_internal_error(const char *file, int line, const char *msg);

#define DAMC_ASSERT(cond)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      damc_internal_error(__FILE__, __LINE__, "assertion failed: " #cond);     \
  } while (0)
#define damc_unreachable() damc_internal_error(__FILE__, __LINE__, "unreachable")

// Set (once, before abort) when an allocation failed for want of memory.
extern volatile sig_atomic_t damc_out_of_memory;

// Prints "damc: error: out of memory: cannot allocate BYTES bytes (X GB) ..." and aborts
// with damc_out_of_memory set.
_Noreturn void damc_fail_out_of_memory(size_t bytes);

// Allocation that never returns NULL: failure is damc_fail_out_of_memory.
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

// `v` in the fewest significant digits (at most 17) that read back as exactly `v`, so a
// message never shows 435 for 434.99999999999994; "inf", "-inf" and "nan" otherwise.
// Returns `buf`.
typedef struct {
  char text[32];
} NumText;
const char *number_text(double v, NumText *buf);

// Seconds on a monotonic clock, for timing.
double clock_seconds(void);

// Grows `*items` (an array of `*cap` elements of `elem` bytes) to hold at least `need`.
void grow_array(void **items, size_t *cap, size_t need, size_t elem);
#define VEC_PUSH(items, count, cap, value)                                     \
  do {                                                                         \
    grow_array((void **)&(items), &(cap), (count) + 1, sizeof(*(items)));      \
    (items)[(count)++] = (value);                                              \
  } while (0)

#endif

// Errors: the status codes and the message buffer every fallible damrt function fills.
//
// The runtime never prints, never exits and never aborts: it runs inside user computations
// (JIT-compiled kernels, the damc command line, later a C API and a Python module), so a
// failure comes back to the caller as a status and a message. A fallible function takes a
// `DamrtError *err` as its last parameter and returns either a DamrtStatus (DAMRT_OK on
// success) or a pointer (NULL on failure). On failure it sets `err->code` to the same status
// and writes one self-contained message into `err->message`; on success it leaves `*err`
// unchanged. `err` may be NULL when the caller only wants the status.
//
// Messages follow the compiler's wording rules: lowercase, no trailing period, and they
// start with what they are about, for example
//   weights.npz: tensor 'Xi': dtype '<c16' (complex) is not supported; use float32 or float64
// so the driver can print them after "error: " without adding context.
#ifndef DAMRT_ERROR_H
#define DAMRT_ERROR_H

typedef enum {
  DAMRT_OK = 0,
  DAMRT_E_IO,           // a file could not be opened, read, written or renamed
  DAMRT_E_FORMAT,       // the bytes are not a valid .npy or .npz (corrupt, truncated)
  DAMRT_E_UNSUPPORTED,  // valid, but uses a dtype, rank or feature the runtime refuses
  DAMRT_E_NOT_FOUND,    // no tensor with the requested key
  DAMRT_E_ARGUMENT,     // the caller passed something invalid (bad shape, BLAS dimensions)
  DAMRT_E_NOMEM,        // an allocation failed
  DAMRT_E_VALUE,        // a tensor holds NaN or Inf where finite values are required
} DamrtStatus;

enum { DAMRT_ERROR_MESSAGE_SIZE = 512 };

typedef struct {
  DamrtStatus code;
  char message[DAMRT_ERROR_MESSAGE_SIZE];  // NUL-terminated; long messages are truncated
} DamrtError;

// Sets `err` (when not NULL) to `code` and the printf-formatted message, and returns `code`,
// so a failing path can `return damrt_error_set(err, DAMRT_E_IO, "...", ...);`.
__attribute__((format(printf, 3, 4))) DamrtStatus damrt_error_set(DamrtError *err,
                                                                  DamrtStatus code,
                                                                  const char *fmt, ...);

// A short constant name for `code` ("ok", "i/o error", "unsupported", ...), for logs and
// the C API.
const char *damrt_status_name(DamrtStatus code);

#endif

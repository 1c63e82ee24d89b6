// damrt: the runtime library of damc. It holds and moves tensors for the JIT-compiled
// kernels and the damc command line, and never depends on the compiler or on LLVM.
//
// Modules, one header each:
//   damrt_error.h   status codes and the DamrtError message buffer
//   damrt_tensor.h  aligned float32/float64 tensors of rank 0..4, conversion, NaN/Inf checks
//   damrt_npy.h     reading and writing NumPy .npy files
//   damrt_npz.h     reading and writing NumPy .npz archives (libzip)
//   damrt_output.h  output files written whole or not at all (temporary file, rename)
//   damrt_file.h    whole text files with a size limit; whether two paths are one file
//
// There is no global mutable state but one: the table of pending temporary files of
// damrt_output.h, which signal handlers read (it is lock-free). Every other function works
// only on what it is given, so several models may run in one process, on several threads,
// as long as no object is used by two threads at once.
#ifndef DAMRT_H
#define DAMRT_H

#include "damrt_error.h"
#include "damrt_file.h"
#include "damrt_npy.h"
#include "damrt_npz.h"
#include "damrt_output.h"
#include "damrt_tensor.h"

#endif

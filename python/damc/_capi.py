"""The C API of include/damc.h through ctypes: its types, and libdamc.so loaded once.

The library is found, in order, at $DAMC_LIBRARY, beside the package (the build tree's
build/lib, or the installed lib directory: _paths.py, written by CMake), then by the
system's loader (ctypes.util.find_library). Every call goes through a ctypes.CDLL, which
releases the GIL for the duration of the call: other Python threads run while kernels do.
"""
import ctypes
import ctypes.util
import os

try:
    from . import _paths
except ImportError:  # the sources, not configured by CMake
    _paths = None

c_size_t = ctypes.c_size_t
c_double = ctypes.c_double
c_int = ctypes.c_int
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p

DAMC_F32, DAMC_F64 = 1, 2
METHODS = {"dopri5": 0, "rk4": 1, "euler": 2, "async": 3, "iterate": 4}
ORDERS = {"random": 0, "sequential": 1}
# DamcPhrase: the means the messages name (damc_set_phrase).
(DAMC_PHRASE_WEIGHT, DAMC_PHRASE_WEIGHTS, DAMC_PHRASE_DIM, DAMC_PHRASE_DIM_SIZE,
 DAMC_PHRASE_DIM_ORIGIN, DAMC_PHRASE_PARAM, DAMC_PHRASE_PARAM_VALUE, DAMC_PHRASE_F64,
 DAMC_PHRASE_DT, DAMC_PHRASE_TOL, DAMC_PHRASE_MAX_STEPS, DAMC_PHRASE_DOPRI5, DAMC_PHRASE_ASYNC,
 DAMC_PHRASE_EULER, DAMC_PHRASE_EVAL, DAMC_PHRASE_CHECK, DAMC_PHRASE_EXPLAIN) = range(17)


class DamcError(ctypes.Structure):
    _fields_ = [("status", c_int), ("message", c_void_p)]


class DamcArray(ctypes.Structure):
    _fields_ = [("rank", c_int), ("shape", c_size_t * 4), ("data", c_void_p), ("dtype", c_int)]


class DamcBatch(ctypes.Structure):
    _fields_ = [("states", ctypes.POINTER(DamcArray)), ("inputs", ctypes.POINTER(DamcArray)),
                ("clamps", ctypes.POINTER(DamcArray))]


class DamcProgress(ctypes.Structure):
    _fields_ = [("step", c_size_t), ("max_steps", c_size_t), ("t", c_double),
                ("energy", c_double), ("converged", c_size_t), ("batch", c_size_t),
                ("elapsed", c_double), ("remaining", c_double), ("done", c_int)]


PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, ctypes.POINTER(DamcProgress))


class DamcRunOptions(ctypes.Structure):
    _fields_ = [("method", c_int), ("dt", c_double), ("rtol", c_double), ("atol", c_double),
                ("tol", c_double), ("max_steps", c_size_t), ("noise_T", c_double),
                ("seed", ctypes.c_uint64), ("trace", c_void_p), ("progress", PROGRESS_FN),
                ("progress_user", c_void_p), ("cancel", ctypes.POINTER(c_int)),
                ("order", c_int)]


class DamcCheckItem(ctypes.Structure):
    _fields_ = [("check", c_char_p), ("subject", c_char_p), ("where", c_char_p),
                ("verdict", c_char_p), ("reason", c_char_p)]


class DamcDiagnostic(ctypes.Structure):
    _fields_ = [("file", ctypes.c_char * 256), ("line", ctypes.c_uint),
                ("column", ctypes.c_uint), ("severity", ctypes.c_char * 16),
                ("message", ctypes.c_char * 1024)]


_E = ctypes.POINTER(DamcError)
_A = ctypes.POINTER(DamcArray)

# name: (restype, argtypes)
_SIGNATURES = {
    "damc_error_clear": (None, [_E]),
    "damc_model_from_file": (c_void_p, [c_char_p, _E]),
    "damc_model_from_string": (c_void_p, [c_char_p, c_char_p, _E]),
    "damc_model_free": (None, [c_void_p]),
    "damc_layer_count": (c_int, [c_void_p]),
    "damc_layer_name": (c_char_p, [c_void_p, c_int]),
    "damc_layer_size": (c_size_t, [c_void_p, c_int]),
    "damc_bind_weight": (c_int, [c_void_p, c_char_p, _A, c_char_p, _E]),
    "damc_rebind_weight": (c_int, [c_void_p, c_char_p, _A, c_char_p, _E]),
    "damc_set_param": (c_int, [c_void_p, c_char_p, c_double, _E]),
    "damc_model_warnings": (c_char_p, [c_void_p]),
    "damc_set_dim": (c_int, [c_void_p, c_char_p, ctypes.c_int64, _E]),
    "damc_set_phrase": (c_int, [c_void_p, c_int, c_char_p, _E]),
    "damc_compile": (c_int, [c_void_p, c_int, _E]),
    "damc_use_precision": (c_int, [c_void_p, c_int, _E]),
    "damc_model_compile_count": (ctypes.c_uint, [c_void_p]),
    "damc_eval": (c_void_p, [c_void_p, ctypes.POINTER(DamcBatch), _E]),
    "damc_energy": (c_void_p, [c_void_p, ctypes.POINTER(DamcBatch), _E]),
    "damc_hvp": (c_void_p, [c_void_p, ctypes.POINTER(DamcBatch), _A, _E]),
    "damc_jvp": (c_void_p, [c_void_p, ctypes.POINTER(DamcBatch), _A, _E]),
    "damc_run": (c_void_p, [c_void_p, ctypes.POINTER(DamcBatch),
                            ctypes.POINTER(DamcRunOptions), _E]),
    "damc_results_count": (c_size_t, [c_void_p]),
    "damc_results_at": (c_char_p, [c_void_p, c_size_t, _A]),
    "damc_results_warning": (c_char_p, [c_void_p]),
    "damc_result_copy": (c_int, [c_void_p, c_char_p, c_void_p, c_int, c_size_t, _E]),
    "damc_results_free": (None, [c_void_p]),
    "damc_explain": (c_char_p, [c_void_p, c_int]),
    "damc_weight_count": (c_int, [c_void_p]),
    "damc_weight_name": (c_char_p, [c_void_p, c_int]),
    "damc_param_count": (c_int, [c_void_p]),
    "damc_param_name": (c_char_p, [c_void_p, c_int]),
    "damc_check": (c_void_p, [c_void_p, ctypes.c_uint64, c_int, _E]),
    "damc_check_count": (c_size_t, [c_void_p]),
    "damc_check_item": (None, [c_void_p, c_size_t, ctypes.POINTER(DamcCheckItem)]),
    "damc_check_verdict": (c_char_p, [c_void_p]),
    "damc_check_json": (c_char_p, [c_void_p]),
    "damc_check_free": (None, [c_void_p]),
    "damc_error_diagnostic_count": (c_size_t, [_E]),
    "damc_error_diagnostic": (c_int, [_E, c_size_t, ctypes.POINTER(DamcDiagnostic)]),
}


def _candidates():
    env = os.environ.get("DAMC_LIBRARY")
    if env:
        yield env
        return
    if _paths is not None:
        here = os.path.dirname(os.path.abspath(__file__))
        yield os.path.normpath(os.path.join(here, _paths.LIBRARY))
    found = ctypes.util.find_library("damc")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append(f"{path}: {e}")
    else:
        raise ImportError("damc: cannot load libdamc.so (set DAMC_LIBRARY to its path): " +
                          ("; ".join(errors) or "not found"))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()

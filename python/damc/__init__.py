"""damc from Python: Dense Associative Memory models compiled to native kernels.

    import damc
    m = damc.Model.from_file("model_b.dam")          # or damc.Model(text)
    m.bind(Xi=patterns, beta=0.05)                    # weights (arrays) and params (numbers)
    out = m.run(init={"v": cues}, method="dopri5")    # float32 kernels by default
    out["x_v"], out["E"], out["converged"]            # NumPy float64 arrays, batch-major
    m.eval(state={"v": cues}, precision="f64")
    print(m.explain()); m.check().verdict

A thin layer over the C API of libdamc.so (include/damc.h) through ctypes: no compiler is
needed at import. Weights are read in place by the kernels of their dtype (float32 or
float64, C order; other arrays are converted once, at bind). Kernels are compiled once per
precision and kept: binding new weights of the same shape, or new params, compiles nothing
(Model.compile_count). ctypes releases the GIL during every C call, so other threads run
while the kernels do. docs/python.md documents it all.
"""
import ctypes
import itertools
import json
import numbers
import operator
import os
import signal
import sys
import threading
import warnings
from typing import NamedTuple

import numpy as np

from . import _capi
from ._capi import lib

__all__ = ["Model", "ModelError", "ModelWarning", "Diagnostic", "CheckReport", "CheckItem", "__version__"]
__version__ = "0.2.0"

_PRECISIONS = {"f32": _capi.DAMC_F32, "float32": _capi.DAMC_F32,
               "f64": _capi.DAMC_F64, "float64": _capi.DAMC_F64}
_DTYPE_CODE = {np.dtype(np.float32): _capi.DAMC_F32, np.dtype(np.float64): _capi.DAMC_F64}
# What the C library's messages name as the means to give a weight or a param, to ask for
# float64 and so on (damc_set_phrase; "{name}" and "{value}" are filled in): this module's.
# A dim has no means here (None): its size comes from the weights or the model.
_PHRASES = {
    _capi.DAMC_PHRASE_WEIGHT: "Model.bind({name}=ARRAY)",
    _capi.DAMC_PHRASE_WEIGHTS: "with Model.bind",
    _capi.DAMC_PHRASE_DIM_SIZE: None,
    _capi.DAMC_PHRASE_PARAM: "Model.bind({name}={value})",
    _capi.DAMC_PHRASE_PARAM_VALUE: "Model.bind({name}=VALUE)",
    _capi.DAMC_PHRASE_F64: 'precision="f64"',
    _capi.DAMC_PHRASE_DT: "dt",
    _capi.DAMC_PHRASE_TOL: "tol",
    _capi.DAMC_PHRASE_MAX_STEPS: "max_steps",
    _capi.DAMC_PHRASE_DOPRI5: 'method="dopri5"',
    _capi.DAMC_PHRASE_ASYNC: 'method="async"',
    _capi.DAMC_PHRASE_EULER: 'method="euler"',
    _capi.DAMC_PHRASE_EVAL: "Model.eval()",
    _capi.DAMC_PHRASE_CHECK: "Model.check()",
    _capi.DAMC_PHRASE_EXPLAIN: "Model.explain()",
}


class Diagnostic(NamedTuple):
    """One located message: file (the model file, or "" when not located in a model's
    text, as for a tensor), line and column (1-based; 0 when not located), severity
    ("error", "warning" or "note") and the message."""
    file: str
    line: int
    column: int
    severity: str
    message: str


class ModelError(Exception):
    """The model or a tensor is wrong (status 1 of the C API): `message` is the whole
    diagnostics text (with source excerpts), `diagnostics` the records (Diagnostic)."""

    def __init__(self, message, diagnostics=()):
        super().__init__(message.rstrip("\n"))
        self.message = message
        self.diagnostics = list(diagnostics)


class ModelWarning(UserWarning):
    """The params as set make a Lagrangian provably not convex (E need not decrease) or put a
    prelude Lagrangian's argument outside its rule, where the defaults did not: raised with
    Python's warnings module when the model is compiled and when bind sets a param after,
    the text located in the model as a ModelError's (damc_model_warnings)."""


def _raise(err):
    """Raises the error filled in `err` (a DamcError): ModelError (status 1), ValueError
    (2: a bad argument) or RuntimeError (anything else); frees it."""
    text = ctypes.string_at(err.message).decode("utf-8", "replace") if err.message else ""
    records = []
    n = lib.damc_error_diagnostic_count(ctypes.byref(err))
    d = _capi.DamcDiagnostic()
    for i in range(n):
        if lib.damc_error_diagnostic(ctypes.byref(err), i, ctypes.byref(d)):
            records.append(Diagnostic(d.file.decode("utf-8", "replace"), d.line, d.column,
                                      d.severity.decode(), d.message.decode("utf-8", "replace")))
    status = err.status
    lib.damc_error_clear(ctypes.byref(err))
    if status == 1:
        raise ModelError(text or "the model or a tensor is wrong", records)
    if status == 2:
        raise ValueError(text.rstrip("\n") or "bad argument")
    raise RuntimeError(text.rstrip("\n") or f"damc: internal error (status {status})")


# Arguments follow Python's conventions: a value of the wrong type raises TypeError, a value
# of the right type that the argument cannot take raises ValueError. An integer too large
# for its argument is such a value (ValueError, not OverflowError: Python's documentation
# of OverflowError keeps that for arithmetic, raised for out-of-range integers only "for
# historical reasons"). A bool is not taken for a number: seed=True is a mistake.

def _choice(value, choices, what):
    """`value`, a str, looked up in `choices` (a dict)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is a str, not {type(value).__name__}")
    try:
        return choices[value]
    except KeyError:
        raise ValueError(f"{what} {value!r}: one of {', '.join(map(repr, choices))}") from None


def _precision(precision):
    return _choice(precision, _PRECISIONS, "precision")


def _real(value, what):
    """`value`, a real number (int, float, Fraction, a NumPy integer or float), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} is a number, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{what}: a number beyond the range of a float") from None


def _integer(value, what, high, high_text):
    """`value`, an integer (int or a NumPy integer) from 0 to `high`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} is an integer, not {type(value).__name__}")
    value = operator.index(value)
    if not 0 <= value <= high:
        raise ValueError(f"{what} is an integer from 0 to {high_text}")
    return value


def _name(value, what):
    """`value`, the name of a layer, weight or param: a str."""
    if not isinstance(value, str):
        raise TypeError(f"{what}: names are str, not {type(value).__name__}")
    return value


def _as_array(value, what, keep_f32=True):
    """`value` as a C-ordered float32 or float64 NumPy array (float32 kept when given, every
    other dtype converted to float64); copies only when needed."""
    try:
        a = np.asarray(value)
    except Exception as e:
        raise TypeError(f"{what}: not an array ({e})") from None
    if a.dtype == np.float32 and keep_f32:
        dtype = np.float32
    elif a.dtype == np.float64:
        dtype = np.float64
    else:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{what}: an array of {a.dtype} is not numeric "
                            "(give numbers: any integer, bool or float dtype)")
        dtype = np.float64
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim > 4:
        raise ValueError(f"{what}: an array of rank {a.ndim}; at most 4 dimensions")
    return a


def _fill(arr, a):
    """Points the DamcArray `arr` at the NumPy array `a` (kept alive by the caller)."""
    arr.rank = a.ndim
    for i, n in enumerate(a.shape):
        arr.shape[i] = n
    arr.data = a.ctypes.data
    arr.dtype = _DTYPE_CODE[a.dtype]


class CheckItem(NamedTuple):
    check: str
    subject: str
    where: str
    verdict: str
    reason: str


class CheckReport:
    """damc check's report: `verdict` ("pass", "warn" or "fail": the worst), `items`
    (CheckItem), and `json` (the report as `damc check --json` writes it, parsed)."""

    def __init__(self, verdict, items, json_text):
        self.verdict = verdict
        self.items = items
        self.json = json.loads(json_text)

    def __repr__(self):
        return f"<damc.CheckReport {self.verdict}: {len(self.items)} items>"


class _Progress:
    """The progress reporter of a run: prints to stderr (progress=True) or calls the
    caller's function with a dict; a KeyboardInterrupt during the run cancels it. One C
    callback serves every run (no closure made per call): the run's reporter is found by
    the key passed as the callback's user pointer."""

    active = {}
    _keys = itertools.count(1)

    def __init__(self, report):
        self.report = report
        self.cancel = ctypes.c_int(0)
        self.interrupted = False
        self.error = None
        self.key = next(_Progress._keys)  # itertools.count: atomic under the GIL

    def __enter__(self):
        _Progress.active[self.key] = self
        # Ctrl-C: Python delivers SIGINT as a KeyboardInterrupt at the next bytecode, which
        # while the run goes on is the start of a progress callback, where ctypes can only
        # print it and go on. So the main thread's handler only asks the run to stop; the
        # KeyboardInterrupt is raised once the run has returned.
        self._old_handler = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old_handler = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def _interrupt(self, signum, frame):
        self.interrupted = True
        self.cancel.value = 1

    def __exit__(self, *exc):
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
        del _Progress.active[self.key]

    def relay(self, p):
        try:
            if not self.report:
                return  # only here to let Ctrl-C cancel the run
            p = p.contents
            info = {"step": p.step, "max_steps": p.max_steps, "t": p.t, "energy": p.energy,
                    "converged": p.converged, "batch": p.batch, "elapsed": p.elapsed,
                    "remaining": p.remaining, "done": bool(p.done)}
            if self.report is True:
                sys.stderr.write(f"\rdamc: step {info['step']}/{info['max_steps']}, "
                                 f"{info['converged']}/{info['batch']} converged, "
                                 f"E = {info['energy']:.6g}, {info['elapsed']:.1f} s" +
                                 ("\n" if info["done"] else ""))
                sys.stderr.flush()
            else:
                self.report(info)
        except KeyboardInterrupt:
            self.interrupted = True
            self.cancel.value = 1
        except BaseException as e:  # the caller's function failed: stop, raise it after
            self.error = e
            self.cancel.value = 1


def _relay(user, p):
    try:
        reporter = _Progress.active.get(user)
        if reporter is not None:
            reporter.relay(p)
    except KeyboardInterrupt:
        reporter = _Progress.active.get(user)
        if reporter is not None:
            reporter.interrupted = True
            reporter.cancel.value = 1


_RELAY = _capi.PROGRESS_FN(_relay)


class Model:
    """A model (the text of a .dam file) with its weights, params and compiled kernels.

    Model(text, name="<string>") or Model.from_file(path); a wrong model raises
    ModelError with its located diagnostics. Models are independent of each other."""

    def __init__(self, text, name="<string>", *, _path=None):
        if _path is None and not isinstance(text, str):
            raise TypeError(f"Model(text): the model's text as a str, not {type(text).__name__}"
                            " (Model.from_file reads a file)")
        if not isinstance(name, str):
            raise TypeError("Model(text, name): name is a str")
        for what, value in (("text", text), ("name", name)):
            # C strings end at the first NUL: the rest would be dropped without a word.
            if isinstance(value, str) and "\0" in value:
                raise ValueError(f"Model {what}: a NUL character at offset {value.index(chr(0))}")
        self._text = text
        self._name = name
        self._path = _path
        self._ptr = None
        self._weights = {}   # name -> the array the model reads (kept alive)
        self._params = {}    # name -> value
        self._open()
        self._layers = [lib.damc_layer_name(self._ptr, a).decode()
                        for a in range(lib.damc_layer_count(self._ptr))]
        self._weight_names = [lib.damc_weight_name(self._ptr, i).decode()
                              for i in range(lib.damc_weight_count(self._ptr))]
        self._param_names = [lib.damc_param_name(self._ptr, i).decode()
                             for i in range(lib.damc_param_count(self._ptr))]
        self._index = {n: a for a, n in enumerate(self._layers)}
        self._nlayers = len(self._layers)
        # Per layer: states, inputs, clamps and directions (_per_layer's blocks 0 to 3).
        self._arrays = (_capi.DamcArray * (4 * self._nlayers + 1))()
        self._batch = _capi.DamcBatch()

    @classmethod
    def from_file(cls, path):
        """The model in file `path` (a .dam file): a str, bytes or a path-like object."""
        path = os.fsdecode(path)  # TypeError for anything else
        if "\0" in path:
            raise ValueError(f"Model.from_file: a NUL character at offset {path.index(chr(0))} "
                             "of the path")
        return cls(None, path, _path=path)

    def _open(self):
        err = _capi.DamcError()
        if self._path is not None:
            ptr = lib.damc_model_from_file(os.fsencode(self._path), ctypes.byref(err))
        else:
            ptr = lib.damc_model_from_string(self._name.encode(), self._text.encode(),
                                             ctypes.byref(err))
        if not ptr:
            _raise(err)
        self._ptr = ptr
        for phrase, text in _PHRASES.items():
            if not lib.damc_set_phrase(ptr, phrase, text and text.encode(), ctypes.byref(err)):
                _raise(err)
        self._compiled = None  # the precision selected last, or None before any compile
        self._warned = ""  # the warnings about the params as set last raised
        self._bound_shapes = {}

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr and lib is not None:
            lib.damc_model_free(ptr)

    def close(self):
        """Frees the compiled kernels now (the model is unusable after)."""
        self.__del__()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _model(self):
        if not self._ptr:
            raise ValueError("the model is closed")
        return self._ptr

    def _warn_params(self):
        """Raises ModelWarning when the warnings about the params as set changed to a text."""
        text = (lib.damc_model_warnings(self._ptr) or b"").decode("utf-8", "replace")
        if text and text != self._warned:
            warnings.warn(text.rstrip("\n"), ModelWarning, stacklevel=3)
        self._warned = text

    # ---- What the model declares ----

    @property
    def layers(self):
        """The layers' names, in declaration order."""
        return list(self._layers)

    @property
    def weights(self):
        """The weights' names (what bind takes as arrays)."""
        return list(self._weight_names)

    @property
    def params(self):
        """The params' names (what bind takes as numbers)."""
        return list(self._param_names)

    def layer_size(self, layer):
        """The number of neurons of `layer` (0 while the weights that size it are unbound)."""
        return lib.damc_layer_size(self._model(), self._layer_index(layer))

    @property
    def compile_count(self):
        """How many times kernels were compiled for this model (all precisions)."""
        return lib.damc_model_compile_count(self._model())

    def _layer_index(self, layer):
        try:
            return self._index[_name(layer, "layer")]
        except KeyError:
            raise ValueError(f"model has no layer {layer!r} (its layers: "
                             f"{', '.join(self._layers)})") from None

    # ---- Binding ----

    def bind(self, weights=None, /, **named):
        """Binds weights (arrays: any dtype, C or Fortran order) and params (numbers) by
        name: bind(Xi=patterns, beta=0.05), or bind({"Xi": patterns}). A weight bound again
        with the same shape replaces the old one without compiling anything; with another
        shape, the model starts again (kernels compiled at the next call).

        A float32 or float64 C-ordered array is read in place by the kernels of its dtype:
        keep it unchanged, or bind it again after changing it. Raises ModelError for a
        tensor the model refuses (shape, NaN, symmetry), ValueError for an unknown name or a
        param that is not finite, TypeError for a param that is not a real number."""
        if weights is not None and not isinstance(weights, dict):
            raise TypeError(f"bind: weights as a dict of name -> array (or as keywords), not "
                            f"{type(weights).__name__}")
        items = dict(weights or {})
        items.update(named)
        err = _capi.DamcError()
        arrays = {}
        for name, value in items.items():
            _name(name, "bind")
            if name in self._param_names and name not in self._weight_names:
                v = _real(value, f"bind: param '{name}'")
                # NaN or an infinity: a ValueError, with the engine's message.
                if not lib.damc_set_param(self._model(), name.encode(), v, ctypes.byref(err)):
                    _raise(err)
                self._params[name] = v
                if self._compiled is not None:
                    self._warn_params()
            elif name in self._weight_names:
                arrays[name] = _as_array(value, f"weight '{name}'")
            else:
                raise ValueError(f"bind: model has no weight or param '{name}' (weights: "
                                 f"{', '.join(self._weight_names) or 'none'}; params: "
                                 f"{', '.join(self._param_names) or 'none'})")
        if any(n in self._bound_shapes and self._bound_shapes[n] != a.shape
               for n, a in arrays.items()):
            # A new shape: a new model (the kernels are compiled again at the next call), with
            # the params and weights bound before and the new ones. All or nothing: when a
            # weight is refused, the model is left as it was.
            saved = (self._ptr, self._compiled, self._bound_shapes, self._weights)
            merged = dict(self._weights)
            merged.update(arrays)
            try:
                self._ptr = None
                self._open()
                self._weights = {}
                for name, v in self._params.items():
                    if not lib.damc_set_param(self._ptr, name.encode(), v, ctypes.byref(err)):
                        _raise(err)
                self._bind_arrays(merged, err)
            except BaseException:
                if self._ptr:
                    lib.damc_model_free(self._ptr)
                self._ptr, self._compiled, self._bound_shapes, self._weights = saved
                raise
            lib.damc_model_free(saved[0])
            return self
        self._bind_arrays(arrays, err)
        return self

    def _bind_arrays(self, arrays, err):
        ptr = self._model()
        arr = _capi.DamcArray()
        for name, a in arrays.items():
            _fill(arr, a)
            fn = lib.damc_rebind_weight if name in self._bound_shapes else lib.damc_bind_weight
            # Messages name the array by the call that gave it: "Model.bind(b=...): weight 'b'".
            origin = f"Model.bind({name}=...)".encode()
            if not fn(ptr, name.encode(), ctypes.byref(arr), origin, ctypes.byref(err)):
                _raise(err)
            self._weights[name] = a
            self._bound_shapes[name] = a.shape

    def _select(self, precision):
        p = _precision(precision)
        if self._compiled != p:
            err = _capi.DamcError()
            first = self._compiled is None
            if not lib.damc_use_precision(self._model(), p, ctypes.byref(err)):
                _raise(err)
            self._compiled = p
            if first:
                self._warn_params()
        return self._ptr

    def compile(self, precision="f32"):
        """Compiles the kernels of `precision` now (eval and run do it when first needed)."""
        self._select(precision)
        return self

    # ---- Evaluation ----

    def _per_layer(self, values, block, what, keep):
        """Points block `block` of the model's DamcArrays at `values` (a dict layer ->
        array, or None); returns the pointer to pass, or None."""
        base = block * self._nlayers
        arrays = self._arrays
        for a in range(self._nlayers):
            arrays[base + a].data = None
        if values is None:
            return None
        if not isinstance(values, dict):
            raise TypeError(f"{what}: a dict of layer name -> array, not {type(values).__name__}")
        if not values:
            return None
        for layer, value in values.items():
            index = self._layer_index(layer)
            if value is None:
                continue
            a = _as_array(value, f"{what} of layer '{layer}'")
            if a.ndim not in (1, 2):
                raise ValueError(f"{what} of layer '{layer}': shape {list(a.shape)}; give [n] "
                                 "or [B, n]")
            keep.append(a)
            _fill(arrays[base + index], a)
        return ctypes.cast(ctypes.byref(arrays, base * ctypes.sizeof(_capi.DamcArray)),
                           ctypes.POINTER(_capi.DamcArray))

    def _batch_of(self, state, inputs, clamp, keep):
        b = self._batch
        b.states = self._per_layer(state, 0, "state", keep)
        b.inputs = self._per_layer(inputs, 1, "input", keep)
        b.clamps = self._per_layer(clamp, 2, "clamp", keep)
        return b

    @staticmethod
    def _results(r):
        """The results as a dict of float64 arrays (and the warning, if any); frees them."""
        out = {}
        try:
            arr = _capi.DamcArray()
            for i in range(lib.damc_results_count(r)):
                name = lib.damc_results_at(r, i, ctypes.byref(arr))
                shape = tuple(arr.shape[k] for k in range(arr.rank))
                a = np.empty(shape, np.float64)
                if a.size:
                    ctypes.memmove(a.ctypes.data, arr.data, a.nbytes)
                out[name.decode()] = a
            warning = lib.damc_results_warning(r)
            if warning:
                out["warning"] = warning.decode("utf-8", "replace")
        finally:
            lib.damc_results_free(r)
        return out

    def _apply(self, fn, state, inputs, precision):
        keep = []
        b = self._batch_of(state, inputs, None, keep)
        ptr = self._select(precision)
        err = _capi.DamcError()
        r = fn(ptr, ctypes.byref(b), ctypes.byref(err))
        if not r:
            _raise(err)
        return self._results(r)

    def eval(self, state=None, inputs=None, precision="f32"):
        """E and, per layer, g_A, u_A, dxdt_A (and E_A) at the states: a dict of float64
        arrays, batch-major ([B, ...] when some state or input is a batch [B, n])."""
        return self._apply(lib.damc_eval, state, inputs, precision)

    def energy(self, state=None, inputs=None, precision="f32"):
        """E alone at the states (the reduced energy when layers are eliminated): a float64
        array [B], or a 0-d array for one sample. One product per memory weight, where eval
        computes the whole dynamics; the same value as eval's E."""
        return self._apply(lib.damc_energy, state, inputs, precision)["E"]

    def _derivative(self, fn, state, direction, inputs, precision):
        keep = []
        b = self._batch_of(state, inputs, None, keep)
        dirs = self._per_layer(direction, 3, "direction", keep)
        ptr = self._select(precision)
        err = _capi.DamcError()
        r = fn(ptr, ctypes.byref(b), dirs, ctypes.byref(err))
        if not r:
            _raise(err)
        return self._results(r)

    def hvp(self, state, direction, inputs=None, precision="f32"):
        """The Hessian-vector products H_A d_A of every layer ("hvp_A")."""
        return self._derivative(lib.damc_hvp, state, direction, inputs, precision)

    def jvp(self, state, direction, inputs=None, precision="f32"):
        """The Jacobian-vector products of the right-hand side ("jvp_A")."""
        return self._derivative(lib.damc_jvp, state, direction, inputs, precision)

    def run(self, init=None, clamp=None, inputs=None, *, method="dopri5", dt=0.0, rtol=0.0,
            atol=0.0, tol=0.0, max_steps=0, noise_T=0.0, seed=0, order="random",
            progress=False, precision="f32"):
        """Integrates the dynamics from `init` (dict layer -> [n] or [B, n]; zeros where
        absent) to convergence: x_A and g_A per layer, E, steps and converged per sample
        (float64 arrays, batch-major; "warning" when some sample did not converge).

        clamp: dict layer -> mask ([n] or [B, n], nonzero/True = held fixed); method:
        "dopri5", "rk4", "euler", "iterate" or "async" (binary layers); dt, rtol, atol, tol,
        max_steps, noise_T, seed, order ("random" or "sequential", async only): as on the
        command line (0 = the default). progress: True (a line on stderr) or a function
        called with a dict at most ten times a second. Ctrl-C stops the run
        (KeyboardInterrupt)."""
        opts = _capi.DamcRunOptions()
        opts.method = _choice(method, _capi.METHODS, "run: method")
        opts.order = _choice(order, _capi.ORDERS, "run: order")
        # NaN, infinities and negative values: refused by the C API (a ValueError), which
        # says which option and why.
        opts.dt, opts.rtol, opts.atol, opts.tol, opts.noise_T = (
            _real(v, f"run: {name}") for name, v in (("dt", dt), ("rtol", rtol), ("atol", atol),
                                                     ("tol", tol), ("noise_T", noise_T)))
        # Checked here: ctypes would wrap larger integers silently.
        opts.max_steps = _integer(max_steps, "run: max_steps", 2 ** 63 - 1, "2**63 - 1")
        opts.seed = _integer(seed, "run: seed", 2 ** 64 - 1, "2**64 - 1")
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise TypeError(f"run: progress is True, False or a function, not {type(progress).__name__}")
        keep = []
        b = self._batch_of(init, inputs, clamp, keep)
        ptr = self._select(precision)
        reporter = _Progress(progress)
        opts.progress = _RELAY
        opts.progress_user = reporter.key
        opts.cancel = ctypes.pointer(reporter.cancel)
        err = _capi.DamcError()
        with reporter:
            r = lib.damc_run(ptr, ctypes.byref(b), ctypes.byref(opts), ctypes.byref(err))
        if reporter.interrupted:
            if r:
                lib.damc_results_free(r)
            else:
                lib.damc_error_clear(ctypes.byref(err))
            raise KeyboardInterrupt
        if reporter.error is not None:
            if r:
                lib.damc_results_free(r)
            else:
                lib.damc_error_clear(ctypes.byref(err))
            raise reporter.error
        if not r:
            _raise(err)
        return self._results(r)

    # ---- The compiler's views ----

    def explain(self, latex=False):
        """What `damc explain` prints: the derived L, g, H, energy, currents, dynamics."""
        if not isinstance(latex, (numbers.Integral, np.bool_)):  # an int too, as sorted's reverse
            raise TypeError(f"explain: latex is True or False, not {type(latex).__name__}")
        return lib.damc_explain(self._model(), 1 if latex else 0).decode()

    def check(self, seed=0, samples=0):
        """damc check on the model as bound so far (a float64 copy; the model is not
        changed): a CheckReport."""
        seed = _integer(seed, "check: seed", 2 ** 64 - 1, "2**64 - 1")
        samples = _integer(samples, "check: samples", 2 ** 31 - 1, "2**31 - 1 (0: the default, 20)")
        err = _capi.DamcError()
        r = lib.damc_check(self._model(), seed, samples, ctypes.byref(err))
        if not r:
            _raise(err)
        try:
            item = _capi.DamcCheckItem()
            items = []
            for i in range(lib.damc_check_count(r)):
                lib.damc_check_item(r, i, ctypes.byref(item))
                items.append(CheckItem(*(getattr(item, f).decode("utf-8", "replace")
                                         for f in CheckItem._fields)))
            return CheckReport(lib.damc_check_verdict(r).decode(), items,
                               lib.damc_check_json(r).decode("utf-8", "replace"))
        finally:
            lib.damc_check_free(r)

    def __repr__(self):
        return f"<damc.Model {self._name!r}: layers {', '.join(self._layers)}>"

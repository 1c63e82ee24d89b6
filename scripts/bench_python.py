#!/usr/bin/python3
"""The overhead of the Python module damc over the C API, at (N, K, B) = (64, 256, 1).

For eval and for a short run (method iterate, 10 steps), it times the same call two ways on
the same compiled model, alternating over rounds and keeping the best median of each:
  C API:  damc_eval / damc_run through ctypes with every argument built once beforehand, and
          damc_results_free (the C call as a C caller makes it, plus ctypes' ~1 µs);
  Python: Model.eval / Model.run with a new NumPy state each call (argument conversion,
          the call, the results copied into new NumPy arrays, errors checked).
Then 1000 evaluations with new states: no compile (Model.compile_count unchanged) and the
weights used in place (a change to the bound float32 array is what the kernels see).
It reports; it never fails on time (docs/performance.md has the figures and the target,
50 µs of overhead per call).

usage: PYTHONPATH=build/python /usr/bin/python3 scripts/bench_python.py [--rounds 7]"""
import ctypes
import statistics
import sys
import time

import numpy as np

import damc
from damc import _capi
from damc._capi import lib

N, K, B = 64, 256, 1
MODEL = """model bench;
dim N;
dim K;
param beta = 0.5;
layer v[N] { L = lagr_identity(v); tau = 1.0; }
layer h[K] { L = logsumexp(beta * h) / beta; tau = 0.05; }
synapse Xi[K, N] : h <-> v;
"""


def median_time(fn, calls):
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv):
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 7
    rng = np.random.default_rng(0)
    xi = np.sign(rng.standard_normal((K, N))).astype(np.float32)  # f32 kernels: in place
    m = damc.Model(MODEL, "bench.dam")
    m.bind(Xi=xi)
    states = rng.standard_normal((1000, N)).astype(np.float32)
    m.eval(state={"v": states[0]})
    m.run(init={"v": states[0]}, method="iterate", max_steps=10, tol=-1)

    # The same calls through the C API, arguments built once.
    ptr = m._ptr
    arrays = (_capi.DamcArray * 2)()
    arrays[0].rank, arrays[0].shape[0] = 1, N
    arrays[0].data, arrays[0].dtype = states[0].ctypes.data, _capi.DAMC_F32
    batch = _capi.DamcBatch(ctypes.cast(arrays, ctypes.POINTER(_capi.DamcArray)), None, None)
    opts = _capi.DamcRunOptions(method=_capi.METHODS["iterate"], max_steps=10, tol=-1)
    err = _capi.DamcError()
    pb, po, pe = ctypes.byref(batch), ctypes.byref(opts), ctypes.byref(err)

    def c_eval():
        lib.damc_results_free(lib.damc_eval(ptr, pb, pe))

    def c_run():
        lib.damc_results_free(lib.damc_run(ptr, pb, po, pe))

    i = [0]

    def py_eval():
        i[0] = (i[0] + 1) % 1000
        m.eval(state={"v": states[i[0]]})

    def py_run():
        i[0] = (i[0] + 1) % 1000
        m.run(init={"v": states[i[0]]}, method="iterate", max_steps=10, tol=-1)

    best = {}
    for _ in range(rounds):
        for name, fn in (("c_eval", c_eval), ("py_eval", py_eval), ("c_run", c_run),
                         ("py_run", py_run)):
            t = median_time(fn, 2000)
            best[name] = min(best.get(name, t), t)
    us = {k: v * 1e6 for k, v in best.items()}
    print(f"(N, K, B) = ({N}, {K}, {B}), float32 kernels, best of {rounds} rounds of medians "
          "over 2000 calls")
    print(f"eval: C API {us['c_eval']:.1f} µs, Python {us['py_eval']:.1f} µs, "
          f"overhead {us['py_eval'] - us['c_eval']:.1f} µs")
    print(f"run (iterate, 10 steps): C API {us['c_run']:.1f} µs, Python {us['py_run']:.1f} µs, "
          f"overhead {us['py_run'] - us['c_run']:.1f} µs")

    # 1000 evaluations with new states: nothing compiled, the weights read in place.
    count = m.compile_count
    t = time.perf_counter()
    energies = [float(m.eval(state={"v": s})["E"]) for s in states]
    loop = time.perf_counter() - t
    same = m.compile_count == count
    e0 = energies[0]
    xi[0] *= -1  # the bound array itself: float32 kernels read it in place
    e_changed = float(m.eval(state={"v": states[0]})["E"])
    xi[0] *= -1
    in_place = e_changed != e0 and float(m.eval(state={"v": states[0]})["E"]) == e0
    print(f"1000 evals with new states: {loop * 1e3:.1f} ms; compiles during the loop: "
          f"{m.compile_count - count} ({'none' if same else 'RECOMPILED'}); weights "
          f"{'used in place' if in_place else 'COPIED'}")
    return 0 if same and in_place else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

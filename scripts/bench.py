"""Benchmarks of damc, reported as ratios from one run (docs/performance.md records them).

Usage: /usr/bin/python3 scripts/bench.py BUILD/damc [--quick]

1. Compile time of every example: the front end, and from the start of damc to the first
   step (front end, reading and checking the tensors, plans, the step kernel's code
   generation, O3 and JIT), as `damc bench` reports them, and the wall time of a whole
   `damc run --max-steps 1` process (which also loads libLLVM and compiles the eval kernel
   for the final energy).
2. The Model B step at (N, K, B) = (784, 10000, 64) in float32: damc's step kernel against
   the same computation in NumPy on the same OpenBLAS (softmax of beta h, the two products,
   the two updates), alternated over rounds; the best median of each is compared.
Timings on a shared machine move by up to 1.3x between runs (docs/performance.md), so
ratios between 0.8 and 1.25 mean "the same".
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

DAMC = sys.argv[1]
QUICK = "--quick" in sys.argv
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def damc_bench(model, weights, batch, repeat, precision="f32"):
    out = subprocess.run([DAMC, "bench", model, "--weights", weights, "--batch", str(batch),
                          "--repeat", str(repeat), "--precision", precision],
                         capture_output=True, text=True, check=True).stdout
    grab = lambda key: float(re.search(key + r"\s+([0-9.]+) ms", out).group(1))
    return grab("front end"), grab("to the first step"), grab(r"step \(dx/dt\)")


def weights_for(model, rng, unbound=64):
    dims, weights = {}, {}
    for line in open(model):
        line = line.split("//")[0].strip()
        if line.startswith("dim "):
            body = line[4:].rstrip(";")
            name, _, value = body.partition("=")
            dims[name.strip()] = int(value) if value.strip() else unbound
        for kw in ("weight ", "synapse "):
            if line.startswith(kw):
                name = line[len(kw):line.index("[")].strip()
                shape = [dims.get(s.strip()) or int(s) for s in line[line.index("[") + 1:line.index("]")].split(",")]
                w = rng.standard_normal(shape).astype(np.float32) / np.sqrt(shape[-1])
                weights[name] = (w + w.T) / 2 if len(shape) == 2 and shape[0] == shape[1] else w
    return weights


def compile_times(tmp):
    rng = np.random.default_rng(0)
    print("time (ms)                    front end   start to first step   whole run process (1 step)")
    for file in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if not file.endswith(".dam"):
            continue
        model = os.path.join(ROOT, "examples", file)
        w = os.path.join(tmp, file + ".npz")
        np.savez(w, **weights_for(model, rng))
        front, comp, _ = damc_bench(model, w, 1, 5)
        t0 = time.perf_counter()
        subprocess.run([DAMC, "run", model, "--weights", w, "--max-steps", "1", "--tol", "0"],
                       capture_output=True, check=True)
        whole = 1e3 * (time.perf_counter() - t0)
        print(f"  {file:26s} {front:9.2f}   {comp:20.1f}   {whole:12.1f}")


def numpy_step(xi, v, h, inp, beta, tau_h):
    z = beta * h
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    dv = p @ xi + inp - v
    dh = (v @ xi.T - h) / tau_h
    return dv, dh


def model_b_step(tmp):
    n, k, b = (784, 2000, 16) if QUICK else (784, 10000, 64)
    rng = np.random.default_rng(1)
    xi = (rng.standard_normal((k, n)) / 28).astype(np.float32)
    w = os.path.join(tmp, "xi.npz")
    np.savez(w, Xi=xi)
    # The states damc bench uses: 0.5 sin(0.7 j + buffer index); any moderate values do.
    v = (0.5 * np.sin(0.7 * np.arange(b * n))).reshape(b, n).astype(np.float32)
    h = (0.5 * np.sin(0.7 * np.arange(b * k))).reshape(b, k).astype(np.float32)
    inp = np.zeros_like(v)
    model = os.path.join(ROOT, "examples", "model_b.dam")
    best_damc, best_numpy = float("inf"), float("inf")
    for _ in range(3):
        _, _, step = damc_bench(model, w, b, 20)
        best_damc = min(best_damc, step)
        numpy_step(xi, v, h, inp, np.float32(8), np.float32(0.05))
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            numpy_step(xi, v, h, inp, np.float32(8), np.float32(0.05))
            times.append(time.perf_counter() - t0)
        best_numpy = min(best_numpy, 1e3 * float(np.median(times)))
    print(f"Model B step (N, K, B) = ({n}, {k}, {b}), float32: damc {best_damc:.2f} ms, "
          f"NumPy {best_numpy:.2f} ms, NumPy / damc = {best_numpy / best_damc:.2f}")


with tempfile.TemporaryDirectory() as tmp:
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    compile_times(tmp)
    model_b_step(tmp)

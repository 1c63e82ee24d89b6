#!/usr/bin/python3
"""The cold compile: where the time goes from damc's start to Model B's first step when no
kernel comes from the cache (docs/performance.md, "The cold compile").

usage: /usr/bin/python3 bench/cold_compile.py [DAMC ...] [--runs N] [--k K] [--speed ROUNDS]

For each damc binary given (default build/damc; several are run alternately, run by run, so
that a comparison shares the machine's load), for Model B with h integrated and with h
eliminated (tau = 0), at (N, K) = (784, K) with K = 100 random +-1 memories as
scripts/example_tensors.py writes them, float32:
  - `damc bench --no-cache`: the front end, the first step's time and the backend's phases
    until then (loading libdamc_llvm.so, set-up, IR, optimisation, machine code; a thread
    loading LLVM ahead shows its work in these sums while the main thread reads);
  - the whole process `damc run --no-cache --method iterate --max-steps 1` (wall time from
    Python: fork and exec included), which also compiles the eval kernel on a second thread;
  - `damc --version` (the process's start: the dynamic loader, OpenBLAS).
Prints the median and the quartiles of every figure over the runs, and the load average
before and after: figures from a busy machine are upper bounds.

--speed ROUNDS: then the kernels' speed, so that a cheaper compile is seen not to cost it:
the step (dx/dt) and eval kernels' median time (`damc bench`) at (N, K, B) = (784, 1000, 1),
(784, 1000, 16) and (4096, 4096, 16), both models, the binaries alternating over ROUNDS
rounds (the best of each), as ratios to the first binary's.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FIELDS = ["front end", "to the first step", "loading", "set-up", "IR", "optimising",
          "machine code"]


def bench_figures(damc, model, weight):
    out = subprocess.run([damc, "bench", model, "--weight", "Xi=" + weight, "--no-cache",
                          "--repeat", "3"], capture_output=True, text=True, check=True).stdout
    f = {"front end": float(re.search(r"front end\s+([0-9.]+)", out).group(1)),
         "to the first step": float(re.search(r"to the first step\s+([0-9.]+)", out).group(1))}
    m = re.search(r"LLVM \(first step\)\s+loading ([0-9.]+) ms; set-up ([0-9.]+), IR ([0-9.]+), "
                  r"optimising ([0-9.]+), machine code ([0-9.]+)", out)
    if m:
        for name, v in zip(FIELDS[2:], m.groups()):
            f[name] = float(v)
    return f


def wall(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return 1e3 * (time.perf_counter() - t0)


def quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{statistics.median(xs):7.2f} ({q[0]:.2f}-{q[2]:.2f})"


def speed(binaries, models, tmp, rounds):
    rng = np.random.default_rng(1)
    sizes = [(784, 1000, 1, 2000), (784, 1000, 16, 300), (4096, 4096, 16, 20)]
    weights = {}
    for n, k, _, _ in sizes:
        if (n, k) not in weights:
            weights[(n, k)] = os.path.join(tmp, f"xi_{n}_{k}.npy")
            np.save(weights[(n, k)], (rng.standard_normal((k, n)) / np.sqrt(n)).astype(np.float32))
    best = {}
    for _ in range(rounds):
        for name, model in models.items():
            for n, k, b, repeat in sizes:
                for damc in binaries:
                    out = subprocess.run(
                        [damc, "bench", model.replace(".dam", "_n.dam"), "--weight",
                         "Xi=" + weights[(n, k)], "--batch", str(b), "--repeat", str(repeat),
                         "--no-cache"], capture_output=True, text=True, check=True).stdout
                    t = [float(re.search(p + r"\s+([0-9.]+) ms", out).group(1))
                         for p in (r"step \(dx/dt\)", r"eval \(E, g, u\)")]
                    key = (name, n, k, b, damc)
                    best[key] = [min(x, y) for x, y in zip(best.get(key, t), t)]
    print(f"\nkernel speed, best of {rounds} rounds (ratio to {binaries[0]}; > 1: slower)")
    for name in models:
        for n, k, b, _ in sizes:
            base = best[(name, n, k, b, binaries[0])]
            line = f"  {name:22s} ({n}, {k}, {b:2d})"
            for damc in binaries:
                st, ev = best[(name, n, k, b, damc)]
                line += (f" | step {1e3 * st:9.1f} us ({st / base[0]:.2f}), eval {1e3 * ev:9.1f}"
                         f" us ({ev / base[1]:.2f})")
            print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("damc", nargs="*", default=[os.path.join(ROOT, "build", "damc")])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--speed", type=int, default=0, metavar="ROUNDS")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="damc-cold-")
    rng = np.random.default_rng(0)
    xi = np.sign(rng.standard_normal((a.k, 784))).astype(np.float32)
    weight, cue = os.path.join(tmp, "xi.npy"), os.path.join(tmp, "v.npy")
    np.save(weight, xi)
    np.save(cue, xi[0])
    text = open(os.path.join(ROOT, "examples", "model_b.dam")).read()
    models = {"Model B": os.path.join(tmp, "model_b.dam"),
              "Model B, h eliminated": os.path.join(tmp, "model_b_elim.dam")}
    open(models["Model B"], "w").write(text)
    open(models["Model B, h eliminated"], "w").write(text.replace("tau = 0.05;", "tau = 0;"))
    for path in models.values():  # N from the weight, for --speed
        open(path.replace(".dam", "_n.dam"), "w").write(
            open(path).read().replace("dim N = 784;", "dim N;"))
    load0 = os.getloadavg()
    res = {}  # (damc, model) -> field -> [values]
    for _ in range(a.runs):
        for damc in a.damc:
            for name, model in models.items():
                r = res.setdefault((damc, name), {})
                for k, v in bench_figures(damc, model, weight).items():
                    r.setdefault(k, []).append(v)
                r.setdefault("whole run", []).append(wall(
                    [damc, "run", model, "--weight", "Xi=" + weight, "--init", "v=" + cue,
                     "--no-cache", "--method", "iterate", "--max-steps", "1", "--tol", "0",
                     "--out", os.path.join(tmp, "out.npz")]))
            res.setdefault((damc, "version"), {}).setdefault("damc --version", []).append(
                wall([damc, "--version"]))
    load1 = os.getloadavg()
    print(f"cold compile, (N, K) = (784, {a.k}), float32, {a.runs} runs alternating; "
          f"{os.cpu_count()} CPUs; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print("median (quartiles), ms; the phases are summed over threads until the first step")
    for damc in a.damc:
        print(f"\n{damc}")
        for name in models:
            print(f"  {name}")
            for k, v in res[(damc, name)].items():
                print(f"    {k:20s} {quartiles(v)}")
        print(f"  {'damc --version':22s} {quartiles(res[(damc, 'version')]['damc --version'])}")
    if a.speed:
        speed(a.damc, models, tmp, a.speed)


if __name__ == "__main__":
    sys.exit(main())

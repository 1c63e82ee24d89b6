#!/usr/bin/python3
"""The bit-error table of KH16's dense associative memory at N = 100, docs/theory.md §6.2.

K random +-1 patterns; at a stored pattern, the probability that the single-unit rule of §5.3
flips a bit, each bit decided from the stored pattern itself (one step of the rule). damc
decides each bit: `damc run --method async --max-steps 1` with every other unit clamped
(common.Damc.one_step), on experiments/models/binary_poly.dam (F = x^n) and binary_repu.dam
(F = relu(x)^n). Prints the measured rate beside the reference's simulation and the Gaussian
signal-to-noise prediction Phi(-sqrt(N^(n-1) / (K (2n-3)!!))) (times sqrt 2 inside for the
rectified F).

usage: kh16.py [DAMC] [--patterns P] [--rows x2:50,x3:500,...] [--json OUT]"""
import math
import sys

import numpy as np

from common import Damc, option, write_json

N = 100
# (F, K) -> the reference's simulated P_err and its prediction (docs/theory.md §6.2)
REFERENCE = {("x2", 50): 0.0847, ("x2", 100): 0.1573, ("x2", 200): 0.2397,
             ("x3", 200): 0.0, ("x3", 500): 0.0095, ("x3", 1000): 0.0385, ("x3", 2000): 0.0800,
             ("relu3", 200): 0.0, ("relu3", 500): 0.0005, ("relu3", 1000): 0.0060, ("relu3", 2000): 0.0350,
             ("x4", 5000): 0.0, ("x4", 20000): 0.0390}
MODELS = {"x2": ("binary_poly.dam", 2, False), "x3": ("binary_poly.dam", 3, False),
          "relu3": ("binary_repu.dam", 3, True), "x4": ("binary_poly.dam", 4, False)}


def dfact(k):
    return 1 if k <= 0 else k * dfact(k - 2)


def predicted(f, k):
    _, n, rect = MODELS[f]
    z = math.sqrt(N ** (n - 1) / (k * dfact(2 * n - 3))) * (math.sqrt(2) if rect else 1)
    return 0.5 * math.erfc(z / math.sqrt(2))


def main(argv):
    d = Damc(argv)
    patterns = int(option(argv, "--patterns", 40))
    rows = [tuple(r.split(":")) for r in option(argv, "--rows", "").split(",") if r] or list(REFERENCE)
    out = {}
    print(f"## KH16 dense memory: one-step bit-error rate at a stored pattern, N = {N}\n")
    print(f"| F | K | P_err (damc, {patterns} patterns x {N} bits) | reference simulation | prediction (Gaussian SNR) |")
    print("|---|---|---|---|---|")
    for f, k in rows:
        k = int(k)
        model, n, _ = MODELS[f]
        rng = np.random.default_rng([16, n, k, int(MODELS[f][2])])
        xi = rng.choice([-1.0, 1.0], size=(k, N))
        stored = xi[:patterns]
        new = d.one_step(model, {"Xi": xi}, stored, sets=[f"n={n}"])
        errors = int(np.sum(new != stored))
        rate = errors / stored.size
        pred = predicted(f, k)
        name = {"x2": "x²", "x3": "x³", "relu3": "relu(x)³", "x4": "x⁴"}[f]
        print(f"| {name} | {k} | {rate:.4f} ({errors}/{stored.size}) | {REFERENCE.get((f, k), float('nan')):.4f} | {pred:.4f} |")
        out[f"{f}:{k}"] = {"errors": errors, "bits": stored.size, "rate": rate, "predicted": pred,
                           "reference": REFERENCE.get((f, k))}
    print()
    write_json(argv, {"n": N, "rows": out})


if __name__ == "__main__":
    main(sys.argv)

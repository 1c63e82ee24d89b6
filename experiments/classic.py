#!/usr/bin/python3
"""Capacity of the classic Hopfield network (H82; AGS85), docs/theory.md §6.1.

N = 1000 binary units, K = alpha N random +-1 patterns, the Hebbian T = Xi' Xi / N with a zero
diagonal, asynchronous sign updates at T = 0 (damc run --method async on
experiments/models/binary_poly.dam with n = 2 and the patterns scaled by 1/sqrt(N), which is
exactly that network, §5.3), started at a stored pattern and run to a fixed point. Prints the
median final overlap per load beside the reference's simulation (4 trials) and the
replica-symmetric prediction (a retrieval state with m >= 0.967 below alpha_c = 0.138, none
above).

usage: classic.py [DAMC] [--seeds S] [--starts B] [--alphas a,b,...] [--json OUT]"""
import sys

import numpy as np

from common import Damc, option, write_json

REFERENCE = {0.05: [1, 1, 1, 1], 0.10: [1, 0.988, 1, 0.998], 0.12: [0.994, 0.994, 0.996, 0.990],
             0.14: [0.996, 0.672, 1, 0.968], 0.16: [0.966, 0.960, 0.994, 0.884],
             0.20: [0.262, 0.286, 0.444, 0.336]}


def main(argv):
    d = Damc(argv)
    n = 1000
    seeds = int(option(argv, "--seeds", 4))
    starts = int(option(argv, "--starts", 4))
    alphas = [float(a) for a in option(argv, "--alphas", ",".join(map(str, REFERENCE))).split(",")]
    rows = {}
    print("## Classic Hopfield capacity (H82, AGS85): N = 1000, async sign rule from a stored pattern\n")
    print("| alpha = K/N | K | median final overlap (damc) | overlaps (damc, one per start) | reference median (4 trials) | RS theory (N -> inf) |")
    print("|---|---|---|---|---|---|")
    for alpha in alphas:
        k = int(round(alpha * n))
        finals = []
        for seed in range(seeds):
            rng = np.random.default_rng([61, seed, k])
            xi = rng.choice([-1.0, 1.0], size=(k, n))
            s0 = xi[:starts]
            r = d.run("binary_poly.dam", {"Xi": xi / np.sqrt(n)}, {"s": s0}, "--method", "async",
                      "--max-steps", "200", "--seed", str(seed), sets=["n=2"])
            if not r["converged"].all():
                sys.exit(f"alpha {alpha} seed {seed}: not converged after 200 sweeps")
            finals += list(np.sum(np.sign(r["x_s"]) * s0, axis=1) / n)
        med = float(np.median(finals))
        ref = REFERENCE.get(round(alpha, 2))
        theory = "retrieval, m >= 0.967" if alpha < 0.138 else "no retrieval state"
        print(f"| {alpha:.2f} | {k} | {med:.3f} | {' '.join(f'{m:.3f}' for m in finals)} | "
              f"{np.median(ref) if ref else '-'} | {theory} |")
        rows[f"{alpha:.2f}"] = {"K": k, "overlaps": finals, "median": med}
    print()
    write_json(argv, {"n": n, "alphas": rows})


if __name__ == "__main__":
    main(sys.argv)

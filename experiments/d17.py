#!/usr/bin/python3
"""One-step retrieval by the exponential dense memory of D17, docs/theory.md §6.3.

N = 40 binary units, M random +-1 patterns, F(x) = exp(x) (experiments/models/binary_exp.dam),
queries: a stored pattern with rho N bits flipped; one synchronous step of the single-unit
rule of §5.3 (each bit decided from the query, common.Damc.one_step through damc run --method
async). Prints the number of queries retrieved exactly beside the reference's simulation and
the prediction: exact retrieval w.h.p. when alpha = ln(M)/N < I(1 - 2 rho)/2.

usage: d17.py [DAMC] [--queries Q] [--rows 0.1:1573,...] [--json OUT]"""
import math
import sys

import numpy as np

from common import Damc, option, write_json

N = 40
REFERENCE = {(0.1, 1573): 50, (0.1, 6295): 50, (0.2, 47): 49, (0.2, 188): 43}


def threshold(rho):
    x = 1 - 2 * rho
    return 0.5 * 0.5 * ((1 + x) * math.log1p(x) + (1 - x) * math.log1p(-x)) if x < 1 else math.log(2) / 2


def main(argv):
    d = Damc(argv)
    queries = int(option(argv, "--queries", 50))
    rows = [(float(a), int(b)) for a, b in (r.split(":") for r in option(argv, "--rows", "").split(",") if r)] \
        or list(REFERENCE)
    out = {}
    print(f"## D17 exponential dense memory: one-step exact retrieval, N = {N}, {queries} queries\n")
    print("| rho | M | alpha = ln M / N | I(1-2 rho)/2 | exact retrievals (damc) | reference simulation |")
    print("|---|---|---|---|---|---|")
    for rho, m in rows:
        rng = np.random.default_rng([17, int(rho * 100), m])
        xi = rng.choice([-1.0, 1.0], size=(m, N))
        which = rng.integers(m, size=queries)
        q = xi[which].copy()
        for row in q:
            row[rng.choice(N, size=int(round(rho * N)), replace=False)] *= -1
        new = d.one_step("binary_exp.dam", {"Xi": xi}, q)
        exact = int(np.sum(np.all(new == xi[which], axis=1)))
        ref = REFERENCE.get((rho, m))
        print(f"| {rho} | {m} | {math.log(m) / N:.4f} | {threshold(rho):.4f} | {exact}/{queries} | "
              f"{f'{ref}/50' if ref is not None else '-'} |")
        out[f"{rho}:{m}"] = {"exact": exact, "queries": queries, "alpha": math.log(m) / N,
                             "threshold": threshold(rho), "reference": ref}
    print()
    write_json(argv, {"n": N, "rows": out})


if __name__ == "__main__":
    main(sys.argv)

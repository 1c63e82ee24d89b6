#!/usr/bin/python3
"""Finite temperature in the classic network (Amit, Gutfreund & Sompolinsky 1985): at a
vanishing load, the symmetric mixtures of three patterns lose their stability near
T = 0.46, while the retrieval states survive up to T = 1.

N = 1000 binary units, K = 3 patterns (alpha = 0.003), the Hebbian T = Xi' Xi / N with a zero
diagonal: experiments/models/binary_poly.dam with n = 2 and the patterns scaled by 1/sqrt(N),
so that E(s) = -1/(2N) sum_mu (xi_mu . s)^2 is AGS's Hamiltonian H = -1/2 sum_{i!=j} T_ij s_i s_j
up to the constant K/2. `damc run --method async --noise T` is the heat-bath rule
P(s_i = +1) = 1/(1 + exp((E(+1) - E(-1))/T)) (docs/theory.md §5.3). Here E(+1) - E(-1) = -2 h_i
with h_i = sum_j T_ij s_j, so P(s_i = +1) = 1/(1 + exp(-2 h_i / T)) = (1 + tanh(h_i / T))/2:
Glauber dynamics at inverse temperature beta = 1/T for H, which is AGS's convention (their
states weighted by exp(-beta H), m = tanh(beta m) for a retrieval state at alpha = 0). So
damc's T is AGS's T, with no factor 2.

From a 3-mixture sign(xi_1 + xi_2 + xi_3) and from a stored pattern, SWEEPS sweeps at each T;
the overlaps m_mu = xi_mu . s / N at the end, one per independent chain. A chain counts as still in the mixture when its three overlaps are all above 0.2; as retrieving
when its largest overlap is above 0.5 and the others below 0.3. Predictions (alpha -> 0):
mixture m = (tanh(3m/T) + tanh(m/T))/4 for T < 0.461; retrieval m = tanh(m/T) for T < 1.

What finite N does to it: T = 0.461 is where the mixture stops being a local minimum of the
mean-field free energy f(m) = |m|^2/2 - T <ln 2 cosh(m . xi / T)> (the smallest eigenvalue of
its Hessian crosses 0 at T = 0.4598, computed here from the 8 sublattices). Below it the mixture
is only metastable, and the barrier to a retrieval state is small: about 5e-5 to 1e-4 per unit
at T = 0.3-0.4 and 6e-6 at T = 0.44 along the path m = (a, b, b). A chain of N units crosses it
in a time ~ exp(N dF / T), which is short for N dF / T of a few: at N = 1000 the mixtures are
lost from T ~ 0.3, at N = 10000-20000 from T ~ 0.35-0.4, and only N ~ 1e6 would show the mean-field 0.46
(a plain NumPy Glauber simulation does the same; so the reproduction shows the trend with N,
and the retrieval states, whose overlaps follow m = tanh(m/T) closely at every N).

usage: ags.py [DAMC] [--chains C] [--sweeps S] [--sizes 1000,10000] [--temps 0.3,0.4,...] [--json OUT]"""
import math
import sys

import numpy as np

from common import Damc, option, write_json

K = 3
T3 = 0.461      # AGS85: the symmetric 3-mixture is stable below this temperature (alpha -> 0)


def fixed_point(f, m0=1.0):
    m = m0
    for _ in range(20000):
        m = f(m)
    return m


def main(argv):
    d = Damc(argv)
    chains = int(option(argv, "--chains", 8))
    sweeps = int(option(argv, "--sweeps", 150))
    sizes = [int(n) for n in option(argv, "--sizes", "1000,10000").split(",")]
    temps = [float(t) for t in option(argv, "--temps", "0.2,0.3,0.35,0.4,0.45,0.5,0.7,0.9,1.1").split(",")]
    out = {}
    print(f"## AGS85 finite temperature: K = {K} patterns, heat-bath rule (damc run --method async --noise T), "
          f"{sweeps} sweeps, {chains} chains per start\n")
    print("| N | T | from the 3-mixture: still mixed | its overlaps (median, sorted) | predicted mixture m (N -> inf) | "
          "from a pattern: retrieving | m_1 (median) | predicted m = tanh(m/T) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        rng = np.random.default_rng([85, n])
        xi = rng.choice([-1.0, 1.0], size=(K, n))
        mix = np.sign(xi.sum(axis=0))
        init = np.concatenate([np.tile(mix, (chains, 1)), np.tile(xi[0], (chains, 1))])
        for t in temps:
            r = d.run("binary_poly.dam", {"Xi": xi / math.sqrt(n)}, {"s": init}, "--method", "async",
                      "--noise", str(t), "--max-steps", str(sweeps), "--seed", str(int(t * 1000)),
                      sets=["n=2"])
            m = np.sign(r["x_s"]) @ xi.T / n                      # [2 chains, K]
            mm, mp = np.sort(m[:chains], axis=1)[:, ::-1], m[chains:]
            mixed = int(np.sum(np.all(mm > 0.2, axis=1)))
            retrieving = int(np.sum((mp[:, 0] > 0.5) & np.all(np.abs(mp[:, 1:]) < 0.3, axis=1)))
            pmix = fixed_point(lambda x: (math.tanh(3 * x / t) + math.tanh(x / t)) / 4, 0.5) if t < T3 else None
            pret = fixed_point(lambda x: math.tanh(x / t)) if t < 1 else 0.0
            med = np.median(mm, axis=0)
            print(f"| {n} | {t:.2f} | {mixed}/{chains} | {' '.join(f'{v:.2f}' for v in med)} | "
                  f"{f'{pmix:.3f}' if pmix is not None else 'unstable'} | {retrieving}/{chains} | "
                  f"{np.median(mp[:, 0]):.3f} | {pret:.3f} |")
            out[f"{n}:{t:.2f}"] = {"n": n, "t": t, "mixed": mixed, "retrieving": retrieving, "chains": chains,
                                   "mixture_overlaps": med.tolist(), "m1": float(np.median(mp[:, 0])),
                                   "predicted_mixture": pmix, "predicted_retrieval": pret}
    print()
    write_json(argv, {"k": K, "sweeps": sweeps, "t3": T3, "runs": out})


if __name__ == "__main__":
    main(sys.argv)

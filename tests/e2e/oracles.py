#!/usr/bin/env python3
"""The test oracles of docs/theory.md §4.6 through the command line, in float64. The oracle
values were computed in 40-digit arithmetic; those quoted to 15 significant digits are
matched to 1e-13 relative (the section's float64 tolerance), those quoted to 12 digits to
2e-12 absolute (the last quoted digit).

  w1: the two-layer network W1: E and dx/dt at the given state (damc eval), and the fixed
      point damc check reaches from it: x*, E*, the sorted spectrum of J (with -2 = -1/tau_h
      on the null vector of H) and lambda_max(B'WB), stable;
  r1: the one-step update of Ramsauer et al. (R1): `--method iterate --max-steps 1`, the
      energy before and after, and the decrease at least the (c1) bound |dv|^2 / 2.

usage: oracles.py DAMC SOURCE_DIR [--case NAME | --list]"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC = os.path.abspath(sys.argv[1])
DIGITS15, DIGITS12 = 1e-13, 2e-12


def close(got, want, tol, what, relative=True):
    got, want = np.asarray(got, float), np.asarray(want, float)
    err = np.max(np.abs(got - want) / (np.abs(want) if relative else 1)) if got.shape == want.shape else np.inf
    check(err <= tol, f"{what}: {got} against {want} (error {err:.2e} > {tol:.0e})")


def damc(*args):
    r = subprocess.run([DAMC, *args], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"damc {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r


W1_MODEL = """// docs/theory.md §4.6, W1
dim N = 3;
dim K = 2;
layer v[N] { L = 0.5 * sum(v^2); tau = 1; }
layer h[K] { L = logsumexp(h); tau = 0.5; }
synapse W[N, K] : v <-> h;
input v;
"""


def w1(tmp):
    model = os.path.join(tmp, "w1.dam")
    with open(model, "w") as f:
        f.write(W1_MODEL)
    arrays = {"W": [[1, -1], [0.5, 1], [-1, 0.5]], "I": [0.1, -0.2, 0], "v": [0.5, -0.3, 0.2],
              "h": [0.1, -0.4]}
    for name, value in arrays.items():
        np.save(os.path.join(tmp, name + ".npy"), np.array(value, float))
    common = ["--weight", f"W={tmp}/W.npy", "--input", f"v={tmp}/I.npy"]
    damc("eval", model, *common, "--state", f"v={tmp}/v.npy", "--state", f"h={tmp}/h.npy",
         "--precision", "f64", "--out", f"{tmp}/e.npz")
    if os.path.exists(f"{tmp}/e.npz"):
        e = np.load(f"{tmp}/e.npz")
        close(e["E"], -0.411937750100756, DIGITS15, "W1 E")
        close(e["g_h"], [0.622459331201855, 0.377540668798145], DIGITS15, "W1 g_h")
        close(e["dxdt_v"], [-0.155081337596, 0.788770334399, -0.633688996803], DIGITS12, "W1 dv/dt",
              relative=False)
        close(e["dxdt_h"], [0.1, -0.6], DIGITS15, "W1 dh/dt = (u_h - h) / tau_h", relative=False)
    r = damc("check", model, *common, "--init", f"v={tmp}/v.npy", "--init", f"h={tmp}/h.npy", "--json")
    report = json.loads(r.stdout) if r.stdout else {"items": []}
    st = [i for i in report["items"] if i["check"] == "stability"]
    check(len(st) == 1 and st[0]["verdict"] == "pass", f"W1 stability: {st}")
    if st:
        n, v = st[0]["numbers"], st[0]["vectors"]
        close(v.get("x*", []), [1.030492916536, 0.317376770866, -0.947869687402, 2.137050989371,
                                -1.187050989371], DIGITS12, "W1 fixed point", relative=False)
        close(n["E"], -1.18144643492789, DIGITS15, "W1 E*")
        close(v.get("eig(J)", []), [-2.328308233628, -2, -1, -1, -0.671691766372], DIGITS12,
              "W1 eig J", relative=False)
        close(n["lambda_max(B'WB)"], 0.466955313652, DIGITS12, "W1 lambda_max(B'WB)", relative=False)
        print(f"W1: fixed point after {n['Newton steps']:.0f} Newton steps, residual "
              f"{n['residual |u - x|_inf / (1 + |x|_inf)']:.1e}")


R1_MODEL = """// docs/theory.md §4.6, R1: E(v) = |v|^2/2 - lse(beta X'v)/beta, the patterns the rows of Xi
dim N = 2;
dim K = 3;
param beta = 2;
layer v[N] { L = 0.5 * sum(v^2); tau = 1; }
layer h[K] { L = logsumexp(beta * h) / beta; tau = 0; }
synapse Xi[K, N] : h <-> v;
"""


def r1(tmp):
    model = os.path.join(tmp, "r1.dam")
    with open(model, "w") as f:
        f.write(R1_MODEL)
    np.save(os.path.join(tmp, "Xi.npy"), np.array([[1, -1, 0], [0, 1, 1]], float).T)
    np.save(os.path.join(tmp, "xi.npy"), np.array([0.5, 0.2]))
    common = ["--weight", f"Xi={tmp}/Xi.npy", "--precision", "f64"]
    damc("eval", model, *common, "--state", f"v={tmp}/xi.npy", "--out", f"{tmp}/e.npz")
    damc("run", model, *common, "--init", f"v={tmp}/xi.npy", "--method", "iterate", "--max-steps", "1",
         "--out", f"{tmp}/r.npz")
    if os.path.exists(f"{tmp}/e.npz") and os.path.exists(f"{tmp}/r.npz"):
        e, r = np.load(f"{tmp}/e.npz"), np.load(f"{tmp}/r.npz")
        close(e["g_h"], [0.571197430973607, 0.115322772401064, 0.31347979662533], DIGITS15, "R1 softmax")
        close(e["E"], -0.635010182781052, DIGITS15, "R1 E(xi)")
        new = [0.455874658572543, 0.428802569026393]
        close(r["x_v"], new, DIGITS15, "R1 xi_new")
        close(r["E"], -0.682519532462017, DIGITS15, "R1 E(xi_new)")
        step = np.sum((np.array(new) - [0.5, 0.2]) ** 2) / 2
        close(step, 0.0271488306745836, DIGITS15, "R1 (c1) bound")
        check(e["E"] - r["E"] >= step, f"R1: the decrease {e['E'] - r['E']} is below the (c1) bound {step}")
        check(int(r["steps"]) == 1, f"R1: {r['steps']} steps")


CASES = {"w1": w1, "r1": r1}

if __name__ == "__main__":
    run(CASES)

#!/usr/bin/env python3
"""Every valid model compiles, and computes what NumPy computes: models built from the
constructs that once parsed but did not compile.

  transposed_weights: tests/e2e/models/lateral.dam, with (C + C') @ g(v), sum(C' * C) and
    exp(C') @ g(v): E, u_v and dxdt_v of `damc eval` on a batch of 5 against NumPy (float64
    to 1e-12 relative to the largest term; float32 to 64 eps32 of it, the rounding of sums of
    N = 6 products of terms of size 1), and a run that converges with E never rising.

  state_dependent_matrix: tests/e2e/models/state_matrix.dam, (W + sum(g(v))) @ g(v): one
    product per sample; E against NumPy and u_v against central differences of the energy.

  float32_last_steps: L = lagr_tanh(v) with an input of 400 converges to 400 in float32 with
    euler, rk4 and dopri5 (the integrators' states are float64).

usage: compile_all.py DAMC SOURCE_DIR [--case NAME | --list]"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = sys.argv[1], sys.argv[2]
MODELS = os.path.join(SRC, "tests", "e2e", "models")


def damc(*args):
    r = subprocess.run([DAMC, *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def eval_both(tmp, model, weight):
    """damc eval of `model` with tmp/WEIGHT.npy and the states tmp/v.npy, in float64 and float32:
    yields (precision, tolerance relative to the scale, results) for each run that succeeded.
    Tolerances: 1e-12 in f64 (a few roundings of O(1) sums); 64 eps32 in f32."""
    for precision, tol in (("f64", 1e-12), ("f32", 64 * np.finfo(np.float32).eps)):
        out = os.path.join(tmp, f"out_{precision}.npz")
        code, _, err = damc("eval", model, "--weight", f"{weight}={tmp}/{weight}.npy", "--state",
                            f"v={tmp}/v.npy", "--precision", precision, "--out", out)
        check(code == 0, f"eval {precision}: exit {code}: {err}")
        if code == 0:
            yield precision, tol, np.load(out)


def transposed_weights(tmp):
    rng = np.random.default_rng(11)
    n, b, s = 6, 5, 0.1
    C = 0.5 * rng.standard_normal((n, n)) / np.sqrt(n)
    v = rng.standard_normal((b, n))
    np.save(os.path.join(tmp, "C.npy"), C)
    np.save(os.path.join(tmp, "v.npy"), v)
    u = 0.25 * v @ (C + C.T).T + 0.25 * v @ (C + C.T) + s * (C.T * C).sum() \
        + 0.02 * v @ np.exp(C.T).T + 0.02 * v @ np.exp(C.T)
    E = 0.5 * (v * v).sum(1) - 0.25 * np.einsum("bi,ij,bj->b", v, C + C.T, v) \
        - s * (C.T * C).sum() * v.sum(1) - 0.02 * np.einsum("bi,ij,bj->b", v, np.exp(C.T), v)
    model = os.path.join(MODELS, "lateral.dam")
    for precision, tol, r in eval_both(tmp, model, "C"):
        scale = np.abs(E).max() + 1
        for name, got, want in (("E", r["E"], E), ("u_v", r["u_v"], u),
                                ("dxdt_v", r["dxdt_v"], u - v)):
            worst = np.abs(got - want).max() / scale
            check(worst <= tol, f"{name} {precision}: error {worst:.2e} > {tol:.1e}")
            print(f"{precision} {name}: max error / scale {worst:.2e} (tol {tol:.1e})")
    trace = os.path.join(tmp, "trace.csv")
    code, _, err = damc("run", model, "--weight", f"C={tmp}/C.npy", "--init", f"v={tmp}/v.npy",
                        "--precision", "f64", "--trace", trace, "--strict")
    check(code == 0, f"run: exit {code}: {err}")
    if code == 0:
        rows = np.genfromtxt(trace, delimiter=",", names=True)
        for sample in range(b):
            e = rows["E"][rows["sample"] == sample]
            rise = np.diff(e).max(initial=-np.inf) / (np.abs(e).max() + 1)
            check(rise <= 1e-12, f"run: E rose by {rise:.2e} (sample {sample})")
        print("run: converged, E never rose")


def state_dependent_matrix(tmp):
    rng = np.random.default_rng(12)
    n, b = 6, 4
    W = 0.5 * rng.standard_normal((n, n)) / np.sqrt(n)
    v = 0.5 * rng.standard_normal((b, n))
    np.save(os.path.join(tmp, "W.npy"), W)
    np.save(os.path.join(tmp, "v.npy"), v)

    def e_int(g):  # the interaction energy of one sample
        return -0.1 * g @ (W + g.sum()) @ g

    E = np.array([0.5 * x @ x + e_int(x) for x in v])
    # u = -dE_int/dg by central differences (error ~ h^2 times the third derivative, ~1e-10).
    h = 1e-5
    u = np.array([[-(e_int(x + h * d) - e_int(x - h * d)) / (2 * h) for d in np.eye(n)] for x in v])
    model = os.path.join(MODELS, "state_matrix.dam")
    for precision, tol, r in eval_both(tmp, model, "W"):
        scale = np.abs(E).max() + 1
        worst = np.abs(r["E"] - E).max() / scale
        check(worst <= tol, f"E {precision}: error {worst:.2e} > {tol:.1e}")
        # u against finite differences: the differences' own error (1e-10) bounds it in f64.
        worst_u = np.abs(r["u_v"] - u).max() / (np.abs(u).max() + 1)
        tol_u = max(tol, 1e-9)
        check(worst_u <= tol_u, f"u_v {precision}: error {worst_u:.2e} > {tol_u:.1e}")
        print(f"{precision}: E error {worst:.2e} (tol {tol:.1e}), u_v error {worst_u:.2e} "
              f"(tol {tol_u:.1e})")


def float32_last_steps(tmp):
    """A float32 run near a large fixed point: x = 400 for L = lagr_tanh(v) with input 400.
    With the state in float32 an increment below half an ulp of 400 (3e-5) vanished and the
    run stopped 4 ulps short, never converging; the integrator keeps its state in float64."""
    model = os.path.join(tmp, "tanh400.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nlayer v[N] { L = lagr_tanh(v); tau = 1; }\ninput v;\n")
    np.save(os.path.join(tmp, "in.npy"), np.full(3, 400.0))
    for method in ("euler", "rk4", "dopri5"):
        out = os.path.join(tmp, f"{method}.npz")
        code, _, err = damc("run", model, "--input", f"v={tmp}/in.npy", "--method", method,
                            "--tol", "1e-8", "--out", out)
        check(code == 0 and "warning" not in err, f"{method}: exit {code}: {err}")
        if code == 0:
            r = np.load(out)
            ulps = np.abs(r["x_v"] - 400) / np.spacing(np.float32(400))
            check(bool(r["converged"]) and ulps.max() <= 1, f"{method}: {ulps.max()} ulps from 400")
            print(f"float32 {method}: converged in {int(r['steps'])} steps, {ulps.max():.0f} ulps from 400")


CASES = {"transposed_weights": transposed_weights, "state_dependent_matrix": state_dependent_matrix,
         "float32_last_steps": float32_last_steps}


if __name__ == "__main__":
    run(CASES)

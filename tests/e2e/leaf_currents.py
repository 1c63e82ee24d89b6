"""Currents that are a bare leaf, through the command line: u_v = b (a weight alone, as the
energy -dot(b, g(v)) gives, and -dot(b + 0, g(v)) and -dot(b, g(v) / c * c), which simplify
to it), x_h = u_h = b (an eliminated layer), u_w = c (a param); models of tests/e2e/models.
Every output against its closed form (L = |x|^2 / 2 everywhere, so g = x):
  eval:  g_v = x_v, u_v = b, dxdt_v = b - x_v, E_v = |x_v|^2 / 2, E = -b . x_v + |x_v|^2 / 2
         (leaf_currents.dam: the forms in the model's comment); float64 within 1e-12 and
         float32 within 16 eps32 (of |v| + max|v|; the inputs are exact in float32);
  run:   the fixed point of dx/dt = b - x is x = b, with E = -|b|^2 / 2, for dopri5, rk4,
         euler and iterate: within 4 tol (|x - b| <= tol (1 + |x|) / tau at the stop);
  check: damc check passes every item (--strict: exit 0), in text and JSON.
(emit --c and --obj: emit_c_test.py, case leaf_currents.)

usage: leaf_currents.py DAMC SOURCE_DIR [--case NAME | --list]"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MODELS = os.path.join(SRC, "tests", "e2e", "models")
EPS32 = float(np.finfo(np.float32).eps)
BIAS = np.array([1.0, -2.0, 3.0, 0.5, -0.25])
X = np.array([[0.5, 0.25, -1.0, 2.0, 0.0], [1.0, 2.0, 3.0, -4.0, 0.125]])

# The same model in three spellings: each simplifies to u_v = b.
BIAS_MODEL = """dim N;%s
layer v[N] { L = lagr_identity(v); tau = 1.0; }
weight b[N];
energy %s;
"""
SPELLINGS = {"bias_only": None, "bias_plus_zero": "-dot(b + 0, g(v))",
             "bias_simplified": "-dot(b, g(v) / c * c)"}


def damc(*args):
    return subprocess.run([DAMC, *args], capture_output=True, text=True)


def bias_models(tmp):
    """(name, path) of every spelling of u_v = b, with b saved as b.npy beside them."""
    np.save(os.path.join(tmp, "b.npy"), BIAS)
    np.save(os.path.join(tmp, "x.npy"), X)
    out = []
    for name, energy in SPELLINGS.items():
        path = os.path.join(MODELS, "bias_only.dam")
        if energy:
            path = os.path.join(tmp, name + ".dam")
            open(path, "w").write(BIAS_MODEL % ("\nparam c = 3;" if "c" in energy else "", energy))
        out.append((name, path))
    return out


def close(what, got, want, precision):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if not check(got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"):
        return
    scale = np.abs(want) + np.abs(want).max() + (want == 0) * (np.abs(want).max() == 0)
    err = (np.abs(got - want) / scale).max()
    bound = 1e-12 if precision == "f64" else 16 * EPS32
    check(err <= bound, f"{what}: error {err:.3g} above {bound:.3g}\n got {got}\n want {want}")


def eval_case(tmp):
    for name, path in bias_models(tmp):
        for precision in ("f64", "f32"):
            out = os.path.join(tmp, f"{name}_{precision}.npz")
            p = damc("eval", path, "--weight", "b=" + os.path.join(tmp, "b.npy"), "--state",
                     "v=" + os.path.join(tmp, "x.npy"), "--precision", precision, "--out", out)
            if not check(p.returncode == 0, f"{name} {precision}: eval exit {p.returncode}: {p.stderr}"):
                continue
            r = np.load(out)
            what = f"{name} {precision} eval"
            close(what + " g_v", r["g_v"], X, precision)
            close(what + " u_v", r["u_v"], np.broadcast_to(BIAS, X.shape), precision)
            close(what + " dxdt_v", r["dxdt_v"], BIAS - X, precision)
            close(what + " E_v", r["E_v"], (X * X).sum(1) / 2, precision)
            close(what + " E", r["E"], -(X @ BIAS) + (X * X).sum(1) / 2, precision)
    # Every kind of leaf at once: a weight, an eliminated layer's weight, a param.
    model = os.path.join(MODELS, "leaf_currents.dam")
    rng = np.random.default_rng(11)
    a, b = rng.integers(-8, 8, 4) / 4, rng.integers(-8, 8, 4) / 4  # exact in float32
    xv, xw = rng.integers(-8, 8, (3, 4)) / 8, rng.integers(-8, 8, (3, 4)) / 8
    c = 0.75
    np.savez(os.path.join(tmp, "w.npz"), a=a, b=b)
    np.save(os.path.join(tmp, "xv.npy"), xv)
    np.save(os.path.join(tmp, "xw.npy"), xw)
    want = {"g_v": xv, "u_v": np.broadcast_to(a, xv.shape), "dxdt_v": a - xv,
            "g_h": np.broadcast_to(b, xv.shape), "u_h": np.broadcast_to(b, xv.shape),
            "g_w": xw, "u_w": np.full(xw.shape, c), "dxdt_w": c - xw,
            "E_v": (xv * xv).sum(1) / 2, "E_h": np.full(3, (b * b).sum() / 2),
            "E_w": (xw * xw).sum(1) / 2,
            "E": -(xv @ a) - (b @ b) - c * xw.sum(1) + ((xv * xv).sum(1) + (b @ b) + (xw * xw).sum(1)) / 2}
    for precision in ("f64", "f32"):
        out = os.path.join(tmp, f"leaf_{precision}.npz")
        p = damc("eval", model, "--weights", os.path.join(tmp, "w.npz"), "--set", f"c={c}",
                 "--state", "v=" + os.path.join(tmp, "xv.npy"), "--state",
                 "w=" + os.path.join(tmp, "xw.npy"), "--precision", precision, "--out", out)
        if not check(p.returncode == 0, f"leaf_currents {precision}: eval exit {p.returncode}: {p.stderr}"):
            continue
        r = np.load(out)
        check(sorted(r.files) == sorted(want), f"leaf_currents {precision}: results {r.files}")
        for key, w in want.items():
            if key in r.files:
                close(f"leaf_currents {precision} eval {key}", r[key], w, precision)


def run_case(tmp):
    for name, path in bias_models(tmp):
        for precision in ("f64", "f32"):
            tol = 1e-7 if precision == "f64" else 1e-4
            for method in ("dopri5", "rk4", "euler", "iterate"):
                out = os.path.join(tmp, f"{name}_{precision}_{method}.npz")
                p = damc("run", path, "--weight", "b=" + os.path.join(tmp, "b.npy"), "--init",
                         "v=" + os.path.join(tmp, "x.npy"), "--precision", precision, "--method",
                         method, "--strict", "--quiet", "--out", out)
                what = f"{name} {precision} run --method {method}"
                if not check(p.returncode == 0, f"{what}: exit {p.returncode}: {p.stderr}"):
                    continue
                r = np.load(out)
                check(r["converged"].all(), f"{what}: not converged")
                err = np.abs(r["x_v"] - BIAS).max()
                check(err <= 4 * tol * (1 + np.abs(BIAS).max()), f"{what}: |x - b| = {err:.3g}")
                e_want = -(BIAS @ BIAS) / 2
                check(np.abs(r["E"] - e_want).max() <= 1e-6 * abs(e_want) + (BIAS @ BIAS) * 8 * tol,
                      f"{what}: E = {r['E']}, want {e_want}")


def check_case(tmp):
    for name, path in bias_models(tmp):
        p = damc("check", path, "--weight", "b=" + os.path.join(tmp, "b.npy"), "--strict")
        check(p.returncode == 0 and p.stdout.startswith("pass:") and " 0 failed" in p.stdout.split("\n")[0]
              and not p.stderr, f"{name}: damc check --strict: exit {p.returncode}\n{p.stdout}{p.stderr}")
        p = damc("check", path, "--weight", "b=" + os.path.join(tmp, "b.npy"), "--json")
        if not check(p.returncode == 0, f"{name}: damc check --json: exit {p.returncode}: {p.stderr}"):
            continue
        report = json.loads(p.stdout)
        check(report["verdict"] == "pass", f"{name}: check verdict {report['verdict']}")
        bad = [(i["check"], i["subject"]) for i in report["items"] if i["verdict"] not in ("pass",)]
        check(not bad, f"{name}: damc check items not passed: {bad}")
        computed = {i["check"] for i in report["items"]}
        for needed in ("float32", "energy-decrease", "energy-identity", "stability"):
            check(needed in computed, f"{name}: damc check has no {needed} item")


run({"eval": eval_case, "run": run_case, "check": check_case})

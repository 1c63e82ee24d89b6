#!/usr/bin/env python3
"""Run methods end to end against NumPy.

  iterate: `--method iterate` on Model B with the memory layer eliminated is the update of
           modern Hopfield networks, v <- Xi' softmax(beta Xi v) (docs/theory.md §5.2): one
           step (--max-steps 1) equals one update computed with NumPy (float64, 1e-12
           relative), and iterating from a cue with a quarter of its signs flipped reaches the
           stored pattern and converges.
  async:   `--method async` on sign units is the classic single-unit rule: the same states
           and sweep counts as NumPy's sweeps.

usage: methods.py DAMC SOURCE_DIR [--case NAME | --list]"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def damc(*args):
    r = subprocess.run([DAMC, *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def iterate(tmp):
    model = os.path.join(SRC, "tests", "unit", "data", "model_b_eliminated.dam")
    rng = np.random.default_rng(4)
    n, k, beta = 64, 12, 0.3
    xi = np.sign(rng.standard_normal((k, n)))
    cue = xi[5].copy()
    cue[rng.permutation(n)[: n // 4]] *= -1
    np.savez(f"{tmp}/w.npz", Xi=xi)
    np.save(f"{tmp}/cue.npy", cue)
    s = beta * xi @ cue
    p = np.exp(s - s.max())
    want = xi.T @ (p / p.sum())
    code, _, err = damc("run", model, "--weights", f"{tmp}/w.npz", "--set", f"beta={beta}", "--init",
                        f"v={tmp}/cue.npy", "--method", "iterate", "--max-steps", "1",
                        "--precision", "f64", "--out", f"{tmp}/one.npz", "--quiet")
    check(code == 0, f"one step: exit {code}: {err}")
    if code == 0:
        got = np.load(f"{tmp}/one.npz")["x_v"]
        e = np.abs(got - want).max() / np.abs(want).max()
        check(e <= 1e-12, f"one step against NumPy: {e:.2e}")
        print(f"one iterate step = one modern Hopfield update to {e:.1e}")
    for precision in ("f64", "f32"):
        code, _, err = damc("run", model, "--weights", f"{tmp}/w.npz", "--set", f"beta={beta}",
                            "--init", f"v={tmp}/cue.npy", "--method", "iterate", "--precision",
                            precision, "--out", f"{tmp}/it.npz")
        check(code == 0 and "warning" not in err, f"iterate {precision}: exit {code}: {err}")
        if code == 0:
            r = np.load(f"{tmp}/it.npz")
            check(bool(r["converged"]) and np.array_equal(np.sign(r["x_v"]), xi[5]),
                  f"iterate {precision}: converged {r['converged']}, retrieved "
                  f"{np.mean(np.sign(r['x_v']) == xi[5]):.2f}")
            print(f"{precision}: converged in {int(r['steps'])} updates, pattern retrieved")


def async_rule(tmp):
    """`--method async` on a classic Hopfield network of sign units (L = sum|s|, E = -g'Wg/2,
    Hebbian W with a zero diagonal): each sweep sets s_j, j = 0..n-1 in turn, to the sign of
    lower energy, which is sign(W s)_j (ties keep s_j). NumPy runs the same sweeps: the final
    states agree exactly, `steps` is the number of sweeps that changed a unit, and the trace
    has one row more than the sweeps run (step 0) plus the sweep that found no change."""
    model = os.path.join(tmp, "sign.dam")
    with open(model, "w") as f:
        f.write("dim N;\nlayer s[N] { L = sum(abs(s)); }\nsynapse W[N, N] : s <-> s;\n")
    rng = np.random.default_rng(7)
    n, k = 60, 4
    xi = np.sign(rng.standard_normal((k, n)))
    w = xi.T @ xi / n
    np.fill_diagonal(w, 0)
    cues = np.stack([xi[b].copy() for b in range(k)])
    for b in range(k):
        cues[b, rng.permutation(n)[: n // 5]] *= -1
    np.savez(f"{tmp}/w.npz", W=w)
    np.save(f"{tmp}/cues.npy", cues)
    code, _, err = damc("run", model, "--weights", f"{tmp}/w.npz", "--init", f"s={tmp}/cues.npy",
                        "--method", "async", "--precision", "f64", "--out", f"{tmp}/o.npz",
                        "--trace", f"{tmp}/t.csv")
    check(code == 0, f"async: exit {code}: {err}")
    if code:
        return
    out = np.load(f"{tmp}/o.npz")
    for b in range(k):
        s, changed = cues[b].copy(), 0
        while True:
            flips = 0
            for j in range(n):
                h = w[j] @ s
                new = s[j] if h == 0 else np.sign(h)
                flips += new != s[j]
                s[j] = new
            if flips == 0:
                break
            changed += 1
        check(np.array_equal(out["x_s"][b], s), f"async sample {b}: states differ from NumPy")
        check(out["steps"][b] == changed, f"async sample {b}: steps {out['steps'][b]}, NumPy {changed}")
        check(out["converged"][b], f"async sample {b}: not converged")
    rows = [line for line in open(f"{tmp}/t.csv").read().splitlines()[1:]]
    sweeps = max(int(r.split(",")[0]) for r in rows)
    check(sweeps == out["steps"].max() + 1, f"async: trace ends at sweep {sweeps}, steps {out['steps']}")
    print(f"async: {k} cues with {n // 5} of {n} signs flipped, sweeps that changed a unit: "
          f"{list(out['steps'])}, retrieved: {[bool(np.array_equal(out['x_s'][b], xi[b])) for b in range(k)]}")


CASES = {"iterate": iterate, "async": async_rule}

if __name__ == "__main__":
    run(CASES)

#!/usr/bin/env python3
"""Run methods end to end against NumPy.

  iterate: `--method iterate` on Model B with the memory layer eliminated is the update of
           modern Hopfield networks, v <- Xi' softmax(beta Xi v) (docs/theory.md §5.2): one
           step (--max-steps 1) equals one update computed with NumPy (float64, 1e-12
           relative), and iterating from a cue with a quarter of its signs flipped reaches the
           stored pattern and converges.

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


CASES = {"iterate": iterate}

if __name__ == "__main__":
    run(CASES)

#!/usr/bin/env python3
"""damc capacity end to end (docs/cli.md, "damc capacity"; oracles of docs/theory.md §6):

  classic_hopfield: sign units with a Hebbian self-synapse T (--store T: T = (1/N) sum xi xi'
                    with a zero diagonal), --method async, N = 400, 4 seeds: the median overlap
                    is >= 0.98 at alpha <= 0.10 and < 0.5 at alpha = 0.20 (§6.1), with one
                    compile for the sweep; the same network written with patterns as rows
                    (F(x) = x^2, the O(N K) rule) at N = 1000, the setting of the §6.1 oracle;
  classic_numpy:    the Hebbian run against NumPy: from the saved cues, sequential sweeps of
                    sign(T s) with NumPy's T give the same final states bit for bit; the cues
                    differ from their patterns in exactly round(0.1 N) signs; the overlaps,
                    quartiles, exact fraction and bit-error rate recomputed from the saved
                    states agree with the JSON to 1e-12;
  dense_memory:     F(x) = relu(x)^3 (KH16) at N = 100 retrieves at alpha = 4, 29 times the
                    classic limit, where F(x) = x^2 fails at alpha = 0.4 and 2; Model B (softmax)
                    retrieves at alpha = 0.51 with dopri5;
  modern_numpy:     gaussian patterns in a Model B with its memories eliminated, --method
                    iterate, f64: the final states equal NumPy's iteration of
                    v <- Xi' softmax(beta Xi v) to 1e-9, the cosine overlaps agree; noise:S
                    adds N(0, S^2) and mask:P zeroes exactly round(P N) units;
  json_plot:        the JSON has one record per K with every field; --plot writes a PNG of
                    900 x 600 (read from its IHDR chunk), atomically (no temporary file left),
                    with its legend above the axes, where it cannot cover a point: the three
                    series' colours (its text and lines) above the frame's top edge, where no
                    data is drawn; a plot that cannot be written fails with exit 1 and writes
                    nothing;
  errors:           command-line mistakes exit 2 with the option named, model and tensor
                    problems exit 1, and a failing run is never reported as a success.

usage: capacity.py DAMC SOURCE_DIR [--case NAME | --list]"""
import json
import os
import struct
import shutil
import subprocess
import sys
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402
from references import sign_sweeps  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])

SIGN_HEBB = "dim N;\nlayer s[N] { L = sum(abs(s)); }\nsynapse T[N, N] : s <-> s;\n"
ROWS = "dim N;\ndim K;\nlayer v[N] { L = sum(abs(v)); }\nlayer h[K] { L = %s; tau = 0; }\n" \
       "synapse Xi[K, N] : h <-> v;\n"
MODERN = "dim N;\ndim K;\nparam beta = 4;\nlayer v[N] { L = lagr_identity(v); }\n" \
         "layer h[K] { L = lagr_softmax(h, beta); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n"


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def damc(*args, env=None):
    t0 = time.time()
    r = subprocess.run([DAMC, "capacity", *map(str, args), "--no-progress"], capture_output=True,
                       text=True, timeout=600, env=env)
    return r.returncode, r.stdout, r.stderr, time.time() - t0


def capacity_json(*args):
    code, out, err, secs = damc(*args, "--json")
    check(code == 0, f"capacity {' '.join(map(str, args))}: exit {code}: {err}")
    if code:
        return None
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        check(False, f"the JSON does not parse: {e}: {out[:200]}")
        return None


def by_k(report):
    return {r["K"]: r for r in report["results"]} if report else {}


def classic_hopfield(tmp):
    model = write(tmp, "hebb.dam", SIGN_HEBB)
    pooled = {}
    for seed in range(4):
        rep = capacity_json(model, "--store", "T", "--dim", "N=400", "--K", "20,40,80", "--trials", 10,
                            "--method", "async", "--corrupt", "flip:0.1", "--seed", seed)
        if not rep:
            return
        check(rep["rule"] == "hebb" and rep["compiles"] == 1 and rep["N"] == 400,
              f"seed {seed}: Hebbian store, one compile: {rep['rule']}, {rep['compiles']} compiles")
        for k, r in by_k(rep).items():
            pooled.setdefault(k, []).extend(r["overlaps"])
            if k <= 40:
                check(r["overlap_median"] >= 0.98, f"seed {seed}, alpha {k / 400}: median {r['overlap_median']}")
    med = {k: float(np.median(v)) for k, v in pooled.items()}
    check(med[80] < 0.5, f"alpha 0.2: pooled median overlap {med[80]}, wanted < 0.5")
    print(f"Hebbian T, N = 400, 4 seeds x 10 cues: pooled medians {med}")
    # The same network with the patterns as rows (E = -sum_mu (xi_mu . s)^2 / 2, the O(N K)
    # rule), at the N of the oracle.
    rows = write(tmp, "x2.dam", ROWS % "0.5 * sum(h^2)")
    for seed in range(4):
        rep = capacity_json(rows, "--store", "Xi", "--dim", "N=1000", "--K", "50,100,200", "--trials", 10,
                            "--method", "async", "--seed", seed)
        r = by_k(rep)
        if not r:
            return
        check(rep["rule"] == "rows" and rep["compiles"] == 1, f"rows (K a kernel argument, one compile): {rep['rule']}, {rep['compiles']} compiles")
        check(r[50]["overlap_median"] >= 0.98 and r[100]["overlap_median"] >= 0.98,
              f"N = 1000, seed {seed}: medians {r[50]['overlap_median']}, {r[100]['overlap_median']} at alpha <= 0.1")
        check(r[200]["overlap_median"] < 0.5, f"N = 1000, seed {seed}: median {r[200]['overlap_median']} at alpha 0.2")
        print(f"rows, N = 1000, seed {seed}: medians {[r[k]['overlap_median'] for k in (50, 100, 200)]}")


def classic_numpy(tmp):
    model = write(tmp, "hebb.dam", SIGN_HEBB)
    n, trials = 120, 6
    rep = capacity_json(model, "--store", "T", "--dim", f"N={n}", "--K", "6,18", "--trials", trials,
                        "--method", "async", "--order", "sequential", "--precision", "f64",
                        "--seed", 3, "--save", f"{tmp}/s.npz")
    if not rep:
        return
    saved = np.load(f"{tmp}/s.npz")
    for k, r in by_k(rep).items():
        xi, idx = saved[f"patterns_K{k}"], saved[f"index_K{k}"]
        cues, final = saved[f"cues_K{k}"], saved[f"final_K{k}"]
        check(xi.shape == (k, n) and set(np.unique(xi)) == {-1.0, 1.0}, f"K {k}: patterns {xi.shape}")
        check(idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < k, f"K {k}: indices {idx}")
        flipped = (cues != xi[idx]).sum(axis=1)
        check(np.all(flipped == round(0.1 * n)), f"K {k}: flipped signs per cue {flipped}")
        t = xi.T @ xi / n
        np.fill_diagonal(t, 0)
        for b in range(trials):
            s, _ = sign_sweeps(t, cues[b])
            check(np.array_equal(final[b], s), f"K {k}, cue {b}: final state differs from NumPy's")
        m = (xi[idx] * np.sign(final)).mean(axis=1)
        errors = (np.sign(final) != xi[idx]).sum(axis=1)
        check(np.allclose(r["overlaps"], m, atol=1e-12, rtol=0), f"K {k}: overlaps {r['overlaps']} vs {m}")
        check(r["bit_errors"] == errors.tolist(), f"K {k}: bit errors {r['bit_errors']} vs {errors}")
        for key, q in (("overlap_median", 50), ("overlap_q25", 25), ("overlap_q75", 75)):
            check(abs(r[key] - np.percentile(m, q)) <= 1e-12, f"K {k}: {key} {r[key]} vs {np.percentile(m, q)}")
        check(abs(r["exact_fraction"] - np.mean(errors == 0)) <= 1e-12, f"K {k}: exact {r['exact_fraction']}")
        check(abs(r["bit_error_rate"] - errors.sum() / (trials * n)) <= 1e-12, f"K {k}: BER {r['bit_error_rate']}")
        check(abs(r["alpha"] - k / n) <= 1e-15, f"K {k}: alpha {r['alpha']}")
        print(f"K {k}: {trials} sequential runs equal NumPy's; overlaps {np.round(m, 3).tolist()}")


def dense_memory(tmp):
    cubic = write(tmp, "relu3.dam", ROWS % "sum(relu(h)^3)")
    square = write(tmp, "x2.dam", ROWS % "0.5 * sum(h^2)")
    dense = by_k(capacity_json(cubic, "--store", "Xi", "--dim", "N=100", "--K", "20,200,400", "--trials", 20,
                               "--method", "async"))
    classic = by_k(capacity_json(square, "--store", "Xi", "--dim", "N=100", "--K", "40,200", "--trials", 20,
                                 "--method", "async", "--seed", 1))
    if dense and classic:
        for k in (20, 200, 400):
            check(dense[k]["overlap_median"] >= 0.98 and dense[k]["exact_fraction"] >= 0.9,
                  f"relu^3, alpha {k / 100}: median {dense[k]['overlap_median']}, exact {dense[k]['exact_fraction']}")
        for k in (40, 200):
            check(classic[k]["overlap_median"] < 0.5, f"x^2, alpha {k / 100}: median {classic[k]['overlap_median']}")
        print(f"N = 100: relu^3 medians {[dense[k]['overlap_median'] for k in (20, 200, 400)]} at alpha "
              f"0.2, 2, 4; x^2 {[classic[k]['overlap_median'] for k in (40, 200)]} at alpha 0.4, 2")
    # Model B of the examples (softmax memories, integrated, dopri5): alpha = 0.51.
    model_b = os.path.join(SRC, "examples", "model_b.dam")
    r = by_k(capacity_json(model_b, "--store", "Xi", "--K", "100,400", "--trials", 6))
    if r:
        for k in (100, 400):
            check(r[k]["overlap_median"] >= 0.98 and r[k]["converged_fraction"] == 1,
                  f"model_b K {k}: median {r[k]['overlap_median']}, converged {r[k]['converged_fraction']}")
        print(f"model_b, N = 784: medians {[r[k]['overlap_median'] for k in (100, 400)]} at alpha "
              f"{[round(k / 784, 3) for k in (100, 400)]}")


def modern_numpy(tmp):
    model = write(tmp, "modern.dam", MODERN)
    n, trials = 48, 5
    rep = capacity_json(model, "--store", "Xi", "--dim", f"N={n}", "--K", "4,12", "--trials", trials,
                        "--patterns", "gaussian", "--corrupt", "noise:0.3", "--method", "iterate",
                        "--precision", "f64", "--save", f"{tmp}/s.npz", "--seed", 5)
    if not rep:
        return
    check(rep["binary"] is False and rep["patterns"] == "gaussian", f"gaussian: {rep['binary']}")
    saved = np.load(f"{tmp}/s.npz")
    for k, r in by_k(rep).items():
        xi, idx, cues, final = (saved[f"{w}_K{k}"] for w in ("patterns", "index", "cues", "final"))
        noise = cues - xi[idx]
        check(0.25 < noise.std() < 0.35 and abs(noise.mean()) < 0.06, f"K {k}: noise std {noise.std()}")
        want = np.empty_like(cues)
        for b in range(trials):
            v = cues[b]
            for _ in range(10000):
                a = 4 * xi @ v
                p = np.exp(a - a.max())
                new = xi.T @ (p / p.sum())
                done = np.all(np.abs(new - v) <= 1e-7 * (1 + np.abs(v)))
                v = new
                if done:
                    break
            want[b] = v
        err = np.abs(final - want).max()
        check(err <= 1e-9, f"K {k}: final states differ from NumPy's by {err}")
        cos = (xi[idx] * final).sum(1) / np.linalg.norm(xi[idx], axis=1) / np.linalg.norm(final, axis=1)
        check(np.allclose(r["overlaps"], cos, atol=1e-12, rtol=0), f"K {k}: overlaps {r['overlaps']} vs {cos}")
        check(abs(r["exact_fraction"] - np.mean(cos >= 0.999)) <= 1e-12, f"K {k}: exact {r['exact_fraction']}")
        wrong = (np.sign(final) != np.sign(xi[idx])).sum()
        check(abs(r["bit_error_rate"] - wrong / (trials * n)) <= 1e-12, f"K {k}: BER {r['bit_error_rate']}")
        print(f"K {k}: final states within {err:.1e} of NumPy's; cosines {np.round(cos, 4).tolist()}")
    # mask:P zeroes exactly round(P N) units of each cue.
    rep = capacity_json(model, "--store", "Xi", "--dim", f"N={n}", "--K", "3", "--trials", 4,
                        "--corrupt", "mask:0.5", "--method", "iterate", "--save", f"{tmp}/m.npz")
    if rep:
        saved = np.load(f"{tmp}/m.npz")
        cues, xi, idx = saved["cues_K3"], saved["patterns_K3"], saved["index_K3"]
        zeros = (cues == 0).sum(1)
        kept = np.all((cues == 0) | (cues == xi[idx]))
        check(np.all(zeros == n // 2) and kept, f"mask:0.5: zeros per cue {zeros}, others kept {kept}")


def png_size(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    length, = struct.unpack(">I", data[8:12])
    body = data[16:16 + length]
    crc, = struct.unpack(">I", data[16 + length:20 + length])
    if zlib.crc32(b"IHDR" + body) != crc:
        return None
    return struct.unpack(">II", body[:8])


def legend_above_axes(path):
    """The top row of the axes' frame (the first row with a dark run of 60% of the width: the
    legend's box and the title are narrower) and, above it, the number of pixels of each
    series' colour (plot.c's colour map; within 40 of it, for antialiasing)."""
    from PIL import Image  # python3-pil comes with python3-matplotlib (scripts/deps.sh)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    dark = rgb.max(axis=2) < 100
    top = 0
    for y in range(dark.shape[0]):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], dark[y].astype(np.int8), [0]))))
        if (edges[1::2] - edges[::2]).max(initial=0) >= 0.6 * dark.shape[1]:
            top = y
            break
    colours = {"blue": (31, 119, 180), "red": (214, 39, 40), "green": (44, 160, 44)}
    return top, {k: int((np.abs(rgb[:top] - c).max(axis=2) < 40).sum()) for k, c in colours.items()}


def json_plot(tmp):
    model = write(tmp, "relu3.dam", ROWS % "sum(relu(h)^3)")
    out = os.path.join(tmp, "plots")
    os.mkdir(out)
    png = os.path.join(out, "cap.png")
    rep = capacity_json(model, "--store", "Xi", "--dim", "N=64", "--K", "16:64:16", "--trials", 5,
                        "--method", "async", "--plot", png)
    if not rep:
        return
    check([r["K"] for r in rep["results"]] == [16, 32, 48, 64], f"K from 16:64:16: {[r['K'] for r in rep['results']]}")
    fields = {"K", "alpha", "overlap_median", "overlap_q25", "overlap_q75", "exact_fraction",
              "bit_error_rate", "converged_fraction", "steps_mean", "compile_seconds", "run_seconds",
              "overlaps", "bit_errors"}
    for r in rep["results"]:
        check(set(r) == fields and len(r["overlaps"]) == 5 and r["overlap_q25"] <= r["overlap_median"] <= r["overlap_q75"],
              f"record {r}")
    for key in ("model", "store", "rule", "layer", "N", "patterns", "corrupt", "trials", "method", "seed", "compiles"):
        check(key in rep, f"the JSON has no '{key}'")
    size = png_size(png) if os.path.exists(png) else None
    check(size == (900, 600), f"--plot: PNG of {size}, wanted (900, 600)")
    check(os.listdir(out) == ["cap.png"], f"--plot left {os.listdir(out)}")
    if size:
        top, above = legend_above_axes(png)
        check(top > 100 and all(n >= 100 for n in above.values()),
              f"--plot: the legend is not above the axes (frame top {top}, colours above it {above})")
    # The table: a header line, the column names, one row per K.
    code, text, err, _ = damc(model, "--store", "Xi", "--dim", "N=64", "--K", "16,32", "--trials", 3, "--method", "async")
    lines = text.splitlines()
    check(code == 0 and len(lines) == 4 and lines[1].split()[:3] == ["K", "alpha", "overlap"]
          and lines[2].split()[0] == "16" and abs(float(lines[3].split()[1]) - 0.5) < 1e-9, f"table: {text} {err}")
    # A plot that cannot be written: exit 1, nothing on stdout, no file.
    code, text, err, _ = damc(model, "--store", "Xi", "--dim", "N=64", "--K", "16", "--trials", 2,
                              "--method", "async", "--plot", os.path.join(tmp, "missing", "p.png"))
    check(code == 1 and text == "" and "missing" in err, f"--plot into a missing directory: exit {code}: {err}")
    # A plot that fails leaves no --save file either (the plot is drawn first).
    save = os.path.join(tmp, "s.npz")
    code, text, err, _ = damc(model, "--store", "Xi", "--dim", "N=64", "--K", "16", "--trials", 2,
                              "--method", "async", "--save", save, "--plot", out)  # a directory
    check(code == 1 and text == "" and not os.path.exists(save), f"--save with a failing --plot: exit {code}: {err}")
    # PLplot ending its process (a driver that does not load: plexit calls exit()) ends only
    # the drawing child: exit 1 with PLplot's message, no temporary file left.
    drivers, scratch = os.path.join(tmp, "drivers"), os.path.join(tmp, "scratch")
    os.mkdir(drivers)
    os.mkdir(scratch)
    system = subprocess.run(["pkg-config", "--variable=drvdir", "plplot"], capture_output=True,
                            text=True).stdout.strip()
    for f in os.listdir(system):
        if f.endswith(".driver_info"):
            shutil.copy(os.path.join(system, f), drivers)
    with open(os.path.join(drivers, "cairo.so"), "w") as f:
        f.write("not a shared object")
    env = dict(os.environ, PLPLOT_DRV_DIR=drivers, TMPDIR=scratch)
    code, text, err, _ = damc(model, "--store", "Xi", "--dim", "N=64", "--K", "16", "--trials", 2,
                              "--method", "async", "--plot", png + ".2", env=env)
    check(code == 1 and text == "" and "PLplot" in err and not os.listdir(scratch)
          and not os.path.exists(png + ".2"), f"PLplot's exit: exit {code}: {err} {os.listdir(scratch)}")
    print(f"JSON: {len(rep['results'])} records; PNG {size}")


def errors(tmp):
    model_b = os.path.join(SRC, "examples", "model_b.dam")
    custom = os.path.join(SRC, "examples", "custom_energy.dam")
    rows = write(tmp, "relu3.dam", ROWS % "sum(relu(h)^3)")
    few = os.path.join(tmp, "few.npy")
    np.save(few, np.sign(np.random.default_rng(0).standard_normal((5, 784))))
    zeros = os.path.join(tmp, "zeros.npy")
    np.save(zeros, np.vstack([np.ones((2, 784)), np.zeros((1, 784))]))
    np.savez(os.path.join(tmp, "xi.npz"), Xi=np.ones((3, 784)))
    hier = os.path.join(SRC, "examples", "hierarchical.dam")
    cases = [
        ((model_b, "--K", "10"), 2, "--store WEIGHT is required"),
        ((model_b, "--store", "Xi"), 2, "--K LIST is required"),
        ((model_b, "--store", "Xi", "--K", "0,10"), 2, "--K 0,10"),
        ((model_b, "--store", "Xi", "--K", "10,x"), 2, "--K 10,x"),
        ((model_b, "--store", "Xi", "--K", "20:10:5"), 2, "FROM <= TO"),
        ((model_b, "--store", "Xi", "--K", "10,10"), 2, "given twice"),
        ((model_b, "--store", "Xi", "--K", "10", "--corrupt", "blur:0.1"), 2, "expected flip:P, mask:P"),
        ((model_b, "--store", "Xi", "--K", "10", "--corrupt", "flip:1.5"), 2, "from 0 to 1"),
        ((model_b, "--store", "Xi", "--K", "10", "--corrupt", "noise:-1"), 2, ">= 0"),
        ((model_b, "--store", "Xi", "--K", "10", "--corrupt", "mask:0.5", "--method", "async"), 2, "sign(0) = +1"),
        ((model_b, "--store", "Xi", "--K", "10", "--trials", "0"), 2, "--trials 0"),
        ((model_b, "--store", "Xi", "--K", "10", "--patterns", "uniform"), 2, "expected binary, gaussian or a FILE.npy"),
        ((model_b, "--store", "Xi", "--K", "10", "--method", "leapfrog"), 2, "--method leapfrog"),
        ((model_b, "--store", "Xi", "--K", "10", "--tirals", "3"), 2, "did you mean '--trials'"),
        ((model_b, "--store", "Xj", "--K", "10"), 2, "did you mean 'Xi'"),
        ((model_b, "--store", "Xi", "--K", "10", "--layer", "w"), 2, "no layer 'w'"),
        ((model_b, "--store", "Xi", "--K", "10", "--weights", os.path.join(tmp, "xi.npz")), 2, "also given"),
        ((model_b, "--store", "Xi", "--K", "10", "--out", "x.npz"), 2, "damc capacity does not take it"),
        ((model_b, "--store", "Xi", "--K", "3,10", "--patterns", few), 1, "holds 5 patterns"),
        ((model_b, "--store", "Xi", "--K", "3", "--patterns", os.path.join(tmp, "none.npy")), 1, "cannot open"),
        ((model_b, "--store", "Xi", "--K", "2", "--patterns", zeros), 1, "pattern 2 (row 2) is all zeros"),
        ((model_b, "--store", "Xi", "--K", "10", "--layer", "h"), 1, "fixed to 784 by the model"),
        ((custom, "--store", "b", "--K", "10"), 1, "is a vector"),
        ((custom, "--store", "W", "--K", "10"), 1, "not a synapse's"),
        ((rows, "--store", "Xi", "--K", "10"), 2, "--dim N=SIZE"),
        ((hier, "--store", "W23", "--K", "10"), 2, "give --layer NAME"),
        ((hier, "--store", "W23", "--K", "10", "--layer", "x2"), 1, "is fixed to 16 by the model"),
        # A bias per memory b[K]: capacity makes Xi's patterns alone, refused before the sweep.
        ((os.path.join(SRC, "examples", "relu_dead.dam"), "--store", "Xi", "--K", "2,5", "--dim", "N=16"),
         1, "weight 'b' is sized by dim 'K' too"),
        # A run that fails is a failure: sign units need --method async, softmax features do not.
        ((model_b, "--store", "Xi", "--K", "10", "--method", "async"), 1, "binary"),
        ((rows, "--store", "Xi", "--K", "4", "--dim", "N=20", "--method", "dopri5"), 1, "error"),
    ]
    for args, want, text in cases:
        code, out, err, _ = damc(*args)
        check(code == want and text in err and "Traceback" not in err,
              f"damc capacity {' '.join(map(str, args[1:]))}: exit {code} (wanted {want}), "
              f"'{text}' in: {err.strip()}")
        if code:
            check(out == "", f"damc capacity {' '.join(map(str, args[1:]))}: stdout on failure: {out[:100]}")
    print(f"{len(cases)} command lines refused with the right status and message")


CASES = {"classic_hopfield": classic_hopfield, "classic_numpy": classic_numpy, "dense_memory": dense_memory,
         "modern_numpy": modern_numpy, "json_plot": json_plot, "errors": errors}


if __name__ == "__main__":
    run(CASES)

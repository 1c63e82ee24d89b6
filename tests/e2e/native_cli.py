"""End-to-end tests of `damc eval` and `damc run` on NumPy files.

Usage: native_cli.py DAMC SOURCE_DIR [--case NAME] [--list] [--expect-cases NAME...].
Needs Debian's /usr/bin/python3 with python3-numpy.

Each case runs in a temporary directory of its own and writes every file it needs there, so
that any one runs alone: `--case NAME` runs that case (`run_examples` runs every example,
`run_examples/model_b` one), no --case runs them all, `--list` prints the names, and
`--expect-cases` checks that the names given (the tests CMake registers) are exactly those.

1. For every example: random weights (symmetric where the model says so) and states;
   `damc eval --out` against a NumPy evaluation of the model's equations where they are
   simple enough to write here (Model B), and `damc run` with every integrator:
   the energy in the trace never rises beyond rounding (dopri5, rk4: the flow decreases E,
   docs/theory.md eq. 1.4), and the final states are fixed points that `damc eval` confirms.
2. Every bad input of the issue gives exit 1, a message naming the file, the tensor and the
   shapes, and leaves no output file behind.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

DAMC, SRC = sys.argv[1], sys.argv[2]
EXAMPLES = os.path.join(SRC, "examples")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def damc(*args):
    p = subprocess.run([DAMC, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def sizes_of(model):
    """The dims a model's weights need, from `damc emit --plan`-free reasoning: we declare
    every unbound dim as 6 and read the bound ones from the text."""
    dims = {}
    for line in open(model):
        line = line.split("//")[0].strip()
        if line.startswith("dim "):
            body = line[4:].rstrip(";").strip()
            if "=" in body:
                name, value = body.split("=")
                dims[name.strip()] = int(eval(value.strip()))
            else:
                dims[body] = 6
    return dims


def weights_for(model, rng):
    """Random weights for every weight and synapse statement of `model`."""
    dims = sizes_of(model)
    weights = {}
    for line in open(model):
        line = line.split("//")[0].strip()
        for kw in ("weight ", "synapse "):
            if line.startswith(kw):
                name = line[len(kw):line.index("[")].strip()
                shape = [dims[s.strip()] if not s.strip().isdigit() else int(s)
                         for s in line[line.index("[") + 1:line.index("]")].split(",")]
                w = rng.standard_normal(shape) / np.sqrt(shape[-1])
                self_synapse = kw == "synapse " and "<->" in line and \
                    line.split(":")[1].split("<->")[0].strip() == line.split("<->")[1].strip(" ;")
                if "symmetric" in line or self_synapse:
                    w = (w + w.T) / 2
                weights[name] = w
    return weights


def layers_of(model):
    dims = sizes_of(model)
    out = {}
    for line in open(model):
        line = line.split("//")[0].strip()
        if line.startswith("layer "):
            name = line[6:line.index("[")].strip()
            size = line[line.index("[") + 1:line.index("]")].strip()
            out[name] = dims[size] if size in dims else int(size)
    return out


def eliminated_of(model):
    """The layers of MODEL with tau = 0: eliminated, they take no state (x = u)."""
    text = re.sub(r"//[^\n]*", "", open(model).read())
    return {m.group(1) for m in re.finditer(r"layer\s+(\w+)\s*\[[^\]]*\]\s*\{([^}]*)\}", text)
            if re.search(r"\btau\s*=\s*0\s*;", m.group(2))}


def example_names():
    return sorted(f[:-4] for f in os.listdir(EXAMPLES) if f.endswith(".dam"))


def write_example_weights(name, tmp, rng):
    """Random weights for examples/NAME.dam in TMP/NAME_w.npz; returns the path."""
    wfile = os.path.join(tmp, name + "_w.npz")
    np.savez(wfile, **weights_for(os.path.join(EXAMPLES, name + ".dam"), rng))
    return wfile


def example_rng(name):
    """The generator as it stands when example NAME draws its data: one generator (seed 1)
    draws every example's weights and initial states in turn, in name order, so that each
    example gets the same data whether it runs alone or after the others."""
    rng = np.random.default_rng(1)
    for other in example_names():
        if other == name:
            return rng
        model = os.path.join(EXAMPLES, other + ".dam")
        weights_for(model, rng)
        for n in layers_of(model).values():
            rng.standard_normal((3, n))
    raise ValueError(f"no example {name}")


def run_example(tmp, name):
    rng = example_rng(name)
    model = os.path.join(EXAMPLES, name + ".dam")
    wfile = write_example_weights(name, tmp, rng)
    states = []
    for layer, n in layers_of(model).items():
        path = os.path.join(tmp, f"{name}_{layer}.npy")
        np.save(path, 0.5 * rng.standard_normal((3, n)))  # drawn for every layer: see example_rng
        if layer not in eliminated_of(model):
            states += ["--init", f"{layer}={path}"]
    for method, extra in (("dopri5", []), ("rk4", ["--dt", "0.02"]), ("euler", ["--dt", "0.01"])):
        out = os.path.join(tmp, f"{name}_{method}.npz")
        trace = os.path.join(tmp, f"{name}_{method}.csv")
        code, _, err = damc("run", model, "--weights", wfile, *states, "--method", method,
                            "--precision", "f64", "--max-steps", "20000", "--out", out,
                            "--trace", trace, *extra)
        check(code == 0, f"{name} {method}: run failed: {err}")
        if code:
            continue
        rows = np.genfromtxt(trace, delimiter=",", names=True)
        worst = 0.0
        for s in range(3):
            e = rows["E"][rows["sample"] == s]
            rise = np.diff(e) / (1 + np.abs(e[:-1]))
            worst = max(worst, rise.max(initial=-np.inf))
        # Rounding of E (a sum of O(n) terms in float64) stays far below 1e-10 relative;
        # an explicit step that overshoots would show a rise of order dt^2.
        check(worst <= 1e-10, f"{name} {method}: E rose by {worst:.3g} (relative)")
        res = np.load(out)
        check(res["converged"].all(), f"{name} {method}: not converged: {res['steps']}")
        # The final states are fixed points: damc eval agrees.
        ev_states = []
        for layer in set(layers_of(model)) - eliminated_of(model):
            path = os.path.join(tmp, f"{name}_{layer}_final.npy")
            np.save(path, res["x_" + layer])
            ev_states += ["--state", f"{layer}={path}"]
        evout = os.path.join(tmp, f"{name}_eval.npz")
        code, _, err = damc("eval", model, "--weights", wfile, *ev_states, "--precision",
                            "f64", "--out", evout)
        check(code == 0, f"{name}: eval at the fixed point failed: {err}")
        if code == 0:
            ev = np.load(evout)
            most = max(np.abs(ev[k]).max() for k in ev.files if k.startswith("dxdt_"))
            check(most < 1e-5, f"{name} {method}: |dx/dt| = {most:.3g} at the final state")
            check(np.allclose(ev["E"], res["E"], rtol=1e-12, atol=1e-12),
                  f"{name} {method}: E differs between run and eval")
        print(f"{name:18s} {method:6s} steps {int(res['steps'].max()):6d}  "
              f"max relative rise of E {worst:.1e}")


def model_b_against_numpy(tmp):
    """damc eval of Model B against the equations written in NumPy."""
    rng = np.random.default_rng(2)
    n, k, beta = 16, 5, 8.0
    xi = rng.standard_normal((k, n)) / 4
    v = rng.standard_normal((2, n))
    h = rng.standard_normal((2, k))
    inp = 0.1 * rng.standard_normal((2, n))
    files = {}
    for key, arr in (("xi", xi), ("v", v), ("h", h), ("i", inp)):
        files[key] = os.path.join(tmp, f"mb_{key}.npy")
        np.save(files[key], arr)
    model = os.path.join(tmp, "mb.dam")
    with open(model, "w") as f:
        f.write(open(os.path.join(EXAMPLES, "model_b.dam")).read().replace("dim N = 784;", "dim N = 16;"))
    out = os.path.join(tmp, "mb_out.npz")
    code, _, err = damc("eval", model, "--weight", f"Xi={files['xi']}", "--state", f"v={files['v']}",
                        "--state", f"h={files['h']}", "--input", f"v={files['i']}",
                        "--precision", "f64", "--out", out)
    check(code == 0, f"model B eval: {err}")
    if code:
        return
    r = np.load(out)
    z = beta * h
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    u_v = p @ xi + inp
    u_h = v @ xi.T
    energy = (0.5 * (v * v).sum(1) - (inp * v).sum(1)) + ((h * p).sum(1) - lse / beta) - (p * u_h).sum(1)
    for key, want in (("g_h", p), ("u_v", u_v), ("u_h", u_h), ("dxdt_v", u_v - v),
                      ("dxdt_h", (u_h - h) / 0.05), ("E", energy)):
        err_rel = np.abs(r[key] - want).max() / max(np.abs(want).max(), 1e-300)
        check(err_rel < 1e-12, f"model B {key}: relative error {err_rel:.2e} against NumPy")
    print(f"model B eval against NumPy: max relative error "
          f"{max(np.abs(r[k] - w).max() / np.abs(w).max() for k, w in (('E', energy), ('u_v', u_v))):.1e}")


def bad_inputs(tmp):
    model = os.path.join(EXAMPLES, "model_b.dam")
    rng = np.random.default_rng(3)
    good = os.path.join(tmp, "good.npz")
    np.savez(good, Xi=rng.standard_normal((5, 784)))
    v = os.path.join(tmp, "v.npy")
    np.save(v, rng.standard_normal(784))

    def bad(args, *needles, out=None, status=1):
        code, so, se = damc(*args)
        ok = code == status and all(n in se for n in needles)
        if out:
            ok = ok and not os.path.exists(out) and not any(
                f.startswith(os.path.basename(out) + ".tmp") for f in os.listdir(tmp))
        check(ok, f"bad input {args[2:]}: exit {code}, stderr: {se.strip()}")

    # A missing weight, and one the model does not use.
    bad(["eval", model, "--state", f"v={v}"], "weight 'Xi'", "missing")
    extra = os.path.join(tmp, "extra.npz")
    np.savez(extra, Xi=rng.standard_normal((5, 784)), W=np.zeros(3))
    bad(["eval", model, "--weights", extra], "extra.npz", "'W'", "not a weight")
    # A shape that contradicts a dim.
    wrong = os.path.join(tmp, "wrong.npz")
    np.savez(wrong, Xi=rng.standard_normal((5, 783)))
    bad(["eval", model, "--weights", wrong], "wrong.npz", "'Xi'", "[5, 783]", "N=784")
    # A symmetric weight that is not.
    hop = os.path.join(EXAMPLES, "hopfield_classic.dam")
    asym = os.path.join(tmp, "asym.npz")
    np.savez(asym, T=rng.standard_normal((6, 6)))
    bad(["eval", hop, "--weights", asym], "asym.npz", "'T'", "symmetric")
    # NaN and Inf in tensors.
    nan = os.path.join(tmp, "nan.npz")
    x = rng.standard_normal((5, 784))
    x[2, 7] = np.nan
    np.savez(nan, Xi=x)
    bad(["eval", model, "--weights", nan], "nan.npz", "'Xi'", "NaN", "[2, 7]")
    vinf = os.path.join(tmp, "vinf.npy")
    y = rng.standard_normal(784)
    y[3] = np.inf
    np.save(vinf, y)
    bad(["eval", model, "--weights", good, "--state", f"v={vinf}"], "vinf.npy", "[3]")
    # Dtypes the reader does not support.
    cplx = os.path.join(tmp, "cplx.npz")
    np.savez(cplx, Xi=np.zeros((5, 784), dtype=np.complex128))
    bad(["eval", model, "--weights", cplx], "cplx.npz", "'Xi'", "complex")
    # Truncated and corrupt files.
    trunc = os.path.join(tmp, "trunc.npy")
    np.save(trunc, rng.standard_normal(784))
    with open(trunc, "r+b") as f:
        f.truncate(500)
    bad(["eval", model, "--weights", good, "--state", f"v={trunc}"], "trunc.npy")
    corrupt = os.path.join(tmp, "corrupt.npz")
    with open(corrupt, "wb") as f:
        f.write(b"PK\x03\x04 this is not a zip archive")
    bad(["eval", model, "--weights", corrupt], "corrupt.npz")
    # --set of an unknown param; a state for an unknown layer: command-line mistakes (2).
    bad(["eval", model, "--weights", good, "--set", "gamma=2"], "gamma", "no param", status=2)
    bad(["eval", model, "--weights", good, "--state", f"q={v}"], "no layer 'q'", status=2)
    # --dim against a weight's shape: a conflict of the inputs, exit 1 in either order.
    free = os.path.join(tmp, "free.dam")
    with open(free, "w") as f:
        f.write("dim N;\ndim K;\nlayer v[N] { L = lagr_identity(v); }\n"
                "layer h[K] { L = lagr_softmax(h); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n")
    w8 = os.path.join(tmp, "w8.npz")
    np.savez(w8, Xi=np.ones((3, 8)))
    bad(["eval", free, "--dim", "N=16", "--weights", w8], "[3, 8]", "N = 16 from --dim")
    bad(["eval", free, "--weights", w8, "--dim", "N=16"], "'N' is already 8 (from Xi)")
    # A state of the wrong size names both shapes.
    short = os.path.join(tmp, "short.npy")
    np.save(short, np.zeros(10))
    bad(["eval", model, "--weights", good, "--state", f"v={short}"], "layer 'v'", "[10]", "784")
    # A run that overflows names the layer, the sample and the step; no output is left.
    exp_model = os.path.join(tmp, "blowup.dam")
    with open(exp_model, "w") as f:
        f.write("dim N = 3;\nlayer v[N] { L = lagr_identity(v); }\n"
                "synapse W[N, N] : v <-> v;\n")
    blow = os.path.join(tmp, "blow.npz")
    np.savez(blow, W=3 * np.eye(3))
    out = os.path.join(tmp, "blow_out.npz")
    v3 = os.path.join(tmp, "v3.npy")
    np.save(v3, np.ones(3))
    bad(["run", exp_model, "--weights", blow, "--init", f"v={v3}", "--method", "euler",
         "--dt", "0.5", "--max-steps", "100000", "--out", out], "layer 'v'", "sample 0", "step",
        out=out)


def emitted_code(tmp):
    """damc emit --asm: the kernels' loops are vectorised (SIMD registers, packed math)."""
    rng = np.random.default_rng(4)
    w = os.path.join(tmp, "emit.npz")
    np.savez(w, Xi=rng.standard_normal((64, 784)))
    model = os.path.join(EXAMPLES, "model_b.dam")
    code, asm, err = damc("emit", model, "--weights", w, "--asm")
    check(code == 0, f"emit --asm: {err}")
    packed = sum(asm.count(op) for op in ("vmulps", "vfmadd", "vaddps"))
    wide = asm.count("%ymm") + asm.count("%zmm")
    check(packed > 20 and wide > 50, f"emit --asm: {packed} packed ops, {wide} wide registers")
    code, plan, err = damc("emit", model, "--weights", w, "--plan")
    check(code == 0 and "matmul" in plan and "gemm" in plan, f"emit --plan: {err}")
    obj = os.path.join(tmp, "k.o")
    code, _, err = damc("emit", model, "--weights", w, "--obj", obj)
    check(code == 0 and open(obj, "rb").read(4) == b"\x7fELF", f"emit --obj: {err}")
    print(f"emit --asm: {packed} packed float instructions, {wide} uses of ymm/zmm registers")
    # The kernels take the weights as arguments: with every size known (here --dim), emit
    # needs no weight file; where a size is unknown, the missing weight is named.
    code, plan2, err = damc("emit", model, "--dim", "K=64", "--plan")
    check(code == 0 and plan2 == plan, f"emit --plan without weights: exit {code}: {err}")
    code, _, err = damc("emit", model, "--dim", "K=64", "--obj", os.path.join(tmp, "k2.o"))
    check(code == 0, f"emit --obj without weights: exit {code}: {err}")
    code, _, err = damc("emit", model, "--plan")
    check(code == 1 and "weight 'Xi' [K, N=784] is missing" in err, f"emit, K unknown: {err}")


def clamp_noise_input(tmp):
    """--clamp holds neurons exactly; --noise with --seed is reproducible; --input moves the
    fixed point, which eval (given the same input) confirms."""
    before = len(failures)
    rng = np.random.default_rng(5)
    model = os.path.join(EXAMPLES, "model_b.dam")
    w = os.path.join(tmp, "cn.npz")
    np.savez(w, Xi=rng.standard_normal((12, 784)) / 28)
    v0, inp, mask = (os.path.join(tmp, f) for f in ("cn_v.npy", "cn_i.npy", "cn_m.npy"))
    start = rng.standard_normal((2, 784))
    np.save(v0, start)
    np.save(inp, 0.2 * rng.standard_normal(784))
    clamp = np.zeros(784)
    clamp[::3] = 1
    np.save(mask, clamp)
    out = os.path.join(tmp, "cn_out.npz")
    code, _, err = damc("run", model, "--weights", w, "--init", f"v={v0}", "--clamp", f"v={mask}",
                        "--input", f"v={inp}", "--precision", "f64", "--out", out)
    check(code == 0, f"clamped run: {err}")
    if code == 0:
        x = np.load(out)["x_v"]
        check(np.array_equal(x[:, ::3], start[:, ::3]), "clamped neurons moved")
        check(not np.allclose(x[:, 1::3], start[:, 1::3]), "free neurons did not move")
    # Unclamped, with the input: a fixed point that eval confirms with the same input.
    code, _, err = damc("run", model, "--weights", w, "--init", f"v={v0}", "--input", f"v={inp}",
                        "--precision", "f64", "--out", out)
    check(code == 0, f"run with input: {err}")
    if code == 0:
        r = np.load(out)
        fv, fh = os.path.join(tmp, "cn_fv.npy"), os.path.join(tmp, "cn_fh.npy")
        np.save(fv, r["x_v"])
        np.save(fh, r["x_h"])
        ev = os.path.join(tmp, "cn_ev.npz")
        code, _, err = damc("eval", model, "--weights", w, "--state", f"v={fv}", "--state",
                            f"h={fh}", "--input", f"v={inp}", "--precision", "f64", "--out", ev)
        e = np.load(ev) if code == 0 else None
        check(e is not None and np.abs(e["dxdt_v"]).max() < 1e-5 and np.abs(e["dxdt_h"]).max() < 1e-5,
              f"the run with an input did not end at a fixed point: {err}")
    # Langevin noise: the same seed gives the same run, another seed another one.
    runs = []
    for seed in ("1", "1", "2"):
        code, _, err = damc("run", model, "--weights", w, "--init", f"v={v0}", "--method", "euler",
                            "--dt", "0.01", "--noise", "0.01", "--seed", seed, "--max-steps", "200",
                            "--tol", "0", "--precision", "f64", "--out", out)
        check(code == 0, f"noisy run: {err}")
        runs.append(np.load(out)["x_v"] if code == 0 else None)
    if all(r is not None for r in runs):
        check(np.array_equal(runs[0], runs[1]), "the same seed gave different runs")
        check(not np.array_equal(runs[0], runs[2]), "different seeds gave the same run")
    # A usage error (exit 2), found before any file is read.
    code, _, err = damc("run", model, "--weights", w, "--method", "rk4", "--noise", "0.1")
    check(code == 2 and "--noise needs --method euler" in err, f"noise with rk4: exit {code}, {err}")
    print("clamp, input and noise: ok" if len(failures) == before else "clamp, input and noise: see failures")


def command_line():
    """Exit statuses of the command line itself (cli.md): help and version 0, usage 2,
    a missing file 1, a program of the checks whose name does not end in .c 2."""
    model = os.path.join(EXAMPLES, "model_b.dam")
    cases = [
        ((), 2), (("--help",), 0), (("--version",), 0), (("frobnicate",), 2), (("--frob",), 2),
        (("parse",), 2), (("parse", model, "--frob"), 2), (("parse", "/no/such.dam"), 1),
        (("explain", model, "--eliminate"), 2), (("explain", model, "--eliminate", "q"), 2),
        (("run", "--help"), 0), (("eval", "--help"), 0), (("emit", "-h"), 0), (("bench", "--help"), 0),
        (("run", model, "--method", "leapfrog"), 2), (("run", model, "--dt", "-1"), 2),
        (("run", model, "--max-steps", "1.5"), 2), (("eval", model, "--set", "beta"), 2),
        (("run", model, "--max-steps", "0"), 2), (("run", model, "--threads", "0"), 2),
        (("run", model, "--threads", "9007199254740992"), 1),  # taken (at most 1024), then no weight
        (("eval", model, "--threads", "0"), 2), (("bench", model, "--threads", "0"), 2),
        (("check", model, "--threads", "0"), 2), (("check", model, "--threads", "1"), 0),
        (("eval", model, "--threads", "2"), 1),  # taken, then no weight
        (("eval", model, "--precision", "f16"), 2), (("check", model), 0),
        (("check", model, "--emit-c", "x.txt"), 2),
    ]
    for args, want in cases:
        code, out, err = damc(*args)
        check(code == want, f"damc {' '.join(args)}: exit {code}, wanted {want}: {err.strip()[:200]}")
        if "0" in args[-1:]:  # a count that must be at least 1 says so
            check("from 1 to 2^53" in err, f"damc {' '.join(args)}: {err.strip()}")
        if want == 2:
            hint = "--help" in err or "its layers" in err
            check("error" in err and hint, f"damc {' '.join(args)}: no usage hint: {err}")
    print(f"command line: {len(cases)} cases")


def async_rule(tmp):
    """--method async on binary layers: docs/theory.md §4.6 oracle K1 (one sweep takes
    (1, 1, -1, 1) to (1, 1, 1, 1) and E from -8 to -64), E never rises over the sweeps of a
    larger dense associative memory, which retrieves a corrupted pattern, and a layer that
    is not binary is refused."""
    model = os.path.join(tmp, "kh16.dam")
    with open(model, "w") as f:
        f.write("dim N;\ndim K;\nlayer v[N] { L = sum(abs(v)); }\n"
                "layer h[K] { L = sum(relu(h)^3); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n")
    xi, s0, out, trace = (os.path.join(tmp, f) for f in ("k_xi.npy", "k_s.npy", "k.npz", "k.csv"))
    np.save(xi, np.array([[1, 1, 1, 1], [1, -1, 1, -1]], float))
    np.save(s0, np.array([1, 1, -1, 1], float))
    code, _, err = damc("run", model, "--weight", f"Xi={xi}", "--init", f"v={s0}", "--method",
                        "async", "--precision", "f64", "--trace", trace, "--out", out)
    check(code == 0, f"async: {err}")
    if code == 0:
        r = np.load(out)
        e = np.genfromtxt(trace, delimiter=",", names=True)["E"]
        check(list(r["x_v"]) == [1, 1, 1, 1] and e[0] == -8 and e[1] == -64 and r["converged"],
              f"async K1: {r['x_v']}, E {e}")
    rng = np.random.default_rng(6)
    patterns = rng.choice([-1.0, 1.0], size=(10, 40))
    np.save(xi, patterns)
    cue = patterns[4].copy()
    cue[:8] *= -1
    np.save(s0, np.stack([cue, patterns[2]]))
    code, _, err = damc("run", model, "--weight", f"Xi={xi}", "--init", f"v={s0}", "--method",
                        "async", "--precision", "f64", "--trace", trace, "--out", out)
    check(code == 0, f"async retrieval: {err}")
    if code == 0:
        r = np.load(out)
        rows = np.genfromtxt(trace, delimiter=",", names=True)
        rises = max(np.diff(rows["E"][rows["sample"] == s]).max(initial=-1) for s in (0, 1))
        check(rises <= 0, f"async: E rose over a sweep by {rises}")
        check(np.array_equal(r["x_v"][0], patterns[4]) and np.array_equal(r["x_v"][1], patterns[2]),
              "async: the patterns were not retrieved")
    wfile = write_example_weights("model_a", tmp, np.random.default_rng(8))
    code, _, err = damc("run", os.path.join(EXAMPLES, "model_a.dam"), "--weights", wfile,
                        "--method", "async")
    check(code == 1 and "binary" in err, f"async on tanh features: exit {code}, {err}")
    print("async: K1 oracle, retrieval and refusal: done")


# The cases, in the order a full run takes them; each gets a fresh temporary directory.
CASES = {
    "command_line": lambda tmp: command_line(),
    "clamp_noise_input": clamp_noise_input,
    "emitted_code": emitted_code,
    "model_b_against_numpy": model_b_against_numpy,
    **{f"run_examples/{name}": (lambda tmp, name=name: run_example(tmp, name))
       for name in example_names()},
    "async_rule": async_rule,
    "bad_inputs": bad_inputs,
}


def main(argv):
    if "--list" in argv:
        print("\n".join(CASES))
        return 0
    if "--expect-cases" in argv:
        given = set(argv[argv.index("--expect-cases") + 1:])
        missing, unknown = sorted(set(CASES) - given), sorted(given - set(CASES))
        for name in missing:
            print(f"FAIL: case {name} is not registered as a test")
        for name in unknown:
            print(f"FAIL: test {name} names no case")
        return 1 if missing or unknown else 0
    chosen = list(CASES)
    if "--case" in argv:
        if argv.index("--case") + 1 == len(argv):
            print("native_cli.py: --case needs a name (--list prints them)")
            return 2
        want = argv[argv.index("--case") + 1]
        chosen = [c for c in CASES if c == want or c.startswith(want + "/")]
        if not chosen:
            print(f"native_cli.py: no case '{want}'; the cases: {', '.join(CASES)}")
            return 2
    for name in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            before = len(failures)
            CASES[name](tmp)
            if len(failures) > before:
                print(f"case {name}: {len(failures) - before} failures")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


sys.exit(main(sys.argv[3:]))

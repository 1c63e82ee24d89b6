#!/usr/bin/env python3
"""Every failure loud, every output whole: each kind of fault of the command line, with the
inputs it needs built here and the right value checked.

  convergence:  Model B (N = 784, 20 +-1 memories, a cue with 25% of its signs flipped)
                converges with the default options in float32 and float64: converged is a
                true bool, steps an int64 below the limit, the memory retrieved; a run cut
                short warns (layer, count, residual) and --strict makes it an error.
  nonfinite:    a softmax whose logits overflow float32 is refused, never NaN with exit 0,
                and exact in float64; a param beyond float32 refused; NaN at t = 0 named.
  outputs:      /dev/full and a file-size limit exit 1 with no file left; a diverging run
                keeps its trace as .partial; --out naming an input or the trace refused;
                --out through a symbolic link keeps the link; /dev/null stays a device.
  sizes_masks:  a zero-size weight and a non-binary mask are refused with their index.
  layer_arrays: a state or clamp of an eliminated layer, an input of a layer without
                `input`: refused by run, eval and check with one message.
  command_line: --option=value, "did you mean", damc help, a transposed weight named,
                .npz members with and without .npy, extra members, numbers that round-trip.
  paths:        a directory as model (one message in every command), /dev/zero, a .npz from
                a pipe, SIGTERM leaving no temporary file and a partial trace.
  progress:     --progress draws step, t, E and samples converged on stderr.

usage: failures_loud.py DAMC SOURCE_DIR [--case NAME | --list]"""
import glob
import os
import resource
import signal
import stat
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MODEL_B = os.path.join(SRC, "examples", "model_b.dam")


def damc(*args, **kw):
    r = subprocess.run([DAMC, *args], capture_output=True, text=True, timeout=300, **kw)
    return r.returncode, r.stdout, r.stderr


def leftovers(tmp, name):
    """Files in tmp that start with `name` (the output or its temporaries)."""
    return [f for f in os.listdir(tmp) if f.startswith(name)]


def memories(tmp, k=20, n=784, seed=5):
    rng = np.random.default_rng(seed)
    xi = np.sign(rng.standard_normal((k, n)))
    cue = xi[3].copy()
    cue[rng.permutation(n)[: n // 4]] *= -1
    np.savez(os.path.join(tmp, "w.npz"), Xi=xi)
    np.save(os.path.join(tmp, "cue.npy"), cue)
    return xi


def convergence(tmp):
    xi = memories(tmp)
    w, cue = os.path.join(tmp, "w.npz"), os.path.join(tmp, "cue.npy")
    for precision in ("f32", "f64"):
        out = os.path.join(tmp, f"o_{precision}.npz")
        code, _, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}",
                            "--precision", precision, "--out", out)
        check(code == 0 and "warning" not in err, f"run {precision}: exit {code}: {err}")
        if code:
            continue
        r = np.load(out)
        check(r["converged"].dtype == np.bool_ and bool(r["converged"]),
              f"{precision}: converged {r['converged']!r}")
        check(r["steps"].dtype == np.int64 and 0 < int(r["steps"]) < 10000,
              f"{precision}: steps {r['steps']!r}")
        check(np.array_equal(np.sign(r["x_v"]), xi[3]), f"{precision}: the memory not retrieved")
        print(f"{precision}: converged in {int(r['steps'])} steps, memory retrieved, "
              f"max |x - xi| = {np.abs(r['x_v'] - xi[3]).max():.1e}")
    code, _, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}", "--max-steps", "20")
    check(code == 0 and "warning: 1 of 1 samples did not converge" in err and "layer '" in err
          and "--max-steps" in err, f"cut short: exit {code}: {err}")
    out = os.path.join(tmp, "strict.npz")
    code, _, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}", "--max-steps", "20",
                        "--strict", "--out", out)
    check(code == 1 and "did not converge" in err and not leftovers(tmp, "strict.npz"),
          f"--strict: exit {code}: {err}")


def nonfinite(tmp):
    memories(tmp, k=5)
    w = os.path.join(tmp, "w.npz")
    h = os.path.join(tmp, "h.npy")
    np.save(h, np.array([1e10, 0, -1e10, 5e9, 1.0]))
    # beta h = 1e40 overflows float32: refused with the output named, never NaN with exit 0.
    code, out, err = damc("eval", MODEL_B, "--weights", w, "--set", "beta=1e30", "--state", f"h={h}")
    check(code == 1 and "NaN" in err and "output '" in err and "nan" not in out.lower(),
          f"f32 overflow: exit {code}: {err}")
    # In float64 the stable softmax is exact: g_h = e_0, and E_h = Lambda - I.g = 0.
    o = os.path.join(tmp, "o.npz")
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--set", "beta=1e30", "--state", f"h={h}",
                        "--precision", "f64", "--out", o)
    check(code == 0, f"f64 overflow: exit {code}: {err}")
    if code == 0:
        r = np.load(o)
        check(np.array_equal(r["g_h"], [1, 0, 0, 0, 0]), f"f64: g_h = {r['g_h']}")
        check(all(np.isfinite(r[k]).all() for k in r.files), "f64: a non-finite output")
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--set", "beta=1e39")
    check(code == 1 and "does not fit float32" in err, f"beta = 1e39 in f32: exit {code}: {err}")
    vbig = os.path.join(tmp, "vbig.npy")
    v = np.zeros(784)
    v[5] = 1e39
    np.save(vbig, v)
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--state", f"v={vbig}")
    check(code == 1 and "does not fit float32" in err and "[5]" in err,
          f"a float64 state beyond float32: exit {code}: {err}")
    # An infinity is no number in float64 either: said as such, without advice on the precision.
    v[5] = -np.inf
    np.save(vbig, v)
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--state", f"v={vbig}")
    check(code == 1 and f"'{vbig}' has -Inf at [5]" in err and "precision" not in err,
          f"a float64 state with -Inf: exit {code}: {err}")
    # sqrt(p) with p = -1 is NaN whatever the state: refused before the run, at its place, in
    # both precisions.
    model = os.path.join(tmp, "sqrt.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nparam p = 1;\nlayer v[N] { L = lagr_identity(v); }\n"
                "energy -sqrt(p) * sum(g(v));\n")
    for precision in ("f32", "f64"):
        code, _, err = damc("run", model, "--set", "p=-1", "--precision", precision)
        check(code == 1 and err == f"{model}:4:9: error: square root of a negative number: the "
              "argument is -1 with the params as set (p = -1)\n"
              "    4 | energy -sqrt(p) * sum(g(v));\n"
              "      |         ^~~~~~~\n", f"sqrt(p), p = -1, {precision}: exit {code}: {err}")
    # sqrt(p g(v)) depends on the state: NaN at t = 0, named there.
    with open(model, "w") as f:
        f.write("dim N = 3;\nparam p = 1;\nlayer v[N] { L = lagr_identity(v); }\n"
                "energy -sum(sqrt(p * g(v)));\n")
    np.save(os.path.join(tmp, "ones.npy"), np.ones(3))
    code, _, err = damc("run", model, "--set", "p=-1", "--precision", "f64", "--init",
                        f"v={tmp}/ones.npy")
    check(code == 1 and "t = 0" in err and "layer 'v'" in err and "param" in err
          and "diverged" not in err, f"NaN at t = 0: exit {code}: {err}")
    # Whether float64 would give a finite value is found out, not guessed: g = v^3 at
    # v = 2^43 is 2^129, beyond float32 and exact in float64 (so is u = g^3 at t = 0);
    # log(c + v) with c = -5 is NaN in both precisions, and then the precision is not blamed.
    cube, big = os.path.join(tmp, "cube.dam"), os.path.join(tmp, "big.npy")
    with open(cube, "w") as f:
        f.write("layer v[2] { L = sum(v^4) / 4; }\n")
    np.save(big, np.array([2.0**43, 1.0]))
    code, _, err = damc("eval", cube, "--state", f"v={big}")
    check(code == 1 and err == "damc eval: error: output 'g_v' is +Inf at sample 0, index 0: the "
          "model is not finite at these states and params; it overflows float32 there (in float64 "
          "it is 6.80564733841877e+38): use --precision f64\n", f"v^3 in f32: exit {code}: {err}")
    code, _, err = damc("eval", cube, "--state", f"v={big}", "--precision", "f64")
    check(code == 0, f"v^3 in f64: exit {code}: {err}")
    with open(cube, "w") as f:
        f.write("layer v[2] { L = lagr_identity(v); }\nenergy -sum(g(v)^4) / 4;\n")
    code, _, err = damc("run", cube, "--init", f"v={big}")
    check(code == 1 and err == "damc run: error: dx/dt of layer 'v' is inf at t = 0 (sample 0, "
          "neuron 0) although the initial state is finite; it overflows float32 there (in float64 "
          "it is 6.80564733841877e+38): use --precision f64\n", f"u = g^3 at t = 0: exit {code}: {err}")
    logm, ones = os.path.join(tmp, "log.dam"), os.path.join(tmp, "ones2.npy")
    with open(logm, "w") as f:
        f.write("param c = 1;\nlayer v[2] { L = 0.5 * sum(v^2) - sum(log(c + v)); }\n")
    np.save(ones, np.ones(2))
    nan = "output 'E_v' is NaN at sample 0, index 0: the model is not finite at these states and params"
    for precision, end in (("f32", ", in float64 too: the precision is not the cause"), ("f64", "")):
        code, _, err = damc("eval", logm, "--set", "c=-5", "--state", f"v={ones}", "--precision", precision)
        check(code == 1 and err == f"damc eval: error: {nan}{end}\n", f"log(-4), {precision}: exit {code}: {err}")
    code, _, err = damc("run", logm, "--set", "c=-5", "--init", f"v={ones}")
    check(code == 1 and err == "damc run: error: output 'E' is NaN at sample 0, index 0: the model "
          "is not finite at these states and params, in float64 too: the precision is not the "
          "cause\n", f"log(c + x) at the end of a run: exit {code}: {err}")
    # E = |x|^2/2 + sum(sqrt(x)) drives x below 0, where sqrt is NaN: a domain error, named as
    # such (not "diverged"), with the layer, neuron and step.
    sq = os.path.join(tmp, "sqrt_domain.dam")
    with open(sq, "w") as f:
        f.write("dim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\nenergy sum(sqrt(g(x)));\n")
    np.save(os.path.join(tmp, "half.npy"), np.array([0.5, 0.5]))
    code, _, err = damc("run", sq, "--init", f"x={tmp}/half.npy", "--precision", "f64")
    check(code == 1 and "the run failed: layer 'x'" in err and " is nan at step" in err
          and "outside its domain" in err and "-nan" not in err, f"a domain error: exit {code}: {err}")
    # A number of the model beyond float32 would be inf in the float32 kernels: refused.
    lit = os.path.join(tmp, "lit.dam")
    with open(lit, "w") as f:
        f.write("dim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\nenergy -1e39 * sum(g(x));\n")
    code, _, err = damc("run", lit)
    check(code == 1 and "number 1e+39" in err and "--precision f64" in err,
          f"a model literal beyond float32: exit {code}: {err}")
    # x = 1e20 decays to 0: its E = x^2 / 2 = 5e39 overflows float32 in the first traced steps
    # while the states stay finite: the run succeeds, but says so.
    decay = os.path.join(tmp, "decay.dam")
    with open(decay, "w") as f:
        f.write("dim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n")
    x0 = os.path.join(tmp, "x0.npy")
    np.save(x0, np.array([1e20, 1.0]))
    code, _, err = damc("run", decay, "--init", f"x={x0}", "--trace", os.path.join(tmp, "tr.csv"))
    check(code == 0 and "damc run: warning: E is not finite at step 0 of the trace, though the "
          "states are; it overflows float32 there (in float64 it is 5.0000002" in err
          and "): use --precision f64\n" in err, f"E overflowing float32 in the trace: exit {code}: {err}")


def outputs(tmp):
    memories(tmp)
    w = os.path.join(tmp, "w.npz")
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--out", "/dev/full")
    check(code == 1 and "No space left on device" in err, f"/dev/full: exit {code}: {err}")
    with open("/dev/full", "w") as full:
        r = subprocess.run([DAMC, "explain", MODEL_B], stdout=full, stderr=subprocess.PIPE, text=True)
    check(r.returncode == 1 and "standard output" in r.stderr, f"stdout to /dev/full: {r.stderr}")
    # An output into a directory that is not there: said before any work (a capacity sweep of
    # K = 1000 would have run for seconds first), exit 1, nothing written.
    gone = os.path.join(tmp, "no", "such")
    for args in (("eval", MODEL_B, "--weights", w, "--out", os.path.join(gone, "o.npz")),
                 ("capacity", MODEL_B, "--store", "Xi", "--K", "1000", "--trials", "50",
                  "--save", os.path.join(gone, "s.npz"))):
        t0 = time.time()
        code, _, err = damc(*args)
        check(code == 1 and f"cannot write into '{gone}': No such file or directory" in err
              and time.time() - t0 < 5 and not os.path.exists(gone),
              f"damc {args[0]} into a missing directory: exit {code}: {err}")
    big = os.path.join(tmp, "big.npz")
    b64 = os.path.join(tmp, "b64.npy")
    np.save(b64, np.sign(np.random.default_rng(1).standard_normal((64, 784))))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    r = subprocess.run([DAMC, "run", MODEL_B, "--weights", w, "--init", f"v={b64}", "--out", big],
                       capture_output=True, text=True, preexec_fn=limit)
    check(r.returncode == 1 and "File too large" in r.stderr and not leftovers(tmp, "big.npz"),
          f"file-size limit: exit {r.returncode}, left {leftovers(tmp, 'big.npz')}: {r.stderr}")
    # A trace on stdout (--trace -) without --out: stdout is the CSV alone, every row of the
    # same width as the header; the summary goes to stderr.
    code, out, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={b64}", "--trace", "-", "--quiet")
    rows = [line.split(",") for line in out.splitlines()]
    check(code == 0 and len(rows) > 2 and all(len(r) == len(rows[0]) for r in rows)
          and "max|.|" in err and "max|.|" not in out, f"--trace -: exit {code}: {out[-300:]} {err}")
    # A diverging run keeps its trace under a name that says so.
    model = os.path.join(tmp, "blow.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nlayer v[N] { L = lagr_identity(v); }\nsynapse W[N, N] : v <-> v;\n")
    np.savez(os.path.join(tmp, "blow.npz"), W=3 * np.eye(3))
    np.save(os.path.join(tmp, "one.npy"), np.ones(3))
    trace = os.path.join(tmp, "t.csv")
    code, _, err = damc("run", model, "--weights", os.path.join(tmp, "blow.npz"), "--init",
                        f"v={tmp}/one.npy", "--method", "euler", "--dt", "0.5", "--max-steps",
                        "100000", "--trace", trace)
    check(code == 1 and "diverged" in err and "t.csv.partial" in err
          and leftovers(tmp, "t.csv") == ["t.csv.partial"], f"partial trace: {err} {leftovers(tmp, 't.csv')}")
    if os.path.exists(trace + ".partial"):
        rows = np.genfromtxt(trace + ".partial", delimiter=",", names=True)
        check(len(rows) > 10 and (np.diff(rows["step"]) == 1).all(), "partial trace rows")
    # Outputs that would destroy an input or another output.
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--out", w)
    check(code == 2 and "also an input" in err, f"--out = the weights: exit {code}: {err}")
    code, _, err = damc("run", MODEL_B, "--weights", w, "--out", f"{tmp}/x.npz", "--trace", f"{tmp}/./x.npz")
    check(code == 2 and "same file" in err, f"--out = --trace: exit {code}: {err}")
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--out", MODEL_B)
    check(code == 2, f"--out = the model: exit {code}: {err}")
    # Through a symbolic link: the link stays a link, its target gets the result.
    target = os.path.join(tmp, "target.npz")
    link = os.path.join(tmp, "link.npz")
    os.symlink(target, link)
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--out", link)
    check(code == 0 and os.path.islink(link) and "E" in np.load(target).files,
          f"--out through a link: exit {code}: {err}")
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--out", "/dev/null")
    check(code == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode), f"/dev/null: {err}")
    code, _, err = damc("eval", MODEL_B, "--weights", w, f"--out={tmp}/eq.npz")
    check(code == 0 and os.path.exists(f"{tmp}/eq.npz"), f"--out=: exit {code}: {err}")


def sizes_masks(tmp):
    zero = os.path.join(tmp, "xi0.npy")
    np.save(zero, np.zeros((0, 784)))
    code, _, err = damc("eval", MODEL_B, "--weight", f"Xi={zero}")
    check(code == 1 and "'Xi'" in err and "[0, 784]" in err and "xi0.npy" in err,
          f"zero size: exit {code}: {err}")
    memories(tmp)
    w, cue = os.path.join(tmp, "w.npz"), os.path.join(tmp, "cue.npy")
    code, _, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}", "--clamp", f"v={cue}")
    check(code == 1 and "mask" in err and "-1" in err and "index" in err,
          f"a +-1 cue as the mask: exit {code}: {err}")
    mask = os.path.join(tmp, "mask.npy")
    np.save(mask, np.arange(784) < 392)  # bool: the first half clamped
    out = os.path.join(tmp, "m.npz")
    code, _, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}", "--clamp",
                        f"v={mask}", "--out", out)
    check(code == 0, f"a bool mask: exit {code}: {err}")
    if code == 0:
        check(np.array_equal(np.load(out)["x_v"][:392], np.load(cue)[:392]), "clamped half moved")

    # --set beta=-1 makes logsumexp(beta h)/beta concave: a warning at the Lagrangian, once,
    # from eval (check reports it as an item instead); the default beta gives none.
    code, _, err = damc("eval", MODEL_B, "--weights", w, "--set", "beta=-1")
    check(code == 0 and err.count("warning:") == 1 and "model_b.dam:15:7" in err
          and "layer 'h' is not convex" in err, f"beta = -1: exit {code}: {err}")
    code, _, err = damc("eval", MODEL_B, "--weights", w)
    check(code == 0 and "warning" not in err, f"default beta: {err}")
    # A batch beyond the machine's memory (3.1e8 x 784 floats, 980 GB) is refused before it is
    # touched, with its size: exit 1, not an internal error or the kernel's OOM killer.
    code, _, err = damc("bench", MODEL_B, "--weights", w, "--batch", "312500000")
    check(code == 1 and "out of memory" in err and "GB" in err and "internal" not in err,
          f"a batch beyond memory: exit {code}: {err}")


def layer_arrays(tmp):
    """An array for a layer that cannot take it is refused by every command with the engine's
    one message, never ignored: a state (--init, --state) or a clamp of an eliminated layer,
    an input of a layer without `input`."""
    memories(tmp)
    w = os.path.join(tmp, "w.npz")
    model_a = os.path.join(SRC, "tests", "e2e", "models", "model_a_identity.dam")  # h: tau = 0
    np.save(os.path.join(tmp, "h.npy"), np.ones(20))
    np.save(os.path.join(tmp, "v.npy"), np.ones(784))
    h, v = f"h={tmp}/h.npy", f"v={tmp}/v.npy"
    eliminated = ("but 'h' is eliminated (tau = 0): its state is computed from the other layers' "
                  "at every instant (x = u), so ")
    cases = [
        (("run", "--init", v, "--init", h), "a state is given for layer 'h', " + eliminated
         + "it takes none; give the states of the integrated layers only (v), or give 'h' a "
         "tau > 0 in the model to integrate it"),
        (("eval", "--state", h), "a state is given for layer 'h', " + eliminated + "it takes none"),
        (("check", "--init", h), "a state is given for layer 'h', " + eliminated + "it takes none"),
        (("run", "--clamp", h), "a clamp is given for layer 'h', " + eliminated + "it cannot be "
         "held fixed; clamp the integrated layers only (v), or give 'h' a tau > 0 in the model"),
    ]
    no_input = ("an input is given for layer 'v', but the model has no 'input v;' statement: "
                "inputs are given only to layers declared with 'input' (none); add 'input v;' to "
                "the model to give 'v' an external current")
    cases += [((cmd, "--input", v), no_input) for cmd in ("run", "eval", "check")]
    for args, want in cases:
        code, out, err = damc(args[0], model_a, "--weights", w, *args[1:])
        check(code == 1 and f"damc {args[0]}: error: {want}" in err and "Traceback" not in err,
              f"{' '.join(args)}: exit {code}: {err}")


def command_line(tmp):
    memories(tmp)
    w, cue = os.path.join(tmp, "w.npz"), os.path.join(tmp, "cue.npy")
    cases = [
        (("run", MODEL_B, "--tlo", "3"), "did you mean '--tol'"),
        (("rnu", MODEL_B), "did you mean 'run'"),
        (("eval", MODEL_B, "--init", "v=x.npy"), "'--init' is an option of damc run, check; damc eval does not take it"),
        (("eval", MODEL_B, "--weights", w, "--state", f"vv={cue}"), "did you mean 'v'"),
        (("eval", MODEL_B, "--weights", w, "--set", "bta=1"), "did you mean 'beta'"),
        (("eval", MODEL_B, "--weights", w, "--set", "beta=1e999"), "out of range"),
        (("emit", MODEL_B, "--weights", w, "--plan=1"), "takes no value"),
        # Options valid alone but not together, and values that name their option.
        (("emit", MODEL_B, "--weights", w, "--plan", "--ir"), "several were given"),
        (("run", MODEL_B, "--weights", w, "--noise", "0.1"), "--noise needs --method euler"),
        (("run", MODEL_B, "--weights", w, "--tol", "0", "--strict"), "--strict with --tol 0"),
        (("run", MODEL_B, "--weights", w, "--max-steps", "1e20"), "--max-steps 1e20: expected"),
        (("run", MODEL_B, "--weights", w, "--seed", "abc"), "--seed abc: expected"),
        (("bench", MODEL_B, "--weights", w, "--batch", "0"), "--batch 0: expected"),
        (("eval", MODEL_B, "--weights", w, "--set", "beta=nan"), "not NaN"),
        # A repeated option would replace the first silently.
        (("run", MODEL_B, "--weights", w, "--tol", "1e-3", "--tol=1e-4"), "'--tol' is given twice"),
        (("eval", MODEL_B, "--weights", w, "--set", "beta=1", "--set", "beta=2"),
         "--set beta is given twice"),
    ]
    for args, needle in cases:
        code, _, err = damc(*args)
        check(code == 2 and needle in err and err.startswith("damc"),
              f"damc {' '.join(args[:3])}: exit {code}: {err}")
    # --trace - is standard output.
    code, out, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={cue}", "--max-steps", "3",
                          "--tol", "0", "--trace", "-", "--out", os.path.join(tmp, "t.npz"))
    check(code == 0 and out.startswith("step,t,E") and len(out.splitlines()) == 5
          and not os.path.exists("-"), f"--trace -: exit {code}: {out[:200]} {err}")
    code, out, _ = damc("help", "run")
    check(code == 0 and "--max-steps" in out, "damc help run")
    # A transposed weight is named as the likely culprit.
    wt = os.path.join(tmp, "wt.npz")
    v5 = os.path.join(tmp, "v5.npy")
    np.save(v5, np.ones(5))
    free = os.path.join(tmp, "free.dam")
    with open(free, "w") as f:
        f.write("dim N;\ndim K;\nlayer v[N] { L = lagr_identity(v); }\n"
                "layer h[K] { L = logsumexp(h); }\nsynapse Xi[K, N] : h <-> v;\n")
    np.savez(wt, Xi=np.ones((5, 784)))
    code, _, err = damc("eval", free, "--weights", wt, "--state", f"v={v5}")
    check(code == 1 and "is 'Xi' transposed?" in err and "wt.npz" in err, f"transposed: {err}")
    # .npz members named with or without .npy; a member that is no weight.
    import zipfile
    bare = os.path.join(tmp, "bare.npz")
    np.save(os.path.join(tmp, "xi.npy"), np.load(w)["Xi"])
    with zipfile.ZipFile(bare, "w") as z:
        z.write(os.path.join(tmp, "xi.npy"), "Xi")
    code, _, err = damc("eval", MODEL_B, "--weights", bare)
    check(code == 0, f"member without .npy: exit {code}: {err}")
    extra = os.path.join(tmp, "extra.npz")
    np.savez(extra, Xi=np.load(w)["Xi"], labels=np.arange(20))
    code, _, err = damc("eval", MODEL_B, "--weights", extra)
    check(code == 1 and "'labels'" in err, f"extra member: exit {code}: {err}")
    code, _, err = damc("eval", MODEL_B, "--weights", extra, "--allow-extra")
    check(code == 0, f"--allow-extra: exit {code}: {err}")
    # --dim gives an unbound dim its size; a weight that contradicts it names where it came from.
    code, _, err = damc("eval", MODEL_B, "--dim", "K=5", "--weights", w)
    check(code == 1 and "K = 5 from --dim" in err, f"--dim against a weight: exit {code}: {err}")
    code, _, err = damc("eval", MODEL_B, "--dim=K=20", "--weights", w)
    check(code == 0, f"--dim=K=20: exit {code}: {err}")
    code, _, err = damc("check", MODEL_B, "--dim", "Kk=5")
    check(code == 2 and "did you mean 'K'" in err, f"--dim Kk: exit {code}: {err}")
    dim_model = os.path.join(tmp, "dim.dam")
    with open(dim_model, "w") as f:
        f.write("dim N = 4.35*100;\nlayer v[N] { L = lagr_identity(v); }\n")
    code, _, err = damc("parse", dim_model)
    check(code == 1 and "434.99999999999994" in err, f"4.35*100: {err}")


def paths(tmp):
    memories(tmp)
    w = os.path.join(tmp, "w.npz")
    messages = set()
    for cmd in ("parse", "explain", "eval", "run"):
        code, _, err = damc(cmd, tmp, *(["--weights", w] if cmd in ("eval", "run") else []))
        check(code == 1 and "is a directory" in err, f"{cmd} DIR: exit {code}: {err}")
        messages.add(err.split("error: ", 1)[-1])
    check(len(messages) == 1, f"one message for a directory: {messages}")
    t0 = time.time()
    code, _, err = damc("parse", "/dev/zero")
    check(code == 1 and "limit" in err, f"/dev/zero: {err} (in {time.time() - t0:.1f} s)")
    with open(w, "rb") as f:
        data = f.read()
    r = subprocess.run([DAMC, "eval", MODEL_B, "--weights", "/dev/stdin"], input=data,
                       capture_output=True)  # stdin is a pipe
    check(r.returncode == 1 and b"seeking" in r.stderr, f".npz from a pipe: {r.stderr}")
    # SIGTERM in the middle of a run: no temporary file, the trace so far kept.
    model = os.path.join(tmp, "slow.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nlayer v[N] { L = lagr_identity(v); }\n")
    trace, out = os.path.join(tmp, "slow.csv"), os.path.join(tmp, "slow.npz")
    p = subprocess.Popen([DAMC, "run", model, "--method", "euler", "--dt", "1e-9", "--tol", "0",
                          "--max-steps", "1000000000", "--trace", trace, "--out", out],
                         stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    check(p.returncode == 1 and "interrupted" in err and "slow.csv.partial" in err,
          f"SIGTERM: exit {p.returncode}: {err}")
    check(not glob.glob(os.path.join(tmp, "*.tmp.*")), f"temporaries left: {os.listdir(tmp)}")
    check(not os.path.exists(out), "an output of an interrupted run")


def progress(tmp):
    memories(tmp)
    w, cue = os.path.join(tmp, "w.npz"), os.path.join(tmp, "cue.npy")
    b = os.path.join(tmp, "b.npy")
    np.save(b, np.repeat(np.load(cue)[None], 16, axis=0))
    code, out, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={b}", "--precision",
                          "f64", "--method", "euler", "--progress")
    lines = [l for l in err.replace("\r", "\n").splitlines() if l.strip()]
    check(code == 0 and lines and lines[-1].startswith("step ") and "converged 16/16" in lines[-1],
          f"--progress: exit {code}: {lines[-3:]}")
    code, out, err = damc("run", MODEL_B, "--weights", w, "--init", f"v={b}")
    check(code == 0 and "step " not in err, f"no progress when stderr is not a terminal: {err}")


CASES = {"convergence": convergence, "nonfinite": nonfinite, "outputs": outputs,
         "sizes_masks": sizes_masks, "command_line": command_line, "paths": paths,
         "progress": progress, "layer_arrays": layer_arrays}


if __name__ == "__main__":
    run(CASES)

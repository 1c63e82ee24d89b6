#!/usr/bin/env python3
"""damc check end to end, on models whose verdicts theory predicts (docs/theory.md §4):

  examples:   every example with weights passes every check (exit 0 with --strict), in
              well under 5 s each (the times are printed, not asserted);
  no_weights: without weights, the checks that need none run and the others say so;
  saddle:     x = 2 tanh(y), y = 2 tanh(x) at the origin: unstable, lambda_max(B'WB) = 2 and
              eig J = {1, -3} (§4.4.2); --strict exits 3;
  unbounded:  Model A with identity features and n = 3: E can go to -infinity (§1.4 rule 3);
  dead_units: a relu hidden layer: dead units at the fixed point, E constant along their
              flat region (§4.4.4, §4.5), the fixed point stable;
  nonconvex:  x^3, a SiLU, a negative multiple of a convex term and -logsumexp fail convexity
              with a counterexample, at the layer's place; --strict exits 3;
  directed:   a directed synapse: no energy, the energy checks skipped (§1.5), the residual
              Lyapunov function of §4.4.5 checked instead, stability from the Jacobian.

usage: check_cli.py DAMC SOURCE_DIR [--case NAME | --list]"""
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MODELS = os.path.join(SRC, "tests", "e2e", "models")


def damc_check(model, *args):
    t0 = time.time()
    r = subprocess.run([DAMC, "check", model, "--json", *args], capture_output=True, text=True,
                       timeout=600)
    report = None
    if r.stdout:
        try:
            report = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            check(False, f"{model}: the JSON report does not parse: {e}")
    return r.returncode, report, r.stderr, time.time() - t0


def items(report, check_name):
    return [i for i in report["items"] if i["check"] == check_name] if report else []


def examples(tmp):
    rng = np.random.default_rng(0)
    T = rng.standard_normal((16, 16)) / 4
    weights = {
        "model_b": {"Xi": np.sign(rng.standard_normal((10, 784)))},
        "model_a": {"Xi": rng.standard_normal((6, 16)) / 4},
        "hierarchical": {"W12": rng.standard_normal((64, 32)) / 16, "W23": rng.standard_normal((32, 16)) / 8},
        "custom_energy": {"W": rng.standard_normal((8, 16)) / 4, "b": rng.standard_normal(8)},
        "hopfield_classic": {"T": (T + T.T) / 2},
        "modern_hopfield": {"Xi": rng.standard_normal((20, 16))},
        "dense_poly": {"Xi": rng.standard_normal((6, 16)) / 4},
        "dense_repu": {"Xi": rng.standard_normal((6, 16)) / 4},
        "dense_exp": {"Xi": rng.standard_normal((6, 16)) / 4},
        # Each memory stored with its negative: some overlap is positive at every v, so the
        # memory layer cannot be entirely dead at a fixed point (with 6 random memories a run
        # may end where every overlap is negative: a warning, rightly).
        "model_c": {"Xi": np.vstack([p := rng.standard_normal((3, 16)) / 2, -p])},
        "energy_transformer": {"Wq": rng.standard_normal((4, 8)) / 4, "Wk": rng.standard_normal((4, 8)) / 4,
                               "Xi": rng.standard_normal((5, 8)) / 4},
        # relu memories with biases of both signs, so some memories are dead at the fixed point (damc check reports them) but not all, and
        # --strict passes (examples/relu_dead.dam)
        "relu_dead": {"Xi": rng.standard_normal((12, 16)) / 10, "b": np.linspace(-1, 1, 12)},
    }
    names = sorted(f[:-4] for f in os.listdir(os.path.join(SRC, "examples")) if f.endswith(".dam"))
    check(sorted(weights) == names, f"examples without weights here: {set(names) ^ set(weights)}")
    for name in names:
        w = os.path.join(tmp, f"{name}.npz")
        np.savez(w, **weights.get(name, {}))
        code, report, err, seconds = damc_check(os.path.join(SRC, "examples", name + ".dam"),
                                                "--weights", w, "--strict")
        bad = [f"{i['verdict']} {i['check']} {i['subject']}: {i['reason'][:120]}"
               for i in (report or {"items": []})["items"] if i["verdict"] in ("fail", "warn")]
        check(code == 0 and not bad, f"{name}: exit {code}: {bad} {err}")
        # Convexity and dead units also where the runs went: >= 100 states (§4.2.4) per layer.
        along = [i for i in items(report, "convexity") if "along trajectories" in i["reason"]]
        check(report and len(along) == len({i["subject"] for i in items(report, "derivatives")})
              and all(i["numbers"]["points"] >= 100 for i in along), f"{name}: along trajectories {along}")
        if name == "relu_dead":     # FO24: damc check finds the dead memories at a fixed point
            dead = [i for i in items(report, "fixed-point-dead") if i["subject"] == "layer h"]
            check(dead, f"relu_dead: no dead units reported at the fixed points: {items(report, 'fixed-point-dead')}")
        f32 = items(report, "float32")
        check(f32 and f32[0]["verdict"] == "pass", f"{name}: float32 against float64 {f32}")
        print(f"{name}: {report['verdict'] if report else '?'} in {seconds:.2f} s "
              f"({len(report['items']) if report else 0} items)")


def no_weights(tmp):
    code, report, err, _ = damc_check(os.path.join(SRC, "examples", "model_b.dam"))
    check(code == 0, f"no weights: exit {code}: {err}")
    skipped = [i for i in report["items"] if i["verdict"] == "skipped"]
    check(len(skipped) >= 3 and all("weights" in i["reason"] for i in skipped),
          f"no weights: {skipped}")


def saddle(tmp):
    np.save(os.path.join(tmp, "W.npy"), np.array([[2.0]]))
    np.save(os.path.join(tmp, "zero.npy"), np.zeros(1))
    args = ("--weight", f"W={tmp}/W.npy", "--init", f"x={tmp}/zero.npy", "--init", f"y={tmp}/zero.npy")
    code, report, err, _ = damc_check(os.path.join(MODELS, "saddle.dam"), *args)
    check(code == 0, f"saddle: exit {code}: {err}")
    st = items(report, "stability")
    check(len(st) == 1 and st[0]["verdict"] == "fail", f"saddle: {st}")
    if st:
        n = st[0]["numbers"]
        check(abs(n["lambda_max(B'WB)"] - 2) <= 1e-9, f"saddle: lambda_max {n}")
        check(abs(n["max Re eig(J)"] - 1) <= 1e-9 and abs(n["min Re eig(J)"] + 3) <= 1e-9
              and n["max |Im eig(J)|"] == 0, f"saddle: eig J {n}")
    code, _, _, _ = damc_check(os.path.join(MODELS, "saddle.dam"), *args, "--strict")
    check(code == 3, f"saddle --strict: exit {code}")
    # The same saddle 600 times over (x, y in R^600, W = 2 I): 1200 state coordinates, above
    # the dense limit, so Newton-GMRES and Lanczos find it: lambda_max(B'WB) = 2 again.
    model = os.path.join(tmp, "saddle600.dam")
    with open(model, "w") as f:
        f.write("dim N = 600;\nlayer x[N] { L = lagr_tanh(x); }\nlayer y[N] { L = lagr_tanh(y); }\n"
                "synapse W[N, N] : x <-> y;\n")
    np.save(os.path.join(tmp, "W600.npy"), 2 * np.eye(600))
    np.save(os.path.join(tmp, "zero600.npy"), np.zeros(600))
    code, report, err, _ = damc_check(model, "--weight", f"W={tmp}/W600.npy", "--init", f"x={tmp}/zero600.npy",
                                      "--init", f"y={tmp}/zero600.npy")
    st = items(report, "stability")
    check(code == 0 and len(st) == 1 and st[0]["verdict"] == "fail" and "matrix-free" in st[0]["reason"]
          and abs(st[0]["numbers"]["lambda_max(B'WB)"] - 2) <= 1e-9, f"saddle 600: {st and st[0]['numbers']} {err}")


def unbounded(tmp):
    np.savez(os.path.join(tmp, "w.npz"), Xi=np.random.default_rng(1).standard_normal((4, 6)) / 3)
    code, report, err, _ = damc_check(os.path.join(MODELS, "model_a_identity.dam"), "--weights",
                                      f"{tmp}/w.npz")
    warn = [i for i in items(report, "bounded-energy") if i["verdict"] == "warn"]
    check(code == 0 and warn and "-infinity" in warn[0]["reason"] and "§1.4" in warn[0]["reason"]
          and warn[0]["where"].endswith("model_a_identity.dam:6:7"), f"unbounded: {warn} {err}")


def dead_units(tmp):
    rng = np.random.default_rng(0)
    np.savez(os.path.join(tmp, "w.npz"), Xi=0.1 * rng.standard_normal((12, 6)))
    np.save(os.path.join(tmp, "in.npy"), rng.standard_normal(6))
    code, report, err, _ = damc_check(os.path.join(MODELS, "relu_hidden.dam"), "--weights",
                                      f"{tmp}/w.npz", "--input", f"v={tmp}/in.npy")
    check(code == 0 and report["verdict"] == "pass", f"dead units: exit {code}: {err}")
    dead = [i for i in items(report, "fixed-point-dead") if i["subject"] == "layer h"]
    check(dead and dead[0]["numbers"]["nullity"] >= 1
          and abs(dead[0]["numbers"]["E change along the flat region"]) <= 1e-12,
          f"dead units: {dead}")
    st = items(report, "stability")
    check(st and st[0]["verdict"] == "pass", f"dead units: stability {st}")
    if dead:
        print(f"dead units of h: {dead[0]['numbers']['nullity']:.0f} of 12; E change along them "
              f"{dead[0]['numbers']['E change along the flat region']:.1e}")


def fully_dead(tmp):
    """Every unit of the relu layer dead at the fixed point (negative weights, input 1: h =
    Xi 1 < 0): a warning that the layer is disconnected there, with the remedies (§4.5), its
    nullity the whole layer and E constant along the flat region; the point itself stable,
    and with --strict the warning exits 3. The same layer with half its weights positive is
    only partly dead: no warning."""
    rng = np.random.default_rng(5)
    np.save(os.path.join(tmp, "ones.npy"), np.ones(6))
    for name, xi, all_dead in (("negative", -0.1 * np.abs(rng.standard_normal((12, 6))), True),
                               ("mixed", 0.1 * rng.standard_normal((12, 6)), False)):
        np.savez(os.path.join(tmp, f"{name}.npz"), Xi=xi)
        args = ("--weights", f"{tmp}/{name}.npz", "--input", f"v={tmp}/ones.npy")
        code, report, err, _ = damc_check(os.path.join(MODELS, "relu_hidden.dam"), *args)
        dead = [i for i in items(report, "fixed-point-dead") if i["subject"] == "layer h"]
        st = items(report, "stability")
        check(code == 0 and st and all(i["verdict"] == "pass" for i in st), f"{name}: {st} {err}")
        if all_dead:
            check(dead and dead[0]["verdict"] == "warn" and "every unit of layer 'h' is dead" in dead[0]["reason"]
                  and "leaky relu" in dead[0]["reason"] and dead[0]["numbers"]["nullity"] == 12
                  and abs(dead[0]["numbers"]["E change along the flat region"]) <= 1e-12, f"{name}: {dead}")
            code, _, _, _ = damc_check(os.path.join(MODELS, "relu_hidden.dam"), *args, "--strict")
            check(code == 3, f"{name} --strict: exit {code}")
        else:
            check(dead and all(i["verdict"] == "pass" and i["numbers"]["nullity"] < 12 for i in dead),
                  f"{name}: {dead}")
            print(f"mixed weights: {[int(i['numbers']['nullity']) for i in dead]} of 12 units dead")


def marginal(tmp):
    """x = tanh(x) (a tanh unit coupled to itself with weight 1): the origin is the one fixed
    point, and a degenerate one (J = tanh'(0) - 1 = 0; u - x = -x^3/3, so |u - x| is below
    1e-10 from |x| = 7e-4 on). Newton's method converges only linearly there; it must go on
    until its step is small, so that the runs from 8 starts are seen as one fixed point, found
    marginal: lambda_max(B'WB) = 1 (docs/theory.md §4.4.2), a warning."""
    model = os.path.join(tmp, "one.dam")
    with open(model, "w") as f:
        f.write("dim N;\nlayer a[N] { L = lagr_tanh(a, 1); tau = 1; }\nsynapse W[N, N] : a <-> a;\n")
    np.savez(os.path.join(tmp, "w.npz"), W=np.ones((1, 1)))
    code, report, err, _ = damc_check(model, "--weights", f"{tmp}/w.npz")
    st = items(report, "stability")
    check(code == 0 and len(st) == 1 and st[0]["verdict"] == "warn" and "marginal" in st[0]["reason"]
          # Newton's step divides by J = tanh'(x) - 1 = -x^2, known to about eps: below |x| of
          # a few 1e-8 its steps are rounding, so the point is known to 3e-7, no better.
          and abs(st[0]["numbers"]["lambda_max(B'WB)"] - 1) <= 1e-8 and abs(st[0]["vectors"]["x*"][0]) <= 3e-7,
          f"marginal: {[(i['reason'], i['numbers'], i['vectors']) for i in st]} {err}")
    if st:
        print(f"x = tanh(x): {st[0]['numbers']['Newton steps']:.0f} Newton steps to x* = {st[0]['vectors']['x*'][0]:.1e}")


def asymmetric(tmp):
    """A self-synapse must be symmetric for the model to have an energy: damc check refuses a
    non-symmetric one before checking anything (exit 1), naming the weight and an entry pair."""
    T = np.random.default_rng(0).standard_normal((16, 16))
    np.savez(os.path.join(tmp, "asym.npz"), T=T)
    r = subprocess.run([DAMC, "check", os.path.join(SRC, "examples", "hopfield_classic.dam"), "--weights",
                        f"{tmp}/asym.npz"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 1 and not r.stdout and "'T' must be symmetric" in r.stderr and "self-synapse" in r.stderr,
          f"asymmetric: exit {r.returncode}: {r.stderr}")


def directed(tmp):
    model = os.path.join(tmp, "directed.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nlayer a[N] { L = lagr_tanh(a); }\nlayer b[N] { L = lagr_tanh(b); }\n"
                "synapse D[N, N] : a -> b;\n")
    np.save(os.path.join(tmp, "D.npy"), 0.5 * np.eye(3))
    code, report, err, _ = damc_check(model, "--weight", f"D={tmp}/D.npy")
    check(code == 0 and items(report, "no-energy") and items(report, "no-energy")[0]["verdict"] == "warn",
          f"directed: {err} {report and [i['check'] for i in report['items']]}")
    ident = items(report, "energy-identity")
    check(ident and ident[0]["verdict"] == "skipped", f"directed: identity {ident}")
    lyap = items(report, "residual-lyapunov")
    check(lyap and lyap[0]["verdict"] == "pass", f"directed: residual Lyapunov function {lyap}")
    st = items(report, "stability")
    check(st and st[0]["verdict"] == "pass" and st[0]["numbers"]["max Re eig(J)"] < 0,
          f"directed: stability by the Jacobian {st}")


def energy_rays(tmp):
    """E = |v|^2/2 - (sum v)^3 (identity Lagrangian, a cubic energy term): no pairwise rule of
    §1.4 decides it, and the ray probe finds the counterexample x = t (1, 1, 1), along which
    E = 3 t^2 / 2 - 27 t^3. -0.1 (sum v)^2 >= -0.3 |v|^2, which the Legendre transform |v|^2/2 outgrows, is not flagged."""
    for name, term, unbounded in (("cube", "-sum(g(v))^3", True), ("square", "-0.1 * sum(g(v))^2", False)):
        model = os.path.join(tmp, f"{name}.dam")
        with open(model, "w") as f:
            f.write(f"dim N = 3;\nlayer v[N] {{ L = lagr_identity(v); }}\nenergy {term};\n")
        code, report, err, _ = damc_check(model)
        net = [i for i in items(report, "bounded-energy") if i["subject"] == "network"]
        if unbounded:
            t = 1e4
            check(code == 0 and net and net[0]["verdict"] == "warn"
                  and abs(net[0]["numbers"]["E(10^4 d)"] - (1.5 * t * t - 27 * t ** 3)) <= 1e-12 * 27 * t ** 3,
                  f"{name}: {net} {err}")
        else:
            check(code == 0 and net and net[0]["verdict"] == "skipped" and "no proof" in net[0]["reason"],
                  f"{name}: {net} {err}")


def all_eliminated(tmp):
    """A model whose every layer has tau = 0 has no dynamics: the trajectory checks are
    skipped with that reason, not failed."""
    model = os.path.join(tmp, "static.dam")
    with open(model, "w") as f:
        f.write("dim N = 3;\nlayer x[N] { L = lagr_tanh(x); tau = 0; }\ninput x;\n")
    code, report, err, _ = damc_check(model)
    dec = items(report, "energy-decrease")
    check(code == 0 and report["verdict"] == "pass" and dec and dec[0]["verdict"] == "skipped"
          and "no dynamics" in dec[0]["reason"] and not dec[0]["reason"].endswith("\n"),
          f"all eliminated: exit {code} {dec} {err}")


def nonconvex(tmp):
    """Lagrangians that are not convex fail `convexity` with a counterexample (a negative
    eigenvalue of H at a named state); without weights, as the checks need none."""
    for name, lagrangian in (("concave", "-beta * sum(h^2)"), ("cubic", "sum(h^3) / 3"),
                             ("silu", "sum(h * sigmoid(h))"), ("neg_lse", "-logsumexp(h)")):
        model = os.path.join(tmp, f"{name}.dam")
        with open(model, "w") as f:
            f.write(f"dim N = 4;\nparam beta = 1;\nlayer h[N] {{ L = {lagrangian}; }}\n")
        code, report, err, _ = damc_check(model)
        conv = items(report, "convexity")
        check(code == 0 and conv and conv[0]["verdict"] == "fail"
              and conv[0]["numbers"].get("counterexample lambda", 0) < 0
              and f"{name}.dam:3:" in conv[0]["where"],
              f"{name}: {conv} {err}")
        code, _, _, _ = damc_check(model, "--strict")
        check(code == 3, f"{name} --strict: exit {code}")


def large_softmax(tmp):
    """A softmax layer of 4500 units: H's symmetry is checked from columns H e_a (a bilinear
    form on random vectors falsely failed above 2500 units), and the network of 4532 states,
    too large for d x d matrices, is analysed matrix-free (Newton-GMRES, Lanczos in the H
    product, docs/theory.md §4.4): lambda_max(B'WB) against NumPy at the reported fixed
    point, where (WH)^2 = diag(W'SW, W W'S) (H_v = I, S = diag(p) - pp' the softmax Hessian)
    gives it as sqrt(lambda_max(W'SW)), a 32 x 32 problem; to 1e-9 (the Lanczos bound and
    the Newton residual are both below 1e-12)."""
    model = os.path.join(tmp, "large.dam")
    with open(model, "w") as f:
        f.write("dim N = 32;\ndim K = 4500;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
                "layer h[K] { L = logsumexp(h); tau = 0.1; }\nsynapse W[K, N] : h <-> v;\n")
    W = np.random.default_rng(1).standard_normal((4500, 32)) / 6
    np.savez(os.path.join(tmp, "w.npz"), W=W)
    code, report, err, secs = damc_check(model, "--weights", f"{tmp}/w.npz", "--samples", "20")
    deriv = [i for i in items(report, "derivatives") if i["subject"] == "layer h"]
    check(code == 0 and deriv and deriv[0]["verdict"] == "pass", f"large softmax: exit {code} {deriv} {err}")
    st = items(report, "stability")
    check(st and all(i["verdict"] == "pass" and "matrix-free: 4532 state coordinates" in i["reason"] for i in st),
          f"large softmax: stability {[(i['verdict'], i['reason'], i['numbers']) for i in st]}")
    for i in st:
        n, x = i["numbers"], np.array(i["vectors"]["x*"])
        top = n["lambda_max(B'WB)"]
        p = np.exp(x[32:] - x[32:].max())
        p /= p.sum()
        S = np.diag(p) - np.outer(p, p)
        want = np.sqrt(max(np.linalg.eigvalsh(W.T @ S @ W).max(), 0))
        check(abs(top - want) <= 1e-9 and n["Lanczos bound"] <= 1e-10
              and n["residual |u - x|_inf / (1 + |x|_inf)"] <= 1e-10,
              f"large softmax: lambda_max {top} against NumPy {want}: {n}")
        print(f"{i['subject']}: lambda_max(B'WB) {top:.15g} (NumPy {want:.15g}), "
              f"{n['Lanczos steps']:.0f} Lanczos steps, {n['Newton steps']:.0f} Newton steps")
    print(f"large softmax (4500 units): damc check took {secs:.1f} s")


def euler_step(tmp):
    """The largest safe Euler step of docs/theory.md §4.3: Model B with its memory layer
    eliminated is of scheme (c1) (H_v = I), so dt <= 2 tau_v = 2 is safe and every step of the
    Euler run decreases E by at least (1/alpha - 1/2)|dv|^2; with the memory layer integrated
    (tau_h = 0.05) it is of scheme (c3), and the energy change of a step is second order."""
    rng = np.random.default_rng(3)
    np.savez(os.path.join(tmp, "w.npz"), Xi=np.sign(rng.standard_normal((20, 64))))
    for tau_h, scheme in (("0", "c1"), ("0.05", "c3")):
        model = os.path.join(tmp, f"b_{scheme}.dam")
        with open(model, "w") as f:
            f.write("dim N = 64;\ndim K;\nparam beta = 0.5;\nlayer v[N] { L = 0.5 * sum(v^2); tau = 1; }\n"
                    f"layer h[K] {{ L = logsumexp(beta * h) / beta; tau = {tau_h}; }}\n"
                    "synapse Xi[K, N] : h <-> v;\n")
        code, report, err, _ = damc_check(model, "--weights", f"{tmp}/w.npz")
        step = items(report, "euler-step")
        check(code == 0 and len(step) == 1 and step[0]["verdict"] == "pass", f"{scheme}: {step} {err}")
        if not step:
            continue
        n = step[0]["numbers"]
        if scheme == "c1":
            check("(c1)" in step[0]["reason"] and n["largest safe dt"] == 2
                  and n["worst (dE + (1/alpha - 1/2)|dv|^2) / allowance"] <= 1, f"c1: {step}")
        else:
            check("(c3)" in step[0]["reason"] and 3.5 <= n["median e(delta)/e(delta/2)"] <= 4.5
                  and n["states used"] >= 50, f"c3: {step}")
        print(f"{scheme}: {step[0]['reason'][:90]}... {n}")


def fault_injected(tmp):
    """damc_fault is damc built with one derivative rule broken (d tanh/dx = 1.001 sech^2,
    tests/CMakeLists.txt): the derivative check of a tanh layer must fail with it, H against
    the differences of g, and pass with the correct rule; the identity (1.4) fails too."""
    faulty = os.path.join(os.path.dirname(DAMC), "damc_fault")
    check(os.access(faulty, os.X_OK), f"no test build {faulty}")
    model = os.path.join(tmp, "tanh.dam")
    with open(model, "w") as f:
        f.write("dim N = 6;\nlayer v[N] { L = lagr_tanh(v); }\nlayer w[N] { L = lagr_tanh(w, 2); }\n"
                "synapse W[N, N] : v <-> w;\n")
    np.save(os.path.join(tmp, "W.npy"), np.random.default_rng(2).standard_normal((6, 6)) / 3)
    for damc, broken in ((DAMC, False), (faulty, True)):
        r = subprocess.run([damc, "check", model, "--weight", f"W={tmp}/W.npy", "--json"],
                           capture_output=True, text=True, timeout=300)
        report = json.loads(r.stdout) if r.returncode == 0 and r.stdout else None
        deriv = items(report, "derivatives")
        ident = items(report, "energy-identity")
        want = "fail" if broken else "pass"
        check(len(deriv) == 2 and all(i["verdict"] == want for i in deriv)
              and ident and ident[0]["verdict"] == want, f"{damc}: {deriv} {ident} {r.stderr}")
        if broken and deriv:
            check(all("H disagrees with the differences of g" in i["reason"] for i in deriv),
                  f"fault: {[i['reason'] for i in deriv]}")
            print(f"broken rule: {deriv[0]['reason'][:100]}... max e_H {deriv[0]['numbers']['max e_H']:.1e}")


CASES = {"marginal": marginal, "fully_dead": fully_dead, "asymmetric": asymmetric, "fault_injected": fault_injected, "euler_step": euler_step, "large_softmax": large_softmax, "all_eliminated": all_eliminated, "energy_rays": energy_rays, "examples": examples, "nonconvex": nonconvex, "no_weights": no_weights, "saddle": saddle, "unbounded": unbounded,
         "dead_units": dead_units, "directed": directed}


if __name__ == "__main__":
    run(CASES)

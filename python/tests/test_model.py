"""The Python module damc against the command line and NumPy: every example evaluated from
Python equals `damc eval` (its .npz) to 1e-12 in float64; run with clamps, inputs, batches
and every method; the errors; two independent models; rebinding without recompiling."""
import os
import subprocess
import threading

import numpy as np
import pytest

import damc
from conftest import EXAMPLES, helpers, sign_sweeps

EXAMPLE_NAMES = sorted(f[:-4] for f in os.listdir(EXAMPLES) if f.endswith(".dam"))
MODEL_B = os.path.join(EXAMPLES, "model_b.dam")


def model_b(k=20, beta=0.05, seed=0):
    rng = np.random.default_rng(seed)
    xi = np.sign(rng.standard_normal((k, 784)))
    m = damc.Model.from_file(MODEL_B)
    m.bind(Xi=xi, beta=beta)
    return m, xi


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_eval_equals_cli(name, tmp_path, damc_exe):
    path = os.path.join(EXAMPLES, name + ".dam")
    rng = np.random.default_rng(3)
    weights = helpers.weights_for(path, rng)
    layers = helpers.layers_of(path)
    states = {a: 0.5 * rng.standard_normal((3, n)) for a, n in layers.items()}
    for a in helpers.eliminated_of(path):  # x = u: an eliminated layer takes no state
        del states[a]
    np.savez(tmp_path / "w.npz", **weights)
    args = [damc_exe, "eval", path, "--weights", str(tmp_path / "w.npz"), "--precision", "f64",
            "--out", str(tmp_path / "out.npz")]
    for a, s in states.items():
        np.save(tmp_path / f"{a}.npy", s)
        args += ["--state", f"{a}={tmp_path / (a + '.npy')}"]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    want = np.load(tmp_path / "out.npz")
    m = damc.Model.from_file(path)
    m.bind(**weights)
    got = m.eval(state=states, precision="f64")
    assert sorted(got) == sorted(want.files)
    for k in want.files:
        assert got[k].shape == want[k].shape, k
        scale = np.maximum(1.0, np.abs(want[k]))
        assert np.all(np.abs(got[k] - want[k]) <= 1e-12 * scale), (k, np.abs(got[k] - want[k]).max())
    # The energy alone (the reduced energy when layers are eliminated): the same E.
    e = m.energy(state=states, precision="f64")
    assert e.shape == want["E"].shape
    assert np.all(np.abs(e - want["E"]) <= 1e-12 * np.maximum(1.0, np.abs(want["E"]))), \
        np.abs(e - want["E"]).max()


def test_run_retrieves_batch_and_float32():
    m, xi = model_b()
    cues = xi[:4].copy()
    cues[:, ::4] *= -1
    for precision in ("f32", "f64"):
        out = m.run(init={"v": cues}, tol=1e-3, precision=precision)
        assert out["x_v"].shape == (4, 784) and out["E"].shape == (4,)
        assert out["converged"].all()
        assert np.array_equal(np.sign(out["x_v"]), xi[:4])
        assert out["x_v"].dtype == np.float64 and out["x_v"].flags.c_contiguous
    # one sample: no batch axis
    out = m.run(init={"v": cues[0]}, tol=1e-3)
    assert out["x_v"].shape == (784,) and out["E"].shape == ()


@pytest.mark.parametrize("method,extra", [("euler", {"dt": 0.05}), ("rk4", {"dt": 0.1}),
                                          ("dopri5", {}), ("iterate", {"max_steps": 5})])
def test_methods_agree_on_the_fixed_point(method, extra):
    m, xi = model_b(k=10, beta=0.05)
    cue = xi[2].copy()
    cue[::5] *= -1
    out = m.run(init={"v": cue}, method=method, tol=1e-3, precision="f64", **extra)
    if method != "iterate":  # x <- u of both layers is not retrieval in 5 steps
        assert np.array_equal(np.sign(out["x_v"]), xi[2]), method
    ev = m.eval(state={a: out["x_" + a] for a in m.layers}, precision="f64")
    assert np.isclose(ev["E"], out["E"], rtol=1e-12, atol=1e-12)


def test_iterate_reports_a_cycle_of_period_2():
    m, xi = model_b(k=10, beta=8.0, seed=7)
    cues = xi[:3].copy()
    cues[:, :100] *= -1
    out = m.run(init={"v": cues}, method="iterate", precision="f64")
    assert out["warning"].startswith("3 of 3 samples did not converge: the iteration alternates "
                                     "between two states")
    assert out["warning"].endswith('or use method="dopri5"')
    assert not out["converged"].any() and (out["steps"] < 20).all()


def test_async_on_a_binary_model():
    text = "dim N;\nlayer s[N] { L = sum(abs(s)); }\nsynapse W[N, N] : s <-> s;\n"
    rng = np.random.default_rng(7)
    n, k = 60, 4
    xi = np.sign(rng.standard_normal((k, n)))
    w = xi.T @ xi / n
    np.fill_diagonal(w, 0)
    cues = xi.copy()
    for b in range(k):
        cues[b, rng.permutation(n)[: n // 5]] *= -1
    m = damc.Model(text, "sign.dam")
    m.bind(W=w)
    out = m.run(init={"s": cues}, method="async", order="sequential", precision="f64")
    for b in range(k):  # NumPy runs the same sweeps
        assert np.array_equal(out["x_s"][b], sign_sweeps(w, cues[b])[0])
    assert out["converged"].all()


def test_clamp_and_inputs():
    m, xi = model_b(k=10)
    cue = xi[1].copy()
    cue[::4] *= -1
    mask = np.zeros(784, bool)
    mask[:100] = True
    out = m.run(init={"v": cue}, clamp={"v": mask}, tol=1e-3, precision="f64")
    assert np.array_equal(out["x_v"][:100], cue[:100])  # held fixed
    # inputs: dx/dt = u - v with u = I + Xi' g: eval sees I
    I = np.full(784, 0.25)
    a = m.eval(state={"v": cue}, precision="f64")
    b = m.eval(state={"v": cue}, inputs={"v": I}, precision="f64")
    assert np.allclose(b["u_v"] - a["u_v"], 0.25, atol=1e-12)


def test_any_dtype_and_order():
    m, xi = model_b(k=10)
    cue = xi[0].copy()
    want = m.eval(state={"v": cue}, precision="f64")
    for v in (cue.astype(np.int8), cue.astype(np.float32), list(cue), (cue > 0) * 2 - 1):
        got = m.eval(state={"v": v}, precision="f64")
        assert np.allclose(got["E"], want["E"], rtol=1e-12)
    m2 = damc.Model.from_file(MODEL_B)
    m2.bind(Xi=np.asfortranarray(xi[:10]), beta=0.05)
    got = m2.eval(state={"v": np.asfortranarray(np.stack([cue, cue]))}, precision="f64")
    assert np.allclose(got["E"], want["E"], rtol=1e-12)


def test_a_state_that_is_not_finite_is_the_callers():
    # Said as a bad state at its place, in both precisions (not as an output that overflows).
    m, _ = model_b()
    v = np.zeros(784)
    v[5] = np.inf
    for precision in ("f32", "f64"):
        for fn in (m.eval, m.energy):
            with pytest.raises(damc.ModelError, match=r"state of layer 'v' has \+Inf at \[5\]"):
                fn(state={"v": v}, precision=precision)


def test_a_nul_in_the_text_is_an_error():
    with pytest.raises(ValueError, match="NUL character at offset 8"):
        damc.Model("dim N=4;\0 layer v[N] { L = lagr_identity(v); }")
    with pytest.raises(ValueError, match="Model name: a NUL"):
        damc.Model("dim N = 4;", name="a\0b")


def test_a_batch_beyond_memory_is_an_exception():
    # 10^6 samples against 10^6 memories: the kernels' [B, K] buffers would take 4 TB. The
    # interpreter lives on (it was aborted), and the model still evaluates a small batch.
    m = damc.Model("dim N = 4; dim K; layer v[N] { L = lagr_identity(v); } "
                   "layer h[K] { L = lagr_softmax(h); tau = 0; } synapse Xi[K, N] : h <-> v;")
    m.bind(Xi=np.ones((10**6, 4)) / 4)
    for fn in (m.eval, m.energy):
        with pytest.raises(damc.ModelError, match="out of memory: the kernel's buffer"):
            fn(state={"v": np.zeros((10**6, 4))}, precision="f64")
    assert np.isfinite(m.energy(state={"v": np.ones(4)}, precision="f64"))


def test_errors_are_exceptions_with_locations(tmp_path):
    bad = tmp_path / "bad.dam"
    bad.write_text("model x;\ndim N = 4;\nlayer v[N] { L = lagr_identity(v) tau = 1.0; }\n")
    with pytest.raises(damc.ModelError) as e:
        damc.Model.from_file(bad)
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.column, d.severity) == (str(bad), 3, 35, "error")
    assert "unexpected keyword 'tau'" in d.message and "^" in e.value.message
    with pytest.raises(damc.ModelError) as e:
        damc.Model("model y;\nlayer v[Q] { L = lagr_identity(v); }\n", "y.dam")
    assert e.value.diagnostics[0].file == "y.dam" and e.value.diagnostics[0].line == 2
    m = damc.Model.from_file(MODEL_B)
    with pytest.raises(damc.ModelError, match=r"tensor 'Xi' has shape \[20, 783\].*N=784"):
        m.bind(Xi=np.ones((20, 783)))
    with pytest.raises(damc.ModelError, match="weight 'Xi' .* is missing"):
        m.eval(state={"v": np.zeros(784)})
    xi = np.ones((20, 784))
    xi[2, 7] = np.nan
    with pytest.raises(damc.ModelError, match=r"'Xi'.*NaN.*\[2, 7\]"):
        m.bind(Xi=xi)
    m.bind(Xi=np.ones((20, 784)))
    with pytest.raises(damc.ModelError, match="layer 'v'"):
        m.eval(state={"v": np.zeros(5)})
    state = np.zeros(784)
    state[3] = np.nan
    for precision in ("f32", "f64"):
        with pytest.raises(damc.ModelError, match="NaN"):
            m.eval(state={"v": state}, precision=precision)
    with pytest.raises(ValueError, match="no layer 'w'"):
        m.eval(state={"w": np.zeros(784)})
    with pytest.raises(ValueError, match="no weight or param 'Xj'"):
        m.bind(Xj=xi)
    with pytest.raises(ValueError, match="method"):
        m.run(method="leapfrog")
    with pytest.raises(ValueError, match="precision"):
        m.eval(precision="f16")
    with pytest.raises(TypeError):
        m.bind(Xi=np.array(["a"] * 784))
    with pytest.raises(TypeError):
        m.bind(beta="big")
    with pytest.raises(TypeError):
        damc.Model(42)
    # Numbers that are not numbers, and integers ctypes would wrap, are refused.
    for bad_option in ({"dt": float("nan")}, {"rtol": -1.0}, {"tol": float("inf")}):
        with pytest.raises(ValueError, match="expected a finite number"):
            m.run(init={"v": np.ones(784)}, method="euler", **bad_option)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        m.run(init={"v": np.ones(784)}, seed=2 ** 70)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        m.run(init={"v": np.ones(784)}, max_steps=2 ** 70)
    with pytest.raises(ValueError, match="samples"):
        m.check(samples=-5)
    # still usable after all that
    assert np.isfinite(m.eval(state={"v": np.ones(784)})["E"])


def test_a_refused_bind_leaves_the_model_as_it_was():
    m = damc.Model("dim N = 8;\ndim K;\nlayer v[N] { L = lagr_identity(v); }\n"
                   "layer h[K] { L = lagr_softmax(h); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n"
                   "weight b[K];\nenergy -dot(b, g(h));\n", "bias.dam")
    m.bind(Xi=np.ones((3, 8)), b=np.zeros(3))
    before = m.eval(state={"v": np.ones(8)}, precision="f64")["E"]
    # A new K for Xi alone contradicts b's K = 3: refused, and b, Xi stay bound as they were.
    with pytest.raises(damc.ModelError):
        m.bind(Xi=np.ones((5, 8)))
    assert m.eval(state={"v": np.ones(8)}, precision="f64")["E"] == before
    m.bind(Xi=np.ones((5, 8)), b=np.zeros(5))  # both together: accepted
    assert np.isfinite(m.eval(state={"v": np.ones(8)})["E"])


def test_two_models_are_independent():
    a, xa = model_b(k=10, seed=1)
    b, xb = model_b(k=30, beta=0.1, seed=2)
    v = xa[0]
    ea = a.eval(state={"v": v}, precision="f64")["E"]
    eb = b.eval(state={"v": v}, precision="f64")["E"]
    a2, _ = model_b(k=10, seed=1)
    assert a2.eval(state={"v": v}, precision="f64")["E"] == ea
    del a2
    assert b.eval(state={"v": v}, precision="f64")["E"] == eb
    # from threads (the GIL is released in the kernels)
    results = {}

    def work(name, m):
        results[name] = [float(m.eval(state={"v": v}, precision="f64")["E"]) for _ in range(50)]

    ts = [threading.Thread(target=work, args=(n, m)) for n, m in (("a", a), ("b", b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert set(results["a"]) == {float(ea)} and set(results["b"]) == {float(eb)}


def test_rebind_does_not_recompile_and_weights_are_in_place():
    rng = np.random.default_rng(5)
    m = damc.Model.from_file(MODEL_B)
    xi = rng.standard_normal((256, 784))  # float64: read in place by the f64 kernels
    m.bind(Xi=xi, beta=0.05)
    v = rng.standard_normal(784)
    m.eval(state={"v": v}, precision="f64")
    count = m.compile_count
    for i in range(1000):
        m.eval(state={"v": v + i}, precision="f64")
    assert m.compile_count == count
    # new weights and params of the same shape: nothing compiled
    xi2 = rng.standard_normal((256, 784))
    m.bind(Xi=xi2, beta=0.1)
    e = m.eval(state={"v": v}, precision="f64")["E"]
    assert m.compile_count == count
    # in place: a change to the bound array is what the kernels read
    xi2[0] += 1.0
    e_changed = m.eval(state={"v": v}, precision="f64")["E"]
    assert e_changed != e
    fresh = damc.Model.from_file(MODEL_B)
    fresh.bind(Xi=xi2.copy(), beta=0.1)
    assert fresh.eval(state={"v": v}, precision="f64")["E"] == e_changed
    # the other precision compiled once and kept
    m.eval(state={"v": v})
    c32 = m.compile_count
    m.eval(state={"v": v}, precision="f64")
    m.eval(state={"v": v})
    assert m.compile_count == c32 > count
    # a new shape starts again, with the params kept
    m.bind(Xi=xi[:10])
    assert np.isclose(m.eval(state={"v": v}, precision="f64")["E"],
                      fresh_eval(xi[:10], 0.1, v), rtol=1e-12)


def fresh_eval(xi, beta, v):
    m = damc.Model.from_file(MODEL_B)
    m.bind(Xi=xi, beta=beta)
    return m.eval(state={"v": v}, precision="f64")["E"]


def test_progress_explain_check():
    m, xi = model_b(k=10)
    reports = []
    m.run(init={"v": xi[0]}, tol=1e-3, progress=reports.append)
    assert reports and reports[-1]["done"] and reports[-1]["converged"] == 1
    text = m.explain()
    assert "layer v[N]" in text and "logsumexp" in text
    assert "\\" in m.explain(latex=True)
    report = m.check(samples=5)
    assert report.verdict in ("pass", "warn") and report.items
    assert all(it.verdict in ("pass", "warn", "fail", "skipped") for it in report.items)
    assert "items" in report.json


def test_progress_errors_propagate():
    m, xi = model_b(k=10)

    def boom(info):
        raise ZeroDivisionError("from progress")

    with pytest.raises(ZeroDivisionError):
        m.run(init={"v": xi[0]}, tol=1e-3, progress=boom)
    assert m.run(init={"v": xi[0]}, tol=1e-3)["converged"]


def test_ctrl_c_stops_a_run():
    """SIGINT during a run (the C code holds no GIL) stops it at the next progress report and
    raises KeyboardInterrupt once the run has returned: here 2 s into a run of minutes."""
    import signal as sig
    import time
    m = damc.Model("dim N = 64;\ndim K;\nlayer v[N] { L = lagr_identity(v); }\n"
                   "layer h[K] { L = lagr_softmax(h, 0.5); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n", "m.dam")
    m.bind(Xi=np.sign(np.random.default_rng(0).standard_normal((200, 64))))
    threading.Timer(2, os.kill, (os.getpid(), sig.SIGINT)).start()
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        m.run(init={"v": np.random.default_rng(0).normal(size=(20000, 64))}, method="euler",
              max_steps=100000, tol=-1)
    assert time.time() - t0 < 30
    assert sig.getsignal(sig.SIGINT) is sig.default_int_handler  # the handler is given back


def test_arguments_of_the_wrong_kind_are_type_errors():
    m, xi = model_b()
    cue = np.ones(784)
    for call in (lambda: m.run(init=cue), lambda: m.run(init={"v": cue}, clamp=cue),
                 lambda: m.bind(5), lambda: m.run(init={"v": cue}, progress=5),
                 lambda: m.run(init={"v": cue}, max_steps=2.5), lambda: m.run(init={"v": cue}, dt="0.1"),
                 lambda: m.bind(beta=True)):
        with pytest.raises(TypeError):
            call()


def test_arrays_for_layers_that_cannot_take_them():
    """An input of a layer without `input`, a state or a clamp of an eliminated layer: refused
    with the engine's message (ModelError, as on the command line), never ignored."""
    plain = damc.Model("dim N = 4;\nlayer v[N] { L = lagr_tanh(v); }\n", "plain.dam")
    with pytest.raises(damc.ModelError, match="the model has no 'input v;' statement"):
        plain.run(init={"v": np.ones(4)}, inputs={"v": np.ones(4)})
    with pytest.raises(damc.ModelError, match="the model has no 'input v;' statement"):
        plain.eval(state={"v": np.ones(4)}, inputs={"v": np.ones(4)})
    m = damc.Model("dim N = 4;\nlayer v[N] { L = lagr_identity(v); }\n"
                   "layer h[3] { L = lagr_softmax(h); tau = 0; }\nsynapse Xi[3, N] : h <-> v;\n",
                   "elim.dam")
    m.bind(Xi=np.eye(3, 4))
    xi, h = np.eye(3, 4), np.ones(3)
    eliminated = r"a %s is given for layer 'h', but 'h' is eliminated \(tau = 0\)"
    with pytest.raises(damc.ModelError, match=eliminated % "state"):
        m.run(init={"v": xi[0], "h": h})
    with pytest.raises(damc.ModelError, match=eliminated % "state"):
        m.eval(state={"v": xi[0], "h": h})
    with pytest.raises(damc.ModelError, match=eliminated % "clamp"):
        m.run(init={"v": xi[0]}, clamp={"h": h})


def test_a_current_that_is_a_weight_alone():
    # u_v = b (tests/e2e/models/bias_only.dam): dx/dt = b - x, the fixed point x = b with
    # E = -|b|^2 / 2; the current is a copy of the weight into u's buffer.
    text = ("dim N;\nlayer v[N] { L = lagr_identity(v); tau = 1.0; }\nweight b[N];\n"
            "energy -dot(b, g(v));\n")
    b = np.array([0.5, -1.25, 2.0])
    x = np.array([[1.0, 2.0, -3.0], [0.0, 0.5, 0.25]])
    # The run stops at tol (the stop rule's relative change): float32 cannot reach 1e-7.
    for precision, tol, stop in (("f64", 1e-12, 1e-7), ("f32", 1e-6, 1e-4)):
        m = damc.Model(text, "bias_only.dam")
        m.bind(b=b)
        out = m.eval(state={"v": x}, precision=precision)
        assert np.allclose(out["u_v"], np.broadcast_to(b, x.shape), rtol=tol, atol=tol)
        assert np.allclose(out["dxdt_v"], b - x, rtol=tol, atol=tol)
        assert np.allclose(out["E"], -x @ b + (x * x).sum(axis=1) / 2, rtol=tol, atol=tol)
        run = m.run(init={"v": x}, tol=stop, precision=precision)
        assert run["converged"].all()
        assert np.allclose(run["x_v"], np.broadcast_to(b, x.shape), rtol=0, atol=100 * stop)
        assert np.allclose(run["E"], -(b @ b) / 2, rtol=100 * stop)

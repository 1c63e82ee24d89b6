"""The messages name this module's means (damc_set_phrase, set by Model): every message of
the engine that says how to give what is missing or to ask for what would help names a
method or a keyword of the module, never a flag of the command line. Each text is checked
whole; tests/golden/diag/means_*.dam give the command line's texts of the same messages and
tests/unit/test_api_messages.c the C API's."""
import warnings

import numpy as np
import pytest

import damc

DECAY = "model decay;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
W2 = ("model w;\ndim N = 2;\nparam beta = 1;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
      "weight b[N];\nenergy -beta * dot(b, g(v));\n")


def message(call):
    """The whole message of the ModelError that `call` raises."""
    with pytest.raises(damc.ModelError) as e:
        call()
    return e.value.message


def test_what_is_missing():
    m = damc.Model("model p;\ndim N = 2;\ndim K;\ndim M;\nparam beta;\n"
                   "layer v[N] { L = 0.5 * sum(v^2); }\nlayer m[M] { L = lagr_softmax(m); }\n"
                   "weight W[K, N];\nenergy -beta * sum(W @ g(v));\n", "p.dam")
    assert message(m.eval) == (
        "weight 'W' [K, N=2] is missing: give it with Model.bind(W=ARRAY)\n"
        "param 'beta' has no default: give it with Model.bind(beta=VALUE)\n")
    m.bind(W=np.ones((3, 2)))
    # No means to size a dim here: the model's declaration alone is named.
    assert message(m.eval) == (
        "dim 'M' has no size: no tensor fixes it; give it in the model ('dim M = ...;')\n"
        "param 'beta' has no default: give it with Model.bind(beta=VALUE)\n")


def test_what_float64_would_hold():
    m = damc.Model(W2, "w.dam")
    m.bind(b=np.array([1e39, 0]))
    assert message(m.eval) == (
        "Model.bind(b=...): weight 'b': 9.9999999999999994e+38 at [0] does not fit float32 "
        "(largest 3.40282347e+38): use precision=\"f64\"\n")
    m.bind(b=np.ones(2), beta=1e39)
    assert message(m.eval) == (
        "param 'beta' = 9.9999999999999994e+38 does not fit float32 (largest 3.40282347e+38): "
        "use precision=\"f64\"\n")
    lit = damc.Model("model lit;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
                     "energy -1e39 * sum(g(x));\n", "lit.dam")
    assert message(lit.eval) == (
        "the model's equations hold the number 1e+39, which does not fit float32 (largest "
        "3.40282347e+38): use precision=\"f64\"\n")
    decay = damc.Model(DECAY, "decay.dam")
    assert message(lambda: decay.eval(state={"x": np.array([1e20, 1])})) == (
        "output 'E_x' is +Inf at sample 0, index 0: the model is not finite at these states "
        "and params; it overflows float32 there (in float64 it is 5e+39): use "
        "precision=\"f64\"\n")


def test_runs():
    sq = damc.Model("model sq;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
                    "energy sum(sqrt(g(x)));\n", "sqrt.dam")
    assert message(lambda: sq.run(init={"x": np.full(2, 0.5)}, method="euler", dt=0.1)) == (
        "the run failed: layer 'x', sample 0, neuron 0 is nan at step 5 (t = 0.5): a function "
        "was evaluated outside its domain (a log or a square root of a negative number, or "
        "inf - inf); a smaller dt or precision=\"f64\" may avoid it\n")
    div = damc.Model("model div;\ndim N = 1;\nlayer x[N] { L = 0.5 * sum(x^2); }\n"
                     "energy -sum(g(x)^2);\n", "div.dam")
    assert message(lambda: div.run(init={"x": np.ones(1)}, method="euler", dt=1)) == (
        "the run diverged: layer 'x', sample 0, neuron 0 is inf at step 128 (t = 128): the "
        "state grew without bound (is E bounded below? Model.check() says) or beyond the float "
        "type (precision=\"f64\")\n")
    cycle = damc.Model("model cycle;\ndim N = 1;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
                       "layer h[N] { L = 0.5 * sum(h^2); }\nsynapse W[N, N] : h <-> v;\n",
                       "cycle.dam")
    cycle.bind(W=-np.ones((1, 1)))
    assert cycle.run(init={"v": np.ones(1)}, method="iterate")["warning"] == (
        "1 of 1 samples did not converge: the iteration alternates between two states (sample "
        "0: after step 2 the state is back within tol = 0.0001 of the one two steps before, "
        "while a step changes layer 'h', neuron 0 by tau |dx/dt| / (1 + |x|) = 1); x <- u of "
        "coupled integrated layers overshoots, so more steps will not help: eliminate the "
        "hidden layer (tau = 0 in the model; Model.explain() shows the result) or use "
        "method=\"dopri5\"")
    decay = damc.Model(DECAY, "decay.dam")
    out = decay.run(init={"x": np.array([1, 0.5])}, method="euler", dt=0.1, max_steps=1)
    assert out["warning"] == (
        "1 of 1 samples did not converge in 1 steps; the largest residual is in layer 'x' "
        "(sample 0, neuron 0): tau |dx/dt| / (1 + |x|) = 0.47368419797796957 > tol = 0.0001; "
        "raise max_steps, or tol")
    assert message(lambda: decay.run(init={"x": np.ones(2)}, method="async")) == (
        "method=\"async\" needs binary layers (g = sign(x), e.g. L = sum(abs(x))), but layer "
        "'x' is not\n")
    sign = damc.Model("model sign;\ndim N = 3;\nlayer s[N] { L = sum(abs(s)); }\n"
                      "synapse W[N, N] : s <-> s;\n", "sign.dam")
    sign.bind(W=np.ones((3, 3)) - np.eye(3))
    out = sign.run(init={"s": np.array([1, 1, -1])}, method="async", order="sequential",
                   max_steps=1)
    assert out["warning"] == "1 of 1 samples still changed in sweep 1; raise max_steps"
    elim = damc.Model("model elim;\ndim N = 2;\nlayer x[N] { L = 0.5 * sum(x^2); tau = 0; }\n",
                      "elim.dam")
    assert message(elim.run) == (
        "every layer is eliminated (tau = 0): there is nothing to integrate; use Model.eval()\n")


def test_options_of_another_method():
    decay = damc.Model(DECAY, "decay.dam")
    for options, text in (
            ({"order": "sequential"}, "the order of the units is an option of method=\"async\" only"),
            ({"method": "rk4", "noise_T": 0.5},
             "noise_T = 0.5: noise is an option of method=\"euler\" and method=\"async\" only")):
        with pytest.raises(ValueError) as e:
            decay.run(init={"x": np.ones(2)}, **options)
        assert str(e.value) == text


def test_check_without_weights():
    report = damc.Model(W2, "w.dam").check(samples=4)
    skipped = [it for it in report.items if it.verdict == "skipped" and it.subject == "network"]
    assert [it.check for it in skipped] == ["energy-identity", "energy-decrease", "stability"]
    assert {it.reason for it in skipped} == {"needs the weights (give them with Model.bind)"}


def test_a_param_that_is_not_finite():
    # A bad argument: ValueError (the C API's status 2), with the engine's message.
    m = damc.Model(W2, "w.dam")
    for value, text in ((float("nan"), "nan"), (float("-inf"), "-inf")):
        with pytest.raises(ValueError) as e:
            m.bind(beta=value)
        assert str(e.value) == f"Model.bind(beta={text}): the value must be a finite number"


def test_a_tau_the_params_make_negative():
    # Located at tau as written, and refused: the model keeps the value it had.
    m = damc.Model("param c = 1.0;\nlayer v[4] { L = 0.5 * sum(v^2); tau = 1 / c; }\n", "tau.dam")
    before = m.run(init={"v": np.ones(4)}, max_steps=3)["x_v"]
    with pytest.raises(damc.ModelError) as e:
        m.bind(c=-2)
    assert e.value.diagnostics == [damc.Diagnostic(
        "tau.dam", 2, 40, "error",
        "tau of layer 'v' is -0.5 with the params as set (c = -2); it must not be negative")]
    assert np.array_equal(m.run(init={"v": np.ones(4)}, max_steps=3)["x_v"], before)


def test_params_that_make_a_lagrangian_not_convex_warn():
    # damc.ModelWarning (Python's warnings) when the model is compiled and when bind sets a
    # param after, once per change of the text; none with params that keep it convex.
    m = damc.Model("param c = 1.0;\nlayer v[3] { L = sum(v^2) / (2 * c); }\n", "nc.dam")
    m.bind(c=-1)
    with pytest.warns(damc.ModelWarning) as record:
        m.eval(state={"v": np.ones(3)})
    assert [str(w.message) for w in record] == [
        "nc.dam:2:18: warning: with the params as set, the Lagrangian of layer 'v' is not convex "
        "(a negative multiple of a convex term): E need not decrease; 'Model.check()' tells "
        "more\n    2 | layer v[3] { L = sum(v^2) / (2 * c); }\n"
        "      |                  ^~~~~~~~~~~~~~~~~~"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.eval(state={"v": np.ones(3)})  # said once
        m.bind(c=2)
    with pytest.warns(damc.ModelWarning):
        m.bind(c=-3)

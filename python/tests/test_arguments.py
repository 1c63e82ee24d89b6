"""Every public function and method against arguments it cannot take, as docs/python.md
("Errors") says and Python's conventions have it: a value of the wrong type raises TypeError
(a str, None, a complex or a bool where a number is needed; a float where an integer is), a
value of the right type that the argument cannot take raises ValueError (an unknown name, a
rank, NaN or an infinity, a negative count, an integer too large for the argument, 10**400
for a float), never OverflowError; each message is checked whole, and the model still works
after all of them."""
import math
from fractions import Fraction

import numpy as np
import pytest

import damc

TEXT = ("model t;\ndim N = 4;\nparam beta = 1;\nlayer v[N] { L = 0.5 * sum(v^2); }\n"
        "layer h[2] { L = lagr_softmax(h); tau = 0; }\nsynapse Xi[2, N] : h <-> v;\n")
BIG = 10 ** 400
V = {"v": np.ones(4)}
NUMERIC = "(give numbers: any integer, bool or float dtype)"


@pytest.fixture(scope="module")
def m():
    model = damc.Model(TEXT, "t.dam")
    model.bind(Xi=np.eye(2, 4))
    return model


TYPE_ERRORS = [
    (lambda m: damc.Model(b"dim N = 1;"),
     "Model(text): the model's text as a str, not bytes (Model.from_file reads a file)"),
    (lambda m: damc.Model(TEXT, name=5), "Model(text, name): name is a str"),
    (lambda m: damc.Model.from_file(5), "expected str, bytes or os.PathLike object, not int"),
    (lambda m: m.layer_size(0), "layer: names are str, not int"),
    (lambda m: m.bind(5), "bind: weights as a dict of name -> array (or as keywords), not int"),
    (lambda m: m.bind({5: 1.0}), "bind: names are str, not int"),
    (lambda m: m.bind(beta="1"), "bind: param 'beta' is a number, not str"),
    (lambda m: m.bind(beta=None), "bind: param 'beta' is a number, not NoneType"),
    (lambda m: m.bind(beta=True), "bind: param 'beta' is a number, not bool"),
    (lambda m: m.bind(beta=np.bool_(True)), "bind: param 'beta' is a number, not bool_"),
    (lambda m: m.bind(beta=1j), "bind: param 'beta' is a number, not complex"),
    (lambda m: m.bind(beta=np.ones(1)), "bind: param 'beta' is a number, not ndarray"),
    (lambda m: m.bind(Xi=np.full((2, 4), "a")),
     f"weight 'Xi': an array of <U1 is not numeric {NUMERIC}"),
    (lambda m: m.compile(64), "precision is a str, not int"),
    (lambda m: m.eval(state=[np.ones(4)]), "state: a dict of layer name -> array, not list"),
    (lambda m: m.eval(state={0: np.ones(4)}), "layer: names are str, not int"),
    (lambda m: m.eval(precision=None), "precision is a str, not NoneType"),
    (lambda m: m.energy(inputs=5), "input: a dict of layer name -> array, not int"),
    (lambda m: m.hvp(V, np.ones(4)), "direction: a dict of layer name -> array, not ndarray"),
    (lambda m: m.jvp(V, {"v": "x"}),
     f"direction of layer 'v': an array of <U1 is not numeric {NUMERIC}"),
    (lambda m: m.run(V, method=5), "run: method is a str, not int"),
    (lambda m: m.run(V, order=None), "run: order is a str, not NoneType"),
    (lambda m: m.run(V, dt="0.1"), "run: dt is a number, not str"),
    (lambda m: m.run(V, tol=True), "run: tol is a number, not bool"),
    (lambda m: m.run(V, noise_T=1j), "run: noise_T is a number, not complex"),
    (lambda m: m.run(V, max_steps=2.5), "run: max_steps is an integer, not float"),
    (lambda m: m.run(V, max_steps=10.0), "run: max_steps is an integer, not float"),
    (lambda m: m.run(V, seed=True), "run: seed is an integer, not bool"),
    (lambda m: m.run(V, seed="1"), "run: seed is an integer, not str"),
    (lambda m: m.run(V, progress=5), "run: progress is True, False or a function, not int"),
    (lambda m: m.run(V, clamp=[1]), "clamp: a dict of layer name -> array, not list"),
    (lambda m: m.explain(latex="yes"), "explain: latex is True or False, not str"),
    (lambda m: m.check(seed="a"), "check: seed is an integer, not str"),
    (lambda m: m.check(seed=2.5), "check: seed is an integer, not float"),
    (lambda m: m.check(samples=True), "check: samples is an integer, not bool"),
]

VALUE_ERRORS = [
    (lambda m: damc.Model.from_file("a\0b"),
     "Model.from_file: a NUL character at offset 1 of the path"),
    (lambda m: m.layer_size("w"), "model has no layer 'w' (its layers: v, h)"),
    (lambda m: m.bind(Xj=1.0),
     "bind: model has no weight or param 'Xj' (weights: Xi; params: beta)"),
    (lambda m: m.bind(beta=BIG), "bind: param 'beta': a number beyond the range of a float"),
    (lambda m: m.bind(beta=math.nan), "Model.bind(beta=nan): the value must be a finite number"),
    (lambda m: m.bind(beta=-math.inf),
     "Model.bind(beta=-inf): the value must be a finite number"),
    (lambda m: m.bind(Xi=np.ones((1, 1, 1, 1, 1))),
     "weight 'Xi': an array of rank 5; at most 4 dimensions"),
    (lambda m: m.compile("f16"), "precision 'f16': one of 'f32', 'float32', 'f64', 'float64'"),
    (lambda m: m.eval(state={"w": np.ones(4)}), "model has no layer 'w' (its layers: v, h)"),
    (lambda m: m.eval(state={"v": np.ones((1, 1, 4))}),
     "state of layer 'v': shape [1, 1, 4]; give [n] or [B, n]"),
    (lambda m: m.hvp(V, {"v": np.ones((1, 1, 4))}),
     "direction of layer 'v': shape [1, 1, 4]; give [n] or [B, n]"),
    (lambda m: m.run(V, method="leapfrog"),
     "run: method 'leapfrog': one of 'dopri5', 'rk4', 'euler', 'async', 'iterate'"),
    (lambda m: m.run(V, order="backwards"), "run: order 'backwards': one of 'random', 'sequential'"),
    (lambda m: m.run(V, dt=BIG), "run: dt: a number beyond the range of a float"),
    (lambda m: m.run(V, dt=math.nan), "dt = nan: expected a finite number >= 0 (0: the default)"),
    (lambda m: m.run(V, rtol=-1), "rtol = -1: expected a finite number >= 0 (0: the default)"),
    (lambda m: m.run(V, tol=math.inf), "tol = inf: expected a finite number (0: the default)"),
    (lambda m: m.run(V, method="euler", noise_T=-1.0),
     "noise_T = -1: the temperature is a finite number >= 0"),
    (lambda m: m.run(V, max_steps=-1), "run: max_steps is an integer from 0 to 2**63 - 1"),
    (lambda m: m.run(V, max_steps=2 ** 63), "run: max_steps is an integer from 0 to 2**63 - 1"),
    (lambda m: m.run(V, seed=-1), "run: seed is an integer from 0 to 2**64 - 1"),
    (lambda m: m.run(V, seed=BIG), "run: seed is an integer from 0 to 2**64 - 1"),
    (lambda m: m.check(seed=2 ** 64), "check: seed is an integer from 0 to 2**64 - 1"),
    (lambda m: m.check(samples=-5),
     "check: samples is an integer from 0 to 2**31 - 1 (0: the default, 20)"),
    (lambda m: m.check(samples=2 ** 31),
     "check: samples is an integer from 0 to 2**31 - 1 (0: the default, 20)"),
]


@pytest.mark.parametrize("call, text", TYPE_ERRORS)
def test_a_value_of_the_wrong_type_is_a_type_error(m, call, text):
    with pytest.raises(TypeError) as e:
        call(m)
    assert str(e.value) == text


@pytest.mark.parametrize("call, text", VALUE_ERRORS)
def test_a_value_the_argument_cannot_take_is_a_value_error(m, call, text):
    with pytest.raises(ValueError) as e:
        call(m)
    assert str(e.value) == text


def test_what_the_arguments_take(m, tmp_path):
    """Numbers of any real type (Fraction, NumPy scalars), integers of any integer type, up to
    the largest each argument takes; paths as str, bytes or path-like; and after every
    refused call above, the model as it was."""
    fresh = damc.Model(TEXT, "t.dam")
    fresh.bind(Xi=np.eye(2, 4))
    ref = fresh.eval(state=V, precision="f64")["E"]
    assert m.eval(state=V, precision="f64")["E"] == ref
    m.bind(beta=Fraction(1, 2))
    m.bind(beta=np.float32(1))
    m.bind(beta=1)
    assert m.eval(state=V, precision="f64")["E"] == ref
    out = m.run(V, method="euler", dt=np.float64(0.1), max_steps=np.int64(3),
                seed=np.uint64(2 ** 64 - 1), noise_T=Fraction(1, 10))
    assert out["steps"] == 3
    assert m.run(V, seed=2 ** 64 - 1, max_steps=2 ** 63 - 1)["converged"]
    assert m.check(seed=np.uint64(2 ** 64 - 1), samples=np.int8(2)).verdict in ("pass", "warn")
    assert m.explain(latex=np.bool_(True)) != m.explain(latex=False) == m.explain(0)
    path = tmp_path / "t.dam"
    path.write_text(TEXT)
    for p in (path, str(path), bytes(path)):
        assert damc.Model.from_file(p).layers == ["v", "h"]


def test_a_closed_model_is_a_value_error():
    m = damc.Model(TEXT, "t.dam")
    m.close()
    with pytest.raises(ValueError) as e:
        m.eval()
    assert str(e.value) == "the model is closed"

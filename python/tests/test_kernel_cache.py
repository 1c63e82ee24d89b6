"""The Python module with the cache of compiled kernels on (docs/performance.md): one model
used in both precisions with check() between gives the results it gives with the cache off,
bit for bit, and no call fails (before the fix: run(precision="f64") after run() and check()
raised ModelError("the cached kernels have no 'damc_eval'"), then ModelError('')).

The cache directory is read once per process, so each sequence runs in a subprocess of its
own: with the cache on in a fresh directory (compiled and stored), again there (loaded), and
with the cache off."""
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r'''
import sys
import numpy as np
import damc
model = """model mb;
dim N = 20;
dim K;
param beta = 2.0;
layer v[N] { L = lagr_identity(v); tau = 1.0; }
layer h[K] { L = logsumexp(beta * h) / beta; tau = 0.05; }
synapse Xi[K, N] : h <-> v;
input v;
"""
m = damc.Model(model, "mb.dam")
Xi = np.sign(np.random.default_rng(0).standard_normal((6, 20)))
m.bind(Xi=Xi)
v = Xi[:3].copy()
v[:, ::4] *= -0.5
out = {}
for i, s in enumerate(sys.argv[2].split(",")):
    p = "f64" if s.endswith("64") else "f32"
    try:
        if s.startswith("run"):
            r = m.run(init={"v": v}, method="iterate", max_steps=5, precision=p)
        elif s.startswith("eval"):
            r = m.eval(state={"v": v}, precision=p)
        elif s.startswith("energy"):
            r = {"E": m.energy(state={"v": v}, precision=p)}
        else:
            r = {"verdict": np.array(m.check(seed=3, samples=4).verdict)}
    except damc.ModelError as e:
        print("FAILED", s, repr(str(e)))
        assert str(e), "a ModelError without a message"
        sys.exit(1)
    for k, a in r.items():
        if isinstance(a, np.ndarray):
            out["%d_%s_%s" % (i, s, k)] = a
np.savez(sys.argv[1], **out)
'''

SEQUENCES = ["run32,check,run64,eval64,energy64",
             "eval32,check,eval64,run64",
             "run64,check,run32,energy32,eval64"]


def _run(tmp_path, seq, name, cache):
    env = {k: v for k, v in os.environ.items() if k not in ("DAMC_NO_CACHE", "DAMC_CACHE_DIR")}
    if cache:
        env["DAMC_CACHE_DIR"] = str(cache)
    else:
        env["DAMC_NO_CACHE"] = "1"
    out = tmp_path / (name + ".npz")
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(out), seq], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("seq", SEQUENCES)
def test_precisions_and_check_with_the_cache(tmp_path, seq):
    cache = tmp_path / "cache"
    want = _run(tmp_path, seq, "off", None)
    for name in ("fresh", "filled"):
        got = _run(tmp_path, seq, name, cache)
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
            assert got[k].tobytes() == want[k].tobytes(), (name, k)
    assert any(f.startswith("kernels-") for f in os.listdir(cache))  # the cache was on

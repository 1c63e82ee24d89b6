"""What the reproductions share: where damc is (argv[1] or $DAMC, else build/damc), running
it on NumPy arrays in a temporary directory, and printing a table that results.py can gather.

Every script prints lines `| ... |` (Markdown table rows) between `## title` lines, and when
given --json PATH writes its measured figures there, so that `make reproduce` can assemble
docs/results.md and the tests can assert on them."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")


def damc_path(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if args and os.path.exists(args[0]):
        return os.path.abspath(args[0])
    if os.environ.get("DAMC"):
        return os.environ["DAMC"]
    return os.path.join(HERE, "..", "build", "damc")


def option(argv, name, default=None):
    """The value after --NAME in argv, or default."""
    return argv[argv.index(name) + 1] if name in argv else default


class Damc:
    def __init__(self, argv):
        self.exe = damc_path(argv)
        self.tmp = tempfile.TemporaryDirectory()
        self.count = 0

    def path(self, stem):
        self.count += 1
        return os.path.join(self.tmp.name, f"{stem}{self.count}")

    def save(self, arr, stem="a"):
        p = self.path(stem) + ".npy"
        np.save(p, np.ascontiguousarray(arr, dtype=np.float64))
        return p

    def run(self, model, weights, init, *args, clamp=None, sets=()):
        """`damc run MODEL` with WEIGHTS (a dict of arrays), INIT (a dict layer -> array, [B, n]),
        an optional CLAMP (layer -> 0/1 mask) and ARGS; returns the --out arrays as a dict."""
        w = self.path("w") + ".npz"
        np.savez(w, **{k: np.asarray(v, dtype=np.float64) for k, v in weights.items()})
        out = self.path("out") + ".npz"
        cmd = [self.exe, "run", model if os.sep in model else os.path.join(MODELS, model), "--weights", w, "--out", out,
               "--precision", "f64", "--quiet"]
        for layer, arr in init.items():
            cmd += ["--init", f"{layer}={self.save(arr)}"]
        for layer, arr in (clamp or {}).items():
            cmd += ["--clamp", f"{layer}={self.save(arr)}"]
        for s in sets:
            cmd += ["--set", s]
        cmd += list(args)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"damc failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stderr}")
        with np.load(out) as z:
            return {k: z[k] for k in z.files}

    def one_step(self, model, weights, states, layer="s", sets=()):
        """One synchronous step of the single-unit rule (docs/theory.md §5.3): every unit of
        every state in STATES [B, N] decided from that same state, as the one-step stability
        of KH16 and the one-step retrieval of D17 are defined. Returns the new states [B, N].

        damc decides the units (`damc run --method async --order sequential --max-steps 1`,
        with --clamp), in rounds: in a round each state starts afresh with its undecided units
        free and the others clamped, and the sweep visits the free ones in index order. Every
        unit visited before the first one that flips saw the state unchanged, and so did that
        one: they are decided. The units after it saw a changed state and stay undecided for
        the next round. A state takes (its number of flips + 1) rounds at most; a round costs
        one sweep (the fast path's O(N K) a sample), where clamping every unit but one per
        sample would cost N sweeps of N samples."""
        states = np.asarray(states, dtype=np.float64)
        b_all, n = states.shape
        out = states.copy()
        undecided = np.ones((b_all, n), dtype=bool)
        while undecided.any():
            rows = np.flatnonzero(undecided.any(axis=1))
            s = states[rows]
            r = self.run(model, weights, {layer: s}, "--method", "async", "--max-steps", "1",
                         "--order", "sequential", clamp={layer: (~undecided[rows]).astype(np.float64)},
                         sets=sets)
            x = np.sign(r["x_" + layer])
            for q, b in enumerate(rows):
                free = np.flatnonzero(undecided[b])
                flipped = free[x[q, free] != s[q, free]]
                last = flipped[0] if len(flipped) else n        # the first flip in visiting order
                done = free[free <= last]
                out[b, done] = x[q, done]
                undecided[b, done] = False
        return out


def write_json(argv, data):
    path = option(argv, "--json")
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1)

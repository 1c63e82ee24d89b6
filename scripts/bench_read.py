#!/usr/bin/python3
"""Reading a big weight: damc's reader against np.load (docs/performance.md).

usage: /usr/bin/python3 scripts/bench_read.py BUILD_DIR [--mb 268] [--rounds 5]

Writes a float32 weight of about MB megabytes ([K, 784]) as .npy, big-endian .npy,
Fortran-order .npy and .npz, and a float64 .npy of the same elements, into a temporary
directory; then, alternating over rounds, times `npy_tool time` (damc's reader, as damc reads a
weight for float32 kernels: the range check on float64 data) and np.load (+ astype(float32)
for the float64 file, which is what the same result costs in NumPy), keeping the best of each.
Files are in the page cache (just written): this measures decoding and copying, not the disk.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def main(argv):
    build = argv[1]
    mb = float(argv[argv.index("--mb") + 1]) if "--mb" in argv else 268
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    tool = os.path.join(build, "runtime", "tests", "npy_tool")
    k = int(mb * 1e6 / 4 / 784)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((k, 784), dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        files = {
            "float32 .npy": ("a.npy", lambda p: np.save(p, x), lambda p: np.load(p)),
            "float32 .npz (stored)": ("a.npz", lambda p: np.savez(p, Xi=x), lambda p: np.load(p)["Xi"]),
            "float32 big-endian": ("b.npy", lambda p: np.save(p, x.astype(">f4")), lambda p: np.load(p)),
            "float32 Fortran order": ("f.npy", lambda p: np.save(p, np.asfortranarray(x)),
                                      lambda p: np.ascontiguousarray(np.load(p))),
            "float64 .npy -> float32": ("d.npy", lambda p: np.save(p, x.astype(np.float64)),
                                        lambda p: np.load(p).astype(np.float32)),
        }
        print("weight [%d, 784] float32 = %.0f MB; best of %d rounds" % (k, k * 784 * 4 / 1e6, rounds))
        print("| file | damc reader | NumPy | damc / NumPy |")
        print("|---|---|---|---|")
        for what, (name, save, load) in files.items():
            path = os.path.join(d, name)
            save(path)
            best_d = best_n = 1e9
            for _ in range(rounds):
                out = subprocess.run([tool, "time", "f32", path, "1"], capture_output=True,
                                     text=True, check=True).stdout
                best_d = min(best_d, float(out))
                t = time.perf_counter()
                a = load(path)
                best_n = min(best_n, time.perf_counter() - t)
                del a
            print("| %s | %.3f s | %.3f s | %.2f |" % (what, best_d, best_n, best_d / best_n))
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

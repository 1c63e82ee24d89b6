#!/usr/bin/python3
"""Regenerates the seed corpus of the runtime's fuzz targets (corpus/npy, corpus/npz).

Run it with Debian's /usr/bin/python3 (which has NumPy) and commit the result. The seeds are
small valid files covering every dtype, byte order, layout and format version the reader
accepts, a few it refuses, and a few damaged ones, so the fuzzer starts from every branch
and the replay test (runtime/fuzz-replay/*) exercises them in every build.
"""
import io
import os
import zipfile

import numpy as np
import numpy.lib.format as fmt

HERE = os.path.dirname(os.path.abspath(__file__))


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    fmt.write_array(buf, arr, version=version, allow_pickle=True)
    return buf.getvalue()


def main():
    npy_dir = os.path.join(HERE, "corpus", "npy")
    npz_dir = os.path.join(HERE, "corpus", "npz")
    os.makedirs(npy_dir, exist_ok=True)
    os.makedirs(npz_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    seeds = {}
    for code in ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]:
        orders = "<>" if np.dtype(code).itemsize > 1 else "|"
        for order in orders:
            dt = np.dtype(order + code if order != "|" else code)
            arr = np.abs(rng.standard_normal((2, 3)) * 50).astype(dt)
            suffix = {"<": "_le", ">": "_be", "|": ""}[order]
            seeds[code + suffix] = npy_bytes(arr)
    seeds["fortran_3d"] = npy_bytes(np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)))
    seeds["scalar"] = npy_bytes(np.float64(2.5))
    seeds["empty"] = npy_bytes(np.zeros((0, 3)))
    seeds["rank4"] = npy_bytes(np.ones((1, 2, 1, 2), dtype="<f4"))
    seeds["v2"] = npy_bytes(np.arange(3.0), version=(2, 0))
    seeds["v3"] = npy_bytes(np.arange(3.0), version=(3, 0))
    seeds["complex"] = npy_bytes(np.zeros(2, dtype="<c16"))
    seeds["object"] = npy_bytes(np.array([1, None], dtype=object))
    seeds["structured"] = npy_bytes(np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4")]))
    seeds["rank5"] = npy_bytes(np.zeros((1, 1, 1, 1, 2)))
    good = npy_bytes(np.arange(6.0).reshape(2, 3))
    seeds["truncated_data"] = good[:-5]
    seeds["truncated_header"] = good[:40]
    seeds["trailing"] = good + b"\0"
    seeds["py2_header"] = good.replace(b"(2, 3)", b"(2L, 3L)")
    for name, data in seeds.items():
        with open(os.path.join(npy_dir, name + ".npy"), "wb") as f:
            f.write(data)

    np.savez(os.path.join(npz_dir, "savez.npz"), a=np.arange(4.0), b=np.int32(3),
             c=np.ones((2, 2), dtype=">f4"))
    np.savez_compressed(os.path.join(npz_dir, "compressed.npz"), w=np.eye(3),
                        mask=np.array([True, False]))
    np.savez(os.path.join(npz_dir, "empty.npz"))
    with zipfile.ZipFile(os.path.join(npz_dir, "plain_zip.npz"), "w",
                         zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", good)
        z.writestr("notes.txt", b"not a tensor")
    with open(os.path.join(npz_dir, "compressed.npz"), "rb") as f:
        data = f.read()
    with open(os.path.join(npz_dir, "truncated.npz"), "wb") as f:
        f.write(data[: len(data) // 2])


if __name__ == "__main__":
    main()

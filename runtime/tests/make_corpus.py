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
    crafted(npy_dir, npz_dir)


def zip_bytes(members, deflated=True):
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buf.getvalue()


def lie_about_size(archive, name, size):
    """The archive with the uncompressed size of member `name` set to `size` in both its
    local header and its central directory entry (no zip64 fields)."""
    out = bytearray(archive)
    encoded = name.encode()
    for sig, size_at, name_at in [(b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)]:
        at = out.find(sig)
        while at >= 0:
            if out[at + name_at: at + name_at + len(encoded)] == encoded:
                out[at + size_at: at + size_at + 4] = size.to_bytes(4, "little")
            at = out.find(sig, at + 4)
    return bytes(out)


def crafted(npy_dir, npz_dir):
    """Seeds for the header-first reading and the member names (deterministic: fixed zip
    timestamps), written without touching the other seeds."""
    good = npy_bytes(np.arange(6.0).reshape(2, 3))
    big = fmt.header_data_from_array_1_0(np.zeros(1))
    big["shape"] = (268435456,)
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, big)
    big_header = buf.getvalue()
    seeds_npy = {
        "big_declared": big_header + bytes(1024),
        "excess": npy_bytes(np.arange(2.0)) + bytes(8),
    }
    for name, data in seeds_npy.items():
        with open(os.path.join(npy_dir, name + ".npy"), "wb") as f:
            f.write(data)
    seeds_npz = {
        # "Xi" without the suffix is an array; notes.txt and the directory are not.
        "no_suffix": zip_bytes([("Xi", good), ("beta.npy", npy_bytes(np.float64(2))),
                                ("notes.txt", b"not an array"), ("sub/", b"")]),
        "ambiguous": zip_bytes([("Xi.npy", good), ("Xi", good)], deflated=False),
        "big_declared": zip_bytes([("Xi.npy", big_header + bytes(1 << 16))]),
        "big_lying": lie_about_size(zip_bytes([("Xi.npy", big_header + bytes(1 << 16))]),
                                    "Xi.npy", len(big_header) + 2 ** 31),
        "excess": zip_bytes([("a.npy", npy_bytes(np.arange(2.0)) + bytes(8))]),
        "short_lying": lie_about_size(zip_bytes([("a.npy", good)], deflated=False), "a.npy",
                                      len(good) + 8),
    }
    for name, data in seeds_npz.items():
        with open(os.path.join(npz_dir, name + ".npz"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

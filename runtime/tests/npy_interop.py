#!/usr/bin/python3
"""NumPy interoperability test of the runtime's .npy/.npz reader and writer.

NumPy writes files of every dtype, byte order, layout and format version the reader
accepts; npy_tool (npy_tool.c) reads them with damrt and prints every value, which must equal
NumPy's own astype conversion bit for bit. Then the reverse: npy_tool rewrites files with
damrt's writers, and NumPy must read back the same arrays (for .npy, the very bytes
numpy.save writes). Unsupported and damaged files must each give their exact message, and
hundreds of cut and bit-flipped archives must give a tensor or a message, never a crash or a
silently wrong value.

usage: /usr/bin/python3 npy_interop.py PATH/TO/npy_tool
"""
import io
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import numpy.lib.format as npformat

CODES = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (4, 0, 2)]
WANTS = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}


class Suite:
    def __init__(self, tool, work):
        self.tool = tool
        self.work = work
        self.checks = 0
        self.failures = 0

    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures += 1
            print("FAIL:", what)

    def path(self, name):
        return os.path.join(self.work, name)

    def run(self, *args):
        """Runs npy_tool; a nonzero exit (a crash, a sanitizer report) fails the suite."""
        proc = subprocess.run([self.tool, *args], capture_output=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr.decode(errors="replace"))
            raise SystemExit(f"npy_tool {args[0]} exited with {proc.returncode}")
        return proc.stdout.decode(errors="replace")

    def dump(self, want, paths):
        """Returns {path: [entries]}; an entry is ["keys", keys], ["tensor", key, shape,
        values] or ["error", status, message]."""
        results = {}
        entries = None
        for line in self.run("dump", want, *paths).splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "==":
                entries = results.setdefault(rest, [])
            elif kind == "keys":
                entries.append(["keys", rest.split()])
            elif kind == "tensor":
                parts = rest.split()
                entries.append(["tensor", parts[0], tuple(int(d) for d in parts[4:]), None])
            elif kind == "values":
                entries[-1][3] = np.array([float(v) for v in rest.split()], dtype=np.float64)
            elif kind == "error":
                status, _, message = rest.partition(": ")
                entries.append(["error", status, message])
        return results


def same_values(got, expected):
    """Bit-for-bit equality of `got` (float64 values printed exactly) with `expected`,
    except that any NaN equals any NaN."""
    expected = np.ravel(expected)
    got = np.ravel(got).astype(expected.dtype)
    if got.shape != expected.shape:
        return False
    nan = np.isnan(expected)
    bits = np.dtype(f"u{expected.itemsize}")
    return (np.array_equal(np.isnan(got), nan)
            and np.array_equal(got[~nan].view(bits), expected[~nan].view(bits)))


def sample(dtype, shape, rng):
    """Values of `dtype` filling `shape`: random ones, with each type's extremes (signed
    zero, infinities, NaN, the largest and the subnormal floats; the integer bounds)
    first."""
    n = int(np.prod(shape))
    native = dtype.newbyteorder("=")
    if dtype.kind == "f":
        info = np.finfo(native)
        specials = [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, -info.max, info.tiny,
                    info.smallest_subnormal, 1 / 3]
        values = (rng.standard_normal(n) * 100).astype(native)
    elif dtype.kind in "iu":
        info = np.iinfo(native)
        specials = [info.min, info.max, 0, 1]
        values = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=native)
    else:
        specials = []
        values = rng.integers(0, 2, size=n).astype(bool)
    for i, s in enumerate(specials[:n]):
        values[i] = native.type(s)
    return values.astype(dtype).reshape(shape)


def dtype_variants():
    for code in CODES:
        if np.dtype(code).itemsize == 1:
            yield np.dtype(code)
        else:
            yield np.dtype("<" + code)
            yield np.dtype(">" + code)


def dtype_name(dtype):
    """'<f8' -> 'le_f8', '|b1' -> 'b1': for file names and keys."""
    return dtype.str.replace("<", "le_").replace(">", "be_").replace("|", "")


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    npformat.write_array(buf, arr, version=version, allow_pickle=True)
    return buf.getvalue()


def with_header(header, data):
    """A version 1.0 .npy file of the given header text and data bytes."""
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_read_npy(s, rng):
    """Every dtype, byte order, shape and layout, as float32 and as float64."""
    files = {}
    for dtype in dtype_variants():
        for shape in SHAPES:
            for layout in "CF":
                arr = sample(dtype, shape, rng)
                if layout == "F":
                    arr = np.asfortranarray(arr)
                name = f"{dtype_name(dtype)}_{'x'.join(map(str, shape))}_{layout}.npy"
                np.save(s.path(name), arr)
                files[s.path(name)] = arr
    # Other format versions, and header dialects NumPy also accepts.
    arr = sample(np.dtype("<f8"), (3, 5), rng)
    for version in [(1, 0), (2, 0), (3, 0)]:
        path = write(s.path(f"version{version[0]}.npy"), npy_bytes(arr, version))
        files[path] = arr
    data = np.ascontiguousarray(arr).tobytes()
    dialects = {
        "py2_long.npy": b"{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 5L), }\n",
        "double_quotes.npy": b'{"descr": "<f8", "fortran_order": False, "shape": (3, 5)}',
        "reordered.npy": b"{'shape': (3, 5),'descr':'<f8' ,\n 'fortran_order': False}  \n",
    }
    for name, header in dialects.items():
        path = write(s.path(name), with_header(header, data))
        s.check(np.array_equal(np.load(path), arr, equal_nan=True),
                f"NumPy itself reads {name}")
        files[path] = arr

    for want, want_dtype in WANTS.items():
        results = s.dump(want, list(files))
        for path, arr in files.items():
            entries = results.get(path, [])
            ok = (len(entries) == 1 and entries[0][0] == "tensor"
                  and entries[0][2] == arr.shape
                  and same_values(entries[0][3], np.load(path).astype(want_dtype)))
            s.check(ok, f"{os.path.basename(path)} as {want}: {entries[:1]}")
    return files


def make_archives(s, rng):
    """Archives written by numpy.savez and savez_compressed, and by zipfile directly."""
    arrays = {}
    for dtype in dtype_variants():
        arrays[dtype_name(dtype)] = sample(dtype, (3, 5), rng)
    arrays["fortran"] = np.asfortranarray(sample(np.dtype("<f8"), (2, 3, 4), rng))
    arrays["scalar"] = np.float64(2.5)
    arrays["empty"] = np.zeros((0, 3), dtype="<f4")
    archives = {}
    for name, save in [("savez.npz", np.savez), ("compressed.npz", np.savez_compressed)]:
        save(s.path(name), **arrays)
        archives[s.path(name)] = arrays
    np.savez(s.path("empty.npz"))
    archives[s.path("empty.npz")] = {}
    # Written without zip64 extra fields, with a directory and a member that is no tensor.
    x = sample(np.dtype("<i4"), (4,), rng)
    with zipfile.ZipFile(s.path("plain.npz"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("sub/", b"")
        z.writestr("x.npy", npy_bytes(x))
        z.writestr("notes.txt", b"not a tensor")
    archives[s.path("plain.npz")] = {"x": x}
    return archives


def test_read_npz(s, archives):
    for want, want_dtype in WANTS.items():
        results = s.dump(want, list(archives))
        for path, arrays in archives.items():
            entries = results.get(path, [])
            name = os.path.basename(path)
            s.check(entries[:1] == [["keys", list(arrays)]], f"{name}: keys {entries[:1]}")
            tensors = {e[1]: e for e in entries if e[0] == "tensor"}
            s.check(len(tensors) == len(arrays) == len(entries) - 1,
                    f"{name} as {want}: every member read ({entries})")
            for key, arr in arrays.items():
                e = tensors.get(key)
                s.check(e is not None and e[2] == np.shape(arr)
                        and same_values(e[3], np.asarray(arr).astype(want_dtype)),
                        f"{name}:{key} as {want}")


def test_write(s, files, archives):
    """damrt's writers, read back by NumPy."""
    growth = hasattr(npformat, "GROWTH_AXIS_MAX_DIGITS")  # the header padding damrt copies
    picked = [p for p in files if any(part in p for part in
                                      ["_3x5_", "_2x1x3x2_", "__", "_0_", "version"])]
    for want, want_dtype in WANTS.items():
        pairs = []
        for i, path in enumerate(picked):
            pairs += [path, s.path(f"out_{want}_{i}.npy")]
        s.run("copy", want, "stored", *pairs)
        for src, out in zip(pairs[::2], pairs[1::2]):
            expected = np.load(src).astype(want_dtype)
            got = np.load(out)
            s.check(got.dtype == want_dtype and got.shape == expected.shape
                    and same_values(got, expected),
                    f"{os.path.basename(src)} copied as {want}")
            if growth:
                with open(out, "rb") as f:
                    s.check(f.read() == npy_bytes(np.array(expected, order="C")),
                            f"{os.path.basename(src)} copied as {want}: the bytes of np.save")

        for compression, method in [("stored", zipfile.ZIP_STORED),
                                    ("deflated", zipfile.ZIP_DEFLATED)]:
            outs = {src: s.path(f"out_{want}_{compression}_{os.path.basename(src)}")
                    for src in archives}
            s.run("copy", want, compression, *[p for pair in outs.items() for p in pair])
            for src, arrays in archives.items():
                out = outs[src]
                with np.load(out) as z:
                    s.check(z.files == list(arrays), f"{out}: keys {z.files}")
                    for key, arr in arrays.items():
                        got = z[key]
                        expected = np.asarray(arr).astype(want_dtype)
                        s.check(got.dtype == want_dtype and got.shape == expected.shape
                                and same_values(got, expected), f"{out}:{key}")
                with zipfile.ZipFile(out) as z:
                    s.check(z.testzip() is None, f"{out}: CRCs")
                    s.check(all(i.compress_type == method for i in z.infolist()),
                            f"{out}: members {compression}")


def expect_errors(s, cases):
    """cases: {path: expected message, or a list of messages for the members of a .npz}."""
    for want in WANTS:
        results = s.dump(want, list(cases))
        for path, expected in cases.items():
            got = [e[2] for e in results.get(path, []) if e[0] == "error"]
            expected = expected if isinstance(expected, list) else [expected]
            s.check(got == expected, f"{os.path.basename(path)} as {want}:\n"
                    f"   got  {got}\n   want {expected}")


def test_refusals(s):
    refused = {
        "object.npy": (np.array([1, "a", None], dtype=object),
                       "dtype '|O' (Python objects) is not supported; use float32 or float64"),
        "complex64.npy": (np.zeros(2, "<c8"),
                          "dtype '<c8' (complex) is not supported; use float32 or float64"),
        "complex128_be.npy": (np.zeros(2, ">c16"),
                              "dtype '>c16' (complex) is not supported; use float32 or "
                              "float64"),
        "bytes.npy": (np.array([b"abc"]),
                      "dtype '|S3' (byte string) is not supported; use float32 or float64"),
        "unicode.npy": (np.array(["abc"]),
                        "dtype '<U3' (unicode string) is not supported; use float32 or "
                        "float64"),
        "void.npy": (np.zeros(2, "V4"),
                     "dtype '|V4' (raw bytes) is not supported; use float32 or float64"),
        "datetime.npy": (np.array(["2024-01-01"], dtype="datetime64[ns]"),
                         "dtype '<M8[ns]' (datetime) is not supported; use float32 or "
                         "float64"),
        "timedelta.npy": (np.array([5], dtype="timedelta64[s]"),
                          "dtype '<m8[s]' (timedelta) is not supported; use float32 or "
                          "float64"),
        "longdouble.npy": (np.zeros(2, np.longdouble),
                           f"dtype '{np.dtype(np.longdouble).str}' (extended-precision "
                           "float) is not supported; use float32 or float64"),
        "structured.npy": (np.zeros(2, [("a", "<f8"), ("b", "<i4")]),
                           "structured dtypes (records of named fields) are not supported; "
                           "save each field as its own array"),
        "rank5.npy": (np.zeros((1, 2, 1, 2, 1)),
                      "arrays of rank 5 are not supported (at most 4 dimensions)"),
    }
    cases = {}
    for name, (arr, message) in refused.items():
        path = s.path(name)
        np.save(path, arr, allow_pickle=True)
        cases[path] = f"'{path}': {message}"
    # The message of the command-line contract, from inside an archive.
    z = s.path("weights.npz")
    np.savez(z, v=np.zeros(3), Xi=np.zeros((2, 3), "<c16"))
    cases[z] = [f"'{z}': tensor 'Xi': dtype '<c16' (complex) is not supported; use float32 or "
                "float64"]
    expect_errors(s, cases)


def test_damaged(s, rng):
    good = npy_bytes(sample(np.dtype("<f8"), (3, 5), rng))
    header = 10 + int.from_bytes(good[8:10], "little")
    cases = {}
    # Every cut of a .npy file, each with its exact message.
    for n in range(len(good)):
        path = write(s.path(f"cut_{n}.npy"), good[:n])
        if n == 0:
            message = "not a .npy file (it is empty)"
        elif n < 10:
            message = f"truncated .npy file ({n} bytes)"
        elif n < header:
            message = f"truncated header: {header - 10} bytes declared, only {n - 10} present"
        else:
            message = (f"truncated data: shape (3, 5) of '<f8' needs 120 bytes, only "
                       f"{n - header} present")
        cases[path] = f"'{path}': {message}"
    path = write(s.path("trailing.npy"), good + b"\n")
    cases[path] = (f"'{path}': unexpected bytes after the data (shape (3, 5) of '<f8' needs "
                   "120 bytes)")
    path = write(s.path("text.npy"), b"1.0 2.0 3.0\n")
    cases[path] = f"'{path}': not a .npy file (it does not start with \\x93NUMPY)"
    np.savez(s.path("really.npz"), a=np.zeros(2))
    path = write(s.path("npz_as.npy"), open(s.path("really.npz"), "rb").read())
    cases[path] = f"'{path}': not a .npy file (it is a zip archive: a .npz file?)"
    path = write(s.path("version4.npy"), good[:6] + b"\x04" + good[7:])
    cases[path] = (f"'{path}': unsupported .npy format version 4.0 (this reader knows 1.0, 2.0 "
                   "and 3.0)")
    path = write(s.path("expression.npy"), good.replace(b"(3, 5), ", b"(2**9,),"))
    cases[path] = (f"'{path}': malformed header: expected ',' or ')' in 'shape' at byte 52; the "
                   "header is {'descr': '<f8', 'fortran_order': False, 'shape': (2**9,),}")
    # Archives: not one, empty, and cut anywhere (which always loses the directory at the
    # end); a member holding a cut .npy file.
    not_zip = " not a zip archive, or a truncated one (no end-of-central-directory record); " \
              "a .npz file is a zip archive of .npy files"
    path = write(s.path("text.npz"), b"x,y\n1,2\n")
    cases[path] = f"'{path}':{not_zip}"
    path = write(s.path("empty_file.npz"), b"")
    cases[path] = f"'{path}': not a zip archive (it is empty)"
    np.savez_compressed(s.path("small.npz"), a=np.arange(6.0), b=np.ones(3, "<i2"))
    whole = open(s.path("small.npz"), "rb").read()
    for n in range(1, len(whole), 7):
        path = write(s.path(f"cut_{n}.npz"), whole[:n])
        cases[path] = f"'{path}':{not_zip}"
    path = s.path("cut_member.npz")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", good[:-8])
    cases[path] = [f"'{path}': tensor 'a': truncated data: shape (3, 5) of '<f8' needs 120 "
                   "bytes, only 112 present"]
    path = s.path("dup.npz")
    with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we want
        z.writestr("a.npy", good)
        z.writestr("a.npy", good)
    cases[path] = f"'{path}': corrupt archive: two members have the same name"
    path = s.path("missing.npz")
    cases[path] = f"'{path}': cannot open: No such file or directory"
    expect_errors(s, cases)


def test_bit_flips(s):
    """Every byte of a stored and of a deflated archive flipped in turn: each result is
    a message, or a tensor with exactly the original values (the CRC guards the data)."""
    originals = {"a": np.arange(6.0).reshape(2, 3), "b": np.array([1, -2, 3], "<i2")}
    for name, save in [("flip_stored", np.savez), ("flip_deflated", np.savez_compressed)]:
        save(s.path(name + ".npz"), **originals)
        whole = bytearray(open(s.path(name + ".npz"), "rb").read())
        paths = []
        for i in range(len(whole)):
            damaged = bytearray(whole)
            damaged[i] ^= 0xFF
            paths.append(write(s.path(f"{name}_{i}.npz"), bytes(damaged)))
        results = s.dump("f64", paths)
        silent = [p for p in paths for e in results.get(p, [])
                  if e[0] == "tensor" and e[1] in originals
                  and not same_values(e[3], originals[e[1]].astype(np.float64))]
        s.check(not silent, f"{name}: wrong values read without an error from {silent[:3]}")
        s.check(len(results) == len(paths), f"{name}: every damaged archive was reported")


def main():
    tool = sys.argv[1]
    np.seterr(over="ignore")  # float64 extremes become Inf in float32, as intended
    rng = np.random.default_rng(20240601)
    with tempfile.TemporaryDirectory(prefix="damrt_interop_") as work:
        s = Suite(tool, work)
        files = test_read_npy(s, rng)
        archives = make_archives(s, rng)
        test_read_npz(s, archives)
        test_write(s, files, archives)
        test_refusals(s)
        test_damaged(s, rng)
        test_bit_flips(s)
    print(f"runtime/numpy-interop: {s.checks} checks, {s.failures} failed "
          f"(NumPy {np.__version__})")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())

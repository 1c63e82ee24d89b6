"""End-to-end tests of the cache of compiled kernels (compiler/engine/kcache.h).

Usage: cache_test.py DAMC SOURCE_DIR [--case NAME].
Needs Debian's /usr/bin/python3 with python3-numpy.

Every case runs damc with the cache on (DAMC_NO_CACHE removed from the environment that
ctest sets for every test) in an empty cache directory of its own (DAMC_CACHE_DIR), and reads
`--verbose`'s line "kernels: C compiled, H from the cache ...; LLVM loaded|not loaded":

  hit          a second run with new weights and new states compiles nothing, does not load
               LLVM, and gives the results of a run without the cache
  miss         a changed model, size, precision, choice of products (--kernels) or key (an
               entry written by another damc version) compiles again
  corrupt      an entry truncated, emptied or garbled is ignored and rebuilt: no crash, the
               right results, and the next run hits
  concurrent   two damc processes filling an empty cache at once: both right, the cache valid
               after (a third run compiles nothing), no temporary file left
  no_cache     --no-cache and DAMC_NO_CACHE=1 compile and write nothing
  unwritable   a cache directory that cannot be created, or no C compiler to link entries:
               compiled with the JIT, right results, --verbose saying why
  python_api   through libdamc.so (the Python module over the C API): a second process's
               Model compiles nothing (damc_model_compile_count is 0) and loads no LLVM,
               with the same results
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np

DAMC, SRC = sys.argv[1], sys.argv[2]
MODEL_B = os.path.join(SRC, "examples", "model_b.dam")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def env_for(cache):
    env = {k: v for k, v in os.environ.items() if k != "DAMC_NO_CACHE"}
    env["DAMC_CACHE_DIR"] = cache
    return env


def damc(cache, *args, extra_env=None):
    env = env_for(cache)
    env.update(extra_env or {})
    p = subprocess.run([DAMC, *args, "--verbose"], capture_output=True, text=True, env=env,
                       timeout=300)
    m = re.search(r"kernels: (\d+) compiled, (\d+) from the cache(, (\d+) invalid entries replaced)?"
                  r".*; LLVM (loaded|not loaded)", p.stderr)
    stats = None
    if m:
        stats = {"compiled": int(m.group(1)), "hits": int(m.group(2)),
                 "rejected": int(m.group(4) or 0), "llvm": m.group(5) == "loaded"}
    return p.returncode, stats, p.stderr


def tensors(d, k=20, seed=0):
    rng = np.random.default_rng(seed)
    xi = np.sign(rng.standard_normal((k, 784))).astype(np.float32)
    v = xi[0].copy()
    v[::4] *= -1
    w, s = os.path.join(d, "w%d_%d.npz" % (k, seed)), os.path.join(d, "v%d_%d.npy" % (k, seed))
    np.savez(w, Xi=xi)
    np.save(s, v)
    return w, s


def run(d, cache, w, s, out, *more, extra_env=None):
    return damc(cache, "run", MODEL_B, "--weights", w, "--init", "v=" + s, "--method", "iterate",
                "--max-steps", "5", "--out", os.path.join(d, out), *more, extra_env=extra_env)


def same(d, a, b):
    x, y = np.load(os.path.join(d, a)), np.load(os.path.join(d, b))
    return x.files == y.files and all(np.allclose(x[k], y[k], rtol=1e-5, atol=1e-6) for k in x.files)


def entries(cache):
    return sorted(f for f in os.listdir(cache) if f.startswith("kernels-")) if os.path.isdir(cache) else []


def reference(d, w, s, name):
    """The same run without the cache (the JIT): what every cached run must give."""
    rc, st, err = run(d, os.path.join(d, "unused"), w, s, name, "--no-cache")
    check(rc == 0 and st and st["compiled"] >= 1, "the reference run works: " + err)
    check(not os.path.exists(os.path.join(d, "unused")), "--no-cache creates no cache directory")


def case_hit(d):
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    rc, st, err = run(d, cache, w, s, "a.npz")
    check(rc == 0 and st == {"compiled": 2, "hits": 0, "rejected": 0, "llvm": True},
          "first run compiles the step and eval kernels: %s %s" % (st, err))
    check(len(entries(cache)) == 2, "two entries written: %s" % entries(cache))
    w2, s2 = tensors(d, seed=1)  # new weights and states, the same sizes
    rc, st, err = run(d, cache, w2, s2, "b.npz")
    check(rc == 0 and st == {"compiled": 0, "hits": 2, "rejected": 0, "llvm": False},
          "second run compiles nothing and loads no LLVM: %s %s" % (st, err))
    reference(d, w2, s2, "b_ref.npz")
    check(same(d, "b.npz", "b_ref.npz"), "cached kernels give the JIT's results")
    reference(d, w, s, "a_ref.npz")
    check(same(d, "a.npz", "a_ref.npz"), "kernels compiled into the cache give the JIT's results")
    # A param is read at run time: no new kernels.
    rc, st, err = run(d, cache, w2, s2, "c.npz", "--set", "beta=2")
    check(rc == 0 and st["compiled"] == 0 and st["hits"] == 2, "a new param value is a hit: %s" % st)
    # eval and bench use the same cache.
    rc, st, err = damc(cache, "eval", MODEL_B, "--weights", w, "--state", "v=" + s)
    check(rc == 0 and st["compiled"] == 0 and st["hits"] >= 1, "eval hits: %s %s" % (st, err))
    p = subprocess.run([DAMC, "bench", MODEL_B, "--weights", w, "--repeat", "2"],
                       capture_output=True, text=True, env=env_for(cache))
    check(p.returncode == 0 and "0 modules compiled, 2 from the cache; LLVM not loaded" in p.stdout,
          "bench reports the hits: " + p.stdout + p.stderr)


def case_miss(d):
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    check(run(d, cache, w, s, "a.npz")[1]["compiled"] == 2, "first run compiles")
    # Another size (K).
    w3, s3 = tensors(d, k=30)
    rc, st, err = run(d, cache, w3, s3, "k.npz")
    check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0, "a new K compiles: %s %s" % (st, err))
    # Another precision.
    rc, st, err = run(d, cache, w, s, "p.npz", "--precision", "f64")
    check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0, "f64 compiles: %s %s" % (st, err))
    # Another model text (a comment is enough: the key holds the text).
    m2 = os.path.join(d, "model_b2.dam")
    with open(MODEL_B) as f, open(m2, "w") as g:
        g.write(f.read() + "\n// changed\n")
    rc, st, err = damc(cache, "run", m2, "--weights", w, "--init", "v=" + s, "--max-steps", "2")
    check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0, "a changed model compiles: %s %s" % (st, err))
    # Another choice of products (the plans differ): blas and fused are entries of their own.
    for choice in ("blas", "fused"):
        rc, st, err = run(d, cache, w, s, choice + ".npz", "--kernels", choice)
        check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0,
              "--kernels %s compiles: %s %s" % (choice, st, err))
        rc, st, err = run(d, cache, w, s, choice + ".npz", "--kernels", choice)
        check(rc == 0 and st["compiled"] == 0 and st["hits"] == 2,
              "--kernels %s then hits: %s %s" % (choice, st, err))
    check(same(d, "blas.npz", "fused.npz"), "blas and fused kernels from the cache agree")
    n = len(entries(cache))
    check(n == 12, "one entry per module and key: %d" % n)
    # An entry written by another damc version, in the file this key names: a miss. The key
    # is stored in the entry, after the shared object; rewrite its version and checksum.
    for name in entries(cache):
        path = os.path.join(cache, name)
        data = open(path, "rb").read()
        magic, so_len, key_len, _ = struct.unpack("<8sQQQ", data[-32:])
        check(magic == b"DAMCKC01", "entry trailer")
        body = bytearray(data[:-32])
        key = bytes(body[so_len:])
        check(key.startswith(b"damc "), "the key starts with damc's version")
        old = key.split(b" ")[1]
        new = b"9" * len(old)
        body[so_len:so_len + key_len] = key.replace(old, new, 1)
        h = 0xcbf29ce484222325
        for byte in body:
            h = ((h ^ byte) * 0x100000001b3) & 0xffffffffffffffff
        open(path, "wb").write(bytes(body) + struct.pack("<8sQQQ", magic, so_len, key_len, h))
    rc, st, err = run(d, cache, w, s, "v.npz")
    check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0 and st["rejected"] == 2,
          "entries of another version are rebuilt: %s %s" % (st, err))
    rc, st, err = run(d, cache, w, s, "v2.npz")
    check(rc == 0 and st["compiled"] == 0 and st["hits"] == 2, "and then hit: %s" % st)


def case_corrupt(d):
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    reference(d, w, s, "ref.npz")
    check(run(d, cache, w, s, "a.npz")[0] == 0, "first run")
    damages = {
        "truncated to half": lambda b: b[:len(b) // 2],
        "truncated by one byte": lambda b: b[:-1],
        "empty": lambda b: b"",
        "a byte of code flipped": lambda b: b[:200] + bytes([b[200] ^ 0x40]) + b[201:],
        "the trailer garbled": lambda b: b[:-20] + b"\xff" * 20,
        "not an entry at all": lambda b: b"garbage\n" * 100,
    }
    for what, damage in damages.items():
        for name in entries(cache):
            path = os.path.join(cache, name)
            data = open(path, "rb").read()
            open(path, "wb").write(damage(data))
        rc, st, err = run(d, cache, w, s, "c.npz")
        check(rc == 0 and st and st["compiled"] == 2 and st["rejected"] == 2,
              "%s: ignored and rebuilt: %s %s" % (what, st, err))
        check(rc == 0 and same(d, "c.npz", "ref.npz"), "%s: right results" % what)
        rc, st, err = run(d, cache, w, s, "c.npz")
        check(rc == 0 and st and st["hits"] == 2 and st["compiled"] == 0,
              "%s: the rebuilt entries hit: %s %s" % (what, st, err))


def case_concurrent(d):
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    reference(d, w, s, "ref.npz")
    for round_ in range(3):
        if os.path.isdir(cache):
            for f in os.listdir(cache):
                os.unlink(os.path.join(cache, f))
        procs = [subprocess.Popen([DAMC, "run", MODEL_B, "--weights", w, "--init", "v=" + s,
                                   "--method", "iterate", "--max-steps", "5", "--out",
                                   os.path.join(d, "p%d.npz" % i)],
                                  env=env_for(cache), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for i in range(2)]
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=300)
            check(p.returncode == 0, "round %d: process %d ran: %s" % (round_, i, err.decode()))
            check(same(d, "p%d.npz" % i, "ref.npz"), "round %d: process %d right" % (round_, i))
        left = [f for f in os.listdir(cache) if not f.startswith("kernels-")]
        check(not left, "no temporary files left: %s" % left)
        check(len(entries(cache)) == 2, "two entries: %s" % entries(cache))
        rc, st, err = run(d, cache, w, s, "after.npz")
        check(rc == 0 and st["compiled"] == 0 and st["hits"] == 2 and st["rejected"] == 0,
              "round %d: the cache is valid after: %s %s" % (round_, st, err))


def case_no_cache(d):
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    rc, st, err = run(d, cache, w, s, "a.npz", "--no-cache")
    check(rc == 0 and st["compiled"] == 2 and "(cache off)" in err, "--no-cache compiles: " + err)
    check(not os.path.exists(cache), "--no-cache writes nothing")
    rc, st, err = run(d, cache, w, s, "a.npz", extra_env={"DAMC_NO_CACHE": "1"})
    check(rc == 0 and st["compiled"] == 2, "DAMC_NO_CACHE=1 compiles: " + err)
    check(not os.path.exists(cache), "DAMC_NO_CACHE writes nothing")
    # A warm cache is not read either.
    run(d, cache, w, s, "b.npz")
    rc, st, err = run(d, cache, w, s, "c.npz", "--no-cache")
    check(rc == 0 and st["compiled"] == 2 and st["hits"] == 0, "--no-cache ignores a warm cache: %s" % st)


def case_unwritable(d):
    blocker = os.path.join(d, "file")
    open(blocker, "w").write("not a directory\n")
    w, s = tensors(d)
    reference(d, w, s, "ref.npz")
    rc, st, err = run(d, os.path.join(blocker, "cache"), w, s, "a.npz")
    check(rc == 0 and st["compiled"] == 2 and same(d, "a.npz", "ref.npz"),
          "an impossible cache directory: compiled with the JIT, right results: %s %s" % (st, err))
    check("kernels compiled without the cache: cannot create" in err, "--verbose says why: " + err)
    # No working C compiler to link entries: the JIT, right results, the linker's message.
    fake = os.path.join(d, "bin")
    os.mkdir(fake)
    with open(os.path.join(fake, "cc"), "w") as f:
        f.write("#!/bin/sh\necho 'cc: no linker here' >&2\nexit 1\n")
    os.chmod(os.path.join(fake, "cc"), 0o755)
    cache = os.path.join(d, "cache")
    rc, st, err = run(d, cache, w, s, "b.npz",
                      extra_env={"PATH": fake + os.pathsep + os.environ.get("PATH", "")})
    check(rc == 0 and st["compiled"] == 2 and same(d, "b.npz", "ref.npz"),
          "no linker: compiled with the JIT, right results: %s %s" % (st, err))
    check("could not link the kernels: cc: no linker here" in err, "--verbose says why: " + err)
    check(entries(cache) == [] and os.listdir(cache) == [], "no linker: nothing left in the cache")


PY_PROGRAM = r"""
import json, sys
import numpy as np
import damc
m = damc.Model.from_file(sys.argv[1])
d = np.load(sys.argv[2])
m.bind(Xi=d["Xi"])
r = m.eval({"v": np.load(sys.argv[3])})
llvm = any("libdamc_llvm" in line for line in open("/proc/self/maps"))
print(json.dumps({"E": float(np.asarray(r["E"]).ravel()[0]), "compiles": m.compile_count,
                  "llvm": llvm}))
"""


def case_python_api(d):
    build = os.path.dirname(os.path.abspath(DAMC))
    cache = os.path.join(d, "cache")
    w, s = tensors(d)
    prog = os.path.join(d, "prog.py")
    open(prog, "w").write(PY_PROGRAM)
    env = env_for(cache)
    env["PYTHONPATH"] = os.path.join(build, "python")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    outs = []
    for i in range(2):
        p = subprocess.run(["/usr/bin/python3", prog, MODEL_B, w, s], capture_output=True,
                           text=True, env=env, timeout=300)
        check(p.returncode == 0, "python run %d: %s" % (i, p.stderr))
        outs.append(json.loads(p.stdout) if p.returncode == 0 else None)
    if None in outs:
        return
    check(outs[0]["compiles"] >= 1 and outs[0]["llvm"], "first process compiles: %s" % outs[0])
    check(outs[1]["compiles"] == 0 and not outs[1]["llvm"],
          "second process compiles nothing and loads no LLVM: %s" % outs[1])
    check(outs[0]["E"] == outs[1]["E"], "the same energy: %s" % outs)
    check(len(entries(cache)) >= 1, "an entry written through the C API")


CASES = {"hit": case_hit, "miss": case_miss, "corrupt": case_corrupt,
         "concurrent": case_concurrent, "no_cache": case_no_cache, "unwritable": case_unwritable,
         "python_api": case_python_api}


def main(argv):
    names = [argv[argv.index("--case") + 1]] if "--case" in argv else list(CASES)
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            print("case", name)
            CASES[name](d)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

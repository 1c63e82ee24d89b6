#!/usr/bin/python3
"""cmake --install into a temporary prefix, then, with nothing from the build tree:
  1. libdamc.so has a versioned soname and exports exactly the functions of damc.h;
  2. examples/c_api/retrieve.c builds with `cc $(pkg-config --cflags --libs damc)` and runs;
  3. a tiny CMake project with find_package(damc) and damc::damc builds it and runs it;
  4. the installed Python module imports (the installed libdamc.so) and evaluates a model;
  5. the installed damc executable runs.

usage: install_test.py BUILD_DIR SOURCE_DIR"""
import glob
import os
import re
import subprocess
import sys
import tempfile

BUILD, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode:
        print("$", " ".join(args), "\n", p.stdout, p.stderr)
    return p


def header_functions():
    text = open(os.path.join(SRC, "include", "damc.h")).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # the sketch lives in a comment
    return set(re.findall(r"^[A-Za-z][\w\s\*]*?\b(damc_\w+)\s*\(", text, flags=re.M))


with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "prefix")
    p = run(["cmake", "--install", BUILD, "--prefix", prefix])
    check(p.returncode == 0, "cmake --install failed")
    libs = glob.glob(os.path.join(prefix, "**", "libdamc.so"), recursive=True)
    check(len(libs) == 1, f"libdamc.so installed once: {libs}")
    libdir = os.path.dirname(libs[0])
    # 1. soname and exports
    d = run(["readelf", "-d", libs[0]]).stdout
    soname = re.search(r"SONAME.*\[(.*)\]", d)
    check(soname and re.fullmatch(r"libdamc\.so\.\d+\.\d+", soname.group(1)),
          f"versioned soname: {soname and soname.group(1)}")
    syms = run(["nm", "-D", "--defined-only", libs[0]]).stdout.split("\n")
    exported = {line.split()[2].split("@")[0] for line in syms if len(line.split()) == 3
                and line.split()[1] in "TDBRW"}
    want = header_functions()
    check(exported == want, f"exports: extra {sorted(exported - want)}, missing {sorted(want - exported)}")
    print(f"libdamc.so: soname {soname and soname.group(1)}, {len(exported)} exported functions")
    # 2. pkg-config
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "damc"], env=env)
    check(flags.returncode == 0 and prefix in flags.stdout, f"pkg-config: {flags.stdout}{flags.stderr}")
    exe = os.path.join(tmp, "retrieve_pc")
    example = os.path.join(SRC, "examples", "c_api", "retrieve.c")
    model = os.path.join(SRC, "examples", "model_b.dam")
    # The example's directory holds no header: damc.h comes from the prefix only.
    c = run(["sh", "-c", f'cc -o {exe} {example} $(pkg-config --cflags --libs damc) -Wl,-rpath,{libdir}'],
            env=env)
    check(c.returncode == 0, "cc with pkg-config failed")
    if c.returncode == 0:
        r = run([exe, model])
        check(r.returncode == 0 and "overlap" in r.stdout, f"retrieve (pkg-config): {r.stdout}")
        print("pkg-config:", r.stdout.strip())
    # 3. find_package(damc)
    proj = os.path.join(tmp, "proj")
    os.makedirs(proj)
    with open(os.path.join(proj, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.25)\nproject(use_damc C)\n"
                "find_package(damc 0.2 REQUIRED)\n"
                f"add_executable(retrieve {example})\n"
                "target_link_libraries(retrieve PRIVATE damc::damc)\n")
    c = run(["cmake", "-S", proj, "-B", os.path.join(proj, "build"), f"-DCMAKE_PREFIX_PATH={prefix}"])
    check(c.returncode == 0, "configure with find_package(damc) failed")
    c = run(["cmake", "--build", os.path.join(proj, "build")])
    check(c.returncode == 0, "build with damc::damc failed")
    if c.returncode == 0:
        r = run([os.path.join(proj, "build", "retrieve"), model])
        check(r.returncode == 0 and "overlap" in r.stdout, f"retrieve (find_package): {r.stdout}")
        print("find_package:", r.stdout.strip())
    # 4. the installed Python module, loading the installed library
    pkgs = glob.glob(os.path.join(prefix, "**", "damc", "__init__.py"), recursive=True)
    check(len(pkgs) == 1, f"the Python module installed once: {pkgs}")
    if pkgs:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAMC_LIBRARY")}
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(pkgs[0]))
        code = ("import damc, numpy as np; from damc import _capi; "
                f"m = damc.Model.from_file({model!r}); m.bind(Xi=np.ones((3, 784)), beta=0.5); "
                "e = m.eval(state={'v': np.ones(784)}, precision='f64')['E']; "
                "print(_capi.lib._name, float(e))")
        r = run(["/usr/bin/python3", "-c", code], env=env, cwd=tmp)
        check(r.returncode == 0 and r.stdout.startswith(prefix), f"installed python: {r.stdout}{r.stderr}")
        print("python:", r.stdout.strip())
    # 5. the executable
    r = run([os.path.join(prefix, "bin", "damc"), "parse", model])
    check(r.returncode == 0, "installed damc parse failed")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)

"""`make bench`: damc against NumPy, PyTorch (CPU) and hand-written C + OpenBLAS, side by side
in one run, the contenders alternating over rounds; writes the generated block of
docs/performance.md and the scaling plot docs/performance_scaling.png.

Usage: /usr/bin/python3 bench/bench.py [BUILD] [--smoke] [--rounds R] [--report FILE]
                                       [--no-scaling] [--no-process] [--sizes I,J]

Computations (float32, Xi [K, N], states v [B, N], beta = 1; bench/bench_driver.c says how
damc and the C baseline compute them):
  stepB   the Model B step, memory layer eliminated: dv = Xi' softmax(beta Xi v) - v
  eulerA  the Model A (n = 3) Euler step: v + dt (Xi' relu(Xi tanh v)^2 - v), dt = 0.1
  energy  E = |v|^2/2 - logsumexp(beta Xi v)/beta  (damc: its energy kernel, the product
          fused with its log-sum-exp)
Every contender's result is compared with a float64 NumPy reference before any timing:
max |x - x64| <= TOL * max |x64| per computation (TOL below); a failure stops the bench.
Each round runs every contender once per size (damc and C+BLAS in one driver process, then
NumPy, then PyTorch), each timed as the median of calls filling about BUDGET seconds; the
figure reported is the best median over the rounds. The roofline bound of a size is
max(flop / sgemm peak, bytes of one read of Xi / read bandwidth of the level that holds Xi),
both measured at the start of the run by build/tests/bench_peak.
--smoke: the smallest size, one short round, no scaling and no process timings; checks
agreement and writes the report (to --report, by default BUILD/bench_smoke.md), for ctest.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ARGS = sys.argv[1:]
BUILD = os.path.abspath(ARGS[0] if ARGS and not ARGS[0].startswith("--") else os.path.join(ROOT, "build"))
SMOKE = "--smoke" in ARGS


def opt(name, default):
    return ARGS[ARGS.index(name) + 1] if name in ARGS else default


ROUNDS = int(opt("--rounds", 1 if SMOKE else 3))
BUDGET = 0.02 if SMOKE else 0.12
REPORT = opt("--report", os.path.join(BUILD, "bench_smoke.md") if SMOKE else
             os.path.join(ROOT, "docs", "performance.md"))
PLOT = os.path.join(ROOT, "docs", "performance_scaling.png")
DAMC = os.path.join(BUILD, "damc")
DRIVER = os.path.join(BUILD, "tests", "bench_driver")
PEAK = os.path.join(BUILD, "tests", "bench_peak")
SIZES = [(64, 256, 1)] if SMOKE else [(64, 256, 1), (784, 1000, 1), (784, 1000, 16),
                                     (784, 10000, 64), (4096, 4096, 16), (1024, 65536, 8)]
if "--sizes" in ARGS:  # indexes into SIZES, e.g. --sizes 0,2 (a partial run)
    SIZES = [SIZES[int(i)] for i in opt("--sizes", "").split(",")]
KERNELS = ["stepB", "eulerA", "energy"]
BETA, DT = np.float32(1.0), np.float32(0.1)
TOL = 1e-4
# The targets: NumPy / damc for the Model B step.
TARGET_B = {(1024, 65536, 8): 2.5, (784, 1000, 1): 2.0, (784, 1000, 16): 1.4,
            (4096, 4096, 16): 1.4, (64, 256, 1): 5.0}

try:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    TORCH = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
except ImportError:
    torch = None
    TORCH = "PyTorch: skipped (python3-torch not installed)"


# ---- the NumPy and PyTorch contenders ----

def np_step_b(xi, v):
    s = v @ xi.T
    s *= BETA
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s @ xi - v


def np_euler_a(xi, v):
    s = np.tanh(v) @ xi.T
    np.maximum(s, 0, out=s)
    s *= s
    return v + DT * (s @ xi - v)


def np_energy(xi, v):
    s = v @ xi.T
    s *= BETA
    m = s.max(axis=1)
    lse = m + np.log(np.exp(s - m[:, None]).sum(axis=1))
    return 0.5 * (v * v).sum(axis=1) - lse / BETA


def torch_fns():
    def step_b(xi, v):
        return torch.softmax(BETA * (v @ xi.T), dim=1) @ xi - v

    def euler_a(xi, v):
        return v + DT * (torch.relu(torch.tanh(v) @ xi.T).square() @ xi - v)

    def energy(xi, v):
        return 0.5 * (v * v).sum(dim=1) - torch.logsumexp(BETA * (v @ xi.T), dim=1) / BETA

    return [step_b, euler_a, energy]


def reference64(xi, v):
    xi, v = xi.astype(np.float64), v.astype(np.float64)
    s = v @ xi.T
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    a = np.maximum(np.tanh(v) @ xi.T, 0) ** 2
    lse = s.max(axis=1) + np.log(np.exp(s - s.max(axis=1, keepdims=True)).sum(axis=1))
    return [p @ xi - v, v + 0.1 * (a @ xi - v), 0.5 * (v * v).sum(axis=1) - lse]


def median_time(fn, budget=None):
    budget = BUDGET if budget is None else budget
    fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    reps = int(min(2000, max(5, budget / max(one, 1e-9))))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def make_data(tmp, n, k, b, seed=0):
    rng = np.random.default_rng(seed)
    xi = (rng.standard_normal((k, n), dtype=np.float32) / np.float32(np.sqrt(n)))
    v = rng.standard_normal((b, n), dtype=np.float32)
    xi.tofile(os.path.join(tmp, "xi.f32"))
    v.tofile(os.path.join(tmp, "v.f32"))
    return xi, v


def run_driver(tmp, n, k, b, extra=()):
    out = subprocess.run([DRIVER, tmp, str(n), str(k), str(b), "--budget", str(BUDGET), *extra],
                         capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        _, kern, who, sec = line.split()
        times[(kern, who)] = float(sec)
    return times


def check_agreement(tmp, xi, v, n, k, b):
    """Runs every contender once and compares with the float64 reference; returns the worst
    relative error per contender (raises on a disagreement)."""
    subprocess.run([DRIVER, tmp, str(n), str(k), str(b), "--write", "--budget", "0"],
                   check=True, capture_output=True)
    ref = reference64(xi, v)
    results = {"damc": [], "C+BLAS": [], "NumPy": []}
    for i, kern in enumerate(KERNELS):
        count = b if kern == "energy" else b * n
        results["damc"].append(np.fromfile(os.path.join(tmp, f"out_{kern}_damc.f32"), np.float32, count))
        results["C+BLAS"].append(np.fromfile(os.path.join(tmp, f"out_{kern}_cblas.f32"), np.float32, count))
    results["NumPy"] = [np_step_b(xi, v), np_euler_a(xi, v), np_energy(xi, v)]
    if torch is not None:
        tx, tv = torch.from_numpy(xi), torch.from_numpy(v)
        results["PyTorch"] = [f(tx, tv).numpy() for f in torch_fns()]
    worst = {}
    for who, outs in results.items():
        for kern, x, r in zip(KERNELS, outs, ref):
            err = float(np.max(np.abs(x.reshape(r.shape).astype(np.float64) - r)) / np.max(np.abs(r)))
            if not err <= TOL:
                raise SystemExit(f"bench: {who} {kern} at (N, K, B) = ({n}, {k}, {b}) disagrees with "
                                 f"the float64 reference: relative error {err:.2e} > {TOL:g}")
            worst[who] = max(worst.get(who, 0.0), err)
    return worst


def bench_size(n, k, b, tmp, only_step=False):
    xi, v = make_data(tmp, n, k, b)
    worst = check_agreement(tmp, xi, v, n, k, b) if not only_step else None
    kerns = KERNELS[:1] if only_step else KERNELS
    npf = [np_step_b, np_euler_a, np_energy]
    tfs = torch_fns() if torch is not None else None
    if tfs:
        tx, tv = torch.from_numpy(xi), torch.from_numpy(v)
    best = {}

    def keep(key, t):
        best[key] = min(best.get(key, float("inf")), t)

    for _ in range(ROUNDS):
        for (kern, who), t in run_driver(tmp, n, k, b, ["--only-step"] if only_step else []).items():
            keep((kern, "damc" if who == "damc" else "C+BLAS"), t)
        for i, kern in enumerate(kerns):
            keep((kern, "NumPy"), median_time(lambda: npf[i](xi, v)))
        if tfs:
            with torch.no_grad():
                for i, kern in enumerate(kerns):
                    keep((kern, "PyTorch"), median_time(lambda: tfs[i](tx, tv)))
    return best, worst


# ---- machine ceilings ----

def ceilings():
    out = subprocess.run([PEAK] + (["--quick"] if SMOKE else []), capture_output=True, text=True,
                         check=True).stdout
    return dict((l.split()[0], l.split()[1]) for l in out.splitlines())


def roofline(c, n, k, b, kern):
    flop = (2 if kern == "energy" else 4) * b * k * n
    bytes_ = 4.0 * k * n
    level = "L2" if bytes_ <= (512 << 10) else "L3" if bytes_ <= (16 << 20) else "DRAM"
    bw = max(float(c[f"read_{level}_t1_GBs"]), float(c[f"read_{level}_t2_GBs"])) * 1e9
    peak = max(float(c["sgemm_t1_gflops"]), float(c["sgemm_t2_gflops"])) * 1e9
    tc, tm = flop / peak, bytes_ / bw
    return max(tc, tm), ("compute" if tc >= tm else f"BW-{level}")


# ---- whole processes, compile time, loading ----

MODEL_B_FILE = """dim N;\ndim K;\nparam beta = 1.0;
layer v[N] { L = lagr_identity(v); tau = 1; }
layer h[K] { L = lagr_softmax(h, beta); tau = 0; }
synapse Xi[K, N] : h <-> v;\n"""

NUMPY_PROCESS = """import sys, numpy as np
xi = np.load(sys.argv[1] + '/xi.npy'); v = np.load(sys.argv[1] + '/v.npy')
s = v @ xi.T; s -= s.max(axis=1, keepdims=True); np.exp(s, out=s); s /= s.sum(axis=1, keepdims=True)
np.save(sys.argv[1] + '/out_np.npy', s @ xi)
"""
TORCH_PROCESS = """import sys, numpy as np, torch
xi = torch.from_numpy(np.load(sys.argv[1] + '/xi.npy')); v = torch.from_numpy(np.load(sys.argv[1] + '/v.npy'))
np.save(sys.argv[1] + '/out_torch.npy', (torch.softmax(v @ xi.T, dim=1) @ xi).numpy())
"""


def wall(cmd, runs=5):
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def processes(tmp):
    n, k, b = 64, 256, 1
    xi, v = make_data(tmp, n, k, b)
    np.save(os.path.join(tmp, "xi.npy"), xi)
    np.save(os.path.join(tmp, "v.npy"), v)
    model = os.path.join(tmp, "model_b.dam")
    open(model, "w").write(MODEL_B_FILE)
    damc = [DAMC, "run", model, "--weight", "Xi=" + os.path.join(tmp, "xi.npy"), "--init",
            "v=" + os.path.join(tmp, "v.npy"), "--method", "iterate", "--max-steps", "1",
            "--tol", "0", "--out", os.path.join(tmp, "out_damc.npz")]
    cmds = {"damc": damc, "C+BLAS": [DRIVER, "--process", tmp, str(n), str(k), str(b)],
            "NumPy": [sys.executable, "-c", NUMPY_PROCESS, tmp]}
    if torch is not None:
        cmds["PyTorch"] = [sys.executable, "-c", TORCH_PROCESS, tmp]
    best = {}
    second = float("inf")
    for _ in range(ROUNDS):
        for who, cmd in cmds.items():
            best[who] = min(best.get(who, float("inf")), wall(cmd))
        subprocess.run(damc, check=True, capture_output=True)
        second = min(second, wall(damc, 1))  # the second of two runs in a row
    # agreement of the processes' results (one Model B update, u)
    ref = reference64(xi, v)[0] + v
    outs = {"damc": np.load(os.path.join(tmp, "out_damc.npz"))["x_v"],
            "C+BLAS": np.fromfile(os.path.join(tmp, "out_proc_c.f32"), np.float32) + v.ravel(),
            "NumPy": np.load(os.path.join(tmp, "out_np.npy"))}
    if torch is not None:
        outs["PyTorch"] = np.load(os.path.join(tmp, "out_torch.npy"))
    for who, x in outs.items():
        err = float(np.max(np.abs(x.reshape(ref.shape) - ref)) / np.max(np.abs(ref)))
        if not err <= TOL:
            raise SystemExit(f"bench: the {who} process's step disagrees: {err:.2e}")
    return best, second


def damc_bench_first_step(model, weight_args, runs, median=False):
    """ms from damc's start of work to the first step (damc bench), best (or median) of runs."""
    times = []
    for _ in range(runs):
        out = subprocess.run([DAMC, "bench", model, *weight_args, "--repeat", "3"],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("to the first step"):
                times.append(float(line.split()[4]))
    return statistics.median(times) if median else min(times)


def compile_and_load(tmp):
    model = os.path.join(tmp, "model_b.dam")
    open(model, "w").write(MODEL_B_FILE)
    rng = np.random.default_rng(2)
    small = os.path.join(tmp, "xi_small.npy")
    np.save(small, (rng.standard_normal((1000, 784), dtype=np.float32) / 28))
    # Cold: compiled with the JIT, no cache (bench/cold_compile.py breaks it down); then
    # from the cache (an entry stored by the first of those runs).
    cold = damc_bench_first_step(model, ["--weight", "Xi=" + small, "--no-cache"],
                                 max(10, 3 * ROUNDS), median=True)
    damc_bench_first_step(model, ["--weight", "Xi=" + small], 1)
    cached = damc_bench_first_step(model, ["--weight", "Xi=" + small], 3 * ROUNDS)
    big = os.path.join(tmp, "xi_big.npy")
    np.save(big, rng.standard_normal((65536, 1024), dtype=np.float32) / 32)  # 268 MB
    size_mb = os.path.getsize(big) / 1e6
    t_damc, t_np = float("inf"), float("inf")
    for _ in range(ROUNDS):
        t_damc = min(t_damc, damc_bench_first_step(model, ["--weight", "Xi=" + big], 1))
        t0 = time.perf_counter()
        x = np.load(big)
        t_np = min(t_np, 1e3 * (time.perf_counter() - t0))
        del x
    os.remove(big)
    return cold, cached, size_mb, t_damc, t_np


# ---- scaling ----

def scaling(tmp):
    series = {}
    for n, k, b in [(64, 1000, 1), (64, 10000, 1), (64, 100000, 1), (64, 1000000, 1)] + \
                   [(784, 10000, bb) for bb in (1, 4, 16, 64, 256)]:
        best, _ = bench_size(n, k, b, tmp, only_step=True)
        series[(n, k, b)] = {who: t for (kern, who), t in best.items()}
        print(f"  scaling ({n}, {k}, {b}): " + ", ".join(f"{w} {fmt(t)}" for w, t in series[(n, k, b)].items()),
              flush=True)
    return series


def plot(series):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sel, xl, title in [
            (axes[0], lambda s: s[0] == 64, "K (memories)", "Model B step, N = 64, B = 1"),
            (axes[1], lambda s: s[0] == 784, "B (batch)", "Model B step, N = 784, K = 10000")]:
        keys = sorted(s for s in series if sel(s))
        xs = [s[1] if s[0] == 64 else s[2] for s in keys]
        for who in ["damc", "C+BLAS", "NumPy", "PyTorch"]:
            if all(who in series[s] for s in keys):
                ax.plot(xs, [1e3 * series[s][who] for s in keys], "o-", label=who)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("ms per step")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)


# ---- the report ----

def fmt(t):
    return f"{1e6 * t:.1f} µs" if t < 1e-3 else f"{1e3 * t:.2f} ms"


BEGIN, END = "<!-- make bench: generated block begins -->", "<!-- make bench: generated block ends -->"


def write_report(text):
    block = BEGIN + "\n" + text.rstrip() + "\n" + END + "\n"
    if SMOKE or not os.path.exists(REPORT):
        open(REPORT, "w").write(block)
        return
    doc = open(REPORT).read()
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) + 1:]
    else:
        doc = doc.rstrip() + "\n\n## `make bench`\n\n" + block
    open(REPORT, "w").write(doc)


def main():
    t_start = time.time()
    lines = []
    say = lambda s="": (print(s, flush=True), lines.append(s))
    c = ceilings()
    load = os.getloadavg()[0]
    print(f"{TORCH}; load average {load:.2f}; {ROUNDS} rounds", flush=True)
    contenders = ["damc", "C+BLAS", "NumPy"] + (["PyTorch"] if torch is not None else [])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            best, worst = bench_size(*size, tmp)
            results[size] = (best, worst)
            print(f"  {size}: " + ", ".join(f"{k[0]} {k[1]} {fmt(t)}" for k, t in sorted(best.items())),
                  flush=True)
        proc = second = comp = None
        if not SMOKE and "--no-process" not in ARGS:
            proc, second = processes(tmp)
            comp = compile_and_load(tmp)
        series = scaling(tmp) if not SMOKE and "--no-scaling" not in ARGS else None
    if series:
        plot(series)

    say(f"Generated by `make bench` (bench/bench.py{' --smoke' if SMOKE else ''}) on "
        f"{time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs, OpenBLAS core "
        f"{c['openblas_core']} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE') or 'unset'}), "
        f"NumPy {np.__version__}, {TORCH}, load average {load:.2f} at the start. "
        f"Every figure is the best over {ROUNDS} round(s) of the median of calls filling "
        f"about {BUDGET} s, the contenders alternating within each round; only ratios within "
        f"this run mean anything (a shared machine moves absolute times by up to 2×).")
    say()
    say(f"Ceilings measured in this run (build/tests/bench_peak): sgemm {c['sgemm_t1_gflops']} GFLOP/s "
        f"on 1 thread, {c['sgemm_t2_gflops']} on 2; read bandwidth L2 {c['read_L2_t2_GBs']}, "
        f"L3 {c['read_L3_t2_GBs']}, DRAM {c['read_DRAM_t1_GBs']} GB/s (1 thread) / "
        f"{c['read_DRAM_t2_GBs']} (2). The bound of a size is max(flop / best sgemm, one read "
        f"of Xi / bandwidth of the level that holds it); \"% roofline\" is bound / damc's time. Above 100 %: damc's fused kernel (AVX-512) outruns the OpenBLAS sgemm measured here (its Haswell AVX2 kernels, as OPENBLAS_CORETYPE forces), so that ceiling is what OpenBLAS reaches, not the machine's FMA peak.")
    say()
    say(f"Agreement, checked before timing: every contender within {TOL:g} × max|x| of a float64 "
        "NumPy reference (worst relative error per contender over the three computations in the "
        "table's last column). damc's energy is its energy kernel (damc_energy: one pass over "
        "Xi, the product fused with its log-sum-exp).")
    say()
    for kern, title in [("stepB", "Model B step, u = Xiᵀ softmax(β Xi v), dv = u − v"),
                        ("eulerA", "Model A (n = 3) Euler step"),
                        ("energy", "Energy of Model B")]:
        say(f"**{title}** (contender / damc > 1: damc faster)")
        say()
        say("| (N, K, B) | " + " | ".join(contenders) + " | " +
            " | ".join(f"{w} / damc" for w in contenders[1:]) + " | % roofline (bound) |" +
            (" target NumPy / damc | worst rel. error |" if kern == "stepB" else ""))
        say("|" + "---|" * (2 * len(contenders) + 1 + (2 if kern == "stepB" else 0)))
        for size, (best, worst) in results.items():
            td = best[(kern, "damc")]
            bound, what = roofline(c, *size, kern)
            row = f"| {size} | " + " | ".join(fmt(best[(kern, w)]) for w in contenders) + " | " + \
                  " | ".join(f"{best[(kern, w)] / td:.2f}" for w in contenders[1:]) + \
                  f" | {100 * bound / td:.0f}% ({fmt(bound)} {what}) |"
            if kern == "stepB":
                tgt = TARGET_B.get(size)
                r = best[(kern, "NumPy")] / td
                row += (f" {tgt} ({'met' if r >= tgt else 'not met'}) |" if tgt else " — |") + \
                       " " + ", ".join(f"{w} {e:.1e}" for w, e in worst.items()) + " |"
            say(row)
        say()
    if torch is None:
        say(TORCH)
        say()
    faster = all(results[s][0][(k, w)] > results[s][0][(k, "damc")]
                 for s in results for k in KERNELS for w in contenders[1:])
    say(f"Target \"faster than NumPy, PyTorch and C+BLAS at every size\" (all three computations): "
        f"{'met' if faster else 'not met'}.")
    if (784, 10000, 64) in results:
        best = results[(784, 10000, 64)][0]
        bound, _ = roofline(c, 784, 10000, 64, "stepB")
        f = bound / best[("stepB", "damc")]
        say(f"Target ≥ 60 % of roofline where compute-bound ((784, 10000, 64), Model B step): "
            f"{100 * f:.0f} % ({'met' if f >= 0.6 else 'not met'}).")
    say()
    if proc:
        say("**Whole processes** (Model B at (N, K, B) = (64, 256, 1), one update from files to a "
            "result file; wall time, median of 5 runs, best over rounds): " +
            ", ".join(f"{w} {fmt(t)}" for w, t in proc.items()) +
            f". A second `damc run --max-steps 1` right after a first: {fmt(second)} "
            f"(target < 25 ms: {'met' if second < 0.025 else 'not met'}).")
        say()
        cold, cached, size_mb, t_damc, t_np = comp
        say(f"**Compile and load** (`damc bench`, damc's start of work to the first step): Model B "
            f"at (N, K) = (784, 1000) compiled without the cache (`--no-cache`, median of "
            f"{max(10, 3 * ROUNDS)} runs) {cold:.1f} ms (target < 30 ms: "
            f"{'met' if cold < 30 else 'not met'}), from the cache {cached:.1f} ms; "
            f"with a {size_mb:.0f} MB float32 weight (1024 × 65536 .npy) {t_damc:.1f} ms against "
            f"np.load of the same file {t_np:.1f} ms, ratio {t_damc / t_np:.2f} (target ≤ 2: "
            f"{'met' if t_damc <= 2 * t_np else 'not met'}).")
        say()
    if series:
        say("![time per Model B step against K and B](performance_scaling.png)")
        say()
        say("Scaling (Model B step, best of rounds): " + "; ".join(
            f"{s}: " + ", ".join(f"{w} {fmt(t)}" for w, t in series[s].items()) for s in sorted(series)) + ".")
        say()
    say(f"The whole `make bench` took {time.time() - t_start:.0f} s.")
    write_report("\n".join(lines))
    print(f"bench: wrote {REPORT}" + (f" and {PLOT}" if series else ""))


main()

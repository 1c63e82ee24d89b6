#!/usr/bin/env python3
"""Reduced runs of the reproductions of experiments/ (docs/theory.md §6), with the assertions
§6 recommends, each well under a minute on two cores:

  classic: N = 1000, 4 seeds x 2 starts at a stored pattern: median final overlap >= 0.98 at
           alpha = 0.05 and 0.10, < 0.5 at alpha = 0.20 (§6.1; the transition itself, 0.138,
           is blurred at finite N and not asserted);
  kh16:    N = 100, the rows of §6.2 whose predicted P_err is >= 0.01, 20 patterns x 100 bits:
           the measured rate within a factor of 2 of the Gaussian prediction (the tolerance of
           §6.2: the Gaussian-tail approximation at N = 100, plus a binomial error of at most
           ~25% at 2000 bits and P = 0.03);
  d17:     N = 40, rho = 0.1, M = 1573 (alpha at the threshold I(1-2 rho)/2): 50 of 50 queries
           retrieved exactly in one step (§6.3);
  r20:     d = 64, 10 000 patterns of radius 8, beta = 1, 50 queries: every pattern well
           separated; one update from a stored pattern within 1e-9 of it (reference 1.2e-11: the
           bound is exponentially small in beta Delta >= 24, e^-24 ~ 4e-11 times the number of
           patterns near the smallest separations, and the sum of 10 000 terms rounds at ~1e-14 x
           |x| = 1e-13), from a pattern plus noise of norm 4 within 1e-6 (reference max 1.9e-9);
  ags:     N = 1000, K = 3, heat bath: the 3-mixture survives 150 sweeps at T = 0.2 in every chain
           and in none at T = 0.5 (above the mean-field 0.461, where it is unstable); retrieval
           overlaps within 0.03 of m = tanh(m/T) for T <= 0.7 (the spread of the overlap of one
           chain of 1000 units, about sqrt((1-m^2)/N)/(1 - (1-m^2)/T) <= 0.03 there); no
           retrieval at T = 1.1;
  plots:   every PNG of docs/results/ decodes (signature, chunk CRCs, IHDR, the zlib stream of
           IDAT inflates to height x (1 + width x bytes per pixel)), and every image that
           docs/results.md shows exists.

usage: reproduce.py DAMC SOURCE_DIR [--case NAME | --list]"""
import json
import math
import os
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cases import check, run  # noqa: E402

DAMC, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
EXP = os.path.join(SRC, "experiments")


def script(tmp, name, *args):
    out = os.path.join(tmp, name + ".json")
    p = subprocess.run(["/usr/bin/python3", os.path.join(EXP, name + ".py"), DAMC, "--json", out, *args],
                       capture_output=True, text=True, timeout=600)
    print(p.stdout)
    if not check(p.returncode == 0, f"{name}.py exits {p.returncode}: {p.stderr}"):
        return None
    with open(out) as f:
        return json.load(f)


def classic(tmp):
    r = script(tmp, "classic", "--alphas", "0.05,0.10,0.20", "--seeds", "4", "--starts", "2")
    if r:
        a = r["alphas"]
        for x in ("0.05", "0.10"):
            check(a[x]["median"] >= 0.98, f"alpha {x}: median overlap {a[x]['median']} < 0.98")
        check(a["0.20"]["median"] < 0.5, f"alpha 0.20: median overlap {a['0.20']['median']} >= 0.5")


def kh16(tmp):
    rows = "x2:50,x2:100,x2:200,x3:1000,x3:2000,relu3:2000,x4:20000"
    r = script(tmp, "kh16", "--rows", rows, "--patterns", "20")
    if r:
        for key, v in r["rows"].items():
            check(v["predicted"] >= 0.01, f"{key}: prediction {v['predicted']} below 0.01, not an asserted row")
            ratio = v["rate"] / v["predicted"]
            check(0.5 <= ratio <= 2, f"{key}: P_err {v['rate']:.4f} vs predicted {v['predicted']:.4f} (ratio {ratio:.2f})")


def d17(tmp):
    r = script(tmp, "d17", "--rows", "0.1:1573")
    if r:
        v = r["rows"]["0.1:1573"]
        check(v["exact"] == 50 and v["queries"] == 50, f"rho 0.1, M 1573: {v['exact']}/{v['queries']} exact")


def r20(tmp):
    r = script(tmp, "r20", "--queries", "50")
    if r:
        check(r["well_separated"] == 1.0 and r["min_separation"] >= r["threshold"],
              f"not all well separated: min {r['min_separation']} threshold {r['threshold']}")
        check(r["max_error_stored"] <= 1e-9, f"from a stored pattern: error {r['max_error_stored']}")
        check(r["max_error_stored"] > 0, "from a stored pattern: error exactly 0 (was the update taken?)")
        check(r["max_error_noisy"] <= 1e-6, f"from a noisy pattern: error {r['max_error_noisy']}")


def ags(tmp):
    r = script(tmp, "ags", "--sizes", "1000", "--temps", "0.2,0.5,0.7,1.1", "--chains", "8", "--sweeps", "150")
    if r:
        runs = {v["t"]: v for v in r["runs"].values()}
        check(runs[0.2]["mixed"] == runs[0.2]["chains"], f"T = 0.2: mixture lost in {runs[0.2]}")
        check(runs[0.5]["mixed"] == 0, f"T = 0.5: the mixture survives in {runs[0.5]['mixed']} chains")
        for t in (0.2, 0.5, 0.7):
            v = runs[t]
            check(abs(v["m1"] - v["predicted_retrieval"]) <= 0.03,
                  f"T = {t}: retrieval overlap {v['m1']} vs tanh prediction {v['predicted_retrieval']}")
            check(v["retrieving"] == v["chains"], f"T = {t}: retrieval lost {v}")
        check(runs[1.1]["retrieving"] == 0, f"T = 1.1: retrieval above T = 1 {runs[1.1]}")


def png_decodes(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "no PNG signature"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        if pos + 8 > len(data):
            return "truncated chunk header"
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            return f"truncated chunk {kind}"
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) != crc:
            return f"bad CRC in {kind}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if not ihdr:
        return "no IHDR"
    w, h, depth, color = ihdr[:4]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    want = h * (1 + math.ceil(w * channels * depth / 8))
    return None if len(raw) == want and w > 0 and h > 0 else f"IDAT inflates to {len(raw)} bytes, want {want}"


def plots(tmp):
    results = os.path.join(SRC, "docs", "results.md")
    check(os.path.exists(results), "docs/results.md missing (make reproduce writes it)")
    shown = []
    if os.path.exists(results):
        for line in open(results):
            if line.startswith("![") and "](" in line:
                shown.append(line[line.index("](") + 2:line.rindex(")")])
    pngs = sorted(f for f in os.listdir(os.path.join(SRC, "docs", "results")) if f.endswith(".png")) \
        if os.path.isdir(os.path.join(SRC, "docs", "results")) else []
    for s in shown:
        check(os.path.exists(os.path.join(SRC, "docs", s)), f"docs/results.md shows {s}, which does not exist")
    for png in pngs:
        why = png_decodes(os.path.join(SRC, "docs", "results", png))
        check(why is None, f"docs/results/{png}: {why}")
        print(f"{png}: decodes")
    check(pngs or not shown, "no plots")


CASES = {"classic": classic, "kh16": kh16, "d17": d17, "r20": r20, "ags": ags, "plots": plots}

if __name__ == "__main__":
    run(CASES)

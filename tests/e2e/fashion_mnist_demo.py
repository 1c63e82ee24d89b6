#!/usr/bin/env python3
"""`make demo` on real data (scripts/demo.sh, examples/fashion_mnist): runs it into a
temporary directory and checks its figures against the thresholds below, its energy trace,
and its two pictures, decoded back with a small PNG decoder (zlib, struct).

usage: fashion_mnist_demo.py DAMC SOURCE_DIR

The data set is part of the set-up (scripts/deps.sh installs dataset-fashion-mnist): when it
is missing the test fails and says how to install it; it never skips."""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

DATA = "/usr/share/datasets/fashion-mnist"

# The thresholds, and why (the measured values are in docs/tutorial.md, "Real data").
# - recall of half-masked stored images >= 0.95: with the bias -|xi_up|^2/2 one update is a
#   softmax over minus the squared distances on the visible half, where the cued image is at
#   distance 0; beta = 2 recalls all 500 (beta = 0.5 only 93.6%: too flat a softmax). Below
#   0.95 the clamp, the bias or beta is wrong.
# - label accuracy on unseen images >= baseline - 0.02: the largest softmax weight is the
#   nearest neighbour on the visible half, so retrieval can lose only through the averaging
#   of neighbours (measured: -0.4 points); more than 2 points (10 of 500) is a regression.
# - hidden-half MSE <= the baseline's (copying the nearest neighbour's lower half): a soft
#   average of the near neighbours is a better estimate than one of them (measured 0.046
#   against 0.0625); and well below filling with zeros (0.235).
# - noisy cues (N(0, 0.5^2) on every pixel, cue MSE 0.25): recall >= 0.95 and the retrieved
#   image within 1% of the cue's MSE of the stored one (measured 6e-6): the softmax is all
#   but one-hot at beta = 2 when the noise is independent of the memories.
# - the continuous-time runs: at least 15 of 16 reach their stored image, E falls along every
#   run (no rise beyond 1e-9 (1 + |E|): the dynamics are a gradient flow on E), and by at
#   least 50 (the cue's E is about |noise|^2 / 2 = 98, the stored image's about 0).
THRESHOLDS = [
    ("masked_recall", ">=", lambda f: 0.95),
    ("masked_label_accuracy", ">=", lambda f: f["baseline_label_accuracy"] - 0.02),
    ("masked_hidden_mse", "<=", lambda f: f["baseline_hidden_mse"]),
    ("masked_hidden_mse", "<=", lambda f: 0.5 * f["zero_fill_hidden_mse"]),
    ("noisy_recall", ">=", lambda f: 0.95),
    ("noisy_mse", "<=", lambda f: 0.01 * f["noisy_cue_mse"]),
    ("flow_recall", ">=", lambda f: 15 / 16),
]


def read_png(path):
    """Decodes an 8-bit, non-interlaced PNG: (width, height, channels, rows of bytes). Checks
    the signature, every chunk's CRC, the IHDR fields, and that the image data decompresses
    to exactly one filter byte and one row for each row."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s: not a PNG signature" % path
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, "%s: bad CRC in chunk %r" % (path, kind)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", "%s: chunk order" % path
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and comp == 0 and filt == 0 and interlace == 0, "%s: unsupported" % path
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    stride = w * channels
    assert len(raw) == h * (stride + 1), "%s: %d bytes of image data, not %d" % (
        path, len(raw), h * (stride + 1))
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if ftype == 1: line[x] = (line[x] + a) & 255
            elif ftype == 2: line[x] = (line[x] + b) & 255
            elif ftype == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            else: assert ftype == 0, "%s: filter type %d" % (path, ftype)
        rows.append(bytes(line))
        prev = line
    return w, h, channels, rows


def main():
    damc, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    missing = [f for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
               if not os.path.exists(os.path.join(DATA, f))]
    if missing:
        print("FAIL: the Fashion-MNIST files %s are missing from %s.\n"
              "Install Debian's data set: apt-get install dataset-fashion-mnist "
              "(scripts/deps.sh, run by make test and make demo, installs it)." % (missing, DATA))
        return 1
    failures = []
    with tempfile.TemporaryDirectory() as out:
        r = subprocess.run(["sh", os.path.join(src, "scripts/demo.sh"), damc, out],
                           capture_output=True, text=True, timeout=600)
        print(r.stdout)
        if r.returncode != 0:
            print(r.stderr)
            print("FAIL: scripts/demo.sh exited %d" % r.returncode)
            return 1
        for pic in ("grid.png", "energy.png"):
            if os.path.join(out, pic) not in r.stdout:
                failures.append("the demo does not say where %s is" % pic)
        fig = {}
        for line in open(os.path.join(out, "figures.txt")):
            name, value = line.split()
            fig[name] = float(value)
        for name, op, bound in THRESHOLDS:
            b = bound(fig)
            ok = fig[name] >= b if op == ">=" else fig[name] <= b
            print("%s  %s = %.6g %s %.6g" % ("ok  " if ok else "FAIL", name, fig[name], op, b))
            if not ok:
                failures.append("%s = %g, not %s %g" % (name, fig[name], op, b))

        # The energy trace: one row per sample and step; E never rises along a run.
        runs = {}
        with open(os.path.join(out, "energy.csv")) as f:
            head = f.readline().strip().split(",")
            i_s, i_t, i_e = head.index("sample"), head.index("t"), head.index("E")
            for line in f:
                c = line.strip().split(",")
                runs.setdefault(int(c[i_s]), []).append((float(c[i_t]), float(c[i_e])))
        if len(runs) != 16:
            failures.append("the trace has %d runs, not 16" % len(runs))
        for s, rows in sorted(runs.items()):
            rises = [(t1, e0, e1) for (t0, e0), (t1, e1) in zip(rows, rows[1:])
                     if e1 > e0 + 1e-9 * (1 + abs(e0))]
            drop = rows[0][1] - rows[-1][1]
            if rises or drop < 50:
                failures.append("sample %d: E rises at %s, falls by %g in all" % (s, rises[:3], drop))
        print("%s  energy trace: %d runs, E non-increasing along each, drops %.1f to %.1f" % (
            "ok  " if not any("sample" in f for f in failures) else "FAIL", len(runs),
            min(r[0][1] - r[-1][1] for r in runs.values()), max(r[0][1] - r[-1][1] for r in runs.values())))

        # The pictures, decoded: the grid has the size the demo reports, six rows of eight
        # 56-pixel tiles, grey levels from black to white and the blue of the hidden halves;
        # the plot is matplotlib's 800 x 340 figure and not blank.
        w, h, ch, rows = read_png(os.path.join(out, "grid.png"))
        expect = (int(fig["grid_width"]), int(fig["grid_height"]))
        tiles = (3 + 8 * (56 + 3), 3 + 6 * (56 + 3))
        pixels = {tuple(row[x:x + ch]) for row in rows for x in range(0, len(row), ch)}
        ok = (w, h) == expect == tiles and ch == 3 and (0, 0, 0) in pixels and \
            (255, 255, 255) in pixels and (25, 35, 90) in pixels and len(pixels) > 200
        print("%s  grid.png %dx%d, %d channels, %d colours" % ("ok  " if ok else "FAIL", w, h, ch, len(pixels)))
        if not ok:
            failures.append("grid.png is %dx%d (%d channels, %d colours), expected %s" % (
                w, h, ch, len(pixels), tiles))
        w, h, ch, rows = read_png(os.path.join(out, "energy.png"))
        colours = {row[x:x + ch] for row in rows for x in range(0, len(row), ch)}
        ok = (w, h) == (800, 340) and len(colours) > 20
        print("%s  energy.png %dx%d, %d colours" % ("ok  " if ok else "FAIL", w, h, len(colours)))
        if not ok:
            failures.append("energy.png is %dx%d with %d colours, expected 800x340" % (w, h, len(colours)))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

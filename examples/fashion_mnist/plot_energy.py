#!/usr/bin/env python3
"""Plots the energy trace of a damc run (`damc run --trace TRACE.csv`, or the C API's
DamcRunOptions.trace) against time, one line per sample: E(t) must fall along every run.

usage: plot_energy.py TRACE.csv OUT.png [--title TEXT]

Needs matplotlib (Debian: python3-matplotlib, which scripts/deps.sh installs)."""
import csv
import sys


def main():
    args = sys.argv[1:]
    title = "energy along continuous-time retrieval (dopri5) from noisy cues"
    if "--title" in args:
        i = args.index("--title")
        title = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib
    except ImportError:
        print("plot_energy.py: matplotlib is missing; install it with "
              "apt-get install python3-matplotlib (scripts/deps.sh does it)", file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    with open(args[0], newline="") as f:
        for row in csv.DictReader(f):
            runs.setdefault(int(row.get("sample", 0)), []).append((float(row["t"]), float(row["E"])))
    if not runs:
        print("plot_energy.py: %s has no rows" % args[0], file=sys.stderr)
        return 1
    # Left: E itself; right: E - E(end) on a log scale, which shows the approach to the
    # minimum (E(end) is about 0 here, slightly below: the other memories' share).
    fig, (ax, lg) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=100)
    for sample in sorted(runs):
        t, e = zip(*runs[sample])
        ax.plot(t, e, linewidth=1)
        lg.semilogy(t, [max(v - e[-1], 1e-16) for v in e], linewidth=1)
    for a, label in ((ax, "energy E"), (lg, "E - E(end) (log scale)")):
        a.set_xlabel("time t (units of tau_v)")
        a.set_ylabel(label)
        a.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args[1])
    print("%d runs, %d rows: %s" % (len(runs), sum(len(r) for r in runs.values()), args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

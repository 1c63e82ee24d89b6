"""What the case-based end-to-end scripts share: the failures so far, `check`, and a main that
runs every case (or the one of `--case NAME`, or lists them with `--list`), each in a
temporary directory of its own, and exits 1 when anything failed."""
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def main(cases, argv):
    if "--list" in argv:
        print("\n".join(cases))
        return 0
    names = [argv[argv.index("--case") + 1]] if "--case" in argv else list(cases)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            cases[name](tmp)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


def run(cases):
    sys.exit(main(cases, sys.argv[3:]))

"""What the case-based end-to-end scripts share: the failures so far, `check`, and a main that
runs every case (or the one of `--case NAME`, or lists them with `--list`), each in a
temporary directory of its own, and exits 1 when anything failed. `--expect-cases A B ...`
fails unless the cases are exactly those registered as tests, so none is left unrun."""
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
    if "--expect-cases" in argv:
        given = set(argv[argv.index("--expect-cases") + 1:])
        for name in sorted(set(cases) - given):
            check(False, f"case {name} is not registered as a test")
        for name in sorted(given - set(cases)):
            check(False, f"test {name} names no case")
        return 1 if failures else 0
    names = [argv[argv.index("--case") + 1]] if "--case" in argv else list(cases)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            cases[name](tmp)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


def run(cases):
    sys.exit(main(cases, sys.argv[3:]))

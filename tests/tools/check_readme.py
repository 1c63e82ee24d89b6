#!/usr/bin/env python3
"""Runs the README's example commands (the lines of its code blocks that start with
`build/damc` or `/usr/bin/python3 scripts/`) in a temporary directory, in order, with the
real binary: each must exit 0. So the README never shows a command that fails, or one that
needs a file it does not say how to make.

usage: check_readme.py DAMC SOURCE_DIR"""
import os
import re
import shlex
import subprocess
import sys
import tempfile


def main():
    damc, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    text = open(os.path.join(src, "README.md")).read()
    blocks = re.findall(r"^```\n(.*?)^```", text, re.M | re.S)
    lines = [l.split("#")[0].strip() for b in blocks for l in b.splitlines()]
    commands = [l for l in lines if l.startswith("build/damc") or l.startswith("/usr/bin/python3 scripts/")]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for line in commands:
            args = shlex.split(line)
            args = [damc if a == "build/damc" else
                    os.path.join(src, a) if a.startswith(("examples/", "scripts/")) else a for a in args]
            r = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=300)
            ok = r.returncode == 0
            failures += not ok
            print("%s  %s" % ("ok  " if ok else "FAIL", line))
            if not ok:
                print(r.stderr[-2000:])
    print("%d README commands, %d failed" % (len(commands), failures))
    return 1 if failures or not commands else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs docs/tutorial.md: every fenced ```sh block, in order, in one bash shell (`set -e`,
so the first failing command stops it) started in an empty temporary directory with the
damc under test first on PATH. The ```output block that follows a ```sh block lists lines
that must appear, in that order, in what the block printed (stdout and stderr): each line
is matched whole, after trailing spaces are dropped, with `...` standing for any text.

usage: check_tutorial.py DAMC SOURCE_DIR"""
import os
import re
import subprocess
import sys
import tempfile

DATA = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def blocks(text):
    """[(commands, expected lines or None)] for the ```sh blocks of the text."""
    found = re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
    out = []
    for i, (lang, body) in enumerate(found):
        if lang != "sh":
            continue
        expect = None
        if i + 1 < len(found) and found[i + 1][0] == "output":
            expect = [l.rstrip() for l in found[i + 1][1].splitlines() if l.strip()]
        out.append((body, expect))
    return out


def matches(expect, lines):
    """Whether the expected lines appear in order among the printed ones: the missing line."""
    pos = 0
    for e in expect:
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in e.split("...")) + "$")
        while pos < len(lines) and not pattern.match(lines[pos]):
            pos += 1
        if pos == len(lines):
            return e
        pos += 1
    return None


def main():
    damc, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if not os.path.exists(DATA):
        print("FAIL: %s is missing: the tutorial's section 8 needs Debian's Fashion-MNIST.\n"
              "Install it: apt-get install dataset-fashion-mnist (scripts/deps.sh does it)." % DATA)
        return 1
    todo = blocks(open(os.path.join(src, "docs/tutorial.md")).read())
    if not todo:
        print("FAIL: docs/tutorial.md has no ```sh block")
        return 1
    script = ["set -e"]
    for i, (body, _) in enumerate(todo):
        script += ["echo '@@block %d@@'" % i, body]
    script.append("echo '@@end@@'")
    env = dict(os.environ, PATH=os.path.dirname(damc) + os.pathsep + os.environ.get("PATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp, env=env, timeout=600,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parts = re.split(r"^@@(block \d+|end)@@\n", r.stdout, flags=re.M)
    printed = {}
    for marker, text in zip(parts[1::2], parts[2::2]):
        if marker.startswith("block"):
            printed[int(marker.split()[1])] = text.splitlines()
    failures = 0
    for i, (body, expect) in enumerate(todo):
        first = body.strip().splitlines()[0]
        if i not in printed:
            print("FAIL  block %d (%s): not reached" % (i, first))
            failures += 1
            continue
        last_ran = i == max(printed) and "@@end@@" not in r.stdout
        missing = matches(expect, printed[i]) if expect else None
        ok = not last_ran and missing is None
        print("%s  block %d: %s%s" % ("ok  " if ok else "FAIL", i, first,
                                       "" if expect is None else "  (%d output lines)" % len(expect)))
        if not ok:
            failures += 1
            print("    " + ("the shell stopped here, exit status %d" % r.returncode if last_ran else
                            "missing output line: %r" % missing))
            print("    printed:\n" + "\n".join("      " + l for l in printed[i][-30:]))
    print("%d tutorial blocks, %d failed" % (len(todo), failures))
    return 1 if failures or r.returncode else 0


if __name__ == "__main__":
    sys.exit(main())

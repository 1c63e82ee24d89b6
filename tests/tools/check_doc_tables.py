#!/usr/bin/env python3
"""docs/language.md's tables are whole: every built-in function of
compiler/sym/builtins.def has a row in "Built-in functions", and every def of
compiler/front/prelude.dam a row in "The prelude", and neither table has a row for a name
that does not exist.

usage: check_doc_tables.py SOURCE_DIR"""
import os
import re
import sys


def section(text, title):
    start = text.index("## " + title + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def main():
    src = sys.argv[1]
    doc = open(os.path.join(src, "docs/language.md")).read()
    builtins = re.findall(r'^(?:ELEM|FN)\(\w+, "(\w+)"', open(os.path.join(src, "compiler/sym/builtins.def")).read(), re.M)
    prelude = re.findall(r"^def (\w+)\(", open(os.path.join(src, "compiler/front/prelude.dam")).read(), re.M)
    failures = 0
    for title, names in (("Built-in functions", builtins), ("The prelude", prelude)):
        rows = set(re.findall(r"^\| `(\w+)\(", section(doc, title), re.M))
        missing, extra = sorted(set(names) - rows), sorted(rows - set(names))
        ok = names and not missing and not extra
        failures += not ok
        print("%s  %s: %d names, %d rows%s%s" % (
            "ok  " if ok else "FAIL", title, len(names), len(rows),
            "; no row for %s" % missing if missing else "", "; rows for unknown %s" % extra if extra else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The JIT's table of runtime functions (runtime/include/damrt_kernel.def, signatures in the
code generator's notation) against their C prototypes (runtime/include/damrt_kernel.h): the
same functions, and for each the same return and argument types, so that the symbol table
the JIT registers cannot drift from what the runtime defines.

usage: check_kernel_abi.py SOURCE_DIR"""
import re
import sys

C_TO_IRB = {"void": "void", "int32_t": "i32", "int64_t": "i64", "double": "f64", "float": "f32"}


def irb_type(c_decl):
    """The code generator's name of one C parameter or return type."""
    c_decl = c_decl.strip()
    if "*" in c_decl:
        return "ptr"
    words = [w for w in re.split(r"\s+", c_decl) if w not in ("const", "restrict")]
    # The last word of a parameter is its name when there is more than a type.
    for w in words:
        if w in C_TO_IRB:
            return C_TO_IRB[w]
    raise ValueError("no ABI type for '%s'" % c_decl)


def main():
    src = sys.argv[1]
    table = open(src + "/runtime/include/damrt_kernel.def").read()
    header = open(src + "/runtime/include/damrt_kernel.h").read()
    rows = re.findall(r'^X\((\w+),\s*"([^"]*)"\)', table, re.M)
    protos = {}
    for ret, name, args in re.findall(r"^(\w+)\s+(damrt_kernel_\w+)\(([^)]*)\);", header, re.M | re.S):
        types = [irb_type(a) for a in args.split(",")] if args.strip() != "void" else []
        protos[name] = "%s(%s)" % (irb_type(ret), ", ".join(types))
    failures = 0
    for name, sig in rows:
        want = protos.get(name)
        if want != sig.replace(" ", "").replace(",", ", "):
            print("%s: damrt_kernel.def says %s, damrt_kernel.h declares %s" % (name, sig, want))
            failures += 1
    for name in sorted(set(protos) - {r[0] for r in rows}):
        print("%s: declared in damrt_kernel.h but not in damrt_kernel.def" % name)
        failures += 1
    print("%d runtime functions: %d mismatches" % (len(rows), failures))
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())

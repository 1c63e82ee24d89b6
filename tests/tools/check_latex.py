"""Structural check of the LaTeX that `damc explain --latex` prints (used when pdflatex is
not installed): braces balance, every \\left has its \\right, environments nest, and only
commands of amsmath's math mode that damc emits appear."""
import re
import sys

KNOWN = {
    "paragraph", "begin", "end", "frac", "sqrt", "left", "right", "exp", "log", "tanh", "cosh",
    "sinh", "sigma", "operatorname", "mathrm", "Lambda", "lambda", "cdot", "sum", "top",
    "leftarrow", "Theta", "text", "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
    "theta", "kappa", "mu", "nu", "xi", "Xi", "rho", "tau", "phi", "chi", "psi", "omega",
    "Omega", "Gamma", "Delta", "Phi", "_", ",",
}


def check(path):
    text = open(path, encoding="utf-8").read()
    problems = []
    depth = 0
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.startswith("%"):
            continue
        stripped = re.sub(r"\\[{}]", "", line)
        for ch in stripped:
            depth += ch == "{"
            depth -= ch == "}"
            if depth < 0:
                problems.append(f"line {line_no}: '}}' without '{{'")
                depth = 0
        if len(re.findall(r"\\left(?![A-Za-z])", line)) != len(re.findall(r"\\right(?![A-Za-z])", line)):
            problems.append(f"line {line_no}: \\left and \\right do not pair")
        for cmd in re.findall(r"\\([A-Za-z]+|.)", line):
            if cmd not in KNOWN and cmd != "\\":
                problems.append(f"line {line_no}: unexpected command \\{cmd}")
    if depth:
        problems.append("unbalanced braces at the end")
    envs = re.findall(r"\\(begin|end)\{([^}]*)\}", text)
    stack = []
    for kind, env in envs:
        if kind == "begin":
            stack.append(env)
        elif not stack or stack.pop() != env:
            problems.append(f"\\end{{{env}}} does not match")
    if stack:
        problems.append(f"unclosed environments: {stack}")
    if "\\begin{align*}" not in text:
        problems.append("no align* environment")
    for p in problems:
        print(f"{path}: {p}")
    return not problems


sys.exit(0 if all(check(p) for p in sys.argv[1:]) else 1)

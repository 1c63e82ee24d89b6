#!/bin/sh
# `damc explain --latex` on every example and every model of tests/golden/explain that
# derives (with the --eliminate of its args line) must be well-formed LaTeX. With Debian's texlive (pdflatex) installed, each is
# compiled into a document; otherwise tests/tools/check_latex.py checks the structure:
# balanced braces, \left/\right pairs, \begin/\end environments, known commands only.
set -u
damc=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for model in "$src"/examples/*.dam "$src"/tests/golden/explain/*.dam; do
  name=$(basename "$model" .dam)
  # A golden explain model with the --eliminate of its args line; those whose golden
  # expects an error are left out.
  extra=""
  case "$model" in
  */tests/golden/explain/*)
    grep -q '^# exit 0$' "${model%.dam}.golden" || continue
    extra=$(head -n 1 "$model" | sed -n 's|^// args: explain||p' | sed 's|--latex||')
    name="golden_$name";;
  esac
  # shellcheck disable=SC2086
  if ! "$damc" explain --latex $extra "$model" > "$work/$name.tex" 2> "$work/$name.err"; then
    echo "$name: damc explain --latex failed"; cat "$work/$name.err"; status=1; continue
  fi
  if command -v pdflatex > /dev/null 2>&1; then
    { printf '\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n'
      cat "$work/$name.tex"; printf '\\end{document}\n'; } > "$work/doc_$name.tex"
    if ! (cd "$work" && pdflatex -interaction=nonstopmode -halt-on-error "doc_$name.tex" > "doc_$name.log" 2>&1); then
      echo "$name: pdflatex failed"; tail -20 "$work/doc_$name.log"; status=1
    else
      echo "$name: compiled with pdflatex"
    fi
  elif ! /usr/bin/python3 "$src/tests/tools/check_latex.py" "$work/$name.tex"; then
    status=1
  else
    echo "$name: well-formed (pdflatex not installed)"
  fi
done
exit $status

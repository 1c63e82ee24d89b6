#!/bin/sh
# Runs one golden case: damc on <case>.dam (or on the input that <case>.gen prints), with
# the arguments of a first line "// args: ..." (default: parse), and compares the exit
# status, stdout and stderr with <case>.golden. UPDATE_GOLDEN=1 rewrites the expectation.
# A crash (signal) or internal error (70) fails whatever the expectation says.
set -u
damc=$1
case=$2
dir=$(cd "$(dirname "$case")" && pwd)
base=$(basename "$case")
base=${base%.*}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "${case%.gen}" != "$case" ]; then
  sh "$case" > "$work/$base.dam" || { echo "generator failed"; exit 1; }
else
  cp "$case" "$work/$base.dam"
fi
# Other inputs a case needs (tensors) sit in a directory named after it.
[ -d "$dir/$base.d" ] && cp -r "$dir/$base.d" "$work/"
args=$(head -n 1 "$work/$base.dam" | sed -n 's|^// args: ||p')
[ -n "$args" ] || args=parse
cd "$work"
# shellcheck disable=SC2086
"$damc" $args "$base.dam" > stdout 2> stderr
code=$?
{
  echo "# damc $args $base.dam"
  echo "# exit $code"
  echo "# stdout"
  cat stdout
  echo "# stderr"
  cat stderr
} > actual
if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
  cp actual "$dir/$base.golden"
fi
status=0
if ! diff -u "$dir/$base.golden" actual; then status=1; fi
if [ "$code" -ge 70 ]; then
  echo "damc crashed or failed internally (exit $code)"
  status=1
fi
exit $status

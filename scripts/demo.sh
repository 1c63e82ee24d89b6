#!/bin/sh
# `make demo`: damc on real data. It checks the demo's model and prints its reduced model,
# then stores 1000 Fashion-MNIST training images as the memories (Debian's
# dataset-fashion-mnist), cues it with half-masked and with noisy images through the C API
# (examples/fashion_mnist/demo.c), prints the figures that say whether retrieval worked
# beside the nearest-neighbour baseline, and draws two pictures: a grid of cue / retrieved /
# original images and the energy against time.
#
#   sh scripts/demo.sh BUILD/damc [OUTDIR]      (OUTDIR: BUILD/demo)
set -eu
damc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
build=$(dirname "$damc")
out=${2:-$build/demo}
demo=$build/examples/fashion_mnist/fashion_mnist_demo
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
model=examples/fashion_mnist/memory.dam

echo "\$ damc parse $model && echo valid"
"$damc" parse "$model" && echo valid
echo
echo "\$ damc explain $model | tail -2     (h eliminated: the reduced model)"
"$damc" explain "$model" | tail -2
echo
"$demo" "$model" "$out"
/usr/bin/python3 examples/fashion_mnist/plot_energy.py "$out/energy.csv" "$out/energy.png" >/dev/null
echo
echo "pictures:"
echo "  $out/grid.png     cue / retrieved / original (half-masked test images, noisy stored ones)"
echo "  $out/energy.png   the energy against time along the noisy cues' continuous-time runs"
echo "figures: $out/figures.txt; how it works: docs/tutorial.md"

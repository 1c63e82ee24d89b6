#!/bin/sh
# `make demo`: checks the main example and shows what damc understood of it.
set -eu
damc=$1
cd "$(dirname "$0")/.."
echo "\$ damc parse --ast examples/model_b.dam"
"$damc" parse --ast examples/model_b.dam
echo
echo "model_b.dam is a valid model (damc parse exited with 0)."

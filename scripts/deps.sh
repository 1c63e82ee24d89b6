#!/bin/sh
# Installs the Debian packages damc needs to build and test, and nothing else.
# Called by `make demo`, `make test` and `make check-asan`; safe to run again (it only
# installs what dpkg says is missing). Uses apt-get directly as root, sudo otherwise,
# and prints the exact command when neither is possible.
set -eu

# `make bench` only: PyTorch (CPU) as an optional contender, installed on a best-effort basis
# (not part of the build or test set-up: CI stays fast). Where it does not install, the bench
# prints "PyTorch: skipped (python3-torch not installed)".
if [ "${1:-}" = "--bench" ]; then
  dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed" && exit 0
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-torch"
  echo "damc: installing python3-torch for the bench (optional)"
  if [ "$(id -u)" -eq 0 ]; then
    sh -c "$cmd" >/dev/null 2>&1 || echo "damc: python3-torch did not install; the bench skips PyTorch"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo sh -c "$cmd" >/dev/null 2>&1 || echo "damc: python3-torch did not install; the bench skips PyTorch"
  else
    echo "damc: cannot install python3-torch (not root, no sudo); the bench skips PyTorch"
  fi
  exit 0
fi

PACKAGES="cmake make gcc clang libclang-rt-14-dev pkg-config flex bison llvm-19-dev libstdc++-12-dev \
libopenblas-dev liblapacke-dev zlib1g-dev libzip-dev libpng-dev python3-numpy python3-pytest \
python3-matplotlib libplplot-dev plplot-driver-cairo dataset-fashion-mnist"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
echo "damc: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
  sh -c "$cmd"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo sh -c "$cmd"
else
  echo "damc: cannot install packages (not root, no sudo). Run as root:" >&2
  echo "  $cmd" >&2
  exit 1
fi

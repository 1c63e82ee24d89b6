"""Shared set-up of the Python tests: the source tree, the damc executable (for comparing
with `damc eval`), and the e2e helpers that make random weights for the examples.

Run from ctest (tests/CMakeLists.txt sets PYTHONPATH=build/python, DAMC_EXE, DAMC_SRC) or
by hand: PYTHONPATH=build/python DAMC_EXE=build/damc /usr/bin/python3 -m pytest python/tests -q
"""
import importlib.util
import os
import sys

import pytest

SRC = os.environ.get("DAMC_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                 "..", ".."))
EXAMPLES = os.path.join(SRC, "examples")
DAMC_EXE = os.environ.get("DAMC_EXE") or os.path.join(SRC, "build", "damc")
# The tests count compilations: kernels from the cache of compiled kernels would not count
# (ctest sets this for every test; here for a run by hand too).
os.environ.setdefault("DAMC_NO_CACHE", "1")


def _helpers():
    """tests/e2e/native_cli.py's model readers (weights_for, layers_of), without running it."""
    path = os.path.join(SRC, "tests", "e2e", "native_cli.py")
    text = open(path).read().replace("sys.exit(main(sys.argv[3:]))", "")
    text = text.replace("DAMC, SRC = sys.argv[1], sys.argv[2]", "DAMC, SRC = None, %r" % SRC)
    mod = type(sys)("native_cli_helpers")
    exec(compile(text, path, "exec"), mod.__dict__)
    return mod


helpers = _helpers()
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from references import sign_sweeps  # noqa: E402,F401  (NumPy references shared with tests/e2e)


@pytest.fixture
def damc_exe():
    if not os.path.exists(DAMC_EXE):
        pytest.skip(f"no damc executable at {DAMC_EXE} (set DAMC_EXE)")
    return DAMC_EXE

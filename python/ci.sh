#!/usr/bin/env bash
# The Python package in CI (called by tests/all.sh): builds and installs `fleetwire`
# from python/ the way a user does (pip, maturin as the build backend, release, abi3),
# runs its pytest suite, then its codec testee through the conformance runner.
#   bash python/ci.sh PATH/TO/fleetwire
set -euo pipefail
cd "$(dirname "$0")/.."
fw=${1:?usage: python/ci.sh PATH/TO/fleetwire}
venv=.venv-fw
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q --upgrade "maturin>=1.7,<2" "pytest>=7"
# Without build isolation the venv's maturin builds it (no second download); the
# extension is compiled once, in release, into the workspace's target/.
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/pip" install -q --no-build-isolation ./python
"$venv/bin/python" -c 'import fleetwire, sys; print("fleetwire", fleetwire.__version__, "on", sys.version.split()[0])'
"$venv/bin/python" -m pytest -q python/tests
"$fw" conformance codec --testee "$PWD/$venv/bin/python -m fleetwire.testee" \
  --expected conformance/expected/python-binding.txt

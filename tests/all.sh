#!/usr/bin/env bash
# The whole test suite, on a fresh machine: the Rust tests; the Python implementation's
# own tests; and the conformance suite against the reference, the Python implementation
# (written from spec/ only) and the deliberately faulty mutants.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --all-features"
cargo test --all-features

echo "== Python implementation (venv with cramjam)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q -r conformance/impls/python/requirements.txt
.venv/bin/python -m unittest discover -s conformance/impls/python/tests -t conformance/impls/python

echo "== conformance: reference (spawned testee), Python implementation, mutants"
cargo build -q --release --features cli
fw=target/release/fleetwire
"$fw" conformance --spawn-reference
PYTHONPATH=conformance/impls/python "$fw" conformance codec \
  --testee "$PWD/.venv/bin/python -m fleetwire_py.testee" \
  --expected conformance/expected/python.txt
"$fw" conformance mutants

#!/usr/bin/env bash
# The whole test suite, on a fresh machine: the Rust tests; the Python implementation's
# own tests; and the conformance suite against the reference, the Python implementation
# (written from spec/ only) and the deliberately faulty mutants.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace --all-features"
cargo test --workspace --all-features

echo "== Python implementation (venv with cramjam)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q -r conformance/impls/python/requirements.txt
.venv/bin/python -m unittest discover -s conformance/impls/python/tests -t conformance/impls/python

echo "== conformance: reference (spawned testee), Python implementation, mutants"
cargo build -q --release -p fleetwire-cli
fw=target/release/fleetwire
"$fw" conformance --spawn-reference
PYTHONPATH=conformance/impls/python "$fw" conformance codec \
  --testee "$PWD/.venv/bin/python -m fleetwire_py.testee" \
  --expected conformance/expected/python.txt
"$fw" conformance mutants

echo "== conformance peer: the Python implementation as a live server"
port=$((20000 + RANDOM % 20000))
log=$(mktemp)
PYTHONPATH=conformance/impls/python .venv/bin/python -m fleetwire_py.peer server \
  --port "$port" >"$log" 2>&1 &
pypid=$!
trap 'kill "$pypid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
"$fw" conformance peer --connect "127.0.0.1:$port" --plaintext
kill "$pypid" 2>/dev/null || true

echo "== conformance peer: the Python implementation as a live client"
port=$((20000 + RANDOM % 20000))
out=$(mktemp)
(timeout 120 "$fw" conformance peer --listen "127.0.0.1:$port" --plaintext >"$out" 2>&1; echo "exit=$?" >>"$out") &
# The client under test reconnects after each case: run it until the runner is done.
for _ in $(seq 60); do
  grep -q '^exit=' "$out" && break
  PYTHONPATH=conformance/impls/python timeout 10 .venv/bin/python -m fleetwire_py.peer \
    client --port "$port" >/dev/null 2>&1 || sleep 0.1
done
wait
cat "$out"
grep -qx 'exit=0' "$out"

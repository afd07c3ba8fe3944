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
.venv/bin/pip install -q conformance/impls/python   # pyproject.toml: fleetwire-py-testee
.venv/bin/python -m unittest discover -s conformance/impls/python/tests -t conformance/impls/python

echo "== conformance: reference (spawned testee), Python implementation, mutants"
cargo build -q --release -p fleetwire-cli
fw=target/release/fleetwire
"$fw" conformance --spawn-reference
"$fw" conformance codec \
  --testee "$PWD/.venv/bin/fleetwire-py-testee" \
  --expected conformance/expected/python.txt
# the kill matrices must match their records (conformance/mutants/kills/), which
# spec/TRACEABILITY.md is generated from
"$fw" conformance mutants --check
"$fw" conformance mutants --python "$PWD/.venv/bin/python" --check

echo "== hostile load (short form; the long form: fleetwire attack --long)"
"$fw" attack

echo "== Python package (python/): pip install, pytest, its codec testee"
bash python/ci.sh "$fw"

# Short timers on both sides, so that the timer cases take about a second each; the
# runner is told the same values (--timers).
timers="handshake=1200,header=600,packet=1400,drain=400"

echo "== conformance peer: the Python implementation as a live server"
port=$((20000 + RANDOM % 20000))
log=$(mktemp)
PYTHONPATH=conformance/impls/python .venv/bin/python -m fleetwire_py.peer server \
  --port "$port" --timers "$timers" --idle-ms 1000 >"$log" 2>&1 &
pypid=$!
trap 'kill "$pypid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
"$fw" conformance peer --connect "127.0.0.1:$port" --plaintext --timers "$timers" --timeout 3000
kill "$pypid" 2>/dev/null || true

echo "== conformance peer: the Python implementation as a live client"
port=$((20000 + RANDOM % 20000))
out=$(mktemp)
(timeout 300 "$fw" conformance peer --listen "127.0.0.1:$port" --plaintext --timers "$timers" \
  --timeout 3000 >"$out" 2>&1; echo "exit=$?" >>"$out") &
# The client under test echoes and reconnects after each case until the runner is gone.
sleep 0.3
PYTHONPATH=conformance/impls/python timeout 300 .venv/bin/python -m fleetwire_py.peer \
  client --port "$port" --echo --timers "$timers" --idle-ms 1000 >/dev/null 2>&1 || true
wait
cat "$out"
grep -qx 'exit=0' "$out"

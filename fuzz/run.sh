#!/usr/bin/env bash
# Usage: fuzz/run.sh TARGET SECONDS
#
# Runs one fuzz target with cargo-fuzz on nightly for SECONDS. New inputs go to a work
# corpus under fuzz/target/corpus/TARGET (not committed), seeded from the committed
# fuzz/corpus/TARGET, which is only read. Crashes land in fuzz/artifacts/TARGET.
#
# Environment:
#   FRESH=1        start from an empty corpus (no seeds), as continuous fuzzing of a new
#                  target does: every target must survive this without a report
#   MERGE=1        afterwards, merge inputs that add coverage into fuzz/corpus/TARGET
#   SANITIZER=...  address | none (default none: the crate forbids unsafe code, and
#                  without ASan the fuzzer runs about twice as fast)
#   FUZZ_ARGS=...  extra libFuzzer arguments
set -euo pipefail
source "$(dirname "$0")/common.sh"

target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS}"
targets | grep -qx "$target" || { echo "unknown target $target; have: $(targets | tr "\n" " ")"; exit 2; }

reason=$(have_nightly) || { echo "fuzz/run.sh: $reason"; exit 2; }
ensure_cargo_fuzz

cd "$ROOT"
work="fuzz/target/corpus/$target"
seeds="fuzz/corpus/$target"
mkdir -p "$work" "$seeds" "fuzz/artifacts/$target"
corpora=("$work" "$seeds")
if [ "${FRESH:-0}" = 1 ]; then
  work="fuzz/target/fresh/$target"
  rm -rf "$work" && mkdir -p "$work"
  corpora=("$work")
fi
# OSS-Fuzz's default limits: 2,560 MB of memory (malloc included), 25 s per input
limits=(-rss_limit_mb=2560 -malloc_limit_mb=2560 -timeout=25)
flags=(--release --debug-assertions --sanitizer "${SANITIZER:-none}")

# shellcheck disable=SC2086
cargo +nightly fuzz run "${flags[@]}" "$target" "${corpora[@]}" -- \
  -max_len="$(max_len "$target")" \
  "${limits[@]}" \
  -max_total_time="$seconds" \
  -print_final_stats=1 \
  -artifact_prefix="fuzz/artifacts/$target/" \
  ${FUZZ_ARGS:-}

if [ "${MERGE:-0}" = 1 ]; then
  bin="fuzz/target/x86_64-unknown-linux-gnu/release/$target"
  "$bin" -merge=1 -max_len="$(max_len "$target")" "${limits[@]}" "$seeds" "$work"
  echo "merged into $seeds: $(ls "$seeds" | wc -l) files, $(du -sh "$seeds" | cut -f1)"
fi

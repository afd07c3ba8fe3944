#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build: compiles every cargo-fuzz target in fuzz/ and puts
# the binaries, their seed corpora (fuzz/corpus/<target> plus fuzz/regressions/<target>)
# and libFuzzer options in $OUT.
#
# Runs in gcr.io/oss-fuzz-base/base-builder-rust, where nightly is the default toolchain.
# Also runs locally for a check, with nightly and cargo-fuzz installed (FUZZ_TARGET_DIR
# keeps its build apart from fuzz/run.sh's):
#   OUT=$(mktemp -d) SRC=$(mktemp -d) FUZZ_TARGET_DIR=/tmp/cfl bash .clusterfuzzlite/build.sh

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -d "$SRC/fleetwire/fuzz" ]; then root="$SRC/fleetwire"; fi
cd "$root"
source fuzz/common.sh

cargo=(cargo)
if ! cargo --version | grep -q nightly && cargo +nightly --version >/dev/null 2>&1; then
  cargo=(cargo +nightly)
fi
# No --sanitizer here: OSS-Fuzz passes its own flags (and SANITIZER=coverage, which
# cargo-fuzz does not know, in coverage builds).
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
"${cargo[@]}" fuzz build -O --debug-assertions --target-dir "$target_dir"

bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
for t in $(targets); do
  cp "$bin_dir/$t" "$OUT/$t"
  printf '[libfuzzer]\nmax_len = %s\nrss_limit_mb = 2560\nmalloc_limit_mb = 2560\ntimeout = 25\n' "$(max_len "$t")" >"$OUT/$t.options"
  seeds=()
  for d in "fuzz/corpus/$t" "fuzz/regressions/$t"; do
    if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then seeds+=("$d"/*); fi
  done
  rm -f "$OUT/${t}_seed_corpus.zip"
  if [ "${#seeds[@]}" -gt 0 ]; then
    if command -v zip >/dev/null; then
      zip -q -j "$OUT/${t}_seed_corpus.zip" "${seeds[@]}"
    else
      python3 -c 'import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for f in sys.argv[2:]:
        z.write(f, os.path.basename(f))' "$OUT/${t}_seed_corpus.zip" "${seeds[@]}"
    fi
  fi
done
echo "built $(targets | wc -l) fuzz targets into $OUT"

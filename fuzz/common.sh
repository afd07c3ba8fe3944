# Shared by run.sh and smoke.sh: toolchain checks and per-target libFuzzer settings.
# shellcheck shell=bash

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
CARGO_FUZZ_VERSION="0.13.2"

# Largest useful input per target: a header is at most 10 bytes (+ slack), a control
# payload at most 1 + 1024 (HELLO), a compressed payload 5 + 65535 but bombs are small.
max_len() {
  case "$1" in
    header) echo 16 ;;
    control) echo 1100 ;;
    decompress) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# Fails (returns 1) with a reason on stdout when nightly is not available.
have_nightly() {
  if ! command -v rustup >/dev/null 2>&1; then echo "rustup not found"; return 1; fi
  if ! cargo +nightly --version >/dev/null 2>&1; then echo "no nightly toolchain (cargo +nightly)"; return 1; fi
}

# Installs cargo-fuzz from crates.io when it is missing; returns 1 if that fails.
ensure_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then return 0; fi
  echo "cargo-fuzz not found: installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
}

# The targets declared in fuzz/Cargo.toml, one per line.
targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml" | grep -v '^fleetwire-fuzz$'
}

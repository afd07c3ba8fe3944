//! Replays the checked-in fuzz corpus and regression inputs on stable `cargo test`.
//!
//! Every file in `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through
//! the same `fleetwire::fuzzing::<target>` function the cargo-fuzz shim calls, so a
//! regression found by the fuzzer stays fixed without a nightly toolchain. Inputs of bugs
//! not fixed yet wait in `fuzz/pending/<target>/` (an ignored test replays them).

#![cfg(feature = "fuzzing")]

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

/// The targets compiled in with the current features, by directory name.
fn target(name: &str) -> Option<Target> {
    use fleetwire::fuzzing;
    Some(match name {
        "header" => fuzzing::header,
        "packet_roundtrip" => fuzzing::packet_roundtrip,
        "deframe_split" => fuzzing::deframe_split,
        "control" => fuzzing::control,
        "inspect" => fuzzing::inspect,
        "connection" => fuzzing::connection,
        "connection_pair" => fuzzing::connection_pair,
        #[cfg(feature = "compression")]
        "decompress" => fuzzing::decompress,
        #[cfg(feature = "test-certs")]
        "tls" => fuzzing::tls,
        _ => return None,
    })
}

/// Targets whose directory may exist while the target is compiled out by features.
const FEATURE_GATED: &[&str] = &["decompress", "tls"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The corpus (24 MB, beside the cargo-fuzz package) is not shipped in the published
/// crate: there (`Cargo.toml.orig` marks a packaged crate) the replay is skipped. In the
/// repository a missing corpus still fails.
fn skipped_in_package() -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packaged = root.join("Cargo.toml.orig").is_file() && !fuzz_dir().exists();
    if packaged {
        eprintln!("packaged crate without fuzz/: corpus replay skipped");
    }
    packaged
}

/// Runs every file under `<fuzz>/<kind>/<target>/`; returns (files run, failures).
fn replay(kind: &str) -> (usize, Vec<String>) {
    let root = fuzz_dir().join(kind);
    let mut run = 0;
    let mut failures = Vec::new();
    let Ok(dirs) = fs::read_dir(&root) else {
        return (0, failures);
    };
    let mut dirs: Vec<_> = dirs
        .map(|d| d.expect("readable dir entry").path())
        .collect();
    dirs.sort();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(f) = target(name) else {
            assert!(
                FEATURE_GATED.contains(&name),
                "{}: no fuzz target named {name:?}",
                root.display()
            );
            continue;
        };
        let mut files: Vec<_> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files.iter().filter(|p| p.is_file()) {
            let data = fs::read(file).expect("readable corpus file");
            run += 1;
            if panic::catch_unwind(|| f(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    (run, failures)
}

#[test]
fn corpus_replays_without_failures() {
    if skipped_in_package() {
        return;
    }
    let (run, failures) = replay("corpus");
    assert!(run > 0, "no corpus files found under fuzz/corpus");
    assert!(
        failures.is_empty(),
        "{} of {run} corpus inputs failed: {failures:#?}",
        failures.len()
    );
}

#[test]
fn regressions_stay_fixed() {
    if skipped_in_package() {
        return;
    }
    let (run, failures) = replay("regressions");
    assert!(
        failures.is_empty(),
        "{} of {run} regression inputs failed: {failures:#?}",
        failures.len()
    );
}

/// Inputs of bugs found and not fixed yet (`fuzz/pending/<target>/<bug>`): once the bug
/// is fixed this passes, and the file moves to `fuzz/regressions/`.
#[test]
#[ignore = "known open bugs; run with --ignored to check whether they are fixed"]
fn pending_bugs_are_fixed() {
    let (run, failures) = replay("pending");
    assert!(
        failures.is_empty(),
        "{} of {run} pending bugs still reproduce: {failures:#?}",
        failures.len()
    );
}

#[test]
fn every_target_has_seeds() {
    if skipped_in_package() {
        return;
    }
    for name in [
        "header",
        "packet_roundtrip",
        "deframe_split",
        "control",
        "inspect",
        "decompress",
    ] {
        let dir = fuzz_dir().join("corpus").join(name);
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(
            n > 0,
            "{} has no seeds: run `python3 fuzz/seed.py`",
            dir.display()
        );
    }
}

/// The regression inputs replayed again in a child limited to OSS-Fuzz's default memory
/// (2,560 MB of address space, `ulimit -v`): an oracle that allocates what an input
/// declares (a 4 GiB snappy length) fails here, although the replay above may pass on
/// a machine that overcommits memory.
#[cfg(target_os = "linux")]
#[test]
fn regressions_run_within_the_fuzzers_memory_limit() {
    if std::env::var_os("FLEETWIRE_FUZZ_CHILD").is_some() {
        return; // the child runs only `regressions_stay_fixed`
    }
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 2621440 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["--exact", "regressions_stay_fixed", "--test-threads=1"])
        .env("FLEETWIRE_FUZZ_CHILD", "1")
        .status()
        .expect("spawn the test binary");
    assert!(
        status.success(),
        "replaying fuzz/regressions under a 2,560 MB limit failed: {status}"
    );
}

//! Golden vectors: the committed files verify, regenerate byte for byte, and every MUST
//! of the spec is traced to a check (spec/TRACEABILITY.md).

use std::fs;
use std::path::{Path, PathBuf};

use fleetwire_conformance::vectors;

/// This crate's directory: `vectors/` and `spec/` are the repository's (symlinks in the
/// repository, copies in the packaged crate).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root, when the tests run in the repository (not in the packaged
/// crate, which carries no other crate's sources).
fn repo_root() -> Option<PathBuf> {
    let repo = root().parent()?.to_path_buf();
    repo.join("spec/TRACEABILITY.md").is_file().then_some(repo)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleetwire-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

// trace: err.split-invariant
#[test]
fn committed_vectors_verify_with_zero_failures() {
    let report = vectors::verify(&root().join("vectors"));
    for (id, message) in &report.failures {
        eprintln!("{id}: {message}");
    }
    assert!(report.is_ok(), "{report}");
    assert!(report.passed >= 200, "only {} vectors", report.passed);
}

#[test]
fn regenerating_reproduces_the_committed_vectors_byte_for_byte() {
    let dir = temp_dir("vectors");
    let written = vectors::generate(&dir).expect("generate");
    for layer in vectors::LAYERS {
        let name = format!("{layer}.json");
        let fresh = fs::read(dir.join(&name)).expect("generated file");
        let committed = fs::read(root().join("vectors").join(&name)).unwrap_or_default();
        assert!(
            fresh == committed,
            "vectors/{name} differs from the generator's output: run `fleetwire vectors generate` and review the diff"
        );
    }
    let fresh = vectors::verify(&dir);
    assert_eq!(fresh.passed + fresh.failed, written);
    let _ = fs::remove_dir_all(&dir);
}

/// The committed matrix lists conformance cases and the recorded kill matrices too, so
/// it can only be rebuilt with the runner compiled in (as `fleetwire vectors trace` does).
#[test]
fn traceability_matrix_is_complete_and_up_to_date() {
    let Some(root) = repo_root() else {
        eprintln!("not in the repository (packaged crate): the matrix covers every crate, skipped");
        return;
    };
    let recorded = fleetwire_conformance::recorded_mutants(&root).expect("kill records");
    let declared = fleetwire_conformance::declared_mutants(&root).expect("mutants");
    let report = vectors::trace_with_mutants(
        &root.join("spec/fleetwire-v1.md"),
        &root.join("vectors"),
        &[
            &root.join("src"),
            &root.join("tests"),
            &root.join("conformance"),
            &root.join("cli"),
        ],
        &fleetwire_conformance::case_coverage(),
        Some((&recorded, &declared)),
    )
    .expect("trace");
    let problems = report.check();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn verify_reports_a_corrupted_vector() {
    let dir = temp_dir("corrupt");
    vectors::generate(&dir).expect("generate");
    let baseline = vectors::verify(&dir).failures;
    let path = dir.join("header.json");
    let text = fs::read_to_string(&path).unwrap();
    // Flip the expected code of the first UNKNOWN_KIND vector.
    let text = text.replacen("\"code\": 5", "\"code\": 6", 1);
    fs::write(&path, text).unwrap();
    let report = vectors::verify(Path::new(&dir));
    let new: Vec<_> = report
        .failures
        .iter()
        .filter(|f| !baseline.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].0, "header.kind.unassigned-7");
    let _ = fs::remove_dir_all(&dir);
}

/// Regenerates `vectors/` in place: `cargo test -p fleetwire-conformance --test vectors -- --ignored regenerate`.
#[test]
#[ignore]
fn regenerate() {
    let n = vectors::generate(&root().join("vectors")).expect("generate");
    eprintln!("{n} vectors written; `fleetwire vectors trace` rewrites spec/TRACEABILITY.md");
}

//! Golden vectors: the committed files verify, regenerate byte for byte, and every MUST
//! of the spec is traced to a check (spec/TRACEABILITY.md).

use std::fs;
use std::path::{Path, PathBuf};

use fleetwire_conformance::vectors;

/// The repository root (this crate lives in `conformance/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance/ has a parent")
        .to_path_buf()
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

/// The committed matrix lists conformance cases too, so it can only be rebuilt with the
/// runner compiled in (as `fleetwire vectors trace` does).
#[test]
fn traceability_matrix_is_complete_and_up_to_date() {
    let root = root();
    let report = vectors::trace_with_cases(
        &root.join("spec/fleetwire-v1.md"),
        &root.join("vectors"),
        &[
            &root.join("src"),
            &root.join("tests"),
            &root.join("conformance"),
            &root.join("cli"),
        ],
        &fleetwire_conformance::case_coverage(),
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
    eprintln!("{n} vectors written");
    let r = vectors::trace(
        &root().join("spec/fleetwire-v1.md"),
        &root().join("vectors"),
        &[&root().join("src"), &root().join("tests")],
    )
    .expect("trace");
    r.write().expect("write TRACEABILITY.md");
}

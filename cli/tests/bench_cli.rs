//! `fleetwire bench` from the command line: the JSON report's shape and the section
//! filter. Runs only the quick proxy section (sans-IO, a second or two).
#![cfg(feature = "transport-bench")]

use std::process::Command;

fn fleetwire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetwire"))
}

/// Runs `fleetwire bench ARGS --json FILE` (FILE in a fresh directory named after
/// `tag`, removed afterwards) with `env` set; checks it succeeded and returns the table
/// it printed and the JSON report.
fn run_bench(tag: &str, args: &[&str], env: &[(&str, &str)]) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("fleetwire-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = fleetwire()
        .arg("bench")
        .args(args)
        .envs(env.iter().copied())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (String::from_utf8(out.stdout).unwrap(), report)
}

#[test]
fn bench_json_has_the_documented_fields() {
    let (table, v) = run_bench(
        "bench",
        &["--quick", "--only", "proxy"],
        &[("FLEETWIRE_BENCH_DIVIDE", "50")],
    );
    assert_eq!(
        table.lines().count(),
        4,
        "header and three proxy rows:\n{table}"
    );
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{r}");
        for k in ["name", "unit", "ours", "baseline", "ratio"] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        let (ours, base, ratio) = (
            r["ours"].as_f64().unwrap(),
            r["baseline"].as_f64().unwrap(),
            r["ratio"].as_f64().unwrap(),
        );
        assert!(ours > 0.0 && base > 0.0);
        assert!((ratio - ours / base).abs() < 1e-9 * ratio.max(1.0), "{r}");
        assert_eq!(r["unit"], "msg/s/core");
    }
}

#[test]
fn bench_refuses_an_unknown_section() {
    let out = fleetwire()
        .args(["bench", "--only", "everything"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("expected throughput, pairs, scaling, ping, memory or proxy"));
}

#[test]
fn bench_python_group_is_skipped_when_the_interpreter_cannot_run_it() {
    let (table, v) = run_bench(
        "bench-py",
        &["--only", "python", "--python", "/nonexistent/python"],
        &[],
    );
    assert_eq!(
        table.lines().count(),
        2,
        "header and the skipped row:\n{table}"
    );
    assert!(
        table.contains("skipped: cannot run /nonexistent/python"),
        "{table}"
    );
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["ours"].is_null() && rows[0]["ratio"].is_null());
    assert!(rows[0]["skipped"].as_str().unwrap().contains("cannot run"));
}

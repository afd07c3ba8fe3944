//! Machine-readable output: `fleetwire ping --json` (one document) and `fleetwire
//! cluster --json` (JSON Lines), parsed as JSON.

use std::net::TcpListener;
use std::process::Command;
use std::thread;

use fleetwire::node::{serve, NodeOptions, NodeSecurity};

const FW: &str = env!("CARGO_BIN_EXE_fleetwire");

#[test]
fn ping_json_is_one_document_with_every_sample() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut opts = NodeOptions::new(6, NodeSecurity::Plaintext);
    opts.max_conns = Some(1);
    let node = thread::spawn(move || serve(listener, opts).unwrap());
    let out = Command::new(FW)
        .args([
            "ping",
            &addr,
            "--plaintext",
            "--count",
            "4",
            "--interval-ms",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["addr"], addr.as_str());
    assert_eq!(doc["mode"], "plaintext");
    assert_eq!(doc["node"], 6);
    assert_eq!(
        (doc["sent"].as_u64(), doc["received"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(doc["lost"], 0);
    assert_eq!(doc["rtt_ms"].as_array().unwrap().len(), 4);
    let stats = &doc["stats_ms"];
    assert_eq!(stats["count"], 4);
    let (min, p50, max) = (
        stats["min"].as_f64().unwrap(),
        stats["p50"].as_f64().unwrap(),
        stats["max"].as_f64().unwrap(),
    );
    assert!(min <= p50 && p50 <= max, "{stats}");
    assert!(doc["error"].is_null());
    node.join().unwrap();
}

#[test]
fn ping_json_reports_a_refused_connection_on_stderr_only() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let out = Command::new(FW)
        .args(["ping", &addr, "--plaintext", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no half document on stdout");
    assert!(!out.stderr.is_empty());
}

#[test]
fn cluster_json_is_json_lines() {
    let out = Command::new(FW)
        .args(["cluster", "--seconds", "2", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["event"], "start");
    assert_eq!(lines[0]["proxy"], 100);
    let reports: Vec<_> = lines[1..]
        .iter()
        .filter(|l| l["event"] == "report")
        .collect();
    assert_eq!(reports.len(), lines.len() - 1);
    assert!(!reports.is_empty());
    for r in &reports {
        for key in [
            "time_s",
            "route",
            "packets_per_sec",
            "mbytes_per_sec",
            "rtt_p50_ms",
            "rtt_p99_ms",
            "refused",
        ] {
            assert!(r.get(key).is_some(), "{key} in {r}");
        }
    }
    assert!(
        reports
            .iter()
            .any(|r| r["packets_per_sec"].as_f64().unwrap() > 0.0),
        "traffic flowed"
    );
}

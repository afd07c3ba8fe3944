//! `fleetwire node` logs through `tracing`: by default the plain lines it always printed
//! (one per connection opened and closed), with `-v` (or `RUST_LOG`) DEBUG events too, in
//! the full format (level, target, the connection's span, fields).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a one-connection node with `args`, sends it a stream that is not Fleetwire, and
/// returns what it wrote on stderr.
fn node_log(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut node = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args([
            "node",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--max-conns",
            "1",
        ])
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = node.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let first = String::from_utf8(first).unwrap();
    let addr: SocketAddr = first
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(b"NOT-FLEETWIRE").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = sock.read_to_end(&mut Vec::new());
    let output = node.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn node_prints_its_plain_lines_by_default() {
    let log = node_log(&[], &[]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("conn 1 open from 127.0.0.1:"), "{log}");
    assert!(
        lines[1].starts_with("conn 1 closed: code BAD_PREFACE (0x0002) by this endpoint"),
        "{log}"
    );
}

#[test]
fn node_verbose_adds_debug_events_with_targets_spans_and_fields() {
    for (args, env) in [
        (&["-v"][..], &[][..]),
        (&[][..], &[("RUST_LOG", "fleetwire=debug")][..]),
    ] {
        let log = node_log(args, env);
        let debug = log
            .lines()
            .find(|l| l.contains("DEBUG") && l.contains("connection error"))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(debug.contains("fleetwire::connection"), "{debug}");
        assert!(debug.contains("conn{id=1 peer=127.0.0.1:"), "{debug}");
        assert!(debug.contains("code=BAD_PREFACE (0x0002)"), "{debug}");
        assert!(log.contains("INFO"), "{log}");
    }
}

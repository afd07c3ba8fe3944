//! The `fleetwire proxy`, `fleetwire node` and `fleetwire cluster` commands, run as the
//! built binary over 127.0.0.1. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::connection::{Config, SendOptions};
use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions};
use fleetwire::node::{NodeSecurity, Shutdown};
use fleetwire::{ErrorCode, Route};

const DEADLINE: Duration = Duration::from_secs(10);

/// A reference echo node that honours X from the proxy (a trusted link configured
/// locally, spec §7.4 `[[src.trust]]`).
fn echo_node(id: u16) -> (SocketAddr, Shutdown, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(id, NodeSecurity::Plaintext);
    opts.config.trust_source = true;
    let stop = opts.shutdown.clone();
    let t = thread::spawn(move || serve(listener, opts).unwrap());
    (addr, stop, t)
}

fn client_options() -> ClientOptions {
    let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
    // the proxy is configured as trusted: its stamped sources are honoured (§7.4)
    opts.config = Config::client().with_trust_server_as_proxy(true);
    opts
}

/// Waits for `child` to exit by itself, at most `limit`; kills it otherwise. (Its
/// output is small: it fits in the pipes while we wait.)
fn output_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fleetwire did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

// trace: route.stamp
#[test]
fn proxy_command_forwards_and_exits_cleanly_on_stdin_eof() {
    let (node_addr, stop, node) = echo_node(1);
    let route = format!("1={node_addr}");
    let (mut child, addr, line) = spawn_listening(&[
        "proxy",
        "--plaintext",
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "100",
        "--route",
        &route,
    ]);
    // fleetwire proxy 100 listening on 127.0.0.1:PORT (plaintext), 1 routes
    assert!(line.contains("(plaintext), 1 routes"), "{line}");

    let mut client = connect(addr, client_options()).unwrap();
    client
        .send(
            Route::new(1, 7, 3),
            b"via the binary",
            SendOptions::default(),
        )
        .unwrap();
    let echo = client.recv().unwrap();
    assert_eq!(&echo.payload[..], b"via the binary");
    assert_eq!(echo.source, 1);
    assert_eq!(client.close().unwrap().code, ErrorCode::NO_ERROR);

    drop(child.stdin.take()); // end of standard input: a graceful stop
    let out = output_within(child, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    stop.trigger();
    node.join().unwrap();
}

/// Spawns `fleetwire ARGS --stop-on-stdin-eof`; returns it, the address of its
/// first line "... listening on ADDR ...", and that line.
fn spawn_listening(args: &[&str]) -> (Child, SocketAddr, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args(args)
        .arg("--stop-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleetwire");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(DEADLINE).expect("no 'listening on' line");
    let addr = line
        .split_once(" listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr, line)
}

// trace: src.trust
#[test]
fn node_command_behind_proxy_command_over_a_trusted_plaintext_link() {
    let (mut node, node_addr, _) = spawn_listening(&[
        "node",
        "--plaintext",
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "1",
        "--trust-peer",
        "127.0.0.1",
    ]);
    let route = format!("1={node_addr}");
    let (mut proxy, proxy_addr, _) = spawn_listening(&[
        "proxy",
        "--plaintext",
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "100",
        "--route",
        &route,
    ]);
    let mut client = connect(proxy_addr, client_options()).unwrap();
    for i in 0..3u8 {
        client
            .send(Route::new(1, 7, i), &[i; 40], SendOptions::default())
            .unwrap();
        let echo = client.recv().unwrap();
        assert_eq!((&echo.payload[..], echo.source), (&[i; 40][..], 1));
    }
    assert_eq!(client.close().unwrap().code, ErrorCode::NO_ERROR);
    for child in [&mut proxy, &mut node] {
        drop(child.stdin.take());
    }
    for child in [proxy, node] {
        let out = output_within(child, DEADLINE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
        assert!(!stderr.contains("SOURCE_FORGED"), "{stderr}");
    }
}

/// Runs `fleetwire cluster ARGS`; returns, per node id, the packets/s of its rows.
fn cluster(args: &[&str]) -> BTreeMap<u16, Vec<f64>> {
    let child = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .arg("cluster")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleetwire cluster");
    let out = output_within(child, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // "    1s  node 1          57835     3.701    0.645ms    5.708ms        0"
    let mut rows: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [time, "node", id, rate, ..] = fields[..] {
            assert!(time.ends_with('s'), "{line}");
            let rate: f64 = rate.parse().unwrap_or_else(|_| panic!("{line}"));
            rows.entry(id.parse().unwrap()).or_default().push(rate);
        }
    }
    rows
}

#[test]
fn cluster_command_reports_traffic_to_both_nodes() {
    let rows = cluster(&["--seconds", "2"]);
    assert_eq!(rows.keys().copied().collect::<Vec<u16>>(), vec![1, 2]);
    for (node, rates) in &rows {
        assert_eq!(rates.len(), 2, "one row per second for node {node}");
        assert!(rates.iter().any(|r| *r > 0.0), "node {node}: {rates:?}");
    }
}

#[test]
fn cluster_command_over_tls() {
    let rows = cluster(&["--seconds", "1", "--tls", "--clients", "3"]);
    assert_eq!(rows.keys().copied().collect::<Vec<u16>>(), vec![1, 2]);
    assert!(
        rows.values().all(|r| r.len() == 1 && r[0] > 0.0),
        "{rows:?}"
    );
}

//! The reference endpoint end to end over loopback: `fleetwire::node::serve` on a thread,
//! `fleetwire::node::connect` as the client, plaintext and TLS.
//!
//! Everything runs on 127.0.0.1 and every wait is bounded (a few seconds).
#![cfg(all(feature = "node", feature = "test-certs"))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::connection::{Config, SendOptions};
use fleetwire::node::{
    connect, serve, Client, ClientOptions, ClientSecurity, NodeError, NodeOptions, NodeSecurity,
    RttStats, Shutdown,
};
use fleetwire::tls::{generate_test_pki, CertificateProblem, TestPki, TlsError};
use fleetwire::{Codec, ErrorCode, Route};

const WAIT: Duration = Duration::from_secs(5);

#[path = "support/capture.rs"]
mod capture;

/// A node serving on a thread, with its log lines (the messages of its `tracing` events).
struct TestNode {
    addr: SocketAddr,
    log: capture::Capture,
    shutdown: Shutdown,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    fn start(opts: NodeOptions) -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = capture::Capture::default();
        let subscriber = log.clone();
        let shutdown = opts.shutdown.clone();
        let thread = Some(thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || serve(listener, opts))
        }));
        TestNode {
            addr,
            log,
            shutdown,
            thread,
        }
    }

    fn plaintext() -> TestNode {
        TestNode::start(NodeOptions::new(1, NodeSecurity::Plaintext))
    }

    /// Waits until a log line contains `needle`; returns it.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.log.messages();
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {lines:#?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the node gracefully and waits for `serve` to return.
    fn stop(mut self) {
        self.shutdown.trigger();
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "serve did not return");
            thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap().unwrap();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.trigger(); // the thread ends on its own; never blocks a failing test
    }
}

fn client_opts(security: ClientSecurity) -> ClientOptions {
    let mut opts = ClientOptions::new(security);
    opts.timeout = WAIT;
    opts
}

fn plaintext_client(node: &TestNode) -> Client {
    connect(node.addr, client_opts(ClientSecurity::Plaintext)).unwrap()
}

/// The test PKI written as PEM files into a temporary directory, removed at the end.
struct PkiDir {
    dir: PathBuf,
    pki: TestPki,
}

impl PkiDir {
    fn new(tag: &str, node_id: u16) -> PkiDir {
        let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(node_id)).unwrap();
        let dir = std::env::temp_dir().join(format!("fleetwire-node-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", &pki.ca_cert_pem),
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        PkiDir { dir, pki }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    fn node_security(&self, mutual: bool) -> NodeSecurity {
        let ca = self.read("ca.pem");
        let client_ca = mutual.then_some(&ca[..]);
        NodeSecurity::tls(&self.read("cert.pem"), &self.read("key.pem"), client_ca).unwrap()
    }

    fn client_security(&self, identity: Option<(&[u8], &[u8])>) -> ClientSecurity {
        ClientSecurity::tls(&self.read("ca.pem"), "localhost", identity).unwrap()
    }
}

impl Drop for PkiDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pings `n` times and checks the round-trip times are sane.
fn ping_n(client: &mut Client, n: usize) -> RttStats {
    let samples: Vec<Duration> = (0..n).map(|_| client.ping().unwrap()).collect();
    let stats = RttStats::from_samples(&samples).unwrap();
    assert!(stats.max < Duration::from_secs(1), "{stats}");
    stats
}

#[test]
fn plaintext_ping_echo_and_close() {
    let node = TestNode::plaintext();
    let mut client = plaintext_client(&node);
    let peer = *client.peer().unwrap();
    assert_eq!((peer.node_id, peer.role.name()), (1, "node"));
    ping_n(&mut client, 20);

    client
        .send(Route::new(0, 3, 9), b"move north", SendOptions::default())
        .unwrap();
    let echo = client.recv().unwrap();
    // echoed to the sender with the same service and channel; the node is the source
    assert_eq!(&echo.payload[..], b"move north");
    assert_eq!(
        (echo.route.service, echo.route.channel, echo.source),
        (3, 9, 1)
    );

    let info = client.close().unwrap();
    assert_eq!((info.code, info.by_peer), (ErrorCode::NO_ERROR, false));
    assert_eq!(info.delivered, Some(1), "the node processed our one DATA");
    node.wait_log("conn 1 open from 127.0.0.1:");
    let closed = node.wait_log("conn 1 closed");
    assert!(closed.contains("NO_ERROR (0x0000) by the peer"), "{closed}");
    assert!(closed.contains("echoed 1/1 DATA"), "{closed}");
    node.stop();
}

/// The node logs through `tracing`: INFO events for the open and the close with
/// structured fields, and the connection state machine's own events (here the bad
/// preface) inside the connection's span, so they name the connection.
#[test]
fn node_events_carry_fields_and_the_connection_span() {
    let node = TestNode::plaintext();
    let mut raw = TcpStream::connect(node.addr).unwrap();
    raw.write_all(b"NOT-FLEETWIRE").unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let _ = raw.read_to_end(&mut Vec::new());
    let log = &node.log;
    let open = log.wait_for(WAIT, |e| e.message.contains("conn 1 open"));
    assert_eq!(open.level, tracing::Level::INFO);
    assert_eq!(open.target, "fleetwire::node::server");
    assert_eq!(open.field("conn"), Some("1"));
    assert_eq!(open.field("transport"), Some("plaintext"));
    let closed = log.wait_for(WAIT, |e| e.message.contains("conn 1 closed"));
    assert_eq!(closed.level, tracing::Level::INFO);
    assert_eq!(closed.field("code"), Some("BAD_PREFACE (0x0002)"));
    let error = log.wait_for(WAIT, |e| {
        e.target.starts_with("fleetwire::connection") && e.message == "connection error"
    });
    assert_eq!(error.field("code"), Some("BAD_PREFACE (0x0002)"));
    assert!(
        error
            .spans
            .iter()
            .any(|s| s.starts_with("conn{") && s.contains("id=1")),
        "{error:?}"
    );
    node.stop();
}

#[test]
fn tls_ping_echo_and_close() {
    let pki = PkiDir::new("tls", 1);
    let node = TestNode::start(NodeOptions::new(1, pki.node_security(false)));
    let mut client = connect(node.addr, client_opts(pki.client_security(None))).unwrap();
    assert_eq!(client.peer_cert_node_id(), Some(1));
    ping_n(&mut client, 20);
    for size in [0, 1, 1000, 65_535] {
        let payload = vec![(size % 251) as u8; size];
        client
            .send(Route::new(0, 0, 1), &payload, SendOptions::default())
            .unwrap();
        assert_eq!(client.recv().unwrap().payload.len(), size);
    }
    assert_eq!(client.close().unwrap().code, ErrorCode::NO_ERROR);
    let closed = node.wait_log("conn 1 closed");
    assert!(closed.contains("NO_ERROR"), "{closed}");
    node.stop();
}

/// A payload of `len` bytes that compresses like game state (about 3-5x).
fn game_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u32;
    while out.len() < len {
        let (x, y) = (i.wrapping_mul(7919) % 1000, i.wrapping_mul(104_729) % 1000);
        out.extend_from_slice(format!("entity {} x={x} y={y};", i % 97).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn echo_of_compressed_payloads() {
    for (sent, echoed) in [
        (Codec::Snappy, Codec::None),
        (Codec::Zlib, Codec::None),
        (Codec::Snappy, Codec::Zlib),
        (Codec::Zlib, Codec::Snappy),
    ] {
        let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
        opts.echo_codec = echoed;
        let node = TestNode::start(opts);
        let mut client = plaintext_client(&node);
        client.set_timeout(Duration::from_millis(500));
        // larger than max_payload uncompressed: travels only compressed (§9.2)
        let payload = game_like(100_000);
        let before = client.stats();
        client
            .send(Route::new(0, 2, 2), &payload, SendOptions::compressed(sent))
            .unwrap();
        let echo = client.recv();
        let after = client.stats();
        let wire_out = after.bytes_sent - before.bytes_sent;
        assert!(wire_out < 50_000, "{sent:?}: {wire_out} bytes on the wire");
        // 100,000 bytes cannot be echoed uncompressed (max_payload 65,535): with no
        // echo codec set, the node compresses what does not fit otherwise
        let echo = echo.unwrap();
        assert_eq!(echo.payload, payload, "{sent:?} -> {echoed:?}");
        let wire_in = after.bytes_received - before.bytes_received;
        assert!(wire_in < 50_000, "{echoed:?}: {wire_in} bytes");
        drop(client);
        node.stop();
    }
}

/// An echo that fits no way within the peer's limits (incompressible, larger than the
/// `max_payload` the client announced) is counted and logged, not dropped silently, and
/// the connection carries on.
#[test]
fn an_echo_too_large_for_the_peer_is_reported_not_dropped_silently() {
    let node = TestNode::plaintext();
    let mut opts = client_opts(ClientSecurity::Plaintext);
    opts.config.limits.max_payload = 1024;
    let mut client = connect(node.addr, opts).unwrap();
    client.set_timeout(Duration::from_millis(500));
    let mut x = 0x9e37_79b9_u32;
    let noise: Vec<u8> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    client
        .send(Route::new(0, 1, 1), &noise, SendOptions::default())
        .unwrap();
    assert!(matches!(client.recv(), Err(NodeError::Timeout(_))));
    node.wait_log("echo of 2000 bytes");
    // the connection carries on: a small DATA is echoed
    client.set_timeout(WAIT);
    client
        .send(Route::new(0, 1, 1), b"small", SendOptions::default())
        .unwrap();
    assert_eq!(&client.recv().unwrap().payload[..], b"small");
    client.close().unwrap();
    node.wait_log("1 too large to echo");
    node.stop();
}

#[test]
fn echo_keeps_never_compress_and_small_payloads_uncompressed() {
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.echo_codec = Codec::Zlib;
    let node = TestNode::start(opts);
    let mut client = plaintext_client(&node);
    client.set_timeout(Duration::from_secs(2));
    let secret = game_like(10_000);
    let before = client.stats();
    let never = SendOptions {
        codec: Codec::Zlib,
        never_compress: true,
    };
    client.send(Route::new(0, 1, 1), &secret, never).unwrap();
    let echo = client.recv().unwrap();
    let after = client.stats();
    // spec §4.4, §9.2 [[comp.never]]: N = 1 both ways, never compressed
    assert!(echo.never_compress);
    assert_eq!(echo.payload, secret);
    assert!(after.bytes_sent - before.bytes_sent >= 10_008);
    assert!(after.bytes_received - before.bytes_received >= 10_008);

    // a compressed payload comes back compressed with the node's codec
    let before = client.stats();
    client
        .send(
            Route::new(0, 1, 1),
            &secret,
            SendOptions::compressed(Codec::Snappy),
        )
        .unwrap();
    assert_eq!(client.recv().unwrap().payload, secret);
    let after = client.stats();
    assert!(after.bytes_sent - before.bytes_sent < 6_000);
    assert!(after.bytes_received - before.bytes_received < 6_000);
    drop(client);
    node.stop();
}

#[test]
fn flow_control_with_tiny_windows_both_ways() {
    let mut node_opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    node_opts.config.limits.initial_credit_packets = 2;
    let node = TestNode::start(node_opts);
    let mut opts = client_opts(ClientSecurity::Plaintext);
    opts.config.limits.initial_credit_packets = 2;
    let mut client = connect(node.addr, opts).unwrap();
    assert_eq!(client.connection().send_credit().0, 2);
    // a pipeline two deep: sends wait for the node's CREDIT (§8 [[flow.send]]), the
    // node's echoes wait for ours
    const N: u32 = 50;
    for i in 0..N {
        client
            .send(
                Route::new(0, 0, 0),
                &i.to_be_bytes(),
                SendOptions::default(),
            )
            .unwrap();
        if i >= 2 {
            assert_eq!(&client.recv().unwrap().payload[..], &(i - 2).to_be_bytes());
        }
    }
    for i in N - 2..N {
        assert_eq!(&client.recv().unwrap().payload[..], &i.to_be_bytes());
    }
    let info = client.close().unwrap();
    assert_eq!(info.delivered, Some(u64::from(N)));
    node.stop();
}

#[test]
fn mutual_tls_binds_the_node_id_to_the_certificate() {
    let pki = PkiDir::new("mtls", 1);
    let node = TestNode::start(NodeOptions::new(1, pki.node_security(true)));
    let seven = pki.pki.issue(&[], Some(7)).unwrap();
    let identity = Some((seven.cert_pem.as_bytes(), seven.key_pem.as_bytes()));

    // spec §10.2 [[tls.node-binding]]: HELLO node id 7 matches fleetwire:node:7
    let mut opts = client_opts(pki.client_security(identity));
    opts.config = Config::node(7);
    let mut client = connect(node.addr, opts.clone()).unwrap();
    client.ping().unwrap();
    client.close().unwrap();
    let line = node.wait_log("conn 1 closed");
    assert!(line.contains("peer node 7"), "{line}");

    // the same certificate announcing node 8: BAD_HELLO from the node
    opts.config = Config::node(8);
    let err = connect(node.addr, opts).unwrap_err();
    let info = err.close_info().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        (info.code, info.by_peer),
        (ErrorCode::BAD_HELLO, true),
        "{err}"
    );
    let line = node.wait_log("conn 2 closed");
    assert!(
        line.contains("BAD_HELLO (0x0009) by this endpoint"),
        "{line}"
    );

    // no client certificate at all: the TLS layer refuses it
    let err = connect(node.addr, client_opts(pki.client_security(None))).unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Tls(TlsError::CertificateInvalid {
                problem: CertificateProblem::Missing,
                by_peer: true
            })
        ),
        "{err}"
    );
    node.stop();
}

#[test]
fn client_refuses_a_node_whose_hello_differs_from_its_certificate() {
    let pki = PkiDir::new("badid", 1);
    // the certificate names node 1, the node announces 2
    let node = TestNode::start(NodeOptions::new(2, pki.node_security(false)));
    let err = connect(node.addr, client_opts(pki.client_security(None))).unwrap_err();
    let info = err.close_info().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        (info.code, info.by_peer),
        (ErrorCode::BAD_HELLO, false),
        "{err}"
    );
    assert!(err.to_string().contains("authenticated id"), "{err}");
    node.stop();
}

#[test]
fn plaintext_client_against_tls_node_is_told_clearly() {
    // trace: layer.no-fallback, preface.misconfig
    let pki = PkiDir::new("p2t", 1);
    let node = TestNode::start(NodeOptions::new(1, pki.node_security(false)));
    let err = connect(node.addr, client_opts(ClientSecurity::Plaintext)).unwrap_err();
    assert!(matches!(err, NodeError::PeerSpeaksTls), "{err}");
    assert!(err.to_string().contains("expects TLS"), "{err}");
    let line = node.wait_log("conn 1 closed");
    assert!(line.contains("plaintext Fleetwire preface"), "{line}");
    node.stop();
}

#[test]
fn tls_client_against_plaintext_node_is_told_clearly() {
    // trace: layer.no-fallback, preface.misconfig
    let pki = PkiDir::new("t2p", 1);
    let node = TestNode::plaintext();
    let err = connect(node.addr, client_opts(pki.client_security(None))).unwrap_err();
    assert!(
        matches!(err, NodeError::Tls(TlsError::PlaintextPreface)),
        "{err}"
    );
    assert!(err.to_string().contains("configured without TLS"), "{err}");
    let line = node.wait_log("conn 1 closed");
    assert!(line.contains("BAD_PREFACE"), "{line}");
    assert!(line.contains("it expects TLS"), "{line}");
    node.stop();
}

#[test]
fn node_shutdown_sends_goaway_and_drains() {
    let node = TestNode::plaintext();
    let mut client = plaintext_client(&node);
    client
        .send(Route::new(0, 0, 0), b"last words", SendOptions::default())
        .unwrap();
    assert_eq!(&client.recv().unwrap().payload[..], b"last words");
    node.shutdown.trigger();
    // spec §6.4: the node's GOAWAY NO_ERROR, answered by ours; then closed
    let err = client.recv().unwrap_err();
    let info = err.close_info().unwrap_or_else(|| panic!("{err}"));
    assert_eq!((info.code, info.by_peer), (ErrorCode::NO_ERROR, true));
    assert_eq!(info.reason, "node shutting down");
    assert_eq!(info.delivered, Some(1));
    let line = node.wait_log("conn 1 closed");
    assert!(
        line.contains("NO_ERROR (0x0000) by this endpoint"),
        "{line}"
    );
    node.stop();
}

#[test]
fn max_conns_ends_serve() {
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.max_conns = Some(2);
    let mut node = TestNode::start(opts);
    for _ in 0..2 {
        plaintext_client(&node).close().unwrap();
    }
    let thread = node.thread.take().unwrap();
    let deadline = Instant::now() + WAIT;
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "serve did not return");
        thread::sleep(Duration::from_millis(10));
    }
    thread.join().unwrap().unwrap();
}

#[test]
fn handshake_timer_closes_a_silent_peer() {
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.config.limits.handshake_timeout_ms = 300;
    let node = TestNode::start(opts);
    let mut sock = TcpStream::connect(node.addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    sock.read_to_end(&mut got).unwrap();
    let elapsed = started.elapsed();
    // spec §6.5 [[timeout.close]]: preface + HELLO, then GOAWAY TIMEOUT at ~300 ms
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(&got[..8], &fleetwire::PREFACE);
    let goaway = &got[8 + 8 + 28..];
    assert_eq!(goaway[0], 0x14, "a GOAWAY follows the HELLO: {got:02x?}");
    assert_eq!(&goaway[8..10], &ErrorCode::TIMEOUT.0.to_be_bytes());
    let line = node.wait_log("conn 1 closed");
    assert!(line.contains("TIMEOUT (0x000D)"), "{line}");
    node.stop();
}

#[test]
fn keepalive_pings_keep_an_idle_connection_open() {
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.config.limits.idle_timeout_ms = 1000; // the smallest allowed (§5.2)
    let node = TestNode::start(opts);
    let mut client = plaintext_client(&node);
    // while the client waits, its driver sends keepalive PINGs every 500 ms
    // (§6.2 [[neg.keepalive]]), so the node's idle timer never fires
    client.set_timeout(Duration::from_millis(1600));
    assert!(matches!(client.recv(), Err(NodeError::Timeout(_))));
    client.set_timeout(WAIT);
    client.ping().unwrap();
    assert_eq!(client.close().unwrap().code, ErrorCode::NO_ERROR);
    node.stop();
}

#[test]
fn idle_timer_closes_a_peer_that_goes_quiet() {
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.config.limits.idle_timeout_ms = 1000;
    let node = TestNode::start(opts);
    // a raw peer: preface and HELLO (a client's, with idle timeout 0), then silence
    let mut sock = TcpStream::connect(node.addr).unwrap();
    let mut hello_conn = fleetwire::Connection::new(Config::client(), Duration::ZERO);
    let mut wire = Vec::new();
    hello_conn.poll_transmit(&mut wire);
    sock.write_all(&wire).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    sock.read_to_end(&mut got).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    let line = node.wait_log("conn 1 closed");
    assert!(line.contains("TIMEOUT (0x000D)"), "{line}");
    node.stop();
}

#[test]
fn echo_probe_measures_data_round_trips() {
    let node = TestNode::plaintext();
    let mut client = plaintext_client(&node);
    let samples: Vec<Duration> = (0..10)
        .map(|_| client.echo(Route::default(), &[1u8; 1024]).unwrap())
        .collect();
    let stats = RttStats::from_samples(&samples).unwrap();
    assert!(stats.p99 < Duration::from_secs(1), "{stats}");
    client.close().unwrap();
    node.stop();
}

// ---- spec 1.1: graceful close is a half-close; role authentication (issue 11) ----

/// Drives `conn` over a blocking socket to `addr` until it closes (or 10 s pass): first
/// its preface and HELLO, then, once established, `burst` queues packets that go out in
/// ONE write. Returns every event.
fn raw_session(
    addr: SocketAddr,
    mut conn: fleetwire::Connection,
    burst: impl FnOnce(&mut fleetwire::Connection, Duration),
) -> Vec<fleetwire::connection::Event> {
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut burst = Some(burst);
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < Duration::from_secs(10) {
        let now = start.elapsed();
        if conn.is_established() {
            if let Some(f) = burst.take() {
                f(&mut conn, now);
            }
        }
        out.clear();
        conn.poll_transmit(&mut out);
        if !out.is_empty() && sock.write_all(&out).is_err() {
            conn.handle_eof(start.elapsed());
        }
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
        if conn.is_closed() {
            break;
        }
        match sock.read(&mut buf) {
            Ok(0) => conn.handle_eof(start.elapsed()),
            Ok(n) => conn.handle_input(start.elapsed(), &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(start.elapsed())
            }
            Err(_) => conn.handle_eof(start.elapsed()),
        }
    }
    while let Some(e) = conn.poll_event() {
        events.push(e);
    }
    events
}

// trace: close.half, close.answer, goaway.delivered
#[test]
fn thousand_data_then_goaway_in_one_write_get_every_echo() {
    use fleetwire::connection::Event;
    // issue 11: 1,000 DATA then GOAWAY in one write got 0 echoes while the node's GOAWAY
    // said delivered 1000; a half-close answers all of them, then closes
    let node = TestNode::plaintext();
    let conn = fleetwire::Connection::new(Config::client(), Duration::ZERO);
    let events = raw_session(node.addr, conn, |c, now| {
        for i in 0..1000u32 {
            c.send_data(
                Route::new(0, 0, 1),
                &i.to_be_bytes(),
                SendOptions::default(),
            )
            .unwrap();
        }
        c.close(now, "done");
    });
    let echoes: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Data { payload, .. } => {
                Some(u32::from_be_bytes(payload[..].try_into().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        echoes,
        (0..1000).collect::<Vec<_>>(),
        "every answer, in order"
    );
    assert!(
        matches!(
            events.last(),
            Some(Event::Closed {
                code: ErrorCode::NO_ERROR,
                by_peer: false,
                delivered: Some(1000),
                ..
            })
        ),
        "{:?}",
        events.last()
    );
    node.stop();
}

// trace: src.auth
#[test]
fn an_unauthenticated_peer_cannot_claim_role_node_or_proxy() {
    use fleetwire::connection::Event;
    // issue 11: any client could claim to be node 3; by default only role client is
    // accepted from a peer with neither mutual TLS nor a trusted address
    let node = TestNode::plaintext();
    for config in [Config::node(3), Config::proxy(3)] {
        let config = config.with_require_auth(false);
        let events = raw_session(
            node.addr,
            fleetwire::Connection::new(config, Duration::ZERO),
            |_, _| {},
        );
        assert!(
            matches!(
                events.last(),
                Some(Event::Closed {
                    code: ErrorCode::BAD_HELLO,
                    by_peer: true,
                    ..
                })
            ),
            "{events:?}"
        );
    }
    node.stop();
}

// trace: src.auth, route.reflector
#[test]
fn a_trusted_node_peer_is_accepted_but_never_echoed() {
    use fleetwire::connection::Event;
    // configured trust (a trusted address) accepts role node; an echo node still never
    // answers a node, so two echo nodes cannot bounce a packet forever (§14.6)
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.trusted_peers.push("127.0.0.1".parse().unwrap());
    let node = TestNode::start(opts);
    let config = Config::node(3).with_trust_source(true);
    let events = raw_session(
        node.addr,
        fleetwire::Connection::new(config, Duration::ZERO),
        |c, now| {
            c.send_data(Route::new(1, 0, 0), b"from node 3", SendOptions::default())
                .unwrap();
            c.close(now, "");
        },
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Established { .. })));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Data { .. })),
        "{events:?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(Event::Closed {
                code: ErrorCode::NO_ERROR,
                delivered: Some(1),
                ..
            })
        ),
        "{events:?}"
    );
    node.stop();
}

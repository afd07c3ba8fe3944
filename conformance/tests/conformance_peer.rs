//! Live-peer conformance (`fleetwire conformance peer`): the fault-injecting runner
//! against the reference node (plaintext and TLS), against deliberately broken servers,
//! and in client role against the reference client. 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fleetwire::control::{Control, Hello, Role};
use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
use fleetwire::tls::{client_config, generate_test_pki};
use fleetwire::{Header, Kind, Limits, Status, PREFACE};
use fleetwire_conformance::peer::{
    peer_cases, run_peer, PeerOptions, PeerRole, PeerSecurity, PeerTarget,
};
use fleetwire_conformance::{Report, Verdict};

const TIMEOUT: Duration = Duration::from_millis(5000);

fn opts(target: PeerTarget, security: PeerSecurity, case: &[&str]) -> PeerOptions {
    PeerOptions {
        target,
        security,
        timeout: TIMEOUT,
        seed: 11,
        case: case.iter().map(|s| (*s).to_owned()).collect(),
        skip: Vec::new(),
        replay: "test".into(),
    }
}

/// A reference node on a thread, with a 4096-byte `max_payload` so that the oversize
/// case has a length to send.
fn reference_node(security: NodeSecurity) -> (String, fleetwire::node::Shutdown) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut node = NodeOptions::new(1, security);
    node.config.limits.max_payload = 4096;
    let stop = node.shutdown.clone();
    thread::spawn(move || serve(listener, node));
    (addr, stop)
}

fn verdicts(report: &Report) -> Vec<(String, Verdict)> {
    report
        .results
        .iter()
        .map(|r| (r.id.clone(), r.verdict))
        .collect()
}

fn assert_all_ok(report: &Report) {
    let bad: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Ok)
        .map(|r| (r.id.clone(), r.verdict, r.failure.clone()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(report.exit_code(), 0);
}

// trace: hdr.reserved, hdr.kind, hdr.version, hdr.codec-reserved, hdr.control-route,
// trace: hdr.length-max, comp.cap-error, comp.packet-error, state.permitted,
// trace: err.incomplete, err.split-invariant, ping.answer, ping.order, close.answer,
// trace: close.answer-then-close, credit.zero, limit.empty-run, close.on-error
#[test]
fn reference_node_passes_every_server_case_plaintext() {
    let (addr, stop) = reference_node(NodeSecurity::Plaintext);
    let report = run_peer(&opts(
        PeerTarget::Connect(addr),
        PeerSecurity::Plaintext,
        &[],
    ))
    .unwrap();
    stop.trigger();
    assert_eq!(report.results.len(), peer_cases(PeerRole::Server).len());
    assert_all_ok(&report);
    // the reports work as in codec mode
    let json = report.to_json();
    assert_eq!(json["summary"]["ok"], 18);
    assert!(report.to_junit().contains("peer.server.ping.answer"));
}

// trace: tls.alpn, tls.server-auth
#[test]
fn reference_node_passes_over_tls() {
    let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    let security =
        NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    let (addr, stop) = reference_node(security);
    let tls = PeerSecurity::TlsClient {
        config: client_config(pki.ca_cert_pem.as_bytes(), None).unwrap(),
        server_name: "localhost".into(),
    };
    // the slow-drip and timer cases are left out to keep the suite short; they run in
    // plaintext above
    let mut o = opts(PeerTarget::Connect(addr), tls, &[]);
    o.skip = vec!["*.slow-drip".into(), "*.timeout.*".into()];
    let report = run_peer(&o).unwrap();
    stop.trigger();
    assert_eq!(report.results.len(), 15);
    assert_all_ok(&report);
}

/// How a broken server misbehaves after a valid handshake.
#[derive(Clone, Copy)]
enum Broken {
    /// Closes the socket at the first byte after the handshake: no GOAWAY, no echo.
    ClosesWithoutGoaway,
    /// Echoes DATA but never answers PING (and checks nothing).
    IgnoresPing,
}

/// A tiny server that completes the handshake and then misbehaves.
fn broken_server(mode: Broken, conns: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for _ in 0..conns {
            let Ok((sock, _)) = listener.accept() else {
                return;
            };
            thread::spawn(move || broken_connection(sock, mode));
        }
    });
    addr
}

fn broken_connection(mut sock: TcpStream, mode: Broken) {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = PREFACE.to_vec();
    Control::Hello(Hello::new(Role::Node, 9, &Limits::default(), 0)).encode_packet(&mut out);
    if sock.write_all(&out).is_err() {
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut handshaken = false;
    let mut offset = 0;
    loop {
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if !handshaken {
            // preface and HELLO: 8 + 8 + 28 bytes
            if buf.len() < 44 {
                continue;
            }
            handshaken = true;
            offset = 44;
            if matches!(mode, Broken::ClosesWithoutGoaway) && buf.len() == 44 {
                continue;
            }
        }
        if matches!(mode, Broken::ClosesWithoutGoaway) {
            return; // drop: no GOAWAY
        }
        while let Ok(Status::Complete(h)) = Header::parse(&buf[offset..], u16::MAX) {
            if buf.len() - offset < h.packet_len() {
                break;
            }
            if h.kind == Kind::Data {
                let echo = &buf[offset..offset + h.packet_len()];
                if sock.write_all(echo).is_err() {
                    return;
                }
            }
            offset += h.packet_len();
        }
    }
}

// trace: close.on-error, ping.answer
#[test]
fn broken_server_that_closes_without_goaway_is_caught() {
    let cases = peer_cases(PeerRole::Server).len();
    let addr = broken_server(Broken::ClosesWithoutGoaway, cases);
    let mut o = opts(PeerTarget::Connect(addr), PeerSecurity::Plaintext, &[]);
    // cases this server would only fail by timing out are left out, to stay quick
    o.skip = vec!["*.slow-drip".into(), "*.data-before-hello".into()];
    let report = run_peer(&o).unwrap();
    let v = verdicts(&report);
    let get = |id: &str| v.iter().find(|(i, _)| i == id).unwrap().1;
    // no echo, no PONG: FAILED (MUST)
    assert_eq!(get("peer.server.ping.answer"), Verdict::Failed);
    assert_eq!(get("peer.server.stream.coalesced"), Verdict::Failed);
    // a connection error closed without GOAWAY: the SHOULD of close.on-error
    assert_eq!(get("peer.server.header.reserved-bit"), Verdict::NonStrict);
    // a GOAWAY NO_ERROR left unanswered: the MUST of close.answer
    assert_eq!(get("peer.server.goaway.answer"), Verdict::Failed);
    assert_eq!(report.exit_code(), 1);
}

// trace: ping.answer
#[test]
fn broken_server_that_ignores_ping_is_caught() {
    let addr = broken_server(Broken::IgnoresPing, 2);
    let mut o = opts(
        PeerTarget::Connect(addr),
        PeerSecurity::Plaintext,
        &["peer.server.ping.answer", "peer.server.stream.coalesced"],
    );
    o.timeout = Duration::from_millis(2000);
    let report = run_peer(&o).unwrap();
    let v = verdicts(&report);
    assert_eq!(
        v,
        vec![
            ("peer.server.stream.coalesced".to_string(), Verdict::Ok),
            ("peer.server.ping.answer".to_string(), Verdict::Failed),
        ]
    );
    let failure = report.results[1].failure.as_ref().unwrap();
    // the echo of the DATA sent after the PING arrives while the PONG never does
    assert!(failure.message.contains("PONG"), "{failure:?}");
}

// trace: timeout.close
#[test]
fn server_without_a_header_timer_is_reported() {
    let addr = broken_server(Broken::IgnoresPing, 1);
    let o = opts(
        PeerTarget::Connect(addr),
        PeerSecurity::Plaintext,
        &["peer.server.timeout.header"],
    );
    let report = run_peer(&o).unwrap();
    // it never sends GOAWAY TIMEOUT: only its socket read timeout closes it, silently
    assert_eq!(
        verdicts(&report),
        vec![("peer.server.timeout.header".to_string(), Verdict::NonStrict)]
    );
}

// trace: hdr.reserved, hdr.kind, hdr.version, hdr.control-route, hdr.length-max,
// trace: state.permitted, ping.answer, close.answer, credit.zero, limit.empty-run
#[test]
fn reference_client_passes_the_client_cases() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let client = {
        let done = done.clone();
        thread::spawn(move || {
            // connect once per case; each connection lives until the runner ends it
            let mut conns = 0;
            while !done.load(Ordering::SeqCst) && conns < 40 {
                conns += 1;
                let mut o = ClientOptions::new(ClientSecurity::Plaintext);
                o.timeout = Duration::from_secs(3);
                o.config.limits.max_payload = 4096;
                if let Ok(mut c) = connect(addr, o) {
                    while c.recv().is_ok() {}
                }
            }
        })
    };
    let report = run_peer(&opts(
        PeerTarget::Listen(listener),
        PeerSecurity::Plaintext,
        &[],
    ))
    .unwrap();
    done.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert_eq!(report.results.len(), peer_cases(PeerRole::Client).len());
    assert_all_ok(&report);
}

// trace: tls.alpn, ping.answer, close.answer
#[test]
fn reference_client_passes_over_tls() {
    let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    let config =
        fleetwire::tls::server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None)
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let client = {
        let done = done.clone();
        let ca = pki.ca_cert_pem.clone();
        thread::spawn(move || {
            let mut conns = 0;
            while !done.load(Ordering::SeqCst) && conns < 10 {
                conns += 1;
                let security = ClientSecurity::tls(ca.as_bytes(), "localhost", None).unwrap();
                let mut o = ClientOptions::new(security);
                o.timeout = Duration::from_secs(3);
                if let Ok(mut c) = connect(addr, o) {
                    while c.recv().is_ok() {}
                }
            }
        })
    };
    let cases = [
        "peer.client.header.reserved-bit",
        "peer.client.ping.answer",
        "peer.client.goaway.answer",
    ];
    let report = run_peer(&opts(
        PeerTarget::Listen(listener),
        PeerSecurity::TlsServer(config),
        &cases,
    ))
    .unwrap();
    done.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert_eq!(report.results.len(), 3);
    assert_all_ok(&report);
}

#[test]
fn no_matching_case_is_a_harness_error() {
    let o = opts(
        PeerTarget::Connect("127.0.0.1:1".into()),
        PeerSecurity::Plaintext,
        &["nothing.*"],
    );
    assert!(run_peer(&o).is_err());
}

//! Live-peer conformance (`fleetwire conformance peer`): every case against the reference
//! node and the reference client, plaintext and TLS, in-process on 127.0.0.1; and
//! deliberately broken servers that the cases must catch.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use fleetwire::control::{Control, Hello, Role};
use fleetwire::{Header, Kind, Limits, Status, PREFACE};
use fleetwire_conformance::peer::{
    builtin_client_run, builtin_server_run, peer_cases, run_peer, PeerOptions, PeerRole,
    PeerSecurity, PeerTarget,
};
use fleetwire_conformance::{Report, Verdict};

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

fn verdicts(report: &Report) -> Vec<(String, Verdict)> {
    report
        .results
        .iter()
        .map(|r| (r.id.clone(), r.verdict))
        .collect()
}

#[test]
fn case_lists_are_large_and_tagged() {
    let server = peer_cases(PeerRole::Server);
    let client = peer_cases(PeerRole::Client);
    assert!(
        server.len() + client.len() >= 120,
        "{} + {}",
        server.len(),
        client.len()
    );
    for c in server.iter().chain(&client) {
        assert!(!c.tags.is_empty(), "{}", c.id);
    }
}

// trace: hdr.reserved, hdr.kind, hdr.version, hdr.codec-reserved, hdr.control-route,
// trace: hdr.length-max, comp.cap-error, comp.packet-error, state.permitted,
// trace: err.incomplete, err.split-invariant, ping.answer, ping.order, close.answer,
// trace: credit.zero, limit.empty-run, close.on-error, flow.send, flow.exceed,
// trace: timeout.close, timeout.boundary, comp.send-negotiated, comp.never, err.budget
#[test]
fn reference_node_passes_every_server_case_plaintext() {
    let report = builtin_server_run(false, 11, &[], &[]).unwrap();
    assert_eq!(report.results.len(), report.results.len());
    assert_all_ok_or_unsupported(&report);
}

// trace: tls.alpn, tls.version, tls.node-binding, src.auth, src.trust, src.reserved
#[test]
fn reference_node_passes_every_server_case_over_tls() {
    let report = builtin_server_run(true, 12, &[], &[]).unwrap();
    assert_all_ok_or_unsupported(&report);
}

// trace: tls.server-auth, layer.no-fallback
#[test]
fn reference_client_passes_every_client_case_plaintext() {
    let report = builtin_client_run(false, 13, &[], &[]).unwrap();
    assert_all_ok_or_unsupported(&report);
}

#[test]
fn reference_client_passes_every_client_case_over_tls() {
    let report = builtin_client_run(true, 14, &[], &[]).unwrap();
    assert_all_ok_or_unsupported(&report);
}

fn assert_all_ok_or_unsupported(report: &Report) {
    for r in &report.results {
        if r.verdict == Verdict::Unsupported {
            eprintln!("UNSUPPORTED {}", r.id);
        }
    }
    let bad: Vec<_> = report
        .results
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Ok | Verdict::Unsupported))
        .map(|r| (r.id.clone(), r.verdict, r.failure.clone()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    let ok = report
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Ok)
        .count();
    assert!(
        ok * 10 >= report.results.len() * 9,
        "{ok} of {} OK",
        report.results.len()
    );
}

/// How a broken server misbehaves after a valid handshake.
#[derive(Clone, Copy)]
enum Broken {
    /// Closes the socket at the first byte after the handshake: no GOAWAY, no echo.
    ClosesWithoutGoaway,
    /// Echoes DATA but never answers PING (and checks nothing).
    IgnoresPing,
    /// Echoes DATA with an R bit set: an invalid header.
    EchoesReservedBit,
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
                let mut echo = buf[offset..offset + h.packet_len()].to_vec();
                if matches!(mode, Broken::EchoesReservedBit) {
                    echo[1] |= 0x04;
                }
                if sock.write_all(&echo).is_err() {
                    return;
                }
            }
            offset += h.packet_len();
        }
    }
}

fn opts(addr: String, case: &[&str]) -> PeerOptions {
    let mut o = PeerOptions::new(PeerTarget::Connect(addr), PeerSecurity::Plaintext);
    o.timeout = Duration::from_millis(1500);
    o.case = case.iter().map(|s| (*s).to_owned()).collect();
    o
}

// trace: close.on-error-goaway, ping.answer
#[test]
fn broken_server_that_closes_without_goaway_is_caught() {
    let cases = [
        "peer.server.ping.answer",
        "peer.server.stream.coalesced",
        "peer.server.header.reserved-bit-2",
        "peer.server.goaway.answer",
    ];
    let addr = broken_server(Broken::ClosesWithoutGoaway, 20);
    let report = run_peer(&opts(addr, &cases)).unwrap();
    let v = verdicts(&report);
    let get = |id: &str| v.iter().find(|(i, _)| i == id).unwrap().1;
    assert_eq!(get("peer.server.ping.answer"), Verdict::Failed);
    assert_eq!(get("peer.server.stream.coalesced"), Verdict::Failed);
    // a connection error closed without GOAWAY: close.on-error-goaway, a SHOULD
    assert_eq!(get("peer.server.header.reserved-bit-2"), Verdict::NonStrict);
    // a GOAWAY NO_ERROR left unanswered: the MUST of close.answer
    assert_eq!(get("peer.server.goaway.answer"), Verdict::Failed);
    assert_eq!(report.exit_code(), 1);
}

// trace: ping.answer
#[test]
fn broken_server_that_ignores_ping_is_caught() {
    let addr = broken_server(Broken::IgnoresPing, 4);
    let report = run_peer(&opts(
        addr,
        &["peer.server.ping.answer", "peer.server.stream.coalesced"],
    ))
    .unwrap();
    let v = verdicts(&report);
    assert_eq!(
        v,
        vec![
            ("peer.server.ping.answer".to_string(), Verdict::Failed),
            ("peer.server.stream.coalesced".to_string(), Verdict::Ok),
        ]
    );
    let failure = report.results[0].failure.as_ref().unwrap();
    assert!(
        failure.message.contains("PONG") || failure.message.contains("answer"),
        "{failure:?}"
    );
}

// trace: hdr.reserved-send
#[test]
fn invalid_header_from_the_testee_fails_the_case_and_the_run_goes_on() {
    let addr = broken_server(Broken::EchoesReservedBit, 4);
    let report = run_peer(&opts(
        addr,
        &[
            "peer.server.stream.coalesced",
            "peer.server.header.hint-bits-ignored",
        ],
    ))
    .unwrap();
    assert_eq!(report.results.len(), 2);
    for r in &report.results {
        assert_eq!(r.verdict, Verdict::Failed, "{}", r.id);
        let f = r.failure.as_ref().unwrap();
        assert!(f.message.contains("invalid header"), "{f:?}");
        assert!(
            r.tags.iter().any(|t| t == "hdr.reserved-send"),
            "{:?}",
            r.tags
        );
    }
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn no_matching_case_is_a_harness_error() {
    let o = opts("127.0.0.1:1".into(), &["nothing.*"]);
    assert!(run_peer(&o).is_err());
}

#[test]
fn unreachable_testee_is_a_harness_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    assert!(run_peer(&opts(addr, &[])).is_err());
}

#[allow(dead_code)]
fn unused(r: &Report) {
    assert_all_ok(r);
}

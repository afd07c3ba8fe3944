//! Every live mutant (the reference node with one deliberate bug, `peer::LiveMutant`) is
//! killed by the live cases: at least one case FAILED or NON-STRICT. Prints the kill
//! list per mutant. The mutants run in parallel; each runs every server-role case.

use fleetwire_conformance::peer::{live_kill_matrix, live_kills, LiveMutant, PeerRole};

// trace: hdr.reserved, hdr.version, hdr.kind, hdr.codec-reserved, hdr.control-route,
// trace: hdr.control-flags, hdr.never-compress, src.forbid, credit.zero, state.permitted,
// trace: ctl.malformed, goaway.reason, error.layout, timeout.boundary, hdr.length-max,
// trace: flow.exceed, comp.cap, limit.empty-run, err.budget, timeout.close, ping.answer,
// trace: ping.order, hdr.hint-send, hdr.version-send, hello.reserved, flow.send,
// trace: hdr.length-send, comp.send-negotiated, comp.send-cap, comp.send-format,
// trace: comp.never, goaway.delivered, close.no-data-after, close.answer, close.on-error, close.on-error-goaway,
// trace: error.route, neg.keepalive, close.answer-drain, tls.alpn, layer.no-fallback,
// trace: preface.misconfig, timeout.tls-handshake, tls.version, tls.server-auth,
// trace: limit.empty-run-floor, route.reflector, tls.grouping
#[test]
fn every_live_mutant_is_killed() {
    let matrix = live_kill_matrix(PeerRole::Server, 8);
    assert_eq!(matrix.len(), LiveMutant::ALL.len());
    // the TLS setup, empty-run floor, reflector and record grouping mutants, each by a
    // case written for its tag
    for (m, case) in [
        (
            "live-tls-falls-back-to-plaintext",
            "peer.server.tls.plaintext-preface",
        ),
        (
            "live-plaintext-preface-no-alert",
            "peer.server.tls.plaintext-preface",
        ),
        (
            "live-skips-tls-record",
            "peer.server.preface.tls-record-on-plaintext",
        ),
        (
            "live-tls-handshake-from-first-byte",
            "peer.server.tls.handshake-stall",
        ),
        ("live-tls-handshake-late", "peer.server.tls.handshake-stall"),
        ("live-tls-front-allows-tls12", "peer.server.tls.only-tls12"),
        ("live-tls-record-per-packet", "peer.server.tls.grouping"),
        ("live-tls-tiny-records", "peer.server.tls.grouping"),
        ("live-client-allows-tls12", "peer.client.tls.only-tls12"),
        (
            "live-client-accepts-any-cert",
            "peer.client.tls.server-untrusted-cert",
        ),
        (
            "live-client-ignores-server-name",
            "peer.client.tls.server-wrong-name",
        ),
        (
            "live-client-falls-back-to-plaintext",
            "peer.client.tls.server-plaintext",
        ),
        ("live-empty-run-below-floor", "peer.server.flood.empty-32"),
        ("live-repeats-empty-data", "peer.server.flood.empty-32"),
        (
            "live-echoes-nodes",
            "peer.server.tls.client-cert.node-not-answered",
        ),
        (
            "live-answers-proxy-id",
            "peer.server.tls.client-cert.proxy-id-not-answered",
        ),
    ] {
        let mutant: LiveMutant = m.parse().unwrap();
        let kills = matrix[&mutant].as_ref().unwrap();
        assert!(
            kills.iter().any(|k| k == case),
            "{m} not killed by {case}: {kills:?}"
        );
    }
    let mut survivors = Vec::new();
    for (m, kills) in &matrix {
        match kills {
            Ok(k) if !k.is_empty() => {
                let shown: Vec<&str> = k.iter().take(4).map(String::as_str).collect();
                println!(
                    "{:<40} {:<26} {:>3} cases: {}",
                    m.name(),
                    m.tag(),
                    k.len(),
                    shown.join(" ")
                );
            }
            other => {
                println!("{:<40} {:<26} SURVIVED {other:?}", m.name(), m.tag());
                survivors.push(m.name());
            }
        }
    }
    assert!(
        survivors.is_empty(),
        "surviving live mutants: {survivors:?}"
    );
}

// the client role runs the same filters in front of the reference client
#[test]
fn client_role_kills_sender_mutants() {
    for m in [
        LiveMutant::PongDropped,
        LiveMutant::SendsHintBits,
        LiveMutant::GoawayNotAnswered,
    ] {
        let kills = live_kills(m, PeerRole::Client, &[]).unwrap();
        assert!(
            !kills.is_empty(),
            "{} survived in the client role",
            m.name()
        );
    }
}

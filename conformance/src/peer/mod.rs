//! Live-peer mode (`conformance/PROTOCOL.md` §7): the runner is a fault-injecting
//! Fleetwire peer over a real TCP connection, optionally TLS, to the implementation
//! under test.
//!
//! One connection per case. The runner completes a valid handshake (preface and HELLO
//! both ways), then injects the case's fault and checks the replies, GOAWAY codes,
//! closes and timeouts the spec requires. With [`PeerTarget::Connect`] the testee is a
//! server (cases `peer.server.*`, the runner acts as a client); with
//! [`PeerTarget::Listen`] it is a client that connects once per case (cases
//! `peer.client.*`, the runner acts as a node).
//!
//! A server under test is assumed to echo every DATA packet back to its sender (the
//! reference node does); the echo cases check payloads and order only.
//!
//! ```
//! let ids: Vec<String> = fleetwire_conformance::peer::peer_cases(fleetwire_conformance::peer::PeerRole::Server)
//!     .into_iter().map(|c| c.id).collect();
//! assert!(ids.contains(&"peer.server.ping.answer".to_string()));
//! ```

mod run;
mod wire;

pub use run::{peer_command, run_peer, PeerArgs, PeerOptions, PeerSecurity, PeerTarget};

use super::cases::{tag_levels, Level};
use super::Glob;

/// Which side the implementation under test plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// The testee accepts connections (`--connect`); the runner is a client.
    Server,
    /// The testee connects (`--listen`); the runner is a node.
    Client,
}

impl PeerRole {
    fn name(self) -> &'static str {
        match self {
            PeerRole::Server => "server",
            PeerRole::Client => "client",
        }
    }
}

/// The fault a case injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    ReservedBit,
    UnknownKind,
    BadVersion,
    Codec3,
    ControlRoute,
    Oversize,
    Bomb,
    SecondHello,
    DataBeforeHello,
    Split,
    Coalesced,
    SlowDrip,
    Ping,
    Goaway,
    CreditZero,
    Flood,
    HeaderTimeout,
    HandshakeTimeout,
}

/// One live-peer case.
///
/// ```
/// use fleetwire_conformance::peer::{peer_cases, PeerRole};
/// let c = peer_cases(PeerRole::Client).into_iter().find(|c| c.id == "peer.client.goaway.answer").unwrap();
/// assert_eq!(c.section, "6.4");
/// ```
#[derive(Clone, Debug)]
pub struct PeerCase {
    /// Stable id, `peer.<role>.<name>`.
    pub id: String,
    /// Spec section.
    pub section: &'static str,
    /// Requirement tags checked.
    pub tags: Vec<String>,
    /// The strongest level among the tags.
    pub level: Level,
    /// What the case does.
    pub description: &'static str,
    fault: Fault,
}

type Spec = (
    &'static str,
    Fault,
    &'static str,
    &'static [&'static str],
    &'static str,
);

const CASES: &[Spec] = &[
    ("header.reserved-bit", Fault::ReservedBit, "4.8", &["hdr.reserved", "close.on-error"], "DATA with an R bit set: GOAWAY RESERVED_BIT, close"),
    ("header.unknown-kind", Fault::UnknownKind, "4.3", &["hdr.kind", "close.on-error"], "a packet of kind 7: GOAWAY UNKNOWN_KIND, close"),
    ("header.bad-version", Fault::BadVersion, "4.2", &["hdr.version", "close.on-error"], "DATA with Version 2: GOAWAY UNSUPPORTED_VERSION, close"),
    ("header.codec-3", Fault::Codec3, "4.4", &["hdr.codec-reserved", "close.on-error"], "DATA with Cod = 3: GOAWAY BAD_FLAGS, close"),
    ("header.control-route", Fault::ControlRoute, "4.6", &["hdr.control-route", "close.on-error"], "PING with a non-zero route: GOAWAY BAD_CONTROL, close"),
    ("header.oversize", Fault::Oversize, "4.5", &["hdr.length-max", "close.on-error"], "a header with Payload Length max_payload+1 (no payload): GOAWAY PAYLOAD_TOO_LARGE, close"),
    ("compress.bomb", Fault::Bomb, "9.3", &["comp.cap-error", "comp.packet-error"], "DATA decompressing beyond the announced cap: ERROR with the cap code, then the connection still echoes"),
    ("state.second-hello", Fault::SecondHello, "6.3", &["state.permitted", "close.on-error"], "a second HELLO: GOAWAY UNEXPECTED_PACKET, close"),
    ("state.data-before-hello", Fault::DataBeforeHello, "6.3", &["state.permitted", "close.on-error"], "preface, then DATA instead of HELLO: GOAWAY UNEXPECTED_PACKET, close"),
    ("stream.split-every-byte", Fault::Split, "12.2", &["err.incomplete", "err.split-invariant"], "a valid DATA written one byte per write: echoed, no error"),
    ("stream.coalesced", Fault::Coalesced, "12.2", &["err.split-invariant"], "20 DATA packets in one write: all echoed in order"),
    ("stream.slow-drip", Fault::SlowDrip, "6.5", &["err.incomplete", "timeout.boundary"], "a DATA packet at one byte per 50 ms, within the header timeout: echoed, no error"),
    ("ping.answer", Fault::Ping, "5.3", &["ping.answer", "ping.order"], "PING then DATA in one write: PONG with the same id and timestamp, before the echo"),
    ("goaway.answer", Fault::Goaway, "6.4", &["close.answer", "close.answer-then-close"], "GOAWAY NO_ERROR: answered with GOAWAY NO_ERROR, then close"),
    ("credit.zero", Fault::CreditZero, "5.6", &["credit.zero", "close.on-error"], "CREDIT with both increments zero: GOAWAY BAD_CONTROL, close"),
    ("flood.empty-data", Fault::Flood, "11", &["limit.empty-run", "close.on-error"], "33 empty DATA packets: GOAWAY FLOOD, close"),
    ("timeout.header", Fault::HeaderTimeout, "6.5", &["timeout.close", "close.on-error"], "3 bytes of a header, then nothing: GOAWAY TIMEOUT once the header timer (default 5 s) expires"),
    ("timeout.handshake", Fault::HandshakeTimeout, "6.5", &["timeout.close", "close.on-error"], "the preface and no HELLO: GOAWAY TIMEOUT once the handshake timer (default 10 s) expires"),
];

/// The faults toward a client under test: no echo is expected from a client.
const CLIENT_FAULTS: &[Fault] = &[
    Fault::ReservedBit,
    Fault::UnknownKind,
    Fault::BadVersion,
    Fault::ControlRoute,
    Fault::Oversize,
    Fault::SecondHello,
    Fault::Ping,
    Fault::Goaway,
    Fault::CreditZero,
    Fault::Flood,
];

/// The cases of one role, in run order.
///
/// ```
/// use fleetwire_conformance::peer::{peer_cases, PeerRole};
/// assert_eq!(peer_cases(PeerRole::Server).len(), 18);
/// assert!(peer_cases(PeerRole::Client).iter().all(|c| c.id.starts_with("peer.client.")));
/// ```
pub fn peer_cases(role: PeerRole) -> Vec<PeerCase> {
    let levels = tag_levels();
    CASES
        .iter()
        .filter(|s| role == PeerRole::Server || CLIENT_FAULTS.contains(&s.1))
        .map(|&(name, fault, section, tags, description)| {
            // the level of the case is that of its primary requirement (the first tag);
            // the secondary tags are graded per check (see `expect_error`)
            let level = levels.get(tags[0]).copied().unwrap_or(Level::Must);
            PeerCase {
                id: format!("peer.{}.{name}", role.name()),
                section,
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                level,
                description,
                fault,
            }
        })
        .collect()
}

/// Every live-peer case of both roles and its tags, for `spec/TRACEABILITY.md`.
///
/// ```
/// assert!(fleetwire_conformance::peer::peer_coverage().iter().any(|c| c.case_id == "peer.server.flood.empty-data"));
/// ```
pub fn peer_coverage() -> Vec<crate::vectors::CaseCoverage> {
    [PeerRole::Server, PeerRole::Client]
        .into_iter()
        .flat_map(peer_cases)
        .map(|c| crate::vectors::CaseCoverage {
            case_id: c.id,
            tags: c.tags,
        })
        .collect()
}

/// The cases of `role` selected by the include and exclude globs.
fn select(role: PeerRole, case: &[String], skip: &[String]) -> Vec<PeerCase> {
    let include: Vec<Glob> = case.iter().map(|g| Glob::new(g)).collect();
    let exclude: Vec<Glob> = skip.iter().map(|g| Glob::new(g)).collect();
    peer_cases(role)
        .into_iter()
        .filter(|c| include.is_empty() || include.iter().any(|g| g.matches(&c.id)))
        .filter(|c| !exclude.iter().any(|g| g.matches(&c.id)))
        .collect()
}

//! Live-peer mode (`conformance/PROTOCOL.md` §7): the runner is a fault-injecting
//! Fleetwire peer over a real TCP connection, optionally TLS, to the implementation
//! under test.
//!
//! One connection per case. The runner completes a valid handshake (preface and HELLO
//! both ways), then injects the case's fault and checks the replies, GOAWAY codes,
//! closes and timeouts the spec requires. With [`PeerTarget::Connect`] the testee is a
//! server (cases `peer.server.*`, the runner acts as a client); with
//! [`PeerTarget::Listen`] it is a client that connects once per case (cases
//! `peer.client.*`, the runner acts as a node). The proxy role ([`run_proxy`], cases
//! `peer.proxy.*`) drives a proxy across several connections: the runner plays the
//! nodes behind it and the clients in front of it.
//!
//! The implementation under test, server or client, is assumed to echo every DATA packet
//! back to its sender with the same service, channel and payload (the reference node
//! does); an echo too large for the runner's limits may be compressed or dropped.
//!
//! Every case names its spec section and tags; besides its own expectation, every packet
//! the testee writes goes through the sender checks (header bits, the runner's announced
//! limits, credit, codecs, PONG order, GOAWAY rules), and a violation fails the case
//! that saw it, naming the requirement. The runner's HELLO announces small limits
//! (`max_payload` 1024, `max_decompressed` 4096, `max_ratio` 8, 64 packets and 16 KiB
//! of credit) so that the sender-side bounds apply to every testee.
//!
//! ```
//! let ids: Vec<String> = fleetwire_conformance::peer::peer_cases(fleetwire_conformance::peer::PeerRole::Server)
//!     .into_iter().map(|c| c.id).collect();
//! assert!(ids.contains(&"peer.server.ping.answer".to_string()));
//! ```

mod builtin;
mod catalog;
mod fronts;
mod mutants;
mod pki;
mod proxy;
mod run;
mod session;
mod wire;

pub use builtin::{
    builtin_command, builtin_peer_run, run_client as builtin_client_run,
    run_server as builtin_server_run, BuiltinReport,
};
pub use catalog::Sec;
pub use mutants::{
    killing_cases, live_kill_matrix, live_kills, run_client_mutant, run_server_mutant, LiveMutant,
};
pub use pki::RunnerPki;
pub use proxy::{
    listening_on as proxy_listening_on, proxy_cases, proxy_kill_matrix, run_proxy,
    run_proxy_mutant, ProxyCase, ProxyMutant, ProxyOptions, ProxyTestee, PROXY_RUN_NODES,
};
pub use run::{
    peer_command, run_peer, PeerArgs, PeerOptions, PeerSecurity, PeerTarget, TesteeTimers,
};

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
    /// `"server"` or `"client"`, as in the case ids.
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::peer::PeerRole::Client.name(), "client");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            PeerRole::Server => "server",
            PeerRole::Client => "client",
        }
    }
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
    /// Plaintext and TLS, or only one of them.
    pub security: Sec,
    run: catalog::CaseFn,
}

/// The cases of one role, plaintext and TLS, in run order.
///
/// ```
/// use fleetwire_conformance::peer::{peer_cases, PeerRole};
/// assert!(peer_cases(PeerRole::Server).len() >= 60);
/// assert!(peer_cases(PeerRole::Client).iter().all(|c| c.id.starts_with("peer.client.")));
/// ```
pub fn peer_cases(role: PeerRole) -> Vec<PeerCase> {
    let levels = tag_levels();
    catalog::catalogue()
        .into_iter()
        .filter(|d| match d.roles {
            catalog::Roles::Both => true,
            catalog::Roles::Server => role == PeerRole::Server,
            catalog::Roles::Client => role == PeerRole::Client,
        })
        .map(|d| {
            // the level of the case is that of its primary requirement (the first tag);
            // the secondary tags are graded per check
            let level = levels.get(d.tags[0]).copied().unwrap_or(Level::Must);
            PeerCase {
                id: format!("peer.{}.{}", role.name(), d.name),
                section: d.section,
                tags: d.tags.iter().map(|t| (*t).to_owned()).collect(),
                level,
                description: d.desc,
                security: d.sec,
                run: d.run,
            }
        })
        .collect()
}

/// Every live-peer case of both roles and its tags, for `spec/TRACEABILITY.md`.
///
/// ```
/// assert!(fleetwire_conformance::peer::peer_coverage().iter().any(|c| c.case_id == "peer.server.flood.empty-over-limit"));
/// ```
pub fn peer_coverage() -> Vec<crate::vectors::CaseCoverage> {
    [PeerRole::Server, PeerRole::Client]
        .into_iter()
        .flat_map(peer_cases)
        .map(|c| crate::vectors::CaseCoverage {
            case_id: c.id,
            tags: c.tags,
        })
        .chain(
            proxy_cases()
                .into_iter()
                .map(|c| crate::vectors::CaseCoverage {
                    case_id: c.id,
                    tags: c.tags,
                }),
        )
        .collect()
}

/// The cases of `role` for a plaintext or TLS run, selected by the include and exclude
/// globs.
fn select(role: PeerRole, tls: bool, case: &[String], skip: &[String]) -> Vec<PeerCase> {
    let include: Vec<Glob> = case.iter().map(|g| Glob::new(g)).collect();
    let exclude: Vec<Glob> = skip.iter().map(|g| Glob::new(g)).collect();
    peer_cases(role)
        .into_iter()
        .filter(|c| match c.security {
            Sec::Any => true,
            Sec::Plain => !tls,
            Sec::Tls => tls,
        })
        .filter(|c| include.is_empty() || include.iter().any(|g| g.matches(&c.id)))
        .filter(|c| !exclude.iter().any(|g| g.matches(&c.id)))
        .collect()
}

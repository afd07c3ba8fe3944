//! The proxy role of the live peer (`conformance/PROTOCOL.md` §7.1): the runner plays
//! the nodes behind a proxy under test and several clients in front of it, over
//! plaintext TCP, and checks the proxy through what it forwards and what it answers.
//!
//! Per case the runner listens as node 2 and node 3, starts the proxy with those two
//! routes ([`ProxyTestee`]: the reference proxy in-process, a mutant of it, or a
//! command line), accepts the proxy's links (its HELLO must announce role proxy),
//! and connects its clients to the proxy's client-facing address. The runner's nodes
//! honour the proxy's stamped sources (the trusted link of §7.4 is the runner's own
//! configuration) and answer a client on the link its packet came from.
//!
//! The cases cover what only shows across several connections: a client id is never a
//! node's (§14.6), packets queued for a link that closes are answered UNREACHABLE
//! (§7.3), a link's queue and the answers are shared among clients (§7.3), a departed
//! client's answers do not count against a link's error budget (§12.3), the proxy
//! polices its own clients (§11), and a full input budget fails no client within its
//! credit and still lets the others be read (§11).

mod ep;
mod testee;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use self::ep::{client_hello, error_of, node_hello, Ep, Seen};
pub use self::testee::{listening_on, ProxyMutant, ProxyTestee};
use super::session::{must, should, unsupported, Outcome};
use crate::cases::{tag_levels, Level};
use crate::report::Report;
use crate::runner::{CaseResult, Failure, Verdict};
use crate::Glob;
use fleetwire::control::Role;
use fleetwire::{ErrorCode, Header, Kind, Packet, Route};

/// The node ids the runner plays behind the proxy.
pub const PROXY_RUN_NODES: [u16; 2] = [2, 3];

/// Service of the runner's ordinary DATA packets.
const SVC: u8 = 7;
/// Service of the packet whose fate a fair-share case checks.
const SVC_PROBE: u8 = 8;

/// A proxy-role run.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// The proxy under test.
    pub testee: ProxyTestee,
    /// How long each expectation waits.
    pub timeout: Duration,
    /// Seed of the payload bytes.
    pub seed: u64,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// The command that replays the run, for the report.
    pub replay: String,
    /// The proxy's `max_packet_errors` on client connections (§12.3; default 16).
    pub max_packet_errors: u32,
    /// The proxy's `max_empty_run` on client connections (§11; default 32).
    pub max_empty_run: u32,
}

impl ProxyOptions {
    /// Options with the spec's defaults for the proxy's limits.
    ///
    /// ```
    /// use fleetwire_conformance::peer::{ProxyOptions, ProxyTestee};
    /// let o = ProxyOptions::new(ProxyTestee::Reference);
    /// assert_eq!((o.max_packet_errors, o.max_empty_run), (16, 32));
    /// ```
    pub fn new(testee: ProxyTestee) -> ProxyOptions {
        ProxyOptions {
            testee,
            timeout: Duration::from_secs(3),
            seed: 1,
            case: Vec::new(),
            skip: Vec::new(),
            replay: String::new(),
            max_packet_errors: 16,
            max_empty_run: 32,
        }
    }
}

type CaseFn = fn(&mut Ctx<'_>) -> Outcome;

/// One proxy-role case.
///
/// ```
/// let c = fleetwire_conformance::peer::proxy_cases();
/// assert!(c.iter().all(|c| c.id.starts_with("peer.proxy.")));
/// ```
#[derive(Clone, Debug)]
pub struct ProxyCase {
    /// Stable id, `peer.proxy.<name>`.
    pub id: String,
    /// Spec section.
    pub section: &'static str,
    /// Requirement tags checked (the first is the case's level).
    pub tags: Vec<String>,
    /// The level of the first tag.
    pub level: Level,
    /// What the case does.
    pub description: &'static str,
    run: CaseFn,
}

struct Def {
    name: &'static str,
    section: &'static str,
    tags: &'static [&'static str],
    desc: &'static str,
    run: CaseFn,
}

fn catalogue() -> Vec<Def> {
    vec![
        Def {
            name: "client-ids.not-a-node",
            section: "14.6",
            tags: &["route.client-ids", "src.stamp"],
            desc: "four clients connect: no id the proxy attributes (HELLO peer_id, the stamped \
                   Source Node) is a routed node's id or another connected client's, and each \
                   node answer to a stamped source reaches that client",
            run: client_ids_not_a_node,
        },
        Def {
            name: "egress-closed.queued-answered",
            section: "7.3",
            tags: &["route.egress-closed", "route.no-route"],
            desc: "node 2 grants 2 packets of credit and closes its link with 10 more queued \
                   at the proxy: each queued DATA is answered ERROR UNREACHABLE to its client, \
                   and a DATA for node 2 after the close too (its route exists, its connection \
                   is closed)",
            run: egress_closed,
        },
        Def {
            name: "fair-share.link-queue",
            section: "7.3",
            tags: &["route.fair-share"],
            desc: "node 2 stops granting credit and one client floods it until the proxy \
                   stops taking its packets: a second client's packet is not answered \
                   UNREACHABLE and reaches node 2 once it reads",
            run: fair_share_link,
        },
        Def {
            name: "fair-share.answers",
            section: "7.3",
            tags: &["route.fair-share"],
            desc: "node 2 sends 300 answers to a client that reads nothing, then one to a client \
                   that reads: that answer arrives and is not refused UNREACHABLE",
            run: fair_share_answers,
        },
        Def {
            name: "gone-client.no-route-not-counted",
            section: "12.3",
            tags: &["err.budget-gone-client"],
            desc: "a client leaves; node 2 then sends max_packet_errors + 4 answers to its id: \
                   the proxy answers NO_ROUTE but does not close the link, which still \
                   answers PING and carries a new client's round trip",
            run: gone_client,
        },
        Def {
            name: "polices.forwarded-connection-error",
            section: "11",
            tags: &["limit.proxy-polices", "close.on-error-goaway"],
            desc: "node 2 sends ERROR FLOOD routed to a client: the proxy forwards it, then \
                   closes that client (GOAWAY FLOOD), keeps the link and the other client",
            run: polices_forwarded_error,
        },
        Def {
            name: "polices.empty-run",
            section: "11",
            tags: &["limit.proxy-polices", "limit.empty-run"],
            desc: "a client sends max_empty_run + 1 empty DATA for node 2: the proxy closes \
                   it with FLOOD, keeps the link and the other client",
            run: polices_empty_run,
        },
        Def {
            name: "polices.error-budget",
            section: "11",
            tags: &["limit.proxy-polices", "err.budget"],
            desc: "a client sends max_packet_errors + 1 DATA for node 0xFFFF (NO_ROUTE each): \
                   the proxy closes it with TOO_MANY_ERRORS, keeps the link and the other client",
            run: polices_error_budget,
        },
        Def {
            name: "global-budget.within-credit",
            section: "11",
            tags: &["limit.global-budget"],
            desc: "node 2 stops reading and four clients each send the proxy their whole \
                   credit for it: none is failed with FLOW_CONTROL, a fifth client whose \
                   packets do not wait is still read (its PING answered), and it reaches \
                   node 2 once node 2 reads again",
            run: global_budget,
        },
    ]
}

/// Every proxy-role case, in run order.
///
/// ```
/// let c = fleetwire_conformance::peer::proxy_cases();
/// assert!(c.iter().any(|c| c.tags.iter().any(|t| t == "route.egress-closed")));
/// ```
pub fn proxy_cases() -> Vec<ProxyCase> {
    let levels = tag_levels();
    catalogue()
        .into_iter()
        .map(|d| ProxyCase {
            id: format!("peer.proxy.{}", d.name),
            section: d.section,
            tags: d.tags.iter().map(|t| (*t).to_owned()).collect(),
            level: levels.get(d.tags[0]).copied().unwrap_or(Level::Must),
            description: d.desc,
            run: d.run,
        })
        .collect()
}

pub(in crate::peer) fn select(case: &[String], skip: &[String]) -> Vec<ProxyCase> {
    let include: Vec<Glob> = case.iter().map(|g| Glob::new(g)).collect();
    let exclude: Vec<Glob> = skip.iter().map(|g| Glob::new(g)).collect();
    proxy_cases()
        .into_iter()
        .filter(|c| include.is_empty() || include.iter().any(|g| g.matches(&c.id)))
        .filter(|c| !exclude.iter().any(|g| g.matches(&c.id)))
        .collect()
}

/// Runs the selected proxy-role cases; `Err` when the harness could not run.
///
/// # Errors
///
/// No case selected, or the command line of [`ProxyTestee::Command`] does not start a
/// proxy that prints its address.
pub fn run_proxy(opts: &ProxyOptions) -> Result<Report, String> {
    let selected = select(&opts.case, &opts.skip);
    if selected.is_empty() {
        return Err("no case matches --case/--skip".into());
    }
    if let ProxyTestee::Command(_) = &opts.testee {
        // a command that does not start a proxy is a harness error, not 9 cases
        // UNSUPPORTED
        let nodes: Vec<TcpListener> = PROXY_RUN_NODES
            .iter()
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let routes: Vec<(u16, SocketAddr)> = PROXY_RUN_NODES
            .iter()
            .zip(&nodes)
            .map(|(&id, l)| l.local_addr().map(|a| (id, a)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        drop(opts.testee.start(&routes)?);
    }
    let start = Instant::now();
    let mut results = Vec::new();
    for (i, case) in selected.iter().enumerate() {
        let t0 = Instant::now();
        let mut ctx = Ctx {
            opts,
            seed: opts.seed.wrapping_add(i as u64),
        };
        let outcome = (case.run)(&mut ctx);
        let (verdict, failure) = match outcome {
            Outcome::Ok => (Verdict::Ok, None),
            Outcome::Unsupported(why) => {
                eprintln!("UNSUPPORTED {}: {why}", case.id);
                (Verdict::Unsupported, None)
            }
            Outcome::Deviation {
                level,
                message,
                expected,
                actual,
            } => (
                Verdict::for_deviation(level),
                Some(Failure {
                    message,
                    request: json!({"case": case.id, "description": case.description}),
                    expected: json!(expected),
                    actual: json!(actual),
                    ..Failure::default()
                }),
            ),
        };
        results.push(CaseResult {
            id: case.id.clone(),
            section: case.section.into(),
            tags: case.tags.clone(),
            level: case.level,
            claim: "peer".into(),
            verdict,
            expected_failure: None,
            failure,
            duration: t0.elapsed(),
        });
    }
    let implementation = match &opts.testee {
        ProxyTestee::Reference => "the reference proxy (in-process)".to_owned(),
        ProxyTestee::Mutant(m) => format!("proxy mutant {}", m.name()),
        ProxyTestee::Command(c) => format!("proxy: {c}"),
    };
    Ok(Report {
        implementation,
        version: "fleetwire/1".into(),
        seed: opts.seed,
        replay: opts.replay.clone(),
        results,
        stale: Vec::new(),
        duration: start.elapsed(),
        restarts: 0,
    })
}

// ---- the rig: nodes behind the proxy, clients in front ----

struct Ctx<'a> {
    opts: &'a ProxyOptions,
    seed: u64,
}

impl Ctx<'_> {
    fn deadline(&self) -> Instant {
        Instant::now() + self.opts.timeout
    }

    fn bytes(&self, len: usize, salt: u64) -> Vec<u8> {
        let mut rng = crate::Rng::new(self.seed ^ salt.wrapping_mul(0x9E37_79B9));
        (0..len).map(|_| rng.byte()).collect()
    }
}

struct Node {
    id: u16,
    listener: Option<TcpListener>,
    links: Vec<Ep>,
    credit: (u32, u32),
    auto: bool,
}

/// One case's world: the proxy, the runner's nodes and clients.
struct Rig {
    nodes: Vec<Node>,
    clients: Vec<Ep>,
    client_addr: SocketAddr,
    timeout: Duration,
    // dropped last: the proxy stops after the runner's endpoints closed
    _proxy: testee::Started,
}

type R<T = ()> = Result<T, Outcome>;

fn harness(e: impl Into<String>) -> Outcome {
    unsupported(format!("harness: {}", e.into()))
}

impl Rig {
    /// Listens as the runner's nodes (node 2 granting `node2_credit`, auto-granting
    /// more when `node2_auto`), starts the proxy and accepts its links.
    fn new(ctx: &Ctx<'_>, node2_credit: (u32, u32), node2_auto: bool) -> R<Rig> {
        let mut nodes = Vec::new();
        let mut routes = Vec::new();
        for id in PROXY_RUN_NODES {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| harness(e.to_string()))?;
            routes.push((id, l.local_addr().map_err(|e| harness(e.to_string()))?));
            l.set_nonblocking(true)
                .map_err(|e| harness(e.to_string()))?;
            let (credit, auto) = if id == 2 {
                (node2_credit, node2_auto)
            } else {
                ((1024, 1 << 20), true)
            };
            nodes.push(Node {
                id,
                listener: Some(l),
                links: Vec::new(),
                credit,
                auto,
            });
        }
        let proxy = ctx.opts.testee.start(&routes).map_err(harness)?;
        let mut rig = Rig {
            nodes,
            clients: Vec::new(),
            client_addr: proxy.client_addr,
            timeout: ctx.opts.timeout,
            _proxy: proxy,
        };
        // every node gets its link; a proxy may open more than one
        let deadline = Instant::now() + ctx.opts.timeout.max(Duration::from_secs(3));
        loop {
            rig.accept_links()?;
            if rig.nodes.iter().all(|n| !n.links.is_empty()) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(n) = rig.nodes.iter().find(|n| n.links.is_empty()) {
            return Err(must(
                format!("the proxy did not connect to node {} (its route)", n.id),
                "a connection to every route's address (§7.3)",
                "none",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
        rig.accept_links()?;
        Ok(rig)
    }

    fn accept_links(&mut self) -> R {
        let timeout = self.timeout;
        for n in &mut self.nodes {
            let Some(l) = &n.listener else { continue };
            while let Ok((sock, _)) = l.accept() {
                let _ = sock.set_nonblocking(false);
                let name = format!("node {} link {}", n.id, n.links.len() + 1);
                let ep = Ep::start(
                    name,
                    sock,
                    &node_hello(n.id, n.credit.0, n.credit.1),
                    n.auto,
                    Instant::now() + timeout,
                )
                .map_err(|e| must(e, "the proxy's preface and HELLO on its link", "none"))?;
                let h = ep.hello();
                if h.role != Role::Proxy {
                    return Err(must(
                        format!(
                            "the proxy's link to node {} announces role {}",
                            n.id,
                            h.role.name()
                        ),
                        "role proxy (§5.2)",
                        h.role.name(),
                    ));
                }
                n.links.push(ep);
            }
        }
        Ok(())
    }

    fn node(&self, id: u16) -> &Node {
        let i = self.nodes.iter().position(|n| n.id == id).unwrap_or(0);
        &self.nodes[i]
    }

    /// Connects a client; returns its index.
    fn client(&mut self, credit: (u32, u32), auto: bool) -> R<usize> {
        let i = self.clients.len();
        let sock = TcpStream::connect(self.client_addr)
            .map_err(|e| harness(format!("connect to the proxy: {e}")))?;
        let ep = Ep::start(
            format!("client {}", (b'a' + i as u8) as char),
            sock,
            &client_hello(credit.0, credit.1),
            auto,
            Instant::now() + self.timeout,
        )
        .map_err(|e| must(e, "the proxy's preface and HELLO to a client", "none"))?;
        self.clients.push(ep);
        Ok(i)
    }

    fn std_client(&mut self) -> R<usize> {
        self.client((1024, 1 << 20), true)
    }

    /// Waits for a DATA packet at node `id` (any link) matching `pred`: the link's
    /// index and the packet.
    fn node_take(
        &mut self,
        id: u16,
        deadline: Instant,
        pred: impl Fn(&Packet) -> bool,
    ) -> Option<(usize, Packet)> {
        loop {
            let _ = self.accept_links();
            let n = self.node(id);
            for (i, l) in n.links.iter().enumerate() {
                let slice = (Instant::now() + Duration::from_millis(5)).min(deadline);
                if let Some(p) = l.take(slice, |p| p.header.kind == Kind::Data && pred(p)) {
                    return Some((i, p));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Client `c` sends a DATA to node `node`, the node answers it to the stamped
    /// source on the link it came from, and the client gets the answer. Returns the
    /// stamped source and the link's index.
    fn round_trip(&mut self, c: usize, node: u16, payload: &[u8]) -> R<(u16, usize)> {
        let d = Instant::now() + self.timeout;
        let name = self.clients[c].name.clone();
        let sent = self.clients[c]
            .send_data(Route::new(node, SVC, 1), payload, d)
            .map_err(|e| must(e, "the client's connection open", "closed"))?;
        if !sent {
            return Err(must(
                format!("{name}: the proxy granted no credit"),
                "credit to send one DATA (§8)",
                "none",
            ));
        }
        let Some((link, p)) = self.node_take(node, d, |p| &p.payload[..] == payload) else {
            return Err(must(
                format!("{name}'s DATA for node {node} was not forwarded"),
                "the packet on the proxy's link to that node (§7.3)",
                "nothing",
            ));
        };
        let Some(source) = p.header.source else {
            return Err(must(
                format!("{name}'s DATA arrived at node {node} without a Source Node"),
                "X = 1 and the client's id (§7.4 [[src.stamp]])",
                "X = 0",
            ));
        };
        let answer: Vec<u8> = payload.iter().rev().copied().collect();
        let ok = self.node(node).links[link]
            .send_data(Route::new(source, SVC, 1), &answer, d)
            .map_err(|e| must(e, "the link open", "closed"))?;
        if !ok {
            return Err(must(
                format!("the proxy granted node {node} no credit on its link"),
                "credit to answer (§8)",
                "none",
            ));
        }
        if self.clients[c]
            .take(d, |p| {
                p.header.kind == Kind::Data && p.payload[..] == answer[..]
            })
            .is_none()
        {
            return Err(must(
                format!("node {node}'s answer to source {source} did not reach {name}"),
                "the answer routed back to the client the proxy stamped (§7.3, §7.4)",
                "nothing",
            ));
        }
        Ok((source, link))
    }

    /// The link is open, answers PING, and a new client's round trip through it works.
    fn expect_link_kept(&mut self, node: u16, link: usize, why: &str, payload: &[u8]) -> R {
        let d = Instant::now() + self.timeout;
        let l = &self.node(node).links[link];
        let (goaway, closed) = {
            let s = l.state();
            (s.goaway, s.closed)
        };
        if goaway.is_some() || closed {
            return Err(must(
                format!("the proxy closed its link to node {node} {why}"),
                "the link kept open",
                format!(
                    "{}{}",
                    goaway.map_or(String::new(), |c| format!("GOAWAY {c}, ")),
                    if closed { "closed" } else { "open" }
                ),
            ));
        }
        if !l.alive(d) {
            return Err(must(
                format!("the proxy's link to node {node} stopped answering PING {why}"),
                "PONG on the link",
                "none",
            ));
        }
        let c = self.std_client()?;
        self.round_trip(c, node, payload).map(|_| ())
    }

    /// DATA packets node `id` received on all its links.
    fn node_data(&self, id: u16) -> u64 {
        self.node(id).links.iter().map(|l| l.state().data).sum()
    }
}

fn step(r: R) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(o) => o,
    }
}

// ---- the cases (spec text quoted in each) ----

/// §14.6 `[[route.client-ids]]`: "A proxy MUST NOT attribute to a client (§5.2
/// `peer_id`) an id that its routing table names as a node, nor the id of another
/// client it serves". §7.4 `[[src.stamp]]`: the Source Node it stamps is the id it
/// attributed.
fn client_ids_not_a_node(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        let mut ids: Vec<(u16, u16)> = Vec::new(); // (peer_id, stamped source)
        for i in 0..4u64 {
            let c = rig.std_client()?;
            let peer_id = rig.clients[c].hello().peer_id;
            let payload = ctx.bytes(32, 100 + i);
            let (source, _) = rig.round_trip(c, 2, &payload)?;
            if peer_id != 0 && source != peer_id {
                return Err(must(
                    format!(
                        "client {c}: HELLO peer_id {peer_id}, but its DATA is stamped {source}"
                    ),
                    "the stamped Source Node is the id attributed (§7.4 [[src.stamp]])",
                    source.to_string(),
                ));
            }
            ids.push((peer_id, source));
        }
        for (i, &(peer_id, source)) in ids.iter().enumerate() {
            for id in [peer_id, source] {
                if PROXY_RUN_NODES.contains(&id) {
                    return Err(must(
                        format!("client {i} was attributed id {id}, which the proxy routes to node {id}"),
                        "a client id that names no node of the routing table (§14.6 [[route.client-ids]])",
                        id.to_string(),
                    ));
                }
            }
            if let Some(j) = ids[..i].iter().position(|&(_, s)| s == source && s != 0) {
                return Err(must(
                    format!("clients {j} and {i}, both connected, hold the same id {source}"),
                    "a different id for each client the proxy serves (§14.6 [[route.client-ids]])",
                    format!("{source} twice"),
                ));
            }
        }
        Ok(())
    })())
}

/// §7.3 `[[route.egress-closed]]`: "when an egress connection closes while DATA
/// packets forwarded to it are still queued (not yet written to that connection), the
/// proxy MUST answer each of them with ERROR UNREACHABLE (0x0106) to its source, on the
/// connection it arrived on (§5.7) ... Packets already written to the closed connection
/// are not answered". §7.3 `[[route.no-route]]`: "a proxy whose route exists but whose
/// next hop cannot take the packet (closed ...) reports UNREACHABLE".
#[allow(clippy::too_many_lines)]
fn egress_closed(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        // node 2 lets the proxy write two packets, then nothing
        let mut rig = Rig::new(ctx, (2, 16_384), false)?;
        let c = rig.std_client()?;
        let me = rig.clients[c].hello().peer_id;
        let d = ctx.deadline();
        const SENT: u8 = 12;
        for ch in 0..SENT {
            let payload = ctx.bytes(100, u64::from(ch));
            if !rig.clients[c]
                .send_data(Route::new(2, SVC, ch), &payload, d)
                .map_err(|e| must(e, "the client open", "closed"))?
            {
                return Err(harness("the proxy granted the client too little credit"));
            }
        }
        // what node 2 was written before it closes
        while rig.node_data(2) < 2 && Instant::now() < d {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut delivered: Vec<u8> = Vec::new();
        for l in &rig.node(2).links {
            for p in l.drain(|p| p.header.kind == Kind::Data) {
                delivered.push(p.header.route.channel);
            }
        }
        // node 2 goes away: its listener first (no reconnection), then its links
        let node = &mut rig.nodes[0];
        node.listener = None;
        for l in &node.links {
            l.abort();
        }
        let queued: Vec<u8> = (0..SENT).filter(|ch| !delivered.contains(ch)).collect();
        let d = ctx.deadline();
        let client = &rig.clients[c];
        client.wait_until(d, |s| {
            s.inbox
                .iter()
                .filter(|p| p.header.kind == Kind::Error)
                .count()
                >= queued.len()
        });
        let errors = client.drain(|p| p.header.kind == Kind::Error);
        let mut answered: Vec<u8> = Vec::new();
        for p in &errors {
            let Some((code, h)) = error_of(p) else {
                return Err(must(
                    "an ERROR to the client is malformed",
                    "code, the discarded packet's header (§5.7)",
                    format!("{:02x?}", &p.payload[..]),
                ));
            };
            if h.route.node != 2 || h.route.service != SVC {
                continue;
            }
            if code != ErrorCode::UNREACHABLE {
                return Err(must(
                    format!("a packet queued for node 2's closed link was answered {code}"),
                    "ERROR UNREACHABLE (0x0106) for each (§7.3 [[route.egress-closed]])",
                    code.to_string(),
                ));
            }
            if me != 0 && p.header.route.node != me {
                return Err(must(
                    format!("the UNREACHABLE is routed to {}", p.header.route.node),
                    format!("routed to the packet's source {me} (§5.7)"),
                    p.header.route.node.to_string(),
                ));
            }
            answered.push(h.route.channel);
        }
        let written_and_answered: Vec<u8> = answered
            .iter()
            .copied()
            .filter(|ch| delivered.contains(ch))
            .collect();
        if !written_and_answered.is_empty() {
            return Err(must(
                format!("packets node 2 received were answered UNREACHABLE too: channels {written_and_answered:?}"),
                "no answer for a packet written to the closed connection (§7.3)",
                format!("{written_and_answered:?}"),
            ));
        }
        let silent: Vec<u8> = queued
            .iter()
            .copied()
            .filter(|ch| !answered.contains(ch))
            .collect();
        if !silent.is_empty() {
            return Err(must(
                format!(
                    "node 2 received {} of {SENT} packets and closed; {} queued packets were \
                     discarded without an answer (channels {silent:?})",
                    delivered.len(),
                    silent.len()
                ),
                "ERROR UNREACHABLE to the client for each packet not written (§7.3 [[route.egress-closed]])",
                format!("{} UNREACHABLE", answered.len()),
            ));
        }
        if answered.len() > queued.len() {
            return Err(must(
                "a queued packet was answered more than once",
                "one ERROR per packet",
                format!("{answered:?}"),
            ));
        }
        // a DATA for node 2 now: the route exists, its connection is closed
        std::thread::sleep(Duration::from_millis(100));
        let d = ctx.deadline();
        let payload = ctx.bytes(50, 99);
        rig.clients[c]
            .send_data(Route::new(2, SVC, 200), &payload, d)
            .map_err(|e| must(e, "the client open", "closed"))?;
        let Some(p) = rig.clients[c].take(d, |p| p.header.kind == Kind::Error) else {
            return Err(must(
                "a DATA for node 2 after its link closed was not answered",
                "ERROR UNREACHABLE (§7.3 [[route.no-route]]: a route whose connection is closed)",
                "nothing",
            ));
        };
        match error_of(&p) {
            Some((ErrorCode::UNREACHABLE, h)) if h.route.channel == 200 => Ok(()),
            other => Err(must(
                "a DATA for node 2 after its link closed was answered otherwise",
                "ERROR UNREACHABLE (§7.3 [[route.no-route]])",
                format!("{:?}", other.map(|(c, _)| c)),
            )),
        }
    })())
}

/// §7.3 `[[route.fair-share]]`: "the packets of a client that already has packets
/// waiting fill the queue only up to a share of it, leaving room for clients that have
/// none; a client's packet that finds no room waits at the proxy ... instead of being
/// answered UNREACHABLE because other clients' packets fill the queue."
fn fair_share_link(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        // node 2 takes one packet and grants nothing more until told
        let mut rig = Rig::new(ctx, (1, 16_384), false)?;
        let f = rig.std_client()?;
        let q = rig.std_client()?;
        let payload = ctx.bytes(1000, 1);
        let mut sent = 0u32;
        let limit = 20_000;
        // a proxy that stops reading the flooding client blocks its writes
        rig.clients[f].set_write_timeout(Duration::from_millis(500));
        while sent < limit {
            let d = Instant::now() + Duration::from_millis(300);
            match rig.clients[f].send_data(Route::new(2, SVC, sent as u8), &payload, d) {
                Ok(true) => {}
                // the proxy takes no more of its packets: no credit back, or its socket
                // not read (the client's stream is abandoned)
                Ok(false) | Err(_) => break,
            }
            sent += 1;
            // a proxy that refuses its packets has a full queue as well
            if rig.clients[f]
                .state()
                .inbox
                .iter()
                .any(|p| p.header.kind == Kind::Error)
            {
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
        }
        if sent >= limit {
            return Err(unsupported(format!(
                "the proxy kept taking one client's packets for a link that takes none \
                 ({limit} x 1000 bytes): its queue could not be filled"
            )));
        }
        let d = ctx.deadline();
        let probe = ctx.bytes(64, 2);
        if !rig.clients[q]
            .send_data(Route::new(2, SVC_PROBE, 1), &probe, d)
            .map_err(|e| must(e, "the second client open", "closed"))?
        {
            return Err(harness("the proxy granted the second client no credit"));
        }
        let refused = |rig: &Rig| {
            rig.clients[q]
                .state()
                .inbox
                .iter()
                .filter_map(error_of)
                .any(|(code, h)| code == ErrorCode::UNREACHABLE && h.route.service == SVC_PROBE)
        };
        std::thread::sleep(Duration::from_millis(400));
        if refused(&rig) {
            return Err(should(
                format!(
                    "a client flooded node 2's link ({sent} packets of 1000 bytes); the other \
                     client's single packet was answered UNREACHABLE"
                ),
                "room kept for a client with no packets waiting (§7.3 [[route.fair-share]])",
                "UNREACHABLE",
            ));
        }
        // node 2 reads again
        for l in &rig.node(2).links {
            l.state().auto_credit = true;
            let _ = l.grant(1 << 20, 1 << 30);
        }
        let d = Instant::now() + rig.timeout * 2;
        if rig
            .node_take(2, d, |p| p.header.route.service == SVC_PROBE)
            .is_none()
        {
            return Err(should(
                "the second client's packet never reached node 2 after it read again",
                "the packet forwarded (§7.3 [[route.fair-share]])",
                if refused(&rig) {
                    "UNREACHABLE"
                } else {
                    "nothing"
                },
            ));
        }
        Ok(())
    })())
}

/// §7.3 `[[route.fair-share]]`: "Likewise, answers queued for clients that do not read
/// them leave room for the answers to clients that do."
fn fair_share_answers(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        // f grants 4 packets and reads nothing more
        let f = rig.client((4, 16_384), false)?;
        let q = rig.std_client()?;
        let (src_f, link_f) = rig.round_trip(f, 2, &ctx.bytes(16, 1))?;
        let (src_q, link_q) = rig.round_trip(q, 2, &ctx.bytes(16, 2))?;
        let payload = ctx.bytes(1000, 3);
        let link = &rig.node(2).links[link_f];
        for i in 0..300u32 {
            let d = Instant::now() + Duration::from_millis(300);
            match link.send_data(Route::new(src_f, SVC, i as u8), &payload, d) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(must(e, "the link open", "closed")),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let answer = ctx.bytes(1000, 4);
        let d = ctx.deadline();
        let ok = rig.node(2).links[link_q]
            .send_data(Route::new(src_q, SVC_PROBE, 1), &answer, d)
            .map_err(|e| must(e, "the link open", "closed"))?;
        if !ok {
            return Err(harness("the proxy granted node 2 no credit for the answer"));
        }
        let got = rig.clients[q].take(d, |p| {
            p.header.kind == Kind::Data && p.payload[..] == answer[..]
        });
        let refused = rig.node(2).links.iter().any(|l| {
            l.state()
                .inbox
                .iter()
                .filter_map(error_of)
                .any(|(code, h)| code == ErrorCode::UNREACHABLE && h.route.node == src_q)
        });
        if got.is_none() || refused {
            return Err(should(
                "300 answers queued for a client that reads nothing took the room of the \
                 answer to a client that reads",
                "the answer delivered (§7.3 [[route.fair-share]])",
                if refused {
                    "UNREACHABLE to node 2"
                } else {
                    "nothing"
                },
            ));
        }
        Ok(())
    })())
}

/// §12.3 `[[err.budget-gone-client]]`: "A proxy MUST NOT count against the budget a
/// packet it answers with NO_ROUTE because its Destination Node is an id of the range
/// the proxy attributes to clients ... that no client holds now".
fn gone_client(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        let c = rig.std_client()?;
        let (id, link) = rig.round_trip(c, 2, &ctx.bytes(16, 1))?;
        if !rig.clients[c].close(ctx.deadline()) {
            return Err(must(
                "the proxy did not close a client's connection after its GOAWAY",
                "GOAWAY answered and the connection closed (§6.4)",
                "open",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
        let n = ctx.opts.max_packet_errors + 4;
        let l = &rig.node(2).links[link];
        for i in 0..n {
            let d = ctx.deadline();
            match l.send_data(
                Route::new(id, SVC, i as u8),
                &ctx.bytes(16, u64::from(i)),
                d,
            ) {
                Ok(true) => {}
                Ok(false) => return Err(harness("the proxy granted node 2 no credit")),
                // the link closed: checked below
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        rig.expect_link_kept(
            2,
            link,
            &format!("after {n} answers to the departed client {id}"),
            &ctx.bytes(24, 7),
        )
    })())
}

/// The client closed as for a connection error with `code` (§6.4): GOAWAY with that
/// code (SHOULD, `[[close.on-error-goaway]]`) and the close (MUST).
fn expect_client_closed(ep: &Ep, code: ErrorCode, deadline: Instant, why: &str) -> R {
    ep.wait_until(deadline, |s| s.closed);
    let (closed, goaway) = {
        let s = ep.state();
        (s.closed, s.goaway)
    };
    if !closed {
        return Err(must(
            format!("the proxy did not close {} {why}", ep.name),
            format!("the client's connection closed as for {code} (§11 [[limit.proxy-polices]])"),
            format!(
                "open{}",
                goaway.map_or(String::new(), |g| format!(" after GOAWAY {g}"))
            ),
        ));
    }
    if goaway != Some(code) {
        return Err(should(
            format!("the proxy closed {} {why} without GOAWAY {code}", ep.name),
            format!("GOAWAY {code} (§6.4 [[close.on-error-goaway]])"),
            goaway.map_or("no GOAWAY".into(), |g| format!("GOAWAY {g}")),
        ));
    }
    Ok(())
}

/// §11 `[[limit.proxy-polices]]`: "an ERROR it forwards to a client connection (§7.3)
/// whose code is a connection-error code ... the proxy MUST forward the ERROR, then close
/// that client connection as for a connection error with that code (§6.4), and MUST NOT
/// close the link the ERROR arrived on."
fn polices_forwarded_error(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        let c = rig.std_client()?;
        let other = rig.std_client()?;
        let (id, link) = rig.round_trip(c, 2, &ctx.bytes(16, 1))?;
        rig.round_trip(other, 2, &ctx.bytes(16, 2))?;
        let mut about = Header::data(Route::new(2, SVC, 1), 16);
        about.source = Some(id);
        rig.node(2).links[link]
            .send_error(id, ErrorCode::FLOOD, &about)
            .map_err(|e| must(e, "the link open", "closed"))?;
        let d = ctx.deadline();
        let ep = &rig.clients[c];
        let got = ep.take(d, |p| {
            error_of(p).is_some_and(|(code, _)| code == ErrorCode::FLOOD)
        });
        if got.is_none() {
            return Err(must(
                "node 2's ERROR FLOOD for a client was not forwarded to it",
                "the ERROR forwarded, then the client closed (§11 [[limit.proxy-polices]])",
                format!("{:?}", ep.state().seen),
            ));
        }
        expect_client_closed(ep, ErrorCode::FLOOD, d, "after forwarding it ERROR FLOOD")?;
        let seen = ep.state().seen.clone();
        let err_at = seen
            .iter()
            .position(|s| *s == Seen::Error(ErrorCode::FLOOD));
        let goaway_at = seen.iter().position(|s| matches!(s, Seen::Goaway(_)));
        if let (Some(e), Some(g)) = (err_at, goaway_at) {
            if g < e {
                return Err(must(
                    "the proxy sent its GOAWAY before the forwarded ERROR",
                    "forward the ERROR, then close (§11 [[limit.proxy-polices]])",
                    format!("{seen:?}"),
                ));
            }
        }
        rig.round_trip(other, 2, &ctx.bytes(16, 3)).map_err(|_| {
            must(
                "the other client lost its route after the ERROR for one client",
                "the other clients served (§11)",
                "no round trip",
            )
        })?;
        rig.expect_link_kept(
            2,
            link,
            "after forwarding an ERROR FLOOD to a client",
            &ctx.bytes(24, 9),
        )
    })())
}

/// §11 `[[limit.proxy-polices]]`: "the empty-DATA run and the error budget of a client
/// connection are counted by the proxy's own endpoint on it"; §11 `[[limit.empty-run]]`:
/// more than `max_empty_run` consecutive empty DATA is a connection error FLOOD.
fn polices_empty_run(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        let c = rig.std_client()?;
        let other = rig.std_client()?;
        let (_, link) = rig.round_trip(other, 2, &ctx.bytes(16, 1))?;
        let n = ctx.opts.max_empty_run + 1;
        let d = ctx.deadline();
        for i in 0..n {
            match rig.clients[c].send_data(Route::new(2, SVC, i as u8), &[], d) {
                Ok(true) => {}
                Ok(false) => return Err(harness("the proxy granted the client too little credit")),
                Err(_) => break, // closed early: graded below
            }
        }
        expect_client_closed(
            &rig.clients[c],
            ErrorCode::FLOOD,
            ctx.deadline(),
            &format!("after {n} consecutive empty DATA packets"),
        )?;
        rig.round_trip(other, 2, &ctx.bytes(16, 2))?;
        rig.expect_link_kept(
            2,
            link,
            "after policing a client's empty DATA run",
            &ctx.bytes(24, 11),
        )
    })())
}

/// §11 `[[limit.proxy-polices]]` with §12.3 `[[err.budget]]`: "A receiver MUST close the
/// connection with TOO_MANY_ERRORS (0x000F) when the number of packet errors on it
/// exceeds `max_packet_errors`"; Destination Node 0xFFFF "is always NO_ROUTE" (§7.3).
fn polices_error_budget(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1024, 1 << 20), true)?;
        let c = rig.std_client()?;
        let other = rig.std_client()?;
        let (_, link) = rig.round_trip(other, 2, &ctx.bytes(16, 1))?;
        let n = ctx.opts.max_packet_errors + 1;
        let d = ctx.deadline();
        for i in 0..n {
            match rig.clients[c].send_data(
                Route::new(0xFFFF, SVC, i as u8),
                &ctx.bytes(8, u64::from(i)),
                d,
            ) {
                Ok(true) => {}
                Ok(false) => return Err(harness("the proxy granted the client too little credit")),
                Err(_) => break,
            }
        }
        expect_client_closed(
            &rig.clients[c],
            ErrorCode::TOO_MANY_ERRORS,
            ctx.deadline(),
            &format!("after {n} packets for node 0xFFFF (NO_ROUTE each)"),
        )?;
        rig.round_trip(other, 2, &ctx.bytes(16, 2))?;
        rig.expect_link_kept(
            2,
            link,
            "after policing a client's error budget",
            &ctx.bytes(24, 13),
        )
    })())
}

/// §11 `[[limit.global-budget]]`: "When that budget is full it stops reading from the
/// connections whose packets wait ... and keeps reading the others; it MUST NOT fail a
/// peer that stays within its credit with FLOW_CONTROL for it."
fn global_budget(ctx: &mut Ctx<'_>) -> Outcome {
    step((|| {
        let mut rig = Rig::new(ctx, (1, 16_384), false)?;
        let other = rig.std_client()?;
        let mut flooders = Vec::new();
        for _ in 0..4 {
            flooders.push(rig.std_client()?);
        }
        let payload = ctx.bytes(1000, 1);
        for &c in &flooders {
            let ep = &rig.clients[c];
            ep.set_write_timeout(Duration::from_millis(300));
            // the whole credit the proxy granted, and nothing more
            for i in 0..20_000u32 {
                let d = Instant::now() + Duration::from_millis(20);
                match ep.send_data(Route::new(2, SVC, i as u8), &payload, d) {
                    Ok(true) => {}
                    // no credit left, or the proxy stopped reading this client (allowed)
                    Ok(false) | Err(_) => break,
                }
            }
        }
        let d = ctx.deadline();
        if !rig.clients[other].alive(d) {
            return Err(should(
                "four clients filled the proxy with packets for a link that reads nothing; \
                 a fifth client with nothing waiting got no PONG",
                "the connections whose packets do not wait are still read (§11 [[limit.global-budget]])",
                "no PONG",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
        for &c in &flooders {
            let s = rig.clients[c].state();
            if s.goaway == Some(ErrorCode::FLOW_CONTROL) {
                return Err(must(
                    format!("{} sent within its credit and was closed with FLOW_CONTROL", rig.clients[c].name),
                    "no peer within its credit failed with FLOW_CONTROL (§11 [[limit.global-budget]])",
                    "GOAWAY FLOW_CONTROL",
                ));
            }
        }
        for l in &rig.node(2).links {
            l.state().auto_credit = true;
            let _ = l.grant(1 << 20, 1 << 30);
        }
        let payload = ctx.bytes(24, 2);
        rig.round_trip(other, 2, &payload).map(|_| ())
    })())
}

// ---- mutants: the kill matrix ----

/// Runs the proxy-role cases (`case` globs, all when empty) against `mutant`.
///
/// # Errors
///
/// A harness failure.
pub fn run_proxy_mutant(mutant: Option<ProxyMutant>, case: &[String]) -> Result<Report, String> {
    let mut o = ProxyOptions::new(mutant.map_or(ProxyTestee::Reference, ProxyTestee::Mutant));
    o.seed = 7;
    o.timeout = Duration::from_millis(1500);
    o.case = case.to_vec();
    o.replay = format!(
        "fleetwire conformance peer --role proxy --mutant {}",
        mutant.map_or("none", ProxyMutant::name)
    );
    run_proxy(&o)
}

/// Runs every proxy mutant against every proxy-role case, `threads` at a time, and
/// returns the killing cases of each (FAILED or NON-STRICT, less the cases the
/// unmutated reference fails): the `proxy` set of the kill matrix. An empty list is a
/// survivor.
///
/// ```no_run
/// let m = fleetwire_conformance::peer::proxy_kill_matrix(2);
/// assert!(m.values().all(|k| k.as_ref().is_ok_and(|k| !k.is_empty())));
/// ```
pub fn proxy_kill_matrix(
    threads: usize,
) -> std::collections::BTreeMap<ProxyMutant, Result<Vec<String>, String>> {
    use std::sync::{Arc, Mutex};
    let baseline: Vec<String> = match run_proxy_mutant(None, &[]) {
        Ok(r) => super::killing_cases(&r),
        Err(e) => {
            return ProxyMutant::ALL
                .iter()
                .map(|m| (*m, Err(format!("the unmutated reference: {e}"))))
                .collect()
        }
    };
    let queue = Arc::new(Mutex::new(ProxyMutant::ALL.to_vec()));
    let results = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (queue, results, baseline) = (queue.clone(), results.clone(), baseline.clone());
            std::thread::spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(m) = next else { return };
                let kills = run_proxy_mutant(Some(m), &[]).map(|r| {
                    super::killing_cases(&r)
                        .into_iter()
                        .filter(|c| !baseline.contains(c))
                        .collect::<Vec<String>>()
                });
                if let Ok(mut r) = results.lock() {
                    r.insert(m, kills);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let out = results.lock().map(|r| r.clone()).unwrap_or_default();
    out
}

//! The proxy under test: the reference proxy in-process, a mutant of it, or a third
//! party's proxy started by a command line (`conformance/PROTOCOL.md` §7.1).
//!
//! Proxy mutants are injected around the reference, never inside it: a configuration
//! that differs from what the runner is told (its routing table, its client id range,
//! its limits), a byte filter on the streams between the proxy and the runner's clients
//! or nodes (whole packets after the preface), or a wrapper that builds the "proxy"
//! from two reference proxies (shards that share a client id range, or a chain whose
//! back proxy sees every client through one link).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fleetwire::transport::proxy::{Proxy, ProxyConfig};
use fleetwire::PREFACE;

/// The node id of the reference proxy (and of every proxy a mutant builds).
pub(super) const PROXY_ID: u16 = 9;

macro_rules! proxy_mutants {
    ($( $variant:ident = $name:literal, $tag:literal, $what:literal; )*) => {
        /// One deliberate bug of the reference proxy, for the proxy-role live cases.
        ///
        /// ```
        /// use fleetwire_conformance::peer::ProxyMutant;
        /// assert!(ProxyMutant::ALL.len() >= 10);
        /// assert!(ProxyMutant::ALL.iter().all(|m| m.name().starts_with("proxy-")));
        /// ```
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ProxyMutant {
            $( #[doc = $what] $variant, )*
        }

        impl ProxyMutant {
            /// Every proxy mutant.
            pub const ALL: &'static [ProxyMutant] = &[$(ProxyMutant::$variant),*];

            /// Its name (`proxy-...`).
            ///
            /// ```
            /// use fleetwire_conformance::peer::ProxyMutant;
            /// assert_eq!(ProxyMutant::EgressClosedSilent.name(), "proxy-egress-closed-silent");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $( ProxyMutant::$variant => $name, )* }
            }

            /// The requirement tag the bug violates.
            ///
            /// ```
            /// use fleetwire_conformance::peer::ProxyMutant;
            /// assert_eq!(ProxyMutant::EgressClosedSilent.tag(), "route.egress-closed");
            /// ```
            pub fn tag(self) -> &'static str {
                match self { $( ProxyMutant::$variant => $tag, )* }
            }

            /// What the bug does.
            ///
            /// ```
            /// assert!(!fleetwire_conformance::peer::ProxyMutant::EgressClosedSilent.description().is_empty());
            /// ```
            pub fn description(self) -> &'static str {
                match self { $( ProxyMutant::$variant => $what, )* }
            }
        }
    };
}

proxy_mutants! {
    EgressClosedSilent = "proxy-egress-closed-silent", "route.egress-closed",
        "Discards the packets queued for an egress connection that closed without answering them (filter: its ERROR UNREACHABLE never reaches the client).";
    EgressClosedNoRoute = "proxy-egress-closed-no-route", "route.egress-closed",
        "Forgets a route when its connection closes: answers the packets queued for it, and later ones, NO_ROUTE instead of UNREACHABLE (filter rewrites the code).";
    ClientIdsOverlapRoutes = "proxy-client-ids-overlap-routes", "route.client-ids",
        "Its client id range starts at the highest node id the runner routes through it (configuration: that node's route kept under another id, the range moved onto its id).";
    ShardsShareClientIds = "proxy-shards-share-client-ids", "route.client-ids",
        "Two proxy shards behind one address attribute client ids from the same range, so two clients hold the same id (wrapper: two reference proxies, connections alternate).";
    LinkQueueUnshared = "proxy-link-queue-unshared", "route.fair-share",
        "Refuses a client's packet with UNREACHABLE when 32 packets wait for its link, whoever sent them: one queue, no share per client (wrapper: counts the packets between the clients and the links, answers UNREACHABLE in the proxy's name).";
    AnswerReserveBelowPacket = "proxy-answer-reserve-below-packet", "route.fair-share",
        "Its budget of answers queued for clients is 4 KiB, so the eighth kept for clients that read is smaller than one answer (configuration).";
    CountsGoneClients = "proxy-counts-gone-clients", "err.budget-gone-client",
        "Counts a NO_ROUTE for a departed client's id against the link's error budget (filter: such packets reach the proxy addressed to 0xFFFF, which it counts).";
    GoneClientClosesLink = "proxy-gone-client-closes-link", "err.budget-gone-client",
        "Treats a packet for a departed client's id as a fault of the link and closes it (filter: such packets reach the proxy with a reserved bit set).";
    PoliceErrorDropped = "proxy-police-error-dropped", "limit.proxy-polices",
        "Drops an ERROR with a connection-error code routed to a client instead of forwarding it (filter on the links).";
    PoliceClosesGracefully = "proxy-police-closes-gracefully", "limit.proxy-polices",
        "Closes a client it polices with GOAWAY NO_ERROR instead of the error's code (filter rewrites the GOAWAY).";
    EmptyRunUnpoliced = "proxy-empty-run-unpoliced", "limit.proxy-polices",
        "Does not count its clients' empty DATA runs (configuration: max_empty_run 1000 on client connections).";
    ErrorBudgetUnpoliced = "proxy-error-budget-unpoliced", "limit.proxy-polices",
        "Does not keep its clients' error budgets (configuration: max_packet_errors 1000 on client connections).";
    BudgetFailsWithinCredit = "proxy-budget-fails-within-credit", "limit.global-budget",
        "Announces its clients a window four times larger than what it holds for them, and fails them with FLOW_CONTROL when it fills (filter on its HELLO: the credit it enforces is a quarter of the one announced).";
    BudgetStopsReadingAll = "proxy-budget-stops-reading-all", "limit.global-budget",
        "Stops reading every client while 128 packets of clients wait for the links, not only those whose packets wait (wrapper: the relay in front of it stops).";
}

impl std::str::FromStr for ProxyMutant {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyMutant, String> {
        ProxyMutant::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown proxy mutant {s}"))
    }
}

/// The proxy under test.
#[derive(Clone, Debug)]
pub enum ProxyTestee {
    /// The reference proxy, in-process over loopback.
    Reference,
    /// The reference proxy with one deliberate bug.
    Mutant(ProxyMutant),
    /// A command line run through `sh -c 'exec CMD'` once per case (killed at the end
    /// of the case): `{routes}` in it becomes
    /// `--route NODE=ADDR` for each of the runner's nodes (also in the environment as
    /// `FLEETWIRE_ROUTES`, `NODE=ADDR` separated by spaces); the proxy prints a line
    /// containing `listening on HOST:PORT` on its standard output.
    Command(String),
}

/// A started proxy: where clients connect; dropping it stops the proxy.
pub(super) struct Started {
    pub(super) client_addr: SocketAddr,
    _guard: Vec<Box<dyn Send>>,
}

struct ProxyGuard(Option<Proxy>);

impl Drop for ProxyGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.shutdown(Duration::from_millis(300));
        }
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference proxy's configuration for the live cases: short timers, a small
/// client window and link queue so that the fair-share cases fill them quickly.
pub(super) fn reference_config(routes: &[(u16, SocketAddr)]) -> ProxyConfig {
    let mut c = ProxyConfig::new(PROXY_ID, SocketAddr::from(([127, 0, 0, 1], 0)));
    c.routes = routes.iter().copied().collect();
    c.client_ids = 40000..=40999;
    let e = &mut c.engine;
    e.ping_interval = None;
    e.close_timeout = Duration::from_secs(1);
    e.linger = Duration::from_millis(200);
    e.send_queue_bytes = 64 * 1024;
    e.forward_share_bytes = 1024 * 1024;
    e.stall_timeout = Duration::from_secs(10);
    // the input budget of all connections together (§11 [[limit.global-budget]]), small
    // enough that four clients' windows fill it
    e.global_input_bytes = 256 * 1024;
    e.server.limits.initial_credit_packets = 256;
    e.server.limits.initial_credit_bytes = 256 * 1024;
    c
}

fn start_reference(config: ProxyConfig) -> Result<Proxy, String> {
    Proxy::start(config).map_err(|e| format!("the reference proxy: {e}"))
}

impl ProxyTestee {
    /// Starts the proxy with the runner's nodes as its routes.
    pub(super) fn start(&self, routes: &[(u16, SocketAddr)]) -> Result<Started, String> {
        match self {
            ProxyTestee::Reference => {
                let p = start_reference(reference_config(routes))?;
                Ok(Started {
                    client_addr: p.local_addr(),
                    _guard: vec![Box::new(ProxyGuard(Some(p)))],
                })
            }
            ProxyTestee::Mutant(m) => start_mutant(*m, routes),
            ProxyTestee::Command(cmd) => start_command(cmd, routes),
        }
    }
}

fn start_command(cmd: &str, routes: &[(u16, SocketAddr)]) -> Result<Started, String> {
    let pairs: Vec<String> = routes.iter().map(|(n, a)| format!("{n}={a}")).collect();
    let args: Vec<String> = pairs.iter().map(|p| format!("--route {p}")).collect();
    let line = cmd.replace("{routes}", &args.join(" "));
    // `exec`: the proxy replaces the shell, so that stopping the child stops the proxy
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {line}"))
        .env("FLEETWIRE_ROUTES", pairs.join(" "))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{line}: {e}"))?;
    let Some(out) = child.stdout.take() else {
        return Err("no stdout".into());
    };
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let mut sent = false;
        // keep reading (and discarding) so that the proxy never blocks on its stdout
        while let Some(Ok(l)) = lines.next() {
            if sent {
                continue;
            }
            if let Some(addr) = listening_on(&l) {
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| format!("{line}: printed no `listening on HOST:PORT` line in 10 s"))?;
    Ok(Started {
        client_addr: addr,
        _guard: vec![Box::new(guard)],
    })
}

/// The address in a `... listening on HOST:PORT ...` line.
///
/// ```
/// # use fleetwire_conformance::peer::proxy_listening_on as f;
/// assert_eq!(f("fleetwire proxy 9 listening on 127.0.0.1:7100 (plaintext), 2 routes"),
///     Some("127.0.0.1:7100".parse().unwrap()));
/// assert_eq!(f("starting"), None);
/// ```
pub fn listening_on(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let token = rest.split_whitespace().next()?;
    token.trim_end_matches([',', ';', '.']).parse().ok()
}

// ---- mutants ----

/// A per-packet rewrite: gets one whole packet, returns the bytes to pass on; what it
/// appends to the second argument goes back to the packet's sender (an answer the
/// wrapper gives in the proxy's name).
type PacketFn = Box<dyn FnMut(Vec<u8>, &mut Vec<u8>) -> Vec<u8> + Send>;

/// The filters of one relayed connection: (toward the proxy, from the proxy), and what
/// to run when the connection ends.
struct Filters {
    to_proxy: PacketFn,
    from_proxy: PacketFn,
    on_end: Option<Box<dyn FnOnce() + Send>>,
}

fn pass() -> PacketFn {
    Box::new(|p, _| p)
}

type MakeFilters = Arc<dyn Fn() -> Filters + Send + Sync>;

struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listens on a fresh port; each connection accepted is relayed to one of `backs`
/// (in turn). `proxy_is_back`: the proxy is behind the relay (clients in front), else
/// in front (the proxy dialling a node).
fn relay(
    backs: Vec<SocketAddr>,
    proxy_is_back: bool,
    make: MakeFilters,
) -> Result<(SocketAddr, Relay), String> {
    let front = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = front.local_addr().map_err(|e| e.to_string())?;
    front.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let turn = AtomicUsize::new(0);
    let thread = thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            let sock = match front.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                }
                Err(_) => return,
            };
            let back = backs[turn.fetch_add(1, Ordering::SeqCst) % backs.len()];
            let _ = sock.set_nonblocking(false);
            let Ok(other) = TcpStream::connect(back) else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let _ = other.set_nodelay(true);
            let (Ok(s2c), Ok(o2c)) = (sock.try_clone(), other.try_clone()) else {
                continue;
            };
            // one writer at a time per socket: a filter's answers and the other
            // direction's packets
            let (sl, ol) = (Arc::new(Mutex::new(())), Arc::new(Mutex::new(())));
            let (sl2, ol2) = (sl.clone(), ol.clone());
            let f = make();
            let (front_in, back_in) = if proxy_is_back {
                (f.to_proxy, f.from_proxy)
            } else {
                (f.from_proxy, f.to_proxy)
            };
            // the connection ends for the filters when either direction ends (the
            // proxy closing a client while the client's socket stays open included)
            let on_end = Arc::new(Mutex::new(f.on_end));
            let end2 = on_end.clone();
            let run_end = |end: &Mutex<Option<Box<dyn FnOnce() + Send>>>| {
                let f = end.lock().ok().and_then(|mut e| e.take());
                if let Some(f) = f {
                    f();
                }
            };
            thread::spawn(move || {
                pump((sock, sl), (other, ol), front_in);
                run_end(&on_end);
            });
            thread::spawn(move || {
                pump((o2c, ol2), (s2c, sl2), back_in);
                run_end(&end2);
            });
        }
    });
    Ok((
        addr,
        Relay {
            stop,
            thread: Some(thread),
        },
    ))
}

/// Copies `from` to `to`, passing the preface through and every whole packet through
/// `f`; what `f` answers goes back on `from`. Each socket comes with its writers' lock.
fn pump(from: (TcpStream, Arc<Mutex<()>>), to: (TcpStream, Arc<Mutex<()>>), mut f: PacketFn) {
    let ((mut from, from_lock), (mut to, to_lock)) = (from, to);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut preface = false;
    let write = |sock: &mut TcpStream, lock: &Mutex<()>, bytes: &[u8]| {
        let _g = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sock.write_all(bytes).is_ok()
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        let mut back = Vec::new();
        if !preface {
            if pending.len() < PREFACE.len() {
                continue;
            }
            out.extend(pending.drain(..PREFACE.len()));
            preface = true;
        }
        loop {
            if pending.len() < 4 {
                break;
            }
            let hl = if pending[1] & 0x80 != 0 { 10 } else { 8 };
            let total = hl + usize::from(u16::from_be_bytes([pending[2], pending[3]]));
            if pending.len() < total {
                break;
            }
            let pkt: Vec<u8> = pending.drain(..total).collect();
            out.extend(f(pkt, &mut back));
        }
        if !out.is_empty() && !write(&mut to, &to_lock, &out) {
            break;
        }
        if !back.is_empty() && !write(&mut from, &from_lock, &back) {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    let _ = from.shutdown(std::net::Shutdown::Read);
}

fn hl(p: &[u8]) -> usize {
    if p.get(1).is_some_and(|b| b & 0x80 != 0) {
        10
    } else {
        8
    }
}

/// The filters of a wrapper's links to the runner's nodes: each DATA the proxy forwards
/// to `node` leaves that node's count in `backlog` (the packets waiting for its link).
fn backlog_links(backlog: Arc<Mutex<BTreeMap<u16, usize>>>) -> impl Fn(u16) -> MakeFilters {
    move |node: u16| {
        let backlog = backlog.clone();
        Arc::new(move || {
            let backlog = backlog.clone();
            Filters {
                to_proxy: pass(),
                from_proxy: Box::new(move |p, _| {
                    if kind(&p) == 0 {
                        if let Ok(mut b) = backlog.lock() {
                            let n = b.entry(node).or_default();
                            *n = n.saturating_sub(1);
                        }
                    }
                    p
                }),
                on_end: None,
            }
        }) as MakeFilters
    }
}

fn kind(p: &[u8]) -> u8 {
    p.first().map_or(0xFF, |b| b & 0x0F)
}

fn dest(p: &[u8]) -> u16 {
    match p.get(4..6) {
        Some(d) => u16::from_be_bytes([d[0], d[1]]),
        None => 0,
    }
}

/// The code of an ERROR or GOAWAY packet.
fn code(p: &[u8]) -> Option<u16> {
    let at = hl(p);
    p.get(at..at + 2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

fn set_code(p: &mut [u8], code: u16) {
    let at = hl(p);
    if let Some(c) = p.get_mut(at..at + 2) {
        c.copy_from_slice(&code.to_be_bytes());
    }
}

/// Ids the proxy attributed to clients (from its HELLO `peer_id`): those connected
/// now, and those whose client has gone.
#[derive(Default)]
struct ClientIds {
    live: HashSet<u16>,
    gone: HashSet<u16>,
}

/// The filters of a client connection that track the id the proxy attributed to it
/// (in `ids`); `to_proxy` gets that id's cell.
fn client_filters_tracking(
    ids: &Arc<Mutex<ClientIds>>,
    to_proxy: impl FnOnce(Arc<Mutex<u16>>) -> PacketFn,
) -> Filters {
    let mine = Arc::new(Mutex::new(0u16));
    let (ids2, mine2) = (ids.clone(), mine.clone());
    let to_proxy = to_proxy(mine.clone());
    let from_proxy: PacketFn = Box::new(move |p, _| {
        // HELLO payload: versions, role, flags, node_id, then peer_id at offset 6
        if kind(&p) == 1 && p.len() >= hl(&p) + 8 {
            let at = hl(&p) + 6;
            let id = u16::from_be_bytes([p[at], p[at + 1]]);
            if let (Ok(mut ids), Ok(mut m)) = (ids2.lock(), mine2.lock()) {
                if *m == 0 && id != 0 {
                    *m = id;
                    ids.live.insert(id);
                    ids.gone.remove(&id);
                }
            }
        }
        p
    });
    let ids3 = ids.clone();
    Filters {
        to_proxy,
        from_proxy,
        on_end: Some(Box::new(move || {
            let id = mine.lock().map(|m| *m).unwrap_or(0);
            if let Ok(mut ids) = ids3.lock() {
                if id != 0 && ids.live.remove(&id) {
                    ids.gone.insert(id);
                }
            }
        })),
    }
}

/// `proxy-budget-stops-reading-all`: packets of clients waiting for the links, all
/// together, beyond which the wrapper reads no client.
const GLOBAL_STOP: usize = 128;

/// `proxy-link-queue-unshared`: packets waiting for one link, all clients together,
/// beyond which the wrapper refuses.
const UNSHARED_QUEUE: usize = 32;

/// An ERROR UNREACHABLE about `packet` (as the proxy received it), routed to `client`.
fn unreachable_for(packet: &[u8], client: u16) -> Vec<u8> {
    let about = &packet[..hl(packet).min(packet.len())];
    let mut payload = Vec::new();
    fleetwire::control::ErrorReport {
        code: fleetwire::ErrorCode::UNREACHABLE,
        header: about,
        reason: "",
    }
    .encode(&mut payload);
    let mut h = fleetwire::Header::control(fleetwire::Kind::Error, payload.len() as u16);
    h.route = fleetwire::Route::new(
        client,
        packet.get(6).copied().unwrap_or(0),
        packet.get(7).copied().unwrap_or(0),
    );
    let mut out = Vec::new();
    h.encode_to_vec(&mut out);
    out.extend(payload);
    out
}

fn guard_proxy(p: Proxy) -> Box<dyn Send> {
    Box::new(ProxyGuard(Some(p)))
}

#[allow(clippy::too_many_lines)]
fn start_mutant(m: ProxyMutant, routes: &[(u16, SocketAddr)]) -> Result<Started, String> {
    use ProxyMutant as M;
    let client_side = |config: ProxyConfig, make: MakeFilters| -> Result<Started, String> {
        let p = start_reference(config)?;
        let (addr, r) = relay(vec![p.local_addr()], true, make)?;
        Ok(Started {
            client_addr: addr,
            // the relay goes first: no connection is relayed to a stopped proxy
            _guard: vec![Box::new(r), guard_proxy(p)],
        })
    };
    // the links relayed: the proxy dials the relays, which dial the runner's nodes
    let link_side = |make: &dyn Fn(u16) -> MakeFilters,
                     clients: Option<MakeFilters>|
     -> Result<Started, String> {
        let mut relays: Vec<Box<dyn Send>> = Vec::new();
        let mut relayed = Vec::new();
        for &(node, addr) in routes {
            let (front, r) = relay(vec![addr], false, make(node))?;
            relayed.push((node, front));
            relays.push(Box::new(r));
        }
        let p = start_reference(reference_config(&relayed))?;
        let mut client_addr = p.local_addr();
        let mut guard: Vec<Box<dyn Send>> = Vec::new();
        if let Some(c) = clients {
            let (a, r) = relay(vec![p.local_addr()], true, c)?;
            client_addr = a;
            guard.push(Box::new(r));
        }
        guard.push(guard_proxy(p));
        guard.extend(relays);
        Ok(Started {
            client_addr,
            _guard: guard,
        })
    };
    match m {
        M::EgressClosedSilent | M::EgressClosedNoRoute => {
            let silent = m == M::EgressClosedSilent;
            client_side(
                reference_config(routes),
                Arc::new(move || Filters {
                    to_proxy: pass(),
                    from_proxy: Box::new(move |mut p, _| {
                        if kind(&p) == 6 && code(&p) == Some(0x0106) {
                            if silent {
                                return Vec::new();
                            }
                            set_code(&mut p, 0x0100);
                        }
                        p
                    }),
                    on_end: None,
                }),
            )
        }
        M::PoliceClosesGracefully => client_side(
            reference_config(routes),
            Arc::new(|| Filters {
                to_proxy: pass(),
                from_proxy: Box::new(|mut p, _| {
                    if kind(&p) == 4 {
                        set_code(&mut p, 0);
                    }
                    p
                }),
                on_end: None,
            }),
        ),
        M::ClientIdsOverlapRoutes => {
            let top = routes.iter().map(|r| r.0).max().unwrap_or(2);
            let hi = top.saturating_add(999).min(65000);
            // the node keeps its link, under an id past the range
            let kept: Vec<(u16, SocketAddr)> = routes
                .iter()
                .map(|&(n, a)| (if n == top { hi + 1 } else { n }, a))
                .collect();
            let mut config = reference_config(&kept);
            config.client_ids = top..=hi;
            // its own id outside that range
            config.node_id = 65000;
            let p = start_reference(config)?;
            Ok(Started {
                client_addr: p.local_addr(),
                _guard: vec![guard_proxy(p)],
            })
        }
        M::ShardsShareClientIds => {
            let a = start_reference(reference_config(routes))?;
            let b = start_reference(reference_config(routes))?;
            let (addr, r) = relay(
                vec![a.local_addr(), b.local_addr()],
                true,
                Arc::new(|| Filters {
                    to_proxy: pass(),
                    from_proxy: pass(),
                    on_end: None,
                }),
            )?;
            Ok(Started {
                client_addr: addr,
                _guard: vec![Box::new(r), guard_proxy(a), guard_proxy(b)],
            })
        }
        M::LinkQueueUnshared => {
            let backlog: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
            let ids: Arc<Mutex<ClientIds>> = Arc::default();
            let nodes: Vec<u16> = routes.iter().map(|r| r.0).collect();
            let links = backlog_links(backlog.clone());
            let clients = Arc::new(move || {
                let (backlog, nodes) = (backlog.clone(), nodes.clone());
                client_filters_tracking(&ids, move |me| {
                    Box::new(move |p, back| {
                        let d = dest(&p);
                        if kind(&p) != 0 || !nodes.contains(&d) {
                            return p;
                        }
                        let Ok(mut b) = backlog.lock() else { return p };
                        let n = b.entry(d).or_default();
                        if *n < UNSHARED_QUEUE {
                            *n += 1;
                            return p;
                        }
                        drop(b);
                        let me = me.lock().map(|m| *m).unwrap_or(0);
                        back.extend(unreachable_for(&p, me));
                        Vec::new()
                    })
                })
            }) as MakeFilters;
            link_side(&links, Some(clients))
        }
        M::AnswerReserveBelowPacket => {
            let mut config = reference_config(routes);
            config.engine.global_forward_bytes = 4096;
            let p = start_reference(config)?;
            Ok(Started {
                client_addr: p.local_addr(),
                _guard: vec![guard_proxy(p)],
            })
        }
        M::EmptyRunUnpoliced | M::ErrorBudgetUnpoliced => {
            let mut config = reference_config(routes);
            let l = &mut config.engine.server.limits;
            if m == M::EmptyRunUnpoliced {
                l.max_empty_run = 1000;
            } else {
                l.max_packet_errors = 1000;
            }
            let p = start_reference(config)?;
            Ok(Started {
                client_addr: p.local_addr(),
                _guard: vec![guard_proxy(p)],
            })
        }
        M::BudgetFailsWithinCredit => client_side(
            reference_config(routes),
            Arc::new(|| Filters {
                to_proxy: pass(),
                from_proxy: Box::new(|mut p, _| {
                    // HELLO: initial_credit_packets at payload offset 16, bytes at 20
                    let at = hl(&p) + 16;
                    if kind(&p) == 1 && p.len() >= at + 8 {
                        for off in [at, at + 4] {
                            let v =
                                u32::from_be_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]]);
                            p[off..off + 4].copy_from_slice(&v.saturating_mul(4).to_be_bytes());
                        }
                    }
                    p
                }),
                on_end: None,
            }),
        ),
        M::BudgetStopsReadingAll => {
            let backlog: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
            let links = backlog_links(backlog.clone());
            let nodes: Vec<u16> = routes.iter().map(|r| r.0).collect();
            let clients = Arc::new(move || {
                let (backlog, nodes) = (backlog.clone(), nodes.clone());
                let mut gave_up = false;
                Filters {
                    to_proxy: Box::new(move |p, _| {
                        // every client's stream stops while the links' backlog is full
                        // (for 3 s at most: a link that never drains ends the stop)
                        let until = std::time::Instant::now() + Duration::from_secs(3);
                        while !gave_up {
                            let total: usize =
                                backlog.lock().map(|b| b.values().sum()).unwrap_or(0);
                            if total < GLOBAL_STOP {
                                break;
                            }
                            gave_up = std::time::Instant::now() >= until;
                            thread::sleep(Duration::from_millis(5));
                        }
                        if kind(&p) == 0 && nodes.contains(&dest(&p)) {
                            if let Ok(mut b) = backlog.lock() {
                                *b.entry(dest(&p)).or_default() += 1;
                            }
                        }
                        p
                    }),
                    from_proxy: pass(),
                    on_end: None,
                }
            }) as MakeFilters;
            link_side(&links, Some(clients))
        }
        M::PoliceErrorDropped => link_side(
            &|_| {
                Arc::new(|| Filters {
                    to_proxy: Box::new(|p, _| {
                        let conn_code = code(&p).is_some_and(|c| (0x0001..=0x00FF).contains(&c));
                        if kind(&p) == 6 && conn_code {
                            return Vec::new();
                        }
                        p
                    }),
                    from_proxy: pass(),
                    on_end: None,
                })
            },
            None,
        ),
        M::CountsGoneClients | M::GoneClientClosesLink => {
            let ids: Arc<Mutex<ClientIds>> = Arc::default();
            let close = m == M::GoneClientClosesLink;
            let links = {
                let ids = ids.clone();
                Arc::new(move || {
                    let ids = ids.clone();
                    Filters {
                        to_proxy: Box::new(move |mut p, _| {
                            let d = dest(&p);
                            let gone = ids
                                .lock()
                                .map(|i| i.gone.contains(&d) && !i.live.contains(&d))
                                .unwrap_or(false);
                            if kind(&p) == 0 && gone {
                                if close {
                                    p[1] |= 0x04;
                                } else {
                                    p[4..6].copy_from_slice(&0xFFFFu16.to_be_bytes());
                                }
                            }
                            p
                        }),
                        from_proxy: pass(),
                        on_end: None,
                    }
                }) as MakeFilters
            };
            let clients = {
                let ids = ids.clone();
                Arc::new(move || client_filters_tracking(&ids, |_| pass())) as MakeFilters
            };
            link_side(&|_| links.clone(), Some(clients))
        }
    }
}

//! The BlueNet proxy (BRIEF §1, spec §7.3): forwards DATA and ERROR packets by their
//! routing header alone, on the engine's IO threads.
//!
//! - The ingress [`Connection`](crate::Connection) stamps X and the Source Node
//!   (spec §7.4) and hands the packet over as [`Event::Forward`](crate::connection::Event);
//!   the IO thread looks its Destination Node up in the routing table and pushes the
//!   packet, payload bytes untouched, onto the egress connection's bounded queue; the
//!   egress IO thread writes it with [`Connection::forward`](crate::Connection::forward).
//!   No decompression, no re-encoding, and never through the application thread.
//! - The routing table is an immutable snapshot: a change builds a new table and swaps
//!   it in under a version counter. IO threads compare the version once per round and
//!   take the lock only when it changed (to clone one `Arc`), so the per-packet path
//!   never touches a lock held by a writer (the same scheme as native handlers).
//! - Trust (spec §7.4): a peer proxy's stamped source is honoured when it authenticated
//!   with a proxy identity (mutual TLS), or when its IP address is listed in
//!   [`ProxyConfig::trusted_peers`] (explicit local configuration of a trusted link, for
//!   plaintext proxy-to-proxy links).
//! - Clients that connect to the proxy get an id from [`ProxyConfig::client_ids`]
//!   (HELLO `peer_id`, spec §5.2); the table routes that id back to the client, so a
//!   node answers a client by the stamped source.
//! - No route: ERROR NO_ROUTE to the packet's source; a route whose connection is
//!   closed or whose bounded queue is full: UNREACHABLE (spec §7.3 `[[route.no-route]]`).
//! - An egress connection that closes with forwarded packets still queued hands each
//!   one's header back to its ingress connection, whose IO thread answers it with
//!   UNREACHABLE: nothing accepted for forwarding is dropped silently (spec §7.3
//!   `[[route.egress-closed]]`).
//! - Order: one ingress connection is serviced by one IO thread in arrival order and
//!   each egress queue is FIFO, so packets keep their order per ingress → egress pair
//!   (spec §7.3 `[[route.order]]`).
//! - Loops: a route to the proxy's own id or its own listening address is rejected
//!   (spec §7.3 `[[route.loops]]`).
//! - Per-route statistics ([`Proxy::route_stats`]): each route has a cell of atomic
//!   counters held by the table snapshots and by its egress connections. The egress IO
//!   thread counts what it writes in private counters and adds them to the cell once
//!   per round; refusals are counted where they happen (rare). No lock on the
//!   per-packet path.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::shared::{lock, ConnShared, Inner, QUEUE_ENTRY_OVERHEAD};
use super::types::{AppEvent, ConnId, Listener, TlsOptions};
use super::{Engine, EngineConfig};
use crate::control::Role;
use crate::error::ErrorCode;
use crate::header::{Header, Kind};
use crate::packet::Packet;

/// How long a route whose connection closed waits before reconnecting.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// One route's live counters, shared by the table snapshots and the route's egress
/// connections (see [`RouteStats`]).
#[derive(Default, Debug)]
pub(crate) struct RouteCell {
    packets: AtomicU64,
    bytes: AtomicU64,
    no_route: AtomicU64,
    unreachable: AtomicU64,
}

impl RouteCell {
    /// Adds DATA packets written to the route's connection (once per IO round).
    pub(crate) fn add_forwarded(&self, packets: u64, bytes: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one DATA packet refused with `code` (NO_ROUTE or UNREACHABLE, §7.3).
    pub(crate) fn refused(&self, code: ErrorCode) {
        let counter = if code == ErrorCode::NO_ROUTE {
            &self.no_route
        } else {
            &self.unreachable
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts DATA packets answered UNREACHABLE because the egress connection closed.
    pub(crate) fn add_unreachable(&self, packets: u64) {
        self.unreachable.fetch_add(packets, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RouteStats {
        let r = Ordering::Relaxed;
        RouteStats {
            packets: self.packets.load(r),
            bytes: self.bytes.load(r),
            no_route: self.no_route.load(r),
            unreachable: self.unreachable.load(r),
        }
    }
}

/// A configured route in a table snapshot.
#[derive(Clone)]
struct NodeRoute {
    /// The egress connection (`None`: no connection now).
    conn: Option<Arc<ConnShared>>,
    cell: Arc<RouteCell>,
}

/// One snapshot of the routing table.
#[derive(Clone)]
pub(crate) struct Table {
    /// Configured routes: node id → egress connection and counters.
    nodes: HashMap<u16, NodeRoute>,
    /// Clients attributed an id by this proxy: id → their connection.
    clients: HashMap<u16, Arc<ConnShared>>,
    client_ids: RangeInclusive<u16>,
    /// The counters of the client-id routes, aggregated.
    client_cell: Arc<RouteCell>,
    /// The counters of destinations that match nothing.
    unrouted: Arc<RouteCell>,
}

/// What the table says about a destination node, with the counters to charge.
enum Lookup<'a> {
    NoRoute(&'a RouteCell),
    Unreachable(&'a RouteCell),
    Egress(&'a Arc<ConnShared>, &'a RouteCell),
}

impl Table {
    fn lookup(&self, node: u16) -> Lookup<'_> {
        match self.nodes.get(&node) {
            Some(NodeRoute {
                conn: Some(c),
                cell,
            }) => Lookup::Egress(c, cell),
            Some(NodeRoute { conn: None, cell }) => Lookup::Unreachable(cell),
            None => match self.clients.get(&node) {
                Some(c) => Lookup::Egress(c, &self.client_cell),
                None if self.client_ids.contains(&node) => Lookup::NoRoute(&self.client_cell),
                None => Lookup::NoRoute(&self.unrouted),
            },
        }
    }
}

/// The routing state shared by the proxy and its IO threads.
pub(crate) struct RouteState {
    version: AtomicU64,
    table: Mutex<Arc<Table>>,
    client_ids: RangeInclusive<u16>,
    next_client: Mutex<u16>,
    /// The counters of the client-id routes, aggregated.
    pub(crate) client_cell: Arc<RouteCell>,
    unrouted: Arc<RouteCell>,
    /// Peers trusted to stamp sources, by address ([`ProxyConfig::trusted_peers`]).
    trusted: Vec<IpAddr>,
}

impl RouteState {
    fn new(client_ids: RangeInclusive<u16>, trusted: &[IpAddr]) -> RouteState {
        let first = *client_ids.start();
        let client_cell = Arc::new(RouteCell::default());
        let unrouted = Arc::new(RouteCell::default());
        let table = Table {
            nodes: HashMap::new(),
            clients: HashMap::new(),
            client_ids: client_ids.clone(),
            client_cell: client_cell.clone(),
            unrouted: unrouted.clone(),
        };
        RouteState {
            version: AtomicU64::new(1),
            table: Mutex::new(Arc::new(table)),
            client_ids,
            next_client: Mutex::new(first),
            client_cell,
            unrouted,
            trusted: trusted.iter().map(IpAddr::to_canonical).collect(),
        }
    }

    /// Whether a connection to or from `peer` is a trusted link (spec §7.4
    /// `[[src.trust]]`): X = 1 from it is honoured when its role is proxy.
    pub(crate) fn trusts(&self, peer: SocketAddr) -> bool {
        self.trusted.contains(&peer.ip().to_canonical())
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The current table and its version, for an IO thread.
    pub(crate) fn snapshot(&self) -> (u64, Arc<Table>) {
        let table = lock(&self.table);
        (self.version(), table.clone())
    }

    /// Read-copy-update: writers are serialised by the lock; readers keep their `Arc`.
    fn update(&self, f: impl FnOnce(&mut Table)) {
        let mut current = lock(&self.table);
        let mut next = Table::clone(&current);
        f(&mut next);
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives an accepted connection a client id and routes that id back to it; 0 when
    /// every id of the range is taken (the client is then unattributed, spec §7.4).
    pub(crate) fn attribute(&self, shared: &Arc<ConnShared>) -> u16 {
        let mut next = lock(&self.next_client);
        let (lo, hi) = (*self.client_ids.start(), *self.client_ids.end());
        let mut chosen = 0;
        self.update(|t| {
            let span = u32::from(hi - lo) + 1;
            for _ in 0..span {
                let id = *next;
                *next = if id >= hi { lo } else { id + 1 };
                if let std::collections::hash_map::Entry::Vacant(e) = t.clients.entry(id) {
                    e.insert(shared.clone());
                    chosen = id;
                    return;
                }
            }
        });
        chosen
    }

    /// Forgets a client id when its connection closes.
    pub(crate) fn release(&self, id: u16, conn: ConnId) {
        if id == 0 {
            return;
        }
        self.update(|t| {
            if t.clients.get(&id).is_some_and(|c| c.id == conn) {
                t.clients.remove(&id);
            }
        });
    }
}

/// A packet queued for an egress connection, with what its ingress connection needs to
/// answer it should it never be written (spec §7.3 `[[route.egress-closed]]`).
#[derive(Clone)]
pub(crate) struct Forwarded {
    /// The packet, stamped (§7.4), as it is written.
    pub(crate) packet: Packet,
    /// Its header as the ingress connection received it (§5.7).
    pub(crate) received: Header,
    /// The ingress connection.
    pub(crate) from: ConnId,
}

/// Routes a packet an ingress connection received for another node (spec §7.3): queues
/// it for the egress connection the table names, or returns the code to answer it with
/// (NO_ROUTE or UNREACHABLE, `[[route.no-route]]`), counting a refused DATA packet on
/// its route.
pub(crate) fn route(
    inner: &Inner,
    table: Option<&Table>,
    forward: Forwarded,
) -> Result<(), ErrorCode> {
    let data = forward.packet.header.kind == Kind::Data;
    let (code, cell) = match table.map(|t| t.lookup(forward.packet.header.route.node)) {
        Some(Lookup::Egress(egress, cell)) => match enqueue(inner, egress, forward) {
            Ok(()) => return Ok(()),
            Err(()) => (ErrorCode::UNREACHABLE, Some(cell)),
        },
        Some(Lookup::Unreachable(cell)) => (ErrorCode::UNREACHABLE, Some(cell)),
        Some(Lookup::NoRoute(cell)) => (ErrorCode::NO_ROUTE, Some(cell)),
        None => (ErrorCode::NO_ROUTE, None),
    };
    if let (true, Some(cell)) = (data, cell) {
        cell.refused(code);
    }
    Err(code)
}

/// Pushes a forwarded packet onto the egress connection's bounded queue (spec §7.3)
/// and tells the egress IO thread when its queue was idle. `Err` when the queue is
/// closed or full: the caller reports UNREACHABLE.
fn enqueue(inner: &Inner, egress: &ConnShared, forward: Forwarded) -> Result<(), ()> {
    let cfg = &inner.config;
    let cost = forward.packet.payload.len() + QUEUE_ENTRY_OVERHEAD;
    let mut q = lock(&egress.sendq);
    if q.closed || q.packets >= cfg.send_queue_packets || q.bytes + cost > cfg.send_queue_bytes {
        return Err(());
    }
    q.forwards.push(forward);
    q.packets += 1;
    q.bytes += cost;
    let schedule = !q.scheduled;
    q.scheduled = true;
    drop(q);
    if schedule {
        inner.io[egress.thread].ready(egress.id);
    }
    Ok(())
}

/// Hands packets that their closed egress connection never wrote back to their
/// ingress connections, whose IO threads answer each DATA packet with ERROR
/// UNREACHABLE to its source (spec §7.3 `[[route.egress-closed]]`). ERROR packets are
/// discarded silently (§5.7 `[[error.no-loop]]`), and so are packets whose ingress
/// connection is gone (there is nowhere to answer). Returns the DATA packets bounced.
pub(crate) fn bounce(inner: &Inner, unwritten: impl IntoIterator<Item = Forwarded>) -> u64 {
    let mut by_ingress: BTreeMap<ConnId, Vec<Header>> = BTreeMap::new();
    let mut data = 0;
    for f in unwritten {
        if f.packet.header.kind == Kind::Data {
            by_ingress.entry(f.from).or_default().push(f.received);
            data += 1;
        }
    }
    if by_ingress.is_empty() {
        return 0;
    }
    let ingress: Vec<(Arc<ConnShared>, Vec<Header>)> = {
        let conns = lock(&inner.conns);
        by_ingress
            .into_iter()
            .filter_map(|(id, headers)| Some((conns.get(&id)?.clone(), headers)))
            .collect()
    };
    for (conn, headers) in ingress {
        let mut q = lock(&conn.sendq);
        q.bounced.extend(headers);
        let schedule = !q.scheduled;
        q.scheduled = true;
        drop(q);
        if schedule {
            inner.io[conn.thread].ready(conn.id);
        }
    }
    data
}

/// Names a route of [`Proxy::route_stats`].
///
/// ```
/// use fleetwire::transport::proxy::RouteKey;
/// assert_eq!(RouteKey::Node(2).to_string(), "node 2");
/// assert!(RouteKey::Node(65534) < RouteKey::Clients && RouteKey::Clients < RouteKey::Unrouted);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RouteKey {
    /// A configured route: packets for this node id.
    Node(u16),
    /// The routes to the clients this proxy attributed an id to, aggregated; includes
    /// NO_ROUTE for ids of the client range that no client holds.
    Clients,
    /// Destinations that match no route and lie outside the client range: NO_ROUTE only.
    Unrouted,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteKey::Node(n) => write!(f, "node {n}"),
            RouteKey::Clients => f.write_str("clients"),
            RouteKey::Unrouted => f.write_str("unrouted"),
        }
    }
}

/// What a proxy did with the DATA packets for one route, since the route was added
/// (spec §7.3). ERROR packets are forwarded too but not counted here.
///
/// Forwarded packets are counted when the egress IO thread writes them to the route's
/// connection, once per IO round, so a snapshot may lag the wire by one round.
///
/// ```
/// use fleetwire::transport::proxy::{Proxy, ProxyConfig, RouteKey, RouteStats};
/// let proxy = Proxy::start(ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap())).unwrap();
/// let stats = proxy.route_stats();
/// assert_eq!(stats[&RouteKey::Clients], RouteStats::default());
/// assert_eq!(stats[&RouteKey::Unrouted].no_route, 0);
/// proxy.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RouteStats {
    /// DATA packets written to the route's connection.
    pub packets: u64,
    /// Their payload bytes as forwarded (compressed when the sender compressed them).
    pub bytes: u64,
    /// DATA packets refused with ERROR NO_ROUTE (0x0100).
    pub no_route: u64,
    /// DATA packets refused with ERROR UNREACHABLE (0x0106): the route had no
    /// connection, or its bounded queue was full or closed.
    pub unreachable: u64,
}

/// A routing table configuration that is refused.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouteError(pub String);

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

/// How a [`Proxy`] runs.
///
/// ```
/// use fleetwire::transport::proxy::ProxyConfig;
/// let mut config = ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap());
/// config.routes.insert(2, "127.0.0.1:7402".parse().unwrap());
/// // a plaintext link to a peer proxy on this host: honour its stamped sources (§7.4)
/// config.trusted_peers.push("127.0.0.1".parse().unwrap());
/// assert!(config.check_routes(&config.routes).is_ok());
/// config.routes.insert(9, "127.0.0.1:7409".parse().unwrap()); // to itself: a loop
/// assert!(config.check_routes(&config.routes).is_err());
/// ```
///
/// Build one with [`ProxyConfig::new`] (a node id and an address have no sensible
/// default) and adjust the fields or use the `with_*` setters (the struct is
/// `#[non_exhaustive]`: settings may be added in a minor release).
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The proxy's node id (1…65534).
    pub node_id: u16,
    /// Where clients and nodes connect.
    pub listen: SocketAddr,
    /// [`TlsOptions::Plaintext`] or [`TlsOptions::Server`] for the listener.
    pub listen_tls: TlsOptions,
    /// TLS for the connections to the routes' nodes (`None`: plaintext), and the server
    /// name their certificates must carry (`None`: the route's IP address).
    pub connect_tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    /// The initial routes: node id → address of that node (or of the next proxy).
    pub routes: BTreeMap<u16, SocketAddr>,
    /// Ids attributed to clients that connect (HELLO `peer_id`); must not overlap the
    /// routes' node ids.
    pub client_ids: RangeInclusive<u16>,
    /// Peers trusted to stamp sources without authenticating as a proxy: the explicit
    /// local configuration of a trusted link of spec §7.4 `[[src.trust]]`, for
    /// plaintext links between proxies. Connections accepted from, and routes connected
    /// to, these IP addresses honour X = 1 when the peer's HELLO announces role proxy
    /// (clients and nodes still may not set it, §7.4 `[[src.forbid]]`). Over mutual TLS a
    /// proxy identity is trusted without this. An address is as trustworthy as the
    /// network it is reached over: list only peers on loopback or a private network.
    pub trusted_peers: Vec<IpAddr>,
    /// Engine settings; both connection templates get role proxy and `node_id`.
    pub engine: EngineConfig,
}

crate::setters::setters!(ProxyConfig {
    with_node_id => node_id: u16,
    with_listen => listen: SocketAddr,
    with_listen_tls => listen_tls: TlsOptions,
    with_connect_tls => connect_tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    with_routes => routes: BTreeMap<u16, SocketAddr>,
    with_client_ids => client_ids: RangeInclusive<u16>,
    with_trusted_peers => trusted_peers: Vec<IpAddr>,
    with_engine => engine: EngineConfig,
});

impl ProxyConfig {
    /// A plaintext proxy without routes, client ids 40000…65534.
    ///
    /// ```
    /// let c = fleetwire::transport::proxy::ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap());
    /// assert_eq!(c.node_id, 9);
    /// ```
    pub fn new(node_id: u16, listen: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            node_id,
            listen,
            listen_tls: TlsOptions::Plaintext,
            connect_tls: None,
            routes: BTreeMap::new(),
            client_ids: 40000..=65534,
            trusted_peers: Vec::new(),
            engine: EngineConfig::default(),
        }
    }

    /// Checks a routing table: node ids 1…65534, none in the client range, and no loop
    /// back to this proxy — neither its own node id nor its own listening address
    /// (spec §7.3 `[[route.loops]]`, §14.6).
    ///
    /// # Errors
    ///
    /// The first rule broken.
    ///
    /// ```
    /// use fleetwire::transport::proxy::ProxyConfig;
    /// let config = ProxyConfig::new(9, "127.0.0.1:7400".parse().unwrap());
    /// let mut routes = std::collections::BTreeMap::new();
    /// routes.insert(3, "127.0.0.1:7400".parse().unwrap()); // our own address
    /// assert!(config.check_routes(&routes).is_err());
    /// ```
    pub fn check_routes(&self, routes: &BTreeMap<u16, SocketAddr>) -> Result<(), RouteError> {
        self.check_routes_at(routes, self.listen)
    }

    fn check_routes_at(
        &self,
        routes: &BTreeMap<u16, SocketAddr>,
        listen: SocketAddr,
    ) -> Result<(), RouteError> {
        for (&node, &addr) in routes {
            if node == 0 || node == 0xFFFF {
                return Err(RouteError(format!("node id {node} is not routable")));
            }
            // spec §7.3 [[route.loops]]: never route a node back to the proxy itself
            if node == self.node_id {
                return Err(RouteError(format!(
                    "route for node {node} points at this proxy's own id (loop)"
                )));
            }
            let same_port = addr.port() == listen.port() && listen.port() != 0;
            let own_ip = addr.ip() == listen.ip()
                || listen.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified());
            if same_port && own_ip {
                return Err(RouteError(format!(
                    "route for node {node} points at this proxy's own address {addr} (loop)"
                )));
            }
            if self.client_ids.contains(&node) {
                return Err(RouteError(format!(
                    "node id {node} lies in the client id range"
                )));
            }
        }
        Ok(())
    }
}

struct Static {
    addr: SocketAddr,
    conn: ConnId,
    retry_at: Option<Instant>,
    /// The route's connection completed its handshake and has not closed since.
    up: bool,
    /// The route's counters: kept while the node id stays in the table.
    cell: Arc<RouteCell>,
}

struct ProxyInner {
    engine: Engine,
    routes: Arc<RouteState>,
    statics: Mutex<BTreeMap<u16, Static>>,
    config: ProxyConfig,
    local_addr: SocketAddr,
    stop: AtomicBool,
}

/// A running proxy: its engine, listener and routing table.
///
/// ```
/// use fleetwire::transport::proxy::{Proxy, ProxyConfig};
/// let proxy = Proxy::start(ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap())).unwrap();
/// assert_ne!(proxy.local_addr().port(), 0);
/// assert!(proxy.routes().is_empty());
/// proxy.shutdown(std::time::Duration::from_secs(1));
/// ```
pub struct Proxy {
    inner: Arc<ProxyInner>,
    housekeeping: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds, connects to every route and starts forwarding.
    ///
    /// # Errors
    ///
    /// An invalid configuration or routing table (`InvalidInput`), or binding fails.
    pub fn start(mut config: ProxyConfig) -> io::Result<Proxy> {
        let bad = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        if config.client_ids.is_empty()
            || *config.client_ids.start() == 0
            || *config.client_ids.end() == 0xFFFF
        {
            return Err(bad("client ids must lie in 1..=65534".into()));
        }
        if config.client_ids.contains(&config.node_id) {
            return Err(bad("the proxy's node id lies in the client id range".into()));
        }
        config.check_routes(&config.routes).map_err(|e| bad(e.0))?;
        for c in [&mut config.engine.client, &mut config.engine.server] {
            c.role = Role::Proxy;
            c.node_id = config.node_id;
        }
        let routes = Arc::new(RouteState::new(
            config.client_ids.clone(),
            &config.trusted_peers,
        ));
        let engine = Engine::build(config.engine.clone(), Some(routes.clone()))?;
        let Listener { local_addr, .. } =
            engine.listen(config.listen, config.listen_tls.clone())?;
        config
            .check_routes_at(&config.routes, local_addr)
            .map_err(|e| bad(e.0))?;
        let initial = config.routes.clone();
        let inner = Arc::new(ProxyInner {
            engine,
            routes,
            statics: Mutex::new(BTreeMap::new()),
            config,
            local_addr,
            stop: AtomicBool::new(false),
        });
        inner.apply(&initial)?;
        let weak = Arc::downgrade(&inner);
        let housekeeping = std::thread::Builder::new()
            .name("fleetwire-proxy".into())
            .spawn(move || housekeeping(&weak))?;
        Ok(Proxy {
            inner,
            housekeeping: Some(housekeeping),
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The engine (for [`stats`](Engine::stats) and the like).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The configured routes: node id → address.
    pub fn routes(&self) -> BTreeMap<u16, SocketAddr> {
        lock(&self.inner.statics)
            .iter()
            .map(|(n, s)| (*n, s.addr))
            .collect()
    }

    /// The connection a configured route uses now.
    pub fn route_conn(&self, node: u16) -> Option<ConnId> {
        lock(&self.inner.statics).get(&node).map(|s| s.conn)
    }

    /// Whether a configured route is up: its connection completed the handshake and
    /// has not closed since (a route being reconnected is down). `None` for a node id
    /// that is not in the table.
    ///
    /// ```
    /// use fleetwire::transport::proxy::{Proxy, ProxyConfig};
    /// let mut config = ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap());
    /// config.routes.insert(2, "127.0.0.1:9".parse().unwrap()); // nobody listens
    /// let proxy = Proxy::start(config).unwrap();
    /// assert_eq!(proxy.route_up(2), Some(false));
    /// assert_eq!(proxy.route_up(3), None);
    /// proxy.shutdown(std::time::Duration::from_secs(1));
    /// ```
    pub fn route_up(&self, node: u16) -> Option<bool> {
        lock(&self.inner.statics).get(&node).map(|s| s.up)
    }

    /// Per-route statistics: one entry per configured route ([`RouteKey::Node`]), plus
    /// [`RouteKey::Clients`] and [`RouteKey::Unrouted`]. A route's counters start when
    /// its node id enters the table and survive reconnections and address changes.
    ///
    /// ```
    /// use fleetwire::transport::proxy::{Proxy, ProxyConfig, RouteKey};
    /// let mut config = ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap());
    /// config.routes.insert(2, "127.0.0.1:9".parse().unwrap());
    /// let proxy = Proxy::start(config).unwrap();
    /// let keys: Vec<RouteKey> = proxy.route_stats().into_keys().collect();
    /// assert_eq!(keys, [RouteKey::Node(2), RouteKey::Clients, RouteKey::Unrouted]);
    /// proxy.shutdown(std::time::Duration::from_secs(1));
    /// ```
    pub fn route_stats(&self) -> BTreeMap<RouteKey, RouteStats> {
        let mut stats: BTreeMap<RouteKey, RouteStats> = lock(&self.inner.statics)
            .iter()
            .map(|(n, s)| (RouteKey::Node(*n), s.cell.snapshot()))
            .collect();
        let routes = &self.inner.routes;
        stats.insert(RouteKey::Clients, routes.client_cell.snapshot());
        stats.insert(RouteKey::Unrouted, routes.unrouted.snapshot());
        stats
    }

    /// Replaces the routing table while traffic flows: unchanged routes keep their
    /// connection (and their queued packets), new ones connect, removed ones close
    /// gracefully. The new table is swapped in at once.
    ///
    /// # Errors
    ///
    /// A refused table ([`ProxyConfig::check_routes`]); the old table stays.
    pub fn set_routes(&self, routes: &BTreeMap<u16, SocketAddr>) -> io::Result<()> {
        self.inner
            .config
            .check_routes_at(routes, self.inner.local_addr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.0))?;
        self.inner.apply(routes)
    }

    /// Stops forwarding: closes every connection (waiting up to `timeout`) and the
    /// IO threads. Returns whether everything closed in time. (Dropping a `Proxy` also
    /// stops it, without waiting for the connections.)
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.housekeeping.take() {
            let _ = h.join();
        }
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.engine.shutdown(timeout),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("node_id", &self.inner.config.node_id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl ProxyInner {
    fn connect(&self, addr: SocketAddr, cell: &Arc<RouteCell>) -> io::Result<ConnId> {
        let tls = match &self.config.connect_tls {
            None => TlsOptions::Plaintext,
            Some((config, name)) => TlsOptions::Client {
                config: config.clone(),
                server_name: name.clone().unwrap_or_else(|| addr.ip().to_string()),
            },
        };
        self.engine.connect_routed(addr, tls, Some(cell.clone()))
    }

    /// Connects what is new, closes what is gone, swaps the table.
    fn apply(&self, routes: &BTreeMap<u16, SocketAddr>) -> io::Result<()> {
        let mut statics = lock(&self.statics);
        let mut next = BTreeMap::new();
        for (&node, &addr) in routes {
            let old = statics.remove(&node);
            let cell = old.as_ref().map_or_else(Arc::default, |s| s.cell.clone());
            let s = match old.filter(|s| s.addr == addr) {
                Some(s) => s,
                None => Static {
                    addr,
                    conn: self.connect(addr, &cell)?,
                    retry_at: None,
                    up: false,
                    cell,
                },
            };
            next.insert(node, s);
        }
        let gone: Vec<ConnId> = statics
            .values()
            .map(|s| s.conn)
            .filter(|c| !next.values().any(|s| s.conn == *c))
            .collect();
        *statics = next;
        self.publish(&statics);
        drop(statics);
        for conn in gone {
            self.engine.close(conn);
        }
        Ok(())
    }

    /// Builds the node part of a new table from the configured routes.
    fn publish(&self, statics: &BTreeMap<u16, Static>) {
        let nodes: HashMap<u16, NodeRoute> = statics
            .iter()
            .map(|(n, s)| {
                let conn = self.engine.conn_shared(s.conn);
                (
                    *n,
                    NodeRoute {
                        conn,
                        cell: s.cell.clone(),
                    },
                )
            })
            .collect();
        self.routes.update(|t| t.nodes = nodes);
    }

    /// Takes the engine's events (the proxy's own DATA is discarded) and reconnects
    /// routes whose connection closed.
    fn tick(&self, events: &mut Vec<AppEvent>) {
        {
            self.engine.recv_batch(events, Duration::from_millis(50));
            let now = Instant::now();
            let mut statics = lock(&self.statics);
            let mut changed = false;
            for e in events.drain(..) {
                match e {
                    AppEvent::Closed { conn, .. } => {
                        for s in statics.values_mut().filter(|s| s.conn == conn) {
                            s.retry_at = Some(now + RECONNECT_DELAY);
                            s.up = false;
                            changed = true;
                        }
                    }
                    AppEvent::Connected { conn, .. } => {
                        for s in statics.values_mut().filter(|s| s.conn == conn) {
                            s.up = true;
                        }
                    }
                    _ => {}
                }
            }
            for s in statics.values_mut() {
                if s.retry_at.is_some_and(|t| t <= now) {
                    match self.connect(s.addr, &s.cell) {
                        Ok(conn) => {
                            s.conn = conn;
                            s.retry_at = None;
                        }
                        Err(_) => s.retry_at = Some(now + RECONNECT_DELAY),
                    }
                    changed = true;
                }
            }
            if changed {
                self.publish(&statics);
            }
        }
    }
}

/// The housekeeping thread: runs while the proxy exists and is not stopped.
fn housekeeping(proxy: &Weak<ProxyInner>) {
    let mut events = Vec::new();
    while let Some(inner) = proxy.upgrade() {
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        inner.tick(&mut events);
    }
}

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
//!   A client id that no client holds (a client that has gone) is NO_ROUTE too, never
//!   counted against the link's error budget (spec §12.3 `[[err.budget-gone-client]]`).
//! - Fair share (spec §7.3 `[[route.fair-share]]`): a client whose packets already wait
//!   fills a link's queue only up to seven eighths; a client's packet that finds no room
//!   waits at its ingress (no credit back) instead of being refused, so flooding clients
//!   slow themselves and the others keep their share of the link.
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

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use super::routing::RouteStats;
use super::routing::{NodeRoute, RouteCell, RouteState};
use super::sync::lock;
use super::types::{AppEvent, ConnId, Listener, TlsOptions};
use super::{Engine, EngineConfig};
use crate::control::Role;
use crate::idmap::IdMap;

/// How long a route whose connection closed waits before reconnecting.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

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
    /// name their certificates must carry (`None`: the route's IP address). Feature
    /// `tls`.
    #[cfg(feature = "tls")]
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
    with_routes => routes: BTreeMap<u16, SocketAddr>,
    with_client_ids => client_ids: RangeInclusive<u16>,
    with_trusted_peers => trusted_peers: Vec<IpAddr>,
    with_engine => engine: EngineConfig,
});

#[cfg(feature = "tls")]
impl ProxyConfig {
    /// Returns `self` with [`connect_tls`](ProxyConfig::connect_tls) set to `value`
    /// (builder style).
    #[must_use]
    pub fn with_connect_tls(
        mut self,
        value: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    ) -> Self {
        self.connect_tls = value;
        self
    }
}

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
            #[cfg(feature = "tls")]
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
            if c.role == Role::Client {
                // a client template becomes a proxy's: the spec's defaults for a proxy
                // (§7.4 [[src.auth]]: never trust a claimed role by default)
                c.require_auth = true;
                c.trust_server_as_proxy = false;
            }
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
        // the caller's subscriber, also when it is only this thread's default
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let housekeeping = std::thread::Builder::new()
            .name("fleetwire-proxy".into())
            .spawn(move || tracing::dispatcher::with_default(&dispatch, || housekeeping(&weak)))?;
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
        #[cfg(feature = "tls")]
        let tls = match &self.config.connect_tls {
            None => TlsOptions::Plaintext,
            Some((config, name)) => TlsOptions::Client {
                config: config.clone(),
                server_name: name.clone().unwrap_or_else(|| addr.ip().to_string()),
            },
        };
        #[cfg(not(feature = "tls"))]
        let tls = TlsOptions::Plaintext;
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
        let nodes: IdMap<NodeRoute> = statics
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
                    AppEvent::Closed {
                        conn, code, reason, ..
                    } => {
                        for (node, s) in statics.iter_mut().filter(|(_, s)| s.conn == conn) {
                            s.retry_at = Some(now + RECONNECT_DELAY);
                            if std::mem::replace(&mut s.up, false) {
                                let addr = s.addr;
                                tracing::info!(node, %addr, %code, reason = reason.as_str(), "route {node} ({addr}) down");
                            }
                            changed = true;
                        }
                    }
                    AppEvent::Connected { conn, .. } => {
                        for (node, s) in statics.iter_mut().filter(|(_, s)| s.conn == conn) {
                            if !std::mem::replace(&mut s.up, true) {
                                let addr = s.addr;
                                tracing::info!(node, %addr, "route {node} ({addr}) up");
                            }
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
                        Err(e) => {
                            tracing::debug!(addr = %s.addr, error = %e, "route reconnect failed");
                            s.retry_at = Some(now + RECONNECT_DELAY);
                        }
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

//! A local cluster in one process, on loopback (`fleetwire cluster`): one proxy, two
//! echo nodes and N clients sending steady traffic through the proxy to both nodes, with
//! per-route throughput ([`Proxy::route_stats`]) and the round-trip latency the clients
//! measure.
//!
//! - The nodes ([`NODES`]) are engines whose native handler echoes every DATA packet of
//!   [`SERVICE`] back to its source, the client id the proxy stamped (spec §7.4).
//! - Each client keeps [`ClusterConfig::window`] packets in flight to each node and
//!   sends a new one for every echo (a closed loop): the load follows what the machine
//!   can do, and nothing queues without bound. A payload starts with its send time; the
//!   echo gives the round trip.
//! - With [`ClusterConfig::tls`], a throw-away test PKI
//!   ([`generate_test_pki`](crate::tls::generate_test_pki)): each node presents a
//!   `fleetwire:node:<id>` certificate and requires a client certificate; the proxy
//!   presents a `fleetwire:proxy:<id>` certificate to clients and to nodes, which
//!   therefore honour its stamps (spec §7.4, §10.2). Without it, plaintext, the nodes
//!   configured to trust the link from the proxy (§7.4).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::proxy::{Proxy, ProxyConfig, RouteKey, RouteStats};
use super::shared::lock;
use super::types::{AppEvent, ConnId, SendFlags, TlsOptions};
use super::{Engine, EngineConfig, Message, Reply};
use crate::connection::Identity;
use crate::header::Route;
use crate::tls::{client_config, generate_test_pki, server_config, TlsError};

/// The service the clients send to and the nodes echo.
pub const SERVICE: u8 = 1;
/// The nodes' ids.
pub const NODES: [u16; 2] = [1, 2];
/// The proxy's node id.
pub const PROXY_ID: u16 = 100;
/// Round-trip samples kept per node between two reports (the rest are not recorded).
const MAX_SAMPLES: usize = 1 << 20;

/// How a [`Cluster`] runs.
///
/// Start from [`ClusterConfig::default`] and adjust the fields or use the `with_*`
/// setters (the struct is `#[non_exhaustive]`).
///
/// ```
/// use fleetwire::transport::cluster::ClusterConfig;
/// let config = ClusterConfig::default().with_clients(4);
/// assert!(config.validate().is_ok());
/// assert!(config.with_size(7).validate().is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Clients connected to the proxy (at least 1).
    pub clients: usize,
    /// Payload bytes per packet, 8…65535 (the first 8 hold the send time).
    pub size: usize,
    /// Packets each client keeps in flight to each node (at least 1).
    pub window: usize,
    /// TLS with a throw-away test PKI; plaintext otherwise.
    pub tls: bool,
}

impl Default for ClusterConfig {
    /// Two clients, 64-byte payloads, 32 packets in flight per client and node,
    /// plaintext.
    ///
    /// ```
    /// let c = fleetwire::transport::cluster::ClusterConfig::default();
    /// assert_eq!((c.clients, c.size, c.window, c.tls), (2, 64, 32, false));
    /// ```
    fn default() -> ClusterConfig {
        ClusterConfig {
            clients: 2,
            size: 64,
            window: 32,
            tls: false,
        }
    }
}

crate::setters::setters!(ClusterConfig {
    with_clients => clients: usize,
    with_size => size: usize,
    with_window => window: usize,
    with_tls => tls: bool,
});

impl ClusterConfig {
    /// Checks the settings; returns the first rule broken.
    ///
    /// # Errors
    ///
    /// No client, a window of 0, or a size outside 8…65535.
    ///
    /// ```
    /// use fleetwire::transport::cluster::ClusterConfig;
    /// assert!(ClusterConfig::default().with_window(0).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.clients == 0 {
            return Err("at least one client");
        }
        if self.window == 0 {
            return Err("a window of at least one packet");
        }
        if !(8..=usize::from(u16::MAX)).contains(&self.size) {
            return Err("a payload size of 8..=65535 bytes");
        }
        Ok(())
    }
}

/// One route's line of a [`Cluster::report`]: what happened since the previous report.
///
/// ```
/// use fleetwire::transport::cluster::RouteReport;
/// use fleetwire::transport::proxy::RouteKey;
/// let r = RouteReport {
///     route: RouteKey::Node(1),
///     packets_per_sec: 1000.0,
///     mbytes_per_sec: 0.064,
///     refused: 0,
///     rtt_p50: None,
///     rtt_p99: None,
/// };
/// assert_eq!(r.route, RouteKey::Node(1));
/// ```
#[derive(Clone, PartialEq, Debug)]
pub struct RouteReport {
    /// A node's route, or the echoes back to the clients ([`RouteKey::Clients`]).
    pub route: RouteKey,
    /// DATA packets the proxy forwarded on this route, per second.
    pub packets_per_sec: f64,
    /// Their payload, in megabytes (10^6 bytes) per second.
    pub mbytes_per_sec: f64,
    /// Packets refused on this route (NO_ROUTE or UNREACHABLE).
    pub refused: u64,
    /// The median round trip of the clients' packets to this node, echo included;
    /// `None` for the clients' route or when no echo came back.
    pub rtt_p50: Option<Duration>,
    /// The 99th percentile of the same.
    pub rtt_p99: Option<Duration>,
}

/// Round-trip samples per node, filled by the clients' thread, taken by reports.
type Samples = Arc<Mutex<BTreeMap<u16, Vec<Duration>>>>;

/// A running local cluster; stops when dropped or [`stop`](Cluster::stop)ped.
///
/// ```
/// use std::time::Duration;
/// use fleetwire::transport::cluster::{Cluster, ClusterConfig};
/// use fleetwire::transport::proxy::RouteKey;
/// let mut cluster = Cluster::start(ClusterConfig::default()).unwrap();
/// std::thread::sleep(Duration::from_millis(500));
/// let report = cluster.report();
/// let nodes: Vec<RouteKey> = report.iter().map(|r| r.route).collect();
/// assert_eq!(nodes, [RouteKey::Node(1), RouteKey::Node(2), RouteKey::Clients]);
/// cluster.stop();
/// ```
pub struct Cluster {
    proxy: Option<Proxy>,
    nodes: Vec<Engine>,
    stop: Arc<AtomicBool>,
    clients: Option<JoinHandle<()>>,
    samples: Samples,
    last: (Instant, BTreeMap<RouteKey, RouteStats>),
}

impl Cluster {
    /// Starts the nodes, the proxy and the clients; traffic starts at once.
    ///
    /// # Errors
    ///
    /// An invalid configuration (`InvalidInput`), a certificate that cannot be made, or
    /// a socket or thread the OS refuses.
    pub fn start(config: ClusterConfig) -> io::Result<Cluster> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let pki = if config.tls {
            Some(Pki::new().map_err(tls_error)?)
        } else {
            None
        };
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut nodes = Vec::new();
        let mut proxy_config = ProxyConfig::new(PROXY_ID, loopback);
        for id in NODES {
            let (engine, addr) = start_node(id, pki.as_ref(), loopback)?;
            nodes.push(engine);
            proxy_config.routes.insert(id, addr);
        }
        if let Some(pki) = &pki {
            proxy_config.listen_tls = TlsOptions::Server(pki.proxy_server.clone());
            proxy_config.connect_tls = Some((pki.proxy_client.clone(), None));
        }
        let proxy = Proxy::start(proxy_config)?;
        let client_tls = match &pki {
            None => TlsOptions::Plaintext,
            Some(pki) => TlsOptions::Client {
                config: pki.client.clone(),
                server_name: "127.0.0.1".into(),
            },
        };
        let mut engine_config = EngineConfig::default();
        // the proxy stamps the echoing node as the source (§7.4): we trust it
        engine_config.client.trust_server_as_proxy = true;
        let engine = Engine::new(engine_config)?;
        let conns = (0..config.clients)
            .map(|_| engine.connect(proxy.local_addr(), client_tls.clone()))
            .collect::<io::Result<Vec<ConnId>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Samples::default();
        let clients = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::Builder::new()
                .name("fleetwire-cluster-clients".into())
                .spawn(move || run_clients(&engine, &conns, &config, &stop, &samples))?
        };
        let last = (Instant::now(), proxy.route_stats());
        Ok(Cluster {
            proxy: Some(proxy),
            nodes,
            stop,
            clients: Some(clients),
            samples,
            last,
        })
    }

    /// The proxy (its address, its [`route_stats`](Proxy::route_stats)).
    ///
    /// ```
    /// # use fleetwire::transport::cluster::{Cluster, ClusterConfig};
    /// let cluster = Cluster::start(ClusterConfig::default()).unwrap();
    /// assert!(cluster.proxy().local_addr().ip().is_loopback());
    /// ```
    pub fn proxy(&self) -> &Proxy {
        self.proxy
            .as_ref()
            .expect("the proxy runs until the cluster stops")
    }

    /// What happened since the previous report (or the start): one line per node's
    /// route, then the route of the echoes back to the clients.
    ///
    /// ```
    /// # use fleetwire::transport::cluster::{Cluster, ClusterConfig};
    /// let mut cluster = Cluster::start(ClusterConfig::default()).unwrap();
    /// assert_eq!(cluster.report().len(), 3);
    /// ```
    pub fn report(&mut self) -> Vec<RouteReport> {
        let now = Instant::now();
        let stats = self.proxy().route_stats();
        let mut samples = std::mem::take(&mut *lock(&self.samples));
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-6);
        let keys = NODES
            .map(RouteKey::Node)
            .into_iter()
            .chain([RouteKey::Clients]);
        let report = keys
            .map(|route| {
                let s = stats.get(&route).copied().unwrap_or_default();
                let before = self.last.1.get(&route).copied().unwrap_or_default();
                let rtts = match route {
                    RouteKey::Node(n) => samples.remove(&n).unwrap_or_default(),
                    _ => Vec::new(),
                };
                let (rtt_p50, rtt_p99) = percentiles(rtts);
                RouteReport {
                    route,
                    packets_per_sec: (s.packets - before.packets) as f64 / secs,
                    mbytes_per_sec: (s.bytes - before.bytes) as f64 / secs / 1e6,
                    refused: s.no_route + s.unreachable - before.no_route - before.unreachable,
                    rtt_p50,
                    rtt_p99,
                }
            })
            .collect();
        self.last = (now, stats);
        report
    }

    /// Stops the clients, then the proxy and the nodes, each given up to a second to
    /// close its connections gracefully.
    ///
    /// ```
    /// # use fleetwire::transport::cluster::{Cluster, ClusterConfig};
    /// Cluster::start(ClusterConfig::default()).unwrap().stop();
    /// ```
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.clients.take() {
            let _ = t.join();
        }
        if let Some(p) = self.proxy.take() {
            p.shutdown(Duration::from_secs(1));
        }
        for mut node in self.nodes.drain(..) {
            node.shutdown(Duration::from_secs(1));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.halt();
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// The TLS configurations of a cluster, from one throw-away CA.
struct Pki {
    ca: crate::tls::TestPki,
    proxy_server: Arc<rustls::ServerConfig>,
    proxy_client: Arc<rustls::ClientConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Pki {
    fn new() -> Result<Pki, TlsError> {
        // spec §10.2: every certificate names 127.0.0.1 (the address connected to);
        // the proxy's binds its proxy identity, the nodes' their node ids
        let ca = generate_test_pki(&["127.0.0.1"], None)?;
        let proxy = ca.issue_identity(&["127.0.0.1"], Some(Identity::proxy(PROXY_ID)))?;
        let (cert, key) = (proxy.cert_pem.as_bytes(), proxy.key_pem.as_bytes());
        let ca_pem = ca.ca_cert_pem.as_bytes();
        Ok(Pki {
            proxy_server: server_config(cert, key, None)?,
            proxy_client: client_config(ca_pem, Some((cert, key)))?,
            client: client_config(ca_pem, None)?,
            ca,
        })
    }

    /// A node's server configuration: its node identity, client certificates required.
    fn node_server(&self, id: u16) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let leaf = self.ca.issue(&["127.0.0.1"], Some(id))?;
        let ca_pem = self.ca.ca_cert_pem.as_bytes();
        server_config(
            leaf.cert_pem.as_bytes(),
            leaf.key_pem.as_bytes(),
            Some(ca_pem),
        )
    }
}

fn tls_error(e: TlsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// An echo node: an engine listening on loopback with a native echo handler.
fn start_node(id: u16, pki: Option<&Pki>, at: SocketAddr) -> io::Result<(Engine, SocketAddr)> {
    let mut config = EngineConfig::default();
    config.server.node_id = id;
    // spec §7.4 [[src.trust]]: over plaintext the link from the proxy is trusted by
    // local configuration; over TLS the proxy authenticates with its proxy identity
    config.server.trust_source = pki.is_none();
    let engine = Engine::new(config)?;
    engine.register_handler(SERVICE, Box::new(echo));
    let tls = match pki {
        None => TlsOptions::Plaintext,
        Some(pki) => TlsOptions::Server(pki.node_server(id).map_err(tls_error)?),
    };
    let listener = engine.listen(at, tls)?;
    Ok((engine, listener.local_addr))
}

/// Echoes a packet to its source (the client id the proxy stamped).
fn echo(m: &Message, reply: &mut Reply) {
    let back = Route::new(m.source, m.route.service, m.route.channel);
    reply.send(back, m.payload.clone(), SendFlags::default());
}

/// The clients' thread: `window` packets in flight per connection and node, one more
/// for every echo, the round trip of each echo recorded.
fn run_clients(
    engine: &Engine,
    conns: &[ConnId],
    config: &ClusterConfig,
    stop: &AtomicBool,
    samples: &Mutex<BTreeMap<u16, Vec<Duration>>>,
) {
    let epoch = Instant::now();
    let send = |conn: ConnId, node: u16| {
        let mut payload = vec![0u8; config.size];
        let sent = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        let route = Route::new(node, SERVICE, 0);
        // a refused send (the connection closed) ends that loop
        let _ = engine.send(conn, route, Bytes::from(payload), SendFlags::default());
    };
    for &conn in conns {
        for node in NODES {
            (0..config.window).for_each(|_| send(conn, node));
        }
    }
    let (mut events, mut batch) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::SeqCst) {
        engine.recv_batch(&mut events, Duration::from_millis(50));
        let now = epoch.elapsed();
        for e in events.drain(..) {
            let AppEvent::Message(m) = e else { continue };
            let Some(sent) = m.payload.get(..8) else {
                continue;
            };
            if NODES.contains(&m.source) {
                let sent = u64::from_be_bytes(sent.try_into().unwrap_or_default());
                batch.push((m.source, now.saturating_sub(Duration::from_nanos(sent))));
                send(m.conn, m.source);
            }
        }
        if !batch.is_empty() {
            let mut samples = lock(samples);
            for (node, rtt) in batch.drain(..) {
                let v = samples.entry(node).or_default();
                if v.len() < MAX_SAMPLES {
                    v.push(rtt);
                }
            }
        }
    }
}

/// The median and the 99th percentile (nearest rank) of `v`.
fn percentiles(mut v: Vec<Duration>) -> (Option<Duration>, Option<Duration>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_unstable();
    let rank = |p: usize| v[(v.len() * p).div_ceil(100).clamp(1, v.len()) - 1];
    (Some(rank(50)), Some(rank(99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(percentiles(Vec::new()), (None, None));
        assert_eq!(percentiles(vec![ms(7)]), (Some(ms(7)), Some(ms(7))));
        let v: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentiles(v), (Some(ms(50)), Some(ms(99))));
        let v: Vec<Duration> = (1..=10).map(ms).collect();
        assert_eq!(percentiles(v), (Some(ms(5)), Some(ms(10))));
    }
}

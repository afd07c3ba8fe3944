//! The reference node: accepts connections and echoes DATA back to its sender.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::driver::{Driver, Step};
use super::metrics::{ConnCounters, NodeMetrics};
use super::transport::{Clock, Transport};
use super::{CloseInfo, NodeError, NodeSecurity};
use crate::connection::{Config, Event, SendError, SendOptions};
use crate::error::ErrorCode;
use crate::header::{Codec, Route};
use crate::tls::TlsEndpoint;

/// How often an idle connection thread wakes to notice a [`Shutdown`].
const TICK: Duration = Duration::from_millis(100);

/// Where the node writes its log lines (one per connection opened and one per connection
/// closed): a shared closure.
///
/// ```
/// use std::sync::Arc;
/// use fleetwire::node::LogFn;
/// let log: LogFn = Arc::new(|line: &str| eprintln!("{line}"));
/// log("conn 1 open");
/// ```
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// What the reference node does and how it protects its connections.
///
/// ```
/// use fleetwire::node::{NodeOptions, NodeSecurity};
/// use fleetwire::Codec;
/// let mut opts = NodeOptions::new(7, NodeSecurity::Plaintext);
/// opts.echo_codec = Codec::Snappy; // echo compressed when the peer announced snappy
/// opts.max_conns = Some(10);
/// assert_eq!(opts.config.node_id, 7);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// Plaintext or TLS; no default (spec §2 `[[layer.no-fallback]]`).
    pub security: NodeSecurity,
    /// The connection configuration of every accepted connection: role node, our node
    /// id, limits, codecs, services (spec §5.2, §11). Per connection, the node sets
    /// `authenticated` to the id named by the peer's certificate and, with mutual TLS,
    /// `require_auth` (spec §7.4, §10.2).
    pub config: Config,
    /// The codec preferred for echoed DATA (spec §9.2: used only when the peer announced
    /// it and it makes the payload smaller; never for payloads marked N = 1).
    pub echo_codec: Codec,
    /// Stop accepting after this many connections and return once they are closed.
    pub max_conns: Option<usize>,
    /// Receives the log lines; `None` logs nothing.
    pub log: Option<LogFn>,
    /// Triggers a graceful shutdown: GOAWAY NO_ERROR on every connection (spec §6.4).
    pub shutdown: Shutdown,
    /// Live counters, per connection and in total; keep a clone to read them.
    pub metrics: NodeMetrics,
    /// Addresses whose connections are trusted proxy links (spec §7.4 `[[src.trust]]`:
    /// "explicit local configuration of a trusted link"): a peer connecting from one of
    /// them that announces role proxy may stamp sources. For plaintext links on
    /// loopback or a private network; over TLS a `fleetwire:proxy:<id>` certificate
    /// authenticates a proxy without it.
    ///
    /// ```
    /// use fleetwire::node::{NodeOptions, NodeSecurity};
    /// let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    /// opts.trusted_peers.push("127.0.0.1".parse().unwrap()); // a proxy on this host
    /// ```
    pub trusted_peers: Vec<IpAddr>,
}

impl NodeOptions {
    /// A node with id `node_id` (1…65534) and default limits, echoing uncompressed.
    ///
    /// ```
    /// use fleetwire::node::{NodeOptions, NodeSecurity};
    /// let opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    /// assert!(opts.max_conns.is_none() && opts.log.is_none());
    /// ```
    pub fn new(node_id: u16, security: NodeSecurity) -> NodeOptions {
        NodeOptions {
            security,
            config: Config::node(node_id),
            echo_codec: Codec::None,
            max_conns: None,
            log: None,
            shutdown: Shutdown::new(),
            metrics: NodeMetrics::default(),
            trusted_peers: Vec::new(),
        }
    }
}

impl fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeOptions")
            .field("security", &self.security)
            .field("config", &self.config)
            .field("echo_codec", &self.echo_codec)
            .field("max_conns", &self.max_conns)
            .field("log", &self.log.is_some())
            .field("trusted_peers", &self.trusted_peers)
            .finish_non_exhaustive()
    }
}

/// A handle that stops a running [`serve`] gracefully: no new connections; every open
/// connection sends GOAWAY NO_ERROR and drains (spec §6.4); `serve` returns once all are
/// closed. Clones share the same state.
///
/// ```
/// use std::net::TcpListener;
/// use fleetwire::node::{serve, NodeOptions, NodeSecurity};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let opts = NodeOptions::new(1, NodeSecurity::Plaintext);
/// let stop = opts.shutdown.clone();
/// let node = std::thread::spawn(move || serve(listener, opts));
/// stop.trigger();
/// node.join().unwrap().unwrap();
/// assert!(stop.is_triggered());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    flag: AtomicBool,
    /// The listener's address, to wake a blocked `accept`.
    wake: Mutex<Option<SocketAddr>>,
}

impl Shutdown {
    /// A handle not yet triggered.
    ///
    /// ```
    /// assert!(!fleetwire::node::Shutdown::new().is_triggered());
    /// ```
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the graceful shutdown.
    ///
    /// ```
    /// let s = fleetwire::node::Shutdown::new();
    /// s.trigger();
    /// assert!(s.is_triggered());
    /// ```
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let addr = *self.inner.wake.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = addr {
            // Wakes the accept loop, which then sees the flag.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Whether [`trigger`](Shutdown::trigger) was called.
    ///
    /// ```
    /// assert!(!fleetwire::node::Shutdown::default().is_triggered());
    /// ```
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    fn set_wake(&self, addr: SocketAddr) {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            let loopback = match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            addr.set_ip(loopback);
        }
        *self.inner.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
}

/// Runs the reference node on `listener`, one thread per connection, until
/// `opts.max_conns` connections have been served or `opts.shutdown` is triggered; then
/// waits for the open connections to close and returns.
///
/// Each connection: TLS handshake when configured (bounded by the handshake timer, spec
/// §6.5), preface and HELLO (§3), then DATA echoed back to its sender — same service and
/// channel, destination the packet's source (§7.4) — PING answered by the state machine
/// (§5.3), credit granted as echoes are queued (§8: an echo that lacks the peer's credit
/// waits, and so does the peer's credit), timers from a monotonic clock (§6.5), GOAWAY
/// answered (§6.4). One log line per connection opened and closed, with the close code.
///
/// # Errors
///
/// Only errors of the listener itself; a failing connection is logged and closed.
///
/// ```
/// use std::net::TcpListener;
/// use std::sync::{Arc, Mutex};
/// use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let lines = Arc::new(Mutex::new(Vec::new()));
/// let sink = lines.clone();
/// let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
/// opts.max_conns = Some(1);
/// opts.log = Some(Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_owned())));
/// let node = std::thread::spawn(move || serve(listener, opts));
///
/// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
/// client.close().unwrap();
/// node.join().unwrap().unwrap();
/// let lines = lines.lock().unwrap();
/// assert!(lines[0].contains("open"));
/// assert!(lines[1].contains("closed") && lines[1].contains("NO_ERROR (0x0000)"));
/// ```
pub fn serve(listener: TcpListener, opts: NodeOptions) -> io::Result<()> {
    opts.shutdown.set_wake(listener.local_addr()?);
    let opts = Arc::new(opts);
    let mut threads: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut accepted = 0usize;
    while opts.max_conns.is_none_or(|max| accepted < max) && !opts.shutdown.is_triggered() {
        let accept = listener.accept();
        if opts.shutdown.is_triggered() {
            break;
        }
        let (sock, peer) = match accept {
            Ok(conn) => conn,
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        accepted += 1;
        let id = accepted;
        let opts = opts.clone();
        threads.retain(|t| !t.is_finished());
        threads.push(
            thread::Builder::new()
                .name(format!("fleetwire-conn-{id}"))
                .spawn(move || serve_connection(sock, peer, id, &opts))?,
        );
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Accept errors that concern one connection, not the listener.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One connection from accept to close, with its two log lines.
fn serve_connection(sock: TcpStream, peer: SocketAddr, id: usize, opts: &NodeOptions) {
    let log = |line: String| {
        if let Some(log) = &opts.log {
            log(&line);
        }
    };
    let transport = if opts.security.is_tls() {
        "tls"
    } else {
        "plaintext"
    };
    log(format!("conn {id} open from {peer} ({transport})"));
    let mut stats = Counters {
        live: Some(opts.metrics.open(id, peer)),
        ..Counters::default()
    };
    let result = run_connection(sock, peer, opts, &mut stats);
    let code = result
        .as_ref()
        .map_or(ErrorCode::CONNECTION_LOST, |i| i.code);
    opts.metrics.close(id, code);
    let who = stats
        .peer
        .map_or_else(String::new, |p| format!(" peer {p}"));
    let line = match result {
        Ok(info) => format!(
            "conn {id} closed{who}: code {info}; echoed {}/{} DATA",
            stats.echoed, stats.received
        ),
        Err(err) => format!("conn {id} closed{who}: {err}"),
    };
    log(line);
}

/// What a connection did, for its close line.
#[derive(Default)]
struct Counters {
    peer: Option<PeerLabel>,
    received: u64,
    echoed: u64,
    /// Where the counters are published for [`NodeOptions::metrics`].
    live: Option<Arc<ConnCounters>>,
}

impl Counters {
    fn publish(&self, driver: &Driver) {
        if let Some(live) = &self.live {
            let io = &driver.io;
            live.publish(self.received, self.echoed, io.bytes_sent, io.bytes_received);
        }
    }
}

#[derive(Clone, Copy)]
struct PeerLabel {
    role: crate::control::Role,
    node_id: u16,
}

impl fmt::Display for PeerLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role.name(), self.node_id)
    }
}

/// Handshakes, then echoes until the connection closes.
fn run_connection(
    sock: TcpStream,
    peer: SocketAddr,
    opts: &NodeOptions,
    stats: &mut Counters,
) -> Result<CloseInfo, NodeError> {
    let clock = Clock::new();
    let handshake = Duration::from_millis(opts.config.limits.handshake_timeout_ms);
    let mut config = opts.config.clone();
    // spec §7.4 [[src.trust]]: a link configured as trusted
    config.trust_source |= opts.trusted_peers.contains(&peer.ip());
    let io = match &opts.security {
        NodeSecurity::Plaintext => Transport::new(sock, None)?,
        NodeSecurity::Tls {
            config: tls,
            mutual,
        } => {
            let mut io = Transport::new(sock, Some(TlsEndpoint::server(tls.clone())?))?;
            io.tls_handshake(Instant::now() + handshake)?;
            // spec §10.2 [[tls.node-binding]]: the HELLO node id must match the cert
            config.authenticated = io.peer_identity();
            // spec §7.4 [[src.auth]]: with mutual TLS, role node/proxy needs a cert id
            config.require_auth |= *mutual;
            io
        }
    };
    let mut driver = Driver::open(io, config, clock)?;
    let result = echo_loop(&mut driver, opts, stats);
    driver.finish();
    result
}

/// Processes events and input until the connection is closed.
fn echo_loop(
    driver: &mut Driver,
    opts: &NodeOptions,
    stats: &mut Counters,
) -> Result<CloseInfo, NodeError> {
    loop {
        let taken = take_events(driver, opts, stats);
        stats.publish(driver);
        if let Some(info) = taken {
            return Ok(info);
        }
        if opts.shutdown.is_triggered() && driver.conn.is_established() {
            // spec §6.4: graceful close, GOAWAY NO_ERROR, then DRAINING
            let now = driver.now();
            driver.conn.close(now, "node shutting down");
        }
        if driver.step(Some(Instant::now() + TICK))? == Step::Eof {
            if let Some(info) = take_events(driver, opts, stats) {
                return Ok(info);
            }
            return Ok(plaintext_hint(driver, driver.lost()));
        }
    }
}

/// Names the misconfiguration when a TLS client reached this plaintext node (spec §3).
fn plaintext_hint(driver: &Driver, mut info: CloseInfo) -> CloseInfo {
    if driver.io.peer_sent_tls() {
        info.reason = format!(
            "{} (the peer sent a TLS record, first byte 0x{:02x}: it expects TLS, but this \
             node is plaintext; spec §2 forbids fallback)",
            info.reason,
            driver.io.first_byte().unwrap_or(0)
        );
    }
    info
}

/// Takes the events that can be handled now. DATA is taken only once its echo is
/// queued, so that the peer's credit returns only as fast as the peer consumes our
/// echoes (spec §8 `[[flow.grant]]`). Returns the close record at the end.
fn take_events(driver: &mut Driver, opts: &NodeOptions, stats: &mut Counters) -> Option<CloseInfo> {
    loop {
        let echo = match driver.conn.peek_event()? {
            Event::Data {
                source,
                route,
                payload,
                never_compress,
            } => {
                // Echo to the sender: destination = the packet's source (§7.4), 0 for an
                // unattributed client, which §4.6 reads as "the peer itself".
                let back = Route::new(*source, route.service, route.channel);
                let send = SendOptions {
                    codec: opts.echo_codec,
                    never_compress: *never_compress, // §4.4: secrets stay N = 1
                };
                Some((back, payload.clone(), send))
            }
            Event::Established { peer } => {
                stats.peer = Some(PeerLabel {
                    role: peer.role,
                    node_id: peer.node_id,
                });
                None
            }
            event @ Event::Closed { .. } => {
                let info = CloseInfo::from_event(event);
                driver.conn.poll_event();
                return info.map(|i| plaintext_hint(driver, i));
            }
            _ => None, // PONG of a keepalive, packet errors: nothing to do
        };
        if let Some((back, payload, send)) = echo {
            match driver.conn.send_data(back, &payload, send) {
                Err(SendError::NoCredit) => return None, // wait for the peer's CREDIT
                Ok(()) => stats.echoed += 1,
                Err(_) => {} // closing, or too large to echo: dropped
            }
            stats.received += 1;
        }
        driver.conn.poll_event();
    }
}

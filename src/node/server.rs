//! The reference node: accepts connections and echoes DATA back to its sender.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::driver::{Driver, Step};
use super::metrics::{ConnCounters, NodeMetrics};
use super::transport::{Clock, Transport};
use super::{CloseInfo, NodeError, NodeSecurity};
use crate::connection::{Config, Event, SendError, SendOptions};
use crate::control::Role;
use crate::error::ErrorCode;
use crate::header::{Codec, Route};
use crate::tls::TlsEndpoint;

/// How often an idle connection thread wakes to notice a [`Shutdown`].
const TICK: Duration = Duration::from_millis(100);

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
    ///
    /// Without such an address (or mutual TLS), a peer announcing role node or proxy is
    /// refused with BAD_HELLO (spec §7.4 `[[src.auth]]`).
    pub trusted_peers: Vec<IpAddr>,
    /// The sources this echo node answers through a proxy: the ids proxies attribute to
    /// clients (default `40000..=65534`, the proxy's default `client_ids`), and 0, an
    /// unattributed client. DATA whose source is a node — any other source through a
    /// proxy, or a peer announcing role node — is received but not echoed, so that two
    /// echo nodes never answer each other forever (spec §14.6 `[[route.reflector]]`).
    ///
    /// ```
    /// use fleetwire::node::{NodeOptions, NodeSecurity};
    /// let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    /// assert!(opts.client_sources.contains(&40000));
    /// opts.client_sources = 1000..=1999; // a proxy started with --client-ids 1000-1999
    /// ```
    pub client_sources: RangeInclusive<u16>,
}

impl NodeOptions {
    /// A node with id `node_id` (1…65534) and default limits, echoing uncompressed.
    ///
    /// ```
    /// use fleetwire::node::{NodeOptions, NodeSecurity};
    /// let opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    /// assert!(opts.max_conns.is_none());
    /// ```
    pub fn new(node_id: u16, security: NodeSecurity) -> NodeOptions {
        NodeOptions {
            security,
            config: Config::node(node_id),
            echo_codec: Codec::None,
            max_conns: None,
            shutdown: Shutdown::new(),
            metrics: NodeMetrics::default(),
            trusted_peers: Vec::new(),
            client_sources: 40000..=65534,
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
            .field("trusted_peers", &self.trusted_peers)
            .field("client_sources", &self.client_sources)
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
/// answered (§6.4).
///
/// Logs through `tracing` (quiet until the application installs a subscriber): an INFO
/// event per connection opened (`conn`, `peer`, `transport`) and closed (`conn`, `code`,
/// `peer_role`, `peer_id`, with the old one-line summary as its message), WARN for an
/// echo too large to send and for accept failures; each connection's thread runs in a
/// span `conn{id, peer}` with the subscriber of the thread that called `serve`, so the
/// connection state machine's own events (packet errors, floods) carry it.
///
/// # Errors
///
/// Only errors of the listener itself; a failing connection is logged and closed.
///
/// ```
/// use std::net::TcpListener;
/// use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
/// opts.max_conns = Some(1);
/// // with a subscriber installed (e.g. `tracing_subscriber::fmt::init()`) this logs
/// // "conn 1 open from 127.0.0.1:… (plaintext)" and "conn 1 closed peer client 0: code
/// // NO_ERROR (0x0000) by the peer; echoed 0/0 DATA"
/// let node = std::thread::spawn(move || serve(listener, opts));
///
/// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
/// client.close().unwrap();
/// node.join().unwrap().unwrap();
/// ```
pub fn serve(listener: TcpListener, opts: NodeOptions) -> io::Result<()> {
    opts.shutdown.set_wake(listener.local_addr()?);
    let opts = Arc::new(opts);
    let mut threads: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut accepted = 0usize;
    let mut backoff = Backoff::default();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    while opts.max_conns.is_none_or(|max| accepted < max) && !opts.shutdown.is_triggered() {
        let accept = listener.accept();
        if opts.shutdown.is_triggered() {
            break;
        }
        let (sock, peer) = match accept {
            Ok(conn) => conn,
            Err(e) if is_transient(&e) => continue,
            Err(e) if is_exhaustion(&e) => {
                // Out of descriptors or memory: the open connections keep running;
                // accepting resumes once one of them closes (or memory frees).
                let wait = backoff.next();
                tracing::warn!(error = %e, ?wait, "accept failed: {e}; retrying in {wait:?}");
                thread::sleep(wait);
                continue;
            }
            Err(e) => return Err(e),
        };
        accepted += 1;
        let id = accepted;
        let conn_opts = opts.clone();
        threads.retain(|t| !t.is_finished());
        let dispatch = dispatch.clone();
        let spawned = thread::Builder::new()
            .name(format!("fleetwire-conn-{id}"))
            .spawn(move || {
                // the caller's subscriber, also when it is only this thread's default
                tracing::dispatcher::with_default(&dispatch, || {
                    let span = tracing::info_span!("conn", id, %peer);
                    let _entered = span.enter();
                    serve_connection(sock, peer, id, &conn_opts);
                });
            });
        match spawned {
            Ok(t) => {
                backoff = Backoff::default();
                threads.push(t);
            }
            Err(e) => {
                // No thread for it (the socket is dropped, the peer sees a reset):
                // the other connections keep running.
                let wait = backoff.next();
                tracing::warn!(
                    conn = id,
                    %peer,
                    "conn {id} from {peer} refused: no thread ({e}); retrying in {wait:?}"
                );
                thread::sleep(wait);
            }
        }
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

/// Accept errors of an exhausted process or system (EMFILE, ENFILE, ENOBUFS, ENOMEM):
/// wait and retry, keeping every open connection.
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux; the BSDs differ only in ENOBUFS)
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 55 | 105))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// Exponential backoff for a resource-starved accept loop: 10 ms doubling to 1 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(10 << self.failures.min(7)).min(Duration::from_secs(1));
        self.failures += 1;
        wait
    }
}

/// One connection from accept to close, with its two log lines.
fn serve_connection(sock: TcpStream, peer: SocketAddr, id: usize, opts: &NodeOptions) {
    let transport = if opts.security.is_tls() {
        "tls"
    } else {
        "plaintext"
    };
    tracing::info!(conn = id, %peer, transport, "conn {id} open from {peer} ({transport})");
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
    let (role, peer_id) = stats.peer.map_or(("", 0), |p| (p.role.name(), p.node_id));
    match result {
        Ok(info) => tracing::info!(
            conn = id,
            code = %info.code,
            peer_role = role,
            peer_id,
            received = stats.received,
            echoed = stats.echoed,
            "conn {id} closed{who}: code {info}; echoed {}/{} DATA{}",
            stats.echoed,
            stats.received,
            match stats.unanswered {
                0 => String::new(),
                n => format!(", {n} too large to echo"),
            }
        ),
        Err(err) => tracing::info!(
            conn = id,
            code = %code,
            peer_role = role,
            peer_id,
            "conn {id} closed{who}: {err}"
        ),
    }
}

/// What a connection did, for its close line.
#[derive(Default)]
struct Counters {
    peer: Option<PeerLabel>,
    received: u64,
    echoed: u64,
    /// DATA received whose echo could not be sent within the peer's limits.
    unanswered: u64,
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
    let drain = Duration::from_millis(opts.config.limits.drain_timeout_ms);
    let mut stopping_since = None;
    loop {
        let taken = take_events(driver, opts, stats);
        stats.publish(driver);
        if let Some(info) = taken {
            return Ok(info);
        }
        if opts.shutdown.is_triggered() && driver.conn.is_established() {
            // spec §6.4: graceful close, GOAWAY NO_ERROR, then DRAINING — once every
            // DATA received is echoed (an echo waiting for the peer's credit waits at
            // most the drain timer), so that a shutdown loses no answer
            let since = *stopping_since.get_or_insert_with(Instant::now);
            let echo_waits = matches!(driver.conn.peek_event(), Some(Event::Data { .. }));
            if !echo_waits || since.elapsed() >= drain {
                let now = driver.now();
                driver.conn.close(now, "node shutting down");
            }
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
                // spec §14.6 [[route.reflector]]: answer clients only, never a node
                let from_client = match driver.conn.peer().map(|p| p.role) {
                    Some(Role::Client) => true,
                    Some(Role::Proxy) => *source == 0 || opts.client_sources.contains(source),
                    _ => false,
                };
                if !from_client {
                    stats.received += 1; // received and consumed, not answered
                }
                from_client.then(|| (back, payload.clone(), send))
            }
            Event::Established { peer } => {
                stats.peer = Some(PeerLabel {
                    role: peer.role,
                    node_id: peer.node_id,
                });
                None
            }
            Event::GoawayReceived { .. } => {
                // spec §6.4 [[close.answer]]: a half-close. Every DATA before the GOAWAY
                // was taken above only once its echo was queued, so the answers are all
                // sent: answer with our GOAWAY, whose `delivered` is final
                let now = driver.now();
                driver.conn.close(now, "");
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
            match echo_data(&mut driver.conn, back, &payload, send) {
                Err(SendError::NoCredit) => return None, // wait for the peer's CREDIT
                Ok(()) => stats.echoed += 1,
                Err(SendError::TooLarge) => {
                    // received within our limits, but not sendable within the peer's
                    // (a payload that only fit compressed, marked N = 1): no packet
                    // error exists for an answer that cannot be sent, so it is counted
                    // and logged, never dropped silently
                    stats.unanswered += 1;
                    tracing::warn!(
                        bytes = payload.len(),
                        "echo of {} bytes to {back:?} not sent: larger than the peer's max_payload",
                        payload.len()
                    );
                }
                Err(_) => {} // closing: the GOAWAY's `delivered` tells the peer
            }
            stats.received += 1;
        }
        driver.conn.poll_event();
    }
}

/// Sends one echo: as the options say, or, when that is too large for the peer and the
/// payload may be compressed (N = 0), compressed with a codec the peer announced
/// (§9.2: compression is the sender's choice), so that what arrived compressed can go
/// back compressed.
fn echo_data(
    conn: &mut crate::Connection,
    back: Route,
    payload: &[u8],
    send: SendOptions,
) -> Result<(), SendError> {
    let first = conn.send_data(back, payload, send);
    if first != Err(SendError::TooLarge) || send.never_compress {
        return first;
    }
    for codec in [Codec::Snappy, Codec::Zlib] {
        if codec == send.codec {
            continue;
        }
        match conn.send_data(back, payload, SendOptions { codec, ..send }) {
            Err(SendError::TooLarge) => {}
            other => return other, // sent, or waiting for credit, or closing
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_and_memory_exhaustion_are_retried() {
        for errno in [12, 23, 24, 105] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(is_exhaustion(&e), "errno {errno}");
            assert!(!is_transient(&e));
        }
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(9))); // EBADF: fatal
        assert!(!is_exhaustion(&io::ErrorKind::InvalidInput.into()));
    }

    #[test]
    fn backoff_doubles_up_to_one_second() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..10).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}

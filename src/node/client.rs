//! A blocking client: connect, ping, send, receive, close.

use std::collections::VecDeque;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::driver::{Driver, Step};
use super::transport::{Clock, Transport};
use super::{ClientSecurity, CloseInfo, NodeError};
use crate::connection::{Config, Connection, Event, PeerInfo, SendError, SendOptions};
use crate::error::ErrorCode;
use crate::header::Route;
use crate::tls::TlsEndpoint;

/// PONGs remembered until [`Client::ping`] takes them.
const MAX_PONGS: usize = 64;

/// How a [`Client`] connects and behaves.
///
/// ```
/// use std::time::Duration;
/// use fleetwire::connection::Config;
/// use fleetwire::node::{ClientOptions, ClientSecurity};
/// let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
/// opts.timeout = Duration::from_secs(2);
/// opts.config = Config::node(7); // connect as node 7 instead of as a client
/// assert_eq!(opts.max_inbox, 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Plaintext or TLS; no default (spec §2 `[[layer.no-fallback]]`).
    pub security: ClientSecurity,
    /// Our role, id, limits and codecs (spec §5.2). When the server's certificate names
    /// a node id, the client sets `authenticated` and the server's HELLO must match it
    /// (spec §10.2 `[[tls.node-binding]]`); set `require_auth` to also refuse a server
    /// whose certificate names none (§7.4 `[[src.auth]]`).
    pub config: Config,
    /// The bound of every blocking call: connect (TCP, TLS and HELLO), ping, send
    /// (waiting for credit), recv, close.
    pub timeout: Duration,
    /// Received DATA held for [`Client::recv`]; beyond it, further DATA stays unconsumed
    /// in the connection, so its credit is not granted back (spec §8).
    pub max_inbox: usize,
    /// [`connect`] returns only after a PING round trip, which proves that the peer
    /// accepted our HELLO (a refusal arrives as its GOAWAY and fails `connect`). Default
    /// `true`; `false` returns as soon as the peer's HELLO is accepted.
    pub confirm_handshake: bool,
}

impl ClientOptions {
    /// A client role with default limits, a 10 s timeout and an inbox of 1024 packets.
    ///
    /// ```
    /// use fleetwire::node::{ClientOptions, ClientSecurity};
    /// let opts = ClientOptions::new(ClientSecurity::Plaintext);
    /// assert_eq!(opts.config.node_id, 0);
    /// ```
    pub fn new(security: ClientSecurity) -> ClientOptions {
        ClientOptions {
            security,
            config: Config::client(),
            timeout: Duration::from_secs(10),
            max_inbox: 1024,
            confirm_handshake: true,
        }
    }
}

/// One DATA packet received (spec §5.1), decompressed.
///
/// ```
/// use fleetwire::node::Message;
/// use fleetwire::Route;
/// let m = Message { source: 1, route: Route::new(0, 0, 2), payload: "hi".into(), never_compress: false };
/// assert_eq!(&m.payload[..], b"hi");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// The packet's source node (spec §7.4).
    pub source: u16,
    /// The route as received.
    pub route: Route,
    /// The application bytes.
    pub payload: Bytes,
    /// The sender marked the payload N = 1 (spec §4.4).
    pub never_compress: bool,
}

impl Message {
    /// Where a reply goes: to the message's source, on the same service and channel
    /// (spec §7.4). Echoing `route` back instead would address the receiver itself, and
    /// through a proxy every such packet is a NO_ROUTE packet error that counts against
    /// the connection's error budget (§12.3).
    ///
    /// ```
    /// use fleetwire::node::Message;
    /// use fleetwire::Route;
    /// let m = Message { source: 40_000, route: Route::new(7, 2, 3), payload: "hi".into(), never_compress: false };
    /// assert_eq!(m.reply_route(), Route::new(40_000, 2, 3));
    /// ```
    pub fn reply_route(&self) -> Route {
        Route::new(self.source, self.route.service, self.route.channel)
    }
}

/// Fleetwire bytes written and read by a connection (the plaintext stream, before TLS):
/// compressed payloads count with their wire length.
///
/// ```
/// let s = fleetwire::node::WireStats::default();
/// assert_eq!((s.bytes_sent, s.bytes_received), (0, 0));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WireStats {
    /// Bytes written: preface, packets.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// What the application has not taken yet.
enum Incoming {
    Data(Message),
    Error { code: ErrorCode, reason: String },
}

/// A blocking Fleetwire connection to a node, opened with [`connect`].
///
/// Every call waits at most [`ClientOptions::timeout`]. The client only reads the socket
/// inside its calls: a peer's PINGs are answered, CREDIT granted and timers run while a
/// call waits (call [`ping`](Client::ping) now and then on an otherwise idle connection).
///
/// ```
/// use std::net::TcpListener;
/// use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
/// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// # let addr = listener.local_addr().unwrap();
/// # std::thread::spawn(move || serve(listener, NodeOptions::new(5, NodeSecurity::Plaintext)));
/// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
/// assert_eq!(client.peer().unwrap().node_id, 5);
/// client.ping().unwrap();
/// ```
pub struct Client {
    driver: Driver,
    peer: Option<PeerInfo>,
    timeout: Duration,
    max_inbox: usize,
    inbox: VecDeque<Incoming>,
    pongs: VecDeque<(u64, Duration)>,
    closed: Option<CloseInfo>,
}

/// Connects to the node at `addr`: TCP, the TLS handshake when configured, then preface
/// and HELLO both ways (spec §3, §6.2). Returns once the peer's HELLO was accepted and,
/// with [`ClientOptions::confirm_handshake`], a PING round trip showed that the peer
/// accepted ours.
///
/// # Errors
///
/// [`NodeError::Tls`] for a refused certificate, ALPN or TLS version, or a plaintext
/// peer ([`TlsError::PlaintextPreface`](crate::tls::TlsError::PlaintextPreface));
/// [`NodeError::PeerSpeaksTls`] when a plaintext client reaches a TLS node;
/// [`NodeError::Closed`] when the peer refused our HELLO (its GOAWAY code) or we refused
/// its HELLO; [`NodeError::Io`] and [`NodeError::Timeout`].
///
/// ```
/// use fleetwire::node::{connect, ClientOptions, ClientSecurity, NodeError};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// drop(listener); // nobody listens
/// let err = connect(addr, ClientOptions::new(ClientSecurity::Plaintext));
/// assert!(matches!(err, Err(NodeError::Io(_))));
/// ```
pub fn connect(addr: impl ToSocketAddrs, opts: ClientOptions) -> Result<Client, NodeError> {
    let deadline = Instant::now() + opts.timeout;
    let confirm = opts.confirm_handshake;
    let sock = connect_tcp(addr, opts.timeout)?;
    let clock = Clock::new();
    let mut config = opts.config;
    let handshake = Duration::from_millis(config.limits.handshake_timeout_ms);
    let io = match opts.security {
        ClientSecurity::Plaintext => Transport::new(sock, None)?,
        ClientSecurity::Tls {
            config: tls,
            server_name,
        } => {
            // spec §10.2 [[tls.server-auth]]: verified against `server_name` by rustls
            let endpoint = TlsEndpoint::client(tls, &server_name)?;
            let mut io = Transport::new(sock, Some(endpoint))?;
            io.tls_handshake((Instant::now() + handshake).min(deadline))?;
            // spec §10.2 [[tls.node-binding]]: the server's HELLO id must match its cert
            config.authenticated = io.peer_identity();
            io
        }
    };
    let mut client = Client {
        driver: Driver::open(io, config, clock)?,
        peer: None,
        timeout: opts.timeout,
        max_inbox: opts.max_inbox.max(1),
        inbox: VecDeque::new(),
        pongs: VecDeque::new(),
        closed: None,
    };
    client.wait(deadline, "the peer's HELLO", |c| c.peer.is_some())?;
    if confirm {
        // HELLO has no acknowledgement (§3: each side sends its own without waiting):
        // a PONG proves the peer processed and accepted ours.
        let id = client.driver.conn.send_ping(client.driver.now());
        client.wait(deadline, "the PONG that confirms the handshake", |c| {
            c.pongs.iter().any(|p| p.0 == id)
        })?;
        client.pongs.retain(|p| p.0 != id);
    }
    Ok(client)
}

fn connect_tcp(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(sock) => return Ok(sock),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to")))
}

impl Client {
    /// What the peer announced in its HELLO (spec §5.2); `None` only before
    /// [`connect`] returned.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// assert_eq!(client.peer().unwrap().role, fleetwire::control::Role::Node);
    /// ```
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// The node id named by the server's certificate (`fleetwire:node:<id>`, spec §10.2),
    /// `None` over plaintext or when it names none.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// assert_eq!(client.peer_cert_node_id(), None);
    /// ```
    pub fn peer_cert_node_id(&self) -> Option<u16> {
        self.driver.io.tls().and_then(|t| t.peer_node_id())
    }

    /// The state machine, for inspection (credit, limits, state).
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// assert_eq!(client.connection().send_credit(), (1024, 4 * 1024 * 1024));
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.driver.conn
    }

    /// Fleetwire bytes sent and received so far.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// assert_eq!(client.stats().bytes_sent, 8 + 8 + 28 + 8 + 16); // preface, HELLO, PING
    /// ```
    pub fn stats(&self) -> WireStats {
        WireStats {
            bytes_sent: self.driver.io.bytes_sent,
            bytes_received: self.driver.io.bytes_received,
        }
    }

    /// Changes the bound of later blocking calls.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// client.set_timeout(std::time::Duration::from_millis(50));
    /// assert!(matches!(client.recv(), Err(NodeError::Timeout(_))));
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends a PING stamped with the monotonic clock in microseconds (spec §5.3) and waits
    /// for its PONG; returns the round-trip time `now - timestamp - hold_us` (spec §5.4).
    ///
    /// # Errors
    ///
    /// [`NodeError::Timeout`] without a PONG in time; [`NodeError::Closed`] when the
    /// connection closed.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// let rtt = client.ping().unwrap();
    /// assert!(rtt < std::time::Duration::from_secs(1));
    /// ```
    pub fn ping(&mut self) -> Result<Duration, NodeError> {
        self.check_open()?;
        let deadline = Instant::now() + self.timeout;
        let now = self.driver.now();
        let id = self.driver.conn.send_ping(now);
        self.wait(deadline, "the PONG", |c| c.pongs.iter().any(|p| p.0 == id))?;
        let at = self.pongs.iter().position(|p| p.0 == id);
        let rtt = at.and_then(|at| self.pongs.remove(at)).map(|p| p.1);
        Ok(rtt.unwrap_or_default())
    }

    /// Sends one DATA packet (spec §5.1), compressed as `opts` asks when the peer
    /// announced the codec (§9.2). Waits for flow-control credit when there is not
    /// enough (§8 `[[flow.send]]`).
    ///
    /// # Errors
    ///
    /// [`NodeError::Send`] with [`SendError::TooLarge`] above the peer's `max_payload`
    /// (§4.5); [`NodeError::Timeout`] when no credit came in time (an echo peer grants
    /// credit only as we [`recv`](Client::recv) its echoes); [`NodeError::Closed`].
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// use fleetwire::connection::SendOptions;
    /// use fleetwire::{Codec, Route};
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// client.send(Route::new(0, 1, 2), &[b'x'; 4096], SendOptions::compressed(Codec::Zlib)).unwrap();
    /// assert_eq!(client.recv().unwrap().payload.len(), 4096);
    /// ```
    pub fn send(
        &mut self,
        route: Route,
        payload: &[u8],
        opts: SendOptions,
    ) -> Result<(), NodeError> {
        self.queue(route, payload, opts)?;
        self.driver.flush()
    }

    /// Queues `payload` as DATA on `route` like [`send`](Client::send), without writing
    /// it: it goes out with whatever else is queued at the next call that writes
    /// ([`flush`](Client::flush), `send`, `recv`, `ping`, or a wait for credit), all in
    /// one write, so that many small packets share a TLS record (spec §10.3
    /// `[[tls.grouping]]`).
    ///
    /// # Errors
    ///
    /// As [`send`](Client::send).
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// use fleetwire::connection::SendOptions;
    /// use fleetwire::Route;
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// let before = client.stats().bytes_sent;
    /// for i in 0..3u8 {
    ///     client.queue(Route::new(0, 1, i), &[i; 8], SendOptions::default()).unwrap();
    /// }
    /// assert_eq!(client.stats().bytes_sent, before); // nothing written yet
    /// client.flush().unwrap();
    /// assert_eq!(client.stats().bytes_sent, before + 3 * 16); // three packets, one write
    /// for i in 0..3u8 {
    ///     assert_eq!(client.recv().unwrap().payload[..], [i; 8]);
    /// }
    /// ```
    pub fn queue(
        &mut self,
        route: Route,
        payload: &[u8],
        opts: SendOptions,
    ) -> Result<(), NodeError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.check_open()?;
            match self.driver.conn.send_data(route, payload, opts) {
                Ok(()) => return Ok(()),
                Err(SendError::NoCredit) => {}
                Err(e) => {
                    self.take_events(); // a Closed event explains a refusal best
                    self.check_open()?;
                    return Err(NodeError::Send(e));
                }
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Timeout("flow-control credit from the peer"));
            }
            self.pump(deadline)?;
        }
    }

    /// Writes everything queued ([`queue`](Client::queue), CREDIT and PONGs the client
    /// owes) in one write; nothing when nothing is queued.
    ///
    /// # Errors
    ///
    /// An I/O or TLS failure.
    pub fn flush(&mut self) -> Result<(), NodeError> {
        self.driver.flush()
    }

    /// The next DATA packet if one was already received, without reading the socket or
    /// writing anything (what is queued stays queued): with [`queue`](Client::queue), an
    /// application answers everything that arrived together in one write.
    ///
    /// # Errors
    ///
    /// `Some(Err(`[`NodeError::PacketError`]`))` when an ERROR arrived in its place, as
    /// [`recv`](Client::recv).
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// use fleetwire::connection::SendOptions;
    /// use fleetwire::Route;
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// assert!(client.try_recv().is_none());
    /// client.send(Route::new(0, 1, 1), b"one", SendOptions::default()).unwrap();
    /// client.send(Route::new(0, 1, 1), b"two", SendOptions::default()).unwrap();
    /// let first = client.recv().unwrap();
    /// let second = match client.try_recv() {
    ///     Some(m) => m.unwrap(), // it came with the first
    ///     None => client.recv().unwrap(),
    /// };
    /// assert_eq!((&first.payload[..], &second.payload[..]), (&b"one"[..], &b"two"[..]));
    /// ```
    pub fn try_recv(&mut self) -> Option<Result<Message, NodeError>> {
        self.take_events();
        match self.inbox.pop_front()? {
            Incoming::Data(m) => Some(Ok(m)),
            Incoming::Error { code, reason } => Some(Err(NodeError::PacketError { code, reason })),
        }
    }

    /// Waits for the next DATA packet.
    ///
    /// # Errors
    ///
    /// [`NodeError::PacketError`] when an ERROR arrived in its place (one of our packets
    /// was discarded, §5.7); [`NodeError::Timeout`]; [`NodeError::Closed`] once the
    /// connection is closed and every packet received before was taken.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// use fleetwire::connection::SendOptions;
    /// use fleetwire::Route;
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// client.send(Route::new(0, 0, 1), b"echo me", SendOptions::default()).unwrap();
    /// let echo = client.recv().unwrap();
    /// assert_eq!((echo.source, &echo.payload[..]), (3, &b"echo me"[..]));
    /// ```
    pub fn recv(&mut self) -> Result<Message, NodeError> {
        let deadline = Instant::now() + self.timeout;
        self.wait(deadline, "DATA", |c| !c.inbox.is_empty())?;
        match self.inbox.pop_front() {
            Some(Incoming::Data(m)) => Ok(m),
            Some(Incoming::Error { code, reason }) => Err(NodeError::PacketError { code, reason }),
            None => Err(NodeError::Timeout("DATA")),
        }
    }

    /// Sends `payload` as DATA on `route` and waits for the identical payload to come
    /// back (an echo node); returns the round-trip time on the driver's monotonic clock.
    /// Other DATA received meanwhile is discarded.
    ///
    /// # Errors
    ///
    /// As [`send`](Client::send) and [`recv`](Client::recv).
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// let rtt = client.echo(fleetwire::Route::default(), &[7u8; 1000]).unwrap();
    /// assert!(rtt < std::time::Duration::from_secs(1));
    /// ```
    pub fn echo(&mut self, route: Route, payload: &[u8]) -> Result<Duration, NodeError> {
        let start = self.driver.now();
        self.send(route, payload, SendOptions::default())?;
        loop {
            let m = self.recv()?;
            if m.payload == payload {
                return Ok(self.driver.now().saturating_sub(start));
            }
        }
    }

    /// Closes gracefully: GOAWAY NO_ERROR, then waits for the peer's GOAWAY or the drain
    /// timer (spec §6.4), and ends the stream (TLS `close_notify`).
    ///
    /// # Errors
    ///
    /// [`NodeError::Closed`] when the connection had already closed with an error code
    /// or was lost; [`NodeError::Timeout`], [`NodeError::Io`].
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use fleetwire::node::*;
    /// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # std::thread::spawn(move || serve(listener, NodeOptions::new(3, NodeSecurity::Plaintext)));
    /// let client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    /// let info = client.close().unwrap();
    /// assert_eq!((info.code, info.by_peer, info.delivered), (fleetwire::ErrorCode::NO_ERROR, false, Some(0)));
    /// ```
    pub fn close(mut self) -> Result<CloseInfo, NodeError> {
        let deadline = Instant::now() + self.timeout;
        let now = self.driver.now();
        self.driver.conn.close(now, "client done");
        self.max_inbox = usize::MAX; // let the Closed event through
        let waited = self.wait(deadline, "the peer's GOAWAY", |c| c.closed.is_some());
        self.driver.finish();
        match (waited, self.closed.take()) {
            (Ok(()), Some(info)) if info.code == ErrorCode::NO_ERROR => Ok(info),
            (_, Some(info)) => Err(NodeError::Closed(info)),
            (Err(e), None) => Err(e),
            (Ok(()), None) => Err(NodeError::Timeout("the peer's GOAWAY")),
        }
    }

    /// An error if the connection is closed.
    fn check_open(&self) -> Result<(), NodeError> {
        match &self.closed {
            Some(info) => Err(NodeError::Closed(info.clone())),
            None => Ok(()),
        }
    }

    /// Drives the connection until `done` holds, the connection fails, or `deadline`.
    fn wait(
        &mut self,
        deadline: Instant,
        what: &'static str,
        done: impl Fn(&Client) -> bool,
    ) -> Result<(), NodeError> {
        loop {
            self.take_events();
            self.driver.flush()?; // CREDIT for what was taken (spec §8 [[flow.grant]])
            if done(self) {
                return Ok(());
            }
            // spec §3 rationale: a plaintext endpoint that receives a TLS record says so
            if self.driver.io.peer_sent_tls() {
                return Err(NodeError::PeerSpeaksTls);
            }
            self.check_open()?;
            if Instant::now() >= deadline {
                return Err(NodeError::Timeout(what));
            }
            self.pump(deadline)?;
        }
    }

    /// One driver step; at the end of the stream, records the loss (spec §6.4).
    fn pump(&mut self, deadline: Instant) -> Result<(), NodeError> {
        if self.driver.step(Some(deadline))? == Step::Eof {
            self.take_events();
            if self.closed.is_none() && !self.driver.io.peer_sent_tls() {
                self.closed = Some(self.driver.lost());
            }
            if self.driver.io.peer_sent_tls() {
                return Err(NodeError::PeerSpeaksTls);
            }
        }
        Ok(())
    }

    /// Moves events into the inbox, the PONG list and the close record. DATA beyond
    /// `max_inbox` stays in the connection, its credit not granted back (spec §8).
    fn take_events(&mut self) {
        while let Some(event) = self.driver.conn.peek_event() {
            if matches!(event, Event::Data { .. }) && self.inbox.len() >= self.max_inbox {
                return;
            }
            let Some(event) = self.driver.conn.poll_event() else {
                return;
            };
            self.take_event(event);
        }
        // polling DATA may have queued a CREDIT; it goes out with the next flush
    }

    fn take_event(&mut self, event: Event) {
        match event {
            Event::Established { peer } => self.peer = Some(peer),
            Event::Data {
                source,
                route,
                payload,
                never_compress,
            } => self.inbox.push_back(Incoming::Data(Message {
                source,
                route,
                payload,
                never_compress,
            })),
            Event::Pong { id, rtt } => {
                if self.pongs.len() == MAX_PONGS {
                    self.pongs.pop_front();
                }
                self.pongs.push_back((id, rtt));
            }
            Event::PacketError { code, reason, .. } => {
                self.inbox.push_back(Incoming::Error { code, reason })
            }
            Event::GoawayReceived { .. } => {
                // spec §6.4 [[close.answer]]: the server half-closed. This client sends
                // only when its user calls it, and what it sent is already queued ahead:
                // answer at once with our GOAWAY (final `delivered`)
                let now = self.driver.now();
                self.driver.conn.close(now, "");
            }
            event @ Event::Closed { .. } => self.closed = CloseInfo::from_event(&event),
            _ => {}
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("inbox", &self.inbox.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

//! [`Engine`]: the application's handle on the IO threads.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Poll, Waker};

use super::config::EngineConfig;
use super::handler::{Handler, HandlerTable};
use super::io::{IoThread, WAKER};
use super::queue::{ConnShared, QUEUE_ENTRY_OVERHEAD};
use super::routing::{RouteCell, RouteState};
use super::shared::{AppQueue, Command, ConnMap, Inbox, Inner, IoHandle, NewConn, ReadyHook};
use super::stats::ConnStats;
use super::sync::lock;
#[cfg(feature = "tls")]
use super::tls_io::TlsEndpoint;
use super::types::{AppEvent, ConnId, Listener, Outgoing, SendError, SendFlags, TlsOptions};
use crate::header::{Codec, Route};

/// The transport engine: IO threads that own the sockets, and the application's API.
///
/// Made for a single-threaded application (the EVE model: one interpreter thread):
/// [`send`](Engine::send) queues and returns at once; [`recv_batch`](Engine::recv_batch)
/// takes every ready event under one lock. Everything else — reading, TLS,
/// deframing, validation, decompression, compression, framing, writing, flow control,
/// timers — happens on the IO threads.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use fleetwire::transport::{AppEvent, Engine, EngineConfig, SendFlags, TlsOptions};
/// use fleetwire::Route;
///
/// let engine = Engine::new(EngineConfig::default()).unwrap();
/// let listener = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
/// let conn = engine.connect(listener.local_addr, TlsOptions::Plaintext).unwrap();
/// // Queued at once; written when the handshake completes.
/// engine.send(conn, Route::new(0, 1, 0), Bytes::from_static(b"hello"), SendFlags::default()).unwrap();
///
/// let mut events = Vec::new();
/// let message = loop {
///     engine.recv_batch(&mut events, Duration::from_secs(5));
///     if let Some(m) = events.drain(..).find_map(|e| match e {
///         AppEvent::Message(m) => Some(m),
///         _ => None,
///     }) {
///         break m;
///     }
/// };
/// assert_eq!(&message.payload[..], b"hello");
/// ```
pub struct Engine {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts the IO threads.
    ///
    /// # Errors
    ///
    /// An invalid configuration (`InvalidInput`), or the OS refusing a poller or thread.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default().with_io_threads(2)).unwrap();
    /// assert_eq!(engine.connections(), 0);
    /// ```
    pub fn new(config: EngineConfig) -> io::Result<Engine> {
        Engine::build(config, None)
    }

    /// An engine whose IO threads forward packets for other nodes with `routes`.
    pub(crate) fn build(
        config: EngineConfig,
        routes: Option<Arc<RouteState>>,
    ) -> io::Result<Engine> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut polls = Vec::new();
        let mut io = Vec::new();
        for _ in 0..config.io_threads {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            io.push(IoHandle {
                inbox: Mutex::new(Inbox::default()),
                waker,
            });
            polls.push(poll);
        }
        let inner = Arc::new(Inner {
            config,
            epoch: Instant::now(),
            conns: Mutex::new(ConnMap::default()),
            app: Mutex::new(AppQueue::default()),
            app_cv: Condvar::new(),
            app_bytes: AtomicUsize::new(0),
            app_high: AtomicUsize::new(0),
            forwarding: Arc::new(AtomicUsize::new(0)),
            to_clients: Arc::new(AtomicUsize::new(0)),
            global_paused: AtomicBool::new(false),
            held_input: AtomicUsize::new(0),
            held_high: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            io,
            next_id: AtomicU64::new(1),
            open_sockets: AtomicUsize::new(0),
            owing: AtomicUsize::new(0),
            handlers: HandlerTable::default(),
            routes,
            split: Mutex::new(Default::default()),
            split_count: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        // the IO threads log to the caller's subscriber, also when it is only this
        // thread's default (a test's, a scoped one)
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        for (index, poll) in polls.into_iter().enumerate() {
            let thread = IoThread::new(index, inner.clone(), poll);
            let dispatch = dispatch.clone();
            let start = inner.config.on_io_thread_start.clone();
            let handle = std::thread::Builder::new()
                .name(format!("fleetwire-io-{index}"))
                .spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        if let Some(start) = start {
                            start.run(index);
                        }
                        thread.run()
                    })
                })?;
            threads.push(handle);
        }
        Ok(Engine { inner, threads })
    }

    /// Listens on `addr`; accepted connections are reported as [`AppEvent::Accepted`]
    /// and use [`EngineConfig::server`]. `tls` is [`TlsOptions::Plaintext`] or
    /// [`TlsOptions::Server`].
    ///
    /// # Errors
    ///
    /// Binding fails, or `tls` is a client configuration (`InvalidInput`).
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// assert!(l.local_addr.ip().is_loopback());
    /// ```
    pub fn listen(&self, addr: SocketAddr, tls: TlsOptions) -> io::Result<Listener> {
        let tls = match tls {
            TlsOptions::Plaintext => None,
            #[cfg(feature = "tls")]
            TlsOptions::Server(cfg) => Some(cfg),
            #[cfg(feature = "tls")]
            #[cfg(feature = "tls")]
            TlsOptions::Client { .. } => return Err(invalid("listen needs a TLS server config")),
        };
        let std = std::net::TcpListener::bind(addr)?;
        std.set_nonblocking(true)?;
        let local_addr = std.local_addr()?;
        let sock = mio::net::TcpListener::from_std(std);
        let id = self.inner.next_id();
        self.inner.io[self.inner.io_for(id)].command(Command::Listen { id, sock, tls });
        Ok(Listener { id, local_addr })
    }

    /// Connects to `addr` with [`EngineConfig::client`]; returns at once. Messages may
    /// be sent right away: they are written once the handshake completes.
    /// [`AppEvent::Connected`] reports the handshake, [`AppEvent::Closed`] a failure.
    ///
    /// `addr` is anything [`ToSocketAddrs`] takes (`"host:port"`, a [`SocketAddr`], an
    /// `(IpAddr, u16)`); a host name is resolved here, blocking, and the first address
    /// it resolves to is used.
    ///
    /// # Errors
    ///
    /// The address resolves to nothing, the socket cannot be created, or `tls` is a
    /// server configuration or names an invalid server name (`InvalidInput`).
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// assert!(engine.stats(conn).is_some());
    /// ```
    pub fn connect(&self, addr: impl ToSocketAddrs, tls: TlsOptions) -> io::Result<ConnId> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid("the address resolves to nothing"))?;
        self.connect_routed(addr, tls, None)
    }

    /// (Proxy.) [`connect`](Engine::connect) for a route, whose forwarded packets the
    /// connection counts in `route`.
    pub(crate) fn connect_routed(
        &self,
        addr: SocketAddr,
        tls: TlsOptions,
        route: Option<Arc<RouteCell>>,
    ) -> io::Result<ConnId> {
        let tls = match tls {
            TlsOptions::Plaintext => None,
            #[cfg(feature = "tls")]
            TlsOptions::Client {
                config,
                server_name,
            } => Some(
                TlsEndpoint::client(config, &server_name).map_err(|e| invalid(&e.to_string()))?,
            ),
            #[cfg(feature = "tls")]
            TlsOptions::Server(_) => return Err(invalid("connect needs a TLS client config")),
        };
        let sock = mio::net::TcpStream::connect(addr)?;
        let id = self.inner.next_id();
        let thread = self.inner.io_for(id);
        let shared = Arc::new(ConnShared::new(id, thread));
        lock(&self.inner.conns).insert(id, shared.clone());
        let new = NewConn {
            shared,
            sock,
            tls,
            connecting: true,
            server: false,
            peer: addr,
            route,
        };
        self.inner.io[thread].command(Command::Adopt(Box::new(new)));
        Ok(id)
    }

    /// Queues one message and returns at once; compression, framing, encryption and
    /// the write happen on the IO thread. The IO thread is woken only when the queue
    /// was empty.
    ///
    /// An accepted message is delivered or reported back ([`AppEvent::Undelivered`],
    /// [`AppEvent::SendFailed`]); it is never dropped silently.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::QueueFull`] (backpressure: the bounded queue is full, typically
    /// because the peer withholds credit), [`EnqueueError::Closed`],
    /// [`EnqueueError::UnknownConnection`], [`EnqueueError::TooLarge`].
    ///
    /// [`EnqueueError::QueueFull`]: super::EnqueueError::QueueFull
    /// [`EnqueueError::Closed`]: super::EnqueueError::Closed
    /// [`EnqueueError::UnknownConnection`]: super::EnqueueError::UnknownConnection
    /// [`EnqueueError::TooLarge`]: super::EnqueueError::TooLarge
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig, EnqueueError, SendFlags};
    /// use fleetwire::Route;
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let nobody = ConnId::from_raw(999);
    /// let r = engine.send(nobody, Route::default(), Bytes::from_static(b"x"), SendFlags::default());
    /// assert_eq!(r, Err(EnqueueError::UnknownConnection));
    /// ```
    pub fn send(
        &self,
        conn: ConnId,
        route: Route,
        payload: Bytes,
        flags: SendFlags,
    ) -> Result<(), SendError> {
        let out = Outgoing {
            route,
            payload,
            flags,
        };
        let (thread, schedule) = {
            let conns = lock(&self.inner.conns);
            let shared = conns.get(&conn).ok_or(SendError::UnknownConnection)?;
            (shared.thread, push_send(&self.inner, shared, out)?)
        };
        if schedule {
            self.inner.io[thread].ready(conn);
        }
        Ok(())
    }

    /// Queues as many of `messages` as the send queue takes, from the front, under one
    /// lock (work grouping: a game tick's messages in one call), and removes them from
    /// `messages`; returns how many. What stays in `messages` was not queued: retry it
    /// when there is room. Delivery as for [`send`](Engine::send).
    ///
    /// # Errors
    ///
    /// Nothing is queued on [`EnqueueError::Closed`] and [`EnqueueError::UnknownConnection`],
    /// nor on [`EnqueueError::TooLarge`], returned when the first message is too large (a
    /// too-large message later in `messages` ends the batch before it). A full queue is
    /// not an error: fewer (maybe none) are queued.
    ///
    /// [`EnqueueError::Closed`]: super::EnqueueError::Closed
    /// [`EnqueueError::UnknownConnection`]: super::EnqueueError::UnknownConnection
    /// [`EnqueueError::TooLarge`]: super::EnqueueError::TooLarge
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fleetwire::transport::{Engine, EngineConfig, Outgoing, TlsOptions};
    /// use fleetwire::Route;
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let mut tick: Vec<Outgoing> = (0..3u8)
    ///     .map(|i| Outgoing::new(Route::new(0, 1, i), Bytes::from(vec![i; 16])))
    ///     .collect();
    /// assert_eq!(engine.send_many(conn, &mut tick), Ok(3));
    /// assert!(tick.is_empty());
    /// ```
    pub fn send_many(
        &self,
        conn: ConnId,
        messages: &mut Vec<Outgoing>,
    ) -> Result<usize, SendError> {
        let (thread, (taken, schedule)) = {
            let conns = lock(&self.inner.conns);
            let shared = conns.get(&conn).ok_or(SendError::UnknownConnection)?;
            (shared.thread, push_sends(&self.inner, shared, messages)?)
        };
        if schedule {
            self.inner.io[thread].ready(conn);
        }
        Ok(taken)
    }

    /// A handle that sends on one connection without the engine's connection lookup
    /// (one lock per message instead of two); usable from any thread.
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(engine.sender(ConnId::from_raw(42)).is_none());
    /// ```
    pub fn sender(&self, conn: ConnId) -> Option<ConnSender> {
        let shared = lock(&self.inner.conns).get(&conn)?.clone();
        Some(ConnSender {
            inner: self.inner.clone(),
            shared,
        })
    }

    /// Moves every ready event into `out` under one lock acquisition; blocks up to
    /// `timeout` only when none is ready. Returns how many were added. With `out` empty
    /// the engine's buffer is swapped in: no copy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let mut events = Vec::new();
    /// assert_eq!(engine.recv_batch(&mut events, Duration::ZERO), 0);
    /// ```
    pub fn recv_batch(&self, out: &mut Vec<AppEvent>, timeout: Duration) -> usize {
        recv_into(&self.inner, out, timeout)
    }

    /// Sets (or, with `None`, removes) a function the IO threads call each time events
    /// arrive in an empty application queue: the edge "nothing ready → something
    /// ready". An event loop that cannot block in [`recv_batch`](Engine::recv_batch)
    /// (asyncio, a GUI loop) uses it to make a file descriptor readable, then drains
    /// with `recv_batch(.., Duration::ZERO)`. Call `recv_batch` after clearing the
    /// signal, never before: events arriving in between are taken by that call, and
    /// events arriving after it find the queue empty and call the hook again.
    ///
    /// The hook runs on an IO thread with no engine lock held: keep it short and never
    /// block (a non-blocking write to a pipe or an eventfd). It may be called once more
    /// when nothing is left (a harmless spurious wake-up).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    ///
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = calls.clone();
    /// engine.set_ready_hook(Some(Arc::new(move || {
    ///     c.fetch_add(1, Ordering::SeqCst);
    /// })));
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let mut events = Vec::new();
    /// while events.len() < 3 {
    ///     // Accepted, and a Connected on each side
    ///     engine.recv_batch(&mut events, Duration::from_secs(5));
    /// }
    /// assert!(calls.load(Ordering::SeqCst) >= 1);
    /// ```
    pub fn set_ready_hook(&self, hook: Option<ReadyHook>) {
        lock(&self.inner.app).hook = hook;
    }

    /// The connection's counters, or `None` once it is closed and reported.
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(engine.stats(ConnId::from_raw(1)).is_none());
    /// ```
    pub fn stats(&self, conn: ConnId) -> Option<ConnStats> {
        let shared = lock(&self.inner.conns).get(&conn)?.clone();
        let mut stats = shared.stats.snapshot();
        let q = lock(&shared.sendq);
        stats.send_queue_packets = q.packets as u64;
        stats.send_queue_bytes = q.bytes as u64;
        drop(q);
        stats.recv_queue_bytes = shared.app_bytes.load(Ordering::SeqCst) as u64;
        Some(stats)
    }

    /// Runs `handler` on the IO threads for every DATA message of `service` (from the
    /// next round on): those messages never reach the application queue (the BlueNet
    /// fast path). Replaces an earlier handler of that service.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// engine.register_handler(9, Box::new(|m, reply| {
    ///     reply.send(m.route, m.payload.clone(), Default::default()); // echo
    /// }));
    /// ```
    pub fn register_handler(&self, service: u8, handler: Handler) {
        self.inner.handlers.set(service, Some(handler));
    }

    /// Removes the handler of `service`: its messages go to the application again.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// engine.unregister_handler(9);
    /// ```
    pub fn unregister_handler(&self, service: u8) {
        self.inner.handlers.set(service, None);
    }

    /// Closes gracefully: no more sends are accepted; everything queued is written
    /// (credit permitting, up to [`EngineConfig::close_timeout`]), then GOAWAY
    /// (spec §6.4). Returns false for an unknown connection.
    ///
    /// After [`AppEvent::GoawayReceived`] this is the application's answer: the peer has
    /// sent its last message and waits for ours; closing says they are sent, so our
    /// GOAWAY need not wait for [`EngineConfig::answer_quiet`].
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(!engine.close(ConnId::from_raw(5)));
    /// ```
    pub fn close(&self, conn: ConnId) -> bool {
        let Some(shared) = lock(&self.inner.conns).get(&conn).cloned() else {
            return false;
        };
        let waker = {
            let mut q = lock(&shared.sendq);
            q.closed = true;
            q.waker.take()
        };
        // a sender blocked in `wait_room` or a sink's `poll_ready` returns now: nothing
        // more is taken
        shared.send_cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        self.inner.io[shared.thread].command(Command::Close(conn));
        true
    }

    /// The shared half of a connection, for the proxy's routing table.
    pub(crate) fn conn_shared(&self, conn: ConnId) -> Option<Arc<ConnShared>> {
        lock(&self.inner.conns).get(&conn).cloned()
    }

    /// Sends a PING now; its PONG comes back as [`AppEvent::Pong`] with the round-trip
    /// time, which also appears in [`stats`](Engine::stats). Returns false for an
    /// unknown connection.
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(!engine.ping(ConnId::from_raw(5)));
    /// ```
    pub fn ping(&self, conn: ConnId) -> bool {
        let Some(thread) = lock(&self.inner.conns).get(&conn).map(|s| s.thread) else {
            return false;
        };
        self.inner.io[thread].command(Command::Ping(conn));
        true
    }

    /// Connections not yet reported closed.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// assert_eq!(Engine::new(EngineConfig::default()).unwrap().connections(), 0);
    /// ```
    pub fn connections(&self) -> usize {
        lock(&self.inner.conns).len()
    }

    /// Sockets the IO threads hold: connections (including closed ones still flushing
    /// their last bytes) and listeners.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// assert_eq!(Engine::new(EngineConfig::default()).unwrap().open_sockets(), 0);
    /// ```
    pub fn open_sockets(&self) -> usize {
        self.inner.open_sockets.load(Ordering::SeqCst)
    }

    /// Bytes waiting for the application now, and the most ever, all connections.
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// assert_eq!(Engine::new(EngineConfig::default()).unwrap().recv_queue_bytes(), (0, 0));
    /// ```
    pub fn recv_queue_bytes(&self) -> (usize, usize) {
        (
            self.inner.app_bytes.load(Ordering::SeqCst),
            self.inner.app_high.load(Ordering::SeqCst),
        )
    }

    /// Bytes of received packets the connections hold now because their destination
    /// has no room yet, and the most ever, all connections
    /// ([`EngineConfig::global_input_bytes`]).
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// assert_eq!(Engine::new(EngineConfig::default()).unwrap().held_input_bytes(), (0, 0));
    /// ```
    pub fn held_input_bytes(&self) -> (usize, usize) {
        (
            self.inner.held_input.load(Ordering::SeqCst),
            self.inner.held_high.load(Ordering::SeqCst),
        )
    }

    /// Bytes the engine has written that the sockets have not taken yet, all
    /// connections ([`EngineConfig::global_output_bytes`]).
    ///
    /// ```
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// assert_eq!(Engine::new(EngineConfig::default()).unwrap().unwritten_bytes(), 0);
    /// ```
    pub fn unwritten_bytes(&self) -> usize {
        self.inner.unwritten.load(Ordering::SeqCst)
    }

    /// Closes every connection gracefully, waits up to `timeout` for them to finish
    /// (every queued message written, GOAWAYs exchanged, sockets flushed and their write
    /// sides shut; not the peers' EOF, which a lingering socket awaits), then stops
    /// the IO threads. Returns whether everything finished in time; connections still
    /// open are reported lost. Events stay readable with `recv_batch`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::transport::{Engine, EngineConfig};
    /// let mut engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(engine.shutdown(Duration::from_secs(1)));
    /// ```
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        if self.threads.is_empty() {
            return true;
        }
        let ids: Vec<ConnId> = lock(&self.inner.conns).keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        let deadline = Instant::now() + timeout;
        let mut clean = false;
        while Instant::now() < deadline {
            // every close reported and every last byte written with the write side
            // shut: a socket lingering for the peer's EOF does not hold the shutdown
            // (nor a drop) for the linger
            if self.connections() == 0 && self.inner.owing.load(Ordering::SeqCst) == 0 {
                clean = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for io in &self.inner.io {
            io.command(Command::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // No event follows: an async EventStream ends once it has taken the queued ones,
        // and so does each connection's own stream.
        let mut wake = Vec::new();
        {
            let mut q = lock(&self.inner.app);
            q.stopped = true;
            wake.extend(q.waker.take());
            let mut split = lock(&self.inner.split);
            for (_, own) in split.drain() {
                let mut cq = lock(&own.q);
                cq.ended = true;
                wake.extend(cq.waker.take());
            }
            self.inner.split_count.store(0, Ordering::SeqCst);
        }
        wake.into_iter().for_each(std::task::Waker::wake);
        clean
    }

    /// The async face for tokio (or any executor): a `Stream` of events.
    #[cfg(feature = "transport-async")]
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Drop for Engine {
    /// [`shutdown`](Engine::shutdown) with a 1 s bound: closes every connection
    /// gracefully and returns as soon as every close is exchanged and its last bytes
    /// written, without waiting out a peer's linger.
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("io_threads", &self.inner.io.len())
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

/// Sends on one connection; see [`Engine::sender`]. Cloneable, usable from any thread.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use fleetwire::transport::{Engine, EngineConfig, Outgoing, TlsOptions};
/// let engine = Engine::new(EngineConfig::default()).unwrap();
/// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
/// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
/// let sender = engine.sender(conn).unwrap();
/// sender.send(Outgoing::new(fleetwire::Route::default(), Bytes::from_static(b"x"))).unwrap();
/// assert!(sender.wait_room(Duration::from_secs(1)));
/// ```
#[derive(Clone)]
pub struct ConnSender {
    pub(crate) inner: Arc<Inner>,
    pub(crate) shared: Arc<ConnShared>,
}

impl ConnSender {
    /// The connection.
    ///
    /// ```
    /// # use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// assert_eq!(engine.sender(conn).unwrap().conn(), conn);
    /// ```
    pub fn conn(&self) -> ConnId {
        self.shared.id
    }

    /// As [`Engine::send`].
    ///
    /// # Errors
    ///
    /// As [`Engine::send`] (never `UnknownConnection`: a closed connection is `Closed`).
    ///
    /// ```
    /// # use fleetwire::transport::{Engine, EngineConfig, Outgoing, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// # let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let sender = engine.sender(conn).unwrap();
    /// sender.send(Outgoing::new(fleetwire::Route::default(), bytes::Bytes::new())).unwrap();
    /// ```
    pub fn send(&self, message: Outgoing) -> Result<(), SendError> {
        if push_send(&self.inner, &self.shared, message)? {
            self.inner.io[self.shared.thread].ready(self.shared.id);
        }
        Ok(())
    }

    /// As [`Engine::send_many`].
    ///
    /// # Errors
    ///
    /// As [`Engine::send_many`] (never `UnknownConnection`).
    ///
    /// ```
    /// # use fleetwire::transport::{Engine, EngineConfig, Outgoing, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// # let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let sender = engine.sender(conn).unwrap();
    /// let mut batch = vec![Outgoing::new(fleetwire::Route::default(), bytes::Bytes::new()); 4];
    /// assert_eq!(sender.send_many(&mut batch), Ok(4));
    /// ```
    pub fn send_many(&self, messages: &mut Vec<Outgoing>) -> Result<usize, SendError> {
        let (taken, schedule) = push_sends(&self.inner, &self.shared, messages)?;
        if schedule {
            self.inner.io[self.shared.thread].ready(self.shared.id);
        }
        Ok(taken)
    }

    /// Blocks until the send queue has room (or the connection closed), up to
    /// `timeout`; returns whether there is room. Room means room for the message the
    /// queue last refused (any message, when it is empty), so that a sender that loops on
    /// [`send_many`](ConnSender::send_many) and `wait_room` sleeps until its next message
    /// fits rather than waking to be refused again.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// # let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// assert!(engine.sender(conn).unwrap().wait_room(Duration::from_millis(10)));
    /// ```
    pub fn wait_room(&self, timeout: Duration) -> bool {
        let cfg = &self.inner.config;
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.shared.sendq);
        loop {
            if q.closed {
                return false;
            }
            if q.has_room(cfg.send_queue_packets, cfg.send_queue_bytes) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q.waiting = true;
            q = self
                .shared
                .send_cv
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            q.waiting = false;
        }
    }
}

/// Pushes one message; returns whether the IO thread must be told (the queue was not
/// already scheduled).
pub(crate) fn push_send(
    inner: &Inner,
    shared: &ConnShared,
    out: Outgoing,
) -> Result<bool, SendError> {
    push_send_with(inner, shared, out, false)
}

/// As [`push_send`]; `promised`: room was promised to this sender (a sink's
/// `poll_ready`), so the message is taken even if another sender filled the queue since,
/// one message beyond the bound at most per sink.
pub(crate) fn push_send_with(
    inner: &Inner,
    shared: &ConnShared,
    out: Outgoing,
    promised: bool,
) -> Result<bool, SendError> {
    if out.payload.len() > usize::from(u16::MAX) && out.flags.codec == Codec::None {
        return Err(SendError::TooLarge);
    }
    let cfg = &inner.config;
    let cost = out.payload.len() + QUEUE_ENTRY_OVERHEAD;
    let mut q = lock(&shared.sendq);
    if q.closed {
        return Err(SendError::Closed);
    }
    let full = q.packets >= cfg.send_queue_packets || q.bytes + cost > cfg.send_queue_bytes;
    if full && q.packets > 0 && !promised {
        q.refused = cost;
        return Err(SendError::QueueFull);
    }
    q.refused = 0;
    q.items.push(out);
    q.packets += 1;
    q.bytes += cost;
    let schedule = !q.scheduled;
    q.scheduled = true;
    Ok(schedule)
}

/// Pushes the longest prefix of `messages` that fits; returns how many and whether the
/// IO thread must be told.
pub(crate) fn push_sends(
    inner: &Inner,
    shared: &ConnShared,
    messages: &mut Vec<Outgoing>,
) -> Result<(usize, bool), SendError> {
    let too_large =
        |m: &Outgoing| m.payload.len() > usize::from(u16::MAX) && m.flags.codec == Codec::None;
    if messages.first().is_some_and(too_large) {
        return Err(SendError::TooLarge);
    }
    let cfg = &inner.config;
    let mut q = lock(&shared.sendq);
    if q.closed {
        return Err(SendError::Closed);
    }
    let (mut packets, mut bytes, mut taken) = (q.packets, q.bytes, 0);
    for m in messages.iter() {
        let cost = m.payload.len() + QUEUE_ENTRY_OVERHEAD;
        let full = packets >= cfg.send_queue_packets || bytes + cost > cfg.send_queue_bytes;
        // as push_send: an empty queue takes one message of any size
        if too_large(m) {
            break;
        }
        if full && packets > 0 {
            q.refused = cost;
            break;
        }
        packets += 1;
        bytes += cost;
        taken += 1;
    }
    if taken == messages.len() {
        q.refused = 0;
    }
    q.items.extend(messages.drain(..taken));
    q.packets = packets;
    q.bytes = bytes;
    let schedule = taken > 0 && !q.scheduled;
    q.scheduled |= taken > 0;
    Ok((taken, schedule))
}

/// The body of [`Engine::recv_batch`], shared with the async stream.
pub(crate) fn recv_into(inner: &Inner, out: &mut Vec<AppEvent>, timeout: Duration) -> usize {
    let start = out.len();
    let mut q = lock(&inner.app);
    if q.events.is_empty() && !timeout.is_zero() {
        let deadline = Instant::now() + timeout;
        q.waiting = true;
        while q.events.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = inner
                .app_cv
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        q.waiting = false;
    }
    if out.is_empty() {
        std::mem::swap(&mut q.events, out);
    } else {
        out.append(&mut q.events);
    }
    drop(q);
    inner.consumed(&out[start..]);
    out.len() - start
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

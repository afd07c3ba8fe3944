//! A tokio driver for the whole protocol over any byte stream (feature `tokio`).
//!
//! [`Connection`] runs the sans-IO [`connection::Connection`](crate::connection::Connection)
//! over anything that is `AsyncRead + AsyncWrite` — a `tokio::net::TcpStream`, a
//! `tokio_rustls` stream, a `tokio::io::duplex` in tests — with `tokio::time` for its
//! timers: preface and HELLO (spec §3), negotiation (§6.2), credit (§8), compression
//! (§9), keepalive and the timeouts (§6.5), and the graceful close (§6.4). It is a
//! `Stream` of [`Event`]s and a `Sink` of [`Outgoing`] messages, like
//! `tokio_util::codec::Framed`; split it with `futures::StreamExt::split` to receive
//! and send from different tasks, or use its `async` methods from one.
//!
//! Both sides are the same type: a client connects with [`Config::client`], a node
//! accepts with [`Config::node`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fleetwire::tokio::Error> {
//! use fleetwire::connection::{Config, Event};
//! use fleetwire::tokio::Connection;
//! use fleetwire::Route;
//!
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let node = tokio::spawn(async move {
//!     let mut node = Connection::handshake(b, Config::node(1)).await?;
//!     // echo every message back to its source (0: the peer itself, §4.6)
//!     while let Some(event) = node.recv().await {
//!         match event? {
//!             Event::Data { source, route, payload, .. } => {
//!                 node.send(Route { node: source, ..route }, payload).await?;
//!             }
//!             // the client sends no more (§6.4 half-close): answer with our GOAWAY
//!             Event::GoawayReceived { .. } => drop(node.close("").await?),
//!             _ => {}
//!         }
//!     }
//!     Ok::<_, fleetwire::tokio::Error>(())
//! });
//!
//! let mut client = Connection::handshake(a, Config::client()).await?;
//! client.send(Route::new(1, 0, 7), "hello").await?;
//! let Some(Ok(Event::Data { payload, .. })) = client.recv().await else { panic!() };
//! assert_eq!(&payload[..], b"hello");
//! let closed = client.close("done").await?;
//! assert_eq!(closed.code, fleetwire::ErrorCode::NO_ERROR);
//! node.await.unwrap()?;
//! # Ok(()) }
//! ```
//!
//! **Backpressure.** Sending waits for the peer's credit (§8 `[[flow.send]]`): no message
//! is queued beyond it. Receiving grants credit back only as events are taken: the
//! driver takes at most [`max_inbox`](Connection::set_max_inbox) events ahead of the
//! application, so a peer can have at most its credit plus that many packets in flight
//! to a slow reader.
//!
//! **TLS.** Hand the driver a `tokio_rustls` stream with ALPN `fleetwire/1` (§10.1);
//! to bind the peer's certificate to its HELLO (§10.2 `[[tls.node-binding]]`), set
//! [`Config::authenticated`] from the certificate before calling
//! [`handshake`](Connection::handshake) (see [`identity_from_cert`](crate::tls::identity_from_cert), feature `tls`).

use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::time::{Instant, Sleep};
use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;

use crate::connection::{
    self as sansio, CloseInfo, Config, Event, PeerInfo, SendError, SendOptions,
};
use crate::header::Route;

/// Socket reads go into a buffer of this size, reused.
const READ_BUF: usize = 64 * 1024;
/// Rounds of reading and writing in one poll before yielding to the executor, so that
/// a fast peer cannot starve the other tasks of the thread.
const ROUNDS_PER_POLL: usize = 32;
/// How long [`Connection::close`] waits for the peer's end of stream after its own.
const LINGER: Duration = Duration::from_secs(1);
/// Default of [`Connection::set_max_inbox`].
const DEFAULT_MAX_INBOX: usize = 64;
/// PONG answers remembered for [`Connection::ping`].
const MAX_PONGS: usize = 64;

/// One DATA payload to send: where to and how (spec §5.1, §9.2).
///
/// ```
/// use fleetwire::tokio::Outgoing;
/// use fleetwire::Route;
/// let m = Outgoing::new(Route::new(1, 0, 3), "hello");
/// assert_eq!(&m.payload[..], b"hello");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outgoing {
    /// Destination node, service and channel.
    pub route: Route,
    /// The application bytes.
    pub payload: Bytes,
    /// Codec preference and never-compress.
    pub options: SendOptions,
}

impl Outgoing {
    /// A message with default options (uncompressed).
    ///
    /// ```
    /// let m = fleetwire::tokio::Outgoing::new(fleetwire::Route::default(), vec![1, 2]);
    /// assert_eq!(m.payload.len(), 2);
    /// ```
    pub fn new(route: Route, payload: impl Into<Bytes>) -> Outgoing {
        Outgoing {
            route,
            payload: payload.into(),
            options: SendOptions::default(),
        }
    }
}

/// Why a call on a [`Connection`] failed.
///
/// ```
/// use fleetwire::tokio::Error;
/// use fleetwire::connection::SendError;
/// let e = Error::Send(SendError::TooLarge);
/// assert_eq!(e.to_string(), "payload larger than the peer's max_payload");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the byte stream failed; the connection is lost.
    Io(io::Error),
    /// The message was refused and not sent (too large for the peer, or not a message
    /// that can be sent now); the connection is unaffected unless closing.
    Send(SendError),
    /// The connection is closed (before the call could complete).
    Closed(CloseInfo),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::Send(e) => e.fmt(f),
            Error::Closed(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Closed(_) => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A Fleetwire connection over a tokio byte stream; see the [module docs](self).
///
/// Every method drives the connection: writes what is queued, reads what arrived, runs
/// the timers. A connection nobody polls answers nothing (not even PINGs): keep a task
/// receiving from it, as with any `Stream`.
///
/// Must be created inside a tokio runtime with the time driver enabled.
pub struct Connection<T> {
    io: T,
    conn: sansio::Connection,
    epoch: Instant,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Duration>,
    rbuf: Box<[u8]>,
    out: Vec<u8>,
    out_pos: usize,
    needs_flush: bool,
    read_done: bool,
    write_done: bool,
    io_error: Option<io::Error>,
    inbox: VecDeque<Event>,
    max_inbox: usize,
    pongs: VecDeque<(u64, Duration)>,
    peer: Option<PeerInfo>,
    closed: Option<CloseInfo>,
    /// The `Sink` item waiting for credit.
    pending: Option<Outgoing>,
    /// The stream yielded its last item.
    finished: bool,
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("conn", &self.conn)
            .field("inbox", &self.inbox.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Opens a connection over `io`: the preface and our HELLO are queued at once (§3)
    /// and written when the connection is first polled. Use
    /// [`handshake`](Self::handshake) to also wait for the peer's HELLO.
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`], or outside a tokio runtime with time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::tokio::Connection;
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let conn = Connection::new(a, fleetwire::connection::Config::client());
    /// assert!(conn.peer().is_none());
    /// # }
    /// ```
    pub fn new(io: T, config: Config) -> Connection<T> {
        let epoch = Instant::now();
        Connection {
            io,
            conn: sansio::Connection::new(config, Duration::ZERO),
            epoch,
            sleep: Box::pin(::tokio::time::sleep_until(epoch)),
            armed: None,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            out: Vec::new(),
            out_pos: 0,
            needs_flush: false,
            read_done: false,
            write_done: false,
            io_error: None,
            inbox: VecDeque::new(),
            max_inbox: DEFAULT_MAX_INBOX,
            pongs: VecDeque::new(),
            peer: None,
            closed: None,
            pending: None,
            finished: false,
        }
    }

    /// Opens a connection and waits until the peer's HELLO was accepted (§6.2); the
    /// handshake timer bounds the wait (§6.5).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when either side refused the handshake (the GOAWAY's code) or
    /// it timed out; [`Error::Io`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::Config;
    /// use fleetwire::tokio::{Connection, Error};
    /// use tokio::io::AsyncWriteExt;
    /// let (a, mut b) = tokio::io::duplex(1024);
    /// b.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap(); // not Fleetwire (§3)
    /// let err = Connection::handshake(a, Config::node(1)).await.unwrap_err();
    /// let Error::Closed(info) = err else { panic!() };
    /// assert_eq!(info.code, fleetwire::ErrorCode::BAD_PREFACE);
    /// # }
    /// ```
    pub async fn handshake(io: T, config: Config) -> Result<Connection<T>, Error> {
        let mut conn = Connection::new(io, config);
        poll_fn(|cx| {
            conn.drive(cx);
            if conn.peer.is_some() {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = conn.io_error.take() {
                return Poll::Ready(Err(Error::Io(e)));
            }
            if let Some(closed) = conn.closed_now() {
                return Poll::Ready(Err(Error::Closed(closed)));
            }
            Poll::Pending
        })
        .await?;
        Ok(conn)
    }

    /// What the peer announced in its HELLO, once received.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let conn = fleetwire::tokio::Connection::new(a, fleetwire::connection::Config::client());
    /// assert!(conn.peer().is_none());
    /// # }
    /// ```
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// The sans-IO connection: credit, counters, configuration.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let conn = fleetwire::tokio::Connection::new(a, fleetwire::connection::Config::node(3));
    /// assert_eq!(conn.connection().config().node_id, 3);
    /// # }
    /// ```
    pub fn connection(&self) -> &sansio::Connection {
        &self.conn
    }

    /// The byte stream (for its addresses, or the TLS session's peer certificate).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let conn = fleetwire::tokio::Connection::new(a, fleetwire::connection::Config::client());
    /// let _stream: &tokio::io::DuplexStream = conn.get_ref();
    /// # }
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// How many events the driver takes from the connection ahead of the application
    /// (default 64, at least 1). Taking an event grants its credit back to the peer
    /// (§8 `[[flow.grant]]`), so a reader that does not keep up holds the peer to its
    /// credit plus this many packets.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let mut conn = fleetwire::tokio::Connection::new(a, fleetwire::connection::Config::client());
    /// conn.set_max_inbox(8);
    /// # }
    /// ```
    pub fn set_max_inbox(&mut self, max: usize) {
        self.max_inbox = max.max(1);
    }

    /// Sends one DATA payload (§5.1) and writes it out, waiting for credit first (§8).
    ///
    /// Cancel-safe: dropped while waiting for credit, the message is not sent; once it
    /// had credit it is queued and goes out with the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Send`] for a payload larger than the peer's `max_payload` (nothing
    /// sent, the connection goes on); [`Error::Closed`] once closing; [`Error::Io`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::{Config, SendError};
    /// use fleetwire::tokio::{Connection, Error};
    /// let (a, b) = tokio::io::duplex(1 << 20);
    /// let (c, n) = tokio::join!(Connection::handshake(a, Config::client()),
    ///                           Connection::handshake(b, Config::node(1)));
    /// let (mut c, _n) = (c.unwrap(), n.unwrap());
    /// c.send(fleetwire::Route::new(1, 0, 0), "hi").await.unwrap();
    /// let huge = vec![0u8; 70_000];
    /// assert!(matches!(c.send(fleetwire::Route::default(), huge).await, Err(Error::Send(SendError::TooLarge))));
    /// # }
    /// ```
    pub async fn send(&mut self, route: Route, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_message(Outgoing::new(route, payload)).await
    }

    /// [`send`](Self::send) with options (codec, never-compress).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::{Config, SendOptions};
    /// use fleetwire::tokio::{Connection, Outgoing};
    /// let (a, b) = tokio::io::duplex(1 << 20);
    /// let (c, _n) = tokio::join!(Connection::handshake(a, Config::client()),
    ///                            Connection::handshake(b, Config::node(1)));
    /// let mut m = Outgoing::new(fleetwire::Route::new(1, 0, 0), "secret");
    /// m.options = SendOptions { never_compress: true, ..SendOptions::default() };
    /// c.unwrap().send_message(m).await.unwrap();
    /// # }
    /// ```
    pub async fn send_message(&mut self, message: Outgoing) -> Result<(), Error> {
        poll_fn(|cx| self.poll_send_ready(cx)).await?;
        poll_fn(|cx| self.poll_queue(cx, &message)).await?;
        poll_fn(|cx| self.poll_write_all(cx)).await
    }

    /// The next event: [`Event::Data`], [`Event::PacketError`] (one of our packets was
    /// discarded), [`Event::Forward`] (proxy role only), [`Event::GoawayReceived`] (the
    /// peer's half-close: answer with [`close`](Self::close) once what it is owed is
    /// sent), and last [`Event::Closed`]; then `None`. An I/O failure is reported once as `Err`, before the `Closed`
    /// (`CONNECTION_LOST`). PONGs are taken by [`ping`](Self::ping).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::{Config, Event};
    /// use fleetwire::tokio::Connection;
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut c = Connection::new(a, Config::client());
    /// drop(b); // the stream ends without GOAWAY (writing to it fails: an `Err` first)
    /// let mut last = None;
    /// while let Some(item) = c.recv().await {
    ///     last = Some(item);
    /// }
    /// let code = fleetwire::ErrorCode::CONNECTION_LOST;
    /// assert!(matches!(last, Some(Ok(Event::Closed { code: c, .. })) if c == code));
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Result<Event, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Sends a PING and waits for its PONG (§5.4): the round-trip time.
    ///
    /// The PONG is taken in order with the other events: while the application leaves
    /// [`max_inbox`](Self::set_max_inbox) events untaken, it waits.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the connection closes first; [`Error::Io`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::Config;
    /// use fleetwire::tokio::Connection;
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut node = Connection::new(b, Config::node(1));
    /// tokio::spawn(async move { while node.recv().await.is_some() {} });
    /// let mut c = Connection::handshake(a, Config::client()).await.unwrap();
    /// let rtt = c.ping().await.unwrap();
    /// assert!(rtt < std::time::Duration::from_secs(1));
    /// # }
    /// ```
    pub async fn ping(&mut self) -> Result<Duration, Error> {
        let id = self.conn.send_ping(self.now());
        poll_fn(|cx| {
            self.drive(cx);
            if let Some(at) = self.pongs.iter().position(|p| p.0 == id) {
                let rtt = self.pongs.remove(at).map_or(Duration::ZERO, |p| p.1);
                return Poll::Ready(Ok(rtt));
            }
            if let Some(e) = self.io_error.take() {
                return Poll::Ready(Err(Error::Io(e)));
            }
            match self.closed_now() {
                Some(closed) => Poll::Ready(Err(Error::Closed(closed))),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Closes gracefully (§6.4): sends GOAWAY NO_ERROR after every message already
    /// sent, waits for the peer's GOAWAY (bounded by the drain timer), ends the byte
    /// stream and waits briefly for the peer to end its own. Returns the close record;
    /// its `delivered` says how many of our DATA packets the peer processed.
    ///
    /// This is also the answer to the peer's close: after [`Event::GoawayReceived`] the
    /// peer sends no more DATA but still takes ours, so send what is owed, then call
    /// `close` (§6.4 `[[close.answer]]`); the drain timer answers for an application that
    /// does not, `drain_timeout_ms` after the peer's GOAWAY.
    ///
    /// Events that arrived before the close remain readable with
    /// [`recv`](Self::recv), followed by the same [`Event::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when writing failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fleetwire::connection::{Config, Event};
    /// use fleetwire::tokio::Connection;
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut node = Connection::new(b, Config::node(1));
    /// tokio::spawn(async move {
    ///     while let Some(Ok(event)) = node.recv().await {
    ///         if let Event::GoawayReceived { .. } = event {
    ///             node.close("").await.unwrap(); // the answer (§6.4)
    ///         }
    ///     }
    /// });
    /// let mut c = Connection::handshake(a, Config::client()).await.unwrap();
    /// let closed = c.close("bye").await.unwrap();
    /// assert!(closed.code == fleetwire::ErrorCode::NO_ERROR && !closed.by_peer);
    /// # }
    /// ```
    pub async fn close(&mut self, reason: &str) -> Result<CloseInfo, Error> {
        // A message accepted by the Sink goes before the GOAWAY, or fails here.
        poll_fn(|cx| self.poll_write_all(cx)).await?;
        let now = self.now();
        self.conn.close(now, reason);
        poll_fn(|cx| self.poll_shutdown(cx)).await?;
        // Read until the peer ends its stream too, so that closing the socket with
        // unread input does not reset our last bytes; bounded by the linger.
        let _ = ::tokio::time::timeout(LINGER, poll_fn(|cx| self.poll_read_eof(cx))).await;
        match self.closed_now() {
            Some(closed) => Ok(closed),
            None => Err(Error::Io(io::Error::other("connection not closed"))),
        }
    }

    // ---- the machinery ----

    /// Connection time now.
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// The close record once closed. Once the connection is closed no more credit is
    /// granted, so every remaining event is taken from it, whatever the inbox holds.
    fn closed_now(&mut self) -> Option<CloseInfo> {
        if self.closed.is_none() && self.conn.is_closed() {
            while let Some(event) = self.conn.poll_event() {
                self.take(event);
            }
        }
        self.closed.clone()
    }

    /// Records an event taken from the connection.
    fn take(&mut self, event: Event) {
        match event {
            Event::Established { peer } => self.peer = Some(peer),
            Event::Pong { id, rtt } => {
                if self.pongs.len() == MAX_PONGS {
                    self.pongs.pop_front();
                }
                self.pongs.push_back((id, rtt));
            }
            event => {
                if let Some(closed) = CloseInfo::from_event(&event) {
                    self.closed = Some(closed);
                }
                self.inbox.push_back(event);
            }
        }
    }

    /// Takes events from the connection while the inbox has room.
    fn pump(&mut self) {
        while self.inbox.len() < self.max_inbox {
            match self.conn.poll_event() {
                Some(event) => self.take(event),
                None => break,
            }
        }
    }

    /// Makes all the progress possible without waiting: timers, writes, reads, events.
    /// Registers `cx` with every source it would wait on. I/O failures end the
    /// connection (`CONNECTION_LOST`) and are kept in `io_error`.
    fn drive(&mut self, cx: &mut Context<'_>) {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = false;
            let now = self.now();
            if self.conn.poll_timeout().is_some_and(|at| at <= now) {
                self.conn.handle_timeout(now);
                progress = true;
            }
            progress |= self.poll_out(cx);
            progress |= self.poll_in(cx, now);
            self.pump();
            if !progress {
                progress = self.poll_timer(cx);
            }
            if !progress {
                return;
            }
        }
        // Budget spent with work left: come back after the other tasks.
        cx.waker().wake_by_ref();
    }

    /// Writes what the connection queued and flushes it; whether any progress was made.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> bool {
        if self.write_done || self.io_error.is_some() {
            return false;
        }
        let mut progress = false;
        if self.out_pos == self.out.len() && self.conn.has_transmit() {
            self.out.clear();
            self.out_pos = 0;
            self.conn.poll_transmit(&mut self.out);
        }
        while self.out_pos < self.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => {
                    self.lost(io::ErrorKind::WriteZero.into());
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.needs_flush = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    self.lost(e);
                    return true;
                }
                Poll::Pending => return progress,
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => self.lost(e),
                Poll::Pending => {}
            }
        }
        progress
    }

    /// Reads once and feeds the connection; whether anything happened.
    fn poll_in(&mut self, cx: &mut Context<'_>, now: Duration) -> bool {
        if self.read_done || self.conn.is_closed() {
            return false;
        }
        let mut buf = ReadBuf::new(&mut self.rbuf);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                self.read_done = true;
                self.conn.handle_eof(now);
            }
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                // spec §6.5 [[timeout.first]]: handle_input runs expired timers first
                self.conn.handle_input(now, &self.rbuf[..n]);
            }
            Poll::Ready(Err(e)) => self.lost(e),
            Poll::Pending => return false,
        }
        true
    }

    /// Arms the timer for the connection's next deadline; whether it already expired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.conn.poll_timeout() else {
            return false;
        };
        if self.armed != Some(at) {
            self.sleep.as_mut().reset(self.epoch + at);
            self.armed = Some(at);
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }

    /// The byte stream failed: the connection is lost (§6.4 `CONNECTION_LOST`).
    fn lost(&mut self, e: io::Error) {
        self.read_done = true;
        self.write_done = true;
        let now = self.now();
        self.conn.handle_eof(now);
        self.io_error.get_or_insert(e);
    }

    /// Whether every queued byte was written and flushed.
    fn written(&self) -> bool {
        self.out_pos == self.out.len() && !self.needs_flush && !self.conn.has_transmit()
    }

    /// Ready when a message can be handed over: the connection is established and the
    /// `Sink`'s earlier message was queued (it had credit).
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.pending.take() {
            Some(m) => {
                let polled = self.poll_queue(cx, &m);
                if polled.is_pending() {
                    self.pending = Some(m);
                }
                polled
            }
            None => self.poll_queue(cx, None),
        }
    }

    /// Queues `message` in the connection once established and with credit for it (§8
    /// `[[flow.send]]`); with `None`, waits for the establishment only.
    fn poll_queue<'m>(
        &mut self,
        cx: &mut Context<'_>,
        message: impl Into<Option<&'m Outgoing>>,
    ) -> Poll<Result<(), Error>> {
        let message = message.into();
        loop {
            if let Some(e) = self.io_error.take() {
                return Poll::Ready(Err(Error::Io(e)));
            }
            if self.conn.is_closed() || self.conn.is_draining() {
                return Poll::Ready(Err(match self.closed_now() {
                    Some(c) => Error::Closed(c),
                    None => Error::Send(SendError::Closing),
                }));
            }
            match message {
                None if self.conn.is_established() => return Poll::Ready(Ok(())),
                None => {}
                Some(m) => match self.conn.send_data(m.route, &m.payload, m.options) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(SendError::NoCredit | SendError::NotEstablished) => {}
                    Err(e) => return Poll::Ready(Err(Error::Send(e))),
                },
            }
            // Wait for the peer's HELLO or CREDIT; retry on change.
            let before = (self.conn.send_credit(), self.conn.is_established());
            self.drive(cx);
            let after = (self.conn.send_credit(), self.conn.is_established());
            let ended = self.io_error.is_some() || self.conn.is_closed() || self.conn.is_draining();
            if before == after && !ended {
                return Poll::Pending;
            }
        }
    }

    /// Hands any pending message to the connection and writes everything out.
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.pending.is_some() {
            match self.poll_send_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        self.drive(cx);
        if let Some(e) = self.io_error.take() {
            return Poll::Ready(Err(Error::Io(e)));
        }
        if self.written() || self.write_done {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }

    /// Drives until the connection is closed and its last bytes are written, then ends
    /// the byte stream (`poll_shutdown`: a TLS `close_notify` and a TCP FIN).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.drive(cx);
        if let Some(e) = self.io_error.take() {
            return Poll::Ready(Err(Error::Io(e)));
        }
        if !self.conn.is_closed() || !(self.written() || self.write_done) {
            return Poll::Pending;
        }
        if !self.write_done {
            match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => self.write_done = true,
                Poll::Ready(Err(e)) => {
                    self.write_done = true;
                    return Poll::Ready(Err(Error::Io(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.closed_now();
        Poll::Ready(Ok(()))
    }

    /// Reads and discards until the peer's end of stream.
    fn poll_read_eof(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.read_done {
            let mut buf = ReadBuf::new(&mut self.rbuf);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(_) => self.read_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.inbox.is_empty() {
            self.drive(cx);
            if let Some(e) = self.io_error.take() {
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
            self.closed_now();
        }
        match self.inbox.pop_front() {
            Some(event) => {
                self.finished = matches!(event, Event::Closed { .. });
                // room in the inbox: take what waited (and grant its credit)
                self.pump();
                Poll::Ready(Some(Ok(event)))
            }
            None => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for Connection<T> {
    type Item = Result<Event, Error>;

    /// See [`Connection::recv`].
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// `poll_ready` waits for the handshake and for credit for the previous message (§8),
/// `poll_flush` until every queued byte was written and flushed, `poll_close` for the
/// graceful close ([`Connection::close`] without the linger).
impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Outgoing> for Connection<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_send_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), Error> {
        let this = self.get_mut();
        if this.pending.is_some() {
            return Err(Error::Io(io::Error::other("start_send without poll_ready")));
        }
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_write_all(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.conn.is_closed() {
            match this.poll_write_all(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let now = this.now();
            this.conn.close(now, "");
        }
        this.poll_shutdown(cx)
    }
}

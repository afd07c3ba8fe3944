//! The engine's public vocabulary: ids, options, messages, events and errors.

use core::fmt;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::connection::{PeerInfo, SendOptions};
use crate::error::ErrorCode;
use crate::header::{Codec, Route};

/// Identifies one connection of an [`Engine`](super::Engine) for its whole life; never
/// reused.
///
/// ```
/// use fleetwire::transport::ConnId;
/// let id = ConnId::from_raw(7);
/// assert_eq!(id.raw(), 7);
/// assert_eq!(id.to_string(), "conn#7");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The id's number (unique within its engine).
    ///
    /// ```
    /// assert_eq!(fleetwire::transport::ConnId::from_raw(3).raw(), 3);
    /// ```
    pub fn raw(self) -> u64 {
        self.0
    }

    /// An id from its number, for tables keyed by [`raw`](ConnId::raw).
    ///
    /// ```
    /// let id = fleetwire::transport::ConnId::from_raw(9);
    /// assert_eq!(id, fleetwire::transport::ConnId::from_raw(id.raw()));
    /// ```
    pub fn from_raw(raw: u64) -> ConnId {
        ConnId(raw)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// A listening socket of an [`Engine`](super::Engine), as returned by
/// [`Engine::listen`](super::Engine::listen).
///
/// ```
/// use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
/// let engine = Engine::new(EngineConfig::default()).unwrap();
/// let listener = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
/// assert_ne!(listener.local_addr.port(), 0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Listener {
    /// The id reported in [`AppEvent::Accepted`].
    pub id: ConnId,
    /// The bound address (with the real port when bound to port 0).
    pub local_addr: SocketAddr,
}

/// How a connection is protected (spec §2, §10). Plaintext must be chosen explicitly;
/// there is never a fallback from TLS (spec §2 `[[layer.no-fallback]]`). Without
/// feature `tls` only [`Plaintext`](TlsOptions::Plaintext) exists.
///
/// ```
/// # #[cfg(feature = "tls")] {
/// use fleetwire::tls::{client_config, generate_test_pki, server_config};
/// use fleetwire::transport::TlsOptions;
/// let pki = generate_test_pki(&["localhost"], None).unwrap();
/// let server = TlsOptions::Server(
///     server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap(),
/// );
/// let client = TlsOptions::Client {
///     config: client_config(pki.ca_cert_pem.as_bytes(), None).unwrap(),
///     server_name: "localhost".into(),
/// };
/// assert!(server.is_tls() && client.is_tls() && !TlsOptions::Plaintext.is_tls());
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum TlsOptions {
    /// No TLS: only when both operators configured it.
    Plaintext,
    /// TLS 1.3 server side (for [`Engine::listen`](super::Engine::listen)).
    #[cfg(feature = "tls")]
    Server(Arc<rustls::ServerConfig>),
    /// TLS 1.3 client side (for [`Engine::connect`](super::Engine::connect)).
    #[cfg(feature = "tls")]
    Client {
        /// The client configuration (see [`crate::tls::client_config`]).
        config: Arc<rustls::ClientConfig>,
        /// The name the server's certificate must carry (spec §10.2).
        server_name: String,
    },
}

impl TlsOptions {
    /// Whether this is TLS.
    ///
    /// ```
    /// assert!(!fleetwire::transport::TlsOptions::Plaintext.is_tls());
    /// ```
    pub fn is_tls(&self) -> bool {
        !matches!(self, TlsOptions::Plaintext)
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsOptions::Plaintext => f.write_str("Plaintext"),
            #[cfg(feature = "tls")]
            TlsOptions::Server(_) => f.write_str("Server(..)"),
            #[cfg(feature = "tls")]
            TlsOptions::Client { server_name, .. } => {
                write!(f, "Client {{ server_name: {server_name:?}, .. }}")
            }
        }
    }
}

/// Per-message sending options: the preferred codec and the never-compress flag
/// (spec §4.4, §9.2). Compression happens on the IO thread.
///
/// ```
/// use fleetwire::transport::SendFlags;
/// use fleetwire::Codec;
/// let flags = SendFlags { codec: Codec::Snappy, never_compress: false };
/// assert_eq!(SendFlags::default().codec, Codec::None);
/// assert_eq!(SendFlags::secret().never_compress, true);
/// # let _ = flags;
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SendFlags {
    /// Preferred codec; used only when the peer announced it and it helps (§9.2).
    pub codec: Codec,
    /// The payload holds secrets: mark it N = 1, never compress it (§4.4, §14.1).
    pub never_compress: bool,
}

impl SendFlags {
    /// Flags preferring `codec`.
    ///
    /// ```
    /// use fleetwire::transport::SendFlags;
    /// assert_eq!(SendFlags::codec(fleetwire::Codec::Zlib).codec, fleetwire::Codec::Zlib);
    /// ```
    pub fn codec(codec: Codec) -> SendFlags {
        SendFlags {
            codec,
            never_compress: false,
        }
    }

    /// Flags for a payload with secrets (N = 1).
    ///
    /// ```
    /// assert!(fleetwire::transport::SendFlags::secret().never_compress);
    /// ```
    pub fn secret() -> SendFlags {
        SendFlags {
            codec: Codec::None,
            never_compress: true,
        }
    }

    pub(crate) fn options(self) -> SendOptions {
        SendOptions {
            codec: self.codec,
            never_compress: self.never_compress,
        }
    }
}

/// One DATA packet received, decompressed and validated on an IO thread, with the
/// connection it arrived on (the engine's counterpart of `node::Message`).
///
/// ```
/// use bytes::Bytes;
/// use fleetwire::transport::{ConnId, ConnMessage};
/// use fleetwire::Route;
/// let m = ConnMessage {
///     conn: ConnId::from_raw(1),
///     source: 0,
///     route: Route::new(0, 2, 3),
///     payload: Bytes::from_static(b"hi"),
///     never_compress: false,
/// };
/// assert_eq!(m.route.service, 2);
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnMessage {
    /// The connection it arrived on.
    pub conn: ConnId,
    /// Its source node (spec §7.4).
    pub source: u16,
    /// Its route as received.
    pub route: Route,
    /// The application bytes (a slice of the receive buffer, or the decompressed
    /// output).
    pub payload: Bytes,
    /// The sender marked it N = 1 (secrets).
    pub never_compress: bool,
}

impl ConnMessage {
    /// Where a reply goes: to the message's source, on the same service and channel
    /// (spec §7.4). Echoing `route` back instead would address the receiver itself, and
    /// through a proxy every such packet is a NO_ROUTE packet error that counts against
    /// the connection's error budget (§12.3).
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, ConnMessage};
    /// use fleetwire::Route;
    /// let m = ConnMessage {
    ///     conn: ConnId::from_raw(1),
    ///     source: 40_000,
    ///     route: Route::new(7, 2, 3),
    ///     payload: "hi".into(),
    ///     never_compress: false,
    /// };
    /// assert_eq!(m.reply_route(), Route::new(40_000, 2, 3));
    /// ```
    pub fn reply_route(&self) -> Route {
        Route::new(self.source, self.route.service, self.route.channel)
    }
}

/// The engine's internal name of [`ConnMessage`].
pub(crate) type Message = ConnMessage;
/// The engine's internal name of [`EnqueueError`].
pub(crate) type SendError = EnqueueError;

/// What [`Engine::recv_batch`](super::Engine::recv_batch) hands to the application.
///
/// Per connection, events come in order: `Accepted` (server side), then `Connected`,
/// messages and errors, then possibly `Undelivered`, and `Closed` last.
///
/// ```
/// use fleetwire::transport::{AppEvent, ConnId};
/// let e = AppEvent::Undelivered { conn: ConnId::from_raw(1), queued: 2, unconfirmed: 0 };
/// assert_eq!(e.conn(), ConnId::from_raw(1));
/// ```
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AppEvent {
    /// A listener accepted a TCP connection; `Connected` follows after the handshake.
    Accepted {
        /// The new connection.
        conn: ConnId,
        /// The listener's id.
        listener: ConnId,
        /// The peer's address.
        peer_addr: SocketAddr,
    },
    /// The Fleetwire handshake completed (TLS first when configured).
    Connected {
        /// The connection.
        conn: ConnId,
        /// What the peer announced (spec §5.2).
        peer: PeerInfo,
    },
    /// A DATA packet for the application.
    Message(ConnMessage),
    /// The peer reported that one of our packets was discarded (spec §5.7).
    PacketError {
        /// The connection.
        conn: ConnId,
        /// The packet error code.
        code: ErrorCode,
        /// The reporting node.
        source: u16,
        /// The reporter's reason.
        reason: String,
    },
    /// One accepted [`send`](super::Engine::send) could not be encoded (for example
    /// longer than the peer's `max_payload` even compressed): it was not sent.
    SendFailed {
        /// The connection.
        conn: ConnId,
        /// The route of the message.
        route: Route,
        /// Why.
        error: crate::connection::SendError,
    },
    /// The PONG answering a PING sent by [`Engine::ping`](super::Engine::ping) (spec
    /// §5.4), with its round-trip time; PINGs the engine sends to keep the connection
    /// alive are not reported (their RTT still updates the connection's stats).
    Pong {
        /// The connection.
        conn: ConnId,
        /// Round-trip time measured by the PING's timestamp.
        rtt: Duration,
    },
    /// The peer closes gracefully (spec §6.4 `[[close.half]]`): it sends no more DATA
    /// but still takes ours. Send the answers to what it sent, then call
    /// [`Engine::close`](super::Engine::close): our GOAWAY goes out once they are
    /// written. The engine answers by itself when every message of the connection went
    /// to native handlers, and in any case `close_timeout` after this event.
    GoawayReceived {
        /// The connection.
        conn: ConnId,
        /// How many of our DATA packets the peer processed before its GOAWAY (§5.5).
        delivered: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// The connection closed with messages the engine accepted and cannot confirm:
    /// nothing accepted by `send` is ever dropped silently. Comes right before `Closed`.
    Undelivered {
        /// The connection.
        conn: ConnId,
        /// Messages still queued, never written to the connection.
        queued: u64,
        /// Messages written whose processing the peer did not confirm: the count above
        /// the `delivered` of the peer's GOAWAY (spec §5.5), or every message written
        /// when no GOAWAY arrived.
        unconfirmed: u64,
    },
    /// The connection is closed; always its last event.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why: the GOAWAY code (spec §12.4), or CONNECTION_LOST.
        code: ErrorCode,
        /// The peer (or the network) ended it.
        by_peer: bool,
        /// The reason text, or the IO error.
        reason: String,
        /// How many of our DATA packets the peer processed, from its GOAWAY.
        delivered: Option<u64>,
    },
}

impl AppEvent {
    /// The connection this event is about (the new connection for `Accepted`).
    ///
    /// ```
    /// use fleetwire::transport::{AppEvent, ConnId};
    /// use fleetwire::ErrorCode;
    /// let e = AppEvent::Closed {
    ///     conn: ConnId::from_raw(4),
    ///     code: ErrorCode::NO_ERROR,
    ///     by_peer: false,
    ///     reason: String::new(),
    ///     delivered: Some(0),
    /// };
    /// assert_eq!(e.conn().raw(), 4);
    /// ```
    pub fn conn(&self) -> ConnId {
        match self {
            AppEvent::Accepted { conn, .. }
            | AppEvent::Connected { conn, .. }
            | AppEvent::PacketError { conn, .. }
            | AppEvent::SendFailed { conn, .. }
            | AppEvent::Undelivered { conn, .. }
            | AppEvent::Pong { conn, .. }
            | AppEvent::GoawayReceived { conn, .. }
            | AppEvent::Closed { conn, .. } => *conn,
            AppEvent::Message(m) => m.conn,
        }
    }
}

/// Why [`Engine::send`](super::Engine::send) refused to enqueue a message (not to be
/// confused with [`connection::SendError`](crate::connection::SendError), the sans-IO
/// connection's). A refused message was not queued; an accepted one is delivered or reported ([`AppEvent::Undelivered`],
/// [`AppEvent::SendFailed`]).
///
/// ```
/// use fleetwire::transport::EnqueueError;
/// assert_eq!(EnqueueError::QueueFull.to_string(), "send queue full");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EnqueueError {
    /// The connection's bounded send queue is full: backpressure; retry later.
    QueueFull,
    /// The connection is closing or closed.
    Closed,
    /// No such connection (never existed, or closed and forgotten).
    UnknownConnection,
    /// Longer than any packet can carry uncompressed (65,535 bytes).
    TooLarge,
}

impl fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::QueueFull => "send queue full",
            SendError::Closed => "connection closing or closed",
            SendError::UnknownConnection => "unknown connection",
            SendError::TooLarge => "payload longer than 65535 bytes",
        })
    }
}

impl std::error::Error for EnqueueError {}

/// A message to send, for [`Engine::sink`](super::Engine::sink) and
/// [`ConnSender::send`](super::ConnSender::send).
///
/// ```
/// use bytes::Bytes;
/// use fleetwire::transport::{Outgoing, SendFlags};
/// use fleetwire::Route;
/// let out = Outgoing::new(Route::new(0, 1, 0), Bytes::from_static(b"x"));
/// assert_eq!(out.flags, SendFlags::default());
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outgoing {
    /// Where to.
    pub route: Route,
    /// The application bytes (compressed on the IO thread if `flags` ask).
    pub payload: Bytes,
    /// Codec and never-compress.
    pub flags: SendFlags,
}

impl Outgoing {
    /// A message with default flags.
    ///
    /// ```
    /// use fleetwire::transport::Outgoing;
    /// let o = Outgoing::new(fleetwire::Route::default(), bytes::Bytes::new());
    /// assert!(o.payload.is_empty());
    /// ```
    pub fn new(route: Route, payload: Bytes) -> Outgoing {
        Outgoing {
            route,
            payload,
            flags: SendFlags::default(),
        }
    }
}

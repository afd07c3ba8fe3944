//! What a [`Connection`](super::Connection) reports to its application, and the
//! options and errors of sending.

use core::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::control::Role;
use crate::error::ErrorCode;
use crate::header::{Codec, Header, Route};
use crate::packet::Packet;

/// What the peer announced in its HELLO (spec §5.2), after negotiation (§6.2).
///
/// The limits are the ones that bound what *we* send (§6.2 `[[neg.directional]]`).
///
/// ```
/// use fleetwire::connection::{Event, Pair};
/// let mut pair = Pair::client_server();
/// pair.drive();
/// let Some(Event::Established { peer }) = pair.a.poll_event() else { panic!() };
/// assert_eq!(peer.node_id, 1);
/// assert_eq!(peer.max_payload, 65535);
/// ```
///
/// `#[non_exhaustive]`: HELLO fields of a later version may be added in a minor release.
/// [`PeerInfo::default`] (a version-1 client with the default limits) is for tests.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerInfo {
    /// The negotiated protocol version (§6.2).
    pub version: u8,
    /// The peer's role.
    pub role: Role,
    /// The peer's node id (0 for a client).
    pub node_id: u16,
    /// The id the peer attributes to us (its HELLO `peer_id`), 0 for none (§5.2).
    pub attributed_id: u16,
    /// Codecs the peer can decompress (HELLO bitmask).
    pub codecs: u8,
    /// Largest payload we may send (§4.5).
    pub max_payload: u16,
    /// Largest decompressed payload the peer accepts (§9.3).
    pub max_decompressed: u32,
    /// The peer's decompression ratio cap (§9.3).
    pub max_ratio: u8,
    /// Packet credit the peer initially granted us (§8).
    pub initial_credit_packets: u32,
    /// Byte credit the peer initially granted us (§8).
    pub initial_credit_bytes: u32,
    /// The peer's idle timeout in milliseconds, 0 for none (§6.2 `[[neg.keepalive]]`).
    pub idle_timeout_ms: u32,
}

impl Default for PeerInfo {
    /// What a version-1 client announcing the default [`Limits`](crate::Limits) and
    /// every supported codec looks like.
    ///
    /// ```
    /// let p = fleetwire::connection::PeerInfo::default();
    /// assert_eq!((p.version, p.node_id, p.max_payload), (1, 0, 65535));
    /// ```
    fn default() -> PeerInfo {
        let limits = crate::Limits::default();
        PeerInfo {
            version: 1,
            role: Role::Client,
            node_id: 0,
            attributed_id: 0,
            codecs: super::Config::SUPPORTED_CODECS,
            max_payload: limits.max_payload,
            max_decompressed: limits.max_decompressed,
            max_ratio: limits.max_ratio,
            initial_credit_packets: limits.initial_credit_packets,
            initial_credit_bytes: limits.initial_credit_bytes,
            idle_timeout_ms: limits.idle_timeout_ms,
        }
    }
}

/// Something that happened on a connection; see
/// [`Connection::poll_event`](super::Connection::poll_event).
///
/// ```
/// use fleetwire::connection::{Event, Pair, SendOptions};
/// use fleetwire::Route;
/// let mut pair = Pair::client_server();
/// pair.drive();
/// pair.a.send_data(Route::new(0, 0, 5), b"hi", SendOptions::default()).unwrap();
/// pair.drive();
/// let events: Vec<Event> = std::iter::from_fn(|| pair.b.poll_event()).collect();
/// assert!(matches!(&events[1], Event::Data { route, payload, .. }
///     if route.channel == 5 && &payload[..] == b"hi"));
/// ```
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// The peer's HELLO was valid and negotiation succeeded (§6.2).
    Established {
        /// What the peer announced.
        peer: PeerInfo,
    },
    /// DATA for this endpoint (§7.2), decompressed (§9.3).
    Data {
        /// The packet's source node (§7.4).
        source: u16,
        /// The packet's route as received: node (0 or our id), service, channel.
        route: Route,
        /// The application bytes, decompressed.
        payload: Bytes,
        /// The sender marked the payload N = 1: it contains secrets (§4.4).
        never_compress: bool,
    },
    /// (Proxies only.) A DATA or ERROR packet for another node (§7.3): the proxy layer
    /// looks `packet.header.route.node` up and writes the packet to the egress connection
    /// with [`Connection::forward`](super::Connection::forward), or, when it cannot,
    /// calls [`Connection::report_unroutable`](super::Connection::report_unroutable) on
    /// this connection with `received`. Its credit returns to the peer when it is taken
    /// with `poll_event`: a proxy that must wait for the egress connection leaves it
    /// queued (see [`Connection::peek_event`](super::Connection::peek_event)).
    Forward {
        /// The packet with X = 1 and Source Node stamped (§7.4 `[[src.stamp]]`); every
        /// other field and the payload untouched (§7.3 `[[route.forward-unchanged]]`).
        packet: Packet,
        /// The header exactly as received, for an ERROR report (§5.7).
        received: Header,
    },
    /// The answer to one of our PINGs (§5.4), including keepalive PINGs (§6.2).
    Pong {
        /// The PING's id.
        id: u64,
        /// Round-trip time, `now - timestamp - hold_us` (§5.4).
        rtt: Duration,
    },
    /// An ERROR for this endpoint (§5.7): one of our packets was discarded.
    PacketError {
        /// The packet error code, reported as it is even when unknown.
        code: ErrorCode,
        /// The node that reported it (§7.4).
        source: u16,
        /// The discarded packet's header as the reporter received it (8 or 10 bytes).
        header: Bytes,
        /// The reporter's reason.
        reason: String,
    },
    /// The peer sent GOAWAY NO_ERROR (§6.4): it sends no more DATA. This is a half-close:
    /// we may still send DATA — the answers to what it sent — and then call
    /// [`Connection::close`](super::Connection::close) to answer with our GOAWAY
    /// (`[[close.answer]]`); the drain timer, started now, answers for us at the latest.
    GoawayReceived {
        /// How many of our DATA packets the peer processed before its GOAWAY (§5.5); our
        /// DATA sent after that is still processed (§6.4 `[[close.half]]`).
        delivered: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// The connection is closed; no more input is processed. Always the last event.
    Closed {
        /// Why: the peer's GOAWAY code when `by_peer`, else ours.
        code: ErrorCode,
        /// The peer started the close (its GOAWAY arrived before we sent one).
        by_peer: bool,
        /// The reason text of the GOAWAY that decided `code`.
        reason: String,
        /// How many of our DATA packets the peer processed, from its GOAWAY
        /// (§5.5 `[[goaway.delivered]]`); `None` when no GOAWAY was received.
        delivered: Option<u64>,
    },
}

/// How to send one DATA payload.
///
/// ```
/// use fleetwire::connection::SendOptions;
/// use fleetwire::Codec;
/// let secret = SendOptions { never_compress: true, ..SendOptions::default() };
/// assert_eq!(secret.codec, Codec::None);
/// let zipped = SendOptions::compressed(Codec::Zlib);
/// assert!(!zipped.never_compress);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SendOptions {
    /// Preferred codec; used only when the peer announced it, compression makes the
    /// payload smaller and `never_compress` is false (§9.2). Ignored without the
    /// `compression` feature.
    pub codec: Codec,
    /// Mark the payload N = 1: it contains secrets and is never compressed (§4.4, §9.2).
    pub never_compress: bool,
}

impl SendOptions {
    /// Options preferring `codec`.
    ///
    /// ```
    /// use fleetwire::connection::SendOptions;
    /// use fleetwire::Codec;
    /// assert_eq!(SendOptions::compressed(Codec::Snappy).codec, Codec::Snappy);
    /// ```
    pub fn compressed(codec: Codec) -> SendOptions {
        SendOptions {
            codec,
            ..SendOptions::default()
        }
    }
}

/// Why a packet was not queued. Nothing was sent; the connection is unaffected.
///
/// ```
/// use fleetwire::connection::{Config, Connection, SendError, SendOptions};
/// use fleetwire::Route;
/// let mut c = Connection::new(Config::client(), std::time::Duration::ZERO);
/// let err = c.send_data(Route::default(), b"x", SendOptions::default());
/// assert_eq!(err, Err(SendError::NotEstablished));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendError {
    /// Not enough flow-control credit (§8 `[[flow.send]]`); retry after the peer grants
    /// more (it does when its application consumes data).
    NoCredit,
    /// The peer's HELLO has not been received yet.
    NotEstablished,
    /// A GOAWAY was sent or received, or the connection is closed
    /// (§6.4 `[[close.no-data-after]]`).
    Closing,
    /// The payload is longer than the peer's `max_payload` (§4.5 `[[hdr.length-send]]`).
    TooLarge,
    /// Only DATA and ERROR packets can be forwarded, with `header.length` equal to the
    /// payload length (§7.3).
    NotRoutable,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::NoCredit => "not enough flow-control credit",
            SendError::NotEstablished => "connection not established",
            SendError::Closing => "connection closing",
            SendError::TooLarge => "payload larger than the peer's max_payload",
            SendError::NotRoutable => "not a well-formed DATA or ERROR packet",
        })
    }
}

impl std::error::Error for SendError {}

/// How a connection ended (spec §6.4): the GOAWAY code that decided it, or
/// CONNECTION_LOST (0x0011) when the byte stream ended without a GOAWAY.
///
/// ```
/// use fleetwire::connection::CloseInfo;
/// use fleetwire::ErrorCode;
/// let info = CloseInfo::lost("the byte stream ended");
/// assert_eq!(info.code, ErrorCode::CONNECTION_LOST);
/// assert!(info.to_string().starts_with("CONNECTION_LOST (0x0011)"));
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CloseInfo {
    /// The peer's GOAWAY code when `by_peer`, else ours; CONNECTION_LOST when the stream
    /// ended without GOAWAY (a local code, never sent, spec §12.4).
    pub code: ErrorCode,
    /// The peer started the close.
    pub by_peer: bool,
    /// The reason text of the GOAWAY, or why the connection was lost.
    pub reason: String,
    /// How many of our DATA packets the peer processed, from its GOAWAY (spec §5.5
    /// `[[goaway.delivered]]`); `None` without a GOAWAY from the peer.
    pub delivered: Option<u64>,
}

impl CloseInfo {
    /// A connection whose byte stream ended or failed without GOAWAY (spec §6.4).
    ///
    /// ```
    /// let info = fleetwire::connection::CloseInfo::lost("reset");
    /// assert!(info.by_peer && info.delivered.is_none());
    /// ```
    pub fn lost(reason: &str) -> CloseInfo {
        CloseInfo {
            code: ErrorCode::CONNECTION_LOST,
            by_peer: true,
            reason: reason.to_owned(),
            delivered: None,
        }
    }

    /// The record of an [`Event::Closed`], `None` for any other event.
    ///
    /// ```
    /// use fleetwire::connection::Event;
    /// use fleetwire::connection::CloseInfo;
    /// use fleetwire::ErrorCode;
    /// let event = Event::Closed { code: ErrorCode::TIMEOUT, by_peer: false, reason: "idle".into(), delivered: None };
    /// assert_eq!(CloseInfo::from_event(&event).unwrap().code, ErrorCode::TIMEOUT);
    /// ```
    pub fn from_event(event: &Event) -> Option<CloseInfo> {
        match event {
            Event::Closed {
                code,
                by_peer,
                reason,
                delivered,
            } => Some(CloseInfo {
                code: *code,
                by_peer: *by_peer,
                reason: reason.clone(),
                delivered: *delivered,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.code == ErrorCode::CONNECTION_LOST {
            ""
        } else if self.by_peer {
            " by the peer"
        } else {
            " by this endpoint"
        };
        write!(f, "{}{who}", self.code)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Takes [`Event::Data`] as packets are processed, instead of the event queue
/// ([`Connection::handle_input_into`](super::Connection::handle_input_into)).
///
/// ```
/// use fleetwire::connection::{Event, EventSink};
/// /// Takes every DATA: counts them.
/// struct Count(usize);
/// impl EventSink for Count {
///     fn offer(&mut self, event: Event) -> Option<Event> {
///         match event {
///             Event::Data { .. } => {
///                 self.0 += 1;
///                 None
///             }
///             other => Some(other),
///         }
///     }
/// }
/// # let _ = Count(0);
/// ```
pub trait EventSink {
    /// Offered one [`Event::Data`]: `None` when taken (delivered: the connection counts
    /// it and grants its credit back), or the event given back to be queued.
    fn offer(&mut self, event: Event) -> Option<Event>;
}

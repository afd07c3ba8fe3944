//! The errors of the reference endpoint and the record of a closed connection.

use std::fmt;
use std::io;

use crate::connection::{Event, SendError};
use crate::error::ErrorCode;
use crate::tls::TlsError;

/// How a connection ended (spec §6.4): the GOAWAY code that decided it, or
/// CONNECTION_LOST (0x0011) when the byte stream ended without a GOAWAY.
///
/// ```
/// use fleetwire::node::CloseInfo;
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
    /// let info = fleetwire::node::CloseInfo::lost("reset");
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
    /// use fleetwire::node::CloseInfo;
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

/// Why an operation of the reference endpoint failed.
///
/// Every variant prints a message an operator can act on.
///
/// ```
/// use fleetwire::node::NodeError;
/// let err = NodeError::PeerSpeaksTls;
/// assert!(err.to_string().contains("expects TLS"));
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum NodeError {
    /// A socket operation failed.
    Io(io::Error),
    /// The TLS layer failed: certificate, ALPN, version, or a plaintext peer (spec §10).
    Tls(TlsError),
    /// This endpoint is configured for plaintext, but the peer answered with a TLS record:
    /// it expects TLS (spec §2: no fallback, §3).
    PeerSpeaksTls,
    /// The connection is closed; how, and by whom.
    Closed(CloseInfo),
    /// Nothing happened before the deadline.
    Timeout(&'static str),
    /// The state machine refused to queue a packet (spec §4.5, §6.4, §8).
    Send(SendError),
    /// An ERROR packet reported that one of our packets was discarded (spec §5.7).
    PacketError {
        /// The packet error code, as reported.
        code: ErrorCode,
        /// The reporter's reason.
        reason: String,
    },
}

impl NodeError {
    /// The close record when the error is a closed connection.
    ///
    /// ```
    /// use fleetwire::node::{CloseInfo, NodeError};
    /// let err = NodeError::Closed(CloseInfo::lost("eof"));
    /// assert!(err.close_info().is_some());
    /// assert!(NodeError::Timeout("PONG").close_info().is_none());
    /// ```
    pub fn close_info(&self) -> Option<&CloseInfo> {
        match self {
            NodeError::Closed(info) => Some(info),
            _ => None,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Io(e) => write!(f, "I/O: {e}"),
            NodeError::Tls(e) => write!(f, "{e}"),
            NodeError::PeerSpeaksTls => f.write_str(
                "the peer answered with a TLS record: it expects TLS, but this endpoint is \
                 configured for plaintext; configure TLS on both ends (spec §2, §3)",
            ),
            NodeError::Closed(info) if info.code == ErrorCode::CONNECTION_LOST => {
                write!(f, "connection lost: {info}")
            }
            NodeError::Closed(info) => write!(f, "connection closed: {info}"),
            NodeError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            NodeError::Send(e) => write!(f, "cannot send: {e}"),
            NodeError::PacketError { code, reason } => {
                write!(f, "the peer discarded a packet: {code}")?;
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Io(e) => Some(e),
            NodeError::Tls(e) => Some(e),
            NodeError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NodeError {
    fn from(e: io::Error) -> NodeError {
        NodeError::Io(e)
    }
}

impl From<TlsError> for NodeError {
    fn from(e: TlsError) -> NodeError {
        NodeError::Tls(e)
    }
}

impl From<SendError> for NodeError {
    fn from(e: SendError) -> NodeError {
        NodeError::Send(e)
    }
}

//! The errors of the reference endpoint and the record of a closed connection.

use std::fmt;
use std::io;

pub use crate::connection::CloseInfo;
use crate::connection::SendError;
use crate::error::ErrorCode;
use crate::tls::TlsError;

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

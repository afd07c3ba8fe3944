//! # Fleetwire
//!
//! A routed, per-packet-compressed wire protocol with an 8-byte out-of-band routing
//! header (10 with its extension): a proxy forwards a packet by reading only its header.
//! The normative specification is `spec/fleetwire-v1.md`; section numbers (`§4.9`) in
//! this crate's documentation refer to it.
//!
//! This crate is sans-IO: parsing, encoding and the connection state machine take bytes
//! and time as inputs and hand back bytes, events and timers. No sockets, threads or
//! clocks live here.
//!
//! ```
//! use fleetwire::{Deframer, Header, Route};
//!
//! // Encode: the header goes into a small buffer; the payload stays where it is.
//! let payload = b"hello";
//! let header = Header::data(Route::new(7, 1, 0), payload.len() as u16);
//! let mut wire = Vec::new();
//! header.encode_to_vec(&mut wire);
//! wire.extend_from_slice(payload);
//!
//! // Decode incrementally, from input split at any byte.
//! let mut deframer = Deframer::new(u16::MAX);
//! deframer.extend(&wire[..3]);
//! assert!(deframer.next_packet().unwrap().is_none()); // incomplete, not invalid
//! deframer.extend(&wire[3..]);
//! let packet = deframer.next_packet().unwrap().expect("complete");
//! assert_eq!(packet.header.route.node, 7);
//! assert_eq!(&packet.payload[..], b"hello");
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
pub mod control;
mod deframer;
mod error;
mod header;
pub mod limits;
mod packet;
mod setters;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "compression")]
pub mod compress;

#[cfg(feature = "tls")]
pub mod tls;

/// The rustls crate, at the version whose types appear in this crate's API
/// ([`tls`], `transport`): use it instead of a direct dependency that could drift to
/// another version.
///
/// ```
/// let versions = fleetwire::rustls::DEFAULT_VERSIONS;
/// assert!(!versions.is_empty());
/// ```
#[cfg(feature = "tls")]
pub use rustls;

#[cfg(feature = "transport")]
pub mod transport;

#[cfg(feature = "node")]
pub mod node;

#[cfg(feature = "tokio")]
pub mod tokio;

pub use connection::Connection;
pub use deframer::{Batch, Deframer, Partial};
pub use error::{Error, ErrorCode};
pub use header::{Codec, Header, Kind, Route, Status};
pub use limits::Limits;
pub use packet::{check_preface, Packet, PacketRef, Packets, PREFACE};
pub mod inspect;

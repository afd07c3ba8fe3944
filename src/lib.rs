//! # Fleetwire
//!
//! A routed, per-packet-compressed wire protocol with an 8-byte out-of-band routing
//! header (10 with its extension): a proxy forwards a packet by reading only its header.
//! The normative specification is `spec/fleetwire-v1.md`, shipped with this crate
//! ([read it on docs.rs](https://docs.rs/crate/fleetwire/latest/source/spec/fleetwire-v1.md));
//! section numbers (`§4.9`) and tags (`[[hdr.length]]`) in this crate's documentation
//! refer to it. `ARCHITECTURE.md` in the repository maps every section to its module,
//! vectors and conformance cases.
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
//!
//! # Features
//!
//! Without features the crate depends on `bytes` and `nom` only.
//!
//! Observability: with feature `tracing` (on with `node` and `transport`), the crate
//! emits [`tracing`](https://docs.rs/tracing) events; install a subscriber (e.g.
//! `tracing_subscriber::fmt::init()`) to see them. Nothing is printed otherwise.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `compression` | yes | [`compress`]: per-packet snappy and zlib, bounded decompression (§9); without it only codec "none" is announced |
//! | `aws-lc-rs` | yes | the aws-lc-rs crypto provider for `tls` (no effect without `tls`) |
//! | `ring` | | the ring crypto provider for `tls` (use with `default-features = false`) |
//! | `tls` | | `tls`: TLS 1.3 via rustls as a BIO pair (§10); needs `aws-lc-rs` or `ring` |
//! | `test-certs` | | `tls::generate_test_pki`: throw-away test CAs and certificates (rcgen); not for production |
//! | `node` | | `node`: the blocking reference node and client over `std::net` |
//! | `transport` | | `transport`: the engine (IO threads, read-ahead, off-thread send, native handlers, bounded memory) and the proxy; `transport::cluster` also needs `test-certs` |
//! | `transport-async` | | the engine's `Stream`/`Sink` face for tokio and a tokio-util codec |
//! | `transport-bench` | | `transport::bench`: the engine against tokio + tokio-util |
//! | `tracing` | | `tracing` events in the connection state machine (closes with code and reason, packet errors, floods, budgets); `node` and `transport` turn it on and add their own (connections opened and closed, routes up and down). Quiet until a subscriber is installed |
//! | `inspect` | | `inspect`: a plaintext stream as one line (or JSON object) per packet |
//! | `fuzzing` | | the bodies of the fuzz targets (hidden; for `fuzz/`) |
//!
//! The conformance runner and the golden vectors are the crate `fleetwire-conformance`;
//! the `fleetwire` command-line tool is the crate `fleetwire-cli`.
//!
//! # Stability
//!
//! Semantic versioning (see `CHANGELOG.md`): the configuration and statistics structs
//! and the event and error enums are `#[non_exhaustive]`, so fields and variants may be
//! added in minor releases; the wire format is versioned by the spec, not by the crate.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
pub mod control;
mod deframer;
mod error;
mod header;
mod idmap;
pub mod limits;
mod packet;
mod setters;
mod trace;

#[cfg(feature = "fuzzing")]
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

#[cfg(feature = "attack")]
pub mod attack;

#[cfg(feature = "tokio")]
pub mod tokio;

pub use connection::Connection;
pub use deframer::{Batch, Deframer, Partial};
pub use error::{Error, ErrorCode};
pub use header::{Codec, Header, Kind, Route, Status};
pub use limits::Limits;
pub use packet::{check_preface, Packet, PacketRef, Packets, PREFACE};

#[cfg(feature = "inspect")]
pub mod inspect;

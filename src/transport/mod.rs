//! The reference transport engine (feature `transport`): CarbonIO's design (BRIEF §1)
//! over the sans-IO [`Connection`](crate::Connection).
//!
//! - **Dedicated IO threads** ([`EngineConfig::io_threads`], default 1), each running a
//!   mio event loop and owning its sockets, [`TlsEndpoint`](crate::tls::TlsEndpoint)s
//!   (TLS as a BIO pair, spec §10) and connections.
//! - **Read-ahead**: every connection always has a read pending (edge-triggered
//!   readiness, read until `WouldBlock` into one reused buffer); bytes are decrypted,
//!   deframed, validated and decompressed on the IO thread, and messages queued for the
//!   application, which usually finds them already there.
//! - **Off-thread send**: [`Engine::send`] pushes into a bounded per-connection queue and
//!   wakes the IO thread only when the queue was idle; compression, framing, encryption
//!   and the write happen on the IO thread.
//! - **Work grouping**: per wake-up the IO thread drains the whole send queue into the
//!   connection, then makes one `poll_transmit`, one TLS write (many packets per record,
//!   spec §10.3) and one socket write; [`Engine::recv_batch`] takes every ready event
//!   under one lock and blocks only when nothing is ready.
//! - **Native handlers** ([`Engine::register_handler`]) run on the IO thread; their
//!   service's packets never reach the application queue (BlueNet).
//! - **Proxy** ([`proxy::Proxy`], spec §7.3): the IO threads forward DATA and ERROR
//!   packets for other nodes by their routing header alone, payload bytes unchanged,
//!   source stamped (§7.4), with an atomically swapped routing table (BlueNet).
//! - **Bounded memory**: bounded send queues, per-connection and global receive budgets;
//!   a slow consumer stops the IO thread from taking packets, so no credit is granted
//!   back and the peer's sender slows (spec §8).
//! - **Stats** per connection ([`Engine::stats`]): packets and bytes on the wire and
//!   before compression, queue depths, RTT from PING/PONG, errors by code; per route of
//!   a proxy ([`proxy::Proxy::route_stats`]).
//! - **Local cluster** ([`cluster::Cluster`], `fleetwire cluster`): a proxy, two echo
//!   nodes and clients in one process on loopback, with per-route throughput and
//!   round-trip latency.
//!
//! With feature `transport-async`: [`EventStream`] and [`MessageSink`] (a
//! `futures_core::Stream` and a `futures_sink::Sink`) for tokio users, and
//! [`FleetwireCodec`], the framing as a tokio-util `Decoder`/`Encoder`.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use fleetwire::transport::{AppEvent, Engine, EngineConfig, SendFlags, TlsOptions};
//! use fleetwire::{Codec, Route};
//!
//! let engine = Engine::new(EngineConfig::default()).unwrap();
//! let listener = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
//! let client = engine.connect(listener.local_addr, TlsOptions::Plaintext).unwrap();
//! for i in 0..100u32 {
//!     let payload = Bytes::from(i.to_be_bytes().to_vec());
//!     engine.send(client, Route::new(0, 1, 0), payload, SendFlags::codec(Codec::Snappy)).unwrap();
//! }
//! let (mut events, mut got) = (Vec::new(), 0u32);
//! while got < 100 {
//!     engine.recv_batch(&mut events, Duration::from_secs(5));
//!     for e in events.drain(..) {
//!         if let AppEvent::Message(m) = e {
//!             assert_eq!(&m.payload[..], &got.to_be_bytes()); // in order
//!             got += 1;
//!         }
//!     }
//! }
//! ```

#[cfg(all(feature = "tls", feature = "test-certs"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-certs")))]
pub mod cluster;
mod config;
mod conn;
mod engine;
mod forward;
mod handler;
mod io;
pub mod proxy;
mod queue;
mod routing;
mod shared;
mod stats;
mod sync;
mod tls_io;
mod types;

#[cfg(feature = "transport-async")]
mod asyncio;
#[cfg(feature = "transport-async")]
mod codec;

#[cfg(feature = "transport-bench")]
pub mod bench;

pub use config::{EngineConfig, IoThreadStart};
pub use engine::{ConnSender, Engine};
pub use handler::{Handler, Reply};
pub use queue::QUEUE_ENTRY_OVERHEAD;
pub use shared::ReadyHook;
pub use stats::ConnStats;
pub use types::{
    AppEvent, ConnId, ConnMessage, EnqueueError, Listener, Outgoing, SendFlags, TlsOptions,
};

#[cfg(feature = "transport-async")]
pub use asyncio::{ConnEventStream, EventStream, MessageSink};
#[cfg(feature = "transport-async")]
pub use codec::{CodecError, FleetwireCodec};

//! A reference endpoint over blocking `std::net` sockets: a node that echoes DATA, and a
//! client that pings and exchanges DATA with it (feature `node`).
//!
//! This is the driver part of the sans-IO design: it owns the sockets, the buffers and
//! the clock, and feeds the [`Connection`](crate::Connection) state machine with bytes and
//! time. It is the only place in the crate where a clock is read (a monotonic
//! [`Instant`](std::time::Instant)). TLS 1.3 goes through [`TlsEndpoint`](crate::tls::TlsEndpoint)
//! used as a BIO pair (spec §10); plaintext is used only when explicitly chosen
//! ([`NodeSecurity::Plaintext`], [`ClientSecurity::Plaintext`]), never as a fallback
//! (spec §2 `[[layer.no-fallback]]`).
//!
//! One thread per connection, blocking reads with a timeout derived from
//! [`Connection::poll_timeout`](crate::Connection::poll_timeout): simple and
//! adequate for tests, tools and the conformance runner's peer mode. The high-throughput
//! transport is a separate layer.
//!
//! - [`serve`]: accept connections and run the reference node (echo, PING/PONG, flow
//!   control, timers, GOAWAY).
//! - [`connect`]: open a [`Client`] and [`ping`](Client::ping), [`send`](Client::send),
//!   [`recv`](Client::recv), [`close`](Client::close).
//! - [`RttStats`]: min / avg / max / stddev / p50 / p99 of round-trip times.
//!
//! ```
//! use std::net::TcpListener;
//! use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
//! use fleetwire::connection::SendOptions;
//! use fleetwire::Route;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
//! opts.max_conns = Some(1);
//! let node = std::thread::spawn(move || serve(listener, opts));
//!
//! let mut client = connect(addr, ClientOptions::new(ClientSecurity::Plaintext))?;
//! let rtt = client.ping()?;
//! assert!(rtt.as_secs() < 10);
//! client.send(Route::new(0, 3, 9), b"hello", SendOptions::default())?;
//! let echo = client.recv()?;
//! assert_eq!((&echo.payload[..], echo.route.service, echo.route.channel), (&b"hello"[..], 3, 9));
//! let closed = client.close()?;
//! assert_eq!(closed.code, fleetwire::ErrorCode::NO_ERROR);
//! node.join().unwrap()?;
//! # Ok(())
//! # }
//! ```

mod client;
mod driver;
mod error;
mod metrics;
mod server;
mod stats;
mod transport;

use std::fmt;
use std::sync::Arc;

pub use client::{connect, Client, ClientOptions, Message, WireStats};
pub use error::{CloseInfo, NodeError};
pub use metrics::{ConnSnapshot, NodeMetrics, NodeSnapshot};
pub use server::{serve, NodeOptions, Shutdown};
pub use stats::RttStats;

use crate::tls::{client_config, server_config, TlsError};

/// How a node protects its connections (spec §2, §10).
///
/// There is no default: plaintext must be chosen explicitly, and a TLS node never falls
/// back to plaintext (spec §2 `[[layer.no-fallback]]`).
///
/// ```
/// use fleetwire::node::NodeSecurity;
/// use fleetwire::tls::generate_test_pki;
/// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
/// let tls = NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
/// assert!(tls.is_tls());
/// assert!(!NodeSecurity::Plaintext.is_tls());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum NodeSecurity {
    /// Plaintext TCP, only when both operators configured it (spec §2).
    Plaintext,
    /// TLS 1.3 with ALPN `fleetwire/1` (spec §10).
    Tls {
        /// The rustls server configuration, normally from [`server_config`].
        config: Arc<rustls::ServerConfig>,
        /// Client certificates are required (mutual TLS): a peer that announces role
        /// node or proxy must then present a certificate naming its id (spec §7.4
        /// `[[src.auth]]`, §10.2 `[[tls.node-binding]]`).
        mutual: bool,
    },
}

impl NodeSecurity {
    /// TLS from PEM: the certificate chain, its key and, for mutual TLS, the CA
    /// certificates that issue client certificates.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] when a PEM cannot be used.
    ///
    /// ```
    /// use fleetwire::node::NodeSecurity;
    /// use fleetwire::tls::generate_test_pki;
    /// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    /// let ca = pki.ca_cert_pem.as_bytes();
    /// let mtls = NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), Some(ca));
    /// assert!(matches!(mtls, Ok(NodeSecurity::Tls { mutual: true, .. })));
    /// ```
    pub fn tls(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> Result<NodeSecurity, TlsError> {
        Ok(NodeSecurity::Tls {
            config: server_config(cert_chain_pem, key_pem, client_ca_pem)?,
            mutual: client_ca_pem.is_some(),
        })
    }

    /// Whether this is TLS.
    ///
    /// ```
    /// assert!(!fleetwire::node::NodeSecurity::Plaintext.is_tls());
    /// ```
    pub fn is_tls(&self) -> bool {
        matches!(self, NodeSecurity::Tls { .. })
    }
}

impl fmt::Debug for NodeSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSecurity::Plaintext => f.write_str("Plaintext"),
            NodeSecurity::Tls { mutual, .. } => write!(f, "Tls {{ mutual: {mutual} }}"),
        }
    }
}

/// How a client protects its connection (spec §2, §10).
///
/// ```
/// use fleetwire::node::ClientSecurity;
/// use fleetwire::tls::generate_test_pki;
/// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
/// let tls = ClientSecurity::tls(pki.ca_cert_pem.as_bytes(), "localhost", None).unwrap();
/// assert!(tls.is_tls());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientSecurity {
    /// Plaintext TCP, only when both operators configured it (spec §2).
    Plaintext,
    /// TLS 1.3 with ALPN `fleetwire/1` (spec §10).
    Tls {
        /// The rustls client configuration, normally from [`client_config`].
        config: Arc<rustls::ClientConfig>,
        /// The name the server's certificate must carry (spec §10.2
        /// `[[tls.server-auth]]`): a DNS name or an IP address.
        server_name: String,
    },
}

impl ClientSecurity {
    /// TLS from PEM: the CA certificates to trust, the server name to verify, and
    /// optionally our own `(certificate chain, key)` for mutual TLS.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] when a PEM cannot be used.
    ///
    /// ```
    /// use fleetwire::node::ClientSecurity;
    /// use fleetwire::tls::generate_test_pki;
    /// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    /// let me = pki.issue(&[], Some(7)).unwrap();
    /// let identity = Some((me.cert_pem.as_bytes(), me.key_pem.as_bytes()));
    /// assert!(ClientSecurity::tls(pki.ca_cert_pem.as_bytes(), "localhost", identity).is_ok());
    /// ```
    pub fn tls(
        ca_pem: &[u8],
        server_name: &str,
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<ClientSecurity, TlsError> {
        Ok(ClientSecurity::Tls {
            config: client_config(ca_pem, identity)?,
            server_name: server_name.to_owned(),
        })
    }

    /// Whether this is TLS.
    ///
    /// ```
    /// assert!(!fleetwire::node::ClientSecurity::Plaintext.is_tls());
    /// ```
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientSecurity::Tls { .. })
    }
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSecurity::Plaintext => f.write_str("Plaintext"),
            ClientSecurity::Tls { server_name, .. } => {
                write!(f, "Tls {{ server_name: {server_name:?} }}")
            }
        }
    }
}

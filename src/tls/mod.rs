//! TLS 1.3 for Fleetwire (spec §10), driven as a BIO pair: the engine owns sockets and
//! buffers, this module only transforms bytes.
//!
//! - [`server_config`] / [`client_config`]: rustls with the aws-lc-rs (or ring)
//!   provider, TLS 1.3 only, ALPN `fleetwire/1` only, AES-128-GCM preferred; mutual TLS
//!   optional.
//! - [`TlsEndpoint`]: one connection; ciphertext in with [`TlsEndpoint::feed_tls`],
//!   plaintext out with [`TlsEndpoint::read_plaintext`], and the reverse with
//!   [`TlsEndpoint::write_plaintext_vectored`] and [`TlsEndpoint::take_tls`].
//! - [`TlsEndpoint::peer_node_id`]: the node id bound to the peer's certificate (§10.2).
//! - `generate_test_pki` (feature `test-certs`): a CA and leaf certificates for tests
//!   and local use.
//!
//! ```
//! use fleetwire::tls::{client_config, generate_test_pki, server_config, TlsEndpoint};
//! # fn main() -> Result<(), fleetwire::tls::TlsError> {
//! let pki = generate_test_pki(&["localhost"], Some(1))?;
//! let mut server = TlsEndpoint::server(server_config(
//!     pki.cert_pem.as_bytes(),
//!     pki.key_pem.as_bytes(),
//!     None,
//! )?)?;
//! let mut client =
//!     TlsEndpoint::client(client_config(pki.ca_cert_pem.as_bytes(), None)?, "localhost")?;
//! let mut wire = Vec::new();
//! while client.is_handshaking() || server.is_handshaking() {
//!     client.take_tls(&mut wire);
//!     server.feed_tls(&wire)?;
//!     wire.clear();
//!     server.take_tls(&mut wire);
//!     client.feed_tls(&wire)?;
//!     wire.clear();
//! }
//! assert_eq!(client.peer_node_id(), Some(1)); // from the server's certificate
//! # Ok(())
//! # }
//! ```

mod config;
mod endpoint;
mod error;
mod node_id;
#[cfg(feature = "test-certs")]
mod pki;

#[cfg(all(test, feature = "test-certs"))]
mod tests;

pub use config::{client_config, server_config};
pub use endpoint::TlsEndpoint;
pub use error::{CertificateProblem, TlsError};
pub use node_id::identity_from_cert;
#[cfg(feature = "test-certs")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-certs")))]
pub use pki::{generate_test_pki, TestLeaf, TestPki};

/// The rustls configurations this module builds and [`TlsEndpoint`] runs, re-exported
/// so that callers need no direct rustls dependency of the same version (the whole
/// crate is [`fleetwire::rustls`](crate::rustls)).
///
/// ```
/// let pki = fleetwire::tls::generate_test_pki(&["localhost"], Some(1)).unwrap();
/// let config: std::sync::Arc<fleetwire::tls::ServerConfig> =
///     fleetwire::tls::server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None)
///         .unwrap();
/// # let _ = config;
/// ```
pub use rustls::{ClientConfig, ServerConfig};

/// The ALPN protocol id of Fleetwire version 1 (spec §10.1), the only one offered or
/// accepted.
///
/// ```
/// assert_eq!(fleetwire::tls::ALPN, b"fleetwire/1");
/// ```
pub const ALPN: &[u8] = b"fleetwire/1";

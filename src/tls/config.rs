//! Server and client configurations: aws-lc-rs (or ring), TLS 1.3 only, ALPN
//! `fleetwire/1` only.

use std::sync::Arc;

#[cfg(feature = "aws-lc-rs")]
pub(crate) use rustls::crypto::aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use rustls::crypto::ring as backend;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("feature `tls` needs a crypto provider: feature `aws-lc-rs` (default) or `ring`");

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, KeyLogFile, RootCertStore, ServerConfig};

use super::{TlsError, ALPN};

/// The crypto provider (aws-lc-rs, or ring with only feature `ring`) with TLS 1.3 suites
/// only, AES-128-GCM first: it is the fastest here (13 GB/s with aws-lc-rs) and rustls
/// would otherwise prefer AES-256-GCM.
fn provider() -> Arc<CryptoProvider> {
    use backend::cipher_suite as suite;
    let mut provider = backend::default_provider();
    provider.cipher_suites = vec![
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// spec §10.1: TLS 1.3 only; an earlier version is never negotiated.
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Builds a server configuration from a PEM certificate chain (leaf first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
///
/// With `client_auth` (PEM certificates of the CAs that issue client certificates) the
/// server requires and verifies a client certificate: mutual TLS, as node-to-node and
/// proxy links should use (spec §10.2). The server enforces its own cipher-suite order
/// (AES-128-GCM first) and offers only ALPN `fleetwire/1`.
///
/// The session secrets are appended to the file named by the `SSLKEYLOGFILE` environment
/// variable when it is set (the NSS key log format that curl and browsers write), so that
/// a capture can be decrypted (Wireshark's `tls.keylog_file`); unset, nothing is logged.
/// Never set it in production: whoever reads the file reads the traffic.
///
/// # Examples
///
/// ```
/// use fleetwire::tls::{generate_test_pki, server_config};
/// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
/// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
/// assert_eq!(config.alpn_protocols, [b"fleetwire/1".to_vec()]);
///
/// // Mutual TLS: client certificates issued by this CA are required.
/// let mtls = server_config(
///     pki.cert_pem.as_bytes(),
///     pki.key_pem.as_bytes(),
///     Some(pki.ca_cert_pem.as_bytes()),
/// );
/// assert!(mtls.is_ok());
/// ```
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_auth: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::from_rustls)?;
    let builder = match client_auth {
        Some(ca_pem) => {
            let roots = Arc::new(roots_from_pem(ca_pem)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|_| TlsError::Config("client CA certificates cannot verify clients"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs_from_pem(cert_chain_pem)?, key_from_pem(key_pem)?)
        .map_err(key_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.ignore_client_order = true;
    config.key_log = Arc::new(KeyLogFile::new());
    Ok(Arc::new(config))
}

/// Builds a client configuration that trusts the CA certificates in `ca_pem` and offers
/// only ALPN `fleetwire/1` over TLS 1.3.
///
/// `client_identity` is `(certificate chain PEM, private key PEM)` for mutual TLS.
///
/// The session secrets are appended to the file named by the `SSLKEYLOGFILE` environment
/// variable when it is set (the NSS key log format that curl and browsers write), so that
/// a capture can be decrypted (Wireshark's `tls.keylog_file`); unset, nothing is logged.
/// Never set it in production: whoever reads the file reads the traffic.
///
/// # Examples
///
/// ```
/// use fleetwire::tls::{client_config, generate_test_pki};
/// let server = generate_test_pki(&["localhost"], None).unwrap();
/// let node = generate_test_pki(&["node-7"], Some(7)).unwrap();
/// let config = client_config(
///     server.ca_cert_pem.as_bytes(),
///     Some((node.cert_pem.as_bytes(), node.key_pem.as_bytes())),
/// )
/// .unwrap();
/// assert!(config.client_auth_cert_resolver.has_certs());
/// ```
pub fn client_config(
    ca_pem: &[u8],
    client_identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::from_rustls)?
        .with_root_certificates(roots_from_pem(ca_pem)?);
    let mut config = match client_identity {
        Some((chain_pem, key_pem)) => builder
            .with_client_auth_cert(certs_from_pem(chain_pem)?, key_from_pem(key_pem)?)
            .map_err(key_error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.key_log = Arc::new(KeyLogFile::new());
    Ok(Arc::new(config))
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Config("certificate PEM could not be parsed"))?;
    if certs.is_empty() {
        return Err(TlsError::Config("no CERTIFICATE section found in the PEM"));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::Config("no PRIVATE KEY section found in the PEM"),
        _ => TlsError::Config("private key PEM could not be parsed"),
    })
}

pub(super) fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots
            .add(cert)
            .map_err(|_| TlsError::Config("a CA certificate cannot be used as a trust anchor"))?;
    }
    Ok(roots)
}

fn key_error(err: rustls::Error) -> TlsError {
    match err {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::Config("the private key does not match the certificate")
        }
        other => TlsError::from_rustls(other),
    }
}

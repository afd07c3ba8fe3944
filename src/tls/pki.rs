//! Throw-away certificates for tests and local use (`fleetwire gen-cert`).

use core::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use super::TlsError;
use crate::connection::{Identity, IdentityRole};

/// A test certificate authority and one leaf certificate it issued, all as PEM.
///
/// **For tests and local use only.** Keys are generated in memory (ECDSA P-256) and
/// returned in the clear, certificates are valid from 1975 to 4096, and nothing is
/// revocable. Production deployments use their own PKI.
///
/// # Examples
///
/// ```
/// use fleetwire::tls::generate_test_pki;
/// let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(7)).unwrap();
/// assert!(pki.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(pki.key_pem.contains("PRIVATE KEY"));
///
/// // More leaves from the same CA, e.g. one per node for mutual TLS.
/// let node = pki.issue(&["node-9"], Some(9)).unwrap();
/// assert!(node.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub struct TestPki {
    /// The CA certificate: the trust anchor for `client_config` or `server_config`'s
    /// `client_auth`.
    pub ca_cert_pem: String,
    /// The CA's private key (PKCS#8).
    pub ca_key_pem: String,
    /// The leaf certificate, signed by the CA.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its private key, as PEM; see [`TestPki::issue`].
///
/// **For tests and local use only.**
///
/// ```
/// use fleetwire::tls::generate_test_pki;
/// let leaf = generate_test_pki(&["localhost"], None).unwrap().issue(&["a.test"], None).unwrap();
/// assert!(leaf.key_pem.contains("PRIVATE KEY"));
/// ```
#[derive(Clone)]
pub struct TestLeaf {
    /// The certificate, signed by the test CA.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Generates a test CA and a leaf certificate signed by it.
///
/// The leaf's subject alternative names are `names` (an IP address becomes an IP SAN,
/// anything else a DNS name) plus, when `node_id` is given, the URI
/// `fleetwire:node:<id>` that binds the certificate to a node (spec §10.2). The leaf may
/// serve as a server and as a client certificate.
///
/// **For tests and local use only**: see [`TestPki`].
///
/// # Errors
///
/// [`TlsError::Config`] if a name is neither an IP address nor an ASCII DNS name, or if
/// key generation fails.
///
/// # Examples
///
/// ```
/// use fleetwire::tls::{generate_test_pki, server_config};
/// let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(3)).unwrap();
/// server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
/// assert!(generate_test_pki(&["not ascii: é"], None).is_err());
/// ```
pub fn generate_test_pki(names: &[&str], node_id: Option<u16>) -> Result<TestPki, TlsError> {
    let mut params = CertificateParams::default();
    let key = KeyPair::generate().map_err(|_| TlsError::Config("key generation failed"))?;
    // A name of its own per CA: verifiers find the issuer by name, so two test CAs with
    // one name would report a bad signature instead of an unknown issuer.
    let tag: String = key
        .public_key_raw()
        .iter()
        .rev()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Fleetwire test CA {tag} (not for production)"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key_pem = key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(params, key)
        .map_err(|_| TlsError::Config("the test CA could not be signed"))?;
    let mut pki = TestPki {
        ca_cert_pem: ca.pem(),
        ca_key_pem,
        cert_pem: String::new(),
        key_pem: String::new(),
        ca,
    };
    let leaf = pki.issue(names, node_id)?;
    pki.cert_pem = leaf.cert_pem;
    pki.key_pem = leaf.key_pem;
    Ok(pki)
}

impl TestPki {
    /// Issues another leaf certificate from this CA, with the same rules as
    /// [`generate_test_pki`].
    ///
    /// **For tests and local use only.**
    ///
    /// # Errors
    ///
    /// As [`generate_test_pki`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::generate_test_pki;
    /// let pki = generate_test_pki(&["proxy.test"], Some(1)).unwrap();
    /// let node = pki.issue(&[], Some(42)).unwrap(); // a client-only identity
    /// assert_ne!(node.cert_pem, pki.cert_pem);
    /// ```
    pub fn issue(&self, names: &[&str], node_id: Option<u16>) -> Result<TestLeaf, TlsError> {
        self.issue_with(names, node_id, |_| ())
    }

    /// Issues another leaf certificate from this CA bound to `identity`: the URI
    /// `fleetwire:node:<id>` for a node identity, `fleetwire:proxy:<id>` for a proxy
    /// identity (spec §10.2; only a proxy identity authenticates a proxy, §7.4), or no
    /// URI for `None`. Otherwise as [`generate_test_pki`].
    ///
    /// **For tests and local use only.**
    ///
    /// # Errors
    ///
    /// As [`generate_test_pki`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::connection::Identity;
    /// use fleetwire::tls::generate_test_pki;
    /// let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    /// let proxy = pki.issue_identity(&["proxy-3.test"], Some(Identity::proxy(3))).unwrap();
    /// assert!(proxy.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// ```
    pub fn issue_identity(
        &self,
        names: &[&str],
        identity: Option<Identity>,
    ) -> Result<TestLeaf, TlsError> {
        self.issue_identity_with(names, identity, |_| ())
    }

    /// Issues a leaf, letting `adjust` change its parameters (tests use it for validity).
    pub(super) fn issue_with(
        &self,
        names: &[&str],
        node_id: Option<u16>,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Result<TestLeaf, TlsError> {
        self.issue_identity_with(names, node_id.map(Identity::node), adjust)
    }

    /// Issues a leaf bound to `identity`, letting `adjust` change its parameters.
    pub(super) fn issue_identity_with(
        &self,
        names: &[&str],
        identity: Option<Identity>,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Result<TestLeaf, TlsError> {
        // spec §10.2: fleetwire:node:<id> or fleetwire:proxy:<id>, <id> in decimal
        let uri = identity.map(|id| format!("fleetwire:{}:{}", id.role.name(), id.node_id));
        let common_name = match (names.first(), identity) {
            (Some(name), _) => (*name).to_string(),
            (
                None,
                Some(Identity {
                    role: IdentityRole::Node,
                    node_id,
                }),
            ) => {
                format!("fleetwire node {node_id}")
            }
            (
                None,
                Some(Identity {
                    role: IdentityRole::Proxy,
                    node_id,
                }),
            ) => {
                format!("fleetwire proxy {node_id}")
            }
            (None, None) => "fleetwire test leaf".to_string(),
        };
        self.sign_leaf(names, uri.as_slice(), common_name, adjust)
    }

    /// Issues a leaf for `names` carrying the URI subject alternative names `uris` as
    /// they are, unchecked: several identities, or malformed ones, for tests of the
    /// certificate binding (spec §10.2). Otherwise as [`generate_test_pki`].
    ///
    /// **For tests and local use only.**
    ///
    /// # Errors
    ///
    /// As [`generate_test_pki`], and for a URI that is not ASCII.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::generate_test_pki;
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let two = pki.issue_uris(&[], &["fleetwire:node:1", "fleetwire:node:2"]).unwrap();
    /// assert!(two.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// ```
    pub fn issue_uris(&self, names: &[&str], uris: &[&str]) -> Result<TestLeaf, TlsError> {
        let common_name = names.first().unwrap_or(&"fleetwire test leaf").to_string();
        self.sign_leaf(names, uris, common_name, |_| ())
    }

    /// Signs a server-and-client leaf for `names` with the URI subject alternative names
    /// `uris`, letting `adjust` change its parameters.
    fn sign_leaf(
        &self,
        names: &[&str],
        uris: &[impl AsRef<str>],
        common_name: String,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Result<TestLeaf, TlsError> {
        let bad_name =
            |_| TlsError::Config("a name is neither an IP address nor an ASCII DNS name");
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(owned).map_err(bad_name)?;
        for uri in uris {
            let uri = uri.as_ref().to_owned().try_into().map_err(bad_name)?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        adjust(&mut params);
        let key = KeyPair::generate().map_err(|_| TlsError::Config("key generation failed"))?;
        let cert = params
            .signed_by(&key, &self.ca)
            .map_err(|_| TlsError::Config("the test certificate could not be signed"))?;
        Ok(TestLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl fmt::Debug for TestPki {
    /// Shows the certificates, never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TestLeaf {
    /// Shows the certificate, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestLeaf")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

//! Throw-away certificates the runner issues itself, in memory: client certificates
//! naming node and proxy identities (or several, or malformed ones) for the §10.2 cases,
//! and server certificates for the wrong name or from an unknown CA.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A test certificate authority held by the runner. **For tests only.**
///
/// ```
/// let ca = fleetwire_conformance::peer::RunnerPki::new().unwrap();
/// let (cert, key) = ca.issue(&["localhost"], &["fleetwire:node:7"]).unwrap();
/// assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
/// ```
pub struct RunnerPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): the trust anchor to give the testee.
    pub ca_cert_pem: String,
}

impl fmt::Debug for RunnerPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerPki").finish_non_exhaustive()
    }
}

impl RunnerPki {
    /// A fresh CA with a name of its own.
    ///
    /// # Errors
    ///
    /// When key generation or signing fails.
    ///
    /// ```
    /// assert!(fleetwire_conformance::peer::RunnerPki::new().is_ok());
    /// ```
    pub fn new() -> Result<RunnerPki, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let tag: String = key
            .public_key_raw()
            .iter()
            .rev()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Fleetwire conformance CA {tag} (not for production)"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, key).map_err(|e| e.to_string())?;
        Ok(RunnerPki {
            ca_cert_pem: ca.pem(),
            ca,
        })
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) with the URI subject
    /// alternative names `uris`, usable as server and client certificate; returns
    /// `(certificate PEM, key PEM)`.
    ///
    /// # Errors
    ///
    /// When a name is not valid or signing fails.
    ///
    /// ```
    /// let ca = fleetwire_conformance::peer::RunnerPki::new().unwrap();
    /// assert!(ca.issue(&[], &["fleetwire:node:1", "fleetwire:node:2"]).is_ok());
    /// ```
    pub fn issue(&self, names: &[&str], uris: &[&str]) -> Result<(String, String), String> {
        let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(owned).map_err(|e| e.to_string())?;
        for uri in uris {
            params.subject_alt_names.push(SanType::URI(
                (*uri).to_owned().try_into().map_err(|e| format!("{e}"))?,
            ));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names
                .first()
                .copied()
                .unwrap_or("fleetwire conformance leaf"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params
            .signed_by(&key, &self.ca)
            .map_err(|e| e.to_string())?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

//! Throw-away certificates the runner issues itself, in memory: client certificates
//! naming node and proxy identities (or several, or malformed ones) for the §10.2 cases,
//! and server certificates for the wrong name or from an unknown CA.

use std::fmt;

use fleetwire::tls::{generate_test_pki, TestPki};

/// A test certificate authority held by the runner. **For tests only.**
///
/// ```
/// let ca = fleetwire_conformance::peer::RunnerPki::new().unwrap();
/// let (cert, key) = ca.issue(&["localhost"], &["fleetwire:node:7"]).unwrap();
/// assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
/// ```
pub struct RunnerPki {
    pki: TestPki,
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
        let pki = generate_test_pki(&[], None).map_err(|e| e.to_string())?;
        Ok(RunnerPki {
            ca_cert_pem: pki.ca_cert_pem.clone(),
            pki,
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
        let leaf = self
            .pki
            .issue_uris(names, uris)
            .map_err(|e| e.to_string())?;
        Ok((leaf.cert_pem, leaf.key_pem))
    }
}

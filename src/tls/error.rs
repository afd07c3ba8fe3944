//! The TLS layer's error type: rustls errors sorted into what an operator can act on.

use core::fmt;

use rustls::{AlertDescription, CertificateError, PeerIncompatible};

/// Why a certificate was not accepted.
///
/// ```
/// use fleetwire::tls::CertificateProblem;
/// assert_eq!(CertificateProblem::Expired.to_string(), "it has expired");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CertificateProblem {
    /// The certificate's validity period has ended.
    Expired,
    /// The certificate's validity period has not started yet.
    NotYetValid,
    /// The certificate does not name the server the client connected to (spec §10.2).
    WrongName,
    /// The certificate does not chain to a trusted certificate authority.
    UnknownIssuer,
    /// The certificate has been revoked.
    Revoked,
    /// A signature in the chain does not verify, or uses an unsupported algorithm.
    BadSignature,
    /// The certificate may not be used for this purpose (extended key usage).
    WrongPurpose,
    /// No certificate was presented where one is required (mutual TLS).
    Missing,
    /// Any other reason (a malformed certificate, an unhandled critical extension, …).
    Other,
}

impl CertificateProblem {
    fn from_rustls(err: &CertificateError) -> Self {
        use CertificateError as C;
        match err {
            C::Expired | C::ExpiredContext { .. } => Self::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => Self::NotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => Self::WrongName,
            C::UnknownIssuer => Self::UnknownIssuer,
            C::Revoked => Self::Revoked,
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => Self::BadSignature,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => Self::WrongPurpose,
            _ => Self::Other,
        }
    }

    /// The problem a peer's alert reports about our certificate, if the alert is about one.
    fn from_alert(alert: AlertDescription) -> Option<Self> {
        use AlertDescription as A;
        Some(match alert {
            // RFC 8446 §6.2: certificate_expired covers "expired or not currently valid".
            A::CertificateExpired => Self::Expired,
            A::UnknownCA => Self::UnknownIssuer,
            A::CertificateRevoked => Self::Revoked,
            A::CertificateRequired => Self::Missing,
            A::UnsupportedCertificate => Self::WrongPurpose,
            A::BadCertificate | A::CertificateUnknown => Self::Other,
            _ => return None,
        })
    }
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "it has expired",
            Self::NotYetValid => "it is not valid yet (check the clocks)",
            Self::WrongName => "it is not valid for the name that was connected to",
            Self::UnknownIssuer => "it is not issued by a trusted certificate authority",
            Self::Revoked => "it has been revoked",
            Self::BadSignature => "its signature is invalid or uses an unsupported algorithm",
            Self::WrongPurpose => "it is not allowed for this purpose (extended key usage)",
            Self::Missing => "no certificate was presented, but one is required",
            Self::Other => "it is malformed or unacceptable",
        })
    }
}

/// An error of the TLS layer (spec §10).
///
/// Variants with `by_peer: true` report what the peer refused (it sent an alert); with
/// `by_peer: false`, what this endpoint refused. Once an endpoint has failed it keeps
/// returning the same error; ciphertext still pending (the alert for the peer) can be
/// taken with [`TlsEndpoint::take_tls`](super::TlsEndpoint::take_tls) before closing.
///
/// ```
/// use fleetwire::tls::TlsError;
/// let err = TlsError::PlaintextPreface;
/// assert!(err.to_string().contains("plaintext Fleetwire preface"));
/// ```
#[non_exhaustive]
#[derive(Clone, PartialEq, Debug)]
pub enum TlsError {
    /// A certificate was rejected during the handshake.
    CertificateInvalid {
        /// What is wrong with it.
        problem: CertificateProblem,
        /// `true`: the peer rejected our certificate; `false`: we rejected the peer's.
        by_peer: bool,
    },
    /// The endpoints did not agree on the ALPN protocol `fleetwire/1` (spec §10.1).
    NoAlpn {
        /// `true`: the peer refused; `false`: this endpoint refused.
        by_peer: bool,
    },
    /// A protocol version below TLS 1.3 was offered or negotiated (spec §10.1).
    VersionRefused {
        /// `true`: the peer refused; `false`: this endpoint refused.
        by_peer: bool,
    },
    /// The peer sent the plaintext Fleetwire preface (first byte `0x89`) where a TLS
    /// record was expected: the peer is configured without TLS (spec §2, §3).
    PlaintextPreface,
    /// The configuration could not be built (PEM, key, server name).
    Config(&'static str),
    /// Plaintext was written after [`send_close_notify`](super::TlsEndpoint::send_close_notify).
    Closed,
    /// Any other TLS failure, as rustls reports it.
    Other(rustls::Error),
}

impl TlsError {
    /// Sorts a rustls error into the cases an operator can act on.
    pub(crate) fn from_rustls(err: rustls::Error) -> Self {
        use rustls::Error as E;
        match err {
            E::InvalidCertificate(ref cert) => Self::CertificateInvalid {
                problem: CertificateProblem::from_rustls(cert),
                by_peer: false,
            },
            E::NoCertificatesPresented => Self::CertificateInvalid {
                problem: CertificateProblem::Missing,
                by_peer: false,
            },
            E::NoApplicationProtocol => Self::NoAlpn { by_peer: false },
            E::PeerIncompatible(ref why) if is_version_problem(why) => {
                Self::VersionRefused { by_peer: false }
            }
            E::AlertReceived(alert) => Self::from_alert(alert).unwrap_or(Self::Other(err)),
            other => Self::Other(other),
        }
    }

    fn from_alert(alert: AlertDescription) -> Option<Self> {
        match alert {
            AlertDescription::NoApplicationProtocol => Some(Self::NoAlpn { by_peer: true }),
            AlertDescription::ProtocolVersion => Some(Self::VersionRefused { by_peer: true }),
            _ => CertificateProblem::from_alert(alert).map(|problem| Self::CertificateInvalid {
                problem,
                by_peer: true,
            }),
        }
    }
}

fn is_version_problem(why: &PeerIncompatible) -> bool {
    use PeerIncompatible as P;
    matches!(
        why,
        P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::ServerTlsVersionIsDisabledByOurConfig
            | P::ServerDoesNotSupportTls12Or13
    )
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CertificateInvalid {
                problem,
                by_peer: false,
            } => {
                write!(f, "TLS: the peer's certificate was rejected: {problem}")
            }
            Self::CertificateInvalid {
                problem,
                by_peer: true,
            } => {
                write!(f, "TLS: the peer rejected our certificate: {problem}")
            }
            Self::NoAlpn { by_peer } => write!(
                f,
                "TLS: no application protocol agreed ({}): Fleetwire requires ALPN \
                 \"fleetwire/1\" on both sides (spec §10.1)",
                if *by_peer {
                    "refused by the peer"
                } else {
                    "refused here"
                }
            ),
            Self::VersionRefused { by_peer } => write!(
                f,
                "TLS: protocol version refused ({}): Fleetwire requires TLS 1.3 (spec §10.1)",
                if *by_peer { "by the peer" } else { "here" }
            ),
            Self::PlaintextPreface => f.write_str(
                "TLS expected, but the peer sent the plaintext Fleetwire preface (first byte \
                 0x89): the peer is configured without TLS (spec §3)",
            ),
            Self::Config(what) => write!(f, "TLS configuration: {what}"),
            Self::Closed => {
                f.write_str("TLS: close_notify already sent; nothing more may be written")
            }
            Self::Other(err) => write!(f, "TLS: {err}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Other(err) => Some(err),
            _ => None,
        }
    }
}

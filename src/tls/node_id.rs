//! The identity a certificate names: a subject alternative name URI `fleetwire:node:<id>`
//! or `fleetwire:proxy:<id>` (spec §10.2).
//!
//! A minimal DER walk over the path Certificate → tbsCertificate → extensions →
//! subjectAltName → uniformResourceIdentifier, instead of an X.509 parser dependency.
//! Only that path is read, every length is bounded by its parent, and anything
//! unexpected yields `None`. The certificate has already been verified by rustls
//! (webpki) when this runs, so it is well-formed DER; a plain byte search for the
//! URI would also match the text in a subject name or another extension, so it is not used.

use crate::connection::{Identity, IdentityRole};

/// The URI prefixes of spec §10.2.
const NODE_URI_PREFIX: &[u8] = b"fleetwire:node:";
const PROXY_URI_PREFIX: &[u8] = b"fleetwire:proxy:";

// DER tags (single-byte form) used on the path.
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// tbsCertificate `extensions [3] EXPLICIT`.
const EXTENSIONS: u8 = 0xA3;
/// GeneralName `uniformResourceIdentifier [6] IMPLICIT IA5String`.
const URI_NAME: u8 = 0x86;
/// id-ce-subjectAltName, 2.5.29.17.
const SAN_OID: &[u8] = &[0x55, 0x1D, 0x11];

/// Splits one TLV off the front of `input`; `None` if it is truncated or not DER.
fn next_tlv<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None; // high-tag-number form: never on this path
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None; // indefinite length (BER) or absurd
        }
        let (digits, after) = rest.split_at(count);
        rest = after;
        digits
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    *input = after;
    Some((tag, content))
}

/// The contents of the TLV at the front of `input` if its tag is `tag`.
fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    match next_tlv(input)? {
        (t, content) if t == tag => Some(content),
        _ => None,
    }
}

/// The subjectAltName extension value (GeneralNames) of a DER certificate.
fn subject_alt_names(cert_der: &[u8]) -> Option<&[u8]> {
    let mut input = cert_der;
    let mut cert = expect(&mut input, SEQUENCE)?;
    let mut tbs = expect(&mut cert, SEQUENCE)?;
    let mut extensions = loop {
        match next_tlv(&mut tbs)? {
            (EXTENSIONS, explicit) => break explicit,
            _ => continue,
        }
    };
    let mut list = expect(&mut extensions, SEQUENCE)?;
    while !list.is_empty() {
        let mut ext = expect(&mut list, SEQUENCE)?;
        if expect(&mut ext, OID)? != SAN_OID {
            continue;
        }
        let mut value = match next_tlv(&mut ext)? {
            (BOOLEAN, _critical) => expect(&mut ext, OCTET_STRING)?,
            (OCTET_STRING, value) => value,
            _ => return None,
        };
        return expect(&mut value, SEQUENCE);
    }
    None
}

/// Parses `fleetwire:node:<id>`: canonical decimal (no sign, no leading zero), `0..=65535`.
#[cfg(test)]
fn parse_node_uri(uri: &[u8]) -> Option<u16> {
    parse_id(uri.strip_prefix(NODE_URI_PREFIX)?)
}

/// Whether `uri` is a Fleetwire identity URI, well-formed or not.
fn is_identity_uri(uri: &[u8]) -> bool {
    uri.starts_with(NODE_URI_PREFIX) || uri.starts_with(PROXY_URI_PREFIX)
}

/// Parses `fleetwire:node:<id>` or `fleetwire:proxy:<id>`.
fn parse_identity_uri(uri: &[u8]) -> Option<Identity> {
    let (role, digits) = match uri.strip_prefix(NODE_URI_PREFIX) {
        Some(digits) => (IdentityRole::Node, digits),
        None => (IdentityRole::Proxy, uri.strip_prefix(PROXY_URI_PREFIX)?),
    };
    let node_id = parse_id(digits)?;
    Some(Identity { role, node_id })
}

/// Canonical decimal (no sign, no leading zero), `0..=65535`.
fn parse_id(digits: &[u8]) -> Option<u16> {
    let canonical = match digits {
        [] => false,
        [b'0', _, ..] => false,
        _ => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

/// The identity named by the certificate's one `fleetwire:node:<id>` or
/// `fleetwire:proxy:<id>` URI SAN (spec §10.2).
///
/// `None` if there is no such URI, if there is more than one (even naming the same
/// identity twice), or if it is malformed: such a certificate authenticates no node id.
///
/// For drivers that run their own TLS (a `tokio_rustls` stream): pass the result as
/// [`Config::authenticated`](crate::connection::Config::authenticated).
///
/// ```
/// use fleetwire::tls::identity_from_cert;
/// assert_eq!(identity_from_cert(b"not a certificate"), None);
/// ```
pub fn identity_from_cert(cert_der: &[u8]) -> Option<Identity> {
    let mut names = subject_alt_names(cert_der)?;
    let mut found = None;
    while !names.is_empty() {
        let (tag, value) = next_tlv(&mut names)?;
        if tag != URI_NAME || !is_identity_uri(value) {
            continue;
        }
        if found.is_some() {
            return None; // more than one: no identity
        }
        found = Some(parse_identity_uri(value)?);
    }
    found
}

/// The node id named by the certificate's identity URI, node or proxy
/// ([`identity_from_cert`]).
#[cfg(test)]
pub(super) fn node_id_from_cert(cert_der: &[u8]) -> Option<u16> {
    identity_from_cert(cert_der).map(|id| id.node_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_node_uris() {
        assert_eq!(parse_node_uri(b"fleetwire:node:0"), Some(0));
        assert_eq!(parse_node_uri(b"fleetwire:node:7"), Some(7));
        assert_eq!(parse_node_uri(b"fleetwire:node:65535"), Some(65535));
    }

    #[test]
    fn rejects_malformed_node_uris() {
        for uri in [
            &b"fleetwire:node:"[..],
            b"fleetwire:node:65536",
            b"fleetwire:node:007",
            b"fleetwire:node:+7",
            b"fleetwire:node:7x",
            b"fleetwire:node:999999",
            b"fleetwire:nodes:7",
            b"FLEETWIRE:node:7",
        ] {
            assert_eq!(
                parse_node_uri(uri),
                None,
                "{}",
                String::from_utf8_lossy(uri)
            );
        }
    }

    #[test]
    fn parses_node_and_proxy_identity_uris() {
        assert_eq!(
            parse_identity_uri(b"fleetwire:node:12"),
            Some(Identity::node(12))
        );
        assert_eq!(
            parse_identity_uri(b"fleetwire:proxy:12"),
            Some(Identity::proxy(12))
        );
        assert_eq!(
            parse_identity_uri(b"fleetwire:proxy:65535"),
            Some(Identity::proxy(65535))
        );
        for uri in [
            &b"fleetwire:proxy:"[..],
            b"fleetwire:proxy:012",
            b"fleetwire:proxy:65536",
            b"fleetwire:proxies:1",
            b"fleetwire:client:1",
            b"FLEETWIRE:proxy:1",
        ] {
            assert_eq!(
                parse_identity_uri(uri),
                None,
                "{}",
                String::from_utf8_lossy(uri)
            );
        }
        assert!(is_identity_uri(b"fleetwire:proxy:x"));
        assert!(!is_identity_uri(b"fleetwire:client:1"));
    }

    #[test]
    fn reads_long_form_lengths_and_rejects_truncation() {
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0xAA, 256));
        let mut input = &long[..];
        let (tag, content) = next_tlv(&mut input).unwrap();
        assert_eq!((tag, content.len(), input.len()), (0x04, 256, 0));

        let mut truncated = &long[..200];
        assert_eq!(next_tlv(&mut truncated), None);
        let mut indefinite = &[0x30, 0x80, 0x00, 0x00][..];
        assert_eq!(next_tlv(&mut indefinite), None);
    }

    #[test]
    fn survives_every_truncation_of_garbage() {
        let junk: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        for end in 0..junk.len() {
            assert_eq!(node_id_from_cert(&junk[..end]), None);
        }
    }
}

//! In-memory client/server tests: two endpoints shuttling bytes, no sockets.

use std::io::IoSlice;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};

use super::config::roots_from_pem;
use super::node_id::{identity_from_cert, node_id_from_cert};
use super::*;
use crate::connection::Identity;

const PREFACE: &[u8] = b"\x89FWIRE\r\n";

/// One PKI for all tests (key generation is the slow part); configs are built per test
/// so that no session is resumed from another test.
struct Fixture {
    pki: TestPki,
    /// A client identity for mutual TLS, node 7, from the same CA.
    node7: TestLeaf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
        let node7 = pki.issue(&[], Some(7)).unwrap();
        Fixture { pki, node7 }
    })
}

fn server_cfg(mtls: bool) -> Arc<ServerConfig> {
    let f = fixture();
    let ca = mtls.then_some(f.pki.ca_cert_pem.as_bytes());
    server_config(f.pki.cert_pem.as_bytes(), f.pki.key_pem.as_bytes(), ca).unwrap()
}

fn client_cfg(identity: Option<&TestLeaf>) -> Arc<ClientConfig> {
    let id = identity.map(|leaf| (leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()));
    client_config(fixture().pki.ca_cert_pem.as_bytes(), id).unwrap()
}

/// A rustls client config outside our builder: for peers that break the rules.
fn raw_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let provider = Arc::new(super::config::backend::default_provider());
    let roots = roots_from_pem(fixture().pki.ca_cert_pem.as_bytes()).unwrap();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One endpoint, what it received, and its first error.
struct Side {
    ep: TlsEndpoint,
    got: Vec<u8>,
    err: Option<TlsError>,
}

impl Side {
    fn new(ep: TlsEndpoint) -> Self {
        Side {
            ep,
            got: Vec::new(),
            err: None,
        }
    }
}

/// Feeds `data` completely, reading plaintext whenever the endpoint asks for it.
fn feed(ep: &mut TlsEndpoint, mut data: &[u8], got: &mut Vec<u8>) -> Result<(), TlsError> {
    while !data.is_empty() {
        let consumed = ep.feed_tls(data)?;
        data = &data[consumed..];
        ep.read_plaintext(got)?;
    }
    Ok(())
}

/// Moves all pending ciphertext from one side to the other in `chunk`-sized pieces.
fn pump(from: &mut Side, to: &mut Side, chunk: usize, wire: &mut Vec<u8>) -> usize {
    wire.clear();
    let moved = from.ep.take_tls(wire);
    if to.err.is_none() {
        for piece in wire.chunks(chunk) {
            if let Err(err) = feed(&mut to.ep, piece, &mut to.got) {
                to.err = Some(err);
                break;
            }
        }
    }
    moved
}

/// Shuttles bytes until neither side has anything to send.
fn drive(client: &mut Side, server: &mut Side, chunk: usize) {
    let mut wire = Vec::new();
    for _ in 0..100 {
        let moved = pump(client, server, chunk, &mut wire) + pump(server, client, chunk, &mut wire);
        if moved == 0 {
            return;
        }
    }
    panic!("the endpoints never went quiet");
}

fn pair(client: Arc<ClientConfig>, name: &str, server: Arc<ServerConfig>) -> (Side, Side) {
    let client = Side::new(TlsEndpoint::client(client, name).unwrap());
    (client, Side::new(TlsEndpoint::server(server).unwrap()))
}

fn established(chunk: usize) -> (Side, Side) {
    let (mut c, mut s) = pair(client_cfg(None), "localhost", server_cfg(false));
    drive(&mut c, &mut s, chunk);
    assert!(
        c.err.is_none() && s.err.is_none(),
        "{:?} {:?}",
        c.err,
        s.err
    );
    (c, s)
}

/// The content types and lengths of the TLS records in `wire`.
fn records(wire: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        out.push((rest[0], len));
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "trailing partial record");
    out
}

/// 1000 small, distinct packets: an 8-byte fake header plus a varying payload.
fn small_packets() -> Vec<Vec<u8>> {
    (0..1000u32)
        .map(|i| {
            let mut packet = i.to_be_bytes().repeat(2);
            packet.extend(std::iter::repeat_n(i as u8, (i % 23) as usize));
            packet
        })
        .collect()
}

#[test]
fn handshake_agrees_tls13_alpn_and_aes128() {
    let (c, s) = established(usize::MAX);
    for side in [&c, &s] {
        assert!(!side.ep.is_handshaking());
        assert_eq!(side.ep.alpn(), Some(ALPN));
        let conn = side.ep.connection();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let suite = conn.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }
    assert_eq!(
        c.ep.peer_node_id(),
        Some(1),
        "the server certificate names node 1"
    );
    assert_eq!(
        s.ep.peer_node_id(),
        None,
        "no client certificate without mTLS"
    );
}

#[test]
fn application_data_flows_both_ways() {
    let (mut c, mut s) = established(usize::MAX);
    c.ep.write_plaintext(b"ping from client").unwrap();
    s.ep.write_plaintext(b"pong from server").unwrap();
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!(s.got, b"ping from client");
    assert_eq!(c.got, b"pong from server");
}

#[test]
fn plaintext_written_during_handshake_is_sent_after_it() {
    let (mut c, mut s) = pair(client_cfg(None), "localhost", server_cfg(false));
    c.ep.write_plaintext(PREFACE).unwrap();
    s.ep.write_plaintext(PREFACE).unwrap();
    let mut hello = Vec::new();
    c.ep.take_tls(&mut hello);
    assert_eq!(
        records(&hello),
        [(0x16, hello.len() - 5)],
        "only the ClientHello"
    );
    feed(&mut s.ep, &hello, &mut s.got).unwrap();
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!((&c.got[..], &s.got[..]), (PREFACE, PREFACE));
}

#[test]
fn coalesces_1000_small_vectored_writes_into_few_records() {
    let (mut c, mut s) = established(usize::MAX);
    let packets = small_packets();
    let total: usize = packets.iter().map(Vec::len).sum();
    let slices: Vec<IoSlice<'_>> = packets.iter().map(|p| IoSlice::new(p)).collect();
    c.ep.write_plaintext_vectored(&slices).unwrap();
    let mut wire = Vec::new();
    c.ep.take_tls(&mut wire);
    let data_records = records(&wire)
        .iter()
        .filter(|(kind, _)| *kind == 0x17)
        .count();
    // 16 KiB of plaintext per record, plus TLS 1.3's content-type byte and 16-byte tag.
    assert_eq!(data_records, total.div_ceil(16 * 1024), "{total} bytes");
    feed(&mut s.ep, &wire, &mut s.got).unwrap();
    assert_eq!(s.got, packets.concat());
}

#[test]
fn delivers_1000_small_writes_split_at_any_chunk_size() {
    let packets = small_packets();
    for chunk in [
        1,
        2,
        3,
        5,
        7,
        13,
        64,
        1000,
        4096,
        16 * 1024 + 22,
        usize::MAX,
    ] {
        let (mut c, mut s) = established(chunk);
        for (i, packet) in packets.iter().enumerate() {
            if i % 2 == 0 {
                c.ep.write_plaintext(packet).unwrap(); // one record each
            } else {
                c.ep.write_plaintext_vectored(&[
                    IoSlice::new(&packet[..4]),
                    IoSlice::new(&packet[4..]),
                ])
                .unwrap();
            }
        }
        drive(&mut c, &mut s, chunk);
        assert!(s.err.is_none(), "chunk {chunk}: {:?}", s.err);
        assert_eq!(s.got, packets.concat(), "chunk {chunk}");
    }
}

#[test]
fn handshakes_and_transfers_one_byte_at_a_time() {
    let (mut c, mut s) = established(1);
    s.ep.write_plaintext(&[0x5A; 300]).unwrap();
    drive(&mut c, &mut s, 1);
    assert_eq!(c.got, [0x5A; 300]);
}

#[test]
fn transfers_a_mebibyte_beyond_the_plaintext_buffer() {
    let (mut c, mut s) = established(usize::MAX);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    c.ep.write_plaintext(&data).unwrap();
    let mut wire = Vec::new();
    c.ep.take_tls(&mut wire);
    // All of it at once: feed_tls stops while 16 KiB of plaintext waits to be read.
    let first = s.ep.feed_tls(&wire).unwrap();
    assert!(first < wire.len(), "consumed {first} of {}", wire.len());
    feed(&mut s.ep, &wire[first..], &mut s.got).unwrap();
    s.ep.read_plaintext(&mut s.got).unwrap();
    assert_eq!(s.got, data);
}

#[test]
fn mutual_tls_binds_node_ids_both_ways() {
    let f = fixture();
    let (mut c, mut s) = pair(client_cfg(Some(&f.node7)), "localhost", server_cfg(true));
    drive(&mut c, &mut s, usize::MAX);
    assert!(
        c.err.is_none() && s.err.is_none(),
        "{:?} {:?}",
        c.err,
        s.err
    );
    assert_eq!(s.ep.peer_node_id(), Some(7));
    assert_eq!(c.ep.peer_node_id(), Some(1));
}

#[test]
fn mutual_tls_refuses_a_client_without_certificate() {
    let (mut c, mut s) = pair(client_cfg(None), "localhost", server_cfg(true));
    drive(&mut c, &mut s, usize::MAX);
    let missing = CertificateProblem::Missing;
    assert_eq!(
        s.err,
        Some(TlsError::CertificateInvalid {
            problem: missing,
            by_peer: false
        })
    );
    assert_eq!(
        c.err,
        Some(TlsError::CertificateInvalid {
            problem: missing,
            by_peer: true
        })
    );
}

#[test]
fn mutual_tls_refuses_a_client_from_another_ca() {
    let stranger = generate_test_pki(&[], Some(7)).unwrap();
    let (mut c, mut s) = pair(
        client_cfg(Some(&TestLeaf {
            cert_pem: stranger.cert_pem,
            key_pem: stranger.key_pem,
        })),
        "localhost",
        server_cfg(true),
    );
    drive(&mut c, &mut s, usize::MAX);
    let unknown = CertificateProblem::UnknownIssuer;
    assert_eq!(
        s.err,
        Some(TlsError::CertificateInvalid {
            problem: unknown,
            by_peer: false
        })
    );
    assert_eq!(
        c.err,
        Some(TlsError::CertificateInvalid {
            problem: unknown,
            by_peer: true
        })
    );
}

#[test]
fn refuses_a_client_offering_only_h2() {
    let (mut c, mut s) = pair(
        raw_client(&[&rustls::version::TLS13], &[b"h2"]),
        "localhost",
        server_cfg(false),
    );
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!(s.err, Some(TlsError::NoAlpn { by_peer: false }));
    assert_eq!(c.err, Some(TlsError::NoAlpn { by_peer: true }));
}

#[test]
fn refuses_a_client_offering_no_alpn() {
    let (mut c, mut s) = pair(
        raw_client(&[&rustls::version::TLS13], &[]),
        "localhost",
        server_cfg(false),
    );
    c.ep.write_plaintext(PREFACE).unwrap();
    drive(&mut c, &mut s, usize::MAX);
    // The client notices first (rustls completed the handshake without ALPN) and
    // sends nothing of what it held; the server then refuses as well.
    assert_eq!(c.err, Some(TlsError::NoAlpn { by_peer: false }));
    assert!(s.got.is_empty());
}

#[test]
fn client_refuses_a_server_that_selects_no_alpn() {
    let f = fixture();
    let provider = Arc::new(super::config::backend::default_provider());
    let certs = CertificateDer::pem_slice_iter(f.pki.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(f.pki.key_pem.as_bytes()).unwrap();
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let (mut c, mut s) = pair(client_cfg(None), "localhost", Arc::new(server));
    c.ep.write_plaintext(PREFACE).unwrap();
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!(c.err, Some(TlsError::NoAlpn { by_peer: false }));
    assert!(s.got.is_empty(), "held plaintext must not reach the server");
    assert!(s.ep.peer_closed(), "the server was told with close_notify");
}

#[test]
fn refuses_a_tls12_only_client() {
    let (mut c, mut s) = pair(
        raw_client(&[&rustls::version::TLS12], &[ALPN]),
        "localhost",
        server_cfg(false),
    );
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!(s.err, Some(TlsError::VersionRefused { by_peer: false }));
    assert_eq!(c.err, Some(TlsError::VersionRefused { by_peer: true }));
}

#[test]
fn refuses_an_expired_certificate() {
    let f = fixture();
    let expired = f
        .pki
        .issue_with(&["localhost"], None, |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
        .unwrap();
    let server = server_config(
        expired.cert_pem.as_bytes(),
        expired.key_pem.as_bytes(),
        None,
    )
    .unwrap();
    let (mut c, mut s) = pair(client_cfg(None), "localhost", server);
    drive(&mut c, &mut s, usize::MAX);
    let problem = CertificateProblem::Expired;
    assert_eq!(
        c.err,
        Some(TlsError::CertificateInvalid {
            problem,
            by_peer: false
        })
    );
    assert_eq!(
        s.err,
        Some(TlsError::CertificateInvalid {
            problem,
            by_peer: true
        })
    );
    assert!(c.err.unwrap().to_string().contains("expired"));
}

#[test]
fn refuses_a_certificate_for_another_name() {
    let (mut c, mut s) = pair(client_cfg(None), "other.test", server_cfg(false));
    drive(&mut c, &mut s, usize::MAX);
    let problem = CertificateProblem::WrongName;
    assert_eq!(
        c.err,
        Some(TlsError::CertificateInvalid {
            problem,
            by_peer: false
        })
    );
    assert!(matches!(
        s.err,
        Some(TlsError::CertificateInvalid { by_peer: true, .. })
    ));
}

#[test]
fn accepts_an_ip_address_san() {
    let (mut c, mut s) = pair(client_cfg(None), "127.0.0.1", server_cfg(false));
    drive(&mut c, &mut s, usize::MAX);
    assert!(c.err.is_none() && !c.ep.is_handshaking(), "{:?}", c.err);
}

#[test]
fn refuses_a_certificate_from_an_unknown_issuer() {
    let other = generate_test_pki(&["localhost"], None).unwrap();
    let client = client_config(other.ca_cert_pem.as_bytes(), None).unwrap();
    let (mut c, mut s) = pair(client, "localhost", server_cfg(false));
    drive(&mut c, &mut s, usize::MAX);
    let problem = CertificateProblem::UnknownIssuer;
    assert_eq!(
        c.err,
        Some(TlsError::CertificateInvalid {
            problem,
            by_peer: false
        })
    );
}

#[test]
fn reports_plaintext_preface_sent_to_a_tls_server() {
    let mut server = TlsEndpoint::server(server_cfg(false)).unwrap();
    let err = server.feed_tls(PREFACE).unwrap_err();
    assert_eq!(err, TlsError::PlaintextPreface);
    assert!(err.to_string().contains("configured without TLS"), "{err}");
    assert_eq!(
        server.feed_tls(b"more").unwrap_err(),
        err,
        "the failure sticks"
    );
    assert_eq!(server.write_plaintext(b"x").unwrap_err(), err);
}

#[test]
fn reports_plaintext_preface_answered_to_a_tls_client() {
    let mut client = TlsEndpoint::client(client_cfg(None), "localhost").unwrap();
    client.take_tls(&mut Vec::new());
    assert_eq!(
        client.feed_tls(&PREFACE[..1]),
        Err(TlsError::PlaintextPreface)
    );
}

#[test]
fn close_notify_reaches_the_peer() {
    let (mut c, mut s) = established(usize::MAX);
    c.ep.write_plaintext(b"last words").unwrap();
    c.ep.send_close_notify();
    assert_eq!(c.ep.write_plaintext(b"more"), Err(TlsError::Closed));
    drive(&mut c, &mut s, usize::MAX);
    assert_eq!(s.got, b"last words");
    assert!(s.ep.peer_closed());
    let junk = b"\x17\x03\x03junk";
    assert_eq!(
        s.ep.feed_tls(junk).unwrap(),
        junk.len(),
        "ignored after close_notify"
    );
}

#[test]
fn corrupt_record_fails_the_connection() {
    let (mut c, mut s) = established(usize::MAX);
    c.ep.write_plaintext(b"secret").unwrap();
    let mut wire = Vec::new();
    c.ep.take_tls(&mut wire);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let err = s.ep.feed_tls(&wire).unwrap_err();
    assert_eq!(err, TlsError::Other(rustls::Error::DecryptError));
    assert!(s.ep.pending_tls(), "an alert for the peer");
}

#[test]
fn node_id_is_read_from_the_uri_san_only() {
    let f = fixture();
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(node_id_from_cert(&der(&f.pki.cert_pem)), Some(1));
    assert_eq!(node_id_from_cert(&der(&f.node7.cert_pem)), Some(7));
    assert_eq!(node_id_from_cert(&der(&f.pki.ca_cert_pem)), None);
    // The same text in the subject name does not count: only the URI SAN binds.
    let named = f
        .pki
        .issue_with(&[], None, |p| {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, "fleetwire:node:3");
        })
        .unwrap();
    let named = der(&named.cert_pem);
    assert!(named.windows(16).any(|w| w == b"fleetwire:node:3"));
    assert_eq!(node_id_from_cert(&named), None);
}

#[test]
fn node_id_is_none_when_certificate_names_two_nodes() {
    let two = fixture()
        .pki
        .issue_with(&[], Some(4), |p| {
            p.subject_alt_names
                .push(rcgen::SanType::URI("fleetwire:node:5".try_into().unwrap()));
        })
        .unwrap();
    let der = CertificateDer::from_pem_slice(two.cert_pem.as_bytes()).unwrap();
    assert_eq!(node_id_from_cert(&der), None);
}

#[test]
fn identity_carries_the_role_of_the_uri() {
    let f = fixture();
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(
        identity_from_cert(&der(&f.node7.cert_pem)),
        Some(Identity::node(7))
    );
    let proxy = f.pki.issue_identity(&[], Some(Identity::proxy(9))).unwrap();
    assert_eq!(
        identity_from_cert(&der(&proxy.cert_pem)),
        Some(Identity::proxy(9))
    );
    assert_eq!(node_id_from_cert(&der(&proxy.cert_pem)), Some(9));
    let none = f.pki.issue_identity(&["a.test"], None).unwrap();
    assert_eq!(identity_from_cert(&der(&none.cert_pem)), None);
}

#[test]
fn identity_is_none_with_more_than_one_identity_uri() {
    let f = fixture();
    let der = |leaf: &TestLeaf| CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    // spec §10.2: more than one such URI authenticates no node id, even the same one
    for extra in ["fleetwire:proxy:4", "fleetwire:node:4", "fleetwire:node:5"] {
        let two = f
            .pki
            .issue_with(&[], Some(4), |p| {
                p.subject_alt_names
                    .push(rcgen::SanType::URI(extra.try_into().unwrap()));
            })
            .unwrap();
        assert_eq!(identity_from_cert(&der(&two)), None, "{extra}");
    }
    // a malformed identity URI is not an identity either
    let bad = f
        .pki
        .issue_with(&[], None, |p| {
            p.subject_alt_names.push(rcgen::SanType::URI(
                "fleetwire:proxy:07".try_into().unwrap(),
            ));
        })
        .unwrap();
    assert_eq!(identity_from_cert(&der(&bad)), None);
    // other URIs do not count
    let other = f
        .pki
        .issue_with(&[], Some(4), |p| {
            p.subject_alt_names.push(rcgen::SanType::URI(
                "https://example.test/".try_into().unwrap(),
            ));
        })
        .unwrap();
    assert_eq!(identity_from_cert(&der(&other)), Some(Identity::node(4)));
}

#[test]
fn mutual_tls_reports_a_proxy_identity() {
    let f = fixture();
    let proxy = f
        .pki
        .issue_identity(&[], Some(Identity::proxy(30)))
        .unwrap();
    let (mut c, mut s) = pair(client_cfg(Some(&proxy)), "localhost", server_cfg(true));
    drive(&mut c, &mut s, usize::MAX);
    assert!(
        c.err.is_none() && s.err.is_none(),
        "{:?} {:?}",
        c.err,
        s.err
    );
    assert_eq!(s.ep.peer_identity(), Some(Identity::proxy(30)));
    assert_eq!(s.ep.peer_node_id(), Some(30));
    assert_eq!(c.ep.peer_identity(), Some(Identity::node(1)));
}

#[test]
fn config_errors_say_what_is_wrong() {
    let f = fixture();
    let other = f.pki.issue(&["localhost"], None).unwrap();
    let mismatch = server_config(f.pki.cert_pem.as_bytes(), other.key_pem.as_bytes(), None);
    assert_eq!(
        mismatch.unwrap_err(),
        TlsError::Config("the private key does not match the certificate")
    );
    let no_cert = server_config(b"garbage", f.pki.key_pem.as_bytes(), None).unwrap_err();
    assert!(no_cert.to_string().contains("no CERTIFICATE"), "{no_cert}");
    let no_key = client_config(
        f.pki.ca_cert_pem.as_bytes(),
        Some((f.pki.cert_pem.as_bytes(), b"")),
    );
    assert!(no_key.unwrap_err().to_string().contains("no PRIVATE KEY"));
}

#[test]
fn error_messages_name_the_cause() {
    let cases = [
        (TlsError::NoAlpn { by_peer: true }, "fleetwire/1"),
        (TlsError::VersionRefused { by_peer: false }, "TLS 1.3"),
        (
            TlsError::CertificateInvalid {
                problem: CertificateProblem::WrongName,
                by_peer: false,
            },
            "not valid for the name",
        ),
        (
            TlsError::CertificateInvalid {
                problem: CertificateProblem::UnknownIssuer,
                by_peer: true,
            },
            "peer rejected our certificate",
        ),
        (TlsError::PlaintextPreface, "0x89"),
    ];
    for (err, phrase) in cases {
        assert!(err.to_string().contains(phrase), "{err}");
    }
}

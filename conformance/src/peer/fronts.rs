//! The wrappers of the TLS live mutants: a front before the reference node (server
//! role) or the reference client (client role), or a TLS configuration of the reference
//! client, that changes one thing of the TLS setup the spec prescribes (§2, §3, §6.5,
//! §10). The reference itself is unchanged: it runs behind the front, or with the
//! configuration handed to it.

use std::io::{self, Read, Write};
use std::net::{Shutdown as Net, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::connection::Config;
use fleetwire::node::ClientSecurity;
use fleetwire::rustls;
use fleetwire::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use fleetwire::rustls::pki_types::pem::PemObject;
use fleetwire::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use fleetwire::PREFACE;

use super::builtin::echo_once;

/// TLS 1.3 only, as the spec requires (§10.1).
pub(super) const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
/// TLS 1.3 and 1.2: the version bug.
pub(super) const TLS13_12: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

/// A server configuration from PEM with `versions` and the ALPN ids `alpn`; with
/// `client_ca`, client certificates from that CA are verified when presented.
pub(super) fn server_config(
    cert_pem: &str,
    key_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: Vec<Vec<u8>>,
    client_ca: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(pem)?),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// How a mutated client checks the server's certificate (§10.2 `[[tls.server-auth]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerCheck {
    /// Chain and name, as the spec requires.
    Full,
    /// The chain only: a certificate for another name is accepted.
    ChainOnly,
    /// Nothing: any certificate is accepted.
    None,
}

/// A verifier that delegates to rustls's and forgives what `check` leaves out.
#[derive(Debug)]
struct Lax {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    check: ServerCheck,
}

impl ServerCertVerifier for Lax {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError as C, Error as E};
        let got = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match (got, self.check) {
            (Ok(v), _) => Ok(v),
            (Err(_), ServerCheck::None) => Ok(ServerCertVerified::assertion()),
            (
                Err(E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })),
                ServerCheck::ChainOnly,
            ) => Ok(ServerCertVerified::assertion()),
            (Err(e), _) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The reference client's TLS security, trusting `ca_pem` for the name `localhost`,
/// with `versions` and the certificate check `check`.
pub(super) fn client_security(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    check: ServerCheck,
) -> Result<ClientSecurity, String> {
    let roots = roots(ca_pem)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let mut config = if check == ServerCheck::Full {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lax { inner, check }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![fleetwire::tls::ALPN.to_vec()];
    Ok(ClientSecurity::Tls {
        config: Arc::new(config),
        server_name: "localhost".into(),
    })
}

/// Accepts on `front` until `stop`, handing each connection to `each` on its own thread.
pub(super) fn accept_each(
    front: &TcpListener,
    stop: &AtomicBool,
    each: impl Fn(TcpStream) + Send + Sync + Clone + 'static,
) {
    let _ = front.set_nonblocking(true);
    while !stop.load(Ordering::SeqCst) {
        match front.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_nodelay(true);
                let each = each.clone();
                thread::spawn(move || each(s));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return,
        }
    }
}

/// Copies `from` to `to` until the stream ends; then half-closes `to`, unless
/// `detached` was set meanwhile (the other end of `to` was handed to someone else).
fn copy(mut from: TcpStream, mut to: TcpStream, detached: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    if !detached.is_some_and(|d| d.load(Ordering::SeqCst)) {
        let _ = to.shutdown(Net::Write);
    }
}

/// Copies both ways between `a` and `b`.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    thread::spawn(move || copy(b2, a2, None));
    copy(a, b, None);
}

/// What a sniffing TLS server front does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sniff {
    /// A first byte 0x89 (the plaintext preface) goes to the plaintext node.
    FallBack,
    /// A first byte 0x89 is answered by closing, without a TLS alert.
    CloseSilently,
    /// The TLS node sees the connection only once its first byte arrived.
    WaitFirstByte,
}

/// One connection of a sniffing front before the TLS node at `tls_node` (and the
/// plaintext node at `plain_node` for [`Sniff::FallBack`]).
pub(super) fn sniff(sock: TcpStream, tls_node: SocketAddr, plain_node: SocketAddr, how: Sniff) {
    let mut first = [0u8; 1];
    if how == Sniff::WaitFirstByte {
        if !matches!(sock.peek(&mut first), Ok(1)) {
            return;
        }
        if let Ok(node) = TcpStream::connect(tls_node) {
            splice(sock, node);
        }
        return;
    }
    let Ok(node) = TcpStream::connect(tls_node) else {
        return;
    };
    let detached = Arc::new(AtomicBool::new(false));
    let (Ok(node2), Ok(sock2)) = (node.try_clone(), sock.try_clone()) else {
        return;
    };
    {
        let detached = detached.clone();
        thread::spawn(move || copy(node2, sock2, Some(detached)));
    }
    match sock.peek(&mut first) {
        Ok(1) if first[0] == PREFACE[0] => {
            detached.store(true, Ordering::SeqCst);
            let _ = node.shutdown(Net::Both);
            if how == Sniff::FallBack {
                if let Ok(plain) = TcpStream::connect(plain_node) {
                    splice(sock, plain);
                }
            } else {
                let _ = sock.shutdown(Net::Both);
            }
        }
        Ok(_) => copy(sock, node, None),
        Err(_) => {}
    }
}

fn idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Cuts the node's plaintext (preface, then packets) into its units: the preface and
/// each complete packet; an incomplete one waits for its rest.
#[derive(Default)]
struct Units {
    buf: Vec<u8>,
    preface_done: bool,
}

impl Units {
    /// Adds `bytes` and returns the units now complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if !self.preface_done {
            if self.buf.len() < PREFACE.len() {
                return out;
            }
            out.push(self.buf.drain(..PREFACE.len()).collect());
            self.preface_done = true;
        }
        loop {
            match fleetwire::Header::parse(&self.buf, u16::MAX) {
                Ok(fleetwire::Status::Complete(h)) if self.buf.len() >= h.packet_len() => {
                    out.push(self.buf.drain(..h.packet_len()).collect());
                }
                Ok(_) => return out,
                Err(_) => {
                    // not Fleetwire (the node never writes that): pass it on as it is
                    out.push(std::mem::take(&mut self.buf));
                    return out;
                }
            }
        }
    }
}

/// One connection of a TLS-terminating front: the TLS handshake with `config`, bounded
/// by `bound`, ALPN `fleetwire/1` required; then the plaintext goes to the node at
/// `back`. A connection whose handshake fails or outlasts `bound` is closed. With
/// `per_packet`, every packet the node writes goes into a TLS record of its own (the
/// §10.3 `[[tls.grouping]]` bug); else each read of the node's output is one record.
pub(super) fn terminate(
    mut sock: TcpStream,
    back: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    bound: Duration,
    per_packet: bool,
) {
    let Ok(mut tls) = rustls::ServerConnection::new(config) else {
        return;
    };
    let deadline = Instant::now() + bound;
    while tls.is_handshaking() {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() || sock.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match tls.complete_io(&mut sock) {
            Ok((0, 0)) => return, // the end of the stream during the handshake
            Ok(_) => {}
            Err(e) if idle(&e) => {}
            Err(_) => {
                let _ = tls.write_tls(&mut sock);
                return;
            }
        }
    }
    while tls.wants_write() {
        if tls.write_tls(&mut sock).is_err() {
            return;
        }
    }
    if tls.alpn_protocol() != Some(fleetwire::tls::ALPN) {
        return; // §10.1: no fleetwire/1, no application data
    }
    let Ok(mut node) = TcpStream::connect(back) else {
        return;
    };
    let _ = node.set_nodelay(true);
    let tick = Some(Duration::from_millis(2));
    if sock.set_read_timeout(tick).is_err() || node.set_read_timeout(tick).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut units = Units::default();
    'pump: loop {
        match tls.read_tls(&mut sock) {
            Ok(0) => break,
            Ok(_) => {
                if tls.process_new_packets().is_err() {
                    let _ = tls.write_tls(&mut sock);
                    break;
                }
                loop {
                    match tls.reader().read(&mut buf) {
                        Ok(0) => break 'pump,
                        Ok(n) => {
                            if node.write_all(&buf[..n]).is_err() {
                                break 'pump;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break 'pump,
                    }
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => break,
        }
        match node.read(&mut buf) {
            Ok(0) => {
                tls.send_close_notify();
                while tls.wants_write() && tls.write_tls(&mut sock).is_ok() {}
                break;
            }
            Ok(n) if per_packet => {
                for unit in units.feed(&buf[..n]) {
                    // one write call, one record (rustls never joins two)
                    if tls.writer().write_all(&unit).is_err() {
                        break 'pump;
                    }
                }
            }
            Ok(n) => {
                if tls.writer().write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => break,
        }
        while tls.wants_write() {
            if tls.write_tls(&mut sock).is_err() {
                break 'pump;
            }
        }
    }
    let _ = node.shutdown(Net::Both);
    let _ = sock.shutdown(Net::Both);
}

/// One connection of a client front that falls back to plaintext: the reference TLS
/// client's bytes go to the runner at `runner` unchanged, until the runner's first byte
/// is the preface's 0x89; then the TLS client is dropped and a plaintext reference
/// client (configured with `config`) continues on the same connection.
pub(super) fn fall_back(client: TcpStream, runner: SocketAddr, config: Config) {
    let Ok(mut theirs) = TcpStream::connect(runner) else {
        return;
    };
    let _ = theirs.set_nodelay(true);
    let detached = Arc::new(AtomicBool::new(false));
    let (Ok(client2), Ok(theirs2)) = (client.try_clone(), theirs.try_clone()) else {
        return;
    };
    {
        let detached = detached.clone();
        thread::spawn(move || copy(client2, theirs2, Some(detached)));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let n = match theirs.read(&mut buf) {
        Ok(0) | Err(_) => {
            let _ = client.shutdown(Net::Both);
            return;
        }
        Ok(n) => n,
    };
    if buf[0] != PREFACE[0] {
        let mut client = client;
        if client.write_all(&buf[..n]).is_ok() {
            copy(theirs, client, None);
        }
        return;
    }
    // the server speaks plaintext: so do we, from now on
    detached.store(true, Ordering::SeqCst);
    let _ = client.shutdown(Net::Both);
    let Ok(local) = TcpListener::bind("127.0.0.1:0") else {
        return;
    };
    let Ok(addr) = local.local_addr() else { return };
    thread::spawn(move || {
        echo_once(addr, ClientSecurity::Plaintext, config);
    });
    let Ok((mut plain, _)) = local.accept() else {
        return;
    };
    let _ = plain.set_nodelay(true);
    if plain.write_all(&buf[..n]).is_ok() {
        splice(theirs, plain);
    }
}

//! [`TlsEndpoint`]: one TLS connection driven as a BIO pair.

use core::fmt;
use std::io::{self, BufRead, IoSlice, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion};
use rustls::{ServerConfig, ServerConnection};

use super::node_id::identity_from_cert;
use super::{TlsError, ALPN};
use crate::connection::Identity;

/// The first byte of the Fleetwire preface (spec §3). It cannot begin a TLS record,
/// whose content types are 20–24.
const PREFACE_FIRST_BYTE: u8 = 0x89;

/// One end of a TLS 1.3 connection, driven as a BIO pair (sans-IO).
///
/// The engine owns the socket and its buffers; the endpoint only transforms bytes:
/// - ciphertext read from the socket goes in with [`feed_tls`](Self::feed_tls),
///   plaintext comes out with [`read_plaintext`](Self::read_plaintext);
/// - plaintext goes in with [`write_plaintext`](Self::write_plaintext) or
///   [`write_plaintext_vectored`](Self::write_plaintext_vectored), ciphertext for the
///   socket comes out with [`take_tls`](Self::take_tls).
///
/// Plaintext written during the handshake is held until the handshake has completed
/// *and* passed the checks of spec §10.1 (TLS 1.3, ALPN `fleetwire/1`), so nothing of the
/// Fleetwire stream reaches a peer that failed them. The endpoint never refuses
/// plaintext: what it holds is what was written and not yet taken, so the engine bounds
/// memory by taking ciphertext after writing (its send queue is the bound).
///
/// Output is appended to caller-owned vectors, which the engine reuses. (rustls's
/// buffered connection still allocates one internal buffer per record.)
///
/// # Examples
///
/// An in-memory handshake, shuttling bytes between a client and a server:
///
/// ```
/// use fleetwire::tls::{client_config, generate_test_pki, server_config, TlsEndpoint};
/// # fn main() -> Result<(), fleetwire::tls::TlsError> {
/// let pki = generate_test_pki(&["localhost"], None)?;
/// let server_cfg = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None)?;
/// let client_cfg = client_config(pki.ca_cert_pem.as_bytes(), None)?;
/// let mut server = TlsEndpoint::server(server_cfg)?;
/// let mut client = TlsEndpoint::client(client_cfg, "localhost")?;
///
/// client.write_plaintext(b"\x89FWIRE\r\n")?; // held until the handshake is verified
/// let mut wire = Vec::new();
/// for _ in 0..3 {
///     client.take_tls(&mut wire);
///     assert_eq!(server.feed_tls(&wire)?, wire.len());
///     wire.clear();
///     server.take_tls(&mut wire);
///     assert_eq!(client.feed_tls(&wire)?, wire.len());
///     wire.clear();
/// }
/// assert!(!client.is_handshaking() && !server.is_handshaking());
/// assert_eq!(server.alpn(), Some(&b"fleetwire/1"[..]));
///
/// let mut received = Vec::new();
/// server.read_plaintext(&mut received)?;
/// assert_eq!(received, b"\x89FWIRE\r\n");
/// # Ok(())
/// # }
/// ```
pub struct TlsEndpoint {
    conn: Connection,
    /// The handshake completed and passed the checks of spec §10.1.
    established: bool,
    /// The first failure; every later call returns it again.
    failed: Option<TlsError>,
    /// Plaintext written before `established`, handed to rustls in one write afterwards.
    early: Vec<u8>,
    /// Whether a byte has been fed yet (the plaintext-preface check looks at the first).
    fed_any: bool,
    /// Decrypted bytes waiting in rustls, as of the last processing.
    plaintext_waiting: usize,
    close_sent: bool,
    peer_closed: bool,
}

impl TlsEndpoint {
    /// Starts the client side of a connection to `server_name` (a DNS name or an IP
    /// address), which the server's certificate must name (spec §10.2).
    ///
    /// The ClientHello is ready at once: [`pending_tls`](Self::pending_tls) is `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["127.0.0.1"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let client = TlsEndpoint::client(config.clone(), "127.0.0.1").unwrap();
    /// assert!(client.pending_tls());
    /// assert!(TlsEndpoint::client(config, "not a name!").is_err());
    /// ```
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsError::Config("the server name is neither a DNS name nor an IP address")
        })?;
        let conn = ClientConnection::new(config, name).map_err(TlsError::from_rustls)?;
        Ok(Self::new(conn.into()))
    }

    /// Starts the server side of a connection; it waits for the ClientHello.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// let server = TlsEndpoint::server(config).unwrap();
    /// assert!(server.is_handshaking() && !server.pending_tls());
    /// ```
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = ServerConnection::new(config).map_err(TlsError::from_rustls)?;
        Ok(Self::new(conn.into()))
    }

    fn new(mut conn: Connection) -> Self {
        // Ciphertext is bounded by the engine taking it, not by refusing writes.
        conn.set_buffer_limit(None);
        Self {
            conn,
            established: false,
            failed: None,
            early: Vec::new(),
            fed_any: false,
            plaintext_waiting: 0,
            close_sent: false,
            peer_closed: false,
        }
    }

    /// Consumes ciphertext received from the socket and processes the records in it.
    ///
    /// Returns how many bytes were consumed. That is fewer than `ciphertext.len()` only
    /// when decrypted plaintext is waiting (about 16 KiB): call
    /// [`read_plaintext`](Self::read_plaintext), then feed the rest. Partial records are
    /// kept, so input may be split anywhere. Bytes after the peer's `close_notify` are
    /// discarded (counted as consumed).
    ///
    /// # Errors
    ///
    /// A failed handshake or a corrupt record. [`TlsError::PlaintextPreface`] if the
    /// first byte is the Fleetwire preface's `0x89`: the peer is not using TLS. Call
    /// [`take_tls`](Self::take_tls) afterwards to send the alert that tells the peer.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint, TlsError};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// let mut server = TlsEndpoint::server(config).unwrap();
    /// let plaintext_peer = b"\x89FWIRE\r\n";
    /// assert_eq!(server.feed_tls(plaintext_peer), Err(TlsError::PlaintextPreface));
    /// ```
    ///
    /// The engine's loop over one socket read, with `plaintext` its reused buffer:
    ///
    /// ```
    /// # use fleetwire::tls::{TlsEndpoint, TlsError};
    /// fn on_readable(tls: &mut TlsEndpoint, read: &[u8], plaintext: &mut Vec<u8>) -> Result<(), TlsError> {
    ///     let mut rest = read;
    ///     while !rest.is_empty() {
    ///         let consumed = tls.feed_tls(rest)?;
    ///         rest = &rest[consumed..];
    ///         tls.read_plaintext(plaintext)?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn feed_tls(&mut self, ciphertext: &[u8]) -> Result<usize, TlsError> {
        self.check_failed()?;
        if self.peer_closed {
            return Ok(ciphertext.len());
        }
        if !self.fed_any && !ciphertext.is_empty() {
            self.fed_any = true;
            // spec §3: a peer expecting TLS that receives 0x89 reports the misconfiguration.
            if ciphertext[0] == PREFACE_FIRST_BYTE {
                return Err(self.fail(TlsError::PlaintextPreface));
            }
        }
        let mut consumed = 0;
        while consumed < ciphertext.len() && !self.peer_closed {
            // Never an empty slice here: rustls would take a read of 0 bytes for EOF.
            let mut rest = &ciphertext[consumed..];
            match self.conn.read_tls(&mut rest) {
                // Only after close_notify, which `process` has already noted.
                Ok(0) => self.peer_closed = true,
                Ok(n) => consumed += n,
                // rustls's plaintext buffer is full: the caller reads, then feeds the rest.
                Err(_) if self.plaintext_waiting > 0 => break,
                Err(err) => return Err(self.fail(io_failure(&err))),
            }
            self.process()?;
        }
        if self.peer_closed {
            consumed = ciphertext.len();
        }
        self.check_established()?;
        Ok(consumed)
    }

    /// Appends decrypted application data to `out` and returns how many bytes.
    ///
    /// `Ok(0)` when there is none; after [`peer_closed`](Self::peer_closed) no more
    /// will come.
    ///
    /// # Errors
    ///
    /// The endpoint's earlier failure, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// let mut server = TlsEndpoint::server(config).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(server.read_plaintext(&mut out).unwrap(), 0);
    /// ```
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        self.read_plaintext_with(|chunk| out.extend_from_slice(chunk))
    }

    /// As [`read_plaintext`](Self::read_plaintext), into bytes the transport hands to
    /// the connection without another copy.
    #[cfg(feature = "transport")]
    pub(crate) fn read_plaintext_bytes(
        &mut self,
        out: &mut bytes::BytesMut,
    ) -> Result<usize, TlsError> {
        self.read_plaintext_with(|chunk| out.extend_from_slice(chunk))
    }

    /// Hands every plaintext chunk rustls holds to `put`; returns the bytes handed.
    fn read_plaintext_with(&mut self, mut put: impl FnMut(&[u8])) -> Result<usize, TlsError> {
        self.check_failed()?;
        let mut total = 0;
        let mut reader = self.conn.reader();
        // Err: WouldBlock (nothing more yet); an EOF is never signalled to rustls.
        while let Ok(chunk) = reader.fill_buf() {
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            put(chunk);
            total += len;
            reader.consume(len);
        }
        self.plaintext_waiting = 0;
        Ok(total)
    }

    /// Encrypts `data` for the peer; take the ciphertext with [`take_tls`](Self::take_tls).
    ///
    /// Each call ends in a record boundary: to put many small packets into one record
    /// (spec §10.3), hand them over together with
    /// [`write_plaintext_vectored`](Self::write_plaintext_vectored).
    ///
    /// # Errors
    ///
    /// [`TlsError::Closed`] after [`send_close_notify`](Self::send_close_notify); the
    /// endpoint's earlier failure, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint, TlsError};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// client.write_plaintext(b"\x89FWIRE\r\n").unwrap(); // held until the handshake ends
    /// client.send_close_notify();
    /// assert_eq!(client.write_plaintext(b"late"), Err(TlsError::Closed));
    /// ```
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.write_plaintext_vectored(&[IoSlice::new(data)])
    }

    /// Encrypts all of `bufs`, packed into as few records as possible (spec §10.3): a
    /// record holds up to 16 KiB regardless of where the slices end.
    ///
    /// # Errors
    ///
    /// As [`write_plaintext`](Self::write_plaintext).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::IoSlice;
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// let (header, payload) = ([0u8; 8], b"hello");
    /// client
    ///     .write_plaintext_vectored(&[IoSlice::new(&header), IoSlice::new(payload)])
    ///     .unwrap();
    /// ```
    pub fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), TlsError> {
        self.check_failed()?;
        if self.close_sent {
            return Err(TlsError::Closed);
        }
        if !self.established {
            for buf in bufs {
                self.early.extend_from_slice(buf);
            }
            return Ok(());
        }
        self.encrypt(bufs)
    }

    /// Whether ciphertext is waiting for [`take_tls`](Self::take_tls).
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// assert!(client.pending_tls()); // the ClientHello
    /// client.take_tls(&mut Vec::new());
    /// assert!(!client.pending_tls());
    /// ```
    pub fn pending_tls(&self) -> bool {
        self.conn.wants_write()
    }

    /// Appends all pending ciphertext (records, alerts) to `out`; returns how many bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// let mut wire = Vec::new();
    /// let n = client.take_tls(&mut wire);
    /// assert_eq!((n, wire[0]), (wire.len(), 0x16)); // a handshake record
    /// ```
    pub fn take_tls(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail; stop on a zero-length write all the same.
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out.len() - before
    }

    /// Writes pending ciphertext straight to `w` — normally the non-blocking socket —
    /// without the copy of [`take_tls`](Self::take_tls): rustls hands its records over
    /// in vectored writes. What `w` does not take stays pending; call again when it is
    /// writable. Returns the bytes written.
    ///
    /// # Errors
    ///
    /// `w`'s error (`WouldBlock` only when nothing was written).
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// let mut socket = Vec::new(); // any io::Write
    /// let n = client.write_tls_to(&mut socket).unwrap();
    /// assert_eq!(n, socket.len()); // the ClientHello
    /// assert!(!client.pending_tls());
    /// ```
    pub fn write_tls_to(&mut self, w: &mut dyn io::Write) -> io::Result<usize> {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(w) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if total > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// `true` until the handshake has completed and passed the checks of spec §10.1.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// assert!(TlsEndpoint::server(config).unwrap().is_handshaking());
    /// ```
    pub fn is_handshaking(&self) -> bool {
        !self.established
    }

    /// The agreed ALPN protocol: `fleetwire/1` once established, `None` before.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// assert_eq!(TlsEndpoint::server(config).unwrap().alpn(), None);
    /// ```
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The node id bound to the peer's verified certificate: its subject alternative
    /// name URI `fleetwire:node:<id>` or `fleetwire:proxy:<id>` (spec §10.2); see
    /// [`peer_identity`](Self::peer_identity) for the role as well.
    ///
    /// `None` before the handshake is established, when the peer sent no certificate
    /// (a client without mutual TLS), when the certificate names no such URI, or when it
    /// names more than one. The state machine compares this with the node id announced
    /// in HELLO and closes with BAD_HELLO on a mismatch.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], Some(12)).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let client = TlsEndpoint::client(config, "localhost").unwrap();
    /// assert_eq!(client.peer_node_id(), None); // no handshake yet
    /// ```
    pub fn peer_node_id(&self) -> Option<u16> {
        self.peer_identity().map(|id| id.node_id)
    }

    /// The identity bound to the peer's certificate (spec §10.2): its one URI subject
    /// alternative name `fleetwire:node:<id>` (a node) or `fleetwire:proxy:<id>` (a
    /// proxy). Pass it as [`Config::authenticated`](crate::connection::Config::authenticated):
    /// only a proxy identity authenticates the peer as a proxy (§7.4).
    ///
    /// `None` before the handshake is established, when the peer sent no certificate,
    /// or when its certificate names no such URI, or more than one.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], Some(12)).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let client = TlsEndpoint::client(config, "localhost").unwrap();
    /// assert_eq!(client.peer_identity(), None); // no handshake yet
    /// ```
    pub fn peer_identity(&self) -> Option<Identity> {
        if !self.established {
            return None;
        }
        let leaf = self.conn.peer_certificates()?.first()?;
        identity_from_cert(leaf)
    }

    /// Queues a `close_notify` alert: take it with [`take_tls`](Self::take_tls). Nothing
    /// more may be written; plaintext still held for the handshake is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{client_config, generate_test_pki, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    /// let mut client = TlsEndpoint::client(config, "localhost").unwrap();
    /// client.send_close_notify();
    /// assert!(client.write_plaintext(b"x").is_err());
    /// ```
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
        self.close_sent = true;
        self.early = Vec::new();
    }

    /// Whether the peer has sent `close_notify`: no more plaintext will arrive once what
    /// is buffered has been read.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::tls::{generate_test_pki, server_config, TlsEndpoint};
    /// let pki = generate_test_pki(&["localhost"], None).unwrap();
    /// let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    /// assert!(!TlsEndpoint::server(config).unwrap().peer_closed());
    /// ```
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The rustls connection, for tests that inspect what was negotiated.
    #[cfg(all(test, feature = "test-certs"))]
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn check_failed(&self) -> Result<(), TlsError> {
        match &self.failed {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// Records the first failure and returns it.
    fn fail(&mut self, err: TlsError) -> TlsError {
        self.early = Vec::new();
        self.failed.get_or_insert(err).clone()
    }

    fn process(&mut self) -> Result<(), TlsError> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.plaintext_waiting = state.plaintext_bytes_to_read();
                self.peer_closed |= state.peer_has_closed();
                Ok(())
            }
            // rustls has queued the alert for the peer; take_tls hands it out.
            Err(err) => Err(self.fail(TlsError::from_rustls(err))),
        }
    }

    /// Once rustls has finished the handshake, checks spec §10.1 again (defence in
    /// depth: the configurations already enforce it) and releases the held plaintext.
    fn check_established(&mut self) -> Result<(), TlsError> {
        if self.established || self.conn.is_handshaking() {
            return Ok(());
        }
        // spec §10.1: endpoints MUST use TLS 1.3 and MUST refuse an earlier version.
        if self.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
            return Err(self.abort(TlsError::VersionRefused { by_peer: false }));
        }
        // spec §10.1: either endpoint MUST abort if `fleetwire/1` is not agreed.
        if self.conn.alpn_protocol() != Some(ALPN) {
            return Err(self.abort(TlsError::NoAlpn { by_peer: false }));
        }
        self.established = true;
        if !self.early.is_empty() {
            let early = core::mem::take(&mut self.early);
            self.encrypt(&[IoSlice::new(&early)])?;
        }
        Ok(())
    }

    /// Fails after a handshake rustls accepted: rustls cannot send a fatal alert then,
    /// so the peer gets `close_notify` and none of the held plaintext.
    fn abort(&mut self, err: TlsError) -> TlsError {
        self.conn.send_close_notify();
        self.fail(err)
    }

    fn encrypt(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), TlsError> {
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        match self.conn.writer().write_vectored(bufs) {
            // Without a buffer limit rustls takes everything.
            Ok(written) if written == total => Ok(()),
            Ok(_) => Err(self.fail(TlsError::Other(rustls::Error::General(
                "rustls accepted only part of the plaintext".into(),
            )))),
            Err(err) => Err(self.fail(io_failure(&err))),
        }
    }
}

fn io_failure(err: &io::Error) -> TlsError {
    TlsError::Other(rustls::Error::General(err.to_string()))
}

impl fmt::Debug for TlsEndpoint {
    /// Shows the state, never the buffered plaintext.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsEndpoint")
            .field("established", &self.established)
            .field("failed", &self.failed)
            .field("held_plaintext", &self.early.len())
            .field("close_sent", &self.close_sent)
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

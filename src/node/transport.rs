//! The byte stream under a connection: a blocking TCP socket, optionally through a
//! [`TlsEndpoint`] used as a BIO pair (spec §10). The transport owns the socket and
//! every buffer, and reuses them.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::NodeError;
use crate::connection::Identity;
use crate::tls::{TlsEndpoint, TlsError};

/// Socket reads go into this buffer (reused for the connection's life).
const READ_BUF: usize = 64 * 1024;
/// A blocked write fails after this long: a peer that stops reading cannot hold the
/// driver thread forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the peer's EOF before dropping the socket.
const LINGER: Duration = Duration::from_secs(1);
/// The smallest read timeout (zero would mean "block forever" to the socket API).
const MIN_WAIT: Duration = Duration::from_millis(1);
/// A fatal TLS alert `unexpected_message` in a plaintext record: the answer of a TLS
/// endpoint to a plaintext Fleetwire preface (spec §3: a peer expecting TLS that receives
/// `0x89` reports the misconfiguration), so that a plaintext peer learns why.
const ALERT_UNEXPECTED_MESSAGE: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0A];

/// The driver's monotonic clock. Connection time is the [`Duration`] since `epoch`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Now, as connection time.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The instant of a connection-time deadline.
    pub(crate) fn instant(&self, at: Duration) -> Instant {
        self.epoch + at
    }
}

/// What one read produced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Input {
    /// Plaintext was appended to [`Transport::plain`] (possibly none: TLS handshake
    /// records only).
    Data,
    /// The peer closed the stream.
    Eof,
    /// The deadline passed.
    Timeout,
}

/// A TCP socket with optional TLS.
pub(crate) struct Transport {
    sock: TcpStream,
    tls: Option<TlsEndpoint>,
    rbuf: Box<[u8]>,
    /// Plaintext received and not yet taken by the driver.
    pub(crate) plain: Vec<u8>,
    wbuf: Vec<u8>,
    /// The first byte the peer sent (plaintext diagnostics, spec §3).
    first_byte: Option<u8>,
    eof_seen: bool,
    /// Fleetwire bytes (plaintext) written and received.
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

impl Transport {
    pub(crate) fn new(sock: TcpStream, tls: Option<TlsEndpoint>) -> io::Result<Transport> {
        sock.set_nodelay(true)?;
        sock.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Transport {
            sock,
            tls,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            plain: Vec::new(),
            wbuf: Vec::new(),
            first_byte: None,
            eof_seen: false,
            bytes_sent: 0,
            bytes_received: 0,
        })
    }

    pub(crate) fn tls(&self) -> Option<&TlsEndpoint> {
        self.tls.as_ref()
    }

    /// The identity named by the peer's verified certificate (spec §10.2): its
    /// `fleetwire:node:<id>` or `fleetwire:proxy:<id>` URI. `None` over plaintext or
    /// without one.
    pub(crate) fn peer_identity(&self) -> Option<Identity> {
        self.tls.as_ref()?.peer_identity()
    }

    /// The first byte the peer sent on a plaintext stream, if any yet.
    pub(crate) fn first_byte(&self) -> Option<u8> {
        self.first_byte
    }

    /// Whether the first byte received is a TLS record's content type (20–24): the
    /// peer speaks TLS to a plaintext endpoint (spec §3 rationale).
    pub(crate) fn peer_sent_tls(&self) -> bool {
        self.tls.is_none() && matches!(self.first_byte, Some(20..=24))
    }

    /// Runs the TLS handshake to completion (spec §10.1), bounded by `deadline` (spec §6.5:
    /// the TLS handshake SHOULD be bounded by the handshake timer). Plaintext that
    /// arrives with the last flight stays in [`plain`](Self::plain).
    pub(crate) fn tls_handshake(&mut self, deadline: Instant) -> Result<(), NodeError> {
        loop {
            self.flush_tls()?;
            match &self.tls {
                Some(tls) if tls.is_handshaking() => {}
                _ => return Ok(()),
            }
            match self.read(Some(deadline))? {
                Input::Data => {}
                Input::Timeout => return Err(NodeError::Timeout("the TLS handshake")),
                Input::Eof => {
                    return Err(NodeError::Closed(super::CloseInfo::lost(
                        "the peer closed the connection during the TLS handshake",
                    )))
                }
            }
        }
    }

    /// Reads once, waiting at most until `deadline` (forever if `None`).
    pub(crate) fn read(&mut self, deadline: Option<Instant>) -> Result<Input, NodeError> {
        if self.eof_seen {
            return Ok(Input::Eof);
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()).max(MIN_WAIT));
        self.sock.set_read_timeout(wait)?;
        let n = match self.sock.read(&mut self.rbuf) {
            Ok(0) => {
                self.eof_seen = true;
                return Ok(Input::Eof);
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Ok(Input::Timeout),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Input::Data),
            Err(e) => return Err(e.into()),
        };
        let before = self.plain.len();
        match &mut self.tls {
            None => {
                self.first_byte.get_or_insert(self.rbuf[0]);
                self.plain.extend_from_slice(&self.rbuf[..n]);
            }
            Some(tls) => {
                let fed = feed(tls, &self.rbuf[..n], &mut self.plain);
                if let Err(err) = fed {
                    self.send_failure_alert(&err);
                    return Err(err.into());
                }
                if tls.peer_closed() {
                    self.eof_seen = true;
                }
            }
        }
        self.bytes_received += (self.plain.len() - before) as u64;
        self.flush_tls()?; // handshake answers, key updates
        Ok(Input::Data)
    }

    /// After a TLS failure: hands the peer the alert that tells it why.
    fn send_failure_alert(&mut self, err: &TlsError) {
        if *err == TlsError::PlaintextPreface {
            let _ = self.sock.write_all(&ALERT_UNEXPECTED_MESSAGE);
        } else {
            let _ = self.flush_tls();
        }
    }

    /// Writes Fleetwire bytes: encrypted into as few records as possible when TLS (spec
    /// §10.3 `[[tls.grouping]]`).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), NodeError> {
        if data.is_empty() {
            return Ok(());
        }
        self.bytes_sent += data.len() as u64;
        match &mut self.tls {
            None => self.sock.write_all(data)?,
            Some(tls) => {
                tls.write_plaintext(data)?;
                self.flush_tls()?;
            }
        }
        Ok(())
    }

    /// Sends any pending ciphertext.
    fn flush_tls(&mut self) -> Result<(), NodeError> {
        if let Some(tls) = &mut self.tls {
            if tls.pending_tls() {
                self.wbuf.clear();
                tls.take_tls(&mut self.wbuf);
                self.sock.write_all(&self.wbuf)?;
            }
        }
        Ok(())
    }

    /// Ends the stream politely: TLS `close_notify`, a half-close, then a bounded wait
    /// for the peer's EOF so that unread input does not turn our last bytes (the GOAWAY)
    /// into a reset.
    pub(crate) fn finish(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
        let _ = self.flush_tls();
        let _ = self.sock.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        while !self.eof_seen && Instant::now() < deadline {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_WAIT);
            if self.sock.set_read_timeout(Some(wait)).is_err() {
                break;
            }
            match self.sock.read(&mut self.rbuf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// Feeds one socket read to the TLS endpoint, collecting the plaintext.
fn feed(tls: &mut TlsEndpoint, mut rest: &[u8], plain: &mut Vec<u8>) -> Result<(), TlsError> {
    while !rest.is_empty() {
        let consumed = tls.feed_tls(rest)?;
        rest = &rest[consumed..];
        tls.read_plaintext(plain)?;
    }
    tls.read_plaintext(plain)?;
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

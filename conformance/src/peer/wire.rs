//! The runner's side of a live connection: a TCP socket, optionally through a
//! [`TlsEndpoint`] used as a BIO pair, and a parser of the testee's packets.
//!
//! Every byte the testee writes is kept (`received`), so that the sender checks can see
//! exactly what was on the wire; the parser never trusts the testee's lengths beyond
//! 65,535 bytes of payload.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fleetwire::tls::TlsEndpoint;
use fleetwire::{Header, Packet, Status, PREFACE};

/// What the testee did next.
#[derive(Debug)]
pub(super) enum Event {
    /// A complete packet, with the time it was read.
    Packet(Packet, Instant),
    /// The stream ended (EOF, reset or TLS close).
    Closed,
    /// The deadline passed.
    Timeout,
    /// The testee sent bytes that are not a valid packet header: the code a receiver
    /// would report, and what was seen.
    Garbage(fleetwire::ErrorCode, String),
}

/// One connection to (or from) the implementation under test.
pub(super) struct Wire {
    sock: TcpStream,
    tls: Option<TlsEndpoint>,
    rbuf: Vec<u8>,
    inbuf: Vec<u8>,
    preface_seen: bool,
    closed: bool,
    /// Why the TLS layer failed, if it did.
    pub(super) tls_error: Option<String>,
    /// Every Fleetwire byte the testee wrote (after TLS), in order.
    pub(super) received: Vec<u8>,
    /// The TLS record headers the testee wrote, read on the raw stream before
    /// decryption (record headers are plaintext, RFC 8446 §5.1).
    pub(super) records: RecordCount,
    /// Packets framed from the testee's stream so far.
    pub(super) packets: u64,
}

/// Counts the TLS records of a raw byte stream from their plaintext headers (content
/// type, version, 16-bit length), whatever their content: a hostile length only skips
/// that many bytes.
#[derive(Debug, Default)]
pub(super) struct RecordCount {
    /// The bytes of a header read so far (up to 5).
    header: Vec<u8>,
    /// Bytes of the current record's body still to skip.
    left: usize,
    /// Complete record headers with content type 23 (application data: in TLS 1.3 every
    /// record after the ServerHello, whatever it carries).
    pub(super) application: u64,
}

impl RecordCount {
    /// Reads the next raw bytes of the stream.
    pub(super) fn feed(&mut self, mut raw: &[u8]) {
        while !raw.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(raw.len());
                self.left -= skip;
                raw = &raw[skip..];
                continue;
            }
            let take = (5 - self.header.len()).min(raw.len());
            self.header.extend_from_slice(&raw[..take]);
            raw = &raw[take..];
            if self.header.len() == 5 {
                if self.header[0] == 23 {
                    self.application += 1;
                }
                self.left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
            }
        }
    }
}

impl Wire {
    pub(super) fn new(sock: TcpStream, tls: Option<TlsEndpoint>) -> io::Result<Wire> {
        sock.set_nodelay(true)?;
        sock.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Wire {
            sock,
            tls,
            rbuf: vec![0; 64 * 1024],
            inbuf: Vec::new(),
            preface_seen: false,
            closed: false,
            tls_error: None,
            received: Vec::new(),
            records: RecordCount::default(),
            packets: 0,
        })
    }

    /// The TLS endpoint, if any.
    pub(super) fn tls(&self) -> Option<&TlsEndpoint> {
        self.tls.as_ref()
    }

    /// Whether the stream ended.
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Runs the TLS handshake (no-op over plaintext).
    pub(super) fn tls_handshake(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            self.flush_tls()
                .map_err(|e| format!("TLS handshake: {e}"))?;
            match &self.tls {
                Some(t) if t.is_handshaking() => {}
                _ => return Ok(()),
            }
            if let Some(e) = &self.tls_error {
                return Err(format!("TLS handshake failed: {e}"));
            }
            if self.closed {
                return Err("the peer closed the connection during the TLS handshake".into());
            }
            if !self
                .fill(deadline)
                .map_err(|e| format!("TLS handshake: {e}"))?
            {
                return Err("TLS handshake did not complete in time".into());
            }
        }
    }

    fn flush_tls(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            if tls.pending_tls() {
                let mut out = Vec::new();
                tls.take_tls(&mut out);
                self.sock.write_all(&out)?;
            }
        }
        Ok(())
    }

    /// Sends Fleetwire bytes in one write (one TLS record batch).
    pub(super) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            None => self.sock.write_all(data),
            Some(tls) => {
                tls.write_plaintext(data)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.flush_tls()
            }
        }
    }

    /// Sends bytes on the socket itself, below TLS.
    pub(super) fn send_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.sock.write_all(data)
    }

    /// Reads raw socket bytes (below TLS) until the stream ends or `deadline`; returns
    /// them and whether the stream ended.
    pub(super) fn read_raw(&mut self, deadline: Instant) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return (out, false);
            }
            if self.sock.set_read_timeout(Some(wait)).is_err() {
                return (out, true);
            }
            match self.sock.read(&mut self.rbuf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&self.rbuf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return (out, true),
            }
        }
    }

    /// Half-closes our side (TLS close_notify, then TCP FIN).
    pub(super) fn shutdown_write(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = self.flush_tls();
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }

    /// One read; `Ok(false)` on timeout. Sets `closed` at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.closed {
            return Ok(true);
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.sock.set_read_timeout(Some(wait))?;
        let n = match self.sock.read(&mut self.rbuf) {
            Ok(0) => {
                self.closed = true;
                return Ok(true);
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(_) => {
                // reset or broken: the testee closed (abruptly)
                self.closed = true;
                return Ok(true);
            }
        };
        let before = self.inbuf.len();
        match &mut self.tls {
            None => self.inbuf.extend_from_slice(&self.rbuf[..n]),
            Some(tls) => {
                self.records.feed(&self.rbuf[..n]);
                let mut rest = &self.rbuf[..n];
                while !rest.is_empty() {
                    match tls.feed_tls(rest) {
                        Ok(used) => rest = &rest[used..],
                        Err(e) => {
                            self.tls_error = Some(e.to_string());
                            self.closed = true;
                            break;
                        }
                    }
                    let _ = tls.read_plaintext(&mut self.inbuf);
                }
                let _ = tls.read_plaintext(&mut self.inbuf);
                if tls.peer_closed() {
                    self.closed = true;
                }
                let _ = self.flush_tls();
            }
        }
        self.received.extend_from_slice(&self.inbuf[before..]);
        Ok(true)
    }

    /// Reads the testee's preface; `Err` when it is wrong or does not come.
    pub(super) fn read_preface(&mut self, deadline: Instant) -> Result<(), String> {
        while self.inbuf.len() < PREFACE.len() {
            if self.closed {
                return Err("the testee closed before sending its preface".into());
            }
            if !self.fill(deadline).map_err(|e| e.to_string())? {
                return Err("no preface from the testee in time".into());
            }
        }
        if self.inbuf[..PREFACE.len()] != PREFACE {
            return Err(format!(
                "the testee's preface is wrong: {:02x?} (spec §3 [[preface.send]])",
                &self.inbuf[..PREFACE.len()]
            ));
        }
        self.inbuf.drain(..PREFACE.len());
        self.preface_seen = true;
        Ok(())
    }

    /// The next packet, end of stream or timeout.
    pub(super) fn next(&mut self, deadline: Instant) -> Event {
        loop {
            if self.preface_seen && !self.inbuf.is_empty() {
                match Header::parse(&self.inbuf, u16::MAX) {
                    Ok(Status::Complete(h)) if self.inbuf.len() >= h.packet_len() => {
                        let bytes: Vec<u8> = self.inbuf.drain(..h.packet_len()).collect();
                        let payload = bytes::Bytes::copy_from_slice(&bytes[h.len()..]);
                        self.packets += 1;
                        return Event::Packet(Packet { header: h, payload }, Instant::now());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let shown = self.inbuf.len().min(10);
                        let what = format!(
                            "the testee sent an invalid header {:02x?}: {} (the sender rules of §4)",
                            &self.inbuf[..shown],
                            e.detail()
                        );
                        // nothing after it can be framed
                        self.inbuf.clear();
                        self.closed = true;
                        return Event::Garbage(e.code(), what);
                    }
                }
            }
            if self.closed {
                return Event::Closed;
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Event::Timeout,
                Err(_) => return Event::Closed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RecordCount;

    #[test]
    fn record_headers_are_counted_across_reads() {
        // a handshake record (22), two application-data records (23), one cut mid-header
        let mut stream = vec![22, 3, 3, 0, 2, 0xAA, 0xBB];
        stream.extend([23, 3, 3, 0, 3, 1, 2, 3]);
        stream.extend([23, 3, 3, 0, 1, 9]);
        for cut in 0..=stream.len() {
            let mut r = RecordCount::default();
            r.feed(&stream[..cut]);
            r.feed(&stream[cut..]);
            assert_eq!(r.application, 2, "cut at {cut}");
        }
        // a hostile length skips, never panics
        let mut r = RecordCount::default();
        r.feed(&[23, 3, 3, 0xFF, 0xFF, 1]);
        r.feed(&[23; 100]);
        assert_eq!(r.application, 1);
    }
}

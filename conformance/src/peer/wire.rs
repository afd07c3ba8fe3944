//! The runner's side of a live connection: a TCP socket, optionally through a
//! [`TlsEndpoint`] used as a BIO pair, and a parser of the testee's packets.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fleetwire::control::{Control, Ping, Pong};
use fleetwire::tls::TlsEndpoint;
use fleetwire::{Header, Kind, Packet, Status, PREFACE};

/// What the testee did next.
#[derive(Debug)]
pub(super) enum Event {
    /// A complete packet.
    Packet(Packet),
    /// The stream ended (EOF, reset or TLS close).
    Closed,
    /// The deadline passed.
    Timeout,
    /// The testee sent bytes that are not a valid packet header.
    Garbage(String),
}

/// One connection to (or from) the implementation under test.
pub(super) struct Wire {
    sock: TcpStream,
    tls: Option<TlsEndpoint>,
    rbuf: Vec<u8>,
    inbuf: Vec<u8>,
    preface_seen: bool,
    closed: bool,
    /// Answer the testee's PINGs while waiting (keeps a client testee happy).
    pub(super) answer_pings: bool,
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
            answer_pings: true,
        })
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
            if !self
                .fill(deadline)
                .map_err(|e| format!("TLS handshake: {e}"))?
            {
                return Err("TLS handshake did not complete in time".into());
            }
            if self.closed {
                return Err("the peer closed the connection during the TLS handshake".into());
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
        match &mut self.tls {
            None => self.inbuf.extend_from_slice(&self.rbuf[..n]),
            Some(tls) => {
                let mut rest = &self.rbuf[..n];
                while !rest.is_empty() {
                    match tls.feed_tls(rest) {
                        Ok(used) => rest = &rest[used..],
                        Err(_) => {
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
                "the testee's preface is wrong: {:02x?}",
                &self.inbuf[..PREFACE.len()]
            ));
        }
        self.inbuf.drain(..PREFACE.len());
        self.preface_seen = true;
        Ok(())
    }

    /// The next packet, end of stream or timeout. The testee's PINGs are answered on the
    /// way (and still returned) when `answer_pings` is set.
    pub(super) fn next(&mut self, deadline: Instant) -> Event {
        loop {
            if self.preface_seen && !self.inbuf.is_empty() {
                match Header::parse(&self.inbuf, u16::MAX) {
                    Ok(Status::Complete(h)) if self.inbuf.len() >= h.packet_len() => {
                        let bytes: Vec<u8> = self.inbuf.drain(..h.packet_len()).collect();
                        let payload = bytes::Bytes::copy_from_slice(&bytes[h.len()..]);
                        let packet = Packet { header: h, payload };
                        if self.answer_pings && h.kind == Kind::Ping {
                            if let Ok(p) = Ping::parse(&packet.payload) {
                                let mut out = Vec::new();
                                Control::Pong(Pong {
                                    id: p.id,
                                    timestamp: p.timestamp,
                                    hold_us: 0,
                                })
                                .encode_packet(&mut out);
                                let _ = self.send(&out);
                            }
                        }
                        return Event::Packet(packet);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Event::Garbage(format!(
                            "the testee sent an invalid header: {}",
                            e.detail()
                        ))
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

//! Raw bytes for the attackers: packets built with the crate's encoders, written to
//! plain sockets without a state machine (an attacker obeys no rule).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use crate::{Codec, Deframer, ErrorCode, Header, Kind, Limits, Packet, Route, PREFACE};

/// The preface and a HELLO of `role`/`node_id` granting `credit_packets` of credit.
pub(crate) fn hello(role: Role, node_id: u16, credit_packets: u32) -> Vec<u8> {
    let limits = Limits {
        initial_credit_packets: credit_packets,
        ..Limits::default()
    };
    let mut v = PREFACE.to_vec();
    v.extend(hello_only(role, node_id, &limits));
    v
}

pub(crate) fn hello_only(role: Role, node_id: u16, limits: &Limits) -> Vec<u8> {
    ctl(Control::Hello(Hello::new(role, node_id, limits, 0x03)))
}

pub(crate) fn ctl(c: Control<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    c.encode_packet(&mut v);
    v
}

pub(crate) fn data(route: Route, payload: &[u8]) -> Vec<u8> {
    packet(Header::data(route, 0), payload)
}

pub(crate) fn packet(header: Header, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            length: payload.len() as u16,
            ..header
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .to_vec()
}

/// DATA whose payload is `compressed`, marked with `codec`.
pub(crate) fn data_coded(route: Route, codec: Codec, compressed: &[u8]) -> Vec<u8> {
    let header = Header {
        codec,
        ..Header::data(route, 0)
    };
    packet(header, compressed)
}

/// DATA with the X flag set: a source the sender is not allowed to stamp (§7.4).
pub(crate) fn data_with_source(route: Route, source: u16, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        source: Some(source),
        ..Header::data(route, 0)
    };
    packet(header, payload)
}

pub(crate) fn ping(id: u64) -> Vec<u8> {
    ctl(Control::Ping(Ping { id, timestamp: 0 }))
}

pub(crate) fn pong(id: u64) -> Vec<u8> {
    ctl(Control::Pong(Pong {
        id,
        timestamp: 0,
        hold_us: 0,
    }))
}

pub(crate) fn credit(packets: u32, bytes: u32) -> Vec<u8> {
    ctl(Control::Credit(Credit { packets, bytes }))
}

pub(crate) fn goaway(code: ErrorCode) -> Vec<u8> {
    ctl(Control::Goaway(Goaway {
        code,
        delivered: 0,
        reason: "",
    }))
}

/// An ERROR report addressed to the receiver itself (destination 0): it becomes a
/// packet-error event there, which takes no credit.
pub(crate) fn error_to_receiver() -> Vec<u8> {
    let mut report = Vec::new();
    ErrorReport {
        code: ErrorCode::NO_ROUTE,
        header: &[0x10, 0, 0, 0, 0, 7, 0, 0],
        reason: "flood",
    }
    .encode(&mut report);
    packet(Header::control(Kind::Error, 0), &report)
}

/// Connects and writes `opening` (normally preface and HELLO).
pub(crate) fn open(addr: SocketAddr, opening: &[u8]) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    (&s).write_all(opening)?;
    Ok(s)
}

/// Writes `chunk` again and again until `deadline`, the peer closing, or `max_bytes`;
/// returns the bytes written. A write that blocks (the peer stopped reading) is retried
/// until the deadline. A partial write goes on from where it stopped, so the stream
/// stays a sequence of whole chunks (restarting the chunk cut a packet short and the
/// server saw garbage instead of the flood).
pub(crate) fn flood(s: &TcpStream, chunk: &[u8], deadline: Instant, max_bytes: u64) -> u64 {
    let mut written = 0u64;
    let mut at = 0;
    while Instant::now() < deadline && written < max_bytes && !chunk.is_empty() {
        let left = usize::try_from(max_bytes - written).unwrap_or(usize::MAX);
        let end = chunk.len().min(at + left);
        match (&*s).write(&chunk[at..end]) {
            Ok(0) => break,
            Ok(n) => {
                written += n as u64;
                at = (at + n) % chunk.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    written
}

/// What the peer sent, read until EOF, an error or `deadline`.
#[derive(Default, Debug)]
pub(crate) struct Seen {
    pub(crate) data: Vec<Packet>,
    pub(crate) goaway: Option<(ErrorCode, u64)>,
    pub(crate) eof: bool,
}

/// Reads and deframes (after the preface) until EOF or `deadline`.
pub(crate) fn read_until(s: &TcpStream, deadline: Instant) -> Seen {
    let mut seen = Seen::default();
    let mut d = Deframer::new(u16::MAX);
    let mut preface = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return seen;
        }
        let _ = s.set_read_timeout(Some(left));
        let n = match (&*s).read(&mut buf) {
            Ok(0) => {
                seen.eof = true;
                return seen;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return seen
            }
            Err(_) => {
                seen.eof = true;
                return seen;
            }
        };
        let mut bytes = &buf[..n];
        let skip = (PREFACE.len() - preface).min(bytes.len());
        preface += skip;
        bytes = &bytes[skip..];
        d.extend(bytes);
        while let Ok(Some(p)) = d.next_packet() {
            match p.header.kind {
                Kind::Data => seen.data.push(p),
                Kind::Goaway => {
                    if let Ok(g) = Goaway::parse(&p.payload) {
                        seen.goaway = Some((g.code, g.delivered));
                    }
                }
                _ => {}
            }
        }
    }
}

/// A fast, deterministic byte source for garbage.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

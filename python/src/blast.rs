//! (Benchmark helper.) A plaintext Fleetwire load generator over a blocking-free std
//! socket: prebuilt DATA frames written as they are, the handshake and flow control
//! done by hand with the codec: the counterpart of the baselines' `sendall` of
//! prebuilt length-prefixed bytes, so that the server under test is what is measured.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire::control::{Control, Credit, Hello, Ping, Pong, Role};
use fleetwire::{Deframer, Kind, Limits, Packet, Route, PREFACE};

/// DATA packets per prebuilt chunk.
const CHUNK: u64 = 256;

/// How many `size`-byte packets `packets` and `bytes` of credit allow, up to [`CHUNK`].
fn credited(packets: u64, bytes: u64, size: usize) -> u64 {
    let by_bytes = bytes.checked_div(size as u64).unwrap_or(u64::MAX);
    packets.min(by_bytes).min(CHUNK)
}

fn proto(e: fleetwire::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{:?}", e))
}

/// Sends `size`-byte DATA packets to `route` for `run`, taking (and crediting back)
/// what comes back when `echo`; returns how many were written.
pub(crate) fn blast(addr: SocketAddr, size: usize, route: Route, run: Duration) -> io::Result<u64> {
    let mut sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    // Field by field: `Limits` is #[non_exhaustive].
    #[allow(clippy::field_reassign_with_default)]
    let limits = {
        let mut l = Limits::default();
        l.initial_credit_packets = 1 << 20;
        l.initial_credit_bytes = i32::MAX as u32;
        l
    };
    let mut wbuf = PREFACE.to_vec();
    Control::Hello(Hello::new(Role::Client, 0, &limits, 0)).encode_packet(&mut wbuf);
    sock.write_all(&wbuf)?;
    wbuf.clear();
    let mut pre = [0u8; 8];
    sock.read_exact(&mut pre)?;
    let mut d = Deframer::new(u16::MAX);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut cp, mut cb) = 'hello: loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        d.extend(&buf[..n]);
        while let Some(p) = d.next_packet().map_err(proto)? {
            if p.header.kind == Kind::Hello {
                let h = Hello::parse(&p.payload).map_err(proto)?;
                break 'hello (
                    u64::from(h.initial_credit_packets),
                    u64::from(h.initial_credit_bytes),
                );
            }
        }
    };
    let mut chunk = Vec::new();
    let pkt = Packet::data(route, Bytes::from(vec![b'x'; size]));
    for _ in 0..CHUNK {
        pkt.encode_to_vec(&mut chunk);
    }
    sock.set_nonblocking(true)?;
    let (mut wpos, mut sent, mut ctl) = (0usize, 0u64, Vec::new());
    let (mut got, mut got_bytes) = (0u32, 0u32);
    let deadline = Instant::now() + run;
    while Instant::now() < deadline {
        let mut progress = false;
        if wpos == wbuf.len() {
            wbuf.clear();
            wpos = 0;
            wbuf.append(&mut ctl);
            // As many packets as the credit allows, up to a chunk: waiting for a whole
            // chunk's credit stalls when the peer's window is about a chunk (1 KiB
            // echo: credit comes back only as the echoes are written).
            let k = credited(cp, cb, size);
            if k > 0 {
                cp -= k;
                cb -= k * size as u64;
                wbuf.extend_from_slice(&chunk[..chunk.len() / CHUNK as usize * k as usize]);
                sent += k;
            }
        }
        if wpos < wbuf.len() {
            match sock.write(&wbuf[wpos..]) {
                Ok(n) => {
                    wpos += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                progress = true;
                d.extend(&buf[..n]);
                while let Some(p) = d.next_packet().map_err(proto)? {
                    match p.header.kind {
                        Kind::Data => {
                            got += 1;
                            got_bytes += u32::from(p.header.length);
                        }
                        Kind::Credit => {
                            let c = Credit::parse(&p.payload).map_err(proto)?;
                            cp += u64::from(c.packets);
                            cb += u64::from(c.bytes);
                        }
                        Kind::Ping => {
                            let ping = Ping::parse(&p.payload).map_err(proto)?;
                            Control::Pong(Pong {
                                id: ping.id,
                                timestamp: ping.timestamp,
                                hold_us: 0,
                            })
                            .encode_packet(&mut ctl);
                        }
                        Kind::Goaway => return Ok(sent),
                        _ => {}
                    }
                }
                if got >= 256 {
                    Control::Credit(Credit {
                        packets: got,
                        bytes: got_bytes.max(1),
                    })
                    .encode_packet(&mut ctl);
                    (got, got_bytes) = (0, 0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if !progress {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_allows_up_to_a_chunk() {
        assert_eq!(credited(1 << 20, u64::MAX, 64), CHUNK);
        assert_eq!(credited(10, 1 << 30, 64), 10);
        assert_eq!(credited(1000, 5 * 1024 + 3, 1024), 5);
        assert_eq!(credited(1000, 100, 0), CHUNK);
        assert_eq!(credited(0, 1 << 30, 64), 0);
    }
}

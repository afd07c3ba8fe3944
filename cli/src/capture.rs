//! pcap and pcapng captures for `fleetwire inspect`: the payload of every TCP stream in
//! the capture, one per direction, reassembled by sequence number (retransmissions and
//! reordering handled; a gap ends the stream there).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

/// One direction of a TCP connection.
pub(crate) struct TcpStream {
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    /// The payload bytes in order, up to the first gap.
    pub(crate) bytes: Vec<u8>,
    /// Bytes missing from the capture after `bytes` (0: none).
    pub(crate) gap: u64,
}

/// Whether `input` starts like a pcap or pcapng file.
pub(crate) fn is_capture(input: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a], // pcapng section header
    ];
    input.len() >= 4 && MAGICS.iter().any(|m| input[..4] == m[..])
}

#[derive(Default)]
struct Direction {
    /// The sequence number of the first payload byte.
    base: Option<u32>,
    /// Payload by offset from `base`.
    segments: BTreeMap<u64, Vec<u8>>,
}

/// Every TCP stream of the capture, in order of first appearance.
pub(crate) fn tcp_streams(input: &[u8]) -> Result<Vec<TcpStream>, String> {
    let mut order: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut dirs: BTreeMap<(SocketAddr, SocketAddr), Direction> = BTreeMap::new();
    let mut frame = |link: DataLink, data: &[u8]| {
        let Some((from, to, seq, syn, payload)) = tcp_segment(link, data) else {
            return;
        };
        let dir = dirs.entry((from, to)).or_insert_with(|| {
            order.push((from, to));
            Direction::default()
        });
        let base = *dir
            .base
            .get_or_insert(if syn { seq.wrapping_add(1) } else { seq });
        if payload.is_empty() {
            return;
        }
        let offset = u64::from(seq.wrapping_sub(base));
        let slot = dir.segments.entry(offset).or_default();
        if payload.len() > slot.len() {
            *slot = payload.to_vec(); // a retransmission may carry more
        }
    };
    if input.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut reader = PcapNgReader::new(input).map_err(|e| format!("pcapng: {e}"))?;
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.map_err(|e| format!("pcapng: {e}"))? {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(p) => {
                    if let Some(link) = links.get(p.interface_id as usize) {
                        frame(*link, &p.data);
                    }
                }
                Block::SimplePacket(p) => {
                    if let Some(link) = links.first() {
                        frame(*link, &p.data);
                    }
                }
                _ => {}
            }
        }
    } else {
        let mut reader = PcapReader::new(input).map_err(|e| format!("pcap: {e}"))?;
        let link = reader.header().datalink;
        while let Some(packet) = reader.next_packet() {
            let packet = packet.map_err(|e| format!("pcap: {e}"))?;
            frame(link, &packet.data);
        }
    }
    Ok(order
        .into_iter()
        .map(|key| {
            let dir = &dirs[&key];
            let (bytes, gap) = assemble(dir);
            TcpStream {
                from: key.0,
                to: key.1,
                bytes,
                gap,
            }
        })
        .collect())
}

/// The bytes from offset 0 up to the first gap, and the gap's size.
fn assemble(dir: &Direction) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    for (&offset, data) in &dir.segments {
        let at = out.len() as u64;
        if offset > at {
            return (out, offset - at);
        }
        let skip = (at - offset) as usize;
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
        }
    }
    (out, 0)
}

/// (from, to, sequence number, SYN, payload) of a TCP segment.
fn tcp_segment(link: DataLink, data: &[u8]) -> Option<(SocketAddr, SocketAddr, u32, bool, &[u8])> {
    let sliced = match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
        // BSD loopback: a 4-byte address family, then IP
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?),
        _ => return None,
    }
    .ok()?;
    let (src, dst): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    Some((
        SocketAddr::new(src, tcp.source_port()),
        SocketAddr::new(dst, tcp.destination_port()),
        tcp.sequence_number(),
        tcp.syn(),
        tcp.payload(),
    ))
}

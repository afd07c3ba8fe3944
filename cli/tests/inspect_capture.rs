//! `fleetwire inspect` on pcap and pcapng captures: each TCP stream reassembled (out of
//! order segments, retransmissions, a packet split across segments) and decoded.

use std::borrow::Cow;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use etherparse::PacketBuilder;
use fleetwire::control::{Control, Goaway, Hello, Ping, Pong, Role};
use fleetwire::{ErrorCode, Header, Limits, Route, PREFACE};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

const CLIENT: u16 = 40000;
const NODE: u16 = 7400;

fn client_stream() -> Vec<u8> {
    let mut w = PREFACE.to_vec();
    Control::Hello(Hello::new(Role::Client, 0, &Limits::default(), 3)).encode_packet(&mut w);
    Control::Ping(Ping {
        id: 7,
        timestamp: 99,
    })
    .encode_packet(&mut w);
    Header::data(Route::new(0, 1, 2), 3).encode_to_vec(&mut w);
    w.extend_from_slice(b"abc");
    Control::Goaway(Goaway {
        code: ErrorCode::NO_ERROR,
        delivered: 0,
        reason: "bye",
    })
    .encode_packet(&mut w);
    w
}

fn node_stream() -> Vec<u8> {
    let mut w = PREFACE.to_vec();
    Control::Hello(Hello::new(Role::Node, 2, &Limits::default(), 3)).encode_packet(&mut w);
    Control::Pong(Pong {
        id: 7,
        timestamp: 99,
        hold_us: 1,
    })
    .encode_packet(&mut w);
    w
}

/// Ethernet/IPv4/TCP frames: handshake, then the streams in chunks of 5 bytes, the
/// client's sent out of order with one chunk retransmitted.
fn frames() -> Vec<Vec<u8>> {
    let tcp = |from: u16, to: u16, seq: u32, syn: bool, data: &[u8]| {
        let b = PacketBuilder::ethernet2([0; 6], [0; 6]).ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64);
        let b = b.tcp(from, to, seq, 65535);
        let b = if syn { b.syn() } else { b.psh().ack(1) };
        let mut out = Vec::new();
        b.write(&mut out, data).unwrap();
        out
    };
    let mut frames = vec![
        tcp(CLIENT, NODE, 999, true, &[]),
        tcp(NODE, CLIENT, 4999, true, &[]),
    ];
    let c: Vec<_> = client_stream().chunks(5).map(<[u8]>::to_vec).collect();
    let n: Vec<_> = node_stream().chunks(5).map(<[u8]>::to_vec).collect();
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.swap(1, 2); // out of order
    order.insert(4, 3); // a retransmission
    for (k, i) in order.into_iter().enumerate() {
        frames.push(tcp(CLIENT, NODE, 1000 + 5 * i as u32, false, &c[i]));
        if let Some(chunk) = n.get(k) {
            frames.push(tcp(NODE, CLIENT, 5000 + 5 * k as u32, false, chunk));
        }
    }
    for (k, chunk) in n.iter().enumerate().skip(c.len()) {
        frames.push(tcp(NODE, CLIENT, 5000 + 5 * k as u32, false, chunk));
    }
    frames
}

fn pcap() -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    for (i, f) in frames().iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    w.into_writer()
}

fn pcapng() -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0))
        .unwrap();
    for (i, f) in frames().iter().enumerate() {
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(i as u64),
            original_len: f.len() as u32,
            data: Cow::Borrowed(f),
            options: vec![],
        };
        w.write_pcapng_block(block).unwrap();
    }
    w.into_inner()
}

fn inspect(input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args(["inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap(),
        text(out.stdout),
        text(out.stderr),
    )
}

fn check(code: i32, out: &str, err: &str) {
    assert_eq!(code, 0, "{out}{err}");
    let c2n = out.find("== 127.0.0.1:40000 -> 127.0.0.1:7400").expect(out);
    let n2c = out.find("== 127.0.0.1:7400 -> 127.0.0.1:40000").expect(out);
    let (client, node) = if c2n < n2c {
        (&out[c2n..n2c], &out[n2c..])
    } else {
        (&out[c2n..], &out[n2c..c2n])
    };
    for kind in ["PREFACE", "HELLO", "PING", "DATA", "GOAWAY"] {
        assert!(
            client.contains(kind),
            "{kind} in the client's stream: {client}"
        );
    }
    for kind in ["PREFACE", "HELLO", "PONG"] {
        assert!(node.contains(kind), "{kind} in the node's stream: {node}");
    }
    assert!(!node.contains("GOAWAY"));
}

#[test]
fn pcap_streams_are_reassembled_and_decoded() {
    let (code, out, err) = inspect(&pcap());
    println!("{out}");
    check(code, &out, &err);
}

#[test]
fn pcapng_streams_are_reassembled_and_decoded() {
    let (code, out, err) = inspect(&pcapng());
    check(code, &out, &err);
}

#[test]
fn a_capture_without_fleetwire_fails_clearly() {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    let b = PacketBuilder::ethernet2([0; 6], [0; 6]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut f = Vec::new();
    b.tcp(1, 443, 1, 100)
        .write(&mut f, &[0x16, 3, 1, 0, 5])
        .unwrap();
    w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, &f))
        .unwrap();
    let (code, _, err) = inspect(&w.into_writer());
    assert_eq!(code, 1);
    assert!(err.contains("not Fleetwire (first byte 0x16)"), "{err}");
}

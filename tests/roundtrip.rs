//! Property tests: decode∘encode is the identity on structured values, and encode∘decode
//! reproduces canonical input byte for byte (spec §4, §5).

use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use fleetwire::{Codec, Deframer, ErrorCode, Header, Kind, PacketRef, Route, Status};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::None), Just(Codec::Snappy), Just(Codec::Zlib)]
}

/// Any header a conforming sender may write (hint bits included: receivers keep them).
fn header() -> impl Strategy<Value = Header> {
    let data = (
        codec(),
        any::<bool>(),
        0u8..4,
        any::<u16>(),
        any::<(u16, u8, u8)>(),
        proptest::option::of(0u16..0xFFFF),
    )
        .prop_map(
            |(codec, nc, hints, length, (node, service, channel), source)| Header {
                kind: Kind::Data,
                never_compress: nc && codec == Codec::None,
                codec,
                hints,
                length,
                route: Route::new(node, service, channel),
                source,
            },
        );
    let control = (1u8..6, 0u8..4, any::<u16>()).prop_map(|(k, hints, length)| Header {
        hints,
        ..Header::control(Kind::from_u4(k).unwrap(), length)
    });
    prop_oneof![data, control]
}

fn hello() -> impl Strategy<Value = (Role, u16, u16, u8, u16, Vec<u8>)> {
    (
        prop_oneof![Just(Role::Client), Just(Role::Node), Just(Role::Proxy)],
        1u16..0xFFFF,
        any::<u16>(),
        any::<u8>(),
        1024u16..=u16::MAX,
        proptest::collection::vec(any::<u8>(), 0..64),
    )
}

proptest! {
    #[test]
    fn header_encode_then_parse_is_identity(h in header()) {
        // trace: hdr.order
        let mut buf = [0u8; Header::MAX_LEN];
        let n = h.encode(&mut buf);
        prop_assert_eq!(n, h.len());
        prop_assert_eq!(Header::parse(&buf[..n], u16::MAX), Ok(Status::Complete(h)));
    }

    #[test]
    fn header_parse_then_encode_is_byte_exact(bytes in proptest::array::uniform10(any::<u8>())) {
        if let Ok(Status::Complete(h)) = Header::parse(&bytes, u16::MAX) {
            let mut buf = [0u8; Header::MAX_LEN];
            let n = h.encode(&mut buf);
            prop_assert_eq!(&buf[..n], &bytes[..n]);
        }
    }

    #[test]
    fn stream_of_packets_round_trips_at_any_split(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            Header::data(Route::new(i as u16, 1, 2), p.len() as u16).encode_to_vec(&mut wire);
            wire.extend_from_slice(p);
        }
        let cut = cut.index(wire.len() + 1);
        let mut d = Deframer::new(u16::MAX);
        let mut got = Vec::new();
        d.extend(&wire[..cut]);
        while let Some(p) = d.next_packet().unwrap() { got.push(p.payload.to_vec()); }
        d.extend(&wire[cut..]);
        while let Some(p) = d.next_packet().unwrap() { got.push(p.payload.to_vec()); }
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn packet_parse_then_encode_is_byte_exact(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Status::Complete((pkt, rest))) = PacketRef::parse(&bytes, u16::MAX) {
            let mut out = Vec::new();
            pkt.to_packet().encode_to_vec(&mut out);
            prop_assert_eq!(&out[..], &bytes[..bytes.len() - rest.len()]);
        }
    }

    #[test]
    fn hello_round_trips((role, id, peer_id, codecs, max_payload, ext) in hello()) {
        let limits = fleetwire::Limits::default().with_max_payload(max_payload);
        let node_id = if role == Role::Client { 0 } else { id };
        let hello = Hello { peer_id, extensions: &ext, ..Hello::new(role, node_id, &limits, codecs) };
        let mut payload = Vec::new();
        hello.encode(&mut payload);
        prop_assert_eq!(Hello::parse(&payload), Ok(hello));
    }

    #[test]
    fn control_round_trips(a in any::<u64>(), b in any::<u64>(), c in any::<u32>(), code in any::<u16>(), reason in "[a-zé]{0,80}") {
        let header = [0x10, 0, 0, 0, 0, 1, 0, 0];
        let values = [
            Control::Ping(Ping { id: a, timestamp: b }),
            Control::Pong(Pong { id: a, timestamp: b, hold_us: c }),
            Control::Goaway(Goaway { code: ErrorCode(code), delivered: a, reason: &reason }),
            Control::Credit(Credit { packets: c | 1, bytes: c }),
            Control::Error(ErrorReport { code: ErrorCode(code), header: &header, reason: &reason }),
        ];
        for v in values {
            let mut wire = Vec::new();
            v.encode_packet(&mut wire);
            let Ok(Status::Complete((pkt, rest))) = PacketRef::parse(&wire, u16::MAX) else {
                return Err(TestCaseError::fail("control packet did not parse"));
            };
            prop_assert!(rest.is_empty());
            prop_assert_eq!(Control::parse(pkt.header.kind, pkt.payload), Ok(v));
        }
    }

    #[test]
    fn control_parse_then_encode_is_byte_exact(kind in 1u8..7, payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let kind = Kind::from_u4(kind).unwrap();
        if let Ok(c) = Control::parse(kind, &payload) {
            let mut out = Vec::new();
            c.encode(&mut out);
            prop_assert_eq!(out, payload);
        }
    }
}

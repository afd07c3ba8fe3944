//! Integration tests of the connection state machine through `Pair` and a hand-wired
//! three-party proxy setup: handshakes, round trips, credit, shutdown, and a proptest of
//! random operation sequences between two correct peers.

use std::time::Duration;

use bytes::Bytes;
use fleetwire::connection::{Config, Connection, Event, Pair, SendError, SendOptions};
use fleetwire::{Codec, ErrorCode, Route};
use proptest::prelude::*;

fn data_events(events: &[Event]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn closed(events: &[Event]) -> Option<(ErrorCode, bool, Option<u64>)> {
    events.iter().find_map(|e| match e {
        Event::Closed {
            code,
            by_peer,
            delivered,
            ..
        } => Some((*code, *by_peer, *delivered)),
        _ => None,
    })
}

#[test]
fn handshake_client_first() {
    let mut pair = Pair::client_server();
    pair.a_to_b();
    assert!(pair.b.is_established() && !pair.a.is_established());
    pair.b_to_a();
    assert!(pair.a.is_established());
    assert_eq!(pair.drive(), 0, "nothing else to say");
}

#[test]
fn handshake_server_first() {
    let mut pair = Pair::client_server();
    pair.b_to_a();
    assert!(pair.a.is_established() && !pair.b.is_established());
    pair.a_to_b();
    assert!(pair.b.is_established());
}

#[test]
fn handshake_simultaneous_between_nodes() {
    let mut pair = Pair::new(Config::node(1), Config::node(2));
    pair.drive();
    let (a, b) = (pair.events_a(), pair.events_b());
    assert!(matches!(&a[..], [Event::Established { peer }] if peer.node_id == 2));
    assert!(matches!(&b[..], [Event::Established { peer }] if peer.node_id == 1));
}

#[test]
fn handshake_one_byte_at_a_time() {
    let mut pair = Pair::client_server();
    pair.set_chunker(|_| 1);
    pair.drive();
    assert!(pair.a.is_established() && pair.b.is_established());
    pair.a
        .send_data(Route::new(0, 1, 2), b"split", SendOptions::default())
        .unwrap();
    pair.drive();
    assert_eq!(
        data_events(&pair.events_b()),
        [Bytes::from_static(b"split")]
    );
}

#[test]
fn data_round_trip_both_ways_keeps_order_and_route() {
    let server = Config::node(1).with_peer_id(40);
    let mut pair = Pair::new(Config::client(), server);
    pair.drive();
    for i in 0..20u8 {
        let payload = vec![i; usize::from(i) * 50];
        pair.a
            .send_data(Route::new(0, i, 255 - i), &payload, SendOptions::default())
            .unwrap();
        pair.b
            .send_data(Route::new(40, 0, i), &payload, SendOptions::default())
            .unwrap();
    }
    pair.drive();
    let at_b = pair.events_b();
    let at_a = pair.events_a();
    for (events, from) in [(&at_b, 40), (&at_a, 1)] {
        let got: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Data {
                    source,
                    route,
                    payload,
                    ..
                } => Some((*source, *route, payload.len())),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|g| g.0 == from));
        assert_eq!(got[3].2, 150);
    }
    assert!(matches!(&at_b[4], Event::Data { route, .. } if *route == Route::new(0, 3, 252)));
}

#[cfg(feature = "compression")]
#[test]
fn compressed_round_trip_is_transparent() {
    let mut pair = Pair::client_server();
    pair.drive();
    let text = b"position update: x=10 y=20 z=30; ".repeat(40);
    for codec in [Codec::Snappy, Codec::Zlib, Codec::None] {
        pair.a
            .send_data(Route::default(), &text, SendOptions::compressed(codec))
            .unwrap();
    }
    let moved = pair.drive();
    assert!(moved < 3 * text.len(), "two of three were compressed");
    let got = data_events(&pair.events_b());
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|p| p[..] == text[..]));
}

#[test]
fn never_compress_flag_reaches_the_receiver() {
    let mut pair = Pair::client_server();
    pair.drive();
    let opts = SendOptions {
        never_compress: true,
        codec: Codec::Zlib,
    };
    pair.a.send_data(Route::default(), &[7; 500], opts).unwrap();
    pair.drive();
    let events = pair.events_b();
    assert!(
        matches!(&events[1], Event::Data { never_compress: true, payload, .. } if payload.len() == 500)
    );
}

#[test]
fn small_window_transfer_progresses_as_receiver_consumes() {
    let mut server = Config::node(1);
    server.limits.max_payload = 1024;
    server.limits.initial_credit_packets = 4;
    server.limits.initial_credit_bytes = 1024;
    let mut pair = Pair::new(Config::client(), server);
    pair.drive();
    pair.events_b();
    let mut sent = 0usize;
    let mut received = 0usize;
    for _round in 0..1000 {
        while sent < 200 {
            match pair
                .a
                .send_data(Route::default(), &[1; 300], SendOptions::default())
            {
                Ok(()) => sent += 1,
                Err(SendError::NoCredit) => break,
                Err(e) => panic!("{e}"),
            }
        }
        pair.drive();
        received += data_events(&pair.events_b()).len();
        pair.drive();
        if received == 200 {
            break;
        }
    }
    assert_eq!(received, 200);
    assert!(pair.a.is_established() && pair.b.is_established());
}

#[test]
fn goaway_reports_how_many_data_packets_were_delivered() {
    let mut pair = Pair::client_server();
    pair.drive();
    for _ in 0..5 {
        pair.a
            .send_data(Route::default(), b"x", SendOptions::default())
            .unwrap();
    }
    pair.drive();
    let now = pair.now;
    pair.b.close(now, "shutting down");
    // DATA the client queues before seeing the GOAWAY is discarded by the server
    pair.a
        .send_data(Route::default(), b"late", SendOptions::default())
        .unwrap();
    pair.drive();
    assert_eq!(
        closed(&pair.events_a()),
        Some((ErrorCode::NO_ERROR, true, Some(5)))
    );
    let b_events = pair.events_b();
    assert_eq!(data_events(&b_events).len(), 5);
    assert_eq!(
        closed(&b_events),
        Some((ErrorCode::NO_ERROR, false, Some(0)))
    );
}

#[test]
fn simultaneous_close_exchanges_one_goaway_each() {
    let mut pair = Pair::client_server();
    pair.drive();
    pair.a
        .send_data(Route::default(), b"a1", SendOptions::default())
        .unwrap();
    pair.b
        .send_data(Route::default(), b"b1", SendOptions::default())
        .unwrap();
    let now = pair.now;
    pair.a.close(now, "a done");
    pair.b.close(now, "b done");
    pair.drive();
    let (a, b) = (pair.events_a(), pair.events_b());
    // each GOAWAY was written before the other side's DATA arrived
    assert_eq!(closed(&a), Some((ErrorCode::NO_ERROR, false, Some(0))));
    assert_eq!(closed(&b), Some((ErrorCode::NO_ERROR, false, Some(0))));
    assert!(data_events(&a).is_empty() && data_events(&b).is_empty());
}

#[test]
fn connection_error_reaches_peer_as_goaway() {
    let mut pair = Pair::client_server();
    pair.drive();
    pair.b.handle_input(pair.now, &[0x1F, 0, 0, 0, 0, 0, 0, 0]); // as if from the client
    pair.drive();
    assert_eq!(
        closed(&pair.events_b()),
        Some((ErrorCode::UNKNOWN_KIND, false, None))
    );
    assert_eq!(
        closed(&pair.events_a()),
        Some((ErrorCode::UNKNOWN_KIND, true, Some(0)))
    );
}

#[test]
fn idle_peers_stay_connected_through_keepalives() {
    let mut pair = Pair::client_server();
    pair.drive();
    for _ in 0..200 {
        pair.advance(Duration::from_secs(1));
        pair.drive();
    }
    assert!(pair.a.is_established() && pair.b.is_established());
    assert!(pair
        .events_a()
        .iter()
        .any(|e| matches!(e, Event::Pong { .. })));
}

/// client —— proxy(9) —— node(2): the proxy forwards by header and stamps the source.
#[test]
fn proxy_forwards_between_client_and_node() {
    let mut ingress = Pair::new(Config::client(), Config::proxy(9).with_peer_id(300));
    let mut egress = Pair::new(Config::proxy(9), Config::node(2).with_trust_source(true));
    ingress.drive();
    egress.drive();
    ingress.events_a();
    ingress.events_b();
    egress.events_a();
    egress.events_b();
    ingress
        .a
        .send_data(Route::new(2, 1, 3), b"hello node", SendOptions::default())
        .unwrap();
    ingress
        .a
        .send_data(Route::new(8, 1, 3), b"nobody", SendOptions::default())
        .unwrap();
    ingress.drive();
    for event in ingress.events_b() {
        let Event::Forward { packet, received } = event else {
            continue;
        };
        if packet.header.route.node == 2 {
            egress.a.forward(&packet).unwrap();
        } else {
            ingress.b.report_unroutable(&received, ErrorCode::NO_ROUTE);
        }
    }
    egress.drive();
    ingress.drive();
    let at_node = egress.events_b();
    assert!(
        matches!(&at_node[..], [Event::Data { source: 300, route, payload, .. }]
        if *route == Route::new(2, 1, 3) && &payload[..] == b"hello node")
    );
    let at_client = ingress.events_a();
    assert!(at_client.iter().any(|e| matches!(
        e,
        Event::PacketError {
            code: ErrorCode::NO_ROUTE,
            source: 9,
            ..
        }
    )));
    // the reply goes back to the attributed id, through the proxy
    egress
        .b
        .send_data(Route::new(300, 0, 0), b"hi 300", SendOptions::default())
        .unwrap();
    egress.drive();
    let Some(Event::Forward { packet, .. }) = egress.a.poll_event() else {
        panic!()
    };
    assert_eq!(packet.header.source, Some(2));
    ingress.b.forward(&packet).unwrap();
    // the client does not trust the proxy's stamp unless configured to
    ingress.b_to_a();
    assert_eq!(
        closed(&ingress.events_a()),
        Some((ErrorCode::SOURCE_FORGED, false, None))
    );
    let client = Config::client().with_trust_source(true);
    let mut trusted = Pair::new(client, Config::proxy(9).with_peer_id(300));
    trusted.drive();
    trusted.events_a();
    trusted.drive();
    trusted.b.forward(&packet).unwrap();
    trusted.drive();
    assert!(matches!(
        &trusted.events_a()[..],
        [Event::Data { source: 2, .. }]
    ));
}

// ---- random operation sequences between two correct peers ----

#[derive(Clone, Debug)]
enum Op {
    Send {
        from_a: bool,
        len: usize,
        channel: u8,
        codec: u8,
        secret: bool,
    },
    Ping {
        from_a: bool,
    },
    Poll {
        from_a: bool,
        n: usize,
    },
    Drive,
    Advance {
        ms: u64,
    },
    Close {
        from_a: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), prop_oneof![1 => Just(0usize), 19 => 1usize..1500], any::<u8>(), 0u8..3, any::<bool>())
            .prop_map(|(from_a, len, channel, codec, secret)| Op::Send { from_a, len, channel, codec, secret }),
        1 => any::<bool>().prop_map(|from_a| Op::Ping { from_a }),
        3 => (any::<bool>(), 0usize..8).prop_map(|(from_a, n)| Op::Poll { from_a, n }),
        3 => Just(Op::Drive),
        1 => (0u64..3000).prop_map(|ms| Op::Advance { ms }),
        1 => prop::bool::weighted(0.5).prop_map(|from_a| Op::Close { from_a }),
    ]
}

fn config(is_client: bool, window: Option<(u32, u32)>) -> Config {
    let mut c = if is_client {
        Config::client()
    } else {
        Config::node(1).with_peer_id(12)
    };
    if let Some((packets, bytes)) = window {
        c.limits.max_payload = 1024;
        c.limits.initial_credit_packets = packets;
        c.limits.initial_credit_bytes = bytes;
    }
    c
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 7 == 0 { seed } else { (i / 13) as u8 })
        .collect()
}

fn poll(c: &mut Connection, n: usize, log: &mut Vec<Event>) {
    for _ in 0..n {
        match c.poll_event() {
            Some(e) => log.push(e),
            None => break,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn two_correct_peers_never_produce_a_protocol_error(
        ops in prop::collection::vec(op(), 1..80),
        window_a in prop::option::of((1u32..8, 1024u32..8192)),
        window_b in prop::option::of((1u32..8, 1024u32..8192)),
        chunk in prop::option::of(1usize..40),
    ) {
        let mut pair = Pair::new(config(true, window_a), config(false, window_b));
        if let Some(max) = chunk {
            let mut n = 0;
            pair.set_chunker(move |_| { n = n % max + 1; n });
        }
        pair.drive();
        let (mut log_a, mut log_b) = (Vec::new(), Vec::new());
        let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Send { from_a, len, channel, codec, secret } => {
                    let (conn, sent) = if from_a { (&mut pair.a, &mut sent_a) } else { (&mut pair.b, &mut sent_b) };
                    let bytes = payload(len, i as u8);
                    let opts = SendOptions { codec: Codec::from_bits(codec).unwrap(), never_compress: secret };
                    match conn.send_data(Route::new(0, 0, channel), &bytes, opts) {
                        Ok(()) => sent.push(bytes),
                        Err(SendError::NoCredit | SendError::Closing | SendError::TooLarge) => {}
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Ping { from_a } => {
                    let now = pair.now;
                    if from_a { pair.a.send_ping(now); } else { pair.b.send_ping(now); }
                }
                Op::Poll { from_a, n } => {
                    if from_a { poll(&mut pair.a, n, &mut log_a) } else { poll(&mut pair.b, n, &mut log_b) }
                }
                Op::Drive => { pair.drive(); }
                Op::Advance { ms } => {
                    pair.advance(Duration::from_millis(ms));
                    pair.drive();
                }
                Op::Close { from_a } => {
                    let now = pair.now;
                    if from_a { pair.a.close(now, "done") } else { pair.b.close(now, "done") }
                }
            }
        }
        pair.drive();
        poll(&mut pair.a, usize::MAX, &mut log_a);
        poll(&mut pair.b, usize::MAX, &mut log_b);
        for (log, peer_sent, peer_log) in [(&log_a, &sent_b, &log_b), (&log_b, &sent_a, &log_a)] {
            for e in log.iter() {
                prop_assert!(!matches!(e, Event::PacketError { .. } | Event::Forward { .. }), "{e:?}");
                if let Event::Closed { code, .. } = e {
                    prop_assert_eq!(*code, ErrorCode::NO_ERROR);
                }
            }
            // what arrived is a prefix of what the peer sent, in order, unchanged
            let got = data_events(log);
            prop_assert!(got.len() <= peer_sent.len());
            for (g, s) in got.iter().zip(peer_sent.iter()) {
                prop_assert_eq!(&g[..], &s[..]);
            }
            // and exactly as many as the receiver's GOAWAY said, when the peer saw it
            if let Some((_, _, Some(delivered))) = closed(peer_log) {
                prop_assert_eq!(got.len() as u64, delivered);
            }
        }
    }
}

//! Flow control, limits, routing, compression and shutdown.

use super::*;
use crate::connection::*;
use crate::control::{Credit, ErrorReport, Ping};
use crate::header::{Codec, Kind, Route};

// ---- flow control (§8) ----

fn small_window(packets: u32, bytes: u32) -> Config {
    let mut config = Config::node(1);
    config.limits.max_payload = 1024;
    config.limits.initial_credit_packets = packets;
    config.limits.initial_credit_bytes = bytes;
    config
}

#[test]
fn data_at_packet_credit_accepted_and_one_more_rejected() {
    let mut c = open_with(small_window(3, 4096), Role::Node, 2);
    let one = data(Route::default(), b"x");
    c.handle_input(T0, &one.repeat(3));
    assert!(!c.is_closed());
    assert_closes(c, &one, ErrorCode::FLOW_CONTROL);
}

#[test]
fn data_at_byte_credit_accepted_and_one_more_rejected() {
    let mut c = open_with(small_window(100, 2048), Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), &[1; 1024]));
    c.handle_input(T0, &data(Route::default(), &[1; 1023]));
    assert!(!c.is_closed());
    assert_closes(c, &data(Route::default(), &[1; 2]), ErrorCode::FLOW_CONTROL);
}

#[test]
fn excess_data_rejected_at_its_header_and_never_buffered() {
    let mut c = open_with(small_window(1, 1024), Role::Node, 2);
    let mut flood = data(Route::default(), &[1; 1000]);
    for _ in 0..100 {
        flood.extend(data(Route::default(), &[2; 1000]));
    }
    // the second packet's header alone decides
    c.handle_input(T0, &flood[..1008 + 8]);
    assert!(c.is_closed());
    assert_eq!(c.deframer.buffered(), 8);
    assert_eq!(closed_code(&mut c), Some(ErrorCode::FLOW_CONTROL));
}

#[test]
fn grants_credit_as_events_are_consumed() {
    let mut c = open_with(small_window(4, 8192), Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), b"ab").repeat(4));
    assert!(sent(&mut c).is_empty(), "nothing consumed yet");
    c.poll_event();
    assert!(sent(&mut c).is_empty());
    c.poll_event();
    let credit = sent(&mut c);
    assert_eq!(
        Credit::parse(&credit[0].payload),
        Ok(Credit {
            packets: 2,
            bytes: 4
        })
    );
    c.handle_input(T0, &data(Route::default(), b"ab").repeat(2));
    assert!(!c.is_closed(), "granted credit is usable");
}

#[test]
fn send_data_refuses_beyond_peer_credit() {
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(
        T0,
        &hello_with(Role::Node, 1, |h| {
            h.initial_credit_packets = 2;
            h.initial_credit_bytes = 1024;
            h.max_payload = 1024;
        }),
    );
    let opts = SendOptions::default();
    c.send_data(Route::default(), &[0; 1000], opts).unwrap();
    assert_eq!(
        c.send_data(Route::default(), &[0; 25], opts),
        Err(SendError::NoCredit)
    );
    c.send_data(Route::default(), &[0; 24], opts).unwrap();
    assert_eq!(
        c.send_data(Route::default(), &[], opts),
        Err(SendError::NoCredit)
    );
    assert_eq!(c.send_credit(), (0, 0));
    c.handle_input(
        T0,
        &ctl(Control::Credit(Credit {
            packets: 1,
            bytes: 0,
        })),
    );
    c.send_data(Route::default(), &[], opts).unwrap();
}

#[test]
fn send_data_respects_peer_max_payload() {
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(T0, &hello_with(Role::Node, 1, |h| h.max_payload = 1024));
    let opts = SendOptions::default();
    c.send_data(Route::default(), &[0; 1024], opts).unwrap();
    assert_eq!(
        c.send_data(Route::default(), &[0; 1025], opts),
        Err(SendError::TooLarge)
    );
    assert_eq!(
        sent(&mut c).len(),
        2,
        "HELLO, one DATA, nothing for the refused one"
    );
}

#[test]
fn credit_overflow_is_flow_control() {
    let mut c = node();
    let (p, b) = c.send_credit();
    c.handle_input(
        T0,
        &ctl(Control::Credit(Credit {
            packets: u32::MAX - p,
            bytes: 1,
        })),
    );
    assert!(!c.is_closed());
    let _ = b;
    assert_closes(
        c,
        &ctl(Control::Credit(Credit {
            packets: 1,
            bytes: 0,
        })),
        ErrorCode::FLOW_CONTROL,
    );
}

// ---- limits (§11, §12.3) ----

#[test]
fn empty_run_at_limit_accepted_and_one_more_is_flood() {
    let mut config = Config::node(1);
    config.limits.max_empty_run = 40;
    let empty = data(Route::default(), b"");
    let mut c = open_with(config.clone(), Role::Node, 2);
    c.handle_input(T0, &empty.repeat(40));
    c.handle_input(T0, &data(Route::default(), b"reset"));
    c.handle_input(T0, &empty.repeat(20));
    // control packets neither reset nor add to the count
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 1,
            timestamp: 0,
        })),
    );
    c.handle_input(
        T0,
        &ctl(Control::Credit(Credit {
            packets: 1,
            bytes: 1,
        })),
    );
    c.handle_input(T0, &empty.repeat(20));
    assert!(!c.is_closed());
    assert_closes(c, &empty, ErrorCode::FLOOD);
}

#[test]
fn packet_errors_at_budget_tolerated_and_one_more_closes() {
    let mut config = Config::node(1);
    config.limits.max_packet_errors = 3;
    config.services = Some(ServiceSet::from_iter([0]));
    let bad = data(Route::new(0, 9, 0), b"x");
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &bad.repeat(3));
    assert!(!c.is_closed());
    let reports = sent(&mut c);
    assert_eq!(reports.len(), 3);
    assert_eq!(
        error_report(&reports[0]),
        (ErrorCode::NO_SERVICE, Route::new(2, 0, 0))
    );
    assert_closes(c, &bad, ErrorCode::TOO_MANY_ERRORS);
}

fn ping(id: u64) -> Vec<u8> {
    ctl(Control::Ping(Ping { id, timestamp: 0 }))
}

// trace: limit.ping-rate
#[test]
fn ping_rate_at_limit_answered_and_one_more_is_flood() {
    let config = Config {
        max_ping_rate: 50,
        ..Config::node(1)
    };
    let mut c = open_with(config.clone(), Role::Node, 2);
    let fifty: Vec<u8> = (0..50).flat_map(ping).collect();
    c.handle_input(T0, &fifty);
    assert_eq!(
        sent(&mut c).len(),
        50,
        "every PING within the rate answered"
    );
    // a new one-second window starts over
    let t1 = Duration::from_secs(1);
    c.handle_input(t1, &fifty);
    assert_eq!(sent(&mut c).len(), 50);
    assert!(!c.is_closed());
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &fifty);
    assert_closes(c, &ping(51), ErrorCode::FLOOD);
}

/// An ERROR report for destination 0 becomes a PacketError event, which takes no credit.
fn error_to_us() -> Vec<u8> {
    let mut report = Vec::new();
    ErrorReport {
        code: ErrorCode::NO_ROUTE,
        header: &[0x10, 0, 0, 0, 0, 7, 0, 0],
        reason: "",
    }
    .encode(&mut report);
    raw(Header::control(Kind::Error, 0), &report)
}

// trace: error.rate
#[test]
fn queued_events_without_credit_at_limit_kept_and_one_more_is_flood() {
    let config = Config {
        max_queued_events: 100,
        ..Config::node(1)
    };
    // behind a DATA event the application does not take yet
    let mut c = open_with(config.clone(), Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), b"waits"));
    c.handle_input(T0, &error_to_us().repeat(100));
    assert!(!c.is_closed());
    assert_closes(c, &error_to_us(), ErrorCode::FLOOD);
    // taking the events makes room again
    let mut c = open_with(config, Role::Node, 2);
    for _ in 0..3 {
        c.handle_input(T0, &error_to_us().repeat(100));
        assert_eq!(events(&mut c).len(), 100);
    }
    assert!(!c.is_closed());
}

// trace: error.rate
#[test]
fn error_rate_at_limit_accepted_and_one_more_is_flood() {
    let config = Config {
        max_error_rate: 20,
        ..Config::node(1)
    };
    let mut c = open_with(config.clone(), Role::Client, 0);
    c.handle_input(T0, &error_to_us().repeat(20));
    assert_eq!(
        events(&mut c).len(),
        20,
        "every ERROR within the rate reported"
    );
    // a new one-second window starts over
    c.handle_input(Duration::from_secs(1), &error_to_us().repeat(20));
    assert_eq!(events(&mut c).len(), 20);
    assert!(!c.is_closed());
    let mut c = open_with(config.clone(), Role::Client, 0);
    c.handle_input(T0, &error_to_us().repeat(20));
    assert_closes(c, &error_to_us(), ErrorCode::FLOOD);
    // spec §5.7: not from a node, which relays others' reports (a proxy's UNREACHABLE
    // for every answer a client does not read would close the link otherwise)
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &error_to_us().repeat(100));
    assert_eq!(events(&mut c).len(), 100);
    assert!(!c.is_closed());
}

#[test]
fn small_payload_does_not_pin_its_read() {
    // one 1-byte DATA among 60 KiB of PINGs, in one read
    let config = Config {
        max_ping_rate: 0,
        ..Config::node(1)
    };
    let mut c = open_with(config, Role::Node, 2);
    let mut input = data(Route::default(), b"x");
    input.extend((0..3400).flat_map(ping));
    assert!(input.len() > 60_000);
    c.handle_input(T0, &input);
    let Some(Event::Data { payload, .. }) = c.poll_event() else {
        panic!("expected the DATA event")
    };
    let held = payload
        .try_into_mut()
        .expect("no other reference")
        .capacity();
    assert!(held < 1024, "a 1-byte payload holds {held} bytes");
}

#[test]
fn large_payloads_share_their_read() {
    let mut c = node();
    let mut input = data(Route::default(), &[7; 30_000]);
    input.extend(data(Route::default(), &[8; 30_000]));
    c.handle_input(T0, &input);
    let evs = events(&mut c);
    let Event::Data { payload: a, .. } = &evs[0] else {
        panic!()
    };
    let Event::Data { payload: b, .. } = &evs[1] else {
        panic!()
    };
    assert_eq!(a.as_ptr().wrapping_add(30_000 + 8), b.as_ptr(), "zero copy");
}

#[test]
fn a_read_of_many_packets_is_processed_in_order_and_stops_at_its_error() {
    // more packets in one read than one parsed run holds (RUN_PACKETS), given as Bytes:
    // every payload in order, each a slice of the read, then the invalid header closes
    let mut c = node();
    let mut input = Vec::new();
    for i in 0..(3 * super::super::recv::RUN_PACKETS as u16 + 5) {
        input.extend(data(Route::default(), &i.to_be_bytes().repeat(40)));
    }
    let good = input.len();
    let mut bad = Header::data(Route::default(), 0);
    bad.kind = Kind::Ping;
    bad.route = Route::new(1, 0, 0); // a routed control packet: BAD_CONTROL
    input.extend(raw(bad, &[0; 16]));
    input.extend(data(Route::default(), b"never"));
    let input = Bytes::from(input);
    c.handle_input_bytes(T0, input.clone());
    let evs = events(&mut c);
    let payloads: Vec<&Bytes> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Data { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(payloads.len(), 3 * super::super::recv::RUN_PACKETS + 5);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(
            &p[..],
            &(i as u16).to_be_bytes().repeat(40)[..],
            "packet {i}"
        );
        assert!(
            input[..good].as_ptr_range().contains(&p.as_ptr()),
            "packet {i} copied"
        );
    }
    assert!(matches!(
        evs.last(),
        Some(Event::Closed {
            code: ErrorCode::BAD_CONTROL,
            ..
        })
    ));
}

// ---- routing (§7.2, §7.3, §7.4) ----

#[test]
fn delivers_for_zero_and_own_id_else_no_route() {
    let mut c = node();
    c.handle_input(T0, &data(Route::new(0, 3, 4), b"a"));
    c.handle_input(T0, &data(Route::new(1, 3, 4), b"b"));
    c.handle_input(T0, &data(Route::new(5, 3, 4), b"c"));
    assert_eq!(events(&mut c).len(), 2);
    let out = sent(&mut c);
    assert_eq!(
        error_report(&out[0]),
        (ErrorCode::NO_ROUTE, Route::new(2, 0, 0))
    );
    let report = ErrorReport::parse(&out[0].payload).unwrap();
    assert_eq!(
        report.header,
        &data(Route::new(5, 3, 4), b"c")[..8],
        "header as received"
    );
}

#[test]
fn never_reports_an_error_about_an_error() {
    let mut c = node();
    let mut report = Vec::new();
    ErrorReport {
        code: ErrorCode::NO_ROUTE,
        header: &[0x10, 0, 0, 0, 0, 7, 0, 0],
        reason: "",
    }
    .encode(&mut report);
    c.handle_input(T0, &raw(Header::control(Kind::Error, 0), &report));
    assert!(matches!(
        &events(&mut c)[..],
        [Event::PacketError {
            code: ErrorCode::NO_ROUTE,
            source: 2,
            ..
        }]
    ));
    let mut for_other = raw(Header::control(Kind::Error, 0), &report);
    for_other[5] = 9; // destination node 9: not us, and we are no proxy
    c.handle_input(T0, &for_other);
    assert!(sent(&mut c).is_empty());
    assert!(!c.is_closed());
}

#[test]
fn proxy_stamps_and_forwards_foreign_packets() {
    let mut c = open_with(
        Config {
            peer_id: 77,
            ..Config::proxy(9)
        },
        Role::Client,
        0,
    );
    let wire = raw(
        Header {
            hints: 2,
            ..Header::data(Route::new(4, 5, 6), 0)
        },
        b"opaque",
    );
    c.handle_input(T0, &wire);
    let Some(Event::Forward { packet, received }) = c.poll_event() else {
        panic!()
    };
    assert_eq!(
        packet.header,
        Header {
            source: Some(77),
            ..received
        }
    );
    assert_eq!(&packet.payload[..], b"opaque");
    assert_eq!(received.hints, 2);
    c.report_unroutable(&received, ErrorCode::UNREACHABLE);
    let out = sent(&mut c);
    assert_eq!(
        error_report(&out[0]),
        (ErrorCode::UNREACHABLE, Route::new(77, 0, 0))
    );
}

#[cfg(not(feature = "compression"))]
#[test]
fn compressed_data_is_codec_not_negotiated_without_compression() {
    let mut c = node();
    c.handle_input(
        T0,
        &raw(
            Header {
                codec: Codec::Snappy,
                ..Header::data(Route::default(), 0)
            },
            b"\x01\x00a",
        ),
    );
    assert_eq!(
        error_report(&sent(&mut c)[0]).0,
        ErrorCode::CODEC_NOT_NEGOTIATED
    );
    assert!(events(&mut c).is_empty() && !c.is_closed());
}

#[cfg(feature = "compression")]
#[test]
fn decompression_failures_are_packet_errors() {
    let zlib = Header {
        codec: Codec::Zlib,
        ..Header::data(Route::default(), 0)
    };
    let deflate = |n: usize| {
        let mut out = Vec::new();
        crate::compress::Compressor::default()
            .compress(Codec::Zlib, &vec![0; n], &mut out)
            .unwrap();
        out
    };
    let mut config = Config {
        codecs: Codec::Zlib.hello_bit(),
        ..Config::node(1)
    };
    let mut c = open_with(config.clone(), Role::Node, 2);
    let snappy = Header {
        codec: Codec::Snappy,
        ..Header::data(Route::default(), 0)
    };
    c.handle_input(T0, &raw(snappy, b"\x01\x00a"));
    c.handle_input(T0, &raw(zlib, b"junk"));
    // 1 MiB of zeros: max_ratio × length is the smaller term
    c.handle_input(T0, &raw(zlib, &deflate(1 << 20)));
    let codes: Vec<ErrorCode> = sent(&mut c).iter().map(|p| error_report(p).0).collect();
    let expected = [
        ErrorCode::CODEC_NOT_NEGOTIATED,
        ErrorCode::DECOMPRESSION_FAILED,
        ErrorCode::RATIO_EXCEEDED,
    ];
    assert_eq!(codes, expected);
    assert!(events(&mut c).is_empty() && !c.is_closed());
    // max_decompressed the smaller term
    config.limits.max_decompressed = 1024;
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &raw(zlib, &deflate(2000)));
    assert_eq!(
        error_report(&sent(&mut c)[0]).0,
        ErrorCode::DECOMPRESSED_TOO_LARGE
    );
    c.handle_input(T0, &raw(zlib, &deflate(1024)));
    assert!(matches!(&events(&mut c)[..], [Event::Data { payload, .. }] if payload.len() == 1024));
}

#[cfg(feature = "compression")]
#[test]
fn compresses_when_peer_announced_the_codec() {
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(T0, &hello_with(Role::Node, 1, |h| h.codecs = 0x01));
    let text = b"fleetwire fleetwire fleetwire ".repeat(20);
    c.send_data(
        Route::default(),
        &text,
        SendOptions::compressed(Codec::Zlib),
    )
    .unwrap();
    c.send_data(
        Route::default(),
        &text,
        SendOptions::compressed(Codec::Snappy),
    )
    .unwrap();
    let secret = SendOptions {
        never_compress: true,
        ..SendOptions::compressed(Codec::Snappy)
    };
    c.send_data(Route::default(), &text, secret).unwrap();
    let out = sent(&mut c);
    let codecs: Vec<(Codec, bool)> = out[1..]
        .iter()
        .map(|p| (p.header.codec, p.header.never_compress))
        .collect();
    assert_eq!(
        codecs,
        [
            (Codec::None, false),
            (Codec::Snappy, false),
            (Codec::None, true)
        ]
    );
    assert!(out[2].payload.len() < text.len());
}

// trace: comp.threshold
#[cfg(feature = "compression")]
#[test]
fn compress_threshold_at_and_below_the_limit() {
    // Compressible payloads of threshold - 1 and threshold bytes: only the second is tried.
    let codec_of = |threshold: usize, len: usize| {
        let mut c = Connection::new(
            Config {
                compress_threshold: threshold,
                ..Config::client()
            },
            T0,
        );
        c.handle_input(T0, &hello_with(Role::Node, 1, |h| h.codecs = 0x01));
        let payload = vec![b'a'; len];
        c.send_data(
            Route::default(),
            &payload,
            SendOptions::compressed(Codec::Snappy),
        )
        .unwrap();
        sent(&mut c)[1].header.codec
    };
    let t = Config::COMPRESS_THRESHOLD;
    assert_eq!(codec_of(t, t - 1), Codec::None);
    assert_eq!(codec_of(t, t), Codec::Snappy);
    assert_eq!(codec_of(0, 32), Codec::Snappy);
    // Not smaller compressed: sent as it is, even with no threshold.
    assert_eq!(codec_of(0, 1), Codec::None);
}

// ---- shutdown (§6.4) ----

fn goaway(code: ErrorCode, delivered: u64, reason: &str) -> Vec<u8> {
    ctl(Control::Goaway(Goaway {
        code,
        delivered,
        reason,
    }))
}

#[test]
fn goaway_is_a_half_close_the_receiver_answers_its_data_then_its_goaway() {
    // trace: close.answer, close.answer-then-close, goaway.delivered
    let mut c = node();
    // the peer's last requests and its GOAWAY in one read (issue 11: 1,000 DATA then
    // GOAWAY used to lose every answer)
    let bytes = [
        data(Route::default(), b"x").repeat(2),
        goaway(ErrorCode::NO_ERROR, 5, "maintenance"),
    ]
    .concat();
    c.handle_input(T0, &bytes);
    assert!(!c.is_closed() && c.is_draining() && c.peer_closing());
    assert!(
        goaway_of(&sent(&mut c)).is_none(),
        "not answered before our DATA"
    );
    let evs = events(&mut c);
    assert_eq!(evs.len(), 3);
    assert_eq!(
        evs[2],
        Event::GoawayReceived {
            delivered: 5,
            reason: "maintenance".into()
        }
    );
    // spec §6.4: the answers may still be sent, until our own GOAWAY
    for _ in 0..2 {
        c.send_data(Route::default(), b"answer", SendOptions::default())
            .unwrap();
    }
    c.close(T0, "");
    let out = sent(&mut c);
    let kinds: Vec<Kind> = out.iter().map(|p| p.header.kind).collect();
    assert_eq!(kinds, [Kind::Data, Kind::Data, Kind::Goaway]);
    assert_eq!(goaway_of(&out), Some((ErrorCode::NO_ERROR, 2)));
    assert!(c.is_closed());
    let last = events(&mut c).pop();
    let expected = Event::Closed {
        code: ErrorCode::NO_ERROR,
        by_peer: true,
        reason: "maintenance".into(),
        delivered: Some(5),
    };
    assert_eq!(last, Some(expected));
    // nothing after our GOAWAY (§6.4 [[close.no-data-after]])
    assert!(c
        .send_data(Route::default(), b"late", SendOptions::default())
        .is_err());
}

#[test]
fn the_drain_timer_answers_a_goaway_the_application_never_answers() {
    // trace: close.answer
    let mut config = Config::node(1);
    config.limits.drain_timeout_ms = 5_000;
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), b"x"));
    c.handle_input(T0, &goaway(ErrorCode::NO_ERROR, 0, ""));
    c.handle_timeout(Duration::from_millis(4_999));
    assert!(!c.is_closed() && sent(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(Duration::from_millis(5_000)));
    c.handle_timeout(Duration::from_millis(5_000));
    assert!(c.is_closed());
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 1)));
    assert!(matches!(
        events(&mut c).pop(),
        Some(Event::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer: true,
            delivered: Some(0),
            ..
        })
    ));
}

#[test]
fn goaway_with_another_code_is_not_answered_and_reported_as_is() {
    for code in [ErrorCode(0x8123), ErrorCode::FLOOD] {
        let mut c = node();
        // the PING after it is not processed: closed at once
        let bytes = [
            goaway(code, 5, "maintenance"),
            ctl(Control::Ping(Ping {
                id: 1,
                timestamp: 0,
            })),
        ]
        .concat();
        c.handle_input(T0, &bytes);
        assert!(c.is_closed());
        assert!(sent(&mut c).is_empty(), "no answer, no PONG");
        let last = events(&mut c).pop();
        let expected = Event::Closed {
            code,
            by_peer: true,
            reason: "maintenance".into(),
            delivered: Some(5),
        };
        assert_eq!(last, Some(expected));
    }
}

#[test]
fn after_the_peers_goaway_data_is_unexpected_and_a_second_goaway_ignored() {
    // trace: close.answer-drain, state.permitted
    // the rest of the read that carried the GOAWAY is still processed (§6.4)
    let mut c = node();
    let bytes = [
        goaway(ErrorCode::NO_ERROR, 0, ""),
        goaway(ErrorCode::NO_ERROR, 0, "again"),
        ctl(Control::Ping(Ping {
            id: 4,
            timestamp: 0,
        })),
    ]
    .concat();
    c.handle_input(T0, &bytes);
    // a half-close: the PING is answered, the GOAWAY not yet
    let kinds: Vec<Kind> = sent(&mut c).iter().map(|p| p.header.kind).collect();
    assert_eq!(kinds, [Kind::Pong]);
    let goaways = events(&mut c)
        .iter()
        .filter(|e| matches!(e, Event::GoawayReceived { .. }))
        .count();
    assert_eq!(goaways, 1, "the second GOAWAY NO_ERROR is ignored");
    c.close(T0, "");
    let kinds: Vec<Kind> = sent(&mut c).iter().map(|p| p.header.kind).collect();
    assert_eq!(kinds, [Kind::Goaway], "one answer only");
    assert!(c.is_closed());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::NO_ERROR));

    let mut c = node();
    let bytes = [
        goaway(ErrorCode::NO_ERROR, 0, ""),
        data(Route::default(), b"after"),
    ]
    .concat();
    c.handle_input(T0, &bytes);
    let out = sent(&mut c);
    let codes: Vec<ErrorCode> = out
        .iter()
        .map(|p| Goaway::parse(&p.payload).unwrap().code)
        .collect();
    assert_eq!(
        codes,
        [ErrorCode::UNEXPECTED_PACKET],
        "DATA after the peer's GOAWAY, before we answered"
    );
    assert_eq!(closed_code(&mut c), Some(ErrorCode::UNEXPECTED_PACKET));

    let mut c = node();
    let bytes = [
        goaway(ErrorCode::NO_ERROR, 0, ""),
        goaway(ErrorCode::TIMEOUT, 0, "late"),
    ]
    .concat();
    c.handle_input(T0, &bytes);
    assert!(
        sent(&mut c).is_empty(),
        "a GOAWAY with an error code is not answered"
    );
    assert_eq!(closed_code(&mut c), Some(ErrorCode::TIMEOUT));
}

#[test]
fn error_goaway_answering_our_close_reports_its_code() {
    let mut c = node();
    c.close(T0, "bye");
    sent(&mut c);
    c.handle_input(T0, &goaway(ErrorCode::INTERNAL_ERROR, 0, "crash"));
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::INTERNAL_ERROR));
}

#[test]
fn goaway_is_permitted_before_hello_and_closes_at_once() {
    let mut c = Connection::new(Config::node(1), T0);
    sent(&mut c);
    let bytes = [
        PREFACE.to_vec(),
        goaway(ErrorCode::NO_ERROR, 0, "bye"),
        hello_with(Role::Node, 2, |_| {})[8..].to_vec(),
    ]
    .concat();
    c.handle_input(T0, &bytes);
    assert!(c.is_closed() && !c.is_established());
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 0)));
    assert_eq!(closed_code(&mut c), Some(ErrorCode::NO_ERROR));
    // with an error code: not answered
    let mut c = Connection::new(Config::node(1), T0);
    sent(&mut c);
    c.handle_input(
        T0,
        &[PREFACE.to_vec(), goaway(ErrorCode::BAD_HELLO, 0, "")].concat(),
    );
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::BAD_HELLO));
}

#[test]
fn close_sends_at_most_one_no_error_goaway() {
    let mut c = node();
    c.close(T0, "a");
    c.close(T0, "b");
    assert_eq!(sent(&mut c).len(), 1);
    // the peer's answer is not answered again
    c.handle_input(T0, &goaway(ErrorCode::NO_ERROR, 0, ""));
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::NO_ERROR));
}

#[test]
fn data_after_our_goaway_is_processed_with_its_packet_errors_and_credit() {
    // trace: close.half
    let mut config = Config::node(1);
    config.limits.initial_credit_packets = 3;
    config.services = Some(ServiceSet::from_iter([0]));
    let mut c = open_with(config, Role::Node, 2);
    c.close(T0, "bye");
    sent(&mut c);
    // unregistered service: NO_SERVICE, as in ESTABLISHED (never discarded for draining)
    c.handle_input(T0, &data(Route::new(0, 9, 0), b"x"));
    let out = sent(&mut c);
    assert_eq!(error_report(&out[0]).0, ErrorCode::NO_SERVICE);
    assert!(c.is_draining());
    assert_eq!(c.delivered(), 1);
    // credit keeps flowing while we wait for the peer's GOAWAY: 10 DATA through a
    // window of 3 packets
    for i in 0..10u8 {
        c.handle_input(T0, &data(Route::default(), &[i]));
        for e in events(&mut c) {
            assert!(matches!(e, Event::Data { .. }), "{e:?}");
        }
    }
    assert!(!c.is_closed(), "no FLOW_CONTROL: credit was granted back");
    assert_eq!(c.delivered(), 11);
}

#[test]
fn drain_timer_expiry_sends_nothing_even_when_idle_expired_later() {
    let mut config = Config::node(1);
    config.limits.idle_timeout_ms = 6_000;
    config.limits.drain_timeout_ms = 5_000;
    let mut c = open_with(config, Role::Node, 2);
    c.close(T0, "bye");
    sent(&mut c);
    // both expired by 7 s: the drain timer (5 s) first, so no TIMEOUT GOAWAY
    c.handle_timeout(Duration::from_secs(7));
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::NO_ERROR));
}

#[test]
fn eof_is_connection_lost_without_goaway() {
    let mut c = node();
    c.handle_input(T0, &data(Route::default(), b"x")[..5]);
    c.handle_eof(T0);
    assert!(c.is_closed());
    assert!(sent(&mut c).is_empty(), "CONNECTION_LOST is never sent");
    assert_eq!(closed_code(&mut c), Some(ErrorCode::CONNECTION_LOST));
    // before the handshake too
    let mut c = Connection::new(Config::client(), T0);
    sent(&mut c);
    c.handle_eof(T0);
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_code(&mut c), Some(ErrorCode::CONNECTION_LOST));
}

#[test]
fn eof_after_our_goaway_reports_its_code() {
    let mut c = node();
    c.close(T0, "bye");
    sent(&mut c);
    c.handle_eof(T0);
    assert!(sent(&mut c).is_empty());
    let last = events(&mut c).pop();
    assert!(matches!(
        last,
        Some(Event::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer: false,
            ..
        })
    ));
    // once closed, EOF changes nothing
    c.handle_eof(T0);
    assert!(events(&mut c).is_empty());
}

#[test]
fn eof_processes_expired_timers_first() {
    let mut c = Connection::new(Config::node(1), T0);
    sent(&mut c);
    c.handle_eof(Duration::from_secs(10));
    assert_eq!(
        goaway_of(&sent(&mut c)).map(|g| g.0),
        Some(ErrorCode::TIMEOUT)
    );
    assert_eq!(closed_code(&mut c), Some(ErrorCode::TIMEOUT));
}

#[test]
fn keeps_processing_data_after_own_goaway_until_the_peers() {
    // trace: close.half, close.no-data-after, goaway.delivered
    let mut c = node();
    c.handle_input(T0, &data(Route::default(), b"x").repeat(3));
    c.close(T0, "bye");
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 3)));
    assert_eq!(
        c.send_data(Route::default(), b"y", SendOptions::default()),
        Err(SendError::Closing)
    );
    // the peer's answers, sent before its own GOAWAY, are delivered
    c.handle_input(T0, &data(Route::default(), b"late"));
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 1,
            timestamp: 0,
        })),
    );
    assert_eq!(sent(&mut c).len(), 1, "PING still answered while draining");
    assert_eq!(c.delivered(), 4);
    c.handle_input(T0, &goaway(ErrorCode::NO_ERROR, 0, ""));
    let evs = events(&mut c);
    let payloads: Vec<&[u8]> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Data { payload, .. } => Some(&payload[..]),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [&b"x"[..], b"x", b"x", b"late"]);
    assert_eq!(
        evs.last(),
        Some(&Event::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer: false,
            reason: "bye".into(),
            delivered: Some(0)
        })
    );
    assert!(sent(&mut c).is_empty(), "no second GOAWAY");
}

#[test]
fn close_before_handshake_closes_at_once() {
    let mut c = Connection::new(Config::client(), T0);
    c.close(T0, "never mind");
    assert!(c.is_closed());
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 0)));
    // after the peer's preface, before its HELLO: the same
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(T0, &PREFACE);
    c.close(T0, "never mind");
    assert!(c.is_closed());
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 0)));
}

// ---- buffering (§11) ----

// trace: limit.buffer
#[test]
fn never_holds_more_than_one_incomplete_packet() {
    let mut config = Config::node(1);
    config.limits.max_payload = 1024;
    config.limits.initial_credit_packets = 1_048_576;
    config.limits.initial_credit_bytes = 2_147_483_647;
    let max_packet = 10 + 1024;
    let mut c = open_with(config, Role::Node, 2);
    // 1 MB of back-to-back DATA packets of every length, fed at once, then cut inside
    // a packet: only the incomplete tail is held, the rest became events
    let mut stream = Vec::new();
    let mut len = 0usize;
    while stream.len() < 1 << 20 {
        stream.extend(data(Route::default(), &vec![0xA5; len]));
        len = (len + 97) % 1025;
    }
    let whole = stream.len();
    stream.extend(&data(Route::default(), &[1; 1000])[..700]);
    c.handle_input(T0, &stream);
    assert!(!c.is_closed());
    assert_eq!(c.buffered(), 700);
    assert!(c.buffered() <= max_packet);
    let delivered = events(&mut c).len();
    assert!(delivered > 1000, "{delivered} packets, {whole} bytes");
    // one byte per read, and every split of one packet: never above one packet
    let one = data(Route::default(), &[7; 1024]);
    for b in &one {
        c.handle_input(T0, &[*b]);
        assert!(c.buffered() <= max_packet);
    }
    // a 1 MB blob that is not Fleetwire: closed at the first header, nothing held
    let mut c = open_with(Config::node(1), Role::Node, 2);
    c.handle_input(T0, &vec![0xEE; 1 << 20]);
    assert!(c.is_closed());
    assert!(c.buffered() <= 10 + usize::from(u16::MAX));
    // before the handshake the preface is at most 8 bytes
    let mut c = Connection::new(Config::node(1), T0);
    c.handle_input(T0, &PREFACE[..7]);
    assert_eq!(c.buffered(), 7);
}

// ---- flow control after packet errors (§8) ----

#[test]
fn data_discarded_by_a_packet_error_consumes_credit_and_is_granted_back() {
    let mut config = Config::node(1);
    config.limits.max_payload = 1024;
    config.limits.initial_credit_packets = 2;
    config.limits.initial_credit_bytes = 1024;
    config.limits.max_packet_errors = 100;
    config.services = Some(ServiceSet::from_iter([0]));
    let mut c = open_with(config, Role::Node, 2);
    // two discarded packets use the whole window; the credit comes back with no event
    // taken, so a full window fits again (§8 [[flow.no-deadlock]])
    for _ in 0..10 {
        c.handle_input(T0, &data(Route::new(0, 9, 0), &[1; 600]));
        c.handle_input(T0, &data(Route::new(0, 9, 0), &[1; 424]));
        assert!(!c.is_closed());
        let out = sent(&mut c);
        let credit: (u32, u32) = out
            .iter()
            .filter(|p| p.header.kind == Kind::Credit)
            .map(|p| Credit::parse(&p.payload).unwrap())
            .fold((0, 0), |(a, b), c| (a + c.packets, b + c.bytes));
        assert_eq!(credit, (2, 1024));
    }
    assert!(events(&mut c).is_empty());
}

#[test]
fn no_deadlock_with_a_one_packet_window() {
    let mut config = Config::node(1);
    config.limits.max_payload = 1024;
    config.limits.initial_credit_packets = 1;
    config.limits.initial_credit_bytes = 1024;
    let mut c = open_with(config, Role::Node, 2);
    for len in [1usize, 1024, 0, 512, 1024] {
        c.handle_input(T0, &data(Route::default(), &vec![3; len]));
        assert!(!c.is_closed(), "len {len}");
        assert_eq!(events(&mut c).len(), 1);
        let out = sent(&mut c);
        let c1 = Credit::parse(&out[0].payload).unwrap();
        assert_eq!(c1.packets, 1);
        assert_eq!(c1.bytes as usize, len);
    }
}

// ---- reserved node id 0xFFFF (§4.6, §7.3, §7.4) ----

#[test]
fn destination_ffff_is_no_route_even_for_a_proxy() {
    for config in [Config::node(1), Config::proxy(9)] {
        let mut c = open_with(config, Role::Node, 2);
        c.handle_input(T0, &data(Route::new(0xFFFF, 0, 0), b"x"));
        assert!(events(&mut c).is_empty(), "not forwarded, not delivered");
        let out = sent(&mut c);
        assert_eq!(
            error_report(&out[0]),
            (ErrorCode::NO_ROUTE, Route::new(2, 0, 0))
        );
    }
}

#[test]
fn client_attributed_ffff_is_treated_as_zero() {
    let mut c = open_with_hello(
        Config::client(),
        hello_with(Role::Node, 2, |h| h.peer_id = 0xFFFF),
    );
    assert_eq!(c.own_id(), 0);
    assert_eq!(c.peer().map(|p| p.attributed_id), Some(0));
    c.handle_input(T0, &data(Route::new(0xFFFF, 0, 0), b"x"));
    assert_eq!(error_report(&sent(&mut c)[0]).0, ErrorCode::NO_ROUTE);
    // a client's own id is the peer_id attributed to it (§7.2)
    let mut c = open_with_hello(
        Config::client(),
        hello_with(Role::Node, 2, |h| h.peer_id = 77),
    );
    c.handle_input(T0, &data(Route::new(77, 0, 0), b"mine"));
    c.handle_input(T0, &data(Route::new(78, 0, 0), b"not mine"));
    assert!(matches!(&events(&mut c)[..], [Event::Data { .. }]));
    assert_eq!(error_report(&sent(&mut c)[0]).0, ErrorCode::NO_ROUTE);
}

#[test]
fn error_for_ffff_is_discarded_silently_and_counted() {
    let mut config = Config::node(1);
    config.limits.max_packet_errors = 1;
    let mut c = open_with(config, Role::Node, 2);
    let mut report = Vec::new();
    ErrorReport {
        code: ErrorCode::NO_ROUTE,
        header: &[0x10, 0, 0, 0, 0, 7, 0, 0],
        reason: "",
    }
    .encode(&mut report);
    let err = raw(Header::control(Kind::Error, 0), &report);
    let mut to_ffff = err.clone();
    to_ffff[4] = 0xFF;
    to_ffff[5] = 0xFF;
    c.handle_input(T0, &to_ffff);
    assert!(sent(&mut c).is_empty());
    assert!(!c.is_closed());
    assert_closes(c, &to_ffff, ErrorCode::TOO_MANY_ERRORS);
}

// ---- error budget (§12.3) ----

#[test]
fn unreachable_does_not_count_against_the_budget() {
    let mut config = Config {
        peer_id: 300,
        ..Config::proxy(9)
    };
    config.limits.max_packet_errors = 1;
    let mut c = open_with(config, Role::Client, 0);
    for _ in 0..5 {
        c.handle_input(T0, &data(Route::new(42, 0, 0), b"x"));
        let Some(Event::Forward { received, .. }) = c.poll_event() else {
            panic!()
        };
        c.report_unroutable(&received, ErrorCode::UNREACHABLE);
    }
    assert!(!c.is_closed());
    assert_eq!(
        sent(&mut c)
            .iter()
            .filter(|p| p.header.kind == Kind::Error)
            .count(),
        5
    );
    c.handle_input(T0, &data(Route::new(42, 0, 0), b"x"));
    let Some(Event::Forward { received, .. }) = c.poll_event() else {
        panic!()
    };
    c.report_unroutable(&received, ErrorCode::NO_ROUTE);
    assert!(!c.is_closed(), "one NO_ROUTE is within a budget of 1");
    c.handle_input(T0, &data(Route::new(0xFFFF, 0, 0), b"x"));
    assert!(c.is_closed());
    // the packet that exceeds the budget gets no ERROR, only the close
    let out = sent(&mut c);
    let kinds: Vec<Kind> = out.iter().map(|p| p.header.kind).collect();
    assert_eq!(kinds, [Kind::Error, Kind::Goaway]);
    assert_eq!(
        goaway_of(&out).map(|g| g.0),
        Some(ErrorCode::TOO_MANY_ERRORS)
    );
}

// trace: err.budget-gone-client
#[test]
fn no_route_to_a_client_that_has_gone_does_not_count_against_the_budget() {
    // a proxy's link to a node (trusted: configured route), budget 1
    let mut config = Config::proxy(9).with_trust_source(true);
    config.limits.max_packet_errors = 1;
    let mut c = open_with(config, Role::Node, 2);
    let forward = |c: &mut Connection, node: u16| {
        c.handle_input(T0, &data(Route::new(node, 0, 0), b"answer"));
        let Some(Event::Forward { received, .. }) = c.poll_event() else {
            panic!()
        };
        received
    };
    for i in 0..20 {
        let received = forward(&mut c, 40000 + i);
        c.report_client_gone(&received);
    }
    let out = sent(&mut c);
    assert!(out
        .iter()
        .filter(|p| p.header.kind == Kind::Error)
        .all(|p| error_report(p).0 == ErrorCode::NO_ROUTE));
    assert_eq!(out.len(), 20, "each answered NO_ROUTE, none counted");
    // the budget is untouched: one counted NO_ROUTE is at the limit, the next over it
    let received = forward(&mut c, 77);
    c.report_unroutable(&received, ErrorCode::NO_ROUTE);
    assert!(!c.is_closed(), "1 packet error, budget 1");
    let received = forward(&mut c, 77);
    c.report_unroutable(&received, ErrorCode::NO_ROUTE);
    assert!(c.is_closed(), "2 packet errors, budget 1");
}

// ---- per-source limits on a trusted proxy link (§11 [[limit.per-source]]) ----

/// DATA stamped by a proxy with Source Node `source`.
fn from_source(source: u16, payload: &[u8]) -> Vec<u8> {
    raw(
        Header {
            source: Some(source),
            ..Header::data(Route::default(), 0)
        },
        payload,
    )
}

/// A node on a trusted proxy link (configured trust, §7.4) with proxy 3.
fn proxy_link() -> Connection {
    let config = Config {
        trust_source: true,
        ..Config::node(1)
    };
    open_with(config, Role::Proxy, 3)
}

#[test]
fn empty_runs_are_counted_per_source_on_a_trusted_proxy_link() {
    // trace: limit.per-source
    // issue 11: two clients interleaving 20 empty DATA each closed the link with FLOOD
    let mut c = proxy_link();
    for _ in 0..20 {
        c.handle_input(
            T0,
            &[from_source(40_000, b""), from_source(40_001, b"")].concat(),
        );
    }
    assert!(!c.is_closed() && sent(&mut c).iter().all(|p| p.header.kind != Kind::Error));
    // one source at exactly the limit (32) is fine; the 33rd gets ERROR FLOOD, routed to
    // it, and the link stays open for the others
    let mut c = proxy_link();
    c.handle_input(T0, &from_source(40_000, b"").repeat(32));
    assert!(sent(&mut c).iter().all(|p| p.header.kind != Kind::Error));
    c.handle_input(T0, &from_source(40_000, b""));
    let out = sent(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(
        error_report(&out[0]),
        (ErrorCode::FLOOD, Route::new(40_000, 0, 0))
    );
    assert!(!c.is_closed());
    c.handle_input(T0, &from_source(40_001, b"fine"));
    let delivered = events(&mut c)
        .iter()
        .filter(|e| matches!(e, Event::Data { source: 40_001, .. }))
        .count();
    assert_eq!(delivered, 1, "another source's DATA is delivered");
    // the offender's count starts again: 32 more are tolerated
    c.handle_input(T0, &from_source(40_000, b"").repeat(32));
    assert!(sent(&mut c).is_empty());
    // without trust (not a trusted proxy link) the run is per connection, as before
    let mut c = open_with(Config::node(1), Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), b"").repeat(33));
    assert_eq!(closed_code(&mut c), Some(ErrorCode::FLOOD));
}

#[test]
fn the_error_budget_is_per_source_on_a_trusted_proxy_link() {
    // trace: limit.per-source, err.budget
    // issue 11: 17 malformed DATA from one client closed the link with TOO_MANY_ERRORS
    let mut config = Config {
        trust_source: true,
        ..Config::node(1)
    };
    config.services = Some(ServiceSet::from_iter([0]));
    let mut c = open_with(config, Role::Proxy, 3);
    let bad = raw(
        Header {
            source: Some(40_000),
            ..Header::data(Route::new(0, 9, 0), 0)
        },
        b"x",
    );
    // at the budget (16): sixteen NO_SERVICE reports
    c.handle_input(T0, &bad.repeat(16));
    let out = sent(&mut c);
    assert_eq!(out.len(), 16);
    assert!(out
        .iter()
        .all(|p| error_report(p).0 == ErrorCode::NO_SERVICE));
    // another source's errors count apart
    let other = raw(
        Header {
            source: Some(40_001),
            ..Header::data(Route::new(0, 9, 0), 0)
        },
        b"x",
    );
    c.handle_input(T0, &other.repeat(16));
    assert_eq!(sent(&mut c).len(), 16);
    // budget + 1: TOO_MANY_ERRORS to that source, the link stays open
    c.handle_input(T0, &bad);
    let out = sent(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(
        error_report(&out[0]),
        (ErrorCode::TOO_MANY_ERRORS, Route::new(40_000, 0, 0))
    );
    assert!(!c.is_closed());
    assert!(!events(&mut c)
        .iter()
        .any(|e| matches!(e, Event::Closed { .. })));
}

// trace: limit.proxy-polices
#[test]
fn a_proxy_closes_a_client_a_node_reported_with_a_connection_error_code() {
    let mut client = Pair::new(
        Config::client(),
        Config {
            peer_id: 40_000,
            ..Config::proxy(9)
        },
    );
    client.drive();
    let mut report = Vec::new();
    for code in [ErrorCode::NO_SERVICE, ErrorCode::FLOOD] {
        let mut payload = code.0.to_be_bytes().to_vec();
        Header::data(Route::new(2, 0, 0), 0).encode_to_vec(&mut payload);
        let packet = Packet {
            header: Header {
                kind: Kind::Error,
                length: payload.len() as u16,
                source: Some(2),
                ..Header::data(Route::new(40_000, 0, 0), 0)
            },
            payload: Bytes::from(payload),
        };
        client.b.forward(&packet).unwrap();
        report.push(client.b.is_closed());
    }
    // a packet-error code is only forwarded; FLOOD closes the client connection
    assert_eq!(report, [false, true]);
    client.drive();
    let evs = client.events_a();
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::PacketError {
            code: ErrorCode::FLOOD,
            ..
        }
    )));
    assert!(matches!(
        evs.last(),
        Some(Event::Closed {
            code: ErrorCode::FLOOD,
            by_peer: true,
            ..
        })
    ));
}

// ---- delivery to an EventSink as packets are processed (handle_input_into) ----

/// Takes every DATA whose first payload byte is not `refuse`; records what it took.
struct Taker {
    refuse: Option<u8>,
    took: Vec<u8>,
}

impl EventSink for Taker {
    fn offer(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Data { ref payload, .. } if Some(payload[0]) != self.refuse => {
                self.took.push(payload[0]);
                None
            }
            other => Some(other),
        }
    }
}

fn taker() -> Taker {
    Taker {
        refuse: None,
        took: Vec::new(),
    }
}

fn numbered(range: std::ops::Range<u8>) -> Vec<u8> {
    range
        .flat_map(|i| data(Route::default(), &[i, i]))
        .collect()
}

#[test]
fn data_a_sink_takes_is_delivered_and_its_credit_granted_as_polling_would() {
    // §8 [[flow.grant]]: the same CREDITs, the same count for GOAWAY's `delivered`
    let mut polled = open_with(small_window(4, 8192), Role::Node, 2);
    let mut sunk = open_with(small_window(4, 8192), Role::Node, 2);
    let mut sink = taker();
    for round in 0..3u8 {
        // the whole window each round: exactly at the limit, granted back every time
        let input = Bytes::from(numbered(round * 4..round * 4 + 4));
        polled.handle_input_bytes(T0, input.clone());
        while polled.poll_event().is_some() {}
        sunk.handle_input_into(T0, &input, Some(&input), &mut sink);
        assert!(sunk.poll_event().is_none(), "taken, never queued");
        let (p, s) = (sent(&mut polled), sent(&mut sunk));
        assert!(!p.is_empty(), "credit goes back");
        assert_eq!(p, s);
    }
    assert_eq!(sink.took, (0..12).collect::<Vec<u8>>());
    assert_eq!((polled.delivered, sunk.delivered), (12, 12));
}

#[test]
fn a_sink_is_offered_every_data_in_order_however_the_input_is_split() {
    let mut c = open_with(small_window(64, 8192), Role::Node, 2);
    let mut sink = taker();
    // one byte at a time: every packet completes in the deframer (the slow path)
    for b in numbered(0..20) {
        c.handle_input_into(T0, &[b], None, &mut sink);
    }
    assert_eq!(sink.took, (0..20).collect::<Vec<u8>>());
    assert!(c.poll_event().is_none());
}

#[test]
fn data_behind_a_waiting_event_queues_behind_it_until_it_is_taken() {
    let mut c = open_with(small_window(64, 8192), Role::Node, 2);
    let mut sink = Taker {
        refuse: Some(2),
        took: Vec::new(),
    };
    let input = Bytes::from(numbered(0..6));
    c.handle_input_into(T0, &input, Some(&input), &mut sink);
    // 0 and 1 taken; 2 given back, so 3, 4, 5 queue behind it (order is kept)
    assert_eq!(sink.took, [0, 1]);
    let queued: Vec<u8> = std::iter::from_fn(|| match c.poll_event() {
        Some(Event::Data { payload, .. }) => Some(payload[0]),
        _ => None,
    })
    .collect();
    assert_eq!(queued, [2, 3, 4, 5]);
    // the queue empty again, the sink is offered the next
    c.handle_input_into(T0, &numbered(6..7), None, &mut sink);
    assert_eq!(sink.took, [0, 1, 6]);
}

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
    config.limits.max_empty_run = 4;
    let empty = data(Route::default(), b"");
    let mut c = open_with(config.clone(), Role::Node, 2);
    c.handle_input(T0, &empty.repeat(4));
    c.handle_input(T0, &data(Route::default(), b"reset"));
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 1,
            timestamp: 0,
        })),
    );
    c.handle_input(T0, &empty.repeat(4));
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

// ---- shutdown (§6.4) ----

#[test]
fn answers_goaway_and_reports_unknown_code() {
    let mut c = node();
    c.handle_input(T0, &data(Route::default(), b"x").repeat(2));
    let goaway = Goaway {
        code: ErrorCode(0x8123),
        delivered: 5,
        reason: "maintenance",
    };
    c.handle_input(T0, &ctl(Control::Goaway(goaway)));
    assert!(c.is_closed());
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 2)));
    let last = events(&mut c).pop();
    let expected = Event::Closed {
        code: ErrorCode(0x8123),
        by_peer: true,
        reason: "maintenance".into(),
        delivered: Some(5),
    };
    assert_eq!(last, Some(expected));
}

#[test]
fn discards_data_after_own_goaway_and_counts_only_before() {
    let mut c = node();
    c.handle_input(T0, &data(Route::default(), b"x").repeat(3));
    c.close(T0, "bye");
    assert_eq!(goaway_of(&sent(&mut c)), Some((ErrorCode::NO_ERROR, 3)));
    assert_eq!(
        c.send_data(Route::default(), b"y", SendOptions::default()),
        Err(SendError::Closing)
    );
    c.handle_input(T0, &data(Route::default(), b"late"));
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 1,
            timestamp: 0,
        })),
    );
    assert_eq!(sent(&mut c).len(), 1, "PING still answered while draining");
    assert_eq!(c.delivered(), 3);
    c.handle_input(
        T0,
        &ctl(Control::Goaway(Goaway {
            code: ErrorCode::NO_ERROR,
            delivered: 0,
            reason: "",
        })),
    );
    let evs = events(&mut c);
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::Data { .. }))
            .count(),
        3
    );
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
}

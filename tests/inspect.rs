//! `inspect` output snapshots (the CLI's exit codes: `cli/tests/inspect_cli.rs`).

use fleetwire::control::{Control, Credit, Goaway, Hello, Ping, Role};
use fleetwire::inspect::{inspect, End, Options};
use fleetwire::{ErrorCode, Header, Limits, Route, PREFACE};

/// One direction of a short session: preface, HELLO, PING, two DATA, CREDIT, GOAWAY.
fn session() -> Vec<u8> {
    let mut w = PREFACE.to_vec();
    Control::Hello(Hello::new(Role::Node, 7, &Limits::default(), 3)).encode_packet(&mut w);
    Control::Ping(Ping {
        id: 1,
        timestamp: 1_000,
    })
    .encode_packet(&mut w);
    Header::data(Route::new(0, 1, 2), 3).encode_to_vec(&mut w);
    w.extend_from_slice(b"abc");
    let routed = Header {
        source: Some(9),
        never_compress: true,
        ..Header::data(Route::new(12, 0, 5), 0)
    };
    routed.encode_to_vec(&mut w);
    Control::Credit(Credit {
        packets: 4,
        bytes: 4096,
    })
    .encode_packet(&mut w);
    Control::Goaway(Goaway {
        code: ErrorCode::NO_ERROR,
        delivered: 2,
        reason: "done",
    })
    .encode_packet(&mut w);
    w
}

#[test]
fn text_output_snapshot() {
    let (text, end) = inspect(&session(), &Options::default());
    assert_eq!(end, End::Complete);
    insta::assert_snapshot!(text);
}

#[test]
fn json_output_snapshot() {
    let opts = Options {
        json: true,
        hex: true,
        ..Options::default()
    };
    let (text, end) = inspect(&session(), &opts);
    assert_eq!(end, End::Complete);
    insta::assert_snapshot!(text);
}

#[test]
fn invalid_stream_stops_at_the_failing_packet() {
    let mut wire = session();
    let bad = wire.len();
    wire.extend_from_slice(&[0x10, 0x04, 0, 0, 0, 0, 0, 0]);
    let (text, end) = inspect(&wire, &Options::default());
    assert_eq!(text.lines().count(), 7);
    match end {
        End::Invalid { offset, error } => {
            assert_eq!(offset, bad);
            assert_eq!(error.code(), ErrorCode::RESERVED_BIT);
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

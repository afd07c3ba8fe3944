//! `fleetwire inspect`: exit codes on valid, invalid and arbitrary input.

use std::io::Write;
use std::process::{Command, Stdio};

use fleetwire::control::{Control, Credit, Goaway, Hello, Ping, Role};
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

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleetwire");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_stream_exits_zero() {
    let (code, out, _) = run(&["inspect", "-"], &session());
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 7);
}

#[test]
fn invalid_stream_exits_one_with_code_and_offset() {
    let (code, _, err) = run(
        &["inspect"],
        &[
            0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2F, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("UNSUPPORTED_VERSION (0x0003) at offset 8"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn usage_error_exits_two() {
    let (code, _, _) = run(&["inspect", "--no-such-flag"], b"");
    assert_eq!(code, 2);
    let (code, _, err) = run(&["inspect", "/nonexistent/file"], b"");
    assert_eq!(code, 2, "{err}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x1234_5678_u32;
    for len in 0..64usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 24) as u8
            })
            .collect();
        let (code, _, err) = run(&["inspect", "--json"], &bytes);
        assert!(code == 0 || code == 1, "exit {code}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

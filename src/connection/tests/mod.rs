//! Unit tests: a connection against a hand-written peer (bytes built with the header and
//! control encoders), so that every check can be hit exactly. Helpers here; the tests
//! in `handshake` (§3, §4.9, §5, §6.3, §7.4) and `flow` (§6.4, §7, §8, §9.3, §11, §12).

mod flow;
mod handshake;

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::control::{ErrorReport, Ping};
use crate::header::{Kind, Route};
use crate::limits::Limits;
use crate::packet::Packet;
use crate::Deframer;

pub(super) const T0: Duration = Duration::ZERO;

pub(super) fn hello_with(role: Role, node_id: u16, f: impl FnOnce(&mut Hello<'static>)) -> Vec<u8> {
    let mut h = Hello::new(role, node_id, &Limits::default(), 0);
    f(&mut h);
    let mut v = PREFACE.to_vec();
    Control::Hello(h).encode_packet(&mut v);
    v
}

pub(super) fn ctl(c: Control<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    c.encode_packet(&mut v);
    v
}

pub(super) fn raw(header: Header, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            length: payload.len() as u16,
            ..header
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .to_vec()
}

pub(super) fn data(route: Route, payload: &[u8]) -> Vec<u8> {
    raw(Header::data(route, 0), payload)
}

/// A connection with `config` that received a valid HELLO from a peer of `role`/`id`;
/// its Established event and transmit buffer are drained.
///
/// The peer's claimed role is trusted as on a closed network (`require_auth: false`,
/// explicit configuration of §7.4 `[[src.auth]]`); the tests of authentication itself
/// build their connections directly.
pub(super) fn open_with(config: Config, role: Role, id: u16) -> Connection {
    let config = Config {
        require_auth: false,
        ..config
    };
    let mut c = Connection::new(config, T0);
    c.handle_input(T0, &hello_with(role, id, |_| {}));
    assert!(c.is_established(), "{:?}", c.poll_event());
    assert!(matches!(c.poll_event(), Some(Event::Established { .. })));
    sent(&mut c);
    c
}

/// A connection with `config` that received `opening` (the peer's preface and HELLO).
pub(super) fn open_with_hello(config: Config, opening: Vec<u8>) -> Connection {
    let config = Config {
        require_auth: false,
        ..config
    };
    let mut c = Connection::new(config, T0);
    c.handle_input(T0, &opening);
    assert!(c.is_established(), "{:?}", c.poll_event());
    assert!(matches!(c.poll_event(), Some(Event::Established { .. })));
    sent(&mut c);
    c
}

/// A node that trusts every peer's claimed role (a closed network: explicit
/// configuration of §7.4 `[[src.auth]]`).
pub(super) fn trusting_node(id: u16) -> Config {
    Config {
        require_auth: false,
        ..Config::node(id)
    }
}

pub(super) fn node() -> Connection {
    open_with(Config::node(1), Role::Node, 2)
}

/// The packets `c` queued (after the preface, if any).
pub(super) fn sent(c: &mut Connection) -> Vec<Packet> {
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    let bytes = out.strip_prefix(&PREFACE[..]).unwrap_or(&out);
    let mut d = Deframer::new(u16::MAX);
    d.extend(bytes);
    std::iter::from_fn(|| d.next_packet().expect("we send valid packets")).collect()
}

pub(super) fn goaway_of(packets: &[Packet]) -> Option<(ErrorCode, u64)> {
    packets
        .iter()
        .find(|p| p.header.kind == Kind::Goaway)
        .map(|p| {
            let g = Goaway::parse(&p.payload).unwrap();
            (g.code, g.delivered)
        })
}

pub(super) fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

pub(super) fn closed_code(c: &mut Connection) -> Option<ErrorCode> {
    events(c).into_iter().find_map(|e| match e {
        Event::Closed { code, .. } => Some(code),
        _ => None,
    })
}

/// Feeds `bytes` to `c` and checks it closed with `code`, sending GOAWAY with that code.
pub(super) fn assert_closes(mut c: Connection, bytes: &[u8], code: ErrorCode) {
    c.handle_input(T0, bytes);
    assert!(c.is_closed(), "expected {code}");
    assert_eq!(goaway_of(&sent(&mut c)).map(|g| g.0), Some(code));
    assert_eq!(closed_code(&mut c), Some(code));
    // spec §6.4 [[close.on-error]]: no further input processed
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 1,
            timestamp: 0,
        })),
    );
    assert!(sent(&mut c).is_empty());
}

pub(super) fn error_report(p: &Packet) -> (ErrorCode, Route) {
    assert_eq!(p.header.kind, Kind::Error);
    (ErrorReport::parse(&p.payload).unwrap().code, p.header.route)
}

//! Preface, HELLO, header and state checks, control payloads.

use std::time::Duration;

use super::*;
use crate::connection::*;
use crate::control::{Credit, Ping, Pong};
use crate::header::{Kind, Route};

// ---- preface and handshake (§3, §5.2, §6.2) ----

#[test]
fn queues_preface_and_hello_at_once() {
    let mut c = Connection::new(
        Config {
            peer_id: 9,
            ..Config::node(3)
        },
        T0,
    );
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(&out[..8], &PREFACE);
    let hello = Hello::parse(&out[16..]).unwrap();
    assert_eq!(
        (hello.role, hello.node_id, hello.peer_id),
        (Role::Node, 3, 9)
    );
    assert_eq!(hello.codecs, Config::SUPPORTED_CODECS);
}

#[test]
fn rejects_wrong_preface_only_once_eight_bytes_arrived() {
    let mut c = Connection::new(Config::node(1), T0);
    c.handle_input(T0, &[0x89, b'F', b'W', b'I', b'R', b'E', 0x0D]);
    assert!(!c.is_closed());
    assert_closes(c, &[0x0B], ErrorCode::BAD_PREFACE);
}

#[test]
fn rejects_tls_record_as_bad_preface() {
    let c = Connection::new(Config::node(1), T0);
    assert_closes(
        c,
        &[0x16, 0x03, 0x01, 0, 0x20, 1, 0, 0],
        ErrorCode::BAD_PREFACE,
    );
}

#[test]
fn established_reports_peer_hello() {
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(
        T0,
        &hello_with(Role::Proxy, 7, |h| {
            h.peer_id = 500;
            h.codecs = 0xFF;
            h.max_payload = 2000;
        }),
    );
    let Some(Event::Established { peer }) = c.poll_event() else {
        panic!()
    };
    assert_eq!(
        (peer.role, peer.node_id, peer.attributed_id),
        (Role::Proxy, 7, 500)
    );
    assert_eq!(
        (peer.codecs, peer.max_payload, peer.version),
        (0x03, 2000, 1)
    );
    assert_eq!(c.own_id(), 500);
}

#[test]
fn rejects_hello_with_invalid_fields() {
    let c = Connection::new(Config::node(1), T0);
    assert_closes(
        c,
        &hello_with(Role::Client, 4, |_| {}),
        ErrorCode::BAD_HELLO,
    );
    let c = Connection::new(Config::node(1), T0);
    assert_closes(
        c,
        &hello_with(Role::Node, 4, |h| h.max_ratio = 0),
        ErrorCode::BAD_HELLO,
    );
}

#[test]
fn rejects_hello_without_common_version() {
    let c = Connection::new(Config::node(1), T0);
    let bytes = hello_with(Role::Node, 4, |h| {
        h.min_version = 2;
        h.max_version = 3;
    });
    assert_closes(c, &bytes, ErrorCode::UNSUPPORTED_VERSION);
}

#[test]
fn accepts_hello_whose_range_includes_version_one() {
    let mut c = Connection::new(trusting_node(1), T0);
    c.handle_input(T0, &hello_with(Role::Node, 4, |h| h.max_version = 9));
    assert!(c.is_established());
}

#[test]
fn rejects_packet_with_other_version() {
    let mut bytes = hello_with(Role::Node, 2, |_| {});
    let mut ping = ctl(Control::Ping(Ping {
        id: 1,
        timestamp: 0,
    }));
    ping[0] = 0x22;
    bytes.extend_from_slice(&ping);
    let c = Connection::new(trusting_node(1), T0);
    assert_closes(c, &bytes, ErrorCode::UNSUPPORTED_VERSION);
}

#[test]
fn requires_authentication_for_node_role_when_configured() {
    let config = Config {
        require_auth: true,
        ..Config::node(1)
    };
    let c = Connection::new(config.clone(), T0);
    assert_closes(c, &hello_with(Role::Node, 2, |_| {}), ErrorCode::BAD_HELLO);
    // a client needs no authentication
    let mut c = Connection::new(config.clone(), T0);
    c.handle_input(T0, &hello_with(Role::Client, 0, |_| {}));
    assert!(c.is_established());
    let bound = Config {
        authenticated: Some(Identity::node(2)),
        ..config
    };
    let mut c = Connection::new(bound.clone(), T0);
    c.handle_input(T0, &hello_with(Role::Node, 2, |_| {}));
    assert!(c.is_established());
    let c = Connection::new(bound, T0);
    assert_closes(c, &hello_with(Role::Node, 3, |_| {}), ErrorCode::BAD_HELLO);
}

// ---- header errors through the connection (§4.9) ----

#[test]
fn header_errors_close_with_their_codes() {
    let cases: [(&[u8], ErrorCode); 5] = [
        (&[0x17, 0, 0, 0, 0, 0, 0, 0], ErrorCode::UNKNOWN_KIND),
        (&[0x12, 0x04, 0, 0, 0, 0, 0, 0], ErrorCode::RESERVED_BIT),
        (&[0x12, 0x10, 0, 0, 0, 0, 0, 0], ErrorCode::BAD_FLAGS),
        (&[0x12, 0x80, 0, 0, 0, 0, 0, 0, 0, 0], ErrorCode::BAD_FLAGS),
        (&[0x12, 0, 0, 16, 0, 1, 0, 0], ErrorCode::BAD_CONTROL),
    ];
    for (bytes, code) in cases {
        assert_closes(node(), bytes, code);
    }
}

#[test]
fn payload_length_at_max_payload_accepted_and_one_more_rejected() {
    let mut config = Config::node(1);
    config.limits.max_payload = 1024;
    config.limits.initial_credit_bytes = 4096;
    let mut c = open_with(config.clone(), Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), &[7; 1024]));
    assert!(matches!(events(&mut c)[..], [Event::Data { .. }]));
    let c = open_with(config, Role::Node, 2);
    assert_closes(
        c,
        &[0x10, 0, 0x04, 0x01, 0, 0, 0, 0],
        ErrorCode::PAYLOAD_TOO_LARGE,
    );
}

// ---- state checks (§6.3) ----

#[test]
fn rejects_data_before_hello() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(&data(Route::default(), b"x"));
    assert_closes(
        Connection::new(Config::node(1), T0),
        &bytes,
        ErrorCode::UNEXPECTED_PACKET,
    );
}

#[test]
fn rejects_second_hello() {
    let bytes = hello_with(Role::Node, 2, |_| {});
    assert_closes(node(), &bytes[8..], ErrorCode::UNEXPECTED_PACKET);
}

#[test]
fn state_check_precedes_source_check() {
    let mut bytes = PREFACE.to_vec();
    let forged = Header {
        source: Some(9),
        ..Header::data(Route::default(), 0)
    };
    bytes.extend_from_slice(&raw(forged, b"x"));
    assert_closes(
        Connection::new(Config::node(1), T0),
        &bytes,
        ErrorCode::UNEXPECTED_PACKET,
    );
}

#[test]
fn source_check_precedes_credit_check() {
    let mut config = Config::node(1);
    config.limits.initial_credit_packets = 1;
    let mut c = open_with(config, Role::Node, 2);
    c.handle_input(T0, &data(Route::default(), b"a"));
    let forged = Header {
        source: Some(9),
        ..Header::data(Route::default(), 0)
    };
    assert_closes(c, &raw(forged, b"b"), ErrorCode::SOURCE_FORGED);
}

#[test]
fn rejects_source_extension_from_node_client_and_untrusted_proxy() {
    let forged = raw(
        Header {
            source: Some(9),
            ..Header::data(Route::default(), 0)
        },
        b"x",
    );
    for (role, id) in [(Role::Node, 2), (Role::Client, 0), (Role::Proxy, 3)] {
        let config = Config {
            trust_source: role != Role::Proxy,
            ..Config::node(1)
        };
        assert_closes(
            open_with(config, role, id),
            &forged,
            ErrorCode::SOURCE_FORGED,
        );
    }
}

#[test]
fn honours_source_extension_from_trusted_proxy() {
    let config = Config {
        trust_source: true,
        ..Config::node(1)
    };
    let mut c = open_with(config, Role::Proxy, 3);
    let stamped = Header {
        source: Some(9),
        ..Header::data(Route::default(), 0)
    };
    c.handle_input(T0, &raw(stamped, b"x"));
    c.handle_input(T0, &data(Route::default(), b"y"));
    let sources: Vec<u16> = events(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Data { source, .. } => Some(source),
            _ => None,
        })
        .collect();
    assert_eq!(sources, [9, 3]);
}

fn stamped(source: u16) -> Vec<u8> {
    raw(
        Header {
            source: Some(source),
            ..Header::data(Route::default(), 0)
        },
        b"x",
    )
}

/// Whether a connection with `config` accepts DATA stamped by a proxy peer with id 3.
fn honours_stamp(config: Config) -> bool {
    let mut c = open_with(config, Role::Proxy, 3);
    c.handle_input(T0, &stamped(9));
    !c.is_closed()
}

#[test]
fn only_a_proxy_identity_authenticates_a_proxy() {
    // spec §7.4 [[src.trust]], §10.2: a proxy identity naming the peer's node id
    assert!(honours_stamp(Config {
        authenticated: Some(Identity::proxy(3)),
        ..Config::node(1)
    }));
    // a node identity does not authenticate a peer announcing role proxy
    assert!(!honours_stamp(Config {
        authenticated: Some(Identity::node(3)),
        ..Config::node(1)
    }));
    // nor does nothing
    assert!(!honours_stamp(Config::node(1)));
    // explicit configuration of a trusted link does
    assert!(honours_stamp(Config {
        trust_source: true,
        ..Config::node(1)
    }));
    // spec §7.4 [[src.client-trusts-server]]: a client trusts its proxy server, by
    // default and whatever the compatibility field says
    assert!(honours_stamp(Config::client()));
    assert!(honours_stamp(Config {
        trust_server_as_proxy: false,
        ..Config::client()
    }));
    // a proxy identity never lets a node set X (§7.4 [[src.forbid]])
    let config = Config {
        authenticated: Some(Identity::proxy(2)),
        ..Config::node(1)
    };
    assert_closes(
        open_with(config, Role::Node, 2),
        &stamped(9),
        ErrorCode::SOURCE_FORGED,
    );
}

#[test]
fn proxy_hello_with_node_identity_when_authentication_is_required() {
    let config = Config {
        require_auth: true,
        authenticated: Some(Identity::node(3)),
        ..Config::node(1)
    };
    // role node with the node identity: accepted
    let mut c = Connection::new(config.clone(), T0);
    c.handle_input(T0, &hello_with(Role::Node, 3, |_| {}));
    assert!(c.is_established());
    // role proxy with a node identity: not authenticated as a proxy
    let c = Connection::new(config, T0);
    assert_closes(c, &hello_with(Role::Proxy, 3, |_| {}), ErrorCode::BAD_HELLO);
    // role proxy with the proxy identity: accepted
    let config = Config {
        require_auth: true,
        authenticated: Some(Identity::proxy(3)),
        ..Config::node(1)
    };
    let mut c = Connection::new(config.clone(), T0);
    c.handle_input(T0, &hello_with(Role::Proxy, 3, |_| {}));
    assert!(c.is_established());
    // a proxy identity with another id: BAD_HELLO (§10.2 [[tls.node-binding]])
    let c = Connection::new(config, T0);
    assert_closes(c, &hello_with(Role::Proxy, 4, |_| {}), ErrorCode::BAD_HELLO);
}

#[test]
fn source_ffff_from_a_trusted_proxy_is_forged() {
    let config = Config {
        authenticated: Some(Identity::proxy(3)),
        ..Config::node(1)
    };
    let c = open_with(config, Role::Proxy, 3);
    assert_closes(c, &stamped(0xFFFF), ErrorCode::SOURCE_FORGED);
    // 0 is an unattributed client, not forged
    let config = Config {
        trust_source: true,
        ..Config::node(1)
    };
    let mut c = open_with(config, Role::Proxy, 3);
    c.handle_input(T0, &stamped(0));
    assert!(matches!(
        events(&mut c)[..],
        [Event::Data { source: 0, .. }]
    ));
}

#[test]
fn hello_checks_length_fields_version_then_authentication() {
    let auth = Config {
        require_auth: true,
        ..Config::node(1)
    };
    // unauthenticated node, no common version, bad field: the field rule first
    let hello = hello_with(Role::Node, 2, |h| {
        h.min_version = 2;
        h.max_version = 3;
        h.max_ratio = 0;
    });
    assert_closes(
        Connection::new(auth.clone(), T0),
        &hello,
        ErrorCode::BAD_HELLO,
    );
    // unauthenticated node, no common version: the version before authentication
    let hello = hello_with(Role::Node, 2, |h| {
        h.min_version = 2;
        h.max_version = 3;
    });
    assert_closes(
        Connection::new(auth.clone(), T0),
        &hello,
        ErrorCode::UNSUPPORTED_VERSION,
    );
    // a 27-byte HELLO with bad fields: the length first (BAD_HELLO either way, but no
    // other code)
    let mut short = hello_with(Role::Node, 2, |h| h.max_ratio = 0);
    short.truncate(short.len() - 1);
    short[8 + 3] = 27;
    assert_closes(Connection::new(auth, T0), &short, ErrorCode::BAD_HELLO);
}

#[test]
fn client_source_is_the_attributed_id() {
    let mut c = open_with(
        Config {
            peer_id: 321,
            ..Config::node(1)
        },
        Role::Client,
        0,
    );
    c.handle_input(T0, &data(Route::new(1, 0, 0), b"x"));
    assert!(matches!(
        events(&mut c)[..],
        [Event::Data { source: 321, .. }]
    ));
}

// ---- control payloads (§5) ----

#[test]
fn malformed_control_payloads_are_bad_control() {
    let mut short_ping = ctl(Control::Ping(Ping {
        id: 1,
        timestamp: 2,
    }));
    short_ping[3] = 15;
    short_ping.pop();
    assert_closes(node(), &short_ping, ErrorCode::BAD_CONTROL);
    let mut zero_credit = ctl(Control::Credit(Credit {
        packets: 1,
        bytes: 0,
    }));
    zero_credit[11] = 0;
    assert_closes(node(), &zero_credit, ErrorCode::BAD_CONTROL);
    let long = "r".repeat(257);
    let mut goaway = vec![0x14, 0, 0, 0, 0, 0, 0, 0];
    let mut body = vec![0; 10];
    body.extend_from_slice(long.as_bytes());
    goaway[2..4].copy_from_slice(&(body.len() as u16).to_be_bytes());
    goaway.extend_from_slice(&body);
    assert_closes(node(), &goaway, ErrorCode::BAD_CONTROL);
    let short_error = raw(Header::control(Kind::Error, 0), &[1, 0, 0x10]);
    assert_closes(node(), &short_error, ErrorCode::BAD_CONTROL);
}

#[test]
fn answers_ping_with_pong_in_order() {
    let mut c = node();
    let mut bytes = Vec::new();
    for id in 1..=3 {
        bytes.extend(ctl(Control::Ping(Ping {
            id,
            timestamp: id * 10,
        })));
    }
    c.handle_input(T0, &bytes);
    let pongs: Vec<Pong> = sent(&mut c)
        .iter()
        .map(|p| Pong::parse(&p.payload).unwrap())
        .collect();
    let expected: Vec<Pong> = (1..=3)
        .map(|id| Pong {
            id,
            timestamp: id * 10,
            hold_us: 0,
        })
        .collect();
    assert_eq!(pongs, expected);
}

#[test]
fn pong_precedes_data_queued_after_the_ping() {
    let mut c = node();
    c.send_data(Route::default(), b"before", SendOptions::default())
        .unwrap();
    c.handle_input(
        T0,
        &ctl(Control::Ping(Ping {
            id: 5,
            timestamp: 0,
        })),
    );
    c.send_data(Route::default(), b"after", SendOptions::default())
        .unwrap();
    let kinds: Vec<Kind> = sent(&mut c).iter().map(|p| p.header.kind).collect();
    assert_eq!(kinds, [Kind::Data, Kind::Pong, Kind::Data]);
}

#[test]
fn pong_gives_rtt_and_unknown_pong_is_ignored() {
    let mut c = node();
    let id = c.send_ping(Duration::from_millis(100));
    let ping = Ping::parse(&sent(&mut c)[0].payload).unwrap();
    let pong = |id| {
        ctl(Control::Pong(Pong {
            id,
            timestamp: ping.timestamp,
            hold_us: 5_000,
        }))
    };
    c.handle_input(Duration::from_millis(130), &pong(id + 100));
    assert!(events(&mut c).is_empty() && !c.is_closed());
    c.handle_input(Duration::from_millis(130), &pong(id));
    assert_eq!(
        events(&mut c),
        [Event::Pong {
            id,
            rtt: Duration::from_millis(25)
        }]
    );
    c.handle_input(Duration::from_millis(140), &pong(id));
    assert!(events(&mut c).is_empty(), "answered once");
}

#[test]
fn node_and_proxy_refuse_an_unauthenticated_node_or_proxy_role_by_default() {
    // trace: src.auth
    // issue 11: any client could claim role node and have its id stamped as a source
    for local in [Config::node(1), Config::proxy(9)] {
        for role in [Role::Node, Role::Proxy] {
            let c = Connection::new(local.clone(), T0);
            assert_closes(c, &hello_with(role, 3, |_| {}), ErrorCode::BAD_HELLO);
        }
        // role client needs nothing
        let mut c = Connection::new(local.clone(), T0);
        c.handle_input(T0, &hello_with(Role::Client, 0, |_| {}));
        assert!(c.is_established());
        // explicit configuration (a trusted address) accepts both roles
        for role in [Role::Node, Role::Proxy] {
            let config = Config {
                trust_source: true,
                ..local.clone()
            };
            let mut c = Connection::new(config, T0);
            c.handle_input(T0, &hello_with(role, 3, |_| {}));
            assert!(c.is_established());
        }
    }
}

#[test]
fn a_default_client_accepts_its_server_and_its_proxy_stamps() {
    // trace: src.auth, src.client-trusts-server
    for role in [Role::Node, Role::Proxy] {
        let mut c = Connection::new(Config::client(), T0);
        c.handle_input(T0, &hello_with(role, 3, |_| {}));
        assert!(c.is_established());
    }
    let mut c = Connection::new(Config::client(), T0);
    c.handle_input(T0, &hello_with(Role::Proxy, 3, |h| h.peer_id = 40_000));
    c.handle_input(T0, &stamped(2));
    let source = events(&mut c).into_iter().find_map(|e| match e {
        Event::Data { source, .. } => Some(source),
        _ => None,
    });
    assert_eq!(source, Some(2), "the proxy's stamp is the source");
}

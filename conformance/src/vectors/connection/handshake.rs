//! Transcripts of the handshake, packet states and source identity (§3, §5.2, §6.2, §6.3, §7.4).

use serde_json::json;

use super::traffic::error_pattern;
use super::*;

pub(super) fn handshake(v: &mut Vec<Vector>) {
    let n = Local::node();
    let t = start(&n, &client_hello()).open();
    v.push(tx(
        "handshake.node-accepts-client",
        "3",
        &["preface.send", "hello.node-id", "hdr.version-send"],
        "a node sends preface and HELLO at once, then accepts a client",
        &n,
        t,
        End::Open,
    ));
    let c = Local::client();
    let t = start(
        &c,
        &HelloFields {
            peer_id: 4242,
            ..HelloFields::default()
        },
    )
    .open();
    v.push(tx(
        "handshake.client-sends-zero-id",
        "5.2",
        &["preface.send", "hello.client-id"],
        "a client announces node_id 0",
        &c,
        t,
        End::Open,
    ));
    let p = Local {
        peer_id: 4242,
        ..Local::node()
    };
    let t = start(&p, &client_hello())
        .recv(&data(0, 0, b"x"))
        .events(vec![data_ev(4242, 0, 0, b"x")]);
    v.push(tx("handshake.peer-id", "5.2", &["hello.peer-id"], "a node attributes id 4242 to its client: announced in HELLO and used as the client's source", &p, t, End::Open));
    let c = Local::client();
    let server = HelloFields {
        peer_id: 77,
        ..HelloFields::default()
    };
    let t = start(&c, &server)
        .recv(&[data(77, 0, b"mine"), data(78, 0, b"other")].concat())
        .sent(vec![error_pattern(
            "NO_ROUTE",
            2,
            &data(78, 0, b"other")[..8],
        )])
        .events(vec![data_ev(2, 77, 0, b"mine")]);
    v.push(tx(
        "handshake.client-own-id",
        "7.2",
        &["state.data-order", "hello.peer-id"],
        "the server attributes id 77 to the client: DATA for node 77 is the client's own, DATA for node 78 is NO_ROUTE",
        &c,
        t,
        End::Open,
    ));
    let server = HelloFields {
        peer_id: 0xFFFF,
        ..HelloFields::default()
    };
    let ffff = data(0xFFFF, 0, b"x");
    let t = start(&c, &server)
        .recv(&[data(0, 0, b"zero"), ffff.clone()].concat())
        .sent(vec![error_pattern("NO_ROUTE", 2, &ffff[..8])])
        .events(vec![data_ev(2, 0, 0, b"zero")]);
    v.push(tx(
        "handshake.peer-id-ffff",
        "5.2",
        &["hello.fields"],
        "the server sends peer_id 0xFFFF: accepted and treated as 0, so DATA for node 0xFFFF is not the client's own (NO_ROUTE)",
        &c,
        t,
        End::Open,
    ));
    let mut bytes = opening(&client_hello());
    bytes.extend(data(0, 0, b"split"));
    bytes.extend(ping(7, 70));
    let t = bytes.iter().fold(
        T::default().sent(vec![preface(), n.hello_pattern()]),
        |t, b| t.recv(&[*b]),
    );
    let t = t
        .events(vec![established("client"), data_ev(0, 0, 0, b"split")])
        .sent(vec![
            json!({ "kind": "PONG", "id": "7", "timestamp": "70" }),
        ]);
    v.push(tx(
        "handshake.one-byte-per-read",
        "2",
        &["layer.split", "err.split-invariant"],
        "preface, HELLO, DATA and PING delivered one byte per read",
        &n,
        t,
        End::Open,
    ));
    let t = start(
        &n,
        &HelloFields {
            max_version: 5,
            ..client_hello()
        },
    )
    .open();
    v.push(tx(
        "negotiation.range-overlaps",
        "6.2",
        &["neg.version"],
        "the peer supports versions 1..5: version 1 is chosen",
        &n,
        t,
        End::Open,
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&opening(&HelloFields {
            min_version: 2,
            max_version: 3,
            ..client_hello()
        }))
        .sent(vec![goaway("UNSUPPORTED_VERSION")])
        .closed("UNSUPPORTED_VERSION");
    v.push(tx(
        "negotiation.no-common-version",
        "6.2",
        &["neg.version", "close.on-error", "close.on-error-goaway"],
        "the peer supports only versions 2..3",
        &n,
        t,
        End::Error("UNSUPPORTED_VERSION"),
    ));
    let bad_hellos: [(&str, Vec<u8>, &str, &[&'static str]); 5] = [
        (
            "hello.version-2-header",
            Raw {
                version: 2,
                ..Raw::ctl(HELLO, 0)
            }
            .packet(&client_hello().bytes()),
            "UNSUPPORTED_VERSION",
            &["hdr.version"],
        ),
        (
            "hello.length-27",
            Raw::ctl(HELLO, 0).packet(&client_hello().bytes()[..27]),
            "BAD_HELLO",
            &["hello.length"],
        ),
        (
            "hello.length-1025",
            Raw::ctl(HELLO, 0).packet(
                &HelloFields {
                    extensions: vec![0; 997],
                    ..client_hello()
                }
                .bytes(),
            ),
            "BAD_HELLO",
            &["hello.length"],
        ),
        (
            "hello.client-with-id",
            HelloFields {
                node_id: 3,
                ..client_hello()
            }
            .packet(),
            "BAD_HELLO",
            &["hello.client-id", "hello.fields"],
        ),
        (
            "hello.max-payload-1023",
            HelloFields {
                max_payload: 1023,
                ..client_hello()
            }
            .packet(),
            "BAD_HELLO",
            &["hello.fields"],
        ),
    ];
    for (id, hello, code, reqs) in bad_hellos {
        let t = T::default()
            .sent(vec![preface(), n.hello_pattern()])
            .recv(&PREFACE)
            .recv(&hello)
            .sent(vec![goaway(code)])
            .closed(code);
        v.push(tx(
            id,
            "5.2",
            reqs,
            "an invalid HELLO closes the connection",
            &n,
            t,
            End::Error(code),
        ));
    }
    let both = HelloFields {
        min_version: 2,
        max_version: 3,
        max_ratio: 0,
        ..client_hello()
    };
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&opening(&both))
        .sent(vec![goaway("BAD_HELLO")]);
    v.push(tx(
        "hello.order.fields-before-version",
        "5.2",
        &["hello.order"],
        "max_ratio 0 and no common version: the field rules come first",
        &n,
        t,
        End::Error("BAD_HELLO"),
    ));
    let auth = Local {
        require_auth: true,
        ..Local::node()
    };
    let node_v2 = HelloFields {
        min_version: 2,
        max_version: 3,
        node_id: 5,
        idle_timeout_ms: 0,
        ..HelloFields::default()
    };
    let t = T::default()
        .sent(vec![preface(), auth.hello_pattern()])
        .recv(&opening(&node_v2))
        .sent(vec![goaway("UNSUPPORTED_VERSION")]);
    v.push(tx(
        "hello.order.version-before-auth",
        "5.2",
        &["hello.order", "neg.version"],
        "an unauthenticated node with no common version: version overlap before authentication",
        &auth,
        t,
        End::Error("UNSUPPORTED_VERSION"),
    ));
    let short_bad = Raw::ctl(HELLO, 0).packet(
        &HelloFields {
            role: 7,
            ..client_hello()
        }
        .bytes()[..27],
    );
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&PREFACE)
        .recv(&short_bad)
        .sent(vec![goaway("BAD_HELLO")]);
    v.push(tx(
        "hello.order.length-first",
        "5.2",
        &["hello.order", "hello.length"],
        "27 bytes with an invalid role: BAD_HELLO",
        &n,
        t,
        End::Error("BAD_HELLO"),
    ));
    let t = start(
        &n,
        &HelloFields {
            extensions: vec![0; 996],
            ..client_hello()
        },
    )
    .open();
    v.push(tx(
        "hello.length-1024",
        "5.2",
        &["hello.length"],
        "a 1024-byte HELLO is accepted",
        &n,
        t,
        End::Open,
    ));
    let t = start(
        &n,
        &HelloFields {
            hello_flags: 0x5A,
            codecs: 0xF3,
            extensions: b"later".to_vec(),
            ..client_hello()
        },
    )
    .open();
    v.push(tx(
        "hello.reserved-ignored",
        "5.2",
        &["hello.reserved"],
        "reserved HELLO bits and extension bytes are ignored",
        &n,
        t,
        End::Open,
    ));
    for (id, bytes, desc) in [
        (
            "preface.bad",
            b"\x89FWIRE\r\x0b".to_vec(),
            "the last preface byte differs",
        ),
        (
            "preface.tls-record",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01],
            "the peer speaks TLS",
        ),
    ] {
        let t = T::default()
            .sent(vec![preface(), n.hello_pattern()])
            .recv(&bytes)
            .sent(vec![goaway("BAD_PREFACE")])
            .closed("BAD_PREFACE");
        v.push(tx(
            id,
            "3",
            &["preface.check", "close.on-error", "close.on-error-goaway"],
            desc,
            &n,
            t,
            End::Error("BAD_PREFACE"),
        ));
    }
}

pub(super) fn states(v: &mut Vec<Vector>) {
    let n = Local::node();
    let pre = || {
        T::default()
            .sent(vec![preface(), n.hello_pattern()])
            .recv(&PREFACE)
    };
    #[allow(clippy::type_complexity)]
    let cases: [(&str, Vec<u8>, &str, &[&'static str], &str); 4] = [
        ("state.data-before-hello", data(0, 0, b"early"), "UNEXPECTED_PACKET", &["state.permitted"], "DATA in AWAIT_HELLO"),
        ("state.ping-before-hello", ping(1, 1), "UNEXPECTED_PACKET", &["state.permitted"], "PING in AWAIT_HELLO"),
        ("state.order.kind-before-payload", Raw::data(60_000).bytes(), "UNEXPECTED_PACKET", &["state.order", "state.permitted"], "a DATA header in AWAIT_HELLO is rejected before its 60000 payload bytes arrive"),
        ("state.order.header-checks-first", Raw { r: 1, ..Raw::data(0) }.bytes(), "RESERVED_BIT", &["state.order", "hdr.order"], "a DATA header with an R bit in AWAIT_HELLO: the header checks of §4.9 come before the state check"),
    ];
    for (id, bytes, code, reqs, desc) in cases {
        let t = pre().recv(&bytes).sent(vec![goaway(code)]).closed(code);
        v.push(tx(id, "6.3", reqs, desc, &n, t, End::Error(code)));
    }
    let t = start(&n, &client_hello())
        .recv(&client_hello().packet())
        .sent(vec![goaway("UNEXPECTED_PACKET")]);
    v.push(tx(
        "state.second-hello",
        "6.3",
        &["state.permitted"],
        "a second HELLO once established",
        &n,
        t,
        End::Error("UNEXPECTED_PACKET"),
    ));
    let t = start(&n, &client_hello())
        .recv(
            &Raw {
                kind: 7,
                ..Raw::data(0)
            }
            .bytes(),
        )
        .recv(&ping(1, 2))
        .sent(vec![goaway("UNKNOWN_KIND")])
        .closed("UNKNOWN_KIND");
    v.push(tx(
        "state.unknown-kind-established",
        "4.3",
        &["hdr.kind", "close.on-error", "close.on-error-goaway"],
        "an unknown kind once established; the PING after it is not answered",
        &n,
        t,
        End::Error("UNKNOWN_KIND"),
    ));
    let mut both = Raw {
        kind: 8,
        ..Raw::data(0)
    }
    .bytes();
    both.extend(ping(3, 4));
    let t = start(&n, &client_hello())
        .recv(&both)
        .sent(vec![goaway("UNKNOWN_KIND")]);
    v.push(tx(
        "close.no-input-after-error",
        "6.4",
        &["close.on-error"],
        "a bad packet and a PING in one read: no PONG after the GOAWAY",
        &n,
        t,
        End::Error("UNKNOWN_KIND"),
    ));
    let t = start(&n, &client_hello())
        .recv(&credit(0, 0))
        .sent(vec![goaway("BAD_CONTROL")]);
    v.push(tx(
        "control.credit-zero",
        "5.6",
        &["credit.zero", "ctl.malformed"],
        "a CREDIT with both increments zero",
        &n,
        t,
        End::Error("BAD_CONTROL"),
    ));
    let t = start(&n, &client_hello())
        .recv(&Raw::ctl(PING, 0).route(0, 1, 0).packet(&ping_payload(1, 1)))
        .sent(vec![goaway("BAD_CONTROL")]);
    v.push(tx(
        "control.routed-ping",
        "4.6",
        &["hdr.control-route"],
        "a PING with a non-zero service",
        &n,
        t,
        End::Error("BAD_CONTROL"),
    ));
}

pub(super) fn sources(v: &mut Vec<Vector>) {
    let n = Local::node();
    let ext = Raw::data(0).src(77).packet(b"forged");
    let t = start(&n, &client_hello())
        .recv(&ext)
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.client-sets-x",
        "7.4",
        &["src.forbid"],
        "a client sends DATA with X = 1",
        &n,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let node_peer = HelloFields {
        node_id: 5,
        idle_timeout_ms: 0,
        ..HelloFields::default()
    };
    let t = start(&n, &node_peer)
        .recv(&ext)
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.node-sets-x",
        "7.4",
        &["src.forbid"],
        "a node sends DATA with X = 1",
        &n,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let proxy_peer = HelloFields {
        role: 3,
        node_id: 8,
        idle_timeout_ms: 0,
        ..HelloFields::default()
    };
    let t = start(&n, &proxy_peer)
        .recv(&ext)
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.untrusted-proxy",
        "7.4",
        &["src.trust"],
        "an unauthenticated proxy sends X = 1",
        &n,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let trusted = Local {
        trust_source: true,
        ..Local::node()
    };
    let t = start(&trusted, &proxy_peer)
        .recv(&ext)
        .recv(&data(0, 0, b"own"))
        .events(vec![data_ev(77, 0, 0, b"forged"), data_ev(8, 0, 0, b"own")]);
    v.push(tx(
        "source.trusted-proxy",
        "7.4",
        &["src.trust"],
        "a trusted proxy: the Source Node when X = 1, else the proxy's own id",
        &trusted,
        t,
        End::Open,
    ));
    let t = start(&trusted, &proxy_peer)
        .recv(&Raw::data(0).src(0xFFFF).packet(b"x"))
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.reserved-ffff",
        "7.4",
        &["src.reserved"],
        "a trusted proxy stamps Source Node 0xFFFF",
        &trusted,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    // §7.4 src.reserved holds for every packet that carries a Source Node, ERROR too
    let about = Raw::data(0).route(8, 0, 0).bytes();
    let err_ffff = Raw::ctl(ERROR, 0)
        .src(0xFFFF)
        .packet(&error_payload(0x0100, &about, b""));
    let t = start(&trusted, &proxy_peer)
        .recv(&err_ffff)
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.reserved-ffff-error",
        "7.4",
        &["src.reserved"],
        "a trusted proxy forwards an ERROR stamped with Source Node 0xFFFF: SOURCE_FORGED, as for DATA",
        &trusted,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let t = start(&n, &node_peer)
        .recv(&data(1, 0, b"n"))
        .events(vec![data_ev(5, 1, 0, b"n")]);
    v.push(tx(
        "source.node-peer",
        "7.4",
        &["src.forbid"],
        "DATA from a node: the source is its node_id; Destination Node 1 is our own id",
        &n,
        t,
        End::Open,
    ));
    let auth = Local {
        require_auth: true,
        ..Local::node()
    };
    let t = T::default()
        .sent(vec![preface(), auth.hello_pattern()])
        .recv(&opening(&node_peer))
        .sent(vec![goaway("BAD_HELLO")]);
    v.push(tx(
        "source.auth-required-node",
        "7.4",
        &["src.auth"],
        "authentication required, the peer claims role node without authenticating",
        &auth,
        t,
        End::Error("BAD_HELLO"),
    ));
    let bound = Local {
        authenticated: Some(("node", 5)),
        ..Local::node()
    };
    let t = start(&bound, &node_peer).open();
    v.push(tx(
        "source.authenticated-id-matches",
        "10.2",
        &["tls.node-binding", "src.auth"],
        "the peer authenticated as node 5 and announces node_id 5",
        &bound,
        t,
        End::Open,
    ));
    let other = HelloFields {
        node_id: 6,
        ..node_peer.clone()
    };
    let t = T::default()
        .sent(vec![preface(), bound.hello_pattern()])
        .recv(&opening(&other))
        .sent(vec![goaway("BAD_HELLO")]);
    v.push(tx(
        "source.authenticated-id-differs",
        "10.2",
        &["tls.node-binding"],
        "the peer authenticated as node 5 but announces node_id 6",
        &bound,
        t,
        End::Error("BAD_HELLO"),
    ));
    let proxy_id = Local {
        authenticated: Some(("proxy", 8)),
        ..Local::node()
    };
    let t = start(&proxy_id, &proxy_peer)
        .recv(&ext)
        .events(vec![data_ev(77, 0, 0, b"forged")]);
    v.push(tx(
        "source.authenticated-proxy",
        "7.4",
        &["src.trust", "tls.node-binding"],
        "the peer authenticated with the proxy identity 8 and announces role proxy, node_id 8: X = 1 is honoured",
        &proxy_id,
        t,
        End::Open,
    ));
    let t = start(&proxy_id, &proxy_peer)
        .recv(&Raw::data(0).src(0xFFFF).packet(b"x"))
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.authenticated-proxy-ffff",
        "7.4",
        &["src.reserved"],
        "an authenticated proxy stamps Source Node 0xFFFF",
        &proxy_id,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let node_id8 = Local {
        authenticated: Some(("node", 8)),
        ..Local::node()
    };
    let t = start(&node_id8, &proxy_peer)
        .recv(&ext)
        .sent(vec![goaway("SOURCE_FORGED")]);
    v.push(tx(
        "source.proxy-role-node-identity",
        "7.4",
        &["src.trust"],
        "the peer authenticated with the node identity 8 but announces role proxy: it is not authenticated as a proxy, X = 1 is SOURCE_FORGED",
        &node_id8,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    let node_id8_required = Local {
        require_auth: true,
        ..node_id8.clone()
    };
    let t = T::default()
        .sent(vec![preface(), node_id8_required.hello_pattern()])
        .recv(&opening(&proxy_peer))
        .sent(vec![goaway("BAD_HELLO")]);
    v.push(tx(
        "source.auth-required-proxy-node-identity",
        "7.4",
        &["src.auth"],
        "authentication required; the peer announces role proxy with only a node identity (same id): BAD_HELLO",
        &node_id8_required,
        t,
        End::Error("BAD_HELLO"),
    ));
    let c = Local::client();
    let t = start(&c, &proxy_peer)
        .recv(&ext)
        .events(vec![data_ev(77, 0, 0, b"forged")]);
    v.push(tx(
        "source.client-trusts-server",
        "7.4",
        &["src.client-trusts-server"],
        "a client with default settings behind a proxy: X = 1 from its proxy server is honoured, the Source Node is the source",
        &c,
        t,
        End::Open,
    ));
    let legacy = Local {
        trust_server_as_proxy: false,
        ..Local::client()
    };
    let t = start(&legacy, &proxy_peer)
        .recv(&ext)
        .events(vec![data_ev(77, 0, 0, b"forged")]);
    v.push(tx(
        "source.client-untrusted-server",
        "7.4",
        &["src.client-trusts-server"],
        "a client whose configuration says trust_server_as_proxy false (the MAY of document version 1.0): a client always honours X = 1 from its proxy server now, so it is not SOURCE_FORGED",
        &legacy,
        t,
        End::Open,
    ));
    let t = start(&c, &node_peer).open();
    v.push(tx(
        "source.client-accepts-server-role",
        "7.4",
        &["src.auth"],
        "a client accepts its server's role node without authenticating it further (it chose the server)",
        &c,
        t,
        End::Open,
    ));
    // spec §7.4 [[src.auth]]: the defaults of a node and of a proxy (require_auth)
    for (local, name) in [(Local::node(), "node"), (Local::proxy(), "proxy")] {
        let default = Local {
            require_auth: true,
            ..local
        };
        for (peer, role) in [(&node_peer, "node"), (&proxy_peer, "proxy")] {
            let t = T::default()
                .sent(vec![preface(), default.hello_pattern()])
                .recv(&opening(peer))
                .sent(vec![goaway("BAD_HELLO")]);
            v.push(tx(
                &format!("source.auth-default-{name}-refuses-{role}"),
                "7.4",
                &["src.auth"],
                &format!("a {name} with default settings (no mutual TLS, no trusted address) and a peer claiming role {role}: BAD_HELLO, so no unauthenticated peer chooses a source"),
                &default,
                t,
                End::Error("BAD_HELLO"),
            ));
            let configured = Local {
                trust_source: true,
                ..default.clone()
            };
            let t = start(&configured, peer).open();
            v.push(tx(
                &format!("source.auth-configured-{name}-accepts-{role}"),
                "7.4",
                &["src.auth"],
                &format!("a {name} that trusts the peer by explicit configuration (a trusted address) accepts its role {role}"),
                &configured,
                t,
                End::Open,
            ));
        }
    }
    let t = start(&auth, &client_hello()).open();
    v.push(tx(
        "source.auth-required-client",
        "7.4",
        &["src.auth"],
        "authentication required: a client needs none",
        &auth,
        t,
        End::Open,
    ));
}

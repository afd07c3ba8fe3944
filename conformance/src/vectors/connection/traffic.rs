//! Transcripts of routing, flow control and compression (§7, §8, §9).

use serde_json::json;

use super::*;

pub(super) fn error_pattern(code: &str, to: u16, header: &[u8]) -> Value {
    json!({ "kind": "ERROR", "node": to, "service": 0, "channel": 0, "code": code_of(code), "header": hex(header) })
}

pub(super) fn routing(v: &mut Vec<Vector>) {
    let only0 = Local {
        services: Some(vec![0]),
        peer_id: 300,
        ..Local::node()
    };
    let bad = Raw::data(0).route(0, 5, 2).packet(b"to service 5");
    let t = start(&only0, &client_hello())
        .recv(&bad)
        .recv(&data(0, 0, b"fine"))
        .sent(vec![error_pattern("NO_SERVICE", 300, &bad[..8])])
        .events(vec![data_ev(300, 0, 0, b"fine")])
        .open();
    v.push(tx("route.no-service", "7.2", &["route.no-service", "error.route", "err.scope"], "DATA for an unregistered service: ERROR NO_SERVICE to the source, the connection continues", &only0, t, End::Open));
    let strict = Local {
        services: Some(vec![0]),
        codecs: 1,
        ..Local::node()
    };
    let far_bad = Raw {
        cod: 2,
        ..Raw::data(0).route(42, 9, 0)
    }
    .packet(&[0xFF; 4]);
    let svc_bad = Raw {
        cod: 2,
        ..Raw::data(0).route(0, 9, 0)
    }
    .packet(&[0xFF; 4]);
    let codec_bad = Raw {
        cod: 2,
        ..Raw::data(0)
    }
    .packet(&[0xFF; 4]);
    for (id, pkt, code, desc) in [
        (
            "route-before-service",
            far_bad,
            "NO_ROUTE",
            "node 42, service 9, zlib garbage: the route is checked first",
        ),
        (
            "service-before-codec",
            svc_bad,
            "NO_SERVICE",
            "service 9, zlib garbage: the service before the codec",
        ),
        (
            "codec-before-data",
            codec_bad,
            "CODEC_NOT_NEGOTIATED",
            "zlib garbage to an endpoint without zlib: the codec before the data",
        ),
    ] {
        let t = start(&strict, &client_hello())
            .recv(&pkt)
            .sent(vec![error_pattern(code, 0, &pkt[..8])])
            .open();
        v.push(tx(
            &format!("data-order.{id}"),
            "6.3",
            &["state.data-order"],
            desc,
            &strict,
            t,
            End::Open,
        ));
    }
    let n = Local::node();
    let far = data(42, 0, b"far");
    let t = start(&n, &client_hello())
        .recv(&far)
        .sent(vec![error_pattern("NO_ROUTE", 0, &far[..8])])
        .open();
    v.push(tx(
        "route.not-a-proxy",
        "7.3",
        &["route.no-route", "error.route", "err.scope"],
        "a node is not a proxy: DATA for node 42 is NO_ROUTE",
        &n,
        t,
        End::Open,
    ));
    let err_far = Raw::ctl(ERROR, 0).route(42, 0, 0).packet(&error_payload(
        0x0100,
        &Raw::data(0).route(5, 0, 0).bytes(),
        b"",
    ));
    let t = start(&n, &client_hello())
        .recv(&err_far)
        .recv(&ping(1, 1))
        .sent(vec![json!({ "kind": "PONG", "id": "1" })])
        .open();
    v.push(tx(
        "error.no-loop",
        "5.7",
        &["error.no-loop", "route.no-route"],
        "an undeliverable ERROR is discarded without an ERROR about it",
        &n,
        t,
        End::Open,
    ));
    let hdr = Raw::data(0).route(5, 0, 0).bytes();
    let err_local = Raw::ctl(ERROR, 0).packet(&error_payload(0x0100, &hdr, b"no route"));
    let t = start(&n, &client_hello()).recv(&err_local).events(vec![json!({ "event": "packet_error", "code": code_of("NO_ROUTE"), "source": 0, "header": hex(&hdr) })]);
    v.push(tx(
        "error.delivered",
        "5.7",
        &["error.layout"],
        "an ERROR for us is reported to the application",
        &n,
        t,
        End::Open,
    ));
    let p = Local {
        peer_id: 300,
        ..Local::proxy()
    };
    let raw = Raw {
        hints: 2,
        cod: 2,
        ..Raw::data(0).route(42, 7, 3)
    };
    let zipped = raw.packet(&unhex_const(Z_HELLO_L6));
    let stamped = Raw {
        length: (zipped.len() - 8) as u16,
        ..raw
    }
    .src(300)
    .expected();
    let second = data(43, 1, b"next");
    let stamped2 = Raw {
        length: 4,
        ..Raw::data(0).route(43, 1, 0)
    }
    .src(300)
    .expected();
    let ffff = data(0xFFFF, 0, b"nobody");
    for (id, local) in [
        ("route.dest-ffff", Local::node()),
        ("route.proxy-dest-ffff", p.clone()),
    ] {
        let source = local.peer_id;
        let t = start(&local, &client_hello())
            .recv(&ffff)
            .sent(vec![error_pattern("NO_ROUTE", source, &ffff[..8])])
            .events(vec![])
            .open();
        v.push(tx(id, "7.3", &["route.no-route", "state.data-order"], &format!("Destination Node 0xFFFF never names a node: NO_ROUTE from a {}, never delivered or forwarded", local.role), &local, t, End::Open));
    }
    let err_ffff = Raw::ctl(ERROR, 0)
        .route(0xFFFF, 0, 0)
        .packet(&error_payload(
            0x0100,
            &Raw::data(0).route(5, 0, 0).bytes(),
            b"",
        ));
    let t = start(&p, &client_hello())
        .recv(&err_ffff)
        .sent(vec![])
        .events(vec![])
        .open();
    v.push(tx(
        "route.error-dest-ffff",
        "7.3",
        &["route.no-route", "error.no-loop"],
        "a proxy receives an ERROR for Destination Node 0xFFFF: discarded silently, not forwarded",
        &p,
        t,
        End::Open,
    ));
    let t = start(&p, &client_hello())
        .recv(&zipped)
        .recv(&second)
        .events(vec![
            json!({ "event": "forward", "header": stamped, "payload": hex(&zipped[8..]) }),
            json!({ "event": "forward", "header": stamped2, "payload": hex(b"next") }),
        ]);
    v.push(tx("route.proxy-forwards", "7.3", &["route.forward-unchanged", "route.stamp", "src.stamp", "route.order", "hdr.hint"], "a proxy forwards a compressed DATA for node 42 and then one for 43: stamped X = 1 with the client's id, payload, codec, hints, service and channel unchanged, order kept", &p, t, End::Open));
}

pub(super) fn unhex_const(s: &str) -> Vec<u8> {
    crate::vectors::json::unhex(s).expect("embedded hex")
}

pub(super) fn flow(v: &mut Vec<Vector>) {
    let two = Local::node().limit("initial_credit_packets", 2);
    let mut three = Vec::new();
    for p in [b"a", b"b"] {
        three.extend(data(0, 0, p));
    }
    let t = start(&two, &client_hello())
        .recv(&three)
        .events(vec![data_ev(0, 0, 0, b"a"), data_ev(0, 0, 0, b"b")])
        .open();
    v.push(tx(
        "flow.packets.at-limit",
        "8",
        &["flow.exceed"],
        "initial_credit_packets 2: two DATA packets are within credit",
        &two,
        t,
        End::Open,
    ));
    three.extend(data(0, 0, b"c"));
    let t = start(&two, &client_hello())
        .recv(&three)
        .sent_ignoring(vec![goaway("FLOW_CONTROL")], &["CREDIT"])
        .closed("FLOW_CONTROL");
    v.push(tx("flow.packets.over-limit", "8", &["flow.exceed"], "a third DATA packet before any credit was granted back (events are taken only at expect_events)", &two, t, End::Error("FLOW_CONTROL")));
    let small = Local::node()
        .limit("max_payload", 1024)
        .limit("initial_credit_bytes", 1024);
    let full = data(0, 0, &[0x11; 1024]);
    let t = start(&small, &client_hello()).recv(&full).open();
    v.push(tx(
        "flow.bytes.at-limit",
        "8",
        &["flow.exceed"],
        "initial_credit_bytes 1024: a 1024-byte DATA uses it exactly",
        &small,
        t,
        End::Open,
    ));
    let t = start(&small, &client_hello())
        .recv(&[full.clone(), Raw::data(1).bytes()].concat())
        .sent_ignoring(vec![goaway("FLOW_CONTROL")], &["CREDIT"]);
    v.push(tx(
        "flow.bytes.over-limit",
        "8",
        &["flow.exceed", "state.order"],
        "one more byte of DATA: rejected from its header alone",
        &small,
        t,
        End::Error("FLOW_CONTROL"),
    ));
    let n = Local::node();
    let granted = HelloFields {
        credit_packets: 1_048_576,
        ..client_hello()
    };
    let to_max = credit(u32::MAX - 1_048_576, 0);
    let t = start(&n, &granted).recv(&to_max).open();
    v.push(tx(
        "flow.overflow.at-limit",
        "8",
        &["flow.overflow"],
        "CREDIT bringing outstanding packet credit to exactly 2^32 - 1",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &granted)
        .recv(&to_max)
        .recv(&credit(1, 0))
        .sent(vec![goaway("FLOW_CONTROL")]);
    v.push(tx(
        "flow.overflow.over-limit",
        "8",
        &["flow.overflow"],
        "one more packet of credit: above 2^32 - 1",
        &n,
        t,
        End::Error("FLOW_CONTROL"),
    ));
    let bytes_peer = HelloFields {
        credit_bytes: 2_147_483_647,
        ..client_hello()
    };
    let t = start(&n, &bytes_peer)
        .recv(&credit(0, 2_147_483_648))
        .recv(&credit(0, 1))
        .sent(vec![goaway("FLOW_CONTROL")]);
    v.push(tx(
        "flow.overflow.bytes",
        "8",
        &["flow.overflow"],
        "byte credit 2^31 - 1 + 2^31 = 2^32 - 1, then one more byte",
        &n,
        t,
        End::Error("FLOW_CONTROL"),
    ));
    let t = start(&n, &granted)
        .recv(&[to_max.clone(), credit(1, 0), ping(3, 4)].concat())
        .sent(vec![goaway("FLOW_CONTROL")]);
    v.push(tx(
        "close.no-input-after-payload-error",
        "6.4",
        &["close.on-error", "close.on-error-goaway", "flow.overflow"],
        "a CREDIT over 2^32 - 1 (an error found in a complete packet) and a PING in one read: no PONG after the GOAWAY",
        &n,
        t,
        End::Error("FLOW_CONTROL"),
    ));
    let one = HelloFields {
        credit_packets: 1,
        ..client_hello()
    };
    let t = start(&n, &one)
        .app(send(b"first", "none", false))
        .app(send(b"second", "none", false))
        .sent(vec![json!({ "kind": "DATA", "payload": hex(b"first") })]);
    v.push(tx(
        "flow.send-needs-credit",
        "8",
        &["flow.send", "neg.directional"],
        "the peer granted 1 packet: only the first of two DATA packets is sent",
        &n,
        t,
        End::Open,
    ));
    let peer_small = HelloFields {
        max_payload: 1024,
        credit_bytes: 4096,
        ..client_hello()
    };
    let t = start(&n, &peer_small)
        .app(send(&[0xC3; 1025], "none", false))
        .app(send(&[0xC3; 1024], "none", false))
        .sent(vec![json!({ "kind": "DATA", "length": 1024 })]);
    v.push(tx(
        "flow.send-max-payload",
        "4.5",
        &["hdr.length-send", "neg.directional"],
        "the peer announced max_payload 1024: a 1025-byte uncompressed payload is not sent",
        &n,
        t,
        End::Open,
    ));
}

/// §8 [[flow.no-deadlock]]: a window no larger than one packet still makes progress.
pub(super) fn no_deadlock(v: &mut Vec<Vector>) {
    let tight = Local::node()
        .limit("max_payload", 1024)
        .limit("initial_credit_bytes", 1024)
        .limit("initial_credit_packets", 2);
    let t = start(&tight, &client_hello())
        .recv(&data(0, 0, &[7; 600]))
        .events(vec![data_ev(0, 0, 0, &[7; 600])])
        .sent_exact(vec![json!({ "kind": "CREDIT" })])
        .recv(&data(0, 0, &[8; 1024]))
        .events(vec![data_ev(0, 0, 0, &[8; 1024])])
        .open();
    v.push(tx("flow.no-deadlock", "8", &["flow.no-deadlock", "flow.grant"], "max_payload and initial_credit_bytes 1024: once a 600-byte DATA is consumed, credit is granted so that a full 1024-byte DATA fits", &tight, t, End::Open));
    let one = Local {
        services: Some(vec![0]),
        ..Local::node()
    }
    .limit("max_payload", 1024)
    .limit("initial_credit_bytes", 1024)
    .limit("initial_credit_packets", 1);
    let lost = Raw::data(0).route(0, 9, 0).packet(&[9; 1024]);
    let t = start(&one, &client_hello())
        .recv(&lost)
        .sent_only(vec![json!({ "kind": "CREDIT" })], &["ERROR", "PING"])
        .recv(&data(0, 0, &[8; 1024]))
        .events(vec![data_ev(0, 0, 0, &[8; 1024])])
        .open();
    v.push(tx("flow.discarded-data-consumes-credit", "8", &["flow.no-deadlock", "flow.exceed", "route.no-service"], "a window of 1 packet and 1024 bytes: a 1024-byte DATA for an unregistered service is discarded (NO_SERVICE); it consumed the whole window and, no application event being involved, its credit is granted back with a CREDIT although the application took no event, so the next full DATA fits", &one, t, End::Open));
}

pub(super) fn send(payload: &[u8], codec: &str, never_compress: bool) -> Value {
    json!({ "app": "send_data", "node": 0, "service": 0, "channel": 0, "payload": hex(payload), "codec": codec, "never_compress": never_compress })
}

pub(super) fn compression(v: &mut Vec<Vector>) {
    let snappy_only = Local {
        codecs: 1,
        ..Local::node()
    };
    let zipped = Raw {
        cod: 2,
        ..Raw::data(0)
    }
    .packet(&unhex_const(Z_HELLO_L6));
    let t = start(&snappy_only, &client_hello())
        .recv(&zipped)
        .recv(&data(0, 0, b"after"))
        .sent(vec![error_pattern("CODEC_NOT_NEGOTIATED", 0, &zipped[..8])])
        .events(vec![data_ev(0, 0, 0, b"after")]);
    v.push(tx(
        "compression.not-negotiated",
        "9.3",
        &["comp.not-negotiated", "comp.packet-error", "err.scope"],
        "zlib to an endpoint that announced snappy only: a packet error, later packets unaffected",
        &snappy_only,
        t,
        End::Open,
    ));
    let n = Local::node();
    let bomb = Raw {
        cod: 2,
        ..Raw::data(0)
    }
    .packet(&unhex_const(Z_BOMB_1MIB));
    let t = start(&n, &client_hello())
        .recv(&bomb)
        .recv(&data(0, 0, b"ok"))
        .sent(vec![error_pattern("RATIO_EXCEEDED", 0, &bomb[..8])])
        .events(vec![data_ev(0, 0, 0, b"ok")]);
    v.push(tx(
        "compression.bomb",
        "9.3",
        &["comp.cap", "comp.cap-error", "comp.packet-error"],
        "a 1 MiB zlib bomb: RATIO_EXCEEDED for that packet only",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&zipped)
        .recv(&zipped)
        .events(vec![
            data_ev(0, 0, 0, b"hello, fleetwire"),
            data_ev(0, 0, 0, b"hello, fleetwire"),
        ]);
    v.push(tx(
        "compression.zlib-twice",
        "9.1",
        &["comp.independent"],
        "the same zlib payload twice: each packet decompresses on its own",
        &n,
        t,
        End::Open,
    ));
    let first = Raw {
        cod: 1,
        ..Raw::data(0)
    }
    .packet(&[5, 0x10, b'h', b'e', b'l', b'l', b'o']);
    let second = Raw {
        cod: 1,
        ..Raw::data(0)
    }
    .packet(&[5, 0x11, 5, 0]);
    let t = start(&n, &client_hello())
        .recv(&first)
        .recv(&second)
        .sent(vec![error_pattern("DECOMPRESSION_FAILED", 0, &second[..8])])
        .events(vec![data_ev(0, 0, 0, b"hello")]);
    v.push(tx(
        "compression.no-shared-history",
        "9.1",
        &["comp.independent", "comp.malformed", "comp.packet-error"],
        "a snappy copy reaching into the previous packet's output is malformed",
        &n,
        t,
        End::Open,
    ));
    let none_peer = HelloFields {
        codecs: 0,
        ..client_hello()
    };
    let text = b"fleetwire routes packets by header; ".repeat(8);
    let t = start(&n, &none_peer)
        .app(send(&text, "zlib", false))
        .sent(vec![
            json!({ "kind": "DATA", "codec": "none", "payload": hex(&text) }),
        ]);
    v.push(tx(
        "compression.send-negotiated",
        "9.2",
        &["comp.send-negotiated", "neg.directional"],
        "the peer announced no codec: zlib is not used",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello()).app(send(&text, "zlib", true)).sent(vec![json!({ "kind": "DATA", "codec": "none", "never_compress": true, "payload": hex(&text) })]);
    v.push(tx(
        "compression.never-compress",
        "9.2",
        &["comp.never", "hdr.never-compress"],
        "a payload marked N = 1 is never compressed",
        &n,
        t,
        End::Open,
    ));
    let zeros = vec![0u8; 2000];
    let tight = HelloFields {
        max_ratio: 1,
        ..client_hello()
    };
    let t = start(&n, &tight)
        .app(send(&zeros, "zlib", false))
        .sent(vec![
            json!({ "kind": "DATA", "codec": "none", "length": 2000 }),
        ]);
    v.push(tx(
        "compression.send-cap",
        "9.2",
        &["comp.send-cap", "neg.directional"],
        "the peer's max_ratio 1 makes any compressed form exceed its cap: sent uncompressed",
        &n,
        t,
        End::Open,
    ));
}

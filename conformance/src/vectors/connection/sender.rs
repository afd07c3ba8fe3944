//! Transcripts of behaviours the others leave out: compressed sends, limits that differ
//! between the two HELLOs, ERROR through a proxy, byte credit when sending, timers with
//! partial input, the order of the §6.3 checks, empty payloads against negotiation,
//! keepalive, and the client side of certificate binding (§10.2).

use serde_json::json;

use super::traffic::{error_pattern, send};
use super::*;

/// A snappy block of `n` (≤ 16383) bytes `b`: one literal, then copies of offset 1.
fn snappy_run(b: u8, n: usize) -> Vec<u8> {
    let mut out = vec![(n & 0x7F) as u8 | 0x80, (n >> 7) as u8, 0x00, b];
    let mut left = n - 1;
    while left > 0 {
        let len = left.min(64);
        out.extend([(((len - 1) << 2) | 2) as u8, 1, 0]);
        left -= len;
    }
    out
}

/// `n` bytes that do not compress (a fixed pseudo-random sequence).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_F491;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn data_pattern(payload: &[u8]) -> serde_json::Value {
    json!({ "kind": "DATA", "never_compress": false, "decompressed": hex(payload) })
}

pub(super) fn sender(v: &mut Vec<Vector>) {
    compressed_sends(v);
    directional_limits(v);
    proxy_error(v);
    byte_credit(v);
    partial_input_timers(v);
    check_order(v);
    keepalive(v);
    client_binding(v);
}

fn compressed_sends(v: &mut Vec<Vector>) {
    let n = Local::node();
    let text = b"fleetwire routes packets by header; ".repeat(8);
    for codec in ["snappy", "zlib"] {
        let t = start(&n, &client_hello())
            .app(send(&text, codec, false))
            .sent(vec![data_pattern(&text)]);
        v.push(tx(
            &format!("compression.send-{codec}"),
            "9.2",
            &["comp.send-format", "comp.independent", "neg.directional"],
            &format!("a compressible payload sent with {codec} preferred, the peer announcing both codecs: whether compressed or not, it decodes to the application bytes (compressing is the sender's choice)"),
            &n,
            t,
            End::Open,
        ));
    }
    let rough = noise(600);
    let t = start(&n, &client_hello())
        .app(send(&rough, "zlib", false))
        .sent(vec![
            json!({ "kind": "DATA", "codec": "none", "payload": hex(&rough) }),
        ]);
    v.push(tx(
        "compression.send-incompressible",
        "9.2",
        &["comp.threshold"],
        "600 incompressible bytes with zlib preferred: the compressed form is not smaller, so the uncompressed form is sent",
        &n,
        t,
        End::Open,
    ));
    let empty_peer = HelloFields {
        codecs: 3,
        ..client_hello()
    };
    let t = start(&n, &empty_peer)
        .app(send(b"", "snappy", false))
        .sent(vec![
            json!({ "kind": "DATA", "codec": "none", "length": 0 }),
        ]);
    v.push(tx(
        "compression.send-empty",
        "9.2",
        &["comp.send-format", "comp.threshold"],
        "an empty payload with snappy preferred is sent uncompressed (an empty compressed payload is malformed, §9.3)",
        &n,
        t,
        End::Open,
    ));
}

fn directional_limits(v: &mut Vec<Vector>) {
    // own max_payload 2048, the peer's 1024: receiving follows our own limit
    let own = Local::node()
        .limit("max_payload", 2048)
        .limit("initial_credit_bytes", 8192);
    let peer_small = HelloFields {
        max_payload: 1024,
        credit_bytes: 4096,
        ..client_hello()
    };
    let big = vec![0x42; 2048];
    let t = start(&own, &peer_small)
        .recv(&data(0, 0, &big))
        .events(vec![data_ev(0, 0, 0, &big)])
        .app(send(&big[..1500], "none", false))
        .sent(vec![])
        .app(send(&big[..1024], "none", false))
        .sent(vec![json!({ "kind": "DATA", "length": 1024 })]);
    v.push(tx(
        "limits.directional.max-payload",
        "6.2",
        &["neg.directional", "hdr.length-max", "hdr.length-send"],
        "own max_payload 2048, the peer's 1024: a 2048-byte DATA is received; the endpoint sends at most 1024 bytes",
        &own,
        t,
        End::Open,
    ));
    let t = start(&own, &peer_small)
        .recv(&Raw::data(2049).bytes())
        .sent(vec![goaway("PAYLOAD_TOO_LARGE")])
        .closed("PAYLOAD_TOO_LARGE");
    v.push(tx(
        "limits.directional.max-payload-over",
        "6.2",
        &["neg.directional", "hdr.length-max"],
        "own max_payload 2048: a header announcing 2049 bytes is PAYLOAD_TOO_LARGE, whatever the peer announced",
        &own,
        t,
        End::Error("PAYLOAD_TOO_LARGE"),
    ));
    // decompression is capped by our own limits, never by the peer's
    let zeros = snappy_run(b'a', 1000);
    let packed = Raw {
        cod: 1,
        ..Raw::data(0)
    }
    .packet(&zeros);
    let strict_peer = HelloFields {
        max_ratio: 1,
        max_decompressed: 1024,
        ..client_hello()
    };
    let t = start(&n_all(), &strict_peer)
        .recv(&packed)
        .events(vec![data_ev(0, 0, 0, &[b'a'; 1000])]);
    v.push(tx(
        "limits.directional.own-cap",
        "9.3",
        &["neg.directional", "comp.cap"],
        "the peer announced max_ratio 1: a snappy DATA of ratio ~19 is within our own default cap and is delivered",
        &n_all(),
        t,
        End::Open,
    ));
    let tight = Local::node().limit("max_ratio", 10);
    let t = start(&tight, &client_hello())
        .recv(&packed)
        .sent(vec![error_pattern("RATIO_EXCEEDED", 0, &packed[..8])])
        .events(vec![]);
    v.push(tx(
        "limits.directional.own-ratio",
        "9.3",
        &["neg.directional", "comp.cap", "comp.cap-error"],
        "own max_ratio 10, the peer's 100: a snappy DATA of ratio ~19 is RATIO_EXCEEDED",
        &tight,
        t,
        End::Open,
    ));
}

fn n_all() -> Local {
    Local::node()
}

fn proxy_error(v: &mut Vec<Vector>) {
    let p = Local {
        peer_id: 300,
        ..Local::proxy()
    };
    let about = Raw::data(0).route(300, 0, 0).src(42).bytes();
    let raw = Raw::ctl(ERROR, 0).route(42, 0, 0);
    let err = raw.packet(&error_payload(0x0101, &about, b"no service"));
    let stamped = Raw {
        length: (err.len() - 8) as u16,
        ..raw
    }
    .src(300)
    .expected();
    let t = start(&p, &client_hello())
        .recv(&err)
        .sent(vec![])
        .events(vec![
            json!({ "event": "forward", "header": stamped, "payload": hex(&err[8..]) }),
        ]);
    v.push(tx(
        "route.proxy-forwards-error",
        "7.3",
        &["route.forward-unchanged", "route.stamp", "src.stamp", "error.route"],
        "a proxy forwards an ERROR for node 42 like DATA: stamped with the client's id, payload unchanged",
        &p,
        t,
        End::Open,
    ));
    let hinted = Raw {
        hints: 2,
        ..Raw::data(0).route(0, 9, 4)
    }
    .packet(b"to service 9");
    let only0 = Local {
        services: Some(vec![0]),
        ..Local::node()
    };
    let t = start(&only0, &client_hello())
        .recv(&hinted)
        .sent(vec![error_pattern("NO_SERVICE", 0, &hinted[..8])])
        .events(vec![]);
    v.push(tx(
        "error.header-exact",
        "5.7",
        &["error.route", "hdr.hint"],
        "an ERROR embeds the discarded header exactly as received, hint bits included",
        &only0,
        t,
        End::Open,
    ));
}

fn byte_credit(v: &mut Vec<Vector>) {
    let n = Local::node();
    let stingy = HelloFields {
        max_payload: 1024,
        credit_packets: 100,
        credit_bytes: 1024,
        ..client_hello()
    };
    let chunk = vec![0x33; 600];
    let t = start(&n, &stingy)
        .app(send(&chunk, "none", false))
        .sent_exact(vec![json!({ "kind": "DATA", "length": 600 })])
        .app(send(&chunk, "none", false))
        .sent_exact(vec![])
        .recv(&credit(0, 600))
        .app(send(&chunk, "none", false))
        .sent_only(vec![json!({ "kind": "DATA", "length": 600 })], &["PING"]);
    v.push(tx(
        "flow.send-byte-credit",
        "8",
        &["flow.send"],
        "the peer grants 100 packets but only 1024 bytes: a second 600-byte DATA waits for a CREDIT of bytes",
        &n,
        t,
        End::Open,
    ));
}

fn partial_input_timers(v: &mut Vec<Vector>) {
    let quick = Local::node().limit("idle_timeout_ms", 2000);
    let pkt = data(0, 0, b"xyz");
    let t = start(&quick, &client_hello())
        .at(1500)
        .recv(&pkt[..3])
        .tick(3000)
        .open()
        .tick(3500)
        .sent(vec![goaway("TIMEOUT")])
        .closed("TIMEOUT");
    v.push(tx(
        "timeout.idle.partial-input",
        "6.5",
        &["timeout.close", "timeout.boundary"],
        "idle_timeout_ms 2000: 3 bytes of a header at 1500 ms restart the idle timer (any byte does), so it expires at 3500 ms, not 2000 ms",
        &quick,
        t,
        End::Error("TIMEOUT"),
    ));
    let n = Local::node();
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&PREFACE[..4])
        .tick(6000)
        .open()
        .tick(10_000)
        .sent(vec![goaway("TIMEOUT")])
        .closed("TIMEOUT");
    v.push(tx(
        "timeout.preface-partial",
        "6.5",
        &["timeout.close", "timeout.boundary"],
        "half a preface at 0 ms: the header timer (5000 ms) does not apply to the preface; the handshake timer closes at 10000 ms",
        &n,
        t,
        End::Error("TIMEOUT"),
    ));
}

fn check_order(v: &mut Vec<Vector>) {
    let n = Local::node().limit("initial_credit_packets", 1);
    // a second HELLO, malformed: UNEXPECTED_PACKET (§6.3) before its payload (§5)
    let bad_hello = Raw::ctl(HELLO, 0).packet(&[1; 5]);
    let t = start(&n, &client_hello())
        .recv(&bad_hello)
        .sent(vec![goaway("UNEXPECTED_PACKET")])
        .closed("UNEXPECTED_PACKET");
    v.push(tx(
        "state.order.permitted-before-payload",
        "6.3",
        &["state.order", "state.permitted"],
        "a second HELLO whose payload is also malformed: the state check comes first, UNEXPECTED_PACKET, not BAD_HELLO",
        &n,
        t,
        End::Error("UNEXPECTED_PACKET"),
    ));
    // X = 1 from a client that also exceeds the credit: SOURCE_FORGED before FLOW_CONTROL
    let two = [data(0, 0, b"a"), Raw::data(0).src(5).packet(b"b")].concat();
    let t = start(&n, &client_hello())
        .recv(&two)
        .sent(vec![goaway("SOURCE_FORGED")])
        .closed("SOURCE_FORGED");
    v.push(tx(
        "state.order.source-before-credit",
        "6.3",
        &["state.order", "src.forbid"],
        "initial_credit_packets 1, then a second DATA with X = 1 from a client: SOURCE_FORGED (check 2) before FLOW_CONTROL (check 3)",
        &n,
        t,
        End::Error("SOURCE_FORGED"),
    ));
    // DATA after the peer's GOAWAY that also exceeds the credit: the kind check (1)
    // comes before the credit check (3), so never FLOW_CONTROL
    let late = [data(0, 0, b"a"), goaway_pkt(0, 0, b""), data(0, 0, b"b")].concat();
    let t = start(&n, &client_hello()).recv(&late);
    v.push(tx(
        "state.order.permitted-before-credit",
        "6.3",
        &["state.order", "state.permitted"],
        "initial_credit_packets 1, one DATA, the peer's GOAWAY, then a second DATA: UNEXPECTED_PACKET (check 1) before FLOW_CONTROL (check 3), or, if the receiver answered at once and closed without processing the rest, closed with NO_ERROR",
        &n,
        t,
        End::Either(
            Box::new(End::Closed("NO_ERROR")),
            Box::new(End::Error("UNEXPECTED_PACKET")),
        ),
    ));
    // DATA over the credit with a malformed compressed payload: FLOW_CONTROL
    let bad_zip = Raw {
        cod: 2,
        ..Raw::data(0)
    }
    .packet(&[0x78, 0x9c, 0xFF]);
    let t = start(&n, &client_hello())
        .recv(&[data(0, 0, b"a"), bad_zip].concat())
        .sent(vec![goaway("FLOW_CONTROL")])
        .closed("FLOW_CONTROL");
    v.push(tx(
        "state.order.credit-before-payload",
        "6.3",
        &["state.order", "flow.exceed"],
        "a DATA beyond the credit with a malformed zlib payload: FLOW_CONTROL (before the payload is looked at), not DECOMPRESSION_FAILED",
        &n,
        t,
        End::Error("FLOW_CONTROL"),
    ));
    // empty compressed payloads against negotiation (§6.3 data order 3 before 4)
    let snappy_only = Local {
        codecs: 1,
        ..Local::node()
    };
    let empty_zlib = Raw {
        cod: 2,
        ..Raw::data(0)
    }
    .packet(b"");
    let empty_snappy = Raw {
        cod: 1,
        ..Raw::data(0)
    }
    .packet(b"");
    let t = start(&snappy_only, &client_hello())
        .recv(&empty_zlib)
        .sent(vec![error_pattern(
            "CODEC_NOT_NEGOTIATED",
            0,
            &empty_zlib[..8],
        )])
        .recv(&empty_snappy)
        .sent(vec![error_pattern(
            "DECOMPRESSION_FAILED",
            0,
            &empty_snappy[..8],
        )])
        .events(vec![])
        .open();
    v.push(tx(
        "data-order.empty-vs-negotiation",
        "6.3",
        &["state.data-order", "comp.not-negotiated", "comp.malformed"],
        "empty payloads with a codec: zlib not announced is CODEC_NOT_NEGOTIATED (check 3), snappy announced is DECOMPRESSION_FAILED (check 4)",
        &snappy_only,
        t,
        End::Open,
    ));
}

fn keepalive(v: &mut Vec<Vector>) {
    let n = Local::node();
    let chatty_peer = HelloFields {
        idle_timeout_ms: 2000,
        ..client_hello()
    };
    let t = start(&n, &chatty_peer)
        .tick(1000)
        .sent_only(vec![json!({ "kind": "PING" })], &["CREDIT"])
        .open();
    v.push(tx(
        "keepalive.half-idle",
        "6.2",
        &["neg.keepalive"],
        "the peer's idle_timeout_ms is 2000 and nothing was sent since 0 ms: a PING at 1000 ms, half the timeout",
        &n,
        t,
        End::Open,
    ));
}

fn client_binding(v: &mut Vec<Vector>) {
    let server = HelloFields {
        node_id: 5,
        ..HelloFields::default()
    };
    let bound = Local {
        authenticated: Some(("node", 5)),
        ..Local::client()
    };
    let t = start(&bound, &server).open();
    v.push(tx(
        "auth.client-binds-server-id",
        "10.2",
        &["tls.client-binding"],
        "a client whose server's certificate names fleetwire:node:5 accepts the server's HELLO with node_id 5",
        &bound,
        t,
        End::Open,
    ));
    let other = Local {
        authenticated: Some(("node", 6)),
        ..Local::client()
    };
    let t = T::default()
        .sent(vec![preface(), other.hello_pattern()])
        .recv(&opening(&server))
        .sent(vec![goaway("BAD_HELLO")])
        .closed("BAD_HELLO");
    v.push(tx(
        "auth.client-rejects-server-id",
        "10.2",
        &["tls.client-binding"],
        "a client whose server's certificate names fleetwire:node:6 closes with BAD_HELLO when the server's HELLO announces node_id 5",
        &other,
        t,
        End::Error("BAD_HELLO"),
    ));
}

//! Transcripts of shutdown, timers, limits and PING (§5.3, §6.4, §6.5, §11, §12.3).

use serde_json::json;

use super::traffic::{error_pattern, send};
use super::*;

pub(super) fn closing(v: &mut Vec<Vector>) {
    let n = Local::node();
    let t = start(&n, &client_hello())
        .recv(&[data(0, 0, b"1"), data(0, 0, b"2"), goaway_pkt(0, 0, b"done")].concat())
        .events(vec![
            data_ev(0, 0, 0, b"1"),
            data_ev(0, 0, 0, b"2"),
            json!({ "event": "goaway", "delivered": "0", "reason": "done" }),
        ])
        .app(send(b"answer 1", "none", false))
        .app(send(b"answer 2", "none", false))
        .app(json!({ "app": "close" }))
        .app(send(b"late", "none", false))
        .sent(vec![
            json!({ "kind": "DATA", "payload": hex(b"answer 1") }),
            json!({ "kind": "DATA", "payload": hex(b"answer 2") }),
            json!({ "kind": "GOAWAY", "code": 0, "delivered": "2" }),
        ])
        .events(vec![json!({ "event": "closed", "code": "NO_ERROR", "by_peer": true, "reason": "done", "delivered": "0" })]);
    v.push(tx(
        "close.peer-goaway",
        "6.4",
        &[
            "close.answer",
            "close.no-data-after",
            "goaway.delivered",
        ],
        "the peer sends two requests then GOAWAY in one read (a half-close): the application answers both, then closes; the answering GOAWAY follows the answers with delivered 2, and nothing is sent after it",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&[goaway_pkt(0, 0, b""), ping(7, 8)].concat())
        .sent(vec![json!({ "kind": "PONG", "id": "7" })])
        .open()
        .app(json!({ "app": "close" }))
        .sent(vec![
            json!({ "kind": "GOAWAY", "code": 0, "delivered": "0" }),
        ])
        .closed("NO_ERROR");
    v.push(tx(
        "close.answer-drain",
        "6.4",
        &["close.answer-drain", "close.answer"],
        "GOAWAY NO_ERROR then PING in one read: the input after the GOAWAY is still processed (PONG) before the application answers; then GOAWAY NO_ERROR and closed",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&[data(0, 0, b"1"), goaway_pkt(0, 0, b"")].concat())
        .tick(4999)
        .sent(vec![])
        .open()
        .tick(5000)
        .sent(vec![
            json!({ "kind": "GOAWAY", "code": 0, "delivered": "1" }),
        ])
        .closed("NO_ERROR");
    v.push(tx(
        "close.peer-goaway-drain-timer",
        "6.4",
        &["close.answer", "close.answer-then-close", "timeout.boundary"],
        "the peer's GOAWAY at 0 ms, the application never answers: at 4999 ms still open and silent; the drain timer (5000 ms, started by the received GOAWAY) answers with GOAWAY NO_ERROR delivered 1 and closes",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&goaway_pkt(0x7777, 0, b""))
        .sent(vec![])
        .events(vec![
            json!({ "event": "closed", "code": "0x7777", "by_peer": true }),
        ]);
    v.push(tx("close.unknown-code", "5.5", &["goaway.unknown-code", "close.answer"], "a GOAWAY with an unassigned code: closed at once, not answered, the code reported as it is", &n, t, End::Closed("0x7777")));
    let t = start(&n, &client_hello())
        .recv(&goaway_pkt(0, 0, &[b'r'; 256]))
        .events(vec![json!({ "event": "goaway", "delivered": "0" })])
        .app(json!({ "app": "close" }))
        .events(vec![closed_ev("NO_ERROR", true)]);
    v.push(tx(
        "close.reason-256",
        "5.5",
        &["goaway.reason"],
        "a 256-byte reason is accepted",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&goaway_pkt(0, 0, &[b'r'; 257]))
        .sent(vec![goaway("BAD_CONTROL")]);
    v.push(tx(
        "close.reason-257",
        "5.5",
        &["goaway.reason", "close.on-error", "close.on-error-goaway"],
        "a 257-byte reason is BAD_CONTROL",
        &n,
        t,
        End::Error("BAD_CONTROL"),
    ));
    let t = start(&n, &client_hello())
        .recv(&data(0, 0, b"a"))
        .recv(&data(0, 0, b"b"))
        .app(json!({ "app": "close" }))
        .sent(vec![
            json!({ "kind": "GOAWAY", "code": 0, "delivered": "2" }),
        ])
        .recv(&data(0, 0, b"late"))
        .recv(&ping(5, 6))
        .app(send(b"mine", "none", false))
        .sent(vec![json!({ "kind": "PONG", "id": "5" })])
        .events(vec![
            data_ev(0, 0, 0, b"a"),
            data_ev(0, 0, 0, b"b"),
            data_ev(0, 0, 0, b"late"),
        ])
        .recv(&goaway_pkt(0, 0, b""))
        .sent(vec![])
        .closed("NO_ERROR");
    v.push(tx("close.graceful", "6.4", &["close.no-data-after", "close.half", "goaway.delivered"], "we close: GOAWAY delivered 2; the peer's DATA sent before its own GOAWAY is still delivered (a half-close), PING still answered, no DATA sent; the peer's GOAWAY completes the close", &n, t, End::Closed("NO_ERROR")));
    let t = start(&n, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(
            &Raw {
                kind: 12,
                ..Raw::data(0)
            }
            .bytes(),
        )
        .sent(vec![goaway("UNKNOWN_KIND")])
        .closed("UNKNOWN_KIND");
    v.push(tx(
        "close.error-while-draining",
        "6.4",
        &["close.on-error", "close.on-error-goaway"],
        "a connection error in DRAINING: a second GOAWAY, with the error code",
        &n,
        t,
        End::Error("UNKNOWN_KIND"),
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&PREFACE)
        .recv(&goaway_pkt(0, 0, b""))
        .sent(vec![goaway("NO_ERROR")])
        .events(vec![closed_ev("NO_ERROR", true)]);
    v.push(tx(
        "close.goaway-before-hello",
        "6.3",
        &["state.permitted", "close.answer"],
        "GOAWAY NO_ERROR is permitted in AWAIT_HELLO: answered, closed at once",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&[&PREFACE[..], &goaway_pkt(0x0009, 0, b"who are you")].concat())
        .sent(vec![])
        .events(vec![closed_ev("BAD_HELLO", true)]);
    v.push(tx(
        "close.error-goaway-before-hello",
        "6.4",
        &["state.permitted"],
        "GOAWAY BAD_HELLO in AWAIT_HELLO (the peer rejected our HELLO): not answered, closed at once with that code",
        &n,
        t,
        End::Closed("BAD_HELLO"),
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&PREFACE)
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .closed("NO_ERROR");
    v.push(tx(
        "close.app-close-before-hello",
        "6.4",
        &[],
        "the application closes before the peer's HELLO: GOAWAY NO_ERROR and closed at once, without draining",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&[goaway_pkt(0x000E, 3, b"slow down"), ping(1, 1)].concat())
        .sent(vec![])
        .events(vec![
            json!({ "event": "closed", "code": "FLOOD", "by_peer": true, "delivered": "3" }),
        ]);
    v.push(tx(
        "close.error-goaway-not-answered",
        "6.4",
        &["goaway.unknown-code"],
        "a GOAWAY with code FLOOD and a PING in one read: not answered, closed at once (the PING is not answered either)",
        &n,
        t,
        End::Closed("FLOOD"),
    ));
    let t = start(&n, &client_hello())
        .recv(&[goaway_pkt(0, 0, b""), goaway_pkt(0, 0, b"again")].concat())
        .events(vec![json!({ "event": "goaway", "reason": "" })])
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .closed("NO_ERROR");
    v.push(tx(
        "close.second-goaway-no-error",
        "6.4",
        &["close.answer"],
        "two GOAWAY NO_ERROR in one read: the second is ignored (one goaway event); the application closes: one answer",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .recv(&[goaway_pkt(0, 0, b""), goaway_pkt(0x000D, 0, b"")].concat());
    v.push(tx(
        "close.second-goaway-error",
        "6.4",
        &["close.answer"],
        "GOAWAY NO_ERROR then GOAWAY TIMEOUT in one read: closed with TIMEOUT, not answered, if the receiver processes the second one before answering; with NO_ERROR if it answered at once and closed without processing the rest (§6.4 leaves the moment open)",
        &n,
        t,
        End::Either(
            Box::new(End::Closed("NO_ERROR")),
            Box::new(End::Closed("TIMEOUT")),
        ),
    ));
    let t = start(&n, &client_hello())
        .app(json!({ "app": "close" }))
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(&goaway_pkt(0, 0, b""))
        .sent(vec![])
        .closed("NO_ERROR");
    v.push(tx(
        "close.one-no-error-goaway",
        "6.4",
        &["close.on-error"],
        "close twice, then the peer's answer: one GOAWAY NO_ERROR in all",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
    let t = start(&n, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(&goaway_pkt(0x0010, 0, b"crash"))
        .sent(vec![])
        .events(vec![json!({ "event": "closed", "code": "INTERNAL_ERROR" })]);
    v.push(tx(
        "close.error-goaway-while-draining",
        "6.4",
        &[],
        "we are draining; the peer answers with GOAWAY INTERNAL_ERROR: closed with that code, nothing sent",
        &n,
        t,
        End::Closed("INTERNAL_ERROR"),
    ));
    let strict = Local {
        services: Some(vec![0]),
        ..Local::node()
    }
    .limit("max_packet_errors", 1);
    let bad = data(0, 9, b"a");
    let t = start(&strict, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(&[bad.clone(), data(0, 0, b"ok")].concat())
        .sent(vec![error_pattern("NO_SERVICE", 0, &bad[..8])])
        .events(vec![data_ev(0, 0, 0, b"ok")])
        .recv(&data(0, 9, b"b"))
        .sent(vec![goaway("TOO_MANY_ERRORS")])
        .closed("TOO_MANY_ERRORS");
    v.push(tx(
        "close.half-packet-errors",
        "6.4",
        &["close.half", "err.budget"],
        "max_packet_errors 1, after our GOAWAY: DATA is processed as in ESTABLISHED, never discarded for draining: NO_SERVICE reported, a good DATA delivered, the second packet error exceeds the budget",
        &strict,
        t,
        End::Error("TOO_MANY_ERRORS"),
    ));
    let two = Local::node().limit("initial_credit_packets", 2);
    let t = start(&two, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(&[data(0, 0, b"a"), data(0, 0, b"b")].concat())
        .events(vec![data_ev(0, 0, 0, b"a"), data_ev(0, 0, 0, b"b")])
        .recv(&data(0, 0, b"c"))
        .events(vec![data_ev(0, 0, 0, b"c")])
        .open();
    v.push(tx(
        "close.half-credit",
        "6.4",
        &["close.half", "flow.no-deadlock"],
        "initial_credit_packets 2, after our GOAWAY: the application takes two DATA, so credit for at least one more was granted back while draining; the third is delivered",
        &two,
        t,
        End::Open,
    ));
    let t =
        start(&n, &client_hello()).recv(&[goaway_pkt(0, 0, b""), data(0, 0, b"after")].concat());
    v.push(tx("close.data-after-peer-goaway", "6.3", &["state.permitted"], "DATA right after the peer's GOAWAY: UNEXPECTED_PACKET (or, if the receiver answered at once and closed without processing the rest, closed with NO_ERROR)", &n, t, End::Either(Box::new(End::Closed("NO_ERROR")), Box::new(End::Error("UNEXPECTED_PACKET")))));
    let draining = |at: u64| {
        start(&n, &client_hello())
            .app(json!({ "app": "close" }))
            .sent(vec![goaway("NO_ERROR")])
            .tick(at)
    };
    v.push(tx(
        "close.drain.before-deadline",
        "6.5",
        &[],
        "drain timer 5000 ms: still draining at 4999 ms",
        &n,
        draining(4999).open(),
        End::Open,
    ));
    v.push(tx(
        "close.drain.after-deadline",
        "6.5",
        &[],
        "drain timer 5000 ms: closed at 5001 ms, without a second GOAWAY",
        &n,
        draining(5001).sent(vec![]).closed("NO_ERROR"),
        End::Closed("NO_ERROR"),
    ));
    let idle = Local::node().limit("idle_timeout_ms", 6000);
    let t = start(&idle, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .tick(7000)
        .sent(vec![])
        .closed("NO_ERROR");
    v.push(tx(
        "close.drain.before-idle",
        "6.5",
        &["timeout.first"],
        "drain timer 5000 ms, idle timer 6000 ms, time jumps to 7000 ms: the drain timer expired first, so the endpoint closes without sending anything (no GOAWAY TIMEOUT)",
        &idle,
        t,
        End::Closed("NO_ERROR"),
    ));
    // both timers expire at 5000 ms: a TIMEOUT timer takes effect before the drain timer
    let t = start(&n, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .recv(&data(0, 0, b"abcdef")[..3])
        .tick(5000)
        .sent(vec![goaway("TIMEOUT")])
        .closed("TIMEOUT");
    v.push(tx(
        "close.drain.tie-with-header-timer",
        "6.5",
        &["timeout.first"],
        "our GOAWAY at 0 ms, 3 bytes of a header at 0 ms: the drain and header timers (5000 ms each) expire together at 5000 ms; the header timer takes effect first: GOAWAY TIMEOUT",
        &n,
        t,
        End::Error("TIMEOUT"),
    ));
}

/// The byte stream ends (§6.4, CONNECTION_LOST).
pub(super) fn eof(v: &mut Vec<Vector>) {
    let n = Local::node();
    let t = start(&n, &client_hello())
        .recv(&data(0, 0, b"x"))
        .eof()
        .sent(vec![])
        .events(vec![
            data_ev(0, 0, 0, b"x"),
            json!({ "event": "closed", "code": "CONNECTION_LOST" }),
        ]);
    v.push(tx(
        "eof.connection-lost",
        "6.4",
        &[],
        "the stream ends without any GOAWAY: closed as CONNECTION_LOST, which is never sent",
        &n,
        t,
        End::Closed("CONNECTION_LOST"),
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .recv(&[&PREFACE[..], &opening(&client_hello())[8..20]].concat())
        .eof()
        .sent(vec![])
        .closed("CONNECTION_LOST");
    v.push(tx(
        "eof.inside-hello",
        "6.4",
        &["err.incomplete"],
        "the stream ends inside the peer's HELLO: CONNECTION_LOST, not an error of the peer",
        &n,
        t,
        End::Closed("CONNECTION_LOST"),
    ));
    let t = start(&n, &client_hello())
        .app(json!({ "app": "close" }))
        .sent(vec![goaway("NO_ERROR")])
        .eof()
        .sent(vec![])
        .closed("NO_ERROR");
    v.push(tx(
        "eof.after-own-goaway",
        "6.4",
        &[],
        "we sent GOAWAY NO_ERROR and the stream ends before the peer's answer: reported with that GOAWAY's code",
        &n,
        t,
        End::Closed("NO_ERROR"),
    ));
}

/// A timer 1 ms before its deadline (open), at it and 1 ms after it (TIMEOUT).
pub(super) fn timer_family(
    v: &mut Vec<Vector>,
    name: &str,
    desc: &str,
    local: &Local,
    t: &T,
    deadline: u64,
) {
    let id = |s: &str| format!("timeout.{name}.{s}");
    let reqs = ["timeout.close", "timeout.boundary"];
    let before = t.clone().tick(deadline - 1).open();
    v.push(tx(
        &id("before-deadline"),
        "6.5",
        &reqs,
        &format!("{desc}: open 1 ms before the deadline ({deadline} ms)"),
        local,
        before,
        End::Open,
    ));
    for (s, at) in [("at-deadline", deadline), ("after-deadline", deadline + 1)] {
        let t = t
            .clone()
            .tick(at)
            .sent(vec![goaway("TIMEOUT")])
            .closed("TIMEOUT");
        v.push(tx(
            &id(s),
            "6.5",
            &reqs,
            &format!("{desc}: TIMEOUT at {at} ms"),
            local,
            t,
            End::Error("TIMEOUT"),
        ));
    }
}

pub(super) fn timers(v: &mut Vec<Vector>) {
    let n = Local::node();
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .at(100)
        .recv(&PREFACE);
    timer_family(
        v,
        "handshake",
        "no HELLO within the 10000 ms handshake timer (started at 0)",
        &n,
        &t,
        10_000,
    );
    let quick = Local::node().limit("idle_timeout_ms", 1000);
    let t = start(&quick, &client_hello())
        .at(500)
        .recv(&ping(1, 1))
        .sent(vec![json!({ "kind": "PONG" })]);
    timer_family(
        v,
        "idle",
        "idle_timeout_ms 1000, last byte received at 500 ms",
        &quick,
        &t,
        1500,
    );
    let t = start(&n, &client_hello())
        .at(200)
        .recv(&data(0, 0, b"x")[..3]);
    timer_family(
        v,
        "header",
        "3 bytes of a header at 200 ms, header timer 5000 ms",
        &n,
        &t,
        5200,
    );
    let t = start(&n, &client_hello())
        .at(300)
        .recv(&data(0, 0, b"abcdef")[..10])
        .at(20_000)
        .recv(b"c");
    timer_family(v, "packet", "a header and 2 payload bytes at 300 ms, one more at 20000 ms; packet timer 30000 ms from the first byte", &n, &t, 30_300);
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .at(10_000)
        .recv(&opening(&client_hello()))
        .sent(vec![goaway("TIMEOUT")]);
    v.push(tx(
        "timeout.handshake.hello-at-deadline",
        "6.5",
        &["timeout.first", "timeout.boundary"],
        "preface and HELLO arrive at 10000 ms: the handshake timer expired first",
        &n,
        t,
        End::Error("TIMEOUT"),
    ));
    let t = start(&quick, &client_hello())
        .at(1000)
        .recv(&ping(1, 1))
        .sent(vec![goaway("TIMEOUT")]);
    v.push(tx(
        "timeout.idle.input-at-deadline",
        "6.5",
        &["timeout.first", "timeout.boundary"],
        "idle_timeout_ms 1000: a PING arriving at exactly 1000 ms is too late",
        &quick,
        t,
        End::Error("TIMEOUT"),
    ));
    let t = T::default()
        .sent(vec![preface(), n.hello_pattern()])
        .at(9_000)
        .recv(&opening(&client_hello()))
        .tick(10_001)
        .open();
    v.push(tx(
        "timeout.handshake.satisfied",
        "6.5",
        &["timeout.close"],
        "the HELLO arrived at 9000 ms: no handshake TIMEOUT at 10001 ms",
        &n,
        t,
        End::Open,
    ));
}

/// §11 `[[limit.ping-rate]]` with a configured rate (`max_ping_rate`, a local limit):
/// at the rate, one past it, and the same again in a later second.
fn ping_rate(v: &mut Vec<Vector>) {
    let n = Local::node().limit("max_ping_rate", 20);
    let pings = |from: u64, k: u64| {
        (from..from + k)
            .flat_map(|i| ping(i, i * 10))
            .collect::<Vec<u8>>()
    };
    let pongs = |from: u64, k: u64| {
        (from..from + k)
            .map(|i| json!({ "kind": "PONG", "id": i.to_string() }))
            .collect::<Vec<_>>()
    };
    let t = start(&n, &client_hello())
        .recv(&pings(1, 20))
        .sent(pongs(1, 20))
        .open();
    v.push(tx(
        "limit.ping-rate.at-limit",
        "11",
        &["limit.ping-rate", "ping.answer", "ping.fifo"],
        "max_ping_rate 20: 20 PINGs in one read are all answered, in order",
        &n,
        t,
        End::Open,
    ));
    let over = [pongs(1, 20), vec![goaway("FLOOD")]].concat();
    let t = start(&n, &client_hello()).recv(&pings(1, 21)).sent(over);
    v.push(tx(
        "limit.ping-rate.over-limit",
        "11",
        &["limit.ping-rate"],
        "max_ping_rate 20: the 21st PING within the second is not answered: FLOOD",
        &n,
        t,
        End::Error("FLOOD"),
    ));
    let t = start(&n, &client_hello())
        .recv(&pings(1, 20))
        .sent(pongs(1, 20))
        .at(2500)
        .recv(&pings(21, 20))
        .sent(pongs(21, 20))
        .open();
    v.push(tx(
        "limit.ping-rate.later-second",
        "11",
        &["limit.ping-rate"],
        "max_ping_rate 20: 20 PINGs at 0 ms and 20 more at 2500 ms are all answered",
        &n,
        t,
        End::Open,
    ));
}

/// §5.7 `[[error.rate]]` with a configured rate (`max_error_rate`, a local limit): ERROR
/// packets for us at the rate are all reported, one past it is FLOOD, and the same
/// number again in a later second is reported.
fn error_rate(v: &mut Vec<Vector>) {
    let n = Local::node().limit("max_error_rate", 20);
    let hdr = Raw::data(0).route(5, 0, 0).bytes();
    let one = Raw::ctl(ERROR, 0).packet(&error_payload(0x0100, &hdr, b""));
    let errors = |k: usize| one.repeat(k);
    let reported = |k: usize| {
        let e = json!({ "event": "packet_error", "code": code_of("NO_ROUTE"), "source": 0, "header": hex(&hdr) });
        vec![e; k]
    };
    let t = start(&n, &client_hello())
        .recv(&errors(20))
        .events(reported(20))
        .open();
    v.push(tx(
        "limit.error-rate.at-limit",
        "5.7",
        &["error.rate"],
        "max_error_rate 20: 20 ERRORs for us in one read are all reported",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&errors(20))
        .events(reported(20))
        .open()
        .recv(&errors(1))
        .sent(vec![goaway("FLOOD")]);
    v.push(tx(
        "limit.error-rate.over-limit",
        "5.7",
        &["error.rate"],
        "max_error_rate 20: the 21st ERROR within the second: FLOOD",
        &n,
        t,
        End::Error("FLOOD"),
    ));
    // not from a node or proxy (authenticated, §7.4): they relay others' reports
    let (proxy_peer, link) = trusted_proxy_link(&n);
    // (X = 0: the source is the proxy's own id)
    let from_proxy = json!({ "event": "packet_error", "code": code_of("NO_ROUTE"), "source": 8, "header": hex(&hdr) });
    let t = start(&link, &proxy_peer)
        .recv(&errors(40))
        .events(vec![from_proxy; 40])
        .open();
    v.push(tx(
        "limit.error-rate.not-from-a-proxy",
        "5.7",
        &["error.rate"],
        "max_error_rate 20: 40 ERRORs in one read from a trusted proxy link are all reported (a proxy relays others' reports)",
        &link,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&errors(20))
        .events(reported(20))
        .at(2500)
        .recv(&errors(20))
        .events(reported(20))
        .open();
    v.push(tx(
        "limit.error-rate.later-second",
        "5.7",
        &["error.rate"],
        "max_error_rate 20: 20 ERRORs at 0 ms and 20 more at 2500 ms are all reported",
        &n,
        t,
        End::Open,
    ));
}

pub(super) fn limits(v: &mut Vec<Vector>) {
    ping_rate(v);
    error_rate(v);
    let n = Local::node();
    let empties = |k: usize| (0..k).flat_map(|_| data(0, 0, b"")).collect::<Vec<u8>>();
    let t = start(&n, &client_hello()).recv(&empties(32)).open();
    v.push(tx(
        "limit.empty-run.at-limit",
        "11",
        &["limit.empty-run"],
        "32 consecutive empty DATA packets (max_empty_run 32)",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&empties(33))
        .sent(vec![goaway("FLOOD")]);
    v.push(tx(
        "limit.empty-run.over-limit",
        "11",
        &["limit.empty-run"],
        "33 consecutive empty DATA packets",
        &n,
        t,
        End::Error("FLOOD"),
    ));
    let reset = [empties(32), data(0, 0, b"x"), empties(32)].concat();
    let t = start(&n, &client_hello()).recv(&reset).open();
    v.push(tx(
        "limit.empty-run.reset",
        "11",
        &["limit.empty-run"],
        "a non-empty DATA packet resets the count: 32 + 1 + 32",
        &n,
        t,
        End::Open,
    ));
    let with_ping = [empties(32), ping(1, 1), empties(1)].concat();
    let t = start(&n, &client_hello())
        .recv(&with_ping)
        .sent(vec![json!({ "kind": "PONG" }), goaway("FLOOD")]);
    v.push(tx(
        "limit.empty-run.control-does-not-reset",
        "11",
        &["limit.empty-run"],
        "32 empty DATA, a PING, one more empty DATA: control packets do not reset the count",
        &n,
        t,
        End::Error("FLOOD"),
    ));
    let lenient = Local {
        services: Some(vec![0]),
        ..Local::node()
    }
    .limit("max_packet_errors", 100);
    let undeliverable = (0..33).flat_map(|_| data(0, 9, b"")).collect::<Vec<u8>>();
    let t = start(&lenient, &client_hello())
        .recv(&undeliverable)
        .sent_ignoring(vec![goaway("FLOOD")], &["ERROR", "CREDIT"]);
    v.push(tx(
        "limit.empty-run.discarded-count",
        "11",
        &["limit.empty-run"],
        "33 empty DATA packets for an unregistered service: each counts although it is discarded",
        &lenient,
        t,
        End::Error("FLOOD"),
    ));
    // §6.3: the §11 limits come before delivery, so an empty DATA that cannot be
    // routed still counts; 32 delivered, then one for another node
    let lenient = Local::node().limit("max_packet_errors", 100);
    let run = (0..32)
        .flat_map(|_| data(0, 0, b""))
        .chain(data(42, 0, b""))
        .collect::<Vec<u8>>();
    let t = start(&lenient, &client_hello())
        .recv(&run)
        .sent_ignoring(vec![goaway("FLOOD")], &["ERROR", "CREDIT"]);
    v.push(tx(
        "limit.empty-run.before-route",
        "6.3",
        &["limit.empty-run", "state.data-order"],
        "32 empty DATA packets delivered, then an empty one for node 42 (no route): the run is counted before routing, FLOOD, not NO_ROUTE",
        &lenient,
        t,
        End::Error("FLOOD"),
    ));
    let small = Local::node().limit("max_payload", 1024);
    let t = start(&small, &client_hello())
        .recv(&data(0, 0, &[1; 1024]))
        .events(vec![data_ev(0, 0, 0, &[1; 1024])]);
    v.push(tx(
        "limit.max-payload.at-limit",
        "4.5",
        &["hdr.length-max"],
        "max_payload 1024: a 1024-byte DATA",
        &small,
        t,
        End::Open,
    ));
    let t = start(&small, &client_hello())
        .recv(&Raw::data(1025).bytes())
        .sent(vec![goaway("PAYLOAD_TOO_LARGE")]);
    v.push(tx(
        "limit.max-payload.over-limit",
        "4.5",
        &["hdr.length-max"],
        "max_payload 1024: a header announcing 1025 bytes, rejected before the payload",
        &small,
        t,
        End::Error("PAYLOAD_TOO_LARGE"),
    ));
    let budget = Local {
        services: Some(vec![0]),
        ..Local::node()
    }
    .limit("max_packet_errors", 2);
    let bad = Raw::data(0).route(0, 9, 0).packet(b"no");
    let t = start(&budget, &client_hello())
        .recv(&[bad.clone(), bad.clone()].concat())
        .sent(vec![
            error_pattern("NO_SERVICE", 0, &bad[..8]),
            error_pattern("NO_SERVICE", 0, &bad[..8]),
        ])
        .open();
    v.push(tx(
        "limit.packet-errors.at-limit",
        "12.3",
        &["err.budget", "route.no-service"],
        "max_packet_errors 2: two packet errors",
        &budget,
        t,
        End::Open,
    ));
    let t = start(&budget, &client_hello())
        .recv(&[bad.clone(), bad.clone()].concat())
        .sent(vec![
            error_pattern("NO_SERVICE", 0, &bad[..8]),
            error_pattern("NO_SERVICE", 0, &bad[..8]),
        ])
        .recv(&bad)
        .sent(vec![goaway("TOO_MANY_ERRORS")]);
    v.push(tx("limit.packet-errors.over-limit", "12.3", &["err.budget", "err.scope"], "a third packet error: TOO_MANY_ERRORS; the packet that exceeds the budget gets no ERROR, only the close", &budget, t, End::Error("TOO_MANY_ERRORS")));
    let one = Local::node().limit("max_packet_errors", 1);
    let err_far = Raw::ctl(ERROR, 0).route(42, 0, 0).packet(&error_payload(
        0x0100,
        &Raw::data(0).route(5, 0, 0).bytes(),
        b"",
    ));
    let t = start(&one, &client_hello())
        .recv(&err_far)
        .sent(vec![])
        .open()
        .recv(&err_far)
        .sent(vec![goaway("TOO_MANY_ERRORS")]);
    v.push(tx("limit.packet-errors.silent-error-counts", "12.3", &["err.budget", "error.no-loop"], "max_packet_errors 1: two undeliverable ERRORs, each discarded silently; both count, the second exceeds the budget", &one, t, End::Error("TOO_MANY_ERRORS")));
}

pub(super) fn pings(v: &mut Vec<Vector>) {
    let n = Local::node();
    let t = start(&n, &client_hello())
        .recv(&ping(0xABCD, 123_456))
        .sent(vec![
            json!({ "kind": "PONG", "id": "43981", "timestamp": "123456" }),
        ]);
    v.push(tx(
        "ping.answer",
        "5.3",
        &["ping.answer"],
        "a PING is answered with its id and timestamp",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&[ping(1, 10), ping(2, 20), ping(3, 30)].concat())
        .sent(vec![
            json!({ "kind": "PONG", "id": "1", "timestamp": "10" }),
            json!({ "kind": "PONG", "id": "2", "timestamp": "20" }),
            json!({ "kind": "PONG", "id": "3", "timestamp": "30" }),
        ]);
    v.push(tx(
        "ping.fifo",
        "5.3",
        &["ping.fifo", "ping.answer"],
        "three PINGs in one read are answered in order",
        &n,
        t,
        End::Open,
    ));
    let only0 = Local {
        services: Some(vec![0]),
        ..Local::node()
    };
    let bad = Raw::data(0).route(0, 4, 0).packet(b"x");
    let t = start(&only0, &client_hello())
        .recv(&[ping(9, 9), bad.clone()].concat())
        .sent(vec![
            json!({ "kind": "PONG", "id": "9" }),
            error_pattern("NO_SERVICE", 0, &bad[..8]),
        ]);
    v.push(tx(
        "ping.order",
        "5.3",
        &["ping.order", "ping.answer"],
        "the PONG precedes the ERROR queued after the PING was processed",
        &only0,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .recv(&Raw::ctl(PONG, 0).packet(&pong_payload(999, 1, 0)))
        .events(vec![])
        .open();
    v.push(tx(
        "pong.unknown",
        "5.4",
        &["pong.unknown"],
        "a PONG for a PING never sent is ignored, not an error",
        &n,
        t,
        End::Open,
    ));
    let t = start(&n, &client_hello())
        .app(json!({ "app": "send_ping" }))
        .sent_exact(vec![json!({ "kind": "PING" })])
        .open();
    v.push(tx(
        "ping.send",
        "5.3",
        &[],
        "the application sends a PING",
        &n,
        t,
        End::Open,
    ));
}

/// A proxy peer (node id 8) and `local` configured to trust it (§7.4 `[[src.trust]]`).
fn trusted_proxy_link(local: &Local) -> (HelloFields, Local) {
    let proxy_peer = HelloFields {
        role: 3,
        node_id: 8,
        idle_timeout_ms: 0,
        ..HelloFields::default()
    };
    let link = Local {
        trust_source: true,
        ..local.clone()
    };
    (proxy_peer, link)
}

/// Limits counted per source on a trusted proxy link (§11 `[[limit.per-source]]`).
pub(super) fn per_source(v: &mut Vec<Vector>) {
    let (proxy_peer, link) = trusted_proxy_link(&Local::node());
    let empty = |source: u16| Raw::data(0).src(source).packet(b"");
    let t = start(&link, &proxy_peer)
        .recv(&empty(40_000).repeat(32))
        .sent(vec![])
        .open()
        .recv(&empty(40_000))
        .sent(vec![error_pattern("FLOOD", 40_000, &empty(40_000)[..10])])
        .open()
        .recv(&Raw::data(0).src(40_001).packet(b"other"))
        .events(vec![
            json!({ "event": "data", "source": 40_001, "payload": hex(b"other") }),
        ])
        .open();
    v.push(tx(
        "limit.per-source.empty-run",
        "11",
        &["limit.per-source", "limit.empty-run"],
        "a trusted proxy link: 32 consecutive empty DATA from source 40000 are accepted (the limit); the 33rd is discarded with ERROR FLOOD routed to 40000, the link stays open and another source's DATA is delivered",
        &link,
        t,
        End::Open,
    ));
    let mut interleaved = Vec::new();
    for _ in 0..20 {
        interleaved.extend(empty(40_000));
        interleaved.extend(empty(40_001));
    }
    let t = start(&link, &proxy_peer)
        .recv(&interleaved)
        .sent(vec![])
        .open();
    v.push(tx(
        "limit.per-source.interleaved",
        "11",
        &["limit.per-source"],
        "a trusted proxy link: two sources interleave 20 empty DATA each (40 in a row on the link, 20 per source): no FLOOD, no ERROR",
        &link,
        t,
        End::Open,
    ));
    let strict = Local {
        services: Some(vec![0]),
        ..link.clone()
    }
    .limit("max_packet_errors", 2);
    let bad = |source: u16| Raw::data(0).src(source).route(0, 9, 0).packet(b"x");
    let t = start(&strict, &proxy_peer)
        .recv(&bad(40_000).repeat(2))
        .sent(vec![
            error_pattern("NO_SERVICE", 40_000, &bad(40_000)[..10]),
            error_pattern("NO_SERVICE", 40_000, &bad(40_000)[..10]),
        ])
        .recv(&bad(40_001))
        .sent(vec![error_pattern(
            "NO_SERVICE",
            40_001,
            &bad(40_001)[..10],
        )])
        .recv(&bad(40_000))
        .sent(vec![error_pattern(
            "TOO_MANY_ERRORS",
            40_000,
            &bad(40_000)[..10],
        )])
        .open();
    v.push(tx(
        "limit.per-source.error-budget",
        "12.3",
        &["limit.per-source", "err.budget"],
        "a trusted proxy link, max_packet_errors 2: two packet errors of source 40000 are reported (the limit), one of source 40001 counts apart, the third of 40000 gets ERROR TOO_MANY_ERRORS routed to it and the link stays open",
        &strict,
        t,
        End::Open,
    ));
    let untrusted = Local::node();
    let t = start(&untrusted, &client_hello()).recv(&data(0, 0, b"").repeat(33));
    v.push(tx(
        "limit.per-source.not-on-a-client-link",
        "11",
        &["limit.empty-run"],
        "from a client (not a trusted proxy link) the run is per connection: 33 empty DATA close it with FLOOD",
        &untrusted,
        t,
        End::Error("FLOOD"),
    ));
}

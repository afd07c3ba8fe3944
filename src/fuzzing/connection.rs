//! The `connection` and `connection_pair` targets: the state machine (spec §6, §8, §12).

use std::time::Duration;

use crate::connection::{Config, Connection, Event, Pair, SendOptions};
use crate::control::Role;
use crate::error::ErrorCode;
use crate::header::{Codec, Route};
use crate::Deframer;

/// A xorshift generator for chunk lengths and other choices derived from a seed byte.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One of a few configurations: client, node, proxy (trusting or not), with tight limits
/// on some so that flow control and the payload limit are reached.
fn config(sel: u8, node_id: u16) -> Config {
    let mut c = match sel & 0x03 {
        0 => Config::client(),
        1 => Config::node(node_id),
        2 => Config::proxy(node_id),
        _ => Config::proxy(node_id).with_trust_source(true),
    };
    // correct peers on a closed network: every claimed role trusted by configuration
    // (spec §7.4 [[src.auth]]; what a node or proxy never does by default)
    c.require_auth = false;
    if sel & 0x04 != 0 {
        c.limits.max_payload = 1024;
        c.limits.initial_credit_packets = 4;
        c.limits.initial_credit_bytes = 1024;
        c.limits.max_decompressed = 4096;
        c.limits.max_ratio = 4;
    }
    if sel & 0x08 != 0 {
        c.codecs = 0;
    }
    if sel & 0x10 != 0 && c.role == Role::Client {
        c.peer_id = 0;
    } else if c.role != Role::Client {
        c.peer_id = 900;
    }
    c
}

/// What a connection did: its transmitted bytes and events.
#[derive(PartialEq, Debug)]
struct Trace {
    tx: Vec<u8>,
    events: Vec<Event>,
    closed: bool,
}

/// Takes every other DATA it is offered (a driver's native handlers), keeping them.
#[derive(Default)]
struct Taker(Vec<Event>, bool);

impl crate::connection::EventSink for Taker {
    fn offer(&mut self, event: Event) -> Option<Event> {
        self.1 = !self.1;
        if !self.1 {
            return Some(event);
        }
        self.0.push(event);
        None
    }
}

/// Opens `cfg`, feeds it the peer's genuine preface and HELLO, then `garbage` in reads of
/// lengths from `chunks` (all at once when `None`), with the clock fixed; with `sink`,
/// through [`Connection::handle_input_into`] and a sink that takes every other DATA
/// offered (its events come first in the trace: taken DATA precede whatever queued).
fn run_garbage(
    cfg: &Config,
    hello: &[u8],
    garbage: &[u8],
    chunks: Option<&mut Rng>,
    sink: bool,
) -> Trace {
    let now = Duration::from_secs(1);
    let mut conn = Connection::new(cfg.clone(), Duration::ZERO);
    let mut tx = Vec::new();
    conn.handle_input(now, hello);
    let mut rest = garbage;
    let mut taker = Taker::default();
    let mut feed = |conn: &mut Connection, bytes: &[u8]| {
        if sink {
            conn.handle_input_into(now, bytes, None, &mut taker);
        } else {
            conn.handle_input(now, bytes);
        }
    };
    match chunks {
        None => feed(&mut conn, rest),
        Some(rng) => {
            while !rest.is_empty() {
                let n = rng.below(17).min(rest.len());
                feed(&mut conn, &rest[..n]);
                rest = &rest[n..];
            }
        }
    }
    conn.poll_transmit(&mut tx);
    let mut events = std::mem::take(&mut taker.0);
    events.extend(std::iter::from_fn(|| conn.poll_event()));
    conn.poll_transmit(&mut tx); // credit granted while polling
    let closed = conn.is_closed();
    if closed {
        // §6.4 [[close.on-error]]: no input is processed once closed.
        conn.handle_input(now, &[0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            !conn.has_transmit() && conn.poll_event().is_none(),
            "activity after close"
        );
    }
    Trace { tx, events, closed }
}

/// A connection fed a valid preface and HELLO and then arbitrary bytes never panics;
/// processes the same bytes the same way however they are split into reads (§12.2; after
/// it answered a GOAWAY, §6.4 lets the moment it closes vary);
/// closes, if it does, with a registry connection-error code as its last event; and
/// everything it transmits is a well-formed stream that the genuine peer accepts without
/// a protocol error of its own.
///
/// Input: `ctl` (bits 0–4: our configuration; bits 5–7 with the low bits of `seed`: the
/// peer's), `seed` (chunk lengths), then the bytes after the peer's HELLO.
pub fn connection(data: &[u8]) {
    let [ctl, seed, garbage @ ..] = data else {
        return;
    };
    let ours = config(*ctl & 0x1F, 1);
    let theirs = config((ctl >> 5) | (seed & 0x18), 2);
    let mut peer = Connection::new(theirs, Duration::ZERO);
    let mut hello = Vec::new();
    peer.poll_transmit(&mut hello);
    let whole = run_garbage(&ours, &hello, garbage, None, false);
    let mut rng = Rng::new(u64::from(*seed));
    let split = run_garbage(&ours, &hello, garbage, Some(&mut rng), false);
    if split != whole {
        same_until_goaway_answer(&split, &whole);
    }
    check_events(&whole.events, whole.closed);
    check_output(&mut peer, &whole.tx);
    // DATA taken as they are processed: credit goes back sooner, so what the peer may
    // send differs; the same rules hold for what it did and sent
    let mut rng = Rng::new(u64::from(*seed));
    let sunk = run_garbage(&ours, &hello, garbage, Some(&mut rng), true);
    check_events(&sunk.events, sunk.closed);
    let mut peer = Connection::new(config((ctl >> 5) | (seed & 0x18), 2), Duration::ZERO);
    peer.poll_transmit(&mut Vec::new());
    check_output(&mut peer, &sunk.tx);
}

/// The end offset in `tx` of our first GOAWAY with NO_ERROR: in this target we never
/// close ourselves, so it is the answer to the peer's GOAWAY (§6.4 [[close.answer]]).
fn goaway_answer_end(tx: &[u8]) -> Option<usize> {
    let mut at = crate::PREFACE.len();
    let mut rest = tx.get(at..)?;
    while let Ok(crate::Status::Complete((p, tail))) = crate::PacketRef::parse(rest, u16::MAX) {
        at += rest.len() - tail.len();
        rest = tail;
        if p.header.kind == crate::Kind::Goaway
            && crate::control::Goaway::parse(p.payload).is_ok_and(|g| g.code == ErrorCode::NO_ERROR)
        {
            return Some(at);
        }
    }
    None
}

/// §12.2 [[err.split-invariant]] with the one exception §6.4 makes: once it has answered
/// the peer's GOAWAY NO_ERROR, when exactly the receiver stops processing input is its
/// choice, so how the rest of the stream is split may change how it closes. Up to the
/// answer both runs must agree.
fn same_until_goaway_answer(split: &Trace, whole: &Trace) {
    let why = "split reads changed what the connection did (§12.2)";
    let (Some(a), Some(b)) = (goaway_answer_end(&split.tx), goaway_answer_end(&whole.tx)) else {
        assert_eq!(split, whole, "{why}");
        return;
    };
    assert_eq!(
        split.tx[..a],
        whole.tx[..b],
        "{why}: output up to the GOAWAY answer"
    );
    let before_close = |t: &Trace| t.events.len().saturating_sub(usize::from(t.closed));
    let n = before_close(split).min(before_close(whole));
    assert_eq!(
        split.events[..n],
        whole.events[..n],
        "{why}: events before the close"
    );
    let graceful = |t: &Trace| {
        matches!(
            t.events.last(),
            Some(Event::Closed {
                code: ErrorCode::NO_ERROR,
                by_peer: true,
                ..
            })
        )
    };
    assert!(
        graceful(split) || graceful(whole),
        "{why}: neither run closed on the GOAWAY"
    );
}

/// Events: Established first if at all, Closed last and only once, with a registry
/// connection-error code when we closed.
fn check_events(events: &[Event], closed: bool) {
    let closes: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Closed { .. }))
        .collect();
    assert_eq!(closes.len(), usize::from(closed), "{events:?}");
    if let Some((i, Event::Closed { code, by_peer, .. })) = closes.first() {
        assert_eq!(*i, events.len() - 1, "Closed is not the last event");
        if !by_peer {
            assert!(
                code.is_connection_error() && code.name().is_some(),
                "closed with {code}, not a registry connection error"
            );
        }
    }
    for (i, e) in events.iter().enumerate() {
        if matches!(e, Event::Established { .. }) {
            assert_eq!(i, 0, "Established is not the first event");
        }
    }
}

/// Our output parses as preface + packets, and the genuine peer processes it without
/// closing on an error of its own (it may close because our GOAWAY told it to).
fn check_output(peer: &mut Connection, tx: &[u8]) {
    assert!(
        tx.starts_with(&crate::PREFACE),
        "output does not start with the preface"
    );
    let mut d = Deframer::new(u16::MAX);
    d.extend(&tx[crate::PREFACE.len()..]);
    while let Some(p) = d
        .next_packet()
        .unwrap_or_else(|e| panic!("we sent an invalid packet: {e}"))
    {
        if p.header.kind.is_control() {
            crate::control::Control::parse(p.header.kind, &p.payload)
                .unwrap_or_else(|e| panic!("we sent an invalid {:?}: {e}", p.header.kind));
        }
    }
    assert_eq!(d.buffered(), 0, "we sent a partial packet");
    peer.handle_input(Duration::from_secs(1), tx);
    for e in std::iter::from_fn(|| peer.poll_event()) {
        if let Event::Closed {
            code,
            by_peer: false,
            reason,
            ..
        } = e
        {
            panic!("our output made the genuine peer close with {code}: {reason}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// two correct peers
// ---------------------------------------------------------------------------------------

/// What one direction of a pair carried.
#[derive(Default, Debug)]
struct Flow {
    /// Payloads accepted by `send_data`, with their channel.
    sent: Vec<(u8, Vec<u8>)>,
    /// Payloads the receiver delivered or handed over for forwarding.
    received: Vec<(u8, Vec<u8>)>,
    /// Consecutive empty payloads sent (§11 `max_empty_run`).
    empty_run: u32,
}

/// Operations, one per input byte (low 4 bits) with an argument from the next bytes.
struct Ops<'a> {
    data: &'a [u8],
}

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
}

/// Two correct peers driven by an arbitrary sequence of sends, pings, polls, clock steps
/// (never far enough for a timer to expire), chunkings and graceful closes: no protocol
/// error and no packet error occur; DATA arrives intact, in order and exactly once; and
/// the `delivered` of a GOAWAY never exceeds the DATA the peer received (§5.5; a
/// half-close keeps delivering after the first GOAWAY, §6.4).
///
/// Input: `configs` (low nibble: `a`; high nibble: `b`), then operations.
pub fn connection_pair(data: &[u8]) {
    let Some((&sel, ops)) = data.split_first() else {
        return;
    };
    let mut pair = Pair::new(config(sel & 0x0F, 10), config((sel >> 4) | 0x01, 20));
    let mut ops = Ops { data: ops };
    let mut flows = [Flow::default(), Flow::default()];
    let mut closes = [None, None];
    pair.drive();
    while let Some(op) = ops.byte() {
        let arg = ops.byte().unwrap_or(0);
        step(&mut pair, op, arg, &mut ops, &mut flows, &mut closes);
    }
    pair.drive();
    poll(&mut pair, 0, &mut flows, &mut closes);
    poll(&mut pair, 1, &mut flows, &mut closes);
    pair.drive();
    poll(&mut pair, 0, &mut flows, &mut closes);
    poll(&mut pair, 1, &mut flows, &mut closes);
    for (dir, flow) in flows.iter().enumerate() {
        assert!(
            flow.sent.starts_with(&flow.received),
            "direction {dir}: received is not a prefix of sent"
        );
        if closes.iter().all(Option::is_none) {
            assert_eq!(
                flow.sent.len(),
                flow.received.len(),
                "direction {dir}: DATA lost"
            );
        }
    }
    // §5.5 [[goaway.delivered]]: the peer's count of our DATA it processed — at least
    // that many arrived (a half-close keeps delivering after the first GOAWAY, §6.4)
    for (side, close) in closes.iter().enumerate() {
        if let Some(Some(n)) = close {
            let ours = &flows[side];
            assert!(
                *n as usize <= ours.received.len(),
                "side {side}: GOAWAY delivered {n}, received {}",
                ours.received.len()
            );
        }
    }
}

fn step(
    pair: &mut Pair,
    op: u8,
    arg: u8,
    ops: &mut Ops<'_>,
    flows: &mut [Flow; 2],
    closes: &mut [Option<Option<u64>>; 2],
) {
    let side = usize::from(op & 0x10 != 0);
    match op & 0x0F {
        0..=5 => send(pair, side, op, arg, ops, &mut flows[side]),
        6 | 7 => {
            pair.drive();
        }
        8 | 9 => poll(pair, side, flows, closes),
        10 => {
            let now = pair.now;
            conn(pair, side).send_ping(now);
        }
        // Stay below the shortest timer (5 s): timers are not under test here.
        11 if pair.now < Duration::from_millis(4000) => {
            pair.advance(Duration::from_millis(u64::from(arg) * 4));
        }
        12 => {
            let mut rng = Rng::new(u64::from(arg));
            let max = [1, 3, 16, 100][usize::from(arg & 0x03)];
            pair.set_chunker(move |rest| rng.below(max).min(rest) + 1);
        }
        13 if arg < 16 => {
            let now = pair.now;
            conn(pair, side).close(now, "fuzz");
        }
        _ => {}
    }
}

fn conn(pair: &mut Pair, side: usize) -> &mut Connection {
    if side == 0 {
        &mut pair.a
    } else {
        &mut pair.b
    }
}

fn send(pair: &mut Pair, side: usize, op: u8, arg: u8, ops: &mut Ops<'_>, flow: &mut Flow) {
    let len = match op >> 5 {
        0 => usize::from(arg & 0x0F),
        1..=5 => usize::from(arg) * 3,
        _ => usize::from(arg) * 300,
    };
    let fill = ops.byte().unwrap_or(0);
    let mut payload: Vec<u8> = (0..len)
        .map(|i| {
            if fill & 1 == 0 {
                fill
            } else {
                (i as u8) ^ fill
            }
        })
        .collect();
    if payload.is_empty() && flow.empty_run >= 32 {
        payload.push(fill); // §11: a correct sender stays within max_empty_run
    }
    let codec = [Codec::None, Codec::Snappy, Codec::Zlib, Codec::Zlib][usize::from(op & 0x03)];
    let opts = SendOptions {
        codec,
        never_compress: fill & 0x80 != 0,
    };
    let (to_proxy, own) = {
        let receiver = conn(pair, 1 - side);
        (receiver.config().role == Role::Proxy, receiver.own_id())
    };
    // Only routes the receiver handles without a packet error: local ones, or any node
    // when the receiver is a proxy (it hands the packet over for forwarding).
    let node = match (to_proxy, arg & 0x03) {
        (true, 3) => u16::from(fill) + 100,
        (_, 1) => own,
        _ => 0,
    };
    let channel = fill;
    let route = Route::new(node, arg >> 4, channel);
    if conn(pair, side).send_data(route, &payload, opts).is_ok() {
        flow.empty_run = if payload.is_empty() {
            flow.empty_run + 1
        } else {
            0
        };
        flow.sent.push((channel, payload));
    }
}

fn poll(
    pair: &mut Pair,
    side: usize,
    flows: &mut [Flow; 2],
    closes: &mut [Option<Option<u64>>; 2],
) {
    let peer_flow = 1 - side;
    while let Some(e) = conn(pair, side).poll_event() {
        match e {
            Event::Data { route, payload, .. } => {
                flows[peer_flow]
                    .received
                    .push((route.channel, payload.to_vec()));
            }
            Event::Forward { packet, .. } => {
                // A proxy got DATA for another node: the payload is still on the wire
                // form; decode it the way the final receiver would.
                let plain = wire_payload(packet.header.codec, &packet.payload);
                flows[peer_flow]
                    .received
                    .push((packet.header.route.channel, plain));
            }
            Event::PacketError { code, reason, .. } => {
                panic!("side {side}: packet error {code} between correct peers: {reason}")
            }
            Event::Closed {
                code,
                delivered,
                reason,
                ..
            } => {
                assert_eq!(code, ErrorCode::NO_ERROR, "side {side} closed: {reason}");
                closes[side] = Some(delivered);
            }
            // spec §6.4: a half-close; this application has nothing more to send, so it
            // answers at once
            Event::GoawayReceived { .. } => {
                let now = pair.now;
                conn(pair, side).close(now, "answer");
            }
            _ => {}
        }
    }
}

#[cfg(feature = "compression")]
fn wire_payload(codec: Codec, payload: &[u8]) -> Vec<u8> {
    let limits = crate::compress::DecompressLimits {
        max_decompressed: 16 << 20,
        max_ratio: 255,
        codecs: 0x03,
    };
    let mut out = Vec::new();
    crate::compress::Decompressor::new()
        .decompress(codec, payload, &limits, &mut out)
        .expect("a correct sender's payload decompresses");
    out
}

#[cfg(not(feature = "compression"))]
fn wire_payload(_codec: Codec, payload: &[u8]) -> Vec<u8> {
    payload.to_vec()
}

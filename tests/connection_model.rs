//! Model-based property test of one connection endpoint (issue 5).
//!
//! A fake peer (this test) writes bytes by hand with the crate's public encoders and feeds
//! them to a real [`Connection`]. Beside it runs a small reference MODEL of the endpoint's
//! observable behaviour, written from the spec alone (it never looks at connection
//! internals): the sender's flow-control credit (§8), PING answers (§5.3), the empty-DATA
//! run (§11), the packet-error budget (§12.3, §7.2), graceful shutdown (§5.5, §6.4) and the
//! idle timer (§6.5). After every operation the test compares what the implementation did
//! (send result, packets transmitted, events, closed or not and with which code) with
//! what the model predicts.
//!
//! CREDIT packets the implementation sends (it grants credit back as the test consumes
//! events, §8 `[[flow.grant]]`) are outside the model and ignored.

use std::time::Duration;

use fleetwire::connection::{Config, Connection, Event, SendError, SendOptions, ServiceSet};
use fleetwire::control::{Control, Credit, Goaway, Hello, Ping, Role};
use fleetwire::{Deframer, ErrorCode, Header, Kind, Limits, Route, PREFACE};
use proptest::prelude::*;

/// The implementation's node id and the fake peer's.
const OWN_ID: u16 = 1;
const PEER_ID: u16 = 7;
/// The only service registered on the implementation (§7.2).
const SERVICE: u8 = 1;
const UNREGISTERED: u8 = 2;
/// The implementation's own idle timeout and drain timer (§6.5).
const IDLE_MS: u64 = 2_000;
const DRAIN_MS: u64 = 3_000;
/// The peer's `max_payload` (the minimum, so that credit runs out quickly).
const PEER_MAX_PAYLOAD: u16 = 1024;
/// §11 default, which the implementation is configured with.
const MAX_EMPTY_RUN: u32 = 32;

#[derive(Clone, Debug)]
enum Op {
    /// The application sends a DATA packet of `len` bytes.
    Send { len: u16 },
    /// The application sends DATA of exactly the remaining byte credit plus `extra`
    /// (capped at the peer's `max_payload`): the boundary of §8 `[[flow.send]]`.
    SendRest { extra: u16 },
    /// The peer sends CREDIT(packets, bytes).
    RecvCredit { packets: u32, bytes: u32 },
    /// The peer sends CREDIT that brings the outstanding credit (packets, or bytes when
    /// `bytes`) to 2^32 - 1 plus `extra`: the boundary of §8 `[[flow.overflow]]`.
    RecvCreditToMax { bytes: bool, extra: u32 },
    /// The peer sends PING(id, ts); the application then (before anything is
    /// transmitted) optionally sends DATA.
    RecvPing {
        id: u64,
        ts: u64,
        then_send: Option<u16>,
    },
    /// The peer sends `count` empty DATA packets to a registered service, in one read.
    RecvEmpty { count: u8 },
    /// The peer sends a non-empty DATA packet to a registered service.
    RecvData { len: u16 },
    /// The peer sends DATA (possibly empty) to a service that is not registered.
    RecvUnregistered { len: u8 },
    /// The peer sends GOAWAY NO_ERROR.
    RecvGoaway,
    /// The application closes gracefully.
    AppClose,
    /// Time passes.
    Advance { ms: u64 },
    /// Time moves to `before` ms before the idle deadline (0 = exactly at it).
    ToIdleDeadline { before: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0..=16u16, 1000..=PEER_MAX_PAYLOAD];
    let credit_value = prop_oneof![3 => 0..3000u32, 1 => Just(0u32), 1 => any::<u32>()];
    prop_oneof![
        6 => len.clone().prop_map(|len| Op::Send { len }),
        2 => (0..=1u16).prop_map(|extra| Op::SendRest { extra }),
        3 => (credit_value.clone(), credit_value)
            .prop_map(|(packets, bytes)| Op::RecvCredit { packets, bytes }),
        1 => (any::<bool>(), 0..=1u32)
            .prop_map(|(bytes, extra)| Op::RecvCreditToMax { bytes, extra }),
        3 => (any::<u64>(), any::<u64>(), proptest::option::of(len))
            .prop_map(|(id, ts, then_send)| Op::RecvPing { id, ts, then_send }),
        3 => prop_oneof![1..=4u8, 20..=34u8].prop_map(|count| Op::RecvEmpty { count }),
        2 => (1..=64u16).prop_map(|len| Op::RecvData { len }),
        2 => (0..=3u8).prop_map(|len| Op::RecvUnregistered { len }),
        1 => Just(Op::RecvGoaway),
        1 => Just(Op::AppClose),
        2 => prop_oneof![0..=400u64, 1_500..=2_100u64].prop_map(|ms| Op::Advance { ms }),
        1 => (0..=1u64).prop_map(|before| Op::ToIdleDeadline { before }),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    credit_packets: u32,
    credit_bytes: u32,
    max_packet_errors: u32,
}

prop_compose! {
    fn setup()(
        credit_packets in 1..=4u32,
        credit_bytes in u32::from(PEER_MAX_PAYLOAD)..=3_000u32,
        max_packet_errors in 1..=4u32,
    ) -> Setup {
        Setup { credit_packets, credit_bytes, max_packet_errors }
    }
}

/// A packet as the model sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Pkt {
    Data {
        len: u16,
    },
    Pong {
        id: u64,
        ts: u64,
    },
    /// `delivered` is checked only when the model predicts it.
    Goaway {
        code: ErrorCode,
        delivered: Option<u64>,
    },
    /// ERROR routed to `dest` about the packet whose header was `header`.
    Error {
        dest: u16,
        code: ErrorCode,
        header: Vec<u8>,
    },
    Other(Kind),
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Ev {
    Data {
        len: usize,
    },
    Closed {
        code: ErrorCode,
        by_peer: bool,
        delivered: Option<u64>,
    },
    Other(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// We sent GOAWAY NO_ERROR at this time (ms).
    Draining {
        since: u64,
    },
    Closed,
}

/// What the model predicts for one operation.
#[derive(Default, Debug)]
struct Expect {
    send: Vec<Result<(), SendError>>,
    tx: Vec<Pkt>,
    events: Vec<Ev>,
    /// Several outcomes are allowed by the spec (a timer tie): skip the comparison and
    /// end the case.
    ambiguous: bool,
}

/// The reference model, from the spec.
#[derive(Debug)]
struct Model {
    state: State,
    /// Credit the peer granted us (§8), wide enough to see an overflow.
    credit_packets: u64,
    credit_bytes: u64,
    empty_run: u32,
    packet_errors: u32,
    max_packet_errors: u32,
    /// DATA packets of the peer processed before our GOAWAY (§5.5).
    delivered: u64,
    /// DATA packets we sent (what the fake peer reports in its GOAWAY).
    sent: u64,
    now: u64,
    last_rx: u64,
}

impl Model {
    fn new(setup: &Setup) -> Model {
        Model {
            state: State::Open,
            credit_packets: u64::from(setup.credit_packets),
            credit_bytes: u64::from(setup.credit_bytes),
            empty_run: 0,
            packet_errors: 0,
            max_packet_errors: setup.max_packet_errors,
            delivered: 0,
            sent: 0,
            now: 0,
            last_rx: 0,
        }
    }

    fn connection_error(&mut self, code: ErrorCode, ex: &mut Expect) {
        // §6.4 [[close.on-error]], §12.1: GOAWAY with the code, then close
        ex.tx.push(Pkt::Goaway {
            code,
            delivered: None,
        });
        ex.events.push(Ev::Closed {
            code,
            by_peer: false,
            delivered: None,
        });
        self.state = State::Closed;
    }

    /// The application sends DATA of `len` bytes (§8 [[flow.send]], §6.4).
    fn send(&mut self, len: u16, ex: &mut Expect) {
        if self.state != State::Open {
            ex.send.push(Err(SendError::Closing));
        } else if self.credit_packets >= 1 && self.credit_bytes >= u64::from(len) {
            self.credit_packets -= 1;
            self.credit_bytes -= u64::from(len);
            self.sent += 1;
            ex.send.push(Ok(()));
            ex.tx.push(Pkt::Data { len });
        } else {
            ex.send.push(Err(SendError::NoCredit));
        }
    }

    fn recv_credit(&mut self, packets: u32, bytes: u32, ex: &mut Expect) {
        self.last_rx = self.now;
        if packets == 0 && bytes == 0 {
            // §5.6 [[credit.zero]]
            return self.connection_error(ErrorCode::BAD_CONTROL, ex);
        }
        let p = self.credit_packets + u64::from(packets);
        let b = self.credit_bytes + u64::from(bytes);
        if p > u64::from(u32::MAX) || b > u64::from(u32::MAX) {
            // §8 [[flow.overflow]]
            return self.connection_error(ErrorCode::FLOW_CONTROL, ex);
        }
        self.credit_packets = p;
        self.credit_bytes = b;
    }

    fn recv_ping(&mut self, id: u64, ts: u64, ex: &mut Expect) {
        self.last_rx = self.now;
        // §5.3 [[ping.answer]]; PING is permitted in DRAINING (§6.4)
        ex.tx.push(Pkt::Pong { id, ts });
    }

    /// One DATA packet from the peer (§6.3 order: empty run §11, then delivery §7.2).
    fn recv_data(&mut self, service: u8, header: &[u8], len: usize, ex: &mut Expect) {
        if self.state == State::Closed {
            return; // no more input is processed
        }
        self.last_rx = self.now;
        // §11 [[limit.empty-run]]: every empty DATA counts, whatever happens to it next
        if len == 0 {
            self.empty_run += 1;
            if self.empty_run > MAX_EMPTY_RUN {
                return self.connection_error(ErrorCode::FLOOD, ex);
            }
        } else {
            self.empty_run = 0;
        }
        if let State::Draining { .. } = self.state {
            // §6.4 [[close.discard]]: discarded, not a packet error
            return;
        }
        self.delivered += 1;
        if service == SERVICE {
            ex.events.push(Ev::Data { len });
            return;
        }
        // §7.2 [[route.no-service]], §12.3 [[err.budget]]
        self.packet_errors += 1;
        if self.packet_errors > self.max_packet_errors {
            return self.connection_error(ErrorCode::TOO_MANY_ERRORS, ex);
        }
        ex.tx.push(Pkt::Error {
            dest: PEER_ID,
            code: ErrorCode::NO_SERVICE,
            header: header.to_vec(),
        });
    }

    /// The peer's GOAWAY NO_ERROR carrying `delivered` = our DATA it processed.
    fn recv_goaway(&mut self, peer_delivered: u64, ex: &mut Expect) {
        self.last_rx = self.now;
        let by_peer = match self.state {
            State::Open => {
                // §6.4 [[close.answer]], §5.5 [[goaway.delivered]]
                ex.tx.push(Pkt::Goaway {
                    code: ErrorCode::NO_ERROR,
                    delivered: Some(self.delivered),
                });
                true
            }
            // we already sent GOAWAY NO_ERROR: not answered again (§6.4)
            _ => false,
        };
        ex.events.push(Ev::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer,
            delivered: Some(peer_delivered),
        });
        self.state = State::Closed;
    }

    fn app_close(&mut self, ex: &mut Expect) {
        if self.state == State::Open {
            // §6.4: GOAWAY NO_ERROR with our `delivered` (§5.5), then DRAINING
            ex.tx.push(Pkt::Goaway {
                code: ErrorCode::NO_ERROR,
                delivered: Some(self.delivered),
            });
            self.state = State::Draining { since: self.now };
        }
    }

    /// Time moves to `now` (§6.5 [[timeout.boundary]]: expired at `now >= t0 + T`).
    fn advance_to(&mut self, now: u64, ex: &mut Expect) {
        self.now = self.now.max(now);
        let idle = self.last_rx + IDLE_MS;
        let drain = match self.state {
            State::Draining { since } => Some(since + DRAIN_MS),
            _ => None,
        };
        let idle_expired = self.now >= idle;
        let drain_expired = drain.is_some_and(|d| self.now >= d);
        match (idle_expired, drain_expired) {
            (true, true) if Some(idle) == drain => ex.ambiguous = true,
            (true, true) if drain < Some(idle) => self.drain_expired(ex),
            (true, _) => self.connection_error(ErrorCode::TIMEOUT, ex),
            (false, true) => self.drain_expired(ex),
            (false, false) => {}
        }
    }

    fn drain_expired(&mut self, ex: &mut Expect) {
        // §6.4: closes without sending anything more, with the code of its GOAWAY
        ex.events.push(Ev::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer: false,
            delivered: None,
        });
        self.state = State::Closed;
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn data_packet(service: u8, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let length = u16::try_from(len).unwrap();
    Header::data(Route::new(0, service, 0), length).encode_to_vec(&mut wire);
    let header = wire.clone();
    wire.extend(std::iter::repeat_n(0xA5u8, len));
    (wire, header)
}

fn control_packet(control: Control<'_>) -> Vec<u8> {
    let mut wire = Vec::new();
    control.encode_packet(&mut wire);
    wire
}

/// The implementation plus a deframer for what it transmits.
struct Harness {
    conn: Connection,
    out: Deframer,
}

impl Harness {
    fn new(setup: &Setup) -> Harness {
        let mut config = Config::node(OWN_ID);
        config.limits.idle_timeout_ms = u32::try_from(IDLE_MS).unwrap();
        config.limits.drain_timeout_ms = DRAIN_MS;
        config.limits.max_packet_errors = setup.max_packet_errors;
        config.limits.max_empty_run = MAX_EMPTY_RUN;
        config.services = Some(ServiceSet::from_iter([SERVICE]));
        let mut conn = Connection::new(config, Duration::ZERO);

        // The peer: preface + HELLO with the chosen initial credit, no idle timeout (so
        // the implementation sends no keepalive PING, §6.2) and no codecs.
        let limits = Limits::default()
            .with_max_payload(PEER_MAX_PAYLOAD)
            .with_initial_credit_packets(setup.credit_packets)
            .with_initial_credit_bytes(setup.credit_bytes)
            .with_idle_timeout_ms(0);
        let mut input = PREFACE.to_vec();
        input.extend(control_packet(Control::Hello(Hello::new(
            Role::Node,
            PEER_ID,
            &limits,
            0,
        ))));
        conn.handle_input(Duration::ZERO, &input);

        let mut wire = Vec::new();
        conn.poll_transmit(&mut wire);
        assert_eq!(&wire[..8], &PREFACE);
        let mut out = Deframer::new(u16::MAX);
        out.extend(&wire[8..]);
        let hello = out.next_packet().unwrap().unwrap();
        assert_eq!(hello.header.kind, Kind::Hello);
        assert!(out.next_packet().unwrap().is_none());
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        assert!(
            matches!(&events[..], [Event::Established { peer }] if peer.node_id == PEER_ID),
            "{events:?}"
        );
        Harness { conn, out }
    }

    fn transmitted(&mut self) -> Vec<Pkt> {
        let mut wire = Vec::new();
        self.conn.poll_transmit(&mut wire);
        self.out.extend(&wire);
        let mut pkts = Vec::new();
        while let Some(p) = self
            .out
            .next_packet()
            .expect("implementation sent bad framing")
        {
            let h = p.header;
            let pkt = match h.kind {
                Kind::Data => Pkt::Data { len: h.length },
                Kind::Credit => continue, // outside the model (§8 [[flow.grant]])
                kind => match Control::parse(kind, &p.payload).expect("bad control payload") {
                    Control::Pong(pong) => Pkt::Pong {
                        id: pong.id,
                        ts: pong.timestamp,
                    },
                    Control::Goaway(g) => Pkt::Goaway {
                        code: g.code,
                        delivered: Some(g.delivered),
                    },
                    Control::Error(e) => Pkt::Error {
                        dest: h.route.node,
                        code: e.code,
                        header: e.header.to_vec(),
                    },
                    _ => Pkt::Other(kind),
                },
            };
            pkts.push(pkt);
        }
        pkts
    }

    fn events(&mut self) -> Vec<Ev> {
        std::iter::from_fn(|| self.conn.poll_event())
            .map(|e| match e {
                Event::Data { payload, .. } => Ev::Data { len: payload.len() },
                Event::Closed {
                    code,
                    by_peer,
                    delivered,
                    ..
                } => Ev::Closed {
                    code,
                    by_peer,
                    delivered,
                },
                other => Ev::Other(format!("{other:?}")),
            })
            .collect()
    }
}

/// GOAWAYs compare `delivered` only when the model predicts it.
fn same_tx(expected: &[Pkt], actual: &[Pkt]) -> bool {
    expected.len() == actual.len()
        && expected.iter().zip(actual).all(|(e, a)| match (e, a) {
            (
                Pkt::Goaway {
                    code: ce,
                    delivered: None,
                },
                Pkt::Goaway { code: ca, .. },
            ) => ce == ca,
            _ => e == a,
        })
}

/// Runs one operation on both the model and the implementation and compares them.
fn step(model: &mut Model, h: &mut Harness, op: &Op, index: usize) -> Result<bool, TestCaseError> {
    let mut ex = Expect::default();
    let mut send = Vec::new();
    let now = ms(model.now);
    let opts = SendOptions::default();
    let route = Route::new(0, SERVICE, 0);
    let payload = [0x5Au8; PEER_MAX_PAYLOAD as usize];
    match *op {
        Op::Send { len } => {
            model.send(len, &mut ex);
            send.push(h.conn.send_data(route, &payload[..len.into()], opts));
        }
        Op::SendRest { extra } => {
            let rest = model.credit_bytes.min(u64::from(PEER_MAX_PAYLOAD));
            let len = u16::try_from(rest).unwrap().saturating_add(extra);
            let len = len.min(PEER_MAX_PAYLOAD);
            model.send(len, &mut ex);
            send.push(h.conn.send_data(route, &payload[..len.into()], opts));
        }
        Op::RecvCredit { packets, bytes } => {
            model.recv_credit(packets, bytes, &mut ex);
            let wire = control_packet(Control::Credit(Credit { packets, bytes }));
            h.conn.handle_input(now, &wire);
        }
        Op::RecvCreditToMax { bytes: side, extra } => {
            let have = if side {
                model.credit_bytes
            } else {
                model.credit_packets
            };
            let add = u32::try_from(u64::from(u32::MAX) - have)
                .unwrap()
                .saturating_add(extra);
            let (packets, bytes) = if side { (0, add) } else { (add, 0) };
            model.recv_credit(packets, bytes, &mut ex);
            let wire = control_packet(Control::Credit(Credit { packets, bytes }));
            h.conn.handle_input(now, &wire);
        }
        Op::RecvPing { id, ts, then_send } => {
            model.recv_ping(id, ts, &mut ex);
            let wire = control_packet(Control::Ping(Ping { id, timestamp: ts }));
            h.conn.handle_input(now, &wire);
            if let Some(len) = then_send {
                // §5.3 [[ping.order]]: the PONG goes out before DATA queued afterwards
                model.send(len, &mut ex);
                send.push(h.conn.send_data(route, &payload[..len.into()], opts));
            }
        }
        Op::RecvEmpty { count } => {
            let mut wire = Vec::new();
            for _ in 0..count {
                let (packet, header) = data_packet(SERVICE, 0);
                model.recv_data(SERVICE, &header, 0, &mut ex);
                wire.extend(packet);
            }
            h.conn.handle_input(now, &wire);
        }
        Op::RecvData { len } => {
            let (wire, header) = data_packet(SERVICE, len.into());
            model.recv_data(SERVICE, &header, len.into(), &mut ex);
            h.conn.handle_input(now, &wire);
        }
        Op::RecvUnregistered { len } => {
            let (wire, header) = data_packet(UNREGISTERED, len.into());
            model.recv_data(UNREGISTERED, &header, len.into(), &mut ex);
            h.conn.handle_input(now, &wire);
        }
        Op::RecvGoaway => {
            let delivered = model.sent;
            model.recv_goaway(delivered, &mut ex);
            let wire = control_packet(Control::Goaway(Goaway {
                code: ErrorCode::NO_ERROR,
                delivered,
                reason: "",
            }));
            h.conn.handle_input(now, &wire);
            // §6.4 [[close.answer-then-close]]: it may close at once or wait for the end
            // of the stream; end the stream so that either way it must be closed.
            if !h.conn.is_closed() {
                h.conn.handle_eof(now);
            }
        }
        Op::AppClose => {
            model.app_close(&mut ex);
            h.conn.close(now, "bye");
        }
        Op::Advance { ms: by } => {
            model.advance_to(model.now + by, &mut ex);
            h.conn.handle_timeout(ms(model.now));
        }
        Op::ToIdleDeadline { before } => {
            let target = (model.last_rx + IDLE_MS).saturating_sub(before);
            model.advance_to(target, &mut ex);
            h.conn.handle_timeout(ms(model.now));
        }
    }
    let tx = h.transmitted();
    let events = h.events();
    if ex.ambiguous {
        return Ok(false);
    }
    let ctx = format!("op #{index} {op:?}; model {model:?}");
    prop_assert_eq!(&send, &ex.send, "send results; {}", ctx);
    prop_assert!(
        same_tx(&ex.tx, &tx),
        "transmitted {:?}, model expects {:?}; {}",
        tx,
        ex.tx,
        ctx
    );
    prop_assert_eq!(&events, &ex.events, "events; {}", ctx);
    let closed = model.state == State::Closed;
    prop_assert_eq!(h.conn.is_closed(), closed, "closed; {}", ctx);
    if !closed {
        prop_assert_eq!(
            h.conn.is_draining(),
            matches!(model.state, State::Draining { .. }),
            "draining; {}",
            ctx
        );
        if model.state == State::Open {
            let (p, b) = h.conn.send_credit();
            prop_assert_eq!(
                (u64::from(p), u64::from(b)),
                (model.credit_packets, model.credit_bytes),
                "send credit; {}",
                ctx
            );
        }
        // §6.5: the next deadline is never later than the idle deadline
        let idle = ms(model.last_rx + IDLE_MS);
        prop_assert!(h.conn.poll_timeout().is_some_and(|t| t <= idle), "{}", ctx);
    }
    Ok(!closed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    // trace: flow.send, flow.overflow, credit.zero, ping.answer, ping.order, limit.empty-run,
    // trace: err.budget, route.no-service, close.answer, close.discard, goaway.delivered,
    // trace: timeout.boundary
    #[test]
    fn connection_matches_model(setup in setup(), ops in proptest::collection::vec(op(), 1..=60)) {
        let mut model = Model::new(&setup);
        let mut harness = Harness::new(&setup);
        for (i, op) in ops.iter().enumerate() {
            if !step(&mut model, &mut harness, op, i)? {
                break;
            }
        }
    }
}

/// A fixed sequence through the boundary of the idle timer (§6.5 [[timeout.boundary]]).
// trace: timeout.boundary
#[test]
fn idle_timer_fires_exactly_at_the_deadline() {
    let setup = Setup {
        credit_packets: 1,
        credit_bytes: 1024,
        max_packet_errors: 1,
    };
    let mut model = Model::new(&setup);
    let mut harness = Harness::new(&setup);
    let ops = [
        Op::Advance { ms: 500 },
        Op::RecvData { len: 3 },
        Op::ToIdleDeadline { before: 1 },
        Op::ToIdleDeadline { before: 0 },
    ];
    for (i, op) in ops.iter().enumerate() {
        step(&mut model, &mut harness, op, i).unwrap();
    }
    assert_eq!(model.state, State::Closed);
    assert!(harness.conn.is_closed());
}

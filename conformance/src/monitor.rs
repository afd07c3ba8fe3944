//! The sender monitor: checks every sender-side requirement of the spec on the raw bytes
//! an endpoint under test writes, knowing the bytes it received.
//!
//! The monitor decodes both directions itself (the reference codec for the peer's
//! stream, bit-level parsing for the endpoint's own stream, so that a bit the endpoint
//! should not set is seen even where the codec would reject the packet). Feed it, in the
//! order they happened, the bytes the endpoint received ([`Monitor::received`]) and the
//! bytes it wrote ([`Monitor::sent`]); it collects [`Violation`]s, each naming the
//! requirement tag it breaks. The codec-mode runner runs it on every step of every
//! transcript (testee protocol v2); the live-peer runner on every connection.
//!
//! ```
//! use std::time::Duration;
//! use fleetwire_conformance::{Monitor, MonitorOptions};
//! use fleetwire::connection::{Config, Connection};
//!
//! let mut m = Monitor::new(MonitorOptions::default());
//! let mut conn = Connection::new(Config::client(), Duration::ZERO);
//! let mut out = Vec::new();
//! conn.poll_transmit(&mut out);
//! m.sent(Duration::ZERO, &out);
//! assert!(m.violations().is_empty());
//! // the same HELLO with an R bit set in its header breaks [[hdr.reserved-send]]
//! out[9] |= 0x04;
//! let mut m = Monitor::new(MonitorOptions::default());
//! m.sent(Duration::ZERO, &out);
//! assert_eq!(m.violations()[0].tag, "hdr.reserved-send");
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;

use crate::cases::{tag_levels, Level};
use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::{Control, Hello, Role};
use fleetwire::{Codec, ErrorCode, Header, Kind, Status, PREFACE};

/// How the monitor is driven.
///
/// ```
/// let o = fleetwire_conformance::MonitorOptions::default();
/// assert!(o.role.is_none() && !o.synchronous);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MonitorOptions {
    /// The role the endpoint under test is configured with, when the runner knows it: its
    /// HELLO must announce it.
    pub role: Option<Role>,
    /// Whether the endpoint honours X = 1 from its peer (a trusted proxy link, §7.4):
    /// decides the source of a received packet, hence the route of an ERROR about it.
    pub peer_trusted: bool,
    /// Each [`Monitor::sent`] call holds everything the endpoint wrote after it had
    /// processed all the bytes given to [`Monitor::received`] so far (a sans-IO driver:
    /// the codec-mode runner). Enables the checks that depend on when a packet was sent:
    /// PONG order across writes, the GOAWAY answer, DATA after a received GOAWAY, the
    /// lower bound of `delivered`, keepalive and the no-deadlock credit. A live
    /// connection leaves it false.
    pub synchronous: bool,
}

/// One broken requirement.
///
/// ```
/// use fleetwire_conformance::{Level, Violation};
/// let v = Violation { tag: "hdr.version-send", level: Level::Must, offset: 8,
///     message: "Version 2 in HELLO".into() };
/// assert_eq!(v.to_string(), "[[hdr.version-send]] at sent byte 8: Version 2 in HELLO");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The requirement tag (`spec/fleetwire-v1.md`).
    pub tag: &'static str,
    /// The tag's keyword: MUST fails a case, SHOULD makes it NON-STRICT.
    pub level: Level,
    /// Offset in the endpoint's output stream (preface included) of the packet at fault.
    pub offset: u64,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[[{}]] at sent byte {}: {}",
            self.tag, self.offset, self.message
        )
    }
}

/// The requirements the monitor checks, each with the tag it reports: the list the
/// report and `conformance/PROTOCOL.md` print.
///
/// ```
/// let tags: Vec<_> = fleetwire_conformance::MONITOR_CHECKS.iter().map(|c| c.0).collect();
/// assert!(tags.contains(&"flow.send") && tags.contains(&"ping.fifo"));
/// ```
pub const MONITOR_CHECKS: &[(&str, &str)] = &[
    ("preface.send", "the output starts with the preface, then a HELLO"),
    ("hdr.version-send", "Version 1 in HELLO, the negotiated version after it"),
    ("hdr.kind", "no unassigned kind"),
    ("hdr.reserved-send", "R bits zero"),
    ("hdr.hint-send", "hint bits zero (except on packets a proxy forwards)"),
    ("hdr.codec-reserved", "no Cod = 3"),
    ("hdr.control-flags", "control packets with Cod = 0 and N = 0"),
    ("hdr.never-compress", "N = 1 only with Cod = 0"),
    ("hdr.control-ext", "no X on hop-by-hop control packets"),
    ("hdr.ext-send", "X only from a proxy"),
    ("hdr.control-route", "zero route on hop-by-hop control packets"),
    ("hdr.length-send", "Payload Length within the peer's max_payload"),
    ("hello.length", "HELLO payload 28..1024 bytes"),
    ("hello.fields", "HELLO fields within the table of §5.2, role as configured"),
    ("hello.versions", "min_version = max_version = 1"),
    ("hello.reserved", "hello_flags, reserved codec bits and extension bytes zero"),
    ("hello.client-id", "a client announces node_id 0"),
    ("hello.node-id", "a node or proxy announces a non-zero node_id"),
    ("state.permitted", "one HELLO only"),
    ("ctl.malformed", "PING, PONG, CREDIT payloads of their exact length"),
    ("credit.zero", "no CREDIT with both increments zero"),
    ("goaway.reason", "GOAWAY layout and reason (UTF-8, at most 256 bytes)"),
    ("error.layout", "ERROR layout and reason"),
    ("err.scope", "ERROR with a packet-error code; GOAWAY never CONNECTION_LOST"),
    ("error.no-loop", "no ERROR about an ERROR"),
    ("error.route", "ERROR about a packet received, routed to that packet's source"),
    ("src.reserved", "Source Node 0xFFFF never stamped"),
    ("flow.send", "DATA only within the credit of both kinds the peer granted"),
    ("flow.overflow", "outstanding credit granted never above 2^32 - 1"),
    ("flow.no-deadlock", "once the application consumed everything, at least one packet and max_payload bytes of credit outstanding (synchronous)"),
    ("comp.send-negotiated", "only codecs the peer announced"),
    ("comp.send-format", "a compressed payload decompresses (reference codec)"),
    ("comp.send-cap", "decompressed length within the peer's max_decompressed and max_ratio"),
    ("comp.threshold", "SHOULD: the compressed form is smaller than the uncompressed one"),
    ("limit.empty-run-floor", "SHOULD NOT: more than 32 consecutive empty DATA"),
    ("ping.answer", "a PONG answers a PING received, with its id and timestamp"),
    ("ping.fifo", "PONGs in the order of the PINGs"),
    ("ping.order", "a PONG before any packet queued after its PING was processed (synchronous)"),
    ("goaway.delivered", "delivered within the DATA packets received before the GOAWAY"),
    ("close.no-data-after", "no DATA after its own GOAWAY"),
    ("close.answer", "a GOAWAY NO_ERROR answered before closing, an error GOAWAY not answered (synchronous)"),
    ("close.on-error", "nothing after its error GOAWAY, nothing in answer to input after a connection error"),
    ("neg.keepalive", "SHOULD: traffic within the peer's idle timeout (synchronous)"),
];

fn level(tag: &str) -> Level {
    static LEVELS: OnceLock<std::collections::BTreeMap<String, Level>> = OnceLock::new();
    LEVELS
        .get_or_init(tag_levels)
        .get(tag)
        .copied()
        .unwrap_or(Level::Must)
}

#[derive(Clone, Copy, Debug)]
struct PeerHello {
    role: Option<Role>,
    node_id: u16,
    min_version: u8,
    max_version: u8,
    codecs: u8,
    max_payload: u16,
    max_decompressed: u32,
    max_ratio: u8,
    credit_packets: u32,
    credit_bytes: u32,
    idle_timeout_ms: u32,
    peer_id: u16,
}

fn hello_fields(p: &[u8]) -> Option<PeerHello> {
    if p.len() < 28 {
        return None;
    }
    let u16at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let u32at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    Some(PeerHello {
        role: Role::from_u8(p[2]),
        node_id: u16at(4),
        min_version: p[0],
        max_version: p[1],
        peer_id: u16at(6),
        codecs: p[8],
        max_ratio: p[9],
        max_payload: u16at(10),
        max_decompressed: u32at(12),
        credit_packets: u32at(16),
        credit_bytes: u32at(20),
        idle_timeout_ms: u32at(24),
    })
}

/// The source the endpoint attributes to a packet it received (§7.4).
fn source_of(peer: &PeerHello, own: Option<&PeerHello>, header: &[u8], trusted: bool) -> u16 {
    let x = header[1] & 0x80 != 0;
    match peer.role {
        Some(Role::Proxy) if x && trusted => u16::from_be_bytes([header[8], header[9]]),
        Some(Role::Client) => match own.map_or(0, |o| o.peer_id) {
            0xFFFF => 0,
            id => id,
        },
        _ => peer.node_id,
    }
}

/// A running check of one connection's sender side. See the [module](self) docs.
#[derive(Debug)]
pub struct Monitor {
    opts: MonitorOptions,
    violations: Vec<Violation>,
    seen_tags: BTreeSet<&'static str>,
    // the peer's stream, as the endpoint received it
    input: Vec<u8>,
    in_preface: bool,
    /// Why the endpoint stops processing input (a connection error it must detect, or a
    /// GOAWAY with an error code); nothing after it is interpreted.
    in_stop: Option<String>,
    peer: Option<PeerHello>,
    peer_goaway: Option<u16>,
    /// PINGs received and not yet answered: id, timestamp, whether an output went by.
    pings: VecDeque<(u64, u64, bool)>,
    data_in: u64,
    data_in_bytes: u64,
    data_in_at_last_output: u64,
    received_headers: Vec<Vec<u8>>,
    peer_credit_packets: u64,
    peer_credit_bytes: u64,
    // the endpoint's stream
    output: Vec<u8>,
    out_offset: u64,
    out_preface: bool,
    own: Option<PeerHello>,
    packets_out: u64,
    data_out: u64,
    data_out_bytes: u64,
    granted_packets: u64,
    granted_bytes: u64,
    empty_run: u32,
    sent_goaway_ok: bool,
    sent_goaway_err: bool,
    goaway_sent_at_output: bool,
    last_sent: Duration,
    closed: bool,
    peer_ended: bool,
    consumed: bool,
    outputs: u64,
    peer_goaway_output: u64,
    decompressor: Decompressor,
}

impl Monitor {
    /// A monitor for one connection.
    ///
    /// ```
    /// let m = fleetwire_conformance::Monitor::new(Default::default());
    /// assert!(m.violations().is_empty());
    /// ```
    pub fn new(opts: MonitorOptions) -> Monitor {
        Monitor {
            opts,
            violations: Vec::new(),
            seen_tags: BTreeSet::new(),
            input: Vec::new(),
            in_preface: false,
            in_stop: None,
            peer: None,
            peer_goaway: None,
            pings: VecDeque::new(),
            data_in: 0,
            data_in_bytes: 0,
            data_in_at_last_output: 0,
            received_headers: Vec::new(),
            peer_credit_packets: 0,
            peer_credit_bytes: 0,
            output: Vec::new(),
            out_offset: 0,
            out_preface: false,
            own: None,
            packets_out: 0,
            data_out: 0,
            data_out_bytes: 0,
            granted_packets: 0,
            granted_bytes: 0,
            empty_run: 0,
            sent_goaway_ok: false,
            sent_goaway_err: false,
            goaway_sent_at_output: false,
            last_sent: Duration::ZERO,
            closed: false,
            peer_ended: false,
            consumed: false,
            outputs: 0,
            peer_goaway_output: 0,
            decompressor: Decompressor::new(),
        }
    }

    /// The violations found so far, first occurrence of each tag only.
    ///
    /// ```
    /// assert!(fleetwire_conformance::Monitor::new(Default::default()).violations().is_empty());
    /// ```
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Takes the violations found so far (a tag already reported is not reported again).
    ///
    /// ```
    /// let mut m = fleetwire_conformance::Monitor::new(Default::default());
    /// assert!(m.take_violations().is_empty());
    /// ```
    pub fn take_violations(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }

    fn flag(&mut self, tag: &'static str, offset: u64, message: impl Into<String>) {
        if self.seen_tags.insert(tag) {
            self.violations.push(Violation {
                tag,
                level: level(tag),
                offset,
                message: message.into(),
            });
        }
    }

    /// The endpoint has closed: it writes nothing more (keepalive no longer applies).
    ///
    /// ```
    /// fleetwire_conformance::Monitor::new(Default::default()).closed();
    /// ```
    pub fn closed(&mut self) {
        self.closed = true;
    }

    /// The endpoint's input ended (the peer closed the byte stream, or it failed): an
    /// answer to the peer's GOAWAY is no longer owed.
    ///
    /// ```
    /// fleetwire_conformance::Monitor::new(Default::default()).input_ended();
    /// ```
    pub fn input_ended(&mut self) {
        self.peer_ended = true;
    }

    /// The application has taken every event so far (synchronous drivers): the output of
    /// the next [`sent`](Monitor::sent) call is checked for `[[flow.no-deadlock]]`.
    ///
    /// ```
    /// fleetwire_conformance::Monitor::new(Default::default()).consumed();
    /// ```
    pub fn consumed(&mut self) {
        self.consumed = true;
    }

    fn established(&self) -> bool {
        self.peer.is_some() && self.own.is_some()
    }

    fn negotiated_version(&self) -> u8 {
        match (&self.own, &self.peer) {
            (Some(o), Some(p)) => {
                let hi = o.max_version.min(p.max_version);
                if hi >= o.min_version.max(p.min_version) {
                    hi
                } else {
                    1
                }
            }
            _ => 1,
        }
    }

    fn stop_input(&mut self, why: String) {
        if self.in_stop.is_none() {
            self.in_stop = Some(why);
        }
    }

    /// Bytes the endpoint received (at `now`), in order.
    ///
    /// ```
    /// let mut m = fleetwire_conformance::Monitor::new(Default::default());
    /// m.received(std::time::Duration::ZERO, &fleetwire::PREFACE);
    /// ```
    pub fn received(&mut self, _now: Duration, bytes: &[u8]) {
        if self.in_stop.is_some() || self.sent_goaway_err {
            return;
        }
        self.input.extend_from_slice(bytes);
        if !self.in_preface {
            if self.input.len() < 8 {
                if self.input[..] != PREFACE[..self.input.len()] {
                    self.stop_input("bad preface".into());
                }
                return;
            }
            if self.input[..8] != PREFACE {
                self.stop_input("bad preface".into());
                return;
            }
            self.in_preface = true;
            self.input.drain(..8);
        }
        while self.in_stop.is_none() {
            let Some(&b1) = self.input.get(1) else { break };
            let hl = if b1 & 0x80 != 0 { 10 } else { 8 };
            if self.input.len() < hl {
                break;
            }
            let max = self.own.map_or(u16::MAX, |o| o.max_payload);
            let header = match Header::parse(&self.input[..hl], max) {
                Ok(Status::Complete(h)) => h,
                Ok(Status::Incomplete { .. }) => break,
                Err(e) => {
                    self.stop_input(format!("input header: {}", e.code()));
                    break;
                }
            };
            let len = hl + usize::from(header.length);
            if self.input.len() < len {
                // state checks come before the payload (§6.3)
                if let Some(why) = self.state_error(&header, &self.input[..hl]) {
                    self.stop_input(why);
                }
                break;
            }
            let packet: Vec<u8> = self.input.drain(..len).collect();
            self.take_input_packet(&header, &packet[..hl], &packet[hl..]);
        }
    }

    /// A connection error of §6.3 (only those that need no timing of the endpoint's
    /// own output: credit is left to the endpoint).
    fn state_error(&self, h: &Header, raw: &[u8]) -> Option<String> {
        match (&self.peer, h.kind) {
            (None, Kind::Hello | Kind::Goaway) => None,
            (None, k) => Some(format!("{} before HELLO", k.name())),
            (Some(_), Kind::Hello) => Some("a second HELLO".into()),
            (Some(_), Kind::Data) if self.peer_goaway.is_some() => {
                Some("DATA after the peer's GOAWAY".into())
            }
            (Some(p), Kind::Data | Kind::Error) if raw[1] & 0x80 != 0 => {
                let forged = match p.role {
                    Some(Role::Proxy) => !self.opts.peer_trusted,
                    _ => true,
                };
                if forged || u16::from_be_bytes([raw[8], raw[9]]) == 0xFFFF {
                    Some("a forged source".into())
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn take_input_packet(&mut self, h: &Header, raw: &[u8], payload: &[u8]) {
        if let Some(why) = self.state_error(h, raw) {
            return self.stop_input(why);
        }
        if h.kind != Kind::Data {
            if let Err(e) = Control::parse(h.kind, payload) {
                return self.stop_input(format!("input {}: {}", h.kind.name(), e.code()));
            }
        }
        match h.kind {
            Kind::Hello => {
                let p = hello_fields(payload);
                self.peer = p;
                if let (Some(p), Some(o)) = (p, self.own) {
                    if o.max_version.min(p.max_version) < o.min_version.max(p.min_version) {
                        self.stop_input("no common version".into());
                    }
                }
                if let Some(p) = p {
                    self.peer_credit_packets = u64::from(p.credit_packets);
                    self.peer_credit_bytes = u64::from(p.credit_bytes);
                }
            }
            Kind::Data => {
                self.data_in += 1;
                self.data_in_bytes += u64::from(h.length);
                self.received_headers.push(raw.to_vec());
            }
            Kind::Error => self.received_headers.push(raw.to_vec()),
            Kind::Ping => {
                let id = u64::from_be_bytes(payload[..8].try_into().unwrap_or_default());
                let ts = u64::from_be_bytes(payload[8..16].try_into().unwrap_or_default());
                self.pings.push_back((id, ts, false));
            }
            Kind::Credit => {
                let p = u32::from_be_bytes(payload[..4].try_into().unwrap_or_default());
                let b = u32::from_be_bytes(payload[4..8].try_into().unwrap_or_default());
                self.peer_credit_packets += u64::from(p);
                self.peer_credit_bytes += u64::from(b);
                let out_p = self.peer_credit_packets.saturating_sub(self.data_out);
                let out_b = self.peer_credit_bytes.saturating_sub(self.data_out_bytes);
                if out_p > u64::from(u32::MAX) || out_b > u64::from(u32::MAX) {
                    self.stop_input("CREDIT overflow".into());
                }
            }
            Kind::Goaway => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if self.peer_goaway.is_none() {
                    self.peer_goaway = Some(code);
                    self.peer_goaway_output = self.outputs;
                }
                if code != 0 {
                    self.stop_input("the peer's GOAWAY with an error code".into());
                }
            }
            _ => {}
        }
    }

    /// Bytes the endpoint wrote (at `now`), in order. With
    /// [`synchronous`](MonitorOptions::synchronous), call it after every step of the
    /// driver, with empty `bytes` when nothing was written.
    ///
    /// ```
    /// let mut m = fleetwire_conformance::Monitor::new(Default::default());
    /// m.sent(std::time::Duration::ZERO, b"GET / HTTP/1.1\r\n");
    /// assert_eq!(m.violations()[0].tag, "preface.send");
    /// ```
    pub fn sent(&mut self, now: Duration, bytes: &[u8]) {
        let sync = self.opts.synchronous;
        // PINGs that were pending before this output and were already followed by an
        // output opportunity: nothing may precede their PONG any more
        let overdue = self.pings.iter().filter(|p| p.2).count();
        let mut overdue_left = overdue;
        let mut nothing_after_overdue = true;
        self.output.extend_from_slice(bytes);
        if !self.out_preface && !self.output.is_empty() {
            let n = self.output.len().min(8);
            if self.output[..n] != PREFACE[..n] {
                self.flag(
                    "preface.send",
                    0,
                    "the output does not begin with the preface",
                );
                self.output.clear();
                self.out_preface = true; // nothing more can be decoded
                self.closed = true;
                return;
            }
            if self.output.len() >= 8 {
                self.output.drain(..8);
                self.out_offset = 8;
                self.out_preface = true;
            }
        }
        let mut packets_now = 0;
        while self.out_preface && self.output.len() >= 2 {
            let hl = if self.output[1] & 0x80 != 0 { 10 } else { 8 };
            if self.output.len() < hl {
                break;
            }
            let len = hl + usize::from(u16::from_be_bytes([self.output[2], self.output[3]]));
            if self.output.len() < len {
                break;
            }
            let packet: Vec<u8> = self.output.drain(..len).collect();
            let at = self.out_offset;
            self.out_offset += len as u64;
            packets_now += 1;
            let kind = packet[0] & 0x0F;
            if sync && overdue_left > 0 {
                if kind == 3 {
                    overdue_left -= 1;
                } else if nothing_after_overdue {
                    nothing_after_overdue = false;
                    self.flag(
                        "ping.order",
                        at,
                        format!("kind {kind} sent before the PONG of a PING processed earlier"),
                    );
                }
            }
            self.check_packet(at, &packet[..hl], &packet[hl..]);
        }
        for p in self.pings.iter_mut() {
            p.2 = true;
        }
        self.outputs += 1;
        if packets_now > 0 {
            self.last_sent = now;
        }
        if sync {
            self.after_synchronous_output(now, packets_now);
        }
        self.data_in_at_last_output = self.data_in;
    }

    fn after_synchronous_output(&mut self, now: Duration, packets_now: usize) {
        let at = self.out_offset;
        let stopped = self.in_stop.is_some() || self.closed;
        // §6.4 [[close.answer]]: a GOAWAY NO_ERROR is answered before the endpoint
        // closes (unless its input ended first)
        if self.closed
            && self.peer_goaway == Some(0)
            && self.peer.is_some()
            && !self.goaway_sent_at_output
            && !self.peer_ended
            && self.in_stop.is_none()
        {
            self.flag(
                "close.answer",
                at,
                "closed without answering the peer's GOAWAY NO_ERROR",
            );
        }
        // §6.2 [[neg.keepalive]]
        if let (Some(p), true) = (self.peer, self.established()) {
            let idle = Duration::from_millis(u64::from(p.idle_timeout_ms));
            if p.idle_timeout_ms > 0
                && packets_now == 0
                && !stopped
                && !self.sent_goaway_err
                && now >= self.last_sent + idle
            {
                self.flag(
                    "neg.keepalive",
                    at,
                    format!(
                        "nothing sent from {} ms to {} ms, the peer's idle timeout is {} ms",
                        self.last_sent.as_millis(),
                        now.as_millis(),
                        idle.as_millis()
                    ),
                );
            }
        }
        // §8 [[flow.no-deadlock]]
        if std::mem::take(&mut self.consumed)
            && self.established()
            && !stopped
            && self.peer_goaway.is_none()
            && !self.sent_goaway_ok
            && !self.sent_goaway_err
            && self.opts.role != Some(Role::Proxy)
        {
            let own = self.own.expect("established");
            let out_p = self.granted_packets.saturating_sub(self.data_in);
            let out_b = self.granted_bytes.saturating_sub(self.data_in_bytes);
            if out_p < 1 || out_b < u64::from(own.max_payload) {
                self.flag(
                    "flow.no-deadlock",
                    at,
                    format!(
                        "every DATA consumed, but only {out_p} packets and {out_b} bytes of credit outstanding (max_payload {})",
                        own.max_payload
                    ),
                );
            }
        }
    }

    fn check_packet(&mut self, at: u64, h: &[u8], payload: &[u8]) {
        let version = h[0] >> 4;
        let kind = h[0] & 0x0F;
        let x = h[1] & 0x80 != 0;
        let n = h[1] & 0x40 != 0;
        let cod = (h[1] >> 4) & 0x03;
        let route = [h[4], h[5], h[6], h[7]];
        let first = self.packets_out == 0;
        self.packets_out += 1;
        if self.sent_goaway_err {
            self.flag(
                "close.on-error",
                at,
                format!("kind {kind} sent after its GOAWAY with an error code"),
            );
        }
        if first && kind != 1 {
            self.flag(
                "preface.send",
                at,
                format!("first packet of kind {kind}, not HELLO"),
            );
        }
        let want = if kind == 1 {
            1
        } else {
            self.negotiated_version()
        };
        if version != want {
            self.flag(
                "hdr.version-send",
                at,
                format!("Version {version} in a packet of kind {kind}, {want} expected"),
            );
        }
        let Some(k) = Kind::from_u4(kind) else {
            return self.flag("hdr.kind", at, format!("unassigned kind {kind} sent"));
        };
        if h[1] & 0x0C != 0 {
            self.flag(
                "hdr.reserved-send",
                at,
                format!("R bits {:#04x}", h[1] & 0x0C),
            );
        }
        let forwarded = x && self.own.and_then(|o| o.role) == Some(Role::Proxy);
        if h[1] & 0x03 != 0 && !forwarded {
            self.flag("hdr.hint-send", at, format!("hint bits {}", h[1] & 0x03));
        }
        if cod == 3 {
            self.flag("hdr.codec-reserved", at, "Cod = 3 sent");
        }
        if k.is_control() && (cod != 0 || n) {
            self.flag(
                "hdr.control-flags",
                at,
                format!("{} with Cod {cod}, N {}", k.name(), u8::from(n)),
            );
        }
        if n && cod != 0 {
            self.flag("hdr.never-compress", at, format!("N = 1 with Cod {cod}"));
        }
        if k.is_hop_by_hop() {
            if x {
                self.flag("hdr.control-ext", at, format!("{} with X = 1", k.name()));
            }
            if route != [0; 4] {
                self.flag(
                    "hdr.control-route",
                    at,
                    format!("{} with a route", k.name()),
                );
            }
        } else if x {
            let own_role = self.own.and_then(|o| o.role);
            if own_role.is_some() && own_role != Some(Role::Proxy) {
                self.flag(
                    "hdr.ext-send",
                    at,
                    format!("{} with X = 1 from a non-proxy", k.name()),
                );
            }
            if u16::from_be_bytes([h[8], h[9]]) == 0xFFFF {
                self.flag("src.reserved", at, "Source Node 0xFFFF stamped");
            }
        }
        if let Some(p) = self.peer {
            if payload.len() > usize::from(p.max_payload) {
                self.flag(
                    "hdr.length-send",
                    at,
                    format!(
                        "{} payload bytes, the peer announced max_payload {}",
                        payload.len(),
                        p.max_payload
                    ),
                );
            }
        }
        match k {
            Kind::Hello => self.check_hello(at, first, payload),
            Kind::Data => self.check_data(at, h, payload),
            Kind::Ping => {
                if payload.len() != 16 {
                    self.flag(
                        "ctl.malformed",
                        at,
                        format!("PING of {} bytes", payload.len()),
                    );
                }
            }
            Kind::Pong => self.check_pong(at, payload),
            Kind::Credit => self.check_credit(at, payload),
            Kind::Goaway => self.check_goaway(at, payload),
            Kind::Error => self.check_error(at, h, payload),
        }
    }

    fn check_hello(&mut self, at: u64, first: bool, p: &[u8]) {
        if !first {
            return self.flag("state.permitted", at, "a second HELLO sent");
        }
        if p.len() < 28 || p.len() > 1024 {
            self.flag(
                "hello.length",
                at,
                format!("HELLO payload of {} bytes", p.len()),
            );
        }
        let Some(h) = hello_fields(p) else { return };
        self.own = Some(h);
        self.granted_packets = u64::from(h.credit_packets);
        self.granted_bytes = u64::from(h.credit_bytes);
        if h.min_version < 1 || h.max_version < h.min_version {
            self.flag(
                "hello.fields",
                at,
                format!("versions {}..{}", h.min_version, h.max_version),
            );
        } else if h.min_version != 1 || h.max_version != 1 {
            self.flag(
                "hello.versions",
                at,
                format!(
                    "versions {}..{} announced by a version 1 endpoint",
                    h.min_version, h.max_version
                ),
            );
        }
        match (h.role, self.opts.role) {
            (None, _) => self.flag("hello.fields", at, format!("role {}", p[2])),
            (Some(r), Some(want)) if r != want => self.flag(
                "hello.fields",
                at,
                format!("role {} announced, configured as {}", r.name(), want.name()),
            ),
            (Some(Role::Client), _) if h.node_id != 0 => self.flag(
                "hello.client-id",
                at,
                format!("a client announces node_id {}", h.node_id),
            ),
            (Some(Role::Node | Role::Proxy), _) if h.node_id == 0 => {
                self.flag("hello.node-id", at, "a node or proxy announces node_id 0")
            }
            _ => {}
        }
        if p[3] != 0 || h.codecs & 0xFC != 0 || p[28..].iter().any(|b| *b != 0) {
            self.flag(
                "hello.reserved",
                at,
                format!(
                    "hello_flags {:#04x}, codecs {:#04x}, extensions non-zero: {}",
                    p[3],
                    h.codecs,
                    p[28..].iter().any(|b| *b != 0)
                ),
            );
        }
        let mut bad = Vec::new();
        if h.node_id == 0xFFFF {
            bad.push("node_id 0xFFFF");
        }
        if h.peer_id == 0xFFFF {
            bad.push("peer_id 0xFFFF");
        }
        if Hello::parse(&p[..p.len().min(1024)]).is_err() && h.role.is_some() && h.node_id != 0xFFFF
        {
            bad.push("a limit outside its bounds");
        }
        if !bad.is_empty() {
            self.flag("hello.fields", at, bad.join(", "));
        }
    }

    fn check_data(&mut self, at: u64, h: &[u8], payload: &[u8]) {
        let cod = (h[1] >> 4) & 0x03;
        if self.sent_goaway_ok || self.sent_goaway_err {
            self.flag("close.no-data-after", at, "DATA after its own GOAWAY");
        }
        // §8 [[flow.send]]
        let left_p = self.peer_credit_packets.saturating_sub(self.data_out);
        let left_b = self.peer_credit_bytes.saturating_sub(self.data_out_bytes);
        if self.peer.is_none() {
            self.flag(
                "flow.send",
                at,
                "DATA before the peer's HELLO granted any credit",
            );
        } else if left_p < 1 || left_b < payload.len() as u64 {
            self.flag(
                "flow.send",
                at,
                format!(
                    "DATA of {} bytes with {left_p} packets and {left_b} bytes of credit left",
                    payload.len()
                ),
            );
        }
        self.data_out += 1;
        self.data_out_bytes += payload.len() as u64;
        if payload.is_empty() {
            self.empty_run += 1;
            if self.empty_run > 32 {
                self.flag(
                    "limit.empty-run-floor",
                    at,
                    "more than 32 consecutive empty DATA sent",
                );
            }
        } else {
            self.empty_run = 0;
        }
        let Some(codec) = Codec::from_bits(cod).filter(|c| *c != Codec::None) else {
            return;
        };
        let Some(p) = self.peer else { return };
        if p.codecs & codec.hello_bit() == 0 {
            return self.flag(
                "comp.send-negotiated",
                at,
                format!(
                    "{} payload, the peer announced codecs {:#04x}",
                    codec.name(),
                    p.codecs
                ),
            );
        }
        let limits = DecompressLimits {
            max_decompressed: p.max_decompressed,
            max_ratio: p.max_ratio,
            codecs: p.codecs,
        };
        let mut out = Vec::new();
        match self
            .decompressor
            .decompress(codec, payload, &limits, &mut out)
        {
            Ok(()) => {
                if payload.len() >= out.len() {
                    self.flag(
                        "comp.threshold",
                        at,
                        format!(
                            "{} bytes compressed from {} bytes",
                            payload.len(),
                            out.len()
                        ),
                    );
                }
            }
            Err(e) if e.code() == ErrorCode::DECOMPRESSION_FAILED => self.flag(
                "comp.send-format",
                at,
                format!("a {} payload the reference cannot decompress", codec.name()),
            ),
            Err(e) => self.flag(
                "comp.send-cap",
                at,
                format!("{}: above the peer's cap", e.code()),
            ),
        }
    }

    fn check_pong(&mut self, at: u64, p: &[u8]) {
        if p.len() != 20 {
            return self.flag("ctl.malformed", at, format!("PONG of {} bytes", p.len()));
        }
        let id = u64::from_be_bytes(p[..8].try_into().unwrap_or_default());
        let ts = u64::from_be_bytes(p[8..16].try_into().unwrap_or_default());
        match self.pings.iter().position(|q| q.0 == id && q.1 == ts) {
            Some(0) => {
                self.pings.pop_front();
            }
            Some(i) => {
                self.flag(
                    "ping.fifo",
                    at,
                    format!("PONG {id} before the PONG of an earlier PING"),
                );
                self.pings.remove(i);
            }
            None if self.in_stop.is_some() => self.flag(
                "close.on-error",
                at,
                format!(
                    "PONG {id} for input after {}",
                    self.in_stop.clone().unwrap_or_default()
                ),
            ),
            None if self.pings.iter().any(|q| q.0 == id) => self.flag(
                "ping.answer",
                at,
                format!("PONG {id} with another timestamp than its PING"),
            ),
            None => self.flag(
                "ping.answer",
                at,
                format!("PONG {id} answers no PING received"),
            ),
        }
    }

    fn check_credit(&mut self, at: u64, p: &[u8]) {
        if p.len() != 8 {
            return self.flag("ctl.malformed", at, format!("CREDIT of {} bytes", p.len()));
        }
        let packets = u32::from_be_bytes(p[..4].try_into().unwrap_or_default());
        let bytes = u32::from_be_bytes(p[4..].try_into().unwrap_or_default());
        if packets == 0 && bytes == 0 {
            self.flag("credit.zero", at, "CREDIT 0/0 sent");
        }
        self.granted_packets += u64::from(packets);
        self.granted_bytes += u64::from(bytes);
        let out_p = self.granted_packets.saturating_sub(self.data_in);
        let out_b = self.granted_bytes.saturating_sub(self.data_in_bytes);
        if out_p > u64::from(u32::MAX) || out_b > u64::from(u32::MAX) {
            self.flag(
                "flow.overflow",
                at,
                format!("outstanding credit {out_p} packets, {out_b} bytes"),
            );
        }
    }

    fn check_goaway(&mut self, at: u64, p: &[u8]) {
        if let Err(e) = Control::parse(Kind::Goaway, p) {
            return self.flag(
                "goaway.reason",
                at,
                format!("GOAWAY payload: {}", e.detail()),
            );
        }
        let code = u16::from_be_bytes([p[0], p[1]]);
        let delivered = u64::from_be_bytes(p[2..10].try_into().unwrap_or_default());
        if code == ErrorCode::CONNECTION_LOST.0 {
            self.flag(
                "err.scope",
                at,
                "GOAWAY CONNECTION_LOST sent (a local code)",
            );
        }
        if code > 0x00FF {
            self.flag(
                "err.scope",
                at,
                format!("GOAWAY with the packet-error code {code:#06x}"),
            );
        }
        if self.opts.synchronous && self.peer_goaway.is_some_and(|c| c != 0) {
            self.flag(
                "close.answer",
                at,
                "a GOAWAY answering the peer's error GOAWAY",
            );
        }
        let first = !self.sent_goaway_ok && !self.sent_goaway_err;
        if code == 0 {
            if self.sent_goaway_ok {
                self.flag("close.on-error", at, "a second GOAWAY NO_ERROR");
            }
            self.sent_goaway_ok = true;
        } else {
            self.sent_goaway_err = true;
        }
        self.goaway_sent_at_output = true;
        if first {
            // §5.5 [[goaway.delivered]]
            let low = if self.opts.synchronous {
                self.data_in_at_last_output
            } else {
                0
            };
            let high = self.data_in;
            if delivered < low || delivered > high {
                self.flag(
                    "goaway.delivered",
                    at,
                    format!(
                        "delivered {delivered}, but {low}..={high} DATA packets were processed"
                    ),
                );
            }
        }
    }

    fn check_error(&mut self, at: u64, h: &[u8], p: &[u8]) {
        if let Err(e) = Control::parse(Kind::Error, p) {
            return self.flag("error.layout", at, format!("ERROR payload: {}", e.detail()));
        }
        let code = u16::from_be_bytes([p[0], p[1]]);
        // §11 limit.per-source: on a trusted proxy link a source over its empty-DATA run
        // or error budget gets ERROR FLOOD, respectively TOO_MANY_ERRORS
        let from_proxy = self.peer.is_some_and(|peer| peer.role == Some(Role::Proxy));
        let per_source = from_proxy && self.opts.peer_trusted && matches!(code, 0x000E | 0x000F);
        if !(0x0100..=0x01FF).contains(&code) && !per_source {
            self.flag("err.scope", at, format!("ERROR with the code {code:#06x}"));
        }
        // the embedded header's X flag (its byte 1, payload byte 3) decides its length
        let hl = if p[3] & 0x80 != 0 { 10 } else { 8 };
        let embedded = &p[2..2 + hl];
        if embedded[0] & 0x0F == 6 {
            return self.flag("error.no-loop", at, "an ERROR about an ERROR");
        }
        if !self.received_headers.iter().any(|h| h == embedded) {
            if self.in_stop.is_some() {
                return self.flag(
                    "close.on-error",
                    at,
                    "an ERROR about input after a connection error",
                );
            }
            return self.flag("error.route", at, "an ERROR about a packet never received");
        }
        let Some(peer) = self.peer else { return };
        let source = source_of(&peer, self.own.as_ref(), embedded, self.opts.peer_trusted);
        let dest = u16::from_be_bytes([h[4], h[5]]);
        if dest != source {
            self.flag(
                "error.route",
                at,
                format!("ERROR to node {dest}, the packet's source is {source}"),
            );
        }
    }
}

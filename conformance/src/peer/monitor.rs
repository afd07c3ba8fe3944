//! Sender checks on every packet a testee writes in a live case: what the spec requires
//! of a sender (§4 header bits, §4.5 the peer's `max_payload`, §5 control layouts, §5.2
//! HELLO fields, §5.3 PONG order, §6.4 GOAWAY rules, §8 credit, §9.2 codecs and caps).
//! A violation fails the case that saw it, naming the requirement.

use std::collections::VecDeque;

use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::{Control, Hello, Role};
#[cfg(test)]
use fleetwire::Header;
use fleetwire::{Codec, ErrorCode, Kind, Packet};

/// One sender requirement the testee broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Violation {
    /// The spec tag.
    pub(super) tag: &'static str,
    /// What was seen.
    pub(super) message: String,
}

/// The sender checks of one connection.
pub(super) struct Monitor {
    /// What the runner announced (the testee's bounds).
    ours: Hello<'static>,
    hello_seen: bool,
    /// The testee's role, once its HELLO arrived.
    pub(super) role: Option<Role>,
    /// Credit the runner granted and the testee has not used.
    granted_packets: u64,
    granted_bytes: u64,
    /// PINGs the runner sent and the testee has not answered, oldest first.
    pings: VecDeque<(u64, u64)>,
    goaway_no_error: bool,
    goaway_error: Option<ErrorCode>,
    packets_after_error: usize,
    pub(super) violations: Vec<Violation>,
    decompressor: Decompressor,
}

impl Monitor {
    pub(super) fn new(ours: Hello<'static>) -> Monitor {
        Monitor {
            granted_packets: u64::from(ours.initial_credit_packets),
            granted_bytes: u64::from(ours.initial_credit_bytes),
            ours,
            hello_seen: false,
            role: None,
            pings: VecDeque::new(),
            goaway_no_error: false,
            goaway_error: None,
            packets_after_error: 0,
            violations: Vec::new(),
            decompressor: Decompressor::new(),
        }
    }

    fn flag(&mut self, tag: &'static str, message: String) {
        // one report per requirement is enough
        if !self.violations.iter().any(|v| v.tag == tag) {
            self.violations.push(Violation { tag, message });
        }
    }

    /// The runner granted credit (a CREDIT it sent).
    pub(super) fn granted(&mut self, packets: u32, bytes: u32) {
        self.granted_packets += u64::from(packets);
        self.granted_bytes += u64::from(bytes);
    }

    /// The runner sent a PING.
    pub(super) fn pinged(&mut self, id: u64, timestamp: u64) {
        self.pings.push_back((id, timestamp));
    }

    /// A header the testee sent that does not parse.
    pub(super) fn invalid_header(&mut self, code: ErrorCode, what: &str) {
        let tag = match code {
            ErrorCode::UNSUPPORTED_VERSION => "hdr.version-send",
            ErrorCode::RESERVED_BIT => "hdr.reserved-send",
            ErrorCode::UNKNOWN_KIND => "hdr.kind",
            ErrorCode::BAD_CONTROL => "hdr.control-route",
            _ => "hdr.control-flags",
        };
        self.flag(tag, what.to_owned());
    }

    /// Checks one packet the testee sent.
    pub(super) fn packet(&mut self, p: &Packet) {
        let h = &p.header;
        if self.goaway_error.is_some() {
            self.packets_after_error += 1;
            self.flag(
                "close.on-error",
                format!(
                    "{} sent after a GOAWAY with an error code: the sender must close without \
                     processing further input (§6.4)",
                    h.kind.name()
                ),
            );
        }
        if h.hints != 0 {
            self.flag(
                "hdr.hint-send",
                format!(
                    "{} with hint bits {:#04x} (§4.8: zero in version 1)",
                    h.kind.name(),
                    h.hints
                ),
            );
        }
        if h.length > self.ours.max_payload {
            self.flag(
                "hdr.length-send",
                format!(
                    "{} of {} payload bytes; the runner announced max_payload {} (§4.5)",
                    h.kind.name(),
                    h.length,
                    self.ours.max_payload
                ),
            );
        }
        if !self.hello_seen {
            self.hello_seen = true;
            if h.kind != Kind::Hello {
                self.flag(
                    "preface.send",
                    format!("the first packet is {}, not HELLO (§3)", h.kind.name()),
                );
            }
        } else if h.kind == Kind::Hello {
            self.flag(
                "state.permitted",
                "a second HELLO (§6.3: a HELLO after the first is UNEXPECTED_PACKET)".into(),
            );
        }
        match h.kind {
            Kind::Hello => self.hello(p),
            Kind::Data => self.data(p),
            kind => {
                let parsed = Control::parse(kind, &p.payload);
                match parsed {
                    Err(e) => {
                        let tag = match kind {
                            Kind::Credit if p.payload.len() == 8 => "credit.zero",
                            Kind::Goaway => "goaway.reason",
                            Kind::Error => "error.layout",
                            _ => "ctl.malformed",
                        };
                        self.flag(
                            tag,
                            format!(
                                "a malformed {} ({} bytes): {}",
                                kind.name(),
                                p.payload.len(),
                                e.detail()
                            ),
                        );
                    }
                    Ok(Control::Pong(pong)) => self.pong(pong.id, pong.timestamp),
                    Ok(Control::Goaway(g)) => self.goaway(g.code),
                    Ok(Control::Error(e)) => {
                        if e.header
                            .first()
                            .is_some_and(|b| b & 0x0F == Kind::Error as u8)
                        {
                            self.flag(
                                "error.no-loop",
                                "an ERROR about an ERROR packet (§5.7)".into(),
                            );
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    fn hello(&mut self, p: &Packet) {
        let len = p.payload.len();
        if !(28..=1024).contains(&len) {
            self.flag(
                "hello.length",
                format!("a HELLO payload of {len} bytes (§5.2: 28..=1024)"),
            );
            return;
        }
        let hello = match Hello::parse(&p.payload) {
            Ok(h) => h,
            Err(e) => {
                self.flag("hello.fields", format!("an invalid HELLO: {}", e.detail()));
                return;
            }
        };
        self.role = Some(hello.role);
        if hello.hello_flags != 0
            || hello.codecs & !0x03 != 0
            || hello.extensions.iter().any(|&b| b != 0)
        {
            self.flag(
                "hello.reserved",
                format!(
                    "HELLO reserved fields not zero: hello_flags {:#04x}, codecs {:#04x}, extension bytes {:02x?} (§5.2)",
                    hello.hello_flags,
                    hello.codecs,
                    &hello.extensions[..hello.extensions.len().min(8)]
                ),
            );
        }
        if hello.peer_id == 0xFFFF {
            self.flag(
                "hello.fields",
                "HELLO peer_id 0xFFFF (§5.2: a sender does not send it)".into(),
            );
        }
        match hello.role {
            Role::Client if hello.node_id != 0 => self.flag(
                "hello.client-id",
                format!("a client HELLO with node_id {} (§5.2: 0)", hello.node_id),
            ),
            Role::Node | Role::Proxy if hello.node_id == 0 => self.flag(
                "hello.node-id",
                "a node or proxy HELLO with node_id 0 (§5.2)".into(),
            ),
            _ => {}
        }
    }

    fn data(&mut self, p: &Packet) {
        let h = &p.header;
        if self.goaway_no_error || self.goaway_error.is_some() {
            self.flag(
                "close.no-data-after",
                "DATA sent after the testee's own GOAWAY (§6.4)".into(),
            );
        }
        if self.granted_packets < 1 || self.granted_bytes < u64::from(h.length) {
            self.flag(
                "flow.send",
                format!(
                    "DATA of {} bytes with {} packets and {} bytes of credit left (§8)",
                    h.length, self.granted_packets, self.granted_bytes
                ),
            );
        }
        self.granted_packets = self.granted_packets.saturating_sub(1);
        self.granted_bytes = self.granted_bytes.saturating_sub(u64::from(h.length));
        if h.codec == Codec::None {
            return;
        }
        if self.ours.codecs & h.codec.hello_bit() == 0 {
            self.flag(
                "comp.send-negotiated",
                format!(
                    "DATA compressed with {} although the runner announced codecs {:#04x} (§9.2)",
                    h.codec.name(),
                    self.ours.codecs
                ),
            );
            return;
        }
        let limits = DecompressLimits {
            max_decompressed: self.ours.max_decompressed,
            max_ratio: self.ours.max_ratio,
            codecs: self.ours.codecs,
        };
        let mut out = Vec::new();
        if let Err(e) = self
            .decompressor
            .decompress(h.codec, &p.payload, &limits, &mut out)
        {
            if e.code() == ErrorCode::DECOMPRESSION_FAILED {
                self.flag(
                    "comp.independent",
                    format!(
                        "a {} payload that does not decompress: {} (§9.1)",
                        h.codec.name(),
                        e.detail()
                    ),
                );
            } else {
                self.flag(
                    "comp.send-cap",
                    format!(
                        "a {} payload of {} bytes that decompresses beyond the runner's cap \
                         (max_decompressed {}, max_ratio {}) (§9.2)",
                        h.codec.name(),
                        p.payload.len(),
                        self.ours.max_decompressed,
                        self.ours.max_ratio
                    ),
                );
            }
        }
    }

    fn pong(&mut self, id: u64, timestamp: u64) {
        match self.pings.iter().position(|&(i, _)| i == id) {
            None => {} // a PONG of a PING not sent on this connection: the runner ignores it
            Some(at) => {
                let (_, ts) = self.pings[at];
                if ts != timestamp {
                    self.flag(
                        "ping.answer",
                        format!(
                            "PONG {id} carries timestamp {timestamp}, the PING had {ts} (§5.3)"
                        ),
                    );
                }
                if at != 0 {
                    self.flag(
                        "ping.fifo",
                        format!("PONG {id} came before the PONG of an earlier PING (§5.3)"),
                    );
                }
                self.pings.remove(at);
            }
        }
    }

    fn goaway(&mut self, code: ErrorCode) {
        if code == ErrorCode::NO_ERROR {
            if self.goaway_no_error {
                self.flag(
                    "close.on-error",
                    "a second GOAWAY NO_ERROR (§6.4: at most one)".into(),
                );
            }
            self.goaway_no_error = true;
        } else if self.goaway_error.is_none() {
            self.goaway_error = Some(code);
        }
    }

    /// Whether the runner's own header `h` would be accepted by this monitor's rules;
    /// used by tests.
    #[cfg(test)]
    pub(super) fn header_ok(h: &Header) -> bool {
        h.hints == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwire::{Limits, Route};

    fn ours() -> Hello<'static> {
        Hello::new(Role::Client, 0, &Limits::default(), 0)
    }

    #[test]
    fn flags_hint_bits_and_unannounced_codec_and_credit() {
        let mut m = Monitor::new(Hello {
            initial_credit_packets: 1,
            ..ours()
        });
        let hello = {
            let mut v = Vec::new();
            Control::Hello(Hello::new(Role::Node, 3, &Limits::default(), 0)).encode(&mut v);
            Packet {
                header: Header::control(Kind::Hello, v.len() as u16),
                payload: v.into(),
            }
        };
        m.packet(&hello);
        assert!(m.violations.is_empty(), "{:?}", m.violations);
        let mut d = Packet::data(Route::new(0, 0, 0), bytes::Bytes::from_static(b"x"));
        d.header.hints = 1;
        m.packet(&d);
        assert!(!Monitor::header_ok(&d.header));
        d.header.hints = 0;
        d.header.codec = Codec::Zlib;
        m.packet(&d);
        let tags: Vec<_> = m.violations.iter().map(|v| v.tag).collect();
        assert_eq!(tags, ["hdr.hint-send", "flow.send", "comp.send-negotiated"]);
    }

    #[test]
    fn pong_order_and_timestamp() {
        let mut m = Monitor::new(ours());
        m.hello_seen = true;
        m.pinged(1, 10);
        m.pinged(2, 20);
        m.pong(2, 20);
        m.pong(1, 11);
        let tags: Vec<_> = m.violations.iter().map(|v| v.tag).collect();
        assert_eq!(tags, ["ping.fifo", "ping.answer"]);
    }
}

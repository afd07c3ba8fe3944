//! Live mutants: the reference node or client with one deliberate bug, for the live
//! cases to kill. A mutant is either a byte filter between the runner and the
//! reference (what the reference receives is rewritten so that it misses a fault — a
//! receiver-side bug — or what it sends is rewritten — a sender-side bug), or a change
//! of the reference's configuration that its HELLO hides (it enforces other limits or
//! timers than it announces, or than the runner is told), or a change of its TLS setup
//! (its rustls configuration, or a front before it: `super::fronts`).
//!
//! Names start with `live-` beside the codec-mode mutants (`conformance mutants`); both
//! feed the `tag → mutants → killing cases` matrix. Filters that rewrite what the
//! reference receives pass whole packets only, so they also hold back incomplete packets
//! (the timer cases then see a testee without header timers: a side effect, as for the
//! codec-mode filter mutants).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::builtin::{echo_client, reference_node_options, TIMERS};
use super::run::{run_peer, PeerOptions, PeerSecurity, PeerTarget};
use super::PeerRole;
use crate::report::Report;
use crate::runner::Verdict;
use fleetwire::connection::Config;
use fleetwire::node::{serve, ClientSecurity, NodeSecurity};
use fleetwire::{Codec, PREFACE};

macro_rules! live_mutants {
    ($( $variant:ident = $name:literal, $tag:literal, $what:literal; )*) => {
        /// One deliberate bug of the reference node or client, for the live cases.
        ///
        /// ```
        /// use fleetwire_conformance::peer::LiveMutant;
        /// assert!(LiveMutant::ALL.len() >= 30);
        /// assert!(LiveMutant::ALL.iter().all(|m| m.name().starts_with("live-")));
        /// ```
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum LiveMutant {
            $( #[doc = $what] $variant, )*
        }

        impl LiveMutant {
            /// Every live mutant.
            pub const ALL: &'static [LiveMutant] = &[$(LiveMutant::$variant),*];

            /// Its name (`live-...`).
            ///
            /// ```
            /// assert_eq!(fleetwire_conformance::peer::LiveMutant::PongDropped.name(), "live-pong-dropped");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $( LiveMutant::$variant => $name, )* }
            }

            /// The requirement tag the bug violates.
            ///
            /// ```
            /// assert_eq!(fleetwire_conformance::peer::LiveMutant::PongDropped.tag(), "ping.answer");
            /// ```
            pub fn tag(self) -> &'static str {
                match self { $( LiveMutant::$variant => $tag, )* }
            }

            /// What the bug does.
            ///
            /// ```
            /// assert!(!fleetwire_conformance::peer::LiveMutant::PongDropped.description().is_empty());
            /// ```
            pub fn description(self) -> &'static str {
                match self { $( LiveMutant::$variant => $what, )* }
            }
        }
    };
}

live_mutants! {
    // receiver side: what the reference receives is rewritten (the check is missed)
    AcceptsReservedBits = "live-accepts-reserved-bits", "hdr.reserved",
        "Ignores the R bits of received headers.";
    AcceptsAnyVersion = "live-accepts-any-version", "hdr.version",
        "Reads every received Version as 1.";
    AcceptsUnknownKind = "live-accepts-unknown-kind", "hdr.kind",
        "Reads the unassigned kinds 7-15 as DATA.";
    AcceptsCodec3 = "live-accepts-codec-3", "hdr.codec-reserved",
        "Reads Cod = 3 as 'none'.";
    ControlRouteIgnored = "live-control-route-ignored", "hdr.control-route",
        "Ignores the route of received control packets.";
    ControlFlagsIgnored = "live-control-flags-ignored", "hdr.control-flags",
        "Ignores Cod and N on received control packets.";
    NeverCompressIgnored = "live-never-compress-ignored", "hdr.never-compress",
        "Drops the N flag of received compressed packets instead of BAD_FLAGS.";
    AcceptsForgedSource = "live-accepts-forged-source", "src.forbid",
        "Ignores X = 1 (and the Source Node) on packets from clients and nodes.";
    CreditZeroIgnored = "live-credit-zero-ignored", "credit.zero",
        "Ignores a CREDIT with both increments zero.";
    SecondHelloIgnored = "live-second-hello-ignored", "state.permitted",
        "Ignores a second HELLO.";
    PingTrailingIgnored = "live-ping-trailing-ignored", "ctl.malformed",
        "Reads only the first 16 bytes of a longer PING.";
    GoawayReasonUnchecked = "live-goaway-reason-unchecked", "goaway.reason",
        "Ignores the reason of a received GOAWAY (length and UTF-8).";
    ErrorLayoutUnchecked = "live-error-layout-unchecked", "error.layout",
        "Silently drops a received ERROR that is too short or has a bad reason.";
    IdleRestartedByPacketsOnly = "live-idle-restarted-by-packets-only", "timeout.boundary",
        "Restarts its idle timer (and starts header and packet timers) only at complete packets.";
    // configuration the reference enforces differently from what it announces
    LengthLimitAbove = "live-length-limit-above", "hdr.length-max",
        "Announces max_payload 4096 but accepts 8192.";
    CreditUnchecked = "live-credit-unchecked", "flow.exceed",
        "Announces its initial credit but enforces a far larger one.";
    CapsWithPeerLimits = "live-caps-with-peer-limits", "comp.cap",
        "Bounds decompression with the peer's announced limits instead of its own.";
    EmptyRunOffByOne = "live-empty-run-off-by-one", "limit.empty-run",
        "Closes with FLOOD only after 34 consecutive empty DATA while its max_empty_run is 32 \
         (the value the runner is told): its count is two short.";
    ErrorBudgetOffByOne = "live-error-budget-off-by-one", "err.budget",
        "Closes with TOO_MANY_ERRORS one packet error late.";
    HeaderTimerLate = "live-header-timer-late", "timeout.close",
        "Its header timer is three times longer than configured.";
    HeaderTimerEarly = "live-header-timer-early", "timeout.boundary",
        "Its header timer expires at half the configured time.";
    // sender side: what the reference sends is rewritten, or its view of the peer
    PongDropped = "live-pong-dropped", "ping.answer",
        "Never sends PONG.";
    PongLate = "live-pong-late", "ping.order",
        "Sends each PONG after the next DATA it writes.";
    SendsHintBits = "live-sends-hint-bits", "hdr.hint-send",
        "Sets hint bits on the DATA it sends.";
    SendsVersion2 = "live-sends-version-2", "hdr.version-send",
        "Writes Version 2 in every packet after its HELLO.";
    HelloFlagsSet = "live-hello-flags-set", "hello.reserved",
        "Sends hello_flags 0x01.";
    DataBeyondCredit = "live-data-beyond-credit", "flow.send",
        "Reads the peer's initial credit as 1,048,576 packets.";
    IgnoresPeerMaxPayload = "live-ignores-peer-max-payload", "hdr.length-send",
        "Reads the peer's max_payload as 65535.";
    CompressesUnannounced = "live-compresses-unannounced", "comp.send-negotiated",
        "Reads the peer's codecs as snappy and zlib.";
    IgnoresPeerCaps = "live-ignores-peer-caps", "comp.send-cap",
        "Reads the peer's max_decompressed and max_ratio as the largest values.";
    CorruptCompressor = "live-corrupt-compressor", "comp.send-format",
        "Cuts the last byte of every compressed payload it sends.";
    CompressesSecrets = "live-compresses-secrets", "comp.never",
        "Sends DATA marked N = 1 zlib-compressed (and unmarked).";
    DeliveredOffByOne = "live-delivered-off-by-one", "goaway.delivered",
        "Reports one DATA packet more in its GOAWAY's delivered.";
    DataAfterOwnGoaway = "live-data-after-own-goaway", "close.no-data-after",
        "Repeats the last DATA it sent after its GOAWAY.";
    GoawayNotAnswered = "live-goaway-not-answered", "close.answer",
        "Does not send its GOAWAY NO_ERROR answer.";
    ErrorGoawayDropped = "live-error-goaway-dropped", "close.on-error-goaway",
        "Closes on a connection error without sending GOAWAY.";
    ErrorMisrouted = "live-error-misrouted", "error.route",
        "Sends its ERROR packets to Destination Node 5.";
    NoKeepalive = "live-no-keepalive", "neg.keepalive",
        "Reads the peer's idle_timeout_ms as 0: never sends keepalive traffic.";
    ClosesAtOnceAfterAnswer = "live-closes-at-once-after-answer", "close.answer-drain",
        "Stops reading at the peer's GOAWAY: answers and closes without processing the input it already received.";
    // TLS configuration
    IgnoresAlpn = "live-ignores-alpn", "tls.alpn",
        "Its TLS server neither requires nor selects ALPN.";
    AlpnWrongId = "live-alpn-wrong-id", "tls.alpn",
        "Its TLS server is configured with the ALPN id fleetwire/2, so it never selects fleetwire/1.";
    TlsFallsBackToPlaintext = "live-tls-falls-back-to-plaintext", "layer.no-fallback",
        "Its TLS server serves plaintext Fleetwire (a plaintext node behind the same port) to a peer whose first byte is the preface's 0x89.";
    PlaintextPrefaceNoAlert = "live-plaintext-preface-no-alert", "preface.misconfig",
        "Its TLS server closes without a TLS alert when the first byte is the preface's 0x89.";
    TlsHandshakeFromFirstByte = "live-tls-handshake-from-first-byte", "timeout.tls-handshake",
        "Its TLS server starts the handshake (and its timer) only at the peer's first byte: a peer that sends nothing holds the connection open.";
    TlsHandshakeLate = "live-tls-handshake-late", "timeout.tls-handshake",
        "Its TLS server (a front before the plaintext node) bounds the TLS handshake by three times the handshake timer.";
    TlsRecordPerPacket = "live-tls-record-per-packet", "tls.grouping",
        "Its TLS server (a front before the plaintext node) puts every packet the node writes in a TLS record of its own (one socket write per read of the node, as before).";
    TlsTinyRecords = "live-tls-tiny-records", "tls.grouping",
        "Its TLS server is configured to cap records at 32 bytes (rustls max_fragment_size), so no two small packets share a record.";
    TlsFrontAllowsTls12 = "live-tls-front-allows-tls12", "tls.version",
        "Its TLS server (a front before the plaintext node) negotiates TLS 1.2 as well as 1.3.";
    // the reference client's TLS setup (client role)
    ClientAcceptsAnyCert = "live-client-accepts-any-cert", "tls.server-auth",
        "The TLS client accepts any server certificate (no chain, no name check).";
    ClientIgnoresServerName = "live-client-ignores-server-name", "tls.server-auth",
        "The TLS client checks the server certificate's chain but not its name.";
    ClientAllowsTls12 = "live-client-allows-tls12", "tls.version",
        "The TLS client offers TLS 1.2 as well as 1.3.";
    ClientFallsBackToPlaintext = "live-client-falls-back-to-plaintext", "layer.no-fallback",
        "The TLS client continues in plaintext Fleetwire when the server answers its ClientHello with the plaintext preface.";
    // plaintext
    SkipsTlsRecord = "live-skips-tls-record", "preface.misconfig",
        "A plaintext endpoint that skips a TLS record where the preface belongs, instead of BAD_PREFACE.";
    EmptyRunBelowFloor = "live-empty-run-below-floor", "limit.empty-run-floor",
        "Closes with FLOOD at 32 consecutive empty DATA, as if max_empty_run were 31.";
    RepeatsEmptyData = "live-repeats-empty-data", "limit.empty-run-floor",
        "Sends every empty DATA twice: its runs of empty DATA are twice as long as the ones it echoes.";
    // behind a TLS front that verifies client certificates
    EchoesNodes = "live-echoes-nodes", "route.reflector",
        "Its echo answers every peer, an authenticated node too (it reads every peer's HELLO as a client's).";
    AnswersProxyId = "live-answers-proxy-id", "route.reflector",
        "Its echo takes every source on a proxy link for a client, the proxy's own id too (client ids 1-65534).";
}

impl std::str::FromStr for LiveMutant {
    type Err = String;

    fn from_str(s: &str) -> Result<LiveMutant, String> {
        LiveMutant::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown live mutant {s}"))
    }
}

impl LiveMutant {
    /// Whether the bug is in the TLS setup (killed by the TLS runs, which for these
    /// mutants run the `tls.*` cases: every other case sees the same TLS setup).
    ///
    /// ```
    /// use fleetwire_conformance::peer::LiveMutant;
    /// assert!(LiveMutant::ClientAcceptsAnyCert.tls() && !LiveMutant::PongDropped.tls());
    /// ```
    pub fn tls(self) -> bool {
        use LiveMutant as M;
        matches!(
            self,
            M::IgnoresAlpn
                | M::AlpnWrongId
                | M::TlsFallsBackToPlaintext
                | M::PlaintextPrefaceNoAlert
                | M::TlsHandshakeFromFirstByte
                | M::TlsHandshakeLate
                | M::TlsRecordPerPacket
                | M::TlsTinyRecords
                | M::TlsFrontAllowsTls12
                | M::EchoesNodes
                | M::AnswersProxyId
        ) || self.client_only()
    }

    /// Whether the bug is in the reference client's TLS setup: the mutant runs in the
    /// client role only.
    fn client_only(self) -> bool {
        use LiveMutant as M;
        matches!(
            self,
            M::ClientAcceptsAnyCert
                | M::ClientIgnoresServerName
                | M::ClientAllowsTls12
                | M::ClientFallsBackToPlaintext
        )
    }

    /// Whether the mutant runs in `role`: the TLS server mutants in the server role, the
    /// TLS client mutants in the client role, the filter and configuration mutants in
    /// both.
    ///
    /// ```
    /// use fleetwire_conformance::peer::{LiveMutant, PeerRole};
    /// assert!(LiveMutant::ClientAllowsTls12.runs_in(PeerRole::Client));
    /// assert!(!LiveMutant::ClientAllowsTls12.runs_in(PeerRole::Server));
    /// assert!(LiveMutant::PongDropped.runs_in(PeerRole::Client));
    /// ```
    pub fn runs_in(self, role: PeerRole) -> bool {
        match role {
            PeerRole::Server => !self.client_only(),
            PeerRole::Client => !self.tls() || self.client_only(),
        }
    }

    /// The role of the recorded kill matrix: the client role for the TLS client
    /// mutants, else the server role.
    ///
    /// ```
    /// use fleetwire_conformance::peer::{LiveMutant, PeerRole};
    /// assert_eq!(LiveMutant::ClientAcceptsAnyCert.home(), PeerRole::Client);
    /// assert_eq!(LiveMutant::TlsFrontAllowsTls12.home(), PeerRole::Server);
    /// ```
    pub fn home(self) -> PeerRole {
        if self.client_only() {
            PeerRole::Client
        } else {
            PeerRole::Server
        }
    }

    /// The cases a run of the mutant selects when none are given: the `tls.*` cases
    /// of `role` for the TLS mutants, else all.
    fn default_cases(self, role: PeerRole, case: &[String]) -> Vec<String> {
        use LiveMutant as M;
        if case.is_empty() && matches!(self, M::TlsRecordPerPacket | M::TlsTinyRecords) {
            // how records are filled changes nothing but the count of records
            vec![format!("peer.{}.tls.grouping", role.name())]
        } else if case.is_empty() && self.tls() {
            vec![format!("peer.{}.tls.*", role.name())]
        } else {
            case.to_vec()
        }
    }

    /// Which filter direction the bug needs: (toward the reference, from it).
    fn filters(self) -> (bool, bool) {
        use LiveMutant as M;
        match self {
            M::AcceptsReservedBits
            | M::AcceptsAnyVersion
            | M::AcceptsUnknownKind
            | M::AcceptsCodec3
            | M::ControlRouteIgnored
            | M::ControlFlagsIgnored
            | M::NeverCompressIgnored
            | M::AcceptsForgedSource
            | M::CreditZeroIgnored
            | M::SecondHelloIgnored
            | M::PingTrailingIgnored
            | M::GoawayReasonUnchecked
            | M::ErrorLayoutUnchecked
            | M::IdleRestartedByPacketsOnly
            | M::DataBeyondCredit
            | M::IgnoresPeerMaxPayload
            | M::CompressesUnannounced
            | M::IgnoresPeerCaps
            | M::NoKeepalive
            | M::ClosesAtOnceAfterAnswer
            | M::SkipsTlsRecord
            | M::EmptyRunBelowFloor
            | M::EchoesNodes => (true, false),
            M::LengthLimitAbove | M::CreditUnchecked | M::CapsWithPeerLimits => (false, true),
            M::EmptyRunOffByOne
            | M::ErrorBudgetOffByOne
            | M::HeaderTimerLate
            | M::HeaderTimerEarly
            | M::IgnoresAlpn
            | M::AlpnWrongId => (false, false),
            _ if self.tls() => (false, false),
            _ => (false, true),
        }
    }

    /// The reference's configuration for this mutant.
    fn configure(self, config: &mut Config) {
        use LiveMutant as M;
        let l = &mut config.limits;
        match self {
            M::LengthLimitAbove => l.max_payload = 8192,
            M::CreditUnchecked => {
                l.initial_credit_packets = 1 << 20;
                l.initial_credit_bytes = 1 << 30;
            }
            M::CapsWithPeerLimits => {
                l.max_decompressed = 4096;
                l.max_ratio = 8;
            }
            M::EmptyRunOffByOne => l.max_empty_run = 34,
            M::ErrorBudgetOffByOne => l.max_packet_errors = 17,
            M::HeaderTimerLate => l.header_timeout_ms *= 3,
            M::HeaderTimerEarly => l.header_timeout_ms /= 2,
            _ => {}
        }
    }
}

/// One direction of the filter: parses the Fleetwire stream and rewrites whole packets.
struct Filter {
    mutant: LiveMutant,
    /// Toward the reference (what it receives), else from it.
    inbound: bool,
    buf: Vec<u8>,
    preface_done: bool,
    packets: u64,
    /// Consecutive empty DATA seen (`live-empty-run-below-floor`).
    empty_run: u32,
    /// A PONG held back until the next DATA (`live-pong-late`).
    held: Vec<u8>,
    last_data: Vec<u8>,
    sent_goaway: bool,
    /// Pass everything through from now on.
    transparent: bool,
}

fn set_u32(p: &mut [u8], at: usize, v: u32) {
    p[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn set_len(pkt: &mut [u8], hl: usize) {
    let len = (pkt.len() - hl) as u16;
    pkt[2..4].copy_from_slice(&len.to_be_bytes());
}

impl Filter {
    fn new(mutant: LiveMutant, inbound: bool) -> Filter {
        let (i, o) = mutant.filters();
        Filter {
            mutant,
            inbound,
            buf: Vec::new(),
            preface_done: false,
            packets: 0,
            empty_run: 0,
            held: Vec::new(),
            last_data: Vec::new(),
            sent_goaway: false,
            transparent: !(if inbound { i } else { o }),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.transparent {
            return bytes.to_vec();
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if self.mutant == LiveMutant::SkipsTlsRecord {
            // a TLS record where the preface belongs is skipped; then everything passes
            while self.buf.first() == Some(&0x16) {
                if self.buf.len() < 5 {
                    return out;
                }
                let total = 5 + usize::from(u16::from_be_bytes([self.buf[3], self.buf[4]]));
                if self.buf.len() < total {
                    return out;
                }
                self.buf.drain(..total);
            }
            if !self.buf.is_empty() {
                self.transparent = true;
                out.append(&mut self.buf);
            }
            return out;
        }
        if !self.preface_done {
            if self.buf.len() < PREFACE.len() {
                return out;
            }
            out.extend(self.buf.drain(..PREFACE.len()));
            self.preface_done = true;
        }
        loop {
            if self.transparent {
                out.append(&mut self.buf);
                return out;
            }
            let Some(&b1) = self.buf.get(1) else { break };
            let hl = if b1 & 0x80 != 0 { 10 } else { 8 };
            if self.buf.len() < 4 {
                break;
            }
            let total = hl + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < total {
                break;
            }
            let pkt: Vec<u8> = self.buf.drain(..total).collect();
            self.packets += 1;
            out.extend(self.rewrite(pkt, hl));
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn rewrite(&mut self, mut p: Vec<u8>, hl: usize) -> Vec<u8> {
        use LiveMutant as M;
        let kind = p[0] & 0x0F;
        let control = kind != 0 && kind != 6;
        let first = self.packets == 1;
        if kind == 1 && p.len() < hl + 28 {
            return p; // a short HELLO: the reference refuses it anyway
        }
        // mutants that only change a HELLO pass everything after it through, so that
        // they do not hold back incomplete packets
        if first
            && matches!(
                self.mutant,
                M::DataBeyondCredit
                    | M::IgnoresPeerMaxPayload
                    | M::CompressesUnannounced
                    | M::IgnoresPeerCaps
                    | M::NoKeepalive
                    | M::LengthLimitAbove
                    | M::CreditUnchecked
                    | M::CapsWithPeerLimits
                    | M::HelloFlagsSet
                    | M::EchoesNodes
            )
        {
            self.transparent = true;
        }
        match (self.mutant, self.inbound) {
            (M::AcceptsReservedBits, true) => p[1] &= !0x0C,
            (M::AcceptsAnyVersion, true) => p[0] = 0x10 | kind,
            (M::AcceptsUnknownKind, true) if kind >= 7 => p[0] &= 0xF0,
            (M::AcceptsCodec3, true) if p[1] & 0x30 == 0x30 => p[1] &= !0x30,
            (M::ControlRouteIgnored, true) if control => p[4..8].fill(0),
            (M::ControlFlagsIgnored, true) if control => p[1] &= !0x70,
            (M::NeverCompressIgnored, true) if p[1] & 0x30 != 0 => p[1] &= !0x40,
            (M::AcceptsForgedSource, true) if hl == 10 && !control => {
                p[1] &= !0x80;
                p.drain(8..10);
            }
            (M::CreditZeroIgnored, true) if kind == 5 && p[8..].iter().all(|&b| b == 0) => {
                return Vec::new()
            }
            (M::SecondHelloIgnored, true) if kind == 1 && !first => return Vec::new(),
            (M::PingTrailingIgnored, true) if kind == 2 && p.len() > hl + 16 => {
                p.truncate(hl + 16);
                set_len(&mut p, hl);
            }
            (M::GoawayReasonUnchecked, true) if kind == 4 && p.len() > hl + 10 => {
                p.truncate(hl + 10);
                set_len(&mut p, hl);
            }
            (M::ErrorLayoutUnchecked, true) if kind == 6 => {
                let payload = &p[hl..];
                let eh = payload
                    .get(2)
                    .map_or(0, |b| if b & 0x80 != 0 { 10 } else { 8 });
                let ok = payload.len() >= 2 + eh
                    && std::str::from_utf8(&payload[2 + eh..]).is_ok_and(|r| r.len() <= 256);
                if !ok {
                    return Vec::new();
                }
            }
            (M::IdleRestartedByPacketsOnly, true) => {}
            // the 32nd empty DATA of a run is seen twice: FLOOD at 32, not at 33
            (M::EmptyRunBelowFloor, true) if kind == 0 && p.len() == hl => {
                self.empty_run += 1;
                if self.empty_run == 32 {
                    p.extend_from_slice(&p.clone());
                }
            }
            (M::EmptyRunBelowFloor, true) if kind == 0 => self.empty_run = 0,
            (M::RepeatsEmptyData, false) if kind == 0 && p.len() == hl => {
                p.extend_from_slice(&p.clone());
            }
            // everything after the peer's GOAWAY is lost to the reference
            (M::ClosesAtOnceAfterAnswer, true) if self.sent_goaway => return Vec::new(),
            (M::ClosesAtOnceAfterAnswer, true) if kind == 4 => self.sent_goaway = true,
            // the peer's HELLO as the reference reads it
            (M::DataBeyondCredit, true) if first && kind == 1 => set_u32(&mut p, hl + 16, 1 << 20),
            (M::IgnoresPeerMaxPayload, true) if first && kind == 1 => {
                p[hl + 10..hl + 12].copy_from_slice(&u16::MAX.to_be_bytes());
                set_u32(&mut p, hl + 20, 1 << 30);
            }
            (M::CompressesUnannounced, true) if first && kind == 1 => p[hl + 8] = 0x03,
            (M::IgnoresPeerCaps, true) if first && kind == 1 => {
                p[hl + 9] = 255;
                set_u32(&mut p, hl + 12, 16 << 20);
            }
            (M::NoKeepalive, true) if first && kind == 1 => set_u32(&mut p, hl + 24, 0),
            // every peer a client: role 1, node id 0
            (M::EchoesNodes, true) if first && kind == 1 => {
                p[hl + 2] = 1;
                p[hl + 4..hl + 6].copy_from_slice(&[0, 0]);
            }
            // the reference's own HELLO, announcing other limits than it enforces
            (M::LengthLimitAbove, false) if first && kind == 1 => {
                p[hl + 10..hl + 12].copy_from_slice(&4096u16.to_be_bytes());
            }
            (M::CreditUnchecked, false) if first && kind == 1 => {
                set_u32(&mut p, hl + 16, 1024);
                set_u32(&mut p, hl + 20, 64 * 1024);
            }
            (M::CapsWithPeerLimits, false) if first && kind == 1 => {
                p[hl + 9] = 100;
                set_u32(&mut p, hl + 12, 262_144);
            }
            // what the reference sends
            (M::PongDropped, false) if kind == 3 => return Vec::new(),
            (M::PongLate, false) if kind == 3 => {
                self.held.extend_from_slice(&p);
                return Vec::new();
            }
            (M::PongLate, false) if kind == 0 => {
                p.append(&mut self.held);
            }
            (M::SendsHintBits, false) if kind == 0 => p[1] |= 0x02,
            (M::SendsVersion2, false) if !first => p[0] = 0x20 | kind,
            (M::HelloFlagsSet, false) if first && kind == 1 => p[hl + 3] = 0x01,
            (M::CorruptCompressor, false) if kind == 0 && p[1] & 0x30 != 0 && p.len() > hl + 1 => {
                p.pop();
                set_len(&mut p, hl);
            }
            (M::CompressesSecrets, false) if kind == 0 && p[1] & 0x40 != 0 => {
                let z = super::session::zlib(&p[hl..]);
                p.truncate(hl);
                p.extend(z);
                p[1] = (p[1] & !0x70) | 0x20;
                set_len(&mut p, hl);
            }
            (M::DeliveredOffByOne, false) if kind == 4 && p.len() >= hl + 10 => {
                let d = u64::from_be_bytes(p[hl + 2..hl + 10].try_into().unwrap_or([0; 8]));
                p[hl + 2..hl + 10].copy_from_slice(&(d + 1).to_be_bytes());
            }
            (M::DataAfterOwnGoaway, false) if kind == 0 => self.last_data.clone_from(&p),
            (M::DataAfterOwnGoaway, false) if kind == 4 && !self.sent_goaway => {
                self.sent_goaway = true;
                if !self.last_data.is_empty() {
                    p.extend_from_slice(&self.last_data.clone());
                }
            }
            (M::GoawayNotAnswered, false) if kind == 4 && p.get(hl..hl + 2) == Some(&[0, 0]) => {
                return Vec::new()
            }
            (M::ErrorGoawayDropped, false) if kind == 4 && p.get(hl..hl + 2) != Some(&[0, 0]) => {
                return Vec::new()
            }
            (M::ErrorMisrouted, false) if kind == 6 => p[4..6].copy_from_slice(&5u16.to_be_bytes()),
            _ => {}
        }
        p
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mut f: Filter, stop_after_goaway: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = f.push(&buf[..n]);
        if !out.is_empty() && to.write_all(&out).is_err() {
            break;
        }
        if stop_after_goaway && f.sent_goaway {
            break; // live-closes-at-once-after-answer: the stream ends with the answer
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    let _ = from.shutdown(std::net::Shutdown::Read);
}

/// Accepts on `front` and connects each connection to `back`, filtering both ways.
fn interpose(front: TcpListener, back: SocketAddr, mutant: LiveMutant, stop: Arc<AtomicBool>) {
    let _ = front.set_nonblocking(true);
    while !stop.load(Ordering::SeqCst) {
        let sock = match front.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => return,
        };
        let _ = sock.set_nonblocking(false);
        let Ok(other) = TcpStream::connect(back) else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let _ = other.set_nodelay(true);
        let (Ok(s2), Ok(o2)) = (sock.try_clone(), other.try_clone()) else {
            continue;
        };
        let closes = mutant == LiveMutant::ClosesAtOnceAfterAnswer;
        // the runner's side is `sock` (server role) — see run_server_mutant
        thread::spawn(move || pump(sock, other, Filter::new(mutant, true), false));
        thread::spawn(move || pump(o2, s2, Filter::new(mutant, false), closes));
    }
}

/// A reference node serving `listener` with `mutant`'s configuration.
fn start_node(
    listener: TcpListener,
    security: NodeSecurity,
    mutant: LiveMutant,
) -> (
    fleetwire::node::Shutdown,
    thread::JoinHandle<std::io::Result<()>>,
) {
    let mut node = reference_node_options(security);
    mutant.configure(&mut node.config);
    if mutant == LiveMutant::AnswersProxyId {
        node.client_sources = 1..=65534;
    }
    let shutdown = node.shutdown.clone();
    (shutdown, thread::spawn(move || serve(listener, node)))
}

fn bind() -> Result<(TcpListener, SocketAddr), String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let a = l.local_addr().map_err(|e| e.to_string())?;
    Ok((l, a))
}

/// Runs the server-role cases against the reference node with `mutant` (the `tls.*`
/// cases for a TLS mutant when `case` is empty).
///
/// # Errors
///
/// A harness failure, or a mutant of the reference client.
pub fn run_server_mutant(mutant: LiveMutant, seed: u64, case: &[String]) -> Result<Report, String> {
    use super::fronts::{self, Sniff};
    use LiveMutant as M;
    if !mutant.runs_in(PeerRole::Server) {
        return Err(format!("{} runs in the client role", mutant.name()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut nodes = Vec::new();
    let mut front = None;
    let (target, security) = if mutant.tls() {
        let ca = super::pki::RunnerPki::new()?;
        let (cert, key) = ca.issue(&["localhost"], &[])?;
        // client certificates for the node identities of route.reflector
        let client_ca = if matches!(mutant, M::EchoesNodes | M::AnswersProxyId) {
            Some(Arc::new(super::pki::RunnerPki::new()?))
        } else {
            None
        };
        let security = PeerSecurity::TlsClient {
            ca_pem: ca.ca_cert_pem.clone().into_bytes(),
            server_name: "localhost".into(),
            identity: None,
            client_ca: client_ca.clone(),
        };
        let alpn = vec![fleetwire::tls::ALPN.to_vec()];
        let tls_node = |alpn: Vec<Vec<u8>>| -> Result<NodeSecurity, String> {
            Ok(NodeSecurity::Tls {
                config: fronts::server_config(&cert, &key, fronts::TLS13, alpn, None)?,
                mutual: false,
            })
        };
        let (node_l, node_addr) = bind()?;
        let (front_l, front_addr) = bind()?;
        let target = match mutant {
            M::TlsTinyRecords => {
                let mut config =
                    (*fronts::server_config(&cert, &key, fronts::TLS13, alpn, None)?).clone();
                config.max_fragment_size = Some(32);
                let security = NodeSecurity::Tls {
                    config: Arc::new(config),
                    mutual: false,
                };
                nodes.push(start_node(node_l, security, mutant));
                node_addr
            }
            M::IgnoresAlpn | M::AlpnWrongId => {
                let alpn = if mutant == M::IgnoresAlpn {
                    Vec::new()
                } else {
                    vec![b"fleetwire/2".to_vec()]
                };
                nodes.push(start_node(node_l, tls_node(alpn)?, mutant));
                node_addr
            }
            M::TlsFallsBackToPlaintext
            | M::PlaintextPrefaceNoAlert
            | M::TlsHandshakeFromFirstByte => {
                nodes.push(start_node(node_l, tls_node(alpn)?, mutant));
                let (plain_l, plain_addr) = bind()?;
                nodes.push(start_node(plain_l, NodeSecurity::Plaintext, mutant));
                let how = match mutant {
                    M::TlsFallsBackToPlaintext => Sniff::FallBack,
                    M::PlaintextPrefaceNoAlert => Sniff::CloseSilently,
                    _ => Sniff::WaitFirstByte,
                };
                let stop = stop.clone();
                front = Some(thread::spawn(move || {
                    fronts::accept_each(&front_l, &stop, move |s| {
                        fronts::sniff(s, node_addr, plain_addr, how);
                    });
                }));
                front_addr
            }
            M::AnswersProxyId => {
                // mutual TLS (certificates optional), as the built-in run
                let pem = client_ca.as_ref().map(|c| c.ca_cert_pem.clone());
                let config =
                    fronts::server_config(&cert, &key, fronts::TLS13, alpn, pem.as_deref())?;
                nodes.push(start_node(
                    node_l,
                    NodeSecurity::Tls {
                        config,
                        mutual: true,
                    },
                    mutant,
                ));
                node_addr
            }
            M::EchoesNodes => {
                // a TLS front that verifies client certificates, the filter, the node
                nodes.push(start_node(node_l, NodeSecurity::Plaintext, mutant));
                let (filter_l, filter_addr) = bind()?;
                let stop2 = stop.clone();
                let filter = thread::spawn(move || interpose(filter_l, node_addr, mutant, stop2));
                let client_ca = client_ca.map(|c| c.ca_cert_pem.clone());
                let config =
                    fronts::server_config(&cert, &key, fronts::TLS13, alpn, client_ca.as_deref())?;
                let stop = stop.clone();
                front = Some(thread::spawn(move || {
                    fronts::accept_each(&front_l, &stop, move |s| {
                        fronts::terminate(s, filter_addr, config.clone(), TIMERS.handshake, false);
                    });
                    let _ = filter.join();
                }));
                front_addr
            }
            _ => {
                // a TLS-terminating front before the plaintext node
                nodes.push(start_node(node_l, NodeSecurity::Plaintext, mutant));
                let (versions, bound) = match mutant {
                    M::TlsFrontAllowsTls12 => (fronts::TLS13_12, TIMERS.handshake),
                    M::TlsHandshakeLate => (fronts::TLS13, TIMERS.handshake * 3),
                    _ => (fronts::TLS13, TIMERS.handshake),
                };
                let config = fronts::server_config(&cert, &key, versions, alpn, None)?;
                let per_packet = mutant == M::TlsRecordPerPacket;
                let stop = stop.clone();
                front = Some(thread::spawn(move || {
                    fronts::accept_each(&front_l, &stop, move |s| {
                        fronts::terminate(s, node_addr, config.clone(), bound, per_packet);
                    });
                }));
                front_addr
            }
        };
        (target, security)
    } else {
        let (node_l, node_addr) = bind()?;
        nodes.push(start_node(node_l, NodeSecurity::Plaintext, mutant));
        let (front_l, addr) = bind()?;
        let stop = stop.clone();
        front = Some(thread::spawn(move || {
            interpose(front_l, node_addr, mutant, stop)
        }));
        (addr, PeerSecurity::Plaintext)
    };
    let mut o = PeerOptions::new(PeerTarget::Connect(target.to_string()), security);
    o.seed = seed;
    o.timeout = Duration::from_millis(1500);
    o.case = mutant.default_cases(PeerRole::Server, case);
    o.timers = TIMERS;
    o.max_wait = Duration::from_secs(3);
    o.max_empty_run = Some(32);
    o.unregistered_service = Some(250);
    o.replay = format!("live mutant {}", mutant.name());
    let report = run_peer(&o);
    stop.store(true, Ordering::SeqCst);
    for (shutdown, _) in &nodes {
        shutdown.trigger();
    }
    if let Some(f) = front {
        let _ = f.join();
    }
    for (_, server) in nodes {
        let _ = server.join();
    }
    report
}

/// Runs the client-role cases against the reference client with `mutant` (the
/// `tls.*` cases over TLS for a TLS client mutant when `case` is empty).
///
/// # Errors
///
/// A harness failure, or a mutant of the reference node's TLS setup.
pub fn run_client_mutant(mutant: LiveMutant, seed: u64, case: &[String]) -> Result<Report, String> {
    use super::fronts::{self, ServerCheck};
    use LiveMutant as M;
    if !mutant.runs_in(PeerRole::Client) {
        return Err(format!("{} runs in the server role", mutant.name()));
    }
    // runner <- (filter or front) <- reference client
    let (listener, runner_addr) = bind()?;
    let (front, front_addr) = bind()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = Config::client();
    {
        let l = &mut config.limits;
        l.handshake_timeout_ms = TIMERS.handshake.as_millis() as u64;
        l.header_timeout_ms = TIMERS.header.as_millis() as u64;
        l.packet_timeout_ms = TIMERS.packet.as_millis() as u64;
        l.drain_timeout_ms = TIMERS.drain.as_millis() as u64;
        l.idle_timeout_ms = 1000;
    }
    config.codecs = Codec::Zlib.hello_bit();
    mutant.configure(&mut config);
    let (client_security, security, client_addr, filter) = if mutant.tls() {
        let ca = Arc::new(super::pki::RunnerPki::new()?);
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], &[])?;
        let security = PeerSecurity::TlsServer {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
            ca: Some(ca.clone()),
        };
        let (versions, check) = match mutant {
            M::ClientAcceptsAnyCert => (fronts::TLS13, ServerCheck::None),
            M::ClientIgnoresServerName => (fronts::TLS13, ServerCheck::ChainOnly),
            M::ClientAllowsTls12 => (fronts::TLS13_12, ServerCheck::Full),
            _ => (fronts::TLS13, ServerCheck::Full),
        };
        let client_security = fronts::client_security(&ca.ca_cert_pem, versions, check)?;
        if mutant == M::ClientFallsBackToPlaintext {
            let stop = stop.clone();
            let config = config.clone();
            let f = thread::spawn(move || {
                fronts::accept_each(&front, &stop, move |s| {
                    fronts::fall_back(s, runner_addr, config.clone());
                });
            });
            (client_security, security, front_addr, Some(f))
        } else {
            drop(front);
            (client_security, security, runner_addr, None)
        }
    } else {
        let stop = stop.clone();
        let f = thread::spawn(move || interpose_client(front, runner_addr, mutant, stop));
        (
            ClientSecurity::Plaintext,
            PeerSecurity::Plaintext,
            front_addr,
            Some(f),
        )
    };
    let client = {
        let stop = stop.clone();
        thread::spawn(move || echo_client(client_addr, client_security, stop, config))
    };
    let mut o = PeerOptions::new(PeerTarget::Listen(listener), security);
    o.seed = seed;
    o.timeout = Duration::from_millis(1500);
    o.case = mutant.default_cases(PeerRole::Client, case);
    o.timers = TIMERS;
    o.max_wait = Duration::from_secs(3);
    o.max_empty_run = Some(32);
    o.replay = format!("live mutant {}", mutant.name());
    let report = run_peer(&o);
    stop.store(true, Ordering::SeqCst);
    drop(o);
    if let Some(f) = filter {
        let _ = f.join();
    }
    let _ = client.join();
    report
}

/// The client-side interposer: accepts the reference client on `front` and connects
/// it to the runner at `back`; inbound (toward the reference) is runner → client.
fn interpose_client(
    front: TcpListener,
    back: SocketAddr,
    mutant: LiveMutant,
    stop: Arc<AtomicBool>,
) {
    let _ = front.set_nonblocking(true);
    while !stop.load(Ordering::SeqCst) {
        let client = match front.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => return,
        };
        let _ = client.set_nonblocking(false);
        let Ok(runner) = TcpStream::connect(back) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = runner.set_nodelay(true);
        let (Ok(c2), Ok(r2)) = (client.try_clone(), runner.try_clone()) else {
            continue;
        };
        let closes = mutant == LiveMutant::ClosesAtOnceAfterAnswer;
        thread::spawn(move || pump(runner, client, Filter::new(mutant, true), false));
        thread::spawn(move || pump(c2, r2, Filter::new(mutant, false), closes));
    }
}

/// The cases that kill `mutant` in `report` (FAILED or NON-STRICT).
pub fn killing_cases(report: &Report) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed | Verdict::NonStrict))
        .map(|r| r.id.clone())
        .collect()
}

/// Runs `mutant` in `role` against `case` (all when empty) and returns the killing
/// cases.
///
/// # Errors
///
/// A harness failure.
///
/// ```no_run
/// use fleetwire_conformance::peer::{live_kills, LiveMutant, PeerRole};
/// let kills = live_kills(LiveMutant::PongDropped, PeerRole::Server, &[]).unwrap();
/// assert!(kills.iter().any(|c| c.ends_with("ping.answer")));
/// ```
pub fn live_kills(
    mutant: LiveMutant,
    role: PeerRole,
    case: &[String],
) -> Result<Vec<String>, String> {
    let report = match role {
        PeerRole::Server => run_server_mutant(mutant, 7, case)?,
        PeerRole::Client => run_client_mutant(mutant, 7, case)?,
    };
    Ok(killing_cases(&report))
}

/// Runs the live mutants against the cases of `role`, `threads` at a time, and returns
/// the killing cases of each: the live half of the `tag → mutants → killing cases`
/// matrix. With [`PeerRole::Server`] (the record) every mutant runs, each in its
/// [`home`](LiveMutant::home) role; with [`PeerRole::Client`] the mutants that
/// [`run in`](LiveMutant::runs_in) the client role. The TLS mutants run the `tls.*`
/// cases. An empty list is a survivor; a harness failure is reported as `Err`.
///
/// ```no_run
/// use fleetwire_conformance::peer::{live_kill_matrix, PeerRole};
/// let m = live_kill_matrix(PeerRole::Server, 8);
/// assert!(m.values().all(|k| k.as_ref().is_ok_and(|k| !k.is_empty())));
/// ```
pub fn live_kill_matrix(
    role: PeerRole,
    threads: usize,
) -> std::collections::BTreeMap<LiveMutant, Result<Vec<String>, String>> {
    let todo: Vec<LiveMutant> = LiveMutant::ALL
        .iter()
        .copied()
        .filter(|m| m.runs_in(role) || role == PeerRole::Server)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(todo));
    let results = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let queue = queue.clone();
            let results = results.clone();
            thread::spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(m) = next else { return };
                // the record's run (server role): each mutant in its home role
                let role = if role == PeerRole::Server {
                    m.home()
                } else {
                    role
                };
                let kills = live_kills(m, role, &[]);
                if let Ok(mut r) = results.lock() {
                    r.insert(m, kills);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let out = results.lock().map(|r| r.clone()).unwrap_or_default();
    out
}

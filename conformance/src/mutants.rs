//! Deliberately faulty variants of the reference testee ("mutants").
//!
//! Each mutant injects exactly one bug, described in `conformance/mutants/README.md`, so
//! that the suite can prove it notices: a conformance case that no mutant can fail checks
//! little, and a mutant that no case kills shows a hole in the suite. The bugs are
//! injected around the crate's codec (rewriting header bytes before validation, tweaking
//! limits, post-processing results), never inside it, so the crate itself stays correct.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use fleetwire::ErrorCode;

macro_rules! mutants {
    ($( $variant:ident = $name:literal, $tag:literal, $what:literal; )*) => {
        /// One deliberate bug of the reference testee (`fleetwire testee --mutant NAME`).
        ///
        /// ```
        /// use fleetwire_conformance::Mutant;
        /// let m: Mutant = "accepts-reserved-bits".parse().unwrap();
        /// assert_eq!(m.name(), "accepts-reserved-bits");
        /// assert_eq!(m.tag(), "hdr.reserved");
        /// assert!(Mutant::ALL.len() >= 20);
        /// ```
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Mutant {
            $( #[doc = $what] $variant, )*
        }

        impl Mutant {
            /// Every mutant, in documentation order.
            pub const ALL: &'static [Mutant] = &[$(Mutant::$variant),*];

            /// The name used by `--mutant` and `FLEETWIRE_MUTANT`.
            ///
            /// ```
            /// assert_eq!(fleetwire_conformance::Mutant::PongLate.name(), "pong-late");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $( Mutant::$variant => $name, )* }
            }

            /// The spec requirement tag the bug violates.
            ///
            /// ```
            /// assert_eq!(fleetwire_conformance::Mutant::PongLate.tag(), "ping.order");
            /// ```
            pub fn tag(self) -> &'static str {
                match self { $( Mutant::$variant => $tag, )* }
            }

            /// What the bug does, one sentence.
            ///
            /// ```
            /// assert!(!fleetwire_conformance::Mutant::SplitBug.description().is_empty());
            /// ```
            pub fn description(self) -> &'static str {
                match self { $( Mutant::$variant => $what, )* }
            }
        }
    };
}

mutants! {
    AcceptsReservedBits = "accepts-reserved-bits", "hdr.reserved",
        "Ignores the two R bits of header byte 1 instead of rejecting them with RESERVED_BIT.";
    AcceptsCodec3 = "accepts-codec-3", "hdr.codec-reserved",
        "Treats the reserved Cod value 3 as 'none' instead of BAD_FLAGS.";
    IgnoresNeverCompressWithCodec = "ignores-never-compress-with-codec", "hdr.never-compress",
        "Accepts a DATA or ERROR packet with N = 1 and a codec, dropping the N flag.";
    AcceptsUnknownKind = "accepts-unknown-kind", "hdr.kind",
        "Reads the unassigned kinds 7-15 as DATA instead of UNKNOWN_KIND.";
    ControlRouteIgnored = "control-route-ignored", "hdr.control-route",
        "Ignores a non-zero route on hop-by-hop control packets instead of BAD_CONTROL.";
    AcceptsAnyVersion = "accepts-any-version", "hdr.version",
        "Does not check the Version field.";
    ValidationOrderSwapped = "validation-order-swapped", "hdr.order",
        "Checks Payload Length before the version, kind and flag checks of §4.9.";
    HintBitsRejected = "hint-bits-rejected", "hdr.hint",
        "Treats the hint bits as reserved bits (RESERVED_BIT) instead of ignoring them.";
    LengthLimitOffByOne = "length-limit-off-by-one", "hdr.length-max",
        "Accepts a Payload Length of max_payload + 1.";
    IncompleteCountOff = "incomplete-count-off", "err.incomplete",
        "Reports one byte more than needed for an incomplete header or packet.";
    EncodeDropsHints = "encode-drops-hints", "hdr.hint",
        "Encodes headers with the hint bits cleared, so forwarding loses them.";
    CreditZeroAccepted = "credit-zero-accepted", "credit.zero",
        "Accepts a CREDIT with both increments zero instead of BAD_CONTROL.";
    HelloLengthUnchecked = "hello-length-unchecked", "hello.length",
        "Accepts a HELLO payload longer than 1024 bytes.";
    ReasonUtf8Unchecked = "reason-utf8-unchecked", "goaway.reason",
        "Accepts a GOAWAY or ERROR reason that is not valid UTF-8.";
    GoawayReasonUnchecked = "goaway-reason-unchecked", "goaway.reason",
        "Accepts a GOAWAY reason longer than 256 bytes.";
    PingTrailingAccepted = "ping-trailing-accepted", "ctl.malformed",
        "Accepts a PING payload longer than 16 bytes, ignoring the excess.";
    SplitBug = "split-bug", "layer.split",
        "Drops the first byte of a read that continues a header split across reads.";
    EmptyReadIsEof = "empty-read-is-eof", "err.incomplete",
        "Takes an empty read for the end of the stream and stops parsing.";
    PrefaceLastByteUnchecked = "preface-last-byte-unchecked", "preface.check",
        "Compares only the first 7 bytes of the preface.";
    SkipRatioCap = "skip-ratio-cap", "comp.cap",
        "Bounds decompressed output by max_decompressed only, not by max_ratio x length.";
    SkipDecompressedCap = "skip-decompressed-cap", "comp.cap",
        "Bounds decompressed output by the ratio only, not by max_decompressed.";
    AcceptsCodecNotNegotiated = "accepts-codec-not-negotiated", "comp.not-negotiated",
        "Decompresses a codec the receiver did not announce.";
    SnappyDeclaredLengthUnchecked = "snappy-declared-length-unchecked", "comp.snappy-declared",
        "Decompresses snappy before comparing the declared length with the cap.";
    CapTieWrongCode = "cap-tie-wrong-code", "comp.cap-error",
        "Reports RATIO_EXCEEDED when both cap terms are equal (must be DECOMPRESSED_TOO_LARGE).";
    ZlibTrailingAccepted = "zlib-trailing-accepted", "comp.malformed",
        "Ignores bytes after the end of a zlib stream.";
    EmptyRunOffByOne = "empty-run-off-by-one", "limit.empty-run",
        "Closes with FLOOD only after max_empty_run + 2 consecutive empty DATA packets.";
    ErrorBudgetOffByOne = "error-budget-off-by-one", "err.budget",
        "Closes with TOO_MANY_ERRORS one packet error late.";
    PingRateOffByOne = "ping-rate-off-by-one", "limit.ping-rate",
        "Answers max_ping_rate + 1 PINGs per second before closing with FLOOD.";
    PingRateIgnored = "ping-rate-ignored", "limit.ping-rate",
        "Answers every PING, whatever max_ping_rate is configured.";
    ErrorRateOffByOne = "error-rate-off-by-one", "error.rate",
        "Accepts max_error_rate + 1 ERROR packets per second before closing with FLOOD.";
    ErrorRateIgnored = "error-rate-ignored", "error.rate",
        "Accepts every ERROR packet, whatever max_error_rate is configured.";
    TimeoutOffByOne = "timeout-off-by-one", "timeout.boundary",
        "Handshake, header and packet timers expire 1 ms late (at t0 + T + 1).";
    PongLate = "pong-late", "ping.order",
        "Sends a PONG after packets queued later than the PING.";
    HelloAfterEstablishedAccepted = "hello-after-established-accepted", "state.permitted",
        "Silently ignores a second HELLO instead of UNEXPECTED_PACKET.";
    ForwardsForgedSource = "forwards-forged-source", "src.forbid",
        "Accepts X = 1 from a client peer (ignoring its Source Node) instead of SOURCE_FORGED.";
    GoawayNotAnswered = "goaway-not-answered", "close.answer",
        "Does not answer a peer's GOAWAY NO_ERROR with its own GOAWAY.";
    WrongErrorCode = "wrong-error-code", "hdr.codec-reserved",
        "Reports BAD_FLAGS as PROTOCOL_ERROR everywhere.";
    // sender side: what the endpoint writes (caught by the sender monitor)
    NoPreface = "no-preface", "preface.send",
        "Starts its output with the HELLO, without the preface.";
    PingBeforeHello = "ping-before-hello", "preface.send",
        "Sends a PING right after the preface, before its HELLO.";
    SendsVersion2 = "sends-version-2", "hdr.version-send",
        "Writes Version 2 in every packet after its HELLO.";
    HelloHeaderVersion2 = "hello-header-version-2", "hdr.version-send",
        "Writes Version 2 in the header of its HELLO.";
    HelloMaxVersion2 = "hello-max-version-2", "hello.versions",
        "Announces max_version 2 in its HELLO.";
    SendsReservedBits = "sends-reserved-bits", "hdr.reserved-send",
        "Sets an R bit (0x04) on the DATA packets it sends.";
    SendsHintBits = "sends-hint-bits", "hdr.hint-send",
        "Sets hint bits (a priority class) on the DATA packets it sends.";
    HelloFlagsSet = "hello-flags-set", "hello.reserved",
        "Sends hello_flags 0x01.";
    HelloExtensionGarbage = "hello-extension-garbage", "hello.reserved",
        "Appends four non-zero extension bytes to its HELLO.";
    HelloCodecReservedBits = "hello-codec-reserved-bits", "hello.reserved",
        "Sets a reserved bit (0x80) of the codecs field of its HELLO.";
    PongRouted = "pong-routed", "hdr.control-route",
        "Sends PONGs with Destination Node 1.";
    CreditWithExtension = "credit-with-extension", "hdr.control-ext",
        "Sends CREDIT packets with X = 1 and a Source Node.";
    GoawayNeverCompressFlag = "goaway-never-compress-flag", "hdr.control-flags",
        "Sets N on the GOAWAY packets it sends.";
    CompressedDataMarkedSecret = "compressed-data-marked-secret", "hdr.never-compress",
        "Sets N on compressed DATA packets.";
    ClientAnnouncesNodeId = "client-announces-node-id", "hello.client-id",
        "A client announces node_id 7.";
    NodeAnnouncesZeroId = "node-announces-zero-id", "hello.node-id",
        "A node or proxy announces node_id 0.";
    NodeStampsSource = "node-stamps-source", "hdr.ext-send",
        "A node or client sends its DATA with X = 1 and its own id as Source Node.";
    HelloShort = "hello-short", "hello.length",
        "Sends a 24-byte HELLO without idle_timeout_ms.";
    HelloCreditBelowPayload = "hello-credit-below-payload", "hello.fields",
        "Announces initial_credit_bytes 1000, below its max_payload.";
    HelloPeerIdReserved = "hello-peer-id-reserved", "hello.fields",
        "Sends peer_id 0xFFFF when it attributes no id.";
    SecondHelloSent = "second-hello-sent", "state.permitted",
        "Sends its HELLO again after the peer's HELLO arrived.";
    PongWrongTimestamp = "pong-wrong-timestamp", "ping.answer",
        "Copies the PING's timestamp plus one into the PONG.";
    PongsReversed = "pongs-reversed", "ping.fifo",
        "Answers the PINGs of one read in reverse order.";
    PingAnsweredNextTurn = "ping-answered-next-turn", "ping.order",
        "Sends a PONG only with the next write, after what that write queued.";
    CreditZeroSent = "credit-zero-sent", "credit.zero",
        "Follows every CREDIT it grants with a CREDIT 0/0.";
    CreditShortPayload = "credit-short-payload", "ctl.malformed",
        "Sends CREDIT payloads of 6 bytes (u16 packets, u32 bytes).";
    CreditOverflowSent = "credit-overflow-sent", "flow.overflow",
        "Grants 0xFFFFFFFF packets in every CREDIT.";
    NeverGrantsCredit = "never-grants-credit", "flow.no-deadlock",
        "Never sends CREDIT.";
    DataBeyondCredit = "data-beyond-credit", "flow.send",
        "Sends DATA the application asks for even without credit left.";
    DataAfterOwnGoaway = "data-after-own-goaway", "close.no-data-after",
        "Sends DATA the application asks for after its own GOAWAY.";
    DataOverPeerMax = "data-over-peer-max", "hdr.length-send",
        "Sends DATA longer than the peer's max_payload.";
    CompressesUnannounced = "compresses-unannounced", "comp.send-negotiated",
        "Compresses with the codec the application prefers even if the peer did not announce it.";
    CorruptCompressor = "corrupt-compressor", "comp.send-format",
        "Cuts the last byte of every compressed payload.";
    CompressesPastCap = "compresses-past-cap", "comp.send-cap",
        "Compresses without checking the peer's decompression cap.";
    CompressesIncompressible = "compresses-incompressible", "comp.threshold",
        "Sends the compressed form even when it is not smaller.";
    DeliveredOffByOne = "delivered-off-by-one", "goaway.delivered",
        "Reports one DATA packet more in its GOAWAY's delivered.";
    GoawayReasonTooLong = "goaway-reason-too-long", "goaway.reason",
        "Sends a GOAWAY reason of 300 bytes.";
    ErrorRouteZero = "error-route-zero", "error.route",
        "Sends ERROR with Destination Node 0 instead of the packet's source.";
    ErrorHeaderRewritten = "error-header-rewritten", "error.route",
        "Embeds the discarded packet's header with its hint bits cleared.";
    ErrorConnectionCode = "error-connection-code", "err.scope",
        "Sends ERROR with the low byte of the code only (a connection-error code).";
    PingAfterErrorGoaway = "ping-after-error-goaway", "close.on-error",
        "Keeps its keepalive running after its GOAWAY with an error code.";
    NoKeepalive = "no-keepalive", "neg.keepalive",
        "Never sends keepalive PINGs.";
    // a proxy's forwarding (§7.3, §7.4): what it hands to the egress connection
    ForwardClearsHints = "forward-clears-hints", "route.forward-unchanged",
        "A proxy re-encodes a forwarded header from its fields and loses the hint bits.";
    ForwardDecompresses = "forward-decompresses", "route.forward-unchanged",
        "A proxy decompresses a forwarded payload and sends it on with Cod 0.";
    ForwardUnstamped = "forward-unstamped", "route.stamp src.stamp",
        "A proxy forwards a client's packets with X = 0, without a Source Node.";
    ForwardStampsOwnId = "forward-stamps-own-id", "src.stamp",
        "A proxy stamps its own node id as the Source Node of what it forwards.";
    ForwardReordered = "forward-reordered", "route.order",
        "A proxy forwards the packets it took in one turn in reverse order.";
    ForwardStampsZero = "forward-stamps-zero", "route.stamp src.stamp",
        "A proxy stamps X = 1 with Source Node 0 for a client instead of the id it attributed.";
    ForwardUncompressedFirst = "forward-uncompressed-first", "route.order",
        "A proxy's fast path forwards uncompressed packets ahead of compressed ones taken before them.";
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mutant {
    type Err = String;

    fn from_str(s: &str) -> Result<Mutant, String> {
        Mutant::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mutant {s:?} (see conformance/mutants/README.md)"))
    }
}

const HOP_BY_HOP: [u8; 5] = [1, 2, 3, 4, 5];

impl Mutant {
    /// Rewrites a complete header (8 or 10 bytes) before validation.
    pub(crate) fn rewrite_header(self, h: &mut [u8]) {
        let kind = h[0] & 0x0F;
        match self {
            Mutant::AcceptsReservedBits => h[1] &= !0x0C,
            Mutant::AcceptsCodec3 if h[1] & 0x30 == 0x30 => h[1] &= !0x30,
            Mutant::IgnoresNeverCompressWithCodec
                if matches!(kind, 0 | 6) && h[1] & 0x40 != 0 && h[1] & 0x30 != 0 =>
            {
                h[1] &= !0x40
            }
            Mutant::AcceptsUnknownKind if kind >= 7 => h[0] &= 0xF0,
            Mutant::ControlRouteIgnored if HOP_BY_HOP.contains(&kind) => h[4..8].fill(0),
            Mutant::AcceptsAnyVersion => h[0] = 0x10 | kind,
            _ => {}
        }
    }

    /// An error reported before the real checks, given a complete header.
    pub(crate) fn precheck(self, h: &[u8], max_payload: u16) -> Option<ErrorCode> {
        match self {
            Mutant::ValidationOrderSwapped if u16::from_be_bytes([h[2], h[3]]) > max_payload => {
                Some(ErrorCode::PAYLOAD_TOO_LARGE)
            }
            Mutant::HintBitsRejected if h[1] & 0x03 != 0 => Some(ErrorCode::RESERVED_BIT),
            _ => None,
        }
    }

    /// The `max_payload` the buggy receiver actually enforces.
    pub(crate) fn effective_max(self, max_payload: u16) -> u16 {
        match self {
            Mutant::LengthLimitOffByOne => max_payload.saturating_add(1),
            _ => max_payload,
        }
    }

    /// Whether the connection operation needs the byte filter for this mutant.
    pub(crate) fn filters_input(self) -> bool {
        matches!(
            self,
            Mutant::AcceptsReservedBits
                | Mutant::AcceptsCodec3
                | Mutant::IgnoresNeverCompressWithCodec
                | Mutant::AcceptsUnknownKind
                | Mutant::ControlRouteIgnored
                | Mutant::AcceptsAnyVersion
                | Mutant::CreditZeroAccepted
                | Mutant::HelloLengthUnchecked
                | Mutant::ReasonUtf8Unchecked
                | Mutant::GoawayReasonUnchecked
                | Mutant::PingTrailingAccepted
                | Mutant::SplitBug
                | Mutant::PrefaceLastByteUnchecked
                | Mutant::HelloAfterEstablishedAccepted
                | Mutant::ForwardsForgedSource
        )
    }
}

/// What the output rewriting of a mutant remembers across the writes of one connection.
#[derive(Debug, Default)]
pub(crate) struct OutputState {
    /// Nothing was written yet.
    started: bool,
    own_hello: Option<Vec<u8>>,
    hello_resent: bool,
    held_pongs: Vec<Vec<u8>>,
    own_role: u8,
    own_id: [u8; 2],
    /// The application closed the connection (GOAWAY NO_ERROR of its own).
    pub app_closed: bool,
    /// The application asked for a PING in the current step.
    pub app_ping: bool,
}

const PING_PACKET: [u8; 24] = [
    0x12, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4D, 0x55, 0, 0, 0, 0, 0, 0, 0, 1,
];

fn set_len(h: &mut [u8], len: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    h[2..4].copy_from_slice(&len.to_be_bytes());
}

impl Mutant {
    /// Rewrites what the endpoint wrote (whole packets, after the preface on the first
    /// write): the sender-side bugs.
    pub(crate) fn rewrite_output(self, raw: &[u8], st: &mut OutputState) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = raw;
        if !st.started && rest.starts_with(&fleetwire::PREFACE) {
            if self != Mutant::NoPreface {
                out.extend_from_slice(&fleetwire::PREFACE);
            }
            if self == Mutant::PingBeforeHello {
                out.extend_from_slice(&PING_PACKET);
            }
            rest = &rest[8..];
        }
        let first_write = !st.started;
        st.started = true;
        if self == Mutant::SecondHelloSent && !first_write && !st.hello_resent {
            if let Some(h) = &st.own_hello {
                out.extend_from_slice(h);
                st.hello_resent = true;
            }
        }
        let mut pongs = Vec::new();
        while rest.len() >= 8 {
            let hl = if rest[1] & 0x80 != 0 { 10 } else { 8 };
            let len = hl + usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            if rest.len() < len || rest.len() < hl {
                break;
            }
            let (mut h, mut p) = (rest[..hl].to_vec(), rest[hl..len].to_vec());
            rest = &rest[len..];
            let kind = h[0] & 0x0F;
            if kind == 1 && st.own_hello.is_none() && p.len() >= 8 {
                st.own_role = p[2];
                st.own_id = [p[4], p[5]];
                let mut whole = h.clone();
                whole.extend_from_slice(&p);
                st.own_hello = Some(whole);
            }
            let mut after: Vec<Vec<u8>> = Vec::new();
            let keep = self.rewrite_packet(kind, &mut h, &mut p, st, &mut after);
            set_len(&mut h, p.len());
            let mut packet = h;
            packet.extend_from_slice(&p);
            if !keep {
                continue;
            }
            if kind == 3
                && matches!(
                    self,
                    Mutant::PongsReversed | Mutant::PingAnsweredNextTurn | Mutant::PongLate
                )
            {
                pongs.push(packet);
            } else {
                out.extend_from_slice(&packet);
            }
            for a in after {
                out.extend_from_slice(&a);
            }
        }
        out.extend_from_slice(rest);
        match self {
            Mutant::PongsReversed => pongs.reverse(),
            Mutant::PingAnsweredNextTurn => {
                let due = std::mem::replace(&mut st.held_pongs, pongs);
                pongs = due;
            }
            _ => {}
        }
        for p in pongs {
            out.extend_from_slice(&p);
        }
        out
    }

    /// One packet's rewriting; `false` drops it; `after` is written right after it.
    fn rewrite_packet(
        self,
        kind: u8,
        h: &mut Vec<u8>,
        p: &mut Vec<u8>,
        st: &OutputState,
        after: &mut Vec<Vec<u8>>,
    ) -> bool {
        let hello = kind == 1 && p.len() >= 28;
        let compressed = kind == 0 && h[1] & 0x30 != 0;
        match self {
            Mutant::SendsVersion2 if kind != 1 => h[0] = 0x20 | kind,
            Mutant::HelloHeaderVersion2 if kind == 1 => h[0] = 0x21,
            Mutant::HelloMaxVersion2 if hello => p[1] = 2,
            Mutant::SendsReservedBits if kind == 0 => h[1] |= 0x04,
            Mutant::SendsHintBits if kind == 0 => h[1] |= 0x01,
            Mutant::HelloFlagsSet if hello => p[3] = 1,
            Mutant::HelloExtensionGarbage if hello => p.extend_from_slice(&[1, 2, 3, 4]),
            Mutant::HelloCodecReservedBits if hello => p[8] |= 0x80,
            Mutant::PongRouted if kind == 3 => h[5] = 1,
            Mutant::CreditWithExtension if kind == 5 => {
                h[1] |= 0x80;
                h.extend_from_slice(&[0, 1]);
            }
            Mutant::GoawayNeverCompressFlag if kind == 4 => h[1] |= 0x40,
            Mutant::CompressedDataMarkedSecret if compressed => h[1] |= 0x40,
            Mutant::ClientAnnouncesNodeId if hello && p[2] == 1 => p[5] = 7,
            Mutant::NodeAnnouncesZeroId if hello && p[2] != 1 => p[4..6].fill(0),
            Mutant::NodeStampsSource if kind == 0 && h[1] & 0x80 == 0 && st.own_role != 3 => {
                h[1] |= 0x80;
                h.extend_from_slice(&st.own_id);
            }
            Mutant::HelloShort if hello => p.truncate(24),
            Mutant::HelloCreditBelowPayload if hello => {
                p[20..24].copy_from_slice(&1000u32.to_be_bytes())
            }
            Mutant::HelloPeerIdReserved if hello && p[6..8] == [0, 0] => p[6..8].fill(0xFF),
            Mutant::PongWrongTimestamp if kind == 3 && p.len() >= 16 => {
                p[15] = p[15].wrapping_add(1)
            }
            Mutant::CreditZeroSent if kind == 5 => {
                after.push(vec![0x15, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            }
            Mutant::CreditShortPayload if kind == 5 && p.len() == 8 => {
                p.drain(..2);
            }
            Mutant::CreditOverflowSent if kind == 5 && p.len() == 8 => p[..4].fill(0xFF),
            Mutant::NeverGrantsCredit if kind == 5 => return false,
            Mutant::CorruptCompressor if compressed && p.len() > 1 => {
                p.pop();
            }
            Mutant::DeliveredOffByOne if kind == 4 && p.len() >= 10 => {
                let d = u64::from_be_bytes(p[2..10].try_into().unwrap_or_default());
                p[2..10].copy_from_slice(&(d + 1).to_be_bytes());
            }
            Mutant::GoawayReasonTooLong if kind == 4 && p.len() >= 10 => {
                p.truncate(10);
                p.extend(std::iter::repeat_n(b'x', 300));
            }
            Mutant::ErrorRouteZero if kind == 6 => h[4..6].fill(0),
            Mutant::ErrorHeaderRewritten if kind == 6 && p.len() >= 4 => p[3] &= !0x03,
            Mutant::ErrorConnectionCode if kind == 6 && !p.is_empty() => p[0] = 0,
            Mutant::PingAfterErrorGoaway if kind == 4 && p.len() >= 2 && p[..2] != [0, 0] => {
                after.push(PING_PACKET.to_vec())
            }
            Mutant::NoKeepalive if kind == 2 && !st.app_ping => return false,
            Mutant::GoawayNotAnswered if kind == 4 && p.len() >= 2 && p[..2] == [0, 0] => {
                return st.app_closed;
            }
            _ => {}
        }
        true
    }
}

/// The forwarding mutants: rewrite the `forward` events a proxy reports in one turn
/// (what it hands to the egress connection). `own_id` is the proxy's node id.
pub(crate) fn rewrite_forwards(mutant: Option<Mutant>, events: &mut [Value], own_id: u16) {
    let Some(m) = mutant else { return };
    let is_forward = |e: &Value| e["event"] == "forward";
    if m == Mutant::ForwardUncompressedFirst {
        let at: Vec<usize> = (0..events.len())
            .filter(|&i| is_forward(&events[i]))
            .collect();
        let mut moved: Vec<Value> = at.iter().map(|&i| events[i].clone()).collect();
        moved.sort_by_key(|e| e["header"]["codec"] != "none");
        for (i, e) in at.into_iter().zip(moved) {
            events[i] = e;
        }
        return;
    }
    if m == Mutant::ForwardReordered {
        let at: Vec<usize> = (0..events.len())
            .filter(|&i| is_forward(&events[i]))
            .collect();
        let moved: Vec<Value> = at.iter().rev().map(|&i| events[i].clone()).collect();
        for (i, e) in at.into_iter().zip(moved) {
            events[i] = e;
        }
        return;
    }
    for e in events.iter_mut().filter(|e| is_forward(e)) {
        let h = &mut e["header"];
        match m {
            Mutant::ForwardClearsHints => h["hints"] = 0.into(),
            Mutant::ForwardUnstamped => {
                h["source"] = Value::Null;
                h["header_len"] = 8.into();
            }
            Mutant::ForwardStampsOwnId => h["source"] = own_id.into(),
            Mutant::ForwardStampsZero => h["source"] = 0.into(),
            Mutant::ForwardDecompresses => decompress_forward(e),
            _ => {}
        }
    }
}

fn decompress_forward(e: &mut Value) {
    let codec = match e["header"]["codec"].as_str() {
        Some("zlib") => fleetwire::Codec::Zlib,
        Some("snappy") => fleetwire::Codec::Snappy,
        _ => return,
    };
    let Some(input) = e["payload"].as_str().and_then(super::forms::unhex) else {
        return;
    };
    let mut out = Vec::new();
    let limits = fleetwire::compress::DecompressLimits::default();
    if fleetwire::compress::Decompressor::new()
        .decompress(codec, &input, &limits, &mut out)
        .is_ok()
    {
        e["header"]["codec"] = "none".into();
        e["header"]["length"] = out.len().into();
        e["payload"] = super::forms::hex(&out).into();
    }
}

/// Post-processing shared by every operation: `wrong-error-code` renames BAD_FLAGS.
pub(crate) fn rewrite_result(mutant: Option<Mutant>, v: &mut Value) {
    if mutant != Some(Mutant::WrongErrorCode) {
        return;
    }
    rename_bad_flags(v);
}

fn rename_bad_flags(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_named = |k: &str, m: &serde_json::Map<String, Value>| {
                m.get(k).and_then(Value::as_str) == Some("BAD_FLAGS")
            };
            if is_named("error", map) || is_named("code_name", map) {
                let name_key = if map.contains_key("error") {
                    "error"
                } else {
                    "code_name"
                };
                map.insert(name_key.into(), "PROTOCOL_ERROR".into());
                map.insert("code".into(), 1.into());
            } else if is_named("code", map) {
                map.insert("code".into(), "PROTOCOL_ERROR".into());
            }
            for (_, child) in map.iter_mut() {
                rename_bad_flags(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rename_bad_flags),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique_and_parse() {
        let mut names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mutant::ALL.len());
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(*m));
        }
    }

    #[test]
    fn wrong_error_code_renames_nested_bad_flags() {
        let mut v = json!({"error": "BAD_FLAGS", "code": 6, "x": [{"code": "BAD_FLAGS"}]});
        rewrite_result(Some(Mutant::WrongErrorCode), &mut v);
        assert_eq!(
            v,
            json!({"error": "PROTOCOL_ERROR", "code": 1, "x": [{"code": "PROTOCOL_ERROR"}]})
        );
    }
}

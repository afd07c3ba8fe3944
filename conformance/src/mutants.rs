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

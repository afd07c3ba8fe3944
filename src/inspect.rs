//! Decoding a captured plaintext stream for people: the engine of `fleetwire inspect`.
//!
//! The input is what flows inside TLS in one direction: optionally the preface (§3),
//! then packets. Each packet becomes one line of text, or one JSON object per line.

use core::fmt::Write as _;

use crate::control::Control;
use crate::error::Error;
use crate::header::{Header, Status};
use crate::packet::{check_preface, PacketRef, PREFACE};

/// How to render the stream.
///
/// ```
/// use fleetwire::inspect::Options;
/// let opts = Options { json: true, ..Options::default() };
/// assert_eq!(opts.max_payload, u16::MAX);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Include the payload in hexadecimal.
    pub hex: bool,
    /// The `max_payload` to validate against (§4.5).
    pub max_payload: u16,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            json: false,
            hex: false,
            max_payload: u16::MAX,
        }
    }
}

/// How the stream ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// Every byte belonged to a complete packet.
    Complete,
    /// The stream stops inside a packet (not an error, §12.2).
    Incomplete {
        /// Offset of the unfinished packet.
        offset: usize,
        /// Bytes still missing.
        needed: usize,
    },
    /// The stream is invalid at `offset`.
    Invalid {
        /// Offset of the packet (or preface) that failed.
        offset: usize,
        /// What failed.
        error: Error,
    },
}

/// Renders `input` and says how it ended. Never panics, whatever the bytes.
///
/// ```
/// use fleetwire::inspect::{inspect, End, Options};
/// let wire = [0x10, 0x00, 0x00, 0x01, 0x00, 0x07, 0x01, 0x00, 0xAA];
/// let (text, end) = inspect(&wire, &Options::default());
/// assert_eq!(end, End::Complete);
/// assert!(text.starts_with("@0 DATA"));
/// ```
pub fn inspect(input: &[u8], opts: &Options) -> (String, End) {
    let mut out = String::new();
    let mut offset = 0;
    if input.first() == Some(&PREFACE[0]) {
        match check_preface(input) {
            Ok(Status::Complete(n)) => {
                line_preface(&mut out, opts);
                offset = n;
            }
            Ok(Status::Incomplete { needed }) => return (out, End::Incomplete { offset, needed }),
            Err(error) => return (out, End::Invalid { offset, error }),
        }
    }
    loop {
        if offset == input.len() {
            return (out, End::Complete);
        }
        match PacketRef::parse(&input[offset..], opts.max_payload) {
            Ok(Status::Complete((pkt, rest))) => {
                line_packet(&mut out, offset, &pkt, opts);
                offset = input.len() - rest.len();
            }
            Ok(Status::Incomplete { needed }) => return (out, End::Incomplete { offset, needed }),
            Err(error) => return (out, End::Invalid { offset, error }),
        }
    }
}

fn line_preface(out: &mut String, opts: &Options) {
    if opts.json {
        out.push_str("{\"offset\":0,\"kind\":\"PREFACE\",\"length\":8}\n");
    } else {
        out.push_str("@0 PREFACE\n");
    }
}

fn line_packet(out: &mut String, offset: usize, pkt: &PacketRef<'_>, opts: &Options) {
    let h = &pkt.header;
    let control = h
        .kind
        .is_control()
        .then(|| Control::parse(h.kind, pkt.payload));
    if opts.json {
        json_packet(out, offset, h, control.as_ref(), pkt.payload, opts.hex);
    } else {
        text_packet(out, offset, h, control.as_ref(), pkt.payload, opts.hex);
    }
}

fn text_packet(
    out: &mut String,
    offset: usize,
    h: &Header,
    control: Option<&Result<Control<'_>, Error>>,
    payload: &[u8],
    hex: bool,
) {
    let _ = write!(
        out,
        "@{offset} {} len={} route={}.{}.{}",
        h.kind.name(),
        h.length,
        h.route.node,
        h.route.service,
        h.route.channel
    );
    if let Some(src) = h.source {
        let _ = write!(out, " src={src}");
    }
    if h.codec != crate::Codec::None {
        let _ = write!(out, " codec={}", h.codec.name());
    }
    if h.never_compress {
        out.push_str(" never-compress");
    }
    if h.hints != 0 {
        let _ = write!(out, " hints={}", h.hints);
    }
    match control {
        Some(Ok(c)) => {
            out.push_str(" |");
            for (k, v) in control_fields(c) {
                let _ = write!(out, " {k}={}", v.text());
            }
        }
        Some(Err(e)) => {
            let _ = write!(out, " | invalid: {e}");
        }
        None => {}
    }
    if hex {
        let _ = write!(out, " payload={}", to_hex(payload));
    }
    out.push('\n');
}

fn json_packet(
    out: &mut String,
    offset: usize,
    h: &Header,
    control: Option<&Result<Control<'_>, Error>>,
    payload: &[u8],
    hex: bool,
) {
    let source = h.source.map_or("null".to_string(), |s| s.to_string());
    let _ = write!(
        out,
        "{{\"offset\":{offset},\"kind\":\"{}\",\"version\":1,\"length\":{},\
         \"route\":{{\"node\":{},\"service\":{},\"channel\":{}}},\"source\":{source},\
         \"codec\":\"{}\",\"never_compress\":{},\"hints\":{}",
        h.kind.name(),
        h.length,
        h.route.node,
        h.route.service,
        h.route.channel,
        h.codec.name(),
        h.never_compress,
        h.hints
    );
    match control {
        Some(Ok(c)) => {
            out.push_str(",\"control\":{");
            for (i, (k, v)) in control_fields(c).iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep}\"{k}\":{}", v.json());
            }
            out.push('}');
        }
        Some(Err(e)) => {
            let _ = write!(
                out,
                ",\"control_error\":{{\"code\":{},\"name\":\"{}\"}}",
                e.code().0,
                e.code().name().unwrap_or("")
            );
        }
        None => {}
    }
    if hex {
        let _ = write!(out, ",\"payload\":\"{}\"", to_hex(payload));
    }
    out.push_str("}\n");
}

/// A control field's value: numbers stay numbers in JSON.
enum Val {
    Num(u64),
    Str(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Num(n) => n.to_string(),
            Val::Str(s) => s.escape_debug().to_string(),
        }
    }

    fn json(&self) -> String {
        match self {
            Val::Num(n) => n.to_string(),
            Val::Str(s) => json_string(s),
        }
    }
}

fn json_string(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn control_fields(c: &Control<'_>) -> Vec<(&'static str, Val)> {
    use Val::{Num, Str};
    match c {
        Control::Hello(h) => vec![
            ("min_version", Num(u64::from(h.min_version))),
            ("max_version", Num(u64::from(h.max_version))),
            ("role", Str(h.role.name().to_string())),
            ("node_id", Num(u64::from(h.node_id))),
            ("peer_id", Num(u64::from(h.peer_id))),
            ("codecs", Num(u64::from(h.codecs))),
            ("max_ratio", Num(u64::from(h.max_ratio))),
            ("max_payload", Num(u64::from(h.max_payload))),
            ("max_decompressed", Num(u64::from(h.max_decompressed))),
            (
                "initial_credit_packets",
                Num(u64::from(h.initial_credit_packets)),
            ),
            (
                "initial_credit_bytes",
                Num(u64::from(h.initial_credit_bytes)),
            ),
            ("idle_timeout_ms", Num(u64::from(h.idle_timeout_ms))),
        ],
        Control::Ping(p) => vec![("id", Num(p.id)), ("timestamp", Num(p.timestamp))],
        Control::Pong(p) => vec![
            ("id", Num(p.id)),
            ("timestamp", Num(p.timestamp)),
            ("hold_us", Num(u64::from(p.hold_us))),
        ],
        Control::Goaway(g) => vec![
            ("code", Str(code_name(g.code))),
            ("delivered", Num(g.delivered)),
            ("reason", Str(g.reason.to_string())),
        ],
        Control::Credit(c) => vec![
            ("packets", Num(u64::from(c.packets))),
            ("bytes", Num(u64::from(c.bytes))),
        ],
        Control::Error(e) => vec![
            ("code", Str(code_name(e.code))),
            ("header", Str(to_hex(e.header))),
            ("reason", Str(e.reason.to_string())),
        ],
    }
}

fn code_name(code: crate::ErrorCode) -> String {
    match code.name() {
        Some(n) => n.to_string(),
        None => format!("0x{:04X}", code.0),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn reports_error_offset_of_failing_packet() {
        let mut wire = vec![0x10, 0, 0, 0, 0, 0, 0, 0];
        wire.extend_from_slice(&[0x1F, 0, 0, 0, 0, 0, 0, 0]);
        let (text, end) = inspect(&wire, &Options::default());
        assert_eq!(text.lines().count(), 1);
        let End::Invalid { offset, error } = end else {
            panic!("{end:?}")
        };
        assert_eq!((offset, error.code()), (8, ErrorCode::UNKNOWN_KIND));
    }

    #[test]
    fn truncated_stream_is_incomplete_not_invalid() {
        let wire = [0x10, 0, 0, 5, 0, 0, 0, 0, 1];
        let (_, end) = inspect(&wire, &Options::default());
        assert_eq!(
            end,
            End::Incomplete {
                offset: 0,
                needed: 4
            }
        );
    }

    #[test]
    fn bad_preface_is_invalid_at_zero() {
        let wire = [0x89, 0, 0, 0, 0, 0, 0, 0];
        let (_, end) = inspect(&wire, &Options::default());
        assert!(matches!(end, End::Invalid { offset: 0, .. }));
    }

    #[test]
    fn json_escapes_reason() {
        let mut wire = Vec::new();
        crate::control::Control::Goaway(crate::control::Goaway {
            code: ErrorCode::NO_ERROR,
            delivered: 1,
            reason: "a\"b\n",
        })
        .encode_packet(&mut wire);
        let opts = Options {
            json: true,
            ..Options::default()
        };
        let (text, _) = inspect(&wire, &opts);
        assert!(text.contains(r#""reason":"a\"b\u000a""#), "{text}");
    }
}

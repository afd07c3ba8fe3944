//! The reference testee: every operation of `conformance/PROTOCOL.md` implemented with
//! this crate, optionally with one [`Mutant`] bug injected.

use std::io::Read;

use serde_json::{json, Value};

use super::filter::Filter;
use super::forms::{
    bool_field, codec_by_name, control_json, encode_control, error_json, field, goaway_json,
    header_from_json, header_json, hex, hex_field, kind_by_name, max_payload, num, str_field,
    unhex,
};
use super::mutants::{rewrite_result, Mutant};
use super::protocol::{Reply, PROTOCOL_VERSION};
use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::Control;
use fleetwire::{check_preface, Codec, Deframer, ErrorCode, Header, Kind, PacketRef, Status};

/// Every operation the reference implements, as announced in its hello.
pub const OPERATIONS: &[&str] = &[
    "decode_header",
    "decode_packet",
    "decode_control",
    "encode_header",
    "encode_packet",
    "encode_control",
    "decode_stream",
    "decompress",
    "connection",
];

/// The reference implementation behind the testee protocol.
///
/// ```
/// use fleetwire_conformance::{Reference, Reply};
/// use serde_json::json;
///
/// let mut r = Reference::new(None);
/// let reply = r.call("decode_header", &json!({"input": "1000000100000000"}));
/// let Reply::Result(v) = reply else { panic!() };
/// assert_eq!(v["kind"], "DATA");
/// ```
#[derive(Debug, Default)]
pub struct Reference {
    mutant: Option<Mutant>,
    decompressor: Decompressor,
}

impl Reference {
    /// The reference, or with `mutant` one of its deliberately faulty variants.
    ///
    /// ```
    /// use fleetwire_conformance::{Mutant, Reference};
    /// let buggy = Reference::new(Some(Mutant::AcceptsReservedBits));
    /// assert_eq!(buggy.mutant(), Some(Mutant::AcceptsReservedBits));
    /// ```
    pub fn new(mutant: Option<Mutant>) -> Reference {
        Reference {
            mutant,
            decompressor: Decompressor::new(),
        }
    }

    /// The injected bug, if any.
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::Reference::new(None).mutant(), None);
    /// ```
    pub fn mutant(&self) -> Option<Mutant> {
        self.mutant
    }

    /// The testee's answer to the runner's hello (`PROTOCOL.md` §3).
    ///
    /// ```
    /// let hello = fleetwire_conformance::Reference::new(None).hello();
    /// assert_eq!(hello["protocol"], 1);
    /// assert_eq!(hello["name"], "fleetwire-reference");
    /// ```
    pub fn hello(&self) -> Value {
        let name = match self.mutant {
            Some(m) => format!("fleetwire-mutant-{m}"),
            None => "fleetwire-reference".to_owned(),
        };
        json!({
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "name": name,
            "version": env!("CARGO_PKG_VERSION"),
            "levels": ["codec", "endpoint", "proxy"],
            "operations": OPERATIONS,
        })
    }

    /// Runs one operation on its request fields.
    ///
    /// ```
    /// use fleetwire_conformance::{Reference, Reply};
    /// let mut r = Reference::new(None);
    /// assert_eq!(r.call("teleport", &serde_json::json!({})), Reply::Unsupported);
    /// ```
    pub fn call(&mut self, op: &str, req: &Value) -> Reply {
        let result = match op {
            "decode_header" => self.decode_header(req),
            "decode_packet" => self.decode_packet(req),
            "decode_control" => self.decode_control(req),
            "encode_header" => self.encode_header(req),
            "encode_packet" => self.encode_packet(req),
            "encode_control" => encode_control_op(req),
            "decode_stream" => self.decode_stream(req),
            "decompress" => self.decompress(req),
            "connection" => super::transcript::connection(req, self.mutant),
            _ => return Reply::Unsupported,
        };
        match result {
            Ok(mut v) => {
                rewrite_result(self.mutant, &mut v);
                Reply::Result(v)
            }
            Err(message) => Reply::Error(message),
        }
    }

    fn header_bytes(&self, input: &[u8], max: u16) -> Result<Vec<u8>, ErrorCode> {
        let mut buf = input.to_vec();
        let Some(m) = self.mutant else {
            return Ok(buf);
        };
        let hl = match buf.get(1) {
            Some(f) if f & 0x80 != 0 => 10,
            Some(_) => 8,
            None => return Ok(buf),
        };
        if buf.len() >= hl {
            if let Some(code) = m.precheck(&buf[..hl], max) {
                return Err(code);
            }
            m.rewrite_header(&mut buf[..hl]);
        }
        Ok(buf)
    }

    fn incomplete(&self, needed: usize) -> Value {
        let off = usize::from(self.mutant == Some(Mutant::IncompleteCountOff));
        json!({ "incomplete": needed + off })
    }

    fn max(&self, req: &Value) -> Result<u16, String> {
        let max = max_payload(req)?;
        Ok(self.mutant.map_or(max, |m| m.effective_max(max)))
    }

    fn decode_header(&mut self, req: &Value) -> Result<Value, String> {
        let max = self.max(req)?;
        let buf = match self.header_bytes(&hex_field(req, "input")?, max) {
            Ok(b) => b,
            Err(code) => return Ok(error_json(code)),
        };
        Ok(match Header::parse(&buf, max) {
            Ok(Status::Complete(h)) => header_json(&h),
            Ok(Status::Incomplete { needed }) => self.incomplete(needed),
            Err(e) => error_json(e.code()),
        })
    }

    fn decode_packet(&mut self, req: &Value) -> Result<Value, String> {
        let max = self.max(req)?;
        let buf = match self.header_bytes(&hex_field(req, "input")?, max) {
            Ok(b) => b,
            Err(code) => return Ok(error_json(code)),
        };
        Ok(match PacketRef::parse(&buf, max) {
            Ok(Status::Complete((p, rest))) => json!({
                "header": header_json(&p.header), "payload": hex(p.payload), "rest": hex(rest),
            }),
            Ok(Status::Incomplete { needed }) => self.incomplete(needed),
            Err(e) => error_json(e.code()),
        })
    }

    fn decode_control(&mut self, req: &Value) -> Result<Value, String> {
        let kind = kind_by_name(str_field(req, "kind")?)?;
        if kind == Kind::Data {
            return Err("DATA has no control payload".into());
        }
        Ok(control_value(self.mutant, kind, &hex_field(req, "input")?))
    }

    fn header_from(&self, req: &Value) -> Result<Header, String> {
        let mut h = header_from_json(field(req, "header")?)?;
        if self.mutant == Some(Mutant::EncodeDropsHints) {
            h.hints = 0;
        }
        Ok(h)
    }

    fn encode_header(&mut self, req: &Value) -> Result<Value, String> {
        let mut out = Vec::new();
        self.header_from(req)?.encode_to_vec(&mut out);
        Ok(json!({ "output": hex(&out) }))
    }

    fn encode_packet(&mut self, req: &Value) -> Result<Value, String> {
        let mut out = Vec::new();
        self.header_from(req)?.encode_to_vec(&mut out);
        out.extend(hex_field(req, "payload")?);
        Ok(json!({ "output": hex(&out) }))
    }

    fn decode_stream(&mut self, req: &Value) -> Result<Value, String> {
        let preface = bool_field(req, "preface")?;
        let max = self.max(req)?;
        let chunks = field(req, "chunks")?
            .as_array()
            .ok_or("chunks is not an array")?
            .iter()
            .map(|c| c.as_str().and_then(unhex).ok_or("a chunk is not hex"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(run_stream(self.mutant, &chunks, preface, max))
    }

    fn decompress(&mut self, req: &Value) -> Result<Value, String> {
        let codec = codec_by_name(str_field(req, "codec")?)?;
        let input = hex_field(req, "input")?;
        let l = field(req, "limits")?;
        let limits = DecompressLimits {
            max_decompressed: num(l, "max_decompressed")?,
            max_ratio: num(l, "max_ratio")?,
            codecs: num(l, "codecs")?,
        };
        let real = decompress_json(&mut self.decompressor, codec, &input, &limits);
        let Some(m) = self.mutant else {
            return Ok(real);
        };
        Ok(mutant_decompress(
            m,
            &mut self.decompressor,
            codec,
            &input,
            limits,
            real,
        ))
    }
}

fn encode_control_op(req: &Value) -> Result<Value, String> {
    let kind = kind_by_name(str_field(req, "kind")?)?;
    let out = encode_control(kind, field(req, "fields")?)?;
    Ok(json!({ "output": hex(&out) }))
}

fn decompress_json(
    d: &mut Decompressor,
    codec: Codec,
    input: &[u8],
    l: &DecompressLimits,
) -> Value {
    let mut out = Vec::new();
    match d.decompress(codec, input, l, &mut out) {
        Ok(()) => json!({ "output": hex(&out) }),
        Err(e) => error_json(e.code()),
    }
}

fn is_code(v: &Value, code: ErrorCode) -> bool {
    v.get("code").and_then(Value::as_u64) == Some(u64::from(code.0))
}

fn mutant_decompress(
    m: Mutant,
    d: &mut Decompressor,
    codec: Codec,
    input: &[u8],
    limits: DecompressLimits,
    real: Value,
) -> Value {
    let huge = DecompressLimits {
        max_decompressed: fleetwire::limits::bounds::MAX_MAX_DECOMPRESSED,
        ..limits
    };
    match m {
        Mutant::SkipRatioCap => decompress_json(
            d,
            codec,
            input,
            &DecompressLimits {
                max_ratio: 255,
                ..limits
            },
        ),
        Mutant::SkipDecompressedCap => decompress_json(d, codec, input, &huge),
        Mutant::AcceptsCodecNotNegotiated => decompress_json(
            d,
            codec,
            input,
            &DecompressLimits {
                codecs: 3,
                ..limits
            },
        ),
        Mutant::SnappyDeclaredLengthUnchecked if codec == Codec::Snappy => {
            let unbounded = DecompressLimits {
                max_ratio: 255,
                ..huge
            };
            let loose = decompress_json(d, codec, input, &unbounded);
            if is_code(&loose, ErrorCode::DECOMPRESSION_FAILED) {
                loose
            } else {
                real
            }
        }
        Mutant::CapTieWrongCode
            if is_code(&real, ErrorCode::DECOMPRESSED_TOO_LARGE)
                && u64::from(limits.max_decompressed)
                    == u64::from(limits.max_ratio) * input.len() as u64 =>
        {
            error_json(ErrorCode::RATIO_EXCEEDED)
        }
        Mutant::ZlibTrailingAccepted
            if codec == Codec::Zlib && is_code(&real, ErrorCode::DECOMPRESSION_FAILED) =>
        {
            let mut out = Vec::new();
            let mut z = flate2::bufread::ZlibDecoder::new(input);
            match z.read_to_end(&mut out) {
                Ok(_) if out.len() as u64 <= limits.cap(input.len()) => {
                    json!({ "output": hex(&out) })
                }
                _ => real,
            }
        }
        _ => real,
    }
}

/// The decoded form (or error) of a control payload, as the (buggy) receiver sees it.
pub(crate) fn control_value(mutant: Option<Mutant>, kind: Kind, payload: &[u8]) -> Value {
    match Control::parse(kind, payload) {
        Ok(c) => control_json(&c),
        Err(e) => mutant
            .and_then(|m| lenient_control_json(m, kind, payload))
            .unwrap_or_else(|| error_json(e.code())),
    }
}

/// The payload a lenient (buggy) receiver would make of an invalid control payload:
/// `None` when the mutant does not apply, else the decoded form it reports.
fn lenient_control_json(m: Mutant, kind: Kind, payload: &[u8]) -> Option<Value> {
    if m == Mutant::CreditZeroAccepted && kind == Kind::Credit && payload == [0u8; 8] {
        return Some(json!({ "packets": 0, "bytes": 0 }));
    }
    let fixed = lenient_control_payload(m, kind as u8, payload)?;
    if fixed == payload {
        return None;
    }
    match (m, kind) {
        (Mutant::HelloLengthUnchecked, Kind::Hello) => {
            let mut v = control_json(&Control::parse(kind, &fixed).ok()?);
            v["extensions"] = json!(hex(&payload[28..]));
            Some(v)
        }
        (Mutant::ReasonUtf8Unchecked | Mutant::GoawayReasonUnchecked, Kind::Goaway) => {
            let code = ErrorCode(u16::from_be_bytes([payload[0], payload[1]]));
            let delivered = u64::from_be_bytes(payload[2..10].try_into().ok()?);
            Some(goaway_json(
                code,
                delivered,
                &String::from_utf8_lossy(&payload[10..]),
            ))
        }
        (Mutant::ReasonUtf8Unchecked, Kind::Error) => {
            let mut v = control_json(&Control::parse(kind, &fixed).ok()?);
            let hl = if payload[2] & 0x80 != 0 { 10 } else { 8 };
            v["reason"] = json!(String::from_utf8_lossy(&payload[2 + hl..]));
            Some(v)
        }
        (Mutant::PingTrailingAccepted, Kind::Ping) => {
            Some(control_json(&Control::parse(kind, &fixed).ok()?))
        }
        _ => None,
    }
}

/// For the connection filter: `None` to drop the packet, else a payload the real parser
/// accepts in place of `payload` (unchanged when the mutant's leniency does not apply).
pub(crate) fn lenient_control_payload(m: Mutant, kind: u8, payload: &[u8]) -> Option<Vec<u8>> {
    let keep = Some(payload.to_vec());
    match (m, kind) {
        (Mutant::CreditZeroAccepted, 5) if payload == [0u8; 8] => None,
        (Mutant::HelloLengthUnchecked, 1) if payload.len() > 1024 => Some(payload[..1024].to_vec()),
        (Mutant::ReasonUtf8Unchecked, 4) if payload.len() >= 10 => {
            reason_fixed(payload, 10, |r| std::str::from_utf8(r).is_err())
        }
        (Mutant::ReasonUtf8Unchecked, 6) if payload.len() >= 10 => {
            let hl = if payload[2] & 0x80 != 0 { 12 } else { 10 };
            reason_fixed(payload, hl.min(payload.len()), |r| {
                std::str::from_utf8(r).is_err()
            })
        }
        (Mutant::GoawayReasonUnchecked, 4) if payload.len() > 10 + 256 => {
            reason_fixed(payload, 10, |r| std::str::from_utf8(r).is_ok())
        }
        (Mutant::PingTrailingAccepted, 2) if payload.len() > 16 => Some(payload[..16].to_vec()),
        _ => keep,
    }
}

/// Cuts the reason (from `at`) when `broken` says the mutant ignores its defect.
fn reason_fixed(payload: &[u8], at: usize, broken: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    if broken(&payload[at..]) {
        Some(payload[..at].to_vec())
    } else {
        Some(payload.to_vec())
    }
}

/// Feeds `chunks` through the (mutant's) filter, a preface check and the deframer, and
/// decodes control payloads: the stream layer's decoded form.
pub(crate) fn run_stream(
    mutant: Option<Mutant>,
    chunks: &[Vec<u8>],
    preface: bool,
    max_payload: u16,
) -> Value {
    let mut filter = mutant.map(|m| Filter::new(m, preface, max_payload, false));
    let mut pre = Vec::new();
    let pre_len = if preface { 8u64 } else { 0 };
    let mut deframer = Deframer::new(max_payload);
    let mut packets = Vec::new();
    let fail = |code: ErrorCode, offset: u64, packets: &mut Vec<Value>| {
        let mut e = error_json(code);
        e["offset"] = json!(offset);
        e["packets"] = json!(std::mem::take(packets));
        e["status"] = json!("error");
        e
    };
    for chunk in chunks {
        if chunk.is_empty() && mutant == Some(Mutant::EmptyReadIsEof) {
            break;
        }
        let mut filtered = Vec::new();
        let mut data: &[u8] = match &mut filter {
            Some(f) => {
                f.push(chunk, &mut filtered);
                &filtered
            }
            None => chunk,
        };
        if preface && pre.len() < 8 {
            let take = data.len().min(8 - pre.len());
            pre.extend_from_slice(&data[..take]);
            data = &data[take..];
            match check_preface(&pre) {
                Ok(Status::Complete(_)) => {}
                Ok(Status::Incomplete { .. }) => continue,
                Err(e) => return fail(e.code(), 0, &mut packets),
            }
        }
        deframer.extend(data);
        loop {
            match deframer.next_packet() {
                Ok(Some(p)) => {
                    if p.header.kind.is_control() {
                        let v = control_value(mutant, p.header.kind, &p.payload);
                        if let Some(code) =
                            v.get("error").and(v.get("code")).and_then(Value::as_u64)
                        {
                            let at = pre_len + deframer.offset() - p.header.packet_len() as u64;
                            return fail(ErrorCode(code as u16), at, &mut packets);
                        }
                    }
                    packets.push(
                        json!({ "header": header_json(&p.header), "payload": hex(&p.payload) }),
                    );
                }
                Ok(None) => break,
                Err(e) => return fail(e.code(), pre_len + deframer.offset(), &mut packets),
            }
        }
        if let Some((code, offset)) = filter.as_ref().and_then(Filter::failed) {
            return fail(code, offset, &mut packets);
        }
    }
    let held = filter.as_ref().is_some_and(Filter::holding);
    let incomplete = (preface && pre.len() < 8) || deframer.buffered() > 0 || held;
    json!({ "packets": packets, "status": if incomplete { "incomplete" } else { "complete" } })
}

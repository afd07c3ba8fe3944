//! The generator's own byte builders, written from the spec's layouts (§4.1, §5) and
//! deliberately independent of the crate's encoders, so that a vector is never the
//! crate's output checked against itself.

use serde_json::{json, Value};

use super::json::hex;

/// The error registry of spec §12.4, copied here so that the generator does not take
/// codes from the crate it checks; the verifier compares this table with `ErrorCode`.
pub(crate) const REGISTRY: &[(&str, u16)] = &[
    ("NO_ERROR", 0x0000),
    ("PROTOCOL_ERROR", 0x0001),
    ("BAD_PREFACE", 0x0002),
    ("UNSUPPORTED_VERSION", 0x0003),
    ("RESERVED_BIT", 0x0004),
    ("UNKNOWN_KIND", 0x0005),
    ("BAD_FLAGS", 0x0006),
    ("PAYLOAD_TOO_LARGE", 0x0007),
    ("BAD_CONTROL", 0x0008),
    ("BAD_HELLO", 0x0009),
    ("UNEXPECTED_PACKET", 0x000A),
    ("FLOW_CONTROL", 0x000B),
    ("SOURCE_FORGED", 0x000C),
    ("TIMEOUT", 0x000D),
    ("FLOOD", 0x000E),
    ("TOO_MANY_ERRORS", 0x000F),
    ("INTERNAL_ERROR", 0x0010),
    ("CONNECTION_LOST", 0x0011),
    ("NO_ROUTE", 0x0100),
    ("NO_SERVICE", 0x0101),
    ("CODEC_NOT_NEGOTIATED", 0x0102),
    ("DECOMPRESSION_FAILED", 0x0103),
    ("DECOMPRESSED_TOO_LARGE", 0x0104),
    ("RATIO_EXCEEDED", 0x0105),
    ("UNREACHABLE", 0x0106),
];

/// The registry code of `name`.
///
/// # Panics
///
/// On a name missing from the registry: a bug in the generator.
pub(crate) fn code_of(name: &str) -> u16 {
    REGISTRY
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("unknown error name {name}"))
}

/// `{"error": NAME, "code": N}`.
pub(crate) fn err(name: &str) -> Value {
    json!({ "error": name, "code": code_of(name) })
}

/// Kind names by value (spec §4.3).
pub(crate) const KIND_NAMES: [&str; 7] =
    ["DATA", "HELLO", "PING", "PONG", "GOAWAY", "CREDIT", "ERROR"];
/// Codec names by Cod value (spec §4.4; 3 is reserved).
const CODEC_NAMES: [&str; 4] = ["none", "snappy", "zlib", "reserved"];
/// HELLO role names by value (spec §5.2; 0 is invalid).
const ROLE_NAMES: [&str; 4] = ["invalid", "client", "node", "proxy"];
/// Kind values.
pub(crate) const DATA: u8 = 0;
pub(crate) const HELLO: u8 = 1;
pub(crate) const PING: u8 = 2;
pub(crate) const PONG: u8 = 3;
pub(crate) const GOAWAY: u8 = 4;
pub(crate) const CREDIT: u8 = 5;
pub(crate) const ERROR: u8 = 6;

/// The connection preface (spec §3).
pub(crate) const PREFACE: [u8; 8] = [0x89, 0x46, 0x57, 0x49, 0x52, 0x45, 0x0D, 0x0A];

/// A big-endian byte writer.
#[derive(Default, Clone)]
pub(crate) struct W(pub(crate) Vec<u8>);

impl W {
    pub(crate) fn new() -> W {
        W(Vec::new())
    }
    pub(crate) fn u8(mut self, v: u8) -> W {
        self.0.push(v);
        self
    }
    pub(crate) fn u16(mut self, v: u16) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(mut self, v: &[u8]) -> W {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}

/// A routing header described field by field (spec §4.1), including values a conforming
/// sender never writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw {
    pub(crate) version: u8,
    pub(crate) kind: u8,
    pub(crate) x: bool,
    pub(crate) n: bool,
    pub(crate) cod: u8,
    pub(crate) r: u8,
    pub(crate) hints: u8,
    pub(crate) length: u16,
    pub(crate) node: u16,
    pub(crate) service: u8,
    pub(crate) channel: u8,
    pub(crate) source: u16,
}

impl Raw {
    /// A DATA header with a zero route.
    pub(crate) fn data(length: u16) -> Raw {
        Raw {
            version: 1,
            kind: DATA,
            x: false,
            n: false,
            cod: 0,
            r: 0,
            hints: 0,
            length,
            node: 0,
            service: 0,
            channel: 0,
            source: 0,
        }
    }

    /// A header of `kind` with a zero route.
    pub(crate) fn ctl(kind: u8, length: u16) -> Raw {
        Raw {
            kind,
            ..Raw::data(length)
        }
    }

    pub(crate) fn route(self, node: u16, service: u8, channel: u8) -> Raw {
        Raw {
            node,
            service,
            channel,
            ..self
        }
    }

    pub(crate) fn src(self, source: u16) -> Raw {
        Raw {
            x: true,
            source,
            ..self
        }
    }

    /// The wire bytes: 8, or 10 when X is set.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let flags = (u8::from(self.x) << 7)
            | (u8::from(self.n) << 6)
            | ((self.cod & 3) << 4)
            | ((self.r & 3) << 2)
            | (self.hints & 3);
        let w = W::new()
            .u8((self.version << 4) | (self.kind & 0x0F))
            .u8(flags)
            .u16(self.length)
            .u16(self.node)
            .u8(self.service)
            .u8(self.channel);
        if self.x {
            w.u16(self.source).done()
        } else {
            w.done()
        }
    }

    /// The header followed by `payload`; `length` is taken from the payload.
    pub(crate) fn packet(self, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len()).expect("payload fits in u16");
        let mut v = Raw { length, ..self }.bytes();
        v.extend_from_slice(payload);
        v
    }

    /// The decoded form of a valid header (schema: `header` in vectors/schema.json).
    pub(crate) fn expected(&self) -> Value {
        json!({
            "header_len": if self.x { 10 } else { 8 },
            "version": self.version,
            "kind": KIND_NAMES[usize::from(self.kind)],
            "never_compress": self.n,
            "codec": CODEC_NAMES[usize::from(self.cod)],
            "hints": self.hints,
            "length": self.length,
            "node": self.node,
            "service": self.service,
            "channel": self.channel,
            "source": if self.x { json!(self.source) } else { Value::Null },
        })
    }
}

/// HELLO fields (spec §5.2), defaulting to a node announcing the default limits of §11.
#[derive(Clone, Debug)]
pub(crate) struct HelloFields {
    pub(crate) min_version: u8,
    pub(crate) max_version: u8,
    pub(crate) role: u8,
    pub(crate) hello_flags: u8,
    pub(crate) node_id: u16,
    pub(crate) peer_id: u16,
    pub(crate) codecs: u8,
    pub(crate) max_ratio: u8,
    pub(crate) max_payload: u16,
    pub(crate) max_decompressed: u32,
    pub(crate) credit_packets: u32,
    pub(crate) credit_bytes: u32,
    pub(crate) idle_timeout_ms: u32,
    pub(crate) extensions: Vec<u8>,
}

impl Default for HelloFields {
    fn default() -> HelloFields {
        HelloFields {
            min_version: 1,
            max_version: 1,
            role: 2,
            hello_flags: 0,
            node_id: 2,
            peer_id: 0,
            codecs: 3,
            max_ratio: 100,
            max_payload: 65_535,
            max_decompressed: 262_144,
            credit_packets: 1024,
            credit_bytes: 4_194_304,
            idle_timeout_ms: 60_000,
            extensions: Vec::new(),
        }
    }
}

impl HelloFields {
    /// The HELLO payload.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        W::new()
            .u8(self.min_version)
            .u8(self.max_version)
            .u8(self.role)
            .u8(self.hello_flags)
            .u16(self.node_id)
            .u16(self.peer_id)
            .u8(self.codecs)
            .u8(self.max_ratio)
            .u16(self.max_payload)
            .u32(self.max_decompressed)
            .u32(self.credit_packets)
            .u32(self.credit_bytes)
            .u32(self.idle_timeout_ms)
            .raw(&self.extensions)
            .done()
    }

    /// The decoded form (schema: `hello`).
    pub(crate) fn expected(&self) -> Value {
        json!({
            "min_version": self.min_version,
            "max_version": self.max_version,
            "role": ROLE_NAMES[usize::from(self.role)],
            "hello_flags": self.hello_flags,
            "node_id": self.node_id,
            "peer_id": self.peer_id,
            "codecs": self.codecs,
            "max_ratio": self.max_ratio,
            "max_payload": self.max_payload,
            "max_decompressed": self.max_decompressed,
            "initial_credit_packets": self.credit_packets,
            "initial_credit_bytes": self.credit_bytes,
            "idle_timeout_ms": self.idle_timeout_ms,
            "extensions": hex(&self.extensions),
        })
    }

    /// The whole HELLO packet.
    pub(crate) fn packet(&self) -> Vec<u8> {
        Raw::ctl(HELLO, 0).packet(&self.bytes())
    }
}

pub(crate) fn ping_payload(id: u64, timestamp: u64) -> Vec<u8> {
    W::new().u64(id).u64(timestamp).done()
}

pub(crate) fn pong_payload(id: u64, timestamp: u64, hold_us: u32) -> Vec<u8> {
    W::new().u64(id).u64(timestamp).u32(hold_us).done()
}

pub(crate) fn goaway_payload(code: u16, delivered: u64, reason: &[u8]) -> Vec<u8> {
    W::new().u16(code).u64(delivered).raw(reason).done()
}

pub(crate) fn credit_payload(packets: u32, bytes: u32) -> Vec<u8> {
    W::new().u32(packets).u32(bytes).done()
}

pub(crate) fn error_payload(code: u16, header: &[u8], reason: &[u8]) -> Vec<u8> {
    W::new().u16(code).raw(header).raw(reason).done()
}

/// The registry name of `code`, or JSON null.
pub(crate) fn code_name(code: u16) -> Value {
    REGISTRY
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(Value::Null, |(n, _)| json!(n))
}

/// How a vector must be treated (README: "Results").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Valid,
    Invalid,
    Acceptable,
}

/// One vector under construction.
#[derive(Clone, Debug)]
pub(crate) struct Vector {
    pub(crate) id: String,
    pub(crate) section: &'static str,
    pub(crate) requirements: Vec<&'static str>,
    pub(crate) description: String,
    pub(crate) result: Outcome,
    pub(crate) flags: Vec<&'static str>,
    pub(crate) fields: Vec<(&'static str, Value)>,
    pub(crate) expected: Value,
    pub(crate) alternative: Option<Value>,
    pub(crate) encode: bool,
}

/// Starts a vector; set its outcome with [`Vector::ok`], [`Vector::fails`] or
/// [`Vector::either`].
pub(crate) fn vector(
    id: impl Into<String>,
    section: &'static str,
    requirements: &[&'static str],
    description: impl Into<String>,
) -> Vector {
    Vector {
        id: id.into(),
        section,
        requirements: requirements.to_vec(),
        description: description.into(),
        result: Outcome::Valid,
        flags: Vec::new(),
        fields: Vec::new(),
        expected: Value::Null,
        alternative: None,
        encode: false,
    }
}

impl Vector {
    /// Sets a top-level field (input, chunks, kind, limits, ...).
    pub(crate) fn with(mut self, key: &'static str, value: Value) -> Vector {
        self.fields.push((key, value));
        self
    }

    /// Sets `input` to the hex of `bytes`.
    pub(crate) fn input(self, bytes: &[u8]) -> Vector {
        self.with("input", json!(hex(bytes)))
    }

    /// A valid vector with this decoded form.
    pub(crate) fn ok(mut self, expected: Value, encode: bool) -> Vector {
        self.result = Outcome::Valid;
        self.expected = expected;
        self.encode = encode;
        self
    }

    /// An invalid vector rejected with this error.
    pub(crate) fn fails(mut self, expected: Value) -> Vector {
        self.result = Outcome::Invalid;
        self.expected = expected;
        self.encode = false;
        self
    }

    /// An acceptable vector: `expected` or `alternative` are both conforming.
    pub(crate) fn either(mut self, expected: Value, alternative: Value) -> Vector {
        self.result = Outcome::Acceptable;
        self.expected = expected;
        self.alternative = Some(alternative);
        self.encode = false;
        self
    }

    /// Adds a flag (README: "Flags").
    pub(crate) fn flag(mut self, flag: &'static str) -> Vector {
        self.flags.push(flag);
        self
    }

    /// The vector as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), json!(self.id));
        obj.insert("section".into(), json!(self.section));
        obj.insert("requirements".into(), json!(self.requirements));
        obj.insert("description".into(), json!(self.description));
        let result = match self.result {
            Outcome::Valid => "valid",
            Outcome::Invalid => "invalid",
            Outcome::Acceptable => "acceptable",
        };
        obj.insert("result".into(), json!(result));
        if !self.flags.is_empty() {
            obj.insert("flags".into(), json!(self.flags));
        }
        for (k, v) in &self.fields {
            obj.insert((*k).into(), v.clone());
        }
        obj.insert("expected".into(), self.expected.clone());
        if let Some(alt) = &self.alternative {
            obj.insert("alternative".into(), alt.clone());
        }
        obj.insert("encode".into(), json!(self.encode));
        Value::Object(obj)
    }
}

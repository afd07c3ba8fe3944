//! Runs the crate's parsers, encoders and decompressor against the codec-layer vectors.

use serde_json::{json, Value};

use super::json::{hex, unhex, Fields};
use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use fleetwire::{
    check_preface, Codec, Deframer, Error, ErrorCode, Header, Kind, Packet, PacketRef, Route,
    Status,
};

/// `{"error": NAME, "code": N}` for a crate error.
pub(crate) fn error_json(code: ErrorCode) -> Value {
    json!({ "error": code.name().unwrap_or("UNASSIGNED"), "code": code.0 })
}

fn status_json<T>(r: Result<Status<T>, Error>, ok: impl FnOnce(T) -> Value) -> Value {
    match r {
        Ok(Status::Complete(t)) => ok(t),
        Ok(Status::Incomplete { needed }) => json!({ "incomplete": needed }),
        Err(e) => error_json(e.code()),
    }
}

/// The decoded form of a header (the inverse of [`header_from_json`]).
pub(crate) fn header_json(h: &Header) -> Value {
    json!({
        "header_len": h.len(),
        "version": Header::VERSION,
        "kind": h.kind.name(),
        "never_compress": h.never_compress,
        "codec": h.codec.name(),
        "hints": h.hints,
        "length": h.length,
        "node": h.route.node,
        "service": h.route.service,
        "channel": h.route.channel,
        "source": h.source,
    })
}

pub(crate) fn kind_by_name(name: &str) -> Result<Kind, String> {
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .ok_or_else(|| format!("unknown kind {name}"))
}

fn small<T: TryFrom<u64>>(v: &Value, name: &str) -> Result<T, String> {
    T::try_from(v.u64_field(name)?).map_err(|_| format!("field `{name}` out of range"))
}

/// A header from its decoded form.
pub(crate) fn header_from_json(v: &Value) -> Result<Header, String> {
    let codec = match v.str_field("codec")? {
        "none" => Codec::None,
        "snappy" => Codec::Snappy,
        "zlib" => Codec::Zlib,
        other => return Err(format!("unknown codec {other}")),
    };
    let source = match v.field("source")? {
        Value::Null => None,
        _ => Some(small(v, "source")?),
    };
    Ok(Header {
        kind: kind_by_name(v.str_field("kind")?)?,
        never_compress: v
            .field("never_compress")?
            .as_bool()
            .ok_or("never_compress")?,
        codec,
        hints: small(v, "hints")?,
        length: small(v, "length")?,
        route: Route::new(
            small(v, "node")?,
            small(v, "service")?,
            small(v, "channel")?,
        ),
        source,
    })
}

fn max_payload(v: &Value) -> Result<u16, String> {
    match v.get("max_payload") {
        None => Ok(u16::MAX),
        Some(_) => small(v, "max_payload"),
    }
}

/// Checks `actual` against `expected`, or against `alternative` for acceptable vectors.
pub(crate) fn compare(v: &Value, actual: &Value) -> Result<(), String> {
    if actual == v.field("expected")? {
        return Ok(());
    }
    if v.str_field("result")? == "acceptable" && Some(actual) == v.get("alternative") {
        return Ok(());
    }
    Err(format!("got {actual}, expected {}", v.field("expected")?))
}

/// Header layer.
pub(crate) fn header(v: &Value) -> Result<(), String> {
    let input = v.hex_field("input")?;
    let actual = status_json(Header::parse(&input, max_payload(v)?), |h| header_json(&h));
    compare(v, &actual)?;
    if v.field("encode")?.as_bool() == Some(true) {
        let mut out = Vec::new();
        header_from_json(v.field("expected")?)?.encode_to_vec(&mut out);
        expect_bytes(&out, &input)?;
    }
    Ok(())
}

fn expect_bytes(encoded: &[u8], input: &[u8]) -> Result<(), String> {
    if encoded == input {
        Ok(())
    } else {
        Err(format!(
            "encoding gave {}, input is {}",
            hex(encoded),
            hex(input)
        ))
    }
}

/// Packet layer.
pub(crate) fn packet(v: &Value) -> Result<(), String> {
    let input = v.hex_field("input")?;
    let actual = status_json(
        PacketRef::parse(&input, max_payload(v)?),
        |(p, rest)| json!({ "header": header_json(&p.header), "payload": hex(p.payload), "rest": hex(rest) }),
    );
    compare(v, &actual)?;
    if v.field("encode")?.as_bool() == Some(true) {
        let e = v.field("expected")?;
        let pkt = Packet {
            header: header_from_json(e.field("header")?)?,
            payload: e.hex_field("payload")?.into(),
        };
        let mut out = pkt.to_vec();
        out.extend(e.hex_field("rest")?);
        expect_bytes(&out, &input)?;
    }
    Ok(())
}

fn u64s(x: u64) -> Value {
    json!(x.to_string())
}

/// The decoded form of a control payload.
pub(crate) fn control_json(c: &Control<'_>) -> Value {
    match c {
        Control::Hello(h) => json!({
            "min_version": h.min_version,
            "max_version": h.max_version,
            "role": h.role.name(),
            "hello_flags": h.hello_flags,
            "node_id": h.node_id,
            "peer_id": h.peer_id,
            "codecs": h.codecs,
            "max_ratio": h.max_ratio,
            "max_payload": h.max_payload,
            "max_decompressed": h.max_decompressed,
            "initial_credit_packets": h.initial_credit_packets,
            "initial_credit_bytes": h.initial_credit_bytes,
            "idle_timeout_ms": h.idle_timeout_ms,
            "extensions": hex(h.extensions),
        }),
        Control::Ping(p) => json!({ "id": u64s(p.id), "timestamp": u64s(p.timestamp) }),
        Control::Pong(p) => {
            json!({ "id": u64s(p.id), "timestamp": u64s(p.timestamp), "hold_us": p.hold_us })
        }
        Control::Goaway(g) => json!({
            "code": g.code.0, "code_name": g.code.name(), "delivered": u64s(g.delivered), "reason": g.reason,
        }),
        Control::Credit(c) => json!({ "packets": c.packets, "bytes": c.bytes }),
        Control::Error(e) => json!({
            "code": e.code.0, "code_name": e.code.name(), "header": hex(e.header), "reason": e.reason,
        }),
    }
}

pub(crate) fn role_by_name(name: &str) -> Result<Role, String> {
    [Role::Client, Role::Node, Role::Proxy]
        .into_iter()
        .find(|r| r.name() == name)
        .ok_or_else(|| format!("unknown role {name}"))
}

/// Encodes a control payload from its decoded form.
pub(crate) fn encode_control(kind: Kind, e: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match kind {
        Kind::Hello => {
            let ext = e.hex_field("extensions")?;
            Hello {
                min_version: small(e, "min_version")?,
                max_version: small(e, "max_version")?,
                role: role_by_name(e.str_field("role")?)?,
                hello_flags: small(e, "hello_flags")?,
                node_id: small(e, "node_id")?,
                peer_id: small(e, "peer_id")?,
                codecs: small(e, "codecs")?,
                max_ratio: small(e, "max_ratio")?,
                max_payload: small(e, "max_payload")?,
                max_decompressed: small(e, "max_decompressed")?,
                initial_credit_packets: small(e, "initial_credit_packets")?,
                initial_credit_bytes: small(e, "initial_credit_bytes")?,
                idle_timeout_ms: small(e, "idle_timeout_ms")?,
                extensions: &ext,
            }
            .encode(&mut out)
        }
        Kind::Ping => Ping {
            id: e.u64_str_field("id")?,
            timestamp: e.u64_str_field("timestamp")?,
        }
        .encode(&mut out),
        Kind::Pong => Pong {
            id: e.u64_str_field("id")?,
            timestamp: e.u64_str_field("timestamp")?,
            hold_us: small(e, "hold_us")?,
        }
        .encode(&mut out),
        Kind::Goaway => Goaway {
            code: ErrorCode(small(e, "code")?),
            delivered: e.u64_str_field("delivered")?,
            reason: e.str_field("reason")?,
        }
        .encode(&mut out),
        Kind::Credit => Credit {
            packets: small(e, "packets")?,
            bytes: small(e, "bytes")?,
        }
        .encode(&mut out),
        Kind::Error => {
            let header = e.hex_field("header")?;
            ErrorReport {
                code: ErrorCode(small(e, "code")?),
                header: &header,
                reason: e.str_field("reason")?,
            }
            .encode(&mut out)
        }
        Kind::Data => return Err("DATA has no control payload".into()),
    }
    Ok(out)
}

/// Control layer.
pub(crate) fn control(v: &Value) -> Result<(), String> {
    let input = v.hex_field("input")?;
    let kind = kind_by_name(v.str_field("kind")?)?;
    let actual = match Control::parse(kind, &input) {
        Ok(c) => control_json(&c),
        Err(e) => error_json(e.code()),
    };
    compare(v, &actual)?;
    if v.field("encode")?.as_bool() == Some(true) {
        expect_bytes(&encode_control(kind, v.field("expected")?)?, &input)?;
    }
    Ok(())
}

/// Feeds `chunks` to a preface check and a deframer, decoding control payloads, and
/// returns the stream layer's decoded form.
pub(crate) fn run_stream(chunks: &[&[u8]], preface: bool, max_payload: u16) -> Value {
    let mut pre = Vec::new();
    let pre_len = if preface { 8u64 } else { 0 };
    let mut deframer = Deframer::new(max_payload);
    let mut packets = Vec::new();
    let fail = |code: ErrorCode, offset: u64, packets: Vec<Value>| {
        let mut e = error_json(code);
        e["offset"] = json!(offset);
        e["packets"] = json!(packets);
        e["status"] = json!("error");
        e
    };
    for chunk in chunks {
        let mut data: &[u8] = chunk;
        if preface && pre.len() < 8 {
            let take = data.len().min(8 - pre.len());
            pre.extend_from_slice(&data[..take]);
            data = &data[take..];
            match check_preface(&pre) {
                Ok(Status::Complete(_)) => {}
                Ok(Status::Incomplete { .. }) => continue,
                Err(e) => return fail(e.code(), 0, packets),
            }
        }
        deframer.extend(data);
        loop {
            match deframer.next_packet() {
                Ok(Some(p)) => {
                    if p.header.kind.is_control() {
                        if let Err(e) = Control::parse(p.header.kind, &p.payload) {
                            let at = pre_len + deframer.offset() - p.header.packet_len() as u64;
                            return fail(e.code(), at, packets);
                        }
                    }
                    packets.push(
                        json!({ "header": header_json(&p.header), "payload": hex(&p.payload) }),
                    );
                }
                Ok(None) => break,
                Err(e) => return fail(e.code(), pre_len + deframer.offset(), packets),
            }
        }
    }
    let incomplete = (preface && pre.len() < 8) || deframer.buffered() > 0;
    json!({ "packets": packets, "status": if incomplete { "incomplete" } else { "complete" } })
}

/// Stream layer: the given chunks, then every two-way split and one byte per read.
pub(crate) fn stream(v: &Value) -> Result<(), String> {
    let input = v.hex_field("input")?;
    let preface = v
        .field("preface")?
        .as_bool()
        .ok_or("preface is not a boolean")?;
    let max = max_payload(v)?;
    let chunks: Vec<Vec<u8>> = v
        .field("chunks")?
        .as_array()
        .ok_or("chunks is not an array")?
        .iter()
        .map(|c| c.as_str().and_then(unhex).ok_or("a chunk is not hex"))
        .collect::<Result<_, _>>()?;
    if chunks.concat() != input {
        return Err("the chunks do not concatenate to the input".into());
    }
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let actual = run_stream(&refs, preface, max);
    compare(v, &actual)?;
    // spec §12.2 [[err.split-invariant]]: the same result however the input is split
    for cut in 0..=input.len() {
        let split = run_stream(&[&input[..cut], &input[cut..]], preface, max);
        if split != actual {
            return Err(format!(
                "split at {cut} gave {split}, the chunks gave {actual}"
            ));
        }
    }
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    if run_stream(&bytewise, preface, max) != actual {
        return Err("one byte per read gave a different result".into());
    }
    if v.field("encode")?.as_bool() == Some(true) {
        let mut out = if preface {
            fleetwire::PREFACE.to_vec()
        } else {
            Vec::new()
        };
        for p in v
            .field("expected")?
            .field("packets")?
            .as_array()
            .ok_or("packets")?
        {
            header_from_json(p.field("header")?)?.encode_to_vec(&mut out);
            out.extend(p.hex_field("payload")?);
        }
        expect_bytes(&out, &input)?;
    }
    Ok(())
}

/// Compression layer: a fresh decompressor, then a reused one (no state may carry over).
pub(crate) fn compression(v: &Value, reused: &mut Decompressor) -> Result<(), String> {
    let input = v.hex_field("input")?;
    let codec = match v.str_field("codec")? {
        "none" => Codec::None,
        "snappy" => Codec::Snappy,
        "zlib" => Codec::Zlib,
        other => return Err(format!("unknown codec {other}")),
    };
    let l = v.field("limits")?;
    let limits = DecompressLimits {
        max_decompressed: small(l, "max_decompressed")?,
        max_ratio: small(l, "max_ratio")?,
        codecs: small(l, "codecs")?,
    };
    for d in [&mut Decompressor::new(), reused] {
        let mut out = Vec::new();
        let actual = match d.decompress(codec, &input, &limits, &mut out) {
            Ok(()) => json!({ "output": hex(&out) }),
            Err(e) => {
                // spec §9.3 [[comp.packet-error]]: every decompression error is a packet error
                if !e.code().is_packet_error() {
                    return Err(format!("{e} is not a packet error"));
                }
                error_json(e.code())
            }
        };
        compare(v, &actual)?;
    }
    Ok(())
}

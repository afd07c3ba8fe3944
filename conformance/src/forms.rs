//! The JSON forms of `vectors/README.md` ("Layer forms"), shared by the reference testee
//! and the runner: decoded headers, control payloads, errors, hex.
//!
//! The forms that are the same as the vector verifier's are that verifier's own
//! functions (re-exported); the testee protocol promises the same field names as the
//! vector files, and the reference passing every vector-derived case checks the rest.

use serde_json::{json, Value};

pub(crate) use crate::vectors::json::{hex, unhex};
pub(crate) use crate::vectors::verify::{
    control_json, error_json, header_json, kind_by_name, role_by_name,
};

fn u64s(x: u64) -> Value {
    json!(x.to_string())
}

use fleetwire::control::{Credit, ErrorReport, Goaway, Hello, Ping, Pong};
use fleetwire::{Codec, ErrorCode, Header, Kind, Route};

/// A field of a JSON object, or an error naming it.
pub(crate) fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name).ok_or_else(|| format!("missing field `{name}`"))
}

/// A string field.
pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| format!("field `{name}` is not a string"))
}

/// A hex field, decoded.
pub(crate) fn hex_field(v: &Value, name: &str) -> Result<Vec<u8>, String> {
    unhex(str_field(v, name)?).ok_or_else(|| format!("field `{name}` is not hex"))
}

/// A bool field.
pub(crate) fn bool_field(v: &Value, name: &str) -> Result<bool, String> {
    field(v, name)?
        .as_bool()
        .ok_or_else(|| format!("field `{name}` is not a boolean"))
}

/// An integer field that must fit `T`.
pub(crate) fn num<T: TryFrom<u64>>(v: &Value, name: &str) -> Result<T, String> {
    let n = field(v, name)?
        .as_u64()
        .ok_or_else(|| format!("field `{name}` is not an unsigned integer"))?;
    T::try_from(n).map_err(|_| format!("field `{name}` out of range"))
}

/// A u64 written as a decimal string.
pub(crate) fn u64_str(v: &Value, name: &str) -> Result<u64, String> {
    str_field(v, name)?
        .parse()
        .map_err(|_| format!("field `{name}` is not a decimal u64 string"))
}

/// `max_payload` of a request, 65535 when absent.
pub(crate) fn max_payload(v: &Value) -> Result<u16, String> {
    match v.get("max_payload") {
        None | Some(Value::Null) => Ok(u16::MAX),
        Some(_) => num(v, "max_payload"),
    }
}

/// A codec by its vector name.
pub(crate) fn codec_by_name(name: &str) -> Result<Codec, String> {
    match name {
        "none" => Ok(Codec::None),
        "snappy" => Ok(Codec::Snappy),
        "zlib" => Ok(Codec::Zlib),
        other => Err(format!("unknown codec {other}")),
    }
}

/// A header from its decoded form.
pub(crate) fn header_from_json(v: &Value) -> Result<Header, String> {
    let source = match field(v, "source")? {
        Value::Null => None,
        _ => Some(num(v, "source")?),
    };
    Ok(Header {
        kind: kind_by_name(str_field(v, "kind")?)?,
        never_compress: bool_field(v, "never_compress")?,
        codec: codec_by_name(str_field(v, "codec")?)?,
        hints: num(v, "hints")?,
        length: num(v, "length")?,
        route: Route::new(num(v, "node")?, num(v, "service")?, num(v, "channel")?),
        source,
    })
}

/// The decoded form of a GOAWAY.
pub(crate) fn goaway_json(code: ErrorCode, delivered: u64, reason: &str) -> Value {
    json!({ "code": code.0, "code_name": code.name(), "delivered": u64s(delivered), "reason": reason })
}

/// Encodes a control payload of `kind` from its decoded form.
pub(crate) fn encode_control(kind: Kind, e: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match kind {
        Kind::Hello => {
            let ext = hex_field(e, "extensions")?;
            Hello {
                min_version: num(e, "min_version")?,
                max_version: num(e, "max_version")?,
                role: role_by_name(str_field(e, "role")?)?,
                hello_flags: num(e, "hello_flags")?,
                node_id: num(e, "node_id")?,
                peer_id: num(e, "peer_id")?,
                codecs: num(e, "codecs")?,
                max_ratio: num(e, "max_ratio")?,
                max_payload: num(e, "max_payload")?,
                max_decompressed: num(e, "max_decompressed")?,
                initial_credit_packets: num(e, "initial_credit_packets")?,
                initial_credit_bytes: num(e, "initial_credit_bytes")?,
                idle_timeout_ms: num(e, "idle_timeout_ms")?,
                extensions: &ext,
            }
            .encode(&mut out)
        }
        Kind::Ping => Ping {
            id: u64_str(e, "id")?,
            timestamp: u64_str(e, "timestamp")?,
        }
        .encode(&mut out),
        Kind::Pong => Pong {
            id: u64_str(e, "id")?,
            timestamp: u64_str(e, "timestamp")?,
            hold_us: num(e, "hold_us")?,
        }
        .encode(&mut out),
        Kind::Goaway => Goaway {
            code: ErrorCode(num(e, "code")?),
            delivered: u64_str(e, "delivered")?,
            reason: str_field(e, "reason")?,
        }
        .encode(&mut out),
        Kind::Credit => Credit {
            packets: num(e, "packets")?,
            bytes: num(e, "bytes")?,
        }
        .encode(&mut out),
        Kind::Error => {
            let header = hex_field(e, "header")?;
            ErrorReport {
                code: ErrorCode(num(e, "code")?),
                header: &header,
                reason: str_field(e, "reason")?,
            }
            .encode(&mut out)
        }
        Kind::Data => return Err("DATA has no control payload".into()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xAB]), "00ab");
        assert_eq!(unhex("00AB"), Some(vec![0, 0xAB]));
        assert_eq!(unhex("0"), None);
    }

    #[test]
    fn header_form_round_trip() {
        let h = Header {
            source: Some(9),
            ..Header::data(Route::new(1, 2, 3), 4)
        };
        assert_eq!(header_from_json(&header_json(&h)), Ok(h));
    }
}

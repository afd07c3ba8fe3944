//! Deterministic JSON output and small JSON/hex helpers shared by the generator and the
//! verifier.
//!
//! The output does not depend on how `serde_json` orders map keys (that changes with its
//! `preserve_order` feature): objects are written with a fixed key order — the keys of
//! [`KEY_ORDER`] first, in that order, then every other key alphabetically — two-space
//! indentation and a trailing newline.

use serde_json::{Map, Value};

/// Keys written first, in this order; all other keys follow alphabetically.
const KEY_ORDER: &[&str] = &[
    "schema_version",
    "layer",
    "vectors",
    "id",
    "section",
    "requirements",
    "description",
    "result",
    "flags",
    "kind",
    "codec",
    "preface",
    "max_payload",
    "limits",
    "config",
    "input",
    "chunks",
    "steps",
    "expected",
    "alternative",
    "encode",
];

fn key_rank(key: &str) -> (usize, &str) {
    match KEY_ORDER.iter().position(|k| *k == key) {
        Some(i) => (i, ""),
        None => (KEY_ORDER.len(), key),
    }
}

/// Writes `value` as pretty JSON with the fixed key order, ending with a newline.
pub(crate) fn to_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, 0, &mut out);
    out.push('\n');
    out
}

fn write_value(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                push_indent(indent + 1, out);
                write_value(item, indent + 1, out);
            }
            out.push('\n');
            push_indent(indent, out);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => write_object(map, indent, out),
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_object(map: &Map<String, Value>, indent: usize, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| key_rank(a).cmp(&key_rank(b)));
    out.push('{');
    for (i, key) in keys.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        push_indent(indent + 1, out);
        out.push_str(&Value::String((*key).clone()).to_string());
        out.push_str(": ");
        write_value(&map[key.as_str()], indent + 1, out);
    }
    out.push('\n');
    push_indent(indent, out);
    out.push('}');
}

fn push_indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// Decodes lower- or upper-case hex; `None` on odd length or a non-hex digit.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Field access on a JSON object with error messages naming the field.
pub(crate) trait Fields {
    /// The field, or an error naming it.
    fn field(&self, name: &str) -> Result<&Value, String>;
    /// A string field.
    fn str_field(&self, name: &str) -> Result<&str, String>;
    /// An unsigned integer field (a JSON number).
    fn u64_field(&self, name: &str) -> Result<u64, String>;
    /// A hex field, decoded.
    fn hex_field(&self, name: &str) -> Result<Vec<u8>, String>;
    /// A u64 written as a decimal string (portable above 2^53).
    fn u64_str_field(&self, name: &str) -> Result<u64, String>;
}

impl Fields for Value {
    fn field(&self, name: &str) -> Result<&Value, String> {
        self.get(name)
            .ok_or_else(|| format!("missing field `{name}`"))
    }

    fn str_field(&self, name: &str) -> Result<&str, String> {
        self.field(name)?
            .as_str()
            .ok_or_else(|| format!("field `{name}` is not a string"))
    }

    fn u64_field(&self, name: &str) -> Result<u64, String> {
        self.field(name)?
            .as_u64()
            .ok_or_else(|| format!("field `{name}` is not an unsigned integer"))
    }

    fn hex_field(&self, name: &str) -> Result<Vec<u8>, String> {
        unhex(self.str_field(name)?).ok_or_else(|| format!("field `{name}` is not hex"))
    }

    fn u64_str_field(&self, name: &str) -> Result<u64, String> {
        self.str_field(name)?
            .parse()
            .map_err(|_| format!("field `{name}` is not a decimal u64 string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_output_has_fixed_key_order() {
        let v = json!({"zeta": 1, "id": "a", "expected": {"b": [], "a": {}}, "alpha": [1, 2]});
        assert_eq!(
            to_pretty(&v),
            "{\n  \"id\": \"a\",\n  \"expected\": {\n    \"a\": {},\n    \"b\": []\n  },\n  \
             \"alpha\": [\n    1,\n    2\n  ],\n  \"zeta\": 1\n}\n"
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xAB, 0x10]), "00ab10");
        assert_eq!(unhex("00AB10"), Some(vec![0x00, 0xAB, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}

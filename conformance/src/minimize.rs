//! Automatic minimisation of a failing input: delta debugging (Zeller's ddmin) over the
//! bytes of the input and, for streams, the boundaries between reads. A candidate
//! "fails the same way" when the testee still disagrees with the reference and the pair
//! (reference outcome class, testee outcome class) is unchanged.

use std::time::Duration;

use serde_json::{json, Value};

use super::cases::Probe;
use super::forms::{hex, unhex};
use super::protocol::{Call, Reply, Testee};
use super::reference::Reference;

/// Calls to the testee one minimisation may make.
const BUDGET: usize = 400;

/// A read boundary or a byte of a stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    Byte(u8),
    Cut,
}

/// The coarse class of an answer: what "the same way" compares.
pub(crate) fn class(v: &Value) -> String {
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return format!("error {e}");
    }
    if let Some(s) = v.get("status").and_then(Value::as_str) {
        return s.to_owned();
    }
    if v.get("incomplete").is_some() {
        return "incomplete".into();
    }
    "ok".into()
}

fn tokens_of(fields: &Value) -> Option<Vec<Token>> {
    let chunks = fields.get("chunks")?.as_array()?;
    let mut t = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            t.push(Token::Cut);
        }
        t.extend(unhex(c.as_str()?)?.into_iter().map(Token::Byte));
    }
    Some(t)
}

fn fields_of(base: &Value, tokens: &[Token]) -> Value {
    let mut f = base.clone();
    if f.get("chunks").is_some() {
        let mut chunks = vec![Vec::new()];
        for t in tokens {
            match t {
                Token::Byte(b) => chunks.last_mut().map_or((), |c| c.push(*b)),
                Token::Cut => chunks.push(Vec::new()),
            }
        }
        f["chunks"] = json!(chunks.iter().map(|c| hex(c)).collect::<Vec<_>>());
    } else {
        let bytes: Vec<u8> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Byte(b) => Some(*b),
                Token::Cut => None,
            })
            .collect();
        f["input"] = json!(hex(&bytes));
    }
    f
}

/// Disagreement of `testee` with the reference on `fields`: the pair of classes.
pub(crate) fn disagreement(
    testee: &mut dyn Testee,
    reference: &mut Reference,
    case: &str,
    op: &str,
    fields: &Value,
    timeout: Duration,
) -> Option<(String, String)> {
    let Reply::Result(want) = reference.call(op, fields) else {
        return None;
    };
    let got = match testee.call(case, op, fields, timeout) {
        Call::Reply(Reply::Result(v)) => v,
        Call::Reply(Reply::Unsupported) => return None,
        Call::Reply(Reply::Error(_)) => json!({ "error": "(testee error)" }),
        Call::Timeout => json!({ "error": "(timeout)" }),
        Call::Crashed(_) => json!({ "error": "(crash)" }),
    };
    (got != want).then(|| (class(&want), class(&got)))
}

/// The smallest variant of `probe` found that still fails the same way, as
/// `{"op", "fields", "input_hex"}`; `None` for operations without a byte input, or when
/// the failure does not reproduce against the reference.
pub(crate) fn minimise(
    testee: &mut dyn Testee,
    case: &str,
    probe: &Probe,
    timeout: Duration,
) -> Option<Value> {
    let op = probe.op.as_str();
    if !matches!(
        op,
        "decode_stream" | "decode_header" | "decode_packet" | "decompress" | "decode_control"
    ) {
        return None;
    }
    let tokens = match tokens_of(&probe.fields) {
        Some(t) => t,
        None => unhex(probe.fields.get("input")?.as_str()?)?
            .into_iter()
            .map(Token::Byte)
            .collect(),
    };
    let mut reference = Reference::new(None);
    let target = disagreement(testee, &mut reference, case, op, &probe.fields, timeout)?;
    let mut calls = 0;
    let mut still_fails = |t: &[Token]| {
        calls += 1;
        if calls > BUDGET {
            return false;
        }
        let f = fields_of(&probe.fields, t);
        disagreement(testee, &mut reference, case, op, &f, timeout).as_ref() == Some(&target)
    };
    let preface = probe.fields.get("preface").and_then(Value::as_bool) == Some(true);
    let small = shrink_tokens(tokens, preface, &mut still_fails);
    let fields = fields_of(&probe.fields, &small);
    let bytes: String = small
        .iter()
        .filter_map(|t| match t {
            Token::Byte(b) => Some(hex(&[*b])),
            Token::Cut => None,
        })
        .collect();
    Some(
        json!({ "op": op, "fields": fields, "input_hex": bytes, "reference": target.0, "testee": target.1 }),
    )
}

/// Packet-aligned units of a stream (the preface, each packet by its raw header, the
/// incomplete tail), so that whole packets can go before single bytes: removing bytes
/// from the middle of a framed stream rarely keeps a failure.
fn units(tokens: &[Token], preface: bool) -> Vec<Vec<Token>> {
    let bytes: Vec<(usize, u8)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Token::Byte(b) => Some((i, *b)),
            Token::Cut => None,
        })
        .collect();
    let mut ends = Vec::new(); // byte counts at unit ends
    let mut at = if preface { 8 } else { 0 };
    if preface && bytes.len() >= 8 {
        ends.push(8);
    }
    while at + 8 <= bytes.len() {
        let hl = if bytes[at + 1].1 & 0x80 != 0 { 10 } else { 8 };
        let len = usize::from(u16::from_be_bytes([bytes[at + 2].1, bytes[at + 3].1]));
        if at + hl + len > bytes.len() {
            break;
        }
        at += hl + len;
        ends.push(at);
    }
    let mut out = Vec::new();
    let mut start_tok = 0;
    for end in ends {
        let end_tok = if end == bytes.len() {
            tokens.len()
        } else {
            bytes[end].0
        };
        out.push(tokens[start_tok..end_tok].to_vec());
        start_tok = end_tok;
    }
    if start_tok < tokens.len() {
        out.push(tokens[start_tok..].to_vec());
    }
    out
}

/// Minimises in two passes: whole packets, then single bytes and read boundaries.
fn shrink_tokens(
    tokens: Vec<Token>,
    preface: bool,
    fails: &mut dyn FnMut(&[Token]) -> bool,
) -> Vec<Token> {
    let mut by_unit = |u: &[Vec<Token>]| fails(&u.concat());
    let kept = ddmin(units(&tokens, preface), &mut by_unit).concat();
    ddmin(kept, fails)
}

/// Minimises a byte input (a stream read in one piece, or a single header, packet,
/// payload) with the same two passes.
pub(crate) fn shrink_bytes(
    bytes: Vec<u8>,
    preface: bool,
    fails: &mut dyn FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let tokens: Vec<Token> = bytes.into_iter().map(Token::Byte).collect();
    let mut f = |t: &[Token]| {
        let b: Vec<u8> = t
            .iter()
            .filter_map(|t| match t {
                Token::Byte(b) => Some(*b),
                Token::Cut => None,
            })
            .collect();
        fails(&b)
    };
    shrink_tokens(tokens, preface, &mut f)
        .into_iter()
        .filter_map(|t| match t {
            Token::Byte(b) => Some(b),
            Token::Cut => None,
        })
        .collect()
}

/// Delta debugging: removes ever smaller slices of `items` while `fails` holds.
pub(crate) fn ddmin<T: Clone>(mut items: Vec<T>, fails: &mut dyn FnMut(&[T]) -> bool) -> Vec<T> {
    let mut n = 2usize;
    while items.len() >= 2 {
        let chunk = items.len().div_ceil(n);
        let mut reduced = false;
        let mut start = 0;
        while start < items.len() {
            let end = (start + chunk).min(items.len());
            let mut candidate = items[..start].to_vec();
            candidate.extend_from_slice(&items[end..]);
            if fails(&candidate) {
                items = candidate;
                n = n.saturating_sub(1).max(2);
                reduced = true;
                break;
            }
            start = end;
        }
        if !reduced {
            if n >= items.len() {
                break;
            }
            n = (n * 2).min(items.len());
        }
    }
    if items.len() == 1 && fails(&[]) {
        items.clear();
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_the_two_culprits() {
        let items: Vec<u32> = (0..100).collect();
        let small = ddmin(items, &mut |c: &[u32]| c.contains(&17) && c.contains(&63));
        assert_eq!(small, vec![17, 63]);
    }
}

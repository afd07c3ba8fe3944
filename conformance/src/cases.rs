//! The conformance cases: one per golden vector (and one per encodable vector), plus
//! generated extras — streams split at every byte, coalesced streams, and seeded random
//! streams and packets.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use super::forms::{hex, unhex};
use super::Rng;

/// How much a requirement weighs (spec §15): a failed MUST case is FAILED, a failed
/// SHOULD case NON-STRICT, a failed MAY case INFORMATIONAL.
///
/// ```
/// use fleetwire_conformance::Level;
/// assert!(Level::Must > Level::Should && Level::Should > Level::May);
/// assert_eq!(Level::Should.to_string(), "SHOULD");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Level {
    /// MAY / OPTIONAL.
    May,
    /// SHOULD / RECOMMENDED.
    Should,
    /// MUST / SHALL / REQUIRED, and tagged rules without a keyword.
    Must,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::May => "MAY",
            Level::Should => "SHOULD",
            Level::Must => "MUST",
        })
    }
}

/// One request of a case and what a conforming testee answers.
///
/// ```
/// use fleetwire_conformance::Probe;
/// let p = Probe { op: "decode_header".into(), fields: serde_json::json!({"input": ""}),
///     accept: vec![serde_json::json!({"incomplete": 8})] };
/// assert!(p.accepts(&serde_json::json!({"incomplete": 8})));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The operation (`conformance/PROTOCOL.md` §4).
    pub op: String,
    /// The request fields.
    pub fields: Value,
    /// The conforming results (more than one for `acceptable` vectors). For the
    /// `connection` operation: `[expected outcome, alternative...]`; the observations
    /// are checked against the `expect_*` steps of `fields`.
    pub accept: Vec<Value>,
}

impl Probe {
    /// Whether `result` is one of the conforming results (for `connection`, the
    /// outcome only).
    ///
    /// ```
    /// # use fleetwire_conformance::Probe;
    /// let p = Probe { op: "x".into(), fields: serde_json::json!({}), accept: vec![] };
    /// assert!(!p.accepts(&serde_json::json!(1)));
    /// ```
    pub fn accepts(&self, result: &Value) -> bool {
        self.accept.iter().any(|a| a == result)
    }
}

/// A conformance case: stable id, what it checks, and its requests.
///
/// ```
/// let cases = fleetwire_conformance::cases(1);
/// let c = cases.iter().find(|c| c.id == "codec.header.kind.unassigned-7").unwrap();
/// assert_eq!(c.section, "4.3");
/// assert!(c.tags.contains(&"hdr.kind".to_string()));
/// assert_eq!(c.claim, "codec");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// Stable hierarchical id, `codec.<vector id>` for a vector.
    pub id: String,
    /// Spec section.
    pub section: String,
    /// Requirement tags checked.
    pub tags: Vec<String>,
    /// The strongest requirement level among the tags.
    pub level: Level,
    /// The conformance level a testee must claim for the case to run (spec §15).
    pub claim: &'static str,
    /// What the case is about.
    pub description: String,
    /// The requests, in order; the case passes when every one gets a conforming answer.
    pub probes: Vec<Probe>,
}

/// The level of every tag of the spec, read from the sentence each tag closes.
pub(crate) fn tag_levels() -> BTreeMap<String, Level> {
    let spec = include_str!("../../spec/fleetwire-v1.md");
    let mut levels = BTreeMap::new();
    let mut last_end = 0;
    let mut rest_at = 0;
    while let Some(open) = spec[rest_at..].find("[[") {
        let open = rest_at + open;
        let Some(close) = spec[open..].find("]]") else {
            break;
        };
        let close = open + close;
        let tag = &spec[open + 2..close];
        // the text the tag closes: since the previous tag or the paragraph start
        let para = spec[..open].rfind("\n\n").map_or(0, |p| p + 2);
        let item = spec[..open].rfind("\n- ").map_or(0, |p| p + 1);
        let text = &spec[last_end.max(para).max(item)..open];
        let level = if ["MUST", "SHALL", "REQUIRED"]
            .iter()
            .any(|w| text.contains(w))
        {
            Level::Must
        } else if ["SHOULD", "RECOMMENDED"].iter().any(|w| text.contains(w)) {
            Level::Should
        } else if text.contains("MAY") {
            Level::May
        } else {
            Level::Must
        };
        levels.entry(tag.to_owned()).or_insert(level);
        last_end = close + 2;
        rest_at = close + 2;
    }
    levels
}

fn level_of(tags: &[String], levels: &BTreeMap<String, Level>) -> Level {
    tags.iter()
        .map(|t| levels.get(t).copied().unwrap_or(Level::Must))
        .max()
        .unwrap_or(Level::Must)
}

struct Vector<'a> {
    v: &'a Value,
    id: &'a str,
    tags: Vec<String>,
}

impl<'a> Vector<'a> {
    fn new(v: &'a Value) -> Vector<'a> {
        let tags = v["requirements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Vector {
            v,
            id: v["id"].as_str().unwrap_or("?"),
            tags,
        }
    }

    fn accept(&self) -> Vec<Value> {
        let mut a = vec![self.v["expected"].clone()];
        if let Some(alt) = self.v.get("alternative") {
            a.push(alt.clone());
        }
        a
    }

    fn pick(&self, keys: &[&str]) -> Value {
        let mut m = serde_json::Map::new();
        for k in keys {
            if let Some(x) = self.v.get(*k) {
                m.insert((*k).to_owned(), x.clone());
            }
        }
        Value::Object(m)
    }

    fn case(
        &self,
        id: String,
        claim: &'static str,
        probes: Vec<Probe>,
        levels: &BTreeMap<String, Level>,
    ) -> Case {
        Case {
            id,
            section: self.v["section"].as_str().unwrap_or("").to_owned(),
            level: level_of(&self.tags, levels),
            tags: self.tags.clone(),
            claim,
            description: self.v["description"].as_str().unwrap_or("").to_owned(),
            probes,
        }
    }
}

fn probe(op: &str, fields: Value, accept: Vec<Value>) -> Probe {
    Probe {
        op: op.to_owned(),
        fields,
        accept,
    }
}

/// The vectors of every layer, as generated by this crate (identical to `vectors/`).
pub(crate) fn builtin_vectors() -> Vec<(String, Vec<Value>)> {
    crate::vectors::LAYERS
        .iter()
        .map(|layer| {
            let text = crate::vectors::render(layer).unwrap_or_default();
            let file: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let vectors = file["vectors"].as_array().cloned().unwrap_or_default();
            ((*layer).to_owned(), vectors)
        })
        .collect()
}

/// Every case, built from `layers` (`(layer, vectors)`), with random extras from `seed`.
pub(crate) fn build(layers: &[(String, Vec<Value>)], seed: u64) -> Vec<Case> {
    let levels = tag_levels();
    let mut cases = Vec::new();
    let mut splits = Vec::new();
    let mut prefix: Option<Value> = None;
    for (layer, vectors) in layers {
        for v in vectors {
            let vec = Vector::new(v);
            vector_cases(layer, &vec, &levels, &mut cases, &mut splits);
            if vec.id == "stream.packets.mixed" {
                prefix = Some(v.clone());
            }
        }
    }
    if let (Some(p), Some((_, streams))) = (prefix, layers.iter().find(|(l, _)| l == "stream")) {
        for v in streams {
            if let Some(c) = coalesce(&p, &Vector::new(v), &levels) {
                cases.push(c);
            }
        }
    }
    cases.extend(splits);
    cases.extend(random_cases(seed, &levels));
    cases
}

fn vector_cases(
    layer: &str,
    vec: &Vector<'_>,
    levels: &BTreeMap<String, Level>,
    cases: &mut Vec<Case>,
    splits: &mut Vec<Case>,
) {
    let id = format!("codec.{}", vec.id);
    let encode = vec.v["encode"].as_bool() == Some(true);
    let expected = &vec.v["expected"];
    let input = vec.v["input"].as_str().unwrap_or("");
    match layer {
        "header" | "packet" => {
            let op = if layer == "header" {
                "decode_header"
            } else {
                "decode_packet"
            };
            let p = probe(op, vec.pick(&["input", "max_payload"]), vec.accept());
            cases.push(vec.case(id, "codec", vec![p], levels));
            if encode {
                let (op, fields, output) = if layer == "header" {
                    (
                        "encode_header",
                        json!({ "header": expected }),
                        input.to_owned(),
                    )
                } else {
                    let rest = expected["rest"].as_str().unwrap_or("");
                    let out = input[..input.len() - rest.len()].to_owned();
                    (
                        "encode_packet",
                        json!({ "header": expected["header"], "payload": expected["payload"] }),
                        out,
                    )
                };
                let p = probe(op, fields, vec![json!({ "output": output })]);
                splits.push(vec.case(format!("codec.encode.{}", vec.id), "codec", vec![p], levels));
            }
        }
        "control" => {
            let p = probe("decode_control", vec.pick(&["kind", "input"]), vec.accept());
            cases.push(vec.case(id, "codec", vec![p], levels));
            if encode {
                let fields = json!({ "kind": vec.v["kind"], "fields": expected });
                let p = probe("encode_control", fields, vec![json!({ "output": input })]);
                splits.push(vec.case(format!("codec.encode.{}", vec.id), "codec", vec![p], levels));
            }
        }
        "stream" => stream_cases(vec, levels, cases, splits),
        "compression" => {
            let p = probe(
                "decompress",
                vec.pick(&["codec", "limits", "input"]),
                vec.accept(),
            );
            cases.push(vec.case(id, "endpoint", vec![p], levels));
        }
        "connection" => {
            let p = probe("connection", vec.pick(&["config", "steps"]), vec.accept());
            // spec §15: forwarding (§7.3) belongs to the proxy level, so a transcript
            // whose endpoint under test is a proxy runs only on testees claiming it
            let claim = if vec.v["config"]["role"] == "proxy" {
                "proxy"
            } else {
                "endpoint"
            };
            cases.push(vec.case(id, claim, vec![p], levels));
        }
        _ => {}
    }
}

fn stream_fields(v: &Value, chunks: Vec<String>) -> Value {
    let mut f = json!({ "preface": v["preface"], "chunks": chunks });
    if let Some(m) = v.get("max_payload") {
        f["max_payload"] = m.clone();
    }
    f
}

fn stream_cases(
    vec: &Vector<'_>,
    levels: &BTreeMap<String, Level>,
    cases: &mut Vec<Case>,
    splits: &mut Vec<Case>,
) {
    let chunks: Vec<String> = vec.v["chunks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let p = probe("decode_stream", stream_fields(vec.v, chunks), vec.accept());
    cases.push(vec.case(format!("codec.{}", vec.id), "codec", vec![p], levels));
    if vec.id.starts_with("stream.split.") {
        return; // these already spell the splits out
    }
    let input = unhex(vec.v["input"].as_str().unwrap_or("")).unwrap_or_default();
    // spec §12.2 [[err.split-invariant]]: every two-way split, then one byte per read
    let every = (0..=input.len())
        .map(|cut| {
            let chunks = vec![hex(&input[..cut]), hex(&input[cut..])];
            probe("decode_stream", stream_fields(vec.v, chunks), vec.accept())
        })
        .collect();
    let mut split_tags = vec.tags.clone();
    for t in ["layer.split", "err.split-invariant"] {
        if !split_tags.iter().any(|x| x == t) {
            split_tags.push(t.to_owned());
        }
    }
    let mut c = vec.case(
        format!("codec.split.{}.every", vec.id),
        "codec",
        every,
        levels,
    );
    c.tags = split_tags.clone();
    splits.push(c);
    let bytewise = input.chunks(1).map(hex).collect();
    let p = probe(
        "decode_stream",
        stream_fields(vec.v, bytewise),
        vec.accept(),
    );
    let mut c = vec.case(
        format!("codec.split.{}.bytewise", vec.id),
        "codec",
        vec![p],
        levels,
    );
    c.tags = split_tags;
    splits.push(c);
}

/// `stream.packets.mixed` followed by another preface-less stream vector: the packets
/// of both, and the second one's end or error, its offset shifted.
fn coalesce(prefix: &Value, vec: &Vector<'_>, levels: &BTreeMap<String, Level>) -> Option<Case> {
    if vec.v["preface"] != false
        || vec.id.starts_with("stream.split.")
        || vec.v.get("max_payload").is_some()
    {
        return None;
    }
    let p_in = prefix["input"].as_str()?;
    let p_len = (p_in.len() / 2) as u64;
    let p_packets = prefix["expected"]["packets"].as_array()?;
    let shift = |e: &Value| {
        let mut e = e.clone();
        let mut packets = p_packets.clone();
        packets.extend(e["packets"].as_array().cloned().unwrap_or_default());
        e["packets"] = json!(packets);
        if let Some(off) = e.get("offset").and_then(Value::as_u64) {
            e["offset"] = json!(off + p_len);
        }
        e
    };
    let accept = vec.accept().iter().map(shift).collect();
    let mut chunks: Vec<Value> = prefix["chunks"].as_array()?.clone();
    chunks.extend(vec.v["chunks"].as_array()?.iter().cloned());
    let fields = json!({ "preface": false, "chunks": chunks });
    let mut c = vec.case(
        format!("codec.coalesce.{}", vec.id),
        "codec",
        vec![probe("decode_stream", fields, accept)],
        levels,
    );
    c.description = format!("stream.packets.mixed, then: {}", c.description);
    Some(c)
}

/// A random valid packet: its bytes (built here, not with the crate's encoder) and its
/// decoded form.
pub(crate) fn random_packet(rng: &mut Rng) -> (Vec<u8>, Value) {
    let kind = [0u8, 0, 0, 1, 2, 3, 4, 5, 6][rng.below(9) as usize];
    let payload: Vec<u8> = match kind {
        0 => (0..rng.below(40)).map(|_| rng.byte()).collect(),
        1 => unhex("01010200000500000364ffff0004000000000400004000000000ea60").unwrap_or_default(),
        2 => (0..16).map(|_| rng.byte()).collect(),
        3 => (0..20).map(|_| rng.byte()).collect(),
        4 => {
            let mut p = vec![0, rng.below(18) as u8];
            p.extend((0..8).map(|_| rng.byte()));
            p.extend((0..rng.below(20)).map(|_| b'a' + rng.below(26) as u8));
            p
        }
        5 => {
            let mut p: Vec<u8> = (0..8).map(|_| rng.byte()).collect();
            p[3] |= 1; // never both zero (§5.6)
            p
        }
        _ => {
            let mut p = vec![0x01, rng.below(7) as u8, 0x10, 0, 0, 1, 0, 7, 1, 2];
            p.extend((0..rng.below(12)).map(|_| b'a' + rng.below(26) as u8));
            p
        }
    };
    let routed = kind == 0 || kind == 6;
    let codec = if kind == 0 { rng.below(3) as u8 } else { 0 };
    let never = kind == 0 && codec == 0 && rng.below(4) == 0;
    let hints = rng.below(4) as u8;
    let source = (routed && rng.below(3) == 0).then(|| rng.below(0xFFFF) as u16);
    let (node, service, channel) = if routed {
        (rng.below(0x10000) as u16, rng.byte(), rng.byte())
    } else {
        (0, 0, 0)
    };
    let len = payload.len() as u16;
    let mut b = vec![0x10 | kind, (codec << 4) | hints];
    if source.is_some() {
        b[1] |= 0x80;
    }
    if never {
        b[1] |= 0x40;
    }
    b.extend(len.to_be_bytes());
    b.extend(node.to_be_bytes());
    b.extend([service, channel]);
    if let Some(s) = source {
        b.extend(s.to_be_bytes());
    }
    let kind_name = ["DATA", "HELLO", "PING", "PONG", "GOAWAY", "CREDIT", "ERROR"][kind as usize];
    let codec_name = ["none", "snappy", "zlib"][codec as usize];
    let header = json!({
        "header_len": if source.is_some() { 10 } else { 8 }, "version": 1,
        "kind": kind_name,
        "never_compress": never, "codec": codec_name,
        "hints": hints, "length": len, "node": node, "service": service, "channel": channel,
        "source": source,
    });
    let form = json!({ "header": header, "payload": hex(&payload) });
    b.extend(payload);
    (b, form)
}

/// Splits `input` into 1..=5 random reads, some possibly empty.
pub(crate) fn random_chunks(rng: &mut Rng, input: &[u8]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = (0..rng.below(5))
        .map(|_| rng.below(input.len() as u64 + 1) as usize)
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for c in cuts {
        chunks.push(input[at..c].to_vec());
        at = c;
    }
    chunks.push(input[at..].to_vec());
    chunks
}

fn random_case(
    id: String,
    tags: &[&str],
    description: &str,
    probes: Vec<Probe>,
    levels: &BTreeMap<String, Level>,
) -> Case {
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    Case {
        id,
        section: "12.2".into(),
        level: level_of(&tags, levels),
        tags,
        claim: "codec",
        description: description.into(),
        probes,
    }
}

/// Seeded extras: random valid streams (random reads), packets with trailing bytes, and
/// encode round trips.
fn random_cases(seed: u64, levels: &BTreeMap<String, Level>) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let mut cases = Vec::new();
    for i in 0..24 {
        let n = 1 + rng.below(6);
        let mut input = Vec::new();
        let mut packets = Vec::new();
        for _ in 0..n {
            let (b, form) = random_packet(&mut rng);
            input.extend(b);
            packets.push(form);
        }
        let chunks: Vec<String> = random_chunks(&mut rng, &input)
            .iter()
            .map(|c| hex(c))
            .collect();
        let accept = vec![json!({ "packets": packets, "status": "complete" })];
        let p = probe(
            "decode_stream",
            json!({ "preface": false, "chunks": chunks }),
            accept,
        );
        let desc = "random valid packets back to back, in random reads";
        cases.push(random_case(
            format!("codec.random.stream.{i:03}"),
            &["layer.split", "err.split-invariant"],
            desc,
            vec![p],
            levels,
        ));
    }
    for i in 0..24 {
        let (b, form) = random_packet(&mut rng);
        let rest: Vec<u8> = (0..rng.below(6)).map(|_| rng.byte()).collect();
        let mut input = b.clone();
        input.extend(&rest);
        let mut expected = form.clone();
        expected["rest"] = json!(hex(&rest));
        let p = probe(
            "decode_packet",
            json!({ "input": hex(&input) }),
            vec![expected],
        );
        let mut c = random_case(
            format!("codec.random.packet.{i:03}"),
            &["hdr.hint"],
            "a random valid packet followed by other bytes",
            vec![p],
            levels,
        );
        c.section = "4".into();
        cases.push(c);
        let fields = json!({ "header": form["header"], "payload": form["payload"] });
        let p = probe("encode_packet", fields, vec![json!({ "output": hex(&b) })]);
        let mut c = random_case(
            format!("codec.random.encode.{i:03}"),
            &["hdr.hint"],
            "encoding a random packet gives its bytes",
            vec![p],
            levels,
        );
        c.section = "4".into();
        cases.push(c);
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_levels_follow_the_keywords() {
        let l = tag_levels();
        assert_eq!(l.get("hdr.kind"), Some(&Level::Must));
        assert_eq!(l.get("preface.check"), Some(&Level::Must));
        assert_eq!(l.get("hello.peer-id"), Some(&Level::Should));
    }
}

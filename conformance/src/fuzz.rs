//! Differential fuzzing: seeded inputs, valid and mutated, sent to both the testee and
//! the reference; every disagreement is minimised and reported.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cases::{builtin_vectors, random_chunks, random_packet};
use super::forms::{hex, unhex};
use super::fuzz_transcript::{difference, normalise, transcript, with_expect_sent};
use super::minimize::{class, shrink_bytes};
use super::protocol::{Call, Reply, Testee};
use super::reference::Reference;
use super::Rng;

/// How long and how to fuzz.
///
/// ```
/// let o = fleetwire_conformance::FuzzOptions { seconds: 1.0, seed: 7, ..Default::default() };
/// assert_eq!(o.max_disagreements, 10);
/// ```
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// Wall-clock budget.
    pub seconds: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop after this many inputs (for reproducible runs regardless of speed).
    pub max_iterations: Option<u64>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Stop after this many distinct disagreements.
    pub max_disagreements: usize,
}

impl Default for FuzzOptions {
    fn default() -> FuzzOptions {
        FuzzOptions {
            seconds: 10.0,
            seed: 0,
            max_iterations: None,
            timeout: Duration::from_secs(5),
            max_disagreements: 10,
        }
    }
}

/// One input on which the testee and the reference disagree, minimised.
///
/// ```
/// let d = fleetwire_conformance::Disagreement::default();
/// assert!(d.op.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Disagreement {
    /// The operation.
    pub op: String,
    /// The minimised request fields.
    pub fields: Value,
    /// The reference's answer on them.
    pub reference: Value,
    /// The testee's answer on them.
    pub testee: Value,
    /// The iteration that found it (replay with the same seed).
    pub iteration: u64,
}

/// The outcome of [`fuzz`].
///
/// ```
/// let r = fleetwire_conformance::FuzzReport::default();
/// assert!(r.disagreements.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    /// Inputs tried.
    pub iterations: u64,
    /// Distinct disagreements (by operation and outcome classes).
    pub disagreements: Vec<Disagreement>,
    /// Inputs skipped because the testee answered `unsupported`.
    pub unsupported: u64,
    /// Inputs per operation, and the time spent on them (testee and reference).
    pub per_op: BTreeMap<String, OpStats>,
}

/// How many inputs of one operation a run tried, and how long they took.
///
/// ```
/// let s = fleetwire_conformance::OpStats { count: 10, seconds: 0.5, unsupported: 0 };
/// assert_eq!(s.rate(), 20.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpStats {
    /// Inputs tried.
    pub count: u64,
    /// Wall-clock seconds spent asking the testee and the reference (minimising included).
    pub seconds: f64,
    /// Inputs the testee answered `unsupported`.
    pub unsupported: u64,
}

impl OpStats {
    /// Inputs per second (0 when no time was spent).
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::OpStats::default().rate(), 0.0);
    /// ```
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.count as f64 / self.seconds
        } else {
            0.0
        }
    }
}

struct Seeds {
    headers: Vec<Vec<u8>>,
    controls: Vec<(String, Vec<u8>)>,
    compressed: Vec<Value>,
}

fn seeds() -> Seeds {
    let mut s = Seeds {
        headers: Vec::new(),
        controls: Vec::new(),
        compressed: Vec::new(),
    };
    for (layer, vectors) in builtin_vectors() {
        for v in vectors {
            let input = v["input"].as_str().and_then(unhex).unwrap_or_default();
            match layer.as_str() {
                "header" | "packet" | "stream" if !input.is_empty() => s.headers.push(input),
                "control" => s
                    .controls
                    .push((v["kind"].as_str().unwrap_or("PING").to_owned(), input)),
                "compression" => s.compressed.push(v),
                _ => {}
            }
        }
    }
    s
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        let len = b.len() as u64;
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                b[i] = rng.byte();
            }
            2 => {
                let i = rng.below(len + 1) as usize;
                b.insert(i, rng.byte());
            }
            3 if len > 0 => {
                b.remove(rng.below(len) as usize);
            }
            4 => b.truncate(rng.below(len + 1) as usize),
            5 if len > 1 => {
                // header byte 1: the flag bits are where most rules live
                b[1] ^= 1 << rng.below(8);
            }
            _ => {}
        }
    }
    b
}

fn generate(rng: &mut Rng, seeds: &Seeds) -> (String, Value) {
    let pick = |rng: &mut Rng, v: &[Vec<u8>]| v[rng.below(v.len() as u64) as usize].clone();
    match rng.below(5) {
        0 | 1 => {
            let base = if rng.below(2) == 0 {
                random_packet(rng).0
            } else {
                pick(rng, &seeds.headers)
            };
            let input = if rng.below(5) == 0 {
                base
            } else {
                mutate(rng, base)
            };
            let op = if rng.below(2) == 0 {
                "decode_header"
            } else {
                "decode_packet"
            };
            let mut f = json!({ "input": hex(&input) });
            if rng.below(3) == 0 {
                f["max_payload"] = json!(1024 + rng.below(64));
            }
            (op.into(), f)
        }
        2 => {
            let mut input = Vec::new();
            for _ in 0..=rng.below(4) {
                input.extend(random_packet(rng).0);
            }
            let input = if rng.below(4) == 0 {
                input
            } else {
                mutate(rng, input)
            };
            let chunks: Vec<String> = random_chunks(rng, &input).iter().map(|c| hex(c)).collect();
            (
                "decode_stream".into(),
                json!({ "preface": false, "chunks": chunks }),
            )
        }
        3 => {
            let (kind, input) =
                seeds.controls[rng.below(seeds.controls.len() as u64) as usize].clone();
            let input = if rng.below(4) == 0 {
                input
            } else {
                mutate(rng, input)
            };
            (
                "decode_control".into(),
                json!({ "kind": kind, "input": hex(&input) }),
            )
        }
        _ => {
            let v = &seeds.compressed[rng.below(seeds.compressed.len() as u64) as usize];
            let input = v["input"].as_str().and_then(unhex).unwrap_or_default();
            let input = if rng.below(4) == 0 {
                input
            } else {
                mutate(rng, input)
            };
            let f = json!({ "codec": v["codec"], "limits": v["limits"], "input": hex(&input) });
            ("decompress".into(), f)
        }
    }
}

/// An `encode_header`, `encode_packet` or `encode_control` request from a valid form.
fn generate_encode(rng: &mut Rng, seeds: &Seeds, reference: &mut Reference) -> (String, Value) {
    if rng.below(3) == 0 {
        let (kind, input) = &seeds.controls[rng.below(seeds.controls.len() as u64) as usize];
        let f = json!({ "kind": kind, "input": hex(input) });
        if let Reply::Result(form) = reference.call("decode_control", &f) {
            if form.get("error").is_none() {
                return (
                    "encode_control".into(),
                    json!({ "kind": kind, "fields": form }),
                );
            }
        }
    }
    let (_, form) = random_packet(rng);
    if rng.below(2) == 0 {
        (
            "encode_packet".into(),
            json!({ "header": form["header"], "payload": form["payload"] }),
        )
    } else {
        ("encode_header".into(), json!({ "header": form["header"] }))
    }
}

/// Outcomes the spec leaves open (so two conforming implementations may differ).
fn latitude(op: &str, a: &Value, b: &Value) -> bool {
    let code = |v: &Value| v.get("code").and_then(Value::as_u64);
    match op {
        // §9.3: malformed data that also exceeds the cap may get either code
        "decompress" => {
            let open = [0x103, 0x104, 0x105];
            let (ca, cb) = (code(a), code(b));
            matches!((ca, cb), (Some(x), Some(y)) if open.contains(&x) && open.contains(&y) && (x == 0x103 || y == 0x103))
        }
        _ => false,
    }
}

fn ask(testee: &mut dyn Testee, op: &str, f: &Value, timeout: Duration) -> Option<Value> {
    match testee.call("fuzz", op, f, timeout) {
        Call::Reply(Reply::Result(v)) => Some(v),
        Call::Reply(Reply::Unsupported) => None,
        Call::Reply(Reply::Error(m)) => Some(json!({ "error": "(testee error)", "message": m })),
        Call::Timeout => Some(json!({ "error": "(timeout)" })),
        Call::Crashed(m) => Some(json!({ "error": "(crash)", "message": m })),
    }
}

/// Fuzzes `testee` against the reference for `opts.seconds` (or `max_iterations`).
///
/// ```
/// use fleetwire_conformance::{fuzz, FuzzOptions, InProcess, Mutant};
/// let opts = FuzzOptions { seconds: 5.0, seed: 1, max_iterations: Some(3000), ..Default::default() };
/// let r = fuzz(&mut InProcess::new(Some(Mutant::AcceptsReservedBits)), &opts).unwrap();
/// assert!(!r.disagreements.is_empty());
/// let clean = fuzz(&mut InProcess::reference(), &FuzzOptions { max_iterations: Some(200), ..opts }).unwrap();
/// assert!(clean.disagreements.is_empty());
/// ```
pub fn fuzz(testee: &mut dyn Testee, opts: &FuzzOptions) -> Result<FuzzReport, String> {
    let info = testee.info()?;
    let offers = |op: &str| info.operations.iter().any(|o| o == op);
    let stateful = offers("connection");
    let encodes = ["encode_header", "encode_packet", "encode_control"]
        .iter()
        .any(|o| offers(o));
    let wire = info.protocol >= 2;
    let seeds = seeds();
    let mut rng = Rng::new(opts.seed);
    let mut reference = Reference::new(None);
    let mut report = FuzzReport::default();
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < opts.seconds
        && opts.max_iterations.is_none_or(|m| report.iterations < m)
        && report.disagreements.len() < opts.max_disagreements
    {
        report.iterations += 1;
        let began = Instant::now();
        let (op, fields) = match rng.below(8) {
            0 | 1 if stateful => {
                let t = transcript(&mut rng, &mutate);
                let t = if wire {
                    let mut t = t;
                    t["wire"] = json!(true);
                    t
                } else {
                    with_expect_sent(&t)
                };
                ("connection".to_owned(), t)
            }
            2 if encodes => generate_encode(&mut rng, &seeds, &mut reference),
            _ => generate(&mut rng, &seeds),
        };
        let found = check(testee, &mut reference, &op, &fields, opts, &mut seen);
        let stats = report.per_op.entry(op.clone()).or_default();
        stats.count += 1;
        stats.seconds += began.elapsed().as_secs_f64();
        match found {
            Found::Unsupported => {
                stats.unsupported += 1;
                report.unsupported += 1;
            }
            Found::Nothing => {}
            Found::New(fields) => {
                let reference_answer = match reference.call(&op, &fields) {
                    Reply::Result(v) => v,
                    _ => Value::Null,
                };
                let testee_answer = ask(testee, &op, &fields, opts.timeout).unwrap_or(Value::Null);
                report.disagreements.push(Disagreement {
                    op,
                    fields,
                    reference: reference_answer,
                    testee: testee_answer,
                    iteration: report.iterations,
                });
            }
        }
    }
    Ok(report)
}

enum Found {
    Nothing,
    Unsupported,
    /// A disagreement of a kind not seen before: its minimised request.
    New(Value),
}

/// The signature of a disagreement (`None`: the answers agree up to the spec's latitude).
fn signature(op: &str, want: &Value, got: &Value) -> Option<(String, String, String)> {
    if op == "connection" {
        let (w, g) = (normalise(want), normalise(got));
        return (w != g).then(|| (op.to_owned(), difference(&w, &g), String::new()));
    }
    (got != want && !latitude(op, want, got)).then(|| (op.to_owned(), class(want), class(got)))
}

fn check(
    testee: &mut dyn Testee,
    reference: &mut Reference,
    op: &str,
    fields: &Value,
    opts: &FuzzOptions,
    seen: &mut BTreeSet<(String, String, String)>,
) -> Found {
    let Reply::Result(want) = reference.call(op, fields) else {
        return Found::Nothing;
    };
    let Some(got) = ask(testee, op, fields, opts.timeout) else {
        return Found::Unsupported;
    };
    let Some(sig) = signature(op, &want, &got) else {
        return Found::Nothing;
    };
    if !seen.insert(sig.clone()) {
        return Found::Nothing;
    }
    Found::New(if op == "connection" {
        shrink_steps(testee, reference, fields, &sig, opts.timeout)
    } else if fields.get("input").is_some() || fields.get("chunks").is_some() {
        shrink(testee, reference, op, fields, &sig, opts.timeout)
    } else {
        fields.clone()
    })
}

/// Drops the steps of a transcript one at a time while the same disagreement remains.
fn shrink_steps(
    testee: &mut dyn Testee,
    reference: &mut Reference,
    fields: &Value,
    sig: &(String, String, String),
    timeout: Duration,
) -> Value {
    let mut steps = fields["steps"].as_array().cloned().unwrap_or_default();
    let (mut i, mut calls) = (0, 0);
    while i < steps.len() && calls < 300 {
        calls += 1;
        let mut trial = steps.clone();
        trial.remove(i);
        let mut f = fields.clone();
        f["steps"] = json!(trial);
        let same = match (
            reference.call("connection", &f),
            ask(testee, "connection", &f, timeout),
        ) {
            (Reply::Result(want), Some(got)) => {
                signature("connection", &want, &got).as_ref() == Some(sig)
            }
            _ => false,
        };
        if same {
            steps = trial;
        } else {
            i += 1;
        }
    }
    let mut f = fields.clone();
    f["steps"] = json!(steps);
    f
}

fn shrink(
    testee: &mut dyn Testee,
    reference: &mut Reference,
    op: &str,
    fields: &Value,
    sig: &(String, String, String),
    timeout: Duration,
) -> Value {
    let key = if fields.get("chunks").is_some() {
        "chunks"
    } else {
        "input"
    };
    let bytes: Vec<u8> = if key == "chunks" {
        fields["chunks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().and_then(unhex))
            .flatten()
            .collect()
    } else {
        fields["input"].as_str().and_then(unhex).unwrap_or_default()
    };
    let make = |b: &[u8]| {
        let mut f = fields.clone();
        if key == "chunks" {
            f["chunks"] = json!([hex(b)]);
        } else {
            f["input"] = json!(hex(b));
        }
        f
    };
    let mut calls = 0;
    let mut same = |b: &[u8]| {
        calls += 1;
        if calls > 400 {
            return false;
        }
        let f = make(b);
        let Reply::Result(want) = reference.call(op, &f) else {
            return false;
        };
        let Some(got) = ask(testee, op, &f, timeout) else {
            return false;
        };
        got != want
            && !latitude(op, &want, &got)
            && (class(&want), class(&got)) == (sig.1.clone(), sig.2.clone())
    };
    // a stream that only fails split keeps its reads
    if key == "chunks" && !same(&bytes) {
        return fields.clone();
    }
    make(&shrink_bytes(bytes, false, &mut same))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwire::compress::Compressor;
    use fleetwire::Codec;

    const PREFACE: &str = "8946574952450d0a";

    fn credit(p: u32, b: u32) -> String {
        format!("1500000800000000{p:08x}{b:08x}")
    }

    fn data(codec: u8, payload: &[u8]) -> String {
        format!(
            "10{:02x}{:04x}00010102{}",
            codec << 4,
            payload.len(),
            hex(payload)
        )
    }

    fn result(steps: &[String]) -> Value {
        let wire: Vec<Value> = steps
            .iter()
            .map(|s| json!({ "sent": s, "closed": false }))
            .collect();
        json!({ "observations": [], "outcome": { "state": "open" }, "wire": wire })
    }

    #[test]
    fn fuzz_compares_a_close_by_its_code_and_delivered_not_by_who_started_it() {
        let closed = |code: &str, by_peer: bool, delivered: &str| {
            json!({ "outcome": { "state": "closed" }, "observations": [{ "events": [
                { "event": "closed", "code": code, "by_peer": by_peer, "reason": "x", "delivered": delivered }
            ] }] })
        };
        // by_peer is informational (GOAWAYs that crossed, a lost stream)
        let a = normalise(&closed("NO_ERROR", true, "3"));
        assert_eq!(a, normalise(&closed("NO_ERROR", false, "3")));
        // the code and delivered are compared
        for other in [closed("TIMEOUT", true, "3"), closed("NO_ERROR", true, "4")] {
            let b = normalise(&other);
            assert_ne!(a, b);
            assert_eq!(difference(&a, &b), "events");
        }
    }

    #[test]
    fn fuzz_normalises_only_what_the_spec_leaves_free() {
        let plain = vec![b'a'; 300];
        let mut zlib = Vec::new();
        Compressor::default()
            .compress(Codec::Zlib, &plain, &mut zlib)
            .unwrap();
        let ping = |id: u8| format!("1200001000000000{}", hex(&[id; 16]));
        // credit batched differently, a keepalive PING more, the payload compressed
        let a = result(&[
            format!("{PREFACE}{}{}", credit(1, 0), credit(1, 100)),
            data(0, &plain),
        ]);
        let b = result(&[
            format!("{PREFACE}{}{}", credit(2, 100), ping(7)),
            data(2, &zlib),
        ]);
        assert_eq!(normalise(&a), normalise(&b));
        // credit granted later (not yet at the end of the transcript): left free too
        let later = result(&[format!("{PREFACE}{}", credit(1, 0)), data(0, &plain)]);
        assert_eq!(normalise(&a), normalise(&later));
        // a CREDIT 0/0, other bytes delivered, a packet missing: all seen
        for other in [
            result(&[
                format!("{PREFACE}{}{}", credit(2, 100), credit(0, 0)),
                data(0, &plain),
            ]),
            result(&[format!("{PREFACE}{}", credit(2, 100)), data(0, &plain[1..])]),
            result(&[format!("{PREFACE}{}", credit(2, 100)), String::new()]),
        ] {
            let (x, y) = (normalise(&a), normalise(&other));
            assert_ne!(x, y);
            assert_ne!(difference(&x, &y), "");
        }
    }
}

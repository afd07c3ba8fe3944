//! Differential fuzzing: seeded inputs, valid and mutated, sent to both the testee and
//! the reference; every disagreement is minimised and reported.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cases::{builtin_vectors, random_chunks, random_packet};
use super::forms::{hex, unhex};
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
    testee.info()?;
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
        let (op, fields) = generate(&mut rng, &seeds);
        let Reply::Result(want) = reference.call(&op, &fields) else {
            continue;
        };
        let Some(got) = ask(testee, &op, &fields, opts.timeout) else {
            report.unsupported += 1;
            continue;
        };
        if got == want || latitude(&op, &want, &got) {
            continue;
        }
        let sig = (op.clone(), class(&want), class(&got));
        if !seen.insert(sig.clone()) {
            continue;
        }
        let small = shrink(testee, &mut reference, &op, &fields, &sig, opts.timeout);
        let reference_answer = match reference.call(&op, &small) {
            Reply::Result(v) => v,
            _ => Value::Null,
        };
        let testee_answer = ask(testee, &op, &small, opts.timeout).unwrap_or(Value::Null);
        report.disagreements.push(Disagreement {
            op,
            fields: small,
            reference: reference_answer,
            testee: testee_answer,
            iteration: report.iterations,
        });
    }
    Ok(report)
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

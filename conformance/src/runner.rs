//! Runs cases against a testee and grades the answers.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use std::collections::BTreeMap;

use super::cases::{tag_levels, Case, Level, Probe};
use super::forms::unhex;
use super::minimize::minimise;
use super::monitor::{Monitor, MonitorOptions, Violation};
use super::protocol::{Call, Reply, Testee, TesteeInfo};
use crate::vectors::verify_connection::{match_list, observe_sent, with_decompressed};
use fleetwire::control::Role;

/// The grade of one case (Autobahn's vocabulary, plus UNSUPPORTED for what the testee
/// declined).
///
/// ```
/// use fleetwire_conformance::Verdict;
/// assert_eq!(Verdict::NonStrict.to_string(), "NON-STRICT");
/// assert!(Verdict::Failed.is_failure() && !Verdict::NonStrict.is_failure());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Every answer conformed.
    Ok,
    /// A MUST was violated.
    Failed,
    /// A SHOULD was not followed.
    NonStrict,
    /// A MAY was handled differently from the reference; no judgement.
    Informational,
    /// The testee does not claim the case's level or implement its operation, or
    /// answered `unsupported`.
    Unsupported,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::Failed,
        Verdict::NonStrict,
        Verdict::Informational,
        Verdict::Unsupported,
    ];

    /// Whether this verdict fails a run (unless expected).
    ///
    /// ```
    /// assert!(!fleetwire_conformance::Verdict::Unsupported.is_failure());
    /// ```
    pub fn is_failure(self) -> bool {
        self == Verdict::Failed
    }

    /// The verdict's name in reports.
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::Verdict::Ok.name(), "OK");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Failed => "FAILED",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Informational => "INFORMATIONAL",
            Verdict::Unsupported => "UNSUPPORTED",
        }
    }

    /// The `summary` key of the JSON report.
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::Verdict::NonStrict.key(), "non_strict");
    /// ```
    pub fn key(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Failed => "failed",
            Verdict::NonStrict => "non_strict",
            Verdict::Informational => "informational",
            Verdict::Unsupported => "unsupported",
        }
    }

    /// The verdict for a deviation from a requirement of `level`.
    ///
    /// ```
    /// use fleetwire_conformance::{Level, Verdict};
    /// assert_eq!(Verdict::for_deviation(Level::May), Verdict::Informational);
    /// ```
    pub fn for_deviation(level: Level) -> Verdict {
        match level {
            Level::Must => Verdict::Failed,
            Level::Should => Verdict::NonStrict,
            Level::May => Verdict::Informational,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a case did not pass, with what it takes to reproduce it.
///
/// ```
/// let f = fleetwire_conformance::Failure::default();
/// assert!(f.minimised.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    /// One line: what went wrong.
    pub message: String,
    /// Index of the failing probe within the case.
    pub probe: usize,
    /// The operation and request fields sent.
    pub request: Value,
    /// The conforming answers.
    pub expected: Value,
    /// What the testee answered (or `null` after a crash or timeout).
    pub actual: Value,
    /// The input bytes, hex, for operations that take bytes.
    pub input_hex: Option<String>,
    /// The smallest request found that still fails the same way.
    pub minimised: Option<Value>,
}

/// The outcome of one case.
///
/// ```
/// use fleetwire_conformance::{CaseResult, Verdict};
/// let r = CaseResult { id: "codec.x".into(), verdict: Verdict::Ok, ..CaseResult::default() };
/// assert!(r.failure.is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Spec section.
    pub section: String,
    /// Requirement tags.
    pub tags: Vec<String>,
    /// Requirement level.
    pub level: Level,
    /// Conformance level required.
    pub claim: String,
    /// The grade.
    pub verdict: Verdict,
    /// The reason from the expected-failures file, when the failure is expected.
    pub expected_failure: Option<String>,
    /// Details when the verdict is not OK or UNSUPPORTED.
    pub failure: Option<Failure>,
    /// Wall time of the case.
    pub duration: Duration,
}

impl Default for CaseResult {
    fn default() -> CaseResult {
        CaseResult {
            id: String::new(),
            section: String::new(),
            tags: Vec::new(),
            level: Level::Must,
            claim: "codec".into(),
            verdict: Verdict::Ok,
            expected_failure: None,
            failure: None,
            duration: Duration::ZERO,
        }
    }
}

/// How to run.
///
/// ```
/// let o = fleetwire_conformance::RunOptions::default();
/// assert_eq!(o.timeout.as_millis(), 5000);
/// assert!(o.minimise);
/// ```
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Minimise failing inputs.
    pub minimise: bool,
    /// Draw progress on stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            timeout: Duration::from_millis(5000),
            minimise: true,
            progress: false,
        }
    }
}

/// Runs `cases` against `testee` in order.
///
/// ```
/// use fleetwire_conformance::{cases, run_cases, InProcess, RunOptions, Verdict};
/// let all = cases(1);
/// let some: Vec<_> = all.into_iter().filter(|c| c.id.starts_with("codec.header.kind")).collect();
/// let results = run_cases(&mut InProcess::reference(), &some, &RunOptions::default()).unwrap();
/// assert!(results.iter().all(|r| r.verdict == Verdict::Ok));
/// ```
pub fn run_cases(
    testee: &mut dyn Testee,
    cases: &[Case],
    opts: &RunOptions,
) -> Result<Vec<CaseResult>, String> {
    let info = testee.info()?;
    let mut progress = Progress::new(opts.progress, cases.len());
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let r = run_case(testee, &info, case, opts);
        progress.tick(&r);
        results.push(r);
    }
    progress.finish();
    Ok(results)
}

fn run_case(
    testee: &mut dyn Testee,
    info: &TesteeInfo,
    case: &Case,
    opts: &RunOptions,
) -> CaseResult {
    let start = Instant::now();
    let mut result = CaseResult {
        id: case.id.clone(),
        section: case.section.clone(),
        tags: case.tags.clone(),
        level: case.level,
        claim: case.claim.to_owned(),
        ..CaseResult::default()
    };
    let declined = !info.claims(case.claim) || case.probes.iter().any(|p| !info.supports(&p.op));
    if declined {
        result.verdict = Verdict::Unsupported;
        return result;
    }
    for (i, probe) in case.probes.iter().enumerate() {
        match check_probe(testee, info, &case.id, probe, opts.timeout) {
            Checked::Pass => {}
            Checked::Unsupported => {
                result.verdict = Verdict::Unsupported;
                break;
            }
            Checked::Fail(message, actual, level) => {
                let mut f = Failure {
                    message,
                    probe: i,
                    request: json!({ "op": probe.op, "fields": probe.fields }),
                    expected: json!(probe.accept),
                    actual,
                    input_hex: input_hex(probe),
                    minimised: None,
                };
                let level = level.unwrap_or(case.level);
                if opts.minimise && level == case.level {
                    f.minimised = minimise(testee, &case.id, probe, opts.timeout);
                }
                result.verdict = Verdict::for_deviation(level);
                result.failure = Some(f);
                if level == Level::Must {
                    break;
                }
            }
        }
    }
    result.duration = start.elapsed();
    result
}

/// The input bytes of a probe as one hex string (streams: the chunks concatenated).
pub(crate) fn input_hex(p: &Probe) -> Option<String> {
    if let Some(i) = p.fields.get("input").and_then(Value::as_str) {
        return Some(i.to_owned());
    }
    let chunks = p.fields.get("chunks")?.as_array()?;
    Some(chunks.iter().filter_map(Value::as_str).collect())
}

enum Checked {
    Pass,
    Unsupported,
    /// What went wrong, the testee's answer, and the level of the requirement broken
    /// when it is not the case's own (a sender-monitor finding, a missing GOAWAY).
    Fail(String, Value, Option<Level>),
}

fn check_probe(
    testee: &mut dyn Testee,
    info: &TesteeInfo,
    case: &str,
    probe: &Probe,
    timeout: Duration,
) -> Checked {
    let wire = probe.op == "connection" && info.protocol >= 2;
    let mut fields = probe.fields.clone();
    if wire {
        fields["wire"] = json!(true);
    }
    let result = match testee.call(case, &probe.op, &fields, timeout) {
        Call::Reply(Reply::Result(v)) => v,
        Call::Reply(Reply::Unsupported) => return Checked::Unsupported,
        Call::Reply(Reply::Error(m)) => {
            return Checked::Fail(format!("testee error: {m}"), Value::Null, None)
        }
        Call::Timeout => {
            return Checked::Fail(
                format!(
                    "no answer within {} ms (testee restarted)",
                    timeout.as_millis()
                ),
                Value::Null,
                None,
            )
        }
        Call::Crashed(m) => {
            return Checked::Fail(
                format!("testee crashed: {m} (restarted)"),
                Value::Null,
                None,
            )
        }
    };
    if probe.op == "connection" {
        return match check_transcript(probe, &result, wire) {
            Ok(None) => Checked::Pass,
            Ok(Some((m, level))) => Checked::Fail(m, result, Some(level)),
            Err(m) => Checked::Fail(m, result, None),
        };
    }
    if probe.accepts(&result) {
        Checked::Pass
    } else {
        Checked::Fail(format!("got {result}"), result, None)
    }
}

/// The observations of a version 2 testee's `sent` steps, rebuilt from its raw bytes
/// with the reference codec, and the sender monitor's findings on every step.
struct Wire {
    sent: Vec<Vec<Value>>,
    violations: Vec<(usize, Violation)>,
}

fn monitor_options(config: &Value) -> MonitorOptions {
    let role = match config["role"].as_str() {
        Some("client") => Some(Role::Client),
        Some("node") => Some(Role::Node),
        Some("proxy") => Some(Role::Proxy),
        _ => None,
    };
    let peer_trusted = config["trust_source"] == true
        || config["trust_server_as_proxy"] == true
        || config["authenticated"]["role"] == "proxy";
    MonitorOptions {
        role,
        peer_trusted,
        synchronous: true,
    }
}

fn replay_wire(probe: &Probe, result: &Value) -> Result<Wire, String> {
    let empty = Vec::new();
    let steps = probe.fields["steps"].as_array().unwrap_or(&empty);
    let wire = result["wire"]
        .as_array()
        .ok_or("protocol 2: the result has no `wire` array")?;
    if wire.len() != steps.len() {
        return Err(format!(
            "protocol 2: `wire` has {} entries for {} steps",
            wire.len(),
            steps.len()
        ));
    }
    let mut monitor = Monitor::new(monitor_options(&probe.fields["config"]));
    let mut out = Vec::new();
    let (mut parsed, mut preface_seen) = (0, false);
    let mut now = Duration::ZERO;
    let mut sent = Vec::new();
    let mut violations = Vec::new();
    let mut decode_error = None;
    for (i, (s, w)) in steps.iter().zip(wire).enumerate() {
        if let Some(t) = s.get("at_ms").and_then(Value::as_u64) {
            now = Duration::from_millis(t);
        }
        if let Some(bytes) = s.get("recv").and_then(Value::as_str).and_then(unhex) {
            monitor.received(now, &bytes);
        }
        if s.get("eof").is_some() {
            monitor.input_ended();
        }
        if ["expect_events", "expect_closed", "expect_open"]
            .iter()
            .any(|k| s.get(*k).is_some())
        {
            monitor.consumed();
        }
        let bytes = w["sent"]
            .as_str()
            .and_then(unhex)
            .ok_or_else(|| format!("steps[{i}]: `wire` entry without hex `sent`"))?;
        if w["closed"] == true {
            monitor.closed();
        }
        monitor.sent(now, &bytes);
        violations.extend(monitor.take_violations().into_iter().map(|v| (i, v)));
        out.extend_from_slice(&bytes);
        if s.get("expect_sent").is_some() {
            let list = match observe_sent(&out, &mut parsed, &mut preface_seen) {
                Ok(l) => l,
                Err(e) => {
                    decode_error.get_or_insert(format!("steps[{i}]: {e}"));
                    Vec::new()
                }
            };
            sent.push(list);
        }
    }
    if let (Some(e), true) = (decode_error, violations.is_empty()) {
        return Err(e);
    }
    Ok(Wire { sent, violations })
}

/// The level at which a connection error closed without its GOAWAY is graded: that of
/// §6.4 `[[close.on-error-goaway]]` in `levels` (a SHOULD in the spec). A spec without
/// that tag has the GOAWAY in the MUST that closes the connection: MUST.
fn missing_error_goaway_level(levels: &BTreeMap<String, Level>) -> Level {
    levels
        .get("close.on-error-goaway")
        .copied()
        .unwrap_or(Level::Must)
}

/// [`missing_error_goaway_level`] in the spec in force, for the codec runner and the
/// live peer.
pub(crate) fn error_goaway_level() -> Level {
    missing_error_goaway_level(&tag_levels())
}

/// Whether `patterns` match `sent` once a GOAWAY with an error code is left out of the
/// patterns, and `sent` has no GOAWAY: a connection error closed without GOAWAY, graded
/// at the level of §6.4 `[[close.on-error-goaway]]` ([`error_goaway_level`]).
fn matches_without_error_goaway(patterns: &[Value], sent: &[Value]) -> bool {
    let is_error_goaway =
        |p: &Value| p["kind"] == "GOAWAY" && p.get("code").is_some_and(|c| c != 0);
    patterns.iter().any(is_error_goaway) && !sent.iter().any(|p| p["kind"] == "GOAWAY") && {
        let rest: Vec<Value> = patterns
            .iter()
            .filter(|p| !is_error_goaway(p))
            .cloned()
            .collect();
        match_list("", &rest, sent).is_ok()
    }
}

/// Checks a `connection` result: each observation against its `expect_*` step, then the
/// outcome, then (protocol 2) what the sender monitor found. `Err` fails the case at
/// its level; `Ok(Some)` is a finding of another level (NON-STRICT for a SHOULD).
/// Steps are named by their index in the vector's `steps` array.
pub(crate) fn check_transcript(
    probe: &Probe,
    result: &Value,
    wire: bool,
) -> Result<Option<(String, Level)>, String> {
    let replay = if wire {
        Some(replay_wire(probe, result)?)
    } else {
        None
    };
    check_steps(probe, result, replay.as_ref()).map_err(|e| match &replay {
        Some(w) if !w.violations.is_empty() => {
            let all: Vec<String> = w
                .violations
                .iter()
                .map(|(i, v)| format!("steps[{i}]: {v}"))
                .collect();
            format!("{e}; sender monitor: {}", all.join("; "))
        }
        _ => e,
    })
}

fn check_steps(
    probe: &Probe,
    result: &Value,
    replay: Option<&Wire>,
) -> Result<Option<(String, Level)>, String> {
    let empty = Vec::new();
    let steps = probe.fields["steps"].as_array().unwrap_or(&empty);
    let observations = result["observations"]
        .as_array()
        .ok_or("no observations array")?;
    let mut rebuilt = replay.map(|w| w.sent.iter());
    let mut finding: Option<(String, Level)> = None;
    let mut obs = observations.iter();
    for (i, s) in steps.iter().enumerate() {
        let is_expect = [
            "expect_sent",
            "expect_events",
            "expect_closed",
            "expect_open",
        ]
        .iter()
        .any(|k| s.get(*k).is_some());
        if !is_expect {
            continue;
        }
        let o = obs
            .next()
            .ok_or_else(|| format!("steps[{i}]: no observation"))?;
        if let Some(p) = s.get("expect_sent").and_then(Value::as_array) {
            let ignore: Vec<&str> = s["ignore"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let items: Vec<Value> = match rebuilt.as_mut() {
                Some(r) => r.next().cloned().unwrap_or_default(),
                None => o["sent"]
                    .as_array()
                    .ok_or_else(|| format!("steps[{i}]: observation without `sent`"))?
                    .clone(),
            };
            let sent: Vec<Value> = items
                .into_iter()
                .filter(|p| !p["kind"].as_str().is_some_and(|k| ignore.contains(&k)))
                .map(|mut p| {
                    with_decompressed(&mut p);
                    p
                })
                .collect();
            if let Err(e) = match_list(&format!("steps[{i}]: sent"), p, &sent) {
                let level = error_goaway_level();
                if level == Level::Must || !matches_without_error_goaway(p, &sent) {
                    return Err(e);
                }
                finding.get_or_insert((
                    format!("[[close.on-error-goaway]] ({level}) steps[{i}]: closed on a connection error without sending GOAWAY"),
                    level,
                ));
            }
        } else if let Some(p) = s.get("expect_events").and_then(Value::as_array) {
            let events = o["events"]
                .as_array()
                .ok_or_else(|| format!("steps[{i}]: observation without `events`"))?;
            match_list(&format!("steps[{i}]: events"), p, events)?;
        } else if let Some(code) = s.get("expect_closed") {
            if &o["closed"] != code {
                return Err(format!(
                    "steps[{i}]: expected closed with {code}, got {}",
                    o["closed"]
                ));
            }
        } else if o["open"] != true {
            return Err(format!("steps[{i}]: expected open, got {o}"));
        }
    }
    if !probe.accepts(&result["outcome"]) {
        return Err(format!(
            "outcome {}, expected {}",
            result["outcome"], probe.accept[0]
        ));
    }
    if let Some(w) = replay {
        let worst = w.violations.iter().max_by_key(|(_, v)| v.level);
        if let Some((i, v)) = worst {
            let all: Vec<String> = w
                .violations
                .iter()
                .map(|(i, v)| format!("steps[{i}]: {v}"))
                .collect();
            let message = format!("sender monitor: {}", all.join("; "));
            let _ = i;
            if v.level == Level::Must {
                return Ok(Some((message, Level::Must)));
            }
            if finding.is_none() {
                finding = Some((message, v.level));
            }
        }
    }
    Ok(finding)
}

struct Progress {
    tty: bool,
    enabled: bool,
    total: usize,
    done: usize,
    failed: usize,
    group: String,
    group_count: usize,
    group_failed: usize,
}

fn group_of(id: &str) -> String {
    id.split('.').take(2).collect::<Vec<_>>().join(".")
}

impl Progress {
    fn new(enabled: bool, total: usize) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            enabled,
            total,
            done: 0,
            failed: 0,
            group: String::new(),
            group_count: 0,
            group_failed: 0,
        }
    }

    fn tick(&mut self, r: &CaseResult) {
        self.done += 1;
        let bad = !matches!(r.verdict, Verdict::Ok | Verdict::Unsupported);
        self.failed += usize::from(bad);
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = width * self.done / self.total.max(1);
            let _ = write!(
                err,
                "\r\x1b[K[{}{}] {}/{} {} failed  {}",
                "=".repeat(filled),
                " ".repeat(width - filled),
                self.done,
                self.total,
                self.failed,
                r.id.chars().take(50).collect::<String>()
            );
            if bad {
                let _ = writeln!(err, "\r\x1b[K{} {}", r.verdict, r.id);
            }
            return;
        }
        let group = group_of(&r.id);
        if group != self.group {
            self.flush_group(&mut err);
            self.group = group;
        }
        self.group_count += 1;
        self.group_failed += usize::from(bad);
        if bad {
            let _ = writeln!(err, "{} {}", r.verdict, r.id);
        }
    }

    fn flush_group(&mut self, err: &mut impl Write) {
        if self.group_count > 0 {
            let _ = writeln!(
                err,
                "{}: {} cases, {} not OK ({}/{})",
                self.group,
                self.group_count,
                self.group_failed,
                self.done - 1,
                self.total
            );
        }
        self.group_count = 0;
        self.group_failed = 0;
    }

    fn finish(&mut self) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = writeln!(err, "\r\x1b[K{} cases run", self.done);
        } else {
            self.done += 1;
            self.flush_group(&mut err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // trace: close.on-error-goaway
    #[test]
    fn a_missing_error_goaway_is_graded_at_its_tags_level() {
        // the spec makes it a SHOULD
        assert_eq!(error_goaway_level(), Level::Should);
        // graded from the tag, not from the shape of the transcript
        let mut levels = BTreeMap::new();
        assert_eq!(missing_error_goaway_level(&levels), Level::Must);
        levels.insert("close.on-error-goaway".to_owned(), Level::Must);
        assert_eq!(missing_error_goaway_level(&levels), Level::Must);
        levels.insert("close.on-error-goaway".to_owned(), Level::May);
        assert_eq!(missing_error_goaway_level(&levels), Level::May);
    }

    #[test]
    fn only_a_missing_error_goaway_is_forgiven() {
        let expected = vec![json!({"kind": "GOAWAY", "code": 14})];
        assert!(matches_without_error_goaway(&expected, &[]));
        // a GOAWAY NO_ERROR is not an error's GOAWAY
        let answer = vec![json!({"kind": "GOAWAY", "code": 0})];
        assert!(!matches_without_error_goaway(&answer, &[]));
        // another GOAWAY sent is a wrong code, not a missing one
        let other = vec![json!({"kind": "GOAWAY", "code": 1})];
        assert!(!matches_without_error_goaway(&expected, &other));
    }
}

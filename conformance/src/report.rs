//! Reports: the summary table, JSON, JUnit XML (Jenkins/Ant `junit-10.xsd`) and the HTML
//! matrix of cases × implementations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::expected::Stale;
use super::runner::{CaseResult, Verdict};

/// Counts of a run.
///
/// ```
/// use fleetwire_conformance::Summary;
/// let s = Summary::default();
/// assert_eq!(s.total, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases run.
    pub total: usize,
    /// Per verdict, in [`Verdict::ALL`] order.
    pub by_verdict: BTreeMap<Verdict, usize>,
    /// Failures listed in the expected-failures file.
    pub expected_failures: usize,
    /// FAILED cases not listed there.
    pub unexpected_failures: usize,
    /// Stale expected-failure entries.
    pub stale: usize,
}

/// A finished run.
///
/// ```
/// use fleetwire_conformance::Report;
/// let r = Report::default();
/// assert_eq!(r.exit_code(), 0);
/// assert!(r.to_junit().starts_with("<?xml"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Implementation name from the testee's hello.
    pub implementation: String,
    /// Implementation version.
    pub version: String,
    /// The seed of every random choice.
    pub seed: u64,
    /// The command that replays one case, without `--case`: it is appended.
    pub replay: String,
    /// Case results in run order.
    pub results: Vec<CaseResult>,
    /// Stale expected-failure entries.
    pub stale: Vec<Stale>,
    /// Wall time of the run.
    pub duration: Duration,
    /// Testee restarts after crashes or timeouts.
    pub restarts: usize,
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

impl Report {
    /// Counts by verdict, expected and unexpected failures.
    ///
    /// ```
    /// use fleetwire_conformance::{CaseResult, Report, Verdict};
    /// let r = Report { results: vec![CaseResult { verdict: Verdict::Failed, ..Default::default() }], ..Default::default() };
    /// assert_eq!(r.summary().unexpected_failures, 1);
    /// assert_eq!(r.exit_code(), 1);
    /// ```
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            total: self.results.len(),
            stale: self.stale.len(),
            ..Summary::default()
        };
        for v in Verdict::ALL {
            s.by_verdict.insert(v, 0);
        }
        for r in &self.results {
            *s.by_verdict.entry(r.verdict).or_default() += 1;
            if r.expected_failure.is_some() {
                s.expected_failures += 1;
            } else if r.verdict.is_failure() {
                s.unexpected_failures += 1;
            }
        }
        s
    }

    /// 0 when nothing failed unexpectedly and no expectation is stale, else 1.
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::Report::default().exit_code(), 0);
    /// ```
    pub fn exit_code(&self) -> u8 {
        let s = self.summary();
        u8::from(s.unexpected_failures > 0 || s.stale > 0)
    }

    /// The one-line command that replays case `id`.
    ///
    /// ```
    /// let r = fleetwire_conformance::Report { replay: "fleetwire conformance".into(), seed: 9, ..Default::default() };
    /// assert_eq!(r.replay_command("codec.x"), "fleetwire conformance --case codec.x --seed 9");
    /// ```
    pub fn replay_command(&self, id: &str) -> String {
        format!("{} --case {id} --seed {}", self.replay, self.seed)
    }

    /// The human summary: failures with their reproduction, then a table per group.
    ///
    /// ```
    /// let text = fleetwire_conformance::Report::default().summary_table();
    /// assert!(text.contains("total"));
    /// ```
    pub fn summary_table(&self) -> String {
        let mut out = String::new();
        for r in self.results.iter().filter(|r| r.failure.is_some()) {
            self.write_failure(&mut out, r);
        }
        let mut groups: BTreeMap<String, BTreeMap<Verdict, usize>> = BTreeMap::new();
        for r in &self.results {
            let g = r.id.split('.').take(2).collect::<Vec<_>>().join(".");
            *groups.entry(g).or_default().entry(r.verdict).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "\n{:<22} {:>6} {:>6} {:>10} {:>13} {:>11}",
            "group", "OK", "FAILED", "NON-STRICT", "INFORMATIONAL", "UNSUPPORTED"
        );
        let row = |out: &mut String, name: &str, c: &BTreeMap<Verdict, usize>| {
            let n = |v| c.get(&v).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{:<22} {:>6} {:>6} {:>10} {:>13} {:>11}",
                name,
                n(Verdict::Ok),
                n(Verdict::Failed),
                n(Verdict::NonStrict),
                n(Verdict::Informational),
                n(Verdict::Unsupported)
            );
        };
        for (g, c) in &groups {
            row(&mut out, g, c);
        }
        let s = self.summary();
        row(&mut out, "total", &s.by_verdict);
        let _ = writeln!(
            out,
            "\n{}: {} cases in {:.2} s (seed {}): {} unexpected failures, {} expected failures, {} stale expectations, {} testee restarts",
            self.implementation, s.total, self.duration.as_secs_f64(), self.seed,
            s.unexpected_failures, s.expected_failures, s.stale, self.restarts
        );
        for st in &self.stale {
            let _ = writeln!(out, "{st}");
        }
        out
    }

    fn write_failure(&self, out: &mut String, r: &CaseResult) {
        let Some(f) = &r.failure else { return };
        let tag = if r.expected_failure.is_some() {
            " (expected)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} {}{} [§{} {}]",
            r.verdict,
            r.id,
            tag,
            r.section,
            r.tags.join(" ")
        );
        let _ = writeln!(out, "  {}", f.message.chars().take(600).collect::<String>());
        if let Some(h) = &f.input_hex {
            let _ = writeln!(out, "  input: {}", if h.is_empty() { "(empty)" } else { h });
        }
        if let Some(m) = &f.minimised {
            let _ = writeln!(
                out,
                "  minimised: {} (reference: {}, testee: {})",
                m["fields"], m["reference"], m["testee"]
            );
        }
        let _ = writeln!(out, "  replay: {}", self.replay_command(&r.id));
    }

    /// The JSON report: `implementation`, `summary` (a count per verdict and of expected,
    /// unexpected and stale), `cases` (id, section, tags, level, verdict, duration_ms and,
    /// for failures, expected vs actual).
    ///
    /// ```
    /// let v = fleetwire_conformance::Report::default().to_json();
    /// assert_eq!(v["summary"]["failed"], 0);
    /// assert!(v["cases"].is_array());
    /// ```
    pub fn to_json(&self) -> Value {
        let s = self.summary();
        let mut summary = json!({
            "total": s.total, "expected_failures": s.expected_failures,
            "unexpected_failures": s.unexpected_failures, "stale_expectations": s.stale,
            "duration_ms": self.duration.as_millis() as u64, "restarts": self.restarts,
        });
        for (v, n) in &s.by_verdict {
            summary[v.key()] = json!(n);
        }
        let cases: Vec<Value> = self.results.iter().map(|r| self.case_json(r)).collect();
        json!({
            "format": "fleetwire-conformance-report", "format_version": 1,
            "implementation": { "name": self.implementation, "version": self.version },
            "seed": self.seed,
            "summary": summary,
            "stale": self.stale.iter().map(|s| json!({"glob": s.entry.glob, "line": s.entry.line, "why": s.why})).collect::<Vec<_>>(),
            "cases": cases,
        })
    }

    fn case_json(&self, r: &CaseResult) -> Value {
        let mut c = json!({
            "id": r.id, "section": r.section, "tags": r.tags, "level": r.level.to_string(),
            "claim": r.claim, "verdict": r.verdict.name(),
            "duration_ms": (r.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        });
        if let Some(reason) = &r.expected_failure {
            c["expected_failure"] = json!(reason);
        }
        if let Some(f) = &r.failure {
            c["message"] = json!(f.message);
            c["request"] = f.request.clone();
            c["expected"] = f.expected.clone();
            c["actual"] = f.actual.clone();
            c["input_hex"] = json!(f.input_hex);
            c["minimised"] = f.minimised.clone().unwrap_or(Value::Null);
            c["replay"] = json!(self.replay_command(&r.id));
        }
        c
    }

    /// JUnit XML valid against `conformance/schema/junit-10.xsd`: one `testsuite` per
    /// case group; FAILED is a `failure`; NON-STRICT and INFORMATIONAL pass with a
    /// `system-out` note; UNSUPPORTED and expected failures are `skipped`.
    ///
    /// ```
    /// let xml = fleetwire_conformance::Report::default().to_junit();
    /// assert!(xml.contains("<testsuites"));
    /// ```
    pub fn to_junit(&self) -> String {
        let mut groups: BTreeMap<String, Vec<&CaseResult>> = BTreeMap::new();
        for r in &self.results {
            let g = r.id.split('.').take(2).collect::<Vec<_>>().join(".");
            groups.entry(g).or_default().push(r);
        }
        let s = self.summary();
        let secs = |d: Duration| format!("{:.6}", d.as_secs_f64());
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures = s.unexpected_failures;
        let _ = writeln!(x, "<testsuites name=\"fleetwire conformance: {}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{}\">",
            xml_escape(&self.implementation), s.total, failures, secs(self.duration));
        for (i, (g, rs)) in groups.iter().enumerate() {
            let fails = rs
                .iter()
                .filter(|r| r.verdict.is_failure() && r.expected_failure.is_none())
                .count();
            let skipped = rs
                .iter()
                .filter(|r| r.verdict == Verdict::Unsupported || r.expected_failure.is_some())
                .count();
            let time: Duration = rs.iter().map(|r| r.duration).sum();
            let _ = writeln!(x, "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\" id=\"{i}\" package=\"fleetwire.conformance\">",
                xml_escape(g), rs.len(), secs(time));
            let _ = writeln!(x, "    <properties>\n      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"implementation.version\" value=\"{}\"/>\n    </properties>", self.seed, xml_escape(&self.version));
            for r in rs {
                self.junit_case(&mut x, r, g);
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }

    fn junit_case(&self, x: &mut String, r: &CaseResult, group: &str) {
        let _ = write!(
            x,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\"",
            xml_escape(&r.id),
            xml_escape(group),
            r.duration.as_secs_f64()
        );
        let detail = |f: &super::runner::Failure| {
            format!(
                "{}\ninput: {}\nexpected: {}\nactual: {}\nreplay: {}",
                f.message,
                f.input_hex.as_deref().unwrap_or("-"),
                f.expected,
                f.actual,
                self.replay_command(&r.id)
            )
        };
        match (&r.failure, &r.expected_failure) {
            (_, Some(reason)) => {
                let _ = write!(
                    x,
                    ">\n      <skipped message=\"expected failure: {}\"/>\n    </testcase>\n",
                    xml_escape(reason)
                );
            }
            (Some(f), None) if r.verdict.is_failure() => {
                let _ = write!(
                    x,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                    r.verdict,
                    xml_escape(&f.message.chars().take(300).collect::<String>()),
                    xml_escape(&detail(f))
                );
            }
            (Some(f), None) => {
                let _ = write!(
                    x,
                    ">\n      <system-out>{}: {}</system-out>\n    </testcase>\n",
                    r.verdict,
                    xml_escape(&detail(f))
                );
            }
            (None, None) if r.verdict == Verdict::Unsupported => {
                x.push_str(
                    ">\n      <skipped message=\"unsupported by the testee\"/>\n    </testcase>\n",
                );
            }
            (None, None) => x.push_str("/>\n"),
        }
    }
}

/// An HTML matrix of cases × implementations from JSON reports ([`Report::to_json`]).
///
/// ```
/// let a = fleetwire_conformance::Report { implementation: "a".into(), ..Default::default() }.to_json();
/// let html = fleetwire_conformance::html_matrix(&[a]);
/// assert!(html.contains("<table") && html.contains(">a<"));
/// ```
pub fn html_matrix(reports: &[Value]) -> String {
    let mut ids: Vec<String> = Vec::new();
    let mut cells: Vec<BTreeMap<String, &Value>> = Vec::new();
    for r in reports {
        let mut m = BTreeMap::new();
        for c in r["cases"].as_array().into_iter().flatten() {
            let id = c["id"].as_str().unwrap_or("?").to_owned();
            if !m.contains_key(&id) && !ids.contains(&id) {
                ids.push(id.clone());
            }
            m.insert(id, c);
        }
        cells.push(m);
    }
    let mut h = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fleetwire conformance</title>\n<style>\nbody{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}\n.OK{background:#9f9}.FAILED{background:#f88}.NON-STRICT{background:#fd8}.INFORMATIONAL{background:#aef}.UNSUPPORTED{background:#ddd}.expected{outline:2px dashed #a00}\n</style></head><body>\n<h1>Fleetwire conformance matrix</h1>\n<table>\n<tr><th>case</th><th>§</th><th>level</th>");
    for r in reports {
        let _ = write!(
            h,
            "<th>{}<br><small>{}</small></th>",
            xml_escape(r["implementation"]["name"].as_str().unwrap_or("?")),
            xml_escape(r["implementation"]["version"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</tr>\n<tr><td>summary</td><td></td><td></td>");
    for r in reports {
        let s = &r["summary"];
        let _ = write!(
            h,
            "<td>{} OK, {} failed, {} non-strict, {} unsupported</td>",
            s["ok"], s["failed"], s["non_strict"], s["unsupported"]
        );
    }
    h.push_str("</tr>\n");
    for id in &ids {
        let first = cells.iter().find_map(|m| m.get(id));
        let section = first.and_then(|c| c["section"].as_str()).unwrap_or("");
        let level = first.and_then(|c| c["level"].as_str()).unwrap_or("");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            xml_escape(id),
            xml_escape(section),
            level
        );
        for m in &cells {
            match m.get(id) {
                Some(c) => {
                    let v = c["verdict"].as_str().unwrap_or("?");
                    let exp = if c.get("expected_failure").is_some() {
                        " expected"
                    } else {
                        ""
                    };
                    let title = c.get("message").and_then(Value::as_str).unwrap_or("");
                    let _ = write!(
                        h,
                        "<td class=\"{v}{exp}\" title=\"{}\">{v}</td>",
                        xml_escape(title)
                    );
                }
                None => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

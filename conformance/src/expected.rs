//! Expected failures: a file of `GLOB  reason` lines. Failures it matches are reported
//! apart from new ones and do not fail the run; an entry that matches no case, or whose
//! cases all pass now, is stale and fails the run (like protobuf's failure lists).

use super::runner::{CaseResult, Verdict};
use super::Glob;

/// One line of the file.
///
/// ```
/// use fleetwire_conformance::Expectation;
/// let e = Expectation { glob: "codec.header.*".into(), reason: "not yet".into(), line: 3 };
/// assert_eq!(e.line, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Glob over case ids.
    pub glob: String,
    /// Why the failure is expected.
    pub reason: String,
    /// Line number in the file (1-based).
    pub line: usize,
}

/// An entry that no longer earns its place.
///
/// ```
/// use fleetwire_conformance::{Expectation, Stale};
/// let s = Stale { entry: Expectation { glob: "x".into(), reason: String::new(), line: 1 },
///     why: "matches no case".into() };
/// assert!(s.to_string().contains("line 1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The entry.
    pub entry: Expectation,
    /// "matches no case" or "its cases pass now".
    pub why: String,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stale expected failure, line {}: {} ({})",
            self.entry.line, self.entry.glob, self.why
        )
    }
}

/// A parsed expected-failures file.
///
/// ```
/// use fleetwire_conformance::ExpectedFile;
/// let f = ExpectedFile::parse("# comment\ncodec.header.*   reserved bits not checked yet\n");
/// assert_eq!(f.entries.len(), 1);
/// assert_eq!(f.entries[0].reason, "reserved bits not checked yet");
/// assert_eq!(f.reason_for("codec.header.reserved.both"), Some("reserved bits not checked yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedFile {
    /// The entries, in file order.
    pub entries: Vec<Expectation>,
}

impl ExpectedFile {
    /// Parses the file: blank lines and `#` comments are skipped; the first word is the
    /// glob, the rest of the line the reason.
    ///
    /// ```
    /// let f = fleetwire_conformance::ExpectedFile::parse("a.b\n");
    /// assert_eq!(f.entries[0].reason, "");
    /// ```
    pub fn parse(text: &str) -> ExpectedFile {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (glob, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                Some(Expectation {
                    glob: glob.to_owned(),
                    reason: reason.trim().to_owned(),
                    line: i + 1,
                })
            })
            .collect();
        ExpectedFile { entries }
    }

    /// The reason of the first entry matching `id`.
    ///
    /// ```
    /// let f = fleetwire_conformance::ExpectedFile::parse("x.* r\n");
    /// assert_eq!(f.reason_for("y"), None);
    /// ```
    pub fn reason_for(&self, id: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| Glob::new(&e.glob).matches(id))
            .map(|e| e.reason.as_str())
    }

    /// Marks the expected failures among `results` and returns the stale entries.
    /// `all_ids` are every case id (selected or not): an entry matching only cases that
    /// were not selected is neither used nor stale.
    ///
    /// ```
    /// use fleetwire_conformance::{CaseResult, ExpectedFile, Verdict};
    /// let f = ExpectedFile::parse("codec.a  known\ncodec.gone  old\n");
    /// let mut results = vec![CaseResult { id: "codec.a".into(), verdict: Verdict::Failed, ..Default::default() }];
    /// let stale = f.apply(&mut results, &["codec.a".to_string()]);
    /// assert_eq!(results[0].expected_failure.as_deref(), Some("known"));
    /// assert_eq!(stale.len(), 1); // codec.gone matches no case
    /// ```
    pub fn apply(&self, results: &mut [CaseResult], all_ids: &[String]) -> Vec<Stale> {
        for r in results.iter_mut() {
            if is_deviation(r.verdict) {
                r.expected_failure = self.reason_for(&r.id).map(str::to_owned);
            }
        }
        let mut stale = Vec::new();
        for e in &self.entries {
            let g = Glob::new(&e.glob);
            if !all_ids.iter().any(|id| g.matches(id)) {
                stale.push(Stale {
                    entry: e.clone(),
                    why: "matches no case".into(),
                });
                continue;
            }
            let selected: Vec<&CaseResult> = results.iter().filter(|r| g.matches(&r.id)).collect();
            if !selected.is_empty() && !selected.iter().any(|r| is_deviation(r.verdict)) {
                stale.push(Stale {
                    entry: e.clone(),
                    why: "its cases pass now".into(),
                });
            }
        }
        stale
    }

    /// The file rewritten for `results`: entries that still match a failure are kept,
    /// stale ones dropped, and each unexpected failure added by id.
    ///
    /// ```
    /// use fleetwire_conformance::{CaseResult, ExpectedFile, Verdict};
    /// let f = ExpectedFile::default();
    /// let results = vec![CaseResult { id: "codec.b".into(), verdict: Verdict::Failed, ..Default::default() }];
    /// assert!(f.updated(&results).contains("codec.b"));
    /// ```
    pub fn updated(&self, results: &[CaseResult]) -> String {
        let mut out = String::from("# Expected conformance failures: GLOB  reason\n");
        for e in &self.entries {
            let g = Glob::new(&e.glob);
            if results
                .iter()
                .any(|r| is_deviation(r.verdict) && g.matches(&r.id))
            {
                out.push_str(&format!("{}  {}\n", e.glob, e.reason));
            }
        }
        for r in results {
            if is_deviation(r.verdict) && self.reason_for(&r.id).is_none() {
                let why = r.failure.as_ref().map_or("", |f| f.message.as_str());
                let why: String = why.chars().take(100).collect();
                out.push_str(&format!(
                    "{}  {} ({})\n",
                    r.id,
                    r.verdict,
                    why.replace('\n', " ")
                ));
            }
        }
        out
    }
}

fn is_deviation(v: Verdict) -> bool {
    matches!(
        v,
        Verdict::Failed | Verdict::NonStrict | Verdict::Informational
    )
}

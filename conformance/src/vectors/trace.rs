//! The traceability matrix (`spec/TRACEABILITY.md`): every normative sentence of the spec,
//! by its `[[tag]]`, with the vectors, conformance cases and tests that check it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Sections that name the requirement keywords without stating requirements: §1.1
/// defines them, §15 says how violations are graded. Their keywords need no tag.
const META_SECTIONS: &[&str] = &["1.1", "15"];

const MUST_WORDS: &[&str] = &["MUST", "SHALL", "REQUIRED"];
const SHOULD_WORDS: &[&str] = &["SHOULD", "RECOMMENDED"];

/// One tagged requirement of the spec and what checks it.
///
/// ```
/// use fleetwire_conformance::vectors::Requirement;
/// let r = Requirement { tag: "hdr.kind".into(), section: "4.3".into(), level: "MUST".into(),
///     text: "A receiver MUST ...".into(), ..Requirement::default() };
/// assert!(!r.is_covered());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirement {
    /// The `[[tag]]`, without brackets.
    pub tag: String,
    /// The section number, such as `4.3`.
    pub section: String,
    /// `MUST` (MUST, MUST NOT, SHALL, REQUIRED), `SHOULD` (SHOULD, SHOULD NOT,
    /// RECOMMENDED) or `RULE` (a tagged rule stated without a keyword; checked like MUST).
    pub level: String,
    /// The sentence(s) the tag closes, whitespace collapsed.
    pub text: String,
    /// Ids of the golden vectors that list this tag.
    pub vectors: Vec<String>,
    /// Ids of conformance cases that list this tag.
    pub cases: Vec<String>,
    /// Tests that declare the tag in a `// trace:` comment (`path::function`).
    pub tests: Vec<String>,
    /// The reason given in `traceability-pending.txt`, if the tag is listed there.
    pub pending: Option<String>,
    /// Recorded mutants that break this requirement, with the cases that kill them.
    pub mutants: Vec<MutantCoverage>,
    /// The reason given in `mutants-pending.txt` for having fewer than two mutants.
    pub mutants_pending: Option<String>,
}

/// A mutant (a deliberately faulty implementation), the tags it breaks and the cases
/// that kill it: one row of a recorded kill matrix.
///
/// ```
/// use fleetwire_conformance::vectors::MutantCoverage;
/// let m = MutantCoverage { set: "reference".into(), name: "pong-late".into(),
///     tags: vec!["ping.order".into()], kills: vec![] };
/// assert!(!m.is_killed());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutantCoverage {
    /// The mutant set: `reference`, `live` or `python`.
    pub set: String,
    /// The mutant's name.
    pub name: String,
    /// Requirement tags it breaks.
    pub tags: Vec<String>,
    /// Ids of the cases that kill it (FAILED or NON-STRICT).
    pub kills: Vec<String>,
}

impl MutantCoverage {
    /// Whether some case kills it.
    pub fn is_killed(&self) -> bool {
        !self.kills.is_empty()
    }
}

impl Requirement {
    /// Whether anything checks this requirement.
    ///
    /// ```
    /// let mut r = fleetwire_conformance::vectors::Requirement::default();
    /// r.tests.push("tests/x.rs::t".into());
    /// assert!(r.is_covered());
    /// ```
    pub fn is_covered(&self) -> bool {
        !(self.vectors.is_empty() && self.cases.is_empty() && self.tests.is_empty())
    }
}

/// A conformance case and the tags it checks: the hook for the conformance runner.
///
/// ```
/// use fleetwire_conformance::vectors::CaseCoverage;
/// let c = CaseCoverage { case_id: "endpoint.ping.answer".into(), tags: vec!["ping.answer".into()] };
/// assert_eq!(c.tags.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaseCoverage {
    /// Stable case id.
    pub case_id: String,
    /// Requirement tags the case checks.
    pub tags: Vec<String>,
}

/// Why the matrix could not be built at all (as opposed to a coverage problem, which is
/// reported in [`TraceReport::problems`]).
///
/// ```
/// use fleetwire_conformance::vectors::TraceError;
/// let e = TraceError::Vectors("header.json: not JSON".into());
/// assert!(e.to_string().contains("header.json"));
/// ```
#[derive(Debug)]
pub enum TraceError {
    /// A file could not be read.
    Io(PathBuf, io::Error),
    /// The vector files could not be read.
    Vectors(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TraceError::Vectors(e) => write!(f, "vectors: {e}"),
        }
    }
}

impl std::error::Error for TraceError {}

/// The traceability matrix and everything wrong with it.
///
/// ```no_run
/// use std::path::Path;
/// let report = fleetwire_conformance::vectors::trace(
///     Path::new("spec/fleetwire-v1.md"),
///     Path::new("vectors"),
///     &[Path::new("src"), Path::new("tests")],
/// )?;
/// report.write()?; // spec/TRACEABILITY.md
/// for problem in report.check() {
///     eprintln!("{problem}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceReport {
    /// Every tagged requirement, sorted by section, then tag.
    pub requirements: Vec<Requirement>,
    /// Untagged normative sentences, uncovered MUSTs that are not pending, stale pending
    /// entries and unknown tags; empty when the matrix is sound.
    pub problems: Vec<String>,
    /// Where the matrix is written: `TRACEABILITY.md` beside the spec.
    pub output: PathBuf,
    /// Every recorded mutant (empty when the matrix was built without them).
    pub mutants: Vec<MutantCoverage>,
    spec_name: String,
}

impl TraceReport {
    /// The matrix as Markdown (deterministic).
    ///
    /// ```
    /// let report = fleetwire_conformance::vectors::TraceReport::default();
    /// assert!(report.markdown().starts_with("# Traceability"));
    /// ```
    pub fn markdown(&self) -> String {
        render_markdown(self)
    }

    /// Writes [`markdown`](TraceReport::markdown) to [`output`](TraceReport::output).
    ///
    /// ```no_run
    /// # let report = fleetwire_conformance::vectors::TraceReport::default();
    /// report.write()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&self) -> io::Result<()> {
        fs::write(&self.output, self.markdown())
    }

    /// Every reason for `trace --check` to fail: the [`problems`](TraceReport::problems),
    /// plus an out-of-date or missing output file.
    ///
    /// ```no_run
    /// # let report = fleetwire_conformance::vectors::TraceReport::default();
    /// if !report.check().is_empty() {
    ///     std::process::exit(1);
    /// }
    /// ```
    pub fn check(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        match fs::read_to_string(&self.output) {
            Ok(text) if text == self.markdown() => {}
            Ok(_) => out.push(format!(
                "{} is out of date: run `fleetwire vectors trace`",
                self.output.display()
            )),
            Err(e) => out.push(format!("{}: {e}", self.output.display())),
        }
        out
    }
}

/// Builds the matrix from the spec, the vectors in `vectors_dir`, and `// trace:`
/// comments in Rust files under `roots_for_tests`.
///
/// `traceability-pending.txt` beside the spec lists MUSTs that cannot be checked yet
/// (`tag  reason` per line; `#` starts a comment).
///
/// ```no_run
/// use std::path::Path;
/// let report = fleetwire_conformance::vectors::trace(Path::new("spec/fleetwire-v1.md"), Path::new("vectors"), &[Path::new("tests")])?;
/// assert!(report.requirements.iter().any(|r| r.tag == "hdr.kind"));
/// # Ok::<(), fleetwire_conformance::vectors::TraceError>(())
/// ```
pub fn trace(
    spec: &Path,
    vectors_dir: &Path,
    roots_for_tests: &[&Path],
) -> Result<TraceReport, TraceError> {
    trace_with_cases(spec, vectors_dir, roots_for_tests, &[])
}

/// [`trace`], plus the tags checked by conformance cases.
///
/// ```no_run
/// use std::path::Path;
/// use fleetwire_conformance::vectors::{trace_with_cases, CaseCoverage};
/// let cases = [CaseCoverage { case_id: "endpoint.ping".into(), tags: vec!["ping.answer".into()] }];
/// let report = trace_with_cases(Path::new("spec/fleetwire-v1.md"), Path::new("vectors"), &[], &cases)?;
/// # Ok::<(), fleetwire_conformance::vectors::TraceError>(())
/// ```
pub fn trace_with_cases(
    spec: &Path,
    vectors_dir: &Path,
    roots_for_tests: &[&Path],
    cases: &[CaseCoverage],
) -> Result<TraceReport, TraceError> {
    trace_with_mutants(spec, vectors_dir, roots_for_tests, cases, None)
}

/// [`trace_with_cases`], plus the `tag → mutants → killing cases` matrix from the
/// `recorded` kill matrices, checked against the mutants the sources `declared`.
///
/// `mutants-pending.txt` beside the spec lists MUST and SHOULD tags that have fewer than
/// two mutants (`tag  reason` per line); any other such tag, a stale entry, a recorded
/// mutant that survived, and a record that disagrees with the declared mutants are
/// problems.
///
/// ```no_run
/// use std::path::Path;
/// use fleetwire_conformance::vectors::trace_with_mutants;
/// let root = Path::new(".");
/// let recorded = fleetwire_conformance::recorded_mutants(root).unwrap();
/// let declared = fleetwire_conformance::declared_mutants(root).unwrap();
/// let report = trace_with_mutants(Path::new("spec/fleetwire-v1.md"), Path::new("vectors"),
///     &[], &[], Some((&recorded, &declared)))?;
/// # Ok::<(), fleetwire_conformance::vectors::TraceError>(())
/// ```
pub fn trace_with_mutants(
    spec: &Path,
    vectors_dir: &Path,
    roots_for_tests: &[&Path],
    cases: &[CaseCoverage],
    mutants: Option<(&[MutantCoverage], &[MutantCoverage])>,
) -> Result<TraceReport, TraceError> {
    let text = fs::read_to_string(spec).map_err(|e| TraceError::Io(spec.into(), e))?;
    let (mut reqs, mut problems) = parse_spec(&text);
    let index: BTreeMap<String, usize> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.tag.clone(), i))
        .collect();
    let mut attach =
        |tag: &str, source: &str, pick: fn(&mut Requirement) -> &mut Vec<String>| match index
            .get(tag)
        {
            Some(&i) => pick(&mut reqs[i]).push(source.to_owned()),
            None => problems.push(format!("{source} names unknown tag [[{tag}]]")),
        };
    let vectors = super::vector_requirements(vectors_dir).map_err(TraceError::Vectors)?;
    for (id, tags) in &vectors {
        for tag in tags {
            attach(tag, id, |r| &mut r.vectors);
        }
    }
    for case in cases {
        for tag in &case.tags {
            attach(tag, &case.case_id, |r| &mut r.cases);
        }
    }
    let repo = spec
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    for (test, tags) in scan_tests(roots_for_tests, repo)? {
        for tag in tags {
            attach(&tag, &test, |r| &mut r.tests);
        }
    }
    let pending_path = spec.with_file_name("traceability-pending.txt");
    let pending = read_pending(&pending_path)?;
    apply_pending(&mut reqs, &pending, &mut problems);
    let mut recorded = Vec::new();
    if let Some((rec, declared)) = mutants {
        check_records(rec, declared, &mut problems);
        for m in rec {
            for tag in &m.tags {
                match index.get(tag.as_str()) {
                    Some(&i) => reqs[i].mutants.push(m.clone()),
                    None => problems.push(format!("mutant {} names unknown tag [[{tag}]]", m.name)),
                }
            }
        }
        let pending = read_pending(&spec.with_file_name("mutants-pending.txt"))?;
        apply_mutants_pending(&mut reqs, &pending, &mut problems);
        recorded = rec.to_vec();
    }
    for r in &mut reqs {
        r.vectors.sort();
        r.vectors.dedup();
        r.cases.sort();
        r.cases.dedup();
        r.tests.sort();
        r.tests.dedup();
        if r.level != "SHOULD" && !r.is_covered() && r.pending.is_none() {
            problems.push(format!(
                "{} [[{}]] (§{}) is checked by nothing",
                r.level, r.tag, r.section
            ));
        }
    }
    reqs.sort_by(|a, b| {
        section_key(&a.section)
            .cmp(&section_key(&b.section))
            .then(a.tag.cmp(&b.tag))
    });
    Ok(TraceReport {
        requirements: reqs,
        problems,
        output: spec.with_file_name("TRACEABILITY.md"),
        mutants: recorded,
        spec_name: spec
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

fn section_key(s: &str) -> Vec<u32> {
    s.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

/// The spec's tagged requirements, and problems (untagged normative text, duplicate tags).
fn parse_spec(text: &str) -> (Vec<Requirement>, Vec<String>) {
    let mut reqs: Vec<Requirement> = Vec::new();
    let mut problems = Vec::new();
    for (section, block) in blocks(text) {
        let mut rest = block.as_str();
        while let Some(open) = rest.find("[[") {
            let Some(close) = rest[open..].find("]]") else {
                break;
            };
            let tag = rest[open + 2..open + close].trim().to_owned();
            let before = rest[..open].trim_end().chars().next_back();
            if before.is_some_and(|c| c == '`' || c.is_alphanumeric()) {
                // a tag quoted as an example (`[[hdr.version]]`) or used as a reference
                // inside a sentence ("authenticated under [[tls.server-auth]]"): a tag
                // that closes a requirement follows the end of a sentence
                rest = &rest[open + close + 2..];
                continue;
            }
            let sentence = clean(&rest[..open]);
            if reqs.iter().any(|r| r.tag == tag) {
                problems.push(format!("§{section}: tag [[{tag}]] is used twice"));
            }
            reqs.push(Requirement {
                level: level(&sentence).to_owned(),
                tag,
                section: section.clone(),
                text: sentence,
                ..Requirement::default()
            });
            rest = &rest[open + close + 2..];
        }
        if !META_SECTIONS.contains(&section.as_str()) && level(rest) != "RULE" {
            problems.push(format!(
                "§{section}: normative text without a [[tag]]: \"{}\"",
                excerpt(&clean(rest), 120)
            ));
        }
    }
    (reqs, problems)
}

/// Paragraphs, list items and table rows with their section, outside code fences.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut section = String::from("0");
    let mut current = String::new();
    let mut fenced = false;
    let flush = |current: &mut String, section: &str, out: &mut Vec<(String, String)>| {
        if !current.trim().is_empty() {
            out.push((section.to_owned(), std::mem::take(current)));
        }
        current.clear();
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            fenced = !fenced;
            flush(&mut current, &section, &mut out);
            continue;
        }
        if fenced {
            continue;
        }
        if t.starts_with('#') {
            flush(&mut current, &section, &mut out);
            let title = t.trim_start_matches('#').trim();
            if let Some(num) = title
                .split_whitespace()
                .next()
                .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
            {
                section = num.trim_end_matches('.').to_owned();
            }
            continue;
        }
        let starts_item = t.starts_with("- ") || t.starts_with('|') || is_numbered(t);
        if t.is_empty() || starts_item {
            flush(&mut current, &section, &mut out);
        }
        current.push_str(t);
        current.push(' ');
    }
    flush(&mut current, &section, &mut out);
    out
}

fn is_numbered(t: &str) -> bool {
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(". ")
}

fn clean(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = s.trim_start_matches("- ");
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    let s = if digits > 0 && s[digits..].starts_with(". ") {
        &s[digits + 2..]
    } else {
        s
    };
    s.trim().to_owned()
}

fn has_word(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| {
        text.match_indices(w).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + w.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '"')
                && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

fn level(text: &str) -> &'static str {
    if has_word(text, MUST_WORDS) {
        "MUST"
    } else if has_word(text, SHOULD_WORDS) {
        "SHOULD"
    } else {
        "RULE"
    }
}

fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// `(test label, tags)` for every `// trace: a, b` comment in `.rs` files under `roots`
/// (tags separated by commas or whitespace: tags contain neither); the label names the
/// function the comment is in or above ([`traced_fn`]).
fn scan_tests(roots: &[&Path], repo: &Path) -> Result<Vec<(String, Vec<String>)>, TraceError> {
    let mut files = Vec::new();
    for root in roots {
        collect_rs(root, &mut files)?;
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).map_err(|e| TraceError::Io(file.clone(), e))?;
        let rel = file
            .strip_prefix(repo)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(list) = line.trim().strip_prefix("// trace:") else {
                continue;
            };
            let tags = list
                .split(|c: char| c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            let func = traced_fn(&lines, i);
            let label = match func {
                Some(f) => format!("{rel}::{f}"),
                None => format!("{rel}:{}", i + 1),
            };
            out.push((label, tags));
        }
    }
    Ok(out)
}

/// The function the `// trace:` comment on line `i` is about: the one it stands above
/// (only attributes, comments and blank lines between), else the one whose body it is
/// in (the nearest declaration before it, indented less).
fn traced_fn<'a>(lines: &[&'a str], i: usize) -> Option<&'a str> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let next = lines[i + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !(l.is_empty() || l.starts_with("#[") || l.starts_with("//")));
    if let Some(f) = next.and_then(fn_name) {
        return Some(f);
    }
    let at = indent(lines[i]);
    lines[..i]
        .iter()
        .rev()
        .filter(|l| indent(l) < at)
        .find_map(|l| fn_name(l))
}

fn fn_name(line: &str) -> Option<&str> {
    let at = line.find("fn ")?;
    if at > 0 && !line[..at].ends_with(' ') {
        return None;
    }
    let rest = &line[at + 3..];
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    (end > 0).then(|| &rest[..end])
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TraceError> {
    if dir.is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| TraceError::Io(dir.into(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| TraceError::Io(dir.into(), e))?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_pending(path: &Path) -> Result<Vec<(String, String)>, TraceError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TraceError::Io(path.into(), e)),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((tag, reason)) => (tag.to_owned(), reason.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect())
}

fn apply_pending(
    reqs: &mut [Requirement],
    pending: &[(String, String)],
    problems: &mut Vec<String>,
) {
    let mut seen = BTreeSet::new();
    for (tag, reason) in pending {
        if !seen.insert(tag) {
            problems.push(format!("traceability-pending.txt lists [[{tag}]] twice"));
        }
        if reason.is_empty() {
            problems.push(format!("traceability-pending.txt: [[{tag}]] has no reason"));
        }
        match reqs.iter_mut().find(|r| &r.tag == tag) {
            None => problems.push(format!(
                "traceability-pending.txt: unknown tag [[{tag}]] (stale entry)"
            )),
            Some(r) if r.is_covered() => problems.push(format!(
                "traceability-pending.txt: [[{tag}]] is covered now; remove the stale entry"
            )),
            Some(r) => r.pending = Some(reason.clone()),
        }
    }
}

/// Each declared mutant must be recorded with the same tags and killed; each recorded
/// one must still be declared.
fn check_records(
    recorded: &[MutantCoverage],
    declared: &[MutantCoverage],
    problems: &mut Vec<String>,
) {
    let key = |m: &MutantCoverage| (m.set.clone(), m.name.clone());
    let rec: BTreeMap<_, _> = recorded.iter().map(|m| (key(m), m)).collect();
    let dec: BTreeMap<_, _> = declared.iter().map(|m| (key(m), m)).collect();
    for ((set, name), d) in &dec {
        match rec.get(&(set.clone(), name.clone())) {
            None => problems.push(format!(
                "mutant {name} ({set}) is not in the recorded kill matrix: run \
                 `fleetwire conformance mutants --record` for that set"
            )),
            Some(r) if r.tags != d.tags => problems.push(format!(
                "mutant {name} ({set}) is recorded with tags {:?}, declared with {:?}",
                r.tags, d.tags
            )),
            Some(r) if !r.is_killed() => {
                problems.push(format!("mutant {name} ({set}) survives: no case kills it"))
            }
            Some(_) => {}
        }
    }
    for (set, name) in rec.keys() {
        if !dec.contains_key(&(set.clone(), name.clone())) {
            problems.push(format!(
                "the recorded kill matrix names mutant {name} ({set}), which no longer exists"
            ));
        }
    }
}

fn needs_mutants(r: &Requirement) -> bool {
    matches!(r.level.as_str(), "MUST" | "SHOULD")
}

fn mutant_count(r: &Requirement) -> usize {
    let mut names: Vec<&str> = r.mutants.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

fn apply_mutants_pending(
    reqs: &mut [Requirement],
    pending: &[(String, String)],
    problems: &mut Vec<String>,
) {
    for (tag, reason) in pending {
        match reqs.iter_mut().find(|r| &r.tag == tag) {
            None => problems.push(format!(
                "mutants-pending.txt: unknown tag [[{tag}]] (stale entry)"
            )),
            Some(r) if mutant_count(r) >= 2 => problems.push(format!(
                "mutants-pending.txt: [[{tag}]] has two mutants now; remove the stale entry"
            )),
            Some(_) if reason.is_empty() => {
                problems.push(format!("mutants-pending.txt: [[{tag}]] has no reason"))
            }
            Some(r) => r.mutants_pending = Some(reason.clone()),
        }
    }
    for r in reqs.iter() {
        if needs_mutants(r) && mutant_count(r) < 2 && r.mutants_pending.is_none() {
            problems.push(format!(
                "{} [[{}]] (§{}) has {} mutant(s), fewer than two",
                r.level,
                r.tag,
                r.section,
                mutant_count(r)
            ));
        }
    }
}

fn cell(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_owned()
    } else {
        items
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn render_markdown(r: &TraceReport) -> String {
    let count = |level: &str| r.requirements.iter().filter(|q| q.level == level).count();
    let covered = r.requirements.iter().filter(|q| q.is_covered()).count();
    let pending = r
        .requirements
        .iter()
        .filter(|q| q.pending.is_some())
        .count();
    let mut s = String::from("# Traceability\n\n");
    s.push_str(&format!(
        "Generated by `fleetwire vectors trace` from `{}`, the golden vectors in `vectors/`, \
         conformance cases and `// trace:` comments in tests. Do not edit by hand: \
         `fleetwire vectors trace --check` fails when this file is out of date, when a MUST or \
         RULE requirement is checked by nothing and not listed in `traceability-pending.txt`, \
         or when a pending entry is stale.\n\n",
        r.spec_name
    ));
    s.push_str("Levels: MUST (MUST, MUST NOT, SHALL, REQUIRED), SHOULD (SHOULD, SHOULD NOT, RECOMMENDED), \
                RULE (a tagged rule stated without a keyword; checked like MUST).\n\n");
    s.push_str("| requirements | MUST | SHOULD | RULE | covered | pending | uncovered |\n|---|---|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| {} | {} | {} | {} | {} | {} | {} |\n\n",
        r.requirements.len(),
        count("MUST"),
        count("SHOULD"),
        count("RULE"),
        covered,
        pending,
        r.requirements.len() - covered - pending
    ));
    s.push_str("| § | tag | level | requirement | status | vectors | conformance cases | tests |\n|---|---|---|---|---|---|---|---|\n");
    for q in &r.requirements {
        let status = match (&q.pending, q.is_covered()) {
            (_, true) => "covered".to_owned(),
            (Some(reason), false) => format!("pending: {reason}"),
            (None, false) => "**uncovered**".to_owned(),
        };
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
            q.section,
            q.tag,
            q.level,
            excerpt(&q.text, 240).replace('|', "\\|"),
            status,
            cell(&q.vectors),
            cell(&q.cases),
            cell(&q.tests)
        ));
    }
    if !r.mutants.is_empty() {
        render_mutants(r, &mut s);
    }
    s
}

fn render_mutants(r: &TraceReport, s: &mut String) {
    let tagged: Vec<&Requirement> = r.requirements.iter().filter(|q| needs_mutants(q)).collect();
    let at_least = |n: usize| tagged.iter().filter(|q| mutant_count(q) >= n).count();
    let killed = r.mutants.iter().filter(|m| m.is_killed()).count();
    let per_set: Vec<String> = ["reference", "live", "proxy", "python"]
        .iter()
        .map(|set| {
            let n = r.mutants.iter().filter(|m| m.set == *set).count();
            format!("{set} {n}")
        })
        .collect();
    s.push_str("\n## Mutants: tag → mutants → killing cases\n\n");
    s.push_str(
        "From the recorded kill matrices in `conformance/mutants/kills/` (written by \
         `fleetwire conformance mutants --record`, `--live --record`, `--proxy --record` and `--python … --record`; \
         CI reruns the reference and Python sets with `--check`). A mutant is killed when a \
         case fails against it: FAILED, or NON-STRICT for a SHOULD. Killing cases: the first \
         three, then their number. Tags with fewer than two mutants are listed in \
         `spec/mutants-pending.txt` with the reason.\n\n",
    );
    s.push_str("| MUST and SHOULD tags | with ≥ 2 mutants | with ≥ 1 | mutants | killed | kill rate |\n|---|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| {} | {} | {} | {} ({}) | {} | {:.1} % |\n\n",
        tagged.len(),
        at_least(2),
        at_least(1),
        r.mutants.len(),
        per_set.join(", "),
        killed,
        100.0 * killed as f64 / r.mutants.len().max(1) as f64
    ));
    s.push_str("| § | tag | level | mutants | killing cases |\n|---|---|---|---|---|\n");
    for q in &tagged {
        let names: Vec<String> = q.mutants.iter().map(|m| format!("`{}`", m.name)).collect();
        let kills: Vec<String> = q
            .mutants
            .iter()
            .map(|m| {
                let first: Vec<String> = m.kills.iter().take(3).map(|k| format!("`{k}`")).collect();
                format!("`{}`: {} ({})", m.name, first.join(", "), m.kills.len())
            })
            .collect();
        let mutants = match (&q.mutants_pending, names.is_empty()) {
            (Some(reason), true) => format!("— (pending: {reason})"),
            (Some(reason), false) => format!("{} (pending: {reason})", names.join(", ")),
            (None, _) => names.join(", "),
        };
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            q.section,
            q.tag,
            q.level,
            mutants.replace('|', "\\|"),
            if kills.is_empty() {
                "—".to_owned()
            } else {
                kills.join("<br>")
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_close_the_text_before_them() {
        let spec = "## 4. H\n\n### 4.1 A\n\nA receiver MUST x. [[a.x]] A sender SHOULD y.\n[[a.y]] It is z. [[a.z]]\n";
        let (reqs, problems) = parse_spec(spec);
        assert!(problems.is_empty(), "{problems:?}");
        let levels: Vec<_> = reqs
            .iter()
            .map(|r| (r.tag.as_str(), r.level.as_str(), r.section.as_str()))
            .collect();
        assert_eq!(
            levels,
            [
                ("a.x", "MUST", "4.1"),
                ("a.y", "SHOULD", "4.1"),
                ("a.z", "RULE", "4.1")
            ]
        );
        assert_eq!(reqs[1].text, "A sender SHOULD y.");
    }

    #[test]
    fn untagged_normative_text_is_a_problem() {
        let (_, problems) = parse_spec("### 2.1 X\n\n- An endpoint MUST NOT do it.\n- fine MAY\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("§2.1"));
    }

    #[test]
    fn tag_references_inside_a_sentence_are_not_definitions() {
        let spec =
            "### 5.1 Z\n\nA client MUST x. [[a.x]] It MAY use the server of [[a.x]] (or not).\n";
        let (reqs, problems) = parse_spec(spec);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(reqs.len(), 1);
    }

    #[test]
    fn quoted_keywords_and_code_fences_are_not_normative() {
        let spec = "### 3.1 Y\n\nThe words \"MUST\" and \"SHOULD\".\n\n```\nMUST\n```\n";
        assert!(parse_spec(spec).1.is_empty());
    }

    #[test]
    fn trace_comments_name_the_next_function() {
        assert_eq!(
            fn_name("    fn rejects_bad_kind() {"),
            Some("rejects_bad_kind")
        );
        assert_eq!(fn_name("pub async fn x<T>()"), Some("x"));
        assert_eq!(fn_name("let f = afn y"), None);
    }

    #[test]
    fn trace_comments_name_the_function_they_are_above_or_inside() {
        // (the marker is built, so that this file does not trace these tags itself)
        let a = format!("{} a", "// trace:");
        let b = format!("    {} b", "// trace:");
        let lines = [
            &a,
            "#[test]",
            "fn above() {",
            "    x();",
            "}",
            "",
            "#[test]",
            "fn inside() {",
            &b,
            "    let y = 1;",
            "}",
            "",
            "fn next() {}",
        ];
        assert_eq!(traced_fn(&lines, 0), Some("above"));
        assert_eq!(traced_fn(&lines, 8), Some("inside"));
    }

    fn mutant(name: &str, tags: &[&str], kills: &[&str]) -> MutantCoverage {
        MutantCoverage {
            set: "reference".into(),
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            kills: kills.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn records_must_match_the_declared_mutants_and_be_killed() {
        let declared = [mutant("a", &["x"], &[]), mutant("b", &["x"], &[])];
        let recorded = [
            mutant("a", &["y"], &["c1"]),
            mutant("b", &["x"], &[]),
            mutant("gone", &["x"], &["c1"]),
        ];
        let mut problems = Vec::new();
        check_records(&recorded, &declared, &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("tags"));
        assert!(problems[1].contains("survives"));
        assert!(problems[2].contains("no longer exists"));
    }

    #[test]
    fn tags_need_two_mutants_unless_pending() {
        let req = |tag: &str, n: usize| Requirement {
            tag: tag.into(),
            level: "MUST".into(),
            mutants: (0..n)
                .map(|i| mutant(&format!("m{i}"), &[tag], &["c"]))
                .collect(),
            ..Requirement::default()
        };
        let mut reqs = vec![req("one", 1), req("two", 2), req("none", 0)];
        let mut problems = Vec::new();
        let pending = [
            ("none".to_string(), "why".to_string()),
            ("two".to_string(), "why".to_string()),
        ];
        apply_mutants_pending(&mut reqs, &pending, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("[[two]] has two mutants now"));
        assert!(problems[1].contains("[[one]]"));
        assert_eq!(reqs[2].mutants_pending.as_deref(), Some("why"));
    }

    #[test]
    fn stale_pending_entries_are_problems() {
        let mut reqs = vec![Requirement {
            tag: "a".into(),
            tests: vec!["t".into()],
            ..Requirement::default()
        }];
        let mut problems = Vec::new();
        apply_pending(
            &mut reqs,
            &[("a".into(), "why".into()), ("zz".into(), "why".into())],
            &mut problems,
        );
        assert_eq!(problems.len(), 2);
    }
}

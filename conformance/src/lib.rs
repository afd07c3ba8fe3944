//! The conformance suite: a runner that checks any Fleetwire implementation through the
//! testee protocol (`conformance/PROTOCOL.md`), the reference testee, and deliberately
//! faulty variants of it ([`Mutant`]) that the suite must catch.
//!
//! The implementation under test runs as a separate process and answers requests on
//! its stdin/stdout (length-prefixed JSON, like protobuf's conformance suite). Every
//! golden vector becomes a case `codec.<vector id>`; generated extras split every stream
//! at every byte, coalesce streams, and add seeded random streams and packets. Cases
//! carry their spec section, requirement tags and level, so a failure is graded FAILED
//! (MUST), NON-STRICT (SHOULD) or INFORMATIONAL (MAY).
//!
//! ```
//! use fleetwire_conformance::{cases, run_cases, InProcess, Mutant, RunOptions, Verdict};
//!
//! let header_cases: Vec<_> = cases(7).into_iter()
//!     .filter(|c| c.id.starts_with("codec.header.reserved")).collect();
//! // the reference passes...
//! let ok = run_cases(&mut InProcess::reference(), &header_cases, &RunOptions::default()).unwrap();
//! assert!(ok.iter().all(|r| r.verdict == Verdict::Ok));
//! // ...and a receiver that ignores the R bits is caught
//! let mut buggy = InProcess::new(Some(Mutant::AcceptsReservedBits));
//! let bad = run_cases(&mut buggy, &header_cases, &RunOptions::default()).unwrap();
//! assert!(bad.iter().any(|r| r.verdict == Verdict::Failed));
//! ```
//!
//! Live-peer mode ([`peer`]): the runner as a
//! fault-injecting Fleetwire peer over TCP/TLS (`fleetwire conformance peer`); its case
//! ids start with `peer.`, beside the `codec.` cases.

mod cases;
mod cli;
mod expected;
mod filter;
mod forms;
mod fuzz;
mod fuzz_transcript;
mod kill;
mod matrix;
mod minimize;
pub mod monitor;
mod mutants;
pub mod peer;
mod protocol;
mod pymutants;
mod reference;
mod report;
mod runner;
mod transcript;
pub mod vectors;

pub use cases::{Case, Level, Probe};
pub use cli::{codec_command, fuzz_command, report_command, testee_command, CodecArgs, FuzzArgs};
pub use expected::{Expectation, ExpectedFile, Stale};
pub use fuzz::{fuzz, Disagreement, FuzzOptions, FuzzReport, OpStats};
pub use kill::kill_matrix;
pub use matrix::{
    declared_mutants, record, recorded_mutants, records_text, KILLS_DIR, MUTANT_SETS,
};
pub use monitor::{Monitor, MonitorOptions, Violation, MONITOR_CHECKS};
pub use mutants::Mutant;
pub use protocol::{
    read_message, runner_hello, serve, split_command, write_message, Call, Faults, InProcess,
    Reply, Spawned, Testee, TesteeInfo, MAX_MESSAGE, PROTOCOLS, PROTOCOL_VERSION,
};
pub use pymutants::{python_kill_matrix, Hunk, PyKills, PyMutant, PY_IMPL_DIR, PY_MUTANTS_FILE};
pub use reference::{Reference, OPERATIONS};
pub use report::{html_matrix, Report, Summary};
pub use runner::{run_cases, CaseResult, Failure, RunOptions, Verdict};

use crate::vectors::CaseCoverage;

/// Every case of the codec mode, with the random extras drawn from `seed`.
///
/// Built from the golden vectors as this crate generates them (identical to the files in
/// `vectors/`, which CI checks). Case ids are stable; only the content of
/// `codec.random.*` cases depends on the seed.
///
/// ```
/// let all = fleetwire_conformance::cases(42);
/// assert!(all.len() >= 250);
/// assert!(all.iter().any(|c| c.id == "codec.stream.preface.bad-byte-0"));
/// assert!(all.iter().any(|c| c.id == "codec.split.stream.packets.mixed.every"));
/// ```
pub fn cases(seed: u64) -> Vec<Case> {
    cases::build(&cases::builtin_vectors(), seed)
}

/// The cases built from the vector files in `dir` instead of the built-in vectors.
///
/// ```no_run
/// let all = fleetwire_conformance::cases_from_dir(std::path::Path::new("vectors"), 1)?;
/// # Ok::<(), String>(())
/// ```
pub fn cases_from_dir(dir: &std::path::Path, seed: u64) -> Result<Vec<Case>, String> {
    let mut layers = Vec::new();
    for layer in crate::vectors::LAYERS {
        let path = dir.join(format!("{layer}.json"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if file["schema_version"] != 1 {
            return Err(format!("{}: schema_version is not 1", path.display()));
        }
        let vectors = file["vectors"].as_array().cloned().unwrap_or_default();
        layers.push((layer.to_owned(), vectors));
    }
    Ok(cases::build(&layers, seed))
}

/// The conformance cases and the requirement tags each checks, for
/// `spec/TRACEABILITY.md` (`fleetwire_conformance::vectors::trace_with_cases`).
///
/// Random cases are left out: their content depends on the seed.
///
/// ```
/// let cov = fleetwire_conformance::case_coverage();
/// let c = cov.iter().find(|c| c.case_id == "codec.header.kind.unassigned-7").unwrap();
/// assert!(c.tags.contains(&"hdr.kind".to_string()));
/// ```
pub fn case_coverage() -> Vec<CaseCoverage> {
    cases(0)
        .into_iter()
        .filter(|c| !c.id.starts_with("codec.random."))
        .map(|c| CaseCoverage {
            case_id: c.id,
            tags: c.tags,
        })
        .chain(peer::peer_coverage())
        .collect()
}

/// A shell-style glob over case ids: `*` matches any run of characters (dots
/// included), `?` one character.
///
/// ```
/// use fleetwire_conformance::Glob;
/// let g = Glob::new("codec.header.*");
/// assert!(g.matches("codec.header.kind.unassigned-7"));
/// assert!(!g.matches("codec.packet.data.empty"));
/// assert!(Glob::new("*.bytewise").matches("codec.split.x.bytewise"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    /// A glob from its pattern.
    ///
    /// ```
    /// assert!(fleetwire_conformance::Glob::new("a?c").matches("abc"));
    /// ```
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.chars().collect())
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// ```
    /// assert!(!fleetwire_conformance::Glob::new("ab").matches("abc"));
    /// ```
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let p = &self.0;
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

/// The suite's deterministic random generator (SplitMix64): every random choice of a
/// run comes from the seed it prints.
///
/// ```
/// use fleetwire_conformance::Rng;
/// let (mut a, mut b) = (Rng::new(5), Rng::new(5));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    ///
    /// ```
    /// let _ = fleetwire_conformance::Rng::new(0);
    /// ```
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    ///
    /// ```
    /// let mut r = fleetwire_conformance::Rng::new(1);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    ///
    /// ```
    /// assert_eq!(fleetwire_conformance::Rng::new(3).below(1), 0);
    /// ```
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A random byte.
    ///
    /// ```
    /// let _b: u8 = fleetwire_conformance::Rng::new(3).byte();
    /// ```
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

//! The `fleetwire conformance` and `fleetwire testee` commands, without the argument
//! parser (that lives in the `fleetwire-cli` crate, `cli/src/conformance.rs`). Exit
//! codes: 0 all passed (or only expected failures), 1 failures or stale expectations,
//! 2 the harness broke or bad usage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::expected::ExpectedFile;
use super::mutants::Mutant;
use super::protocol::{serve, Faults, InProcess, Spawned, Testee};
use super::reference::Reference;
use super::report::{html_matrix, Report};
use super::runner::{run_cases, RunOptions};
use super::{cases, cases_from_dir, fuzz, FuzzOptions, Glob};

/// Arguments of `fleetwire conformance [codec]`.
///
/// ```
/// let a = fleetwire_conformance::CodecArgs { list: true, ..Default::default() };
/// assert!(a.testee.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct CodecArgs {
    /// The command of the implementation under test; `None` for the reference.
    pub testee: Option<String>,
    /// Run a mutant of the reference in-process instead.
    pub mutant: Option<Mutant>,
    /// Run the reference as a spawned `fleetwire testee` (exercises the protocol).
    pub spawn_reference: bool,
    /// Print the cases and exit.
    pub list: bool,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// Seed; `None` picks one from the clock (and prints it).
    pub seed: Option<u64>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u64,
    /// Expected-failures file.
    pub expected: Option<PathBuf>,
    /// Rewrite the expected-failures file from this run.
    pub update_expected: bool,
    /// Write the JSON report here.
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here.
    pub junit: Option<PathBuf>,
    /// Write the HTML matrix (this run only) here.
    pub html: Option<PathBuf>,
    /// Build cases from these vector files instead of the built-in vectors.
    pub vectors: Option<PathBuf>,
    /// Do not minimise failing inputs.
    pub no_minimise: bool,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn pick_seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
    })
}

fn testee_for(args: &CodecArgs) -> Result<(Box<dyn Testee>, String), String> {
    if let Some(cmd) = &args.testee {
        let replay = format!("fleetwire conformance codec --testee {}", quote(cmd));
        return Ok((Box::new(Spawned::new(cmd)), replay));
    }
    if let Some(m) = args.mutant {
        return Ok((
            Box::new(InProcess::new(Some(m))),
            format!("fleetwire conformance codec --mutant {m}"),
        ));
    }
    if args.spawn_reference {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let cmd = format!("{} testee", quote(&exe.to_string_lossy()));
        return Ok((
            Box::new(Spawned::new(&cmd)),
            "fleetwire conformance --spawn-reference".into(),
        ));
    }
    Ok((
        Box::new(InProcess::reference()),
        "fleetwire conformance".into(),
    ))
}

fn write_file(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `fleetwire conformance [codec]` and returns the exit code.
///
/// ```no_run
/// let args = fleetwire_conformance::CodecArgs { case: vec!["codec.header.*".into()], seed: Some(1),
///     timeout_ms: 2000, ..Default::default() };
/// std::process::exit(fleetwire_conformance::codec_command(&args).into());
/// ```
pub fn codec_command(args: &CodecArgs) -> u8 {
    match codec_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetwire conformance: {e}");
            2
        }
    }
}

fn codec_run(args: &CodecArgs) -> Result<u8, String> {
    let seed = pick_seed(args.seed);
    let all = match &args.vectors {
        Some(dir) => cases_from_dir(dir, seed)?,
        None => cases(seed),
    };
    let include: Vec<Glob> = args.case.iter().map(|g| Glob::new(g)).collect();
    let exclude: Vec<Glob> = args.skip.iter().map(|g| Glob::new(g)).collect();
    let selected: Vec<_> = all
        .iter()
        .filter(|c| include.is_empty() || include.iter().any(|g| g.matches(&c.id)))
        .filter(|c| !exclude.iter().any(|g| g.matches(&c.id)))
        .cloned()
        .collect();
    if args.list {
        for c in &selected {
            println!(
                "{:<60} §{:<5} {:<6} {:<8} {}",
                c.id,
                c.section,
                c.level,
                c.claim,
                c.tags.join(",")
            );
        }
        println!("{} cases", selected.len());
        return Ok(0);
    }
    if selected.is_empty() {
        return Err("no case matches --case/--skip".into());
    }
    let expected = match &args.expected {
        Some(p) if p.exists() || !args.update_expected => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(ExpectedFile::parse(&text))
        }
        Some(_) => Some(ExpectedFile::default()),
        None => None,
    };
    let (mut testee, replay) = testee_for(args)?;
    let info = testee.info()?;
    eprintln!(
        "fleetwire conformance: {} {} — {} cases, seed {seed}",
        info.name,
        info.version,
        selected.len()
    );
    let opts = RunOptions {
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        minimise: !args.no_minimise,
        progress: true,
    };
    let start = Instant::now();
    let mut results = run_cases(testee.as_mut(), &selected, &opts)?;
    let ids: Vec<String> = all.iter().map(|c| c.id.clone()).collect();
    let stale = expected
        .as_ref()
        .map(|e| e.apply(&mut results, &ids))
        .unwrap_or_default();
    let report = Report {
        implementation: info.name,
        version: info.version,
        seed,
        replay,
        results,
        stale,
        duration: start.elapsed(),
        restarts: testee.restarts(),
    };
    print!("{}", report.summary_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        write_file(p, &text)?;
    }
    if let Some(p) = &args.junit {
        write_file(p, &report.to_junit())?;
    }
    if let Some(p) = &args.html {
        write_file(p, &html_matrix(&[report.to_json()]))?;
    }
    if let (true, Some(p), Some(e)) = (args.update_expected, &args.expected, &expected) {
        write_file(p, &e.updated(&report.results))?;
        eprintln!("rewrote {}", p.display());
        return Ok(0);
    }
    Ok(report.exit_code())
}

/// `fleetwire conformance report --html OUT A.json B.json ...`: the matrix of several
/// runs. Returns the exit code.
///
/// ```no_run
/// let code = fleetwire_conformance::report_command(&"m.html".into(), &["a.json".into()]);
/// assert_eq!(code, 0);
/// ```
pub fn report_command(html: &PathBuf, inputs: &[PathBuf]) -> u8 {
    let mut reports = Vec::new();
    for p in inputs {
        let parsed = std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(v) => reports.push(v),
            Err(e) => {
                eprintln!("fleetwire conformance report: {}: {e}", p.display());
                return 2;
            }
        }
    }
    match write_file(html, &html_matrix(&reports)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleetwire conformance report: {e}");
            2
        }
    }
}

/// Arguments of `fleetwire conformance fuzz`.
///
/// ```
/// let a = fleetwire_conformance::FuzzArgs { seconds: 2.0, ..Default::default() };
/// assert!(a.testee.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct FuzzArgs {
    /// The implementation under test; `None` with `mutant` for an in-process mutant.
    pub testee: Option<String>,
    /// An in-process mutant of the reference.
    pub mutant: Option<Mutant>,
    /// Time budget.
    pub seconds: f64,
    /// Seed; `None` picks one (and prints it).
    pub seed: Option<u64>,
    /// Stop after this many inputs.
    pub max_iterations: Option<u64>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u64,
}

/// Runs `fleetwire conformance fuzz`; exit 1 when a disagreement was found.
///
/// ```no_run
/// let a = fleetwire_conformance::FuzzArgs { mutant: "accepts-reserved-bits".parse().ok(),
///     seconds: 3.0, seed: Some(1), timeout_ms: 2000, ..Default::default() };
/// assert_eq!(fleetwire_conformance::fuzz_command(&a), 1);
/// ```
pub fn fuzz_command(args: &FuzzArgs) -> u8 {
    let seed = pick_seed(args.seed);
    let (mut testee, replay): (Box<dyn Testee>, String) = match (&args.testee, args.mutant) {
        (Some(cmd), _) => (
            Box::new(Spawned::new(cmd)),
            format!("--testee {}", quote(cmd)),
        ),
        (None, Some(m)) => (Box::new(InProcess::new(Some(m))), format!("--mutant {m}")),
        (None, None) => (Box::new(InProcess::reference()), String::new()),
    };
    let opts = FuzzOptions {
        seconds: args.seconds,
        seed,
        max_iterations: args.max_iterations,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        ..FuzzOptions::default()
    };
    eprintln!(
        "fleetwire conformance fuzz: seed {seed}, {} s",
        args.seconds
    );
    let report = match fuzz(testee.as_mut(), &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetwire conformance fuzz: {e}");
            return 2;
        }
    };
    for d in &report.disagreements {
        println!("DISAGREEMENT {} (iteration {})", d.op, d.iteration);
        println!("  request:   {}", d.fields);
        println!("  reference: {}", d.reference);
        println!("  testee:    {}", d.testee);
    }
    for (op, s) in &report.per_op {
        println!(
            "  {op:<15} {:>8} inputs, {:>9.1} per second, {} unsupported",
            s.count,
            s.rate(),
            s.unsupported
        );
    }
    println!(
        "{} inputs, {} disagreements, {} unsupported (seed {seed}; replay: fleetwire conformance fuzz {replay} --seed {seed} --seconds {})",
        report.iterations, report.disagreements.len(), report.unsupported, args.seconds
    );
    u8::from(!report.disagreements.is_empty())
}

/// Runs `fleetwire testee` on stdin/stdout. The mutant comes from `mutant` or, when
/// `None`, the `FLEETWIRE_MUTANT` environment variable.
///
/// ```no_run
/// std::process::exit(fleetwire_conformance::testee_command(None, &Default::default()).into());
/// ```
pub fn testee_command(mutant: Option<Mutant>, faults: &Faults) -> u8 {
    let mutant = match (mutant, std::env::var("FLEETWIRE_MUTANT")) {
        (Some(m), _) => Some(m),
        (None, Ok(name)) if !name.is_empty() => match name.parse() {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("fleetwire testee: {e}");
                return 2;
            }
        },
        _ => None,
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut input = stdin.lock();
    let mut output = std::io::BufWriter::new(stdout.lock());
    match serve(&mut input, &mut output, Reference::new(mutant), faults) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleetwire testee: {e}");
            2
        }
    }
}

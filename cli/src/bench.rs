//! `fleetwire bench`: the transport engine against tokio + tokio-util, and (with
//! `--python PATH`) the Python package against asyncio, uvloop and pyzmq.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fleetwire::transport::bench::Section;

use crate::bench_python::{python_rows, Row};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Fewer repetitions and smaller runs.
    #[arg(long)]
    quick: bool,
    /// Also write {"results":[{"name","unit","ours","baseline","ratio"}]} here (a
    /// row whose baseline did not run also has "skipped": why).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only these parts: throughput, pairs, scaling, ping, memory, proxy, python
    /// (repeatable; default all but python, which runs when --python is given).
    #[arg(long, value_name = "SECTION", value_parser = part)]
    only: Vec<Part>,
    /// Add the Python row group: this interpreter runs `-m fleetwire.bench` (the
    /// package installed with `pip install ./python`; skipped, saying why, when it
    /// cannot import it). `--only python` alone uses `python3`.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// An argument passed on to `python -m fleetwire.bench` (repeatable), e.g.
    /// `--python-arg=--sizes=64 --python-arg=--rounds=5`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    python_arg: Vec<String>,
}

/// A part of the report `--only` selects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Part {
    /// A section of the engine's own benchmark.
    Core(Section),
    /// The Python package's row group.
    Python,
}

fn part(name: &str) -> Result<Part, String> {
    if name.eq_ignore_ascii_case("python") {
        return Ok(Part::Python);
    }
    Section::parse(name).map(Part::Core).ok_or_else(|| {
        format!("{name}: expected throughput, pairs, scaling, ping, memory or proxy (or python)")
    })
}

/// The core sections to run and the interpreter of the Python group, if it runs.
fn plan(args: &BenchArgs) -> (Vec<Section>, Option<PathBuf>) {
    let python_asked = args.only.contains(&Part::Python);
    let python = match (&args.python, args.only.is_empty() || python_asked) {
        (Some(p), true) => Some(p.clone()),
        (None, true) if python_asked => Some(PathBuf::from("python3")),
        _ => None,
    };
    let sections = match args.only.is_empty() {
        true => Section::ALL.to_vec(),
        false => args
            .only
            .iter()
            .filter_map(|p| match p {
                Part::Core(s) => Some(*s),
                Part::Python => None,
            })
            .collect(),
    };
    (sections, python)
}

/// `--quick` for the Python group: shorter runs; the user's `--python-arg`s come after
/// and win.
fn python_args(args: &BenchArgs) -> Vec<String> {
    let quick = ["--rounds", "3", "--duration", "0.5"];
    let mut out: Vec<String> = match args.quick {
        true => quick.iter().map(|s| s.to_string()).collect(),
        false => Vec::new(),
    };
    out.extend(args.python_arg.iter().cloned());
    out
}

pub(crate) fn bench(args: BenchArgs) -> ExitCode {
    use fleetwire::transport::bench::bench_sections;
    let (sections, python) = plan(&args);
    let mut rows: Vec<Row> = match sections.is_empty() {
        true => Vec::new(),
        false => bench_sections(args.quick, &sections)
            .into_iter()
            .map(Row::from)
            .collect(),
    };
    if let Some(python) = &python {
        rows.extend(python_rows(python, &python_args(&args)));
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, json(&rows)) {
            eprintln!("fleetwire bench: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// A figure for the table: `-` when there is none, more decimals for small ones.
fn cell(x: f64) -> String {
    match x {
        x if x.is_nan() => "-".to_owned(),
        x if x.abs() < 10.0 => format!("{x:.3}"),
        x => format!("{x:.1}"),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<52} {:>10} {:>14} {:>14} {:>8}",
        "benchmark", "unit", "ours", "baseline", "ratio"
    );
    for r in rows {
        let ratio = match r.ratio.is_nan() {
            true => "-".to_owned(),
            false => format!("{:.2}x", r.ratio),
        };
        match &r.skipped {
            Some(why) => println!(
                "{:<52} {:>10} {:>14} skipped: {why}",
                r.name,
                r.unit,
                cell(r.ours)
            ),
            None => println!(
                "{:<52} {:>10} {:>14} {:>14} {:>8}",
                r.name,
                r.unit,
                cell(r.ours),
                cell(r.baseline),
                ratio
            ),
        }
    }
}

/// The report: fields in the documented order, NaN (no figure) as null, "skipped"
/// only where a baseline did not run.
fn json(rows: &[Row]) -> String {
    let num = |x: f64| serde_json::Value::from(x).to_string();
    let string = |x: &str| serde_json::Value::from(x).to_string();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let skipped = match &r.skipped {
                Some(why) => format!(", \"skipped\": {}", string(why)),
                None => String::new(),
            };
            format!(
                "    {{\"name\": {}, \"unit\": {}, \"ours\": {}, \"baseline\": {}, \"ratio\": {}{skipped}}}",
                string(&r.name),
                string(&r.unit),
                num(r.ours),
                num(r.baseline),
                num(r.ratio)
            )
        })
        .collect();
    format!("{{\"results\": [\n{}\n]}}\n", lines.join(",\n"))
}

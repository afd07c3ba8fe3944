//! The Python row group of `fleetwire bench` (`--python PATH`): runs the Python
//! package's own benchmark, `PATH -m fleetwire.bench --json FILE` (ours — a Python
//! thread draining `recv_batch` — against asyncio, uvloop and pyzmq; alternating rounds,
//! medians) and reads the medians and ratios it writes under `summary`, one row per
//! figure and baseline. A baseline that could not run (uvloop or pyzmq not installed)
//! comes back as a row that says so; when the package itself is not importable the
//! group is one skipped row, and the rest of the report is unaffected.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fleetwire::transport::bench::BenchResult;
use serde_json::Value;

/// One row of the report: a core benchmark's result or one of the Python group's.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    /// What was measured.
    pub(crate) name: String,
    /// Its unit.
    pub(crate) unit: String,
    /// Our median (NaN: none).
    pub(crate) ours: f64,
    /// The baseline's median (NaN: none).
    pub(crate) baseline: f64,
    /// How many times better ours is (NaN: no ratio).
    pub(crate) ratio: f64,
    /// Why the baseline (or the whole group) did not run.
    pub(crate) skipped: Option<String>,
}

impl From<BenchResult> for Row {
    fn from(r: BenchResult) -> Row {
        Row {
            name: r.name,
            unit: r.unit.to_owned(),
            ours: r.ours,
            baseline: r.baseline,
            ratio: r.ratio,
            skipped: None,
        }
    }
}

impl Row {
    /// The row that stands for a group that could not run at all.
    fn skipped(name: &str, why: String) -> Row {
        Row {
            name: name.to_owned(),
            unit: "-".to_owned(),
            ours: f64::NAN,
            baseline: f64::NAN,
            ratio: f64::NAN,
            skipped: Some(why),
        }
    }

    /// A `summary` entry of `fleetwire.bench --json`; absent or null numbers are NaN.
    fn from_json(v: &Value) -> Row {
        let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Row {
            name: v["name"].as_str().unwrap_or("?").to_owned(),
            unit: v["unit"].as_str().unwrap_or("?").to_owned(),
            ours: num("ours"),
            baseline: num("baseline"),
            ratio: num("ratio"),
            skipped: v["skipped"].as_str().map(str::to_owned),
        }
    }
}

/// The name of the row that reports a Python group that could not run.
const GROUP: &str = "py fleetwire.bench";

/// Runs `python -m fleetwire.bench` with `args` (after `--json FILE`, so they can
/// change rounds, durations, sizes…) and returns its summary rows; the Python side's
/// own table goes to standard error as it is measured.
pub(crate) fn python_rows(python: &Path, args: &[String]) -> Vec<Row> {
    if let Err(why) = importable(python) {
        return vec![Row::skipped(GROUP, why)];
    }
    let json = report_path();
    let rows = run(python, args, &json)
        .and_then(|()| std::fs::read(&json).map_err(|e| format!("{}: {e}", json.display())))
        .and_then(|text| parse(&text));
    let _ = std::fs::remove_file(&json);
    rows.unwrap_or_else(|why| vec![Row::skipped(GROUP, why)])
}

/// Whether `python` can import the package (an interpreter that is missing, or one
/// without `pip install ./python`, says why).
fn importable(python: &Path) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import fleetwire.bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    match out.success() {
        true => Ok(()),
        false => Err(format!(
            "fleetwire not importable by {} (pip install ./python)",
            python.display()
        )),
    }
}

/// A fresh file for the Python side's report.
fn report_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "fleetwire-bench-python-{}.json",
        std::process::id()
    ))
}

/// Runs the benchmark to its end, copying its standard output to our standard error.
fn run(python: &Path, args: &[String], json: &Path) -> Result<(), String> {
    let mut child = Command::new(python)
        .args(["-m", "fleetwire.bench", "--json"])
        .arg(json)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("{line}");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("python -m fleetwire.bench failed ({status})")),
    }
}

/// The rows of a `fleetwire.bench --json` report (its `summary` array).
fn parse(text: &[u8]) -> Result<Vec<Row>, String> {
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("report: {e}"))?;
    let summary = v["summary"]
        .as_array()
        .ok_or("report: no summary (a fleetwire package older than this CLI?)")?;
    Ok(summary.iter().map(Row::from_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rows_keep_figures_and_skips() {
        let text = br#"{"summary": [
            {"name": "py oneway 64B plaintext in msg/s vs asyncio", "unit": "msg/s",
             "ours": 3.0, "baseline": 1.0, "ratio": 3.0},
            {"name": "py oneway 64B plaintext in msg/s vs uvloop", "unit": "msg/s",
             "ours": 3.0, "baseline": null, "ratio": null, "skipped": "uvloop not installed"}
        ]}"#;
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].ours, rows[0].baseline, rows[0].ratio),
            (3.0, 1.0, 3.0)
        );
        assert!(rows[0].skipped.is_none());
        assert!(rows[1].baseline.is_nan() && rows[1].ratio.is_nan());
        assert_eq!(rows[1].skipped.as_deref(), Some("uvloop not installed"));
    }

    #[test]
    fn a_report_without_summary_is_refused() {
        assert!(parse(br#"{"throughput": []}"#)
            .unwrap_err()
            .contains("no summary"));
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn a_missing_interpreter_is_one_skipped_row() {
        let rows = python_rows(Path::new("/nonexistent/python"), &[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, GROUP);
        assert!(rows[0].skipped.as_deref().unwrap().contains("cannot run"));
    }
}

//! `fleetwire bench`: the transport engine against tokio + tokio-util.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Fewer repetitions and smaller runs.
    #[arg(long)]
    quick: bool,
    /// Also write {"results":[{"name","unit","ours","baseline","ratio"}]} here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only these parts: throughput, ping, memory, proxy (repeatable; default
    /// all).
    #[arg(long, value_name = "SECTION", value_parser = section)]
    only: Vec<fleetwire::transport::bench::Section>,
}

fn section(name: &str) -> Result<fleetwire::transport::bench::Section, String> {
    fleetwire::transport::bench::Section::parse(name)
        .ok_or_else(|| format!("{name}: expected throughput, ping, memory or proxy"))
}

pub(crate) fn bench(args: BenchArgs) -> ExitCode {
    use fleetwire::transport::bench::{bench_sections, Section};
    let sections = match args.only.is_empty() {
        true => Section::ALL.to_vec(),
        false => args.only.clone(),
    };
    let results = bench_sections(args.quick, &sections);
    println!(
        "{:<52} {:>10} {:>14} {:>14} {:>8}",
        "benchmark", "unit", "ours", "baseline", "ratio"
    );
    for r in &results {
        println!(
            "{:<52} {:>10} {:>14.1} {:>14.1} {:>7.2}x",
            r.name, r.unit, r.ours, r.baseline, r.ratio
        );
    }
    if let Some(path) = &args.json {
        // fields in the documented order; NaN (no ratio) becomes null
        let num = |x: f64| serde_json::Value::from(x).to_string();
        let string = |x: &str| serde_json::Value::from(x).to_string();
        let rows: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "    {{\"name\": {}, \"unit\": {}, \"ours\": {}, \"baseline\": {}, \"ratio\": {}}}",
                    string(&r.name),
                    string(r.unit),
                    num(r.ours),
                    num(r.baseline),
                    num(r.ratio)
                )
            })
            .collect();
        let text = format!("{{\"results\": [\n{}\n]}}", rows.join(",\n"));
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("fleetwire bench: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

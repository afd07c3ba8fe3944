//! `fleetwire vectors`: generate, verify and trace the golden vectors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use fleetwire_conformance::vectors;

#[derive(Subcommand)]
pub(crate) enum VectorsCommand {
    /// Regenerate the vectors deterministically.
    Generate {
        /// Output directory.
        #[arg(default_value = "vectors")]
        dir: PathBuf,
    },
    /// Check the vectors against this implementation; prints `N passed, M failed`.
    Verify {
        /// Vector directory.
        #[arg(default_value = "vectors")]
        dir: PathBuf,
    },
    /// Regenerate spec/TRACEABILITY.md, or with --check fail on an uncovered MUST.
    Trace {
        /// Fail (exit 1) when a MUST has no vector, case or test, or the file is stale.
        #[arg(long)]
        check: bool,
        /// The repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

pub(crate) fn vectors(cmd: VectorsCommand) -> ExitCode {
    match cmd {
        VectorsCommand::Generate { dir } => match vectors::generate(&dir) {
            Ok(n) => {
                println!("wrote {n} vectors to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fleetwire vectors generate: {}: {e}", dir.display());
                ExitCode::from(2)
            }
        },
        VectorsCommand::Verify { dir } => {
            let report = vectors::verify(&dir);
            for (id, message) in &report.failures {
                println!("FAILED {id}: {message}");
            }
            println!("{report}");
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        VectorsCommand::Trace { check, root } => trace(check, &root),
    }
}

fn trace(check: bool, root: &std::path::Path) -> ExitCode {
    let spec = root.join("spec/fleetwire-v1.md");
    let roots = [
        root.join("src"),
        root.join("tests"),
        root.join("conformance"),
        root.join("cli"),
    ];
    let roots: Vec<&std::path::Path> = roots.iter().map(PathBuf::as_path).collect();
    let cases = fleetwire_conformance::case_coverage();
    let mutants = fleetwire_conformance::recorded_mutants(root)
        .and_then(|r| Ok((r, fleetwire_conformance::declared_mutants(root)?)));
    let (recorded, declared) = match mutants {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fleetwire vectors trace: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match vectors::trace_with_mutants(
        &spec,
        &root.join("vectors"),
        &roots,
        &cases,
        Some((&recorded, &declared)),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetwire vectors trace: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        let problems = report.check();
        for p in &problems {
            println!("problem: {p}");
        }
        let covered = report
            .requirements
            .iter()
            .filter(|r| r.is_covered())
            .count();
        println!(
            "{covered} of {} requirements covered, {} problems",
            report.requirements.len(),
            problems.len()
        );
        return if problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    match report.write() {
        Ok(()) => {
            println!("wrote {}", report.output.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleetwire vectors trace: {e}");
            ExitCode::from(2)
        }
    }
}

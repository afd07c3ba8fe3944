//! The `fleetwire` command-line tool.
//!
//! Exit codes: 0 success, 1 invalid input or failed checks, 2 usage or I/O errors.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fleetwire: routed wire protocol tools.
#[derive(Parser)]
#[command(name = "fleetwire", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a plaintext Fleetwire byte stream (what flows inside TLS), one line per packet.
    Inspect {
        /// Print each payload in hexadecimal.
        #[arg(long)]
        hex: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// The max_payload to validate against (spec §4.5).
        #[arg(long, default_value_t = u16::MAX)]
        max_payload: u16,
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Golden test vectors.
    #[command(subcommand)]
    Vectors(VectorsCommand),
}

#[derive(Subcommand)]
enum VectorsCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect {
            hex,
            json,
            max_payload,
            file,
        } => inspect(
            &file,
            fleetwire::inspect::Options {
                json,
                hex,
                max_payload,
            },
        ),
        Command::Vectors(cmd) => vectors(cmd),
    }
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)?;
    } else {
        buf = std::fs::read(file)?;
    }
    Ok(buf)
}

fn inspect(file: &str, opts: fleetwire::inspect::Options) -> ExitCode {
    use fleetwire::inspect::End;
    let input = match read_input(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fleetwire inspect: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, end) = fleetwire::inspect::inspect(&input, &opts);
    print!("{text}");
    match end {
        End::Complete => ExitCode::SUCCESS,
        End::Incomplete { offset, needed } => {
            eprintln!("incomplete: the packet at offset {offset} needs {needed} more bytes");
            ExitCode::SUCCESS
        }
        End::Invalid { offset, error } => {
            eprintln!(
                "error: {} at offset {offset}: {}",
                error.code(),
                error.detail()
            );
            ExitCode::from(1)
        }
    }
}

fn vectors(cmd: VectorsCommand) -> ExitCode {
    use fleetwire::vectors;
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
    ];
    let roots: Vec<&std::path::Path> = roots.iter().map(PathBuf::as_path).collect();
    let report = match fleetwire::vectors::trace(&spec, &root.join("vectors"), &roots) {
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

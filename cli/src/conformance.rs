//! `fleetwire conformance`: argument parsing only; the work is in
//! `fleetwire_conformance`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fleetwire_conformance::{self as conformance, CodecArgs, FuzzArgs, Mutant};

pub(crate) fn mutant_parser(s: &str) -> Result<Mutant, String> {
    s.parse()
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ConformanceArgs {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the codec cases against an implementation under test.
    Codec {
        /// The implementation under test: a command line spoken to over stdin/stdout.
        #[arg(long, value_name = "CMD", conflicts_with = "mutant")]
        testee: Option<String>,
        /// Instead, a mutant of the reference, in-process (see conformance/mutants/).
        #[arg(long, value_name = "NAME", value_parser = mutant_parser)]
        mutant: Option<Mutant>,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Differential fuzzing of an implementation against the reference.
    Fuzz {
        /// The implementation under test.
        #[arg(long, value_name = "CMD", conflicts_with = "mutant")]
        testee: Option<String>,
        /// Instead, a mutant of the reference, in-process.
        #[arg(long, value_name = "NAME", value_parser = mutant_parser)]
        mutant: Option<Mutant>,
        /// Time budget in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Seed of every random choice (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Stop after this many inputs.
        #[arg(long)]
        iterations: Option<u64>,
        /// Per-request timeout in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
    },
    /// Combine JSON reports into an HTML matrix of cases x implementations.
    Report {
        /// Output HTML file.
        #[arg(long, value_name = "OUT")]
        html: PathBuf,
        /// JSON reports (from --json).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Live-peer mode: a fault-injecting reference peer over TCP/TLS against a running
    /// server (--connect) or client (--listen) under test.
    Peer(Box<PeerFlags>),
    /// Run every case against each mutant of the reference testee and print the kill
    /// matrix; exit 1 if a mutant survives.
    Mutants {
        /// Only list the mutants.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Args, Clone, Default)]
struct RunFlags {
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// Only cases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    case: Vec<String>,
    /// Leave out cases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    skip: Vec<String>,
    /// Seed of every random choice (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Per-request timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout: u64,
    /// Expected failures: lines of `GLOB  reason`.
    #[arg(long, value_name = "FILE")]
    expected: Option<PathBuf>,
    /// Rewrite the --expected file from this run.
    #[arg(long, requires = "expected")]
    update_expected: bool,
    /// Write a JSON report.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write an HTML matrix.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Build the cases from these vector files instead of the built-in vectors.
    #[arg(long, value_name = "DIR")]
    vectors: Option<PathBuf>,
    /// Do not minimise failing inputs.
    #[arg(long)]
    no_minimise: bool,
    /// Run the reference as a spawned `fleetwire testee` (exercises the protocol).
    #[arg(long)]
    spawn_reference: bool,
}

impl RunFlags {
    fn codec_args(self, testee: Option<String>, mutant: Option<Mutant>) -> CodecArgs {
        CodecArgs {
            testee,
            mutant,
            spawn_reference: self.spawn_reference,
            list: self.list,
            case: self.case,
            skip: self.skip,
            seed: self.seed,
            timeout_ms: self.timeout,
            expected: self.expected,
            update_expected: self.update_expected,
            json: self.json,
            junit: self.junit,
            html: self.html,
            vectors: self.vectors,
            no_minimise: self.no_minimise,
        }
    }
}

pub(crate) fn conformance(args: ConformanceArgs) -> ExitCode {
    let code = match args.mode {
        None => conformance::codec_command(&args.run.codec_args(None, None)),
        Some(Mode::Codec {
            testee,
            mutant,
            run,
        }) => conformance::codec_command(&run.codec_args(testee, mutant)),
        Some(Mode::Fuzz {
            testee,
            mutant,
            seconds,
            seed,
            iterations,
            timeout,
        }) => conformance::fuzz_command(&FuzzArgs {
            testee,
            mutant,
            seconds,
            seed,
            max_iterations: iterations,
            timeout_ms: timeout,
        }),
        Some(Mode::Report { html, reports }) => conformance::report_command(&html, &reports),
        Some(Mode::Mutants { list }) => mutants(list),
        Some(Mode::Peer(p)) => conformance::peer::peer_command(&p.peer_args()),
    };
    ExitCode::from(code)
}

/// Flags of `fleetwire conformance peer`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["connect", "listen"])))]
pub(crate) struct PeerFlags {
    /// Test a server: connect to it at ADDR (the runner acts as a client).
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// Test a client: listen on ADDR and accept one connection per case.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Plaintext TCP (must be chosen explicitly).
    #[arg(long, conflicts_with_all = ["ca", "server_name", "cert", "key"])]
    plaintext: bool,
    /// TLS with --connect: CA certificates that issue the server's certificate.
    #[arg(long, value_name = "F")]
    ca: Option<PathBuf>,
    /// TLS with --connect: the name the server's certificate must carry.
    #[arg(long, value_name = "N", requires = "ca")]
    server_name: Option<String>,
    /// TLS: our certificate chain (the server's with --listen, a client's with --connect).
    #[arg(long, value_name = "F", requires = "key")]
    cert: Option<PathBuf>,
    /// TLS: the key of --cert.
    #[arg(long, value_name = "F", requires = "cert")]
    key: Option<PathBuf>,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// Only cases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    case: Vec<String>,
    /// Leave out cases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    skip: Vec<String>,
    /// Write a JSON report.
    #[arg(long, value_name = "P")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "P")]
    junit: Option<PathBuf>,
    /// How long each expectation waits, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout: u64,
    /// Seed of PING ids and payloads (default: from the clock).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

impl PeerFlags {
    fn peer_args(&self) -> conformance::peer::PeerArgs {
        conformance::peer::PeerArgs {
            connect: self.connect.clone(),
            listen: self.listen.clone(),
            plaintext: self.plaintext,
            ca: self.ca.clone(),
            server_name: self.server_name.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            list: self.list,
            case: self.case.clone(),
            skip: self.skip.clone(),
            json: self.json.clone(),
            junit: self.junit.clone(),
            timeout_ms: self.timeout,
            seed: self.seed,
        }
    }
}

/// Prints the mutants, or runs every case against each and prints the kill matrix;
/// fails (1) when any mutant survives.
fn mutants(list: bool) -> u8 {
    if list {
        for m in Mutant::ALL {
            println!("{:<34} {:<22} {}", m.name(), m.tag(), m.description());
        }
        return 0;
    }
    let all = conformance::cases(1);
    let start = std::time::Instant::now();
    let kills = conformance::kill_matrix(&all, 2);
    println!(
        "kill matrix ({} cases, {:.1} s):",
        all.len(),
        start.elapsed().as_secs_f64()
    );
    for (m, ids) in &kills {
        let shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
        let more = if ids.len() > 3 { " ..." } else { "" };
        println!(
            "  {:<34} {:>3} cases: {}{more}",
            m.name(),
            ids.len(),
            shown.join(" ")
        );
    }
    let killed = kills.values().filter(|ids| !ids.is_empty()).count();
    let rate = 100.0 * killed as f64 / kills.len().max(1) as f64;
    println!("kill rate: {killed}/{} mutants ({rate:.1} %)", kills.len());
    u8::from(killed < kills.len())
}

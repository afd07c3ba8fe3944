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
    /// Differential fuzzing of an implementation against the reference: decode, encode
    /// and decompress requests, and random connection transcripts (PROTOCOL.md §6.1).
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
        /// The live-peer mutants instead: the reference node or client with one bug,
        /// each in its home role (the TLS client mutants in the client role, all others
        /// in the server role; TLS mutants against the tls.* cases).
        #[arg(long)]
        live: bool,
        /// With --live: every mutant that runs in the client role, in the client role
        /// (printed, not recorded).
        #[arg(long, requires = "live")]
        client: bool,
        /// The proxy-role mutants instead: the reference proxy with one bug, against
        /// every proxy-role case (`fleetwire conformance peer --role proxy`).
        #[arg(long, conflicts_with_all = ["live", "python"])]
        proxy: bool,
        /// The Python implementation's mutants instead (source patches listed in
        /// conformance/mutants/python.txt), each run by this interpreter on a patched copy.
        #[arg(long, value_name = "PYTHON", conflicts_with = "live")]
        python: Option<String>,
        /// Write the kill matrix to conformance/mutants/kills/<set>.tsv (the source of
        /// the mutant matrix in spec/TRACEABILITY.md).
        #[arg(long, conflicts_with = "check")]
        record: bool,
        /// Fail when conformance/mutants/kills/<set>.tsv differs from this run.
        #[arg(long)]
        check: bool,
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
        None => {
            // no target: the codec cases against the reference, then the live-peer
            // cases against the reference node, client and proxy over loopback
            let (seed, case, skip, list) = (
                args.run.seed.unwrap_or(1),
                args.run.case.clone(),
                args.run.skip.clone(),
                args.run.list,
            );
            // globs that select only live cases (`--case 'peer.*'`) skip the codec run
            let globs: Vec<_> = case.iter().map(|g| conformance::Glob::new(g)).collect();
            let codec_selected = globs.is_empty()
                || conformance::cases(seed)
                    .iter()
                    .any(|c| globs.iter().any(|g| g.matches(&c.id)));
            let codec = match codec_selected {
                true => conformance::codec_command(&args.run.codec_args(None, None)),
                false => 0,
            };
            if list || codec == 2 {
                codec
            } else {
                codec.max(conformance::peer::builtin_command(seed, &case, &skip))
            }
        }
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
        Some(Mode::Mutants {
            list,
            live,
            client,
            proxy,
            python,
            record,
            check,
        }) => {
            let save = Save { record, check };
            match (live, python) {
                _ if proxy => proxy_mutants(list, save),
                (true, _) => live_mutants(list, client, save),
                (false, Some(py)) => python_mutants(list, &py, save),
                (false, None) => mutants(list, save),
            }
        }
        Some(Mode::Peer(p)) => conformance::peer::peer_command(&p.peer_args()),
    };
    ExitCode::from(code)
}

/// Flags of `fleetwire conformance peer`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["connect", "listen", "role"])))]
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
    /// The testee's timers, for the timer cases (default: the spec's 10 s, 5 s, 30 s, 5 s).
    #[arg(long, value_name = "handshake=MS,header=MS,packet=MS,drain=MS")]
    timers: Option<String>,
    /// Timer cases that would wait longer than this are UNSUPPORTED (default 12000).
    #[arg(long, value_name = "MS")]
    max_wait: Option<u64>,
    /// The testee's max_packet_errors (default 16).
    #[arg(long, value_name = "N")]
    max_packet_errors: Option<u32>,
    /// The testee's max_empty_run (§11); without it the exact FLOOD point is not graded.
    /// With --role proxy: the proxy's on client connections (default 32).
    #[arg(long, value_name = "N")]
    max_empty_run: Option<u32>,
    /// A service the testee does not register (enables the NO_SERVICE case).
    #[arg(long, value_name = "S")]
    unregistered_service: Option<u8>,
    /// The role under test: server (--connect), client (--listen) or proxy (the runner
    /// plays nodes 2 and 3 behind the proxy and clients in front of it; plaintext).
    #[arg(long, value_name = "ROLE", value_parser = ["server", "client", "proxy"])]
    role: Option<String>,
    /// With --role proxy: the proxy under test, a command line run once per case.
    /// `{routes}` becomes `--route 2=ADDR --route 3=ADDR` (also in FLEETWIRE_ROUTES); it
    /// prints `listening on HOST:PORT`. Default: the reference proxy, in-process.
    #[arg(long, value_name = "CMD", requires = "role")]
    testee: Option<String>,
    /// With --role proxy: a proxy mutant of the reference instead (`fleetwire
    /// conformance mutants --proxy --list`).
    #[arg(
        long,
        value_name = "NAME",
        requires = "role",
        conflicts_with = "testee"
    )]
    mutant: Option<String>,
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
            timers: self.timers.clone(),
            max_wait_ms: self.max_wait,
            max_packet_errors: self.max_packet_errors,
            max_empty_run: self.max_empty_run,
            unregistered_service: self.unregistered_service,
            role: self.role.clone(),
            testee: self.testee.clone(),
            mutant: self.mutant.clone(),
        }
    }
}

/// What to do with a kill matrix besides printing it.
#[derive(Clone, Copy)]
struct Save {
    record: bool,
    check: bool,
}

impl Save {
    /// Records or checks `set`'s matrix; returns the exit code's contribution.
    fn apply(self, set: &str, rows: &[conformance::vectors::MutantCoverage]) -> u8 {
        if !(self.record || self.check) {
            return 0;
        }
        match conformance::record(std::path::Path::new("."), set, rows, self.check) {
            Ok(()) if self.record => {
                println!("wrote {}/{set}.tsv", conformance::KILLS_DIR);
                0
            }
            Ok(()) => 0,
            Err(e) => {
                eprintln!("fleetwire conformance mutants: {e}");
                1
            }
        }
    }
}

fn row(
    set: &str,
    name: &str,
    tags: &str,
    kills: &[String],
) -> conformance::vectors::MutantCoverage {
    conformance::vectors::MutantCoverage {
        set: set.into(),
        name: name.into(),
        tags: tags.split_whitespace().map(str::to_owned).collect(),
        kills: kills.to_vec(),
    }
}

/// A live or proxy kill matrix (`name`, `tags`, killing cases or a harness error) printed
/// and turned into record rows of `set`; the exit code of its kill rate.
fn kill_rows<'a>(
    set: &str,
    matrix: impl ExactSizeIterator<Item = (&'a str, &'a str, &'a Result<Vec<String>, String>)>,
) -> (Vec<conformance::vectors::MutantCoverage>, u8) {
    let all = matrix.len();
    let mut rows = Vec::new();
    for (name, tags, kills) in matrix {
        match kills {
            Ok(ids) => {
                print_kills(name, ids);
                rows.push(row(set, name, tags, ids));
            }
            Err(e) => println!("  {name:<40} harness error: {e}"),
        }
    }
    let killed = rows.iter().filter(|r| r.is_killed()).count();
    let code = print_rate(killed, all, &format!("{set} mutants"));
    (rows, code)
}

/// One line of a printed kill matrix.
fn print_kills(name: &str, kills: &[String]) {
    if kills.is_empty() {
        println!("  {name:<40} SURVIVED");
        return;
    }
    let shown: Vec<&str> = kills.iter().take(3).map(String::as_str).collect();
    let more = if kills.len() > 3 { " ..." } else { "" };
    println!(
        "  {name:<40} {:>3} cases: {}{more}",
        kills.len(),
        shown.join(" ")
    );
}

fn print_rate(killed: usize, all: usize, what: &str) -> u8 {
    let rate = 100.0 * killed as f64 / all.max(1) as f64;
    println!("kill rate: {killed}/{all} {what} ({rate:.1} %)");
    u8::from(killed < all)
}

/// The live-peer mutants: their list, or each against every live case of one role.
fn live_mutants(list: bool, client: bool, save: Save) -> u8 {
    use conformance::peer::{live_kill_matrix, LiveMutant, PeerRole};
    if list {
        for m in LiveMutant::ALL {
            println!("{:<40} {:<26} {}", m.name(), m.tag(), m.description());
        }
        return 0;
    }
    let role = if client {
        PeerRole::Client
    } else {
        PeerRole::Server
    };
    let start = std::time::Instant::now();
    let matrix = live_kill_matrix(role, 8);
    println!(
        "live kill matrix ({} role, {:.1} s):",
        role.name(),
        start.elapsed().as_secs_f64()
    );
    let (rows, code) = kill_rows("live", matrix.iter().map(|(m, k)| (m.name(), m.tag(), k)));
    // the record holds each mutant in its home role
    let save = if client {
        Save {
            record: false,
            check: false,
        }
    } else {
        save
    };
    code.max(save.apply("live", &rows))
}

/// The proxy-role mutants: their list, or each against every proxy-role case (less the
/// cases the unmutated reference proxy fails).
fn proxy_mutants(list: bool, save: Save) -> u8 {
    use conformance::peer::{proxy_kill_matrix, ProxyMutant};
    if list {
        for m in ProxyMutant::ALL {
            println!("{:<40} {:<26} {}", m.name(), m.tag(), m.description());
        }
        return 0;
    }
    let start = std::time::Instant::now();
    let matrix = proxy_kill_matrix(2);
    println!(
        "proxy kill matrix ({:.1} s):",
        start.elapsed().as_secs_f64()
    );
    let (rows, code) = kill_rows("proxy", matrix.iter().map(|(m, k)| (m.name(), m.tag(), k)));
    code.max(save.apply("proxy", &rows))
}

/// The Python implementation's mutants (source patches), each through every codec case.
fn python_mutants(list: bool, python: &str, save: Save) -> u8 {
    let root = std::path::Path::new(".");
    let mutants = match conformance::PyMutant::load(root) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fleetwire conformance mutants: {e}");
            return 2;
        }
    };
    if list {
        for m in &mutants {
            println!("{:<40} {:<26} {}", m.name, m.tags.join(" "), m.what);
        }
        return 0;
    }
    let all = conformance::cases(1);
    let start = std::time::Instant::now();
    let impl_dir = root.join(conformance::PY_IMPL_DIR);
    let (baseline, kills) =
        match conformance::python_kill_matrix(&mutants, &impl_dir, python, &all, 2) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("fleetwire conformance mutants: the unpatched implementation: {e}");
                return 2;
            }
        };
    println!(
        "Python kill matrix ({} cases, {:.1} s; the unpatched implementation fails {}: {}):",
        all.len(),
        start.elapsed().as_secs_f64(),
        baseline.len(),
        if baseline.is_empty() {
            "none".to_owned()
        } else {
            baseline.join(" ")
        }
    );
    let mut rows = Vec::new();
    let mut code = 0;
    for m in &mutants {
        match kills.get(&m.name) {
            Some(Ok(ids)) => {
                print_kills(&m.name, ids);
                rows.push(row("python", &m.name, &m.tags.join(" "), ids));
            }
            Some(Err(e)) => {
                println!("  {:<40} error: {e}", m.name);
                code = 2;
            }
            None => code = 2,
        }
    }
    let killed = rows.iter().filter(|r| r.is_killed()).count();
    code.max(print_rate(killed, mutants.len(), "Python mutants"))
        .max(save.apply("python", &rows))
}

/// Prints the mutants, or runs every case against each and prints the kill matrix;
/// fails (1) when any mutant survives.
fn mutants(list: bool, save: Save) -> u8 {
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
    let rows: Vec<_> = kills
        .iter()
        .map(|(m, ids)| {
            print_kills(m.name(), ids);
            row("reference", m.name(), m.tag(), ids)
        })
        .collect();
    let killed = rows.iter().filter(|r| r.is_killed()).count();
    print_rate(killed, kills.len(), "mutants").max(save.apply("reference", &rows))
}

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
    /// Run the reference node: echoes DATA to its sender, answers PING; one log line per
    /// connection opened and closed (stderr).
    Node(node_cli::NodeArgs),
    /// Ping a node: N PINGs, the RTT of each and a summary (min/avg/max/stddev, p50/p99).
    /// Exit 0 on success, 1 on a protocol, TLS or connection failure, 2 on usage errors.
    Ping(node_cli::PingArgs),
    /// Write a throw-away test CA, certificate and key (ca.pem, cert.pem, key.pem) for
    /// running TLS locally. Not for production.
    GenCert(node_cli::GenCertArgs),
    /// Conformance suite: check an implementation through the testee protocol
    /// (conformance/PROTOCOL.md). Without a mode, runs every case against the reference.
    /// Exit 0 all passed (or only expected failures), 1 failures, 2 harness or usage error.
    Conformance(Box<conformance_cli::ConformanceArgs>),
    /// The reference testee of the conformance suite, on stdin/stdout.
    #[command(hide = true)]
    Testee(conformance_cli::TesteeArgs),
    /// Run a proxy (spec §7.3): forwards DATA and ERROR packets by their routing header
    /// alone, payload bytes unchanged, stamping the source (§7.4).
    Proxy(proxy_cli::ProxyArgs),
    /// Run a local cluster in one process on loopback: one proxy, two echo nodes (ids 1
    /// and 2) and N clients sending steady traffic to both nodes. Prints, once per
    /// second, per route: packets/s and MB/s forwarded, refused packets, and the round
    /// trip p50/p99 the clients measure. Runs until --seconds, Ctrl-C or the end of
    /// standard input.
    Cluster(proxy_cli::ClusterArgs),
    /// The transport engine against tokio + tokio-util (build with
    /// `--release --features cli,transport-bench`).
    #[cfg(feature = "transport-bench")]
    Bench(proxy_cli::BenchArgs),
    /// The hostile-load suite: runs this executable's node and proxy as child processes
    /// on loopback, one attack at a time, and checks survival, peak RSS against the
    /// budget, a well-behaved client's echoes and nothing lost. Exit 0 when all held.
    Attack {
        /// The long form (bigger, longer attacks: the figures).
        #[arg(long)]
        long: bool,
        /// Only the attacks whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Peak RSS allowed to the attacked process, in MiB.
        #[arg(long, default_value_t = 256)]
        budget_mib: u64,
    },
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
        Command::Node(args) => node_cli::node(args),
        Command::Ping(args) => node_cli::ping(args),
        Command::GenCert(args) => node_cli::gen_cert(args),
        Command::Conformance(args) => conformance_cli::conformance(*args),
        Command::Testee(args) => conformance_cli::testee(args),
        Command::Proxy(args) => proxy_cli::proxy(args),
        Command::Cluster(args) => proxy_cli::cluster(args),
        #[cfg(feature = "transport-bench")]
        Command::Bench(args) => proxy_cli::bench(args),
        Command::Attack {
            long,
            only,
            budget_mib,
        } => attack(long, only, budget_mib),
    }
}

fn attack(long: bool, only: Option<String>, budget_mib: u64) -> ExitCode {
    use fleetwire::attack::{run, AttackOptions};
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("fleetwire attack: cannot find this executable");
        return ExitCode::from(2);
    };
    let mut opts = AttackOptions::new(exe);
    opts.long = long;
    opts.only = only;
    opts.budget_bytes = budget_mib << 20;
    let outcomes = run(&opts, &mut std::io::stdout());
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    println!("{} attacks, {failed} failed", outcomes.len());
    if failed == 0 && !outcomes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
    let cases = fleetwire::conformance::case_coverage();
    let report =
        match fleetwire::vectors::trace_with_cases(&spec, &root.join("vectors"), &roots, &cases) {
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

/// `fleetwire node`, `fleetwire ping` and `fleetwire gen-cert`: the reference endpoint
/// (`fleetwire::node`) on the command line.
/// SIGTERM and SIGINT: the first runs `first` (a graceful shutdown), a second one exits
/// at once with status 130.
fn on_termination(first: impl FnOnce() + Send + 'static) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => return eprintln!("fleetwire: no signal handling: {e}"),
    };
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if signals.next().is_some() {
            eprintln!("fleetwire: shutting down gracefully (signal again to exit at once)");
            first();
        }
        if signals.next().is_some() {
            std::process::exit(130);
        }
    });
}

mod node_cli {
    use std::io::Write;
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use clap::{ArgGroup, Args, ValueEnum};
    use fleetwire::node::{
        connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity, RttStats,
    };
    use fleetwire::{Codec, Route};

    /// A node or proxy id (spec §7.1).
    fn node_id_parser() -> clap::builder::RangedI64ValueParser<u16> {
        clap::value_parser!(u16).range(1..=65534)
    }

    #[derive(Args)]
    #[command(group(ArgGroup::new("security").required(true).args(["cert", "plaintext"])))]
    pub(crate) struct NodeArgs {
        /// Address to listen on, e.g. 127.0.0.1:7000 (port 0: any free port).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// TLS certificate chain (PEM, leaf first).
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Require client certificates issued by these CAs (mutual TLS, spec §10.2).
        #[arg(long, value_name = "FILE", requires = "cert")]
        client_ca: Option<PathBuf>,
        /// Plaintext TCP, without TLS. Must be chosen explicitly (spec §2).
        #[arg(long)]
        plaintext: bool,
        /// This node's id (1..=65534).
        #[arg(long, default_value_t = 1, value_parser = node_id_parser())]
        node_id: u16,
        /// Exit after serving this many connections.
        #[arg(long, value_name = "N")]
        max_conns: Option<usize>,
        /// Shut down gracefully (GOAWAY to every connection) when standard input ends.
        #[arg(long)]
        stop_on_stdin_eof: bool,
        /// Preferred codec for echoed DATA, when the peer announced it (spec §9.2).
        #[arg(long, value_enum, default_value = "none")]
        echo_codec: CodecArg,
        /// Trust a proxy connecting from this IP address to stamp sources (spec §7.4),
        /// e.g. a plaintext `fleetwire proxy` on this host. Repeatable.
        #[arg(long, value_name = "IP")]
        trust_peer: Vec<std::net::IpAddr>,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum CodecArg {
        None,
        Snappy,
        Zlib,
    }

    impl From<CodecArg> for Codec {
        fn from(c: CodecArg) -> Codec {
            match c {
                CodecArg::None => Codec::None,
                CodecArg::Snappy => Codec::Snappy,
                CodecArg::Zlib => Codec::Zlib,
            }
        }
    }

    fn read_file(path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn node_security(args: &NodeArgs) -> Result<NodeSecurity, String> {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            return Ok(NodeSecurity::Plaintext); // clap: --plaintext was given
        };
        let client_ca = args.client_ca.as_deref().map(read_file).transpose()?;
        NodeSecurity::tls(&read_file(cert)?, &read_file(key)?, client_ca.as_deref())
            .map_err(|e| e.to_string())
    }

    pub(crate) fn node(args: NodeArgs) -> ExitCode {
        let security = match node_security(&args) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fleetwire node: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match TcpListener::bind(&args.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fleetwire node: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        };
        let mode = match (&security, args.client_ca.is_some()) {
            (NodeSecurity::Plaintext, _) => "plaintext",
            (_, true) => "TLS 1.3, mutual",
            _ => "TLS 1.3",
        };
        let mut opts = NodeOptions::new(args.node_id, security);
        opts.echo_codec = args.echo_codec.into();
        opts.max_conns = args.max_conns;
        opts.trusted_peers = args.trust_peer.clone();
        opts.log = Some(Arc::new(|line: &str| eprintln!("{line}")));
        let stop = opts.shutdown.clone();
        crate::on_termination(move || stop.trigger());
        if args.stop_on_stdin_eof {
            let stop = opts.shutdown.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                stop.trigger();
            });
        }
        match listener.local_addr() {
            Ok(addr) => println!(
                "fleetwire node {} listening on {addr} ({mode})",
                args.node_id
            ),
            Err(e) => eprintln!("fleetwire node: {e}"),
        }
        let _ = std::io::stdout().flush();
        match serve(listener, opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fleetwire node: {e}");
                ExitCode::from(2)
            }
        }
    }

    #[derive(Args)]
    #[command(group(ArgGroup::new("security").required(true).args(["ca", "plaintext"])))]
    pub(crate) struct PingArgs {
        /// The node's address, e.g. 127.0.0.1:7000.
        addr: String,
        /// Number of PINGs.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Pause between PINGs, in milliseconds.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Probe with a DATA packet of this many bytes echoed by the node, instead of a
        /// PING (whose payload is fixed at 16 bytes, spec §5.3). 0: PING.
        #[arg(long, value_name = "BYTES", default_value_t = 0)]
        size: usize,
        /// Trust these CA certificates (PEM) and use TLS.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The name the server certificate must carry (default: the host of ADDR).
        #[arg(long, value_name = "NAME", requires = "ca")]
        server_name: Option<String>,
        /// Client certificate for mutual TLS (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["key", "ca"])]
        cert: Option<PathBuf>,
        /// Client private key for mutual TLS (PEM).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Plaintext TCP, without TLS. Must be chosen explicitly (spec §2).
        #[arg(long)]
        plaintext: bool,
        /// Print only the summary.
        #[arg(short, long)]
        quiet: bool,
        /// Bound of each step (connect, each PING), in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    }

    /// The host part of `host:port` or `[v6]:port`.
    fn host_of(addr: &str) -> &str {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    fn client_security(args: &PingArgs) -> Result<ClientSecurity, String> {
        let Some(ca) = &args.ca else {
            return Ok(ClientSecurity::Plaintext); // clap: --plaintext was given
        };
        let name = args.server_name.as_deref().unwrap_or(host_of(&args.addr));
        let identity = match (&args.cert, &args.key) {
            (Some(c), Some(k)) => Some((read_file(c)?, read_file(k)?)),
            _ => None,
        };
        let identity_ref = identity.as_ref().map(|(c, k)| (&c[..], &k[..]));
        ClientSecurity::tls(&read_file(ca)?, name, identity_ref).map_err(|e| e.to_string())
    }

    pub(crate) fn ping(args: PingArgs) -> ExitCode {
        let security = match client_security(&args) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fleetwire ping: {e}");
                return ExitCode::from(2);
            }
        };
        let mode = if security.is_tls() {
            "TLS"
        } else {
            "plaintext"
        };
        let mut opts = ClientOptions::new(security);
        opts.timeout = Duration::from_millis(args.timeout_ms.max(1));
        let mut client = match connect(args.addr.as_str(), opts) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetwire ping: {}: {e}", args.addr);
                return ExitCode::from(1);
            }
        };
        let node = client.peer().map_or(0, |p| p.node_id);
        let probe = match args.size {
            0 => "PING".to_owned(),
            n => format!("DATA echo of {n} bytes"),
        };
        println!(
            "FLEETWIRE PING {} ({mode}, node {node}): {probe}",
            args.addr
        );
        let started = Instant::now();
        let mut samples = Vec::with_capacity(args.count as usize);
        let payload = vec![0x5Au8; args.size];
        let mut failure = None;
        for seq in 1..=args.count {
            let rtt = match args.size {
                0 => client.ping(),
                _ => client.echo(Route::default(), &payload),
            };
            match rtt {
                Ok(rtt) => {
                    if !args.quiet {
                        println!("seq={seq} rtt={:.3} ms", rtt.as_secs_f64() * 1e3);
                    }
                    samples.push(rtt);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if seq < args.count && args.interval_ms > 0 {
                std::thread::sleep(Duration::from_millis(args.interval_ms));
            }
        }
        let elapsed = started.elapsed();
        println!("--- {} fleetwire ping statistics ---", args.addr);
        println!(
            "{} sent, {} received, {} lost, {:.1} s",
            samples.len() + usize::from(failure.is_some()),
            samples.len(),
            usize::from(failure.is_some()),
            elapsed.as_secs_f64()
        );
        if let Some(stats) = RttStats::from_samples(&samples) {
            println!("{stats}");
        }
        if let Some(e) = failure {
            eprintln!("fleetwire ping: {}: {e}", args.addr);
            return ExitCode::from(1);
        }
        match client.close() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fleetwire ping: {}: closing: {e}", args.addr);
                ExitCode::from(1)
            }
        }
    }

    #[derive(Args)]
    pub(crate) struct GenCertArgs {
        /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Names of the certificate (DNS names or IP addresses); repeat for several.
        /// Default: localhost and 127.0.0.1.
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Node id bound to the certificate (URI SAN fleetwire:node:<id>, spec §10.2).
        #[arg(long, default_value_t = 1, value_parser = node_id_parser())]
        node_id: u16,
    }

    pub(crate) fn gen_cert(args: GenCertArgs) -> ExitCode {
        let names: Vec<&str> = if args.names.is_empty() {
            vec!["localhost", "127.0.0.1"]
        } else {
            args.names.iter().map(String::as_str).collect()
        };
        let pki = match fleetwire::tls::generate_test_pki(&names, Some(args.node_id)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fleetwire gen-cert: {e}");
                return ExitCode::from(2);
            }
        };
        let files = [
            ("ca.pem", &pki.ca_cert_pem),
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
        ];
        if let Err(e) = write_pem_files(&args.out, &files) {
            eprintln!("fleetwire gen-cert: {}: {e}", args.out.display());
            return ExitCode::from(2);
        }
        let dir = args.out.display();
        println!(
            "wrote {dir}/ca.pem, {dir}/cert.pem, {dir}/key.pem: a throw-away test CA and a \
             certificate for {} and fleetwire:node:{} (not for production)",
            names.join(", "),
            args.node_id
        );
        println!("run a node:  fleetwire node --listen 127.0.0.1:7000 --cert {dir}/cert.pem --key {dir}/key.pem --node-id {}", args.node_id);
        println!(
            "ping it:     fleetwire ping 127.0.0.1:7000 --ca {dir}/ca.pem --server-name {}",
            names[0]
        );
        ExitCode::SUCCESS
    }

    fn write_pem_files(dir: &Path, files: &[(&str, &String)]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, pem) in files {
            let mut file = open_private(&dir.join(name), *name == "key.pem")?;
            file.write_all(pem.as_bytes())?;
        }
        Ok(())
    }

    /// Creates or truncates `path`; a private key is readable by its owner only.
    fn open_private(path: &Path, private: bool) -> std::io::Result<std::fs::File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        opts.open(path)
    }
}

/// `fleetwire conformance` and `fleetwire testee`: argument parsing only; the work is in
/// `fleetwire::conformance`.
mod conformance_cli {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::{Args, Subcommand};
    use fleetwire::conformance::{self, CodecArgs, Faults, FuzzArgs, Mutant};

    fn mutant_parser(s: &str) -> Result<Mutant, String> {
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

    #[derive(Args)]
    pub(crate) struct TesteeArgs {
        /// Inject one deliberate bug (also FLEETWIRE_MUTANT).
        #[arg(long, value_name = "NAME", value_parser = mutant_parser)]
        mutant: Option<Mutant>,
        /// (harness self-test) exit abruptly on requests whose case matches GLOB.
        #[arg(long, value_name = "GLOB", hide = true)]
        crash_on: Option<String>,
        /// (harness self-test) never answer requests whose case matches GLOB.
        #[arg(long, value_name = "GLOB", hide = true)]
        hang_on: Option<String>,
    }

    pub(crate) fn testee(args: TesteeArgs) -> ExitCode {
        let faults = Faults {
            crash_on: args.crash_on,
            hang_on: args.hang_on,
        };
        ExitCode::from(conformance::testee_command(args.mutant, &faults))
    }
}

mod proxy_cli {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use clap::{ArgGroup, Args};
    use fleetwire::tls::{client_config, server_config};
    use fleetwire::transport::proxy::{Proxy, ProxyConfig};
    use fleetwire::transport::TlsOptions;

    #[derive(Args)]
    #[command(group(ArgGroup::new("security").required(true).args(["cert", "plaintext"])))]
    pub(crate) struct ProxyArgs {
        /// Address to listen on, e.g. 127.0.0.1:7100 (port 0: any free port).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// This proxy's node id (1..=65534).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=65534))]
        node_id: u16,
        /// A route: packets for node NODE go to ADDR (a node or the next proxy).
        /// Repeatable.
        #[arg(long, value_name = "NODE=ADDR")]
        route: Vec<String>,
        /// More routes, one `NODE=ADDR` per line (`#` comments). The file is re-read
        /// when it changes and the routing table swapped while traffic flows.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Ids attributed to connecting clients, LO-HI (must not overlap the routes).
        #[arg(long, value_name = "LO-HI", default_value = "40000-65534")]
        client_ids: String,
        /// TLS certificate chain (PEM): served to clients, and presented to nodes.
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// CA certificates that issued the nodes' certificates (TLS to the routes).
        #[arg(long, value_name = "FILE", requires = "cert")]
        ca: Option<PathBuf>,
        /// The name the nodes' certificates must carry (default: the route's IP).
        #[arg(long, value_name = "NAME", requires = "ca")]
        server_name: Option<String>,
        /// Plaintext TCP, without TLS. Must be chosen explicitly (spec §2).
        #[arg(long)]
        plaintext: bool,
        /// Trust peer proxies at this IP address to stamp the source of what they forward
        /// (X = 1) without a proxy certificate: the explicit local configuration of a
        /// trusted link (spec §7.4), for plaintext links between proxies. Applies to
        /// connections from and routes to that address. Repeatable. Only for peers on
        /// loopback or a private network.
        #[arg(long, value_name = "IP")]
        trust_peer: Vec<IpAddr>,
        /// Shut down gracefully when standard input ends.
        #[arg(long)]
        stop_on_stdin_eof: bool,
    }

    fn read_file(path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn parse_route(line: &str) -> Result<(u16, SocketAddr), String> {
        let (node, addr) = line
            .split_once('=')
            .ok_or_else(|| format!("route {line:?}: expected NODE=ADDR"))?;
        let node: u16 = node
            .trim()
            .parse()
            .map_err(|_| format!("route {line:?}: bad node id"))?;
        let addr = addr
            .trim()
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("route {line:?}: bad address"))?;
        Ok((node, addr))
    }

    fn routes(args: &ProxyArgs) -> Result<BTreeMap<u16, SocketAddr>, String> {
        let mut routes = BTreeMap::new();
        for r in &args.route {
            let (n, a) = parse_route(r)?;
            routes.insert(n, a);
        }
        if let Some(path) = &args.config {
            let text = String::from_utf8(read_file(path)?)
                .map_err(|_| format!("{}: not UTF-8", path.display()))?;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if !line.is_empty() {
                    let (n, a) = parse_route(line)?;
                    routes.insert(n, a);
                }
            }
        }
        Ok(routes)
    }

    fn config(args: &ProxyArgs) -> Result<ProxyConfig, String> {
        let listen = args
            .listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("bad listen address {}", args.listen))?;
        let mut config = ProxyConfig::new(args.node_id, listen);
        let (lo, hi) = args
            .client_ids
            .split_once('-')
            .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
            .ok_or_else(|| format!("bad --client-ids {}", args.client_ids))?;
        config.client_ids = lo..=hi;
        config.routes = routes(args)?;
        config.trusted_peers = args.trust_peer.clone();
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            let (cert, key) = (read_file(cert)?, read_file(key)?);
            let server = server_config(&cert, &key, None).map_err(|e| e.to_string())?;
            config.listen_tls = TlsOptions::Server(server);
            let Some(ca) = &args.ca else {
                return Err("TLS to the routes needs --ca".into());
            };
            let client =
                client_config(&read_file(ca)?, Some((&cert, &key))).map_err(|e| e.to_string())?;
            config.connect_tls = Some((client, args.server_name.clone()));
        }
        Ok(config)
    }

    fn modified(path: &Path) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    pub(crate) fn proxy(args: ProxyArgs) -> ExitCode {
        let config = match config(&args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetwire proxy: {e}");
                return ExitCode::from(2);
            }
        };
        let n = config.routes.len();
        let proxy = match Proxy::start(config) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fleetwire proxy: {e}");
                return ExitCode::from(2);
            }
        };
        let mode = if args.plaintext {
            "plaintext"
        } else {
            "TLS 1.3"
        };
        println!(
            "fleetwire proxy {} listening on {} ({mode}), {n} routes",
            args.node_id,
            proxy.local_addr()
        );
        let _ = std::io::stdout().flush();
        let stop = Arc::new(AtomicBool::new(false));
        let on_signal = stop.clone();
        crate::on_termination(move || on_signal.store(true, Ordering::SeqCst));
        if args.stop_on_stdin_eof {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                stop.store(true, Ordering::SeqCst);
            });
        }
        let mut seen = args.config.as_deref().and_then(modified);
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            let Some(path) = &args.config else { continue };
            let now = modified(path);
            if now == seen {
                continue;
            }
            seen = now;
            match routes(&args).map(|r| proxy.set_routes(&r).map(|()| r.len())) {
                Ok(Ok(n)) => eprintln!("fleetwire proxy: routing table swapped, {n} routes"),
                Ok(Err(e)) => eprintln!("fleetwire proxy: table refused, old one kept: {e}"),
                Err(e) => eprintln!("fleetwire proxy: table refused, old one kept: {e}"),
            }
        }
        proxy.shutdown(Duration::from_secs(5));
        ExitCode::SUCCESS
    }

    #[derive(Args)]
    pub(crate) struct ClusterArgs {
        /// Stop after this many seconds (default: run until Ctrl-C or the end of
        /// standard input).
        #[arg(long, value_name = "S")]
        seconds: Option<u64>,
        /// Clients connected to the proxy.
        #[arg(long, value_name = "N", default_value_t = 2,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        clients: u16,
        /// Payload bytes per packet (the first 8 carry the send time).
        #[arg(long, value_name = "BYTES", default_value_t = 64,
              value_parser = clap::value_parser!(u16).range(8..))]
        size: u16,
        /// Packets each client keeps in flight to each node.
        #[arg(long, value_name = "N", default_value_t = 32,
              value_parser = clap::value_parser!(u16).range(1..))]
        window: u16,
        /// TLS 1.3 with a throw-away test PKI (node and proxy identities, spec §10.2);
        /// plaintext otherwise.
        #[arg(long)]
        tls: bool,
    }

    fn millis(d: Option<Duration>) -> String {
        d.map_or_else(|| "-".into(), |d| format!("{:.3}ms", d.as_secs_f64() * 1e3))
    }

    pub(crate) fn cluster(args: ClusterArgs) -> ExitCode {
        use fleetwire::transport::cluster::{Cluster, ClusterConfig, NODES, PROXY_ID};
        let config = ClusterConfig {
            clients: usize::from(args.clients),
            size: usize::from(args.size),
            window: usize::from(args.window),
            tls: args.tls,
        };
        let mut cluster = match Cluster::start(config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetwire cluster: {e}");
                return ExitCode::from(2);
            }
        };
        let mode = if args.tls { "TLS 1.3" } else { "plaintext" };
        println!(
            "fleetwire cluster: proxy {PROXY_ID} on {} ({mode}), nodes {NODES:?}, {} clients, \
             {}-byte payloads, {} in flight per client and node",
            cluster.proxy().local_addr(),
            args.clients,
            args.size,
            args.window
        );
        println!(
            "{:>6}  {:<8} {:>11} {:>9} {:>10} {:>10} {:>8}",
            "time", "route", "packets/s", "MB/s", "rtt p50", "rtt p99", "refused"
        );
        let _ = std::io::stdout().flush();
        let stop = Arc::new(AtomicBool::new(false));
        if args.seconds.is_none() {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                stop.store(true, Ordering::SeqCst);
            });
        }
        let start = std::time::Instant::now();
        let mut tick = 0u64;
        while !stop.load(Ordering::SeqCst) && args.seconds.is_none_or(|s| tick < s) {
            tick += 1;
            let next = start + Duration::from_secs(tick);
            while std::time::Instant::now() < next && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            for r in cluster.report() {
                println!(
                    "{:>5}s  {:<8} {:>11.0} {:>9.3} {:>10} {:>10} {:>8}",
                    tick,
                    r.route.to_string(),
                    r.packets_per_sec,
                    r.mbytes_per_sec,
                    millis(r.rtt_p50),
                    millis(r.rtt_p99),
                    r.refused
                );
            }
            let _ = std::io::stdout().flush();
        }
        cluster.stop();
        ExitCode::SUCCESS
    }

    #[cfg(feature = "transport-bench")]
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

    #[cfg(feature = "transport-bench")]
    fn section(name: &str) -> Result<fleetwire::transport::bench::Section, String> {
        fleetwire::transport::bench::Section::parse(name)
            .ok_or_else(|| format!("{name}: expected throughput, ping, memory or proxy"))
    }

    #[cfg(feature = "transport-bench")]
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
}

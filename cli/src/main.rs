//! The `fleetwire` command-line tool: one module per subcommand; this file parses the
//! command line and dispatches.
//!
//! Exit codes: 0 success, 1 invalid input or failed checks, 2 usage or I/O errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod attack;
#[cfg(feature = "transport-bench")]
mod bench;
#[cfg(feature = "transport-bench")]
mod bench_python;
mod capture;
mod cluster;
mod conformance;
mod gen_cert;
mod inspect;
mod logging;
mod metrics;
mod node;
mod ping;
mod proxy;
mod signals;
mod testee;
mod vectors;

/// Fleetwire: routed wire protocol tools.
#[derive(Parser)]
#[command(name = "fleetwire", version, about)]
struct Cli {
    /// More log lines on stderr: -v adds DEBUG (packet errors, handshakes, the engine's
    /// connections and budgets), -vv TRACE. `RUST_LOG` (an env filter, e.g.
    /// `RUST_LOG=fleetwire::transport=debug`) overrides. Node and proxy log at INFO
    /// without it; the other commands log nothing.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a plaintext Fleetwire byte stream (what flows inside TLS), one line per packet,
    /// or every Fleetwire TCP stream of a pcap/pcapng capture, reassembled.
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
    Vectors(vectors::VectorsCommand),
    /// Run the reference node: echoes DATA to its sender, answers PING; one log line per
    /// connection opened and closed (stderr).
    Node(node::NodeArgs),
    /// Ping a node: N PINGs, the RTT of each and a summary (min/avg/max/stddev, p50/p99).
    /// Exit 0 on success, 1 on a protocol, TLS or connection failure, 2 on usage errors.
    Ping(ping::PingArgs),
    /// Write a throw-away test CA, certificate and key (ca.pem, cert.pem, key.pem) for
    /// running TLS locally. Not for production.
    GenCert(gen_cert::GenCertArgs),
    /// Conformance suite: check an implementation through the testee protocol
    /// (conformance/PROTOCOL.md). Without a mode, runs every case against the reference.
    /// Exit 0 all passed (or only expected failures), 1 failures, 2 harness or usage error.
    Conformance(Box<conformance::ConformanceArgs>),
    /// The reference testee of the conformance suite, on stdin/stdout.
    #[command(hide = true)]
    Testee(testee::TesteeArgs),
    /// Run a proxy (spec §7.3): forwards DATA and ERROR packets by their routing header
    /// alone, payload bytes unchanged, stamping the source (§7.4).
    Proxy(proxy::ProxyArgs),
    /// Run a local cluster in one process on loopback: one proxy, two echo nodes (ids 1
    /// and 2) and N clients sending steady traffic to both nodes. Prints, once per
    /// second, per route: packets/s and MB/s forwarded, refused packets, and the round
    /// trip p50/p99 the clients measure. Runs until --seconds, Ctrl-C or the end of
    /// standard input.
    Cluster(cluster::ClusterArgs),
    /// The transport engine against tokio + tokio-util, and with --python the Python
    /// package against asyncio, uvloop and pyzmq (build with `--release -p
    /// fleetwire-cli --features transport-bench`).
    #[cfg(feature = "transport-bench")]
    Bench(bench::BenchArgs),
    /// The hostile-load suite: runs this executable's node and proxy as child processes
    /// on loopback, one attack at a time, and checks survival, peak RSS against the
    /// budget, a well-behaved client's echoes and nothing lost. Exit 0 when all held.
    Attack(attack::AttackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Node(_) => logging::init(cli.verbose, true, ""),
        Command::Proxy(_) => logging::init(cli.verbose, true, "fleetwire proxy: "),
        _ => logging::init(cli.verbose, false, ""),
    }
    match cli.command {
        Command::Inspect {
            hex,
            json,
            max_payload,
            file,
        } => inspect::inspect(
            &file,
            fleetwire::inspect::Options {
                json,
                hex,
                max_payload,
            },
        ),
        Command::Vectors(cmd) => vectors::vectors(cmd),
        Command::Node(args) => node::node(args),
        Command::Ping(args) => ping::ping(args),
        Command::GenCert(args) => gen_cert::gen_cert(args),
        Command::Conformance(args) => conformance::conformance(*args),
        Command::Testee(args) => testee::testee(args),
        Command::Proxy(args) => proxy::proxy(args),
        Command::Cluster(args) => cluster::cluster(args),
        #[cfg(feature = "transport-bench")]
        Command::Bench(args) => bench::bench(args),
        Command::Attack(args) => attack::attack(args),
    }
}

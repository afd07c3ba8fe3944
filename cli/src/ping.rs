//! `fleetwire ping`: PINGs (or DATA echoes) to a node, with RTT statistics.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use fleetwire::node::{connect, ClientOptions, ClientSecurity, RttStats};
use fleetwire::Route;

use crate::node::read_file;

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
    /// Print one JSON document at the end instead of text (like iperf's -J): the
    /// address, mode, node, every sample and the statistics, in milliseconds.
    #[arg(long)]
    json: bool,
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
    if !args.json {
        println!(
            "FLEETWIRE PING {} ({mode}, node {node}): {probe}",
            args.addr
        );
    }
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
                if !args.quiet && !args.json {
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
    let closed = failure.is_none().then(|| client.close());
    if args.json {
        let report = Report {
            args: &args,
            mode,
            node,
            probe: &probe,
            samples: &samples,
            elapsed,
            error: failure.as_ref().map(ToString::to_string),
        };
        println!("{}", report.to_json());
    } else {
        print_text(&args, &samples, failure.is_some(), elapsed);
    }
    if let Some(e) = failure {
        eprintln!("fleetwire ping: {}: {e}", args.addr);
        return ExitCode::from(1);
    }
    match closed {
        Some(Err(e)) => {
            eprintln!("fleetwire ping: {}: closing: {e}", args.addr);
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `--json` document.
struct Report<'a> {
    args: &'a PingArgs,
    mode: &'a str,
    node: u16,
    probe: &'a str,
    samples: &'a [Duration],
    elapsed: Duration,
    error: Option<String>,
}

impl Report<'_> {
    fn to_json(&self) -> serde_json::Value {
        let stats = RttStats::from_samples(self.samples).map(|s| {
            serde_json::json!({
                "count": s.count, "min": ms(s.min), "avg": ms(s.avg), "max": ms(s.max),
                "stddev": ms(s.stddev), "p50": ms(s.p50), "p99": ms(s.p99),
            })
        });
        let lost = usize::from(self.error.is_some());
        serde_json::json!({
            "addr": self.args.addr,
            "mode": self.mode,
            "node": self.node,
            "probe": self.probe,
            "size": self.args.size,
            "sent": self.samples.len() + lost,
            "received": self.samples.len(),
            "lost": lost,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rtt_ms": self.samples.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "stats_ms": stats,
            "error": self.error,
        })
    }
}

fn print_text(args: &PingArgs, samples: &[Duration], failed: bool, elapsed: Duration) {
    println!("--- {} fleetwire ping statistics ---", args.addr);
    println!(
        "{} sent, {} received, {} lost, {:.1} s",
        samples.len() + usize::from(failed),
        samples.len(),
        usize::from(failed),
        elapsed.as_secs_f64()
    );
    if let Some(stats) = RttStats::from_samples(samples) {
        println!("{stats}");
    }
}

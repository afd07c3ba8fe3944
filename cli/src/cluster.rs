//! `fleetwire cluster`: a local cluster in one process on loopback.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

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
    /// JSON Lines instead of the table: a `start` object, then one `report` object per
    /// route and second (rates, RTT percentiles in milliseconds, refusals).
    #[arg(long)]
    json: bool,
}

fn millis_json(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| (d.as_secs_f64() * 1e3).into())
}

fn millis(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3}ms", d.as_secs_f64() * 1e3))
}

pub(crate) fn cluster(args: ClusterArgs) -> ExitCode {
    use fleetwire::transport::cluster::{Cluster, ClusterConfig, NODES, PROXY_ID};
    let config = ClusterConfig::default()
        .with_clients(usize::from(args.clients))
        .with_size(usize::from(args.size))
        .with_window(usize::from(args.window))
        .with_tls(args.tls);
    let mut cluster = match Cluster::start(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleetwire cluster: {e}");
            return ExitCode::from(2);
        }
    };
    let mode = if args.tls { "TLS 1.3" } else { "plaintext" };
    if args.json {
        let start = serde_json::json!({
            "event": "start", "proxy": PROXY_ID, "addr": cluster.proxy().local_addr().to_string(),
            "mode": mode, "nodes": NODES, "clients": args.clients, "size": args.size,
            "window": args.window,
        });
        println!("{start}");
    } else {
        print_header(&cluster, &args, mode);
    }
    let _ = std::io::stdout().flush();
    run(&mut cluster, &args);
    cluster.stop();
    ExitCode::SUCCESS
}

fn print_header(cluster: &fleetwire::transport::cluster::Cluster, args: &ClusterArgs, mode: &str) {
    use fleetwire::transport::cluster::{NODES, PROXY_ID};
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
}

/// Prints a report each second until the time is up or standard input ends.
fn run(cluster: &mut fleetwire::transport::cluster::Cluster, args: &ClusterArgs) {
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
            if args.json {
                let line = serde_json::json!({
                    "event": "report", "time_s": tick, "route": r.route.to_string(),
                    "packets_per_sec": r.packets_per_sec, "mbytes_per_sec": r.mbytes_per_sec,
                    "rtt_p50_ms": millis_json(r.rtt_p50), "rtt_p99_ms": millis_json(r.rtt_p99),
                    "refused": r.refused,
                });
                println!("{line}");
                continue;
            }
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
}

//! `fleetwire node`: the reference endpoint (`fleetwire::node`) as a server.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{ArgGroup, Args, ValueEnum};
use fleetwire::node::{serve, NodeMetrics, NodeOptions, NodeSecurity};
use fleetwire::Codec;

/// A node or proxy id (spec §7.1).
pub(crate) fn node_id_parser() -> clap::builder::RangedI64ValueParser<u16> {
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
    /// Serve Prometheus metrics at http://ADDR/metrics: per connection and in total
    /// (DATA received and echoed, bytes, closes by code).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Preferred codec for echoed DATA, when the peer announced it (spec §9.2).
    #[arg(long, value_enum, default_value = "none")]
    echo_codec: CodecArg,
    /// Trust a node or proxy connecting from this IP address, e.g. a plaintext
    /// `fleetwire proxy` on this host: its role is accepted without a certificate and
    /// a proxy's stamped sources are honoured (spec §7.4 `[[src.auth]]`). Without it
    /// or mutual TLS, only role client is accepted. Repeatable.
    #[arg(long, value_name = "IP")]
    trust_peer: Vec<std::net::IpAddr>,
    /// The client ids the proxies in front of this node attribute, LO-HI: only
    /// sources in it (and 0) are echoed through a proxy, never a node (spec §14.6).
    #[arg(long, value_name = "LO-HI", default_value = "40000-65534")]
    client_ids: String,
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

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, String> {
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
    match args
        .client_ids
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
    {
        Some((lo, hi)) => opts.client_sources = lo..=hi,
        None => {
            eprintln!("fleetwire node: bad --client-ids {}", args.client_ids);
            return ExitCode::from(2);
        }
    }
    let stop = opts.shutdown.clone();
    crate::signals::on_termination(move || stop.trigger());
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
    let metrics = match args.metrics.as_deref().map(TcpListener::bind) {
        None => None,
        Some(Ok(l)) => {
            if let Ok(addr) = l.local_addr() {
                println!("fleetwire node: metrics on http://{addr}/metrics");
            }
            Some(l)
        }
        Some(Err(e)) => {
            eprintln!("fleetwire node: cannot listen for metrics: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = std::io::stdout().flush();
    let counters = opts.metrics.clone();
    let stop = AtomicBool::new(false);
    let served = std::thread::scope(|scope| {
        if let Some(listener) = metrics {
            let (stop, counters) = (&stop, &counters);
            scope.spawn(move || crate::metrics::serve(listener, stop, || render(counters)));
        }
        let served = serve(listener, opts);
        stop.store(true, Ordering::SeqCst);
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetwire node: {e}");
            ExitCode::from(2)
        }
    }
}

/// The Prometheus page of `--metrics`.
fn render(metrics: &NodeMetrics) -> String {
    let s = metrics.snapshot();
    let mut page = crate::metrics::Page::default();
    page.family(
        "fleetwire_node_connections_accepted_total",
        "counter",
        "Connections accepted",
    );
    page.sample(
        "fleetwire_node_connections_accepted_total",
        &[],
        s.accepted as f64,
    );
    page.family(
        "fleetwire_node_connections_open",
        "gauge",
        "Connections open now",
    );
    page.sample("fleetwire_node_connections_open", &[], s.open.len() as f64);
    let totals = [
        ("data_received_total", "DATA packets received", s.received),
        ("data_echoed_total", "DATA packets echoed", s.echoed),
        (
            "bytes_sent_total",
            "Fleetwire bytes written (before TLS)",
            s.bytes_sent,
        ),
        (
            "bytes_received_total",
            "Fleetwire bytes read (after TLS)",
            s.bytes_received,
        ),
    ];
    for (name, help, v) in totals {
        let metric = format!("fleetwire_node_{name}");
        page.family(&metric, "counter", help);
        page.sample(&metric, &[], v as f64);
    }
    page.family(
        "fleetwire_node_closes_total",
        "counter",
        "Connections closed, by code",
    );
    for (code, n) in &s.closes {
        page.sample(
            "fleetwire_node_closes_total",
            &[("code", &format!("{code:?}"))],
            *n as f64,
        );
    }
    type Get = fn(&fleetwire::node::ConnSnapshot) -> u64;
    let per_conn: [(&str, &str, Get); 4] = [
        ("data_received_total", "DATA packets received", |c| {
            c.received
        }),
        ("data_echoed_total", "DATA packets echoed", |c| c.echoed),
        ("bytes_sent_total", "Fleetwire bytes written", |c| {
            c.bytes_sent
        }),
        ("bytes_received_total", "Fleetwire bytes read", |c| {
            c.bytes_received
        }),
    ];
    for (name, help, get) in per_conn {
        let metric = format!("fleetwire_node_conn_{name}");
        page.family(&metric, "counter", help);
        for c in &s.open {
            let labels = [("conn", c.id.to_string()), ("peer", c.peer.to_string())];
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            page.sample(&metric, &labels, get(c) as f64);
        }
    }
    page.finish()
}

//! `fleetwire proxy`: a proxy (spec §7.3) forwarding by the routing header alone.

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
    /// Serve Prometheus metrics at http://ADDR/metrics: per route (packets, bytes,
    /// NO_ROUTE, UNREACHABLE, up, its connection's counters and RTT) and per engine.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
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
    let metrics = match args.metrics.as_deref().map(std::net::TcpListener::bind) {
        None => None,
        Some(Ok(l)) => {
            if let Ok(addr) = l.local_addr() {
                println!("fleetwire proxy: metrics on http://{addr}/metrics");
            }
            Some(l)
        }
        Some(Err(e)) => {
            eprintln!("fleetwire proxy: cannot listen for metrics: {e}");
            proxy.shutdown(Duration::from_secs(1));
            return ExitCode::from(2);
        }
    };
    let _ = std::io::stdout().flush();
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    crate::signals::on_termination(move || on_signal.store(true, Ordering::SeqCst));
    std::thread::scope(|scope| {
        if let Some(listener) = metrics {
            let (proxy, stop) = (&proxy, &*stop);
            scope.spawn(move || crate::metrics::serve(listener, stop, || render(proxy)));
        }
        run(&proxy, &args, &stop);
        stop.store(true, Ordering::SeqCst);
    });
    proxy.shutdown(Duration::from_secs(5));
    ExitCode::SUCCESS
}

/// Reloads the table when its file changes, until `stop` (routes going up and down are
/// logged by the proxy itself, as `tracing` events).
fn run(proxy: &Proxy, args: &ProxyArgs, stop: &Arc<AtomicBool>) {
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
        match routes(args).map(|r| proxy.set_routes(&r).map(|()| r.len())) {
            Ok(Ok(n)) => tracing::info!(routes = n, "routing table swapped, {n} routes"),
            Ok(Err(e)) => tracing::warn!("table refused, old one kept: {e}"),
            Err(e) => tracing::warn!("table refused, old one kept: {e}"),
        }
    }
}

/// The Prometheus page of `--metrics`.
fn render(proxy: &Proxy) -> String {
    use crate::metrics::Page;
    let mut page = Page::default();
    let stats = proxy.route_stats();
    type RouteGet = fn(&fleetwire::transport::proxy::RouteStats) -> u64;
    let families: [(&str, &str, RouteGet); 4] = [
        ("packets", "DATA packets forwarded on the route", |s| {
            s.packets
        }),
        ("bytes", "Payload bytes forwarded on the route", |s| s.bytes),
        ("no_route", "DATA refused with NO_ROUTE (spec 7.3)", |s| {
            s.no_route
        }),
        (
            "unreachable",
            "DATA refused with UNREACHABLE (spec 7.3)",
            |s| s.unreachable,
        ),
    ];
    for (name, help, get) in families {
        let metric = format!("fleetwire_proxy_route_{name}_total");
        page.family(&metric, "counter", help);
        for (key, s) in &stats {
            page.sample(&metric, &[("route", &key.to_string())], get(s) as f64);
        }
    }
    let routes = proxy.routes();
    page.family(
        "fleetwire_proxy_route_up",
        "gauge",
        "1 when the route's connection is established",
    );
    for node in routes.keys() {
        let up = proxy.route_up(*node).unwrap_or(false);
        page.sample(
            "fleetwire_proxy_route_up",
            &[("node", &node.to_string())],
            u8::from(up),
        );
    }
    let engine = proxy.engine();
    let conns: Vec<(String, fleetwire::transport::ConnStats)> = routes
        .keys()
        .filter_map(|n| Some((n.to_string(), engine.stats(proxy.route_conn(*n)?)?)))
        .collect();
    type Get = fn(&fleetwire::transport::ConnStats) -> f64;
    let conn_families: [(&str, &str, &str, Get); 5] = [
        (
            "packets_in_total",
            "counter",
            "DATA packets received",
            |s| s.packets_in as f64,
        ),
        (
            "packets_out_total",
            "counter",
            "DATA packets written",
            |s| s.packets_out as f64,
        ),
        (
            "wire_bytes_in_total",
            "counter",
            "Bytes read from the socket",
            |s| s.wire_bytes_in as f64,
        ),
        (
            "wire_bytes_out_total",
            "counter",
            "Bytes written to the socket",
            |s| s.wire_bytes_out as f64,
        ),
        (
            "send_queue_packets",
            "gauge",
            "Messages queued, not yet written",
            |s| s.send_queue_packets as f64,
        ),
    ];
    for (name, kind, help, get) in conn_families {
        let metric = format!("fleetwire_proxy_route_conn_{name}");
        page.family(&metric, kind, help);
        for (node, s) in &conns {
            page.sample(&metric, &[("node", node)], get(s));
        }
    }
    page.family(
        "fleetwire_proxy_route_conn_rtt_seconds",
        "gauge",
        "Latest PING round trip",
    );
    for (node, s) in &conns {
        if let Some(rtt) = s.rtt {
            page.sample(
                "fleetwire_proxy_route_conn_rtt_seconds",
                &[("node", node)],
                rtt.as_secs_f64(),
            );
        }
    }
    page.family(
        "fleetwire_engine_connections",
        "gauge",
        "Open connections of the engine",
    );
    page.sample(
        "fleetwire_engine_connections",
        &[],
        engine.connections() as f64,
    );
    page.family(
        "fleetwire_engine_open_sockets",
        "gauge",
        "Sockets held by the IO threads",
    );
    page.sample(
        "fleetwire_engine_open_sockets",
        &[],
        engine.open_sockets() as f64,
    );
    let (queued, high) = engine.recv_queue_bytes();
    page.family(
        "fleetwire_engine_recv_queue_bytes",
        "gauge",
        "Bytes waiting for the application",
    );
    page.sample("fleetwire_engine_recv_queue_bytes", &[], queued as f64);
    page.family(
        "fleetwire_engine_recv_queue_high_bytes",
        "gauge",
        "The most ever waiting",
    );
    page.sample("fleetwire_engine_recv_queue_high_bytes", &[], high as f64);
    page.finish()
}

//! The live-peer cases against the reference, in-process over loopback: the reference
//! node as a server and the reference client, each plaintext and over TLS (throw-away
//! certificates generated in memory). `fleetwire conformance` without a target runs
//! this after the codec cases.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::pki::RunnerPki;
use super::run::{run_peer, PeerOptions, PeerSecurity, PeerTarget, TesteeTimers};
use crate::report::Report;
use fleetwire::connection::{Config, SendOptions, ServiceSet};
use fleetwire::node::{
    connect, serve, ClientOptions, ClientSecurity, NodeError, NodeOptions, NodeSecurity,
};
use fleetwire::{Codec, Route};

/// The reference's timers in the built-in run: short, so that the timer cases take a
/// second or two each, and shaped so that every timer case applies.
pub(super) const TIMERS: TesteeTimers = TesteeTimers {
    handshake: Duration::from_millis(1200),
    header: Duration::from_millis(600),
    packet: Duration::from_millis(1400),
    drain: Duration::from_millis(400),
};

/// The service the built-in reference node does not register (NO_SERVICE).
const UNREGISTERED: u8 = 250;

/// One run of the built-in live suite: which role and security, and its report.
#[derive(Debug)]
pub struct BuiltinReport {
    /// `"server/plaintext"`, `"client/tls"`, ...
    pub label: String,
    /// The report of that run.
    pub report: Report,
}

fn limits_config(mut config: Config) -> Config {
    let l = &mut config.limits;
    l.handshake_timeout_ms = TIMERS.handshake.as_millis() as u64;
    l.header_timeout_ms = TIMERS.header.as_millis() as u64;
    l.packet_timeout_ms = TIMERS.packet.as_millis() as u64;
    l.drain_timeout_ms = TIMERS.drain.as_millis() as u64;
    l.idle_timeout_ms = 1000;
    config
}

/// The reference node configured for the built-in run.
pub(crate) fn reference_node_options(security: NodeSecurity) -> NodeOptions {
    let mut node = NodeOptions::new(2, security);
    node.config = limits_config(node.config);
    node.config.limits.max_payload = 4096;
    node.config.limits.initial_credit_bytes = 64 * 1024;
    let mut services = ServiceSet::all();
    services.remove(UNREGISTERED);
    node.config.services = Some(services);
    node.echo_codec = Codec::Zlib;
    node
}

fn options(
    target: PeerTarget,
    security: PeerSecurity,
    seed: u64,
    case: &[String],
    skip: &[String],
) -> PeerOptions {
    let mut o = PeerOptions::new(target, security);
    o.seed = seed;
    o.timeout = Duration::from_millis(3000);
    o.case = case.to_vec();
    o.skip = skip.to_vec();
    o.timers = TIMERS;
    o.max_wait = Duration::from_secs(3);
    // the reference runs at the default
    o.max_empty_run = Some(32);
    o
}

/// Runs the server-role cases against the reference node (`tls`: mutual TLS, the
/// runner's client certificates from an in-memory CA).
///
/// # Errors
///
/// A harness failure.
pub fn run_server(
    tls: bool,
    seed: u64,
    case: &[String],
    skip: &[String],
) -> Result<Report, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (node_security, security) = if tls {
        let server_ca = RunnerPki::new()?;
        let client_ca = Arc::new(RunnerPki::new()?);
        let (cert, key) = server_ca.issue(&["localhost", "127.0.0.1"], &["fleetwire:node:2"])?;
        let node_security = NodeSecurity::tls(
            cert.as_bytes(),
            key.as_bytes(),
            Some(client_ca.ca_cert_pem.as_bytes()),
        )
        .map_err(|e| e.to_string())?;
        // the runner's default certificate names no node: it connects as a client
        let (ccert, ckey) = client_ca.issue(&[], &[])?;
        let security = PeerSecurity::TlsClient {
            ca_pem: server_ca.ca_cert_pem.clone().into_bytes(),
            server_name: "localhost".into(),
            identity: Some((ccert.into_bytes(), ckey.into_bytes())),
            client_ca: Some(client_ca),
        };
        (node_security, security)
    } else {
        (NodeSecurity::Plaintext, PeerSecurity::Plaintext)
    };
    let node = reference_node_options(node_security);
    let stop = node.shutdown.clone();
    let server = thread::spawn(move || serve(listener, node));
    let mut o = options(
        PeerTarget::Connect(addr.to_string()),
        security,
        seed,
        case,
        skip,
    );
    o.unregistered_service = Some(UNREGISTERED);
    o.testee_requires_auth = tls;
    o.replay = format!(
        "fleetwire conformance (built-in reference node, {})",
        if tls { "TLS" } else { "plaintext" }
    );
    let report = run_peer(&o);
    stop.trigger();
    let _ = server.join();
    report
}

/// An echoing reference client that connects to `addr` again after every connection
/// until `stop` is set.
pub(crate) fn echo_client(
    addr: SocketAddr,
    security: ClientSecurity,
    stop: Arc<AtomicBool>,
    config: Config,
) {
    while !stop.load(Ordering::SeqCst) {
        if !echo_once(addr, security.clone(), config.clone()) {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One connection of the echoing reference client: echoes every DATA until the
/// connection ends. `false` when it could not connect.
pub(crate) fn echo_once(addr: SocketAddr, security: ClientSecurity, config: Config) -> bool {
    let mut o = ClientOptions::new(security);
    o.timeout = Duration::from_secs(20);
    o.confirm_handshake = false;
    o.config = config;
    let Ok(mut c) = connect(addr, o) else {
        return false;
    };
    loop {
        // the echoes of what arrived together go out together (§10.3 [[tls.grouping]])
        let next = match c.try_recv() {
            Some(next) => next,
            None => {
                if c.flush().is_err() {
                    return true;
                }
                c.recv()
            }
        };
        match next {
            Ok(m) => {
                let opts = SendOptions {
                    codec: Codec::Zlib,
                    never_compress: m.never_compress,
                };
                let back = Route::new(0, m.route.service, m.route.channel);
                match c.queue(back, &m.payload, opts) {
                    Ok(()) | Err(NodeError::Send(_)) => {}
                    Err(_) => return true,
                }
            }
            Err(NodeError::PacketError { .. }) => {}
            Err(_) => return true,
        }
    }
}

/// Runs the client-role cases against the reference client.
///
/// # Errors
///
/// A harness failure.
pub fn run_client(
    tls: bool,
    seed: u64,
    case: &[String],
    skip: &[String],
) -> Result<Report, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (client_security, security) = if tls {
        let ca = Arc::new(RunnerPki::new()?);
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], &[])?;
        let client_security = ClientSecurity::tls(ca.ca_cert_pem.as_bytes(), "localhost", None)
            .map_err(|e| e.to_string())?;
        let security = PeerSecurity::TlsServer {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
            ca: Some(ca),
        };
        (client_security, security)
    } else {
        (ClientSecurity::Plaintext, PeerSecurity::Plaintext)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = limits_config(Config::client());
    config.codecs = Codec::Zlib.hello_bit();
    let client = {
        let stop = stop.clone();
        thread::spawn(move || echo_client(addr, client_security, stop, config))
    };
    let mut o = options(PeerTarget::Listen(listener), security, seed, case, skip);
    o.replay = format!(
        "fleetwire conformance (built-in reference client, {})",
        if tls { "TLS" } else { "plaintext" }
    );
    let report = run_peer(&o);
    stop.store(true, Ordering::SeqCst);
    drop(o);
    let _ = client.join();
    report
}

/// The four built-in runs: server and client role, plaintext and TLS. Runs whose case
/// selection is empty are left out.
///
/// # Errors
///
/// A harness failure.
///
/// ```no_run
/// let runs = fleetwire_conformance::peer::builtin_peer_run(1, &[], &[]).unwrap();
/// assert_eq!(runs.len(), 4);
/// ```
pub fn builtin_peer_run(
    seed: u64,
    case: &[String],
    skip: &[String],
) -> Result<Vec<BuiltinReport>, String> {
    let mut out = Vec::new();
    for (role, tls) in [
        ("server", false),
        ("server", true),
        ("client", false),
        ("client", true),
    ] {
        let label = format!("{role}/{}", if tls { "tls" } else { "plaintext" });
        let result = if role == "server" {
            run_server(tls, seed, case, skip)
        } else {
            run_client(tls, seed, case, skip)
        };
        match result {
            Ok(report) => out.push(BuiltinReport { label, report }),
            Err(e) if e.starts_with("no case matches") => {}
            Err(e) => return Err(format!("{label}: {e}")),
        }
    }
    Ok(out)
}

/// `fleetwire conformance` without a target, after the codec cases: the built-in live
/// runs, each summarised; returns the worst exit code (0 passed, 1 failures, 2 harness).
///
/// ```no_run
/// let code = fleetwire_conformance::peer::builtin_command(1, &["peer.server.ping.*".into()], &[]);
/// assert_eq!(code, 0);
/// ```
pub fn builtin_command(seed: u64, case: &[String], skip: &[String]) -> u8 {
    // codec-only globs select no live case: nothing to run
    let globs: Vec<crate::Glob> = case.iter().map(|g| crate::Glob::new(g)).collect();
    let any = [super::PeerRole::Server, super::PeerRole::Client]
        .into_iter()
        .flat_map(super::peer_cases)
        .map(|c| c.id)
        .chain(super::proxy_cases().into_iter().map(|c| c.id))
        .any(|id| globs.is_empty() || globs.iter().any(|g| g.matches(&id)));
    if !any {
        return 0;
    }
    match builtin_peer_run(seed, case, skip).and_then(|mut runs| {
        // and the proxy role: the reference proxy in-process, plaintext (§7.1 of the
        // testee protocol)
        let mut o = super::ProxyOptions::new(super::ProxyTestee::Reference);
        o.seed = seed;
        o.case = case.to_vec();
        o.skip = skip.to_vec();
        o.replay = "fleetwire conformance peer --role proxy".into();
        match super::run_proxy(&o) {
            Ok(report) => runs.push(BuiltinReport {
                label: "proxy/plaintext".into(),
                report,
            }),
            Err(e) if e.starts_with("no case matches") => {}
            Err(e) => return Err(format!("proxy/plaintext: {e}")),
        }
        Ok(runs)
    }) {
        Ok(runs) => {
            let mut code = 0;
            for run in &runs {
                println!(
                    "live peer, reference {} ({:.1} s):",
                    run.label,
                    run.report.duration.as_secs_f64()
                );
                print!("{}", run.report.summary_table());
                code = code.max(run.report.exit_code());
            }
            code
        }
        Err(e) => {
            eprintln!("fleetwire conformance: live peer: {e}");
            2
        }
    }
}

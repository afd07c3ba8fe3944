//! The live-peer runner: options, the case loop and its grading, the command.

use std::cell::RefCell;
use std::net::TcpListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::pki::RunnerPki;
use super::session::{Ctx, Outcome};
use super::{select, PeerRole};
use crate::cases::Level;
use crate::report::Report;
use crate::runner::{CaseResult, Failure, Verdict};
use crate::Violation;

/// How the runner protects its connections.
#[derive(Clone)]
pub enum PeerSecurity {
    /// Plaintext TCP (chosen explicitly).
    Plaintext,
    /// The runner is the TLS client (`--connect`).
    TlsClient {
        /// Trust anchors (PEM) for the server's certificate.
        ca_pem: Vec<u8>,
        /// The name the server's certificate must carry.
        server_name: String,
        /// The runner's client certificate and key (PEM), if any.
        identity: Option<(Vec<u8>, Vec<u8>)>,
        /// A CA the testee trusts for client certificates: the runner issues node and
        /// proxy identities from it for the §10.2 cases.
        client_ca: Option<Arc<RunnerPki>>,
    },
    /// The runner is the TLS server (`--listen`).
    TlsServer {
        /// The runner's certificate chain (PEM).
        cert_pem: Vec<u8>,
        /// Its key (PEM).
        key_pem: Vec<u8>,
        /// The CA the client under test trusts, to issue certificates for other names.
        ca: Option<Arc<RunnerPki>>,
    },
}

impl std::fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerSecurity::Plaintext => "Plaintext",
            PeerSecurity::TlsClient { .. } => "TlsClient",
            PeerSecurity::TlsServer { .. } => "TlsServer",
        })
    }
}

/// Where the implementation under test is.
#[derive(Debug)]
pub enum PeerTarget {
    /// Connect to a server under test at this address (`host:port`).
    Connect(String),
    /// Accept a client under test on this listener, one connection per case.
    Listen(TcpListener),
}

/// The testee's configured timers (spec §6.5), which the timer cases wait for. The
/// defaults are the spec's.
///
/// ```
/// let t = fleetwire_conformance::peer::TesteeTimers::default();
/// assert_eq!(t.header.as_secs(), 5);
/// let short: fleetwire_conformance::peer::TesteeTimers = "handshake=900,header=400,packet=800,drain=300".parse().unwrap();
/// assert_eq!(short.packet.as_millis(), 800);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TesteeTimers {
    /// Handshake timer.
    pub handshake: Duration,
    /// Header timer.
    pub header: Duration,
    /// Packet timer.
    pub packet: Duration,
    /// Drain timer.
    pub drain: Duration,
}

impl Default for TesteeTimers {
    fn default() -> TesteeTimers {
        TesteeTimers {
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(5),
            packet: Duration::from_secs(30),
            drain: Duration::from_secs(5),
        }
    }
}

impl std::str::FromStr for TesteeTimers {
    type Err = String;

    fn from_str(s: &str) -> Result<TesteeTimers, String> {
        let mut t = TesteeTimers::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part}: expected NAME=MS"))?;
            let ms: u64 = v
                .parse()
                .map_err(|_| format!("{part}: not a number of ms"))?;
            let d = Duration::from_millis(ms);
            match k {
                "handshake" => t.handshake = d,
                "header" => t.header = d,
                "packet" => t.packet = d,
                "drain" => t.drain = d,
                _ => {
                    return Err(format!(
                        "{k}: unknown timer (handshake, header, packet, drain)"
                    ))
                }
            }
        }
        Ok(t)
    }
}

/// A live-peer run.
#[derive(Debug)]
pub struct PeerOptions {
    /// The testee.
    pub target: PeerTarget,
    /// Plaintext or TLS.
    pub security: PeerSecurity,
    /// How long each expectation waits (and how long a client has to connect).
    pub timeout: Duration,
    /// Seed of PING ids and payload bytes.
    pub seed: u64,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// The command that replays the run, for the report (without `--case`).
    pub replay: String,
    /// The testee's timers (§6.5).
    pub timers: TesteeTimers,
    /// Timer cases whose timer is longer are UNSUPPORTED.
    pub max_wait: Duration,
    /// The testee's `max_packet_errors` (§12.3; default 16).
    pub max_packet_errors: u32,
    /// The testee's `max_empty_run` (§11), if declared: a local limit that no HELLO
    /// carries, so the runner grades the exact FLOOD point only when it is told. `None`
    /// (the default) grades only what holds for every conforming value (at least 32).
    pub max_empty_run: Option<u32>,
    /// A service the testee does not register (for NO_SERVICE), if any.
    pub unregistered_service: Option<u8>,
    /// The testee requires node and proxy peers to authenticate (mutual TLS, §7.4).
    pub testee_requires_auth: bool,
}

impl PeerOptions {
    /// Options with the spec's defaults for the testee's configuration.
    ///
    /// ```
    /// use fleetwire_conformance::peer::{PeerOptions, PeerSecurity, PeerTarget};
    /// let o = PeerOptions::new(PeerTarget::Connect("127.0.0.1:1".into()), PeerSecurity::Plaintext);
    /// assert_eq!(o.max_packet_errors, 16);
    /// ```
    pub fn new(target: PeerTarget, security: PeerSecurity) -> PeerOptions {
        PeerOptions {
            target,
            security,
            timeout: Duration::from_secs(5),
            seed: 1,
            case: Vec::new(),
            skip: Vec::new(),
            replay: String::new(),
            timers: TesteeTimers::default(),
            max_wait: Duration::from_secs(12),
            max_packet_errors: 16,
            max_empty_run: None,
            unregistered_service: None,
            testee_requires_auth: false,
        }
    }
}

/// Runs the selected cases and returns the report; `Err` when the harness could not
/// run (no case selected, the testee unreachable).
///
/// # Errors
///
/// A description of the harness failure (exit code 2).
pub fn run_peer(opts: &PeerOptions) -> Result<Report, String> {
    let role = match opts.target {
        PeerTarget::Connect(_) => PeerRole::Server,
        PeerTarget::Listen(_) => PeerRole::Client,
    };
    let tls = !matches!(opts.security, PeerSecurity::Plaintext);
    let selected = select(role, tls, &opts.case, &opts.skip);
    if selected.is_empty() {
        return Err("no case matches --case/--skip".into());
    }
    if let PeerTarget::Connect(addr) = &opts.target {
        // an unreachable testee is a harness error, not 100 failed cases
        use std::net::ToSocketAddrs;
        let reachable = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .any(|a| std::net::TcpStream::connect_timeout(&a, opts.timeout).is_ok());
        if !reachable {
            return Err(format!("cannot connect to {addr}"));
        }
    }
    let start = Instant::now();
    let mut results = Vec::new();
    let mut implementation = String::new();
    for (i, case) in selected.iter().enumerate() {
        let t0 = Instant::now();
        let violations = Rc::new(RefCell::new(Vec::new()));
        let mut ctx = Ctx {
            opts,
            role,
            seed: opts.seed.wrapping_add(i as u64),
            violations: violations.clone(),
            first_hello: None,
        };
        let outcome = match (case.run)(&mut ctx) {
            Ok(o) | Err(o) => o,
        };
        if implementation.is_empty() {
            if let Some(h) = ctx.first_hello {
                implementation = format!(
                    "{} (role {}, node id {})",
                    match &opts.target {
                        PeerTarget::Connect(a) => format!("server at {a}"),
                        PeerTarget::Listen(_) => "client under test".into(),
                    },
                    h.role.name(),
                    h.node_id
                );
            }
        }
        drop(ctx);
        let seen: Vec<Violation> = violations.borrow().clone();
        let outcome = with_violations(outcome, &seen);
        let (verdict, failure) = match outcome {
            Outcome::Ok => (Verdict::Ok, None),
            Outcome::Unsupported(why) => {
                eprintln!("UNSUPPORTED {}: {why}", case.id);
                (Verdict::Unsupported, None)
            }
            Outcome::Deviation {
                level,
                message,
                expected,
                actual,
            } => (
                Verdict::for_deviation(level),
                Some(Failure {
                    message,
                    request: json!({"case": case.id, "description": case.description}),
                    expected: json!(expected),
                    actual: json!(actual),
                    ..Failure::default()
                }),
            ),
        };
        let mut tags = case.tags.clone();
        for v in &seen {
            if !tags.iter().any(|t| t == v.tag) {
                tags.push(v.tag.to_owned());
            }
        }
        results.push(CaseResult {
            id: case.id.clone(),
            section: case.section.into(),
            tags,
            level: case.level,
            claim: "peer".into(),
            verdict,
            expected_failure: None,
            failure,
            duration: t0.elapsed(),
        });
    }
    Ok(Report {
        implementation,
        version: "fleetwire/1".into(),
        seed: opts.seed,
        replay: opts.replay.clone(),
        results,
        stale: Vec::new(),
        duration: start.elapsed(),
        restarts: 0,
    })
}

/// Folds the sender violations of a case into its outcome: a MUST violation fails the
/// case, a SHOULD violation makes a passing case NON-STRICT.
fn with_violations(outcome: Outcome, seen: &[Violation]) -> Outcome {
    if seen.is_empty() {
        return outcome;
    }
    let level_of = |v: &Violation| v.level;
    let worst = seen.iter().map(level_of).min_by_key(|l| match l {
        Level::Must => 0,
        Level::Should => 1,
        Level::May => 2,
    });
    let text: Vec<String> = seen.iter().map(ToString::to_string).collect();
    let text = format!("sender check: {}", text.join("; "));
    match outcome {
        Outcome::Ok | Outcome::Unsupported(_) => Outcome::Deviation {
            level: worst.unwrap_or(Level::Must),
            message: text,
            expected: "every packet the testee sends within the spec".into(),
            actual: seen.iter().map(|v| v.tag).collect::<Vec<_>>().join(", "),
        },
        Outcome::Deviation {
            level,
            message,
            expected,
            actual,
        } => {
            let level = match (level, worst) {
                (Level::Must, _) | (_, Some(Level::Must)) => Level::Must,
                (l, _) => l,
            };
            Outcome::Deviation {
                level,
                message: format!("{message}; {text}"),
                expected,
                actual,
            }
        }
    }
}

/// Arguments of `fleetwire conformance peer`.
///
/// ```
/// let a = fleetwire_conformance::peer::PeerArgs { plaintext: true, ..Default::default() };
/// assert!(a.connect.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct PeerArgs {
    /// Test a server: connect to this address.
    pub connect: Option<String>,
    /// Test a client: listen on this address.
    pub listen: Option<String>,
    /// Plaintext (must be chosen explicitly).
    pub plaintext: bool,
    /// CA certificates that issue the server's certificate (`--connect` over TLS).
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of `--connect`).
    pub server_name: Option<String>,
    /// Our certificate chain: the server's (`--listen`) or a client certificate.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// Print the cases and exit.
    pub list: bool,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// Write the JSON report here.
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here.
    pub junit: Option<PathBuf>,
    /// Per-expectation timeout in milliseconds.
    pub timeout_ms: u64,
    /// Seed; `None` picks one from the clock.
    pub seed: Option<u64>,
    /// The testee's timers (`handshake=MS,header=MS,packet=MS,drain=MS`; default the
    /// spec's).
    pub timers: Option<String>,
    /// Timer cases longer than this many ms are UNSUPPORTED (default 12000).
    pub max_wait_ms: Option<u64>,
    /// The testee's `max_packet_errors` (default 16).
    pub max_packet_errors: Option<u32>,
    /// The testee's `max_empty_run` (not declared by default: the cases grade only what
    /// holds for every value of at least 32); with the proxy role, the proxy's on client
    /// connections (default 32).
    pub max_empty_run: Option<u32>,
    /// A service the testee does not register.
    pub unregistered_service: Option<u8>,
    /// `server`, `client` or `proxy`; `None` follows `--connect` / `--listen`.
    pub role: Option<String>,
    /// (Proxy role.) The proxy under test, a command line (`{routes}`, see
    /// [`ProxyTestee::Command`](super::ProxyTestee::Command)); `None` with no `mutant`:
    /// the reference proxy in-process.
    pub testee: Option<String>,
    /// (Proxy role.) A proxy mutant of the reference instead (`proxy-...`).
    pub mutant: Option<String>,
}

/// What `args` declares of the testee (its timers, limits and unregistered service) and
/// the timer cases' bound, as the flags that gave it: a replay command must repeat them
/// or it grades another testee.
fn declared(args: &PeerArgs) -> String {
    let mut flags = String::new();
    if let Some(t) = &args.timers {
        flags.push_str(&format!(" --timers {t}"));
    }
    if let Some(ms) = args.max_wait_ms {
        flags.push_str(&format!(" --max-wait {ms}"));
    }
    if let Some(n) = args.max_packet_errors {
        flags.push_str(&format!(" --max-packet-errors {n}"));
    }
    if let Some(n) = args.max_empty_run {
        flags.push_str(&format!(" --max-empty-run {n}"));
    }
    if let Some(s) = args.unregistered_service {
        flags.push_str(&format!(" --unregistered-service {s}"));
    }
    flags
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn security(args: &PeerArgs) -> Result<PeerSecurity, String> {
    let tls_flags = args.ca.is_some() || args.cert.is_some() || args.key.is_some();
    if args.plaintext {
        if tls_flags || args.server_name.is_some() {
            return Err("--plaintext excludes --ca, --server-name, --cert and --key".into());
        }
        return Ok(PeerSecurity::Plaintext);
    }
    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    if let Some(addr) = &args.connect {
        let Some(ca) = &args.ca else {
            return Err("choose --plaintext or --ca F (TLS) for --connect".into());
        };
        let ca_pem = read(ca)?;
        // fail early on unusable PEM
        let ident = identity.as_ref().map(|(c, k)| (&c[..], &k[..]));
        fleetwire::tls::client_config(&ca_pem, ident).map_err(|e| e.to_string())?;
        let server_name = match &args.server_name {
            Some(n) => n.clone(),
            None => addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned(),
        };
        return Ok(PeerSecurity::TlsClient {
            ca_pem,
            server_name,
            identity,
            client_ca: None,
        });
    }
    let Some((cert_pem, key_pem)) = identity else {
        return Err("choose --plaintext or --cert F --key F (TLS) for --listen".into());
    };
    if args.ca.is_some() || args.server_name.is_some() {
        return Err("--ca and --server-name apply to --connect only".into());
    }
    fleetwire::tls::server_config(&cert_pem, &key_pem, None).map_err(|e| e.to_string())?;
    Ok(PeerSecurity::TlsServer {
        cert_pem,
        key_pem,
        ca: None,
    })
}

/// Runs `fleetwire conformance peer` and returns the exit code: 0 all passed, 1
/// failures, 2 usage error or broken harness.
///
/// ```no_run
/// let a = fleetwire_conformance::peer::PeerArgs { connect: Some("127.0.0.1:7000".into()),
///     plaintext: true, timeout_ms: 2000, ..Default::default() };
/// std::process::exit(fleetwire_conformance::peer::peer_command(&a).into());
/// ```
pub fn peer_command(args: &PeerArgs) -> u8 {
    match peer_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetwire conformance peer: {e}");
            2
        }
    }
}

fn peer_run(args: &PeerArgs) -> Result<u8, String> {
    match args.role.as_deref() {
        Some("proxy") => return proxy_run(args),
        None | Some("server" | "client") => {}
        Some(r) => return Err(format!("--role {r}: expected server, client or proxy")),
    }
    if args.testee.is_some() || args.mutant.is_some() {
        return Err("--testee and --mutant go with --role proxy".into());
    }
    let role = match (&args.connect, &args.listen) {
        (Some(_), None) => PeerRole::Server,
        (None, Some(_)) => PeerRole::Client,
        _ => return Err("give exactly one of --connect ADDR and --listen ADDR".into()),
    };
    if let Some(r) = &args.role {
        if r != role.name() {
            return Err(format!("--role {r} contradicts --connect / --listen"));
        }
    }
    if args.list {
        let cases = select(role, !args.plaintext, &args.case, &args.skip);
        for c in &cases {
            println!(
                "{:<52} §{:<5} {:<6} {}",
                c.id,
                c.section,
                c.level,
                c.tags.join(",")
            );
        }
        println!("{} cases", cases.len());
        return Ok(0);
    }
    let security = security(args)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let (target, mut replay) = match (&args.connect, &args.listen) {
        (Some(a), _) => (
            PeerTarget::Connect(a.clone()),
            format!("fleetwire conformance peer --connect {a}"),
        ),
        (_, Some(a)) => {
            let l = TcpListener::bind(a).map_err(|e| format!("listen on {a}: {e}"))?;
            eprintln!(
                "fleetwire conformance peer: listening on {}",
                l.local_addr().map_err(|e| e.to_string())?
            );
            (
                PeerTarget::Listen(l),
                format!("fleetwire conformance peer --listen {a}"),
            )
        }
        _ => unreachable!("checked above"),
    };
    replay.push_str(match &security {
        PeerSecurity::Plaintext => " --plaintext",
        _ => " (TLS flags)",
    });
    let mut opts = PeerOptions::new(target, security);
    opts.timeout = Duration::from_millis(args.timeout_ms.max(1));
    opts.seed = seed;
    opts.case = args.case.clone();
    opts.skip = args.skip.clone();
    opts.replay = replay;
    if let Some(t) = &args.timers {
        opts.timers = t.parse().map_err(|e| format!("--timers: {e}"))?;
    }
    if let Some(ms) = args.max_wait_ms {
        opts.max_wait = Duration::from_millis(ms);
    }
    if let Some(n) = args.max_packet_errors {
        opts.max_packet_errors = n;
    }
    opts.max_empty_run = args.max_empty_run;
    opts.unregistered_service = args.unregistered_service;
    opts.replay.push_str(&declared(args));
    let report = run_peer(&opts)?;
    print!("{}", report.summary_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.junit {
        std::fs::write(p, report.to_junit()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(report.exit_code())
}

/// `fleetwire conformance peer --role proxy`: the proxy-role cases against the
/// reference proxy (in-process), one of its mutants, or a command line.
fn proxy_run(args: &PeerArgs) -> Result<u8, String> {
    use super::{run_proxy, ProxyMutant, ProxyOptions, ProxyTestee};
    if args.connect.is_some() || args.listen.is_some() {
        return Err("--role proxy starts the proxy itself: no --connect or --listen".into());
    }
    if args.ca.is_some() || args.cert.is_some() || args.key.is_some() || args.server_name.is_some()
    {
        return Err("--role proxy runs over plaintext only".into());
    }
    if args.list {
        let cases = super::proxy::select(&args.case, &args.skip);
        for c in &cases {
            println!(
                "{:<52} §{:<5} {:<6} {}",
                c.id,
                c.section,
                c.level,
                c.tags.join(",")
            );
        }
        println!("{} cases", cases.len());
        return Ok(0);
    }
    let (testee, mut replay) = match (&args.testee, &args.mutant) {
        (Some(_), Some(_)) => return Err("give --testee or --mutant, not both".into()),
        (Some(cmd), None) => (
            ProxyTestee::Command(cmd.clone()),
            format!("fleetwire conformance peer --role proxy --testee '{cmd}'"),
        ),
        (None, Some(m)) => (
            ProxyTestee::Mutant(m.parse::<ProxyMutant>()?),
            format!("fleetwire conformance peer --role proxy --mutant {m}"),
        ),
        (None, None) => (
            ProxyTestee::Reference,
            "fleetwire conformance peer --role proxy".to_owned(),
        ),
    };
    let mut opts = ProxyOptions::new(testee);
    opts.timeout = Duration::from_millis(args.timeout_ms.max(1));
    opts.seed = args.seed.unwrap_or(1);
    opts.case = args.case.clone();
    opts.skip = args.skip.clone();
    if let Some(n) = args.max_packet_errors {
        opts.max_packet_errors = n;
    }
    if let Some(n) = args.max_empty_run {
        opts.max_empty_run = n;
    }
    replay.push_str(&declared(args));
    opts.replay = replay;
    let report = run_proxy(&opts)?;
    print!("{}", report.summary_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.junit {
        std::fs::write(p, report.to_junit()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_repeats_every_flag_that_declares_the_testee() {
        assert_eq!(declared(&PeerArgs::default()), "");
        let args = PeerArgs {
            timers: Some("handshake=100,header=50,packet=300,drain=50".into()),
            max_wait_ms: Some(2000),
            max_packet_errors: Some(3),
            max_empty_run: Some(40),
            unregistered_service: Some(9),
            ..PeerArgs::default()
        };
        assert_eq!(
            declared(&args),
            " --timers handshake=100,header=50,packet=300,drain=50 --max-wait 2000 \
             --max-packet-errors 3 --max-empty-run 40 --unregistered-service 9"
        );
    }
}

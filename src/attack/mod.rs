//! The hostile-load suite (feature `attack`, `fleetwire attack`): the reference node and
//! proxy, each run as a child process on loopback, under one attack at a time.
//!
//! Every attack is bounded in connections, bytes and time, and stops by itself. While it
//! runs, a well-behaved client connected beforehand echoes numbered DATA through the
//! server and checks every answer. Each attack asserts:
//!
//! - **survival**: the server is still running, and a new client can connect and echo;
//! - **memory**: the server's peak resident set (`VmHWM` of `/proc/<pid>/status`) stays
//!   within the budget (default 256 MiB for the whole process);
//! - **correctness**: every echo of the well-behaved client came back, unchanged, in
//!   order (its latency p50/p99 is reported);
//! - **graceful**: SIGTERM makes the server send GOAWAY, drain and exit 0;
//! - and what is specific to the attack (packets lost, spoofed packets accepted).
//!
//! An attack marked *pending* asserts behaviour another change brings (it names the
//! change): it is run and reported, and does not fail the suite until that change lands.
//!
//! Linux only (it reads `/proc` and lowers `RLIMIT_NOFILE` through `sh -c ulimit`).
//!
//! ```no_run
//! use fleetwire::attack::{run, AttackOptions};
//! let opts = AttackOptions::new(std::env::current_exe().unwrap());
//! let outcomes = run(&opts, &mut std::io::stdout());
//! assert!(outcomes.iter().all(|o| o.ok()));
//! ```

mod attacks;
mod wire;

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::SendOptions;
use crate::node::{connect, ClientOptions, ClientSecurity, RttStats};
use crate::Route;

/// How the suite runs.
///
/// ```
/// use fleetwire::attack::AttackOptions;
/// let opts = AttackOptions::new("target/release/fleetwire".into());
/// assert_eq!(opts.budget_bytes, 256 * 1024 * 1024);
/// assert!(!opts.long);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AttackOptions {
    /// The `fleetwire` executable that runs the node and the proxy.
    pub exe: PathBuf,
    /// The long form (bigger and longer attacks, for the figures); default the short
    /// form, a few seconds per attack.
    pub long: bool,
    /// Run only the attacks whose "name target" (e.g. `churn proxy`) contains this.
    pub only: Option<String>,
    /// Peak resident set allowed to the server process.
    pub budget_bytes: u64,
}

impl AttackOptions {
    /// The short form with the default budget (256 MiB).
    ///
    /// ```
    /// let o = fleetwire::attack::AttackOptions::new("fleetwire".into());
    /// assert!(o.only.is_none());
    /// ```
    pub fn new(exe: PathBuf) -> AttackOptions {
        AttackOptions {
            exe,
            long: false,
            only: None,
            budget_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What one attack found.
///
/// ```
/// let o = fleetwire::attack::Outcome::default();
/// assert!(o.ok() && o.failures.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Outcome {
    /// The attack's name.
    pub name: String,
    /// `node` or `proxy`: the process attacked.
    pub target: &'static str,
    /// The change this attack waits for, if it is pending.
    pub pending: Option<&'static str>,
    /// Peak resident set of the attacked process, in bytes.
    pub peak_rss: u64,
    /// The budget it was held to.
    pub budget: u64,
    /// Echo round trips of the well-behaved client during the attack.
    pub echo: Option<RttStats>,
    /// Its echoes, and those missing or wrong.
    pub echoes: u64,
    /// Echoes that were missing, wrong or out of order.
    pub bad_echoes: u64,
    /// Packets lost (accepted and neither answered nor reported), where measured.
    pub lost: Option<u64>,
    /// Spoofed packets the server accepted, where measured.
    pub spoofed: Option<u64>,
    /// What went wrong (empty: passed).
    pub failures: Vec<String>,
    /// What the attack observed.
    pub notes: Vec<String>,
    /// Wall time of the attack.
    pub elapsed: Duration,
}

impl Outcome {
    /// Passed, or pending (its failures are expected until the change lands).
    ///
    /// ```
    /// let mut o = fleetwire::attack::Outcome::default();
    /// o.failures.push("died".into());
    /// assert!(!o.ok());
    /// ```
    pub fn ok(&self) -> bool {
        self.failures.is_empty() || self.pending.is_some()
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }
}

/// Runs the attacks (all, or those `opts.only` names), one at a time, writing one
/// report line per attack to `out`; returns the outcomes.
pub fn run(opts: &AttackOptions, out: &mut dyn Write) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for attack in attacks::ALL {
        let target = match attack.target {
            Target::Node => "node",
            Target::Proxy => "proxy",
        };
        let label = format!("{} {target}", attack.name);
        if opts.only.as_deref().is_some_and(|o| !label.contains(o)) {
            continue;
        }
        let start = Instant::now();
        let mut o = run_one(opts, attack);
        o.elapsed = start.elapsed();
        let _ = writeln!(out, "{}", line(&o));
        for n in &o.notes {
            let _ = writeln!(out, "    {n}");
        }
        for f in &o.failures {
            let _ = writeln!(out, "    FAIL: {f}");
        }
        let _ = out.flush();
        outcomes.push(o);
    }
    outcomes
}

fn line(o: &Outcome) -> String {
    let status = match (o.failures.is_empty(), o.pending) {
        (true, _) => "ok".to_owned(),
        (false, Some(p)) => format!("PENDING ({p})"),
        (false, None) => "FAILED".to_owned(),
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let echo = o.echo.as_ref().map_or_else(
        || "-".to_owned(),
        |s| {
            format!(
                "p50 {:.2} ms p99 {:.2} ms",
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3
            )
        },
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "{:<28} {:<5} {:>7.1}/{:.0} MiB  echo {echo} ({} ok, {} bad)  lost {}  spoofed {}  {:.1}s  {status}",
        o.name,
        o.target,
        mib(o.peak_rss),
        mib(o.budget),
        o.echoes,
        o.bad_echoes,
        opt(o.lost),
        opt(o.spoofed),
        o.elapsed.as_secs_f64(),
    )
}

/// Which process an attack targets, and how it is started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    Node,
    /// A proxy (id 9) in front of an echo node (id 2).
    Proxy,
}

/// What an attack gets: where to aim, for how long.
pub(crate) struct Ctx {
    /// The attacked process's address (the proxy's, when the target is the proxy).
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    /// The target is the proxy (the echo node is node 2 behind it).
    pub(crate) proxy: bool,
    pub(crate) long: bool,
    pub(crate) duration: Duration,
}

/// What an attack reports besides the common checks.
#[derive(Default)]
pub(crate) struct Found {
    pub(crate) lost: Option<u64>,
    pub(crate) spoofed: Option<u64>,
    pub(crate) failures: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// The attack ended the server itself (a signal test) and it must exit with this
    /// code; the final checks are skipped.
    pub(crate) exit_code: Option<i32>,
}

pub(crate) struct Attack {
    pub(crate) name: &'static str,
    pub(crate) target: Target,
    pub(crate) pending: Option<&'static str>,
    /// `RLIMIT_NOFILE` of the server child.
    pub(crate) nofile: Option<u32>,
    /// Server arguments beyond the defaults.
    pub(crate) tls: bool,
    /// No well-behaved client alongside (the attack ends the server itself).
    pub(crate) alone: bool,
    pub(crate) run: fn(&Ctx) -> Found,
}

fn run_one(opts: &AttackOptions, attack: &Attack) -> Outcome {
    let mut o = Outcome {
        name: attack.name.to_owned(),
        target: match attack.target {
            Target::Node => "node",
            Target::Proxy => "proxy",
        },
        pending: attack.pending,
        budget: opts.budget_bytes,
        ..Outcome::default()
    };
    let servers = match Servers::start(opts, attack) {
        Ok(s) => s,
        Err(e) => {
            o.fail(format!("cannot start the server: {e}"));
            return o;
        }
    };
    let mut servers = servers;
    let ctx = Ctx {
        addr: servers.front().addr,
        pid: servers.front().pid(),
        proxy: attack.target == Target::Proxy,
        long: opts.long,
        duration: if opts.long {
            Duration::from_secs(15)
        } else {
            Duration::from_millis(1500)
        },
    };
    // A well-behaved client over plaintext (the TLS attacks aim at the handshake; their
    // well-behaved client goes to the plaintext node behind nothing: skip it there).
    let echo_node = if ctx.proxy { 2 } else { 0 };
    let client = (!attack.tls && !attack.alone).then(|| WellBehaved::start(ctx.addr, echo_node));
    let sampler = Sampler::start(ctx.pid);
    let found = (attack.run)(&ctx);
    if let Some(c) = client {
        let r = c.stop();
        o.echoes = r.ok;
        o.bad_echoes = r.bad;
        o.echo = RttStats::from_samples(&r.rtts);
        if r.bad > 0 || r.ok == 0 {
            o.fail(format!(
                "well-behaved client: {} echoes, {} missing or wrong ({})",
                r.ok,
                r.bad,
                r.error.unwrap_or_default()
            ));
        }
    }
    o.lost = found.lost;
    o.spoofed = found.spoofed;
    o.failures.extend(found.failures);
    o.notes.extend(found.notes);
    o.peak_rss = sampler.stop().max(servers.front().peak_rss().unwrap_or(0));
    if o.peak_rss > opts.budget_bytes {
        o.fail(format!(
            "peak RSS {} MiB above the budget {} MiB",
            o.peak_rss >> 20,
            opts.budget_bytes >> 20
        ));
    }
    match found.exit_code {
        None => final_checks(&mut servers, attack, &mut o),
        Some(code) => match servers.front_mut().wait_exit(Duration::from_secs(15)) {
            Some(s) if s.code() == Some(code) => {}
            Some(s) => o.fail(format!("the server exited with {s}, expected {code}")),
            None => o.fail("the server did not exit within 15 s"),
        },
    }
    o
}

/// Survival, a fresh echo, then SIGTERM: GOAWAY, drain, exit 0.
fn final_checks(servers: &mut Servers, attack: &Attack, o: &mut Outcome) {
    let front = servers.front_mut();
    if let Some(status) = front.exited() {
        o.fail(format!("the server died: {status}"));
        return;
    }
    if !attack.tls {
        let echo_node = if attack.target == Target::Proxy { 2 } else { 0 };
        if let Err(e) = fresh_echo(front.addr, echo_node) {
            o.fail(format!("a new client cannot echo after the attack: {e}"));
        }
    }
    front.signal("TERM");
    match front.wait_exit(Duration::from_secs(15)) {
        Some(s) if s.success() => {}
        Some(s) => o.fail(format!("after SIGTERM the server exited with {s}")),
        None => o.fail("the server did not exit within 15 s of SIGTERM"),
    }
}

fn fresh_echo(addr: SocketAddr, echo_node: u16) -> Result<(), String> {
    let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
    opts.timeout = Duration::from_secs(10);
    // behind the proxy, echoes carry the node's id stamped by the proxy (§7.4)
    opts.config.trust_server_as_proxy = echo_node != 0;
    let mut c = connect(addr, opts).map_err(|e| e.to_string())?;
    c.echo(Route::new(echo_node, 1, 0), b"still there?")
        .map_err(|e| e.to_string())?;
    c.close().map(|_| ()).map_err(|e| e.to_string())
}

/// A child process running `fleetwire node` or `fleetwire proxy`.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    status: Option<ExitStatus>,
}

impl Server {
    fn spawn(exe: &PathBuf, args: &[String], nofile: Option<u32>) -> io::Result<Server> {
        let mut cmd = match nofile {
            None => Command::new(exe),
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(exe);
                c
            }
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_to())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.trim_end_matches(',').parse().ok());
        match addr {
            Some(addr) => Ok(Server {
                child,
                addr,
                status: None,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!("no address in {line:?}")))
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set (`VmHWM`), in bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        peak_rss(self.pid())
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub(crate) fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The servers' log lines: appended to the file `FLEETWIRE_ATTACK_LOG` names, if set.
fn log_to() -> Stdio {
    let file = std::env::var_os("FLEETWIRE_ATTACK_LOG").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    file.map_or_else(Stdio::null, Stdio::from)
}

/// Sends signal `sig` (`TERM`, `INT`) to process `pid` with kill(1).
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// `VmHWM` of process `pid`, in bytes.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The processes of one attack: the attacked one first (a proxy keeps its node).
struct Servers {
    list: Vec<Server>,
}

impl Servers {
    fn start(opts: &AttackOptions, attack: &Attack) -> io::Result<Servers> {
        let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let node_args = |id: &str| {
            s(&[
                "node",
                "--listen",
                "127.0.0.1:0",
                "--node-id",
                id,
                "--plaintext",
                "--trust-peer",
                "127.0.0.1",
            ])
        };
        match attack.target {
            Target::Node if attack.tls => {
                let dir =
                    std::env::temp_dir().join(format!("fleetwire-attack-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let d = dir.to_string_lossy().into_owned();
                let gen = Command::new(&opts.exe)
                    .args(["gen-cert", "--out", &d])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?;
                if !gen.success() {
                    return Err(io::Error::other("gen-cert failed"));
                }
                let args = s(&[
                    "node",
                    "--listen",
                    "127.0.0.1:0",
                    "--cert",
                    &format!("{d}/cert.pem"),
                    "--key",
                    &format!("{d}/key.pem"),
                ]);
                Ok(Servers {
                    list: vec![Server::spawn(&opts.exe, &args, attack.nofile)?],
                })
            }
            Target::Node => Ok(Servers {
                list: vec![Server::spawn(&opts.exe, &node_args("1"), attack.nofile)?],
            }),
            Target::Proxy => {
                let node = Server::spawn(&opts.exe, &node_args("2"), None)?;
                let route = format!("2={}", node.addr);
                let args = s(&[
                    "proxy",
                    "--listen",
                    "127.0.0.1:0",
                    "--node-id",
                    "9",
                    "--plaintext",
                    "--route",
                    &route,
                ]);
                let proxy = Server::spawn(&opts.exe, &args, attack.nofile)?;
                // the proxy connects to its route in the background
                thread::sleep(Duration::from_millis(300));
                Ok(Servers {
                    list: vec![proxy, node],
                })
            }
        }
    }

    fn front(&self) -> &Server {
        &self.list[0]
    }

    fn front_mut(&mut self) -> &mut Server {
        &mut self.list[0]
    }
}

/// Samples a process's peak RSS every 20 ms while an attack runs (the process may
/// exit before the attack returns).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                peak = peak_rss(pid).unwrap_or(0).max(peak);
                thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or(0)
    }
}

/// What the well-behaved client saw.
struct Echoes {
    ok: u64,
    bad: u64,
    rtts: Vec<Duration>,
    error: Option<String>,
}

/// A client that echoes numbered DATA, one at a time, and checks each answer.
struct WellBehaved {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Echoes>,
}

impl WellBehaved {
    fn start(addr: SocketAddr, echo_node: u16) -> WellBehaved {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let mut e = Echoes {
                ok: 0,
                bad: 0,
                rtts: Vec::new(),
                error: None,
            };
            let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
            opts.timeout = Duration::from_secs(10);
            opts.config.trust_server_as_proxy = echo_node != 0;
            let client = connect(addr, opts);
            let _ = ready_tx.send(());
            let mut client = match client {
                Ok(c) => c,
                Err(err) => {
                    e.bad += 1;
                    e.error = Some(err.to_string());
                    return e;
                }
            };
            let mut seq = 0u32;
            // at least one echo, however short the attack: one that ends before the
            // first round trip (goaway-after-burst, forged-x-flag) left 0 echoes, a
            // failure of the harness, not of the server
            loop {
                seq += 1;
                let mut payload = seq.to_be_bytes().to_vec();
                payload.resize(64 + (seq % 64) as usize, seq as u8);
                let route = Route::new(echo_node, 7, seq as u8);
                let start = Instant::now();
                let got = client
                    .send(route, &payload, SendOptions::default())
                    .and_then(|()| client.recv());
                match got {
                    Ok(m) if m.payload == payload && m.route.channel == seq as u8 => {
                        e.ok += 1;
                        e.rtts.push(start.elapsed());
                    }
                    Ok(_) => {
                        e.bad += 1;
                        e.error.get_or_insert_with(|| "wrong echo".into());
                    }
                    Err(err) => {
                        e.bad += 1;
                        e.error = Some(err.to_string());
                        return e;
                    }
                }
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                // about 1,000 echoes a second: a steady, modest load
                thread::sleep(Duration::from_millis(1));
            }
            if let Err(err) = client.close() {
                e.error = Some(format!("close: {err}"));
            }
            e
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        WellBehaved { stop, thread }
    }

    fn stop(self) -> Echoes {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or(Echoes {
            ok: 0,
            bad: 1,
            rtts: Vec::new(),
            error: Some("the client thread panicked".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_peak_rss() {
        let rss = peak_rss(std::process::id()).expect("VmHWM on Linux");
        assert!(rss > 1024 * 1024, "{rss}");
    }

    #[test]
    fn pending_failures_do_not_fail_the_suite() {
        let mut o = Outcome::default();
        o.fail("x");
        assert!(!o.ok());
        o.pending = Some("another change");
        assert!(o.ok());
        assert!(line(&o).contains("PENDING"));
    }
}

//! The engine against the field's baseline (feature `transport-bench`): tokio +
//! tokio-util `LengthDelimitedCodec` (+ tokio-rustls on aws-lc-rs, + per-message
//! snappy), one way over 127.0.0.1, same payloads.
//!
//! Method (BRIEF §6 traps): one connection per side and scenario, kept for all
//! repetitions; a discarded warm-up run of each first (the first TLS connection runs
//! slow until allocations are warm); then ours and the baseline alternate; medians.
//! The baseline is tuned as the BRIEF measured it best: one write (= flush) every 256
//! messages and at the end; ours hands messages over with
//! [`Engine::send_many`](super::Engine::send_many), 256 at a time. Both use the same TLS configuration (TLS 1.3, AES-128-GCM
//! forced by the server's preference) and this machine's two cores: ours one
//! application thread plus two IO threads (the sending connection on one, the receiving
//! one on the other; `FW_BENCH_IO_THREADS` changes the count), the baseline a two-worker
//! tokio runtime with a writer task and a reader task.
//!
//! Application CPU: ours is the CPU time of the one application thread (it sends and
//! receives every message), per message; the baseline has no separate application
//! thread — its application code runs inline with its IO — so its figure is the whole
//! process's CPU time per message.
//!
//! Wire bytes: what the sender wrote to its socket per message (framing, compression
//! and TLS records included; the handshake excluded).
//!
//! Ping rows (`bench/latency.rs`): PING/PONG RTT against a ping frame echoed in the
//! baseline's stream, idle and under a flood. Ours runs with the protocol's default
//! window of 1024 packets (`FW_BENCH_PING_WINDOW` changes it): the window bounds what
//! can queue ahead of a PING. Measured: p99 under the flood 0.23 ms at 1024, 2.6 ms at
//! 4096, for 15 % less flood. Memory rows (`bench/memory.rs`): resident set
//! growth per idle TLS connection of a server holding 10,000.
//!
//! Proxy rows: the proxy's own work per message on one thread (messages per second per
//! core, sans-IO, only the proxy's calls timed): forwarding in place (§7.3) against a
//! naive proxy that decodes, decompresses, recompresses and re-encodes every packet.
//! Snappy is used only for payloads at or above the compression threshold and only when
//! it makes them smaller, so at 64 B both sides do about the same work (framing); the
//! `forced` row compresses every payload (threshold 0), as a sender that sets it would.
//!
//! Run it with `cargo run --release -p fleetwire-cli --features transport-bench --
//! bench [--quick] [--json PATH] [--only SECTION]`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cpu_time::{ProcessTime, ThreadTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::{AppEvent, ConnId, Engine, EngineConfig, Outgoing, SendFlags, TlsOptions};
use crate::connection::Config;

mod latency;
mod memory;
mod pairs;
use crate::header::{Codec, Route};
use crate::tls::{client_config, generate_test_pki, server_config};

/// One comparison: `ratio` is how many times better ours is (throughput: ours /
/// baseline; CPU per message: baseline / ours).
///
/// ```
/// use fleetwire::transport::bench::BenchResult;
/// let r = BenchResult::new("x", "msg/s", 2.0, 1.0, true);
/// assert_eq!(r.ratio, 2.0);
/// ```
#[derive(Clone, PartialEq, Debug)]
pub struct BenchResult {
    /// What was measured.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Our median.
    pub ours: f64,
    /// The baseline's median.
    pub baseline: f64,
    /// Better-is-higher ratio of the two.
    pub ratio: f64,
}

impl BenchResult {
    /// A result; `higher_is_better` decides the ratio's direction.
    ///
    /// ```
    /// use fleetwire::transport::bench::BenchResult;
    /// assert_eq!(BenchResult::new("cpu", "ns/msg", 10.0, 40.0, false).ratio, 4.0);
    /// ```
    pub fn new(
        name: &str,
        unit: &'static str,
        ours: f64,
        baseline: f64,
        higher_is_better: bool,
    ) -> BenchResult {
        let ratio = match higher_is_better {
            true if baseline > 0.0 => ours / baseline,
            false if ours > 0.0 => baseline / ours,
            _ => f64::NAN,
        };
        BenchResult {
            name: name.to_owned(),
            unit,
            ours,
            baseline,
            ratio,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Plain,
    Tls,
    /// Snappy asked for on every message; ours skips payloads under the default
    /// threshold (§9.2 `[[comp.threshold]]`), the baseline compresses every one.
    TlsSnappy,
    /// Snappy tried on every message by both (ours with a threshold of 0; a payload
    /// that does not shrink is still sent as it is, §9.2).
    TlsSnappyForced,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plaintext",
            Mode::Tls => "tls",
            Mode::TlsSnappy => "tls+snappy",
            Mode::TlsSnappyForced => "tls+snappy forced",
        }
    }

    fn snappy(self) -> bool {
        matches!(self, Mode::TlsSnappy | Mode::TlsSnappyForced)
    }
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Run {
    msgs_per_s: f64,
    cpu_ns_per_msg: f64,
    /// Bytes the sender wrote to its socket per message (framing, compression, TLS).
    wire_bytes_per_msg: f64,
}

/// Runs the comparison and returns one result per figure; `quick` uses fewer messages
/// and repetitions (seconds instead of a minute). Prints nothing.
///
/// ```no_run
/// for r in fleetwire::transport::bench::bench(true) {
///     println!("{:<40} {:>12.0} {:>12.0} {:>6.2}x {}", r.name, r.ours, r.baseline, r.ratio, r.unit);
/// }
/// ```
pub fn bench(quick: bool) -> Vec<BenchResult> {
    bench_sections(quick, &Section::ALL)
}

/// A part of [`bench`](fn@bench), to run alone.
///
/// ```
/// use fleetwire::transport::bench::Section;
/// assert_eq!(Section::parse("ping"), Some(Section::Ping));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Section {
    /// Throughput, application CPU and wire bytes at 64 B and 1 KiB.
    Throughput,
    /// Ping RTT idle and under saturation.
    Ping,
    /// Memory per idle TLS connection.
    Memory,
    /// Forward-in-place against a re-encoding proxy.
    Proxy,
    /// The fair pairs: application-thread model (ours against tokio + mpsc) and
    /// processing on the IO threads (native handlers against the inline consumer).
    Pairs,
    /// 1 to 1,000 connections, 1 and 2 IO threads.
    Scaling,
}

impl Section {
    /// Every section, in the order [`bench`](fn@bench) runs them.
    pub const ALL: [Section; 6] = [
        Section::Throughput,
        Section::Pairs,
        Section::Scaling,
        Section::Ping,
        Section::Memory,
        Section::Proxy,
    ];

    /// `throughput`, `pairs`, `scaling`, `ping`, `memory` or `proxy`.
    ///
    /// ```
    /// assert!(fleetwire::transport::bench::Section::parse("cpu").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|s| format!("{s:?}").eq_ignore_ascii_case(name))
    }
}

/// [`bench`](fn@bench) restricted to `sections`.
///
/// ```no_run
/// use fleetwire::transport::bench::{bench_sections, Section};
/// let rows = bench_sections(true, &[Section::Ping]);
/// assert!(rows.iter().all(|r| r.name.contains("ping") || r.name.contains("bulk")));
/// ```
pub fn bench_sections(quick: bool, sections: &[Section]) -> Vec<BenchResult> {
    // The memory rows re-run this executable as their server process.
    if let Ok(side) = std::env::var(memory::CHILD_ENV) {
        memory::child(&side);
    }
    let reps = if quick { 3 } else { 5 };
    let mut results = Vec::new();
    if sections.contains(&Section::Throughput) {
        results.extend(throughput_rows(quick, reps));
    }
    if sections.contains(&Section::Pairs) {
        results.extend(pairs::pair_rows(quick, reps));
    }
    if sections.contains(&Section::Scaling) {
        results.extend(pairs::scaling_rows(quick, reps));
    }
    if sections.contains(&Section::Ping) {
        results.extend(ping_rows(quick, reps));
    }
    if sections.contains(&Section::Memory) {
        results.extend(memory::rows(quick));
    }
    if sections.contains(&Section::Proxy) {
        results.extend(proxy_rows(quick, reps));
    }
    results
}

/// Whether the throughput row `label` is selected by `FLEETWIRE_BENCH_ONLY` (a list of
/// exact labels separated by commas, e.g. `64B plaintext,1024B tls`; unset: all).
fn selected(label: &str) -> bool {
    match std::env::var("FLEETWIRE_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|l| l.trim() == label),
        Err(_) => true,
    }
}

/// `n` divided by `FLEETWIRE_BENCH_DIVIDE` (default 1; at least 1 message): tests run
/// the benchmark's code paths with tiny counts.
fn scaled(n: usize) -> usize {
    let div = std::env::var("FLEETWIRE_BENCH_DIVIDE")
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    (n / div).max(1)
}

fn throughput_rows(quick: bool, reps: usize) -> Vec<BenchResult> {
    let mut results = Vec::new();
    for (size, n) in [(64usize, 1_000_000usize), (1024, 200_000)] {
        let n = scaled(if quick { n / 4 } else { n });
        for mode in [
            Mode::Plain,
            Mode::Tls,
            Mode::TlsSnappy,
            Mode::TlsSnappyForced,
        ] {
            if mode == Mode::TlsSnappyForced && size >= Config::COMPRESS_THRESHOLD {
                continue; // above the threshold every message is compressed anyway
            }
            let label = format!("{size}B {}", mode.name());
            if !selected(&label) {
                continue;
            }
            let (ours, base) = compare(size, mode, n, reps);
            results.push(BenchResult::new(
                &format!("{label} throughput"),
                "msg/s",
                median(&ours, |r| r.msgs_per_s),
                median(&base, |r| r.msgs_per_s),
                true,
            ));
            results.push(BenchResult::new(
                &format!("{label} app CPU per message"),
                "ns/msg",
                median(&ours, |r| r.cpu_ns_per_msg),
                median(&base, |r| r.cpu_ns_per_msg),
                false,
            ));
            results.push(BenchResult::new(
                &format!("{label} wire bytes per message"),
                "B/msg",
                median(&ours, |r| r.wire_bytes_per_msg),
                median(&base, |r| r.wire_bytes_per_msg),
                false,
            ));
        }
    }
    results
}

fn proxy_rows(quick: bool, reps: usize) -> Vec<BenchResult> {
    let mut results = Vec::new();
    // 64 B payloads are below the compression threshold: the client sends them
    // uncompressed and the re-encoding proxy has only framing to redo. "forced" compresses
    // every payload (threshold 0 at the client and the re-encoding egress alike).
    for (size, forced) in [(64usize, false), (64, true), (1024, false)] {
        let n = scaled(if quick { 50_000 } else { 200_000 });
        let (mut ours, mut naive) = proxy_compare(size, n, reps, forced);
        let label = if forced { " forced" } else { "" };
        results.push(BenchResult::new(
            &format!("{size}B snappy{label} proxy, forward in place vs re-encode"),
            "msg/s/core",
            medianf(&mut ours),
            medianf(&mut naive),
            true,
        ));
    }
    results
}

/// Ping RTT p50/p99 idle and saturated, and the bulk rate while saturated; plaintext
/// and TLS, 64-byte bulk messages. Medians over `reps` alternating runs.
fn ping_rows(quick: bool, reps: usize) -> Vec<BenchResult> {
    let count = scaled(if quick { 300 } else { 1000 });
    let pool = payloads(64, 1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for mode in [Mode::Plain, Mode::Tls] {
        // the default window (1024 packets) bounds what queues ahead of a PING
        let mut ours = Ours::with(mode, false);
        for saturate in [false, true] {
            latency::ours(&mut ours, &pool, count / 4, saturate);
            latency::baseline(&rt, mode, &pool, count / 4, saturate);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                a.push(latency::ours(&mut ours, &pool, count, saturate));
                b.push(latency::baseline(&rt, mode, &pool, count, saturate));
            }
            let load = if saturate { "saturated" } else { "idle" };
            for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
                rows.push(BenchResult::new(
                    &format!("ping RTT {qn} {load} ({})", mode.name()),
                    "us",
                    medianf(&mut a.iter().map(|r| r.quantile_us(q)).collect::<Vec<_>>()),
                    medianf(&mut b.iter().map(|r| r.quantile_us(q)).collect::<Vec<_>>()),
                    false,
                ));
            }
            if saturate {
                rows.push(BenchResult::new(
                    &format!("bulk 64B while pinging ({})", mode.name()),
                    "msg/s",
                    medianf(&mut a.iter().map(|r| r.bulk_per_s).collect::<Vec<_>>()),
                    medianf(&mut b.iter().map(|r| r.bulk_per_s).collect::<Vec<_>>()),
                    true,
                ));
            }
        }
    }
    rows
}

fn median(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Warm-up of each, then `reps` alternating runs of each.
fn compare(size: usize, mode: Mode, n: usize, reps: usize) -> (Vec<Run>, Vec<Run>) {
    let pool = payloads(size, 1024);
    let mut ours = Ours::new(mode);
    let mut base = Baseline::new(mode);
    ours.run(&pool, n / 4);
    base.run(&pool, n / 4);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        a.push(ours.run(&pool, n));
        b.push(base.run(&pool, n));
    }
    (a, b)
}

/// Game-like payloads: 16-byte entity records with small, correlated values
/// (snappy compresses them about 1.5–2×, as the BRIEF's figures for game data).
fn payloads(size: usize, count: usize) -> Vec<Bytes> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..count)
        .map(|i| {
            let mut p = Vec::with_capacity(size);
            let mut entity = (i as u32) * 8;
            while p.len() < size {
                let r = rnd();
                entity += (r & 1) as u32;
                p.extend_from_slice(&entity.to_be_bytes());
                for axis in 0..3 {
                    p.extend_from_slice(&(((r >> (8 + 8 * axis)) & 0x3F) as i16).to_be_bytes());
                }
                p.extend_from_slice(&[(r >> 40) as u8 & 3, 0, 0, 1, 0, 0]);
            }
            p.truncate(size);
            Bytes::from(p)
        })
        .collect()
}

fn tls_pair() -> (TlsOptions, TlsOptions) {
    let pki = generate_test_pki(&["localhost"], None).expect("test PKI");
    let server =
        server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).expect("server");
    let client = client_config(pki.ca_cert_pem.as_bytes(), None).expect("client");
    (
        TlsOptions::Client {
            config: client,
            server_name: "localhost".into(),
        },
        TlsOptions::Server(server),
    )
}

/// Our engine: one application thread (this one) sending on one connection and
/// receiving on its peer; two IO threads (`FW_BENCH_IO_THREADS`), one per connection.
struct Ours {
    engine: Engine,
    tx: ConnId,
    flags: SendFlags,
    batch: Vec<AppEvent>,
    /// Messages made and not yet queued (handed over 256 at a time, as the baseline
    /// writes 256 at a time).
    out: Vec<Outgoing>,
    /// Messages the native handler consumed ([`pairs`]).
    handled: pairs::Counter,
}

impl Ours {
    /// The engine tuned for throughput: a window of 64 Ki packets and 32 MiB (the
    /// default is 1024 packets and 4 MiB) and a 64 MiB receive budget.
    fn new(mode: Mode) -> Ours {
        Ours::with(mode, true)
    }

    /// `wide`: as [`Ours::new`]; otherwise the engine's default limits.
    fn with(mode: Mode, wide: bool) -> Ours {
        let io_threads = std::env::var("FW_BENCH_IO_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        let mut cfg = EngineConfig {
            io_threads,
            ping_interval: None,
            ..EngineConfig::default()
        };
        let window: u32 = std::env::var("FW_BENCH_PING_WINDOW")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        for c in [&mut cfg.client, &mut cfg.server] {
            if wide {
                c.limits.initial_credit_packets = 64 * 1024;
                c.limits.initial_credit_bytes = 32 * 1024 * 1024;
            } else {
                // the protocol's default window (the engine's is 16 Ki packets): it
                // bounds what can queue ahead of a PING (§8)
                c.limits.initial_credit_packets = window;
            }
            if mode == Mode::TlsSnappyForced {
                c.compress_threshold = 0;
            }
        }
        if wide {
            cfg.recv_budget_bytes = 64 * 1024 * 1024;
        }
        let engine = Engine::new(cfg).expect("engine");
        let (client, server) = match mode {
            Mode::Plain => (TlsOptions::Plaintext, TlsOptions::Plaintext),
            Mode::Tls | Mode::TlsSnappy | Mode::TlsSnappyForced => tls_pair(),
        };
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let l = engine.listen(any, server).expect("listen");
        let tx = engine.connect(l.local_addr, client).expect("connect");
        let mut batch = Vec::new();
        let mut connected = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while connected < 2 && Instant::now() < deadline {
            engine.recv_batch(&mut batch, Duration::from_millis(100));
            connected += batch
                .drain(..)
                .filter(|e| matches!(e, AppEvent::Connected { .. }))
                .count();
        }
        let flags = match mode.snappy() {
            true => SendFlags::codec(Codec::Snappy),
            false => SendFlags::default(),
        };
        Ours {
            engine,
            tx,
            flags,
            batch,
            out: Vec::with_capacity(256),
            handled: Default::default(),
        }
    }

    fn run(&mut self, pool: &[Bytes], n: usize) -> Run {
        let route = Route::new(0, 1, 0);
        let wire_before = self.wire_out();
        let (start, cpu) = (Instant::now(), ThreadTime::now());
        let (mut sent, mut received, mut bytes) = (0usize, 0usize, 0usize);
        self.out.clear();
        while received < n {
            let mut blocked = false;
            // bursts, so that sending and receiving overlap with the IO thread's work
            let burst = (sent + 4096).min(n);
            while sent < burst {
                let made = sent + self.out.len();
                let more = (burst - made).min(256 - self.out.len().min(256));
                self.out.extend((made..made + more).map(|i| Outgoing {
                    route,
                    payload: pool[i % pool.len()].clone(),
                    flags: self.flags,
                }));
                match self.engine.send_many(self.tx, &mut self.out) {
                    Ok(k) => sent += k,
                    Err(e) => panic!("bench send: {e}"),
                }
                if !self.out.is_empty() {
                    blocked = true;
                    break;
                }
            }
            let wait = if blocked || sent == n {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            self.engine.recv_batch(&mut self.batch, wait);
            for e in self.batch.drain(..) {
                if let AppEvent::Message(m) = e {
                    bytes += m.payload.len();
                    received += 1;
                }
            }
        }
        let (wall, cpu) = (start.elapsed(), cpu.elapsed());
        std::hint::black_box(bytes);
        // stats are published once per IO round: let the sender's last round land
        std::thread::sleep(Duration::from_millis(5));
        Run {
            msgs_per_s: n as f64 / wall.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: (self.wire_out() - wire_before) as f64 / n as f64,
        }
    }

    fn wire_out(&self) -> u64 {
        self.engine.stats(self.tx).map_or(0, |s| s.wire_bytes_out)
    }
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// tokio + tokio-util: a writer task and a reader task on a two-worker runtime.
struct Baseline {
    rt: Runtime,
    halves: Option<(Reader, Writer)>,
    /// Bytes the writer put on its socket (TLS included).
    written: Arc<AtomicU64>,
    snappy: bool,
}

impl Baseline {
    fn new(mode: Mode) -> Baseline {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (reader, writer, written) = rt.block_on(Baseline::connect(mode));
        Baseline {
            rt,
            halves: Some((reader, writer)),
            written,
            snappy: mode.snappy(),
        }
    }

    async fn connect(mode: Mode) -> (Reader, Writer, Arc<AtomicU64>) {
        let (client, server, written) = stream_pair(mode).await;
        (Box::new(server), Box::new(client), written)
    }

    fn run(&mut self, pool: &[Bytes], n: usize) -> Run {
        let (reader, writer) = self.halves.take().expect("connection");
        let pool = pool.to_vec();
        let snappy = self.snappy;
        self.written.store(0, Ordering::Relaxed);
        let (start, cpu) = (Instant::now(), ProcessTime::now());
        let (reader, writer) = self.rt.block_on(async move {
            let w = tokio::spawn(write_all(writer, pool, n, snappy));
            let r = tokio::spawn(read_all(reader, n, snappy));
            let (r, w) = tokio::join!(r, w);
            (r.expect("reader"), w.expect("writer"))
        });
        let (wall, cpu) = (start.elapsed(), cpu.elapsed());
        self.halves = Some((reader, writer));
        Run {
            msgs_per_s: n as f64 / wall.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: self.written.swap(0, Ordering::Relaxed) as f64 / n as f64,
        }
    }
}

/// Any stream the baseline uses: a TCP stream, or one wrapped in TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected (client, server) pair over 127.0.0.1 for the baseline, TLS unless
/// `mode` is plaintext, and a count of the bytes the client writes to its socket.
async fn stream_pair(mode: Mode) -> (Box<dyn Io>, Box<dyn Io>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (client, server) = (client.expect("connect"), accepted.expect("accept").0);
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    let written = Arc::new(AtomicU64::new(0));
    let client = Counting {
        inner: client,
        written: written.clone(),
    };
    if mode == Mode::Plain {
        return (Box::new(client), Box::new(server), written);
    }
    let (TlsOptions::Client { config, .. }, TlsOptions::Server(server_cfg)) = tls_pair() else {
        unreachable!()
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let (c, s) = tokio::join!(connector.connect(name, client), acceptor.accept(server));
    let (c, s) = (c.expect("tls connect"), s.expect("tls accept"));
    written.store(0, Ordering::Relaxed); // count from the first message, not the handshake
    (Box::new(c), Box::new(s), written)
}

/// A stream that counts the bytes written through it (the baseline's wire bytes).
struct Counting<T> {
    inner: T,
    written: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Encodes with `LengthDelimitedCodec` and writes every 256 messages (the BRIEF's
/// tuned flush interval).
async fn write_all(mut w: Writer, pool: Vec<Bytes>, n: usize, snappy: bool) -> Writer {
    let mut codec = LengthDelimitedCodec::new();
    let mut buf = BytesMut::with_capacity(256 * 1100);
    let mut enc = snap::raw::Encoder::new();
    for i in 0..n {
        let p = pool[i % pool.len()].clone();
        let item = if snappy {
            Bytes::from(enc.compress_vec(&p).expect("snappy"))
        } else {
            p
        };
        codec.encode(item, &mut buf).expect("encode");
        if (i + 1) % 256 == 0 {
            w.write_all(&buf).await.expect("write");
            buf.clear();
        }
    }
    w.write_all(&buf).await.expect("write");
    w.flush().await.expect("flush");
    w
}

async fn read_all(mut r: Reader, n: usize, snappy: bool) -> Reader {
    let mut codec = LengthDelimitedCodec::new();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut dec = snap::raw::Decoder::new();
    let mut out = Vec::new();
    let (mut got, mut bytes) = (0usize, 0usize);
    while got < n {
        buf.reserve(64 * 1024);
        if r.read_buf(&mut buf).await.expect("read") == 0 {
            panic!("baseline: early EOF after {got}");
        }
        while let Some(frame) = codec.decode(&mut buf).expect("decode") {
            if snappy {
                let len = snap::raw::decompress_len(&frame).expect("snappy len");
                out.resize(len, 0);
                bytes += dec.decompress(&frame, &mut out).expect("snappy");
            } else {
                bytes += frame.len();
            }
            got += 1;
        }
    }
    std::hint::black_box(bytes);
    r
}

/// Runs only our side, for profilers: `size`-byte messages, `n` of them, over TLS when
/// `tls`; returns messages per second.
#[doc(hidden)]
pub fn profile_ours(size: usize, tls: bool, n: usize) -> f64 {
    let pool = payloads(size, 1024);
    let mut ours = Ours::new(if tls { Mode::Tls } else { Mode::Plain });
    ours.run(&pool, n / 10);
    ours.run(&pool, n).msgs_per_s
}

/// Runs only our IO-thread path (a native handler consumes), for profilers; returns
/// messages per second and the process's CPU nanoseconds per message.
#[doc(hidden)]
pub fn profile_native(size: usize, tls: bool, n: usize) -> (f64, f64) {
    let pool = payloads(size, 1024);
    let mut ours = Ours::new(if tls { Mode::Tls } else { Mode::Plain });
    ours.add_counter();
    ours.run_native(&pool, n / 10);
    let run = ours.run_native(&pool, n);
    (run.msgs_per_s, run.cpu_ns_per_msg)
}

/// Runs only the proxy's forwarding in place (`in_place`) or the re-encoding one, for
/// profilers: `size`-byte snappy messages, `n` of them; returns messages per second of
/// proxy work.
#[doc(hidden)]
pub fn profile_proxy(size: usize, n: usize, in_place: bool) -> f64 {
    proxy_run(&payloads(size, 1024), n, in_place, false)
}

/// The sans-IO floor: `n` DATA packets of `size` bytes through two in-memory
/// [`Connection`](crate::Connection)s (send, transmit, input, events) on one thread, no
/// sockets or threads; returns nanoseconds per packet. `sink`: the receiver takes its
/// DATA through an [`EventSink`](crate::connection::EventSink) from one shared buffer
/// (the native handlers' path) instead of `poll_event`. `stamped`: the link from a
/// proxy to a node instead, whose packets carry the Source Node extension (10-byte
/// headers, §4.7), sent with [`Connection::forward`](crate::Connection::forward).
#[doc(hidden)]
pub fn sansio_floor(size: usize, n: usize, sink: bool, stamped: bool) -> f64 {
    use crate::connection::{Config, Connection, Event, EventSink, SendOptions};
    use crate::{Header, Packet};
    /// Takes every DATA, as a native handler would.
    struct Count(usize);
    impl EventSink for Count {
        fn offer(&mut self, event: Event) -> Option<Event> {
            let Event::Data { payload, .. } = event else {
                return Some(event);
            };
            std::hint::black_box(&payload[..]);
            self.0 += 1;
            None
        }
    }
    let now = Duration::ZERO;
    // two nodes (or a proxy and a node) that trust each other by configuration (spec
    // §7.4 [[src.auth]]), with credit for a whole batch
    let open = |mut cfg: Config| {
        cfg.limits.initial_credit_packets = 64 * 1024;
        cfg.limits.initial_credit_bytes = 32 * 1024 * 1024;
        Connection::new(cfg.with_trust_source(true), now)
    };
    let mut a = open(if stamped {
        Config::proxy(9)
    } else {
        Config::node(1)
    });
    let mut b = open(Config::node(1));
    let (mut ab, mut ba) = (Vec::new(), Vec::new());
    a.poll_transmit(&mut ab);
    b.poll_transmit(&mut ba);
    b.handle_input(now, &ab);
    a.handle_input(now, &ba);
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    let pool = payloads(size, 1024);
    let route = Route::new(0, 1, 0);
    let mut count = Count(0);
    let start = Instant::now();
    let (mut sent, mut got) = (0, 0);
    while got < n {
        ab.clear();
        let end = (sent + 4096).min(n);
        while sent < end {
            let payload = &pool[sent % pool.len()];
            let sent_ok = match stamped {
                false => a.send_data(route, payload, SendOptions::default()),
                true => a.forward(&Packet {
                    header: Header {
                        source: Some(40000),
                        ..Header::data(route, payload.len() as u16)
                    },
                    payload: payload.clone(),
                }),
            };
            if sent_ok.is_err() {
                break;
            }
            sent += 1;
        }
        a.poll_transmit(&mut ab);
        if sink {
            // one copy of the wire bytes, as a socket read makes
            let whole = Bytes::copy_from_slice(&ab);
            b.handle_input_into(now, &whole, Some(&whole), &mut count);
            got = count.0;
        } else {
            b.handle_input(now, &ab);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Data { payload, .. } = e {
                std::hint::black_box(payload);
                got += 1;
            }
        }
        ba.clear();
        b.poll_transmit(&mut ba);
        a.handle_input(now, &ba);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// The proxy's own work per forwarded message, one thread (messages per second per
/// core): ours forwards in place (§7.3: the ingress connection stamps the header, the
/// egress connection writes header and payload bytes as they are); the naive proxy
/// decodes, decompresses, recompresses and re-encodes every packet. Sans-IO, same
/// snappy-compressed input for both; only the proxy's calls are timed (not the client
/// that produced the input, nor the node that takes the output).
fn proxy_compare(size: usize, n: usize, reps: usize, forced: bool) -> (Vec<f64>, Vec<f64>) {
    let pool = payloads(size, 1024);
    let (mut ours, mut naive) = (Vec::new(), Vec::new());
    proxy_run(&pool, n / 4, true, forced);
    proxy_run(&pool, n / 4, false, forced);
    for _ in 0..reps {
        ours.push(proxy_run(&pool, n, true, forced));
        naive.push(proxy_run(&pool, n, false, forced));
    }
    (ours, naive)
}

/// One run of [`proxy_compare`]: returns messages per second of proxy work. `forced`:
/// every payload is compressed (threshold 0), by the client and by the re-encoding proxy.
fn proxy_run(pool: &[Bytes], n: usize, in_place: bool, forced: bool) -> f64 {
    use crate::connection::{Config, Connection, Event, SendOptions};
    let now = Duration::ZERO;
    let big = |mut c: Config| {
        c.limits.initial_credit_packets = 1 << 20;
        c.limits.initial_credit_bytes = 1 << 30;
        if forced {
            c.compress_threshold = 0;
        }
        c
    };
    let mut client = Connection::new(big(Config::client()), now);
    let ingress_cfg = if in_place {
        Config {
            peer_id: 40000,
            ..Config::proxy(9)
        }
    } else {
        // the naive proxy takes every packet as its own, decompressed
        Config::node(9)
    };
    let mut ingress = Connection::new(big(ingress_cfg), now);
    // the proxy trusts its route's node by configuration (spec §7.4 [[src.auth]])
    let mut egress = Connection::new(big(Config::proxy(9).with_trust_source(true)), now);
    let mut node = Connection::new(
        big(Config {
            trust_source: true,
            ..Config::node(2)
        }),
        now,
    );
    let (mut buf, mut back) = (Vec::new(), Vec::new());
    for (a, b) in [(&mut client, &mut ingress), (&mut egress, &mut node)] {
        for _ in 0..2 {
            buf.clear();
            a.poll_transmit(&mut buf);
            b.handle_input(now, &buf);
            buf.clear();
            b.poll_transmit(&mut buf);
            a.handle_input(now, &buf);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
    }
    // one batch of compressed DATA from the client, replayed: the ingress grants the
    // credit back as it consumes, the client never needs it
    let route = Route::new(if in_place { 2 } else { 0 }, 1, 0);
    let batch = 512usize;
    let mut input = Vec::new();
    for p in pool.iter().cycle().take(batch) {
        client
            .send_data(route, p, SendOptions::compressed(Codec::Snappy))
            .expect("client send");
    }
    client.poll_transmit(&mut input);
    let mut busy = Duration::ZERO;
    let mut done = 0usize;
    let mut out = Vec::new();
    while done < n {
        let t = Instant::now();
        ingress.handle_input(now, &input);
        while let Some(e) = ingress.poll_event() {
            match e {
                Event::Forward { packet, .. } => {
                    egress.forward(&packet).expect("forward");
                    done += 1;
                }
                Event::Data { route, payload, .. } => {
                    // re-encoding: compress again, frame again
                    let back = Route::new(0, route.service, route.channel);
                    egress
                        .send_data(back, &payload, SendOptions::compressed(Codec::Snappy))
                        .expect("send");
                    done += 1;
                }
                _ => {}
            }
        }
        out.clear();
        egress.poll_transmit(&mut out);
        back.clear();
        ingress.poll_transmit(&mut back); // CREDIT for the replayed client: dropped
        busy += t.elapsed();
        // the node takes the output and grants credit back (not timed)
        node.handle_input(now, &out);
        while node.poll_event().is_some() {}
        buf.clear();
        node.poll_transmit(&mut buf);
        egress.handle_input(now, &buf);
        while egress.poll_event().is_some() {}
    }
    done as f64 / busy.as_secs_f64()
}

fn medianf(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

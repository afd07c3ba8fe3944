//! The fair pairs and the scaling table.
//!
//! - *Application-thread model*: ours ([`Engine::send_many`] and
//!   [`Engine::recv_batch`] on one application thread) against tokio +
//!   `LengthDelimitedCodec` whose reader task forwards every frame into a
//!   `tokio::sync::mpsc` channel that one application thread drains with
//!   `blocking_recv_many`, and whose writer task takes the application's messages from
//!   another channel with `recv_many` (what a Rust user with a single-threaded game loop
//!   writes). CPU per message: the application thread's, on both sides.
//! - *Processing on the IO threads*: ours with a native handler counting the messages
//!   on the IO thread against the baseline's inline consumer (the reader task decodes
//!   and consumes). CPU per message: the whole process's, on both sides.
//! - *Scaling*: the application-thread model over 1, 10, 100 and 1,000 connections
//!   with 1 and 2 IO threads (tokio workers for the baseline), 64-byte plaintext
//!   messages spread round-robin; throughput and the process's CPU per message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cpu_time::{ProcessTime, ThreadTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::{
    median, payloads, scaled, selected, stream_pair, Baseline, BenchResult, Mode, Ours, Reader,
    Run, Writer,
};
use crate::header::Route;
use crate::transport::{AppEvent, ConnId, Engine, EngineConfig, Outgoing, SendFlags, TlsOptions};

/// The service our IO-thread runs send on: a native handler counts its messages.
pub(super) const NATIVE_SERVICE: u8 = 2;
/// The baseline's channel from the application to a writer task, as deep as our send
/// queue.
const SEND_CHANNEL: usize = 64 * 1024;
/// The baseline's channel from the reader tasks to the application.
const RECV_CHANNEL: usize = 64 * 1024;
/// Messages per batch: ours per `send_many`, the baseline per writer `recv_many`.
const BATCH: usize = 256;

/// Both pairs at 64 B and 1 KiB, plaintext, TLS and TLS + snappy.
pub(super) fn pair_rows(quick: bool, reps: usize) -> Vec<BenchResult> {
    let mut rows = Vec::new();
    for (size, n) in [(64usize, 1_000_000usize), (1024, 200_000)] {
        let n = scaled(if quick { n / 4 } else { n });
        for mode in [Mode::Plain, Mode::Tls, Mode::TlsSnappy] {
            let label = format!("{size}B {}", mode.name());
            if !selected(&label) {
                continue;
            }
            let pool = payloads(size, 1024);
            let mut ours = Ours::new(mode);
            ours.add_counter();
            let mut base = Baseline::new(mode);
            ours.run(&pool, n / 4);
            base.run_mpsc(&pool, n / 4);
            ours.run_native(&pool, n / 4);
            base.run(&pool, n / 4);
            let (mut oa, mut ba, mut on, mut bi) = (vec![], vec![], vec![], vec![]);
            for _ in 0..reps {
                oa.push(ours.run(&pool, n));
                ba.push(base.run_mpsc(&pool, n));
                on.push(ours.run_native(&pool, n));
                bi.push(base.run(&pool, n));
            }
            for (pair, o, b, cpu) in [
                ("app-thread vs tokio+mpsc", &oa, &ba, "app CPU per message"),
                ("IO-thread handler vs inline", &on, &bi, "CPU per message"),
            ] {
                rows.push(BenchResult::new(
                    &format!("{label} {pair} throughput"),
                    "msg/s",
                    median(o, |r| r.msgs_per_s),
                    median(b, |r| r.msgs_per_s),
                    true,
                ));
                rows.push(BenchResult::new(
                    &format!("{label} {pair} {cpu}"),
                    "ns/msg",
                    median(o, |r| r.cpu_ns_per_msg),
                    median(b, |r| r.cpu_ns_per_msg),
                    false,
                ));
            }
        }
    }
    rows
}

impl Ours {
    /// Registers the native handler of [`Ours::run_native`].
    ///
    /// It does what the baseline's inline consumer does (adds up the payload lengths
    /// and counts) in its own state, and publishes the count with a plain store: one
    /// connection's messages are handled on one IO thread, so there is one writer, and
    /// no locked read-modify-write per message.
    pub(super) fn add_counter(&mut self) {
        let handled = self.handled.clone();
        let (mut count, mut bytes) = (handled.load(Ordering::Relaxed), 0usize);
        self.engine.register_handler(
            NATIVE_SERVICE,
            Box::new(move |m, _| {
                bytes = std::hint::black_box(bytes + m.payload.len());
                count += 1;
                handled.store(count, Ordering::Relaxed);
            }),
        );
    }

    /// Processing on the IO thread: this thread only sends (256 at a time); a native
    /// handler consumes every message on the receiving connection's IO thread.
    pub(super) fn run_native(&mut self, pool: &[Bytes], n: usize) -> Run {
        let route = Route::new(0, NATIVE_SERVICE, 0);
        let sender = self.engine.sender(self.tx).expect("sender");
        let base = self.handled.load(Ordering::SeqCst);
        let wire_before = self.wire_out();
        let (start, cpu) = (Instant::now(), ProcessTime::now());
        let mut sent = 0usize;
        self.out.clear();
        while sent < n {
            let more = (n - sent - self.out.len()).min(BATCH - self.out.len());
            let made = sent + self.out.len();
            self.out.extend((made..made + more).map(|i| Outgoing {
                route,
                payload: pool[i % pool.len()].clone(),
                flags: self.flags,
            }));
            match sender.send_many(&mut self.out) {
                Ok(k) => sent += k,
                Err(e) => panic!("bench send: {e}"),
            }
            if !self.out.is_empty() {
                sender.wait_room(Duration::from_millis(100));
            }
        }
        let target = base + n as u64;
        while self.handled.load(Ordering::Relaxed) < target {
            std::thread::sleep(Duration::from_micros(50));
        }
        let (wall, cpu) = (start.elapsed(), cpu.elapsed());
        std::thread::sleep(Duration::from_millis(5));
        Run {
            msgs_per_s: n as f64 / wall.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: (self.wire_out() - wire_before) as f64 / n as f64,
        }
    }
}

impl Baseline {
    /// The application-thread model: this thread sends into the writer task's channel
    /// and drains the reader task's channel.
    pub(super) fn run_mpsc(&mut self, pool: &[Bytes], n: usize) -> Run {
        let (reader, writer) = self.halves.take().expect("connection");
        let snappy = self.snappy;
        let (stx, srx) = mpsc::channel::<Bytes>(SEND_CHANNEL);
        let (rtx, mut rrx) = mpsc::channel::<Bytes>(RECV_CHANNEL);
        self.written.store(0, Ordering::Relaxed);
        let w = self.rt.spawn(write_from(writer, srx, snappy));
        let r = self.rt.spawn(read_into(reader, rtx, snappy, n));
        let (start, cpu) = (Instant::now(), ThreadTime::now());
        let mut app = MpscApp {
            senders: vec![stx],
            rx: &mut rrx,
        };
        app.drive(pool, n);
        let (wall, cpu) = (start.elapsed(), cpu.elapsed());
        drop(app);
        let (reader, writer) = self.rt.block_on(async move {
            let (r, w) = tokio::join!(r, w);
            (r.expect("reader"), w.expect("writer"))
        });
        self.halves = Some((reader, writer));
        Run {
            msgs_per_s: n as f64 / wall.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: self.written.swap(0, Ordering::Relaxed) as f64 / n as f64,
        }
    }
}

/// The baseline application thread: sends round-robin over `senders`, receives from
/// one channel.
struct MpscApp<'a> {
    senders: Vec<mpsc::Sender<Bytes>>,
    rx: &'a mut mpsc::Receiver<Bytes>,
}

impl MpscApp<'_> {
    /// Sends `n` messages (bursts of 4,096, as ours) and receives `n`; the senders are
    /// dropped when everything is sent, which ends the writer tasks.
    fn drive(&mut self, pool: &[Bytes], n: usize) {
        let (mut sent, mut received, mut bytes) = (0usize, 0usize, 0usize);
        let mut batch = Vec::with_capacity(4096);
        let k = self.senders.len().max(1);
        while received < n {
            let mut blocked = false;
            let burst = (sent + 4096).min(n);
            while sent < burst {
                let p = pool[sent % pool.len()].clone();
                match self.senders[sent % k].try_send(p) {
                    Ok(()) => sent += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        blocked = true;
                        break;
                    }
                    Err(e) => panic!("baseline send: {e}"),
                }
            }
            if sent == n {
                self.senders.clear();
            }
            if blocked || sent == n {
                // something is in flight: at least one message will come
                self.rx.blocking_recv_many(&mut batch, 4096);
            } else {
                while batch.len() < 4096 {
                    match self.rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
            }
            for m in batch.drain(..) {
                bytes += m.len();
                received += 1;
            }
        }
        std::hint::black_box(bytes);
    }
}

/// Takes up to 256 messages per `recv_many`, encodes them (compressed when `snappy`)
/// and writes them in one write; ends when the application drops its sender.
async fn write_from(mut w: Writer, mut rx: mpsc::Receiver<Bytes>, snappy: bool) -> Writer {
    let mut codec = LengthDelimitedCodec::new();
    let mut buf = BytesMut::with_capacity(BATCH * 1100);
    let mut enc = snap::raw::Encoder::new();
    let mut items = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut items, BATCH).await > 0 {
        for p in items.drain(..) {
            let item = if snappy {
                Bytes::from(enc.compress_vec(&p).expect("snappy"))
            } else {
                p
            };
            codec.encode(item, &mut buf).expect("encode");
        }
        w.write_all(&buf).await.expect("write");
        buf.clear();
    }
    w.flush().await.expect("flush");
    w
}

/// Decodes frames (decompressing when `snappy`) and forwards each into `tx`; returns
/// after `n` frames.
async fn read_into(mut r: Reader, tx: mpsc::Sender<Bytes>, snappy: bool, n: usize) -> Reader {
    let mut codec = LengthDelimitedCodec::new();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut dec = snap::raw::Decoder::new();
    let mut got = 0usize;
    while got < n {
        buf.reserve(64 * 1024);
        if r.read_buf(&mut buf).await.expect("read") == 0 {
            panic!("baseline: early EOF after {got}");
        }
        while let Some(frame) = codec.decode(&mut buf).expect("decode") {
            let frame = frame.freeze();
            let msg = if snappy {
                Bytes::from(dec.decompress_vec(&frame).expect("snappy"))
            } else {
                frame
            };
            if tx.send(msg).await.is_err() {
                return r;
            }
            got += 1;
        }
    }
    r
}

/// Throughput and CPU per message over 1, 10, 100 and 1,000 connections, 1 and 2 IO
/// threads, ours and the baseline in the application-thread model.
pub(super) fn scaling_rows(quick: bool, reps: usize) -> Vec<BenchResult> {
    let n = scaled(if quick { 200_000 } else { 1_000_000 });
    let pool = payloads(64, 1024);
    let mut rows = Vec::new();
    for threads in [1usize, 2] {
        for conns in [1usize, 10, 100, 1000] {
            let label = format!("scaling {conns} conns {threads} IO threads");
            if !selected(&label) {
                continue;
            }
            let mut ours = Many::new(conns, threads);
            let mut base = ManyBaseline::new(conns, threads);
            ours.run(&pool, n / 4);
            base.run(&pool, n / 4);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                a.push(ours.run(&pool, n));
                b.push(base.run(&pool, n));
            }
            rows.push(BenchResult::new(
                &format!("{label} throughput"),
                "msg/s",
                median(&a, |r| r.msgs_per_s),
                median(&b, |r| r.msgs_per_s),
                true,
            ));
            rows.push(BenchResult::new(
                &format!("{label} CPU per message"),
                "ns/msg",
                median(&a, |r| r.cpu_ns_per_msg),
                median(&b, |r| r.cpu_ns_per_msg),
                false,
            ));
        }
    }
    rows
}

/// Ours over `conns` plaintext connections (both ends in one engine).
struct Many {
    engine: Engine,
    tx: Vec<ConnId>,
    batch: Vec<AppEvent>,
    out: Vec<Outgoing>,
}

impl Many {
    fn new(conns: usize, io_threads: usize) -> Many {
        let cfg = EngineConfig {
            io_threads,
            ping_interval: None,
            ..EngineConfig::default()
        };
        let engine = Engine::new(cfg).expect("engine");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let l = engine.listen(any, TlsOptions::Plaintext).expect("listen");
        let tx: Vec<ConnId> = (0..conns)
            .map(|_| {
                engine
                    .connect(l.local_addr, TlsOptions::Plaintext)
                    .expect("connect")
            })
            .collect();
        let mut batch = Vec::new();
        let mut connected = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while connected < 2 * conns && Instant::now() < deadline {
            engine.recv_batch(&mut batch, Duration::from_millis(100));
            connected += batch
                .drain(..)
                .filter(|e| matches!(e, AppEvent::Connected { .. }))
                .count();
        }
        assert_eq!(connected, 2 * conns, "scaling: connections");
        Many {
            engine,
            tx,
            batch,
            out: Vec::with_capacity(BATCH),
        }
    }

    /// `n` messages round-robin, at most 256 per connection per call.
    fn run(&mut self, pool: &[Bytes], n: usize) -> Run {
        let route = Route::new(0, 1, 0);
        let k = self.tx.len();
        let per = (BATCH / k).max(1);
        let (start, cpu) = (Instant::now(), ProcessTime::now());
        let (mut sent, mut received, mut next) = (0usize, 0usize, 0usize);
        while received < n {
            let mut blocked = false;
            let burst = (sent + 4096).min(n);
            while sent < burst {
                let more = per.min(burst - sent);
                self.out.clear();
                self.out.extend((sent..sent + more).map(|i| Outgoing {
                    route,
                    payload: pool[i % pool.len()].clone(),
                    flags: SendFlags::default(),
                }));
                let conn = self.tx[next % k];
                let took = self.engine.send_many(conn, &mut self.out).expect("send");
                sent += took;
                if !self.out.is_empty() {
                    blocked = true;
                    break;
                }
                next += 1;
            }
            let wait = if blocked || sent == n {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            self.engine.recv_batch(&mut self.batch, wait);
            for e in self.batch.drain(..) {
                if let AppEvent::Message(m) = e {
                    std::hint::black_box(&m.payload);
                    received += 1;
                }
            }
        }
        Run {
            msgs_per_s: n as f64 / start.elapsed().as_secs_f64(),
            cpu_ns_per_msg: cpu.elapsed().as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: 0.0,
        }
    }
}

/// The baseline over `conns` plaintext connections: a writer task (fed by its own
/// channel) and a reader task (forwarding into one shared channel) per connection.
struct ManyBaseline {
    rt: Runtime,
    halves: Vec<(Reader, Writer)>,
}

impl ManyBaseline {
    fn new(conns: usize, workers: usize) -> ManyBaseline {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        let halves = rt.block_on(async {
            let mut v: Vec<(Reader, Writer)> = Vec::new();
            for _ in 0..conns {
                let (client, server, _) = stream_pair(Mode::Plain).await;
                v.push((Box::new(server), Box::new(client)));
            }
            v
        });
        ManyBaseline { rt, halves }
    }

    fn run(&mut self, pool: &[Bytes], n: usize) -> Run {
        let k = self.halves.len();
        let (rtx, mut rrx) = mpsc::channel::<Bytes>(RECV_CHANNEL);
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for (i, (reader, writer)) in self.halves.drain(..).enumerate() {
            let (stx, srx) = mpsc::channel::<Bytes>(SEND_CHANNEL);
            senders.push(stx);
            // connection i gets the messages i, i + k, i + 2k, ...
            let mine = n / k + usize::from(i < n % k);
            let w = self.rt.spawn(write_from(writer, srx, false));
            let r = self.rt.spawn(read_into(reader, rtx.clone(), false, mine));
            tasks.push((r, w));
        }
        drop(rtx);
        let (start, cpu) = (Instant::now(), ProcessTime::now());
        MpscApp {
            senders,
            rx: &mut rrx,
        }
        .drive(pool, n);
        let (wall, cpu) = (start.elapsed(), cpu.elapsed());
        self.halves = self.rt.block_on(async move {
            let mut v = Vec::new();
            for (r, w) in tasks {
                v.push((r.await.expect("reader"), w.await.expect("writer")));
            }
            v
        });
        Run {
            msgs_per_s: n as f64 / wall.as_secs_f64(),
            cpu_ns_per_msg: cpu.as_nanos() as f64 / n as f64,
            wire_bytes_per_msg: 0.0,
        }
    }
}

/// Counts handled messages (shared with the native handler).
pub(super) type Counter = Arc<AtomicU64>;

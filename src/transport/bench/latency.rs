//! Ping RTT, idle and under a saturating one-way flood on the same connection.
//!
//! Ours: PING/PONG (spec §5.4) through [`Engine::ping`](crate::transport::Engine::ping),
//! the RTT taken from each [`AppEvent::Pong`]. The baseline: what a tokio user writes
//! without a control channel — a ping frame in the same `LengthDelimitedCodec` stream,
//! echoed by the server, its timestamp checked on return. Idle: pings back to back.
//! Saturated: the application keeps its send queue full of bulk messages while it pings
//! once a millisecond; the bulk rate reached meanwhile is reported too, so a link that
//! answers pings by starving the flood shows it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::{stream_pair, Mode, Ours};
use crate::header::Route;
use crate::transport::{AppEvent, EnqueueError as SendError};

/// How far apart pings are under saturation.
const INTERVAL: Duration = Duration::from_millis(1);
/// A run that gets no answer for this long gives up (and reports what it has).
const GIVE_UP: Duration = Duration::from_secs(20);

/// RTT samples and the bulk rate (messages per second) carried meanwhile.
pub(super) struct PingRun {
    pub(super) rtts: Vec<Duration>,
    pub(super) bulk_per_s: f64,
}

impl PingRun {
    /// The `q`-quantile (0..=1) of the RTTs, in microseconds.
    pub(super) fn quantile_us(&self, q: f64) -> f64 {
        let mut v = self.rtts.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    }
}

/// Ours: `count` pings on the sending connection, with `pool` bulk traffic when
/// `saturate`.
pub(super) fn ours(ours: &mut Ours, pool: &[Bytes], count: usize, saturate: bool) -> PingRun {
    let route = Route::new(0, 1, 0);
    let (mut sent, mut received) = (0usize, 0usize);
    let mut rtts = Vec::with_capacity(count);
    let mut outstanding: Option<Instant> = None;
    let mut last_ping = Instant::now() - INTERVAL;
    let start = Instant::now();
    while rtts.len() < count {
        if outstanding.is_some_and(|t| t.elapsed() > GIVE_UP) {
            break;
        }
        if saturate {
            for _ in 0..1024 {
                let p = pool[sent % pool.len()].clone();
                match ours.engine.send(ours.tx, route, p, ours.flags) {
                    Ok(()) => sent += 1,
                    Err(SendError::QueueFull) => break,
                    Err(e) => panic!("bench send: {e}"),
                }
            }
        }
        if outstanding.is_none() && (!saturate || last_ping.elapsed() >= INTERVAL) {
            ours.engine.ping(ours.tx);
            last_ping = Instant::now();
            outstanding = Some(last_ping);
        }
        let wait = match saturate {
            true => Duration::ZERO,
            false => Duration::from_millis(100),
        };
        ours.engine.recv_batch(&mut ours.batch, wait);
        for e in ours.batch.drain(..) {
            match e {
                AppEvent::Message(_) => received += 1,
                AppEvent::Pong { rtt, .. } => {
                    rtts.push(rtt);
                    outstanding = None;
                }
                _ => {}
            }
        }
    }
    let bulk_per_s = received as f64 / start.elapsed().as_secs_f64();
    // drain the flood so that the next run starts from an idle link
    let deadline = Instant::now() + GIVE_UP;
    while received < sent && Instant::now() < deadline {
        ours.engine
            .recv_batch(&mut ours.batch, Duration::from_millis(50));
        received += ours
            .batch
            .drain(..)
            .filter(|e| matches!(e, AppEvent::Message(_)))
            .count();
    }
    PingRun { rtts, bulk_per_s }
}

/// The first byte of a baseline ping frame; bulk frames start with 0.
const PING: u8 = 0xFF;

/// The baseline: a tokio client that writes bulk frames in batches of 256 (as the
/// throughput baseline) and a ping frame once per interval behind them; the server
/// echoes ping frames at once and counts bulk frames.
pub(super) fn baseline(
    rt: &tokio::runtime::Runtime,
    mode: Mode,
    pool: &[Bytes],
    count: usize,
    saturate: bool,
) -> PingRun {
    let pool: Vec<Bytes> = pool
        .iter()
        .map(|p| {
            let mut b = BytesMut::from(&p[..]);
            b[0] = 0;
            b.freeze()
        })
        .collect();
    rt.block_on(async move {
        let (client, server, _) = stream_pair(mode).await;
        let (mut srd, mut swr) = tokio::io::split(server);
        let (mut crd, mut cwr) = tokio::io::split(client);
        let epoch = Instant::now();
        let bulk = Arc::new(AtomicU64::new(0));
        let counted = bulk.clone();
        // the server: echo pings, count bulk
        let server = tokio::spawn(async move {
            let (mut codec, mut out_codec) =
                (LengthDelimitedCodec::new(), LengthDelimitedCodec::new());
            let (mut buf, mut out) = (BytesMut::with_capacity(256 * 1024), BytesMut::new());
            loop {
                buf.reserve(64 * 1024);
                if srd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let mut n = 0;
                while let Ok(Some(frame)) = codec.decode(&mut buf) {
                    if frame.first() == Some(&PING) {
                        out_codec.encode(frame.freeze(), &mut out).expect("encode");
                    } else {
                        n += 1;
                    }
                }
                counted.fetch_add(n, Ordering::Relaxed);
                if !out.is_empty() {
                    swr.write_all(&out).await.expect("echo");
                    out.clear();
                }
            }
        });
        // the client's reader: timestamps of echoed pings back to the writer
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
        let reader = tokio::spawn(async move {
            let mut codec = LengthDelimitedCodec::new();
            let mut buf = BytesMut::with_capacity(4096);
            loop {
                if crd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                while let Ok(Some(mut frame)) = codec.decode(&mut buf) {
                    frame.advance(1);
                    let sent_at = Duration::from_nanos(frame.get_u64());
                    if tx.send(epoch.elapsed() - sent_at).is_err() {
                        return;
                    }
                }
            }
        });
        let mut codec = LengthDelimitedCodec::new();
        let mut out = BytesMut::with_capacity(256 * 1100);
        let mut rtts = Vec::with_capacity(count);
        let (mut sent, mut outstanding) = (0usize, false);
        let mut last_ping = Instant::now() - INTERVAL;
        let start = Instant::now();
        while rtts.len() < count {
            if saturate {
                for _ in 0..256 {
                    codec
                        .encode(pool[sent % pool.len()].clone(), &mut out)
                        .expect("encode");
                    sent += 1;
                }
            }
            if !outstanding && (!saturate || last_ping.elapsed() >= INTERVAL) {
                let mut ping = BytesMut::with_capacity(9);
                ping.extend_from_slice(&[PING]);
                ping.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                codec.encode(ping.freeze(), &mut out).expect("encode");
                last_ping = Instant::now();
                outstanding = true;
            }
            cwr.write_all(&out).await.expect("write");
            out.clear();
            let answer = match saturate {
                true => rx.try_recv().ok(),
                false => tokio::time::timeout(GIVE_UP, rx.recv())
                    .await
                    .ok()
                    .flatten(),
            };
            if let Some(rtt) = answer {
                rtts.push(rtt);
                outstanding = false;
            } else if !saturate || last_ping.elapsed() > GIVE_UP {
                break;
            }
        }
        let bulk_per_s = bulk.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        cwr.shutdown().await.expect("shutdown");
        server.await.expect("server");
        reader.abort();
        PingRun { rtts, bulk_per_s }
    })
}

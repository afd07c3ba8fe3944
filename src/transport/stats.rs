//! Per-connection statistics: counted on the IO thread, published once per round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::shared::lock;
use crate::error::ErrorCode;

/// A snapshot of one connection's counters; see [`Engine::stats`](super::Engine::stats).
///
/// "Wire" bytes are what crossed the socket (TLS records included); "payload" bytes are
/// the application's, before compression on the way out and after decompression on the
/// way in. Packets count DATA only.
///
/// ```
/// use fleetwire::transport::ConnStats;
/// let s = ConnStats::default();
/// assert_eq!((s.packets_in, s.rtt), (0, None));
/// ```
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConnStats {
    /// DATA packets received (handed to the application or a native handler).
    pub packets_in: u64,
    /// DATA packets written to the connection.
    pub packets_out: u64,
    /// Application bytes received (after decompression).
    pub payload_bytes_in: u64,
    /// Application bytes sent (before compression).
    pub payload_bytes_out: u64,
    /// Bytes read from the socket.
    pub wire_bytes_in: u64,
    /// Bytes written to the socket.
    pub wire_bytes_out: u64,
    /// Messages accepted by `send` and not yet written to the connection.
    pub send_queue_packets: u64,
    /// Their charged bytes.
    pub send_queue_bytes: u64,
    /// Bytes of this connection's messages waiting for the application.
    pub recv_queue_bytes: u64,
    /// The most `recv_queue_bytes` has ever been.
    pub recv_queue_high_water: u64,
    /// Messages handled by native handlers (never queued for the application).
    pub handled_natively: u64,
    /// (Proxy.) Packets received here and queued for another connection (spec §7.3).
    pub forwarded: u64,
    /// Times the IO thread stopped taking packets because a receive budget was full.
    pub pauses: u64,
    /// The latest round-trip time from PING/PONG (spec §5.4).
    pub rtt: Option<Duration>,
    /// Errors by code: packet errors the peer reported (ERROR), and the code that
    /// closed the connection.
    pub errors: Vec<(ErrorCode, u64)>,
}

/// The IO thread's live counters (single writer, read by `stats`).
#[derive(Default)]
pub(crate) struct StatsCell {
    pub(crate) packets_in: AtomicU64,
    pub(crate) packets_out: AtomicU64,
    pub(crate) payload_in: AtomicU64,
    pub(crate) payload_out: AtomicU64,
    pub(crate) wire_in: AtomicU64,
    pub(crate) wire_out: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    pub(crate) pauses: AtomicU64,
    pub(crate) recv_high: AtomicU64,
    /// Microseconds + 1; 0 for none yet.
    pub(crate) rtt_us: AtomicU64,
    pub(crate) errors: Mutex<Vec<(ErrorCode, u64)>>,
}

/// The IO thread's private counters, published to a [`StatsCell`] once per round.
#[derive(Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) payload_in: u64,
    pub(crate) payload_out: u64,
    pub(crate) wire_in: u64,
    pub(crate) wire_out: u64,
    pub(crate) handled: u64,
    pub(crate) forwarded: u64,
    pub(crate) pauses: u64,
}

impl StatsCell {
    pub(crate) fn publish(&self, c: &Counters) {
        let r = Ordering::Relaxed;
        self.packets_in.store(c.packets_in, r);
        self.packets_out.store(c.packets_out, r);
        self.payload_in.store(c.payload_in, r);
        self.payload_out.store(c.payload_out, r);
        self.wire_in.store(c.wire_in, r);
        self.wire_out.store(c.wire_out, r);
        self.handled.store(c.handled, r);
        self.forwarded.store(c.forwarded, r);
        self.pauses.store(c.pauses, r);
    }

    pub(crate) fn count_error(&self, code: ErrorCode) {
        let mut errors = lock(&self.errors);
        match errors.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => errors.push((code, 1)),
        }
    }

    pub(crate) fn set_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        self.rtt_us.store(us + 1, Ordering::Relaxed);
    }

    pub(crate) fn note_recv_queue(&self, bytes: usize) {
        self.recv_high.fetch_max(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ConnStats {
        let r = Ordering::Relaxed;
        let rtt = match self.rtt_us.load(r) {
            0 => None,
            us => Some(Duration::from_micros(us - 1)),
        };
        ConnStats {
            packets_in: self.packets_in.load(r),
            packets_out: self.packets_out.load(r),
            payload_bytes_in: self.payload_in.load(r),
            payload_bytes_out: self.payload_out.load(r),
            wire_bytes_in: self.wire_in.load(r),
            wire_bytes_out: self.wire_out.load(r),
            handled_natively: self.handled.load(r),
            forwarded: self.forwarded.load(r),
            pauses: self.pauses.load(r),
            recv_queue_high_water: self.recv_high.load(r),
            rtt,
            errors: lock(&self.errors).clone(),
            ..ConnStats::default()
        }
    }
}

//! Live counters of a running node, for an exporter (`fleetwire node --metrics`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ErrorCode;

/// The counters of a node started with [`serve`](super::serve): set
/// [`NodeOptions::metrics`](super::NodeOptions::metrics) to a clone and read
/// [`snapshot`](Self::snapshot) from any thread while it runs. Clones share the counters.
///
/// ```
/// let metrics = fleetwire::node::NodeMetrics::default();
/// let s = metrics.snapshot();
/// assert_eq!((s.accepted, s.open.len(), s.received), (0, 0, 0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct NodeMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accepted: AtomicU64,
    open: Mutex<BTreeMap<usize, Arc<ConnCounters>>>,
    /// The final counters of closed connections, and their close codes.
    closed: Mutex<Closed>,
}

#[derive(Debug, Default)]
struct Closed {
    totals: [u64; 4],
    codes: BTreeMap<u16, u64>,
}

/// One connection's live counters, written by its thread.
#[derive(Debug)]
pub(crate) struct ConnCounters {
    peer: SocketAddr,
    /// received, echoed, bytes_sent, bytes_received
    values: [AtomicU64; 4],
}

impl ConnCounters {
    /// Publishes the connection's counters (relaxed stores: one writer).
    pub(crate) fn publish(&self, received: u64, echoed: u64, sent: u64, got: u64) {
        for (cell, v) in self.values.iter().zip([received, echoed, sent, got]) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    fn load(&self) -> [u64; 4] {
        self.values.each_ref().map(|v| v.load(Ordering::Relaxed))
    }
}

/// One open connection in a [`NodeSnapshot`].
///
/// ```
/// let s = fleetwire::node::NodeMetrics::default().snapshot();
/// for c in &s.open {
///     println!("conn {} from {}: {} received, {} echoed", c.id, c.peer, c.received, c.echoed);
/// }
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct ConnSnapshot {
    /// The connection's number (as in the node's log lines).
    pub id: usize,
    /// The peer's address.
    pub peer: SocketAddr,
    /// DATA packets received.
    pub received: u64,
    /// DATA packets echoed.
    pub echoed: u64,
    /// Fleetwire bytes written (before TLS).
    pub bytes_sent: u64,
    /// Fleetwire bytes read (after TLS).
    pub bytes_received: u64,
}

/// The node's counters at one moment; totals include closed connections.
///
/// ```
/// let s = fleetwire::node::NodeMetrics::default().snapshot();
/// assert!(s.closes.is_empty());
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// Connections accepted.
    pub accepted: u64,
    /// The open connections.
    pub open: Vec<ConnSnapshot>,
    /// DATA packets received, all connections.
    pub received: u64,
    /// DATA packets echoed, all connections.
    pub echoed: u64,
    /// Fleetwire bytes written, all connections.
    pub bytes_sent: u64,
    /// Fleetwire bytes read, all connections.
    pub bytes_received: u64,
    /// Closed connections by close code (CONNECTION_LOST for a lost stream).
    pub closes: Vec<(ErrorCode, u64)>,
}

impl NodeMetrics {
    /// The counters now.
    ///
    /// ```
    /// let m = fleetwire::node::NodeMetrics::default();
    /// assert_eq!(m.snapshot(), m.clone().snapshot());
    /// ```
    pub fn snapshot(&self) -> NodeSnapshot {
        let open: Vec<ConnSnapshot> = lock(&self.inner.open)
            .iter()
            .map(|(id, c)| {
                let [received, echoed, bytes_sent, bytes_received] = c.load();
                ConnSnapshot {
                    id: *id,
                    peer: c.peer,
                    received,
                    echoed,
                    bytes_sent,
                    bytes_received,
                }
            })
            .collect();
        let closed = lock(&self.inner.closed);
        let sum = |f: fn(&ConnSnapshot) -> u64, i: usize| {
            closed.totals[i] + open.iter().map(f).sum::<u64>()
        };
        NodeSnapshot {
            accepted: self.inner.accepted.load(Ordering::Relaxed),
            received: sum(|c| c.received, 0),
            echoed: sum(|c| c.echoed, 1),
            bytes_sent: sum(|c| c.bytes_sent, 2),
            bytes_received: sum(|c| c.bytes_received, 3),
            closes: closed
                .codes
                .iter()
                .map(|(c, n)| (ErrorCode(*c), *n))
                .collect(),
            open,
        }
    }

    /// A connection was accepted.
    pub(crate) fn open(&self, id: usize, peer: SocketAddr) -> Arc<ConnCounters> {
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(ConnCounters {
            peer,
            values: Default::default(),
        });
        lock(&self.inner.open).insert(id, c.clone());
        c
    }

    /// A connection closed with `code`.
    pub(crate) fn close(&self, id: usize, code: ErrorCode) {
        let Some(c) = lock(&self.inner.open).remove(&id) else {
            return;
        };
        let mut closed = lock(&self.inner.closed);
        for (total, v) in closed.totals.iter_mut().zip(c.load()) {
            *total += v;
        }
        *closed.codes.entry(code.0).or_default() += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

//! Native handlers (the BlueNet fast path, BRIEF §1): run on the IO thread for one
//! service; their packets never reach the application queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::sync::lock;
use super::types::{ConnId, ConnMessage, Outgoing, SendFlags};
use crate::header::Route;

/// A native handler: called on the IO thread for each message of its service, with a
/// [`Reply`] to answer on the same connection.
///
/// It runs inside the event loop: keep it short and never block (a blocked handler
/// stalls every connection of its IO thread).
///
/// ```
/// use fleetwire::transport::{Handler, ConnMessage, Reply};
/// let echo: Handler = Box::new(|m: &ConnMessage, reply: &mut Reply| {
///     reply.send(m.route, m.payload.clone(), Default::default());
/// });
/// # drop(echo);
/// ```
pub type Handler = Box<dyn FnMut(&ConnMessage, &mut Reply) + Send>;

/// Messages a [`Handler`] sends back on the connection its message came from. They are
/// written in the same round, after the handler returns, ahead of the application's
/// queued sends. Those waiting for the peer's credit are bounded as a send queue is
/// (`send_queue_packets`, `send_queue_bytes`): at the bound, the connection's messages
/// for native handlers wait, and so get no credit back, until the replies are written.
///
/// ```
/// use fleetwire::transport::Reply;
/// // Replies are created by the engine; a handler only calls `send`.
/// fn answer(reply: &mut Reply) {
///     reply.send(fleetwire::Route::new(0, 1, 0), bytes::Bytes::from_static(b"ok"), Default::default());
/// }
/// # let _ = answer;
/// ```
#[derive(Debug)]
pub struct Reply {
    pub(crate) conn: ConnId,
    pub(crate) out: Vec<Outgoing>,
}

impl Reply {
    pub(crate) fn new(conn: ConnId) -> Reply {
        Reply {
            conn,
            out: Vec::new(),
        }
    }

    /// The connection the message arrived on.
    ///
    /// ```
    /// fn which(reply: &fleetwire::transport::Reply) -> u64 { reply.conn().raw() }
    /// # let _ = which;
    /// ```
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Queues a message back to the peer.
    ///
    /// ```
    /// fn pong(reply: &mut fleetwire::transport::Reply) {
    ///     reply.send(fleetwire::Route::default(), bytes::Bytes::from_static(b"pong"), Default::default());
    /// }
    /// # let _ = pong;
    /// ```
    pub fn send(&mut self, route: Route, payload: Bytes, flags: SendFlags) {
        self.out.push(Outgoing {
            route,
            payload,
            flags,
        });
    }
}

pub(crate) type SharedHandler = Arc<Mutex<Handler>>;

/// The registered handlers, one slot per service, with a version the IO threads check
/// once per round to refresh their copy.
pub(crate) struct HandlerTable {
    slots: Mutex<Vec<Option<SharedHandler>>>,
    version: AtomicU64,
}

impl Default for HandlerTable {
    fn default() -> HandlerTable {
        HandlerTable {
            slots: Mutex::new(vec![None; 256]),
            version: AtomicU64::new(0),
        }
    }
}

impl HandlerTable {
    pub(crate) fn set(&self, service: u8, handler: Option<Handler>) {
        lock(&self.slots)[usize::from(service)] = handler.map(|h| Arc::new(Mutex::new(h)));
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// A copy for an IO thread: `(version, slots)`, the slots up to the last handler
    /// registered (none at all without handlers, so that an IO thread's check for any
    /// handler, made on every read, is free then).
    pub(crate) fn snapshot(&self) -> (u64, Vec<Option<SharedHandler>>) {
        let slots = lock(&self.slots);
        let used = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        (self.version(), slots[..used].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_ends_at_the_last_handler() {
        let table = HandlerTable::default();
        assert!(table.snapshot().1.is_empty());
        table.set(7, Some(Box::new(|_, _| {})));
        table.set(3, Some(Box::new(|_, _| {})));
        let (_, slots) = table.snapshot();
        assert_eq!(slots.len(), 8);
        let registered: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
        assert_eq!(registered, [3, 7]);
        table.set(7, None);
        assert_eq!(table.snapshot().1.len(), 4);
        table.set(3, None);
        assert!(table.snapshot().1.is_empty());
    }
}

//! State shared between the application thread and the IO threads: every hand-over
//! point, each one lock acquisition per batch, never per packet on the IO side.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use super::handler::HandlerTable;
use super::io::Command;
use super::proxy::{Forwarded, RouteState};
use super::stats::StatsCell;
use super::types::{AppEvent, ConnId, Outgoing};
use super::EngineConfig;
use crate::header::Header;

/// Bytes charged per queued message on top of its payload (bookkeeping, so that empty
/// messages also count against the byte budgets).
pub const QUEUE_ENTRY_OVERHEAD: usize = 64;

/// Hashes a [`ConnId`] by its value: ids are unique counters, so SipHash's
/// flood resistance buys nothing on the per-send lookup.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The connection table: id → shared half.
pub(crate) type ConnMap = HashMap<ConnId, Arc<ConnShared>, BuildHasherDefault<IdHasher>>;

/// Locks, ignoring poisoning: the protected data stays consistent (every critical
/// section is a few pushes and counter updates that cannot panic halfway).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's send queue: the application pushes, its IO thread takes it whole.
#[derive(Default)]
pub(crate) struct SendQueue {
    pub(crate) items: Vec<Outgoing>,
    /// (Proxy.) Packets forwarded from other connections, header and payload as they
    /// are written (spec §7.3); drained before `items`, in order.
    pub(crate) forwards: Vec<Forwarded>,
    /// (Proxy.) Headers, as received here, of packets this connection forwarded whose
    /// egress connection closed before writing them: each is answered with ERROR
    /// UNREACHABLE on this connection (spec §7.3 `[[route.egress-closed]]`).
    pub(crate) bounced: Vec<Header>,
    /// Messages accepted and not yet written to the connection (here and on the IO
    /// thread's side), and their charged bytes: the bound.
    pub(crate) packets: usize,
    pub(crate) bytes: usize,
    /// The IO thread has been told that items are waiting.
    pub(crate) scheduled: bool,
    /// No more sends accepted.
    pub(crate) closed: bool,
    /// A sink waiting for room.
    pub(crate) waker: Option<Waker>,
    /// A blocking sender waiting for room.
    pub(crate) waiting: bool,
}

/// One connection's shared half.
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    pub(crate) thread: usize,
    pub(crate) sendq: Mutex<SendQueue>,
    pub(crate) send_cv: Condvar,
    /// Bytes of this connection's messages waiting in the application queue.
    pub(crate) app_bytes: AtomicUsize,
    /// The IO thread stopped taking packets because a budget was reached.
    pub(crate) paused: AtomicBool,
    pub(crate) stats: StatsCell,
}

impl ConnShared {
    pub(crate) fn new(id: ConnId, thread: usize) -> ConnShared {
        ConnShared {
            id,
            thread,
            sendq: Mutex::new(SendQueue::default()),
            send_cv: Condvar::new(),
            app_bytes: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            stats: StatsCell::default(),
        }
    }
}

/// Events waiting for the application.
#[derive(Default)]
pub(crate) struct AppQueue {
    pub(crate) events: Vec<AppEvent>,
    /// The application is blocked in `recv_batch`.
    pub(crate) waiting: bool,
    /// An async stream waiting for events.
    pub(crate) waker: Option<Waker>,
    /// The engine was shut down (or dropped): no event will follow the queued ones.
    pub(crate) stopped: bool,
}

/// What the application asks of one IO thread.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) commands: Vec<Command>,
    /// Connections with new sends, or resumed after a pause.
    pub(crate) ready: Vec<ConnId>,
    /// The IO thread was woken and has not taken the inbox yet.
    pub(crate) woken: bool,
}

/// One IO thread as the other threads see it.
pub(crate) struct IoHandle {
    pub(crate) inbox: Mutex<Inbox>,
    pub(crate) waker: mio::Waker,
}

impl IoHandle {
    /// Adds to the inbox and wakes the thread only if it was not already woken.
    fn post(&self, f: impl FnOnce(&mut Inbox)) {
        let mut inbox = lock(&self.inbox);
        f(&mut inbox);
        let wake = !inbox.woken;
        inbox.woken = true;
        drop(inbox);
        if wake {
            // A failed wake means the poller is gone: the thread is exiting.
            let _ = self.waker.wake();
        }
    }

    pub(crate) fn command(&self, command: Command) {
        self.post(|inbox| inbox.commands.push(command));
    }

    pub(crate) fn ready(&self, conn: ConnId) {
        self.post(|inbox| inbox.ready.push(conn));
    }
}

/// Everything the engine's threads share.
pub(crate) struct Inner {
    pub(crate) config: EngineConfig,
    pub(crate) epoch: Instant,
    pub(crate) conns: Mutex<ConnMap>,
    pub(crate) app: Mutex<AppQueue>,
    pub(crate) app_cv: Condvar,
    /// Bytes waiting in the application queue, all connections, and the most ever.
    pub(crate) app_bytes: AtomicUsize,
    pub(crate) app_high: AtomicUsize,
    pub(crate) global_paused: AtomicBool,
    pub(crate) io: Vec<IoHandle>,
    pub(crate) next_id: AtomicU64,
    /// Sockets owned by IO threads (connections, lingering ones and listeners).
    pub(crate) open_sockets: AtomicUsize,
    pub(crate) handlers: HandlerTable,
    /// (Proxy.) The routing table the IO threads forward with.
    pub(crate) routes: Option<Arc<RouteState>>,
}

impl Inner {
    pub(crate) fn next_id(&self) -> ConnId {
        ConnId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn io_for(&self, id: ConnId) -> usize {
        (id.0 % self.io.len() as u64) as usize
    }

    /// Appends a round's events under one lock and wakes the application if it waits.
    pub(crate) fn push_app(&self, events: &mut Vec<AppEvent>) {
        if events.is_empty() {
            return;
        }
        let mut q = lock(&self.app);
        if q.events.is_empty() {
            std::mem::swap(&mut q.events, events);
        } else {
            q.events.append(events);
        }
        let notify = q.waiting;
        let waker = q.waker.take();
        drop(q);
        if notify {
            self.app_cv.notify_one();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Credits back what the application took: per connection, then globally, and
    /// resumes connections paused on a budget.
    pub(crate) fn consumed(&self, events: &[AppEvent]) {
        let mut runs: Vec<(ConnId, usize)> = Vec::new();
        let mut total = 0;
        for e in events {
            if let AppEvent::Message(m) = e {
                let cost = m.payload.len() + QUEUE_ENTRY_OVERHEAD;
                total += cost;
                match runs.last_mut() {
                    Some((c, n)) if *c == m.conn => *n += cost,
                    _ => runs.push((m.conn, cost)),
                }
            }
        }
        if total == 0 {
            return;
        }
        let mut resume = Vec::new();
        {
            let conns = lock(&self.conns);
            for (conn, n) in runs {
                if let Some(s) = conns.get(&conn) {
                    s.app_bytes.fetch_sub(n, Ordering::SeqCst);
                    if s.paused.swap(false, Ordering::SeqCst) {
                        resume.push((s.thread, conn));
                    }
                }
            }
        }
        self.app_bytes.fetch_sub(total, Ordering::SeqCst);
        for (thread, conn) in resume {
            self.io[thread].ready(conn);
        }
        if self.global_paused.swap(false, Ordering::SeqCst) {
            for io in &self.io {
                io.command(Command::ResumeAll);
            }
        }
    }
}

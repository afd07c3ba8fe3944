//! State shared between the application thread and the IO threads: every hand-over
//! point, each one lock acquisition per batch, never per packet on the IO side.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};

use super::config::EngineConfig;
use super::handler::HandlerTable;
use super::queue::{ConnShared, QUEUE_ENTRY_OVERHEAD};
use super::routing::{RouteCell, RouteState};
use super::sync::lock;
use super::tls_io::{ServerConfig, TlsEndpoint};
use super::types::{AppEvent, ConnId};

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

/// Events waiting for the application.
#[derive(Default)]
pub(crate) struct AppQueue {
    pub(crate) events: Vec<AppEvent>,
    /// The application is blocked in `recv_batch`.
    pub(crate) waiting: bool,
    /// An async stream waiting for events.
    pub(crate) waker: Option<Waker>,
    /// Called when events arrive in an empty queue; see
    /// [`Engine::set_ready_hook`](super::Engine::set_ready_hook).
    pub(crate) hook: Option<ReadyHook>,
    /// The engine was shut down (or dropped): no event will follow the queued ones.
    pub(crate) stopped: bool,
}

/// One connection's own event queue, for the async stream of
/// `Engine::events_for` (feature `transport-async`): while it is registered, the IO
/// threads route the connection's events here instead of the engine-wide queue.
#[derive(Default)]
pub(crate) struct ConnEvents {
    pub(crate) q: Mutex<ConnEventQueue>,
}

#[derive(Default)]
pub(crate) struct ConnEventQueue {
    pub(crate) events: VecDeque<AppEvent>,
    pub(crate) waker: Option<Waker>,
    /// `Closed` was queued, or the engine stopped: nothing follows the queued events.
    pub(crate) ended: bool,
}

/// Connections whose events have a queue of their own.
pub(crate) type SplitMap = HashMap<ConnId, Arc<ConnEvents>, BuildHasherDefault<IdHasher>>;

/// A function the IO threads call when events arrive in an empty application queue;
/// see [`Engine::set_ready_hook`](super::Engine::set_ready_hook).
pub type ReadyHook = Arc<dyn Fn() + Send + Sync>;

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
    /// (Proxy.) Forwarded bytes waiting in egress queues, all connections.
    pub(crate) forwarding: Arc<AtomicUsize>,
    /// (Proxy.) Of those, the bytes of answers waiting in client connections' queues.
    pub(crate) to_clients: Arc<AtomicUsize>,
    pub(crate) global_paused: AtomicBool,
    /// Bytes of received packets that connections hold because their destination has
    /// no room (`EngineConfig::global_input_bytes`), and the most ever.
    pub(crate) held_input: AtomicUsize,
    pub(crate) held_high: AtomicUsize,
    /// Bytes written by the engine that the sockets have not taken yet
    /// (`EngineConfig::global_output_bytes`).
    pub(crate) unwritten: AtomicUsize,
    pub(crate) io: Vec<IoHandle>,
    pub(crate) next_id: AtomicU64,
    /// Sockets owned by IO threads (connections, lingering ones and listeners).
    pub(crate) open_sockets: AtomicUsize,
    /// Connection sockets that may still owe the peer bytes: open, or closed with their
    /// last bytes (GOAWAY, close_notify) unwritten or the write side not yet shut. A
    /// lingering socket that only waits for the peer's EOF is not counted.
    pub(crate) owing: AtomicUsize,
    pub(crate) handlers: HandlerTable,
    /// (Proxy.) The routing table the IO threads forward with.
    pub(crate) routes: Option<Arc<RouteState>>,
    /// Connections with a stream of their own (`Engine::events_for`), and how many: zero
    /// keeps `push_app` on its one-lock path. Lock order: `app`, then `split`, then a
    /// connection's queue.
    pub(crate) split: Mutex<SplitMap>,
    pub(crate) split_count: AtomicUsize,
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
        let routed = if self.split_count.load(Ordering::SeqCst) > 0 {
            self.route_split(events)
        } else {
            Vec::new()
        };
        if events.is_empty() {
            drop(q);
            routed.into_iter().for_each(Waker::wake);
            return;
        }
        let hook = if q.events.is_empty() {
            std::mem::swap(&mut q.events, events);
            q.hook.clone()
        } else {
            q.events.append(events);
            None
        };
        let notify = q.waiting;
        let waker = q.waker.take();
        drop(q);
        if notify {
            self.app_cv.notify_one();
        }
        if let Some(w) = waker {
            w.wake();
        }
        routed.into_iter().for_each(Waker::wake);
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Moves the events of connections with a stream of their own into their queues
    /// (the caller holds `app`); returns the wakers to wake once the locks are released.
    /// A connection's `Closed` ends its queue and its registration.
    fn route_split(&self, events: &mut Vec<AppEvent>) -> Vec<Waker> {
        let mut split = lock(&self.split);
        let mut wake = Vec::new();
        let mut rest = Vec::with_capacity(events.len());
        for e in events.drain(..) {
            let conn = e.conn();
            let Some(own) = split.get(&conn) else {
                rest.push(e);
                continue;
            };
            let closed = matches!(e, AppEvent::Closed { .. });
            let mut cq = lock(&own.q);
            cq.events.push_back(e);
            cq.ended |= closed;
            wake.extend(cq.waker.take());
            drop(cq);
            if closed {
                split.remove(&conn);
                self.split_count.fetch_sub(1, Ordering::SeqCst);
            }
        }
        *events = rest;
        wake
    }

    /// The reverse of [`consumed`](Inner::consumed), for messages handed back to the
    /// engine-wide queue after a stream had taken (and credited) them.
    #[cfg(feature = "transport-async")]
    pub(crate) fn recharge(&self, events: &[AppEvent]) {
        let conns = lock(&self.conns);
        for e in events {
            if let AppEvent::Message(m) = e {
                let cost = m.payload.len() + QUEUE_ENTRY_OVERHEAD;
                if let Some(s) = conns.get(&m.conn) {
                    s.app_bytes.fetch_add(cost, Ordering::SeqCst);
                }
                self.app_bytes.fetch_add(cost, Ordering::SeqCst);
            }
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

/// Work for an IO thread, posted through its inbox.
pub(crate) enum Command {
    Listen {
        id: ConnId,
        sock: TcpListener,
        tls: Option<Arc<ServerConfig>>,
    },
    Adopt(Box<NewConn>),
    Close(ConnId),
    Ping(ConnId),
    ResumeAll,
    /// Drop every socket and exit.
    Stop,
}

/// A socket handed to an IO thread.
pub(crate) struct NewConn {
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) sock: TcpStream,
    pub(crate) tls: Option<TlsEndpoint>,
    pub(crate) connecting: bool,
    pub(crate) server: bool,
    /// The peer's address: accepted from, or connecting to.
    pub(crate) peer: SocketAddr,
    /// (Proxy.) The counters of the route this connection serves.
    pub(crate) route: Option<Arc<RouteCell>>,
}

//! [`EngineConfig`]: threads, queue bounds, memory budgets and connection templates.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Config;

/// How an [`Engine`](super::Engine) runs.
///
/// Memory is bounded by design (BRIEF §1: the StacklessIO node that grew without bound
/// crashed): each connection's send queue holds at most `send_queue_packets` messages
/// and `send_queue_bytes` bytes; the messages waiting for the application hold at most
/// `recv_budget_bytes` per connection and `global_recv_budget_bytes` in all. When a
/// receive budget is reached the IO thread stops taking packets from that connection,
/// so no flow-control credit is granted back and the peer's sender stops (spec §8
/// `[[flow.grant]]`); what the peer may still send is bounded by the credit announced
/// in `server`/`client` `limits.initial_credit_bytes`.
///
/// Start from [`EngineConfig::default`] and adjust the fields or use the `with_*`
/// setters (the struct is `#[non_exhaustive]`: settings may be added in a minor release).
///
/// ```
/// use fleetwire::transport::EngineConfig;
/// let config = EngineConfig::default().with_io_threads(2);
/// assert!(config.validate().is_ok());
/// assert!(config.with_io_threads(0).validate().is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// IO threads, each with its own event loop; connections are spread over them.
    pub io_threads: usize,
    /// Per-connection send queue bound, in messages.
    pub send_queue_packets: usize,
    /// Per-connection send queue bound, in bytes (payload plus
    /// [`QUEUE_ENTRY_OVERHEAD`](super::QUEUE_ENTRY_OVERHEAD) per message).
    pub send_queue_bytes: usize,
    /// Per-connection bound on bytes waiting for the application.
    pub recv_budget_bytes: usize,
    /// Bound on bytes waiting for the application, all connections together.
    pub global_recv_budget_bytes: usize,
    /// Connection template for [`connect`](super::Engine::connect).
    pub client: Config,
    /// Connection template for accepted connections.
    pub server: Config,
    /// Send a PING this often on each established connection, for the RTT in
    /// [`ConnStats`](super::ConnStats); `None` for never (keepalive still runs).
    pub ping_interval: Option<Duration>,
    /// A graceful close waits this long for queued messages to be written (the peer
    /// may be withholding credit) before closing anyway.
    pub close_timeout: Duration,
    /// After the peer's GOAWAY (a half-close, spec §6.4), how long the application must
    /// have held none of the connection's messages and sent nothing on it before the
    /// engine answers with its own GOAWAY; an application's
    /// [`close`](super::Engine::close) answers at once (once its sends are written),
    /// `close_timeout` at the latest. (Proxy.) Likewise, how long a half-closed
    /// client's answers must have been quiet.
    pub answer_quiet: Duration,
    /// After our GOAWAY exchange, how long to wait for the peer's EOF before dropping
    /// the socket (so that closing never resets a peer still reading).
    pub linger: Duration,
    /// Bytes per socket read (one reused buffer per IO thread).
    pub read_buffer: usize,
    /// Unwritten bytes of a connection (the socket did not take them yet) above which
    /// its IO thread encodes no more of its sends until the socket drains: what a slow
    /// reader can make a connection hold beyond its send queue.
    pub write_high_water: usize,
    /// (Proxy.) Forwarded bytes one client connection may have waiting in egress queues:
    /// beyond it the proxy takes no more of that client's packets (so grants it no
    /// credit) until they are written, and the other clients keep their share of a
    /// congested route.
    pub forward_share_bytes: usize,
    /// (Proxy.) Bytes of answers waiting in client connections' queues, all together:
    /// beyond it an answer is refused with UNREACHABLE (spec §7.3, a queue full), so
    /// that many clients that do not read cannot together grow the proxy without bound;
    /// an eighth is kept for the answers to clients whose queue is nearly empty (spec
    /// §7.3 `[[route.fair-share]]`). Also the bound of all forwarded bytes for packets
    /// between node or proxy links. A client's packet for a link is bounded by that
    /// link's queue (`send_queue_bytes`, of which the clients that already have packets
    /// waiting fill seven eighths), and waits for room rather than being refused.
    pub global_forward_bytes: usize,
    /// Bytes of received packets held for all connections together because their
    /// destination (the application's queue, a native handler's output, another
    /// connection's queue) has no room yet (spec §11 `[[limit.global-budget]]`): the
    /// credits granted may add up to more than this. Beyond it, a client connection whose
    /// packets wait is not read until they move on (TCP's flow control holds the peer
    /// back; nobody within its credit is failed), the others read a little per round.
    /// Links to nodes and proxies are always read.
    pub global_input_bytes: usize,
    /// Bytes written by the engine and not yet taken by the sockets, all connections
    /// together (spec §11 `[[limit.global-budget]]`): beyond it, the high-water mark of
    /// every connection is `write_high_water` or 64 KiB, whichever is lower, so that
    /// many peers that read nothing cannot each hold `write_high_water`.
    pub global_output_bytes: usize,
    /// How long a client connection may hold part of a full budget — its packets
    /// waiting over `global_input_bytes`, or (proxy) answers waiting for it while the
    /// answers to clients fill `global_forward_bytes` but its reserve — while its peer
    /// reads nothing (the socket refuses our bytes, or the peer's credit is used up),
    /// before it is closed with FLOOD (spec §11 `[[limit.global-budget]]`); its packets
    /// not yet processed are discarded and not counted in the GOAWAY's `delivered`.
    pub stall_timeout: Duration,
    /// Run by each IO thread before its event loop, on that thread: what a program sets
    /// there (CPU affinity, a scheduler slice or priority) applies to the thread that
    /// reads, writes and answers PINGs. The Python package asks Linux for a short
    /// scheduler slice there, so that an IO thread woken by the network preempts a busy
    /// interpreter thread at once instead of after that thread's slice.
    pub on_io_thread_start: Option<IoThreadStart>,
}

/// The code each IO thread runs first ([`EngineConfig::on_io_thread_start`]), with the
/// thread's index (0 to `io_threads - 1`).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use fleetwire::transport::{Engine, EngineConfig, IoThreadStart};
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = started.clone();
/// let config = EngineConfig::default()
///     .with_io_threads(2)
///     .with_on_io_thread_start(Some(IoThreadStart::new(move |_index| {
///         counter.fetch_add(1, Ordering::SeqCst);
///     })));
/// let mut engine = Engine::new(config)?;
/// engine.shutdown(std::time::Duration::from_secs(1)); // joins the IO threads
/// assert_eq!(started.load(Ordering::SeqCst), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct IoThreadStart(Arc<dyn Fn(usize) + Send + Sync>);

impl IoThreadStart {
    /// Wraps `f`, called once on each IO thread with the thread's index.
    ///
    /// ```
    /// let hook = fleetwire::transport::IoThreadStart::new(|index| {
    ///     eprintln!("IO thread {index} starts");
    /// });
    /// hook.run(0);
    /// ```
    pub fn new(f: impl Fn(usize) + Send + Sync + 'static) -> IoThreadStart {
        IoThreadStart(Arc::new(f))
    }

    /// Runs the hook for the IO thread `index` (the engine calls it; a test may too).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let seen = Arc::new(AtomicUsize::new(usize::MAX));
    /// let s = seen.clone();
    /// let hook = fleetwire::transport::IoThreadStart::new(move |i| s.store(i, Ordering::SeqCst));
    /// hook.run(3);
    /// assert_eq!(seen.load(Ordering::SeqCst), 3);
    /// ```
    pub fn run(&self, index: usize) {
        (self.0)(index)
    }
}

impl fmt::Debug for IoThreadStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IoThreadStart(..)")
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        let mut client = Config::client();
        let mut server = Config::node(1);
        for c in [&mut client, &mut server] {
            c.limits.initial_credit_packets = 16 * 1024;
            c.limits.initial_credit_bytes = 4 * 1024 * 1024;
        }
        EngineConfig {
            io_threads: 1,
            send_queue_packets: 64 * 1024,
            send_queue_bytes: 16 * 1024 * 1024,
            recv_budget_bytes: 8 * 1024 * 1024,
            global_recv_budget_bytes: 256 * 1024 * 1024,
            client,
            server,
            ping_interval: Some(Duration::from_secs(1)),
            close_timeout: Duration::from_secs(5),
            answer_quiet: Duration::from_millis(100),
            linger: Duration::from_secs(1),
            read_buffer: 64 * 1024,
            write_high_water: 1024 * 1024,
            forward_share_bytes: 2 * 1024 * 1024,
            global_forward_bytes: 96 * 1024 * 1024,
            global_input_bytes: 32 * 1024 * 1024,
            global_output_bytes: 64 * 1024 * 1024,
            stall_timeout: Duration::from_secs(2),
            on_io_thread_start: None,
        }
    }
}

crate::setters::setters!(EngineConfig {
    with_io_threads => io_threads: usize,
    with_send_queue_packets => send_queue_packets: usize,
    with_send_queue_bytes => send_queue_bytes: usize,
    with_recv_budget_bytes => recv_budget_bytes: usize,
    with_global_recv_budget_bytes => global_recv_budget_bytes: usize,
    with_client => client: Config,
    with_server => server: Config,
    with_ping_interval => ping_interval: Option<Duration>,
    with_close_timeout => close_timeout: Duration,
    with_answer_quiet => answer_quiet: Duration,
    with_linger => linger: Duration,
    with_read_buffer => read_buffer: usize,
    with_write_high_water => write_high_water: usize,
    with_forward_share_bytes => forward_share_bytes: usize,
    with_global_forward_bytes => global_forward_bytes: usize,
    with_global_input_bytes => global_input_bytes: usize,
    with_global_output_bytes => global_output_bytes: usize,
    with_stall_timeout => stall_timeout: Duration,
    with_on_io_thread_start => on_io_thread_start: Option<IoThreadStart>,
});

impl EngineConfig {
    /// Checks the settings; returns the first rule broken.
    ///
    /// ```
    /// use fleetwire::transport::EngineConfig;
    /// let bad = EngineConfig::default().with_recv_budget_bytes(0);
    /// assert_eq!(bad.validate(), Err("recv_budget_bytes is zero"));
    /// ```
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.io_threads == 0 {
            return Err("io_threads is zero");
        }
        if self.send_queue_packets == 0 || self.send_queue_bytes == 0 {
            return Err("send queue bound is zero");
        }
        if self.recv_budget_bytes == 0 {
            return Err("recv_budget_bytes is zero");
        }
        if self.global_recv_budget_bytes < self.recv_budget_bytes {
            return Err("global_recv_budget_bytes below recv_budget_bytes");
        }
        if self.global_input_bytes == 0 {
            return Err("global_input_bytes is zero");
        }
        if self.read_buffer < 1024 {
            return Err("read_buffer below 1024");
        }
        self.client.validate()?;
        self.server.validate()
    }
}

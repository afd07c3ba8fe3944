//! The sans-IO connection state machine (spec §3, §5, §6, §7.2, §7.4, §8, §9.3, §11,
//! §12).
//!
//! A [`Connection`] owns no socket, thread or clock. The driver feeds it received bytes
//! with [`handle_input`](Connection::handle_input), writes out what
//! [`poll_transmit`](Connection::poll_transmit) hands back, takes application events from
//! [`poll_event`](Connection::poll_event), and calls
//! [`handle_timeout`](Connection::handle_timeout) when the deadline of
//! [`poll_timeout`](Connection::poll_timeout) passes. Time is a monotonic
//! [`Duration`] since an arbitrary epoch, passed in by the driver.
//!
//! ```
//! use std::time::Duration;
//! use fleetwire::connection::{Config, Connection, Event, SendOptions};
//! use fleetwire::Route;
//!
//! let now = Duration::ZERO;
//! let mut client = Connection::new(Config::client(), now);
//! let mut server = Connection::new(Config::node(1), now);
//!
//! // Preface and HELLO are queued at once (§3): exchange them.
//! let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
//! client.poll_transmit(&mut c2s);
//! server.poll_transmit(&mut s2c);
//! server.handle_input(now, &c2s);
//! client.handle_input(now, &s2c);
//! assert!(client.is_established() && server.is_established());
//!
//! client.send_data(Route::new(0, 0, 1), b"move north", SendOptions::default()).unwrap();
//! c2s.clear();
//! client.poll_transmit(&mut c2s);
//! server.handle_input(now, &c2s);
//! assert!(matches!(server.poll_event(), Some(Event::Established { .. })));
//! let Some(Event::Data { payload, .. }) = server.poll_event() else { panic!() };
//! assert_eq!(&payload[..], b"move north");
//! ```
//!
//! The checks cite the spec's requirement tags (`[[flow.exceed]]`) beside the code that
//! enforces them.

mod config;
mod credit;
mod event;
mod pair;
mod recv;
mod send;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

pub use config::{Config, ConfigError, Identity, IdentityRole, ServiceSet, MIN_MAX_EMPTY_RUN};
pub use event::{CloseInfo, Event, EventSink, PeerInfo, SendError, SendOptions};
pub use pair::Pair;

use crate::control::{Control, Goaway, Hello, Role};
use crate::deframer::Deframer;
use crate::error::ErrorCode;
use crate::header::Header;
use crate::packet::PREFACE;
use credit::{RecvCredit, SendCredit};

/// Outstanding PINGs remembered for their PONG; older ones are forgotten (their PONG is
/// then ignored as unknown, §5.4).
const MAX_OUTSTANDING_PINGS: usize = 64;

/// Node id `0xFFFF`: never the id of a node, never stamped as a source (§4.6, §7.4).
const RESERVED_NODE: u16 = 0xFFFF;

/// Where the connection is in its life (spec §6.1). DRAINING is `Established` with a
/// GOAWAY NO_ERROR sent (`goaway_sent_at`) or received (`goaway_received`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    AwaitPreface,
    AwaitHello,
    Established,
    Closed,
}

/// A GOAWAY NO_ERROR received from the peer: the connection closes with it once the
/// rest of the current input was processed (§6.4).
#[derive(Debug)]
struct PeerGoaway {
    code: ErrorCode,
    reason: String,
    delivered: u64,
    /// When it arrived: the drain timer of an endpoint that has not answered yet (§6.5).
    at: Duration,
}

/// The limits counted per source on a trusted proxy link (§11 `[[limit.per-source]]`).
#[derive(Clone, Copy, Default, Debug)]
struct SourceCounts {
    empty_run: u32,
    errors: u32,
}

/// The per-source table, looked up for every DATA packet of a trusted proxy link.
type PerSource = crate::idmap::IdMap<SourceCounts>;

/// An event with the flow-control credit it returns to the peer once polled (§8).
#[derive(Debug)]
struct Queued {
    event: Event,
    /// Payload Length of the DATA packet this event consumed, if any.
    credit: Option<u16>,
}

/// One Fleetwire connection, from either side: client, node or proxy.
///
/// See the [module documentation](self) for how to drive it, and [`Pair`] for two
/// connections wired together in memory.
///
/// ```
/// use std::time::Duration;
/// use fleetwire::connection::{Config, Connection};
///
/// let mut conn = Connection::new(Config::node(4), Duration::ZERO);
/// let mut wire = Vec::new();
/// conn.poll_transmit(&mut wire);
/// assert_eq!(&wire[..8], &fleetwire::PREFACE); // preface first, then HELLO (§3)
/// assert_eq!(wire[8], 0x11);
/// assert_eq!(conn.poll_timeout(), Some(Duration::from_secs(10))); // handshake timer
/// ```
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: State,
    /// The latest time the driver gave us.
    now: Duration,
    opened_at: Duration,
    preface: [u8; 8],
    preface_len: usize,
    deframer: Deframer,
    /// The header of the packet being assembled, once it passed the checks of §6.3.
    checked: Option<Header>,
    /// When the first byte of the packet being assembled arrived (§6.5).
    packet_started: Duration,
    last_rx: Duration,
    last_tx: Duration,
    goaway_sent_at: Option<Duration>,
    /// Whether we sent a GOAWAY with NO_ERROR (at most one, §6.4).
    sent_no_error: bool,
    /// The peer's GOAWAY NO_ERROR, until the connection closes: the peer sends no more
    /// DATA, we may until we answer (§6.4 half-close).
    goaway_received: Option<PeerGoaway>,
    /// Empty-DATA runs and packet errors per source, on a trusted proxy link (§11
    /// `[[limit.per-source]]`); at most one entry per u16 source.
    per_source: PerSource,
    close_reason: String,
    peer: Option<PeerInfo>,
    send_credit: SendCredit,
    recv_credit: RecvCredit,
    tx: Vec<u8>,
    events: VecDeque<Queued>,
    /// Queued events that hold no credit (bounded by `config.max_queued_events`).
    uncredited: u32,
    /// Payload bytes of the queued DATA and forwarded packets ([`Connection::queued_bytes`]).
    queued_bytes: usize,
    /// PINGs answered in the current one-second window, and when it began (§11).
    pings_in_window: u32,
    ping_window: Duration,
    /// ERROR packets accepted in the current one-second window, and when it began (§5.7).
    errors_in_window: u32,
    error_window: Duration,
    empty_run: u32,
    packet_errors: u32,
    /// DATA packets of the peer processed before our GOAWAY (§5.5).
    delivered: u64,
    next_ping_id: u64,
    pings: VecDeque<u64>,
    #[cfg(feature = "compression")]
    compressor: crate::compress::Compressor,
    #[cfg(feature = "compression")]
    decompressor: crate::compress::Decompressor,
}

impl Connection {
    /// Opens a connection at time `now` and queues the preface and our HELLO, without
    /// waiting for the peer (spec §3 `[[preface.send]]`).
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`]: an invalid local configuration is a
    /// programming error, never the peer's doing. [`Connection::try_new`] returns the
    /// error instead, for configurations that come from outside the program.
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let conn = Connection::new(Config::client(), std::time::Duration::from_secs(5));
    /// assert!(!conn.is_established());
    /// ```
    pub fn new(config: Config, now: Duration) -> Connection {
        match Connection::try_new(config, now) {
            Ok(conn) => conn,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Connection::new`], or the rule of [`Config::validate`] that `config` breaks.
    ///
    /// ```
    /// use fleetwire::connection::{Config, ConfigError, Connection};
    /// use std::time::Duration;
    /// let err = Connection::try_new(Config::node(0), Duration::ZERO).err();
    /// assert_eq!(err, Some(ConfigError("a node or proxy id is 1..=65534")));
    /// assert!(Connection::try_new(Config::node(1), Duration::ZERO).is_ok());
    /// ```
    pub fn try_new(config: Config, now: Duration) -> Result<Connection, ConfigError> {
        config.validate().map_err(ConfigError)?;
        let limits = config.limits;
        let mut conn = Connection {
            state: State::AwaitPreface,
            now,
            opened_at: now,
            preface: [0; 8],
            preface_len: 0,
            deframer: Deframer::new(limits.max_payload),
            checked: None,
            packet_started: now,
            last_rx: now,
            last_tx: now,
            goaway_sent_at: None,
            sent_no_error: false,
            goaway_received: None,
            per_source: PerSource::default(),
            close_reason: String::new(),
            peer: None,
            send_credit: SendCredit::default(),
            recv_credit: RecvCredit::new(
                limits.initial_credit_packets,
                limits.initial_credit_bytes,
                limits.max_payload,
            ),
            tx: Vec::new(),
            events: VecDeque::new(),
            uncredited: 0,
            queued_bytes: 0,
            pings_in_window: 0,
            ping_window: now,
            errors_in_window: 0,
            error_window: now,
            empty_run: 0,
            packet_errors: 0,
            delivered: 0,
            next_ping_id: 1,
            pings: VecDeque::new(),
            #[cfg(feature = "compression")]
            compressor: crate::compress::Compressor::new(crate::compress::CompressPolicy {
                threshold: config.compress_threshold,
                ..crate::compress::CompressPolicy::default()
            }),
            #[cfg(feature = "compression")]
            decompressor: crate::compress::Decompressor::new(),
            config,
        };
        conn.queue_hello();
        Ok(conn)
    }

    fn queue_hello(&mut self) {
        // spec §3 [[preface.send]]: preface, then HELLO, right away
        self.tx.extend_from_slice(&PREFACE);
        let mut hello = Hello::new(
            self.config.role,
            self.config.node_id,
            &self.config.limits,
            self.config.announced_codecs(),
        );
        // spec §5.2 [[hello.peer-id]]
        hello.peer_id = self.config.peer_id;
        self.queue_control(Control::Hello(hello));
    }

    /// Appends every byte queued for the peer to `out` and returns how many: many
    /// packets in one call, for one write or TLS record (§10.3 `[[tls.grouping]]`).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let mut conn = Connection::new(Config::client(), std::time::Duration::ZERO);
    /// let mut out = Vec::new();
    /// assert_eq!(conn.poll_transmit(&mut out), 8 + 8 + 28); // preface + HELLO
    /// assert_eq!(conn.poll_transmit(&mut out), 0);
    /// ```
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.tx.len();
        if out.is_empty() && out.capacity() <= self.tx.capacity() {
            // No copy: hand over our buffer and keep the caller's (emptied) one.
            core::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
        n
    }

    /// Whether bytes are waiting for [`poll_transmit`](Connection::poll_transmit).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let conn = Connection::new(Config::client(), std::time::Duration::ZERO);
    /// assert!(conn.has_transmit());
    /// ```
    pub fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    /// The next event for the application, in order of arrival.
    ///
    /// Taking a [`Event::Data`] or [`Event::Forward`] counts its packet as consumed and
    /// may queue a CREDIT for the peer (§8 `[[flow.grant]]`): a slow consumer slows its
    /// sender. [`Event::Closed`] is always the last event.
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert!(matches!(pair.b.poll_event(), Some(Event::Established { .. })));
    /// assert_eq!(pair.b.poll_event(), None);
    /// ```
    pub fn poll_event(&mut self) -> Option<Event> {
        let Queued { event, credit } = self.events.pop_front()?;
        self.queued_bytes -= held_bytes(&event);
        if let Some(len) = credit {
            self.recv_credit.consumed(len);
            self.grant_credit();
        } else {
            self.uncredited = self.uncredited.saturating_sub(1);
        }
        Some(event)
    }

    /// The next event, without taking it (and so without granting its credit back).
    ///
    /// Lets a proxy apply backpressure: it takes an [`Event::Forward`] only once the
    /// egress connection can accept the packet, so that the ingress peer's credit is not
    /// returned for packets still waiting (§8 `[[flow.grant]]`, §7.3).
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert!(matches!(pair.a.peek_event(), Some(Event::Established { .. })));
    /// assert!(matches!(pair.a.poll_event(), Some(Event::Established { .. })));
    /// ```
    pub fn peek_event(&self) -> Option<&Event> {
        self.events.front().map(|q| &q.event)
    }

    /// Bytes queued for [`poll_transmit`](Connection::poll_transmit): what a driver
    /// holds for this peer besides its own buffers (a driver stops reading a peer whose
    /// output it cannot write, so that answers to a flood stay bounded).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let mut conn = Connection::new(Config::client(), std::time::Duration::ZERO);
    /// assert!(conn.pending_transmit() > 8); // preface and HELLO
    /// let mut out = Vec::new();
    /// conn.poll_transmit(&mut out);
    /// assert_eq!(conn.pending_transmit(), 0);
    /// ```
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Payload bytes of the DATA and forwarded packets received and not yet taken with
    /// [`poll_event`](Connection::poll_event): what this connection holds for its peer
    /// besides one incomplete packet ([`buffered`](Connection::buffered)). Bounded by
    /// the credit granted (§8) — a driver serving many connections bounds their sum
    /// (§11 `[[limit.global-budget]]`).
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// use fleetwire::Route;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// while pair.b.poll_event().is_some() {}
    /// pair.a.send_data(Route::new(0, 1, 0), &[1; 300], Default::default()).unwrap();
    /// pair.drive();
    /// assert_eq!(pair.b.queued_bytes(), 300);
    /// assert!(matches!(pair.b.poll_event(), Some(Event::Data { .. })));
    /// assert_eq!(pair.b.queued_bytes(), 0);
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Closes with a connection error the driver detected itself (§6.4
    /// `[[close.on-error]]`): FLOOD for a peer that holds more than its share of a memory
    /// budget (§11 `[[limit.global-budget]]`), for example. The DATA and forwarded
    /// packets not yet taken with [`poll_event`](Connection::poll_event) are discarded
    /// and not counted in the GOAWAY's `delivered` (§5.5 `[[goaway.delivered]]`: the
    /// peer learns which of its packets were processed); [`Event::Closed`] is the next
    /// event. A code that is not a connection error that can be sent (`0x0001`–`0x00FF`
    /// but CONNECTION_LOST, §12.4) is replaced by INTERNAL_ERROR. Does nothing once
    /// closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Event, Pair};
    /// use fleetwire::{ErrorCode, Route};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// while pair.b.poll_event().is_some() {}
    /// for _ in 0..3 {
    ///     pair.a.send_data(Route::new(0, 1, 0), b"request", Default::default()).unwrap();
    /// }
    /// pair.drive();
    /// assert!(matches!(pair.b.poll_event(), Some(Event::Data { .. })));
    /// pair.b.abort(Duration::ZERO, ErrorCode::FLOOD, "over budget");
    /// assert!(matches!(pair.b.poll_event(), Some(Event::Closed { code: ErrorCode::FLOOD, .. })));
    /// pair.drive();
    /// // the peer learns that one of its three packets was processed
    /// let last = std::iter::from_fn(|| pair.a.poll_event()).last();
    /// assert!(matches!(last, Some(Event::Closed { code: ErrorCode::FLOOD, delivered: Some(1), .. })));
    /// ```
    pub fn abort(&mut self, now: Duration, code: ErrorCode, reason: &str) {
        self.now = self.now.max(now);
        if self.state == State::Closed {
            return;
        }
        let sendable = code != ErrorCode::NO_ERROR
            && code != ErrorCode::CONNECTION_LOST
            && code.is_connection_error();
        let code = if sendable {
            code
        } else {
            ErrorCode::INTERNAL_ERROR
        };
        let mut discarded = 0;
        self.events.retain(|q| {
            let packet = matches!(q.event, Event::Data { .. } | Event::Forward { .. });
            // a DATA packet (the only events that hold credit) counted in `delivered`
            discarded += u64::from(q.credit.is_some());
            !packet
        });
        self.queued_bytes = 0;
        self.uncredited = self.events.iter().filter(|q| q.credit.is_none()).count() as u32;
        self.delivered -= discarded;
        self.fail(code, reason);
    }

    /// Queues a CREDIT when enough has been consumed (§8 `[[flow.grant]]`).
    fn grant_credit(&mut self) {
        // spec §6.4 [[close.half]]: credit keeps flowing after our GOAWAY; after the
        // peer's, it sends no more DATA (§8)
        if self.state != State::Established || self.goaway_received.is_some() {
            return;
        }
        if let Some(c) = self.recv_credit.grant() {
            self.queue_control(Control::Credit(c));
        }
    }

    /// Starts a graceful close, a half-close (§6.4): queues GOAWAY with NO_ERROR and the
    /// count of the peer's DATA packets processed so far, and enters DRAINING. No DATA is
    /// sent after it; the peer's DATA keeps arriving, is processed (delivered, forwarded
    /// or reported) and counted, and credit keeps flowing, until the peer's GOAWAY
    /// (§6.4 `[[close.half]]`). The connection closes when the peer's GOAWAY arrives, when
    /// the drain timer expires (sending nothing more) or when the stream ends
    /// ([`handle_eof`](Connection::handle_eof)).
    ///
    /// After [`Event::GoawayReceived`] this is the answer (§6.4 `[[close.answer]]`): call
    /// it once the answers to the peer's last DATA are sent; the GOAWAY carries the final
    /// `delivered` and the connection closes at once. Before the peer's HELLO was received
    /// it sends GOAWAY and closes at once, without draining. When already closing it does
    /// nothing: at most one GOAWAY NO_ERROR is sent.
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// use fleetwire::ErrorCode;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// let now = pair.now;
    /// pair.a.close(now, "done");
    /// pair.drive();
    /// // a half-close: b may still answer, then answers the GOAWAY with its own
    /// let b_events: Vec<Event> = std::iter::from_fn(|| pair.b.poll_event()).collect();
    /// assert!(matches!(b_events.last(), Some(Event::GoawayReceived { delivered: 0, .. })));
    /// pair.b.close(now, "");
    /// pair.drive();
    /// let last = std::iter::from_fn(|| pair.a.poll_event()).last();
    /// assert!(matches!(last, Some(Event::Closed { code: ErrorCode::NO_ERROR, by_peer: false, .. })));
    /// assert!(pair.a.is_closed() && pair.b.is_closed());
    /// ```
    pub fn close(&mut self, now: Duration, reason: &str) {
        self.now = self.now.max(now);
        if self.state == State::Closed || self.sent_no_error {
            return;
        }
        self.queue_goaway(ErrorCode::NO_ERROR, reason);
        if let Some(g) = self.goaway_received.take() {
            // spec §6.4 [[close.answer]]: our answer; both directions are finished
            self.close_after_goaway(g);
        } else if self.state == State::Established {
            self.goaway_sent_at = Some(self.now);
            self.close_reason = reason.to_owned();
        } else {
            self.finish(ErrorCode::NO_ERROR, false, reason.to_owned(), None);
        }
    }

    /// Whether the peer's HELLO was received and negotiation succeeded (§6.1), and the
    /// connection is not closed. Stays true while DRAINING.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// assert!(!pair.a.is_established());
    /// pair.drive();
    /// assert!(pair.a.is_established());
    /// ```
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether a graceful GOAWAY was sent and the connection is waiting for the peer's
    /// (DRAINING, §6.1).
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// let now = pair.now;
    /// pair.a.close(now, "");
    /// assert!(pair.a.is_draining());
    /// ```
    pub fn is_draining(&self) -> bool {
        self.state == State::Established
            && (self.goaway_sent_at.is_some() || self.goaway_received.is_some())
    }

    /// Whether the peer sent GOAWAY NO_ERROR and we have not answered yet: it sends no
    /// more DATA, we may until [`close`](Connection::close) sends our GOAWAY (§6.4).
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// let now = pair.now;
    /// pair.a.close(now, "");
    /// pair.a_to_b();
    /// assert!(pair.b.peer_closing() && pair.b.is_draining());
    /// ```
    pub fn peer_closing(&self) -> bool {
        self.state == State::Established
            && self.goaway_received.is_some()
            && self.goaway_sent_at.is_none()
            && !self.sent_no_error
    }

    /// Whether the connection is closed: no input is processed any more. Bytes may still
    /// wait in [`poll_transmit`](Connection::poll_transmit) (the final GOAWAY) and events
    /// in [`poll_event`](Connection::poll_event).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let mut conn = Connection::new(Config::client(), std::time::Duration::ZERO);
    /// conn.handle_input(std::time::Duration::ZERO, b"GET / HTTP/1.1\r\n");
    /// assert!(conn.is_closed()); // BAD_PREFACE
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// What the peer announced, once established.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert_eq!(pair.a.peer().map(|p| p.node_id), Some(1));
    /// ```
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// This configuration.
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let conn = Connection::new(Config::node(2), std::time::Duration::ZERO);
    /// assert_eq!(conn.config().node_id, 2);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our node id as seen on this connection: the configured `node_id`, or for a client
    /// the id the peer attributed to us in its HELLO (0 until then, or when none). DATA
    /// and ERROR for 0 or this id are delivered locally (§7.2).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Pair};
    /// let mut pair = Pair::new(Config::client(), Config::node(1).with_peer_id(77));
    /// pair.drive();
    /// assert_eq!(pair.a.own_id(), 77);
    /// assert_eq!(pair.b.own_id(), 1);
    /// ```
    pub fn own_id(&self) -> u16 {
        if self.config.node_id != 0 {
            return self.config.node_id;
        }
        self.peer.map_or(0, |p| p.attributed_id)
    }

    /// How many bytes of an incomplete packet (or of the preface) the connection holds:
    /// never more than one packet, at most 10 + `max_payload` bytes, however much input
    /// is fed at once (§11 `[[limit.buffer]]`). Complete packets become events, bounded by
    /// the credit granted (§8).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Connection};
    /// let mut conn = Connection::new(Config::node(1), std::time::Duration::ZERO);
    /// conn.handle_input(std::time::Duration::ZERO, &fleetwire::PREFACE[..5]);
    /// assert_eq!(conn.buffered(), 5);
    /// ```
    pub fn buffered(&self) -> usize {
        if self.state == State::AwaitPreface {
            return self.preface_len;
        }
        self.deframer.buffered()
    }

    /// The credit the peer granted us and we have not used: `(packets, bytes)` (§8).
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert_eq!(pair.a.send_credit(), (1024, 4 * 1024 * 1024));
    /// ```
    pub fn send_credit(&self) -> (u32, u32) {
        (self.send_credit.packets, self.send_credit.bytes)
    }

    /// How many of the peer's DATA packets were processed (delivered, forwarded or
    /// discarded with a packet error): the `delivered` of our GOAWAY (§5.5).
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let pair = Pair::client_server();
    /// assert_eq!(pair.b.delivered(), 0);
    /// ```
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    // ---- internal helpers shared by the submodules ----

    /// Appends a hop-by-hop control packet to the transmit buffer.
    fn queue_control(&mut self, control: Control<'_>) {
        control.encode_packet(&mut self.tx);
        self.last_tx = self.now;
    }

    /// Queues a GOAWAY: at most one with NO_ERROR and one with an error code are ever
    /// sent (§6.4), since a connection error closes.
    fn queue_goaway(&mut self, code: ErrorCode, reason: &str) {
        if code == ErrorCode::NO_ERROR {
            if self.sent_no_error {
                return;
            }
            self.sent_no_error = true;
        }
        let delivered = self.delivered;
        self.queue_control(Control::Goaway(Goaway {
            code,
            delivered,
            reason,
        }));
    }

    /// Enters CLOSED and reports it: the last event.
    fn finish(&mut self, code: ErrorCode, by_peer: bool, reason: String, delivered: Option<u64>) {
        crate::trace::event!(debug, %code, by_peer, reason = reason.as_str(), ?delivered, "connection closed");
        self.state = State::Closed;
        self.checked = None;
        self.goaway_received = None;
        let event = Event::Closed {
            code,
            by_peer,
            reason,
            delivered,
        };
        self.events.push_back(Queued {
            event,
            credit: None,
        });
        self.uncredited += 1;
    }

    /// A connection error: GOAWAY with the code, then CLOSED without processing further
    /// input (§6.4 `[[close.on-error]]`).
    fn fail(&mut self, code: ErrorCode, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        if code == ErrorCode::FLOOD || code == ErrorCode::TOO_MANY_ERRORS {
            // a limit of §11/§12.3 the peer ran into: what an operator wants to see
            crate::trace::event!(warn, %code, reason, "{reason}: closing the connection with {code}");
        } else {
            crate::trace::event!(debug, %code, reason, "connection error");
        }
        self.queue_goaway(code, reason);
        self.finish(code, false, reason.to_owned(), None);
    }

    /// Whether the limits of §11 are counted per source: a trusted proxy link
    /// (`[[limit.per-source]]`).
    fn counts_per_source(&self) -> bool {
        self.peer_may_stamp()
    }

    /// Whether the peer may set X (§7.4 `[[src.trust]]`): its role is proxy and it is
    /// a trusted proxy link — authenticated with a proxy identity naming its node id
    /// (§10.2), configured as trusted, or (for a client) the server it connected to
    /// (`[[src.client-trusts-server]]`).
    fn peer_may_stamp(&self) -> bool {
        let Some(peer) = self.peer else { return false };
        if peer.role != Role::Proxy {
            // spec §7.4 [[src.forbid]]
            return false;
        }
        let authenticated_proxy = self
            .config
            .authenticated
            .is_some_and(|id| id == Identity::proxy(peer.node_id));
        authenticated_proxy || self.config.trust_source || self.config.role == Role::Client
    }

    /// The source of a DATA or ERROR packet received on this connection (§7.4).
    fn source_of(&self, header: &Header) -> u16 {
        let Some(peer) = self.peer else { return 0 };
        match peer.role {
            // the id we attributed to the client (the peer_id we sent, 0 when none)
            Role::Client => self.config.peer_id,
            Role::Node => peer.node_id,
            // a trusted proxy's stamp, else the proxy itself (X was checked earlier)
            Role::Proxy => header.source.unwrap_or(peer.node_id),
        }
    }

    /// Whether a destination node means this endpoint (§7.2). `0xFFFF` never does.
    fn is_local(&self, node: u16) -> bool {
        node == 0 || (node == self.own_id() && node != RESERVED_NODE)
    }
}

/// Payload bytes an event holds for [`Connection::queued_bytes`].
fn held_bytes(event: &Event) -> usize {
    match event {
        Event::Data { payload, .. } => payload.len(),
        Event::Forward { packet, .. } => packet.payload.len(),
        _ => 0,
    }
}

//! One connection as its IO thread drives it: socket, optional TLS endpoint (a BIO
//! pair, spec §10), the sans-IO [`Connection`], and its buffers and queues.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;

use super::config::EngineConfig;
use super::forward::{bounce, route, Routed, Unroutable};
use super::handler::{Handler, Reply, SharedHandler};
use super::queue::{Charge, Charges, ConnShared, Forwarded, QUEUE_ENTRY_OVERHEAD};
use super::routing::{RouteCell, Table};
use super::shared::{Inner, NewConn};
use super::stats::Counters;
use super::sync::lock;
use super::tls_io::TlsEndpoint;
use super::types::{AppEvent, ConnId, Message, Outgoing};
use crate::connection::{Config, Connection, Event, EventSink, SendError as ConnSendError};
use crate::control::Role;
use crate::error::ErrorCode;
use crate::header::{Header, Kind};

/// Socket reads per round before other connections get their turn.
const MAX_READS: usize = 16;
/// Bytes read per round before other connections get their turn: a peer that floods
/// (tiny packets cost the most per byte) delays the others' rounds by at most this much
/// parsing (issue 11: a flooder's 1 MiB rounds put the well-behaved client's echo p99
/// through a proxy above 10 ms).
const READ_ROUND_BYTES: usize = 128 * 1024;
/// While the engine's input budget is full (spec §11 `[[limit.global-budget]]`): what a
/// connection with no packets waiting may read per round, so that however many
/// connections each read once and then find their destination full, what they add
/// stays small.
const OVER_BUDGET_READ: usize = 16 * 1024;
/// While the engine's output budget is full: the high-water mark of every connection
/// (when `write_high_water` is not lower).
const OVER_BUDGET_HIGH_WATER: usize = 64 * 1024;
/// Plaintext reads of at least `read_buffer / ZERO_COPY_DIVISOR` bytes are handed to
/// the connection without a copy (their payloads keep the read buffer's allocation
/// alive, at most this many times the bytes read); smaller ones are copied.
const ZERO_COPY_DIVISOR: usize = 16;
/// Payload bytes moved from the send queue into the connection per round: enough to
/// amortise the round's fixed costs, small enough to stay in cache.
const ROUND_BYTES: usize = 256 * 1024;

/// (Proxy.) How long a client connection that half-closed (spec §6.4) waits without a
/// forwarded packet before the proxy answers its GOAWAY: the nodes' answers to its last
/// requests are still on their way. Bounded by the close timeout.
/// After the peer's GOAWAY, how often to look whether the application has taken this
/// connection's messages.
const APP_POLL: Duration = Duration::from_millis(10);

/// Reused buffers of one IO thread.
pub(crate) struct Scratch {
    /// Socket reads land here; a large read is split off and handed over as it is, its
    /// payloads slices of it (zero-copy), and the next read goes after it.
    pub(crate) rbuf: BytesMut,
    pub(crate) read_buffer: usize,
    pub(crate) plain: BytesMut,
    pub(crate) tx: Vec<u8>,
    pub(crate) out: Vec<AppEvent>,
}

impl Scratch {
    /// Room for the next read: at least a quarter of the read buffer, else a fresh
    /// (or reclaimed, once every slice of it is gone) buffer.
    pub(crate) fn read_room(&mut self) -> &mut [u8] {
        if self.rbuf.len() < self.read_buffer / 4 {
            self.rbuf.clear();
            self.rbuf.reserve(self.read_buffer);
            self.rbuf.resize(self.read_buffer, 0);
        }
        &mut self.rbuf[..]
    }
}

/// What a connection's service round needs besides its own state.
pub(crate) struct Ctx<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) handlers: &'a [Option<SharedHandler>],
    /// (Proxy.) This round's routing table.
    pub(crate) routes: Option<&'a Table>,
    pub(crate) now: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Open,
    /// Closed and reported; flushing, then waiting for the peer's EOF.
    Lingering {
        until: Duration,
        shut: bool,
    },
    Dead,
}

pub(crate) struct ConnIo {
    pub(crate) id: ConnId,
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) sock: TcpStream,
    tls: Option<TlsEndpoint>,
    conn: Option<Connection>,
    /// The connection's configuration until it is created (after TLS, spec §6.5).
    template: Option<Config>,
    connecting: bool,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) dirty: bool,
    /// The application queued sends since we last took them.
    pub(crate) sched: bool,
    pub(crate) deadline: Option<Duration>,
    pub(crate) broken: Option<String>,
    eof: bool,
    /// Counted in `Inner::owing`: the socket may still owe the peer bytes (open, or
    /// closed with its last bytes unwritten or its write side not yet shut).
    owes: bool,
    wbuf: Vec<u8>,
    wpos: usize,
    /// (TLS.) rustls holds records the socket did not take (it writes them straight to
    /// the socket, without a copy into `wbuf`): encode nothing more until they are out.
    tls_blocked: bool,
    /// Sends were left queued because unwritten output was above the high-water mark:
    /// once `transmit` has written it out, another round must take them up (no socket
    /// event will come if the socket took everything).
    write_bound: bool,
    /// The application's messages taken from the queue and not yet encoded; each is
    /// dropped as it is encoded.
    pending: VecDeque<Outgoing>,
    /// (Proxy.) Forwarded packets taken from the queue and not yet encoded.
    forwards: VecDeque<Forwarded>,
    /// (Proxy.) When a forwarded packet was last written to this connection: a client's
    /// half-close is answered once the nodes' answers have stopped coming (spec §6.4).
    last_forward: Duration,
    /// (Proxy.) The client id attributed to the peer (routed back to it), 0 for none.
    attributed: u16,
    /// (Proxy.) The counters of the route this connection serves, and what this round
    /// wrote for it (added to the cell once per round).
    route: Option<Arc<RouteCell>>,
    route_packets: u64,
    route_bytes: u64,
    replies: VecDeque<Outgoing>,
    /// Bytes of `replies` (payload plus `QUEUE_ENTRY_OVERHEAD` each).
    reply_bytes: usize,
    done_packets: usize,
    done_bytes: usize,
    more_sends: bool,
    data_sent: u64,
    counters: Counters,
    phase: Phase,
    reported: bool,
    close_notify: bool,
    close_by: Option<Duration>,
    /// The application holds messages of this connection: after the peer's GOAWAY our
    /// answer waits for its [`Engine::close`](super::Engine::close) (or `close_by`).
    app_answers: bool,
    /// The peer's GOAWAY came and the application has not yet said it is done.
    awaiting_app: bool,
    /// When the application's queue was first seen holding none of this connection's
    /// messages (while `awaiting_app`).
    app_idle_since: Option<Duration>,
    /// When the IO thread last took messages the application sent on this connection.
    last_app_send: Duration,
    next_ping: Option<Duration>,
    /// Ids of PINGs the application asked for ([`Engine::ping`](super::Engine::ping)):
    /// their PONGs are reported as [`AppEvent::Pong`]; keep-alive PINGs are not.
    app_pings: Vec<u64>,
    open_deadline: Duration,
    /// (Proxy.) The counters this connection's forwarded packets are charged to: its
    /// own bytes waiting in egress queues (`ingress`), and the proxy's totals.
    charges: Arc<Charges>,
    /// (Proxy.) Delivery stopped at a Forward: this client's share of the egress
    /// queues is used up; retried shortly.
    forward_bound: bool,
    /// (Proxy.) A packet of this client's that found no room in its egress queue: it
    /// waits here, first in line (spec §7.3 `[[route.fair-share]]`).
    stalled: Option<Forwarded>,
    /// Reading stopped: our output to this peer is above the high-water mark.
    output_bound: bool,
    /// Payload bytes of received packets this connection held at the end of its last
    /// round (its destination had no room), as counted in `Inner::held_input`.
    held: usize,
    /// Unwritten bytes of ours at the end of the last round, as counted in
    /// `Inner::unwritten`.
    out_held: usize,
    /// Reading stopped: this connection holds packets and the engine's input budget is
    /// full (spec §11 `[[limit.global-budget]]`).
    input_bound: bool,
    /// Since when this client has held part of a full budget (its packets over the
    /// input budget, or answers waiting for it) while reading nothing we send it:
    /// closed with FLOOD after `stall_timeout` (spec §11 `[[limit.global-budget]]`).
    unread_since: Option<Duration>,
    /// Sends wait: the peer's credit is used up (it has not consumed what we sent).
    credit_bound: bool,
}

impl ConnIo {
    pub(crate) fn new(new: NewConn, inner: &Inner, now: Duration) -> ConnIo {
        let cfg = &inner.config;
        let mut template = if new.server {
            cfg.server.clone()
        } else {
            cfg.client.clone()
        };
        // (Proxy.) An accepted peer gets a client id that routes back to it (§7.4)
        let mut attributed = 0;
        let dialled_route = !new.server && new.route.is_some();
        let mut route = new.route;
        if let (true, Some(routes)) = (new.server, inner.routes.as_ref()) {
            attributed = routes.attribute(&new.shared);
            template.peer_id = attributed;
            route = Some(routes.client_cell.clone());
        }
        // (Proxy.) spec §7.4 [[src.trust]] [[src.auth]]: a link configured locally as
        // trusted, or a route's node or proxy at the address configured for it
        if inner.routes.as_ref().is_some_and(|r| r.trusts(new.peer)) || dialled_route {
            template.trust_source = true;
        }
        let _ = new.sock.set_nodelay(true);
        let (conn, template) = match new.tls {
            // spec §6.5: over plaintext the connection opens with the TCP connection
            None => (Some(Connection::new(template, now)), None),
            Some(_) => (None, Some(template)),
        };
        let handshake = Duration::from_millis(cfg.client.limits.handshake_timeout_ms);
        ConnIo {
            id: new.shared.id,
            shared: new.shared,
            sock: new.sock,
            tls: new.tls,
            conn,
            template,
            connecting: new.connecting,
            readable: false,
            writable: false,
            dirty: false,
            sched: true,
            deadline: None,
            broken: None,
            eof: false,
            owes: true,
            wbuf: Vec::new(),
            wpos: 0,
            tls_blocked: false,
            write_bound: false,
            pending: VecDeque::new(),
            forwards: VecDeque::new(),
            last_forward: now,
            attributed,
            route,
            route_packets: 0,
            route_bytes: 0,
            replies: Default::default(),
            reply_bytes: 0,
            done_packets: 0,
            done_bytes: 0,
            more_sends: false,
            data_sent: 0,
            counters: Counters::default(),
            phase: Phase::Open,
            reported: false,
            close_notify: false,
            close_by: None,
            app_answers: false,
            awaiting_app: false,
            app_idle_since: None,
            last_app_send: now,
            next_ping: None,
            app_pings: Vec::new(),
            // spec §6.5 [[timeout.tls-handshake]]: TLS bounded by the handshake timer too
            open_deadline: now + handshake,
            charges: Arc::new(Charges::new(&inner.forwarding, &inner.to_clients)),
            forward_bound: false,
            stalled: None,
            output_bound: false,
            held: 0,
            out_held: 0,
            input_bound: false,
            unread_since: None,
            credit_bound: false,
        }
    }

    /// Work left over from the last round (reads or sends cut short for fairness).
    pub(crate) fn again(&self) -> bool {
        let live = !self.connecting && self.phase != Phase::Dead;
        let reads = self.readable
            && !self.eof
            && self.broken.is_none()
            && !self.output_bound
            && !self.input_bound;
        live && (reads || self.more_sends)
    }

    /// Leaves `Inner::owing` (once).
    pub(crate) fn settle(&mut self, inner: &Inner) {
        if std::mem::take(&mut self.owes) {
            inner.owing.fetch_sub(1, Ordering::SeqCst);
        }
        let held = std::mem::take(&mut self.held);
        if held > 0 {
            inner.held_input.fetch_sub(held, Ordering::SeqCst);
        }
        let out = std::mem::take(&mut self.out_held);
        if out > 0 {
            inner.unwritten.fetch_sub(out, Ordering::SeqCst);
        }
    }

    /// Before the socket is dropped: reads what the peer sent and nobody will read, so
    /// that closing sends FIN, not a reset that could make the peer discard our last
    /// bytes before its application has read them.
    pub(crate) fn discard_unread(&mut self) {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match self.sock.read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    pub(crate) fn request_close(&mut self, by: Duration) {
        // the application's close is also its answer to the peer's GOAWAY
        self.awaiting_app = false;
        if self.close_by.is_none() {
            self.close_by = Some(by);
        }
    }

    pub(crate) fn ping(&mut self, now: Duration) {
        if let Some(conn) = self.conn.as_mut().filter(|c| c.is_established()) {
            let id = conn.send_ping(now);
            // A PONG that never comes leaves its id here; keep the list bounded.
            if self.app_pings.len() >= 64 {
                self.app_pings.remove(0);
            }
            self.app_pings.push(id);
        }
    }

    /// Output not yet written to the socket: ours, and what the connection queued.
    fn unwritten(&self) -> usize {
        let queued = self.conn.as_ref().map_or(0, Connection::pending_transmit);
        self.wbuf.len() - self.wpos + queued
    }

    /// One round for this connection.
    pub(crate) fn service(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        if self.connecting && !self.check_connected() {
            self.deadline = Some(self.open_deadline);
            if ctx.now >= self.open_deadline {
                self.broken = Some("connect timed out".into());
                self.connecting = false;
                self.lost(s, ctx);
            }
            return;
        }
        match self.phase {
            Phase::Dead => return,
            Phase::Lingering { .. } => return self.linger(s, ctx),
            Phase::Open => {}
        }
        if self.readable && !self.eof && self.broken.is_none() {
            self.read(s, ctx);
        }
        self.timers(ctx);
        self.drain_sends(s, ctx);
        self.deliver(s, ctx);
        if !self.replies.is_empty() {
            // native handlers' replies go out with this round's write, not whenever
            // the next event happens to wake the connection
            self.drain_sends(s, ctx);
        }
        if self.close_by.is_some() {
            // a requested close (the answer to a half-close, spec §6.4) goes out in the
            // round that finds the queues drained, not at the next wake-up — and is
            // reported in it: nothing else may wake this connection again
            self.timers(ctx);
            self.deliver(s, ctx);
        }
        self.transmit(s);
        // a close reported this round: its GOAWAY is written, end the stream now
        self.shut_when_flushed();
        if std::mem::take(&mut self.write_bound)
            && !self.tls_blocked
            && self.wbuf.len() - self.wpos <= high_water(ctx)
        {
            self.more_sends = true;
        }
        if self.phase == Phase::Open && (self.eof || self.broken.is_some()) {
            let drained = self.conn.as_ref().is_none_or(|c| c.peek_event().is_none());
            if drained {
                self.lost(s, ctx);
            }
        }
        self.finish_round(ctx);
    }

    /// (Proxy.) Takes and writes the send queue only, in the round that filled it
    /// (forwarded packets from another connection of this IO thread).
    pub(crate) fn service_sends(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        if self.connecting || self.phase != Phase::Open || self.broken.is_some() {
            return;
        }
        self.drain_sends(s, ctx);
        // (Proxy.) a forwarded ERROR with a connection-error code failed this client's
        // connection (spec §11 [[limit.proxy-polices]]): report the close and end the
        // stream in this round, as `service` does; nothing else may wake it again (the
        // client was left open until it sent something)
        if self.conn.as_ref().is_some_and(Connection::is_closed) {
            self.deliver(s, ctx);
        }
        self.transmit(s);
        self.shut_when_flushed();
        self.finish_round(ctx);
    }

    fn finish_round(&mut self, ctx: &Ctx<'_>) {
        if matches!(
            self.phase,
            Phase::Lingering { shut: true, .. } | Phase::Dead
        ) {
            // closed, its last bytes written and its FIN sent: only the peer's EOF is
            // awaited now, which nothing needs to wait for (Engine::shutdown)
            self.settle(ctx.inner);
        } else {
            self.publish_budgets(ctx);
        }
        self.shared.stats.publish(&self.counters);
        // after the counters: whoever waits for room (a blocked send, a Sink's close)
        // sees the packets it handed over counted
        self.release_send_room(ctx);
        self.publish_route();
        let mut d = self.conn.as_ref().and_then(|c| c.poll_timeout());
        let answer_quiet = ctx.inner.config.answer_quiet;
        // (Proxy.) wake up when a half-closed client's answers have gone quiet
        let quiet = self
            .close_by
            .filter(|_| self.attributed != 0)
            .map(|_| self.last_forward + answer_quiet)
            .filter(|&q| q > ctx.now);
        // after the peer's GOAWAY: look again for the application's answers (taking
        // messages from its queue does not wake this thread)
        let app = self
            .close_by
            .filter(|_| self.awaiting_app)
            .map(|_| match self.app_idle_since {
                Some(idle) => idle.max(self.last_app_send) + answer_quiet,
                None => ctx.now + APP_POLL.min(answer_quiet),
            });
        let stall = self
            .unread_since
            .map(|since| since + ctx.inner.config.stall_timeout);
        for extra in [self.next_ping, self.close_by, quiet, app, stall] {
            d = match (d, extra) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if self.conn.is_none() {
            d = Some(d.map_or(self.open_deadline, |x| x.min(self.open_deadline)));
        }
        if let Phase::Lingering { until, .. } = self.phase {
            d = Some(until);
        }
        if self.forward_bound {
            // (Proxy.) retry shortly: the egress IO threads drain the queues
            let retry = ctx.now + Duration::from_millis(2);
            d = Some(d.map_or(retry, |x| x.min(retry)));
        }
        self.deadline = d;
    }

    /// Counts what this connection holds after its round in the engine's budgets (spec
    /// §11 `[[limit.global-budget]]`): the packets its destination had no room for, and
    /// its unwritten output. Decides whether it may read next round, and whether its
    /// peer, reading nothing, holds part of a full budget.
    fn publish_budgets(&mut self, ctx: &Ctx<'_>) {
        let cfg = &ctx.inner.config;
        let waiting = self.stalled.as_ref().map_or(0, |f| f.packet.payload.len());
        let now = self.conn.as_ref().map_or(0, Connection::queued_bytes) + waiting;
        let all = match now.cmp(&self.held) {
            std::cmp::Ordering::Equal => ctx.inner.held_input.load(Ordering::SeqCst),
            std::cmp::Ordering::Greater => {
                let all = ctx
                    .inner
                    .held_input
                    .fetch_add(now - self.held, Ordering::SeqCst)
                    + (now - self.held);
                ctx.inner.held_high.fetch_max(all, Ordering::Relaxed);
                all
            }
            std::cmp::Ordering::Less => {
                ctx.inner
                    .held_input
                    .fetch_sub(self.held - now, Ordering::SeqCst)
                    - (self.held - now)
            }
        };
        self.held = now;
        let out = self.wbuf.len() - self.wpos;
        if out > self.out_held {
            ctx.inner
                .unwritten
                .fetch_add(out - self.out_held, Ordering::SeqCst);
        } else if out < self.out_held {
            ctx.inner
                .unwritten
                .fetch_sub(self.out_held - out, Ordering::SeqCst);
        }
        self.out_held = out;
        let over = all > cfg.global_input_bytes;
        // read again next round unless still holding packets over the budget: what
        // holds them (a full egress queue, the application's budget) wakes us
        self.input_bound = self.input_bound && over && now > 0;
        // the peer reads nothing: the socket refused our last bytes (its window is shut),
        // or sends wait for credit it does not grant
        let refused = (!self.writable && self.unwritten() > 0) || self.credit_bound;
        // (the lock of `hoards_answers` only for a peer that reads nothing)
        let unread = refused && !self.is_link() && ((over && now > 0) || self.hoards_answers(ctx));
        self.unread_since = match (unread, self.unread_since) {
            (false, _) => None,
            (true, since) => Some(since.unwrap_or(ctx.now)),
        };
    }

    /// (Proxy.) Whether answers wait for this client while the proxy's budget for
    /// answers to clients is nearly used up (the reserve of `global_forward_bytes`
    /// reached): a client that reads nothing then holds what the others need.
    fn hoards_answers(&self, ctx: &Ctx<'_>) -> bool {
        let global = ctx.inner.config.global_forward_bytes;
        ctx.inner.routes.is_some()
            && self.attributed != 0
            && ctx.inner.to_clients.load(Ordering::Relaxed) + usize::from(u16::MAX)
                > global - global / 8
            && lock(&self.shared.sendq).bytes > 0
    }

    /// Whether the peer is a node or a proxy (a link, always read: two endpoints that
    /// both stopped reading while writing to each other would never resume).
    fn is_link(&self) -> bool {
        self.conn
            .as_ref()
            .and_then(Connection::peer)
            .is_some_and(|p| p.role != Role::Client)
    }

    /// (Proxy.) Adds this round's forwarded packets to the route's counters.
    fn publish_route(&mut self) {
        if self.route_packets == 0 {
            return;
        }
        if let Some(cell) = &self.route {
            cell.add_forwarded(self.route_packets, self.route_bytes);
        }
        self.route_packets = 0;
        self.route_bytes = 0;
    }

    fn check_connected(&mut self) -> bool {
        if !(self.readable || self.writable) {
            return false;
        }
        if let Ok(Some(e)) | Err(e) = self.sock.take_error() {
            self.broken = Some(format!("connect: {e}"));
            self.connecting = false;
            return true;
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                let _ = self.sock.set_nodelay(true);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.readable = false;
                self.writable = false;
                false
            }
            Err(e) => {
                self.broken = Some(format!("connect: {e}"));
                self.connecting = false;
                true
            }
        }
    }

    /// Read-ahead: read until `WouldBlock` (or the round's share), decrypt and feed.
    /// Not while our unwritten output is above the high-water mark, unless the peer
    /// is a node or a proxy: a client that does not read what we send (PONGs, echoes)
    /// is not read either, so what it makes us hold stays bounded; reading resumes
    /// once the socket drains. (A node or proxy link is always read: two endpoints
    /// that both stopped reading while writing to each other would never resume.)
    /// Likewise while the engine's input budget is full (spec §11
    /// `[[limit.global-budget]]`): a client whose packets wait is not read, the others
    /// read at most `OVER_BUDGET_READ` per round.
    fn read(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        let (now, cfg) = (ctx.now, &ctx.inner.config);
        let link = self.is_link();
        let over = !link && ctx.inner.held_input.load(Ordering::Relaxed) > cfg.global_input_bytes;
        self.input_bound = over && self.held > 0;
        if self.input_bound {
            self.counters.pauses += 1;
            return;
        }
        let share = if over {
            OVER_BUDGET_READ
        } else {
            READ_ROUND_BYTES
        };
        let mut taken = 0;
        for _ in 0..MAX_READS {
            if taken >= share {
                return; // the round's share: `again` brings us back next round
            }
            self.output_bound = !link && self.unwritten() > high_water(ctx);
            if self.output_bound {
                self.counters.pauses += 1;
                return;
            }
            let room = s.read_room();
            let room = if over {
                let n = room.len().min(OVER_BUDGET_READ);
                &mut room[..n]
            } else {
                room
            };
            match self.sock.read(room) {
                Ok(0) => {
                    self.eof = true;
                    self.readable = false;
                    return;
                }
                Ok(n) => {
                    taken += n;
                    self.counters.wire_in += n as u64;
                    self.input(s, ctx, n, now);
                    if self.broken.is_some() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = Some(e.to_string());
                    self.readable = false;
                    return;
                }
            }
        }
    }

    fn input(&mut self, s: &mut Scratch, ctx: &Ctx<'_>, n: usize, now: Duration) {
        if self.tls.is_none() {
            if n >= s.read_buffer / ZERO_COPY_DIVISOR {
                // a large read: its payloads are slices of the read buffer; what a
                // small one would pin of it is out of proportion, so it is copied
                let whole = s.rbuf.split_to(n).freeze();
                self.hand_over(ctx, now, &whole, Some(&whole));
            } else {
                self.hand_over(ctx, now, &s.rbuf[..n], None);
            }
            return;
        }
        let data = &s.rbuf[..n];
        let mut rest = data;
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return;
            };
            match tls.feed_tls(rest) {
                Ok(k) => rest = &rest[k..],
                Err(e) => {
                    // the alert, if any, goes out with the next write
                    tls.take_tls(&mut self.wbuf);
                    self.broken = Some(format!("TLS: {e}"));
                    return;
                }
            }
            let _ = tls.read_plaintext_bytes(&mut s.plain);
            open_after_tls(&mut self.conn, &mut self.template, tls, now);
            if !s.plain.is_empty() {
                if s.plain.len() >= s.read_buffer / ZERO_COPY_DIVISOR {
                    // as a plaintext read: a large one without another copy
                    let whole = s.plain.split().freeze();
                    self.hand_over(ctx, now, &whole, Some(&whole));
                } else {
                    let plain = std::mem::take(&mut s.plain);
                    self.hand_over(ctx, now, &plain, None);
                    s.plain = plain;
                }
                s.plain.clear();
            }
            if rest.is_empty() {
                return;
            }
        }
    }

    fn timers(&mut self, ctx: &Ctx<'_>) {
        let now = ctx.now;
        let Some(conn) = self.conn.as_mut() else {
            if now >= self.open_deadline && self.broken.is_none() {
                self.broken = Some("TLS handshake timed out".into());
            }
            return;
        };
        if conn.poll_timeout().is_some_and(|d| d <= now) {
            conn.handle_timeout(now);
        }
        // spec §11 [[limit.global-budget]]: a client that keeps packets waiting over the
        // budget and reads nothing we send
        if self
            .unread_since
            .is_some_and(|since| now >= since + ctx.inner.config.stall_timeout)
        {
            self.unread_since = None;
            // the packet that waited for room was counted as processed: it is now,
            // with an ERROR (UNREACHABLE never counts against the peer, §12.3)
            if let Some(f) = self.stalled.take() {
                conn.report_unroutable(&f.received, ErrorCode::UNREACHABLE);
            }
            conn.abort(
                now,
                ErrorCode::FLOOD,
                "over the memory budget while the peer reads nothing",
            );
        }
        if let Some(every) = ctx.inner.config.ping_interval {
            if conn.is_established() && !conn.is_draining() {
                match self.next_ping {
                    None => self.next_ping = Some(now + every),
                    Some(at) if at <= now => {
                        conn.send_ping(now);
                        self.next_ping = Some(now + every);
                    }
                    Some(_) => {}
                }
            }
        }
        let Some(by) = self.close_by else { return };
        if self.awaiting_app {
            self.awaiting_app = !app_has_answered(
                &self.shared,
                &mut self.app_idle_since,
                self.last_app_send,
                now,
                ctx.inner.config.answer_quiet,
            );
        }
        let drained = self.pending.is_empty()
            && self.forwards.is_empty()
            && self.stalled.is_none()
            && self.replies.is_empty()
            && !self.sched
            && !self.awaiting_app
            // (Proxy.) the answers to a client's last requests have arrived
            && (self.attributed == 0 || now >= self.last_forward + ctx.inner.config.answer_quiet);
        if (drained && conn.is_established()) || now >= by {
            conn.close(now, "");
            self.close_by = None;
            self.next_ping = None;
        }
    }

    /// Off-thread send: take the whole queue and encode it into the connection
    /// (compression and framing happen here, on the IO thread): forwarded packets
    /// first, then native handlers' replies, then the application's messages, within
    /// the round's share and the write high-water mark.
    fn drain_sends(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let bounced = self.take_queue(&conn);
        self.credit_bound = false; // the encoders say again
        if !self.pending.is_empty() {
            self.last_app_send = ctx.now;
        }
        // (Proxy.) spec §7.3 [[route.egress-closed]]: packets we forwarded whose egress
        // connection closed before writing them, answered to their source (§5.7)
        for received in &bounced {
            conn.report_unroutable(received, ErrorCode::UNREACHABLE);
        }
        self.more_sends = false;
        let mut round = 0usize;
        self.encode_forwards(&mut conn, ctx, &mut round);
        self.encode_replies(&mut conn, s);
        self.encode_pending(&mut conn, s, ctx, &mut round);
        self.conn = Some(conn);
    }

    /// Takes what the send queue holds, under one lock, when the application scheduled
    /// it; returns the bounced headers (proxy).
    fn take_queue(&mut self, conn: &Connection) -> Vec<Header> {
        let mut bounced = Vec::new();
        if !(self.sched && conn.is_established()) {
            return bounced;
        }
        self.sched = false;
        let mut q = lock(&self.shared.sendq);
        q.scheduled = false;
        std::mem::swap(&mut bounced, &mut q.bounced);
        take_behind(&mut self.pending, &mut q.items);
        take_behind(&mut self.forwards, &mut q.forwards);
        bounced
    }

    /// Whether this round has encoded its share (`round` bytes) or the unwritten
    /// output is above the high-water mark; notes which, for the next round.
    fn round_full(&mut self, round: usize, ctx: &Ctx<'_>) -> bool {
        if round >= ROUND_BYTES {
            self.more_sends = true;
            return true;
        }
        if self.tls_blocked || self.wbuf.len() - self.wpos > high_water(ctx) {
            self.write_bound = true;
            return true;
        }
        false
    }

    /// (Proxy.) Forwarded packets, header and payload as they are (§7.3), in order.
    fn encode_forwards(&mut self, conn: &mut Connection, ctx: &Ctx<'_>, round: &mut usize) {
        let mut refused = Vec::new();
        while !self.forwards.is_empty() && !self.round_full(*round, ctx) {
            let f = &self.forwards[0];
            let p = &f.packet;
            let written = conn.forward(p);
            if written.is_ok() {
                self.last_forward = ctx.now;
            }
            match written {
                Ok(()) if p.header.kind == Kind::Data => {
                    self.counters.packets_out += 1;
                    self.counters.payload_out += p.payload.len() as u64;
                    self.route_packets += 1;
                    self.route_bytes += p.payload.len() as u64;
                }
                Ok(()) => {}
                Err(ConnSendError::NoCredit) => {
                    self.credit_bound = true;
                    break;
                }
                Err(ConnSendError::NotEstablished | ConnSendError::Closing) => break,
                // spec §7.3 [[route.no-route]]: the next hop cannot take it (larger than
                // its max_payload): back to the ingress, answered UNREACHABLE
                Err(_) => refused.push(f.clone()),
            }
            *round += p.payload.len() + 16;
            self.done_packets += 1;
            self.done_bytes += p.payload.len() + QUEUE_ENTRY_OVERHEAD;
            self.forwards.pop_front();
        }
        if !refused.is_empty() {
            let bounced = bounce(ctx.inner, refused);
            if let (true, Some(cell)) = (bounced > 0, &self.route) {
                cell.add_unreachable(bounced);
            }
        }
    }

    /// Native handlers' replies, as far as the peer's credit goes (they are not counted
    /// in the send queue; `replies_full` bounds them as one).
    fn encode_replies(&mut self, conn: &mut Connection, s: &mut Scratch) {
        while let Some(o) = self.replies.front() {
            match conn.send_data(o.route, &o.payload, o.flags.options()) {
                Ok(()) => count_sent(&mut self.counters, &mut self.data_sent, o),
                Err(ConnSendError::NoCredit | ConnSendError::NotEstablished) => break,
                Err(error) => s.out.push(AppEvent::SendFailed {
                    conn: self.id,
                    route: o.route,
                    error,
                }),
            }
            if let Some(o) = self.replies.pop_front() {
                self.reply_bytes -= o.payload.len() + QUEUE_ENTRY_OVERHEAD;
            }
        }
    }

    /// The application's messages, in order, within the round's share.
    fn encode_pending(
        &mut self,
        conn: &mut Connection,
        s: &mut Scratch,
        ctx: &Ctx<'_>,
        round: &mut usize,
    ) {
        while !self.pending.is_empty() && !self.round_full(*round, ctx) {
            let o = &self.pending[0];
            match conn.send_data(o.route, &o.payload, o.flags.options()) {
                Ok(()) => count_sent(&mut self.counters, &mut self.data_sent, o),
                // wait for CREDIT or the handshake; a closing connection reports the
                // rest as undelivered
                Err(ConnSendError::NoCredit) => {
                    self.credit_bound = true;
                    break;
                }
                Err(ConnSendError::NotEstablished | ConnSendError::Closing) => break,
                Err(error) => s.out.push(AppEvent::SendFailed {
                    conn: self.id,
                    route: o.route,
                    error,
                }),
            }
            *round += o.payload.len() + 16;
            self.done_packets += 1;
            self.done_bytes += o.payload.len() + QUEUE_ENTRY_OVERHEAD;
            self.pending.pop_front();
        }
    }

    /// Tells the application side how much of the queue was written.
    fn release_send_room(&mut self, ctx: &Ctx<'_>) {
        if self.done_packets == 0 {
            return;
        }
        let cfg = &ctx.inner.config;
        let mut q = lock(&self.shared.sendq);
        q.packets -= self.done_packets;
        q.bytes -= self.done_bytes;
        let waker = q.waker.take();
        // a blocked sender is woken once what it needs is free (or the connection is
        // closing: it returns then), not for each release
        let waiting =
            q.waiting && (q.closed || q.has_room(cfg.send_queue_packets, cfg.send_queue_bytes));
        drop(q);
        self.done_packets = 0;
        self.done_bytes = 0;
        if waiting {
            self.shared.send_cv.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes the connection's events while the receive budgets allow: a full budget
    /// leaves DATA in the connection, so no credit is granted back (spec §8).
    fn deliver(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let closed = self.take_events(&mut conn, s, ctx);
        self.conn = Some(conn);
        if let Some(Closed {
            code,
            by_peer,
            reason,
            delivered,
        }) = closed
        {
            self.report_closed(s, ctx, code, by_peer, reason, delivered);
            self.close_notify = true;
            let until = ctx.now + ctx.inner.config.linger;
            self.phase = Phase::Lingering { until, shut: false };
        }
    }

    /// The event loop of [`deliver`](ConnIo::deliver): up to the connection's close,
    /// which it returns.
    fn take_events(
        &mut self,
        conn: &mut Connection,
        s: &mut Scratch,
        ctx: &Ctx<'_>,
    ) -> Option<Closed> {
        let inner = ctx.inner;
        let mut budget = Budget::read(&self.shared, inner);
        // one lock per run of the same service, not per message
        let mut held = None;
        let mut closed = None;
        self.forward_bound = false;
        let share = inner.config.forward_share_bytes;
        // (Proxy.) the packet that waited for room goes first, in order
        if let Some(f) = self.stalled.take() {
            self.place(conn, ctx, f);
            if self.stalled.is_some() {
                return None;
            }
        }
        loop {
            let cost = match conn.peek_event() {
                None => break,
                // A native handler's messages wait (no credit back) while its replies
                // fill what a send queue may hold: the peer withholds the credit they
                // need, and what it makes us hold must stay bounded
                Some(Event::Data { route, .. })
                    if handler(ctx.handlers, route.service).is_some()
                        && replies_full(&self.replies, self.reply_bytes, &inner.config) =>
                {
                    self.counters.pauses += 1;
                    break;
                }
                Some(Event::Data { payload, .. }) => payload.len() + QUEUE_ENTRY_OVERHEAD,
                // (Proxy.) A client over its share of the egress queues waits (no
                // credit back), the other clients keep theirs
                Some(Event::Forward { .. })
                    if self.attributed != 0
                        && self.charges.ingress.load(Ordering::Relaxed) >= share =>
                {
                    self.forward_bound = true;
                    break;
                }
                Some(_) => 0,
            };
            if cost > 0 && !budget.fits(cost, &inner.config) {
                budget.commit(&self.shared, inner);
                if pause(&self.shared, inner, cost) {
                    tracing::debug!(
                        conn = %self.id,
                        global = inner.global_paused.load(Ordering::Relaxed),
                        "receive budget full: reading paused until the application takes its messages"
                    );
                    self.counters.pauses += 1;
                    break;
                }
                budget = Budget::read(&self.shared, inner);
                continue;
            }
            let Some(ev) = conn.poll_event() else { break };
            match ev {
                Event::Data {
                    source,
                    route,
                    payload,
                    never_compress,
                } => {
                    self.counters.packets_in += 1;
                    self.counters.payload_in += payload.len() as u64;
                    let msg = Message {
                        conn: self.id,
                        source,
                        route,
                        payload,
                        never_compress,
                    };
                    if !self.run_handler(&msg, ctx, &mut held) {
                        budget.added += cost;
                        self.app_answers = true;
                        s.out.push(AppEvent::Message(msg));
                    }
                }
                // spec §6.4 [[close.answer]]: a half-close; our GOAWAY follows once
                // what is queued for the peer is written — and, when the application
                // holds messages of this connection, once it has answered them and
                // called `close` — or at the close timeout
                Event::GoawayReceived { delivered, reason } => {
                    if self.close_by.is_none() {
                        self.close_by = Some(ctx.now + inner.config.close_timeout);
                        self.awaiting_app = self.app_answers;
                    }
                    s.out.push(AppEvent::GoawayReceived {
                        conn: self.id,
                        delivered,
                        reason,
                    });
                }
                Event::Closed {
                    code,
                    by_peer,
                    reason,
                    delivered,
                } => {
                    closed = Some(Closed {
                        code,
                        by_peer,
                        reason,
                        delivered,
                    });
                    break;
                }
                other => {
                    self.on_event(conn, other, s, ctx);
                    if self.stalled.is_some() {
                        break;
                    }
                }
            }
        }
        budget.commit(&self.shared, inner);
        closed
    }

    /// Runs the native handler of the message's service, if one is registered (the
    /// message then never reaches the application); `held` keeps the last handler's
    /// lock for the next message of the same service.
    fn run_handler<'c>(
        &mut self,
        msg: &Message,
        ctx: &Ctx<'c>,
        held: &mut Option<(u8, MutexGuard<'c, Handler>)>,
    ) -> bool {
        let mut handlers = Handlers {
            table: ctx.handlers,
            held,
            replies: &mut self.replies,
            reply_bytes: &mut self.reply_bytes,
            counters: &mut self.counters,
        };
        handlers.run(msg)
    }

    /// Hands `whole` (or `input`, a small read copied) to the connection; with native
    /// handlers registered, each DATA for one of them is handled as its packet is
    /// processed, with no event queued (spec-wise the same delivery: counted, its credit
    /// granted back).
    fn hand_over(&mut self, ctx: &Ctx<'_>, now: Duration, input: &[u8], whole: Option<&Bytes>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // (Proxy.) While a forwarded packet waits for room, nothing more of this
        // connection is taken (spec §7.3 [[route.fair-share]]): its DATA queue behind it
        let config = &ctx.inner.config;
        if self.stalled.is_some()
            || !ctx.handlers.iter().any(Option::is_some)
            || replies_full(&self.replies, self.reply_bytes, config)
        {
            match whole {
                Some(w) => conn.handle_input_bytes(now, w.clone()),
                None => conn.handle_input(now, input),
            }
            return;
        }
        let mut held = None;
        let mut sink = HandlerSink {
            conn: self.id,
            config,
            handlers: Handlers {
                table: ctx.handlers,
                held: &mut held,
                replies: &mut self.replies,
                reply_bytes: &mut self.reply_bytes,
                counters: &mut self.counters,
            },
        };
        conn.handle_input_into(now, input, whole, &mut sink);
    }

    /// An event other than DATA and the close.
    fn on_event(&mut self, conn: &mut Connection, ev: Event, s: &mut Scratch, ctx: &Ctx<'_>) {
        match ev {
            Event::Established { peer } => {
                // (Proxy.) Only a client keeps the id attributed to it (§7.4)
                if peer.role != Role::Client {
                    if let Some(routes) = ctx.inner.routes.as_ref() {
                        routes.release(std::mem::take(&mut self.attributed), self.id);
                    }
                }
                tracing::debug!(conn = %self.id, role = peer.role.name(), node_id = peer.node_id, "connection established");
                s.out.push(AppEvent::Connected {
                    conn: self.id,
                    peer,
                });
            }
            Event::Pong { id, rtt } => {
                self.shared.stats.set_rtt(rtt);
                if let Some(i) = self.app_pings.iter().position(|&p| p == id) {
                    self.app_pings.swap_remove(i);
                    s.out.push(AppEvent::Pong { conn: self.id, rtt });
                }
            }
            Event::PacketError {
                code,
                source,
                reason,
                ..
            } => {
                self.shared.stats.count_error(code);
                s.out.push(AppEvent::PacketError {
                    conn: self.id,
                    code,
                    source,
                    reason,
                });
            }
            Event::Forward { packet, received } => {
                // spec §7.3: by the routing header alone; the packet is already
                // stamped (§7.4) and its payload is never decoded here
                let cost = packet.payload.len() + QUEUE_ENTRY_OVERHEAD;
                let from_client = conn.peer().is_some_and(|p| p.role == Role::Client);
                let forward = Forwarded {
                    packet,
                    received,
                    from: self.id,
                    from_client,
                    charge: Charge::new(&self.charges, cost),
                };
                self.place(conn, ctx, forward);
            }
            #[allow(unreachable_patterns)] // Event is non_exhaustive
            _ => {}
        }
    }

    /// (Proxy.) Routes a packet this connection received (spec §7.3); one that must wait
    /// for room in its egress queue is kept in `stalled` (spec §7.3
    /// `[[route.fair-share]]`), and no more events are taken until it is placed.
    fn place(&mut self, conn: &mut Connection, ctx: &Ctx<'_>, forward: Forwarded) {
        let received = forward.received;
        match route(ctx.inner, ctx.routes, forward) {
            Routed::Queued => self.counters.forwarded += 1,
            Routed::Wait(f) => {
                self.stalled = Some(f);
                self.forward_bound = true;
            }
            // spec §12.3: a client that has gone is not the peer's fault
            Routed::Refused(Unroutable::ClientGone) => conn.report_client_gone(&received),
            Routed::Refused(why) => conn.report_unroutable(&received, why.code()),
        }
    }

    /// One `poll_transmit`, one TLS write, one socket write (work grouping).
    fn transmit(&mut self, s: &mut Scratch) {
        if self.connecting {
            return;
        }
        s.tx.clear();
        if let Some(conn) = self.conn.as_mut() {
            conn.poll_transmit(&mut s.tx);
        }
        match self.tls.as_mut() {
            None if !s.tx.is_empty() && self.wpos == self.wbuf.len() => {
                let n = self.write_some(&s.tx);
                self.wbuf.clear();
                self.wpos = 0;
                self.wbuf.extend_from_slice(&s.tx[n..]);
            }
            None => self.wbuf.extend_from_slice(&s.tx),
            Some(tls) => {
                if !s.tx.is_empty() {
                    if let Err(e) = tls.write_plaintext(&s.tx) {
                        self.broken.get_or_insert(format!("TLS: {e}"));
                    }
                }
                if self.close_notify {
                    tls.send_close_notify();
                    self.close_notify = false;
                }
                // Behind bytes of ours still unwritten, records queue after them;
                // otherwise `flush` has rustls write them to the socket directly.
                if self.wpos < self.wbuf.len() {
                    tls.take_tls(&mut self.wbuf);
                }
            }
        }
        self.flush();
    }

    /// (TLS.) Has rustls write its pending records to the socket (one vectored write
    /// per call, no copy); notes when the socket is full.
    fn write_tls_direct(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        self.tls_blocked = false;
        while tls.pending_tls() && self.broken.is_none() {
            match tls.write_tls_to(&mut self.sock) {
                Ok(0) => self.broken = Some("write returned 0".into()),
                Ok(n) => self.counters.wire_out += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    self.tls_blocked = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.broken = Some(e.to_string()),
            }
        }
    }

    fn flush(&mut self) {
        if self.wpos < self.wbuf.len() {
            let wbuf = std::mem::take(&mut self.wbuf);
            let n = self.write_some(&wbuf[self.wpos..]);
            self.wbuf = wbuf;
            self.wpos += n;
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            self.write_tls_direct();
        }
    }

    /// Writes as much of `data` as the socket takes.
    fn write_some(&mut self, data: &[u8]) -> usize {
        let mut done = 0;
        while done < data.len() && self.broken.is_none() {
            match self.sock.write(&data[done..]) {
                Ok(0) => self.broken = Some("write returned 0".into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.broken = Some(e.to_string()),
            }
        }
        self.counters.wire_out += done as u64;
        done
    }

    /// After the close was reported: flush, half-close, wait for the peer's EOF.
    fn linger(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        let Phase::Lingering { until, .. } = self.phase else {
            return;
        };
        self.transmit(s);
        self.shut_when_flushed();
        if self.readable && !self.eof && self.broken.is_none() {
            self.read(s, ctx);
        }
        if self.eof || self.broken.is_some() || ctx.now >= until {
            self.phase = Phase::Dead;
        }
        self.finish_round(ctx);
    }

    /// Lingering: once everything (TLS close_notify included) is written, half-close,
    /// so the peer sees the end of the stream at once, not when the linger expires.
    fn shut_when_flushed(&mut self) {
        let Phase::Lingering { until, shut: false } = self.phase else {
            return;
        };
        let tls_pending = self.tls.as_ref().is_some_and(TlsEndpoint::pending_tls);
        if self.wbuf.is_empty() && !tls_pending {
            let _ = self.sock.shutdown(Shutdown::Write);
            self.phase = Phase::Lingering { until, shut: true };
        }
    }

    /// The byte stream ended or failed without a completed close (spec §6.4).
    fn lost(&mut self, s: &mut Scratch, ctx: &Ctx<'_>) {
        let reason = self
            .broken
            .clone()
            .unwrap_or_else(|| "end of stream".into());
        self.report_closed(s, ctx, ErrorCode::CONNECTION_LOST, true, reason, None);
        self.phase = Phase::Dead;
    }

    /// The engine is stopping: report the connection lost unless already reported.
    pub(crate) fn abandon(&mut self, s: &mut Scratch, ctx: &Ctx<'_>, why: &str) {
        self.broken.get_or_insert_with(|| why.to_owned());
        self.lost(s, ctx);
    }

    fn report_closed(
        &mut self,
        s: &mut Scratch,
        ctx: &Ctx<'_>,
        code: ErrorCode,
        by_peer: bool,
        reason: String,
        delivered: Option<u64>,
    ) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        tracing::debug!(conn = %self.id, %code, by_peer, reason = reason.as_str(), "connection closed");
        let (queued, forwards) = {
            let mut q = lock(&self.shared.sendq);
            q.closed = true;
            let waker = q.waker.take();
            let n = q.items.len() + self.pending.len();
            let forwards = std::mem::take(&mut q.forwards);
            drop(q);
            self.shared.send_cv.notify_all();
            if let Some(w) = waker {
                w.wake();
            }
            (n as u64, forwards)
        };
        // (Proxy.) spec §7.3 [[route.egress-closed]]: forwarded packets never written
        // go back to their ingress connections, to be answered UNREACHABLE; no more
        // are accepted (the queue is closed)
        let unwritten = self.forwards.drain(..).chain(forwards);
        let bounced = bounce(ctx.inner, unwritten);
        if let (true, Some(cell)) = (bounced > 0, &self.route) {
            cell.add_unreachable(bounced);
        }
        let unconfirmed = self.data_sent.saturating_sub(delivered.unwrap_or(0));
        if queued + unconfirmed > 0 {
            s.out.push(AppEvent::Undelivered {
                conn: self.id,
                queued,
                unconfirmed,
            });
        }
        if code != ErrorCode::NO_ERROR {
            self.shared.stats.count_error(code);
        }
        s.out.push(AppEvent::Closed {
            conn: self.id,
            code,
            by_peer,
            reason,
            delivered,
        });
        self.shared.stats.publish(&self.counters);
        self.publish_route();
        lock(&ctx.inner.conns).remove(&self.id);
        if let Some(routes) = ctx.inner.routes.as_ref() {
            routes.release(self.attributed, self.id);
        }
    }
}

/// Marks the connection paused; returns false if room appeared meanwhile (the
/// application consumed between our check and the flag).
fn pause(shared: &ConnShared, inner: &Inner, cost: usize) -> bool {
    let cfg = &inner.config;
    shared.paused.store(true, Ordering::SeqCst);
    let all = inner.app_bytes.load(Ordering::SeqCst);
    if all + cost > cfg.global_recv_budget_bytes {
        inner.global_paused.store(true, Ordering::SeqCst);
    }
    let mine = shared.app_bytes.load(Ordering::SeqCst);
    let all = inner.app_bytes.load(Ordering::SeqCst);
    let room = (mine == 0 || mine + cost <= cfg.recv_budget_bytes)
        && (all == 0 || all + cost <= cfg.global_recv_budget_bytes);
    if room {
        shared.paused.store(false, Ordering::SeqCst);
        return false;
    }
    true
}

fn count_sent(c: &mut Counters, data_sent: &mut u64, o: &Outgoing) {
    c.packets_out += 1;
    c.payload_out += o.payload.len() as u64;
    *data_sent += 1;
}

/// How a connection's round sees the receive budgets: the application only ever
/// lowers the shared counts, so stale values are conservative and are read once per
/// round, not once per packet (their cache lines belong to the application thread).
struct Budget {
    mine: usize,
    all: usize,
    /// Bytes this round added and has not published yet.
    added: usize,
}

impl Budget {
    fn read(shared: &ConnShared, inner: &Inner) -> Budget {
        Budget {
            mine: shared.app_bytes.load(Ordering::SeqCst),
            all: inner.app_bytes.load(Ordering::SeqCst),
            added: 0,
        }
    }

    /// Whether a message of `cost` fits both budgets (an empty queue takes any one).
    fn fits(&self, cost: usize, cfg: &EngineConfig) -> bool {
        let fits = |used: usize, budget: usize| used == 0 || used + cost <= budget;
        fits(self.mine + self.added, cfg.recv_budget_bytes)
            && fits(self.all + self.added, cfg.global_recv_budget_bytes)
    }

    /// Publishes bytes added to the application queue (before the events are pushed,
    /// so the application never subtracts what was not added).
    fn commit(&mut self, shared: &ConnShared, inner: &Inner) {
        if self.added == 0 {
            return;
        }
        let added = std::mem::take(&mut self.added);
        let mine = shared.app_bytes.fetch_add(added, Ordering::SeqCst) + added;
        let all = inner.app_bytes.fetch_add(added, Ordering::SeqCst) + added;
        inner.app_high.fetch_max(all, Ordering::Relaxed);
        shared.stats.note_recv_queue(mine);
        self.mine = mine;
        self.all = all;
    }
}

/// A connection's close, as the connection reported it.
struct Closed {
    code: ErrorCode,
    by_peer: bool,
    reason: String,
    delivered: Option<u64>,
}

/// Over TLS the Fleetwire connection opens when the handshake completes (spec §6.5),
/// bound to the node id of the peer's certificate (spec §10.2).
fn open_after_tls(
    conn: &mut Option<Connection>,
    template: &mut Option<Config>,
    tls: &TlsEndpoint,
    now: Duration,
) {
    if conn.is_some() || tls.is_handshaking() {
        return;
    }
    if let Some(mut config) = template.take() {
        if let Some(identity) = tls.peer_identity() {
            config.authenticated = Some(identity);
        }
        *conn = Some(Connection::new(config, now));
    }
}

/// After the peer's GOAWAY (spec §6.4 `[[close.answer]]`): whether the application is
/// done answering — it holds none of the connection's messages and has sent nothing on
/// it for `quiet` since (its explicit `close` ends the wait sooner).
fn app_has_answered(
    shared: &ConnShared,
    idle_since: &mut Option<Duration>,
    last_send: Duration,
    now: Duration,
    quiet: Duration,
) -> bool {
    if shared.app_bytes.load(Ordering::SeqCst) != 0 {
        *idle_since = None;
        return false;
    }
    let idle = *idle_since.get_or_insert(now);
    now >= idle.max(last_send) + quiet
}

/// The high-water mark of unwritten output for a connection now: `write_high_water`,
/// lowered while the engine's output budget is full (spec §11 `[[limit.global-budget]]`).
/// Moves what the application queued (`from`) behind what the IO thread still holds
/// (`to`). Written items are dropped as they are encoded, so nothing written is held
/// (issue 11: a node link behind 96 flooding clients once held 160 MiB of written
/// packets, their charges and the read buffers they pin), and what is unwritten is
/// never moved again: each item is copied at most once (an empty `to` takes `from`'s
/// allocation and gives its own back).
fn take_behind<T>(to: &mut VecDeque<T>, from: &mut Vec<T>) {
    if to.is_empty() {
        let empty = std::mem::replace(to, VecDeque::from(std::mem::take(from)));
        *from = Vec::from(empty);
    } else {
        to.extend(from.drain(..));
    }
}

/// The native handlers and what running one changes of its connection: one lock per run
/// of the same service (`held`), its replies, the counters.
struct Handlers<'c, 'h> {
    table: &'c [Option<SharedHandler>],
    held: &'h mut Option<(u8, MutexGuard<'c, Handler>)>,
    replies: &'h mut VecDeque<Outgoing>,
    reply_bytes: &'h mut usize,
    counters: &'h mut Counters,
}

impl Handlers<'_, '_> {
    /// Runs the native handler of the message's service, if one is registered (the
    /// message then never reaches the application).
    fn run(&mut self, msg: &Message) -> bool {
        let service = msg.route.service;
        let Some(h) = handler(self.table, service) else {
            return false;
        };
        let f = match self.held {
            Some((svc, f)) if *svc == service => f,
            _ => {
                *self.held = None;
                &mut self.held.insert((service, lock(h))).1
            }
        };
        let mut reply = Reply::new(msg.conn);
        (**f)(msg, &mut reply);
        // most handlers answer nothing: no iterator per message then
        if !reply.out.is_empty() {
            for o in &reply.out {
                *self.reply_bytes += o.payload.len() + QUEUE_ENTRY_OVERHEAD;
            }
            self.replies.extend(reply.out);
        }
        self.counters.handled += 1;
        true
    }
}

/// Takes the DATA a native handler serves as the connection processes it
/// ([`ConnIo::hand_over`]).
struct HandlerSink<'c, 'h> {
    conn: ConnId,
    config: &'c EngineConfig,
    handlers: Handlers<'c, 'h>,
}

impl EventSink for HandlerSink<'_, '_> {
    fn offer(&mut self, event: Event) -> Option<Event> {
        let h = &self.handlers;
        match event {
            Event::Data {
                source,
                route,
                payload,
                never_compress,
            } if handler(h.table, route.service).is_some()
                && !replies_full(h.replies, *h.reply_bytes, self.config) =>
            {
                self.handlers.counters.packets_in += 1;
                self.handlers.counters.payload_in += payload.len() as u64;
                let msg = Message {
                    conn: self.conn,
                    source,
                    route,
                    payload,
                    never_compress,
                };
                self.handlers.run(&msg);
                None
            }
            // not ours to take (or the replies are full): back, unchanged
            other => Some(other),
        }
    }
}

/// The native handler of `service`, if one is registered.
fn handler(table: &[Option<SharedHandler>], service: u8) -> Option<&SharedHandler> {
    table.get(usize::from(service))?.as_ref()
}

/// Whether a connection's native-handler replies fill what its send queue may hold
/// (`send_queue_packets`, `send_queue_bytes`): then no more of its handlers' messages
/// are taken until they are written.
fn replies_full(replies: &VecDeque<Outgoing>, bytes: usize, config: &EngineConfig) -> bool {
    replies.len() >= config.send_queue_packets || bytes >= config.send_queue_bytes
}

fn high_water(ctx: &Ctx<'_>) -> usize {
    let cfg = &ctx.inner.config;
    if ctx.inner.unwritten.load(Ordering::Relaxed) > cfg.global_output_bytes {
        cfg.write_high_water.min(OVER_BUDGET_HIGH_WATER)
    } else {
        cfg.write_high_water
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_items_queue_behind_the_unwritten_ones_in_order() {
        let mut held = VecDeque::new();
        let mut queued: Vec<u32> = Vec::with_capacity(64);
        queued.extend([1, 2, 3]);
        let allocation = queued.as_ptr();
        take_behind(&mut held, &mut queued);
        // nothing was held: the queue's allocation moved over, no item was copied
        assert_eq!(held, [1, 2, 3]);
        assert!(queued.is_empty());
        assert_eq!(held.as_slices().0.as_ptr(), allocation);
        // one written and dropped, two more queued: behind the unwritten ones
        held.pop_front();
        queued.extend([4, 5]);
        take_behind(&mut held, &mut queued);
        assert_eq!(held, [2, 3, 4, 5]);
        assert!(queued.is_empty());
    }
}

//! An IO thread: one mio event loop owning sockets, TLS endpoints and connections.
//!
//! Each round: take the inbox (commands, connections with new sends) under one lock,
//! handle readiness, then service every touched connection — read until `WouldBlock`
//! (read-ahead), drain its whole send queue into the [`Connection`], take its events
//! within the receive budget, and write everything with one `poll_transmit`, one TLS
//! write and one socket write (work grouping) — and finally hand the round's events to
//! the application under one lock.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::conn::{ConnIo, Ctx, Scratch};
use super::handler::SharedHandler;
use super::queue::ConnShared;
use super::routing::Table;
use super::shared::{Command, Inner, NewConn};
use super::sync::lock;
use super::tls_io::{ServerConfig, TlsEndpoint};
use super::types::{AppEvent, ConnId};

pub(crate) const WAKER: Token = Token(0);

struct ListenerIo {
    id: ConnId,
    sock: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    /// `accept` failed for want of descriptors or memory (EMFILE, ENFILE, ENOMEM): the
    /// pending connections stay in the backlog and no new readiness edge may come, so
    /// the thread retries at this time (backing off), keeping every open connection.
    retry_at: Option<Duration>,
    failures: u32,
}

/// The wait before retrying an `accept` that failed `failures` times in a row: 10 ms
/// doubling to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(10 << failures.min(7)).min(Duration::from_secs(1))
}

pub(crate) struct IoThread {
    index: usize,
    inner: Arc<Inner>,
    poll: Poll,
    conns: HashMap<Token, ConnIo>,
    listeners: HashMap<Token, ListenerIo>,
    handlers: (u64, Vec<Option<SharedHandler>>),
    routes: Option<(u64, Arc<Table>)>,
    scratch: Scratch,
    dirty: Vec<Token>,
    stopping: bool,
}

fn token(id: ConnId) -> Token {
    Token(id.0 as usize)
}

impl IoThread {
    pub(crate) fn new(index: usize, inner: Arc<Inner>, poll: Poll) -> IoThread {
        let read_buffer = inner.config.read_buffer;
        let handlers = inner.handlers.snapshot();
        let routes = inner.routes.as_ref().map(|r| r.snapshot());
        IoThread {
            index,
            inner,
            poll,
            conns: HashMap::new(),
            listeners: HashMap::new(),
            handlers,
            routes,
            scratch: Scratch {
                rbuf: BytesMut::zeroed(read_buffer),
                read_buffer,
                plain: BytesMut::new(),
                tx: Vec::new(),
                out: Vec::new(),
            },
            dirty: Vec::new(),
            stopping: false,
        }
    }

    fn now(&self) -> Duration {
        self.inner.epoch.elapsed()
    }

    /// The event loop; returns when told to stop.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.stopping {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            for ev in events.iter() {
                self.on_event(ev);
            }
            self.round();
        }
        self.shutdown();
    }

    /// Until the earliest deadline; zero when a connection has work left over.
    fn poll_timeout(&self) -> Option<Duration> {
        let now = self.now();
        let mut earliest: Option<Duration> = None;
        for c in self.conns.values() {
            if c.again() {
                return Some(Duration::ZERO);
            }
            if let Some(d) = c.deadline {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        for l in self.listeners.values() {
            if let Some(d) = l.retry_at {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        // Rounded up so that the deadline has passed when we wake.
        earliest.map(|d| d.saturating_sub(now) + Duration::from_micros(200))
    }

    fn on_event(&mut self, ev: &mio::event::Event) {
        let tok = ev.token();
        if tok == WAKER {
            self.take_inbox();
            return;
        }
        if self.listeners.contains_key(&tok) {
            self.accept(tok);
            return;
        }
        if let Some(c) = self.conns.get_mut(&tok) {
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.writable = true;
            }
            self.mark(tok);
        }
    }

    fn mark(&mut self, tok: Token) {
        if let Some(c) = self.conns.get_mut(&tok) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(tok);
            }
        }
    }

    fn take_inbox(&mut self) {
        let (commands, ready) = {
            let mut inbox = lock(&self.inner.io[self.index].inbox);
            inbox.woken = false;
            (
                std::mem::take(&mut inbox.commands),
                std::mem::take(&mut inbox.ready),
            )
        };
        for id in ready {
            if let Some(c) = self.conns.get_mut(&token(id)) {
                c.sched = true;
            }
            self.mark(token(id));
        }
        for cmd in commands {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Listen { id, mut sock, tls } => {
                let tok = token(id);
                if self
                    .poll
                    .registry()
                    .register(&mut sock, tok, Interest::READABLE)
                    .is_ok()
                {
                    self.inner.open_sockets.fetch_add(1, Ordering::SeqCst);
                    let l = ListenerIo {
                        id,
                        sock,
                        tls,
                        retry_at: None,
                        failures: 0,
                    };
                    self.listeners.insert(tok, l);
                }
            }
            Command::Adopt(new) => self.adopt(*new),
            Command::Close(id) => {
                let now = self.now();
                if let Some(c) = self.conns.get_mut(&token(id)) {
                    c.request_close(now + self.inner.config.close_timeout);
                }
                self.mark(token(id));
            }
            Command::Ping(id) => {
                let now = self.now();
                if let Some(c) = self.conns.get_mut(&token(id)) {
                    c.ping(now);
                }
                self.mark(token(id));
            }
            Command::ResumeAll => {
                let toks: Vec<Token> = self.conns.keys().copied().collect();
                for tok in toks {
                    self.mark(tok);
                }
            }
            Command::Stop => self.stopping = true,
        }
    }

    fn adopt(&mut self, new: NewConn) {
        let tok = token(new.shared.id);
        tracing::debug!(conn = %new.shared.id, peer = %new.peer, server = new.server, tls = new.tls.is_some(), "connection opened");
        let mut c = ConnIo::new(new, &self.inner, self.now());
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut c.sock, tok, interest) {
            c.broken = Some(format!("register: {e}"));
        }
        self.inner.open_sockets.fetch_add(1, Ordering::SeqCst);
        self.inner.owing.fetch_add(1, Ordering::SeqCst);
        c.readable = true;
        c.writable = true;
        self.conns.insert(tok, c);
        self.mark(tok);
    }

    fn accept(&mut self, tok: Token) {
        let now = self.now();
        loop {
            let Some(l) = self.listeners.get_mut(&tok) else {
                return;
            };
            l.retry_at = None;
            let (sock, peer_addr) = match l.sock.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_per_connection(&e) => continue,
                // EMFILE, ENFILE, ENOMEM…: retry after a backoff (see `retry_at`)
                Err(e) => {
                    tracing::warn!(error = %e, failures = l.failures, "accept failed; retrying after a backoff");
                    l.retry_at = Some(now + accept_backoff(l.failures));
                    l.failures += 1;
                    return;
                }
            };
            l.failures = 0;
            let tls = match &l.tls {
                None => None,
                Some(cfg) => match TlsEndpoint::server(cfg.clone()) {
                    Ok(t) => Some(t),
                    Err(_) => continue,
                },
            };
            let listener = l.id;
            let id = self.inner.next_id();
            let thread = self.inner.io_for(id);
            let shared = Arc::new(ConnShared::new(id, thread));
            lock(&self.inner.conns).insert(id, shared.clone());
            let mut ev = vec![AppEvent::Accepted {
                conn: id,
                listener,
                peer_addr,
            }];
            self.inner.push_app(&mut ev);
            let new = NewConn {
                shared,
                sock,
                tls,
                connecting: false,
                server: true,
                peer: peer_addr,
                route: None,
            };
            if thread == self.index {
                self.adopt(new);
            } else {
                self.inner.io[thread].command(Command::Adopt(Box::new(new)));
            }
        }
    }

    /// Services every touched connection, then hands the events over.
    fn round(&mut self) {
        let version = self.inner.handlers.version();
        if version != self.handlers.0 {
            self.handlers = self.inner.handlers.snapshot();
        }
        // the table is an immutable snapshot: the lock is taken only when it changed
        if let (Some(state), Some(routes)) = (&self.inner.routes, &mut self.routes) {
            if state.version() != routes.0 {
                *routes = state.snapshot();
            }
        }
        let now = self.now();
        let retry: Vec<Token> = (self.listeners.iter())
            .filter(|(_, l)| l.retry_at.is_some_and(|d| d <= now))
            .map(|(tok, _)| *tok)
            .collect();
        for tok in retry {
            self.accept(tok);
        }
        for (tok, c) in self.conns.iter_mut() {
            if (c.again() || c.deadline.is_some_and(|d| d <= now)) && !c.dirty {
                c.dirty = true;
                self.dirty.push(*tok);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        let ctx = Ctx {
            inner: &self.inner,
            handlers: &self.handlers.1,
            routes: self.routes.as_ref().map(|r| &*r.1),
            now,
        };
        let mut dead = Vec::new();
        for tok in &dirty {
            let Some(c) = self.conns.get_mut(tok) else {
                continue;
            };
            c.dirty = false;
            // the connection state machine's events carry the connection (a disabled
            // span costs one interest check per round, nothing per packet)
            let span = tracing::debug_span!("conn", id = %c.id);
            let _entered = span.enter();
            c.service(&mut self.scratch, &ctx);
            if c.is_dead() {
                dead.push(*tok);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        // Writes, in this round, what this round queued for connections of this thread
        // (a forwarded packet, a bounced header): without it a packet crossing the
        // proxy waited for the next round, behind every other connection's reads once
        // more. Only sends: reads wait for the next round like everyone's.
        let ready = std::mem::take(&mut lock(&self.inner.io[self.index].inbox).ready);
        for id in ready {
            let tok = token(id);
            let Some(c) = self.conns.get_mut(&tok) else {
                continue;
            };
            c.sched = true;
            c.service_sends(&mut self.scratch, &ctx);
            // anything left (not established yet, a full socket) or a write that
            // failed (reported lost by a full round): the next round
            if (c.sched || c.again() || c.broken.is_some()) && !c.dirty {
                c.dirty = true;
                self.dirty.push(tok);
            }
        }
        self.inner.push_app(&mut self.scratch.out);
        for tok in dead {
            if let Some(mut c) = self.conns.remove(&tok) {
                let _ = self.poll.registry().deregister(&mut c.sock);
                c.settle(&self.inner);
                self.inner.open_sockets.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Stop: every socket is dropped; connections still open are reported lost.
    fn shutdown(&mut self) {
        let ctx = Ctx {
            inner: &self.inner,
            handlers: &[],
            routes: None,
            now: self.now(),
        };
        for (_, mut c) in self.conns.drain() {
            c.abandon(&mut self.scratch, &ctx, "engine stopped");
            let _ = self.poll.registry().deregister(&mut c.sock);
            c.discard_unread();
            c.settle(&self.inner);
            self.inner.open_sockets.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner
            .open_sockets
            .fetch_sub(self.listeners.len(), Ordering::SeqCst);
        self.listeners.clear();
        self.inner.push_app(&mut self.scratch.out);
    }
}

/// Accept errors that concern one connection, not the listener: accept the next.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_one_second() {
        let waits: Vec<_> = (0..10).map(|n| accept_backoff(n).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn exhaustion_is_not_per_connection() {
        for errno in [12, 23, 24] {
            assert!(!is_per_connection(&io::Error::from_raw_os_error(errno)));
        }
        assert!(is_per_connection(&io::ErrorKind::ConnectionAborted.into()));
    }
}

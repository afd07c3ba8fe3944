//! One of the runner's endpoints around the proxy under test: a client in front of it
//! or a node behind it. Each endpoint has a reader thread that parses what the proxy
//! writes, answers PING, answers a GOAWAY NO_ERROR, counts CREDIT and grants credit
//! back when asked to; cases send from their own thread and wait on what the reader
//! collected. The proxy's lengths are never trusted beyond 65,535 bytes of payload, and
//! nothing it sends can make the reader panic.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Pong, Role};
use fleetwire::{ErrorCode, Header, Kind, Limits, Packet, Route, Status, PREFACE};

use super::super::session::hello_packet;

/// What the proxy announced in its HELLO.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerHello {
    pub(super) role: Role,
    pub(super) peer_id: u16,
}

/// A control event in arrival order (for ordering checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// An ERROR packet with this code.
    Error(ErrorCode),
    /// A GOAWAY with this code.
    Goaway(ErrorCode),
    /// The end of the stream.
    Eof,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) hello: Option<PeerHello>,
    /// DATA and ERROR packets not yet taken by the case.
    pub(super) inbox: Vec<Packet>,
    /// Every DATA packet received (count).
    pub(super) data: u64,
    /// ERROR, GOAWAY and end of stream, in order.
    pub(super) seen: Vec<Seen>,
    pub(super) goaway: Option<ErrorCode>,
    pub(super) closed: bool,
    /// The stream broke the framing rules (what was seen).
    pub(super) garbage: Option<String>,
    /// Credit the proxy granted us, less what we used.
    pub(super) credit_packets: i64,
    pub(super) credit_bytes: i64,
    /// CREDIT packets received.
    pub(super) credits: u64,
    pub(super) pongs: u64,
    /// Grant credit back for what arrives.
    pub(super) auto_credit: bool,
    owed_packets: u32,
    owed_bytes: u32,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.0.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The runner's limits for one endpoint.
pub(super) fn limits(credit_packets: u32, credit_bytes: u32) -> Limits {
    let mut l = Limits::default();
    l.max_payload = 16_384;
    l.initial_credit_packets = credit_packets;
    l.initial_credit_bytes = credit_bytes.max(16_384);
    l.idle_timeout_ms = 0;
    l
}

/// One endpoint.
pub(super) struct Ep {
    pub(super) name: String,
    w: Arc<Mutex<TcpStream>>,
    st: Shared,
    reader: Option<thread::JoinHandle<()>>,
}

impl Ep {
    /// Starts an endpoint on a connected socket: sends the preface and `hello`, starts
    /// the reader and waits for the proxy's HELLO.
    pub(super) fn start(
        name: String,
        sock: TcpStream,
        hello: &Hello<'_>,
        auto_credit: bool,
        deadline: Instant,
    ) -> Result<Ep, String> {
        let _ = sock.set_nodelay(true);
        let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
        let r = sock.try_clone().map_err(|e| e.to_string())?;
        let mut out = PREFACE.to_vec();
        out.extend(hello_packet(hello));
        let st: Shared = Arc::default();
        lock(&st).auto_credit = auto_credit;
        let w = Arc::new(Mutex::new(sock));
        let ep = {
            let (st2, w2) = (st.clone(), w.clone());
            let reader = thread::Builder::new()
                .name(format!("proxy-peer {name}"))
                .spawn(move || read_loop(r, &st2, &w2))
                .map_err(|e| e.to_string())?;
            Ep {
                name,
                w,
                st,
                reader: Some(reader),
            }
        };
        ep.send(&out)
            .map_err(|e| format!("{}: sending the preface and HELLO: {e}", ep.name))?;
        if !ep.wait_until(deadline, |s| s.hello.is_some() || s.closed) {
            return Err(format!("{}: no HELLO from the proxy in time", ep.name));
        }
        if ep.state().hello.is_none() {
            return Err(format!(
                "{}: the proxy closed before its HELLO ({:?})",
                ep.name,
                ep.state().goaway
            ));
        }
        Ok(ep)
    }

    /// The proxy's HELLO (after [`Ep::start`]).
    pub(super) fn hello(&self) -> PeerHello {
        self.state().hello.unwrap_or(PeerHello {
            role: Role::Client,
            peer_id: 0,
        })
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.st)
    }

    /// Bounds how long one write may block (a proxy that stops reading).
    pub(super) fn set_write_timeout(&self, t: Duration) {
        let w = self
            .w
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = w.set_write_timeout(Some(t));
    }

    /// Writes bytes (whole packets).
    pub(super) fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut w = self
            .w
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.write_all(bytes)
    }

    /// Sends a DATA packet within the credit the proxy granted, waiting for credit
    /// until `deadline`; `Ok(false)` when none came.
    pub(super) fn send_data(
        &self,
        route: Route,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<bool, String> {
        let len = payload.len() as i64;
        if !self.wait_until(deadline, |s| {
            s.closed || s.credit_packets >= 1 && s.credit_bytes >= len
        }) {
            return Ok(false);
        }
        {
            let mut s = self.state();
            if s.closed {
                return Err(format!("{}: the connection closed", self.name));
            }
            s.credit_packets -= 1;
            s.credit_bytes -= len;
        }
        let mut out = Vec::with_capacity(payload.len() + 8);
        Header::data(route, payload.len() as u16).encode_to_vec(&mut out);
        out.extend_from_slice(payload);
        self.send(&out)
            .map_err(|e| format!("{}: write: {e}", self.name))?;
        Ok(true)
    }

    /// Sends a packet outside the credit accounting (control packets, or DATA whose
    /// credit the case took itself).
    pub(super) fn send_packet(&self, header: &Header, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 10);
        header.encode_to_vec(&mut out);
        out.extend_from_slice(payload);
        self.send(&out)
            .map_err(|e| format!("{}: write: {e}", self.name))
    }

    /// Sends an ERROR packet with `code` for `about` (the header it reports), routed
    /// to `dest`.
    pub(super) fn send_error(
        &self,
        dest: u16,
        code: ErrorCode,
        about: &Header,
    ) -> Result<(), String> {
        let mut embedded = Vec::new();
        about.encode_to_vec(&mut embedded);
        let mut payload = Vec::new();
        ErrorReport {
            code,
            header: &embedded,
            reason: "",
        }
        .encode(&mut payload);
        let mut h = Header::control(Kind::Error, payload.len() as u16);
        h.route = Route::new(dest, about.route.service, about.route.channel);
        self.send_packet(&h, &payload)
    }

    /// Grants credit.
    pub(super) fn grant(&self, packets: u32, bytes: u32) -> Result<(), String> {
        let mut out = Vec::new();
        Control::Credit(Credit { packets, bytes }).encode_packet(&mut out);
        self.send(&out)
            .map_err(|e| format!("{}: write: {e}", self.name))
    }

    /// Sends a PING and waits for its PONG: the connection is alive.
    pub(super) fn alive(&self, deadline: Instant) -> bool {
        let before = self.state().pongs;
        let mut out = Vec::new();
        Control::Ping(fleetwire::control::Ping {
            id: 0x5052_4f58_5900_0000 + before,
            timestamp: 7,
        })
        .encode_packet(&mut out);
        if self.send(&out).is_err() {
            return false;
        }
        self.wait_until(deadline, |s| s.pongs > before || s.closed) && self.state().pongs > before
    }

    /// Sends GOAWAY NO_ERROR and waits for the proxy to close.
    pub(super) fn close(&self, deadline: Instant) -> bool {
        let mut out = Vec::new();
        Control::Goaway(Goaway {
            code: ErrorCode::NO_ERROR,
            delivered: 0,
            reason: "",
        })
        .encode_packet(&mut out);
        let _ = self.send(&out);
        self.wait_until(deadline, |s| s.closed)
    }

    /// Closes the socket at once (no GOAWAY).
    pub(super) fn abort(&self) {
        let w = self
            .w
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = w.shutdown(Shutdown::Both);
    }

    /// Waits until `pred` holds; returns whether it did before `deadline`.
    pub(super) fn wait_until(&self, deadline: Instant, pred: impl Fn(&State) -> bool) -> bool {
        let (m, cv) = &*self.st;
        let mut s = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if pred(&s) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv
                .wait_timeout(s, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Takes the first inbox packet matching `pred`, waiting until `deadline`.
    pub(super) fn take(&self, deadline: Instant, pred: impl Fn(&Packet) -> bool) -> Option<Packet> {
        let mut found = None;
        self.wait_until(deadline, |s| s.inbox.iter().any(&pred));
        let mut s = self.state();
        if let Some(i) = s.inbox.iter().position(&pred) {
            found = Some(s.inbox.remove(i));
        }
        found
    }

    /// Takes every inbox packet matching `pred` now.
    pub(super) fn drain(&self, pred: impl Fn(&Packet) -> bool) -> Vec<Packet> {
        let mut s = self.state();
        let (take, keep): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut s.inbox)
            .into_iter()
            .partition(|p| pred(p));
        s.inbox = keep;
        take
    }
}

impl Drop for Ep {
    fn drop(&mut self) {
        self.abort();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The ERROR report of an ERROR packet, if it is one and well formed: code and the
/// embedded header.
pub(super) fn error_of(p: &Packet) -> Option<(ErrorCode, Header)> {
    if p.header.kind != Kind::Error {
        return None;
    }
    let e = ErrorReport::parse(&p.payload).ok()?;
    match Header::parse(e.header, u16::MAX) {
        Ok(Status::Complete(h)) => Some((e.code, h)),
        _ => None,
    }
}

fn read_loop(mut r: TcpStream, st: &Shared, w: &Arc<Mutex<TcpStream>>) {
    let _ = r.set_read_timeout(None);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut preface = false;
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if !preface {
            if buf.len() < PREFACE.len() {
                continue;
            }
            if buf[..PREFACE.len()] != PREFACE {
                lock(st).garbage = Some("wrong preface".into());
                break;
            }
            buf.drain(..PREFACE.len());
            preface = true;
        }
        let mut at = 0;
        let mut stop = false;
        let mut replies = Vec::new();
        {
            let mut s = lock(st);
            loop {
                match Header::parse(&buf[at..], u16::MAX) {
                    Ok(Status::Complete(h)) if buf.len() - at >= h.packet_len() => {
                        let payload =
                            bytes::Bytes::copy_from_slice(&buf[at + h.len()..at + h.packet_len()]);
                        at += h.packet_len();
                        handle(&mut s, Packet { header: h, payload }, &mut replies);
                    }
                    Ok(_) => break,
                    Err(e) => {
                        s.garbage = Some(format!("invalid header: {}", e.detail()));
                        stop = true;
                        break;
                    }
                }
            }
        }
        buf.drain(..at);
        st.1.notify_all();
        if !replies.is_empty() {
            let mut w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = w.write_all(&replies);
        }
        if stop {
            break;
        }
    }
    let mut s = lock(st);
    s.closed = true;
    s.seen.push(Seen::Eof);
    drop(s);
    st.1.notify_all();
}

fn handle(s: &mut State, p: Packet, replies: &mut Vec<u8>) {
    match p.header.kind {
        Kind::Data => {
            s.data += 1;
            if s.auto_credit {
                s.owed_packets += 1;
                s.owed_bytes = s.owed_bytes.saturating_add(p.payload.len() as u32);
                if s.owed_packets >= 8 || s.owed_bytes >= 32 * 1024 {
                    Control::Credit(Credit {
                        packets: s.owed_packets,
                        bytes: s.owed_bytes.max(1),
                    })
                    .encode_packet(replies);
                    s.owed_packets = 0;
                    s.owed_bytes = 0;
                }
            }
            s.inbox.push(p);
        }
        Kind::Error => {
            if let Ok(e) = ErrorReport::parse(&p.payload) {
                s.seen.push(Seen::Error(e.code));
            }
            s.inbox.push(p);
        }
        _ => match Control::parse(p.header.kind, &p.payload) {
            Ok(Control::Hello(h)) if s.hello.is_none() => {
                s.hello = Some(PeerHello {
                    role: h.role,
                    peer_id: h.peer_id,
                });
                s.credit_packets += i64::from(h.initial_credit_packets);
                s.credit_bytes += i64::from(h.initial_credit_bytes);
            }
            Ok(Control::Ping(ping)) => Control::Pong(Pong {
                id: ping.id,
                timestamp: ping.timestamp,
                hold_us: 0,
            })
            .encode_packet(replies),
            Ok(Control::Pong(_)) => s.pongs += 1,
            Ok(Control::Credit(c)) => {
                s.credits += 1;
                s.credit_packets += i64::from(c.packets);
                s.credit_bytes += i64::from(c.bytes);
            }
            Ok(Control::Goaway(g)) => {
                s.seen.push(Seen::Goaway(g.code));
                if s.goaway.is_none() {
                    s.goaway = Some(g.code);
                    if g.code == ErrorCode::NO_ERROR {
                        Control::Goaway(Goaway {
                            code: ErrorCode::NO_ERROR,
                            delivered: s.data,
                            reason: "",
                        })
                        .encode_packet(replies);
                    }
                }
            }
            _ => {}
        },
    }
}

/// The runner's HELLO for a client.
pub(super) fn client_hello(credit_packets: u32, credit_bytes: u32) -> Hello<'static> {
    Hello::new(Role::Client, 0, &limits(credit_packets, credit_bytes), 0)
}

/// The runner's HELLO for a node.
pub(super) fn node_hello(id: u16, credit_packets: u32, credit_bytes: u32) -> Hello<'static> {
    Hello::new(Role::Node, id, &limits(credit_packets, credit_bytes), 0)
}

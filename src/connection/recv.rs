//! The receive path: preface, deframing one packet at a time, the state checks of §6.3
//! and each packet kind.

use std::time::Duration;

use bytes::Bytes;

use super::{
    Connection, Event, EventSink, Identity, PeerGoaway, PeerInfo, Queued, State,
    MAX_OUTSTANDING_PINGS, RESERVED_NODE,
};
use crate::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use crate::deframer::Partial;
use crate::error::{Error, ErrorCode};
use crate::header::{Codec, Header, Kind, Route};
use crate::packet::{check_preface, Packet, PacketRef};
use crate::Status;

/// Complete packets parsed ahead of their processing, at most (see
/// `process_complete_run`).
pub(super) const RUN_PACKETS: usize = 64;

fn err(code: ErrorCode, detail: &'static str) -> Error {
    Error::Other(code, detail)
}

impl Connection {
    /// Feeds bytes received from the peer at time `now`.
    ///
    /// Processes as many packets as the bytes complete, in order, queuing answers
    /// (PONG, CREDIT, ERROR, GOAWAY) and events. Input may be split anywhere
    /// (§2 `[[layer.split]]`, §12.2). Expired timers are handled first, so bytes that
    /// arrive at or after a deadline are too late. A connection error queues GOAWAY with
    /// its code and closes (§6.4 `[[close.on-error]]`); input after that is ignored.
    /// Never panics, whatever the bytes.
    ///
    /// At most one packet is buffered: the input is fed to the deframer one packet at a
    /// time, and a DATA packet beyond the credit granted is rejected as soon as its
    /// header is complete (§11 `[[limit.buffer]]`, §6.3 `[[state.order]]`).
    ///
    /// A GOAWAY with NO_ERROR from the peer is answered with our own (unless we sent one
    /// already); the rest of this input is still processed — DATA after it is
    /// UNEXPECTED_PACKET, a second GOAWAY NO_ERROR is ignored, one with an error code
    /// closes at once — and then the connection closes with the peer's code (§6.4). A
    /// GOAWAY with another code closes at once, unanswered.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Config, Connection, Event};
    /// use fleetwire::ErrorCode;
    ///
    /// let mut conn = Connection::new(Config::node(1), Duration::ZERO);
    /// conn.handle_input(Duration::ZERO, &[0x89, b'F', b'W', b'I', b'R', b'E', 0x0D, 0x0B]);
    /// let Some(Event::Closed { code, by_peer, .. }) = conn.poll_event() else { panic!() };
    /// assert_eq!((code, by_peer), (ErrorCode::BAD_PREFACE, false));
    /// ```
    pub fn handle_input(&mut self, now: Duration, input: &[u8]) {
        self.input(now, input, None, None);
    }

    /// As [`handle_input`](Connection::handle_input), from bytes the caller already
    /// holds as [`Bytes`]: the payloads of the complete packets in `input` are slices of
    /// it, not copies (zero-copy receive; they keep `input`'s allocation alive as long
    /// as they live) — when they make up at least half of it. Small payloads in a large
    /// input are copied, so that a few bytes never pin a whole read buffer (§11
    /// `[[limit.buffer]]`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use fleetwire::connection::{Event, Pair};
    /// use fleetwire::Route;
    ///
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// while pair.b.poll_event().is_some() {}
    /// let hello = [7u8; 1000];
    /// pair.a.send_data(Route::new(0, 1, 0), &hello, Default::default()).unwrap();
    /// let mut wire = Vec::new();
    /// pair.a.poll_transmit(&mut wire);
    /// let wire = Bytes::from(wire);
    /// pair.b.handle_input_bytes(Duration::ZERO, wire.clone());
    /// let Some(Event::Data { payload, .. }) = pair.b.poll_event() else { panic!() };
    /// assert_eq!(&payload[..], &hello[..]);
    /// // the payload points into the received bytes
    /// assert!(wire.as_ptr_range().contains(&payload.as_ptr()));
    /// ```
    pub fn handle_input_bytes(&mut self, now: Duration, input: Bytes) {
        self.input(now, &input, Some(&input), None);
    }

    /// As [`handle_input_bytes`](Connection::handle_input_bytes) of `whole` (which must
    /// hold `input`: its payloads are sliced from it) or, with `whole` `None`,
    /// [`handle_input`](Connection::handle_input) of `input`, offering each
    /// [`Event::Data`] to `sink` as its packet is processed, while no earlier event
    /// waits for [`poll_event`](Connection::poll_event): a DATA the sink takes is
    /// delivered there and then — counted, its credit consumed and granted back as
    /// `poll_event` would — and never queued. What it gives back is queued as usual, and
    /// so is everything after it until the queue is empty again: events keep their order.
    /// A driver whose native handlers consume most messages saves the queue and an
    /// event per message.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use fleetwire::connection::{Event, EventSink, Pair};
    /// use fleetwire::Route;
    ///
    /// /// Takes channel 0, gives the rest back.
    /// struct Channel0(Vec<Bytes>);
    /// impl EventSink for Channel0 {
    ///     fn offer(&mut self, event: Event) -> Option<Event> {
    ///         match event {
    ///             Event::Data { route, payload, .. } if route.channel == 0 => {
    ///                 self.0.push(payload);
    ///                 None
    ///             }
    ///             other => Some(other),
    ///         }
    ///     }
    /// }
    ///
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// while pair.b.poll_event().is_some() {}
    /// for (channel, text) in [(0, "a"), (1, "b"), (0, "c")] {
    ///     pair.a.send_data(Route::new(0, 1, channel), text.as_bytes(), Default::default()).unwrap();
    /// }
    /// let mut wire = Vec::new();
    /// pair.a.poll_transmit(&mut wire);
    /// let mut sink = Channel0(Vec::new());
    /// pair.b.handle_input_into(Duration::ZERO, &wire, None, &mut sink);
    /// // "a" was taken; "b" was given back and queued, so "c" queues behind it
    /// assert_eq!(sink.0, [Bytes::from("a")]);
    /// let queued: Vec<Event> = std::iter::from_fn(|| pair.b.poll_event()).collect();
    /// assert_eq!(queued.len(), 2);
    /// ```
    pub fn handle_input_into(
        &mut self,
        now: Duration,
        input: &[u8],
        whole: Option<&Bytes>,
        sink: &mut dyn EventSink,
    ) {
        if let Some(w) = whole {
            debug_assert!(w.as_ptr_range().contains(&input.as_ptr()) || input.is_empty());
        }
        self.input(now, input, whole, Some(sink));
    }

    /// The body of all three: `whole`, when given, holds `input` and its payloads are
    /// sliced from it; `sink`, when given, is offered each DATA.
    fn input(
        &mut self,
        now: Duration,
        mut input: &[u8],
        whole: Option<&Bytes>,
        mut sink: Option<&mut dyn EventSink>,
    ) {
        self.handle_timeout(now);
        if self.state == State::Closed || input.is_empty() {
            return;
        }
        // spec §6.5: the idle timer restarts on any byte received
        self.last_rx = self.now;
        if self.state == State::AwaitPreface {
            input = self.read_preface(input);
        }
        input = self.finish_partial(input, sink.as_deref_mut());
        input = self.process_complete_run(input, whole, sink.as_deref_mut());
        while !input.is_empty() && self.state != State::Closed {
            let n = self.wanted().min(input.len());
            if self.deframer.partial() == Partial::Empty {
                // spec §6.5: header and packet timers start at a packet's first byte
                self.packet_started = self.now;
            }
            self.deframer.extend(&input[..n]);
            input = &input[n..];
            if let Err(e) = self.advance(sink.as_deref_mut()) {
                self.fail(e.code(), e.detail());
            }
        }
        // spec §6.4: both GOAWAYs sent, the rest of the input processed: close
        // ([[close.answer-drain]] after our answer, or the peer's answer to our close)
        if self.sent_no_error {
            if let Some(g) = self.goaway_received.take() {
                self.close_after_goaway(g);
            }
        }
    }

    /// The byte stream ended (EOF), or failed, at time `now`: expired timers first, then
    /// the connection closes. Reported as CONNECTION_LOST (never sent) when no GOAWAY was
    /// sent or received, else with that GOAWAY's code (§6.4). Does nothing once closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Config, Connection, Event};
    /// use fleetwire::ErrorCode;
    ///
    /// let mut conn = Connection::new(Config::node(1), Duration::ZERO);
    /// conn.handle_eof(Duration::ZERO);
    /// let Some(Event::Closed { code, .. }) = conn.poll_event() else { panic!() };
    /// assert_eq!(code, ErrorCode::CONNECTION_LOST);
    /// ```
    pub fn handle_eof(&mut self, now: Duration) {
        // spec §6.5 [[timeout.first]]
        self.handle_timeout(now);
        if self.state == State::Closed {
            return;
        }
        if let Some(g) = self.goaway_received.take() {
            self.close_after_goaway(g);
        } else if self.goaway_sent_at.is_some() || self.sent_no_error {
            // spec §6.4: after our GOAWAY, the closure has its code (NO_ERROR)
            let reason = core::mem::take(&mut self.close_reason);
            self.finish(ErrorCode::NO_ERROR, false, reason, None);
        } else {
            // spec §6.4: CONNECTION_LOST is reported locally, never sent
            self.finish(
                ErrorCode::CONNECTION_LOST,
                true,
                "the byte stream ended".to_owned(),
                None,
            );
        }
    }

    /// Completes a packet already partly buffered in the deframer, one `wanted()` piece
    /// at a time; returns the input after it.
    fn finish_partial<'a, 's>(
        &mut self,
        mut input: &'a [u8],
        mut sink: Option<&mut (dyn EventSink + 's)>,
    ) -> &'a [u8] {
        while !input.is_empty()
            && self.state != State::Closed
            && self.deframer.partial() != Partial::Empty
        {
            let n = self.wanted().min(input.len());
            self.deframer.extend(&input[..n]);
            input = &input[n..];
            if let Err(e) = self.advance(sink.as_deref_mut()) {
                self.fail(e.code(), e.detail());
            }
        }
        input
    }

    /// The fast path: with nothing buffered, the complete packets at the front of
    /// `input` are processed from one shared buffer (given `whole`, sliced from it
    /// without a copy; else one copy), each payload a reference-counted slice, unless
    /// payloads are too small a part of the run to pin it (then each is copied out).
    /// Each packet goes through exactly the checks of the slow path, in the same order (§4.9, §6.3, then its payload); the run stops at the first
    /// incomplete or invalid header, which the caller hands to the deframer. Returns the
    /// input after the run.
    fn process_complete_run<'a, 's>(
        &mut self,
        mut input: &'a [u8],
        whole: Option<&Bytes>,
        mut sink: Option<&mut (dyn EventSink + 's)>,
    ) -> &'a [u8] {
        let max_payload = self.config.limits.max_payload;
        // Each packet is parsed once: its header is kept for the second pass, a run of
        // at most RUN_PACKETS at a time (on the stack: nothing held between reads).
        let mut headers = [Header::data(Route::new(0, 0, 0), 0); RUN_PACKETS];
        while self.state != State::Closed && self.deframer.partial() == Partial::Empty {
            let (mut n, mut run) = (0, 0);
            // Payload bytes of the packets whose payload an event may keep (DATA, and
            // ERROR forwarded by a proxy).
            let mut kept = 0;
            while n < RUN_PACKETS {
                let Ok(Status::Complete((pkt, rest))) =
                    PacketRef::parse(&input[run..], max_payload)
                else {
                    break;
                };
                if matches!(pkt.header.kind, Kind::Data | Kind::Error) {
                    kept += usize::from(pkt.header.length);
                }
                headers[n] = pkt.header;
                n += 1;
                run = input.len() - rest.len();
            }
            if n == 0 {
                break;
            }
            // A payload slice keeps its whole chunk alive: share the chunk (the caller's
            // buffer given as `whole`, without a copy, or one copy of the run) only when
            // kept payloads are at least half of it, else copy each payload on its own,
            // so a small DATA never pins a large read (§11 [[limit.buffer]]: what is held
            // stays within twice the credit, plus the one chunk being consumed).
            let chunk = (kept * 2 >= run).then(|| match whole {
                Some(whole) => whole.slice_ref(&input[..run]),
                None => Bytes::copy_from_slice(&input[..run]),
            });
            let mut at = 0;
            for &header in &headers[..n] {
                if self.state == State::Closed {
                    break;
                }
                let start = at + header.len();
                at = start + usize::from(header.length);
                self.packet_started = self.now;
                let payload = match &chunk {
                    Some(chunk) => chunk.slice(start..at),
                    None => Bytes::copy_from_slice(&input[start..at]),
                };
                let packet = Packet { header, payload };
                let result = self
                    .check_header(&header)
                    .and_then(|()| self.process(packet, sink.as_deref_mut()));
                if let Err(e) = result {
                    self.fail(e.code(), e.detail());
                }
            }
            input = &input[at..];
            if n < RUN_PACKETS {
                // an incomplete or invalid header: the deframer takes it from here
                break;
            }
        }
        input
    }

    /// Closes with the peer's GOAWAY NO_ERROR: the answer to our close, or the peer's own
    /// close that we answered (§6.4).
    pub(super) fn close_after_goaway(&mut self, g: PeerGoaway) {
        if self.state == State::Closed {
            return;
        }
        let delivered = Some(g.delivered);
        if self.goaway_sent_at.is_some() {
            let reason = core::mem::take(&mut self.close_reason);
            self.finish(g.code, false, reason, delivered);
        } else {
            self.finish(g.code, true, g.reason, delivered);
        }
    }

    /// Collects the preface; returns the input after it.
    fn read_preface<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let n = (self.preface.len() - self.preface_len).min(input.len());
        self.preface[self.preface_len..self.preface_len + n].copy_from_slice(&input[..n]);
        self.preface_len += n;
        // spec §3 [[preface.check]]: checked once its 8 bytes are available
        match check_preface(&self.preface[..self.preface_len]) {
            Ok(Status::Complete(_)) => self.state = State::AwaitHello,
            Ok(Status::Incomplete { .. }) => {}
            Err(e) => self.fail(e.code(), e.detail()),
        }
        &input[n..]
    }

    /// How many more bytes complete the header or packet being assembled; never zero.
    fn wanted(&self) -> usize {
        let buffered = self.deframer.buffered();
        match self.checked {
            Some(h) => h.packet_len().saturating_sub(buffered).max(1),
            None if buffered < Header::BASE_LEN => Header::BASE_LEN - buffered,
            None => Header::MAX_LEN.saturating_sub(buffered).max(1),
        }
    }

    /// Checks a newly complete header, then processes the packet once it is complete.
    fn advance(&mut self, sink: Option<&mut (dyn EventSink + '_)>) -> Result<(), Error> {
        if self.checked.is_none() {
            // spec §4.9 [[hdr.order]]: the header checks run in the deframer
            let Some(header) = self.deframer.pending_header()? else {
                return Ok(());
            };
            self.check_header(&header)?;
            self.checked = Some(header);
        }
        if let Some(packet) = self.deframer.next_packet()? {
            self.checked = None;
            self.process(packet, sink)?;
        }
        Ok(())
    }

    /// The checks of §6.3 that need the connection state, before the payload is read.
    fn check_header(&mut self, h: &Header) -> Result<(), Error> {
        // spec §6.3 [[state.permitted]]: HELLO and GOAWAY only in AWAIT_HELLO, HELLO
        // only there, DATA not after the peer's own GOAWAY
        let permitted = match self.state {
            State::AwaitHello => matches!(h.kind, Kind::Hello | Kind::Goaway),
            State::Established => match h.kind {
                Kind::Hello => false,
                Kind::Data => self.goaway_received.is_none(),
                _ => true,
            },
            State::AwaitPreface | State::Closed => false,
        };
        if !permitted {
            return Err(err(
                ErrorCode::UNEXPECTED_PACKET,
                "packet kind not permitted in this state",
            ));
        }
        // spec §7.4 [[src.forbid]] [[src.trust]]: X only from a trusted proxy
        if h.source.is_some() && !self.peer_may_stamp() {
            return Err(err(
                ErrorCode::SOURCE_FORGED,
                "source extension from an untrusted peer",
            ));
        }
        // spec §7.4 [[src.reserved]]: 0xFFFF is never stamped, even by a trusted proxy
        if h.source == Some(RESERVED_NODE) {
            return Err(err(ErrorCode::SOURCE_FORGED, "Source Node 0xFFFF"));
        }
        // spec §8 [[flow.exceed]]: DATA beyond the credit granted
        if h.kind == Kind::Data && self.recv_credit.receive(h.length).is_err() {
            return Err(err(
                ErrorCode::FLOW_CONTROL,
                "DATA exceeds the credit granted",
            ));
        }
        Ok(())
    }

    /// A complete packet that passed the header and state checks.
    fn process(
        &mut self,
        packet: Packet,
        sink: Option<&mut (dyn EventSink + '_)>,
    ) -> Result<(), Error> {
        // spec §5 [[ctl.malformed]]: payload checks, each parser names its code
        match packet.header.kind {
            Kind::Data => self.on_data(packet, sink),
            Kind::Hello => self.on_hello(&packet.payload),
            Kind::Ping => {
                let ping = Ping::parse(&packet.payload)?;
                self.count_ping()?;
                // spec §5.3 [[ping.answer]] [[ping.order]] [[ping.fifo]]: answered at
                // once, so it precedes everything queued later; hold time 0
                self.queue_control(Control::Pong(Pong {
                    id: ping.id,
                    timestamp: ping.timestamp,
                    hold_us: 0,
                }));
                Ok(())
            }
            Kind::Pong => {
                let pong = Pong::parse(&packet.payload)?;
                self.on_pong(pong);
                Ok(())
            }
            Kind::Goaway => {
                let goaway = Goaway::parse(&packet.payload)?;
                self.on_goaway(goaway);
                Ok(())
            }
            Kind::Credit => {
                let credit = Credit::parse(&packet.payload)?;
                // spec §8 [[flow.overflow]]: outstanding credit above 2^32 − 1
                self.send_credit
                    .add(credit)
                    .map_err(|()| err(ErrorCode::FLOW_CONTROL, "credit above 2^32-1"))
            }
            Kind::Error => self.on_error(packet),
        }
    }

    fn on_hello(&mut self, payload: &[u8]) -> Result<(), Error> {
        // spec §5.2 [[hello.length]] [[hello.fields]] [[hello.client-id]] [[hello.node-id]]
        let hello = Hello::parse(payload)?;
        // spec §6.2 [[neg.version]]: we speak only version 1
        if !(hello.min_version..=hello.max_version).contains(&Header::VERSION) {
            return Err(err(ErrorCode::UNSUPPORTED_VERSION, "no common version"));
        }
        // spec §5.2 [[hello.order]]: authentication last
        self.check_authentication(&hello)?;
        let peer = PeerInfo {
            version: Header::VERSION,
            role: hello.role,
            node_id: hello.node_id,
            // spec §5.2: any peer_id is accepted, 0xFFFF is treated as 0
            attributed_id: if hello.peer_id == RESERVED_NODE {
                0
            } else {
                hello.peer_id
            },
            // spec §5.2 [[hello.reserved]]: reserved codec bits are ignored
            codecs: hello.codecs & 0x03,
            max_payload: hello.max_payload,
            max_decompressed: hello.max_decompressed,
            max_ratio: hello.max_ratio,
            initial_credit_packets: hello.initial_credit_packets,
            initial_credit_bytes: hello.initial_credit_bytes,
            idle_timeout_ms: hello.idle_timeout_ms,
        };
        self.peer = Some(peer);
        self.state = State::Established;
        // spec §8: our credit starts at the peer's initial credit
        self.send_credit.packets = hello.initial_credit_packets;
        self.send_credit.bytes = hello.initial_credit_bytes;
        crate::trace::event!(
            debug,
            role = peer.role.name(),
            node_id = peer.node_id,
            "established"
        );
        self.push(Event::Established { peer }, None);
        Ok(())
    }

    /// The authentication checks of a node or proxy HELLO (§7.4 `[[src.auth]]`, §10.2
    /// `[[tls.node-binding]]`); a client needs none.
    fn check_authentication(&self, hello: &Hello<'_>) -> Result<(), Error> {
        if !matches!(hello.role, Role::Node | Role::Proxy) {
            return Ok(());
        }
        let identity_matches = match self.config.authenticated {
            // spec §10.2 [[tls.node-binding]]: the id must match the certificate
            Some(id) if id.node_id != hello.node_id => {
                return Err(Error::BadHello("node id differs from the authenticated id"));
            }
            // spec §7.4 [[src.auth]] 1: a proxy identity matches both roles, a node
            // identity only role node
            Some(id) => hello.role == Role::Node || id == Identity::proxy(hello.node_id),
            None => false,
        };
        // spec §7.4 [[src.auth]] 2: or trusted by explicit configuration; never by default
        if identity_matches || self.config.trust_source || !self.config.require_auth {
            return Ok(());
        }
        Err(Error::BadHello(if self.config.authenticated.is_some() {
            "role proxy without a proxy identity"
        } else {
            "node or proxy role from an unauthenticated peer"
        }))
    }

    fn on_data<'s>(
        &mut self,
        packet: Packet,
        sink: Option<&mut (dyn EventSink + 's)>,
    ) -> Result<(), Error> {
        let header = packet.header;
        let source = self.source_of(&header);
        // spec §11 [[limit.per-source]]: on a trusted proxy link the run is counted per
        // source, and a source over the limit gets ERROR FLOOD, not the link closed
        if self.counts_per_source() {
            let run = &mut self.per_source.entry(source).or_default().empty_run;
            let over = if header.length == 0 {
                *run = run.saturating_add(1);
                *run > self.config.limits.max_empty_run
            } else {
                *run = 0;
                false
            };
            if over {
                *run = 0;
                self.delivered += 1;
                self.recv_credit.consumed(header.length);
                self.report(
                    &header,
                    source,
                    ErrorCode::FLOOD,
                    "too many consecutive empty DATA packets from this source",
                );
                self.grant_credit();
                return Ok(());
            }
        // spec §11 [[limit.empty-run]]: more than max_empty_run consecutive empty DATA
        } else if header.length == 0 {
            self.empty_run = self.empty_run.saturating_add(1);
            if self.empty_run > self.config.limits.max_empty_run {
                return Err(err(
                    ErrorCode::FLOOD,
                    "too many consecutive empty DATA packets",
                ));
            }
        } else {
            self.empty_run = 0;
        }
        // spec §6.4 [[close.half]]: DATA after our GOAWAY (and before the peer's) is
        // processed as in ESTABLISHED, never discarded for draining.
        // spec §5.5 [[goaway.delivered]]: the peer's DATA packets processed, in order
        self.delivered += 1;
        // spec §6.3 [[state.data-order]] 1, §7.3 [[route.no-route]]: 0xFFFF never
        // names a node, not even for a proxy
        if header.route.node == RESERVED_NODE {
            return self.data_error(
                &header,
                source,
                ErrorCode::NO_ROUTE,
                "Destination Node 0xFFFF",
            );
        }
        if !self.is_local(header.route.node) {
            if self.config.role == Role::Proxy {
                self.push_forward(packet, source, Some(header.length));
                return Ok(());
            }
            // spec §7.3 [[route.no-route]]: not a proxy
            return self.data_error(&header, source, ErrorCode::NO_ROUTE, "not a proxy");
        }
        // spec §7.2 [[route.no-service]]
        if !self.config.has_service(header.route.service) {
            return self.data_error(
                &header,
                source,
                ErrorCode::NO_SERVICE,
                "service not registered",
            );
        }
        match self.decode_payload(header.codec, packet.payload) {
            Ok(payload) => {
                let mut event = Event::Data {
                    source,
                    route: header.route,
                    payload,
                    never_compress: header.never_compress,
                };
                // delivered at once when nothing waits ahead of it, as `poll_event` would
                if let Some(sink) = sink.filter(|_| self.events.is_empty()) {
                    match sink.offer(event) {
                        None => {
                            self.recv_credit.consumed(header.length);
                            self.grant_credit();
                            return Ok(());
                        }
                        Some(back) => event = back,
                    }
                }
                self.push(event, Some(header.length));
                Ok(())
            }
            // spec §9.3 [[comp.packet-error]]
            Err(e) => self.data_error(&header, source, e.code(), e.detail()),
        }
    }

    /// A packet error on a DATA packet: its credit is consumed at once and granted back
    /// (§8 `[[flow.send]]`: consumed whatever happens to it, `[[flow.no-deadlock]]`).
    fn data_error(
        &mut self,
        h: &Header,
        source: u16,
        code: ErrorCode,
        why: &str,
    ) -> Result<(), Error> {
        self.recv_credit.consumed(h.length);
        self.packet_error(h, source, code, why)?;
        self.grant_credit();
        Ok(())
    }

    /// Counts a packet error and reports it with ERROR, unless it concerns an ERROR
    /// (§12.1, §5.7). UNREACHABLE is not counted (§12.3); the packet that exceeds the
    /// budget gets no ERROR, only the close.
    pub(super) fn packet_error(
        &mut self,
        h: &Header,
        source: u16,
        code: ErrorCode,
        why: &str,
    ) -> Result<(), Error> {
        // spec §12.3 [[err.budget]]: UNREACHABLE reports our own queue, not a fault of
        // the peer; every other discarded packet counts, a silently discarded ERROR too
        if code != ErrorCode::UNREACHABLE {
            let max = self.config.limits.max_packet_errors;
            if self.counts_per_source() {
                // spec §11 [[limit.per-source]]: per source on a trusted proxy link; the
                // source over budget gets TOO_MANY_ERRORS and starts again, the link stays
                let errors = &mut self.per_source.entry(source).or_default().errors;
                *errors = errors.saturating_add(1);
                if *errors > max {
                    *errors = 0;
                    crate::trace::event!(
                        warn,
                        source,
                        max,
                        "packet error budget of a source exhausted"
                    );
                    self.report(
                        h,
                        source,
                        ErrorCode::TOO_MANY_ERRORS,
                        "packet error budget of this source exhausted",
                    );
                    return Ok(());
                }
            } else {
                self.packet_errors = self.packet_errors.saturating_add(1);
                // spec §12.3 [[err.budget]]: more than max_packet_errors
                if self.packet_errors > max {
                    return Err(err(
                        ErrorCode::TOO_MANY_ERRORS,
                        "packet error budget exhausted",
                    ));
                }
            }
        }
        crate::trace::event!(debug, %code, source, reason = why, kind = ?h.kind, "packet error");
        self.report(h, source, code, why);
        Ok(())
    }

    /// Sends ERROR `code` about the packet with header `h` to its `source`, unless that
    /// packet is itself an ERROR (§5.7 `[[error.no-loop]]`: discarded silently).
    pub(super) fn report(&mut self, h: &Header, source: u16, code: ErrorCode, why: &str) {
        if h.kind == Kind::Error {
            return;
        }
        let mut received = [0u8; Header::MAX_LEN];
        let n = h.encode(&mut received);
        let report = ErrorReport {
            code,
            header: &received[..n],
            reason: why,
        };
        // spec §5.7 [[error.route]]: to the source, service and channel zero, on this
        // connection
        Control::Error(report).encode_routed(Route::new(source, 0, 0), None, &mut self.tx);
        self.last_tx = self.now;
    }

    #[cfg(feature = "compression")]
    fn decode_payload(&mut self, codec: Codec, payload: Bytes) -> Result<Bytes, Error> {
        if codec == Codec::None {
            return Ok(payload);
        }
        // spec §9.3 [[comp.not-negotiated]] [[comp.cap]]: our own announced limits
        let limits = crate::compress::DecompressLimits {
            max_decompressed: self.config.limits.max_decompressed,
            max_ratio: self.config.limits.max_ratio,
            codecs: self.config.announced_codecs(),
        };
        let mut out = Vec::new();
        self.decompressor
            .decompress(codec, &payload, &limits, &mut out)?;
        Ok(Bytes::from(out))
    }

    #[cfg(not(feature = "compression"))]
    fn decode_payload(&mut self, codec: Codec, payload: Bytes) -> Result<Bytes, Error> {
        if codec == Codec::None {
            return Ok(payload);
        }
        // spec §9.3 [[comp.not-negotiated]]: this build announces no codec
        Err(err(
            ErrorCode::CODEC_NOT_NEGOTIATED,
            "payload codec not announced by this receiver",
        ))
    }

    fn on_error(&mut self, packet: Packet) -> Result<(), Error> {
        // spec §5.7 [[error.layout]]
        let report = ErrorReport::parse(&packet.payload)?;
        // spec §5.7 [[error.rate]]: a client's ERRORs; a node or proxy relays others'
        if self.peer.is_none_or(|p| p.role == Role::Client) {
            self.count_error()?;
        }
        let source = self.source_of(&packet.header);
        if packet.header.route.node == RESERVED_NODE {
            // spec §7.3: 0xFFFF never names a node; an ERROR is discarded silently (§5.7)
            return self.packet_error(
                &packet.header,
                source,
                ErrorCode::NO_ROUTE,
                "Destination Node 0xFFFF",
            );
        }
        if self.is_local(packet.header.route.node) {
            let event = Event::PacketError {
                code: report.code,
                source,
                header: packet.payload.slice(2..2 + report.header.len()),
                reason: report.reason.to_owned(),
            };
            self.push(event, None);
            return Ok(());
        }
        if self.config.role == Role::Proxy {
            self.push_forward(packet, source, None);
            return Ok(());
        }
        // spec §7.3 [[route.no-route]], §5.7 [[error.no-loop]]: discarded silently
        self.packet_error(&packet.header, source, ErrorCode::NO_ROUTE, "not a proxy")
    }

    /// A packet for another node, stamped for the proxy layer (§7.3, §7.4).
    fn push_forward(&mut self, packet: Packet, source: u16, credit: Option<u16>) {
        let received = packet.header;
        // spec §7.4 [[src.stamp]], §7.3 [[route.stamp]]: X = 1 and the source we
        // determined; everything else unchanged [[route.forward-unchanged]]
        let header = Header {
            source: Some(source),
            ..received
        };
        let packet = Packet {
            header,
            payload: packet.payload,
        };
        self.push(Event::Forward { packet, received }, credit);
    }

    fn on_pong(&mut self, pong: Pong) {
        // spec §5.4 [[pong.unknown]]: a PONG we did not ask for is ignored
        let Some(at) = self.pings.iter().position(|&id| id == pong.id) else {
            return;
        };
        self.pings.remove(at);
        let now_us = u64::try_from(self.now.as_micros()).unwrap_or(u64::MAX);
        let rtt = Duration::from_micros(pong.rtt_us(now_us));
        self.push(Event::Pong { id: pong.id, rtt }, None);
    }

    fn on_goaway(&mut self, goaway: Goaway<'_>) {
        crate::trace::event!(debug, code = %goaway.code, reason = goaway.reason, delivered = goaway.delivered, "GOAWAY received");
        let delivered = Some(goaway.delivered);
        // spec §6.4: with a code other than NO_ERROR (the first GOAWAY or a later one)
        // the receiver closes at once, without answering;
        // spec §5.5 [[goaway.unknown-code]]: the code is reported as it is
        if goaway.code != ErrorCode::NO_ERROR {
            self.goaway_received = None;
            self.finish(goaway.code, true, goaway.reason.to_owned(), delivered);
            return;
        }
        // spec §6.4: a second GOAWAY NO_ERROR is ignored
        if self.goaway_received.is_some() {
            return;
        }
        let g = PeerGoaway {
            code: goaway.code,
            reason: goaway.reason.to_owned(),
            delivered: goaway.delivered,
            at: self.now,
        };
        if self.state == State::AwaitHello {
            // spec §6.4: closing before the peer's HELLO: answered, closed at once,
            // without draining
            self.queue_goaway(ErrorCode::NO_ERROR, "");
            self.close_after_goaway(g);
            return;
        }
        if !self.sent_no_error {
            // spec §6.4 [[close.answer]]: a half-close. We may still send DATA (the
            // answers to what we received) until the application closes, which sends our
            // GOAWAY; the drain timer, started now, answers for it at the latest
            let event = Event::GoawayReceived {
                delivered: g.delivered,
                reason: g.reason.clone(),
            };
            self.push(event, None);
        }
        // with our GOAWAY already sent, this is the answer: closed once the rest of this
        // input is processed (handle_input)
        self.goaway_received = Some(g);
    }

    pub(super) fn remember_ping(&mut self, id: u64) {
        if self.pings.len() == MAX_OUTSTANDING_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back(id);
    }

    /// spec §11 [[limit.ping-rate]]: at most `max_ping_rate` PINGs answered per
    /// one-second window; the one beyond is a connection error FLOOD.
    fn count_ping(&mut self) -> Result<(), Error> {
        let (rate, now) = (self.config.max_ping_rate, self.now);
        if over_rate(rate, now, &mut self.ping_window, &mut self.pings_in_window) {
            return Err(err(
                ErrorCode::FLOOD,
                "PING rate above the configured limit",
            ));
        }
        Ok(())
    }

    /// spec §5.7 [[error.rate]]: at most `max_error_rate` ERROR packets accepted per
    /// one-second window; the one beyond is a connection error FLOOD.
    fn count_error(&mut self) -> Result<(), Error> {
        let (rate, now) = (self.config.max_error_rate, self.now);
        if over_rate(
            rate,
            now,
            &mut self.error_window,
            &mut self.errors_in_window,
        ) {
            return Err(err(
                ErrorCode::FLOOD,
                "ERROR rate above the configured limit",
            ));
        }
        Ok(())
    }

    fn push(&mut self, event: Event, credit: Option<u16>) {
        let closing = matches!(event, Event::Closed { .. });
        self.queued_bytes += super::held_bytes(&event);
        self.events.push_back(Queued { event, credit });
        if credit.is_some() {
            return;
        }
        self.uncredited += 1;
        if closing {
            return;
        }
        // Events without credit are bounded only by the application taking them: one
        // beyond the configured bound is a flood (an ERROR costs the peer no credit).
        if self.uncredited > self.config.max_queued_events {
            self.fail(ErrorCode::FLOOD, "events not consumed: too many queued");
        }
    }
}

/// Counts one packet in a one-second window that starts with the first packet after the
/// previous window ended; true for a packet beyond `rate` (0: no limit).
fn over_rate(rate: u32, now: Duration, window: &mut Duration, count: &mut u32) -> bool {
    if rate == 0 {
        return false;
    }
    if now.saturating_sub(*window) >= Duration::from_secs(1) {
        *window = now;
        *count = 0;
    }
    *count = count.saturating_add(1);
    *count > rate
}

//! The send path: DATA, PING, forwarded packets and ERROR reports.

use std::time::Duration;

use super::{Connection, SendError, SendOptions, State};
use crate::control::{Control, Ping, Role};
use crate::error::ErrorCode;
use crate::header::{Codec, Header, Kind, Route};
use crate::packet::Packet;

impl Connection {
    /// Queues one DATA packet with `payload` for `route` (§5.1).
    ///
    /// With the `compression` feature the payload is compressed with `opts.codec` when
    /// the peer announced it and it helps (§9.2). Fails, queuing nothing, when the
    /// connection is not established or is closing (§6.4 `[[close.no-data-after]]`), when
    /// the payload does not fit the peer's `max_payload` (§4.5 `[[hdr.length-send]]`),
    /// or when the peer's credit does not cover it (§8 `[[flow.send]]`): there is no
    /// unbounded send queue; retry after the peer's CREDIT arrives.
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair, SendError, SendOptions};
    /// use fleetwire::Route;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// pair.a.send_data(Route::new(0, 0, 0), b"hello", SendOptions::default()).unwrap();
    /// let huge = vec![0u8; 70_000];
    /// assert_eq!(pair.a.send_data(Route::default(), &huge, SendOptions::default()), Err(SendError::TooLarge));
    /// ```
    pub fn send_data(
        &mut self,
        route: Route,
        payload: &[u8],
        opts: SendOptions,
    ) -> Result<(), SendError> {
        self.check_data_sendable()?;
        let start = self.tx.len();
        self.tx.extend_from_slice(&[0; Header::BASE_LEN]);
        let result = self.encode_data(route, payload, opts, start);
        if result.is_err() {
            self.tx.truncate(start);
        }
        result
    }

    /// Writes payload then header at `start` (where 8 placeholder bytes are).
    fn encode_data(
        &mut self,
        route: Route,
        payload: &[u8],
        opts: SendOptions,
        start: usize,
    ) -> Result<(), SendError> {
        let peer = self.peer.ok_or(SendError::NotEstablished)?;
        let codec = self.encode_payload(payload, opts)?;
        let wire_len = self.tx.len() - start - Header::BASE_LEN;
        // spec §4.5 [[hdr.length-send]]: never above the peer's max_payload
        let length = u16::try_from(wire_len).map_err(|_| SendError::TooLarge)?;
        if length > peer.max_payload {
            return Err(SendError::TooLarge);
        }
        // spec §8 [[flow.send]]: enough credit of both kinds, else refuse
        if !self.send_credit.allows(length) {
            return Err(SendError::NoCredit);
        }
        self.send_credit.consume(length);
        let header = Header {
            // spec §4.4 [[hdr.never-compress]]: N = 1 only with Cod = 0
            never_compress: opts.never_compress,
            codec,
            ..Header::data(route, length)
        };
        let mut buf = [0u8; Header::MAX_LEN];
        let n = header.encode(&mut buf);
        self.tx[start..start + n].copy_from_slice(&buf[..n]);
        self.last_tx = self.now;
        Ok(())
    }

    #[cfg(feature = "compression")]
    fn encode_payload(&mut self, payload: &[u8], opts: SendOptions) -> Result<Codec, SendError> {
        let peer = self.peer.ok_or(SendError::NotEstablished)?;
        let limits = crate::compress::DecompressLimits {
            max_decompressed: peer.max_decompressed,
            max_ratio: peer.max_ratio,
            codecs: peer.codecs,
        };
        // spec §9.2 [[comp.send-negotiated]] [[comp.never]] [[comp.threshold]]
        self.compressor
            .encode_payload(
                opts.codec,
                opts.never_compress,
                &limits,
                payload,
                &mut self.tx,
            )
            .map_err(|_| SendError::TooLarge)
    }

    #[cfg(not(feature = "compression"))]
    fn encode_payload(&mut self, payload: &[u8], _opts: SendOptions) -> Result<Codec, SendError> {
        if payload.len() > usize::from(u16::MAX) {
            return Err(SendError::TooLarge);
        }
        self.tx.extend_from_slice(payload);
        Ok(Codec::None)
    }

    fn check_data_sendable(&self) -> Result<(), SendError> {
        match self.state {
            State::Closed => Err(SendError::Closing),
            // spec §6.4 [[close.no-data-after]]
            State::Established if self.goaway_sent_at.is_some() => Err(SendError::Closing),
            State::Established => Ok(()),
            State::AwaitPreface | State::AwaitHello => Err(SendError::NotEstablished),
        }
    }

    /// Queues a PING (§5.3) stamped with `now` in microseconds and returns its id; the
    /// answer arrives as [`Event::Pong`](super::Event::Pong). Permitted once our HELLO is
    /// queued (always) and while DRAINING; does nothing once closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Event, Pair};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// let id = pair.a.send_ping(pair.now);
    /// pair.drive();
    /// let pong = std::iter::from_fn(|| pair.a.poll_event()).find(|e| matches!(e, Event::Pong { .. }));
    /// assert_eq!(pong, Some(Event::Pong { id, rtt: Duration::ZERO }));
    /// ```
    pub fn send_ping(&mut self, now: Duration) -> u64 {
        self.now = self.now.max(now);
        let id = self.next_ping_id;
        self.next_ping_id = self.next_ping_id.wrapping_add(1);
        if self.state == State::Closed {
            return id;
        }
        let timestamp = u64::try_from(self.now.as_micros()).unwrap_or(u64::MAX);
        self.queue_control(Control::Ping(Ping { id, timestamp }));
        self.remember_ping(id);
        id
    }

    /// (Proxies.) Writes a packet forwarded from another connection (§7.3): header and
    /// payload exactly as given — normally the `packet` of an
    /// [`Event::Forward`](super::Event::Forward), already stamped. DATA needs the peer's
    /// credit (§8) and is refused while closing; ERROR needs no credit and is permitted
    /// while DRAINING. On `Err` nothing is queued; the proxy should then report
    /// UNREACHABLE on the ingress connection (§7.3).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fleetwire::connection::{Config, Event, Pair};
    /// use fleetwire::{Packet, Route};
    /// // each side trusts the other by configuration (§7.4 [[src.auth]]): the proxy the
    /// // address its route names, the node a trusted address
    /// let trusting = |c: Config| c.with_trust_source(true);
    /// let mut egress = Pair::new(trusting(Config::proxy(9)), trusting(Config::node(2)));
    /// egress.drive();
    /// let mut packet = Packet::data(Route::new(2, 0, 0), Bytes::from_static(b"hi"));
    /// packet.header.source = Some(5); // stamped by the ingress connection
    /// egress.a.forward(&packet).unwrap();
    /// ```
    pub fn forward(&mut self, packet: &Packet) -> Result<(), SendError> {
        let header = packet.header;
        if usize::from(header.length) != packet.payload.len() {
            return Err(SendError::NotRoutable);
        }
        match header.kind {
            Kind::Data => self.check_data_sendable()?,
            Kind::Error if self.state == State::Closed => return Err(SendError::Closing),
            Kind::Error if self.state != State::Established => {
                return Err(SendError::NotEstablished)
            }
            Kind::Error => {}
            _ => return Err(SendError::NotRoutable),
        }
        let peer = self.peer.ok_or(SendError::NotEstablished)?;
        // spec §4.5 [[hdr.length-send]]
        if header.length > peer.max_payload {
            return Err(SendError::TooLarge);
        }
        if header.kind == Kind::Data {
            // spec §8 [[flow.send]]
            if !self.send_credit.allows(header.length) {
                return Err(SendError::NoCredit);
            }
            self.send_credit.consume(header.length);
        }
        // spec §7.3 [[route.forward-unchanged]]: header and payload as they are
        packet.encode_to_vec(&mut self.tx);
        self.last_tx = self.now;
        // spec §11 [[limit.proxy-polices]]: an ERROR with a connection-error code for a
        // client (FLOOD, TOO_MANY_ERRORS of [[limit.per-source]]) closes that client —
        // as the node would have closed a direct connection — never the link it came on
        if header.kind == Kind::Error && peer.role == Role::Client {
            if let Some(code) = packet.payload.get(..2) {
                let code = ErrorCode(u16::from_be_bytes([code[0], code[1]]));
                if (0x0001..=0x00FF).contains(&code.0) {
                    self.fail(code, "a node reported this client");
                }
            }
        }
        Ok(())
    }

    /// (Proxies.) Reports that a packet received on this connection could not be
    /// forwarded: queues ERROR with `code` (NO_ROUTE or UNREACHABLE, §7.3) to the
    /// packet's source, carrying `received`, the header as it arrived (the `received` of
    /// [`Event::Forward`](super::Event::Forward)). Nothing is sent about an ERROR packet
    /// (§5.7 `[[error.no-loop]]`). Counts against the packet error budget (§12.3), which
    /// may close the connection with TOO_MANY_ERRORS.
    ///
    /// ```
    /// use fleetwire::connection::{Config, Event, Pair, SendOptions};
    /// use fleetwire::{ErrorCode, Route};
    /// let mut pair = Pair::new(Config::client(), Config::proxy(9).with_peer_id(300));
    /// pair.drive();
    /// pair.a.send_data(Route::new(42, 0, 0), b"to 42", SendOptions::default()).unwrap();
    /// pair.drive();
    /// let Some(Event::Forward { packet, received }) = pair.b.poll_event().and(pair.b.poll_event())
    /// else { panic!() };
    /// assert_eq!(packet.header.source, Some(300));
    /// pair.b.report_unroutable(&received, ErrorCode::NO_ROUTE);
    /// pair.drive();
    /// let Some(Event::PacketError { code, .. }) = pair.a.poll_event().and(pair.a.poll_event())
    /// else { panic!() };
    /// assert_eq!(code, ErrorCode::NO_ROUTE);
    /// ```
    pub fn report_unroutable(&mut self, received: &Header, code: ErrorCode) {
        if self.state != State::Established {
            return;
        }
        let source = self.source_of(received);
        if let Err(e) = self.packet_error(received, source, code, "cannot forward") {
            self.fail(e.code(), e.detail());
        }
    }

    /// (Proxies.) Reports NO_ROUTE for a packet received on this connection whose
    /// Destination Node is an id of the range this proxy attributes to clients that no
    /// client holds now: the client has gone. Unlike
    /// [`report_unroutable`](Connection::report_unroutable) it never counts against the
    /// packet error budget (spec §12.3 `[[err.budget-gone-client]]`): the peer — a node
    /// answering that client, typically — could not know, and counting it would let any
    /// client close a node's link by leaving with answers on their way.
    ///
    /// ```
    /// use fleetwire::connection::{Config, Event, Pair, SendOptions};
    /// use fleetwire::{ErrorCode, Route};
    /// let mut proxy = Config::proxy(9);
    /// proxy.limits.max_packet_errors = 1;
    /// proxy.trust_source = true; // the route's node, at its configured address
    /// // both ends of a configured link (§7.4 src.auth)
    /// let mut pair = Pair::new(Config::node(2).with_trust_source(true), proxy);
    /// pair.drive();
    /// for _ in 0..3 {
    ///     // the node answers client 40000, which has gone
    ///     pair.a.send_data(Route::new(40000, 1, 0), b"echo", SendOptions::default()).unwrap();
    ///     pair.drive();
    ///     let received = loop {
    ///         match pair.b.poll_event() {
    ///             Some(Event::Forward { received, .. }) => break received,
    ///             Some(_) => continue,
    ///             None => panic!("no forward"),
    ///         }
    ///     };
    ///     pair.b.report_client_gone(&received);
    ///     pair.drive();
    /// }
    /// assert!(!pair.b.is_closed(), "three NO_ROUTEs to a departed client, budget 1");
    /// ```
    pub fn report_client_gone(&mut self, received: &Header) {
        if self.state != State::Established {
            return;
        }
        let source = self.source_of(received);
        self.report(
            received,
            source,
            ErrorCode::NO_ROUTE,
            "no such client (gone)",
        );
    }
}

//! The timers of spec §6.5 and the keepalive of §6.2.

use std::time::Duration;

use super::{Connection, State};
use crate::deframer::Partial;
use crate::error::ErrorCode;

/// The timers, in the order they are checked when several expire at once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Timer {
    Handshake,
    Header,
    Packet,
    Idle,
    Drain,
    Keepalive,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Connection {
    /// Each armed timer and its deadline.
    fn deadlines(&self) -> [(Timer, Option<Duration>); 6] {
        let limits = &self.config.limits;
        let open = self.state != State::Closed;
        let partial = self.deframer.partial();
        let keepalive = self
            .peer
            .map(|p| p.idle_timeout_ms)
            .filter(|&t| t != 0 && self.state == State::Established)
            .map(|t| self.last_tx + ms(u64::from(t)) / 2);
        [
            (
                Timer::Handshake,
                matches!(self.state, State::AwaitPreface | State::AwaitHello)
                    .then(|| self.opened_at + ms(limits.handshake_timeout_ms)),
            ),
            (
                Timer::Header,
                (open && partial == Partial::Header)
                    .then(|| self.packet_started + ms(limits.header_timeout_ms)),
            ),
            (
                Timer::Packet,
                (open && partial != Partial::Empty)
                    .then(|| self.packet_started + ms(limits.packet_timeout_ms)),
            ),
            (
                Timer::Idle,
                (open && limits.idle_timeout_ms != 0)
                    .then(|| self.last_rx + ms(u64::from(limits.idle_timeout_ms))),
            ),
            (
                Timer::Drain,
                // spec §6.5: since our GOAWAY NO_ERROR or the peer's, whichever first
                self.goaway_sent_at
                    .into_iter()
                    .chain(self.goaway_received.as_ref().map(|g| g.at))
                    .min()
                    .filter(|_| open)
                    .map(|at| at + ms(limits.drain_timeout_ms)),
            ),
            (Timer::Keepalive, keepalive),
        ]
    }

    /// The earliest deadline at which [`handle_timeout`](Connection::handle_timeout) must
    /// be called, or `None` when no timer is armed (closed). A timer expires when `now`
    /// reaches its deadline.
    ///
    /// Timers (§6.5): handshake (until the peer's HELLO), idle (our `idle_timeout_ms`
    /// since the last byte received), header and packet (since the first byte of an
    /// incomplete header or packet), drain (since the first GOAWAY NO_ERROR, ours or the
    /// peer's), and keepalive: a
    /// PING when we have queued nothing for half the peer's idle timeout (§6.2
    /// `[[neg.keepalive]]`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Config, Connection};
    /// let mut conn = Connection::new(Config::node(1), Duration::from_secs(100));
    /// assert_eq!(conn.poll_timeout(), Some(Duration::from_secs(110)));
    /// conn.handle_timeout(Duration::from_secs(110));
    /// assert!(conn.is_closed());
    /// assert_eq!(conn.poll_timeout(), None);
    /// ```
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.deadlines().iter().filter_map(|&(_, d)| d).min()
    }

    /// Handles every timer expired at `now`: closes with TIMEOUT for the handshake,
    /// header, packet and idle timers (§6.5 `[[timeout.close]]`), closes after the drain
    /// timer, sends a keepalive PING. Calling it early is harmless.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::{Config, Connection, Event};
    /// use fleetwire::ErrorCode;
    /// let mut conn = Connection::new(Config::client(), Duration::ZERO);
    /// conn.handle_timeout(Duration::from_millis(9_999));
    /// assert!(!conn.is_closed());
    /// conn.handle_timeout(Duration::from_secs(10));
    /// let Some(Event::Closed { code, .. }) = conn.poll_event() else { panic!() };
    /// assert_eq!(code, ErrorCode::TIMEOUT);
    /// ```
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        // spec §6.5 [[timeout.first]]: expired timers in the order they expired (a drain
        // timer that expired before the idle timer closes without a TIMEOUT GOAWAY);
        // ties keep the order of `deadlines`
        let mut deadlines = self.deadlines();
        deadlines.sort_by_key(|&(_, d)| d.unwrap_or(Duration::MAX));
        for (timer, deadline) in deadlines {
            if self.state == State::Closed {
                return;
            }
            if deadline.is_none_or(|d| self.now < d) {
                continue;
            }
            match timer {
                // spec §6.5 [[timeout.close]]
                Timer::Handshake => self.fail(ErrorCode::TIMEOUT, "handshake timer expired"),
                Timer::Header => self.fail(ErrorCode::TIMEOUT, "header timer expired"),
                Timer::Packet => self.fail(ErrorCode::TIMEOUT, "packet timer expired"),
                Timer::Idle => self.fail(ErrorCode::TIMEOUT, "idle timer expired"),
                // spec §6.4 [[close.answer]]: the drain timer answers a GOAWAY we still
                // owe, then closes; after our own GOAWAY, it closes without a second one
                Timer::Drain => match self.goaway_received.take() {
                    Some(g) => {
                        self.queue_goaway(ErrorCode::NO_ERROR, "drain timer expired");
                        self.close_after_goaway(g);
                    }
                    None => {
                        let reason = core::mem::take(&mut self.close_reason);
                        self.finish(ErrorCode::NO_ERROR, false, reason, None);
                    }
                },
                // spec §6.2 [[neg.keepalive]]
                Timer::Keepalive => {
                    self.send_ping(self.now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Config, Event};
    use crate::control::{Control, Hello, Ping, Role};
    use crate::{Kind, Limits, PREFACE};

    const NS: Duration = Duration::from_nanos(1);

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    fn peer_open(idle_timeout_ms: u32) -> Vec<u8> {
        let mut hello = Hello::new(Role::Node, 2, &Limits::default(), 0);
        hello.idle_timeout_ms = idle_timeout_ms;
        let mut v = PREFACE.to_vec();
        Control::Hello(hello).encode_packet(&mut v);
        v
    }

    fn closed(c: &mut Connection) -> Option<(ErrorCode, Option<u64>)> {
        std::iter::from_fn(|| c.poll_event()).find_map(|e| match e {
            Event::Closed {
                code, delivered, ..
            } => Some((code, delivered)),
            _ => None,
        })
    }

    /// A node that trusts its peer's claimed role (§7.4 `[[src.auth]]`, by configuration).
    fn trusting() -> Config {
        Config {
            require_auth: false,
            ..Config::node(1)
        }
    }

    /// A node established at `at` with a peer that wants no keepalive.
    fn established(at: Duration) -> Connection {
        let mut c = Connection::new(trusting(), at);
        c.handle_input(at, &peer_open(0));
        assert!(c.is_established());
        c
    }

    #[test]
    fn handshake_timer_fires_at_deadline_not_before() {
        let mut c = Connection::new(Config::node(1), s(1));
        assert_eq!(c.poll_timeout(), Some(s(11)));
        c.handle_timeout(s(11) - NS);
        assert!(!c.is_closed());
        c.handle_timeout(s(11));
        assert_eq!(closed(&mut c), Some((ErrorCode::TIMEOUT, None)));
    }

    #[test]
    fn handshake_timer_disarmed_by_hello() {
        let mut c = Connection::new(trusting(), s(0));
        c.handle_input(s(9), &peer_open(0));
        c.handle_timeout(s(10));
        assert!(!c.is_closed());
        assert_eq!(
            c.poll_timeout(),
            Some(s(69)),
            "idle timer from the last byte"
        );
    }

    #[test]
    fn input_at_the_deadline_is_too_late() {
        let mut c = Connection::new(Config::node(1), s(0));
        c.handle_input(s(10), &peer_open(0));
        assert!(!c.is_established());
        assert_eq!(closed(&mut c), Some((ErrorCode::TIMEOUT, None)));
    }

    #[test]
    fn idle_timer_restarts_on_every_byte() {
        let mut c = established(s(0));
        c.handle_input(s(5), &[0x12]);
        c.handle_input(s(6), &[0x00]);
        // header timer (5 s from the first byte) is now the earliest
        assert_eq!(c.poll_timeout(), Some(s(10)));
        let mut c = established(s(0));
        c.handle_input(s(5), &{
            let mut v = Vec::new();
            Control::Ping(Ping {
                id: 1,
                timestamp: 0,
            })
            .encode_packet(&mut v);
            v
        });
        assert_eq!(c.poll_timeout(), Some(s(65)));
        c.handle_timeout(s(65) - NS);
        assert!(!c.is_closed());
        c.handle_timeout(s(65));
        assert_eq!(closed(&mut c), Some((ErrorCode::TIMEOUT, None)));
    }

    #[test]
    fn header_timer_fires_at_deadline_unless_header_complete() {
        let mut c = established(s(0));
        c.handle_input(s(1), &[0x10, 0x00, 0x00]);
        assert_eq!(c.poll_timeout(), Some(s(6)));
        c.handle_timeout(s(6) - NS);
        assert!(!c.is_closed());
        c.handle_input(s(6), &[0x04, 0, 0, 0, 0]);
        assert_eq!(closed(&mut c), Some((ErrorCode::TIMEOUT, None)));
    }

    #[test]
    fn packet_timer_fires_at_deadline_unless_packet_complete() {
        let mut c = established(s(0));
        // complete header announcing 4 bytes, then 3 of them
        c.handle_input(s(1), &[0x10, 0x00, 0x00, 0x04, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(c.poll_timeout(), Some(s(31)));
        c.handle_input(s(31) - NS, &[]);
        c.handle_timeout(s(31) - NS);
        assert!(!c.is_closed());
        c.handle_timeout(s(31));
        assert_eq!(closed(&mut c), Some((ErrorCode::TIMEOUT, None)));
    }

    #[test]
    fn completed_packet_disarms_header_and_packet_timers() {
        let mut c = established(s(0));
        c.handle_input(s(1), &[0x10, 0x00, 0x00, 0x01, 0, 0, 0]);
        c.handle_input(s(2), &[0, 9]);
        assert_eq!(c.poll_timeout(), Some(s(62)));
    }

    #[test]
    fn drain_timer_closes_without_peer_goaway() {
        let mut c = established(s(0));
        c.close(s(2), "bye");
        assert_eq!(c.poll_timeout(), Some(s(7)));
        c.handle_timeout(s(7) - NS);
        assert!(c.is_draining());
        let mut out = Vec::new();
        c.poll_transmit(&mut out);
        c.handle_timeout(s(7));
        assert_eq!(closed(&mut c), Some((ErrorCode::NO_ERROR, None)));
        assert_eq!(c.poll_transmit(&mut out), 0, "no second GOAWAY");
    }

    #[test]
    fn keepalive_ping_at_half_the_peer_idle_timeout() {
        let mut c = Connection::new(trusting(), s(0));
        c.handle_input(s(0), &peer_open(4_000));
        let mut out = Vec::new();
        c.poll_transmit(&mut out);
        assert_eq!(c.poll_timeout(), Some(s(2)));
        c.handle_timeout(s(2) - NS);
        assert_eq!(c.poll_transmit(&mut out), 0);
        c.handle_timeout(s(2));
        out.clear();
        c.poll_transmit(&mut out);
        assert_eq!(out[0] & 0x0F, Kind::Ping as u8);
        assert_eq!(c.poll_timeout(), Some(s(4)));
    }

    #[test]
    fn closed_connection_has_no_timer() {
        let mut c = established(s(0));
        c.handle_input(s(0), &[0x1F, 0, 0, 0, 0, 0, 0, 0]);
        assert!(c.is_closed());
        assert_eq!(c.poll_timeout(), None);
    }
}

//! Flow-control accounting (spec §8), both directions.

use crate::control::Credit;

/// Credit the peer granted us: what we may still send (§8 `[[flow.send]]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct SendCredit {
    pub(crate) packets: u32,
    pub(crate) bytes: u32,
}

impl SendCredit {
    /// Whether a DATA packet of `len` payload bytes fits.
    pub(crate) fn allows(&self, len: u16) -> bool {
        self.packets >= 1 && self.bytes >= u32::from(len)
    }

    /// Consumes one packet and `len` bytes; call only after [`SendCredit::allows`].
    pub(crate) fn consume(&mut self, len: u16) {
        self.packets = self.packets.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(u32::from(len));
    }

    /// Adds a received CREDIT. `Err` if outstanding credit would exceed 2^32 − 1
    /// (§8 `[[flow.overflow]]`).
    pub(crate) fn add(&mut self, c: Credit) -> Result<(), ()> {
        let packets = self.packets.checked_add(c.packets).ok_or(())?;
        let bytes = self.bytes.checked_add(c.bytes).ok_or(())?;
        *self = SendCredit { packets, bytes };
        Ok(())
    }
}

/// Credit we granted the peer: what it may still send, and what the application has
/// consumed but we have not yet granted back (§8 `[[flow.grant]]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RecvCredit {
    initial: Credit,
    /// Granted and not yet used by the peer.
    avail: SendCredit,
    /// Used by the peer and consumed by the application, not yet granted back.
    consumed: SendCredit,
    /// Largest payload the peer may send (our `max_payload`).
    max_payload: u16,
}

impl RecvCredit {
    pub(crate) fn new(packets: u32, bytes: u32, max_payload: u16) -> RecvCredit {
        RecvCredit {
            initial: Credit { packets, bytes },
            avail: SendCredit { packets, bytes },
            consumed: SendCredit::default(),
            max_payload,
        }
    }

    /// Takes a DATA packet of `len` bytes from the peer's credit; `Err` when it exceeds
    /// the credit granted (§8 `[[flow.exceed]]`).
    pub(crate) fn receive(&mut self, len: u16) -> Result<(), ()> {
        if !self.avail.allows(len) {
            return Err(());
        }
        self.avail.consume(len);
        Ok(())
    }

    /// The application consumed a packet of `len` bytes (or it was discarded).
    pub(crate) fn consumed(&mut self, len: u16) {
        self.consumed.packets = self.consumed.packets.saturating_add(1);
        self.consumed.bytes = self.consumed.bytes.saturating_add(u32::from(len));
    }

    /// A CREDIT to send, if enough has been consumed: half the initial window of packets
    /// or bytes; or, once the application has consumed everything received, whatever
    /// was consumed if the peer might be unable to send a full-size packet (otherwise a
    /// window of `initial_credit_bytes` close to `max_payload` could deadlock).
    pub(crate) fn grant(&mut self) -> Option<Credit> {
        let c = self.consumed;
        if c.packets == 0 && c.bytes == 0 {
            return None;
        }
        let half_packets = (self.initial.packets / 2).max(1);
        let half_bytes = (self.initial.bytes / 2).max(1);
        let caught_up = self.avail.packets + c.packets == self.initial.packets
            && self.avail.bytes + c.bytes == self.initial.bytes;
        let low = self.avail.bytes < u32::from(self.max_payload) || self.avail.packets == 0;
        if c.packets < half_packets && c.bytes < half_bytes && !(caught_up && low) {
            return None;
        }
        // Outstanding = avail + consumed ≤ initial ≤ 2^31 − 1: never overflows (§8).
        self.avail.packets += c.packets;
        self.avail.bytes += c.bytes;
        self.consumed = SendCredit::default();
        Some(Credit {
            packets: c.packets,
            bytes: c.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_accepts_exactly_the_credit_and_rejects_one_more() {
        let mut r = RecvCredit::new(2, 2048, 1024);
        assert!(r.receive(1024).is_ok());
        assert!(r.receive(1024).is_ok());
        assert!(r.receive(0).is_err(), "no packet credit left");
        let mut r = RecvCredit::new(10, 1024, 1024);
        assert!(r.receive(1000).is_ok());
        assert!(r.receive(25).is_err(), "one byte over");
        assert!(r.receive(24).is_ok());
    }

    #[test]
    fn grants_back_at_half_the_window() {
        let mut r = RecvCredit::new(4, 1 << 20, 1024);
        r.receive(1).unwrap();
        r.consumed(1);
        assert_eq!(r.grant(), None);
        r.receive(1).unwrap();
        r.consumed(1);
        assert_eq!(
            r.grant(),
            Some(Credit {
                packets: 2,
                bytes: 2
            })
        );
        assert_eq!(r.grant(), None);
    }

    #[test]
    fn grants_when_peer_cannot_send_a_full_packet() {
        let mut r = RecvCredit::new(100, 1024, 1024);
        r.receive(400).unwrap();
        r.consumed(400);
        assert_eq!(
            r.grant(),
            Some(Credit {
                packets: 1,
                bytes: 400
            })
        );
    }

    #[test]
    fn exhausted_window_is_not_granted_packet_by_packet() {
        let mut r = RecvCredit::new(4, 1 << 20, 1024);
        for _ in 0..4 {
            r.receive(10).unwrap();
        }
        r.consumed(10);
        assert_eq!(r.grant(), None, "three packets still unconsumed");
        r.consumed(10);
        assert_eq!(
            r.grant(),
            Some(Credit {
                packets: 2,
                bytes: 20
            })
        );
    }

    #[test]
    fn send_credit_overflow_is_an_error() {
        let mut s = SendCredit {
            packets: u32::MAX - 1,
            bytes: 0,
        };
        assert!(s
            .add(Credit {
                packets: 1,
                bytes: 0
            })
            .is_ok());
        assert!(s
            .add(Credit {
                packets: 1,
                bytes: 0
            })
            .is_err());
        assert_eq!(s.packets, u32::MAX, "unchanged after a failed add");
        let mut s = SendCredit {
            packets: 0,
            bytes: u32::MAX,
        };
        assert!(s
            .add(Credit {
                packets: 0,
                bytes: 1
            })
            .is_err());
    }
}

//! One connection's shared half: its bounded send queue (the application's messages,
//! forwarded packets and bounced headers), receive-queue accounting and counters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;

use super::stats::StatsCell;
use super::types::{ConnId, Outgoing};
use crate::header::Header;
use crate::packet::Packet;

/// Bytes charged per queued message on top of its payload (bookkeeping, so that empty
/// messages also count against the byte budgets).
pub const QUEUE_ENTRY_OVERHEAD: usize = 64;

/// A connection's send queue: the application pushes, its IO thread takes it whole.
#[derive(Default)]
pub(crate) struct SendQueue {
    pub(crate) items: Vec<Outgoing>,
    /// (Proxy.) Packets forwarded from other connections, header and payload as they
    /// are written (spec §7.3); drained before `items`, in order.
    pub(crate) forwards: Vec<Forwarded>,
    /// (Proxy.) Headers, as received here, of packets this connection forwarded whose
    /// egress connection closed before writing them: each is answered with ERROR
    /// UNREACHABLE on this connection (spec §7.3 `[[route.egress-closed]]`).
    pub(crate) bounced: Vec<Header>,
    /// Messages accepted and not yet written to the connection (here and on the IO
    /// thread's side), and their charged bytes: the bound.
    pub(crate) packets: usize,
    pub(crate) bytes: usize,
    /// The IO thread has been told that items are waiting.
    pub(crate) scheduled: bool,
    /// No more sends accepted.
    pub(crate) closed: bool,
    /// A sink waiting for room.
    pub(crate) waker: Option<Waker>,
    /// A blocking sender waiting for room.
    pub(crate) waiting: bool,
    /// Charged bytes of the message last refused for want of room (0 once one is
    /// accepted): the room a waiting sender needs.
    pub(crate) refused: usize,
}

impl SendQueue {
    /// Whether a sender waiting for room can go on: the queue is empty (it takes one
    /// message of any size), or below its packet bound with room for the message last
    /// refused (the smallest message when none was). Not merely below the byte bound: a
    /// sender woken then would be refused again, and wait again, in a loop.
    pub(crate) fn has_room(&self, max_packets: usize, max_bytes: usize) -> bool {
        let want = self.refused.max(QUEUE_ENTRY_OVERHEAD);
        self.packets == 0 || self.packets < max_packets && self.bytes + want <= max_bytes
    }
}

/// One connection's shared half.
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    pub(crate) thread: usize,
    pub(crate) sendq: Mutex<SendQueue>,
    pub(crate) send_cv: Condvar,
    /// Bytes of this connection's messages waiting in the application queue.
    pub(crate) app_bytes: AtomicUsize,
    /// The IO thread stopped taking packets because a budget was reached.
    pub(crate) paused: AtomicBool,
    pub(crate) stats: StatsCell,
}

impl ConnShared {
    pub(crate) fn new(id: ConnId, thread: usize) -> ConnShared {
        ConnShared {
            id,
            thread,
            sendq: Mutex::new(SendQueue::default()),
            send_cv: Condvar::new(),
            app_bytes: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            stats: StatsCell::default(),
        }
    }
}

/// A packet queued for an egress connection, with what its ingress connection needs to
/// answer it should it never be written (spec §7.3 `[[route.egress-closed]]`).
#[derive(Clone)]
pub(crate) struct Forwarded {
    /// The packet, stamped (§7.4), as it is written.
    pub(crate) packet: Packet,
    /// Its header as the ingress connection received it (§5.7).
    pub(crate) received: Header,
    /// The ingress connection.
    pub(crate) from: ConnId,
    /// The ingress connection's peer is a client (its packets wait for room instead of
    /// being refused, spec §7.3 `[[route.fair-share]]`).
    pub(crate) from_client: bool,
    /// What it holds, charged while it waits (released on drop).
    #[allow(dead_code)] // held for its Drop
    pub(crate) charge: Charge,
}

/// The counters a forwarded packet is charged to while it exists: its ingress
/// connection's own and the proxy's totals. One per ingress connection, shared by its
/// packets' charges, so that a charge holds one reference, not one per counter (each
/// reference count is an atomic operation at both ends of a packet's life).
pub(crate) struct Charges {
    /// Bytes of this ingress connection's packets waiting in egress queues.
    pub(crate) ingress: AtomicUsize,
    /// The proxy's total of those, all connections.
    all: Arc<AtomicUsize>,
    /// The proxy's total of answers queued for clients.
    to_clients: Arc<AtomicUsize>,
}

impl Charges {
    pub(crate) fn new(all: &Arc<AtomicUsize>, to_clients: &Arc<AtomicUsize>) -> Charges {
        Charges {
            ingress: AtomicUsize::new(0),
            all: all.clone(),
            to_clients: to_clients.clone(),
        }
    }
}

/// Bytes a forwarded packet holds, charged to its ingress connection and to the
/// proxy's total while it exists (released when it is written, bounced or dropped).
pub(crate) struct Charge {
    counters: Arc<Charges>,
    /// (An answer queued for a client.) Charged to the proxy's total of such answers.
    to_clients: bool,
    cost: usize,
}

impl Charge {
    pub(crate) fn new(counters: &Arc<Charges>, cost: usize) -> Charge {
        counters.ingress.fetch_add(cost, Ordering::Relaxed);
        counters.all.fetch_add(cost, Ordering::Relaxed);
        Charge {
            counters: counters.clone(),
            to_clients: false,
            cost,
        }
    }

    /// Bytes the ingress connection has charged now (this charge included).
    pub(crate) fn held_by_ingress(&self) -> usize {
        self.counters.ingress.load(Ordering::Relaxed)
    }

    /// Charges the packet to the proxy's total of answers queued for clients too
    /// (once), while it exists.
    pub(crate) fn charge_to_clients(&mut self) {
        if !self.to_clients {
            self.counters
                .to_clients
                .fetch_add(self.cost, Ordering::Relaxed);
            self.to_clients = true;
        }
    }
}

impl Clone for Charge {
    fn clone(&self) -> Charge {
        let mut c = Charge::new(&self.counters, self.cost);
        if self.to_clients {
            c.charge_to_clients();
        }
        c
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let c = &self.counters;
        c.ingress.fetch_sub(self.cost, Ordering::Relaxed);
        c.all.fetch_sub(self.cost, Ordering::Relaxed);
        if self.to_clients {
            c.to_clients.fetch_sub(self.cost, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(packets: usize, bytes: usize, refused: usize) -> SendQueue {
        SendQueue {
            packets,
            bytes,
            refused,
            ..SendQueue::default()
        }
    }

    #[test]
    fn a_charge_holds_its_cost_on_every_counter_until_dropped() {
        let (all, to_clients) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = Arc::new(Charges::new(&all, &to_clients));
        let held = |c: &Charges| {
            let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
            [load(&c.ingress), load(&all), load(&to_clients)]
        };
        let a = Charge::new(&counters, 100);
        let mut b = Charge::new(&counters, 10);
        assert_eq!(held(&counters), [110, 110, 0]);
        assert_eq!(b.held_by_ingress(), 110);
        // charged to the clients' total once, however often asked
        b.charge_to_clients();
        b.charge_to_clients();
        assert_eq!(held(&counters), [110, 110, 10]);
        // a clone is charged as its original
        let c = b.clone();
        assert_eq!(held(&counters), [120, 120, 20]);
        drop(b);
        assert_eq!(held(&counters), [110, 110, 10]);
        drop((a, c));
        assert_eq!(held(&counters), [0, 0, 0]);
        // one reference per charge, none left behind
        assert_eq!(Arc::strong_count(&counters), 1);
    }

    #[test]
    fn room_is_room_for_the_message_last_refused() {
        let (max_packets, max_bytes) = (10, 1000);
        // nothing refused: room for the smallest message, exactly
        let smallest = QUEUE_ENTRY_OVERHEAD;
        assert!(queue(1, max_bytes - smallest, 0).has_room(max_packets, max_bytes));
        assert!(!queue(1, max_bytes - smallest + 1, 0).has_room(max_packets, max_bytes));
        // a refused 300-byte charge: room once it fits exactly, not one byte before
        assert!(queue(1, 700, 300).has_room(max_packets, max_bytes));
        assert!(!queue(1, 701, 300).has_room(max_packets, max_bytes));
        // the packet bound: one below it is room, at it is not
        assert!(queue(max_packets - 1, 0, 0).has_room(max_packets, max_bytes));
        assert!(!queue(max_packets, 0, 0).has_room(max_packets, max_bytes));
        // a message larger than the whole byte bound fits only an empty queue
        assert!(!queue(1, 0, max_bytes + 1).has_room(max_packets, max_bytes));
        assert!(queue(0, 0, max_bytes + 1).has_room(max_packets, max_bytes));
    }
}

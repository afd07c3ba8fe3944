//! Forwarding between connections (spec §7.3): a packet routed onto its egress
//! connection's queue, and packets a closed egress never wrote bounced back to their
//! ingress connections.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::queue::{ConnShared, Forwarded, QUEUE_ENTRY_OVERHEAD};
use super::routing::{Lookup, Table};
use super::shared::Inner;
use super::sync::lock;
use super::types::ConnId;
use crate::error::ErrorCode;
use crate::header::{Header, Kind};

/// Why a packet could not be routed (spec §7.3 `[[route.no-route]]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Unroutable {
    /// No route: NO_ROUTE, counted against the ingress connection's error budget.
    NoRoute,
    /// An id of the client range that no client holds: NO_ROUTE, never counted
    /// (spec §12.3 `[[err.budget-gone-client]]`).
    ClientGone,
    /// The route's connection is closed or its bounded queue full: UNREACHABLE.
    Unreachable,
}

impl Unroutable {
    pub(crate) fn code(self) -> ErrorCode {
        match self {
            Unroutable::NoRoute | Unroutable::ClientGone => ErrorCode::NO_ROUTE,
            Unroutable::Unreachable => ErrorCode::UNREACHABLE,
        }
    }
}

/// What became of a packet handed to [`route`].
pub(crate) enum Routed {
    /// On its egress connection's queue.
    Queued,
    /// (A client's packet.) The egress queue has no room for it now: the ingress keeps
    /// it and takes no more of its peer's packets until it is queued (spec §7.3
    /// `[[route.fair-share]]`: slowed through credit, never refused for others' packets).
    Wait(Forwarded),
    /// Answered with NO_ROUTE or UNREACHABLE.
    Refused(Unroutable),
}

/// Routes a packet an ingress connection received for another node (spec §7.3): queues
/// it for the egress connection the table names, has the ingress wait for room (a
/// client's packet), or returns why it cannot be routed (NO_ROUTE or UNREACHABLE,
/// `[[route.no-route]]`), counting a refused DATA packet on its route.
pub(crate) fn route(inner: &Inner, table: Option<&Table>, forward: Forwarded) -> Routed {
    let data = forward.packet.header.kind == Kind::Data;
    let (why, cell) = match table.map(|t| t.lookup(forward.packet.header.route.node)) {
        Some(Lookup::Egress(egress, cell, client)) => {
            match enqueue(inner, egress, client, forward) {
                Ok(()) => return Routed::Queued,
                Err(Full::Wait(f)) => return Routed::Wait(f),
                Err(Full::Refuse) => (Unroutable::Unreachable, Some(cell)),
            }
        }
        Some(Lookup::Unreachable(cell)) => (Unroutable::Unreachable, Some(cell)),
        Some(Lookup::NoRoute(cell)) => (Unroutable::NoRoute, Some(cell)),
        Some(Lookup::ClientGone(cell)) => (Unroutable::ClientGone, Some(cell)),
        None => (Unroutable::NoRoute, None),
    };
    if let (true, Some(cell)) = (data, cell) {
        cell.refused(why.code());
    }
    Routed::Refused(why)
}

/// Why [`enqueue`] did not queue a packet.
enum Full {
    /// Closed, or full for a packet that may not wait: UNREACHABLE.
    Refuse,
    /// Full for now, and the ingress (a client) waits.
    Wait(Forwarded),
}

/// Pushes a forwarded packet onto the egress connection's bounded queue (spec §7.3)
/// and tells the egress IO thread when its queue was idle.
///
/// Fair share (spec §7.3 `[[route.fair-share]]`): the packets of a client connection
/// that has packets waiting in egress queues may fill a link's egress queue only up to
/// the bound less a reserve of an eighth; the reserve is for clients with nothing
/// waiting, so a few clients that flood cannot fill a link that carries every client.
/// Likewise the answers queued for clients that do not read leave an eighth of the
/// proxy's total to the answers of clients that do. A client's packet for a link that
/// does not fit waits at its ingress (no credit back, §8) instead of being refused: the
/// queue is full of other clients' packets, not of its own. A packet from a node or
/// proxy link is refused (UNREACHABLE) as before: a link is never stalled behind one
/// destination.
fn enqueue(
    inner: &Inner,
    egress: &ConnShared,
    client: bool,
    forward: Forwarded,
) -> Result<(), Full> {
    let cfg = &inner.config;
    let cost = forward.packet.payload.len() + QUEUE_ENTRY_OVERHEAD;
    let waits = inner.routes.is_some() && forward.from_client && !client;
    let less_reserve = |bound: usize, busy: bool| if busy { bound - bound / 8 } else { bound };
    // a client that does not read holds at most its share, whatever its queue bound
    let bound = match client {
        true => cfg.send_queue_bytes.min(cfg.forward_share_bytes),
        false => cfg.send_queue_bytes,
    };
    let mut q = lock(&egress.sendq);
    if q.closed {
        return Err(Full::Refuse);
    }
    // The proxy's budget for answers queued for clients: those to clients that do not
    // read never drain; answers to a client whose queue is nearly empty have a reserve
    // the others cannot take. Packets for a link are bounded by the link's queue; the
    // proxy's total bounds packets between links (`global_forward_bytes` both).
    let global = cfg.global_forward_bytes;
    if client {
        let hoarding = q.bytes >= bound / 8;
        let held = inner.to_clients.load(Ordering::Relaxed) + cost;
        if held > less_reserve(global, hoarding) {
            return Err(Full::Refuse);
        }
    } else if !waits && inner.forwarding.load(Ordering::Relaxed) > global {
        return Err(Full::Refuse);
    }
    // the ingress's own packets waiting elsewhere (this packet's charge excluded)
    let busy = waits && forward.charge.held_by_ingress() > cost;
    if q.packets >= less_reserve(cfg.send_queue_packets, busy)
        || q.bytes + cost > less_reserve(bound, busy)
    {
        drop(q);
        // an answer to a client that does not read its answers is refused, as before
        // (its own queue is full of its own answers)
        return Err(if waits {
            Full::Wait(forward)
        } else {
            Full::Refuse
        });
    }
    let mut forward = forward;
    if client {
        forward.charge.charge_to_clients();
    }
    q.forwards.push(forward);
    q.packets += 1;
    q.bytes += cost;
    let schedule = !q.scheduled;
    q.scheduled = true;
    drop(q);
    if schedule {
        inner.io[egress.thread].ready(egress.id);
    }
    Ok(())
}

/// Hands packets that their closed egress connection never wrote back to their
/// ingress connections, whose IO threads answer each DATA packet with ERROR
/// UNREACHABLE to its source (spec §7.3 `[[route.egress-closed]]`). ERROR packets are
/// discarded silently (§5.7 `[[error.no-loop]]`), and so are packets whose ingress
/// connection is gone (there is nowhere to answer). Returns the DATA packets bounced.
pub(crate) fn bounce(inner: &Inner, unwritten: impl IntoIterator<Item = Forwarded>) -> u64 {
    let mut by_ingress: BTreeMap<ConnId, Vec<Header>> = BTreeMap::new();
    let mut data = 0;
    for f in unwritten {
        if f.packet.header.kind == Kind::Data {
            by_ingress.entry(f.from).or_default().push(f.received);
            data += 1;
        }
    }
    if by_ingress.is_empty() {
        return 0;
    }
    let ingress: Vec<(Arc<ConnShared>, Vec<Header>)> = {
        let conns = lock(&inner.conns);
        by_ingress
            .into_iter()
            .filter_map(|(id, headers)| Some((conns.get(&id)?.clone(), headers)))
            .collect()
    };
    for (conn, headers) in ingress {
        let mut q = lock(&conn.sendq);
        q.bounced.extend(headers);
        let schedule = !q.scheduled;
        q.scheduled = true;
        drop(q);
        if schedule {
            inner.io[conn.thread].ready(conn.id);
        }
    }
    data
}

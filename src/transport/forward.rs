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

/// Routes a packet an ingress connection received for another node (spec §7.3): queues
/// it for the egress connection the table names, or returns why it cannot (NO_ROUTE or
/// UNREACHABLE, `[[route.no-route]]`), counting a refused DATA packet on its route.
pub(crate) fn route(
    inner: &Inner,
    table: Option<&Table>,
    forward: Forwarded,
) -> Result<(), Unroutable> {
    let data = forward.packet.header.kind == Kind::Data;
    let (why, cell) = match table.map(|t| t.lookup(forward.packet.header.route.node)) {
        Some(Lookup::Egress(egress, cell, client)) => match enqueue(inner, egress, client, forward)
        {
            Ok(()) => return Ok(()),
            Err(()) => (Unroutable::Unreachable, Some(cell)),
        },
        Some(Lookup::Unreachable(cell)) => (Unroutable::Unreachable, Some(cell)),
        Some(Lookup::NoRoute(cell)) => (Unroutable::NoRoute, Some(cell)),
        Some(Lookup::ClientGone(cell)) => (Unroutable::ClientGone, Some(cell)),
        None => (Unroutable::NoRoute, None),
    };
    if let (true, Some(cell)) = (data, cell) {
        cell.refused(why.code());
    }
    Err(why)
}

/// Pushes a forwarded packet onto the egress connection's bounded queue (spec §7.3)
/// and tells the egress IO thread when its queue was idle. `Err` when the queue is
/// closed or full: the caller reports UNREACHABLE.
fn enqueue(inner: &Inner, egress: &ConnShared, client: bool, forward: Forwarded) -> Result<(), ()> {
    let cfg = &inner.config;
    let cost = forward.packet.payload.len() + QUEUE_ENTRY_OVERHEAD;
    // the proxy's total (this packet's charge included) within its budget
    if inner.forwarding.load(Ordering::Relaxed) > cfg.global_forward_bytes {
        return Err(());
    }
    // a client that does not read holds at most its share, whatever its queue bound
    let bound = match client {
        true => cfg.send_queue_bytes.min(cfg.forward_share_bytes),
        false => cfg.send_queue_bytes,
    };
    let mut q = lock(&egress.sendq);
    if q.closed || q.packets >= cfg.send_queue_packets || q.bytes + cost > bound {
        return Err(());
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

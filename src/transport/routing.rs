//! The proxy's routing state as the IO threads see it (spec §7.3): per-route counters,
//! the immutable routing table snapshots and their version, client id attribution.
//! Below the shared state: it knows connections only by their shared half.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::queue::ConnShared;
use super::sync::lock;
use super::types::ConnId;
use crate::error::ErrorCode;
use crate::idmap::IdMap;

/// One route's live counters, shared by the table snapshots and the route's egress
/// connections (see [`RouteStats`]).
#[derive(Default, Debug)]
pub(crate) struct RouteCell {
    pub(super) packets: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) no_route: AtomicU64,
    pub(super) unreachable: AtomicU64,
}

impl RouteCell {
    /// Adds DATA packets written to the route's connection (once per IO round).
    pub(crate) fn add_forwarded(&self, packets: u64, bytes: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one DATA packet refused with `code` (NO_ROUTE or UNREACHABLE, §7.3).
    pub(crate) fn refused(&self, code: ErrorCode) {
        let counter = if code == ErrorCode::NO_ROUTE {
            &self.no_route
        } else {
            &self.unreachable
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts DATA packets answered UNREACHABLE because the egress connection closed.
    pub(crate) fn add_unreachable(&self, packets: u64) {
        self.unreachable.fetch_add(packets, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RouteStats {
        let r = Ordering::Relaxed;
        RouteStats {
            packets: self.packets.load(r),
            bytes: self.bytes.load(r),
            no_route: self.no_route.load(r),
            unreachable: self.unreachable.load(r),
        }
    }
}

/// A configured route in a table snapshot.
#[derive(Clone)]
pub(super) struct NodeRoute {
    /// The egress connection (`None`: no connection now).
    pub(super) conn: Option<Arc<ConnShared>>,
    pub(super) cell: Arc<RouteCell>,
}

/// One snapshot of the routing table.
#[derive(Clone)]
pub(crate) struct Table {
    /// Configured routes: node id → egress connection and counters.
    pub(super) nodes: IdMap<NodeRoute>,
    /// Clients attributed an id by this proxy: id → their connection.
    pub(super) clients: IdMap<Arc<ConnShared>>,
    pub(super) client_ids: RangeInclusive<u16>,
    /// The counters of the client-id routes, aggregated.
    pub(super) client_cell: Arc<RouteCell>,
    /// The counters of destinations that match nothing.
    pub(super) unrouted: Arc<RouteCell>,
}

/// What the table says about a destination node, with the counters to charge.
pub(super) enum Lookup<'a> {
    NoRoute(&'a RouteCell),
    /// An id of the client range that no client holds: a client that has gone.
    ClientGone(&'a RouteCell),
    Unreachable(&'a RouteCell),
    /// The egress connection, its counters, and whether it is a client's.
    Egress(&'a Arc<ConnShared>, &'a RouteCell, bool),
}

impl Table {
    pub(super) fn lookup(&self, node: u16) -> Lookup<'_> {
        match self.nodes.get(&node) {
            Some(NodeRoute {
                conn: Some(c),
                cell,
            }) => Lookup::Egress(c, cell, false),
            Some(NodeRoute { conn: None, cell }) => Lookup::Unreachable(cell),
            None => match self.clients.get(&node) {
                Some(c) => Lookup::Egress(c, &self.client_cell, true),
                None if self.client_ids.contains(&node) => Lookup::ClientGone(&self.client_cell),
                None => Lookup::NoRoute(&self.unrouted),
            },
        }
    }
}

/// The routing state shared by the proxy and its IO threads.
pub(crate) struct RouteState {
    pub(super) version: AtomicU64,
    pub(super) table: Mutex<Arc<Table>>,
    pub(super) client_ids: RangeInclusive<u16>,
    pub(super) next_client: Mutex<u16>,
    /// The counters of the client-id routes, aggregated.
    pub(crate) client_cell: Arc<RouteCell>,
    pub(super) unrouted: Arc<RouteCell>,
    /// Peers trusted to stamp sources, by address ([`ProxyConfig::trusted_peers`]).
    pub(super) trusted: Vec<IpAddr>,
}

impl RouteState {
    pub(super) fn new(client_ids: RangeInclusive<u16>, trusted: &[IpAddr]) -> RouteState {
        let first = *client_ids.start();
        let client_cell = Arc::new(RouteCell::default());
        let unrouted = Arc::new(RouteCell::default());
        let table = Table {
            nodes: IdMap::default(),
            clients: IdMap::default(),
            client_ids: client_ids.clone(),
            client_cell: client_cell.clone(),
            unrouted: unrouted.clone(),
        };
        RouteState {
            version: AtomicU64::new(1),
            table: Mutex::new(Arc::new(table)),
            client_ids,
            next_client: Mutex::new(first),
            client_cell,
            unrouted,
            trusted: trusted.iter().map(IpAddr::to_canonical).collect(),
        }
    }

    /// Whether a connection to or from `peer` is a trusted link (spec §7.4
    /// `[[src.trust]]`): X = 1 from it is honoured when its role is proxy.
    pub(crate) fn trusts(&self, peer: SocketAddr) -> bool {
        self.trusted.contains(&peer.ip().to_canonical())
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The current table and its version, for an IO thread.
    pub(crate) fn snapshot(&self) -> (u64, Arc<Table>) {
        let table = lock(&self.table);
        (self.version(), table.clone())
    }

    /// Read-copy-update: writers are serialised by the lock; readers keep their `Arc`.
    pub(super) fn update(&self, f: impl FnOnce(&mut Table)) {
        let mut current = lock(&self.table);
        let mut next = Table::clone(&current);
        f(&mut next);
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives an accepted connection a client id and routes that id back to it; 0 when
    /// every id of the range is taken (the client is then unattributed, spec §7.4).
    pub(crate) fn attribute(&self, shared: &Arc<ConnShared>) -> u16 {
        let mut next = lock(&self.next_client);
        let (lo, hi) = (*self.client_ids.start(), *self.client_ids.end());
        let mut chosen = 0;
        self.update(|t| {
            let span = u32::from(hi - lo) + 1;
            for _ in 0..span {
                let id = *next;
                *next = if id >= hi { lo } else { id + 1 };
                if let std::collections::hash_map::Entry::Vacant(e) = t.clients.entry(id) {
                    e.insert(shared.clone());
                    chosen = id;
                    return;
                }
            }
        });
        chosen
    }

    /// Forgets a client id when its connection closes.
    pub(crate) fn release(&self, id: u16, conn: ConnId) {
        if id == 0 {
            return;
        }
        self.update(|t| {
            if t.clients.get(&id).is_some_and(|c| c.id == conn) {
                t.clients.remove(&id);
            }
        });
    }
}

/// What a proxy did with the DATA packets for one route, since the route was added
/// (spec §7.3). ERROR packets are forwarded too but not counted here.
///
/// Forwarded packets are counted when the egress IO thread writes them to the route's
/// connection, once per IO round, so a snapshot may lag the wire by one round.
///
/// ```
/// use fleetwire::transport::proxy::{Proxy, ProxyConfig, RouteKey, RouteStats};
/// let proxy = Proxy::start(ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap())).unwrap();
/// let stats = proxy.route_stats();
/// assert_eq!(stats[&RouteKey::Clients], RouteStats::default());
/// assert_eq!(stats[&RouteKey::Unrouted].no_route, 0);
/// proxy.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RouteStats {
    /// DATA packets written to the route's connection.
    pub packets: u64,
    /// Their payload bytes as forwarded (compressed when the sender compressed them).
    pub bytes: u64,
    /// DATA packets refused with ERROR NO_ROUTE (0x0100).
    pub no_route: u64,
    /// DATA packets refused with ERROR UNREACHABLE (0x0106): the route had no
    /// connection, or its bounded queue was full or closed.
    pub unreachable: u64,
}

//! The BlueNet proxy (`fleetwire::transport::proxy`, spec §7.3, §7.4) end to end over
//! 127.0.0.1: client → proxy → node and back. Every wait is bounded (at most 10 s).
#![cfg(all(feature = "transport", feature = "node"))]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire::connection::{Config, Connection, Event, SendOptions};
use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeError, NodeOptions};
use fleetwire::node::{NodeSecurity, Shutdown};
use fleetwire::transport::proxy::{Proxy, ProxyConfig, RouteKey, RouteStats};
use fleetwire::transport::{AppEvent, ConnId, Engine, EngineConfig, SendFlags, TlsOptions};
use fleetwire::{check_preface, Packets};
use fleetwire::{Codec, ErrorCode, Kind, Route, Status};

const PROXY_ID: u16 = 9;
const DEADLINE: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A reference echo node that honours X from the proxy (a trusted link configured
/// locally, spec §7.4 `[[src.trust]]`).
fn echo_node(id: u16) -> (SocketAddr, Shutdown, thread::JoinHandle<()>) {
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(id, NodeSecurity::Plaintext);
    opts.config.trust_source = true;
    let stop = opts.shutdown.clone();
    let t = thread::spawn(move || serve(listener, opts).unwrap());
    (addr, stop, t)
}

fn proxy(routes: &[(u16, SocketAddr)]) -> Proxy {
    let mut config = ProxyConfig::new(PROXY_ID, local());
    config.routes = routes.iter().copied().collect();
    Proxy::start(config).unwrap()
}

fn client_options() -> ClientOptions {
    let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
    // the proxy is configured as trusted: its stamped sources are honoured (§7.4)
    opts.config = Config::client().with_trust_server_as_proxy(true);
    opts
}

/// An engine client that trusts the proxy's stamps.
fn engine_client(proxy: SocketAddr) -> (Engine, ConnId) {
    let mut config = EngineConfig::default();
    config.client.trust_server_as_proxy = true;
    let engine = Engine::new(config).unwrap();
    let conn = engine.connect(proxy, TlsOptions::Plaintext).unwrap();
    (engine, conn)
}

/// A Connection over a blocking socket that records every byte both ways.
struct Raw {
    sock: TcpStream,
    conn: Connection,
    start: Instant,
    sent: Vec<u8>,
    got: Vec<u8>,
}

impl Raw {
    fn new(sock: TcpStream, config: Config) -> Raw {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let mut raw = Raw {
            sock,
            conn: Connection::new(config, Duration::ZERO),
            start: Instant::now(),
            sent: Vec::new(),
            got: Vec::new(),
        };
        raw.flush();
        raw
    }

    fn flush(&mut self) {
        let mut out = Vec::new();
        self.conn.poll_transmit(&mut out);
        self.sock.write_all(&out).unwrap();
        self.sent.extend_from_slice(&out);
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        match self.sock.read(&mut buf) {
            Ok(0) => self.conn.handle_eof(self.start.elapsed()),
            Ok(n) => {
                self.got.extend_from_slice(&buf[..n]);
                self.conn.handle_input(self.start.elapsed(), &buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        self.conn.handle_timeout(self.start.elapsed());
        self.flush();
    }

    fn event(&mut self, what: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + DEADLINE;
        loop {
            while let Some(e) = self.conn.poll_event() {
                if what(&e) {
                    self.flush();
                    return e;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for an event");
            self.pump();
        }
    }
}

/// The DATA packets of a recorded stream (after the preface), as they were on the wire.
fn wire_data(stream: &[u8]) -> Vec<(fleetwire::Header, Vec<u8>)> {
    let Ok(Status::Complete(n)) = check_preface(stream) else {
        panic!("no preface")
    };
    Packets::new(&stream[n..], u16::MAX)
        .map(|p| p.unwrap())
        .filter(|p| p.header.kind == Kind::Data)
        .map(|p| (p.header, p.payload.to_vec()))
        .collect()
}

// trace: route.stamp, src.stamp
#[test]
fn client_proxy_node_round_trip() {
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let mut client = connect(proxy.local_addr(), client_options()).unwrap();
    let me = client.peer().unwrap().attributed_id;
    assert!((40000..=65534).contains(&me), "attributed id {me}");
    client
        .send(
            Route::new(2, 7, 3),
            b"over the proxy",
            SendOptions::default(),
        )
        .unwrap();
    let echo = client.recv().unwrap();
    assert_eq!(&echo.payload[..], b"over the proxy");
    // the node echoed to the source the proxy stamped (the id attributed to us), and
    // the proxy stamped the node as the echo's source
    assert_eq!(echo.route, Route::new(me, 7, 3));
    assert_eq!(echo.source, 2);
    let closed = client.close().unwrap();
    assert_eq!(closed.code, ErrorCode::NO_ERROR);
    proxy.shutdown(Duration::from_secs(2));
    stop.trigger();
    node.join().unwrap();
}

// trace: route.forward-unchanged, route.stamp, src.stamp
#[test]
fn compressed_payload_forwarded_byte_for_byte() {
    let node_listener = TcpListener::bind(local()).unwrap();
    let node_addr = node_listener.local_addr().unwrap();
    let proxy = proxy(&[(3, node_addr)]);
    let (sock, _) = node_listener.accept().unwrap();
    let mut node = Raw::new(sock, Config::node(3).with_trust_source(true));
    node.event(|e| matches!(e, Event::Established { .. }));

    let mut client = Raw::new(
        TcpStream::connect(proxy.local_addr()).unwrap(),
        Config::client().with_trust_server_as_proxy(true),
    );
    let Event::Established { peer } = client.event(|e| matches!(e, Event::Established { .. }))
    else {
        unreachable!()
    };
    let payload: Vec<u8> = b"fleet movement update; ".repeat(100);
    client
        .conn
        .send_data(
            Route::new(3, 4, 5),
            &payload,
            SendOptions::compressed(Codec::Snappy),
        )
        .unwrap();
    client.flush();
    let got = node.event(|e| matches!(e, Event::Data { .. }));
    let Event::Data {
        source,
        payload: p,
        route,
        ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!(&p[..], &payload[..]);
    assert_eq!((source, route), (peer.attributed_id, Route::new(3, 4, 5)));

    let sent = wire_data(&client.sent);
    let received = wire_data(&node.got);
    assert_eq!((sent.len(), received.len()), (1, 1));
    let ((h_in, p_in), (h_out, p_out)) = (&sent[0], &received[0]);
    assert_eq!(h_in.codec, Codec::Snappy, "the client compressed it");
    assert!(p_in.len() < payload.len());
    // payload bytes, length, kind, flags and route unchanged (§7.3); X and the source
    // stamped (§7.4)
    assert_eq!(p_out, p_in);
    assert_eq!(h_out.source, Some(peer.attributed_id));
    assert_eq!(h_in.source, None);
    assert_eq!(
        fleetwire::Header {
            source: None,
            ..*h_out
        },
        *h_in
    );
    proxy.shutdown(Duration::from_secs(1));
}

// trace: route.no-route
#[test]
fn unknown_route_answered_no_route() {
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let mut client = connect(proxy.local_addr(), client_options()).unwrap();
    client
        .send(Route::new(77, 0, 0), b"nobody", SendOptions::default())
        .unwrap();
    match client.recv() {
        Err(NodeError::PacketError { code, .. }) => assert_eq!(code, ErrorCode::NO_ROUTE),
        other => panic!("expected NO_ROUTE, got {other:?}"),
    }
    // the connection is still usable
    client
        .send(Route::new(2, 0, 0), b"still here", SendOptions::default())
        .unwrap();
    assert_eq!(&client.recv().unwrap().payload[..], b"still here");
    client.close().unwrap();
    proxy.shutdown(Duration::from_secs(2));
    stop.trigger();
    node.join().unwrap();
}

// trace: route.no-route
#[test]
fn closed_egress_answered_unreachable() {
    // a route to a port where nobody listens: its connection closes
    let dead = TcpListener::bind(local()).unwrap().local_addr().unwrap();
    let proxy = proxy(&[(5, dead)]);
    let (engine, conn) = engine_client(proxy.local_addr());
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    let code = 'outer: loop {
        assert!(Instant::now() < deadline, "no UNREACHABLE");
        let _ = engine.send(
            conn,
            Route::new(5, 0, 0),
            Bytes::from_static(b"x"),
            SendFlags::default(),
        );
        engine.recv_batch(&mut events, Duration::from_millis(20));
        for e in events.drain(..) {
            if let AppEvent::PacketError { code, .. } = e {
                break 'outer code;
            }
        }
    };
    assert_eq!(code, ErrorCode::UNREACHABLE);
    proxy.shutdown(Duration::from_secs(1));
}

/// Sends `n` numbered packets to `node` and collects the echoes' numbers, in order of
/// arrival.
fn numbered_round_trip(engine: &Engine, conn: ConnId, node: u16, n: u32) -> Vec<u32> {
    for i in 0..n {
        let payload = Bytes::copy_from_slice(&i.to_be_bytes());
        engine
            .send(conn, Route::new(node, 1, 0), payload, SendFlags::default())
            .unwrap();
    }
    collect(engine, n as usize, |_| true)
}

fn collect(
    engine: &Engine,
    n: usize,
    keep: impl Fn(&fleetwire::transport::ConnMessage) -> bool,
) -> Vec<u32> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut events = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "got {} of {n}", got.len());
        engine.recv_batch(&mut events, Duration::from_millis(50));
        for e in events.drain(..) {
            match e {
                AppEvent::Message(m) if keep(&m) => {
                    got.push(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
                }
                AppEvent::PacketError { code, .. } => panic!("packet error {code}"),
                AppEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                _ => {}
            }
        }
    }
    got
}

// trace: route.order
#[test]
fn order_kept_across_10k_packets() {
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let (engine, conn) = engine_client(proxy.local_addr());
    let got = numbered_round_trip(&engine, conn, 2, 10_000);
    assert_eq!(got, (0..10_000).collect::<Vec<u32>>());
    let stats = proxy.engine().stats(proxy.route_conn(2).unwrap()).unwrap();
    assert_eq!(stats.packets_out, 10_000);
    assert_eq!(
        stats.forwarded, 10_000,
        "the echoes came back through the proxy"
    );
    drop(engine);
    proxy.shutdown(Duration::from_secs(2));
    stop.trigger();
    node.join().unwrap();
}

#[test]
fn routing_table_swapped_while_traffic_flows() {
    let (a_addr, a_stop, a) = echo_node(2);
    let (b_addr, b_stop, b) = echo_node(3);
    let proxy = proxy(&[(2, a_addr)]);
    let (engine, conn) = engine_client(proxy.local_addr());
    let sender = engine.sender(conn).unwrap();
    let total = 30_000u32;
    let pump = thread::spawn(move || {
        for i in 0..total {
            let payload = Bytes::copy_from_slice(&i.to_be_bytes());
            let out = fleetwire::transport::Outgoing::new(Route::new(2, 1, 0), payload);
            while sender.send(out.clone()).is_err() {
                assert!(sender.wait_room(Duration::from_secs(5)));
            }
            if i % 500 == 499 {
                thread::sleep(Duration::from_millis(1)); // traffic that lasts
            }
        }
    });
    // swap the table again and again while node 2's echoes flow: add node 3, remove it
    let with_b: BTreeMap<u16, SocketAddr> = [(2, a_addr), (3, b_addr)].into_iter().collect();
    let without_b: BTreeMap<u16, SocketAddr> = [(2, a_addr)].into_iter().collect();
    let egress = proxy.route_conn(2);
    let deadline = Instant::now() + DEADLINE;
    let (mut got, mut events, mut swaps) = (Vec::new(), Vec::new(), 0);
    let mut received_at_10th_swap = None;
    while got.len() < total as usize {
        assert!(Instant::now() < deadline, "got {} of {total}", got.len());
        if swaps < 40 {
            let table = if swaps % 2 == 0 { &with_b } else { &without_b };
            proxy.set_routes(table).unwrap();
            swaps += 1;
            if swaps == 10 {
                received_at_10th_swap = Some(got.len());
            }
        }
        engine.recv_batch(&mut events, Duration::from_millis(1));
        for e in events.drain(..) {
            match e {
                AppEvent::Message(m) if m.source == 2 => {
                    got.push(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
                }
                AppEvent::PacketError { code, .. } => panic!("packet error {code}"),
                AppEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                _ => {}
            }
        }
    }
    pump.join().unwrap();
    let mid = received_at_10th_swap.expect("10 swaps");
    assert!(
        mid < total as usize,
        "the swaps happened while traffic flowed"
    );
    proxy.set_routes(&with_b).unwrap();
    assert_eq!(
        proxy.route_conn(2),
        egress,
        "an unchanged route keeps its connection"
    );
    assert_eq!(
        got,
        (0..total).collect::<Vec<u32>>(),
        "nothing lost, in order"
    );
    // the route added by the swap works
    engine
        .send(
            conn,
            Route::new(3, 1, 0),
            Bytes::from_static(b"\0\0\0\x07"),
            SendFlags::default(),
        )
        .unwrap();
    assert_eq!(collect(&engine, 1, |m| m.source == 3), vec![7]);
    drop(engine);
    proxy.shutdown(Duration::from_secs(2));
    for (stop, t) in [(a_stop, a), (b_stop, b)] {
        stop.trigger();
        t.join().unwrap();
    }
}

// trace: route.loops
#[test]
fn routing_table_loops_rejected() {
    // a route back to the proxy's own node id
    let mut config = ProxyConfig::new(PROXY_ID, local());
    config
        .routes
        .insert(PROXY_ID, "127.0.0.1:1".parse().unwrap());
    let err = Proxy::start(config).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loop"), "{err}");

    // a route to the proxy's own listening address, refused by a swap: the old table stays
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let looped: BTreeMap<u16, SocketAddr> = [(2, node_addr), (4, proxy.local_addr())]
        .into_iter()
        .collect();
    let err = proxy.set_routes(&looped).unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
    assert_eq!(proxy.routes().keys().copied().collect::<Vec<_>>(), vec![2]);
    let (engine, conn) = engine_client(proxy.local_addr());
    assert_eq!(numbered_round_trip(&engine, conn, 2, 3), vec![0, 1, 2]);
    drop(engine);
    proxy.shutdown(Duration::from_secs(2));
    stop.trigger();
    node.join().unwrap();
}

/// Waits until `proxy.route_stats()` equals `expected` (the egress IO threads add to
/// the counters once per round), then compares them.
fn assert_route_stats(proxy: &Proxy, expected: &BTreeMap<RouteKey, RouteStats>) {
    let deadline = Instant::now() + DEADLINE;
    let mut stats = proxy.route_stats();
    while stats != *expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        stats = proxy.route_stats();
    }
    assert_eq!(stats, *expected);
}

/// Sends `count` packets of `size` bytes to `node` from an engine client.
fn send_many(engine: &Engine, conn: ConnId, node: u16, count: usize, size: usize) {
    for _ in 0..count {
        let payload = Bytes::from(vec![0x5a; size]);
        engine
            .send(conn, Route::new(node, 1, 0), payload, SendFlags::default())
            .unwrap();
    }
}

/// Collects `messages` echoes and `errors` packet errors; returns the echoes' sources
/// and payload sizes, and the errors' codes.
fn collect_answers(
    engine: &Engine,
    messages: usize,
    errors: usize,
) -> (Vec<(u16, usize)>, Vec<ErrorCode>) {
    let deadline = Instant::now() + DEADLINE;
    let (mut got, mut codes, mut events) = (Vec::new(), Vec::new(), Vec::new());
    while got.len() < messages || codes.len() < errors {
        assert!(
            Instant::now() < deadline,
            "got {} of {messages} echoes, {} of {errors} errors",
            got.len(),
            codes.len()
        );
        engine.recv_batch(&mut events, Duration::from_millis(50));
        for e in events.drain(..) {
            match e {
                AppEvent::Message(m) => got.push((m.source, m.payload.len())),
                AppEvent::PacketError { code, .. } => codes.push(code),
                AppEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                _ => {}
            }
        }
    }
    (got, codes)
}

#[test]
fn route_stats_count_forwarded_and_refused_packets() {
    let (a_addr, a_stop, a) = echo_node(2);
    let (b_addr, b_stop, b) = echo_node(3);
    let proxy = proxy(&[(2, a_addr), (3, b_addr)]);
    let (engine, conn) = engine_client(proxy.local_addr());
    send_many(&engine, conn, 2, 100, 10);
    send_many(&engine, conn, 3, 40, 300);
    send_many(&engine, conn, 77, 7, 5); // no route, outside the client range
    send_many(&engine, conn, 65000, 3, 5); // a client id nobody holds
    let (echoes, codes) = collect_answers(&engine, 140, 10);
    assert_eq!(echoes.iter().filter(|(s, _)| *s == 2).count(), 100);
    assert_eq!(codes, vec![ErrorCode::NO_ROUTE; 10]);

    let node = |packets, bytes| RouteStats {
        packets,
        bytes,
        ..RouteStats::default()
    };
    let expected: BTreeMap<RouteKey, RouteStats> = [
        (RouteKey::Node(2), node(100, 1000)),
        (RouteKey::Node(3), node(40, 12_000)),
        // the echoes, back to the client
        (
            RouteKey::Clients,
            RouteStats {
                no_route: 3,
                ..node(140, 13_000)
            },
        ),
        (
            RouteKey::Unrouted,
            RouteStats {
                no_route: 7,
                ..RouteStats::default()
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_route_stats(&proxy, &expected);
    drop(engine);
    proxy.shutdown(Duration::from_secs(2));
    for (stop, t) in [(a_stop, a), (b_stop, b)] {
        stop.trigger();
        t.join().unwrap();
    }
}

/// Collects packet errors for a while after the expected ones: there must be no more.
fn assert_no_more_errors(engine: &Engine) {
    let until = Instant::now() + Duration::from_millis(300);
    let mut events = Vec::new();
    while Instant::now() < until {
        engine.recv_batch(&mut events, Duration::from_millis(50));
        for e in events.drain(..) {
            assert!(
                !matches!(e, AppEvent::PacketError { .. } | AppEvent::Message(_)),
                "unexpected {e:?}"
            );
        }
    }
}

// trace: route.egress-closed
#[test]
fn packets_queued_for_a_closed_egress_answered_unreachable() {
    const SENT: usize = 20;
    const SIZE: usize = 8;
    let node_listener = TcpListener::bind(local()).unwrap();
    let proxy = proxy(&[(5, node_listener.local_addr().unwrap())]);
    let (sock, _) = node_listener.accept().unwrap();
    drop(node_listener); // the proxy's reconnection attempts fail from now on
                         // a node that grants credit for 4 packets and never grants more: the rest stay
                         // queued in the proxy
    let mut config = Config::node(5).with_trust_source(true);
    config.limits.initial_credit_packets = 4;
    let mut node = Raw::new(sock, config);
    node.event(|e| matches!(e, Event::Established { .. }));

    let (engine, conn) = engine_client(proxy.local_addr());
    send_many(&engine, conn, 5, SENT, SIZE);
    let egress = proxy.route_conn(5).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the proxy never queued the rest");
        node.pump();
        let queued = proxy.engine().stats(egress).unwrap().send_queue_packets;
        if wire_data(&node.got).len() == 4 && queued == (SENT - 4) as u64 {
            break;
        }
    }
    // the node goes away with 16 packets queued for it in the proxy
    let delivered = wire_data(&node.got).len();
    drop(node);
    let (echoes, codes) = collect_answers(&engine, 0, SENT - delivered);
    assert!(echoes.is_empty());
    assert_eq!(codes, vec![ErrorCode::UNREACHABLE; SENT - delivered]);
    assert_no_more_errors(&engine);
    assert_eq!(delivered + codes.len(), SENT, "delivered + answered = sent");
    let stats = proxy.route_stats()[&RouteKey::Node(5)];
    assert_eq!(
        stats,
        RouteStats {
            packets: delivered as u64,
            bytes: (delivered * SIZE) as u64,
            no_route: 0,
            unreachable: (SENT - delivered) as u64,
        }
    );
    drop(engine);
    proxy.shutdown(Duration::from_secs(1));
}

// trace: route.no-route
#[test]
fn every_packet_to_a_dead_route_answered_unreachable() {
    // a route to a port where nobody listens: its connection fails, again and again.
    // Each packet is refused by the ingress (no connection, or a closed queue) or
    // queued and answered when the connection attempt fails: one ERROR each.
    const SENT: usize = 12;
    let dead = TcpListener::bind(local()).unwrap().local_addr().unwrap();
    let proxy = proxy(&[(5, dead)]);
    let (engine, conn) = engine_client(proxy.local_addr());
    for _ in 0..SENT {
        send_many(&engine, conn, 5, 1, 3);
        thread::sleep(Duration::from_millis(50)); // across reconnection attempts
    }
    let (_, codes) = collect_answers(&engine, 0, SENT);
    assert_eq!(codes, vec![ErrorCode::UNREACHABLE; SENT]);
    assert_no_more_errors(&engine);
    let expected = RouteStats {
        unreachable: SENT as u64,
        ..RouteStats::default()
    };
    assert_eq!(proxy.route_stats()[&RouteKey::Node(5)], expected);
    drop(engine);
    proxy.shutdown(Duration::from_secs(1));
}

// trace: route.no-route
#[test]
fn packets_too_large_for_the_next_hop_answered_unreachable() {
    // the node takes payloads of at most 1024 bytes; the client's limit is 65535
    let node_listener = TcpListener::bind(local()).unwrap();
    let proxy = proxy(&[(5, node_listener.local_addr().unwrap())]);
    let (sock, _) = node_listener.accept().unwrap();
    let mut config = Config::node(5).with_trust_source(true);
    config.limits.max_payload = 1024;
    let mut node = Raw::new(sock, config);
    node.event(|e| matches!(e, Event::Established { .. }));
    let (engine, conn) = engine_client(proxy.local_addr());
    // at the limit, limit + 1, small, limit + 1, at the limit: in this order
    for size in [1024, 1025, 10, 1025, 1024] {
        send_many(&engine, conn, 5, 1, size);
    }
    let (_, codes) = collect_answers(&engine, 0, 2);
    assert_eq!(codes, vec![ErrorCode::UNREACHABLE; 2]);
    let deadline = Instant::now() + DEADLINE;
    while wire_data(&node.got).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the node got {:?}",
            wire_data(&node.got)
        );
        node.pump();
    }
    let sizes: Vec<usize> = wire_data(&node.got).iter().map(|(_, p)| p.len()).collect();
    assert_eq!(sizes, [1024, 10, 1024]);
    assert_no_more_errors(&engine);
    let expected = RouteStats {
        packets: 3,
        bytes: 2058,
        no_route: 0,
        unreachable: 2,
    };
    let mut all: BTreeMap<RouteKey, RouteStats> = proxy.route_stats();
    all.insert(RouteKey::Node(5), expected);
    assert_route_stats(&proxy, &all);
    drop(engine);
    proxy.shutdown(Duration::from_secs(1));
}

/// Waits for the engine client's handshake; returns the id its proxy attributed to it.
fn attributed_id(engine: &Engine) -> u16 {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no handshake");
        engine.recv_batch(&mut events, Duration::from_millis(50));
        for e in events.drain(..) {
            if let AppEvent::Connected { peer, .. } = e {
                return peer.attributed_id;
            }
        }
    }
}

/// Client → proxy A (10) → proxy B (11) → echo node 2 and back, over plaintext on
/// loopback. A attributes client ids from 40000; B routes the client's id back to A.
/// With `trust`, each proxy lists 127.0.0.1 in `trusted_peers`. Returns the client's
/// id, the echo's source and route if one came back within 2 s, and how many packets B
/// forwarded to node 2.
fn through_two_proxies(trust: bool) -> (u16, Option<(u16, Route)>, u64) {
    let (node_addr, stop, node) = echo_node(2);
    let trusted = if trust {
        vec!["127.0.0.1".parse().unwrap()]
    } else {
        Vec::new()
    };
    let mut b_config = ProxyConfig::new(11, local());
    b_config.client_ids = 50000..=50099;
    b_config.routes.insert(2, node_addr);
    b_config.trusted_peers = trusted.clone();
    let b = Proxy::start(b_config).unwrap();
    let mut a_config = ProxyConfig::new(10, local());
    a_config.client_ids = 40000..=40099;
    a_config.routes.insert(2, b.local_addr());
    a_config.trusted_peers = trusted;
    let a = Proxy::start(a_config).unwrap();

    let (engine, conn) = engine_client(a.local_addr());
    let me = attributed_id(&engine);
    assert!((40000..=40099).contains(&me), "attributed id {me}");
    let back: BTreeMap<u16, SocketAddr> = [(2, node_addr), (me, a.local_addr())].into();
    b.set_routes(&back).unwrap();
    engine
        .send(
            conn,
            Route::new(2, 7, 3),
            Bytes::from_static(b"two hops"),
            SendFlags::default(),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut events = Vec::new();
    let mut echo = None;
    while echo.is_none() && Instant::now() < deadline {
        engine.recv_batch(&mut events, Duration::from_millis(50));
        for e in events.drain(..) {
            match e {
                AppEvent::Message(m) => {
                    assert_eq!(&m.payload[..], b"two hops");
                    echo = Some((m.source, m.route));
                }
                // without trust B refuses A's HELLO role proxy (spec §7.4 [[src.auth]]):
                // A's route to node 2 is down, the client is told UNREACHABLE
                AppEvent::PacketError { code, .. } if !trust => {
                    assert_eq!(code, ErrorCode::UNREACHABLE);
                }
                AppEvent::PacketError { code, .. } => panic!("packet error {code}"),
                _ => {}
            }
        }
    }
    let forwarded = b.route_stats()[&RouteKey::Node(2)].packets;
    drop(engine);
    a.shutdown(Duration::from_secs(1));
    b.shutdown(Duration::from_secs(1));
    stop.trigger();
    node.join().unwrap();
    (me, echo, forwarded)
}

// trace: src.trust, src.stamp
#[test]
fn two_proxies_over_plaintext_trust_each_other_when_configured() {
    let (me, echo, forwarded) = through_two_proxies(true);
    // the node saw the client's id as stamped by A and relayed by B, answered it, and
    // the client sees node 2 as the source, as stamped by B and relayed by A
    assert_eq!(echo, Some((2, Route::new(me, 7, 3))));
    assert_eq!(forwarded, 1);
}

// trace: src.trust
#[test]
fn two_proxies_over_plaintext_refuse_stamps_without_trust() {
    // B does not accept A's role proxy without trust (BAD_HELLO, spec §7.4
    // [[src.auth]]), so A has no link to forward on: nothing reaches the node, nothing
    // comes back but UNREACHABLE
    let (_, echo, forwarded) = through_two_proxies(false);
    assert_eq!((echo, forwarded), (None, 0));
}

// ---- issue 11: spoofed node identity, per-source limits behind a proxy ----

// trace: src.auth, route.reflector
#[test]
fn a_client_claiming_to_be_a_node_is_refused_and_no_echo_loop_starts() {
    // issue 11: a peer announcing "node 3" to the proxy had its packets stamped with
    // source 3, and node 2's echo went to node 3, whose echo went to node 2, forever
    let (addr2, stop2, node2) = echo_node(2);
    let (addr3, stop3, node3) = echo_node(3);
    let proxy = proxy(&[(2, addr2), (3, addr3)]);
    for role in [Config::node(3), Config::proxy(3)] {
        let config = role.with_require_auth(false);
        let mut spoof = Raw::new(TcpStream::connect(proxy.local_addr()).unwrap(), config);
        let Event::Closed { code, by_peer, .. } =
            spoof.event(|e| matches!(e, Event::Closed { .. }))
        else {
            unreachable!()
        };
        assert_eq!((code, by_peer), (ErrorCode::BAD_HELLO, true));
    }
    // a client's packet to node 2 is echoed to that client only, once
    let mut client = connect(proxy.local_addr(), client_options()).unwrap();
    client
        .send(Route::new(2, 0, 0), b"ping", SendOptions::default())
        .unwrap();
    assert_eq!(&client.recv().unwrap().payload[..], b"ping");
    client.close().unwrap();
    thread::sleep(Duration::from_millis(300));
    let stats = proxy.route_stats();
    assert_eq!(stats[&RouteKey::Node(2)].packets, 1, "one packet to node 2");
    assert_eq!(
        stats[&RouteKey::Node(3)].packets,
        0,
        "nothing ever reached node 3"
    );
    proxy.shutdown(Duration::from_secs(1));
    for (stop, t) in [(stop2, node2), (stop3, node3)] {
        stop.trigger();
        t.join().unwrap();
    }
}

// trace: limit.per-source, limit.proxy-polices
#[test]
fn one_client_cannot_make_a_node_close_the_proxy_link() {
    // issue 11: 17 malformed-zlib DATA from one client closed the node's link to the
    // proxy with TOO_MANY_ERRORS, and two clients interleaving empty DATA closed it with
    // FLOOD. Counted per source now: the offender is told (and closed by the proxy),
    // another client carries on.
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let mut bad = Raw::new(
        TcpStream::connect(proxy.local_addr()).unwrap(),
        Config::client(),
    );
    bad.event(|e| matches!(e, Event::Established { .. }));
    let mut good = connect(proxy.local_addr(), client_options()).unwrap();
    let link = proxy.route_conn(2).unwrap();
    // 17 zlib payloads that are not zlib: DECOMPRESSION_FAILED at the node each time
    let junk = fleetwire::Packet {
        header: fleetwire::Header {
            codec: Codec::Zlib,
            ..fleetwire::Header::data(Route::new(2, 0, 0), 4)
        },
        payload: Bytes::from_static(b"junk"),
    };
    let mut wire = Vec::new();
    for _ in 0..17 {
        junk.encode_to_vec(&mut wire);
    }
    bad.sock.write_all(&wire).unwrap();
    let Event::Closed { code, .. } = bad.event(|e| matches!(e, Event::Closed { .. })) else {
        unreachable!()
    };
    assert_eq!(
        code,
        ErrorCode::TOO_MANY_ERRORS,
        "the proxy closed the offender"
    );
    // the link and the other client are unaffected
    good.send(Route::new(2, 0, 0), b"still here", SendOptions::default())
        .unwrap();
    assert_eq!(&good.recv().unwrap().payload[..], b"still here");
    assert_eq!(proxy.route_conn(2), Some(link), "the same link to node 2");
    good.close().unwrap();
    proxy.shutdown(Duration::from_secs(1));
    stop.trigger();
    node.join().unwrap();
}

// trace: err.budget-gone-client
#[test]
fn answers_to_a_client_that_has_gone_never_close_the_node_link() {
    // issue 11: flooding clients that the proxy closed left their echoes on the way;
    // each was NO_ROUTE on the node's link and counted, and the 17th closed the link
    // with TOO_MANY_ERRORS: every other client got UNREACHABLE. A scripted node sends
    // 40 answers (budget 16) to client ids nobody holds: 40 NO_ROUTE, the link stays.
    let listener = TcpListener::bind(local()).unwrap();
    let proxy = proxy(&[(2, listener.local_addr().unwrap())]);
    let (sock, _) = listener.accept().unwrap();
    // the proxy is trusted on this link (configured, §7.4 src.auth)
    let mut node = Raw::new(sock, Config::node(2).with_trust_source(true));
    node.event(|e| matches!(e, Event::Established { .. }));
    let link = proxy.route_conn(2);
    for i in 0..40u16 {
        let to = Route::new(40000 + i, 1, 0); // the range the proxy attributes; unheld
        node.conn
            .send_data(to, b"answer", SendOptions::default())
            .unwrap();
    }
    node.flush();
    let mut no_route = 0;
    while no_route < 40 {
        match node.event(|e| matches!(e, Event::PacketError { .. } | Event::Closed { .. })) {
            Event::PacketError { code, .. } => {
                assert_eq!(code, ErrorCode::NO_ROUTE);
                no_route += 1;
            }
            other => panic!("the proxy closed the node's link: {other:?}"),
        }
    }
    // and a client reaches the node through the same link
    let mut client = Raw::new(
        TcpStream::connect(proxy.local_addr()).unwrap(),
        Config::client(),
    );
    client.event(|e| matches!(e, Event::Established { .. }));
    client
        .conn
        .send_data(Route::new(2, 1, 0), b"hello", SendOptions::default())
        .unwrap();
    client.flush();
    node.event(|e| matches!(e, Event::Data { .. }));
    assert!(!node.conn.is_closed());
    assert_eq!(proxy.route_conn(2), link, "the same link to node 2");
    proxy.shutdown(Duration::from_secs(1));
}

// trace: route.fair-share
#[test]
fn a_flooding_client_cannot_fill_the_link_for_the_others() {
    // issue 11: flooders filled the shared queue to the node and the well-behaved client
    // got UNREACHABLE. The node here grants 16 packets and then nothing, so the link's
    // queue (64 KiB) fills; the flooder gets its share less the reserve, then waits
    // (no credit back); a client with nothing queued still gets in, and nothing is
    // refused.
    let listener = TcpListener::bind(local()).unwrap();
    let mut config = ProxyConfig::new(PROXY_ID, local());
    config.routes.insert(2, listener.local_addr().unwrap());
    config.engine = EngineConfig::default().with_send_queue_bytes(64 * 1024);
    let proxy = Proxy::start(config).unwrap();
    let (sock, _) = listener.accept().unwrap();
    let mut node_config = Config::node(2).with_trust_source(true);
    node_config.limits.initial_credit_packets = 16;
    let mut node = Raw::new(sock, node_config);
    node.event(|e| matches!(e, Event::Established { .. }));
    let client = || {
        let mut c = Raw::new(
            TcpStream::connect(proxy.local_addr()).unwrap(),
            Config::client(),
        );
        c.event(|e| matches!(e, Event::Established { .. }));
        c
    };
    let mut flooder = client();
    for _ in 0..200 {
        let to = Route::new(2, 1, 0);
        flooder
            .conn
            .send_data(to, &[7; 1000], SendOptions::default())
            .unwrap();
    }
    flooder.flush();
    // the proxy writes the node 16 packets; the rest of the flooder's fill the queue
    thread::sleep(Duration::from_millis(500));
    let mut light = client();
    light
        .conn
        .send_data(Route::new(2, 1, 0), b"light", SendOptions::default())
        .unwrap();
    light.flush();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        light.pump();
        flooder.pump();
        for c in [&mut light, &mut flooder] {
            while let Some(e) = c.conn.poll_event() {
                assert!(!matches!(e, Event::PacketError { .. }), "refused: {e:?}");
            }
        }
    }
    // the node takes its packets now: every one arrives, the light client's among them
    let mut data = 0;
    let mut got_light = false;
    while !(got_light && data == 201) {
        if let Event::Data { payload, .. } = node.event(|e| matches!(e, Event::Data { .. })) {
            data += 1;
            got_light |= &payload[..] == b"light";
        }
    }
    light.pump();
    flooder.pump();
    for c in [&mut light, &mut flooder] {
        while let Some(e) = c.conn.poll_event() {
            assert!(!matches!(e, Event::PacketError { .. }), "refused: {e:?}");
        }
    }
    proxy.shutdown(Duration::from_secs(1));
}

// trace: route.client-ids
#[test]
fn client_ids_never_name_a_node() {
    // spec §14.6 [[route.client-ids]]: a client's answers must never be routed to a node
    let mut config = ProxyConfig::new(PROXY_ID, local());
    config.client_ids = 40000..=40099;
    config.routes.insert(40050, "127.0.0.1:1".parse().unwrap());
    let err = Proxy::start(config).unwrap_err(); // a route in the client id range
    assert!(err.to_string().contains("client id range"), "{err}");
    // at the edges of the range too, and through set_routes
    let proxy = proxy(&[]);
    for node in [40000, 65534] {
        let routes: BTreeMap<u16, SocketAddr> = [(node, "127.0.0.1:1".parse().unwrap())].into();
        assert!(proxy.set_routes(&routes).is_err(), "node {node}");
    }
    let routes: BTreeMap<u16, SocketAddr> = [(39999, "127.0.0.1:1".parse().unwrap())].into();
    assert!(proxy.set_routes(&routes).is_ok(), "just below the range");
    proxy.shutdown(Duration::from_secs(1));
}

// trace: close.half, close.answer
#[test]
fn thousand_data_then_goaway_through_the_proxy_get_every_echo() {
    // issue 11, through the proxy: the proxy answers the client's half-close only once
    // the node's answers to its last requests have been forwarded
    let (node_addr, stop, node) = echo_node(2);
    let proxy = proxy(&[(2, node_addr)]);
    let mut client = Raw::new(
        TcpStream::connect(proxy.local_addr()).unwrap(),
        Config::client(),
    );
    client.event(|e| matches!(e, Event::Established { .. }));
    let now = client.start.elapsed();
    for i in 0..1000u32 {
        client
            .conn
            .send_data(
                Route::new(2, 0, 0),
                &i.to_be_bytes(),
                SendOptions::default(),
            )
            .unwrap();
    }
    client.conn.close(now, "done");
    client.flush(); // the 1,000 DATA and the GOAWAY in one write
    let mut echoes = Vec::new();
    let closed = loop {
        match client.event(|e| matches!(e, Event::Data { .. } | Event::Closed { .. })) {
            Event::Data { payload, .. } => {
                echoes.push(u32::from_be_bytes(payload[..].try_into().unwrap()))
            }
            closed => break closed,
        }
    };
    assert_eq!(
        echoes,
        (0..1000).collect::<Vec<_>>(),
        "every answer, in order"
    );
    assert!(
        matches!(
            closed,
            Event::Closed {
                code: ErrorCode::NO_ERROR,
                by_peer: false,
                delivered: Some(1000),
                ..
            }
        ),
        "{closed:?}"
    );
    proxy.shutdown(Duration::from_secs(1));
    stop.trigger();
    node.join().unwrap();
}

/// Spec §11 `[[limit.global-budget]]`: a client that sends requests and then reads
/// nothing (it grants no credit back) holds the answers meant for it; once they fill
/// the proxy's budget for answers to clients, it is closed with FLOOD after the stall
/// timeout, and the other clients carry on.
// trace: limit.global-budget
#[test]
fn clients_that_read_nothing_while_their_answers_fill_the_budget_are_closed_with_flood() {
    let (node_addr, stop, t) = echo_node(2);
    let mut config = ProxyConfig::new(PROXY_ID, local());
    config.routes.insert(2, node_addr);
    config.engine = EngineConfig::default()
        .with_global_forward_bytes(256 * 1024)
        .with_forward_share_bytes(64 * 1024)
        .with_stall_timeout(Duration::from_millis(300));
    let proxy = Proxy::start(config).unwrap();
    // the proxy may send each of them one window of 64 KiB, and no more
    let mut hoarder_config = Config::client();
    hoarder_config.limits.initial_credit_bytes = 65_535;
    let mut hoarders: Vec<Raw> = (0..4)
        .map(|_| {
            let sock = TcpStream::connect(proxy.local_addr()).unwrap();
            let mut h = Raw::new(sock, hoarder_config.clone());
            h.event(|e| matches!(e, Event::Established { .. }));
            for _ in 0..200 {
                let to = Route::new(2, 1, 0);
                h.conn
                    .send_data(to, &[7; 1000], SendOptions::default())
                    .unwrap();
            }
            h.flush();
            h
        })
        .collect();
    let started = Instant::now();
    // another client's round trip works meanwhile
    let (engine, conn) = engine_client(proxy.local_addr());
    assert_eq!(
        numbered_round_trip(&engine, conn, 2, 10),
        (0..10).collect::<Vec<_>>()
    );
    // the hoarders read now: the answers in their one window, then GOAWAY FLOOD for
    // those closed while the budget was full (once they are gone, it is not: the rest
    // hold only their share and may stay)
    let mut flooded = 0;
    for h in &mut hoarders {
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until && !h.conn.is_closed() {
            h.pump();
        }
        let last = std::iter::from_fn(|| h.conn.poll_event()).last();
        if let Some(Event::Closed { code, by_peer, .. }) = last {
            assert_eq!((code, by_peer), (ErrorCode::FLOOD, true));
            flooded += 1;
        }
    }
    assert!(flooded >= 1, "none closed");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        numbered_round_trip(&engine, conn, 2, 10),
        (0..10).collect::<Vec<_>>()
    );
    proxy.shutdown(Duration::from_secs(1));
    stop.trigger();
    t.join().unwrap();
}

//! Integration tests of the transport engine over 127.0.0.1 (feature `transport`).
//! Every test is bounded: helpers panic past their deadline (at most 10 s).
#![cfg(all(feature = "transport", feature = "tls", feature = "test-certs"))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire::connection::{Config, Connection};
use fleetwire::tls::{client_config, generate_test_pki, server_config};
use fleetwire::transport::{
    AppEvent, ConnId, ConnMessage, Engine, EngineConfig, EnqueueError, Outgoing, SendFlags,
    TlsOptions,
};
use fleetwire::{Codec, ErrorCode, Route};

const LOCAL: &str = "127.0.0.1:0";

/// The churn test counts the process's open file descriptors, so it runs alone; the
/// other tests share this lock.
static FDS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

/// An engine connected to a peer that accepts TCP and never answers (keep the listener):
/// the connection never opens, so its send queue is only filled, never taken.
fn never_opening(config: EngineConfig) -> (TcpListener, Engine, ConnId) {
    let silent = TcpListener::bind(local()).unwrap();
    let engine = Engine::new(config).unwrap();
    let conn = engine
        .connect(silent.local_addr().unwrap(), TlsOptions::Plaintext)
        .unwrap();
    (silent, engine, conn)
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

/// Receives until `done` says so (it sees every event); panics after `secs`.
fn recv_until(
    engine: &Engine,
    secs: u64,
    mut done: impl FnMut(&AppEvent) -> bool,
) -> Vec<AppEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut all, mut batch) = (Vec::new(), Vec::new());
    loop {
        assert!(Instant::now() < deadline, "timed out; got {all:?}");
        engine.recv_batch(&mut batch, Duration::from_millis(50));
        for e in batch.drain(..) {
            let stop = done(&e);
            all.push(e);
            if stop {
                return all;
            }
        }
    }
}

fn messages(events: &[AppEvent]) -> Vec<&ConnMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn is_closed(conn: ConnId) -> impl FnMut(&AppEvent) -> bool {
    move |e| matches!(e, AppEvent::Closed { conn: c, .. } if *c == conn)
}

/// A connected pair across two engines: (client engine, client conn, server engine,
/// server conn), both sides established.
fn pair(client_tls: TlsOptions, server_tls: TlsOptions) -> (Engine, ConnId, Engine, ConnId) {
    pair_with(
        EngineConfig::default(),
        EngineConfig::default(),
        client_tls,
        server_tls,
    )
}

fn pair_with(
    cc: EngineConfig,
    sc: EngineConfig,
    client_tls: TlsOptions,
    server_tls: TlsOptions,
) -> (Engine, ConnId, Engine, ConnId) {
    let server = Engine::new(sc).unwrap();
    let client = Engine::new(cc).unwrap();
    let l = server.listen(local(), server_tls).unwrap();
    let c = client.connect(l.local_addr, client_tls).unwrap();
    let ev = recv_until(&server, 10, |e| matches!(e, AppEvent::Connected { .. }));
    let s = ev.last().unwrap().conn();
    recv_until(&client, 10, |e| matches!(e, AppEvent::Connected { .. }));
    (client, c, server, s)
}

fn tls_options() -> (TlsOptions, TlsOptions) {
    let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    let server = TlsOptions::Server(
        server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap(),
    );
    let client = TlsOptions::Client {
        config: client_config(pki.ca_cert_pem.as_bytes(), None).unwrap(),
        server_name: "localhost".into(),
    };
    (client, server)
}

fn round_trip(client_tls: TlsOptions, server_tls: TlsOptions) {
    let (client, c, server, s) = pair(client_tls, server_tls);
    let text = Bytes::from(b"the quick brown fox jumps over the lazy dog ".repeat(8));
    client
        .send(
            c,
            Route::new(0, 3, 9),
            text.clone(),
            SendFlags::codec(Codec::Snappy),
        )
        .unwrap();
    let ev = recv_until(&server, 10, |e| matches!(e, AppEvent::Message(_)));
    let m = messages(&ev)[0].clone();
    assert_eq!((m.conn, m.route.service, m.route.channel), (s, 3, 9));
    assert_eq!(m.payload, text);
    server
        .send(s, m.route, Bytes::from_static(b"pong"), SendFlags::secret())
        .unwrap();
    let ev = recv_until(&client, 10, |e| matches!(e, AppEvent::Message(_)));
    let m = messages(&ev)[0];
    assert_eq!((&m.payload[..], m.never_compress), (&b"pong"[..], true));
    // RTT from PING/PONG: one Pong event per PING asked for, its RTT in the stats too
    assert!(client.ping(c));
    let ev = recv_until(&client, 5, |e| matches!(e, AppEvent::Pong { .. }));
    let Some(AppEvent::Pong { conn, rtt }) = ev.last() else {
        unreachable!()
    };
    assert_eq!(*conn, c);
    let st = client.stats(c).unwrap();
    assert_eq!(st.rtt, Some(Duration::from_micros(rtt.as_micros() as u64)));
    assert_eq!((st.packets_out, st.packets_in), (1, 1));
    assert_eq!(st.payload_bytes_out, text.len() as u64);
    assert!(st.wire_bytes_out > 0 && st.wire_bytes_in > 0);
    // snappy made the wire smaller than the payload (plaintext: exact accounting)
    let ss = server.stats(s).unwrap();
    assert_eq!(ss.payload_bytes_in, text.len() as u64);
}

#[test]
fn round_trip_plaintext() {
    let _fds = shared();
    round_trip(TlsOptions::Plaintext, TlsOptions::Plaintext);
}

#[test]
fn round_trip_tls() {
    let _fds = shared();
    let (client, server) = tls_options();
    round_trip(client, server);
}

#[test]
fn hundred_thousand_small_messages_in_order_with_recv_batch() {
    let _fds = shared();
    many_in_order(TlsOptions::Plaintext, TlsOptions::Plaintext, 100_000, 1);
}

#[test]
fn many_kilobyte_messages_in_order_over_tls() {
    // large reads: their plaintext is handed to the connection without a copy
    let _fds = shared();
    let (client, server) = tls_options();
    many_in_order(client, server, 20_000, 128);
}

/// `n` messages of `8 * words` bytes (the index, repeated) from client to server,
/// received in order with `recv_batch`.
fn many_in_order(client_tls: TlsOptions, server_tls: TlsOptions, n: u64, words: usize) {
    let (client, c, server, _s) = pair(client_tls, server_tls);
    let sender = client.sender(c).unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..n {
            let msg = fleetwire::transport::Outgoing::new(
                Route::new(0, 1, 0),
                Bytes::from(i.to_be_bytes().repeat(words)),
            );
            loop {
                match sender.send(msg.clone()) {
                    Ok(()) => break,
                    Err(EnqueueError::QueueFull) => {
                        sender.wait_room(Duration::from_secs(1));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut batch, mut next, mut calls) = (Vec::new(), 0u64, 0u64);
    while next < n {
        assert!(Instant::now() < deadline, "only {next} of {n}");
        if server.recv_batch(&mut batch, Duration::from_millis(100)) > 0 {
            calls += 1;
        }
        for e in batch.drain(..) {
            if let AppEvent::Message(m) = e {
                assert_eq!(
                    &m.payload[..],
                    &next.to_be_bytes().repeat(words),
                    "in order"
                );
                next += 1;
            }
        }
    }
    t.join().unwrap();
    // work grouping: many messages per wake-up, never one per packet
    assert!(calls * 10 < n, "{calls} recv_batch calls for {n} messages");
}

#[test]
fn slow_consumer_flood_stays_within_memory_budget() {
    let _fds = shared();
    const BUDGET: usize = 128 * 1024;
    let mut sc = EngineConfig::default()
        .with_recv_budget_bytes(BUDGET)
        .with_global_recv_budget_bytes(4 * BUDGET);
    sc.server.limits.initial_credit_packets = 256;
    sc.server.limits.initial_credit_bytes = 64 * 1024;
    let cc = EngineConfig::default()
        .with_send_queue_packets(1024)
        .with_send_queue_bytes(1024 * 1024);
    let (client, c, server, s) = pair_with(cc, sc, TlsOptions::Plaintext, TlsOptions::Plaintext);
    let sender = client.sender(c).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, full) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let t = {
        let (stop, sent, full) = (stop.clone(), sent.clone(), full.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut p = vec![0u8; 1024];
                p[..8].copy_from_slice(&i.to_be_bytes());
                let msg = fleetwire::transport::Outgoing::new(Route::new(0, 1, 0), p.into());
                match sender.send(msg) {
                    Ok(()) => i += 1,
                    Err(EnqueueError::QueueFull) => {
                        full.fetch_add(1, Ordering::Relaxed);
                        sender.wait_room(Duration::from_millis(10));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            sent.store(i, Ordering::SeqCst);
        })
    };
    // The consumer sleeps while the producer floods.
    std::thread::sleep(Duration::from_millis(1500));
    let cost = 1024 + fleetwire::transport::QUEUE_ENTRY_OVERHEAD;
    let (now, high) = server.recv_queue_bytes();
    assert!(
        high <= BUDGET,
        "engine-wide high water {high} > budget {BUDGET}"
    );
    assert!(
        now <= BUDGET && now + cost > BUDGET,
        "queue filled to the budget: {now}"
    );
    let st = server.stats(s).unwrap();
    assert!(st.recv_queue_high_water as usize <= BUDGET);
    assert!(st.pauses > 0, "the IO thread paused the connection");
    let cs = client.stats(c).unwrap();
    assert!(cs.send_queue_packets <= 1024, "sender queue bounded");
    assert!(
        full.load(Ordering::Relaxed) > 0,
        "the sender felt backpressure"
    );
    // Stop the flood, then consume everything: nothing lost, in order.
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    let total = sent.load(Ordering::SeqCst);
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut batch = Vec::new();
    while next < total {
        assert!(Instant::now() < deadline, "only {next} of {total}");
        server.recv_batch(&mut batch, Duration::from_millis(100));
        for e in batch.drain(..) {
            if let AppEvent::Message(m) = e {
                assert_eq!(&m.payload[..8], &next.to_be_bytes());
                next += 1;
            }
        }
        let (now, _) = server.recv_queue_bytes();
        assert!(now <= BUDGET);
    }
    assert!(server.recv_queue_bytes().1 <= BUDGET);
}

/// A hand-driven peer over a blocking socket: preface and HELLO from a sans-IO client.
fn raw_hello() -> Vec<u8> {
    let mut conn = Connection::new(Config::client(), Duration::ZERO);
    let mut wire = Vec::new();
    conn.poll_transmit(&mut wire);
    wire
}

#[test]
fn peer_killed_mid_packet() {
    let _fds = shared();
    let server = engine();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let mut raw = TcpStream::connect(l.local_addr).unwrap();
    raw.write_all(&raw_hello()).unwrap();
    let ev = recv_until(&server, 10, |e| matches!(e, AppEvent::Connected { .. }));
    let s = ev.last().unwrap().conn();
    // a DATA header announcing 100 bytes, then 10 of them, then the peer dies
    raw.write_all(&[0x10, 0, 0, 100, 0, 0, 1, 0]).unwrap();
    raw.write_all(&[7; 10]).unwrap();
    drop(raw);
    let ev = recv_until(&server, 10, is_closed(s));
    let Some(AppEvent::Closed { code, by_peer, .. }) = ev.last() else {
        panic!()
    };
    assert_eq!((*code, *by_peer), (ErrorCode::CONNECTION_LOST, true));
    assert!(messages(&ev).is_empty(), "no partial packet delivered");
    assert_eq!(server.connections(), 0);
}

#[test]
fn connection_reset_reports_queued_messages_undelivered() {
    let _fds = shared();
    let raw = TcpListener::bind(LOCAL).unwrap();
    let client = engine();
    let c = client
        .connect(raw.local_addr().unwrap(), TlsOptions::Plaintext)
        .unwrap();
    for i in 0..3u8 {
        client
            .send(
                c,
                Route::default(),
                Bytes::from(vec![i]),
                SendFlags::default(),
            )
            .unwrap();
    }
    let (mut peer, _) = raw.accept().unwrap();
    // leave the engine's preface and HELLO unread, then close: the kernel sends RST
    std::thread::sleep(Duration::from_millis(100));
    let mut one = [0u8; 1];
    peer.read_exact(&mut one).unwrap();
    drop(peer);
    let ev = recv_until(&client, 10, is_closed(c));
    let n = ev.len();
    assert!(
        matches!(
            ev[n - 2],
            AppEvent::Undelivered {
                queued: 3,
                unconfirmed: 0,
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(matches!(
        &ev[n - 1],
        AppEvent::Closed {
            code: ErrorCode::CONNECTION_LOST,
            by_peer: true,
            ..
        }
    ));
    assert_eq!(
        client.send(c, Route::default(), Bytes::new(), SendFlags::default()),
        Err(EnqueueError::UnknownConnection)
    );
}

#[test]
fn graceful_shutdown_delivers_every_queued_packet() {
    let _fds = shared();
    const N: u64 = 20_000;
    let (mut client, c, server, s) = pair(TlsOptions::Plaintext, TlsOptions::Plaintext);
    for i in 0..N {
        let p = Bytes::copy_from_slice(&i.to_be_bytes());
        client
            .send(c, Route::new(0, 1, 0), p, SendFlags::default())
            .unwrap();
    }
    // the server's application reads while the client shuts down: the server answers
    // the client's GOAWAY once its application has taken every message (§6.4)
    let reader = std::thread::spawn(move || recv_until(&server, 10, is_closed(s)));
    assert!(client.shutdown(Duration::from_secs(8)), "clean shutdown");
    let ev = reader.join().unwrap();
    let msgs = messages(&ev);
    assert_eq!(msgs.len() as u64, N);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(&m.payload[..], &(i as u64).to_be_bytes());
    }
    assert!(matches!(
        ev.last(),
        Some(AppEvent::Closed {
            code: ErrorCode::NO_ERROR,
            by_peer: true,
            ..
        })
    ));
    let mine = recv_until(&client, 2, is_closed(c));
    assert!(!mine
        .iter()
        .any(|e| matches!(e, AppEvent::Undelivered { .. })));
    assert!(matches!(
        mine.last(),
        Some(AppEvent::Closed { code: ErrorCode::NO_ERROR, delivered: Some(d), .. }) if *d == N
    ));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn connection_churn_does_not_leak() {
    let _fds = FDS.write().unwrap_or_else(|e| e.into_inner());
    let server = engine();
    let client = engine();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let fds_before = open_fds();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut batch = Vec::new();
    for _wave in 0..20 {
        let ids: Vec<ConnId> = (0..50)
            .map(|_| client.connect(l.local_addr, TlsOptions::Plaintext).unwrap())
            .collect();
        let mut connected = 0;
        while connected < ids.len() {
            assert!(Instant::now() < deadline, "churn too slow");
            client.recv_batch(&mut batch, Duration::from_millis(50));
            connected += batch
                .drain(..)
                .filter(|e| matches!(e, AppEvent::Connected { .. }))
                .count();
            server.recv_batch(&mut Vec::new(), Duration::ZERO);
        }
        for id in &ids {
            assert!(client.close(*id));
        }
        let mut closed = 0;
        while closed < ids.len() {
            assert!(Instant::now() < deadline, "churn too slow");
            client.recv_batch(&mut batch, Duration::from_millis(50));
            closed += batch
                .drain(..)
                .filter(|e| {
                    matches!(
                        e,
                        AppEvent::Closed {
                            code: ErrorCode::NO_ERROR,
                            ..
                        }
                    )
                })
                .count();
            server.recv_batch(&mut Vec::new(), Duration::ZERO);
        }
    }
    while client.open_sockets() > 0 || server.connections() > 0 || server.open_sockets() > 1 {
        assert!(
            Instant::now() < deadline,
            "leak: client sockets {}, server conns {}, server sockets {}",
            client.open_sockets(),
            server.connections(),
            server.open_sockets()
        );
        server.recv_batch(&mut Vec::new(), Duration::from_millis(10));
    }
    assert_eq!(client.connections(), 0);
    assert!(
        open_fds() <= fds_before + 2,
        "fds {} -> {}",
        fds_before,
        open_fds()
    );
}

#[test]
fn one_failing_connection_does_not_affect_the_others() {
    let _fds = shared();
    let server = engine();
    let client = engine();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let conns: Vec<ConnId> = (0..3)
        .map(|_| client.connect(l.local_addr, TlsOptions::Plaintext).unwrap())
        .collect();
    // a misbehaving peer: not Fleetwire at all
    let mut bad = TcpStream::connect(l.local_addr).unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    for round in 0..100u8 {
        for c in &conns {
            client
                .send(
                    *c,
                    Route::new(0, 1, round),
                    Bytes::from(vec![round; 32]),
                    SendFlags::default(),
                )
                .unwrap();
        }
    }
    let mut per_conn = std::collections::HashMap::new();
    let mut bad_closed = None;
    recv_until(&server, 10, |e| {
        match e {
            AppEvent::Message(m) => {
                let n = per_conn.entry(m.conn).or_insert(0u8);
                assert_eq!(m.route.channel, *n, "in order per connection");
                *n += 1;
            }
            AppEvent::Closed { code, .. } => bad_closed = Some(*code),
            _ => {}
        }
        per_conn.len() == 3 && per_conn.values().all(|n| *n == 100) && bad_closed.is_some()
    });
    assert_eq!(bad_closed, Some(ErrorCode::BAD_PREFACE));
    let mut rest = Vec::new();
    bad.read_to_end(&mut rest).unwrap(); // the engine sent its GOAWAY and closed
    assert_eq!(server.connections(), 3);
}

#[test]
fn native_handler_messages_never_reach_the_app_queue() {
    let _fds = shared();
    let (client, c, server, s) = pair(TlsOptions::Plaintext, TlsOptions::Plaintext);
    server.register_handler(
        7,
        Box::new(|m, reply| {
            assert_eq!(m.route.service, 7, "only its own service");
            reply.send(Route::new(0, 8, 0), m.payload.clone(), SendFlags::default());
        }),
    );
    std::thread::sleep(Duration::from_millis(20)); // next IO round picks it up
    for i in 0..1000u32 {
        client
            .send(
                c,
                Route::new(0, 7, 0),
                Bytes::copy_from_slice(&i.to_be_bytes()),
                SendFlags::default(),
            )
            .unwrap();
    }
    for _ in 0..10 {
        client
            .send(
                c,
                Route::new(0, 1, 0),
                Bytes::from_static(b"app"),
                SendFlags::default(),
            )
            .unwrap();
    }
    let mut echoed = 0;
    recv_until(&client, 10, |e| {
        if let AppEvent::Message(m) = e {
            assert_eq!(&m.payload[..], &(echoed as u32).to_be_bytes());
            echoed += 1;
        }
        echoed == 1000
    });
    let ev = recv_until(&server, 10, {
        let mut n = 0;
        move |e| {
            n += matches!(e, AppEvent::Message(_)) as usize;
            n == 10
        }
    });
    assert!(messages(&ev).iter().all(|m| m.route.service == 1));
    std::thread::sleep(Duration::from_millis(50));
    let mut more = Vec::new();
    server.recv_batch(&mut more, Duration::ZERO);
    assert!(messages(&more).is_empty());
    let st = server.stats(s).unwrap();
    assert_eq!((st.handled_natively, st.packets_in), (1000, 1010));
}

#[test]
fn native_handler_reply_written_in_the_round_that_produced_it() {
    let _fds = shared();
    // no PINGs: nothing but the request itself wakes the server's connection, so a
    // reply left for a later round would wait for the keepalive timer
    let quiet = EngineConfig::default().with_ping_interval(None);
    let plain = || TlsOptions::Plaintext;
    let (client, c, server, _) = pair_with(quiet.clone(), quiet, plain(), plain());
    server.register_handler(
        7,
        Box::new(|m, reply| reply.send(m.route, m.payload.clone(), SendFlags::default())),
    );
    std::thread::sleep(Duration::from_millis(20)); // next IO round picks it up
    for i in 0..5u32 {
        let start = Instant::now();
        let payload = Bytes::copy_from_slice(&i.to_be_bytes());
        client
            .send(
                c,
                Route::new(0, 7, 0),
                payload.clone(),
                SendFlags::default(),
            )
            .unwrap();
        let ev = recv_until(&client, 10, |e| matches!(e, AppEvent::Message(_)));
        assert_eq!(messages(&ev)[0].payload, payload);
        let rtt = start.elapsed();
        assert!(rtt < Duration::from_secs(2), "echo {i} took {rtt:?}");
    }
}

/// Needs the tokio timer and `join!` that feature `transport-bench` enables.
#[cfg(feature = "transport-bench")]
#[test]
fn async_sink_and_stream_round_trip_with_backpressure() {
    use std::future::poll_fn;
    use std::pin::Pin;

    use fleetwire::transport::Outgoing;
    use futures_core::Stream;
    use futures_sink::Sink;

    let _fds = shared();
    const N: u32 = 5_000;
    let cc = EngineConfig::default().with_send_queue_packets(64); // small: poll_ready must wait for room
    let (client, c, server, _s) = pair_with(
        cc,
        EngineConfig::default(),
        TlsOptions::Plaintext,
        TlsOptions::Plaintext,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sink = client.sink(c).unwrap();
        let mut events = server.events();
        let send = async {
            for i in 0..N {
                poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx))
                    .await
                    .unwrap();
                let out = Outgoing::new(
                    Route::new(0, 1, 0),
                    Bytes::copy_from_slice(&i.to_be_bytes()),
                );
                Pin::new(&mut sink).start_send(out).unwrap();
            }
            poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx))
                .await
                .unwrap();
        };
        let recv = async {
            let mut next = 0u32;
            while next < N {
                match poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await {
                    Some(AppEvent::Message(m)) => {
                        assert_eq!(&m.payload[..], &next.to_be_bytes());
                        next += 1;
                    }
                    Some(_) => {}
                    None => panic!("stream ended"),
                }
            }
        };
        let both = async { tokio::join!(send, recv) };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("bounded");
    });
}

#[test]
fn send_many_queues_up_to_the_limit_and_leaves_the_rest() {
    let _fds = shared();
    // A peer that accepts TCP and never answers: the connection never opens, so the
    // send queue is only filled, never taken.
    let limit = 8;
    let (_silent, engine, conn) =
        never_opening(EngineConfig::default().with_send_queue_packets(limit));
    let msg = |i: u8| Outgoing::new(Route::new(0, 1, i), Bytes::from(vec![i; 32]));
    let mut batch: Vec<Outgoing> = (0..limit as u8 + 1).map(msg).collect();
    // exactly the limit is taken, limit + 1 is not; the rest stays, in order
    assert_eq!(engine.send_many(conn, &mut batch), Ok(limit));
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].route.channel, limit as u8);
    assert_eq!(engine.send_many(conn, &mut batch), Ok(0));
    assert_eq!(
        engine.send(conn, Route::default(), Bytes::new(), SendFlags::default()),
        Err(EnqueueError::QueueFull)
    );
    // a too-large first message is refused, nothing taken
    let mut huge = vec![Outgoing::new(
        Route::default(),
        Bytes::from(vec![0; 70_000]),
    )];
    assert_eq!(
        engine.send_many(conn, &mut huge),
        Err(EnqueueError::TooLarge)
    );
    assert_eq!(huge.len(), 1);
    let mut none = vec![msg(0)];
    assert_eq!(
        engine.send_many(ConnId::from_raw(9999), &mut none),
        Err(EnqueueError::UnknownConnection)
    );
    assert_eq!(none.len(), 1);
}

/// Regression: `wait_room` said "room" once the queue was below its byte bound, while
/// the message that had been refused still did not fit: a sender looping on `send_many`
/// and `wait_room` spun on a core (seen as a third of the CPU in the 1 KiB bench) instead
/// of sleeping until the IO thread wrote something. It now waits for room for that
/// message: exactly fitting is room, one byte short is not.
#[test]
fn wait_room_waits_until_the_refused_message_fits() {
    use fleetwire::transport::QUEUE_ENTRY_OVERHEAD;
    let _fds = shared();
    let cost = |len: usize| len + QUEUE_ENTRY_OVERHEAD;
    // room for two 1000-byte messages and a 500-byte one, exactly
    let limit = 2 * cost(1000) + cost(500);
    let (_silent, engine, conn) =
        never_opening(EngineConfig::default().with_send_queue_bytes(limit));
    let sender = engine.sender(conn).unwrap();
    let msg = |len: usize| Outgoing::new(Route::new(0, 1, 0), Bytes::from(vec![7; len]));
    let mut batch = vec![msg(1000), msg(1000), msg(1000)];
    assert_eq!(sender.send_many(&mut batch), Ok(2));
    // a third 1000-byte message is refused (the queue is below its byte bound)
    let slept = Instant::now();
    assert!(
        !sender.wait_room(Duration::from_millis(100)),
        "no room for it"
    );
    assert!(slept.elapsed() >= Duration::from_millis(100), "it slept");
    // a 500-byte one fits exactly: room for it, at once
    assert_eq!(sender.send(msg(501)), Err(EnqueueError::QueueFull));
    assert!(
        !sender.wait_room(Duration::from_millis(20)),
        "limit + 1 byte"
    );
    assert_eq!(sender.send(msg(500)), Ok(()));
    assert_eq!(sender.send(msg(0)), Err(EnqueueError::QueueFull));
    assert!(!sender.wait_room(Duration::from_millis(20)), "full");
}

/// A sender blocked in `wait_room` returns `false` as soon as the application closes the
/// connection (nothing more will be taken), not at its timeout.
#[test]
fn wait_room_returns_when_the_connection_is_closed() {
    let _fds = shared();
    let (_silent, engine, conn) = never_opening(EngineConfig::default().with_send_queue_packets(2));
    let sender = engine.sender(conn).unwrap();
    let msg = || Outgoing::new(Route::new(0, 1, 0), Bytes::from_static(b"x"));
    let mut batch = vec![msg(), msg(), msg()];
    assert_eq!(sender.send_many(&mut batch), Ok(2));
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        (sender.wait_room(Duration::from_secs(8)), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(engine.close(conn));
    let (room, waited) = waiter.join().unwrap();
    assert!(!room, "closed: no room");
    assert!(
        waited < Duration::from_secs(4),
        "woken by the close: {waited:?}"
    );
}

/// A sink waiting in `poll_ready` is woken when the application closes the connection,
/// and then reports it closed.
#[cfg(feature = "transport-async")]
#[test]
fn a_sink_waiting_for_room_is_woken_by_the_close() {
    use std::pin::Pin;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll, Wake, Waker};

    use futures_sink::Sink;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _fds = shared();
    let (_silent, engine, conn) = never_opening(EngineConfig::default().with_send_queue_packets(1));
    let mut sink = engine.sink(conn).unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let msg = Outgoing::new(Route::new(0, 1, 0), Bytes::from_static(b"x"));
    assert!(matches!(
        Pin::new(&mut sink).poll_ready(&mut cx),
        Poll::Ready(Ok(()))
    ));
    Pin::new(&mut sink).start_send(msg).unwrap();
    assert!(Pin::new(&mut sink).poll_ready(&mut cx).is_pending());
    assert!(engine.close(conn));
    assert!(flag.0.load(Ordering::SeqCst), "woken by the close");
    assert!(matches!(
        Pin::new(&mut sink).poll_ready(&mut cx),
        Poll::Ready(Err(EnqueueError::Closed))
    ));
}

/// The `Sink` contract: once `poll_ready` says ready, `start_send` takes the item,
/// whatever its size (a message larger than the room `poll_ready` saw goes one message
/// beyond the bound, and the sink then waits for room again).
#[cfg(feature = "transport-async")]
#[test]
fn a_sink_takes_what_poll_ready_promised_room_for() {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use fleetwire::transport::QUEUE_ENTRY_OVERHEAD;
    use futures_sink::Sink;

    let _fds = shared();
    let limit = 2 * (100 + QUEUE_ENTRY_OVERHEAD);
    let (_silent, engine, conn) =
        never_opening(EngineConfig::default().with_send_queue_bytes(limit));
    let mut sink = engine.sink(conn).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let msg = |len: usize| Outgoing::new(Route::new(0, 1, 0), Bytes::from(vec![7; len]));
    assert!(matches!(
        Pin::new(&mut sink).poll_ready(&mut cx),
        Poll::Ready(Ok(()))
    ));
    Pin::new(&mut sink).start_send(msg(100)).unwrap();
    assert!(matches!(
        Pin::new(&mut sink).poll_ready(&mut cx),
        Poll::Ready(Ok(()))
    ));
    // 100 bytes fit; 1000 do not, but room was promised
    Pin::new(&mut sink).start_send(msg(1000)).unwrap();
    assert!(Pin::new(&mut sink).poll_ready(&mut cx).is_pending());
    // without poll_ready, a message that does not fit is refused
    assert_eq!(
        Pin::new(&mut sink).start_send(msg(0)),
        Err(EnqueueError::QueueFull)
    );
}

/// Regression: with sends left queued because unwritten output was above the
/// high-water mark, a round that then wrote everything out scheduled no further round
/// (no socket event follows a write the socket took whole): the sender stalled for good
/// with thousands of messages queued. Seen with two IO threads and 1 KiB messages.
#[test]
fn sends_left_at_the_write_high_water_mark_are_taken_up() {
    let _fds = shared();
    // any unwritten byte holds the sends back: every writable event that finds some
    // left over (and writes it out) is the case
    let mut cfg = EngineConfig::default()
        .with_io_threads(2)
        .with_ping_interval(None)
        .with_write_high_water(0);
    // a window wide enough for the sender to fill its socket
    for c in [&mut cfg.client, &mut cfg.server] {
        c.limits.initial_credit_packets = 64 * 1024;
        c.limits.initial_credit_bytes = 32 * 1024 * 1024;
    }
    cfg.recv_budget_bytes = 64 * 1024 * 1024;
    let engine = Engine::new(cfg).unwrap();
    let l = engine.listen(local(), TlsOptions::Plaintext).unwrap();
    let tx = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    let mut connected = 0;
    recv_until(&engine, 10, |e| {
        connected += usize::from(matches!(e, AppEvent::Connected { .. }));
        connected == 2
    });
    let payload = Bytes::from(vec![7u8; 1024]);
    let n = 100_000;
    let (mut sent, mut received) = (0, 0);
    let (mut out, mut batch) = (Vec::new(), Vec::new());
    let mut progress = Instant::now();
    while received < n {
        // fill the send queue: a full queue takes nothing, so no new send wakes the
        // IO thread; only the IO thread itself can take the queued sends up again
        loop {
            while sent + out.len() < n && out.len() < 256 {
                out.push(Outgoing::new(Route::new(0, 1, 0), payload.clone()));
            }
            sent += engine.send_many(tx, &mut out).unwrap();
            if !out.is_empty() || sent == n {
                break;
            }
        }
        engine.recv_batch(&mut batch, Duration::from_millis(20));
        let before = received;
        received += messages(&batch).len();
        batch.clear();
        if received > before {
            progress = Instant::now();
        }
        assert!(
            progress.elapsed() < Duration::from_secs(5),
            "stalled: sent {sent}, received {received}, sender {:?}",
            engine.stats(tx)
        );
    }
    assert_eq!(received, n);
}

#[test]
fn connect_takes_any_socket_address_form_and_rejects_an_empty_address_list() {
    let _fds = shared();
    let (server, client) = (engine(), engine());
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let port = l.local_addr.port();
    let text = format!("127.0.0.1:{port}");
    // one at a time: recv_until drops the rest of the batch it stops in
    for i in 0..2 {
        let c = match i {
            0 => client.connect(text.as_str(), TlsOptions::Plaintext),
            _ => client.connect(("127.0.0.1", port), TlsOptions::Plaintext),
        }
        .unwrap();
        let ev = recv_until(
            &client,
            10,
            |e| matches!(e, AppEvent::Connected { conn, .. } | AppEvent::Closed { conn, .. } if *conn == c),
        );
        assert!(
            matches!(ev.last(), Some(AppEvent::Connected { .. })),
            "{ev:?}"
        );
    }
    let none: &[SocketAddr] = &[];
    let err = client.connect(none, TlsOptions::Plaintext).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A connection closed by a timer ends its stream as soon as its GOAWAY is written: the
/// peer sees GOAWAY and then the end of the stream at the timer, not when the linger
/// (here 5 s) runs out.
#[test]
fn a_timer_close_ends_the_stream_at_once_not_after_the_linger() {
    let _fds = shared();
    let mut config = EngineConfig::default();
    config.linger = Duration::from_secs(5);
    config.server.limits.header_timeout_ms = 300;
    let server = Engine::new(config).unwrap();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let mut raw = TcpStream::connect(l.local_addr).unwrap();
    let mut preface_and_part = raw_hello()[..8].to_vec();
    preface_and_part.extend_from_slice(&[0x11, 0x00]); // two bytes of a header
    raw.write_all(&preface_and_part).unwrap();
    let started = Instant::now();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    raw.read_to_end(&mut got).unwrap();
    let elapsed = started.elapsed();
    assert!(
        String::from_utf8_lossy(&got).contains("header timer expired"),
        "no GOAWAY for the header timer: {got:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed before the timer: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "the stream ended only at the linger: {elapsed:?}"
    );
}

/// Graceful close loses nothing (spec §6.4 `[[close.half]]`, `[[close.answer]]`): a peer
/// that writes its last requests and its GOAWAY in one write gets the answers the
/// application sends after reading them. The engine must not answer the GOAWAY for the
/// application while the application still holds or answers this connection's messages;
/// an application that says it is done (`close`) is answered at once, one that does not
/// `answer_quiet` after its last answer — both long before `close_timeout`.
fn answers_after_the_peers_goaway(explicit_close: bool) {
    const N: u32 = 100;
    let _fds = shared();
    let config = EngineConfig::default().with_close_timeout(Duration::from_secs(8));
    let server = Engine::new(config).unwrap();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let mut raw = TcpStream::connect(l.local_addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let epoch = Instant::now();
    let mut client = Connection::new(Config::client(), Duration::ZERO);
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    raw.write_all(&wire).unwrap();
    let mut buf = vec![0; 64 * 1024];
    while !client.is_established() {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "the server's HELLO");
        client.handle_input(epoch.elapsed(), &buf[..n]);
    }
    for i in 0..N {
        let opts = fleetwire::connection::SendOptions::default();
        client
            .send_data(Route::new(0, 1, 0), &i.to_be_bytes(), opts)
            .unwrap();
    }
    client.close(epoch.elapsed(), "done");
    wire.clear();
    client.poll_transmit(&mut wire);
    let sent = Instant::now();
    raw.write_all(&wire).unwrap();

    // the application: answers every request after a little work of its own
    let app = std::thread::spawn(move || {
        let (mut batch, mut answered, mut told) = (Vec::new(), 0, false);
        let (mut conn, mut closed) = (None, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            server.recv_batch(&mut batch, Duration::from_millis(50));
            for e in batch.drain(..) {
                match e {
                    AppEvent::Message(m) => {
                        conn = Some(m.conn);
                        std::thread::sleep(Duration::from_millis(1));
                        let (route, payload) = (m.reply_route(), m.payload.clone());
                        server
                            .send(m.conn, route, payload, SendFlags::default())
                            .unwrap();
                        answered += 1;
                    }
                    AppEvent::GoawayReceived { delivered, .. } => {
                        assert_eq!(delivered, 0, "the client received nothing yet");
                        told = true;
                    }
                    AppEvent::Closed { .. } => return (answered, told),
                    _ => {}
                }
                if let Some(conn) = conn.filter(|_| explicit_close && told && answered == N) {
                    if !std::mem::replace(&mut closed, true) {
                        assert!(server.close(conn));
                    }
                }
            }
        }
        (answered, told)
    });
    let mut answers = 0;
    loop {
        while let Some(event) = client.poll_event() {
            if let fleetwire::connection::Event::Data { .. } = event {
                answers += 1;
            }
        }
        let n = raw.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        client.handle_input(epoch.elapsed(), &buf[..n]);
    }
    let took = sent.elapsed();
    while let Some(event) = client.poll_event() {
        if let fleetwire::connection::Event::Data { .. } = event {
            answers += 1;
        }
    }
    assert_eq!(app.join().unwrap(), (N, true));
    assert_eq!(
        answers, N,
        "every answer arrives before the server's GOAWAY"
    );
    assert!(
        took < Duration::from_secs(3),
        "answered at the close timeout: {took:?}"
    );
}

#[test]
fn requests_written_with_the_goaway_get_the_applications_answers() {
    answers_after_the_peers_goaway(false);
}

#[test]
fn an_application_that_closes_after_the_peers_goaway_answers_at_once() {
    answers_after_the_peers_goaway(true);
}

/// A peer over the sans-IO connection that answers our GOAWAY and then keeps its socket
/// open (its application still holds it) for `hold`: it never sends the EOF a lingering
/// socket waits for.
fn peer_holding_its_socket(hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let start = Instant::now();
        let mut conn = Connection::new(Config::node(1), Duration::ZERO);
        let (mut buf, mut out) = (vec![0u8; 65536], Vec::new());
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        loop {
            while let Some(e) = conn.poll_event() {
                match e {
                    fleetwire::connection::Event::GoawayReceived { .. } => {
                        conn.close(start.elapsed(), "")
                    }
                    fleetwire::connection::Event::Closed { .. } => {
                        conn.poll_transmit(&mut out);
                        let _ = sock.write_all(&out);
                        std::thread::sleep(hold);
                        return;
                    }
                    _ => {}
                }
            }
            conn.poll_transmit(&mut out);
            sock.write_all(&out).unwrap();
            out.clear();
            match sock.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => conn.handle_input(start.elapsed(), &buf[..n]),
                Err(_) => conn.handle_timeout(start.elapsed()),
            }
        }
    });
    addr
}

/// Dropping an engine does not wait for a peer's EOF once both sides have closed: the
/// close was exchanged and our last bytes written with the write side shut, so the
/// linger (here 5 s) only waits for a FIN nobody needs. An async executor dropping an
/// engine must not stall.
#[test]
fn drop_returns_promptly_once_both_sides_have_closed() {
    let _fds = shared();
    for close_first in [true, false] {
        let mut config = EngineConfig::default();
        config.linger = Duration::from_secs(5);
        let engine = Engine::new(config).unwrap();
        let peer = peer_holding_its_socket(Duration::from_secs(10));
        let conn = engine.connect(peer, TlsOptions::Plaintext).unwrap();
        recv_until(&engine, 10, |e| matches!(e, AppEvent::Connected { .. }));
        let bound = if close_first {
            // the close is exchanged and reported before the drop
            assert!(engine.close(conn));
            let ev = recv_until(&engine, 10, |e| matches!(e, AppEvent::Closed { .. }));
            assert!(
                matches!(ev.last(), Some(AppEvent::Closed { code, .. }) if *code == ErrorCode::NO_ERROR),
                "{ev:?}"
            );
            Duration::from_millis(100)
        } else {
            // the drop closes it: one GOAWAY exchange on loopback
            Duration::from_millis(500)
        };
        let started = Instant::now();
        drop(engine);
        let took = started.elapsed();
        assert!(
            took < bound,
            "drop took {took:?} (close first: {close_first}): it waited for the linger"
        );
    }
}

/// A raw client over a blocking socket: its sans-IO connection (which wrote the preface
/// and HELLO) and `count` DATA packets of `size` bytes after them, all within the
/// server's credit.
fn raw_flood(count: usize, size: usize) -> (Connection, Vec<u8>) {
    let mut conn = Connection::new(Config::client(), Duration::ZERO);
    let mut wire = Vec::new();
    conn.poll_transmit(&mut wire);
    for i in 0..count {
        let mut p = vec![0x5A; size];
        p[..8].copy_from_slice(&(i as u64).to_be_bytes());
        fleetwire::Packet::data(Route::new(0, 1, 0), p.into()).encode_to_vec(&mut wire);
    }
    (conn, wire)
}

/// Spec §11 `[[limit.global-budget]]`: many clients that each send up to their credit
/// while the application takes nothing cost no more than the input budget (plus what
/// one round of reads may add), not the sum of their credits; none of them is failed,
/// and once the application takes its messages every packet arrives.
// trace: limit.global-budget
#[test]
fn clients_within_credit_stay_within_the_input_budget() {
    let _fds = shared();
    const CLIENTS: usize = 8;
    const PACKETS: usize = 1000;
    const INPUT: usize = 256 * 1024;
    let mut sc = EngineConfig::default()
        .with_recv_budget_bytes(32 * 1024)
        .with_global_recv_budget_bytes(64 * 1024)
        .with_global_input_bytes(INPUT)
        // reads smaller than the 16 KiB an over-budget connection may read
        .with_read_buffer(4096);
    sc.server.limits.initial_credit_bytes = 1024 * 1024;
    let server = Engine::new(sc).unwrap();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let writers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(l.local_addr).unwrap();
            std::thread::spawn(move || {
                s.write_all(&raw_flood(PACKETS, 1000).1).unwrap();
                s // held open, never read
            })
        })
        .collect();
    // the application takes nothing for a while: the writers' bytes stay in the kernel
    std::thread::sleep(Duration::from_millis(1500));
    let (held, high) = server.held_input_bytes();
    // one round of the connection that crossed the budget (up to 128 KiB and one read
    // of 64 KiB) and one small read of each of the others
    let bound = INPUT + 192 * 1024 + CLIENTS * 16 * 1024;
    assert!(high <= bound, "held {high} bytes, bound {bound}");
    assert!(held > INPUT / 2, "the budget was used: {held}");
    // every connection within its credit: none failed; everything arrives in order
    let mut next = std::collections::HashMap::<ConnId, u64>::new();
    let (mut got, mut batch) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < CLIENTS * PACKETS {
        assert!(Instant::now() < deadline, "only {got} messages");
        server.recv_batch(&mut batch, Duration::from_millis(50));
        for e in batch.drain(..) {
            match e {
                AppEvent::Message(m) => {
                    let next = next.entry(m.conn).or_default();
                    assert_eq!(&m.payload[..8], &next.to_be_bytes());
                    *next += 1;
                    got += 1;
                }
                AppEvent::Closed { code, reason, .. } => panic!("closed: {code} {reason}"),
                _ => {}
            }
        }
    }
    for w in writers {
        drop(w.join().unwrap());
    }
    assert!(server.held_input_bytes().1 <= bound);
}

/// Spec §11 `[[limit.global-budget]]`: over the budget, a client whose packets wait and
/// that reads nothing we send is closed with FLOOD after the stall timeout; its GOAWAY's
/// `delivered` counts exactly the packets the application got.
// trace: limit.global-budget
#[test]
fn a_stalled_client_over_the_input_budget_is_closed_with_flood() {
    let _fds = shared();
    let mut sc = EngineConfig::default()
        .with_recv_budget_bytes(32 * 1024)
        .with_global_recv_budget_bytes(32 * 1024)
        .with_global_input_bytes(64 * 1024)
        .with_write_high_water(64 * 1024)
        .with_stall_timeout(Duration::from_millis(300));
    sc.server.limits.initial_credit_bytes = 1024 * 1024;
    let server = Engine::new(sc).unwrap();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let (mut client, wire) = raw_flood(900, 1000);
    let mut s = TcpStream::connect(l.local_addr).unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = s.write_all(&wire); // fails once the server closes: that is the test
        })
    };
    // (the messages that come with `Connected` count too)
    let (mut conn, mut taken, mut batch) = (None, 0u64, Vec::new());
    while conn.is_none() {
        server.recv_batch(&mut batch, Duration::from_secs(10));
        for e in batch.drain(..) {
            match e {
                AppEvent::Connected { conn: c, .. } => conn = Some(c),
                AppEvent::Message(_) => taken += 1,
                _ => {}
            }
        }
    }
    let conn = conn.unwrap();
    // the application answers with more than the client will read (loopback's socket
    // buffers take megabytes), and takes none of the client's messages for now
    for _ in 0..250 {
        let payload = Bytes::from(vec![1; 60_000]);
        let _ = server.send(conn, Route::new(0, 1, 0), payload, SendFlags::default());
    }
    // the stall timeout passes while the application takes nothing
    std::thread::sleep(Duration::from_millis(1500));
    let (mut closed, deadline) = (None, Instant::now() + Duration::from_secs(10));
    while closed.is_none() {
        assert!(
            Instant::now() < deadline,
            "not closed; {taken} messages, held {:?}, {:?}",
            server.held_input_bytes(),
            server.stats(conn)
        );
        server.recv_batch(&mut batch, Duration::from_millis(50));
        for e in batch.drain(..) {
            match e {
                AppEvent::Message(_) => taken += 1,
                AppEvent::Closed { code, by_peer, .. } => closed = Some((code, by_peer)),
                _ => {}
            }
        }
    }
    assert_eq!(closed, Some((ErrorCode::FLOOD, false)));
    assert!(taken < 900, "the flood was cut short: {taken}");
    // the client reads everything now: the answers, then GOAWAY FLOOD with `delivered`
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        client.handle_input(Duration::ZERO, &buf[..n]);
    }
    let last = std::iter::from_fn(|| client.poll_event()).last();
    let Some(fleetwire::connection::Event::Closed {
        code, delivered, ..
    }) = last
    else {
        panic!("{last:?}")
    };
    assert_eq!((code, delivered), (ErrorCode::FLOOD, Some(taken)));
    writer.join().unwrap();
}

/// Spec §11 `[[limit.global-budget]]`: peers that read nothing cost the engine at most
/// the output budget plus a small high-water mark each, not `write_high_water` each.
// trace: limit.global-budget
#[test]
fn peers_that_read_nothing_stay_within_the_output_budget() {
    let _fds = shared();
    const PEERS: usize = 8;
    const OUTPUT: usize = 512 * 1024;
    let config = EngineConfig::default()
        .with_global_output_bytes(OUTPUT)
        .with_write_high_water(1024 * 1024);
    let server = Engine::new(config).unwrap();
    let l = server.listen(local(), TlsOptions::Plaintext).unwrap();
    let mut peers = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..PEERS {
        let mut s = TcpStream::connect(l.local_addr).unwrap();
        // a HELLO that grants us far more credit than the peer's socket will take
        let mut c = Config::client();
        c.limits.initial_credit_bytes = 64 * 1024 * 1024;
        let mut hello = Connection::new(c, Duration::ZERO);
        let mut wire = Vec::new();
        hello.poll_transmit(&mut wire);
        s.write_all(&wire).unwrap();
        peers.push(s);
        let ev = recv_until(&server, 10, |e| matches!(e, AppEvent::Connected { .. }));
        conns.push(ev.last().unwrap().conn());
    }
    for &conn in &conns {
        for _ in 0..160 {
            let payload = Bytes::from(vec![3; 60_000]);
            let _ = server.send(conn, Route::new(0, 1, 0), payload, SendFlags::default());
        }
    }
    // one round of each (up to 256 KiB) above the lowered mark of 64 KiB
    let bound = OUTPUT + PEERS * (64 + 256 + 64) * 1024;
    let (mut high, until) = (0, Instant::now() + Duration::from_millis(1500));
    while Instant::now() < until {
        high = high.max(server.unwritten_bytes());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(high > OUTPUT / 2, "the peers' sockets filled: {high}");
    assert!(high <= bound, "{high} bytes unwritten, bound {bound}");
}

#[test]
fn each_io_thread_runs_the_start_hook_on_itself_before_its_loop() {
    let _g = shared();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let config = EngineConfig::default()
        .with_io_threads(3)
        .with_on_io_thread_start(Some(fleetwire::transport::IoThreadStart::new(
            move |index| {
                let name = std::thread::current().name().map(str::to_owned);
                record.lock().unwrap().push((index, name));
            },
        )));
    let mut engine = Engine::new(config).unwrap();
    // shutdown joins the IO threads: each has run its hook by then
    assert!(engine.shutdown(Duration::from_secs(5)));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let expected: Vec<_> = (0..3)
        .map(|i| (i, Some(format!("fleetwire-io-{i}"))))
        .collect();
    assert_eq!(seen, expected);
}

/// A native echo on service 9; a raw client (the sans-IO connection over a socket) that
/// announces a window of 4 packets and grants no credit back unless `grant`: the
/// engine's replies wait for credit that never comes.
fn withheld_credit_round(
    client: &mut Connection,
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
    grant: bool,
    sent: &mut usize,
    echoed: &mut usize,
) {
    let now = Duration::ZERO;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => panic!("the engine closed the connection"),
            Ok(n) => client.handle_input(now, &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    if grant {
        while let Some(ev) = client.poll_event() {
            if matches!(ev, fleetwire::connection::Event::Data { .. }) {
                *echoed += 1;
            }
        }
    }
    while client
        .send_data(Route::new(0, 9, 0), &[7; 100], Default::default())
        .is_ok()
    {
        *sent += 1;
    }
    client.poll_transmit(out);
    match sock.write(out) {
        Ok(n) => drop(out.drain(..n)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_peer_that_withholds_credit_cannot_grow_a_native_handlers_replies() {
    let _g = shared();
    // replies bounded as a send queue is: 64 packets
    let mut cfg = EngineConfig::default().with_send_queue_packets(64);
    cfg.server.limits.initial_credit_packets = 32;
    let engine = Engine::new(cfg).unwrap();
    engine.register_handler(
        9,
        Box::new(|m: &ConnMessage, reply: &mut fleetwire::transport::Reply| {
            reply.send(m.route, m.payload.clone(), SendFlags::default());
        }),
    );
    let lst = engine.listen(local(), TlsOptions::Plaintext).unwrap();
    let mut sock = TcpStream::connect(lst.local_addr).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut cc = Config::client();
    cc.limits.initial_credit_packets = 4;
    let mut client = Connection::new(cc, Duration::ZERO);
    let (mut out, mut sent, mut echoed) = (Vec::new(), 0, 0);
    let settle = |client: &mut Connection,
                  sock: &mut TcpStream,
                  out: &mut Vec<u8>,
                  grant,
                  sent: &mut usize,
                  echoed: &mut usize| {
        // until nothing moves for 300 ms (at most 10 s)
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut last, mut since) = (usize::MAX, Instant::now());
        while Instant::now() < deadline && since.elapsed() < Duration::from_millis(300) {
            withheld_credit_round(client, sock, out, grant, sent, echoed);
            if *sent != last {
                (last, since) = (*sent, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    settle(
        &mut client,
        &mut sock,
        &mut out,
        false,
        &mut sent,
        &mut echoed,
    );
    // 4 echoes went out on our window; 64 replies wait; the engine took no more
    // messages, so granted back no more than those 68, plus its window of 32
    assert!(
        sent >= 4 + 64,
        "the handler ran up to its bound: {sent} sent"
    );
    assert!(
        sent <= 4 + 64 + 32,
        "{sent} messages taken: the replies grew past the bound"
    );
    // our credit back: the replies drain, the engine takes messages again
    let before = sent;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until && sent < before + 1000 {
        withheld_credit_round(
            &mut client,
            &mut sock,
            &mut out,
            true,
            &mut sent,
            &mut echoed,
        );
    }
    assert!(
        sent >= before + 1000,
        "resumed: {sent} sent, {echoed} echoed"
    );
}

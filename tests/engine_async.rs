//! The engine's async face (feature `transport-async`): the event stream ends after
//! `Engine::shutdown` and after the engine is dropped; `Sink::poll_close` writes every
//! queued message before the GOAWAY; a connection's own stream (`Engine::events_for`)
//! sees only its events and ends after its `Closed`.
#![cfg(feature = "transport-async")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use fleetwire::transport::{
    AppEvent, ConnEventStream, Engine, EngineConfig, EventStream, Outgoing, SendFlags, TlsOptions,
};
use fleetwire::Route;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn next(events: &mut EventStream) -> Option<AppEvent> {
    timeout(WAIT, poll_fn(|cx| Pin::new(&mut *events).poll_next(cx)))
        .await
        .expect("the stream yields or ends")
}

/// An engine with one connection to itself, connected.
async fn connected() -> (Engine, EventStream, fleetwire::transport::ConnId) {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let l = engine
        .listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext)
        .unwrap();
    let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    let mut events = engine.events();
    let mut connected = 0;
    while connected < 2 {
        if let Some(AppEvent::Connected { .. }) = next(&mut events).await {
            connected += 1;
        }
    }
    (engine, events, conn)
}

#[tokio::test]
async fn event_stream_ends_after_shutdown() {
    let (mut engine, mut events, _conn) = connected().await;
    assert!(engine.shutdown(WAIT));
    let mut after = Vec::new();
    while let Some(e) = next(&mut events).await {
        after.push(e); // the closes of both sides, then the end
    }
    assert!(
        after.iter().any(|e| matches!(e, AppEvent::Closed { .. })),
        "{after:?}"
    );
    assert!(next(&mut events).await.is_none(), "stays ended");
}

#[tokio::test]
async fn event_stream_ends_when_the_engine_is_dropped() {
    let (engine, mut events, _conn) = connected().await;
    drop(engine);
    while next(&mut events).await.is_some() {}
}

#[tokio::test]
async fn sink_close_writes_every_queued_message_first() {
    const N: usize = 5000;
    let (engine, mut events, conn) = connected().await;
    let mut sink = engine.sink(conn).unwrap();
    let mut sink = Pin::new(&mut sink);
    for i in 0..N {
        poll_fn(|cx| sink.as_mut().poll_ready(cx)).await.unwrap();
        let payload = Bytes::from((i as u32).to_be_bytes().to_vec());
        sink.as_mut()
            .start_send(Outgoing::new(Route::default(), payload))
            .unwrap();
    }
    timeout(WAIT, poll_fn(|cx| sink.as_mut().poll_close(cx)))
        .await
        .unwrap()
        .unwrap();
    // close returned: nothing is left in the send queue (it was written)
    if let Some(stats) = engine.stats(conn) {
        assert_eq!(
            stats.send_queue_packets, 0,
            "close returned with packets queued"
        );
        assert_eq!(
            stats.packets_out as usize, N,
            "all written when close returned"
        );
    }
    let (mut received, mut closed) = (0, 0);
    while closed < 2 {
        match next(&mut events).await.expect("both sides close") {
            AppEvent::Message(_) => received += 1,
            AppEvent::Closed { .. } => closed += 1,
            AppEvent::Undelivered { queued, .. } => panic!("{queued} messages left queued"),
            _ => {}
        }
    }
    assert_eq!(received, N, "every message sent before the close arrived");
}

/// A per-connection stream's next event, bounded.
async fn next_own(events: &mut ConnEventStream) -> Option<AppEvent> {
    timeout(WAIT, poll_fn(|cx| Pin::new(&mut *events).poll_next(cx)))
        .await
        .expect("the stream yields or ends")
}

/// An echo server (a native handler on service 1) in its own engine.
fn echo_server() -> (Engine, std::net::SocketAddr) {
    let server = Engine::new(EngineConfig::default()).unwrap();
    server.register_handler(
        1,
        Box::new(|m, reply| reply.send(m.route, m.payload.clone(), SendFlags::default())),
    );
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext)
        .unwrap();
    (server, l.local_addr)
}

/// One task per connection: each sees its own connection's events only — its handshake,
/// its echoes, its close — and its stream ends after its `Closed`; the engine-wide queue
/// sees none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_stream_sees_only_its_own_events_and_ends_after_closed() {
    const N: usize = 200;
    let (_server, addr) = echo_server();
    let client = std::sync::Arc::new(Engine::new(EngineConfig::default()).unwrap());
    let mut tasks = Vec::new();
    for tag in [b'a', b'b'] {
        let conn = client.connect(addr, TlsOptions::Plaintext).unwrap();
        let mut own = client.events_for(conn).unwrap();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut sink = client.sink(conn).unwrap();
            let mut sink = Pin::new(&mut sink);
            for i in 0..N {
                poll_fn(|cx| sink.as_mut().poll_ready(cx)).await.unwrap();
                let payload = Bytes::from(vec![tag, i as u8]);
                let out = Outgoing::new(Route::new(0, 1, 0), payload);
                sink.as_mut().start_send(out).unwrap();
            }
            let mut seen = Vec::new();
            let mut echoes = 0;
            while let Some(e) = next_own(&mut own).await {
                assert_eq!(e.conn(), conn, "another connection's event: {e:?}");
                if let AppEvent::Message(m) = &e {
                    assert_eq!(m.payload[0], tag, "another connection's echo");
                    echoes += 1;
                    if echoes == N {
                        client.close(conn);
                    }
                }
                seen.push(e);
            }
            assert!(
                matches!(seen.first(), Some(AppEvent::Connected { .. })),
                "{seen:?}"
            );
            assert!(
                matches!(seen.last(), Some(AppEvent::Closed { .. })),
                "{seen:?}"
            );
            assert_eq!(echoes, N);
            assert!(next_own(&mut own).await.is_none(), "stays ended");
            conn
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.unwrap());
    }
    assert_ne!(conns[0], conns[1]);
    let mut rest = Vec::new();
    client.recv_batch(&mut rest, Duration::from_millis(100));
    assert!(
        rest.iter().all(|e| !conns.contains(&e.conn())),
        "the engine-wide queue got a connection's event: {rest:?}"
    );
}

/// Events that arrived before the stream was made move into it; one stream per
/// connection; a dropped stream hands what it did not yield back to the engine's queue.
#[tokio::test]
async fn a_connection_stream_takes_earlier_events_and_gives_back_the_rest() {
    let (_server, addr) = echo_server();
    let client = Engine::new(EngineConfig::default()).unwrap();
    let conn = client.connect(addr, TlsOptions::Plaintext).unwrap();
    for i in 0..3u8 {
        let payload = Bytes::from(vec![i]);
        client
            .send(conn, Route::new(0, 1, 0), payload, SendFlags::default())
            .unwrap();
    }
    // the handshake and the three echoes arrive before any stream exists
    while client.stats(conn).is_none_or(|s| s.packets_in < 3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut own = client.events_for(conn).unwrap();
    assert!(
        client.events_for(conn).is_none(),
        "one stream per connection"
    );
    assert!(matches!(
        next_own(&mut own).await,
        Some(AppEvent::Connected { .. })
    ));
    assert!(matches!(next_own(&mut own).await, Some(AppEvent::Message(m)) if m.payload[..] == [0]));
    drop(own); // two echoes not yielded
    let mut back = Vec::new();
    client.recv_batch(&mut back, Duration::from_secs(1));
    let payloads: Vec<u8> = back
        .iter()
        .filter_map(|e| match e {
            AppEvent::Message(m) => Some(m.payload[0]),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [1, 2], "{back:?}");
    assert_eq!(
        client.recv_queue_bytes().0,
        0,
        "the budget is credited once"
    );
    assert!(client.events_for(conn).is_some(), "free again once dropped");
}

/// A connection's stream ends when the engine shuts down, even with its connection
/// still open at that moment.
#[tokio::test]
async fn a_connection_stream_ends_at_shutdown() {
    let (_server, addr) = echo_server();
    let mut client = Engine::new(EngineConfig::default()).unwrap();
    let conn = client.connect(addr, TlsOptions::Plaintext).unwrap();
    let mut own = client.events_for(conn).unwrap();
    assert!(matches!(
        next_own(&mut own).await,
        Some(AppEvent::Connected { .. })
    ));
    client.shutdown(WAIT);
    while next_own(&mut own).await.is_some() {}
}

//! The engine's async face (feature `transport-async`): the event stream ends after
//! `Engine::shutdown` and after the engine is dropped; `Sink::poll_close` writes every
//! queued message before the GOAWAY.
#![cfg(feature = "transport-async")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use fleetwire::transport::{AppEvent, Engine, EngineConfig, EventStream, Outgoing, TlsOptions};
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

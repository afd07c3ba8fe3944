//! The tokio driver (`fleetwire::tokio`) against the reference node in both directions
//! (our tokio client → `fleetwire::node::serve`; `fleetwire::node::connect` → our tokio
//! server), over TLS with tokio-rustls, and against itself over an in-memory duplex:
//! backpressure at exactly the credit, the stream's end, graceful close.
//!
//! Everything runs on 127.0.0.1 and every wait is bounded.
#![cfg(all(feature = "tokio", feature = "node", feature = "test-certs"))]

use std::future::poll_fn;
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::thread;
use std::time::Duration;

use fleetwire::connection::{Config, Event, Identity};
use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
use fleetwire::tls::{client_config, generate_test_pki};
use fleetwire::tokio::{Connection, Error, Outgoing};
use fleetwire::{ErrorCode, Limits, Route};
use futures_sink::Sink;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// A reference node serving on a thread until its `max_conns` connections closed.
fn reference_node(opts: NodeOptions) -> (std::net::SocketAddr, thread::JoinHandle<()>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let node = thread::spawn(move || serve(listener, opts).unwrap());
    (addr, node)
}

/// Sends `n` messages of growing size, reads every echo back in order.
async fn echo_n<T>(conn: &mut Connection<T>, n: usize)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..n {
        let payload = vec![(i % 251) as u8; i * 37 % 5000];
        conn.send(Route::new(0, 2, i as u8), payload.clone())
            .await
            .unwrap();
        let event = timeout(WAIT, conn.recv()).await.unwrap();
        let Some(Ok(Event::Data {
            route,
            payload: got,
            ..
        })) = event
        else {
            panic!("expected the echo of message {i}, got {event:?}");
        };
        assert_eq!((route.service, route.channel), (2, i as u8));
        assert_eq!(got, payload, "echo {i}");
    }
}

#[tokio::test]
async fn tokio_client_to_reference_node() {
    let mut opts = NodeOptions::new(7, NodeSecurity::Plaintext);
    opts.max_conns = Some(1);
    let (addr, node) = reference_node(opts);
    let sock = TcpStream::connect(addr).await.unwrap();
    let mut conn = timeout(WAIT, Connection::handshake(sock, Config::client()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.peer().unwrap().node_id, 7);
    let rtt = conn.ping().await.unwrap();
    assert!(rtt < WAIT, "{rtt:?}");
    echo_n(&mut conn, 200).await;
    let closed = timeout(WAIT, conn.close("done")).await.unwrap().unwrap();
    assert_eq!((closed.code, closed.by_peer), (ErrorCode::NO_ERROR, false));
    assert_eq!(closed.delivered, Some(200), "the node processed all 200");
    // the stream ends with the same Closed, then None
    let last = conn.recv().await;
    assert!(
        matches!(
            last,
            Some(Ok(Event::Closed {
                code: ErrorCode::NO_ERROR,
                ..
            }))
        ),
        "{last:?}"
    );
    assert!(conn.recv().await.is_none());
    assert!(conn.recv().await.is_none(), "stays ended");
    tokio::task::spawn_blocking(move || node.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn tokio_client_over_tokio_rustls_to_reference_tls_node() {
    let pki = generate_test_pki(&["localhost"], Some(3)).unwrap();
    let security =
        NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    let mut opts = NodeOptions::new(3, security);
    opts.max_conns = Some(1);
    let (addr, node) = reference_node(opts);

    // client_config sets ALPN fleetwire/1 and TLS 1.3 only (spec §10.1)
    let tls = client_config(pki.ca_cert_pem.as_bytes(), None).unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let sock = TcpStream::connect(addr).await.unwrap();
    let stream = connector.connect(name, sock).await.unwrap();
    // spec §10.2 [[tls.node-binding]]: the HELLO must match the certificate's id
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let identity = fleetwire::tls::identity_from_cert(&cert);
    assert_eq!(identity, Some(Identity::node(3)));
    let config = Config::client().with_authenticated(identity);
    let mut conn = timeout(WAIT, Connection::handshake(stream, config))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.peer().unwrap().node_id, 3);
    echo_n(&mut conn, 50).await;
    let closed = timeout(WAIT, conn.close("")).await.unwrap().unwrap();
    assert_eq!(
        (closed.code, closed.delivered),
        (ErrorCode::NO_ERROR, Some(50))
    );
    tokio::task::spawn_blocking(move || node.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn reference_client_to_tokio_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::task::spawn_blocking(move || {
        let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
        opts.timeout = WAIT;
        let mut client = connect(addr, opts).unwrap();
        assert_eq!(client.peer().unwrap().node_id, 9);
        let mut rtts = Vec::new();
        for i in 0..100u8 {
            let payload = vec![i; usize::from(i) * 13];
            rtts.push(client.echo(Route::new(9, 1, i), &payload).unwrap());
        }
        client.ping().unwrap();
        client.close().unwrap()
    });
    let (sock, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut server = Connection::handshake(sock, Config::node(9)).await.unwrap();
    assert_eq!(
        server.peer().unwrap().role,
        fleetwire::control::Role::Client
    );
    let mut echoed = 0;
    let closed = loop {
        match timeout(WAIT, server.recv()).await.unwrap() {
            Some(Ok(Event::Data { route, payload, .. })) => {
                assert_eq!(payload.len(), usize::from(route.channel) * 13);
                server
                    .send(Route::new(0, 1, route.channel), payload)
                    .await
                    .unwrap();
                echoed += 1;
            }
            // §6.4 half-close: every request has arrived and been answered; our GOAWAY
            // is the answer
            Some(Ok(Event::GoawayReceived { delivered, .. })) => {
                assert_eq!(delivered, 100, "the client processed every echo");
                break timeout(WAIT, server.close("")).await.unwrap().unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(echoed, 100);
    assert_eq!(
        (closed.code, closed.by_peer, closed.delivered),
        (ErrorCode::NO_ERROR, true, Some(100)),
        "the client's GOAWAY"
    );
    assert!(matches!(
        server.recv().await,
        Some(Ok(Event::Closed { .. }))
    ));
    assert!(server.recv().await.is_none());
    let info = client.await.unwrap();
    assert_eq!(
        (info.code, info.delivered),
        (ErrorCode::NO_ERROR, Some(100))
    );
}

/// A node config that grants `packets` packets of credit (§8).
fn node_with_credit(packets: u32) -> Config {
    Config::node(1).with_limits(Limits::default().with_initial_credit_packets(packets))
}

/// Backpressure through credit: with the receiver not reading, exactly its credit is
/// accepted and the next message waits (limit and limit + 1); once it reads, every
/// message arrives, in order, and none is lost.
#[tokio::test]
async fn send_waits_at_exactly_the_credit() {
    const CREDIT: u32 = 8;
    let (a, b) = tokio::io::duplex(1 << 20);
    let (client, node) = tokio::join!(
        Connection::handshake(a, Config::client()),
        Connection::handshake(b, node_with_credit(CREDIT))
    );
    let (mut client, mut node) = (client.unwrap(), node.unwrap());
    for i in 0..CREDIT {
        timeout(
            WAIT,
            client.send(Route::new(1, 0, 0), i.to_be_bytes().to_vec()),
        )
        .await
        .expect("within the credit: not blocked")
        .unwrap();
    }
    assert_eq!(client.connection().send_credit().0, 0);
    let blocked = timeout(
        Duration::from_millis(300),
        client.send(Route::new(1, 0, 0), "y"),
    )
    .await;
    assert!(blocked.is_err(), "credit + 1 must wait for CREDIT");

    // The receiver reads: credit returns, the sender goes on, nothing is lost.
    let n = 200u32;
    let sender = tokio::spawn(async move {
        for i in CREDIT..n {
            let payload = i.to_be_bytes().to_vec();
            client.send(Route::new(1, 0, 0), payload).await.unwrap();
        }
        client.close("").await.unwrap()
    });
    let mut seen = Vec::new();
    loop {
        match timeout(WAIT, node.recv()).await.unwrap() {
            Some(Ok(Event::Data { payload, .. })) => {
                seen.push(u32::from_be_bytes(payload[..].try_into().unwrap()))
            }
            Some(Ok(Event::GoawayReceived { .. })) => {
                let closed = timeout(WAIT, node.close("")).await.unwrap().unwrap();
                assert_eq!(closed.code, ErrorCode::NO_ERROR);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (0..n).collect::<Vec<_>>());
    let closed = sender.await.unwrap();
    assert_eq!(closed.delivered, Some(u64::from(n)));
}

/// The `Sink`: `poll_ready`/`start_send` take messages as credit allows, `poll_close`
/// delivers every one of them before the GOAWAY.
#[tokio::test]
async fn sink_close_delivers_everything() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let receiver = tokio::spawn(async move {
        let mut node = Connection::handshake(b, node_with_credit(16))
            .await
            .unwrap();
        node.set_max_inbox(1);
        let mut got = 0u32;
        while let Some(event) = node.recv().await {
            match event.unwrap() {
                Event::Data { .. } => got += 1,
                Event::GoawayReceived { .. } => drop(node.close("").await.unwrap()),
                Event::Closed {
                    code, delivered, ..
                } => {
                    assert_eq!(code, ErrorCode::NO_ERROR);
                    assert_eq!(delivered, Some(0), "we sent no DATA");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    });
    let mut client = Connection::new(a, Config::client());
    let mut sink = Pin::new(&mut client);
    for i in 0..1000u32 {
        poll_fn(|cx| sink.as_mut().poll_ready(cx)).await.unwrap();
        let message = Outgoing::new(Route::new(1, 0, 0), i.to_be_bytes().to_vec());
        sink.as_mut().start_send(message).unwrap();
    }
    timeout(WAIT, poll_fn(|cx| sink.as_mut().poll_close(cx)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeout(WAIT, receiver).await.unwrap().unwrap(), 1000);
    // the close record says the peer processed all of them
    let closed = loop {
        match client.recv().await {
            Some(Ok(Event::Closed { delivered, .. })) => break delivered,
            Some(_) => {}
            None => panic!("no Closed"),
        }
    };
    assert_eq!(closed, Some(1000));
    assert!(client.recv().await.is_none());
    let refused = poll_fn(|cx| Pin::new(&mut client).poll_ready(cx)).await;
    assert!(matches!(refused, Err(Error::Closed(_))), "{refused:?}");
}

/// A peer that is not Fleetwire: BAD_PREFACE, reported by the handshake.
#[tokio::test]
async fn handshake_fails_on_a_bad_preface() {
    use tokio::io::AsyncWriteExt;
    let (a, mut b) = tokio::io::duplex(1024);
    b.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let err = timeout(WAIT, Connection::handshake(a, Config::node(1)))
        .await
        .unwrap()
        .unwrap_err();
    let Error::Closed(info) = err else {
        panic!("{err:?}")
    };
    assert_eq!(info.code, ErrorCode::BAD_PREFACE);
}

/// The handshake timer runs on tokio's clock (§6.5): a silent peer is closed with
/// TIMEOUT after `handshake_timeout_ms`, not earlier.
#[tokio::test(start_paused = true)]
async fn silent_peer_times_out_on_tokio_time() {
    let (a, _b) = tokio::io::duplex(1024);
    let started = tokio::time::Instant::now();
    let err = Connection::handshake(a, Config::node(1)).await.unwrap_err();
    let Error::Closed(info) = err else {
        panic!("{err:?}")
    };
    assert_eq!(info.code, ErrorCode::TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

/// Dropping the peer's end without GOAWAY: CONNECTION_LOST, then the stream ends.
#[tokio::test]
async fn stream_ends_after_connection_lost() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (client, node) = tokio::join!(
        Connection::handshake(a, Config::client()),
        Connection::handshake(b, Config::node(1))
    );
    let mut client = client.unwrap();
    drop(node);
    let e = timeout(WAIT, client.recv()).await.unwrap();
    assert!(
        matches!(
            e,
            Some(Ok(Event::Closed {
                code: ErrorCode::CONNECTION_LOST,
                ..
            }))
        ),
        "{e:?}"
    );
    assert!(client.recv().await.is_none());
    assert!(matches!(
        client.send(Route::default(), "late").await,
        Err(Error::Closed(_))
    ));
}

/// A connection over a `Send` stream can move between tasks (`tokio::spawn`).
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Connection<TcpStream>>();
};

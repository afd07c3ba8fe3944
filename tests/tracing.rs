//! `tracing` events (feature `tracing`, on with `node` and `transport`): each layer emits
//! what an operator needs — connections opened and closed with code and reason, packet
//! errors, floods and budgets hit, routes up and down — and a test subscriber sees them
//! on the threads the library starts.
#![cfg(feature = "tracing")]

#[path = "support/capture.rs"]
mod capture;

use std::time::Duration;

use capture::Capture;
use fleetwire::connection::{Config, Pair, SendOptions};
use fleetwire::{ErrorCode, Route};
use tracing::Level;

const WAIT: Duration = Duration::from_secs(10);

/// A PING flood closes the connection with FLOOD: a WARN naming the limit, then the
/// close with its code and reason.
#[test]
fn a_flood_is_a_warning_and_the_close_names_its_code() {
    let log = Capture::default();
    tracing::subscriber::with_default(log.clone(), || {
        let mut pair = Pair::new(Config::client(), Config::node(1).with_max_ping_rate(2));
        pair.drive();
        for _ in 0..4 {
            pair.a.send_ping(pair.now);
        }
        pair.drive();
    });
    let warn = log.wait_for(WAIT, |e| e.level == Level::WARN);
    assert_eq!(
        warn.field("code"),
        Some(&*ErrorCode::FLOOD.to_string()),
        "{warn:?}"
    );
    assert!(warn.target.starts_with("fleetwire::connection"), "{warn:?}");
    assert!(warn.message.contains("PING rate"), "{warn:?}");
    let closed = log.wait_for(WAIT, |e| {
        e.message == "connection closed" && e.field("by_peer") == Some("false")
    });
    assert_eq!(closed.field("code"), Some(&*ErrorCode::FLOOD.to_string()));
    assert_eq!(
        closed.field("reason"),
        Some("PING rate above the configured limit")
    );
    // and the other side sees the peer's GOAWAY, then its own close by the peer
    log.wait_for(WAIT, |e| e.message == "GOAWAY received");
}

/// A packet error (DATA for another node, sent to a node that is no proxy) is a DEBUG
/// event with its code, and nothing is logged above DEBUG for it.
#[test]
fn a_packet_error_is_a_debug_event() {
    let log = Capture::default();
    tracing::subscriber::with_default(log.clone(), || {
        let mut pair = Pair::client_server();
        pair.drive();
        pair.a
            .send_data(Route::new(5, 0, 0), b"elsewhere", SendOptions::default())
            .unwrap();
        pair.drive();
    });
    let e = log.wait_for(WAIT, |e| e.message == "packet error");
    assert_eq!(e.level, Level::DEBUG);
    assert_eq!(
        e.field("code"),
        Some(&*ErrorCode::NO_ROUTE.to_string()),
        "{e:?}"
    );
    assert!(
        log.events().iter().all(|e| e.level > Level::INFO),
        "{:#?}",
        log.events()
    );
}

#[cfg(feature = "transport")]
mod engine {
    use super::*;
    use bytes::Bytes;
    use fleetwire::transport::{AppEvent, Engine, EngineConfig, SendFlags, TlsOptions};

    /// The engine's IO threads log to the subscriber of the thread that created the
    /// engine: connections opened, established and closed, each event naming its
    /// connection, and the connection state machine's events inside the connection's
    /// span.
    #[test]
    fn engine_connections_are_logged_with_their_ids() {
        let log = Capture::default();
        let engine = tracing::subscriber::with_default(log.clone(), || {
            Engine::new(EngineConfig::default()).unwrap()
        });
        let l = engine
            .listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext)
            .unwrap();
        let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
        let id = conn.to_string();
        log.wait_for(WAIT, |e| {
            e.message == "connection established" && e.field("conn") == Some(&id)
        });
        assert!(engine.close(conn));
        let closed = log.wait_for(WAIT, |e| {
            e.message == "connection closed"
                && e.target == "fleetwire::transport::conn"
                && e.field("conn") == Some(&id)
        });
        assert_eq!(closed.field("code"), Some("NO_ERROR (0x0000)"));
        let opened = log.events();
        let opened = opened.iter().filter(|e| e.message == "connection opened");
        assert_eq!(opened.count(), 2, "both ends: {:#?}", log.events());
        let sm = log.wait_for(WAIT, |e| e.target.starts_with("fleetwire::connection"));
        assert!(
            sm.spans.iter().any(|s| s.starts_with("conn{id=")),
            "the state machine's event is in the connection's span: {sm:?}"
        );
        drop(engine);
    }

    /// A receive budget that fills (the application does not take its messages) is a
    /// DEBUG event naming the connection.
    #[test]
    fn a_full_receive_budget_is_logged() {
        let log = Capture::default();
        let mut config = EngineConfig::default();
        config.recv_budget_bytes = 4096;
        let engine =
            tracing::subscriber::with_default(log.clone(), || Engine::new(config).unwrap());
        let l = engine
            .listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext)
            .unwrap();
        let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
        for _ in 0..64 {
            let payload = Bytes::from(vec![7u8; 1000]);
            let _ = engine.send(conn, Route::default(), payload, SendFlags::default());
        }
        let e = log.wait_for(WAIT, |e| e.message.starts_with("receive budget full"));
        assert_eq!(e.level, Level::DEBUG);
        assert!(e.field("conn").is_some(), "{e:?}");
        let mut events = Vec::new();
        engine.recv_batch(&mut events, Duration::ZERO);
        assert!(events.iter().any(|e| matches!(e, AppEvent::Message(_))));
    }
}

#[cfg(all(feature = "transport", feature = "node"))]
mod proxy {
    use super::*;
    use fleetwire::node::{serve, NodeOptions, NodeSecurity};
    use fleetwire::transport::proxy::{Proxy, ProxyConfig};
    use std::net::TcpListener;

    /// The proxy logs each route going up and, when its node goes away, down, with the
    /// close's code: INFO, as `fleetwire proxy` prints them.
    #[test]
    fn routes_going_up_and_down_are_info_events() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
        opts.trusted_peers.push("127.0.0.1".parse().unwrap());
        let stop = opts.shutdown.clone();
        let node = std::thread::spawn(move || serve(listener, opts));
        let log = Capture::default();
        let proxy = tracing::subscriber::with_default(log.clone(), || {
            let mut config = ProxyConfig::new(9, "127.0.0.1:0".parse().unwrap());
            config.routes.insert(1, addr);
            Proxy::start(config).unwrap()
        });
        let up = log.wait_for(WAIT, |e| e.message.starts_with("route 1 "));
        assert_eq!(up.message, format!("route 1 ({addr}) up"));
        assert_eq!(up.level, Level::INFO);
        assert_eq!(up.field("node"), Some("1"));
        stop.trigger();
        node.join().unwrap().unwrap();
        let down = log.wait_for(WAIT, |e| e.message.ends_with(") down"));
        assert_eq!(down.field("code"), Some("NO_ERROR (0x0000)"), "{down:?}");
        proxy.shutdown(Duration::from_secs(1));
    }
}

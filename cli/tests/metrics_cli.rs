//! `fleetwire proxy --metrics ADDR`: the Prometheus page scraped over HTTP while traffic
//! flows, and the proxy's log of routes going up and down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
use fleetwire::Route;

const WAIT: Duration = Duration::from_secs(10);

/// GET `path` from `addr`: (status line, body).
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    write!(sock, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample `name{labels}` in a Prometheus page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits for a line containing `needle` on `rx`.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line with {needle:?}"),
        }
    }
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn proxy_metrics_are_scraped_and_routes_logged_up_and_down() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node_addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(2, NodeSecurity::Plaintext);
    opts.trusted_peers.push("127.0.0.1".parse().unwrap());
    let stop_node = opts.shutdown.clone();
    let node = thread::spawn(move || serve(listener, opts).unwrap());

    let route = format!("2={node_addr}");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args([
            "proxy",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "100",
        ])
        .args([
            "--route",
            &route,
            "--metrics",
            "127.0.0.1:0",
            "--stop-on-stdin-eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(proxy.stdout.take().unwrap());
    let err = lines(proxy.stderr.take().unwrap());
    let addr_after = |line: String, marker: &str| -> SocketAddr {
        let rest = line.split_once(marker).unwrap().1;
        rest.split(['/', ' ']).next().unwrap().parse().unwrap()
    };
    let proxy_addr = addr_after(wait_line(&out, "listening on"), "listening on ");
    let metrics_addr = addr_after(wait_line(&out, "metrics on"), "http://");
    let up = wait_line(&err, "route 2");
    assert!(up.ends_with(" up"), "{up}");

    // Traffic through the proxy to node 2 and back.
    let mut opts = ClientOptions::new(ClientSecurity::Plaintext);
    opts.config = opts.config.with_trust_server_as_proxy(true); // it stamps sources
    let mut client = connect(proxy_addr, opts).unwrap();
    for _ in 0..5 {
        client.echo(Route::new(2, 0, 1), b"counted").unwrap();
    }
    client.echo(Route::new(77, 0, 1), b"nowhere").unwrap_err();

    let (status, page) = get(metrics_addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    println!("{page}");
    assert!(page.contains("# TYPE fleetwire_proxy_route_packets_total counter"));
    assert_eq!(
        sample(
            &page,
            r#"fleetwire_proxy_route_packets_total{route="node 2"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"fleetwire_proxy_route_bytes_total{route="node 2"}"#
        ),
        Some(35.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"fleetwire_proxy_route_no_route_total{route="unrouted"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, r#"fleetwire_proxy_route_up{node="2"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"fleetwire_proxy_route_conn_packets_out_total{node="2"}"#
        ),
        Some(5.0)
    );
    assert!(sample(&page, "fleetwire_engine_connections").unwrap() >= 2.0);
    assert_eq!(get(metrics_addr, "/").0, "HTTP/1.1 404 Not Found");

    // The node goes away: the route is logged down and scraped down.
    client.close().unwrap();
    stop_node.trigger();
    node.join().unwrap();
    let down = wait_line(&err, "route 2");
    assert!(down.ends_with(" down"), "{down}");
    let (_, page) = get(metrics_addr, "/metrics");
    assert_eq!(
        sample(&page, r#"fleetwire_proxy_route_up{node="2"}"#),
        Some(0.0)
    );

    drop(proxy.stdin.take()); // --stop-on-stdin-eof
    assert!(proxy.wait().unwrap().success());
}

#[test]
fn node_metrics_count_per_connection_and_in_total() {
    let mut node = Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args([
            "node",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "3",
        ])
        .args(["--metrics", "127.0.0.1:0", "--stop-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines(node.stdout.take().unwrap());
    let addr_after = |line: String, marker: &str| -> SocketAddr {
        let rest = line.split_once(marker).unwrap().1;
        rest.split(['/', ' ']).next().unwrap().parse().unwrap()
    };
    let node_addr = addr_after(wait_line(&out, "listening on"), "listening on ");
    let metrics_addr = addr_after(wait_line(&out, "metrics on"), "http://");

    let mut client = connect(node_addr, ClientOptions::new(ClientSecurity::Plaintext)).unwrap();
    for _ in 0..3 {
        client.echo(Route::new(0, 0, 1), b"0123456789").unwrap();
    }
    let (status, page) = get(metrics_addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    println!("{page}");
    assert_eq!(sample(&page, "fleetwire_node_connections_open"), Some(1.0));
    let conn = page
        .lines()
        .find(|l| l.starts_with("fleetwire_node_conn_data_echoed_total{conn=\"1\""))
        .expect("the connection's series");
    assert!(conn.ends_with(" 3"), "{conn}");
    assert!(sample(&page, "fleetwire_node_bytes_received_total").unwrap() > 30.0);

    client.close().unwrap();
    let deadline = Instant::now() + WAIT;
    let page = loop {
        let (_, page) = get(metrics_addr, "/metrics");
        if sample(&page, "fleetwire_node_connections_open") == Some(0.0)
            || Instant::now() > deadline
        {
            break page;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sample(&page, "fleetwire_node_connections_open"), Some(0.0));
    assert_eq!(
        sample(&page, r#"fleetwire_node_closes_total{code="NO_ERROR"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "fleetwire_node_data_received_total"),
        Some(3.0)
    );
    assert_eq!(sample(&page, "fleetwire_node_data_echoed_total"), Some(3.0));

    drop(node.stdin.take());
    assert!(node.wait().unwrap().success());
}

//! `SSLKEYLOGFILE`: the TLS configurations of the node, proxy and clients log the session
//! secrets there, so that captures can be decrypted (see tests/wireshark.rs).
//!
//! The only test of this file: it sets the variable for its own process.
#![cfg(all(feature = "node", feature = "test-certs"))]

use std::net::TcpListener;
use std::thread;

use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
use fleetwire::tls::generate_test_pki;
use fleetwire::Route;

#[test]
fn sslkeylogfile_receives_the_secrets_of_both_sides() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sslkeylog.txt");
    let _ = std::fs::remove_file(&path);
    // Set before any other thread of this test process exists.
    std::env::set_var("SSLKEYLOGFILE", &path);

    let pki = generate_test_pki(&["localhost"], Some(2)).unwrap();
    let security =
        NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(2, security);
    opts.max_conns = Some(1);
    let node = thread::spawn(move || serve(listener, opts).unwrap());
    let client_security =
        ClientSecurity::tls(pki.ca_cert_pem.as_bytes(), "localhost", None).unwrap();
    let mut client = connect(addr, ClientOptions::new(client_security)).unwrap();
    client.echo(Route::new(0, 0, 0), b"logged").unwrap();
    client.close().unwrap();
    node.join().unwrap();

    let log = std::fs::read_to_string(&path).expect("the key log was written");
    let labels: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        // one line from the client's configuration, one from the node's
        assert_eq!(
            labels.iter().filter(|l| **l == label).count(),
            2,
            "{label} in {log}"
        );
    }
    for line in log.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "label, client random, secret: {line}");
        assert_eq!(fields[1].len(), 64, "32-byte client random in hex: {line}");
    }
}

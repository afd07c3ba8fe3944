//! The generated Wireshark dissector (`wireshark/fleetwire.lua`) through `tshark`, on
//! captures of sessions with the reference node: every packet kind, every header field,
//! every control payload field, plaintext on a configured port and by the preface, and
//! TLS decrypted with the client's logged keys (SSLKEYLOGFILE format).
//!
//! The session runs through a recording relay on 127.0.0.1; the test writes the recorded
//! byte streams as a pcap (Ethernet/IPv4/TCP). Without `tshark` on PATH the tests are
//! skipped, unless `FLEETWIRE_REQUIRE_TSHARK=1` (as in CI) makes that a failure.
#![cfg(all(feature = "node", feature = "test-certs"))]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire::connection::{Config, Connection, Event, SendError, SendOptions};
use fleetwire::node::{connect, serve, ClientOptions, ClientSecurity, NodeOptions, NodeSecurity};
use fleetwire::tls::{client_config, generate_test_pki};
use fleetwire::{Codec, Limits, Packet, Route};

const WAIT: Duration = Duration::from_secs(10);
const DISSECTOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wireshark/fleetwire.lua");

/// Byte chunks as they crossed the relay: `true` for client → server.
type Records = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("FLEETWIRE_REQUIRE_TSHARK").is_some() {
        panic!("tshark is required (FLEETWIRE_REQUIRE_TSHARK) but not found");
    }
    if !found {
        eprintln!("tshark not found: skipped (apt-get install tshark)");
    }
    found
}

/// A TCP relay for one connection that records both directions.
fn relay(upstream: SocketAddr) -> (SocketAddr, Records, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let records: Records = Arc::default();
    let recs = records.clone();
    let handle = thread::spawn(move || {
        let (down, _) = listener.accept().unwrap();
        let up = TcpStream::connect(upstream).unwrap();
        let pipe = |mut from: TcpStream, mut to: TcpStream, dir: bool, recs: Records| {
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            // record and forward under one lock: the order is the wire's
                            let mut r = recs.lock().unwrap();
                            r.push((dir, buf[..n].to_vec()));
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        let a = pipe(
            down.try_clone().unwrap(),
            up.try_clone().unwrap(),
            true,
            recs.clone(),
        );
        let b = pipe(up, down, false, recs);
        a.join().unwrap();
        b.join().unwrap();
    });
    (addr, records, handle)
}

/// Writes the recorded streams as a classic pcap: Ethernet, IPv4 127.0.0.1, TCP from
/// port 40000 to `server_port`, with a three-way handshake first.
fn write_pcap(path: &Path, records: &[(bool, Vec<u8>)], server_port: u16) {
    let client_port = 40000u16;
    let mut out = Vec::new();
    // global header: magic, v2.4, tz 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let (mut seq_c, mut seq_s) = (1000u32, 5000u32);
    let mut usec = 0u32;
    let mut frame = |out: &mut Vec<u8>, dir: bool, flags: u8, seq: u32, ack: u32, data: &[u8]| {
        let (sport, dport) = if dir {
            (client_port, server_port)
        } else {
            (server_port, client_port)
        };
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(&0x0800u16.to_be_bytes());
        let total = (20 + 20 + data.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&sport.to_be_bytes());
        pkt.extend_from_slice(&dport.to_be_bytes());
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&ack.to_be_bytes());
        pkt.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        pkt.extend_from_slice(data);
        usec += 100;
        out.extend_from_slice(&(usec / 1_000_000).to_le_bytes());
        out.extend_from_slice(&(usec % 1_000_000).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    };
    frame(&mut out, true, 0x02, seq_c - 1, 0, &[]);
    frame(&mut out, false, 0x12, seq_s - 1, seq_c, &[]);
    frame(&mut out, true, 0x10, seq_c, seq_s, &[]);
    for (dir, data) in records {
        for piece in data.chunks(16_000) {
            if *dir {
                frame(&mut out, true, 0x18, seq_c, seq_s, piece);
                seq_c = seq_c.wrapping_add(piece.len() as u32);
            } else {
                frame(&mut out, false, 0x18, seq_s, seq_c, piece);
                seq_s = seq_s.wrapping_add(piece.len() as u32);
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

/// One Fleetwire PDU as tshark decoded it: field name → every value shown.
type Pdu = BTreeMap<String, Vec<String>>;

/// Runs tshark with the dissector and returns the decoded PDUs (PDML), in order.
fn tshark(pcap: &Path, opts: &[&str]) -> Vec<Pdu> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-X", &format!("lua_script:{DISSECTOR}"), "-r"])
        .arg(pcap);
    cmd.args(opts).args(["-T", "pdml"]);
    let out = cmd.output().expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed: {stderr}");
    assert!(!stderr.contains("Lua: Error"), "dissector error: {stderr}");
    let pdml = String::from_utf8(out.stdout).unwrap();
    let mut pdus = Vec::new();
    for chunk in pdml.split("<proto name=\"fleetwire\"").skip(1) {
        let mut pdu = Pdu::new();
        for field in chunk.split("<field name=\"").skip(1) {
            let name = &field[..field.find('"').unwrap()];
            if !name.starts_with("fleetwire.") {
                continue;
            }
            let show = field
                .find("show=\"")
                .map(|at| &field[at + 6..])
                .map(|s| &s[..s.find('"').unwrap()])
                .unwrap_or_default();
            pdu.entry(name.to_owned())
                .or_default()
                .push(show.to_owned());
        }
        // nested protos (the ERROR's embedded header) belong to their packet
        if pdu.is_empty()
            || !pdu.contains_key("fleetwire.kind") && !pdu.contains_key("fleetwire.preface")
        {
            if let Some(last) = pdus.last_mut() {
                merge(last, pdu);
            }
            continue;
        }
        pdus.push(pdu);
    }
    pdus
}

fn merge(into: &mut Pdu, from: Pdu) {
    for (k, v) in from {
        into.entry(k).or_default().extend(v);
    }
}

fn get<'a>(pdu: &'a Pdu, field: &str) -> &'a str {
    match pdu.get(field).and_then(|v| v.first()) {
        Some(value) => value,
        None => panic!("no {field} in {pdu:?}"),
    }
}

fn of_kind(pdus: &[Pdu], kind: u8) -> Vec<&Pdu> {
    pdus.iter()
        .filter(|p| {
            p.get("fleetwire.kind")
                .is_some_and(|k| k[0] == kind.to_string())
        })
        .collect()
}

/// A blocking sans-IO driver for the scripted session.
struct Peer {
    sock: TcpStream,
    conn: Connection,
    epoch: Instant,
    events: Vec<Event>,
}

impl Peer {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Writes, reads and collects events until `done` or the WAIT bound.
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Peer) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut out = Vec::new();
            self.conn.poll_transmit(&mut out);
            self.sock.write_all(&out).unwrap();
            while let Some(e) = self.conn.poll_event() {
                self.events.push(e);
            }
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.sock
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            match self.sock.read(&mut buf) {
                Ok(0) => self.conn.handle_eof(self.now()),
                Ok(n) => self.conn.handle_input(self.now(), &buf[..n]),
                Err(_) => self.conn.handle_timeout(self.now()),
            }
        }
    }

    fn send(&mut self, route: Route, payload: &[u8], opts: SendOptions) {
        self.until("credit", |p| match p.conn.send_data(route, payload, opts) {
            Ok(()) => true,
            Err(SendError::NoCredit) => false,
            Err(e) => panic!("send: {e}"),
        });
    }
}

fn small_credit(config: Config) -> Config {
    config.with_limits(Limits::default().with_initial_credit_packets(3))
}

/// A payload that compresses well.
fn text(len: usize) -> Vec<u8> {
    b"fleet moves north; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[test]
fn dissector_decodes_every_kind_and_field_of_a_node_session() {
    if !tshark_available() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node_addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(1, NodeSecurity::Plaintext);
    opts.config = small_credit(Config::node(1));
    opts.max_conns = Some(1);
    opts.echo_codec = Codec::Zlib;
    opts.trusted_peers.push("127.0.0.1".parse().unwrap()); // lets our proxy stamp X
    let node = thread::spawn(move || serve(listener, opts).unwrap());
    let (relay_addr, records, relay) = relay(node_addr);

    // Our side speaks as proxy 5, so it may stamp a source (X = 1, §7.4).
    let sock = TcpStream::connect(relay_addr).unwrap();
    let mut p = Peer {
        sock,
        // spec §7.4 [[src.auth]]: a proxy accepts the node's role only over a link
        // configured as trusted (the node trusts us likewise)
        conn: Connection::new(
            small_credit(Config::proxy(5)).with_trust_source(true),
            Duration::ZERO,
        ),
        epoch: Instant::now(),
        events: Vec::new(),
    };
    p.until("the HELLO", |p| p.conn.is_established());
    let ping = p.conn.send_ping(p.now());
    p.until("the PONG", |p| {
        p.events
            .iter()
            .any(|e| matches!(e, Event::Pong { id, .. } if *id == ping))
    });
    p.send(Route::new(1, 2, 3), b"hello", SendOptions::default());
    p.send(
        Route::new(1, 0, 4),
        &text(3000),
        SendOptions::compressed(Codec::Zlib),
    );
    p.send(
        Route::new(1, 0, 5),
        &text(3000),
        SendOptions::compressed(Codec::Snappy),
    );
    let secret = SendOptions {
        never_compress: true,
        ..SendOptions::default()
    };
    p.send(Route::new(1, 0, 6), b"password", secret);
    let mut stamped = Packet::data(Route::new(1, 0, 7), Bytes::from_static(b"from 9"));
    stamped.header.source = Some(9);
    p.until("credit to forward", |p| {
        p.conn.forward(&stamped) != Err(SendError::NoCredit)
    });
    p.send(Route::new(77, 0, 8), b"nowhere", SendOptions::default()); // NO_ROUTE
                                                                      // The node processes in order: once the NO_ROUTE ERROR of the last packet is here,
                                                                      // every echo it sends has arrived (which sources it echoes is the node's policy).
    p.until("the ERROR", |p| {
        p.events
            .iter()
            .any(|e| matches!(e, Event::PacketError { .. }))
    });
    p.conn.close(p.now(), "capture done");
    p.until("the close", |p| p.conn.is_closed());
    drop(p);
    node.join().unwrap();
    relay.join().unwrap();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let pcap = dir.join("fleetwire-session.pcap");
    write_pcap(&pcap, &records.lock().unwrap(), node_addr.port());
    println!("capture: {}", pcap.display());

    // By the preface (heuristic), and by the configured port with the heuristic off.
    let pdus = tshark(&pcap, &[]);
    let port = format!("fleetwire.port:{}", node_addr.port());
    let by_port = tshark(&pcap, &["-o", "fleetwire.heuristic:FALSE", "-o", &port]);
    assert_eq!(pdus, by_port, "the port preference decodes the same");

    let prefaces: Vec<_> = pdus
        .iter()
        .filter(|p| p.contains_key("fleetwire.preface"))
        .collect();
    assert_eq!(prefaces.len(), 2);
    assert_eq!(
        get(prefaces[0], "fleetwire.preface"),
        "89:46:57:49:52:45:0d:0a"
    );

    // Every packet shows every base header field, X's source when X = 1.
    let header = [
        "version",
        "kind",
        "flags.x",
        "flags.never_compress",
        "flags.codec",
        "flags.reserved",
        "flags.hint",
        "length",
        "route.node",
        "route.service",
        "route.channel",
    ];
    for pdu in pdus.iter().filter(|p| p.contains_key("fleetwire.kind")) {
        for field in header {
            assert!(
                pdu.contains_key(&format!("fleetwire.{field}")),
                "{field} missing in {pdu:?}"
            );
        }
        assert_eq!(get(pdu, "fleetwire.version"), "1");
        let x = get(pdu, "fleetwire.flags.x") == "1";
        assert_eq!(pdu.contains_key("fleetwire.source"), x, "{pdu:?}");
    }

    let hellos = of_kind(&pdus, 1);
    assert_eq!(hellos.len(), 2);
    let hello_fields = [
        "min_version",
        "max_version",
        "role",
        "hello_flags",
        "node_id",
        "peer_id",
        "codecs",
        "codecs.snappy",
        "codecs.zlib",
        "max_ratio",
        "max_payload",
        "max_decompressed",
        "initial_credit_packets",
        "initial_credit_bytes",
        "idle_timeout_ms",
    ];
    for h in &hellos {
        for field in hello_fields {
            assert!(
                h.contains_key(&format!("fleetwire.hello.{field}")),
                "hello.{field} missing"
            );
        }
        assert_eq!(get(h, "fleetwire.hello.initial_credit_packets"), "3");
    }
    let mut roles: Vec<_> = hellos
        .iter()
        .map(|h| {
            (
                get(h, "fleetwire.hello.role"),
                get(h, "fleetwire.hello.node_id"),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(roles, [("2", "1"), ("3", "5")], "node 1 and proxy 5");

    let (pings, pongs) = (of_kind(&pdus, 2), of_kind(&pdus, 3));
    assert_eq!(get(pings[0], "fleetwire.ping.id"), ping.to_string());
    assert_eq!(get(pongs[0], "fleetwire.pong.id"), ping.to_string());
    assert_eq!(
        get(pongs[0], "fleetwire.pong.timestamp"),
        get(pings[0], "fleetwire.ping.timestamp")
    );
    assert!(pongs[0].contains_key("fleetwire.pong.hold_us"));

    let all_data = of_kind(&pdus, 0);
    let (data, echoes): (Vec<&Pdu>, Vec<&Pdu>) = all_data
        .into_iter()
        .partition(|d| ["1", "77"].contains(&get(d, "fleetwire.route.node")));
    assert_eq!(
        data.len(),
        6,
        "6 sent (the node's echoes follow its policy)"
    );
    for echo in &echoes {
        let to = get(echo, "fleetwire.route.node");
        assert!(
            to == "5" || to == "9",
            "echoes go to the source (§7.4): {to}"
        );
    }
    let codecs: Vec<_> = data[..6]
        .iter()
        .map(|d| get(d, "fleetwire.flags.codec"))
        .collect();
    assert_eq!(codecs, ["0", "2", "1", "0", "0", "0"]);
    assert_eq!(get(data[3], "fleetwire.flags.never_compress"), "1");
    assert_eq!(get(data[4], "fleetwire.source"), "9");
    assert_eq!(get(data[5], "fleetwire.route.node"), "77");
    let channels: Vec<_> = data[..6]
        .iter()
        .map(|d| get(d, "fleetwire.route.channel"))
        .collect();
    assert_eq!(channels, ["3", "4", "5", "6", "7", "8"]);
    assert!(data
        .iter()
        .chain(&echoes)
        .all(|d| d.contains_key("fleetwire.payload")));

    let errors = of_kind(&pdus, 6);
    assert_eq!(errors.len(), 1);
    let e = errors[0];
    assert_eq!(get(e, "fleetwire.error.code"), "0x0100"); // NO_ROUTE
    assert_eq!(get(e, "fleetwire.error.header.route.node"), "77");
    assert_eq!(get(e, "fleetwire.error.header.kind"), "0");
    assert!(!get(e, "fleetwire.error.reason").is_empty());
    assert_eq!(
        get(e, "fleetwire.route.node"),
        "5",
        "routed back to the source"
    );

    let credits = of_kind(&pdus, 5);
    assert!(!credits.is_empty(), "3 packets of credit forced a CREDIT");
    for c in &credits {
        assert_ne!(get(c, "fleetwire.credit.packets"), "0");
        assert!(c.contains_key("fleetwire.credit.bytes"));
    }

    let goaways = of_kind(&pdus, 4);
    assert_eq!(goaways.len(), 2);
    assert_eq!(get(goaways[0], "fleetwire.goaway.code"), "0x0000");
    assert_eq!(get(goaways[0], "fleetwire.goaway.reason"), "capture done");
    let ours: usize = get(goaways[0], "fleetwire.goaway.delivered")
        .parse()
        .unwrap();
    assert!(ours <= echoes.len(), "we processed at most the echoes");
    assert_eq!(
        get(goaways[1], "fleetwire.goaway.delivered"),
        "6",
        "the node processed our 6"
    );
}

/// rustls key log lines in the NSS format (what SSLKEYLOGFILE holds).
#[derive(Debug, Default)]
struct KeyLog(Mutex<String>);

impl fleetwire::rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        self.0.lock().unwrap().push_str(&line);
    }
}

#[test]
fn dissector_decodes_tls_with_logged_keys() {
    if !tshark_available() {
        return;
    }
    let pki = generate_test_pki(&["localhost"], Some(4)).unwrap();
    let security =
        NodeSecurity::tls(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node_addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::new(4, security);
    opts.max_conns = Some(1);
    let node = thread::spawn(move || serve(listener, opts).unwrap());
    let (relay_addr, records, relay) = relay(node_addr);

    let keys = Arc::new(KeyLog::default());
    let mut tls = (*client_config(pki.ca_cert_pem.as_bytes(), None).unwrap()).clone();
    tls.key_log = keys.clone();
    let security = ClientSecurity::Tls {
        config: Arc::new(tls),
        server_name: "localhost".into(),
    };
    let mut client = connect(relay_addr, ClientOptions::new(security)).unwrap();
    client.echo(Route::new(0, 0, 1), b"over tls").unwrap();
    client.close().unwrap();
    node.join().unwrap();
    relay.join().unwrap();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (pcap, keylog) = (
        dir.join("fleetwire-tls.pcap"),
        dir.join("fleetwire-tls.keys"),
    );
    write_pcap(&pcap, &records.lock().unwrap(), node_addr.port());
    std::fs::write(&keylog, keys.0.lock().unwrap().as_bytes()).unwrap();

    let without = tshark(&pcap, &["-o", "fleetwire.port:0"]);
    assert!(
        without.is_empty(),
        "encrypted: nothing to decode without the keys"
    );
    let key_opt = format!("tls.keylog_file:{}", keylog.display());
    let pdus = tshark(&pcap, &["-o", &key_opt, "-o", "fleetwire.port:0"]);
    let kinds: Vec<_> = pdus
        .iter()
        .map(|p| p.get("fleetwire.kind").map_or("preface", |k| &k[0]))
        .collect();
    // preface + HELLO each way; PING/PONG (the handshake's confirmation); DATA and its
    // echo; GOAWAY each way
    for (kind, name) in [
        ("preface", "preface"),
        ("1", "HELLO"),
        ("2", "PING"),
        ("3", "PONG"),
        ("0", "DATA"),
        ("4", "GOAWAY"),
    ] {
        assert!(kinds.contains(&kind), "no {name} in {kinds:?}");
    }
    let data = of_kind(&pdus, 0);
    assert_eq!(get(data[0], "fleetwire.length"), "8");
}

//! The reference endpoint against OpenSSL: `openssl s_client` talks Fleetwire to the
//! `fleetwire node` binary, and `fleetwire::node::connect` talks to `openssl s_server`
//! fed with a node's bytes by the test (spec §3, §5.2–§5.5, §10).
//!
//! 127.0.0.1 only; every wait is bounded (10 s); child processes are killed and reaped
//! when a test ends, however it ends. The `openssl` command is required: without it these
//! tests fail loudly rather than pass.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::control::{Control, Goaway, Hello, Ping, Pong, Role};
use fleetwire::node::{connect, Client, ClientOptions, ClientSecurity, NodeError};
use fleetwire::tls::{generate_test_pki, CertificateProblem, TestPki, TlsError};
use fleetwire::{Deframer, ErrorCode, Kind, Limits, Packet, PREFACE};

const TIMEOUT: Duration = Duration::from_secs(10);

fn require_openssl() {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("the `openssl` command is required by these interop tests (CI installs it)"),
    }
}

/// A child process with captured stdout and stderr, killed and reaped on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Capture,
    stderr: Capture,
}

impl Proc {
    fn spawn(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        Proc {
            stdin: child.stdin.take(),
            stdout: Capture::spawn(child.stdout.take().unwrap()),
            stderr: Capture::spawn(child.stderr.take().unwrap()),
            child,
        }
    }

    fn openssl(args: &[&str]) -> Proc {
        require_openssl();
        Proc::spawn("openssl", args)
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let _ = stdin.write_all(bytes); // fails only if the child already quit
        let _ = stdin.flush();
    }

    /// Waits for the child to exit by itself, at most until `deadline`.
    fn wait_exit(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn output(&self) -> String {
        format!(
            "stdout: {}\nstderr: {}",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a child writes to one stream.
#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn spawn(mut stream: impl Read + Send + 'static) -> Capture {
        let data = Arc::new(Mutex::new(Vec::new()));
        let sink = data.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Capture(data)
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn wait_for(&self, needle: &str, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.text().contains(needle)
    }
}

/// PEM files in a temporary directory, removed at the end.
struct PemDir(PathBuf);

impl PemDir {
    fn new(tag: &str, files: &[(&str, &str)]) -> PemDir {
        let dir =
            std::env::temp_dir().join(format!("fleetwire-interop-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in files {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        PemDir(dir)
    }

    fn from_pki(tag: &str, pki: &TestPki) -> PemDir {
        PemDir::new(
            tag,
            &[
                ("ca.pem", &pki.ca_cert_pem),
                ("cert.pem", &pki.cert_pem),
                ("key.pem", &pki.key_pem),
            ],
        )
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fleetwire node` with TLS from `dir`, serving one connection; returns it and its port.
fn spawn_node(dir: &PemDir) -> (Proc, u16) {
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let args = [
        "node",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
        "--node-id",
        "1",
        "--max-conns",
        "1",
    ];
    let node = Proc::spawn(env!("CARGO_BIN_EXE_fleetwire"), &args);
    let deadline = Instant::now() + TIMEOUT;
    assert!(
        node.stdout.wait_for(")\n", deadline),
        "the node did not start: {}",
        node.output()
    );
    let text = node.stdout.text();
    let port = text
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {text:?}"));
    (node, port)
}

/// `openssl s_client` against 127.0.0.1:`port`, trusting `dir`'s CA, with `extra` args.
fn spawn_s_client(dir: &PemDir, port: u16, extra: &[&str]) -> Proc {
    let connect = format!("127.0.0.1:{port}");
    let ca = dir.path("ca.pem");
    let mut args = vec!["s_client", "-connect", &connect, "-CAfile", &ca];
    args.extend(["-verify_hostname", "localhost", "-verify_return_error"]);
    args.extend(extra);
    Proc::openssl(&args)
}

/// A port that was free a moment ago (s_server -quiet does not print the one it got).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `openssl s_server -quiet` on `port` with `dir`'s certificate and `extra` args.
fn spawn_s_server(dir: &PemDir, port: u16, extra: &[&str]) -> Proc {
    let accept = format!("127.0.0.1:{port}");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let mut args = vec!["s_server", "-accept", &accept, "-naccept", "1", "-quiet"];
    args.extend(["-cert", &cert, "-key", &key]);
    args.extend(extra);
    Proc::openssl(&args)
}

/// The bytes an endpoint opens with: preface then HELLO (spec §3).
fn opening(role: Role, node_id: u16) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    Control::Hello(Hello::new(role, node_id, &Limits::default(), 0x03)).encode_packet(&mut out);
    out
}

/// Parses a Fleetwire byte stream: checks the preface, returns the complete packets.
fn parse_stream(bytes: &[u8]) -> Vec<Packet> {
    if bytes.len() < PREFACE.len() {
        return Vec::new();
    }
    assert_eq!(
        &bytes[..8],
        &PREFACE,
        "the stream starts with the preface (§3)"
    );
    let mut deframer = Deframer::new(u16::MAX);
    deframer.extend(&bytes[8..]);
    std::iter::from_fn(|| deframer.next_packet().expect("valid packets")).collect()
}

/// Waits until the stream in `capture` holds `n` packets; returns them.
fn wait_packets(capture: &Capture, n: usize, proc: &Proc) -> Vec<Packet> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let packets = parse_stream(&capture.bytes());
        if packets.len() >= n {
            return packets;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} packets, got {packets:?}; {}",
            proc.output()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn s_client_speaks_fleetwire_to_the_node() {
    let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
    let dir = PemDir::from_pki("a", &pki);
    let (mut node, port) = spawn_node(&dir);
    // -quiet: stdout carries only application data (and implies -ign_eof)
    let mut client = spawn_s_client(&dir, port, &["-alpn", "fleetwire/1", "-tls1_3", "-quiet"]);

    let mut hello = opening(Role::Client, 0);
    let ping = Ping {
        id: 0x0123_4567_89AB_CDEF,
        timestamp: 1_700_000_000_000_000,
    };
    Control::Ping(ping).encode_packet(&mut hello);
    client.write(&hello);

    let packets = wait_packets(&client.stdout, 2, &client);
    // spec §3: preface, then the node's HELLO
    assert_eq!(packets[0].header.kind, Kind::Hello);
    let node_hello = Hello::parse(&packets[0].payload).unwrap();
    assert_eq!((node_hello.role, node_hello.node_id), (Role::Node, 1));
    // spec §5.3 [[ping.answer]]: a PONG with the same id and timestamp
    assert_eq!(packets[1].header.kind, Kind::Pong, "{packets:?}");
    let pong = Pong::parse(&packets[1].payload).unwrap();
    assert_eq!((pong.id, pong.timestamp), (ping.id, ping.timestamp));

    // a graceful close: our GOAWAY NO_ERROR is answered with the node's (§6.4)
    let mut goaway = Vec::new();
    Control::Goaway(Goaway {
        code: ErrorCode::NO_ERROR,
        delivered: 0,
        reason: "s_client done",
    })
    .encode_packet(&mut goaway);
    client.write(&goaway);
    let packets = wait_packets(&client.stdout, 3, &client);
    assert_eq!(packets[2].header.kind, Kind::Goaway);
    assert_eq!(
        Goaway::parse(&packets[2].payload).unwrap().code,
        ErrorCode::NO_ERROR
    );

    let deadline = Instant::now() + TIMEOUT;
    assert!(
        node.wait_exit(deadline),
        "node still running: {}",
        node.output()
    );
    let log = node.stderr.text();
    assert!(log.contains("conn 1 open from 127.0.0.1:"), "{log}");
    assert!(
        log.contains("conn 1 closed peer client 0: code NO_ERROR (0x0000) by the peer"),
        "{log}"
    );
}

/// Plays a node through s_server's stdin/stdout: answers the client's HELLO with ours,
/// every PING with a PONG, and a GOAWAY with ours. Returns the PINGs answered.
fn act_as_node(server: &mut Proc, stop: &AtomicBool) -> Vec<Ping> {
    let mut answered = Vec::new();
    let mut said_hello = false;
    let mut seen = 0;
    let deadline = Instant::now() + TIMEOUT;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let packets = parse_stream(&server.stdout.bytes());
        for packet in &packets[seen..] {
            let mut reply = Vec::new();
            match packet.header.kind {
                Kind::Hello if !said_hello => {
                    reply = opening(Role::Node, 1); // the certificate names node 1
                    said_hello = true;
                }
                Kind::Ping => {
                    let ping = Ping::parse(&packet.payload).unwrap();
                    let pong = Pong {
                        id: ping.id,
                        timestamp: ping.timestamp,
                        hold_us: 0,
                    };
                    Control::Pong(pong).encode_packet(&mut reply);
                    answered.push(ping);
                }
                Kind::Goaway => Control::Goaway(Goaway {
                    code: ErrorCode::NO_ERROR,
                    delivered: 0,
                    reason: "",
                })
                .encode_packet(&mut reply),
                _ => {}
            }
            server.write(&reply);
        }
        seen = packets.len();
        thread::sleep(Duration::from_millis(2));
    }
    answered
}

#[test]
fn client_pings_openssl_s_server_playing_a_node() {
    let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
    let dir = PemDir::from_pki("b", &pki);
    let port = free_port();
    let server = spawn_s_server(&dir, port, &["-tls1_3", "-alpn", "fleetwire/1"]);
    let server = Arc::new(Mutex::new(server));
    let stop = Arc::new(AtomicBool::new(false));
    let node = {
        let (server, stop) = (server.clone(), stop.clone());
        thread::spawn(move || {
            // wait for the connection before taking the lock for good
            let stdout = server.lock().unwrap().stdout.clone();
            let deadline = Instant::now() + TIMEOUT;
            while stdout.bytes().is_empty()
                && Instant::now() < deadline
                && !stop.load(Ordering::SeqCst)
            {
                thread::sleep(Duration::from_millis(5));
            }
            act_as_node(&mut server.lock().unwrap(), &stop)
        })
    };
    let mut opts = ClientOptions::new(
        ClientSecurity::tls(pki.ca_cert_pem.as_bytes(), "localhost", None).unwrap(),
    );
    opts.timeout = TIMEOUT;
    let outcome = (|| {
        let mut client = connect_retrying(port, opts)?;
        let rtts = [client.ping()?, client.ping()?];
        let peer_cert = client.peer_cert_node_id();
        let info = client.close()?;
        Ok::<_, NodeError>((rtts, peer_cert, info))
    })();
    stop.store(true, Ordering::SeqCst);
    let answered = node.join().unwrap();
    let (rtts, peer_cert, info) = outcome
        .unwrap_or_else(|e| panic!("client failed: {e}; {}", server.lock().unwrap().output()));
    for rtt in rtts {
        assert!(rtt > Duration::ZERO && rtt < TIMEOUT, "{rtt:?}");
    }
    assert_eq!(peer_cert, Some(1), "bound from fleetwire:node:1");
    assert_eq!((info.code, info.by_peer), (ErrorCode::NO_ERROR, false));
    // one PING confirming the handshake, then the two of `ping`, ids in order
    let ids: Vec<u64> = answered.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 3, "{answered:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

/// [`connect`] to s_server, retrying while it does not listen yet.
fn connect_retrying(port: u16, opts: ClientOptions) -> Result<Client, NodeError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match connect(("127.0.0.1", port), opts.clone()) {
            Err(NodeError::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Runs s_client with `extra` against the node binary; returns the node's log and
/// s_client's output once both have finished.
fn s_client_refused(tag: &str, extra: &[&str]) -> (String, String) {
    let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
    let dir = PemDir::from_pki(tag, &pki);
    let (mut node, port) = spawn_node(&dir);
    let mut client = spawn_s_client(&dir, port, extra);
    client.write(&opening(Role::Client, 0));
    let deadline = Instant::now() + TIMEOUT;
    assert!(
        client.wait_exit(deadline),
        "s_client still running: {}",
        client.output()
    );
    assert!(
        node.wait_exit(deadline),
        "node still running: {}",
        node.output()
    );
    (node.stderr.text(), client.output())
}

#[test]
fn node_refuses_s_client_offering_h2() {
    // trace: tls.alpn
    let (log, output) = s_client_refused("c", &["-alpn", "h2", "-tls1_3"]);
    // spec §10.1 [[tls.alpn]]: refused during the handshake, no_application_protocol
    assert!(
        log.contains("conn 1 closed: TLS: no application protocol agreed (refused here)"),
        "{log}"
    );
    assert!(output.contains("no application protocol"), "{output}");
    assert!(
        !output.contains("FWIRE"),
        "no Fleetwire byte reached s_client: {output}"
    );
}

#[test]
fn node_refuses_s_client_with_tls12_only() {
    // trace: tls.version
    let (log, output) = s_client_refused("e1", &["-alpn", "fleetwire/1", "-tls1_2"]);
    // spec §10.1 [[tls.version]]
    assert!(log.contains("protocol version refused (here)"), "{log}");
    assert!(output.contains("protocol version"), "{output}");
}

/// Runs our client against s_server with the PEM files in `dir`; returns its error.
fn client_error_against_s_server(dir: &PemDir, extra: &[&str]) -> NodeError {
    let port = free_port();
    let server = spawn_s_server(dir, port, extra);
    let ca = std::fs::read(dir.path("ca.pem")).unwrap();
    let mut opts = ClientOptions::new(ClientSecurity::tls(&ca, "localhost", None).unwrap());
    opts.timeout = TIMEOUT;
    match connect_retrying(port, opts) {
        Ok(client) => panic!("connected: {client:?}; {}", server.output()),
        Err(e) => e,
    }
}

/// A CA and a leaf certificate for `localhost` that expired in 2001, via rcgen.
fn expired_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

#[test]
fn client_refuses_an_expired_certificate_from_s_server() {
    // trace: tls.server-auth
    let (ca, cert, key) = expired_pki();
    let dir = PemDir::new(
        "d1",
        &[("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)],
    );
    let err = client_error_against_s_server(&dir, &["-tls1_3", "-alpn", "fleetwire/1"]);
    assert!(
        matches!(
            err,
            NodeError::Tls(TlsError::CertificateInvalid {
                problem: CertificateProblem::Expired,
                by_peer: false
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn client_refuses_a_certificate_for_another_name_from_s_server() {
    // trace: tls.server-auth
    let pki = generate_test_pki(&["elsewhere.example"], Some(1)).unwrap();
    let dir = PemDir::from_pki("d2", &pki);
    let err = client_error_against_s_server(&dir, &["-tls1_3", "-alpn", "fleetwire/1"]);
    // spec §10.2 [[tls.server-auth]]
    assert!(
        matches!(
            err,
            NodeError::Tls(TlsError::CertificateInvalid {
                problem: CertificateProblem::WrongName,
                by_peer: false
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not valid for the name"), "{err}");
}

#[test]
fn client_refuses_s_server_with_tls12_only() {
    // trace: tls.version
    let pki = generate_test_pki(&["localhost"], Some(1)).unwrap();
    let dir = PemDir::from_pki("e2", &pki);
    let err = client_error_against_s_server(&dir, &["-tls1_2", "-alpn", "fleetwire/1"]);
    // spec §10.1 [[tls.version]]: our client offers TLS 1.3 only; s_server refuses it
    assert!(
        matches!(err, NodeError::Tls(TlsError::VersionRefused { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("TLS 1.3"), "{err}");
}

#[test]
fn cli_gen_cert_then_node_and_ping() {
    let dir = PemDir::new("cli", &[]);
    let bin = env!("CARGO_BIN_EXE_fleetwire");
    let out = dir.0.to_str().unwrap().to_owned();
    let gen = Command::new(bin)
        .args(["gen-cert", "--out", &out])
        .output()
        .unwrap();
    assert!(gen.status.success(), "{gen:?}");
    let text = String::from_utf8_lossy(&gen.stdout);
    assert!(
        text.contains("fleetwire node --listen") && text.contains("fleetwire ping"),
        "{text}"
    );

    let (mut node, port) = spawn_node(&dir);
    let addr = format!("127.0.0.1:{port}");
    let ca = dir.path("ca.pem");
    let ping = Command::new(bin)
        .args([
            "ping",
            &addr,
            "--ca",
            &ca,
            "--count",
            "5",
            "--interval-ms",
            "0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&ping.stderr)
    );
    assert!(text.contains("seq=5 rtt="), "{text}");
    assert!(text.contains("min") && text.contains("p99"), "{text}");
    assert!(
        node.wait_exit(Instant::now() + TIMEOUT),
        "{}",
        node.output()
    );

    // usage error: neither --ca nor --plaintext
    let usage = Command::new(bin).args(["ping", &addr]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    // plaintext ping against a closed port: failure, exit 1
    let refused = Command::new(bin)
        .args([
            "ping",
            &format!("127.0.0.1:{}", free_port()),
            "--plaintext",
            "--timeout-ms",
            "2000",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
}

//! Interoperability of the TLS layer (spec §10) with OpenSSL's `s_server` and `s_client`.
//!
//! Everything runs on 127.0.0.1, every wait is bounded (10 s), and child processes are
//! killed when a test ends. The `openssl` command is required: without it these tests
//! fail rather than pass silently (CI installs it).
#![cfg(feature = "test-certs")]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fleetwire::tls::{
    client_config, generate_test_pki, server_config, TestPki, TlsEndpoint, TlsError,
};

/// The connection preface of spec §3.
const PREFACE: &[u8] = &[0x89, 0x46, 0x57, 0x49, 0x52, 0x45, 0x0D, 0x0A];
const TIMEOUT: Duration = Duration::from_secs(10);
const REPLY: &[u8] = b"FLEETWIRE-OK\n";

/// `openssl` with `args`, all three streams piped; panics loudly if it is missing.
fn openssl(args: &[&str]) -> KillOnDrop {
    let version = Command::new("openssl").arg("version").output();
    match version {
        Ok(out) if out.status.success() => {}
        _ => panic!("the `openssl` command is required by these interop tests (CI installs it)"),
    }
    let child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    KillOnDrop(child)
}

/// Kills and reaps the child process when the test ends, however it ends.
struct KillOnDrop(Child);

impl KillOnDrop {
    /// Waits for the child to exit by itself, at most until `deadline`.
    fn wait_until(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.0.try_wait().expect("try_wait").is_some() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects everything a child writes to one of its streams.
struct Capture {
    data: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

impl Capture {
    fn spawn(mut stream: impl Read + Send + 'static) -> Self {
        let data = Arc::new(Mutex::new(Vec::new()));
        let sink = data.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Capture { data, reader }
    }

    /// Everything the child wrote; call once it has exited (its pipe is then at EOF).
    fn finish(self) -> String {
        let Capture { data, reader } = self;
        reader.join().expect("capture thread");
        let text = String::from_utf8_lossy(&data.lock().unwrap()).into_owned();
        text
    }

    fn contains(&self, needle: &[u8]) -> bool {
        self.data
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    }

    fn wait_for(&self, needle: &[u8], deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.contains(needle)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().unwrap()).into_owned()
    }
}

/// A temporary directory holding the PKI as PEM files, removed at the end.
struct PkiDir(PathBuf);

impl PkiDir {
    fn new(tag: &str, pki: &TestPki) -> Self {
        let dir = std::env::temp_dir().join(format!("fleetwire-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", &pki.ca_cert_pem),
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        PkiDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for PkiDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The engine's part, minimal: a TCP socket driven through a [`TlsEndpoint`].
struct Driver {
    sock: TcpStream,
    tls: TlsEndpoint,
    out: Vec<u8>,
    buf: Vec<u8>,
    plaintext: Vec<u8>,
}

impl Driver {
    fn new(sock: TcpStream, tls: TlsEndpoint) -> Self {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Driver {
            sock,
            tls,
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
            plaintext: Vec::new(),
        }
    }

    /// Sends all pending ciphertext.
    fn flush(&mut self) -> io::Result<()> {
        self.out.clear();
        self.tls.take_tls(&mut self.out);
        self.sock.write_all(&self.out)
    }

    /// One round: send, then read once (briefly) and feed. `Ok(false)` at EOF.
    /// On a TLS failure the alert is sent before the error is returned.
    fn round(&mut self) -> Result<bool, TlsError> {
        self.flush().expect("send");
        let n = match self.sock.read(&mut self.buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => panic!("receive: {e}"),
        };
        let mut rest = &self.buf[..n];
        while !rest.is_empty() {
            let fed = self.tls.feed_tls(rest).and_then(|consumed| {
                self.tls.read_plaintext(&mut self.plaintext)?;
                Ok(consumed)
            });
            match fed {
                Ok(consumed) => rest = &rest[consumed..],
                Err(err) => {
                    let _ = self.flush(); // the alert tells the peer why
                    return Err(err);
                }
            }
        }
        Ok(true)
    }
}

/// Serves one connection from `listener`: receives the preface, answers [`REPLY`] and
/// `close_notify`, and returns the plaintext received once the peer hangs up.
fn serve_one(listener: TcpListener, pki: &TestPki) -> Result<Vec<u8>, TlsError> {
    let deadline = Instant::now() + TIMEOUT;
    let config = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None)?;
    listener.set_nonblocking(true).unwrap();
    let sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection from s_client: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    let mut driver = Driver::new(sock, TlsEndpoint::server(config)?);
    let mut replied = false;
    while Instant::now() < deadline {
        let open = driver.round()?;
        if !replied && driver.plaintext.len() >= PREFACE.len() {
            driver.tls.write_plaintext(REPLY)?;
            driver.tls.send_close_notify();
            driver.flush().expect("send");
            replied = true;
        }
        if !open {
            return Ok(driver.plaintext);
        }
    }
    panic!("the server timed out; received {:?}", driver.plaintext);
}

/// Runs `openssl s_client` with `extra` arguments against a server built on
/// `TlsEndpoint`; returns the server's result and s_client's stdout + stderr.
fn s_client_against_endpoint(tag: &str, extra: &[&str]) -> (Result<Vec<u8>, TlsError>, String) {
    let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
    let dir = PkiDir::new(tag, &pki);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = thread::spawn(move || serve_one(listener, &pki));

    let ca = dir.path("ca.pem");
    let mut args = vec!["s_client", "-connect", &connect, "-CAfile", &ca];
    args.extend(["-verify_hostname", "localhost", "-verify_return_error"]);
    args.extend(extra);
    let mut child = openssl(&args);
    let stdout = Capture::spawn(child.0.stdout.take().unwrap());
    let stderr = Capture::spawn(child.0.stderr.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let _ = stdin.write_all(PREFACE); // fails if s_client already quit: fine
    let _ = stdin.flush();

    let deadline = Instant::now() + TIMEOUT;
    // s_client exits by itself on a failed handshake; otherwise stop it after the reply.
    while Instant::now() < deadline
        && !stdout.contains(REPLY)
        && child.0.try_wait().unwrap().is_none()
    {
        thread::sleep(Duration::from_millis(10));
    }
    drop(stdin); // s_client closes the connection at EOF on its input
    child.wait_until(deadline);
    drop(child); // killed if still running, and reaped: its pipes reach EOF
    let output = format!("{}\n{}", stdout.finish(), stderr.finish());
    (server.join().expect("server thread"), output)
}

/// The port s_server announces with `ACCEPT 127.0.0.1:<port>` once it listens.
fn accepted_port(stdout: &Capture, deadline: Instant) -> Option<u16> {
    loop {
        let text = stdout.text();
        let after = text.split("ACCEPT 127.0.0.1:").nth(1).unwrap_or("");
        if let Some((port, _)) = after.split_once('\n') {
            return port.trim().parse().ok();
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn endpoint_client_talks_to_openssl_s_server_with_mutual_tls() {
    let pki = generate_test_pki(&["localhost", "127.0.0.1"], Some(1)).unwrap();
    let node = pki.issue(&[], Some(7)).unwrap();
    let dir = PkiDir::new("s_server", &pki);
    let (cert, key, ca) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("ca.pem"),
    );
    let mut server = openssl(&[
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-naccept",
        "1",
        "-tls1_3",
        "-alpn",
        "fleetwire/1",
        "-cert",
        &cert,
        "-key",
        &key,
        "-Verify",
        "1",
        "-CAfile",
        &ca,
    ]);
    // s_server's stdin stays open (at EOF it would close the connection).
    let stdout = Capture::spawn(server.0.stdout.take().unwrap());
    let stderr = Capture::spawn(server.0.stderr.take().unwrap());
    let deadline = Instant::now() + TIMEOUT;
    let port = accepted_port(&stdout, deadline)
        .unwrap_or_else(|| panic!("s_server did not start: {}", stderr.text()));

    let config = client_config(
        pki.ca_cert_pem.as_bytes(),
        Some((node.cert_pem.as_bytes(), node.key_pem.as_bytes())),
    )
    .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut driver = Driver::new(sock, TlsEndpoint::client(config, "localhost").unwrap());
    driver.tls.write_plaintext(PREFACE).unwrap(); // sent once the handshake is verified
    while driver.tls.is_handshaking() || driver.tls.pending_tls() {
        assert!(
            Instant::now() < deadline,
            "handshake timed out; s_server: {}",
            stderr.text()
        );
        assert!(
            driver.round().unwrap(),
            "s_server hung up: {}",
            stderr.text()
        );
    }
    assert_eq!(driver.tls.alpn(), Some(&b"fleetwire/1"[..]));
    assert_eq!(
        driver.tls.peer_node_id(),
        Some(1),
        "from s_server's certificate"
    );

    assert!(
        stdout.wait_for(PREFACE, deadline),
        "s_server did not print the preface; stdout: {:?}; stderr: {}",
        stdout.text(),
        stderr.text()
    );
    assert!(
        stdout.contains(b"ALPN protocols selected: fleetwire/1"),
        "{}",
        stdout.text()
    );
    driver.tls.send_close_notify();
    let _ = driver.flush();
}

#[test]
fn openssl_s_client_negotiates_fleetwire_alpn_with_endpoint_server() {
    let (result, output) = s_client_against_endpoint("alpn", &["-tls1_3", "-alpn", "fleetwire/1"]);
    assert_eq!(result.expect("server"), PREFACE);
    for expected in [
        "ALPN protocol: fleetwire/1",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256", // the server's preference wins
        "Verify return code: 0 (ok)",
        "FLEETWIRE-OK",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in:\n{output}"
        );
    }
}

#[test]
fn openssl_s_client_offering_h2_is_refused() {
    let (result, output) = s_client_against_endpoint("h2", &["-tls1_3", "-alpn", "h2"]);
    assert_eq!(
        result,
        Err(TlsError::NoAlpn { by_peer: false }),
        "s_client:\n{output}"
    );
    assert!(
        output.contains("no application protocol"),
        "s_client:\n{output}"
    );
    assert!(!output.contains("FLEETWIRE-OK"));
}

#[test]
fn openssl_s_client_with_tls12_is_refused() {
    let (result, output) = s_client_against_endpoint("tls12", &["-tls1_2", "-alpn", "fleetwire/1"]);
    assert_eq!(
        result,
        Err(TlsError::VersionRefused { by_peer: false }),
        "s_client:\n{output}"
    );
    assert!(output.contains("protocol version"), "s_client:\n{output}");
    assert!(!output.contains("FLEETWIRE-OK"));
}

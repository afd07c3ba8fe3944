//! Memory per idle TLS connection: a server process holds [`CONNECTIONS`] established
//! TLS connections and reports how much its resident set grew, per connection.
//!
//! The server runs in a child process (this same executable, re-run with
//! [`CHILD_ENV`] set), so that neither the clients nor the other server's freed memory
//! count. Ours: one [`Engine`] listening with TLS; each client completes the TLS
//! handshake and sends the Fleetwire preface and HELLO, so every connection is fully
//! established (§6) and then idle. The baseline: a tokio server that accepts with
//! tokio-rustls and then waits for frames with a `LengthDelimitedCodec` and an 8 KiB
//! read buffer (what `FramedRead` starts with). Kernel socket buffers are not in the
//! resident set of either.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use super::BenchResult;
use crate::connection::{Config, Connection};
use crate::tls::{client_config, generate_test_pki, server_config};
use crate::transport::{AppEvent, Engine, EngineConfig, TlsOptions};

/// How many idle connections the server holds.
pub(super) const CONNECTIONS: usize = 10_000;
/// Set (to `ours` or `baseline`) in the child's environment: the child serves instead
/// of benchmarking.
pub(super) const CHILD_ENV: &str = "FLEETWIRE_BENCH_MEMORY_SERVER";
const CERT_ENV: &str = "FLEETWIRE_BENCH_MEMORY_CERT";
const KEY_ENV: &str = "FLEETWIRE_BENCH_MEMORY_KEY";
/// The longest the connections may take to establish.
const DEADLINE: Duration = Duration::from_secs(120);

/// The two rows: bytes per idle TLS connection, ours and the baseline's.
pub(super) fn rows(_quick: bool) -> Vec<BenchResult> {
    let pki = generate_test_pki(&["localhost"], None).expect("test PKI");
    let ours = measure("ours", &pki.cert_pem, &pki.key_pem, &pki.ca_cert_pem);
    let baseline = measure("baseline", &pki.cert_pem, &pki.key_pem, &pki.ca_cert_pem);
    let per = |r: Result<f64, String>, who: &str| {
        r.unwrap_or_else(|e| {
            eprintln!("bench: memory per connection ({who}): {e}");
            f64::NAN
        })
    };
    vec![BenchResult::new(
        &format!("memory per idle TLS connection ({CONNECTIONS} held)"),
        "B/conn",
        per(ours, "ours"),
        per(baseline, "baseline"),
        false,
    )]
}

/// Runs the server `side` in a child and connects [`CONNECTIONS`] clients to it;
/// returns the child's resident-set growth per connection, in bytes.
fn measure(side: &str, cert: &str, key: &str, ca: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, side)
        .env(CERT_ENV, cert)
        .env(KEY_ENV, key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next = || -> Result<Vec<String>, String> {
        let line = lines
            .next()
            .ok_or("the server process ended early")?
            .map_err(|e| e.to_string())?;
        Ok(line.split_whitespace().map(str::to_owned).collect())
    };
    let ready = next()?;
    let (addr, before): (SocketAddr, f64) = match &ready[..] {
        [r, addr, kb] if r == "ready" => (
            addr.parse().map_err(|_| "bad address")?,
            kb.parse().map_err(|_| "bad rss")?,
        ),
        other => return Err(format!("unexpected {other:?}")),
    };
    let clients = connect_all(addr, ca, side == "ours")?;
    let held = next()?;
    let (count, after): (f64, f64) = match &held[..] {
        [h, count, kb] if h == "held" => (
            count.parse().map_err(|_| "bad count")?,
            kb.parse().map_err(|_| "bad rss")?,
        ),
        other => return Err(format!("unexpected {other:?}")),
    };
    drop(child.stdin.take()); // the server exits at EOF
    let _ = child.wait();
    drop(clients);
    if count < CONNECTIONS as f64 {
        return Err(format!(
            "only {count} of {CONNECTIONS} connections established"
        ));
    }
    Ok((after - before) * 1024.0 / count)
}

/// Opens every client connection: TLS, then (for ours) the preface and HELLO.
fn connect_all(
    addr: SocketAddr,
    ca: &str,
    fleetwire: bool,
) -> Result<Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let config = client_config(ca.as_bytes(), None).map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    Connection::new(Config::client(), Duration::ZERO).poll_transmit(&mut hello);
    let hello = Arc::new(hello);
    rt.block_on(async move {
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut streams = Vec::with_capacity(CONNECTIONS);
        // a few handshakes at a time, so the listen backlog never overflows
        for _ in 0..CONNECTIONS / 100 {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let (connector, hello) = (connector.clone(), hello.clone());
                batch.spawn(async move {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                    let mut tls = connector.connect(name, tcp).await?;
                    if fleetwire {
                        tls.write_all(&hello).await?;
                        tls.flush().await?;
                    }
                    Ok::<_, std::io::Error>(tls)
                });
            }
            while let Some(r) = batch.join_next().await {
                streams.push(r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?);
            }
        }
        Ok(streams)
    })
}

/// This process's resident set, in KiB (Linux `/proc/self/status`).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// In the child: serve as `side` until [`CONNECTIONS`] are established, report, and
/// exit when standard input ends.
pub(super) fn child(side: &str) -> ! {
    let cert = std::env::var(CERT_ENV).expect("certificate");
    let key = std::env::var(KEY_ENV).expect("key");
    let server = server_config(cert.as_bytes(), key.as_bytes(), None).expect("server config");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let held = match side {
        "ours" => {
            let engine = Engine::new(EngineConfig {
                io_threads: 1,
                ..EngineConfig::default()
            })
            .expect("engine");
            let listener = engine
                .listen(any, TlsOptions::Server(server))
                .expect("listen");
            report_ready(listener.local_addr);
            let (mut connected, mut batch) = (0, Vec::new());
            let deadline = Instant::now() + DEADLINE;
            while connected < CONNECTIONS && Instant::now() < deadline {
                engine.recv_batch(&mut batch, Duration::from_millis(100));
                connected += batch
                    .drain(..)
                    .filter(|e| matches!(e, AppEvent::Connected { .. }))
                    .count();
            }
            std::thread::sleep(Duration::from_millis(500));
            report_held(connected);
            wait_for_eof();
            drop(engine);
            connected
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let accepted = Arc::new(AtomicUsize::new(0));
            let counter = accepted.clone();
            rt.spawn(async move {
                let listener = tokio::net::TcpListener::bind(any).await.expect("bind");
                report_ready(listener.local_addr().expect("addr"));
                let acceptor = tokio_rustls::TlsAcceptor::from(server);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, counter) = (acceptor.clone(), counter.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        counter.fetch_add(1, Ordering::SeqCst);
                        let mut codec = LengthDelimitedCodec::new();
                        let mut buf = BytesMut::with_capacity(8 * 1024);
                        while tls.read_buf(&mut buf).await.is_ok_and(|n| n > 0) {
                            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                                drop(frame);
                            }
                        }
                    });
                }
            });
            let deadline = Instant::now() + DEADLINE;
            while accepted.load(Ordering::SeqCst) < CONNECTIONS && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            let n = accepted.load(Ordering::SeqCst);
            report_held(n);
            wait_for_eof();
            n
        }
    };
    std::process::exit(if held >= CONNECTIONS { 0 } else { 1 })
}

fn report_ready(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {addr} {}", rss_kb());
    let _ = out.flush();
}

fn report_held(n: usize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "held {n} {}", rss_kb());
    let _ = out.flush();
}

fn wait_for_eof() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

//! The live-peer runner: connections, fault injection, grading, the command.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::wire::{Event, Wire};
use super::{select, Fault, PeerRole};
use crate::cases::Level;
use crate::report::Report;
use crate::runner::{CaseResult, Failure, Verdict};
use fleetwire::control::{Control, Credit, Goaway, Hello, Ping, Pong, Role};
use fleetwire::tls::{client_config, server_config, TlsEndpoint};
use fleetwire::{ErrorCode, Header, Kind, Limits, Packet, Route, PREFACE};

/// How the runner protects its connections.
#[derive(Clone)]
pub enum PeerSecurity {
    /// Plaintext TCP (chosen explicitly).
    Plaintext,
    /// The runner is the TLS client (`--connect`).
    TlsClient {
        /// Trust anchors and optional client identity.
        config: Arc<fleetwire::tls::ClientConfig>,
        /// The name the server's certificate must carry.
        server_name: String,
    },
    /// The runner is the TLS server (`--listen`).
    TlsServer(Arc<fleetwire::tls::ServerConfig>),
}

impl std::fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerSecurity::Plaintext => "Plaintext",
            PeerSecurity::TlsClient { .. } => "TlsClient",
            PeerSecurity::TlsServer(_) => "TlsServer",
        })
    }
}

/// Where the implementation under test is.
#[derive(Debug)]
pub enum PeerTarget {
    /// Connect to a server under test at this address (`host:port`).
    Connect(String),
    /// Accept a client under test on this listener, one connection per case.
    Listen(TcpListener),
}

/// A live-peer run.
#[derive(Debug)]
pub struct PeerOptions {
    /// The testee.
    pub target: PeerTarget,
    /// Plaintext or TLS.
    pub security: PeerSecurity,
    /// How long each expectation waits (and how long a client has to connect).
    pub timeout: Duration,
    /// Seed of PING ids and payload bytes.
    pub seed: u64,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// The command that replays the run, for the report (without `--case`).
    pub replay: String,
}

/// Runs the selected cases and returns the report; `Err` when the harness could not
/// run (no case selected, the testee unreachable or its handshake broken).
///
/// # Errors
///
/// A description of the harness failure (exit code 2).
pub fn run_peer(opts: &PeerOptions) -> Result<Report, String> {
    let role = match opts.target {
        PeerTarget::Connect(_) => PeerRole::Server,
        PeerTarget::Listen(_) => PeerRole::Client,
    };
    let selected = select(role, &opts.case, &opts.skip);
    if selected.is_empty() {
        return Err("no case matches --case/--skip".into());
    }
    let start = Instant::now();
    let mut results = Vec::new();
    let mut implementation = String::new();
    for (i, case) in selected.iter().enumerate() {
        let t0 = Instant::now();
        let send_hello = !matches!(case.fault, Fault::DataBeforeHello | Fault::HandshakeTimeout);
        let mut session = Session::open(opts, role, send_hello)?;
        if implementation.is_empty() {
            implementation = format!(
                "{} (role {}, node id {})",
                match &opts.target {
                    PeerTarget::Connect(a) => format!("server at {a}"),
                    PeerTarget::Listen(_) => "client under test".into(),
                },
                session.hello.role.name(),
                session.hello.node_id
            );
        }
        session.seed = opts.seed.wrapping_add(i as u64);
        let outcome = session.run(case.fault);
        let (verdict, failure) = match outcome {
            Outcome::Ok => (Verdict::Ok, None),
            Outcome::Unsupported(why) => {
                // like the codec mode: no failure details for UNSUPPORTED; say why
                eprintln!("UNSUPPORTED {}: {why}", case.id);
                (Verdict::Unsupported, None)
            }
            Outcome::Deviation {
                level,
                message,
                expected,
                actual,
            } => (
                Verdict::for_deviation(level),
                Some(Failure {
                    message,
                    request: json!({"case": case.id, "fault": format!("{:?}", case.fault)}),
                    expected: json!(expected),
                    actual: json!(actual),
                    ..Failure::default()
                }),
            ),
        };
        results.push(CaseResult {
            id: case.id.clone(),
            section: case.section.into(),
            tags: case.tags.clone(),
            level: case.level,
            claim: "peer".into(),
            verdict,
            expected_failure: None,
            failure,
            duration: t0.elapsed(),
        });
    }
    Ok(Report {
        implementation,
        version: "fleetwire/1".into(),
        seed: opts.seed,
        replay: opts.replay.clone(),
        results,
        stale: Vec::new(),
        duration: start.elapsed(),
        restarts: 0,
    })
}

enum Outcome {
    Ok,
    Unsupported(String),
    Deviation {
        level: Level,
        message: String,
        expected: String,
        actual: String,
    },
}

fn must(
    message: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Outcome {
    Outcome::Deviation {
        level: Level::Must,
        message: message.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// One connection to the testee, after the handshake.
struct Session {
    wire: Wire,
    hello: Hello<'static>,
    timeout: Duration,
    seed: u64,
    our_role: Role,
}

fn packet_bytes(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode_to_vec(&mut out);
    out.extend_from_slice(payload);
    out
}

fn data(channel: u8, payload: &[u8]) -> Vec<u8> {
    Packet::data(
        Route::new(0, 0, channel),
        bytes::Bytes::copy_from_slice(payload),
    )
    .to_vec()
}

fn describe(p: &Packet) -> String {
    let what = match Control::parse(p.header.kind, &p.payload) {
        Ok(Control::Goaway(g)) => format!(" {}", g.code),
        Ok(Control::Error(e)) => format!(" {}", e.code),
        _ => String::new(),
    };
    format!("{}{what} ({} bytes)", p.header.kind.name(), p.payload.len())
}

impl Session {
    fn open(opts: &PeerOptions, role: PeerRole, send_hello: bool) -> Result<Session, String> {
        let deadline = Instant::now() + opts.timeout.max(Duration::from_secs(1));
        let sock = match &opts.target {
            PeerTarget::Connect(addr) => {
                let addrs: Vec<_> = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("{addr}: {e}"))?
                    .collect();
                let mut last = format!("{addr}: no address");
                let mut sock = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, opts.timeout) {
                        Ok(s) => {
                            sock = Some(s);
                            break;
                        }
                        Err(e) => last = format!("cannot connect to {addr}: {e}"),
                    }
                }
                sock.ok_or(last)?
            }
            PeerTarget::Listen(listener) => accept(listener, deadline)?,
        };
        let tls = match &opts.security {
            PeerSecurity::Plaintext => None,
            PeerSecurity::TlsClient {
                config,
                server_name,
            } => Some(TlsEndpoint::client(config.clone(), server_name).map_err(|e| e.to_string())?),
            PeerSecurity::TlsServer(config) => {
                Some(TlsEndpoint::server(config.clone()).map_err(|e| e.to_string())?)
            }
        };
        let mut wire = Wire::new(sock, tls).map_err(|e| e.to_string())?;
        wire.tls_handshake(deadline)?;
        let our_role = match role {
            PeerRole::Server => Role::Client,
            PeerRole::Client => Role::Node,
        };
        let node_id = if our_role == Role::Client { 0 } else { 1 };
        let mut out = PREFACE.to_vec();
        if send_hello {
            // no codecs announced: the testee must echo uncompressed
            Control::Hello(Hello::new(our_role, node_id, &Limits::default(), 0))
                .encode_packet(&mut out);
        }
        wire.send(&out)
            .map_err(|e| format!("sending preface and HELLO: {e}"))?;
        wire.read_preface(deadline)?;
        let hello = match wire.next(deadline) {
            Event::Packet(p) if p.header.kind == Kind::Hello => {
                let h = Hello::parse(&p.payload)
                    .map_err(|e| format!("the testee's HELLO is invalid: {}", e.detail()))?;
                Hello {
                    extensions: &[],
                    ..h
                }
            }
            Event::Packet(p) => {
                return Err(format!("the testee sent {} before its HELLO", describe(&p)))
            }
            Event::Closed => return Err("the testee closed during the handshake".into()),
            Event::Timeout => return Err("no HELLO from the testee in time".into()),
            Event::Garbage(e) => return Err(e),
        };
        Ok(Session {
            wire,
            hello,
            timeout: opts.timeout,
            seed: 0,
            our_role,
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        self.wire.send(bytes).map_err(|e| {
            must(
                format!("the connection failed while the runner was sending: {e}"),
                "the connection stays open",
                "write failed",
            )
        })
    }

    fn payload(&self, len: usize, salt: u8) -> Vec<u8> {
        let mut rng = crate::Rng::new(self.seed ^ u64::from(salt));
        (0..len).map(|_| rng.byte()).collect()
    }

    fn run(&mut self, fault: Fault) -> Outcome {
        match self.inject(fault) {
            Ok(o) | Err(o) => o,
        }
    }

    fn inject(&mut self, fault: Fault) -> Result<Outcome, Outcome> {
        let mut bad = data(1, b"fault");
        match fault {
            Fault::ReservedBit => {
                bad[1] |= 0x04;
                self.send(&bad)?;
                Ok(self.expect_error(ErrorCode::RESERVED_BIT, Level::Must))
            }
            Fault::UnknownKind => {
                bad[0] = 0x17;
                self.send(&bad)?;
                Ok(self.expect_error(ErrorCode::UNKNOWN_KIND, Level::Must))
            }
            Fault::BadVersion => {
                bad[0] = 0x20;
                self.send(&bad)?;
                Ok(self.expect_error(ErrorCode::UNSUPPORTED_VERSION, Level::Must))
            }
            Fault::Codec3 => {
                bad[1] |= 0x30;
                self.send(&bad)?;
                Ok(self.expect_error(ErrorCode::BAD_FLAGS, Level::Must))
            }
            Fault::ControlRoute => {
                let mut ping = Vec::new();
                Control::Ping(Ping {
                    id: 1,
                    timestamp: 2,
                })
                .encode_packet(&mut ping);
                ping[5] = 5; // destination node 5
                self.send(&ping)?;
                Ok(self.expect_error(ErrorCode::BAD_CONTROL, Level::Must))
            }
            Fault::Oversize => {
                let Some(len) = self.hello.max_payload.checked_add(1) else {
                    return Ok(Outcome::Unsupported(
                        "the testee announced max_payload 65535: no larger length exists".into(),
                    ));
                };
                let header = Header::data(Route::new(0, 0, 1), len);
                self.send(&packet_bytes(&header, &[]))?;
                Ok(self.expect_error(ErrorCode::PAYLOAD_TOO_LARGE, Level::Must))
            }
            Fault::Bomb => self.bomb(),
            Fault::SecondHello => {
                let mut hello = Vec::new();
                let node_id = if self.our_role == Role::Client { 0 } else { 1 };
                Control::Hello(Hello::new(self.our_role, node_id, &Limits::default(), 0))
                    .encode_packet(&mut hello);
                self.send(&hello)?;
                Ok(self.expect_error(ErrorCode::UNEXPECTED_PACKET, Level::Must))
            }
            Fault::DataBeforeHello => {
                self.send(&data(1, b"early"))?;
                Ok(self.expect_error(ErrorCode::UNEXPECTED_PACKET, Level::Must))
            }
            Fault::Split => {
                let payload = self.payload(40, 1);
                let bytes = data(2, &payload);
                for b in &bytes {
                    self.send(std::slice::from_ref(b))?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(self.expect_echo(&[payload], None))
            }
            Fault::Coalesced => {
                let payloads: Vec<Vec<u8>> =
                    (0..20).map(|i| self.payload(10 + i, i as u8)).collect();
                if self.hello.initial_credit_packets < 20 {
                    return Ok(Outcome::Unsupported(
                        "the testee granted fewer than 20 packets of credit".into(),
                    ));
                }
                let mut bytes = Vec::new();
                for p in &payloads {
                    bytes.extend(data(3, p));
                }
                self.send(&bytes)?;
                Ok(self.expect_echo(&payloads, None))
            }
            Fault::SlowDrip => {
                let payload = self.payload(4, 2);
                let bytes = data(4, &payload);
                for b in &bytes {
                    self.send(std::slice::from_ref(b))?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(self.expect_echo(&[payload], None))
            }
            Fault::Ping => {
                let ping = Ping {
                    id: self.seed | 1,
                    timestamp: 0x0102_0304_0506_0708,
                };
                let mut bytes = Vec::new();
                Control::Ping(ping).encode_packet(&mut bytes);
                let payload = self.payload(16, 3);
                if self.our_role == Role::Client {
                    bytes.extend(data(5, &payload));
                    self.send(&bytes)?;
                    Ok(self.expect_echo(&[payload], Some(ping)))
                } else {
                    self.send(&bytes)?;
                    Ok(self.expect_echo(&[], Some(ping)))
                }
            }
            Fault::Goaway => {
                let mut bytes = Vec::new();
                Control::Goaway(Goaway {
                    code: ErrorCode::NO_ERROR,
                    delivered: 0,
                    reason: "conformance peer",
                })
                .encode_packet(&mut bytes);
                self.send(&bytes)?;
                Ok(self.expect_error(ErrorCode::NO_ERROR, Level::Must))
            }
            Fault::CreditZero => {
                let mut bytes = Vec::new();
                Control::Credit(Credit {
                    packets: 1,
                    bytes: 0,
                })
                .encode_packet(&mut bytes);
                // encode a valid CREDIT, then zero its increments
                bytes[8..].fill(0);
                self.send(&bytes)?;
                Ok(self.expect_error(ErrorCode::BAD_CONTROL, Level::Must))
            }
            Fault::HeaderTimeout => {
                self.send(&data(1, b"slow")[..3])?;
                Ok(self.expect_timeout_close(Duration::from_secs(5)))
            }
            Fault::HandshakeTimeout => Ok(self.expect_timeout_close(Duration::from_secs(10))),
            Fault::Flood => {
                if self.hello.initial_credit_packets < 33 {
                    return Ok(Outcome::Unsupported(
                        "the testee granted fewer than 33 packets of credit".into(),
                    ));
                }
                let mut bytes = Vec::new();
                for _ in 0..33 {
                    bytes.extend(data(6, &[]));
                }
                self.send(&bytes)?;
                Ok(self.expect_error(ErrorCode::FLOOD, Level::Must))
            }
        }
    }

    /// A compressed DATA whose output exceeds the testee's cap: an ERROR with the cap
    /// code (a packet error, §9.3), then the connection still works (an echo).
    fn bomb(&mut self) -> Result<Outcome, Outcome> {
        let h = self.hello;
        let out_len = h.max_decompressed as usize + 1;
        let zeros = vec![0u8; out_len];
        let (cod, wire) = if h.codecs & 0x02 != 0 {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = enc.write_all(&zeros);
            (2u8, enc.finish().unwrap_or_default())
        } else if h.codecs & 0x01 != 0 {
            (
                1u8,
                snap::raw::Encoder::new()
                    .compress_vec(&zeros)
                    .unwrap_or_default(),
            )
        } else {
            return Ok(Outcome::Unsupported(
                "the testee announced no codec: no decompression to bomb".into(),
            ));
        };
        if wire.is_empty() || wire.len() > usize::from(h.max_payload) {
            return Ok(Outcome::Unsupported(
                "the bomb does not fit the testee's max_payload".into(),
            ));
        }
        let len = wire.len() as u64;
        let ratio_cap = u64::from(h.max_ratio) * len;
        let expected = if u64::from(h.max_decompressed) <= ratio_cap {
            ErrorCode::DECOMPRESSED_TOO_LARGE
        } else {
            ErrorCode::RATIO_EXCEEDED
        };
        let mut header = Header::data(Route::new(0, 0, 7), wire.len() as u16);
        header.codec = fleetwire::Codec::from_bits(cod).unwrap_or(fleetwire::Codec::None);
        let mut bytes = packet_bytes(&header, &wire);
        let after = self.payload(8, 4);
        bytes.extend(data(7, &after));
        self.send(&bytes)?;
        let deadline = self.deadline();
        let mut saw_error = None;
        loop {
            match self.wire.next(deadline) {
                Event::Packet(p) if p.header.kind == Kind::Error => {
                    if let Ok(Control::Error(e)) = Control::parse(Kind::Error, &p.payload) {
                        saw_error = Some(e.code);
                    }
                }
                Event::Packet(p) if p.header.kind == Kind::Data => {
                    if p.payload[..] == after[..] {
                        return Ok(match saw_error {
                            Some(c) if c == expected => Outcome::Ok,
                            Some(c) => must(
                                format!("the bomb was reported as {c}"),
                                format!("ERROR {expected}"),
                                format!("ERROR {c}"),
                            ),
                            None => must(
                                "the bomb got no ERROR before the next echo",
                                format!("ERROR {expected}"),
                                "no ERROR",
                            ),
                        });
                    }
                    return Ok(must(
                        "the decompression bomb was delivered (echoed)",
                        format!("ERROR {expected}"),
                        describe(&p),
                    ));
                }
                Event::Packet(p) if p.header.kind == Kind::Goaway => {
                    return Ok(must(
                        "the connection closed on a packet error",
                        format!("ERROR {expected}, connection kept"),
                        describe(&p),
                    ))
                }
                Event::Packet(_) => {}
                Event::Closed => {
                    return Ok(must(
                        "the connection closed on a packet error",
                        format!("ERROR {expected}, connection kept"),
                        "closed",
                    ))
                }
                Event::Timeout => {
                    return Ok(must(
                        format!("no answer within {} ms", self.timeout.as_millis()),
                        format!("ERROR {expected}, then the echo"),
                        saw_error.map_or("nothing".into(), |c| format!("ERROR {c}")),
                    ))
                }
                Event::Garbage(e) => return Ok(must(e, "valid packets", "invalid header")),
            }
        }
    }

    /// A connection error: GOAWAY with `code` (SHOULD), close (MUST). For `NO_ERROR`,
    /// the answer GOAWAY is itself a MUST (§6.4 `[[close.answer]]`).
    /// Waits for a close with TIMEOUT (§6.5 [[timeout.close]]) after the spec's default
    /// timer plus a grace period. Timers may be configured longer (§6.5), so staying open
    /// past the default is a deviation from the default only (NON-STRICT); closing with
    /// another code is a failure.
    fn expect_timeout_close(&mut self, default: Duration) -> Outcome {
        let saved = self.timeout;
        self.timeout = default + Duration::from_secs(2);
        let outcome = self.expect_error(ErrorCode::TIMEOUT, Level::Must);
        self.timeout = saved;
        match outcome {
            Outcome::Deviation {
                message,
                expected,
                actual,
                ..
            } if message.starts_with("the testee did not close within") => Outcome::Deviation {
                level: Level::Should,
                message: format!(
                    "{message}: longer than the default timer of {} s (allowed when configured)",
                    default.as_secs()
                ),
                expected,
                actual,
            },
            other => other,
        }
    }

    fn expect_error(&mut self, code: ErrorCode, level: Level) -> Outcome {
        let deadline = self.deadline();
        let mut goaway: Option<ErrorCode> = None;
        let mut after: Vec<String> = Vec::new();
        loop {
            match self.wire.next(deadline) {
                Event::Packet(p) if p.header.kind == Kind::Goaway && goaway.is_none() => {
                    match Goaway::parse(&p.payload) {
                        Ok(g) => goaway = Some(g.code),
                        Err(_) => {
                            return must(
                                "the testee's GOAWAY is malformed",
                                format!("GOAWAY {code}"),
                                describe(&p),
                            )
                        }
                    }
                }
                Event::Packet(p) => {
                    if goaway.is_some() && p.header.kind == Kind::Data {
                        after.push(describe(&p));
                    }
                }
                Event::Closed => break,
                Event::Timeout => {
                    return must(
                        format!(
                            "the testee did not close within {} ms",
                            self.timeout.as_millis()
                        ),
                        format!("GOAWAY {code}, close"),
                        goaway.map_or("nothing, still open".into(), |c| {
                            format!("GOAWAY {c}, still open")
                        }),
                    )
                }
                Event::Garbage(e) => return must(e, format!("GOAWAY {code}"), "invalid header"),
            }
        }
        if !after.is_empty() {
            return must(
                "the testee sent DATA after its GOAWAY (§6.4 [[close.no-data-after]])",
                format!("GOAWAY {code}, close"),
                after.join(", "),
            );
        }
        match goaway {
            Some(c) if c == code => Outcome::Ok,
            Some(c) => Outcome::Deviation {
                level,
                message: format!("closed with {c} instead of {code}"),
                expected: format!("GOAWAY {code}"),
                actual: format!("GOAWAY {c}"),
            },
            None if code == ErrorCode::NO_ERROR => must(
                "closed without answering the GOAWAY (§6.4 [[close.answer]])",
                "GOAWAY NO_ERROR, close",
                "closed",
            ),
            None => Outcome::Deviation {
                level: Level::Should,
                message: format!("closed without GOAWAY {code} (§6.4 [[close.on-error]])"),
                expected: format!("GOAWAY {code}, close"),
                actual: "closed".into(),
            },
        }
    }

    /// The echoes of `payloads` in order, no error; with `ping`, its PONG first.
    fn expect_echo(&mut self, payloads: &[Vec<u8>], ping: Option<Ping>) -> Outcome {
        let deadline = self.deadline();
        let mut next = 0;
        let mut pong_seen = ping.is_none();
        let want = || {
            let mut w = Vec::new();
            if ping.is_some() {
                w.push("PONG".to_owned());
            }
            w.push(format!("{} echoes", payloads.len()));
            w.join(", ")
        };
        while next < payloads.len() || !pong_seen {
            match self.wire.next(deadline) {
                Event::Packet(p) if p.header.kind == Kind::Pong => {
                    let Some(ping) = ping else { continue };
                    match Pong::parse(&p.payload) {
                        Ok(pong) if pong.id == ping.id && pong.timestamp == ping.timestamp => {
                            if next > 0 {
                                return must(
                                    "the PONG came after the echo of DATA sent after the PING (§5.3 [[ping.order]])",
                                    "PONG before the echo",
                                    "echo before PONG",
                                );
                            }
                            pong_seen = true;
                        }
                        Ok(pong) if pong.id == ping.id => {
                            return must(
                                "the PONG does not carry the PING's timestamp",
                                format!("timestamp {}", ping.timestamp),
                                format!("timestamp {}", pong.timestamp),
                            )
                        }
                        Ok(_) => {} // a PONG of another PING: ignored
                        Err(_) => {
                            return must(
                                "the testee's PONG is malformed",
                                "20-byte PONG",
                                describe(&p),
                            )
                        }
                    }
                }
                Event::Packet(p) if p.header.kind == Kind::Data => {
                    if next >= payloads.len() {
                        continue;
                    }
                    if p.header.codec != fleetwire::Codec::None {
                        return must(
                            "the echo is compressed although the runner announced no codec (§9.2 [[comp.send-negotiated]])",
                            "uncompressed echo",
                            describe(&p),
                        );
                    }
                    if p.payload[..] != payloads[next][..] {
                        return must(
                            format!("echo {next} differs from the DATA sent"),
                            crate::forms::hex(&payloads[next]),
                            crate::forms::hex(&p.payload),
                        );
                    }
                    if ping.is_some() && !pong_seen {
                        return must(
                            "the echo of DATA sent after a PING came before its PONG (§5.3 [[ping.order]])",
                            "PONG first",
                            "echo first",
                        );
                    }
                    next += 1;
                }
                Event::Packet(p) if matches!(p.header.kind, Kind::Goaway | Kind::Error) => {
                    return must(
                        "the testee reported an error for valid input",
                        want(),
                        describe(&p),
                    )
                }
                Event::Packet(_) => {}
                Event::Closed => return must("the testee closed the connection", want(), "closed"),
                Event::Timeout => {
                    return must(
                        format!("no answer within {} ms", self.timeout.as_millis()),
                        want(),
                        format!("{next} echoes, PONG {pong_seen}"),
                    )
                }
                Event::Garbage(e) => return must(e, want(), "invalid header"),
            }
        }
        Outcome::Ok
    }
}

fn accept(listener: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(sock);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err("no client connected in time".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// Arguments of `fleetwire conformance peer`.
///
/// ```
/// let a = fleetwire_conformance::peer::PeerArgs { plaintext: true, ..Default::default() };
/// assert!(a.connect.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct PeerArgs {
    /// Test a server: connect to this address.
    pub connect: Option<String>,
    /// Test a client: listen on this address.
    pub listen: Option<String>,
    /// Plaintext (must be chosen explicitly).
    pub plaintext: bool,
    /// CA certificates that issue the server's certificate (`--connect` over TLS).
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of `--connect`).
    pub server_name: Option<String>,
    /// Our certificate chain: the server's (`--listen`) or a client certificate.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// Print the cases and exit.
    pub list: bool,
    /// Only cases matching one of these globs.
    pub case: Vec<String>,
    /// Leave out cases matching one of these globs.
    pub skip: Vec<String>,
    /// Write the JSON report here.
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report here.
    pub junit: Option<PathBuf>,
    /// Per-expectation timeout in milliseconds.
    pub timeout_ms: u64,
    /// Seed; `None` picks one from the clock.
    pub seed: Option<u64>,
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn security(args: &PeerArgs) -> Result<PeerSecurity, String> {
    let tls_flags = args.ca.is_some() || args.cert.is_some() || args.key.is_some();
    if args.plaintext {
        if tls_flags || args.server_name.is_some() {
            return Err("--plaintext excludes --ca, --server-name, --cert and --key".into());
        }
        return Ok(PeerSecurity::Plaintext);
    }
    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    if let Some(addr) = &args.connect {
        let Some(ca) = &args.ca else {
            return Err("choose --plaintext or --ca F (TLS) for --connect".into());
        };
        let ca = read(ca)?;
        let ident = identity.as_ref().map(|(c, k)| (&c[..], &k[..]));
        let config = client_config(&ca, ident).map_err(|e| e.to_string())?;
        let server_name = match &args.server_name {
            Some(n) => n.clone(),
            None => addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned(),
        };
        return Ok(PeerSecurity::TlsClient {
            config,
            server_name,
        });
    }
    let Some((cert, key)) = identity else {
        return Err("choose --plaintext or --cert F --key F (TLS) for --listen".into());
    };
    if args.ca.is_some() || args.server_name.is_some() {
        return Err("--ca and --server-name apply to --connect only".into());
    }
    let config = server_config(&cert, &key, None).map_err(|e| e.to_string())?;
    Ok(PeerSecurity::TlsServer(config))
}

/// Runs `fleetwire conformance peer` and returns the exit code: 0 all passed, 1
/// failures, 2 usage error or broken harness.
///
/// ```no_run
/// let a = fleetwire_conformance::peer::PeerArgs { connect: Some("127.0.0.1:7000".into()),
///     plaintext: true, timeout_ms: 2000, ..Default::default() };
/// std::process::exit(fleetwire_conformance::peer::peer_command(&a).into());
/// ```
pub fn peer_command(args: &PeerArgs) -> u8 {
    match peer_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetwire conformance peer: {e}");
            2
        }
    }
}

fn peer_run(args: &PeerArgs) -> Result<u8, String> {
    let role = match (&args.connect, &args.listen) {
        (Some(_), None) => PeerRole::Server,
        (None, Some(_)) => PeerRole::Client,
        _ => return Err("give exactly one of --connect ADDR and --listen ADDR".into()),
    };
    if args.list {
        let cases = select(role, &args.case, &args.skip);
        for c in &cases {
            println!(
                "{:<44} §{:<5} {:<6} {}",
                c.id,
                c.section,
                c.level,
                c.tags.join(",")
            );
        }
        println!("{} cases", cases.len());
        return Ok(0);
    }
    let security = security(args)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let (target, mut replay) = match (&args.connect, &args.listen) {
        (Some(a), _) => (
            PeerTarget::Connect(a.clone()),
            format!("fleetwire conformance peer --connect {a}"),
        ),
        (_, Some(a)) => {
            let l = TcpListener::bind(a).map_err(|e| format!("listen on {a}: {e}"))?;
            eprintln!(
                "fleetwire conformance peer: listening on {}",
                l.local_addr().map_err(|e| e.to_string())?
            );
            (
                PeerTarget::Listen(l),
                format!("fleetwire conformance peer --listen {a}"),
            )
        }
        _ => unreachable!("checked above"),
    };
    replay.push_str(match &security {
        PeerSecurity::Plaintext => " --plaintext",
        _ => " (TLS flags)",
    });
    let opts = PeerOptions {
        target,
        security,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        seed,
        case: args.case.clone(),
        skip: args.skip.clone(),
        replay,
    };
    let report = run_peer(&opts)?;
    print!("{}", report.summary_table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.junit {
        std::fs::write(p, report.to_junit()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(report.exit_code())
}

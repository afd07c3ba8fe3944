//! One live connection to the testee and what a case can do with it: open it (with a
//! normal or a deliberately broken TLS setup, preface and HELLO), send, and expect
//! echoes, PONGs, packet errors and closes. Every byte the testee writes, and every byte
//! it received, goes through the sender monitor ([`Monitor`], asynchronous mode).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire::rustls::pki_types::pem::PemObject;
use fleetwire::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::run::{PeerOptions, PeerSecurity, PeerTarget};
use super::wire::{Event, Wire};
use super::PeerRole;
use crate::cases::Level;
use crate::{Monitor, MonitorOptions, Violation};
use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use fleetwire::tls::TlsEndpoint;
use fleetwire::{Codec, ErrorCode, Header, Kind, Limits, Packet, Route, PREFACE};

/// The node id the runner uses when it plays a node or proxy.
pub(super) const RUNNER_ID: u16 = 1;
/// The id the runner attributes to a client under test (its HELLO `peer_id`).
pub(super) const CLIENT_ID: u16 = 1911;

/// How a case ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Ok,
    Unsupported(String),
    Deviation {
        level: Level,
        message: String,
        expected: String,
        actual: String,
    },
}

/// A case step: `Err` ends the case with that outcome.
pub(super) type R<T = Outcome> = Result<T, Outcome>;

pub(super) fn must(
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

pub(super) fn should(
    message: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Outcome {
    Outcome::Deviation {
        level: Level::Should,
        message: message.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

pub(super) fn unsupported(why: impl Into<String>) -> Outcome {
    Outcome::Unsupported(why.into())
}

/// How the runner sets up TLS for one connection.
#[derive(Clone, Debug, Default)]
pub(super) enum TlsPlan {
    /// As configured (TLS 1.3, ALPN `fleetwire/1`), or plaintext.
    #[default]
    Default,
    /// Only TLS 1.2 (client or server side).
    Tls12Only,
    /// These ALPN ids (none when empty).
    Alpn(Vec<&'static [u8]>),
    /// (Runner as TLS client.) Present a client certificate with these URI SANs.
    ClientCert(Vec<String>),
    /// Skip TLS on a TLS connection: Fleetwire bytes in the clear.
    Skip,
    /// (Runner as TLS server.) A certificate from a CA the testee does not trust.
    UntrustedServerCert,
    /// (Runner as TLS server.) A certificate from the trusted CA for another name.
    WrongServerName,
    /// (Runner as TLS server.) A certificate naming this Fleetwire identity URI.
    ServerIdentity(String),
}

/// What the runner sends when the connection opens.
#[derive(Clone, Debug)]
pub(super) enum HelloPlan {
    /// The runner's HELLO, edited.
    Edit(fn(&mut Hello<'static>)),
    /// This HELLO payload, in a valid HELLO header.
    Payload(Vec<u8>),
    /// No HELLO.
    None,
}

/// How to open a connection.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub(super) tls: TlsPlan,
    /// The bytes sent first instead of the preface (`None`: the preface).
    pub(super) preface: Option<Vec<u8>>,
    pub(super) hello: HelloPlan,
    /// Read the testee's preface and HELLO before the case starts.
    pub(super) read_hello: bool,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            tls: TlsPlan::Default,
            preface: None,
            hello: HelloPlan::Edit(|_| {}),
            read_hello: true,
        }
    }
}

impl Plan {
    pub(super) fn hello(edit: fn(&mut Hello<'static>)) -> Plan {
        Plan {
            hello: HelloPlan::Edit(edit),
            ..Plan::default()
        }
    }
}

/// A DATA packet the runner sent, as its echo must look.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    pub(super) payload: Vec<u8>,
    pub(super) service: u8,
    pub(super) channel: u8,
    pub(super) never: bool,
}

/// What the testee did until it closed (or the deadline passed).
#[derive(Debug, Default)]
pub(super) struct Closing {
    /// GOAWAYs: code, delivered, when.
    pub(super) goaways: Vec<(ErrorCode, u64, Instant)>,
    /// Everything else it sent meanwhile.
    pub(super) others: Vec<Packet>,
    /// When the stream ended, if it did.
    pub(super) closed_at: Option<Instant>,
    /// An invalid header, if any.
    pub(super) garbage: Option<String>,
}

/// The runner's HELLO: small limits so that the testee's sender-side bounds apply to
/// every testee (spec §4.5, §8, §9.2).
pub(super) fn runner_hello(role: PeerRole) -> Hello<'static> {
    let mut limits = Limits::default();
    limits.max_payload = 1024;
    limits.max_decompressed = 4096;
    limits.max_ratio = 8;
    limits.initial_credit_packets = 64;
    limits.initial_credit_bytes = 16_384;
    limits.idle_timeout_ms = 0;
    match role {
        PeerRole::Server => Hello::new(Role::Client, 0, &limits, 0x03),
        PeerRole::Client => {
            let mut h = Hello::new(Role::Node, RUNNER_ID, &limits, 0x03);
            h.peer_id = CLIENT_ID;
            h
        }
    }
}

pub(super) fn hello_packet(hello: &Hello<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Control::Hello(*hello).encode_packet(&mut out);
    out
}

pub(super) fn hello_payload(hello: &Hello<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    hello.encode(&mut out);
    out
}

/// A packet from a header and a payload.
pub(super) fn packet(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode_to_vec(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A DATA packet to destination 0.
pub(super) fn data(service: u8, channel: u8, payload: &[u8]) -> Vec<u8> {
    packet(
        &Header::data(Route::new(0, service, channel), payload.len() as u16),
        payload,
    )
}

/// A control packet.
pub(super) fn control(c: Control<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode_packet(&mut out);
    out
}

/// A control packet of `kind` with a raw payload.
pub(super) fn raw_control(kind: Kind, payload: &[u8]) -> Vec<u8> {
    packet(&Header::control(kind, payload.len() as u16), payload)
}

pub(super) fn describe(p: &Packet) -> String {
    let what = match Control::parse(p.header.kind, &p.payload) {
        Ok(Control::Goaway(g)) if g.reason.is_empty() => format!(" {}", g.code),
        Ok(Control::Goaway(g)) => format!(" {} \"{}\"", g.code, g.reason),
        Ok(Control::Error(e)) => format!(" {}", e.code),
        _ => String::new(),
    };
    format!("{}{what} ({} bytes)", p.header.kind.name(), p.payload.len())
}

/// The context of one case: options, the role under test, violations seen.
pub(super) struct Ctx<'a> {
    pub(super) opts: &'a PeerOptions,
    pub(super) role: PeerRole,
    pub(super) seed: u64,
    pub(super) violations: Rc<RefCell<Vec<Violation>>>,
    /// The testee's HELLO of the first connection, for the report.
    pub(super) first_hello: Option<Hello<'static>>,
}

impl Ctx<'_> {
    /// Random bytes.
    pub(super) fn bytes(&self, len: usize, salt: u64) -> Vec<u8> {
        let mut rng = crate::Rng::new(self.seed ^ salt.wrapping_mul(0x9E37_79B9));
        (0..len).map(|_| rng.byte()).collect()
    }

    /// A connection with the default plan.
    pub(super) fn std(&mut self) -> R<Session> {
        self.open(Plan::default())
    }

    /// The TCP connection (connected or accepted).
    fn tcp(&self, deadline: Instant) -> R<TcpStream> {
        let harness = |e: String| must(e, "a connection to the testee", "none");
        match &self.opts.target {
            PeerTarget::Connect(addr) => {
                let addrs: Vec<_> = addr
                    .to_socket_addrs()
                    .map_err(|e| harness(format!("{addr}: {e}")))?
                    .collect();
                let mut last = format!("{addr}: no address");
                for a in addrs {
                    match TcpStream::connect_timeout(&a, self.opts.timeout) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = format!("cannot connect to {addr}: {e}"),
                    }
                }
                Err(harness(last))
            }
            PeerTarget::Listen(listener) => accept(listener, deadline).map_err(harness),
        }
    }

    fn client_config(&self, plan: &TlsPlan) -> R<Arc<fleetwire::rustls::ClientConfig>> {
        let PeerSecurity::TlsClient {
            ca_pem,
            identity,
            client_ca,
            ..
        } = &self.opts.security
        else {
            return Err(unsupported("a TLS client setup over plaintext"));
        };
        let err = |e: String| must(format!("runner TLS setup: {e}"), "", "");
        let provider = Arc::new(fleetwire::rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&fleetwire::rustls::SupportedProtocolVersion] = match plan {
            TlsPlan::Tls12Only => &[&fleetwire::rustls::version::TLS12],
            _ => &[&fleetwire::rustls::version::TLS13],
        };
        let mut roots = fleetwire::rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            let c = c.map_err(|e| err(e.to_string()))?;
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
        let builder = fleetwire::rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| err(e.to_string()))?
            .with_root_certificates(roots);
        let ident: Option<(String, String)> = match plan {
            TlsPlan::ClientCert(uris) => {
                let Some(ca) = client_ca else {
                    return Err(unsupported(
                        "needs client certificates from a CA the testee trusts (built-in run only)",
                    ));
                };
                let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
                Some(ca.issue(&[], &uris).map_err(err)?)
            }
            _ => identity.as_ref().map(|(c, k)| {
                (
                    String::from_utf8_lossy(c).into_owned(),
                    String::from_utf8_lossy(k).into_owned(),
                )
            }),
        };
        let mut config = match ident {
            Some((c, k)) => {
                let certs = CertificateDer::pem_slice_iter(c.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(e.to_string()))?;
                let key =
                    PrivateKeyDer::from_pem_slice(k.as_bytes()).map_err(|e| err(e.to_string()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| err(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = match plan {
            TlsPlan::Alpn(ids) => ids.iter().map(|a| a.to_vec()).collect(),
            _ => vec![fleetwire::tls::ALPN.to_vec()],
        };
        Ok(Arc::new(config))
    }

    fn server_config(&self, plan: &TlsPlan) -> R<Arc<fleetwire::rustls::ServerConfig>> {
        let PeerSecurity::TlsServer {
            cert_pem,
            key_pem,
            ca,
        } = &self.opts.security
        else {
            return Err(unsupported("a TLS server setup over plaintext"));
        };
        let err = |e: String| must(format!("runner TLS setup: {e}"), "", "");
        let names = ["localhost", "127.0.0.1", "::1"];
        let (cert, key) = match plan {
            TlsPlan::UntrustedServerCert => super::pki::RunnerPki::new()
                .and_then(|p| p.issue(&names, &[]))
                .map_err(err)?,
            TlsPlan::WrongServerName | TlsPlan::ServerIdentity(_) => {
                let Some(ca) = ca else {
                    return Err(unsupported(
                        "needs the key of the CA the client trusts (built-in run only)",
                    ));
                };
                match plan {
                    TlsPlan::ServerIdentity(uri) => ca.issue(&names, &[uri]).map_err(err)?,
                    _ => ca.issue(&["wrong-name.invalid"], &[]).map_err(err)?,
                }
            }
            _ => (
                String::from_utf8_lossy(cert_pem).into_owned(),
                String::from_utf8_lossy(key_pem).into_owned(),
            ),
        };
        let provider = Arc::new(fleetwire::rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&fleetwire::rustls::SupportedProtocolVersion] = match plan {
            TlsPlan::Tls12Only => &[&fleetwire::rustls::version::TLS12],
            _ => &[&fleetwire::rustls::version::TLS13],
        };
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| err(e.to_string()))?;
        let mut config = fleetwire::rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| err(e.to_string()))?;
        config.alpn_protocols = match plan {
            TlsPlan::Alpn(ids) => ids.iter().map(|a| a.to_vec()).collect(),
            _ => vec![fleetwire::tls::ALPN.to_vec()],
        };
        Ok(Arc::new(config))
    }

    /// The TCP connection and, unless the plan skips it, the TLS handshake. `Err(text)`
    /// from the TLS handshake is returned as `Ok(Err)`, for the TLS cases to grade.
    pub(super) fn connect(&mut self, plan: &TlsPlan) -> R<(Wire, Result<(), String>)> {
        let deadline = Instant::now() + self.opts.timeout.max(Duration::from_secs(1));
        let sock = self.tcp(deadline)?;
        let tls = match (&self.opts.security, plan) {
            (PeerSecurity::Plaintext, _) | (_, TlsPlan::Skip) => None,
            (PeerSecurity::TlsClient { server_name, .. }, _) => {
                let config = self.client_config(plan)?;
                Some(
                    TlsEndpoint::client(config, server_name)
                        .map_err(|e| must(format!("runner TLS setup: {e}"), "", ""))?,
                )
            }
            (PeerSecurity::TlsServer { .. }, _) => {
                let config = self.server_config(plan)?;
                Some(
                    TlsEndpoint::server(config)
                        .map_err(|e| must(format!("runner TLS setup: {e}"), "", ""))?,
                )
            }
        };
        let mut wire = Wire::new(sock, tls).map_err(|e| must(e.to_string(), "", ""))?;
        let hs = wire.tls_handshake(deadline);
        Ok((wire, hs))
    }

    /// A TLS 1.2-only handshake ([`TlsPlan::Tls12Only`]) driven by rustls alone, not
    /// through [`TlsEndpoint`], which refuses TLS 1.2 itself once it is negotiated:
    /// whether the handshake completed (the testee negotiated TLS 1.2).
    pub(super) fn tls12_handshake_completes(&mut self) -> R<bool> {
        use fleetwire::rustls::{ClientConnection, ServerConnection};
        let deadline = Instant::now() + self.opts.timeout.max(Duration::from_secs(1));
        let mut sock = self.tcp(deadline)?;
        let harness = |e: String| must(format!("runner TLS setup: {e}"), "", "");
        sock.set_read_timeout(Some(self.opts.timeout.max(Duration::from_millis(100))))
            .map_err(|e| harness(e.to_string()))?;
        let plan = TlsPlan::Tls12Only;
        let completes = match &self.opts.security {
            PeerSecurity::Plaintext => return Err(unsupported("TLS 1.2 over plaintext")),
            PeerSecurity::TlsClient { server_name, .. } => {
                let name = fleetwire::rustls::pki_types::ServerName::try_from(server_name.clone())
                    .map_err(|e| harness(e.to_string()))?;
                let mut conn = ClientConnection::new(self.client_config(&plan)?, name)
                    .map_err(|e| harness(e.to_string()))?;
                while conn.is_handshaking() && Instant::now() < deadline {
                    if !matches!(conn.complete_io(&mut sock), Ok((r, w)) if r + w > 0) {
                        break;
                    }
                }
                !conn.is_handshaking()
            }
            PeerSecurity::TlsServer { .. } => {
                let mut conn = ServerConnection::new(self.server_config(&plan)?)
                    .map_err(|e| harness(e.to_string()))?;
                while conn.is_handshaking() && Instant::now() < deadline {
                    if !matches!(conn.complete_io(&mut sock), Ok((r, w)) if r + w > 0) {
                        break;
                    }
                }
                !conn.is_handshaking()
            }
        };
        Ok(completes)
    }

    /// Opens a connection as `plan` says: TLS, preface, HELLO; reads the testee's preface
    /// and HELLO when asked.
    pub(super) fn open(&mut self, plan: Plan) -> R<Session> {
        let (wire, hs) = self.connect(&plan.tls)?;
        if let Err(e) = hs {
            return Err(must(
                format!("the TLS handshake failed: {e}"),
                "TLS 1.3 with ALPN fleetwire/1",
                "handshake failure",
            ));
        }
        let mut ours = runner_hello(self.role);
        let hello_bytes = match &plan.hello {
            HelloPlan::Edit(edit) => {
                edit(&mut ours);
                hello_packet(&ours)
            }
            HelloPlan::Payload(p) => {
                if let Ok(h) = Hello::parse(p) {
                    ours = Hello {
                        extensions: &[],
                        ..h
                    };
                }
                raw_control(Kind::Hello, p)
            }
            HelloPlan::None => Vec::new(),
        };
        // whether the testee honours X = 1 from the runner (§7.4): an authenticated proxy
        // identity, or a client whose server announces role proxy (1.1 on)
        let proxy_cert = matches!(&plan.tls, TlsPlan::ClientCert(uris) if uris.iter().any(|u| u.starts_with("fleetwire:proxy:")));
        let client_trusts = self.role == PeerRole::Client
            && ours.role == Role::Proxy
            && crate::cases::tag_levels().contains_key("src.client-trusts-server");
        let mut s = Session::new(wire, ours, self, proxy_cert || client_trusts);
        let mut first = plan.preface.clone().unwrap_or_else(|| PREFACE.to_vec());
        first.extend(hello_bytes);
        s.send(&first)?;
        if plan.read_hello {
            s.read_hello()?;
            if self.first_hello.is_none() {
                self.first_hello = Some(s.th);
            }
        }
        Ok(s)
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
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// One connection to the testee.
pub(super) struct Session {
    pub(super) wire: Wire,
    /// The testee's HELLO (default values until read).
    pub(super) th: Hello<'static>,
    /// The runner's HELLO.
    pub(super) ours: Hello<'static>,
    mon: Monitor,
    /// How many of the testee's bytes the monitor has seen.
    fed: usize,
    epoch: Instant,
    shared: Rc<RefCell<Vec<Violation>>>,
    pending: VecDeque<Event>,
    /// Credit the testee granted the runner and the runner has not used.
    pub(super) credit: (u64, u64),
    /// Grant credit back for every DATA received.
    pub(super) auto_grant: bool,
    grant_pending: (u32, u32),
    /// Answer the testee's PINGs.
    pub(super) answer_pings: bool,
    pub(super) timeout: Duration,
    next_ping: u64,
    /// When the connection (TCP, or TLS when used) was established.
    pub(super) opened: Instant,
    /// When the runner last wrote.
    pub(super) last_send: Instant,
    /// DATA packets received from the testee.
    pub(super) data_received: u64,
    decompressor: Decompressor,
    /// Echoes of these payloads may come or not: skipped by the echo checks.
    pub(super) skip_echoes: Vec<Vec<u8>>,
    /// Skip every DATA that is not the echo expected next.
    pub(super) skip_all_echoes: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.feed();
        self.shared.borrow_mut().extend(self.mon.take_violations());
    }
}

impl Session {
    fn new(wire: Wire, ours: Hello<'static>, ctx: &Ctx<'_>, peer_trusted: bool) -> Session {
        let now = Instant::now();
        Session {
            wire,
            th: Hello::new(Role::Node, 1, &Limits::default(), 0),
            mon: Monitor::new(MonitorOptions {
                role: None,
                peer_trusted,
                synchronous: false,
            }),
            fed: 0,
            epoch: now,
            ours,
            shared: ctx.violations.clone(),
            pending: VecDeque::new(),
            credit: (0, 0),
            auto_grant: true,
            grant_pending: (0, 0),
            answer_pings: true,
            timeout: ctx.opts.timeout,
            next_ping: ctx.seed.wrapping_mul(1000) | 1,
            opened: now,
            last_send: now,
            data_received: 0,
            decompressor: Decompressor::new(),
            skip_echoes: Vec::new(),
            skip_all_echoes: false,
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Reads the testee's preface and HELLO (when the plan did not).
    pub(super) fn read_hello_pub(&mut self) -> R<()> {
        self.read_hello()
    }

    fn read_hello(&mut self) -> R<()> {
        let deadline = self.deadline();
        self.wire
            .read_preface(deadline)
            .map_err(|e| must(e, "the testee's preface", "none or wrong"))?;
        match self.next(deadline) {
            Event::Packet(p, _) if p.header.kind == Kind::Hello => {
                let h = Hello::parse(&p.payload).map_err(|e| {
                    must(
                        format!("the testee's HELLO is invalid: {}", e.detail()),
                        "a valid HELLO",
                        describe(&p),
                    )
                })?;
                self.th = Hello {
                    extensions: &[],
                    ..h
                };
                self.credit = (
                    u64::from(h.initial_credit_packets),
                    u64::from(h.initial_credit_bytes),
                );
                Ok(())
            }
            Event::Packet(p, _) => Err(must(
                "the testee sent another packet before its HELLO (§3 [[preface.send]])",
                "HELLO",
                describe(&p),
            )),
            Event::Closed => Err(must(
                "the testee closed before sending its HELLO (§3 [[preface.send]])",
                "HELLO",
                "closed",
            )),
            Event::Timeout => Err(must("no HELLO from the testee in time", "HELLO", "nothing")),
            Event::Garbage(_, e) => Err(must(e, "HELLO", "invalid header")),
        }
    }

    /// Hands the testee's new output to the monitor.
    fn feed(&mut self) {
        if self.wire.received.len() > self.fed {
            let now = self.epoch.elapsed();
            self.mon.sent(now, &self.wire.received[self.fed..]);
            self.fed = self.wire.received.len();
        }
    }

    /// Sends Fleetwire bytes through the wire, telling the monitor what the testee is
    /// about to receive.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.feed();
        self.mon.received(self.epoch.elapsed(), bytes);
        self.wire.send(bytes)
    }

    /// Sends raw Fleetwire bytes, in one write.
    pub(super) fn send(&mut self, bytes: &[u8]) -> R<()> {
        self.last_send = Instant::now();
        self.write(bytes).map_err(|e| {
            must(
                format!("the connection failed while the runner was sending: {e}"),
                "the connection stays open",
                "write failed",
            )
        })
    }

    /// Sends bytes one write per chunk of `chunk` bytes, `gap` apart.
    pub(super) fn send_spread(&mut self, bytes: &[u8], chunk: usize, gap: Duration) -> R<()> {
        for (i, c) in bytes.chunks(chunk.max(1)).enumerate() {
            if i > 0 {
                std::thread::sleep(gap);
            }
            self.send(c)?;
        }
        Ok(())
    }

    /// Whether the runner has credit for a DATA of `len` bytes.
    pub(super) fn has_credit(&self, len: usize) -> bool {
        self.credit.0 >= 1 && self.credit.1 >= len as u64
    }

    /// Takes credit for DATA the runner is about to send (bytes built by the case).
    pub(super) fn take_credit(&mut self, lens: &[usize]) -> R<()> {
        let packets = lens.len() as u64;
        let bytes: u64 = lens.iter().map(|&l| l as u64).sum();
        let deadline = self.deadline();
        while self.credit.0 < packets || self.credit.1 < bytes {
            // wait for the testee's CREDIT; keep what else arrives
            match self.wire.next(deadline) {
                Event::Packet(p, t) => {
                    self.observe(&p);
                    self.feed();
                    self.pending.push_back(Event::Packet(p, t));
                }
                other => {
                    let what = format!("{other:?}");
                    self.pending.push_back(other);
                    return Err(must(
                        format!(
                            "the testee did not grant credit for {packets} packets and {bytes} bytes \
                             (§8 [[flow.no-deadlock]])"
                        ),
                        "CREDIT",
                        what,
                    ));
                }
            }
        }
        self.credit.0 -= packets;
        self.credit.1 -= bytes;
        Ok(())
    }

    /// Sends DATA packets (destination 0), waiting for credit; returns what they carry.
    pub(super) fn send_data(
        &mut self,
        service: u8,
        channel: u8,
        payloads: &[Vec<u8>],
    ) -> R<Vec<Sent>> {
        let lens: Vec<usize> = payloads.iter().map(Vec::len).collect();
        self.take_credit(&lens)?;
        let mut bytes = Vec::new();
        for p in payloads {
            bytes.extend(data(service, channel, p));
        }
        self.send(&bytes)?;
        Ok(payloads
            .iter()
            .map(|p| Sent {
                payload: p.clone(),
                service,
                channel,
                never: false,
            })
            .collect())
    }

    /// A PING packet, registered with the sender checks.
    pub(super) fn ping_bytes(&mut self) -> (Ping, Vec<u8>) {
        self.next_ping = self.next_ping.wrapping_add(1);
        let ping = Ping {
            id: self.next_ping,
            timestamp: 0x0102_0304_0506_0708 ^ self.next_ping,
        };
        (ping, control(Control::Ping(ping)))
    }

    /// Grants the credit the runner's received DATA consumed.
    fn flush_grants(&mut self) {
        let (packets, bytes) = self.grant_pending;
        if packets == 0 && bytes == 0 {
            return;
        }
        self.grant_pending = (0, 0);
        let c = control(Control::Credit(Credit { packets, bytes }));
        let _ = self.write(&c);
    }

    /// What one packet from the testee means to the runner's bookkeeping.
    fn observe(&mut self, p: &Packet) {
        match p.header.kind {
            Kind::Data => {
                self.data_received += 1;
                if self.auto_grant {
                    self.grant_pending.0 += 1;
                    self.grant_pending.1 += u32::from(p.header.length);
                }
            }
            Kind::Credit => {
                if let Ok(c) = fleetwire::control::Credit::parse(&p.payload) {
                    self.credit.0 += u64::from(c.packets);
                    self.credit.1 += u64::from(c.bytes);
                }
            }
            Kind::Ping if self.answer_pings => {
                if let Ok(ping) = Ping::parse(&p.payload) {
                    let pong = control(Control::Pong(Pong {
                        id: ping.id,
                        timestamp: ping.timestamp,
                        hold_us: 0,
                    }));
                    let _ = self.write(&pong);
                }
            }
            _ => {}
        }
    }

    /// The next event from the testee.
    pub(super) fn next(&mut self, deadline: Instant) -> Event {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        self.flush_grants();
        match self.wire.next(deadline) {
            Event::Packet(p, t) => {
                self.observe(&p);
                Event::Packet(p, t)
            }
            Event::Garbage(code, what) => {
                self.feed();
                Event::Garbage(code, what)
            }
            other => other,
        }
    }

    /// Everything until the testee closes or `deadline`.
    pub(super) fn until_close(&mut self, deadline: Instant) -> Closing {
        let mut c = Closing::default();
        loop {
            match self.next(deadline) {
                Event::Packet(p, t) if p.header.kind == Kind::Goaway => {
                    match Goaway::parse(&p.payload) {
                        Ok(g) => c.goaways.push((g.code, g.delivered, t)),
                        Err(_) => c.others.push(p),
                    }
                }
                Event::Packet(p, _) => c.others.push(p),
                Event::Closed => {
                    c.closed_at = Some(Instant::now());
                    return c;
                }
                Event::Timeout => return c,
                Event::Garbage(_, e) => {
                    c.garbage = Some(e);
                    c.closed_at = Some(Instant::now());
                    return c;
                }
            }
        }
    }

    /// A connection error: GOAWAY `code` (SHOULD, §6.4 `[[close.on-error-goaway]]`) and
    /// close (MUST, `[[close.on-error]]`). A GOAWAY with another code fails the case.
    pub(super) fn expect_close(&mut self, code: ErrorCode) -> Outcome {
        let c = self.until_close(self.deadline());
        grade_close(&c, code, self.timeout)
    }

    /// No connection error, no packet error and no close for `dur`; returns the packets.
    pub(super) fn expect_quiet(&mut self, dur: Duration, why: &str) -> R<Vec<Packet>> {
        let deadline = Instant::now() + dur;
        let mut seen = Vec::new();
        loop {
            match self.next(deadline) {
                Event::Timeout => return Ok(seen),
                Event::Packet(p, _) if matches!(p.header.kind, Kind::Goaway | Kind::Error) => {
                    return Err(must(
                        format!("the testee reported an error {why}: {}", describe(&p)),
                        "no error",
                        describe(&p),
                    ))
                }
                Event::Packet(p, _) => seen.push(p),
                Event::Closed => {
                    return Err(must(
                        format!("the testee closed the connection: {why}"),
                        "the connection stays open",
                        "closed",
                    ))
                }
                Event::Garbage(_, e) => return Err(must(e, "valid packets", "invalid header")),
            }
        }
    }

    /// The payload of a DATA packet the testee sent, decompressed.
    fn plain(&mut self, p: &Packet) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let limits = DecompressLimits {
            max_decompressed: 16 * 1024 * 1024,
            max_ratio: 255,
            codecs: 0x03,
        };
        self.decompressor
            .decompress(p.header.codec, &p.payload, &limits, &mut out)
            .ok()
            .map(|()| out)
    }

    /// The echoes of `sent`, in order, with no error; with `pings`, their PONGs, each
    /// before the echo of any DATA sent after its PING (`pings[i].1` = how many of
    /// `sent` precede the PING).
    pub(super) fn expect_echoes_with(&mut self, sent: &[Sent], pings: &[(Ping, usize)]) -> Outcome {
        let deadline = self.deadline();
        let mut next = 0;
        let mut pongs = 0;
        let want = |next: usize, pongs: usize| {
            format!(
                "{} echoes and {} PONGs (got {next} and {pongs})",
                sent.len(),
                pings.len()
            )
        };
        while next < sent.len() || pongs < pings.len() {
            match self.next(deadline) {
                Event::Packet(p, _) if p.header.kind == Kind::Pong => {
                    let Ok(pong) = Pong::parse(&p.payload) else {
                        continue; // the sender checks report it
                    };
                    if pongs < pings.len() && pong.id == pings[pongs].0.id {
                        if next > pings[pongs].1 {
                            return must(
                                "the PONG came after the echo of DATA sent after its PING (§5.3 [[ping.order]])",
                                "PONG before that echo",
                                format!("echo {} first", pings[pongs].1),
                            );
                        }
                        pongs += 1;
                    }
                }
                Event::Packet(p, _) if p.header.kind == Kind::Data => {
                    if next >= sent.len() {
                        continue;
                    }
                    let s = &sent[next];
                    let Some(plain) = self.plain(&p) else {
                        if self.skip_all_echoes || !self.skip_echoes.is_empty() {
                            continue; // the sender checks report it
                        }
                        return must(
                            "an echo that does not decompress (§9.1)",
                            "a valid payload",
                            describe(&p),
                        );
                    };
                    let matches = plain == s.payload
                        && p.header.route.service == s.service
                        && p.header.route.channel == s.channel;
                    if !matches && (self.skip_all_echoes || self.skip_echoes.contains(&plain)) {
                        continue;
                    }
                    if plain != s.payload
                        || p.header.route.service != s.service
                        || p.header.route.channel != s.channel
                    {
                        return must(
                            format!("echo {next} differs from the DATA sent (the echo contract, or a lost or reordered packet)"),
                            format!(
                                "service {} channel {}: {}",
                                s.service,
                                s.channel,
                                crate::forms::hex(&s.payload[..s.payload.len().min(64)])
                            ),
                            format!(
                                "service {} channel {}: {}",
                                p.header.route.service,
                                p.header.route.channel,
                                crate::forms::hex(&plain[..plain.len().min(64)])
                            ),
                        );
                    }
                    if s.never && p.header.codec != Codec::None {
                        return must(
                            "the echo of a payload marked N = 1 is compressed (§9.2 [[comp.never]])",
                            "uncompressed",
                            describe(&p),
                        );
                    }
                    if pongs < pings.len() && next >= pings[pongs].1 {
                        return must(
                            "the echo of DATA sent after a PING came before its PONG (§5.3 [[ping.order]])",
                            "PONG first",
                            "echo first",
                        );
                    }
                    next += 1;
                }
                Event::Packet(p, _) if matches!(p.header.kind, Kind::Goaway | Kind::Error) => {
                    return must(
                        format!(
                            "the testee reported an error for valid input: {}",
                            describe(&p)
                        ),
                        want(next, pongs),
                        describe(&p),
                    )
                }
                Event::Packet(..) => {}
                Event::Closed => {
                    return must(
                        "the testee closed the connection",
                        want(next, pongs),
                        "closed",
                    )
                }
                Event::Timeout => {
                    return must(
                        format!("no answer within {} ms", self.timeout.as_millis()),
                        want(next, pongs),
                        "nothing more",
                    )
                }
                Event::Garbage(_, e) => return must(e, want(next, pongs), "invalid header"),
            }
        }
        Outcome::Ok
    }

    pub(super) fn expect_echoes(&mut self, sent: &[Sent]) -> Outcome {
        self.expect_echoes_with(sent, &[])
    }

    /// A PING and a DATA probe: the PONG and the echo prove the connection still works.
    pub(super) fn expect_alive(&mut self, salt: u8) -> Outcome {
        let (ping, mut bytes) = self.ping_bytes();
        let payload = vec![salt; 12];
        if let Err(o) = self.take_credit(&[payload.len()]) {
            return o;
        }
        bytes.extend(data(9, salt, &payload));
        if let Err(o) = self.send(&bytes) {
            return o;
        }
        let sent = Sent {
            payload,
            service: 9,
            channel: salt,
            never: false,
        };
        self.expect_echoes_with(&[sent], &[(ping, 0)])
    }

    /// A PING answered, and no error: the testee accepted the handshake.
    pub(super) fn expect_pong(&mut self) -> Outcome {
        let (ping, bytes) = self.ping_bytes();
        if let Err(o) = self.send(&bytes) {
            return o;
        }
        self.expect_echoes_with(&[], &[(ping, 0)])
    }

    /// The id the testee attributes to the runner: the source of its packets (§7.4).
    pub(super) fn our_source(&self) -> u16 {
        match self.ours.role {
            Role::Client => {
                if self.th.peer_id == 0xFFFF {
                    0
                } else {
                    self.th.peer_id
                }
            }
            _ => self.ours.node_id,
        }
    }

    /// A packet error: ERROR `code` about `header` (the discarded packet's header as
    /// sent, §5.7), routed to the runner's source; the connection stays open. Then the
    /// probe DATA sent after it is echoed.
    pub(super) fn expect_packet_error(
        &mut self,
        code: ErrorCode,
        header: &[u8],
        probe: &[Sent],
    ) -> Outcome {
        let deadline = self.deadline();
        let mut got: Option<(ErrorCode, Vec<u8>, u16)> = None;
        loop {
            match self.next(deadline) {
                Event::Packet(p, _) if p.header.kind == Kind::Error => {
                    match ErrorReport::parse(&p.payload) {
                        Ok(e) if got.is_none() => {
                            got = Some((e.code, e.header.to_vec(), p.header.route.node))
                        }
                        Ok(_) => {}
                        Err(_) => {
                            return must(
                                "the testee's ERROR is malformed",
                                format!("ERROR {code}"),
                                describe(&p),
                            )
                        }
                    }
                }
                Event::Packet(p, _) if p.header.kind == Kind::Data => {
                    // the echo of the probe: the ERROR must have come first
                    self.pending.push_front(Event::Packet(p, Instant::now()));
                    break;
                }
                Event::Packet(p, _) if p.header.kind == Kind::Goaway => {
                    return must(
                        "the connection closed on a packet error (§12.1 [[err.scope]])",
                        format!("ERROR {code}, connection kept"),
                        describe(&p),
                    )
                }
                Event::Packet(..) => {}
                Event::Closed => {
                    return must(
                        "the connection closed on a packet error (§12.1 [[err.scope]])",
                        format!("ERROR {code}, connection kept"),
                        "closed",
                    )
                }
                Event::Timeout => {
                    return must(
                        format!("no answer within {} ms", self.timeout.as_millis()),
                        format!("ERROR {code}, then the echo"),
                        got.map_or("nothing".into(), |g| format!("ERROR {}", g.0)),
                    )
                }
                Event::Garbage(_, e) => return must(e, "valid packets", "invalid header"),
            }
        }
        let Some((c, h, dest)) = got else {
            return must(
                "the discarded packet got no ERROR before the next echo (§12.1 [[err.scope]])",
                format!("ERROR {code}"),
                "no ERROR",
            );
        };
        if c != code {
            return must(
                format!("the packet was reported as {c}"),
                format!("ERROR {code}"),
                format!("ERROR {c}"),
            );
        }
        if h != header {
            return must(
                "the ERROR does not embed the discarded header as received (§5.7 [[error.layout]])",
                crate::forms::hex(header),
                crate::forms::hex(&h),
            );
        }
        let src = self.our_source();
        if dest != src {
            return must(
                "the ERROR is not routed to the source of the discarded packet (§5.7 [[error.route]])",
                format!("destination {src}"),
                format!("destination {dest}"),
            );
        }
        self.expect_echoes(probe)
    }
}

/// Grades what the testee did against a connection error with `code`.
pub(super) fn grade_close(c: &Closing, code: ErrorCode, timeout: Duration) -> Outcome {
    if let Some(g) = &c.garbage {
        return must(g.clone(), format!("GOAWAY {code}"), "invalid header");
    }
    let first = c.goaways.first().map(|g| g.0);
    if c.closed_at.is_none() {
        return must(
            format!("the testee did not close within {} ms", timeout.as_millis()),
            format!("GOAWAY {code}, close"),
            first.map_or("nothing, still open".into(), |c| {
                format!("GOAWAY {c}, still open")
            }),
        );
    }
    // an answer GOAWAY NO_ERROR may precede the error's GOAWAY (§6.4)
    let error_goaway = c.goaways.iter().map(|g| g.0).find(|&g| g == code);
    match (first, error_goaway) {
        (_, Some(_)) => Outcome::Ok,
        (Some(other), None) => must(
            format!("closed with {other} instead of {code}"),
            format!("GOAWAY {code}"),
            format!("GOAWAY {other}"),
        ),
        (None, None) if code == ErrorCode::NO_ERROR => must(
            "closed without answering the GOAWAY (§6.4 [[close.answer]])",
            "GOAWAY NO_ERROR, close",
            "closed",
        ),
        (None, None) => Outcome::Deviation {
            level: crate::runner::error_goaway_level(),
            message: format!("closed without GOAWAY {code} (§6.4 [[close.on-error-goaway]])"),
            expected: format!("GOAWAY {code}, close"),
            actual: "closed".into(),
        },
    }
}

/// Compresses with zlib.
pub(super) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Compresses with snappy (raw block format).
pub(super) fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default()
}

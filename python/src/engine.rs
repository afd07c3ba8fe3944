//! `fleetwire.Engine`: the transport engine's IO threads, driven from one Python thread.
//!
//! Every call that may wait (`recv_batch` with a timeout, `close`, `connect`'s name
//! lookup) releases the GIL; `send`/`send_many` only queue (one lock per batch) and
//! return. `recv_batch` converts every ready event under the one GIL acquisition that
//! follows the wait.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use fleetwire::transport::{
    AppEvent, ConnId, Engine, EngineConfig, IoThreadStart, Outgoing, SendFlags, TlsOptions,
};
use fleetwire::{Codec, ErrorCode, Route};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::errors::{self, EngineClosed, TlsConfigError};
use crate::native::{self, Counter};
use crate::payload::{new_payload, to_bytes};

/// The binding's default per-connection receive budget.
const DEFAULT_RECV_BUDGET: usize = 256 * 1024;

/// `Engine(io_slice_us=…)`'s default: the shortest slice Linux grants (see `sched`).
const DEFAULT_IO_SLICE_US: u64 = 100;

/// `send` flag: prefer snappy compression (used when the peer announced it and it helps).
pub(crate) const SNAPPY: u32 = 1;
/// `send` flag: prefer zlib compression.
pub(crate) const ZLIB: u32 = 2;
/// `send` flag: the payload holds secrets: never compress it (N = 1, spec §4.4, §14.1).
pub(crate) const SECRET: u32 = 4;

pub(crate) fn flags_from(flags: u32) -> PyResult<SendFlags> {
    if flags & !(SNAPPY | ZLIB | SECRET) != 0 || flags & (SNAPPY | ZLIB) == SNAPPY | ZLIB {
        return Err(PyValueError::new_err(format!(
            "invalid send flags {flags:#x}"
        )));
    }
    let codec = if flags & SECRET != 0 {
        Codec::None
    } else if flags & SNAPPY != 0 {
        Codec::Snappy
    } else if flags & ZLIB != 0 {
        Codec::Zlib
    } else {
        Codec::None
    };
    Ok(SendFlags {
        codec,
        never_compress: flags & SECRET != 0,
    })
}

pub(crate) fn route_from(route: &Bound<'_, PyAny>) -> PyResult<Route> {
    let (node, service, channel): (u16, u8, u8) = route.extract().map_err(|_| {
        PyTypeError::new_err(
            "route must be a tuple (node: 0..65535, service: 0..255, channel: 0..255)",
        )
    })?;
    Ok(Route::new(node, service, channel))
}

/// The engine's options for a client connection: TLS with `tls`, else plaintext.
fn client_options(tls: Option<&Bound<'_, ClientTls>>) -> TlsOptions {
    match tls {
        Some(t) => TlsOptions::Client {
            config: t.get().config.clone(),
            server_name: t.get().server_name.clone(),
        },
        None => TlsOptions::Plaintext,
    }
}

fn read_file(path: &str, what: &str) -> PyResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| TlsConfigError::new_err(format!("{what} {path}: {e}")))
}

/// TLS 1.3 for `Engine.listen`: the server's certificate chain and key (PEM files);
/// with `client_ca`, mutual TLS: clients must present a certificate issued by it.
#[pyclass(frozen, module = "fleetwire._native", name = "ServerTls")]
pub(crate) struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

#[pymethods]
impl ServerTls {
    #[new]
    #[pyo3(signature = (cert, key, client_ca = None))]
    fn new(cert: &str, key: &str, client_ca: Option<&str>) -> PyResult<ServerTls> {
        let cert = read_file(cert, "certificate")?;
        let key = read_file(key, "key")?;
        let ca = client_ca.map(|p| read_file(p, "client CA")).transpose()?;
        let config = fleetwire::tls::server_config(&cert, &key, ca.as_deref())
            .map_err(|e| TlsConfigError::new_err(e.to_string()))?;
        Ok(ServerTls { config })
    }
}

/// TLS 1.3 for `Engine.connect`: the trust anchors (PEM file), the name the server's
/// certificate must carry, and for mutual TLS our certificate chain and key.
#[pyclass(frozen, module = "fleetwire._native", name = "ClientTls")]
pub(crate) struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: String,
}

#[pymethods]
impl ClientTls {
    #[new]
    #[pyo3(signature = (ca, server_name = "localhost".to_owned(), cert = None, key = None))]
    fn new(
        ca: &str,
        server_name: String,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> PyResult<ClientTls> {
        let ca = read_file(ca, "CA")?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read_file(c, "certificate")?, read_file(k, "key")?)),
            (None, None) => None,
            _ => return Err(PyValueError::new_err("cert and key go together")),
        };
        let config = fleetwire::tls::client_config(
            &ca,
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
        .map_err(|e| TlsConfigError::new_err(e.to_string()))?;
        Ok(ClientTls {
            config,
            server_name,
        })
    }
}

/// A listening socket: `id` (reported in `Accepted.listener`), `host`, `port`.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Listener")]
pub(crate) struct PyListener {
    id: u64,
    host: String,
    port: u16,
}

#[pymethods]
impl PyListener {
    fn __repr__(&self) -> String {
        format!(
            "Listener(id={}, host={:?}, port={})",
            self.id, self.host, self.port
        )
    }
}

/// One DATA packet received: `conn`, `source`, `route` = (node, service, channel),
/// `payload` (a zero-copy `Payload`), `never_compress`.
#[pyclass(
    frozen,
    freelist = 4096,
    module = "fleetwire._native",
    name = "Message"
)]
pub(crate) struct PyMessage {
    #[pyo3(get)]
    conn: u64,
    #[pyo3(get)]
    source: u16,
    route: Route,
    bytes: Bytes,
    #[pyo3(get)]
    never_compress: bool,
}

#[pymethods]
impl PyMessage {
    /// The route: (node, service, channel).
    #[getter]
    fn route(&self) -> (u16, u8, u8) {
        (self.route.node, self.route.service, self.route.channel)
    }
    /// The destination node of the route.
    #[getter]
    fn node(&self) -> u16 {
        self.route.node
    }
    /// The service of the route.
    #[getter]
    fn service(&self) -> u8 {
        self.route.service
    }
    /// The channel of the route.
    #[getter]
    fn channel(&self) -> u8 {
        self.route.channel
    }
    /// The payload: a read-only buffer over the received bytes (no copy).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        new_payload(py, self.bytes.clone())
    }
    fn __len__(&self) -> usize {
        self.bytes.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "Message(conn={}, source={}, route=({}, {}, {}), {} bytes)",
            self.conn,
            self.source,
            self.route.node,
            self.route.service,
            self.route.channel,
            self.bytes.len()
        )
    }
}

/// A listener accepted a connection; `Connected` follows after the handshake.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Accepted")]
pub(crate) struct Accepted {
    conn: u64,
    listener: u64,
    peer_host: String,
    peer_port: u16,
}

/// The handshake completed; the peer's announced identity and limits.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Connected")]
pub(crate) struct Connected {
    conn: u64,
    role: String,
    node_id: u16,
    attributed_id: u16,
    codecs: u8,
    max_payload: u16,
}

/// The peer discarded one of our packets (spec §5.7): `code`, `code_name`, `reason`.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "PacketError")]
pub(crate) struct PacketError {
    conn: u64,
    code: u16,
    code_name: Option<&'static str>,
    source: u16,
    reason: String,
}

#[pymethods]
impl PacketError {
    fn __repr__(&self) -> String {
        format!(
            "PacketError(conn={}, code={}, source={}, reason={:?})",
            self.conn,
            self.code_name.unwrap_or("?"),
            self.source,
            self.reason
        )
    }
}

/// An accepted message could not be encoded (for example above the peer's limit).
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "SendFailed")]
pub(crate) struct SendFailed {
    conn: u64,
    route: (u16, u8, u8),
    error: String,
}

/// The PONG answering `Engine.ping`: `rtt` in seconds.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Pong")]
pub(crate) struct Pong {
    conn: u64,
    rtt: f64,
}

/// The peer closes gracefully (spec §6.4 half-close): it sends no more messages but
/// still takes ours. Send what it is owed, then `close_conn(conn)`; the engine answers
/// by itself once this thread has taken the connection's messages and gone quiet on it.
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "GoawayReceived")]
pub(crate) struct GoawayReceived {
    conn: u64,
    delivered: u64,
    reason: String,
}

#[pymethods]
impl GoawayReceived {
    fn __repr__(&self) -> String {
        format!(
            "GoawayReceived(conn={}, delivered={}, reason={:?})",
            self.conn, self.delivered, self.reason
        )
    }
}

/// The connection closed with messages it cannot confirm (comes right before `Closed`).
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Undelivered")]
pub(crate) struct Undelivered {
    conn: u64,
    queued: u64,
    unconfirmed: u64,
}

/// The connection closed (always its last event): `code` (GOAWAY code, spec §12.4, or
/// CONNECTION_LOST), `by_peer`, `reason`, `delivered` (from the peer's GOAWAY).
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Closed")]
pub(crate) struct Closed {
    conn: u64,
    code: u16,
    code_name: Option<&'static str>,
    by_peer: bool,
    reason: String,
    delivered: Option<u64>,
}

#[pymethods]
impl Closed {
    fn __repr__(&self) -> String {
        format!(
            "Closed(conn={}, code={}, by_peer={}, reason={:?})",
            self.conn,
            self.code_name.unwrap_or("?"),
            self.by_peer,
            self.reason
        )
    }
}

fn event_to_py<'py>(py: Python<'py>, e: AppEvent) -> PyResult<Bound<'py, PyAny>> {
    Ok(match e {
        AppEvent::Message(m) => Bound::new(
            py,
            PyMessage {
                conn: m.conn.raw(),
                source: m.source,
                route: m.route,
                bytes: m.payload,
                never_compress: m.never_compress,
            },
        )?
        .into_any(),
        AppEvent::Accepted {
            conn,
            listener,
            peer_addr,
        } => Bound::new(
            py,
            Accepted {
                conn: conn.raw(),
                listener: listener.raw(),
                peer_host: peer_addr.ip().to_string(),
                peer_port: peer_addr.port(),
            },
        )?
        .into_any(),
        AppEvent::Connected { conn, peer } => Bound::new(
            py,
            Connected {
                conn: conn.raw(),
                role: peer.role.name().to_owned(),
                node_id: peer.node_id,
                attributed_id: peer.attributed_id,
                codecs: peer.codecs,
                max_payload: peer.max_payload,
            },
        )?
        .into_any(),
        AppEvent::PacketError {
            conn,
            code,
            source,
            reason,
        } => Bound::new(
            py,
            PacketError {
                conn: conn.raw(),
                code: code.0,
                code_name: code.name(),
                source,
                reason,
            },
        )?
        .into_any(),
        AppEvent::SendFailed { conn, route, error } => Bound::new(
            py,
            SendFailed {
                conn: conn.raw(),
                route: (route.node, route.service, route.channel),
                error: format!("{error:?}"),
            },
        )?
        .into_any(),
        AppEvent::Pong { conn, rtt } => Bound::new(
            py,
            Pong {
                conn: conn.raw(),
                rtt: rtt.as_secs_f64(),
            },
        )?
        .into_any(),
        AppEvent::GoawayReceived {
            conn,
            delivered,
            reason,
        } => Bound::new(
            py,
            GoawayReceived {
                conn: conn.raw(),
                delivered,
                reason,
            },
        )?
        .into_any(),
        AppEvent::Undelivered {
            conn,
            queued,
            unconfirmed,
        } => Bound::new(
            py,
            Undelivered {
                conn: conn.raw(),
                queued,
                unconfirmed,
            },
        )?
        .into_any(),
        AppEvent::Closed {
            conn,
            code,
            by_peer,
            reason,
            delivered,
        } => Bound::new(
            py,
            Closed {
                conn: conn.raw(),
                code: code.0,
                code_name: code.name(),
                by_peer,
                reason,
                delivered,
            },
        )?
        .into_any(),
        other => Bound::new(
            py,
            Closed {
                conn: other.conn().raw(),
                code: ErrorCode::INTERNAL_ERROR.0,
                code_name: ErrorCode::INTERNAL_ERROR.name(),
                by_peer: false,
                reason: format!("unknown event {other:?}"),
                delivered: None,
            },
        )?
        .into_any(),
    })
}

fn resolve(py: Python<'_>, host: &str, port: u16) -> PyResult<SocketAddr> {
    let host = host.to_owned();
    py.detach(move || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut a| a.next())
    })
    .map_err(|e| PyOSError::new_err(e.to_string()))?
    .ok_or_else(|| PyOSError::new_err("no address for host"))
}

/// The transport engine: IO threads own the sockets, TLS, framing, compression, flow
/// control and native routes; this Python thread only queues and takes batches.
///
/// ``Engine(io_threads=1, node_id=1, send_queue_packets=65536,
/// send_queue_bytes=16 MiB, recv_budget_bytes=256 KiB, global_recv_budget_bytes=256 MiB,
/// ping_interval=1.0, close_timeout=5.0, io_slice_us=100)``
///
/// ``io_slice_us``: the scheduler slice each IO thread asks Linux (6.12 and later) for,
/// in microseconds (100 to 100,000), or None to leave the system's. A short slice lets
/// an IO thread woken by the network preempt this busy Python thread at once, so PONGs
/// and read-ahead do not wait for a game tick's slice to end.
#[pyclass(frozen, module = "fleetwire._native", name = "Engine")]
pub(crate) struct PyEngine {
    engine: RwLock<Option<Engine>>,
    /// `close()` was called: waits in `recv_batch` end within one slice (100 ms), so
    /// that `close()` from another thread gets the engine.
    closing: AtomicBool,
    /// The read end of the wake-up socket pair, once asked for (`wake_fd`).
    wake: Mutex<Option<UnixStream>>,
}

impl PyEngine {
    fn get(&self) -> PyResult<RwLockReadGuard<'_, Option<Engine>>> {
        let guard = self.engine.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(EngineClosed::new_err("the engine is closed"));
        }
        Ok(guard)
    }
}

fn engine_of<'a>(g: &'a RwLockReadGuard<'_, Option<Engine>>) -> &'a Engine {
    g.as_ref().expect("checked by PyEngine::get")
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (io_threads = 1, *, node_id = 1, send_queue_packets = None,
        send_queue_bytes = None, recv_budget_bytes = None, global_recv_budget_bytes = None,
        ping_interval = Some(1.0), close_timeout = None, io_slice_us = Some(DEFAULT_IO_SLICE_US)))]
    // Field by field: `EngineConfig` is (becoming) #[non_exhaustive].
    #[allow(clippy::too_many_arguments, clippy::field_reassign_with_default)]
    fn new(
        py: Python<'_>,
        io_threads: usize,
        node_id: u16,
        send_queue_packets: Option<usize>,
        send_queue_bytes: Option<usize>,
        recv_budget_bytes: Option<usize>,
        global_recv_budget_bytes: Option<usize>,
        ping_interval: Option<f64>,
        close_timeout: Option<f64>,
        io_slice_us: Option<u64>,
    ) -> PyResult<PyEngine> {
        let mut c = EngineConfig::default();
        c.io_threads = io_threads;
        c.server.node_id = node_id;
        if let Some(v) = send_queue_packets {
            c.send_queue_packets = v;
        }
        if let Some(v) = send_queue_bytes {
            c.send_queue_bytes = v;
        }
        // Smaller than the Rust default (8 MiB): a batch is then a few thousand
        // messages, whose Python objects stay in cache while the loop runs over them
        // (measured: 0.22 us per 64 B message in the Python thread at 256 KiB, 0.34 us
        // at 8 MiB, where one batch is ~60,000 messages).
        c.recv_budget_bytes = recv_budget_bytes.unwrap_or(DEFAULT_RECV_BUDGET);
        if let Some(v) = global_recv_budget_bytes {
            c.global_recv_budget_bytes = v;
        }
        c.ping_interval = ping_interval.map(secs).transpose()?;
        if let Some(v) = close_timeout {
            c.close_timeout = secs(v)?;
        }
        if let Some(us) = io_slice_us {
            if !(100..=100_000).contains(&us) {
                return Err(PyValueError::new_err(
                    "io_slice_us: from 100 to 100000 (what Linux accepts), or None",
                ));
            }
            // A refusal leaves the system's slice: the engine works either way.
            c.on_io_thread_start = Some(IoThreadStart::new(move |_| {
                let _ = crate::sched::ask_slice(us);
            }));
        }
        c.validate().map_err(PyValueError::new_err)?;
        let engine = py
            .detach(|| Engine::new(c))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(PyEngine {
            engine: RwLock::new(Some(engine)),
            closing: AtomicBool::new(false),
            wake: Mutex::new(None),
        })
    }

    /// Listens on (host, port); port 0 picks a free port. `tls`: a `ServerTls`, or
    /// None for plaintext (chosen explicitly: there is no fallback).
    #[pyo3(signature = (host, port, *, tls = None))]
    fn listen(
        &self,
        py: Python<'_>,
        host: &str,
        port: u16,
        tls: Option<&Bound<'_, ServerTls>>,
    ) -> PyResult<PyListener> {
        let addr = resolve(py, host, port)?;
        let opts = match tls {
            Some(t) => TlsOptions::Server(t.get().config.clone()),
            None => TlsOptions::Plaintext,
        };
        let g = self.get()?;
        let l = engine_of(&g)
            .listen(addr, opts)
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(PyListener {
            id: l.id.raw(),
            host: l.local_addr.ip().to_string(),
            port: l.local_addr.port(),
        })
    }

    /// Connects to (host, port) and returns the connection id at once; messages sent
    /// now are written after the handshake. `Connected` or `Closed` reports the outcome.
    #[pyo3(signature = (host, port, *, tls = None))]
    fn connect(
        &self,
        py: Python<'_>,
        host: &str,
        port: u16,
        tls: Option<&Bound<'_, ClientTls>>,
    ) -> PyResult<u64> {
        let addr = resolve(py, host, port)?;
        let opts = client_options(tls);
        let g = self.get()?;
        let id = engine_of(&g)
            .connect(addr, opts)
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(id.raw())
    }

    /// Queues one message and returns at once. `route` is (node, service, channel);
    /// `payload` bytes-like (a received `Payload` is sent without a copy); `flags` a
    /// combination of SNAPPY / ZLIB / SECRET. Raises `QueueFull` (backpressure),
    /// `ConnectionClosed`, `UnknownConnection`, `PayloadTooLarge`.
    #[pyo3(signature = (conn, route, payload, flags = 0))]
    fn send(
        &self,
        py: Python<'_>,
        conn: u64,
        route: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<()> {
        let route = route_from(route)?;
        let payload = to_bytes(payload)?;
        let flags = flags_from(flags)?;
        let g = self.get()?;
        engine_of(&g)
            .send(ConnId::from_raw(conn), route, payload, flags)
            .map_err(|e| errors::send(py, e))
    }

    /// Queues a batch under one lock: `messages` is an iterable of (route, payload) or
    /// (route, payload, flags). Returns how many were queued, from the front: fewer
    /// than given when the send queue filled up (send the rest later).
    fn send_many(&self, py: Python<'_>, conn: u64, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut batch = Vec::new();
        for item in messages.try_iter()? {
            let item = item?;
            let t = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(
                    "send_many takes (route, payload) or (route, payload, flags) tuples",
                )
            })?;
            let flags = match t.len() {
                2 => SendFlags::default(),
                3 => flags_from(t.get_item(2)?.extract()?)?,
                _ => {
                    return Err(PyTypeError::new_err(
                        "a message is (route, payload[, flags])",
                    ))
                }
            };
            batch.push(Outgoing {
                route: route_from(&t.get_item(0)?)?,
                payload: to_bytes(&t.get_item(1)?)?,
                flags,
            });
        }
        let g = self.get()?;
        engine_of(&g)
            .send_many(ConnId::from_raw(conn), &mut batch)
            .map_err(|e| errors::send(py, e))
    }

    /// Every ready event, in a list, taken under one lock. When none is ready, waits up
    /// to `timeout` seconds (None: forever) with the GIL released; returns [] on
    /// timeout. Events: Message, Accepted, Connected, PacketError, SendFailed, Pong,
    /// Undelivered, Closed.
    #[pyo3(signature = (timeout = None))]
    fn recv_batch<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let wait = match timeout {
            Some(t) => secs(t)?,
            None => Duration::from_secs(365 * 24 * 3600),
        };
        let mut events = Vec::new();
        {
            let g = self.get()?;
            let engine = engine_of(&g);
            if engine.recv_batch(&mut events, Duration::ZERO) == 0 && !wait.is_zero() {
                py.detach(|| {
                    // Wait in slices so that Ctrl-C (a signal) is seen within 100 ms.
                    let mut left = wait;
                    while events.is_empty()
                        && !left.is_zero()
                        && !self.closing.load(Ordering::SeqCst)
                    {
                        let slice = left.min(Duration::from_millis(100));
                        engine.recv_batch(&mut events, slice);
                        left = left.saturating_sub(slice);
                        if events.is_empty() && Python::attach(|py| py.check_signals()).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        py.check_signals()?;
        let objects = events
            .into_iter()
            .map(|e| event_to_py(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objects)
    }

    /// Sends a PING now; `Pong(conn, rtt)` reports the round trip. PONGs to the peer's
    /// PINGs are answered on the IO threads, whatever this thread does. False for an
    /// unknown connection.
    fn ping(&self, conn: u64) -> PyResult<bool> {
        let g = self.get()?;
        Ok(engine_of(&g).ping(ConnId::from_raw(conn)))
    }

    /// The connection's counters as a dict, or None once it is closed and reported.
    fn stats<'py>(&self, py: Python<'py>, conn: u64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let g = self.get()?;
        let Some(s) = engine_of(&g).stats(ConnId::from_raw(conn)) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("packets_in", s.packets_in)?;
        d.set_item("packets_out", s.packets_out)?;
        d.set_item("payload_bytes_in", s.payload_bytes_in)?;
        d.set_item("payload_bytes_out", s.payload_bytes_out)?;
        d.set_item("wire_bytes_in", s.wire_bytes_in)?;
        d.set_item("wire_bytes_out", s.wire_bytes_out)?;
        d.set_item("send_queue_packets", s.send_queue_packets)?;
        d.set_item("send_queue_bytes", s.send_queue_bytes)?;
        d.set_item("recv_queue_bytes", s.recv_queue_bytes)?;
        d.set_item("recv_queue_high_water", s.recv_queue_high_water)?;
        d.set_item("handled_natively", s.handled_natively)?;
        d.set_item("pauses", s.pauses)?;
        d.set_item("rtt", s.rtt.map(|r| r.as_secs_f64()))?;
        let errs = PyDict::new(py);
        for (code, n) in s.errors {
            errs.set_item(
                code.name()
                    .map_or_else(|| format!("0x{:04X}", code.0), str::to_owned),
                n,
            )?;
        }
        d.set_item("errors", errs)?;
        Ok(Some(d))
    }

    /// Bytes waiting for this thread now, and the most ever (all connections).
    fn recv_queue_bytes(&self) -> PyResult<(usize, usize)> {
        let g = self.get()?;
        Ok(engine_of(&g).recv_queue_bytes())
    }

    /// Connections not yet reported closed.
    fn connections(&self) -> PyResult<usize> {
        let g = self.get()?;
        Ok(engine_of(&g).connections())
    }

    /// Closes one connection gracefully (queued messages are written, then GOAWAY).
    /// False for an unknown connection.
    fn close_conn(&self, conn: u64) -> PyResult<bool> {
        let g = self.get()?;
        Ok(engine_of(&g).close(ConnId::from_raw(conn)))
    }

    /// A file descriptor that becomes readable when events arrive while none were
    /// waiting (for `asyncio`'s `add_reader`; see `fleetwire.aio`). Clear it with
    /// `clear_wake_fd()`, then call `recv_batch(0)`.
    fn wake_fd(&self) -> PyResult<i32> {
        let mut wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = wake.as_ref() {
            return Ok(r.as_raw_fd());
        }
        let (r, w) = UnixStream::pair().map_err(|e| PyOSError::new_err(e.to_string()))?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let fd = r.as_raw_fd();
        let g = self.get()?;
        engine_of(&g).set_ready_hook(Some(Arc::new(move || {
            // A full socket buffer already means "readable": ignore WouldBlock.
            let _ = (&w).write(&[1]);
        })));
        *wake = Some(r);
        Ok(fd)
    }

    /// Empties the wake-up descriptor (non-blocking).
    fn clear_wake_fd(&self) -> PyResult<()> {
        use std::io::Read;
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut r) = wake.as_ref() {
            let mut buf = [0u8; 256];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        }
        Ok(())
    }

    /// Native route: echo every DATA message of `service` back on its connection, on
    /// the IO threads (it never reaches Python). Returns its `Counter`.
    fn route_echo(&self, service: u8) -> PyResult<Counter> {
        let g = self.get()?;
        Ok(native::echo(engine_of(&g), service))
    }

    /// Native route: discard every DATA message of `service` on the IO threads.
    fn route_drop(&self, service: u8) -> PyResult<Counter> {
        let g = self.get()?;
        Ok(native::drop_route(engine_of(&g), service))
    }

    /// Native route: count (packets, bytes) of `service` on the IO threads, then discard.
    fn route_count(&self, service: u8) -> PyResult<Counter> {
        let g = self.get()?;
        Ok(native::count(engine_of(&g), service))
    }

    /// Native route: forward every DATA message of `service` to connection `to`, route
    /// and payload unchanged, from the IO threads. A message that does not fit `to`'s
    /// send queue (or arrives after `to` closed) is counted in `Counter.failed`.
    fn route_forward(&self, service: u8, to: u64) -> PyResult<Counter> {
        let g = self.get()?;
        native::forward(engine_of(&g), service, ConnId::from_raw(to))
    }

    /// Native route: a handler written in C, Rust or any language with a C ABI (see
    /// python/include/fleetwire_handler.h): `handler` is the address of a
    /// `fw_handler_fn`, `user` an opaque pointer passed to every call. It runs on the
    /// IO threads, concurrently from several if `io_threads` > 1.
    ///
    /// The caller guarantees that both addresses stay valid while the route exists.
    #[pyo3(signature = (service, handler, user = 0))]
    fn route_c(&self, service: u8, handler: usize, user: usize) -> PyResult<Counter> {
        let g = self.get()?;
        native::c_handler(engine_of(&g), service, handler, user)
    }

    /// Removes the native route of `service`: its messages reach Python again.
    fn unroute(&self, service: u8) -> PyResult<()> {
        let g = self.get()?;
        engine_of(&g).unregister_handler(service);
        Ok(())
    }

    /// Closes every connection gracefully, waits up to `timeout` seconds for them to
    /// finish (queued messages written, GOAWAYs exchanged), stops the IO threads.
    /// Returns whether everything finished in time. Idempotent.
    #[pyo3(signature = (timeout = 5.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let t = secs(timeout)?;
        self.closing.store(true, Ordering::SeqCst);
        // Without the GIL: a `recv_batch` waiting in another thread holds the engine
        // until its current slice ends, and needs the GIL to finish.
        let taken = py.detach(|| {
            self.engine
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take()
        });
        let Some(mut engine) = taken else {
            return Ok(true);
        };
        Ok(py.detach(move || engine.shutdown(t)))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py, 5.0)?;
        Ok(false)
    }
}

/// A throw-away PKI for tests and local runs (never for production): a CA, a server
/// certificate for `names` and a client certificate, all PEM text, as a dict with keys
/// `ca_cert`, `cert`, `key`, `client_cert`, `client_key`.
#[pyfunction]
#[pyo3(signature = (names = vec!["localhost".to_owned()]))]
fn test_pki(py: Python<'_>, names: Vec<String>) -> PyResult<Bound<'_, PyDict>> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = fleetwire::tls::generate_test_pki(&names, None)
        .map_err(|e| TlsConfigError::new_err(e.to_string()))?;
    let client = pki
        .issue(&[], None)
        .map_err(|e| TlsConfigError::new_err(e.to_string()))?;
    let d = PyDict::new(py);
    d.set_item("ca_cert", pki.ca_cert_pem)?;
    d.set_item("cert", pki.cert_pem)?;
    d.set_item("key", pki.key_pem)?;
    d.set_item("client_cert", client.cert_pem)?;
    d.set_item("client_key", client.key_pem)?;
    Ok(d)
}

/// (Benchmark helper.) A load generator with no Python in its loop, the counterpart of
/// a C-level `sendall` loop. Plaintext: prebuilt frames written as they are (see
/// `blast.rs`). TLS: connects to (host, port) with its own engine and sends
/// `size`-byte messages to `route` as fast as the send queue takes them, for
/// `seconds`, with the GIL released; with `echo`, takes (and drops) what comes back.
/// Returns how many messages were queued.
#[pyfunction]
#[pyo3(signature = (host, port, size, seconds, *, route = (0, 1, 0), echo = false, tls = None))]
#[allow(clippy::too_many_arguments)]
fn bench_load(
    py: Python<'_>,
    host: &str,
    port: u16,
    size: usize,
    seconds: f64,
    route: (u16, u8, u8),
    echo: bool,
    tls: Option<&Bound<'_, ClientTls>>,
) -> PyResult<u64> {
    let addr = resolve(py, host, port)?;
    let opts = client_options(tls);
    let run = secs(seconds)?;
    if matches!(opts, TlsOptions::Plaintext) {
        let route = Route::new(route.0, route.1, route.2);
        return py
            .detach(move || crate::blast::blast(addr, size, route, run))
            .map_err(|e| PyOSError::new_err(e.to_string()));
    }
    py.detach(move || -> std::io::Result<u64> {
        // The window the plaintext generator grants too: the server's echoes are not
        // paced by this side's credit (the default, 1,024 packets, is the bound of a
        // 64 B echo run otherwise).
        let mut config = EngineConfig::default();
        config.client.limits.initial_credit_packets = 1 << 20;
        config.client.limits.initial_credit_bytes = i32::MAX as u32;
        let engine = Engine::new(config)?;
        let conn = engine.connect(addr, opts)?;
        let sender = engine
            .sender(conn)
            .ok_or_else(|| std::io::Error::other("connection gone"))?;
        let route = Route::new(route.0, route.1, route.2);
        let payload = Bytes::from(vec![b'x'; size]);
        let deadline = std::time::Instant::now() + run;
        let (mut sent, mut events) = (0u64, Vec::new());
        while std::time::Instant::now() < deadline {
            let mut batch = vec![Outgoing::new(route, payload.clone()); 256];
            match sender.send_many(&mut batch) {
                Ok(n) => sent += n as u64,
                Err(_) => break,
            }
            if echo {
                engine.recv_batch(&mut events, Duration::ZERO);
                events.clear();
            }
            if !batch.is_empty() {
                // Echo: the room comes back only as the echoes are taken (the server's
                // credit waits on its answers), so wait briefly and drain again; a
                // 5 ms wait here paced the TLS echo rows at ~13k msg/s.
                let wait = if echo { 100 } else { 5000 };
                sender.wait_room(Duration::from_micros(wait));
            }
        }
        Ok(sent)
    })
    .map_err(|e| PyOSError::new_err(e.to_string()))
}

fn secs(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| PyValueError::new_err(format!("bad duration {s}")))
}

/// Adds the engine's classes and constants to `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<ServerTls>()?;
    m.add_class::<ClientTls>()?;
    m.add_class::<PyListener>()?;
    m.add_class::<PyMessage>()?;
    m.add_class::<Accepted>()?;
    m.add_class::<Connected>()?;
    m.add_class::<PacketError>()?;
    m.add_class::<SendFailed>()?;
    m.add_class::<Pong>()?;
    m.add_class::<GoawayReceived>()?;
    m.add_class::<Undelivered>()?;
    m.add_class::<Closed>()?;
    m.add_class::<Counter>()?;
    m.add_function(wrap_pyfunction!(test_pki, m)?)?;
    m.add_function(wrap_pyfunction!(bench_load, m)?)?;
    m.add("SNAPPY", SNAPPY)?;
    m.add("ZLIB", ZLIB)?;
    m.add("SECRET", SECRET)?;
    Ok(())
}

//! The codec for Python users (`fleetwire.codec`): routing headers, packets, packet
//! streams, control payloads, decompression with the spec's limits, and the inspector.
//! Incomplete input is never an error (spec §12.2): it is an `Incomplete(needed)`.

use bytes::Bytes;
use fleetwire::compress::{DecompressLimits, Decompressor};
use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Pong, Role};
use fleetwire::{
    check_preface, Codec, Deframer, ErrorCode, Header, Kind, PacketRef, Route, Status,
};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors;
use crate::payload::new_payload;

fn kind_by_name(name: &str) -> PyResult<Kind> {
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| PyValueError::new_err(format!("unknown packet kind {name:?}")))
}

fn codec_by_name(name: &str) -> PyResult<Codec> {
    match name {
        "none" => Ok(Codec::None),
        "snappy" => Ok(Codec::Snappy),
        "zlib" => Ok(Codec::Zlib),
        _ => Err(PyValueError::new_err(format!("unknown codec {name:?}"))),
    }
}

/// A routing header (spec §4): `kind` ("DATA", "HELLO", …), `never_compress`, `codec`
/// ("none", "snappy", "zlib"), `hints`, `length`, `node`, `service`, `channel`,
/// `source` (None without the extension), `header_len` (8 or 10).
#[pyclass(frozen, module = "fleetwire._native", name = "Header", eq)]
#[derive(PartialEq, Eq, Clone, Copy)]
pub(crate) struct PyHeader {
    pub(crate) h: Header,
}

#[pymethods]
impl PyHeader {
    #[new]
    #[pyo3(signature = (kind = "DATA", *, node = 0, service = 0, channel = 0, length = 0,
        codec = "none", never_compress = false, hints = 0, source = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &str,
        node: u16,
        service: u8,
        channel: u8,
        length: u16,
        codec: &str,
        never_compress: bool,
        hints: u8,
        source: Option<u16>,
    ) -> PyResult<PyHeader> {
        if hints > 3 {
            return Err(PyValueError::new_err("hints is a 2-bit field"));
        }
        Ok(PyHeader {
            h: Header {
                kind: kind_by_name(kind)?,
                never_compress,
                codec: codec_by_name(codec)?,
                hints,
                length,
                route: Route::new(node, service, channel),
                source,
            },
        })
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.h.kind.name()
    }
    #[getter]
    fn never_compress(&self) -> bool {
        self.h.never_compress
    }
    #[getter]
    fn codec(&self) -> &'static str {
        self.h.codec.name()
    }
    #[getter]
    fn hints(&self) -> u8 {
        self.h.hints
    }
    #[getter]
    fn length(&self) -> u16 {
        self.h.length
    }
    #[getter]
    fn node(&self) -> u16 {
        self.h.route.node
    }
    #[getter]
    fn service(&self) -> u8 {
        self.h.route.service
    }
    #[getter]
    fn channel(&self) -> u8 {
        self.h.route.channel
    }
    #[getter]
    fn route(&self) -> (u16, u8, u8) {
        (
            self.h.route.node,
            self.h.route.service,
            self.h.route.channel,
        )
    }
    #[getter]
    fn source(&self) -> Option<u16> {
        self.h.source
    }
    #[getter]
    fn header_len(&self) -> usize {
        self.h.len()
    }
    /// The 8 or 10 header bytes, exactly as given (length and hints as they are).
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(Header::MAX_LEN);
        self.h.encode_to_vec(&mut out);
        PyBytes::new(py, &out)
    }
    fn __repr__(&self) -> String {
        format!(
            "Header(kind={:?}, node={}, service={}, channel={}, length={}, codec={:?}, never_compress={}, hints={}, source={:?})",
            self.h.kind.name(),
            self.h.route.node,
            self.h.route.service,
            self.h.route.channel,
            self.h.length,
            self.h.codec.name(),
            self.h.never_compress,
            self.h.hints,
            self.h.source
        )
    }
}

/// Not enough bytes yet: `needed` more at least (never an error, spec §12.2).
#[pyclass(frozen, get_all, module = "fleetwire._native", name = "Incomplete", eq)]
#[derive(PartialEq, Eq)]
pub(crate) struct Incomplete {
    needed: usize,
}

#[pymethods]
impl Incomplete {
    #[new]
    fn new(needed: usize) -> Incomplete {
        Incomplete { needed }
    }
    fn __repr__(&self) -> String {
        format!("Incomplete(needed={})", self.needed)
    }
}

/// One packet: `header` and `payload` (a zero-copy `Payload`).
#[pyclass(frozen, module = "fleetwire._native", name = "Packet")]
pub(crate) struct PyPacket {
    header: Header,
    payload: Bytes,
}

#[pymethods]
impl PyPacket {
    #[getter]
    fn header(&self) -> PyHeader {
        PyHeader { h: self.header }
    }
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        new_payload(py, self.payload.clone())
    }
    /// The control payload decoded (as `decode_control`), or None for DATA.
    fn control<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        if self.header.kind == Kind::Data {
            return Ok(None);
        }
        decode_control_inner(py, self.header.kind, &self.payload).map(Some)
    }
    /// Header and payload as on the wire.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.header.len() + self.payload.len());
        self.header.encode_to_vec(&mut out);
        out.extend_from_slice(&self.payload);
        PyBytes::new(py, &out)
    }
    fn __repr__(&self) -> String {
        format!(
            "Packet({} {:?}, {} bytes)",
            self.header.kind.name(),
            (
                self.header.route.node,
                self.header.route.service,
                self.header.route.channel
            ),
            self.payload.len()
        )
    }
}

/// Parses and validates one routing header from the front of `data` (spec §4, in the
/// order of §4.9). Returns a `Header` or `Incomplete`; raises `ProtocolError`.
#[pyfunction]
#[pyo3(signature = (data, max_payload = 65535))]
fn parse_header<'py>(
    py: Python<'py>,
    data: &[u8],
    max_payload: u16,
) -> PyResult<Bound<'py, PyAny>> {
    match Header::parse(data, max_payload) {
        Ok(Status::Complete(h)) => Ok(Bound::new(py, PyHeader { h })?.into_any()),
        Ok(Status::Incomplete { needed }) => Ok(Bound::new(py, Incomplete { needed })?.into_any()),
        Err(e) => Err(errors::protocol(py, e, Some(0))),
    }
}

/// Parses one packet from the front of `data`: `(Packet, consumed)` or `Incomplete`;
/// raises `ProtocolError`. Control payloads are not decoded (see `Packet.control`).
#[pyfunction]
#[pyo3(signature = (data, max_payload = 65535))]
fn parse_packet<'py>(
    py: Python<'py>,
    data: &[u8],
    max_payload: u16,
) -> PyResult<Bound<'py, PyAny>> {
    match PacketRef::parse(data, max_payload) {
        Ok(Status::Complete((p, rest))) => {
            let consumed = data.len() - rest.len();
            let pkt = PyPacket {
                header: p.header,
                payload: Bytes::copy_from_slice(p.payload),
            };
            Ok((Bound::new(py, pkt)?, consumed)
                .into_pyobject(py)?
                .into_any())
        }
        Ok(Status::Incomplete { needed }) => Ok(Bound::new(py, Incomplete { needed })?.into_any()),
        Err(e) => Err(errors::protocol(py, e, Some(0))),
    }
}

/// Encodes a packet: `header` (its `length` as given: pass `length=len(payload)`, or
/// use `encode_data`) then `payload`.
#[pyfunction]
fn encode_packet<'py>(py: Python<'py>, header: &PyHeader, payload: &[u8]) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(Header::MAX_LEN + payload.len());
    header.h.encode_to_vec(&mut out);
    out.extend_from_slice(payload);
    PyBytes::new(py, &out)
}

/// Encodes an uncompressed DATA packet to `route` = (node, service, channel), with the
/// right length; `source` adds the 2-byte source extension (spec §7.4).
#[pyfunction]
#[pyo3(signature = (route, payload, *, never_compress = false, source = None))]
fn encode_data<'py>(
    py: Python<'py>,
    route: (u16, u8, u8),
    payload: &[u8],
    never_compress: bool,
    source: Option<u16>,
) -> PyResult<Bound<'py, PyBytes>> {
    let length = u16::try_from(payload.len()).map_err(|_| {
        errors::with_code::<errors::PayloadTooLarge>(
            py,
            "payload longer than 65535 bytes".into(),
            Some(ErrorCode::PAYLOAD_TOO_LARGE),
            None,
        )
    })?;
    let mut h = Header::data(Route::new(route.0, route.1, route.2), length);
    h.never_compress = never_compress;
    h.source = source;
    let mut out = Vec::with_capacity(h.packet_len());
    h.encode_to_vec(&mut out);
    out.extend_from_slice(payload);
    Ok(PyBytes::new(py, &out))
}

/// A byte stream, fed as it is read: `feed(data)` returns the packets completed so
/// far. With `preface=True` the stream starts with the 8-byte preface (spec §3).
/// Control payloads are validated (spec §5) unless `check_control=False`. An invalid
/// stream raises `ProtocolError` with `offset` (the stream offset of the packet in
/// error, preface included; 0 for the preface) and `packets` (those completed in that
/// call before it); every later call raises the same error.
#[pyclass(module = "fleetwire._native", name = "Deframer")]
pub(crate) struct PyDeframer {
    d: Deframer,
    preface: Option<Vec<u8>>,
    pre_len: u64,
    check_control: bool,
    failed: Option<(fleetwire::Error, u64)>,
}

#[pymethods]
impl PyDeframer {
    #[new]
    #[pyo3(signature = (max_payload = 65535, *, preface = false, check_control = true))]
    fn new(max_payload: u16, preface: bool, check_control: bool) -> PyDeframer {
        PyDeframer {
            d: Deframer::new(max_payload),
            preface: preface.then(Vec::new),
            pre_len: if preface { 8 } else { 0 },
            check_control,
            failed: None,
        }
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        if let Some((e, off)) = self.failed {
            return Err(self.fail(py, e, off, &list));
        }
        let mut data = data;
        if let Some(pre) = &mut self.preface {
            if pre.len() < 8 {
                let take = data.len().min(8 - pre.len());
                pre.extend_from_slice(&data[..take]);
                data = &data[take..];
                match check_preface(pre) {
                    Ok(_) => {}
                    Err(e) => return Err(self.fail(py, e, 0, &list)),
                }
                if pre.len() < 8 {
                    return Ok(list);
                }
            }
        }
        self.d.extend(data);
        loop {
            match self.d.next_packet() {
                Ok(Some(p)) => {
                    if self.check_control && p.header.kind.is_control() {
                        if let Err(e) = Control::parse(p.header.kind, &p.payload) {
                            let at = self.pre_len + self.d.offset() - p.header.packet_len() as u64;
                            return Err(self.fail(py, e, at, &list));
                        }
                    }
                    list.append(Bound::new(
                        py,
                        PyPacket {
                            header: p.header,
                            payload: p.payload,
                        },
                    )?)?;
                }
                Ok(None) => return Ok(list),
                Err(e) => {
                    let at = self.pre_len + self.d.offset();
                    return Err(self.fail(py, e, at, &list));
                }
            }
        }
    }

    /// Stream offset of the first byte not yet returned in a packet (preface included).
    #[getter]
    fn offset(&self) -> u64 {
        let pre = self.preface.as_ref().map_or(0, |p| p.len() as u64);
        pre + self.d.offset()
    }

    /// Whether the stream so far ends on a packet boundary (after the whole preface,
    /// when one is expected): false while a packet or the preface is unfinished.
    #[getter]
    fn complete(&self) -> bool {
        self.failed.is_none()
            && self.preface.as_ref().is_none_or(|p| p.len() == 8)
            && self.d.buffered() == 0
    }

    /// Bytes buffered towards the next packet.
    #[getter]
    fn buffered(&self) -> usize {
        self.d.buffered()
            + self
                .preface
                .as_ref()
                .map_or(0, |p| if p.len() < 8 { p.len() } else { 0 })
    }
}

impl PyDeframer {
    fn fail(
        &mut self,
        py: Python<'_>,
        e: fleetwire::Error,
        at: u64,
        packets: &Bound<'_, PyList>,
    ) -> PyErr {
        self.failed = Some((e, at));
        let err = errors::protocol(py, e, Some(at));
        let _ = err.value(py).setattr("packets", packets);
        err
    }
}

fn decode_control_inner<'py>(
    py: Python<'py>,
    kind: Kind,
    payload: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let c = Control::parse(kind, payload).map_err(|e| errors::protocol(py, e, None))?;
    let d = PyDict::new(py);
    match c {
        Control::Hello(h) => {
            d.set_item("min_version", h.min_version)?;
            d.set_item("max_version", h.max_version)?;
            d.set_item("role", h.role.name())?;
            d.set_item("hello_flags", h.hello_flags)?;
            d.set_item("node_id", h.node_id)?;
            d.set_item("peer_id", h.peer_id)?;
            d.set_item("codecs", h.codecs)?;
            d.set_item("max_ratio", h.max_ratio)?;
            d.set_item("max_payload", h.max_payload)?;
            d.set_item("max_decompressed", h.max_decompressed)?;
            d.set_item("initial_credit_packets", h.initial_credit_packets)?;
            d.set_item("initial_credit_bytes", h.initial_credit_bytes)?;
            d.set_item("idle_timeout_ms", h.idle_timeout_ms)?;
            d.set_item("extensions", PyBytes::new(py, h.extensions))?;
        }
        Control::Ping(p) => {
            d.set_item("id", p.id)?;
            d.set_item("timestamp", p.timestamp)?;
        }
        Control::Pong(p) => {
            d.set_item("id", p.id)?;
            d.set_item("timestamp", p.timestamp)?;
            d.set_item("hold_us", p.hold_us)?;
        }
        Control::Goaway(g) => {
            d.set_item("code", g.code.0)?;
            d.set_item("code_name", g.code.name())?;
            d.set_item("delivered", g.delivered)?;
            d.set_item("reason", g.reason)?;
        }
        Control::Credit(c) => {
            d.set_item("packets", c.packets)?;
            d.set_item("bytes", c.bytes)?;
        }
        Control::Error(e) => {
            d.set_item("code", e.code.0)?;
            d.set_item("code_name", e.code.name())?;
            d.set_item("header", PyBytes::new(py, e.header))?;
            d.set_item("reason", e.reason)?;
        }
    }
    Ok(d)
}

/// Decodes and validates a control payload (spec §5) of `kind` ("HELLO", "PING",
/// "PONG", "GOAWAY", "CREDIT", "ERROR") into a dict; raises `ProtocolError`.
#[pyfunction]
fn decode_control<'py>(
    py: Python<'py>,
    kind: &str,
    payload: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let kind = kind_by_name(kind)?;
    if kind == Kind::Data {
        return Err(PyValueError::new_err("DATA has no control payload"));
    }
    decode_control_inner(py, kind, payload)
}

fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    d.get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(key.to_owned()))?
        .extract()
        .map_err(|_| PyValueError::new_err(format!("field {key}: wrong type or out of range")))
}

/// Encodes a control payload (the payload alone) from the dict form `decode_control`
/// returns.
#[pyfunction]
fn encode_control<'py>(
    py: Python<'py>,
    kind: &str,
    fields: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    match kind_by_name(kind)? {
        Kind::Hello => {
            let ext: Vec<u8> = get(fields, "extensions").unwrap_or_default();
            let role: String = get(fields, "role")?;
            let role = [Role::Client, Role::Node, Role::Proxy]
                .into_iter()
                .find(|r| r.name() == role)
                .ok_or_else(|| PyValueError::new_err(format!("unknown role {role}")))?;
            Hello {
                min_version: get(fields, "min_version")?,
                max_version: get(fields, "max_version")?,
                role,
                hello_flags: get(fields, "hello_flags")?,
                node_id: get(fields, "node_id")?,
                peer_id: get(fields, "peer_id")?,
                codecs: get(fields, "codecs")?,
                max_ratio: get(fields, "max_ratio")?,
                max_payload: get(fields, "max_payload")?,
                max_decompressed: get(fields, "max_decompressed")?,
                initial_credit_packets: get(fields, "initial_credit_packets")?,
                initial_credit_bytes: get(fields, "initial_credit_bytes")?,
                idle_timeout_ms: get(fields, "idle_timeout_ms")?,
                extensions: &ext,
            }
            .encode(&mut out);
        }
        Kind::Ping => Ping {
            id: get(fields, "id")?,
            timestamp: get(fields, "timestamp")?,
        }
        .encode(&mut out),
        Kind::Pong => Pong {
            id: get(fields, "id")?,
            timestamp: get(fields, "timestamp")?,
            hold_us: get(fields, "hold_us")?,
        }
        .encode(&mut out),
        Kind::Goaway => {
            let reason: String = get(fields, "reason")?;
            Goaway {
                code: ErrorCode(get(fields, "code")?),
                delivered: get(fields, "delivered")?,
                reason: &reason,
            }
            .encode(&mut out)
        }
        Kind::Credit => Credit {
            packets: get(fields, "packets")?,
            bytes: get(fields, "bytes")?,
        }
        .encode(&mut out),
        Kind::Error => {
            let header: Vec<u8> = get(fields, "header")?;
            let reason: String = get(fields, "reason")?;
            ErrorReport {
                code: ErrorCode(get(fields, "code")?),
                header: &header,
                reason: &reason,
            }
            .encode(&mut out)
        }
        _ => return Err(PyValueError::new_err("DATA has no control payload")),
    }
    Ok(PyBytes::new(py, &out))
}

/// Decompresses a payload as a receiver that announced `codecs` (bit 0 snappy, bit 1
/// zlib) and the limits `max_decompressed`, `max_ratio` (spec §9.3). Raises
/// `ProtocolError` with the packet error code (DECOMPRESSION_FAILED, RATIO_EXCEEDED, …).
#[pyfunction]
#[pyo3(signature = (codec, data, *, max_decompressed = 262_144, max_ratio = 100, codecs = 3))]
fn decompress<'py>(
    py: Python<'py>,
    codec: &str,
    data: &[u8],
    max_decompressed: u32,
    max_ratio: u8,
    codecs: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let codec = codec_by_name(codec)?;
    let limits = DecompressLimits {
        max_decompressed,
        max_ratio,
        codecs,
    };
    let mut out = Vec::new();
    Decompressor::new()
        .decompress(codec, data, &limits, &mut out)
        .map_err(|e| errors::protocol(py, e, None))?;
    Ok(PyBytes::new(py, &out))
}

/// Renders a byte stream of packets for people (`fleetwire inspect`): returns
/// `(text, end)` where `end` is a dict: `{"status": "complete"}`,
/// `{"status": "incomplete", "offset", "needed"}` or `{"status": "invalid", "offset",
/// "code", "code_name"}`.
#[pyfunction]
#[pyo3(signature = (data, *, json = false, hex = false, max_payload = 65535))]
fn inspect<'py>(
    py: Python<'py>,
    data: &[u8],
    json: bool,
    hex: bool,
    max_payload: u16,
) -> PyResult<(String, Bound<'py, PyDict>)> {
    use fleetwire::inspect::{inspect, End, Options};
    let opts = Options {
        json,
        hex,
        max_payload,
    };
    let (text, end) = inspect(data, &opts);
    let d = PyDict::new(py);
    match end {
        End::Complete => d.set_item("status", "complete")?,
        End::Incomplete { offset, needed } => {
            d.set_item("status", "incomplete")?;
            d.set_item("offset", offset)?;
            d.set_item("needed", needed)?;
        }
        End::Invalid { offset, error } => {
            d.set_item("status", "invalid")?;
            d.set_item("offset", offset)?;
            d.set_item("code", error.code().0)?;
            d.set_item("code_name", error.code().name())?;
        }
    }
    Ok((text, d))
}

/// The spec's error code registry (§12): name → code.
#[pyfunction]
fn error_codes(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for c in ErrorCode::ALL {
        d.set_item(c.name().unwrap_or("?"), c.0)?;
    }
    Ok(d)
}

/// Adds the codec to `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHeader>()?;
    m.add_class::<Incomplete>()?;
    m.add_class::<PyPacket>()?;
    m.add_class::<PyDeframer>()?;
    m.add_function(wrap_pyfunction!(parse_header, m)?)?;
    m.add_function(wrap_pyfunction!(parse_packet, m)?)?;
    m.add_function(wrap_pyfunction!(encode_packet, m)?)?;
    m.add_function(wrap_pyfunction!(encode_data, m)?)?;
    m.add_function(wrap_pyfunction!(decode_control, m)?)?;
    m.add_function(wrap_pyfunction!(encode_control, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add("PREFACE", PyBytes::new(m.py(), &fleetwire::PREFACE))?;
    Ok(())
}

//! The package's exceptions. Each carries `code` (the spec's error code, §12, or
//! `None` for a local condition with no registry code) and `code_name`.

use fleetwire::transport::EnqueueError;
use fleetwire::{Error, ErrorCode};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    fleetwire,
    FleetwireError,
    PyException,
    "Base of every fleetwire exception; `code` is the spec's error code (or None)."
);
create_exception!(
    fleetwire,
    ProtocolError,
    FleetwireError,
    "Bytes that are not valid Fleetwire (spec §12): `code`, `code_name`, `offset`."
);
create_exception!(
    fleetwire,
    SendRefused,
    FleetwireError,
    "A message was not queued: it was not accepted and will not be reported later."
);
create_exception!(
    fleetwire,
    QueueFull,
    SendRefused,
    "The connection's bounded send queue is full (backpressure): retry later."
);
create_exception!(
    fleetwire,
    ConnectionClosed,
    SendRefused,
    "The connection is closing or closed."
);
create_exception!(
    fleetwire,
    UnknownConnection,
    SendRefused,
    "No such connection (never existed, or closed and reported)."
);
create_exception!(
    fleetwire,
    PayloadTooLarge,
    SendRefused,
    "Longer than any packet can carry (code PAYLOAD_TOO_LARGE)."
);
create_exception!(
    fleetwire,
    TlsConfigError,
    FleetwireError,
    "A certificate, key or trust anchor could not be loaded."
);
create_exception!(
    fleetwire,
    EngineClosed,
    FleetwireError,
    "The engine was closed."
);

/// Adds the exception types to `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FleetwireError", py.get_type::<FleetwireError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("SendRefused", py.get_type::<SendRefused>())?;
    m.add("QueueFull", py.get_type::<QueueFull>())?;
    m.add("ConnectionClosed", py.get_type::<ConnectionClosed>())?;
    m.add("UnknownConnection", py.get_type::<UnknownConnection>())?;
    m.add("PayloadTooLarge", py.get_type::<PayloadTooLarge>())?;
    m.add("TlsConfigError", py.get_type::<TlsConfigError>())?;
    m.add("EngineClosed", py.get_type::<EngineClosed>())?;
    Ok(())
}

/// An exception instance of `E` with `code`/`code_name` set (and `offset` when given).
pub(crate) fn with_code<E: pyo3::PyTypeInfo>(
    py: Python<'_>,
    message: String,
    code: Option<ErrorCode>,
    offset: Option<u64>,
) -> PyErr {
    let err = PyErr::from_type(py.get_type::<E>(), message);
    let value = err.value(py);
    let _ = value.setattr("code", code.map(|c| c.0));
    let _ = value.setattr("code_name", code.and_then(|c| c.name()));
    let _ = value.setattr("offset", offset);
    err
}

/// A protocol error from the codec.
pub(crate) fn protocol(py: Python<'_>, e: Error, offset: Option<u64>) -> PyErr {
    let code = e.code();
    with_code::<ProtocolError>(py, format!("{}: {}", code, e.detail()), Some(code), offset)
}

/// A refused send.
pub(crate) fn send(py: Python<'_>, e: EnqueueError) -> PyErr {
    let msg = e.to_string();
    match e {
        EnqueueError::QueueFull => with_code::<QueueFull>(py, msg, None, None),
        EnqueueError::Closed => with_code::<ConnectionClosed>(py, msg, None, None),
        EnqueueError::UnknownConnection => with_code::<UnknownConnection>(py, msg, None, None),
        EnqueueError::TooLarge => {
            with_code::<PayloadTooLarge>(py, msg, Some(ErrorCode::PAYLOAD_TOO_LARGE), None)
        }
        _ => with_code::<SendRefused>(py, msg, None, None),
    }
}

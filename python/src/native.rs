//! Native routes: handlers that run on the engine's IO threads for one service, so
//! that its packets never enter Python (the BlueNet path).
//!
//! Built in: echo, drop, count, forward. Plug-in: a function with the C ABI of
//! `python/include/fleetwire_handler.h`, written in C, Rust (`extern "C"`), Zig, …,
//! loaded by the application (for example with `ctypes.CDLL`) and registered by
//! address with `Engine.route_c`. The C ABI is the plug-in boundary because two Rust
//! shared objects do not share a stable ABI: a handler compiled apart from this module
//! cannot take its Rust types, but it can take a C struct.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fleetwire::transport::{ConnId, ConnMessage, Engine, Outgoing, Reply};
use fleetwire::Route;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::UnknownConnection;

/// Live counters of a native route: `packets` and `bytes` it handled, `failed` (a
/// forward that did not fit the target's queue, or whose target closed).
#[pyclass(frozen, module = "fleetwire._native", name = "Counter")]
pub(crate) struct Counter {
    cell: Arc<Cells>,
}

#[derive(Default)]
struct Cells {
    packets: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

impl Cells {
    fn count(&self, m: &ConnMessage) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(m.payload.len() as u64, Ordering::Relaxed);
    }
}

#[pymethods]
impl Counter {
    /// Messages handled.
    #[getter]
    fn packets(&self) -> u64 {
        self.cell.packets.load(Ordering::Relaxed)
    }
    /// Payload bytes handled.
    #[getter]
    fn bytes(&self) -> u64 {
        self.cell.bytes.load(Ordering::Relaxed)
    }
    /// Messages that could not be forwarded.
    #[getter]
    fn failed(&self) -> u64 {
        self.cell.failed.load(Ordering::Relaxed)
    }
    fn __repr__(&self) -> String {
        format!(
            "Counter(packets={}, bytes={}, failed={})",
            self.packets(),
            self.bytes(),
            self.failed()
        )
    }
}

fn counter() -> (Counter, Arc<Cells>) {
    let cell = Arc::new(Cells::default());
    (Counter { cell: cell.clone() }, cell)
}

pub(crate) fn echo(engine: &Engine, service: u8) -> Counter {
    let (c, cell) = counter();
    engine.register_handler(
        service,
        Box::new(move |m, reply| {
            cell.count(m);
            reply.send(m.route, m.payload.clone(), Default::default());
        }),
    );
    c
}

pub(crate) fn drop_route(engine: &Engine, service: u8) -> Counter {
    let (c, cell) = counter();
    engine.register_handler(service, Box::new(move |m, _| cell.count(m)));
    c
}

pub(crate) fn count(engine: &Engine, service: u8) -> Counter {
    drop_route(engine, service)
}

pub(crate) fn forward(engine: &Engine, service: u8, to: ConnId) -> PyResult<Counter> {
    let sender = engine
        .sender(to)
        .ok_or_else(|| UnknownConnection::new_err(format!("no connection {}", to.raw())))?;
    let (c, cell) = counter();
    engine.register_handler(
        service,
        Box::new(move |m, _| {
            cell.count(m);
            let out = Outgoing::new(m.route, m.payload.clone());
            if sender.send(out).is_err() {
                cell.failed.fetch_add(1, Ordering::Relaxed);
            }
        }),
    );
    Ok(c)
}

/// `fw_message` of fleetwire_handler.h.
#[repr(C)]
struct FwMessage {
    conn: u64,
    source: u16,
    node: u16,
    service: u8,
    channel: u8,
    never_compress: u8,
    reserved: u8,
    payload: *const u8,
    len: usize,
}

/// `fw_reply_fn`: queues a message back on the connection the handled one came from.
type ReplyFn = unsafe extern "C" fn(*mut c_void, u16, u8, u8, *const u8, usize);
/// `fw_handler_fn`.
type HandlerFn = unsafe extern "C" fn(*mut c_void, *const FwMessage, *mut c_void, ReplyFn);

unsafe extern "C" fn reply_cb(
    reply: *mut c_void,
    node: u16,
    service: u8,
    channel: u8,
    payload: *const u8,
    len: usize,
) {
    // SAFETY: `reply` is the `&mut Reply` passed to the handler for the duration of the
    // call (the header says the callback is valid only then); `payload` points to `len`
    // readable bytes (or is null with len 0), copied here.
    unsafe {
        let reply = &mut *(reply as *mut Reply);
        let data = if len == 0 || payload.is_null() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(std::slice::from_raw_parts(payload, len))
        };
        reply.send(Route::new(node, service, channel), data, Default::default());
    }
}

pub(crate) fn c_handler(
    engine: &Engine,
    service: u8,
    handler: usize,
    user: usize,
) -> PyResult<Counter> {
    if handler == 0 {
        return Err(PyValueError::new_err("handler address is NULL"));
    }
    // SAFETY: the caller of `Engine.route_c` guarantees that `handler` is the address of
    // a function with the `fw_handler_fn` signature that stays loaded while the route
    // exists (documented on `route_c` and in the header).
    let f: HandlerFn = unsafe { std::mem::transmute::<usize, HandlerFn>(handler) };
    let (c, cell) = counter();
    engine.register_handler(
        service,
        Box::new(move |m, reply| {
            cell.count(m);
            let msg = FwMessage {
                conn: m.conn.raw(),
                source: m.source,
                node: m.route.node,
                service: m.route.service,
                channel: m.route.channel,
                never_compress: u8::from(m.never_compress),
                reserved: 0,
                payload: m.payload.as_ptr(),
                len: m.payload.len(),
            };
            // SAFETY: `msg` and its payload outlive the call; `reply` is valid for it.
            unsafe {
                f(
                    user as *mut c_void,
                    &msg,
                    reply as *mut Reply as *mut c_void,
                    reply_cb,
                )
            };
        }),
    );
    Ok(c)
}

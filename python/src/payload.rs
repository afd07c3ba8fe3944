//! `fleetwire.Payload`: received bytes exposed to Python through the buffer protocol,
//! without a copy.
//!
//! A `Payload` owns a [`Bytes`] (a reference-counted slice of the IO thread's receive
//! buffer or of the decompressed output) and exports it read-only: `memoryview(p)`,
//! `bytes(p)`, `len(p)`, `struct.unpack_from(fmt, p)`, `numpy.frombuffer(p)`, `p[i]` via
//! the memoryview. Sending a `Payload` back (an echo, a forward) clones the `Bytes`: no
//! copy either.
//!
//! The type is made with `PyType_FromSpec` and a `Py_bf_getbuffer` slot by hand: PyO3
//! offers `__getbuffer__` under the stable ABI only for Python >= 3.11, while CPython
//! honours buffer slots in type specs since 3.9 (bpo-40724) and `Py_buffer`'s layout
//! has not changed since 3.0. So one abi3 wheel serves 3.9 and later.

use std::ffi::{c_char, c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::OnceLock;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;

/// `Py_buffer` (Include/pybuffer.h; identical in every CPython 3).
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// Slot numbers of Include/typeslots.h (stable since 3.5).
const PY_BF_GETBUFFER: c_int = 1;
const PY_MP_LENGTH: c_int = 4;
const PY_TP_DEALLOC: c_int = 52;
const PY_TP_DOC: c_int = 56;
const PY_TP_FREE: c_int = 74;
const PY_TP_REPR: c_int = 66;

const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_FORMAT: c_int = 0x0004;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;

/// The instance layout: the object header, then the owned bytes.
#[repr(C)]
struct PayloadObject {
    ob_base: ffi::PyObject,
    bytes: MaybeUninit<Bytes>,
}

/// The type object, created once at module import.
static TYPE: OnceLock<Py<PyAny>> = OnceLock::new();

const DOC: &std::ffi::CStr = c"Received bytes, zero-copy: use memoryview(p), bytes(p) or len(p).";

unsafe extern "C" fn getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls this slot with `obj` an instance of the Payload type
    // (initialised by `new_payload`) and `view` null or a writable Py_buffer.
    unsafe {
        if view.is_null() {
            ffi::PyErr_SetString(ffi::PyExc_BufferError, c"NULL view".as_ptr());
            return -1;
        }
        if flags & PYBUF_WRITABLE != 0 {
            ffi::PyErr_SetString(ffi::PyExc_BufferError, c"Payload is read-only".as_ptr());
            (*view).obj = ptr::null_mut();
            return -1;
        }
        let bytes = (*(obj as *mut PayloadObject)).bytes.assume_init_ref();
        let v = &mut *view;
        v.buf = bytes.as_ptr() as *mut c_void;
        ffi::Py_INCREF(obj);
        v.obj = obj;
        v.len = bytes.len() as ffi::Py_ssize_t;
        v.itemsize = 1;
        v.readonly = 1;
        v.ndim = 1;
        v.format = if flags & PYBUF_FORMAT != 0 {
            c"B".as_ptr() as *mut c_char
        } else {
            ptr::null_mut()
        };
        v.shape = if flags & PYBUF_ND == PYBUF_ND {
            &mut v.len
        } else {
            ptr::null_mut()
        };
        v.strides = if flags & PYBUF_STRIDES == PYBUF_STRIDES {
            &mut v.itemsize
        } else {
            ptr::null_mut()
        };
        v.suboffsets = ptr::null_mut();
        v.internal = ptr::null_mut();
        0
    }
}

unsafe extern "C" fn length(obj: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    // SAFETY: `obj` is an initialised Payload instance.
    unsafe { (*(obj as *mut PayloadObject)).bytes.assume_init_ref().len() as ffi::Py_ssize_t }
}

unsafe extern "C" fn repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is an initialised Payload instance; the string is built with the
    // GIL held (CPython calls tp_repr with it).
    unsafe {
        let len = (*(obj as *mut PayloadObject)).bytes.assume_init_ref().len();
        let text = format!("<fleetwire.Payload {len} bytes>");
        ffi::PyUnicode_FromStringAndSize(
            text.as_ptr() as *const c_char,
            text.len() as ffi::Py_ssize_t,
        )
    }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once when the last reference goes; the bytes were initialised by
    // `new_payload`. Heap-type instances own a reference to their type (since 3.8),
    // released after the memory is freed.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        (*(obj as *mut PayloadObject)).bytes.assume_init_drop();
        let free = ffi::PyType_GetSlot(tp, PY_TP_FREE);
        if free.is_null() {
            ffi::PyObject_Free(obj as *mut c_void);
        } else {
            let free: ffi::freefunc = std::mem::transmute(free);
            free(obj as *mut c_void);
        }
        ffi::Py_DECREF(tp as *mut ffi::PyObject);
    }
}

/// Creates the `Payload` type and adds it to `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let ty = TYPE.get_or_init(|| {
        let mut slots = [
            ffi::PyType_Slot {
                slot: PY_BF_GETBUFFER,
                pfunc: getbuffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: PY_MP_LENGTH,
                pfunc: length as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: PY_TP_DEALLOC,
                pfunc: dealloc as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: PY_TP_REPR,
                pfunc: repr as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: PY_TP_DOC,
                pfunc: DOC.as_ptr() as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: 0,
                pfunc: ptr::null_mut(),
            },
        ];
        let mut spec = ffi::PyType_Spec {
            name: c"fleetwire._native.Payload".as_ptr(),
            basicsize: std::mem::size_of::<PayloadObject>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: the spec and slots are valid for the call (CPython copies them); a
        // null result has an exception set, which `from_owned_ptr_or_err` takes.
        unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec))
                .expect("creating the Payload type")
                .unbind()
        }
    });
    m.add("Payload", ty.bind(py))
}

/// A new `Payload` owning `bytes`.
pub(crate) fn new_payload(py: Python<'_>, bytes: Bytes) -> PyResult<Bound<'_, PyAny>> {
    let ty = TYPE.get().expect("module initialised").bind(py);
    // SAFETY: PyType_GenericAlloc returns a zeroed instance of the right size (or null
    // with an exception set); we initialise the bytes before anyone can see it.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(ty.as_ptr() as *mut ffi::PyTypeObject, 0);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        ptr::write(
            &mut (*(obj as *mut PayloadObject)).bytes,
            MaybeUninit::new(bytes),
        );
        Ok(Bound::from_owned_ptr(py, obj))
    }
}

/// The `Bytes` of a `Payload`, cloned (a reference count): `None` for anything else.
pub(crate) fn payload_bytes(obj: &Bound<'_, PyAny>) -> Option<Bytes> {
    let ty = TYPE.get()?;
    // SAFETY: only instances of our type (checked by pointer) are read as PayloadObject.
    unsafe {
        if ffi::Py_TYPE(obj.as_ptr()) as *mut ffi::PyObject != ty.as_ptr() {
            return None;
        }
        Some(
            (*(obj.as_ptr() as *mut PayloadObject))
                .bytes
                .assume_init_ref()
                .clone(),
        )
    }
}

/// Payloads above this size are sent without a copy (the `bytes` object is kept alive
/// until the IO thread wrote it); smaller ones are copied, which is cheaper than the
/// deferred reference count.
const ZERO_COPY_SEND: usize = 4096;

/// Bytes to send from `obj`: a `Payload` (no copy), `bytes` (no copy when large), a
/// `bytearray` or any other object `bytes()` accepts (one copy).
pub(crate) fn to_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    use pyo3::types::{PyByteArray, PyBytes};
    if let Some(b) = payload_bytes(obj) {
        return Ok(b);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        let data = b.as_bytes();
        if data.len() <= ZERO_COPY_SEND {
            return Ok(Bytes::copy_from_slice(data));
        }
        let owned: pyo3::pybacked::PyBackedBytes = b.clone().into();
        return Ok(Bytes::from_owner(owned));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err("payload must be bytes-like, not str"));
    }
    let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
    let b = b.cast::<PyBytes>()?;
    Ok(Bytes::copy_from_slice(b.as_bytes()))
}

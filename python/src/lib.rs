//! The native half of the Python package `fleetwire` (`fleetwire._native`): the
//! transport engine (`engine`), native routes (`native`), the codec (`codec`),
//! zero-copy payloads (`payload`) and the exceptions (`errors`).
//!
//! Python users import `fleetwire`; this crate is built by maturin (`pip install
//! ./python`) as one abi3 extension for CPython >= 3.9.

mod blast;
mod codec;
mod engine;
mod errors;
mod native;
mod payload;
mod sched;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    payload::register(m)?;
    engine::register(m)?;
    codec::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

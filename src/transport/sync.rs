//! Locking as every thread of the engine does it.

use std::sync::{Mutex, MutexGuard};

/// Locks, ignoring poisoning: the protected data stays consistent (every critical
/// section is a few pushes and counter updates that cannot panic halfway).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! [`lock`]: the one way slates takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, using it even if a panic poisoned it. Every mutex in slates guards short
/// critical sections that leave their value whole (a single map operation on a fully built
/// value, a swap of a value), never held across an `.await`: a panic elsewhere cannot leave
/// it half-written, and refusing it would turn one panic into failures of every later
/// request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

//! [`Faults`]: fault injection for tests, as an [`Intercept`] any store can be wrapped with.

use std::future::ready;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::{Call, Intercept, StoreFuture};
use crate::error::Error;

/// Simulates an unreachable store: wrap a store with it
/// (`Intercepted::new(store, faults.clone())`) and switch the outage on and off, or fail the
/// next few calls. A refused call never reaches the store, so nothing changes. It also
/// counts the calls it sees, so a test can prove that a request cost no store call.
///
/// Clones share their state: keep one to steer the store after handing it to the engine.
///
/// ```
/// use slates::store::{Faults, Intercepted};
/// use slates::{Engine, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> slates::Result<()> {
/// let faults = Faults::default();
/// let engine = Engine::builder(Intercepted::new(MemoryStore::new(), faults.clone()))
///     .build()
///     .await?;
/// let counter = engine.user_slates("ada")?.raw_slate("counter");
/// faults.set_available(false); // the database goes away
/// assert!(counter.inc("hits", 1).await.unwrap_err().is_store_failure());
/// faults.set_available(true); // and comes back
/// assert_eq!(counter.inc("hits", 1).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Default, Debug)]
pub struct Faults {
    state: Arc<State>,
}

#[derive(Default, Debug)]
struct State {
    calls: AtomicU64,
    unavailable: AtomicBool,
    fail_next: AtomicU32,
}

impl Faults {
    /// No fault: every call passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `false`, every call fails with [`Error::Unavailable`] and changes nothing.
    pub fn set_available(&self, available: bool) {
        self.state.unavailable.store(!available, Ordering::SeqCst);
    }

    /// Makes the next `n` calls fail with [`Error::Unavailable`], changing nothing.
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// How many calls the wrapped store was asked to make so far, refused ones included.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    fn refuse(&self) -> bool {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        self.state.unavailable.load(Ordering::SeqCst)
            || self
                .state
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

impl Intercept for Faults {
    fn around<'a, T, F>(&'a self, _call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        if self.refuse() {
            return Box::pin(ready(Err(outage())));
        }
        op()
    }
}

fn outage() -> Error {
    Error::Unavailable(Box::new(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "simulated outage (slates::store::Faults)",
    )))
}

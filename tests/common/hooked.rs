//! `Hooked`: a store decorator for adversarial tests, built on the crate's
//! `slates::store::Intercepted`. It wraps any store and runs a hook before and after every
//! call, which can pause the call (a barrier: force an interleaving) or fail it (inject a
//! store failure at a chosen step, either before the store saw the call or after it applied
//! it, as a lost reply would).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use slates::store::{Call as StoreCall, Intercept, Intercepted, StoreFuture};
use slates::store::{SlateStore as _, TokenStore as _};
use slates::{Engine, EngineBuilder, Error, ManualClock, Store};

use super::Backend;

/// Which store method a call is.
pub use slates::store::CallKind as Call;

/// When the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the inner store sees the call: an error here means nothing was applied.
    Before,
    /// After the inner store applied the call successfully: an error here is a lost reply.
    After,
}

/// What a hook returns: a future that may wait (pause the call) and may fail it.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// The hook: called with the call, the phase, and the running number of the call (0-based,
/// counting every call the decorator has seen, the prepares included).
pub type Hook = Arc<dyn Fn(Call, Phase, u64) -> HookFuture + Send + Sync>;

/// A store wrapped so that a [`Hook`] runs around every call, and the handle that steers
/// it. Clones share the hook and the record of calls.
#[derive(Clone)]
pub struct Hooked {
    store: Arc<Intercepted<Arc<dyn Store>, Hooks>>,
}

/// The intercept: the hook in force and the calls seen.
#[derive(Clone)]
pub struct Hooks {
    hook: Arc<Mutex<Hook>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Whether calls the inner store answers at once go through (recorded, no hook):
    /// see [`Hooked::allow_ready`].
    ready: Arc<AtomicBool>,
}

/// An engine on a fresh store of `backend` behind a [`Hooked`] decorator (every store call
/// recorded), without a cache, with a manual clock and plain-http cookies. The record starts empty: the
/// prepares of `build` are forgotten. `None`: backend not available here, skip the test.
pub async fn hooked_engine(backend: Backend, test: &str) -> Option<(Engine, Hooked, ManualClock)> {
    hooked_engine_with(backend, test, |b| b).await
}

/// Like [`hooked_engine`], with `configure` applied to the builder last.
pub async fn hooked_engine_with(
    backend: Backend,
    test: &str,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Option<(Engine, Hooked, ManualClock)> {
    let hooked = Hooked::new(backend.store(test).await?);
    let clock = ManualClock::new();
    // No cache: these tests observe every store call a request makes.
    let builder = Engine::builder_shared(hooked.store())
        .no_cache()
        .layout(backend.layout())
        .clock(clock.clone())
        .secure(false);
    let engine = configure(builder).build().await.expect("build");
    hooked.clear_calls();
    Some((engine, hooked, clock))
}

/// A hook that lets every call through.
pub fn pass() -> Hook {
    Arc::new(|_, _, _| Box::pin(async { Ok(()) }))
}

/// The error injected by the helpers below: what an unreachable store reports.
pub fn injected() -> Error {
    Error::Unavailable(Box::new(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "injected failure",
    )))
}

impl Hooked {
    /// Wraps `inner`; every call passes until [`set_hook`](Self::set_hook).
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let hooks = Hooks {
            hook: Arc::new(Mutex::new(pass())),
            calls: Arc::default(),
            ready: Arc::default(),
        };
        Hooked {
            store: Arc::new(Intercepted::new(inner, hooks)),
        }
    }

    /// The decorated store, to build an engine on.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn hooks(&self) -> &Hooks {
        self.store.intercept()
    }

    /// Replaces the hook.
    pub fn set_hook(&self, hook: Hook) {
        *self.hooks().hook.lock().unwrap() = hook;
    }

    /// Makes the call numbered `n` (counted from now, 0-based) fail in `phase`; every other
    /// call passes.
    pub fn fail_call(&self, n: u64, phase: Phase) {
        let start = self.hooks().calls.lock().unwrap().len() as u64;
        self.set_hook(Arc::new(move |_, p, i| {
            let fail = i == start + n && p == phase;
            Box::pin(async move {
                if fail {
                    Err(injected())
                } else {
                    Ok(())
                }
            })
        }));
    }

    /// Lets the calls the inner store answers at once (`TokenStore::find_token_ready`)
    /// through, recorded like the others but without the hook; by default they take the
    /// path of every call, so that a hook sees them all.
    pub fn allow_ready(&self, allow: bool) {
        self.hooks().ready.store(allow, Ordering::SeqCst);
    }

    /// The calls seen so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.hooks().calls.lock().unwrap().clone()
    }

    /// Forgets the calls seen so far (numbering for [`fail_call`](Self::fail_call) and
    /// hooks restarts at 0).
    pub fn clear_calls(&self) {
        self.hooks().calls.lock().unwrap().clear();
    }
}

impl Intercept for Hooks {
    /// Runs the hook, then the call, then the hook again. The inner call is started only
    /// after the first hook returns.
    fn around<'a, T, F>(&'a self, call: StoreCall<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        let call = call.kind();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(call);
            calls.len() as u64 - 1
        };
        let hook = self.hook.lock().unwrap().clone();
        Box::pin(async move {
            hook(call, Phase::Before, n).await?;
            let out = op().await?;
            hook(call, Phase::After, n).await?;
            Ok(out)
        })
    }

    fn around_ready<'a, T>(
        &'a self,
        call: StoreCall<'a>,
        op: impl FnOnce() -> Option<Result<T, Error>>,
    ) -> Option<Result<T, Error>> {
        if !self.ready.load(Ordering::SeqCst) {
            return None;
        }
        let answer = op()?;
        self.calls.lock().unwrap().push(call.kind());
        Some(answer)
    }
}

/// Makes `hooked` pause the first compare-and-swap (`ReplaceSlateIf`) from now on until
/// `release` is notified, telling `paused` when it got there: the modifier has read and now
/// waits between its read and its write, the worst moment.
pub fn pause_first_swap(hooked: &Hooked) -> (Arc<Notify>, Arc<Notify>) {
    pause_first(hooked, Call::ReplaceSlateIf, Phase::Before)
}

/// Makes `hooked` pause the first call `kind` from now on, in `when`, until `release` is
/// notified, telling `paused` when it got there; every other call passes. Returns
/// `(paused, release)`.
pub fn pause_first(hooked: &Hooked, kind: Call, when: Phase) -> (Arc<Notify>, Arc<Notify>) {
    let (paused, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let armed = Arc::new(Mutex::new(true));
    let (p, r) = (paused.clone(), release.clone());
    hooked.set_hook(Arc::new(move |call, phase, _| {
        let hold = call == kind && phase == when && std::mem::take(&mut *armed.lock().unwrap());
        let (p, r) = (p.clone(), r.clone());
        Box::pin(async move {
            if hold {
                p.notify_one();
                r.notified().await;
            }
            Ok(())
        })
    }));
    (paused, release)
}

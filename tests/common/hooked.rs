//! `Hooked`: a store decorator for adversarial tests. It wraps any store and runs a hook
//! before and after every call, which can pause the call (a barrier: force an interleaving)
//! or fail it (inject a store failure at a chosen step, either before the store saw the call
//! or after it applied it, as a lost reply would).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bson::Document;
use slates::store::{Expiry, SlateKey, StoreFuture, StoreOptions, TokenRecord, UpdateOp, Updated};
use slates::{Error, SlateDoc, Store, TokenHash, Username};
use time::OffsetDateTime;

/// Which store method a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Prepare,
    InsertToken,
    FindToken,
    RenewToken,
    RetireToken,
    DeleteToken,
    DeleteUserTokens,
    GetSlate,
    PutSlate,
    UpdateSlate,
    ReplaceSlateIf,
    DeleteSlate,
    DeleteUserSlates,
}

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
/// counting every call the decorator has seen, `Prepare` included).
pub type Hook = Arc<dyn Fn(Call, Phase, u64) -> HookFuture + Send + Sync>;

/// A store decorator running a [`Hook`] around every call.
#[derive(Clone)]
pub struct Hooked {
    inner: Arc<dyn Store>,
    hook: Arc<Mutex<Hook>>,
    calls: Arc<Mutex<Vec<Call>>>,
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
        Hooked {
            inner,
            hook: Arc::new(Mutex::new(pass())),
            calls: Arc::default(),
        }
    }

    /// Replaces the hook.
    pub fn set_hook(&self, hook: Hook) {
        *self.hook.lock().unwrap() = hook;
    }

    /// Makes the call numbered `n` (counted from now, 0-based) fail in `phase`; every other
    /// call passes.
    pub fn fail_call(&self, n: u64, phase: Phase) {
        let start = self.calls.lock().unwrap().len() as u64;
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

    /// The calls seen so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Forgets the calls seen so far (numbering for [`fail_call`](Self::fail_call) and
    /// hooks restarts at 0).
    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Runs the hook, then the call, then the hook again. The inner call is made only after
    /// the first hook returns: the memory store does its work when the call is made, not
    /// when its future is polled.
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call,
        op: impl FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    ) -> StoreFuture<'a, T> {
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
}

impl Store for Hooked {
    fn prepare<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        self.around(Call::Prepare, move || self.inner.prepare(options))
    }
    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        self.around(Call::InsertToken, move || self.inner.insert_token(record))
    }
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        self.around(Call::FindToken, move || self.inner.find_token(hash, now))
    }
    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.around(Call::RenewToken, move || {
            self.inner.renew_token(hash, previous, expires, now)
        })
    }
    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.around(Call::RetireToken, move || {
            self.inner.retire_token(hash, at, now)
        })
    }
    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        self.around(Call::DeleteToken, move || self.inner.delete_token(hash))
    }
    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        self.around(Call::DeleteUserTokens, move || {
            self.inner.delete_user_tokens(user)
        })
    }
    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        self.around(Call::GetSlate, move || self.inner.get_slate(key, now))
    }
    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        self.around(Call::PutSlate, move || {
            self.inner.put_slate(key, doc, expiry, now)
        })
    }
    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        self.around(Call::UpdateSlate, move || {
            self.inner.update_slate(key, ops, expiry, counter, now)
        })
    }
    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        self.around(Call::ReplaceSlateIf, move || {
            self.inner
                .replace_slate_if(key, expected, doc, expires, now)
        })
    }
    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        self.around(Call::DeleteSlate, move || self.inner.delete_slate(key, now))
    }
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        self.around(Call::DeleteUserSlates, move || {
            self.inner.delete_user_slates(user)
        })
    }
}

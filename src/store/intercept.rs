//! [`Intercepted`]: a store decorator that runs an [`Intercept`] around every call, for
//! fault injection, forced interleavings, counting and logging, without writing the
//! forwarding of every store method again.

use std::fmt;

use bson::Document;
use time::OffsetDateTime;

use super::{
    Expiry, InvalidationChannel, SlateDoc, SlateKey, SlateStore, StoreFuture, StoreOptions,
    TokenBrief, TokenRecord, TokenStore, UpdateOp, Updated,
};
use crate::device_id::DeviceId;
use crate::error::Result;
use crate::names::Username;
use crate::token::TokenHash;

/// Which store method a [`Call`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CallKind {
    /// [`TokenStore::prepare_tokens`].
    PrepareTokens,
    /// [`TokenStore::insert_token`].
    InsertToken,
    /// [`TokenStore::find_token`].
    FindToken,
    /// [`TokenStore::renew_token`].
    RenewToken,
    /// [`TokenStore::retire_token`].
    RetireToken,
    /// [`TokenStore::delete_token`].
    DeleteToken,
    /// [`TokenStore::delete_user_tokens`].
    DeleteUserTokens,
    /// [`TokenStore::user_tokens`].
    UserTokens,
    /// [`TokenStore::touch_token`].
    TouchToken,
    /// [`TokenStore::delete_device`].
    DeleteDevice,
    /// [`TokenStore::delete_user_tokens_except`].
    DeleteUserTokensExcept,
    /// [`SlateStore::prepare_slates`].
    PrepareSlates,
    /// [`SlateStore::get_slate`].
    GetSlate,
    /// [`SlateStore::put_slate`].
    PutSlate,
    /// [`SlateStore::update_slate`].
    UpdateSlate,
    /// [`SlateStore::replace_slate_if`].
    ReplaceSlateIf,
    /// [`SlateStore::delete_slate`].
    DeleteSlate,
    /// [`SlateStore::delete_user_slates`].
    DeleteUserSlates,
    /// [`SlateStore::take_slate`].
    TakeSlate,
}

/// One store call and its arguments, as an [`Intercept`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`TokenStore::prepare_tokens`].
    PrepareTokens(&'a StoreOptions),
    /// [`TokenStore::insert_token`].
    InsertToken(&'a TokenRecord),
    /// [`TokenStore::find_token`].
    FindToken(&'a TokenHash),
    /// [`TokenStore::renew_token`]: the token, the expiry read, the new expiry, now.
    RenewToken(
        &'a TokenHash,
        OffsetDateTime,
        OffsetDateTime,
        OffsetDateTime,
    ),
    /// [`TokenStore::retire_token`]: the token, the end of its grace, now.
    RetireToken(&'a TokenHash, OffsetDateTime, OffsetDateTime),
    /// [`TokenStore::delete_token`].
    DeleteToken(&'a TokenHash),
    /// [`TokenStore::delete_user_tokens`].
    DeleteUserTokens(&'a Username),
    /// [`TokenStore::user_tokens`].
    UserTokens(&'a Username),
    /// [`TokenStore::touch_token`]: the token, the device id to assign, the last-seen bound,
    /// now.
    TouchToken(
        &'a TokenHash,
        Option<&'a DeviceId>,
        OffsetDateTime,
        OffsetDateTime,
    ),
    /// [`TokenStore::delete_device`]: the user and the device id.
    DeleteDevice(&'a Username, &'a DeviceId),
    /// [`TokenStore::delete_user_tokens_except`]: the user and the token kept.
    DeleteUserTokensExcept(&'a Username, &'a TokenHash),
    /// [`SlateStore::prepare_slates`].
    PrepareSlates(&'a StoreOptions),
    /// [`SlateStore::get_slate`].
    GetSlate(&'a SlateKey),
    /// [`SlateStore::put_slate`].
    PutSlate(&'a SlateKey, &'a Document),
    /// [`SlateStore::update_slate`].
    UpdateSlate(&'a SlateKey, &'a [UpdateOp]),
    /// [`SlateStore::replace_slate_if`]: the slate and the version expected.
    ReplaceSlateIf(&'a SlateKey, Option<i64>, &'a Document),
    /// [`SlateStore::delete_slate`].
    DeleteSlate(&'a SlateKey),
    /// [`SlateStore::delete_user_slates`].
    DeleteUserSlates(&'a Username),
    /// [`SlateStore::take_slate`].
    TakeSlate(&'a SlateKey),
}

impl Call<'_> {
    /// Which method this is.
    pub fn kind(&self) -> CallKind {
        match self {
            Call::PrepareTokens(..) => CallKind::PrepareTokens,
            Call::InsertToken(..) => CallKind::InsertToken,
            Call::FindToken(..) => CallKind::FindToken,
            Call::RenewToken(..) => CallKind::RenewToken,
            Call::RetireToken(..) => CallKind::RetireToken,
            Call::DeleteToken(..) => CallKind::DeleteToken,
            Call::DeleteUserTokens(..) => CallKind::DeleteUserTokens,
            Call::UserTokens(..) => CallKind::UserTokens,
            Call::TouchToken(..) => CallKind::TouchToken,
            Call::DeleteDevice(..) => CallKind::DeleteDevice,
            Call::DeleteUserTokensExcept(..) => CallKind::DeleteUserTokensExcept,
            Call::PrepareSlates(..) => CallKind::PrepareSlates,
            Call::GetSlate(..) => CallKind::GetSlate,
            Call::PutSlate(..) => CallKind::PutSlate,
            Call::UpdateSlate(..) => CallKind::UpdateSlate,
            Call::ReplaceSlateIf(..) => CallKind::ReplaceSlateIf,
            Call::DeleteSlate(..) => CallKind::DeleteSlate,
            Call::DeleteUserSlates(..) => CallKind::DeleteUserSlates,
            Call::TakeSlate(..) => CallKind::TakeSlate,
        }
    }
}

/// Runs around every call of an [`Intercepted`] store.
///
/// `op` starts the inner store's call; `around` decides when (or whether) to start it and
/// what to return: wait first (force an interleaving), fail before starting it (the store
/// never saw the call), fail after it succeeded (a lost reply), count it, log it.
pub trait Intercept: Send + Sync + 'static {
    /// Wraps one call.
    fn around<'a, T, F>(&'a self, call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a;

    /// Wraps one call the inner store may answer at once
    /// ([`TokenStore::find_token_ready`]): `op` gives the inner store's answer, `None` if it
    /// has none at hand (the call then comes again through [`around`](Self::around)). The
    /// default answers `None` without calling `op`, so that every call goes through
    /// `around`: an intercept that pauses or fails calls sees them all.
    fn around_ready<'a, T>(
        &'a self,
        call: Call<'a>,
        op: impl FnOnce() -> Option<Result<T>>,
    ) -> Option<Result<T>> {
        let _ = (call, op);
        None
    }
}

/// A store decorator: `inner`'s calls, each run through `intercept`. It is a
/// [`TokenStore`] when `S` is one and a [`SlateStore`] when `S` is one.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use slates::store::{Call, Intercept, Intercepted, StoreFuture};
///
/// /// Counts the calls that reach the store.
/// #[derive(Default)]
/// struct Count(AtomicU64);
///
/// impl Intercept for Count {
///     fn around<'a, T, F>(&'a self, _call: Call<'a>, op: F) -> StoreFuture<'a, T>
///     where
///         T: Send + 'a,
///         F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
///     {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         op()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> slates::Result<()> {
/// let store = std::sync::Arc::new(Intercepted::new(slates::MemoryStore::new(), Count::default()));
/// let engine = slates::Engine::builder_shared(store.clone()).build().await?;
/// engine.user_slates("ada")?.raw_slate("counter").inc("hits", 1).await?;
/// assert_eq!(store.intercept().0.load(Ordering::Relaxed), 3); // two prepares, one update
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Intercepted<S, I> {
    inner: S,
    intercept: I,
}

impl<S, I> Intercepted<S, I> {
    /// Wraps `inner`.
    pub fn new(inner: S, intercept: I) -> Self {
        Intercepted { inner, intercept }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The intercept.
    pub fn intercept(&self) -> &I {
        &self.intercept
    }
}

impl<S: fmt::Debug, I> fmt::Debug for Intercepted<S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intercepted")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore, I: Intercept> TokenStore for Intercepted<S, I> {
    fn prepare_tokens<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        let op = move || self.inner.prepare_tokens(options);
        self.intercept.around(Call::PrepareTokens(options), op)
    }
    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        let op = move || self.inner.insert_token(record);
        self.intercept.around(Call::InsertToken(record), op)
    }
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        let op = move || self.inner.find_token(hash, now);
        self.intercept.around(Call::FindToken(hash), op)
    }
    fn find_token_ready(&self, hash: &TokenHash, now: i64) -> Option<Result<Option<TokenBrief>>> {
        let op = || self.inner.find_token_ready(hash, now);
        self.intercept.around_ready(Call::FindToken(hash), op)
    }
    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        let op = move || self.inner.renew_token(hash, previous, expires, now);
        let call = Call::RenewToken(hash, previous, expires, now);
        self.intercept.around(call, op)
    }
    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        let op = move || self.inner.retire_token(hash, at, now);
        self.intercept.around(Call::RetireToken(hash, at, now), op)
    }
    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        let op = move || self.inner.delete_token(hash);
        self.intercept.around(Call::DeleteToken(hash), op)
    }
    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        let op = move || self.inner.delete_user_tokens(user);
        self.intercept.around(Call::DeleteUserTokens(user), op)
    }
    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        let op = move || self.inner.user_tokens(user, now);
        self.intercept.around(Call::UserTokens(user), op)
    }
    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        let op = move || self.inner.touch_token(hash, assign, not_after, now);
        let call = Call::TouchToken(hash, assign, not_after, now);
        self.intercept.around(call, op)
    }
    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        let op = move || self.inner.delete_device(user, device);
        self.intercept.around(Call::DeleteDevice(user, device), op)
    }
    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        let op = move || self.inner.delete_user_tokens_except(user, keep);
        self.intercept
            .around(Call::DeleteUserTokensExcept(user, keep), op)
    }
    /// The inner store's channel: a decorated store caches like the store it wraps.
    fn invalidation_channel(&self) -> Option<std::sync::Arc<dyn InvalidationChannel>> {
        self.inner.invalidation_channel()
    }
}

impl<S: SlateStore, I: Intercept> SlateStore for Intercepted<S, I> {
    fn prepare_slates<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        let op = move || self.inner.prepare_slates(options);
        self.intercept.around(Call::PrepareSlates(options), op)
    }
    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        let op = move || self.inner.get_slate(key, now);
        self.intercept.around(Call::GetSlate(key), op)
    }
    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        let op = move || self.inner.put_slate(key, doc, expiry, now);
        self.intercept.around(Call::PutSlate(key, doc), op)
    }
    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        let op = move || self.inner.update_slate(key, ops, expiry, counter, now);
        self.intercept.around(Call::UpdateSlate(key, ops), op)
    }
    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        let op = move || {
            self.inner
                .replace_slate_if(key, expected, doc, expires, now)
        };
        let call = Call::ReplaceSlateIf(key, expected, doc);
        self.intercept.around(call, op)
    }
    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        let op = move || self.inner.delete_slate(key, now);
        self.intercept.around(Call::DeleteSlate(key), op)
    }
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        let op = move || self.inner.delete_user_slates(user);
        self.intercept.around(Call::DeleteUserSlates(user), op)
    }
    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        let op = move || self.inner.take_slate(key, now);
        self.intercept.around(Call::TakeSlate(key), op)
    }
}
